/* modelctl's quantized kernels, written once on the SIMD contract (mc_simd.h, CONTRACT.md).
 *
 * The route is ggml's.  An activation row is quantized once to 8 bits per
 * block (Q8_0/Q8_1-style for the 32-wide types, Q8_K-style for the 256-wide
 * K-quants and IQ4_XS; float16/bfloat16 rounding for F16/BF16 weights), and
 * the dot product with a weight row is an exact integer sum per block with
 * the scales applied once per block, so results differ from llama.cpp's only
 * in the order of float additions.
 *
 *   weights: each block is unpacked in registers into bytes: small unsigned
 *     integers below 128 (an offset makes the narrow signed types unsigned; its
 *     share is taken back out exactly with the activation's sums), or, for the
 *     full-range signed types (Q8_0, IQ4_NL, IQ4_XS), signed bytes plus the ISA's
 *     MC_S8_BIAS, taken back out the same way; they are dotted four bytes at a
 *     time into int32 lanes (mc_dot4_u7, mc_dot4_s8), the K-quants with each
 *     lane scaled by its sub-block's scale (mc_dot4_sc); the 32-wide types go
 *     four blocks at a time, against activations stored in the order their
 *     nibbles unpack;
 *   matmul (mc_matmul_rows): each unpacked weight block is dotted with
 *     MC_TILE activation rows before the next is unpacked; a task's weight rows
 *     stay in cache while every activation row passes; matvec is the same code
 *     with one activation row, so row j of a matmul equals matvec of activation
 *     j bit for bit;
 *   dequantization (mc_dequantize_row) reproduces gguf-py's NumPy reference
 *     bit for bit: same operations in the same order, no FMA contraction (the
 *     extension is built with -ffp-contract=off).
 *
 * The inner loops use 64-byte generic vectors (GCC/Clang vector extensions).
 * The few operations with no generic spelling, or one that GCC 12 compiles lane
 * by lane (the byte dot products, widening, concatenation, lane permutations,
 * float16 spreads), are the contract's helpers, one file per ISA (arch/).  All
 * layers give bit-identical results here (exact integer dots, the same float
 * operations in the same order, no contraction).
 *
 * Block layouts (ggml-common.h), bytes:
 *   Q4_0  {f16 d; u8 qs[16]}                           18 / 32 weights
 *   Q4_1  {f16 d; f16 m; u8 qs[16]}                    20
 *   Q5_0  {f16 d; u8 qh[4]; u8 qs[16]}                 22
 *   Q5_1  {f16 d; f16 m; u8 qh[4]; u8 qs[16]}          24
 *   Q8_0  {f16 d; i8 qs[32]}                           34
 *   IQ4_NL{f16 d; u8 qs[16]}  (non-linear 4-bit grid)  18
 *   Q2_K  {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}  84 / 256 weights
 *   Q3_K  {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}             110
 *   Q4_K  {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}               144
 *   Q5_K  {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}    176
 *   Q6_K  {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}              210
 *   IQ4_XS{f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}          136
 */
#ifndef MC_KERNELS_H
#define MC_KERNELS_H

#include "mc_simd.h"
#include "mc_types.h"

static const int8_t mc_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1, 13, 25, 38, 53, 69, 89, 113};

/* bfloat16 */
static inline float mc_bf16_to_fp32(uint16_t h) { return mc_f32_from_bits((uint32_t)h << 16); }

