"""The private network of nodes: each node in a network namespace of its own, all of them on one bridge.

Two nodes on the host's network cannot both listen on port 80, and nothing tells them apart by
address. In private mode the harness gives each node its own namespace and an address on a /24
that the harness owns (APPDEB_NODE_SUBNET, default 10.213.47.0/24; .1 is the host, nodes get .10 on)::

    host: appdeb0 (.1/24) ── veth ── netns appdeb-net: br0 ┬─ uplink
                                                            ├─ n10 ── veth ── netns appdeb-node-A: eth0 (.10/24)
                                                            └─ n11 ── veth ── netns appdeb-node-B: eth0 (.11/24)

The bridge lives in a namespace of its own (not on the host), created with the first private node
and removed with the last. Nothing routes further: no NAT, no default route in the nodes, and IPv4
forwarding off for appdeb0 on the host, and no CAP_NET_RAW in the nodes (a hand-made frame for another
of the host's addresses would be delivered locally: processes.nspawn_argv), so a node reaches the other
nodes and the host's address on the /24 and nothing else. A node's address is recorded in its state
directory (file ``address``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.files import locked, write_atomic
from appdeb.runner import run

HARNESS_NS = "appdeb-net"
BRIDGE = "br0"
UPLINK = "uplink"  # the harness namespace's end of the host's veth
HOST_IF = "appdeb0"
NODE_IF = "eth0"
FIRST_NODE = 10  # .1 is the host; .2-.9 stay free for later uses
ADDRESS_FILE = "address"
DEFAULT_SUBNET = "10.213.47.0/24"


def subnet() -> ipaddress.IPv4Network:
    """The harness's /24 (APPDEB_NODE_SUBNET overrides it when the default clashes with a real network)."""
    text = os.environ.get("APPDEB_NODE_SUBNET", DEFAULT_SUBNET)
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError:
        raise AppdebError(f"APPDEB_NODE_SUBNET={text!r} is not an IPv4 network such as {DEFAULT_SUBNET}") from None
    if net.prefixlen != 24 or not net.is_private:
        raise AppdebError(f"APPDEB_NODE_SUBNET={text!r}: the node network must be a private /24")
    return net


def host_address() -> str:
    """The host's address on the node network: what nodes use to reach a service on the host."""
    return str(subnet()[1])


def netns_name(name: str) -> str:
    return f"appdeb-node-{name}"


def netns_path(name: str) -> Path:
    """The namespace file systemd-nspawn enters (--network-namespace-path)."""
    return Path("/run/netns") / netns_name(name)


def address_of(state: Path) -> str | None:
    """A node's private address, or None for a node on the host's network (or a file that is not one).

    The file is the harness's own, but its value reaches inventories and known_hosts: only an
    address on the harness's /24 counts.
    """
    with contextlib.suppress(OSError, ValueError):
        address = ipaddress.IPv4Address((state / ADDRESS_FILE).read_text().strip())
        if address in subnet():
            return str(address)
    return None


def private_nodes(nodes: Path) -> list[tuple[str, str, Path]]:
    """(name, address, state dir) of every node that holds a private address, running or not."""
    found = []
    if nodes.is_dir():
        for state in sorted(nodes.iterdir()):
            address = address_of(state) if state.is_dir() and not state.name.startswith(".") else None
            if address is not None:
                found.append((state.name, address, state))
    return found


@contextlib.contextmanager
def lock(nodes: Path) -> Iterator[None]:
    """Serialise address allocation and the harness namespace's creation and removal across processes."""
    nodes.mkdir(parents=True, exist_ok=True)
    with locked(nodes / ".network.lock"):
        yield


# --- attach / detach (call with lock held) ------------------------------------------------------


