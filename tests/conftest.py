"""Shared fixtures: real CLI subprocesses, real models, llama.cpp's source tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modelctl.runtime import variants

sys.path.insert(0, str(Path(__file__).parent))
import fetch  # noqa: E402

# A runner started with SIGINT ignored (a background job of a non-interactive shell, some CI runners) passes
# that on to every child it spawns, and Python then installs no KeyboardInterrupt handler in them: the
# Ctrl-C tests would test how pytest was started.  A handler here (not an ignore) is reset to the default
# in every child at exec, so every CLI subprocess and pseudo-terminal child starts as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def run_cli(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 300,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m modelctl ARGS`` as a real subprocess (stdout/stderr captured, not a TTY)."""
    full_env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    full_env.pop("MODELCTL_DEBUG", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "modelctl", *args],
        input=input, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def shared_cards() -> Path:
    return SHARED / "cards"


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return fetch.model_path("smollm2")


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    return fetch.model_path("gemma3")


@pytest.fixture(scope="session")
def qwen_path() -> Path:
    return fetch.model_path("qwen")


@pytest.fixture(scope="session")
def llama_cpp_models() -> Path:
    """llama.cpp's models/ folder (ggml-vocab-*.gguf with .inp/.out, templates/*.jinja)."""
    return fetch.llama_cpp_source() / "vendor" / "llama.cpp" / "models"


@pytest.fixture
def hub():
    """A hub-compatible HTTP server on 127.0.0.1 (tests/hubserver.py), closed after the test."""
    from hubserver import HubServer

    server = HubServer()
    yield server
    server.close()


@pytest.fixture(params=variants.runnable())
def kernel_variant(request):
    """Each compiled variant of the kernels this CPU runs, in turn (generic, avx2, avx512 ...)."""
    from modelctl.runtime import kernels

    before = kernels.variant()
    kernels.use(request.param)
    yield request.param
    kernels.use(before)
