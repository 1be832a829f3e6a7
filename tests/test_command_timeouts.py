"""Lifecycle commands are bounded in time: app.yaml's `commands.NAME.timeout`, the contract, the runner.

The runner is exercised for real (processes, signals, a process group): a command that sleeps and
forks a child that sleeps too is stopped at its bound with the child, and says so. The systemd scope
the node uses is exercised by tests/e2e/test_command_timeout.py.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appdeb.build.plan import make_plan
from appdeb.build.render import runtime_config
from appdeb.build.validate import load_spec
from appdeb.runtime import proc, verify
from appdeb.runtime.contract import DEFAULT_TIMEOUTS, TIMEOUT_RANGE, Contract

from .noderoot import FakeRunner, done, install_root
from .test_validate import GOOD, problems, write


def test_a_lifecycle_command_takes_a_timeout_in_seconds(tmp_path: Path) -> None:
    text = GOOD + "commands:\n  update: {command: migrate, timeout: 7200}\n  verify: check\n"
    spec = load_spec(write(tmp_path, text))
    assert spec.command_timeouts == (("update", 7200),)
    assert dict(spec.commands) == {"update": "migrate", "verify": "check"}


def test_timeout_problems_are_located_and_reported_together(tmp_path: Path) -> None:
    text = GOOD + ("commands:\n  update: {command: m, timeout: 0}\n  verify: {command: c, timeout: '30'}\n"
                   "  test: {command: t, timeout: 5}\n  backup: {command: b, timout: 5}\n"
                   "  restore: {command: r, timeout: 86401}\n")
    found = problems(tmp_path, text)
    assert "9:33: commands.update.timeout: 0 is out of range (allowed: 1..86400)" in found
    assert "10:33: commands.verify.timeout: must be an integer between 1 and 86400" in found
    assert any(p.startswith("11:31: commands.test.timeout: only lifecycle commands have a timeout") for p in found)
    assert any(p.startswith("12:24: commands.backup.timout: unknown key; did you mean 'timeout'?") for p in found)
    assert "13:34: commands.restore.timeout: 86401 is out of range (allowed: 1..86400)" in found
    assert len(found) == 5


def test_processes_take_no_timeout(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "processes:\n  worker: {command: w, timeout: 5}\n")
    assert any(p.startswith("9:24: processes.worker.timeout: unknown key") for p in found)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-10, max_value=10**6))
def test_any_integer_is_kept_exactly_when_in_range(tmp_path_factory: pytest.TempPathFactory, seconds: int) -> None:
    root = tmp_path_factory.mktemp("t")
    text = GOOD + f"commands:\n  install: {{command: i, timeout: {seconds}}}\n"
    lo, hi = TIMEOUT_RANGE
    if lo <= seconds <= hi:
        assert load_spec(write(root, text)).command_timeouts == (("install", seconds),)
    else:
        assert problems(root, text) == [f"9:34: commands.install.timeout: {seconds} is out of range (allowed: "
                                        f"{lo}..{hi})"]


def _contract(tmp_path: Path, commands: str) -> Contract:
    spec = load_spec(write(tmp_path, GOOD + commands))
    return runtime_config(make_plan(spec, instance=None, python_version="3.11", source_date_epoch=0))


def test_the_contract_carries_overrides_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    contract = _contract(tmp_path, "commands:\n  update: {command: m, timeout: 90}\n  verify: v\n  test: t\n")
    back = Contract.from_json(contract.to_json())
    assert back.command_timeouts == {"update": 90}
    assert (back.command_timeout("update"), back.command_timeout("verify")) == (90, DEFAULT_TIMEOUTS["verify"])
    assert back.command_timeout("test") is None  # a person's command (`PKG run test`): no bound
    assert DEFAULT_TIMEOUTS["update"] > DEFAULT_TIMEOUTS["verify"]  # a migration may take longer than a check


def test_app_json_without_timeouts_reads_with_the_defaults(tmp_path: Path) -> None:
    data = json.loads(_contract(tmp_path, "commands:\n  update: m\n").to_json())
    assert "command_timeouts" not in data  # packages without overrides ship the same app.json as before
    old = Contract.from_json(json.dumps(data))
    assert old.command_timeouts == {} and old.command_timeout("update") == DEFAULT_TIMEOUTS["update"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def _all_gone(pids: list[int]) -> bool:
    """SIGKILL is delivered asynchronously: the processes are gone within moments, not at once."""
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_alive(pid) for pid in pids)


def test_a_command_past_its_bound_is_stopped_with_its_children(tmp_path: Path,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    pids = tmp_path / "pids"
    script = f"echo started; sleep 600 & echo $! > {pids}; echo $$ >> {pids}; sleep 600"
    started = time.monotonic()
    with pytest.raises(proc.TimedOut) as info:
        proc.Runner().bounded(["/bin/sh", "-c", script], cwd=str(tmp_path), env=dict(os.environ), user=None,
                              seconds=1, label="t-update")
    assert time.monotonic() - started < 1 + proc.STOP_GRACE
    assert str(info.value) == "timed out after 1s"
    assert "started" in capfd.readouterr().out
    assert _all_gone([int(pid) for pid in pids.read_text().split()])


def test_a_command_that_ends_gives_its_status_and_leaves_no_process(tmp_path: Path,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    pids = tmp_path / "pids"
    # its stray child keeps the output pipe open: the command's end is the end, not the pipe's
    script = f"sleep 600 & echo $! > {pids}; echo done; exit 3"
    started = time.monotonic()
    code = proc.Runner().bounded(["/bin/sh", "-c", script], cwd=str(tmp_path), env=dict(os.environ), user=None,
                                 seconds=60, label="t-verify")
    assert code == 3 and time.monotonic() - started < 10
    assert capfd.readouterr().out == "done\n"
    assert _all_gone([int(pids.read_text())])


def _tagged(tag: str) -> list[int]:
    """Processes whose command line carries tag."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if tag.encode() in Path(f"/proc/{entry}/cmdline").read_bytes() and _alive(int(entry)):
                found.append(int(entry))
        except OSError:
            continue  # gone meanwhile
    return found


