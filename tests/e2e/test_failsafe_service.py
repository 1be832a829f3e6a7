"""The generated service under the fail-safe benchmark's standard load, short runs with its thresholds.

An app with misbehaving paths (wedges of four kinds, a segfault) is installed once on a node shared by
the tests; each test sends 10 requests/s to 127.0.0.1 for a bounded time, 1 % of them bad, and asserts
what docs/failsafe.md promises for the defaults: ≥ 99 % of the good requests succeed with 1 % wedging,
≥ 99.9 % with 1 % segfaulting, and the good requests' p99 stays under a second after warm-up.
The full comparison of servers is `make bench-failsafe`.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

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
    if path.startswith("/wedge/"):
        _wedge(path.rsplit("/", 1)[1])
    elif path == "/segfault":
        ctypes.string_at(0)
    body = b"ok\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture(scope="module")
def service(node_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The misbehaving app with appdeb's default web settings, on a node of this module's own."""
    tmp = tmp_path_factory.mktemp("failsafe")
    app = tmp / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    spec = yaml.safe_load((app / "app.yaml").read_text())
    spec["commands"] = {}
    (app / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (app / "hello.py").write_text(MISBEHAVING)
    deb = build_app(app, tmp / "dist", "fs1")
    name = f"t{os.getpid()}-fs-{uuid.uuid4().hex[:6]}"
    node = nodes.up(name)
    try:
        nodes.install(node, [deb.deb])
        http_get(port_of(deb.package), path="/ok")
        yield port_of(deb.package)
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
def test_one_percent_wedging_keeps_the_good_requests_served(service: int, kind: str) -> None:
    results = mixed_load(service, f"/wedge/{kind}", every=100)
    ok = [r for r in results if r[2]]
    assert len(ok) >= 0.99 * len(results), f"{len(ok)}/{len(results)} good requests succeeded"
    assert _p99([r[1] for r in results if r[0] > 2]) < 1.0


def test_one_percent_segfaulting_keeps_the_good_requests_served(service: int) -> None:
    results = mixed_load(service, "/segfault", every=100)
    ok = [r for r in results if r[2]]
    assert len(ok) >= 0.999 * len(results), f"{len(ok)}/{len(results)} good requests succeeded"
    assert _p99([r[1] for r in results if r[0] > 2]) < 1.0
