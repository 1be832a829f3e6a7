"""Local throw-away Debian nodes: systemd-nspawn containers booted on an overlay of a golden image.

A node lets end-to-end tests (and developers) install the packages appdeb builds on a real,
booted Debian without a VM. Each node lives in ``$APPDEB_NODE_DIR/NAME`` (default
``/var/tmp/appdeb-nodes/NAME``): the overlay's upper, work and merged directories, console.log and pid files.

Process layout (appdeb/node/processes.py): a detached supervisor runs in the node's own cgroup and
restarts systemd-nspawn when the node reboots. By default (network "host") the node shares the
host's network, so 127.0.0.1 inside is 127.0.0.1 outside. A "private" node gets a namespace and
an address of its own (appdeb/node/network.py) and sshd with harness keys (appdeb/node/ssh.py); host
tools reach it with `Node.address`, `ssh_options()` (or `ssh_key_path()`, `known_hosts_path()`),
`inventory_text()` for Ansible, and serve it things on `host_address()`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from appdeb.errors import AppdebError, CommandError
from appdeb.node import confine, ssh
from appdeb.node import network as private_net
from appdeb.node.image import DEFAULT_SUITE, check_suite, ensure_image, mounts_under
from appdeb.node.processes import (
    cgroup_pids,
    find_pid1,
    nspawn_pid,
    remove_cgroups,
    start_supervisor,
    stop_processes,
    supervisor_pid,
    tail,
    unmount,
)
from appdeb.node.state import NAME_RE, nodes_dir, state_dir
from appdeb.runner import run

__all__ = [
    "Node", "NodeInfo", "copy_in", "down", "ensure_image", "get", "host_address", "install", "inventory_text",
    "known_hosts_path", "list_nodes", "reboot", "run_in", "ssh_key_path", "ssh_options", "up",
]

BOOT_TIMEOUT = 120.0
NETWORKS = ("host", "private")
# Host-side copies into these are invisible in the node: nspawn mounts fresh file systems there.
HIDDEN_IN_NODE = ("/tmp", "/run", "/dev", "/proc", "/sys")


@dataclass(frozen=True)
class Node:
    """A booted node: name, root as seen from the host, PID 1 (host pid), private address (None: host network)."""

    name: str
    root: Path
    pid1: int
    address: str | None = None


@dataclass(frozen=True)
class NodeInfo:
    """One row of `list_nodes`; state is "running", "starting" or "stopped" (leftover, needs down)."""

    name: str
    state: str
    pid1: int | None
    root: Path
    network: str = "host"
    address: str | None = None


# --- lifecycle ----------------------------------------------------------------------------------


def up(name: str, progress: Callable[[str], None] | None = None, network: str = "host",
       suite: str = DEFAULT_SUITE) -> Node:
    """Boot a node; return once systemd is running. network: "host" (default) or "private" (see above);
    suite: the Debian release it runs (appdeb/node/image.py SUITES), each from its own cached image."""
    if network not in NETWORKS:
        raise AppdebError(f"unknown node network {network!r}: use one of {', '.join(NETWORKS)}")
    state = state_dir(name)
    if cgroup_pids(name):
        raise AppdebError(f"a node named {name!r} is already running (cgroup appdeb/{name} is busy)")
    golden = ensure_image(progress, check_suite(suite))
    nodes_dir().mkdir(parents=True, exist_ok=True)
    try:
        state.mkdir()
    except FileExistsError:
        raise AppdebError(f"node {name!r} already exists ({state}); run `appdeb node down {name}`") from None
    try:
        _prepare_root(name, state, golden)
        if network == "private":
            _attach_private(name, state)
        start_supervisor(name, state)
        return _wait_ready(name, state, BOOT_TIMEOUT)
    except BaseException:
        with contextlib.suppress(Exception):
            _teardown(name, state)
        raise


def _prepare_root(name: str, state: Path, golden: Path) -> None:
    """Mount the copy-on-write root and give it its own identity (machine-id, hostname)."""
    upper, work, merged = (state / d for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    if any(c in f"{golden}{state}" for c in ",:"):
        raise AppdebError(f"overlayfs cannot use paths containing ',' or ':': {golden}, {state}")
    run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={golden},upperdir={upper},workdir={work}",
         merged])
    etc = merged / "etc"
    (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")  # empty would trigger first-boot setup
    (etc / "hostname").write_text(name + "\n")
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost\n")


def _attach_private(name: str, state: Path) -> None:
    """Build the node's network and ssh identity before it boots (both undone by _teardown)."""
    with private_net.lock(nodes_dir()):
        address = private_net.attach(name, state, nodes_dir())
        ssh.prepare_node(nodes_dir(), name, state, state / "merged")
        ssh.write_known_hosts(nodes_dir(), private_net.private_nodes(nodes_dir()))
    hosts = state / "merged/etc/hosts"
    hosts.write_text(hosts.read_text().replace(f"127.0.1.1\t{name}", f"{address}\t{name}"))


