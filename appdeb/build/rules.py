"""Allow-lists for every app.yaml string that reaches a rendered file, as full-match patterns.

A value is either what one of these patterns describes, or a problem at its line:col; nothing is
cleaned up silently. Every pattern is used with fullmatch: `re.match(...$)` would accept a trailing
newline, which in a control file or a unit starts a new field. Each check returns a message (what
is allowed) or None, so the validator can collect all of them at once.
"""

from __future__ import annotations

import re
import unicodedata

from appdeb.build.formats import bad_char
from appdeb.errors import AppdebError
from appdeb.runner import run, which

NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")  # app and instance names (and so the package)
IDENT_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")  # commands, processes, timers
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
VERSION_RE = re.compile(r"[0-9][A-Za-z0-9.+~-]{0,63}")
OBJECT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*")
SPECIFIER_RE = re.compile(r" *(==|!=|>=|<=|~=|>|<) *\d+(\.\d+)* *")
DEB_RELATION_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?(?: *\((?:<<|<=|=|>=|>>|<|>) *[A-Za-z0-9.+~:-]+\))?")
MAINTAINER_RE = re.compile(r"[^<>]+ <[^<>@\s]+@[^<>\s]+>")
_HOST = r"(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
SERVER_NAMES_RE = re.compile(rf"(?:{_HOST}|_)(?: (?:{_HOST}|_))*")
URL_PATH_RE = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*")
REL_PATH_RE = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?")
SCHEDULE_RE = re.compile(r"[A-Za-z0-9*,:/.~+_-](?:[A-Za-z0-9 *,:/.~+_-]{0,198}[A-Za-z0-9*,:/.~+_-])?")
MAX_TEXT = 4096  # one-line values and descriptions: far beyond any real one
INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cn"})  # control, format, private-use, unassigned


def shown(value: str, limit: int = 60) -> str:
    """A user value quoted for a message, cut short so a huge value cannot flood the terminal."""
    return f"'{value}'" if len(value) <= limit else f"'{value[: limit - 3]}...'"


def one_line(text: str, *, allow: str = "", limit: int = MAX_TEXT) -> str | None:
    """Text that stays on its line in every format: no control character (but those in allow)."""
    ch = bad_char(text, allow)
    if ch is not None:
        what = "a line break" if ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029" else "a control character"
        return f"must not contain {what} ({ch!r})"
    if len(text) > limit:
        return f"is longer than {limit} characters"
    return None


def visible(text: str, *, allow: str = "") -> str | None:
    """Text a person reads as it is: no format character (bidi overrides such as U+202E, zero-width
    spaces, U+FEFF), private-use or unassigned code point, no control character (but those in allow).
    Such text reaches the control file's Description and the settings file's comments, where it
    could make what an admin sees differ from what is there."""
    for ch in text:
        if ch not in allow and unicodedata.category(ch) in INVISIBLE:
            return f"must not contain the invisible or control character U+{ord(ch):04X} ({ch!r})"
    return None


def maintainer(text: str) -> str | None:
    problem = one_line(text, limit=200)
    if problem:
        return problem
    if not text.isprintable():
        return f"{shown(text)} must be printable characters (no format or invisible characters)"
    if not MAINTAINER_RE.fullmatch(text):
        return f"{shown(text)} must look like 'Full Name <email@example.org>'"
    return None


def description(text: str) -> str | None:
    """Lines of printable text: each becomes a continuation line of the control file's Description."""
    return one_line(text, allow="\n", limit=8 * MAX_TEXT) or visible(text, allow="\n")


def command(text: str) -> str | None:
    """Commands are shell by design (run as the app user via /bin/sh -c) and travel only in app.json."""
    return one_line(text, allow="\n\t", limit=8 * MAX_TEXT)


def deb_relation(text: str) -> str | None:
    if DEB_RELATION_RE.fullmatch(text):
        return None
    return f"{shown(text)} is not a Debian package relation (e.g. 'libpq5' or 'libpq5 (>= 15)')"


def server_names(text: str) -> str | None:
    """One or more DNS host names (optionally `*.` wildcards, or `_`), separated by single spaces."""
    if SERVER_NAMES_RE.fullmatch(text) and all(len(n) <= 253 for n in text.split(" ")):
        return None
    return (f"{shown(text)} must be host names separated by single spaces (lower-case letters, digits, "
            "hyphens and dots, an optional leading '*.', at most 253 characters each)")


def url_path(text: str) -> str | None:
    """A URL path prefix nginx serves static files under: /segments/ ending in '/'."""
    segments = text.strip("/").split("/")
    if URL_PATH_RE.fullmatch(text) and not {".", ".."} & set(segments):
        return None
    return (f"{shown(text)} must be a URL path like '/static/' (letters, digits and . _ ~ - between "
            "single slashes, no '.' or '..' segment)")


HEALTH_RE = re.compile(r"/(?:[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*/?)?")


def health_path(text: str) -> str | None:
    """The path the post-start check, verify and deploys request: a plain absolute URL path."""
    if HEALTH_RE.fullmatch(text) and not {".", ".."} & set(text.strip("/").split("/")) and len(text) <= 200:
        return None
    return f"{shown(text)} must be a URL path like '/health' (letters, digits and . _ ~ - between single slashes)"


def relative_path(text: str) -> str | None:
    """The shape of a path inside the app; paths_in_app.inside() then checks where it really leads."""
    if text.startswith("/"):
        return f"{shown(text)} must be a path relative to the app directory, not an absolute path"
    if len(text) > 1024 or any(len(part) > 255 for part in text.split("/")):
        return f"{shown(text)} is too long for a path"
    if not REL_PATH_RE.fullmatch(text):
        return f"{shown(text)} must be a relative path of letters, digits and . _ - /"
    if ".." in text.split("/"):
        return f"{shown(text)} must not contain a '..' component"
    return None


def schedule(text: str) -> str | None:
    """A systemd calendar spec: one line of its characters, then systemd-analyze's verdict if present."""
    if not SCHEDULE_RE.fullmatch(text):
        return (f"{shown(text)} is not a systemd calendar spec (one line of letters, digits, blanks and "
                "* , - : / . ~ + _; e.g. 'daily' or '*:0/5')")
    return _systemd_analyze(text)


def _systemd_analyze(text: str) -> str | None:
    tool = which("systemd-analyze")
    if tool is None:
        return None
    try:
        result = run([tool, "calendar", "--", text], check=False, timeout=5,
                     env={"SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C"})
    except AppdebError:  # not runnable or too slow here: the node's systemd still refuses bad specs
        return None
    if result.returncode == 0:
        return None
    said = next((ln.strip() for ln in result.stdout.splitlines() if ln.strip()), "")
    return f"{shown(text)} is not a systemd calendar spec: {said[:200] or 'systemd-analyze refused it'}"