def attach(name: str, state: Path, nodes: Path) -> str:
    """Give the node an address, make sure the harness network exists, and build its namespace."""
    net = subnet()
    used = {address for _n, address, _s in private_nodes(nodes)}
    free = [str(a) for a in list(net.hosts())[FIRST_NODE - 1:] if str(a) not in used]
    if not free:
        raise AppdebError(f"no free address left on the node network {net}")
    address = free[0]
    write_atomic(state / ADDRESS_FILE, address + "\n")  # recorded first, so a failed attach is undone
    _ensure_harness(net)
    ns, port = netns_name(name), _bridge_port(address)
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", HARNESS_NS, "link", "del", port], check=False)  # a leftover of a crash
    run(["ip", "-n", HARNESS_NS, "link", "add", port, "type", "veth", "peer", "name", NODE_IF, "netns", ns])
    run(["ip", "-n", HARNESS_NS, "link", "set", port, "master", BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{address}/{net.prefixlen}", "dev", NODE_IF])
    run(["ip", "-n", ns, "link", "set", NODE_IF, "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    return address


def detach(name: str, state: Path, nodes: Path) -> bool:
    """Remove the node's namespace (and so its veth); the harness network goes with the last node.

    Returns whether the node had a private network. Safe to call on a half-built node.
    """
    address = address_of(state)
    if address is None and not netns_path(name).exists():
        return False
    if netns_path(name).exists():
        run(["ip", "netns", "del", netns_name(name)])
    if address is not None:
        run(["ip", "-n", HARNESS_NS, "link", "del", _bridge_port(address)], check=False)
    (state / ADDRESS_FILE).unlink(missing_ok=True)
    if not private_nodes(nodes):
        remove_harness()
    return True


def _bridge_port(address: str) -> str:
    """The bridge's end of a node's veth, named by the address's last byte (interface names are short)."""
    return f"n{address.rsplit('.', 1)[1]}"


# --- the harness namespace ----------------------------------------------------------------------


def harness_exists() -> bool:
    return Path("/run/netns", HARNESS_NS).exists() or Path("/sys/class/net", HOST_IF).exists()


def _host_if_address() -> str | None:
    out = run(["ip", "-j", "-4", "addr", "show", "dev", HOST_IF], check=False)
    if out.returncode != 0:
        return None
    infos = [a for link in json.loads(out.stdout or "[]") for a in link.get("addr_info", [])]
    return f"{infos[0]['local']}/{infos[0]['prefixlen']}" if infos else None


def _ensure_harness(net: ipaddress.IPv4Network) -> None:
    """Reuse a complete harness network on the same /24; otherwise clear leftovers and build it."""
    wanted = f"{net[1]}/{net.prefixlen}"
    current = _host_if_address()
    if current is not None and current != wanted:
        raise AppdebError(f"the node network already uses {current} on {HOST_IF}, not {wanted}: bring its "
                          "private nodes down first")
    bridge_ok = run(["ip", "-n", HARNESS_NS, "link", "show", BRIDGE], check=False).returncode == 0
    if current == wanted and bridge_ok:
        return
    remove_harness()
    check_unused(net)
    run(["ip", "netns", "add", HARNESS_NS])
    run(["ip", "-n", HARNESS_NS, "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "-n", HARNESS_NS, "link", "set", BRIDGE, "up"])
    run(["ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", UPLINK, "netns", HARNESS_NS])
    run(["ip", "-n", HARNESS_NS, "link", "set", UPLINK, "master", BRIDGE, "up"])
    # Nodes reach the host's address but must never be routed on, whatever the host's global setting.
    Path(f"/proc/sys/net/ipv4/conf/{HOST_IF}/forwarding").write_text("0\n")
    Path(f"/proc/sys/net/ipv6/conf/{HOST_IF}/disable_ipv6").write_text("1\n")
    run(["ip", "addr", "add", wanted, "dev", HOST_IF])
    run(["ip", "link", "set", HOST_IF, "up"])


def remove_harness() -> None:
    """Delete the harness namespace (its bridge and veth ends go with it) and the host's veth."""
    if Path("/sys/class/net", HOST_IF).exists():
        run(["ip", "link", "del", HOST_IF])
    if Path("/run/netns", HARNESS_NS).exists():
        run(["ip", "netns", "del", HARNESS_NS])


def check_unused(net: ipaddress.IPv4Network) -> None:
    """Refuse a /24 that an interface or a route of this machine already covers (except the default route)."""
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for info in link.get("addr_info", []):
            if ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network.overlaps(net):
                raise AppdebError(f"node network {net} clashes with {info['local']}/{info['prefixlen']} on "
                                  f"{link.get('ifname')}; set APPDEB_NODE_SUBNET to a free private /24")
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]"):
        with contextlib.suppress(ValueError):
            dst = ipaddress.IPv4Network(route.get("dst", "default"), strict=False)
            if dst.prefixlen > 0 and dst.overlaps(net):
                raise AppdebError(f"node network {net} clashes with the route to {dst} on this machine; "
                                  "set APPDEB_NODE_SUBNET to a free private /24")
