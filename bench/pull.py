"""Download throughput on loopback: modelctl's engine beside curl (and hf_transfer) on the same file.

    .venv/bin/python bench/pull.py [--size-mib 1024] [--repeat 3] [--workers 8]

A sparse file of the given size is created in a temporary folder and served by a small threaded HTTP
server on 127.0.0.1 (sendfile, Range support).  In the same run, each client downloads it ``--repeat``
times into the same temporary folder:

- ``curl``: one stream (``curl -s -o``), the reference; ``curl+sha256``: the same plus hashing the file
  afterwards with Python's hashlib (OpenSSL, SHA-NI: the fastest way to verify by hand);
  ``curl && sha256sum``: the same with coreutils' ``sha256sum`` (what a user types);
- ``modelctl``: ``modelctl.transfer.download`` (parallel ranged, journal, sha256 verified) in a
  subprocess; ``modelctl (no hash)``: the same with hashing switched off (the raw transfer);
  ``modelctl (1 stream)``: the size not given, so one stream, hashed as it is written (the path for
  servers that do not tell sizes, like the olah mirror);
- ``hf_transfer``: ``hf_transfer.download`` (parallel ranged, no resume, no verification), for the
  decision documented in modelctl/hub/transfer.py.

Each client's own peak RSS is its VmHWM (``/proc/PID/status``), sampled while it runs.  Peak memory is also measured for a file a quarter of the size: flat means it does not grow with the file.
Timings on a shared machine are noisy: the median of the repeats is reported, ratios are against curl and
curl + sha256 measured in the same run (interleaved), and the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import shutil
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path

    def log_message(self, *a):
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head):
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a or 0)
            end = min(size, int(b) + 1) if b else size
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if head:
            return
        with open(path, "rb") as fh:
            try:
                self.connection.sendfile(fh, start, end - start)
            except (BrokenPipeError, ConnectionResetError):
                pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve(root: Path):
    handler = type("H", (_Handler,), {"root": root})
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def sparse_file(path: Path, size: int) -> str:
    """A sparse file with a few non-zero blocks (so a wrong offset would change the hash); its sha256."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        for i in range(0, size, 64 << 20):
            fh.seek(i)
            fh.write(hashlib.sha256(str(i).encode()).digest() * 128)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


MODELCTL_CHILD = """
import json, sys, time
from pathlib import Path
from modelctl.hub import transfer
url, dest, size, sha, workers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
t = time.perf_counter()
r = transfer.download(url, dest, size=size or None, sha256=sha or None, identity=sha or url, workers=workers,
                      compute_sha256=bool(sha))
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "status": r.status}))
"""

HF_TRANSFER_CHILD = """
import json, sys, time
import hf_transfer
url, dest, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
hf_transfer.download(url, dest, max_files=workers, chunk_size=10 * 1024 * 1024)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt}))
"""


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def timed(argv: list[str], **kw) -> tuple[float, int, str]:
    """Run a child; (wall seconds, its peak RSS in KiB, stdout).

    The peak is the child's VmHWM, sampled every 20 ms until it exits (VmHWM is monotonic and, unlike
    getrusage's ru_maxrss, starts afresh at exec, so it does not count the forking Python parent)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, **kw)
    peak = 0
    while proc.poll() is None:
        hwm = _vm_hwm_kib(proc.pid)
        if hwm:
            peak = max(peak, hwm)
        time.sleep(0.02)
    dt = time.perf_counter() - t
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with exit code {proc.returncode}")
    return dt, peak, out


def _clear(dest: Path) -> None:
    """Remove a client's output (and its journal, lock...) right after its run: a file left dirty in the page
    cache would be written back by the kernel during the next client's run and bill it (curl does not fsync)."""
    for p in dest.parent.glob(dest.name + "*"):
        p.unlink()


def run_modelctl(url, dest: Path, size, sha, workers) -> dict:
    _clear(dest)
    dt, rss, out = timed([sys.executable, "-c", MODELCTL_CHILD, url, str(dest), str(size), sha, str(workers)],
                         cwd=REPO)
    _clear(dest)
    return {"seconds": json.loads(out)["seconds"], "peak_rss_kib": rss}


