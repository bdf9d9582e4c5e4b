"""modelctl's kernels per instruction set against llama.cpp built for the same one.

For each compiled variant of the kernels this CPU runs (or those given with --variants), forces it
(MODELCTL_KERNELS) and runs ``modelctl bench`` on each model against llama.cpp built for the
matching instruction set (scripts/build_reference.sh: ISA=avx2 -> refvenv-avx2, avxvnni ->
refvenv-avxvnni, avx512 -> refvenv), same GGUF, same threads, both engines alternating run by run
in the same invocation; then prints one table of ratios (modelctl / llama.cpp) per variant.

    python bench/variants.py                               # every variant with a reference, 4 models
    python bench/variants.py --variants avx2 --models smollm2,qwen -r 3
    python bench/variants.py --big ~/.cache/modelctl-tests/zephyr-7b-shape.Q4_K_M.gguf   # the 7B shape

Models: the three test models (tests/fetch.py: smollm2, gemma3, qwen) and ``7b``, the GGUF that
bench/make_synthetic.py writes (--big; measured with the short --big-p/--big-n runs).  The generic
variant has no llama.cpp counterpart: with --variants generic it is measured against the AVX2 build.
Timings need a quiet machine: the load average is printed before and after; quote it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("MODELCTL_TEST_CACHE", Path.home() / ".cache" / "modelctl-tests"))
# variant -> the reference venv scripts/build_reference.sh builds for that instruction set
REFERENCE = {"avx512": "refvenv", "avxvnni": "refvenv-avxvnni", "avx2": "refvenv-avx2", "generic": "refvenv-avx2"}
MODELS = ("smollm2", "gemma3", "qwen", "7b")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="", help="comma-separated (default: every runnable one with a reference)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--big", default=str(CACHE / "zephyr-7b-shape.Q4_K_M.gguf"),
                    help="the 7B-shaped GGUF (bench/make_synthetic.py)")
    ap.add_argument("-p", type=int, default=512, help="prompt tokens (default 512)")
    ap.add_argument("-n", type=int, default=128, help="generated tokens (default 128)")
    ap.add_argument("--big-p", type=int, default=64, help="prompt tokens for the 7B shape (default 64)")
    ap.add_argument("--big-n", type=int, default=16, help="generated tokens for the 7B shape (default 16)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--repetitions", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print every result as JSON only")
    return ap.parse_args(argv)


def model_path(name: str, big: str) -> Path:
    if name == "7b":
        path = Path(big).expanduser()
        if not path.exists():
            sys.exit(f"bench/variants.py: {path} does not exist (write it: python bench/make_synthetic.py {path})")
        return path
    sys.path.insert(0, str(REPO / "tests"))
    import fetch

    return fetch.model_path(name)


def reference_python(variant: str) -> Path | None:
    py = CACHE / REFERENCE.get(variant, "") / "bin" / "python"
    return py if REFERENCE.get(variant) and py.exists() else None


def bench(variant: str, path: Path, ref: Path, p: int, n: int, threads: int, reps: int) -> dict:
    cmd = [sys.executable, "-m", "modelctl", "bench", str(path), "-p", str(p), "-n", str(n), "-t", str(threads),
           "-r", str(reps), "--json", "--reference-python", str(ref)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MODELCTL_KERNELS": variant})
    if proc.returncode:
        sys.exit(f"bench/variants.py: {' '.join(cmd)} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def table(variant: str, rows: list[tuple[str, dict]]) -> str:
    head = (f"{'model':10} {'pp':>5} {'modelctl':>9} {'llama.cpp':>9} {'ratio':>6} | "
            f"{'tg':>4} {'modelctl':>9} {'llama.cpp':>9} {'ratio':>6}")
    lines = [f"kernels {variant} vs llama.cpp ({REFERENCE.get(variant)})", head, "-" * len(head)]
    for name, r in rows:
        ref, rt = r["reference"] or {}, r["ratios"] or {}
        f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        g = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        lines.append(f"{name:10} {r['n_prompt']:>5} {f(r['pp_tokens_per_s']):>9} {f(ref.get('pp_tokens_per_s')):>9} "
                     f"{g(rt.get('pp_tokens_per_s')):>6} | {r['n_gen']:>4} {f(r['tg_tokens_per_s']):>9} "
                     f"{f(ref.get('tg_tokens_per_s')):>9} {g(rt.get('tg_tokens_per_s')):>6}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from modelctl.runtime import variants

    runnable = variants.runnable()
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()] or \
             [v for v in runnable if v != "generic" and reference_python(v)]
    for v in wanted:
        if v not in runnable:
            sys.exit(f"bench/variants.py: this CPU does not run the {v} kernels (it runs {', '.join(runnable)})")
        if not reference_python(v):
            sys.exit(f"bench/variants.py: no llama.cpp built for {v}: ISA={REFERENCE.get(v, v)} "
                     f"bash scripts/build_reference.sh")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    results = {v: [] for v in wanted}
    if not args.json:
        print(f"load average before: {load()}", file=sys.stderr)
    for name in models:
        path = model_path(name, args.big)
        p, n = (args.big_p, args.big_n) if name == "7b" else (args.p, args.n)
        for v in wanted:
            r = bench(v, path, reference_python(v), p, n, args.threads, args.repetitions)
            r["load_after"] = load()
            results[v].append((name, r))
            if not args.json:
                print(f"{v} {name}: pp {r['pp_tokens_per_s']} tg {r['tg_tokens_per_s']} ratios {r['ratios']} "
                      f"(load {r['load_after']})", file=sys.stderr)
    if args.json:
        print(json.dumps({v: dict(rows) for v, rows in results.items()}, indent=1))
        return 0
    print(f"{args.threads} threads, {args.repetitions} runs each (medians), engines alternating; "
          f"load average after: {load()}")
    for v in wanted:
        print()
        print(table(v, results[v]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
