/* test_faults.c - faults and interruptions lose nothing.
 *
 * `specssl pretrain` (tiny cnn, one thread, a checkpoint every epoch) runs
 * as a subprocess (spf_run) and is:
 *  - kill: SIGKILLed at three seeded random moments (a random epoch plus a
 *    random delay, the moment checkpoint.h5.tmp appears, i.e. during a
 *    checkpoint write, and another random epoch/delay), resumed after each;
 *    after every kill the existing checkpoint.h5 opens and validates (every
 *    dataset read back, checksums included) and metrics.jsonl only grew; the
 *    final checkpoint equals an uninterrupted run's bit for bit (every
 *    dataset: encoder_q/k, proj_q/k, heads, optimizer state, queue) and
 *    metrics.jsonl holds every epoch (reader rule: last line per epoch) with
 *    the uninterrupted run's values;
 *  - signals: SIGINT and SIGTERM mid-run: exit 1, a report saying how to
 *    resume ("--resume"), a valid checkpoint; resuming completes, bit for bit
 *    equal to the uninterrupted run;
 *  - nan: a diverging run (optim.lr = 1000) stops at the NaN/Inf guard with
 *    exit 1 and a clear report; the last good checkpoint is intact, finite
 *    and loadable (`specssl embed` works on it);
 *  - disk: a full disk (RLIMIT_FSIZE in the child, SIGXFSZ ignored: writes
 *    fail with EFBIG) during a checkpoint write, an embedding, a supervised
 *    model and a synth file; unwritable output paths (below a regular file,
 *    which stops root too; an output name that is a folder): a clear error
 *    (exit 1, or 2 for a usage error), earlier outputs intact, no *.tmp.
 *
 * Fixture (main, before the suite; CLI subprocesses only, no OpenMP in the
 * parent): the data, the config and the uninterrupted reference run.
 */
#define _XOPEN_SOURCE 700
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_checkpoint.h"
#include "sp_faults.h"
#include "sp_h5.h"
#include "sp_rng.h"
#include "sp_test.h"

#define EPOCHS 10

static const char CFG[] =
    "# tiny pretraining run for the fault tests (a checkpoint every epoch)\n"
    "encoder = { arch = \"cnn\"; cnn = { channels = [4, 6]; kernels = [3, 3]; strides = [1, 1];\n"
    "  padding = [1, 1]; pool = [2, 0]; batchnorm = true; bn_splits = 2; };\n"
    "  proj_hidden = 8; proj_dim = 8; };\n"
    "pretext = { rr = { hidden = 6; views = 3; cut_classes = 3; piece_size = 0.5; };\n"
    "  moco = { queue = 16; }; };\n"
    "optim = { lr = 0.05; warmup_epochs = 1; };\n"
    "train = { epochs = 10; batch_size = 8; checkpoint_every = 1; knn_every = 3; };\n"
    "supervised = { epochs = 1; };\n";

static struct {
    int ok;
    char why[16384];
    char dir[1024], D[1100], T[1100], CFG[1100], REF[1100], REFCK[1200], REFMET[1200];
} fx;

static void path_into(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void path_into(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n) {
        fprintf(stderr, "path too long: %s\n", dst);
        abort();
    }
}
#define PATHF(var, ...) \
    char var[1400];     \
    path_into(var, sizeof var, __VA_ARGS__)

static int fixture_run(const char *what, const char *const *argv) {
    return spf_run_ok(what, argv, fx.why, sizeof fx.why);
}

