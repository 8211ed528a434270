/* test_reliability.c - bad input to every specssl command that reads a file:
 * a clear refusal, never a crash, and no output file created or overwritten.
 *
 * Each case is generated at run time, small, in sp_tmpdir(); the CLI runs as
 * a subprocess (spf_run) with -q --threads 1. For every refusal we assert:
 *  - the exit status (2 for bad input/config; 0 where the input must work:
 *    integer and float64 spectra, a valid checkpoint of another
 *    architecture where the architecture comes from the checkpoint);
 *  - no signal, no sanitizer report, no HDF5 diagnostic text on stderr
 *    ("HDF5-DIAG", "#000:");
 *  - one error report of at most 2 lines that names the file (or the config
 *    key) and the problem;
 *  - a pre-existing output file keeps its bytes, no output folder or run
 *    directory is left behind, no "*.tmp" is left.
 *
 * TCases: data (dataset files in every data role of every command),
 * checkpoint (checkpoints and model files in every model role), config
 * (config files and --set for every command that takes -c), synth (its
 * options), import (import-torch's flat export and manifest), fuzz (seeded
 * random bit flips in a checkpoint: exit 0 or 2, never a crash).
 *
 * Fixture (main, before the suite, CLI subprocesses only - no OpenMP in the
 * parent): a tiny ramp dataset (24 spectra x 256 points, 3 classes) and a
 * test file, a tiny config, a pretrained checkpoint (cnn, 1 epoch), a tiny
 * resnet1d checkpoint, a supervised model and a linear probe.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_checkpoint.h"
#include "sp_data.h"
#include "sp_faults.h"
#include "sp_h5.h"
#include "sp_rng.h"
#include "sp_test.h"

#define N_ROWS 24
#define L_PTS 256

static const char SENTINEL[] = "specssl reliability sentinel: must not be overwritten\n";

/* ----------------------------------------------------------- fixture */

static struct {
    int ok;
    char why[16384];
    char dir[1024];
    char D[1100], T[1100], TINY[1100], RUN[1100], CK[1100], RES[1100], SUP[1100], PROBE[1400],
        LEDIR[1100];
} fx;

static const char TINY_CFG[] =
    "# tiny pipeline for the reliability tests\n"
    "encoder = { arch = \"cnn\"; cnn = { channels = [4, 6]; kernels = [3, 3]; strides = [1, 1];\n"
    "  padding = [1, 1]; pool = [2, 0]; batchnorm = true; bn_splits = 2; };\n"
    "  proj_hidden = 8; proj_dim = 8; };\n"
    "pretext = { rr = { hidden = 6; views = 3; cut_classes = 3; piece_size = 0.5; };\n"
    "  moco = { queue = 16; }; };\n"
    "optim = { lr = 0.05; warmup_epochs = 1; };\n"
    "train = { epochs = 1; batch_size = 8; };\n"
    "supervised = { epochs = 1; };\n"
    "linear_eval = { seeds = 1; labels_per_class = 2; };\n"
    "sweep = { labels_per_class = [2]; seeds = 1; methods = [\"probe\", \"knn\"]; };\n";

static int fixture_run(const char *what, const char *const *argv) {
    return spf_run_ok(what, argv, fx.why, sizeof fx.why);
}

static void fixture_setup(void) {
    snprintf(fx.dir, sizeof fx.dir, "%s/fx", sp_tmpdir());
    mkdir(fx.dir, 0777);
    snprintf(fx.D, sizeof fx.D, "%s/train.h5", fx.dir);
    snprintf(fx.T, sizeof fx.T, "%s/test.h5", fx.dir);
    snprintf(fx.TINY, sizeof fx.TINY, "%s/tiny.cfg", fx.dir);
    snprintf(fx.RUN, sizeof fx.RUN, "%s/run", fx.dir);
    snprintf(fx.CK, sizeof fx.CK, "%s/run/checkpoint.h5", fx.dir);
    snprintf(fx.RES, sizeof fx.RES, "%s/res/checkpoint.h5", fx.dir);
    snprintf(fx.SUP, sizeof fx.SUP, "%s/sup.h5", fx.dir);
    snprintf(fx.LEDIR, sizeof fx.LEDIR, "%s/le", fx.dir);
    if (spf_write(fx.TINY, TINY_CFG, strlen(TINY_CFG)) != 0) {
        snprintf(fx.why, sizeof fx.why, "cannot write %s", fx.TINY);
        return;
    }
    const char *a1[] = {"specssl", "-q", "synth", "ramp", "--frames-slow", "16", "--frames-fast",
                        "8", "--length", "256", "--out", fx.D, NULL};
    const char *a2[] = {"specssl", "-q", "synth", "ramp", "--frames-slow", "16", "--frames-fast",
                        "8", "--length", "256", "--seed", "7", "--out", fx.T, NULL};
    const char *a3[] = {"specssl", "-q", "--threads", "1", "pretrain", "-c", fx.TINY, "--data",
                        fx.D, "--out", fx.RUN, NULL};
    const char *res_dir = spf_fmt("%s/res", fx.dir);
    const char *a4[] = {"specssl", "-q", "--threads", "1", "pretrain", "-c", fx.TINY, "--data",
                        fx.D, "--out", res_dir, "--set", "encoder.arch=\"resnet1d\"",
                        "--set", "encoder.resnet1d.stem_channels=4",
                        "--set", "encoder.resnet1d.widths=[4]",
                        "--set", "encoder.resnet1d.blocks=[1]",
                        "--set", "encoder.resnet1d.bn_splits=2", NULL};
    const char *a5[] = {"specssl", "-q", "--threads", "1", "supervised", "-c", fx.TINY, "--train",
                        fx.D, "--test", fx.T, "--out", fx.SUP, NULL};
    const char *a6[] = {"specssl", "-q", "--threads", "1", "linear-eval", "-c", fx.TINY, "--ckpt",
                        fx.CK, "--train", fx.D, "--test", fx.T, "--out", fx.LEDIR, NULL};
    if (!fixture_run("synth train", a1) || !fixture_run("synth test", a2) ||
        !fixture_run("pretrain", a3) || !fixture_run("pretrain resnet1d", a4) ||
        !fixture_run("supervised", a5) || !fixture_run("linear-eval", a6))
        return;
    DIR *d = opendir(fx.LEDIR);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (!strncmp(e->d_name, "probe_", 6))
            snprintf(fx.PROBE, sizeof fx.PROBE, "%s/%s", fx.LEDIR, e->d_name);
    if (d) closedir(d);
    if (!fx.PROBE[0]) {
        snprintf(fx.why, sizeof fx.why, "linear-eval wrote no probe_*.h5 in %s", fx.LEDIR);
        return;
    }
    fx.ok = 1;
}

