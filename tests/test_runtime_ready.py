"""How verify decides sooner that a unit has started: a socket by being active, the web unit by its
health answer, a `ready: notify` process by being active (it said READY=1); another process waits
SETTLE. systemd's answers come from the fake runner (no systemd needed)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from appdeb.runtime import contract, proc, units, verify
from appdeb.runtime.app import AppPackage

from .noderoot import FakeRunner, done, install_root, journal


def _young(state: str = "active", pid: int = 0) -> proc.Done:
    """A unit that entered its state just now (systemd's monotonic clock is time.monotonic's)."""
    entered = int(time.monotonic() * 1e6)
    return done(f"ActiveState={state}\nSubState=running\nResult=success\nExecMainCode=0\nExecMainStatus=0\n"
                f"ActiveEnterTimestampMonotonic={entered}\nMainPID={pid}\n")


def _u(kind: str, notify: bool = False) -> contract.Unit:
    return contract.Unit(f"x-{kind}.service", kind, True, notify)


def test_a_ready_unit_is_settled_at_once_and_a_down_one_is_reported(tmp_path: Path) -> None:
    app = install_root(tmp_path)
    socket, web = (u.name for u in app.contract.units)
    fake = FakeRunner({("systemctl", "show"): lambda argv: _young()})
    asked: list[str] = []
    with proc.use(fake):
        assert units.settled(socket, ready=units.readiness(_u("socket"), None))["ActiveState"] == "active"
        ready = units.readiness(_u("web"), lambda: asked.append("GET") is None)
        assert units.settled(web, ready=ready)["ActiveState"] == "active"
    assert len(fake.ran("systemctl", "show")) == 2 and asked == ["GET"]  # one look each, one health request
    assert units.readiness(_u("timer-service"), None) is None
    assert units.readiness(_u("process"), None) is None  # quiet a moment after its start proves nothing: SETTLE
    assert units.readiness(_u("web"), None) is None  # no health path to ask: SETTLE decides


def test_a_notify_process_is_settled_once_active_and_one_that_never_said_so_is_reported(tmp_path: Path) -> None:
    """Type=notify keeps the unit "activating" until READY=1, so active is the process's own word. One
    whose start timed out, starting again, is reported with the result systemd logged for that start
    (not one from before it last started fine) and the app's own lines, not systemd's."""
    install_root(tmp_path)
    again = ("ActiveState=activating\nSubState=auto-restart\nResult=success\nExecMainCode=0\nExecMainStatus=0\n"
             "ActiveEnterTimestampMonotonic=0\n")
    answers = [_young(), done(again)]
    logs = [journal("x-w.service", "connecting to the queue\n", "timeout"),
            journal("x-w.service", "connecting to the queue\n", "timeout", started=True)]
    fake = FakeRunner({("systemctl", "show"): lambda argv: answers[0], ("journalctl", "-u"): lambda argv: logs[0]})
    started = time.monotonic()
    with proc.use(fake):
        ready = units.readiness(_u("process", notify=True), None)
        assert ready is not None and units.settled("x-w.service", ready=ready)["ActiveState"] == "active"
        assert time.monotonic() - started < units.SETTLE / 2  # not the whole SETTLE
        answers.pop(0)
        p = units.settled("x-w.service", time.monotonic() + 0.3, ready)
        why = units.why_down("x-w.service", p, notify=True)
        logs.pop(0)
        older = units.why_down("x-w.service", p, notify=True)
    assert why.startswith("x-w.service is not running: activating (auto-restart), it did not report ready "
                          f"(sd_notify READY=1) within {contract.NOTIFY_TIMEOUT} s")
    assert why.split("\n")[1:] == ["    | connecting to the queue"]
    assert older.startswith("x-w.service is not running: activating (auto-restart), result success")
    fields = "--output-fields=MESSAGE,_PID,_SYSTEMD_UNIT,UNIT,UNIT_RESULT,JOB_TYPE,JOB_RESULT"
    assert fields in fake.ran("journalctl")[0]  # the fields read only (and a bounded read)


def test_a_failing_web_unit_is_not_taken_for_ready(tmp_path: Path) -> None:
    """A web unit in its restart loop is never asked for its health answer; its failure is what counts."""
    app = install_root(tmp_path)
    web = app.contract.units[1].name
    states = iter(["activating", "activating", "failed"])
    fake = FakeRunner({("systemctl", "show"): lambda argv: _young(next(states))})
    asked: list[str] = []
    with proc.use(fake), pytest.MonkeyPatch.context() as mp:
        mp.setattr(units, "POLL", 0.0)
        p = units.settled(web, ready=units.readiness(_u("web"), lambda: asked.append("GET") is None))
    assert p["ActiveState"] == "failed" and asked == []



def test_a_process_unit_waits_the_whole_settle(tmp_path: Path) -> None:
    """A worker that sleeps, then gives up on its database a second later, must still be up at SETTLE."""
    install_root(tmp_path)
    started, answer = time.monotonic(), _young()  # one start: the unit ages as time goes by
    fake = FakeRunner({("systemctl", "show"): lambda argv: answer})
    with proc.use(fake):
        assert units.settled("x-worker.service", ready=units.readiness(_u("process"), None))["ActiveState"] == "active"
    assert units.SETTLE - 0.05 <= time.monotonic() - started < units.SETTLE + 1
    assert len(fake.ran("systemctl", "show")) <= 3  # asked when SETTLE is due, not every POLL


def test_a_process_unit_that_restarted_meanwhile_ages_from_its_new_start(tmp_path: Path) -> None:
    """Asked when SETTLE is due, a unit whose start moved (it failed and came back) waits again."""
    install_root(tmp_path)
    started, answers = time.monotonic(), [_young()]

    def show(argv: list[str]) -> proc.Done:
        if len(answers) == 1 and time.monotonic() - started > units.SETTLE / 2:
            answers.append(_young())  # restarted half-way: its start is now
        return answers[-1]
    fake = FakeRunner({("systemctl", "show"): show})
    with proc.use(fake):
        assert units.settled("x-worker.service", ready=None)["ActiveState"] == "active"
    assert len(answers) == 2 and time.monotonic() - started >= units.SETTLE / 2 + units.SETTLE - 0.05


def _with_worker(tmp_path: Path) -> tuple[AppPackage, str]:
    """examples/hello's instance with a worker (a process unit) besides its socket and web units."""
    described = install_root(tmp_path / "d").contract
    worker = contract.Unit("hello-nr1-worker.service", "process", True)
    return install_root(tmp_path, units=(*described.units, worker), web=None), worker.name


