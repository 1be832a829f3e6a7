"""commands.build through the real CLI: run in a copy, its output ships, the checkout stays as it was."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .conftest import EXAMPLES

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "appdeb.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "CI": "1"})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def payload(deb: Path) -> dict[str, bytes]:
    """Every regular file of the package, by path, as dpkg unpacks it."""
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """(mode, mtime_ns, bytes) of every entry under root: any change to the checkout shows."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            out[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, data)
    return out


def clean_polls(dest: Path) -> Path:
    """examples/polls as a fresh clone has it: no collectstatic output, no development state."""
    shutil.copytree(EXAMPLES / "polls", dest, ignore=shutil.ignore_patterns("staticfiles", ".appdeb",
                                                                            "settings.local.env", "__pycache__"))
    return dest


def with_build(tmp_path: Path, command: str, static: str | None = None) -> Path:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    extra = f"static: {static}\n" if static else ""
    text = (app / "app.yaml").read_text().replace("commands:\n", f"{extra}commands:\n  build: '{command}'\n")
    (app / "app.yaml").write_text(text)
    return app


def test_polls_builds_from_a_clean_checkout(tmp_path: Path) -> None:
    app = clean_polls(tmp_path / "polls")
    assert cli("check", str(app)).returncode == 0  # a missing static dir is the build step's to make
    before = snapshot(app)
    proc = cli("build", str(app), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    deb = Path(proc.stdout.strip())
    files = payload(deb)
    source = (app / "polls" / "static" / "polls" / "style.css").read_bytes()
    assert files["./opt/polls/app/staticfiles/polls/style.css"] == source
    # byte code only as the build compiles it (hash-checked), never the build step's own (timestamped)
    assert all(int.from_bytes(files[n][4:8], "little") == 0b11 for n in files if "/app/" in n and n.endswith(".pyc"))
    assert snapshot(app) == before, "the build changed the checkout"
    again = cli("build", str(app), "--out", str(tmp_path / "out"), "--json")
    assert again.returncode == 0 and '"reused": true' in again.stdout  # derived output: the inputs decide


def test_collected_static_files_come_from_the_vendored_django(tmp_path: Path) -> None:
    """With Django's admin enabled (the example leaves it out: 1.8 MB), collectstatic ships its files too."""
    app = clean_polls(tmp_path / "polls")
    settings = app / "pollsite" / "settings.py"
    admin = '["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes", '
    settings.write_text(settings.read_text().replace('INSTALLED_APPS = [', f"INSTALLED_APPS = {admin}", 1))
    proc = cli("build", str(app), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    files = payload(Path(proc.stdout.strip()))
    vendored = "./opt/polls/lib/django/contrib/admin/static/admin/css/base.css"
    assert files["./opt/polls/app/staticfiles/admin/css/base.css"] == files[vendored]
    assert "./opt/polls/app/staticfiles/polls/style.css" in files
    assert not (app / "staticfiles").exists()


def test_a_failing_build_command_shows_its_output_and_leaves_no_deb(tmp_path: Path) -> None:
    app = with_build(tmp_path, 'for i in $(seq 50); do echo "line $i"; done; echo "no compiler" >&2; exit 3')
    out = tmp_path / "out"
    proc = cli("build", str(app), "--out", str(out))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("appdeb: error: commands.build failed (exit 3): for i in")
    assert lines[-1] == "no compiler" and "line 50" in lines and "line 1" not in lines  # the last lines
    assert not out.exists() or not list(out.glob("*.deb"))


def test_the_build_step_runs_in_the_apps_environment_with_build_time_values(tmp_path: Path) -> None:
    script = ('python3 -c "import gunicorn, hello, os; print(os.environ[\\"SOURCE_DATE_EPOCH\\"], '
              'os.environ[\\"PYTHONHASHSEED\\"], os.environ[\\"APPDEB_PACKAGE\\"], os.environ[\\"GREETING\\"])" '
              '> built.txt; touch built-at-$APPDEB_INSTANCE.txt')
    app = with_build(tmp_path, script.replace("'", "''"))
    proc = cli("build", str(app), "--instance", "ci", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    files = payload(Path(proc.stdout.strip()))
    assert files["./opt/hello-ci/app/built.txt"] == b"1700000000 0 hello-ci Hello\n"
    assert "./opt/hello-ci/app/built-at-ci.txt" in files
    assert not (app / "built.txt").exists()


def test_excluded_sources_reach_the_build_step_but_do_not_ship(tmp_path: Path) -> None:
    app = with_build(tmp_path, "mkdir -p static && cp assets/site.css static/site.css", static="static")
    (app / "assets").mkdir()
    (app / "assets" / "site.css").write_text("body { color: teal }\n")
    (app / "app.yaml").write_text((app / "app.yaml").read_text() + "exclude: [assets]\n")
    proc = cli("build", str(app), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    files = payload(Path(proc.stdout.strip()))
    assert files["./opt/hello/app/static/site.css"] == b"body { color: teal }\n"
    assert not [n for n in files if "/assets/" in n]


def test_a_static_dir_the_build_step_did_not_make_is_an_error(tmp_path: Path) -> None:
    app = with_build(tmp_path, "echo nothing made", static="staticfiles")
    assert cli("check", str(app)).returncode == 0
    out = tmp_path / "out"
    proc = cli("build", str(app), "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("appdeb: error: static.dir: after commands.build, 'staticfiles' is not a "
                                   "directory in the app (the build command must create it)")
    assert not out.exists() or not list(out.glob("*.deb"))
