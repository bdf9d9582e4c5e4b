# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython entry points over the C kernels (csrc/mc_kernels.h), called through the function table
of the compiled variant chosen at import (modelctl/runtime/variants.py; ``use`` switches it).

Every function here takes raw, already-validated arguments (the checks live in
kernels.py) and releases the GIL; the work is split over output rows with
OpenMP.
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport free, malloc

from modelctl.runtime import variants


cdef extern from "mc_types.h" nogil:
    int MC_KIND_NONE
    int mc_kind(int type)
    int mc_block_size(int type)
    int mc_type_size(int type)
    size_t mc_act_bytes(int type, int64_t n)

cdef extern from "mc_simd.h" nogil:
    float mc_fp16_to_fp32_soft(uint16_t h)
    uint16_t mc_fp32_to_fp16_soft(float f)

cdef extern from "mc_table.h" nogil:
    int MC_TABLE_ABI
    const char *MC_TABLE_CAPSULE
    ctypedef struct mc_table:
        int abi
        const char *name
        void (*quantize_act)(int type, const float *x, int64_t n, uint8_t *a) noexcept nogil
        void (*dequantize_row)(int type, const uint8_t *w, int64_t n, float *y) noexcept nogil
        void (*matmul_rows)(int type, const uint8_t *w, int64_t stride, int64_t n, int64_t r0, int64_t r1,
                            const uint8_t *a, int64_t act_stride, int64_t ntok, float *out, int64_t ldo) noexcept nogil
        uint64_t (*read_words)(const uint8_t *p, int64_t n) noexcept nogil


cdef const mc_table *T = NULL
variant = None   # the name of the variant in use


def use(str name):
    """Compute with variant ``name`` from now on (one of variants.runnable())."""
    global T, variant
    cdef const mc_table *t = <const mc_table *>PyCapsule_GetPointer(variants.load(name).table, MC_TABLE_CAPSULE)
    if t.abi != MC_TABLE_ABI:
        raise ImportError(f"the {name} kernels were built for another version of modelctl")
    T = t
    variant = name


use(variants.choose())


def supported(int type_id):
    """True when the kernels can compute with ggml type ``type_id``."""
    return mc_kind(type_id) != MC_KIND_NONE


def block_size(int type_id):
    return mc_block_size(type_id)


def type_size(int type_id):
    return mc_type_size(type_id)


# Below this many bytes of weights a single thread does the work: waking a second
# one would cost about as much as it saves.
cdef enum:
    PARALLEL_MIN_BYTES = 128 * 1024


cdef int _threads_for(int64_t work_bytes, int n_threads) noexcept nogil:
    return 1 if work_bytes < PARALLEL_MIN_BYTES else n_threads


cdef int64_t _rows_per_task(int64_t row_bytes, int64_t rows, int n_threads) noexcept nogil:
    """Weight rows per matmul task: they stay in L1/L2 while every activation row passes."""
    cdef int64_t r = (32 * 1024) // row_bytes
    if r < 1:
        r = 1
    if r > 64:
        r = 64
    # enough tasks for every thread to get a fair share
    while r > 1 and (rows + r - 1) // r < 8 * n_threads:
        r //= 2
    return r


cdef uint8_t *_aligned(uint8_t *p) noexcept nogil:
    return <uint8_t *>((<size_t>p + 63) & ~(<size_t>63))


cdef struct _job:             # one matrix of a products() call
    int type_id
    const uint8_t *w
    int64_t rows, cols, row_bytes
    const uint8_t *act        # its quantized activations (shared with an earlier job of the same type)
    size_t act_stride
    float *out                # [n, rows]
    int64_t per               # weight rows per task
    int64_t tasks             # its tasks: ceil(rows / per)


cdef inline void _run(const _job *jb, int64_t r0, int64_t r1, int64_t n) noexcept nogil:
    T.matmul_rows(jb.type_id, jb.w, jb.row_bytes, jb.cols, r0, r1, jb.act, jb.act_stride, n, jb.out, jb.rows)


cdef void _compute(_job *jobs, int m, uint8_t **acts, const float[:, ::1] x, int nt, int64_t total) noexcept nogil:
    """Quantize x once per distinct weight type (acts[i] set), then every job's row tasks."""
    cdef int64_t n = x.shape[0], cols = x.shape[1], j, t, r0, r1
    cdef int i
    for i in range(m):
        if acts[i] != NULL:
            if n == 1:
                T.quantize_act(jobs[i].type_id, &x[0, 0], cols, <uint8_t *>jobs[i].act)
            else:
                for j in prange(n, num_threads=nt, schedule="static"):
                    T.quantize_act(jobs[i].type_id, &x[j, 0], cols, <uint8_t *>jobs[i].act + j * jobs[i].act_stride)
    if nt == 1:
        for i in range(m):
            _run(&jobs[i], 0, jobs[i].rows, n)
    else:
        for t in prange(total, num_threads=nt, schedule="dynamic"):
            i = 0
            r0 = t
            while r0 >= jobs[i].tasks:   # task t's matrix and its rows
                r0 = r0 - jobs[i].tasks
                i = i + 1
            r0 = r0 * jobs[i].per
            r1 = min(r0 + jobs[i].per, jobs[i].rows)
            _run(&jobs[i], r0, r1, n)


