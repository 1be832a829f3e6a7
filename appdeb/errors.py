"""The one exception family the CLI turns into a clean message and exit 1."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


class AppdebError(Exception):
    """A user-facing error: the message is shown as is, without a traceback."""


MAX_KEY = 200  # characters of a key path shown in a problem
MAX_MESSAGE = 1000  # characters of a problem's message
MAX_SHOWN = 100  # problems reported; the rest are counted
HIDDEN = frozenset({"Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn"})  # what a message shows as an escape


def shorten(text: str, limit: int) -> str:
    """At most limit characters: a longer text keeps its start and end around an ellipsis."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head):]}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int
    col: int
    key: str
    message: str

    def __post_init__(self) -> None:
        # A key path names every key above the value: a key of 100 000 characters would be carried
        # (and printed) by each problem below it, so paths and messages are cut to a readable size.
        object.__setattr__(self, "key", shorten(self.key, MAX_KEY))
        object.__setattr__(self, "message", shorten(self.message, MAX_MESSAGE))

    def __str__(self) -> str:
        key = self.key or "(top)"
        return printable(f"{self.file}:{self.line}:{self.col}: {key}: {self.message}")


def printable(text: str) -> str:
    """One line whatever a hostile app.yaml put into a key or a value: control characters escaped.

    Messages quote the user's values; a newline there would fake another problem line, an escape
    sequence would reach the user's terminal, and a bidi override (U+202E) would reorder the line.
    """
    return "".join(repr(ch)[1:-1] if unicodedata.category(ch) in HIDDEN else ch for ch in text)


class SpecError(AppdebError):
    """Every problem found in an app description, reported together: the first MAX_SHOWN of them
    (by position) and how many there are, so a small hostile file cannot print gigabytes."""

    def __init__(self, problems: list[Problem]) -> None:
        self.total = len(problems)
        self.problems = sorted(problems, key=lambda p: (p.line, p.col, p.key))[:MAX_SHOWN]
        lines = [str(p) for p in self.problems]
        if self.total > len(lines):
            lines.append(f"… and {self.total - len(lines)} more problems")
        super().__init__("\n".join(lines))

    def summary(self) -> str:
        """The line the CLI ends with: how many problems there are, and how many were shown."""
        shown = f" (the first {len(self.problems)} shown)" if self.total > len(self.problems) else ""
        return f"{self.total} problem(s) in the app description{shown}"


class CommandError(AppdebError):
    """An external tool failed; carries its output so the user sees why."""

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-20:])
        super().__init__(f"command failed ({returncode}): {' '.join(argv)}\n{tail}".rstrip())
