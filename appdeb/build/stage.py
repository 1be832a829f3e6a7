"""stage: lay out the package tree on disk — the app, the vendored libraries, the rendered files."""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from appdeb.build.manifest import LIB_MTIME, file_mode, refuse_unpackable
from appdeb.build.plan import BuildPlan
from appdeb.build.rules import shown
from appdeb.errors import AppdebError
from appdeb.files import walk

if TYPE_CHECKING:
    from appdeb.build.render import RenderedFile

MAX_DEPTH = 100  # levels of directories in an app: dozens are plenty (node_modules), a thousand crash os.makedirs
DEFAULT_EXCLUDES = (".git", ".hg", ".svn", ".appdeb", "dist", "__pycache__", "*.pyc", "*.pyo", ".venv",
                    "venv", ".tox", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.deb", "*.swp", ".DS_Store")


def app_files(app_dir: Path, excludes: tuple[str, ...]) -> Iterator[Path]:
    """The app's files to ship, relative to app_dir, in sorted order (excluded names pruned).

    Only regular files and symbolic links ship: reading a FIFO would hang the build forever and a
    device or socket has no content to package, so such an entry is an error naming its path.
    """
    for rel in _walk(app_dir, (*DEFAULT_EXCLUDES, *excludes), ()):
        refuse_unpackable(rel.as_posix(), app_dir / rel, confine=True)
        yield rel


def build_inputs(app_dir: Path, excludes: tuple[str, ...]) -> Iterator[Path]:
    """What a build step sees: the app's files, also those `exclude:` keeps out of the package (the
    sources a build turns into shipped files); only DEFAULT_EXCLUDES (.git, .venv, dist …) stay out.
    A FIFO, socket or device is skipped where `exclude:` names it, refused otherwise, as in app_files."""
    yield from _walk(app_dir, DEFAULT_EXCLUDES, excludes)


def _walk(app_dir: Path, prune: tuple[str, ...], skip_special: tuple[str, ...]) -> Iterator[Path]:
    pruned, skipped = excluder(prune), excluder(skip_special)
    for dirpath, dirnames, filenames in walk(app_dir):
        rel_dir = Path(dirpath).relative_to(app_dir)
        # a link to a directory is an entry like a link to a file (shipped as a link, or refused where it
        # leads out): the walk lists it among the directories and, not entering it, would drop it unseen
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in links and not pruned(rel_dir / d))
        if dirnames and len(rel_dir.parts) >= MAX_DEPTH:  # (what is excluded may nest deeper: it is not walked)
            raise AppdebError(f"{shown(str(rel_dir / dirnames[0]))}: the app's directories nest more than "
                              f"{MAX_DEPTH} deep; no package needs that (and building every path would recurse)")
        for name in sorted([*filenames, *links]):
            rel = rel_dir / name
            if pruned(rel):
                continue
            if skip_special and _special(Path(dirpath, name)) and any(
                    skipped(Path(*rel.parts[: i + 1])) for i in range(len(rel.parts))):
                continue
            _refuse_special(Path(dirpath, name))
            yield rel


def _special(path: Path) -> bool:
    mode = path.lstat().st_mode
    return not (stat.S_ISREG(mode) or stat.S_ISLNK(mode))


def _refuse_special(path: Path) -> None:
    mode = path.lstat().st_mode
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return
    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or special file"
    raise AppdebError(f"{path} is a {kind}, not a regular file: remove it from the app, or add it to "
                      "app.yaml's 'exclude:'")


def excluder(patterns: tuple[str, ...]) -> Callable[[Path], bool]:
    """Whether a path (relative to the app) is excluded: its name or its whole path matches a pattern
    (as fnmatch matches; a pattern's trailing '/' is dropped for the path).

    The patterns become two regular expressions, compiled once per set of patterns and only when
    needed: a build walks the app several times, and matching each pattern per file costs much more.
    """
    if not patterns:
        return lambda rel: False
    return lambda rel: bool(_pattern(patterns, False).match(rel.name)
                            or _pattern(patterns, True).match(rel.as_posix()))


@functools.lru_cache(maxsize=8)
def _pattern(patterns: tuple[str, ...], whole_path: bool) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(p.rstrip("/") if whole_path else p) for p in patterns))


def stage(plan: BuildPlan, lib: Path, files: dict[str, RenderedFile], dest: Path) -> None:
    """Write the whole package tree under dest (which must be empty)."""
    app_root = dest / plan.paths.app[1:]
    for rel in app_files(plan.spec.app_dir, plan.spec.exclude):
        target = app_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(plan.spec.app_dir / rel, target, follow_symlinks=False)
    _link_tree(lib, dest / plan.paths.lib[1:])
    for rel_path, rendered in files.items():
        target = dest / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rendered.content)
        target.chmod(rendered.mode)
    normalize(dest, plan.source_date_epoch, plan.paths.lib[1:])


def _link_tree(src: Path, dst: Path) -> None:
    """Copy the cached library tree (the zstd default never stages it: see deb.py).

    Copies, not hard links: normalize() sets modes and timestamps, and on a hard link that would
    rewrite the cache's own files. Byte-code and uv's .lock are skipped, as deb.py skips them.
    """
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dst / ".lock").unlink(missing_ok=True)


