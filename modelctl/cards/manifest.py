"""Model manifests: ``manifests/NAME.yaml`` read, written, found by name, and made from a card.

A manifest says everything modelctl needs to know about one model: where its
files come from (``sources``, tried in order), what the files are (quant, size,
parts, sha256), how to prompt it (template, stop strings, sampling) and its
shape (``architecture``, for memory estimates).  The schema and its checks are
``modelctl.cards.manifest_schema``; ``manifests/SCHEMA.md`` documents it.

Lookup order for a name: ``$MODELCTL_MANIFESTS`` (os.pathsep-separated
folders), ``~/.config/modelctl/manifests`` (``$XDG_CONFIG_HOME`` honoured), then
the built-ins shipped in the ``modelctl.manifests`` package.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from modelctl.cards.manifest_schema import (MAX_MANIFEST_BYTES, NAME_RE, SCHEMA_VERSION, Manifest,
                                            manifest_from_dict, parse_yaml_text)
from modelctl.core.errors import ManifestError, NotFoundError

# ---------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Load and validate one manifest file."""
    p = Path(path)
    where = str(p)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise NotFoundError("no such manifest file", where=where, hint="check the path or run `modelctl card` to make one") from None
    except IsADirectoryError:
        raise ManifestError("is a folder, not a manifest file", where=where) from None
    except OSError as exc:
        raise ManifestError(f"cannot be read: {exc.strerror or exc}", where=where) from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"is larger than {MAX_MANIFEST_BYTES} bytes; not a manifest", where=where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError("is not UTF-8 text", where=where, hint="a manifest is a YAML file") from None
    return manifest_from_dict(parse_yaml_text(text, where), where=where, path=p)


def save_manifest(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Write a manifest atomically (temp file + rename) after checking it round-trips."""
    from modelctl.core.atomicfile import write_text_atomic

    text = manifest.to_yaml()
    manifest_from_dict(parse_yaml_text(text, str(path)), where=str(path))
    return write_text_atomic(path, text)


# ---------------------------------------------------------------------------
# finding manifests by name
# ---------------------------------------------------------------------------


def user_manifest_dirs() -> list[Path]:
    dirs = [Path(p).expanduser() for p in os.environ.get("MODELCTL_MANIFESTS", "").split(os.pathsep) if p]
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    dirs.append(Path(config) / "modelctl" / "manifests")
    return dirs


def _builtin_entries() -> dict[str, Any]:
    from importlib.resources import files

    root = files("modelctl.manifests")
    return {e.name[: -len(".yaml")]: e for e in root.iterdir() if e.name.endswith(".yaml") and e.is_file()}


def manifest_paths() -> dict[str, Any]:
    """name -> where its manifest lives (user folders shadow built-ins; first folder wins)."""
    found: dict[str, Any] = {}
    for d in user_manifest_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.yaml")):
                found.setdefault(p.stem, p)
    for name, entry in sorted(_builtin_entries().items()):
        found.setdefault(name, entry)
    return dict(sorted(found.items()))


def list_manifests() -> list[str]:
    """Names of every manifest modelctl can find, sorted."""
    return list(manifest_paths())


def load_manifest(name_or_path: str | os.PathLike) -> Manifest:
    """A manifest by path (``x.yaml``, ``./x``) or by name (user folders first, then built-ins)."""
    ref = os.fspath(name_or_path)
    if isinstance(name_or_path, Path) or ref.endswith((".yaml", ".yml")) or Path(ref).is_file():
        return read_manifest(Path(ref).expanduser())
    if not NAME_RE.match(ref):
        raise NotFoundError(f"no manifest named {ref!r}", hint="a manifest name is like zephyr-7b-beta; "
                            f"known: {', '.join(list_manifests()) or 'none'}")
    entry = manifest_paths().get(ref)
    if entry is None:
        known = ", ".join(list_manifests()) or "none"
        raise NotFoundError(f"no manifest named {ref!r}", hint=f"known: {known}")
    if isinstance(entry, Path):
        m = read_manifest(entry)
    else:  # a built-in resource (may live inside a wheel or zip)
        where = f"built-in manifest {entry.name}"
        m = manifest_from_dict(parse_yaml_text(entry.read_text(encoding="utf-8"), where), where=where)
    if m.name != ref:
        raise ManifestError(f"field 'name' is {m.name!r} but the file is {ref}.yaml", where=str(entry),
                            hint="make the name match the file name")
    return m


# ---------------------------------------------------------------------------
# card -> manifest
# ---------------------------------------------------------------------------


def name_from_repo(repo: str | None, fallback: str | None = None) -> str:
    """'TheBloke/zephyr-7B-beta-GGUF' -> 'zephyr-7b-beta' (a valid manifest name)."""
    base = (repo.split("/", 1)[1] if repo else None) or fallback or "model"
    base = re.sub(r"[-_.]?gguf$", "", base, flags=re.I)
    slug = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-._")
    return slug[:128] or "model"


def manifest_from_card(card: dict, *, name: str | None = None, architecture: dict | None = None,
                       stop: list[str] | None = None, sampling: dict | None = None,
                       sources: list[dict] | None = None, where: str = "<card>") -> Manifest:
    """A manifest from ``modelctl.card.parse_card`` output, validated like any manifest.

    The card cannot tell the architecture; pass it (from the base model's config) or leave it null.
    Sources default to the card's hub repo.
    """
    repo = card.get("repo")
    revision = card.get("revision") or "main"
    if sources is None:
        sources = [{"kind": "hub", "repo": repo, "revision": revision}] if repo else []
    files = []
    for f in card.get("files", []):
        entry = {k: f.get(k) for k in ("name", "quant", "bits", "size_bytes", "max_ram_bytes", "use_case")}
        entry["parts"] = list(f.get("parts") or [])
        if f.get("folder"):
            entry["folder"] = f["folder"]
        entry["sha256"] = f.get("sha256")
        files.append(entry)
    data = {
        "schema": SCHEMA_VERSION,
        "name": name or name_from_repo(repo, card.get("model_name")),
        "repo": repo,
        "revision": revision,
        "model_name": card.get("model_name"),
        "model_creator": card.get("model_creator"),
        "base_model": card.get("base_model"),
        "license": card.get("license"),
        "model_type": card.get("model_type"),
        "quantizer": card.get("quantizer"),
        "prompt_template": card.get("prompt_template"),
        "chat_template": None,
        "stop": list(stop if stop is not None else card.get("stop") or []),
        "sampling": sampling if sampling is not None else card.get("sampling"),
        "architecture": architecture,
        "files": files,
        "default_file": card.get("example_file"),
        "sources": sources,
        "notes": None,
    }
    return manifest_from_dict(data, where=where)


def manifest_for_source(card: dict, manifest: Manifest | None, *, name: str | None = None,
                        where: str = "<card>") -> Manifest:
    """What ``modelctl card --yaml`` prints: the manifest SOURCE was (renamed when ``name`` is given), or
    one made from its card."""
    if manifest is None:
        return manifest_from_card(card, name=name, where=where)
    if name:
        return manifest_from_dict({**manifest.to_dict(), "name": name}, where=where)
    return manifest
