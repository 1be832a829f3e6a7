"""manifest: every entry of the package's data.tar, in dpkg-deb's order, without a staged tree.

The app's files and the rendered ones are read where they are; the vendored libraries are listed
from the cache and never touched (a staged tree of hard links shared their inodes with the cache,
so setting modes and timestamps there rewrote the cache's own files). Modes are 0755/0644 by the
executable bit, as normalize() makes them; the owner is root (dpkg-deb --root-owner-group).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.files import walk

SKIPPED_IN_LIB = ("__pycache__",)
# The vendored libraries' timestamp, whatever the build's SOURCE_DATE_EPOCH: their members then depend only
# on the vendored tree, so their compressed bytes are made once and reused (payload.py). 1980-01-01, the
# earliest time a ZIP archive (a wheel) can hold.
LIB_MTIME = 315532800


@dataclass(frozen=True)
class Entry:
    """One tar member: its path in the package ("opt/x/app/a.py"; "" is the root), what it is, where
    its bytes come from (a file to read, rendered content, or a link target)."""

    path: str
    kind: str  # "dir" | "file" | "link"
    mode: int
    mtime: int
    source: Path | None = None
    content: bytes | None = None
    target: str = ""

    def size(self) -> int:
        if self.kind != "file":
            return 0
        return len(self.content) if self.content is not None else os.stat(self.source or "").st_size

    def data(self) -> bytes:
        if self.content is not None:
            return self.content
        return Path(self.source or "").read_bytes()


SHARED_LIBRARY_RE = re.compile(r".+\.so(\.[0-9]+)*")


def file_mode(name: str, mode: int) -> int:
    """The one mode rule for a packaged file: 0755 if executable, else 0644. Shared libraries are 0644
    (Debian policy 8.1; the loader maps them without the execute bit) even where a wheel bundles them
    executable."""
    return 0o755 if mode & 0o111 and not SHARED_LIBRARY_RE.fullmatch(name) else 0o644


def refuse_unpackable(rel: str, full: Path, confine: bool) -> None:
    """Refuse what dpkg or a node cannot take safely, naming the file: a newline or a name that is not
    UTF-8 (dpkg-deb refuses the first, and md5sums lines would split), and, in the app (`confine`), a
    symbolic link that is absolute or climbs out of the app: dpkg keeps an existing link where a later
    release ships a directory, so root would unpack that release's files wherever the link points."""
    target = os.readlink(full) if full.is_symlink() else None
    shown = os.fsencode(full).decode("utf-8", "backslashreplace").replace("\n", "\\n").replace("\r", "\\r")
    for what, text in (("name", rel), ("link target", target or "")):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise AppdebError(f"{shown}: its {what} is not UTF-8: rename it") from None
        if "\n" in text or "\r" in text:
            raise AppdebError(f"{shown}: its {what} contains a line break: rename it")
    if confine and target is not None:
        where = os.path.normpath(os.path.join(os.path.dirname(rel), target))
        if os.path.isabs(target) or where == ".." or where.startswith("../") or not _resolves_inside(rel, full):
            raise AppdebError(f"{shown}: a symbolic link to {target!r}, outside the app: a package may only "
                              "link inside itself (make it relative, or ship a copy of the file)")


def _resolves_inside(rel: str, full: Path) -> bool:
    """Does the link, followed through every link it meets (all of them the app's own), end in the app?
    A chain of links that each read as inside (`same -> .`, `up -> same/..`) can still climb out."""
    root = full
    for _ in Path(rel).parts:
        root = root.parent
    base, real = os.path.realpath(root), os.path.realpath(full)
    return real == base or real.startswith(base + os.sep)


def order(path: str) -> tuple[str, ...]:
    """dpkg-deb's order: a directory, then its children sorted by name (a path's components compared)."""
    return tuple(path.split("/")) if path else ()


def from_disk(package_path: str, source: Path, mtime: int) -> Entry:
    """A file or symbolic link read from disk, with the normalized mode (never following a link)."""
    st = source.lstat()
    if stat.S_ISLNK(st.st_mode):
        return Entry(package_path, "link", 0o777, mtime, target=os.readlink(source))
    return Entry(package_path, "file", file_mode(source.name, st.st_mode), mtime, source=source)


def rendered(package_path: str, content: bytes, mode: int, mtime: int) -> Entry:
    return Entry(package_path, "file", 0o755 if mode & 0o111 else 0o644, mtime, content=content)


def libraries(lib: Path, prefix: str, mtime: int, byte_code: Path | None = None) -> Iterator[Entry]:
    """The cached library tree under prefix (its directory first), its byte code and uv's .lock left out;
    byte_code: a tree of the same shape holding only __pycache__ directories, whose files ship instead."""
    yield Entry(prefix, "dir", 0o755, mtime)
    for dirpath, dirnames, filenames in walk(lib):
        rel_dir = os.path.relpath(dirpath, lib)
        base = prefix if rel_dir == "." else f"{prefix}/{rel_dir}"
        compiled = byte_code / rel_dir / "__pycache__" if byte_code is not None else None
        if compiled is not None and compiled.is_dir() and not compiled.is_symlink():
            yield Entry(f"{base}/__pycache__", "dir", 0o755, mtime)
            yield from (from_disk(f"{base}/__pycache__/{n}", compiled / n, mtime) for n in sorted(os.listdir(compiled)))
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_IN_LIB)
        names = sorted(dirnames + [f for f in filenames if not f.endswith(".pyc")
                                   and not (rel_dir == "." and f == ".lock")])
        for name in names:
            full = Path(dirpath, name)
            refuse_unpackable(f"{rel_dir}/{name}", full, confine=False)
            if name in dirnames and not full.is_symlink():
                yield Entry(f"{base}/{name}", "dir", 0o755, mtime)
            else:
                yield from_disk(f"{base}/{name}", full, mtime)


def with_directories(entries: Iterable[Entry], mtime: int) -> list[Entry]:
    """The entries, each missing parent directory added (0755), in dpkg-deb's order; a later entry for
    the same path replaces an earlier one (a rendered file wins over the app's file of that name)."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        by_path[entry.path] = entry
        parent = entry.path
        while parent:
            parent = parent.rpartition("/")[0]
            if parent in by_path:
                break
            by_path[parent] = Entry(parent, "dir", 0o755, mtime)
    return sorted(by_path.values(), key=lambda e: order(e.path))
