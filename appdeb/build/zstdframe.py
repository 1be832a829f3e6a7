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

MAGIC = b"\x28\xb5\x2f\xfd"
JOIN_ZEROS = 17  # 8 decoded zero bytes before a join, 9 made by the reset blocks
RESET_BYTES = 9
MAX_BLOCK = 128 << 10
RAW, RLE, COMPRESSED = 0, 1, 2


class FrameError(ValueError):
    """The compressor's output is not the plain frame the join needs (a dictionary, a skippable frame…)."""


@dataclass(frozen=True)
class Piece:
    """A frame's blocks without its header or checksum, and the window its references need."""

    window: int  # the header's Window_Descriptor byte (larger byte, larger window)
    blocks: bytes  # every block, none marked last


def piece(frame: bytes) -> Piece:
    """The blocks of one frame as the zstd program writes it from a pipe (no dictionary, no single segment)."""
    if frame[:4] != MAGIC or len(frame) < 6:
        raise FrameError("not a zstd frame")
    fhd = frame[4]
    if fhd & 0x20 or fhd & 0x03 or fhd >> 6:
        raise FrameError("a single-segment frame, a dictionary or a content size: compress from a pipe")
    window, at = frame[5], 6
    checksum = 4 if fhd & 0x04 else 0
    out = bytearray()
    while True:
        if at + 3 > len(frame):
            raise FrameError("a truncated block")
        head = int.from_bytes(frame[at:at + 3], "little")
        last, kind, size = head & 1, (head >> 1) & 3, head >> 3
        length = 3 + (1 if kind == RLE else size)
        block = bytearray(frame[at:at + length])
        block[0] &= 0xFE
        out += block
        at += length
        if last:
            break
    if at + checksum != len(frame):
        raise FrameError("bytes after the frame's last block")
    return Piece(window, bytes(out))


def header(window: int) -> bytes:
    """A frame header: no content size (it is not known in advance), a checksum at the end, the window."""
    return MAGIC + bytes([0x04, window])


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
    out = b""
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
