"""The servers compared, and how each is started and stopped inside the node.

Every server serves the same installed package: the same code, the same vendored libraries (the
scenario app carries gunicorn, waitress and pyuwsgi), the same user and environment (`PKG env`).
The package's own unit and nginx site run as installed; the other Python servers run as transient
systemd units (`systemd-run`, as the app's user, restarted on failure like the package's unit);
Apache with mod_wsgi comes from Debian. Each gets a fixed port next to the package's, and every run
starts its server fresh and ends by SIGKILLing the unit's whole cgroup: a wedged server must not
leak into the next run, and a stuck graceful stop must not stall the benchmark.
"""

from __future__ import annotations

import http.client
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appdeb.build.spec import Web
from appdeb.errors import AppdebError
from appdeb.failsafe.client import HOST
from appdeb.failsafe.memory import unit_pids
from appdeb.node import harness as nodes
from appdeb.runtime import contract
from appdeb.runtime.commands import gunicorn_argv

WSGI = "failsafe_app:application"
ASGI = "failsafe_app:asgi_application"  # the same paths as an ASGI app
WSGI_FILE = "failsafe_app.py"
TIMEOUT = 10  # the per-request timeout of every server that has one, except the package's current default


@dataclass(frozen=True)
class Target:
    """The installed scenario package in a node: its name (= user), ports and environment."""

    node: nodes.Node
    package: str
    port: int  # the package's own gunicorn
    public_port: int  # its nginx site
    env: dict[str, str]

    @property
    def app_dir(self) -> str:
        return f"/opt/{self.package}/app"


Command = Callable[[Target, int], list[str]]


@dataclass(frozen=True)
class Server:
    """One server configuration: a transient unit running `command`, or a unit the node already has."""

    name: str
    summary: str
    port_offset: int  # from the package's port
    command: Command | None = None
    installed_unit: str = ""  # "{package}" stands for the package name
    debs: tuple[str, ...] = ()  # Debian packages it needs in the node

    def unit(self, target: Target) -> str:
        name = f"fs-{self.name}" if self.command else self.installed_unit.format(package=target.package)
        return f"{name}.service"

    def port(self, target: Target) -> int:
        return target.port + self.port_offset


def _gunicorn(worker_class: str, workers: int, timeout: int, threads: int = 0) -> Command:
    def command(target: Target, port: int) -> list[str]:
        return ["python3", "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--worker-class", worker_class,
                "--workers", str(workers), *(["--threads", str(threads)] if threads else []),
                "--timeout", str(timeout), "--graceful-timeout", "20", "--max-requests", "1000",
                "--max-requests-jitter", "100", "--chdir", target.app_dir, "--name", "fs-gunicorn", WSGI]
    return command


_DEFAULTS = Web(app=ASGI, interface="asgi")  # an asgi section's web defaults (the summary below names them)


def _appdeb_asgi(target: Target, port: int) -> list[str]:
    """What the web unit of an asgi package runs (the launcher's own gunicorn_argv, app.yaml's defaults),
    with the shipped runtime on the path for its worker class and memory bound."""
    defaults = _DEFAULTS  # app.yaml's, as for any asgi package that sets none
    web = contract.Web(port=port, workers=defaults.workers, timeout=defaults.timeout,
                       graceful_timeout=defaults.graceful_timeout, max_requests=defaults.max_requests,
                       max_requests_jitter=defaults.max_requests_jitter, max_worker_memory=defaults.max_worker_memory,
                       health="/ok", interface="asgi")
    argv = gunicorn_argv("fs-appdeb-asgi", web, ASGI, target.app_dir, [])
    argv[argv.index("--bind") + 1] = f"{HOST}:{port}"
    path = f"{target.env.get('PYTHONPATH', '')}:/opt/{target.package}/appdeb".lstrip(":")
    return ["env", f"PYTHONPATH={path}", f"APPDEB_WORKER_MEMORY_MB={web.max_worker_memory}", "python3", "-m", *argv]


def _uvicorn(target: Target, port: int) -> list[str]:
    return ["python3", "-m", "uvicorn", "--host", HOST, "--port", str(port), "--workers", "6",
            "--limit-max-requests", "1000", "--no-access-log", "--app-dir", target.app_dir, ASGI]


def _uwsgi(target: Target, port: int) -> list[str]:
    return ["python3", "-c", "import pyuwsgi; pyuwsgi.run()", "--master", "--http-socket", f"{HOST}:{port}",
            "--processes", "8", "--harakiri", str(TIMEOUT), "--max-requests", "1000", "--reload-on-rss", "256",
            "--chdir", target.app_dir, "--module", WSGI, "--need-app", "--die-on-term", "--disable-logging"]


def _waitress(target: Target, port: int) -> list[str]:
    return ["python3", "-m", "waitress", f"--listen={HOST}:{port}", "--threads=8", WSGI]


