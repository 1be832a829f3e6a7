"""Node-side glue the runtime calls: services, the per-instance secret and the nginx site, together.

Kept beside the plug-ins (shipped as `appdeb_services.wiring`) so the runtime itself only
calls these few functions at its lifecycle points.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from typing import Any

from . import SERVICES
from .base import App, Service, ServiceError


def services(app: App) -> list[Service]:
    return [SERVICES[s.kind](app, s.options) for s in app.contract.services]


def environ(app: App) -> dict[str, str]:
    env: dict[str, str] = {}
    for svc in services(app):
        env.update(svc.environ())
    return env


def secret_path(app: App) -> str:
    return app.paths.secret


def ensure_secret(app: App) -> str:
    """Create the instance's secret once (root-only file); later calls keep it as it is."""
    path = secret_path(app)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        os.replace(path + ".new", path)
    return path


def provision(app: App) -> None:
    """Everything the instance needs before the app's install/update command (idempotent)."""
    ensure_secret(app)
    for svc in services(app):
        svc.provision()
    nginx_enable(app)


def backup(app: App, dest: str) -> None:
    for svc in services(app):
        target = os.path.join(dest, "services", svc.kind)
        os.makedirs(target, mode=0o700, exist_ok=True)
        try:
            svc.backup(target)
        except ServiceError as exc:
            raise ServiceError(f"backup of {svc.kind} failed: {exc}") from None


def restore(app: App, src: str) -> None:
    for svc in services(app):
        svc.restore(os.path.join(src, "services", svc.kind))


def check(app: App) -> list[str]:
    return [problem for svc in services(app) for problem in svc.check()]


def purge(app: App) -> None:
    for svc in services(app):
        svc.purge()
    nginx_disable(app)


def _nginx_reload(app: App) -> None:
    door = app.proc
    if door.systemd_running() and door.systemctl("is-active", "--quiet", "nginx") == 0:
        door.run(["systemctl", "reload", "nginx"], check=True, what="reloading nginx")


def nginx_enable(app: App) -> None:
    """Link the package's site into nginx; refuse (and undo) a configuration nginx rejects."""
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nginx-site.conf")
    if app.dev or not app.contract.nginx or not os.path.isdir(os.path.dirname(app.contract.nginx_site)):
        return
    site = app.contract.nginx_site
    if os.path.realpath(site) != os.path.realpath(source):
        if os.path.lexists(site):
            os.unlink(site)
        os.symlink(os.path.realpath(source), site)
    test = app.proc.run(["nginx", "-t", "-q"])
    if not test.ok:
        os.unlink(site)
        raise ServiceError(f"nginx rejects the site of {app.contract.package}: {test.err.decode().strip()}")
    if not _socket_comes_later(app):
        _nginx_reload(app)


def _socket_comes_later(app: App) -> bool:
    """Whether nginx must keep its running configuration until the site's unix socket listens.

    An upgrade from a release without that socket configures while the old web process runs, on
    the port only; systemd refuses to start the new socket beside it. Reloaded now, nginx would
    answer 502 until postinst restarts the web process (backup and update included); not reloaded,
    it keeps passing requests to the old process over TCP, and the socket reloads nginx when it
    starts (its ExecStartPost), with the new process. A first install reloads as always.
    """
    door, unit = app.proc, app.contract.nginx_socket
    return (door.systemd_running() and unit in {u.name for u in app.contract.units}
            and door.systemctl("is-active", "--quiet", f"{app.contract.package}.service") == 0
            and door.systemctl("is-active", "--quiet", unit) != 0)


def nginx_disable(app: App) -> None:
    site = app.contract.nginx_site
    if os.path.lexists(site):
        os.unlink(site)
        _nginx_reload(app)


def deliver_secret(app: App, uid: int, gid: int) -> str | None:
    """A private copy of the secret for one command run as the app's user (removed by the caller).

    The copy is a new file (O_EXCL, so never a planted link) with a random name in a root-owned
    directory the app user can enter but not list or write: concurrent runs never share a path.
    """
    path = secret_path(app)
    if not os.path.exists(path):
        return None
    runtime_dir = app.paths.run
    _root_dir(os.path.dirname(runtime_dir), 0o755)
    _root_dir(runtime_dir, 0o711)
    fd, copy = tempfile.mkstemp(prefix="secret-", dir=runtime_dir)
    try:
        with open(path, "rb") as src:
            os.write(fd, src.read())
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o400)
    finally:
        os.close(fd)
    return copy


def _root_dir(path: str, mode: int) -> None:
    """A directory only root writes; anything else in its place is refused, never followed."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
        raise ServiceError(f"{path} must be a directory owned by root")
    os.chmod(path, mode)


def size_estimate(app: App) -> int:
    """Bytes the services' part of a backup may take (for the free-space check before it)."""
    return sum(svc.size_estimate() for svc in services(app))


def describe(app: App) -> list[dict[str, Any]]:
    """What `PKG env --services` shows: each service and the variables it injects."""
    return [{"kind": s.kind, "environ": sorted(s.environ())} for s in services(app)]
