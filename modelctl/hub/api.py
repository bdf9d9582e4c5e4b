"""Repository metadata from the Hub (or any Hub-compatible endpoint set with ``HF_ENDPOINT``).

Everything goes through huggingface_hub so its auth (``HF_TOKEN``, the saved login), proxies, user agent
and endpoint handling apply.  huggingface_hub's exceptions are mapped to modelctl's typed errors with
messages a user can act on.  The token is never part of a message, a log line or JSON output.

Mirrors differ in how much they answer: the Hub gives sizes and LFS sha256 in the repo info; some mirrors
(olah) give only file names.  Missing sizes/hashes are then asked with a HEAD per file, and when the
mirror gives no size either, the file is downloaded as one stream (see modelctl.hub.transfer).
"""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import dataclass, field

from modelctl.core import http
from modelctl.core.errors import AccessError, ModelctlError, NetworkError, NotFoundError
from modelctl.hub.store import safe_relpath

DEFAULT_ENDPOINT = "https://huggingface.co"
METADATA_RETRIES = 4          # attempts for metadata calls on network errors / 5xx
METADATA_TIMEOUT = 20.0       # seconds per metadata request


@dataclass
class RemoteFile:
    name: str                    # path inside the repository (checked: no '..', not absolute)
    size: int | None = None
    sha256: str | None = None    # LFS sha256, when the server tells it
    blob_id: str | None = None   # git blob id (sha1) of the file or of its LFS pointer
    xet: bool = False

    @property
    def etag(self) -> str | None:
        """The blob name in the HF cache: the LFS sha256 for LFS files, else the git blob id."""
        return self.sha256 or self.blob_id


@dataclass
class RepoListing:
    repo: str
    revision: str
    commit: str
    files: list[RemoteFile] = field(default_factory=list)

    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def get(self, name: str) -> RemoteFile | None:
        for f in self.files:
            if f.name == name:
                return f
        return None


@dataclass
class FileMeta:
    """What a HEAD on the file's resolve URL says."""

    url: str                     # the resolve URL
    location: str                # where to GET it (after a redirect to a file host, if any)
    commit: str | None
    etag: str | None
    size: int | None
    xet: bool


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def auth_headers() -> dict[str, str]:
    """huggingface_hub's request headers (user agent, and Authorization when a token is configured)."""
    from huggingface_hub.utils import build_hf_headers

    return dict(build_hf_headers())


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


# ---------------------------------------------------------------------------
# error mapping
# ---------------------------------------------------------------------------


def _is_transport_error(exc: BaseException) -> bool:
    try:
        import httpx2

        if isinstance(exc, httpx2.TransportError):
            return True
    except ImportError:  # pragma: no cover - older huggingface_hub with httpx/requests
        pass
    return isinstance(exc, (ConnectionError, TimeoutError)) and not _is_offline_exc(exc)


def _is_offline_exc(exc: BaseException) -> bool:
    from huggingface_hub.errors import OfflineModeIsEnabled

    return isinstance(exc, OfflineModeIsEnabled)


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def closest(name: str, candidates: list[str], n: int = 3) -> list[str]:
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not found:
        lowered = {c.lower(): c for c in candidates}
        found = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.4)]
    return found


def closest_repos(repo: str) -> list[str]:
    """Repositories with a similar name (same owner first), best effort: [] when the server cannot tell."""
    owner, _, name = repo.partition("/")
    try:
        api = _api()
        candidates = [m.id for m in api.list_models(author=owner, limit=200)]
        if not candidates:
            candidates = [m.id for m in api.list_models(search=name[:20], limit=200)]
    except Exception:
        return []
    return closest(repo, candidates)


def file_not_found(repo: str, file: str, names: list[str]) -> NotFoundError:
    """A missing repository file, with the closest names the repository does have."""
    similar = closest(file, names)
    hint = f"did you mean: {', '.join(similar)}" if similar else f"list the files with: modelctl pull {repo} --dry-run"
    return NotFoundError("file not found in the repository", where=f"{repo}/{file}", hint=hint)


