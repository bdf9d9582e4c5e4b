"""Which compiled variant of the kernels runs on this CPU.

An install compiles the kernels once per instruction set its architecture may have
(setup.py); this module picks the best one the CPU supports, reading the CPU's features from
``/proc/cpuinfo`` (Linux: the kernel lists only what the OS enables, e.g. AVX-512 state saved by
XSAVE; on AArch64 Linux the AT_HWCAP bits of ``/proc/self/auxv``) or ``sysctl`` (macOS), and never
imports a variant the CPU lacks.
``MODELCTL_KERNELS=<variant>`` forces one; a variant this CPU cannot run, or one not built for
this architecture, is refused with a clear error.

Light on purpose: no numpy, no compiled code until ``load``; ``modelctl --version`` uses ``choose``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform
import struct
import subprocess
import sys

from modelctl.core.errors import UsageError

ENV = "MODELCTL_KERNELS"

# per architecture, best first: variant -> the CPU features it needs (Linux /proc/cpuinfo names).
# x86-64-v3 is AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT (abm), MOVBE; v4 adds AVX-512 F/BW/CD/DQ/VL.
_V3 = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})
VARIANTS = {
    "x86_64": {
        "avx512": _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512_vnni"},
        "avxvnni": _V3 | {"avx_vnni"},
        "avx2": _V3,
        "generic": frozenset(),
    },
    "aarch64": {
        "neon": frozenset({"asimd", "asimddp"}),
        "generic": frozenset(),
    },
}
ALL = ("generic", "avx2", "avxvnni", "avx512", "neon")
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}

# macOS sysctl names -> the Linux names above
_SYSCTL_X86 = {"AVX1.0": "avx", "AVX2": "avx2", "BMI1": "bmi1", "BMI2": "bmi2", "F16C": "f16c", "FMA": "fma",
               "LZCNT": "abm", "MOVBE": "movbe", "XSAVE": "xsave", "AVX512F": "avx512f", "AVX512BW": "avx512bw",
               "AVX512CD": "avx512cd", "AVX512DQ": "avx512dq", "AVX512VL": "avx512vl",
               "AVX512VNNI": "avx512_vnni", "AVXVNNI": "avx_vnni"}


class KernelsError(UsageError):
    """A forced variant of the kernels that this CPU or this install cannot run."""


def arch() -> str:
    machine = platform.machine().lower()
    return _ARCH_ALIASES.get(machine, machine)


def _proc_cpuinfo() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def _sysctl() -> set[str]:
    def read(name: str) -> str:
        try:
            return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    if arch() == "aarch64":
        return {"asimd", "asimddp"} if read("hw.optional.arm.FEAT_DotProd").strip() == "1" else {"asimd"}
    words = (read("machdep.cpu.features") + " " + read("machdep.cpu.leaf7_features")).upper().split()
    return {_SYSCTL_X86[w] for w in words if w in _SYSCTL_X86}


# AArch64 Linux: the kernel's hardware capability bits (AT_HWCAP in the auxiliary vector), which
# qemu-user reports for the emulated CPU where /proc/cpuinfo describes the host
_AT_HWCAP = 16
_HWCAP_AARCH64 = {"asimd": 1 << 1, "asimddp": 1 << 20}


def hwcap_features(auxv: bytes) -> set[str]:
    """The feature names whose AT_HWCAP bits an AArch64 auxiliary vector (/proc/self/auxv) sets."""
    words = struct.unpack(f"={len(auxv) // 8}Q", auxv[: len(auxv) // 8 * 8])
    hwcap = dict(zip(words[::2], words[1::2])).get(_AT_HWCAP, 0)
    return {name for name, bit in _HWCAP_AARCH64.items() if hwcap & bit}


def _proc_auxv() -> set[str]:
    try:
        with open("/proc/self/auxv", "rb") as f:
            return hwcap_features(f.read())
    except OSError:
        return set()


@functools.lru_cache(maxsize=1)
def cpu_features() -> frozenset[str]:
    """The CPU's feature names as Linux spells them (empty where they cannot be read: generic only)."""
    if sys.platform.startswith("linux"):
        if arch() == "aarch64":
            return frozenset(_proc_auxv() or _proc_cpuinfo())
        return frozenset(_proc_cpuinfo())
    if sys.platform == "darwin":
        return frozenset(_sysctl())
    return frozenset()


def built() -> tuple[str, ...]:
    """The variants this install has, best first (found without importing them)."""
    return tuple(v for v in VARIANTS.get(arch(), {"generic": frozenset()})
                 if importlib.util.find_spec(f"modelctl.runtime._mc_{v}") is not None)


def runnable() -> tuple[str, ...]:
    """The built variants this CPU can run, best first."""
    need = VARIANTS.get(arch(), {})
    have = cpu_features()
    return tuple(v for v in built() if need.get(v, frozenset()) <= have)


def choose(env: dict | None = None) -> str:
    """The variant to run: MODELCTL_KERNELS if set (checked), else the best this CPU runs."""
    env = os.environ if env is None else env
    forced = env.get(ENV, "").strip().lower()
    ok = runnable()
    if not forced:
        if not ok:
            raise KernelsError("this install has no compiled kernels",
                               hint="reinstall modelctl so that they are compiled: pip install --force-reinstall .")
        return ok[0]
    if forced not in ALL:
        raise KernelsError(f"{ENV}={forced!r} is not a variant of the kernels",
                           hint=f"use one of {', '.join(ALL)}, or unset {ENV}")
    if forced not in VARIANTS.get(arch(), {}):
        raise KernelsError(f"{ENV}={forced}: that variant is not for this {arch()} CPU",
                           hint=f"this CPU runs {', '.join(ok) or 'none'}")
    if forced not in built():
        raise KernelsError(f"{ENV}={forced}: this install has no {forced} kernels (the compiler could not build them)",
                           hint=f"use one of {', '.join(ok) or 'none'}")
    if forced not in ok:
        missing = sorted(VARIANTS[arch()][forced] - cpu_features())
        raise KernelsError(f"{ENV}={forced}: this CPU lacks {', '.join(missing)}",
                           hint=f"this CPU runs {', '.join(ok)}")
    return forced


def describe() -> str:
    """The variant that would run, for --version: its name, or "none compiled" (a forced variant this
    CPU or install cannot run is an error, as everywhere)."""
    if not os.environ.get(ENV, "").strip() and not runnable():
        return "none compiled"
    return choose()


def load(name: str):
    """The compiled module of variant ``name`` (its ``table`` capsule feeds _kernels and _ops).
    Only call with a name from ``runnable()`` or ``choose()``."""
    if name not in runnable():
        raise KernelsError(f"the {name} kernels cannot run here", hint=f"this CPU runs {', '.join(runnable())}")
    return importlib.import_module(f"modelctl.runtime._mc_{name}")
