"""What a publish trusts, and what it keeps apart: the caller's file, other releases' builds, aptly's state.

Real aptly, gpg and gpgv in pytest's tmp dirs, as test_repo.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.repo import aptly, store
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.runner import run

from .test_repo import make_deb
from .test_repo_channels import index, signed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("aptly", "gpg", "gpgv", "dpkg-deb")),
                       reason="needs aptly, gpg, gpgv and dpkg-deb"),
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_rewritten_during_the_publish_cannot_slip_in_other_bytes(
    cfg: repoconfig.RepoConfig, debs: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller swaps its file's bytes right after publish first read it: what is checked, recorded
    in the ledger and served are the first bytes, all three."""
    deb = make_deb(debs, "hello", "1.0-1")
    checked = _sha(deb)
    other = make_deb(debs, "hello", "1.0-1", payload="slipped in")
    real = repo._read_deb

    def then_rewrite(path: Path, copy: Path) -> repo._Deb:
        found = real(path, copy)
        shutil.copyfile(other, deb)  # the caller's file now holds other bytes of the same version
        return found

    monkeypatch.setattr(repo, "_read_deb", then_rewrite)
    repo.publish(cfg, [deb])
    assert _sha(deb) != checked
    assert index(cfg, "bookworm") == {("hello", "1.0-1"): checked}
    assert store.load_ledger(cfg, "") == {"hello_1.0-1_all": checked}  # it names no release: the shared scope
    pooled = list((cfg.public_dir / "pool").rglob("*.deb"))
    assert [_sha(p) for p in pooled] == [checked]
    staging = [p for p in cfg.root.iterdir() if p.name.startswith(".incoming-")]
    assert staging == []  # the private copies are gone afterwards


