"""The one exception family the CLI turns into a clean message and exit 1."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


class AppdebError(Exception):
    """A user-facing error: the message is shown as is, without a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int
    col: int
    key: str
    message: str

    def __str__(self) -> str:
        key = self.key or "(top)"
        return printable(f"{self.file}:{self.line}:{self.col}: {key}: {self.message}")


def printable(text: str) -> str:
    """One line whatever a hostile app.yaml put into a key or a value: control characters escaped.

    Messages quote the user's values; a newline there would fake another problem line, and an
    escape sequence would reach the user's terminal.
    """
    return "".join(repr(ch)[1:-1] if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") else ch for ch in text)


class SpecError(AppdebError):
    """Every problem found in an app description, reported together."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.col, p.key))
        super().__init__("\n".join(str(p) for p in self.problems))


class CommandError(AppdebError):
    """An external tool failed; carries its output so the user sees why."""

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-20:])
        super().__init__(f"command failed ({returncode}): {' '.join(argv)}\n{tail}".rstrip())
