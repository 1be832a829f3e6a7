"""The command line as a user meets it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import EXAMPLES


def appdeb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appdeb.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})


def test_check_ok() -> None:
    r = appdeb("check", str(EXAMPLES / "flaskapp"))
    assert r.returncode == 0 and "ok (notes 2.1.0" in r.stdout


def test_check_bad_reports_all_with_positions(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("name: x\nversion: 1.10\nplatfrom: [python]\n")
    r = appdeb("check", str(tmp_path))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert f"{tmp_path}/app.yaml:2:10: version: 1.10 is read by YAML as the number 1.1; quote it: \"1.10\"" in lines
    assert any(line.endswith("platfrom: unknown key; did you mean 'platform'?") for line in lines)
    assert lines[-1].startswith("appdeb: ") and "problem(s)" in lines[-1]


def test_usage_error_exits_2() -> None:
    assert appdeb("build", "--build-number", "minus").returncode == 2
    assert appdeb("no-such-command").returncode == 2


def test_build_json_and_missing_dir(tmp_path: Path) -> None:
    r = appdeb("build", str(EXAMPLES / "hello"), "--instance", "cli", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["package"] == "hello-cli" and data["version"] == "1.0.0-1" and data["architecture"] == "all"
    assert Path(data["deb"]).is_file() and len(data["sha256"]) == 64
    r = appdeb("build", str(tmp_path / "nope"))
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_init_creates_a_buildable_app(tmp_path: Path) -> None:
    r = appdeb("init", str(tmp_path / "shop"))
    assert r.returncode == 0
    shop = tmp_path / "shop"
    created = sorted(p for p in shop.iterdir())
    assert created == [shop / "app.yaml", shop / "requirements.txt", shop / "shop_app.py"]
    assert r.stdout == "".join(f"created {p}\n" for p in (shop / "app.yaml", shop / "shop_app.py",
                                                            shop / "requirements.txt"))
    assert appdeb("check", str(tmp_path / "shop")).returncode == 0
    again = appdeb("init", str(tmp_path / "shop"))
    assert again.returncode == 1 and "already exists" in again.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_and_run_from_checkout(tmp_path: Path) -> None:
    app = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", app)
    (app / "settings.local.env").write_text("GREETING=Howdy\n")
    run = appdeb("run", "--app-dir", str(app), "greet")
    assert run.returncode == 0 and run.stdout.strip() == "Howdy"
    env_out = appdeb("run", "--app-dir", str(app), "sh", "-c", "echo $APPDEB_INSTANCE:$TMPDIR")
    assert env_out.stdout.strip() == f"dev:{app}/.appdeb/dev/var/tmp"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "appdeb.cli", "serve", str(app), "--port", str(port),
                             "--no-reload"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = ""
        for _ in range(100):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert body == "Howdy from hello (dev, 1.0.0-1)\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # what serve and run generated stays in .appdeb/, which ignores itself; no byte code in the checkout
    assert (app / ".appdeb" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert sorted(p.name for p in app.iterdir()) == sorted([*(p.name for p in (EXAMPLES / "hello").iterdir()),
                                                            ".appdeb", "settings.local.env"])
    assert not [p for p in app.rglob("__pycache__") if ".appdeb" not in p.relative_to(app).parts]
    assert list((app / ".appdeb" / "dev" / "pycache").rglob("*.pyc"))


@pytest.mark.parametrize(("bad", "code", "message"), [("--compression=lzma", 2, "Invalid value"),
                                                     ("--instance=Bad_Name", 1, "instance name 'Bad_Name'")])
def test_bad_options(tmp_path: Path, bad: str, code: int, message: str) -> None:
    r = appdeb("build", str(EXAMPLES / "hello"), "--out", str(tmp_path), bad)
    assert r.returncode == code and message in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.deb"))


def test_run_never_writes_or_deletes_through_links_a_checkout_carries(tmp_path: Path) -> None:
    """A hostile checkout commits `.appdeb -> ../elsewhere` (or links inside .appdeb): appdeb's own generated
    files are written and emptied there before any of the app's code runs, so such a link would have let it
    delete and write outside the checkout (with sudo, anywhere)."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "dev" / "bin").mkdir(parents=True)
    (elsewhere / "dev" / "bin" / "important").write_text("keep me\n")
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app, ignore=shutil.ignore_patterns(".appdeb"))
    (app / ".appdeb").symlink_to("../elsewhere")
    refused = appdeb("run", "--app-dir", str(app), "true")
    assert refused.returncode == 1 and "is not a directory of yours" in refused.stderr, refused.stderr
    assert (elsewhere / "dev" / "bin" / "important").read_text() == "keep me\n"
    assert sorted(p.name for p in elsewhere.rglob("*")) == ["bin", "dev", "important"]

    # links inside a real .appdeb: the generated directories are made anew, their targets untouched
    (app / ".appdeb").unlink()
    (app / ".appdeb" / "dev").mkdir(parents=True)
    (app / ".appdeb" / "dev" / "bin").symlink_to(elsewhere / "dev" / "bin")
    (app / ".appdeb" / "dev" / "appdeb").symlink_to(elsewhere / "dev")
    (app / ".appdeb" / ".gitignore").symlink_to(elsewhere / "gitignore")  # dangling: never created through
    ran = appdeb("run", "--app-dir", str(app), "true")
    assert ran.returncode == 0, ran.stderr
    assert not (app / ".appdeb" / "dev" / "bin").is_symlink() and (app / ".appdeb" / "dev" / "appdeb").is_dir()
    assert sorted(p.name for p in elsewhere.rglob("*")) == ["bin", "dev", "important"]
    (app / ".appdeb" / "dev" / "var" / "secret").unlink()
    (app / ".appdeb" / "dev" / "var" / "secret").symlink_to(elsewhere / "secret")
    refused = appdeb("run", "--app-dir", str(app), "true")
    assert refused.returncode == 1 and "secret is a symbolic link" in refused.stderr, refused.stderr
    assert not (elsewhere / "secret").exists()
    (app / ".appdeb" / "dev" / "var" / "secret").unlink()
    shutil.rmtree(app / ".appdeb" / "dev" / "pycache")
    (app / ".appdeb" / "dev" / "pycache").symlink_to(elsewhere)  # the byte code of the app's imports goes there
    refused = appdeb("run", "--app-dir", str(app), "python3", "-c", "import hello")
    assert refused.returncode == 1 and "pycache is not a directory of yours" in refused.stderr, refused.stderr
    assert sorted(p.name for p in elsewhere.rglob("*")) == ["bin", "dev", "important"]
