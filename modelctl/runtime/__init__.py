"""modelctl's bundled inference runtime: NumPy plus Cython kernels on GGUF quantized blocks."""

import os

# How long an idle OpenMP thread spins before it sleeps (GCC's libgomp reads this when the compiled
# kernels load it).  Its default, 300,000 spins (milliseconds), keeps a thread burning its core between
# two kernels; on a machine where anything else runs, the thread that has work then waits for that core
# and a 2-thread token takes several times longer.  A short spin bridges the gaps between one token's
# kernels (tens of microseconds) and then yields.  OMP_WAIT_POLICY or GOMP_SPINCOUNT set by the user win.
SPIN_COUNT = "20000"
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
