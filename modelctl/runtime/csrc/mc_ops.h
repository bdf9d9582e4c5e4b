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

/* e^x for the SiLU and the softmax, in plain float operations the compiler vectorises: x = n ln2 + r with |r| <= ln2/2
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

/* One cache row as floats, a native vector at a time: float16 bits converted, or float32 loaded */
static inline mc_f32v mc_ld_row_f16(const uint16_t *p) { return mc_f16v_to_f32((const uint8_t *)p); }
static inline mc_f32v mc_ld_row_f32(const float *p) { return mc_ld_f32v(p); }
static inline float mc_at_f16(const uint16_t *p) { return mc_fp16_to_fp32(*p); }
static inline float mc_at_f32(const float *p) { return *p; }

/* the rounding a cache of type T applies to a float */
static inline float mc_as_f16(float x) { return mc_round_fp16(x); }
static inline float mc_as_f32(float x) { return x; }

#define MC_ATTN_H 8   /* query heads at most that share one pass over their KV head's rows */

/* H query heads (q + h * hd) that read the same KV head: scores over keys j0..j1-1, softmax, weighted
 * sum of values (out + h * hdv).  Each key and value row is read and converted once for the H heads,
 * their H sums kept in registers.  With a float16 cache the queries and the probabilities are rounded
 * to float16, as ggml does (its f16 matrix products convert the f32 operand to f16).
 * sc: H * (j1 - j0) floats, qh: H * hd. */
#define MC_ATTN_HEADS(NAME, T, ROUND, ROW, AT)                                                           \
MC_INLINE void NAME(const int H, const float *q, const T *K, const T *V, long ks, long vs, long j0,   \
                    long j1, long hd, long hdv, float scale, float *sc, float *qh, float *out) {          \
    const long nk = j1 - j0, hv = hd / MC_L32 * MC_L32, hvv = hdv / MC_L32 * MC_L32;                     \
    for (int h = 0; h < H; h++)                                                                           \
        for (long d = 0; d < hd; d++) qh[h * hd + d] = ROUND(q[h * hd + d]);                              \
    for (long j = 0; j < nk; j++) {                                                                       \
        const T *k = K + (j0 + j) * ks;                                                                   \
        mc_f32v s[MC_ATTN_H];                                                                             \
        for (int h = 0; h < H; h++) s[h] = (mc_f32v){0};                                                  \
        for (long d = 0; d < hv; d += MC_L32) {                                                           \
            const mc_f32v kv = ROW(k + d);                                                                \
            for (int h = 0; h < H; h++) s[h] = mc_fmadd(mc_ld_f32v(qh + h * hd + d), kv, s[h]);           \
        }                                                                                                 \
        for (int h = 0; h < H; h++) {                                                                     \
            float a = mc_hsum(s[h]);                                                                      \
            for (long d = hv; d < hd; d++) a += qh[h * hd + d] * AT(k + d);                               \
            sc[h * nk + j] = a * scale;                                                                   \
        }                                                                                                 \
    }                                                                                                     \
    for (int h = 0; h < H; h++) {                                                                         \
        float *p = sc + h * nk, mx = -INFINITY;                                                           \
        for (long j = 0; j < nk; j++) mx = p[j] > mx ? p[j] : mx;                                         \
        _Pragma("omp simd")                                                                               \
        for (long j = 0; j < nk; j++) p[j] = mc_expf(p[j] - mx);                                          \
        double sum = 0.0;                                                                                 \
        _Pragma("omp simd reduction(+:sum)")                                                              \
        for (long j = 0; j < nk; j++) sum += p[j];                                                        \
        const float inv = (float) (1.0 / sum);                                                            \
        for (long j = 0; j < nk; j++) p[j] = ROUND(p[j] * inv);                                           \
    }                                                                                                     \
    for (long d = 0; d < hvv; d += MC_L32) {   /* a slice of every value row, H sums in registers */      \
        mc_f32v o[MC_ATTN_H];                                                                             \
        for (int h = 0; h < H; h++) o[h] = (mc_f32v){0};                                                  \
        for (long j = 0; j < nk; j++) {                                                                   \
            const mc_f32v vv = ROW(V + (j0 + j) * vs + d);                                                \
            for (int h = 0; h < H; h++) o[h] = mc_fmadd(mc_splat_f32(sc[h * nk + j]), vv, o[h]);          \
        }                                                                                                 \
        for (int h = 0; h < H; h++) mc_st_f32v(out + h * hdv + d, o[h]);                                  \
    }                                                                                                     \
    for (long d = hvv; d < hdv; d++)                                                                      \
        for (int h = 0; h < H; h++) {                                                                     \
            float a = 0.0f;                                                                               \
            for (long j = 0; j < nk; j++) a += sc[h * nk + j] * AT(V + (j0 + j) * vs + d);                \
            out[h * hdv + d] = a;                                                                         \
        }                                                                                                 \
}
MC_ATTN_HEADS(mc_attn_heads_f16, uint16_t, mc_as_f16, mc_ld_row_f16, mc_at_f16)
MC_ATTN_HEADS(mc_attn_heads_f32, float, mc_as_f32, mc_ld_row_f32, mc_at_f32)