def map_error(exc: BaseException, *, repo: str, revision: str | None = None, file: str | None = None,
              names: list[str] | None = None) -> ModelctlError:
    """A huggingface_hub / transport exception as a typed modelctl error (never containing the token)."""
    from huggingface_hub import errors as hf

    where = f"{repo}/{file}" if file else repo
    if isinstance(exc, ModelctlError):
        return exc
    if isinstance(exc, hf.LocalEntryNotFoundError):  # offline, or the Hub unreachable, and nothing cached
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        return NetworkError("cannot reach the Hub and this is not in the local store", where=where,
                            hint="pull it once online, or unset HF_HUB_OFFLINE" if offline
                            else "check the network or HF_ENDPOINT")
    if isinstance(exc, hf.GatedRepoError):
        return AccessError(
            "gated repository: its license must be accepted first", where=repo,
            hint=f"accept it at {endpoint()}/{repo}, then set HF_TOKEN to a token of that account",
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return NotFoundError(f"revision {revision!r} not found", where=repo, hint="check --revision (a branch, tag or commit)")
    if isinstance(exc, hf.RemoteEntryNotFoundError) or (file and _status(exc) == 404):
        return file_not_found(repo, file or "", names or [])
    if isinstance(exc, hf.RepositoryNotFoundError) or _status(exc) in (401, 404):
        similar = [r for r in closest_repos(repo) if r != repo]
        hint = "check the name; if it is private, set HF_TOKEN to a token that can read it"
        if similar:
            hint = f"did you mean: {', '.join(similar)}? If it is private, set HF_TOKEN to a token that can read it"
        return NotFoundError("repository not found (or private)", where=repo, hint=hint)
    if _is_offline_exc(exc):
        return NetworkError("offline mode is on and this is not in the local store", where=where,
                            hint="pull it once online, or unset HF_HUB_OFFLINE")
    status = _status(exc)
    if status is None and _is_transport_error(exc):
        return NetworkError(f"cannot reach the server at {endpoint()}", where=where,
                            hint="check the network or HF_ENDPOINT; use --offline (or HF_HUB_OFFLINE=1) to use the local store")
    if status is not None:  # the rest of the HTTP table is the same for every command (modelctl.core.http)
        return http.status_error(status, where=where, what=f"from {endpoint()}")
    return ModelctlError(f"{type(exc).__name__}: {_scrub(str(exc))}", where=where)


def _scrub(text: str) -> str:
    """Remove a token from a message if a library ever echoed it."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    first = text.splitlines()[0] if text else text
    return first.replace(token, "***") if token else first


def _retrying(call, *, repo: str, revision: str | None = None, file: str | None = None):
    """Run a metadata call, retrying network errors and 5xx with exponential backoff."""
    delay = 0.5
    for attempt in range(METADATA_RETRIES):
        try:
            return call()
        except Exception as exc:  # mapped below; the original is chained for MODELCTL_DEBUG
            status = _status(exc)
            transient = _is_transport_error(exc) or (status is not None and http.is_transient(status))
            if not transient or attempt == METADATA_RETRIES - 1:
                raise map_error(exc, repo=repo, revision=revision, file=file) from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------


def repo_listing(repo: str, revision: str = "main") -> RepoListing:
    """Files (names, sizes, LFS sha256 when known) and the commit ``revision`` points to."""
    api = _api()
    info = _retrying(lambda: api.model_info(repo, revision=revision, files_metadata=True, timeout=METADATA_TIMEOUT),
                     repo=repo, revision=revision)
    files = []
    for s in info.siblings or []:
        name = safe_relpath(s.rfilename, where=repo)
        lfs = s.lfs
        files.append(RemoteFile(
            name=name,
            size=s.size if s.size is not None else (lfs.size if lfs is not None else None),
            sha256=(lfs.sha256 if lfs is not None else None),
            blob_id=s.blob_id,
        ))
    commit = info.sha
    if not commit and files:
        commit = file_metadata(repo, files[0].name, revision).commit
    if not commit:
        raise NetworkError("the server did not say which commit the revision points to", where=repo,
                           hint="is HF_ENDPOINT a Hub-compatible server?")
    files.sort(key=lambda f: f.name)
    return RepoListing(repo, revision, commit, files)


def resolve_url(repo: str, name: str, revision: str) -> str:
    from urllib.parse import quote

    return f"{endpoint()}/{repo}/resolve/{quote(revision, safe='')}/{quote(name)}"


def file_metadata(repo: str, name: str, revision: str, names: list[str] | None = None) -> FileMeta:
    """HEAD on the file's resolve URL: commit, etag, size, redirect target, Xet or not."""
    from huggingface_hub import get_hf_file_metadata

    url = resolve_url(repo, name, revision)

    def head():
        return get_hf_file_metadata(url, timeout=METADATA_TIMEOUT, endpoint=endpoint())

    try:
        meta = _retrying(head, repo=repo, revision=revision, file=name)
    except NotFoundError as exc:
        if names is not None:
            raise file_not_found(repo, name, names) from exc
        raise
    location = meta.location or url
    if location.startswith("/"):
        from urllib.parse import urljoin

        location = urljoin(url, location)
    return FileMeta(url=url, location=location, commit=meta.commit_hash, etag=meta.etag, size=meta.size,
                    xet=meta.xet_file_data is not None)
