"""The scenario app of the fail-safe server benchmark: every path misbehaves in its own way on purpose.

The point is not speed but what a server does when the app goes wrong: a request that never ends in
Python, in C with the GIL held or on a lock; a process that crashes; memory that only grows; bodies
that arrive or leave slowly. Every server compared runs this one module (WSGI callable `application`;
the ASGI servers `asgi_application`, the same paths), so differences in the results are the server's.
Paths:

    /ok                 a fast good request
    /cpu                ten million iterations of a Python loop
    /big?n=100000       a response of n bytes ("x" * n)
    /io                 reads a 32 MiB file created once in the state directory
    /sleep              sleeps one second
    /wedge/sleep        sleeps 120 seconds
    /wedge/busy         a Python busy loop that never ends
    /wedge/deadlock     acquires a lock twice
    /wedge/c            sleeps inside libc with the GIL held (ctypes.PyDLL keeps it), forever
    /segfault           reads address 0 (the process dies of SIGSEGV)
    /leak?mb=10         appends mb MiB to a module-level list that is never freed
    /upload             reads the whole request body and answers its size
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

IO_FILE_SIZE = 32 << 20
MAX_BIG = 256 << 20
LEAKED: list[bytes] = []  # the leak: never emptied while the process lives
_io_lock = threading.Lock()

StartResponse = Callable[..., Any]


def _state_dir() -> str:
    return os.environ.get("APPDEB_STATE_DIR") or tempfile.gettempdir()


def _io_file() -> str:
    """The big file /io reads, written once per state dir (atomically, so readers never see half)."""
    path = os.path.join(_state_dir(), "failsafe-io.bin")
    with _io_lock:
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                for _ in range(IO_FILE_SIZE >> 20):
                    f.write(os.urandom(1 << 20))
            os.replace(tmp, path)
    return path


def _query_int(environ: dict[str, Any], name: str, default: int, limit: int) -> int:
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name, [])
    try:
        return max(0, min(limit, int(values[0]))) if values else default
    except ValueError:
        return default


def ok(environ: dict[str, Any]) -> bytes:
    return b"ok\n"


def cpu(environ: dict[str, Any]) -> bytes:
    for _ in range(10_000_000):
        pass
    return b"cpu done\n"


def big(environ: dict[str, Any]) -> bytes:
    return b"x" * _query_int(environ, "n", 100_000, MAX_BIG)


def io(environ: dict[str, Any]) -> bytes:
    total = 0
    with open(_io_file(), "rb") as f:
        while chunk := f.read(1 << 20):
            total += len(chunk)
    return f"read {total}\n".encode()


def sleep(environ: dict[str, Any]) -> bytes:
    time.sleep(1)
    return b"slept\n"


def wedge_sleep(environ: dict[str, Any]) -> bytes:
    time.sleep(120)
    return b"woke up\n"


def wedge_busy(environ: dict[str, Any]) -> bytes:
    while True:
        pass


def wedge_deadlock(environ: dict[str, Any]) -> bytes:
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()  # never returns: the lock is ours already
    return b"unreachable\n"


def wedge_c(environ: dict[str, Any]) -> bytes:
    """libc sleep through PyDLL: the GIL stays held, so no other thread of this process runs Python."""
    libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6")
    while True:
        libc.sleep(3600)


def segfault(environ: dict[str, Any]) -> bytes:
    ctypes.string_at(0)
    return b"unreachable\n"


def leak(environ: dict[str, Any]) -> bytes:
    mb = _query_int(environ, "mb", 10, 1024)
    LEAKED.append(b"x" * (mb << 20))  # b"x" * n writes every page, so the RSS really grows
    return f"leaked {sum(len(b) for b in LEAKED) >> 20} MiB in pid {os.getpid()}\n".encode()


def upload(environ: dict[str, Any]) -> bytes:
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    total = 0
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 << 10))
        if not chunk:
            break
        total += len(chunk)
        remaining -= len(chunk)
    return f"received {total}\n".encode()


ROUTES: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "/ok": ok, "/cpu": cpu, "/big": big, "/io": io, "/sleep": sleep,
    "/wedge/sleep": wedge_sleep, "/wedge/busy": wedge_busy, "/wedge/deadlock": wedge_deadlock,
    "/wedge/c": wedge_c, "/segfault": segfault, "/leak": leak, "/upload": upload,
}


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    handler = ROUTES.get(environ.get("PATH_INFO", ""))
    if handler is None:
        body = ("paths: " + " ".join(sorted(ROUTES)) + "\n").encode()
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    body = handler(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same paths as ASGI, written the way a naive async app is: each handler runs inline in the
    event loop, so a busy loop, a deadlock, C code holding the GIL or a crash takes the whole worker
    (the ASGI form of a wedge); the sleeps await (asyncio.sleep), so /wedge/sleep is a request that
    hangs without blocking anything else; /upload reads its body from `receive`."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path, status = scope["path"], 200
    if path == "/upload":
        total, more = 0, True
        while more:
            message = await receive()
            total += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = f"received {total}\n".encode()
    elif path in ("/sleep", "/wedge/sleep"):
        await asyncio.sleep(1 if path == "/sleep" else 120)
        body = b"slept\n" if path == "/sleep" else b"woke up\n"
    elif path in ROUTES:
        body = ROUTES[path]({"QUERY_STRING": scope.get("query_string", b"").decode("latin-1")})
    else:
        status, body = 404, ("paths: " + " ".join(sorted(ROUTES)) + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
