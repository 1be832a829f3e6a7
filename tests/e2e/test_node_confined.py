"""The node's root attacks the harness that drives it: what the harness runs in a node, and what it copies
there, gives the node nothing beyond its own limits (a binary it replaced, a package's postinst, links it
planted where the harness writes)."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.node import harness as nodes
from appdeb.runner import run

pytestmark = pytest.mark.e2e

# What a hostile binary in the node records about itself: its capabilities, cgroups, seccomp mode, and
# whether it can open or mount the host's disk through a device node it makes (the host's kernel hands
# out the mounted file system again: the host's files, writable).
PROBE = """out=$1
{ grep -E '^(CapEff|Seccomp):' /proc/self/status; sed 's/^/cgroup /' /proc/self/cgroup
  mknod /root/hostdisk b MAJOR MINOR && head -c 512 /root/hostdisk >/dev/null && echo OPENED-HOST-DISK
  mkdir -p /run/probe && mount -t FSTYPE /root/hostdisk /run/probe && echo MOUNTED-HOST-DISK && umount /run/probe
  rm -f /root/hostdisk; } > "$out" 2>&1
"""


def _probe_script() -> str:
    """PROBE aimed at the block device and file system of the host's / (or its first mounted disk)."""
    mounts = [ln.split() for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
    disks = [(f[4], f[2], f[f.index("-") + 1]) for f in mounts if Path("/sys/dev/block", f[2]).exists()]
    assert disks, "the host has a mounted disk to aim at"
    _point, numbers, fstype = min(disks, key=lambda d: d[0] != "/")
    major, minor = numbers.split(":")
    return PROBE.replace("MAJOR", major).replace("MINOR", minor).replace("FSTYPE", fstype)


def _probe(node: nodes.Node, record: str) -> None:
    """What a process the harness started in the node recorded, checked against the node's PID 1."""
    text = nodes.run_in(node, ["cat", record], check=True).stdout
    lines = text.splitlines()
    bounding = next(int(ln.split()[1], 16) for ln in Path(f"/proc/{node.pid1}/status").read_text().splitlines()
                    if ln.startswith("CapBnd:"))
    effective = next(int(ln.split()[1], 16) for ln in lines if ln.startswith("CapEff:"))
    assert effective & ~bounding == 0, f"capabilities beyond the node's: {effective & ~bounding:x}\n{text}"
    pid1_cgroups = nodes.run_in(node, ["cat", "/proc/1/cgroup"], check=True).stdout.splitlines()
    assert [ln.removeprefix("cgroup ") for ln in lines if ln.startswith("cgroup ")] == pid1_cgroups, text
    assert "Seccomp:\t2" in lines, text
    assert "OPENED-HOST-DISK" not in text and "MOUNTED-HOST-DISK" not in text, text


def test_a_replaced_env_runs_with_the_node_s_limits_only(node: nodes.Node) -> None:
    wrapper = "#!/bin/sh\n" + _probe_script().replace('out=$1', 'out=/root/env-record') + \
        'exec /usr/bin/env.real "$@"\n'
    plant = "cp /usr/bin/env /usr/bin/env.real && cat > /usr/bin/env.new && chmod 755 /usr/bin/env.new " \
            "&& mv /usr/bin/env.new /usr/bin/env"
    nodes.run_in(node, ["sh", "-c", plant], input=wrapper, check=True)
    assert nodes.run_in(node, ["sh", "-c", "echo $HOME"], check=True).stdout == "/root\n"  # still works
    _probe(node, "/root/env-record")


def test_a_postinst_runs_with_the_node_s_limits_only(node: nodes.Node, tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: appdeb-e2e-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: e2e <e2e@appdeb.invalid>\n"
        "Description: records what its postinst may do\n")
    (root / "DEBIAN/postinst").write_text("#!/bin/sh\nset -- /root/postinst-record\n" +
                                          _probe_script() + "exit 0\n")
    (root / "DEBIAN/postinst").chmod(0o755)
    deb = tmp_path / "appdeb-e2e-probe_1.0_all.deb"
    run(["dpkg-deb", "--root-owner-group", "--build", root, deb])
    nodes.install(node, [deb])
    assert "install ok installed" in nodes.run_in(node, ["dpkg", "-s", "appdeb-e2e-probe"], check=True).stdout
    _probe(node, "/root/postinst-record")


def test_copying_a_tree_never_writes_through_links_the_node_planted(node: nodes.Node, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    plant = 'mkdir -p /var/tmp/drop/tree && ln -s "$0" /var/tmp/drop/tree/data && ln -s "$1" /var/tmp/drop/tree/sub'
    nodes.run_in(node, ["sh", "-c", plant, str(victim), str(tmp_path)], check=True)
    tree = tmp_path / "src/tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "data").write_text("copied\n")
    (tree / "sub/victim").write_text("copied\n")
    assert nodes.copy_in(node, tree, "/var/tmp/drop") == "/var/tmp/drop/tree"
    assert victim.read_text() == "host file\n"
    assert nodes.run_in(node, ["cat", "/var/tmp/drop/tree/data"]).stdout == "copied\n"


# Swaps /var/tmp/race/d (a directory) and /var/tmp/race/l (a link to a host path) atomically, endlessly.
SWAP = """import ctypes
libc = ctypes.CDLL(None)
while True:
    libc.renameat2(-100, b"/var/tmp/race/d", -100, b"/var/tmp/race/l", 2)  # RENAME_EXCHANGE
"""


def test_copying_a_file_lands_in_the_node_while_the_node_swaps_links(node: nodes.Node, tmp_path: Path) -> None:
    """The node swaps the target directory with a link to a host directory as fast as it can."""
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    plant = 'mkdir -p /var/tmp/race/d && ln -s "$0" /var/tmp/race/l'
    nodes.run_in(node, ["sh", "-c", plant, str(host_dir)], check=True)
    nodes.run_in(node, ["systemd-run", "--unit", "t-swap", "python3", "-c", SWAP], check=True)
    src = tmp_path / "payload"
    src.write_text("copied\n")
    for _ in range(300):  # a failure: the directory was a link at that instant, the node's own doing
        with contextlib.suppress(AppdebError, OSError):
            nodes.copy_in(node, src, "/var/tmp/race/d")
    nodes.run_in(node, ["systemctl", "stop", "t-swap"])
    assert list(host_dir.iterdir()) == []


def test_dest_dir_never_leaves_the_node_nor_makes_host_directories(node: nodes.Node, tmp_path: Path) -> None:
    src = tmp_path / "note.txt"
    src.write_text("copied\n")
    escape = Path("/var/tmp", f"appdeb-escape-{uuid.uuid4().hex[:8]}")
    with pytest.raises(AppdebError) as refused:
        nodes.copy_in(node, src, "/var/tmp/" + "../" * 10 + str(escape).lstrip("/"))
    assert not escape.exists()
    assert "plain path" in str(refused.value)
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    nodes.run_in(node, ["ln", "-s", str(host_dir), "/var/tmp/to-host"], check=True)
    with pytest.raises(AppdebError):  # the link leads to the node's own path of that name: there is none
        nodes.copy_in(node, src, "/var/tmp/to-host/made")
    assert list(host_dir.iterdir()) == []
