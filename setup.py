"""Builds the bundled runtime's Cython kernels (modelctl/runtime/*.pyx).

Optimised for the installing machine (-O3 -march=native) with OpenMP.
Set MODELCTL_PORTABLE=1 for a build that runs on any x86-64 (or other) CPU.
"""

import os
import sys
from pathlib import Path

from setuptools import Extension, setup

PORTABLE = os.environ.get("MODELCTL_PORTABLE", "") not in ("", "0")

# Per-extension flags.  The quantized kernels must not fuse a*b+c into an FMA:
# their dequantization reproduces gguf-py's NumPy reference bit for bit.  Their
# static inline helpers pass generic vectors around, which GCC notes as an ABI
# change on targets without AVX (-Wpsabi): harmless, nothing is exported.
EXTRA_CFLAGS = {"_kernels": ["-ffp-contract=off", "-Wno-psabi"]}


def extensions():
    sources = sorted(Path("modelctl/runtime").glob("*.pyx"))
    if not sources:
        return []
    import numpy
    from Cython.Build import cythonize

    cflags = ["-O3", "-fopenmp", "-ffp-contract=fast", "-fno-math-errno"]
    if not PORTABLE:
        cflags.append("-march=native")
    exts = [
        Extension(
            f"modelctl.runtime.{src.stem}",
            [str(src)],
            depends=[str(h) for h in sorted(Path("modelctl/runtime").glob("*.h"))],
            include_dirs=[numpy.get_include(), "modelctl/runtime"],
            extra_compile_args=cflags + EXTRA_CFLAGS.get(src.stem, []),
            extra_link_args=["-fopenmp"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for src in sources
    ]
    return cythonize(exts, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False})


if sys.platform == "darwin":  # Apple clang has no -fopenmp by default
    os.environ.setdefault("CC", "clang")

setup(ext_modules=extensions())