def _wait_ready(name: str, state: Path, timeout: float, old_pid1: int | None = None) -> Node:
    """Poll until a (new) PID 1 answers `is-system-running` with running or degraded."""
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        nspawn = nspawn_pid(name, state)
        if nspawn is None and supervisor_pid(state) is None:
            console = tail(state / "console.log")
            raise AppdebError(f"node {name!r} stopped while booting; console:\n{console}")
        pid1 = find_pid1(nspawn)
        if pid1 is not None and pid1 != old_pid1:
            with contextlib.suppress(AppdebError):  # a timeout here just means "not yet"
                last = confine.run_node(pid1, ["systemctl", "is-system-running", "--wait"],
                                        timeout=max(1.0, deadline - time.monotonic())).stdout.strip()
            if last in ("running", "degraded"):
                return Node(name, state / "merged", pid1, private_net.address_of(state))
        time.sleep(0.05)
    raise AppdebError(f"node {name!r} not up after {timeout:.0f}s (state {last!r}); console:\n"
                      f"{tail(state / 'console.log')}")


def get(name: str) -> Node:
    """The running node of that name, for commands that act on an existing node."""
    state = state_dir(name)
    pid1 = find_pid1(nspawn_pid(name, state))
    if pid1 is None:
        raise AppdebError(f"node {name!r} is not running")
    return Node(name, state / "merged", pid1, private_net.address_of(state))


def list_nodes() -> list[NodeInfo]:
    """Every node dir, including leftovers of crashed runs (state "stopped") that need `down`."""
    if not nodes_dir().is_dir():
        return []
    infos = []
    for state in sorted(nodes_dir().iterdir()):
        if not (state.is_dir() and NAME_RE.fullmatch(state.name)):
            continue
        pid1 = find_pid1(nspawn_pid(state.name, state))
        status = "running" if pid1 else "starting" if supervisor_pid(state) else "stopped"
        addr = private_net.address_of(state)
        infos.append(NodeInfo(state.name, status, pid1, state / "merged", "private" if addr else "host", addr))
    return infos


def down(name: str) -> None:
    """Power the node off, unmount its root and delete its state; nothing is left behind."""
    state = state_dir(name)
    if not state.exists() and not cgroup_pids(name):
        raise AppdebError(f"no node named {name!r}")
    _teardown(name, state)


def _teardown(name: str, state: Path) -> None:
    stop_processes(name, state)
    for point in mounts_under(state):
        unmount(point)
    if mounts_under(state):
        raise AppdebError(f"cannot unmount {state}: {mounts_under(state)}")
    with private_net.lock(nodes_dir()):
        if private_net.detach(name, state, nodes_dir()):
            ssh.write_known_hosts(nodes_dir(), private_net.private_nodes(nodes_dir()))
    if state.exists():
        shutil.rmtree(state)
    remove_cgroups(name)
    with contextlib.suppress(OSError):
        os.rmdir(f"/run/systemd/nspawn/propagate/{name}")


def reboot(name: str) -> Node:
    """Reboot from inside (as an admin would) and wait until a new PID 1 is running."""
    node = get(name)
    run_in(node, ["systemctl", "reboot"], timeout=60)
    return _wait_ready(name, state_dir(name), BOOT_TIMEOUT, old_pid1=node.pid1)


