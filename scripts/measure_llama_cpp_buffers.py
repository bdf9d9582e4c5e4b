#!/usr/bin/env python3
"""Measure llama.cpp's KV and compute buffer sizes, to check modelctl's estimator.

Run with the reference venv (llama-cpp-python built by scripts/build_reference.sh):

    /root/.cache/modelctl-tests/refvenv/bin/python scripts/measure_llama_cpp_buffers.py \
        --out tests/data/llama_cpp_buffers.json

For each case it loads a model with llama.cpp (CPU backend, mmap, flash
attention off or on, a sliding-window cache of window + ubatch cells as llama-cli
has it: swa_full=False) at several context sizes and records what llama.cpp logs:
the KV buffer and the compute buffer, in MiB.  Models are either real GGUF
files (the test models) or synthetic files with a 7B shape: a GGUF header
written with gguf's GGUFWriter followed by a *sparse* data region (F16
weights, nothing is ever read, llama.cpp only needs the shapes to size its
buffers).  Nothing here is imported by modelctl or run in CI; the JSON it
writes is committed and tests/test_estimate.py compares the estimator with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPES = {
    # Zephyr 7B beta = Mistral 7B v0.1, llama architecture in the GGUF (no SWA cache in llama.cpp)
    "zephyr-7b": dict(layers=32, heads=32, kv_heads=8, head_dim=128, embedding=4096, ffn=14336,
                      vocab=32000, context_length=32768, bias=False),
    # CausalLM 7B: llama architecture with Qwen's vocabulary, no GQA
    # the same file with Mistral's 4096-token sliding window recorded: llama.cpp's llama architecture
    # ignores it and still allocates the full context in every layer
    "zephyr-7b-swa-key": dict(layers=32, heads=32, kv_heads=8, head_dim=128, embedding=4096, ffn=14336,
                              vocab=32000, context_length=32768, sliding_window=4096, bias=False),
    "causallm-7b": dict(layers=32, heads=32, kv_heads=32, head_dim=128, embedding=4096, ffn=11008,
                        vocab=151936, context_length=8192, bias=False),
    "causallm-7b-qkv-bias": dict(layers=32, heads=32, kv_heads=32, head_dim=128, embedding=4096, ffn=11008,
                                 vocab=151936, context_length=8192, bias=True),
}

CTXS = (512, 2048, 4096, 8192)


def write_sparse_gguf(path: Path, shape: dict) -> None:
    import numpy as np
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    e, L, H, KV, D, F, V = (shape[k] for k in ("embedding", "layers", "heads", "kv_heads", "head_dim", "ffn", "vocab"))
    w.add_block_count(L)
    w.add_context_length(shape["context_length"])
    w.add_embedding_length(e)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_rope_dimension_count(D)
    w.add_layer_norm_rms_eps(1e-5)
    if shape.get("sliding_window"):
        w.add_sliding_window(shape["sliding_window"])
    w.add_file_type(1)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tokens += [f"t{i}" for i in range(V - len(tokens))]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * V)
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (V - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    f16 = gguf.GGMLQuantizationType.F16
    f32 = gguf.GGMLQuantizationType.F32
    infos = [("token_embd.weight", (V, e), f16), ("output_norm.weight", (e,), f32), ("output.weight", (V, e), f16)]
    for i in range(L):
        p = f"blk.{i}."
        infos += [(p + "attn_norm.weight", (e,), f32), (p + "attn_q.weight", (H * D, e), f16),
                  (p + "attn_k.weight", (KV * D, e), f16), (p + "attn_v.weight", (KV * D, e), f16),
                  (p + "attn_output.weight", (e, H * D), f16), (p + "ffn_norm.weight", (e,), f32),
                  (p + "ffn_gate.weight", (F, e), f16), (p + "ffn_up.weight", (F, e), f16),
                  (p + "ffn_down.weight", (e, F), f16)]
        if shape.get("bias"):
            infos += [(p + "attn_q.bias", (H * D,), f32), (p + "attn_k.bias", (KV * D,), f32),
                      (p + "attn_v.bias", (KV * D,), f32)]
    total = 0
    for name, np_shape, qt in infos:
        dtype = np.float16 if qt == f16 else np.float32
        nbytes = int(np.prod(np_shape)) * np.dtype(dtype).itemsize
        w.add_tensor_info(name, np_shape, np.dtype(dtype), nbytes)
        total += -(-nbytes // 32) * 32
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:           # the tensor data: a hole, never read
        fh.truncate(-(-size // 32) * 32 + total)


_CHILD = r"""
import sys, llama_cpp
path, n_ctx, fa = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_gpu_layers=0, use_mmap=True, verbose=True,
                      flash_attn=fa, n_threads=1, swa_full=False)  # llama-cli's default (common.h)
"""


def measure(model: Path, n_ctx: int, flash_attn: bool) -> dict:
    res = subprocess.run([sys.executable, "-c", _CHILD, str(model), str(n_ctx), "1" if flash_attn else "0"],
                         capture_output=True, text=True, timeout=600)
    log = res.stdout + res.stderr
    kv = [float(x) for x in re.findall(r"KV buffer size\s*=\s*([\d.]+) MiB", log)]
    compute = [float(x) for x in re.findall(r"CPU compute buffer size\s*=\s*([\d.]+) MiB", log)]
    if res.returncode != 0 or not compute:
        raise SystemExit(f"llama.cpp failed on {model} n_ctx={n_ctx}:\n{log[-3000:]}")
    return {"n_ctx": n_ctx, "flash_attn": flash_attn, "kv_mib": sum(kv), "compute_mib": compute[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", action="append", default=[], help="also measure this real GGUF file")
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES), help="synthetic shapes (default: all)")
    ap.add_argument("--ctx", type=int, action="append", help=f"context sizes (default {CTXS})")
    ap.add_argument("--update", action="store_true", help="keep the other entries already in --out")
    args = ap.parse_args()
    ctxs = args.ctx or list(CTXS)
    results = json.loads(args.out.read_text()) if args.update and args.out.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shape or sorted(SHAPES):
            path = Path(tmp) / f"{name}.gguf"
            write_sparse_gguf(path, SHAPES[name])
            results[name] = {"shape": SHAPES[name], "runs": [measure(path, c, fa) for c in ctxs for fa in (False, True)]}
            os.unlink(path)
            print(name, json.dumps(results[name]["runs"]), flush=True)
        for m in args.model:
            p = Path(m)
            results[p.name] = {"file": p.name, "runs": [measure(p, c, fa) for c in ctxs for fa in (False, True)]}
            print(p.name, json.dumps(results[p.name]["runs"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
