"""A command for a person, on a terminal of its own that root relays: root's own terminal never reaches it.

`PKG run` by root for the app's user is interactive (a shell, a console), so the command needs a
terminal. Handing it root's was a hole: a process of the app's user could keep a copy of that
descriptor (a background child, or one passed over a unix socket to the web worker) and read what
root typed after the command returned. The command gets a new pseudo-terminal instead, as its
controlling terminal; root's terminal is put in raw mode and its bytes copied both ways until the
command ends, then the pty's master is closed: any copy of its other end left behind reads a hang-up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import tty
from collections.abc import Callable, Iterator, Sequence


def run(argv: Sequence[str], *, cwd: str, env: dict[str, str], preexec: Callable[[], None] | None,
        pass_fds: tuple[int, ...]) -> tuple[int, int]:
    """(pid, exit status) of argv run on a pty of its own, relayed to our stdin and stdout."""
    master, slave = pty.openpty()
    with contextlib.suppress(OSError):  # our window's size, when we have one
        fcntl.ioctl(slave, termios.TIOCSWINSZ, fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 8))

    def own_terminal() -> None:  # in the child, after setsid: the pty becomes its controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if preexec is not None:
            preexec()

    try:
        popen = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                 start_new_session=True, preexec_fn=own_terminal, pass_fds=pass_fds)
    finally:
        os.close(slave)
    try:
        with _raw(sys.stdin.fileno()):
            _relay(master, popen)
        return popen.pid, popen.wait()
    finally:
        os.close(master)


def _relay(master: int, popen: subprocess.Popen[bytes]) -> None:
    """Copy our input to the pty and its output to ours until the command has ended and said all."""
    sys.stdout.flush()
    inputs = [master, sys.stdin.fileno()]
    while True:
        ended = popen.poll() is not None
        ready, _, _ = select.select(inputs, [], [], 0 if ended else 0.2)
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of its other end has closed it
                data = b""
            if not data:
                return
            _write_all(sys.stdout.fileno(), data)
        elif ended:  # nothing more from it (a copy of the pty someone kept does not hold us)
            return
        if sys.stdin.fileno() in ready:
            data = os.read(sys.stdin.fileno(), 65536)
            if data:
                _write_all(master, data)
            else:  # our input ended: the command reads end-of-file, and we stop watching it
                inputs.remove(sys.stdin.fileno())
                with contextlib.suppress(OSError):
                    _write_all(master, b"\x04")


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """Our terminal in raw mode (keys go to the command's pty as typed, ^C included), restored after."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:  # not a terminal: nothing to set
        yield
        return
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
