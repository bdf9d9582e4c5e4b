# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The transformer's small operations: RMSNorm, RoPE, attention, gated activations.

The C lives in csrc/mc_ops.h, compiled per instruction set and called through the chosen
variant's function table (modelctl/runtime/variants.py); it runs without the GIL, attention
threaded with OpenMP over (token, head) pairs.  The KV cache is float16 or float32.
"""

import numpy as np
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer

from modelctl.runtime import variants

cnp.import_array()

cdef extern from "mc_table.h" nogil:
    int MC_TABLE_ABI
    const char *MC_TABLE_CAPSULE
    ctypedef struct mc_table:
        int abi
        void (*rmsnorm)(const float *x, const float *w, float *y, long n, long d, float eps) noexcept nogil
        void (*rope)(float *x, long n, long n_head, long hd, long n_rot, const float *cos_t, const float *sin_t,
                     long pos, int neox) noexcept nogil
        void (*attention)(const float *q, const void *K, const void *V, int f16, long n, long pos, long n_head,
                          long n_kv, long hd, long hdv, float scale, long window, float *out, int nt) noexcept nogil
        void (*glu)(float *g, const float *u, long n, int gelu, int nt) noexcept nogil


cdef const mc_table *T = NULL


def use(str name):
    """Compute with variant ``name`` from now on (one of variants.runnable())."""
    global T
    cdef const mc_table *t = <const mc_table *>PyCapsule_GetPointer(variants.load(name).table, MC_TABLE_CAPSULE)
    if t.abi != MC_TABLE_ABI:
        raise ImportError(f"the {name} kernels were built for another version of modelctl")
    T = t


use(variants.choose())


def rmsnorm(const float[:, ::1] x, const float[::1] w, float eps):
    """x / sqrt(mean(x^2) + eps) * w over the last axis; returns a new array."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1]
    if w.shape[0] != d:
        raise ValueError(f"rmsnorm: weight of {w.shape[0]} for rows of {d}")
    out = np.empty((n, d), dtype=np.float32)
    cdef float[:, ::1] y = out
    with nogil:
        T.rmsnorm(&x[0, 0], &w[0], &y[0, 0], n, d, eps)
    return out


def rope(float[:, ::1] x, long n_head, long head_dim, long n_rot, const float[:, ::1] cos_t,
         const float[:, ::1] sin_t, long pos, bint neox):
    """Rotary position embedding in place; row i of x is at position pos + i."""
    cdef Py_ssize_t n = x.shape[0]
    if x.shape[1] != n_head * head_dim or n_rot > head_dim or pos + n > cos_t.shape[0] \
            or cos_t.shape[1] * 2 != n_rot:
        raise ValueError("rope: shapes do not match")
    with nogil:
        T.rope(&x[0, 0], n, n_head, head_dim, n_rot, &cos_t[0, 0], &sin_t[0, 0], pos, neox)


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
        T.attention(&q[0, 0], K, V, f16, n, pos, n_head, n_kv, head_dim, head_dim_v, scale, window,
                     &o[0, 0], n_threads)
    return out


def glu(float[:, ::1] g, const float[:, ::1] u, bint gelu, int n_threads=1):
    """g = act(g) * u in place (silu: SwiGLU; gelu: GeGLU), over n_threads."""
    if g.shape[0] != u.shape[0] or g.shape[1] != u.shape[1]:
        raise ValueError("glu: shapes do not match")
    with nogil:
        T.glu(&g[0, 0], &u[0, 0], g.shape[0] * g.shape[1], gelu, n_threads)
