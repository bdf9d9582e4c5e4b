"""`modelctl pull`: which files a reference means, and getting them into the store.

A plan is computed first (names, sizes, sha256, what is already on disk) so ``--dry-run`` and the
free-disk check see exactly what the download will do.  Then each file goes through
``modelctl.hub.transfer`` (plain HTTP, parallel ranged, resumable) or huggingface_hub (Xet-backed files),
into the Hugging Face cache layout (``modelctl.hub.store``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from modelctl.core.diskspace import check_free_disk
from modelctl.core.errors import IntegrityError, ModelctlError, NotFoundError, UsageError
from modelctl.core.paths import modelctl_cache  # noqa: F401 (where sources and older callers find it)
from modelctl.hub import api as hub
from modelctl.gguf.names import COMMIT_RE, PART_OF_RE, file_group, legacy_group
from modelctl.hub import digests, store, transfer
from modelctl.core import http
from modelctl.hub.hashing import sha256_file
from modelctl.hub.progress import Reporter
from modelctl.hub.hashing import copy_hashing, hash_file
from modelctl.hub.transfer import DEFAULT_WORKERS

# Files that come along with any selection: the card (README) so `card`, `recommend` and `chat` work
# offline afterwards, and the license.
SAFE_ETAG_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
COMPANION_GLOBS = ("README.md", "README*.md", "LICENSE*", "USE_POLICY*", "config.json")


@dataclass
class PlanFile:
    name: str
    size: int | None
    sha256: str | None
    etag: str | None
    cached: bool = False
    xet: bool = False
    joined_into: str | None = None       # a legacy part whose joined file is in the store (parts removed)
    meta: "hub.FileMeta | None" = None   # the HEAD answer, when the listing lacked the size


@dataclass
class Plan:
    repo: str
    revision: str
    commit: str
    files: list[PlanFile]
    offline: bool = False

    @property
    def to_download_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files if not f.cached)


@dataclass
class FileResult:
    name: str
    size_bytes: int
    sha256: str | None
    path: str
    status: str


@dataclass
class PullResult:
    repo: str
    revision: str
    commit: str
    files: list[FileResult] = field(default_factory=list)
    joined: list[dict] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        out = {
            "repo": self.repo,
            "revision": self.revision,
            "commit": self.commit,
            "files": [vars(f) for f in self.files],
            "total_bytes": sum(f.size_bytes for f in self.files),
        }
        if self.joined:
            out["joined"] = self.joined
        if self.placed:
            out["placed"] = self.placed
        return out


# ---------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------


def _match(name: str, globs: list[str]) -> bool:
    base = name.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(base, g) for g in globs)


def select(names: list[str], *, repo: str, quant: str | None, file: str | None,
           include: list[str], exclude: list[str]) -> list[str]:
    """The repository files a reference + filters mean (companions added for quant/file references)."""
    if file is not None:
        group = file_group(file)
        # a shard brings all shards of its set; a legacy joined name brings its parts
        chosen = sorted(n for n in names if n == file or file_group(n) in (group, file))
        if not chosen:
            raise hub.file_not_found(repo, file, names)
    elif quant is not None:
        chosen = store.choose_gguf(names, quant, where=repo)
        # all shards of that quant: shards of one split set share the stem
        chosen = sorted(chosen)
    else:
        chosen = list(names)
    if include:
        chosen = [n for n in chosen if _match(n, include)]
    if exclude:
        chosen = [n for n in chosen if not _match(n, exclude)]
    if (file is not None or quant is not None) and chosen:
        chosen += [n for n in names if _match(n, list(COMPANION_GLOBS)) and n not in chosen]
    if not chosen:
        raise NotFoundError("no file matches", where=repo, hint="check --include/--exclude (modelctl pull REPO --dry-run lists the files)")
    return sorted(chosen)


def _already(repo: str, commit: str, f: PlanFile) -> bool:
    link = store.snapshot_dir(repo, commit) / f.name
    try:
        st = link.stat()
    except OSError:
        return False
    return f.size is None or st.st_size == f.size


def _mark_joined(repo: str, commit: str, files: list[PlanFile]) -> None:
    """Legacy parts whose joined file is already in the snapshot need nothing (their blobs were removed)."""
    snap = store.snapshot_dir(repo, commit)
    for f in files:
        g = legacy_group(f.name)
        if g and (snap / g[0]).exists():
            f.cached, f.joined_into = True, g[0]


def plan(repo: str, *, revision: str = "main", quant: str | None = None, file: str | None = None,
         include: list[str] | None = None, exclude: list[str] | None = None, offline: bool = False) -> Plan:
    include, exclude = list(include or []), list(exclude or [])
    store.check_repo_id(repo)
    if offline or hub.offline():
        return _plan_offline(repo, revision, quant, file, include, exclude)
    listing = hub.repo_listing(repo, revision)
    names = select(listing.names(), repo=repo, quant=quant, file=file, include=include, exclude=exclude)
    files = []
    for name in names:
        rf = listing.get(name)
        files.append(PlanFile(name, rf.size, rf.sha256, rf.etag))
    _mark_joined(repo, listing.commit, files)
    for f in files:
        f.cached = f.cached or _already(repo, listing.commit, f)
        if f.size is None and not f.cached:
            # mirrors such as olah list names only: ask each file's size (for --dry-run and the disk check)
            f.meta = hub.file_metadata(repo, f.name, listing.commit)
            f.size = f.meta.size
    return Plan(repo, revision, listing.commit, files)


def _plan_offline(repo, revision, quant, file, include, exclude) -> Plan:
    local = store.find_local(repo, None if revision == "main" else revision)
    if local is None:
        raise NotFoundError("not in the local store (offline)", where=repo,
                            hint="pull it once while online, or unset HF_HUB_OFFLINE / drop --offline")
    names = select([f.name for f in local.files], repo=repo, quant=quant, file=file, include=include,
                   exclude=exclude)
    by_name = {f.name: f for f in local.files}
    files = [PlanFile(n, by_name[n].size, None, None, cached=True) for n in names]
    return Plan(repo, revision, local.commit, files, offline=True)


# ---------------------------------------------------------------------------
# downloading
# ---------------------------------------------------------------------------


def execute(p: Plan, *, workers: int = DEFAULT_WORKERS, reporter: Reporter | None = None,
            dest_dir: str | os.PathLike | None = None, verify: bool = False) -> PullResult:
    reporter = reporter or Reporter()
    result = PullResult(p.repo, p.revision, p.commit)
    headers = hub.auth_headers() if not p.offline else {}
    try:
        for f in p.files:
            if verify and f.cached and f.sha256 and not f.joined_into:
                _recheck(p, f, reporter)
            result.files.append(_get_file(p, f, headers, workers, reporter))
    finally:
        reporter.close()
    if not p.offline:
        store.write_ref(p.repo, p.revision, p.commit)
    result.joined = _join_legacy(p, [f.name for f in result.files])
    if dest_dir is not None:
        joined_parts = {n for j in result.joined for n in j["parts"]}
        for f in result.files:
            if f.name not in joined_parts:
                result.placed.append(str(store.place_in_dir(Path(f.path), Path(dest_dir), f.name)))
        for j in result.joined:
            result.placed.append(str(store.place_in_dir(Path(j["path"]), Path(dest_dir), j["name"])))
    return result


def _recheck(p: Plan, f: PlanFile, reporter: Reporter) -> None:
    """``--verify``: hash a stored LFS file again; a damaged one is removed and downloaded again."""
    link = store.snapshot_dir(p.repo, p.commit) / f.name
    digest = sha256_file(link)
    if digest != f.sha256:
        if p.offline:
            raise IntegrityError(f"the stored copy is damaged: sha256 {digest}, expected {f.sha256}",
                                 where=f"{p.repo}/{f.name}", hint="pull it again while online")
        reporter.note(f"{p.repo}/{f.name}: the stored copy is damaged (sha256 {digest}): downloading it again")
        Path(os.path.realpath(link)).unlink()
        f.cached = False


def _get_file(p: Plan, f: PlanFile, headers, workers, reporter: Reporter) -> FileResult:
    link = store.snapshot_dir(p.repo, p.commit) / f.name
    if f.joined_into:
        return FileResult(f.name, f.size or 0, f.sha256, str(link.with_name(f.joined_into.rsplit("/", 1)[-1])),
                          "cached")
    if f.cached or p.offline:
        size = link.stat().st_size
        return FileResult(f.name, size, f.sha256, str(link), "cached")
    meta = f.meta or hub.file_metadata(p.repo, f.name, p.commit)
    size = f.size if f.size is not None else meta.size
    etag = f.etag or meta.etag
    if meta.xet:
        return _get_xet(p, f, reporter)
    where = f"{p.repo}/{f.name}"
    if etag is not None and not SAFE_ETAG_RE.match(etag):
        etag = None   # not usable as a file name: the blob is named after its sha256 instead
    if etag is None:
        # No etag from the server: name the blob after the content's sha256 once downloaded.
        ident = "url-" + hashlib.sha256(meta.location.encode()).hexdigest()[:32]
        tmp_blob = ident
    else:
        tmp_blob = etag
    blob = store.blob_path(p.repo, tmp_blob)
    res = transfer.download(
        meta.location, blob, size=size, sha256=f.sha256, identity=etag or ident, headers=headers,
        workers=workers, lock=store.lock_path(p.repo, tmp_blob),
        on_start=lambda done, total: reporter.start_file(f.name, done, total),
        on_progress=lambda n: reporter.advance(f.name, n),
        on_wait=lambda: reporter.waiting(f.name), on_note=reporter.note, where=where,
        verify=(lambda path: _check_git_blob(path, f.etag, where))
        if not f.sha256 and f.etag and COMMIT_RE.match(f.etag) else None,
    )
    if etag is None:
        final = store.blob_path(p.repo, res.sha256)
        os.replace(res.path, final)
        tmp_blob = res.sha256
    store.link_snapshot(p.repo, p.commit, f.name, tmp_blob)
    reporter.end_file(f.name, res.status)
    return FileResult(f.name, res.size, f.sha256 or res.sha256, str(link), res.status)


def _check_git_blob(path: Path, oid: str, where: str) -> None:
    """A non-LFS file is checked against its git blob id (sha1 of "blob <size>\\0" + content)."""
    got = hash_file(path, hashlib.sha1(b"blob %d\0" % path.stat().st_size)).hexdigest()
    if got != oid:
        raise IntegrityError(f"git blob id mismatch: got {got}, expected {oid}", where=where,
                             hint="the corrupt download was removed; run the command again")


def _get_xet(p: Plan, f: PlanFile, reporter: Reporter) -> FileResult:
    """Xet-backed files: huggingface_hub (hf_xet) downloads them into the same cache."""
    from huggingface_hub import hf_hub_download

    reporter.start_file(f.name, 0, f.size)
    try:
        path = hf_hub_download(p.repo, f.name, revision=p.commit, cache_dir=str(store.hub_cache()),
                               endpoint=hub.endpoint())
    except Exception as exc:
        raise hub.map_error(exc, repo=p.repo, revision=p.revision, file=f.name) from exc
    reporter.advance(f.name, f.size or 0)
    reporter.end_file(f.name, "downloaded")
    size = Path(path).stat().st_size
    if f.sha256:
        digest = sha256_file(Path(path))
        if digest != f.sha256:
            raise IntegrityError(f"sha256 mismatch: got {digest}, expected {f.sha256}", where=f"{p.repo}/{f.name}")
    return FileResult(f.name, size, f.sha256, path, "downloaded")


def _join_legacy(p: Plan, names: list[str]) -> list[dict]:
    """Concatenate legacy split parts (``-split-a``, ``.partXofY``) into one loadable GGUF in the store."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for n in names:
        g = legacy_group(n)
        if g:
            groups.setdefault(g[0], []).append((g[1], n))
    joined = []
    for target, parts in sorted(groups.items()):
        parts.sort()
        m = PART_OF_RE.match(parts[0][1].rsplit("/", 1)[-1])
        if m and len(parts) != int(m.group("count")):
            continue  # not all parts selected: nothing to join
        ordered = [n for _, n in parts]
        path, digest = join_parts(p.repo, p.commit, ordered, target)
        joined.append({"name": target, "path": str(path), "parts": ordered, "sha256": digest})
    return joined


