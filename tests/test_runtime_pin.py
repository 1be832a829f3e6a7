"""The runtime's pin/rollback helpers without apt changes (the e2e tests run them on a node)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appdeb.runtime import app as runtime_app
from appdeb.runtime import main as runtime_main
from appdeb.runtime import pinning, rollback

from .noderoot import install_root

pytestmark = pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg (Debian version order)")


def make_app(tmp_path: Path, *, dev: bool = False) -> runtime_app.AppPackage:
    return install_root(tmp_path, package="hello-rp1", version="1.0.0-2", dev=dev)


POLICY = """\
hello-rp1:
  Installed: 1.0.0-2
  Candidate: 1.0.0-2
  Version table:
     2.10-3 500
        500 http://archive.example.invalid/debian bookworm/main amd64 Packages
 *** 1.0.0-2 1001
        995 http://127.0.0.1:8080 bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
     1.0.0-1 995
        995 http://127.0.0.1:8080 bookworm/main amd64 Packages
        995 http://127.0.0.1:9090 bookworm/main amd64 Packages
     1 995
        995 http://127.0.0.1:8080 bookworm/main amd64 Packages
     0.9-1 100
        100 /var/lib/dpkg/status
"""


def test_only_the_repositorys_versions_count_once_each() -> None:
    """Another source's package of the same name (the archive's 2.10-3) is never a version to go back to."""
    assert pinning.parse_policy(POLICY) == ["1.0.0-2", "1.0.0-1", "1"]
    assert pinning.parse_policy("N: Unable to locate package hello-rp1\n") == []


def test_the_runtime_knows_the_priority_the_client_files_give() -> None:
    from appdeb.repo.serve import PIN_PRIORITY

    assert pinning.REPOSITORY_PRIORITY == PIN_PRIORITY


def test_versions_sort_in_debian_order() -> None:
    versions = ["1.0.0-10", "1.0.0-9", "1.0.0~rc1-1", "1.0.0-2+abc", "1:0.1-1", "1.0.0-2"]
    assert pinning.sort_versions(versions) == ["1.0.0~rc1-1", "1.0.0-2", "1.0.0-2+abc", "1.0.0-9", "1.0.0-10",
                                               "1:0.1-1"]
    assert pinning.version_lt("1.0.0-9", "1.0.0-10") and not pinning.version_lt("1.0.0-10", "1.0.0-9")


def test_pin_file_text_and_reading_it_back(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    assert pinning.pin_path(app) == str(tmp_path / "pin")  # the contract's path, decided by the build's plan
    assert pinning.pinned_version(app) is None
    text = pinning.pin_text("hello-rp1", "1.0.0-1")
    assert text.endswith("Package: hello-rp1\nPin: version 1.0.0-1\nPin-Priority: 1001\n")
    Path(pinning.pin_path(app)).write_text(text)
    assert pinning.pinned_version(app) == "1.0.0-1"


def test_backup_of_version_is_the_newest_of_that_version(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    for stamp, version in (("20260101T000000000000Z", "1.0.0-1"), ("20260102T000000000000Z", "1.0.0-2"),
                           ("20260103T000000000000Z", "1.0.0-1"), ("20260104T000000000000Z", "1.0.0-2")):
        d = tmp_path / "backups" / f"{stamp}-{version}-upgrade"
        d.mkdir(parents=True)
        (d / "meta.json").write_text(json.dumps({"version": version, "reason": "upgrade"}))
    (tmp_path / "backups" / "20260105T000000000000Z-1.0.0-1-upgrade.partial").mkdir()
    assert rollback.backup_of_version(app, "1.0.0-1") == "20260103T000000000000Z-1.0.0-1-upgrade"
    assert rollback.backup_of_version(app, "0.9-1") is None


def test_verbs_refuse_bad_arguments_before_touching_apt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(tmp_path)
    for verb, args, message in (
        ("rollback", ["1", "2"], "usage: rollback [VERSION] [--restore-backup]"),
        ("rollback", ["--force"], "usage: rollback"),
        ("pin", ["1", "2"], "usage: pin VERSION|--previous"),
    ):
        with pytest.raises(runtime_app.LauncherError, match=message.replace("|", r"\|").replace("[", r"\[")):
            runtime_main.VERBS[verb][0](app, args)
    with pytest.raises(runtime_app.LauncherError, match="not a version"):
        pinning.choose_version(app, "-x")
    with pytest.raises(runtime_app.LauncherError, match="not available from the repository"):
        pinning.choose_version(app, "1.0.0-1")  # no such package in this machine's apt
    dev = make_app(tmp_path / "dev", dev=True)
    for verb in ("unpin", "rollback"):
        with pytest.raises(runtime_app.LauncherError, match="installed package of a node"):
            runtime_main.VERBS[verb][0](dev, [])
    assert capsys.readouterr().out == ""
