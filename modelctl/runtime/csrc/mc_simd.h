/* The SIMD contract: what the kernels (mc_kernels.h, mc_ops.h) need from an instruction set.
 *
 * CONTRACT.md (next to this file) states exactly what each helper computes.  This header holds the
 * parts that are the same on every CPU (vector types, loads, conversions the compiler does well)
 * and includes the one ISA layer the build selects:
 *
 *   -DMC_ISA_AVX512   arch/avx512.h    x86-64-v4 + AVX-512 VNNI
 *   -DMC_ISA_AVXVNNI  arch/avxvnni.h   x86-64-v3 + AVX-VNNI (VEX vpdpbusd)
 *   -DMC_ISA_AVX2     arch/avx2.h      x86-64-v3 (AVX2, FMA, F16C)
 *   -DMC_ISA_NEON     arch/neon.h      armv8.2-a + dotprod
 *   (none)            arch/generic.h   plain C, any CPU: the reference the others are tested against
 *
 * An ISA layer defines what it has (each with its MC_HAVE_<NAME> macro) and includes arch/generic.h,
 * which supplies the plain-C version of every helper it did not define.
 */
#ifndef MC_SIMD_H
#define MC_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* unroll the next loop fully (its index must become a constant in each copy) */
#if defined(__clang__)
#define MC_UNROLL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define MC_UNROLL _Pragma("GCC unroll 16")
#else
#define MC_UNROLL
#endif

/* ------------------------------------------------------------------ */
/* logical vectors: 64 bytes whatever the ISA (GCC/Clang generic vectors; the compiler splits them
 * into 2 ymm on AVX2, 4 q registers on NEON)                                                    */
/* ------------------------------------------------------------------ */
typedef uint8_t mc_u8x16 __attribute__((vector_size(16)));
typedef int8_t mc_i8x16 __attribute__((vector_size(16)));
typedef uint8_t mc_u8x32 __attribute__((vector_size(32)));
typedef int8_t mc_i8x32 __attribute__((vector_size(32)));
typedef uint8_t mc_u8x64 __attribute__((vector_size(64)));
typedef int8_t mc_i8x64 __attribute__((vector_size(64)));
typedef uint16_t mc_u16x16 __attribute__((vector_size(32)));
typedef int16_t mc_i16x16 __attribute__((vector_size(32)));
typedef int16_t mc_i16x32 __attribute__((vector_size(64)));
typedef uint32_t mc_u32x4 __attribute__((vector_size(16)));
typedef int32_t mc_i32x8 __attribute__((vector_size(32)));
typedef int32_t mc_i32x16 __attribute__((vector_size(64)));
typedef uint32_t mc_u32x16 __attribute__((vector_size(64)));
typedef uint64_t mc_u64x8 __attribute__((vector_size(64)));
typedef float mc_f32x4 __attribute__((vector_size(16)));
typedef float mc_f32x8 __attribute__((vector_size(32)));
typedef float mc_f32x16 __attribute__((vector_size(64)));

static inline mc_u8x16 mc_ld_u8(const uint8_t *p) { mc_u8x16 v; memcpy(&v, p, 16); return v; }
static inline mc_u8x32 mc_ld_u8x32(const uint8_t *p) { mc_u8x32 v; memcpy(&v, p, 32); return v; }
static inline mc_u8x64 mc_ld_u8x64(const uint8_t *p) { mc_u8x64 v; memcpy(&v, p, 64); return v; }
static inline mc_i8x64 mc_ld_i8x64(const int8_t *p) { mc_i8x64 v; memcpy(&v, p, 64); return v; }
static inline mc_f32x16 mc_ld_f32(const float *p) { mc_f32x16 v; memcpy(&v, p, 64); return v; }
/* constant permutations and halves (__builtin_shufflevector: GCC >= 12, Clang) */
#if defined(__clang__) || __GNUC__ >= 12
#define MC_BSHUF(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#define MC_I8(o) o, o + 1, o + 2, o + 3, o + 4, o + 5, o + 6, o + 7
#define MC_I16(o) MC_I8(o), MC_I8(o + 8)
#define MC_I32(o) MC_I16(o), MC_I16(o + 16)
#define MC_I64(o) MC_I32(o), MC_I32(o + 32)
#define MC_HAS_SHUFFLEVECTOR 1
#else
#define MC_BSHUF(v, ...) __builtin_shuffle(v, (__typeof__(v)){__VA_ARGS__})
#endif
/* 32-bit lanes of a 4-lane vector, by constant indices (one pshufd) */
#define MC_SHUF4(v, a, b, c, d) MC_BSHUF(v, a, b, c, d)
/* bytes {o, o, o+1, o+1, ..., o+7, o+7}: one value per 32 weights, spread over the 16-weight groups */
#define MC_PAIRS(v, o) MC_BSHUF(v, o, o, o + 1, o + 1, o + 2, o + 2, o + 3, o + 3, o + 4, o + 4, o + 5, o + 5, \
    o + 6, o + 6, o + 7, o + 7)

/* float bits */
static inline float mc_f32_from_bits(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }
static inline uint32_t mc_bits_from_f32(float f) { uint32_t w; memcpy(&w, &f, 4); return w; }

/* portable, exact, branch-free float16 conversions (the generic layer's; tests check them directly) */
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

static inline uint16_t mc_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t mc_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* ------------------------------------------------------------------ */
/* the ISA layer                                                        */
/* ------------------------------------------------------------------ */
#if defined(MC_ISA_AVX512)
#include "arch/avx512.h"
#elif defined(MC_ISA_AVXVNNI)
#include "arch/avxvnni.h"
#elif defined(MC_ISA_AVX2)
#include "arch/avx2.h"
#elif defined(MC_ISA_NEON)
#include "arch/neon.h"
#else
#ifndef MC_VB
#define MC_VB 16   /* the plain-C build: 16-byte vectors, SSE2's and baseline AArch64's registers */
#endif
#include "arch/generic.h"
#endif

static inline float mc_rdf16(const uint8_t *p) { return mc_fp16_to_fp32(mc_rd16(p)); }
static inline float mc_round_fp16(float f) { return mc_fp16_to_fp32(mc_fp32_to_fp16(f)); }

#endif /* MC_SIMD_H */