def test_a_command_its_caller_stops_is_stopped_with_its_children(tmp_path: Path) -> None:
    """The stop event ends the command as its bound would: at once, every process of it, then Stopped."""
    pids, stop = tmp_path / "pids", threading.Event()
    script = f"sleep 600 & echo $! > {pids}; echo $$ >> {pids}; sleep 600"
    threading.Timer(1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(proc.Stopped):
        proc.Runner().bounded(["/bin/sh", "-c", script], cwd=str(tmp_path), env=dict(os.environ), user=None,
                              seconds=300, label="t-verify", stop=stop)
    assert time.monotonic() - started < 5
    assert _all_gone([int(pid) for pid in pids.read_text().split()])


@pytest.mark.skipif(os.geteuid() != 0, reason="the app's command is bounded when root runs it for the app user")
def test_verify_stops_the_apps_command_once_its_own_checks_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    """The web does not answer: verify says so, and the app's verify command (which would wait 120 s)
    is stopped with its children and its secret copy; only that it was stopped is added."""
    tag = f"120.{secrets.randbelow(10**6):06d}"
    command = f'echo "verify started with $APPDEB_SECRET_FILE"; sleep {tag} & sleep {tag}'
    app = install_root(tmp_path, commands={"verify": command})
    Path(app.paths.secret).write_text("s3cret\n")
    check_web = verify.check_web  # the real check, on a port nothing listens on, asked for 2 s instead of 20
    monkeypatch.setattr(verify, "check_web", lambda port, deadline, *a, **kw: check_web(port, time.monotonic() + 2,
                                                                                           *a, **kw))
    started = time.monotonic()
    with proc.use(FakeRunner({("systemctl", "is-active"): done()}, systemd=False)):
        problems = verify.verify_problems(app, partial(verify.app_verify, app))
    assert time.monotonic() - started < 10
    assert len(problems) == 2 and problems[0].startswith("the web process does not answer GET / on 127.0.0.1:")
    assert problems[1] == "the app's verify command was stopped: appdeb's own checks above failed"
    assert f"verify started with {app.paths.run}/secret-" in capfd.readouterr().out
    assert _all_gone(_tagged(tag)) and os.listdir(app.paths.run) == []


@pytest.mark.parametrize("how", ["bounded", "relay"])
def test_a_commands_terminal_controls_reach_roots_terminal_as_text(tmp_path: Path, how: str,
                                                                   capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """An app command's output (read by root during apt) cannot retitle, clear or rewrite root's terminal."""
    script = r"printf '\033]0;owned\007\033[2Jhidden\rfake OK caf\303\251\n'"
    argv, env = ["/bin/sh", "-c", script], dict(os.environ)
    if how == "bounded":
        code = proc.Runner().bounded(argv, cwd=str(tmp_path), env=env, user=None, seconds=30, label="t-install")
    else:
        code = proc.Runner().relay(argv, cwd=str(tmp_path), env=env, user=None, interactive=False)
    assert code == 0
    assert capfdbinary.readouterr().out == "\\x1b]0;owned\\x07\\x1b[2Jhidden\\x0dfake OK café\n".encode()
