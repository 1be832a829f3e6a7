"""Publishes faster than one a second: a node never misses one, and nothing else is given up for it.

Real aptly, gpg and apt-get (with a private state and configuration under tmp, as in test_repo.py).
Nodes fetch from the built-in server and from a plain mtime-based static server that answers
`304 Not Modified` whenever a file is not newer than If-Modified-Since, as nginx and Apache do.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from debian.debian_support import Version

from appdeb.errors import AppdebError
from appdeb.repo import aptly, signing, store
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve
from appdeb.runner import run

from .test_repo import _get, _node, make_deb

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("aptly", "gpg", "gpgv", "dpkg-deb", "apt-get")),
        reason="needs aptly, gpg, gpgv, dpkg-deb and apt-get",
    ),
]

INRELEASE = "dists/bookworm/InRelease"


class _StaticHandler(SimpleHTTPRequestHandler):
    """A plain static server: conditional GETs by mtime everywhere (304 when not newer), requests logged."""

    log: list[tuple[str, int]]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log.append((self.path, int(code)))

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def static(cfg: repoconfig.RepoConfig) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """(URL, request log) of a static server for ROOT/public."""
    cfg.public_dir.mkdir(parents=True, exist_ok=True)
    log: list[tuple[str, int]] = []
    handler = type("Handler", (_StaticHandler,), {"log": log})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(cfg.public_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", log
    finally:
        httpd.shutdown()
        httpd.server_close()


def _candidate(opts: list[str]) -> str:
    run(["apt-get", *opts, "update", "--error-on=any"])
    policy = run(["apt-cache", *opts, "policy", "hello"]).stdout
    return next(line.split(":", 1)[1].strip() for line in policy.splitlines() if "Candidate:" in line)


@pytest.mark.parametrize("server", ["built-in", "static"])
def test_a_node_sees_every_publish_of_a_burst(cfg: repoconfig.RepoConfig, debs: Path, tmp_path: Path,
                                              static: tuple[str, list[tuple[str, int]]], server: str) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    builtin = reposerve.serve(cfg)
    url, log = (builtin.url, []) if server == "built-in" else static
    try:
        opts = _node(tmp_path / "node", cfg, url)
        assert _candidate(opts) == "1.0-1"
        stamps = [int((cfg.public_dir / INRELEASE).stat().st_mtime)]
        started = time.monotonic()
        for build in range(2, 8):  # publish, update, check: several times a second
            repo.publish(cfg, [make_deb(debs, "hello", f"1.0-{build}")])
            stamps.append(int((cfg.public_dir / INRELEASE).stat().st_mtime))
            assert _candidate(opts) == f"1.0-{build}"
        print(f"6 publishes, each followed by apt-get update: {time.monotonic() - started:.2f}s")
    finally:
        builtin.close()
    # Last-Modified grew with every publish, so no mtime-based server had a reason to answer 304
    assert stamps == sorted(set(stamps))
    if server == "static":
        # apt took the indexes by hash (Acquire-By-Hash), and nothing it asked for was missing
        assert any("/by-hash/SHA512/" in path and code == 200 for path, code in log)
        assert not [entry for entry in log if entry[1] >= 400]


@pytest.mark.parametrize("server", ["built-in", "static"])
def test_apt_get_update_never_fails_while_publishes_run_back_to_back(
    cfg: repoconfig.RepoConfig, debs: Path, tmp_path: Path, static: tuple[str, list[tuple[str, int]]], server: str,
) -> None:
    """A node updating over and over while ten publishes run back to back: no update fails (a hash sum
    mismatch, a missing index or file, a bad signature: --error-on=any), and the last one is the candidate."""
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    builds = [make_deb(debs, "hello", f"1.0-{build}") for build in range(2, 12)]  # built before the burst
    builtin = reposerve.serve(cfg)
    url, log = (builtin.url, []) if server == "built-in" else static
    opts = _node(tmp_path / "node", cfg, url)
    done, errors, failed, updates = threading.Event(), [], [], 0

    def publisher() -> None:
        try:
            for deb in builds:
                repo.publish(cfg, [deb])
        except Exception as exc:  # reported below: the test's own thread asserts
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=publisher)
    seen: set[str] = set()
    try:
        thread.start()
        while not done.is_set():
            proc = run(["apt-get", *opts, "update", "--error-on=any"], check=False)
            updates += 1
            if proc.returncode != 0:
                failed.append(proc.stdout)
            seen |= _signed_and_complete(url, cfg, tmp_path / "fetched")
        thread.join()
        assert not errors and not failed, (errors, failed)
        print(f"{updates} updates during 10 publishes, {len(seen)} versions seen by a plain fetch")
        assert updates >= 2 and len(store.history(cfg)) == 11 and seen <= {f"1.0-{b}" for b in range(1, 12)}
        assert _candidate(opts) == "1.0-11"
    finally:
        thread.join()
        builtin.close()
    assert not [entry for entry in log if entry[1] >= 400]


def _signed_and_complete(url: str, cfg: repoconfig.RepoConfig, where: Path) -> set[str]:
    """Fetch InRelease as a node would, check its signature with gpgv against the repository's key,
    then the index it names by hash (its bytes must hash to it) and the .deb of the newest version it
    names (what a node installs; an older one may be gone with retention): the versions it offers. Any
    half state (unsigned, stale, an index or the candidate's .deb missing) fails here."""
    inrelease = _get(url + INRELEASE)[1]
    where.write_bytes(inrelease)
    signing.verify_clearsigned(cfg.key_gpg, where)
    sha = _promised(inrelease, "main/binary-amd64/Packages")
    status, index, _ = _get(url + f"dists/bookworm/main/binary-amd64/by-hash/SHA256/{sha}")
    assert status == 200 and hashlib.sha256(index).hexdigest() == sha
    stanzas = [dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
               for text in index.decode().strip().split("\n\n")]
    newest = max(stanzas, key=lambda stanza: Version(stanza["Version"]))
    status, deb, _ = _get(url + newest["Filename"])
    assert status == 200 and hashlib.sha256(deb).hexdigest() == newest["SHA256"]
    return {stanza["Version"] for stanza in stanzas}


def _promised(inrelease: bytes, index: str) -> str:
    """The SHA256 an InRelease lists for `index` (e.g. main/binary-amd64/Packages.gz)."""
    section = inrelease.decode().split("\nSHA256:\n", 1)[1]
    return next(line.split()[0] for line in section.splitlines() if line.split()[-1:] == [index])


def test_a_node_still_fetching_gets_the_indexes_its_inrelease_names(cfg: repoconfig.RepoConfig, debs: Path,
                                                                   static: tuple[str, list[tuple[str, int]]]) -> None:
    """An update reads InRelease, then the indexes by hash: publishes in between must not take them away."""
    url, _ = static
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    sha = _promised(_get(url + INRELEASE)[1], "main/binary-amd64/Packages.gz")
    by_hash = url + f"dists/bookworm/main/binary-amd64/by-hash/SHA256/{sha}"
    for build in range(2, 6):  # four publishes while that node is still busy
        repo.publish(cfg, [make_deb(debs, "hello", f"1.0-{build}")])
    status, body, _ = _get(by_hash)
    assert status == 200 and hashlib.sha256(body).hexdigest() == sha
    # kept for the last ten publishes (two index files each), not for ever
    for build in range(6, 6 + aptly.BY_HASH_KEPT // 2):
        repo.publish(cfg, [make_deb(debs, "hello", f"1.0-{build}")])
    assert _get(by_hash)[0] == 404
    newest = _promised(_get(url + INRELEASE)[1], "main/binary-amd64/Packages.gz")
    assert _get(url + f"dists/bookworm/main/binary-amd64/by-hash/SHA256/{newest}")[0] == 200


def test_inrelease_moves_past_a_last_modified_ahead_of_the_clock(cfg: repoconfig.RepoConfig, debs: Path,
                                                                 static: tuple[str, list[tuple[str, int]]]) -> None:
    """After a burst the files may be dated a few seconds ahead; the next publish still dates past them."""
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    dists = cfg.public_dir / "dists/bookworm"
    ahead = int(time.time()) + 3
    for name in ("InRelease", "Release", "Release.gpg"):
        os.utime(dists / name, (ahead, ahead))
    url, _ = static
    status, old, headers = _get(url + INRELEASE)
    assert status == 200
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-2")])
    for name in ("InRelease", "Release", "Release.gpg"):
        assert int((dists / name).stat().st_mtime) == ahead + 1
    status, new, _ = _get(url + INRELEASE, {"If-Modified-Since": headers["Last-Modified"]})
    assert status == 200 and new != old
    # a client holding the new one gets 304 from the static server, as before: nothing is always re-sent
    stamp = email.utils.formatdate(ahead + 1, usegmt=True)
    assert _get(url + INRELEASE, {"If-Modified-Since": stamp})[0] == 304


def test_a_publish_that_failed_after_adding_is_completed_by_the_next(cfg: repoconfig.RepoConfig,
                                                                      debs: Path) -> None:
    """The switch fails (here: a key gpg does not have) after `repo add`: the local repo is ahead of what
    is served, so the next publish must not take the repo's packages from the published index."""
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    stranded = make_deb(debs, "hello", "1.0-2")
    with pytest.raises(AppdebError):
        repo.publish(dataclasses.replace(cfg, key="0" * 40), [stranded])
    assert [r.version for r in aptly.list_packages(cfg)] == ["1.0-1"]
    # the ledger was written first: the version is taken with these bytes although it was never served
    with pytest.raises(AppdebError, match="already published with different contents"):
        repo.publish(cfg, [make_deb(debs, "hello", "1.0-2", payload="other bytes")])
    # the next publish (of anything) serves what the repo holds, and says so in history
    result = repo.publish(cfg, [make_deb(debs, "other", "1.0-1")])
    assert result.added == ["hello_1.0-2_all", "other_1.0-1_all"]
    assert [r.key for r in aptly.list_packages(cfg)] == ["hello_1.0-1_all", "hello_1.0-2_all", "other_1.0-1_all"]
    assert repo.publish(cfg, [stranded]).snapshot is None  # the same bytes again: nothing to do
    # and a publish after a rollback builds on exactly what is served again
    repo.rollback(cfg)
    assert repo.publish(cfg, [make_deb(debs, "hello", "1.0-3")]).added == ["hello_1.0-3_all"]
    assert [r.key for r in aptly.list_packages(cfg)] == ["hello_1.0-1_all", "hello_1.0-3_all"]


def _pooled(cfg: repoconfig.RepoConfig) -> list[str]:
    """name_version of every .deb in aptly's own pool (files named HASH_name_version_arch.deb)."""
    return sorted("_".join(p.name.split("_")[1:3]) for p in (cfg.root / "pool").rglob("*.deb"))


def test_retention_still_frees_the_pool(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    """db cleanup is skipped when nothing was removed, never when dropped snapshots held the last copy."""
    small = dataclasses.replace(cfg, keep=1, keep_snapshots=2)
    for build in range(1, 5):
        repo.publish(small, [make_deb(debs, "hello", f"1.0-{build}")])
    assert len(aptly.snapshots(cfg)) == 2
    assert _pooled(cfg) == ["hello_1.0-3", "hello_1.0-4"]  # 1.0-3 is in the older kept snapshot
    keep_all = dataclasses.replace(cfg, keep=0, keep_snapshots=2)
    for name in ("other", "third"):
        repo.publish(keep_all, [make_deb(debs, name, "1.0-1")])
    # the snapshot holding the last copy of 1.0-3 was dropped, so its file went; everything served stays
    assert _pooled(cfg) == ["hello_1.0-4", "other_1.0-1", "third_1.0-1"]
    # and the published pool holds what is served only
    served = sorted(p.name for p in (cfg.public_dir / "pool").rglob("*.deb"))
    assert served == ["hello_1.0-4_all.deb", "other_1.0-1_all.deb", "third_1.0-1_all.deb"]
    assert [r.key for r in aptly.list_packages(cfg)] == ["hello_1.0-4_all", "other_1.0-1_all", "third_1.0-1_all"]


def _published_files(public: Path) -> dict[Path, bytes]:
    """Every file under dists/ as a client would get it (links followed; a dangling link is missing)."""
    return {p.relative_to(public): p.read_bytes() for p in (public / "dists").rglob("*") if p.is_file()}


def test_a_copied_root_publishes_without_touching_the_original(cfg: repoconfig.RepoConfig, debs: Path,
                                                               tmp_path: Path) -> None:
    """aptly's by-hash links are absolute: in a copy they name the original's files, which it would delete."""
    for build in (1, 2):
        repo.publish(cfg, [make_deb(debs, "hello", f"1.0-{build}")])
    original = _published_files(cfg.public_dir)
    run(["cp", "-a", str(cfg.root), str(tmp_path / "copy")])
    copy = repoconfig.open_repo(tmp_path / "copy")
    try:
        for build in (3, 4):
            repo.publish(copy, [make_deb(debs, "hello", f"1.0-{build}")])
    finally:
        signing.stop_agent(copy.gnupg_home)
    assert _published_files(cfg.public_dir) == original
    links = [p for p in (copy.public_dir / "dists").rglob("*") if p.is_symlink()]
    assert links and all(p.exists() and p.resolve().is_relative_to(copy.root) for p in links)


