"""verify: appdeb's own checks of an installed instance, then the app's verify command."""

from __future__ import annotations

import http.client
import os
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, cast

from . import proc
from .app import AppPackage
from .units import unit_problems

T = TypeVar("T")


def _status(port: int, host: str | None, timeout: float, path: str = "/") -> int:
    """One GET of the health path: the status code (redirects are not followed: the answer itself counts)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        return conn.getresponse().status
    finally:
        conn.close()


def _within(deadline: float, probe: Callable[[], int]) -> int:
    """Run a probe with a hard deadline: a peer that drips bytes cannot hold verify (and dpkg) forever."""
    answer = _begun(partial(_catch, probe))(deadline)
    if isinstance(answer, BaseException):
        raise answer
    return answer


def _begun(work: Callable[[], T]) -> Callable[[float | None], T]:
    """work started in a thread of its own; the call returned waits for its result until a deadline
    (none: as long as it takes), then raises TimeoutError, or what work raised, in the caller's thread."""
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, work()))
        except BaseException as exc:  # handed to the caller's thread: the error boundary is there
            box.append((False, exc))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result(deadline: float | None) -> T:
        thread.join(None if deadline is None else max(0.1, deadline - time.monotonic()))
        if not box:
            raise TimeoutError("no complete answer in time")
        ok, value = box[0]
        if not ok:
            raise value
        return cast(T, value)
    return result


def _catch(probe: Callable[[], int]) -> int | OSError | http.client.HTTPException:
    try:
        return probe()
    except (OSError, http.client.HTTPException) as exc:
        return exc


def check_web(port: int, deadline: float, host: str | None = None, path: str = "/") -> str | None:
    """None if the web process answers GET path on 127.0.0.1:port (any status below 500), else why not."""
    last = "no answer"
    while True:
        timeout = min(5.0, max(deadline - time.monotonic(), 0.5))
        try:
            status = _within(time.monotonic() + timeout + 1, partial(_status, port, host, timeout, path))
            if status < 500:
                return None
            last = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            last = str(exc) or type(exc).__name__
        if time.monotonic() > deadline:
            return f"the web process does not answer GET {path} on 127.0.0.1:{port}: {last}"
        time.sleep(0.3)


def answers(port: int, path: str, timeout: float = 1.0) -> bool:
    """Whether the web process answers GET path now (below 500): the web unit's proof that it started."""
    try:
        return _within(time.monotonic() + timeout + 0.5, partial(_status, port, None, timeout, path)) < 500
    except (OSError, http.client.HTTPException):
        return False


def verify_problems(app: AppPackage, meanwhile: Callable[[threading.Event], list[str]] | None = None) -> list[str]:
    """appdeb's own checks: python, required settings, running units, the web answering.

    meanwhile (the app's verify command) starts once appdeb's checks of the node passed, and runs
    while the units prove their start and the web is asked (a command that asks the web itself waits
    in the socket's queue, which systemd holds): it is the slowest step (a scope, two python starts),
    and nothing of it depends on when a unit counts as started. Its problems count like appdeb's own,
    when those passed; units that wait SETTLE are judged after it. When those failed, it is stopped
    at once (the event it is given is set: _awaited)."""
    problems = []
    found = "{}.{}".format(*sys.version_info[:2])
    if found != app.contract.python_version:
        problems.append(f"python3 is {found}, the package was built for {app.contract.python_version}")
    problems.extend(app.settings_problems())
    settings = app.settings()
    missing = [s.name for s in app.contract.env if s.required and not settings.get(s.name)]
    if missing:
        problems.append(f"required settings missing in {app.paths.settings}: {', '.join(missing)}")
    problems.extend(app.wiring().check(app))
    stop = threading.Event()
    command = _begun(partial(meanwhile, stop)) if meanwhile is not None and not problems else None
    web = app.contract.web
    systemd = proc.systemd_running() and not app.dev
    ready = partial(answers, web.port, web.health) if web else None
    try:
        if systemd:
            problems.extend(unit_problems(app, ready, proving=True))
        problems.extend(web_problems(app) if not problems else [])
    finally:  # its bound or its stop (its scope, its secret copy's removal) ends it, never the exit
        told = _awaited(command, stop, bool(problems))
    problems.extend(told)
    if systemd:
        problems.extend(unit_problems(app, ready, proving=False))
    return problems


def _awaited(command: Callable[[float | None], list[str]] | None, stop: threading.Event, failed: bool) -> list[str]:
    """The app's command's problems once it ended. When appdeb's own checks failed it is stopped at once,
    as at its bound (its scope and every process in it, its secret copy removed): a command that asks
    the broken web would otherwise wait on it until its own timeout, with dpkg's lock held. What it
    would have found is moot then; that it was stopped is said."""
    if command is None:
        return []
    if not failed:
        return command(None)
    stop.set()
    try:
        command(None)
    except proc.Stopped:
        return ["the app's verify command was stopped: appdeb's own checks above failed"]
    return []


def web_problems(app: AppPackage) -> list[str]:
    """The web process answers its health path, directly and through the nginx site if there is one."""
    web = app.contract.web
    web_unit = next((u.name for u in app.contract.units if u.kind == "web"), None)
    if not (web and web_unit and (app.dev or proc.systemctl("is-active", "--quiet", web_unit) == 0)):
        return []
    why = check_web(web.port, time.monotonic() + 20, path=web.health)
    if why:
        return [why]
    if not app.dev and app.contract.nginx and os.path.exists(app.contract.nginx_site):
        why = check_web(app.contract.public_port, time.monotonic() + 10, app.contract.server_name, web.health)
        if why:
            return [f"through nginx: {why}"]
    return []


def app_verify(app: AppPackage, stop: threading.Event | None = None) -> list[str]:
    """The app's own verify command (in its environment, as the app user; stop ends it: proc.Stopped)."""
    code = app.run_command(["verify"], stop=stop)
    if code != 0:
        return [f"the app's verify command failed (exit {code}): {app.contract.commands['verify']}"]
    return []


def verb_verify(app: AppPackage, args: list[str]) -> int:
    problems = verify_problems(app, partial(app_verify, app) if app.has_command("verify") else None)
    for p in problems:
        print(f"{app.contract.package}: verify: {p}", file=sys.stderr)
    if not problems:
        print(f"{app.contract.package} {app.contract.version}: ok")
    return 1 if problems else 0
