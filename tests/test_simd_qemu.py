"""The kernels' SIMD variants that this CPU cannot load, checked by a C driver under user-mode emulation.

The ARM builds (the NEON layer, and the generic layer as an aarch64 install compiles it) are
cross-compiled with Debian's gcc-aarch64-linux-gnu into a static test driver (tests/simd/driver.c)
and run under qemu-aarch64; the AVX-VNNI layer, which qemu cannot emulate, runs on this CPU where
it can (TARGETS), and is compiled everywhere.  The driver reads reference vectors written here with
test_kernels.py's references (gguf-py's dequantization, the float64 product with ggml's activation
quantization), applies test_kernels.py's checks and tolerances, and writes its products, which must
equal the generic layer's built for this machine bit for bit (CONTRACT.md).  Each build takes
setup.py's flags.  scripts/test.sh installs the tools when they are missing.
"""

from __future__ import annotations

import ast
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_kernels import FLOATS, KQUANTS, TOL_EXACT, TOL_X, TYPES, ggml_act_product, reference

from modelctl.gguf.quants import GGML_TYPES_BY_NAME
from modelctl.runtime import variants
from modelctl.runtime.synth import random_tensor

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "tests" / "simd" / "driver.c"
CSRC = REPO / "modelctl" / "runtime" / "csrc"
PACKAGES = "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"


def _setup_tables() -> dict:
    """setup.py's flag tables (read, not run: running setup.py builds)."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    return {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
            for t in n.targets if isinstance(t, ast.Name) and t.id in ("VARIANTS", "COMMON", "KERNEL")}


SETUP = _setup_tables()


@dataclass(frozen=True)
class Target:
    cc: str                  # the compiler
    cflags: tuple[str, ...]  # the layer (-DMC_ISA_<NAME>) and its instruction set
    run: tuple[str, ...]     # the emulator and its CPU; () to run on this machine


def _layer(arch: str, variant: str) -> tuple[str, ...]:
    """setup.py's flags for one variant, and the define that selects its layer."""
    define = () if variant == "generic" else (f"-DMC_ISA_{variant.upper()}",)
    return (*SETUP["VARIANTS"][arch][variant], *define)


QEMU_AARCH64 = ("qemu-aarch64", "-cpu", "max")
TARGETS = {
    "neon": Target("aarch64-linux-gnu-gcc", _layer("aarch64", "neon"), QEMU_AARCH64),
    "generic-aarch64": Target("aarch64-linux-gnu-gcc", _layer("aarch64", "generic"), QEMU_AARCH64),
}
# AVX-VNNI: qemu-x86_64 (7.2) does not decode it, so it runs here only on a CPU that has it, or, built
# with the same instructions EVEX-encoded (arch/avxvnni.h allows it), on one with AVX-512 VNNI + VL
AVXVNNI = _layer("x86_64", "avxvnni")
if variants.arch() == "x86_64" and "avx_vnni" in variants.cpu_features():
    TARGETS["avxvnni"] = Target("cc", AVXVNNI, ())
elif variants.arch() == "x86_64" and {"avx512_vnni", "avx512vl"} <= variants.cpu_features():
    evex = [f for f in AVXVNNI if f != "-mavxvnni"] + ["-mavx512vnni", "-mavx512vl"]
    TARGETS["avxvnni"] = Target("cc", tuple(evex), ())
# the reference every layer must equal: the generic layer for this machine's baseline
GENERIC = Target("cc", (), ())

