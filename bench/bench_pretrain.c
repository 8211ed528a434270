/* bench_pretrain - throughput of one pretraining step through the pretext API
 * (pretrain_state_create + pretrain_step), the C side of the bench/run.sh
 * workloads cnn_pretrain and convsc_pretrain (contract: bench/README.md).
 *
 *   cnn:    configs/bench_cnn.cfg encoder, L = 1024, B = 256, V = 2, relation
 *           head only (no cut pieces, no external head), MoCo v2 symmetric,
 *           queue 4096, T 0.1, m 0.99, shuffle BN, SGD(0.15, 0.9, 1e-4);
 *   convsc: the reference recipe (configs/bench_convsc.cfg): ConvSC, L = 4020,
 *           B = 64, V = 4, relation + cut-piece + external-variable heads,
 *           MoCo as above.
 * Both: augmentation magnitude_warp(0.3, 4) + time_warp(0.2, 8), inside the
 * step. Data: N = 4 B synthetic peak spectra in memory; step i uses rows
 * [(i mod 4) B, ...) with sample indices of those rows (distinct augmentation
 * streams per step); external variable uniform in 0..4.
 *
 * Usage:
 *   env -u OPENBLAS_CORETYPE bench_pretrain --workload cnn|convsc --threads N
 *        [--steps 10] [--warmup 3] [--batch B] [--config FILE] [--set key=value]...
 *        [--phases]
 * --config replaces the built-in config (the workload's L and B still apply
 * unless --batch); --set overrides keys after it. --phases adds a breakdown
 * (augmentation = pretrain_prepare, forward + backward, the rest) from extra
 * steps run piecewise.
 * Output: `workload=<w>_pretrain threads=N spectra_s=... step_ms=...
 * peak_rss_mb=... gflops=... cpu_ms=... main_cpu_ms=... faults_per_step=...`
 * (medians over the timed steps; cpu_ms = process CPU time per step, all
 * threads; main_cpu_ms = the main thread's CPU time per step).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "sp_augment.h"
#include "sp_blas.h"
#include "sp_config.h"
#include "sp_encoder.h"
#include "sp_error.h"
#include "sp_log.h"
#include "sp_pretext.h"

#define MAX_SETS 64

/* configs/bench_cnn.cfg + the cnn_pretrain workload */
static const char *const CNN_SETS[] = {
    "encoder.arch=cnn", "encoder.proj_hidden=128", "encoder.proj_dim=128",
    "encoder.cnn.channels=[32, 64, 128]", "encoder.cnn.kernels=[7, 5, 3]",
    "encoder.cnn.strides=[1, 1, 1]", "encoder.cnn.padding=[3, 2, 1]",
    "encoder.cnn.pool=[2, 2, 0]", "encoder.cnn.batchnorm=false",
    "encoder.cnn.layernorm_input=false",
    "augment.transforms=[\"magnitude_warp\", \"time_warp\"]", "augment.p=1.0",
    "augment.magnitude_warp.sigma=0.3", "augment.magnitude_warp.knots=4",
    "augment.time_warp.sigma=0.2", "augment.time_warp.knots=8",
    "pretext.moco.coef=0.01", "pretext.moco.queue=4096", "pretext.moco.momentum=0.99",
    "pretext.moco.temperature=0.1", "pretext.moco.symmetric=true", "pretext.moco.shuffle_bn=true",
    "pretext.rr.views=2", "pretext.rr.inter_coef=1.0", "pretext.rr.intra_coef=0",
    "pretext.rr.ext_coef=0", "pretext.rr.hidden=64",
    "optim.name=\"sgd\"", "optim.lr=0.15", "optim.momentum=0.9", "optim.weight_decay=1e-4",
    "train.seed=8", NULL};

/* configs/bench_convsc.cfg: the reference recipe at B 64, V 4 */
static const char *const CONVSC_SETS[] = {
    "encoder.arch=convsc", "encoder.proj_hidden=128", "encoder.proj_dim=128",
    "encoder.convsc.conv1_channels=64", "encoder.convsc.conv3_channels=16",
    "encoder.convsc.bins=236", "encoder.convsc.embed_dim=128", "encoder.convsc.heads=2",
    "encoder.convsc.bn_splits=8",
    "augment.transforms=[\"magnitude_warp\", \"time_warp\"]", "augment.p=1.0",
    "augment.magnitude_warp.sigma=0.3", "augment.magnitude_warp.knots=4",
    "augment.time_warp.sigma=0.2", "augment.time_warp.knots=8",
    "pretext.moco.coef=0.01", "pretext.moco.queue=4096", "pretext.moco.momentum=0.99",
    "pretext.moco.temperature=0.1", "pretext.moco.symmetric=true", "pretext.moco.shuffle_bn=true",
    "pretext.rr.views=4", "pretext.rr.inter_coef=1.0", "pretext.rr.intra_coef=1.0",
    "pretext.rr.ext_coef=1.0", "pretext.rr.hidden=64", "pretext.rr.cut_classes=5",
    "pretext.rr.piece_size=0.2", "pretext.rr.ext_classes=5",
    "optim.name=\"sgd\"", "optim.lr=0.15", "optim.momentum=0.9", "optim.weight_decay=1e-4",
    "train.seed=8", NULL};

static void die(const char *what) {
    fprintf(stderr, "bench_pretrain: %s: ", what);
    sp_error_print(stderr);
    exit(1);
}

static void usage(FILE *to) {
    fprintf(to, "usage: bench_pretrain --workload cnn|convsc --threads N [--steps N] "
                "[--warmup N] [--batch B] [--config FILE] [--set key=value]... [--phases]\n");
}

