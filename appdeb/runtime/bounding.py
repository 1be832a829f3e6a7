"""How a bounded app command is run and stopped (proc.Runner.bounded is the door; this is its detail).

Root starts the transient scope and demotes into it with programs named by absolute path and a fixed
environment; the command and everything it starts are stopped at its bound, scope or process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from subprocess import Popen
    from threading import Event

    from .proc import Runner

STOP_GRACE = 10  # seconds between SIGTERM and SIGKILL when a bounded command's processes are stopped


# Root's systemd-run and setpriv run with this environment and by absolute path: the app's (its PATH
# starts with the vendored console scripts, its settings may name LD_PRELOAD or a directory the app
# user writes) reaches only the command, through a file descriptor read by TRAMPOLINE once demoted.
ROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
TRAMPOLINE = ("import json, os, sys\n"
              "with os.fdopen(int(sys.argv[1]), 'rb') as f:\n    env = json.load(f)\n"
              "os.execvpe(sys.argv[2], sys.argv[2:], env)\n")


def sealed_env(env: dict[str, str]) -> int:
    """The environment as JSON in an anonymous file (no path to race, not on any command line)."""
    fd = os.memfd_create("appdeb-env")
    with os.fdopen(os.dup(fd), "wb") as out:
        out.write(json.dumps(env).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def demote(uid: int, gid: int) -> Callable[[], None]:
    def demote() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return demote


def exited(pid: int) -> bool:
    """Has the child ended? It stays a zombie (not reaped), so its pid and group id are not reused yet."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def relay_until(popen: Popen[bytes], deadline: float, shown: Callable[[bytes], bytes], drain: bool = False,
                stop: Event | None = None) -> bool:
    """Copy the child's output to ours (as `shown` makes it: no terminal control reaches root's
    terminal) until it ends (True) or the deadline passes or stop is set (False); with drain, until
    the pipe's end or the deadline."""
    assert popen.stdout is not None
    out, fd, reading = sys.stdout.buffer, popen.stdout.fileno(), True
    while (left := deadline - time.monotonic()) > 0 and not (stop is not None and stop.is_set()):
        if not drain and exited(popen.pid):
            return True
        if not reading:  # its output closed before it ended
            time.sleep(min(left, 0.1))
        elif select.select([fd], [], [], min(left, 0.2))[0]:
            chunk = os.read(fd, 65536)
            if not chunk and drain:
                return True
            reading = bool(chunk)
            out.write(shown(chunk))
            out.flush()
    return not drain and exited(popen.pid)


def stop_tree(runner: Runner, pid: int, scope: str | None, gently: bool) -> None:
    """Stop every process of a bounded command: its scope (SIGTERM, SIGKILL after STOP_GRACE; systemctl
    waits; a scope already gone is no error), or its process group (SIGTERM, then SIGKILL)."""
    if scope:
        from .proc import QUIET

        runner.run(["systemctl", "stop", scope], stdout=QUIET)
        return
    for sig in ((signal.SIGTERM, signal.SIGKILL) if gently else (signal.SIGKILL,)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + STOP_GRACE
        while sig == signal.SIGTERM and time.monotonic() < deadline and not exited(pid):
            time.sleep(0.1)


def in_scope(argv: Sequence[str], env: dict[str, str], user: tuple[int, int], label: str, systemd: bool
             ) -> tuple[Sequence[str], dict[str, str], str | None, tuple[int, ...]]:
    """argv in a transient scope of its own, demoted inside it by setpriv, its environment sealed in a
    memfd (root's systemd-run sees only ROOT_ENV): (argv, env, scope, fds to pass); as given off systemd
    or without root (its caller then demotes it and stops its process group)."""
    if not (systemd and os.geteuid() == 0):
        return argv, env, None, ()
    scope = f"appdeb-{re.sub(r'[^A-Za-z0-9_-]', '_', label)}-{secrets.token_hex(4)}.scope"
    fd = sealed_env(env)
    return (["/usr/bin/systemd-run", "--scope", "--quiet", "--collect", f"--unit={scope}",
             f"--property=TimeoutStopSec={STOP_GRACE}", "--", "/usr/bin/setpriv", f"--reuid={user[0]}",
             f"--regid={user[1]}", "--clear-groups", "--", sys.executable, "-I", "-S", "-c", TRAMPOLINE,
             str(fd), *argv], dict(ROOT_ENV), scope, (fd,))
