/* The SIMD contract in plain C: any CPU, and the reference every other ISA layer is tested against.
 * An ISA layer includes this file last; each helper here is compiled only where the layer did not
 * define its own (MC_HAVE_<NAME>).  Meanings: CONTRACT.md. */
#ifndef MC_ARCH_GENERIC_H
#define MC_ARCH_GENERIC_H

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

#ifndef MC_HAVE_FP16
static inline float mc_fp16_to_fp32(uint16_t h) { return mc_fp16_to_fp32_soft(h); }
static inline uint16_t mc_fp32_to_fp16(float f) { return mc_fp32_to_fp16_soft(f); }
#endif

#ifndef MC_HAVE_WIDEN
static inline mc_i32x16 mc_widen_u8(mc_u8x16 v) {
    mc_i32x16 r;
    for (int i = 0; i < 16; i++) r[i] = v[i];
    return r;
}
static inline mc_i32x16 mc_widen_i8(mc_i8x16 v) {
    mc_i32x16 r;
    for (int i = 0; i < 16; i++) r[i] = v[i];
    return r;
}
static inline mc_u32x16 mc_widen_u16(mc_u16x16 v) {
    mc_u32x16 r;
    for (int i = 0; i < 16; i++) r[i] = v[i];
    return r;
}
#endif

#ifndef MC_HAVE_F16X16
/* 16 float16 numbers at p, exactly (the soft conversion, lane-wise) */
static inline mc_f32x16 mc_f16x16_to_f32(const uint8_t *p) {
    mc_u16x16 h;
    memcpy(&h, p, 32);
    const mc_u32x16 w = mc_widen_u16(h) << 16;
    const mc_u32x16 sign = w & 0x80000000u;
    const mc_u32x16 two_w = w + w;
    const mc_f32x16 normalized = (mc_f32x16)((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const mc_f32x16 denormalized = (mc_f32x16)((two_w >> 17) | (126u << 23)) - 0.5f;
    const mc_u32x16 small = (mc_u32x16)(two_w < (1u << 27));
    return (mc_f32x16)(sign | (small & (mc_u32x16)denormalized) | (~small & (mc_u32x16)normalized));
}
#endif

#ifndef MC_HAVE_CAT
static inline mc_u8x64 mc_cat2(mc_u8x32 a, mc_u8x32 b) {
    mc_u8x64 r;
    memcpy((uint8_t *)&r, &a, 32);
    memcpy((uint8_t *)&r + 32, &b, 32);
    return r;
}
static inline mc_u8x64 mc_cat4(mc_u8x16 a, mc_u8x16 b, mc_u8x16 c, mc_u8x16 d) {
    mc_u8x64 r;
    memcpy((uint8_t *)&r, &a, 16);
    memcpy((uint8_t *)&r + 16, &b, 16);
    memcpy((uint8_t *)&r + 32, &c, 16);
    memcpy((uint8_t *)&r + 48, &d, 16);
    return r;
}
#endif

#ifndef MC_HAVE_LUT16
static inline mc_u8x64 mc_lut16(mc_u8x16 table, mc_u8x64 idx) {
    mc_u8x64 r;
    for (int j = 0; j < 64; j++) r[j] = table[idx[j] & 15];
    return r;
}
#endif

#ifndef MC_HAVE_BIT_BYTES
static inline mc_u8x64 mc_bit_bytes(uint64_t m, uint8_t val) {
    mc_u8x64 r;
    for (int j = 0; j < 64; j++) r[j] = (m >> j) & 1 ? val : 0;
    return r;
}
#endif

#ifndef MC_HAVE_SPREAD4_F16
static inline mc_f32x16 mc_spread4_f16(const uint8_t *p, int64_t stride) {
    mc_f32x16 v;
    for (int i = 0; i < 16; i++) v[i] = mc_fp16_to_fp32(mc_rd16(p + (i / 4) * stride));
    return v;
}
#endif

#ifndef MC_HAVE_SPREAD_SC
static inline mc_i16x32 mc_spread_sc(mc_i8x16 v, int k, int per32) {
    mc_i16x32 r;
    for (int j = 0; j < 32; j++) r[j] = per32 ? v[2 * k + j / 16] : v[4 * k + j / 8];
    return r;
}
#endif

#ifndef MC_HAVE_DOT4_U7
static inline mc_i32x16 mc_dot4_u7(mc_i32x16 acc, mc_u8x64 u, mc_i8x64 s) {
    for (int i = 0; i < 16; i++) {
        int32_t t = 0;
        for (int k = 0; k < 4; k++) t += (int32_t)u[4 * i + k] * (int32_t)s[4 * i + k];
        acc[i] += t;
    }
    return acc;
}
#endif

#ifndef MC_HAVE_DOT4_S8
static inline mc_i32x16 mc_dot4_s8(mc_i32x16 acc, mc_u8x64 wb, mc_i8x64 s) {
    int32_t t[16];   /* summed apart from acc: aarch64 GCC 12 -O3 warns "acc may be used uninitialized" otherwise */
    for (int i = 0; i < 16; i++) {
        t[i] = 0;
        for (int k = 0; k < 4; k++) {
            const int32_t w = MC_S8_BIAS ? (int32_t)wb[4 * i + k] : (int32_t)(int8_t)wb[4 * i + k];
            t[i] += w * (int32_t)s[4 * i + k];
        }
    }
    mc_i32x16 r;
    memcpy(&r, t, 64);
    return acc + r;
}
#endif

#ifndef MC_HAVE_DOT4_SC
static inline mc_i32x16 mc_dot4_sc(mc_i32x16 acc, mc_u8x64 u, mc_i8x64 s, mc_i16x32 sc) {
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 2; k++)
            acc[i] += sc[2 * i + k] * ((int32_t)u[4 * i + 2 * k] * s[4 * i + 2 * k]
                                       + (int32_t)u[4 * i + 2 * k + 1] * s[4 * i + 2 * k + 1]);
    return acc;
}
#endif

#ifndef MC_HAVE_FMADD
static inline mc_f32x16 mc_fmadd(mc_f32x16 a, mc_f32x16 b, mc_f32x16 c) { return a * b + c; }
#endif

#endif /* MC_ARCH_GENERIC_H */
