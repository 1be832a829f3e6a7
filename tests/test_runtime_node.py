"""Node-side logic without root and without systemd: verify, status, backup and restore.

The runtime runs on an instance laid out in a temporary directory (tests/noderoot.py) from the real
contract of examples/hello; a fake runner answers for systemctl and journalctl as a node would and
records what the runtime started, so the tests can assert what it decided and in which order. The
e2e suite runs the same code as root on booted nodes.
"""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.runtime import backups, proc, status, verify
from appdeb.runtime.app import LauncherError

from .noderoot import FakeRunner, done, install_root, journal

IMPORT_FAILURE = """\
[2026-12-01 10:00:00 +0000] [41] [INFO] Booting worker with pid: 41
Traceback (most recent call last):
  File "/opt/hello-nr1/lib/gunicorn/arbiter.py", line 609, in spawn_worker
    worker.init_process()
  File "/opt/hello-nr1/app/hello.py", line 1, in <module>
    import flask
ModuleNotFoundError: No module named 'flask'
[2026-12-01 10:00:00 +0000] [41] [INFO] Worker exiting (pid: 41)
"""


def _show(state: str, status_code: str = "0", result: str = "success") -> proc.Done:
    return done(f"ActiveState={state}\nSubState={state}\nResult={result}\nExecMainCode=1\n"
                f"ExecMainStatus={status_code}\nActiveEnterTimestampMonotonic=0\n")


@pytest.fixture
def healthy_port() -> Iterator[int]:
    """A web process that answers its health path, on a free loopback port."""
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_verify_names_the_down_unit_its_exit_status_and_the_apps_own_error(tmp_path: Path) -> None:
    app = install_root(tmp_path)
    socket, web = (u.name for u in app.contract.units)
    fake = FakeRunner({
        ("systemctl", "show"): lambda argv: _show("active") if argv[-1] == socket else
        _show("failed", "3", "exit-code"),
        ("systemctl", "is-enabled"): done(),
        ("/usr/sbin/policy-rc.d",): done(),
        ("journalctl", "-u", web): journal(web, IMPORT_FAILURE, "exit-code"),
    })
    with proc.use(fake):
        problems = verify.verify_problems(app)
    assert problems == [
        f"{web} is not running: failed (failed), exit status 3 (gunicorn: the app could not be loaded) "
        f"(journalctl -u {web})\n"
        '    | File "/opt/hello-nr1/app/hello.py", line 1, in <module>\n'
        "    | ModuleNotFoundError: No module named 'flask'"]
    assert not fake.ran("systemctl", "is-active")  # with a unit down, the web answer is not asked for


def test_verify_without_systemd_checks_no_units(tmp_path: Path) -> None:
    app = install_root(tmp_path, web=None)
    fake = FakeRunner(systemd=False)
    with proc.use(fake):
        assert verify.verify_problems(app) == []
    assert fake.calls == []


def test_status_reports_version_data_web_health_units_backups_and_pin(tmp_path: Path, healthy_port: int) -> None:
    described = install_root(tmp_path).contract
    app = install_root(tmp_path / "b", web=dataclasses.replace(described.web, port=healthy_port))
    fake = FakeRunner({("systemctl", "is-active"): done("active\n")})
    with proc.use(fake):
        lines = status.status_lines(app)
    socket, web = (u.name for u in app.contract.units)
    assert lines == [
        "package: hello-nr1 2.0.0-1", "data: none (not configured yet)",
        f"web: 127.0.0.1:{healthy_port} (health /)", "health: ok",
        f"unit: {socket} active", f"unit: {web} active", "backups: 0, newest none", "pin: none",
        f"settings: {app.paths.settings}"]


def test_restore_stops_the_app_first_and_touches_nothing_when_it_cannot(tmp_path: Path) -> None:
    app = install_root(tmp_path, settings="GREETING=now\n")
    backup = tmp_path / "backups" / "20260101T000000000000Z-1.0.0-1-upgrade"
    backup.mkdir(parents=True)
    (backup / "settings.env").write_text("GREETING=then\n")
    fake = FakeRunner({("systemctl", "stop"): done(code=1)})
    with proc.use(fake), pytest.raises(LauncherError, match=r"systemctl stop .* failed"):
        backups.restore_backup(app, str(backup))
    assert Path(app.paths.settings).read_text() == "GREETING=now\n"
    assert not fake.ran("systemctl", "start")


def test_restore_puts_settings_back_between_stop_and_start(tmp_path: Path) -> None:
    app = install_root(tmp_path, settings="GREETING=now\n")
    backup = tmp_path / "backups" / "20260101T000000000000Z-1.0.0-1-upgrade"
    backup.mkdir(parents=True)
    (backup / "settings.env").write_text("GREETING=then\n")
    seen: list[str] = []

    def start(argv: tuple[str, ...]) -> proc.Done:
        seen.append(Path(app.paths.settings).read_text())
        return done()

    enabled = [u.name for u in app.contract.units if u.enabled]
    fake = FakeRunner({("systemctl", "stop"): done(), ("systemctl", "reset-failed"): done(),
                       ("systemctl", "start"): start})
    with proc.use(fake):
        backups.restore_backup(app, str(backup))
    # units that failed until now (and may have hit their start limit) start afresh after a restore
    assert fake.ran("systemctl") == [("systemctl", "stop", *enabled), ("systemctl", "reset-failed", *enabled),
                                     ("systemctl", "start", *enabled)]
    assert seen == ["GREETING=then\n"]


def test_a_backup_archives_the_state_with_tar_and_records_whose_data(tmp_path: Path) -> None:
    app = install_root(tmp_path, dev=True)
    (Path(app.paths.state) / "notes.db").write_bytes(b"rows")
    fake = FakeRunner()
    with proc.use(fake):
        path = Path(backups.take_backup(app, "manual"))
    size_then_archive = [("sh", "-c", 'du -skx "$@" 2>/dev/null; true'), ("tar", "-C", app.paths.state)]
    assert [c[:3] for c in fake.calls] == size_then_archive
    assert (path / "state.tar").stat().st_size > 0
    assert backups.backup_meta(app, path.name)["version"] == "2.0.0-1"
