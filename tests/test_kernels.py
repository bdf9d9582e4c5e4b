"""The quantized kernels against gguf-py's dequantizers and a float64 reference."""

from __future__ import annotations

import os

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelctl.core.errors import RuntimeModelError
from modelctl.gguf.quants import GGML_TYPES_BY_NAME
from modelctl.runtime import kernels as K
from modelctl.runtime.loader import QTensor
from modelctl.runtime.synth import random_tensor

# every test runs once per compiled variant of the kernels this CPU runs (conftest.kernel_variant)
pytestmark = pytest.mark.usefixtures("kernel_variant")

TYPES = K.SUPPORTED_TYPES
LEGACY = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL")
KQUANTS = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS")
FLOATS = ("F32", "F16", "BF16")

# |ours - W @ x| <= TOL_X[type] * (|W| @ |x|): the error of quantizing the activations
# to 8 bits per block (16-bit floats for F16/BF16), as ggml does.
TOL_X = {"F32": 1e-6, "F16": 5e-4, "BF16": 4e-3, **{t: 1e-2 for t in LEGACY + KQUANTS}}
# Against the exact product with the activations quantized as ggml quantizes them,
# only float32 rounding remains.
TOL_EXACT = 5e-7


def reference(W: QTensor) -> np.ndarray:
    """gguf-py's dequantization, float32[rows, cols]."""
    qtype = gguf.GGMLQuantizationType[W.type.name]
    if W.type.name == "BF16":
        bits = W.data.view(np.uint16).astype(np.uint32) << np.uint32(16)
        return bits.view(np.float32).reshape(W.rows, W.cols)
    return gguf_dequantize(W.data.reshape(W.rows, -1), qtype).reshape(W.rows, W.cols)


