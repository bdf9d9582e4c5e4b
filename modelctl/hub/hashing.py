"""sha256 of files: whole files, copies, and a file that is being downloaded out of order.

``OrderedHasher`` hashes a download while its bytes land.  The parallel workers each write their own
chunk; the hash must see the file in order, so the hasher follows the contiguous prefix of what was
written.  The blocks the workers received are handed over in memory (a fixed pool of ``POOL_BLOCKS``
buffers, so memory stays flat whatever the file size) and hashed from there; only bytes that did not fit
in the pool, or that an earlier run left on disk, are read back from the file (the page cache).

Measured (``bench/pull.py``, 1 GiB on loopback, 2 shared cores, load average 4.2 -> 5.9, median of 5):
curl 1.38 s; curl + hashlib sha256 2.17 s; curl && sha256sum 4.42 s; modelctl verified 3.38 s (0.41x
curl, 0.64x curl + hashlib, 1.31x curl && sha256sum), unverified 1.07 s (1.28x curl), one stream verified
2.77 s; peak RSS 67 MiB for 256 MiB and 1 GiB alike (flat), hf_transfer 191 MiB.  The same download run
by itself (not between the benchmark's other clients) takes 1.8-2 s verified.  The hash is no longer a
serial tail and the final fsync no longer waits for the whole file, but on this CPU-bound loopback case
the verified parallel pull is not yet as fast as curl followed by a hash: the issue's target (>= 1.0x
curl + sha256sum, >= 0.8x curl) is met against coreutils' sha256sum only.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from pathlib import Path

BLOCK = 1 << 20                  # bytes per recv/pwrite, and per pooled buffer
READ_BLOCK = 4 * BLOCK           # read-back size
POOL_BLOCKS = 32                 # in-memory blocks waiting for the hash, at most (32 MiB)


def hash_file(path: Path, h, start: int = 0, end: int | None = None, buf: bytearray | None = None):
    """Feed bytes ``[start, end)`` of ``path`` (to its end by default) to the hash ``h`` and return it: large
    blocks through one reused buffer, ``buf`` if given (hashlib releases the GIL for buffers over 2047 bytes)."""
    if buf is None:
        buf = bytearray(READ_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        if end is None:
            end = os.fstat(fh.fileno()).st_size
        while start < end and (n := os.preadv(fh.fileno(), [view[: min(end - start, len(buf))]], start)):
            h.update(view[:n])
            start += n
    return h


def sha256_file(path: Path, start_hash=None, offset: int = 0) -> str:
    """The sha256 of ``path`` (or, with ``start_hash`` covering its first ``offset`` bytes, of the whole file)."""
    return hash_file(path, start_hash or hashlib.sha256(), offset).hexdigest()


def copy_hashing(src, out, h) -> None:
    """Copy the open binary file ``src`` to ``out`` in large blocks, feeding each block to the hash ``h``."""
    while block := src.read(READ_BLOCK):
        h.update(block)
        out.write(block)


class OrderedHasher(threading.Thread):
    """Hashes ``path`` in order while workers write it chunk by chunk, each chunk front to back.

    ``filled`` gives, per chunk index, the bytes already on disk from the chunk's start (a resumed run).
    A worker asks ``buffer()`` for a pooled block to receive into (None when the pool is empty: it then
    uses its own buffer and that block is read back later), writes the block to the file and then calls
    ``landed``; a pooled buffer passes to the hasher there and comes back to the pool once hashed.
    """

    def __init__(self, path: Path, size: int, chunk: int, filled: dict[int, int], pool_blocks: int = POOL_BLOCKS):
        super().__init__(daemon=True, name="modelctl-sha256")
        self.path, self.size, self.chunk = path, size, chunk
        self.filled = dict(filled)            # chunk -> bytes written from its start
        self.kept: dict[int, deque[int]] = {}  # chunk -> offsets of its blocks in memory, in order
        self.mem: dict[int, tuple[bytearray, int]] = {}   # offset -> (buffer, length)
        self.free: list[bytearray] = []
        self.pool_left = pool_blocks
        self.cond = threading.Condition()        # the hasher waits here for bytes
        self.stopped = False
        self.pos = 0
        self.h = hashlib.sha256()
        self.read_back = 0                    # bytes hashed from the file rather than from memory
        self.read_buf = bytearray(READ_BLOCK)

    def buffer(self) -> bytearray | None:
        """A pooled block to receive into, or None (the pool is in use: that block is read back later).
        Workers never wait for the hash: making them wait when it fell behind was tried, and the wake-ups
        cost more system time than the read-back they saved (runs of 3-4 s instead of 1.8-2 s)."""
        with self.cond:
            if self.free:
                return self.free.pop()
            if self.pool_left:
                self.pool_left -= 1
                return bytearray(BLOCK)
        return None

    def release(self, buf: bytearray) -> None:
        """A pooled buffer that was not handed over (the read failed)."""
        with self.cond:
            self.free.append(buf)

    def landed(self, index: int, pos: int, n: int, buf: bytearray | None = None) -> None:
        """Bytes ``[pos, pos + n)`` of chunk ``index`` are written (and, with ``buf``, in ``buf[:n]``)."""
        with self.cond:
            self.filled[index] = pos + n - index * self.chunk
            if buf is not None:
                self.kept.setdefault(index, deque()).append(pos)
                self.mem[pos] = (buf, n)
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def _next(self) -> tuple[tuple[bytearray, int] | None, int]:
        """The block at the hash position (from memory), or how far the file can be read back."""
        index = self.pos // self.chunk
        with self.cond:
            kept = self.kept.get(index) or deque()
            while not self.stopped:
                block = self.mem.pop(self.pos, None)
                if block is not None:
                    kept.popleft()
                    return block, 0
                written = index * self.chunk + self.filled.get(index, 0)
                if written > self.pos:     # on disk up to there, or up to the next block in memory
                    return None, min(written, kept[0]) if kept else written
                self.cond.wait()
                kept = self.kept.get(index) or deque()
        return None, -1

    def run(self) -> None:
        try:
            self._hash()
        finally:   # done, stopped or failed (digest() is then None): no worker may wait for it any longer
            self.stop()

    def _hash(self) -> None:
        while self.pos < self.size:
            block, until = self._next()
            if until < 0:
                return
            if block is not None:
                buf, n = block
                self.h.update(memoryview(buf)[:n])   # hashlib releases the GIL: beside the transfer
                with self.cond:
                    self.pos += n
                    self.free.append(buf)
                continue
            hash_file(self.path, self.h, self.pos, until, self.read_buf)
            self.read_back += until - self.pos
            with self.cond:
                self.pos = until

    def digest(self) -> str | None:
        return self.h.hexdigest() if self.pos == self.size else None
