"""The download engine: parallel ranged HTTP transfer that resumes, retries and verifies.

Why our own downloader and not hf_transfer
------------------------------------------
hf_transfer (``hf_transfer.download(url, filename, max_files, chunk_size, ...)``) is a fast parallel
ranged downloader, but it is all-or-nothing: it (re)creates the output file, keeps which ranges are done
in memory only, and has no way to start from a partial file or to fetch a sub-range.  An interrupt
(Ctrl-C, a dropped connection beyond its retries, ``kill -9``) therefore loses everything written so far,
which is exactly the failure this command exists to fix.  Using it "per chunk" would mean one output file
and one call (thread pool + connections set up and torn down) per chunk, then a copy to join them.
So modelctl downloads with its own small engine built on ``http.client``:

- worker threads, each with one keep-alive connection, take chunks from a queue in file order and
  ``os.pwrite`` each received block at its offset into ``<blob>.incomplete`` (pre-sized, sparse): aligned
  blocks with ``O_DIRECT`` where the filesystem allows (``_Output``); a download starts with
  ``RAMP_START`` of them and adds more, up to ``workers``, while each connection is slow (``_Ramp``);
- each finished chunk is appended to a sidecar journal ``<blob>.incomplete.chunks``; a new run reads the
  journal and fetches only the missing chunks (resume at chunk granularity after Ctrl-C, a crash or
  ``kill -9``; a dropped connection inside a run resumes at byte granularity from where it stopped);
- transient failures (connection reset, timeout/stall, 5xx, short body) are retried with exponential
  backoff; a chunk fails the download only after ``RETRIES`` attempts in a row without progress;
- the sha256 is computed while the bytes land, in order, following the contiguous written prefix of the
  file (``modelctl.hub.hashing.OrderedHasher``): the worker whose block lands at the hash position hashes
  it from its own buffer, and the blocks that follow, kept in memory (a fixed pool) until then; a single
  stream (below) hashes each block as it writes it;
- the first response's ``ETag`` / ``Last-Modified`` / size are recorded in the journal; every later range
  request (in this run or a resumed one) sends ``If-Range``, and an answer for another version of the
  file (a 200, or a different validator) discards the partial file and starts over from zero, with one
  line saying so.  A server that gives no validator at all cannot prove a resumed file is one version:
  the final sha256 is then compared with the expected one, or the user is told it could not be verified;
- only a verified file is renamed (atomically) to its final name; a mismatch removes the partial file.

``bench/pull.py`` measures this engine beside ``curl`` (with and without ``sha256sum``) and hf_transfer on
the same 1 GiB file; the figures are in the module docstring of ``modelctl.hub.hashing``.
hf_transfer buys no speed here (1.46 s, 0.83x curl, against modelctl's 1.06 s verified) and costs resume.

Servers without ``Range`` support (or that do not tell the size, like the olah mirror) get a single
stream; it still resumes with ``Range: bytes=N-`` when the server later honours it, and otherwise starts
over (it cannot do better).

The journal is written after the chunk's bytes were handed to the kernel (``pwrite``: on the disk for a
direct write, else in the page cache); after ``kill -9`` they are kept.  After a power loss a journaled
chunk could be missing (the disk's cache, the page cache): the sha256 check catches it and the next pull
starts that file over.  The finished file is fsynced before it gets its name.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import queue
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from modelctl.core.diskspace import DISK_FULL, check_free_disk, disk_full
from modelctl.core.errors import IntegrityError, Interrupted, ModelctlError, NetworkError
from modelctl.hub.connection import Client, Fatal, NoRanges, Transient, http_error
from modelctl.hub.hashing import BLOCK, POOL_BLOCKS, Buffer, OrderedHasher, block_buffer, hash_file, sha256_file
from modelctl.hub.journal import FileChanged, Journal, Validator, file_lock

RETRIES = 6                      # attempts in a row without progress before a chunk fails
BACKOFF_FIRST = 0.25             # seconds; doubles each attempt (with jitter), capped
BACKOFF_MAX = 8.0
DEFAULT_WORKERS = 8              # connections per file, at most (a CDN may cap each one)
RAMP_START = 4                   # connections a ranged download starts with
MIN_CHUNK = 256 << 10
MAX_CHUNK = POOL_BLOCKS * BLOCK // RAMP_START   # 8 MiB: the hash's pool holds a chunk per starting connection
RAMP_EVERY = 0.5                 # seconds between looks at the throughput while connections are added
RAMP_BELOW = 64 << 20            # bytes/s: a connection slower than this gets company (see _Ramp)
RESTARTS = 3                     # times a download starts over because the file changed on the server
FLUSH_EVERY = 0.5                # seconds between early writebacks of what landed
STREAM_BLOCK = 512 << 10         # the single stream's buffer (see _stream)
DIRECT_ALIGN = 4096              # O_DIRECT writes: offsets, lengths and buffers in multiples of this
KEPT = "the partial download is kept: run the same command to resume"


def http_timeout() -> float:
    """Seconds without a byte before a connection counts as stalled."""
    try:
        return float(os.environ.get("MODELCTL_HTTP_TIMEOUT", "30"))
    except ValueError:
        return 30.0


def chunk_size_for(size: int, workers: int) -> int:
    """At least 256 chunks (so the work spreads evenly over the workers to the end), each between
    ``MIN_CHUNK`` and ``MAX_CHUNK``, a multiple of 64 KiB.  ``workers`` is accepted for future tuning.
    Larger chunks cost fewer round trips, but the connections' chunks ahead of the hash must fit in its
    pool (1 GiB on loopback in 16 MiB chunks read 290-555 MiB back and took 15 % longer than in 8 MiB)."""
    c = size // 256
    c = max(MIN_CHUNK, min(MAX_CHUNK, c))
    return (c + 0xFFFF) & ~0xFFFF


@dataclass
class Result:
    path: Path
    status: str            # "downloaded" | "resumed" | "cached"
    size: int
    sha256: str | None
    fetched: int           # bytes received over the network in this run


# ---------------------------------------------------------------------------
# the download
# ---------------------------------------------------------------------------


def download(url: str, dest: Path, *, size: int | None, sha256: str | None, identity: str,
             headers: dict[str, str] | None = None, workers: int = DEFAULT_WORKERS, lock: Path | None = None,
             chunk_size: int | None = None, on_progress: Callable[[int], None] | None = None,
             on_start: Callable[[int, int | None], None] | None = None,
             on_wait: Callable[[], None] | None = None, on_note: Callable[[str], None] | None = None,
             on_done: Callable[[Result], None] | None = None, where: str | None = None,
             verify: Callable[[Path], None] | None = None, compute_sha256: bool = True) -> Result:
    """Download ``url`` to ``dest`` (atomically; ``dest`` appears only when complete and verified).

    ``identity`` (the etag or sha256, or the URL) ties a partial file and its journal to this content.
    ``on_start(already_on_disk, size)`` is called once the work is known; ``on_progress(n)`` per block;
    ``on_note(line)`` for what the user should know (a restart because the file changed, a resume that
    could not be verified); ``on_done(result)`` while the lock is still held (to store what goes with it).
    ``verify(path)`` may raise IntegrityError to reject the finished file before it gets its final name.
    The sha256 is computed (and reported in the Result) even when not known in advance, unless
    ``compute_sha256`` is False and no ``sha256`` is given (the benchmark's raw-transfer mode).
    Ctrl-C raises ``Interrupted`` saying the partial download is kept.
    """
    dest = Path(dest)
    where = where or dest.name
    lock = lock or dest.with_name(dest.name + ".lock")
    job = _Job(url, dest, size=size, sha256=sha256, identity=identity, headers=headers or {},
               workers=max(1, workers), chunk_size=chunk_size, on_progress=on_progress, on_start=on_start,
               note=on_note or (lambda line: None), where=where, verify=verify,
               hashing=bool(sha256) or compute_sha256)
    with file_lock(lock, on_wait):
        if dest.exists():
            got = dest.stat().st_size
            if size is None or got == size:
                if on_start:
                    on_start(got, got)
                return Result(dest, "cached", got, sha256, 0)
        try:
            result = job.run()
        except Interrupted:
            raise
        except KeyboardInterrupt:
            if job.incomplete.exists():
                raise Interrupted(KEPT) from None
            raise
        if on_done:
            on_done(result)
        return result


@dataclass
class _Job:
    """One file's download: what to fetch and where, and the callbacks (see ``download``)."""

    url: str
    dest: Path
    size: int | None
    sha256: str | None
    identity: str
    headers: dict
    workers: int
    chunk_size: int | None
    on_progress: Callable | None
    on_start: Callable | None
    note: Callable[[str], None]
    where: str
    verify: Callable | None
    hashing: bool

    @property
    def incomplete(self) -> Path:
        return self.dest.with_name(self.dest.name + ".incomplete")

    def run(self) -> Result:
        for restart in range(RESTARTS + 1):
            try:
                if self.size is None or self.size == 0:
                    return _stream(self)
                return _ranged(self)
            except FileChanged as changed:
                _discard(self.incomplete, Journal(self.incomplete.with_name(self.incomplete.name + ".chunks"), ""))
                if restart == RESTARTS:
                    raise NetworkError("the file kept changing on the server during the download",
                                       where=self.where, hint="run the command again later") from None
                self.note(_restart_line(self.where, changed))
        raise AssertionError("unreachable")

    def unverified(self, resumed_from: int, vouched: bool) -> None:
        """A resume the server could not vouch for, with nothing to check the result against: say so."""
        if resumed_from and not vouched and not self.sha256 and self.verify is None:
            self.note(f"{self.where}: resumed a partial download, but the server sends no ETag or "
                      "Last-Modified and no sha256 is known: the file could not be verified "
                      "(give its sha256 to check it)")


class _Flusher(threading.Thread):
    """Writes what landed in the page cache to disk while the download runs (``fdatasync`` every
    ``FLUSH_EVERY`` seconds, in the kernel's writeback, beside the transfer), so the fsync before the rename
    has little left to do: it was 12 % of a 1 GiB pull on loopback when all of the file waited for it.
    (A single stream writes everything through the page cache; a parallel download only what could not be
    written direct.)"""

    def __init__(self, fd: int):
        super().__init__(daemon=True, name="modelctl-flush")
        self.fd = fd
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(FLUSH_EVERY):
            try:
                os.fdatasync(self.fd)
            except OSError:
                return

    def stop(self) -> None:
        """Before the file descriptor is closed."""
        self.done.set()
        self.join()


@contextmanager
def _flushing(out):
    flusher = _Flusher(out.fileno())
    try:
        yield
    finally:
        flusher.stop()


class _Output:
    """The partial file the workers write into, one write at a time, through ``O_DIRECT`` where the
    filesystem allows it and the block is aligned (every block but a file's last, or one after a dropped
    connection): those bytes go from the worker's buffer to the disk, with no copy into the page cache
    and nothing left for the fsync before the rename; the rest is written through the page cache.

    One at a time: the kernel lets one write into a file run at a time (the inode lock), and writers that
    wait for it spin on the CPU while the holder copies (23 % of a 2-connection pull's CPU on loopback);
    waiting for this lock first, they sleep instead."""

    def __init__(self, path: Path, fd: int):
        self.fd = fd
        self.direct = _open_direct(path)
        self.lock = threading.Lock()

    def write(self, view: memoryview, pos: int) -> None:
        aligned = pos % DIRECT_ALIGN == 0 and len(view) % DIRECT_ALIGN == 0
        with self.lock:
            n = self._direct(view, pos) if aligned and self.direct >= 0 else os.pwrite(self.fd, view, pos)
        if n != len(view):
            raise OSError(errno.EIO, "short write")

    def _direct(self, view: memoryview, pos: int) -> int:
        try:
            return os.pwrite(self.direct, view, pos)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self.close()          # the filesystem takes no direct writes after all (or not of this size)
            return os.pwrite(self.fd, view, pos)

    def close(self) -> None:
        if self.direct >= 0:
            os.close(self.direct)
            self.direct = -1


def _open_direct(path: Path) -> int:
    """A second descriptor of ``path`` for direct writes, or -1 where there are none (tmpfs, macOS...)."""
    if not hasattr(os, "O_DIRECT"):
        return -1
    try:
        return os.open(path, os.O_WRONLY | os.O_DIRECT)
    except OSError:
        return -1


def _restart_line(where: str, changed: FileChanged) -> str:
    return (f"{where}: the file changed on the server ({_what_changed(changed)}): "
            "the partial download was discarded, starting over from zero")


def _what_changed(changed: FileChanged) -> str:
    b, n = changed.before, changed.now
    if b.etag and n.etag and b.etag != n.etag:
        return f"ETag {b.etag} -> {n.etag}"
    if b.size is not None and n.size is not None and b.size != n.size:
        return f"size {b.size} -> {n.size}"
    if b.last_modified and n.last_modified and b.last_modified != n.last_modified:
        return f"Last-Modified {b.last_modified} -> {n.last_modified}"
    return "it no longer honours the range of the same version"


def _ranged(job: _Job) -> Result:
    size, incomplete, where = job.size, job.incomplete, job.where
    chunk = job.chunk_size or chunk_size_for(size, job.workers)
    n_chunks = (size + chunk - 1) // chunk
    journal = Journal(incomplete.with_name(incomplete.name + ".chunks"), f"size={size} chunk={chunk} id={job.identity}")
    loaded = journal.load() if incomplete.exists() else None
    if loaded is None and incomplete.exists() and journal.other_version:
        job.note(f"{where}: the partial download was of another version of the file: starting over from zero")
    fresh = loaded is None
    vouched = bool(journal.validator)        # the partial file's version is known (If-Range can check it)
    done, partial = loaded or (set(), {})
    done = {i for i in done if 0 <= i < n_chunks}
    partial = {i: n for i, n in partial.items() if 0 <= i < n_chunks and 0 < n < chunk}
    have = sum(min(size, (i + 1) * chunk) - i * chunk for i in done) + sum(partial.values())
    check_free_disk(job.dest.parent, size - have if not fresh else size, where)
    fd = os.open(incomplete, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0), 0o644)
    try:
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise ModelctlError(f"cannot make room for {size} bytes: {os.strerror(exc.errno)}", where=where,
                                    hint="free some space (or raise the file size limit) and run again") from exc
            raise
        journal.start(fresh)
        if job.on_start:
            job.on_start(have, size)
        hasher = None
        if job.hashing:
            filled = {i: min(size, (i + 1) * chunk) - i * chunk for i in done} | partial
            hasher = OrderedHasher(incomplete, size, chunk, filled)
        flusher = _Flusher(fd)
        out = _Output(incomplete, fd)
        try:
            fetched = _parallel(job, out, chunk, n_chunks, done, partial, journal, hasher)
        except NoRanges as handoff:
            if hasher:
                hasher.stop()
            journal.remove()
            os.close(fd)
            fd = -1
            return _stream(job, restart=True, initial=handoff, already_reported=have)
        except BaseException:
            if hasher:
                hasher.stop()
            raise
        finally:
            out.close()
            flusher.stop()
        digest = hasher.finish() if hasher else None
        os.fsync(fd)
    finally:
        journal.close()
        if fd >= 0:
            os.close(fd)
    _finish(job, journal, size, digest)
    job.unverified(have, vouched)
    return Result(job.dest, "resumed" if have else "downloaded", size, digest or job.sha256, fetched)