def test_the_staging_dir_is_roots_alone(cfg: repoconfig.RepoConfig, debs: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = repo._read_deb

    def mode_of_staging(path: Path, copy: Path) -> repo._Deb:
        staging = copy.parents[2]
        seen.append(staging.stat().st_mode & 0o777)
        assert staging.parent == cfg.root and staging.stat().st_uid == cfg.root.stat().st_uid
        return real(path, copy)

    monkeypatch.setattr(repo, "_read_deb", mode_of_staging)
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    assert seen == [0o700]


def test_one_version_built_for_two_releases_is_published_in_each(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    """An arch-all debian-12 and debian-13 build of one version differ in bytes: each release keeps its own."""
    old = make_deb(debs, "notes", "1.0-1", payload="bookworm", extra="Appdeb-Target: debian-12\n")
    new = make_deb(debs, "notes", "1.0-1", payload="trixie", extra="Appdeb-Target: debian-13\n")
    assert _sha(old) != _sha(new)
    repo.publish(cfg, [old], distribution="bookworm")
    repo.publish(cfg, [new], distribution="trixie")
    assert index(cfg, "bookworm") == {("notes", "1.0-1"): _sha(old)}
    assert index(cfg, "trixie") == {("notes", "1.0-1"): _sha(new)}
    signed(cfg, "trixie")
    # the channels of one release share its ledger: other bytes of the version stay refused there
    rebuilt = make_deb(debs, "notes", "1.0-1", payload="rebuilt", extra="Appdeb-Target: debian-12\n")
    with pytest.raises(AppdebError, match="already published with different contents"):
        repo.publish(cfg, [rebuilt], distribution="bookworm-staging")
    assert "bookworm-staging" not in aptly.published(cfg)


def test_a_ledger_from_before_releases_still_binds_every_release(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    old = make_deb(debs, "notes", "1.0-1", extra="Appdeb-Target: debian-12\n")
    (cfg.root / "ledger.json").write_text(json.dumps({"notes_1.0-1_all": _sha(old)}, indent=0))
    new = make_deb(debs, "notes", "1.0-1", payload="trixie", extra="Appdeb-Target: debian-13\n")
    with pytest.raises(AppdebError, match="already published with different contents"):
        repo.publish(cfg, [new], distribution="trixie")
    repo.publish(cfg, [make_deb(debs, "notes", "1.0-2", extra="Appdeb-Target: debian-13\n")])
    trixie = store.load_ledger(cfg, "trixie")
    assert sorted(trixie) == ["notes_1.0-1_all", "notes_1.0-2_all"] and trixie["notes_1.0-1_all"] == _sha(old)
    assert store.load_ledger(cfg, "bookworm") == {"notes_1.0-1_all": _sha(old)}  # kept, and only that


def test_rollback_refuses_a_snapshot_built_for_another_release(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    """A snapshot named for bookworm (made with aptly by hand, or before publish checked releases) that
    holds a debian-13 build: rolling bookworm back to it is refused before anything changes."""
    repo.publish(cfg, [make_deb(debs, "notes", "1.0-1", extra="Appdeb-Target: debian-12\n")])
    foreign = make_deb(debs, "notes", "0.9-1", extra="Appdeb-Target: debian-13\n")
    stray = "bookworm-20200101T000000.000000Z"
    for args in (["repo", "create", "stray"], ["repo", "add", "stray", str(foreign)],
                 ["snapshot", "create", stray, "from", "repo", "stray"]):
        aptly.aptly(cfg, *args)
    served, history = index(cfg, "bookworm"), store.history(cfg)
    with pytest.raises(AppdebError, match=r"notes 0\.9-1 in bookworm-20200101T000000\.000000Z was built for "
                                          r"debian-13 \(trixie\), not for distribution bookworm"):
        repo.rollback(cfg, to=stray)
    assert index(cfg, "bookworm") == served and store.history(cfg) == history
    assert repo.publish(cfg, [make_deb(debs, "notes", "1.0-2", extra="Appdeb-Target: debian-12\n")]).snapshot


def test_a_change_made_with_aptly_directly_is_seen_by_the_next_publish(cfg: repoconfig.RepoConfig,
                                                                       debs: Path) -> None:
    """A publish remembers aptly's state for the next one only while aptly's database is unchanged."""
    first = repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")]).snapshot
    second = repo.publish(cfg, [make_deb(debs, "hello", "1.0-2")]).snapshot
    assert first and second
    aptly.aptly(cfg, "publish", "switch", f"-gpg-key={cfg.key}", "-batch", "bookworm", ".", first)
    entry = store.history(cfg)[-1]
    result = repo.publish(cfg, [make_deb(debs, "hello", "1.0-3")])
    latest = store.history(cfg)[-1]
    assert latest.previous == first != entry.snapshot  # it knew aptly served `first`, not its own last one
    # and the local repo, which still holds 1.0-2 (aptly switched only what is served), is read too
    assert result.added == ["hello_1.0-2_all", "hello_1.0-3_all"] and result.removed == []
    run(["gpgv", "--keyring", str(cfg.key_gpg), str(cfg.public_dir / "dists/bookworm/InRelease")])


@pytest.mark.parametrize("field,value", [("Package", "../../../public/pool/main/h/hello/hello"),
                                         ("Version", "1.0/../../x"), ("Architecture", "all/../..")])
def test_a_control_field_naming_a_path_is_refused_before_anything_changes(
        cfg: repoconfig.RepoConfig, debs: Path, tmp_path: Path, field: str, value: str) -> None:
    """A crafted .deb (dpkg-deb --nocheck) whose fields climb out of the staging dir or the pool."""
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1")])
    before = {p: p.read_bytes() for p in cfg.root.rglob("*") if p.is_file() and "db" not in p.parts}
    fields = {"Package": "hello", "Version": "1.1-1", "Architecture": "all", field: value}
    tree = tmp_path / "crafted"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items())
                                             + "Maintainer: T <t@example.invalid>\nDescription: crafted\n")
    crafted = debs / "crafted.deb"
    run(["dpkg-deb", "--nocheck", "--root-owner-group", "-Zgzip", "--build", str(tree), str(crafted)])
    with pytest.raises(AppdebError, match=f"its {field} field .* is not Debian's syntax"):
        repo.publish(cfg, [crafted])
    after = {p: p.read_bytes() for p in cfg.root.rglob("*") if p.is_file() and "db" not in p.parts}
    assert after == before  # the pool, the indexes, the ledger and history as they were
    assert not list(cfg.root.glob(".incoming-*"))  # staging removed


def test_a_release_less_distribution_cannot_give_a_version_other_bytes(cfg: repoconfig.RepoConfig,
                                                                        debs: Path) -> None:
    """bookworm serves X with bytes A; a debian-12 rebuild B of X into `prod` (then promoted into
    bookworm) would serve B under X to nodes that hold A: refused at publish."""
    first = make_deb(debs, "notes", "1.0-1", payload="a", extra="Appdeb-Target: debian-12\n")
    rebuilt = make_deb(debs, "notes", "1.0-1", payload="b", extra="Appdeb-Target: debian-12\n")
    repo.publish(cfg, [first], distribution="bookworm")
    with pytest.raises(AppdebError, match="already published with different contents"):
        repo.publish(cfg, [rebuilt], distribution="prod")
    assert "prod" not in aptly.published(cfg)
    repo.publish(cfg, [first], distribution="prod")  # the same bytes go anywhere
    assert index(cfg, "prod") == {("notes", "1.0-1"): _sha(first)}


def test_a_description_with_unicode_line_separators_cannot_rename_the_package(tmp_path: Path) -> None:
    """U+2028 or U+0085 in a field are not line breaks to dpkg or aptly: publish must not read them as such."""
    from appdeb.repo.dists import deb_control

    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: realpkg\nVersion: 1.0\nArchitecture: all\nMaintainer: a <a@b.invalid>\n"
        "Description: hello\u2028Package: fakepkg\u0085Version: 9.9\u2028Appdeb-Target: debian-13\n", encoding="utf-8")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(tmp_path / "x.deb")],
                   check=True, capture_output=True)
    fields = deb_control(tmp_path / "x.deb")
    assert (fields["Package"], fields["Version"]) == ("realpkg", "1.0") and "Appdeb-Target" not in fields
