"""Where a model reference becomes a local file: the one place that decides what ``owner/repo[:QUANT]``,
``owner/repo/path/file.gguf``, a manifest name, a URL or a path means, and fetches what the store lacks.

``resolve_model`` serves the commands that load a model (chat, run, bench, show, tokenize); ``pull_ref`` is
``modelctl pull``.  Both go through the store (``modelctl.hub.store``), the Hub pull (``modelctl.hub.pull``)
and manifest sources (``modelctl.hub.sources``); nothing of those imports this module.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from modelctl.core import output
from modelctl.core.errors import IntegrityError, NotFoundError, UsageError
from modelctl.hub import api as hub
from modelctl.gguf.names import SHA256_RE, is_model_file
from modelctl.hub import progress, pull, sources, store
from modelctl.hub.hashing import sha256_file
from modelctl.core.diskspace import check_free_disk
from modelctl.hub.transfer import DEFAULT_WORKERS


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or os.sep in ref and Path(ref).exists() or \
        ref.lower().endswith(".gguf") and Path(ref).exists()


def parse_repo_ref(ref: str) -> tuple[str, str | None, str | None]:
    """'owner/repo', 'owner/repo:QUANT' or 'owner/repo/path/file.gguf' -> (repo, quant, file)."""
    quant = None
    if ":" in ref and "://" not in ref:
        ref, quant = ref.rsplit(":", 1)
        if not quant:
            raise UsageError(f"empty quant after ':' in {ref!r}:")
    parts = ref.split("/")
    if len(parts) < 2:
        raise UsageError(f"not a model reference: {ref!r}",
                         hint="use a .gguf path, a manifest name, owner/repo[:QUANT] or owner/repo/file.gguf")
    repo = store.check_repo_id("/".join(parts[:2]))
    file = "/".join(parts[2:]) or None
    if file is not None:
        try:
            store.safe_relpath(file, where=repo)
        except IntegrityError:
            raise UsageError(f"unsafe file path in the reference: {file!r}", where=repo,
                             hint="name a file inside the repository (no '..', '.', empty or absolute parts)") from None
    return repo, quant, file


@dataclass(frozen=True)
class ModelRef:
    """What a model reference names, decided once (``parse_ref``):

    - ``path``: a local file (``path``; it may not exist);
    - ``url``: an http(s) URL (``url``); a Hub ``…/resolve/REV/file`` URL also has ``repo``, ``revision``, ``file``;
    - ``manifest``: a manifest name (``name``);
    - ``repo``: ``owner/repo`` (``repo``), with ``:QUANT`` (``quant``) or ``/path/file.gguf`` (``file``).
    """

    kind: str
    text: str
    path: Path | None = None
    url: str | None = None
    name: str | None = None
    repo: str | None = None
    revision: str | None = None
    quant: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        return self.text


def parse_ref(ref: str | os.PathLike) -> ModelRef:
    """The one reading of a model reference (a path, a URL, a manifest name, ``owner/repo[:QUANT]`` or
    ``owner/repo/path/file.gguf``).  An existing file always wins; a name with a path's shape is a path."""
    text = os.fspath(ref)
    path = Path(os.path.expanduser(text))
    if path.is_file():
        return ModelRef("path", text, path=path)
    if text.startswith(("http://", "https://")):
        hub_file = pull.parse_hub_url(text)
        if hub_file is None:
            return ModelRef("url", text, url=text)
        repo, revision, file = hub_file
        return ModelRef("url", text, url=text, repo=repo, revision=revision, file=file)
    if _looks_like_path(text) or (text.lower().endswith(".gguf") and text.count("/") < 2):
        return ModelRef("path", text, path=path)
    if "/" not in text:
        return ModelRef("manifest", text, name=text)
    repo, quant, file = parse_repo_ref(text)
    return ModelRef("repo", text, repo=repo, quant=quant, file=file)


