"""What `appdeb publish` spends its time on, and that the savings give nothing up: real aptly, gpg, dpkg-deb.

- a .deb's control is read by dpkg-deb (whatever member compression dpkg knows), once per publish;
- opening a repository renders aptly.conf only when its stamp does not vouch for it, and re-renders
  it whenever the file, the template's variables (settings, location) or the stamp differ;
- aptly runs with Go's collector tuned, unless the operator set it.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from appdeb.errors import AppdebError
from appdeb.repo import aptly, signing
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.runner import run

from .test_repo import make_deb

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("aptly", "gpg", "gpgv", "dpkg-deb")),
                       reason="needs aptly, gpg, gpgv and dpkg-deb"),
]

# a command that opens the repository and publishes, then names the slow modules it imported
_PUBLISH = """
import sys
from dataclasses import replace
from pathlib import Path
from appdeb.repo.config import open_repo
from appdeb.repo.publish import publish
print(publish(open_repo(Path(sys.argv[1])), [Path(sys.argv[2])]).snapshot)
print(sorted(m for m in ("jinja2", "debian.debfile", "debian.deb822") if m in sys.modules))
"""


def test_a_publish_imports_no_template_engine_nor_deb_reader(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    deb = make_deb(debs, "hello", "1.0-1")
    proc = run([sys.executable, "-c", _PUBLISH, str(cfg.root), str(deb)])
    snapshot, imported = proc.stdout.splitlines()
    assert snapshot.startswith("bookworm-") and imported == "[]"
    assert [r.version for r in aptly.list_packages(cfg)] == ["1.0-1"]


def test_aptly_conf_is_rerendered_whenever_its_stamp_does_not_vouch_for_it(cfg: repoconfig.RepoConfig) -> None:
    stamp = cfg.root / repoconfig.STAMP_FILE
    rendered = cfg.conf.read_text()
    assert stamp.is_file()
    # a setting the template reads changed: the stamp's variables differ, so the conf is rendered anew
    settings = json.loads((cfg.root / "settings.json").read_text())
    (cfg.root / "settings.json").write_text(json.dumps({**settings, "architectures": ["amd64", "arm64"]}))
    repoconfig.open_repo(cfg.root)
    assert json.loads(cfg.conf.read_text())["architectures"] == ["amd64", "arm64"]
    (cfg.root / "settings.json").write_text(json.dumps(settings))
    repoconfig.open_repo(cfg.root)
    assert cfg.conf.read_text() == rendered
    # the conf edited, the stamp kept: the conf's digest differs
    cfg.conf.write_text(rendered.replace('"gpgProvider": "gpg"', '"gpgProvider": "internal"'))
    repoconfig.open_repo(cfg.root)
    assert cfg.conf.read_text() == rendered
    # a forged or damaged stamp only costs a render
    cfg.conf.write_text(rendered.replace(str(cfg.root), "/elsewhere"))
    stamp.write_text("0" * 64 + " " + "0" * 64 + "\n")
    repoconfig.open_repo(cfg.root)
    assert cfg.conf.read_text() == rendered
    stamp.unlink()
    repoconfig.open_repo(cfg.root)
    assert stamp.is_file() and cfg.conf.read_text() == rendered


def test_control_fields_are_read_from_any_member_compression(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    tree = debs / "tree-zstd"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: hello\nVersion: 2.0-1\nArchitecture: all\nMaintainer: Test <test@example.invalid>\n"
        "Description: test package\n a continued description: with a colon\nAppdeb-Target: debian-13\n")
    deb = debs / "hello_2.0-1_all.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(tree), str(deb)])
    result = repo.publish(cfg, [deb])
    assert result.distribution == "trixie" and result.added == ["hello_2.0-1_all"]
    assert [r.version for r in aptly.list_packages(cfg, "trixie")] == ["2.0-1"]
    junk = debs / "junk.deb"
    junk.write_bytes(b"!<arch>\nnot really\n")
    with pytest.raises(AppdebError, match=f"^{junk}: not a usable .deb"):
        repo.publish(cfg, [junk])


def test_aptly_runs_with_go_collector_tuned_unless_the_operator_chose(cfg: repoconfig.RepoConfig,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    home = signing.gnupg_env(cfg.gnupg_home)["GNUPGHOME"]  # the home, or the short link to a deep one
    assert aptly.aptly_env(cfg) == {"GOGC": "400", "GNUPGHOME": home}
    for name, value in (("GOGC", "100"), ("GOMEMLIMIT", "1GiB")):
        with monkeypatch.context() as env:
            env.setenv(name, value)
            assert aptly.aptly_env(cfg) == {"GNUPGHOME": home}  # theirs passes through


def _pool(cfg: repoconfig.RepoConfig) -> set[str]:
    return {p.name for p in (cfg.public_dir / "pool").rglob("*.deb")}


def _indexed(cfg: repoconfig.RepoConfig) -> set[str]:
    """The .debs the published Packages indexes of every distribution name."""
    return {line.split("/")[-1] for index in cfg.public_dir.glob("dists/*/*/binary-*/Packages")
            for line in index.read_text().splitlines() if line.startswith("Filename: ")}


def test_the_public_pool_is_cleaned_every_tenth_publish_and_by_every_rollback(
        cfg: repoconfig.RepoConfig, debs: Path) -> None:
    """Retention drops a version with every publish (keep 1): its .deb stays fetchable until aptly's
    clean-up runs, which is at least every POOL_CLEANUP_EVERY publishes; none stays for ever."""
    cfg = replace(cfg, keep=1)
    published = []
    for build in range(1, 2 * repo.POOL_CLEANUP_EVERY + 1):
        repo.publish(cfg, [make_deb(debs, "hello", f"1.0-{build}")])
        published.append(build)
        pool, indexed = _pool(cfg), _indexed(cfg)
        assert indexed == {f"hello_1.0-{build}_all.deb"} and indexed <= pool  # nothing served is missing
        assert len(pool) <= repo.POOL_CLEANUP_EVERY  # the dropped ones wait for the next clean-up only
    every = repo.POOL_CLEANUP_EVERY  # the 11th publish cleaned up: the ten since are all still there
    assert _pool(cfg) == {f"hello_1.0-{build}_all.deb" for build in range(every + 1, 2 * every + 1)}
    repo.rollback(cfg)
    assert _pool(cfg) == _indexed(cfg) == {f"hello_1.0-{published[-2]}_all.deb"}
