"""Private-network nodes: own addresses and ports, reachable from the host and each other only; ssh by harness key."""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import json
import os
import shlex
import socket
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.node import harness as nodes
from appdeb.node import network
from appdeb.runner import run

pytestmark = [pytest.mark.e2e, pytest.mark.private_nodes]
PORT = 8080  # the same port in every node: that is the point

PrivateFactory = Callable[[], nodes.Node]


@pytest.fixture
def private_node(node_image: Path) -> Iterator[PrivateFactory]:
    """Boot private-network nodes; each is brought down afterwards, even when the test fails."""
    names: list[str] = []

    def make() -> nodes.Node:
        name = f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return nodes.up(name, network="private")

    yield make
    for name in names:
        if any(info.name == name for info in nodes.list_nodes()):
            nodes.down(name)


def _others_private(mine: set[str]) -> bool:
    """Private nodes of other test runs keep the harness network up; only then may it stay."""
    return any(i.address and i.name not in mine for i in nodes.list_nodes())


def _serve_hostname(node: nodes.Node) -> None:
    nodes.run_in(node, ["sh", "-c", "mkdir -p /srv/www && hostname > /srv/www/who"], check=True)
    nodes.run_in(node, ["systemd-run", "--unit", "t-http", "python3", "-m", "http.server", str(PORT),
                        "--bind", "0.0.0.0", "--directory", "/srv/www"], check=True)
    ready = f"for i in $(seq 100); do curl -sf http://127.0.0.1:{PORT}/who && exit 0; sleep 0.1; done; exit 1"
    nodes.run_in(node, ["sh", "-c", ready], check=True, timeout=30)


def _ssh(node: nodes.Node, *command: str, known_hosts: Path | None = None) -> tuple[int, str]:
    options = nodes.ssh_options()
    if known_hosts is not None:
        options = [f"UserKnownHostsFile={known_hosts}" if o.startswith("UserKnownHostsFile=") else o
                   for o in options]
    result = run(["ssh", "-F", "/dev/null", *options, "-o", "ConnectTimeout=10", f"root@{node.address}",
                  shlex.join(command)], check=False, timeout=60)
    return result.returncode, result.stdout


def test_two_private_nodes_share_a_port_and_reach_each_other(private_node: PrivateFactory) -> None:
    a, b = private_node(), private_node()
    net = network.subnet()
    assert a.address and b.address and a.address != b.address
    assert {ipaddress.IPv4Address(a.address), ipaddress.IPv4Address(b.address)} <= set(net.hosts())
    assert nodes.get(a.name) == a
    for n in (a, b):
        _serve_hostname(n)  # the same port twice: each node has its own network stack
    for n in (a, b):  # the host reaches both on the port by address
        with urllib.request.urlopen(f"http://{n.address}:{PORT}/who", timeout=10) as response:
            assert response.read().decode().strip() == n.name
    for src, dst in ((a, b), (b, a)):  # and each node the other
        got = nodes.run_in(src, ["curl", "-sf", "-m", "10", f"http://{dst.address}:{PORT}/who"], check=True)
        assert got.stdout.strip() == dst.name
    rows = {i.name: i for i in nodes.list_nodes()}
    assert (rows[a.name].network, rows[a.name].address) == ("private", a.address)
    listed = run([sys.executable, "-m", "appdeb.cli", "node", "list"]).stdout
    assert f"{a.name}\trunning\t{a.pid1}\tprivate\t{a.address}\t" in listed


