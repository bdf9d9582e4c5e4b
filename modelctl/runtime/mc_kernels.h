/* modelctl's quantized kernels: plain C, vectorised by the compiler.
 *
 * The route is ggml's.  An activation row is quantized once to 8 bits per
 * block (Q8_0/Q8_1-style for the 32-wide types, Q8_K-style for the 256-wide
 * K-quants and IQ4_XS; float16/bfloat16 rounding for F16/BF16 weights), and
 * the dot product with a weight row is an exact integer sum per block with
 * the scales applied once per block, so results differ from llama.cpp's only
 * in the order of float additions.
 *
 *   matvec (mc_matvec_rows): each weight block is unpacked in registers and
 *     dotted at once, one specialised loop per type;
 *   matmul (mc_matmul_rows): a few weight rows are unpacked once into int16
 *     rows with their scales, then dotted with every activation row (two by
 *     two for the 32-wide types); row j equals matvec of activation j bit for bit;
 *   dequantization (mc_dequantize_row) reproduces gguf-py's NumPy reference
 *     bit for bit: same operations in the same order, no FMA contraction (the
 *     extension is built with -ffp-contract=off).
 *
 * The inner loops use 16-lane generic vectors (GCC/Clang vector extensions,
 * no ISA intrinsics): the compiler picks AVX-512, AVX2, SSE2 or NEON.
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

/* ask the compiler to vectorise a loop (OpenMP SIMD; the build passes -fopenmp) */
#if defined(_OPENMP)
#define MC_SIMD _Pragma("omp simd")
#else
#define MC_SIMD
#endif

/* the per-type kernels must be specialised: force inlining of the helpers that take the type */
#if defined(__GNUC__)
#define MC_INLINE static inline __attribute__((always_inline))
#else
#define MC_INLINE static inline
#endif

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

