"""deb: the .deb straight from the manifest (zstd), no staged tree: ar(debian-binary, control, data).

What dpkg-deb --root-owner-group -Zzstd --build would write for the staged tree, member for member:
the same ar headers (mtime SOURCE_DATE_EPOCH, root, 0644), a control.tar.zst of ./ and the control
files, md5sums and Installed-Size counted as write_control_extras counts them. data.tar.zst holds the
same members with the same metadata as dpkg-deb's (the staged tree's libraries are dated LIB_MTIME too),
but in two parts (the package's own, then the libraries') and as one zstd frame joined from two
compressions (payload.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appdeb.build.assemble import control_extras, deb_filename
from appdeb.build.bytecode import Compiler, cached_name, compile_sources, split_app
from appdeb.build.manifest import Entry, from_disk, order, rendered, with_directories
from appdeb.build.payload import Data, compressed_tar, data_tar, library_segment, segment, write_all
from appdeb.build.plan import BuildPlan
from appdeb.build.stage import BuildPathHit, app_files, comment_free, file_hits, refuse_hits
from appdeb.errors import AppdebError

if TYPE_CHECKING:
    from appdeb.build.render import RenderedFile


@dataclass(frozen=True)
class Inputs:
    """Where the package's files come from: the app (after a build step), the cached libraries."""

    app_dir: Path
    lib: Path
    vendor_key: str  # the vendored tree's content digest (VendorResult.tree)
    needles: list[str]  # build-machine paths that must not ship
    made_now: list[str]  # and those made by this build, which the cached libraries cannot contain
    comments_ok: frozenset[str]  # requirements files, whose comments are not checked
    compiler: Compiler | None = None  # compiles the byte code that ships (bytecode.py), if any
    # asked just before the .deb gets its name; raising leaves nothing (the build's checks that run
    # alongside the writing, such as the web app's interface, answer here)
    gate: Callable[[], object] | None = None


def write_deb(plan: BuildPlan, files: dict[str, RenderedFile], inputs: Inputs, out_dir: Path, cache: Path) -> Path:
    """Write the .deb into out_dir atomically (temporary name, then rename)."""
    with tempfile.TemporaryDirectory(prefix="appdeb-deb-") as tmp:
        return _write_deb(plan, files, inputs, out_dir, cache, Path(tmp))


def app_byte_code(plan: BuildPlan, entries: list[Entry], compiler: Compiler, tmp: Path) -> list[Entry]:
    """Byte code of the app's and appdeb's own sources under /opt/PKG (libraries aside), compiled into tmp."""
    root, lib = plan.paths.root[1:] + "/", plan.paths.lib[1:] + "/"
    sources = []
    for e in entries:
        if e.kind == "file" and e.path.startswith(root) and not e.path.startswith(lib) and e.path.endswith(".py") \
                and len(e.path.rpartition("/")[2]) > 3:
            if e.source is None:  # rendered: compiled from a copy of its bytes
                (tmp / "src" / e.path).parent.mkdir(parents=True, exist_ok=True)
                (tmp / "src" / e.path).write_bytes(e.data())
            sources.append((e.path, e.source or tmp / "src" / e.path))
    for part in split_app(sources, plan.paths.app):
        compile_sources(compiler, part, tmp / "pyc", keep=True)
    made = [cached_name(path, compiler.tag) for path, _ in sources]
    return [from_disk(pyc, tmp / "pyc" / pyc, plan.source_date_epoch) for pyc in made if (tmp / "pyc" / pyc).is_file()]


