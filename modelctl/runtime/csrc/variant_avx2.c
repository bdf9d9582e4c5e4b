/* the avx2 variant of the kernels (compiled by setup.py with -march=x86-64-v3) */
#define MC_ISA_AVX2 1
#define MC_PYINIT PyInit__mc_avx2
#include "mc_variant.c"