static void need_fixture(void) { ck_assert_msg(fx.ok, "%s", fx.why); }

/* Paths live in local buffers (spf_fmt's rotating buffers are for labels). */
static void path_into(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void path_into(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    ck_assert_msg(k >= 0 && (size_t)k < n, "path too long: %s", dst);
}
#define PATHF(var, ...)  \
    char var[1400];      \
    path_into(var, sizeof var, __VA_ARGS__)

/* A fresh folder for one case: <tmp>/<name>. */
static void case_dir(char *p, size_t n, const char *name) {
    snprintf(p, n, "%s/%s", sp_tmpdir(), name);
    spf_rm_rf(p);
    mkdir(p, 0777);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---------------------------------------------------- one command, checked */

typedef struct {
    const char *out_file; /* pre-created with SENTINEL; must keep it on failure */
    const char *out_dir;  /* must not exist before; must not exist (or be empty) on failure */
    const char *keep[3];  /* files that must keep their bytes whatever happens (or NULL) */
} Outputs;

/* Run argv and check the outcome. want 2 (or 1): a refusal whose report names
 * `name` (a file's base name or a config key) and contains `needle` (may be
 * NULL). want 0: success, outputs written. */
static void expect_run(const char *what, const char *const *argv, int want, const char *name,
                       const char *needle, const Outputs *o) {
    Outputs none = {NULL, NULL, {NULL, NULL, NULL}};
    if (!o) o = &none;
    size_t nkeep[3] = {0, 0, 0};
    char *keep[3];
    for (int k = 0; k < 3; k++) keep[k] = o->keep[k] ? spf_read(o->keep[k], &nkeep[k]) : NULL;
    if (o->out_file) ck_assert(spf_write(o->out_file, SENTINEL, strlen(SENTINEL)) == 0);
    if (o->out_dir) spf_rm_rf(o->out_dir);
    SpfResult r;
    spf_run(&r, argv, NULL);
    const char *desc = spf_describe(&r);
    ck_assert_msg(r.signaled == 0, "%s: crashed: %s", what, desc);
    const char *bad = spf_bad_trace(r.err);
    ck_assert_msg(bad == NULL, "%s: '%s' on stderr: %s", what, bad, desc);
    ck_assert_msg(r.status == want, "%s: expected exit %d: %s", what, want, desc);
    if (want != 0) {
        int lines = spf_error_lines(r.err);
        ck_assert_msg(lines >= 1 && lines <= 2, "%s: error report of %d lines (1..2 expected): %s",
                      what, lines, desc);
        const char *rep = strstr(r.err, "specssl: error:");
        ck_assert_msg(rep && strstr(rep + 1, "specssl: error:") == NULL,
                      "%s: more than one error report: %s", what, desc);
        if (name)
            ck_assert_msg(strstr(rep, name) != NULL, "%s: the report does not name '%s': %s",
                          what, name, desc);
        if (needle)
            ck_assert_msg(strstr(rep, needle) != NULL, "%s: the report does not say '%s': %s",
                          what, needle, desc);
        if (o->out_file) {
            ck_assert_msg(spf_same(o->out_file, SENTINEL, strlen(SENTINEL)),
                          "%s: the existing output '%s' was overwritten", what, o->out_file);
        }
        if (o->out_dir)
            ck_assert_msg(spf_count_files(o->out_dir) <= 0,
                          "%s: a refused run left %d files in '%s'", what,
                          spf_count_files(o->out_dir), o->out_dir);
    } else if (o->out_file) {
        ck_assert_msg(!spf_same(o->out_file, SENTINEL, strlen(SENTINEL)),
                      "%s: exit 0 but '%s' was not written", what, o->out_file);
    }
    if (o->out_file) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", o->out_file);
        char *s = strrchr(dir, '/');
        if (s) *s = '\0';
        ck_assert_msg(spf_count_tmp(dir) == 0, "%s: a *.tmp was left in '%s'", what, dir);
    }
    if (o->out_dir)
        ck_assert_msg(spf_count_tmp(o->out_dir) == 0, "%s: a *.tmp was left in '%s'", what,
                      o->out_dir);
    for (int k = 0; k < 3; k++) {
        if (!keep[k]) {
            ck_assert_msg(!o->keep[k] || !spf_exists(o->keep[k]), "%s: '%s' was created", what,
                          o->keep[k]);
            continue;
        }
        ck_assert_msg(spf_same(o->keep[k], keep[k], nkeep[k]), "%s: '%s' was modified", what,
                      o->keep[k]);
        free(keep[k]);
    }
    spf_free(&r);
}

/* --------------------------------------------------------- HDF5 writing */

typedef struct {
    float x[N_ROWS * L_PTS];
    int32_t y[N_ROWS];
} Base;

static void base_read(Base *b) {
    hid_t f;
    ck_assert_msg(sp_h5_open_read(fx.D, &f) == SP_OK, "%s", sp_error_message());
    ck_assert(sp_h5_read_float(f, fx.D, "/spectra", b->x, N_ROWS * L_PTS) == SP_OK);
    ck_assert(sp_h5_read_int32(f, fx.D, "/labels", b->y, N_ROWS) == SP_OK);
    sp_h5_close(f);
}

static hid_t h5_new(const char *path) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot create %s", path);
    return f;
}

/* A dataset of file type ftype from memory data of type mtype. */
static void h5_put(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank,
                   const hsize_t *dims, const void *data) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "cannot create dataset %s", name);
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (n) ck_assert(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
}

static void put_spectra(hid_t f, const float *x, hsize_t n, hsize_t L) {
    hsize_t d[2] = {n, L};
    h5_put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d, x);
}

static void put_labels(hid_t f, const int32_t *y, hsize_t n) {
    hsize_t d[1] = {n};
    h5_put(f, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d, y);
}

static void put_class_names(hid_t f) {
    const char *names[3] = {"A", "B", "C"};
    ck_assert(data_write_class_names(f, names, 3) == SP_OK);
}

/* ------------------------------------------------------- dataset cases */

typedef void (*MakeData)(const char *path, const Base *b);

static void mk_none(const char *p, const Base *b) { (void)p; (void)b; }

static void mk_zero(const char *p, const Base *b) {
    (void)b;
    ck_assert(spf_write(p, "", 0) == 0);
}

static void mk_text(const char *p, const Base *b) {
    (void)b;
    const char t[] = "wavelength,intensity\n400,0.1\n401,0.2\n";
    ck_assert(spf_write(p, t, sizeof t - 1) == 0);
}

