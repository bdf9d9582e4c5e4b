"""Writes a GGUF with Zephyr 7B's exact shape and llama.cpp's Q4_K_M type mix, filled with random valid blocks.

    python bench/make_synthetic.py [OUT.gguf] [--layers N]

For `modelctl bench` at the seed models' size (4.1 GiB, ~8 s to write) without downloading one: llama
architecture, 32 layers, d=4096, 32 heads / 8 KV heads, FFN 14336, a 32,000-token SentencePiece-style
vocabulary of placeholder pieces (bench feeds token ids, never text).  Q4_K_M: Q4_K everywhere but Q6_K for
the output and for attn_v/ffn_down in llama.cpp's "more bits" layers.  Written tensor by tensor (bounded
memory) to OUT.tmp, then renamed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

N_EMBD, N_HEAD, N_KV, N_FF, N_VOCAB, N_CTX = 4096, 32, 8, 14336, 32000, 32768


def more_bits(il: int, n_layer: int) -> bool:
    """llama.cpp's use_more_bits(): the first and last eighth of the layers, and every third between."""
    return il < n_layer // 8 or il >= 7 * n_layer // 8 or (il - n_layer // 8) % 3 == 2


def tensors(n_layer: int):
    """(name, type, rows, cols) in file order."""
    yield "token_embd.weight", "Q4_K", N_VOCAB, N_EMBD
    for il in range(n_layer):
        p = f"blk.{il}."
        hd = N_EMBD // N_HEAD
        yield p + "attn_norm.weight", "F32", 1, N_EMBD
        yield p + "attn_q.weight", "Q4_K", N_EMBD, N_EMBD
        yield p + "attn_k.weight", "Q4_K", N_KV * hd, N_EMBD
        yield p + "attn_v.weight", "Q6_K" if more_bits(il, n_layer) else "Q4_K", N_KV * hd, N_EMBD
        yield p + "attn_output.weight", "Q4_K", N_EMBD, N_EMBD
        yield p + "ffn_norm.weight", "F32", 1, N_EMBD
        yield p + "ffn_gate.weight", "Q4_K", N_FF, N_EMBD
        yield p + "ffn_up.weight", "Q4_K", N_FF, N_EMBD
        yield p + "ffn_down.weight", "Q6_K" if more_bits(il, n_layer) else "Q4_K", N_EMBD, N_FF
    yield "output_norm.weight", "F32", 1, N_EMBD
    yield "output.weight", "Q6_K", N_VOCAB, N_EMBD


def main() -> None:
    import gguf

    from modelctl.gguf.quants import GGML_TYPES_BY_NAME
    from modelctl.runtime.synth import random_data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="zephyr-7b-shape.Q4_K_M.gguf")
    ap.add_argument("--layers", type=int, default=32)
    args = ap.parse_args()
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    rng = np.random.default_rng(7)

    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("synthetic zephyr-7b-shape Q4_K_M")
    w.add_block_count(args.layers)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(15)  # MOSTLY_Q4_K_M
    w.add_vocab_size(N_VOCAB)
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [f"\u2581t{i}" for i in range(N_VOCAB - len(pieces))]
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores([0.0] * N_VOCAB)
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (N_VOCAB - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    specs = list(tensors(args.layers))
    for name, type_name, rows, cols in specs:
        t = GGML_TYPES_BY_NAME[type_name]
        nbytes = rows * cols // t.block_size * t.type_size
        # numpy order; a quantized tensor is given as its byte shape (rows, bytes per row)
        shape = (cols,) if type_name == "F32" else (rows, nbytes // rows)
        w.add_tensor_info(name, shape, np.dtype(np.float32 if type_name == "F32" else np.uint8), nbytes,
                          raw_dtype=gguf.GGMLQuantizationType[type_name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, type_name, rows, cols in specs:
        if type_name == "F32":
            data = np.ones(cols, dtype=np.float32)
        else:
            data = random_data(type_name, rows, cols, rng, scale=(2e-4, 2e-3))
        w.write_tensor_data(data)
    w.close()
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
