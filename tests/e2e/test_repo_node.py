"""Nodes consume the signed apt repository: install, upgrade, pin/rollback, repository rollback, trust.

Real aptly, gpg and apt on booted systemd-nspawn nodes, no mocks. The repository is served by
reposerve on 127.0.0.1 (nodes share the host's network) and the client files are written into the
node's root. Test packages use instances named rp* so their ports do not clash with other suites.

apt on the node updates and upgrades from the appdeb source only (ONLY_REPO), so the tests neither
depend on the Debian mirror nor spend time upgrading the node image's Debian packages; the one test
that needs Debian dependencies (python3-appdeb) uses all sources.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb import __version__
from appdeb.build.pipeline import BuildOptions, BuildResult, build
from appdeb.errors import AppdebError
from appdeb.node import harness as nodes
from appdeb.repo import aptly, signing, store
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve
from appdeb.repo.aptly import published_snapshot
from appdeb.repo.switching import refresh

ROOT = Path(__file__).resolve().parents[2]
EPOCH = 1767225600
SOURCE = "appdeb-rp"
ONLY_REPO = ("-o", f"Dir::Etc::SourceList=/etc/apt/sources.list.d/{SOURCE}.sources",
             "-o", "Dir::Etc::SourceParts=-", "-o", "APT::Get::List-Cleanup=0")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("aptly", "gpg", "dpkg-deb")),
                       reason="needs aptly, gpg and dpkg-deb"),
]

DATA_APP = """\
name: rpdata
version: "1.0.0"
description: |
  appdeb e2e: app data that rollback --restore-backup must bring back
  Keeps one data file in its state directory and shows it with its version.
maintainer: "appdeb developers <dev@appdeb.invalid>"
platform: [python, wsgi]
wsgi:
  app: app:application
commands:
  install: 'echo "installed at $APPDEB_VERSION" > "$APPDEB_STATE_DIR/data.txt"'
  update: 'echo "updated from $APPDEB_FROM_VERSION to $APPDEB_VERSION" >> "$APPDEB_STATE_DIR/data.txt"'
  backup: 'cp "$APPDEB_STATE_DIR/data.txt" "$APPDEB_BACKUP_DIR/data.txt"'
  restore: 'cp "$APPDEB_BACKUP_DIR/data.txt" "$APPDEB_STATE_DIR/data.txt"'
"""

DATA_WSGI = """\
import os


def application(environ, start_response):
    with open(os.path.join(os.environ["APPDEB_STATE_DIR"], "data.txt"), encoding="utf-8") as f:
        body = f"version {os.environ['APPDEB_VERSION']}\\n{f.read()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


# --- helpers ------------------------------------------------------------------------------------


def _build(app_dir: Path, out: Path, build_number: int, instance: str = "rp1") -> BuildResult:
    return build(app_dir, BuildOptions(instance=instance, build_number=build_number, out_dir=out,
                                       source_date_epoch=EPOCH))


def key(result: BuildResult) -> str:
    return f"{result.package}_{result.version}_{result.architecture}"


def sh(node: nodes.Node, *argv: str) -> str:
    """Run in the node; a failure shows the command's whole output."""
    result = nodes.run_in(node, list(argv), timeout=600)
    assert result.returncode == 0, f"{' '.join(argv)} -> {result.returncode}\n{result.stdout}"
    return result.stdout


def apt_update(node: nodes.Node) -> str:
    return sh(node, "apt-get", "update", "--error-on=any", *ONLY_REPO)


def installed(node: nodes.Node, package: str) -> str:
    return sh(node, "dpkg-query", "-W", "-f=${Version}", package)


def policy(node: nodes.Node, package: str) -> dict[str, str]:
    out = sh(node, "apt-cache", "policy", package)
    return dict(re.findall(r"^\s+(Installed|Candidate): (\S+)$", out, re.M))


def madison(node: nodes.Node, package: str) -> list[str]:
    out = nodes.run_in(node, ["apt-cache", "madison", package]).stdout
    return sorted(line.split("|")[1].strip() for line in out.splitlines() if line.count("|") >= 2)


def web_port(node: nodes.Node, package: str) -> int:
    meta = json.loads((node.root / f"opt/{package}/appdeb/app.json").read_text())
    return int(meta["web"]["port"])


