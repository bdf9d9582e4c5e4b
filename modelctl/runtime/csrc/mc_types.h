/* ggml's types as the kernels know them, and the sizes of their buffers: plain C, no SIMD
 * (the Cython glue includes this alone). */
#ifndef MC_TYPES_H
#define MC_TYPES_H

#include <stddef.h>
#include <stdint.h>

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

/* activation buffers (layouts: mc_kernels.h, "activations") */
static inline int64_t mc_groups(int64_t n) { return (n + 127) / 128; }

static inline size_t mc_act_bytes(int type, int64_t n) {
    const size_t G = (size_t)mc_groups(n);
    switch (mc_kind(type)) {
    case MC_KIND_FLOAT: return mc_round_up((size_t)n * 4);
    case MC_KIND_Q32: return 128 * G + 64 * G + 64 * G + mc_round_up(4 * G * 4);
    case MC_KIND_QK: return mc_round_up((size_t)n) + mc_round_up((size_t)(n / MC_QKK) * 4)
                            + mc_round_up((size_t)(n / 16) * 4);
    default: return 0;
    }
}

#endif /* MC_TYPES_H */
