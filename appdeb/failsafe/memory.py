"""The memory of one server in a node: the RSS of every process of its systemd unit, sampled from the host.

A node's processes are ordinary host processes in the node's cgroup (appdeb/NAME, see
appdeb/nodeproc.py), and systemd inside the node gives every unit a cgroup below it. So the host
can list a unit's processes from that cgroup and read each one's VmRSS from /proc without entering
the node (and without procps, which the node image does not have). Summing RSS counts pages shared
between forked workers more than once; it is the number an OOM killer and `ps` users look at.
The set of pids seen over a run also tells how many processes were started in it (killed workers
replaced, a crashed server restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from appdeb.node.processes import cgroups


@dataclass(frozen=True)
class MemSample:
    """One look at the server: seconds since the run began, summed RSS in MiB, number of processes."""

    t: float
    rss_mib: float
    procs: int


@dataclass
class MemoryTrace:
    """Samples over a run, and every pid seen (so new processes are countable)."""

    samples: list[MemSample] = field(default_factory=list)
    started: int = 0  # processes that appeared after the first sample: respawned workers, restarts
    pids_seen: set[int] = field(default_factory=set)
    initial: set[int] = field(default_factory=set)

    @property
    def peak_mib(self) -> float:
        return max((s.rss_mib for s in self.samples), default=0.0)


def unit_pids(node_name: str, unit: str) -> set[int]:
    """Host pids of every process in the unit's cgroup (and its sub-cgroups) inside the node."""
    pids: set[int] = set()
    for root in cgroups(node_name):
        for unit_dir in root.glob(f"**/{unit}"):
            for procs in unit_dir.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids |= {int(p) for p in procs.read_text().split()}
    return pids


def rss_kib(pid: int) -> int:
    """VmRSS of a host pid in KiB; 0 if it is gone (or a kernel thread)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sample(node_name: str, unit: str, origin: float, trace: MemoryTrace) -> MemSample:
    """Take one sample now and add it to the trace."""
    pids = unit_pids(node_name, unit)
    if not trace.samples:
        trace.initial = set(pids)
    trace.pids_seen |= pids
    trace.started = len(trace.pids_seen - trace.initial)
    rss = [rss_kib(p) for p in pids]
    point = MemSample(round(time.monotonic() - origin, 2), round(sum(rss) / 1024, 1), sum(1 for r in rss if r))
    trace.samples.append(point)
    return point


async def watch(node_name: str, unit: str, origin: float, stop: asyncio.Event,
                interval: float = 1.0) -> MemoryTrace:
    """Sample every `interval` seconds until `stop` is set (a run's load is finished)."""
    trace = MemoryTrace()
    while True:
        sample(node_name, unit, origin, trace)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            sample(node_name, unit, origin, trace)
            return trace
