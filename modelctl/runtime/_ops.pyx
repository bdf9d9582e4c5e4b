# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The transformer's small operations in C: RMSNorm, RoPE, attention, gated activations.

Plain C loops the compiler vectorises, run without the GIL; attention is threaded
with OpenMP over (token, head) pairs.  The KV cache is float16 (``_Float16``,
converted with F16C where the CPU has it) or float32.
"""

import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef extern from *:
    """
    #include <math.h>
    #include <stdlib.h>
    #include <string.h>
    #ifdef _OPENMP
    #include <omp.h>
    #endif
    typedef _Float16 mc_f16;

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

    /* dot products and row updates over one cache row: float16 rows are widened 16 (AVX-512) or 8
       (F16C) at a time; otherwise MC_LANES partial sums, a vertical sum the compiler vectorises without
       being allowed to reorder a float reduction */
    #define MC_LANES 16
    #if defined(__AVX512F__) || defined(__F16C__)
    #include <immintrin.h>
    #endif

    static inline float mc_dot_f16(const float *q, const mc_f16 *k, long n) {
        long d = 0;
        float acc = 0.0f;
    #if defined(__AVX512F__)
        __m512 s = _mm512_setzero_ps();
        for (; d + 16 <= n; d += 16)
            s = _mm512_fmadd_ps(_mm512_loadu_ps(q + d),
                                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (k + d))), s);
        acc = _mm512_reduce_add_ps(s);
    #elif defined(__F16C__) && defined(__AVX__)
        __m256 s = _mm256_setzero_ps();
        for (; d + 8 <= n; d += 8)
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_loadu_ps(q + d),
                                               _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (k + d)))));
        float t[8]; _mm256_storeu_ps(t, s);
        for (int l = 0; l < 8; l++) acc += t[l];
    #endif
        for (; d < n; d++) acc += q[d] * (float) k[d];
        return acc;
    }

    static inline void mc_axpy_f16(float *out, float p, const mc_f16 *v, long n) {
        long d = 0;
    #if defined(__AVX512F__)
        const __m512 pv = _mm512_set1_ps(p);
        for (; d + 16 <= n; d += 16)
            _mm512_storeu_ps(out + d, _mm512_fmadd_ps(pv, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (v + d))),
                                                      _mm512_loadu_ps(out + d)));
    #elif defined(__F16C__) && defined(__AVX__)
        const __m256 pv = _mm256_set1_ps(p);
        for (; d + 8 <= n; d += 8)
            _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_loadu_ps(out + d),
                             _mm256_mul_ps(pv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (v + d))))));
    #endif
        for (; d < n; d++) out[d] += p * (float) v[d];
    }

    static inline float mc_dot_f32(const float *q, const float *k, long n) {
        float lane[MC_LANES] = {0.0f};
        long d = 0;
        for (; d + MC_LANES <= n; d += MC_LANES)
            for (int l = 0; l < MC_LANES; l++) lane[l] += q[d + l] * k[d + l];
        float acc = 0.0f;
        for (int l = 0; l < MC_LANES; l++) acc += lane[l];
        for (; d < n; d++) acc += q[d] * k[d];
        return acc;
    }

    static inline void mc_axpy_f32(float *out, float p, const float *v, long n) {
        for (long d = 0; d < n; d++) out[d] += p * v[d];
    }

    /* One (query, head): scores over keys j0..j1-1, softmax, weighted sum of values.
       With a float16 cache the query and the probabilities are rounded to float16, as ggml does
       (its f16 matrix products convert the f32 operand to f16). */
    #define MC_ATTN_ROW(NAME, T, DOT, AXPY)                                                         \\
    static void NAME(const float *q, const T *K, const T *V, long ks, long vs, long j0, long j1,  \\
                     long hd, long hdv, float scale, float *sc, float *qh, float *out) {          \\
        for (long d = 0; d < hd; d++) qh[d] = (float) (T) q[d];                                    \\
        float mx = -INFINITY;                                                                      \\
        for (long j = j0; j < j1; j++) {                                                           \\
            const float a = DOT(qh, K + j * ks, hd) * scale;                                       \\
            sc[j - j0] = a;                                                                        \\
            if (a > mx) mx = a;                                                                    \\
        }                                                                                          \\
        double sum = 0.0;                                                                          \\
        for (long j = 0; j < j1 - j0; j++) { float e = expf(sc[j] - mx); sc[j] = e; sum += e; }   \\
        const float inv = (float) (1.0 / sum);                                                     \\
        for (long d = 0; d < hdv; d++) out[d] = 0.0f;                                              \\
        for (long j = j0; j < j1; j++)                                                             \\
            AXPY(out, (float) (T) (sc[j - j0] * inv), V + j * vs, hdv);                            \\
    }
    MC_ATTN_ROW(mc_attn_row_f16, mc_f16, mc_dot_f16, mc_axpy_f16)
    MC_ATTN_ROW(mc_attn_row_f32, float, mc_dot_f32, mc_axpy_f32)

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
                    mc_attn_row_f16(qi, (const mc_f16 *) K + g * hd, (const mc_f16 *) V + g * hdv, ks, vs, j0,
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
            unsigned short bits = (unsigned short) i;
            mc_f16 h; memcpy(&h, &bits, sizeof h);
            const float x = (float) h;
            const float y = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * x * (1.0f + 0.044715f * x * x)));
            mc_gelu_table[i] = (float) (mc_f16) y;
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
                const mc_f16 h = (mc_f16) x;
                unsigned short bits; memcpy(&bits, &h, sizeof bits);
                g[i] = mc_gelu_table[bits] * u[i];
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
    """
    void mc_rmsnorm(const float *x, const float *w, float *y, long n, long d, float eps) nogil
    void mc_rope(float *x, long n, long n_head, long hd, long n_rot, const float *cos_t, const float *sin_t,
                 long pos, int neox) nogil
    void mc_attention(const float *q, const void *K, const void *V, int f16, long n, long pos, long n_head,
                      long n_kv, long hd, long hdv, float scale, long window, float *out, int nt) nogil
    void mc_glu(float *g, const float *u, long n, int gelu, int nt) nogil
    void mc_gelu_init()

mc_gelu_init()


def rmsnorm(const float[:, ::1] x, const float[::1] w, float eps):
    """x / sqrt(mean(x^2) + eps) * w over the last axis; returns a new array."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1]
    if w.shape[0] != d:
        raise ValueError(f"rmsnorm: weight of {w.shape[0]} for rows of {d}")
    out = np.empty((n, d), dtype=np.float32)
    cdef float[:, ::1] y = out
    with nogil:
        mc_rmsnorm(&x[0, 0], &w[0], &y[0, 0], n, d, eps)
    return out


