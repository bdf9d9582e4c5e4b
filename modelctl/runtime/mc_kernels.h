/* modelctl's quantized kernels: plain C loops the compiler vectorises.
 *
 * The route is ggml's.  An activation row is quantized once to 8 bits per
 * block (Q8_0-style for the 32-wide types, Q8_K-style for the 256-wide
 * K-quants and IQ4_XS; float16/bfloat16 rounding for F16/BF16 weights).  A
 * weight row is decoded block by block into a "canonical" form (int8 or int16
 * integers plus one float scale, and possibly a min, per block) and the dot
 * product is an integer sum per block with the scales applied once per block.
 * The integer sums are exact, so the result differs from llama.cpp's only in
 * the order of a few float additions.
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
 *
 * Dequantization (mc_dequantize_row) reproduces gguf-py's NumPy reference
 * bit for bit: same operations in the same order, no FMA contraction (the
 * extension is built with -ffp-contract=off).
 */
#ifndef MC_KERNELS_H
#define MC_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ggml type ids */
enum {
    MC_F32 = 0, MC_F16 = 1, MC_Q4_0 = 2, MC_Q4_1 = 3, MC_Q5_0 = 6, MC_Q5_1 = 7, MC_Q8_0 = 8,
    MC_Q2_K = 10, MC_Q3_K = 11, MC_Q4_K = 12, MC_Q5_K = 13, MC_Q6_K = 14,
    MC_IQ4_NL = 20, MC_IQ4_XS = 23, MC_BF16 = 30,
};

/* how a type is computed */
enum { MC_KIND_NONE = 0, MC_KIND_FLOAT = 1, MC_KIND_Q32 = 2, MC_KIND_QK = 3 };

#define MC_QK 32
#define MC_QKK 256
#define MC_ALIGN 64

static const int8_t mc_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1, 13, 25, 38, 53, 69, 89, 113};

/* ------------------------------------------------------------------ */
/* float16 / bfloat16 conversions (exact, branch-free, vectorisable)  */
/* ------------------------------------------------------------------ */

static inline float mc_f32_from_bits(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }
static inline uint32_t mc_bits_from_f32(float f) { uint32_t w; memcpy(&w, &f, 4); return w; }

static inline float mc_fp16_to_fp32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    /* normal numbers: move the exponent and mantissa into place, rescale */
    const float normalized = mc_f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    /* subnormals: build 0.5 + m * 2^-24 and subtract 0.5 */
    const float denormalized = mc_f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t bits = two_w < (1u << 27) ? mc_bits_from_f32(denormalized) : mc_bits_from_f32(normalized);
    return mc_f32_from_bits(sign | bits);
}

