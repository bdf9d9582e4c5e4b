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
