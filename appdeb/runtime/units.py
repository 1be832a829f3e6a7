"""The package's systemd units as verify sees them: settled, and when down, why, in the app's own words.

A unit that fails a moment after it started (a worker whose command is not found, an app that
cannot import) looks "active" right after `systemctl restart`; verify waits until each unit has
been up for a little while, and reports a down unit with its exit status and its journal's tail.
"""

from __future__ import annotations

import os
import re
import time

from . import proc
from .app import AppPackage

SETTLE = 2.5  # seconds a unit must have been active to count as running
PROPS = ("ActiveState", "SubState", "Result", "ExecMainCode", "ExecMainStatus", "ActiveEnterTimestampMonotonic")
EXIT_MEANINGS = {"127": "command not found", "126": "command not executable", "203": "the program could not be "
                 "executed", "1": "the app exited with an error", "3": "gunicorn: the app could not be loaded"}


def props(name: str) -> dict[str, str]:
    out = proc.run(["systemctl", "show", *(f"--property={p}" for p in PROPS), name]).text
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def settled(name: str, timeout: float = 45) -> dict[str, str]:
    """The unit's properties once it is neither starting nor just started."""
    deadline = time.monotonic() + timeout
    while True:
        p = props(name)
        entered = int(p.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
        young = p.get("ActiveState") == "active" and time.monotonic() - entered < SETTLE
        if not (young or p.get("ActiveState") in ("activating", "deactivating")) or time.monotonic() > deadline:
            return p
        time.sleep(0.3)


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


def unit_problems(app: AppPackage) -> list[str]:
    """Every enabled service and socket of the package must run (unless the admin or policy-rc.d said no)."""
    problems = []
    for unit in app.contract.units:
        name = unit.name
        if not unit.enabled or not name.endswith((".service", ".socket")):
            continue
        p = settled(name)
        if p.get("ActiveState") == "active":
            continue
        # like deb-systemd-invoke: a unit the admin disabled, or policy-rc.d forbids, is not started
        if proc.systemctl("is-enabled", "--quiet", name) == 0 and not _policy_denies(name):
            problems.append(why_down(name, p))
    return problems