static void fixture_setup(void) {
    path_into(fx.dir, sizeof fx.dir, "%s/fx", sp_tmpdir());
    mkdir(fx.dir, 0777);
    path_into(fx.D, sizeof fx.D, "%s/data.h5", fx.dir);
    path_into(fx.T, sizeof fx.T, "%s/test.h5", fx.dir);
    path_into(fx.CFG, sizeof fx.CFG, "%s/tiny.cfg", fx.dir);
    path_into(fx.REF, sizeof fx.REF, "%s/ref", fx.dir);
    path_into(fx.REFCK, sizeof fx.REFCK, "%s/checkpoint.h5", fx.REF);
    path_into(fx.REFMET, sizeof fx.REFMET, "%s/metrics.jsonl", fx.REF);
    if (spf_write(fx.CFG, CFG, strlen(CFG)) != 0) {
        snprintf(fx.why, sizeof fx.why, "cannot write %s", fx.CFG);
        return;
    }
    const char *a1[] = {"specssl", "-q", "synth", "ramp", "--frames-slow", "32", "--frames-fast",
                        "16", "--length", "256", "--out", fx.D, NULL};
    const char *a2[] = {"specssl", "-q", "synth", "ramp", "--frames-slow", "16", "--frames-fast",
                        "8", "--length", "256", "--seed", "7", "--out", fx.T, NULL};
    const char *a3[] = {"specssl", "-q", "--threads", "1", "pretrain", "-c", fx.CFG, "--data",
                        fx.D, "--out", fx.REF, NULL};
    if (fixture_run("synth", a1) && fixture_run("synth test", a2) &&
        fixture_run("reference run", a3))
        fx.ok = 1;
}

static void need_fixture(void) { ck_assert_msg(fx.ok, "%s", fx.why); }

static void fresh_dir(char *p, size_t n, const char *name) {
    path_into(p, n, "%s/%s", sp_tmpdir(), name);
    spf_rm_rf(p);
    mkdir(p, 0777);
}

/* ------------------------------------------------------- checkpoint data */

typedef struct {
    int n;
    char name[256][160];
    char *data[256];
    size_t size[256];
    int nonfinite;   /* float datasets holding NaN/Inf */
} Tensors;

static herr_t collect_cb(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)info;
    Tensors *t = op;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0) return -1;
    if (oi.type != H5O_TYPE_DATASET) return 0;
    if (t->n >= 256) return -1;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t ty = H5Dget_type(d), sp = H5Dget_space(d);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    size_t es = H5Tget_size(ty), bytes = (size_t)(np > 0 ? np : 0) * es;
    char *buf = malloc(bytes ? bytes : 1);
    herr_t rc = (np > 0) ? H5Dread(d, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    if (rc >= 0 && H5Tget_class(ty) == H5T_FLOAT) {
        hid_t nt = H5Tget_native_type(ty, H5T_DIR_DEFAULT);
        if (H5Tequal(nt, H5T_NATIVE_FLOAT) > 0) {
            for (hssize_t i = 0; i < np; i++)
                if (!isfinite(((float *)(void *)buf)[i])) t->nonfinite++;
        } else if (H5Tequal(nt, H5T_NATIVE_DOUBLE) > 0) {
            for (hssize_t i = 0; i < np; i++)
                if (!isfinite(((double *)(void *)buf)[i])) t->nonfinite++;
        }
        H5Tclose(nt);
    }
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(d);
    if (rc < 0) {
        free(buf);
        return -1;
    }
    snprintf(t->name[t->n], sizeof t->name[0], "%s", name);
    t->data[t->n] = buf;
    t->size[t->n] = bytes;
    t->n++;
    return 0;
}

static void tensors_free(Tensors *t) {
    for (int i = 0; i < t->n; i++) free(t->data[i]);
    t->n = 0;
}

/* Open and validate a pretraining checkpoint: format, version, kind, arch,
 * then every dataset read back (Fletcher-32 checksums verified). Returns the
 * epochs it covers; fills t when not NULL. */
static int64_t validate_ckpt(const char *path, Tensors *t, const char *ctx) {
    hid_t f = -1;
    SpCkptMeta meta;
    SpStatus rc = ckpt_open(path, "pretrain", "cnn", &f, &meta);
    ck_assert_msg(rc == SP_OK, "%s: '%s' does not validate: %s", ctx, path, sp_error_message());
    Tensors local;
    Tensors *tt = t ? t : &local;
    memset(tt, 0, sizeof *tt);
    herr_t v = H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, collect_cb, tt);
    int64_t epoch = meta.epoch;
    ckpt_meta_free(&meta);
    sp_h5_close(f);
    ck_assert_msg(v >= 0, "%s: '%s': a dataset cannot be read back (corrupted)", ctx, path);
    ck_assert_msg(tt->n >= 20, "%s: '%s' holds only %d datasets", ctx, path, tt->n);
    if (!t) tensors_free(tt);
    return epoch;
}

