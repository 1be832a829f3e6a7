"""Integration tests for the signed apt repository: real aptly, gpg, dpkg-deb and apt-get.

Everything happens in pytest's tmp dirs; the host's apt configuration is never
touched (apt runs with its lists, cache, sources and trusted keys redirected).
"""

from __future__ import annotations

import email.utils
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.repo import aptly, signing, store
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve
from appdeb.runner import run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("aptly", "gpg", "gpgv", "dpkg-deb", "apt-get")),
        reason="needs aptly, gpg, gpgv, dpkg-deb and apt-get",
    ),
]

PACKAGES = Path("public/dists/bookworm/main/binary-amd64/Packages")


def make_deb(outdir: Path, name: str, version: str, *, payload: str = "", arch: str = "all", extra: str = "") -> Path:
    """Build a tiny .deb; a different payload gives different bytes for the same version (extra: control lines)."""
    tree = outdir / f"tree-{name}-{version}-{abs(hash(payload))}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
        f"Maintainer: Test <test@example.invalid>\nDescription: test package {name}\n{extra}"
    )
    doc = tree / "usr" / "share" / "doc" / name
    doc.mkdir(parents=True)
    (doc / "payload").write_text(payload or f"{name} {version}\n")
    out = outdir / f"{name}_{version.replace(':', '%3a')}_{arch}-{abs(hash(payload))}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)])
    return out


def published_versions(cfg: repoconfig.RepoConfig, name: str = "hello") -> list[str]:
    """Versions of `name` in the published Packages index (what apt would download)."""
    text = (cfg.root / PACKAGES).read_text()
    stanzas = [dict(ln.split(": ", 1) for ln in st.splitlines() if ": " in ln) for st in text.split("\n\n")]
    return sorted(st["Version"] for st in stanzas if st.get("Package") == name)


