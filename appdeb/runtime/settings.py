"""The settings file (/etc/PKG/settings.env): KEY=value lines, read as data by one parser, never sourced.

Only root writes the file (0640 root:PKG, made by postinst); the runtime reads it both as root (backup,
status, verify) and as the app's user (its units). Because it is parsed here as text and its values go
into an environment, never into a shell, a value cannot run anything in either.

A line that is not a setting is not skipped silently: every such line is a problem with its line
number, which the app's units report when they start (the journal, `systemctl status`) and `PKG verify`
reports as `FILE:LINE: …`, so a typo cannot quietly leave a setting at its default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
QUOTES = "'\""


@dataclass(frozen=True)
class Parsed:
    """The settings a text holds, and the lines that are not settings: (line number, what is wrong)."""

    values: dict[str, str]
    problems: tuple[tuple[int, str], ...] = ()

    def messages(self, path: str) -> list[str]:
        return [f"{path}:{number}: {what}" for number, what in self.problems]


def parse(text: str) -> Parsed:
    """KEY=value lines; blank lines and '#' comments; blanks around key and value are dropped, and one
    pair of matching quotes around the value. Lines are counted as an editor counts them (by '\\n')."""
    values: dict[str, str] = {}
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        why = _problem(line, key, bool(eq), value)
        if why:
            problems.append((number, why))
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in QUOTES:
            value = value[1:-1]
        values[key] = value
    return Parsed(values, tuple(problems))


def _problem(line: str, key: str, eq: bool, value: str) -> str | None:
    shown = line if len(line) <= 60 else line[:57] + "..."
    if not eq:
        return f"not a setting: {shown!r} (expected KEY=value, or '#' for a comment)"
    if key.startswith("export ") and NAME.match(key[7:].strip()):
        return f"'export' is not needed here: write {key[7:].strip()}=… (the file is read as data, not by a shell)"
    if not NAME.match(key):
        return f"not a variable name: {key!r} (letters, digits and _, not starting with a digit)"
    if value[:1] in QUOTES and value and (len(value) < 2 or value[-1] != value[0]):
        return f"{key}: the value opens a {value[0]} quote that does not close at the end of the line"
    return None