/* Every dataset of a equals b's, bit for bit. */
static void expect_same_tensors(const char *a_path, const char *b_path, const char *ctx) {
    static Tensors a, b;
    validate_ckpt(a_path, &a, ctx);
    validate_ckpt(b_path, &b, ctx);
    ck_assert_msg(a.n == b.n, "%s: %d datasets vs %d", ctx, a.n, b.n);
    int groups[4] = {0, 0, 0, 0};
    for (int i = 0; i < a.n; i++) {
        ck_assert_msg(!strcmp(a.name[i], b.name[i]), "%s: dataset %s vs %s", ctx, a.name[i],
                      b.name[i]);
        ck_assert_msg(a.size[i] == b.size[i] && !memcmp(a.data[i], b.data[i], a.size[i]),
                      "%s: dataset '%s' differs from the uninterrupted run", ctx, a.name[i]);
        groups[0] += !strncmp(a.name[i], "encoder_q/", 10);
        groups[1] += !strncmp(a.name[i], "proj_q/", 7);
        groups[2] += !strncmp(a.name[i], "heads/", 6);
        groups[3] += !strcmp(a.name[i], "queue");
    }
    ck_assert_msg(groups[0] && groups[1] && groups[2] && groups[3],
                  "%s: encoder_q/proj_q/heads/queue not all compared", ctx);
    tensors_free(&a);
    tensors_free(&b);
}

/* ------------------------------------------------------------- metrics */

/* The reader rule: a record is a whole line {"epoch":N,...} ended by a
 * newline; the last record of each epoch wins. last[e] points into text. */
typedef struct {
    char *text;
    const char *last[EPOCHS + 2];
    size_t len[EPOCHS + 2];
    int records;
} Metrics;

static void metrics_read(Metrics *m, const char *path) {
    memset(m, 0, sizeof *m);
    m->text = spf_read(path, NULL);
    ck_assert_msg(m->text != NULL, "no '%s'", path);
    const char *p = m->text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl) break;   /* torn last line: not a record */
        int e = 0;
        if (sscanf(p, "{\"epoch\":%d,", &e) == 1 && nl > p && nl[-1] == '}' && e >= 1 &&
            e <= EPOCHS) {
            m->last[e] = p;
            m->len[e] = (size_t)(nl - p);
            m->records++;
        }
        p = nl + 1;
    }
}

/* Deterministic part of a record: everything before the timing fields. */
static size_t det_len(const char *line, size_t len) {
    const char *t = strstr(line, ",\"spectra_s\"");
    return t && (size_t)(t - line) < len ? (size_t)(t - line) : len;
}

static void expect_metrics_complete(const char *path, const char *ctx) {
    Metrics got, ref;
    metrics_read(&got, path);
    metrics_read(&ref, fx.REFMET);
    for (int e = 1; e <= EPOCHS; e++) {
        ck_assert_msg(ref.last[e], "reference metrics lack epoch %d", e);
        ck_assert_msg(got.last[e], "%s: metrics.jsonl lost epoch %d:\n%s", ctx, e, got.text);
        size_t lg = det_len(got.last[e], got.len[e]), lr = det_len(ref.last[e], ref.len[e]);
        ck_assert_msg(lg == lr && !memcmp(got.last[e], ref.last[e], lg),
                      "%s: epoch %d: %.*s\n  vs the uninterrupted run: %.*s", ctx, e, (int)lg,
                      got.last[e], (int)lr, ref.last[e]);
    }
    free(got.text);
    free(ref.text);
}

/* -------------------------------------------------------------- helpers */

