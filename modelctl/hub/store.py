"""The local model store: the Hugging Face cache layout, shared with `hf` and other tools.

Layout (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``)::

    models--ORG--NAME/
        blobs/<etag>                  the file's bytes; etag = LFS sha256, or the git blob id
        blobs/<etag>.incomplete       a download in progress (sparse; see modelctl.hub.transfer)
        snapshots/<commit>/<path>  -> ../../blobs/<etag>   (relative symlink)
        refs/<branch>                 the commit the branch pointed to when last pulled
    .locks/models--ORG--NAME/<etag>.lock   the same lock file huggingface_hub takes

Because the blob names, symlinks and lock files are the ones huggingface_hub uses, a file pulled by
modelctl is found by ``hf_hub_download`` and vice versa, and no file is stored twice.

This module knows nothing about the network; ``modelctl.hub.resolve`` turns a model reference into a path,
fetching what the store lacks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from modelctl.core.atomicfile import link_or_copy, write_text_atomic
from modelctl.core.errors import IntegrityError, NotFoundError, UsageError
from modelctl.core.paths import hub_cache  # noqa: F401 (the store root, where callers find it)
from modelctl.gguf.names import COMMIT_RE, REPO_ID_RE, SHARD_RE, file_group, is_model_file, legacy_group, quant_of

REPO_TYPE_PREFIX = "models"


# ---------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------


def repo_folder(repo: str) -> str:
    return f"{REPO_TYPE_PREFIX}--{repo.replace('/', '--')}"


def repo_dir(repo: str) -> Path:
    return hub_cache() / repo_folder(repo)


def blob_path(repo: str, blob: str) -> Path:
    return repo_dir(repo) / "blobs" / blob


def lock_path(repo: str, blob: str) -> Path:
    return hub_cache() / ".locks" / repo_folder(repo) / f"{blob}.lock"


def snapshot_dir(repo: str, commit: str) -> Path:
    return repo_dir(repo) / "snapshots" / commit


def check_repo_id(repo: str) -> str:
    if not REPO_ID_RE.match(repo) or ".." in repo:
        raise UsageError(f"not a repository id: {repo!r}", hint="use owner/name, e.g. TheBloke/zephyr-7B-beta-GGUF")
    return repo


def safe_relpath(name: str, *, where: str | None = None) -> str:
    """A repository file name that is safe to join under a directory, or IntegrityError.

    Refuses absolute paths, ``..`` and ``.`` segments, empty segments, backslashes and control characters:
    a server that sends such a name is hostile or broken.
    """
    bad = (
        not name
        or name.startswith("/")
        or "\\" in name
        or any(ord(c) < 32 for c in name)
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise IntegrityError(f"refusing unsafe file name {name!r}", where=where,
                             hint="the server sent a path outside the repository")
    return name


def read_ref(repo: str, revision: str) -> str | None:
    """The commit a branch/tag pointed to when last pulled; a commit sha maps to itself if present."""
    if COMMIT_RE.match(revision):
        return revision if snapshot_dir(repo, revision).is_dir() else None
    ref = repo_dir(repo) / "refs" / revision
    try:
        commit = ref.read_text().strip()
    except OSError:
        return None
    return commit if COMMIT_RE.match(commit) else None


def write_ref(repo: str, revision: str, commit: str) -> None:
    if revision != commit:
        safe_relpath(revision, where=repo)
        ref = repo_dir(repo) / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(ref, commit)


def link_snapshot(repo: str, commit: str, name: str, blob: str) -> Path:
    """snapshots/<commit>/<name> -> ../../blobs/<blob> (relative, replaced atomically)."""
    safe_relpath(name, where=repo)
    link = snapshot_dir(repo, commit) / name
    link.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(blob_path(repo, blob), link.parent)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.lnk")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link


def place_in_dir(src: Path, dest_dir: Path, name: str) -> Path:
    """`--dir`: put a stored file at DIR/name: a hard link when on the same filesystem (no second copy on
    disk), else a reflink or a copy (``atomicfile.link_or_copy``)."""
    safe_relpath(name)
    dest = Path(dest_dir) / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    real = Path(os.path.realpath(src))
    if dest.exists() and os.path.samefile(dest, real):
        return dest
    return link_or_copy(real, dest, where=str(dest))


# ---------------------------------------------------------------------------
# what is in the store
# ---------------------------------------------------------------------------


@dataclass
class LocalFile:
    name: str          # path inside the repository
    path: Path         # the snapshot path (a symlink into blobs/)
    size: int
    quant: str | None


@dataclass
class LocalModel:
    repo: str
    commit: str
    refs: list[str] = field(default_factory=list)
    files: list[LocalFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def ggufs(self) -> list[LocalFile]:
        return [f for f in self.files if f.name.lower().endswith(".gguf")]


def _repo_from_folder(folder: str) -> str | None:
    if not folder.startswith(REPO_TYPE_PREFIX + "--"):
        return None
    parts = folder[len(REPO_TYPE_PREFIX) + 2:].split("--")
    if len(parts) != 2:
        return None
    return "/".join(parts)


def _snapshot_files(snap: Path) -> list[LocalFile]:
    files = []
    for root, dirs, names in os.walk(snap):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for n in names:
            if n.startswith("."):
                continue
            p = Path(root) / n
            try:
                size = p.stat().st_size  # follows the symlink; a dangling link is skipped
            except OSError:
                continue
            rel = p.relative_to(snap).as_posix()
            files.append(LocalFile(rel, p, size, quant_of(rel)))
    files.sort(key=lambda f: f.name)
    return files


def local_models(repo: str | None = None) -> list[LocalModel]:
    """Every snapshot in the cache (or of one repo), newest ref first."""
    cache = hub_cache()
    if repo is not None:
        folders = [repo_folder(repo)]
    else:
        try:
            folders = sorted(p.name for p in cache.iterdir())
        except OSError:
            return []
    result = []
    for folder in folders:
        name = _repo_from_folder(folder)
        if name is None:
            continue
        base = cache / folder
        refs: dict[str, list[str]] = {}
        try:
            for ref in (base / "refs").rglob("*"):
                if ref.is_file():
                    refs.setdefault(ref.read_text().strip(), []).append(ref.relative_to(base / "refs").as_posix())
        except OSError:
            pass
        try:
            snaps = sorted((base / "snapshots").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            continue
        for snap in snaps:
            files = _snapshot_files(snap)
            if files:
                result.append(LocalModel(name, snap.name, sorted(refs.get(snap.name, [])), files))
    return result


def list_report() -> dict:
    """``modelctl list --json``: the store's folder and, per model, its quants, size, snapshot and files."""
    return {"store": str(hub_cache()), "models": [{
        "repo": m.repo, "commit": m.commit, "refs": m.refs,
        "quants": sorted({f.quant for f in m.files if f.quant}),
        "size_bytes": m.size, "path": str(snapshot_dir(m.repo, m.commit)),
        "files": [{"name": f.name, "quant": f.quant, "size_bytes": f.size} for f in m.files],
    } for m in local_models()]}


