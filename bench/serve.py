#!/usr/bin/env python3
"""Requests per second of the generated web service next to gunicorn run by hand, and through nginx.

Usage: python3 bench/serve.py [--rounds 3] [--duration 5] [--connections 4] [--threads 2]

Builds examples/hello (instance "bench", with its nginx site) with the real pipeline, boots a node
(host network), installs nginx and the package there, and starts gunicorn by hand beside the
package's unit: the vendored gunicorn through `PKG run` (the app's user and environment) with the
same number of workers and nothing else (`-w N --bind 127.0.0.1:PORT hello:application`), in a
plain transient unit (no hardening, no appdeb settings). Then wrk, on this machine, loads each of
(a) the hand-run gunicorn, (b) the generated unit directly and (c) the package's nginx site, one
after the other in interleaved rounds (the order rotates every round), and prints each one's
req/s per round, the medians and the ratios b/a and c/b, and beside them the CPU time the serving
processes (their units' cgroups, nginx included for c) spent per request: steadier than req/s when
other work shares the machine. Needs root; installs wrk if missing. The node is removed at the end
whatever happens.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appdeb.build.pipeline import BuildOptions, build
from appdeb.errors import AppdebError
from appdeb.failsafe import deploy
from appdeb.failsafe.memory import unit_pids
from appdeb.failsafe.servers import in_node
from appdeb.node import harness as nodes
from appdeb.runner import run

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = "bench"
HAND_UNIT = "serve-bench-hand.service"
WORKERS = 6  # web.workers' default, written into the app so both sides surely run the same number
GOAL_DIRECT, GOAL_NGINX = 0.95, 0.8


@dataclass(frozen=True)
class Target:
    """One way of serving the same app: a label and the loopback port wrk loads."""

    key: str
    label: str
    port: int
    units: tuple[str, ...]  # the node's units whose processes serve it (their CPU time is counted)


@dataclass(frozen=True)
class Setup:
    """The node with the package installed, and the three targets."""

    node: nodes.Node
    package: str
    targets: tuple[Target, ...]


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (nodes share the host's network: never a fixed one)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def variant_args(doc: str, variants: dict[str, object], script: str) -> tuple[argparse.Namespace, list[str]]:
    """The options of a variants bench (bench/serve_variants.py, bench/serve_nginx.py) and the variants asked
    for; exits with a message on an unknown one, or when not root (a node is booted)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run (default 4)")
    parser.add_argument("--variants", default=",".join(variants), help=f"comma-separated, of: {', '.join(variants)}")
    args = parser.parse_args()
    names = [n for n in args.variants.split(",") if n]
    if unknown := [n for n in names if n not in variants]:
        sys.exit(f"unknown variants: {', '.join(unknown)} (known: {', '.join(variants)})")
    if os.geteuid() != 0:
        sys.exit(f"{script} needs root (it boots a node)")
    return args, names


def ensure_wrk() -> str:
    """wrk from Debian's archive, installed on this machine when it is missing."""
    if shutil.which("wrk") is None:
        print("installing wrk (apt-get install -y wrk)", flush=True)
        run(["apt-get", "install", "-y", "wrk"], timeout=600)
    found = shutil.which("wrk")
    if found is None:
        raise AppdebError("wrk is not installed and apt-get could not install it")
    return found


