"""`appdeb deploy` pushes releases to three private-network nodes over ssh with Ansible, canary first.

Real Ansible, ssh, apt, aptly and systemd: the repository is served on the host's address of the
harness's private network, the inventory is the harness's own (`appdeb node inventory`), and the
app (examples/hello with lifecycle commands) answers with its version on each node's loopback. The
tests share one fleet and run in order: v1 everywhere, v2 canary-first, a v3 whose health gate fails
(stops after the canary, which goes back), v4 with one host down, and a --check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildResult
from appdeb.deploy import rollout
from appdeb.deploy.inventory import fleet
from appdeb.node import harness as nodes
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve
from appdeb.repo.config import RepoConfig

from .apps import BROKEN_VERIFY, build_app, lifecycle_app, port_of

pytestmark = [pytest.mark.e2e, pytest.mark.private_nodes]
SOURCE = "appdeb-dp"


@dataclass
class Fleet:
    nodes: list[nodes.Node]
    inventory: Path
    cfg: RepoConfig
    url: str
    debs: dict[str, BuildResult]
    timings: dict[str, float]

    @property
    def files(self) -> dict[str, str]:
        return reposerve.client_config(self.cfg, self.url, SOURCE)

    def deploy(self, version: str, batch: str = "1", inventory: Path | None = None) -> rollout.Rollout:
        hosts = fleet(inventory or self.inventory)
        return rollout.deploy(hosts, inventory or self.inventory, self.debs[version].package,
                              self.debs[version].version, self.files, batch=batch, progress=lambda _: None)


def _answer(node: nodes.Node, package: str) -> str:
    """What the instance answers on the node's own loopback (private nodes are not on the host's)."""
    out = nodes.run_in(node, ["curl", "-s", "--max-time", "5", f"http://127.0.0.1:{port_of(package)}/"])
    return out.stdout.strip()


def _installed(node: nodes.Node, package: str) -> str:
    return nodes.run_in(node, ["dpkg-query", "-W", "-f=${Version}", package]).stdout.strip()


@pytest.fixture(scope="module")
def fleet_of_three(node_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("deploy")
    debs = {}
    for version, commands in (("1.0.0", {}), ("2.0.0", {}), ("3.0.0", {"verify": BROKEN_VERIFY}), ("4.0.0", {})):
        app = lifecycle_app(tmp / "apps" / version, version=version, **commands)
        debs[version] = build_app(app, tmp / "debs" / version, "dp1")
    names = [f"t{os.getpid()}-dp{i}-{uuid.uuid4().hex[:4]}" for i in range(3)]
    up: list[nodes.Node] = []
    try:
        for name in names:
            up.append(nodes.up(name, network="private"))
        cfg = repoconfig.init_repo(tmp / "repo")
        repo.publish(cfg, [d.deb for d in debs.values()])
        with reposerve.serve(cfg, nodes.host_address(), 0) as server:
            ours = [line for line in nodes.inventory_text().splitlines()
                    if not line.startswith(("t", "#")) or line.split()[0] in names]
            inventory = tmp / "hosts.ini"
            inventory.write_text("\n".join(ours) + "\n")
            yield Fleet(up, inventory, cfg, server.url, debs, {})
    finally:
        for name in names:
            if any(info.name == name for info in nodes.list_nodes()):
                nodes.down(name)


def test_a_push_rolls_out_canary_first_and_every_host_serves_it(fleet_of_three: Fleet) -> None:
    f = fleet_of_three
    first = f.deploy("1.0.0", batch="2")
    assert [o.status for o in first.outcomes] == ["ok"] * 3, rollout.table(first)
    started = time.monotonic()
    second = f.deploy("2.0.0", batch="2")
    f.timings["push v1→v2 to 3 nodes, canary then a batch of 2"] = time.monotonic() - started
    assert [(o.status, o.before, o.after) for o in second.outcomes] == [("ok", "1.0.0-1", "2.0.0-1")] * 3
    canary, *rest = second.outcomes
    assert canary.host == f.nodes[0].name
    assert all(canary.finished <= o.started for o in rest)  # the canary was done before the others began
    package = f.debs["2.0.0"].package
    for node in f.nodes:
        assert "2.0.0-1" in _answer(node, package)
        pin = nodes.run_in(node, ["cat", f"/etc/apt/preferences.d/{package}-appdeb-pin"]).stdout
        assert "Pin: version 2.0.0-1" in pin  # the deployed version is held


def test_a_release_failing_its_health_gate_stops_after_the_canary(fleet_of_three: Fleet) -> None:
    f = fleet_of_three
    package = f.debs["3.0.0"].package
    argv = [sys.executable, "-m", "appdeb.cli", "deploy", package, "--version", "3.0.0-1", "-i", str(f.inventory),
            "--repo-url", f.url, "--root", str(f.cfg.root), "--name", SOURCE]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    canary, *others = f.nodes
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"failed on: {canary.name} (failed: " in proc.stderr, proc.stderr
    assert "not started" in proc.stdout and "the rollout stopped" in proc.stdout
    assert _installed(canary, package) == "2.0.0-1" and "2.0.0-1" in _answer(canary, package)  # went back
    for node in others:
        assert _installed(node, package) == "2.0.0-1" and "2.0.0-1" in _answer(node, package)
        assert "3.0.0-1" not in nodes.run_in(node, ["cat", "/var/log/dpkg.log"]).stdout  # never left v2


def test_a_host_that_is_down_is_reported_and_does_not_hold_up_the_rollout(fleet_of_three: Fleet,
                                                                          tmp_path: Path) -> None:
    f = fleet_of_three
    lines = f.inventory.read_text().splitlines()
    last = lines[-1]
    ghost_address = nodes.host_address().rsplit(".", 1)[0] + ".250"  # on the node network, nobody there
    ghost = "ghost " + last.split(" ", 1)[1].replace(f"ansible_host={last.split('ansible_host=')[1].split()[0]}",
                                                     f"ansible_host={ghost_address}")
    inventory = tmp_path / "with-ghost.ini"
    inventory.write_text("\n".join([*lines[:-1], ghost, last]) + "\n")
    started = time.monotonic()
    result = f.deploy("4.0.0", batch="1", inventory=inventory)
    f.timings["push v2→v4 to 3 nodes (and one down), --batch 1"] = time.monotonic() - started
    statuses = {o.host: o.status for o in result.outcomes}
    assert statuses == {**{n.name: "ok" for n in f.nodes}, "ghost": "down"}, rollout.table(result)
    assert time.monotonic() - started < 300
    for node in f.nodes:
        assert "4.0.0-1" in _answer(node, f.debs["4.0.0"].package)
    with pytest.raises(Exception, match="ghost \\(down"):
        rollout.require_ok(result)


def test_check_shows_what_would_change_and_changes_nothing(fleet_of_three: Fleet) -> None:
    f = fleet_of_three
    package = f.debs["2.0.0"].package
    result = rollout.check(fleet(f.inventory), f.inventory, package, "2.0.0-1", f.files)
    assert [(o.status, o.before, o.after) for o in result.outcomes] == [("would install", "4.0.0-1", "2.0.0-1")] * 3
    for node in f.nodes:
        assert _installed(node, package) == "4.0.0-1"


def test_deploying_an_older_version_one_host_at_a_time_is_a_rollback(fleet_of_three: Fleet) -> None:
    f = fleet_of_three
    started = time.monotonic()
    result = f.deploy("2.0.0", batch="1")
    f.timings["push v4→v2 to 3 nodes, --batch 1"] = time.monotonic() - started
    assert [(o.status, o.before, o.after) for o in result.outcomes] == [("ok", "4.0.0-1", "2.0.0-1")] * 3
    pairs = zip(result.outcomes, result.outcomes[1:], strict=False)
    assert all(a.finished <= b.started for a, b in pairs)  # one host after the other
    for node in f.nodes:
        assert "2.0.0-1" in _answer(node, f.debs["2.0.0"].package)
    print("\ndeploy timings:", {k: round(v, 1) for k, v in f.timings.items()})
