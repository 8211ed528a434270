/* test_sweep: the CLI commands linear-eval, sweep, supervised and predict on
 * a tiny problem: report files with the right columns and rows, a
 * well-formed SVG, split indices shared between the probe and the supervised
 * baseline, and predict round trips (probe and supervised model). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_checkpoint.h"
#include "sp_linear_eval.h"
#include "sp_test.h"

enum { L = 48, C = 3 };

static char g_dir[1024];

static const char *tpath(const char *name) {
    static char buf[32][1200];
    static int k = 0;
    k = (k + 1) % 32;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "missing output file %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static int count_fields(const char *line) {
    int n = 1;
    for (; *line && *line != '\n'; line++) n += *line == ',';
    return n;
}

static const char k_cfg[] =
    "encoder = { arch = \"cnn\"; cnn = { channels = [6, 8]; kernels = [5, 3]; strides = [1, 1];\n"
    "  padding = [2, 1]; pool = [2, 0]; batchnorm = true; }; };\n"
    "linear_eval = { val_per_class = 2; l2_grid = [1e-3, 1e-1, 10.0]; knn_k = 5; };\n"
    "supervised = { epochs = 2; batch_size = 8; };\n"
    "sweep = { labels_per_class = [1, 3]; seeds = 2;\n"
    "  methods = [\"probe\", \"knn\", \"random_probe\", \"supervised:cnn\"]; };\n";

static void make_files(void) {
    snprintf(g_dir, sizeof g_dir, "%s", sp_tmpdir());
    sp_core_config_register();
    data_config_register();
    augment_config_register();
    encoder_config_register();
    linear_eval_config_register();
    /* data: class c has a sine of frequency 1 + 2c plus noise */
    const int ntr = 30, nte = 15;
    for (int part = 0; part < 2; part++) {
        int n = part ? nte : ntr;
        float *x = malloc(sizeof(float) * n * L);
        int32_t *y = malloc(sizeof(int32_t) * n);
        sp_fill_uniform_f(x, (size_t)n * L, 10 + part, -0.3, 0.3);
        for (int i = 0; i < n; i++) {
            y[i] = i % C;
            for (int t = 0; t < L; t++)
                x[i * L + t] += (float)sin(2 * 3.14159265 * (1 + 2 * y[i]) * t / L + i);
        }
        SpDatasetOut d = {x, n, L, y, NULL, NULL, NULL, 0, "test"};
        ck_assert_int_eq(dataset_write(tpath(part ? "test.h5" : "train.h5"), &d), SP_OK);
        free(x);
        free(y);
    }
    write_text(tpath("run.cfg"), k_cfg);
    /* a "pretrained" checkpoint: a random encoder with its config and norm */
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, tpath("run.cfg"), NULL, 0) == SP_OK, "%s", sp_error_message());
    SpRng rng;
    sp_rng_stream(&rng, 77, 0, 0, 0);
    SpEncoder *e = NULL;
    ck_assert_int_eq(encoder_create(&e, c, &rng), SP_OK);
    SpNorm nm;
    memset(&nm, 0, sizeof nm);
    nm.kind = SP_NORM_GLOBAL_MINMAX;
    nm.L = L;
    nm.gmin = -1.5;
    nm.gmax = 1.5;
    nm.count = 30;
    char *text = sp_config_dump(c);
    SpH5Writer w;
    ck_assert_int_eq(ckpt_begin(&w, tpath("ckpt.h5"), "pretrain", "cnn", text, 1, 1), SP_OK);
    ck_assert_int_eq(encoder_save(e, w.f, SP_GROUP_ENCODER_Q), SP_OK);
    ck_assert_int_eq(norm_save(&nm, w.f, SP_GROUP_NORM), SP_OK);
    ck_assert_int_eq(ckpt_commit(&w), SP_OK);
    free(text);
    encoder_destroy(&e);
    sp_config_free(c);
}

/* Minimal XML well-formedness: declaration, balanced tags with matching
 * names, quoted attributes, no stray '<' or '&' in text. */