def http(port: int, expect: str, timeout: float = 20.0) -> str:
    """The app's answer once it contains `expect` (a restarted unit needs a moment)."""
    deadline, body = time.monotonic() + timeout, ""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
                body = resp.read().decode()
        except OSError as exc:
            body = f"({exc})"
        if expect in body or time.monotonic() > deadline:
            assert expect in body, body
            return body
        time.sleep(0.2)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> dict[int, BuildResult]:
    """examples/hello as instance rp1, builds 1-3 (versions 1.0.0-1 … 1.0.0-3)."""
    out = tmp_path_factory.mktemp("rp-hello")
    return {n: _build(ROOT / "examples" / "hello", out, n) for n in (1, 2, 3)}


@pytest.fixture(scope="module")
def hello_other_bytes(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """Same package and version as hello[1], different contents (a changed source file)."""
    work = tmp_path_factory.mktemp("rp-hello-changed")
    shutil.copytree(ROOT / "examples" / "hello", work / "hello")
    with (work / "hello" / "hello.py").open("a") as f:
        f.write("# changed after release\n")
    return _build(work / "hello", work / "out", 1)


@pytest.fixture(scope="module")
def data_app(tmp_path_factory: pytest.TempPathFactory) -> dict[int, BuildResult]:
    work = tmp_path_factory.mktemp("rp-data")
    (work / "rpdata").mkdir()
    (work / "rpdata" / "app.yaml").write_text(DATA_APP)
    (work / "rpdata" / "app.py").write_text(DATA_WSGI)
    return {n: _build(work / "rpdata", work / "out", n) for n in (1, 2)}


@pytest.fixture
def server(cfg: repoconfig.RepoConfig) -> Iterator[reposerve.RepoServer]:
    with reposerve.serve(cfg) as srv:
        yield srv


# --- tests --------------------------------------------------------------------------------------


def test_install_upgrade_repo_rollback_pin_and_unpin(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, hello: dict[int, BuildResult],
    hello_other_bytes: BuildResult,
) -> None:
    v1, v2 = hello[1], hello[2]
    first = repo.publish(cfg, [v1.deb])
    assert first.added == [key(v1)] and first.snapshot
    written = reposerve.write_client_config(node.root, cfg, server.url, SOURCE)
    assert [p.stat().st_mode & 0o777 for p in written] == [0o644] * 3  # key, source, pin preferences
    assert not list((node.root / "etc/apt/trusted.gpg.d").glob("*appdeb*"))
    apt_update(node)
    sh(node, "apt-get", "install", "-y", "hello-rp1")
    port = web_port(node, "hello-rp1")
    http(port, "(rp1, 1.0.0-1)")

    # versions are immutable: the same bytes again change nothing, other bytes are refused
    again = repo.publish(cfg, [v1.deb])
    assert (again.snapshot, again.unchanged) == (None, [key(v1)])
    with pytest.raises(AppdebError, match="immutable"):
        repo.publish(cfg, [hello_other_bytes.deb])
    assert aptly.snapshots(cfg) == [first.snapshot]

    # v2 is published, then pulled again before this node upgraded: its candidate is v1 again
    second = repo.publish(cfg, [v2.deb])
    apt_update(node)
    assert policy(node, "hello-rp1") == {"Installed": v1.version, "Candidate": v2.version}
    entry = repo.rollback(cfg)
    assert (entry.snapshot, entry.previous, entry.removed) == (first.snapshot, second.snapshot, [key(v2)])
    apt_update(node)
    assert policy(node, "hello-rp1") == {"Installed": v1.version, "Candidate": v1.version}
    assert madison(node, "hello-rp1") == [v1.version]
    sh(node, "apt-get", "upgrade", "-y", *ONLY_REPO)
    assert installed(node, "hello-rp1") == v1.version

    # re-released (same bytes are fine): apt-get upgrade picks it
    third = repo.publish(cfg, [v2.deb])
    assert third.added == [key(v2)] and third.snapshot
    apt_update(node)
    sh(node, "apt-get", "upgrade", "-y", *ONLY_REPO)
    assert installed(node, "hello-rp1") == v2.version
    http(port, "(rp1, 1.0.0-2)")

    # rollback on the node: pin the previous version, which apt installs as a downgrade
    out = sh(node, "hello-rp1", "pin", "--previous")
    assert f"now at {v1.version}" in out and "DOWNGRADED" in out
    pin = (node.root / "etc/apt/preferences.d/hello-rp1-appdeb-pin").read_text()
    assert "Package: hello-rp1\nPin: version 1.0.0-1\nPin-Priority: 1001\n" in pin
    assert installed(node, "hello-rp1") == v1.version
    http(port, "(rp1, 1.0.0-1)")
    assert "1.0.0-1: ok" in sh(node, "hello-rp1", "verify")
    assert "reason=downgrade" in sh(node, "hello-rp1", "backups")  # the downgrade backed up first
    sh(node, "apt-get", "upgrade", "-y", *ONLY_REPO)
    assert installed(node, "hello-rp1") == v1.version  # the pin holds against upgrades
    assert "pinned to 1.0.0-1" in sh(node, "hello-rp1", "pin")

    # unpin: back to the newest
    out = sh(node, "hello-rp1", "unpin")
    assert f"now at {v2.version}" in out
    assert not (node.root / "etc/apt/preferences.d/hello-rp1-appdeb-pin").exists()
    http(port, "(rp1, 1.0.0-2)")

    # rollback VERSION, and its refusals
    assert "rolled back to 1.0.0-1" in sh(node, "hello-rp1", "rollback", "1.0.0-1")
    http(port, "(rp1, 1.0.0-1)")
    bad = nodes.run_in(node, ["hello-rp1", "rollback", "9.9-9"])
    assert bad.returncode == 1 and "not available from the repository (available: 1.0.0-1, 1.0.0-2)" in bad.stdout
    bad = nodes.run_in(node, ["hello-rp1", "pin", "--previous"])
    assert bad.returncode == 1 and "no version older than 1.0.0-1" in bad.stdout
    assert installed(node, "hello-rp1") == v1.version


def test_retention_keeps_exactly_n(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, hello: dict[int, BuildResult],
) -> None:
    for n in (1, 2, 3):
        repo.publish(cfg, [hello[n].deb], keep=2)
    assert [r.version for r in aptly.list_packages(cfg)] == ["1.0.0-2", "1.0.0-3"]
    suite = store.history(cfg)[-1].distribution  # pool names carry the release (publish._Deb.filename)
    # the dropped 1.0.0-1 is in no index any more; its .deb stays fetchable (for a node holding an older
    # index) until aptly's clean-up of the public pool, which runs with every POOL_CLEANUP_EVERY-th publish
    assert sorted(p.name for p in (cfg.public_dir / "pool").rglob("*.deb")) == [
        f"hello-rp1_1.0.0-{n}_all.{suite}.deb" for n in (1, 2, 3)]
    assert "1.0.0-1" not in (cfg.public_dir / f"dists/{suite}/main/binary-amd64/Packages").read_text()
    assert store.history(cfg)[-1].removed == [key(hello[1])]
    reposerve.write_client_config(node.root, cfg, server.url, SOURCE)
    apt_update(node)
    assert madison(node, "hello-rp1") == ["1.0.0-2", "1.0.0-3"]


def test_node_refuses_a_repository_signed_with_another_key(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, hello: dict[int, BuildResult],
    tmp_path: Path,
) -> None:
    repo.publish(cfg, [hello[1].deb])
    other = repoconfig.init_repo(tmp_path / "other", architectures=["amd64"])
    try:
        assert other.key != cfg.key
        reposerve.write_client_config(node.root, other, server.url, SOURCE)  # the node trusts another key
        result = nodes.run_in(node, ["apt-get", "update", "--error-on=any", *ONLY_REPO])
        assert result.returncode != 0, result.stdout
        assert f"NO_PUBKEY {cfg.key[-16:]}" in result.stdout
        assert madison(node, "hello-rp1") == []
        assert nodes.run_in(node, ["apt-get", "install", "-y", "hello-rp1"]).returncode != 0
    finally:
        signing.stop_agent(other.gnupg_home)
    reposerve.write_client_config(node.root, cfg, server.url, SOURCE)  # the right key: the same repo works
    apt_update(node)
    assert madison(node, "hello-rp1") == ["1.0.0-1"]


def test_rollback_with_restore_backup_brings_back_the_data(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, data_app: dict[int, BuildResult],
) -> None:
    v1, v2 = data_app[1], data_app[2]
    pkg, data = v1.package, f"/var/lib/{v1.package}/data.txt"
    repo.publish(cfg, [v1.deb, v2.deb])
    reposerve.write_client_config(node.root, cfg, server.url, SOURCE)
    apt_update(node)
    sh(node, "apt-get", "install", "-y", pkg)  # straight to v2: no backup of v1's data exists
    assert sh(node, "cat", data) == "installed at 1.0.0-2\n"

    # never half-done: without a backup of 1.0.0-1's data the rollback is refused before anything changes
    result = nodes.run_in(node, [pkg, "rollback", v1.version, "--restore-backup"])
    assert result.returncode == 1, result.stdout
    assert "no backup holds the data of 1.0.0-1" in result.stdout and "nothing was changed" in result.stdout
    assert installed(node, pkg) == v2.version
    assert not sh(node, "sh", "-c", f"ls /etc/apt/preferences.d/ | grep {pkg} || true").strip()  # no pin left
    sh(node, pkg, "rollback", v1.version)  # without data: the older code on the current data
    assert installed(node, pkg) == v1.version

    sh(node, "sh", "-c", f"echo 'written at 1.0.0-1' >> {data}")
    at_v1 = sh(node, "cat", data)
    sh(node, pkg, "unpin")  # upgrading backs up v1's data
    assert installed(node, pkg) == v2.version
    sh(node, "sh", "-c", f"echo 'written at 1.0.0-2' >> {data}")
    at_v2 = sh(node, "cat", data)

    out = sh(node, pkg, "rollback", "--restore-backup")  # the previous version, with its data
    assert "rolled back to 1.0.0-1 with its data" in out and "restoring" in out
    assert sh(node, "cat", data) == at_v1
    http(web_port(node, pkg), f"version 1.0.0-1\n{at_v1}")
    # what the data was before the restore is kept: the rollback backed it up first, labelled with its version
    newest = f"$(ls -d /var/backups/{pkg}/*-1.0.0-2-rollback | tail -1)"
    saved = sh(node, "sh", "-c", f"tar -xOf {newest}/app.tar ./data.txt")
    assert saved == at_v2


def test_appdeb_itself_installs_from_the_repository(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, tmp_path: Path,
) -> None:
    """`make deb` (scripts/build-self-deb.sh) → publish → apt-get install python3-appdeb on a node."""
    env = {**os.environ, "APPDEB_DEB_OUT": str(tmp_path)}
    subprocess.run([str(ROOT / "scripts" / "build-self-deb.sh")], env=env, check=True, capture_output=True)
    [deb] = tmp_path.glob("python3-appdeb_*_all.deb")
    result = repo.publish(cfg, [deb])
    assert result.added == [deb.name.removesuffix(".deb")]
    reposerve.write_client_config(node.root, cfg, server.url, SOURCE)
    # the Debian dependencies (python3-click, aptly, gnupg, ...) come from the node's Debian mirror
    sh(node, "apt-get", "update", "--error-on=any")
    sh(node, "apt-get", "install", "-y", "--no-install-recommends", "python3-appdeb")
    assert sh(node, "appdeb", "--version").strip() == f"appdeb, version {__version__}"
    assert "client-config" in sh(node, "appdeb", "repo", "--help")


def test_a_node_refuses_a_stale_signed_state_until_the_repository_signs_it_again(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, hello: dict[int, BuildResult],
) -> None:
    """A mirror that keeps serving an old signed state (before a yank, before a fix) is noticed: a node set up
    with --valid-for refuses a Release signed longer ago than that, and `repo refresh` makes it current."""
    repo.publish(cfg, [hello[1].deb])
    reposerve.write_client_config(node.root, cfg, server.url, SOURCE, valid_for=4)
    apt_update(node)
    time.sleep(6)  # what the mirror serves is now older than the node takes as current
    stale = nodes.run_in(node, ["apt-get", "update", "--error-on=any", *ONLY_REPO])
    assert stale.returncode != 0 and "is expired" in stale.stdout, stale.stdout
    assert refresh(cfg) == {"bookworm": published_snapshot(cfg)}
    apt_update(node)
    assert madison(node, "hello-rp1") == ["1.0.0-1"]
