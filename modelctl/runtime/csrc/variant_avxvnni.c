/* the avxvnni variant of the kernels (compiled by setup.py with -march=x86-64-v3 -mavxvnni) */
#define MC_ISA_AVXVNNI 1
#define MC_PYINIT PyInit__mc_avxvnni
#include "mc_variant.c"
