"""Generate golden token ids with llama.cpp (the reference engine) for tests/test_tokenizer.py.

Run it with the reference venv (llama-cpp-python 0.3.36 built from source; see
scripts/build_reference.sh), never with modelctl's own venv:

    /root/.cache/modelctl-tests/refvenv/bin/python scripts/make_golden_tokens.py

For every vocabulary (the three real test models and llama.cpp's ggml-vocab-*.gguf files)
it tokenizes each text of tests/golden/tokenizer_corpus.json three ways (as
``llama_tokenize(text, add_special, parse_special)`` with (False, False), (True, False),
(True, True)), detokenizes the results, and records every piece and the vocabulary's
BOS/EOS/EOG facts, into tests/golden/tokens/<name>.json.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import sys
from pathlib import Path

import llama_cpp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import fetch  # noqa: E402

OUT = REPO / "tests" / "golden" / "tokens"
CORPUS = REPO / "tests" / "golden" / "tokenizer_corpus.json"
VARIANTS = {"plain": (False, False), "special": (True, False), "parsed": (True, True)}
SKIP_VOCABS = {"nomic-bert-moe"}   # Unigram (T5): not a tokenizer modelctl implements


def tokenize(vocab, text: bytes, add_special: bool, parse_special: bool) -> list[int]:
    n_max = len(text) + 16
    buf = (llama_cpp.llama_token * n_max)()
    n = llama_cpp.llama_tokenize(vocab, text, len(text), buf, n_max, add_special, parse_special)
    if n < 0:
        raise RuntimeError(f"llama_tokenize needs {-n} tokens")
    return list(buf[:n])


def detokenize(vocab, ids: list[int], remove_special: bool, unparse_special: bool) -> bytes:
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 64 + 64 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, remove_special, unparse_special)
    if n < 0:
        raise RuntimeError("detokenize buffer too small")
    return buf.raw[:n]


def piece(vocab, tid: int, special: bool) -> bytes:
    buf = ctypes.create_string_buffer(512)
    n = llama_cpp.llama_token_to_piece(vocab, tid, buf, 512, 0, special)
    if n < 0:
        raise RuntimeError("piece buffer too small")
    return buf.raw[:n]


def golden_for(path: str, corpus: list[str]) -> dict:
    llm = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    cases = []
    seen: set[int] = set()
    for i, text in enumerate(corpus):
        raw = text.encode("utf-8")
        case = {"text": i}
        for name, (add, parse) in VARIANTS.items():
            ids = tokenize(vocab, raw, add, parse)
            seen.update(ids)
            case[name] = " ".join(map(str, ids))
        plain = [int(x) for x in case["plain"].split()]
        parsed = [int(x) for x in case["parsed"].split()]
        case["detok_plain"] = detokenize(vocab, plain, False, False).hex()
        case["detok_parsed"] = detokenize(vocab, parsed, True, True).hex()
        cases.append(case)
    null = llama_cpp.LLAMA_TOKEN_NULL if hasattr(llama_cpp, "LLAMA_TOKEN_NULL") else -1

    def tid_or_none(t: int):
        return None if t == null or t < 0 else t

    return {
        "source": os.path.basename(path),
        "reference": f"llama-cpp-python {llama_cpp.__version__}",
        "n_vocab": n_vocab,
        "bos": tid_or_none(llama_cpp.llama_vocab_bos(vocab)),
        "eos": tid_or_none(llama_cpp.llama_vocab_eos(vocab)),
        "eot": tid_or_none(llama_cpp.llama_vocab_eot(vocab)),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
        "eog": [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)],
        "pieces": {str(t): [piece(vocab, t, True).hex(), piece(vocab, t, False).hex()] for t in sorted(seen)},
        "cases": cases,
    }


def main() -> None:
    corpus = json.loads(CORPUS.read_text(encoding="utf-8"))
    OUT.mkdir(parents=True, exist_ok=True)
    targets = {name: str(fetch.model_path(name)) for name in ("smollm2", "gemma3", "qwen")}
    models_dir = fetch.llama_cpp_source() / "vendor" / "llama.cpp" / "models"
    for p in sorted(glob.glob(str(models_dir / "ggml-vocab-*.gguf"))):
        name = os.path.basename(p)[len("ggml-vocab-"):-len(".gguf")]
        if name not in SKIP_VOCABS:
            targets[f"vocab-{name}"] = p
    only = set(sys.argv[1:])
    for name, path in targets.items():
        if only and name not in only:
            continue
        data = golden_for(path, corpus)
        tmp = OUT / f".{name}.json.tmp"
        tmp.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        tmp.replace(OUT / f"{name}.json")
        print(f"{name}: {len(data['cases'])} texts, {len(data['pieces'])} pieces", flush=True)


if __name__ == "__main__":
    main()
