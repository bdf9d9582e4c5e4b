"""The memory estimator against llama.cpp's own figures.

tests/data/llama_cpp_buffers.json was written by scripts/measure_llama_cpp_buffers.py
with the reference llama.cpp (CPU backend): KV and compute buffer sizes for the
7B shapes of the two seed models (synthetic sparse files) and for the three
real test models, at n_ctx 512..8192, flash attention off and on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelctl.core.errors import UsageError
from modelctl.fit.estimate import (
    MiB, arch_from_dict, arch_from_header, compute_buffer_bytes, estimate, kv_bytes_per_token, kv_cache_bytes,
    weights_from_size, weights_from_tensors,
)
from modelctl.gguf.reader import read_header

DATA = Path(__file__).parent / "data" / "llama_cpp_buffers.json"
GiB = 1 << 30

ZEPHYR = dict(arch="llama", layers=32, heads=32, kv_heads=8, head_dim=128, embedding=4096, ffn=14336,
              vocab=32000, context_length=32768, sliding_window=4096)
CAUSALLM = dict(arch="llama", layers=32, heads=32, kv_heads=32, head_dim=128, embedding=4096, ffn=11008,
                vocab=151936, context_length=8192)


def test_zephyr_kv_cache_reference():
    a = arch_from_dict(ZEPHYR)
    assert kv_bytes_per_token(a) == 131_072
    # llama-arch Mistral: llama.cpp keeps the full context in every layer, the 4096 window is ignored
    assert not a.is_swa
    assert kv_cache_bytes(a, 4096) == 512 * MiB
    assert kv_cache_bytes(a, 32768) == 4 * GiB
    assert kv_cache_bytes(a, 4096, "q8_0", "q8_0") == 4096 * 32 * 2 * 1024 * 34 // 32
    assert kv_cache_bytes(a, 4096, "q4_0", "q4_0") == 144 * MiB
    assert kv_cache_bytes(a, 4000) == 512 * MiB          # llama.cpp pads n_ctx to 256


def test_causallm_kv_cache_reference():
    a = arch_from_dict(CAUSALLM)
    assert kv_bytes_per_token(a) == 524_288
    assert kv_cache_bytes(a, 8192) == 4 * GiB            # the "4 GiB at 8192"


@pytest.mark.parametrize("shape,expected", [
    (ZEPHYR, {2048: 176, 4096: 308, 8192: 572}),
    (CAUSALLM, {2048: 313, 4096: 321, 8192: 584}),
])
def test_compute_buffer_reference(shape, expected):
    a = arch_from_dict(shape)
    for n_ctx, mib in expected.items():
        got = compute_buffer_bytes(a, n_ctx, flash_attn=False) / MiB
        assert abs(got - mib) <= 1.0, (n_ctx, got, mib)


def _arch_of(name: str, entry: dict, models: dict):
    if "shape" in entry:
        return arch_from_dict({"arch": "llama", **entry["shape"]})
    return arch_from_header(read_header(models[name]))


def test_against_llama_cpp_measurements(smollm2_path, qwen_path, gemma3_path):
    data = json.loads(DATA.read_text())
    models = {p.name: p for p in (smollm2_path, qwen_path, gemma3_path)}
    assert {"zephyr-7b", "causallm-7b", *models} <= set(data)
    for name, entry in data.items():
        a = _arch_of(name, entry, models)
        e_bytes = a.embedding * 512 * 4          # one hidden state of a ubatch: the allocator's granularity
        for run in entry["runs"]:
            kv = kv_cache_bytes(a, run["n_ctx"]) / MiB
            assert kv == pytest.approx(run["kv_mib"], abs=0.01), (name, run)
            got = compute_buffer_bytes(a, run["n_ctx"], run["flash_attn"])
            want = run["compute_mib"] * MiB
            # exact where the peak is the sum of live tensors; allocator fragmentation adds up to a few
            # hidden states on the tiny models
            assert abs(got - want) <= max(4 * e_bytes, 0.01 * want), (name, run, got / MiB)


def test_llama_arch_ignores_the_sliding_window_key():
    """A llama-architecture file that records Mistral's 4096 window: llama.cpp still caches everything."""
    runs = json.loads(DATA.read_text())["zephyr-7b-swa-key"]["runs"]
    assert {r["n_ctx"]: r["kv_mib"] for r in runs}[8192] == 1024.0
    assert kv_cache_bytes(arch_from_dict(ZEPHYR), 8192) == 1024 * MiB


