"""One escaping function per output format a value from app.yaml can reach.

Validators (appdeb/rules.py) decide what a field may contain; these functions decide how a value is
written into a shell script, a systemd unit, an nginx site, a Debian control file or a settings file.
Each either returns text that the format reads back as exactly the value, or refuses: a template
never pastes a raw value. What they return is a `Rendered`, the only kind of string the Jinja
environment's finalize lets through with a line break in it (appdeb/templates.py).
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Iterable

from appdeb.errors import AppdebError

# Characters that end or split a line for some reader (dpkg, systemd, Python's splitlines), or
# cannot be encoded: never inside a one-line value.
_BREAKING = frozenset({"Cc", "Cs", "Zl", "Zp"})
NGINX_RE = re.compile(r"[A-Za-z0-9_./:*-][A-Za-z0-9_./:*~-]*")
_UNIT_WORD_UNSAFE = re.compile(r"[\s\"'\\;$]")


class Rendered(str):
    """Text an escaping function produced for its format: safe to paste, even across lines."""

    __slots__ = ()


class FormatError(AppdebError):
    """A value the target format cannot carry; a validator should have refused it earlier."""


def bad_char(text: str, allow: str = "") -> str | None:
    """The first character that would break a line or the file's encoding (None when there is none)."""
    for ch in text:
        if ch not in allow and unicodedata.category(ch) in _BREAKING:
            return ch
    return None


def _one_line(value: object, fmt: str) -> str:
    text = str(value)
    ch = bad_char(text)
    if ch is not None:
        raise FormatError(f"{fmt}: refusing to write {text[:60]!r}: it contains the control character {ch!r}")
    return text


def shell(value: object) -> Rendered:
    """A POSIX sh word: always single-quoted, even safe words, so templates read uniformly."""
    text = str(value)
    if "\0" in text:
        raise FormatError(f"sh: refusing to write {text[:60]!r}: a shell word cannot hold a NUL byte")
    if text and shlex.quote(text) == text:
        return Rendered(f"'{text}'")
    return Rendered(shlex.quote(text))


def unit(value: object, word: bool = False) -> Rendered:
    """A systemd unit-file value: one line, `%` specifiers escaped as `%%`.

    With word=True the value is one word of a command line or of a space-separated list
    (ExecStart=, ReadWritePaths=, After=), where systemd splits on blanks, unquotes and expands
    `\\` escapes and `$VARIABLES`: blanks, quotes, `;`, `\\` and `$` are refused there outright.
    """
    text = _one_line(value, "systemd unit")
    if text != text.strip():
        raise FormatError(f"systemd unit: refusing to write {text[:60]!r}: systemd strips surrounding blanks")
    if text.endswith("\\"):
        raise FormatError(f"systemd unit: refusing to write {text[:60]!r}: a final '\\' continues the line")
    if word and (not text or _UNIT_WORD_UNSAFE.search(text)):
        raise FormatError(f"systemd unit: refusing to write {text[:60]!r} as one word of a command line")
    return Rendered(text.replace("%", "%%"))


def nginx(value: object) -> Rendered:
    """One nginx directive argument: nginx cannot escape `$`, so only a safe character set passes."""
    text = str(value)
    if not NGINX_RE.fullmatch(text):
        raise FormatError(f"nginx: refusing to write {text[:60]!r}: only letters, digits and _ . / : * ~ - "
                          "are written into the site (and no leading ~)")
    return Rendered(text)


def control(value: object) -> Rendered:
    """One Debian control field value (deb822): a single non-empty line without surrounding blanks."""
    text = _one_line(value, "control field")
    if not text.strip() or text != text.strip():
        raise FormatError(f"control field: refusing to write {text[:60]!r}: empty or surrounded by blanks")
    return Rendered(text)


def control_description(summary: object, body: Iterable[object] = ()) -> Rendered:
    """A multi-line Description: the summary, then each body line as a continuation line.

    Every body line starts with a space, so none can ever start a field; blank lines become " .".
    """
    lines = [str(control(summary))]
    for line in body:
        text = _one_line(line, "control field").rstrip()
        lines.append(f" {text}" if text.strip() else " .")
    return Rendered("\n".join(lines))


def env_value(value: object) -> Rendered:
    """A settings-file (KEY=value) value that the runtime's parse_settings reads back exactly.

    parse_settings strips blanks and one pair of matching outer quotes (and reports a value that opens
    a quote it does not close), so a value with surrounding blanks, or starting with a quote, is wrapped
    in single quotes (stripped again).
    """
    text = _one_line(value, "settings file")
    if text != text.strip() or text[:1] in ("'", '"'):
        return Rendered(f"'{text}'")
    return Rendered(text)


def comment(value: object) -> Rendered:
    """Text for a `#` comment line of a settings file: one line, so it cannot start a setting."""
    return Rendered(_one_line(value, "settings file comment"))


FILTERS = {"sh": shell, "unit": unit, "nginx": nginx, "control": control,
           "control_description": control_description, "env_value": env_value}
