/* The transformer's small operations: RMSNorm, RoPE, attention, gated activations, on the SIMD
 * contract (mc_simd.h).  Plain C loops the compiler vectorises; attention and the activations are
 * threaded with OpenMP.  The KV cache is float16 (IEEE bits) or float32. */
#ifndef MC_OPS_H
#define MC_OPS_H

#include <stdlib.h>
#include "mc_simd.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static int mc_threads(int nt) {
#ifdef _OPENMP
    return nt > 0 ? nt : omp_get_max_threads();
#else
    (void) nt; return 1;
#endif
}

/* y = x / sqrt(mean(x^2) + eps) * w, row by row */
static void mc_rmsnorm(const float *x, const float *w, float *y, long n, long d, float eps) {
    for (long i = 0; i < n; i++) {
        const float *xi = x + i * d; float *yi = y + i * d;
        double sum = 0.0;
        for (long j = 0; j < d; j++) sum += (double) xi[j] * xi[j];
        const float s = 1.0f / sqrtf((float) (sum / d) + eps);
        for (long j = 0; j < d; j++) yi[j] = xi[j] * s * w[j];
    }
}

/* rotate the first n_rot dims of each head of each row; row i is at position pos + i */
static void mc_rope(float *x, long n, long n_head, long hd, long n_rot, const float *cos_t,
                    const float *sin_t, long pos, int neox) {
    const long half = n_rot / 2;
    for (long i = 0; i < n; i++) {
        const float *c = cos_t + (pos + i) * half, *s = sin_t + (pos + i) * half;
        for (long h = 0; h < n_head; h++) {
            float *v = x + (i * n_head + h) * hd;
            if (neox) {
                for (long k = 0; k < half; k++) {
                    const float a = v[k], b = v[k + half];
                    v[k] = a * c[k] - b * s[k];
                    v[k + half] = a * s[k] + b * c[k];
                }
            } else {
                for (long k = 0; k < half; k++) {
                    const float a = v[2 * k], b = v[2 * k + 1];
                    v[2 * k] = a * c[k] - b * s[k];
                    v[2 * k + 1] = a * s[k] + b * c[k];
                }
            }
        }
    }
}

/* dot products and row updates over one cache row, a native vector at a time (the tail one by one) */
static inline float mc_dot_f16(const float *q, const uint16_t *k, long n) {
    mc_f32v s = {0};
    long d = 0;
    for (; d + MC_L32 <= n; d += MC_L32) s = mc_fmadd(mc_ld_f32v(q + d), mc_f16v_to_f32((const uint8_t *)(k + d)), s);
    float acc = mc_hsum(s);
    for (; d < n; d++) acc += q[d] * mc_fp16_to_fp32(k[d]);
    return acc;
}

static inline void mc_axpy_f16(float *out, float p, const uint16_t *v, long n) {
    const mc_f32v pv = mc_splat_f32(p);
    long d = 0;
    for (; d + MC_L32 <= n; d += MC_L32)
        mc_st_f32v(out + d, mc_fmadd(pv, mc_f16v_to_f32((const uint8_t *)(v + d)), mc_ld_f32v(out + d)));
    for (; d < n; d++) out[d] += p * mc_fp16_to_fp32(v[d]);
}

static inline float mc_dot_f32(const float *q, const float *k, long n) {
    mc_f32v s = {0};
    long d = 0;
    for (; d + MC_L32 <= n; d += MC_L32) s = mc_fmadd(mc_ld_f32v(q + d), mc_ld_f32v(k + d), s);
    float acc = mc_hsum(s);
    for (; d < n; d++) acc += q[d] * k[d];
    return acc;
}

static inline void mc_axpy_f32(float *out, float p, const float *v, long n) {
    for (long d = 0; d < n; d++) out[d] += p * v[d];
}

/* the rounding a cache of type T applies to a float */
static inline float mc_as_f16(float x) { return mc_round_fp16(x); }
static inline float mc_as_f32(float x) { return x; }

/* One (query, head): scores over keys j0..j1-1, softmax, weighted sum of values.
   With a float16 cache the query and the probabilities are rounded to float16, as ggml does
   (its f16 matrix products convert the f32 operand to f16). */
#define MC_ATTN_ROW(NAME, T, ROUND, DOT, AXPY)                                                         \
static void NAME(const float *q, const T *K, const T *V, long ks, long vs, long j0, long j1,  \
                 long hd, long hdv, float scale, float *sc, float *qh, float *out) {          \
    for (long d = 0; d < hd; d++) qh[d] = ROUND(q[d]);                                    \
    float mx = -INFINITY;                                                                      \
    for (long j = j0; j < j1; j++) {                                                           \
        const float a = DOT(qh, K + j * ks, hd) * scale;                                       \
        sc[j - j0] = a;                                                                        \
        if (a > mx) mx = a;                                                                    \
    }                                                                                          \
    double sum = 0.0;                                                                          \
    for (long j = 0; j < j1 - j0; j++) { float e = expf(sc[j] - mx); sc[j] = e; sum += e; }   \
    const float inv = (float) (1.0 / sum);                                                     \
    for (long d = 0; d < hdv; d++) out[d] = 0.0f;                                              \
    for (long j = j0; j < j1; j++)                                                             \
        AXPY(out, ROUND(sc[j - j0] * inv), V + j * vs, hdv);                            \
}
MC_ATTN_ROW(mc_attn_row_f16, uint16_t, mc_as_f16, mc_dot_f16, mc_axpy_f16)
MC_ATTN_ROW(mc_attn_row_f32, float, mc_as_f32, mc_dot_f32, mc_axpy_f32)

