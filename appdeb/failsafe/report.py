"""From per-request records to answers: success ratio and latency of the good requests, fates of the bad ones.

The figure that matters is what happens to the *good* requests (/ok) while others misbehave, so
every summary is about them first: the share answered 200 and their p50/p99 latency after the
warm-up. The bad requests get a count of outcomes per kind (did a wedge end by the server's
timeout, i.e. an error answer or a closed connection, or only by the client giving up?). Memory is
the peak summed RSS of the server's processes, and how many processes it had to start.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appdeb.failsafe.client import Record
from appdeb.failsafe.memory import MemoryTrace, MemSample


@dataclass
class RunResult:
    """One server under one scenario."""

    server: str
    scenario: str
    records: list[Record]
    memory: MemoryTrace
    warmup: float
    wall: float


@dataclass(frozen=True)
class Summary:
    """The numbers of one run that go into tables."""

    good: int
    good_ok: int
    p50_ms: float | None
    p99_ms: float | None
    good_errors: dict[str, int]
    kinds: dict[str, dict[str, int]]  # every other kind: outcome -> count
    peak_rss_mib: float
    started_procs: int

    @property
    def success(self) -> float:
        return self.good_ok / self.good if self.good else 0.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(records: Sequence[Record], warmup: float, memory: MemoryTrace | None = None) -> Summary:
    """Good requests are /ok after the warm-up; latency percentiles are over those answered 200."""
    good = [r for r in records if r.kind == "ok" and r.start >= warmup]
    latencies = [r.latency * 1000 for r in good if r.ok]
    kinds: dict[str, Counter[str]] = {}
    for r in records:
        if r.kind != "ok":
            kinds.setdefault(r.kind, Counter())[r.outcome] += 1
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return Summary(
        good=len(good), good_ok=len(latencies),
        p50_ms=None if p50 is None else round(p50, 1), p99_ms=None if p99 is None else round(p99, 1),
        good_errors=dict(Counter(r.outcome for r in good if not r.ok)),
        kinds={k: dict(v) for k, v in sorted(kinds.items())},
        peak_rss_mib=memory.peak_mib if memory else 0.0, started_procs=memory.started if memory else 0)


def timeline(records: Sequence[Record], bucket: float = 1.0) -> list[tuple[float, float, float | None]]:
    """(second, share of good requests answered 200, their median latency in ms) per bucket of start time."""
    buckets: dict[int, list[Record]] = {}
    for r in records:
        if r.kind == "ok":
            buckets.setdefault(int(r.start // bucket), []).append(r)
    out = []
    for key in sorted(buckets):
        group = buckets[key]
        ok = [r.latency * 1000 for r in group if r.ok]
        out.append((key * bucket, len(ok) / len(group), percentile(ok, 50)))
    return out


def run_json(result: RunResult) -> dict[str, Any]:
    """Everything about a run, per-request records included, as plain JSON data."""
    summary = summarize(result.records, result.warmup, result.memory)
    return {
        "server": result.server, "scenario": result.scenario, "wall_seconds": round(result.wall, 1),
        "warmup_seconds": result.warmup, "summary": {**asdict(summary), "success": round(summary.success, 4)},
        "memory": [[s.t, s.rss_mib, s.procs] for s in result.memory.samples],
        "records": [asdict(r) for r in result.records],
    }


def write_json(path: Path, meta: dict[str, Any], results: Sequence[RunResult]) -> None:
    """Write atomically, so a reader (or a crash mid-run) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**meta, "runs": [run_json(r) for r in results]}, indent=1) + "\n")
    tmp.replace(path)


def load_json(path: Path) -> tuple[dict[str, Any], list[RunResult]]:
    """An earlier run's file back as (meta, results), to redraw its tables and plot without re-running."""
    data = json.loads(path.read_text())
    results = []
    for run in data.pop("runs"):
        trace = MemoryTrace([MemSample(*s) for s in run["memory"]], run["summary"]["started_procs"])
        results.append(RunResult(run["server"], run["scenario"], [Record(**r) for r in run["records"]], trace,
                                 run["warmup_seconds"], run["wall_seconds"]))
    return data, results


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "–"


def cell(summary: Summary) -> str:
    """One matrix cell: good requests answered, and their p99 latency."""
    return f"{summary.success * 100:.0f} % · {_ms(summary.p99_ms)} ms"


def markdown(results: Sequence[RunResult], servers: dict[str, str], scenarios: dict[str, str],
             heading: str = "##") -> str:
    """A matrix (servers × scenarios: good answered · p99) and one detail table per scenario."""
    by_key = {(r.server, r.scenario): summarize(r.records, r.warmup, r.memory) for r in results}
    names = [s for s in servers if any(k[0] == s for k in by_key)]
    cols = [c for c in scenarios if any(k[1] == c for k in by_key)]
    lines = [f"{heading} Good requests answered 200 (after warm-up) · their p99 latency", "",
             "| server | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name in names:
        cells = [cell(by_key[(name, c)]) if (name, c) in by_key else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for col in cols:
        lines += ["", f"{heading}# {col}: {scenarios[col]}", "",
                  "| server | good ok | p50 ms | p99 ms | good failures | other requests: outcomes "
                  "| peak RSS MiB | procs started |", "|---|---|---|---|---|---|---|---|"]
        for name in names:
            if (name, col) not in by_key:
                continue
            s = by_key[(name, col)]
            other = "; ".join(f"{kind}: {_counts(c)}" for kind, c in s.kinds.items()) or "–"
            lines.append(f"| {name} | {s.good_ok}/{s.good} | {_ms(s.p50_ms)} | {_ms(s.p99_ms)} "
                         f"| {_counts(s.good_errors)} | {other} | {s.peak_rss_mib:.0f} | {s.started_procs} |")
    lines += ["", "Servers:", ""] + [f"- **{n}**: {servers[n]}" for n in names]
    return "\n".join(lines) + "\n"