def test_gemma3_sliding_window_cache(gemma3_path):
    a = arch_from_header(read_header(gemma3_path))
    assert a.arch == "gemma3" and a.sliding_window == 512
    assert sum(a.swa_layers) == 15 and not a.swa_layers[5] and a.swa_layers[0]   # 5 local : 1 global
    # full-attention layers grow with the context, sliding-window layers stop at window + ubatch
    assert kv_cache_bytes(a, 8192) - kv_cache_bytes(a, 4096) == 3 * 4096 * 1 * 256 * 2 * 2


def test_estimate_and_runtime_share_the_sliding_window_rule(gemma3_path):
    """The memory estimate and the bundled runtime read the same layers as sliding-window ones."""
    from modelctl.runtime.model import HParams

    h = read_header(gemma3_path)
    a = arch_from_header(h)
    hp = HParams.from_metadata(h.metadata, n_vocab=a.vocab)
    assert hp.swa_layers == list(a.swa_layers) and hp.sliding_window == a.sliding_window == 512


def test_llama_runtime_ignores_the_sliding_window_key():
    """As llama.cpp (and the estimate): a llama-architecture file's window key changes no layer."""
    from modelctl.runtime.model import HParams

    md = {"general.architecture": "llama", "llama.embedding_length": 64, "llama.attention.head_count": 4,
          "llama.block_count": 2, "llama.attention.sliding_window": 4096}
    hp = HParams.from_metadata(md, n_vocab=32)
    assert hp.swa_layers == [False, False] and hp.sliding_window == 0
    assert not arch_from_dict(ZEPHYR).is_swa


def _write_gguf(path, n_layers=2, tied=False, extra=None):
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(n_layers)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_feed_forward_length(128)
    w.add_context_length(1024)
    w.add_file_type(7)
    w.add_token_list([f"t{i}" for i in range(100)])
    w.add_tensor("token_embd.weight", np.zeros((100, 64), dtype=np.float16))
    if not tied:
        w.add_tensor("output.weight", np.zeros((100, 64), dtype=np.float16))
    w.add_tensor("output_norm.weight", np.zeros(64, dtype=np.float32))
    for i in range(n_layers):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((64, 64), dtype=np.float16))
        w.add_tensor(f"blk.{i}.ffn_up.weight", np.zeros((128, 64), dtype=np.float32))
    for name, arr in (extra or {}).items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_weights_from_header(tmp_path):
    p = tmp_path / "m.gguf"
    _write_gguf(p, extra={"rope_freqs.weight": np.zeros(32, dtype=np.float32)})
    h = read_header(p)
    a = arch_from_header(h)
    assert (a.layers, a.heads, a.kv_heads, a.head_dim_k, a.vocab, a.ffn) == (2, 4, (2, 2), 16, 100, 128)
    w = weights_from_tensors(h.tensors, a.layers)
    assert w.blocks == [64 * 64 * 2 + 128 * 64 * 4] * 2
    assert w.token_embd == 100 * 64 * 2
    assert w.output == 100 * 64 * 2 + 64 * 4
    assert w.other == 32 * 4
    assert w.total == h.tensor_data_bytes
    p2 = tmp_path / "tied.gguf"
    _write_gguf(p2, tied=True)
    h2 = read_header(p2)
    w2 = weights_from_tensors(h2.tensors, 2)
    assert w2.output_tied and w2.output == 100 * 64 * 2 + 64 * 4   # token_embd doubles as the output layer
    assert w2.total == h2.tensor_data_bytes                       # ... but is stored once


