# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython entry points over the C kernels in mc_kernels.h.

Every function here takes raw, already-validated arguments (the checks live in
kernels.py) and releases the GIL; the work is split over output rows with
OpenMP.
"""

from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc


cdef extern from "mc_kernels.h" nogil:
    int MC_KIND_NONE
    int mc_kind(int type)
    int mc_block_size(int type)
    int mc_type_size(int type)
    size_t mc_act_bytes(int type, int64_t n)
    size_t mc_wrow_bytes(int type, int64_t n)
    void mc_quantize_act(int type, const float *x, int64_t n, uint8_t *a)
    void mc_dequantize_row(int type, const uint8_t *w, int64_t n, float *y)
    void mc_matmul_rows(int type, const uint8_t *w, int64_t wrow_stride, int64_t cols,
                        int64_t r0, int64_t r1, const uint8_t *a, int64_t act_stride, int64_t n,
                        float *out, int64_t ldo, uint8_t *wbuf)


def supported(int type_id):
    """True when the kernels can compute with ggml type ``type_id``."""
    return mc_kind(type_id) != MC_KIND_NONE


def block_size(int type_id):
    return mc_block_size(type_id)


def type_size(int type_id):
    return mc_type_size(type_id)


cdef int64_t _rows_per_task(int type_id, int64_t cols, int64_t rows, int64_t n, int n_threads) noexcept nogil:
    """Weight rows decoded together: their decoded form stays in L2 while every activation row passes."""
    cdef size_t wrb = mc_wrow_bytes(type_id, cols)
    cdef int64_t r = <int64_t>((256 * 1024) // wrb)
    if r < 1:
        r = 1
    if r > 32:
        r = 32
    # enough tasks for every thread to get a fair share
    while r > 1 and (rows + r - 1) // r < 8 * n_threads:
        r //= 2
    return r


def matmul(int type_id, const uint8_t[::1] w, int64_t rows, int64_t cols,
           const float[:, ::1] x, float[:, ::1] out, int n_threads):
    """out[j, r] = W[r] . x[j] (x: n activation rows; out: n x rows)."""
    cdef int64_t n = x.shape[0]
    cdef int64_t row_bytes = cols // mc_block_size(type_id) * mc_type_size(type_id)
    cdef size_t act_stride = mc_act_bytes(type_id, cols)
    cdef size_t wrb = mc_wrow_bytes(type_id, cols)
    cdef int64_t per = _rows_per_task(type_id, cols, rows, n, n_threads)
    cdef int64_t ntasks = (rows + per - 1) // per
    cdef int64_t t, j, r0, r1
    cdef uint8_t *wbuf
    cdef uint8_t *act = <uint8_t *>malloc(act_stride * n + 64)
    if act == NULL:
        raise MemoryError()
    cdef uint8_t *a = <uint8_t *>((<size_t>act + 63) & ~(<size_t>63))
    cdef const uint8_t *wp = &w[0]
    cdef float *op = &out[0, 0]
    try:
        with nogil:
            for j in prange(n, num_threads=n_threads, schedule="static"):
                mc_quantize_act(type_id, &x[j, 0], cols, a + j * act_stride)
            with parallel(num_threads=n_threads):
                wbuf = <uint8_t *>malloc(wrb * per + 64)
                if wbuf != NULL:
                    for t in prange(ntasks, schedule="static"):
                        r0 = t * per
                        r1 = r0 + per
                        if r1 > rows:
                            r1 = rows
                        mc_matmul_rows(type_id, wp, row_bytes, cols, r0, r1, a, act_stride, n,
                                       op, rows, <uint8_t *>((<size_t>wbuf + 63) & ~(<size_t>63)))
                    free(wbuf)
    finally:
        free(act)


def dequantize_rows(int type_id, const uint8_t[::1] w, int64_t cols, const int64_t[::1] ids,
                    float[:, ::1] out, int n_threads):
    """out[i] = the dequantized row ids[i] of W (ids already range-checked)."""
    cdef int64_t row_bytes = cols // mc_block_size(type_id) * mc_type_size(type_id)
    cdef int64_t i, m = ids.shape[0]
    cdef const uint8_t *wp = &w[0]
    with nogil:
        for i in prange(m, num_threads=n_threads, schedule="static"):
            mc_dequantize_row(type_id, wp + ids[i] * row_bytes, cols, &out[i, 0])


def dequantize_all(int type_id, const uint8_t[::1] w, int64_t rows, int64_t cols, float[:, ::1] out,
                   int n_threads):
    """out = every row of W dequantized."""
    cdef int64_t row_bytes = cols // mc_block_size(type_id) * mc_type_size(type_id)
    cdef int64_t i
    cdef const uint8_t *wp = &w[0]
    with nogil:
        for i in prange(rows, num_threads=n_threads, schedule="static"):
            mc_dequantize_row(type_id, wp + i * row_bytes, cols, &out[i, 0])
