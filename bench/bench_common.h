/* bench_common.h - shared helpers of bench_pretrain.c and bench_embed.c (the
 * C side of bench/run.sh, contract in bench/README.md): clocks (wall,
 * process CPU, main-thread CPU), minor page faults, peak RSS, synthetic peak
 * spectra like torch_reference.py's make_spectra, and the key=value result
 * line. Header-only (static inline): the benches are single-file programs.
 * Nothing here is used by the library or the tests.
 */
#ifndef SP_BENCH_COMMON_H
#define SP_BENCH_COMMON_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "sp_rng.h"

static inline double bench_clock(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static inline double bench_wall(void) { return bench_clock(CLOCK_MONOTONIC); }
static inline double bench_cpu(void) { return bench_clock(CLOCK_PROCESS_CPUTIME_ID); }
static inline double bench_thread_cpu(void) { return bench_clock(CLOCK_THREAD_CPUTIME_ID); }

static inline long bench_minflt(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static inline double bench_peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;   /* KiB on Linux */
}

/* Current RSS from /proc/self/statm (MiB); -1 if unavailable. */
static inline double bench_rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1.0;
    long pages = 0, res = 0;
    int ok = fscanf(f, "%ld %ld", &pages, &res) == 2;
    fclose(f);
    return ok ? (double)res * 4096.0 / 1048576.0 : -1.0;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts a copy in place of v). */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Synthetic peak spectra x (N, L), float32, each row max-normalised: 12
 * Gaussian peaks (centres in [0.02 L, 0.98 L], widths 2..12, log-uniform
 * amplitudes 0.05..1), an exponential background and N(0, 0.004^2) noise
 * (the recipe of torch_reference.py's make_spectra; the values only need to
 * be realistic). */
static inline void bench_make_spectra(float *x, size_t N, int L, uint64_t seed) {
    SpRng r;
    for (size_t i = 0; i < N; i++) {
        sp_rng_stream(&r, seed, 77, (uint64_t)i, 0);
        float *row = x + i * (size_t)L;
        double c[12], w[12], a[12];
        for (int p = 0; p < 12; p++) {
            c[p] = sp_rng_uniform(&r, 0.0, 1.0) * 0.96 * L + 0.02 * L;
            w[p] = sp_rng_uniform(&r, 0.0, 1.0) * 10.0 + 2.0;
            a[p] = exp(sp_rng_uniform(&r, 0.0, 1.0) * log(20.0)) / 20.0;
        }
        double bg = 0.04 * sp_rng_uniform(&r, 0.0, 1.0);
        double mx = -1e300;
        for (int t = 0; t < L; t++) {
            double v = bg * exp(-t / (0.4 * L)) + 0.004 * sp_rng_normal(&r);
            for (int p = 0; p < 12; p++) {
                double z = (t - c[p]) / w[p];
                if (z > -8.0 && z < 8.0) v += a[p] * exp(-0.5 * z * z);
            }
            row[t] = (float)v;
            if (v > mx) mx = v;
        }
        for (int t = 0; t < L; t++) row[t] = (float)((double)row[t] / mx);
    }
}

/* Timings of the timed steps. */
typedef struct {
    int n;
    double *wall, *cpu, *main_cpu;   /* seconds per step */
    long faults;                     /* minor faults over the timed steps */
} BenchTimes;

static inline int bench_times_alloc(BenchTimes *t, int n) {
    t->n = n;
    t->faults = 0;
    t->wall = calloc((size_t)n, sizeof(double));
    t->cpu = calloc((size_t)n, sizeof(double));
    t->main_cpu = calloc((size_t)n, sizeof(double));
    return t->wall && t->cpu && t->main_cpu;
}

static inline void bench_times_free(BenchTimes *t) {
    free(t->wall);
    free(t->cpu);
    free(t->main_cpu);
}

/* The contract line: workload=... threads=N spectra_s=... step_ms=...
 * peak_rss_mb=... gflops=... cpu_ms=... main_cpu_ms=... faults_per_step=...
 * (medians over the timed steps) plus `extra` (may be ""). */
static inline void bench_print_line(const char *workload, int threads, int B, BenchTimes *t,
                                    double flops_per_step, const char *extra) {
    double step = bench_median(t->wall, t->n);
    double cpu = bench_median(t->cpu, t->n);
    double mcpu = bench_median(t->main_cpu, t->n);
    double load[3] = {0, 0, 0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1.0;
        fclose(f);
    }
    printf("workload=%s threads=%d spectra_s=%.1f step_ms=%.2f peak_rss_mb=%.1f gflops=%.1f "
           "cpu_ms=%.1f main_cpu_ms=%.1f faults_per_step=%.1f gflops_main_cpu=%.1f loadavg=%.2f%s%s\n",
           workload, threads, B / step, 1e3 * step, bench_peak_rss_mb(),
           flops_per_step / step * 1e-9, 1e3 * cpu, 1e3 * mcpu, (double)t->faults / t->n,
           flops_per_step / mcpu * 1e-9, load[0], extra && *extra ? " " : "", extra ? extra : "");
    fflush(stdout);
}

#endif