def _finish(job: _Job, journal: Journal | None, size, digest) -> None:
    incomplete, where, sha256 = job.incomplete, job.where, job.sha256
    got = incomplete.stat().st_size
    if size is not None and got != size:
        _discard(incomplete, journal)
        raise IntegrityError(f"size mismatch: got {got} bytes, expected {size}", where=where,
                             hint="the partial file was removed; run the command again")
    if sha256 and digest != sha256.lower():
        _discard(incomplete, journal)
        raise IntegrityError(f"sha256 mismatch: got {digest}, expected {sha256}", where=where,
                             hint="the corrupt download was removed; run the command again")
    if job.verify is not None:
        try:
            job.verify(incomplete)
        except BaseException:
            _discard(incomplete, journal)
            raise
    os.replace(incomplete, job.dest)
    if journal:
        journal.remove()


def _discard(incomplete: Path, journal: Journal | None) -> None:
    if journal:
        journal.remove()
    try:
        incomplete.unlink()
    except FileNotFoundError:
        pass


def _gave_up(exc: BaseException, where: str) -> NetworkError:
    return NetworkError(f"download failed after {RETRIES} attempts: {exc}", where=where,
                        hint="run the same command again to resume")


def _backoff(attempt: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** attempt) * (0.5 + random.random() / 2)


