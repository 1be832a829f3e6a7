"""Build the examples with the real dpkg-deb and inspect the .debs with python-debian."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from debian.debfile import DebFile

from appdeb.build.pipeline import BuildResult
from appdeb.errors import AppdebError

from ..conftest import EXAMPLES, ROOT, build_example

pytestmark = pytest.mark.integration
SCRIPTS = ("preinst", "postinst", "prerm", "postrm")


def data_tar(result: BuildResult) -> tarfile.TarFile:
    """The payload as dpkg itself unpacks it."""
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(result.deb)], check=True, capture_output=True).stdout
    return tarfile.open(fileobj=io.BytesIO(raw))


def members(result: BuildResult) -> dict[str, tarfile.TarInfo]:
    return {m.name: m for m in data_tar(result).getmembers()}


def test_control_fields(notes_staging: BuildResult, hello_deb: BuildResult) -> None:
    ctrl = DebFile(str(notes_staging.deb)).debcontrol()
    assert ctrl["Package"] == "notes-staging" and ctrl["Version"] == "2.1.0-1"
    assert ctrl["Architecture"] == notes_staging.architecture == "amd64"  # markupsafe's binary wheel
    assert "sqlite3" in ctrl["Depends"] and ctrl["Pre-Depends"] == "python3"
    assert int(ctrl["Installed-Size"]) > 500
    assert DebFile(str(hello_deb.deb)).debcontrol()["Architecture"] == "all"
    assert notes_staging.deb.name == "notes-staging_2.1.0-1_amd64.deb"


def test_maintainer_scripts_are_valid_shell(notes_staging: BuildResult, tmp_path: Path) -> None:
    control = DebFile(str(notes_staging.deb)).control
    for name in SCRIPTS:
        path = tmp_path / name
        path.write_bytes(control.get_content(name))
        subprocess.run(["sh", "-n", str(path)], check=True)
        out = subprocess.run(["shellcheck", "-s", "sh", "-S", "warning", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout
        text = path.read_text()
        assert "exit 1" in text and "unknown argument" in text, name


def test_files_modes_and_owners(notes_staging: BuildResult) -> None:
    files = members(notes_staging)
    for name in ("./opt/notes-staging/app/src/notes/web.py", "./opt/notes-staging/lib/flask/__init__.py",
                 "./opt/notes-staging/appdeb/run.py",
                 "./opt/notes-staging/appdeb/appdeb_runtime/app.py",
                 "./opt/notes-staging/appdeb/appdeb_services/postgres.py", "./lib/systemd/system/notes-staging.service",
                 "./lib/systemd/system/notes-staging-worker.service", "./lib/systemd/system/notes-staging-tidy.timer"):
        assert files[name].mode == 0o644, name
    assert files["./usr/bin/notes-staging"].mode == 0o755
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "root" for m in files.values())
    assert not [n for n in files if (n.endswith(".pyc") and "/__pycache__/" not in n) or "/lib/bin/" in n]
    assert any(n.startswith("./opt/notes-staging/lib/markupsafe/_speedups") and n.endswith(".so") for n in files)


def test_no_build_paths(notes_staging: BuildResult, dist: Path) -> None:
    tar = data_tar(notes_staging)
    needles = [str(EXAMPLES).encode(), str(dist).encode(), b"/root/.cache", b"appdeb-stage-"]
    for m in tar.getmembers():
        if m.isfile():
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            assert not any(n in data for n in needles), m.name


def test_reproducible(tmp_path: Path, notes_staging: BuildResult) -> None:
    again = build_example("flaskapp", tmp_path / "again", instance="staging")
    assert not again.reused
    assert again.deb.read_bytes() == notes_staging.deb.read_bytes()
    assert again.sha256 == notes_staging.sha256


def test_no_change_rebuild_reuses(dist: Path, notes_staging: BuildResult) -> None:
    before = notes_staging.deb.stat().st_mtime_ns
    again = build_example("flaskapp", dist, instance="staging")
    assert again.reused and again.deb == notes_staging.deb and notes_staging.deb.stat().st_mtime_ns == before


def test_two_instances_are_disjoint(notes_staging: BuildResult, notes_prod: BuildResult) -> None:
    a = {n for n, m in members(notes_staging).items() if not m.isdir()}
    b = {n for n, m in members(notes_prod).items() if not m.isdir()}
    assert a and b and not a & b
    unit = data_tar(notes_prod).extractfile("./lib/systemd/system/notes-prod.service")
    assert unit is not None
    prod_unit = unit.read().decode()
    assert "User=notes-prod" in prod_unit and "ExecStart=/usr/bin/notes-prod web" in prod_unit


def test_failed_build_leaves_no_deb(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    (app / "leak.txt").write_text(f"built in {app}\n")
    out = tmp_path / "out"
    with pytest.raises(AppdebError, match="build paths would end up in the package"):
        build_example_at(app, out)
    assert not list(out.glob("*.deb")) and not list(out.glob(".*.tmp"))


def build_example_at(app: Path, out: Path) -> BuildResult:
    from appdeb.build.pipeline import BuildOptions, build

    return build(app, BuildOptions(out_dir=out, source_date_epoch=1))


def test_unresolvable_requirement_is_a_clear_error(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    bad = '  python: ">=3.11"\n  pip: [appdeb-no-such-dist-xyz==0.0.1]'
    text = (app / "app.yaml").read_text().replace('  python: ">=3.11"', bad)
    (app / "app.yaml").write_text(text)
    with pytest.raises(AppdebError, match="could not install the Python requirements"):
        build_example_at(app, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.deb"))


def test_wheel_ships_templates(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("appdeb-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for t in ("postinst.j2", "control.j2", "web.service.j2", "_vars.sh.j2"):
        assert f"appdeb/_templates/debian/{t}" in names
    assert "appdeb/runtime/app.py" in names and "appdeb/services/postgres.py" in names


# --- through the command line: build paths, the app's own gunicorn -------------------------------


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`appdeb ARGS…` as a user runs it; never a traceback."""
    proc = subprocess.run([sys.executable, "-m", "appdeb.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "CI": "1", **env})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def hello_with(tmp_path: Path, pip: str) -> Path:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    text = (app / "app.yaml").read_text().replace('  python: ">=3.11"', f'  python: ">=3.11"\n  pip: {pip}')
    (app / "app.yaml").write_text(text)
    return app


def test_requirement_comments_may_name_build_paths(tmp_path: Path) -> None:
    """`uv pip compile -o /abs/requirements.txt` writes the app's own path into the file's comments."""
    app = hello_with(tmp_path, "requirements.txt")
    (app / "requirements.txt").write_text(
        "# This file was autogenerated by uv via the following command:\n"
        f"#    uv pip compile requirements.in -o {app}/requirements.txt\n"
        "itsdangerous==2.2.0  # via -r requirements.in\n-r extra.in\n")
    (app / "extra.in").write_text(f"# kept next to {app}/requirements.in\n")
    proc = cli("build", str(app), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    deb = BuildResult(Path(proc.stdout.strip().splitlines()[-1]), "hello", "", "", "", 0, False)
    shipped = data_tar(deb).extractfile("./opt/hello/app/requirements.txt")
    assert shipped is not None and f"-o {app}/requirements.txt" in shipped.read().decode()
    assert "./opt/hello/lib/itsdangerous/__init__.py" in members(deb)


def test_a_real_build_path_is_named_with_file_and_line(tmp_path: Path) -> None:
    """Outside the requirements files' comments a build path still stops the build, located."""
    app = hello_with(tmp_path, "requirements.txt")
    (app / "requirements.txt").write_text(f"# compiled in {app}\nitsdangerous==2.2.0\n")
    (app / "paths.py").write_text(f'"""Settings."""\nDATA = "{app}/data"\n')
    (app / "notes.txt").write_text(f"# not a requirements file: {app}\n")
    out = tmp_path / "out"
    proc = cli("build", str(app), "--out", str(out))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == "appdeb: error: build paths would end up in the package (2 lines in 2 files):"
    assert lines[1:3] == [f"  opt/hello/app/notes.txt:1: '{app}'", f"  opt/hello/app/paths.py:2: '{app}'"]
    assert not out.exists() or not list(out.glob("*.deb"))


def vendored_versions(deb: Path, project: str) -> list[str]:
    names = members(BuildResult(deb, "", "", "", "", 0, False))
    found = (re.match(rf"\./opt/[^/]+/lib/{project}-([^/]+)\.dist-info/", n) for n in names)
    return sorted({m.group(1) for m in found if m})


def test_the_apps_gunicorn_pin_is_vendored_exactly(tmp_path: Path) -> None:
    """gunicorn==25.3.0 is outside appdeb's own default range's old cap (<24) and not its newest."""
    app = hello_with(tmp_path, "[gunicorn==25.3.0]")
    proc = cli("build", str(app), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert vendored_versions(Path(proc.stdout.strip()), "gunicorn") == ["25.3.0"]


def test_without_the_apps_gunicorn_the_floor_decides(tmp_path: Path) -> None:
    from packaging.requirements import Requirement

    from appdeb.build.platforms import GUNICORN_REQUIREMENT

    proc = cli("build", str(EXAMPLES / "hello"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    [version] = vendored_versions(Path(proc.stdout.strip()), "gunicorn")
    assert Requirement(GUNICORN_REQUIREMENT).specifier.contains(version) and int(version.split(".")[0]) >= 23
