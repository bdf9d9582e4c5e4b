"""Turn what the user named into a ``ModelSpec``: the candidate files ``recommend`` weighs.

SOURCE is one of: a GGUF URL (http/https, read through range requests), a local
``.gguf`` file (all parts of a split model), a manifest name or ``.yaml`` path, a
model card (README.md), or a Hub repo id ``owner/name`` (file list and the
headers of its GGUF files fetched from ``HF_ENDPOINT``, only the header bytes).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelctl.core.errors import GGUFError, ModelctlError, NotFoundError, UsageError
from modelctl.fit.estimate import Arch, arch_from_dict, arch_from_header, weights_from_tensors
from modelctl.gguf.names import REPO_ID_RE, SHARD_RE, shard_set
from modelctl.gguf.reader import GGUFHeader, HTTPSource, read_header
from modelctl.hub.api import auth_headers, map_error
from modelctl.gguf.quants import FILE_TYPES
from modelctl.fit.recommend import FileSpec, ModelSpec, group_split_files, is_projector_file, \
    is_weights_file, spec_from_manifest_dict

HEADER_FETCH_WORKERS = 4
MAX_URL_PARTS = 256


def quant_of_header(h: GGUFHeader) -> str | None:
    ft = h.metadata.get("general.file_type")
    return FILE_TYPES.get(ft) if isinstance(ft, int) and not isinstance(ft, bool) else None


def _spec_from_headers(name: str, headers: list[GGUFHeader], location: str, parts: list[str],
                       size: int | None) -> ModelSpec:
    first = headers[0]
    arch = arch_from_header(first)
    tensors = [t for h in headers for t in h.tensors]
    w = weights_from_tensors(tensors, arch.layers)
    f = FileSpec(parts[0], quant_of_header(first), size, parts, w, "file-size", location)
    # the file's own chat template stays in the file: llama.cpp and Ollama read it from there
    return ModelSpec(name, arch, [f], None, None, None, None, [], {})


def from_local_gguf(path: Path) -> ModelSpec:
    shards = shard_set(path.name)
    if shards:
        parts = [path.with_name(n) for n in shards]
        missing = [p.name for p in parts if not p.exists()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise NotFoundError(f"split model is missing part(s) {shown}", where=str(path.parent),
                                hint="download every part of the model")
    else:
        parts = [path]
    headers = [read_header(p) for p in parts]
    size = sum(p.stat().st_size for p in parts)
    return _spec_from_headers(parts[0].name, headers, str(parts[0]), [p.name for p in parts], size)


def from_url(url: str, headers: dict[str, str] | None = None) -> ModelSpec:
    """A GGUF URL (only header bytes are fetched); for ``…-00001-of-0000N.gguf`` every part's header."""
    path, sep, query = url.partition("?")
    base, _, name = path.rstrip("/").rpartition("/")
    m = SHARD_RE.match(name)
    if m:
        if int(m["count"]) > MAX_URL_PARTS:
            raise UsageError(f"a split model of {int(m['count'])} parts is more than modelctl reads over HTTP",
                             where=url, hint=f"at most {MAX_URL_PARTS} parts")
        names = shard_set(name)
    else:
        names = [name or url]
    urls = [f"{base}/{n}{sep}{query}" for n in names] if m else [url]
    hdrs = [read_header(HTTPSource(u, headers=headers)) for u in urls]
    size = sum(h.file_size or 0 for h in hdrs) or None
    return _spec_from_headers(names[0], hdrs, url, names, size)


def from_manifest(name_or_path: str) -> ModelSpec:
    from modelctl.cards.manifest import load_manifest

    d = load_manifest(name_or_path).to_dict()
    arch_d = d.get("architecture")
    if not arch_d:
        raise UsageError("the manifest has no architecture block", where=str(name_or_path),
                         hint="add architecture: {arch, layers, heads, kv_heads, ...} or name the repo instead")
    spec = spec_from_manifest_dict(d, arch_from_dict(arch_d))
    if spec.repo:
        use_local_headers(spec)
    return spec


def use_local_headers(spec: ModelSpec) -> None:
    """Files of the spec already pulled into the local store: exact sizes from their own headers."""
    from modelctl.hub import store

    try:
        local = store.find_local(spec.repo, None if spec.revision in (None, "main") else spec.revision)
    except ModelctlError:
        return
    if local is None:
        return
    paths = {f.name: f.path for f in local.ggufs()}
    for f in spec.files:
        parts = f.parts or [f.name]
        if not all(p in paths for p in parts):
            continue
        try:
            headers = [read_header(paths[p]) for p in parts]
            arch = arch_from_header(headers[0])
        except ModelctlError:
            continue  # a damaged local copy: keep the card's figures
        f.weights = weights_from_tensors([t for h in headers for t in h.tensors], arch.layers)
        f.size_bytes = sum(paths[p].stat().st_size for p in parts)
        f.size_source = "file-size"
        f.location = str(paths[parts[0]])


