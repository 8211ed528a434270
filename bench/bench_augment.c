/* bench_augment - throughput of the augmentation pipeline (not part of ctest).
 *
 *   bench_augment [L] [B] [reps]      defaults 4020 512 9
 *
 * Prints the median spectra/s and spectrum-transforms/s of aug_apply_batch
 * for the published pipeline (magnitude_warp + time_warp) with 1 thread and
 * with every available thread, the same with cut pieces (the RR view path),
 * then the single-thread rate of each transform on its own.
 * Wall time by CLOCK_MONOTONIC (sp_time_now); also the process CPU time per
 * spectrum (CLOCK_PROCESS_CPUTIME_ID, all threads), which stays meaningful
 * when other jobs share the cores: spectra/s per core = 1e6 / cpu_us.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sp_augment.h"
#include "sp_blas.h"
#include "sp_log.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double g_cpu; /* median CPU seconds of the last time_batch */

/* Median wall seconds per batch call (median CPU seconds in g_cpu). */
static double time_batch(AugPipeline *p, const float *X, int B, int L, float *out, int reps,
                         int cut, float *p0, float *p1, int *labels, int w) {
    double t[64], c[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = sp_time_now(), c0 = cpu_now();
        SpStatus rc = cut ? aug_apply_batch_cut(p, X, B, L, 1, (uint64_t)(r + 1), NULL, 2, out, w,
                                                5, p0, p1, labels)
                          : aug_apply_batch(p, X, B, L, 1, (uint64_t)(r + 1), NULL, 0, out);
        if (rc != SP_OK) {
            sp_error_print(stderr);
            exit(1);
        }
        if (r >= 0) {
            t[r] = sp_time_now() - t0;
            c[r] = cpu_now() - c0;
        }
    }
    g_cpu = median(c, reps);
    return median(t, reps);
}

int main(int argc, char **argv) {
    int L = argc > 1 ? atoi(argv[1]) : 4020;
    int B = argc > 2 ? atoi(argv[2]) : 512;
    int reps = argc > 3 ? atoi(argv[3]) : 9;
    int maxt = sp_blas_init(0);
    char line[256];
    sp_threading_line(line, sizeof line);
    printf("bench_augment L=%d B=%d reps=%d %s\n", L, B, reps, line);

    float *X = malloc((size_t)B * L * sizeof *X), *out = malloc((size_t)B * L * sizeof *out);
    if (!X || !out) return 1;
    for (size_t i = 0; i < (size_t)B * L; i++) X[i] = (float)((i % 997) * 1e-3);

    AugSpec spec;
    aug_spec_default(&spec);
    AugPipeline *p = NULL;
    if (aug_pipeline_create(&p, &spec, L) != SP_OK) {
        sp_error_print(stderr);
        return 1;
    }
    int w = 0;
    if (aug_cut_check(L, 0.2, 5, 27, &w) != SP_OK) w = 0;
    float *p0 = malloc((size_t)B * (w > 0 ? w : 1) * sizeof *p0);
    float *p1 = malloc((size_t)B * (w > 0 ? w : 1) * sizeof *p1);
    int *labels = malloc((size_t)B * sizeof *labels);

    int threads[2] = {1, maxt};
    for (int k = 0; k < (maxt > 1 ? 2 : 1); k++) {
        omp_set_num_threads(threads[k]);
        double s = time_batch(p, X, B, L, out, reps, 0, NULL, NULL, NULL, 0);
        printf("magnitude_warp+time_warp threads=%d batch_ms=%.2f spectra_s=%.0f "
               "transforms_s=%.0f cpu_us_per_spectrum=%.1f\n",
               threads[k], s * 1e3, B / s, 2.0 * B / s, g_cpu / B * 1e6);
        if (w > 0) {
            s = time_batch(p, X, B, L, out, reps, 1, p0, p1, labels, w);
            printf("  + cut pieces (w=%d)   threads=%d batch_ms=%.2f spectra_s=%.0f "
                   "cpu_us_per_spectrum=%.1f\n",
                   w, threads[k], s * 1e3, B / s, g_cpu / B * 1e6);
        }
    }
    aug_pipeline_destroy(&p);

    omp_set_num_threads(1);
    printf("single transforms, 1 thread:\n");
    for (int kind = 0; kind < SP_AUG_NKINDS; kind++) {
        AugSpec one = {0};
        aug_spec_add(&one, (AugKind)kind, 1.0);
        if (aug_pipeline_create(&p, &one, L) != SP_OK) {
            printf("  %-15s skipped: %s\n", aug_kind_name((AugKind)kind), sp_error_message());
            continue;
        }
        double s = time_batch(p, X, B, L, out, reps, 0, NULL, NULL, NULL, 0);
        printf("  %-15s spectra_s=%.0f us_per_spectrum=%.1f cpu_us_per_spectrum=%.1f\n",
               aug_kind_name((AugKind)kind), B / s, s / B * 1e6, g_cpu / B * 1e6);
        aug_pipeline_destroy(&p);
    }
    free(X);
    free(out);
    free(p0);
    free(p1);
    free(labels);
    return 0;
}