def join_parts(repo: str, commit: str, parts: list[str], target: str,
               sha256: str | None = None) -> tuple[Path, str | None]:
    """snapshots/<commit>/<target> -> blobs/<sha256 of the concatenated parts>, made once.

    The joined bytes are written to a temporary blob, hashed on the way, checked against ``sha256`` when
    given, then renamed: a crash leaves no half-joined file under the final name."""
    snap = store.snapshot_dir(repo, commit)
    link = snap / store.safe_relpath(target, where=repo)
    if link.exists():
        return link, sha256
    tmp = store.blob_path(repo, f"join-{os.getpid()}.incomplete")
    check_free_disk(tmp.parent, sum((snap / n).stat().st_size for n in parts), target)
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for n in parts:
                with open(snap / n, "rb") as src:
                    copy_hashing(src, out, h)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if sha256 and digest != sha256.lower():
            raise IntegrityError(f"sha256 of the joined parts is {digest}, expected {sha256}", where=f"{repo}/{target}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, store.blob_path(repo, digest))
    store.link_snapshot(repo, commit, target, digest)
    _drop_parts(repo, [snap / n for n in parts])
    return link, digest


def _drop_parts(repo: str, links: list[Path]) -> None:
    """Once joined, the parts go (the joined file holds the same bytes): no model is stored twice.  Until
    then they stay, so an interrupted join is redone from them without downloading again."""
    delete(repo, [p for p in links if p.is_symlink()])


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------


def parse_hub_url(url: str) -> tuple[str, str, str] | None:
    """``{endpoint}/owner/repo/resolve/REV/path`` -> (repo, revision, path); else None."""
    parts = urllib.parse.urlsplit(url)
    segs = [urllib.parse.unquote(s) for s in parts.path.split("/") if s]
    if len(segs) >= 5 and segs[2] in ("resolve", "blob"):
        return f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:])
    return None


