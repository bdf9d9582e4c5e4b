"""Generate golden token ids with llama.cpp (the reference engine) for tests/test_tokenizer.py.

Run it with the reference venv (llama-cpp-python 0.3.36 built from source; see
scripts/build_reference.sh), never with modelctl's own venv:

    /root/.cache/modelctl-tests/refvenv/bin/python scripts/make_golden_tokens.py

For every vocabulary (the three real test models and llama.cpp's ggml-vocab-*.gguf files)
it tokenizes each text of tests/golden/tokenizer_corpus.json three ways (as
``llama_tokenize(text, add_special, parse_special)`` with (False, False), (True, False),
(True, True)), detokenizes the results, and records every piece and the vocabulary's
BOS/EOS/EOG facts, into tests/golden/tokens/<name>.json.

It also writes tests/golden/tokenizer_fuzz.json: 150 random strings (fixed seed) drawn from pools of
whitespace, letters, digits, punctuation, accents, CJK, RTL, emoji with ZWJ, rare planes and
special-token look-alikes; for those only a digest of the ids is stored (``fuzz`` in each golden file,
sha256 of the space-joined ids, first 16 hex digits), to keep the files small.

Pre-tokenizers without a test vocabulary upstream are checked too: for each distinct regex set of
modelctl's pre-tokenizer table, the GPT-2 test vocabulary is rewritten (in a temporary directory)
with that ``tokenizer.ggml.pre``, and the corpus and fuzz strings' id digests go to
tests/golden/tokens-pretokenizers.json.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import os
import random
import sys
from pathlib import Path

import tempfile

import llama_cpp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
import fetch  # noqa: E402
from modelctl.runtime import pretokenize  # noqa: E402  (pure Python: the pre-tokenizer table)

OUT = REPO / "tests" / "golden" / "tokens"
CORPUS = REPO / "tests" / "golden" / "tokenizer_corpus.json"
FUZZ = REPO / "tests" / "golden" / "tokenizer_fuzz.json"
FUZZ_POOLS = [
    " \t\n\r\u00a0\u3000\u2003\u0085\u200b",
    "abcXYZ'sllvedmt", "0123456789\u0663\u096a", ".,!?;:-_()[]{}<>\"'`~@#$%^&*+=|\\/",
    "\u00e9\u00fc\u00df\u00e7\u00f1\u0301\u0308\u0903", "\u4e2d\u6587\u5b57\u65e5\u672c\u8a9e\u30ab\u30bf\u30ab\u30ca\ud55c\uad6d\uc5b4",
    "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd",
    "\U0001f600\U0001f44d\U0001f3fd\u200d\U0001f469\u2764\ufe0f\U0001fa75\U0001fae8\U0001f1ef\U0001f1f5",
    "\U00040000\U0002a6d6\U0001f9e0\U0001d518", "\u2581\u0120<s></s><|im_end|><start_of_turn><0x0A>",
]
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


def fuzz_texts(n: int = 150, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(1, 40)
        out.append("".join(rng.choice(rng.choice(FUZZ_POOLS)) for _ in range(length)))
    return out


def digest(ids: list[int]) -> str:
    return hashlib.sha256(" ".join(map(str, ids)).encode()).hexdigest()[:16]


def golden_for(path: str, corpus: list[str], fuzz: list[str]) -> dict:
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
        "fuzz": [[digest(tokenize(vocab, t.encode("utf-8"), add, parse)) for t in fuzz]
                 for add, parse in (VARIANTS["plain"], VARIANTS["parsed"])],
    }


def pretokenizer_names() -> list[str]:
    """One tokenizer.ggml.pre name per distinct (regex set, flags) over GPT-2 byte-level BPE."""
    seen, names = set(), []
    for name, (regex_set, flags) in pretokenize.PRE_TOKENIZERS.items():
        key = (regex_set, tuple(sorted(flags.items())))
        if key in seen or not pretokenize.REGEX_SETS[regex_set][1]:
            continue
        seen.add(key)
        names.append(name)
    return names


def rewrite_vocab(src: str, dst: str, pre: str) -> None:
    import gguf

    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(dst, arch=str(reader.fields["general.architecture"].contents()))
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = pre if key == "tokenizer.ggml.pre" else field.contents()
        sub = field.types[1] if len(field.types) > 1 else None
        writer.add_key_value(key, value, field.types[0], sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def pretokenizer_golden(texts: list[str]) -> dict:
    base = str(fetch.llama_cpp_source() / "vendor" / "llama.cpp" / "models" / "ggml-vocab-gpt-2.gguf")
    out = {"base": os.path.basename(base), "texts": "corpus + fuzz", "digests": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in pretokenizer_names():
            path = os.path.join(tmp, f"{name}.gguf")
            rewrite_vocab(base, path, name)
            llm = llama_cpp.Llama(path, vocab_only=True, verbose=False)
            vocab = llama_cpp.llama_model_get_vocab(llm.model)
            out["digests"][name] = [digest(tokenize(vocab, t.encode("utf-8"), False, False))[:10] for t in texts]
            del llm
            print(f"pre-tokenizer {name}: {len(texts)} texts", flush=True)
    return out


def main() -> None:
    corpus = json.loads(CORPUS.read_text(encoding="utf-8"))
    fuzz = fuzz_texts()
    FUZZ.write_text(json.dumps(fuzz, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    OUT.mkdir(parents=True, exist_ok=True)
    targets = {name: str(fetch.model_path(name)) for name in ("smollm2", "gemma3", "qwen")}
    models_dir = fetch.llama_cpp_source() / "vendor" / "llama.cpp" / "models"
    for p in sorted(glob.glob(str(models_dir / "ggml-vocab-*.gguf"))):
        name = os.path.basename(p)[len("ggml-vocab-"):-len(".gguf")]
        if name not in SKIP_VOCABS:
            targets[f"vocab-{name}"] = p
    only = set(sys.argv[1:])
    if not only or "pretokenizers" in only:
        data = pretokenizer_golden(corpus + fuzz)
        tmp = OUT.parent / ".tokens-pretokenizers.json.tmp"
        tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
        tmp.replace(OUT.parent / "tokens-pretokenizers.json")
    for name, path in targets.items():
        if only and name not in only:
            continue
        data = golden_for(path, corpus, fuzz)
        tmp = OUT / f".{name}.json.tmp"
        tmp.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        tmp.replace(OUT / f"{name}.json")
        print(f"{name}: {len(data['cases'])} texts, {len(data['pieces'])} pieces", flush=True)


if __name__ == "__main__":
    main()
