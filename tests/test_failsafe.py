"""The fail-safe benchmark's client, schedules and aggregation, against a tiny asyncio server on 127.0.0.1 (no node).

The client has to be trusted before its numbers are: that it fires on schedule while other requests
hang, that a slow upload really arrives slowly and a slow download really makes the server wait, and
that every way a request can fail is named correctly.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from appdeb.errors import AppdebError
from appdeb.failsafe import client
from appdeb.failsafe.client import Record, RequestSpec, fetch, run_schedule
from appdeb.failsafe.deploy import parse_env
from appdeb.failsafe.memory import MemoryTrace, MemSample
from appdeb.failsafe.report import percentile, summarize, timeline
from appdeb.failsafe.scenarios import SCENARIOS, SLOW_KINDS, LoadShape, pick, schedule

Seen = dict[str, Any]


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
    """A deliberately small HTTP/1.1 server whose paths misbehave like the scenario app's, and a diary."""
    head = await reader.readuntil(b"\r\n\r\n")
    began = time.monotonic()
    path = head.split()[1].decode()
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    body = await reader.readexactly(length) if length else b""
    seen["body_seconds"] = time.monotonic() - began
    sock = writer.get_extra_info("socket")
    if path == "/hang":
        await asyncio.sleep(30)
    elif path == "/close":
        writer.close()
        return
    elif path == "/reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return
    elif path == "/short":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    elif path.startswith("/big"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 << 10)
        size = int(path.split("=")[1])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
        await writer.drain()
        seen["drained_after"] = time.monotonic() - began
    else:
        answer = str(len(body)).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
    await writer.drain()
    writer.close()


def serve(test: Callable[[int, Seen], Awaitable[Any]]) -> Any:
    """Run `test(port, seen)` against the server above on a free port of 127.0.0.1."""
    async def main() -> Any:
        seen: Seen = {}
        server = await asyncio.start_server(lambda r, w: _handle(r, w, seen), client.HOST, 0)
        async with server:
            return await test(server.sockets[0].getsockname()[1], seen)
    return asyncio.run(main())


def test_requests_go_out_at_the_scheduled_rate_even_while_earlier_ones_hang() -> None:
    plan = [(i / 40, RequestSpec("hang" if i % 5 == 0 else "ok", "/hang" if i % 5 == 0 else "/ok", timeout=1.0))
            for i in range(20)]
    started = time.monotonic()
    records = serve(lambda port, _: run_schedule(port, plan))
    assert time.monotonic() - started < 1.0 + 19 / 40 + 2.5  # bounded by the last timeout (+ slack: loaded CI)
    assert [r.kind for r in records] == [spec.kind for _, spec in plan]
    errors = [abs(record.start - offset) for (offset, _), record in zip(plan, records, strict=True)]
    # absolute offsets, no drift: a client that waited for the hanging requests (1 s each) would send the rest
    # late by a second and more; one late by a scheduling hiccup of a loaded machine (0.15 s seen in CI) is not
    assert max(errors) < 0.5 and statistics.median(errors) < 0.01, errors
    assert {r.outcome for r in records if r.kind == "ok"} == {"ok"}
    assert {r.outcome for r in records if r.kind == "hang"} == {"timeout"}
    assert all(0.95 < r.latency < 1.3 for r in records if r.kind == "hang")


def test_slow_sender_spreads_its_body_over_send_seconds() -> None:
    spec = RequestSpec("slow-upload", "/upload", "POST", body=20_000, send_seconds=1.0, timeout=5)
    record, seen = serve(lambda port, seen: _with_seen(fetch(port, spec, time.monotonic()), seen))
    assert record.ok and record.status == 200
    assert seen["body_seconds"] >= 0.8  # ten pieces, the last one 0.9 s after the first
    assert record.latency >= 0.85


def test_slow_reader_makes_the_server_wait() -> None:
    size, rate = 2 << 20, 2 << 20  # two seconds' worth would be too slow a test: one second
    spec = RequestSpec("slow-download", f"/big?n={size}", read_rate=rate, timeout=10)
    record, seen = serve(lambda port, seen: _with_seen(fetch(port, spec, time.monotonic()), seen))
    assert record.ok and record.received == size
    assert 0.9 <= record.latency < 3.0
    assert seen["drained_after"] >= 0.5  # the server could not hand its body off at once


async def _with_seen(coro: Awaitable[Record], seen: Seen) -> tuple[Record, Seen]:
    return await coro, seen


@pytest.mark.parametrize(("path", "outcome"), [
    ("/hang", "timeout"), ("/close", "closed"), ("/short", "truncated"), ("/reset", "reset")])
def test_each_failure_gets_its_name(path: str, outcome: str) -> None:
    spec = RequestSpec("bad", path, timeout=0.5)
    record = serve(lambda port, _: fetch(port, spec, time.monotonic()))
    assert record.outcome == outcome, record
    assert not record.ok


