/* test_mpi.c - data-parallel pretraining (pretext/pt_dist.h, core/sp_dist.h).
 *
 * One process (ctest "mpi", every build):
 *  - runtime: the world-size-1 behaviour of sp_dist (identity reductions,
 *    copying gathers, agreement passes the status through);
 *  - loader: the sharded loader's global order and batches equal SpLoader's
 *    (in memory and streamed by blocks/windows, with and without drop_last);
 *  - step: the distributed code path forced on with one rank (every
 *    exchange, the global RR heads, the reductions, the rank-0 writes) gives
 *    a checkpoint and metrics bit-identical to the plain run, in memory and
 *    streamed;
 *  - cli (MPI builds): `mpiexec -np 2 specssl pretrain` vs `specssl
 *    pretrain` on the same config: the per-rank state dumps
 *    (SPECSSL_DIST_DUMP) are identical on both ranks, the checkpoint and the
 *    loss trajectory match the single process within the documented
 *    tolerance, a 2-rank checkpoint resumes in 1 process, and a config the
 *    ranks cannot split exits 2 naming the key.
 * Under mpiexec -np 2 (ctest "mpi_ranks", MPI builds; CK_FORK=no):
 *  - ranks: R = 2 states stepped on the same global batches as one process:
 *    per-step losses within 1e-5 relative, parameters, BN statistics,
 *    optimizer state and queue within 1e-3 of each tensor's max (+1e-6)
 *    after 6 steps; the ranks' states bit-identical (hash) and the queues
 *    identical byte for byte; for the full objective with shuffle BN, without
 *    shuffle/symmetry, and for an encoder without BatchNorm;
 *  - run: pretrain_run on 2 ranks vs 1 process (rank 0 alone): checkpoint and
 *    metrics within tolerance; an interrupt raised on rank 1 only stops both
 *    ranks with a checkpoint, and the resumed 2-rank run is bit-identical to
 *    the uninterrupted one; resuming a 1-process checkpoint on 2 ranks and a
 *    2-rank checkpoint in 1 process both land within tolerance of the
 *    1-process run;
 *  - errors: a batch or BN split count the ranks cannot share fails with
 *    SP_ECONFIG naming the key, on every rank.
 * Collectives run before assertions, and pass/fail is agreed over the ranks
 * first, so a failure never leaves one rank waiting in a collective.
 */
#include <check.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pt_dist.h"
#include "sp_augment.h"
#include "sp_blas.h"
#include "sp_config.h"
#include "sp_data.h"
#include "sp_dist.h"
#include "sp_encoder.h"
#include "sp_h5.h"
#include "sp_linear_eval.h"
#include "sp_log.h"
#include "sp_pretext.h"
#include "sp_signal.h"
#include "sp_pt_test.h"
#include "sp_test.h"

/* Tolerances of a 2-rank run against one process (pt_dist.h "Tolerance"). */
#define LOSS_RTOL 1e-5
#define PARAM_RTOL 1e-3   /* of the tensor's max |value| */
#define PARAM_ATOL 1e-6

/* Tiny model: cnn with split BN S = 4 (2 per rank on 2 ranks), every loss term. */
static const char *const g_tiny[] = {
    "encoder.arch=\"cnn\"",        "encoder.cnn.channels=[4, 6]",
    "encoder.cnn.kernels=[3, 3]",  "encoder.cnn.strides=[1, 1]",
    "encoder.cnn.padding=[1, 1]",  "encoder.cnn.pool=[2, 0]",
    "encoder.cnn.batchnorm=true",  "encoder.cnn.bn_splits=4",
    "encoder.proj_hidden=8",       "encoder.proj_dim=8",
    "pretext.rr.hidden=6",         "pretext.rr.views=3",
    "pretext.rr.cut_classes=3",    "pretext.rr.piece_size=0.5",
    "pretext.rr.ext_coef=1",       "pretext.moco.queue=64",
    "pretext.moco.coef=1",         "optim.lr=0.05",
    "optim.warmup_epochs=1",       "train.knn_every=2",
    "train.seed=11",
};
#define N_TINY ((int)(sizeof g_tiny / sizeof g_tiny[0]))

static SpConfig *cfg_with(const char *const *extra, int n) {
    spt_register_all();
    const char *all[96];
    for (int i = 0; i < N_TINY; i++) all[i] = g_tiny[i];
    for (int i = 0; i < n; i++) all[N_TINY + i] = extra[i];
    SpConfig *c = NULL;
    SpStatus rc = sp_config_load(&c, NULL, all, N_TINY + n);
    ck_assert_msg(rc == SP_OK, "config: %s", sp_error_message());
    return c;
}

/* ------------------------------------------------------ file comparisons */

/* Checkpoints or state dumps a and b: equal (exact) or within the 2-rank
 * tolerance (PARAM_ATOL + PARAM_RTOL max|x| per tensor), at least 30 tensors. */
static int cmp_ckpt(const char *a, const char *b, int exact, char *msg, size_t n, double *worst) {
    return spt_cmp_files(a, b, exact, PARAM_RTOL, PARAM_ATOL, 30, msg, n, worst);
}