def resolve_model(ref: str | os.PathLike, *, quant: str | None = None, allow_download: bool = True) -> Path:
    """A local path to a `.gguf` for ``ref``:

    - a path to a `.gguf` file (returned as is when it exists);
    - a manifest name: its chosen file (``quant``, else the manifest's default/recommended one) from the
      store, else fetched from the manifest's sources (unless ``allow_download`` is False);
    - ``owner/repo[:QUANT]`` or ``owner/repo/path/file.gguf``: from the store, else pulled;
    - an http(s) URL of a `.gguf`: pulled like ``modelctl pull URL``.

    Raises NotFoundError (exit 4), UsageError for an ambiguous quant, NetworkError/IntegrityError from a pull.
    """
    r = parse_ref(ref)
    if r.kind == "path":
        if r.path.is_file():
            return r.path
        raise NotFoundError("no such file", where=r.text)
    if r.kind == "url":
        if not allow_download:
            raise NotFoundError("not downloaded", where=r.text, hint=f"run: modelctl pull {r.text}")
        return pull_url_file(r)
    if r.kind == "manifest":
        return resolve_manifest_model(r.name, quant=quant, allow_download=allow_download)

    repo, ref_quant, file = r.repo, r.quant, r.file
    if quant and ref_quant and quant.upper() != ref_quant.upper():
        raise UsageError(f"two different quants asked for: {ref_quant} and {quant}", where=repo)
    quant = quant or ref_quant
    local = store.find_local(repo)
    if local is not None:
        names = [f.name for f in local.files]
        if file is not None:
            if file in names:
                return store.snapshot_dir(repo, local.commit) / file
        else:
            try:
                chosen = store.choose_gguf(local, quant, where=repo)
            except NotFoundError:
                chosen = None
            if chosen:
                return store.snapshot_dir(repo, local.commit) / store.entry_file(store.joined_names(chosen))
    if not allow_download:
        target = f"{repo}/{file}" if file else (f"{repo}:{quant}" if quant else repo)
        raise NotFoundError("not in the local store", where=target, hint=f"run: modelctl pull {target}")
    return pull_for_model(repo, quant=quant, file=file)


def resolve_manifest_model(name: str, *, quant: str | None = None, allow_download: bool = True) -> Path:
    """A manifest's file: without ``quant``, one already in the store (the default file first) wins;
    otherwise the file chosen for this machine is fetched from the manifest's sources."""
    manifest = sources.load(name)
    if quant is None:
        files = manifest.get("files") or []
        default = manifest.get("default_file")
        for entry in sorted(files, key=lambda f: f.get("name") != default):
            found = sources.in_store(manifest, entry)
            if found is not None:
                return found
    entry = sources.choose_file(manifest, quant, notice=output.notice)
    found = sources.in_store(manifest, entry)
    if found is not None:
        return found
    if not allow_download:
        raise NotFoundError(f"{entry['name']} is not in the local store", where=manifest.get("name"),
                            hint=f"run: modelctl pull {manifest.get('name')}")
    got = sources.fetch(manifest, entry, new_reporter=lambda: progress.reporter_for(entry.get("size_bytes")),
                        on_failure=lambda kind, exc: output.warn(f"source {kind} failed: {exc.one_line()}"))
    return got.path


def pull_url_file(ref: ModelRef) -> Path:
    """A URL's file, downloaded: a Hub file URL into the store, any other URL into modelctl's cache."""
    if ref.repo:
        p = pull.plan(ref.repo, revision=ref.revision, file=ref.file)
        got = pull.execute(p)
        return Path(store.snapshot_dir(ref.repo, got.commit) / store.entry_file(store.joined_names([ref.file])))
    return Path(pull.pull_url(ref.url).path)


def pull_for_model(repo: str, *, quant: str | None = None, file: str | None = None) -> Path:
    """resolve_model's download path: pull the quant (or file) and return the file to load."""
    p = pull.plan(repo, quant=quant, file=file)
    r = pull.execute(p)
    ggufs = [f.name for f in p.files if is_model_file(f.name)]
    if not ggufs:
        raise NotFoundError("no GGUF file", where=repo)
    if file is None and quant is None:
        ggufs = store.choose_gguf(ggufs, None, where=repo)
    return store.snapshot_dir(repo, r.commit) / store.entry_file(store.joined_names(ggufs))


def _free_disk(path: Path) -> int:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def _dry_json(repo, revision, commit, files: list[pull.PlanFile], where: Path) -> dict:
    total = sum(f.size or 0 for f in files)
    return {
        "repo": repo, "revision": revision, "commit": commit, "dry_run": True,
        "files": [{"name": f.name, "size_bytes": f.size, "sha256": f.sha256, "cached": f.cached} for f in files],
        "total_bytes": total,
        "download_bytes": sum(f.size or 0 for f in files if not f.cached),
        "free_disk_bytes": _free_disk(where), "store": str(where),
    }


