"""Benchmark: tokenize a 100 kB English text with modelctl's tokenizer, against llama.cpp.

    .venv/bin/python bench/tokenize.py [MODEL.gguf ...] [--repeat N] [--bytes N]

Models default to the three real test models (SmolLM2: BPE smollm, Qwen2.5: BPE qwen2,
Gemma 3: SentencePiece 262k).  The text is the English licence texts in
/usr/share/common-licenses (else Python's own module docstrings), cut to 100,000 bytes.
Each run starts with an empty word cache.  When the reference venv (llama-cpp-python,
$MODELCTL_REFERENCE_PYTHON, default ~/.cache/modelctl-tests/refvenv/bin/python) exists,
llama.cpp tokenizes the same text in the same run: the script prints both times, the
ratio, and whether the ids are identical.  Timings on a shared machine are noisy: the
best of N runs is reported.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

REFERENCE_PY = Path(os.environ.get("MODELCTL_REFERENCE_PYTHON",
                                   Path.home() / ".cache" / "modelctl-tests" / "refvenv" / "bin" / "python"))

REFERENCE_SCRIPT = r"""
import json, sys, time, llama_cpp
path, text_file, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = open(text_file, "rb").read()
llm = llama_cpp.Llama(path, vocab_only=True, verbose=False)
vocab = llama_cpp.llama_model_get_vocab(llm.model)
buf = (llama_cpp.llama_token * (len(raw) + 16))()
best = None
for _ in range(repeat):
    t = time.perf_counter()
    n = llama_cpp.llama_tokenize(vocab, raw, len(raw), buf, len(raw) + 16, False, False)
    dt = time.perf_counter() - t
    best = dt if best is None else min(best, dt)
print(json.dumps({"seconds": best, "ids": list(buf[:n])}))
"""


def english_text(n_bytes: int) -> str:
    lic = Path("/usr/share/common-licenses")
    parts: list[str] = []
    if lic.is_dir():
        for p in sorted(lic.iterdir()):
            if p.is_file():
                parts.append(p.read_text(encoding="utf-8", errors="ignore"))
    if sum(map(len, parts)) < n_bytes:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        for p in sorted(stdlib.glob("*.py")):
            try:
                doc = ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            if doc:
                parts.append(doc)
            if sum(map(len, parts)) >= n_bytes:
                break
    raw = "\n\n".join(parts).encode("utf-8")[:n_bytes]
    return raw.decode("utf-8", "ignore")


def default_models() -> list[Path]:
    import fetch
    return [fetch.model_path(name) for name in ("smollm2", "qwen", "gemma3")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bytes", type=int, default=100_000)
    args = ap.parse_args()

    from modelctl.runtime.tokenizer import Tokenizer

    text = english_text(args.bytes)
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as fh:
        fh.write(text.encode("utf-8"))
        text_file = fh.name
    print(f"text: {len(text.encode('utf-8')):,} bytes of English, best of {args.repeat} runs")
    try:
        for path in args.models or default_models():
            t = time.perf_counter()
            tok = Tokenizer.from_file(path)
            load = time.perf_counter() - t
            best = None
            for _ in range(args.repeat):
                tok._cache.clear()
                t = time.perf_counter()
                ids = tok.encode(text)
                dt = time.perf_counter() - t
                best = dt if best is None else min(best, dt)
            line = (f"{path.name}: {tok.kind} {tok.pre} n_vocab={tok.n_vocab}: load {load:.2f} s, "
                    f"encode {best * 1000:.0f} ms for {len(ids):,} tokens "
                    f"({len(text) / best / 1e6:.2f} MB/s)")
            if REFERENCE_PY.exists():
                res = subprocess.run([str(REFERENCE_PY), "-c", REFERENCE_SCRIPT, str(path), text_file,
                                      str(args.repeat)], capture_output=True, text=True)
                if res.returncode == 0:
                    ref = json.loads(res.stdout.strip().splitlines()[-1])
                    same = "identical ids" if ref["ids"] == ids else "IDS DIFFER"
                    line += (f"; llama.cpp {ref['seconds'] * 1000:.1f} ms -> modelctl/llama.cpp = "
                             f"{best / ref['seconds']:.1f}x, {same}")
                else:
                    line += f"; reference failed: {res.stderr.strip().splitlines()[-1:]}"
            print(line, flush=True)
    finally:
        os.unlink(text_file)


if __name__ == "__main__":
    main()