/* metrics.jsonl: the value of "key" on each line (NAN when null/missing). */
static int read_metric(const char *path, const char *key, double *v, int max) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[4096], pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    int n = 0;
    while (n < max && fgets(buf, sizeof buf, f)) {
        const char *p = strstr(buf, pat);
        v[n++] = p && strncmp(p + strlen(pat), "null", 4) != 0 ? strtod(p + strlen(pat), NULL) : NAN;
    }
    fclose(f);
    return n;
}

/* The deterministic part of each metrics line (up to the timing fields). */
static int read_metric_lines(const char *path, char lines[][1024], int max) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    char buf[4096];
    while (n < max && fgets(buf, sizeof buf, f)) {
        char *cut = strstr(buf, ",\"spectra_s\"");
        if (cut) *cut = '\0';
        snprintf(lines[n++], 1024, "%.1000s", buf);
    }
    fclose(f);
    return n;
}

/* Loss trajectories of two runs within LOSS_RTOL; 0 on success. */
static int cmp_losses(const char *ma, const char *mb, int epochs, char *msg, size_t n) {
    static const char *const keys[] = {"loss", "L_inter", "L_intra", "L_ext", "L_moco"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        double a[64], b[64];
        int na = read_metric(ma, keys[k], a, 64), nb = read_metric(mb, keys[k], b, 64);
        if (na != epochs || nb != epochs) {
            snprintf(msg, n, "%s: %d and %d metrics lines, expected %d", keys[k], na, nb, epochs);
            return 1;
        }
        for (int e = 0; e < epochs; e++) {
            if (!isfinite(a[e]) || !isfinite(b[e]) ||
                fabs(a[e] - b[e]) > LOSS_RTOL * fabs(b[e]) + 1e-9) {
                snprintf(msg, n, "epoch %d %s: %.9g vs %.9g (rtol %g)", e + 1, keys[k], a[e],
                         b[e], LOSS_RTOL);
                return 1;
            }
        }
    }
    return 0;
}

