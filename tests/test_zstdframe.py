"""Pieces compressed apart and joined into one zstd frame decode to exactly their content (the real zstd
decoder is the oracle, checksum included), whatever the pieces hold; without the join's reset they do not."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appdeb.build import zstdframe

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs zstd")
ZSTD = ["zstd", "-3", "-T0", "-q", "-c", "--no-check"]


def compressed(data: bytes) -> zstdframe.Piece:
    return zstdframe.piece(subprocess.run(ZSTD, input=data, capture_output=True, check=True).stdout)


def joined(before: bytes, after: bytes, end: int, reset: bytes) -> bytes:
    """before, 9 zero bytes made by the join, after, end zero bytes: one frame."""
    first, second = compressed(before), compressed(after)
    content = before + bytes(zstdframe.RESET_BYTES) + after + bytes(end)
    return (zstdframe.header(max(first.window, second.window)) + first.blocks + reset + second.blocks
            + zstdframe.rle(0, end, last=True) + zstdframe.checksum(xxhash.xxh64(content).intdigest()))


def decoded(frame: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["zstd", "-d", "-c"], input=frame, capture_output=True)


# repetitive text (matches, repeat offsets) and noise, so both literal and sequence paths are exercised
chunk = st.one_of(st.binary(max_size=300), st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=12),
                                                     st.integers(1, 4000)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunk, max_size=8), st.lists(chunk, max_size=8), st.integers(0, 300_000))
def test_joined_pieces_decode_to_their_content(head: list[bytes], rest: list[bytes], end: int) -> None:
    before = b"".join(head) + bytes(8)  # the join sits after 8 zero bytes
    after = b"".join(rest)
    out = decoded(joined(before, after, end, zstdframe.reset_offsets()))
    assert out.returncode == 0, out.stderr
    assert out.stdout == before + bytes(zstdframe.RESET_BYTES) + after + bytes(end)


def test_without_the_reset_the_second_piece_decodes_wrong() -> None:
    """The reset is what makes the join right: the second piece's first sequences use the repeat offsets a
    frame starts with, and the decoder still holds the first piece's."""
    rnd = random.Random(1)
    before = b"".join(rnd.randbytes(rnd.randint(0, 300)) + b"abcdefghij" * rnd.randint(1, 50) for _ in range(40))
    before += bytes(8)
    after = b"".join(b"x" + b"y" * rnd.randint(3, 40) + rnd.randbytes(rnd.randint(0, 30)) for _ in range(200))
    raw = (zstdframe.RESET_BYTES << 3).to_bytes(3, "little") + bytes(zstdframe.RESET_BYTES)  # the 9 bytes, as is
    assert decoded(joined(before, after, 1024, raw)).returncode != 0
    assert decoded(joined(before, after, 1024, zstdframe.reset_offsets())).returncode == 0


def test_a_frame_it_cannot_join_is_refused(tmp_path: Path) -> None:
    (tmp_path / "small").write_bytes(b"x" * 100)  # from a file: a single segment with its content size
    frame = subprocess.run(["zstd", "-q", "-c", str(tmp_path / "small")], capture_output=True, check=True).stdout
    assert frame[4] & 0x20 and zstdframe.piece(frame).window == 100
    for bad in (b"not a frame", frame[:4] + bytes([frame[4] | 0x01]) + frame[5:], frame[:-6], frame + b"x"):
        with pytest.raises(zstdframe.FrameError):
            zstdframe.piece(bad)  # garbage, a dictionary, truncated, trailing bytes
