/* The SIMD contract on x86-64-v3 (AVX2, FMA, F16C; -march=x86-64-v3): a 64-byte vector is two ymm
 * halves (MC_LO, MC_HI, mc_join).  The byte dots are vpmaddubsw (unsigned x signed byte pairs to
 * int16, saturating: the contract's ranges keep every pair below 2^15) and vpmaddwd.
 * arch/avxvnni.h reuses this layer with VEX vpdpbusd dots.  Meanings: CONTRACT.md. */
#ifndef MC_ARCH_AVX2_H
#define MC_ARCH_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "arch/avx2.h needs -march=x86-64-v3"
#endif
#include <immintrin.h>

#ifndef MC_ISA_NAME
#define MC_ISA_NAME "avx2"
#endif

/* the two 32-byte halves of a 64-byte vector, and back (a union GCC keeps in two registers;
 * a 64-byte __builtin_shufflevector would be lowered byte by byte) */
typedef union { mc_u8x64 v; __m256i h[2]; } mc_halves;
#define MC_LO(x) (((mc_halves){.v = (mc_u8x64)(x)}).h[0])
#define MC_HI(x) (((mc_halves){.v = (mc_u8x64)(x)}).h[1])
static inline mc_u8x64 mc_join(__m256i a, __m256i b) { return ((mc_halves){.h = {a, b}}).v; }
#define MC_LOF(v) ((__m256)MC_LO(v))
#define MC_HIF(v) ((__m256)MC_HI(v))
#define MC_JOINF(a, b) ((mc_f32x16)mc_join((__m256i)(a), (__m256i)(b)))

#define MC_HAVE_FP16
static inline float mc_fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t mc_fp32_to_fp16(float f) { return (uint16_t)_cvtss_sh(f, 0); }

#define MC_HAVE_WIDEN
static inline mc_i32x16 mc_widen_u8(mc_u8x16 v) {
    return (mc_i32x16)mc_join(_mm256_cvtepu8_epi32((__m128i)v), _mm256_cvtepu8_epi32(_mm_srli_si128((__m128i)v, 8)));
}
static inline mc_i32x16 mc_widen_i8(mc_i8x16 v) {
    return (mc_i32x16)mc_join(_mm256_cvtepi8_epi32((__m128i)v), _mm256_cvtepi8_epi32(_mm_srli_si128((__m128i)v, 8)));
}
static inline mc_u32x16 mc_widen_u16(mc_u16x16 v) {
    return (mc_u32x16)mc_join(_mm256_cvtepu16_epi32(_mm256_castsi256_si128((__m256i)v)),
                              _mm256_cvtepu16_epi32(_mm256_extracti128_si256((__m256i)v, 1)));
}

#define MC_HAVE_F16X16
static inline mc_f32x16 mc_f16x16_to_f32(const uint8_t *p) {
    return MC_JOINF(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)),
                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16))));
}

#define MC_HAVE_CAT
static inline mc_u8x64 mc_cat2(mc_u8x32 a, mc_u8x32 b) { return mc_join((__m256i)a, (__m256i)b); }
static inline mc_u8x64 mc_cat4(mc_u8x16 a, mc_u8x16 b, mc_u8x16 c, mc_u8x16 d) {
    return mc_join(_mm256_set_m128i((__m128i)b, (__m128i)a), _mm256_set_m128i((__m128i)d, (__m128i)c));
}

#define MC_HAVE_LUT16
static inline mc_u8x64 mc_lut16(mc_u8x16 table, mc_u8x64 idx) {
    const __m256i t = _mm256_broadcastsi128_si256((__m128i)table);
    return mc_join(_mm256_shuffle_epi8(t, MC_LO(idx)), _mm256_shuffle_epi8(t, MC_HI(idx)));
}

#define MC_HAVE_BIT_BYTES
/* 32 bytes: 0xFF where bit j of m is set */
static inline __m256i mc_bits32(uint32_t m) {
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m),
        _mm256_setr_epi64x(0x0000000000000000ll, 0x0101010101010101ll, 0x0202020202020202ll, 0x0303030303030303ll));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}