def pull_ref(ref: str, *, include=(), exclude=(), revision: str | None = None, quant: str | None = None,
        dest_dir=None, dry_run: bool = False, workers: int = DEFAULT_WORKERS, quiet: bool = False,
        sha256: str | None = None, verify: bool = False) -> dict:
    """`modelctl pull REF`: the JSON contract ({repo, revision, files[...], total_bytes}).  ``sha256`` checks
    a plain URL; ``verify`` hashes stored files again instead of trusting them."""
    include, exclude = list(include), list(exclude)
    r = parse_ref(ref)
    plain_url = r.kind == "url" and r.repo is None
    if sha256 is not None:
        if not plain_url:
            raise UsageError("--sha256 checks a plain URL download", where=ref,
                             hint="Hub files and manifest files are checked against the sha256 they state")
        if not SHA256_RE.match(sha256.lower()):
            raise UsageError(f"--sha256: not a sha256 (64 hex digits): {sha256!r}")
    if plain_url:
        if include or exclude or quant or revision:
            raise UsageError("--include/--exclude/--quant/--revision do not apply to a plain URL", where=ref)
        return _run_url(ref, dest_dir=dest_dir, dry_run=dry_run, workers=workers, quiet=quiet,
                        sha256=sha256, verify=verify)
    if r.kind == "url":
        if revision and revision != r.revision:
            raise UsageError(f"two revisions: {r.revision} (in the URL) and {revision}", where=ref)
        return _run_repo(r.repo, revision=r.revision, quant=quant, file=r.file, include=include, exclude=exclude,
                         dest_dir=dest_dir, dry_run=dry_run, workers=workers, quiet=quiet, verify=verify)
    if r.kind == "manifest":
        return _run_manifest(ref, quant=quant, dest_dir=dest_dir, dry_run=dry_run, workers=workers, quiet=quiet,
                             revision=revision, filters=bool(include or exclude), verify=verify)
    if r.kind == "path":
        raise UsageError("pull takes a repo, a manifest or a URL, not a local file", where=ref,
                         hint="a local .gguf needs no pull: give its path to chat, run or show")
    if quant and r.quant and quant.upper() != r.quant.upper():
        raise UsageError(f"two different quants: {r.quant} and {quant}", where=ref)
    return _run_repo(r.repo, revision=revision or "main", quant=quant or r.quant, file=r.file, include=include,
                     exclude=exclude, dest_dir=dest_dir, dry_run=dry_run, workers=workers, quiet=quiet, verify=verify)


def _run_url(url: str, *, dest_dir, dry_run: bool, workers: int, quiet: bool, sha256, verify) -> dict:
    target = pull.url_target(url)
    if dry_run:
        f = pull.PlanFile(target.name, pull.probe_size(url), None, None, cached=target.exists())
        return _dry_json(None, None, None, [f], target.parent)
    r = pull.pull_url(url, sha256=sha256, verify=verify, workers=workers, reporter=progress.reporter_for(None, quiet))
    out = {"repo": None, "revision": None, "files": [vars(r)], "total_bytes": r.size_bytes}
    if dest_dir is not None:
        out["placed"] = [str(store.place_in_dir(Path(r.path), Path(dest_dir), r.name))]
    return out


def _run_repo(repo, *, revision, quant, file, include, exclude, dest_dir, dry_run, workers, quiet, verify) -> dict:
    p = pull.plan(repo, revision=revision, quant=quant, file=file, include=include, exclude=exclude)
    if dry_run:
        return _dry_json(repo, revision, p.commit, p.files, store.hub_cache())
    if not p.offline:
        check_free_disk(store.hub_cache(), p.to_download_bytes, repo)
    reporter = progress.reporter_for(p.to_download_bytes, quiet)
    return pull.execute(p, workers=workers, reporter=reporter, dest_dir=dest_dir, verify=verify).to_json()


def _run_manifest(name, *, quant, dest_dir, dry_run, workers, quiet, revision, filters, verify) -> dict:
    if revision or filters:
        raise UsageError("--revision/--include/--exclude apply to owner/repo references, not manifests", where=name)
    manifest = sources.load(name)
    entry = sources.choose_file(manifest, quant, notice=output.notice)
    found = sources.in_store(manifest, entry)
    if dry_run:
        f = pull.PlanFile(entry["name"], entry.get("size_bytes"), entry.get("sha256"), None, cached=found is not None)
        return _dry_json(manifest.get("repo"), manifest.get("revision"), None, [f], store.hub_cache())
    if found is None and hub.offline():
        raise NotFoundError(f"{entry['name']} is not in the local store (offline)", where=name,
                            hint="pull it once while online")
    if verify and found is not None and entry.get("sha256") and not entry.get("folder"):
        digest = sha256_file(found)
        if digest != str(entry["sha256"]).lower():
            raise IntegrityError(f"the stored copy is damaged: sha256 {digest}, expected {entry['sha256']}",
                                 where=str(found), hint=f"remove it and run: modelctl pull {name}")
    got = sources.fetch(manifest, entry, workers=workers, reporter=progress.reporter_for(entry.get("size_bytes"), quiet),
                        on_failure=lambda kind, exc: output.warn(f"source {kind} failed: {exc.one_line()}"))
    out = {
        "repo": manifest.get("repo"), "revision": manifest.get("revision"), "manifest": manifest.get("name"),
        "source": got.source,
        "files": [{"name": entry["name"], "size_bytes": got.size, "sha256": got.sha256, "path": str(got.path),
                   "status": got.status}],
        "total_bytes": got.size,
    }
    if dest_dir is not None:
        out["placed"] = [str(store.place_in_dir(got.path, Path(dest_dir), entry["name"]))]
    return out
