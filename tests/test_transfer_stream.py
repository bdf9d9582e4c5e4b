"""modelctl.hub.transfer's single-stream path (servers that do not tell the size, like the olah mirror).

It hashes each block as it writes it; these tests make sure a resumed stream still verifies the WHOLE
file (the part left by an earlier run is read back once), against a real HTTP server on 127.0.0.1 that
honours Range and can drop the connection part-way.
"""

from __future__ import annotations

import hashlib
import http.server
import socketserver
import threading

import pytest

from modelctl.hub import journal, transfer
from modelctl.core.errors import IntegrityError

DATA = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(40_000))   # 1.25 MiB, incompressible
SHA = hashlib.sha256(DATA).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *a):
        pass

    def do_GET(self):
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(DATA) - start))
        self.end_headers()
        body = DATA[start:]
        self.server.ranges.append(start)
        if self.server.drop_after is not None:      # once: send part of the body, then hang up
            body, self.server.drop_after = body[: self.server.drop_after], None
            self.close_connection = True
        self.wfile.write(body)
        self.server.sent += len(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    drop_after: int | None = None
    sent = 0

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ranges: list[int] = []


@pytest.fixture
def server():
    srv = _Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/model.gguf"


def _leave_partial(dest, prefix: bytes, identity: str) -> None:
    """What an interrupted earlier stream leaves: the partial file and its journal header."""
    incomplete = dest.with_name(dest.name + ".incomplete")
    incomplete.write_bytes(prefix)
    incomplete.with_name(incomplete.name + ".chunks").write_text(f"{journal.JOURNAL_MAGIC} stream id={identity}\n")


def test_dropped_stream_resumes_and_verifies(server, tmp_path):
    server.drop_after = 300_000
    dest = tmp_path / "m.gguf"
    r = transfer.download(_url(server), dest, size=None, sha256=SHA, identity=SHA)
    assert dest.read_bytes() == DATA and r.sha256 == SHA
    assert server.ranges == [0, 300_000]        # the retry asked only for the rest
    assert server.sent == len(DATA)


def test_resumed_stream_hashes_the_part_on_disk_too(server, tmp_path):
    dest = tmp_path / "m.gguf"
    _leave_partial(dest, DATA[:500_000], SHA)
    r = transfer.download(_url(server), dest, size=None, sha256=SHA, identity=SHA)
    assert r.status == "resumed" and r.sha256 == SHA and r.fetched == len(DATA) - 500_000
    assert server.ranges == [500_000] and dest.read_bytes() == DATA


def test_corrupt_byte_in_the_resumed_part_is_caught(server, tmp_path):
    dest = tmp_path / "m.gguf"
    prefix = bytearray(DATA[:500_000])
    prefix[1234] ^= 0xFF
    _leave_partial(dest, bytes(prefix), SHA)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        transfer.download(_url(server), dest, size=None, sha256=SHA, identity=SHA)
    assert not dest.exists()
    assert not list(tmp_path.glob("*.incomplete*"))   # nothing left marked complete, the partial removed
