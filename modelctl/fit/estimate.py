"""How much RAM and VRAM llama.cpp needs for a GGUF file at a given context.

The parts, as llama.cpp allocates them (llama-model.cpp, llama-kv-cache.cpp,
llama-context.cpp):

- **weights**: one repeating block per layer (``blk.N.*``), the input embedding
  ``token_embd`` (always on the CPU: it is only a row lookup), the output layer
  (``output.weight`` + ``output_norm``; ``token_embd`` again when the two are
  tied) and anything else.  Exact from the tensor infos when the header is
  known; otherwise the file size is shared out by the parameter counts of the
  architecture block.
- **KV cache**: per layer ``cells × n_kv_heads × (dk·bytes_k + dv·bytes_v)``,
  cells = n_ctx rounded up to 256.  Sliding-window layers hold only
  ``n_swa + n_ubatch`` cells, and only for the architectures llama.cpp builds with
  an SWA cache: a Mistral file with ``general.architecture = llama`` gets the full
  context in every layer, as in llama.cpp.
- **compute buffer**: the scratch memory of the largest graph (a prompt ubatch
  of 512 tokens), see ``compute_buffer_bytes``.
- **runtime overhead**: the process itself, and the CUDA/ROCm context per GPU.

``placement(ngl)`` follows ``-ngl``: the last ``ngl`` blocks go to the GPU, and
when ``ngl`` exceeds the block count the output layer too; the KV cache of a
layer lives where the layer does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from modelctl.core.errors import UsageError
from modelctl.gguf.quants import GGML_TYPES_BY_NAME
from modelctl.gguf.swa import sliding_layers

MiB = 1 << 20

# llama.cpp defaults (common.h / llama_context_default_params)
N_BATCH = 2048
N_UBATCH = 512
CTX_PAD = 256           # llama-context.cpp: n_ctx = GGML_PAD(n_ctx, 256)
KQ_MASK_PAD = 1         # rows of the KQ mask are padded to this many tokens

# Memory that is not weights, KV or compute: the process (binary, ggml contexts,
# tokenizer, sampler, the logits of the last token) and, per GPU, the driver
# context plus cuBLAS workspace.  Typical figures; estimates, not measurements
# of this machine.
RUNTIME_RAM_OVERHEAD = 256 * MiB
GPU_RUNTIME_OVERHEAD = {"nvidia": 512 * MiB, "amd": 512 * MiB, "apple": 64 * MiB, "user": 512 * MiB,
                        "unknown": 512 * MiB}

# KV cache element types users may ask for (llama.cpp --cache-type-k/-v).
KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")

def pad(n: int, to: int) -> int:
    return -(-n // to) * to


def type_bytes(name: str, n_elements: int) -> int:
    """Bytes of ``n_elements`` values of a ggml type name (``f16``, ``q8_0`` ...)."""
    t = GGML_TYPES_BY_NAME.get(name.upper())
    if t is None:
        raise UsageError(f"unknown KV cache type {name!r}", hint=f"use one of {', '.join(KV_TYPES)}")
    if n_elements % t.block_size:
        raise UsageError(f"KV cache type {name} needs a head size that is a multiple of {t.block_size}")
    return n_elements // t.block_size * t.type_size


# ---------------------------------------------------------------------------
# the architecture
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    arch: str
    layers: int
    heads: int
    kv_heads: tuple[int, ...]       # per layer
    head_dim_k: int
    head_dim_v: int
    embedding: int
    ffn: int
    vocab: int
    context_length: int | None = None
    sliding_window: int | None = None
    swa_layers: tuple[bool, ...] = ()   # per layer: uses the sliding-window cache (llama.cpp's view)

    @property
    def is_swa(self) -> bool:
        return any(self.swa_layers)

    def block_params(self) -> int:
        """Parameters of one repeating block of a llama-like transformer (attention + gated FFN + norms)."""
        e = self.embedding
        kv = max(self.kv_heads) if self.kv_heads else self.heads
        attn = e * self.heads * self.head_dim_k + e * kv * (self.head_dim_k + self.head_dim_v) \
            + self.heads * self.head_dim_v * e
        return attn + 3 * e * self.ffn + 2 * e


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > (1 << 40):
        raise UsageError(f"architecture field {what} is {value!r}, not a size")
    return value


def arch_from_dict(d: dict) -> Arch:
    """From a manifest's ``architecture`` block (see the manifest schema)."""
    missing = [k for k in ("layers", "heads", "embedding", "vocab") if d.get(k) in (None, "")]
    if missing:
        raise UsageError(f"the architecture block lacks {', '.join(missing)}",
                         hint="complete the manifest's architecture: block")
    name = str(d.get("arch") or "llama")
    layers = _as_int(d["layers"], "layers")
    heads = _as_int(d["heads"], "heads")
    embedding = _as_int(d["embedding"], "embedding")
    if not layers or not heads or not embedding:
        raise UsageError("the architecture block has zero layers, heads or embedding")
    kv = d.get("kv_heads") or heads
    kv_heads = tuple(_as_int(x, "kv_heads") for x in kv) if isinstance(kv, list) else (_as_int(kv, "kv_heads"),) * layers
    head_dim = _as_int(d.get("head_dim") or embedding // heads, "head_dim")
    window = d.get("sliding_window")
    window = None if window is None else _as_int(window, "sliding_window")
    ctx = d.get("context_length")
    ctx = None if ctx is None else _as_int(ctx, "context_length")
    pattern = d.get("sliding_window_pattern")
    flags, n_swa = sliding_layers(name, layers, window, pattern if isinstance(pattern, (int, list)) else None)
    return Arch(name, layers, heads, kv_heads, head_dim, _as_int(d.get("head_dim_v") or head_dim, "head_dim_v"),
                embedding, _as_int(d.get("ffn") or 4 * embedding, "ffn"), _as_int(d["vocab"], "vocab"),
                ctx, n_swa, flags)


def arch_from_header(h) -> Arch:
    """From a GGUF header's ``{arch}.*`` keys (llama.cpp's names and defaults).

    Values of the wrong type or size (a hostile or broken file) raise GGUFError.
    """
    from modelctl.core.errors import GGUFError

    name = h.architecture
    if not name:
        raise GGUFError("the file has no general.architecture", where=h.source)

    def count(key: str, value: Any, lo: int = 0, hi: int = 1 << 24) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise GGUFError(f"bad {name}.{key}: {str(value)[:40]!r}", where=h.source,
                            hint="the file's metadata is corrupt")
        return value

    def get(key: str, default: Any = None, lo: int = 0, hi: int = 1 << 24, per_layer: bool = False):
        v = h.metadata.get(f"{name}.{key}", default)
        if v is None:
            return None
        if isinstance(v, list):
            if not per_layer or not v or len(v) > 1 << 20:
                raise GGUFError(f"bad {name}.{key}: an array", where=h.source, hint="the file's metadata is corrupt")
            return [count(key, x, lo, hi) for x in v]
        return count(key, v, lo, hi)

    layers = get("block_count", lo=1, hi=100_000)
    embedding = get("embedding_length", lo=1)
    heads = get("attention.head_count", lo=1, per_layer=True)
    if isinstance(heads, list):
        heads = max(heads)
    if layers is None or embedding is None or not heads:
        raise GGUFError(f"the header lacks a usable {name}.block_count / embedding_length / attention.head_count",
                        where=h.source)
    kv = get("attention.head_count_kv", heads, per_layer=True)
    if isinstance(kv, list):
        kv_heads = tuple(kv[:layers]) + (heads,) * max(0, layers - len(kv))
    else:
        kv_heads = (kv,) * layers
    dk = get("attention.key_length") or embedding // heads
    dv = get("attention.value_length") or dk
    ffn = get("feed_forward_length", per_layer=True) or 4 * embedding
    if isinstance(ffn, list):
        ffn = max(ffn)
    vocab = get("vocab_size", hi=1 << 26)
    if vocab is None:
        tokens = h.metadata.get("tokenizer.ggml.tokens")
        vocab = len(tokens) if isinstance(tokens, list) else None
    if vocab is None:
        t = h.tensor("token_embd.weight")
        vocab = t.shape[1] if t is not None and len(t.shape) > 1 else 0
    n_swa = get("attention.sliding_window", hi=1 << 30)
    pattern = h.metadata.get(f"{name}.attention.sliding_window_pattern")
    if not isinstance(pattern, (int, list)) or isinstance(pattern, bool):
        pattern = None
    flags, n_swa = sliding_layers(name, layers, n_swa, pattern)
    return Arch(name, layers, heads, kv_heads, dk, dv, embedding, ffn, vocab,
                get("context_length", hi=1 << 30), n_swa, flags)


# ---------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------


@dataclass
class Weights:
    blocks: list[int]          # bytes of each repeating block, blk.0 first
    token_embd: int            # input embedding: stays on the CPU
    output: int                # output layer (+ output_norm): on the GPU only with ngl > layers
    other: int = 0             # anything else (rope factors, ...): CPU
    output_tied: bool = False  # no output.weight: llama.cpp reuses token_embd as the output layer
    source: str = "gguf-header"
    projector: int = 0         # a multimodal projector loaded alongside (--mmproj): GPU when offloading

    @property
    def total(self) -> int:
        """Bytes of weights in the file (a tied output layer is stored once)."""
        return sum(self.blocks) + self.token_embd + self.output - (self.token_embd if self.output_tied else 0) \
            + self.other


_BLK = re.compile(r"^blk\.(\d+)\.")
_OUTPUT = ("output.weight", "output.bias", "output_norm.weight", "output_norm.bias")


def weights_from_tensors(tensors: Sequence, n_layers: int) -> Weights:
    """Exact bytes from tensor infos (``name``, ``nbytes``); all parts of a split file together."""
    blocks = [0] * n_layers
    embd = out = other = 0
    names = set()
    for t in tensors:
        names.add(t.name)
        m = _BLK.match(t.name)
        if m and int(m.group(1)) < n_layers:
            blocks[int(m.group(1))] += t.nbytes
        elif t.name == "token_embd.weight":
            embd += t.nbytes
        elif t.name in _OUTPUT:
            out += t.nbytes
        else:
            other += t.nbytes
    tied = "output.weight" not in names
    if tied:
        out += embd
    return Weights(blocks, embd, out, other, tied, "gguf-header")


def weights_from_size(arch: Arch, size_bytes: int, source: str) -> Weights:
    """Share a file's size out by parameter counts (the card or the file listing gave only a size)."""
    embd_params = arch.vocab * arch.embedding
    block = arch.block_params()
    out_params = arch.vocab * arch.embedding + arch.embedding
    total = embd_params + out_params + block * arch.layers
    per = size_bytes / total
    blocks = [int(block * per)] * arch.layers
    embd = int(embd_params * per)
    out = int(out_params * per)
    return Weights(blocks, embd, out, max(0, size_bytes - sum(blocks) - embd - out), False, source)


# ---------------------------------------------------------------------------
# KV cache and compute buffer
# ---------------------------------------------------------------------------


def n_ubatch_for(n_ctx: int) -> int:
    return min(N_UBATCH, N_BATCH, ctx_cells(n_ctx))


def ctx_cells(n_ctx: int) -> int:
    return pad(n_ctx, CTX_PAD)


def layer_cells(arch: Arch, n_ctx: int, il: int) -> int:
    """KV cells of layer ``il``: the padded context, or the sliding window + a ubatch."""
    full = ctx_cells(n_ctx)
    if arch.swa_layers and arch.swa_layers[il] and arch.sliding_window:
        return pad(min(full, arch.sliding_window + n_ubatch_for(n_ctx)), CTX_PAD)
    return full


def kv_layer_bytes(arch: Arch, n_ctx: int, il: int, type_k: str = "f16", type_v: str = "f16") -> int:
    cells = layer_cells(arch, n_ctx, il)
    kv = arch.kv_heads[il]
    return cells * (type_bytes(type_k, kv * arch.head_dim_k) + type_bytes(type_v, kv * arch.head_dim_v))


def kv_cache_bytes(arch: Arch, n_ctx: int, type_k: str = "f16", type_v: str = "f16") -> int:
    return sum(kv_layer_bytes(arch, n_ctx, il, type_k, type_v) for il in range(arch.layers))


def kv_bytes_per_token(arch: Arch, type_k: str = "f16", type_v: str = "f16") -> float:
    """KV bytes per token of context over all layers (sliding-window layers stop growing at their window)."""
    return sum(type_bytes(type_k, kv * arch.head_dim_k * 32) / 32 + type_bytes(type_v, kv * arch.head_dim_v * 32) / 32
               for kv in arch.kv_heads)


def compute_buffer_bytes(arch: Arch, n_ctx: int, flash_attn: bool = False) -> int:
    """The compute (scratch) buffer llama.cpp reserves for its worst-case graph.

    llama.cpp reserves the graph of one prompt ubatch: T = 512 tokens (fewer
    when n_ctx is smaller), every one of them an output, attending to all n_kv
    cells of the cache.  ggml's allocator reuses a tensor's memory once its last
    consumer has run, so the buffer is the peak of live f32 activations, reached
    in one of three places of the graph:

    - attention, without flash attention: the scores ``KQ`` (n_kv × T × n_head,
      f32, softmax runs in place) and the KQ mask (n_kv × T, f32) are live
      together with Q, K and V of the ubatch and four hidden-state-sized
      tensors E = n_embd × T (the residual stream, the normed input and the
      block's input/output buffers that the allocator cannot yet reuse).
      With flash attention the scores never exist: the mask (f16) and the
      attention output (n_head × dv × T) take their place.  Models with a
      sliding-window cache keep a second mask for the SWA layers.
    - the feed-forward: up, gate and their SwiGLU product (3 × n_ff × T) with
      four E and the masks (inputs live until the last layer's attention);
      without flash attention K and V of the ubatch (copied into the cache,
      V transposed) are still held there as well.
    - the output: logits for T outputs (n_vocab × T) with 2 E (the final norm
      and its input).

    Where exactly the allocator places each tensor decides whether the peak is
    the sum of what is live or a little more (a freed hole too small for the
    next tensor): measured against llama.cpp, the formula is exact for the
    attention peak and within one E (n_embd × T × 4 bytes) for the others.

    This reproduces llama.cpp's reported CPU compute buffer (no flash attention)
    for the Zephyr/Mistral shape (176/308/572 MiB at n_ctx 2048/4096/8192) and
    the CausalLM (Qwen-vocabulary llama) shape (313/321/584 MiB): see
    tests/test_estimate.py and scripts/measure_llama_cpp_buffers.py.
    """
    f32 = 4
    T = n_ubatch_for(n_ctx)
    n_kv = ctx_cells(n_ctx)
    kv_heads = max(arch.kv_heads)
    E = arch.embedding * T * f32
    q = arch.heads * arch.head_dim_k * T * f32
    k = kv_heads * arch.head_dim_k * T * f32
    v = kv_heads * arch.head_dim_v * T * f32
    mask_rows = pad(T, KQ_MASK_PAD)
    swa_cells = [layer_cells(arch, n_ctx, il) for il in range(arch.layers) if arch.swa_layers and arch.swa_layers[il]]
    has_full = not arch.swa_layers or not all(arch.swa_layers)
    if flash_attn:
        masks = (n_kv if has_full else 0) * mask_rows * 2 + (max(swa_cells) * mask_rows * 2 if swa_cells else 0)
        attention = 4 * E + q + k + v + masks + arch.heads * arch.head_dim_v * T * f32
    else:
        widest = n_kv if has_full else max(swa_cells)
        masks = (n_kv if has_full else 0) * mask_rows * f32 + (max(swa_cells) * mask_rows * f32 if swa_cells else 0)
        attention = 4 * E + q + k + v + masks + widest * T * arch.heads * f32
    ffn = 3 * arch.ffn * T * f32 + 4 * E + masks + (0 if flash_attn else k + v)
    logits = arch.vocab * T * f32 + 2 * E
    return max(attention, ffn, logits)


# ---------------------------------------------------------------------------
# placement
# ---------------------------------------------------------------------------


@dataclass
class Placement:
    ngl: int                 # llama.cpp's -ngl: blocks from the last one, then the output layer
    ram_bytes: int
    vram_bytes: int
    kv_ram_bytes: int
    kv_vram_bytes: int
    weights_ram_bytes: int
    weights_vram_bytes: int
    compute_ram_bytes: int
    compute_vram_bytes: int

    @property
    def kv_cache_bytes(self) -> int:
        return self.kv_ram_bytes + self.kv_vram_bytes


@dataclass
class Estimate:
    arch: Arch
    weights: Weights
    n_ctx: int
    type_k: str
    type_v: str
    flash_attn: bool
    compute_bytes: int
    kv_layers: list[int] = field(default_factory=list)

    @property
    def max_ngl(self) -> int:
        """-ngl that puts everything that can go to the GPU there (blocks + output layer)."""
        return self.arch.layers + 1

    @property
    def kv_cache_bytes(self) -> int:
        return sum(self.kv_layers)

    def placement(self, ngl: int, gpu_kinds: Sequence[str] = ()) -> Placement:
        """RAM and VRAM with ``ngl`` layers on the GPU(s) of kinds ``gpu_kinds`` (none: CPU only)."""
        n = self.arch.layers
        ngl = max(0, min(ngl, self.max_ngl)) if gpu_kinds else 0
        n_gpu_blocks = min(ngl, n)
        first_gpu = n - n_gpu_blocks
        w = self.weights
        w_vram = sum(w.blocks[first_gpu:]) + (w.output if ngl > n else 0) + (w.projector if ngl > 0 else 0)
        # on the CPU a tied output layer is the embedding itself (same mmap'd bytes)
        output_cpu = w.output - (w.token_embd if w.output_tied else 0)
        w_ram = sum(w.blocks[:first_gpu]) + w.token_embd + w.other + (0 if ngl > n else output_cpu) \
            + (0 if ngl > 0 else w.projector)
        kv_vram = sum(self.kv_layers[first_gpu:])
        kv_ram = sum(self.kv_layers[:first_gpu])
        T = n_ubatch_for(self.n_ctx)
        # The graph runs where its layers are.  Any GPU layer: the GPU holds the full
        # scratch buffer.  Layers left on the CPU: counted as a full CPU scratch
        # buffer too (conservative: llama.cpp's op offload moves large prompt
        # batches of CPU layers to the GPU, so the host buffer is often smaller;
        # not measured here, no GPU).  Everything offloaded: the host keeps only
        # the input embeddings of a ubatch and the last token's logits.
        host_small = self.arch.embedding * T * 4 + self.arch.vocab * 4
        if not gpu_kinds or ngl == 0:
            c_ram, c_vram = self.compute_bytes, 0
        else:
            c_vram = self.compute_bytes
            c_ram = self.compute_bytes if first_gpu > 0 or ngl <= n else host_small
        overhead_vram = sum(GPU_RUNTIME_OVERHEAD.get(k, GPU_RUNTIME_OVERHEAD["unknown"]) for k in gpu_kinds) \
            if ngl > 0 else 0
        return Placement(
            ngl=ngl,
            ram_bytes=w_ram + kv_ram + c_ram + RUNTIME_RAM_OVERHEAD,
            vram_bytes=w_vram + kv_vram + c_vram + overhead_vram if ngl > 0 else 0,
            kv_ram_bytes=kv_ram, kv_vram_bytes=kv_vram,
            weights_ram_bytes=w_ram, weights_vram_bytes=w_vram,
            compute_ram_bytes=c_ram, compute_vram_bytes=c_vram if ngl > 0 else 0,
        )


def estimate(arch: Arch, weights: Weights, n_ctx: int, type_k: str = "f16", type_v: str | None = None,
             flash_attn: bool | None = None) -> Estimate:
    """The memory picture of ``weights`` of ``arch`` at context ``n_ctx``.

    A quantized V cache needs flash attention in llama.cpp, so it turns it on.
    """
    if n_ctx <= 0:
        raise UsageError(f"context length must be positive, not {n_ctx}")
    type_v = type_v or type_k
    for t in (type_k, type_v):
        if t.lower() not in KV_TYPES:
            raise UsageError(f"unknown KV cache type {t!r}", hint=f"use one of {', '.join(KV_TYPES)}")
    if flash_attn is None:
        flash_attn = type_v.lower() not in ("f32", "f16", "bf16")
    layers = [kv_layer_bytes(arch, n_ctx, il, type_k, type_v) for il in range(arch.layers)]
    return Estimate(arch, weights, n_ctx, type_k, type_v, flash_attn,
                    compute_buffer_bytes(arch, n_ctx, flash_attn), layers)
