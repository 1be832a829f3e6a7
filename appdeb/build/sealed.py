"""sealed: `commands.build` cannot change appdeb's cache, whose vendored trees later builds reuse.

The build step runs the app's own code with a cached vendored tree on its PYTHONPATH (the tree is
not copied: a warm build of a large app would pay for ~15,000 files). A step that wrote into it (byte
code, a patched module, a deleted file) would ship in every later package of the same requirements.
As root (CI, a build host) the step runs in a private mount namespace where the cache directory is
bound read-only and the step holds no capability (so it cannot bind it writable again): every write
fails with EROFS and the cache stays byte for byte. Without root (or
without namespaces) the tree's stat — inode, size, mode and ctime, which no process can set back —
is taken before and compared after, over names only (no file is read); a tree that changed is dropped
from the cache, so the next build makes it afresh, and the build fails naming what changed.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.runner import run, which

# bind the directory onto itself, make that bind read-only, then run the command (paths are arguments)
# without any capability: still uid 0, but unable to mount it writable again or to reach the host's
# view through /proc/1/root
READ_ONLY = ('mount --bind -- "$1" "$1" && mount -o remount,bind,ro -- "$1" && shift && '
             'exec setpriv --bounding-set=-all --inh-caps=-all -- "$@"')
# the same, where the libraries are first shown at a mount point of their own with their byte code laid
# over them (an overlay of two read-only layers: the byte code's __pycache__ directories, then the tree),
# or, where the overlay cannot be made, the tree alone bound read-only there
WITH_BYTE_CODE = ('{ mount -t overlay overlay -o "ro,lowerdir=$2:$3" -- "$4" 2>/dev/null || '
                  '{ mount --bind -- "$3" "$4" && mount -o remount,bind,ro -- "$4"; }; } && '
                  'mount --bind -- "$1" "$1" && mount -o remount,bind,ro -- "$1" && shift 4 && '
                  'exec setpriv --bounding-set=-all --inh-caps=-all -- "$@"')
Snapshot = dict[str, tuple[int, int, int, int]]
SHOWN = 5  # changed paths named in the error


@functools.cache
def can_seal() -> bool:
    """Can this process give a command a private, read-only view of a directory (root, mount namespaces)?"""
    if os.geteuid() != 0 or which("unshare") is None:
        return False
    return run(["unshare", "--mount", "--propagation", "private", "--", "true"], check=False).returncode == 0


def sealed_argv(argv: list[str], read_only: Path) -> list[str]:
    """argv run where READ_ONLY is bound read-only (in a mount namespace of its own: nobody else sees it)."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", READ_ONLY, "sh", str(read_only),
            *argv]


def seal(argv: list[str], cache: Path, work: Path) -> list[str] | None:
    """argv with the cache read-only to it, or None where that cannot be (no root, no namespaces, or a
    work directory inside the cache, which the command must write) or need not (no cache)."""
    if not can_seal() or not cache.is_dir() or work.resolve().is_relative_to(cache.resolve()):
        return None  # (no cache yet: nothing to keep)
    return sealed_argv(argv, cache)


def seal_with_byte_code(argv: list[str], cache: Path, work: Path, byte_code: Path, lib: Path,
                        where: Path) -> list[str] | None:
    """seal(), with lib shown at where (an empty directory) with its byte code laid over it; None where that
    cannot be (seal() cannot, or a path overlayfs would misread: it splits its options at , : and \\)."""
    if seal(argv, cache, work) is None or any(c in str(p) for p in (byte_code, lib) for c in ",:\\"):
        return None
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", WITH_BYTE_CODE, "sh", str(cache),
            str(byte_code), str(lib), str(where), *argv]


def tree_state(root: Path) -> Snapshot:
    """Every entry's (inode, size, mode, ctime) by path; a write, delete, rename or chmod changes one."""
    st = os.lstat(root)
    out: Snapshot = {str(root): (st.st_ino, st.st_size, st.st_mode, st.st_ctime_ns)}
    for dirpath, dirnames, filenames in os.walk(root):
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