class _Ramp:
    """How many connections a ranged download uses: ``RAMP_START``, doubled (up to ``cap``) at each look,
    every ``RAMP_EVERY`` seconds, that finds them bringing less than ``RAMP_BELOW`` each.  A CDN that caps
    each connection gets them all within a second; a link where one connection is fast (loopback, a LAN,
    an uncapped mirror) is limited by the CPU and the disk instead, and there more connections race ahead
    of the hash (their blocks no longer fit in its pool and are read back from the file) and cost time.
    1 GiB on loopback, 2 cores, medians of 6: 2 connections 1.44 s, 3: 1.27 s, 4: 1.31 s, 6: 1.28 s
    (from 6 on, blocks are read back); with writes through the page cache 8 connections read back
    450-870 MiB and took 2.1-2.7 s."""

    def __init__(self, cap: int, now: float):
        self.cap = cap
        self.running = min(cap, RAMP_START)
        self.since, self.total = now, 0

    def more(self, total: int, now: float) -> int:
        """How many connections to add, ``total`` bytes having been received so far."""
        if self.running >= self.cap or now - self.since < RAMP_EVERY:
            return 0
        each = (total - self.total) / (now - self.since) / self.running
        self.since, self.total = now, total
        if each >= RAMP_BELOW:
            return 0
        added = min(self.cap, 2 * self.running) - self.running
        self.running += added
        return added


