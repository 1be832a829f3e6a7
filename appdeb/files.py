"""Small facts and file operations the build, the repository and the node harness share (this machine's side).

One place each for: a file's sha256, replacing a file whole, an exclusive lock held for a block
(waiting with a message when another process has it), a directory of the caller's own, and this
machine's Debian architecture.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

# Debian's name for a CPU (dpkg --print-architecture) from the kernel's (uname -m)
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386", "ppc64le": "ppc64el",
               "s390x": "s390x", "riscv64": "riscv64"}


def debian_arch() -> str:
    """This machine's architecture as Debian names it (amd64, arm64 …), without running dpkg."""
    machine = platform.machine()
    return DEBIAN_ARCH.get(machine, machine)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def own_directory(path: Path, mode: int) -> bool:
    """Make path (mode) if absent; True when it is then a real directory of the caller's own, no link, and,
    for a private mode (no group or other bits), still private. appdeb writes, empties or keeps links in
    such a directory: one planted there (a link, another user's) would lead those writes elsewhere."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=mode)
    st = os.lstat(path)
    private = not mode & 0o077
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not (private and st.st_mode & 0o077)


def write_atomic(path: Path, text: str) -> None:
    """Replace a state file whole, so a crash never leaves it half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@contextlib.contextmanager
def locked(path: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the block; `waiting` is called once if another process has it."""
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _dir_below(root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of root/parts…, made 0755 where missing, never through a symbolic link.

    The root may be another system's (a node's file system seen from the host, whose root user is
    not this one): a link planted there must not lead a write of ours to the host's own files.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_below(root: Path, path: str, text: str, mode: int = 0o644) -> Path:
    """Write root/path (an absolute path inside root) without following any link on the way."""
    rel = Path(path.lstrip("/"))
    fd = _dir_below(root, rel.parts[:-1])
    try:
        out = os.open(rel.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode, dir_fd=fd)
        with os.fdopen(out, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
    finally:
        os.close(fd)
    return root / rel


def link_below(root: Path, path: str, target: str) -> Path:
    """Make root/path a symbolic link to target (replacing what is there), without following links."""
    rel = Path(path.lstrip("/"))
    fd = _dir_below(root, rel.parts[:-1])
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(rel.name, dir_fd=fd)
        os.symlink(target, rel.name, dir_fd=fd)
    finally:
        os.close(fd)
    return root / rel


def walk(top: str | os.PathLike[str], topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk without its recursion: Python 3.11's recurses once per level, so a checkout (or a wheel)
    nested about a thousand directories deep ended a build in a RecursionError. Same triples, same order,
    same rules: links to directories are listed among the directories and not entered, unreadable
    directories are skipped, and (top-down) the caller may prune `dirnames` in place."""
    stack: list[tuple[str, bool]] = [(os.fspath(top), False)]
    pending: dict[str, tuple[str, list[str], list[str]]] = {}
    while stack:
        path, visited = stack.pop()
        if visited:  # bottom-up: its subdirectories are done
            yield pending.pop(path)
            continue
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            continue
        dirnames: list[str] = []
        filenames: list[str] = []
        enter: set[str] = set()
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirnames if is_dir else filenames).append(entry.name)
            if is_dir and not entry.is_symlink():
                enter.add(entry.name)
        if topdown:
            yield path, dirnames, filenames
        else:
            pending[path] = (path, dirnames, filenames)
            stack.append((path, True))
        stack.extend((os.path.join(path, d), False) for d in reversed(dirnames) if d in enter)