static void expect_report(const SpfResult *r, int want, const char *ctx, const char *n1,
                          const char *n2) {
    const char *desc = spf_describe(r);
    const char *bad = spf_bad_trace(r->err);
    ck_assert_msg(bad == NULL, "%s: '%s' on stderr: %s", ctx, bad, desc);
    ck_assert_msg(r->signaled == 0, "%s: killed by a signal: %s", ctx, desc);
    ck_assert_msg(r->status == want, "%s: expected exit %d: %s", ctx, want, desc);
    int lines = spf_error_lines(r->err);
    ck_assert_msg(lines >= 1 && lines <= 2, "%s: error report of %d lines: %s", ctx, lines, desc);
    const char *rep = strstr(r->err, "specssl: error:");
    if (n1) ck_assert_msg(strstr(rep, n1), "%s: the report does not say '%s': %s", ctx, n1, desc);
    if (n2) ck_assert_msg(strstr(rep, n2), "%s: the report does not say '%s': %s", ctx, n2, desc);
}

static int resume_argv(const char **av, const char *run) {
    static char cfg[1400];
    path_into(cfg, sizeof cfg, "%s/config.cfg", run);
    int k = 0;
    av[k++] = "specssl";
    av[k++] = "--threads";
    av[k++] = "1";
    av[k++] = "pretrain";
    av[k++] = "-c";
    av[k++] = cfg;
    av[k++] = "--data";
    av[k++] = fx.D;
    av[k++] = "--out";
    av[k++] = run;
    av[k++] = "--resume";
    av[k] = NULL;
    return k;
}

static int fresh_argv(const char **av, const char *run) {
    int k = 0;
    av[k++] = "specssl";
    av[k++] = "--threads";
    av[k++] = "1";
    av[k++] = "pretrain";
    av[k++] = "-c";
    av[k++] = fx.CFG;
    av[k++] = "--data";
    av[k++] = fx.D;
    av[k++] = "--out";
    av[k++] = run;
    av[k] = NULL;
    return k;
}

/* The tiny pretraining in run, fresh or resumed (--resume), up to epoch
 * `epochs` (--set train.epochs=N), with faults o (NULL: none). */
static void pretrain_to(SpfResult *r, const char *run, int resume, int epochs, const SpfOpts *o) {
    const char *av[24];
    char set[32];
    snprintf(set, sizeof set, "train.epochs=%d", epochs);
    int k = resume ? resume_argv(av, run) : fresh_argv(av, run);
    av[k++] = "--set";
    av[k++] = set;
    av[k] = NULL;
    spf_run(r, av, o);
}

/* Without faults the run resumes and completes 4 epochs: exit 0, checkpoint
 * at epoch 4, a metrics line for every epoch 1..4. */
static void expect_resume_to_4(const char *run, const char *ck, const char *met,
                               const char *ctx) {
    SpfResult r;
    pretrain_to(&r, run, 1, 4, NULL);
    ck_assert_msg(r.status == 0, "%s: %s", ctx, spf_describe(&r));
    spf_free(&r);
    ck_assert(validate_ckpt(ck, NULL, "after the resume") == 4);
    Metrics m;
    metrics_read(&m, met);
    for (int e = 1; e <= 4; e++) ck_assert_msg(m.last[e], "epoch %d missing:\n%s", e, m.text);
    free(m.text);
}

/* ----------------------------------------------------------------- kill */

