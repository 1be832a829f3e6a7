"""The processes behind a node: pid files, liveness, per-node cgroups, stopping, and the detached supervisor.

The supervisor (``python -m appdeb.node.processes _supervise NAME STATE``) runs in the node's own cgroup
``appdeb/NAME`` and restarts systemd-nspawn when it exits with 133 (a reboot inside the node).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.node.network import address_of, netns_path
from appdeb.runner import run, spawn

CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
STOP_TIMEOUT = 30.0
REBOOT_EXIT = 133  # systemd-nspawn's exit status when the container asked for a reboot


# --- processes ----------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, ppid) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """True for a live process; a zombie nobody reaped yet counts as dead."""
    st = proc_stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid(path: Path, pid: int) -> None:
    """Write atomically so a reader never sees an empty pid file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.rename(path)


def supervisor_pid(state: Path) -> int | None:
    """The supervisor's pid, checked against its command line so a recycled pid is not trusted."""
    pid = read_pid(state / "supervisor.pid")
    ok = pid is not None and alive(pid) and "_supervise" in cmdline(pid) and str(state) in cmdline(pid)
    return pid if ok else None


def nspawn_pid(name: str, state: Path) -> int | None:
    pid = read_pid(state / "nspawn.pid")
    ok = pid is not None and alive(pid) and f"--machine={name}" in cmdline(pid)
    return pid if ok else None


def find_pid1(nspawn: int | None) -> int | None:
    """The node's PID 1 is nspawn's child once it has exec'd systemd."""
    if nspawn is None:
        return None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st is not None and st[2] == nspawn and st[0] == "systemd" and st[1] != "Z":
                return int(entry.name)
    return None


def orphaned_pid1(name: str) -> int | None:
    """PID 1 of a node whose nspawn died (killed): still in our cgroup, pid 1 in its namespace."""
    for pid in cgroup_pids(name):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            nspid = next((ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), [])
            if len(nspid) > 1 and nspid[-1] == "1":
                return pid
    return None


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- cgroups ------------------------------------------------------------------------------------


def cgroups(name: str) -> list[Path]:
    """Our cgroup in each hierarchy nspawn cares about (named systemd v1 and/or unified v2)."""
    return [base / "appdeb" / name for base in CGROUP_ROOTS if (base / "cgroup.procs").exists()]


def enter_cgroup(name: str) -> None:
    """Each nspawn needs a cgroup of its own, else a second node fights the first over it."""
    for cg in cgroups(name):
        cg.mkdir(parents=True, exist_ok=True)
        (cg / "cgroup.procs").write_text(f"{os.getpid()}\n")


def cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for cg in cgroups(name):
        for dirpath, _dirs, _files in os.walk(cg):
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()}
    return {p for p in pids if alive(p)}


def remove_cgroups(name: str) -> None:
    for cg in cgroups(name):
        for dirpath, _dirs, _files in os.walk(cg, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


# --- stopping ----------------------------------------------------------------------------------


def unmount(point: str) -> None:
    """Retry briefly (the last nspawn process may still be exiting), detach lazily as a last resort."""
    if not wait_for(lambda: run(["umount", point], check=False).returncode == 0, 5.0):
        run(["umount", "--lazy", point], check=False)


def stop_processes(name: str, state: Path) -> None:
    """Orderly poweroff first (SIGRTMIN+3 to PID 1), then escalate so down never hangs."""
    with contextlib.suppress(OSError):
        (state / "stop").touch()  # tells the supervisor not to restart nspawn
    nspawn = nspawn_pid(name, state)
    supervisor = supervisor_pid(state)
    pids = {p for p in (nspawn, supervisor) if p is not None}

    def gone() -> bool:
        return not any(alive(p) for p in pids) and not cgroup_pids(name)

    pid1 = find_pid1(nspawn) or orphaned_pid1(name)
    if pid1 is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid1, signal.SIGRTMIN + 3)
    if wait_for(gone, STOP_TIMEOUT):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids | cgroup_pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if wait_for(gone, 10.0):
            return
    raise AppdebError(f"node {name!r}: processes survive SIGKILL: {sorted(cgroup_pids(name))}")


# --- supervisor (runs detached, as `python -m appdeb.node.processes _supervise NAME STATE`) ----


def nspawn_argv(name: str, state: Path) -> list[str]:
    """The node's nspawn command: the host's network, or the namespace network.attach built for it.

    No node gets CAP_MKNOD: nspawn's device policy refuses to open a host disk, but a node that made
    a device node for it could mount it, and the host's kernel hands out the file system it already
    has mounted (the host's files, writable). A private node gets no CAP_NET_RAW: with a packet socket
    it could hand the bridge frames for any of the host's addresses, which the host delivers locally,
    past the routes that keep it on the /24.
    """
    private = address_of(state) is not None
    network = [f"--network-namespace-path={netns_path(name)}"] if private else []
    drop = "CAP_MKNOD,CAP_NET_RAW" if private else "CAP_MKNOD"
    return ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit", "--console=read-only",
            f"--machine={name}", f"--drop-capability={drop}", *network, "-D", str(state / "merged"),
            "--link-journal=no", "systemd.show_status=1"]


def start_supervisor(name: str, state: Path) -> None:
    """Start the detached supervisor; the launcher exits once the pid file is written."""
    src = str(Path(__file__).resolve().parents[2])
    pythonpath = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    with open(state / "supervisor.log", "ab") as log:
        launcher = spawn([sys.executable, "-m", "appdeb.node.processes", "_supervise", name, str(state)],
                         cwd=Path("/"), env={"PYTHONPATH": pythonpath}, start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if launcher.wait(timeout=60) != 0:
        raise AppdebError(f"node supervisor failed to start:\n{tail(state / 'supervisor.log')}")


def tail(path: Path, lines: int = 30) -> str:
    """The end of a log, for error messages."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def supervise(name: str, state: Path) -> None:
    """Run nspawn until it exits for a reason other than a reboot request, or we are told to stop."""
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        (state / "stop").touch()
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    enter_cgroup(name)
    with open(state / "console.log", "ab", buffering=0) as console:
        while not (state / "stop").exists():
            child = spawn(nspawn_argv(name, state), stdin=subprocess.DEVNULL, stdout=console,
                          stderr=subprocess.STDOUT)
            write_pid(state / "nspawn.pid", child.pid)
            rc = child.wait()
            console.write(f"\n[appdeb supervisor] systemd-nspawn exited with {rc}\n".encode())
            if rc != REBOOT_EXIT:
                break
    for pidfile in ("nspawn.pid", "supervisor.pid"):
        (state / pidfile).unlink(missing_ok=True)


def launch_supervisor(name: str, state: Path) -> None:
    """Fork so the supervisor is nobody's child to reap; the parent records its pid and exits."""
    pid = os.fork()
    if pid:
        write_pid(state / "supervisor.pid", pid)
        return
    code = 0
    try:
        supervise(name, state)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "_supervise":
        launch_supervisor(argv[1], Path(argv[2]))
        return 0
    print("usage: python -m appdeb.node.processes _supervise NAME STATE_DIR  (internal helper)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
