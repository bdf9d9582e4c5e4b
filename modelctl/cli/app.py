"""The command line: parses arguments and renders results, nothing else.

Every concern lives in its own module; those modules raise typed errors
(``modelctl.core.errors``) and ``main`` turns them into one line on stderr and an
exit code.  Heavy imports (numpy, huggingface_hub, the runtime) happen inside
the commands that need them so that ``modelctl --help`` and completion stay fast.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

from modelctl import __version__
from modelctl.core import output
from modelctl.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, Interrupted, ModelctlError

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
        typer.echo(f"modelctl {__version__}")
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
            f"{s.host.endpoint} {s.layers} layers (about {_human_bytes(s.bytes)})" for s in shares)
            + f"; the head keeps the embeddings (about {_human_bytes(head)} of RAM)")
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


# ---------------------------------------------------------------------------
# pull, list, show, rm
# ---------------------------------------------------------------------------


def _human_bytes(n: int | None) -> str:
    from modelctl.core.units import format_size

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
    sha256: Optional[str] = typer.Option(None, "--sha256", metavar="HEX",
                                         help="A plain URL's expected sha256: the download is checked against it."),
    verify: bool = typer.Option(False, "--verify", help="Hash files already in the store again (not only size and mtime)."),
    json_out: bool = JsonOpt,
) -> None:
    """Download a model into the local store (the Hugging Face cache), resumable and verified."""
    from modelctl.hub.resolve import pull_ref

    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    result = pull_ref(ref, include=include, exclude=exclude, revision=revision, quant=quant,
                      dest_dir=dest_dir, dry_run=dry_run, workers=workers, quiet=json_out,
                      sha256=sha256, verify=verify)
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
    from modelctl.hub import store

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

    problems: list = []
    d = info.describe(model, quant=quant, errors=problems)
    _render_show(d, json_out)
    if problems:   # e.g. not a valid GGUF: exit 6, as run and tokenize
        raise problems[0]


def _render_show(d: dict, json_out: bool) -> None:
    from modelctl import info

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
    elif d.get("architecture_error") and d["path"] is None:
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
    from modelctl.core.errors import UsageError
    from modelctl.hub import pull
    from modelctl.hub.resolve import parse_repo_ref

    repo, quant, file = parse_repo_ref(model)
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
    from modelctl.core.errors import UsageError
    from modelctl.runtime import detokenize, tokenizer

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
    tok = tokenizer.Tokenizer.from_file(_resolve_model_path(model, allow_download=False))
    report = detokenize.tokenize_report(tok, text, add_special=add_special, parse_special=parse_special)
    if json_out:
        output.print_json(report)
        return
    lines = [f"{i:>7} {detokenize.piece_repr(tok.token_piece(i))}" for i in report["ids"]]
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    output.notice(f"{len(report['ids'])} tokens")


# ---------------------------------------------------------------------------
# run, bench
# ---------------------------------------------------------------------------


def _resolve_model_path(ref: Optional[str], allow_download: bool = True) -> Path:
    """REF's local file; without REF, the default model chosen for this machine (fetched on first use)."""
    if ref is None:
        from modelctl import default_model

        return default_model.open_default(notice=output.notice, warn=output.warn)[1]
    from modelctl.hub.resolve import resolve_model

    return resolve_model(ref, allow_download=allow_download)


class _DefaultModelHelp(typer.core.TyperCommand):
    """A command whose --help ends with the default model this machine gets (planned only when asked)."""

    def format_help(self, ctx, formatter) -> None:
        from modelctl import default_model

        self.epilog = default_model.help_text()
        super().format_help(ctx, formatter)


def _prompt_text(prompt: Optional[str]) -> str:
    if prompt is not None:
        return prompt
    if not sys.stdin.isatty():
        return sys.stdin.read()
    from modelctl.core.errors import UsageError

    raise UsageError("no prompt", hint="give -p TEXT or pipe the prompt on stdin")


@app.command("run", cls=_DefaultModelHelp)
def run_cmd(
    model: Optional[str] = typer.Argument(
        None, help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT] (default: chosen for this machine)."),
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
    parse_special: bool = typer.Option(False, "--parse-special",
                                       help="Read special-token text in the prompt (<|im_start|>...) as those tokens."),
    json_out: bool = JsonOpt,
) -> None:
    """Complete a raw prompt with the bundled runtime, streamed to stdout."""
    from modelctl.runtime.engine import Engine

    text = _prompt_text(prompt)
    path = _resolve_model_path(model)
    engine = Engine.load(path, n_ctx=ctx, n_threads=threads, kv_type=kv_type)
    sampling = engine.default_sampling(temperature=temp, top_k=top_k, top_p=top_p, min_p=min_p,
                                       repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed)
    ids = engine.tokenize(text, parse_special=parse_special)

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
        if result.finish_reason != "cancelled":   # cancelled: the one "interrupted" line says it
            output.notice(f"{result.prompt_tokens} prompt tokens at {t.prompt_tokens_per_s:.1f} tok/s, "
                          f"{len(result.tokens)} generated at {t.gen_tokens_per_s:.1f} tok/s "
                          f"(load {t.load_s:.2f} s, finish: {result.finish_reason})")
    if result.finish_reason == "cancelled":
        raise Interrupted()


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