static void check_xml(const char *s, const char *what) {
    const char *stack[256];
    size_t lens[256];
    int depth = 0, elements = 0;
    ck_assert_msg(!strncmp(s, "<?xml", 5), "%s: no XML declaration", what);
    s = strstr(s, "?>");
    ck_assert_ptr_nonnull(s);
    s += 2;
    while (*s) {
        if (*s == '&') {
            const char *semi = strchr(s, ';');
            ck_assert_msg(semi && semi - s < 10, "%s: bare '&'", what);
            s = semi + 1;
            continue;
        }
        if (*s != '<') {
            ck_assert_msg(*s != '>', "%s: stray '>'", what);
            s++;
            continue;
        }
        int closing = s[1] == '/';
        const char *name = s + 1 + closing;
        size_t nl = strcspn(name, " \t\n/>");
        ck_assert_msg(nl > 0, "%s: empty tag name", what);
        const char *p = name + nl;
        while (*p && *p != '>') {   /* attributes */
            if (*p == '"') {
                const char *q = strchr(p + 1, '"');
                ck_assert_msg(q != NULL, "%s: unterminated attribute", what);
                ck_assert_msg(memchr(p + 1, '<', (size_t)(q - p - 1)) == NULL, "%s: '<' in an "
                              "attribute", what);
                p = q + 1;
                continue;
            }
            ck_assert_msg(*p != '<', "%s: '<' inside a tag", what);
            p++;
        }
        ck_assert_msg(*p == '>', "%s: unterminated tag", what);
        int self = p[-1] == '/';
        if (closing) {
            ck_assert_msg(depth > 0, "%s: closing tag without opening", what);
            depth--;
            ck_assert_msg(lens[depth] == nl && !strncmp(stack[depth], name, nl),
                          "%s: </%.*s> closes <%.*s>", what, (int)nl, name, (int)lens[depth],
                          stack[depth]);
        } else {
            elements++;
            if (!self) {
                ck_assert_int_lt(depth, 256);
                stack[depth] = name;
                lens[depth++] = nl;
            }
        }
        s = p + 1;
    }
    ck_assert_msg(depth == 0, "%s: %d unclosed elements", what, depth);
    ck_assert_int_gt(elements, 10);
}