def _write_deb(plan: BuildPlan, files: dict[str, RenderedFile], inputs: Inputs, out_dir: Path, cache: Path,
               tmp: Path) -> Path:
    epoch, prefix = plan.source_date_epoch, plan.paths.lib[1:]
    control = {p[len("DEBIAN/"):]: f for p, f in files.items() if p.startswith("DEBIAN/")}
    rest = [from_disk(f"{plan.paths.app[1:]}/{rel.as_posix()}", inputs.app_dir / rel, epoch)
            for rel in app_files(inputs.app_dir, plan.spec.exclude)]
    rest += [rendered(p, f.content, f.mode, epoch) for p, f in files.items()
             if not p.startswith("DEBIAN/")]
    compiled = app_byte_code(plan, rest, inputs.compiler, tmp) if inputs.compiler is not None else []
    rest += compiled
    unscanned = {e.path for e in compiled}  # byte code repeats its source's strings: the source is named
    entries = with_directories([*rest, Entry(prefix, "dir", 0o755, epoch)], epoch)
    if any(e.path.startswith(prefix + "/") for e in entries):
        raise AppdebError(f"the app's files or rendered files fall inside the vendored library directory /{prefix}")
    needles = sorted({n for n in [*inputs.needles, *inputs.made_now] if n and n != "/"}, key=len, reverse=True)
    lib, lib_hits = library_segment(inputs.lib, inputs.vendor_key, prefix, cache,
                                    [n for n in needles if n not in inputs.made_now], inputs.compiler)
    # dpkg-deb's order within each part: directories and files, then every symbolic link; the package's own
    # part first (its directories include the libraries' parents), then the libraries' (payload.py)
    own_entries = [e for e in entries if e.kind != "link" and e.path != prefix]
    own_entries += sorted((e for e in entries if e.kind == "link"), key=lambda e: order(e.path))
    seen: list[tuple[Entry, bytes]] = []
    own = segment(own_entries, seen)
    hits = [BuildPathHit(p, line, n) for p, line, n in lib_hits]
    for entry, data in [e for e in seen if e[0].path not in unscanned]:
        raw = entry.target.encode() if entry.kind == "link" else data
        raw = comment_free(raw) if entry.path in inputs.comments_ok else raw
        hits += [BuildPathHit(entry.path, 0 if entry.kind == "link" else line, n)
                 for line, n in file_hits(raw, needles)]
    refuse_hits(hits)
    parts = (own, lib)
    sums = sorted(row for p in parts for row in p.md5sums)
    size_kib = sum(p.size_kib for p in parts) + 1  # + DEBIAN, as dpkg-deb's staged tree counted it
    control_tar = tmp / "control.tar.zst"
    _control_tar(control, sums, size_kib, epoch, control_tar)
    payload = data_tar(own, lib, tmp)
    if inputs.gate is not None:
        inputs.gate()
    return _write_ar(plan, out_dir, control_tar.read_bytes(), payload)


def _control_tar(control: dict[str, RenderedFile], sums: list[tuple[str, str]], size_kib: int, epoch: int,
                 dest: Path) -> None:
    text, md5sums = control_extras(control["control"].content.decode(), sums, size_kib)
    files = {**{name: (f.content, f.mode) for name, f in control.items()},
             "control": (text.encode(), 0o644), "md5sums": (md5sums.encode(), 0o644)}
    named = sorted(files.items(), key=lambda item: order(item[0]))
    compressed_tar([Entry("", "dir", 0o755, epoch)] + [rendered(n, data, mode, epoch) for n, (data, mode) in named],
                   dest)


def _ar_header(name: str, size: int, epoch: int) -> bytes:
    return f"{name:<16}{epoch:<12}{0:<6}{0:<6}{'100644':<8}{size:<10}`\n".encode()


def _write_ar(plan: BuildPlan, out_dir: Path, control: bytes, data: Data) -> Path:
    """The ar archive dpkg-deb writes: debian-binary, control, data (each padded to an even size)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / deb_filename(plan)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=out_dir)
    epoch = plan.source_date_epoch
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            write_all(out.fileno(), b"!<arch>\n" + _ar_header("debian-binary", 4, epoch) + b"2.0\n"
                      + _ar_header("control.tar.zst", len(control), epoch) + control + b"\n" * (len(control) % 2)
                      + _ar_header("data.tar.zst", data.size, epoch))
            data.write(out.fileno())
            write_all(out.fileno(), b"\n" * (data.size % 2))
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return final