def from_repo(repo: str, revision: str | None = None, include_mmproj: bool = False,
              warn=lambda msg: None) -> ModelSpec:
    """A Hub repo: its GGUF files (sizes from the listing) and each one's remote header."""
    from huggingface_hub import HfApi, hf_hub_url

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    try:
        info = api.model_info(repo, revision=revision, files_metadata=True)
    except Exception as exc:  # one mapping of Hub errors to exit codes for every command
        raise map_error(exc, repo=repo, revision=revision) from None
    rev = revision or getattr(info, "sha", None) or "main"
    sizes = {s.rfilename: s.size for s in (info.siblings or [])}
    names = [n for n in sizes if is_weights_file(n)]
    if not names:
        raise NotFoundError("the repository has no GGUF model files", where=repo)
    groups = group_split_files(sorted(names))
    # projectors: only their size matters (added to each candidate with --mmproj)
    projectors = [FileSpec(n, None, sizes[n], [n], None, "file-size") for n in sorted(sizes)
                  if include_mmproj and is_projector_file(n) and sizes[n]]
    auth = auth_headers()   # huggingface_hub's: user agent, and the token when one is configured

    def fetch(first: str) -> tuple[str, list[GGUFHeader] | ModelctlError]:
        try:
            return first, [read_header(HTTPSource(hf_hub_url(repo, p, revision=rev), headers=auth))
                           for p in groups[first]]
        except ModelctlError as exc:
            return first, exc

    with ThreadPoolExecutor(max_workers=HEADER_FETCH_WORKERS) as pool:
        results = dict(pool.map(fetch, list(groups)))
    arch: Arch | None = None
    files: list[FileSpec] = []
    for first, parts in groups.items():
        size = sum(sizes.get(p) or 0 for p in parts) or None
        res = results[first]
        if isinstance(res, ModelctlError):
            warn(f"{first}: header not read ({res.one_line()}); estimating from its size")
            files.append(FileSpec(first, None, size, parts, None, "file-size"))
            continue
        a = arch_from_header(res[0])
        arch = arch or a
        w = weights_from_tensors([t for h in res for t in h.tensors], a.layers)
        files.append(FileSpec(first, quant_of_header(res[0]), size, parts, w, "file-size",
                              hf_hub_url(repo, first, revision=rev)))
    if arch is None:
        raise GGUFError("could not read the header of any GGUF file", where=repo,
                        hint="check the connection, or use a manifest with an architecture block")
    spec = ModelSpec(repo, arch, files + projectors, repo, rev, None, None, [], {})
    if "README.md" in sizes:
        _add_card(spec, warn)
    return spec


def _add_card(spec: ModelSpec, warn) -> None:
    """The repo's card: prompt template, stop strings and sampling for --emit; quant names it gives."""
    from modelctl.cards.card import parse_card
    from modelctl.hub.cards import fetch_card

    try:
        text, where = fetch_card(spec.repo, spec.revision or "main")
        card = parse_card(text, repo=spec.repo, source=where)
    except ModelctlError as exc:
        warn(f"model card not read ({exc.one_line()})")
        return
    pt = card.get("prompt_template")
    spec.prompt_template = pt if isinstance(pt, dict) and pt.get("text") else None
    spec.stop = list(card.get("stop") or [])
    spec.sampling = dict(card.get("sampling") or {})
    quants = {f.get("name"): f.get("quant") for f in card.get("files") or []}
    for f in spec.files:
        f.quant = f.quant or quants.get(f.name)


def resolve_source(source: str, *, include_mmproj: bool = False, warn=lambda msg: None) -> ModelSpec:
    if source.startswith(("http://", "https://")):
        return from_url(source)
    p = Path(source).expanduser()
    if p.exists():
        if p.is_dir():
            raise UsageError("is a directory", where=source, hint="name a .gguf file, a card or a manifest")
        if p.suffix.lower() in (".yaml", ".yml"):
            return from_manifest(str(p))
        if p.suffix.lower() == ".gguf":
            return from_local_gguf(p)
        with open(p, "rb") as fh:
            if fh.read(4) == b"GGUF":
                return from_local_gguf(p)
        return from_card(p, include_mmproj=include_mmproj, warn=warn)
    if p.suffix.lower() == ".gguf":
        raise NotFoundError("no such file", where=source)
    try:
        return from_manifest(source)
    except (NotFoundError, ImportError):
        if not REPO_ID_RE.match(source):
            raise NotFoundError("no manifest, file or repo by that name", where=source,
                                hint="give a manifest name, a .gguf path or URL, a card path or a repo id owner/name") from None
    return from_repo(source, include_mmproj=include_mmproj, warn=warn)


def from_card(path: Path, include_mmproj: bool = False, warn=lambda msg: None) -> ModelSpec:
    """A model card: its file table and prompt template; the architecture from a manifest of the same
    repo, else from the remote header of one of its files."""
    from modelctl.cards.card import parse_card, read_card_file

    card = parse_card(read_card_file(path), source=str(path))
    repo = card.get("repo")
    arch = None
    try:
        from modelctl.cards.manifest import list_manifests, load_manifest

        for name in list_manifests():
            try:
                d = load_manifest(name).to_dict()
            except ModelctlError:
                continue  # a broken manifest elsewhere must not stop this card
            if repo and d.get("repo") == repo and d.get("architecture"):
                arch = arch_from_dict(d["architecture"])
                break
    except ImportError:
        pass
    if arch is None:
        if not repo:
            raise UsageError("the card names no repository, so its architecture is unknown", where=str(path),
                             hint="use a manifest (modelctl card --yaml) or a .gguf file")
        remote = from_repo(repo, include_mmproj=include_mmproj, warn=warn)
        arch = remote.arch
    card_d = dict(card)
    card_d.setdefault("name", repo or path.stem)
    return spec_from_manifest_dict(card_d, arch)
