/* A C test driver for one build of the kernels (one SIMD variant), run where Python cannot load it:
 * NEON cross-compiled and run under qemu-aarch64, an x86 variant this CPU lacks under qemu-x86_64.
 *
 *   driver VECTORS [PRODUCTS]
 *     reads the reference vectors that tests/test_simd_qemu.py writes, checks every case and prints
 *     one line per case; exit status 0 when all pass, 1 otherwise, 2 when a file cannot be read or
 *     written.  PRODUCTS receives every case's matmul result (float32[ntok][rows], case after case),
 *     for the bit-for-bit comparison of one variant with another (CONTRACT.md: every layer gives
 *     the generic layer's results).
 *
 * The checks are tests/test_kernels.py's, against the same references (gguf-py's dequantization, the
 * float64 product with the activations quantized as ggml quantizes them, the plain float64 product):
 *   - mc_dequantize_row reproduces gguf-py bit for bit;
 *   - mc_matmul_rows (all rows, then the rows in uneven ranges) is within tol_exact of the
 *     ggml-quantized product and tol_x of the plain one, relative to |W| @ |x|;
 *   - mc_matvec_rows on one activation row equals that row of the matmul bit for bit;
 * and, needing no input, mc_ops.h's attention against a float64 reference on random caches (float16
 * and float32, query heads sharing KV heads in groups of 7 and 3, rows that are not whole vectors,
 * a sliding window): one line per case, then "attention: N cases, M failing".
 *
 * File layout (little-endian): "MCSIMD01", uint32 cases, then per case
 *   int32 type, rows, cols, ntok; float64 tol_x, tol_exact;
 *   uint8 w[rows * row_bytes]; float32 x[ntok][cols]; float32 deq[rows][cols];
 *   float64 exact[ntok][rows], plain[ntok][rows], scale[ntok][rows]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc_kernels.h"
#include "mc_ops.h"

typedef struct {
    int32_t type, rows, cols, ntok;
    double tol_x, tol_exact;
    uint8_t *w;
    float *x, *deq;
    double *exact, *plain, *scale;
} mc_case;

static const char *type_name(int type) {
    switch (type) {
    case MC_F32: return "F32"; case MC_F16: return "F16"; case MC_BF16: return "BF16";
    case MC_Q4_0: return "Q4_0"; case MC_Q4_1: return "Q4_1"; case MC_Q5_0: return "Q5_0";
    case MC_Q5_1: return "Q5_1"; case MC_Q8_0: return "Q8_0"; case MC_IQ4_NL: return "IQ4_NL";
    case MC_Q2_K: return "Q2_K"; case MC_Q3_K: return "Q3_K"; case MC_Q4_K: return "Q4_K";
    case MC_Q5_K: return "Q5_K"; case MC_Q6_K: return "Q6_K"; case MC_IQ4_XS: return "IQ4_XS";
    default: return "?";
    }
}

static int64_t row_bytes(int type, int64_t cols) { return cols / mc_block_size(type) * mc_type_size(type); }

/* n items of size sz from f into a fresh buffer; NULL at the file's end or on a short read */
static void *read_array(FILE *f, size_t n, size_t sz) {
    void *p = malloc(n * sz + 1);
    if (p && fread(p, sz, n, f) != n) {
        free(p);
        return NULL;
    }
    return p;
}

static int read_case(FILE *f, mc_case *c) {
    int32_t hdr[4];
    double tol[2];
    if (fread(hdr, 4, 4, f) != 4 || fread(tol, 8, 2, f) != 2) return 0;
    c->type = hdr[0]; c->rows = hdr[1]; c->cols = hdr[2]; c->ntok = hdr[3];
    c->tol_x = tol[0]; c->tol_exact = tol[1];
    if (mc_kind(c->type) == MC_KIND_NONE || c->rows < 1 || c->cols < 1 || c->ntok < 1
        || c->cols % mc_block_size(c->type)) return 0;
    const size_t rows = (size_t)c->rows, cols = (size_t)c->cols, ntok = (size_t)c->ntok;
    c->w = read_array(f, rows * (size_t)row_bytes(c->type, c->cols), 1);
    c->x = read_array(f, ntok * cols, 4);
    c->deq = read_array(f, rows * cols, 4);
    c->exact = read_array(f, ntok * rows, 8);
    c->plain = read_array(f, ntok * rows, 8);
    c->scale = read_array(f, ntok * rows, 8);
    return c->w && c->x && c->deq && c->exact && c->plain && c->scale;
}

static void free_case(mc_case *c) {
    free(c->w); free(c->x); free(c->deq); free(c->exact); free(c->plain); free(c->scale);
}

/* 64-byte aligned, zeroed */
static uint8_t *alloc64(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    memset(p, 0, n ? n : 64);
    return p;
}

