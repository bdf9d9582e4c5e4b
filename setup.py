"""Builds the bundled runtime's compiled parts.

- ``modelctl/runtime/_kernels.pyx``, ``_ops.pyx``: the Cython glue, compiled once for the
  platform's baseline (no -march): argument handling, threads, no arithmetic of its own.
- ``modelctl/runtime/csrc/variant_<name>.c``: the kernels (csrc/mc_kernels.h, mc_ops.h) compiled
  once per instruction set this platform may have (VARIANTS), each a small extension module
  exporting a function table.  At import modelctl picks the best one the CPU runs
  (modelctl/runtime/variants.py), so an install built on one machine runs on any other of its
  architecture.  All of them compile in parallel.

MODELCTL_KERNELS_BUILD=generic,avx2 (a comma-separated list) builds only those variants (for a
quicker development build); generic is always built.
"""

import os
import platform
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = "modelctl/runtime/csrc"
# variant -> compiler flags, per architecture, best last (modelctl/runtime/variants.py knows the same names)
VARIANTS = {
    "x86_64": {"generic": [], "avx2": ["-march=x86-64-v3"], "avxvnni": ["-march=x86-64-v3", "-mavxvnni"],
               "avx512": ["-march=x86-64-v4", "-mavx512vnni"]},
    "aarch64": {"generic": [], "neon": ["-march=armv8.2-a+dotprod"]},
}
ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}

COMMON = ["-O3", "-fopenmp", "-fno-math-errno", "-Wno-psabi"]
# The kernels must not fuse a*b+c into an FMA: their dequantization reproduces gguf-py's NumPy
# reference bit for bit, and every variant gives the same floats as the generic one.
KERNEL = ["-ffp-contract=off"]


def arch() -> str:
    machine = platform.machine().lower()
    return ARCH_ALIASES.get(machine, machine)


def variants() -> dict:
    table = VARIANTS.get(arch(), {"generic": []})
    wanted = os.environ.get("MODELCTL_KERNELS_BUILD", "")
    if wanted:
        names = {"generic"} | {w.strip() for w in wanted.split(",") if w.strip()}
        table = {k: v for k, v in table.items() if k in names}
    return table


def extensions():
    sources = sorted(Path("modelctl/runtime").glob("*.pyx"))
    if not sources:
        return []
    import numpy
    from Cython.Build import cythonize

    headers = [str(h) for h in sorted(Path(CSRC).rglob("*.h"))]
    glue = cythonize([
        Extension(
            f"modelctl.runtime.{src.stem}",
            [str(src)],
            depends=headers,
            include_dirs=[numpy.get_include(), CSRC],
            extra_compile_args=COMMON,
            extra_link_args=["-fopenmp"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for src in sources
    ], language_level=3, compiler_directives={"boundscheck": False, "wraparound": False})
    kernels = [
        Extension(
            f"modelctl.runtime._mc_{name}",
            [f"{CSRC}/variant_{name}.c"],
            depends=headers + [f"{CSRC}/mc_variant.c"],
            include_dirs=[CSRC],
            extra_compile_args=COMMON + KERNEL + flags,
            extra_link_args=["-fopenmp"],
            # a compiler too old for an instruction set skips that variant (a warning, not a failure)
            optional=name != "generic",
        )
        for name, flags in variants().items()
    ]
    # the slowest first, so that the parallel build ends sooner
    return sorted(kernels, key=lambda e: e.name.endswith("generic")) + glue


class ParallelBuildExt(build_ext):
    """build_ext compiling the extensions in parallel (one per CPU) unless told otherwise."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


if sys.platform == "darwin":  # Apple clang has no -fopenmp by default
    os.environ.setdefault("CC", "clang")

setup(ext_modules=extensions(), cmdclass={"build_ext": ParallelBuildExt})
