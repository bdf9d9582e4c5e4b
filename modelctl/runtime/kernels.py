"""Matrix kernels on GGUF quantized weights (the thin Python side of ``_kernels.pyx``).

``W`` is a :class:`~modelctl.runtime.loader.QTensor`: ``rows`` output rows of
``cols`` weights each, in any supported ggml type.  Nothing here makes a
float32 copy of a weight matrix; ``dequantize`` exists for tests, debugging
and small tensors.

- ``matvec(W, x)``   -> ``W @ x``        (x: float32[cols])          -> float32[rows]
- ``matmul(W, X)``   -> ``X @ W.T``      (X: float32[n, cols])       -> float32[n, rows]
- ``dequantize(W)``  -> float32[rows, cols]
- ``get_rows(W, ids)`` -> float32[len(ids), cols]  (embedding lookup)
- ``variant()`` / ``use(name)``: the compiled variant computing (modelctl/runtime/variants.py)

As in ggml, the activations are quantized once per call to 8 bits per block
(Q8_0 for the 32-wide types, Q8_K for the K-quants) or rounded to the weight's
16-bit float type; each weight block is unpacked in registers once for every
four activation rows.
"""

from __future__ import annotations

import os

import numpy as np

from modelctl.core.errors import RuntimeModelError
from modelctl.gguf.quants import GGML_TYPES, GGML_TYPES_BY_NAME
try:
    from modelctl.runtime import _kernels, _ops
except ImportError as exc:  # an install without its compiled extension (e.g. a bare source checkout)
    raise RuntimeModelError(f"the runtime's compiled kernels cannot be loaded ({exc})",
                            hint="reinstall modelctl so that they are compiled: pip install --force-reinstall .") \
        from None

# ggml type names the kernels compute with, in the order people know them
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                   "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS")


def default_threads() -> int:
    """Threads used when ``n_threads`` is None: ``MODELCTL_THREADS`` or the CPUs this process may use."""
    env = os.environ.get("MODELCTL_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def variant() -> str:
    """The compiled variant of the kernels computing now ("generic", "avx2", ...)."""
    return _kernels.variant


def use(name: str) -> None:
    """Compute with variant ``name`` from now on (one of ``variants.runnable()``; refused otherwise)."""
    _kernels.use(name)
    _ops.use(name)


def supported(type_id: int) -> bool:
    return bool(_kernels.supported(type_id))


# type id -> (weights per block, bytes per block) for the types the kernels compute with
_LAYOUT = {GGML_TYPES_BY_NAME[n].id: (GGML_TYPES_BY_NAME[n].block_size, GGML_TYPES_BY_NAME[n].type_size)
           for n in SUPPORTED_TYPES}


def _threads(n_threads: int | None) -> int:
    if n_threads is None:
        return default_threads()
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    return int(n_threads)


def _check(W) -> None:
    layout = _LAYOUT.get(W.type_id)
    if layout is None:
        t = GGML_TYPES.get(W.type_id)
        name = t.name if t else f"type {W.type_id}"
        raise RuntimeModelError(f"tensor {W.name!r} is {name}, which the runtime cannot compute with",
                                hint=f"use a file quantized as one of {', '.join(SUPPORTED_TYPES)}")
    block, size = layout
    cols = W.shape[0]
    if cols % block:
        raise RuntimeModelError(f"tensor {W.name!r}: {cols} columns is not a whole number of blocks")
    data = W.data
    need = W.rows * (cols // block) * size
    if data.dtype != np.uint8 or data.ndim != 1 or data.size != need or not data.flags.c_contiguous:
        raise ValueError(f"tensor {W.name!r}: data must be {need} contiguous uint8 bytes, "
                         f"got {data.dtype} {data.shape}")


def _out(out, shape) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writeable C-contiguous float32 array of shape {shape}")
    return out


def _f32(x) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(x, dtype=np.float32)


def matvec(W, x: np.ndarray, out: np.ndarray | None = None, n_threads: int | None = None) -> np.ndarray:
    """``W @ x``: x is float32[cols]; returns float32[rows]."""
    x = _f32(x)
    if x.shape != (W.cols,):
        raise ValueError(f"x must be one row of {W.cols} for {W.name!r}, got shape {x.shape}")
    out = _out(out, (W.rows,))
    products([W], x[None], [out[None]], n_threads)
    return out


def matmul(W, X: np.ndarray, out: np.ndarray | None = None, n_threads: int | None = None) -> np.ndarray:
    """``X @ W.T``: X is float32[n, cols]; returns float32[n, rows].

    Row j of the result is bit for bit ``matvec(W, X[j])``."""
    return products([W], X, None if out is None else [out], n_threads)[0]


def products(Ws, X: np.ndarray, outs: list | None = None, n_threads: int | None = None) -> list[np.ndarray]:
    """``[X @ W.T for W in Ws]`` for matrices that read the same input (q, k, v; gate, up) in one
    parallel pass: X is float32[n, cols]; each result float32[n, W.rows] is bit for bit ``matmul(W, X)``."""
    X = _f32(X)
    for W in Ws:
        _check(W)
        if X.ndim != 2 or X.shape[1] != W.cols:
            raise ValueError(f"X must be [n, {W.cols}] for {W.name!r}, got {X.shape}")
    outs = [_out(None if outs is None else outs[i], (X.shape[0], W.rows)) for i, W in enumerate(Ws)]
    for W, out in zip(Ws, outs):
        if not W.cols:
            out.fill(0.0)   # a sum over no columns
    live = [(W, out) for W, out in zip(Ws, outs) if W.rows and W.cols]
    if X.shape[0] and live:
        _kernels.products([(W.type_id, W.data, W.rows, W.cols) for W, _ in live], X, [out for _, out in live],
                          _threads(n_threads))
    return outs


def dequantize(W, n_threads: int | None = None) -> np.ndarray:
    """Every weight as float32[rows, cols] (for tests and small tensors, never for a model's matrices)."""
    _check(W)
    out = np.empty((W.rows, W.cols), dtype=np.float32)
    _kernels.dequantize_all(W.type_id, W.data, W.rows, W.cols, out, _threads(n_threads))
    return out


def get_rows(W, ids, out: np.ndarray | None = None, n_threads: int | None = None) -> np.ndarray:
    """Rows ``ids`` of W as float32[len(ids), cols]: an embedding lookup that decodes only those rows."""
    _check(W)
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= W.rows):
        bad = int(ids[(ids < 0) | (ids >= W.rows)][0])
        raise IndexError(f"row {bad} out of range for {W.name!r} with {W.rows} rows")
    out = _out(out, (ids.size, W.cols))
    if ids.size:
        _kernels.dequantize_rows(W.type_id, W.data, W.cols, ids, out, _threads(n_threads))
    return out