/* q: [n, n_head*hd]; K: [n_ctx, n_kv*hd]; V: [n_ctx, n_kv*hdv]; out: [n, n_head*hdv].
   Query i sits at position pos+i and sees keys max(0, p-window+1)..p (window 0: all). */
static void mc_attention(const float *q, const void *K, const void *V, int f16, long n, long pos,
                         long n_head, long n_kv, long hd, long hdv, float scale, long window,
                         float *out, int nt) {
    const long group = n_head / n_kv, n_ctx_used = pos + n;
    const long ks = n_kv * hd, vs = n_kv * hdv;
    /* threads only pay off on enough work: one token over a short context runs on one */
    const long work = n * n_head * n_ctx_used * (hd + hdv);
    #pragma omp parallel num_threads(mc_threads(nt)) if(work > 65536)
    {
        float *sc = (float *) malloc(sizeof(float) * (n_ctx_used + hd));
        float *qh = sc + n_ctx_used;
        #pragma omp for schedule(static)
        for (long t = 0; t < n * n_head; t++) {
            const long i = t / n_head, h = t % n_head, g = h / group, p = pos + i;
            const long j0 = (window > 0 && p - window + 1 > 0) ? p - window + 1 : 0;
            const float *qi = q + i * n_head * hd + h * hd;
            float *oi = out + i * n_head * hdv + h * hdv;
            if (f16)
                mc_attn_row_f16(qi, (const uint16_t *) K + g * hd, (const uint16_t *) V + g * hdv, ks, vs, j0,
                                p + 1, hd, hdv, scale, sc, qh, oi);
            else
                mc_attn_row_f32(qi, (const float *) K + g * hd, (const float *) V + g * hdv, ks, vs, j0,
                                p + 1, hd, hdv, scale, sc, qh, oi);
        }
        free(sc);
    }
}

/* g = act(g) * u, act = silu or gelu (tanh approximation).  GeGLU reads gelu from a table over every
   float16 value, as ggml does: the input rounded to float16, the result a float16 (identity above 10,
   0 below -10).  The table is filled once, at import (mc_gelu_init). */
static float mc_gelu_table[1 << 16];

static void mc_gelu_init(void) {
    for (long i = 0; i < (1 << 16); i++) {
        const float x = mc_fp16_to_fp32((uint16_t) i);
        const float y = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * x * (1.0f + 0.044715f * x * x)));
        mc_gelu_table[i] = mc_round_fp16(y);
    }
}

/* e^x for the SiLU, in plain float operations the compiler vectorises: x = n ln2 + r with |r| <= ln2/2
   (ln2 in two parts, Cody-Waite), e^r by its Taylor series to r^7 (relative error < 2e-7 there), 2^n put
   into the exponent bits; below -87 it is e^-87, above 88.7 infinity. */
static inline float mc_expf(float x) {
    const int overflow = x > 88.7f;
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;   /* (fminf/fmaxf would stop the vectoriser) */
    const float n = rintf(x * 1.44269504088896341f);
    const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
    const float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
                    + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    const int bits = ((int) n + 127) << 23;
    float scale; memcpy(&scale, &bits, sizeof scale);
    return overflow ? INFINITY : p * scale;
}

static void mc_glu_range(float *g, const float *u, long i0, long i1, int gelu) {
    if (gelu) {
        for (long i = i0; i < i1; i++) {
            const float x = g[i];
            if (x >= 10.0f) { g[i] = x * u[i]; continue; }
            if (x <= -10.0f) { g[i] = 0.0f; continue; }
            g[i] = mc_gelu_table[mc_fp32_to_fp16(x)] * u[i];
        }
    } else {
        #pragma omp simd
        for (long i = i0; i < i1; i++) { const float x = g[i]; g[i] = x / (1.0f + mc_expf(-x)) * u[i]; }
    }
}

static void mc_glu(float *g, const float *u, long n, int gelu, int nt) {
    const long chunk = 1L << 14;
    const long nchunks = (n + chunk - 1) / chunk;
    #pragma omp parallel for num_threads(mc_threads(nt)) schedule(static) if (nchunks > 1)
    for (long c = 0; c < nchunks; c++)
        mc_glu_range(g, u, c * chunk, c + 1 < nchunks ? (c + 1) * chunk : n, gelu);
}

#endif /* MC_OPS_H */
