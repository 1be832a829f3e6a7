"""payload: data.tar.zst written straight from the manifest, the vendored libraries from a cached, compressed segment.

The members are written as dpkg-deb --root-owner-group writes them (GNU tar headers, root/root, names
in dpkg-deb's order within each part, 10240-byte records). The archive has two parts: the package's own
entries (the app, rendered files, their directories and links), then the vendored libraries (their
directory first, their links last). The libraries' members depend only on the vendored tree and their
path in the package (they carry the fixed LIB_MTIME, not the build's SOURCE_DATE_EPOCH), so they are
written once, compressed once, and kept with their md5sums and Installed-Size share under
~/.cache/appdeb/payload; a build compresses only its own part and joins the two into the one zstd frame
dpkg reads (zstdframe.py), with the frame's checksum over the whole archive. The cache's library tree is
only ever read.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from appdeb.build import zstdframe
from appdeb.build.bytecode import Compiler, compile_sources, in_test_suite, is_source
from appdeb.build.manifest import LIB_MTIME, SKIPPED_IN_LIB, Entry, libraries, order
from appdeb.build.stage import file_hits
from appdeb.files import walk
from appdeb.runner import filter_to, which

FORMAT = "payload-8"  # bump when the bytes of a segment change for the same inputs
ZSTD = ("zstd", "-3", "-T0", "-q", "-c")  # multi-threaded: the same bytes for any thread count, as dpkg-deb
BLOCK, RECORD, CHUNK = 512, 10240, 1 << 20
ONE_CALL = 128 << 10  # ZSTD_CStreamInSize(): dpkg-deb's read size
CHKSUM = slice(148, 156)  # a tar header's checksum field
JOIN = 345 + 8  # in the libraries' first header: 8 zero bytes (its unused tail starts at 345) before the join


@dataclass(frozen=True)
class Segment:
    """A run of tar members and what they contribute to the control area."""

    tar: bytes | Path  # the members, or the cached file holding them
    tar_size: int
    md5sums: tuple[tuple[str, str], ...]  # (path, md5) of every regular file
    size_kib: int  # Installed-Size's share: 1 per directory and link, file sizes rounded up
    needles_clean: frozenset[str] = frozenset()  # build paths known to appear in none of its files
    compressed: Path | None = None  # the members after JOIN + RESET_BYTES, as the blocks of one zstd frame
    window: int = 0  # the window (bytes) those blocks need


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


def segment(entries: Iterable[Entry], seen: list[tuple[Entry, bytes]]) -> Segment:
    """The tar members of the entries in memory; each file's bytes also go to seen."""
    chunks, offset = [], 0
    for entry in entries:
        data = entry.data() if entry.kind == "file" else b""
        chunks += [header(entry, len(data)), data, b"\0" * (-len(data) % BLOCK)]
        offset += len(chunks[-3]) + len(data) + (-len(data) % BLOCK)
        seen.append((entry, data))
    sums = tuple((e.path, hashlib.md5(data).hexdigest()) for e, data in seen if e.kind == "file")
    size = sum((len(d) + 1023) // 1024 if e.kind == "file" else 1 for e, d in seen if e.path)
    return Segment(b"".join(chunks), offset, sums, size)


@dataclass(frozen=True)
class Data:
    """data.tar.zst ready to be written: its bytes around the cached libraries' blocks, and its size
    (the ar header that precedes it names the size)."""

    head: bytes  # frame header, the own part's blocks, the join
    blocks: Path  # the libraries' cached blocks
    tail: bytes  # the archive's zero end, the checksum
    size: int

    def write(self, fd: int) -> None:
        """Append to fd (an unbuffered file descriptor); the cached blocks copied in the kernel."""
        write_all(fd, self.head)
        with self.blocks.open("rb") as src:
            left = self.size - len(self.head) - len(self.tail)
            in_kernel = True
            while left > 0:
                try:
                    done = os.copy_file_range(src.fileno(), fd, left) if in_kernel else 0
                except OSError:  # another file system (EXDEV on older kernels), or none offered
                    in_kernel, done = False, 0
                if not in_kernel:
                    chunk = os.read(src.fileno(), min(left, CHUNK))
                    write_all(fd, chunk)
                    done = len(chunk)
                if done <= 0:
                    raise OSError(f"{self.blocks}: shorter than its recorded size")
                left -= done
        write_all(fd, self.tail)


def data_tar(own: Segment, lib: Segment, tmp: Path) -> Data:
    """The package's own members, the libraries' and the archive's end, as the one zstd frame dpkg reads.

    Only the own part (and the first bytes of the libraries' first header) is compressed here; the
    libraries' blocks are copied from the cache after the join (zstdframe.py). The checksum needs the
    content's XXH64, so the libraries' uncompressed members are read (not compressed) once more."""
    import xxhash

    assert isinstance(own.tar, bytes) and isinstance(lib.tar, Path) and lib.compressed is not None
    end = b"\0" * (2 * BLOCK + (-(own.tar_size + lib.tar_size + 2 * BLOCK) % RECORD))
    with open(lib.tar, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as libs:
        if libs[JOIN - 8:JOIN + zstdframe.RESET_BYTES] != bytes(zstdframe.JOIN_ZEROS):
            raise zstdframe.FrameError("the libraries' first header has no zero bytes at the join")
        first = zstdframe.piece(_compressed(own.tar + libs[:JOIN], tmp / "own.zst"))
        digest = xxhash.xxh64(own.tar)
        digest.update(libs)
        digest.update(end)
    head = zstdframe.header(max(first.window, lib.window)) + first.blocks + zstdframe.reset_offsets()
    tail = zstdframe.rle(0, len(end), last=True) + zstdframe.checksum(digest.intdigest())
    return Data(head, lib.compressed, tail, len(head) + lib.compressed.stat().st_size + len(tail))


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a raw write may take only part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _compressed(data: bytes, tmp: Path) -> bytes:
    """data through zstd from a pipe, without its own checksum (the joined frame carries one)."""
    try:
        with tmp.open("wb") as out:
            filter_to([*ZSTD, "--no-check"], [data], out)
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def compressed_tar(entries: list[Entry], dest: Path) -> None:
    """A whole small archive (control.tar.zst) from its entries, as dpkg-deb compresses it: an archive up
    to one zstd input buffer (128 KiB) in one call, its size in the frame header (zstd reads it from a
    file); a longer one streamed (zstd reads a pipe)."""
    seg = segment(entries, [])
    assert isinstance(seg.tar, bytes)
    whole = seg.tar + b"\0" * (2 * BLOCK + (-(seg.tar_size + 2 * BLOCK) % RECORD))
    with dest.open("wb") as out:
        if len(whole) - 2 * BLOCK > ONE_CALL:
            filter_to(list(ZSTD), [whole], out)
            return
        plain = dest.with_name(dest.name + ".tar")
        plain.write_bytes(whole)
        filter_to([*ZSTD, str(plain)], [], out)


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
        seg = replace(seg, needles_clean=seg.needles_clean | set(needles))
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
    for dirpath, dirnames, filenames in walk(lib):
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
    """The libraries' members (their directory first, then directories and files, then links, at
    LIB_MTIME), kept uncompressed in tar and, from the join on, compressed in tar.zst."""
    tar.parent.mkdir(parents=True, exist_ok=True)
    seen: list[tuple[Entry, bytes]] = []
    entries = sorted(libraries(lib, prefix, LIB_MTIME, byte_code), key=lambda e: order(e.path))
    made = segment([*(e for e in entries if e.kind != "link"), *(e for e in entries if e.kind == "link")], seen)
    assert isinstance(made.tar, bytes)
    blocks = zstdframe.piece(_compressed(made.tar[JOIN + zstdframe.RESET_BYTES:], tar.with_suffix(".tmp.zst")))
    compressed = tar.with_suffix(".zst")
    _put(compressed, blocks.blocks)
    _put(tar, made.tar)
    hits = [(e.path, line if e.kind == "file" else 0, n) for e, data in seen
            if "/__pycache__/" not in e.path  # byte code repeats its source's strings: the source is named
            for line, n in file_hits(data if e.kind == "file" else e.target.encode(), needles)]
    return replace(made, tar=tar, compressed=compressed, window=blocks.window), hits


def _put(path: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp_name, path)


def _scan(lib: Path, prefix: str, needles: list[str]) -> list[tuple[str, int, str]]:
    hits: list[tuple[str, int, str]] = []
    if not needles:
        return hits
    for entry in libraries(lib, prefix, LIB_MTIME):
        raw = entry.data() if entry.kind == "file" else entry.target.encode()
        hits += [(entry.path, line if entry.kind == "file" else 0, n) for line, n in file_hits(raw, needles)]
    return hits


def _read_meta(path: Path, tar: Path) -> Segment | None:
    try:
        data = json.loads(path.read_text())
        compressed = tar.with_suffix(".zst")
        if tar.stat().st_size != data["tar_size"] or compressed.stat().st_size != data["compressed_size"] \
                or not 0 < int(data["window"]) <= zstdframe.MAX_WINDOW:
            return None
        return Segment(tar, int(data["tar_size"]), tuple((p, m) for p, m in data["md5sums"]), int(data["size_kib"]),
                       frozenset(data["needles_clean"]), compressed, int(data["window"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_meta(path: Path, seg: Segment) -> None:
    assert seg.compressed is not None
    data = {"tar_size": seg.tar_size, "md5sums": [list(row) for row in seg.md5sums], "size_kib": seg.size_kib,
            "needles_clean": sorted(seg.needles_clean), "compressed_size": seg.compressed.stat().st_size,
            "window": seg.window}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
