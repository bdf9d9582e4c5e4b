"""The ordered hasher: workers write a file chunk by chunk, out of order, in blocks of any size; the sha256
follows the written prefix, hashed by the worker whose block lands at its front, from memory where the pool
allows and from the file otherwise, and is the file's sha256 whatever the pool size, the block sizes, the
order, or what an earlier run left on disk."""

from __future__ import annotations

import hashlib
import os
import queue
import random
import threading

import pytest

from modelctl.hub.hashing import BLOCK, OrderedHasher

SIZE = 9 * BLOCK + 12345
CHUNK = 2 * BLOCK + 4096


def _data() -> bytes:
    return b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(SIZE // 32 + 1))[:SIZE]


def _download(path, data: bytes, pool: int, filled: dict[int, int], seed: int) -> OrderedHasher:
    """Four threads write the missing part of each chunk the way transfer's workers do."""
    rnd = random.Random(seed)
    n_chunks = (SIZE + CHUNK - 1) // CHUNK
    hasher = OrderedHasher(path, SIZE, CHUNK, filled, pool_blocks=pool)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(n_chunks):
        if filled.get(i, 0) < min(CHUNK, SIZE - i * CHUNK):
            todo.put(i)
    fd = os.open(path, os.O_RDWR)

    def worker(sizes: list[int]) -> None:
        buf = bytearray(BLOCK)
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            buf = _write_chunk(hasher, fd, data, i, filled.get(i, 0), sizes, buf)

    threads = [threading.Thread(target=worker, args=([rnd.choice([BLOCK, 4096, 70_000, 1]) for _ in range(7)],))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.close(fd)
    return hasher


def _write_chunk(hasher, fd, data: bytes, i: int, start: int, sizes: list[int], buf: bytearray) -> bytearray:
    pos, end = i * CHUNK + start, min(SIZE, (i + 1) * CHUNK)
    while pos < end:
        n = min(sizes[pos % len(sizes)], end - pos)
        buf[:n] = data[pos:pos + n]
        os.pwrite(fd, memoryview(buf)[:n], pos)
        buf = hasher.landed(i, pos, n, buf)
        pos += n
    return buf


@pytest.mark.parametrize("pool", [0, 1, 3, 32])
def test_sha256_of_an_out_of_order_download(tmp_path, pool):
    data = _data()
    path = tmp_path / "f.incomplete"
    path.write_bytes(b"\0" * SIZE)
    hasher = _download(path, data, pool, {}, seed=pool)
    assert hasher.finish() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("pool, read_back", [(0, SIZE - CHUNK), (32, 0)])
def test_blocks_ahead_of_the_hash_wait_in_the_pool(tmp_path, pool, read_back):
    """Chunks written last to first: the first chunk's blocks are hashed as they land, the others are
    kept in memory while the pool lasts and read back from the file beyond it."""
    data = _data()
    path = tmp_path / "f.incomplete"
    path.write_bytes(b"\0" * SIZE)
    hasher = OrderedHasher(path, SIZE, CHUNK, {}, pool_blocks=pool)
    fd = os.open(path, os.O_RDWR)
    buf = bytearray(BLOCK)
    for i in reversed(range((SIZE + CHUNK - 1) // CHUNK)):
        buf = _write_chunk(hasher, fd, data, i, 0, [BLOCK], buf)
        if i:
            assert hasher.pos == 0                 # nothing at the front yet
    os.close(fd)
    assert hasher.pos == SIZE                      # the last block to land, at the front, drained the rest
    assert hasher.finish() == hashlib.sha256(data).hexdigest()
    assert hasher.read_back == read_back


def test_resumed_download_hashes_what_was_on_disk(tmp_path):
    data = _data()
    path = tmp_path / "f.incomplete"
    filled = {0: CHUNK, 1: 5000, 3: CHUNK}          # what an earlier run left: whole and partial chunks
    partial = bytearray(SIZE)
    for i, n in filled.items():
        partial[i * CHUNK:i * CHUNK + n] = data[i * CHUNK:i * CHUNK + n]
    path.write_bytes(bytes(partial))
    hasher = _download(path, data, 4, filled, seed=7)
    assert hasher.finish() == hashlib.sha256(data).hexdigest()
    assert hasher.read_back >= CHUNK + 5000 + CHUNK
