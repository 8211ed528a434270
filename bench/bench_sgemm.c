/* bench_sgemm.c - what cblas_sgemm achieves on this machine.
 *
 * Prints the OpenBLAS core name and, for a few shapes (a square one and the
 * GEMM shapes of the bench_cnn / convsc encoders), the sgemm GFLOP/s with
 * 1 thread and with 2 threads running independent single-threaded sgemms in
 * parallel (policy A of STYLE.md 2.5: OpenMP over the batch, BLAS
 * single-threaded), which is the ceiling the C encoders can reach.
 *
 * Usage: bench_sgemm [--threads N] [--seconds S]
 * Output: one key=value line per (shape, threads): gflops by wall time and
 * gflops_cpu by process CPU time (per thread holding a core, times threads; it
 * stays meaningful when other jobs share the cores). Run with
 * OPENBLAS_CORETYPE unset (bench/run.sh does).
 */
#include "sp_blas.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    int m, n, k;
} shape_t;

/* Row-major C[m][n] = A[m][k] * B[k][n]. */
static const shape_t SHAPES[] = {
    {"square512", 512, 512, 512},
    /* cnn conv2 (32->64, k5) as im2col GEMM on one spectrum: 64 x 512 x 160 */
    {"cnn_conv2", 64, 512, 160},
    /* cnn conv3 (64->128, k3): 128 x 256 x 192 */
    {"cnn_conv3", 128, 256, 192},
    /* convsc conv3 (64->16, k5) on one L=4020 spectrum: 16 x 1000 x 320 */
    {"convsc_conv3", 16, 1000, 320},
    /* projection head on a batch of 256: 256 x 128 x 128 */
    {"head_b256", 256, 128, 128},
    /* MoCo logits: 256 queries x 4096 keys x 128 */
    {"moco_logits", 256, 4096, 128},
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *alloc_fill(size_t n, unsigned seed) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

/* Run `reps` sgemms of shape s on private buffers; returns seconds. */
static double run_reps(const shape_t *s, float *a, float *b, float *c, long reps) {
    double t0 = now_s();
    for (long r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->m, s->n, s->k, 1.0f, a,
                    s->k, b, s->n, 0.0f, c, s->n);
    return now_s() - t0;
}

/* GFLOP/s of `nthr` threads each running independent sgemms (median of 5 by
 * wall time); *cpu_rate gets the same from process CPU time (times nthr), i.e.
 * what the threads achieve while they hold a core: robust on a shared machine. */
static double measure(const shape_t *s, int nthr, double seconds, double *cpu_rate) {
    double flop = 2.0 * s->m * s->n * s->k;
    long reps = (long)(0.05 * 30e9 / flop) + 1;  /* calibrated below */
    double rates[5], crates[5];
    float *bufs[3 * 64];
    if (nthr > 64) nthr = 64;
    for (int t = 0; t < nthr; t++) {
        bufs[3 * t] = alloc_fill((size_t)s->m * s->k, 1u + (unsigned)t);
        bufs[3 * t + 1] = alloc_fill((size_t)s->k * s->n, 7u + (unsigned)t);
        bufs[3 * t + 2] = alloc_fill((size_t)s->m * s->n, 13u + (unsigned)t);
    }
    /* calibrate with one thread so that one sample lasts about seconds/5 */
    double tc = run_reps(s, bufs[0], bufs[1], bufs[2], reps);
    reps = (long)((double)reps * (seconds / 5.0) / (tc > 1e-6 ? tc : 1e-6)) + 1;
    for (int r = 0; r < 5; r++) {
        double c0 = cpu_s(), t0 = now_s();
#pragma omp parallel num_threads(nthr)
        {
            int t = omp_get_thread_num();
            run_reps(s, bufs[3 * t], bufs[3 * t + 1], bufs[3 * t + 2], reps);
        }
        double dt = now_s() - t0, dc = cpu_s() - c0;
        rates[r] = flop * (double)reps * nthr / dt / 1e9;
        crates[r] = flop * (double)reps * nthr / (dc / nthr) / 1e9;
    }
    for (int t = 0; t < 3 * nthr; t++) free(bufs[t]);
    qsort(rates, 5, sizeof rates[0], cmp_double);
    qsort(crates, 5, sizeof crates[0], cmp_double);
    *cpu_rate = crates[2];
    return rates[2];
}

int main(int argc, char **argv) {
    int maxthr = 2;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            maxthr = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--seconds S]\n", argv[0]);
            return 2;
        }
    }
    if (maxthr < 1 || maxthr > 64 || !(seconds > 0.0)) {
        fprintf(stderr, "bench_sgemm: --threads must be 1..64 and --seconds > 0\n");
        return 2;
    }
    sp_blas_init(maxthr);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("openblas_core=%s openblas_config=\"%s\" OPENBLAS_CORETYPE=%s\n",
           sp_blas_corename(), sp_blas_config(), ct ? ct : "(unset)");
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const shape_t *s = &SHAPES[i];
        /* threads 1, 2, 4, ... and maxthr */
        for (int nthr = 1;; nthr = nthr * 2 < maxthr ? nthr * 2 : maxthr) {
            double gc;
            double g = measure(s, nthr, seconds, &gc);
            printf("sgemm shape=%s m=%d n=%d k=%d threads=%d gflops=%.1f gflops_cpu=%.1f\n",
                   s->name, s->m, s->n, s->k, nthr, g, gc);
            fflush(stdout);
            if (nthr == maxthr) break;
        }
    }
    return 0;
}