def test_init_creates_key_and_config_and_reinit_keeps_key(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    cfg = repoconfig.init_repo(root)
    try:
        assert len(cfg.key) == 40
        assert signing.secret_fingerprints(cfg.gnupg_home) == [cfg.key]
        assert cfg.key_gpg.stat().st_size > 0
        assert cfg.key_asc.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        conf = json.loads(cfg.conf.read_text())
        assert conf["rootDir"] == str(root.resolve())
        assert conf["gpgProvider"] == "gpg"
        settings = json.loads((root / "settings.json").read_text())
        assert settings["key"] == cfg.key
        assert (settings["distribution"], settings["component"]) == ("bookworm", "main")
        again = repoconfig.init_repo(root, keep=3)
        assert again.key == cfg.key
        assert again.keep == 3
        assert signing.secret_fingerprints(cfg.gnupg_home) == [cfg.key]
        assert repoconfig.open_repo(root) == again
        with pytest.raises(AppdebError, match="refusing to switch"):
            repoconfig.init_repo(root, key="0123456789ABCDEF")
    finally:
        signing.stop_agent(cfg.gnupg_home)


def test_init_imports_existing_secret_key_file(tmp_path: Path, cfg: repoconfig.RepoConfig) -> None:
    exported = tmp_path / "secret.asc"
    argv = ["gpg", "--batch", "--armor", "--export-secret-keys", cfg.key]
    out = run(argv, env=signing.gnupg_env(cfg.gnupg_home))
    exported.write_text(out.stdout)
    other = repoconfig.init_repo(tmp_path / "other", key=str(exported))
    try:
        assert other.key == cfg.key
    finally:
        signing.stop_agent(other.gnupg_home)


def test_default_root_honours_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPDEB_REPO", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert repoconfig.default_root() == tmp_path / "xdg" / "appdeb" / "repo"
    monkeypatch.setenv("APPDEB_REPO", str(tmp_path / "elsewhere"))
    assert repoconfig.default_root() == tmp_path / "elsewhere"
    with pytest.raises(AppdebError, match="not an appdeb repository"):
        repoconfig.open_repo()


def test_publish_is_signed_and_lists_the_package(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    result = repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    assert result.snapshot is not None
    assert result.added == ["hello_1.0-1_all"]
    dists = cfg.public_dir / "dists" / "bookworm"
    assert (dists / "InRelease").is_file()
    assert (dists / "Release.gpg").is_file()
    signing.verify_clearsigned(cfg.key_gpg, dists / "InRelease")
    run(["gpgv", "--keyring", str(cfg.key_gpg), str(dists / "Release.gpg"), str(dists / "Release")])
    assert "Acquire-By-Hash: yes" in (dists / "Release").read_text()
    assert published_versions(cfg) == ["1.0-1"]
    assert aptly.list_packages(cfg) == [("hello", "1.0-1", "all")]
    assert (cfg.public_dir / "pool/main/h/hello/hello_1.0-1_all.deb").is_file()


def test_republishing_the_same_file_creates_no_snapshot(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    deb = make_deb(debs, "hello", "1.0-1")
    repo.publish(cfg, [deb])
    snaps, hist = aptly.snapshots(cfg), store.history(cfg)
    result = repo.publish(cfg, [deb])
    assert result.snapshot is None
    assert result.unchanged == ["hello_1.0-1_all"]
    assert aptly.snapshots(cfg) == snaps
    assert store.history(cfg) == hist


def test_same_version_with_different_bytes_is_refused(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    inrelease = (cfg.public_dir / "dists/bookworm/InRelease").read_bytes()
    snaps = aptly.snapshots(cfg)
    v2 = make_deb(debs, "hello", "1.0-2")
    changed = make_deb(debs, "hello", "1.0-1", payload="rebuilt\n")
    expected = r"already published with different contents.*bump the build number"
    with pytest.raises(AppdebError, match=expected):
        repo.publish(cfg, [v2, changed])
    assert aptly.snapshots(cfg) == snaps
    assert aptly.list_packages(cfg) == [("hello", "1.0-1", "all")]
    assert (cfg.public_dir / "dists/bookworm/InRelease").read_bytes() == inrelease
    assert repo.publish(cfg, [v2]).added == ["hello_1.0-2_all"]  # the valid one is still publishable


def test_versions_that_differ_by_the_epoch_alone_never_share_a_pool_file(cfg: repoconfig.RepoConfig,
                                                                        debs: Path) -> None:
    """1:5.0-1 then 2:5.0-1 would both be pool/…/hello_5.0-1_all.deb: aptly refused the second only when
    publishing, after adding it, and every later publish with it (review). Refused before any change now,
    also within one publish; the repository publishes on."""
    repo.publish(cfg, [make_deb(debs, "hello", "1:5.0-1")])
    inrelease = (cfg.public_dir / "dists/bookworm/InRelease").read_bytes()
    for batch in ([make_deb(debs, "hello", "2:5.0-1")], [make_deb(debs, "hello", "5.0-1")],
                  [make_deb(debs, "other", "1:1.0-1"), make_deb(debs, "other", "2:1.0-1")]):
        with pytest.raises(AppdebError, match=r"pool file \S+_(5|1)\.0-1_all\.deb .*epoch alone"):
            repo.publish(cfg, batch)
        assert aptly.list_packages(cfg) == [("hello", "1:5.0-1", "all")]
        assert (cfg.public_dir / "dists/bookworm/InRelease").read_bytes() == inrelease
    assert repo.publish(cfg, [make_deb(debs, "hello", "1:5.0-2")]).added == ["hello_1:5.0-2_all"]
    assert (cfg.public_dir / "pool/main/h/hello/hello_5.0-2_all.deb").is_file()


def test_package_for_an_unpublished_architecture_is_refused(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    with pytest.raises(AppdebError, match="architecture s390x is not published"):
        repo.publish(cfg, [make_deb(debs, "hello", "1.0-1", arch="s390x")])
    assert aptly.snapshots(cfg) == []


def test_new_version_is_listed_alongside_the_old(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    result = repo.publish(cfg, [make_deb(debs, "hello", "1.0-2"), make_deb(debs, "other", "2.0-1")])
    assert result.added == ["hello_1.0-2_all", "other_2.0-1_all"]
    assert published_versions(cfg) == ["1.0-1", "1.0-2"]
    assert len(aptly.snapshots(cfg)) == 2


def test_keep_retains_the_newest_by_debian_version_order(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    versions = ["1.0-9", "1.0-10", "1.0-11"]  # string order would keep the wrong two
    repo.publish(cfg, [make_deb(debs, "hello", v) for v in versions[:2]], keep=2)
    result = repo.publish(cfg, [make_deb(debs, "hello", versions[2])], keep=2)
    assert result.removed == ["hello_1.0-9_all"]
    assert published_versions(cfg) == ["1.0-10", "1.0-11"]
    assert [r.version for r in aptly.list_packages(cfg)] == ["1.0-10", "1.0-11"]
    # a version dropped by retention stays immutable
    with pytest.raises(AppdebError, match="versions are immutable"):
        repo.publish(cfg, [make_deb(debs, "hello", "1.0-9", payload="other bytes")], keep=2)


def test_rollback_switches_back_and_later_publishes_build_on_it(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-2")])
    first, second = aptly.snapshots(cfg)
    entry = repo.rollback(cfg)
    assert (entry.action, entry.snapshot, entry.previous) == ("rollback", first, second)
    assert entry.removed == ["hello_1.0-2_all"]
    assert aptly.published_snapshot(cfg) == first
    assert published_versions(cfg) == ["1.0-1"]
    signing.verify_clearsigned(cfg.key_gpg, cfg.public_dir / "dists/bookworm/InRelease")
    assert store.history(cfg)[-1] == entry
    # the next publish starts from what is published now, not from the rolled-back state
    result = repo.publish(cfg, [make_deb(debs, "hello", "1.0-3")])
    assert result.added == ["hello_1.0-3_all"]
    assert published_versions(cfg) == ["1.0-1", "1.0-3"]
    # rolling back again undoes that publish (back to `first`), skipping the rolled-back `second`
    assert repo.rollback(cfg).snapshot == first
    assert published_versions(cfg) == ["1.0-1"]
    # and a named snapshot can be restored ("roll forward")
    repo.rollback(cfg, to=second)
    assert published_versions(cfg) == ["1.0-1", "1.0-2"]
    with pytest.raises(AppdebError, match="no snapshot"):
        repo.rollback(cfg, to="bookworm-nonexistent")


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_served_index_is_never_stale_after_same_second_republish(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    inrelease = cfg.public_dir / "dists/bookworm/InRelease"
    with reposerve.serve(cfg) as server:
        status, old, headers = _get(server.url + "dists/bookworm/InRelease")
        assert status == 200
        assert headers["Cache-Control"] == "no-cache"
        old_mtime = inrelease.stat().st_mtime
        repo.publish(cfg, [make_deb(debs, "hello", "1.0-2")])
        # publish waits for a new wall-clock second, so even mtime-based servers see a change
        assert int(inrelease.stat().st_mtime) > int(old_mtime)
        # and our server ignores If-Modified-Since for index files whatever the clock says
        now = email.utils.formatdate(time.time() + 5, usegmt=True)
        for ims in (headers["Last-Modified"], now):
            status, new, _ = _get(server.url + "dists/bookworm/InRelease", {"If-Modified-Since": ims})
            assert status == 200
            assert new == inrelease.read_bytes() != old
        # immutable pool files keep normal conditional GET
        status, _, _ = _get(server.url + "pool/main/h/hello/hello_1.0-1_all.deb", {"If-Modified-Since": now})
        assert status == 304


def _apt_options(tmp: Path) -> list[str]:
    """Redirect every apt path we write or trust into `tmp`; sources come from tmp/etc only."""
    for sub in ("lists/partial", "cache/archives/partial", "trusted.gpg.d"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    opts = {
        "Dir::Etc::SourceList": "/dev/null",
        "Dir::Etc::SourceParts": str(tmp / "etc/apt/sources.list.d"),
        "Dir::Etc::Trusted": str(tmp / "trusted.gpg"),
        "Dir::Etc::TrustedParts": str(tmp / "trusted.gpg.d"),
        "Dir::State::Lists": str(tmp / "lists"),
        "Dir::Cache": str(tmp / "cache"),
        "APT::Sandbox::User": "root",  # tmp dirs are not readable by _apt
        "Acquire::http::Proxy::127.0.0.1": "DIRECT",
    }
    return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]


def _node(tmp: Path, cfg: repoconfig.RepoConfig, url: str) -> list[str]:
    """A fake node root: client files written under tmp/etc, Signed-By rewritten to match."""
    reposerve.write_client_config(tmp, cfg, url, "appdeb-test")
    sources = tmp / "etc/apt/sources.list.d/appdeb-test.sources"
    key = tmp / "etc/apt/keyrings/appdeb-test.asc"
    sources.write_text(sources.read_text().replace("/etc/apt/keyrings/appdeb-test.asc", str(key)))
    return _apt_options(tmp)


def test_apt_get_uses_the_served_repo(cfg: repoconfig.RepoConfig, debs: Path, tmp_path: Path) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1"), make_deb(debs, "hello", "1.0-2")])
    with reposerve.serve(cfg) as server:
        opts = _node(tmp_path / "node", cfg, server.url)
        run(["apt-get", *opts, "update", "--error-on=any"])
        policy = run(["apt-cache", *opts, "policy", "hello"]).stdout
        assert "Candidate: 1.0-2" in policy
        # publish and update back to back: the node must see the new version at once
        repo.publish(cfg, [make_deb(debs, "hello", "1.0-3")])
        run(["apt-get", *opts, "update", "--error-on=any"])
        assert "Candidate: 1.0-3" in run(["apt-cache", *opts, "policy", "hello"]).stdout


def test_apt_get_rejects_a_repo_signed_with_another_key(
    cfg: repoconfig.RepoConfig, debs: Path, tmp_path: Path
) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    stranger = repoconfig.init_repo(tmp_path / "stranger")
    try:
        with reposerve.serve(cfg) as server:
            opts = _node(tmp_path / "node", stranger, server.url)  # trusts the other key only
            proc = run(["apt-get", *opts, "update", "--error-on=any"], check=False)
        assert proc.returncode != 0
        assert "NO_PUBKEY" in proc.stdout or "not signed" in proc.stdout
        assert not list((tmp_path / "node/lists").glob("*Packages*"))
    finally:
        signing.stop_agent(stranger.gnupg_home)


def test_a_repository_deep_in_the_file_system_signs(tmp_path: Path, debs: Path) -> None:
    """Where /run/user/UID is missing (root on a CI runner), gpg-agent's sockets go into the gnupg home, and a
    socket path gpg-agent takes has at most 106 bytes: a root this deep could not sign ("failed to start agent")."""
    cfg = repoconfig.init_repo(tmp_path / ("d" * 60) / ("e" * 40) / "repo", architectures=["amd64"])
    try:
        assert len(str(cfg.gnupg_home.absolute() / signing.LONGEST_SOCKET)) > signing.SOCKET_PATH_MAX
        repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
        assert "BEGIN PGP SIGNATURE" in (cfg.public_dir / "dists/bookworm/InRelease").read_text()
        assert published_versions(cfg) == ["1.0-1"]
    finally:
        signing.stop_agent(cfg.gnupg_home)