static void path_in(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

/* ============================================================ one process */

START_TEST(stub_runtime) {
    /* a world of size 1: this process alone (not started by a launcher) */
    ck_assert_int_eq(sp_dist_size(), 1);
    ck_assert_int_eq(sp_dist_rank(), 0);
    ck_assert_int_eq(sp_dist_active(), 0);
    float f[3] = {1.5f, -2.0f, 0.25f};
    sp_dist_allreduce_sum_f(f, 3);
    ck_assert(f[0] == 1.5f && f[1] == -2.0f && f[2] == 0.25f);
    double dd[2] = {3.0, -0.5};
    sp_dist_allreduce_sum_d(dd, 2);
    ck_assert(dd[0] == 3.0 && dd[1] == -0.5);
    int mx[2] = {4, -7};
    sp_dist_allreduce_max_i(mx, 2);
    ck_assert(mx[0] == 4 && mx[1] == -7);
    int src[4] = {1, 2, 3, 4}, dst[4] = {0};
    sp_dist_allgather(src, sizeof src, dst);
    ck_assert_mem_eq(src, dst, sizeof src);
    uint64_t u = 0;
    sp_dist_allgather_u64(0x0123456789abcdefULL, &u);
    ck_assert(u == 0x0123456789abcdefULL);
    char sbuf[8] = "abcdefg", rbuf[8] = "-------";
    size_t sb[1] = {3}, so[1] = {2}, rb[1] = {3}, ro[1] = {4};
    sp_dist_alltoallv(sbuf, sb, so, rbuf, rb, ro);
    ck_assert_mem_eq(rbuf, "----cde", 7);
    sp_dist_bcast(f, sizeof f, 0);
    ck_assert(f[0] == 1.5f);
    sp_dist_barrier();
    ck_assert_int_eq(sp_dist_agree(SP_EIO), SP_EIO);
    ck_assert_int_eq(sp_dist_agree(SP_OK), SP_OK);
    ck_assert_int_eq(sp_dist_failed(), 0);
    ck_assert_int_eq(pt_dist_on(), 0);
    ck_assert_int_eq(pt_dist_is_root(), 1);
    pt_dist_force(1);
    ck_assert_int_eq(pt_dist_on(), 1);
    ck_assert_int_eq(pt_dist_signal(3), 3);
    pt_dist_force(0);
}
END_TEST

/* Memory / streamed x drop_last off / on. */
START_TEST(loader_order) {
    const int stream = _i & 1, drop_last = (_i >> 1) & 1;
    char data[1024];
    snprintf(data, sizeof data, "%s/data.h5", sp_tmpdir());
    const int N = 37, L = 9, B = 8;
    spt_write_data(data, N, L);
    spt_register_all();
    SpDataOptions o;
    data_options_default(&o);
    o.load = stream ? SP_LOAD_STREAM : SP_LOAD_MEMORY;
    o.block_rows = 5;       /* 8 blocks, the last one of 2 rows */
    o.shuffle_window = 3;   /* windows of 3, 3 and 2 blocks */
    SpDataset *ds = NULL;
    ck_assert_msg(dataset_open(&ds, data, &o) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(ds->in_memory, !stream);
    SpNorm nm;
    ck_assert_int_eq(norm_fit(&nm, SP_NORM_GLOBAL_MINMAX, ds, NULL, ds->n), SP_OK);
    const uint64_t seed = 0x9e3779b97f4a7c15ULL;
    SpLoader *ref = NULL;
    ck_assert_int_eq(loader_create(&ref, ds, NULL, 0, B, 1, drop_last, seed, &nm), SP_OK);
    pt_dist_force(1);
    PtLoader *pl = NULL;
    ck_assert_msg(pt_loader_create(&pl, ds, B, drop_last, seed, &nm) == SP_OK, "%s",
                  sp_error_message());
    ck_assert_int_eq(pt_loader_num_rows(pl), loader_num_rows(ref));
    int64_t order[64];
    for (int64_t e = 0; e < 3; e++) {
        ck_assert_int_eq(pt_loader_epoch_order(pl, e, order), SP_OK);
        ck_assert_int_eq(loader_start_epoch(ref, e), SP_OK);
        ck_assert_int_eq(pt_loader_start_epoch(pl, e), SP_OK);
        int64_t pos = 0;
        for (;;) {
            SpBatch a, b;
            ck_assert_int_eq(loader_next(ref, &a), SP_OK);
            ck_assert_int_eq(pt_loader_next(pl, &b), SP_OK);
            ck_assert_int_eq(a.n, b.n);
            if (a.n == 0) break;
            for (int i = 0; i < a.n; i++) {
                ck_assert_msg(a.index[i] == b.index[i] && a.index[i] == order[pos + i],
                              "epoch %lld row %lld: loader %lld, sharded loader %lld, order %lld",
                              (long long)e, (long long)(pos + i), (long long)a.index[i],
                              (long long)b.index[i], (long long)order[pos + i]);
                ck_assert_int_eq(a.extvar[i], b.extvar[i]);
                ck_assert_int_eq(a.labels[i], b.labels[i]);
            }
            ck_assert_mem_eq(a.x, b.x, (size_t)a.n * L * sizeof(float));
            pos += a.n;
        }
        ck_assert_int_eq(pos, loader_num_rows(ref));
        /* a permutation of every row */
        int seen[64] = {0};
        for (int i = 0; i < N; i++) seen[order[i]]++;
        for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
    }
    pt_dist_force(0);
    pt_loader_free(&pl);
    loader_free(&ref);
    norm_free(&nm);
    dataset_close(&ds);
    sp_tmpdir_cleanup();
}
END_TEST

/* The distributed code path with one rank == the plain run, bit for bit
 * (one thread): in memory (_i = 0) and streamed (_i = 1). */
START_TEST(forced_equals_plain) {
    sp_blas_init(1);
    char data[1024], da[1024], db[1024], pa[1100], pb[1100], msg[640];
    snprintf(data, sizeof data, "%s/data.h5", sp_tmpdir());
    snprintf(da, sizeof da, "%s/dist", sp_tmpdir());
    snprintf(db, sizeof db, "%s/plain", sp_tmpdir());
    spt_write_data(data, 28, 32);
    /* 28 spectra, batch 8: 3 full batches + 4 (a multiple of S = 4) */
    const char *sets[] = {"train.epochs=3", "train.batch_size=8",
                          _i ? "data.load=\"stream\"" : "data.load=\"memory\"",
                          "data.block_rows=5", "data.shuffle_window=2"};
    SpConfig *c = cfg_with(sets, 5);
    PretrainRunOpts o = {0};
    pt_dist_force(1);
    SpStatus rc = pretrain_run(c, data, da, &o);
    pt_dist_force(0);
    ck_assert_msg(rc == SP_OK, "%s", sp_error_message());
    ck_assert_msg(pretrain_run(c, data, db, &o) == SP_OK, "%s", sp_error_message());
    path_in(pa, sizeof pa, da, "checkpoint.h5");
    path_in(pb, sizeof pb, db, "checkpoint.h5");
    ck_assert_msg(cmp_ckpt(pa, pb, 1, msg, sizeof msg, NULL) == 0, "%s", msg);
    static char la[4][1024], lb[4][1024];
    path_in(pa, sizeof pa, da, "metrics.jsonl");
    path_in(pb, sizeof pb, db, "metrics.jsonl");
    ck_assert_int_eq(read_metric_lines(pa, la, 4), 3);
    ck_assert_int_eq(read_metric_lines(pb, lb, 4), 3);
    for (int i = 0; i < 3; i++) ck_assert_msg(!strcmp(la[i], lb[i]), "%s\n%s", la[i], lb[i]);
    sp_config_free(c);
    sp_tmpdir_cleanup();
}
END_TEST

#if defined(SP_MPIEXEC) && !defined(SP_TEST_NO_MPIRUN)
/* Run argv with extra environment (NAME=VALUE strings), output into out. */
static int run_env(char *out, size_t n, const char *const *argv, const char *const *env) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        for (int i = 0; env && env[i]; i++) {
            char kv[1200];
            snprintf(kv, sizeof kv, "%s", env[i]);
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                setenv(kv, eq + 1, 1);
            }
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t used = 0;
    char tmp[4096];
    ssize_t k;
    while ((k = read(fd[0], tmp, sizeof tmp)) > 0) {
        size_t c = (size_t)k, room = n - 1 - used;
        memcpy(out + used, tmp, c < room ? c : room);
        used += c < room ? c : room;
    }
    out[used] = '\0';
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* argv of `[mpiexec -np np ...] specssl --threads 1 pretrain` with the tiny config. */
static int pretrain_argv(const char **argv, int np, const char *data, const char *out,
                         const char *const *extra, int nextra) {
    int n = 0;
    if (np > 0) {
        static char npb[16];
        snprintf(npb, sizeof npb, "%d", np);
        argv[n++] = SP_MPIEXEC;
        argv[n++] = "-np";
        argv[n++] = npb;
        argv[n++] = "--oversubscribe";
        argv[n++] = "-x";
        argv[n++] = "OMP_NUM_THREADS=1";
        argv[n++] = "-x";
        argv[n++] = "OPENBLAS_NUM_THREADS=1";
        argv[n++] = "-x";
        argv[n++] = "SPECSSL_DIST_DUMP";
    }
    argv[n++] = SP_CLI_PATH;
    argv[n++] = "--threads";
    argv[n++] = "1";
    argv[n++] = "pretrain";
    argv[n++] = "--data";
    argv[n++] = data;
    argv[n++] = "--out";
    argv[n++] = out;
    for (int i = 0; i < N_TINY; i++) {
        argv[n++] = "--set";
        argv[n++] = g_tiny[i];
    }
    for (int i = 0; i < nextra; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    return n;
}

START_TEST(cli_mpirun) {
    static char out[65536];
    char data[1024], dm[1024], ds[1024], dr[1024], ds2[1024], dump[1024], pa[1100], pb[1100];
    char msg[640];
    char dumpenv[1100];
    snprintf(data, sizeof data, "%s/data.h5", sp_tmpdir());
    snprintf(dm, sizeof dm, "%s/mpi", sp_tmpdir());
    snprintf(ds, sizeof ds, "%s/single", sp_tmpdir());
    snprintf(dr, sizeof dr, "%s/resumed", sp_tmpdir());
    snprintf(ds2, sizeof ds2, "%s/resumed_single", sp_tmpdir());
    snprintf(dump, sizeof dump, "%s/dump", sp_tmpdir());
    ck_assert_int_eq(mkdir(dump, 0777), 0);
    snprintf(dumpenv, sizeof dumpenv, "SPECSSL_DIST_DUMP=%s", dump);
    spt_write_data(data, 36, 32);
    const char *const env[] = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                               "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", dumpenv, NULL};
    const char *ex4[] = {"--set", "train.epochs=4", "--set", "train.batch_size=8"};
    const char *argv[96];
    /* 2 ranks, 4 epochs (36 spectra, batch 8: 4 full batches + 4 rows) */
    pretrain_argv(argv, 2, data, dm, ex4, 4);
    int rc = run_env(out, sizeof out, argv, env);
    ck_assert_msg(rc == 0, "mpiexec exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "distributed: 2 MPI ranks") && strstr(out, "epoch=4/4"), "%s", out);
    /* both ranks hold the same state */
    path_in(pa, sizeof pa, dump, "rank0.h5");
    path_in(pb, sizeof pb, dump, "rank1.h5");
    ck_assert_msg(cmp_ckpt(pa, pb, 1, msg, sizeof msg, NULL) == 0, "rank dumps: %s", msg);
    /* one process, same config */
    pretrain_argv(argv, 0, data, ds, ex4, 4);
    rc = run_env(out, sizeof out, argv, env + 2);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    double worst = 0;
    path_in(pa, sizeof pa, dm, "checkpoint.h5");
    path_in(pb, sizeof pb, ds, "checkpoint.h5");
    ck_assert_msg(cmp_ckpt(pa, pb, 0, msg, sizeof msg, &worst) == 0, "2 ranks vs 1: %s",
                  msg);
    path_in(pa, sizeof pa, dm, "metrics.jsonl");
    path_in(pb, sizeof pb, ds, "metrics.jsonl");
    ck_assert_msg(cmp_losses(pa, pb, 4, msg, sizeof msg) == 0, "2 ranks vs 1: %s", msg);
    /* train.epochs = 2 on 2 ranks, then resumed in one process with
     * train.epochs = 4 (the schedule changes at the resume), vs the same in
     * one process throughout */
    const char *ex2[] = {"--set", "train.epochs=2", "--set", "train.batch_size=8"};
    const char *ex2r[] = {"--set", "train.epochs=4", "--set", "train.batch_size=8", "--resume"};
    for (int np = 2; np >= 0; np -= 2) {
        const char *dir = np ? dr : ds2;
        pretrain_argv(argv, np, data, dir, ex2, 4);
        rc = run_env(out, sizeof out, argv, np ? env : env + 2);
        ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
        pretrain_argv(argv, 0, data, dir, ex2r, 5);
        rc = run_env(out, sizeof out, argv, env + 2);
        ck_assert_msg(rc == 0, "resume exit %d:\n%s", rc, out);
    }
    path_in(pa, sizeof pa, dr, "checkpoint.h5");
    path_in(pb, sizeof pb, ds2, "checkpoint.h5");
    ck_assert_msg(cmp_ckpt(pa, pb, 0, msg, sizeof msg, NULL) == 0,
                  "2 ranks + resumed on 1 vs 1: %s", msg);
    path_in(pa, sizeof pa, dr, "metrics.jsonl");
    path_in(pb, sizeof pb, ds2, "metrics.jsonl");
    ck_assert_msg(cmp_losses(pa, pb, 4, msg, sizeof msg) == 0, "resumed: %s", msg);
    /* split BN S = 1 cannot be shared by 2 ranks: exit 2 naming the key */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/bad", sp_tmpdir());
    const char *exb[] = {"--set", "train.epochs=1", "--set", "train.batch_size=8", "--set",
                         "encoder.cnn.bn_splits=1"};
    pretrain_argv(argv, 2, data, bad, exb, 6);
    rc = run_env(out, sizeof out, argv, env);
    ck_assert_msg(rc == 2, "mpiexec exit %d (expected 2):\n%s", rc, out);
    ck_assert_msg(strstr(out, "encoder.cnn.bn_splits = 1 is not a multiple of the 2 MPI ranks"),
                  "%s", out);
    sp_tmpdir_cleanup();
}
END_TEST
#endif

static Suite *suite_local(void) {
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("runtime");
    tcase_add_test(tc, stub_runtime);
    suite_add_tcase(s, tc);
    tc = tcase_create("loader");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, loader_order, 0, 4);
    suite_add_tcase(s, tc);
    tc = tcase_create("step");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, forced_equals_plain, 0, 2);
    suite_add_tcase(s, tc);
#if defined(SP_MPIEXEC) && !defined(SP_TEST_NO_MPIRUN)
    tc = tcase_create("cli");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, cli_mpirun);
    suite_add_tcase(s, tc);
#endif
    return s;
}

