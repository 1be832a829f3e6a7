"""How the harness reaches into a node: commands under no more than the node's own limits, data as a stream.

`nsenter` enters a node's namespaces but keeps the host root's powers: the full capability set, no
seccomp filter and the host's cgroup, so nspawn's device policy does not apply. A node's binaries
(`env`, apt-get, a package's postinst, whatever the node's root put in their place) would run with
them, and could mknod and mount the host's disk. So before the host's nsenter is exec'd, the child
(see `limits`):

* moves into PID 1's cgroups (the node's device policy then applies: the host's block devices
  cannot be opened),
* drops from its capability bounding set every capability PID 1's bounding set lacks (after the exec
  nsenter and everything it starts hold at most the node's capabilities; nsenter's own CAP_SYS_ADMIN
  and CAP_SYS_CHROOT are among the node's),
* loads a seccomp filter that refuses the calls nspawn's filter refuses although the node's
  capabilities would allow them (open_by_handle_at reaches host files by handle, kexec replaces the
  host's kernel, swapon, bpf, perf and the kernel keyrings are not the node's own).

Everything is read and prepared in the parent, so a failure is a clear error; the child only writes
to descriptors already open and makes two kinds of prctl call.

Files go in the same way (`tar_of`, unpacked by the node's tar): the host never walks a node's paths.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import io
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.node.image import CLEAN_ENV
from appdeb.runner import run

DENIED_CALLS = ("open_by_handle_at", "kexec_load", "kexec_file_load", "init_module", "finit_module",
                "delete_module", "swapon", "swapoff", "bpf", "perf_event_open", "add_key", "keyctl",
                "request_key", "acct", "iopl", "ioperm", "syslog", "lookup_dcookie")
COMPAT_ARCHES = (b"x86", b"x32", b"arm")  # a 32-bit call must meet the same filter, not pass around it
PR_CAPBSET_DROP, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 24, 22, 2
SCMP_ACT_ALLOW, SCMP_ACT_ERRNO = 0x7FFF0000, 0x00050000


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def run_node(pid1: int, argv: Sequence[str], input: str | bytes | None = None, check: bool = False,
             timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv in every namespace of the node whose PID 1 is pid1, with a clean environment (as a
    root login would) and under that node's limits."""
    env = [f"{k}={v}" for k, v in CLEAN_ENV.items()]
    with limits(pid1) as preexec:
        return run(["nsenter", "-t", str(pid1), "-a", "env", "-i", *env, *argv], input=input, check=check,
                   timeout=timeout, preexec=preexec)


def tar_of(src: Path) -> bytes:
    """src (a file or a tree, links kept as links) as an uncompressed tar owned by root; a file is 0644."""
    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if info.isfile() and info.name == src.name:
            info.mode = 0o644
        return info

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(src, arcname=src.name, filter=owned_by_root)
    return data.getvalue()


@contextlib.contextmanager
def limits(pid1: int) -> Iterator[Callable[[], None]]:
    """A preexec function that puts the child under node PID1's limits (for runner.run's preexec)."""
    drops = _caps_to_drop(pid1)
    program = ctypes.create_string_buffer(_filter_program())
    fprog = _Fprog(len(program.raw) // 8, ctypes.addressof(program))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]  # a pointer must not shrink to an int
    fds: list[int] = []
    try:
        for procs in _cgroup_procs(pid1):
            fds.append(os.open(procs, os.O_WRONLY | os.O_CLOEXEC))

        def enter() -> None:
            for fd in fds:
                os.write(fd, b"0")  # "0": the writing process itself
            for cap in drops:
                if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), f"cannot drop capability {cap}")
            if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "cannot load the seccomp filter")

        yield enter
    except OSError as exc:
        raise AppdebError(f"cannot confine a command to node PID 1 {pid1}: {exc}") from None
    finally:
        for fd in fds:
            os.close(fd)


def _caps_to_drop(pid1: int) -> list[int]:
    """Every capability the node's PID 1 cannot have (its bounding set as the host reads it)."""
    try:
        status = Path(f"/proc/{pid1}/status").read_text()
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError) as exc:
        raise AppdebError(f"node PID 1 {pid1} is gone or unreadable: {exc}") from None
    bounding = next((int(ln.split()[1], 16) for ln in status.splitlines() if ln.startswith("CapBnd:")), None)
    if bounding is None:
        raise AppdebError(f"/proc/{pid1}/status has no CapBnd line")
    return [cap for cap in range(last + 1) if not bounding >> cap & 1]


def _cgroup_procs(pid1: int) -> list[Path]:
    """The cgroup.procs files of PID 1's cgroups, in every hierarchy where ours differs from it."""
    mine, theirs = _cgroups("self"), _cgroups(str(pid1))
    mounts = _cgroup_mounts()
    files = []
    for key, path in theirs.items():
        if mine.get(key) == path:
            continue
        wanted = set(key.split(",")) if key else {""}
        where = next(((point, root) for opts, point, root in mounts if wanted <= opts), None)
        relative = os.path.relpath(path, where[1]) if where else ".."
        if ".." in path.split("/") or where is None or relative == ".." or relative.startswith("../"):
            raise AppdebError(f"node PID 1 {pid1}: cannot place a command in its cgroup {key}:{path}")
        files.append(Path(where[0], relative, "cgroup.procs"))
    return files


def _cgroups(pid: str) -> dict[str, str]:
    """hierarchy (its controllers; "" for the unified one) -> cgroup path, from /proc/PID/cgroup."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError as exc:
        raise AppdebError(f"cannot read the cgroups of process {pid}: {exc}") from None
    return {fields[1]: fields[2] for fields in (ln.split(":", 2) for ln in lines) if len(fields) == 3}


def _cgroup_mounts() -> list[tuple[set[str], str, str]]:
    """(mount options, mount point, root within the hierarchy) of our cgroup mounts; {""} for cgroup2."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, (fstype, _source, options) = before.split(), after.split()[:3]
        root, point = (f.replace("\\040", " ") for f in fields[3:5])
        if fstype in ("cgroup", "cgroup2"):
            found.append(({""} if fstype == "cgroup2" else set(options.split(",")), point, root))
    return found


@functools.cache
def _filter_program() -> bytes:
    """The seccomp program (struct sock_filter[]) that refuses DENIED_CALLS with EPERM, built by libseccomp
    once per process (the same bytes for every node and command)."""
    name = ctypes.util.find_library("seccomp")
    if name is None:
        raise AppdebError("libseccomp is not installed: it confines the commands run in nodes")
    lib = ctypes.CDLL(name)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise AppdebError("libseccomp: seccomp_init failed")
    try:
        for arch in COMPAT_ARCHES:
            token = lib.seccomp_arch_resolve_name(arch)
            if token:
                lib.seccomp_arch_add(ctx, token)  # -EEXIST for the native arch: fine
        for call in DENIED_CALLS:
            number = lib.seccomp_syscall_resolve_name(call.encode())
            if number >= 0 and lib.seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO | errno.EPERM, number, 0, None) != 0:
                raise AppdebError(f"libseccomp: cannot add a rule for {call}")
        read, write = os.pipe()
        try:
            if lib.seccomp_export_bpf(ctx, write) != 0:
                raise AppdebError("libseccomp: cannot export the filter")
            os.close(write)
            write = -1
            with os.fdopen(read, "rb", closefd=False) as pipe:
                return pipe.read()
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)
    finally:
        lib.seccomp_release(ctx)
