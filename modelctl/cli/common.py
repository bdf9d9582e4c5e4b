"""What every command module of the CLI shares: the Typer app, the ``--json`` option, sizes for humans."""

from __future__ import annotations

import typer

from modelctl import __version__

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


def human_bytes(n: int | None) -> str:
    from modelctl.core.units import format_size

    return format_size(n, digits=1)
