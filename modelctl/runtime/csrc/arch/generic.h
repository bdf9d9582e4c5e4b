/* The SIMD contract in plain C: any CPU, and the reference every other ISA layer is tested against.
 * An ISA layer includes this file last; each helper here is compiled only where the layer did not
 * define its own (MC_HAVE_<NAME>).  Native width: MC_VB bytes (64 unless the layer chose).
 * Meanings: CONTRACT.md. */
#ifndef MC_ARCH_GENERIC_H
#define MC_ARCH_GENERIC_H

#include "../mc_vec.h"

#ifndef MC_ISA_NAME
#define MC_ISA_NAME "generic"
#endif

/* what mc_dot4_s8 adds to each signed weight before multiplying: 0 or 128 */
#ifndef MC_S8_BIAS
#define MC_S8_BIAS 0
#endif

/* activation rows dotted with each unpacked weight block */
#ifndef MC_TILE
#define MC_TILE 4
#endif

/* layers written for the first contract (64-byte helpers, MC_VB 64): its names stand for the new ones */
#if MC_VB == 64 && defined(MC_HAVE_F16X16) && !defined(MC_HAVE_F16V)
#define MC_HAVE_F16V
#define mc_f16v_to_f32 mc_f16x16_to_f32
#endif
#if MC_VB == 64 && defined(MC_HAVE_CAT) && !defined(MC_HAVE_CAT16)
#define MC_HAVE_CAT16
#define MC_HAVE_CAT32
static inline mc_u8v mc_cat16(const mc_u8x16 *p) { return mc_cat4(p[0], p[1], p[2], p[3]); }
static inline mc_u8v mc_cat32(const mc_u8x32 *p) { return mc_cat2(p[0], p[1]); }
#endif
#if MC_VB == 64 && defined(MC_HAVE_SPREAD4_F16) && !defined(MC_HAVE_SPREAD_F16)
#define MC_HAVE_SPREAD_F16
#define mc_spread_f16 mc_spread4_f16
#endif

#ifndef MC_HAVE_FP16
static inline float mc_fp16_to_fp32(uint16_t h) { return mc_fp16_to_fp32_soft(h); }
static inline uint16_t mc_fp32_to_fp16(float f) { return mc_fp32_to_fp16_soft(f); }
#endif

