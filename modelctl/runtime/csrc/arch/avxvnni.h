/* The SIMD contract on x86-64-v3 with AVX-VNNI (-march=x86-64-v3 -mavxvnni: Intel Alder Lake and
 * later, AMD Zen 5): the AVX2 layer (32-byte vectors) with its byte dots done by the VEX vpdpbusd /
 * vpdpwssd.  Meanings: CONTRACT.md. */
#ifndef MC_ARCH_AVXVNNI_H
#define MC_ARCH_AVXVNNI_H

#include <immintrin.h>
#if defined(__AVXVNNI__) && defined(__AVX2__)
#define MC_DPBUSD_ _mm256_dpbusd_avx_epi32
#define MC_DPWSSD_ _mm256_dpwssd_avx_epi32
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__)
/* the same instructions, EVEX-encoded (-march=x86-64-v3 -mavx512vnni -mavx512vl): so that this layer
 * runs, and is tested (tests/test_simd_qemu.py), on AVX-512 VNNI CPUs without AVX-VNNI (AMD Zen 4),
 * since qemu-x86_64 7.2 does not decode AVX-VNNI */
#define MC_DPBUSD_ _mm256_dpbusd_epi32
#define MC_DPWSSD_ _mm256_dpwssd_epi32
#else
#error "arch/avxvnni.h needs -march=x86-64-v3 -mavxvnni"
#endif

#define MC_ISA_NAME "avxvnni"
#define MC_VB 32
#define MC_S8_BIAS 128   /* vpdpbusd multiplies unsigned by signed bytes */
#include "../mc_vec.h"

#define MC_HAVE_DOT4_U7
static inline mc_i32v mc_dot4_u7(mc_i32v acc, mc_u8v u, mc_i8v s) {
    return (mc_i32v)MC_DPBUSD_((__m256i)acc, (__m256i)u, (__m256i)s);
}

#define MC_HAVE_DOT4_S8
static inline mc_i32v mc_dot4_s8(mc_i32v acc, mc_u8v wb, mc_i8v s) { return mc_dot4_u7(acc, wb, s); }

#define MC_HAVE_DOT4_SC
static inline mc_i32v mc_dot4_sc(mc_i32v acc, mc_u8v u, mc_i8v s, mc_i16v sc) {
    return (mc_i32v)MC_DPWSSD_((__m256i)acc, _mm256_maddubs_epi16((__m256i)u, (__m256i)s), (__m256i)sc);
}

#undef MC_DPBUSD_
#undef MC_DPWSSD_

#include "avx2.h"

#endif /* MC_ARCH_AVXVNNI_H */