/* every check on one case: returns the number of failures and prints one line */
static int run_case(const mc_case *c, FILE *products) {
    const int type = c->type;
    const int64_t rows = c->rows, cols = c->cols, ntok = c->ntok, rb = row_bytes(type, cols);
    const size_t act_stride = mc_round_up(mc_act_bytes(type, cols));
    char what[160] = "";
    int fails = 0;

    /* dequantization, bit for bit */
    float *y = malloc((size_t)cols * 4);
    int64_t bad_deq = 0;
    for (int64_t r = 0; r < rows; r++) {
        mc_dequantize_row(type, c->w + r * rb, cols, y);
        if (memcmp(y, c->deq + r * cols, (size_t)cols * 4)) bad_deq++;
    }
    free(y);
    if (bad_deq) {
        fails++;
        snprintf(what + strlen(what), sizeof what - strlen(what), " dequantize: %lld rows differ;", (long long)bad_deq);
    }

    /* activations quantized once per row; the product over all rows, then over uneven row ranges */
    uint8_t *act = alloc64(act_stride * (size_t)ntok);
    float *out = malloc((size_t)(ntok * rows) * 4), *out2 = malloc((size_t)(ntok * rows) * 4);
    float *one = malloc((size_t)rows * 4);
    for (int64_t j = 0; j < ntok; j++) mc_quantize_act(type, c->x + j * cols, cols, act + j * act_stride);
    mc_matmul_rows(type, c->w, rb, cols, 0, rows, act, (int64_t)act_stride, ntok, out, rows);
    for (int64_t r0 = 0, step = 1; r0 < rows; r0 += step, step += 2) {
        const int64_t r1 = r0 + step < rows ? r0 + step : rows;
        mc_matmul_rows(type, c->w, rb, cols, r0, r1, act, (int64_t)act_stride, ntok, out2, rows);
    }
    if (memcmp(out, out2, (size_t)(ntok * rows) * 4)) {
        fails++;
        snprintf(what + strlen(what), sizeof what - strlen(what), " row ranges change the product;");
    }
    double err_exact = 0.0, err_plain = 0.0;
    int64_t bad_vec = 0;
    for (int64_t j = 0; j < ntok; j++) {
        mc_matvec_rows(type, c->w, rb, cols, 0, rows, act + j * act_stride, one);
        if (memcmp(one, out + j * rows, (size_t)rows * 4)) bad_vec++;
        for (int64_t r = 0; r < rows; r++) {
            const int64_t k = j * rows + r;
            const double e1 = fabs((double)out[k] - c->exact[k]) / c->scale[k];
            const double e2 = fabs((double)out[k] - c->plain[k]) / c->scale[k];
            if (!(e1 <= err_exact)) err_exact = e1;   /* NaN sticks */
            if (!(e2 <= err_plain)) err_plain = e2;
        }
    }
    if (bad_vec) {
        fails++;
        snprintf(what + strlen(what), sizeof what - strlen(what), " matvec differs from matmul in %lld rows;",
                 (long long)bad_vec);
    }
    if (!(err_exact <= c->tol_exact)) {
        fails++;
        snprintf(what + strlen(what), sizeof what - strlen(what), " %.3g from the ggml-quantized product (tol %.3g);",
                 err_exact, c->tol_exact);
    }
    if (!(err_plain <= c->tol_x)) {
        fails++;
        snprintf(what + strlen(what), sizeof what - strlen(what), " %.3g from W @ x (tol %.3g);", err_plain, c->tol_x);
    }
    if (products && fwrite(out, 4, (size_t)(ntok * rows), products) != (size_t)(ntok * rows)) {
        fails++;
        snprintf(what + strlen(what), sizeof what - strlen(what), " cannot write the products;");
    }
    free(act); free(out); free(out2); free(one);
    printf("%-6s %4lld x %-5lld x %lld: %s (exact %.2g, plain %.2g)%s\n", type_name(type), (long long)rows,
           (long long)cols, (long long)ntok, fails ? "FAIL" : "ok", err_exact, err_plain, what);
    return fails;
}

/* attention: random q, K, V (uniform in [-1, 1), a fixed xorshift), float16 caches holding the rounded
 * values the reference also reads; the tolerances of tests/test_ops.py (the f16 path rounds the queries
 * and the probabilities to float16, as ggml does) */
static uint64_t mc_rs = 88172645463325252ull;
static float mc_rnd(void) {
    mc_rs ^= mc_rs << 13; mc_rs ^= mc_rs >> 7; mc_rs ^= mc_rs << 17;
    return (float)((double)(mc_rs >> 11) / (double)(1ull << 52) - 1.0);
}

