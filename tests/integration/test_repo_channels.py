"""Release channels in one repository: promote a distribution's snapshot to another, yank one version.

Real aptly, gpg and gpgv in pytest's tmp dirs; what is checked is what nodes would download: the
signed Release files and the Packages indexes under ROOT/public.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.repo import aptly, store
from appdeb.repo import config as repoconfig
from appdeb.repo import promote as channels
from appdeb.repo import publish as repo
from appdeb.runner import run

from ..test_cli_repo import appdeb
from .test_repo import make_deb

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("aptly", "gpg", "gpgv", "dpkg-deb")),
                       reason="needs aptly, gpg, gpgv and dpkg-deb"),
]


def index(cfg: repoconfig.RepoConfig, dist: str) -> dict[tuple[str, str], str]:
    """(package, version) -> SHA256 as the distribution's published Packages index lists them."""
    text = (cfg.public_dir / "dists" / dist / "main" / "binary-amd64" / "Packages").read_text()
    stanzas = [dict(ln.split(": ", 1) for ln in st.splitlines() if ": " in ln) for st in text.split("\n\n")]
    return {(st["Package"], st["Version"]): st["SHA256"] for st in stanzas if "Package" in st}


def signed(cfg: repoconfig.RepoConfig, dist: str) -> None:
    """Both signatures nodes may check verify against the repository key alone."""
    dists = cfg.public_dir / "dists" / dist
    run(["gpgv", "--keyring", str(cfg.key_gpg), str(dists / "InRelease")])
    run(["gpgv", "--keyring", str(cfg.key_gpg), str(dists / "Release.gpg"), str(dists / "Release")])


def test_promote_serves_the_same_bytes_signed_and_a_later_publish_builds_on_it(
    cfg: repoconfig.RepoConfig, debs: Path,
) -> None:
    a, b = make_deb(debs, "hello", "1.0-1"), make_deb(debs, "other", "2.0-1")
    staged = repo.publish(cfg, [a, b], distribution="staging")
    entry = channels.promote(cfg, "prod", from_dist="staging")
    assert entry is not None and entry.action == "promote"
    assert (entry.distribution, entry.previous) == ("prod", None)
    assert entry.added == ["hello_1.0-1_all", "other_2.0-1_all"] and entry.removed == []
    assert index(cfg, "prod") == index(cfg, "staging") and len(index(cfg, "prod")) == 2  # the same sha256s
    signed(cfg, "prod")
    assert store.history(cfg, "prod") == [entry]
    assert aptly.published_snapshot(cfg, "prod") == entry.snapshot != staged.snapshot
    assert channels.promote(cfg, "prod", from_dist="staging") is None  # nothing new: nothing published

    # prod's local repo is what prod serves: a direct publish adds to it, drops nothing, resurrects nothing
    newer = repo.publish(cfg, [make_deb(debs, "hello", "1.0-2")], distribution="prod")
    assert newer.added == ["hello_1.0-2_all"] and newer.removed == []
    assert sorted(index(cfg, "prod")) == [("hello", "1.0-1"), ("hello", "1.0-2"), ("other", "2.0-1")]
    assert sorted(index(cfg, "staging")) == [("hello", "1.0-1"), ("other", "2.0-1")]

    # promoting a named snapshot switches prod back to exactly its packages, recorded with what left
    again = channels.promote(cfg, "prod", snapshot=staged.snapshot)
    assert again is not None and again.removed == ["hello_1.0-2_all"] and again.previous == newer.snapshot
    assert index(cfg, "prod") == index(cfg, "staging")
    signed(cfg, "prod")
    assert repo.rollback(cfg, distribution="prod").snapshot == newer.snapshot  # undo the promotion


