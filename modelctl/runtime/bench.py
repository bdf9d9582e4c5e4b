"""``modelctl bench``: llama-bench's measures for the bundled runtime, and for llama.cpp beside it.

Prompt processing (pp: N_PROMPT token ids in one batch) and text generation (tg: N_GEN tokens one at a
time), tokens per second at the given threads, each a warm-up then REPETITIONS runs on an empty KV cache;
median and spread.  Token ids, not text: BOS then random ids, so any GGUF can be measured, even one with a
synthetic vocabulary (no tokenizer is read).  When llama.cpp is available (``llama_cpp`` importable here,
or another interpreter given with ``reference_python``) the same measures run on the same file and threads
in the same run, and the ratios are reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from modelctl.core.errors import ModelctlError, UsageError


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2),
            "stdev": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
            "runs": [round(v, 2) for v in values]}


class ModelctlBench:
    """The bundled runtime loaded once; ``pp()`` and ``tg()`` each time one run (tokens/s)."""

    def __init__(self, path: Path, n_prompt: int, n_gen: int, threads: int, kv_type: str = "f16"):
        import numpy as np

        from modelctl.runtime.loader import GGUFFile
        from modelctl.runtime.model import Model

        t0 = time.perf_counter()
        self.gguf = GGUFFile.open(path)
        try:
            self.model = Model(self.gguf, n_ctx=max(n_prompt, n_gen) + 8, n_threads=threads, kv_type=kv_type,
                               n_batch=max(n_prompt, 1))
        except Exception:
            self.gguf.close()
            raise
        self.load_s = time.perf_counter() - t0
        self.n_prompt, self.n_gen = n_prompt, n_gen
        self.rng = np.random.default_rng(1234)
        bos = self.gguf.metadata.get("tokenizer.ggml.bos_token_id")
        n_vocab = self.model.hp.n_vocab
        self.first = bos if isinstance(bos, int) and 0 <= bos < n_vocab else 0

    def tokens(self, n: int) -> list[int]:
        return [self.first] + self.rng.integers(0, self.model.hp.n_vocab, n - 1).tolist()

    def pp(self) -> float:
        ids = self.tokens(self.n_prompt)
        t = time.perf_counter()
        self.model.forward(ids, 0)
        return self.n_prompt / (time.perf_counter() - t)

    def tg(self) -> float:
        ids = self.tokens(self.n_gen)
        t = time.perf_counter()
        for pos, tok in enumerate(ids):
            self.model.forward([tok], pos)
        return self.n_gen / (time.perf_counter() - t)

    def close(self) -> None:
        self.gguf.close()


def measure_reference(path: Path, n_prompt: int, n_gen: int, threads: int, repetitions: int,
                      reference_python: str | None) -> dict | None:
    """llama.cpp's figures, or None when it is not available."""
    from modelctl.runtime import llamacpp_ref

    if reference_python:
        script = Path(llamacpp_ref.__file__)
        proc = subprocess.run([reference_python, str(script), str(path), str(n_prompt), str(n_gen), str(threads),
                               str(repetitions)], capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelctlError(f"the llama.cpp reference failed: {last}", where=reference_python)
        return json.loads(proc.stdout)
    if llamacpp_ref.available():
        return llamacpp_ref.measure(str(path), n_prompt, n_gen, threads, repetitions)
    return None


def run(path: Path, n_prompt: int = 512, n_gen: int = 128, threads: int | None = None, repetitions: int = 5,
        kv_type: str = "f16", profile: bool = False, reference: bool = True,
        reference_python: str | None = None) -> dict:
    if n_prompt < 0 or n_gen < 0 or (n_prompt == 0 and n_gen == 0):
        raise UsageError("nothing to measure", hint="give -p N and/or -n N with N > 0")
    if repetitions < 1:
        raise UsageError("repetitions must be at least 1")
    from modelctl.runtime import kernels
    from modelctl.runtime.model import Profile

    threads = threads or os.cpu_count() or 1
    # One repetition of each engine in turn, so that both see the same machine (other processes come
    # and go on a shared machine); each engine warms up first.
    bench = ModelctlBench(path, n_prompt, n_gen, threads, kv_type)
    ours = {"engine": "modelctl", "pp": [], "tg": [], "profile": None}
    ref = None
    try:
        if n_prompt:
            bench.pp()
        if n_gen:
            bench.tg()
        profiles = {"pp": Profile(), "tg": Profile()} if profile else {}
        for _ in range(repetitions):
            for name, n, fn in (("pp", n_prompt, bench.pp), ("tg", n_gen, bench.tg)):
                if n:
                    bench.model.profile = profiles.get(name)
                    ours[name].append(fn())
                    bench.model.profile = None
            if reference:
                r = measure_reference(path, n_prompt, n_gen, threads, 1, reference_python)
                if r is None:
                    reference = False
                else:
                    ref = ref or {"engine": r["engine"], "pp": [], "tg": []}
                    ref["pp"] += r["pp"]
                    ref["tg"] += r["tg"]
        if profile:
            ours["profile"] = {name: p.table() for name, p in profiles.items() if p.seconds}
    finally:
        bench.close()
    ours["load_s"] = round(bench.load_s, 3)

    def figures(r):
        pp, tg = summary(r["pp"]), summary(r["tg"])
        return {"engine": r["engine"], "pp_tokens_per_s": pp and pp["median"], "tg_tokens_per_s": tg and tg["median"],
                "threads": threads, "n_prompt": n_prompt, "n_gen": n_gen, "pp": pp, "tg": tg}

    result = figures(ours)
    result["load_s"] = ours["load_s"]
    result["kernels"] = kernels.variant()
    result["model"] = str(path)
    result["repetitions"] = repetitions
    result["reference"] = figures(ref) if ref else None
    if ref:
        result["ratios"] = {
            k: round(result[k] / result["reference"][k], 3) if result[k] and result["reference"][k] else None
            for k in ("pp_tokens_per_s", "tg_tokens_per_s")}
    else:
        result["ratios"] = None
    if profile:
        result["profile"] = ours["profile"]
    return result