START_TEST(sweep_reports) {
    make_files();
    char out[65536];
    const char *argv[] = {"specssl", "sweep", "-c", tpath("run.cfg"), "--ckpt", tpath("ckpt.h5"),
                          "--train", tpath("train.h5"), "--test", tpath("test.h5"), "--out",
                          tpath("sw"), NULL};
    int rc = sp_run_cli(out, sizeof out, argv);
    ck_assert_msg(rc == 0, "sweep failed (%d):\n%s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "frozen-encoder check"));
    /* sweep.csv: header + 2 budgets x 2 seeds x 4 methods, 13 columns */
    char *csv = read_text(tpath("sw/sweep.csv"));
    ck_assert_int_eq(count_lines(csv), 1 + 2 * 2 * 4);
    ck_assert(!strncmp(csv, "method,budget,labels_per_class,fraction,seed,n_train,n_val,n_test,"
                       "test_acc,macro_f1,train_seconds,val_acc,selected\n", 111));
    for (const char *l = csv; *l; l = strchr(l, '\n') + 1) ck_assert_int_eq(count_fields(l), 13);
    ck_assert_ptr_nonnull(strstr(csv, "\nsupervised:cnn,3,3,0,9,9,6,15,"));   /* 3 x 3 train, 2 x 3 val */
    ck_assert_ptr_nonnull(strstr(csv, "\nprobe,1,1,0,8,3,6,15,"));
    free(csv);
    char *sum = read_text(tpath("sw/sweep_summary.csv"));
    ck_assert_int_eq(count_lines(sum), 1 + 2 * 4);
    for (const char *l = sum; *l; l = strchr(l, '\n') + 1) ck_assert_int_eq(count_fields(l), 11);
    free(sum);
    char *md = read_text(tpath("sw/sweep.md"));
    ck_assert_ptr_nonnull(strstr(md, "| labels per class | probe | knn | random_probe | "
                                     "supervised:cnn |"));
    ck_assert_ptr_nonnull(strstr(md, "\n| 1 |"));
    ck_assert_ptr_nonnull(strstr(md, "\n| 3 |"));
    free(md);
    char *svg = read_text(tpath("sw/sweep.svg"));
    check_xml(svg, "sweep.svg");
    ck_assert_ptr_nonnull(strstr(svg, "<polyline"));
    ck_assert_ptr_nonnull(strstr(svg, "test accuracy (%)"));
    ck_assert_ptr_nonnull(strstr(svg, ">supervised:cnn</text>"));
    free(svg);
    char *cf = read_text(tpath("sw/confusion.csv"));
    ck_assert_int_eq(count_lines(cf), 2 + C);
    free(cf);
    char *cs = read_text(tpath("sw/confusion.svg"));
    check_xml(cs, "confusion.svg");
    free(cs);
    /* split indices: every run's subset, repeatable */
    hid_t f;
    ck_assert_int_eq(sp_h5_open_read(tpath("sw/splits.h5"), &f), SP_OK);
    int64_t tr[16];
    ck_assert_int_eq(sp_h5_read_int64(f, "splits.h5", "labels_3/seed_9/train_indices", tr, 9),
                     SP_OK);
    ck_assert_int_eq(sp_h5_read_int64(f, "splits.h5", "labels_1/seed_8/val_indices", tr, 6), SP_OK);
    sp_h5_close(f);
    sp_tmpdir_cleanup();
}
END_TEST

static double acc_of_predictions(const char *pred_path, const char *data_path, int n) {
    hid_t f;
    int32_t p[64], y[64];
    ck_assert_int_eq(sp_h5_open_read(pred_path, &f), SP_OK);
    ck_assert_int_eq(sp_h5_read_int32(f, pred_path, "/predictions", p, (size_t)n), SP_OK);
    float prob[64 * C];
    ck_assert_int_eq(sp_h5_read_float(f, pred_path, "/probabilities", prob, (size_t)n * C), SP_OK);
    for (int i = 0; i < n; i++) {
        float s = prob[i * C] + prob[i * C + 1] + prob[i * C + 2];
        ck_assert_msg(fabsf(s - 1) < 1e-5f, "row %d: probabilities sum to %g", i, s);
        int am = 0;
        for (int c = 1; c < C; c++)
            if (prob[i * C + c] > prob[i * C + am]) am = c;
        ck_assert_int_eq(am, p[i]);
    }
    sp_h5_close(f);
    ck_assert_int_eq(sp_h5_open_read(data_path, &f), SP_OK);
    ck_assert_int_eq(sp_h5_read_int32(f, data_path, "/labels", y, (size_t)n), SP_OK);
    sp_h5_close(f);
    int ok = 0;
    for (int i = 0; i < n; i++) ok += p[i] == y[i];
    return ok / (double)n;
}

/* Test accuracy of `method` at seed 8 from a sweep.csv. */
static double csv_acc(const char *csv_path, const char *method) {
    char *csv = read_text(csv_path);
    char key[64];
    snprintf(key, sizeof key, "\n%s,", method);
    const char *l = strstr(csv, key);
    ck_assert_ptr_nonnull(l);
    const char *p = l + 1;
    for (int k = 0; k < 8; k++) p = strchr(p, ',') + 1;   /* field 9: test_acc */
    double a = atof(p);
    free(csv);
    return a;
}

START_TEST(probe_and_supervised_share_split_and_predict) {
    make_files();
    char out[65536];
    const char *le[] = {"specssl", "linear-eval", "-c", tpath("run.cfg"), "--ckpt",
                        tpath("ckpt.h5"), "--train", tpath("train.h5"), "--test", tpath("test.h5"),
                        "--labels-per-class", "3", "--seeds", "1", "--out", tpath("le"), NULL};
    int rc = sp_run_cli(out, sizeof out, le);
    ck_assert_msg(rc == 0, "linear-eval failed (%d):\n%s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "| 3 |"));
    const char *sv[] = {"specssl", "supervised", "-c", tpath("run.cfg"), "--arch", "cnn",
                        "--train", tpath("train.h5"), "--test", tpath("test.h5"),
                        "--labels-per-class", "3", "--seed", "8", "--out", tpath("sup.h5"), NULL};
    rc = sp_run_cli(out, sizeof out, sv);
    ck_assert_msg(rc == 0, "supervised failed (%d):\n%s", rc, out);
    const char *acc_line = strstr(out, "test: 15 spectra, accuracy ");
    ck_assert_ptr_nonnull(acc_line);
    double sup_acc = atof(acc_line + strlen("test: 15 spectra, accuracy "));
    /* the same labelled rows (train and validation) */
    hid_t f;
    int64_t a[16], b[16];
    ck_assert_int_eq(sp_h5_open_read(tpath("le/splits.h5"), &f), SP_OK);
    ck_assert_int_eq(sp_h5_read_int64(f, "splits", "labels_3/seed_8/train_indices", a, 9), SP_OK);
    ck_assert_int_eq(sp_h5_read_int64(f, "splits", "labels_3/seed_8/val_indices", a + 9, 6), SP_OK);
    sp_h5_close(f);
    ck_assert_int_eq(sp_h5_open_read(tpath("sup.h5"), &f), SP_OK);
    ck_assert_int_eq(sp_h5_read_int64(f, "sup.h5", "split/train_indices", b, 9), SP_OK);
    ck_assert_int_eq(sp_h5_read_int64(f, "sup.h5", "split/val_indices", b + 9, 6), SP_OK);
    sp_h5_close(f);
    for (int i = 0; i < 15; i++) ck_assert_int_eq(a[i], b[i]);
    /* predict with the saved probe: the same test accuracy as in the run */
    const char *pp[] = {"specssl", "predict", "--model", tpath("le/probe_3_s8.h5"), "--data",
                        tpath("test.h5"), "--out", tpath("pred.h5"), NULL};
    rc = sp_run_cli(out, sizeof out, pp);
    ck_assert_msg(rc == 0, "predict (probe) failed (%d):\n%s", rc, out);
    double pa = acc_of_predictions(tpath("pred.h5"), tpath("test.h5"), 15);
    double ca = csv_acc(tpath("le/sweep.csv"), "probe");
    ck_assert_msg(fabs(pa - ca) < 1e-9, "probe: predict gives %.6f, linear-eval reported %.6f", pa,
                  ca);
    /* predict with the supervised model */
    const char *ps[] = {"specssl", "predict", "--model", tpath("sup.h5"), "--data",
                        tpath("test.h5"), "--out", tpath("pred2.h5"), NULL};
    rc = sp_run_cli(out, sizeof out, ps);
    ck_assert_msg(rc == 0, "predict (supervised) failed (%d):\n%s", rc, out);
    double sa = acc_of_predictions(tpath("pred2.h5"), tpath("test.h5"), 15);
    ck_assert_msg(fabs(sa - sup_acc) < 1e-4, "supervised: predict gives %.6f, training reported "
                  "%.6f", sa, sup_acc);
    sp_tmpdir_cleanup();
}
END_TEST

START_TEST(cli_errors) {
    make_files();
    char out[16384];
    /* unknown method */
    write_text(tpath("bad.cfg"), "sweep = { methods = [\"probe\", \"supervised:nope\"]; };\n");
    const char *a1[] = {"specssl", "sweep", "-c", tpath("bad.cfg"), "--ckpt", tpath("ckpt.h5"),
                        "--train", tpath("train.h5"), "--test", tpath("test.h5"), "--out",
                        tpath("x"), NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a1), 2);
    ck_assert_ptr_nonnull(strstr(out, "supervised:nope"));
    /* missing data file */
    const char *a2[] = {"specssl", "linear-eval", "--ckpt", tpath("ckpt.h5"), "--train",
                        tpath("nothere.h5"), "--test", tpath("test.h5"), NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a2), 2);
    ck_assert_ptr_nonnull(strstr(out, "nothere.h5"));
    /* both budget options */
    const char *a3[] = {"specssl", "linear-eval", "--ckpt", tpath("ckpt.h5"), "--train",
                        tpath("train.h5"), "--test", tpath("test.h5"), "--labels-per-class", "2",
                        "--fraction", "0.5", NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a3), 2);
    /* predict on a checkpoint without a classifier */
    const char *a4[] = {"specssl", "predict", "--model", tpath("ckpt.h5"), "--data",
                        tpath("test.h5"), "--out", tpath("p.h5"), NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a4), 2);
    ck_assert_ptr_nonnull(strstr(out, "without a classifier"));
    /* no partial output under the final name */
    FILE *fp = fopen(tpath("p.h5"), "rb");
    ck_assert_ptr_null(fp);
    sp_tmpdir_cleanup();
}
END_TEST


