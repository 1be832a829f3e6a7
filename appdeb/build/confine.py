"""confine: as root, the app's own code at build time (commands.build, the web app's import) runs as a uid of its own.

Without this the step ran as uid 0 without capabilities, which still writes every file root owns: the
build's temporary files, /etc, /root, other builds' outputs. Now it runs as an unprivileged uid that owns
nothing on the machine (uid() below), in a mount namespace of its own where:
- its box (the app's copy where it writes, a HOME and TMPDIR) is the only place it can write; root
  creates the box and hands it over, and takes it back afterwards without following links (reclaim());
- what it must read (the vendored libraries, appdeb's cache read-only, the interpreter's prefix) is
  shown at its own path, and every directory above those that only root may enter (/root, the build's
  own 0700 scratch directory) is covered by an empty tmpfs: the rest of what is under them is not there;
- /tmp, /var/tmp, /dev/shm and /run/lock are empty and its own (they vanish with it); every other mount
  is read-only to it (a directory anyone may write elsewhere is not its); /proc shows its own processes;
- it is the first process of a PID namespace of its own, so when it ends every process it started ends.
Then setpriv drops to the uid: no groups, no capabilities (bounding set empty), no new privileges.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import random
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.files import walk

# systemd's UIDS-GIDS documents 65536..524287 as unused by any distribution or by systemd itself; the
# ranges below (container user namespaces from 524288, DynamicUser= at 61184..65519) are others'.
UID_RANGE = (65536, 524288)
UID_LOCKS = "/run/appdeb/build-uids"  # root's 0700: a file per uid that a build runs its step as, locked meanwhile
FRESH = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # world-writable places the step gets empty, private copies of

# Runs as root inside the new namespaces (stdlib only, -I -S): mounts, then exec setpriv to drop to the uid.
HELPER = r"""
import ctypes, json, os, re, sys
spec, argv = json.loads(sys.argv[1]), sys.argv[2:]
os.umask(0o022)  # the directories made on the way to a shown path are for the uid to pass through
libc = ctypes.CDLL(None, use_errno=True)
RDONLY, NOSUID, NODEV, REMOUNT, BIND, REC = 1, 2, 4, 32, 4096, 16384
def mount(src, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    if libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        raise SystemExit("appdeb: cannot mount " + target + ": " + os.strerror(ctypes.get_errno()))
def read_only(target):
    mount(None, target, None, REMOUNT | BIND | RDONLY | NOSUID | NODEV)
if spec["overlay"]:
    code, lib, where = spec["overlay"]
    os.mkdir(where + ".top")  # an empty top layer: the merged root takes its mode (kept byte code's is 0700)
    os.chmod(where + ".top", 0o755)
    if libc.mount(b"overlay", where.encode(), b"overlay", ctypes.c_ulong(RDONLY),
                  ("lowerdir=" + where + ".top:" + code + ":" + lib).encode()) != 0:
        mount(lib, where, None, BIND)
        read_only(where)
held = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path, _ in spec["shown"]}
for path in spec["fresh"]:
    if os.path.isdir(path):
        mount("tmpfs", path, "tmpfs", NOSUID | NODEV, "mode=1777,size=20%,nr_inodes=1m")
for path, writable in spec["steps"]:  # parents first
    if writable is None:  # a directory to cover, if it is still there to see
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", NOSUID | NODEV, "mode=0755,size=64k")
        continue
    os.makedirs(path, exist_ok=True)
    mount("/proc/self/fd/%d" % held[path], path, None, BIND | REC)
    if not writable:
        read_only(path)
for fd in held.values():
    os.close(fd)
# every other mount read-only too: a directory anyone may write (a node image's /var/tmp, say) is not its
KEEP = {"nosuid": NOSUID, "nodev": NODEV, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}
writable = [p for p, w in spec["shown"] if w] + spec["fresh"]
for line in open("/proc/self/mountinfo").read().splitlines():
    fields = line.split()
    target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # (\040: a space)
    if target in writable:  # exactly: what is mounted below a writable place (a cover, a shown tree) is not
        continue
    flags = sum(KEEP.get(o, 0) for o in fields[5].split(","))
    libc.mount(None, target.encode(), None, ctypes.c_ulong(REMOUNT | BIND | RDONLY | flags), None)