def find_local(repo: str, revision: str | None = None) -> LocalModel | None:
    """The snapshot for ``revision`` (a branch, tag or commit); without one: refs/main, else the newest."""
    models = local_models(repo)
    if not models:
        return None
    if revision is not None:
        commit = read_ref(repo, revision)
        for m in models:
            if m.commit == commit:
                return m
        return None
    commit = read_ref(repo, "main")
    for m in models:
        if m.commit == commit:
            return m
    return models[0]


def choose_gguf(model: LocalModel | list[str], quant: str | None, *, where: str) -> list[str]:
    """The file names (all shards) of the requested quant among a model's GGUF files.

    Without a quant, a model with a single quant gives it; otherwise a UsageError lists the choices."""
    names = [f.name for f in model.files] if isinstance(model, LocalModel) else list(model)
    ggufs = [n for n in names if is_model_file(n)]
    by_quant: dict[str, list[str]] = {}
    for n in ggufs:
        by_quant.setdefault((quant_of(n) or "?").upper(), []).append(n)
    if quant is not None:
        key = quant.upper()
        chosen = by_quant.get(key)
        if not chosen:
            prefixed = sorted(q for q in by_quant if q.startswith(key + "_"))
            if len(prefixed) == 1:
                chosen = by_quant[prefixed[0]]
            elif prefixed:
                raise UsageError(f"{key} is ambiguous: {', '.join(prefixed)}", where=where,
                                 hint=f"name one, e.g. {where}:{prefixed[0]}")
        if not chosen:
            choices = ", ".join(sorted(by_quant)) or "none"
            raise NotFoundError(f"no {key} file", where=where, hint=f"quants available: {choices}")
        groups = sorted({file_group(n) for n in chosen})
        if len(groups) > 1:
            raise UsageError(f"{len(groups)} {key} files: {', '.join(groups)}", where=where,
                             hint=f"name the file: {where}/{groups[0]}")
        return sorted(chosen)
    if len(by_quant) == 1:
        return sorted(next(iter(by_quant.values())))
    if not by_quant:
        raise NotFoundError("no GGUF file", where=where)
    raise UsageError(
        f"{len(by_quant)} quants to choose from: {', '.join(sorted(by_quant))}", where=where,
        hint=f"name one, e.g. {where}:{sorted(by_quant)[0]}",
    )


def entry_file(names: list[str]) -> str:
    """The file a loader opens for a group of shards: part 1 of NAME-0000i-of-0000N.gguf, or the one file."""
    names = sorted(names)
    for n in names:
        m = SHARD_RE.match(n.rsplit("/", 1)[-1])
        if m and int(m.group("index")) == 1:
            return n
    ggufs = [n for n in names if n.lower().endswith(".gguf")]
    return (ggufs or names)[0]


def joined_names(names: list[str]) -> list[str]:
    """Legacy split parts replaced by the joined file name they form."""
    out: list[str] = []
    for n in names:
        g = legacy_group(n)
        name = g[0] if g else n
        if name not in out:
            out.append(name)
    return out
