"""The node side's one door to other programs: systemctl, journalctl, tar, dpkg, apt, nginx, the pg tools.

Every program the runtime and the service plug-ins start goes through `RUNNER`, in one style: no
stdin unless given, its own session (never root's terminal), output captured unless redirected, and
a `Done` that says what ran and how it ended, so no caller can forget an exit status by accident
(`check=True` turns a failure into an exception that names the program and its error output).
Tests swap `RUNNER` for a fake (`use`), which lets node-side logic run without root and without
systemd: they see which programs would have run and answer for them. The app's own commands, which
run with their output relayed to the admin, go through `relay` here too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from . import terminal
from .bounding import STOP_GRACE, demote, in_scope, relay_until, stop_tree
from .terminal import copy_printable, printable_stream

SYSTEMD = "/run/systemd/system"
QUIET = subprocess.DEVNULL  # stdout=QUIET discards the output instead of capturing it


class TimedOut(Exception):
    """A bounded command ran past its time; it and every process it started have been stopped."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"timed out after {seconds}s")
        self.seconds = seconds


class Stopped(Exception):
    """A bounded command its caller stopped (its stop event was set) before it ended; it and every
    process it started have been stopped, as at its bound."""


class Failed(Exception):
    """A program ended with a non-zero status where the caller needed it to succeed."""

    def __init__(self, done: Done, what: str = "") -> None:
        err = done.err.decode(errors="replace").strip().splitlines()[-3:]
        super().__init__(f"{what or done.argv[0]} failed (exit {done.code}){': ' if err else ''}{' / '.join(err)}")
        self.done = done


@dataclass(frozen=True)
class Done:
    """A program that ran: its argv, exit status and captured output (empty where it was redirected)."""

    argv: tuple[str, ...]
    code: int
    out: bytes = b""
    err: bytes = b""

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace")


