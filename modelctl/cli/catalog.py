"""``modelctl card`` and ``modelctl recommend``: what a model is, and which of its files fits this machine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from modelctl.cli.common import JsonOpt, app, human_bytes
from modelctl.core import output


# card (issue: cards -> manifests)
# ---------------------------------------------------------------------------


def _card_gb(n: Optional[int]) -> str:
    """Sizes as cards write them: decimal GB."""
    return "-" if n is None else f"{n / 1e9:.2f} GB"


def _render_card(card: dict) -> None:
    from rich.table import Table

    console = output.out()
    title = card.get("model_name") or card.get("repo") or "model card"
    console.print(f"[bold]{title}[/bold]" + (f"  ({card['repo']})" if card.get("repo") else ""), markup=True)
    for label, key in (("creator", "model_creator"), ("base model", "base_model"), ("license", "license"),
                       ("type", "model_type"), ("quantizer", "quantizer")):
        if card.get(key):
            console.print(f"  {label}: {card[key]}", markup=False)
    tpl = card.get("prompt_template")
    if tpl:
        name = f" {card['prompt_template_name']}" if card.get("prompt_template_name") else ""
        console.print(f"  prompt template{name} ({tpl['style']}): {tpl['text']!r}", markup=False)
    if card.get("stop"):
        console.print(f"  stop: {', '.join(repr(s) for s in card['stop'])}", markup=False)
    table = Table(pad_edge=False, box=None, header_style="bold")
    for col, justify in (("file", "left"), ("quant", "left"), ("bits", "right"), ("size", "right"),
                         ("max RAM", "right"), ("use case", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for f in card["files"]:
        name = f["name"] + "".join(f"\n  part: {p}" for p in f.get("parts") or [])
        if f.get("folder"):
            name += f"\n  folder: {f['folder']}/"
        table.add_row(name, f.get("quant") or "-", str(f["bits"]) if f.get("bits") else "-",
                      _card_gb(f.get("size_bytes")), _card_gb(f.get("max_ram_bytes")),
                      f.get("use_case") or "")
    console.print(table)


@app.command("card")
def card_command(
    source: str = typer.Argument(..., metavar="SOURCE",
                                 help="A model card file (README.md; - for stdin), a repo id owner/name, or a manifest name or path."),
    as_json: bool = JsonOpt,
    as_yaml: bool = typer.Option(False, "--yaml", help="Print a manifest (YAML) made from the card."),
    output_file: Optional[Path] = typer.Option(None, "-o", "--output", dir_okay=False,
                                               help="Write the result to FILE (atomically) instead of stdout."),
    name: Optional[str] = typer.Option(None, "--name", help="Manifest name for --yaml (default: from the repo name)."),
    revision: str = typer.Option("main", "--revision", help="Branch, tag or commit when SOURCE is a repo id."),
) -> None:
    """Read a model card: its files (quant, bits, size, RAM), prompt template and metadata."""
    from modelctl.core.errors import UsageError

    if as_json and as_yaml:
        raise UsageError("--json and --yaml exclude each other", hint="pick one")
    fmt = "json" if as_json else "yaml" if as_yaml else None
    if fmt is None and output_file is not None:
        fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(output_file.suffix.lower())
        if fmt is None:
            raise UsageError(f"cannot tell the format of {output_file}", hint="add --json or --yaml")

    from modelctl.hub.cards import load_source

    card, manifest = load_source(source, revision=revision)
    if fmt == "yaml":
        from modelctl.cards.manifest import manifest_for_source

        text = manifest_for_source(card, manifest, name=name, where=source).to_yaml()
    elif fmt == "json":
        import json

        text = json.dumps(card, indent=2, ensure_ascii=False) + "\n"
    else:
        text = None
    if fmt != "json":
        for w in card["warnings"]:
            output.warn(w)
    if output_file is not None:
        from modelctl.core.atomicfile import write_text_atomic

        write_text_atomic(output_file, text)
        output.notice(f"wrote {output_file}")
    elif fmt == "json":
        output.print_json(card)
    elif fmt == "yaml":
        sys.stdout.write(text)
    else:
        _render_card(card)


# ---------------------------------------------------------------------------
# recommend
# ---------------------------------------------------------------------------

@app.command()
def recommend(
    source: str = typer.Argument(..., help="Manifest name, card path, repo id owner/name, .gguf path or URL."),
    ctx: Optional[int] = typer.Option(None, "--ctx", "-c", min=1, help="Context length [default: the model's, capped at 4096]."),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type: f16, q8_0, q4_0, ... (quantized V needs flash attention)."),
    ram: Optional[str] = typer.Option(None, "--ram", help="RAM to plan for, e.g. 16GB or 16GiB [default: detected, available]."),
    vram: Optional[str] = typer.Option(None, "--vram", help="VRAM per GPU, e.g. 8GiB (alone: one GPU of that size)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="none, all, or how many GPUs to use."),
    all_: bool = typer.Option(False, "--all", help="Show every candidate, not only the choice and what beats it."),
    mmproj: bool = typer.Option(False, "--mmproj", help="Plan for the repo's vision projector (mmproj) too."),
    emit: Optional[str] = typer.Option(
        None, "--emit", help="Print launch lines instead: llama.cpp, llama-server, llama-rpc or ollama (a Modelfile)."),
    parallel: int = typer.Option(1, "--parallel", min=1,
                                 help="Plan for N requests at once of --ctx tokens each (llama-server's -np; -c is the total)."),
    rpc_host: List[str] = typer.Option([], "--rpc-host", metavar="HOST:PORT=MEM",
                                       help="An rpc-server host and the memory it gives (repeatable; --emit llama-rpc)."),
    json_: bool = JsonOpt,
) -> None:
    """Pick the best quant file for this machine, with RAM/VRAM estimates and GPU layers.

    Exit code 3 when nothing fits.
    """
    from modelctl.hub import candidates
    from modelctl.fit import hardware
    from modelctl.core.errors import NothingFitsError, UsageError
    from modelctl.fit.recommend import DEFAULT_CTX_CAP, default_ctx, parse_rpc_host, plan_rpc
    from modelctl.fit.recommend import recommend as choose_file

    if emit is not None and emit not in ("llama.cpp", "llama-server", "llama-rpc", "ollama"):
        raise UsageError(f"--emit: expected llama.cpp, llama-server, llama-rpc or ollama, not {emit!r}")
    if emit and json_:
        raise UsageError("--emit and --json cannot be combined")
    if (emit == "llama-rpc") != bool(rpc_host):
        raise UsageError("--emit llama-rpc and --rpc-host go together",
                         hint="give each rpc-server host as --rpc-host HOST:PORT=MEM")
    hosts = [parse_rpc_host(h) for h in rpc_host]
    machine = hardware.apply_overrides(hardware.detect(), ram=ram, vram=vram, gpus=gpus)
    for note in machine.notes:
        output.notice(f"note: {note}")
    spec = candidates.resolve_source(source, include_mmproj=mmproj, warn=output.warn)
    if ctx is None:
        ctx = default_ctx(spec.arch)
        output.notice(f"context: {ctx} tokens (the model's {spec.arch.context_length or 'unknown'}, capped at "
                      f"{DEFAULT_CTX_CAP}; pass --ctx to change)")
    elif isinstance(spec.arch.context_length, int) and 0 < spec.arch.context_length < ctx:
        output.warn(f"--ctx {ctx} is beyond the {spec.arch.context_length} tokens the model was trained for")
    rec = choose_file(spec, machine, ctx * parallel, kv_type.lower(), include_mmproj=mmproj)
    if json_:
        output.print_json(rec.to_dict())
        if rec.choice is not None:
            output.notice(rec.reason)
    elif emit == "llama-rpc":
        from modelctl.fit import emit as emitter

        cand, shares = plan_rpc(rec, hosts)
        head = cand.estimate.placement(cand.estimate.max_ngl, ("rpc",)).ram_bytes
        output.notice(f"{cand.file.name}: " + "; ".join(
            f"{s.host.endpoint} {s.layers} layers (about {human_bytes(s.bytes)})" for s in shares)
            + f"; the head keeps the embeddings (about {human_bytes(head)} of RAM)")
        sys.stdout.write(emitter.llama_rpc_lines(spec, cand, shares, parallel))
        return
    elif emit:
        if rec.choice is not None:
            from modelctl.fit import emit as emitter

            text = {"llama.cpp": lambda: emitter.llama_cpp_line(spec, rec.choice) + "\n",
                    "llama-server": lambda: emitter.llama_server_line(spec, rec.choice, parallel) + "\n",
                    "ollama": lambda: emitter.ollama_modelfile(spec, rec.choice)}[emit]()
            sys.stdout.write(text)
    else:
        _render_recommendation(rec, all_)
    if rec.choice is None:
        raise NothingFitsError(rec.reason, where=spec.name,
                               hint="try a smaller --ctx, --kv-type q8_0, or a machine with more memory")


def _render_recommendation(rec, show_all: bool) -> None:
    from rich.table import Table

    from modelctl.core.units import format_size

    m = rec.machine
    con = output.out()
    gpus = ", ".join(f"{g.name} ({format_size(g.vram_free_bytes)} free)" for g in m.gpus) or "none"
    con.print(f"machine: RAM {format_size(m.ram_available_bytes)} available of {format_size(m.ram_total_bytes)}; "
              f"GPUs: {gpus}", markup=False)
    shown = rec.candidates if show_all or rec.choice is None else \
        [c for c in rec.candidates if c.quality_rank <= rec.choice.quality_rank]
    table = Table(show_edge=False, pad_edge=False)
    for col in ("rank", "file", "quant", "size", "ngl", "RAM", "VRAM", "KV cache", "fits", "from"):
        table.add_column(col, justify="right" if col in ("rank", "size", "ngl", "RAM", "VRAM", "KV cache") else "left")
    for c in shown:
        mark = "*" if c is rec.choice else ""
        table.add_row(f"{c.quality_rank}{mark}", c.file.name, c.file.quant or "?", format_size(c.file.size_bytes),
                      str(c.placement.ngl), format_size(c.placement.ram_bytes), format_size(c.placement.vram_bytes),
                      format_size(c.estimate.kv_cache_bytes), "yes" if c.fits else "no", c.estimate.weights.source)
    con.print(table)
    if rec.choice is not None:
        c = rec.choice
        con.print(f"choice: {c.file.name}  -ngl {c.placement.ngl}  -c {rec.ctx}", markup=False)
    con.print(rec.reason, markup=False)
    if not show_all and len(shown) < len(rec.candidates):
        con.print(f"({len(rec.candidates) - len(shown)} smaller files not shown: --all)", markup=False)
