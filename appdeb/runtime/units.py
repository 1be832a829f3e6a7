"""The package's systemd units as verify sees them: settled, and when down, why, in the app's own words.

A unit that fails a moment after it started (a worker whose command is not found, an app that
cannot import) looks "active" right after `systemctl restart`; verify waits until each unit has
been up for a little while, and reports a down unit with its exit status and its journal's tail.
A unit may prove sooner that it has started: a socket by listening, the web unit by answering its
health path (a worker loaded the app). A process unit has no such proof: being quiet a moment after
its start says nothing of a worker that gives up on its database a second later, so it waits the
whole SETTLE (the web already serves meanwhile: verify delays dpkg's return, not the first answer).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable

from . import proc, terminal
from .app import AppPackage
from .contract import NOTIFY_TIMEOUT, Unit

SETTLE = 2.5  # seconds a unit must have been active to count as running (unless it proved it sooner)
POLL = 0.1
PROPS = ("ActiveState", "SubState", "Result", "ExecMainCode", "ExecMainStatus", "ActiveEnterTimestampMonotonic")
WAIT = 45.0  # seconds verify waits, in all, for the units of one round to settle
JOURNAL_LIMIT = 4 << 20  # bytes of a unit's journal verify reads: the app can make its entries huge
Ready = Callable[[], bool]  # asked while the unit is active and young: has it proved it started?
EXIT_MEANINGS = {"127": "command not found", "126": "command not executable", "203": "the program could not be "
                 "executed", "1": "the app exited with an error", "3": "gunicorn: the app could not be loaded"}


def props(name: str) -> dict[str, str]:
    out = proc.run(["systemctl", "show", *(f"--property={p}" for p in PROPS), name]).text
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def settled(name: str, deadline: float | None = None, ready: Ready | None = None) -> dict[str, str]:
    """The unit's properties once it is neither starting nor just started (nor proved ready), or
    at the deadline (monotonic; default WAIT from now)."""
    deadline = time.monotonic() + WAIT if deadline is None else deadline
    while True:
        p = props(name)
        up = time.monotonic() - int(p.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
        active = p.get("ActiveState") == "active"
        if active and (up >= SETTLE or (ready is not None and ready())):
            return p
        if not active and p.get("ActiveState") not in ("activating", "deactivating"):
            return p
        if time.monotonic() > deadline:
            return p
        # an active unit without a proof can only age: asked again when SETTLE is due (a restart in
        # between moves its start, so it is not taken for settled), not every POLL (a systemctl each)
        due = SETTLE - up if active and ready is None else POLL
        time.sleep(min(max(due, POLL), max(deadline - time.monotonic(), 0.0) + POLL))


def _policy_denies(unit: str) -> bool:
    """policy-rc.d may forbid starting services (chroots, image builds); verify must respect that."""
    policy = "/usr/sbin/policy-rc.d"
    return os.access(policy, os.X_OK) and proc.call([policy, unit, "start"]) == 101


def journal(name: str) -> tuple[list[str], list[str], str]:
    """The unit's last 300 journal entries: the app's own lines, every line (systemd's about the unit
    too), both as a terminal shows them literally, and the result systemd logged for the unit's last
    failure, unless it started fine after it (UNIT_RESULT: kept while systemd starts it again). Only
    the fields read are asked for, and at most JOURNAL_LIMIT bytes of them."""
    out = proc.run(["journalctl", "-u", name, "-n", "300", "-o", "json", "--no-pager",
                    "--output-fields=MESSAGE,_PID,_SYSTEMD_UNIT,UNIT,UNIT_RESULT,JOB_TYPE,JOB_RESULT"],
                   limit=JOURNAL_LIMIT).text
    own: list[str] = []
    every: list[str] = []
    result = ""
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        lines = _message(entry.get("MESSAGE")).splitlines()
        every += lines
        # _PID is journald's own (trusted) field; UNIT=, UNIT_RESULT=, JOB_… an app could write itself
        if entry.get("_PID") == "1":
            if entry.get("UNIT") == name and isinstance(entry.get("UNIT_RESULT"), str):
                result = terminal.printable(entry["UNIT_RESULT"].encode())
            elif entry.get("UNIT") == name and (entry.get("JOB_TYPE"), entry.get("JOB_RESULT")) == ("start", "done"):
                result = ""  # it started fine since: what failed before is not why it is down now
        elif entry.get("_SYSTEMD_UNIT") == name:
            own += lines
    return own, every, result


def _message(message: object) -> str:
    """journalctl's MESSAGE as text a terminal shows literally (an array: bytes that are not printable UTF-8)."""
    if isinstance(message, list):
        return terminal.printable(bytes(b for b in message if isinstance(b, int) and 0 <= b < 256))
    return terminal.printable(message.encode()) if isinstance(message, str) else ""


