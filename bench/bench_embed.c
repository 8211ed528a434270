/* bench_embed - eval-mode embedding throughput (spectra/s) of the encoders:
 *   bench_cnn (configs/bench_cnn.cfg) at L = 1024, batch 256;
 *   convsc (reference SpecRRMoco encoder) at L = 4020, batch 256;
 * with 1 and 2 OpenMP threads, plus a train-mode forward+backward step.
 * Prints medians over repetitions, GFLOP/s and openblas_get_corename().
 * Run with OPENBLAS_CORETYPE unset (STYLE.md trap 8):
 *   env -u OPENBLAS_CORETYPE build/bench/bench_embed [reps]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sp_blas.h"
#include "sp_config.h"
#include "sp_encoder.h"
#include "sp_error.h"
#include "sp_log.h"

/* Same values as configs/bench_cnn.cfg. */
static const char *const BENCH_CNN[] = {
    "encoder.arch=cnn", "encoder.cnn.channels=[32, 64, 128]", "encoder.cnn.kernels=[7, 5, 3]",
    "encoder.cnn.strides=[1, 1, 1]", "encoder.cnn.padding=[3, 2, 1]", "encoder.cnn.pool=[2, 2, 0]",
    "encoder.cnn.batchnorm=false", "encoder.cnn.layernorm_input=false", NULL};
static const char *const CONVSC[] = {"encoder.arch=convsc", NULL};

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what) {
    fprintf(stderr, "bench_embed: %s: ", what);
    sp_error_print(stderr);
    exit(1);
}

static void bench(const char *name, const char *const *sets, int L, int B, int threads, int reps,
                  int train) {
    sp_blas_init(threads);
    int n = 0;
    while (sets[n]) n++;
    SpConfig *cfg = NULL;
    if (sp_config_load(&cfg, NULL, sets, n) != SP_OK) die("config");
    SpRng rng;
    sp_rng_stream(&rng, 1, 2, 3, 4);
    SpEncoder *e = NULL;
    SpEncAct *a = NULL;
    if (encoder_create(&e, cfg, &rng) != SP_OK) die("encoder");
    if ((train ? encoder_act_create(&a, e, B, L) : encoder_act_create_infer(&a, e, B, L)) != SP_OK)
        die("context");
    const int D = encoder_feature_dim(e);
    float *x = malloc(sizeof(float) * (size_t)B * L);
    float *f = malloc(sizeof(float) * (size_t)B * D);
    float *g = malloc(sizeof(float) * (size_t)B * D);
    for (size_t i = 0; i < (size_t)B * L; i++) x[i] = (float)sp_rng_uniform(&rng, 0.0, 1.0);
    for (size_t i = 0; i < (size_t)B * D; i++) g[i] = (float)sp_rng_uniform(&rng, -1.0, 1.0);
    double *t = malloc(sizeof(double) * (size_t)reps), *tc = malloc(sizeof(double) * (size_t)reps);
    for (int r = -2; r < reps; r++) {   /* two warm-up runs */
        double t0 = sp_time_now(), c0 = cpu_now();
        if (encoder_forward(e, a, x, B, train, f) != SP_OK) die("forward");
        if (train) {
            sp_params_zero_grad(encoder_params(e));
            encoder_backward(e, a, g, B);
        }
        double dt = sp_time_now() - t0, dc = cpu_now() - c0;
        if (r >= 0) {
            t[r] = dt;
            tc[r] = dc;
        }
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_d);
    qsort(tc, (size_t)reps, sizeof(double), cmp_d);
    double med = t[reps / 2], cmed = tc[reps / 2];
    double flops = encoder_flops(e, L) * (train ? 3.0 : 1.0);
    printf("%-9s %-5s L=%-5d B=%-4d threads=%d  median %8.2f ms  %8.0f spectra/s  %6.1f GFLOP/s"
           "  (min %.2f ms; cpu %.0f spectra per cpu-s; act %.1f MiB)\n",
           name, train ? "train" : "eval", L, B, sp_num_threads(), med * 1e3, B / med,
           flops * B / med * 1e-9, t[0] * 1e3, B / cmed, encoder_act_bytes(a) / 1048576.0);
    fflush(stdout);
    free(t);
    free(tc);
    free(x);
    free(f);
    free(g);
    encoder_act_destroy(&a);
    encoder_destroy(&e);
    sp_config_free(cfg);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    if (reps < 1) reps = 1;
    sp_log_set_level(SP_LOG_WARN);
    sp_core_config_register();
    encoder_config_register();
    sp_blas_init(0);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("bench_embed: openblas core %s%s%s, policy omp-batch/blas-1, %d reps (median)\n",
           sp_blas_corename(), ct ? ", OPENBLAS_CORETYPE=" : " (OPENBLAS_CORETYPE unset)",
           ct ? ct : "", reps);
    for (int th = 1; th <= 2; th++) bench("bench_cnn", BENCH_CNN, 1024, 256, th, reps, 0);
    for (int th = 1; th <= 2; th++) bench("convsc", CONVSC, 4020, 256, th, reps, 0);
    for (int th = 1; th <= 2; th++) bench("bench_cnn", BENCH_CNN, 1024, 256, th, reps, 1);
    for (int th = 1; th <= 2; th++) bench("convsc", CONVSC, 4020, 64, th, reps > 5 ? 5 : reps, 1);
    return 0;
}