def ggml_act_product(W: QTensor, Wd: np.ndarray, x: np.ndarray) -> np.ndarray:
    """float64 W @ x with x quantized the way ggml quantizes activations for W's type
    (written independently of the kernels, in NumPy float32 arithmetic)."""
    name = W.type.name
    x = x.astype(np.float32)
    W64 = Wd.astype(np.float64)
    if name == "F32":
        return W64 @ x.astype(np.float64)
    if name == "F16":
        return W64 @ x.astype(np.float16).astype(np.float64)
    if name == "BF16":
        u = x.view(np.uint32).astype(np.uint64)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32) << np.uint32(16)
        return W64 @ r.view(np.float32).astype(np.float64)
    if name in LEGACY:  # Q8_0 / Q8_1
        xb = x.reshape(-1, 32)
        amax = np.abs(xb).max(axis=1, keepdims=True)
        d = amax / np.float32(127)
        with np.errstate(divide="ignore"):
            inv = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
        q = np.rint(xb * inv)
        da = d.astype(np.float16).astype(np.float64)
        y = W64 @ (q * da).reshape(-1)
        if name in ("Q4_1", "Q5_1"):  # ggml's Q8_1 carries s = f16(d * sum q) for the min term
            s = (d[:, 0] * q.sum(axis=1).astype(np.float32)).astype(np.float16).astype(np.float64)
            blocks = W.data.reshape(W.rows, -1, W.type.type_size)
            m = blocks[:, :, 2:4].copy().view(np.float16)[:, :, 0].astype(np.float64)
            y += m @ (s - da[:, 0] * q.sum(axis=1))
        return y
    # Q8_K
    xb = x.reshape(-1, 256)
    imax = np.abs(xb).argmax(axis=1)
    mx = xb[np.arange(len(xb)), imax][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.float32(-127) / mx
        q = np.minimum(np.rint(iscale * xb), 127)
    d = (np.float32(1) / iscale).astype(np.float64)
    q = np.where(mx == 0, 0, q)
    d = np.where(mx == 0, 0, d)
    return W64 @ (q * d).reshape(-1)


def check_product(W: QTensor, Wd: np.ndarray, X: np.ndarray, Y: np.ndarray) -> None:
    for j in range(X.shape[0]):
        scale = np.abs(Wd).astype(np.float64) @ np.abs(X[j]).astype(np.float64) + 1e-30
        exact = ggml_act_product(W, Wd, X[j])
        err_exact = np.max(np.abs(Y[j] - exact) / scale)
        assert err_exact <= TOL_EXACT, f"{W.type.name}: {err_exact:.3g} from the ggml-quantized product"
        plain = Wd.astype(np.float64) @ X[j].astype(np.float64)
        err_plain = np.max(np.abs(Y[j] - plain) / scale)
        assert err_plain <= TOL_X[W.type.name], f"{W.type.name}: {err_plain:.3g} from W @ x"


@pytest.mark.parametrize("name", TYPES)
def test_dequantize_bit_exact(name):
    rng = np.random.default_rng(1)
    cols = 512 if name in KQUANTS else 96
    W = random_tensor(name, 67, cols, rng)
    ours = K.dequantize(W)
    ref = reference(W)
    assert ours.shape == (67, cols)
    np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("name", TYPES)
def test_matmul_and_matvec_against_float64(name):
    rng = np.random.default_rng(2)
    cols = 768 if name in KQUANTS else 160
    W = random_tensor(name, 45, cols, rng)
    Wd = reference(W)
    X = rng.standard_normal((13, cols), dtype=np.float32)   # tiles of 8 (AVX-512), 4 and 1 activation rows
    X[1] *= 1e-3
    X[2, : cols // 2] = 0.0          # all-zero blocks
    Y = K.matmul(W, X)
    assert Y.shape == (13, 45) and Y.dtype == np.float32
    check_product(W, Wd, X, Y)
    for j in range(X.shape[0]):      # one row through matvec is the same computation
        np.testing.assert_array_equal(K.matvec(W, X[j]), Y[j])


@pytest.mark.parametrize("name", TYPES)
def test_threads_give_identical_results(name):
    rng = np.random.default_rng(3)
    cols = 512 if name in KQUANTS else 128
    t = GGML_TYPES_BY_NAME[name]
    rows = -(-300_000 // t.row_bytes(cols)) | 1   # odd, and big enough (> 128 KiB) to be split over threads
    W = random_tensor(name, rows, cols, rng)
    assert W.nbytes > 256 * 1024
    X = rng.standard_normal((9, cols), dtype=np.float32)
    one = K.matmul(W, X, n_threads=1)
    two = K.matmul(W, X, n_threads=2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(K.matvec(W, X[0], n_threads=1), K.matvec(W, X[0], n_threads=2))
    np.testing.assert_array_equal(K.dequantize(W, n_threads=1), K.dequantize(W, n_threads=2))


@pytest.mark.parametrize("name", LEGACY + FLOATS)
@pytest.mark.parametrize("rows,cols", [(1, 32), (7, 96), (193, 1536 + 32)])
def test_odd_shapes_legacy_types(name, rows, cols):
    """Rows that are not a multiple of 256 weights: files use the 32-wide types there."""
    rng = np.random.default_rng(rows * cols)
    W = random_tensor(name, rows, cols, rng)
    Wd = reference(W)
    X = rng.standard_normal((3, cols), dtype=np.float32)
    check_product(W, Wd, X, K.matmul(W, X))


@pytest.mark.parametrize("name", KQUANTS)
def test_odd_row_counts_kquants(name):
    rng = np.random.default_rng(5)
    W = random_tensor(name, 3, 256, rng)
    X = rng.standard_normal((2, 256), dtype=np.float32)
    check_product(W, reference(W), X, K.matmul(W, X))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(TYPES), rows=st.integers(1, 40), blocks=st.integers(1, 6),
       n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_random_shapes(name, rows, blocks, n, seed):
    rng = np.random.default_rng(seed)
    cols = blocks * GGML_TYPES_BY_NAME[name].block_size * (8 if name in FLOATS else 1)
    W = random_tensor(name, rows, cols, rng)
    Wd = reference(W)
    np.testing.assert_array_equal(K.dequantize(W).view(np.uint32), Wd.view(np.uint32))
    X = (rng.standard_normal((n, cols)) * rng.uniform(1e-3, 1e3)).astype(np.float32)
    Y = K.matmul(W, X)
    check_product(W, Wd, X, Y)
    ids = rng.integers(0, rows, size=7)
    np.testing.assert_array_equal(K.get_rows(W, ids), Wd[ids])


@pytest.mark.parametrize("name", TYPES)
def test_get_rows(name):
    rng = np.random.default_rng(6)
    cols = 256 if name in KQUANTS else 64
    W = random_tensor(name, 50, cols, rng)
    ids = np.array([49, 0, 7, 7, 13])
    np.testing.assert_array_equal(K.get_rows(W, ids), reference(W)[ids])
    assert K.get_rows(W, []).shape == (0, cols)


def test_out_parameter_is_filled_in_place():
    rng = np.random.default_rng(7)
    W = random_tensor("Q4_K", 16, 256, rng)
    x = rng.standard_normal(256, dtype=np.float32)
    out = np.full(16, np.nan, dtype=np.float32)
    assert K.matvec(W, x, out=out) is not None
    np.testing.assert_array_equal(out, K.matvec(W, x))
    X = rng.standard_normal((3, 256), dtype=np.float32)
    out2 = np.empty((3, 16), dtype=np.float32)
    K.matmul(W, X, out=out2)
    np.testing.assert_array_equal(out2, K.matmul(W, X))


@pytest.mark.parametrize("n", [1, 9])
def test_products_of_one_input_equal_each_matmul(n):
    """q, k, v (or gate, up) in one parallel pass: each result bit for bit its own matmul, whether the
    matrices share a weight type (one quantized input) or not, and large enough for both threads."""
    rng = np.random.default_rng(11)
    Ws = [random_tensor("Q4_K", 300, 512, rng), random_tensor("Q6_K", 77, 512, rng),
          random_tensor("Q4_K", 5, 512, rng), random_tensor("Q8_0", 200, 512, rng)]
    X = rng.standard_normal((n, 512), dtype=np.float32)
    fused = K.products(Ws, X, n_threads=2)
    for W, Y in zip(Ws, fused):
        assert Y.shape == (n, W.rows)
        np.testing.assert_array_equal(Y, K.matmul(W, X, n_threads=1))
    with pytest.raises(ValueError):
        K.products([Ws[0], random_tensor("Q8_0", 4, 64, rng)], X)


def test_empty_products():
    """No rows: an empty result; no columns: sums over nothing, zeros (nothing reaches the C kernels)."""
    no_rows = QTensor("no_rows", GGML_TYPES_BY_NAME["Q8_0"].id, (64, 0), np.zeros(0, np.uint8))
    no_cols = QTensor("no_cols", GGML_TYPES_BY_NAME["Q8_0"].id, (0, 3), np.zeros(0, np.uint8))
    assert K.matvec(no_rows, np.ones(64, np.float32)).shape == (0,)
    assert K.matmul(no_rows, np.ones((5, 64), np.float32)).shape == (5, 0)
    np.testing.assert_array_equal(K.matvec(no_cols, np.ones(0, np.float32)), np.zeros(3, np.float32))


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(8)
    W = random_tensor("Q8_0", 4, 64, rng)
    with pytest.raises(ValueError):
        K.matvec(W, np.zeros(32, np.float32))
    with pytest.raises(ValueError):
        K.matmul(W, np.zeros((2, 63), np.float32))
    with pytest.raises(ValueError):
        K.matvec(W, np.zeros(64, np.float32), out=np.zeros(5, np.float32))
    with pytest.raises(ValueError):
        K.matvec(W, np.zeros(64, np.float32), n_threads=0)
    with pytest.raises(IndexError):
        K.get_rows(W, [4])
    with pytest.raises(IndexError):
        K.get_rows(W, [-1])
    truncated = QTensor("t", W.type_id, W.shape, W.data[:-1])
    with pytest.raises(ValueError):
        K.matvec(truncated, np.zeros(64, np.float32))


def test_unsupported_type_is_a_clear_error():
    t = GGML_TYPES_BY_NAME["IQ2_XXS"]
    W = QTensor("blk.0.ffn_up.weight", t.id, (256, 2), np.zeros(2 * t.type_size, np.uint8))
    with pytest.raises(RuntimeModelError, match="IQ2_XXS"):
        K.matvec(W, np.zeros(256, np.float32))


def test_real_model_tensors(smollm2_path):
    """SmolLM2's Q4_1 and Q8_0 tensors, straight from the mapped file."""
    from modelctl.runtime.loader import GGUFFile

    rng = np.random.default_rng(9)
    with GGUFFile.open(smollm2_path) as f:
        for name in ("blk.0.ffn_down.weight", "blk.0.attn_k.weight"):
            W = f.tensors[name]
            Wd = reference(W)
            np.testing.assert_array_equal(K.dequantize(W).view(np.uint32), Wd.view(np.uint32))
            X = rng.standard_normal((4, W.cols), dtype=np.float32)
            check_product(W, Wd, X, K.matmul(W, X))
        E = f.tensors["token_embd.weight"]
        assert E.type.name == "Q8_0"
        ids = [1, 2, 49151]
        expected = gguf_dequantize(E.data.reshape(E.rows, -1)[ids], gguf.GGMLQuantizationType.Q8_0)
        np.testing.assert_array_equal(K.get_rows(E, ids), expected)


def test_portable_float16_conversions_are_exact():
    """The conversions a build without F16C uses, on every float16 and on random floats."""
    from modelctl.runtime import _kernels

    h = np.arange(1 << 16, dtype=np.uint16)
    ours = np.empty(h.size, np.float32)
    _kernels.fp16_to_fp32_soft(h, ours)
    ref = h.view(np.float16).astype(np.float32)
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(ours[finite].view(np.uint32), ref[finite].view(np.uint32))
    assert np.isnan(ours[np.isnan(ref)]).all() and np.array_equal(ours[np.isinf(ref)], ref[np.isinf(ref)])
    rng = np.random.default_rng(10)
    x = np.concatenate([rng.standard_normal(100_000).astype(np.float32) * 10.0 ** rng.integers(-9, 6, 100_000),
                        np.array([0.0, -0.0, 65504.0, 65520.0, 1e9, -1e9, 6e-8, 3e-8, 2.9e-8], np.float32)])
    x = x.astype(np.float32)
    out = np.empty(x.size, np.uint16)
    _kernels.fp32_to_fp16_soft(x, out)
    with np.errstate(over="ignore"):     # overflow to inf is the expected rounding
        ref16 = x.astype(np.float16)
    np.testing.assert_array_equal(out, ref16.view(np.uint16))


def test_default_threads(monkeypatch):
    monkeypatch.setenv("MODELCTL_THREADS", "3")
    assert K.default_threads() == 3
    monkeypatch.setenv("MODELCTL_THREADS", "zero")    # not a number: ignored
    assert K.default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.delenv("MODELCTL_THREADS")
    assert K.default_threads() == len(os.sched_getaffinity(0))


def test_missing_extension_is_a_clear_error():
    import subprocess
    import sys

    code = ("import sys; sys.modules['modelctl.runtime._kernels'] = None\n"
            "from modelctl.core.errors import RuntimeModelError\n"
            "try:\n    import modelctl.runtime.kernels\nexcept RuntimeModelError as e:\n    print(e.one_line())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "compiled kernels cannot be loaded" in r.stdout and "pip install" in r.stdout