static int attention_case(int f16, long n_head, long n_kv, long hd, long hdv, long pos, long n, long window) {
    const long n_ctx = pos + n, group = n_head / n_kv;
    float *q = malloc(sizeof(float) * n * n_head * hd), *out = malloc(sizeof(float) * n * n_head * hdv);
    float *K = malloc(sizeof(float) * n_ctx * n_kv * hd), *V = malloc(sizeof(float) * n_ctx * n_kv * hdv);
    uint16_t *K16 = malloc(2 * n_ctx * n_kv * hd), *V16 = malloc(2 * n_ctx * n_kv * hdv);
    double *sc = malloc(sizeof(double) * n_ctx);
    for (long i = 0; i < n * n_head * hd; i++) q[i] = mc_rnd();
    for (long i = 0; i < n_ctx * n_kv * hd; i++) { K16[i] = mc_fp32_to_fp16(mc_rnd()); K[i] = f16 ? mc_fp16_to_fp32(K16[i]) : mc_rnd(); }
    for (long i = 0; i < n_ctx * n_kv * hdv; i++) { V16[i] = mc_fp32_to_fp16(mc_rnd()); V[i] = f16 ? mc_fp16_to_fp32(V16[i]) : mc_rnd(); }
    const float scale = 0.3f;
    mc_attention(q, f16 ? (const void *)K16 : (const void *)K, f16 ? (const void *)V16 : (const void *)V, f16, n, pos,
                 n_head, n_kv, hd, hdv, scale, window, out, 1);
    double err = 0.0;
    for (long i = 0; i < n; i++)
        for (long h = 0; h < n_head; h++) {
            const long g = h / group, p = pos + i, j0 = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
            double mx = -INFINITY, sum = 0.0;
            for (long j = j0; j <= p; j++) {
                double s = 0.0;
                for (long d = 0; d < hd; d++) s += (double)q[(i * n_head + h) * hd + d] * K[(j * n_kv + g) * hd + d];
                sc[j] = s * scale;
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (long j = j0; j <= p; j++) { sc[j] = exp(sc[j] - mx); sum += sc[j]; }
            for (long d = 0; d < hdv; d++) {
                double o = 0.0;
                for (long j = j0; j <= p; j++) o += sc[j] / sum * V[(j * n_kv + g) * hdv + d];
                const double e = fabs(o - out[(i * n_head + h) * hdv + d]);
                err = e > err ? e : err;
            }
        }
    const double tol = f16 ? 2e-3 : 1e-5;
    printf("attention %s %ld heads / %ld KV x %ld/%ld, pos %ld, %ld rows, window %ld: %s, max error %.2g\n",
           f16 ? "f16" : "f32", n_head, n_kv, hd, hdv, pos, n, window, err <= tol ? "ok" : "FAIL", err);
    free(q); free(out); free(K); free(V); free(K16); free(V16); free(sc);
    return err > tol;
}

static int attention_cases(void) {
    static const long shapes[4][6] = {   /* n_head, n_kv, hd, hdv, pos, n */
        {14, 2, 72, 40, 9, 5}, {6, 2, 16, 8, 5, 4}, {16, 1, 64, 64, 3, 1}, {16, 1, 64, 64, 3, 6}};
    int failed = 0, cases = 0;
    for (int f16 = 0; f16 < 2; f16++)
        for (int k = 0; k < 4; k++, cases++) {
            const long *s = shapes[k];
            failed += attention_case(f16, s[0], s[1], s[2], s[3], s[4], s[5], k == 1 ? 3 : 0);
        }
    printf("attention: %d cases, %d failing\n", cases, failed);
    return failed;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s VECTORS [PRODUCTS]\n", argv[0]);
        return 2;
    }
    FILE *products = argc == 3 ? fopen(argv[2], "wb") : NULL;
    if (argc == 3 && !products) {
        fprintf(stderr, "driver: cannot write %s\n", argv[2]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    char magic[8];
    uint32_t n = 0;
    if (!f || fread(magic, 1, 8, f) != 8 || memcmp(magic, "MCSIMD01", 8) || fread(&n, 4, 1, f) != 1) {
        fprintf(stderr, "driver: %s is not a reference vector file (MCSIMD01)\n", argv[1]);
        return 2;
    }
    int failed = 0;
    for (uint32_t i = 0; i < n; i++) {
        mc_case c;
        memset(&c, 0, sizeof c);
        if (!read_case(f, &c)) {
            fprintf(stderr, "driver: %s: case %u is truncated or malformed\n", argv[1], i);
            free_case(&c);
            return 2;
        }
        failed += run_case(&c, products) > 0;
        free_case(&c);
    }
    fclose(f);
    if (products && fclose(products)) {
        fprintf(stderr, "driver: cannot write %s\n", argv[2]);
        return 2;
    }
    printf("driver: %u cases, %d failing\n", n, failed);
    const int attention_failed = attention_cases();
    return failed || attention_failed ? 1 : 0;
}
