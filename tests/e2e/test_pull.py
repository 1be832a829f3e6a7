"""A node that pulls: `client-config --pull` sets up the timer, promotions reach the node by themselves.

Real aptly, gpg and apt, a booted systemd-nspawn node with systemd, no mocks. The repository is served
on 127.0.0.1 (nodes share the host's network); the node follows the distribution `prod`, to which
releases are promoted from `staging`. The app is examples/hello with lifecycle commands as instance
pl1 (its own port); a release whose verify fails must be rolled back by `pull` itself.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Iterator

import pytest

from appdeb.build.pipeline import BuildResult
from appdeb.node import harness as nodes
from appdeb.repo import config as repoconfig
from appdeb.repo import promote as channels
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve

from .apps import build_app, http_get, lifecycle_app, port_of, sh

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("aptly", "gpg", "dpkg-deb")),
                       reason="needs aptly, gpg and dpkg-deb"),
]

PKG = "hello-pl1"
SOURCE = "appdeb-pl"
SERVICE, TIMER = f"appdeb-pull@{PKG}.service", f"appdeb-pull@{PKG}.timer"
ONLY_REPO = f"-o Dir::Etc::SourceList=/etc/apt/sources.list.d/{SOURCE}.sources -o Dir::Etc::SourceParts=- " \
            "-o APT::Get::List-Cleanup=0"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuildResult]:
    """1.0.0-1 and 1.1.0-2 are good; 1.2.0-3's verify fails; 1.3.0-4 is good again."""
    tmp = tmp_path_factory.mktemp("pull")
    out: dict[str, BuildResult] = {}
    for number, version, verify in ((1, "1.0.0", None), (2, "1.1.0", None), (3, "1.2.0", "exit 1"),
                                    (4, "1.3.0", None)):
        extra = {"verify": verify} if verify else {}
        app = lifecycle_app(tmp / "apps" / version, version=version, **extra)
        out[version] = build_app(app, tmp / "debs" / version, "pl1", build_number=number)
    return out


@pytest.fixture
def server(cfg: repoconfig.RepoConfig) -> Iterator[reposerve.RepoServer]:
    with reposerve.serve(cfg, "127.0.0.1", 0) as srv:
        yield srv


def release(cfg: repoconfig.RepoConfig, build: BuildResult) -> float:
    """Publish to staging, then promote staging to prod; the time of the promotion."""
    repo.publish(cfg, [build.deb], distribution="staging")
    entry = channels.promote(cfg, "prod", from_dist="staging")
    assert entry is not None and entry.added == [f"{PKG}_{build.version}_all"]
    return time.monotonic()


def serves(port: int, version: str, timeout: float) -> str:
    """The app's answer once it names `version`."""
    deadline, body = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            body = http_get(port, timeout=3)
        except OSError as exc:
            body = f"({exc})"
        if f"(pl1, {version})" in body:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{PKG} does not serve {version} after {timeout}s: {body}")


def installed(node: nodes.Node) -> str:
    return sh(node, f"dpkg-query -W -f='${{Version}} ${{db:Status-Status}}' {PKG}")


def journal(node: nodes.Node) -> list[str]:
    """The pull service's one line per attempt, as the journal kept them."""
    out = sh(node, f"journalctl -u {SERVICE} -o cat --no-pager", check=False)
    return [ln for ln in out.splitlines() if ln.startswith("pull: ")]