def normalize(root: Path, epoch: int, lib: str) -> None:
    """Modes 0755/0644 and one timestamp everywhere, whatever the checkout or umask produced.

    The root too: it is the package's "./" entry, and a umask of 077 would make it 0700. File modes
    follow manifest.file_mode, as the direct writer's do; the vendored libraries (lib, relative to
    root) are dated LIB_MTIME, as the direct writer dates them.
    """
    os.chmod(root, 0o755)
    for dirpath, dirnames, filenames in walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                os.utime(path, (epoch, epoch), follow_symlinks=False)
                continue
            os.chmod(path, file_mode(name, os.stat(path).st_mode))
            os.utime(path, (epoch, epoch))
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)
    for dirpath, dirnames, _ in walk(root, topdown=False):
        for name in dirnames:
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))
    if (root / lib).is_dir():
        for dirpath, dirnames, filenames in walk(root / lib, topdown=False):
            for name in [*filenames, *dirnames]:
                os.utime(os.path.join(dirpath, name), (LIB_MTIME, LIB_MTIME), follow_symlinks=False)
        os.utime(root / lib, (LIB_MTIME, LIB_MTIME))


@dataclass(frozen=True)
class BuildPathHit:
    """A build-machine path found in the package tree: where, and which one."""

    path: str  # relative to the package root
    line: int  # 1-based; 0 for a symbolic link's target
    needle: str

    def __str__(self) -> str:
        where = f"{self.path} (symbolic link)" if self.line == 0 else f"{self.path}:{self.line}"
        return f"{where}: {self.needle!r}"


MAX_HITS = 200  # enough to show and count; a tree full of them need not be scanned to the end


def comment_free(data: bytes) -> bytes:
    """A requirements file with its comments blanked, lines kept: what pip reads of it.

    `uv pip compile -o /abs/path` and pip-compile write the command line and `# via` notes there;
    the installer ignores them and nothing on the node reads them, so they cannot leak or break.
    """
    return b"\n".join(re.sub(rb"(^|\s)#.*$", b"", line) for line in data.split(b"\n"))


def find_build_paths(root: Path, needles: list[str], comments_ok: frozenset[str] = frozenset()) -> list[BuildPathHit]:
    """Every line of the tree that still mentions a build-machine path (it would break or leak on the node).

    comments_ok: requirements files (relative to root) whose comment text is not checked.
    """
    raw = sorted({n for n in needles if n and n != "/"}, key=len, reverse=True)
    hits: list[BuildPathHit] = []
    for dirpath, _, filenames in walk(root):
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            link = path.is_symlink()
            data = os.readlink(path).encode() if link else path.read_bytes()
            if rel in comments_ok:
                data = comment_free(data)
            hits.extend(BuildPathHit(rel, 0 if link else line, needle) for line, needle in file_hits(data, raw))
            if len(hits) >= MAX_HITS:
                return sorted(hits, key=lambda h: (h.path, h.line))
    return sorted(hits, key=lambda h: (h.path, h.line))


def file_hits(data: bytes, needles: list[str]) -> list[tuple[int, str]]:
    """(line, needle) per line that contains one; needles come longest first, so a directory found
    inside a longer match (the stage dir inside the package root's path) is not reported twice."""
    spans: list[tuple[int, int]] = []
    found: dict[tuple[int, str], None] = {}
    for needle in needles:
        raw = needle.encode()
        at = data.find(raw)
        while at != -1:
            if not any(start <= at < end for start, end in spans):
                spans.append((at, at + len(raw)))
                found[(data.count(b"\n", 0, at) + 1, needle)] = None
            at = data.find(raw, at + 1)
    return sorted(found)


def refuse_build_paths(root: Path, needles: list[str], comments_ok: frozenset[str] = frozenset()) -> None:
    """Stop the build, naming each file:line and the path found there, before a .deb is written."""
    refuse_hits(find_build_paths(root, needles, comments_ok))


def refuse_hits(found: list[BuildPathHit]) -> None:
    """Stop the build when any build path was found (sorted by file and line, the first 20 shown)."""
    hits = sorted(found, key=lambda h: (h.path, h.line))
    if hits:
        files = len({h.path for h in hits})
        shown = "\n  ".join(str(h) for h in hits[:20])
        more = f"\n  … and {len(hits) - 20} more" if len(hits) > 20 else ""
        count = f"{'at least ' if len(hits) >= MAX_HITS else ''}{len(hits)} lines in {files} files"
        raise AppdebError(f"build paths would end up in the package ({count}):\n  "
                          f"{shown}{more}\nremove them from the app (or exclude the files in app.yaml's 'exclude:')")


def requirement_files(plan: BuildPlan) -> frozenset[str]:
    """Package paths of the app's requirements files: the one require.pip names and the *.txt/*.in
    files it includes; their comments are the resolver's notes (see comment_free)."""
    req = plan.spec.require
    included = [p for p in req.included if p.endswith((".txt", ".in"))]
    names = [req.pip_file, *included] if req.pip_file else included
    return frozenset(str(PurePosixPath(plan.paths.app[1:], name)) for name in names)
