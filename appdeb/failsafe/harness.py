"""The whole benchmark run: build the scenario app, boot a node, run every server × scenario, clean up, report.

Each run starts its server fresh and stops it with SIGKILL afterwards, so one scenario's wedged
workers or leaked memory never colour the next. The node is the benchmark's own and is removed
whatever happens (an error, Ctrl-C); the JSON is rewritten after every run, so a crash late in a
long benchmark still leaves the runs done so far.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appdeb import __version__
from appdeb.build.pipeline import BuildOptions, build
from appdeb.errors import AppdebError
from appdeb.failsafe import deploy, memory, plot, servers
from appdeb.failsafe.client import HOST, Record, run_schedule
from appdeb.failsafe.report import RunResult, load_json, markdown, summarize, write_json
from appdeb.failsafe.scenarios import SCENARIOS, LoadShape, Scenario, schedule
from appdeb.node import harness as nodes

DEFAULT_APP_DIR = Path(__file__).resolve().parent.parent.parent / "bench" / "failsafe" / "app"
NODE_TARGET = "debian-12"  # the node image the benchmark boots (bookworm)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    """What to run and how hard; names are keys of servers.SERVERS and scenarios.SCENARIOS."""

    servers: tuple[str, ...]
    scenarios: tuple[str, ...]
    shape: LoadShape = field(default_factory=LoadShape)
    out_dir: Path = Path("build/failsafe")
    app_dir: Path = DEFAULT_APP_DIR
    instance: str = "fsb"  # an instance of app.yaml: it decides the ports (fst: a second run beside)


@dataclass
class BenchOutcome:
    """Where the results went, and the runs themselves."""

    json: Path
    markdown: Path
    png: Path | None
    results: list[RunResult] = field(default_factory=list)
    node: str = ""  # the node the runs used (removed by then)


def run_bench(options: BenchOptions, progress: Progress = print) -> BenchOutcome:
    """Build, deploy, measure and report; the node is removed whatever happens."""
    chosen = [servers.SERVERS[name] for name in options.servers]
    port, public_port = deploy.instance_ports(options.app_dir, options.instance)
    _check_ports_free([port, public_port, *(port + s.port_offset for s in chosen)])
    options.out_dir.mkdir(parents=True, exist_ok=True)
    outcome = BenchOutcome(options.out_dir / "failsafe.json", options.out_dir / "failsafe.md", None)
    meta = _meta(options)
    progress(f"building the scenario app ({options.app_dir}, instance {options.instance})")
    deb = build(options.app_dir, BuildOptions(instance=options.instance, out_dir=options.out_dir / "dist",
                                              target=NODE_TARGET)).deb
    name = outcome.node = f"fsbench-{options.instance}-{os.getpid() % 100000}"
    progress(f"booting node {name}")
    node = nodes.up(name)
    try:
        progress("installing " + ", ".join(sorted({"nginx", *(d for s in chosen for d in s.debs)})) +
                 f" and {deb.name} in the node")
        deploy.prepare(node, chosen)
        target = deploy.install(node, deb, public_port)
        deploy.configure(target, chosen)
        total = len(chosen) * len(options.scenarios)
        for server in chosen:
            for scenario_name in options.scenarios:
                label = f"[{len(outcome.results) + 1}/{total}] {server.name} × {scenario_name}"
                result = run_one(target, server, SCENARIOS[scenario_name], options.shape, progress, label)
                outcome.results.append(result)
                write_json(outcome.json, meta, outcome.results)
    finally:
        progress(f"removing node {name}")
        nodes.down(name)
    _write_reports(outcome, options, progress)
    return outcome


def run_one(target: servers.Target, server: servers.Server, scenario: Scenario, shape: LoadShape,
            progress: Progress, label: str) -> RunResult:
    """Start the server fresh, send the scenario's schedule while sampling memory, kill the server."""
    port = server.port(target)
    progress(f"{label}: starting {server.name} on {HOST}:{port}")
    servers.start(server, target)
    began = time.monotonic()
    try:
        records, trace = asyncio.run(_load(target, server, scenario, shape, progress, label))
    finally:
        servers.stop(server, target)
    result = RunResult(server.name, scenario.name, records, trace, shape.warmup, time.monotonic() - began)
    s = summarize(records, shape.warmup, trace)
    bad = "; ".join(f"{k}: " + ", ".join(f"{o} {n}" for o, n in c.items()) for k, c in s.kinds.items())
    progress(f"{label}: good {s.good_ok}/{s.good} ({s.success * 100:.0f} %), p50 {s.p50_ms} ms, "
             f"p99 {s.p99_ms} ms{'; ' + bad if bad else ''}; peak RSS {s.peak_rss_mib:.0f} MiB, "
             f"{s.started_procs} processes started ({result.wall:.0f} s)")
    return result


