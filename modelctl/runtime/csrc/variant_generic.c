/* the generic variant of the kernels (plain C: the platform's baseline instructions) */
#define MC_PYINIT PyInit__mc_generic
#include "mc_variant.c"