# setup.py's flags for the kernels, with OpenMP's simd hints but not its runtime (a static driver,
# for qemu); warnings are errors
COMMON_CFLAGS = (*(f for f in SETUP["COMMON"] if f != "-fopenmp"), "-fopenmp-simd", *SETUP["KERNEL"],
                 "-static", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function")


def _shapes(name: str) -> list[tuple[int, int, int]]:
    """(rows, cols, activation rows): a row of several 4-block groups plus a remainder, and a
    one-block row; six activation rows make a tile of four and a tile of two."""
    if name in KQUANTS:
        return [(13, 512, 6), (2, 256, 1)]
    if name in FLOATS:
        return [(13, 200, 6), (3, 16, 1)]
    return [(13, 32 * 7, 6), (3, 32, 1)]


CASES = [(name, *shape) for name in TYPES for shape in _shapes(name)]


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


def write_vectors(path: Path) -> None:
    """The driver's input: every case of CASES (tests/simd/driver.c describes the layout)."""
    rng = np.random.default_rng(14)
    path.write_bytes(b"MCSIMD01" + np.uint32(len(CASES)).tobytes()
                     + b"".join(_case(*case, rng) for case in CASES))


@pytest.fixture(scope="module")
def vectors(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("simd") / "vectors.bin"
    write_vectors(path)
    return path


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.fail(f"{tool} is missing: install {PACKAGES} (apt-get install; scripts/test.sh does it as root)")
    return found


def _compile(t: Target, exe: Path) -> list[str]:
    """The command compiling the driver over one layer's kernels, as the package compiles them."""
    return [_require(t.cc), *COMMON_CFLAGS, *t.cflags, f"-I{CSRC}", str(DRIVER), "-o", str(exe), "-lm"]


@pytest.fixture(scope="module")
def drivers(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (the driver, the compiler's complaint or ""), for GENERIC and every target, compiled
    in parallel"""
    out = tmp_path_factory.mktemp("drivers")
    builds = {}
    for name, t in {"generic": GENERIC, **TARGETS}.items():
        exe = out / f"driver-{name}"
        builds[name] = exe, subprocess.Popen(_compile(t, exe), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             text=True)
    result = {}
    for name, (exe, p) in builds.items():
        log = p.communicate(timeout=600)[0]
        result[name] = exe, ("" if p.returncode == 0 and not log else f"{' '.join(p.args)}\n{log}")
    return result


def _driver(drivers, name: str) -> Path:
    exe, complaint = drivers[name]
    assert not complaint, complaint
    return exe


def run_driver(t: Target, exe: Path, vectors: Path, products: Path | None = None) -> subprocess.CompletedProcess:
    emulator = [_require(t.run[0]), *t.run[1:]] if t.run else []
    cmd = [*emulator, str(exe), str(vectors), *([str(products)] if products else [])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def generic_products(vectors, drivers) -> np.ndarray:
    exe = _driver(drivers, "generic")
    products = exe.with_name("products-generic.bin")
    r = run_driver(GENERIC, exe, vectors, products)
    assert r.returncode == 0, r.stdout + r.stderr
    return np.fromfile(products, dtype="<u4")


def _first_difference(a: np.ndarray, b: np.ndarray) -> str:
    """The first case whose products differ, by name and shape."""
    start = 0
    for name, rows, cols, ntok in CASES:
        end = start + rows * ntok
        if not np.array_equal(a[start:end], b[start:end]):
            return f"{name} {rows}x{cols}x{ntok}: {int((a[start:end] != b[start:end]).sum())} products differ"
        start = end
    return "none"


@pytest.mark.parametrize("variant", sorted(TARGETS))
def test_variant_under_emulation(variant, vectors, drivers, generic_products, tmp_path):
    r = run_driver(TARGETS[variant], _driver(drivers, variant), vectors, tmp_path / "products.bin")
    assert r.returncode == 0, f"{variant}:\n{r.stdout}\n{r.stderr}"
    assert f"driver: {len(CASES)} cases, 0 failing" in r.stdout, r.stdout
    assert "attention: 8 cases, 0 failing" in r.stdout, r.stdout
    assert r.stdout.count(": ok (") == len(CASES), r.stdout
    ours = np.fromfile(tmp_path / "products.bin", dtype="<u4")
    assert ours.size == generic_products.size
    assert np.array_equal(ours, generic_products), \
        f"{variant} differs from the generic layer: {_first_difference(ours, generic_products)}"


def test_driver_reports_a_wrong_result(vectors, drivers, tmp_path):
    """One bit of one expected dequantized weight flipped: the driver names the case and fails."""
    assert CASES[0][0] == "F32"
    _, rows, cols, ntok = CASES[0]
    data = bytearray(vectors.read_bytes())
    data[12 + 16 + 16 + rows * cols * 4 + ntok * cols * 4 + 5 * 4] ^= 1
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    r = run_driver(GENERIC, _driver(drivers, "generic"), bad)
    assert r.returncode == 1, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("F32") and "FAIL" in first and "dequantize: 1 rows differ" in first, r.stdout
    assert f"driver: {len(CASES)} cases, 1 failing" in r.stdout


def test_aarch64_features_come_from_the_auxiliary_vector():
    """AT_HWCAP (type 16) of /proc/self/auxv: asimd is bit 1, asimddp (SDOT) bit 20; qemu-aarch64
    reports the emulated CPU's there, while its /proc/cpuinfo describes the host."""
    auxv = struct.pack("=8Q", 6, 4096, 16, (1 << 20) | (1 << 1) | 1, 26, 1 << 20, 0, 0)
    assert variants.hwcap_features(auxv) == {"asimd", "asimddp"}
    assert variants.hwcap_features(struct.pack("=4Q", 16, 1 << 1, 0, 0)) == {"asimd"}
    assert variants.hwcap_features(b"") == set()


@pytest.mark.skipif(variants.arch() != "x86_64", reason="an x86-64 layer")
def test_avxvnni_layer_compiles():
    """The AVX-VNNI layer as setup.py builds it, on any x86-64 (the install skips a variant that
    does not compile, so nothing else would notice)."""
    cmd = [_require("cc"), "-fsyntax-only", *COMMON_CFLAGS, *AVXVNNI, f"-I{CSRC}", str(DRIVER)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not r.stderr, f"{' '.join(cmd)}\n{r.stderr}"
