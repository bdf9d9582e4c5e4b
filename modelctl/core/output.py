"""Output conventions shared by every command.

- ``--json``: only JSON on stdout (``print_json``), everything else on stderr.
- Human output goes through rich; no colour, no spinners or live progress when
  the stream is not a terminal or ``NO_COLOR`` is set.
- Warnings and notices go to stderr so that stdout carries only the answer.
"""

from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from typing import Any


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def color_allowed(stream) -> bool:
    return _is_tty(stream) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def live_allowed(stream=None) -> bool:
    """Spinners and progress bars: only on a real terminal (stderr by default)."""
    return color_allowed(stream if stream is not None else sys.stderr) or (
        _is_tty(stream if stream is not None else sys.stderr) and "NO_COLOR" in os.environ
    )


@lru_cache(maxsize=2)
def _console(to_stderr: bool):
    from rich.console import Console

    stream = sys.stderr if to_stderr else sys.stdout
    tty = _is_tty(stream)
    return Console(
        file=stream,
        no_color=not color_allowed(stream),
        highlight=False,
        emoji=False,
        force_terminal=tty,
        soft_wrap=not tty,
        width=None if tty else 200,
    )


def out():
    """The rich console for the answer (stdout)."""
    return _console(False)


def err():
    """The rich console for notices, warnings and progress (stderr)."""
    return _console(True)


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout, and nothing else."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default))
    sys.stdout.write("\n")
    sys.stdout.flush()


def _json_default(value: Any):
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def warn(message: str) -> None:
    err().print(f"[yellow]warning:[/yellow] {message}", markup=True, highlight=False)


def notice(message: str) -> None:
    err().print(message, markup=False, highlight=False)


def error_line(message: str) -> None:
    """The one line printed for a failed command (plain text, stderr)."""
    sys.stderr.write(f"modelctl: error: {message}\n")
    sys.stderr.flush()
