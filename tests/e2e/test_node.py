"""The throw-away node behaves like a small booted Debian server (real systemd-nspawn)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from appdeb.errors import AppdebError, CommandError
from appdeb.node import harness as nodes
from appdeb.node.image import mounts_under
from appdeb.runner import run

from .apps import http_get
from .conftest import NodeFactory

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



def test_node_boots_to_running(node: nodes.Node) -> None:
    state = nodes.run_in(node, ["systemctl", "is-system-running"]).stdout.strip()
    assert state in ("running", "degraded"), nodes.run_in(node, ["systemctl", "--failed"]).stdout
    assert nodes.get(node.name) == node
    [info] = [i for i in nodes.list_nodes() if i.name == node.name]
    assert (info.state, info.pid1, info.root) == ("running", node.pid1, node.root)


def test_exec_passes_exit_code_and_output_through(node: nodes.Node) -> None:
    result = nodes.run_in(node, ["sh", "-c", "echo hi; echo oops >&2; exit 3"])
    assert result.returncode == 3
    assert result.stdout.split() == ["hi", "oops"]
    assert nodes.run_in(node, ["cat"], input="from stdin").stdout == "from stdin"
    assert nodes.run_in(node, ["sh", "-c", "echo $HOME $DEBIAN_FRONTEND"]).stdout.split() == [
        "/root", "noninteractive"]
    with pytest.raises(CommandError):
        nodes.run_in(node, ["false"], check=True)


def test_unit_in_node_answers_on_host_loopback(node: nodes.Node) -> None:
    port = _free_port()
    nodes.run_in(node, ["sh", "-c", "mkdir -p /srv/www && echo served-from-node > /srv/www/hello.txt"],
               check=True)
    nodes.run_in(node, ["systemd-run", "--unit", "t-http", "python3", "-m", "http.server", str(port),
                      "--bind", "127.0.0.1", "--directory", "/srv/www"], check=True)
    assert http_get(port, 15.0, "/hello.txt") == "served-from-node\n"


def test_two_nodes_run_at_once_with_own_identity(node_factory: NodeFactory) -> None:
    a, b = node_factory(), node_factory()
    ids = [nodes.run_in(n, ["cat", "/etc/machine-id"], check=True).stdout.strip() for n in (a, b)]
    hosts = [nodes.run_in(n, ["hostname"], check=True).stdout.strip() for n in (a, b)]
    assert hosts == [a.name, b.name]
    assert ids[0] != ids[1] and all(len(i) == 32 for i in ids)
    nodes.run_in(a, ["touch", "/root/only-in-a"], check=True)
    assert nodes.run_in(b, ["test", "-e", "/root/only-in-a"]).returncode == 1
    for n in (a, b):
        assert nodes.run_in(n, ["systemctl", "is-system-running"]).stdout.strip() in ("running", "degraded")


def test_reboot_keeps_node_and_enabled_units(node: nodes.Node) -> None:
    unit = "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
    nodes.run_in(node, ["sh", "-c", "cat > /etc/systemd/system/t-sleep.service"], input=unit, check=True)
    nodes.run_in(node, ["systemctl", "enable", "--now", "t-sleep.service"], check=True)
    after = nodes.reboot(node.name)
    assert after.pid1 != node.pid1
    assert nodes.get(node.name) == after
    assert nodes.run_in(after, ["systemctl", "is-active", "t-sleep.service"]).stdout.strip() == "active"


def test_install_local_deb_resolves_debian_dependencies(node: nodes.Node, tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/appdeb-e2e-hello").mkdir(parents=True)
    (root / "usr/share/appdeb-e2e-hello/hello").write_text("hello\n")
    (root / "DEBIAN/control").write_text(
        "Package: appdeb-e2e-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: e2e <e2e@appdeb.invalid>\n"
        "Depends: redis-tools\nDescription: tiny package for the node e2e test\n")
    deb = tmp_path / "appdeb-e2e-hello_1.0_all.deb"
    run(["dpkg-deb", "--root-owner-group", "--build", root, deb])
    nodes.install(node, [deb])
    status = nodes.run_in(node, ["dpkg", "-s", "appdeb-e2e-hello"], check=True).stdout
    assert "Status: install ok installed" in status
    assert nodes.run_in(node, ["cat", "/usr/share/appdeb-e2e-hello/hello"]).stdout == "hello\n"
    assert nodes.run_in(node, ["redis-cli", "--version"]).returncode == 0  # the dependency came along


def test_copy_in_and_its_guards(node: nodes.Node, tmp_path: Path) -> None:
    src = tmp_path / "note.txt"
    src.write_text("copied\n")
    assert nodes.copy_in(node, src) == "/var/tmp/note.txt"
    assert nodes.run_in(node, ["cat", "/var/tmp/note.txt"]).stdout == "copied\n"
    with pytest.raises(AppdebError, match="own file system"):
        nodes.copy_in(node, src, "/tmp")


def test_up_refuses_bad_or_taken_names(node: nodes.Node) -> None:
    for bad in ("Bad", "-x", "a" * 32, "a/b", ""):
        with pytest.raises(AppdebError, match="invalid node name"):
            nodes.up(bad)
    with pytest.raises(AppdebError, match="already"):
        nodes.up(node.name)
    assert nodes.get(node.name) == node  # the refused duplicate did not disturb the original


def test_down_leaves_nothing_behind(node_factory: NodeFactory) -> None:
    node = node_factory()
    state = node.root.parent
    nodes.down(node.name)
    assert mounts_under(state) == []
    assert not state.exists()
    machine = f"--machine={node.name}"
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and machine in _cmdline(p)]
    assert leftovers == []
    assert not _running(node.pid1)
    assert not any(Path(base, "appdeb", node.name).exists()
                   for base in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"))
    with pytest.raises(AppdebError, match="not running"):
        nodes.get(node.name)
    with pytest.raises(AppdebError, match="no node"):
        nodes.down(node.name)


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (this VM's init reaps orphans only now and then)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
