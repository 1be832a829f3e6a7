"""The ownership boundary on a node: root's own state, and acting on the app's data as the app user.

The rule (docs/lifecycle.md): root never creates, follows, executes or writes a path inside a
directory the app user can write. appdeb's own state (marker, kept release, lock, staging, secret
copies) lives in root-owned directories checked here; the app's data is touched only by processes
running as the app user (`run_as_app`), or opened relative to a verified directory without
following links.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import stat
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from . import proc
from .app import AppPackage, LauncherError
from .proc import plain_env

_held: dict[str, int] = {}  # lock path -> nesting depth in this process


def on_node_as_root(app: AppPackage) -> bool:
    return os.geteuid() == 0 and not app.dev


def app_user(app: AppPackage) -> pwd.struct_passwd:
    return pwd.getpwnam(app.contract.user)


def ensure_root_dir(path: str, mode: int = 0o755) -> str:
    """Create (or check) a directory that only root can write; refuse one that is anything else."""
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.isdir(parent):
        ensure_root_dir(parent, 0o755)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or (os.geteuid() == 0 and st.st_uid != 0):
        raise LauncherError(f"{path} must be a directory owned by root; refusing to use it")
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
    return path


def own_dir(app: AppPackage) -> str:
    """appdeb's root-owned state directory of this instance (a dev checkout keeps it under .appdeb/dev)."""
    path = app.paths.own
    return ensure_root_dir(path, 0o755) if on_node_as_root(app) else _mkdirs(path)


def _mkdirs(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def read_own(app: AppPackage, name: str) -> str | None:
    """A small file of appdeb's own state, or None."""
    try:
        with open(os.path.join(own_dir(app), name), encoding="utf-8") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def write_own(app: AppPackage, name: str, text: str, mode: int = 0o644) -> None:
    """Replace a file of appdeb's own state atomically (the directory is root's: nothing to race)."""
    path = os.path.join(own_dir(app), name)
    fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".new", path)


@contextlib.contextmanager
def instance_lock(app: AppPackage, what: str = "") -> Iterator[None]:
    """One configure/backup/restore of an instance at a time; re-entrant within one process.

    An interrupted dpkg can leave its postinst running as an orphan: a `dpkg --configure -a`
    started meanwhile waits here for it instead of racing it.
    """
    path = os.path.join(own_dir(app), "lock")
    if _held.get(path):
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        _acquire(fd, app, what)
        _held[path] = 1
        try:
            yield
        finally:
            _held.pop(path, None)
    finally:
        os.close(fd)  # closing releases the lock


def _acquire(fd: int, app: AppPackage, what: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    print(f"{app.contract.package}: waiting for another configure, backup or restore of this instance to "
          f"finish{' (' + what + ')' if what else ''}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 3600
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise LauncherError("gave up waiting an hour for the instance lock") from None
            time.sleep(0.5)


def as_app_argv(app: AppPackage, argv: list[str]) -> list[str]:
    """argv run as the app user when we are root on a node."""
    return proc.as_user(app.contract.user if on_node_as_root(app) else None, argv)


def run_as_app(app: AppPackage, argv: list[str], *, stdin: IO[Any] | None = None,
               stdout: IO[Any] | int | None = None, what: str = "") -> None:
    """Run a tool on the app's data as the app user; a failure is one line with its error output."""
    try:  # never root's terminal (the door gives every program its own session), nor root's environment
        proc.run(as_app_argv(app, argv), stdin=stdin, stdout=stdout if stdout is not None else proc.QUIET,
                 env=plain_env() if on_node_as_root(app) else None, check=True, what=what)
    except proc.Failed as exc:
        raise LauncherError(str(exc)) from None


def app_output(app: AppPackage, argv: list[str]) -> str:
    """stdout of a tool run as the app user (e.g. du over the app's own tree)."""
    import tempfile

    with tempfile.TemporaryFile() as out:
        run_as_app(app, argv, stdout=out, what=argv[0])
        out.seek(0)
        return out.read().decode(errors="replace")


def ensure_app_dirs(app: AppPackage) -> None:
    """The app's own directories inside its state directory, made by the app user itself."""
    run_as_app(app, ["mkdir", "-p", "-m", "0750", app.paths.tmp], what=f"creating {app.paths.tmp}")


def new_staging(app: AppPackage) -> str:
    """An empty directory for one app command (its backup/restore), in a root-owned parent."""
    import tempfile

    parent = os.path.join(own_dir(app), "staging")
    if on_node_as_root(app):
        ensure_root_dir(parent, 0o711)
    else:
        os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(prefix="run-", dir=parent)
    if on_node_as_root(app):
        user = app_user(app)
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
        os.chmod(path, 0o700)
    return path


def remove_tree(path: str) -> None:
    """Delete a tree without following links (shutil.rmtree works on directory descriptors)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
