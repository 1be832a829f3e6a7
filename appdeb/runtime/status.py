"""status: what an admin looks for first — version, whose data, where it listens, units, health, backups, pin."""

from __future__ import annotations

import time

from . import proc
from .app import AppPackage, LauncherError


def _unit_state(name: str) -> str:
    out = proc.run(["systemctl", "is-active", name])
    return out.text.strip() or "unknown"


def status_lines(app: AppPackage) -> list[str]:
    """One fact a line, `key: value`, stable enough to grep."""
    from .backups import list_backups
    from .lifecycle import data_version
    from .pinning import pinned_version
    from .verify import check_web

    c = app.contract
    lines = [f"package: {c.package} {c.version}", f"data: {data_version(app) or 'none (not configured yet)'}"]
    if c.web:
        lines.append(f"web: 127.0.0.1:{c.web.port} (health {c.web.health})")
        if c.nginx:
            lines.append(f"site: http://{c.server_name}:{c.public_port}/")
        why = check_web(c.web.port, time.monotonic() + 3, path=c.web.health)
        lines.append(f"health: {'ok' if why is None else why}")
    if proc.systemd_running() and not app.dev:
        lines += [f"unit: {u.name} {_unit_state(u.name)}" for u in c.units]
    backups = list_backups(app)
    lines.append(f"backups: {len(backups)}, newest {backups[-1] if backups else 'none'}")
    pinned = pinned_version(app)
    lines.append(f"pin: {pinned or 'none'}")
    lines += [f"settings: {problem}" for problem in app.settings_problems()] or [f"settings: {app.paths.settings}"]
    return lines


def verb_status(app: AppPackage, args: list[str]) -> int:
    """status: exit 0 when the web process is healthy (or there is none), else 1."""
    if args:
        raise LauncherError("usage: status")
    lines = status_lines(app)
    print("\n".join(lines))
    return 1 if any(line.startswith("health: ") and line != "health: ok" for line in lines) else 0
