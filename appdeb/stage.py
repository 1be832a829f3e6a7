"""stage: lay out the package tree on disk — the app, the vendored libraries, the rendered files."""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AppdebError
from .plan import BuildPlan

if TYPE_CHECKING:
    from .render import RenderedFile

DEFAULT_EXCLUDES = (".git", ".hg", ".svn", ".appdeb", "dist", "__pycache__", "*.pyc", "*.pyo", ".venv",
                    "venv", ".tox", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.deb", "*.swp", ".DS_Store")


def app_files(app_dir: Path, excludes: tuple[str, ...]) -> Iterator[Path]:
    """The app's files to ship, relative to app_dir, in sorted order (excluded names pruned).

    Only regular files and symbolic links ship: reading a FIFO would hang the build forever and a
    device or socket has no content to package, so such an entry is an error naming its path.
    """
    patterns = (*DEFAULT_EXCLUDES, *excludes)
    for dirpath, dirnames, filenames in os.walk(app_dir):
        rel_dir = Path(dirpath).relative_to(app_dir)
        dirnames[:] = sorted(d for d in dirnames if not _excluded(rel_dir / d, patterns))
        for name in sorted(filenames):
            if not _excluded(rel_dir / name, patterns):
                _refuse_special(Path(dirpath, name))
                yield rel_dir / name


def _refuse_special(path: Path) -> None:
    mode = path.lstat().st_mode
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return
    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or special file"
    raise AppdebError(f"{path} is a {kind}, not a regular file: remove it from the app, or add it to "
                      "app.yaml's 'exclude:'")


def _excluded(rel: Path, patterns: tuple[str, ...]) -> bool:
    text = rel.as_posix()
    return any(fnmatch.fnmatch(rel.name, p) or fnmatch.fnmatch(text, p.rstrip("/")) for p in patterns)


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
    normalize(dest, plan.source_date_epoch)


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link the cached library tree (copy across filesystems): cheap on a warm build.

    Byte-code is skipped: `appdeb serve` runs from the same cache and Python writes it there.
    """
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dst, copy_function=link, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def normalize(root: Path, epoch: int) -> None:
    """Modes 0755/0644 and one timestamp everywhere, whatever the checkout or umask produced.

    The root too: it is the package's "./" entry, and a umask of 077 would make it 0700.
    """
    os.chmod(root, 0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                os.utime(path, (epoch, epoch), follow_symlinks=False)
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, 0o755 if mode & 0o111 else 0o644)
            os.utime(path, (epoch, epoch))
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)
    for dirpath, dirnames, _ in os.walk(root, topdown=False):
        for name in dirnames:
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def find_build_paths(root: Path, needles: list[str]) -> list[str]:
    """Files that still mention a build-machine path (they would break or leak on the node)."""
    raw = [n.encode() for n in needles if n and n != "/"]
    hits = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            if any(n in data for n in raw):
                hits.append(str(path.relative_to(root)))
    return sorted(hits)


def refuse_build_paths(root: Path, needles: list[str]) -> None:
    hits = find_build_paths(root, needles)
    if hits:
        shown = "\n  ".join(hits[:20])
        raise AppdebError(f"build paths would end up in the package ({len(hits)} files), e.g.:\n  {shown}\n"
                          "remove them from the app (or exclude the files in app.yaml's 'exclude:')")