def _parallel(job: _Job, out: _Output, chunk, n_chunks, done, partial, journal: Journal,
              hasher: OrderedHasher | None) -> int:
    url, size, where, on_progress = job.url, job.size, job.where, job.on_progress
    todo: queue.Queue[int] = queue.Queue()
    for i in range(n_chunks):
        if i not in done:
            todo.put(i)
    if todo.empty():
        return 0
    stop = threading.Event()
    ranges_ok = threading.Event()
    failures: list[BaseException] = []
    fetched = [0]
    fetched_lock = threading.Lock()
    timeout = http_timeout()
    clients: list[Client] = []

    def receive(resp, index: int, pos: int, want: int, buf: Buffer) -> tuple[int, Buffer]:
        """One block of the response into ``buf``, written at ``pos`` and handed to the hash; its length and
        the buffer to receive the next block into."""
        view = memoryview(buf)
        n = resp.readinto(view[: min(len(buf), want)])
        if not n:
            raise Transient("connection closed early")
        out.write(view[:n], pos)
        if hasher:
            buf = hasher.landed(index, pos, n, buf)
        return n, buf

    def fetch_chunk(client: Client, index: int, buf: Buffer) -> Buffer:
        start = index * chunk
        end = min(size, start + chunk)           # exclusive
        pos = start + partial.get(index, 0)
        attempt = 0
        while pos < end:
            if stop.is_set():
                return buf
            progressed = False
            try:
                resp, _ = client.get(url, pos, end - 1, if_range=journal.if_range())
                if resp.status == 200:
                    seen = Validator.of(resp)
                    if journal.validator and not journal.validator.same(seen):
                        client.close()
                        raise FileChanged(journal.validator, seen)
                    client.handed_off = True
                    raise NoRanges(client, resp)
                if resp.status != 206:
                    raise http_error(resp, url)
                journal.check(Validator.of(resp))
                ranges_ok.set()
                want = end - pos
                while want:
                    if stop.is_set():
                        client.close()
                        return buf
                    n, buf = receive(resp, index, pos, want, buf)
                    pos += n
                    want -= n
                    progressed = True
                    if want:
                        journal.add(index, pos - start)
                    with fetched_lock:
                        fetched[0] += n
                    if on_progress:
                        on_progress(n)
                if resp.length:  # a server that sent more than asked: do not reuse the connection
                    client.close()
            except (Transient, OSError, http.client.HTTPException) as exc:
                client.close()
                if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                    raise Fatal(disk_full(where)) from exc
                if isinstance(exc, OSError) and exc.errno in (errno.EIO, errno.EROFS, errno.EBADF):
                    raise
                attempt = 0 if progressed else attempt + 1
                if attempt >= RETRIES:
                    raise Fatal(_gave_up(exc, where)) from exc
                stop.wait(_backoff(attempt))      # wakes at once when the download stops (Ctrl-C)
        journal.add(index)
        return buf

    def worker(first: bool) -> None:
        client = Client(job.headers, timeout)
        clients.append(client)
        buf = block_buffer()                     # this worker's receive buffer (the hash may swap it)
        try:
            if not first:
                # The first worker's answer tells whether the server honours Range; wait for it so a
                # server that does not (olah, some proxies) is not asked for the whole file N times.
                while not ranges_ok.wait(0.1):
                    if stop.is_set():
                        return
            while not stop.is_set():
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                buf = fetch_chunk(client, index, buf)
        except BaseException as exc:  # handed to the main thread
            failures.append(exc)
            stop.set()
            if hasher:
                hasher.stop()             # a worker hashing returns sooner
            for other in list(clients):   # do not wait for stalled peers to time out
                if other is not client:
                    other.abort()
        finally:
            if not client.handed_off:
                client.close()

    threads: list[threading.Thread] = []

    def add_worker() -> None:
        t = threading.Thread(target=worker, args=(not threads,), daemon=True, name=f"modelctl-dl-{len(threads)}")
        threads.append(t)
        t.start()

    ramp = _Ramp(job.workers, time.monotonic())
    for _ in range(min(ramp.running, todo.qsize())):
        add_worker()
    try:
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(0.1)
            if todo.empty() or stop.is_set():
                continue
            for _ in range(ramp.more(fetched[0], time.monotonic())):
                add_worker()
    except BaseException:
        # Ctrl-C: stop the workers and wait for them, so none writes through a file descriptor that is
        # closed (and perhaps reused) once this function returns.  A second Ctrl-C stops the waiting.
        stop.set()
        if hasher:
            hasher.stop()
        for c in list(clients):
            c.abort()
        deadline = time.monotonic() + 10
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        raise
    if failures:
        exc = failures[0]
        if isinstance(exc, Fatal):
            raise exc.error
        raise exc
    return fetched[0]


