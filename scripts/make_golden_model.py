"""Writes tests/golden/model-<name>.json: llama.cpp's greedy continuations and per-position logits.

Run with the reference venv (scripts/build_reference.sh):
    ~/.cache/modelctl-tests/refvenv/bin/python scripts/make_golden_model.py [smollm2 gemma3 qwen]

For each real test model and a few raw prompts: the prompt ids as llama.cpp tokenizes a raw prompt (BOS only
when the model's metadata asks), the greedy continuation (N_GEN tokens, token ids fed back to llama.cpp, so the
model test does not depend on the tokenizer), and at every position (prompt and generated) the top-K logits,
a few full-vocabulary statistics and the top-1/top-2 margin; and llama.cpp's own noise floor (the same
tokens fed one at a time against the batched run), which is what our logits can be expected to match to.  Small files (tens of KB), committed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import fetch  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea, there lived",
]
N_GEN = 32
TOP_K = 10
N_CTX = 256


def position_record(row: np.ndarray) -> dict:
    row = row.astype(np.float64)
    top = np.argsort(-row, kind="stable")[:TOP_K]
    return {
        "top_ids": top.tolist(),
        "top_logits": [round(float(v), 4) for v in row[top]],
        "margin": round(float(row[top[0]] - row[top[1]]), 5),
        "mean": round(float(row.mean()), 5),
        "std": round(float(row.std()), 5),
    }


def centered_top(row: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``row`` at the TOP_K largest ids of ``ref``, minus row's mean over the vocabulary."""
    top = np.argsort(-ref, kind="stable")[:TOP_K]
    return row[top].astype(np.float64) - float(row.mean())


def golden_for(name: str) -> dict:
    from llama_cpp import Llama, __version__

    path = fetch.model_path(name)
    llm = Llama(model_path=str(path), n_ctx=N_CTX, n_batch=N_CTX, logits_all=True, n_threads=2,
                n_threads_batch=2, verbose=False, seed=0)
    single = Llama(model_path=str(path), n_ctx=N_CTX, n_batch=1, n_ubatch=1, logits_all=True, n_threads=2,
                   n_threads_batch=2, verbose=False, seed=0)
    cases = []
    for prompt in PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=False)
        llm.reset()
        llm.eval(ids)
        generated = []
        for _ in range(N_GEN):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            generated.append(nxt)
            llm.eval([nxt])
        # logits at every position of prompt + generated[:-1] (the last generated token is never fed back)
        rows = np.array(llm.scores[: len(ids) + N_GEN], dtype=np.float32)
        # llama.cpp's own noise floor: the same tokens one at a time (n_batch 1) against the batched run
        single.reset()
        single.eval(ids + generated[:-1])
        again = np.array(single.scores[: len(ids) + N_GEN - 1], dtype=np.float32)
        gaps = [float(np.abs(centered_top(a, r) - centered_top(r, r)).max()) for a, r in zip(again, rows)]
        cases.append({
            "self_consistency": {"what": "llama.cpp n_batch=1 vs batched, max |centered top-10 logit diff|",
                                 "max": round(max(gaps), 4), "mean": round(float(np.mean(gaps)), 4)},
            "prompt": prompt,
            "prompt_ids": list(ids),
            "generated_ids": generated,
            "text": llm.detokenize(generated).decode("utf-8", "replace"),
            "positions": [position_record(r) for r in rows[: len(ids) + N_GEN - 1]],
        })
    return {
        "model": name,
        "file": path.name,
        "sha256": fetch.sha256_file(path),
        "reference": f"llama.cpp via llama-cpp-python {__version__} (CPU, 2 threads, f16 KV cache, greedy)",
        "n_ctx": N_CTX,
        "top_k": TOP_K,
        "cases": cases,
    }


def main(names: list[str]) -> None:
    out_dir = REPO / "tests" / "golden"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names or list(fetch.MODELS):
        data = golden_for(name)
        target = out_dir / f"model-{name}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
        tmp.replace(target)
        for c in data["cases"]:
            margins = [p["margin"] for p in c["positions"][len(c["prompt_ids"]) - 1:]]
            print(f"{name}: {c['prompt']!r} -> {c['text']!r} (min greedy margin {min(margins):.4f}, "
                  f"llama.cpp self-consistency {c['self_consistency']})")
        print(f"wrote {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