def test_a_closed_port_is_refused() -> None:
    with socket.socket() as sock:
        sock.bind((client.HOST, 0))
        port = sock.getsockname()[1]  # bound, never listening: nothing accepts
        record = asyncio.run(fetch(port, RequestSpec("ok", timeout=2), time.monotonic()))
    assert record.outcome == "refused"


def test_a_run_is_bounded_in_requests_and_seconds() -> None:
    with pytest.raises(ValueError, match="limit"):
        asyncio.run(run_schedule(1, [(0.0, RequestSpec("ok"))] * (client.MAX_REQUESTS + 1)))
    with pytest.raises(ValueError, match="limit"):
        asyncio.run(run_schedule(1, [(client.MAX_SECONDS, RequestSpec("ok"))]))


def _rec(kind: str, start: float, latency: float = 0.01, error: str | None = None) -> Record:
    return Record(kind, start, latency, None if error else 200, error, 3)


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_summary_counts_good_requests_after_the_warmup_only() -> None:
    records = [_rec("ok", 0.5, 5.0), *(_rec("ok", 2 + i / 10, (i + 1) / 1000) for i in range(10)),
               _rec("ok", 3.5, 10.0, "timeout"), _rec("wedge-c", 3.0, 10.0, "timeout"), _rec("leak", 3.0)]
    trace = MemoryTrace([MemSample(0, 50.0, 3), MemSample(1, 80.5, 3)], started=2)
    s = summarize(records, warmup=1.0, memory=trace)
    assert (s.good, s.good_ok, s.success) == (11, 10, pytest.approx(10 / 11))
    assert s.p50_ms == pytest.approx(5.5) and s.p99_ms == pytest.approx(9.9)  # the warm-up's 5 s is left out
    assert s.good_errors == {"timeout": 1}
    assert s.kinds == {"leak": {"ok": 1}, "wedge-c": {"timeout": 1}}
    assert (s.peak_rss_mib, s.started_procs) == (80.5, 2)
    assert timeline(records)[0] == (0.0, 1.0, 5000.0)
    assert [p[0] for p in timeline(records)] == [0.0, 2.0, 3.0]  # seconds without good requests are left out
    assert timeline(records)[-1] == (3.0, 0.0, None)


def test_schedules_are_fixed_per_scenario_and_keep_bad_requests_out_of_the_warmup() -> None:
    shape = LoadShape(duration=30, rate=10, timeout=10, slow_seconds=30)
    plan = schedule(SCENARIOS["all"], shape)
    assert plan == schedule(SCENARIOS["all"], shape)  # every server sees the same traffic
    assert len(plan) == 300 and plan[1][0] == pytest.approx(0.1)
    kinds = [spec.kind for _, spec in plan]
    assert all(spec.kind == "ok" for offset, spec in plan if offset < shape.warmup)
    assert kinds.count("leak") == 25 and kinds.count("wedge-c") == 2 and kinds.count("slow-upload") == 2
    assert all(offset <= 17.5 for offset, spec in plan if spec.kind in SLOW_KINDS)
    assert all(spec.timeout == 40 for _, spec in plan if spec.kind in SLOW_KINDS)
    tiny = schedule(SCENARIOS["wedge-busy"], LoadShape(duration=5, rate=4))
    assert [spec.kind for _, spec in tiny].count("wedge-busy") == 1  # at least one of each bad kind


def test_pick_and_parse_env() -> None:
    assert pick("all", SCENARIOS, "scenarios") == tuple(SCENARIOS)
    assert pick("leak,ok", SCENARIOS, "scenarios") == ("ok", "leak")
    with pytest.raises(AppdebError, match="unknown scenarios: nope"):
        pick("ok,nope", SCENARIOS, "scenarios")
    assert parse_env("A=1\nB='two words'\nC=''\nnoise\n") == {"A": "1", "B": "two words", "C": ""}


def test_the_scenario_app_pins_gunicorn_like_the_platform() -> None:
    """Its own gunicorn line wins over the platform's, so it must say the same thing to test appdeb's default."""
    import yaml

    from appdeb.build.platforms import ASGI_REQUIREMENTS, GUNICORN_REQUIREMENT
    from appdeb.failsafe.harness import DEFAULT_APP_DIR

    spec = yaml.safe_load((DEFAULT_APP_DIR / "app.yaml").read_text())
    assert GUNICORN_REQUIREMENT in spec["require"]["pip"]
    assert set(ASGI_REQUIREMENTS) <= set(spec["require"]["pip"])  # the ASGI rows run what the platform vendors
    assert {"fsb", "fst"} <= set(spec["instances"])


def test_scenarios_of_the_same_shape_misbehave_at_the_same_moments() -> None:
    shape = LoadShape()
    slots = {name: [offset for offset, spec in schedule(SCENARIOS[name], shape) if spec.kind != "ok"]
             for name in ("wedge-sleep", "wedge-busy", "wedge-deadlock", "wedge-c", "segfault")}
    assert len({tuple(s) for s in slots.values()}) == 1 and slots["wedge-c"]