START_TEST(kill_and_resume) {
    need_fixture();
    char run[1200];
    fresh_dir(run, sizeof run, "kill");
    PATHF(ck, "%s/checkpoint.h5", run);
    PATHF(tmp, "%s/checkpoint.h5.tmp", run);
    PATHF(met, "%s/metrics.jsonl", run);
    SpRng rng;
    sp_rng_stream(&rng, 20251127, 0x6b696c6cULL /* "kill" */, 0, 0);
    const char *av[24];
    char before[65536] = "";
    int64_t done = 0;
    for (int k = 0; k < 3; k++) {
        SpfOpts o;
        memset(&o, 0, sizeof o);
        o.kill_sig = SIGKILL;
        char when[64] = "";
        if (k == 1) {
            o.kill_when_exists = tmp;   /* during a checkpoint write */
        } else {
            /* a random epoch ahead, plus a random delay of up to 4 ms */
            int e = (int)done + 2 + (int)sp_rng_below(&rng, 2);
            snprintf(when, sizeof when, "epoch=%d/", e);
            o.kill_when_err = when;
            o.kill_delay_s = 0.004 * sp_rng_next_double(&rng);
        }
        if (k == 0) fresh_argv(av, run);
        else resume_argv(av, run);
        SpfResult r;
        spf_run(&r, av, &o);
        const char *ctx = k == 1 ? "kill during a checkpoint write" : when;
        ck_assert_msg(r.sent == SIGKILL && r.signaled == SIGKILL,
                      "kill %d (%s) did not land before the run ended: %s", k + 1, ctx,
                      spf_describe(&r));
        spf_free(&r);
        /* the checkpoint under its final name is complete and valid */
        ck_assert_msg(spf_exists(ck), "kill %d: no checkpoint.h5", k + 1);
        int64_t e = validate_ckpt(ck, NULL, ctx);
        ck_assert_msg(e >= done && e < EPOCHS, "kill %d: checkpoint at epoch %lld (was %lld)",
                      k + 1, (long long)e, (long long)done);
        done = e;
        /* metrics.jsonl only grew */
        char *m = spf_read(met, NULL);
        ck_assert_msg(m && !strncmp(m, before, strlen(before)),
                      "kill %d: metrics.jsonl was rewritten, not appended to", k + 1);
        ck_assert(strlen(m) < sizeof before);
        snprintf(before, sizeof before, "%s", m);
        free(m);
    }
    /* resume to the end */
    resume_argv(av, run);
    SpfResult r;
    spf_run(&r, av, NULL);
    ck_assert_msg(r.status == 0, "final resume: %s", spf_describe(&r));
    ck_assert_msg(spf_bad_trace(r.err) == NULL, "final resume: %s", spf_describe(&r));
    spf_free(&r);
    ck_assert_msg(!spf_exists(tmp) && spf_count_tmp(run) == 0, "a *.tmp is left in %s", run);
    ck_assert_int_eq(validate_ckpt(ck, NULL, "final"), EPOCHS);
    expect_same_tensors(ck, fx.REFCK, "3 kills + resumes vs uninterrupted");
    expect_metrics_complete(met, "3 kills + resumes");
    spf_rm_rf(run);
}
END_TEST

/* -------------------------------------------------------------- signals */

START_TEST(signal_then_resume) {
    need_fixture();
    const int sig = _i == 0 ? SIGINT : SIGTERM;
    const char *sname = _i == 0 ? "SIGINT" : "SIGTERM";
    char run[1200];
    fresh_dir(run, sizeof run, sname);
    PATHF(ck, "%s/checkpoint.h5", run);
    PATHF(met, "%s/metrics.jsonl", run);
    const char *av[24];
    fresh_argv(av, run);
    SpfOpts o;
    memset(&o, 0, sizeof o);
    o.kill_sig = sig;
    o.kill_when_err = _i == 0 ? "epoch=3/" : "epoch=5/";
    o.kill_delay_s = 0.001;
    SpfResult r;
    spf_run(&r, av, &o);
    ck_assert_msg(r.sent == sig, "%s was not sent before the run ended: %s", sname,
                  spf_describe(&r));
    expect_report(&r, 1, sname, "--resume", "checkpoint");
    spf_free(&r);
    int64_t e = validate_ckpt(ck, NULL, sname);
    ck_assert_msg(e >= 3 && e < EPOCHS, "%s: checkpoint at epoch %lld", sname, (long long)e);
    ck_assert(spf_count_tmp(run) == 0);
    resume_argv(av, run);
    spf_run(&r, av, NULL);
    ck_assert_msg(r.status == 0, "%s: resume: %s", sname, spf_describe(&r));
    ck_assert_msg(spf_bad_trace(r.err) == NULL, "%s: resume: %s", sname, spf_describe(&r));
    spf_free(&r);
    ck_assert_int_eq(validate_ckpt(ck, NULL, sname), EPOCHS);
    expect_same_tensors(ck, fx.REFCK, sname);
    expect_metrics_complete(met, sname);
    spf_rm_rf(run);
}
END_TEST

