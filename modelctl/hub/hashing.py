"""sha256 of files: whole files, copies, and a file that is being downloaded out of order.

``OrderedHasher`` hashes a download while its bytes land.  The parallel workers each write their own
chunk; the hash must see the file in order, so it follows the contiguous prefix of what was written.  It
has no thread of its own: the worker whose block lands at the hash position hashes it from its own buffer
(still in the CPU's cache) and goes on with the blocks the other workers left in memory (a fixed pool of
``POOL_BLOCKS`` buffers, so memory is bounded whatever the file size); only bytes that did not fit in the
pool, or that an earlier run left on disk, are read back from the file.

Measured (``bench/pull.py --size-mib 1024 --repeat 5``, 1 GiB on loopback, 2 shared cores, load average
0.5 -> 1.7, medians): curl 1.22 s; curl + hashlib sha256 2.03 s; curl && sha256sum 4.32 s; modelctl
verified 1.06 s (1.15x curl, 1.92x curl + hashlib, 4.08x curl && sha256sum), unverified 0.69 s (1.77x
curl), one stream verified 2.56 s (0.48x curl); hf_transfer 1.46 s.  Peak RSS 44 MiB for 256 MiB, 47 MiB
for 1 GiB (60 MiB for 4 GiB, the bench's ``run_modelctl`` by itself): the pool fills as far as the
connections get ahead, never further; hf_transfer 195 MiB.  Under load (2.0 -> 3.6) the same run gave
1.47 s verified against curl's 1.32 s (0.90x).

What it took (the same file): a hasher thread woken per block fell behind the 8 workers and read 170-860
MiB back from the page cache (1.8-3.4 s verified); hashing in the worker at the front, from its own
buffer, and 4 connections instead of 8 (``transfer._Ramp``; 8 raced ahead of the hash) left nothing to
read back; buffered writes from several workers spun on the file's inode lock (23 % of the CPU:
``transfer._Output`` takes a lock of its own); the copy into the page cache was then 55 % of the CPU, and
the noisiest part (0.7-2.7 s of system time per GiB on this VM): aligned blocks are written with
``O_DIRECT`` (0.3-0.5 s), which also leaves nothing dirty for the fsync before the rename.  Receive
buffers smaller than 1 MiB helped only the single stream, which still writes through the page cache
(``transfer.STREAM_BLOCK``).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
from collections import deque
from pathlib import Path
from typing import Union

BLOCK = 1 << 20                  # bytes per recv/pwrite, and per pooled buffer
READ_BLOCK = 4 * BLOCK           # read-back size
POOL_BLOCKS = 32                 # in-memory blocks waiting for the hash, at most (32 MiB)

Buffer = Union[bytearray, mmap.mmap]


def block_buffer(size: int = BLOCK) -> mmap.mmap:
    """A receive buffer at a page boundary (anonymous memory), as ``O_DIRECT`` writes need."""
    return mmap.mmap(-1, size)


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


class OrderedHasher:
    """Hashes ``path`` in order while workers write it chunk by chunk (each chunk front to back, the chunks
    in any order), without a thread of its own: the worker whose block lands at the hash position hashes it
    there and then, from its own buffer while the bytes are still in the CPU's cache, and goes on with the
    blocks that follow for as long as they are there.  One thread hashes at a time (``hashing``); the
    others never wait for it.

    ``filled`` gives, per chunk index, the bytes already on disk from the chunk's start (a resumed run).
    After writing a block, a worker calls ``landed(index, pos, n, buf)`` and receives its next block into
    the buffer that returns: its own again, or a spare one when its block, ahead of the hash, was kept in
    memory for later (a pool of ``pool_blocks`` buffers, so memory stays flat whatever the file size).
    A block the pool had no room for is read back from the file when the hash gets there (from the disk,
    if it was written direct), and so is what an earlier run left.  ``finish()`` hashes what is left once
    the workers are done.
    """

    def __init__(self, path: Path, size: int, chunk: int, filled: dict[int, int], pool_blocks: int = POOL_BLOCKS,
                 block: int = BLOCK):
        self.path, self.size, self.chunk, self.block = path, size, chunk, block
        self.filled = dict(filled)             # chunk -> bytes written from its start
        self.kept: dict[int, deque[int]] = {}  # chunk -> offsets of its blocks in memory, in order
        self.mem: dict[int, tuple[Buffer, int]] = {}   # offset -> (buffer, length)
        self.spare: list[Buffer] = []
        self.pool_left = pool_blocks
        self.lock = threading.Lock()
        self.hashing = False                   # a thread is hashing
        self.stopped = False
        self.pos = 0                           # bytes hashed
        self.h = hashlib.sha256()
        self.read_back = 0                     # bytes hashed from the file rather than from memory
        self.read_buf: bytearray | None = None

    def landed(self, index: int, pos: int, n: int, buf: Buffer) -> Buffer:
        """Bytes ``[pos, pos + n)`` of chunk ``index`` are written, and are in ``buf[:n]``; returns the buffer
        to receive the next block into."""
        with self.lock:
            self.filled[index] = pos + n - index * self.chunk
            mine = pos == self.pos and not self.hashing
            if not mine:
                buf = self._keep(index, pos, n, buf)
                if self.hashing or not self._ready():
                    return buf
            self.hashing = True
        self._drain((buf, n) if mine else None)
        return buf

    def finish(self) -> str | None:
        """Hash what is left (the workers are done); the hex digest, or None when the file is not whole."""
        with self.lock:
            self.hashing = True
        self._drain()
        return self.h.hexdigest() if self.pos == self.size else None

    def stop(self) -> None:
        """The download stops (Ctrl-C, a failure): a thread hashing returns after its current block."""
        self.stopped = True

    def _keep(self, index: int, pos: int, n: int, buf: Buffer) -> Buffer:
        """Keep ``buf`` for the hash if the pool allows (holding the lock); the worker's buffer for its next
        block: a spare one, or ``buf`` again when there is none (this block is read back later)."""
        if self.spare:
            other = self.spare.pop()
        elif self.pool_left:
            self.pool_left -= 1
            other = block_buffer(self.block)
        else:
            return buf
        self.kept.setdefault(index, deque()).append(pos)
        self.mem[pos] = (buf, n)
        return other

    def _ready(self) -> bool:
        """The bytes at the hash position are there (holding the lock)."""
        index = self.pos // self.chunk
        return self.pos in self.mem or index * self.chunk + self.filled.get(index, 0) > self.pos

    def _next(self) -> tuple[tuple[Buffer, int] | None, int]:
        """The block at the hash position from memory, or how far the file can be read back from there (up
        to the next block in memory; 0: nothing is there yet).  Holding the lock."""
        index = self.pos // self.chunk
        kept = self.kept.get(index)
        block = self.mem.pop(self.pos, None)
        if block is not None:
            kept.popleft()
            return block, 0
        written = index * self.chunk + self.filled.get(index, 0)
        if written <= self.pos:
            return None, 0
        return None, min(written, kept[0]) if kept else written

    def _drain(self, first: tuple[Buffer, int] | None = None) -> None:
        """Hash ``first`` (the block at the hash position, in the caller's buffer), then on from there while
        the bytes are there.  The caller set ``hashing``; this clears it, in the same step as finding
        nothing more, so no block that lands meanwhile is left waiting."""
        try:
            if first is not None:
                self._hash_block(*first)
            while True:
                with self.lock:
                    block, until = (None, 0) if self.stopped or self.pos == self.size else self._next()
                    if block is None and not until:
                        self.hashing = False
                        return
                if block is not None:
                    buf, n = block
                    self._hash_block(buf, n)
                    with self.lock:
                        self.spare.append(buf)
                else:
                    self._read_back(until)
        except BaseException:
            with self.lock:
                self.hashing = False
            raise

    def _hash_block(self, buf: Buffer, n: int) -> None:
        self.h.update(memoryview(buf)[:n])    # hashlib releases the GIL: the other workers go on
        with self.lock:
            self.pos += n

    def _read_back(self, until: int) -> None:
        if self.read_buf is None:
            self.read_buf = bytearray(self.block)   # block-sized: still in the CPU's cache when hashed
        hash_file(self.path, self.h, self.pos, until, self.read_buf)
        with self.lock:
            self.read_back += until - self.pos
            self.pos = until
