"""The kernels' SIMD variants that this CPU cannot load, checked by a C driver under user-mode emulation.

The ARM variants are cross-compiled (Debian's gcc-aarch64-linux-gnu) into a static test driver
(tests/simd/driver.c) and run under qemu-aarch64; the driver reads reference vectors written here
with test_kernels.py's references (gguf-py's dequantization, the float64 product with ggml's
activation quantization) and applies test_kernels.py's checks and tolerances.  scripts/test.sh
installs the tools when they are missing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_kernels import FLOATS, KQUANTS, TOL_EXACT, TOL_X, TYPES, ggml_act_product, reference

from modelctl.quants import GGML_TYPES_BY_NAME
from modelctl.runtime.synth import random_tensor

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "tests" / "simd" / "driver.c"
KERNELS = REPO / "modelctl" / "runtime"
PACKAGES = "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"


@dataclass(frozen=True)
class Target:
    cc: str                 # the compiler
    cflags: tuple[str, ...]  # the variant's instruction set
    run: tuple[str, ...]     # the emulator and its CPU


TARGETS = {
    "neon": Target("aarch64-linux-gnu-gcc", ("-march=armv8.2-a+dotprod",), ("qemu-aarch64", "-cpu", "max")),
    "generic-aarch64": Target("aarch64-linux-gnu-gcc", ("-march=armv8-a",), ("qemu-aarch64", "-cpu", "max")),
}

# every build the package makes: optimised, vectorisation hints on, no FMA contraction
# (dequantization must match gguf-py bit for bit), warnings are errors
COMMON_CFLAGS = ("-O2", "-fopenmp-simd", "-ffp-contract=off", "-fno-math-errno", "-static",
                 "-Wall", "-Wextra", "-Werror", "-Wno-psabi", "-Wno-unused-function")


def _shapes(name: str) -> list[tuple[int, int, int]]:
    """(rows, cols, activation rows): a row of several 4-block groups plus a remainder, and a
    one-block row; six activation rows make a tile of four and a tile of two."""
    if name in KQUANTS:
        return [(13, 512, 6), (2, 256, 1)]
    if name in FLOATS:
        return [(13, 200, 6), (3, 16, 1)]
    return [(13, 32 * 7, 6), (3, 32, 1)]


def _case(name: str, rows: int, cols: int, ntok: int, rng: np.random.Generator) -> bytes:
    W = random_tensor(name, rows, cols, rng)
    Wd = reference(W)
    X = rng.standard_normal((ntok, cols), dtype=np.float32)
    if ntok > 2:
        X[1] *= 1e-3
        X[2, : cols // 2] = 0.0          # all-zero blocks
    absW = np.abs(Wd).astype(np.float64)
    exact = np.stack([ggml_act_product(W, Wd, x) for x in X])
    plain = np.stack([Wd.astype(np.float64) @ x.astype(np.float64) for x in X])
    scale = np.stack([absW @ np.abs(x).astype(np.float64) + 1e-30 for x in X])
    t = GGML_TYPES_BY_NAME[name]
    return b"".join([
        np.array([t.id, rows, cols, ntok], "<i4").tobytes(),
        np.array([TOL_X[name], TOL_EXACT], "<f8").tobytes(),
        W.data.tobytes(), X.astype("<f4").tobytes(), Wd.astype("<f4").tobytes(),
        exact.astype("<f8").tobytes(), plain.astype("<f8").tobytes(), scale.astype("<f8").tobytes(),
    ])


def write_vectors(path: Path) -> int:
    """Every supported type in every shape of _shapes; returns the number of cases."""
    rng = np.random.default_rng(14)
    cases = [_case(name, *shape, rng) for name in TYPES for shape in _shapes(name)]
    path.write_bytes(b"MCSIMD01" + np.uint32(len(cases)).tobytes() + b"".join(cases))
    return len(cases)


@pytest.fixture(scope="module")
def vectors(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("simd") / "vectors.bin"
    return path, write_vectors(path)


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.fail(f"{tool} is missing: install {PACKAGES} (apt-get install; scripts/test.sh does it as root)")
    return found


def build_driver(variant: str, out: Path) -> Path:
    """The driver over this variant's kernels, compiled as the package compiles them (warnings are errors)."""
    t = TARGETS[variant]
    exe = out / f"driver-{variant}"
    cmd = [_require(t.cc), *COMMON_CFLAGS, *t.cflags, f"-I{KERNELS}", str(DRIVER), "-o", str(exe), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not r.stderr, f"{' '.join(cmd)}\n{r.stderr}"
    return exe


@pytest.fixture(scope="module")
def drivers(tmp_path_factory):
    """variant -> its driver, built on first use"""
    out = tmp_path_factory.mktemp("drivers")
    built: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in built:
            built[variant] = build_driver(variant, out)
        return built[variant]
    return get


def run_driver(variant: str, exe: Path, path: Path) -> subprocess.CompletedProcess:
    t = TARGETS[variant]
    return subprocess.run([_require(t.run[0]), *t.run[1:], str(exe), str(path)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("variant", sorted(TARGETS))
def test_variant_under_emulation(variant, vectors, drivers):
    path, n = vectors
    r = run_driver(variant, drivers(variant), path)
    assert r.returncode == 0, f"{variant}:\n{r.stdout}\n{r.stderr}"
    assert f"driver: {n} cases, 0 failing" in r.stdout, r.stdout
    assert r.stdout.count(": ok (") == n, r.stdout


def test_driver_reports_a_wrong_result(vectors, drivers, tmp_path):
    """One bit of one expected dequantized weight flipped: the driver names the case and fails."""
    path, n = vectors
    data = bytearray(path.read_bytes())
    assert TYPES[0] == "F32"
    rows, cols, ntok = _shapes("F32")[0]   # the first case
    data[12 + 16 + 16 + rows * cols * 4 + ntok * cols * 4 + 5 * 4] ^= 1
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    r = run_driver("neon", drivers("neon"), bad)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].startswith("F32") and "FAIL" in r.stdout.splitlines()[0], r.stdout
    assert "dequantize: 1 rows differ" in r.stdout and f"driver: {n} cases, 1 failing" in r.stdout
