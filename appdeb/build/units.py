"""The systemd units an instance ships: which there are, and what each one is (decided once, for the plan)."""

from __future__ import annotations

from dataclasses import dataclass

from appdeb.build.platforms import PLATFORMS
from appdeb.build.spec import AppSpec
from appdeb.runtime import contract


@dataclass(frozen=True)
class Unit:
    """One systemd unit file the package ships."""

    name: str  # file name, e.g. blog-prod.service
    kind: str  # socket | web | process | timer | timer-service
    description: str
    verb: tuple[str, ...]  # launcher arguments that run it
    schedule: str = ""
    target: str = ""  # the service a socket or timer starts
    path: str = ""  # a socket's unix path (the nginx site's way in); none: the web port on 127.0.0.1
    notify: bool = False  # a process that tells systemd it has started (processes.NAME.ready: notify)

    @property
    def enabled(self) -> bool:
        """Services and timers are enabled; a timer's service is started by its timer."""
        return self.kind != "timer-service"


def units_for(spec: AppSpec, package: str, web_socket: str) -> tuple[Unit, ...]:
    """Every unit of an instance, in the order postinst starts them (sockets before their service)."""
    units: list[Unit] = []
    if any(PLATFORMS[p].serves_web for p in spec.platform):
        # systemd holds the listening socket: a restart (upgrade, reload failure) never refuses a connection
        units.append(Unit(f"{package}.socket", "socket", f"{package} web socket", (), target=f"{package}.service"))
        if wants_nginx(spec):  # a unit of its own: an upgrade starts it, the port's socket is never restarted
            units.append(Unit(contract.nginx_socket_unit(package), "socket", f"{package} web socket for nginx", (),
                              target=f"{package}.service", path=web_socket))
        server = "gunicorn, uvicorn workers" if spec.web and spec.web.interface == "asgi" else "gunicorn"
        units.append(Unit(f"{package}.service", "web", f"{package} web process ({server})", ("web",)))
    for proc in spec.processes:
        units.append(Unit(f"{package}-{proc.name}.service", "process", f"{package} process {proc.name}",
                          ("process", proc.name), notify=proc.ready == "notify"))
    for timer in spec.timers:
        units.append(Unit(f"{package}-{timer.name}.service", "timer-service", f"{package} timer job {timer.name}",
                          ("timer", timer.name)))
        units.append(Unit(f"{package}-{timer.name}.timer", "timer", f"{package} timer {timer.name}",
                          ("timer", timer.name), schedule=timer.schedule, target=f"{package}-{timer.name}.service"))
    return tuple(units)


def clashes(units: tuple[Unit, ...]) -> list[tuple[Unit, Unit]]:
    """Pairs of units systemd would take for one, the later second: the same file name (one file would
    silently replace the other), or the same name before the suffix where neither starts the other
    (a socket or timer shares its service's name by design; `systemctl start NAME` picks the service)."""
    by_stem: dict[str, list[Unit]] = {}
    for unit in units:
        by_stem.setdefault(unit.name.rpartition(".")[0], []).append(unit)
    return [(a, b) for group in by_stem.values() for i, a in enumerate(group) for b in group[i + 1:]
            if a.name == b.name or (b.name != a.target and a.name != b.target)]


def wants_nginx(spec: AppSpec) -> bool:
    """A site in front of gunicorn when asked for, or by default when there are static files to serve."""
    if spec.web is None:
        return False
    return spec.web.nginx if spec.web.nginx is not None else spec.static is not None