static void mk_trunc(const char *p, const Base *b) {
    (void)b;
    size_t n;
    char *all = spf_read(fx.D, &n);
    ck_assert(all != NULL);
    ck_assert(spf_write(p, all, n / 2) == 0);
    free(all);
}

static void mk_nospectra(const char *p, const Base *b) {
    hid_t f = h5_new(p);
    put_labels(f, b->y, N_ROWS);
    H5Fclose(f);
}

static void mk_rank1(const char *p, const Base *b) {
    hid_t f = h5_new(p);
    hsize_t d[1] = {L_PTS};
    h5_put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d, b->x);
    H5Fclose(f);
}

static void mk_rank3(const char *p, const Base *b) {
    hid_t f = h5_new(p);
    hsize_t d[3] = {N_ROWS, 2, L_PTS / 2};
    h5_put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d, b->x);
    put_labels(f, b->y, N_ROWS);
    H5Fclose(f);
}

static void mk_empty(const char *p, const Base *b) {
    hid_t f = h5_new(p);
    put_spectra(f, b->x, 0, L_PTS);
    H5Fclose(f);
}

static void mk_short(const char *p, const Base *b) {
    hid_t f = h5_new(p);
    float x[N_ROWS];
    for (int i = 0; i < N_ROWS; i++) x[i] = b->x[(size_t)i * L_PTS];
    put_spectra(f, x, N_ROWS, 1);   /* 1 point: below any encoder's minimum */
    put_labels(f, b->y, N_ROWS);
    put_class_names(f);
    H5Fclose(f);
}

static void mk_int32(const char *p, const Base *b) {
    static int32_t v[N_ROWS * L_PTS];
    for (size_t i = 0; i < N_ROWS * L_PTS; i++) v[i] = (int32_t)lrintf(b->x[i] * 1000.0f);
    hid_t f = h5_new(p);
    hsize_t d[2] = {N_ROWS, L_PTS};
    h5_put(f, "/spectra", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, d, v);
    put_labels(f, b->y, N_ROWS);
    put_class_names(f);
    H5Fclose(f);
}

static void mk_uint16(const char *p, const Base *b) {
    static uint16_t v[N_ROWS * L_PTS];
    for (size_t i = 0; i < N_ROWS * L_PTS; i++) {
        float s = b->x[i] * 100.0f;
        v[i] = (uint16_t)(s < 0 ? 0 : s > 65535.0f ? 65535 : lrintf(s));
    }
    hid_t f = h5_new(p);
    hsize_t d[2] = {N_ROWS, L_PTS};
    h5_put(f, "/spectra", H5T_STD_U16BE, H5T_NATIVE_UINT16, 2, d, v);   /* big-endian on disk */
    put_labels(f, b->y, N_ROWS);
    put_class_names(f);
    H5Fclose(f);
}

static void mk_float64(const char *p, const Base *b) {
    static double v[N_ROWS * L_PTS];
    for (size_t i = 0; i < N_ROWS * L_PTS; i++) v[i] = b->x[i];
    hid_t f = h5_new(p);
    hsize_t d[2] = {N_ROWS, L_PTS};
    h5_put(f, "/spectra", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d, v);
    hsize_t dl[1] = {N_ROWS};
    h5_put(f, "/labels", H5T_STD_I64LE, H5T_NATIVE_INT32, 1, dl, b->y);   /* int64 labels */
    put_class_names(f);
    H5Fclose(f);
}

static void mk_with(const char *p, const Base *b, float bad, int64_t row, int col) {
    static float x[N_ROWS * L_PTS];
    memcpy(x, b->x, sizeof x);
    x[(size_t)row * L_PTS + (size_t)col] = bad;
    hid_t f = h5_new(p);
    put_spectra(f, x, N_ROWS, L_PTS);
    put_labels(f, b->y, N_ROWS);
    put_class_names(f);
    H5Fclose(f);
}

static void mk_nan(const char *p, const Base *b) { mk_with(p, b, NAN, 5, 17); }
static void mk_inf(const char *p, const Base *b) { mk_with(p, b, -INFINITY, 11, 200); }

static void mk_labels_len(const char *p, const Base *b) {
    hid_t f = h5_new(p);
    put_spectra(f, b->x, N_ROWS, L_PTS);
    put_labels(f, b->y, N_ROWS - 5);
    put_class_names(f);
    H5Fclose(f);
}

static void mk_labels_val(const char *p, const Base *b, int32_t v, int names) {
    int32_t y[N_ROWS];
    memcpy(y, b->y, sizeof y);
    y[3] = v;
    hid_t f = h5_new(p);
    put_spectra(f, b->x, N_ROWS, L_PTS);
    put_labels(f, y, N_ROWS);
    if (names) put_class_names(f);
    H5Fclose(f);
}

static void mk_labels_range(const char *p, const Base *b) { mk_labels_val(p, b, 7, 1); }
static void mk_labels_neg(const char *p, const Base *b) { mk_labels_val(p, b, -5, 1); }
static void mk_labels_huge(const char *p, const Base *b) { mk_labels_val(p, b, 2147483647, 0); }

static void mk_extvar_neg(const char *p, const Base *b) {
    int32_t e[N_ROWS];
    for (int i = 0; i < N_ROWS; i++) e[i] = i % 5;
    e[9] = -3;
    hid_t f = h5_new(p);
    put_spectra(f, b->x, N_ROWS, L_PTS);
    put_labels(f, b->y, N_ROWS);
    put_class_names(f);
    hsize_t d[1] = {N_ROWS};
    h5_put(f, "/extvar", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d, e);
    H5Fclose(f);
}

typedef struct {
    const char *name;   /* file name of the case (".h5") */
    MakeData make;
    int want;           /* 2: refused; 0: must work */
    int info_want;      /* `specssl info` (describes any HDF5 file) */
    const char *needle; /* the problem, as the report says it */
} DataCase;

static const DataCase DATA_CASES[] = {
    {"missing.h5", mk_none, 2, 2, "No such file"},
    {"zero_bytes.h5", mk_zero, 2, 2, "empty file"},
    {"text_file.h5", mk_text, 2, 2, "not an HDF5 file"},
    {"truncated.h5", mk_trunc, 2, 2, "truncated"},
    {"no_spectra.h5", mk_nospectra, 2, 0, "'/spectra' not found"},
    {"rank1.h5", mk_rank1, 2, 0, "rank 1"},
    {"rank3.h5", mk_rank3, 2, 0, "rank 3"},
    {"empty_spectra.h5", mk_empty, 2, 0, "empty"},
    {"too_short.h5", mk_short, 2, 0, NULL},
    {"int32.h5", mk_int32, 0, 0, NULL},
    {"uint16be.h5", mk_uint16, 0, 0, NULL},
    {"float64.h5", mk_float64, 0, 0, NULL},
    {"nan_row.h5", mk_nan, 2, 0, "NaN"},
    {"inf_row.h5", mk_inf, 2, 0, "Inf"},
    {"labels_length.h5", mk_labels_len, 2, 0, "/labels"},
    {"labels_range.h5", mk_labels_range, 2, 0, "classes"},
    {"labels_negative.h5", mk_labels_neg, 2, 0, "-5"},
    {"labels_huge.h5", mk_labels_huge, 2, 0, "2147483647"},
    {"extvar_negative.h5", mk_extvar_neg, 2, 0, "extvar"},
};
#define N_DATA_CASES ((int)(sizeof DATA_CASES / sizeof DATA_CASES[0]))

