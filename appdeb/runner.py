"""The single door to subprocesses: every external tool appdeb drives goes through run()."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from appdeb.errors import AppdebError, CommandError

_DEBUG = os.environ.get("APPDEB_DEBUG") == "1"


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    stdout_only: bool = False,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise CommandError with its combined output.

    Output is captured as text (stderr merged into stdout, or apart with stdout_only) unless capture
    is False, in which case it goes to the caller's terminal. preexec runs in the child just before the
    exec (appdeb/node/confine.py: the limits a node's commands run under); if it fails, nothing runs.
    """
    args = [os.fspath(a) for a in argv]
    if _DEBUG:
        print("+", shlex.join(args), flush=True)
    full_env = None if env is None else {**os.environ, **env}
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            input=data,
            stdout=subprocess.PIPE if capture else None,
            stderr=(subprocess.PIPE if stdout_only else subprocess.STDOUT) if capture else None,
            timeout=timeout,
            check=False,
            preexec_fn=preexec,
        )
    except FileNotFoundError as exc:
        raise AppdebError(f"{args[0]}: not found; is it installed? ({exc.strerror})") from None
    except subprocess.TimeoutExpired:
        raise AppdebError(f"command timed out after {timeout}s: {shlex.join(args)}") from None
    except subprocess.SubprocessError as exc:  # preexec failed in the child: the command never ran
        raise AppdebError(f"could not start {shlex.join(args)}: {exc}") from None
    out = proc.stdout.decode(errors="replace") if proc.stdout is not None else ""
    err = proc.stderr.decode(errors="replace") if proc.stderr is not None else ""
    result = subprocess.CompletedProcess(args, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, out + err)
    return result


def run_contained(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float,
                  namespaces: bool = True, stop: Callable[[], None] | None = None) -> tuple[int, str]:
    """Run untrusted code (an app's import at build time) with only `env`, in a session of its own.

    The whole session is killed when it ends or times out, so nothing it started outlives it (a
    plain timeout kills only the direct child, and the app runs in a grandchild). As root it also runs
    without network and as the first process of a PID namespace of its own: when that process ends, or
    unshare is killed, the kernel ends every process in it, a `setsid` child that left the session
    included (namespaces=False: argv makes its own, appdeb.build.confine). stop: what else ends it on the
    timeout (every process of its uid: one that left the session and the namespace's first process
    too, which the kill of the session misses when the code moved it elsewhere). Returns (exit code,
    combined output); AppdebError on the timeout.
    """
    root = namespaces and os.geteuid() == 0 and which("unshare")
    contain = ["unshare", "--net", "--pid", "--kill-child", "--"] if root else []
    args = [*contain, *argv]
    if _DEBUG:
        print("+ (contained)", shlex.join(args), flush=True)
    proc = subprocess.Popen(args, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)
        if stop is not None:
            stop()
        with contextlib.suppress(subprocess.TimeoutExpired):  # a survivor holding the pipe: not waited for
            proc.communicate(timeout=10)
        raise AppdebError(f"command timed out after {timeout}s: {shlex.join(args)}") from None
    finally:
        _kill_session(proc.pid)
    return proc.returncode, out.decode(errors="replace")


def _kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def which(name: str) -> str | None:
    """Locate a program on PATH (kept here so tool discovery has one home)."""
    from shutil import which as _which

    return _which(name)


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    **popen_kwargs: object,
) -> subprocess.Popen[bytes]:
    """Start a long-running process (a server, a node) and hand back its handle."""
    args = [os.fspath(a) for a in argv]
    if _DEBUG:
        print("+ (bg)", shlex.join(args), flush=True)
    full_env = None if env is None else {**os.environ, **env}
    try:
        return subprocess.Popen(args, cwd=cwd, env=full_env, **popen_kwargs)  # type: ignore[call-overload,no-any-return]
    except FileNotFoundError as exc:
        raise AppdebError(f"{args[0]}: not found; is it installed? ({exc.strerror})") from None


def filter_to(argv: Sequence[str], chunks: Iterable[bytes], dest: BinaryIO) -> None:
    """Stream chunks through a filter (a compressor) into an open file; CommandError if it fails.

    stdout is the file itself, not a pipe, so feeding stdin from this one thread cannot deadlock.
    """
    proc = spawn(argv, stdin=subprocess.PIPE, stdout=dest, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise CommandError(list(argv), proc.returncode, err)
