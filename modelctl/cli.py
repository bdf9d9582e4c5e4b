"""The command line: parses arguments and renders results, nothing else.

Every concern lives in its own module; those modules raise typed errors
(``modelctl.errors``) and ``main`` turns them into one line on stderr and an
exit code.  Heavy imports (numpy, huggingface_hub, the runtime) happen inside
the commands that need them so that ``modelctl --help`` and completion stay fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from modelctl import __version__
from modelctl import output
from modelctl.errors import EXIT_INTERRUPTED, EXIT_USAGE, ModelctlError

app = typer.Typer(
    name="modelctl",
    help="A model hub manager for local GGUF models: cards, recommend, pull, chat.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = typer.Option(False, "--json", help="Print only JSON on stdout.")


def _version_callback(value: bool) -> None:
    if value:
        from modelctl.runtime import variants   # light: no compiled code, no numpy

        typer.echo(f"modelctl {__version__} (kernels: {variants.describe()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """modelctl: find, fit, fetch and run GGUF models."""


# ---------------------------------------------------------------------------
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
    from modelctl.errors import UsageError

    if as_json and as_yaml:
        raise UsageError("--json and --yaml exclude each other", hint="pick one")
    fmt = "json" if as_json else "yaml" if as_yaml else None
    if fmt is None and output_file is not None:
        fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(output_file.suffix.lower())
        if fmt is None:
            raise UsageError(f"cannot tell the format of {output_file}", hint="add --json or --yaml")

    from modelctl.card import load_source

    card, manifest = load_source(source, revision=revision)
    if fmt == "yaml":
        from modelctl.manifest import manifest_for_source

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
        from modelctl.atomicfile import write_text_atomic

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
    emit: Optional[str] = typer.Option(None, "--emit", help="Print a launch line instead: llama.cpp or ollama (a Modelfile)."),
    json_: bool = JsonOpt,
) -> None:
    """Pick the best quant file for this machine, with RAM/VRAM estimates and GPU layers.

    Exit code 3 when nothing fits.
    """
    from modelctl import candidates, hardware
    from modelctl.errors import NothingFitsError, UsageError
    from modelctl.recommend import DEFAULT_CTX_CAP, default_ctx
    from modelctl.recommend import recommend as choose_file

    if emit is not None and emit not in ("llama.cpp", "ollama"):
        raise UsageError(f"--emit: expected llama.cpp or ollama, not {emit!r}")
    if emit and json_:
        raise UsageError("--emit and --json cannot be combined")
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
    rec = choose_file(spec, machine, ctx, kv_type.lower(), include_mmproj=mmproj)
    if json_:
        output.print_json(rec.to_dict())
        if rec.choice is not None:
            output.notice(rec.reason)
    elif emit:
        if rec.choice is not None:
            from modelctl import emit as emitter

            text = emitter.llama_cpp_line(spec, rec.choice) + "\n" if emit == "llama.cpp" \
                else emitter.ollama_modelfile(spec, rec.choice)
            sys.stdout.write(text)
    else:
        _render_recommendation(rec, all_)
    if rec.choice is None:
        raise NothingFitsError(rec.reason, where=spec.name,
                               hint="try a smaller --ctx, --kv-type q8_0, or a machine with more memory")


def _render_recommendation(rec, show_all: bool) -> None:
    from rich.table import Table

    from modelctl.units import format_size

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


# ---------------------------------------------------------------------------
# pull, list, show, rm
# ---------------------------------------------------------------------------


def _human_bytes(n: int | None) -> str:
    from modelctl.units import format_size

    return format_size(n, digits=1)


@app.command("pull")
def pull_cmd(
    ref: str = typer.Argument(..., help="owner/repo, owner/repo:QUANT, owner/repo/path/file.gguf, a manifest name, or a URL."),
    include: List[str] = typer.Option([], "--include", help="Only files matching this glob (repeatable)."),
    exclude: List[str] = typer.Option([], "--exclude", help="Skip files matching this glob (repeatable)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit (default: main)."),
    quant: Optional[str] = typer.Option(None, "--quant", help="The quant to pull (like REF:QUANT)."),
    dest_dir: Optional[Path] = typer.Option(None, "--dir", help="Also place the files in DIR."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show files, sizes, total and free disk; write nothing."),
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Parallel connections per file."),
    offline: bool = typer.Option(False, "--offline", help="Use only the local store (like HF_HUB_OFFLINE=1)."),
    json_out: bool = JsonOpt,
) -> None:
    """Download a model into the local store (the Hugging Face cache), resumable and verified."""
    from modelctl import pull as pullcmd

    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    result = pullcmd.run(ref, include=include, exclude=exclude, revision=revision, quant=quant,
                         dest_dir=dest_dir, dry_run=dry_run, workers=workers, quiet=json_out)
    if json_out:
        output.print_json(result)
        return
    console = output.out()
    if dry_run:
        for f in result["files"]:
            mark = "cached" if f["cached"] else "get"
            console.print(f"{mark:7} {_human_bytes(f['size_bytes']):>10}  {f['name']}", markup=False, soft_wrap=True)
        console.print(f"total {_human_bytes(result['total_bytes'])}, to download "
                      f"{_human_bytes(result['download_bytes'])}, free disk {_human_bytes(result['free_disk_bytes'])}"
                      f" in {result['store']}", markup=False, soft_wrap=True)
        return
    for f in result["files"]:
        console.print(f"{f['status']:10} {_human_bytes(f['size_bytes']):>10}  {f['path']}", markup=False, soft_wrap=True)
    for j in result.get("joined", []):
        console.print(f"{'joined':10} {'':>10}  {j['path']}", markup=False, soft_wrap=True)
    for p in result.get("placed", []):
        console.print(f"{'placed':10} {'':>10}  {p}", markup=False, soft_wrap=True)


@app.command("list")
def list_cmd(json_out: bool = JsonOpt) -> None:
    """Models in the local store: repo, quants, sizes, where."""
    from modelctl import store

    report = store.list_report()
    rows = report["models"]
    if json_out:
        output.print_json(report)
        return
    console = output.out()
    if not rows:
        output.notice(f"no models in {report['store']}")
        return
    for r in rows:
        quants = ",".join(r["quants"]) or "-"
        console.print(f"{r['repo']}  {quants}  {_human_bytes(r['size_bytes'])}  {r['path']}", markup=False, soft_wrap=True)


@app.command("show")
def show_cmd(
    model: str = typer.Argument(..., help="A .gguf path, a manifest name, owner/repo[:QUANT] or owner/repo/file.gguf."),
    quant: Optional[str] = typer.Option(None, "--quant", help="Which quant, when the model has several."),
    json_out: bool = JsonOpt,
) -> None:
    """A stored model: card summary, files, chat template, architecture (from the GGUF header)."""
    from modelctl import info

    d = info.describe(model, quant=quant)
    if json_out:
        output.print_json(d)
        return
    console = output.out()
    p = lambda s: console.print(s, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    p(f"model  {d['model']}")
    if d["path"]:
        p(f"path   {d['path']} ({_human_bytes(d['size_bytes'])})")
    if d.get("commit"):
        p(f"commit {d['commit']}")
    if d.get("card"):
        p("card")
        for k, v in d["card"].items():
            p(f"  {k}: {v}")
    if d.get("files"):
        p("files")
        for f in d["files"]:
            p(f"  {f['quant'] or '-':8} {_human_bytes(f['size_bytes']):>10}  {f['name']}")
    a = d.get("architecture")
    if a:
        p("architecture")
        for k, v in a.items():
            if v is not None:
                p(f"  {k}: {v}")
    elif d.get("architecture_error"):
        p(f"architecture: unreadable ({d['architecture_error']})")
    if d.get("template"):
        t = d["template"]
        p("template")
        n = info.TEMPLATE_PREVIEW
        p("  " + (t if len(t) <= n else t[:n] + " …").replace("\n", "\n  "))


@app.command("rm")
def rm_cmd(
    model: str = typer.Argument(..., help="owner/repo (everything) or owner/repo:QUANT (that quant's files)."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask."),
    json_out: bool = JsonOpt,
) -> None:
    """Remove a model (or one quant of it) from the local store."""
    from modelctl import pull, store
    from modelctl.errors import UsageError

    repo, quant, file = store.parse_repo_ref(model)
    if file:
        raise UsageError("rm takes owner/repo or owner/repo:QUANT", where=model)
    paths, total = pull.remove(repo, quant)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to delete without confirmation", where=model, hint="pass -y")
        output.err().print(f"remove {len(paths)} item(s), {_human_bytes(total)}:", markup=False, soft_wrap=True)
        for p in paths:
            output.err().print(f"  {p}", markup=False, soft_wrap=True)
        if not typer.confirm("Delete?", default=False, err=True):
            raise typer.Exit(1)
    pull.delete(repo, paths)
    if json_out:
        output.print_json({"removed": [str(p) for p in paths], "bytes": total})
    else:
        output.notice(f"removed {model} ({_human_bytes(total)})")



# ---------------------------------------------------------------------------
# tokenize
# ---------------------------------------------------------------------------


@app.command("tokenize")
def tokenize_cmd(
    model: str = typer.Argument(..., help="A .gguf file (vocab-only files too), a manifest name or a pulled owner/repo[:QUANT]."),
    text: Optional[str] = typer.Argument(None, help="The text; '-' or nothing reads stdin (when piped)."),
    add_special: bool = typer.Option(False, "--add-special", help="Add BOS/EOS as the model's metadata asks."),
    parse_special: bool = typer.Option(False, "--parse-special",
                                       help="Turn special-token text (<|im_start|>, <start_of_turn>...) into those tokens."),
    json_out: bool = JsonOpt,
) -> None:
    """Show the token ids and pieces the model's own tokenizer makes of TEXT (exactly as llama.cpp)."""
    from modelctl.errors import UsageError
    from modelctl.runtime import tokenizer

    if text is None or text == "-":
        if text is None and sys.stdin.isatty():
            raise UsageError("no text to tokenize", hint="give TEXT, or pipe text on stdin")
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"stdin is not UTF-8 (byte {exc.start})", hint="convert the text to UTF-8") from None
    elif any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        raise UsageError("TEXT is not UTF-8", hint="convert the text to UTF-8")
    tok = tokenizer.load_tokenizer(model)
    report = tokenizer.tokenize_report(tok, text, add_special=add_special, parse_special=parse_special)
    if json_out:
        output.print_json(report)
        return
    lines = [f"{i:>7} {tokenizer.piece_repr(tok.token_piece(i))}" for i in report["ids"]]
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    output.notice(f"{len(report['ids'])} tokens")


