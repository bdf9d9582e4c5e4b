"""This machine's memory read bandwidth: what bounds token generation on a CPU.

Generating one token reads every weight once, so tokens/s is about bandwidth / model bytes.  The figure
comes from, first found: ``$MODELCTL_MEM_BANDWIDTH`` (a size per second: ``20GB``, ``12GiB``), the cache
(``$MODELCTL_CACHE/machine.json``, one probe per CPU model and core count), else a probe: the runtime's
memory-read kernel over a buffer far larger than the CPU caches, best of a few reads (about 0.3 s, once).
"""

from __future__ import annotations

import json
import os
import time

from modelctl.core.errors import ModelctlError, UsageError
from modelctl.core.units import parse_size

ENV = "MODELCTL_MEM_BANDWIDTH"
PROBE_BYTES = 256 << 20
PROBE_REPEAT = 3
CACHE_FILE = "machine.json"


def from_env() -> float | None:
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    try:
        value = parse_size(text.removesuffix("/s"))
    except ValueError as exc:
        raise UsageError(f"{ENV}: {exc}", hint="e.g. MODELCTL_MEM_BANDWIDTH=20GB (bytes per second)") from None
    if value <= 0:
        raise UsageError(f"{ENV} must be positive")
    return float(value)


def machine_key() -> str:
    """The CPU model and the CPUs this process may use: a probe holds for the same pair."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count() or 1
    return f"{model} x{ncpu}"


def probe(nbytes: int = PROBE_BYTES, repeat: int = PROBE_REPEAT) -> float:
    """Bytes per second read from memory (the best of ``repeat`` reads of ``nbytes``)."""
    import numpy as np

    from modelctl.runtime.kernels import _kernels, default_threads

    buf = np.ones(int(nbytes), dtype=np.uint8)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        _kernels.read_memory(buf, default_threads())
        best = min(best, time.perf_counter() - t)
    return buf.nbytes / max(best, 1e-9)


def _cache_path():
    from modelctl.hub.pull import modelctl_cache

    return modelctl_cache() / CACHE_FILE


def memory_bandwidth() -> tuple[float, str]:
    """(bytes per second, where the figure comes from)."""
    env = from_env()
    if env is not None:
        return env, ENV
    key, path = machine_key(), _cache_path()
    try:
        cached = json.loads(path.read_text(encoding="utf-8")).get("memory_bandwidth", {})
    except (OSError, ValueError, AttributeError):
        cached = {}
    value = cached.get(key) if isinstance(cached, dict) else None
    if isinstance(value, (int, float)) and value > 0:
        return float(value), "measured"
    value = probe()
    try:
        from modelctl.core.atomicfile import write_text_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps({"memory_bandwidth": {**cached, key: value}}, indent=1) + "\n")
    except (OSError, ModelctlError):
        pass   # a read-only cache: probe again next time
    return value, "measured"
