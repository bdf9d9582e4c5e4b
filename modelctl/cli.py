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
    add_completion=True,
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


# ---------------------------------------------------------------------------
# recommend
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# pull, list, show, rm
# ---------------------------------------------------------------------------


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


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
            console.print(f"{mark:7} {_human_bytes(f['size_bytes']):>10}  {f['name']}", markup=False)
        console.print(f"total {_human_bytes(result['total_bytes'])}, to download "
                      f"{_human_bytes(result['download_bytes'])}, free disk {_human_bytes(result['free_disk_bytes'])}"
                      f" in {result['store']}", markup=False)
        return
    for f in result["files"]:
        console.print(f"{f['status']:10} {_human_bytes(f['size_bytes']):>10}  {f['path']}", markup=False)
    for j in result.get("joined", []):
        console.print(f"{'joined':10} {'':>10}  {j['path']}", markup=False)
    for p in result.get("placed", []):
        console.print(f"{'placed':10} {'':>10}  {p}", markup=False)


@app.command("list")
def list_cmd(json_out: bool = JsonOpt) -> None:
    """Models in the local store: repo, quants, sizes, where."""
    from modelctl import store

    models = store.local_models()
    rows = [{
        "repo": m.repo, "commit": m.commit, "refs": m.refs,
        "quants": sorted({f.quant for f in m.files if f.quant}),
        "size_bytes": m.size, "path": str(store.snapshot_dir(m.repo, m.commit)),
        "files": [{"name": f.name, "quant": f.quant, "size_bytes": f.size} for f in m.files],
    } for m in models]
    if json_out:
        output.print_json({"store": str(store.hub_cache()), "models": rows})
        return
    console = output.out()
    if not rows:
        output.notice(f"no models in {store.hub_cache()}")
        return
    for r in rows:
        quants = ",".join(r["quants"]) or "-"
        console.print(f"{r['repo']}  {quants}  {_human_bytes(r['size_bytes'])}  {r['path']}", markup=False)


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
    p = lambda s: console.print(s, markup=False, highlight=False)  # noqa: E731
    p(f"model  {d['model']}")
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
        p("  " + (t if len(t) <= 2000 else t[:2000] + " …").replace("\n", "\n  "))


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
        output.err().print(f"remove {len(paths)} item(s), {_human_bytes(total)}:", markup=False)
        for p in paths:
            output.err().print(f"  {p}", markup=False)
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
        sys.stdout.write("\n")
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
