"""The generated service on a node: zero-loss upgrades and restarts (how settings apply), broken apps that
say why, bounded memory, and hardening that real numeric libraries survive. Instances are named sl*."""

from __future__ import annotations

import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from appdeb.build.pipeline import BuildResult
from appdeb.node import harness as nodes
from appdeb.runtime import contract, units

from ..conftest import EXAMPLES
from .apps import build_app, dpkg_status, http_get, port_of, sh

pytestmark = pytest.mark.e2e

LEAKY_APP = '''\
import os

_kept = []


def application(environ, start_response):
    if environ["PATH_INFO"] == "/leak":
        _kept.append(bytearray(24 << 20))  # 24 MiB that are never freed
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    body = f"{os.getpid()} {rss}\\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def variant(tmp: Path, name: str, *, version: str = "1.0.0", **changes: object) -> Path:
    """examples/hello with app.yaml keys replaced."""
    dest = tmp / name
    shutil.copytree(EXAMPLES / "hello", dest)
    spec = yaml.safe_load((dest / "app.yaml").read_text())
    spec.update(version=version, **changes)
    (dest / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


@dataclass
class Load:
    """A steady stream of GETs (bounded: rate × seconds) to 127.0.0.1 while something happens."""

    port: int
    rate: float = 20.0
    seconds: float = 30.0
    results: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _one(self) -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=30) as resp:
                self.results.append(f"{resp.status}")
        except urllib.error.HTTPError as exc:
            self.results.append(f"{exc.code}")
        except OSError as exc:
            self.results.append(f"error: {exc}")

    def run(self) -> None:
        threads, start = [], time.monotonic()
        for i in range(int(self.rate * self.seconds)):
            if self.stop.is_set():
                break
            time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
            t = threading.Thread(target=self._one, daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(40)


def test_upgrade_and_restart_under_load_lose_no_request(node: nodes.Node, tmp_path: Path) -> None:
    v1 = build_app(variant(tmp_path, "v1"), tmp_path / "d1", "sl1")
    v2 = build_app(variant(tmp_path, "v2", version="2.0.0"), tmp_path / "d2", "sl1")
    pkg, port = v1.package, port_of(v1.package)
    nodes.install(node, [v1.deb])
    http_get(port)
    load = Load(port)
    runner = threading.Thread(target=load.run)
    runner.start()
    time.sleep(2)
    try:
        nodes.install(node, [v2.deb])
        assert f"restarted {pkg}.service" in sh(node, f"{pkg} restart")  # how a settings change is applied
        time.sleep(2)
    finally:
        load.stop.set()
        runner.join(60)
    assert http_get(port).endswith("2.0.0-1)\n")
    failed = [r for r in load.results if r != "200"]
    assert len(load.results) >= 60
    assert failed == [], f"{len(failed)} of {len(load.results)} failed: {sorted(set(failed))}"
    assert sh(node, f"systemctl is-active {pkg}.socket {pkg}.service").split() == ["active", "active"]


def test_broken_units_fail_the_install_with_the_apps_own_error(node: nodes.Node, tmp_path: Path) -> None:
    worker = build_app(variant(tmp_path, "worker", processes={"worker": "no-such-worker-command --serve"}),
                       tmp_path / "d1", "sl2")
    out = nodes.install(node, [worker.deb], check=False).stdout
    assert dpkg_status(node, worker.package) == "install ok half-configured"
    assert f"{worker.package}-worker.service is not running" in out
    assert "exit status 127 (command not found)" in out and "no-such-worker-command: not found" in out
    sh(node, f"apt-get -y purge {worker.package}")

    broken = variant(tmp_path, "broken", wsgi={"app": "hello:application"})
    (broken / "hello.py").write_text("import no_such_module\n")
    deb = build_app(broken, tmp_path / "d2", "sl3")
    out = nodes.install(node, [deb.deb], check=False).stdout
    assert dpkg_status(node, deb.package) == "install ok half-configured"
    assert f"{deb.package}.service is not running: failed" in out  # the start limit ended the loop
    assert "ModuleNotFoundError: No module named 'no_such_module'" in out
    time.sleep(3)
    assert sh(node, f"systemctl is-active {deb.package}.service || true").strip() == "failed"  # stays failed


READY_PROGRAM = """\
import os, socket, sys, time

if sys.argv[1] == "quits":
    sys.exit("giving up before saying ready")
if sys.argv[1] == "late":  # ready only after SETTLE: the install must wait for its word, not a fixed while
    time.sleep(4)
    open(os.path.join(os.environ["APPDEB_STATE_DIR"], "ready-said"), "w").write("yes\\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
print("working, never saying ready" if sys.argv[1] != "late" else "ready", flush=True)
while True:
    if sys.argv[1] == "extends":  # asks systemd for more time, again and again, and never says it is ready
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"EXTEND_TIMEOUT_USEC=20000000", os.environ["NOTIFY_SOCKET"])
    time.sleep(5)
"""


def test_a_process_that_says_when_it_is_ready_is_waited_for(node: nodes.Node, tmp_path: Path) -> None:
    """`ready: notify`: the install waits for the process's READY=1, however long (up to the unit's
    TimeoutStartSec); one that exits first, or never says it, fails the install with its own words."""
    notify = {"ready": "notify"}
    good = variant(tmp_path, "late", processes={"late": {"command": "python3 ready.py late", **notify}})
    (good / "ready.py").write_text(READY_PROGRAM)
    deb = build_app(good, tmp_path / "d1", "sl8")
    nodes.install(node, [deb.deb])
    unit = f"{deb.package}-late.service"
    assert sh(node, f"cat /var/lib/{deb.package}/ready-said") == "yes\n"  # written just before READY=1
    assert sh(node, f"systemctl show -p Type -p NotifyAccess -p ActiveState {unit}").split() == [
        "Type=notify", "NotifyAccess=main", "ActiveState=active"]
    sh(node, f"apt-get -y purge {deb.package}")

    bad = variant(tmp_path, "bad", processes={"quits": {"command": "python3 ready.py quits", **notify},
                                              "silent": {"command": "python3 ready.py silent", **notify},
                                              "extends": {"command": "python3 ready.py extends", **notify}})
    (bad / "ready.py").write_text(READY_PROGRAM)
    deb = build_app(bad, tmp_path / "d2", "sl9")
    started = time.monotonic()
    out = nodes.install(node, [deb.deb], check=False).stdout
    # the process that asks for more time without end holds the install no longer than its unit's job
    # timeout (the start) and verify's wait
    assert time.monotonic() - started < contract.NOTIFY_JOB_TIMEOUT + units.WAIT + 30
    assert dpkg_status(node, deb.package) == "install ok half-configured"
    assert (f"{deb.package}-extends.service is not running: activating (start), it has not reported ready "
            f"(sd_notify READY=1) in {units.WAIT:.0f} s") in out, out
    assert f"{deb.package}-quits.service is not running: failed (failed), exit status 1" in out
    assert re.search(r"\| giving up before saying ready \([2-5] times\)\n", out), out  # its restarts, counted
    # reported while systemd starts it again (it would only time out again), with what ended its start
    assert re.search(f"{deb.package}-silent.service is not running: activating \\([a-z-]+\\), it did not report "
                     f"ready \\(sd_notify READY=1\\) within {contract.NOTIFY_TIMEOUT} s", out), out
    assert "working, never saying ready" in out
    sh(node, f"apt-get -y purge {deb.package}")


def test_a_leaking_app_is_recycled_within_its_memory_bound(node: nodes.Node, tmp_path: Path) -> None:
    app = variant(tmp_path, "leaky", web={"workers": 1, "max_worker_memory": 96})
    (app / "hello.py").write_text(LEAKY_APP)
    deb = build_app(app, tmp_path / "d", "sl4")
    nodes.install(node, [deb.deb])
    port = port_of(deb.package)
    pids, peak = set(), 0
    for _ in range(12):
        pid, rss = http_get(port, path="/leak").split()
        pids.add(pid)
        peak = max(peak, int(rss))
    assert len(pids) >= 2  # the worker was replaced, between requests: none of them failed
    assert peak < 96 + 2 * 24 + 32  # never far past the bound (one request's leak over it at most)
    assert "MemoryMax=" in sh(node, f"systemctl cat {deb.package}.service")


def test_numpy_and_pandas_start_inside_the_hardened_unit(node: nodes.Node, tmp_path: Path) -> None:
    deb = build_app(EXAMPLES / "frames", tmp_path / "d", "sl5")
    result: BuildResult = deb
    nodes.install(node, [result.deb])
    body = http_get(port_of(result.package))
    assert body.startswith("det=8.0 a=") and " b=" in body and " c=" in body
    assert "SystemCallFilter=~@privileged @resources" in sh(node, f"systemctl cat {result.package}.service")
    assert sh(node, f"{result.package} verify").strip() == f"{result.package} 1.0.0-1: ok"


HEALTHY_ONLY_AT_HEALTH = '''\
def application(environ, start_response):
    ok = environ["PATH_INFO"] == "/health"
    body = b"ok\\n" if ok else b"the front page is broken\\n"
    start_response("200 OK" if ok else "500 Internal Server Error", [("Content-Length", str(len(body)))])
    return [body]
