"""`modelctl show`: what a stored model is (card summary, files, template, architecture from the GGUF)."""

from __future__ import annotations

import os
from pathlib import Path

from modelctl.core.errors import ModelctlError, UsageError
from modelctl.hub import store
from modelctl.hub.resolve import parse_ref, resolve_model

CARD_KEYS = ("model_name", "model_creator", "base_model", "license", "model_type", "quantized_by",
             "pipeline_tag", "language")
TEMPLATE_PREVIEW = 2000


def card_summary(readme: Path) -> dict:
    """Front-matter fields and the first heading of a README.md (best effort; never raises on bad YAML)."""
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    from modelctl.cards.card import load_front_matter, split_front_matter

    fm, body, _, _ = split_front_matter(text.replace("\r\n", "\n"))
    meta, _ = load_front_matter(fm) if fm is not None else ({}, [])
    summary: dict = {k: meta[k] for k in CARD_KEYS if meta.get(k) is not None}
    for line in body.splitlines():
        if line.startswith("# "):
            summary["title"] = line[2:].strip()
            break
    return summary


def architecture(path: Path) -> dict:
    from modelctl.gguf.reader import read_header
    from modelctl.gguf.quants import FILE_TYPES

    h = read_header(path)
    arch = h.architecture
    heads = h.arch_get("attention.head_count")
    emb = h.arch_get("embedding_length")
    n_params = sum(t.n_elements for t in h.tensors)
    info = {
        "arch": arch,
        "name": h.get("general.name"),
        "layers": h.arch_get("block_count"),
        "heads": heads,
        "kv_heads": h.arch_get("attention.head_count_kv"),
        "head_dim": h.arch_get("attention.key_length") or (emb // heads if emb and isinstance(heads, int) and heads else None),
        "embedding": emb,
        "ffn": h.arch_get("feed_forward_length"),
        "vocab": h.arch_get("vocab_size") or len(h.get("tokenizer.ggml.tokens") or []) or None,
        "context_length": h.arch_get("context_length"),
        "sliding_window": h.arch_get("attention.sliding_window"),
        "file_type": FILE_TYPES.get(h.get("general.file_type")),
        "parameters": n_params,
        "tensors": len(h.tensors),
    }
    chat = h.get("tokenizer.chat_template")
    return {"architecture": info, "chat_template": chat if isinstance(chat, str) else None}


def describe(ref: str, quant: str | None = None, errors: list | None = None) -> dict:
    """Everything `show` prints, as data.  Never downloads.  A model file whose header cannot be read is
    described as far as possible and its error appended to ``errors``.

    A repo with several quants and none named still shows its card and files (the architecture needs
    a GGUF: name a quant)."""
    parsed = parse_ref(ref)
    repo = parsed.repo if parsed.kind == "repo" else None
    try:
        path = resolve_model(ref, quant=quant, allow_download=False)
    except UsageError as exc:
        if repo is None or store.find_local(repo) is None:
            raise
        path = None
        ambiguous = exc.one_line()
    result: dict = {"model": ref, "path": str(path) if path else None,
                    "size_bytes": path.stat().st_size if path else None}
    if path is None:
        result["architecture_error"] = ambiguous
    snap = None
    if repo:
        local = store.find_local(repo)
        if local:
            snap = store.snapshot_dir(repo, local.commit)
            result["repo"] = repo
            result["commit"] = local.commit
            result["files"] = [{"name": f.name, "quant": f.quant, "size_bytes": f.size} for f in local.files]
    template = None
    is_manifest = "/" not in ref and not Path(os.path.expanduser(ref)).exists()
    if is_manifest:
        try:
            from modelctl.hub import sources

            m = sources.load(ref)
            result["manifest"] = m.get("name")
            result["card"] = {k: m.get(k) for k in ("model_name", "model_creator", "base_model", "license",
                                                     "model_type", "quantizer") if m.get(k)}
            pt = m.get("prompt_template")
            template = m.get("chat_template") or (pt.get("text") if isinstance(pt, dict) else pt)
        except ModelctlError:
            pass
    if snap is not None and (snap / "README.md").exists():
        result["card"] = card_summary(snap / "README.md")
    if path is None:
        result["architecture"] = None
        result["template"] = template
        return result
    try:
        arch = architecture(path)
    except ModelctlError as exc:    # shown with the rest, then the command fails with it (exit 6 for a bad GGUF)
        result["architecture_error"] = exc.one_line()
        arch = {"architecture": None, "chat_template": None}
        if errors is not None:
            errors.append(exc)
    result["architecture"] = arch["architecture"]
    result["template"] = arch["chat_template"] or template
    return result