static inline uint16_t mc_fp32_to_fp16(float f) {   /* round to nearest even, like F16C */
    float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = mc_bits_from_f32(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = mc_f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = mc_bits_from_f32(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float mc_round_fp16(float f) { return mc_fp16_to_fp32(mc_fp32_to_fp16(f)); }

static inline float mc_bf16_to_fp32(uint16_t h) { return mc_f32_from_bits((uint32_t)h << 16); }

static inline uint16_t mc_fp32_to_bf16(float f) {   /* ggml's rounding: nearest even, quiet NaN */
    const uint32_t u = mc_bits_from_f32(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

static inline uint16_t mc_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t mc_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline float mc_rdf16(const uint8_t *p) { return mc_fp16_to_fp32(mc_rd16(p)); }

/* ------------------------------------------------------------------ */
/* type table                                                          */
/* ------------------------------------------------------------------ */

static inline int mc_kind(int type) {
    switch (type) {
    case MC_F32: case MC_F16: case MC_BF16: return MC_KIND_FLOAT;
    case MC_Q4_0: case MC_Q4_1: case MC_Q5_0: case MC_Q5_1: case MC_Q8_0: case MC_IQ4_NL: return MC_KIND_Q32;
    case MC_Q2_K: case MC_Q3_K: case MC_Q4_K: case MC_Q5_K: case MC_Q6_K: case MC_IQ4_XS: return MC_KIND_QK;
    default: return MC_KIND_NONE;
    }
}

static inline int mc_block_size(int type) {
    switch (mc_kind(type)) {
    case MC_KIND_FLOAT: return 1;
    case MC_KIND_Q32: return MC_QK;
    case MC_KIND_QK: return MC_QKK;
    default: return 0;
    }
}

static inline int mc_type_size(int type) {
    switch (type) {
    case MC_F32: return 4;
    case MC_F16: case MC_BF16: return 2;
    case MC_Q4_0: return 18; case MC_Q4_1: return 20; case MC_Q5_0: return 22;
    case MC_Q5_1: return 24; case MC_Q8_0: return 34; case MC_IQ4_NL: return 18;
    case MC_Q2_K: return 84; case MC_Q3_K: return 110; case MC_Q4_K: return 144;
    case MC_Q5_K: return 176; case MC_Q6_K: return 210; case MC_IQ4_XS: return 136;
    default: return 0;
    }
}

static inline size_t mc_round_up(size_t n) { return (n + MC_ALIGN - 1) / MC_ALIGN * MC_ALIGN; }

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
            for (int l = 0; l < 32; l++) q[n * 128 + j * 32 + l] = (qs[n * 32 + l] >> (2 * j)) & 3;
}

static inline void mc_unpack_q3k(const uint8_t *b, int8_t *q) {
    const uint8_t *hm = b, *qs = b + 32;
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                const int lo = (qs[n * 32 + l] >> (2 * j)) & 3;
                const int hbit = (hm[l] >> (n * 4 + j)) & 1;
                q[n * 128 + j * 32 + l] = (int8_t)(lo - (hbit ? 0 : 4));
            }
}

static inline void mc_unpack_q4k(const uint8_t *b, int8_t *q) {
    const uint8_t *qs = b + 16;
    for (int n = 0; n < 4; n++)
        for (int l = 0; l < 32; l++) {
            q[n * 64 + l] = qs[n * 32 + l] & 0xF;
            q[n * 64 + 32 + l] = qs[n * 32 + l] >> 4;
        }
}

static inline void mc_unpack_q5k(const uint8_t *b, int8_t *q) {
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int n = 0; n < 4; n++)
        for (int l = 0; l < 32; l++) {
            q[n * 64 + l] = (qs[n * 32 + l] & 0xF) | (((qh[l] >> (2 * n)) & 1) << 4);
            q[n * 64 + 32 + l] = (qs[n * 32 + l] >> 4) | (((qh[l] >> (2 * n + 1)) & 1) << 4);
        }
}

static inline void mc_unpack_q6k(const uint8_t *b, int8_t *q) {
    const uint8_t *ql = b, *qh = b + 128;
    for (int n = 0; n < 2; n++)
        for (int l = 0; l < 32; l++) {
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
        for (int j = 0; j < 16; j++) {
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
        for (int j = 0; j < 16; j++) { q[j] = (int8_t)((b[2 + j] & 0xF) - 8); q[j + 16] = (int8_t)((b[2 + j] >> 4) - 8); }
        break;
    case MC_Q4_1:
        for (int j = 0; j < 16; j++) { q[j] = b[4 + j] & 0xF; q[j + 16] = b[4 + j] >> 4; }
        break;
    case MC_Q5_0: {
        const uint32_t qh = mc_rd32(b + 2);
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(((b[6 + j] & 0xF) | (((qh >> j) & 1) << 4)) - 16);
            q[j + 16] = (int8_t)(((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
        }
        break;
    }
    case MC_Q5_1: {
        const uint32_t qh = mc_rd32(b + 4);
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)((b[8 + j] & 0xF) | (((qh >> j) & 1) << 4));
            q[j + 16] = (int8_t)((b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
        }
        break;
    }
    case MC_Q8_0:
        memcpy(q, b + 2, 32);
        break;
    case MC_IQ4_NL:
        for (int j = 0; j < 16; j++) { q[j] = mc_kvalues_iq4nl[b[2 + j] & 0xF]; q[j + 16] = mc_kvalues_iq4nl[b[2 + j] >> 4]; }
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
                for (int l = 0; l < 16; l++) y[g * 16 + l] = dl * (float)q[g * 16 + l] - ml;
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
                for (int l = 0; l < 16; l++) y[g * 16 + l] = dl * (float)q[g * 16 + l];
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
                for (int l = 0; l < 32; l++) y[g * 32 + l] = dl * (float)q[g * 32 + l] - ml;
            }
            break;
        }
        case MC_Q6_K: {
            const float d = mc_rdf16(w + 208);
            const int8_t *sc = (const int8_t *)(w + 192);
            mc_unpack_q6k(w, q);
            for (int g = 0; g < 16; g++) {
                const float dl = d * (float)sc[g];
                for (int l = 0; l < 16; l++) y[g * 16 + l] = dl * (float)q[g * 16 + l];
            }
            break;
        }
        case MC_IQ4_XS: {
            const float d = mc_rdf16(w);
            mc_unpack_iq4xs(w, q);
            for (int g = 0; g < 8; g++) {
                const float dl = d * (float)mc_iq4xs_scale(w, g);
                for (int l = 0; l < 32; l++) y[g * 32 + l] = dl * (float)q[g * 32 + l];
            }
            break;
        }
        }
    }
}

/* ------------------------------------------------------------------ */
/* activations: one row quantized once                                   */
/* ------------------------------------------------------------------ */
/* Layouts (structure of arrays, each part 64-byte aligned):
 *   FLOAT: float x[n] (rounded through f16/bf16 for F16/BF16 weights, as ggml does)
 *   Q32:   int8 q[n]; float d[n/32] (f16-rounded); float s[n/32] (= f16(d * sum q), ggml's Q8_1)
 *   QK:    int8 q[n]; float d[n/256]; int16 bsums[n/16]  (ggml's Q8_K)
 */

static inline size_t mc_act_bytes(int type, int64_t n) {
    switch (mc_kind(type)) {
    case MC_KIND_FLOAT: return mc_round_up((size_t)n * 4);
    case MC_KIND_Q32: return mc_round_up((size_t)n) + 2 * mc_round_up((size_t)(n / MC_QK) * 4);
    case MC_KIND_QK: return mc_round_up((size_t)n) + mc_round_up((size_t)(n / MC_QKK) * 4)
                            + mc_round_up((size_t)(n / 16) * 2);
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
        const int64_t nb = n / MC_QK;
        float *d = (float *)(a + mc_round_up((size_t)n));
        float *s = (float *)((uint8_t *)d + mc_round_up((size_t)nb * 4));
        for (int64_t ib = 0; ib < nb; ib++) {
            const float *xb = x + ib * MC_QK;
            float amax = 0.0f;
            for (int j = 0; j < MC_QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
            const float db = amax / 127.0f;
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            int sum = 0;
            for (int j = 0; j < MC_QK; j++) {
                const int v = (int)rintf(xb[j] * id);
                q[ib * MC_QK + j] = (int8_t)v;
                sum += v;
            }
            d[ib] = mc_round_fp16(db);
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
/* weights: one row decoded into the canonical form                      */
/* ------------------------------------------------------------------ */
/* Layouts:
 *   FLOAT: float w[n]
 *   Q32:   int8 q[n]; float d[n/32]; float m[n/32]
 *   QK:    int16 q[n] (integer weight times its sub-block scale); float d[n/256];
 *          float dmin[n/256]; int16 mins[n/16] (per 16 weights; zero for types without mins)
 */

static inline size_t mc_wrow_bytes(int type, int64_t n) {
    switch (mc_kind(type)) {
    case MC_KIND_FLOAT: return mc_round_up((size_t)n * 4);
    case MC_KIND_Q32: return mc_round_up((size_t)n) + 2 * mc_round_up((size_t)(n / MC_QK) * 4);
    case MC_KIND_QK: return mc_round_up((size_t)n * 2) + 2 * mc_round_up((size_t)(n / MC_QKK) * 4)
                            + mc_round_up((size_t)(n / 16) * 2);
    default: return 0;
    }
}

static inline int mc_has_mins(int type) { return type == MC_Q2_K || type == MC_Q4_K || type == MC_Q5_K; }

static void mc_decode_row(int type, const uint8_t *w, int64_t n, uint8_t *buf) {
    const int kind = mc_kind(type);
    const int ts = mc_type_size(type);
    if (kind == MC_KIND_FLOAT) {
        float *y = (float *)buf;
        if (type == MC_F32) memcpy(y, w, (size_t)n * 4);
        else if (type == MC_F16) for (int64_t i = 0; i < n; i++) y[i] = mc_fp16_to_fp32(mc_rd16(w + 2 * i));
        else for (int64_t i = 0; i < n; i++) y[i] = mc_bf16_to_fp32(mc_rd16(w + 2 * i));
        return;
    }
    if (kind == MC_KIND_Q32) {
        const int64_t nb = n / MC_QK;
        int8_t *q = (int8_t *)buf;
        float *d = (float *)(buf + mc_round_up((size_t)n));
        float *m = (float *)((uint8_t *)d + mc_round_up((size_t)nb * 4));
        for (int64_t ib = 0; ib < nb; ib++, w += ts) {
            mc_unpack_q32(type, w, q + ib * MC_QK);
            d[ib] = mc_q32_d(type, w);
            m[ib] = mc_q32_m(type, w);
        }
        return;
    }
    const int64_t nb = n / MC_QKK;
    int16_t *q = (int16_t *)buf;
    float *d = (float *)(buf + mc_round_up((size_t)n * 2));
    float *dmin = (float *)((uint8_t *)d + mc_round_up((size_t)nb * 4));
    int16_t *mins = (int16_t *)((uint8_t *)dmin + mc_round_up((size_t)nb * 4));
    int8_t u[MC_QKK];
    int16_t sc[16];   /* per 16 weights */
    for (int64_t ib = 0; ib < nb; ib++, w += ts) {
        int16_t *qb = q + ib * MC_QKK, *mb = mins + ib * 16;
        switch (type) {
        case MC_Q2_K:
            mc_unpack_q2k(w, u);
            for (int g = 0; g < 16; g++) { sc[g] = w[g] & 0xF; mb[g] = w[g] >> 4; }
            d[ib] = mc_rdf16(w + 80); dmin[ib] = mc_rdf16(w + 82);
            break;
        case MC_Q3_K: {
            int8_t s8[16];
            mc_unpack_q3k(w, u);
            mc_scales_q3k(w + 96, s8);
            for (int g = 0; g < 16; g++) { sc[g] = s8[g]; mb[g] = 0; }
            d[ib] = mc_rdf16(w + 108); dmin[ib] = 0.0f;
            break;
        }
        case MC_Q4_K: case MC_Q5_K:
            if (type == MC_Q4_K) mc_unpack_q4k(w, u); else mc_unpack_q5k(w, u);
            for (int g = 0; g < 8; g++) {
                uint8_t s, m;
                mc_scale_min_k4(g, w + 4, &s, &m);
                sc[2 * g] = sc[2 * g + 1] = s;
                mb[2 * g] = mb[2 * g + 1] = m;
            }
            d[ib] = mc_rdf16(w); dmin[ib] = mc_rdf16(w + 2);
            break;
        case MC_Q6_K:
            mc_unpack_q6k(w, u);
            for (int g = 0; g < 16; g++) { sc[g] = ((const int8_t *)(w + 192))[g]; mb[g] = 0; }
            d[ib] = mc_rdf16(w + 208); dmin[ib] = 0.0f;
            break;
        case MC_IQ4_XS:
            mc_unpack_iq4xs(w, u);
            for (int g = 0; g < 8; g++) { sc[2 * g] = sc[2 * g + 1] = (int16_t)mc_iq4xs_scale(w, g); }
            for (int g = 0; g < 16; g++) mb[g] = 0;
            d[ib] = mc_rdf16(w); dmin[ib] = 0.0f;
            break;
        }
        for (int g = 0; g < 16; g++)
            for (int l = 0; l < 16; l++) qb[g * 16 + l] = (int16_t)(u[g * 16 + l] * sc[g]);
    }
}

/* ------------------------------------------------------------------ */
/* dot products of a decoded weight row with a quantized activation row  */
/* ------------------------------------------------------------------ */

static float mc_dot_float(const float *w, const float *x, int64_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+:s)
    for (int64_t i = 0; i < n; i++) s += w[i] * x[i];
    return s;
}

static float mc_dot_q32(const uint8_t *wb, const uint8_t *ab, int64_t n) {
    const int64_t nb = n / MC_QK;
    const int8_t *wq = (const int8_t *)wb, *aq = (const int8_t *)ab;
    const float *wd = (const float *)(wb + mc_round_up((size_t)n));
    const float *wm = (const float *)((const uint8_t *)wd + mc_round_up((size_t)nb * 4));
    const float *ad = (const float *)(ab + mc_round_up((size_t)n));
    const float *as = (const float *)((const uint8_t *)ad + mc_round_up((size_t)nb * 4));
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        int isum = 0;
        for (int j = 0; j < MC_QK; j++) isum += wq[ib * MC_QK + j] * aq[ib * MC_QK + j];
        acc += (wd[ib] * ad[ib]) * (float)isum + wm[ib] * as[ib];
    }
    return acc;
}

static float mc_dot_qk(int type, const uint8_t *wb, const uint8_t *ab, int64_t n) {
    const int64_t nb = n / MC_QKK;
    const int16_t *wq = (const int16_t *)wb;
    const float *wd = (const float *)(wb + mc_round_up((size_t)n * 2));
    const float *wdmin = (const float *)((const uint8_t *)wd + mc_round_up((size_t)nb * 4));
    const int16_t *wmins = (const int16_t *)((const uint8_t *)wdmin + mc_round_up((size_t)nb * 4));
    const int8_t *aq = (const int8_t *)ab;
    const float *ad = (const float *)(ab + mc_round_up((size_t)n));
    const int16_t *abs_ = (const int16_t *)((const uint8_t *)ad + mc_round_up((size_t)nb * 4));
    const int mins = mc_has_mins(type);
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        int isum = 0;
        for (int j = 0; j < MC_QKK; j++) isum += wq[ib * MC_QKK + j] * aq[ib * MC_QKK + j];
        acc += (wd[ib] * ad[ib]) * (float)isum;
        if (mins) {
            int msum = 0;
            for (int g = 0; g < 16; g++) msum += wmins[ib * 16 + g] * abs_[ib * 16 + g];
            acc -= (wdmin[ib] * ad[ib]) * (float)msum;
        }
    }
    return acc;
}

static inline float mc_dot(int type, const uint8_t *wb, const uint8_t *ab, int64_t n) {
    switch (mc_kind(type)) {
    case MC_KIND_FLOAT: return mc_dot_float((const float *)wb, (const float *)ab, n);
    case MC_KIND_Q32: return mc_dot_q32(wb, ab, n);
    case MC_KIND_QK: return mc_dot_qk(type, wb, ab, n);
    default: return 0.0f;
    }
}

/* ------------------------------------------------------------------ */
/* a block of weight rows times all activation rows                     */
/* ------------------------------------------------------------------ */

/* out[j * ldo + r] = W[r] . X[j] for r in [r0, r1), j in [0, n).
 * W rows start at w (row r at w + r * wrow_stride); activations (already
 * quantized) at a, row j at a + j * act_stride; wbuf holds (r1 - r0) decoded
 * rows of wrow_bytes each.  Each weight row is decoded once for all n rows. */
static void mc_matmul_rows(int type, const uint8_t *w, int64_t wrow_stride, int64_t cols,
                           int64_t r0, int64_t r1, const uint8_t *a, int64_t act_stride, int64_t n,
                           float *out, int64_t ldo, uint8_t *wbuf) {
    const size_t wrb = mc_wrow_bytes(type, cols);
    for (int64_t r = r0; r < r1; r++) mc_decode_row(type, w + r * wrow_stride, cols, wbuf + (r - r0) * wrb);
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *aj = a + j * act_stride;
        for (int64_t r = r0; r < r1; r++) out[j * ldo + r] = mc_dot(type, wbuf + (r - r0) * wrb, aj, cols);
    }
}

#endif /* MC_KERNELS_H */
