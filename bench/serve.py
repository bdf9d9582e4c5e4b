"""Generation speed through ``modelctl serve`` beside ``modelctl bench`` (and llama-server) on one model.

    .venv/bin/python bench/serve.py [--model PATH] [--n-gen 128] [--repeat 3] [--threads N] [--clients 1,2]

In the same run:

- ``modelctl bench MODEL -p 0 -n N_GEN``: the runtime's own decode speed (tokens/s, median of the runs),
  the reference;
- ``modelctl serve MODEL --parallel C`` on 127.0.0.1, C clients at once each streaming a greedy completion
  of up to N_GEN tokens (a counting prompt, so the model does not stop early); a client's speed is
  its completion tokens after the first over the time from its first to its last chunk (usage from
  ``stream_options.include_usage``), read with a bare HTTP client so that the measuring costs the
  two shared cores little; for C > 1 the total is all tokens over the wall time;
- llama-server, when a build is found (``--llama-server PATH``, ``$MODELCTL_LLAMA_SERVER``, or a
  ``llama-server`` under the test cache ``~/.cache/modelctl-tests``), measured the same way; else said.

Ratios are against ``modelctl bench`` measured in the same run (the goal for one client: >= 0.9x).
Timings on a shared machine are noisy: each round runs the reference and every setting once, in turn,
and medians over the rounds are reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import fetch  # noqa: E402

PROMPT = "Count from 1 to 500, separated by commas: 1, 2, 3, 4,"


def modelctl(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "modelctl", *args], env=env, text=True, **kw)


def bench_tg(model: Path, n_gen: int, repeat: int, threads: int) -> float:
    p = modelctl("bench", str(model), "-p", "0", "-n", str(n_gen), "-r", str(repeat), "-t", str(threads),
                 "--no-reference", "--json", stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=1800)
    if p.returncode:
        raise SystemExit(f"modelctl bench failed ({p.returncode})")
    return json.loads(out)["tg"]["median"]


def stream_once(host: str, port: int, n_gen: int) -> tuple[int, float, float]:
    """One streamed greedy completion: (completion tokens, first chunk time, last chunk time)."""
    conn = http.client.HTTPConnection(host, port, timeout=1800)
    body = {"prompt": PROMPT, "max_tokens": n_gen, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"server answered {resp.status}: {resp.read()[:300]!r}")
    first = last = None
    tokens = chunks = 0
    for line in resp:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        obj = json.loads(line[6:])
        if obj.get("usage"):
            tokens = obj["usage"]["completion_tokens"]
        if obj.get("choices") and obj["choices"][0].get("text"):
            now = time.perf_counter()
            first = first or now
            last, chunks = now, chunks + 1
    conn.close()
    return tokens or chunks, first or 0.0, last or 0.0


def measure(host: str, port: int, n_gen: int, repeat: int, clients: int) -> dict:
    """tokens/s per client (clients == 1) or all together (clients > 1), median over the repeats."""
    rates, counts = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(lambda _: stream_once(host, port, n_gen), range(clients)))
        wall = time.perf_counter() - t0
        if clients == 1:
            n, first, last = results[0]
            rates.append((n - 1) / (last - first))
        else:
            rates.append(sum(r[0] for r in results) / wall)
        counts.append(sum(r[0] for r in results))
    return {"tokens_per_s": round(statistics.median(rates), 2), "runs": [round(r, 2) for r in rates],
            "tokens": counts}


class ModelctlServer:
    def __init__(self, model: Path, threads: int, parallel: int, ctx: int):
        self.proc = modelctl("serve", str(model), "--port", "0", "--threads", str(threads), "--parallel",
                             str(parallel), "--ctx", str(ctx), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        url = self.proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit("modelctl serve did not start")
        self.host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
        self.port = int(port)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


class LlamaServer:
    def __init__(self, binary: str, model: Path, threads: int, parallel: int, ctx: int, port: int = 18931):
        self.host, self.port = "127.0.0.1", port
        self.proc = subprocess.Popen([binary, "-m", str(model), "--host", self.host, "--port", str(port), "-t",
                                      str(threads), "-np", str(parallel), "-c", str(ctx * parallel)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 300
        while time.monotonic() < end:
            try:
                conn = http.client.HTTPConnection(self.host, port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.close()
        raise SystemExit("llama-server did not start")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def find_llama_server(given: str | None) -> str | None:
    for c in (given, os.environ.get("MODELCTL_LLAMA_SERVER")):
        if c:
            return c
    found = sorted(p for p in fetch.CACHE.rglob("llama-server") if p.is_file() and os.access(p, os.X_OK))
    return str(found[0]) if found else shutil.which("llama-server")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="a GGUF (default: SmolLM2-135M from the test cache)")
    ap.add_argument("--n-gen", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--clients", default="1,2", help="comma-separated client counts (each with --parallel C)")
    ap.add_argument("--llama-server", default=None, help="a llama-server binary to measure beside")
    args = ap.parse_args()
    model = args.model or fetch.model_path("smollm2")
    ctx = args.n_gen + 64
    clients = [int(c) for c in args.clients.split(",")]
    binary = find_llama_server(args.llama_server)
    kinds = [("modelctl serve", lambda c: ModelctlServer(model, args.threads, c, ctx))]
    if binary:
        kinds.append(("llama-server", lambda c: LlamaServer(binary, model, args.threads, c, ctx)))

    # rounds: the reference and every server setting one run each, in turn, so that the load of a
    # shared machine falls on all of them alike
    tg: list[float] = []
    rates: dict[str, list[float]] = {}
    servers = {}
    try:
        for name, start in kinds:
            for c in clients:
                servers[(name, c)] = start(c)
                measure(servers[(name, c)].host, servers[(name, c)].port, 8, 1, 1)   # warm-up
        for _ in range(args.repeat):
            tg.append(bench_tg(model, args.n_gen, 1, args.threads))
            for (name, c), srv in servers.items():
                rates.setdefault(f"{name}, {c} client{'s (total)' if c > 1 else ''}", []).append(
                    measure(srv.host, srv.port, args.n_gen, 1, c)["tokens_per_s"])
    finally:
        for srv in servers.values():
            srv.close()
    ref = statistics.median(tg)
    print(f"model {model.name}, {args.threads} threads, {args.n_gen} tokens, {args.repeat} rounds")
    print(f"{'engine':36} {'tokens/s':>10} {'vs bench':>9}   runs")
    print(f"{'modelctl bench (tg' + str(args.n_gen) + ')':36} {ref:>10.2f} {'1.00x':>9}   {tg}")
    for label, runs in rates.items():
        med = statistics.median(runs)
        print(f"{label:36} {med:>10.2f} {med / ref:>8.2f}x   {runs}")
    if not binary:
        print("llama-server: not built in the test cache (~/.cache/modelctl-tests), none on PATH, none given "
              "(--llama-server PATH or $MODELCTL_LLAMA_SERVER): no llama-server figures")


if __name__ == "__main__":
    main()