static inline mc_u8x64 mc_bit_bytes(uint64_t m, uint8_t val) {
    const __m256i v = _mm256_set1_epi8((char)val);
    return mc_join(_mm256_and_si256(mc_bits32((uint32_t)m), v), _mm256_and_si256(mc_bits32((uint32_t)(m >> 32)), v));
}

#define MC_HAVE_SPREAD4_F16
static inline mc_f32x16 mc_spread4_f16(const uint8_t *p, int64_t stride) {
    const __m128i h = _mm_setr_epi16((short)mc_rd16(p), (short)mc_rd16(p + stride), (short)mc_rd16(p + 2 * stride),
                                     (short)mc_rd16(p + 3 * stride), 0, 0, 0, 0);
    const __m256 f = _mm256_castps128_ps256(_mm_cvtph_ps(h));
    return MC_JOINF(_mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)),
                    _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3)));
}

#define MC_HAVE_SPREAD_SC
static inline mc_i16x32 mc_spread_sc(mc_i8x16 v, int k, int per32) {
    /* pick the scale bytes for each half's 16 int16 lanes with one pshufb, then sign-extend */
    const __m128i base = _mm_set1_epi8((char)(per32 ? 2 * k : 4 * k));
    const __m128i lo = per32 ? _mm_setzero_si128() : _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m128i hi = per32 ? _mm_set1_epi8(1) : _mm_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    return (mc_i16x32)mc_join(_mm256_cvtepi8_epi16(_mm_shuffle_epi8((__m128i)v, _mm_add_epi8(base, lo))),
                              _mm256_cvtepi8_epi16(_mm_shuffle_epi8((__m128i)v, _mm_add_epi8(base, hi))));
}

#ifndef MC_HAVE_DOT4_U7
#define MC_HAVE_DOT4_U7
static inline __m256i mc_dot4_u7_256(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
static inline mc_i32x16 mc_dot4_u7(mc_i32x16 acc, mc_u8x64 u, mc_i8x64 s) {
    return (mc_i32x16)mc_join(mc_dot4_u7_256(MC_LO(acc), MC_LO(u), MC_LO(s)),
                              mc_dot4_u7_256(MC_HI(acc), MC_HI(u), MC_HI(s)));
}
#endif

#ifndef MC_HAVE_DOT4_S8
#define MC_HAVE_DOT4_S8
#define MC_S8_BIAS 0
/* the sign trick: w * s = |w| * (s with w's sign), |w| <= 128 unsigned, so pairs stay below 2^15 */
static inline __m256i mc_dot4_s8_256(__m256i acc, __m256i w, __m256i s) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(s, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
static inline mc_i32x16 mc_dot4_s8(mc_i32x16 acc, mc_u8x64 wb, mc_i8x64 s) {
    return (mc_i32x16)mc_join(mc_dot4_s8_256(MC_LO(acc), MC_LO(wb), MC_LO(s)),
                              mc_dot4_s8_256(MC_HI(acc), MC_HI(wb), MC_HI(s)));
}
#endif

#ifndef MC_HAVE_DOT4_SC
#define MC_HAVE_DOT4_SC
static inline __m256i mc_dot4_sc_256(__m256i acc, __m256i u, __m256i s, __m256i sc) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc));
}
static inline mc_i32x16 mc_dot4_sc(mc_i32x16 acc, mc_u8x64 u, mc_i8x64 s, mc_i16x32 sc) {
    return (mc_i32x16)mc_join(mc_dot4_sc_256(MC_LO(acc), MC_LO(u), MC_LO(s), MC_LO(sc)),
                              mc_dot4_sc_256(MC_HI(acc), MC_HI(u), MC_HI(s), MC_HI(sc)));
}
#endif

#define MC_HAVE_FMADD
static inline mc_f32x16 mc_fmadd(mc_f32x16 a, mc_f32x16 b, mc_f32x16 c) {
    return MC_JOINF(_mm256_fmadd_ps(MC_LOF(a), MC_LOF(b), MC_LOF(c)), _mm256_fmadd_ps(MC_HIF(a), MC_HIF(b), MC_HIF(c)));
}

#include "generic.h"

#endif /* MC_ARCH_AVX2_H */
