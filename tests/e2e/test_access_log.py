"""The web unit's journal: no line per request by default, one per request with web.access_log: true.
Instances are named al*."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest
import yaml

from appdeb.node import harness as nodes

from ..conftest import EXAMPLES
from .apps import build_app, http_get, port_of, sh

pytestmark = pytest.mark.e2e
REQUESTS = 25


def hello(tmp: Path, name: str, web: dict[str, object]) -> Path:
    dest = tmp / name
    shutil.copytree(EXAMPLES / "hello", dest, ignore=shutil.ignore_patterns(".appdeb"))
    spec = yaml.safe_load((dest / "app.yaml").read_text())
    spec["web"] = web
    (dest / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def journal_lines(node: nodes.Node, package: str, marker: str) -> list[str]:
    out = sh(node, f"journalctl -u {package}.service -o cat --no-pager")
    return [line for line in out.splitlines() if marker in line]


def test_requests_reach_the_journal_only_when_the_access_log_is_on(node: nodes.Node, tmp_path: Path) -> None:
    quiet = build_app(hello(tmp_path, "quiet", {}), tmp_path / "d1", "al1")
    loud = build_app(hello(tmp_path, "loud", {"access_log": True}), tmp_path / "d2", "al2")
    nodes.install(node, [quiet.deb])
    nodes.install(node, [loud.deb])
    marker = f"probe-{uuid.uuid4().hex[:12]}"
    for deb in (quiet, loud):
        for i in range(REQUESTS):
            assert "from hello" in http_get(port_of(deb.package), path=f"/{marker}/{i}")
    deadline = time.monotonic() + 30
    while len(journal_lines(node, loud.package, marker)) < REQUESTS and time.monotonic() < deadline:
        time.sleep(0.5)
    logged = journal_lines(node, loud.package, marker)
    assert len(logged) == REQUESTS and all(f'"GET /{marker}/' in line and '" 200 ' in line for line in logged)
    # the loud unit's lines are in, so the quiet one's would be too: it logged none, but still its workers
    assert journal_lines(node, quiet.package, marker) == []
    assert journal_lines(node, quiet.package, "Booting worker with pid") != []