'''


def test_health_path_port_status_and_vendored_console_scripts(node: nodes.Node, tmp_path: Path) -> None:
    """Real apps without glue: a custom health path, the port in the install output and in `PKG status`,
    and the vendored libraries' console scripts on the app's PATH (here gunicorn's)."""
    app = variant(tmp_path, "health", web={"health": "/health"},
                  commands={"update": "gunicorn --version > \"$APPDEB_STATE_DIR/server-version\""})
    (app / "hello.py").write_text(HEALTHY_ONLY_AT_HEALTH)
    deb = build_app(app, tmp_path / "d", "sl6")
    pkg, port = deb.package, port_of(deb.package)
    out = nodes.install(node, [deb.deb]).stdout  # / answers 500: only /health decides
    assert f"{pkg} 1.0.0-1: web process on 127.0.0.1:{port}" in out
    status = sh(node, f"{pkg} status")
    assert f"web: 127.0.0.1:{port} (health /health)" in status and "health: ok" in status
    assert f"unit: {pkg}.service active" in status and f"unit: {pkg}.socket active" in status
    assert sh(node, f"{pkg} run sh -c 'command -v gunicorn'").strip() == f"/opt/{pkg}/bin/gunicorn"
    assert sh(node, f"{pkg} run gunicorn --version").startswith("gunicorn (version ")
    sh(node, f"{pkg} hook update")  # the update command finds the console script as well
    assert sh(node, f"cat /var/lib/{pkg}/server-version").startswith("gunicorn (version ")


def test_a_config_file_app_gets_its_file_rendered_per_instance_and_kept_when_edited(
    node: nodes.Node, tmp_path: Path,
) -> None:
    v1 = build_app(EXAMPLES / "ledger", tmp_path / "d1", "sl7")
    v2_dir = tmp_path / "v2"
    shutil.copytree(EXAMPLES / "ledger", v2_dir, ignore=shutil.ignore_patterns(".appdeb"))
    (v2_dir / "app.yaml").write_text((v2_dir / "app.yaml").read_text().replace('version: "1.0.0"', 'version: "2.0.0"'))
    (v2_dir / "deploy" / "ledger.ini.in").write_text((v2_dir / "deploy" / "ledger.ini.in").read_text()
                                                     + "# release 2\n")
    v2 = build_app(v2_dir, tmp_path / "d2", "sl7")
    pkg, port = v1.package, port_of(v1.package)
    nodes.install(node, [v1.deb])
    ini = f"/etc/{pkg}/ledger.ini"
    assert http_get(port) == (f"Hello from ledger on port {port}: 0 entries in /var/lib/{pkg}/entries, "
                              "a 64-character secret key\n")
    assert sh(node, f"stat -c '%a %U:%G' {ini}").strip() == f"640 root:{pkg}"
    env = sh(node, f"{pkg} env")
    assert f"APPDEB_CONFIG_LEDGER_INI={ini}" in env and f"LEDGER_CONFIG={ini}" in env  # ${…} expanded
    assert f"secret_key = {sh(node, f'cat /etc/{pkg}/secret').strip()}" in sh(node, f"cat {ini}")
    # an upgrade re-renders an untouched file; an edited one is kept, the new rendering beside it
    nodes.install(node, [v2.deb])
    assert sh(node, f"tail -1 {ini}") == "# release 2\n"
    sh(node, f"sed -i 's/^greeting = .*/greeting = Salut/' {ini}")
    nodes.install(node, [v1.deb])  # and back: its template differs again
    assert "greeting = Salut" in sh(node, f"cat {ini}") and http_get(port).startswith("Salut from ledger")
    new = sh(node, f"cat {ini}.appdeb-new")
    assert "# release 2" not in new and "greeting = Hello" in new
