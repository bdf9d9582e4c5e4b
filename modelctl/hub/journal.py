"""What a resumable download keeps on disk besides its bytes: the lock two pulls of one file share, the
server's validator of the file's version (ETag / Last-Modified / size, sent back as ``If-Range``), and the
journal of finished chunks (``<file>.incomplete.chunks``) that a later run resumes from."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

JOURNAL_MAGIC = "modelctl-chunks 1"


class FileChanged(Exception):
    """The server answered for another version of the file than the partial download holds."""

    def __init__(self, before: Validator, now: Validator):
        super().__init__("the file changed on the server")
        self.before, self.now = before, now


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None):
    """An exclusive flock on ``path`` (the same lock file huggingface_hub takes for this blob)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class Validator:
    """What tells one version of the file on the server from another: the first response's headers."""

    etag: str | None = None
    last_modified: str | None = None
    size: int | None = None

    @classmethod
    def of(cls, resp: http.client.HTTPResponse) -> "Validator":
        size = None
        total = (resp.getheader("Content-Range") or "").rpartition("/")[2]
        if total.isdigit():
            size = int(total)
        elif resp.status == 200 and (length := resp.getheader("Content-Length", "")).isdigit():
            size = int(length)
        return cls(resp.getheader("ETag"), resp.getheader("Last-Modified"), size)

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)

    def if_range(self) -> str | None:
        """The ``If-Range`` value: a strong ETag, else the date (weak ETags are not allowed there)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def same(self, other: "Validator") -> bool:
        if self.size is not None and other.size is not None and self.size != other.size:
            return False
        if self.etag and other.etag:
            return self.etag == other.etag
        if self.last_modified and other.last_modified:
            return self.last_modified == other.last_modified
        return True

    def line(self) -> str:
        return "@validator " + json.dumps([self.etag, self.last_modified, self.size]) + "\n"

    @classmethod
    def parse(cls, line: str) -> "Validator | None":
        try:
            etag, modified, size = json.loads(line[len("@validator "):])
            return cls(etag, modified, size)
        except (ValueError, TypeError):
            return None


class Journal:
    """``<file>.incomplete.chunks``: a header line, the first response's validator (``@validator [...]``),
    then one line per finished chunk index (``7``) and, inside a chunk larger than a block, progress lines
    (``7+1048576``: bytes done from the chunk's start)."""

    def __init__(self, path: Path, identity: str):
        self.path = path
        self.header = f"{JOURNAL_MAGIC} {identity}\n"
        self.fd: int | None = None
        self.lock = threading.Lock()
        self.validator: Validator | None = None
        self.other_version = False     # a journal was there, for another version (identity or size)

    def load(self) -> tuple[set[int], dict[int, int]] | None:
        """(finished chunk indexes, {chunk: bytes done}), or None when there is no journal for this identity."""
        try:
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError):
            return None
        if not text.startswith(self.header):
            self.other_version = text.startswith(JOURNAL_MAGIC)
            return None
        done: set[int] = set()
        partial: dict[int, int] = {}
        for line in text[len(self.header):].split("\n"):
            if line.startswith("@validator ") and self.validator is None:
                self.validator = Validator.parse(line)
                continue
            index, plus, off = line.partition("+")
            if not index.isdigit():
                continue
            if not plus:
                done.add(int(index))
            elif off.isdigit():
                partial[int(index)] = max(partial.get(int(index), 0), int(off))
        return done, {i: n for i, n in partial.items() if i not in done}

    def start(self, fresh: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self.fd = os.open(self.path, flags, 0o644)
        if fresh:
            self.validator = None
            os.write(self.fd, self.header.encode())

    def check(self, seen: Validator) -> None:
        """Record the first response's validator; raise _Changed when a later one is another version."""
        with self.lock:
            if self.validator is None:
                self.validator = seen
                os.write(self.fd, seen.line().encode())
                return
        if not self.validator.same(seen):
            raise FileChanged(self.validator, seen)

    def if_range(self) -> str | None:
        return self.validator.if_range() if self.validator else None

    def add(self, index: int, progress: int | None = None) -> None:
        line = f"{index}\n" if progress is None else f"{index}+{progress}\n"
        with self.lock:
            os.write(self.fd, line.encode())  # one small O_APPEND write: lines never interleave

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def remove(self) -> None:
        self.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