/* Every data role of every command. */
START_TEST(data_case) {
    need_fixture();
    const DataCase *c = &DATA_CASES[_i];
    char dir[1200];
    case_dir(dir, sizeof dir, spf_fmt("data_%d", _i));
    PATHF(F, "%s/%s", dir, c->name);
    static Base b;
    base_read(&b);
    c->make(F, &b);
    const char *nm = c->name;
    const int w = c->want;
    PATHF(OUT, "%s/out.h5", dir);
    PATHF(ODIR, "%s/outdir", dir);
    PATHF(RUN, "%s/run", dir);
    const Outputs of = {OUT, NULL, {F, NULL, NULL}}, od = {NULL, ODIR, {F, NULL, NULL}};
    const Outputs orun = {NULL, RUN, {F, NULL, NULL}}, keepf = {NULL, NULL, {F, NULL, NULL}};
    const char *T = fx.T, *D = fx.D, *CK = fx.CK, *TINY = fx.TINY;

    const char *info[] = {"specssl", "-q", "info", F, NULL};
    expect_run(spf_fmt("info %s", nm), info, c->info_want, nm, c->needle, &keepf);

    const char *pre[] = {"specssl", "-q", "--threads", "1", "pretrain", "-c", TINY,
                         "--data", F, "--out", RUN, NULL};
    expect_run(spf_fmt("pretrain --data %s", nm), pre, w, nm, c->needle, &orun);

    const char *emb[] = {"specssl", "-q", "--threads", "1", "embed", "--ckpt", CK,
                         "--data", F, "--out", OUT, NULL};
    expect_run(spf_fmt("embed --data %s", nm), emb, w, nm, c->needle, &of);

    const char *le1[] = {"specssl", "-q", "--threads", "1", "linear-eval", "-c", TINY, "--ckpt",
                         CK, "--train", F, "--test", T, "--out", ODIR, NULL};
    expect_run(spf_fmt("linear-eval --train %s", nm), le1, w, nm, c->needle, &od);
    const char *le2[] = {"specssl", "-q", "--threads", "1", "linear-eval", "-c", TINY, "--ckpt",
                         CK, "--train", D, "--test", F, NULL};
    expect_run(spf_fmt("linear-eval --test %s", nm), le2, w, nm, c->needle, &keepf);

    const char *su1[] = {"specssl", "-q", "--threads", "1", "supervised", "-c", TINY,
                         "--train", F, "--test", T, "--out", OUT, NULL};
    expect_run(spf_fmt("supervised --train %s", nm), su1, w, nm, c->needle, &of);
    const char *su2[] = {"specssl", "-q", "--threads", "1", "supervised", "-c", TINY,
                         "--train", D, "--test", F, "--out", OUT, NULL};
    expect_run(spf_fmt("supervised --test %s", nm), su2, w, nm, c->needle, &of);

    const char *sw1[] = {"specssl", "-q", "--threads", "1", "sweep", "-c", TINY, "--ckpt", CK,
                         "--train", F, "--test", T, "--out", ODIR, NULL};
    expect_run(spf_fmt("sweep --train %s", nm), sw1, w, nm, c->needle, &od);
    const char *sw2[] = {"specssl", "-q", "--threads", "1", "sweep", "-c", TINY, "--ckpt", CK,
                         "--train", D, "--test", F, "--out", ODIR, NULL};
    expect_run(spf_fmt("sweep --test %s", nm), sw2, w, nm, c->needle, &od);

    const char *pr1[] = {"specssl", "-q", "--threads", "1", "predict", "--model", fx.SUP,
                         "--data", F, "--out", OUT, NULL};
    expect_run(spf_fmt("predict (supervised) --data %s", nm), pr1, w, nm, c->needle, &of);
    const char *pr2[] = {"specssl", "-q", "--threads", "1", "predict", "--model", fx.PROBE,
                         "--data", F, "--out", OUT, NULL};
    expect_run(spf_fmt("predict (probe) --data %s", nm), pr2, w, nm, c->needle, &of);
    spf_rm_rf(dir);
}
END_TEST

/* Labels the model does not know are out of range for predict, even when
 * the file itself is consistent (no class_names: 4 classes inferred). */
START_TEST(data_labels_beyond_model) {
    need_fixture();
    char dir[1200];
    case_dir(dir, sizeof dir, "beyond");
    PATHF(F, "%s/four_classes.h5", dir);
    PATHF(OUT, "%s/out.h5", dir);
    static Base b;
    base_read(&b);
    mk_labels_val(F, &b, 3, 0);
    const Outputs of = {OUT, NULL, {F, NULL, NULL}};
    const char *pr[] = {"specssl", "-q", "--threads", "1", "predict", "--model", fx.SUP,
                        "--data", F, "--out", OUT, NULL};
    expect_run("predict: label 3 with a 3-class model", pr, 2, "four_classes.h5", "3 classes", &of);
    const char *pr2[] = {"specssl", "-q", "--threads", "1", "predict", "--model", fx.PROBE,
                         "--data", F, "--out", OUT, NULL};
    expect_run("predict (probe): label 3 with a 3-class model", pr2, 2, "four_classes.h5",
               "3 classes", &of);
    spf_rm_rf(dir);
}
END_TEST

/* ---------------------------------------------------- checkpoint cases */

/* Edit an HDF5 file in place (a copy made by the case). */
static hid_t h5_rw(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s for writing", path);
    return f;
}

typedef void (*MakeCk)(const char *from, const char *to);

static void ck_none(const char *from, const char *to) { (void)from; (void)to; }
static void ck_zero(const char *from, const char *to) { (void)from; mk_zero(to, NULL); }
static void ck_text(const char *from, const char *to) { (void)from; mk_text(to, NULL); }

static void ck_trunc(const char *from, const char *to) {
    size_t n;
    char *all = spf_read(from, &n);
    ck_assert(all != NULL);
    ck_assert(spf_write(to, all, n / 2) == 0);
    free(all);
}

