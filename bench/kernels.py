"""Benchmark the runtime's quantized kernels against NumPy float32 and the memory bandwidth.

For each ggml type: the weight bytes per second that ``matvec`` streams (one
token's work: every weight read once, the working set larger than the caches),
and the GFLOP/s of ``matmul`` on a batch of activation rows; beside them, in
the same run and at the same thread count, NumPy float32 GEMV/GEMM on the very
same matrices dequantized, and the machine's memory read bandwidth.

    python bench/kernels.py                      # every type, 2 threads
    python bench/kernels.py --types Q4_1,Q4_K --repeat 7 --json

Timings are wall-clock, best and median of ``--repeat`` runs; on a shared
machine expect noise and say so when quoting them.  The "1 core" columns time
one thread by its own CPU time, which others' load barely moves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--types", default="", help="comma-separated ggml type names (default: all supported)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--set-mb", type=float, default=100.0,
                    help="matvec working set in MB of quantized weights (default 100, SmolLM2's size)")
    ap.add_argument("--rows", type=int, default=2048, help="rows of each weight matrix")
    ap.add_argument("--cols", type=int, default=2048, help="columns of each weight matrix")
    ap.add_argument("--batch", type=int, default=128, help="activation rows for matmul")
    ap.add_argument("--bw-mb", type=float, default=1024.0, help="array size for the large bandwidth probe")
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    return ap.parse_args(argv)


ARGS = parse_args()
# NumPy's BLAS gets the same thread count as our kernels (set before NumPy loads it).
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

from modelctl.gguf.quants import GGML_TYPES_BY_NAME  # noqa: E402
from modelctl.runtime import _kernels  # noqa: E402
from modelctl.runtime import kernels as K  # noqa: E402
from modelctl.runtime.synth import random_tensor  # noqa: E402


def timings(fn, repeat: int) -> tuple[float, float]:
    """(best, median) seconds of ``repeat`` calls after one warm-up call."""
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts), float(np.median(ts))


def bandwidth(nbytes: int, threads: int, repeat: int) -> tuple[float, float]:
    """Memory read GB/s (best, median) over an array of ``nbytes``."""
    buf = np.ones(int(nbytes), dtype=np.uint8)
    best, med = timings(lambda: _kernels.read_memory(buf, threads), repeat)
    return buf.nbytes / best / 1e9, buf.nbytes / med / 1e9


def bench_type(name: str, args, rng) -> dict:
    t = GGML_TYPES_BY_NAME[name]
    rows, cols = args.rows, args.cols
    mats = [random_tensor(name, rows, cols, rng)]
    while sum(m.nbytes for m in mats) < args.set_mb * 1e6:
        mats.append(random_tensor(name, rows, cols, rng))
    nbytes = sum(m.nbytes for m in mats)
    nweights = len(mats) * rows * cols
    x = rng.standard_normal(cols, dtype=np.float32)
    out = np.empty(rows, np.float32)

    def run_matvec():
        for m in mats:
            K.matvec(m, x, out=out, n_threads=args.threads)

    def run_read():
        for m in mats:
            _kernels.read_memory(m.data, args.threads)

    # interleaved, so that both see the same machine (others may be sharing it)
    mv, rd = [], []
    for _ in range(args.repeat):
        mv.append(timings(run_matvec, 1)[0])
        rd.append(timings(run_read, 1)[0])
    mv_best, mv_med = min(mv), float(np.median(mv))
    rd_best, rd_med = min(rd), float(np.median(rd))

    # one thread's CPU time: what the kernel costs per core, whatever else the machine is doing
    def cpu_seconds(fn):
        best = float("inf")
        fn()
        for _ in range(max(3, args.repeat // 2)):
            t = time.thread_time()
            fn()
            best = min(best, time.thread_time() - t)
        return best

    few = mats[:max(1, min(len(mats), 8))]
    cpu_mv = cpu_seconds(lambda: [K.matvec(m, x, out=out, n_threads=1) for m in few])
    few_bytes = sum(m.nbytes for m in few)

    # NumPy float32 GEMV on the same matrices dequantized (capped at 1 GB of float32)
    n_np = max(1, min(len(mats), int(1e9 // (rows * cols * 4))))
    dense = [K.dequantize(m, n_threads=args.threads) for m in mats[:n_np]]

    def run_np_gemv():
        for d in dense:
            np.dot(d, x, out=out)

    np_best, np_med = timings(run_np_gemv, args.repeat)
    np_w = n_np * rows * cols

    # matmul on one matrix and a batch of activation rows, vs NumPy's SGEMM
    X = rng.standard_normal((args.batch, cols), dtype=np.float32)
    Y = np.empty((args.batch, rows), np.float32)
    flops = 2.0 * args.batch * rows * cols
    mm_best, mm_med = timings(lambda: K.matmul(mats[0], X, out=Y, n_threads=args.threads), max(3, args.repeat // 2))
    cpu_mm = cpu_seconds(lambda: K.matmul(mats[0], X, out=Y, n_threads=1))
    D0T = dense[0].T
    gemm_best, gemm_med = timings(lambda: np.matmul(X, D0T, out=Y), max(3, args.repeat // 2))
    del dense
    return {
        "type": name,
        "bits_per_weight": t.bits_per_weight,
        "matvec_set_bytes": nbytes,
        "matvec_gbps": nbytes / mv_best / 1e9,
        "matvec_gbps_median": nbytes / mv_med / 1e9,
        "matvec_gweights": nweights / mv_best / 1e9,
        "read_gbps": nbytes / rd_best / 1e9,
        "read_gbps_median": nbytes / rd_med / 1e9,
        "numpy_gemv_gweights": np_w / np_best / 1e9,
        "numpy_gemv_gweights_median": np_w / np_med / 1e9,
        "matmul_gflops": flops / mm_best / 1e9,
        "matmul_gflops_median": flops / mm_med / 1e9,
        "numpy_gemm_gflops": flops / gemm_best / 1e9,
        "cpu_matvec_gbps_1thread": few_bytes / cpu_mv / 1e9,
        "cpu_matmul_gflops_1thread": flops / cpu_mm / 1e9,
        "numpy_gemm_gflops_median": flops / gemm_med / 1e9,
    }


def main(args) -> int:
    names = [n.strip().upper() for n in args.types.split(",") if n.strip()] or list(K.SUPPORTED_TYPES)
    bad = [n for n in names if n not in K.SUPPORTED_TYPES]
    if bad:
        print(f"bench/kernels.py: unsupported type(s) {', '.join(bad)}; choose from {', '.join(K.SUPPORTED_TYPES)}",
              file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    bw_large = bandwidth(args.bw_mb * 1e6, args.threads, args.repeat)
    bw_set = bandwidth(args.set_mb * 1e6, args.threads, args.repeat)
    results = []
    for name in names:
        results.append(bench_type(name, args, rng))
        if not args.json:
            print(f"  measured {name}", file=sys.stderr, flush=True)
    report = {
        "threads": args.threads, "repeat": args.repeat, "matrix": [args.rows, args.cols], "batch": args.batch,
        "bandwidth_gbps": {"large": bw_large[0], "large_median": bw_large[1], "large_mb": args.bw_mb,
                           "set": bw_set[0], "set_median": bw_set[1], "set_mb": args.set_mb},
        "types": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"threads {args.threads}, matrices {args.rows}x{args.cols}, matvec working set ~{args.set_mb:.0f} MB, "
          f"matmul batch {args.batch}; best of {args.repeat} (median in brackets)")
    print(f"memory read bandwidth: {bw_large[0]:.1f} GB/s [{bw_large[1]:.1f}] over {args.bw_mb:.0f} MB, "
          f"{bw_set[0]:.1f} GB/s [{bw_set[1]:.1f}] over {args.set_mb:.0f} MB")
    print()
    head = (f"{'type':7} {'bpw':>5} | {'matvec GB/s':>16} {'read GB/s':>9} {'%read':>5} {'Gw/s':>6} "
            f"{'NumPy Gw/s':>10} {'ratio':>6} | {'matmul GFLOP/s':>17} {'NumPy':>7} {'ratio':>6} | "
            f"{'1 core: GB/s':>12} {'GFLOP/s':>7}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['type']:7} {r['bits_per_weight']:5.2f} | "
              f"{r['matvec_gbps']:6.2f} [{r['matvec_gbps_median']:6.2f}] {r['read_gbps']:9.2f} "
              f"{100 * r['matvec_gbps'] / r['read_gbps']:4.0f}% {r['matvec_gweights']:6.2f} "
              f"{r['numpy_gemv_gweights']:10.2f} {r['matvec_gweights'] / r['numpy_gemv_gweights']:5.2f}x | "
              f"{r['matmul_gflops']:7.1f} [{r['matmul_gflops_median']:7.1f}] {r['numpy_gemm_gflops']:7.1f} "
              f"{r['matmul_gflops'] / r['numpy_gemm_gflops']:5.2f}x | "
              f"{r['cpu_matvec_gbps_1thread']:12.2f} {r['cpu_matmul_gflops_1thread']:7.1f}")
    print()
    print("matvec GB/s: quantized weight bytes streamed by matvec; read GB/s: the same arrays read by a plain "
          "summing kernel, interleaved with the matvec runs (%read: matvec / read); Gw/s: weights per second; "
          "ratio: ours / NumPy float32 on the same matrices dequantized; 1 core: matvec and matmul at one thread, "
          "per second of that thread's CPU time (steady even when others share the machine).")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
