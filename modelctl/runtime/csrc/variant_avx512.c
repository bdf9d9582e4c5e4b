/* the avx512 variant of the kernels (compiled by setup.py with -march=x86-64-v4 -mavx512vnni) */
#define MC_ISA_AVX512 1
#define MC_PYINIT PyInit__mc_avx512
#include "mc_variant.c"
