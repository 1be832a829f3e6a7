"""Config files rendered at configure time, for apps configured by a file rather than the environment.

app.yaml's `config_files: {NAME: TEMPLATE}` ships TEMPLATE with the app; every configure renders it
into /etc/PKG/NAME (root:PKG 0640, like the settings), replacing ${NAME} references with the
instance's variables, settings, services' variables and ${APPDEB_SECRET}. A file the admin edited
is kept, like a conffile: the new rendering goes beside it as NAME.appdeb-new, with a notice.
"""

from __future__ import annotations

import hashlib
import os

from .app import AppPackage, expand
from .guard import app_user, on_node_as_root, read_own, write_own


def _values(app: AppPackage) -> dict[str, str]:
    env = app.environ({})
    with open(app.wiring().secret_path(app), encoding="utf-8") as f:
        env["APPDEB_SECRET"] = f.read().strip()
    return env


def _write(app: AppPackage, path: str, text: str) -> None:
    """Atomically, never readable by others (root-owned /etc/PKG: nothing of the app user's on the way)."""
    tmp = path + ".appdeb-tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        if on_node_as_root(app):
            os.fchown(f.fileno(), 0, app_user(app).pw_gid)
        os.fchmod(f.fileno(), 0o640)
        f.write(text)
    os.replace(tmp, path)


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def render_config_files(app: AppPackage) -> list[str]:
    """Render every config file; returns notices for files the admin changed (kept as they are)."""
    files = app.contract.config_files
    if not files:
        return []
    values, notices = _values(app), []
    for name, template in sorted(files.items()):
        with open(os.path.join(app.app_dir, template), encoding="utf-8") as f:
            text = expand(f.read(), values)
        target = os.path.join(app.paths.config_dir, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        marker = f"config-{name}.sha256"
        current, rendered = _digest(target), read_own(app, marker)
        if current is not None and rendered is not None and current != rendered:
            _write(app, target + ".appdeb-new", text)
            notices.append(f"{target} was changed by hand and is kept; this release's version is in "
                           f"{target}.appdeb-new")
            continue
        _write(app, target, text)
        write_own(app, marker, hashlib.sha256(text.encode()).hexdigest())
    return notices
