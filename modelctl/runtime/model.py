"""The transformer: a forward pass over GGUF quantized weights, read as maths.

    x = embed(tokens) [* sqrt(d) for gemma]
    for each layer:
        h = rmsnorm(x) * attn_norm
        q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)
        q, k = rmsnorm per head (gemma3, qwen3), rope(q, k, position)
        cache k, v;  a = softmax(q k^T * scale + causal/window mask) v
        o = a Wo           [then rmsnorm * post_attention_norm for gemma]
        x = x + o
        h = rmsnorm(x) * ffn_norm
        f = (act(h Wgate) * (h Wup)) Wdown     act = silu (SwiGLU) or gelu (GeGLU)
        x = x + f          [after rmsnorm * post_ffw_norm for gemma]
    logits = (rmsnorm(x) * output_norm) Wout   (Wout = token embedding when tied)

The weights stay the file's quantized blocks; every product goes through the
kernels (``products``: the matrices that read the same input, q/k/v and gate/up,
in one parallel pass, for a batch of tokens or one) and the embedding gathers
only the rows it needs (``get_rows``).  Architecture differences are data
(``ARCHITECTURES``) and hyper-parameters come from the GGUF metadata.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelctl.core.errors import RuntimeModelError
from modelctl.gguf.swa import sliding_layers
from modelctl.runtime import _kernels, _ops, kernels

# ---------------------------------------------------------------------------
# architectures, as data
# ---------------------------------------------------------------------------

LAYER_TENSORS = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                 "ffn_down")


@dataclass(frozen=True)
class ArchSpec:
    rope: str                       # "norm": rotate pairs (2i, 2i+1); "neox": rotate (i, i + n/2)
    ffn_act: str = "silu"           # silu (SwiGLU) or gelu (GeGLU, tanh approximation)
    embed_scale: bool = False       # multiply embeddings by sqrt(n_embd)
    required: tuple[str, ...] = ()  # per-layer tensors beyond LAYER_TENSORS
    rope_base_swa: float | None = None  # default RoPE base of the sliding-window layers


ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": ArchSpec(rope="norm"),
    "qwen2": ArchSpec(rope="neox", required=("attn_q.bias", "attn_k.bias", "attn_v.bias")),
    "qwen3": ArchSpec(rope="neox", required=("attn_q_norm", "attn_k_norm")),
    "gemma3": ArchSpec(rope="neox", ffn_act="gelu", embed_scale=True,
                       required=("attn_q_norm", "attn_k_norm", "post_attention_norm", "post_ffw_norm"),
                       rope_base_swa=10_000.0),
}


@dataclass
class HParams:
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int         # of queries and keys
    head_dim_v: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    eps: float
    rope_dims: int
    rope_base: float
    rope_base_swa: float
    rope_freq_scale: float
    attn_scale: float
    sliding_window: int   # 0: none
    swa_layers: list[bool] = field(default_factory=list)
    final_softcap: float = 0.0  # logits = cap * tanh(logits / cap) when > 0

    @classmethod
    def from_metadata(cls, md: dict[str, Any], n_vocab: int) -> "HParams":
        arch = md.get("general.architecture")
        spec = ARCHITECTURES.get(arch)
        if spec is None:
            raise RuntimeModelError(
                f"architecture {arch!r} is not supported by the bundled runtime",
                hint=f"supported: {', '.join(sorted(ARCHITECTURES))}; use llama.cpp for this model")

        def get(key, default=None, required=False):
            value = md.get(f"{arch}.{key}", default)
            if required and value is None:
                raise RuntimeModelError(f"metadata key {arch}.{key} is missing")
            return value

        n_embd = int(get("embedding_length", required=True))
        n_head = int(get("attention.head_count", required=True))
        n_head_kv = get("attention.head_count_kv", n_head)
        if isinstance(n_head_kv, list):
            raise RuntimeModelError("per-layer attention.head_count_kv is not supported")
        n_head_kv = int(n_head_kv)
        head_dim = int(get("attention.key_length", n_embd // n_head))
        head_dim_v = int(get("attention.value_length", head_dim))
        n_layer = int(get("block_count", required=True))
        flags, window = sliding_layers(arch, n_layer, int(get("attention.sliding_window", 0) or 0),
                                       get("attention.sliding_window_pattern"))
        rope_base = float(get("rope.freq_base", 10_000.0))
        scaling = get("rope.scaling.type", "none")
        factor = float(get("rope.scaling.factor", 0.0) or 0.0)
        if scaling not in ("none", "linear", None) and factor not in (0.0, 1.0):
            raise RuntimeModelError(f"RoPE scaling {scaling!r} is not supported by the bundled runtime")
        freq_scale = 1.0 / factor if (scaling == "linear" and factor > 0) else 1.0
        scale = get("attention.scale", None)
        if n_head_kv <= 0 or n_head % n_head_kv:
            raise RuntimeModelError(f"{n_head} attention heads cannot share {n_head_kv} key/value heads")
        return cls(
            arch=arch, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
            head_dim=head_dim, head_dim_v=head_dim_v, n_ff=int(get("feed_forward_length", 0)),
            n_vocab=n_vocab, n_ctx_train=int(get("context_length", 2048)),
            eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_dims=int(get("rope.dimension_count", head_dim)), rope_base=rope_base,
            rope_base_swa=float(get("rope.freq_base_swa", spec.rope_base_swa or rope_base)),
            rope_freq_scale=freq_scale,
            attn_scale=float(scale) if scale else 1.0 / math.sqrt(head_dim),
            sliding_window=(window or 0) if any(flags) else 0, swa_layers=list(flags),
            final_softcap=float(get("final_logit_softcapping", 0.0) or 0.0),
        )


# ---------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------


def _vector(t) -> np.ndarray:
    """A small 1-D tensor (norm weight, bias) as float32."""
    return np.ascontiguousarray(kernels.dequantize(t).reshape(-1), dtype=np.float32)


@dataclass
class Layer:
    attn_norm: np.ndarray
    wq: Any
    wk: Any
    wv: Any
    wo: Any
    ffn_norm: np.ndarray
    w_gate: Any
    w_up: Any
    w_down: Any
    bq: np.ndarray | None = None
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None
    q_norm: np.ndarray | None = None
    k_norm: np.ndarray | None = None
    post_attn_norm: np.ndarray | None = None
    post_ffn_norm: np.ndarray | None = None
    swa: bool = False
    rope_base: float = 10_000.0


_OPTIONAL = {"attn_q.bias": "bq", "attn_k.bias": "bk", "attn_v.bias": "bv", "attn_q_norm": "q_norm",
             "attn_k_norm": "k_norm", "post_attention_norm": "post_attn_norm", "post_ffw_norm": "post_ffn_norm"}
_VECTORS = {"attn_norm", "ffn_norm", *(_OPTIONAL)}


def _tensor_name(short: str) -> str:
    return short if short.endswith((".weight", ".bias")) else f"{short}.weight"


def load_layers(tensors: dict, hp: HParams) -> list[Layer]:
    spec = ARCHITECTURES[hp.arch]
    missing = [f"blk.{il}.{_tensor_name(s)}" for il in range(hp.n_layer)
               for s in (*LAYER_TENSORS, *spec.required) if f"blk.{il}.{_tensor_name(s)}" not in tensors]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise RuntimeModelError(f"the {hp.arch} model lacks tensor(s) {', '.join(missing[:3])}{more}",
                                hint="the file is incomplete or not a complete model")
    layers = []
    names = {"attn_norm": "attn_norm", "attn_q": "wq", "attn_k": "wk", "attn_v": "wv", "attn_output": "wo",
             "ffn_norm": "ffn_norm", "ffn_gate": "w_gate", "ffn_up": "w_up", "ffn_down": "w_down", **_OPTIONAL}
    for il in range(hp.n_layer):
        kw = {}
        for short, attr in names.items():
            t = tensors.get(f"blk.{il}.{_tensor_name(short)}")
            if t is not None:
                kw[attr] = _vector(t) if short in _VECTORS else t
        swa = hp.swa_layers[il]
        layers.append(Layer(**kw, swa=swa, rope_base=hp.rope_base_swa if swa else hp.rope_base))
    _check_shapes(layers, hp)
    return layers


def _check_shapes(layers: list[Layer], hp: HParams) -> None:
    q, kv, v = hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim, hp.n_head_kv * hp.head_dim_v
    for il, L in enumerate(layers):
        expect = {"attn_q": (L.wq, hp.n_embd, q), "attn_k": (L.wk, hp.n_embd, kv), "attn_v": (L.wv, hp.n_embd, v),
                  "attn_output": (L.wo, hp.n_head * hp.head_dim_v, hp.n_embd),
                  "ffn_gate": (L.w_gate, hp.n_embd, None), "ffn_up": (L.w_up, hp.n_embd, L.w_gate.rows),
                  "ffn_down": (L.w_down, L.w_gate.rows, hp.n_embd)}
        for name, (t, cols, rows) in expect.items():
            if t.cols != cols or (rows is not None and t.rows != rows):
                raise RuntimeModelError(
                    f"tensor blk.{il}.{name}.weight has shape {tuple(t.shape)}, expected ({cols}, {rows})")


# ---------------------------------------------------------------------------
# inference state
# ---------------------------------------------------------------------------


class KVCache:
    """Keys and values of every processed position, per layer: [n_ctx, n_head_kv * head_dim]."""

    def __init__(self, hp: HParams, n_ctx: int, kv_type: str = "f16"):
        if kv_type not in KV_TYPES:
            raise RuntimeModelError(f"unknown KV cache type {kv_type!r}", hint="use f16 or f32")
        dtype = KV_TYPES[kv_type]
        self.n_ctx = n_ctx
        self.k = [np.zeros((n_ctx, hp.n_head_kv * hp.head_dim), dtype) for _ in range(hp.n_layer)]
        self.v = [np.zeros((n_ctx, hp.n_head_kv * hp.head_dim_v), dtype) for _ in range(hp.n_layer)]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.k) + sum(a.nbytes for a in self.v)


KV_TYPES = {"f16": np.float16, "f32": np.float32}


def kv_cache_bytes(hp: HParams, n_ctx: int, kv_type: str = "f16") -> int:
    per = np.dtype(KV_TYPES[kv_type]).itemsize
    return hp.n_layer * n_ctx * hp.n_head_kv * (hp.head_dim + hp.head_dim_v) * per


class Profile:
    """Seconds and calls per operation, when ``--profile`` asks for them."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.calls[name] = self.calls.get(name, 0) + 1

    def table(self) -> list[dict[str, Any]]:
        total = sum(self.seconds.values()) or 1.0
        return [{"op": k, "seconds": round(v, 6), "calls": self.calls[k], "share": round(v / total, 4)}
                for k, v in sorted(self.seconds.items(), key=lambda kv: -kv[1])]


