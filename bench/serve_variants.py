#!/usr/bin/env python3
"""Where the generated unit's cost per request goes: copies of it with one difference removed each.

Usage: python3 bench/serve_variants.py [--rounds 5] [--duration 4] [--variants nomax,noseccomp,…]

Sets up what bench/serve.py does (examples/hello built and installed on a node, gunicorn run by hand
beside it), then adds copies of the package's web unit and socket, each on its own port and with one
difference: unit lines dropped (the seccomp filter, all of _hardening.j2 but the user, directory and
credential, the socket), or an app.json field changed (through a copy of /opt/PKG whose launcher
runs that copy: max_requests, max_worker_memory). wrk loads (a) the hand-run gunicorn, (b) the unit
and every variant in interleaved rounds (bench/serve.py's measure), and the table gives each one's
median req/s and server CPU per request, the latter also relative to (b): the figure to trust when
the machine is shared. docs/failsafe.md ("What the generated unit costs per request") has the
results that set web.max_requests' default. Needs root; the node is removed at the end.
"""

from __future__ import annotations

import json
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

SECCOMP = ("SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber")
HARDENING = (*SECCOMP, "UMask", "NoNewPrivileges", "ProtectSystem", "ReadWritePaths", "ProtectHome", "PrivateTmp",
             "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
             "ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset",
             "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
             "LockPersonality", "RemoveIPC", "CapabilityBoundingSet", "AmbientCapabilities")


@dataclass(frozen=True)
class Variant:
    """The generated unit with some lines dropped, or some app.json web fields changed, or no socket."""

    summary: str
    drop: tuple[str, ...] = ()
    web: tuple[tuple[str, int], ...] = ()
    socket: bool = True


VARIANTS = {
    "onesocket": Variant("the port's socket only (no nginx one)"),
    "nomax": Variant("no recycling (max_requests 0)", web=(("max_requests", 0),)),
    "max10k": Variant("max_requests 10000 (+1000)", web=(("max_requests", 10000), ("max_requests_jitter", 1000))),
    "max1k": Variant("max_requests 1000 (+100)", web=(("max_requests", 1000), ("max_requests_jitter", 100))),
    "nomem": Variant("no memory check per request", web=(("max_worker_memory", 0),)),
    "noseccomp": Variant("no seccomp filter", drop=SECCOMP),
    "nohard": Variant("no hardening but user, dirs", drop=HARDENING),
    "nosocket": Variant("no socket activation", socket=False),
    "bare": Variant("all four off, no recycling", drop=HARDENING, socket=False,
                    web=(("max_requests", 0), ("max_worker_memory", 0))),
}


def unit_text(node: nodes.Node, unit: str) -> str:
    """The installed unit file as systemd reads it, without `systemctl cat`'s path comment."""
    return "\n".join(line for line in in_node(node, ["systemctl", "cat", unit]).splitlines()
                     if not line.startswith("# /")) + "\n"


def root_copy(node: nodes.Node, package: str, name: str, web: dict[str, int]) -> str:
    """A copy of /opt/PKG whose app.json has the web fields changed; the ExecStart that runs it."""
    root = f"/opt/sv-{name}"
    in_node(node, ["sh", "-c", f"rm -rf {root} && cp -a /opt/{package} {root}"])
    app = json.loads(in_node(node, ["cat", f"{root}/appdeb/app.json"]))
    app["web"].update(web)
    in_node(node, ["sh", "-c", f"cat > {root}/appdeb/app.json"], input=json.dumps(app))
    return f"ExecStart=/usr/bin/python3 -I {root}/appdeb/run.py {root} web"


def add_variant(node: nodes.Node, package: str, name: str, variant: Variant, port: int) -> serve.Target:
    """Write and start sv-NAME.service (and .socket) next to the package's own unit."""
    service = unit_text(node, f"{package}.service").replace(f"{package}.socket", f"sv-{name}.socket")
    service = "".join(line for line in service.splitlines(keepends=True) if line.split("=", 1)[0] not in variant.drop)
    web = dict(variant.web)
    if not variant.socket:  # the launcher takes the port from app.json, so the copy carries it
        web["port"] = port
        service = re.sub(r"(?m)^(After|Requires)=.*\n", "", service)
    if web:
        service = re.sub(r"(?m)^ExecStart=.*$", root_copy(node, package, name, web), service)
    in_node(node, ["sh", "-c", f"cat > /etc/systemd/system/sv-{name}.service"], input=service)
    if variant.socket:
        socket = unit_text(node, f"{package}.socket").replace(f"{package}.service", f"sv-{name}.service")
        socket = re.sub(r"(?m)^ListenStream=.*$", f"ListenStream=127.0.0.1:{port}", socket)
        in_node(node, ["sh", "-c", f"cat > /etc/systemd/system/sv-{name}.socket"], input=socket)
    in_node(node, ["systemctl", "daemon-reload"])
    in_node(node, ["systemctl", "start", f"sv-{name}.service"])
    serve.wait_answers(port)
    return serve.Target(name, variant.summary, port, (f"sv-{name}.service",))


def table(targets: tuple[serve.Target, ...], runs: dict[str, list[serve.Run]]) -> str:
    """Median req/s and CPU per request of each target, the CPU also relative to the unit (b)."""
    cpu = {k: statistics.median(r.cpu_us for r in v) for k, v in runs.items()}
    lines = ["", f"{'':<10} {'':<30} {'req/s':>7} {'µs CPU/req':>11} {'× (b)':>6}"]
    for t in targets:
        rate = statistics.median(r.rate for r in runs[t.key])
        lines.append(f"{t.key:<10} {t.label:<30} {rate:7.0f} {cpu[t.key]:11.0f} {cpu[t.key] / cpu['b']:6.2f}")
    return "\n".join(lines)


def main() -> None:
    args, names = serve.variant_args(__doc__ or "", VARIANTS, "bench/serve_variants.py")
    binary = serve.ensure_wrk()
    try:
        with tempfile.TemporaryDirectory(prefix="appdeb-bench-variants-") as tmp, \
                serve.installed(Path(tmp), {}) as setup:
            ports = dict(zip(names, serve.free_ports(len(names)), strict=True))
            extra = tuple(add_variant(setup.node, setup.package, n, VARIANTS[n], ports[n]) for n in names)
            targets = setup.targets[:2] + extra
            runs = serve.measure(binary, setup.node, targets, args.rounds, args.duration, 4, 2)
            print(table(targets, runs))
    except AppdebError as exc:
        sys.exit(f"bench/serve_variants.py: {exc}")


if __name__ == "__main__":
    main()
