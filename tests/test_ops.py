"""The C ops of the transformer against plain NumPy formulas."""

import numpy as np
import pytest

from modelctl.runtime import _ops

# every test runs once per compiled variant of the kernels this CPU runs (conftest.kernel_variant)
pytestmark = pytest.mark.usefixtures("kernel_variant")

rng = np.random.default_rng(0)


def test_rmsnorm():
    x = rng.standard_normal((5, 64)).astype(np.float32)
    w = rng.standard_normal(64).astype(np.float32)
    ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(axis=1, keepdims=True) + 1e-6) * w
    assert np.allclose(_ops.rmsnorm(x, w, 1e-6), ref, rtol=1e-5, atol=1e-6)


def rope_ref(x, n_head, hd, n_rot, base, pos, neox):
    x = x.reshape(x.shape[0], n_head, hd).astype(np.float64).copy()
    inv = base ** (-np.arange(0, n_rot, 2) / n_rot)
    for i in range(x.shape[0]):
        ang = (pos + i) * inv
        c, s = np.cos(ang), np.sin(ang)
        if neox:
            a, b = x[i, :, : n_rot // 2].copy(), x[i, :, n_rot // 2: n_rot].copy()
            x[i, :, : n_rot // 2], x[i, :, n_rot // 2: n_rot] = a * c - b * s, a * s + b * c
        else:
            a, b = x[i, :, 0:n_rot:2].copy(), x[i, :, 1:n_rot:2].copy()
            x[i, :, 0:n_rot:2], x[i, :, 1:n_rot:2] = a * c - b * s, a * s + b * c
    return x.reshape(x.shape[0], -1)


@pytest.mark.parametrize("neox", [False, True])
@pytest.mark.parametrize("n_rot", [32, 16])
def test_rope_orders_and_partial_rotation(neox, n_rot):
    n, n_head, hd, base, pos = 4, 3, 32, 10000.0, 7
    x = rng.standard_normal((n, n_head * hd)).astype(np.float32)
    inv = base ** (-np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)
    ang = np.arange(64)[:, None] * inv[None, :]
    y = x.copy()
    _ops.rope(y, n_head, hd, n_rot, np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32), pos, neox)
    assert np.allclose(y, rope_ref(x, n_head, hd, n_rot, base, pos, neox), atol=1e-4)


def attention_ref(q, K, V, pos, n_head, n_kv, hd, hdv, scale, window):
    n = q.shape[0]
    out = np.zeros((n, n_head * hdv))
    group = n_head // n_kv
    for i in range(n):
        p = pos + i
        lo = max(0, p - window + 1) if window else 0
        for h in range(n_head):
            g = h // group
            qh = q[i, h * hd:(h + 1) * hd].astype(np.float64)
            k = K[lo:p + 1, g * hd:(g + 1) * hd].astype(np.float64)
            v = V[lo:p + 1, g * hdv:(g + 1) * hdv].astype(np.float64)
            s = k @ qh * scale
            e = np.exp(s - s.max())
            out[i, h * hdv:(h + 1) * hdv] = (e / e.sum()) @ v
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("window", [0, 3])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [
    (16, 6, 2, 16, 8, 5, 4),      # n_ctx, n_head, n_kv, hd, hdv, pos, n: heads 3 to a KV head (2 + 1)
    (24, 14, 2, 72, 40, 9, 5),    # 7 to a KV head (4 + 2 + 1), rows not a whole number of vectors
    (24, 16, 1, 64, 64, 3, 1),    # one token, one KV head: a task per head; 16 heads (8 + 8) otherwise
    (24, 16, 1, 64, 64, 3, 6),
])
def test_attention_gqa_causal_window(dtype, window, threads, shape):
    n_ctx, n_head, n_kv, hd, hdv, pos, n = shape
    K = rng.standard_normal((n_ctx, n_kv * hd)).astype(dtype)
    V = rng.standard_normal((n_ctx, n_kv * hdv)).astype(dtype)
    q = rng.standard_normal((n, n_head * hd)).astype(np.float32)
    got = _ops.attention(q, K, V, pos, n_head, n_kv, hd, hdv, 0.25, window, threads)
    ref = attention_ref(q, K, V, pos, n_head, n_kv, hd, hdv, 0.25, window)
    assert np.allclose(got, ref, atol=2e-3 if dtype == np.float16 else 1e-5)


def test_attention_ignores_future_positions():
    K = rng.standard_normal((8, 16)).astype(np.float32)
    V = rng.standard_normal((8, 16)).astype(np.float32)
    q = rng.standard_normal((1, 16)).astype(np.float32)
    a = _ops.attention(q, K, V, 2, 1, 1, 16, 16, 0.25)
    K[3:], V[3:] = 100.0, 100.0
    assert np.array_equal(a, _ops.attention(q, K, V, 2, 1, 1, 16, 16, 0.25))


def test_attention_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        _ops.attention(np.zeros((1, 16), np.float32), np.zeros((4, 8), np.float32), np.zeros((4, 8), np.float32),
                       0, 1, 1, 16, 8, 1.0)


@pytest.mark.parametrize("gelu", [False, True])
def test_glu(gelu):
    g = rng.standard_normal((3, 40)).astype(np.float32) * 4
    u = rng.standard_normal((3, 40)).astype(np.float32)
    g[0, :3] = [12.0, -12.0, 0.5]
    if gelu:  # ggml's table: input and result rounded to float16; identity above 10, zero below -10
        h = g.astype(np.float16).astype(np.float64)
        act = (0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))).astype(np.float16)
        act = np.where(g >= 10, g, np.where(g <= -10, 0.0, act.astype(np.float64)))
    else:
        x = g.astype(np.float64)
        act = x / (1 + np.exp(-x))
    expect = act * u
    _ops.glu(g, u, gelu)
    assert np.allclose(g, expect, rtol=1e-5, atol=1e-5)


def test_silu_accuracy_over_the_float_range_and_threads():
    x = np.concatenate([np.linspace(-100, 100, 200_001), [-1e30, 1e30, 0.0, -0.0, 88.5, -88.5]]).astype(np.float32)
    u = np.ones((1, x.size), np.float32)
    with np.errstate(over="ignore"):
        expect = x.astype(np.float64) / (1 + np.exp(-x.astype(np.float64)))
    one, two = x[None].copy(), x[None].copy()
    _ops.glu(one, u, False, 1)
    _ops.glu(two, u, False, 2)
    np.testing.assert_array_equal(one, two)
    assert np.all(np.abs(one[0] - expect) <= 1e-6 * np.abs(expect) + 1e-30)
