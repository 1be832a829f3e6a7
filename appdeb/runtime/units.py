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

import os
import re
import time
from collections.abc import Callable

from . import proc
from .app import AppPackage

SETTLE = 2.5  # seconds a unit must have been active to count as running (unless it proved it sooner)
POLL = 0.1
PROPS = ("ActiveState", "SubState", "Result", "ExecMainCode", "ExecMainStatus", "ActiveEnterTimestampMonotonic")
Ready = Callable[[], bool]  # asked while the unit is active and young: has it proved it started?
EXIT_MEANINGS = {"127": "command not found", "126": "command not executable", "203": "the program could not be "
                 "executed", "1": "the app exited with an error", "3": "gunicorn: the app could not be loaded"}


def props(name: str) -> dict[str, str]:
    out = proc.run(["systemctl", "show", *(f"--property={p}" for p in PROPS), name]).text
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def settled(name: str, timeout: float = 45, ready: Ready | None = None) -> dict[str, str]:
    """The unit's properties once it is neither starting nor just started (nor proved ready)."""
    deadline = time.monotonic() + timeout
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


def why_down(name: str, p: dict[str, str]) -> str:
    """One line of cause, then the last lines the unit logged (the app's own error)."""
    state = f"{p.get('ActiveState', '?')} ({p.get('SubState', '?')})"
    status, code = p.get("ExecMainStatus", ""), p.get("ExecMainCode", "")
    if p.get("Result") == "signal" or code == "2":
        cause = f"killed by signal {status}"
        if status in ("31", "SYS"):
            cause += ": a system call the unit's SystemCallFilter forbids (seccomp)"
    elif status and status != "0":
        cause = f"exit status {status} ({EXIT_MEANINGS.get(status, 'see the log')})"
    else:
        cause = f"result {p.get('Result', '?')}"
    log = proc.run(["journalctl", "-u", name, "-n", "300", "-o", "cat", "--no-pager"]).text.splitlines()
    lines = [f"{name} is not running: {state}, {cause} (journalctl -u {name})"]
    lines += [f"    | {line}" for line in app_error(log) or log[-8:]]
    return "\n".join(lines)


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


def readiness(kind: str, web_answers: Callable[[], bool] | None) -> Ready | None:
    """How a unit of this kind proves it has started before SETTLE (None: it does not)."""
    if kind == "socket":
        return lambda: True  # active: systemd listens on it
    if kind == "web":
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
    for unit in app.contract.units:
        name = unit.name
        ready = readiness(unit.kind, web_answers)
        if not unit.enabled or not name.endswith((".service", ".socket")):
            continue
        if proving is not None and proving != (ready is not None):
            continue
        p = settled(name, ready=ready)
        if p.get("ActiveState") == "active":
            continue
        # like deb-systemd-invoke: a unit the admin disabled, or policy-rc.d forbids, is not started
        if proc.systemctl("is-enabled", "--quiet", name) == 0 and not _policy_denies(name):
            problems.append(why_down(name, p))
    return problems
