/* The SIMD contract on AArch64 NEON with the dot-product extension (armv8.2-a+dotprod; every
 * Apple M-series, Graviton2+, Ampere Altra, Cortex-A55/A76 and later).  Meanings: CONTRACT.md.
 *
 * A 64-byte logical vector is four 128-bit q registers; each helper works on them a quarter at a
 * time (MC_Q reads quarter q; results are built as four quarters and joined).  The byte dot is
 * SDOT, signed x signed, so full-range signed weights go in as they are (MC_S8_BIAS 0) and the 7-bit
 * unsigned ones read as signed: one instruction per 16 bytes for every helper.  The i8mm extension
 * (USDOT, SMMLA) would add nothing here: USDOT is the same single instruction with a bias, and
 * SMMLA's 2x2 row tiles need a kernel shaped for them, not a helper. */
#ifndef MC_ARCH_NEON_H
#define MC_ARCH_NEON_H

#if !defined(__aarch64__) || !defined(__ARM_NEON) || !defined(__ARM_FEATURE_DOTPROD)
#error "arch/neon.h needs AArch64 with the dot-product extension (-march=armv8.2-a+dotprod)"
#endif
#include <arm_neon.h>

#define MC_ISA_NAME "neon"
#define MC_S8_BIAS 0

/* quarter q (16 bytes) of a 64-byte vector; a result is built as an array of quarters, then copied */
#define MC_Q(T, v, q) ((const T *)&(v))[q]
#define MC_JOIN(V, p) __extension__({ V r_; memcpy(&r_, (p), sizeof r_); r_; })

/* float16: the FCVT instructions (round to nearest even, subnormals kept: FPCR.FZ16 is off) */
#define MC_HAVE_FP16 1
static inline float mc_fp16_to_fp32(uint16_t h) { __fp16 f; memcpy(&f, &h, 2); return (float)f; }
static inline uint16_t mc_fp32_to_fp16(float f) { const __fp16 h = (__fp16)f; uint16_t u; memcpy(&u, &h, 2); return u; }

#define MC_HAVE_WIDEN 1
static inline mc_i32x16 mc_widen_u8(mc_u8x16 v) {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(v)), hi = vmovl_high_u8(v);
    const uint32x4_t p[4] = {vmovl_u16(vget_low_u16(lo)), vmovl_high_u16(lo),
                             vmovl_u16(vget_low_u16(hi)), vmovl_high_u16(hi)};
    return MC_JOIN(mc_i32x16, p);
}
static inline mc_i32x16 mc_widen_i8(mc_i8x16 v) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
    const int32x4_t p[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo),
                            vmovl_s16(vget_low_s16(hi)), vmovl_high_s16(hi)};
    return MC_JOIN(mc_i32x16, p);
}
static inline mc_u32x16 mc_widen_u16(mc_u16x16 v) {
    const uint16x8_t lo = MC_Q(uint16x8_t, v, 0), hi = MC_Q(uint16x8_t, v, 1);
    const uint32x4_t p[4] = {vmovl_u16(vget_low_u16(lo)), vmovl_high_u16(lo),
                             vmovl_u16(vget_low_u16(hi)), vmovl_high_u16(hi)};
    return MC_JOIN(mc_u32x16, p);
}

#define MC_HAVE_F16X16 1
static inline mc_f32x16 mc_f16x16_to_f32(const uint8_t *p) {
    float32x4_t f[4];
    for (int q = 0; q < 4; q++) f[q] = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p + 8 * q)));
    return MC_JOIN(mc_f32x16, f);
}

#define MC_HAVE_CAT 1
static inline mc_u8x64 mc_cat2(mc_u8x32 a, mc_u8x32 b) {
    const uint8x16_t p[4] = {MC_Q(uint8x16_t, a, 0), MC_Q(uint8x16_t, a, 1), MC_Q(uint8x16_t, b, 0),
                             MC_Q(uint8x16_t, b, 1)};
    return MC_JOIN(mc_u8x64, p);
}
static inline mc_u8x64 mc_cat4(mc_u8x16 a, mc_u8x16 b, mc_u8x16 c, mc_u8x16 d) {
    const uint8x16_t p[4] = {a, b, c, d};
    return MC_JOIN(mc_u8x64, p);
}

/* TBL: indices below 16 (the kernels' guarantee) */
#define MC_HAVE_LUT16 1
static inline mc_u8x64 mc_lut16(mc_u8x16 table, mc_u8x64 idx) {
    uint8x16_t p[4];
    for (int q = 0; q < 4; q++) p[q] = vqtbl1q_u8(table, MC_Q(uint8x16_t, idx, q));
    return MC_JOIN(mc_u8x64, p);
}