static void ck_dataset(const char *from, const char *to) {
    (void)from;
    ck_assert(spf_copy(fx.D, to) == 0);
}

static void ck_copy(const char *from, const char *to) { ck_assert(spf_copy(from, to) == 0); }

static void ck_attr_str(const char *from, const char *to, const char *name, const char *v) {
    ck_copy(from, to);
    hid_t f = h5_rw(to);
    ck_assert(sp_h5_attr_write_str(f, "/", name, v) == SP_OK);
    H5Fclose(f);
}

static void ck_attr_int(const char *from, const char *to, const char *name, int64_t v) {
    ck_copy(from, to);
    hid_t f = h5_rw(to);
    ck_assert(sp_h5_attr_write_int64(f, "/", name, v) == SP_OK);
    H5Fclose(f);
}

static void ck_arch(const char *from, const char *to) { ck_attr_str(from, to, "arch", "resnet1d"); }
static void ck_ver_new(const char *from, const char *to) { ck_attr_int(from, to, "format_version", 99); }
static void ck_ver_old(const char *from, const char *to) { ck_attr_int(from, to, "format_version", 0); }
static void ck_format(const char *from, const char *to) { ck_attr_str(from, to, "format", "pytorch"); }

static void ck_resnet(const char *from, const char *to) {
    (void)from;
    ck_assert(spf_copy(fx.RES, to) == 0);
}

