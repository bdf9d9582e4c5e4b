/* The SIMD contract on AArch64 NEON with the dot-product extension (armv8.2-a+dotprod; every
 * Apple M-series, Graviton2+, Ampere Altra, Cortex-A55/A76 and later).  Meanings: CONTRACT.md.
 *
 * Native vectors of 16 bytes, one q register each (MC_VB 16): with 64-byte generic vectors GCC 12
 * kept the kernels' accumulators and every helper result on the stack.  The byte dot is SDOT,
 * signed x signed, so full-range signed weights go in as they are (MC_S8_BIAS 0) and the 7-bit
 * unsigned ones read as signed: one instruction for every dot helper.  The i8mm extension (USDOT,
 * SMMLA) would add nothing here: USDOT is the same single instruction with a bias, and SMMLA's
 * 2x2 row tiles need a kernel shaped for them, not a helper. */
#ifndef MC_ARCH_NEON_H
#define MC_ARCH_NEON_H

#if !defined(__aarch64__) || !defined(__ARM_NEON) || !defined(__ARM_FEATURE_DOTPROD)
#error "arch/neon.h needs AArch64 with the dot-product extension (-march=armv8.2-a+dotprod)"
#endif
#include <arm_neon.h>

#define MC_ISA_NAME "neon"
#define MC_VB 16
#define MC_S8_BIAS 0
#include "../mc_vec.h"

/* float16: FCVT (round to nearest even; subnormals kept, FPCR.FZ16 is off) */
#define MC_HAVE_FP16
static inline float mc_fp16_to_fp32(uint16_t h) { __fp16 f; memcpy(&f, &h, 2); return (float)f; }
static inline uint16_t mc_fp32_to_fp16(float f) { const __fp16 h = (__fp16)f; uint16_t u; memcpy(&u, &h, 2); return u; }

#define MC_HAVE_F16V
static inline mc_f32v mc_f16v_to_f32(const uint8_t *p) {
    return (mc_f32v)vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
}

#define MC_HAVE_BF16V
static inline mc_f32v mc_bf16v_to_f32(const uint8_t *p) {
    return (mc_f32v)vshll_n_u16(vreinterpret_u16_u8(vld1_u8(p)), 16);
}

#define MC_HAVE_CAT16
static inline mc_u8v mc_cat16(const mc_u8x16 *p) { return p[0]; }

/* TBL: indices below 16 (the kernels' guarantee) */
#define MC_HAVE_LUT16
static inline mc_u8v mc_lut16(mc_u8x16 table, mc_u8v idx) { return vqtbl1q_u8(table, idx); }

/* bytes 0-7 test the bits of qh's byte 2 half, bytes 8-15 those of the next (CMTST) */
#define MC_HAVE_QH_OR
static inline mc_u8v mc_qh_or(mc_u8v v, mc_u32x4 qh, int half) {
    const uint32_t m = qh[0] >> (16 * half);
    const uint8x16_t spread = vcombine_u8(vdup_n_u8((uint8_t)m), vdup_n_u8((uint8_t)(m >> 8)));
    const uint8x16_t bits = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ull));
    return vorrq_u8(v, vandq_u8(vtstq_u8(spread, bits), vdupq_n_u8(16)));
}

/* MC_VB / 16 = 1 number, in all four lanes */
#define MC_HAVE_SPREAD_F16
static inline mc_f32v mc_spread_f16(const uint8_t *p, int64_t stride) {
    (void)stride;
    return (mc_f32v)vdupq_n_f32(mc_fp16_to_fp32(mc_rd16(p)));
}

#define MC_HAVE_MADD16
static inline mc_i32x8 mc_madd16(mc_i8x16 m, const int16_t *p) {
    const int16x8_t lo = vmovl_s8(vget_low_s8((int8x16_t)m)), hi = vmovl_s8(vget_high_s8((int8x16_t)m));
    const int16x8_t a = vld1q_s16(p), b = vld1q_s16(p + 8);
    /* products of lanes 2i, 2i+1 summed pairwise: vpaddq of the widened products */
    const int32x4_t r0 = vpaddq_s32(vmull_s16(vget_low_s16(lo), vget_low_s16(a)), vmull_s16(vget_high_s16(lo), vget_high_s16(a)));
    const int32x4_t r1 = vpaddq_s32(vmull_s16(vget_low_s16(hi), vget_low_s16(b)), vmull_s16(vget_high_s16(hi), vget_high_s16(b)));
    mc_i32x8 r;
    memcpy(&r, &r0, 16);
    memcpy((char *)&r + 16, &r1, 16);
    return r;
}

/* chunk c is weights 16c .. 16c+15: all of one group, of 16 (v[c]) or of 32 (v[c / 2]) */
#define MC_HAVE_SPREAD_SC
static inline mc_i16v mc_spread_sc(mc_i8x16 v, int c, int per32) {
    return (mc_i16v)vdupq_n_s16(v[per32 ? c / 2 : c]);
}

/* SDOT: signed x signed; u <= 127 reads the same as a signed byte */
#define MC_HAVE_DOT4_U7
static inline mc_i32v mc_dot4_u7(mc_i32v acc, mc_u8v u, mc_i8v s) {
    return (mc_i32v)vdotq_s32((int32x4_t)acc, vreinterpretq_s8_u8(u), (int8x16_t)s);
}

/* MC_S8_BIAS 0: wb holds the signed weights themselves */
#define MC_HAVE_DOT4_S8
static inline mc_i32v mc_dot4_s8(mc_i32v acc, mc_u8v wb, mc_i8v s) { return mc_dot4_u7(acc, wb, s); }

/* each int32 lane's four products summed by SDOT, then multiplied by the lane's scale (int16 lanes
 * 2i and 2i+1 are equal: the top half of int32 lane i, shifted down with its sign, is the scale) */
#define MC_HAVE_DOT4_SC
static inline mc_i32v mc_dot4_sc(mc_i32v acc, mc_u8v u, mc_i8v s, mc_i16v sc) {
    const int32x4_t dot = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(u), (int8x16_t)s);
    return (mc_i32v)vmlaq_s32((int32x4_t)acc, dot, vshrq_n_s32(vreinterpretq_s32_s16((int16x8_t)sc), 16));
}

#define MC_HAVE_FMADD
static inline mc_f32v mc_fmadd(mc_f32v a, mc_f32v b, mc_f32v c) {
    return (mc_f32v)vfmaq_f32((float32x4_t)c, (float32x4_t)a, (float32x4_t)b);
}

#include "generic.h"

#endif /* MC_ARCH_NEON_H */
