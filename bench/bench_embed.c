/* bench_embed - eval-mode embedding throughput (spectra/s): the C side of the
 * bench/run.sh workloads cnn_embed and convsc_embed (contract: bench/README.md).
 *
 *   cnn:    configs/bench_cnn.cfg encoder at L = 1024;
 *   convsc: the reference SpecRRMoco encoder (ConvSC) at L = 4020;
 * batch 256, SP_ENC_EVAL (BN from running statistics), output h (128, the
 * encoder feature, no projection head), an inference-only context. Data:
 * 4 B synthetic peak spectra in memory; step i embeds rows [(i mod 4) B, ...).
 *
 * Usage:
 *   env -u OPENBLAS_CORETYPE bench_embed --workload cnn|convsc --threads N
 *        [--steps 10] [--warmup 3] [--batch 256] [--train]
 *   env -u OPENBLAS_CORETYPE bench_embed [reps]     (the old table: both encoders,
 *        1 and 2 threads, eval and a train-mode forward + backward)
 * --train times an encoder-only train-mode forward + backward instead.
 * Output: `workload=<w>_embed threads=N spectra_s=... step_ms=... peak_rss_mb=...
 * gflops=... cpu_ms=... main_cpu_ms=... faults_per_step=...` (medians).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
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

static void die(const char *what) {
    fprintf(stderr, "bench_embed: %s: ", what);
    sp_error_print(stderr);
    exit(1);
}

typedef struct {
    SpConfig *cfg;
    SpEncoder *e;
    SpEncAct *a;
    int D;
} Model;

static void model_create(Model *m, const char *const *sets, int L, int B, int train) {
    int n = 0;
    while (sets[n]) n++;
    m->cfg = NULL;
    m->e = NULL;
    m->a = NULL;
    if (sp_config_load(&m->cfg, NULL, sets, n) != SP_OK) die("config");
    SpRng rng;
    sp_rng_stream(&rng, 1, 2, 3, 4);
    if (encoder_create(&m->e, m->cfg, &rng) != SP_OK) die("encoder");
    if ((train ? encoder_act_create(&m->a, m->e, B, L) : encoder_act_create_infer(&m->a, m->e, B, L)) !=
        SP_OK)
        die("context");
    m->D = encoder_feature_dim(m->e);
}

static void model_destroy(Model *m) {
    encoder_act_destroy(&m->a);
    encoder_destroy(&m->e);
    sp_config_free(m->cfg);
}

/* One timed call: forward (and backward if train). */
static void run_once(Model *m, const float *x, int B, int train, float *f, const float *g) {
    if (encoder_forward(m->e, m->a, x, B, train ? SP_ENC_TRAIN : SP_ENC_EVAL, f) != SP_OK)
        die("forward");
    if (train) {
        sp_params_zero_grad(encoder_params(m->e));
        encoder_backward(m->e, m->a, g, B);
    }
}