#ifndef MC_HAVE_F16V
/* MC_L32 float16 numbers at p, exactly (the soft conversion, lane-wise) */
static inline mc_f32v mc_f16v_to_f32(const uint8_t *p) {
    mc_u32v w;
    for (int l = 0; l < MC_L32; l++) w[l] = (uint32_t)mc_rd16(p + 2 * l) << 16;
    const mc_u32v sign = w & 0x80000000u;
    const mc_u32v two_w = w + w;
    const mc_f32v normalized = (mc_f32v)((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const mc_f32v denormalized = (mc_f32v)((two_w >> 17) | (126u << 23)) - 0.5f;
    const mc_u32v small = (mc_u32v)(two_w < (1u << 27));
    return (mc_f32v)(sign | (small & (mc_u32v)denormalized) | (~small & (mc_u32v)normalized));
}
#endif

#ifndef MC_HAVE_BF16V
static inline mc_f32v mc_bf16v_to_f32(const uint8_t *p) {
    mc_u32v w;
    for (int l = 0; l < MC_L32; l++) w[l] = (uint32_t)mc_rd16(p + 2 * l) << 16;
    return (mc_f32v)w;
}
#endif

#ifndef MC_HAVE_CAT16
static inline mc_u8v mc_cat16(const mc_u8x16 *p) {
    mc_u8v r;
    for (int i = 0; i < MC_VB / 16; i++) memcpy((uint8_t *)&r + 16 * i, &p[i], 16);
    return r;
}
#endif

#if !defined(MC_HAVE_CAT32) && MC_VB >= 32
static inline mc_u8v mc_cat32(const mc_u8x32 *p) {
    mc_u8v r;
    for (int i = 0; i < MC_VB / 32; i++) memcpy((uint8_t *)&r + 32 * i, &p[i], 32);
    return r;
}
#endif

#ifndef MC_HAVE_LUT16
static inline mc_u8v mc_lut16(mc_u8x16 table, mc_u8v idx) {
    mc_u8v r;
    for (int j = 0; j < MC_VB; j++) r[j] = table[idx[j] & 15];
    return r;
}
#endif

#ifndef MC_HAVE_QH_OR
static inline mc_u8v mc_qh_or(mc_u8v v, mc_u32x4 qh, int half) {
    /* 8 bits at a time in a 64-bit word (filling the vector lane by lane made GCC go through memory:
     * Q5_0 ran at 0.12 GB/s): each byte gets the 8 bits, keeps its own, and becomes 0 or 16 */
    uint64_t w[MC_VB / 8];
    for (int k = 0; k < MC_VB / 8; k++) {   /* bytes 8k..8k+7: block k / 2, bits 16 half + 8 (k % 2) .. */
        const uint64_t bits = (qh[k / 2] >> (16 * half + 8 * (k % 2))) & 0xFF;
        const uint64_t own = bits * 0x0101010101010101ull & 0x8040201008040201ull;
        w[k] = ((own + 0x7F7F7F7F7F7F7F7Full) & 0x8080808080808080ull) >> 3;
    }
    mc_u8v r;
    memcpy(&r, w, MC_VB);
    return v | r;
}
#endif

#ifndef MC_HAVE_SPREAD_F16
static inline mc_f32v mc_spread_f16(const uint8_t *p, int64_t stride) {
    mc_f32v v;
    for (int i = 0; i < MC_L32; i++) v[i] = mc_fp16_to_fp32(mc_rd16(p + (i / 4) * stride));
    return v;
}
#endif

#ifndef MC_HAVE_MADD16
static inline mc_i32x8 mc_madd16(mc_i8x16 m, const int16_t *p) {
    mc_i32x8 r;
    for (int i = 0; i < 8; i++) r[i] = (int32_t)m[2 * i] * p[2 * i] + (int32_t)m[2 * i + 1] * p[2 * i + 1];
    return r;
}
#endif

#ifndef MC_HAVE_SPREAD_SC
static inline mc_i16v mc_spread_sc(mc_i8x16 v, int c, int per32) {
    const int g = per32 ? 32 : 16;   /* weights per scale */
    if (MC_VB <= g) return (mc_i16v){0} + (int16_t)v[c * MC_VB / g];   /* one scale for the whole chunk */
    mc_i16v r;
    for (int j = 0; j < MC_VB / 2; j++) r[j] = v[(c * MC_VB + 2 * j) / (per32 ? 32 : 16)];
    return r;
}
#endif

/* byte products in plain vector arithmetic (any width, any CPU: SSE2's pmullw/psraw, NEON's mul):
 * the even and odd bytes of each int16 lane sign-extended, multiplied, their pair summed in int16
 * (the contract's ranges keep |pair| < 2^15), then int16 pairs summed into int32 lanes */
typedef uint16_t mc_u16v_ __attribute__((vector_size(MC_VB)));
typedef uint32_t mc_u32v_ __attribute__((vector_size(MC_VB)));
static inline mc_i16v mc_lo8_(mc_i8v v) { return (mc_i16v)((mc_u16v_)v << 8) >> 8; }
static inline mc_i16v mc_hi8_(mc_i8v v) { return (mc_i16v)v >> 8; }
static inline mc_i16v mc_pairs16_(mc_i8v a, mc_i8v b) { return mc_lo8_(a) * mc_lo8_(b) + mc_hi8_(a) * mc_hi8_(b); }
static inline mc_i32v mc_lo16_(mc_i16v v) { return (mc_i32v)((mc_u32v_)v << 16) >> 16; }
static inline mc_i32v mc_hi16_(mc_i16v v) { return (mc_i32v)v >> 16; }

#ifndef MC_HAVE_DOT4_U7
static inline mc_i32v mc_dot4_u7(mc_i32v acc, mc_u8v u, mc_i8v s) {   /* u < 128 reads as signed */
    const mc_i16v p = mc_pairs16_((mc_i8v)u, s);
    return acc + mc_lo16_(p) + mc_hi16_(p);
}
#endif

#ifndef MC_HAVE_DOT4_S8
#if MC_S8_BIAS == 0
static inline mc_i32v mc_dot4_s8(mc_i32v acc, mc_u8v wb, mc_i8v s) {   /* |w s + w' s'| <= 2 128 127 */
    const mc_i16v p = mc_pairs16_((mc_i8v)wb, s);
    return acc + mc_lo16_(p) + mc_hi16_(p);
}
#else
static inline mc_i32v mc_dot4_s8(mc_i32v acc, mc_u8v wb, mc_i8v s) {
    int32_t t[MC_L32];   /* summed apart from acc: aarch64 GCC 12 -O3 warns "acc may be used uninitialized" otherwise */
    for (int i = 0; i < MC_L32; i++) {
        t[i] = 0;
        for (int k = 0; k < 4; k++) t[i] += (int32_t)wb[4 * i + k] * (int32_t)s[4 * i + k];
    }
    mc_i32v r;
    memcpy(&r, t, MC_VB);
    return acc + r;
}
#endif
#endif

#ifndef MC_HAVE_DOT4_SC
static inline mc_i32v mc_dot4_sc(mc_i32v acc, mc_u8v u, mc_i8v s, mc_i16v sc) {
    const mc_i16v p = mc_pairs16_((mc_i8v)u, s);
    return acc + (mc_lo16_(p) + mc_hi16_(p)) * mc_lo16_(sc);   /* sc[2i] == sc[2i+1] */
}
#endif

#ifndef MC_HAVE_FMADD
static inline mc_f32v mc_fmadd(mc_f32v a, mc_f32v b, mc_f32v c) { return a * b + c; }
#endif

#endif /* MC_ARCH_GENERIC_H */
