"""Small facts and file operations the build, the repository and the node harness share (this machine's side).

One place each for: a file's sha256, replacing a file whole, an exclusive lock held for a block
(waiting with a message when another process has it), and this machine's Debian architecture.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import platform
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
