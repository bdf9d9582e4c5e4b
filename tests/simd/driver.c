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
 *   - mc_matvec_rows on one activation row equals that row of the matmul bit for bit.
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
    return failed ? 1 : 0;
}
