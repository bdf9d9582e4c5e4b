"""The command line's entry point: the one place typed errors become one line on stderr and an exit code, and
Ctrl-C becomes "interrupted" and 130, whatever the command.

The commands live by concern in ``catalog`` (card, recommend), ``files`` (pull, list, show, rm) and ``models``
(tokenize, run, bench, chat, serve); they parse arguments and render results.  The library they call raises
typed errors (``modelctl.core.errors``).  Heavy imports (numpy, huggingface_hub, the runtime) happen inside the
commands that need them so that ``modelctl --help`` and completion stay fast.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import List, Optional

import typer

from modelctl.cli import catalog, files, models  # noqa: F401  (each registers its commands on the app)
from modelctl.cli.common import app
from modelctl.core import output
from modelctl.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, ModelctlError


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
