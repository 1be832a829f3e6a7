"""Node-side backup logic without root: pruning, labels, traversal, a dev-mode backup and restore.

The runtime runs here as the current user on a temporary tree (AppPackage with dev=True), with the
real tar: what is checked is the decision logic, the e2e suite checks it as root on nodes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from appdeb.runtime import app as runtime_app
from appdeb.runtime import backups, lifecycle, pinning
from appdeb.runtime.app import LauncherError

from .conftest import EXAMPLES
from .noderoot import install_root


def make_app(tmp_path: Path, keep: int = 3, settings: str = "") -> runtime_app.AppPackage:
    return install_root(tmp_path, package="hello-bk1", dev=True, keep=keep, settings=settings)


def fake_backup(app: runtime_app.AppPackage, day: int, version: str) -> str:
    name = f"202601{day:02d}T000000000000Z-{version}-upgrade"
    d = Path(app.paths.backups) / name
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"version": version, "reason": "upgrade"}))
    return name


def test_prune_keeps_the_newest_and_the_pinned_versions_newest(tmp_path: Path) -> None:
    app = make_app(tmp_path, keep=2)
    names = [fake_backup(app, d, v) for d, v in ((1, "1.0.0-1"), (2, "1.0.0-1"), (3, "1.1.0-1"), (4, "1.2.0-1"),
                                                  (5, "1.3.0-1"))]
    Path(app.paths.pin).write_text(pinning.pin_text("hello-bk1", "1.0.0-1"))
    removed = backups.prune_backups(app)
    assert removed == [names[0], names[2]]
    assert backups.list_backups(app) == [names[1], names[3], names[4]]  # 1.0.0-1's newest stays: it is pinned


def test_the_admins_keep_count_wins_and_zero_keeps_all(tmp_path: Path) -> None:
    app = make_app(tmp_path, keep=1, settings="APPDEB_BACKUP_KEEP=0\n")
    for day in range(1, 5):
        fake_backup(app, day, "1.0.0-1")
    assert backups.backup_keep(app) == 0 and backups.prune_backups(app) == []
    assert len(backups.list_backups(app)) == 4


def test_restore_refuses_names_outside_the_backups(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    name = fake_backup(app, 1, "1.0.0-1")
    assert backups.resolve_backup(app, name).endswith(name)
    for bad in ("../etc", f"{name}/..", "/etc", f"../backups/{name}/x", ""):
        with pytest.raises(LauncherError):
            backups.resolve_backup(app, bad)


def test_backup_then_restore_brings_the_state_back_but_not_scratch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    state = Path(app.paths.state)
    (state / "uploads").mkdir()
    (state / "uploads" / "a.txt").write_text("kept")
    (state / "tmp").mkdir()
    (state / "tmp" / "scratch").write_text("scratch")
    lifecycle.set_data_version(app, "1.5.0-1")
    path = backups.take_backup(app, "manual", lifecycle.data_version(app))
    meta = json.loads((Path(path) / "meta.json").read_text())
    assert meta["version"] == "1.5.0-1" and meta["made_by"] == "2.0.0-1"  # whose data, not which code
    (state / "uploads" / "a.txt").write_text("damaged")
    (state / "new.txt").write_text("after the backup")
    backups.restore_backup(app, path)
    assert (state / "uploads" / "a.txt").read_text() == "kept"
    assert not (state / "new.txt").exists()
    assert (state / "tmp" / "scratch").read_text() == "scratch"


def test_a_backup_that_cannot_fit_is_refused_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(tmp_path)
    (Path(app.paths.state) / "data.bin").write_bytes(b"x" * 4096)
    free = os.statvfs(app.paths.backups)
    # the disk is "full": the margin alone is more than is free, even if other processes free a GiB meanwhile
    monkeypatch.setattr(backups, "MARGIN", free.f_bavail * free.f_frsize + (1 << 30))
    with pytest.raises(LauncherError, match="not enough space for the backup before upgrade"):
        backups.take_backup(app, "upgrade")
    assert os.listdir(app.paths.backups) == []


def test_keep_count_comes_from_the_description_and_the_instance(tmp_path: Path) -> None:
    from appdeb.build.plan import make_plan
    from appdeb.build.validate import load_spec

    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    with (app / "app.yaml").open("a") as f:
        f.write("backups: {keep: 3}\ninstances:\n  prod: {backups: {keep: 0}}\n")
    spec = load_spec(app)
    plans = {i: make_plan(spec, instance=i, python_version="3.11", source_date_epoch=0) for i in ("staging", "prod")}
    assert plans["staging"].backup_keep == 3 and plans["prod"].backup_keep == 0
