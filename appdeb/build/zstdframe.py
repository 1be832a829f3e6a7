"""zstdframe: one zstd frame out of pieces compressed apart, so the libraries' part is compressed once and kept.

dpkg (1.21) decompresses only the first zstd frame of data.tar.zst, so a cached, already compressed
segment cannot simply follow as a frame of its own. Inside one frame, a compressed block refers back
only to bytes decoded before it (within the window) and to the three repeat offsets the decoder carries
from block to block; a piece compressed as a frame of its own was made for the repeat offsets a frame
starts with (1, 4, 8) and never refers to bytes before its own start. So pieces join into one frame when,
between them, the decoder's repeat offsets are put back to (1, 4, 8): three tiny blocks of one sequence
each, copying 3 bytes from 8, 4 and 1 bytes back, do exactly that. Their 9 bytes must be what the content
holds there, so a join sits where the content has 17 zero bytes in a row (the unused tail of a tar
header). Raw and RLE blocks (the archive's zero end) leave the offsets alone. The frame carries the XXH64
checksum of its content, as dpkg-deb's frames do (format: RFC 8878).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from appdeb.errors import AppdebError

MAGIC = b"\x28\xb5\x2f\xfd"
JOIN_ZEROS = 17  # 8 decoded zero bytes before a join, 9 made by the reset blocks
RESET_BYTES = 9
MAX_BLOCK = 128 << 10
MAX_WINDOW = 1 << 31  # what a decoder may be asked for at most (zstd's own limit on 64-bit)
RAW, RLE, COMPRESSED = 0, 1, 2


class FrameError(AppdebError):
    """The compressor's output is not the plain frame the join needs (a dictionary, a skippable frame…)."""


@dataclass(frozen=True)
class Piece:
    """A frame's blocks without its header or checksum, and the window its references need."""

    window: int  # bytes
    blocks: bytes  # every block, none marked last


def piece(frame: bytes) -> Piece:
    """The blocks of one frame as the zstd program writes it (no dictionary; a small input read at once
    comes as a single segment with its content size, which is then the window it needs)."""
    if frame[:4] != MAGIC or len(frame) < 6:
        raise FrameError("not a zstd frame")
    fhd = frame[4]
    if fhd & 0x03:
        raise FrameError("a frame that needs a dictionary")
    single, at = bool(fhd & 0x20), 5
    window = 0 if single else window_size(frame[5])
    at += 0 if single else 1
    size_bytes = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    if size_bytes:
        content = int.from_bytes(frame[at:at + size_bytes], "little") + (256 if size_bytes == 2 else 0)
        window = content if single else window
        at += size_bytes
    blocks, at = _blocks(frame, at)
    if at + (4 if fhd & 0x04 else 0) != len(frame):
        raise FrameError("bytes after the frame's last block")
    return Piece(window, blocks)


def _blocks(frame: bytes, at: int) -> tuple[bytes, int]:
    out = bytearray()
    while True:
        if at + 3 > len(frame):
            raise FrameError("a truncated block")
        head = int.from_bytes(frame[at:at + 3], "little")
        last, kind, size = head & 1, (head >> 1) & 3, head >> 3
        length = 3 + (1 if kind == RLE else size)
        if kind == 3 or at + length > len(frame):
            raise FrameError("a reserved or truncated block")
        block = bytearray(frame[at:at + length])
        block[0] &= 0xFE
        out += block
        at += length
        if last:
            return bytes(out), at


def window_size(descriptor: int) -> int:
    """The window a Window_Descriptor byte stands for."""
    base = 1 << (10 + (descriptor >> 3))
    return base + (base >> 3) * (descriptor & 7)


def header(window: int) -> bytes:
    """A frame header: no content size (it is not known in advance), a checksum at the end, and the
    smallest window descriptor that holds window bytes (at least the 128 KiB a block may hold)."""
    if window > MAX_WINDOW:
        raise FrameError(f"a window of {window} bytes")
    descriptor = next(d for d in range(256) if window_size(d) >= max(window, MAX_BLOCK))
    return MAGIC + bytes([0x04, descriptor])


def reset_offsets() -> bytes:
    """Three compressed blocks, each one sequence of no literals and a 3-byte match, at offsets 8, 4, 1.

    Each pushes its offset onto the repeat offsets, leaving (1, 4, 8). The literals are a raw section of
    size 0; the three code tables are RLE (one symbol, no state bits), so the bitstream holds only the
    offset's extra bits and the end mark: Offset_Value = offset + 3 = (1 << code) + extra.
    """
    out = b""
    for offset in (8, 4, 1):
        value = offset + 3
        code = value.bit_length() - 1
        bits = (1 << code) | (value - (1 << code))
        body = bytes([0x00, 0x01, 0x54, 0x00, code, 0x00, bits])  # literals, 1 sequence, modes, LL/OF/ML codes
        out += _block_header(COMPRESSED, len(body), last=False) + body
    return out


def rle(byte: int, count: int, last: bool) -> bytes:
    """RLE blocks regenerating count copies of byte."""
    out = b"" if count else _block_header(RAW, 0, last=last)
    while count > 0:
        n = min(count, MAX_BLOCK)
        count -= n
        out += _block_header(RLE, n, last=last and count == 0) + bytes([byte])
    return out


def checksum(digest: int) -> bytes:
    """The frame's Content_Checksum: the low 4 bytes of the content's XXH64 (seed 0)."""
    return struct.pack("<I", digest & 0xFFFFFFFF)


def _block_header(kind: int, size: int, last: bool) -> bytes:
    return ((size << 3) | (kind << 1) | int(last)).to_bytes(3, "little")