def bench_app(dest: Path, port: int, public_port: int, web: dict[str, object]) -> Path:
    """A copy of examples/hello with its nginx site on and the ports of the "bench" instance chosen."""
    shutil.copytree(ROOT / "examples" / "hello", dest, ignore=shutil.ignore_patterns(".appdeb"))
    spec = yaml.safe_load((dest / "app.yaml").read_text())
    spec["web"] = {**spec.get("web", {}), "nginx": True, "workers": WORKERS, **web}
    spec["instances"] = {INSTANCE: {"port": port, "public_port": public_port}}
    (dest / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def wait_answers(port: int, timeout: float = 60.0) -> None:
    """Until GET / on the port answers 200 (a unit still starting its workers does not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AppdebError(f"nothing answered 200 on 127.0.0.1:{port} within {timeout:.0f}s")
        time.sleep(0.3)


def start_by_hand(node: nodes.Node, package: str, workers: int, port: int) -> None:
    """gunicorn as a person would run it: the vendored one, `PKG run`, default settings but the workers."""
    in_node(node, ["systemd-run", "--unit", HAND_UNIT, "--collect", "--quiet", "--",
                   package, "run", "gunicorn", "-w", str(workers), "--bind", f"127.0.0.1:{port}",
                   "hello:application"])


@contextmanager
def installed(tmp: Path, web: dict[str, object]) -> Iterator[Setup]:
    """Build, boot, install; yields the targets; the node goes down afterwards, whatever happened."""
    port, public_port, hand_port = free_ports(3)
    print("building examples/hello (instance bench, nginx site)", flush=True)
    result = build(bench_app(tmp / "hello", port, public_port, web),
                   BuildOptions(instance=INSTANCE, out_dir=tmp / "dist", python_version="3.11"))
    name = f"bsrv-{os.getpid()}"
    print(f"booting node {name}", flush=True)
    node = nodes.up(name)
    try:
        print("installing nginx and the package", flush=True)
        deploy.prepare(node, [])
        nodes.install(node, [result.deb])
        start_by_hand(node, result.package, WORKERS, hand_port)
        unit = f"{result.package}.service"
        # `PKG run` as root runs its command in a transient scope of its own (appdeb-LABEL-HEX.scope): the
        # hand-run gunicorn's processes are there, beside the unit that started it
        targets = (Target("a", f"gunicorn -w {WORKERS} by hand", hand_port, (HAND_UNIT, "appdeb-*.scope")),
                   Target("b", "generated unit, direct", port, (unit,)),
                   Target("c", "generated unit, nginx site", public_port, (unit, "nginx.service")))
        for t in targets:
            wait_answers(t.port)
        yield Setup(node, result.package, targets)
    finally:
        nodes.down(name)


def cpu_ticks(node: nodes.Node, units: tuple[str, ...]) -> int:
    """CPU time (clock ticks) the units' processes used so far, reaped children included.

    A worker recycled during a run ends up in its parent's cutime/cstime, so the difference of two
    readings counts it once. The CPU a request costs the server is steadier than req/s when other
    work shares the machine.
    """
    total = 0
    for pid in {p for u in units for p in unit_pids(node.name, u)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile: its time is in its parent's cutime
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total


@dataclass
class Run:
    """One wrk run against one target."""

    rate: float  # requests/s
    cpu_us: float  # server CPU µs per request
    errors: str


def wrk(binary: str, node: nodes.Node, target: Target, seconds: float, connections: int, threads: int) -> Run:
    """One wrk run against GET / on the target's port: its req/s, the server's CPU per request, errors."""
    before = cpu_ticks(node, target.units)
    out = run([binary, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", f"http://127.0.0.1:{target.port}/"],
              timeout=seconds + 60).stdout
    used = cpu_ticks(node, target.units) - before
    rate, count = re.search(r"Requests/sec:\s+([0-9.]+)", out), re.search(r"(\d+) requests in", out)
    if rate is None or count is None or not int(count.group(1)):
        raise AppdebError(f"wrk printed no requests:\n{out}")
    errors = [line.strip() for line in out.splitlines() if line.strip().startswith(("Non-2xx", "Socket errors"))]
    cpu_us = used * 1e6 / os.sysconf("SC_CLK_TCK") / int(count.group(1))
    return Run(float(rate.group(1)), cpu_us, "; ".join(errors))


def measure(binary: str, node: nodes.Node, targets: tuple[Target, ...], rounds: int, seconds: float,
            connections: int, threads: int) -> dict[str, list[Run]]:
    """Interleaved rounds, the order rotated each round so no target always runs first or last."""
    for t in targets:  # warm-up: imports done, every worker has served, nginx has its upstream
        wrk(binary, node, t, 1, connections, threads)
    runs: dict[str, list[Run]] = {t.key: [] for t in targets}
    for r in range(rounds):
        order = targets[r % len(targets):] + targets[:r % len(targets)]
        for t in order:
            one = wrk(binary, node, t, seconds, connections, threads)
            runs[t.key].append(one)
            print(f"round {r + 1}/{rounds}  {t.key}) {t.label:<30} {one.rate:9.0f} req/s {one.cpu_us:7.0f} µs CPU/req"
                  + (f"  ({one.errors})" if one.errors else ""), flush=True)
    return runs


def report(targets: tuple[Target, ...], runs: dict[str, list[Run]]) -> str:
    """Medians, spread and the two ratios against their goals."""
    med = {k: statistics.median(r.rate for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r.cpu_us for r in v) for k, v in runs.items()}
    lines = ["", "median req/s (min–max over the rounds), median server CPU per request:"]
    for t in targets:
        rates = [r.rate for r in runs[t.key]]
        lines.append(f"  {t.key}) {t.label:<30} {med[t.key]:9.0f}  ({min(rates):.0f}–{max(rates):.0f})"
                     f"  {cpu[t.key]:5.0f} µs")
    for name, num, den, goal in (("b/a", "b", "a", GOAL_DIRECT), ("c/b", "c", "b", GOAL_NGINX)):
        ratio = med[num] / med[den]
        lines.append(f"  {name} = {ratio:.2f}  (goal ≥ {goal:.2f}: {'met' if ratio >= goal else 'not met'}); "
                     f"CPU per request {cpu[num] / cpu[den]:.2f}×")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--access-log", action="store_true", help="build with web.access_log: true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/serve.py needs root (it boots a node)")
    binary = ensure_wrk()
    web: dict[str, object] = {"access_log": True} if args.access_log else {}
    try:
        with tempfile.TemporaryDirectory(prefix="appdeb-bench-serve-") as tmp, installed(Path(tmp), web) as setup:
            print(f"wrk: {args.rounds} rounds × {args.duration:g} s, {args.connections} connections, "
                  f"{args.threads} threads; {os.cpu_count()} CPUs", flush=True)
            runs = measure(binary, setup.node, setup.targets, args.rounds, args.duration, args.connections,
                           args.threads)
            print(report(setup.targets, runs))
    except AppdebError as exc:
        sys.exit(f"bench/serve.py: {exc}")


if __name__ == "__main__":
    main()