class Runner:
    """Starts real programs. Subclassed by tests to record and answer instead."""

    def run(self, argv: Sequence[str], *, stdin: IO[Any] | None = None, stdout: IO[Any] | int | None = None,
            env: dict[str, str] | None = None, cwd: str | None = None, limit: int | None = None,
            timeout: float | None = None) -> Done:
        """limit: read at most this many bytes of its output, then stop it (output an app can inflate).
        timeout: past it, its whole process group is killed and it fails (exit 124): a tool that waits on
        something the app controls (its redis paused, a lock it holds) must not hold dpkg's lock for ever."""
        if limit is not None:
            return self._head(argv, limit)
        try:
            proc = subprocess.Popen(list(argv), stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                    stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, cwd=cwd, start_new_session=True)
        except FileNotFoundError:
            return Done(tuple(argv), 127, b"", f"{argv[0]}: command not found".encode())
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):  # a survivor holding the pipes: not waited for
                proc.communicate(timeout=STOP_GRACE)
            proc.kill()
            proc.wait()
            return Done(tuple(argv), 124, b"", f"{argv[0]}: timed out after {timeout:g}s".encode())
        return Done(tuple(argv), proc.returncode, out or b"", err or b"")

    def _head(self, argv: Sequence[str], limit: int) -> Done:
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except FileNotFoundError:
            return Done(tuple(argv), 127, b"", f"{argv[0]}: command not found".encode())
        assert proc.stdout is not None
        with proc.stdout:
            out = proc.stdout.read(limit)
            if proc.stdout.read(1):
                proc.kill()
        return Done(tuple(argv), proc.wait(), out, b"")

    def relay(self, argv: Sequence[str], *, cwd: str, env: dict[str, str], user: tuple[int, int] | None,
              interactive: bool, label: str = "run") -> int:
        """Run a command for a person: interactively (their terminal), or with stdin closed and both
        output streams copied to ours through a pipe (no terminal of root's reaches the command).
        As another user (root running the app's command) interactively, it gets a terminal of its own
        that root relays (terminal.py), never root's, in a session of its own and, on systemd, a scope:
        when it returns, every process it started is stopped and its terminal hung up."""
        if interactive:
            if user is None:
                return subprocess.call(list(argv), cwd=cwd, env=env)
            return self._for_person(argv, cwd, env, user, label)
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd, env=env,
                                preexec_fn=demote(*user) if user else None)
        assert proc.stdout is not None
        out, fd, shown = sys.stdout.buffer, proc.stdout.fileno(), printable_stream()
        for chunk in iter(lambda: os.read(fd, 65536), b""):
            out.write(shown(chunk))
            out.flush()
        return proc.wait()

    def _for_person(self, argv: Sequence[str], cwd: str, env: dict[str, str], user: tuple[int, int],
                    label: str) -> int:
        """Root runs the app's command for a person: a pty of its own or pipes, then its scope is stopped."""
        argv, env, scope, fds = in_scope(argv, env, user, label, self.systemd())
        then = None if scope else demote(*user)
        master, slave = terminal.open_pty() if terminal.on_terminal() else (-1, -1)
        to = (slave, slave) if slave >= 0 else terminal.pipes_for_terminals()
        try:
            popen = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=None if slave < 0 else slave,
                                     stdout=to[0], stderr=to[1], start_new_session=True, pass_fds=fds,
                                     preexec_fn=terminal.controlling(then) if slave >= 0 else then)
        finally:
            for fd in (*fds, *([slave] if slave >= 0 else [])):
                os.close(fd)
        if master >= 0:
            terminal.relay_pty(master, popen)
        else:
            terminal.relay_pipes(popen)
        code = popen.wait()
        stop_tree(self, popen.pid, scope, gently=False)
        return code

    def bounded(self, argv: Sequence[str], *, cwd: str, env: dict[str, str], user: tuple[int, int] | None,
                seconds: int, label: str, stop: threading.Event | None = None) -> int:
        """Run an app command unattended for at most SECONDS, its output relayed; its exit status, or
        TimedOut. Every process it starts dies with it: on systemd, as root, the command runs in a
        transient scope (a cgroup of its own, which no fork or setsid leaves) and is demoted inside it
        by setpriv; elsewhere it leads a process group of its own. Processes it leaves behind are
        stopped too when it ends, as systemd stops a oneshot unit's. stop: set by the caller (another
        thread) to end it sooner, the same way as at its bound; then Stopped."""
        argv, env, scope, fds = in_scope(argv, env, user, label, self.systemd()) if user else (argv, env, None, ())
        try:
            popen = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd, env=env,
                                     preexec_fn=None if user is None or scope else demote(*user), pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        assert popen.stdout is not None
        with popen.stdout:
            shown = printable_stream()
            ended = relay_until(popen, time.monotonic() + seconds, shown, stop=stop)
            if ended and scope:
                popen.wait()  # a scope needs no zombie to hold its pid: reaped before its leftovers go
            stop_tree(self, popen.pid, scope, gently=not ended)
            relay_until(popen, time.monotonic() + 2, shown, drain=True)  # what they wrote before they died
        code = popen.wait()
        if not ended:
            raise Stopped() if stop is not None and stop.is_set() else TimedOut(seconds)
        return code

    def show(self, argvs: Sequence[Sequence[str]]) -> int:
        """Run programs side by side with their output on ours (`PKG logs -f`: the journal and log files)
        until they end or the person interrupts; the worst exit status."""
        sys.stdout.flush()
        procs = [subprocess.Popen(list(a), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
                 for a in argvs]
        # The app user writes what these show (its log files, request data in nginx's): on root's
        # terminal a control sequence would be an attack, so every line arrives as printable text.
        copiers = [threading.Thread(target=copy_printable, args=(p.stdout,), daemon=True) for p in procs]
        for copier in copiers:
            copier.start()
        try:
            codes = [p.wait() for p in procs]
            for copier in copiers:
                copier.join()
            return max(codes, default=0)
        except KeyboardInterrupt:
            return 0
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait()

    def systemd(self) -> bool:
        """Is systemd the init of this machine (a node), rather than a chroot, a build or a laptop?"""
        return os.path.isdir(SYSTEMD)


RUNNER: Runner = Runner()


@contextlib.contextmanager
def use(runner: Runner) -> Iterator[Runner]:
    """Run node-side code against another runner (a test's fake) for the duration of a block."""
    global RUNNER
    previous, RUNNER = RUNNER, runner
    try:
        yield runner
    finally:
        RUNNER = previous


def run(argv: Sequence[str], *, check: bool = False, what: str = "", **kwargs: Any) -> Done:
    done = RUNNER.run(argv, **kwargs)
    if check and not done.ok:
        raise Failed(done, what)
    return done


def call(argv: Sequence[str], **kwargs: Any) -> int:
    """The exit status only; the output is discarded."""
    return RUNNER.run(argv, stdout=QUIET, **kwargs).code


def output(argv: Sequence[str]) -> str:
    """stdout in the C locale (for parsing), or '' when the program failed."""
    done = RUNNER.run(argv, env={**os.environ, "LC_ALL": "C"})
    return done.text if done.ok else ""


def show(argvs: Sequence[Sequence[str]]) -> int:
    return RUNNER.show(argvs)


def systemctl(*args: str) -> int:
    return call(["systemctl", *args])


def systemd_running() -> bool:
    return RUNNER.systemd()


def relay(argv: Sequence[str], *, cwd: str, env: dict[str, str], user: tuple[int, int] | None = None,
          interactive: bool = False, label: str = "run") -> int:
    return RUNNER.relay(argv, cwd=cwd, env=env, user=user, interactive=interactive, label=label)


def bounded(argv: Sequence[str], *, cwd: str, env: dict[str, str], user: tuple[int, int] | None, seconds: int,
            label: str, stop: threading.Event | None = None) -> int:
    return RUNNER.bounded(argv, cwd=cwd, env=env, user=user, seconds=seconds, label=label, stop=stop)


def plain_env() -> dict[str, str]:
    """What of root's environment a program run for another user may see: locale and PATH, no tokens."""
    keep = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM")
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith("LC_")}


def as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    """argv run as another user (runuser is in util-linux, on every Debian); as is without a user."""
    return ["runuser", "-u", user, "--", *argv] if user else list(argv)