SERVERS = {s.name: s for s in (
    Server("appdeb", "the package's generated unit as installed (gunicorn sync, app.yaml defaults)", 0,
           installed_unit="{package}"),
    Server("appdeb-nginx", "the same unit behind the package's nginx site (request and response buffering)",
           -1, installed_unit="{package}", debs=("nginx",)),
    Server("gunicorn-sync", "gunicorn sync, 2 workers, timeout 30, max-requests 1000 (appdeb's verb_web flags)",
           1, _gunicorn("sync", 2, 30)),
    Server("gunicorn-sync8", f"gunicorn sync, 8 workers, timeout {TIMEOUT}, max-requests 1000", 2,
           _gunicorn("sync", 8, TIMEOUT)),
    Server("gunicorn-gthread", f"gunicorn gthread, 2 workers × 4 threads, timeout {TIMEOUT}", 3,
           _gunicorn("gthread", 2, TIMEOUT, threads=4)),
    Server("uwsgi", f"uWSGI (pyuwsgi), 8 processes, harakiri {TIMEOUT}, max-requests 1000, reload-on-rss 256",
           4, _uwsgi),
    Server("waitress", "waitress, 8 threads (it has no per-request timeout)", 5, _waitress),
    Server("apache", f"Apache + mod_wsgi daemon mode, 2 processes × 4 threads, request-timeout={TIMEOUT}, "
                     "maximum-requests=1000", 6, installed_unit="apache2",
           debs=("apache2", "libapache2-mod-wsgi-py3")),
    Server("appdeb-asgi", "the asgi web unit's command: gunicorn + appdeb's uvicorn worker, app.yaml's defaults "
                          f"({_DEFAULTS.workers} workers, timeout {_DEFAULTS.timeout}, max-requests "
                          f"{_DEFAULTS.max_requests}, memory bound {_DEFAULTS.max_worker_memory} MiB; the same paths "
                          "as ASGI)", 7, _appdeb_asgi),
    Server("uvicorn", "uvicorn's own supervisor, 6 workers, limit-max-requests 1000 (no worker timeout)", 8,
           _uvicorn),
)}


def start(server: Server, target: Target, ready_timeout: float = 60.0) -> None:
    """Start the server fresh and wait until it answers /ok."""
    unit = server.unit(target)
    if server.command is None:
        in_node(target.node, ["systemctl", "start", unit])
    else:
        in_node(target.node, [
            "systemd-run", "--unit", unit, "--collect", "--quiet", "-p", f"User={target.package}",
            "-p", f"Group={target.package}", "-p", f"WorkingDirectory={target.app_dir}",
            "-p", "Restart=on-failure", "-p", "RestartSec=2", "-p", "TimeoutStopSec=5",
            *(f"--setenv={k}={v}" for k, v in sorted(target.env.items())), "--",
            *server.command(target, server.port(target))])
    if not answers_ok(server.port(target), ready_timeout):
        log = nodes.run_in(target.node, ["journalctl", "-u", unit, "-n", "30", "--no-pager"]).stdout
        stop(server, target)
        raise AppdebError(f"{server.name} did not answer on {HOST}:{server.port(target)} within "
                          f"{ready_timeout:.0f}s:\n{log}")
    _settle(target.node.name, unit)


def _settle(node_name: str, unit: str, timeout: float = 10.0) -> None:
    """Wait until the unit's processes stop changing: answering once does not mean every worker is up,
    and a worker still booting would later count as one the server had to start."""
    deadline, last = time.monotonic() + timeout, unit_pids(node_name, unit)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = unit_pids(node_name, unit)
        if now == last:
            return
        last = now


def stop(server: Server, target: Target, timeout: float = 20.0) -> None:
    """Kill every process of the unit (SIGKILL: a wedged worker ignores anything politer), then stop it."""
    unit = server.unit(target)
    units = [unit, *sockets_of(target.node, unit)]  # a socket left listening would start it again
    said = [nodes.run_in(target.node, argv, timeout=60).stdout for argv in (
        ["systemctl", "kill", "--signal=SIGKILL", unit], ["systemctl", "stop", *units],
        ["systemctl", "reset-failed", *units])]
    deadline = time.monotonic() + timeout
    while left := unit_pids(target.node.name, unit):
        if time.monotonic() > deadline:
            states = {pid: _proc_state(pid) for pid in sorted(left)}
            raise AppdebError(f"{unit} in node {target.node.name}: processes survive SIGKILL: {states}; "
                              f"systemctl said: {said}")
        time.sleep(0.2)


def sockets_of(node: nodes.Node, unit: str) -> list[str]:
    """The socket units that start `unit` on a connection (the package's web unit is socket-activated)."""
    out = nodes.run_in(node, ["systemctl", "show", "--property=TriggeredBy", "--value", unit]).stdout
    return [u for u in out.split() if u.endswith(".socket")]


def _proc_state(pid: int) -> str:
    """A process's command and state letter as the host sees it, for the error message."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.index("(") + 1:stat.rindex(")")] + " " + stat[stat.rindex(")") + 2:].split()[0]


def answers_ok(port: int, timeout: float) -> bool:
    """Poll GET /ok on 127.0.0.1:port until it answers 200, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", "/ok")
            if conn.getresponse().status == 200:
                return True
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    return False


def in_node(node: nodes.Node, argv: list[str], timeout: float = 120.0, input: str | None = None) -> str:
    """Run a command in the node; its output, or an error carrying it if the command failed."""
    result = nodes.run_in(node, argv, input=input, timeout=timeout)
    if result.returncode != 0:
        raise AppdebError(f"in node {node.name}: {shlex.join(argv)} failed ({result.returncode}):\n{result.stdout}")
    return result.stdout
