"""llama-bench's two measures for llama.cpp (through llama-cpp-python), for ``modelctl bench``.

Importable (when ``llama_cpp`` is installed beside modelctl) and runnable on its own by another
interpreter that has ``llama_cpp`` but not modelctl (``modelctl bench --reference-python PY``):

    PY llamacpp_ref.py MODEL N_PROMPT N_GEN THREADS REPETITIONS   -> one JSON object on stdout

Only llama_cpp and the standard library: this file must not import modelctl.
Like llama-bench: token ids, not text (BOS then random ids), a warm-up run, then each repetition on an
empty KV cache; prompt processing in one batch, generation one token at a time.
"""

from __future__ import annotations

import json
import random
import sys
import time


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:
        return False
    return True


def measure(path: str, n_prompt: int, n_gen: int, threads: int, repetitions: int) -> dict:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=max(n_prompt, n_gen) + 8, n_batch=max(n_prompt, 32),
                          n_ubatch=max(n_prompt, 32), n_threads=threads, n_threads_batch=threads,
                          logits_all=False, verbose=False)
    n_vocab = llm.n_vocab()
    bos = llm.token_bos()
    rng = random.Random(1234)

    def tokens(n):
        first = bos if 0 <= bos < n_vocab else 0
        return [first] + [rng.randrange(n_vocab) for _ in range(n - 1)]

    def pp() -> float:
        ids = tokens(n_prompt)
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        return n_prompt / (time.perf_counter() - t0)

    def tg() -> float:
        ids = tokens(n_gen)
        llm.reset()
        t0 = time.perf_counter()
        for t in ids:
            llm.eval([t])
        return n_gen / (time.perf_counter() - t0)

    result = {"engine": f"llama.cpp (llama-cpp-python {llama_cpp.__version__})", "pp": [], "tg": []}
    if n_prompt:
        pp()  # warm-up
        result["pp"] = [pp() for _ in range(repetitions)]
    if n_gen:
        tg()
        result["tg"] = [tg() for _ in range(repetitions)]
    del llm
    return result


if __name__ == "__main__":
    path, n_prompt, n_gen, threads, reps = sys.argv[1], *map(int, sys.argv[2:6])
    json.dump(measure(path, n_prompt, n_gen, threads, reps), sys.stdout)
    sys.stdout.write("\n")