/* ------------------------------------------------------------------ NaN */

START_TEST(divergence_guard) {
    need_fixture();
    char run[1200];
    fresh_dir(run, sizeof run, "nan");
    PATHF(ck, "%s/checkpoint.h5", run);
    PATHF(emb, "%s/emb.h5", run);
    const char *av[40];
    int k = fresh_argv(av, run);
    /* the warm-up reaches lr = 333 in epoch 2: epoch 1 is checkpointed */
    const char *sets[] = {"optim.lr=1000", "optim.weight_decay=1", "optim.schedule=\"constant\"",
                          "optim.warmup_epochs=3", "optim.warmup_from=1e-6", "train.epochs=40"};
    for (int i = 0; i < 6; i++) {
        av[k++] = "--set";
        av[k++] = sets[i];
    }
    av[k] = NULL;
    SpfResult r;
    spf_run(&r, av, NULL);
    expect_report(&r, 1, "divergence", "non-finite", "last good state");
    ck_assert_msg(strstr(r.err, "checkpoint.h5"), "the report names no checkpoint: %s",
                  spf_describe(&r));
    spf_free(&r);
    static Tensors t;
    int64_t e = validate_ckpt(ck, &t, "after divergence");
    ck_assert_msg(e >= 1, "no good epoch was checkpointed before the divergence");
    ck_assert_msg(t.nonfinite == 0, "the last good checkpoint holds %d non-finite values",
                  t.nonfinite);
    tensors_free(&t);
    const char *ea[] = {"specssl", "-q", "--threads", "1", "embed", "--ckpt", ck, "--data", fx.D,
                        "--out", emb, NULL};
    spf_run(&r, ea, NULL);
    ck_assert_msg(r.status == 0, "embed on the last good checkpoint: %s", spf_describe(&r));
    spf_free(&r);
    ck_assert(spf_count_tmp(run) == 0);
    spf_rm_rf(run);
}
END_TEST

/* ----------------------------------------------------------------- disk */

/* The checkpoint write hits a full disk: the previous checkpoint survives. */
START_TEST(disk_full_checkpoint) {
    need_fixture();
    char run[1200];
    fresh_dir(run, sizeof run, "full");
    PATHF(ck, "%s/checkpoint.h5", run);
    PATHF(met, "%s/metrics.jsonl", run);
    SpfResult r;
    pretrain_to(&r, run, 0, 2, NULL);
    ck_assert_msg(r.status == 0, "2-epoch run: %s", spf_describe(&r));
    spf_free(&r);
    size_t nck, nmet;
    char *ck0 = spf_read(ck, &nck), *met0 = spf_read(met, &nmet);
    ck_assert(ck0 && met0 && nck > 8192);
    SpfOpts o;
    memset(&o, 0, sizeof o);
    o.fsize_limit = (long long)nck / 2;   /* the config and metrics fit, a checkpoint does not */
    pretrain_to(&r, run, 1, 4, &o);
    expect_report(&r, 1, "disk full during a checkpoint", "checkpoint.h5", "disk full");
    spf_free(&r);
    ck_assert_msg(spf_same(ck, ck0, nck), "the previous checkpoint changed");
    ck_assert(validate_ckpt(ck, NULL, "after disk full") == 2);
    char *met1 = spf_read(met, NULL);
    ck_assert_msg(met1 && !strncmp(met1, met0, nmet), "metrics.jsonl was rewritten");
    free(met1);
    ck_assert_msg(spf_count_tmp(run) == 0, "a *.tmp is left in %s", run);
    /* space is back: the run resumes and completes */
    expect_resume_to_4(run, ck, met, "resume after disk full");
    free(ck0);
    free(met0);
    spf_rm_rf(run);
}
END_TEST

