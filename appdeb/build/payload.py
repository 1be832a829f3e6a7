"""payload: data.tar.zst written straight from the manifest, the vendored libraries from a cached segment.

The members are written exactly as dpkg-deb --root-owner-group writes them (GNU tar headers, root/root,
dpkg-deb's order, 10240-byte records) and compressed as dpkg-deb -Zzstd compresses (level 3, one
streamed frame: dpkg reads only the first frame of a member), so the .deb is byte for byte the one
dpkg-deb builds from the staged tree. The libraries' members depend only on the vendored tree, their
path in the package and the timestamp, so they are written once and kept, uncompressed, with their
md5sums and Installed-Size share under ~/.cache/appdeb/payload; a build patches each header's mtime
(and checksum) to its SOURCE_DATE_EPOCH while streaming the segment to zstd. The cache's library
tree is only ever read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from appdeb.build.bytecode import Compiler, compile_sources, in_test_suite, is_source
from appdeb.build.manifest import SKIPPED_IN_LIB, Entry, libraries
from appdeb.build.stage import file_hits
from appdeb.runner import filter_to, which

FORMAT = "payload-6"  # bump when the bytes of a segment change for the same inputs
ZSTD = ("zstd", "-3", "-T0", "-q", "-c")  # multi-threaded: the same bytes for any thread count, as dpkg-deb
BLOCK, RECORD, CHUNK = 512, 10240, 1 << 20
ONE_CALL = 128 << 10  # ZSTD_CStreamInSize(): dpkg-deb's read size
MTIME, CHKSUM = slice(136, 148), slice(148, 156)  # a tar header's fields


@dataclass(frozen=True)
class Segment:
    """A run of tar members and what they contribute to the control area."""

    tar: bytes | Path  # the members, or the cached file holding them
    tar_size: int
    md5sums: tuple[tuple[str, str], ...]  # (path, md5) of every regular file
    size_kib: int  # Installed-Size's share: 1 per directory and link, file sizes rounded up
    mtime: int = 0  # the timestamp the cached members carry
    headers: tuple[int, ...] = ()  # offsets of the members' own headers (not GNU long-name ones)
    needles_clean: frozenset[str] = frozenset()  # build paths known to appear in none of its files
    links: tuple[tuple[str, str], ...] = ()  # (path, target): dpkg-deb puts symbolic links last


def available() -> bool:
    """Whether the zstd program is there (else the staged tree goes through dpkg-deb)."""
    return which("zstd") is not None


def header(entry: Entry, size: int) -> bytes:
    info = tarfile.TarInfo("./" if not entry.path else f"./{entry.path}/" if entry.kind == "dir"
                           else f"./{entry.path}")
    info.type = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "link": tarfile.SYMTYPE}[entry.kind]
    info.mode, info.mtime, info.size, info.linkname = entry.mode, entry.mtime, size, entry.target
    info.uname = info.gname = "root"
    return _long_names_as_dpkg(bytearray(info.tobuf(tarfile.GNU_FORMAT)))


def _long_names_as_dpkg(buf: bytearray) -> bytes:
    """GNU long-name headers (a path or link target over 100 bytes) as dpkg-deb writes them: mode 0644
    and root/root, where Python's tarfile leaves them 0 and empty."""
    at = 0
    while buf[at:at + 13] == b"././@LongLink":
        buf[at + 100:at + 108] = b"0000644\0"
        buf[at + 265:at + 297] = b"root".ljust(32, b"\0")
        buf[at + 297:at + 329] = b"root".ljust(32, b"\0")
        buf[at + CHKSUM.start:at + CHKSUM.stop] = b" " * 8
        buf[at + CHKSUM.start:at + CHKSUM.stop] = b"%06o\0 " % sum(buf[at:at + BLOCK])
        at += BLOCK + -(-int(buf[at + 124:at + 135], 8) // BLOCK) * BLOCK
    return bytes(buf)


def segment(entries: Iterable[Entry], seen: list[tuple[Entry, bytes]], mtime: int) -> Segment:
    """The tar members of the entries (all dated mtime) in memory; each file's bytes also go to seen."""
    chunks, headers, offset = [], [], 0
    for entry in entries:
        data = entry.data() if entry.kind == "file" else b""
        head = header(entry, len(data))
        headers.append(offset + len(head) - BLOCK)
        chunks += [head, data, b"\0" * (-len(data) % BLOCK)]
        offset += len(head) + len(data) + (-len(data) % BLOCK)
        seen.append((entry, data))
    sums = tuple((e.path, hashlib.md5(data).hexdigest()) for e, data in seen if e.kind == "file")
    size = sum((len(d) + 1023) // 1024 if e.kind == "file" else 1 for e, d in seen if e.path)
    return Segment(b"".join(chunks), offset, sums, size, mtime, tuple(headers))


def restamped(seg: Segment, mtime: int) -> Iterator[bytes]:
    """The cached segment's bytes with every member's mtime set to mtime and its header checksum to match
    (the checksum is the sum of the header's bytes, so it moves by the difference of the two fields)."""
    old, new = b"%011o\0" % seg.mtime, b"%011o\0" % mtime
    delta = sum(new) - sum(old)
    at, pos = 0, 0
    with open(seg.tar, "rb") as f:
        for raw in iter(lambda: f.read(CHUNK), b""):
            chunk = bytearray(raw)
            while at < len(seg.headers) and seg.headers[at] < pos + len(chunk):
                h = seg.headers[at] - pos
                chunk[h + MTIME.start:h + MTIME.stop] = new
                chunk[h + CHKSUM.start:h + CHKSUM.stop] = b"%06o\0 " % (int(chunk[h + 148:h + 154], 8) + delta)
                at += 1
            pos += len(chunk)
            yield bytes(chunk)


def write_data(parts: list[tuple[Segment, int]], dest: Path) -> None:
    """The segments (each restamped to its mtime) and the end of the archive through zstd.

    As dpkg-deb compresses: an archive up to one zstd input buffer (128 KiB) in one call, its size
    in the frame header (zstd reads it from a file); a longer one streamed (zstd reads a pipe)."""
    length = sum(seg.tar_size for seg, _ in parts) + 2 * BLOCK
    end = b"\0" * (2 * BLOCK + (-length % RECORD))

    def chunks() -> Iterator[bytes]:
        for seg, mtime in parts:
            yield from (restamped(seg, mtime) if seg.mtime != mtime else _raw(seg))
        yield end
    with dest.open("wb") as out:
        if length + len(end) - 2 * BLOCK > ONE_CALL:
            filter_to(list(ZSTD), chunks(), out)
            return
        whole = dest.with_name(dest.name + ".tar")
        whole.write_bytes(b"".join(chunks()))
        filter_to([*ZSTD, str(whole)], [], out)


def compressed_tar(entries: list[Entry], mtime: int, dest: Path) -> None:
    """A whole small archive (control.tar.zst) from its entries."""
    write_data([(segment(entries, [], mtime), mtime)], dest)


def _raw(seg: Segment) -> Iterator[bytes]:
    if isinstance(seg.tar, bytes):
        yield seg.tar
        return
    with open(seg.tar, "rb") as f:
        yield from iter(lambda: f.read(CHUNK), b"")


def segment_key(vendor_key: str, prefix: str, compiler: Compiler | None = None) -> str:
    """The segment's name: the vendored tree, its path, and the interpreter that compiled its byte code."""
    who = f"{compiler.stamp}\0{compiler.version}\0{compiler.magic}" if compiler else ""
    return hashlib.sha256(f"{FORMAT}\0{vendor_key}\0{prefix}\0{who}".encode()).hexdigest()[:32]


def library_segment(lib: Path, vendor_key: str, prefix: str, cache: Path, needles: list[str],
                    compiler: Compiler | None = None) -> tuple[Segment, list[tuple[str, int, str]]]:
    """The libraries' cached segment (made on first use), and any build paths found in them.

    Only the cache's files are read; nothing under lib is ever written. The files are scanned for a
    needle once; needles found nowhere are remembered with the segment. With a compiler, the
    segment holds the libraries' byte code too, compiled once into KEY.pyc beside it.
    """
    key = segment_key(vendor_key, prefix, compiler)
    tar, meta_file = cache / f"{key}.tar", cache / f"{key}.json"
    seg = _read_meta(meta_file, tar) if tar.is_file() else None
    if seg is None:
        byte_code = _library_byte_code(lib, prefix, cache / f"{key}.pyc", compiler) if compiler else None
        seg, hits = _make_segment(lib, prefix, tar, needles, byte_code)
        known: frozenset[str] = frozenset()
    else:
        known = seg.needles_clean
        hits = _scan(lib, prefix, [n for n in needles if n not in known])
    if not hits:
        seg = Segment(seg.tar, seg.tar_size, seg.md5sums, seg.size_kib, seg.mtime, seg.headers,
                      seg.needles_clean | set(needles), seg.links)
    if seg.needles_clean != known or not meta_file.is_file():
        _write_meta(meta_file, seg)
    return seg, hits


def _library_byte_code(lib: Path, prefix: str, dest: Path, compiler: Compiler) -> Path:
    """The libraries' byte code in a tree of their shape (made once, under a temporary name first)."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    sources = []
    for dirpath, dirnames, filenames in os.walk(lib):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_IN_LIB]
        rel_dir = os.path.relpath(dirpath, lib)
        base = prefix if rel_dir == "." else f"{prefix}/{rel_dir}"
        sources += [(f"{base}/{n}", Path(dirpath, n)) for n in filenames
                    if is_source(Path(dirpath, n)) and not in_test_suite(f"{base}/{n}", prefix)]
    compile_sources(compiler, sources, tmp, strip=prefix + "/")
    try:
        os.rename(tmp, dest)
    except OSError:  # another build made it meanwhile: the same bytes
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _make_segment(lib: Path, prefix: str, tar: Path, needles: list[str],
                  byte_code: Path | None = None) -> tuple[Segment, list[tuple[str, int, str]]]:
    """Members of the libraries' directories and files; their links go with the archive's tail."""
    tar.parent.mkdir(parents=True, exist_ok=True)
    seen: list[tuple[Entry, bytes]] = []
    entries = sorted(libraries(lib, prefix, 0, byte_code), key=lambda e: tuple(e.path.split("/")))
    made = segment([e for e in entries if e.kind != "link"], seen, 0)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{tar.name}.", dir=tar.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(made.tar)  # type: ignore[arg-type]
    os.replace(tmp_name, tar)
    hits = [(e.path, line, n) for e, data in seen if "/__pycache__/" not in e.path  # a source names its own
            for line, n in file_hits(data, needles)]
    links = tuple((e.path, e.target) for e in entries if e.kind == "link")
    return Segment(tar, made.tar_size, made.md5sums, made.size_kib, 0, made.headers, links=links), hits


def _scan(lib: Path, prefix: str, needles: list[str]) -> list[tuple[str, int, str]]:
    hits: list[tuple[str, int, str]] = []
    if not needles:
        return hits
    for entry in libraries(lib, prefix, 0):  # links are checked with the archive's tail
        if entry.kind == "file":
            hits += [(entry.path, line, n) for line, n in file_hits(entry.data(), needles)]
    return hits


def _read_meta(path: Path, tar: Path) -> Segment | None:
    try:
        data = json.loads(path.read_text())
        if tar.stat().st_size != data["tar_size"]:
            return None
        return Segment(tar, int(data["tar_size"]), tuple((p, m) for p, m in data["md5sums"]), int(data["size_kib"]),
                       int(data["mtime"]), tuple(data["headers"]), frozenset(data["needles_clean"]),
                       tuple((p, t) for p, t in data["links"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_meta(path: Path, seg: Segment) -> None:
    data = {"tar_size": seg.tar_size, "md5sums": [list(row) for row in seg.md5sums], "size_kib": seg.size_kib,
            "mtime": seg.mtime, "headers": list(seg.headers), "needles_clean": sorted(seg.needles_clean),
            "links": [list(link) for link in seg.links]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