os.chdir(spec["cwd"])
uid = str(spec["uid"])
os.execvp("setpriv", ["setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--inh-caps=-all",
                      "--bounding-set=-all", "--no-new-privs", "--pdeathsig", "KILL", "--", *argv])
"""


@contextlib.contextmanager
def uid() -> Iterator[int]:
    """A uid (gid the same number) for one build's step, held while the block runs: free, and this build's alone.

    Chosen per build at random in UID_RANGE, and taken only if no passwd or group entry names it, no
    subordinate range (/etc/subuid, /etc/subgid) holds it, no process runs as it and no other build
    holds its lock (which closes the gap between that check and the step's start; held until the
    block ends, however it ends): so it owns nothing here and nothing else runs as it, and two builds
    side by side get different uids (a fixed uid would let one build's step write the other's box,
    and one build's reap() kill the other's step). A file of that uid could still lie somewhere (an
    archive unpacked with numeric owners): unlikely in so wide a range, and every mount but its box
    is read-only to the step anyway.
    """
    locks = _lock_dir()
    taken = _subordinate_ids()
    running = _running_uids()
    for _ in range(1000):
        n = random.randrange(*UID_RANGE)
        if n in running or any(lo <= n < hi for lo, hi in taken) or _has_entry(n):
            continue
        lock = _claim(os.path.join(locks, str(n)))
        if lock is None:
            continue
        try:
            yield n
        finally:
            os.unlink(os.path.join(locks, str(n)))  # while held: a build that opened it before finds it gone
            os.close(lock)
        return
    raise AppdebError(f"no free uid in {UID_RANGE[0]}..{UID_RANGE[1] - 1} to run the build step as")


def _lock_dir() -> str:
    """UID_LOCKS (made if missing), refused unless it and its parent are root's, that no one else may write."""
    for path, mode in ((os.path.dirname(UID_LOCKS), 0o755), (UID_LOCKS, 0o700)):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, mode)
            os.chmod(path, mode)  # whatever root's umask
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise AppdebError(f"{path} must be a directory of root's that no one else may write; it is not")
    return UID_LOCKS