async def _load(target: servers.Target, server: servers.Server, scenario: Scenario, shape: LoadShape,
                progress: Progress, label: str) -> tuple[list[Record], memory.MemoryTrace]:
    """The schedule against the server, a memory sampler and a progress line every 10 s, together."""
    plan = schedule(scenario, shape)
    finished: list[Record] = []
    stop = asyncio.Event()
    origin = time.monotonic()
    watcher = asyncio.create_task(memory.watch(target.node.name, server.unit(target), origin, stop))
    ticker = asyncio.create_task(_tick(finished, len(plan), origin, progress, label))
    try:
        records = await run_schedule(server.port(target), plan, finished)
    finally:
        stop.set()
        ticker.cancel()
        trace = await watcher
    return records, trace


async def _tick(finished: list[Record], planned: int, origin: float, progress: Progress, label: str) -> None:
    while True:
        await asyncio.sleep(10)
        ok = sum(1 for r in finished if r.ok)
        progress(f"{label}: {time.monotonic() - origin:3.0f} s, {len(finished)}/{planned} done, {ok} ok")


def _check_ports_free(ports: Sequence[int]) -> None:
    """Refuse to start if anything listens on our ports: it would be measured instead of our servers."""
    for port in ports:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((HOST, port)) == 0:
                raise AppdebError(f"{HOST}:{port} is already in use (another benchmark or test?); "
                                  "the benchmark needs its ports to itself")


def _meta(options: BenchOptions) -> dict[str, Any]:
    return {
        "benchmark": "appdeb bench failsafe", "appdeb": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "kernel": platform.release()},
        "options": {"servers": list(options.servers), "scenarios": list(options.scenarios),
                    **asdict(options.shape), "warmup": options.shape.warmup, "instance": options.instance},
        "servers": {n: servers.SERVERS[n].summary for n in options.servers},
        "scenarios": {n: {"description": SCENARIOS[n].description, "mix": dict(SCENARIOS[n].mix)}
                      for n in options.scenarios},
    }


def _write_reports(outcome: BenchOutcome, options: BenchOptions, progress: Progress) -> None:
    summaries = {n: servers.SERVERS[n].summary for n in options.servers}
    descriptions = {n: SCENARIOS[n].description for n in options.scenarios}
    outcome.markdown.write_text(markdown(outcome.results, summaries, descriptions))
    progress(f"wrote {outcome.json} and {outcome.markdown}")
    if not plot.available():
        progress(f"no plot: matplotlib is not installed; {plot.INSTALL_HINT}")
        return
    outcome.png = outcome.markdown.with_suffix(".png")
    plot.plot(outcome.results, outcome.png, options.servers, options.scenarios)
    progress(f"wrote {outcome.png}")


def rewrite_reports(json_file: Path, out_dir: Path, progress: Progress = print) -> BenchOutcome:
    """The Markdown and PNG of an earlier run again, from its JSON (after changing the report, say)."""
    _meta_of_run, results = load_json(json_file)
    names = tuple(n for n in servers.SERVERS if any(r.server == n for r in results))
    scenario_names = tuple(n for n in SCENARIOS if any(r.scenario == n for r in results))
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = BenchOutcome(json_file, out_dir / "failsafe.md", None, results)
    _write_reports(outcome, BenchOptions(names, scenario_names, out_dir=out_dir), progress)
    return outcome
