"""Where the parallel download's blocks go: aligned ones straight to the disk (``O_DIRECT``), the rest (a
file's tail, blocks after a dropped connection, a filesystem that takes no direct writes) through the page
cache; either way the file holds the bytes at their offsets."""

from __future__ import annotations

import hashlib
import os

from modelctl.hub.hashing import BLOCK, block_buffer
from modelctl.hub.transfer import DIRECT_ALIGN, _Output

SIZE = 3 * BLOCK + 12345


def _data() -> bytes:
    return b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(SIZE // 32 + 1))[:SIZE]


def _write(out: _Output, data: bytes, pos: int, n: int, skew: int = 0) -> None:
    buf = block_buffer(BLOCK + DIRECT_ALIGN)
    buf[skew:skew + n] = data[pos:pos + n]
    out.write(memoryview(buf)[skew:skew + n], pos)


def _output(tmp_path):
    path = tmp_path / "f.incomplete"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, SIZE)
    return path, fd, _Output(path, fd)


def test_aligned_and_unaligned_blocks_land_at_their_offsets(tmp_path):
    data = _data()
    path, fd, out = _output(tmp_path)
    pieces = [(BLOCK, BLOCK), (0, 5000), (5000, 4096), (9096, BLOCK - 9096),   # a drop after 5000 bytes
              (2 * BLOCK, BLOCK), (3 * BLOCK, 12345)]                          # the tail
    for pos, n in pieces:
        _write(out, data, pos, n)
    out.close()
    os.fsync(fd)
    os.close(fd)
    assert path.read_bytes() == data


def test_a_refused_direct_write_goes_through_the_page_cache(tmp_path):
    """A buffer off the alignment the disk needs (the kernel answers EINVAL to the direct write)."""
    data = _data()
    path, fd, out = _output(tmp_path)
    _write(out, data, 0, BLOCK, skew=1)
    for pos in range(BLOCK, SIZE, BLOCK):
        _write(out, data, pos, min(BLOCK, SIZE - pos))
    out.close()
    os.close(fd)
    assert path.read_bytes() == data
