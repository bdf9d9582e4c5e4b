/* The function table each compiled variant exports (a PyCapsule named MC_TABLE_CAPSULE in its
 * module's `table`): the Cython glue (_kernels.pyx, _ops.pyx) calls the kernels through it. */
#ifndef MC_TABLE_H
#define MC_TABLE_H

#include <stdint.h>

#define MC_TABLE_ABI 1
#define MC_TABLE_CAPSULE "modelctl.runtime.mc_table"

typedef struct {
    int abi;            /* MC_TABLE_ABI */
    const char *name;   /* the variant: "generic", "avx2", ... */
    /* mc_kernels.h */
    void (*quantize_act)(int type, const float *x, int64_t n, uint8_t *a);
    void (*dequantize_row)(int type, const uint8_t *w, int64_t n, float *y);
    void (*matmul_rows)(int type, const uint8_t *w, int64_t stride, int64_t n, int64_t r0, int64_t r1,
                        const uint8_t *a, int64_t act_stride, int64_t ntok, float *out, int64_t ldo);
    uint64_t (*read_words)(const uint8_t *p, int64_t n);
    /* mc_ops.h */
    void (*rmsnorm)(const float *x, const float *w, float *y, long n, long d, float eps);
    void (*rope)(float *x, long n, long n_head, long hd, long n_rot, const float *cos_t, const float *sin_t,
                 long pos, int neox);
    void (*attention)(const float *q, const void *K, const void *V, int f16, long n, long pos, long n_head,
                      long n_kv, long hd, long hdv, float scale, long window, float *out, int nt);
    void (*glu)(float *g, const float *u, long n, int gelu, int nt);
} mc_table;

#endif /* MC_TABLE_H */
