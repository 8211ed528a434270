/* bench_layers - median wall time and GFLOP/s of the hot layers (not a test).
 *
 * Usage: bench_layers [reps]   (run with OPENBLAS_CORETYPE unset; threads from
 * OMP_NUM_THREADS). Shapes: the brief's conv1d (B=256, C=32, L=1024, O=64,
 * K=5) and the encoder's layers at B=512, L=4020 (reference/specrrmoco.md 3.1).
 * Allocates once per shape, touches every buffer before timing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sp_blas.h"
#include "sp_error.h"
#include "sp_layers.h"
#include "sp_log.h"
#include "sp_losses.h"
#include "sp_rng.h"

static float *balloc(size_t n) {
    float *p = sp_aligned_alloc(sizeof(float) * (n ? n : 1), "bench buffer");
    if (!p) {
        sp_error_print(stderr);
        exit(1);
    }
    return p;
}

static void fill(float *x, size_t n, uint64_t seed) {
    SpRng r;
    sp_rng_stream(&r, seed, 0, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)sp_rng_uniform(&r, -1.0, 1.0);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* median wall time, GFLOP/s from it, and the median process CPU time (all
 * threads: on a loaded machine wall time includes waiting for a core) */
#define TIME_IT(label, flops, reps, stmt)                                              \
    do {                                                                               \
        double ts_[64], cs_[64];                                                       \
        stmt; /* warm-up */                                                            \
        for (int r_ = 0; r_ < (reps); r_++) {                                          \
            double c0_ = cpu_now(), t0_ = sp_time_now();                               \
            stmt;                                                                      \
            ts_[r_] = sp_time_now() - t0_;                                             \
            cs_[r_] = cpu_now() - c0_;                                                 \
        }                                                                              \
        double med_ = median(ts_, (reps)), cmed_ = median(cs_, (reps));                \
        printf("%-50s wall %9.3f ms %7.2f GFLOP/s  cpu %9.3f ms\n", (label), med_ * 1e3, \
               (flops) > 0 ? (flops) / med_ * 1e-9 : 0.0, cmed_ * 1e3);                \
    } while (0)

static void bench_conv(const char *name, int B, int C, int L, int O, int K, int stride, int pad,
                       int reps, int with_dinp) {
    SpConv1d s = conv1d_shape(B, C, L, O, K, stride, pad);
    size_t ni = (size_t)B * C * L, no = (size_t)B * O * s.Lo, nw = (size_t)O * C * K;
    float *inp = balloc(ni), *out = balloc(no), *w = balloc(nw), *b = balloc((size_t)O);
    float *dout = balloc(no), *dinp = balloc(ni), *dw = balloc(nw), *db = balloc((size_t)O);
    float *work = balloc(conv1d_work_floats(&s));
    fill(inp, ni, 1);
    fill(w, nw, 2);
    fill(b, (size_t)O, 3);
    fill(dout, no, 4);
    memset(work, 0, sizeof(float) * conv1d_work_floats(&s));
    memset(dinp, 0, sizeof(float) * ni);
    memset(dw, 0, sizeof(float) * nw);
    memset(db, 0, sizeof(float) * (size_t)O);
    double fl = 2.0 * B * O * (double)C * K * s.Lo;
    char label[128];
    snprintf(label, sizeof label, "%s fwd", name);
    TIME_IT(label, fl, reps, conv1d_forward(out, inp, w, b, &s, work));
    snprintf(label, sizeof label, "%s bwd (%s)", name, with_dinp ? "dinp+dw+db" : "dw+db");
    TIME_IT(label, fl * (with_dinp ? 2 : 1), reps,
            conv1d_backward(with_dinp ? dinp : NULL, dw, db, dout, inp, w, &s, work));
    free(inp); free(out); free(w); free(b); free(dout); free(dinp); free(dw); free(db); free(work);
}

static void bench_bn(const char *name, int N, int C, int L, int S, int reps) {
    SpBatchNorm s = {N, C, L, S, 1e-5f, 0.1f};
    size_t n = (size_t)N * C * L;
    float *x = balloc(n), *y = balloc(n), *g = balloc(n), *dx = balloc(n);
    float *mean = balloc((size_t)S * C), *rstd = balloc((size_t)S * C), *gamma = balloc((size_t)C);
    float *beta = balloc((size_t)C), *rm = balloc((size_t)C), *rv = balloc((size_t)C);
    float *dg = balloc((size_t)C), *dbt = balloc((size_t)C), *work = balloc(batchnorm_work_floats(&s));
    fill(x, n, 5);
    fill(g, n, 6);
    fill(gamma, (size_t)C, 7);
    memset(beta, 0, sizeof(float) * C);
    memset(rm, 0, sizeof(float) * C);
    for (int c = 0; c < C; c++) rv[c] = 1.0f;
    memset(dx, 0, sizeof(float) * n);
    memset(dg, 0, sizeof(float) * C);
    memset(dbt, 0, sizeof(float) * C);
    char label[128];
    snprintf(label, sizeof label, "%s fwd train", name);
    TIME_IT(label, 0.0, reps, batchnorm_forward_train(y, mean, rstd, x, gamma, beta, rm, rv, &s));
    snprintf(label, sizeof label, "%s bwd", name);
    TIME_IT(label, 0.0, reps, batchnorm_backward(dx, dg, dbt, g, x, mean, rstd, gamma, &s, work));
    free(x); free(y); free(g); free(dx); free(mean); free(rstd); free(gamma); free(beta); free(rm);
    free(rv); free(dg); free(dbt); free(work);
}

