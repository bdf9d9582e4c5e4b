/* the neon variant of the kernels (compiled by setup.py with -march=armv8.2-a+dotprod) */
#define MC_ISA_NEON 1
#define MC_PYINIT PyInit__mc_neon
#include "mc_variant.c"