def url_target(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1]) or "download"
    try:
        store.safe_relpath(name, where=url)
    except IntegrityError:
        raise UsageError(f"refusing unsafe file name {name!r} taken from your URL", where=url,
                         hint="the file is named after the URL's last path segment: give a URL that ends "
                              "in the file's name") from None
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return modelctl_cache() / "urls" / key / name


def pull_url(url: str, *, sha256: str | None = None, verify: bool = False, workers: int = DEFAULT_WORKERS,
             reporter: Reporter | None = None, target: Path | None = None, record: bool = True) -> FileResult:
    """A plain URL into modelctl's own cache (``$MODELCTL_CACHE/urls/<hash>/<name>``), checked against
    ``sha256`` when given; the sha256 computed on the way is stored beside it (``record``) so that a cached
    copy is checked cheaply (size and mtime) on every pull and hashed again with ``verify``."""
    reporter = reporter or Reporter()
    target = target or url_target(url)
    try:
        if target.exists():
            digest, problem = _cached_digest(target, sha256, verify, record)
            if not problem:
                return FileResult(target.name, target.stat().st_size, digest, str(target), "cached")
            reporter.note(f"{target}: {problem}: downloading it again")
            digests.forget(target)
        if hub.offline():
            raise NotFoundError("not in the local store (offline)", where=url)
        size = probe_size(url)
        res = transfer.download(url, target, size=size, sha256=sha256, identity=url, headers={},
                                workers=workers, lock=target.with_name(target.name + ".lock"),
                                on_start=lambda d, t: reporter.start_file(target.name, d, t),
                                on_progress=lambda n: reporter.advance(target.name, n),
                                on_wait=lambda: reporter.waiting(target.name), on_note=reporter.note,
                                on_done=(lambda r: digests.record(r.path, r.sha256)) if record else None,
                                where=url)
        if res.status == "cached":   # another pull finished it while this one waited for it
            res.sha256, problem = _cached_digest(target, sha256, False, record)
            if problem:
                raise IntegrityError(problem, where=url, hint="run the command again")
    finally:
        reporter.close()
    return FileResult(target.name, res.size, res.sha256, str(target), res.status)


