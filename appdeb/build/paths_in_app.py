"""Paths app.yaml names must stay inside the app directory, even through symbolic links.

The build reads what these paths point at (a requirements file, a local package, static files):
a path that leads to /etc or to another checkout would feed the build machine's files into a
package or into the resolver. Each check returns a message or None, for the validator to report.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

from appdeb.build.rules import one_line, relative_path, shown

MAX_REQUIREMENTS = 1 << 20  # bytes of a requirements file
# the options that include another requirements file, each with its short form
INCLUDES = {"-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c"}
# the options a requirements line may give (spelled out), and what their value is: a file to include, a
# place to find wheels (a path in the app or a remote URL), a host, or none
OPTIONS = {**dict.fromkeys(INCLUDES, "include"),
           "-f": "place", "--find-links": "place", "-i": "place", "--index-url": "place", "--extra-index-url": "place",
           "--trusted-host": "host", "--no-index": "", "--pre": "", "--prefer-binary": "", "--require-hashes": ""}
ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_NAMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?=$|[\s\[<>=!~;@(,])")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
VCS = ("git+", "hg+", "svn+", "bzr+")
BUILT = ("would be built from source, running its build code as root: appdeb vendors wheels only (build a wheel, "
         "e.g. `pip wheel ./pkg -w wheels/` in CI, and require the .whl file in the app, or publish it to your index)")


def inside(app_dir: Path, path: str) -> str | None:
    """None when path (relative or absolute) resolves, symbolic links followed, inside app_dir."""
    root = app_dir.resolve()
    try:
        target = (root / os.path.expanduser(path)).resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic link loop
        return f"{shown(path)} cannot be resolved ({exc})"
    if target != root and root not in target.parents:
        return f"{shown(path)} leads outside the app directory"
    return None


def app_path(app_dir: Path, text: str) -> str | None:
    """A relative path of allow-listed characters that stays inside the app (static.dir, python.paths)."""
    return relative_path(text) or inside(app_dir, text)


def app_dir_path(app_dir: Path, text: str) -> str | None:
    """app_path, and a directory there."""
    problem = app_path(app_dir, text)
    if problem is None:
        try:
            found = (app_dir / text).is_dir()
        except OSError:
            found = False
        problem = None if found else f"{shown(text)} is not a directory in the app"
    return problem


def read_requirements(app_dir: Path, name: str) -> tuple[list[tuple[int, str]], str | None]:
    """(line number, requirement) pairs of a requirements file in the app, or a problem with the file."""
    problem = app_path(app_dir, name)
    if problem:
        return [], problem
    path = app_dir / name
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            return [], f"requirements file {shown(name)} is not a regular file"
        if st.st_size > MAX_REQUIREMENTS:
            return [], f"requirements file {shown(name)} is larger than 1 MiB"
        with path.open("rb") as f:
            data = f.read(MAX_REQUIREMENTS + 1)
    except FileNotFoundError:
        return [], f"requirements file {shown(name)} does not exist in {app_dir}"
    except OSError as exc:
        return [], f"requirements file {shown(name)} cannot be read ({exc.strerror})"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], f"requirements file {shown(name)} is not UTF-8 text"
    return _logical_lines(text), None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines as pip reads them: a final backslash joins the next line; comments and blanks dropped."""
    out: list[tuple[int, str]] = []
    start = 0
    parts: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if not parts:
            start = number
        line = raw.rstrip("\r")
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        joined = " ".join(p.strip() for p in (*parts, line)).strip()
        parts = []
        if joined and not joined.startswith("#"):
            out.append((start, joined))
    if parts:
        out.append((start, " ".join(p.strip() for p in parts).strip()))
    return out


def requirement(app_dir: Path, line: str) -> str | None:
    """One requirement line: one line of text, and every local path it names inside the app."""
    problem = one_line(line, allow="\t")
    if problem:
        return f"{shown(line)} {problem}"
    if "${" in line:
        return f"{shown(line)}: environment variables are not expanded in requirements; write the value"
    words = line.split()
    first = words[0]
    if first.startswith("-"):
        return _option(app_dir, words)
    if _NAMED.match(first) and not first.endswith(ARCHIVES):
        url = line.partition("@")[2].split()
        return (_local(app_dir, url[0]) or _built(url[0])) if url else None
    ref = re.split(r"[;\[#]", first, maxsplit=1)[0]
    return _local(app_dir, ref) or _built(ref)


def _built(ref: str) -> str | None:
    """A reference to anything but a wheel (a directory, an sdist, a VCS URL) is a source to build: its build
    backend is code of the app's choosing, which vendoring (as root, outside commands.build's confinement)
    must never run. A name from the index is only ever installed from a wheel (the installer's --no-build)."""
    path = unquote(urlsplit(ref).path) if _SCHEME.match(ref) else ref
    if ref.lower().startswith(VCS) or not path.lower().endswith(".whl"):
        return f"{shown(ref)} {BUILT}"
    return None


def _option(app_dir: Path, words: list[str]) -> str | None:
    """`-r FILE`, `--find-links=DIR`, `-i URL`…: only the options in OPTIONS, spelled out (pip takes any
    unique prefix, which a list of names would not see), and every value that is not a remote URL in the app.

    Any other option may change what vendoring does as root: `--no-binary` turns pip's source builds back
    on, `-e` is always one. A file included from a URL (`-r https://…`) cannot be checked: refused."""
    opt, _, glued = words[0].partition("=")
    if not glued and opt.startswith("-") and not opt.startswith("--") and len(opt) > 2:
        opt, glued = opt[:2], opt[2:]
    values = [glued] if glued else words[1:2]
    if opt in ("-e", "--editable"):  # an editable install is always a build, whatever it names
        return f"{shown(' '.join(words[:2]))} {BUILT}"
    if opt not in OPTIONS:
        return (f"{shown(opt)}: requirements may only give the options {', '.join(sorted(OPTIONS))}, spelled out "
                "(others change how vendoring installs, as root: --no-binary would build from source)")
    if OPTIONS[opt] == "include" and any("://" in v and not v.lower().startswith("file:") for v in values):
        return f"{shown(' '.join(words[:2]))}: a requirements file from a URL cannot be checked; copy it into the app"
    for value in values if OPTIONS[opt] in ("include", "place") else ():
        problem = _local(app_dir, value)
        if problem:
            return problem
    return None


def _local(app_dir: Path, ref: str) -> str | None:
    """A path or a file: URL must resolve inside the app; other URLs (https, git+https…) are remote."""
    if ref.lower().startswith("file:"):
        parts = urlsplit(ref)
        if parts.netloc not in ("", "localhost"):
            return f"{shown(ref)} names a file on another host"
        path = unquote(parts.path)
    elif _SCHEME.match(ref) and "://" in ref:
        return None
    else:
        path = ref
    if not path:
        return None
    problem = inside(app_dir, path)
    return f"local requirement {problem}; only paths inside the app can be vendored" if problem else None
