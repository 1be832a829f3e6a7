"""Requirement lines as pip reads them: the projects they name and the requirement files they pull in.

The build needs three answers from the app's requirements: which projects the app chose itself (a
platform package such as gunicorn is then the app's to pin), which files hold them (their comment
lines are the resolver's notes, not shipped paths), and what a cache key must cover (an included
file's content decides the result as much as the lines that name it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from appdeb.build.paths_in_app import ARCHIVES, INCLUDES, read_requirements

MAX_INCLUDED = 64  # files followed from one app: a cycle or a fan-out stops here
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_EGG = re.compile(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Included:
    """A requirement or constraint file pulled in by `-r`/`-c`, relative to the app directory."""

    kind: str  # "-r" or "-c"
    path: str


def normalize(name: str) -> str:
    """PEP 503's normal form: `Gunicorn`, `gunicorn` and `GUNICORN` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_name(line: str) -> str | None:
    """The normalized project a requirement line names (`name[extra]>=1; marker`, `name @ url`,
    `url#egg=name`), or None for options, comments and unnamed paths or URLs."""
    text = line.strip()
    first = text.split()[0] if text else ""
    if not first or first.startswith("#"):
        return None
    egg = _EGG.search(text)
    if first.startswith("-"):
        return normalize(egg.group(1)) if egg and first.startswith(("-e", "--editable")) else None
    if egg:
        return normalize(egg.group(1))
    match = _NAME.match(text)
    if match is None or text[match.end():][:1] in ("/", ":") or first.endswith(ARCHIVES):
        return None  # a path (pkg/), a URL (https:…) or an archive (pkg-1.0.tar.gz)
    return normalize(match.group(0))


def include_of(line: str) -> tuple[str, str] | None:
    """(`-r` or `-c`, path) when the line includes another local file; None for anything else."""
    words = line.split()
    if not words:
        return None
    opt, _, glued = words[0].partition("=")
    if not glued and opt.startswith("-") and not opt.startswith("--") and len(opt) > 2:
        opt, glued = opt[:2], opt[2:]
    value = glued or (words[1] if len(words) > 1 else "")
    if opt not in INCLUDES or not value or "://" in value:
        return None
    return INCLUDES[opt], value.removeprefix("file:")


def rebase(lines: tuple[str, ...], base: str) -> tuple[str, ...]:
    """The lines with each relative `-r`/`-c` path made relative to the app directory instead of to
    `base` (the directory of the requirements file they were read from), as pip would read them."""
    if base in ("", "."):
        return lines
    out = []
    for line in lines:
        inc = include_of(line)
        if inc and not inc[1].startswith("/"):
            line = f"{inc[0]} {PurePosixPath(base) / inc[1]}"
        out.append(line)
    return tuple(out)


def absolute(lines: tuple[str, ...], app_dir: Path) -> tuple[str, ...]:
    """The lines with relative `-r`/`-c` paths made absolute, for a requirements file written elsewhere."""
    return tuple(f"{inc[0]} {app_dir / inc[1]}" if (inc := include_of(line)) and not inc[1].startswith("/")
                 else line for line in lines)


def included_files(app_dir: Path, lines: tuple[str, ...]) -> tuple[Included, ...]:
    """Every file the lines include, followed recursively as pip does (a nested file's own `-r` is
    relative to that file); the top-level lines' are relative to the app directory. Files that
    cannot be read or lead outside the app are left to the validator and the installer."""
    found: list[Included] = []
    queue = [(kind, PurePosixPath(path)) for kind, path in filter(None, map(include_of, lines))]
    while queue and len(found) < MAX_INCLUDED:
        kind, path = queue.pop(0)
        rel = _app_relative(app_dir, path)
        if rel is None or any(f.path == rel for f in found):
            continue
        found.append(Included(kind, rel))
        numbered, problem = read_requirements(app_dir, rel)
        if problem:
            continue
        for _, line in numbered:
            nested = include_of(line)
            if nested:
                nested_kind = "-c" if kind == "-c" else nested[0]
                queue.append((nested_kind, PurePosixPath(rel).parent / nested[1]))
    return tuple(found)


def _app_relative(app_dir: Path, path: PurePosixPath) -> str | None:
    """The path relative to the app (an absolute path must lie inside it), normalized; None otherwise."""
    if path.is_absolute():
        try:
            path = PurePosixPath(path.relative_to(PurePosixPath(app_dir)))
        except ValueError:
            return None
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts) or None


def app_projects(app_dir: Path, lines: tuple[str, ...],
                 included: tuple[Included, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(projects the app requires, projects it only constrains), normalized and sorted, counting its
    included files too: what the app chose for itself."""
    required = {n for n in map(project_name, lines) if n}
    constrained: set[str] = set()
    for inc in included:
        numbered, problem = read_requirements(app_dir, inc.path)
        names = {n for n in (project_name(line) for _, line in numbered) if n} if not problem else set()
        (constrained if inc.kind == "-c" else required).update(names)
    return tuple(sorted(required)), tuple(sorted(constrained - required))


_PIN = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*===?\s*([A-Za-z0-9.!+_-]+)")
_HASH = re.compile(r"\s--hash[=\s]\S+")
PIN_OPTIONS = ("-r", "-c", "--requirement", "--constraint", "--require-hashes")


def pins(app_dir: Path, lines: tuple[str, ...]) -> dict[str, str] | None:
    """{project: version} when every line, and every line of the files they include, is an exact pin
    (`name==1.2`, extras, a marker and `--hash` allowed) or an include; None when anything is open
    (a range, a URL, a path, an index option), or a file cannot be read. Exact pins are what makes
    resolving from the installer's cache alone give the same tree as asking the index."""
    found: dict[str, str] = {}
    texts = list(lines)
    for inc in included_files(app_dir, lines):
        numbered, problem = read_requirements(app_dir, inc.path)
        if problem:
            return None
        texts.extend(line for _, line in numbered)
    for line in texts:
        first = line.split()[0]
        if first.startswith("-"):
            if first.partition("=")[0] not in PIN_OPTIONS and first[:2] not in ("-r", "-c"):
                return None
            continue
        requirement = _HASH.sub("", " " + line).split(";", 1)[0].strip()
        match = _PIN.fullmatch(requirement)
        if match is None:
            return None
        found[normalize(match.group(1))] = match.group(2)
    return found