def test_ssh_with_harness_key_and_strict_known_hosts(private_node: PrivateFactory, tmp_path: Path) -> None:
    a, b = private_node(), private_node()
    assert _ssh(a, "hostname") == (0, f"{a.name}\n")
    assert _ssh(b, "hostname") == (0, f"{b.name}\n")
    known = nodes.known_hosts_path().read_text()
    assert known.count("\n") >= 2 and f"{a.address} ssh-ed25519 " in known
    keys = {line.split()[0]: line.split()[2] for line in known.splitlines()}
    assert keys[a.address] != keys[b.address]  # each node has a host key of its own
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{a.address} ssh-ed25519 {keys[b.address]}\n")  # b's key claimed for a
    code, out = _ssh(a, "hostname", known_hosts=wrong)
    assert code == 255 and "Host key verification failed" in out
    pub = nodes.ssh_key_path().with_name("id_ed25519.pub").read_text()
    assert nodes.run_in(a, ["cat", "/root/.ssh/authorized_keys"]).stdout == pub
    listening = nodes.run_in(a, ["ss", "-Hltn", "sport = :22"]).stdout
    assert listening.strip(), "sshd listens in the node's own namespace"
    after = nodes.reboot(a.name)  # nspawn comes back in the same namespace, with the same address and keys
    assert (after.address, _ssh(after, "hostname")) == (a.address, (0, f"{a.name}\n"))


def test_traffic_stays_on_the_node_network(private_node: PrivateFactory) -> None:
    a = private_node()
    routes = nodes.run_in(a, ["ip", "-4", "route", "show", "table", "all", "type", "unicast"], check=True).stdout
    assert routes.startswith(f"{network.subnet()} dev eth0 ") and routes.count("\n") == 1, routes  # no default
    links = json.loads(run(["ip", "-j", "-4", "addr"]).stdout)
    real = [a["local"] for link in links for a in link["addr_info"]
            if a["local"] != network.host_address() and not a["local"].startswith("127.")]
    real += [r["gateway"] for r in json.loads(run(["ip", "-j", "-4", "route", "show", "default"]).stdout)]
    assert real, "this machine has a real address to try"
    for target in [*real, "1.1.1.1"]:
        got = nodes.run_in(a, ["ip", "route", "get", target])
        assert got.returncode != 0 and "unreachable" in got.stdout.lower(), (target, got.stdout)
        assert nodes.run_in(a, ["curl", "-s", "-m", "3", f"http://{target}/"]).returncode != 0
    assert Path(f"/proc/sys/net/ipv4/conf/{network.HOST_IF}/forwarding").read_text().strip() == "0"
    with _host_server() as port:  # but a server on the host's address on the node network is reachable
        got = nodes.run_in(a, ["curl", "-sf", "-m", "10", f"http://{network.host_address()}:{port}/"])
        assert got.stdout == "from the host\n"


# A node's root hands the bridge a hand-made UDP datagram for one of the host's other addresses.
RAW_FRAME = """import socket, struct, sys
mac, src, dst, port = sys.argv[1:5]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
data = b"raw frame from the node"
udp = struct.pack("!HHHH", 40000, int(port), 8 + len(data), 0) + data
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
total = sum(struct.unpack("!10H", ip))
total = (total & 0xFFFF) + (total >> 16)
ip = ip[:10] + struct.pack("!H", ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF) + ip[12:]
for _ in range(5):
    s.send(bytes.fromhex(mac.replace(":", "")) + s.getsockname()[4] + b"\\x08\\x00" + ip + udp)
"""


def test_raw_frames_reach_no_other_host_address(private_node: PrivateFactory) -> None:
    a = private_node()
    links = json.loads(run(["ip", "-j", "-4", "addr"]).stdout)
    real = [i["local"] for link in links for i in link["addr_info"]
            if i["local"] != network.host_address() and not i["local"].startswith("127.")]
    assert real, "this machine has a real address to aim at"
    mac = Path(f"/sys/class/net/{network.HOST_IF}/address").read_text().strip()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("0.0.0.0", 0))
        listener.settimeout(3)
        argv = ["python3", "-c", RAW_FRAME, mac, str(a.address), real[0], str(listener.getsockname()[1])]
        sent = [nodes.run_in(a, argv), nodes.run_in(a, ["systemd-run", "--wait", "--pipe", "-q", *argv])]
        with pytest.raises(TimeoutError):
            listener.recvfrom(100)
    assert all(r.returncode != 0 and "PermissionError" in r.stdout for r in sent), [r.stdout for r in sent]


