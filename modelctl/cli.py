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


def _human_bytes(n: Optional[int]) -> str:
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
                      _human_bytes(f.get("size_bytes")), _human_bytes(f.get("max_ram_bytes")),
                      f.get("use_case") or "")
    console.print(table)


@app.command("card")
def card_command(
    source: str = typer.Argument(..., metavar="SOURCE",
                                 help="A model card file (README.md), a repo id owner/name, or a manifest name or path."),
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
        if manifest is None or name:
            from modelctl.manifest import manifest_from_card

            base = manifest.to_dict() if manifest is not None else None
            if base is not None:
                from modelctl.manifest import manifest_from_dict

                manifest = manifest_from_dict({**base, "name": name}, where=source)
            else:
                manifest = manifest_from_card(card, name=name, where=source)
        text = manifest.to_yaml()
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