def _cached_digest(target: Path, sha256: str | None, verify: bool, record: bool) -> tuple[str | None, str]:
    if record:
        return digests.reusable(target, sha256, full=verify)
    if not sha256 and not verify:
        return None, ""
    digest = sha256_file(target)   # no record beside it (a Hub blob named after its sha256)
    if sha256 and digest != sha256.lower():
        return None, f"the stored copy has sha256 {digest}, not {sha256.lower()}"
    return digest, ""


def probe_size(url: str) -> int | None:
    """Content-Length from a HEAD (following redirects), or None when the server does not say."""
    try:
        with http.urlopen(url, method="HEAD", headers={"Accept-Encoding": "identity"}, timeout=20) as resp:
            n = resp.headers.get("Content-Length")
            return int(n) if n and n.isdigit() else None
    except NotFoundError:
        raise
    except ModelctlError:  # the download itself will retry, or say what is wrong
        return None


def remove(repo: str, quant: str | None = None) -> tuple[list[Path], int]:
    """What ``rm`` deletes: (paths, bytes).  Call ``delete`` with the result to do it."""
    local = store.local_models(repo)
    if not local:
        raise NotFoundError("not in the local store", where=repo, hint="modelctl list shows what is there")
    paths: list[Path] = []
    total = 0
    if quant is None:
        d = store.repo_dir(repo)
        for root, _, names in os.walk(d):
            for n in names:
                p = Path(root) / n
                if not p.is_symlink():
                    total += p.stat().st_size
        return [d], total
    for m in local:
        wanted = [f for f in m.files if f.quant and f.quant.upper() == quant.upper()]
        for f in wanted:
            paths.append(f.path)
            total += f.size
    if not paths:
        quants = sorted({f.quant for m in local for f in m.files if f.quant})
        raise NotFoundError(f"no {quant.upper()} file in the store", where=repo,
                            hint=f"stored quants: {', '.join(quants) or 'none'}")
    return paths, total


def delete(repo: str, paths: list[Path]) -> None:
    """Remove snapshot links (and their blobs when no other snapshot uses them), or the whole repo folder."""
    d = store.repo_dir(repo)
    if paths == [d]:
        shutil.rmtree(d)
        locks = store.hub_cache() / ".locks" / store.repo_folder(repo)
        shutil.rmtree(locks, ignore_errors=True)
        return
    blobs = set()
    for p in paths:
        if p.is_symlink():
            blobs.add(Path(os.path.realpath(p)))
        p.unlink()
    still_used = set()
    for snap in (d / "snapshots").glob("*"):
        for root, _, names in os.walk(snap):
            for n in names:
                q = Path(root) / n
                if q.is_symlink():
                    still_used.add(Path(os.path.realpath(q)))
    for b in blobs - still_used:
        try:
            b.unlink()
        except FileNotFoundError:
            pass
