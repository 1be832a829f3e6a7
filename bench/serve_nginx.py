#!/usr/bin/env python3
"""Where the nginx site's cost per request goes: copies of the site with one difference each.

Usage: python3 bench/serve_nginx.py [--rounds 5] [--duration 4] [--variants tcp,nolog,…]

Sets up what bench/serve.py does (examples/hello built and installed on a node with its nginx site,
which reaches gunicorn over the package's unix socket), then adds copies of the installed site, each
on its own port with its own upstream and one difference: the upstream over TCP to the web port
(as before the unix socket), no access log, no upstream keep-alive (HTTP/1.0, nginx's default), or
several at once. wrk loads (b) the unit directly, (c) the site and every copy in interleaved
rounds (bench/serve.py's measure); the table gives each one's median req/s and server CPU per
request (the unit's and nginx's processes), the latter also relative to (c). Needs root; the node
is removed at the end.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import serve  # bench/serve.py, beside this file

from appdeb.errors import AppdebError
from appdeb.failsafe.servers import in_node
from appdeb.node import harness as nodes


@dataclass(frozen=True)
class Variant:
    """The installed site with some changes: upstream over TCP, no log, no keep-alive."""

    summary: str
    unix: bool = False  # the site's own upstream (the unix socket), else TCP to the web port
    log: bool = True
    keepalive: bool = True
    extra: str = ""  # lines added to the server block


VARIANTS = {
    "tcp": Variant("upstream over TCP to the port"),
    "tcpnolog": Variant("TCP, access_log off", log=False),
    "tcpnokeep": Variant("TCP, no keep-alive (HTTP/1.0)", keepalive=False),
    "unix": Variant("the site as generated (a copy)", unix=True),
    "unixnolog": Variant("unix socket, access_log off", unix=True, log=False),
    "unixnokeep": Variant("unix socket, no keep-alive", unix=True, keepalive=False),
    "unixlight": Variant("unix, no keep-alive, no log", unix=True, keepalive=False, log=False),
}


def site_copy(site: str, package: str, name: str, variant: Variant, port: int, direct: int) -> str:
    """The installed site text with its own upstream name and port and the variant's changes."""
    text = site.replace(f"{package}_gunicorn", f"{package}_gunicorn_{name}")
    text = re.sub(r"(?m)^(\s*listen )\d+;", rf"\g<1>{port};", text)
    text = re.sub(r"(?m)^(\s*server_name ).*;", r"\1_;", text)
    text = re.sub(r"(?m)^(\s*(?:access|error)_log /var/log/nginx/)[^ ;]+\.(access|error)\.log",
                  rf"\1sv-{name}.\2.log", text)
    if not variant.unix:
        text = re.sub(r"(?m)^(\s*server )unix:\S+", rf"\g<1>127.0.0.1:{direct}", text)
    if not variant.log:
        text = re.sub(r"(?m)^(\s*access_log ).*;", r"\1off;", text)
    if not variant.keepalive:
        text = re.sub(r"(?m)^\s*(keepalive \d+|proxy_http_version 1\.1|proxy_set_header Connection \"\");\n", "",
                      text)
    if variant.extra:
        text = text.replace("    client_max_body_size", f"    {variant.extra}\n    client_max_body_size", 1)
    return text


def add_sites(node: nodes.Node, package: str, names: list[str], ports: dict[str, int],
              direct: int) -> tuple[serve.Target, ...]:
    """Every variant's site in one file of /etc/nginx/conf.d, nginx reloaded; their targets."""
    site = in_node(node, ["cat", f"/etc/nginx/sites-enabled/{package}.conf"])
    text = "\n".join(site_copy(site, package, n, VARIANTS[n], ports[n], direct) for n in names)
    in_node(node, ["sh", "-c", "cat > /etc/nginx/conf.d/sv-variants.conf"], input=text)
    in_node(node, ["nginx", "-t", "-q"])
    in_node(node, ["systemctl", "reload", "nginx"])
    targets = tuple(serve.Target(n, VARIANTS[n].summary, ports[n], (f"{package}.service", "nginx.service"))
                    for n in names)
    for t in targets:
        serve.wait_answers(t.port)
    return targets


def table(targets: tuple[serve.Target, ...], runs: dict[str, list[serve.Run]]) -> str:
    """Median req/s and CPU per request of each target, both also relative to the site (c)."""
    rate = {k: statistics.median(r.rate for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r.cpu_us for r in v) for k, v in runs.items()}
    lines = ["", f"{'':<10} {'':<36} {'req/s':>7} {'/(b)':>5} {'µs CPU/req':>11} {'× (c)':>6}"]
    for t in targets:
        lines.append(f"{t.key:<10} {t.label:<36} {rate[t.key]:7.0f} {rate[t.key] / rate['b']:5.2f} "
                     f"{cpu[t.key]:11.0f} {cpu[t.key] / cpu['c']:6.2f}")
    return "\n".join(lines)


def main() -> None:
    args, names = serve.variant_args(__doc__ or "", VARIANTS, "bench/serve_nginx.py")
    binary = serve.ensure_wrk()
    try:
        with tempfile.TemporaryDirectory(prefix="appdeb-bench-nginx-") as tmp, \
                serve.installed(Path(tmp), {}) as setup:
            ports = dict(zip(names, serve.free_ports(len(names)), strict=True))
            targets = setup.targets[1:] + add_sites(setup.node, setup.package, names, ports, setup.targets[1].port)
            runs = serve.measure(binary, setup.node, targets, args.rounds, args.duration, 4, 2)
            print(table(targets, runs))
    except AppdebError as exc:
        sys.exit(f"bench/serve_nginx.py: {exc}")


if __name__ == "__main__":
    main()
