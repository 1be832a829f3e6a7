"""`appdeb serve` of an ASGI app: the real gunicorn arbiter with appdeb's uvicorn worker, on loopback.

One server carries the story: HTTP and a WebSocket echo answered, a worker kept busy by blocking
work in its handlers (never longer than web.timeout at a stretch) is left alone, an async handler that
blocks the event loop (the ASGI wedge) gets its worker killed after web.timeout and the next request
is served by a new one, a worker past web.max_worker_memory is replaced, and an edited source is reloaded.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..test_cli import free_port
from ..wsclient import WebSocket

APP_YAML = """\
name: pure
version: "1.0"
description: a plain ASGI app
maintainer: "A <a@example.org>"
platform: [python, asgi]
asgi:
  app: pure:app
web:
  workers: 1
  timeout: 2
  max_worker_memory: 80
"""

APP = '''\
import os
import time

WORD = b"one"
KEPT = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
    body = WORD
    if scope["path"] == "/block":
        time.sleep(60)  # blocks the event loop: nothing else in this worker runs
    elif scope["path"] == "/work":
        time.sleep(0.3)  # honest blocking work done inline, as a naive async handler does
    elif scope["path"] == "/grow":
        KEPT.append(bytearray(160 << 20))
        KEPT[-1][::4096] = b"x" * len(KEPT[-1][::4096])
    elif scope["path"] == "/pid":
        body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
'''


def get(port: int, path: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
        return str(resp.read().decode())


def wait_for(port: int, path: str, expected: str | None = None, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            body = get(port, path, timeout=2)
            if expected is None or body == expected:
                return body
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not answer {expected!r} in {seconds} s")
        time.sleep(0.2)


def steady_work(port: int, seconds: float, clients: int = 3) -> bool:
    """`clients` loops of /work for `seconds`: the loop is busy most of the time but never blocked for
    web.timeout (2 s) at once; every request must be answered."""
    from concurrent.futures import ThreadPoolExecutor

    def loop(_: int) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            get(port, "/work", timeout=10)
        return True

    with ThreadPoolExecutor(clients) as pool:
        return all(pool.map(loop, range(clients)))


def test_serve_an_asgi_app_with_websocket_wedge_recovery_memory_bound_and_reload(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(APP_YAML)
    (tmp_path / "pure.py").write_text(APP)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "appdeb.cli", "serve", str(tmp_path), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(port, "/", seconds=120) == "one"
        ws = WebSocket("127.0.0.1", port, "/ws")
        ws.send_text("hello")
        assert ws.receive_text() == "echo: hello"
        ws.close()

        first = get(port, "/pid")
        assert steady_work(port, seconds=8) and get(port, "/pid") == first, "busy, not wedged: never killed"
        started = time.monotonic()
        try:
            get(port, "/block", timeout=30)
            raise AssertionError("a request that blocks the loop for 60 s was answered")
        except (OSError, urllib.error.URLError):
            pass
        assert time.monotonic() - started < 15  # killed by the arbiter's timeout (2 s), not after 60 s
        second = wait_for(port, "/pid")
        assert second != first

        get(port, "/grow")
        third = wait_for(port, "/pid", seconds=20)
        deadline = time.monotonic() + 20
        while third == second and time.monotonic() < deadline:
            time.sleep(0.3)
            third = wait_for(port, "/pid")
        assert third != second, "the worker past max_worker_memory was not replaced"

        (tmp_path / "pure.py").write_text(APP.replace('b"one"', 'b"two"'))
        assert wait_for(port, "/", "two") == "two"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert text.count("WORKER TIMEOUT") == 1 and "web.max_worker_memory 80" in text and "Worker reloading" in text