def products(list mats, const float[:, ::1] x, list outs, int n_threads):
    """outs[i][j, r] = W_i[r] . x[j] for every matrix W_i = mats[i] = (type_id, data, rows, cols) that
    reads the same input x (q, k, v; gate, up): one parallel region for all of them, x quantized once
    per weight type, every matrix's row tasks handed out together.  Each product is computed exactly as
    for one matrix alone, and row j the same whatever n (one activation row: matvec)."""
    cdef int m = len(mats)
    cdef int64_t n = x.shape[0], cols = x.shape[1]
    cdef _job *jobs = <_job *>malloc(m * sizeof(_job))
    cdef uint8_t **acts = <uint8_t **>malloc(m * sizeof(uint8_t *))
    if jobs == NULL or acts == NULL:
        free(jobs)
        free(acts)
        raise MemoryError()
    cdef int i, k, nt
    cdef int64_t total = 0, work = 0
    cdef float[:, ::1] o
    cdef const uint8_t[::1] data
    for i in range(m):
        acts[i] = NULL
    try:
        for i in range(m):
            type_id, data, rows, c = mats[i]
            o = outs[i]
            jobs[i].type_id = type_id
            jobs[i].rows = rows
            jobs[i].cols = cols
            jobs[i].row_bytes = cols // mc_block_size(jobs[i].type_id) * mc_type_size(jobs[i].type_id)
            if c != cols or o.shape[0] != n or o.shape[1] != rows or data.shape[0] < rows * jobs[i].row_bytes:
                raise ValueError("products: a matrix, its input and its output do not fit together")
            if n == 0 or rows == 0 or cols == 0:
                raise ValueError("products: empty matrices and inputs have no products to compute")
            jobs[i].w = &data[0]
            jobs[i].out = &o[0, 0]
            jobs[i].act_stride = mc_act_bytes(jobs[i].type_id, cols)
            work += jobs[i].rows * jobs[i].row_bytes * n
        nt = _threads_for(work, n_threads)
        for i in range(m):
            if n == 1:   # one token: a few contiguous chunks per thread, handed out as threads come free
                jobs[i].per = max(1, (jobs[i].rows + 4 * nt - 1) // (4 * nt))
            else:        # a batch: weight rows that stay in cache while every activation row passes
                jobs[i].per = _rows_per_task(jobs[i].row_bytes, jobs[i].rows, nt)
            jobs[i].tasks = (jobs[i].rows + jobs[i].per - 1) // jobs[i].per
            total += jobs[i].tasks
            jobs[i].act = NULL
            for k in range(i):
                if jobs[k].type_id == jobs[i].type_id:
                    jobs[i].act = jobs[k].act
                    break
            if jobs[i].act == NULL:
                acts[i] = <uint8_t *>malloc(jobs[i].act_stride * n + 64)
                if acts[i] == NULL:
                    raise MemoryError()
                jobs[i].act = _aligned(acts[i])
        with nogil:
            _compute(jobs, m, acts, x, nt, total)
    finally:
        for i in range(m):
            free(acts[i])
        free(acts)
        free(jobs)


def dequantize_rows(int type_id, const uint8_t[::1] w, int64_t cols, const int64_t[::1] ids,
                    float[:, ::1] out, int n_threads):
    """out[i] = the dequantized row ids[i] of W (ids already range-checked)."""
    cdef int64_t row_bytes = cols // mc_block_size(type_id) * mc_type_size(type_id)
    cdef int64_t i, m = ids.shape[0]
    cdef const uint8_t *wp = &w[0]
    with nogil:
        for i in prange(m, num_threads=n_threads, schedule="static"):
            T.dequantize_row(type_id, wp + ids[i] * row_bytes, cols, &out[i, 0])


def dequantize_all(int type_id, const uint8_t[::1] w, int64_t rows, int64_t cols, float[:, ::1] out,
                   int n_threads):
    """out = every row of W dequantized."""
    cdef int64_t row_bytes = cols // mc_block_size(type_id) * mc_type_size(type_id)
    cdef int64_t i
    cdef const uint8_t *wp = &w[0]
    with nogil:
        for i in prange(rows, num_threads=n_threads, schedule="static"):
            T.dequantize_row(type_id, wp + i * row_bytes, cols, &out[i, 0])


def fp16_to_fp32_soft(const uint16_t[::1] h, float[::1] out):
    """The portable float16 -> float32 conversion (the one a build without F16C uses), for tests."""
    cdef Py_ssize_t i
    for i in range(h.shape[0]):
        out[i] = mc_fp16_to_fp32_soft(h[i])


def fp32_to_fp16_soft(const float[::1] x, uint16_t[::1] out):
    """The portable float32 -> float16 conversion (round to nearest even), for tests."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = mc_fp32_to_fp16_soft(x[i])


def read_memory(const uint8_t[::1] buf, int n_threads):
    """Sum of the buffer's 64-bit words, read by n_threads: the benchmark's memory bandwidth probe."""
    cdef int64_t nw = buf.shape[0] // 8
    cdef int64_t chunk = 1 << 16
    cdef int64_t nchunks = (nw + chunk - 1) // chunk
    cdef int64_t t
    cdef uint64_t total = 0
    cdef const uint8_t *p = &buf[0]
    with nogil:
        for t in prange(nchunks, num_threads=n_threads, schedule="static"):
            total += T.read_words(p + t * chunk * 8, min(chunk, nw - t * chunk))
    return total
