"""The ordered hasher: workers write a file chunk by chunk, out of order, in blocks of any size; the sha256
follows the written prefix, from memory where the pool allows and from the file otherwise, and is the
file's sha256 whatever the pool size, the block sizes, or what an earlier run left on disk."""

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
    hasher.start()
    todo: queue.Queue[int] = queue.Queue()
    for i in range(n_chunks):
        if filled.get(i, 0) < min(CHUNK, SIZE - i * CHUNK):
            todo.put(i)
    fd = os.open(path, os.O_RDWR)

    def worker(sizes: list[int]) -> None:
        own = bytearray(BLOCK)
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            pos, end = i * CHUNK + filled.get(i, 0), min(SIZE, (i + 1) * CHUNK)
            while pos < end:
                n = min(sizes[pos % len(sizes)], end - pos)
                buf = hasher.buffer()
                target = buf if buf is not None else own
                target[:n] = data[pos:pos + n]
                os.pwrite(fd, memoryview(target)[:n], pos)
                hasher.landed(i, pos, n, buf)
                pos += n

    threads = [threading.Thread(target=worker, args=([rnd.choice([BLOCK, 4096, 70_000, 1]) for _ in range(7)],))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hasher.join(30)
    os.close(fd)
    return hasher


@pytest.mark.parametrize("pool", [0, 1, 3, 32])
def test_sha256_of_an_out_of_order_download(tmp_path, pool):
    data = _data()
    path = tmp_path / "f.incomplete"
    path.write_bytes(b"\0" * SIZE)
    hasher = _download(path, data, pool, {}, seed=pool)
    assert hasher.digest() == hashlib.sha256(data).hexdigest()
    if pool == 0:
        assert hasher.read_back == SIZE          # nothing in memory: all of it read back from the file
    if pool == 32:
        assert hasher.read_back < SIZE


def test_resumed_download_hashes_what_was_on_disk(tmp_path):
    data = _data()
    path = tmp_path / "f.incomplete"
    filled = {0: CHUNK, 1: 5000, 3: CHUNK}          # what an earlier run left: whole and partial chunks
    partial = bytearray(SIZE)
    for i, n in filled.items():
        partial[i * CHUNK:i * CHUNK + n] = data[i * CHUNK:i * CHUNK + n]
    path.write_bytes(bytes(partial))
    hasher = _download(path, data, 4, filled, seed=7)
    assert hasher.digest() == hashlib.sha256(data).hexdigest()
    assert hasher.read_back >= CHUNK + 5000 + CHUNK