def run_hf_transfer(url, dest: Path, workers) -> dict | None:
    try:
        import hf_transfer  # noqa: F401
    except ImportError:
        return None
    dest.unlink(missing_ok=True)
    dt, rss, out = timed([sys.executable, "-c", HF_TRANSFER_CHILD, url, str(dest), str(workers)])
    _clear(dest)
    return {"seconds": json.loads(out)["seconds"], "peak_rss_kib": rss}


def run_curl(url, dest: Path, verify: bool = False, sha256sum: bool = False) -> dict | None:
    curl = shutil.which("curl")
    if curl is None:
        return None
    dest.unlink(missing_ok=True)
    dt, rss, _ = timed([curl, "-s", "-f", "-o", str(dest), url])
    if sha256sum:
        dt += timed(["sha256sum", str(dest)])[0]
    if verify:  # what a careful user does after curl: hash the file
        t = time.perf_counter()
        h = hashlib.sha256()
        with open(dest, "rb") as fh:
            for block in iter(lambda: fh.read(8 << 20), b""):
                h.update(block)
        dt += time.perf_counter() - t
    _clear(dest)
    return {"seconds": dt, "peak_rss_kib": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()
    size = args.size_mib << 20

    with tempfile.TemporaryDirectory(prefix="modelctl-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "srv").mkdir()
        sha = sparse_file(tmp / "srv" / "big.bin", size)
        small_size = size // 4
        small_sha = sparse_file(tmp / "srv" / "small.bin", small_size)
        server, base = serve(tmp / "srv")
        url = f"{base}/big.bin"
        load_before = os.getloadavg()
        results: dict[str, list[dict]] = {"curl": [], "curl+sha256": [], "curl && sha256sum": [], "modelctl": [],
                                          "modelctl (no hash)": [], "modelctl (1 stream)": [], "hf_transfer": []}
        for i in range(args.repeat):      # interleaved, so load changes hit every client alike
            c = run_curl(url, tmp / "curl.bin")
            if c:
                results["curl"].append(c)
                results["curl+sha256"].append(run_curl(url, tmp / "curl.bin", verify=True))
                if shutil.which("sha256sum"):
                    results["curl && sha256sum"].append(run_curl(url, tmp / "curl.bin", sha256sum=True))
            results["modelctl"].append(run_modelctl(url, tmp / "mc.bin", size, sha, args.workers))
            results["modelctl (no hash)"].append(run_modelctl(url, tmp / "mc.bin", size, "", args.workers))
            results["modelctl (1 stream)"].append(run_modelctl(url, tmp / "mc.bin", 0, sha, args.workers))
            h = run_hf_transfer(url, tmp / "hft.bin", args.workers)
            if h:
                results["hf_transfer"].append(h)
            for f in ("curl.bin", "mc.bin", "hft.bin"):
                (tmp / f).unlink(missing_ok=True)
        small = run_modelctl(f"{base}/small.bin", tmp / "mc-small.bin", small_size, small_sha, args.workers)
        server.shutdown()

    mib = size / 2**20
    print(f"file: {mib:.0f} MiB sparse, loopback, {os.cpu_count()} CPUs, workers={args.workers}, "
          f"repeats={args.repeat} (median); load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    ref = statistics.median(r["seconds"] for r in results["curl"]) if results["curl"] else None
    ref_v = statistics.median(r["seconds"] for r in results["curl+sha256"]) if results["curl+sha256"] else None
    for name, runs in results.items():
        if not runs:
            print(f"{name:20} not available")
            continue
        secs = statistics.median(r["seconds"] for r in runs)
        rss = max(r["peak_rss_kib"] for r in runs) / 1024
        ratio = f"{ref / secs:5.2f}x curl, {ref_v / secs:5.2f}x curl+sha256" if ref else ""
        note = "  (incl. sha256 verify)" if name in ("modelctl", "modelctl (1 stream)") else ""
        print(f"{name:20} {mib / secs:8.0f} MiB/s  {secs:6.2f} s  peak RSS {rss:6.1f} MiB  {ratio}{note}")
    print(f"modelctl peak RSS: {small['peak_rss_kib'] / 1024:.1f} MiB for {small_size >> 20} MiB, "
          f"{max(r['peak_rss_kib'] for r in results['modelctl']) / 1024:.1f} MiB for {size >> 20} MiB")


if __name__ == "__main__":
    main()