# ---------------------------------------------------------------------------
# run, bench
# ---------------------------------------------------------------------------


def _resolve_model_path(ref: str) -> Path:
    from modelctl import store

    return store.resolve_model(ref)


def _prompt_text(prompt: Optional[str]) -> str:
    if prompt is not None:
        return prompt
    if not sys.stdin.isatty():
        return sys.stdin.read()
    from modelctl.errors import UsageError

    raise UsageError("no prompt", hint="give -p TEXT or pipe the prompt on stdin")


@app.command("run")
def run_cmd(
    model: str = typer.Argument(..., help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT]."),
    prompt: Optional[str] = typer.Option(None, "-p", "--prompt", help="The raw prompt (no chat template). Default: stdin."),
    n_predict: int = typer.Option(128, "-n", "--n-predict", help="Tokens to generate at most (-1: until the context is full)."),
    temp: Optional[float] = typer.Option(None, "--temp", help="Temperature (0: greedy). Default: the model's, else 0.8."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Top-k (0: off). Default 40."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Top-p (1: off). Default 0.95."),
    min_p: Optional[float] = typer.Option(None, "--min-p", help="Min-p (0: off). Default 0.05."),
    repeat_penalty: Optional[float] = typer.Option(None, "--repeat-penalty", help="Repeat penalty (1: off, the default)."),
    repeat_last_n: Optional[int] = typer.Option(None, "--repeat-last-n", help="Tokens the penalty looks back on. Default 64."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: random)."),
    stop: List[str] = typer.Option([], "--stop", help="Stop when this text appears (repeatable)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", "-c", min=1, help="Context size in tokens (default: min(model's, 4096))."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads (default: all cores)."),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type: f16 or f32."),
    json_out: bool = JsonOpt,
) -> None:
    """Complete a raw prompt with the bundled runtime, streamed to stdout."""
    from modelctl.runtime.engine import Engine

    text = _prompt_text(prompt)
    path = _resolve_model_path(model)
    engine = Engine.load(path, n_ctx=ctx, n_threads=threads, kv_type=kv_type)
    sampling = engine.default_sampling(temperature=temp, top_k=top_k, top_p=top_p, min_p=min_p,
                                       repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed)
    ids = engine.tokenize(text)

    def stream(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    result = engine.generate(ids, n_predict, sampling, stop_strings=stop, on_text=None if json_out else stream)
    t = result.timings
    if json_out:
        output.print_json({
            "text": result.text, "tokens": result.tokens, "prompt_tokens": result.prompt_tokens,
            "finish_reason": result.finish_reason,
            "timings": {"prompt_tokens_per_s": round(t.prompt_tokens_per_s, 2),
                        "gen_tokens_per_s": round(t.gen_tokens_per_s, 2), "load_s": round(t.load_s, 3)},
        })
    else:
        if sys.stdout.isatty() and not result.text.endswith("\n"):
            sys.stdout.write("\n")  # piped, stdout is exactly the generated text
        sys.stdout.flush()
        output.notice(f"{result.prompt_tokens} prompt tokens at {t.prompt_tokens_per_s:.1f} tok/s, "
                      f"{len(result.tokens)} generated at {t.gen_tokens_per_s:.1f} tok/s "
                      f"(load {t.load_s:.2f} s, finish: {result.finish_reason})")
    if result.finish_reason == "cancelled":
        raise typer.Exit(EXIT_INTERRUPTED)


def _fmt_measure(m: Optional[dict]) -> str:
    if not m:
        return "-"
    return f"{m['median']:.2f} ± {m['stdev']:.2f}"


@app.command("bench")
def bench_cmd(
    model: str = typer.Argument(..., help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT]."),
    n_prompt: int = typer.Option(512, "-p", "--n-prompt", min=0, help="Prompt tokens processed in one batch (0: skip)."),
    n_gen: int = typer.Option(128, "-n", "--n-gen", min=0, help="Tokens generated one at a time (0: skip)."),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", min=1, help="CPU threads (default: all cores)."),
    repetitions: int = typer.Option(5, "-r", "--repetitions", min=1, help="Runs per measure (after a warm-up)."),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type: f16 or f32."),
    profile: bool = typer.Option(False, "--profile", help="Also time each operation of the forward pass."),
    no_reference: bool = typer.Option(False, "--no-reference", help="Do not measure llama.cpp."),
    reference_python: Optional[str] = typer.Option(
        None, "--reference-python", envvar="MODELCTL_REFERENCE_PYTHON",
        help="A Python interpreter with llama_cpp to measure llama.cpp with (default: llama_cpp if importable here)."),
    json_out: bool = JsonOpt,
) -> None:
    """Tokens per second for prompt processing and generation (like llama-bench), beside llama.cpp's."""
    from modelctl.runtime import bench

    path = _resolve_model_path(model)
    if not json_out:
        output.notice(f"benchmarking {path} at {threads or os.cpu_count()} threads, {repetitions} runs each ...")
    result = bench.run(path, n_prompt=n_prompt, n_gen=n_gen, threads=threads, repetitions=repetitions,
                       kv_type=kv_type, profile=profile, reference=not no_reference,
                       reference_python=reference_python)
    if json_out:
        output.print_json(result)
        return
    output.notice(f"modelctl's kernels: {result['kernels']}")
    console = output.out()
    console.print(f"{'engine':48} {'pp' + str(n_prompt) + ' tok/s':>18} {'tg' + str(n_gen) + ' tok/s':>18}",
                  markup=False)
    rows = [result] + ([result["reference"]] if result["reference"] else [])
    for r in rows:
        console.print(f"{r['engine']:48} {_fmt_measure(r['pp']):>18} {_fmt_measure(r['tg']):>18}", markup=False)
    if result["ratios"]:
        rt = result["ratios"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        console.print(f"{'ratio modelctl / llama.cpp':48} {fmt(rt['pp_tokens_per_s']):>18} "
                      f"{fmt(rt['tg_tokens_per_s']):>18}", markup=False)
    else:
        output.notice("llama.cpp not available (no llama_cpp here; see --reference-python): no reference figures")
    if profile:
        for phase, table in (result.get("profile") or {}).items():
            console.print(f"\nprofile {phase}: op, seconds, calls, share", markup=False)
            for row in table:
                console.print(f"  {row['op']:18} {row['seconds']:10.4f} {row['calls']:8d} {row['share'] * 100:6.1f}%",
                              markup=False)


# ---------------------------------------------------------------------------
# chat
# ---------------------------------------------------------------------------


@app.command("chat")
def chat_cmd(
    model: Optional[str] = typer.Argument(
        None, help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT] (default: smollm2-135m-instruct)."),
    prompt: Optional[str] = typer.Option(None, "-p", "--prompt", help="One-shot: answer TEXT and exit (piped stdin works too)."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt."),
    chat_template: Optional[str] = typer.Option(
        None, "--chat-template", help="A built-in format (chatml, llama3, gemma, zephyr, ...) or a Jinja file."),
    print_prompt: bool = typer.Option(False, "--print-prompt", help="Print the rendered prompt and the template, then exit."),
    temp: Optional[float] = typer.Option(None, "--temp", help="Temperature (0: greedy)."),
    top_k: Optional[int] = typer.Option(None, "--top-k"),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    min_p: Optional[float] = typer.Option(None, "--min-p"),
    repeat_penalty: Optional[float] = typer.Option(None, "--repeat-penalty"),
    repeat_last_n: Optional[int] = typer.Option(None, "--repeat-last-n"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same answer)."),
    n_predict: Optional[int] = typer.Option(None, "-n", "--n-predict", help="Most tokens per reply (-1: no limit)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context length (default: planned for this machine)."),
    gpu_layers: Optional[int] = typer.Option(None, "--gpu-layers", help="Layers to offload (the bundled runtime runs on the CPU)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads."),
    quant: Optional[str] = typer.Option(None, "--quant", help="Which quant of a manifest or repo."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print timings after each reply."),
    json_out: bool = JsonOpt,
) -> None:
    """Chat with a model in the terminal, or answer one prompt (-p TEXT or piped stdin) for scripts."""
    from modelctl.chat import ChatOptions, run_chat

    sampling = {"temperature": temp, "top_k": top_k, "top_p": top_p, "min_p": min_p,
                "repeat_penalty": repeat_penalty, "repeat_last_n": repeat_last_n, "seed": seed}
    opts = ChatOptions(model=model, quant=quant, prompt=prompt, system=system, chat_template=chat_template,
                       print_prompt=print_prompt, sampling={k: v for k, v in sampling.items() if v is not None},
                       n_predict=n_predict, ctx=ctx, gpu_layers=gpu_layers, threads=threads, verbose=verbose,
                       json=json_out)
    code = run_chat(opts)
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------------------
# entry point: the one place errors become messages and exit codes
# ---------------------------------------------------------------------------


def _cli_exception_types():
    """Click's exception classes, whether typer vendors click or uses it."""
    usage = typer.BadParameter.__mro__[1]  # UsageError, vendored or click's
    base = usage.__mro__[1]                 # ClickException
    return usage, base


def main(argv: Optional[List[str]] = None) -> None:
    usage_error, click_exception = _cli_exception_types()
    debug = os.environ.get("MODELCTL_DEBUG") == "1"
    try:
        code = app(args=argv, prog_name="modelctl", standalone_mode=False)
    except ModelctlError as exc:
        if debug:
            raise
        output.error_line(exc.one_line())
        sys.exit(exc.exit_code)
    except usage_error as exc:
        if debug:
            raise
        exc.show()
        sys.exit(EXIT_USAGE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("\nmodelctl: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        sys.exit(0)
    except click_exception as exc:
        if debug:
            raise
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: one line unless debugging
        if debug:
            raise
        output.error_line(
            f"internal error: {type(exc).__name__}: {exc} (rerun with MODELCTL_DEBUG=1 for a traceback and report it)"
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