/* heads h..h+H-1 of query row qi: H a constant in each call, so the sums stay in registers */
static void mc_attn_some(int f16, int H, const float *qi, const void *K, const void *V, long ks, long vs,
                         long j0, long j1, long hd, long hdv, float scale, float *sc, float *qh, float *oi) {
#define MC_A(N) \
    if (f16) mc_attn_heads_f16(N, qi, (const uint16_t *) K, (const uint16_t *) V, ks, vs, j0, j1, hd, hdv, scale, sc, qh, oi); \
    else mc_attn_heads_f32(N, qi, (const float *) K, (const float *) V, ks, vs, j0, j1, hd, hdv, scale, sc, qh, oi);
    switch (H) {
    case 8: MC_A(8) break;
    case 4: MC_A(4) break;
    case 2: MC_A(2) break;
    default: MC_A(1) break;
    }
#undef MC_A
}

/* q: [n, n_head*hd]; K: [n_ctx, n_kv*hd]; V: [n_ctx, n_kv*hdv]; out: [n, n_head*hdv].
   Query i sits at position pos+i and sees keys max(0, p-window+1)..p (window 0: all).  A task is one
   query row and the heads of one KV head (all of them together when there are tasks enough for the
   threads; else one head each), taken 8, 4, 2 and 1 at a time. */
static void mc_attention(const float *q, const void *K, const void *V, int f16, long n, long pos,
                         long n_head, long n_kv, long hd, long hdv, float scale, long window,
                         float *out, int nt) {
    const long group = n_head / n_kv, n_ctx_used = pos + n;
    const long ks = n_kv * hd, vs = n_kv * hdv;
    const long per = n * n_kv >= 2 * mc_threads(nt) ? group : 1;   /* heads per task */
    const long tasks_per_row = n_head / per;
    /* threads only pay off on enough work: one token over a short context runs on one */
    const long work = n * n_head * n_ctx_used * (hd + hdv);
    (void) work;   /* read only by the OpenMP pragma */
    #pragma omp parallel num_threads(mc_threads(nt)) if(work > 65536)
    {
        const long cap = per < MC_ATTN_H ? per : MC_ATTN_H;
        float *sc = (float *) malloc(sizeof(float) * cap * (n_ctx_used + hd));
        float *qh = sc + cap * n_ctx_used;
        #pragma omp for schedule(static)
        for (long t = 0; t < n * tasks_per_row; t++) {
            const long i = t / tasks_per_row, h0 = t % tasks_per_row * per, g = h0 / group, p = pos + i;
            const long j0 = (window > 0 && p - window + 1 > 0) ? p - window + 1 : 0;
            for (long h = h0; h < h0 + per;) {
                const long left = h0 + per - h;
                const int H = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
                mc_attn_some(f16, H, q + i * n_head * hd + h * hd,
                             f16 ? (const void *) ((const uint16_t *) K + g * hd) : (const void *) ((const float *) K + g * hd),
                             f16 ? (const void *) ((const uint16_t *) V + g * hdv) : (const void *) ((const float *) V + g * hdv),
                             ks, vs, j0, p + 1, hd, hdv, scale, sc, qh, out + i * n_head * hdv + h * hdv);
                h += H;
            }
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
    (void) nt;   /* read only by the OpenMP pragma */
    const long chunk = 1L << 14;
    const long nchunks = (n + chunk - 1) / chunk;
    #pragma omp parallel for num_threads(mc_threads(nt)) schedule(static) if (nchunks > 1)
    for (long c = 0; c < nchunks; c++)
        mc_glu_range(g, u, c * chunk, c + 1 < nchunks ? (c + 1) * chunk : n, gelu);
}

#endif /* MC_OPS_H */