/* ============================================================ 2+ ranks */

/* Pass/fail agreed over the ranks: every rank fails the same assertion. */
static void expect_all(int ok, const char *what, const char *msg) {
    int bad = !ok;
    sp_dist_allreduce_max_i(&bad, 1);
    ck_assert_msg(!bad, "%s failed on some rank (this rank: %s)", what, ok ? "ok" : msg);
}

/* msg = "<what>: <msg>" */
static void prefix_msg(char *msg, size_t n, const char *what) {
    char tmp[640];
    snprintf(tmp, sizeof tmp, "%s", msg);
    snprintf(msg, n, "%.200s: %.400s", what, tmp);
}

/* A shared scratch directory: rank 0 creates it, every rank gets the path. */
static const char *shared_tmpdir(void) {
    static char dir[512];
    if (pt_dist_is_root()) snprintf(dir, sizeof dir, "%s", sp_tmpdir());
    sp_dist_bcast(dir, sizeof dir, 0);
    return dir;
}

static void shared_cleanup(void) {
    sp_dist_barrier();
    if (pt_dist_is_root()) sp_tmpdir_cleanup();
    sp_dist_barrier();
}

/* tensor-wise closeness of two parameter tables */
static int params_close(const SpParams *a, const SpParams *b, char *msg, size_t n) {
    for (int t = 0; t < a->n; t++) {
        const SpTensorInfo *ti = &a->t[t];
        const float *x = ti->kind == SP_TENSOR_PARAM ? a->data + ti->offset : a->buf + ti->offset;
        const float *y = ti->kind == SP_TENSOR_PARAM ? b->data + ti->offset : b->buf + ti->offset;
        double mx = 0.0;
        for (size_t i = 0; i < ti->count; i++) mx = fmax(mx, fabs((double)y[i]));
        double allow = PARAM_ATOL + PARAM_RTOL * mx;
        for (size_t i = 0; i < ti->count; i++)
            if (!(fabs((double)x[i] - (double)y[i]) <= allow)) {
                snprintf(msg, n, "%s[%zu]: %.9g vs %.9g (allow %.3g)", ti->name, i, (double)x[i],
                         (double)y[i], allow);
                return 0;
            }
    }
    return 1;
}