def test_a_pulling_node_follows_promotions_and_goes_back_from_a_failing_release(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, releases: dict[str, BuildResult],
) -> None:
    v1, v2, bad, v4 = (releases[v].version for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"))
    port = port_of(PKG)
    release(cfg, releases["1.0.0"])
    reposerve.write_client_config(node.root, cfg, server.url, SOURCE, "prod", pull=[PKG], pull_every="20s")
    assert (node.root / f"etc/appdeb/pull/{PKG}.conf").read_text().endswith(
        f"sources=/etc/apt/sources.list.d/{SOURCE}.sources\n")
    sh(node, f"apt-get update --error-on=any {ONLY_REPO} && apt-get install -y {PKG}")
    serves(port, v1, 30)

    # the timer is enabled (a link in timers.target.wants) with the configured interval and jitter
    sh(node, f"systemctl daemon-reload && systemctl start {TIMER}")
    assert sh(node, f"systemctl is-enabled {TIMER}").strip() == "enabled"
    shown = sh(node, f"systemctl show {TIMER} -p TimersMonotonic -p RandomizedDelayUSec")
    assert "OnUnitActiveUSec=20s" in shown and "RandomizedDelayUSec=5s" in shown, shown

    # a promotion reaches the node by the timer alone
    promoted = release(cfg, releases["1.1.0"])
    serves(port, v2, 90)
    serving = time.monotonic() - promoted
    while f"pull: {PKG} {v1} → {v2} ok" not in journal(node):  # verified, and dpkg done configuring
        assert time.monotonic() - promoted < 120, journal(node)
        time.sleep(0.5)
    done = time.monotonic() - promoted
    print(f"\n[pull] promotion → serving {v2}: {serving:.1f}s, → pull verified it: {done:.1f}s (timer every 20s, "
          "jitter up to 5s)", file=sys.__stderr__, flush=True)
    assert installed(node) == f"{v2} installed"

    # a release whose verify fails goes back to the previous version, by itself, with one log line
    sh(node, f"systemctl stop {TIMER}")
    release(cfg, releases["1.2.0"])
    result = nodes.run_in(node, ["systemctl", "start", SERVICE], timeout=600)
    assert result.returncode != 0  # the attempt failed, so does the unit
    assert installed(node) == f"{v2} installed"
    serves(port, v2, 30)
    failed = [ln for ln in journal(node) if f"{v2} → {bad}" in ln]
    assert len(failed) == 1 and re.fullmatch(
        rf"pull: {PKG} {v2} → {bad} failed verify: .*the app's verify command failed.*; pinned back to {v2}",
        failed[0]), journal(node)
    assert "Pin: version " + v2 in (node.root / f"etc/apt/preferences.d/{PKG}-appdeb-pin").read_text()

    # pull's own pin holds against the failed release, and is let go once a newer one arrives
    sh(node, f"systemctl start {SERVICE}")
    assert journal(node)[-1] == f"pull: {PKG} held at {v2} ({bad} failed); waiting for a newer release"
    release(cfg, releases["1.3.0"])
    sh(node, f"systemctl start {SERVICE}")
    assert journal(node)[-1] == f"pull: {PKG} {v2} → {v4} ok"
    serves(port, v4, 30)
    assert not (node.root / f"etc/apt/preferences.d/{PKG}-appdeb-pin").exists()

    # an admin's pin is left alone
    sh(node, f"{PKG} pin {v2}")
    sh(node, f"systemctl start {SERVICE}")
    assert journal(node)[-1] == f"pull: {PKG} pinned to {v2} by '{PKG} pin'; left alone"
    assert installed(node) == f"{v2} installed"


def test_pull_refuses_a_config_others_can_write(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, releases: dict[str, BuildResult],
) -> None:
    release(cfg, releases["1.0.0"])
    reposerve.write_client_config(node.root, cfg, server.url, SOURCE, "prod", pull=[PKG])
    sh(node, f"apt-get update --error-on=any {ONLY_REPO} && apt-get install -y {PKG}")
    assert sh(node, f"{PKG} pull").strip() == f"pull: {PKG} up to date ({releases['1.0.0'].version})"
    conf = node.root / f"etc/appdeb/pull/{PKG}.conf"
    conf.chmod(0o666)
    result = nodes.run_in(node, [PKG, "pull"])
    assert result.returncode == 1 and "writable by root alone; refusing" in result.stdout
    conf.chmod(0o644)
    conf.write_text("sources=/tmp/evil.sources\n")
    result = nodes.run_in(node, [PKG, "pull"])
    assert result.returncode == 1 and "needs one line sources=" in result.stdout