/* The old table (kept for interactive use). */
static void table_row(const char *name, const char *const *sets, int L, int B, int threads, int reps,
                      int train) {
    sp_blas_init(threads);
    Model m;
    model_create(&m, sets, L, B, train);
    float *x = malloc(sizeof(float) * (size_t)B * L);
    float *f = malloc(sizeof(float) * (size_t)B * m.D);
    float *g = malloc(sizeof(float) * (size_t)B * m.D);
    double *t = malloc(sizeof(double) * (size_t)reps), *tc = malloc(sizeof(double) * (size_t)reps);
    if (!x || !f || !g || !t || !tc) die("out of memory");
    bench_make_spectra(x, (size_t)B, L, 99);
    for (size_t i = 0; i < (size_t)B * m.D; i++) g[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    for (int r = -2; r < reps; r++) {
        double t0 = bench_wall(), c0 = bench_cpu();
        run_once(&m, x, B, train, f, g);
        if (r >= 0) {
            t[r] = bench_wall() - t0;
            tc[r] = bench_cpu() - c0;
        }
    }
    double med = bench_median(t, reps), cmed = bench_median(tc, reps);
    double flops = encoder_flops(m.e, L) * (train ? 3.0 : 1.0);
    printf("%-9s %-5s L=%-5d B=%-4d threads=%d  median %8.2f ms  %8.0f spectra/s  %6.1f GFLOP/s"
           "  (cpu %.0f spectra per cpu-s; act %.1f MiB)\n",
           name, train ? "train" : "eval", L, B, sp_num_threads(), med * 1e3, B / med,
           flops * B / med * 1e-9, B / cmed, encoder_act_bytes(m.a) / 1048576.0);
    fflush(stdout);
    free(t);
    free(tc);
    free(x);
    free(f);
    free(g);
    model_destroy(&m);
}

static void usage(FILE *to) {
    fprintf(to, "usage: bench_embed --workload cnn|convsc --threads N [--steps N] [--warmup N] "
                "[--batch B] [--train]\n       bench_embed [reps]   (the old table)\n");
}

int main(int argc, char **argv) {
    const char *workload = NULL;
    int threads = 0, steps = 10, warmup = 3, batch = 256, train = 0, reps = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--workload") && v) workload = argv[++i];
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && v) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && v) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && v) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--train")) train = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] >= '0' && a[0] <= '9' && reps < 0) reps = atoi(a);
        else {
            fprintf(stderr, "bench_embed: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    sp_log_set_level(SP_LOG_WARN);
    sp_core_config_register();
    encoder_config_register();
    const char *ct = getenv("OPENBLAS_CORETYPE");
    if (!workload) {
        if (reps < 1) reps = 15;
        sp_blas_init(0);
        printf("bench_embed: openblas core %s%s%s, policy omp-batch/blas-1, %d reps (median)\n",
               sp_blas_corename(), ct ? ", OPENBLAS_CORETYPE=" : " (OPENBLAS_CORETYPE unset)",
               ct ? ct : "", reps);
        for (int th = 1; th <= 2; th++) table_row("bench_cnn", BENCH_CNN, 1024, 256, th, reps, 0);
        for (int th = 1; th <= 2; th++) table_row("convsc", CONVSC, 4020, 256, th, reps, 0);
        for (int th = 1; th <= 2; th++) table_row("bench_cnn", BENCH_CNN, 1024, 256, th, reps, 1);
        for (int th = 1; th <= 2; th++) table_row("convsc", CONVSC, 4020, 64, th, reps > 5 ? 5 : reps, 1);
        return 0;
    }
    if ((strcmp(workload, "cnn") && strcmp(workload, "convsc")) || threads < 1 || steps < 1 ||
        warmup < 0 || batch < 1) {
        usage(stderr);
        return 2;
    }
    const int is_cnn = !strcmp(workload, "cnn");
    const int L = is_cnn ? 1024 : 4020;
    const int B = batch;
    sp_blas_init(threads);
    Model m;
    model_create(&m, is_cnn ? BENCH_CNN : CONVSC, L, B, train);
    const size_t N = 4 * (size_t)B;
    float *x = malloc(sizeof(float) * N * L);
    float *f = malloc(sizeof(float) * (size_t)B * m.D);
    float *g = malloc(sizeof(float) * (size_t)B * m.D);
    if (!x || !f || !g) die("out of memory for the data");
    bench_make_spectra(x, N, L, 1234);
    for (size_t i = 0; i < (size_t)B * m.D; i++) g[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    char thr[256];
    sp_threading_line(thr, sizeof thr);
    printf("# bench_embed %s: L=%d B=%d mode=%s %s OPENBLAS_CORETYPE=%s act=%.1f MB "
           "gflop_per_batch=%.2f\n",
           workload, L, B, train ? "train(fwd+bwd)" : "eval", thr, ct ? ct : "(unset)",
           encoder_act_bytes(m.a) / 1048576.0, encoder_flops(m.e, L) * B * (train ? 3.0 : 1.0) * 1e-9);
    fflush(stdout);
    BenchTimes tm;
    if (!bench_times_alloc(&tm, steps)) die("out of memory");
    for (int i = -warmup; i < steps; i++) {
        const size_t off = (size_t)((i + warmup) % 4) * B;
        long f0 = bench_minflt();
        double w0 = bench_wall(), c0 = bench_cpu(), m0 = bench_thread_cpu();
        run_once(&m, x + off * L, B, train, f, g);
        double w1 = bench_wall(), c1 = bench_cpu(), m1 = bench_thread_cpu();
        long f1 = bench_minflt();
        if (i >= 0) {
            tm.wall[i] = w1 - w0;
            tm.cpu[i] = c1 - c0;
            tm.main_cpu[i] = m1 - m0;
            tm.faults += f1 - f0;
        }
    }
    double chk = 0.0, gchk = 0.0;
    for (size_t i = 0; i < (size_t)B * m.D; i++) chk += (double)f[i];
    char extra[160];
    if (train) {   /* gradient checksum of the last step: exact comparisons between builds */
        const SpParams *pp = encoder_params(m.e);
        for (size_t i = 0; i < sp_params_count(pp); i++) gchk += (double)pp->grad[i] * (double)((i % 7) + 1);
        snprintf(extra, sizeof extra, "feature_sum=%.9g grad_sum=%.12g", chk, gchk);
    } else {
        snprintf(extra, sizeof extra, "feature_sum=%.9g", chk);
    }
    char wl[64];
    snprintf(wl, sizeof wl, "%s_%s", workload, train ? "train" : "embed");
    bench_print_line(wl, sp_num_threads(), B, &tm, encoder_flops(m.e, L) * B * (train ? 3.0 : 1.0),
                     extra);
    bench_times_free(&tm);
    free(x);
    free(f);
    free(g);
    model_destroy(&m);
    return 0;
}