def test_the_apps_verify_runs_while_a_worker_ages_and_the_worker_is_judged_after(tmp_path: Path) -> None:
    """verify's second round: the app's command overlaps the worker's SETTLE, which still counts in full."""
    app, worker = _with_worker(tmp_path)
    started, answer = time.monotonic(), _young()
    fake = FakeRunner({("systemctl", "show"): lambda argv: answer})
    ran: list[tuple[str, float]] = []

    def meanwhile(stop: threading.Event) -> list[str]:
        ran.append(("app verify", time.monotonic() - started))
        return []
    with proc.use(fake):
        assert verify.verify_problems(app, meanwhile) == []
    assert ran and ran[0][1] < units.SETTLE / 2  # not after the worker's SETTLE: during it
    assert time.monotonic() - started >= units.SETTLE - 0.05  # and the worker still waited the whole SETTLE
    assert [argv[-1] for argv in fake.ran("systemctl", "show")][-1] == worker


def test_a_worker_that_dies_during_the_apps_verify_fails_verify(tmp_path: Path) -> None:
    """The app's command passing while the worker is young proves nothing of the worker: it is judged after."""
    app, worker = _with_worker(tmp_path)
    states = {"now": _young()}
    fake = FakeRunner({
        ("systemctl", "show"): lambda argv: states["now"] if argv[-1] == worker else _young(),
        ("systemctl", "is-enabled"): done(),
        ("/usr/sbin/policy-rc.d",): done(),
        ("journalctl", "-u", worker): journal(worker, "worker: cannot reach the database\n", "exit-code"),
    })

    def meanwhile(stop: threading.Event) -> list[str]:  # the worker gives up while the app's verify runs
        states["now"] = done("ActiveState=failed\nSubState=failed\nResult=exit-code\nExecMainCode=1\n"
                             "ExecMainStatus=1\nActiveEnterTimestampMonotonic=0\n")
        return []
    with proc.use(fake):
        problems = verify.verify_problems(app, meanwhile)
    assert len(problems) == 1 and problems[0].startswith(f"{worker} is not running: failed (failed), exit status 1")
    assert "cannot reach the database" in problems[0]


def test_the_journal_is_read_as_data_and_an_app_cannot_speak_for_systemd(tmp_path: Path) -> None:
    """Lines that are not JSON objects are skipped, bytes that are not UTF-8 and control characters (a
    terminal's escape sequences) are shown escaped, and an entry the app wrote with systemd's field
    names (UNIT=, UNIT_RESULT=) is the app's, not systemd's."""
    install_root(tmp_path)
    forged = {"MESSAGE": "all is well", "_SYSTEMD_UNIT": "x-w.service", "_PID": "41", "UNIT": "x-w.service",
              "UNIT_RESULT": "success"}
    raw = {"MESSAGE": [0x6f, 0x6b, 0xff, 0x1b, 0x5b, 0x32, 0x4b], "_SYSTEMD_UNIT": "x-w.service", "_PID": "41"}
    text = "not json\n[1, 2]\n" + json.dumps(forged) + "\n" + json.dumps(raw) + "\n"
    text += json.dumps({"MESSAGE": "\x1b]52;c;b3duZWQ=\x07", "_SYSTEMD_UNIT": "x-w.service", "_PID": "41"}) + "\n"
    text += journal("x-w.service", "", "timeout").text
    fake = FakeRunner({("journalctl", "-u"): done(text)})
    with proc.use(fake):
        own, every, result = units.journal("x-w.service")
    assert own == ["all is well", "ok\\xff\\x1b[2K", "\\x1b]52;c;b3duZWQ=\\x07"] and result == "timeout"
    assert every == [*own, "x-w.service: Failed with result 'timeout'."]


def test_a_bounded_read_stops_a_program_that_says_too_much() -> None:
    """proc.run(limit=N): N bytes, then the program is stopped (a journal an app inflated)."""
    done_ = proc.Runner().run(["sh", "-c", "yes journal; sleep 30"], limit=1000)
    assert done_.out == b"journal\n" * 125 and done_.code != 0