def _stream(job: _Job, *, restart: bool = False, initial: NoRanges | None = None,
            already_reported: int = 0) -> Result:
    """One sequential GET; resumes from the partial file with ``Range: bytes=N-`` (and ``If-Range``) when
    honoured, hashing each block as it writes it.  One thread receives, writes and hashes each block in
    turn, so the writes go through the page cache (a direct write would make it wait for the disk), from a
    buffer small enough to still be in the CPU's L2 cache when it is copied there and hashed: with 512 KiB
    a 1 GiB stream on loopback took 1.35 s, with 1 MiB 1.9-3.1 s (``STREAM_BLOCK``)."""
    dest, incomplete, size, where, on_progress = job.dest, job.incomplete, job.size, job.where, job.on_progress
    journal = Journal(incomplete.with_name(incomplete.name + ".chunks"), f"stream id={job.identity}")
    have = 0
    if not restart and incomplete.exists() and journal.load() is not None:
        have = incomplete.stat().st_size
    else:
        if not restart and incomplete.exists() and journal.other_version:
            job.note(f"{where}: the partial download was of another version of the file: starting over from zero")
        _discard(incomplete, journal)
    resumed_from = have
    vouched = bool(journal.validator)
    if size:
        check_free_disk(dest.parent, size - have, where)
    journal.start(fresh=have == 0)
    fetched = 0
    attempt = 0
    client = initial.client if initial else Client(job.headers, http_timeout())
    client.handed_off = False
    h = hashlib.sha256()         # of the partial file's first ``hashed`` bytes, fed as they arrive
    hashed = 0
    started = initial is not None
    reported = already_reported
    view = memoryview(bytearray(STREAM_BLOCK))
    try:
        while True:
            try:
                if initial is not None:
                    resp, initial = initial.resp, None
                else:
                    resp, _ = client.get(url=job.url, start=have if have else None, if_range=journal.if_range())
                seen = Validator.of(resp)
                if resp.status == 200:
                    if have:   # the whole file again: the server ignores Range, or it is another version
                        if journal.validator and not journal.validator.same(seen):
                            job.note(_restart_line(where, FileChanged(journal.validator, seen)))
                        journal.close()
                        journal.start(fresh=True)
                    if reported and on_progress:
                        on_progress(-reported)
                    reported = have = resumed_from = 0
                    h, hashed = hashlib.sha256(), 0
                elif resp.status == 206 and have:
                    pass
                elif resp.status == 416 and have and size in (None, have):
                    resp.read()
                    break
                else:
                    raise http_error(resp, url=job.url)
                journal.check(seen)
                if not started:
                    started = True
                    if job.on_start:
                        total = size
                        if total is None and resp.length is not None:
                            total = have + resp.length
                        job.on_start(have, total)
                    reported = have
                if hashed < have:  # resuming a partial file: the hash must still cover all of it
                    hash_file(incomplete, h, hashed, have)
                    hashed = have
                with open(incomplete, "r+b" if have else "wb") as out, _flushing(out):
                    out.seek(have)
                    out.truncate()
                    while n := resp.readinto(view):
                        out.write(view[:n])
                        h.update(view[:n])
                        have += n
                        hashed += n
                        fetched += n
                        reported += n
                        attempt = 0
                        if on_progress:
                            on_progress(n)
                    out.flush()
                    os.fsync(out.fileno())
                if resp.length:  # the body ended before Content-Length said
                    raise Transient("connection closed early")
                if size is not None and have < size:
                    raise Transient("connection closed early")
                break
            except Fatal as exc:
                raise exc.error
            except (Transient, OSError, http.client.HTTPException) as exc:
                client.close()
                if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                    raise disk_full(where) from exc
                attempt += 1
                if attempt >= RETRIES:
                    raise _gave_up(exc, where) from exc
                time.sleep(_backoff(attempt))
    finally:
        client.close()
        journal.close()
    digest = sha256_file(incomplete, h, hashed)   # reads nothing back unless the server said 416
    _finish(job, journal, size, digest)
    job.unverified(resumed_from, vouched)
    return Result(dest, "resumed" if fetched < have else "downloaded", have, digest, fetched)