def rope(float[:, ::1] x, long n_head, long head_dim, long n_rot, const float[:, ::1] cos_t,
         const float[:, ::1] sin_t, long pos, bint neox):
    """Rotary position embedding in place; row i of x is at position pos + i."""
    cdef Py_ssize_t n = x.shape[0]
    if x.shape[1] != n_head * head_dim or n_rot > head_dim or pos + n > cos_t.shape[0] \
            or cos_t.shape[1] * 2 != n_rot:
        raise ValueError("rope: shapes do not match")
    with nogil:
        mc_rope(&x[0, 0], n, n_head, head_dim, n_rot, &cos_t[0, 0], &sin_t[0, 0], pos, neox)


def attention(const float[:, ::1] q, cnp.ndarray k_cache, cnp.ndarray v_cache, long pos, long n_head, long n_kv,
              long head_dim, long head_dim_v, float scale, long window=0, int n_threads=0):
    """Causal (optionally sliding-window) attention of q [n, n_head*hd] at positions pos.. over the cache."""
    cdef Py_ssize_t n = q.shape[0]
    if k_cache.dtype != v_cache.dtype or k_cache.dtype not in (np.float16, np.float32):
        raise TypeError("attention: the KV cache must be float16 or float32")
    if not (k_cache.flags.c_contiguous and v_cache.flags.c_contiguous):
        raise ValueError("attention: the KV cache must be C-contiguous")
    if q.shape[1] != n_head * head_dim or k_cache.shape[1] != n_kv * head_dim \
            or v_cache.shape[1] != n_kv * head_dim_v or pos + n > k_cache.shape[0] or n_head % n_kv:
        raise ValueError("attention: shapes do not match")
    out = np.empty((n, n_head * head_dim_v), dtype=np.float32)
    cdef float[:, ::1] o = out
    cdef int f16 = k_cache.dtype == np.float16
    cdef const void *K = cnp.PyArray_DATA(k_cache)
    cdef const void *V = cnp.PyArray_DATA(v_cache)
    with nogil:
        mc_attention(&q[0, 0], K, V, f16, n, pos, n_head, n_kv, head_dim, head_dim_v, scale, window,
                     &o[0, 0], n_threads)
    return out


def glu(float[:, ::1] g, const float[:, ::1] u, bint gelu, int n_threads=1):
    """g = act(g) * u in place (silu: SwiGLU; gelu: GeGLU), over n_threads."""
    if g.shape[0] != u.shape[0] or g.shape[1] != u.shape[1]:
        raise ValueError("glu: shapes do not match")
    with nogil:
        mc_glu(&g[0, 0], &u[0, 0], g.shape[0] * g.shape[1], gelu, n_threads)
