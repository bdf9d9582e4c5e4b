"""HTTP for the transfer engine: one keep-alive connection per worker (proxies honoured), ranged GETs that
can be aborted from another thread, and what a failed response means for a retry loop (``Transient``: try
again; ``Fatal``: a typed error to stop with; ``NoRanges``: the server ignores Range)."""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
import urllib.request

from modelctl.core.errors import ModelctlError, NetworkError
from modelctl.core.http import is_transient, status_error

class NoRanges(Exception):
    """The server answered a Range request with the whole file (200): the open response is handed
    over to the single-stream path so the file is still requested only once."""

    def __init__(self, client: "Client", resp: http.client.HTTPResponse):
        super().__init__("no Range support")
        self.client, self.resp = client, resp


class Transient(Exception):
    """A failure worth retrying: reset, timeout, 5xx, short read."""


class Fatal(Exception):
    def __init__(self, error: ModelctlError):
        super().__init__(error.message)
        self.error = error


def _proxy_for(url: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(url.hostname or ""):
        return None
    return urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")


def _connect(url: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
    proxy = _proxy_for(url)
    default_port = 443 if url.scheme == "https" else 80
    if proxy is not None:
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(proxy.hostname, proxy.port or 80, timeout=timeout,
                                               context=ssl.create_default_context())
            conn.set_tunnel(url.hostname, url.port or default_port)
        else:
            conn = http.client.HTTPConnection(proxy.hostname, proxy.port or 80, timeout=timeout)
        return conn
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.hostname, url.port or default_port, timeout=timeout,
                                           context=ssl.create_default_context())
    if url.scheme == "http":
        return http.client.HTTPConnection(url.hostname, url.port or default_port, timeout=timeout)
    raise Fatal(NetworkError(f"unsupported URL scheme {url.scheme!r}", where=url.geturl()))


class Client:
    """One keep-alive connection per worker; follows redirects; drops auth when the host changes."""

    def __init__(self, headers: dict[str, str], timeout: float):
        self.headers = {k: v for k, v in headers.items() if k.lower() not in ("range", "accept-encoding")}
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.conn_key = None
        self.handed_off = False

    def abort(self) -> None:
        """From another thread: wake a blocked read (shutdown, unlike close, interrupts recv)."""
        conn = self.conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def get(self, url: str, start: int | None = None, end: int | None = None,
            if_range: str | None = None) -> tuple[http.client.HTTPResponse, str]:
        """GET (optionally a byte range, ``end`` inclusive, of the version ``if_range`` names); returns the
        response and the final URL."""
        headers = dict(self.headers)
        headers["Accept-Encoding"] = "identity"
        if start is not None:
            headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end))
            if if_range:
                headers["If-Range"] = if_range
        origin = urllib.parse.urlsplit(url).netloc
        for _ in range(8):
            parts = urllib.parse.urlsplit(url)
            if parts.netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
            key = (parts.scheme, parts.netloc)
            if self.conn is None or self.conn_key != key:
                self.close()
                self.conn = _connect(parts, self.timeout)
                self.conn_key = key
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            try:
                self.conn.request("GET", target, headers=headers)
                resp = self.conn.getresponse()
            except Fatal:
                raise
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise Transient(f"{type(exc).__name__}: {exc}") from exc
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                resp.read()
                if not location:
                    raise Fatal(NetworkError(f"redirect {resp.status} without a Location", where=url))
                url = urllib.parse.urljoin(url, location)
                continue
            return resp, url
        raise Fatal(NetworkError("too many redirects", where=url))


def http_error(resp: http.client.HTTPResponse, url: str) -> Exception:
    status = resp.status
    try:
        resp.read(4096)
    except Exception:
        pass
    if is_transient(status):
        return Transient(f"HTTP {status}")
    return Fatal(status_error(status, where=url))