def _claim(path: str) -> int | None:
    """The uid's lock file, open and locked (flock, not waiting); None if another build holds it (or held it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(fd)
    return None


def _has_entry(n: int) -> bool:
    try:
        pwd.getpwuid(n)
        return True
    except KeyError:
        pass
    try:
        grp.getgrgid(n)
        return True
    except KeyError:
        return False


def _subordinate_ids() -> list[tuple[int, int]]:
    ranges = []
    for name in ("/etc/subuid", "/etc/subgid"):
        try:
            lines = Path(name).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                ranges.append((int(parts[1]), int(parts[1]) + int(parts[2])))
    return ranges


def processes_of(n: int) -> list[int]:
    """The pids of every process that runs as uid n (real, effective, saved or filesystem)."""
    return [pid for pid, uids in _process_uids() if n in uids]


def _running_uids() -> set[int]:
    return {u for _, uids in _process_uids() for u in uids}


def _process_uids() -> list[tuple[int, set[int]]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue  # gone meanwhile
        line = next((li for li in status.splitlines() if li.startswith("Uid:")), "")
        out.append((int(entry), {int(u) for u in line.split()[1:]}))
    return out


def hidden_above(paths: list[Path]) -> list[str]:
    """The directories above `paths` that others may not enter: covered in the step's namespace (after the
    shown paths above them are in place), so of what is under them only the paths it needs are there."""
    hide: set[str] = set()
    for path in paths:
        for parent in Path(os.path.realpath(path)).parents:
            if parent != Path("/") and not os.stat(parent).st_mode & stat.S_IXOTH:
                hide.add(str(parent))
    return sorted(hide)


def argv_for(argv: list[str], *, n: int, cwd: Path, box: Path, read: list[Path], cache: Path | None,
             overlay: tuple[Path, Path, Path] | None = None, net: bool = False) -> list[str]:
    """argv run as uid n, confined as the module says: box writable, `read` and the cache read-only."""
    python = [Path(argv[0]).parent.parent, Path(os.path.realpath(argv[0])).parent.parent]  # a venv, its prefix
    shown = {os.path.realpath(p): False for p in [*python, *read, *([cache] if cache else [])]}
    shown.pop("/", None)
    shown[os.path.realpath(box)] = True
    steps: list[tuple[str, bool | None]] = [*shown.items(), *((h, None) for h in hidden_above([*map(Path, shown)]))]
    spec = {"uid": n, "cwd": os.path.realpath(cwd), "shown": list(shown.items()), "fresh": list(FRESH),
            "steps": sorted(steps, key=lambda step: (step[0].count("/"), step[0])),  # parents first
            "overlay": [str(p) for p in overlay] if overlay else None}
    namespaces = ["--mount", "--propagation", "private", "--ipc", "--pid", "--mount-proc", "--kill-child", "--fork"]
    return ["unshare", *namespaces, *(["--net"] if net else []), "--", sys.executable, "-I", "-S", "-c", HELPER,
            json.dumps(spec), *argv]


def hand_over(n: int, box: Path, *owned: Path) -> None:
    """Make box root's, which only root and gid n may enter (0750), and hand `owned` (inside it, made by root)
    to uid n, links not followed; the rest of the box (its runtime, the probe) it only reads."""
    os.chown(box, 0, n)
    box.chmod(0o750)
    for path in owned:
        path.mkdir(exist_ok=True)
        _chown_tree(path, n, n, expect=None)
    for dirpath, dirnames, filenames in walk(box):  # readable whatever root's umask (the box keeps others out)
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in owned]
        for name in (*dirnames, *filenames):
            st = os.lstat(entry := os.path.join(dirpath, name))
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(entry, st.st_mode | (0o055 if st.st_mode & 0o100 else 0o044))


def reclaim(n: int, *trees: Path) -> None:
    """Take trees back from uid n once nothing runs as it: every entry root's again, no link followed.

    An entry there that uid n does not own it cannot have made (a hard link to someone's file): refused,
    before any entry is changed, rather than taken over."""
    reap(n)
    for tree in trees:
        if os.path.lexists(tree):
            _chown_tree(tree, 0, 0, expect=n)


def reap(n: int) -> None:
    """Kill whatever still runs as uid n, and wait until none does (a kill is delivered, not done, when it
    returns). None should be (the step's PID namespace ends with it): be sure."""
    for _ in range(100):
        pids = processes_of(n)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    raise AppdebError(f"processes of the build step's uid {n} would not end: {processes_of(n)[:5]}")


def _chown_tree(top: Path, uid: int, gid: int, expect: int | None) -> None:
    st = os.lstat(top)
    if not stat.S_ISDIR(st.st_mode):
        raise AppdebError(f"{top}: the build step replaced its directory (with {stat.filemode(st.st_mode)})")
    try:
        entries = _entries(str(top))
    except OSError as exc:
        raise AppdebError(f"commands.build left {top} unreadable to take back: {exc.strerror}: "
                          f"{os.path.relpath(exc.filename or str(top), top)[:200]}") from None
    if expect is not None:
        strange = [(p, u) for p, u in entries if u != expect]
        if strange:
            raise AppdebError(f"commands.build left {os.path.relpath(strange[0][0], top)} in its output, a file "
                              f"it does not own (uid {strange[0][1]}): a hard link to another file? It was not "
                              "taken")
    for path, _ in entries:
        os.chown(path, uid, gid, follow_symlinks=False)


def _entries(top: str) -> list[tuple[str, int]]:
    """Every entry of the tree with its owner, the top included: iterative (any depth), symlinks listed
    and not entered, an error (a name too long, a directory it made unreadable) raised, not skipped."""
    entries = [(top, os.lstat(top).st_uid)]
    stack = [top]
    while stack:
        with os.scandir(stack.pop()) as listing:
            for entry in listing:
                entries.append((entry.path, entry.stat(follow_symlinks=False).st_uid))
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return entries