# --- reaching private nodes from the host --------------------------------------------------------


def host_address() -> str:
    """The host's address on the private node network (serve a repository there for the nodes)."""
    return private_net.host_address()


def ssh_key_path() -> Path:
    """The private key that logs in as root on every private node."""
    return ssh.key_path(nodes_dir())


def known_hosts_path() -> Path:
    """The known_hosts file with every private node's host key under its address."""
    return ssh.known_hosts_path(nodes_dir())


def ssh_options() -> list[str]:
    """ssh options (key, known_hosts, strict checking, batch mode): `ssh *ssh_options() root@ADDR CMD`."""
    return ssh.ssh_options(nodes_dir())


def inventory_text() -> str:
    """An Ansible INI inventory of the running private nodes, all in group appdeb_nodes."""
    hosts = [(i.name, i.address) for i in list_nodes() if i.state == "running" and i.address]
    return ssh.inventory_text(nodes_dir(), hosts)


# --- inside a node ------------------------------------------------------------------------------


def run_in(node: Node, argv: Sequence[str], input: str | bytes | None = None, check: bool = False,
           timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command in the node; exit code and (merged) output pass through unless check=True."""
    return confine.run_node(node.pid1, argv, input=input, check=check, timeout=timeout)


def copy_in(node: Node, host_path: Path | str, dest_dir: str = "/var/tmp") -> str:
    """Copy a file or tree into the node; returns the in-node path.

    The host never walks the node's paths (a link planted there would lead the host's root outside
    the node): a tar of the host's copy is unpacked inside the node, by the node's own tar under the
    node's limits, so links there resolve in the node. A file becomes 0644 (apt's _apt user reads it).
    """
    src = Path(host_path)
    if not src.exists():
        raise AppdebError(f"{src}: no such file or directory")
    if ".." in PurePosixPath(dest_dir).parts or not src.resolve().name:
        raise AppdebError(f"cannot copy {src} into {dest_dir!r} of a node: give a plain path and a named source")
    dest = PurePosixPath("/", dest_dir)
    if any(dest == PurePosixPath(h) or PurePosixPath(h) in dest.parents for h in HIDDEN_IN_NODE):
        raise AppdebError(f"cannot copy into {dest} of a node: nspawn mounts its own file system there")
    run_in(node, ["sh", "-c", 'mkdir -p -- "$1" && exec tar -x -f - -C "$1" --no-same-owner', "sh", str(dest)],
           input=confine.tar_of(src), check=True, timeout=600)
    return str(dest / src.name)


def install(node: Node, debs: Sequence[Path], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Install local .debs with apt so their Debian dependencies are resolved as on a real server.

    The copies are removed afterwards, also on failure. dpkg runs without apt's pseudo-terminal
    (Dpkg::Use-Pty=0): the output is captured, and on a terminal dpkg draws its progress with
    carriage returns that would arrive as one run-together line.
    """
    # A fresh, randomly named directory the node's root makes in sticky /var/tmp: nobody can plant it.
    where = f"/var/tmp/appdeb-install.{secrets.token_hex(8)}"
    run_in(node, ["mkdir", "-m", "0755", "--", where], check=True)
    try:
        paths = [copy_in(node, deb, where) for deb in debs]
        argv = ["apt-get", "install", "-y", "--allow-downgrades", "-o", "Dpkg::Use-Pty=0",
                "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", *paths]
        result = run_in(node, argv, timeout=1800)
        if result.returncode != 0 and re.search(r"Failed to fetch|Unable to locate|404", result.stdout):
            run_in(node, ["apt-get", "update"], timeout=600)  # the image's package lists went stale
            result = run_in(node, argv, timeout=1800)
    finally:  # in the node, so a link planted there resolves there
        run_in(node, ["rm", "-rf", "--", where])
    if check and result.returncode != 0:
        raise CommandError(list(result.args), result.returncode, result.stdout)
    return result