static void bench_mha(int B, int T, int E, int H, int reps) {
    SpMHA s = {B, T, E, H};
    size_t n = (size_t)B * T * E, e = (size_t)E;
    float *x = balloc(n), *y = balloc(n), *g = balloc(n), *dx = balloc(n);
    float *wi = balloc(3 * e * e), *bi = balloc(3 * e), *wo = balloc(e * e), *bo = balloc(e);
    float *dwi = balloc(3 * e * e), *dbi = balloc(3 * e), *dwo = balloc(e * e), *dbo = balloc(e);
    float *cache = balloc(mha_cache_floats(&s)), *work = balloc(mha_work_floats(&s));
    fill(x, n, 8);
    fill(g, n, 9);
    fill(wi, 3 * e * e, 10);
    fill(bi, 3 * e, 11);
    fill(wo, e * e, 12);
    fill(bo, e, 13);
    memset(dx, 0, sizeof(float) * n);
    memset(dwi, 0, sizeof(float) * 3 * e * e);
    memset(dbi, 0, sizeof(float) * 3 * e);
    memset(dwo, 0, sizeof(float) * e * e);
    memset(dbo, 0, sizeof(float) * e);
    memset(cache, 0, sizeof(float) * mha_cache_floats(&s));
    memset(work, 0, sizeof(float) * mha_work_floats(&s));
    double fl = (double)B * (2.0 * T * 3 * E * E + 4.0 * T * T * E + 2.0 * T * E * E);
    char label[128];
    snprintf(label, sizeof label, "mha B=%d T=%d E=%d H=%d fwd", B, T, E, H);
    TIME_IT(label, fl, reps, mha_forward(y, cache, x, wi, bi, wo, bo, &s, work));
    snprintf(label, sizeof label, "mha B=%d T=%d E=%d H=%d bwd", B, T, E, H);
    TIME_IT(label, 2 * fl, reps,
            mha_backward(dx, dwi, dbi, dwo, dbo, g, x, cache, wi, wo, &s, work));
    free(x); free(y); free(g); free(dx); free(wi); free(bi); free(wo); free(bo); free(dwi);
    free(dbi); free(dwo); free(dbo); free(cache); free(work);
}

static void bench_infonce(int B, int D, int Q, int reps) {
    float *q = balloc((size_t)B * D), *k = balloc((size_t)B * D), *queue = balloc((size_t)D * Q);
    float *dq = balloc((size_t)B * D), *work = balloc(infonce_work_floats(B, Q));
    fill(q, (size_t)B * D, 14);
    fill(k, (size_t)B * D, 15);
    fill(queue, (size_t)D * Q, 16);
    memset(dq, 0, sizeof(float) * B * D);
    memset(work, 0, sizeof(float) * infonce_work_floats(B, Q));
    char label[128];
    snprintf(label, sizeof label, "infonce B=%d D=%d Q=%d (loss+dq)", B, D, Q);
    TIME_IT(label, 4.0 * B * D * Q, reps, infonce_loss(dq, q, k, queue, B, D, Q, 0.1f, 1.0f, NULL, work));
    free(q); free(k); free(queue); free(dq); free(work);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    int nt = sp_blas_init(0);
    char line[256];
    sp_threading_line(line, sizeof line);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("bench_layers: %s reps=%d%s%s\n", line, reps, ct ? " OPENBLAS_CORETYPE=" : "", ct ? ct : "");
    (void)nt;
    bench_conv("conv1d B=256 C=32 L=1024 O=64 K=5", 256, 32, 1024, 64, 5, 1, 0, reps, 1);
    bench_conv("conv1 B=512 C=1 L=4020 O=64 K=5 s2", 512, 1, 4020, 64, 5, 2, 0, reps, 0);
    bench_conv("conv3 B=512 C=64 L=1004 O=16 K=5", 512, 64, 1004, 16, 5, 1, 0, reps, 1);
    bench_conv("dec_conv3 B=512 C=16 L=128 O=1 K=1", 512, 16, 128, 1, 1, 1, 0, reps, 1);
    bench_bn("bn1 N=512 C=64 L=2008 S=8", 512, 64, 2008, 8, reps);
    bench_bn("bn relation N=15360 C=64 L=1 S=1", 15360, 64, 1, 1, reps);
    bench_mha(512, 128, 16, 2, reps);
    bench_infonce(512, 128, 1744, reps);
    return 0;
}
