"""The benchmark's HTTP/1.1 client: one connection per request, fired on a fixed schedule, always bounded.

ab and wrk measure how fast a server answers; this client must also behave badly on purpose (send a
body over 30 seconds, read a response at a trickle) and must record *how* each request failed
(refused, reset, closed before an answer, truncated, timed out) rather than just counting it. One
connection per request (`Connection: close`) keeps every request independent, which is the point
when some of them wedge. It only ever connects to 127.0.0.1, every request has its own timeout, and
a whole run is capped in requests and seconds, so it stops by itself whatever the server does.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

HOST = "127.0.0.1"  # the only address the benchmark talks to (the node's services, seen from the host)
MAX_REQUESTS = 20_000  # per run: a schedule beyond this is a mistake, not a benchmark
MAX_SECONDS = 900.0  # per run, including the slowest request's timeout
GRACE = 2.0  # past the last request's timeout, before anything still open is cut
CHUNK = 16 << 10
SMALL_RCVBUF = 16 << 10  # a slow reader's kernel buffer: small, so the server really has to wait


@dataclass(frozen=True)
class RequestSpec:
    """One request to make: what to ask, what body to send and how fast, how fast to read, how long to wait."""

    kind: str
    path: str = "/ok"
    method: str = "GET"
    body: int = 0  # request body bytes
    send_seconds: float = 0.0  # spread the body over this long (a slow upload); 0 sends it at once
    read_rate: float = 0.0  # read the response at this many bytes/s (a slow download); 0 reads at once
    timeout: float = 10.0  # the whole exchange, connect to last byte


@dataclass(frozen=True)
class Record:
    """What happened to one request; start is seconds since the run began, latency covers the whole exchange."""

    kind: str
    start: float
    latency: float
    status: int | None
    error: str | None  # None, or refused/reset/closed/truncated/protocol/timeout/cut/an errno name
    received: int

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    @property
    def outcome(self) -> str:
        """One label per request for counting: ok, an error, or http-NNN for a non-200 answer."""
        if self.ok:
            return "ok"
        return self.error or f"http-{self.status}"


class Failure(Exception):
    """The exchange broke in a way HTTP can tell (no answer at all, a short body, garbage)."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


@dataclass
class _Progress:
    status: int | None = None
    received: int = 0


async def fetch(port: int, spec: RequestSpec, origin: float) -> Record:
    """Make one request to 127.0.0.1:port and classify its fate; never raises for a server's misbehaviour."""
    begin = time.monotonic()
    progress = _Progress()
    error: str | None = None
    try:
        await asyncio.wait_for(_exchange(port, spec, progress), spec.timeout)
    except TimeoutError:  # asyncio's timeout is the builtin one since 3.11; before OSError on purpose
        error = "timeout"
    except Failure as exc:
        error = exc.label
    except ConnectionRefusedError:
        error = "refused"
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        error = "reset"
    except OSError as exc:
        error = errno.errorcode.get(exc.errno or 0, "oserror").lower()
    latency = time.monotonic() - begin
    return Record(spec.kind, round(begin - origin, 4), round(latency, 4), progress.status, error, progress.received)


async def _exchange(port: int, spec: RequestSpec, progress: _Progress) -> None:
    reader, writer = await _connect(port, small_buffer=spec.read_rate > 0)
    try:
        writer.write(_head(spec, port))
        await _send_body(writer, spec)
        length = await _read_head(reader, progress)
        await _read_body(reader, spec, length, progress)
    finally:
        writer.close()  # unread data makes this a reset, which is what a giving-up client does