class _NoProfile:
    """``with prof(name):`` when not profiling: one shared object, next to no cost."""

    def __call__(self, _name: str) -> "_NoProfile":
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_nothing = _NoProfile()


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------


class Model:
    """Weights (views over the mapped file), hyper-parameters and the KV cache."""

    def __init__(self, gguf, n_ctx: int | None = None, n_threads: int | None = None, kv_type: str = "f16",
                 n_batch: int = 256):
        md = gguf.metadata
        tensors = gguf.tensors
        embd = tensors.get("token_embd.weight")
        if embd is None:
            raise RuntimeModelError("the model lacks tensor token_embd.weight")
        self.hp = hp = HParams.from_metadata(md, n_vocab=embd.rows)
        self.spec = ARCHITECTURES[hp.arch]
        if embd.cols != hp.n_embd:
            raise RuntimeModelError(f"token_embd.weight has {embd.cols} columns, expected {hp.n_embd}")
        self.tok_embd = embd
        self.output = tensors.get("output.weight", embd)  # tied output: the embedding matrix
        if "output_norm.weight" not in tensors:
            raise RuntimeModelError("the model lacks tensor output_norm.weight")
        self.output_norm = _vector(tensors["output_norm.weight"])
        self.layers = load_layers(tensors, hp)
        self.n_ctx = int(n_ctx) if n_ctx else min(hp.n_ctx_train, 4096)
        if self.n_ctx < 1:
            raise RuntimeModelError(f"context size must be positive, got {self.n_ctx}")
        self.n_threads = n_threads
        self._nt = int(n_threads or kernels.default_threads())
        for W in self._matrices():
            kernels._check(W)  # unsupported types and malformed data refused at load, not mid-generation
        self.n_batch = n_batch
        self.kv_type = kv_type
        self.cache = KVCache(hp, self.n_ctx, kv_type)
        self.profile: Profile | None = None
        self._rope_cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def fork(self) -> "Model":
        """The same weights (shared, read-only) with a KV cache of its own: one per concurrent sequence."""
        twin = copy.copy(self)
        twin.cache = KVCache(self.hp, self.n_ctx, self.kv_type)
        twin.profile = None
        return twin

    def set_threads(self, n_threads: int) -> None:
        """Threads for the next forward passes (a server shares the cores among its busy slots)."""
        self._nt = max(1, int(n_threads))

    # -- building blocks ----------------------------------------------------

    def _matrices(self):
        yield self.tok_embd
        yield self.output
        for L in self.layers:
            yield from (L.wq, L.wk, L.wv, L.wo, L.w_gate, L.w_up, L.w_down)

    def _mm(self, *Ws, x: np.ndarray) -> list[np.ndarray]:
        """[x @ W.T for W in Ws] through the quantized kernels, in one parallel pass (x: C-contiguous float32
        [n, cols]; every W checked at load)."""
        outs = [np.empty((x.shape[0], W.rows), dtype=np.float32) for W in Ws]
        _kernels.products([(W.type_id, W.data, W.rows, W.cols) for W in Ws], x, outs, self._nt)
        return outs

    def _rope_tables(self, base: float) -> tuple[np.ndarray, np.ndarray]:
        """cos and sin of position * theta_i for every position of the context (computed once)."""
        if base not in self._rope_cache:
            hp = self.hp
            inv = hp.rope_freq_scale * base ** (-np.arange(0, hp.rope_dims, 2, dtype=np.float64) / hp.rope_dims)
            ang = np.arange(self.n_ctx, dtype=np.float64)[:, None] * inv[None, :]
            self._rope_cache[base] = (np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32))
        return self._rope_cache[base]

    # -- the forward pass ---------------------------------------------------

    def forward(self, tokens, n_past: int, all_logits: bool = False) -> np.ndarray:
        """Process ``tokens`` at positions n_past.. and return logits [n or 1, n_vocab] (float32)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        n = tokens.shape[0]
        if n_past + n > self.n_ctx:
            raise RuntimeModelError(f"context full: {n_past} + {n} tokens exceed the context size {self.n_ctx}",
                                    hint="use a larger --ctx or a shorter prompt")
        outs = []
        for start in range(0, n, self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            last = start + self.n_batch >= n
            outs.append(self._forward_chunk(chunk, n_past + start, all_logits or last, all_logits))
        return outs[0] if len(outs) == 1 else np.concatenate([o for o in outs if o is not None])

    def _forward_chunk(self, tokens: np.ndarray, pos: int, want_logits: bool, all_logits: bool):
        hp, prof = self.hp, (self.profile or _nothing)
        n = tokens.shape[0]
        nt = self._nt
        with prof("get_rows"):
            x = kernels.get_rows(self.tok_embd, tokens, n_threads=1 if n < 64 else self._nt)
            if self.spec.embed_scale:
                x *= np.float32(math.sqrt(hp.n_embd))
        for il, L in enumerate(self.layers):
            with prof("rmsnorm"):
                h = _ops.rmsnorm(x, L.attn_norm, hp.eps)
            with prof("matmul_qkv"):
                q, k, v = self._mm(L.wq, L.wk, L.wv, x=h)
            with prof("bias_norm_rope"):
                if L.bq is not None:
                    q += L.bq
                if L.bk is not None:
                    k += L.bk
                if L.bv is not None:
                    v += L.bv
                if L.q_norm is not None:
                    q = _ops.rmsnorm(q.reshape(n * hp.n_head, hp.head_dim), L.q_norm, hp.eps).reshape(n, -1)
                if L.k_norm is not None:
                    k = _ops.rmsnorm(k.reshape(n * hp.n_head_kv, hp.head_dim), L.k_norm, hp.eps).reshape(n, -1)
                cos, sin = self._rope_tables(L.rope_base)
                neox = self.spec.rope == "neox"
                _ops.rope(q, hp.n_head, hp.head_dim, hp.rope_dims, cos, sin, pos, neox)
                _ops.rope(k, hp.n_head_kv, hp.head_dim, hp.rope_dims, cos, sin, pos, neox)
            with prof("attention"):
                self.cache.k[il][pos:pos + n] = k
                self.cache.v[il][pos:pos + n] = v
                window = hp.sliding_window if L.swa else 0
                a = _ops.attention(q, self.cache.k[il], self.cache.v[il], pos, hp.n_head, hp.n_head_kv,
                                   hp.head_dim, hp.head_dim_v, hp.attn_scale, window, nt)
            with prof("matmul_attn_out"):
                [o] = self._mm(L.wo, x=a)
            with prof("add_norm"):
                if L.post_attn_norm is not None:
                    o = _ops.rmsnorm(o, L.post_attn_norm, hp.eps)
                x += o
                h = _ops.rmsnorm(x, L.ffn_norm, hp.eps)
            with prof("matmul_ffn_up"):
                g, u = self._mm(L.w_gate, L.w_up, x=h)
            with prof("glu"):
                _ops.glu(g, u, self.spec.ffn_act == "gelu", self._nt)
            with prof("matmul_ffn_down"):
                [o] = self._mm(L.w_down, x=g)
            with prof("add_norm"):
                if L.post_ffn_norm is not None:
                    o = _ops.rmsnorm(o, L.post_ffn_norm, hp.eps)
                x += o
        if not want_logits:
            return None
        if not all_logits:
            x = x[-1:]
        with prof("rmsnorm"):
            x = _ops.rmsnorm(x, self.output_norm, hp.eps)
        with prof("matmul_output"):
            [logits] = self._mm(self.output, x=np.ascontiguousarray(x))
        if hp.final_softcap > 0:
            logits = np.tanh(logits / hp.final_softcap) * hp.final_softcap
        return logits
