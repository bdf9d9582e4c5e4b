"""Which layers attend through a sliding window: llama.cpp's rule, one place for the estimate and the runtime.

llama.cpp builds a sliding-window (iSWA) KV cache only for the architectures below; any other architecture
gets full attention on every layer even when its file names a window (a Mistral file converted as ``llama``).
"""

from __future__ import annotations

from typing import Any

# arch -> (default pattern: every n-th layer is a full-attention one, default window,
#          dense_first: layer 0 (not the last of each group) is the full one,
#          needs_key: the file's sliding_window key must be present and > 0).
# From llama.cpp's src/models/*.cpp load_hparams (set_swa_pattern semantics).
SWA_ARCHS: dict[str, tuple[int, int | None, bool, bool]] = {
    "gemma2": (2, 4096, False, False),
    "gemma3": (6, None, False, True),
    "gemma3n": (5, None, False, False),
    "cohere2": (4, None, False, False),
    "gpt-oss": (2, None, False, False),
    "olmo2": (4, None, False, True),
    "afmoe": (4, None, False, True),
    "exaone4": (4, 4096, False, True),
    "llama4": (4, 8192, False, True),
    "smallthinker": (4, 4096, True, True),
}


def sliding_layers(arch: str, layers: int, window: int | None, pattern: Any = None) -> tuple[tuple[bool, ...], int | None]:
    """(per layer: uses the sliding window, the window) for an architecture, the file's
    ``sliding_window`` (None or 0: not given) and its ``sliding_window_pattern`` (an int n: every n-th layer
    is full attention; a list: one flag per layer; None: the architecture's default)."""
    spec = SWA_ARCHS.get(arch)
    if spec is None:
        return (False,) * layers, window
    n_pattern, default_window, dense_first, needs_key = spec
    if needs_key and not window:
        return (False,) * layers, window
    window = window or default_window
    if not window:
        return (False,) * layers, window
    if isinstance(pattern, list):
        flags = [bool(x) for x in pattern[:layers]]
        return tuple(flags + [False] * (layers - len(flags))), window
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        n_pattern = pattern
    if dense_first:
        return tuple(n_pattern == 0 or il % n_pattern != 0 for il in range(layers)), window
    return tuple(n_pattern == 0 or il % n_pattern < n_pattern - 1 for il in range(layers)), window
