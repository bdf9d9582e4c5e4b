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

RECOMMEND_DEFAULT_CTX_CAP = 4096


@app.command()
def recommend(
    source: str = typer.Argument(..., help="Manifest name, card path, repo id owner/name, .gguf path or URL."),
    ctx: Optional[int] = typer.Option(None, "--ctx", "-c", min=1, help="Context length [default: the model's, capped at 4096]."),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type: f16, q8_0, q4_0, ... (quantized V needs flash attention)."),
    ram: Optional[str] = typer.Option(None, "--ram", help="RAM to plan for, e.g. 16GB or 16GiB [default: detected, available]."),
    vram: Optional[str] = typer.Option(None, "--vram", help="VRAM per GPU, e.g. 8GiB (alone: one GPU of that size)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="none, all, or how many GPUs to use."),
    all_: bool = typer.Option(False, "--all", help="Show every candidate, not only the choice and what beats it."),
    mmproj: bool = typer.Option(False, "--mmproj", help="Also consider mmproj (vision projector) files."),
    emit: Optional[str] = typer.Option(None, "--emit", help="Print a launch line instead: llama.cpp or ollama (a Modelfile)."),
    json_: bool = JsonOpt,
) -> None:
    """Pick the best quant file for this machine, with RAM/VRAM estimates and GPU layers.

    Exit code 3 when nothing fits.
    """
    from modelctl import hardware, sources
    from modelctl.errors import NothingFitsError, UsageError
    from modelctl.recommend import recommend as choose_file

    if emit is not None and emit not in ("llama.cpp", "ollama"):
        raise UsageError(f"--emit: expected llama.cpp or ollama, not {emit!r}")
    if emit and json_:
        raise UsageError("--emit and --json cannot be combined")
    machine = hardware.apply_overrides(hardware.detect(), ram=ram, vram=vram, gpus=gpus)
    for note in machine.notes:
        output.notice(f"note: {note}")
    spec = sources.resolve_source(source, include_mmproj=mmproj, warn=output.warn)
    if ctx is None:
        model_ctx = spec.arch.context_length
        ctx = min(model_ctx, RECOMMEND_DEFAULT_CTX_CAP) if isinstance(model_ctx, int) and model_ctx > 0 \
            else RECOMMEND_DEFAULT_CTX_CAP
        output.notice(f"context: {ctx} tokens (the model's {model_ctx or 'unknown'}, capped at "
                      f"{RECOMMEND_DEFAULT_CTX_CAP}; pass --ctx to change)")
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


# ---------------------------------------------------------------------------
# tokenize
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# run, bench
# ---------------------------------------------------------------------------


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
