"""How verify decides sooner that a unit has started: a socket by being active, the web unit by its
health answer; a process unit waits SETTLE. systemd's answers come from the fake runner (no systemd
needed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appdeb.runtime import proc, units

from .noderoot import FakeRunner, done, install_root


def _young(state: str = "active", pid: int = 0) -> proc.Done:
    """A unit that entered its state just now (systemd's monotonic clock is time.monotonic's)."""
    entered = int(time.monotonic() * 1e6)
    return done(f"ActiveState={state}\nSubState=running\nResult=success\nExecMainCode=0\nExecMainStatus=0\n"
                f"ActiveEnterTimestampMonotonic={entered}\nMainPID={pid}\n")


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
    assert units.readiness("process", None) is None  # quiet a moment after its start proves nothing: SETTLE
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



def test_a_process_unit_waits_the_whole_settle(tmp_path: Path) -> None:
    """A worker that sleeps, then gives up on its database a second later, must still be up at SETTLE."""
    install_root(tmp_path)
    started, answer = time.monotonic(), _young()  # one start: the unit ages as time goes by
    fake = FakeRunner({("systemctl", "show"): lambda argv: answer})
    with proc.use(fake):
        assert units.settled("x-worker.service", ready=units.readiness("process", None))["ActiveState"] == "active"
    assert units.SETTLE - 0.05 <= time.monotonic() - started < units.SETTLE + 1
