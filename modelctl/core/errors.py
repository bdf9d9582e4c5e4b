"""Typed errors raised by library code.

Library modules raise these; only the CLI edge (``modelctl.cli.main``) turns
them into a one-line message on stderr and an exit code.  Every error says
what went wrong, where (a file, URL or repo), and what to do about it.
"""

from __future__ import annotations

# Exit codes, documented in README.md ("Exit codes").  Data, not logic.
EXIT_OK = 0
EXIT_ERROR = 1          # any runtime failure with a message
EXIT_USAGE = 2          # bad arguments or options
EXIT_NOTHING_FITS = 3   # recommend: no candidate fits this machine
EXIT_NOT_FOUND = 4      # model, repo, file or manifest not found
EXIT_NETWORK = 5        # network unreachable / server error after retries
EXIT_INTEGRITY = 6      # checksum mismatch, corrupt or hostile file
EXIT_INTERRUPTED = 130  # Ctrl-C


class ModelctlError(Exception):
    """Base class: a failure the user can understand and act on."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def one_line(self) -> str:
        """The message as one line: what, where, what to do."""
        parts = [self.message.rstrip(".")]
        if self.where:
            parts[0] = f"{self.where}: {parts[0]}"
        text = parts[0]
        if self.hint:
            text += f" ({self.hint.rstrip('.')})"
        return " ".join(text.split())


class UsageError(ModelctlError):
    """Arguments that cannot work together or do not parse."""

    exit_code = EXIT_USAGE


class NotFoundError(ModelctlError):
    exit_code = EXIT_NOT_FOUND


class AccessError(ModelctlError):
    """Gated or private (HTTP 401/403): exit 1, the user must act (a token, a licence), not retry."""


class NetworkError(ModelctlError):
    exit_code = EXIT_NETWORK


class IntegrityError(ModelctlError):
    """A checksum mismatch or a corrupt file."""

    exit_code = EXIT_INTEGRITY


class GGUFError(IntegrityError):
    """A GGUF file (or header) that is malformed, truncated or hostile."""


class CardError(ModelctlError):
    """A model card that cannot be read at all (empty, binary, unreadable)."""


class ManifestError(ModelctlError):
    """A manifest that does not follow the schema."""


class NothingFitsError(ModelctlError):
    exit_code = EXIT_NOTHING_FITS


class TemplateError(ModelctlError):
    """A chat template that fails to parse or render, or is refused as hostile."""


class RuntimeModelError(ModelctlError):
    """The bundled runtime cannot run this model (unknown arch, missing tensor...)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what the user should know (e.g. that a partial download is kept).

    A KeyboardInterrupt, so that code which stops on Ctrl-C (generation, the chat REPL) still sees it."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, hint: str | None = None):
        super().__init__(hint or "")
        self.hint = hint