/* 0: full objective with shuffle BN; 1: no shuffle, asymmetric MoCo, no ext
 * head; 2: encoder without BatchNorm (any rank count). */
START_TEST(ranks_step_equivalence) {
    sp_blas_init(1);
    const int P = sp_dist_size(), r = sp_dist_rank();
    const char *v1[] = {"pretext.moco.shuffle_bn=false", "pretext.moco.symmetric=false",
                        "pretext.rr.ext_coef=0"};
    const char *v2[] = {"encoder.cnn.batchnorm=false", "encoder.cnn.bn_splits=1"};
    SpConfig *c = _i == 0 ? cfg_with(NULL, 0) : _i == 1 ? cfg_with(v1, 3) : cfg_with(v2, 2);
    const int N = 64, L = 32, B = 16, steps = 6;
    float *x = malloc((size_t)N * L * sizeof(float)), *xl = malloc((size_t)B * L * sizeof(float));
    int32_t lab[64], ext[64], extl[16];
    int64_t idx[16], idxl[16];
    spt_make_data(x, lab, ext, N, L);
    /* normalise to [-1, 1] the same way on every rank */
    float lo = x[0], hi = x[0];
    for (size_t i = 0; i < (size_t)N * L; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    for (size_t i = 0; i < (size_t)N * L; i++) x[i] = 2.0f * (x[i] - lo) / (hi - lo) - 1.0f;
    PretrainState *one = NULL, *dist = NULL;
    SpStatus rc1 = pretrain_state_create(&one, c, L, B, 3, N);
    SpStatus rc2 = pt_dist_state_create(&dist, c, L, B, 3, N);
    expect_all(rc1 == SP_OK && rc2 == SP_OK, "state creation", sp_error_message());
    double l1[6], l2[6], m1[6], m2[6];
    int ok = 1;
    char msg[512] = "";
    float *xb = malloc((size_t)B * L * sizeof(float));
    for (int k = 0; k < steps && ok; k++) {
        /* global batch k: B distinct rows in a fixed random order */
        SpRng g;
        sp_rng_stream(&g, 5, (uint64_t)k, 0, 0);
        int64_t all[64];
        for (int i = 0; i < N; i++) all[i] = i;
        for (int b = 0; b < B; b++) {
            int64_t j = b + sp_rng_below(&g, N - b), t = all[b];
            all[b] = all[j];
            all[j] = t;
            idx[b] = all[b];
            memcpy(xb + (size_t)b * L, x + (size_t)idx[b] * L, (size_t)L * sizeof(float));
        }
        int32_t extb[16];
        for (int b = 0; b < B; b++) extb[b] = ext[idx[b]];
        for (int t = 0; t < B / P; t++) {
            int gpos = r + P * t;
            memcpy(xl + (size_t)t * L, xb + (size_t)gpos * L, (size_t)L * sizeof(float));
            idxl[t] = idx[gpos];
            extl[t] = extb[gpos];
        }
        const float lr = 0.05f;
        PretrainStepStats s1, s2;
        SpStatus a = pretrain_step(one, xb, B, idx, extb, 1, k, lr, &s1);
        SpStatus b = pretrain_step(dist, xl, B, idxl, extl, 1, k, lr, &s2);
        if (a != SP_OK || b != SP_OK) {
            snprintf(msg, sizeof msg, "step %d: %s", k, sp_error_message());
            ok = 0;
            break;
        }
        l1[k] = s1.loss;
        l2[k] = s2.loss;
        m1[k] = s1.l_moco;
        m2[k] = s2.l_moco;
        if (s2.B != B || s1.inter.n != s2.inter.n || s1.moco_n != s2.moco_n) {
            snprintf(msg, sizeof msg, "step %d: statistics over %d/%lld/%lld vs %d/%lld/%lld rows",
                     k, s1.B, (long long)s1.inter.n, (long long)s1.moco_n, s2.B,
                     (long long)s2.inter.n, (long long)s2.moco_n);
            ok = 0;
        }
        for (int j = 0; j <= k && ok; j++)
            if (fabs(l1[j] - l2[j]) > LOSS_RTOL * fabs(l1[j]) ||
                fabs(m1[j] - m2[j]) > LOSS_RTOL * fabs(m1[j]) + 1e-12) {
                snprintf(msg, sizeof msg, "step %d: loss %.9g vs %.9g, L_moco %.9g vs %.9g", j,
                         l2[j], l1[j], m2[j], m1[j]);
                ok = 0;
            }
    }
    if (ok && r == 0) {   /* the observed deviation, for the documented tolerance */
        double worst = 0.0;
        for (int j = 0; j < steps; j++) {
            worst = fmax(worst, fabs(l1[j] - l2[j]) / fabs(l1[j]));
            if (m1[j] != 0.0) worst = fmax(worst, fabs(m1[j] - m2[j]) / fabs(m1[j]));
        }
        fprintf(stderr, "ranks_step_equivalence(%d): %d steps, largest relative loss difference "
                        "2 ranks vs 1 process %.3g (tolerance %g)\n",
                _i, steps, worst, LOSS_RTOL);
    }
    /* collectives first: the ranks' states must hash the same */
    SpStatus cons = ok ? pt_dist_check_consistent(dist) : SP_OK;
    int qsame = 1;
    if (ok && pretrain_queue(dist)) {
        MocoQueue *q = pretrain_queue(dist);
        size_t nq = (size_t)q->D * q->Q;
        float *q0 = malloc(nq * sizeof(float));
        memcpy(q0, q->data, nq * sizeof(float));
        sp_dist_bcast(q0, nq * sizeof(float), 0);
        qsame = memcmp(q0, q->data, nq * sizeof(float)) == 0;
        free(q0);
    }
    expect_all(ok, "per-step losses within 1e-5 of one process", msg);
    expect_all(cons == SP_OK, "identical state on every rank", sp_error_message());
    expect_all(qsame, "identical queue on every rank", "queue differs from rank 0's");
    /* parameters, buffers, optimizer state and queue close to one process */
    ok = 1;
    for (int g = 0; g < pretrain_num_groups(one) && ok; g++) {
        const char *name;
        SpParams *a = pretrain_group(one, g, &name), *b = pretrain_group(dist, g, NULL);
        ok = params_close(b, a, msg, sizeof msg);
    }
    if (ok && pretrain_key_encoder(one)) {
        ok = params_close(encoder_params(pretrain_key_encoder(dist)->enc),
                          encoder_params(pretrain_key_encoder(one)->enc), msg, sizeof msg);
        MocoQueue *qa = pretrain_queue(one), *qb = pretrain_queue(dist);
        double mx = 0;
        for (size_t i = 0; i < (size_t)qa->D * qa->Q; i++) mx = fmax(mx, fabs(qa->data[i]));
        for (size_t i = 0; ok && i < (size_t)qa->D * qa->Q; i++)
            if (fabs(qa->data[i] - qb->data[i]) > PARAM_ATOL + PARAM_RTOL * mx) {
                snprintf(msg, sizeof msg, "queue[%zu]: %.9g vs %.9g", i, (double)qb->data[i],
                         (double)qa->data[i]);
                ok = 0;
            }
        if (ok && qa->ptr != qb->ptr) {
            snprintf(msg, sizeof msg, "queue_ptr %lld vs %lld", (long long)qb->ptr,
                     (long long)qa->ptr);
            ok = 0;
        }
    }
    expect_all(ok, "parameters and queue within tolerance of one process", msg);
    pretrain_state_destroy(&one);
    pretrain_state_destroy(&dist);
    free(x);
    free(xl);
    free(xb);
    sp_config_free(c);
}
END_TEST

static void raise_at(void *user, int64_t epoch, int64_t step) {
    (void)epoch;
    if (sp_dist_rank() == 1 && step == *(int64_t *)user) raise(SIGINT);
}

/* pretrain_run on rank 0 alone (a 1-process reference inside the job). */
static SpStatus run_alone(const SpConfig *c, const char *data, const char *dir,
                          const PretrainRunOpts *o) {
    SpStatus rc = SP_OK;
    if (pt_dist_is_root()) {
        sp_dist_set_local(1);
        rc = pretrain_run(c, data, dir, o);
        sp_dist_set_local(0);
    }
    sp_dist_barrier();
    return rc;
}

START_TEST(ranks_run_resume) {
    sp_blas_init(1);
    sp_signal_install();
    const char *tmp = shared_tmpdir();
    char data[600], d2[600], d1[600], dint[600], d12[600], d21[600], pa[700], pb[700];
    char msg[640] = "";
    snprintf(data, sizeof data, "%s/data.h5", tmp);
    snprintf(d2, sizeof d2, "%s/two", tmp);
    snprintf(d1, sizeof d1, "%s/one", tmp);
    snprintf(dint, sizeof dint, "%s/interrupted", tmp);
    snprintf(d12, sizeof d12, "%s/one_then_two", tmp);
    snprintf(d21, sizeof d21, "%s/two_then_one", tmp);
    if (pt_dist_is_root()) spt_write_data(data, 36, 32);
    sp_dist_barrier();
    /* 36 spectra, batch 8: 4 full batches + a last one of 4 (= S) rows */
    const char *sets[] = {"train.epochs=4", "train.batch_size=8"};
    SpConfig *c = cfg_with(sets, 2);
    PretrainRunOpts o = {0};
    SpStatus rc2 = pretrain_run(c, data, d2, &o);
    SpStatus rc1 = run_alone(c, data, d1, &o);
    /* interrupt on rank 1 only, in the middle of epoch 2 (after global step 7 of 20) */
    int64_t at = 7;
    PretrainRunOpts oi = {0};
    oi.on_step = raise_at;
    oi.user = &at;
    SpStatus rci = pretrain_run(c, data, dint, &oi);
    sp_signal_reset();
    sp_dist_reset();   /* the interrupt was an agreed failure; the ranks are in step here */
    oi.on_step = NULL;
    oi.resume = 1;
    SpStatus rcr = pretrain_run(c, data, dint, &oi);
    /* 1 process for 2 epochs, resumed on 2 ranks; 2 ranks for 2, resumed on 1 */
    PretrainRunOpts o2 = {0};
    o2.stop_after_epoch = 2;
    SpStatus a = run_alone(c, data, d12, &o2);
    SpStatus b = pretrain_run(c, data, d21, &o2);
    o2.stop_after_epoch = 0;
    o2.resume = 1;
    SpStatus a2 = pretrain_run(c, data, d12, &o2);
    SpStatus b2 = run_alone(c, data, d21, &o2);
    expect_all(rc2 == SP_OK, "2-rank run", sp_error_message());
    expect_all(rc1 == SP_OK, "1-process run", sp_error_message());
    expect_all(rci == SP_EINTERRUPT, "interrupt on rank 1 stops every rank", sp_status_name(rci));
    expect_all(rcr == SP_OK, "resumed 2-rank run", sp_error_message());
    expect_all(a == SP_OK && b == SP_OK && a2 == SP_OK && b2 == SP_OK, "runs with resume",
               sp_error_message());
    /* files: rank 0 compares, then the verdict is agreed (a failed check
     * on rank 0 alone must not leave rank 1 waiting in a collective) */
    int ok = 1;
    if (pt_dist_is_root()) {
        double worst = 0;
        path_in(pa, sizeof pa, d2, "checkpoint.h5");
        path_in(pb, sizeof pb, dint, "checkpoint.h5");
        if (cmp_ckpt(pa, pb, 1, msg, sizeof msg, NULL) != 0) {
            prefix_msg(msg, sizeof msg, "interrupted + resumed 2-rank run vs straight");
            ok = 0;
        }
        path_in(pb, sizeof pb, d1, "checkpoint.h5");
        if (ok && cmp_ckpt(pa, pb, 0, msg, sizeof msg, &worst) != 0) {
            prefix_msg(msg, sizeof msg, "2 ranks vs 1");
            ok = 0;
        }
        path_in(pa, sizeof pa, d12, "checkpoint.h5");
        if (ok && cmp_ckpt(pa, pb, 0, msg, sizeof msg, NULL) != 0) {
            prefix_msg(msg, sizeof msg, "1 process + resumed on 2 ranks vs 1");
            ok = 0;
        }
        path_in(pa, sizeof pa, d21, "checkpoint.h5");
        if (ok && cmp_ckpt(pa, pb, 0, msg, sizeof msg, NULL) != 0) {
            prefix_msg(msg, sizeof msg, "2 ranks + resumed on 1 vs 1");
            ok = 0;
        }
        if (ok) {
            int64_t bi = -1;
            hid_t f;
            if (sp_h5_open_read(pa, &f) != SP_OK) {
                snprintf(msg, sizeof msg, "cannot open %.500s", pa);
                ok = 0;
            } else {
                sp_h5_attr_read_int64(f, pa, "/", "batch_in_epoch", &bi);
                sp_h5_close(f);
                if (bi != 0) {
                    snprintf(msg, sizeof msg, "%.500s: batch_in_epoch %lld (expected 0)", pa,
                             (long long)bi);
                    ok = 0;
                }
            }
        }
        const char *dirs[] = {d2, d12, d21, dint};
        path_in(pb, sizeof pb, d1, "metrics.jsonl");
        for (int i = 0; i < 4 && ok; i++) {
            path_in(pa, sizeof pa, dirs[i], "metrics.jsonl");
            if (cmp_losses(pa, pb, 4, msg, sizeof msg) != 0) {
                prefix_msg(msg, sizeof msg, dirs[i]);
                ok = 0;
            }
        }
        /* the 2-rank run's kNN monitor ran on rank 0 */
        double knn[4];
        path_in(pa, sizeof pa, d2, "metrics.jsonl");
        if (ok && (read_metric(pa, "knn_acc", knn, 4) != 4 || !isfinite(knn[1]) ||
                   !isfinite(knn[3]))) {
            snprintf(msg, sizeof msg, "kNN missing in %.500s", pa);
            ok = 0;
        }
        if (ok)
            fprintf(stderr, "ranks_run_resume: 2 ranks vs 1 process, worst error / allowance %.3g\n",
                    worst);
    }
    sp_config_free(c);
    shared_cleanup();
    expect_all(ok, "checkpoints and losses (rank 0's comparisons)", msg);
}
END_TEST

START_TEST(ranks_errors) {
    const int P = sp_dist_size();
    spt_register_all();
    PretrainState *s = NULL;
    /* BN splits 1 with BatchNorm: cannot be shared */
    const char *e1[] = {"encoder.cnn.bn_splits=1"};
    SpConfig *c = cfg_with(e1, 1);
    SpStatus rc = pt_dist_state_create(&s, c, 32, 8, 3, 64);
    int ok = rc == SP_ECONFIG && strstr(sp_error_message(), "encoder.cnn.bn_splits") != NULL;
    expect_all(ok, "bn_splits not a multiple of the ranks", sp_error_message());
    sp_config_free(c);
    /* a batch the ranks cannot share evenly (no BN: any split count) */
    const char *e2[] = {"encoder.cnn.batchnorm=false", "encoder.cnn.bn_splits=1"};
    c = cfg_with(e2, 2);
    rc = pt_dist_state_create(&s, c, 32, 2 * P + 1, 3, 64);
    ok = rc == SP_ECONFIG && strstr(sp_error_message(), "train.batch_size") != NULL;
    expect_all(ok, "batch not a multiple of the ranks", sp_error_message());
    /* a queue smaller than the global keys of one step */
    const char *e3[] = {"encoder.cnn.batchnorm=false", "encoder.cnn.bn_splits=1",
                        "pretext.moco.queue=20"};
    sp_config_free(c);
    c = cfg_with(e3, 3);
    rc = pt_dist_state_create(&s, c, 32, 2 * P * 4, 3, 64);
    ok = rc == SP_ECONFIG && strstr(sp_error_message(), "pretext.moco.queue") != NULL;
    expect_all(ok, "queue smaller than the global keys", sp_error_message());
    ck_assert(s == NULL);
    sp_config_free(c);
}
END_TEST

static Suite *suite_ranks(void) {
    Suite *s = suite_create("mpi_ranks");
    TCase *tc = tcase_create("ranks");
    tcase_add_loop_test(tc, ranks_step_equivalence, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("run");
    tcase_add_test(tc, ranks_run_resume);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, ranks_errors);
    suite_add_tcase(s, tc);
    return s;
}

static void quiet_sink(SpLogLevel level, const char *line) {
    (void)level;
    (void)line;
}

int main(void) {
    sp_h5_init();
    if (sp_dist_init() != SP_OK) {
        sp_error_print(stderr);
        return EXIT_FAILURE;
    }
    if (sp_dist_size() == 1) {
        int rc = sp_run_suite(suite_local());
        sp_dist_finalize(SP_OK);
        return rc;
    }
    /* under mpiexec: no fork (MPI), every rank runs the same tests in order */
    if (!getenv("SPECSSL_TEST_LOG")) sp_log_set_sink(quiet_sink);
    SRunner *sr = srunner_create(suite_ranks());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    sp_dist_allreduce_max_i(&failed, 1);
    sp_dist_finalize(SP_OK);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