def why_down(name: str, p: dict[str, str], notify: bool = False) -> str:
    """One line of cause, then the last lines the app logged (its own error), else systemd's."""
    own, every, logged = journal(name)
    if p.get("ActiveState") != "failed" and logged:  # starting again: what ended its last try
        p = {**p, "Result": logged}
    state = f"{p.get('ActiveState', '?')} ({p.get('SubState', '?')})"
    lines = [f"{name} is not running: {state}, {_cause(p, notify)} (journalctl -u {name})"]
    lines += [f"    | {line}" for line in app_error(own) or _runs(own)[-8:] or _runs(every)[-8:]]
    return "\n".join(lines)


def _runs(log: list[str]) -> list[str]:
    """Repeated lines once each, counted (a unit restarted five times says the same thing five times)."""
    out: list[tuple[str, int]] = []
    for line in log:
        if out and out[-1][0] == line:
            out[-1] = (line, out[-1][1] + 1)
        else:
            out.append((line, 1))
    return [line if n == 1 else f"{line} ({n} times)" for line, n in out]


def _cause(p: dict[str, str], notify: bool) -> str:
    status, code = p.get("ExecMainStatus", ""), p.get("ExecMainCode", "")
    if p.get("Result") == "timeout":
        if notify:
            return f"it did not report ready (sd_notify READY=1) within {NOTIFY_TIMEOUT} s (ready: notify)"
        return "its start or stop timed out"
    if notify and p.get("ActiveState") == "activating" and p.get("SubState") == "start":
        return f"it has not reported ready (sd_notify READY=1) in {WAIT:.0f} s"
    if p.get("Result") == "signal" or code == "2":
        cause = f"killed by signal {status}"
        if status in ("31", "SYS"):
            cause += ": a system call the unit's SystemCallFilter forbids (seccomp)"
        return cause
    if status and status != "0":
        return f"exit status {status} ({EXIT_MEANINGS.get(status, 'see the log')})"
    return f"result {p.get('Result', '?')}"


EXCEPTION_RE = re.compile(r"[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?::.*)?")


def app_error(log: list[str]) -> list[str]:
    """The last Python exception in a unit's log and the frame just before it (workers log at once,
    so tracebacks interleave: the exception line itself is what is searched for)."""
    if not any(line.startswith("Traceback (most recent call last)") for line in log):
        return []
    at = next((i for i in range(len(log) - 1, -1, -1) if EXCEPTION_RE.fullmatch(log[i])), None)
    if at is None:
        return []
    frame = next((log[i].strip() for i in range(at - 1, -1, -1) if log[i].lstrip().startswith("File ")), None)
    return [*([frame] if frame else []), log[at]]


def readiness(unit: Unit, web_answers: Callable[[], bool] | None) -> Ready | None:
    """How a unit of this kind proves it has started before SETTLE (None: it does not)."""
    if unit.kind == "socket":
        return lambda: True  # active: systemd listens on it
    if unit.notify:
        return lambda: True  # active: the process itself sent READY=1 (Type=notify stays "activating" until then)
    if unit.kind == "web":
        return web_answers
    return None


def unit_problems(app: AppPackage, web_answers: Callable[[], bool] | None = None,
                  proving: bool | None = None) -> list[str]:
    """Every enabled service and socket of the package must run (unless the admin or policy-rc.d said no).

    web_answers: whether the web process answers its health path now (the web unit's proof).
    proving: only the units that can prove their start (True), only those that wait SETTLE (False),
    or all (None). verify asks in two rounds: what runs between them overlaps the waiting units' SETTLE
    (it is counted from each unit's own start, not from when verify asks)."""
    problems = []
    deadline = time.monotonic() + WAIT
    for unit in app.contract.units:
        name = unit.name
        ready = readiness(unit, web_answers)
        if not unit.enabled or not name.endswith((".service", ".socket")):
            continue
        if proving is not None and proving != (ready is not None):
            continue
        p = settled(name, deadline, ready)
        if p.get("ActiveState") == "active":
            continue
        # like deb-systemd-invoke: a unit the admin disabled, or policy-rc.d forbids, is not started
        if proc.systemctl("is-enabled", "--quiet", name) == 0 and not _policy_denies(name):
            problems.append(why_down(name, p, unit.notify))
    return problems
