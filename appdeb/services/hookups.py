"""Node-side glue the runtime calls: services, the per-instance secret and the nginx site, together.

Kept beside the plug-ins (shipped as `appdeb_services.hookups`) so the runtime itself only
calls these few functions at its lifecycle points.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from typing import Any

from . import SERVICES
from .base import App, Service, ServiceError

NGINX_ENABLED = "/etc/nginx/sites-enabled"


def services(app: App) -> list[Service]:
    return [SERVICES[s["kind"]](app, s.get("options", {})) for s in app.meta.get("services", [])]


def environ(app: App) -> dict[str, str]:
    env: dict[str, str] = {}
    for svc in services(app):
        env.update(svc.environ())
    return env


def secret_path(app: App) -> str:
    return app.paths.get("secret") or os.path.join(app.paths["etc"], "secret")


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


def _nginx_site(app: App) -> str:
    return os.path.join(NGINX_ENABLED, f"{app.meta['package']}.conf")


def _nginx_reload() -> None:
    if os.path.isdir("/run/systemd/system") and subprocess.call(
            ["systemctl", "is-active", "--quiet", "nginx"]) == 0:
        subprocess.call(["systemctl", "reload", "nginx"])


def nginx_enable(app: App) -> None:
    """Link the package's site into nginx; refuse (and undo) a configuration nginx rejects."""
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nginx-site.conf")
    if app.dev or not app.meta.get("nginx") or not os.path.isdir(NGINX_ENABLED):
        return
    site = _nginx_site(app)
    if os.path.realpath(site) != os.path.realpath(source):
        if os.path.lexists(site):
            os.unlink(site)
        os.symlink(os.path.realpath(source), site)
    test = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True)
    if test.returncode != 0:
        os.unlink(site)
        raise ServiceError(f"nginx rejects the site of {app.meta['package']}: {test.stderr.strip()}")
    _nginx_reload()


def nginx_disable(app: App) -> None:
    site = _nginx_site(app)
    if os.path.lexists(site):
        os.unlink(site)
        _nginx_reload()


def deliver_secret(app: App, uid: int, gid: int) -> str | None:
    """A private copy of the secret for one command run as the app's user (removed by the caller)."""
    path = secret_path(app)
    if not os.path.exists(path):
        return None
    runtime_dir = os.path.join("/run", f"appdeb-{app.meta['package']}")
    os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
    os.chown(runtime_dir, uid, gid)
    copy = os.path.join(runtime_dir, "secret")
    shutil.copyfile(path, copy)
    os.chown(copy, uid, gid)
    os.chmod(copy, 0o400)
    return copy


def describe(app: App) -> list[dict[str, Any]]:
    """What `PKG env --services` shows: each service and the variables it injects."""
    return [{"kind": s.kind, "environ": sorted(s.environ())} for s in services(app)]
