/* The SIMD contract on x86-64-v4 with AVX-512 VNNI (-march=x86-64-v4 -mavx512vnni): native vectors
 * of 64 bytes, one zmm register each.  Meanings: CONTRACT.md. */
#ifndef MC_ARCH_AVX512_H
#define MC_ARCH_AVX512_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VNNI__) || !defined(__F16C__)
#error "arch/avx512.h needs -march=x86-64-v4 -mavx512vnni"
#endif
#include <immintrin.h>

#define MC_ISA_NAME "avx512"
#define MC_VB 64
#define MC_S8_BIAS 128   /* vpdpbusd multiplies unsigned by signed bytes */
#define MC_TILE 8        /* 32 zmm registers: 8 accumulators per unpacked weight block */
#include "../mc_vec.h"

#define MC_HAVE_FP16
static inline float mc_fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t mc_fp32_to_fp16(float f) { return (uint16_t)_cvtss_sh(f, 0); }

#define MC_HAVE_F16V
static inline mc_f32v mc_f16v_to_f32(const uint8_t *p) {
    return (mc_f32v)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

#define MC_HAVE_BF16V
static inline mc_f32v mc_bf16v_to_f32(const uint8_t *p) {
    return (mc_f32v)_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16);
}

#define MC_HAVE_CAT16   /* GCC spells the generic shuffles as byte permutations; inserts are cheaper */
#define MC_HAVE_CAT32
static inline mc_u8v mc_cat32(const mc_u8x32 *p) {
    return (mc_u8v)_mm512_inserti64x4(_mm512_castsi256_si512((__m256i)p[0]), (__m256i)p[1], 1);
}
static inline mc_u8v mc_cat16(const mc_u8x16 *p) {
    const mc_u8x32 h[2] = {(mc_u8x32)_mm256_set_m128i((__m128i)p[1], (__m128i)p[0]),
                           (mc_u8x32)_mm256_set_m128i((__m128i)p[3], (__m128i)p[2])};
    return mc_cat32(h);
}

#define MC_HAVE_LUT16
static inline mc_u8v mc_lut16(mc_u8x16 table, mc_u8v idx) {
    return (mc_u8v)_mm512_shuffle_epi8(_mm512_broadcast_i32x4((__m128i)table), (__m512i)idx);
}

#define MC_HAVE_QH_OR
static inline mc_u8v mc_qh_or(mc_u8v v, mc_u32x4 qh, int half) {
    /* every 128-bit lane gets qh (vshufi32x4), byte j of lane i the byte of qh[i] that holds its bit
     * (vpshufb), tested into a mask (vptestmb); 16 added under the mask (v's bit 4 is 0) */
    const long long a = half ? 0x0202020202020202ll : 0, b = half ? 0x0303030303030303ll : 0x0101010101010101ll;
    const long long k4 = 0x0404040404040404ll;
    const __m512i idx = _mm512_setr_epi64(a, b, a + k4, b + k4, a + 2 * k4, b + 2 * k4, a + 3 * k4, b + 3 * k4);
    const __m512i spread = _mm512_shuffle_epi8(_mm512_broadcast_i32x4((__m128i)qh), idx);
    const __mmask64 k = _mm512_test_epi8_mask(spread, _mm512_set1_epi64((long long)0x8040201008040201ull));
    return (mc_u8v)_mm512_mask_add_epi8((__m512i)v, k, (__m512i)v, _mm512_set1_epi8(16));
}

#define MC_HAVE_SPREAD_F16
static inline mc_f32v mc_spread_f16(const uint8_t *p, int64_t stride) {
    const __m128i h = _mm_setr_epi16((short)mc_rd16(p), (short)mc_rd16(p + stride), (short)mc_rd16(p + 2 * stride),
                                     (short)mc_rd16(p + 3 * stride), 0, 0, 0, 0);
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return (mc_f32v)_mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
}

#define MC_HAVE_MADD16
static inline mc_i32x8 mc_madd16(mc_i8x16 m, const int16_t *p) {
    return (mc_i32x8)_mm256_madd_epi16(_mm256_cvtepi8_epi16((__m128i)m), _mm256_loadu_si256((const __m256i *)p));
}

#define MC_HAVE_SPREAD_SC
static inline mc_i16v mc_spread_sc(mc_i8x16 v, int c, int per32) {
    const __m512i w = _mm512_castsi256_si512(_mm256_cvtepi8_epi16((__m128i)v));
    const __m512i idx = per32 ? _mm512_set1_epi16((short)(2 * c)) + (_mm512_set_epi16(
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        : _mm512_set1_epi16((short)(4 * c)) + (_mm512_set_epi16(
        3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0));
    return (mc_i16v)_mm512_permutexvar_epi16(idx, w);
}

#define MC_HAVE_DOT4_U7
static inline mc_i32v mc_dot4_u7(mc_i32v acc, mc_u8v u, mc_i8v s) {
    return (mc_i32v)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)u, (__m512i)s);
}

#define MC_HAVE_DOT4_S8
static inline mc_i32v mc_dot4_s8(mc_i32v acc, mc_u8v wb, mc_i8v s) {
    return (mc_i32v)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)wb, (__m512i)s);
}

#define MC_HAVE_DOT4_SC
static inline mc_i32v mc_dot4_sc(mc_i32v acc, mc_u8v u, mc_i8v s, mc_i16v sc) {
    return (mc_i32v)_mm512_dpwssd_epi32((__m512i)acc, _mm512_maddubs_epi16((__m512i)u, (__m512i)s), (__m512i)sc);
}

#define MC_HAVE_FMADD
static inline mc_f32v mc_fmadd(mc_f32v a, mc_f32v b, mc_f32v c) {
    return (mc_f32v)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
}

#include "generic.h"

#endif /* MC_ARCH_AVX512_H */
