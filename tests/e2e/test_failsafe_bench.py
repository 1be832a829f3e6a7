"""The fail-safe benchmark end to end, shortened: a real node, the real scenario package, two servers, two scenarios.

It checks outcomes, not just that files appear: every request is recorded, the good requests of the
/ok-only scenario all succeed, a wedged request fails by the client's timeout (gunicorn sync's own
timeout is 30 s, far beyond it), the server's memory was sampled, and nothing is left running.
The scenario app gets an instance of its own on free ports, so two runs of this test can share the
machine (nodes share the host's network).
"""

from __future__ import annotations

import json
import random
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from appdeb.failsafe.client import HOST
from appdeb.failsafe.harness import DEFAULT_APP_DIR, BenchOptions, run_bench
from appdeb.failsafe.scenarios import LoadShape
from appdeb.failsafe.servers import SERVERS
from appdeb.node import harness as nodes
from appdeb.node.processes import cgroup_pids

pytestmark = pytest.mark.e2e
SERVER_NAMES = ("gunicorn-sync", "uwsgi")
FIELDS = {"kind", "start", "latency", "status", "error", "received"}


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _ports(base: int) -> list[int]:
    """The public (nginx) port, the package's port and every server's port for a package port `base`."""
    return [base - 1, *(base + s.port_offset for s in SERVERS.values())]


def _app_on_free_ports(dest: Path) -> tuple[Path, int]:
    """A copy of the scenario app with an instance `fse` whose ports nothing listens on."""
    shutil.copytree(DEFAULT_APP_DIR, dest)
    for _ in range(50):
        base = random.randrange(32001, 33990, 10)
        if not any(_listening(p) for p in _ports(base)):
            break
    spec = yaml.safe_load((dest / "app.yaml").read_text())
    spec["instances"] = {"fse": {"port": base, "public_port": base - 1}}
    (dest / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest, base


def test_bench_runs_servers_against_scenarios_and_leaves_nothing(node_image: Path, tmp_path: Path) -> None:
    app_dir, base = _app_on_free_ports(tmp_path / "app")
    shape = LoadShape(duration=6, rate=10, timeout=3, slow_seconds=5)
    lines: list[str] = []
    options = BenchOptions(SERVER_NAMES, ("ok", "wedge-sleep"), shape, tmp_path / "out", app_dir, "fse")
    outcome = run_bench(options, progress=lines.append)

    data = json.loads(outcome.json.read_text())
    runs = {(run["server"], run["scenario"]): run for run in data["runs"]}
    assert set(runs) == {(s, c) for s in SERVER_NAMES for c in ("ok", "wedge-sleep")}
    for run in runs.values():
        assert len(run["records"]) == 60 and all(set(r) == FIELDS for r in run["records"])
        assert run["memory"] and max(m[1] for m in run["memory"]) > 10  # MiB of a live Python server
    for server in SERVER_NAMES:
        good = runs[(server, "ok")]["records"]
        assert all(r["status"] == 200 and r["error"] is None for r in good), [r for r in good if r["error"]]
        assert runs[(server, "ok")]["summary"]["success"] == 1.0
    wedged = [r for r in runs[("gunicorn-sync", "wedge-sleep")]["records"] if r["kind"] == "wedge-sleep"]
    assert wedged and all(r["error"] == "timeout" and r["latency"] >= 2.9 for r in wedged), wedged
    assert any("gunicorn-sync × wedge-sleep: good" in line for line in lines), lines
    assert "| gunicorn-sync |" in outcome.markdown.read_text()

    assert outcome.node and outcome.node not in {info.name for info in nodes.list_nodes()}
    assert not cgroup_pids(outcome.node)
    assert not [p for p in _ports(base) if _listening(p)]