async def _connect(port: int, small_buffer: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A socket of our own so a slow reader can shrink its receive buffer before connecting."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if small_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        return await asyncio.open_connection(sock=sock, limit=4 * CHUNK)
    except BaseException:
        sock.close()
        raise


def _head(spec: RequestSpec, port: int) -> bytes:
    lines = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: {HOST}:{port}", "User-Agent: appdeb-failsafe",
             "Connection: close"]
    if spec.body or spec.method not in ("GET", "HEAD"):
        lines += [f"Content-Length: {spec.body}", "Content-Type: application/octet-stream"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def _send_body(writer: asyncio.StreamWriter, spec: RequestSpec) -> None:
    """Send the body at once, or in ten pieces a second spread over send_seconds (a slow upload)."""
    pieces = max(1, round(spec.send_seconds * 10)) if spec.send_seconds else max(1, spec.body // (256 << 10))
    size = -(-spec.body // pieces) if spec.body else 0
    start, sent = time.monotonic(), 0
    for i in range(pieces if spec.body else 0):
        if spec.send_seconds:
            await asyncio.sleep(max(0.0, start + spec.send_seconds * i / pieces - time.monotonic()))
        n = min(size, spec.body - sent)
        writer.write(b"u" * n)
        await writer.drain()
        sent += n
    await writer.drain()


async def _read_head(reader: asyncio.StreamReader, progress: _Progress) -> int | None:
    """Status line and headers; returns Content-Length (None: the body ends when the server closes)."""
    try:
        line = await reader.readline()
        if not line:
            raise Failure("closed")  # the connection ended before any answer: a killed worker, typically
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Failure("protocol")
        progress.status = int(parts[1])
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b"\n"):
            if not line:
                raise Failure("truncated")
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        return length
    except ValueError:  # an over-long line or a bad Content-Length
        raise Failure("protocol") from None


async def _read_body(reader: asyncio.StreamReader, spec: RequestSpec, length: int | None,
                     progress: _Progress) -> None:
    """Read the body, pausing between chunks so the average never exceeds read_rate (a slow reader)."""
    start = time.monotonic()
    while length is None or progress.received < length:
        chunk = await reader.read(CHUNK if length is None else min(CHUNK, length - progress.received))
        if not chunk:
            if length is not None:
                raise Failure("truncated")
            return
        progress.received += len(chunk)
        if spec.read_rate:
            await asyncio.sleep(max(0.0, start + progress.received / spec.read_rate - time.monotonic()))


async def run_schedule(port: int, schedule: Sequence[tuple[float, RequestSpec]],
                       finished: list[Record] | None = None) -> list[Record]:
    """Fire each request at its offset (seconds from now) and return every record, ordered by start.

    The rate is the schedule's: a request goes out on time even while earlier ones hang, which is
    what lets a wedged server show up as failures instead of slowing the client down. Records are
    also appended to `finished` as they complete, for progress lines.
    """
    if len(schedule) > MAX_REQUESTS:
        raise ValueError(f"{len(schedule)} requests in one run; the limit is {MAX_REQUESTS}")
    end = max((offset + spec.timeout for offset, spec in schedule), default=0.0)
    if end > MAX_SECONDS:
        raise ValueError(f"a run of {end:.0f} s; the limit is {MAX_SECONDS:.0f} s")
    origin = time.monotonic()
    ordered = sorted(schedule, key=lambda item: item[0])
    tasks: list[asyncio.Task[Record]] = []
    for offset, spec in ordered:
        await asyncio.sleep(max(0.0, origin + offset - time.monotonic()))
        task = asyncio.create_task(fetch(port, spec, origin))
        if finished is not None:
            task.add_done_callback(lambda t: finished.append(t.result()) if not t.cancelled() else None)
        tasks.append(task)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, origin + end + GRACE - time.monotonic()))
        for task in pending:  # only if the client itself fell behind: each request has its own timeout
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    now = time.monotonic() - origin
    records = [task.result() if not task.cancelled() else
               Record(spec.kind, round(offset, 4), round(now - offset, 4), None, "cut", 0)
               for (offset, spec), task in zip(ordered, tasks, strict=True)]
    return sorted(records, key=lambda r: r.start)