def test_promote_refuses_clearly(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")], distribution="staging")
    with pytest.raises(AppdebError, match="cannot promote staging to itself"):
        channels.promote(cfg, "staging", from_dist="staging")
    with pytest.raises(AppdebError, match="nothing is published for qa"):
        channels.promote(cfg, "prod", from_dist="qa")
    with pytest.raises(AppdebError, match=r"no snapshot staging-20000101T000000\.000000Z"):
        channels.promote(cfg, "prod", snapshot="staging-20000101T000000.000000Z")
    assert "prod" not in aptly.published(cfg)


def test_promote_never_serves_a_package_in_another_releases_distribution(
    cfg: repoconfig.RepoConfig, debs: Path,
) -> None:
    """As publish: a debian-13 build promoted into bookworm would be offered to nodes that refuse it."""
    old = make_deb(debs, "notes", "1.0-1", extra="Appdeb-Target: debian-12\n")
    repo.publish(cfg, [old], distribution="bookworm")
    served = index(cfg, "bookworm")
    new = make_deb(debs, "notes", "2.0-1", extra="Appdeb-Target: debian-13\n")
    repo.publish(cfg, [new, make_deb(debs, "plain", "1.0-1")], distribution="trixie-staging")
    history = store.history(cfg)
    with pytest.raises(AppdebError, match=r"notes 2\.0-1 in trixie-staging was built for debian-13 \(trixie\), "
                                          r"not for distribution bookworm: promote it into trixie"):
        channels.promote(cfg, "bookworm", from_dist="trixie-staging")
    with pytest.raises(AppdebError, match="not for distribution bookworm-prod"):
        snap = aptly.published(cfg)["trixie-staging"][0]
        channels.promote(cfg, "bookworm-prod", snapshot=snap)
    err = appdeb("repo", "promote", "--from", "trixie-staging", "--to", "bookworm", root=cfg.root, check_code=1).stderr
    assert err.startswith("appdeb: error: notes 2.0-1 in trixie-staging was built for debian-13 (trixie)")
    assert index(cfg, "bookworm") == served and "bookworm-prod" not in aptly.published(cfg)  # nothing changed
    assert store.history(cfg) == history
    assert channels.promote(cfg, "trixie", from_dist="trixie-staging") is not None  # its own release: fine
    assert ("notes", "2.0-1") in index(cfg, "trixie")
    assert channels.promote(cfg, "prod", from_dist="trixie-staging") is not None  # a distribution of no release


def test_yank_withdraws_exactly_one_version_for_good(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    v1, v2, v3 = (make_deb(debs, "hello", f"1.0-{n}") for n in (1, 2, 3))
    repo.publish(cfg, [v1, v2])
    with_v2 = repo.publish(cfg, [v3]).snapshot
    entry = channels.yank(cfg, "hello=1.0-2")
    assert (entry.action, entry.removed, entry.added, entry.previous) == ("yank", ["hello_1.0-2_all"], [],
                                                                          with_v2)
    assert sorted(index(cfg, "bookworm")) == [("hello", "1.0-1"), ("hello", "1.0-3")]
    signed(cfg, "bookworm")

    # never again: neither other bytes nor the same bytes, nor by rollback or promotion
    with pytest.raises(AppdebError, match="was yanked"):
        repo.publish(cfg, [make_deb(debs, "hello", "1.0-2", payload="other bytes")])
    with pytest.raises(AppdebError, match="was yanked"):
        repo.publish(cfg, [v2])
    with pytest.raises(AppdebError, match=r"holds yanked hello_1\.0-2_all"):
        repo.rollback(cfg)
    with pytest.raises(AppdebError, match=r"holds yanked hello_1\.0-2_all"):
        channels.promote(cfg, "prod", snapshot=with_v2)
    with pytest.raises(AppdebError, match=r"hello 1.0-2 is not published in bookworm \(published versions of "
                                          r"hello: 1.0-1, 1.0-3\)"):
        channels.yank(cfg, "hello=1.0-2")
    with pytest.raises(AppdebError, match="not PACKAGE=VERSION"):
        channels.yank(cfg, "hello=1.0-2)|Name")

    # everything published after it stays, and later publishes build on the yanked state
    later = repo.publish(cfg, [make_deb(debs, "hello", "1.0-4")])
    assert later.added == ["hello_1.0-4_all"] and later.removed == []
    assert sorted(v for _, v in index(cfg, "bookworm")) == ["1.0-1", "1.0-3", "1.0-4"]
    assert [e.action for e in store.history(cfg)] == ["publish", "publish", "yank", "publish"]


def test_yank_of_an_epoch_version_of_another_distribution(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    repo.publish(cfg, [make_deb(debs, "tool", "1:2.0-1"), make_deb(debs, "tool", "1:2.0-2")], distribution="qa")
    assert channels.yank(cfg, "tool=1:2.0-1", distribution="qa").removed == ["tool_1:2.0-1_all"]
    assert sorted(index(cfg, "qa")) == [("tool", "1:2.0-2")]


def test_the_command_line(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    root = cfg.root
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1"), make_deb(debs, "hello", "1.0-2")],
                 distribution="staging")
    assert "either a SNAPSHOT or --from" in appdeb("repo", "promote", "--to", "prod", root=root,
                                                   check_code=2).stderr
    out = appdeb("repo", "promote", "--from", "staging", "--to", "prod", root=root).stdout
    assert out.startswith("prod: now serving prod-") and "    + hello_1.0-2_all" in out
    assert "nothing changed" in appdeb("repo", "promote", "--from", "staging", "--to", "prod", root=root).stdout
    out = appdeb("repo", "yank", "hello=1.0-2", "--distribution", "prod", root=root).stdout
    assert "    - hello_1.0-2_all" in out
    err = appdeb("repo", "yank", "hello=1.0-2", "--distribution", "prod", root=root, check_code=1).stderr
    assert err == ("appdeb: error: hello 1.0-2 is not published in prod (published versions of hello: 1.0-1)\n")
    history = appdeb("repo", "history", "--distribution", "prod", "--json", root=root).stdout.splitlines()
    assert [json.loads(line)["action"] for line in history] == ["promote", "yank"]
    for bad, said, code in ((["--pull", "Hello;x"], "not an appdeb package name", 1),
                            (["--pull", "hello", "--pull-every", "5s"], "'--pull-every': 5s: at least 10 s", 2)):
        err = appdeb("repo", "client-config", "--url", "http://127.0.0.1:1/", *bad, root=root, check_code=code).stderr
        assert said in err