def test_placement_follows_ngl():
    a = arch_from_dict(ZEPHYR)
    w = weights_from_size(a, 4_370_000_000, "card")
    assert w.total == pytest.approx(4_370_000_000, abs=a.layers + 2)
    e = estimate(a, w, 4096)
    cpu = e.placement(0, ["nvidia"])
    assert cpu.vram_bytes == 0 and cpu.ram_bytes > w.total
    prev = cpu
    for ngl in range(1, e.max_ngl + 1):
        p = e.placement(ngl, ["nvidia"])
        assert p.vram_bytes > prev.vram_bytes and p.ram_bytes <= prev.ram_bytes
        prev = p
    p32 = e.placement(32, ["nvidia"])
    p33 = e.placement(33, ["nvidia"])
    assert p32.kv_vram_bytes == 512 * MiB and p32.kv_ram_bytes == 0
    assert p33.weights_vram_bytes - p32.weights_vram_bytes == w.output     # the output layer goes last
    assert p33.weights_ram_bytes == w.token_embd + w.other                   # the embedding stays on the CPU
    assert p33.compute_ram_bytes < p32.compute_ram_bytes
    half = e.placement(16, ["nvidia"])
    assert half.kv_vram_bytes == half.kv_ram_bytes == 256 * MiB              # KV follows its layers
    assert e.placement(99, ["nvidia"]).ngl == 33
    assert e.placement(10, []).ngl == 0                                      # no GPU, no offload


def test_quantized_v_cache_turns_on_flash_attention():
    a = arch_from_dict(ZEPHYR)
    w = weights_from_size(a, 4_370_000_000, "card")
    assert estimate(a, w, 4096, "q8_0").flash_attn
    assert not estimate(a, w, 4096, "f16").flash_attn
    assert estimate(a, w, 4096, "q8_0").compute_bytes < estimate(a, w, 4096).compute_bytes
    with pytest.raises(UsageError):
        estimate(a, w, 4096, "q3_k")
    with pytest.raises(UsageError):
        estimate(a, w, 0)


def test_bad_architecture_block():
    with pytest.raises(UsageError, match="lacks"):
        arch_from_dict({"arch": "llama", "layers": 32})
    with pytest.raises(UsageError):
        arch_from_dict({**ZEPHYR, "layers": "many"})
    with pytest.raises(UsageError):
        arch_from_dict({**ZEPHYR, "heads": 0})
    with pytest.raises(UsageError):
        arch_from_dict({**ZEPHYR, "sliding_window": "4k"})
    with pytest.raises(UsageError):
        arch_from_dict({**ZEPHYR, "context_length": -1})


def test_hostile_architecture_metadata(tmp_path, cli):
    """Wrong types or absurd sizes in the {arch}.* keys: a clear GGUFError, never a crash."""
    from modelctl.core.errors import GGUFError
    from modelctl.gguf.reader import GGUFHeader

    good = {"general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 64,
            "llama.attention.head_count": 4}
    assert arch_from_header(GGUFHeader("x", 3, dict(good), [], 32, 0, 0)).layers == 2
    for key, bad in [("llama.block_count", "32"), ("llama.block_count", 0), ("llama.block_count", True),
                     ("llama.embedding_length", 1.5), ("llama.attention.head_count", [0, "a"]),
                     ("llama.attention.head_count_kv", "8"), ("llama.attention.key_length", -1),
                     ("llama.feed_forward_length", ["x"]), ("llama.context_length", [1, 2]),
                     ("llama.attention.sliding_window", "4096"), ("llama.vocab_size", 1 << 40)]:
        with pytest.raises(GGUFError):
            arch_from_header(GGUFHeader("x", 3, {**good, key: bad}, [], 32, 0, 0))
    import gguf

    p = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_string("llama.attention.head_count_kv", "eight")
    w.add_tensor("token_embd.weight", np.zeros((10, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = cli("recommend", str(p))
    assert r.returncode == 6 and "head_count_kv" in r.stderr and "internal error" not in r.stderr


def test_projector_follows_the_gpu():
    a = arch_from_dict(ZEPHYR)
    w = weights_from_size(a, 4_370_000_000, "card")
    w.projector = 600 * MiB
    e = estimate(a, w, 4096)
    assert e.placement(0, ["nvidia"]).weights_ram_bytes == e.placement(0, []).weights_ram_bytes
    assert e.placement(0, []).weights_ram_bytes - w.token_embd - w.output - w.other - sum(w.blocks) == 600 * MiB
    assert e.placement(1, ["nvidia"]).weights_vram_bytes == w.blocks[-1] + 600 * MiB
