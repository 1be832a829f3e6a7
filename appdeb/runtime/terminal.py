"""A command for a person never gets root's terminal: a terminal of its own that root relays, or pipes.

`PKG run` by root for the app's user is interactive (a shell, a console), so the command needs a
terminal. Handing it root's was a hole: a process of the app's user could keep a copy of that
descriptor (a background child, or one passed over a unix socket to the web worker) and read what
root typed after the command returned. When root's input is a terminal, the command gets a new
pseudo-terminal as its controlling terminal; root's is put in raw mode and the bytes are copied both
ways until the command ends, then the pty's master is closed: a copy of its other end left behind reads
a hang-up. When root's input is not a terminal (a script), the command's output goes through pipes
wherever root's output is a terminal, copied byte for byte. proc.Runner.relay starts the command.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from subprocess import Popen


def on_terminal() -> bool:
    """Whether the person's input is a terminal (then the command gets a pty of its own)."""
    return os.isatty(sys.stdin.fileno())


def open_pty() -> tuple[int, int]:
    """(master, slave) of a new pty, with the person's window size when there is one."""
    master, slave = pty.openpty()
    with contextlib.suppress(OSError):
        fcntl.ioctl(slave, termios.TIOCSWINSZ, fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 8))
    return master, slave


def controlling(then: Callable[[], None] | None) -> Callable[[], None]:
    """A preexec_fn: in the child, after setsid, its stdin (the pty) becomes its controlling terminal."""
    def preexec() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if then is not None:
            then()
    return preexec


def relay_pty(master: int, popen: Popen[bytes]) -> None:
    """Copy our input to the pty and its output to ours, our terminal raw, until the command has ended
    and said all; then the master is closed (whoever kept the other end reads a hang-up)."""
    sys.stdout.flush()
    inputs = [master, sys.stdin.fileno()]
    try:
        with _raw(sys.stdin.fileno()):
            while True:
                ended = popen.poll() is not None
                ready, _, _ = select.select(inputs, [], [], 0 if ended else 0.2)
                if master in ready:
                    data = _read(master)
                    if not data:
                        return
                    _write_all(sys.stdout.fileno(), data)
                elif ended:  # nothing more from it (a copy of the pty someone kept does not hold us)
                    return
                if sys.stdin.fileno() in ready:
                    data = _read(sys.stdin.fileno())
                    _write_all(master, data or b"\x04")  # our input's end: the command reads end-of-file
                    if not data:
                        inputs.remove(sys.stdin.fileno())
    finally:
        os.close(master)


def pipes_for_terminals() -> tuple[int | None, int | None]:
    """stdout, stderr for the command: a pipe (subprocess.PIPE) where ours is a terminal, ours otherwise."""
    return tuple(subprocess.PIPE if os.isatty(fd) else None for fd in (1, 2))  # type: ignore[return-value]


def relay_pipes(popen: Popen[bytes]) -> None:
    """Copy the command's piped output to ours, byte for byte, until it has ended and said all."""
    pipes = {p.fileno(): out for p, out in ((popen.stdout, 1), (popen.stderr, 2)) if p is not None}
    while pipes:
        ended = popen.poll() is not None
        ready, _, _ = select.select(list(pipes), [], [], 0 if ended else 0.2)
        if not ready and ended:  # a process left holding a pipe does not hold us
            return
        for fd in ready:
            data = _read(fd)
            if data:
                _write_all(pipes[fd], data)
            else:
                del pipes[fd]


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: every holder of a pty's other end has closed it
        return b""


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """Our terminal in raw mode (keys go to the command's pty as typed, ^C included), restored after."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield
        return
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def printable(line: bytes) -> str:
    """A line of untrusted output as text a terminal shows literally: C0/C1 controls and DEL (escape
    sequences, carriage returns) become \\xNN; tabs and the newline stay."""
    return _visible(line.decode(errors="backslashreplace"))


def _visible(text: str) -> str:
    return "".join(c if c in "\t\n" or not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) else f"\\x{ord(c):02x}"
                   for c in text)


def printable_stream() -> Callable[[bytes], bytes]:
    """printable for output read in chunks (a character may be split between two)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    return lambda chunk: _visible(decoder.decode(chunk)).encode()


def copy_printable(stream: IO[bytes] | None) -> None:
    """Lines of a stream onto our output as printable text (what the app's user writes, on root's terminal)."""
    if stream is None:
        return
    with stream:
        for line in stream:
            sys.stdout.write(printable(line))
            sys.stdout.flush()
