"""The one line a chat opens with: which model, quant, template, context and kernels are at work."""

from __future__ import annotations


def kernels_text(n_threads: int | None = None) -> str:
    """The runtime's kernel variant (the instruction set chosen at run time) and threads."""
    from modelctl.runtime import kernels

    threads = n_threads or kernels.default_threads()
    return f"{kernels.variant()}, {threads} thread{'s' if threads != 1 else ''}"


def opening_line(engine, template, model_name: str | None = None) -> str:
    """``model: Qwen2.5 Coder 0.5B Instruct (file.gguf) | quant Q4_K_M | template ... | ctx 4096 | kernels ...``"""
    from modelctl.gguf.quants import FILE_TYPES

    meta = engine.metadata
    title = model_name or meta.get("general.name") or engine.path.name
    quant = FILE_TYPES.get(meta.get("general.file_type")) or "?"
    threads = getattr(engine.model, "n_threads", None)
    return (f"model: {title} ({engine.path.name}) | quant {quant} | template: {template.origin} | "
            f"ctx {engine.n_ctx} | kernels: {kernels_text(threads)}")
