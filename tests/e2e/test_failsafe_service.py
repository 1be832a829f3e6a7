"""The generated service under the fail-safe benchmark's standard load, short runs with its thresholds.

An app with misbehaving paths (wedges of four kinds, a segfault) is installed once on a node shared by
the tests; each test sends 10 requests/s to 127.0.0.1 for a bounded time, 1 % of them bad, and asserts
what docs/failsafe.md promises for the defaults: ≥ 99 % of the good requests succeed with 1 % wedging,
≥ 99.9 % with 1 % segfaulting, the good requests' p99 stays under a second after warm-up, and through
the package's nginx site slow uploads and downloads (each longer than the app's 10 s timeout) complete
and cost the good requests nothing.
The full comparison of servers is `make bench-failsafe`.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from appdeb.failsafe.client import Record, RequestSpec, run_schedule
from appdeb.node import harness as nodes

from ..conftest import EXAMPLES
from .apps import build_app, http_get, port_of

pytestmark = pytest.mark.e2e

MISBEHAVING = '''\
import ctypes
import threading
import time

_lock = threading.Lock()


def _wedge(kind):
    if kind == "sleep":
        time.sleep(120)
    elif kind == "busy":
        while True:
            pass
    elif kind == "deadlock":
        _lock.acquire()
        _lock.acquire()
    elif kind == "c":
        ctypes.PyDLL(None).sleep(120)  # inside C, holding the GIL


def application(environ, start_response):
    path = environ["PATH_INFO"]
    body = b"ok\\n"
    if path.startswith("/wedge/"):
        _wedge(path.rsplit("/", 1)[1])
    elif path == "/segfault":
        ctypes.string_at(0)
    elif path == "/upload":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = b"%d\\n" % len(environ["wsgi.input"].read(size))
    elif path == "/big":
        body = b"x" * int(environ["QUERY_STRING"] or 0)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


SLOW_UPLOAD = 1 << 20
SLOW_DOWNLOAD = 16 << 20  # far more than the socket buffers: the reader really holds the sender back
SLOW_SECONDS = 15  # longer than the app's 10 s timeout: without a buffer in front the worker is killed


def _free_port() -> int:
    """A port nothing on this machine listens on (nodes share the host's network), for the nginx site."""
    for _ in range(50):
        port = random.randrange(33100, 33900)
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port for the nginx site")


@dataclass(frozen=True)
class Service:
    port: int  # the app server, direct
    public: int  # the package's nginx site in front of it


@pytest.fixture(scope="module")
def service(node_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The misbehaving app with appdeb's default web settings and its nginx site, on a node of its own."""
    tmp = tmp_path_factory.mktemp("failsafe")
    app = tmp / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    spec = yaml.safe_load((app / "app.yaml").read_text())
    spec["commands"] = {}
    public = _free_port()
    spec["web"] = {"nginx": True, "public_port": public}
    (app / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (app / "hello.py").write_text(MISBEHAVING)
    deb = build_app(app, tmp / "dist", "fs1")
    name = f"t{os.getpid()}-fs-{uuid.uuid4().hex[:6]}"
    node = nodes.up(name)
    try:
        nodes.install(node, [deb.deb])
        http_get(port_of(deb.package), path="/ok")
        http_get(public, path="/ok")
        yield Service(port_of(deb.package), public)
    finally:
        nodes.down(name)


def mixed_load(port: int, bad: str, every: int, seconds: float = 25,
               rate: float = 10) -> list[tuple[float, float, bool]]:
    """(start, latency, ok) of each good request; every `every`-th request goes to the bad path."""
    results: list[tuple[float, float, bool]] = []
    threads, start = [], time.monotonic()

    def one(path: str, good: bool) -> None:
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as resp:
                ok = resp.status == 200 and resp.read() == b"ok\n"
        except (urllib.error.URLError, OSError):
            ok = False
        if good:
            results.append((t0 - start, time.monotonic() - t0, ok))

    for i in range(int(seconds * rate)):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        good = i % every != every // 2
        t = threading.Thread(target=one, args=("/ok" if good else bad, good), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(30)
    return results


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@pytest.mark.parametrize("kind", ["sleep", "busy", "deadlock", "c"])
def test_one_percent_wedging_keeps_the_good_requests_served(service: Service, kind: str) -> None:
    results = mixed_load(service.port, f"/wedge/{kind}", every=100)
    ok = [r for r in results if r[2]]
    assert len(ok) >= 0.99 * len(results), f"{len(ok)}/{len(results)} good requests succeeded"
    assert _p99([r[1] for r in results if r[0] > 2]) < 1.0


def test_one_percent_segfaulting_keeps_the_good_requests_served(service: Service) -> None:
    results = mixed_load(service.port, "/segfault", every=100)
    ok = [r for r in results if r[2]]
    assert len(ok) >= 0.999 * len(results), f"{len(ok)}/{len(results)} good requests succeeded"
    assert _p99([r[1] for r in results if r[0] > 2]) < 1.0


def test_slow_clients_through_nginx_cost_nothing(service: Service) -> None:
    """2 % slow uploads and 2 % slow downloads, each taking longer than the app's timeout, via nginx.

    nginx reads the whole upload before it passes it on and takes the whole response from the app
    at once, so every worker stays free; the same transfers straight to the app server would hold a
    sync worker until its 10 s timeout killed it.
    """
    rate, seconds = 10, 20
    slow = {"slow-upload": RequestSpec("slow-upload", "/upload", "POST", body=SLOW_UPLOAD,
                                       send_seconds=SLOW_SECONDS, timeout=SLOW_SECONDS + 10),
            "slow-download": RequestSpec("slow-download", f"/big?{SLOW_DOWNLOAD}",
                                         read_rate=SLOW_DOWNLOAD / SLOW_SECONDS, timeout=SLOW_SECONDS + 10)}
    good = RequestSpec("ok", timeout=10)
    schedule = [(i / rate, good) for i in range(seconds * rate)]
    for n, offset in enumerate((1.0, 2.5, 4.0, 5.5)):  # 4 of 200 requests: 2 % of each kind
        schedule.append((offset, slow["slow-upload"]))
        schedule.append((offset + 0.5 + n, slow["slow-download"]))
    records: list[Record] = asyncio.run(run_schedule(service.public, schedule))
    goods = [r for r in records if r.kind == "ok"]
    served = [r for r in goods if r.ok]
    assert len(served) >= 0.999 * len(goods), f"{len(served)}/{len(goods)} good requests succeeded"
    assert _p99([r.latency for r in served if r.start > 2]) < 1.0
    uploads = [r for r in records if r.kind == "slow-upload"]
    downloads = [r for r in records if r.kind == "slow-download"]
    assert [r.outcome for r in uploads + downloads] == ["ok"] * 8
    assert all(r.latency >= SLOW_SECONDS - 1 for r in uploads + downloads), "the transfers were not slow"
    assert all(r.received == SLOW_DOWNLOAD for r in downloads)