/* metrics.jsonl cannot grow (here: it is larger than the file-size limit,
 * after lines that are not records, which readers skip) while a checkpoint
 * still fits: the run stops before checkpointing an epoch whose line was not
 * written, so after the resume no epoch is missing from metrics.jsonl. */
START_TEST(metrics_append_fails) {
    need_fixture();
    char run[1200];
    fresh_dir(run, sizeof run, "metrics_full");
    PATHF(ck, "%s/checkpoint.h5", run);
    PATHF(met, "%s/metrics.jsonl", run);
    SpfResult r;
    pretrain_to(&r, run, 0, 2, NULL);
    ck_assert_msg(r.status == 0, "2-epoch run: %s", spf_describe(&r));
    spf_free(&r);
    long long nck = spf_file_size(ck);
    size_t nmet;
    char *m0 = spf_read(met, &nmet);
    ck_assert(m0 && nck > 0);
    /* pad with non-record lines up to 1.5x the checkpoint size */
    FILE *f = fopen(met, "ab");
    ck_assert(f != NULL);
    while (ftell(f) < nck * 3 / 2) fputs("# padding: not a record, readers skip it\n", f);
    ck_assert(fclose(f) == 0);
    SpfOpts o;
    memset(&o, 0, sizeof o);
    o.fsize_limit = nck * 5 / 4;   /* a checkpoint fits, metrics.jsonl cannot grow */
    pretrain_to(&r, run, 1, 4, &o);
    expect_report(&r, 1, "metrics.jsonl cannot grow", "metrics.jsonl", NULL);
    spf_free(&r);
    ck_assert_msg(validate_ckpt(ck, NULL, "after the failed append") == 2,
                  "an epoch was checkpointed although its metrics line was not written");
    expect_resume_to_4(run, ck, met, "resume");
    free(m0);
    spf_rm_rf(run);
}
END_TEST

/* Writers of embeddings, models and datasets on a full disk: the existing
 * output keeps its bytes. */
START_TEST(disk_full_outputs) {
    need_fixture();
    char dir[1200];
    fresh_dir(dir, sizeof dir, "full_out");
    PATHF(emb, "%s/emb.h5", dir);
    PATHF(model, "%s/model.h5", dir);
    PATHF(syn, "%s/synth.h5", dir);
    const char *e1[] = {"specssl", "-q", "--threads", "1", "embed", "--ckpt", fx.REFCK, "--data",
                        fx.D, "--out", emb, NULL};
    const char *s1[] = {"specssl", "-q", "--threads", "1", "supervised", "-c", fx.CFG, "--train",
                        fx.D, "--test", fx.T, "--out", model, NULL};
    const char *y1[] = {"specssl", "-q", "synth", "ramp", "--frames-slow", "16", "--frames-fast",
                        "8", "--length", "256", "--out", syn, NULL};
    const char *const *cmds[3] = {e1, s1, y1};
    const char *outs[3] = {emb, model, syn};
    const char *names[3] = {"embed", "supervised", "synth"};
    for (int c = 0; c < 3; c++) {
        SpfResult r;
        spf_run(&r, cmds[c], NULL);   /* an earlier, complete output */
        ck_assert_msg(r.status == 0, "%s: %s", names[c], spf_describe(&r));
        spf_free(&r);
        size_t n;
        char *old = spf_read(outs[c], &n);
        ck_assert(old && n > 2048);
        SpfOpts o;
        memset(&o, 0, sizeof o);
        o.fsize_limit = 1024;
        spf_run(&r, cmds[c], &o);
        expect_report(&r, 1, names[c], outs[c] + strlen(dir) + 1, "disk full");
        spf_free(&r);
        ck_assert_msg(spf_same(outs[c], old, n), "%s: the earlier output changed", names[c]);
        ck_assert_msg(spf_count_tmp(dir) == 0, "%s: a *.tmp is left", names[c]);
        free(old);
    }
    spf_rm_rf(dir);
}
END_TEST

