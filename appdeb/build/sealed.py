"""sealed: `commands.build` cannot change appdeb's cache, whose vendored trees later builds reuse.

The build step runs the app's own code with a cached vendored tree on its PYTHONPATH (the tree is
not copied: a warm build of a large app would pay for ~15,000 files). A step that wrote into it (byte
code, a patched module, a deleted file) would ship in every later package of the same requirements.
As root (CI, a build host) the step runs confined (appdeb.build.confine): as a uid of its own, with
the cache bound read-only in its mount namespace, so every write fails with EROFS and the cache stays
byte for byte. Without root (or without namespaces) the tree's stat — inode, size, mode and ctime,
which no process can set back — is taken before and compared after, over names only (no file is
read); a tree that changed is dropped from the cache, so the next build makes it afresh, and the build
fails naming what changed.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.files import walk
from appdeb.runner import run, which

Snapshot = dict[str, tuple[int, int, int, int]]
SHOWN = 5  # changed paths named in the error


@functools.cache
def can_seal() -> bool:
    """Can this process give a command a private, read-only view of a directory (root, mount namespaces)?"""
    if os.geteuid() != 0 or which("unshare") is None or which("setpriv") is None:
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "--", "true"]
    return run(probe, check=False).returncode == 0


def sealable(cache: Path, work: Path) -> Path | None:
    """The cache, where it can be shown read-only to the step (appdeb.build.confine), or None where it cannot
    (a work directory inside the cache, which the step must write) or need not (no cache yet: nothing to keep)."""
    if not cache.is_dir() or work.resolve().is_relative_to(cache.resolve()):
        return None
    return cache


def tree_state(root: Path) -> Snapshot:
    """Every entry's (inode, size, mode, ctime) by path; a write, delete, rename or chmod changes one."""
    st = os.lstat(root)
    out: Snapshot = {str(root): (st.st_ino, st.st_size, st.st_mode, st.st_ctime_ns)}
    for dirpath, dirnames, filenames in walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[path] = (st.st_ino, st.st_size, st.st_mode, st.st_ctime_ns)
    return out


def changes(root: Path, before: Snapshot) -> list[str]:
    """Paths under root (relative) that were changed, added or removed since `before`."""
    after = tree_state(root)
    return sorted(os.path.relpath(p, root) for p in set(before) | set(after) if before.get(p) != after.get(p))


def evict(entry: Path) -> None:
    """Take a cache entry out of use at once (a rename), then delete it."""
    aside = entry.with_name(f".evicted-{entry.name}-{os.getpid()}")
    os.rename(entry, aside)
    shutil.rmtree(aside, ignore_errors=True)


def described(changed: list[str]) -> str:
    more = f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
    return ", ".join(changed[:SHOWN]) + more


def check_owner(cache: Path) -> None:
    """As root, refuse a cache another user can write: what they put there would ship in root's builds.

    Every existing directory from the cache up to / must be root's and not writable by group or
    others (a sticky one, like /tmp, protects its entries: they are checked on their own)."""
    if os.geteuid() != 0:
        return
    path = Path(os.path.realpath(cache))
    while True:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_uid != 0 or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX)):
            raise AppdebError(f"{path}: appdeb's cache, or a directory above it, can be written by another user "
                              f"than root (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}); a build as "
                              "root would ship what they put there: point APPDEB_CACHE at a directory only root "
                              "can write")
        if path == path.parent:
            return
        path = path.parent
