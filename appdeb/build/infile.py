"""Read an input file of the app by its path, as root may: never through a symbolic link, bounded in size."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from appdeb.errors import Problem, SpecError


def read_text(path: Path, name: str, limit: int) -> str:
    """The file's UTF-8 text, read without following a symbolic link in its last component.

    Root may check or build a checkout someone else prepared: an app.yaml linked to a file of the
    build host (a key, /etc/shadow) would be parsed and its values quoted back in the problems.
    The type and size are checked on the opened descriptor, so the file cannot be swapped in between;
    O_NONBLOCK keeps a FIFO from hanging the open (it is then refused as not a regular file).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _refused(name, f"no such file: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(name, "is a symbolic link; it must be a regular file in the app directory") from None
        raise _refused(name, f"cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _refused(name, "is not a regular file")
            if st.st_size > limit:
                raise _refused(name, f"is larger than {limit // 1024} KiB")
            data = f.read(limit + 1)
        except OSError as exc:
            raise _refused(name, f"cannot be read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError([Problem(name, line, col, "", f"not UTF-8 text ({exc.reason})")]) from None


def _refused(name: str, message: str) -> SpecError:
    return SpecError([Problem(name, 1, 1, "", message)])
