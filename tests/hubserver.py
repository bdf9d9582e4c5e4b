"""A Hub-compatible HTTP server for tests (threaded http.server on 127.0.0.1).

It answers what huggingface_hub 2.x and modelctl request:

- ``GET /api/models/{repo}[/revision/{rev}]?blobs=true``: ``sha`` and ``siblings`` with ``size``,
  ``blobId`` and ``lfs: {sha256, size, pointerSize}``;
- ``GET /api/models/{repo}/tree/{rev}``: the tree listing;
- ``GET /api/models?author=`` (closest-name hints);
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` and for LFS files a 302 to a
  separate file host with ``X-Linked-Etag`` / ``X-Linked-Size``; the file host honours ``Range``;
- errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).

Faults, switched per test through ``server.faults``:
``drop_after`` (close after N body bytes, ``drop_times`` times), ``drop_random`` (close at a random
offset with this probability per response), ``corrupt_at`` (flip one byte of that file offset),
``stall_after`` (stop sending after N bytes, for ``stall_seconds``), ``fail_5xx`` (answer 503 that many
times), ``throttle`` (seconds of sleep per 64 KiB sent), ``no_range`` (ignore Range),
``no_validators`` (send neither ETag nor Last-Modified from the file host), ``ignore_if_range`` (answer the
Range even when ``If-Range`` names another version, as a broken server would).
``server.swap(repo, name, data, after_bytes=N)`` replaces a file once N of its body bytes were sent (between
two requests: the file host's ETag and Last-Modified change with it).
``server.sent[path]`` counts body bytes sent per file; ``server.peers`` holds the client address of every
connection the file host served.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK = 64 << 10


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    lfs: set[str] = field(default_factory=set)   # names stored with LFS (default: *.gguf and parts)
    gated: bool = False
    listed_sizes: dict[str, int] = field(default_factory=dict)   # sizes the listing claims instead

    def is_lfs(self, name: str) -> bool:
        return name in self.lfs or ".gguf" in name


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HubServer:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.faults: dict = {}
        self.sent: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.peers: set[tuple[str, int]] = set()
        self.swaps: list[tuple[str, str, bytes, int]] = []
        self.versions: dict[tuple[str, str], int] = {}    # (repo, name) -> times the file was replaced
        self.lock = threading.Lock()
        self.hub = _Server(("127.0.0.1", 0), self._handler(hub=True))
        self.files = _Server(("127.0.0.1", 0), self._handler(hub=False))
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.file_url = f"http://127.0.0.1:{self.files.server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.hub, self.files)]
        for t in self._threads:
            t.start()

    def close(self):
        for s in (self.hub, self.files):
            s.shutdown()
            s.server_close()

    def add(self, repo: str, files: dict[str, bytes], **kw) -> Repo:
        r = Repo(files=dict(files), **kw)
        self.repos[repo] = r
        return r

    def swap(self, repo: str, name: str, data: bytes, after_bytes: int = 0) -> None:
        """Replace ``repo``'s file ``name`` by ``data`` once ``after_bytes`` of it were sent (0: now)."""
        with self.lock:
            self.swaps.append((repo, name, data, self.sent_total(name, locked=True) + after_bytes))
        self._apply_swaps()

    def _apply_swaps(self) -> None:
        with self.lock:
            for s in list(self.swaps):
                repo, name, data, at = s
                if self.sent_total(name, locked=True) >= at:
                    self.repos[repo].files[name] = data
                    self.versions[(repo, name)] = self.versions.get((repo, name), 0) + 1
                    self.swaps.remove(s)

    def validators(self, repo: str, name: str) -> dict:
        """The file host's ETag and Last-Modified: they change whenever the file does."""
        if self.faults.get("no_validators"):
            return {}
        data = self.repos[repo].files[name]
        version = self.versions.get((repo, name), 0)
        return {"ETag": f'"{hashlib.sha256(data).hexdigest()[:20]}-{version}"',
                "Last-Modified": email.utils.formatdate(1_700_000_000 + 60 * version, usegmt=True)}

    def sent_total(self, name: str, locked: bool = False) -> int:
        if not locked:
            with self.lock:
                return self.sent_total(name, locked=True)
        return sum(v for k, v in self.sent.items() if k.endswith("/" + name) or k == name)

    # -- the handler ---------------------------------------------------------

    def _handler(self, hub: bool):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._dispatch(head=True)

            def do_GET(self):
                self._dispatch(head=False)

            def _dispatch(self, head: bool):
                parts = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(parts.path)
                query = urllib.parse.parse_qs(parts.query)
                with server.lock:
                    server.requests.append((self.command, self.path, dict(self.headers)))
                    if not hub:
                        server.peers.add(self.client_address)
                    fail = server.faults.get("fail_5xx", 0)
                    if fail and ("/resolve/" in path or not hub):
                        server.faults["fail_5xx"] = fail - 1
                if fail and ("/resolve/" in path or not hub):
                    return self._error(503, None, "try again")
                try:
                    if hub:
                        self._hub(path, query, head)
                    else:
                        self._file(path, head)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            # hub API ---------------------------------------------------------
            def _hub(self, path, query, head):
                if path == "/api/models":
                    author = query.get("author", [""])[0]
                    search = query.get("search", [""])[0]
                    ids = [r for r in server.repos if (author and r.startswith(author + "/")) or
                           (search and search.lower() in r.lower())]
                    return self._json([{"id": r, "modelId": r} for r in ids])
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/"):].split("/")
                    repo_id = "/".join(rest[:2])
                    repo = self._repo(repo_id)
                    if repo is None:
                        return
                    tail = rest[2:]
                    rev = "main"
                    if tail[:1] == ["revision"]:
                        rev = "/".join(tail[1:])
                        tail = []
                    elif tail[:1] == ["tree"]:
                        rev = tail[1] if len(tail) > 1 else "main"
                    if rev not in ("main", repo.commit):
                        return self._error(404, "RevisionNotFound", "Invalid rev id")
                    if tail[:1] == ["tree"]:
                        return self._json([self._tree_entry(repo, n) for n in sorted(repo.files)])
                    siblings = [self._sibling(repo, n) for n in sorted(repo.files)]
                    return self._json({"id": repo_id, "modelId": repo_id, "sha": repo.commit,
                                       "private": False, "gated": repo.gated, "siblings": siblings})
                segs = path.strip("/").split("/")
                if len(segs) >= 5 and segs[2] == "resolve":
                    repo_id = f"{segs[0]}/{segs[1]}"
                    repo = self._repo(repo_id, resolve=True)
                    if repo is None:
                        return
                    rev, name = segs[3], "/".join(segs[4:])
                    if rev not in ("main", repo.commit):
                        return self._error(404, "RevisionNotFound", "Invalid rev id", commit=None)
                    if name not in repo.files:
                        return self._error(404, "EntryNotFound", "Entry not found", commit=repo.commit)
                    data = repo.files[name]
                    headers = {"X-Repo-Commit": repo.commit}
                    if repo.is_lfs(name):
                        sha = hashlib.sha256(data).hexdigest()
                        headers.update({"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                                        "ETag": f'"{git_blob_id(data)}"',
                                        "Location": f"{server.file_url}/lfs/{repo_id}/{name}"})
                        return self._send(302, b"", headers, head=True)
                    headers["ETag"] = f'"{git_blob_id(data)}"'
                    return self._body(data, f"{repo_id}/{name}", headers, head)
                return self._error(404, None, "not found")

            def _repo(self, repo_id, resolve=False):
                repo = server.repos.get(repo_id)
                if repo is None:
                    self._error(401 if not resolve else 404, "RepoNotFound", "Repository not found")
                    return None
                if repo.gated and not self.headers.get("Authorization"):
                    self._error(401 if resolve else 403, "GatedRepo", "Access to this repo is restricted")
                    return None
                return repo

            def _sibling(self, repo, name):
                data = repo.files[name]
                size = repo.listed_sizes.get(name, len(data))
                s = {"rfilename": name, "size": size, "blobId": git_blob_id(data)}
                if repo.is_lfs(name):
                    s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": size, "pointerSize": 134}
                return s

            def _tree_entry(self, repo, name):
                data = repo.files[name]
                e = {"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
                if repo.is_lfs(name):
                    e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                return e

            # file host ---------------------------------------------------------
            def _file(self, path, head):
                server._apply_swaps()
                segs = path.strip("/").split("/")
                if len(segs) < 4 or segs[0] != "lfs":
                    return self._error(404, None, "no such object")
                repo_id = f"{segs[1]}/{segs[2]}"
                repo = server.repos.get(repo_id)
                name = "/".join(segs[3:])
                if repo is None or name not in repo.files:
                    return self._error(404, None, "no such object")
                headers = server.validators(repo_id, name)
                return self._body(repo.files[name], f"{repo_id}/{name}", headers, head)

            # bodies ------------------------------------------------------------
            def _body(self, data: bytes, key: str, headers: dict, head: bool):
                faults = server.faults
                start, end = 0, len(data)
                status = 200
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if if_range and if_range not in (headers.get("ETag"), headers.get("Last-Modified")) \
                        and not faults.get("ignore_if_range"):
                    rng = None      # another version than the client holds: the whole (new) file, 200
                if rng and not faults.get("no_range") and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start = int(a) if a else 0
                    end = int(b) + 1 if b else len(data)
                    end = min(end, len(data))
                    if start >= len(data):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head=True)
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
                headers["Accept-Ranges"] = "none" if faults.get("no_range") else "bytes"
                headers["Content-Length"] = str(end - start)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if head:
                    return
                drop_at = None
                with server.lock:
                    if faults.get("drop_after") is not None and faults.get("drop_times", 1) > 0:
                        drop_at = faults["drop_after"]
                        faults["drop_times"] = faults.get("drop_times", 1) - 1
                    elif faults.get("drop_random") and random.random() < faults["drop_random"]:
                        drop_at = random.randrange(0, max(1, end - start))
                    stall_at = faults.pop("stall_after", None)
                pos = start
                sent = 0
                while pos < end:
                    n = min(BLOCK, end - pos)
                    if drop_at is not None and sent + n > drop_at:
                        n = drop_at - sent
                        if n > 0:
                            self._write(data[pos:pos + n], key, pos, n)
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    if stall_at is not None and sent >= stall_at:
                        time.sleep(faults.get("stall_seconds", 5))
                        self.close_connection = True
                        return
                    self._write(data[pos:pos + n], key, pos, n)
                    pos += n
                    sent += n
                    if faults.get("throttle"):
                        time.sleep(faults["throttle"])

            def _write(self, chunk: bytes, key: str, pos: int, n: int):
                corrupt = server.faults.get("corrupt_at")
                if corrupt is not None and pos <= corrupt < pos + n:
                    b = bytearray(chunk)
                    b[corrupt - pos] ^= 0xFF
                    chunk = bytes(b)
                self.wfile.write(chunk)
                with server.lock:
                    server.sent[key] = server.sent.get(key, 0) + n

            def _json(self, obj):
                self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

            def _error(self, status, code, message, commit=None):
                headers = {"X-Error-Message": message, "Content-Type": "application/json"}
                if code:
                    headers["X-Error-Code"] = code
                if commit:
                    headers["X-Repo-Commit"] = commit
                self._send(status, json.dumps({"error": message}).encode(), headers)

            def _send(self, status, body: bytes, headers: dict, head: bool = False):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head and self.command != "HEAD":
                    self.wfile.write(body)

        return Handler


if __name__ == "__main__":  # a manual server: python tests/hubserver.py
    import os

    s = HubServer()
    s.add("test/tiny-GGUF", {"README.md": b"# tiny\n", "tiny.Q4_0.gguf": os.urandom(4 << 20)})
    print(s.url, flush=True)
    threading.Event().wait()
