/* The SIMD contract on x86-64-v3 with AVX-VNNI (-march=x86-64-v3 -mavxvnni: Intel Alder Lake and
 * later, AMD Zen 5): the AVX2 layer with its byte dots done by the 256-bit VEX vpdpbusd / vpdpwssd.
 * Meanings: CONTRACT.md. */
#ifndef MC_ARCH_AVXVNNI_H
#define MC_ARCH_AVXVNNI_H

#if !defined(__AVXVNNI__) || !defined(__AVX2__)
#error "arch/avxvnni.h needs -march=x86-64-v3 -mavxvnni"
#endif
#include <immintrin.h>

#define MC_ISA_NAME "avxvnni"
#define MC_S8_BIAS 128   /* vpdpbusd multiplies unsigned by signed bytes */

#define MC_HAVE_DOT4_U7
#define MC_HAVE_DOT4_S8
#define MC_HAVE_DOT4_SC
typedef union { mc_u8x64 v; __m256i h[2]; } mc_halves_;
#define MC_LO_(x) (((mc_halves_){.v = (mc_u8x64)(x)}).h[0])
#define MC_HI_(x) (((mc_halves_){.v = (mc_u8x64)(x)}).h[1])
static inline mc_i32x16 mc_dot4_u7(mc_i32x16 acc, mc_u8x64 u, mc_i8x64 s) {
    const __m256i lo = _mm256_dpbusd_avx_epi32(MC_LO_(acc), MC_LO_(u), MC_LO_(s));
    const __m256i hi = _mm256_dpbusd_avx_epi32(MC_HI_(acc), MC_HI_(u), MC_HI_(s));
    return (mc_i32x16)((mc_halves_){.h = {lo, hi}}).v;
}
static inline mc_i32x16 mc_dot4_s8(mc_i32x16 acc, mc_u8x64 wb, mc_i8x64 s) { return mc_dot4_u7(acc, wb, s); }
static inline mc_i32x16 mc_dot4_sc(mc_i32x16 acc, mc_u8x64 u, mc_i8x64 s, mc_i16x32 sc) {
    const __m256i lo = _mm256_dpwssd_avx_epi32(MC_LO_(acc), _mm256_maddubs_epi16(MC_LO_(u), MC_LO_(s)), MC_LO_(sc));
    const __m256i hi = _mm256_dpwssd_avx_epi32(MC_HI_(acc), _mm256_maddubs_epi16(MC_HI_(u), MC_HI_(s)), MC_HI_(sc));
    return (mc_i32x16)((mc_halves_){.h = {lo, hi}}).v;
}
#undef MC_LO_
#undef MC_HI_

#include "avx2.h"

#endif /* MC_ARCH_AVXVNNI_H */
