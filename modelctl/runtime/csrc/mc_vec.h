/* The kernels' native vectors: MC_VB bytes, the width the ISA layer chose (it defines MC_VB before
 * including this; 64 by default).  A 64-byte "logical" vector of the contract (16 int32/float lanes)
 * is MC_NH = 64 / MC_VB native vectors. */
#ifndef MC_VEC_H
#define MC_VEC_H

#ifndef MC_VB
#define MC_VB 64
#endif
#if MC_VB != 16 && MC_VB != 32 && MC_VB != 64
#error "MC_VB must be 16, 32 or 64"
#endif
#define MC_NH (64 / MC_VB)    /* native vectors per 16 logical lanes */
#define MC_L32 (MC_VB / 4)    /* int32 / float lanes per native vector */
#define MC_W (MC_VB < 32 ? MC_VB : 32)   /* bytes per piece of a 32-weight segment */

typedef uint8_t mc_u8v __attribute__((vector_size(MC_VB)));
typedef int8_t mc_i8v __attribute__((vector_size(MC_VB)));
typedef int16_t mc_i16v __attribute__((vector_size(MC_VB)));
typedef int32_t mc_i32v __attribute__((vector_size(MC_VB)));
typedef uint32_t mc_u32v __attribute__((vector_size(MC_VB)));
typedef float mc_f32v __attribute__((vector_size(MC_VB)));
typedef uint8_t mc_u8w __attribute__((vector_size(MC_W)));
typedef uint16_t mc_u16w __attribute__((vector_size(MC_W)));

static inline mc_u8v mc_ld_u8v(const uint8_t *p) { mc_u8v v; memcpy(&v, p, MC_VB); return v; }
static inline mc_i8v mc_ld_i8v(const int8_t *p) { mc_i8v v; memcpy(&v, p, MC_VB); return v; }
static inline mc_i32v mc_ld_i32v(const int32_t *p) { mc_i32v v; memcpy(&v, p, MC_VB); return v; }
static inline mc_f32v mc_ld_f32v(const float *p) { mc_f32v v; memcpy(&v, p, MC_VB); return v; }
static inline void mc_st_f32v(float *p, mc_f32v v) { memcpy(p, &v, MC_VB); }
static inline mc_u8w mc_ld_u8w(const uint8_t *p) { mc_u8w v; memcpy(&v, p, MC_W); return v; }
static inline mc_f32v mc_f32(mc_i32v v) { return __builtin_convertvector(v, mc_f32v); }
static inline mc_f32v mc_splat_f32(float x) { return (mc_f32v){0} + x; }

/* the sum of a native vector's lanes in a tree (lane i + lane i + L/2, and so on down to one) */
static inline float mc_hsum(mc_f32v v) {
#if MC_VB == 64
    const mc_f32x8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)
                       + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const mc_f32x4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
#elif MC_VB == 32
    const mc_f32x4 b = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
#else
    const mc_f32x4 b = v;
#endif
    return (b[0] + b[2]) + (b[1] + b[3]);
}

#endif /* MC_VEC_H */