/* The demo end to end at a toy size: data, pretraining, sweep, report. */
START_TEST(demo_tiny) {
    snprintf(g_dir, sizeof g_dir, "%s", sp_tmpdir());
    char out[65536];
    const char *argv[] = {"specssl", "demo", "--out", tpath("demo"), "--length", "256",
                          "--epochs", "1", "--set", "sweep.seeds=1",
                          "--set", "sweep.labels_per_class=[2]", "--set", "supervised.epochs=1",
                          "--set", "train.knn_every=0", NULL};
    int rc = sp_run_cli(out, sizeof out, argv);
    ck_assert_msg(rc == 0, "demo failed (%d):\n%s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "| labels per class | probe | knn | random_probe | "
                                      "supervised:convsc |"));
    ck_assert_ptr_nonnull(strstr(out, "frozen-encoder check"));
    char *csv = read_text(tpath("demo/sweep/sweep.csv"));
    ck_assert_int_eq(count_lines(csv), 1 + 4);
    free(csv);
    char *svg = read_text(tpath("demo/sweep/sweep.svg"));
    check_xml(svg, "demo sweep.svg");
    free(svg);
    FILE *f = fopen(tpath("demo/pretrain/checkpoint.h5"), "rb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    /* a second run continues (reuses) the pretraining run instead of failing */
    rc = sp_run_cli(out, sizeof out, argv);
    ck_assert_msg(rc == 0, "second demo run failed (%d):\n%s", rc, out);
    sp_tmpdir_cleanup();
}
END_TEST

int main(void) {
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, sweep_reports);
    tcase_add_test(tc, probe_and_supervised_share_split_and_predict);
    tcase_add_test(tc, demo_tiny);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, cli_errors);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