int main(int argc, char **argv) {
    const char *workload = NULL, *cfg_path = NULL;
    const char *user_sets[MAX_SETS];
    int n_user = 0, threads = 0, steps = 10, warmup = 3, batch = 0, phases = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--workload") && v) workload = argv[++i];
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && v) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && v) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && v) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--config") && v) cfg_path = argv[++i];
        else if (!strcmp(a, "--set") && v && n_user < MAX_SETS) user_sets[n_user++] = argv[++i];
        else if (!strcmp(a, "--phases")) phases = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_pretrain: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!workload || (strcmp(workload, "cnn") && strcmp(workload, "convsc")) || threads < 1 ||
        steps < 1 || warmup < 0) {
        usage(stderr);
        return 2;
    }
    const int is_cnn = !strcmp(workload, "cnn");
    const int L = is_cnn ? 1024 : 4020;
    const int B = batch > 0 ? batch : is_cnn ? 256 : 64;
    const int ext_classes = is_cnn ? 0 : 5;

    sp_log_set_level(SP_LOG_WARN);
    sp_core_config_register();
    augment_config_register();
    encoder_config_register();
    pretext_config_register();
    sp_blas_init(threads);
    const char *sets[2 * MAX_SETS];
    int ns = 0;
    if (!cfg_path)
        for (const char *const *p = is_cnn ? CNN_SETS : CONVSC_SETS; *p; p++) sets[ns++] = *p;
    for (int i = 0; i < n_user; i++) sets[ns++] = user_sets[i];
    SpConfig *cfg = NULL;
    if (sp_config_load(&cfg, cfg_path, sets, ns) != SP_OK) die("config");

    const size_t N = 4 * (size_t)B;
    float *x = malloc(sizeof(float) * N * L);
    int32_t *ext = malloc(sizeof(int32_t) * N);
    int64_t *idx = malloc(sizeof(int64_t) * N);
    if (!x || !ext || !idx) {
        fprintf(stderr, "bench_pretrain: out of memory for the data\n");
        return 1;
    }
    bench_make_spectra(x, N, L, 1234);
    SpRng r;
    sp_rng_stream(&r, 1234, 78, 0, 0);
    for (size_t i = 0; i < N; i++) {
        ext[i] = (int32_t)sp_rng_below(&r, 5);
        idx[i] = (int64_t)i;
    }

    PretrainState *s = NULL;
    if (pretrain_state_create(&s, cfg, L, B, ext_classes, (int64_t)N) != SP_OK) die("state");
    char thr[256];
    sp_threading_line(thr, sizeof thr);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("# bench_pretrain %s: L=%d B=%d V=%d queue=%d %s OPENBLAS_CORETYPE=%s state=%.1f MB "
           "step_gflop=%.2f\n",
           workload, L, B, pretrain_options(s)->views, pretrain_options(s)->queue, thr,
           ct ? ct : "(unset)", pretrain_state_bytes(s) / 1048576.0,
           pretrain_step_flops(s, B) * 1e-9);
    fflush(stdout);

    const float lr = 0.15f;
    int64_t step = 0;
    PretrainStepStats st;
    BenchTimes tm;
    if (!bench_times_alloc(&tm, steps)) return 1;
    for (int i = -warmup; i < steps; i++, step++) {
        const size_t off = (size_t)(step % 4) * B;
        long f0 = bench_minflt();
        double w0 = bench_wall(), c0 = bench_cpu(), m0 = bench_thread_cpu();
        if (pretrain_step(s, x + off * L, B, idx + off, ext_classes ? ext + off : NULL, 0, step, lr,
                          &st) != SP_OK)
            die("step");
        double w1 = bench_wall(), c1 = bench_cpu(), m1 = bench_thread_cpu();
        long f1 = bench_minflt();
        if (i == -warmup || i == steps - 1)
            printf("# step %lld: loss=%.4f L_inter=%.4f L_intra=%.4f L_ext=%.4f L_moco=%.4f "
                   "(%.1f ms, %ld faults)\n",
                   (long long)step, st.loss, st.l_inter, st.l_intra, st.l_ext, st.l_moco,
                   1e3 * (w1 - w0), f1 - f0);
        if (i >= 0) {
            tm.wall[i] = w1 - w0;
            tm.cpu[i] = c1 - c0;
            tm.main_cpu[i] = m1 - m0;
            tm.faults += f1 - f0;
        }
    }
    char extra[256] = "";
    if (phases) {
        /* piecewise: prepare (augmentation) and forward_backward alone */
        double *pa = calloc((size_t)steps, sizeof(double)), *pf = calloc((size_t)steps, sizeof(double));
        for (int i = 0; i < steps; i++, step++) {
            const size_t off = (size_t)(step % 4) * B;
            double c0 = bench_thread_cpu();
            if (pretrain_prepare(s, x + off * L, B, idx + off, ext_classes ? ext + off : NULL, 0) !=
                SP_OK)
                die("prepare");
            double c1 = bench_thread_cpu();
            if (pretrain_forward_backward(s, 0, step, &st) != SP_OK) die("forward_backward");
            double c2 = bench_thread_cpu();
            pa[i] = c1 - c0;
            pf[i] = c2 - c1;
        }
        double ma = bench_median(pa, steps), mf = bench_median(pf, steps);
        snprintf(extra, sizeof extra, "aug_main_cpu_ms=%.1f fwdbwd_main_cpu_ms=%.1f", 1e3 * ma,
                 1e3 * mf);
        free(pa);
        free(pf);
    }
    char wl[64];
    snprintf(wl, sizeof wl, "%s_pretrain", workload);
    bench_print_line(wl, sp_num_threads(), B, &tm, pretrain_step_flops(s, B), extra);
    bench_times_free(&tm);
    pretrain_state_destroy(&s);
    sp_config_free(cfg);
    free(x);
    free(ext);
    free(idx);
    return 0;
}