static inline uint16_t mc_fp32_to_bf16(float f) {   /* ggml's rounding: nearest even, quiet NaN */
    const uint32_t u = mc_bits_from_f32(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}


/* ------------------------------------------------------------------ */
/* dequantization to float, bit-exact with gguf-py                      */
/* ------------------------------------------------------------------ */

/* Q4_K/Q5_K: 8 six-bit scales and mins packed in 12 bytes */
static inline void mc_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q3_K: 16 six-bit scales packed in 12 bytes, returned minus 32 */
static inline void mc_scales_q3k(const uint8_t *s, int8_t *out) {
    for (int k = 0; k < 16; k++) {
        const int lo = (k < 8 ? s[k] : s[k - 8] >> 4) & 0xF;
        const int hi = (s[8 + (k & 3)] >> (2 * (k >> 2))) & 3;
        out[k] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* unpack a K-quant super-block into unsigned/signed integers q[256] (before scaling) */
static inline void mc_unpack_q2k(const uint8_t *b, int8_t *q) {
    const uint8_t *qs = b + 16;
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            MC_SIMD for (int l = 0; l < 32; l++) q[n * 128 + j * 32 + l] = (qs[n * 32 + l] >> (2 * j)) & 3;
}

static inline void mc_unpack_q3k(const uint8_t *b, int8_t *q) {
    const uint8_t *hm = b, *qs = b + 32;
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            MC_SIMD for (int l = 0; l < 32; l++) {
                const int lo = (qs[n * 32 + l] >> (2 * j)) & 3;
                const int hbit = (hm[l] >> (n * 4 + j)) & 1;
                q[n * 128 + j * 32 + l] = (int8_t)(lo - (hbit ? 0 : 4));
            }
}

static inline void mc_unpack_q4k(const uint8_t *b, int8_t *q) {
    const uint8_t *qs = b + 16;
    for (int n = 0; n < 4; n++)
        MC_SIMD for (int l = 0; l < 32; l++) {
            q[n * 64 + l] = qs[n * 32 + l] & 0xF;
            q[n * 64 + 32 + l] = qs[n * 32 + l] >> 4;
        }
}

static inline void mc_unpack_q5k(const uint8_t *b, int8_t *q) {
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int n = 0; n < 4; n++)
        MC_SIMD for (int l = 0; l < 32; l++) {
            q[n * 64 + l] = (qs[n * 32 + l] & 0xF) | (((qh[l] >> (2 * n)) & 1) << 4);
            q[n * 64 + 32 + l] = (qs[n * 32 + l] >> 4) | (((qh[l] >> (2 * n + 1)) & 1) << 4);
        }
}

static inline void mc_unpack_q6k(const uint8_t *b, int8_t *q) {
    const uint8_t *ql = b, *qh = b + 128;
    for (int n = 0; n < 2; n++)
        MC_SIMD for (int l = 0; l < 32; l++) {
            const uint8_t *L = ql + n * 64, *H = qh + n * 32;
            int8_t *y = q + n * 128;
            y[l] = (int8_t)(((L[l] & 0xF) | (((H[l] >> 0) & 3) << 4)) - 32);
            y[l + 32] = (int8_t)(((L[l + 32] & 0xF) | (((H[l] >> 2) & 3) << 4)) - 32);
            y[l + 64] = (int8_t)(((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32);
            y[l + 96] = (int8_t)(((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32);
        }
}

static inline void mc_unpack_iq4xs(const uint8_t *b, int8_t *q) {
    const uint8_t *qs = b + 8;
    for (int ib = 0; ib < 8; ib++)
        MC_SIMD for (int j = 0; j < 16; j++) {
            q[ib * 32 + j] = mc_kvalues_iq4nl[qs[ib * 16 + j] & 0xF];
            q[ib * 32 + 16 + j] = mc_kvalues_iq4nl[qs[ib * 16 + j] >> 4];
        }
}

static inline int mc_iq4xs_scale(const uint8_t *b, int ib) {  /* minus 32 */
    const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((mc_rd16(b + 2) >> (2 * ib)) & 3) << 4);
    return ls - 32;
}

/* unpack a 32-wide block into q[32] (the integer part) */
static inline void mc_unpack_q32(int type, const uint8_t *b, int8_t *q) {
    switch (type) {
    case MC_Q4_0:
        MC_SIMD for (int j = 0; j < 16; j++) { q[j] = (int8_t)((b[2 + j] & 0xF) - 8); q[j + 16] = (int8_t)((b[2 + j] >> 4) - 8); }
        break;
    case MC_Q4_1:
        MC_SIMD for (int j = 0; j < 16; j++) { q[j] = b[4 + j] & 0xF; q[j + 16] = b[4 + j] >> 4; }
        break;
    case MC_Q5_0: {
        const uint32_t qh = mc_rd32(b + 2);
        MC_SIMD for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(((b[6 + j] & 0xF) | (((qh >> j) & 1) << 4)) - 16);
            q[j + 16] = (int8_t)(((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
        }
        break;
    }
    case MC_Q5_1: {
        const uint32_t qh = mc_rd32(b + 4);
        MC_SIMD for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)((b[8 + j] & 0xF) | (((qh >> j) & 1) << 4));
            q[j + 16] = (int8_t)((b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
        }
        break;
    }
    case MC_Q8_0:
        memcpy(q, b + 2, 32);
        break;
    case MC_IQ4_NL:
        MC_SIMD for (int j = 0; j < 16; j++) { q[j] = mc_kvalues_iq4nl[b[2 + j] & 0xF]; q[j + 16] = mc_kvalues_iq4nl[b[2 + j] >> 4]; }
        break;
    }
}

static inline float mc_q32_d(int type, const uint8_t *b) { (void)type; return mc_rdf16(b); }
static inline float mc_q32_m(int type, const uint8_t *b) {
    return (type == MC_Q4_1 || type == MC_Q5_1) ? mc_rdf16(b + 2) : 0.0f;
}

static void mc_dequantize_row(int type, const uint8_t *w, int64_t n, float *y) {
    const int ts = mc_type_size(type);
    int8_t q[MC_QKK];
    switch (type) {
    case MC_F32: memcpy(y, w, (size_t)n * 4); return;
    case MC_F16: for (int64_t i = 0; i < n; i++) y[i] = mc_fp16_to_fp32(mc_rd16(w + 2 * i)); return;
    case MC_BF16: for (int64_t i = 0; i < n; i++) y[i] = mc_bf16_to_fp32(mc_rd16(w + 2 * i)); return;
    default: break;
    }
    if (mc_kind(type) == MC_KIND_Q32) {
        for (int64_t ib = 0; ib < n / MC_QK; ib++, w += ts, y += MC_QK) {
            const float d = mc_q32_d(type, w);
            mc_unpack_q32(type, w, q);
            if (type == MC_Q4_1 || type == MC_Q5_1) {
                const float m = mc_q32_m(type, w);
                for (int j = 0; j < MC_QK; j++) y[j] = d * (float)q[j] + m;
            } else {
                for (int j = 0; j < MC_QK; j++) y[j] = d * (float)q[j];
            }
        }
        return;
    }
    for (int64_t ib = 0; ib < n / MC_QKK; ib++, w += ts, y += MC_QKK) {
        switch (type) {
        case MC_Q2_K: {
            const float d = mc_rdf16(w + 80), dmin = mc_rdf16(w + 82);
            mc_unpack_q2k(w, q);
            for (int g = 0; g < 16; g++) {
                const float dl = d * (float)(w[g] & 0xF), ml = dmin * (float)(w[g] >> 4);
                MC_SIMD for (int l = 0; l < 16; l++) y[g * 16 + l] = dl * (float)q[g * 16 + l] - ml;
            }
            break;
        }
        case MC_Q3_K: {
            const float d = mc_rdf16(w + 108);
            int8_t sc[16];
            mc_scales_q3k(w + 96, sc);
            mc_unpack_q3k(w, q);
            for (int g = 0; g < 16; g++) {
                const float dl = d * (float)sc[g];
                MC_SIMD for (int l = 0; l < 16; l++) y[g * 16 + l] = dl * (float)q[g * 16 + l];
            }
            break;
        }
        case MC_Q4_K: case MC_Q5_K: {
            const float d = mc_rdf16(w), dmin = mc_rdf16(w + 2);
            if (type == MC_Q4_K) mc_unpack_q4k(w, q); else mc_unpack_q5k(w, q);
            for (int g = 0; g < 8; g++) {
                uint8_t sc, m;
                mc_scale_min_k4(g, w + 4, &sc, &m);
                const float dl = d * (float)sc, ml = dmin * (float)m;
                MC_SIMD for (int l = 0; l < 32; l++) y[g * 32 + l] = dl * (float)q[g * 32 + l] - ml;
            }
            break;
        }
        case MC_Q6_K: {
            const float d = mc_rdf16(w + 208);
            const int8_t *sc = (const int8_t *)(w + 192);
            mc_unpack_q6k(w, q);
            for (int g = 0; g < 16; g++) {
                const float dl = d * (float)sc[g];
                MC_SIMD for (int l = 0; l < 16; l++) y[g * 16 + l] = dl * (float)q[g * 16 + l];
            }
            break;
        }
        case MC_IQ4_XS: {
            const float d = mc_rdf16(w);
            mc_unpack_iq4xs(w, q);
            for (int g = 0; g < 8; g++) {
                const float dl = d * (float)mc_iq4xs_scale(w, g);
                MC_SIMD for (int l = 0; l < 32; l++) y[g * 32 + l] = dl * (float)q[g * 32 + l];
            }
            break;
        }
        }
    }
}

/* IQ4_NL's grid as handed to mc_dot4_s8 (plus MC_S8_BIAS) */
#define MC_K(v) (uint8_t)((v) + MC_S8_BIAS)
static const mc_u8x16 mc_kvalues_iq4nl_b = {MC_K(-127), MC_K(-104), MC_K(-83), MC_K(-65), MC_K(-49), MC_K(-35),
    MC_K(-22), MC_K(-10), MC_K(1), MC_K(13), MC_K(25), MC_K(38), MC_K(53), MC_K(69), MC_K(89), MC_K(113)};
#undef MC_K

/* ------------------------------------------------------------------ */
/* activations: one row quantized once                                   */
/* ------------------------------------------------------------------ */
/* Layouts (each part 64-byte aligned):
 *   FLOAT: float x[n] (rounded through f16/bf16 for F16/BF16 weights, as ggml does)
 *   Q32:   in groups of 4 blocks (128 values, G = ceil(n / 128) groups, zero-padded), group g's 256 bytes
 *          at 256 g (one pointer walks a row: the kernel keeps fewer addresses in registers):
 *          int8 q[128]: the group's values in parts of NB = MC_VB / 16 blocks (one native vector of
 *            4-bit weights: NB blocks' bytes): value j < 16 of block i at 32 NB p + 16 (i % NB) + j,
 *            value 16 + j 16 NB bytes further, where p = (i % 4) / NB is the block's part (the order
 *            in which a part's 4-bit weights come out of their bytes: low nibbles, high nibbles);
 *          float dx[16] at +128: block i's scale (f16-rounded) in lanes 4i..4i+3;
 *          int32 ox[16] at +192: the dots' starting values: minus the weight type's offset times the
 *            sums of q that each lane covers (so the offset's share comes out exactly, for free);
 *          then, after the G groups, float s[4 G]: f16(d * sum q) per block (ggml's Q8_1), for the
 *          types with a min
 *   QK:    int8 q[n]; float d[n/256]; int16 bs[n/16] (the sums of 16 q, ggml's Q8_K bsums)
 */

#define MC_NB (MC_VB / 16)   /* 32-wide blocks per native vector of their 4-bit weights */

typedef struct { const int8_t *q; const float *d; const int16_t *bs; } mc_actk;

static inline mc_actk mc_actk_view(const uint8_t *a, int64_t n) {
    mc_actk v;
    v.q = (const int8_t *)a;
    v.d = (const float *)(a + mc_round_up((size_t)n));
    v.bs = (const int16_t *)((const uint8_t *)v.d + mc_round_up((size_t)(n / MC_QKK) * 4));
    return v;
}

/* the offset that mc_q32_part adds to a 32-wide type's integers */
static inline int mc_q32_offset(int type) {
    switch (type) {
    case MC_Q4_0: return 8;
    case MC_Q5_0: return 16;
    case MC_Q8_0: case MC_IQ4_NL: return MC_S8_BIAS;
    default: return 0;
    }
}

static void mc_quantize_act(int type, const float *x, int64_t n, uint8_t *a) {
    const int kind = mc_kind(type);
    if (kind == MC_KIND_FLOAT) {
        float *y = (float *)a;
        if (type == MC_F16) for (int64_t i = 0; i < n; i++) y[i] = mc_round_fp16(x[i]);
        else if (type == MC_BF16) for (int64_t i = 0; i < n; i++) y[i] = mc_bf16_to_fp32(mc_fp32_to_bf16(x[i]));
        else memcpy(y, x, (size_t)n * 4);
        return;
    }
    int8_t *q = (int8_t *)a;
    if (kind == MC_KIND_Q32) {
        const int64_t nb = n / MC_QK, G = mc_groups(n);
        const int off = mc_q32_offset(type);
        float *s = (float *)(a + 256 * G);
        memset(a, 0, mc_act_bytes(type, n));
        for (int64_t ib = 0; ib < nb; ib++) {
            const float *xb = x + ib * MC_QK;
            const int i4 = (int)(ib % 4);
            uint8_t *grp = a + 256 * (ib / 4);
            int8_t *lo = (int8_t *)grp + 32 * MC_NB * (i4 / MC_NB) + 16 * (i4 % MC_NB), *hi = lo + 16 * MC_NB;
            float *dx = (float *)(grp + 128) + 4 * i4;
            int32_t *o = (int32_t *)(grp + 192) + 4 * i4;
            float amax = 0.0f;
            _Pragma("omp simd reduction(max:amax)")
            for (int j = 0; j < MC_QK; j++) { const float ax = fabsf(xb[j]); amax = ax > amax ? ax : amax; }
            const float db = amax / 127.0f;
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            int sum = 0;
            for (int j = 0; j < MC_QK; j++) {
                const int v = (int)rintf(xb[j] * id);
                (j < 16 ? lo : hi - 16)[j] = (int8_t)v;
                o[(j % 16) / 4] -= off * v;
                sum += v;
            }
            const float d = mc_round_fp16(db);
            for (int l = 0; l < 4; l++) dx[l] = d;
            s[ib] = mc_round_fp16(db * (float)sum);
        }
        return;
    }
    /* Q8_K */
    const int64_t nb = n / MC_QKK;
    float *d = (float *)(a + mc_round_up((size_t)n));
    int16_t *bs = (int16_t *)((uint8_t *)d + mc_round_up((size_t)nb * 4));
    for (int64_t ib = 0; ib < nb; ib++) {
        const float *xb = x + ib * MC_QKK;
        int8_t *qb = q + ib * MC_QKK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MC_QKK; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (amax == 0.0f) {
            d[ib] = 0.0f;
            memset(qb, 0, MC_QKK);
            for (int g = 0; g < 16; g++) bs[ib * 16 + g] = 0;
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < MC_QKK; j++) {
            int v = (int)rintf(iscale * xb[j]);
            qb[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += qb[g * 16 + l];
            bs[ib * 16 + g] = (int16_t)sum;
        }
        d[ib] = 1.0f / iscale;
    }
}

/* ------------------------------------------------------------------ */
/* weights as bytes, ready for the dot products                           */
/* ------------------------------------------------------------------ */
/* The narrow types' integers are made unsigned by an offset (Q4_0's q - 8 becomes q,
 * Q6_K's q - 32 becomes q, ...); the full-range signed ones (Q8_0, IQ4_NL, IQ4_XS)
 * get the ISA's MC_S8_BIAS (0 or 128).  The offset's share is taken back out
 * exactly: with the activation's sums for the 32-wide types, with the Q8_K bsums
 * (together with the K-quants' mins) for the 256-wide ones. */

/* MC_NB 32-wide blocks b[0..NB-1] as their low and high halves: lo holds values 0..15 of block i at
 * bytes 16i..16i+15, hi values 16..31 */
MC_INLINE void mc_q32_part(const int type, const uint8_t **b, mc_u8v *lo, mc_u8v *hi) {
    mc_u8x16 x[MC_NB];
    if (type == MC_Q8_0) {
        for (int i = 0; i < MC_NB; i++) x[i] = mc_ld_u8(b[i] + 2);
        *lo = mc_cat16(x) ^ MC_S8_BIAS;
        for (int i = 0; i < MC_NB; i++) x[i] = mc_ld_u8(b[i] + 18);
        *hi = mc_cat16(x) ^ MC_S8_BIAS;
        return;
    }
    const int o = type == MC_Q4_1 ? 4 : type == MC_Q5_0 ? 6 : type == MC_Q5_1 ? 8 : 2;
    for (int i = 0; i < MC_NB; i++) x[i] = mc_ld_u8(b[i] + o);
    const mc_u8v v = mc_cat16(x);
    *lo = v & 0xF;
    *hi = v >> 4;
    if (type == MC_IQ4_NL) {
        *lo = mc_lut16(mc_kvalues_iq4nl_b, *lo);
        *hi = mc_lut16(mc_kvalues_iq4nl_b, *hi);
    }
    if (type == MC_Q5_0 || type == MC_Q5_1) {   /* the fifth bits: 16 of each block's 32-bit qh per half */
        const int h = type == MC_Q5_0 ? 2 : 4;
        mc_u32x4 qh = {0};
        for (int i = 0; i < MC_NB; i++) qh[i] = mc_rd32(b[i] + h);
        *lo = mc_qh_or(*lo, qh, 0);
        *hi = mc_qh_or(*hi, qh, 1);
    }
}

/* A K-quant super-block's scales: the 16 int8 group scales v (one per 16 weights; or, with per32,
 * 8 of them, one per 32 weights) and the block scale d; and what takes the weights' offset (d *
 * offset * scale) and the mins (dmin * min) back out: f times the sum over the 16-weight groups g of
 * the int8 m[g] times the activation's sum bs[g], an exact integer (mc_madd16).  The weights
 * themselves are unpacked chunk by chunk (mc_qk_chunk), each dotted with every activation row while
 * it is in a register. */
typedef struct { mc_i8x16 v, m; float d, f; } mc_kscales;

#define MC_NC (MC_QKK / MC_VB)
/* how far ahead in the weight row the K-quant kernel asks for the bytes it will need: the hardware's
 * prefetchers stop at 4 KiB pages; 2 KiB ahead took one token's 7B-shape matrices from 27.6 to 32.6 GB/s
 * at 2 threads on AVX2 (the machine's read bandwidth is ~33), 1 KiB and 8 KiB less */
#define MC_PREFETCH_AHEAD 2048
#define MC_PER32(type) ((type) == MC_Q4_K || (type) == MC_Q5_K || (type) == MC_IQ4_XS)

MC_INLINE void mc_qk_scales(const int type, const uint8_t *b, mc_kscales *s) {
    switch (type) {
    case MC_Q4_K: case MC_Q5_K: {
        /* 8 six-bit scales and mins in 12 bytes (w0 w1 w2): sc0-3 | mn0-3 | the low nibbles of sc4-7
         * and mn4-7; the top bits of sc4-7 and mn4-7 are the top two bits of w0's and w1's bytes */
        mc_u32x4 w;
        memcpy(&w, b + 4, 16);   /* 12 scale bytes and 4 of the quants, unused */
        const mc_u32x4 k6 = {0x3f3f3f3fu, 0x0f0f0f0fu, 0x3f3f3f3fu, 0x0f0f0f0fu};
        const mc_u32x4 k2 = {0, 0x03030303u, 0, 0x03030303u};
        const mc_u32x4 lo = (MC_SHUF4(w, 0, 2, 1, 2) >> (mc_u32x4){0, 0, 0, 4}) & k6;
        const mc_u32x4 hi = ((MC_SHUF4(w, 0, 0, 1, 1) >> 6) & k2) << 4;
        const mc_u32x4 words = lo | hi;   /* bytes: scales 0-7, mins 0-7 */
        memcpy(&s->v, &words, 16);
        s->m = MC_PAIRS(s->v, 8);   /* mins 0-7 (below 64), each for two groups of 16 */
        s->d = mc_rdf16(b);
        s->f = mc_rdf16(b + 2);
        break;
    }
    case MC_Q6_K:
        memcpy(&s->v, b + 192, 16);
        s->m = s->v;                /* the offset 32 times each scale */
        s->d = mc_rdf16(b + 208);
        s->f = s->d * 32.0f;
        break;
    case MC_Q2_K: {
        const mc_u8x16 S = mc_ld_u8(b);
        s->v = (mc_i8x16)(S & 0xF);
        s->m = (mc_i8x16)(S >> 4);
        s->d = mc_rdf16(b + 80);
        s->f = mc_rdf16(b + 82);
        break;
    }
    case MC_Q3_K: {
        int8_t s8[16];   /* all below 64 in magnitude */
        mc_scales_q3k(b + 96, s8);
        memcpy(&s->v, s8, 16);
        s->m = s->v;                /* the offset 4 times each scale */
        s->d = mc_rdf16(b + 108);
        s->f = s->d * 4.0f;
        break;
    }
    case MC_IQ4_XS: {   /* full-range signed weights: mc_row_qk takes mc_dot4_s8 and int32 scales */
        int8_t ls[16] = {0};
        for (int ib = 0; ib < 8; ib++) ls[ib] = (int8_t)mc_iq4xs_scale(b, ib);
        memcpy(&s->v, ls, 16);
        s->m = (mc_i8x16){0};       /* no offset: mc_row_qk takes MC_S8_BIAS out exactly */
        s->d = mc_rdf16(b);
        s->f = 0.0f;
        break;
    }
    }
}

/* piece r (MC_W bytes) of segment k (weights 32k .. 32k+31) of a super-block, as unsigned integers
 * (IQ4_XS: indices into its grid); k and r are constants once the chunk loop is unrolled */
MC_INLINE mc_u8w mc_qk_piece(const int type, const uint8_t *b, const int k, const int r) {
    switch (type) {
    case MC_Q4_K: case MC_Q5_K: {   /* segments 2m and 2m+1: the low and high nibbles of 32 bytes */
        const mc_u8w x = mc_ld_u8w(b + (type == MC_Q4_K ? 16 : 48) + 32 * (k / 2) + MC_W * r);
        mc_u8w q = k % 2 ? x >> 4 : x & 0xF;
        if (type == MC_Q5_K) q |= ((mc_ld_u8w(b + 16 + MC_W * r) >> k) & 1) << 4;
        return q;
    }
    case MC_Q6_K: {   /* half n: 4 nibble planes of 64 bytes, the 2 high bits of 4 weights in each of 32 */
        const int n = k / 4, j = k % 4;
        const mc_u8w L = mc_ld_u8w(b + 64 * n + 32 * (j % 2) + MC_W * r);
        const mc_u8w H = mc_ld_u8w(b + 128 + 32 * n + MC_W * r);
        /* bits 2j, 2j+1 of H to bits 4, 5: a 16-bit shift (x86 has no byte shifts) and a mask that keeps
         * only bits that came from the same byte */
        const mc_u16w h = (mc_u16w)H;
        const mc_u8w hb = (mc_u8w)(j == 0 ? h << 4 : j == 1 ? h << 2 : j == 2 ? h : h >> 2) & 0x30;
        return (j < 2 ? L & 0xF : L >> 4) | hb;
    }
    case MC_Q2_K: case MC_Q3_K: {   /* half n: 32 bytes of 2-bit weights, plane j; Q3_K's third bit */
        const int n = k / 4, j = k % 4;
        mc_u8w y = (mc_ld_u8w(b + (type == MC_Q2_K ? 16 : 32) + 32 * n + MC_W * r) >> (2 * j)) & 3;
        if (type == MC_Q3_K) y |= ((mc_ld_u8w(b + MC_W * r) >> (4 * n + j)) & 1) << 2;
        return y;
    }
    default: {   /* IQ4_XS sub-block k: 16 bytes, low nibbles (weights 0-15) then high nibbles (16-31) */
        const mc_u8x16 x = mc_ld_u8(b + 8 + 16 * k);
#if MC_W == 32
        const mc_u8x16 p[2] = {x & 0xF, x >> 4};
        mc_u8w q;
        memcpy(&q, p, 32);
        return q;
#else
        return (mc_u8w)(r ? x >> 4 : x & 0xF);
#endif
    }
    }
}

/* chunk c of a super-block: weights c * MC_VB .. + MC_VB, ready for the dot products */
MC_INLINE mc_u8v mc_qk_chunk(const int type, const uint8_t *b, const int c) {
#if MC_VB == 64
    const mc_u8x32 p[2] = {(mc_u8x32)mc_qk_piece(type, b, 2 * c, 0), (mc_u8x32)mc_qk_piece(type, b, 2 * c + 1, 0)};
    const mc_u8v q = mc_cat32(p);
#elif MC_VB == 32
    const mc_u8v q = (mc_u8v)mc_qk_piece(type, b, c, 0);
#else
    const mc_u8v q = (mc_u8v)mc_qk_piece(type, b, c / 2, c % 2);
#endif
    return type == MC_IQ4_XS ? mc_lut16(mc_kvalues_iq4nl_b, q) : q;
}

/* ------------------------------------------------------------------ */
/* products: T activation rows against a weight row                      */
/* ------------------------------------------------------------------ */
/* Each block of the weight row is unpacked once into registers and dotted with
 * the T activation rows; every (row, activation) pair goes through the same
 * operations in the same order whatever T is, so a matmul row equals matvec
 * bit for bit.  The float sums run over 16 logical lanes (MC_NH native vectors; the
 * K-quants fold their exact integers to 8 first) in the same order whatever MC_VB,
 * so every ISA layer gives the same floats. */

/* 8 logical lanes from the 16 of MC_NH native vectors: lane i + lane i + 8 (int32 lanes: exact) */
#if MC_VB == 64
#define MC_FOLD8(v) (MC_BSHUF((v)[0], MC_I8(0)) + MC_BSHUF((v)[0], MC_I8(8)))
#elif MC_VB == 32
#define MC_FOLD8(v) ((v)[0] + (v)[1])
#else
#define MC_FOLD8(v) __builtin_shufflevector((v)[0] + (v)[2], (v)[1] + (v)[3], 0, 1, 2, 3, 4, 5, 6, 7)
#endif
MC_INLINE mc_i32x8 mc_fold8(const mc_i32v *v) { return MC_FOLD8(v); }
MC_INLINE mc_f32x8 mc_fold8f(const mc_f32v *v) { return MC_FOLD8(v); }
#undef MC_FOLD8

/* the sum of 8 float lanes in a fixed tree (lane i + lane i + 4, then i + 2, then i + 1): the same
 * float on every layer, a few vector adds instead of a chain of scalar ones */
MC_INLINE float mc_sum8(mc_f32x8 v) {
    const mc_f32x4 h = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return (h[0] + h[2]) + (h[1] + h[3]);
}

/* the sum of the 16 logical float lanes of MC_NH native vectors: lanes i and i + 8 first, then mc_sum8 */
MC_INLINE float mc_sum16(const mc_f32v *v) { return mc_sum8(mc_fold8f(v)); }

/* one group of four 32-wide blocks at b (ts bytes each; only the first `left` of them in the row: the
 * last group of a row may have 1-3) against T activation groups (ag + t * act_stride), MC_NB blocks per
 * part: acc[t][h] += the group's 16 float lanes, accm[t] += its mins' share.  A missing block repeats the
 * row's last one (no read past the row) with a zero scale (the activation's padding is zero too). */
MC_INLINE void mc_group_q32(const int type, const int T, const uint8_t *b, const int ts, const int left,
                            const uint8_t *ag, int64_t act_stride, const float *s, mc_f32v acc[][MC_NH],
                            float *accm) {
    const int has_m = type == MC_Q4_1 || type == MC_Q5_1;
    const int s8 = type == MC_Q8_0 || type == MC_IQ4_NL;   /* full-range signed weights */
    for (int h = 0; h < MC_NH; h++) {
        const uint8_t *bh[MC_NB];
        for (int i = 0; i < MC_NB; i++) bh[i] = b + (MC_NB * h + i < left ? MC_NB * h + i : left - 1) * ts;
        mc_u8v lo, hi;
        mc_q32_part(type, bh, &lo, &hi);
        mc_f32v ws;
        if (left >= 4) {
            ws = mc_spread_f16(bh[0], ts);
        } else {
            for (int l = 0; l < MC_L32; l++) {
                const int i = MC_NB * h + l / 4;
                ws[l] = i < left ? mc_rdf16(b + i * ts) : 0.0f;
            }
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *x = ag + t * act_stride;
            const int8_t *q = (const int8_t *)x + 32 * MC_NB * h;
            /* the dot starts from minus the offset's share (the types without one start from zero) */
            mc_i32v dot = mc_q32_offset(type) ? mc_ld_i32v((const int32_t *)(x + 192) + MC_L32 * h) : (mc_i32v){0};
            if (s8) dot = mc_dot4_s8(mc_dot4_s8(dot, lo, mc_ld_i8v(q)), hi, mc_ld_i8v(q + 16 * MC_NB));
            else dot = mc_dot4_u7(mc_dot4_u7(dot, lo, mc_ld_i8v(q)), hi, mc_ld_i8v(q + 16 * MC_NB));
            acc[t][h] += (ws * mc_ld_f32v((const float *)(x + 128) + MC_L32 * h)) * mc_f32(dot);
        }
    }
    if (has_m) {
        float m[4];
        for (int i = 0; i < 4; i++) m[i] = i < left ? mc_rdf16(b + i * ts + 2) : 0.0f;
        for (int t = 0; t < T; t++) {
            const float *sb = (const float *)((const uint8_t *)s + t * act_stride);
            accm[t] += (m[0] * sb[0] + m[1] * sb[1]) + (m[2] * sb[2] + m[3] * sb[3]);
        }
    }
}

/* out[t * ldo] = W_row . A[t] for t < T, a 32-wide type, a group of four blocks at a time */
MC_INLINE void mc_row_q32(const int type, const int T, const uint8_t *w, int64_t n,
                          const uint8_t *a, int64_t act_stride, float *out, int64_t ldo) {
    const int ts = mc_type_size(type);
    const int64_t nb = n / MC_QK, G = mc_groups(n), full = nb / 4;
    const float *s = (const float *)(a + 256 * G);
    mc_f32v acc[MC_TILE][MC_NH];
    float accm[MC_TILE];
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < MC_NH; h++) acc[t][h] = (mc_f32v){0};
        accm[t] = 0.0f;
    }
    for (int64_t g = 0; g < full; g++)
        mc_group_q32(type, T, w + 4 * g * ts, ts, 4, a + 256 * g, act_stride, s + 4 * g, acc, accm);
    if (full < G)
        mc_group_q32(type, T, w + 4 * full * ts, ts, (int)(nb - 4 * full), a + 256 * full, act_stride,
                     s + 4 * full, acc, accm);
    for (int t = 0; t < T; t++) out[t * ldo] = mc_sum16(acc[t]) + accm[t];
}

/* out[t * ldo] = W_row . A[t] for t < T, a K-quant */
MC_INLINE void mc_row_qk(const int type, const int T, const uint8_t *w, int64_t n,
                         const uint8_t *a, int64_t act_stride, float *out, int64_t ldo) {
    const int ts = mc_type_size(type);
    mc_actk av[MC_TILE];
    mc_f32x8 acc[MC_TILE];
    for (int t = 0; t < T; t++) {
        av[t] = mc_actk_view(a + t * act_stride, n);
        acc[t] = (mc_f32x8){0};
    }
    for (int64_t ib = 0; ib < n / MC_QKK; ib++) {
        const uint8_t *b = w + ib * ts;
        for (int l = 0; l < ts; l += 64) __builtin_prefetch(b + MC_PREFETCH_AHEAD + l);   /* never faults */
        mc_kscales s;
        mc_qk_scales(type, b, &s);
        mc_i32v isum[MC_TILE][MC_NH];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < MC_NH; h++) isum[t][h] = (mc_i32v){0};
        MC_UNROLL   /* c must be a constant in each copy: it picks shifts, offsets and registers */
        for (int c = 0; c < MC_NC; c++) {
            const mc_u8v q = mc_qk_chunk(type, b, c);
            const mc_i16v sc = mc_spread_sc(s.v, c, MC_PER32(type));
            for (int t = 0; t < T; t++) {
                const mc_i8v xc = mc_ld_i8v(av[t].q + ib * MC_QKK + MC_VB * c);
                if (type == MC_IQ4_XS) {   /* int16 lanes 2i and 2i+1 share a scale: take it as int32 */
                    mc_i32v dot = mc_dot4_s8((mc_i32v){0}, q, xc);
                    if (MC_S8_BIAS)   /* the bias's share out in int32: every layer's exact w . x */
                        dot -= MC_S8_BIAS * mc_dot4_u7((mc_i32v){0}, (mc_u8v){0} + 1, xc);
                    isum[t][c % MC_NH] += (((mc_i32v)sc << 16) >> 16) * dot;
                } else {
                    isum[t][c % MC_NH] = mc_dot4_sc(isum[t][c % MC_NH], q, xc, sc);
                }
            }
        }
        /* the super-block's part in 8 float lanes: every layer folds the same exact integers */
        for (int t = 0; t < T; t++) {
            const mc_f32x8 x = s.d * __builtin_convertvector(mc_fold8(isum[t]), mc_f32x8);
            const mc_f32x8 m = s.f * __builtin_convertvector(mc_madd16(s.m, av[t].bs + 16 * ib), mc_f32x8);
            acc[t] += av[t].d[ib] * (x - m);
        }
    }
    for (int t = 0; t < T; t++) out[t * ldo] = mc_sum8(acc[t]);
}

/* one weight row of F32/F16/BF16 . float activations (already rounded to the weight's type) */
MC_INLINE float mc_vecdot_float(const int type, const uint8_t *w, const float *x, int64_t n) {
    mc_f32v acc[MC_NH];
    for (int h = 0; h < MC_NH; h++) acc[h] = (mc_f32v){0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int h = 0; h < MC_NH; h++) {
            const int64_t k = i + MC_L32 * h;
            const mc_f32v wv = type == MC_F32 ? mc_ld_f32v((const float *)w + k)
                               : type == MC_F16 ? mc_f16v_to_f32(w + 2 * k) : mc_bf16v_to_f32(w + 2 * k);
            acc[h] += wv * mc_ld_f32v(x + k);
        }
    float s = mc_sum16(acc);
    for (; i < n; i++) {
        const float wi = type == MC_F32 ? ((const float *)w)[i]
                         : type == MC_F16 ? mc_fp16_to_fp32(mc_rd16(w + 2 * i)) : mc_bf16_to_fp32(mc_rd16(w + 2 * i));
        s += wi * x[i];
    }
    return s;
}

/* out[t * ldo] = W_row . A[t] for t < T, a float type (each activation row against the raw row) */
MC_INLINE void mc_row_float(const int type, const int T, const uint8_t *w, int64_t n,
                            const uint8_t *a, int64_t act_stride, float *out, int64_t ldo) {
    for (int t = 0; t < T; t++) out[t * ldo] = mc_vecdot_float(type, w, (const float *)(a + t * act_stride), n);
}

/* out[j * ldo + r] = W[r] . A[j] for r in [r0, r1), j in [0, ntok): W row r at w + r * stride, the
 * quantized activation row j at a + j * act_stride.  Activations go MC_TILE rows at a time (then 4,
 * then what is left) past every weight row of the range (which stays in cache while they pass). */
MC_INLINE void mc_matmul_rows_t(const int type, const uint8_t *w, int64_t stride, int64_t n,
                                int64_t r0, int64_t r1, const uint8_t *a, int64_t act_stride, int64_t ntok,
                                float *out, int64_t ldo) {
    const int kind = mc_kind(type);
    int T;
    for (int64_t j = 0; j < ntok; j += T) {
        const int64_t left = ntok - j;
        T = left >= MC_TILE ? MC_TILE : left >= 4 ? 4 : (int)left;
        const uint8_t *aj = a + j * act_stride;
        for (int64_t r = r0; r < r1; r++) {
            float *o = out + j * ldo + r;
            const uint8_t *wr = w + r * stride;
#define MC_T(K) \
            if (MC_TILE >= 8 && T == 8) K(type, 8, wr, n, aj, act_stride, o, ldo); \
            else if (MC_TILE >= 4 && T == 4) K(type, 4, wr, n, aj, act_stride, o, ldo); \
            else if (MC_TILE >= 3 && T == 3) K(type, 3, wr, n, aj, act_stride, o, ldo); \
            else if (MC_TILE >= 2 && T == 2) K(type, 2, wr, n, aj, act_stride, o, ldo); \
            else K(type, 1, wr, n, aj, act_stride, o, ldo);
            if (kind == MC_KIND_Q32) { MC_T(mc_row_q32) }
            else if (kind == MC_KIND_QK) { MC_T(mc_row_qk) }
            else { MC_T(mc_row_float) }
#undef MC_T
        }
    }
}

#define MC_CASE(T) case T: mc_matmul_rows_t(T, w, stride, n, r0, r1, a, act_stride, ntok, out, ldo); break
static void mc_matmul_rows(int type, const uint8_t *w, int64_t stride, int64_t n, int64_t r0, int64_t r1,
                           const uint8_t *a, int64_t act_stride, int64_t ntok, float *out, int64_t ldo) {
    switch (type) {
    MC_CASE(MC_F32); MC_CASE(MC_F16); MC_CASE(MC_BF16);
    MC_CASE(MC_Q4_0); MC_CASE(MC_Q4_1); MC_CASE(MC_Q5_0); MC_CASE(MC_Q5_1); MC_CASE(MC_Q8_0); MC_CASE(MC_IQ4_NL);
    MC_CASE(MC_Q2_K); MC_CASE(MC_Q3_K); MC_CASE(MC_Q4_K); MC_CASE(MC_Q5_K); MC_CASE(MC_Q6_K); MC_CASE(MC_IQ4_XS);
    default: break;
    }
}
#undef MC_CASE

/* out[r] = W[r] . a for r in [r0, r1) */
static void mc_matvec_rows(int type, const uint8_t *w, int64_t stride, int64_t n, int64_t r0, int64_t r1,
                           const uint8_t *act, float *out) {
    mc_matmul_rows(type, w, stride, n, r0, r1, act, 0, 1, out, 0);
}

/* the sum of n 64-bit words: a memory read bandwidth probe for the benchmark */
typedef uint64_t mc_u64v __attribute__((vector_size(MC_VB)));
static uint64_t mc_read_words(const uint8_t *p, int64_t n) {
    const int64_t per = MC_VB / 2;   /* words per pass: four native vectors */
    mc_u64v acc[4] = {{0}, {0}, {0}, {0}};
    int64_t i = 0;
    for (; i + per <= n; i += per)
        for (int k = 0; k < 4; k++) {
            mc_u64v v;
            memcpy(&v, p + 8 * i + MC_VB * k, MC_VB);
            acc[k] += v;
        }
    uint64_t s = 0;
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < MC_VB / 8; l++) s += acc[k][l];
    for (; i < n; i++) { uint64_t v; memcpy(&v, p + 8 * i, 8); s += v; }
    return s;
}

#endif /* MC_KERNELS_H */