/* Unwritable output paths. Tests may run as root, where permissions do not
 * stop writes: a path below a regular file fails for everyone (ENOTDIR). */
START_TEST(unwritable_outputs) {
    need_fixture();
    char dir[1200];
    fresh_dir(dir, sizeof dir, "unwritable");
    PATHF(file, "%s/plain_file", dir);
    ck_assert(spf_write(file, "x\n", 2) == 0);
    PATHF(below, "%s/plain_file/out.h5", dir);
    PATHF(belowdir, "%s/plain_file/run", dir);
    PATHF(adir, "%s/a_folder.h5", dir);
    mkdir(adir, 0777);
    static const struct {
        const char *args[14];
        int want;
        const char *needle;
        const char *name;
    } cases[] = {
        {{"embed", "--ckpt", "CK", "--data", "D", "--out", "BELOW", NULL}, 1, "Not a directory", "plain_file"},
        {{"pretrain", "-c", "CFG", "--data", "D", "--out", "BELOWDIR", NULL}, 1, "Not a directory", "plain_file"},
        {{"supervised", "-c", "CFG", "--train", "D", "--test", "T", "--out", "BELOW", NULL}, 1,
         "Not a directory", "plain_file"},
        {{"linear-eval", "-c", "CFG", "--ckpt", "CK", "--train", "D", "--test", "T", "--out",
          "BELOWDIR", NULL},
         2, "not a folder", "plain_file"},
        {{"sweep", "-c", "CFG", "--ckpt", "CK", "--train", "D", "--test", "T", "--out", "BELOWDIR",
          NULL},
         2, "not a folder", "plain_file"},
        {{"synth", "ramp", "--frames-slow", "4", "--frames-fast", "4", "--length", "64", "--out",
          "BELOW", NULL},
         1, "Not a directory", "plain_file"},
        {{"config", "-o", "BELOW", NULL}, 1, "Not a directory", "plain_file"},
        {{"embed", "--ckpt", "CK", "--data", "D", "--out", "ADIR", NULL}, 1, "Is a directory",
         "a_folder.h5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *av[24];
        int k = 0;
        av[k++] = "specssl";
        av[k++] = "-q";
        av[k++] = "--threads";
        av[k++] = "1";
        for (int j = 0; cases[i].args[j]; j++) {
            const char *a = cases[i].args[j];
            av[k++] = !strcmp(a, "CK")         ? fx.REFCK
                      : !strcmp(a, "D")        ? fx.D
                      : !strcmp(a, "T")        ? fx.T
                      : !strcmp(a, "CFG")      ? fx.CFG
                      : !strcmp(a, "BELOW")    ? below
                      : !strcmp(a, "BELOWDIR") ? belowdir
                      : !strcmp(a, "ADIR")     ? adir
                                               : a;
        }
        av[k] = NULL;
        SpfResult r;
        spf_run(&r, av, NULL);
        char ctx[128];
        snprintf(ctx, sizeof ctx, "%s into an unwritable path", cases[i].args[0]);
        expect_report(&r, cases[i].want, ctx, cases[i].name, cases[i].needle);
        spf_free(&r);
        ck_assert_msg(spf_same(file, "x\n", 2), "%s: the regular file changed", ctx);
        ck_assert_msg(spf_count_tmp(dir) == 0 && spf_count_files(adir) == 0,
                      "%s: something was left behind", ctx);
    }
    spf_rm_rf(dir);
}
END_TEST

int main(void) {
    fixture_setup();
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("kill");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, kill_and_resume);
    suite_add_tcase(s, tc);
    tc = tcase_create("signals");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, signal_then_resume, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("nan");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, divergence_guard);
    suite_add_tcase(s, tc);
    tc = tcase_create("disk");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, disk_full_checkpoint);
    tcase_add_test(tc, metrics_append_fails);
    tcase_add_test(tc, disk_full_outputs);
    tcase_add_test(tc, unwritable_outputs);
    suite_add_tcase(s, tc);
    int rc = sp_run_suite(s);
    sp_tmpdir_cleanup();
    return rc;
}