/* portable, exact, branch-free conversions (used where the CPU has none) */
static inline float mc_fp16_to_fp32_soft(uint16_t h) {
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

static inline uint16_t mc_fp32_to_fp16_soft(float f) {   /* round to nearest even, like F16C */
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
#if defined(__F16C__) && defined(__FLT16_MAX__)
/* the CPU converts (vcvtph2ps / vcvtps2ph, round to nearest even) */
static inline float mc_fp16_to_fp32(uint16_t h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }
static inline uint16_t mc_fp32_to_fp16(float f) { _Float16 h = (_Float16)f; uint16_t u; memcpy(&u, &h, 2); return u; }
#else
static inline float mc_fp16_to_fp32(uint16_t h) { return mc_fp16_to_fp32_soft(h); }
static inline uint16_t mc_fp32_to_fp16(float f) { return mc_fp32_to_fp16_soft(f); }
#endif

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

/* ------------------------------------------------------------------ */
/* activations: one row quantized once                                   */
/* ------------------------------------------------------------------ */
/* Layouts (structure of arrays, each part 64-byte aligned):
 *   FLOAT: float x[n] (rounded through f16/bf16 for F16/BF16 weights, as ggml does)
 *   Q32:   q[n]; float d[n/32] (f16-rounded); float s[n/32] (= f16(d * sum q), ggml's Q8_1)
 *   QK:    q[n]; float d[n/256]; int16 bsums[n/16]  (ggml's Q8_K)
 * The 8-bit integers q are stored widened to int16, ready for the dot products.
 */

static inline size_t mc_act_bytes(int type, int64_t n) {
    switch (mc_kind(type)) {
    case MC_KIND_FLOAT: return mc_round_up((size_t)n * 4);
    case MC_KIND_Q32: return mc_round_up((size_t)n * 2) + 2 * mc_round_up((size_t)(n / MC_QK) * 4);
    case MC_KIND_QK: return mc_round_up((size_t)n * 2) + mc_round_up((size_t)(n / MC_QKK) * 4)
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
    int16_t *q = (int16_t *)a;
    if (kind == MC_KIND_Q32) {
        const int64_t nb = n / MC_QK;
        float *d = (float *)(a + mc_round_up((size_t)n * 2));
        float *s = (float *)((uint8_t *)d + mc_round_up((size_t)nb * 4));
        for (int64_t ib = 0; ib < nb; ib++) {
            const float *xb = x + ib * MC_QK;
            float amax = 0.0f;
            _Pragma("omp simd reduction(max:amax)")
            for (int j = 0; j < MC_QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
            const float db = amax / 127.0f;
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            int sum = 0;
            for (int j = 0; j < MC_QK; j++) {
                const int v = (int)rintf(xb[j] * id);
                q[ib * MC_QK + j] = (int16_t)v;
                sum += v;
            }
            d[ib] = mc_round_fp16(db);
            s[ib] = mc_round_fp16(db * (float)sum);
        }
        return;
    }
    /* Q8_K */
    const int64_t nb = n / MC_QKK;
    float *d = (float *)(a + mc_round_up((size_t)n * 2));
    int16_t *bs = (int16_t *)((uint8_t *)d + mc_round_up((size_t)nb * 4));
    for (int64_t ib = 0; ib < nb; ib++) {
        const float *xb = x + ib * MC_QKK;
        int16_t *qb = q + ib * MC_QKK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MC_QKK; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (amax == 0.0f) {
            d[ib] = 0.0f;
            memset(qb, 0, MC_QKK * 2);
            for (int g = 0; g < 16; g++) bs[ib * 16 + g] = 0;
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < MC_QKK; j++) {
            int v = (int)rintf(iscale * xb[j]);
            qb[j] = (int16_t)(v > 127 ? 127 : v);
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
/* dot products                                                          */
/* ------------------------------------------------------------------ */
/* The inner loops use generic vectors (GCC/Clang vector extensions, no ISA
 * intrinsics): 16 lanes, which the compiler maps to whatever the target has
 * (AVX-512, AVX2, SSE2, NEON).  A block's 32 weights are two vectors of 16
 * int16; the products with the activation's int8 are summed in int16 lanes
 * (|w*a| <= 128*127, two of them fit), widened once per block, scaled, and
 * accumulated in 16 float lanes summed horizontally once per row. */

typedef uint8_t mc_u8x16 __attribute__((vector_size(16)));
typedef int8_t mc_i8x16 __attribute__((vector_size(16)));
typedef int16_t mc_i16x16 __attribute__((vector_size(32)));
typedef uint16_t mc_u16x16 __attribute__((vector_size(32)));
typedef int32_t mc_i32x16 __attribute__((vector_size(64)));
typedef uint32_t mc_u32x16 __attribute__((vector_size(64)));
typedef float mc_f32x16 __attribute__((vector_size(64)));

static const mc_u16x16 mc_lane16 = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static inline mc_u8x16 mc_ld_u8(const uint8_t *p) { mc_u8x16 v; memcpy(&v, p, 16); return v; }
static inline mc_i16x16 mc_ld_i8(const int8_t *p) {
    mc_i8x16 v;
    memcpy(&v, p, 16);
    return __builtin_convertvector(v, mc_i16x16);
}
static inline mc_i16x16 mc_ld_a(const int16_t *p) { mc_i16x16 v; memcpy(&v, p, 32); return v; }
static inline void mc_st_i16(int16_t *p, mc_i16x16 v) { memcpy(p, &v, 32); }
#if defined(__clang__) || __GNUC__ >= 12
typedef uint8_t mc_u8x32 __attribute__((vector_size(32)));
/* zero-extend 16 bytes to 16 int16: interleave with zeros (one vpmovzxbw; convertvector splits it in GCC 12) */
static inline mc_i16x16 mc_w16(mc_u8x16 v) {
    const mc_u8x16 z = {0};
    return (mc_i16x16)__builtin_shufflevector(v, z, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                              8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}
#else
static inline mc_i16x16 mc_w16(mc_u8x16 v) { return __builtin_convertvector(v, mc_i16x16); }
#endif
static inline mc_i32x16 mc_i32(mc_i16x16 v) { return __builtin_convertvector(v, mc_i32x16); }
static inline mc_f32x16 mc_f32(mc_i16x16 v) { return __builtin_convertvector(mc_i32(v), mc_f32x16); }
static inline mc_u16x16 mc_bits16(uint32_t bits) {   /* lane l: bit l of the low 16 bits */
    return (((mc_u16x16){0} + (uint16_t)bits) >> mc_lane16) & 1;
}
static inline float mc_hsum(mc_f32x16 v) {
    float s = 0.0f;
    for (int k = 0; k < 16; k++) s += v[k];
    return s;
}

/* IQ4_NL's non-linear grid: 16 indices (0..15) to their int8 values, widened */
MC_INLINE mc_i16x16 mc_iq4nl_lookup(mc_u8x16 idx) {
#if defined(__GNUC__) && !defined(__clang__)
    mc_i8x16 table;
    memcpy(&table, mc_kvalues_iq4nl, 16);
    return __builtin_convertvector(__builtin_shuffle(table, (mc_i8x16)idx), mc_i16x16);   /* one byte shuffle */
#else
    int8_t t[16];
    for (int j = 0; j < 16; j++) t[j] = mc_kvalues_iq4nl[idx[j]];
    return mc_ld_i8(t);
#endif
}

/* w0 . a[0:16] + w1 . a[16:32], lane-wise (16 int16 partial sums) */
MC_INLINE mc_i16x16 mc_pdot(mc_i16x16 w0, mc_i16x16 w1, const int16_t *a) {
    return w0 * mc_ld_a(a) + w1 * mc_ld_a(a + 16);
}

/* a 32-wide block's integers as two vectors: weights 0..15 and 16..31 */
MC_INLINE void mc_q32_vec(const int type, const uint8_t *b, mc_i16x16 *w0, mc_i16x16 *w1) {
    *w0 = *w1 = (mc_i16x16){0};
    switch (type) {
    case MC_Q4_0: { const mc_i16x16 q = mc_w16(mc_ld_u8(b + 2)); *w0 = (q & 0xF) - 8; *w1 = (q >> 4) - 8; break; }
    case MC_Q4_1: { const mc_i16x16 q = mc_w16(mc_ld_u8(b + 4)); *w0 = q & 0xF; *w1 = q >> 4; break; }
    case MC_Q5_0: case MC_Q5_1: {
        const int o = type == MC_Q5_0 ? 2 : 4;
        const uint32_t qh = mc_rd32(b + o);
        const mc_i16x16 q = mc_w16(mc_ld_u8(b + o + 4));
        *w0 = (q & 0xF) | (mc_i16x16)(mc_bits16(qh) << 4);
        *w1 = (q >> 4) | (mc_i16x16)(mc_bits16(qh >> 16) << 4);
        if (type == MC_Q5_0) { *w0 -= 16; *w1 -= 16; }
        break;
    }
    case MC_Q8_0: *w0 = mc_ld_i8((const int8_t *)b + 2); *w1 = mc_ld_i8((const int8_t *)b + 18); break;
    case MC_IQ4_NL: {
        const mc_u8x16 q = mc_ld_u8(b + 2);
        *w0 = mc_iq4nl_lookup(q & 0xF);
        *w1 = mc_iq4nl_lookup(q >> 4);
        break;
    }
    }
}

/* a K-quant super-block: 16 vectors of 16 integers, each with its scale (and min) */
MC_INLINE void mc_qk_vec(const int type, const uint8_t *b, mc_i16x16 *v, int16_t *sc, int16_t *mn,
                             float *d, float *dmin) {
    switch (type) {
    case MC_Q2_K: case MC_Q3_K: {
        const uint8_t *qs = b + (type == MC_Q2_K ? 16 : 32);
        if (type == MC_Q2_K) {
            for (int g = 0; g < 16; g++) { sc[g] = b[g] & 0xF; mn[g] = b[g] >> 4; }
            *d = mc_rdf16(b + 80); *dmin = mc_rdf16(b + 82);
        } else {
            int8_t s8[16];
            mc_scales_q3k(b + 96, s8);
            for (int g = 0; g < 16; g++) { sc[g] = s8[g]; mn[g] = 0; }
            *d = mc_rdf16(b + 108); *dmin = 0.0f;
        }
        const mc_i16x16 h0 = mc_w16(mc_ld_u8(b)), h1 = mc_w16(mc_ld_u8(b + 16));   /* Q3_K's hmask */
        for (int n = 0; n < 2; n++) {
            const mc_i16x16 q0 = mc_w16(mc_ld_u8(qs + 32 * n)), q1 = mc_w16(mc_ld_u8(qs + 32 * n + 16));
            for (int j = 0; j < 4; j++) {
                mc_i16x16 a0 = (q0 >> (2 * j)) & 3, a1 = (q1 >> (2 * j)) & 3;
                if (type == MC_Q3_K) {
                    a0 = (a0 | (((h0 >> (4 * n + j)) & 1) << 2)) - 4;
                    a1 = (a1 | (((h1 >> (4 * n + j)) & 1) << 2)) - 4;
                }
                v[8 * n + 2 * j] = a0;
                v[8 * n + 2 * j + 1] = a1;
            }
        }
        break;
    }
    case MC_Q4_K: case MC_Q5_K: {
        const uint8_t *qs = b + (type == MC_Q4_K ? 16 : 48);
        const mc_i16x16 h0 = mc_w16(mc_ld_u8(b + 16)), h1 = mc_w16(mc_ld_u8(b + 32));   /* Q5_K's qh */
        for (int g = 0; g < 8; g++) {
            uint8_t s, m;
            mc_scale_min_k4(g, b + 4, &s, &m);
            sc[2 * g] = sc[2 * g + 1] = s;
            mn[2 * g] = mn[2 * g + 1] = m;
        }
        *d = mc_rdf16(b); *dmin = mc_rdf16(b + 2);
        for (int n = 0; n < 4; n++) {
            const mc_i16x16 q0 = mc_w16(mc_ld_u8(qs + 32 * n)), q1 = mc_w16(mc_ld_u8(qs + 32 * n + 16));
            mc_i16x16 lo0 = q0 & 0xF, lo1 = q1 & 0xF, hi0 = q0 >> 4, hi1 = q1 >> 4;
            if (type == MC_Q5_K) {
                lo0 |= ((h0 >> (2 * n)) & 1) << 4;
                lo1 |= ((h1 >> (2 * n)) & 1) << 4;
                hi0 |= ((h0 >> (2 * n + 1)) & 1) << 4;
                hi1 |= ((h1 >> (2 * n + 1)) & 1) << 4;
            }
            v[4 * n] = lo0; v[4 * n + 1] = lo1; v[4 * n + 2] = hi0; v[4 * n + 3] = hi1;
        }
        break;
    }
    case MC_Q6_K: {
        const int8_t *s8 = (const int8_t *)(b + 192);
        for (int g = 0; g < 16; g++) { sc[g] = s8[g]; mn[g] = 0; }
        *d = mc_rdf16(b + 208); *dmin = 0.0f;
        for (int n = 0; n < 2; n++) {
            const uint8_t *L = b + 64 * n, *H = b + 128 + 32 * n;
            const mc_i16x16 l0 = mc_w16(mc_ld_u8(L)), l1 = mc_w16(mc_ld_u8(L + 16));
            const mc_i16x16 l2 = mc_w16(mc_ld_u8(L + 32)), l3 = mc_w16(mc_ld_u8(L + 48));
            const mc_i16x16 g0 = mc_w16(mc_ld_u8(H)), g1 = mc_w16(mc_ld_u8(H + 16));
            mc_i16x16 *o = v + 8 * n;
            o[0] = ((l0 & 0xF) | ((g0 & 3) << 4)) - 32;
            o[1] = ((l1 & 0xF) | ((g1 & 3) << 4)) - 32;
            o[2] = ((l2 & 0xF) | (((g0 >> 2) & 3) << 4)) - 32;
            o[3] = ((l3 & 0xF) | (((g1 >> 2) & 3) << 4)) - 32;
            o[4] = ((l0 >> 4) | (((g0 >> 4) & 3) << 4)) - 32;
            o[5] = ((l1 >> 4) | (((g1 >> 4) & 3) << 4)) - 32;
            o[6] = ((l2 >> 4) | (((g0 >> 6) & 3) << 4)) - 32;
            o[7] = ((l3 >> 4) | (((g1 >> 6) & 3) << 4)) - 32;
        }
        break;
    }
    case MC_IQ4_XS: {
        for (int g = 0; g < 8; g++) {
            const mc_u8x16 q = mc_ld_u8(b + 8 + 16 * g);
            v[2 * g] = mc_iq4nl_lookup(q & 0xF);
            v[2 * g + 1] = mc_iq4nl_lookup(q >> 4);
            sc[2 * g] = sc[2 * g + 1] = (int16_t)mc_iq4xs_scale(b, g);
        }
        for (int g = 0; g < 16; g++) mn[g] = 0;
        *d = mc_rdf16(b); *dmin = 0.0f;
        break;
    }
    }
}

static inline int mc_has_mins(int type) { return type == MC_Q2_K || type == MC_Q4_K || type == MC_Q5_K; }

/* the integer dot of a super-block's 16 vectors with 256 activations, in 16 int32 lanes.
 * Products stay in int16 as long as they provably fit (|a| <= 127):
 *   Q4_K, Q5_K, IQ4_XS: one scale per 32 weights, so the two halves are summed before scaling;
 *   Q2_K, Q3_K: |q * scale| <= 128, so the scale is applied in int16 and pairs summed;
 *   Q6_K: |q * a| <= 4064 but times a scale up to 128 it needs int32. */
MC_INLINE mc_i32x16 mc_qk_isum(const int type, const mc_i16x16 *v, const int16_t *sc, const int16_t *a) {
    mc_i32x16 isum = {0};
    if (type == MC_Q4_K || type == MC_Q5_K || type == MC_IQ4_XS) {
        for (int g = 0; g < 16; g += 2)
            isum += mc_i32(mc_pdot(v[g], v[g + 1], a + 16 * g)) * (int32_t)sc[g];
    } else if (type == MC_Q2_K || type == MC_Q3_K) {
        for (int g = 0; g < 16; g += 2)
            isum += mc_i32(mc_pdot(v[g] * sc[g], v[g + 1] * sc[g + 1], a + 16 * g));
    } else {
        for (int g = 0; g < 16; g++) isum += mc_i32(v[g] * mc_ld_a(a + 16 * g)) * (int32_t)sc[g];
    }
    return isum;
}

MC_INLINE int mc_qk_msum(const int16_t *mn, const int16_t *bsums) {
    int msum = 0;
    for (int g = 0; g < 16; g++) msum += mn[g] * bsums[g];
    return msum;
}

/* activation row views */
typedef struct { const int16_t *q; const float *d; const float *s; } mc_act32;
typedef struct { const int16_t *q; const float *d; const int16_t *bsums; } mc_actk;

static inline mc_act32 mc_act32_view(const uint8_t *a, int64_t n) {
    mc_act32 v;
    v.q = (const int16_t *)a;
    v.d = (const float *)(a + mc_round_up((size_t)n * 2));
    v.s = (const float *)((const uint8_t *)v.d + mc_round_up((size_t)(n / MC_QK) * 4));
    return v;
}

static inline mc_actk mc_actk_view(const uint8_t *a, int64_t n) {
    mc_actk v;
    v.q = (const int16_t *)a;
    v.d = (const float *)(a + mc_round_up((size_t)n * 2));
    v.bsums = (const int16_t *)((const uint8_t *)v.d + mc_round_up((size_t)(n / MC_QKK) * 4));
    return v;
}

/* one weight row of a 32-wide type (raw blocks) . one quantized activation row */
MC_INLINE float mc_vecdot_q32(const int type, const uint8_t *w, const mc_act32 a, int64_t n) {
    const int ts = mc_type_size(type);
    const int has_m = type == MC_Q4_1 || type == MC_Q5_1;
    mc_f32x16 acc = {0};
    float accm = 0.0f;
    for (int64_t ib = 0; ib < n / MC_QK; ib++, w += ts) {
        mc_i16x16 w0, w1;
        mc_q32_vec(type, w, &w0, &w1);
        acc += (mc_rdf16(w) * a.d[ib]) * mc_f32(mc_pdot(w0, w1, a.q + ib * MC_QK));
        if (has_m) accm += mc_rdf16(w + 2) * a.s[ib];
    }
    return mc_hsum(acc) + accm;
}

/* one weight row of a K-quant (raw super-blocks) . one Q8_K activation row */
MC_INLINE float mc_vecdot_qk(const int type, const uint8_t *w, const mc_actk a, int64_t n) {
    const int ts = mc_type_size(type);
    mc_f32x16 acc = {0};
    float accm = 0.0f;
    for (int64_t ib = 0; ib < n / MC_QKK; ib++, w += ts) {
        mc_i16x16 v[16];
        int16_t sc[16], mn[16];
        float d, dmin;
        mc_qk_vec(type, w, v, sc, mn, &d, &dmin);
        acc += (d * a.d[ib]) * __builtin_convertvector(mc_qk_isum(type, v, sc, a.q + ib * MC_QKK), mc_f32x16);
        if (mc_has_mins(type)) accm += (dmin * a.d[ib]) * (float)mc_qk_msum(mn, a.bsums + ib * 16);
    }
    return mc_hsum(acc) - accm;
}

/* 16 float16 values to float32, exactly (the portable conversion, in vector form) */
MC_INLINE mc_f32x16 mc_f16x16_to_f32(mc_u16x16 h) {
    const mc_u32x16 w = __builtin_convertvector(h, mc_u32x16) << 16;
    const mc_u32x16 sign = w & 0x80000000u;
    const mc_u32x16 two_w = w + w;
    const mc_f32x16 normalized = (mc_f32x16)((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const mc_f32x16 denormalized = (mc_f32x16)((two_w >> 17) | (126u << 23)) - 0.5f;
    const mc_u32x16 small = (mc_u32x16)(two_w < (1u << 27));
    return (mc_f32x16)(sign | (small & (mc_u32x16)denormalized) | (~small & (mc_u32x16)normalized));
}

MC_INLINE mc_f32x16 mc_h16_to_f32(const int type, const uint8_t *p) {
    mc_u16x16 h;
    memcpy(&h, p, 32);
    if (type == MC_BF16) return (mc_f32x16)(__builtin_convertvector(h, mc_u32x16) << 16);
    return mc_f16x16_to_f32(h);
}

static inline mc_f32x16 mc_ld_f32(const float *p) { mc_f32x16 v; memcpy(&v, p, 64); return v; }

/* one weight row of F32/F16/BF16 . float activations (already rounded to the weight's type) */
MC_INLINE float mc_vecdot_float(const int type, const uint8_t *w, const float *x, int64_t n) {
    mc_f32x16 acc = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const mc_f32x16 wv = type == MC_F32 ? mc_ld_f32((const float *)w + i) : mc_h16_to_f32(type, w + 2 * i);
        acc += wv * mc_ld_f32(x + i);
    }
    float s = mc_hsum(acc);
    for (; i < n; i++) {
        const float wi = type == MC_F32 ? ((const float *)w)[i]
                         : type == MC_F16 ? mc_fp16_to_fp32(mc_rd16(w + 2 * i)) : mc_bf16_to_fp32(mc_rd16(w + 2 * i));
        s += wi * x[i];
    }
    return s;
}

/* out[r] = W[r] . a for r in [r0, r1): the matvec inner loop, one specialised copy per type */
#define MC_ROWS(EXPR) for (int64_t r = r0; r < r1; r++) { const uint8_t *wr = w + r * stride; out[r] = (EXPR); } break
static void mc_matvec_rows(int type, const uint8_t *w, int64_t stride, int64_t n, int64_t r0, int64_t r1,
                           const uint8_t *act, float *out) {
    const mc_act32 a32 = mc_act32_view(act, n);
    const mc_actk ak = mc_actk_view(act, n);
    const float *x = (const float *)act;
    switch (type) {
    case MC_F32: MC_ROWS(mc_vecdot_float(MC_F32, wr, x, n));
    case MC_F16: MC_ROWS(mc_vecdot_float(MC_F16, wr, x, n));
    case MC_BF16: MC_ROWS(mc_vecdot_float(MC_BF16, wr, x, n));
    case MC_Q4_0: MC_ROWS(mc_vecdot_q32(MC_Q4_0, wr, a32, n));
    case MC_Q4_1: MC_ROWS(mc_vecdot_q32(MC_Q4_1, wr, a32, n));
    case MC_Q5_0: MC_ROWS(mc_vecdot_q32(MC_Q5_0, wr, a32, n));
    case MC_Q5_1: MC_ROWS(mc_vecdot_q32(MC_Q5_1, wr, a32, n));
    case MC_Q8_0: MC_ROWS(mc_vecdot_q32(MC_Q8_0, wr, a32, n));
    case MC_IQ4_NL: MC_ROWS(mc_vecdot_q32(MC_IQ4_NL, wr, a32, n));
    case MC_Q2_K: MC_ROWS(mc_vecdot_qk(MC_Q2_K, wr, ak, n));
    case MC_Q3_K: MC_ROWS(mc_vecdot_qk(MC_Q3_K, wr, ak, n));
    case MC_Q4_K: MC_ROWS(mc_vecdot_qk(MC_Q4_K, wr, ak, n));
    case MC_Q5_K: MC_ROWS(mc_vecdot_qk(MC_Q5_K, wr, ak, n));
    case MC_Q6_K: MC_ROWS(mc_vecdot_qk(MC_Q6_K, wr, ak, n));
    case MC_IQ4_XS: MC_ROWS(mc_vecdot_qk(MC_IQ4_XS, wr, ak, n));
    default: break;
    }
}
#undef MC_ROWS

/* ------------------------------------------------------------------ */
/* matmul: weight rows decoded once, then dotted with every activation   */
/* ------------------------------------------------------------------ */
/* Decoded row layouts (the integers unpacked, the scales as numbers):
 *   FLOAT: float w[n]
 *   Q32:   int16 q[n]; float d[n/32]; float m[n/32]
 *   QK:    int16 q[n] (before scaling); int16 sc[n/16]; int16 mins[n/16]; float d[n/256]; float dmin[n/256]
 */

static inline size_t mc_wrow_bytes(int type, int64_t n) {
    switch (mc_kind(type)) {
    case MC_KIND_FLOAT: return mc_round_up((size_t)n * 4);
    case MC_KIND_Q32: return mc_round_up((size_t)n * 2) + 2 * mc_round_up((size_t)(n / MC_QK) * 4);
    case MC_KIND_QK: return mc_round_up((size_t)n * 2) + 2 * mc_round_up((size_t)(n / 16) * 2)
                            + 2 * mc_round_up((size_t)(n / MC_QKK) * 4);
    default: return 0;
    }
}

typedef struct { int16_t *q; float *d; float *m; int16_t *sc; int16_t *mn; float *dmin; } mc_wrow;

static inline mc_wrow mc_wrow_view(const int type, uint8_t *buf, int64_t n) {
    mc_wrow v = {0};
    v.q = (int16_t *)buf;
    uint8_t *p = buf + mc_round_up((size_t)n * 2);
    if (mc_kind(type) == MC_KIND_Q32) {
        v.d = (float *)p;
        v.m = (float *)(p + mc_round_up((size_t)(n / MC_QK) * 4));
    } else {
        v.sc = (int16_t *)p;
        v.mn = (int16_t *)(p + mc_round_up((size_t)(n / 16) * 2));
        v.d = (float *)(p + 2 * mc_round_up((size_t)(n / 16) * 2));
        v.dmin = (float *)((uint8_t *)v.d + mc_round_up((size_t)(n / MC_QKK) * 4));
    }
    return v;
}

MC_INLINE void mc_decode_row_t(const int type, const uint8_t *w, int64_t n, uint8_t *buf) {
    const int kind = mc_kind(type);
    const int ts = mc_type_size(type);
    if (kind == MC_KIND_FLOAT) {
        float *y = (float *)buf;
        int64_t i = 0;
        if (type == MC_F32) { memcpy(y, w, (size_t)n * 4); return; }
        for (; i + 16 <= n; i += 16) { const mc_f32x16 v = mc_h16_to_f32(type, w + 2 * i); memcpy(y + i, &v, 64); }
        for (; i < n; i++) y[i] = type == MC_F16 ? mc_fp16_to_fp32(mc_rd16(w + 2 * i)) : mc_bf16_to_fp32(mc_rd16(w + 2 * i));
        return;
    }
    const mc_wrow v = mc_wrow_view(type, buf, n);
    if (kind == MC_KIND_Q32) {
        for (int64_t ib = 0; ib < n / MC_QK; ib++, w += ts) {
            mc_i16x16 w0, w1;
            mc_q32_vec(type, w, &w0, &w1);
            mc_st_i16(v.q + ib * MC_QK, w0);
            mc_st_i16(v.q + ib * MC_QK + 16, w1);
            v.d[ib] = mc_rdf16(w);
            v.m[ib] = (type == MC_Q4_1 || type == MC_Q5_1) ? mc_rdf16(w + 2) : 0.0f;
        }
        return;
    }
    for (int64_t ib = 0; ib < n / MC_QKK; ib++, w += ts) {
        mc_i16x16 q[16];
        mc_qk_vec(type, w, q, v.sc + ib * 16, v.mn + ib * 16, v.d + ib, v.dmin + ib);
        for (int g = 0; g < 16; g++) mc_st_i16(v.q + ib * MC_QKK + 16 * g, q[g]);
    }
}

/* a decoded weight row . one quantized activation row */
MC_INLINE float mc_dot_decoded(const int type, const uint8_t *wb, const uint8_t *ab, int64_t n) {
    const int kind = mc_kind(type);
    if (kind == MC_KIND_FLOAT) return mc_vecdot_float(MC_F32, wb, (const float *)ab, n);
    const mc_wrow v = mc_wrow_view(type, (uint8_t *)wb, n);
    mc_f32x16 acc = {0};
    float accm = 0.0f;
    if (kind == MC_KIND_Q32) {
        const mc_act32 a = mc_act32_view(ab, n);
        const int has_m = type == MC_Q4_1 || type == MC_Q5_1;
        for (int64_t ib = 0; ib < n / MC_QK; ib++) {
            const int16_t *q = v.q + ib * MC_QK;
            acc += (v.d[ib] * a.d[ib]) * mc_f32(mc_pdot(mc_ld_a(q), mc_ld_a(q + 16), a.q + ib * MC_QK));
            if (has_m) accm += v.m[ib] * a.s[ib];
        }
        return mc_hsum(acc) + accm;
    }
    const mc_actk a = mc_actk_view(ab, n);
    for (int64_t ib = 0; ib < n / MC_QKK; ib++) {
        mc_i16x16 q[16];
        for (int g = 0; g < 16; g++) q[g] = mc_ld_a(v.q + ib * MC_QKK + 16 * g);
        acc += (v.d[ib] * a.d[ib]) * __builtin_convertvector(mc_qk_isum(type, q, v.sc + ib * 16, a.q + ib * MC_QKK), mc_f32x16);
        if (mc_has_mins(type)) accm += (v.dmin[ib] * a.d[ib]) * (float)mc_qk_msum(v.mn + ib * 16, a.bsums + ib * 16);
    }
    return mc_hsum(acc) - accm;
}

/* two decoded weight rows . two quantized activation rows of a 32-wide type:
 * res = {w0.a0, w0.a1, w1.a0, w1.a1}.
 * Each pair is computed exactly as mc_dot_decoded computes it (same operations, same order), with
 * every weight and activation vector loaded once for two uses. */
MC_INLINE void mc_dot_decoded_2x2(const int type, const uint8_t *wb0, const uint8_t *wb1, const uint8_t *ab0,
                                      const uint8_t *ab1, int64_t n, float *res) {
    const mc_wrow v[2] = {mc_wrow_view(type, (uint8_t *)wb0, n), mc_wrow_view(type, (uint8_t *)wb1, n)};
    mc_f32x16 acc[4] = {{0}};
    float accm[4] = {0};
    {
        const mc_act32 a[2] = {mc_act32_view(ab0, n), mc_act32_view(ab1, n)};
        const int has_m = type == MC_Q4_1 || type == MC_Q5_1;
        for (int64_t ib = 0; ib < n / MC_QK; ib++) {
            for (int r = 0; r < 2; r++) {
                const int16_t *q = v[r].q + ib * MC_QK;
                const mc_i16x16 w0 = mc_ld_a(q), w1 = mc_ld_a(q + 16);
                for (int j = 0; j < 2; j++) {
                    acc[2 * r + j] += (v[r].d[ib] * a[j].d[ib]) * mc_f32(mc_pdot(w0, w1, a[j].q + ib * MC_QK));
                    if (has_m) accm[2 * r + j] += v[r].m[ib] * a[j].s[ib];
                }
            }
        }
        for (int i = 0; i < 4; i++) res[i] = mc_hsum(acc[i]) + accm[i];
    }
}

/* out[j * ldo + r] = W[r] . X[j] for r in [r0, r1), j in [0, n).
 * W row r is at w + r * stride; the quantized activation row j at a + j * act_stride;
 * wbuf holds (r1 - r0) decoded rows.  Every weight row is decoded once for all n rows,
 * then dotted two rows by two activation rows at a time. */
static inline void mc_matmul_rows_t(const int type, const uint8_t *w, int64_t stride, int64_t cols,
                                    int64_t r0, int64_t r1, const uint8_t *a, int64_t act_stride, int64_t n,
                                    float *out, int64_t ldo, uint8_t *wbuf) {
    const size_t wrb = mc_wrow_bytes(type, cols);
    const int blocked = mc_kind(type) == MC_KIND_Q32;   /* (for the K-quants, 2x2 runs out of registers) */
    for (int64_t r = r0; r < r1; r++) mc_decode_row_t(type, w + r * stride, cols, wbuf + (r - r0) * wrb);
    int64_t j = 0;
    for (; blocked && j + 2 <= n; j += 2) {
        const uint8_t *a0 = a + j * act_stride, *a1 = a0 + act_stride;
        int64_t r = r0;
        for (; r + 2 <= r1; r += 2) {
            float res[4];
            mc_dot_decoded_2x2(type, wbuf + (r - r0) * wrb, wbuf + (r + 1 - r0) * wrb, a0, a1, cols, res);
            out[j * ldo + r] = res[0];
            out[(j + 1) * ldo + r] = res[1];
            out[j * ldo + r + 1] = res[2];
            out[(j + 1) * ldo + r + 1] = res[3];
        }
        for (; r < r1; r++) {
            out[j * ldo + r] = mc_dot_decoded(type, wbuf + (r - r0) * wrb, a0, cols);
            out[(j + 1) * ldo + r] = mc_dot_decoded(type, wbuf + (r - r0) * wrb, a1, cols);
        }
    }
    for (; j < n; j++)
        for (int64_t r = r0; r < r1; r++)
            out[j * ldo + r] = mc_dot_decoded(type, wbuf + (r - r0) * wrb, a + j * act_stride, cols);
}

#define MC_CASE(T) case T: mc_matmul_rows_t(T, w, stride, cols, r0, r1, a, act_stride, n, out, ldo, wbuf); break
static void mc_matmul_rows(int type, const uint8_t *w, int64_t stride, int64_t cols, int64_t r0, int64_t r1,
                           const uint8_t *a, int64_t act_stride, int64_t n, float *out, int64_t ldo,
                           uint8_t *wbuf) {
    switch (type) {
    MC_CASE(MC_F32); MC_CASE(MC_F16); MC_CASE(MC_BF16);
    MC_CASE(MC_Q4_0); MC_CASE(MC_Q4_1); MC_CASE(MC_Q5_0); MC_CASE(MC_Q5_1); MC_CASE(MC_Q8_0); MC_CASE(MC_IQ4_NL);
    MC_CASE(MC_Q2_K); MC_CASE(MC_Q3_K); MC_CASE(MC_Q4_K); MC_CASE(MC_Q5_K); MC_CASE(MC_Q6_K); MC_CASE(MC_IQ4_XS);
    default: break;
    }
}
#undef MC_CASE

/* the sum of n 64-bit words: a memory read bandwidth probe for the benchmark */
static uint64_t mc_read_words(const uint8_t *p, int64_t n) {
    uint64_t acc[8] = {0};
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v[8];
        memcpy(v, p + 8 * i, 64);
        for (int k = 0; k < 8; k++) acc[k] += v[k];
    }
    uint64_t s = 0;
    for (int k = 0; k < 8; k++) s += acc[k];
    for (int64_t i = n / 8 * 8; i < n; i++) { uint64_t v; memcpy(&v, p + 8 * i, 8); s += v; }
    return s;
}

#endif /* MC_KERNELS_H */