/* byte j: bit j of m tested (CMTST) against {1, 2, 4, .., 128} in the byte of m that holds it;
 * quarter q covers bits 16q .. 16q+15, bytes 2q and 2q+1 of m, each spread over 8 lanes (TBL) */
#define MC_HAVE_BIT_BYTES 1
static inline mc_u8x64 mc_bit_bytes(uint64_t m, uint8_t val) {
    const uint8x16_t m16 = vreinterpretq_u8_u64(vdupq_n_u64(m));
    const uint8x16_t bits = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ull));
    const uint8x16_t idx = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    uint8x16_t p[4];
    for (int q = 0; q < 4; q++)
        p[q] = vandq_u8(vtstq_u8(vqtbl1q_u8(m16, vaddq_u8(idx, vdupq_n_u8((uint8_t)(2 * q)))), bits), vdupq_n_u8(val));
    return MC_JOIN(mc_u8x64, p);
}

#define MC_HAVE_SPREAD4_F16 1
static inline mc_f32x16 mc_spread4_f16(const uint8_t *p, int64_t stride) {
    const uint16_t h[4] = {mc_rd16(p), mc_rd16(p + stride), mc_rd16(p + 2 * stride), mc_rd16(p + 3 * stride)};
    const float32x4_t f = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
    const float32x4_t r[4] = {vdupq_laneq_f32(f, 0), vdupq_laneq_f32(f, 1), vdupq_laneq_f32(f, 2),
                              vdupq_laneq_f32(f, 3)};
    return MC_JOIN(mc_f32x16, r);
}

/* quarter q of the result holds int16 lanes 8q .. 8q+7, all of one group (groups of 16 weights
 * are 8 lanes, groups of 32 are 16): one scale each */
#define MC_HAVE_SPREAD_SC 1
static inline mc_i16x32 mc_spread_sc(mc_i8x16 v, int k, int per32) {
    int16x8_t p[4];
    for (int q = 0; q < 4; q++) p[q] = vdupq_n_s16(v[per32 ? 2 * k + q / 2 : 4 * k + q]);
    return MC_JOIN(mc_i16x32, p);
}

/* SDOT: signed x signed; u <= 127 reads the same as a signed byte */
#define MC_HAVE_DOT4_U7 1
static inline mc_i32x16 mc_dot4_u7(mc_i32x16 acc, mc_u8x64 u, mc_i8x64 s) {
    int32x4_t p[4];
    for (int q = 0; q < 4; q++) p[q] = vdotq_s32(MC_Q(int32x4_t, acc, q), MC_Q(int8x16_t, u, q), MC_Q(int8x16_t, s, q));
    return MC_JOIN(mc_i32x16, p);
}

/* MC_S8_BIAS 0: wb holds the signed weights themselves */
#define MC_HAVE_DOT4_S8 1
static inline mc_i32x16 mc_dot4_s8(mc_i32x16 acc, mc_u8x64 wb, mc_i8x64 s) { return mc_dot4_u7(acc, wb, s); }

/* each int32 lane's four products summed by SDOT, then multiplied by the lane's scale (int16 lanes
 * 2i and 2i+1 are equal: the top half of int32 lane i, shifted down with its sign, is the scale) */
#define MC_HAVE_DOT4_SC 1
static inline mc_i32x16 mc_dot4_sc(mc_i32x16 acc, mc_u8x64 u, mc_i8x64 s, mc_i16x32 sc) {
    int32x4_t p[4];
    for (int q = 0; q < 4; q++) {
        const int32x4_t dot = vdotq_s32(vdupq_n_s32(0), MC_Q(int8x16_t, u, q), MC_Q(int8x16_t, s, q));
        const int32x4_t scale = vshrq_n_s32(vreinterpretq_s32_s16(MC_Q(int16x8_t, sc, q)), 16);
        p[q] = vmlaq_s32(MC_Q(int32x4_t, acc, q), dot, scale);
    }
    return MC_JOIN(mc_i32x16, p);
}

#define MC_HAVE_FMADD 1
static inline mc_f32x16 mc_fmadd(mc_f32x16 a, mc_f32x16 b, mc_f32x16 c) {
    float32x4_t p[4];
    for (int q = 0; q < 4; q++) p[q] = vfmaq_f32(MC_Q(float32x4_t, c, q), MC_Q(float32x4_t, a, q), MC_Q(float32x4_t, b, q));
    return MC_JOIN(mc_f32x16, p);
}

#undef MC_Q
#undef MC_JOIN
#include "generic.h"

#endif /* MC_ARCH_NEON_H */
