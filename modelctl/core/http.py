"""The HTTP edge: the one place where an HTTP status or a network failure becomes a typed error, and the
only ``urlopen`` (redirects that never carry credentials to another host).

    status                      error            exit
    401, 403                    AccessError      1   (gated or private: the user must act, not retry)
    404, 410                    NotFoundError    4
    408, 429, 5xx               NetworkError     5   (transient: callers retry before they give up)
    any other non-2xx           NetworkError     5
    no connection, timeout      NetworkError     5
"""

from __future__ import annotations

import urllib.parse
from functools import lru_cache

from modelctl.core.errors import AccessError, ModelctlError, NetworkError, NotFoundError

ACCESS_HINT = "the file may be gated or private: set HF_TOKEN to a token that can read it"


def redact(url: str) -> str:
    """A URL without its query string (signed CDN URLs carry credentials there), for messages."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def is_transient(status: int) -> bool:
    """A status worth another try: the server is busy or failing, not refusing."""
    return status >= 500 or status in (408, 429)


def status_error(status: int, *, where: str, what: str = "") -> ModelctlError:
    """The typed error for a final HTTP status; ``what`` says what was being fetched ("the header")."""
    about = f" {what}" if what else ""
    if status in (401, 403):
        return AccessError(f"access denied (HTTP {status}){about}", where=redact(where), hint=ACCESS_HINT)
    if status in (404, 410):
        return NotFoundError(f"not found on the server (HTTP {status}){about}", where=redact(where))
    if is_transient(status):
        return NetworkError(f"server error (HTTP {status}){about}", where=redact(where),
                            hint="try again later")
    return NetworkError(f"unexpected HTTP {status}{about}", where=redact(where))


def unreachable(exc: BaseException, *, where: str) -> NetworkError:
    """A connection that failed before any status: DNS, refused, reset, timed out."""
    reason = getattr(exc, "reason", None) or exc
    return NetworkError(f"cannot reach the server: {reason}", where=redact(where),
                        hint="check the URL and your connection")


@lru_cache(maxsize=1)
def _opener():
    import urllib.request

    class _Redirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            if new is not None:
                old_host = urllib.parse.urlsplit(req.full_url).netloc
                if urllib.parse.urlsplit(newurl).netloc != old_host:
                    for key in [k for k in new.headers if k.lower() in ("authorization", "cookie")]:
                        del new.headers[key]
            return new

    return urllib.request.build_opener(_Redirect)   # built once, shared by every request


def urlopen(url: str, *, headers: dict[str, str] | None = None, method: str = "GET", timeout: float = 30.0,
            ok: tuple[int, ...] = ()):
    """An open response for ``url`` (use it in ``with``).  Redirects are followed; credentials never go to
    another host (the Hub sends downloads to its CDN).  A status in ``ok`` comes back as the response's
    error object instead of raising (e.g. 416 for a range past the end); any other failure raises the
    typed error of the table above."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        return _opener().open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in ok:
            return exc
        exc.close()
        raise status_error(exc.code, where=url) from None
    except (urllib.error.URLError, OSError) as exc:
        raise unreachable(exc, where=url) from None
