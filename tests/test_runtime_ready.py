"""How verify decides sooner that a unit has started: a socket by being active, the web unit by its
health answer, a process unit by its main process having gone quiet. Real processes are judged
from /proc; systemd's answers come from the fake runner (no systemd needed)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.runtime import proc, units

from .noderoot import FakeRunner, done, install_root


def _young(state: str = "active", pid: int = 0) -> proc.Done:
    """A unit that entered its state just now (systemd's monotonic clock is time.monotonic's)."""
    entered = int(time.monotonic() * 1e6)
    return done(f"ActiveState={state}\nSubState=running\nResult=success\nExecMainCode=0\nExecMainStatus=0\n"
                f"ActiveEnterTimestampMonotonic={entered}\nMainPID={pid}\n")


@pytest.fixture
def spinner() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield child
    child.kill()
    child.wait()


def _judge(pid: int, up: float, times: int = 4) -> bool:
    """Ask a fresh Quiet about one process as settled() would: every POLL, the unit up `up` seconds."""
    quiet, answer = units.Quiet(), False
    for _ in range(times):
        answer = quiet({"MainPID": str(pid)}, up)
        time.sleep(units.QUIET_WINDOW / 2)
    return answer


def test_a_process_still_using_the_cpu_has_not_started(spinner: subprocess.Popen[bytes]) -> None:
    time.sleep(0.3)
    assert not _judge(spinner.pid, up=units.QUIET_AFTER + 1)


def test_a_process_that_ran_then_waits_has_started(tmp_path: Path) -> None:
    """Like a worker: imports (CPU), then waits for work."""
    script = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.2: pass\ntime.sleep(30)\n"
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        time.sleep(0.5)
        assert units.cpu_ticks(str(child.pid))  # asleep, with the CPU time of its start
        assert _judge(child.pid, up=units.QUIET_AFTER)
        assert not _judge(child.pid, up=units.QUIET_AFTER / 2)  # too young, whatever it does
    finally:
        child.kill()
        child.wait()


def test_no_process_proves_nothing() -> None:
    assert units.cpu_ticks("0") is None and units.cpu_ticks("") is None
    assert units.cpu_ticks("999999999") is None  # gone
    assert units.cpu_ticks(str(__import__("os").getpid())) is None  # running (reading its own stat)
    assert not units.Quiet()({}, units.SETTLE)


def test_a_ready_unit_is_settled_at_once_and_a_down_one_is_reported(tmp_path: Path) -> None:
    app = install_root(tmp_path)
    socket, web = (u.name for u in app.contract.units)
    fake = FakeRunner({("systemctl", "show"): lambda argv: _young()})
    asked: list[str] = []
    with proc.use(fake):
        assert units.settled(socket, ready=units.readiness("socket", None))["ActiveState"] == "active"
        ready = units.readiness("web", lambda: asked.append("GET") is None)
        assert units.settled(web, ready=ready)["ActiveState"] == "active"
    assert len(fake.ran("systemctl", "show")) == 2 and asked == ["GET"]  # one look each, one health request
    assert units.readiness("timer-service", None) is None
    assert units.readiness("web", None) is None  # no health path to ask: SETTLE decides


def test_a_failing_web_unit_is_not_taken_for_ready(tmp_path: Path) -> None:
    """A web unit in its restart loop is never asked for its health answer; its failure is what counts."""
    app = install_root(tmp_path)
    web = app.contract.units[1].name
    states = iter(["activating", "activating", "failed"])
    fake = FakeRunner({("systemctl", "show"): lambda argv: _young(next(states))})
    asked: list[str] = []
    with proc.use(fake), pytest.MonkeyPatch.context() as mp:
        mp.setattr(units, "POLL", 0.0)
        p = units.settled(web, ready=units.readiness("web", lambda: asked.append("GET") is None))
    assert p["ActiveState"] == "failed" and asked == []


def test_a_sleeping_master_whose_child_still_works_has_not_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   spinner: subprocess.Popen[bytes]) -> None:
    """A prefork master waits while its worker still imports: the unit's cgroup, not MainPID, is judged."""
    master = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        group = tmp_path / "system.slice" / "app-worker.service"
        group.mkdir(parents=True)
        (group / "cgroup.procs").write_text(f"{master.pid}\n{spinner.pid}\n")
        monkeypatch.setattr(units, "CGROUP_ROOT", str(tmp_path))
        time.sleep(0.5)
        p = {"MainPID": str(master.pid), "ControlGroup": "/system.slice/app-worker.service"}
        quiet, answers = units.Quiet(), []
        for _ in range(4):
            answers.append(quiet(p, units.QUIET_AFTER + 1))
            time.sleep(units.QUIET_WINDOW / 2)
        assert not any(answers)  # the master alone would have been judged quiet
        assert _judge(master.pid, up=units.QUIET_AFTER + 1)
        (group / "cgroup.procs").write_text(f"{master.pid}\n")  # the worker is done with its start
        assert units.unit_cpu_ticks(p) is not None
    finally:
        master.kill()
        master.wait()