@app.command("chat", cls=_DefaultModelHelp)
def chat_cmd(
    model: Optional[str] = typer.Argument(
        None, help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT] (default: chosen for this machine)."),
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
    from modelctl.cli.chat import ChatOptions, run_chat

    sampling = {"temperature": temp, "top_k": top_k, "top_p": top_p, "min_p": min_p,
                "repeat_penalty": repeat_penalty, "repeat_last_n": repeat_last_n, "seed": seed}
    opts = ChatOptions(model=model, quant=quant, prompt=prompt, system=system, chat_template=chat_template,
                       print_prompt=print_prompt, sampling={k: v for k, v in sampling.items() if v is not None},
                       n_predict=n_predict, ctx=ctx, gpu_layers=gpu_layers, threads=threads, verbose=verbose,
                       json=json_out)
    code = run_chat(opts)
    if code:
        raise typer.Exit(code)


@app.command("serve")
def serve_cmd(
    model: Optional[str] = typer.Argument(
        None, help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT] (default: as chat's)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8080, "--port", help="Port to listen on (0: any free port)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context of each slot (default: planned for this machine)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads, shared by the busy slots."),
    parallel: int = typer.Option(1, "--parallel", help="Requests answered at once; more wait in turn."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="MODELCTL_API_KEY", show_default=False,
                                          help="Require 'Authorization: Bearer KEY' (env MODELCTL_API_KEY)."),
    quant: Optional[str] = typer.Option(None, "--quant", help="Which quant of a manifest or repo."),
    chat_template: Optional[str] = typer.Option(
        None, "--chat-template", help="A built-in format (chatml, llama3, gemma, ...) or a Jinja file."),
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models)."""
    from modelctl.serve import ServeOptions, serve

    raise typer.Exit(serve(ServeOptions(model=model, quant=quant, host=host, port=port, ctx=ctx, threads=threads,
                                        parallel=parallel, api_key=api_key or None, chat_template=chat_template)))


# ---------------------------------------------------------------------------
# entry point: the one place errors become messages and exit codes
# ---------------------------------------------------------------------------


def _cli_exception_types():
    """Click's exception classes, whether typer vendors click or uses it."""
    usage = typer.BadParameter.__mro__[1]  # UsageError, vendored or click's
    base = usage.__mro__[1]                 # ClickException
    return usage, base


class _Interrupt(Exception):
    """Ctrl-C carried past Typer, which would turn a KeyboardInterrupt into a bare exit code 130."""

    def __init__(self, exc: KeyboardInterrupt):
        super().__init__("interrupted")
        self.hint = getattr(exc, "hint", None)


def _command():
    """The click command of ``app``, with Ctrl-C in any command passed on to ``main`` with its hint."""
    command = typer.main.get_command(app)
    invoke = command.invoke

    def invoke_keeping_interrupts(ctx):
        try:
            return invoke(ctx)
        except KeyboardInterrupt as exc:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})   # unwound: a second one waits for main
            raise _Interrupt(exc) from None

    command.invoke = invoke_keeping_interrupts
    return command


def _interrupted(hint: Optional[str] = None) -> None:
    """Ctrl-C, whatever the command: one line and exit 130; from here on a second Ctrl-C exits at once."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})      # the line is written whole...
    signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_INTERRUPTED))
    lead = "\n" if sys.stderr.isatty() else ""     # after the terminal's ^C
    sys.stderr.write(f"{lead}modelctl: interrupted" + (f"; {hint}" if hint else "") + "\n")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})    # ...then a pending second Ctrl-C exits
    os._exit(EXIT_INTERRUPTED)   # now: the interpreter's teardown would put Ctrl-C back to "kill"


def main(argv: Optional[List[str]] = None) -> None:
    try:
        _main(argv)
    except KeyboardInterrupt as exc:   # a second Ctrl-C while the first was being reported
        _interrupted(getattr(exc, "hint", None))


def _main(argv: Optional[List[str]]) -> None:
    usage_error, click_exception = _cli_exception_types()
    debug = os.environ.get("MODELCTL_DEBUG") == "1"
    try:
        code = _command().main(args=argv, prog_name="modelctl", standalone_mode=False)
    except _Interrupt as exc:
        _interrupted(exc.hint)
    except KeyboardInterrupt as exc:   # outside a command (argument parsing)
        _interrupted(getattr(exc, "hint", None))
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
        if exc.exit_code == EXIT_INTERRUPTED:
            _interrupted()
        sys.exit(exc.exit_code)
    except typer.Abort:
        _interrupted()
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
    if code == EXIT_INTERRUPTED:
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
