"""Scenarios: which fraction of the requests misbehave and how, turned into one fixed schedule per scenario.

Each scenario is mostly good requests (/ok) with a fraction of one or more bad kinds mixed in,
because the question is what the *other* requests see: a good server serves the 99 % while 1 %
wedge, a bad one lets its pool fill with wedged requests and stops. The schedule is the same for
every server (a seeded shuffle, fixed per scenario), so servers are compared on identical traffic.
The first seconds are a warm-up of good requests only, left out of the latency figures.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from appdeb.errors import AppdebError
from appdeb.failsafe.client import RequestSpec

SLOW_KINDS = ("slow-upload", "slow-download")
LARGE_UPLOAD = 10 << 20  # under the nginx site's client_max_body_size (20m)
SLOW_UPLOAD = 1 << 20  # "1 MB over 30 s"
SLOW_DOWNLOAD = 16 << 20  # more than the kernel buffers between server and client, so the server waits

KIND_PATHS = {
    "ok": "/ok", "cpu": "/cpu", "big": "/big?n=100000", "io": "/io", "sleep": "/sleep",
    "wedge-sleep": "/wedge/sleep", "wedge-busy": "/wedge/busy", "wedge-deadlock": "/wedge/deadlock",
    "wedge-c": "/wedge/c", "segfault": "/segfault", "leak": "/leak?mb=10",
    "large-upload": "/upload", "slow-upload": "/upload", "slow-download": f"/big?n={SLOW_DOWNLOAD}",
}


@dataclass(frozen=True)
class Scenario:
    """A named mix: (kind, fraction of the requests after the warm-up); the rest are good (/ok)."""

    name: str
    description: str
    mix: tuple[tuple[str, float], ...] = ()


SCENARIOS = {s.name: s for s in (
    Scenario("ok", "only fast good requests: the baseline"),
    Scenario("work", "honest work: CPU-bound loops mixed with file reads, big responses and 1 s sleeps "
                     "(the GIL's I/O-versus-CPU mix)",
             (("cpu", 0.2), ("io", 0.1), ("big", 0.1), ("sleep", 0.05))),
    Scenario("wedge-sleep", "1 % of requests sleep 120 s", (("wedge-sleep", 0.01),)),
    Scenario("wedge-busy", "1 % of requests spin in a Python loop forever", (("wedge-busy", 0.01),)),
    Scenario("wedge-deadlock", "1 % of requests acquire a lock they hold", (("wedge-deadlock", 0.01),)),
    Scenario("wedge-c", "1 % of requests sleep in C holding the GIL, forever", (("wedge-c", 0.01),)),
    Scenario("segfault", "1 % of requests crash their process (SIGSEGV)", (("segfault", 0.01),)),
    Scenario("leak", "10 % of requests leak 10 MiB each", (("leak", 0.10),)),
    Scenario("slow-upload", "2 % of requests upload 1 MiB over the slow period (30 s)", (("slow-upload", 0.02),)),
    Scenario("slow-download", "2 % of requests read 16 MiB at 16 MiB per slow period",
             (("slow-download", 0.02),)),
    Scenario("large-upload", "5 % of requests upload 10 MiB at full speed", (("large-upload", 0.05),)),
    Scenario("all", "everything at once: 1 % of each wedge, 1 % segfaults, 10 % leaks, CPU and I/O work, "
                    "slow and large uploads, slow downloads",
             (("wedge-sleep", 0.01), ("wedge-busy", 0.01), ("wedge-deadlock", 0.01), ("wedge-c", 0.01),
              ("segfault", 0.01), ("leak", 0.10), ("cpu", 0.10), ("io", 0.05), ("big", 0.05), ("sleep", 0.02),
              ("slow-upload", 0.01), ("slow-download", 0.01), ("large-upload", 0.02))),
)}


@dataclass(frozen=True)
class LoadShape:
    """How hard and how long: requests per second, seconds of sending, timeouts."""

    duration: float = 30.0
    rate: float = 20.0  # 1 % of a 30 s run is then 5 requests, not 2
    timeout: float = 15.0  # per request, past the servers' 10 s so their own kills show; slow transfers get more
    slow_seconds: float = 30.0

    @property
    def warmup(self) -> float:
        """Good requests only, and no latency figures: the first fifth of the run, at most 5 s."""
        return min(5.0, self.duration / 5)


def request_for(kind: str, shape: LoadShape) -> RequestSpec:
    """The request of one kind; slow transfers take slow_seconds on purpose, so their timeout allows it."""
    path = KIND_PATHS[kind]
    if kind == "large-upload":
        return RequestSpec(kind, path, "POST", body=LARGE_UPLOAD, timeout=shape.timeout)
    if kind == "slow-upload":
        return RequestSpec(kind, path, "POST", body=SLOW_UPLOAD, send_seconds=shape.slow_seconds,
                           timeout=shape.slow_seconds + shape.timeout)
    if kind == "slow-download":
        return RequestSpec(kind, path, read_rate=SLOW_DOWNLOAD / shape.slow_seconds,
                           timeout=shape.slow_seconds + shape.timeout)
    return RequestSpec(kind, path, timeout=shape.timeout)


def schedule(scenario: Scenario, shape: LoadShape) -> list[tuple[float, RequestSpec]]:
    """(offset, request) at a fixed rate; bad kinds take seeded, evenly spread slots after the warm-up.

    Each bad kind gets round(fraction × slots) slots, at least one, one at random in each of as many
    equal stretches of the run: spread like steady traffic, never all in one corner by chance. Slow
    transfers start in the first half of the run after the warm-up, so they finish (or fail) within
    about slow_seconds of its end. The seed is the mix's fractions, not its kinds: scenarios of the
    same shape (every 1 % wedge, the segfaults) misbehave at the same moments, so kinds compare too.
    """
    count = round(shape.rate * shape.duration)
    offsets = [i / shape.rate for i in range(count)]
    kinds = ["ok"] * count
    after = [i for i in range(count) if offsets[i] >= shape.warmup]
    early = [i for i in after if offsets[i] <= shape.warmup + (shape.duration - shape.warmup) / 2]
    rng = random.Random(zlib.crc32(repr([fraction for _, fraction in scenario.mix]).encode()))
    for kind, fraction in scenario.mix:
        window = early if kind in SLOW_KINDS else after
        for i in _spread(rng, window, kinds, max(1, round(fraction * len(after)))):
            kinds[i] = kind
    return [(offsets[i], request_for(kinds[i], shape)) for i in range(count)]


def _spread(rng: random.Random, window: list[int], kinds: list[str], count: int) -> list[int]:
    """`count` free slots of `window`, one at random in each of `count` equal stretches of it."""
    picked: list[int] = []
    for k in range(count):
        stretch = window[k * len(window) // count:(k + 1) * len(window) // count]
        free = [i for i in stretch if kinds[i] == "ok" and i not in picked]
        free = free or [i for i in window if kinds[i] == "ok" and i not in picked]
        if not free:
            break
        picked.append(rng.choice(free))
    return picked


def pick(names: str, known: Mapping[str, object], what: str) -> tuple[str, ...]:
    """Comma-separated names (or "all") checked against the known ones, in the known order."""
    if names.strip() in ("", "all"):
        return tuple(known)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise AppdebError(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return tuple(n for n in known if n in wanted)
