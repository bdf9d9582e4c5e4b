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
