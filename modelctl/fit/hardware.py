"""What memory this machine offers a model: RAM (and its container limit) and GPUs.

No extra dependency: Linux ``/proc`` and ``/sys``, ``nvidia-smi`` (or NVML when
``pynvml`` happens to be importable), AMD's sysfs ``mem_info_vram_*`` files, and
``sysctl`` on macOS.  Every probe takes its paths / command runner as arguments
so tests can point it at fake trees and fake tools; ``detect()`` wires them up
with the real ones.  Users override any figure (``--ram``, ``--vram``, ``--gpus``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from modelctl.core.errors import UsageError
from modelctl.core.units import parse_size

# A cgroup v1 "no limit" is a huge number (PAGE_COUNTER_MAX * page size); anything
# beyond this is treated as unlimited.
CGROUP_UNLIMITED = 1 << 60

# Apple silicon: Metal's recommendedMaxWorkingSetSize is about 2/3 of RAM up to
# 36 GiB and about 3/4 above (what llama.cpp reports as the Metal free memory).
APPLE_GPU_FRACTION_SMALL = 2 / 3
APPLE_GPU_FRACTION_LARGE = 3 / 4
APPLE_LARGE_RAM = 36 << 30

NVIDIA_SMI_QUERY = ["--query-gpu=index,uuid,name,memory.total,memory.free", "--format=csv,noheader,nounits"]

Runner = Callable[[Sequence[str]], "str | None"]


@dataclass
class GPU:
    name: str
    vram_total_bytes: int
    vram_free_bytes: int
    vendor: str = "unknown"   # nvidia | amd | apple | user
    index: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "vram_total_bytes": self.vram_total_bytes,
                "vram_free_bytes": self.vram_free_bytes}


@dataclass
class Machine:
    ram_total_bytes: int
    ram_available_bytes: int
    gpus: list[GPU] = field(default_factory=list)
    unified_memory: bool = False        # Apple: the GPU budget is carved out of RAM
    notes: list[str] = field(default_factory=list)

    @property
    def vram_free_bytes(self) -> int:
        return sum(g.vram_free_bytes for g in self.gpus)

    def to_dict(self) -> dict:
        return {"ram_total_bytes": self.ram_total_bytes, "ram_available_bytes": self.ram_available_bytes,
                "gpus": [g.to_dict() for g in self.gpus]}


# ---------------------------------------------------------------------------
# small readers
# ---------------------------------------------------------------------------


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


def run_command(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 10.0) -> str | None:
    """Run a probe command found on PATH; its stdout, or None when missing or failing."""
    env = dict(os.environ if env is None else env)
    exe = shutil.which(argv[0], path=env.get("PATH"))
    if exe is None:
        return None
    try:
        res = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


# ---------------------------------------------------------------------------
# RAM
# ---------------------------------------------------------------------------


def read_meminfo(path: Path) -> tuple[int, int] | None:
    """(MemTotal, MemAvailable) in bytes from ``/proc/meminfo``.

    Kernels before 3.14 have no MemAvailable: fall back to MemFree + Buffers + Cached.
    """
    text = _read_text(path)
    if text is None:
        return None
    kb: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            kb[key.strip()] = int(parts[0]) * 1024
    if "MemTotal" not in kb:
        return None
    avail = kb.get("MemAvailable")
    if avail is None:
        avail = kb.get("MemFree", 0) + kb.get("Buffers", 0) + kb.get("Cached", 0)
    return kb["MemTotal"], min(avail, kb["MemTotal"])


def _cgroup_paths(proc_self_cgroup: Path) -> tuple[str | None, str | None]:
    """(v2 path, v1 memory-controller path) from ``/proc/self/cgroup``."""
    v2 = v1 = None
    for line in (_read_text(proc_self_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _ancestors(root: Path, rel: str) -> list[Path]:
    """``root/a/b``, ``root/a``, ``root`` for rel ``/a/b`` (never leaving ``root``)."""
    parts = [p for p in rel.split("/") if p and p not in (".", "..")]
    return [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _cgroup_stat(path: Path, key: str) -> int:
    for line in (_read_text(path) or "").splitlines():
        k, _, v = line.partition(" ")
        if k == key and v.strip().isdigit():
            return int(v)
    return 0


def cgroup_memory(proc_self_cgroup: Path, cgroup_root: Path) -> tuple[int, int] | None:
    """(limit, available) of the tightest cgroup memory limit around this process, or None.

    v2: ``memory.max`` / ``memory.current`` up the hierarchy; v1:
    ``memory/…/memory.limit_in_bytes`` / ``memory.usage_in_bytes``.  Reclaimable
    page cache (``inactive_file``) counts as available, as in MemAvailable.
    """
    v2, v1 = _cgroup_paths(proc_self_cgroup)
    best: tuple[int, int] | None = None
    if v2 is not None:
        for d in _ancestors(cgroup_root, v2):
            raw = (_read_text(d / "memory.max") or "").strip()
            if not raw.isdigit():
                continue
            limit = int(raw)
            used = _read_int(d / "memory.current") or 0
            reclaimable = _cgroup_stat(d / "memory.stat", "inactive_file")
            avail = max(0, min(limit, limit - used + reclaimable))
            if best is None or limit < best[0]:
                best = (limit, avail)
    if v1 is not None:
        for d in _ancestors(cgroup_root / "memory", v1):
            limit = _read_int(d / "memory.limit_in_bytes")
            if limit is None or limit >= CGROUP_UNLIMITED:
                continue
            used = _read_int(d / "memory.usage_in_bytes") or 0
            reclaimable = _cgroup_stat(d / "memory.stat", "total_inactive_file")
            avail = max(0, min(limit, limit - used + reclaimable))
            if best is None or limit < best[0]:
                best = (limit, avail)
    return best


def linux_ram(proc_root: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> tuple[int, int, list[str]]:
    notes: list[str] = []
    mem = read_meminfo(proc_root / "meminfo")
    if mem is None:
        return 0, 0, ["could not read /proc/meminfo: pass --ram"]
    total, avail = mem
    cg = cgroup_memory(proc_root / "self" / "cgroup", cgroup_root)
    if cg is not None and cg[0] < total:
        total = cg[0]
        avail = min(avail, cg[1])
        notes.append(f"RAM limited by the container's cgroup to {total} bytes")
    return total, avail, notes


def apple_ram(run: Runner) -> tuple[int, int] | None:
    out = run(["sysctl", "-n", "hw.memsize"])
    if not out or not out.strip().isdigit():
        return None
    total = int(out.strip())
    avail = total
    vm = run(["vm_stat"])
    if vm:
        page = 16384 if "page size of 16384" in vm else 4096
        pages = 0
        for line in vm.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable"):
                val = val.strip().rstrip(".")
                if val.isdigit():
                    pages += int(val)
        if pages:
            avail = min(total, pages * page)
    return total, avail


# ---------------------------------------------------------------------------
# GPUs
# ---------------------------------------------------------------------------


def parse_visible_devices(value: str | None) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES``: None = all visible; [] = none; else indices/UUIDs in order."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    out: list[str] = []
    for v in items:
        if v == "" or v.startswith("-"):
            break  # CUDA stops at the first invalid entry
        out.append(v)
    return out


def _filter_visible(gpus: list[tuple[str, GPU]], visible: list[str] | None) -> list[GPU]:
    if visible is None:
        return [g for _, g in gpus]
    chosen = []
    for v in visible:
        for uuid, g in gpus:
            if (v.isdigit() and int(v) == g.index) or (not v.isdigit() and uuid.startswith(v)):
                if g not in chosen:
                    chosen.append(g)
                break
    return chosen


def nvidia_smi_gpus(run: Runner) -> list[tuple[str, GPU]] | None:
    """GPUs from ``nvidia-smi --query-gpu`` (sizes in MiB), or None when it is not there."""
    out = run(["nvidia-smi", *NVIDIA_SMI_QUERY])
    if out is None:
        return None
    gpus = []
    for line in out.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != 5:
            continue
        idx, uuid, name, total, free = cols
        if not (idx.isdigit() and total.isdigit() and free.isdigit()):
            continue  # "[N/A]" and the like
        gpus.append((uuid, GPU(name, int(total) << 20, int(free) << 20, "nvidia", int(idx))))
    return gpus


def nvml_gpus() -> list[tuple[str, GPU]] | None:
    """GPUs through NVML when ``pynvml`` (nvidia-ml-py) is importable."""
    try:
        import pynvml  # type: ignore
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = pynvml.nvmlDeviceGetName(h)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            name = name.decode() if isinstance(name, bytes) else name
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            gpus.append((uuid, GPU(name, int(mem.total), int(mem.free), "nvidia", i)))
        return gpus
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def amd_gpus(sys_root: Path = Path("/sys")) -> list[GPU]:
    """AMD GPUs from ``/sys/class/drm/card*/device/mem_info_vram_{total,used}``."""
    gpus = []
    drm = sys_root / "class" / "drm"
    try:
        cards = sorted((p for p in drm.iterdir() if p.name.startswith("card") and p.name[4:].isdigit()),
                       key=lambda p: int(p.name[4:]))
    except OSError:
        return []
    for card in cards:
        dev = card / "device"
        total = _read_int(dev / "mem_info_vram_total")
        if not total:
            continue
        used = _read_int(dev / "mem_info_vram_used") or 0
        name = (_read_text(dev / "product_name") or "").strip() or f"AMD GPU ({card.name})"
        gpus.append(GPU(name, total, max(0, total - used), "amd", len(gpus)))
    return gpus


def apple_gpu(ram_total: int) -> GPU:
    frac = APPLE_GPU_FRACTION_LARGE if ram_total > APPLE_LARGE_RAM else APPLE_GPU_FRACTION_SMALL
    budget = int(ram_total * frac)
    return GPU("Apple GPU (unified memory)", budget, budget, "apple", 0)


# ---------------------------------------------------------------------------
# the whole machine
# ---------------------------------------------------------------------------


def detect(*, proc_root: Path = Path("/proc"), sys_root: Path = Path("/sys"),
           cgroup_root: Path | None = None, env: Mapping[str, str] | None = None,
           platform: str | None = None, run: Runner | None = None, use_nvml: bool = True) -> Machine:
    """Probe this machine (or the fake one the arguments describe)."""
    env = dict(os.environ if env is None else env)
    platform = platform or sys.platform
    run = run or (lambda argv: run_command(argv, env=env))
    cgroup_root = cgroup_root or (sys_root / "fs" / "cgroup")
    notes: list[str] = []

    if platform == "darwin":
        ram = apple_ram(run)
        if ram is None:
            return Machine(0, 0, [], True, ["could not read hw.memsize: pass --ram"])
        total, avail = ram
        return Machine(total, avail, [apple_gpu(total)], True, notes)

    total, avail, ram_notes = linux_ram(proc_root, cgroup_root)
    notes += ram_notes
    visible = parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES"))
    nv = (nvml_gpus() if use_nvml else None)
    if nv is None:
        nv = nvidia_smi_gpus(run)
    gpus = _filter_visible(nv or [], visible)
    if visible == [] and nv:
        notes.append("CUDA_VISIBLE_DEVICES hides every NVIDIA GPU")
    amd = amd_gpus(sys_root)
    hip = parse_visible_devices(env.get("HIP_VISIBLE_DEVICES") or env.get("ROCR_VISIBLE_DEVICES"))
    if hip is not None:
        amd = [g for g in amd if str(g.index) in hip]
    gpus += amd
    return Machine(total, avail, gpus, False, notes)


def apply_overrides(machine: Machine, *, ram: str | None = None, vram: str | None = None,
                    gpus: str | None = None) -> Machine:
    """The user's ``--ram``, ``--vram`` and ``--gpus`` on top of what was detected.

    ``--ram SIZE``: total and available RAM.  ``--vram SIZE``: every GPU has that
    much (alone, with no GPU detected: one GPU of that size).  ``--gpus``: ``none``,
    ``all`` or a count N (with ``--vram``: N GPUs of that size).
    """
    m = replace(machine, gpus=list(machine.gpus), notes=list(machine.notes))

    def size(opt: str, text: str) -> int:
        try:
            return parse_size(text)
        except ValueError as exc:
            raise UsageError(f"{opt}: {exc}") from None

    if ram is not None:
        m.ram_total_bytes = m.ram_available_bytes = size("--ram", ram)
        if m.unified_memory and m.gpus and vram is None:
            m.gpus = [apple_gpu(m.ram_total_bytes)]
    count: int | None = None
    if gpus is not None:
        g = gpus.strip().lower()
        if g in ("none", "0", "cpu"):
            count = 0
        elif g == "all":
            count = None
        elif g.isdigit():
            count = int(g)
        else:
            raise UsageError(f"--gpus: expected none, all or a number, not {gpus!r}")
    if vram is not None:
        v = size("--vram", vram)
        n = 1 if count is None else count
        if m.unified_memory and n > 0:
            # Apple: --vram is the GPU's budget inside the same RAM
            m.gpus = [GPU(f"Apple GPU (--vram {vram})", v, v, "apple", 0)]
        else:
            m.gpus = [GPU(f"GPU (--vram {vram})", v, v, "user", i) for i in range(n)]
    elif count is not None:
        if count > len(m.gpus):
            raise UsageError(f"--gpus {count}: only {len(m.gpus)} GPU(s) detected",
                             hint="add --vram SIZE to describe GPUs that are not detected")
        m.gpus = m.gpus[:count]
    return m
