/* The SIMD contract on x86-64-v3 (AVX2, FMA, F16C; -march=x86-64-v3): native vectors of 32 bytes,
 * one ymm each (GCC keeps 64-byte generic vectors in memory here: measured 4x slower).  The byte
 * dots are vpmaddubsw (unsigned x signed byte pairs to int16, saturating: the contract's ranges
 * keep every pair below 2^15) and vpmaddwd.  arch/avxvnni.h reuses this layer with VEX vpdpbusd.
 * Meanings: CONTRACT.md. */
#ifndef MC_ARCH_AVX2_H
#define MC_ARCH_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "arch/avx2.h needs -march=x86-64-v3"
#endif
#include <immintrin.h>

#ifndef MC_ISA_NAME
#define MC_ISA_NAME "avx2"
#endif
#define MC_VB 32
#include "../mc_vec.h"

#define MC_HAVE_FP16
static inline float mc_fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t mc_fp32_to_fp16(float f) { return (uint16_t)_cvtss_sh(f, 0); }

#define MC_HAVE_F16V
static inline mc_f32v mc_f16v_to_f32(const uint8_t *p) {
    return (mc_f32v)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

#define MC_HAVE_BF16V
static inline mc_f32v mc_bf16v_to_f32(const uint8_t *p) {
    return (mc_f32v)_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16);
}

#define MC_HAVE_CAT16
#define MC_HAVE_CAT32
static inline mc_u8v mc_cat16(const mc_u8x16 *p) { return (mc_u8v)_mm256_set_m128i((__m128i)p[1], (__m128i)p[0]); }
static inline mc_u8v mc_cat32(const mc_u8x32 *p) { return p[0]; }

#define MC_HAVE_LUT16
static inline mc_u8v mc_lut16(mc_u8x16 table, mc_u8v idx) {
    return (mc_u8v)_mm256_shuffle_epi8(_mm256_broadcastsi128_si256((__m128i)table), (__m256i)idx);
}

#define MC_HAVE_QH_OR
static inline mc_u8v mc_qh_or(mc_u8v v, mc_u32x4 qh, int half) {
    /* 128-bit lane i gets qh[i] (vpermd), each byte the byte of it that holds its bit (vpshufb), tested */
    const __m256i q = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256((__m128i)qh),
                                                  _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    const long long a = half ? 0x0202020202020202ll : 0, b = half ? 0x0303030303030303ll : 0x0101010101010101ll;
    const __m256i spread = _mm256_shuffle_epi8(q, _mm256_setr_epi64x(a, b, a, b));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return v | (mc_u8v)_mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(16));
}

#define MC_HAVE_SPREAD_F16
static inline mc_f32v mc_spread_f16(const uint8_t *p, int64_t stride) {
    const __m128i h = _mm_setr_epi16((short)mc_rd16(p), (short)mc_rd16(p + stride), 0, 0, 0, 0, 0, 0);
    return (mc_f32v)_mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_cvtph_ps(h)),
                                             _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
}

#define MC_HAVE_MADD16
static inline mc_i32x8 mc_madd16(mc_i8x16 m, const int16_t *p) {
    return (mc_i32x8)_mm256_madd_epi16(_mm256_cvtepi8_epi16((__m128i)m), _mm256_loadu_si256((const __m256i *)p));
}

#define MC_HAVE_SPREAD_SC
static inline mc_i16v mc_spread_sc(mc_i8x16 v, int c, int per32) {
    /* chunk c is weights 32c..32c+31: one group of 32 (scale c), or two of 16 (2c in lanes 0-7, 2c+1 in
     * 8-15).  The scales are widened to int16 once (the same for every chunk: the compiler computes
     * it once per super-block), the 128-bit half holding the chunk's scales is put in both halves, and
     * one vpshufb per chunk picks them. */
    const __m256i w = _mm256_cvtepi8_epi16((__m128i)v);
    const int g0 = per32 ? c : 2 * c, g1 = per32 ? c : 2 * c + 1;   /* lanes 0-7 and 8-15 */
    const __m256i half = g0 < 8 ? _mm256_permute2x128_si256(w, w, 0x00) : _mm256_permute2x128_si256(w, w, 0x11);
    const char a = (char)(2 * (g0 % 8)), b = (char)(2 * (g1 % 8));
    return (mc_i16v)_mm256_shuffle_epi8(half, _mm256_setr_epi8(a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a,
        a + 1, a, a + 1, a, a + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1));
}

#ifndef MC_HAVE_DOT4_U7
#define MC_HAVE_DOT4_U7
static inline mc_i32v mc_dot4_u7(mc_i32v acc, mc_u8v u, mc_i8v s) {
    return acc + (mc_i32v)_mm256_madd_epi16(_mm256_maddubs_epi16((__m256i)u, (__m256i)s), _mm256_set1_epi16(1));
}
#endif

#ifndef MC_HAVE_DOT4_S8
#define MC_HAVE_DOT4_S8
#define MC_S8_BIAS 0
/* the sign trick: w * s = |w| * (s with w's sign), |w| <= 128 unsigned, so pairs stay below 2^15 */
static inline mc_i32v mc_dot4_s8(mc_i32v acc, mc_u8v wb, mc_i8v s) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8((__m256i)wb, (__m256i)wb),
                                           _mm256_sign_epi8((__m256i)s, (__m256i)wb));
    return acc + (mc_i32v)_mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
#endif

#ifndef MC_HAVE_DOT4_SC
#define MC_HAVE_DOT4_SC
static inline mc_i32v mc_dot4_sc(mc_i32v acc, mc_u8v u, mc_i8v s, mc_i16v sc) {
    return acc + (mc_i32v)_mm256_madd_epi16(_mm256_maddubs_epi16((__m256i)u, (__m256i)s), (__m256i)sc);
}
#endif

#define MC_HAVE_FMADD
static inline mc_f32v mc_fmadd(mc_f32v a, mc_f32v b, mc_f32v c) {
    return (mc_f32v)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
}

#include "generic.h"

#endif /* MC_ARCH_AVX2_H */