@contextlib.contextmanager
def _host_server() -> Iterator[int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"from the host\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer((network.host_address(), 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_inventory_lists_private_nodes_for_ansible(private_node: PrivateFactory, tmp_path: Path) -> None:
    a, b = private_node(), private_node()
    text = run([sys.executable, "-m", "appdeb.cli", "node", "inventory"]).stdout
    hosts = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            name, *pairs = shlex.split(line)
            hosts[name] = dict(p.split("=", 1) for p in pairs)
    assert text.splitlines()[1] == "[appdeb_nodes]"
    for n in (a, b):
        assert hosts[n.name]["ansible_host"] == n.address
        assert hosts[n.name]["ansible_user"] == "root"
        assert hosts[n.name]["ansible_ssh_private_key_file"] == str(nodes.ssh_key_path())
        assert f"UserKnownHostsFile={nodes.known_hosts_path()}" in hosts[n.name]["ansible_ssh_common_args"]
        assert "StrictHostKeyChecking=yes" in hosts[n.name]["ansible_ssh_common_args"]
    tool = Path(sys.executable).with_name("ansible-inventory")
    if tool.exists():
        (tmp_path / "hosts.ini").write_text(text)
        parsed = json.loads(run([tool, "-i", tmp_path / "hosts.ini", "--list"]).stdout)
        assert {a.name, b.name} <= set(parsed["appdeb_nodes"]["hosts"])
        assert parsed["_meta"]["hostvars"][a.name]["ansible_host"] == a.address


def test_down_removes_namespaces_and_the_last_takes_the_network(private_node: PrivateFactory) -> None:
    a, b = private_node(), private_node()
    assert {network.netns_name(a.name), network.netns_name(b.name), network.HARNESS_NS} <= _netns()
    nodes.down(a.name)
    assert network.netns_name(a.name) not in _netns()
    assert network.HARNESS_NS in _netns()  # b still needs it
    assert a.address not in nodes.known_hosts_path().read_text()
    nodes.down(b.name)
    assert network.netns_name(b.name) not in _netns()
    _harness_gone_unless_in_use()


def test_host_node_keeps_host_network_and_no_sshd(node: nodes.Node) -> None:
    assert node.address is None
    assert nodes.run_in(node, ["systemctl", "is-enabled", "ssh.service"]).stdout.strip() == "masked"
    assert nodes.run_in(node, ["systemctl", "is-active", "ssh.service"]).stdout.strip() == "inactive"


def test_a_clashing_subnet_is_refused_and_leaves_nothing(node_image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # under the network's lock throughout (the harness's own calls skip it): with another subnet, attach would
    # replace a harness network that private nodes of another worker were just given
    with network.lock(nodes.nodes_dir()):
        monkeypatch.setattr(network, "lock", lambda _nodes: contextlib.nullcontext())
        _clash_refused(monkeypatch)


def _clash_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if network.harness_exists():
        pytest.skip("the node network is in use by other private nodes")
    [eth] = [a for link in json.loads(run(["ip", "-j", "-4", "addr"]).stdout) for a in link["addr_info"]
             if not a["local"].startswith("127.")][:1]
    clash = ipaddress.IPv4Interface(f"{eth['local']}/24").network
    if not clash.is_private:
        pytest.skip(f"this machine's address {eth['local']} is not in a private range")
    monkeypatch.setenv("APPDEB_NODE_SUBNET", str(clash))
    name = f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AppdebError, match="clashes with"):
        nodes.up(name, network="private")
    assert name not in {i.name for i in nodes.list_nodes()}
    assert not (nodes.nodes_dir() / name).exists()
    assert network.netns_name(name) not in _netns()
    assert network.HARNESS_NS not in _netns() and not Path("/sys/class/net", network.HOST_IF).exists()


def _harness_gone_unless_in_use() -> None:
    """The harness network is gone unless private nodes of other tests (another worker) hold it: looked at
    under the network's lock, so no node is half attached meanwhile."""
    with network.lock(nodes.nodes_dir()):
        if not _others_private(set()):
            assert network.HARNESS_NS not in _netns()
            assert not Path("/sys/class/net", network.HOST_IF).exists()


def _netns() -> set[str]:
    return {line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()}