/* The first tensor of encoder_q gets one more output channel. */
static void ck_shape(const char *from, const char *to) {
    ck_copy(from, to);
    hid_t f = h5_rw(to);
    const char *t = "/encoder_q/conv0.weight";
    hid_t d = H5Dopen2(f, t, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s: no %s", from, t);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[8];
    int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    ck_assert(rank >= 1 && rank <= 8);
    dims[0] += 1;
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *z = calloc(n, sizeof(float));
    ck_assert(H5Ldelete(f, t, H5P_DEFAULT) >= 0);
    ck_assert(sp_h5_write_float(f, t, rank, dims, z, 0) == SP_OK);
    free(z);
    H5Fclose(f);
}

static void ck_missing_tensor(const char *from, const char *to) {
    ck_copy(from, to);
    hid_t f = h5_rw(to);
    ck_assert(H5Ldelete(f, "/encoder_q/conv1.bias", H5P_DEFAULT) >= 0);
    H5Fclose(f);
}

/* Byte offset of the first chunk of a chunked dataset (its data, which the
 * Fletcher-32 filter protects). */
static long long chunk_offset(const char *path, const char *dset, long long *size) {
    hid_t f;
    ck_assert(sp_h5_open_read(path, &f) == SP_OK);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s: no %s", path, dset);
    hid_t sp = H5Dget_space(d);
    hsize_t off[8];
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t sz = 0;
    ck_assert(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &sz) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    sp_h5_close(f);
    *size = (long long)sz;
    return (long long)addr;
}

/* A bit flipped inside a tensor's data. */
static void ck_flip_tensor(const char *from, const char *to) {
    ck_copy(from, to);
    long long sz;
    long long at = chunk_offset(to, "/encoder_q/conv0.weight", &sz);
    ck_assert(sz > 8);
    ck_assert(spf_flip_bit(to, at + sz / 3, 5) == 0);
}

/* A bit flipped inside the stored config text (a root attribute). */
static void ck_flip_config(const char *from, const char *to) {
    ck_copy(from, to);
    size_t n;
    char *all = spf_read(to, &n);
    ck_assert(all != NULL);
    const char *key = "proj_hidden";
    long long at = -1;
    for (size_t i = 0; i + strlen(key) <= n && at < 0; i++)
        if (!memcmp(all + i, key, strlen(key))) at = (long long)i;
    free(all);
    ck_assert_msg(at >= 0, "'%s' not found in %s", key, to);
    ck_assert(spf_flip_bit(to, at + 2, 0) == 0);
}

enum { R_INFO, R_EMBED, R_LE, R_SWEEP, R_INIT, R_RESUME, R_PREDICT, N_ROLES };

typedef struct {
    const char *name;
    MakeCk make;
    int want[N_ROLES];  /* per role */
    const char *needle;
} CkCase;

static const CkCase CK_CASES[] = {
    /*                           info emb le sw init resume predict */
    {"missing.h5", ck_none, {2, 2, 2, 2, 2, 2, 2}, NULL},
    {"zero_bytes.h5", ck_zero, {2, 2, 2, 2, 2, 2, 2}, "empty file"},
    {"text_file.h5", ck_text, {2, 2, 2, 2, 2, 2, 2}, "not an HDF5 file"},
    {"truncated.h5", ck_trunc, {2, 2, 2, 2, 2, 2, 2}, "truncated"},
    {"dataset_not_ckpt.h5", ck_dataset, {0, 2, 2, 2, 2, 2, 2}, "not a specssl checkpoint"},
    {"arch_attr_resnet.h5", ck_arch, {0, 2, 2, 2, 2, 2, 2}, "resnet1d"},
    /* a valid checkpoint of another architecture: the commands that take the
     * architecture from the checkpoint work; resuming a cnn run refuses it */
    {"other_arch.h5", ck_resnet, {0, 0, 0, 0, 0, 2, 2}, NULL},
    {"version_99.h5", ck_ver_new, {2, 2, 2, 2, 2, 2, 2}, "version 99"},
    {"version_0.h5", ck_ver_old, {2, 2, 2, 2, 2, 2, 2}, "version 0"},
    {"format_pytorch.h5", ck_format, {0, 2, 2, 2, 2, 2, 2}, "pytorch"},
    {"tensor_shape.h5", ck_shape, {0, 2, 2, 2, 2, 2, 2}, "conv0.weight"},
    {"tensor_missing.h5", ck_missing_tensor, {0, 2, 2, 2, 2, 2, 2}, "conv1.bias"},
    {"flipped_tensor.h5", ck_flip_tensor, {0, 2, 2, 2, 2, 2, 2}, "corrupted"},
    {"flipped_config.h5", ck_flip_config, {2, 2, 2, 2, 2, 2, 2}, "corrupted"},
};
#define N_CK_CASES ((int)(sizeof CK_CASES / sizeof CK_CASES[0]))

/* Every model role of every command. */
START_TEST(checkpoint_case) {
    need_fixture();
    const CkCase *c = &CK_CASES[_i];
    char dir[1200];
    case_dir(dir, sizeof dir, spf_fmt("ck_%d", _i));
    PATHF(X, "%s/%s", dir, c->name);
    c->make(fx.CK, X);
    /* the same damage to the supervised model, for predict --model */
    PATHF(mdir, "%s/model", dir);
    mkdir(mdir, 0777);
    PATHF(M, "%s/%s", mdir, c->name);
    if (c->make == ck_resnet) ck_copy(fx.RES, M); /* a pretrain checkpoint: no classifier */
    else c->make(fx.SUP, M);
    const char *nm = c->name;
    PATHF(OUT, "%s/out.h5", dir);
    PATHF(ODIR, "%s/outdir", dir);
    const Outputs keep = {NULL, NULL, {X, NULL, NULL}}, of = {OUT, NULL, {X, NULL, NULL}};
    const Outputs od = {NULL, ODIR, {X, NULL, NULL}};
    const char *D = fx.D, *T = fx.T, *TINY = fx.TINY;

    const char *info[] = {"specssl", "-q", "info", "--config", X, NULL};
    expect_run(spf_fmt("info --config %s", nm), info, c->want[R_INFO], nm, c->needle, &keep);
    const char *emb[] = {"specssl", "-q", "--threads", "1", "embed", "--ckpt", X,
                         "--data", D, "--out", OUT, NULL};
    expect_run(spf_fmt("embed --ckpt %s", nm), emb, c->want[R_EMBED], nm, c->needle, &of);
    const char *le[] = {"specssl", "-q", "--threads", "1", "linear-eval", "-c", TINY,
                        "--ckpt", X, "--train", D, "--test", T, NULL};
    expect_run(spf_fmt("linear-eval --ckpt %s", nm), le, c->want[R_LE], nm, c->needle, &keep);
    const char *sw[] = {"specssl", "-q", "--threads", "1", "sweep", "-c", TINY, "--ckpt", X,
                        "--train", D, "--test", T, "--out", ODIR, NULL};
    expect_run(spf_fmt("sweep --ckpt %s", nm), sw, c->want[R_SWEEP], nm, c->needle, &od);
    const char *init[] = {"specssl", "-q", "--threads", "1", "supervised", "-c", TINY,
                          "--init", X, "--train", D, "--test", T, "--out", OUT, NULL};
    expect_run(spf_fmt("supervised --init %s", nm), init, c->want[R_INIT], nm, c->needle, &of);

    /* --resume: a copy of the run whose checkpoint is the damaged file */
    PATHF(rdir, "%s/run", dir);
    mkdir(rdir, 0777);
    PATHF(rck, "%s/checkpoint.h5", rdir);
    PATHF(rcfg, "%s/config.cfg", rdir);
    PATHF(rmet, "%s/metrics.jsonl", rdir);
    PATHF(src_cfg, "%s/config.cfg", fx.RUN);
    PATHF(src_met, "%s/metrics.jsonl", fx.RUN);
    ck_assert(spf_copy(src_cfg, rcfg) == 0);
    ck_assert(spf_copy(src_met, rmet) == 0);
    if (spf_exists(X)) ck_assert(spf_copy(X, rck) == 0);
    const Outputs ores = {NULL, NULL, {rck, rmet, rcfg}};
    const char *res[] = {"specssl", "-q", "--threads", "1", "pretrain", "-c", rcfg, "--data", D,
                         "--out", rdir, "--resume", "--set", "train.epochs=2", NULL};
    expect_run(spf_fmt("pretrain --resume from %s", nm), res, c->want[R_RESUME], "checkpoint.h5",
               c->needle, &ores);

    const Outputs om = {OUT, NULL, {M, NULL, NULL}};
    const char *pr[] = {"specssl", "-q", "--threads", "1", "predict", "--model", M,
                        "--data", D, "--out", OUT, NULL};
    expect_run(spf_fmt("predict --model %s", nm), pr, c->want[R_PREDICT], nm,
               c->make == ck_resnet ? "classifier" : c->needle, &om);
    spf_rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------- configs */

typedef struct {
    const char *file;    /* config file name; NULL: use the tiny config + sets */
    const char *text;    /* its contents (NULL: file not created) */
    const char *set[2];  /* --set overrides (or NULL) */
    const char *name;    /* what the report must name: the file or the key */
    const char *needle;
    int pretrain_only;   /* the constraint only exists for pretraining */
} CfgCase;

static const CfgCase CFG_CASES[] = {
    {"syntax.cfg", "optim = { lr = 0.05 \n", {NULL, NULL}, "syntax.cfg", "syntax error", 0},
    {"unknown_key.cfg", "optim = { lrr = 0.05; };\n", {NULL, NULL}, "optim.lrr", "unknown key", 0},
    {"wrong_type.cfg", "optim = { lr = \"fast\"; };\n", {NULL, NULL}, "optim.lr", "float", 0},
    {"lr_negative.cfg", "optim = { lr = -0.1; };\n", {NULL, NULL}, "optim.lr", "range", 0},
    {"lr_zero.cfg", "optim = { lr = 0.0; };\n", {NULL, NULL}, "optim.lr", "range", 0},
    {"lr_int_zero.cfg", "optim = { lr = 0; };\n", {NULL, NULL}, "optim.lr", "range", 0},
    {"views_1.cfg", "pretext = { rr = { views = 1; }; };\n", {NULL, NULL}, "pretext.rr.views",
     "range", 0},
    {"not_there.cfg", NULL, {NULL, NULL}, "not_there.cfg", "No such file", 0},
    {NULL, NULL, {"optim.lrr=0.1", NULL}, "optim.lrr", "unknown key", 0},
    {NULL, NULL, {"optim.lr=fast", NULL}, "optim.lr", NULL, 0},
    {NULL, NULL, {"optim.lr=-1", NULL}, "optim.lr", "range", 0},
    {NULL, NULL, {"train.batch_size=64", NULL}, "train.batch_size", "24 spectra", 1},
    {NULL, NULL, {"pretext.moco.queue=8", NULL}, "pretext.moco.queue", "keys", 1},
    {NULL, NULL, {"pretext.rr.views=1", NULL}, "pretext.rr.views", "range", 0},
};
#define N_CFG_CASES ((int)(sizeof CFG_CASES / sizeof CFG_CASES[0]))

/* argv: head..., [-c cfg], [--set s]..., NULL */
static const char **with_cfg(const char **av, int n, const char *cfg, const char *const *set) {
    static const char *buf[64];
    int k = 0;
    for (int i = 0; i < n; i++) buf[k++] = av[i];
    buf[k++] = "-c";
    buf[k++] = cfg;
    for (int i = 0; i < 2; i++)
        if (set[i]) {
            buf[k++] = "--set";
            buf[k++] = set[i];
        }
    buf[k] = NULL;
    return buf;
}

START_TEST(config_case) {
    need_fixture();
    const CfgCase *c = &CFG_CASES[_i];
    char dir[1200];
    case_dir(dir, sizeof dir, spf_fmt("cfg_%d", _i));
    const char *cfg = fx.TINY;
    if (c->file) {
        static char cfg_buf[1400];
        snprintf(cfg_buf, sizeof cfg_buf, "%s/%s", dir, c->file);
        cfg = cfg_buf;
        if (c->text) ck_assert(spf_write(cfg, c->text, strlen(c->text)) == 0);
    }
    PATHF(OUT, "%s/out.h5", dir);
    PATHF(ODIR, "%s/outdir", dir);
    PATHF(RUN, "%s/run", dir);
    const char *keepc = c->text ? cfg : NULL;
    const Outputs of = {OUT, NULL, {keepc, NULL, NULL}}, od = {NULL, ODIR, {keepc, NULL, NULL}};
    const Outputs orun = {NULL, RUN, {keepc, NULL, NULL}}, none = {NULL, NULL, {keepc, NULL, NULL}};
    const char *what = c->file ? c->file : c->set[0];

    const char *pre[] = {"specssl", "-q", "--threads", "1", "pretrain", "--data", fx.D,
                         "--out", RUN};
    expect_run(spf_fmt("pretrain: %s", what), with_cfg(pre, 9, cfg, c->set), 2, c->name,
               c->needle, &orun);
    if (c->pretrain_only) {
        spf_rm_rf(dir);
        return;
    }
    const char *emb[] = {"specssl", "-q", "--threads", "1", "embed", "--ckpt", fx.CK,
                         "--data", fx.D, "--out", OUT};
    expect_run(spf_fmt("embed: %s", what), with_cfg(emb, 11, cfg, c->set), 2, c->name, c->needle,
               &of);
    const char *le[] = {"specssl", "-q", "--threads", "1", "linear-eval", "--ckpt", fx.CK,
                        "--train", fx.D, "--test", fx.T, "--out", ODIR};
    expect_run(spf_fmt("linear-eval: %s", what), with_cfg(le, 13, cfg, c->set), 2, c->name,
               c->needle, &od);
    const char *su[] = {"specssl", "-q", "--threads", "1", "supervised", "--train", fx.D,
                        "--test", fx.T, "--out", OUT};
    expect_run(spf_fmt("supervised: %s", what), with_cfg(su, 11, cfg, c->set), 2, c->name,
               c->needle, &of);
    const char *sw[] = {"specssl", "-q", "--threads", "1", "sweep", "--ckpt", fx.CK,
                        "--train", fx.D, "--test", fx.T, "--out", ODIR};
    expect_run(spf_fmt("sweep: %s", what), with_cfg(sw, 13, cfg, c->set), 2, c->name, c->needle,
               &od);
    const char *pr[] = {"specssl", "-q", "--threads", "1", "predict", "--model", fx.SUP,
                        "--data", fx.D, "--out", OUT};
    expect_run(spf_fmt("predict: %s", what), with_cfg(pr, 11, cfg, c->set), 2, c->name,
               c->needle, &of);
    if (c->file) {
        const char *chk[] = {"specssl", "-q", "config", "--check", cfg, NULL};
        expect_run(spf_fmt("config --check %s", what), chk, 2, c->name, c->needle, &none);
    } else {
        const char *eff[] = {"specssl", "-q", "config", "-o", OUT};
        expect_run(spf_fmt("config -o: %s", what), with_cfg(eff, 5, cfg, c->set), 2, c->name,
                   c->needle, &of);
    }
    spf_rm_rf(dir);
}
END_TEST

/* --------------------------------------------------------------- synth */

START_TEST(synth_options) {
    need_fixture();
    char dir[1200];
    case_dir(dir, sizeof dir, "synth");
    PATHF(OUT, "%s/out.h5", dir);
    const Outputs of = {OUT, NULL, {NULL, NULL, NULL}};
    static const struct {
        const char *args[6];
        const char *name;
    } bad[] = {
        {{"ramp", "--frames-slow", "0", NULL}, "--frames-slow"},
        {{"ramp", "--frames-fast", "-3", NULL}, "--frames-fast"},
        {{"ramp", "--length", "1", NULL}, "--length"},
        {{"ramp", "--length", "99999999999", NULL}, "--length"},
        {{"ramp", "--ramps", "0", NULL}, "--ramps"},
        {{"ramp", "--noise", "lorentz", NULL}, "--noise"},
        {{"ramp", "--seed", "abc", NULL}, "--seed"},
        {{"ramp", "--normalise", "max", NULL}, "--normalise"},
        {{"schuetzke", "--split", "dev", NULL}, "--split"},
        {{"schuetzke", "--normalise", "l2", NULL}, "--normalise"},
        {{"tetris", NULL}, "tetris"},
        {{"ramp", "--bogus", NULL}, "--bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *av[16];
        int k = 0;
        av[k++] = "specssl";
        av[k++] = "-q";
        av[k++] = "synth";
        for (int j = 0; bad[i].args[j]; j++) av[k++] = bad[i].args[j];
        av[k++] = "--out";
        av[k++] = OUT;
        av[k] = NULL;
        expect_run(spf_fmt("synth %s %s", bad[i].args[0], bad[i].name), av, 2, bad[i].name, NULL,
                   &of);
    }
    /* an output folder that does not exist / a path through a regular file:
     * a runtime error naming the path, nothing created */
    PATHF(nodir, "%s/no/such/dir/x.h5", dir);
    const char *a1[] = {"specssl", "-q", "synth", "ramp", "--frames-slow", "4", "--frames-fast",
                        "4", "--length", "64", "--out", nodir, NULL};
    expect_run("synth into a missing folder", a1, 1, "no/such/dir/x.h5", NULL, NULL);
    PATHF(through, "%s/x.h5", fx.D);
    const char *a2[] = {"specssl", "-q", "synth", "ramp", "--frames-slow", "4", "--frames-fast",
                        "4", "--length", "64", "--out", through, NULL};
    const Outputs kd = {NULL, NULL, {fx.D, NULL, NULL}};
    expect_run("synth under a regular file", a2, 1, "x.h5", NULL, &kd);
    /* and a valid call works */
    const char *ok[] = {"specssl", "-q", "synth", "ramp", "--frames-slow", "4", "--frames-fast",
                        "4", "--length", "64", "--out", OUT, NULL};
    expect_run("synth ramp (valid)", ok, 0, NULL, NULL, &of);
    spf_rm_rf(dir);
}
END_TEST

/* -------------------------------------------------------- import-torch */

START_TEST(import_inputs) {
    need_fixture();
    char dir[1200];
    case_dir(dir, sizeof dir, "import");
    const char *BIN = sp_fixture("convsc/backbone_last.f32.bin");
    const char *MAN = sp_fixture("convsc/backbone_last.f32.manifest.tsv");
    PATHF(OUT, "%s/imported.h5", dir);
    const Outputs of = {OUT, NULL, {NULL, NULL, NULL}};
    PATHF(missing, "%s/missing.f32.bin", dir);
    PATHF(zero, "%s/zero.f32.bin", dir);
    PATHF(text, "%s/text.f32.bin", dir);
    PATHF(trunc, "%s/trunc.f32.bin", dir);
    PATHF(odd, "%s/odd.f32.bin", dir);
    mk_zero(zero, NULL);
    mk_text(text, NULL);
    size_t n;
    char *bin = spf_read(BIN, &n);
    ck_assert(bin != NULL && n > 4096);
    ck_assert(spf_write(trunc, bin, n - 4096) == 0);
    ck_assert(spf_write(odd, bin, n - 3) == 0);
    free(bin);
    const char *bins[][2] = {{missing, "No such file"}, {zero, "truncated"}, {text, NULL},
                             {trunc, "truncated"},       {odd, "float32"}};
    for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++) {
        const char *av[] = {"specssl", "-q", "import-torch", "--bin", bins[i][0], "--manifest",
                            MAN, "--out", OUT, NULL};
        expect_run(spf_fmt("import-torch --bin %s", base_name(bins[i][0])), av, 2,
                   base_name(bins[i][0]), bins[i][1], &of);
    }
    PATHF(mmissing, "%s/missing.tsv", dir);
    PATHF(mzero, "%s/zero.tsv", dir);
    PATHF(mtext, "%s/text.tsv", dir);
    PATHF(mh5, "%s/hdf5.tsv", dir);
    mk_zero(mzero, NULL);
    mk_text(mtext, NULL);
    ck_assert(spf_copy(fx.D, mh5) == 0);
    const char *mans[][2] = {{mmissing, "No such file"}, {mzero, NULL}, {mtext, "columns"},
                             {mh5, NULL}};
    for (size_t i = 0; i < sizeof mans / sizeof mans[0]; i++) {
        const char *av[] = {"specssl", "-q", "import-torch", "--bin", BIN, "--manifest",
                            mans[i][0], "--out", OUT, NULL};
        expect_run(spf_fmt("import-torch --manifest %s", base_name(mans[i][0])), av, 2,
                   base_name(mans[i][0]), mans[i][1], &of);
    }
    const char *ok[] = {"specssl", "-q", "import-torch", "--bin", BIN, "--manifest", MAN,
                        "--out", OUT, NULL};
    expect_run("import-torch (valid)", ok, 0, NULL, NULL, &of);
    spf_rm_rf(dir);
}
END_TEST

/* ---------------------------------------------------------------- fuzz */

/* Seeded random bit flips anywhere in a checkpoint / model: the commands
 * either work (the flips hit bytes they never read) or refuse with exit 2
 * naming the file; never a crash, never a modified output. */
START_TEST(fuzz_flips) {
    need_fixture();
    char dir[1200];
    case_dir(dir, sizeof dir, spf_fmt("fuzz_%d", _i));
    PATHF(X, "%s/flipped.h5", dir);
    PATHF(M, "%s/flipped_model.h5", dir);
    PATHF(OUT, "%s/out.h5", dir);
    SpRng rng;
    sp_rng_stream(&rng, 0x5eedf11bULL, (uint64_t)_i, 0, 0);
    for (int k = 0; k < 2; k++) {
        const char *from = k ? fx.SUP : fx.CK, *to = k ? M : X;
        ck_assert(spf_copy(from, to) == 0);
        long long size = spf_file_size(to);
        for (int j = 0; j < 3; j++)
            ck_assert(spf_flip_bit(to, (long long)sp_rng_below(&rng, (int64_t)size),
                                   (int)sp_rng_below(&rng, 8)) == 0);
    }
    const Outputs of = {OUT, NULL, {X, NULL, NULL}}, om = {OUT, NULL, {M, NULL, NULL}};
    const char *cmds[3][16] = {
        {"specssl", "-q", "info", "--config", X, NULL},
        {"specssl", "-q", "--threads", "1", "embed", "--ckpt", X, "--data", fx.D, "--out", OUT,
         NULL},
        {"specssl", "-q", "--threads", "1", "predict", "--model", M, "--data", fx.D, "--out", OUT,
         NULL},
    };
    for (int c = 0; c < 3; c++) {
        SpfResult r;
        const Outputs *o = c == 0 ? NULL : c == 1 ? &of : &om;
        if (o) ck_assert(spf_write(OUT, SENTINEL, strlen(SENTINEL)) == 0);
        spf_run(&r, cmds[c], NULL);
        const char *desc = spf_describe(&r);
        ck_assert_msg(r.signaled == 0, "seed %d, %s: crashed: %s", _i, cmds[c][c ? 4 : 2], desc);
        ck_assert_msg(spf_bad_trace(r.err) == NULL, "seed %d: %s", _i, desc);
        ck_assert_msg(r.status == 0 || r.status == 2, "seed %d: exit 0 or 2 expected: %s", _i,
                      desc);
        if (r.status == 2) {
            const char *fname = c == 2 ? "flipped_model.h5" : "flipped.h5";
            int lines = spf_error_lines(r.err);
            ck_assert_msg(lines >= 1 && lines <= 2 && strstr(r.err, fname),
                          "seed %d: the report must name '%s' in 1..2 lines: %s", _i, fname, desc);
            if (o)
                ck_assert_msg(spf_same(OUT, SENTINEL, strlen(SENTINEL)),
                              "seed %d: refused, but the output was overwritten", _i);
        }
        ck_assert(spf_count_tmp(dir) == 0);
        spf_free(&r);
    }
    spf_rm_rf(dir);
}
END_TEST

#define N_FUZZ 16

int main(void) {
    fixture_setup();
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, data_case, 0, N_DATA_CASES);
    tcase_add_test(tc, data_labels_beyond_model);
    suite_add_tcase(s, tc);
    tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, checkpoint_case, 0, N_CK_CASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("config");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, config_case, 0, N_CFG_CASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("synth");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, synth_options);
    suite_add_tcase(s, tc);
    tc = tcase_create("import");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, import_inputs);
    suite_add_tcase(s, tc);
    tc = tcase_create("fuzz");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, fuzz_flips, 0, N_FUZZ);
    suite_add_tcase(s, tc);
    int rc = sp_run_suite(s);
    sp_tmpdir_cleanup();
    return rc;
}
