/* test_convsc_parity: the convsc encoder on the published SpecRRMoco weights
 * against the PyTorch reference fixtures (tests/fixtures/convsc/README.md),
 * with the tolerances of the parity README:
 * - forward: eval-mode features (abs 3e-5), projections (abs 1e-6), linear
 *   probe logits (abs 3e-5);
 * - train: split BN (8 interleaved splits), batch8 and batch16: features
 *   (abs 1e-5), the 23 parameter gradients of loss = sum(feature * R) (per
 *   tensor max abs <= 2e-5 G; the four exactly-zero gradients |g| <= 3e-4 G;
 *   conv1.1.weight[55] abs 0.25), running statistics after the step
 *   (<= 5e-7 (|ref| + max|ref|));
 * - io: import invariants, the imported checkpoint's contents;
 * - errors: truncated bin, missing tensor, wrong count, bad queue (exit 2);
 * - cli: `specssl import-torch` then `specssl embed` on parity_input.h5.
 */
#define _XOPEN_SOURCE 700   /* realpath */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_checkpoint.h"
#include "sp_config.h"
#include "sp_encoder.h"
#include "sp_h5.h"
#include "sp_test.h"

#define FX(name) sp_fixture("convsc/" name)
#define BIN FX("backbone_last.f32.bin")
#define MAN FX("backbone_last.f32.manifest.tsv")
#define LBIN FX("linear_best.f32.bin")
#define LMAN FX("linear_best.f32.manifest.tsv")
#define L4020 4020

static SpConfig *ref_cfg(void) {
    sp_core_config_register();
    encoder_config_register();
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, NULL, NULL, 0) == SP_OK, "%s", sp_error_message());
    return c;
}

static float *read_f(const char *file, const char *dset, size_t n) {
    hid_t f;
    ck_assert_msg(sp_h5_open_read(file, &f) == SP_OK, "%s", sp_error_message());
    float *x = malloc(n * sizeof(float));
    ck_assert_msg(sp_h5_read_float(f, file, dset, x, n) == SP_OK, "%s", sp_error_message());
    sp_h5_close(f);
    return x;
}

/* Reference encoder f_q and head from the flat export. */
static void build(SpConfig *cfg, SpTorchFlat *t, SpEncoder **e, SpProjHead **h) {
    ck_assert_msg(encoder_create(e, cfg, NULL) == SP_OK, "%s", sp_error_message());
    ck_assert_msg(encoder_torch_to_params(t, "encoder_q.encoder.", encoder_params(*e)) == SP_OK,
                  "%s", sp_error_message());
    if (h) {
        ck_assert(encoder_proj_create_cfg(h, cfg, 128, NULL) == SP_OK);
        ck_assert_msg(encoder_torch_to_params(t, "encoder_q.head.", encoder_proj_params(*h)) ==
                          SP_OK, "%s", sp_error_message());
    }
}

static void read_flat(SpTorchFlat *t, const char *bin, const char *man) {
    ck_assert_msg(encoder_torch_read(t, bin, man) == SP_OK, "%s", sp_error_message());
}

/* ------------------------------------------------------------ forward */
START_TEST(eval_parity) {
    sp_blas_init(0);
    SpConfig *cfg = ref_cfg();
    SpTorchFlat t, lt;
    read_flat(&t, BIN, MAN);
    read_flat(&lt, LBIN, LMAN);
    SpEncoder *e = NULL;
    SpProjHead *h = NULL;
    build(cfg, &t, &e, &h);
    const char *exp = FX("parity_expected.h5");
    float *x = read_f(exp, "spectra", 8 * L4020);
    float *feat_ref = read_f(exp, "feature", 8 * 128);
    float *proj_ref = read_f(exp, "projection", 8 * 128);
    float *logit_ref = read_f(exp, "logits", 8 * 3);
    SpEncAct *a = NULL;
    SpProjAct *pa = NULL;
    ck_assert(encoder_act_create(&a, e, 8, L4020) == SP_OK);
    ck_assert(encoder_proj_act_create(&pa, h, 8) == SP_OK);
    float feat[8 * 128], z[8 * 128], logits[8 * 3];
    ck_assert(encoder_forward(e, a, x, 8, 0, feat) == SP_OK);
    sp_expect_close_f("eval feature", feat, feat_ref, 8 * 128, 0, 3e-5);
    encoder_proj_forward(h, pa, feat, 8, z);
    sp_expect_close_f("eval projection", z, proj_ref, 8 * 128, 0, 1e-6);
    const SpTorchTensor *W = encoder_torch_find(&lt, "linear_layer.weight");
    const SpTorchTensor *bb = encoder_torch_find(&lt, "linear_layer.bias");
    for (int n = 0; n < 8; n++)
        for (int k = 0; k < 3; k++) {
            double acc = lt.data[bb->offset + k];
            for (int j = 0; j < 128; j++)
                acc += (double)lt.data[W->offset + (size_t)k * 128 + j] * feat[n * 128 + j];
            logits[n * 3 + k] = (float)acc;
        }
    sp_expect_close_f("eval logits", logits, logit_ref, 8 * 3, 0, 3e-5);
    /* eval mode changes nothing */
    float feat2[8 * 128];
    ck_assert(encoder_forward(e, a, x, 8, 0, feat2) == SP_OK);
    ck_assert(memcmp(feat, feat2, sizeof feat) == 0);
    encoder_proj_act_destroy(&pa);
    encoder_act_destroy(&a);
    encoder_proj_destroy(&h);
    encoder_destroy(&e);
    free(x);
    free(feat_ref);
    free(proj_ref);
    free(logit_ref);
    encoder_torch_free(&t);
    encoder_torch_free(&lt);
    sp_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------ train */
static int is_exact_zero_grad(const char *name) {
    return !strcmp(name, "conv1.0.bias") || !strcmp(name, "conv3.0.bias") ||
           !strcmp(name, "dec_conv3.0.bias") || !strcmp(name, "MultiHeadAttention.out_proj.bias");
}

START_TEST(train_parity) {
    const int B = _i == 0 ? 8 : 16;
    char grp[32], ds[256];
    snprintf(grp, sizeof grp, "/batch%d", B);
    sp_blas_init(0);
    SpConfig *cfg = ref_cfg();
    SpTorchFlat t;
    read_flat(&t, BIN, MAN);
    SpEncoder *e = NULL;
    build(cfg, &t, &e, NULL);
    const char *file = FX("parity_train_expected.h5");
    snprintf(ds, sizeof ds, "%s/spectra", grp);
    float *x = read_f(file, ds, (size_t)B * L4020);
    snprintf(ds, sizeof ds, "%s/R", grp);
    float *R = read_f(file, ds, (size_t)B * 128);
    snprintf(ds, sizeof ds, "%s/feature", grp);
    float *feat_ref = read_f(file, ds, (size_t)B * 128);
    hid_t f;
    ck_assert(sp_h5_open_read(file, &f) == SP_OK);
    double G = 0, loss_ref = 0;
    ck_assert_msg(sp_h5_attr_read_double(f, file, grp, "G", &G) == SP_OK, "%s",
                  sp_error_message());
    snprintf(ds, sizeof ds, "%s/loss", grp);
    ck_assert(sp_h5_read_double(f, file, ds, &loss_ref, 1) == SP_OK);

    SpEncAct *a = NULL;
    ck_assert(encoder_act_create(&a, e, B, L4020) == SP_OK);
    float *feat = malloc(sizeof(float) * (size_t)B * 128);
    SpParams *p = encoder_params(e);
    sp_params_zero_grad(p);
    ck_assert(encoder_forward(e, a, x, B, 1, feat) == SP_OK);
    snprintf(ds, sizeof ds, "batch%d train feature", B);
    sp_expect_close_f(ds, feat, feat_ref, (size_t)B * 128, 0, 1e-5);
    double loss = 0;
    for (int i = 0; i < B * 128; i++) loss += (double)feat[i] * R[i];
    sp_expect_close_dd("loss", &loss, &loss_ref, 1, 1e-5, 1e-5);
    encoder_backward(e, a, R, B);

    int nparam = 0;
    for (int ti = 0; ti < p->n; ti++) {
        const SpTensorInfo *ts = &p->t[ti];
        if (ts->kind == SP_TENSOR_BUFFER) {
            if (strstr(ts->name, "running_")) {
                snprintf(ds, sizeof ds, "%s/running_after/encoder_q.encoder.%s", grp, ts->name);
                float *ref = malloc(ts->count * sizeof(float));
                ck_assert_msg(sp_h5_read_float(f, file, ds, ref, ts->count) == SP_OK, "%s",
                              sp_error_message());
                double m = sp_max_abs_f(ref, ts->count);
                sp_expect_close_f(ds, sp_params_data(p, ti), ref, ts->count, 5e-7, 5e-7 * m);
                free(ref);
            } else {
                ck_assert_float_eq(sp_params_data(p, ti)[0], 0.0f); /* counters untouched */
            }
            continue;
        }
        nparam++;
        snprintf(ds, sizeof ds, "%s/grad/encoder_q.encoder.%s", grp, ts->name);
        float *ref = malloc(ts->count * sizeof(float));
        ck_assert_msg(sp_h5_read_float(f, file, ds, ref, ts->count) == SP_OK, "%s",
                      sp_error_message());
        const float *g = sp_params_grad(p, ti);
        if (is_exact_zero_grad(ts->name)) {
            for (size_t i = 0; i < ts->count; i++)
                ck_assert_msg(fabs((double)g[i]) <= 3e-4 * G, "%s[%zu] = %.3g, should be ~0 "
                              "(<= %.3g)", ds, i, (double)g[i], 3e-4 * G);
        } else if (!strcmp(ts->name, "conv1.1.weight")) {
            for (size_t i = 0; i < ts->count; i++) {
                double tol = i == 55 ? 0.25 : 2e-5 * G;   /* tie-dominated entry (README) */
                ck_assert_msg(fabs((double)g[i] - ref[i]) <= tol,
                              "%s[%zu]: got %.9g, reference %.9g (tol %.3g)", ds, i, (double)g[i],
                              (double)ref[i], tol);
            }
        } else {
            sp_expect_close_f(ds, g, ref, ts->count, 0, 2e-5 * G);
        }
        free(ref);
    }
    ck_assert_int_eq(nparam, 23);
    sp_h5_close(f);
    free(feat);
    free(x);
    free(R);
    free(feat_ref);
    encoder_act_destroy(&a);
    encoder_destroy(&e);
    encoder_torch_free(&t);
    sp_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------ io */
START_TEST(flat_reader_and_invariants) {
    SpTorchFlat t;
    read_flat(&t, BIN, MAN);
    ck_assert_uint_eq(t.total, 399328);
    ck_assert_int_eq(t.n, 94);
    const SpTorchTensor *q = encoder_torch_find(&t, "queue");
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(q->ndim, 2);
    ck_assert_int_eq((int)q->shape[1], 1744);
    const SpTorchTensor *c = encoder_torch_find(&t, "encoder_q.encoder.conv1.1.num_batches_tracked");
    ck_assert_int_eq(c->ndim, 0);
    const SpTorchTensor *g = encoder_torch_find(&t, "encoder_q.encoder.C_Attention_F.gamma");
    ck_assert_int_eq(g->ndim, 1);
    ck_assert_uint_eq(g->offset, 260777);
    /* The encoder_q block: 37,636 parameters + 162 running stats + 3 counters + 33,024 head. */
    SpConfig *cfg = ref_cfg();
    SpEncoder *e = NULL;
    SpProjHead *h = NULL;
    build(cfg, &t, &e, &h);
    ck_assert_uint_eq(sp_params_count(encoder_params(e)), 37636);
    ck_assert_uint_eq(encoder_params(e)->n_buf, 165);
    ck_assert_uint_eq(sp_params_count(encoder_proj_params(h)), 33024);
    encoder_proj_destroy(&h);
    encoder_destroy(&e);
    sp_config_free(cfg);
    encoder_torch_free(&t);
}
END_TEST

static void expect_same(const char *what, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(&a[i], &b[i], sizeof(float)) == 0, "%s[%zu]: %.9g vs %.9g", what, i,
                      (double)a[i], (double)b[i]);
}

START_TEST(import_writes_checkpoint) {
    SpConfig *cfg = ref_cfg();
    char out[512], lin[512];
    snprintf(out, sizeof out, "%s/imported.h5", sp_tmpdir());
    snprintf(lin, sizeof lin, "%s/linear.h5", sp_tmpdir());
    SpImportOpts o = {BIN, MAN, LBIN, LMAN, lin, out};
    ck_assert_msg(encoder_import_specrrmoco(&o, cfg) == SP_OK, "%s", sp_error_message());

    SpTorchFlat t;
    read_flat(&t, BIN, MAN);
    hid_t f;
    SpCkptMeta meta;
    ck_assert_msg(ckpt_open(out, "pretrain", "convsc", &f, &meta) == SP_OK, "%s",
                  sp_error_message());
    ck_assert_ptr_nonnull(meta.config_text);
    /* queue and pointer */
    const SpTorchTensor *q = encoder_torch_find(&t, "queue");
    float *queue = malloc(q->count * sizeof(float));
    ck_assert(sp_h5_read_float(f, out, "queue", queue, q->count) == SP_OK);
    expect_same("queue", queue, t.data + q->offset, q->count);
    free(queue);
    int64_t ptr = -1;
    ck_assert(sp_h5_read_int64(f, out, "queue_ptr", &ptr, 1) == SP_OK);
    ck_assert_int_eq(ptr, 0);
    /* every encoder/head tensor, both encoders */
    static const char *const grp[4] = {SP_GROUP_ENCODER_Q, SP_GROUP_ENCODER_K, SP_GROUP_PROJ_Q,
                                       SP_GROUP_PROJ_K};
    static const char *const pre[4] = {"encoder_q.encoder.", "encoder_k.encoder.",
                                       "encoder_q.head.", "encoder_k.head."};
    for (int k = 0; k < 4; k++) {
        SpEncoder *e = NULL;
        SpProjHead *h = NULL;
        SpParams *p;
        if (k < 2) {
            ck_assert(encoder_create(&e, cfg, NULL) == SP_OK);
            ck_assert_msg(encoder_load(e, f, out, grp[k]) == SP_OK, "%s", sp_error_message());
            p = encoder_params(e);
        } else {
            ck_assert(encoder_proj_create_cfg(&h, cfg, 128, NULL) == SP_OK);
            ck_assert_msg(encoder_proj_load(h, f, out, grp[k]) == SP_OK, "%s", sp_error_message());
            p = encoder_proj_params(h);
        }
        for (int i = 0; i < p->n; i++) {
            char name[256];
            snprintf(name, sizeof name, "%s%s", pre[k], p->t[i].name);
            const SpTorchTensor *m = encoder_torch_find(&t, name);
            ck_assert_msg(m != NULL, "%s", name);
            expect_same(name, sp_params_data(p, i), t.data + m->offset, m->count);
        }
        encoder_destroy(&e);
        encoder_proj_destroy(&h);
    }
    /* RR heads keep their PyTorch names */
    float v = 0;
    ck_assert(sp_h5_read_float(f, out, "heads/relation_head/head.1.num_batches_tracked", &v, 1) ==
              SP_OK);
    ck_assert_float_eq(v, 1600.0f);
    float w[5 * 128];
    ck_assert(sp_h5_read_float(f, out, "heads/tmp_cls_head/head.1.weight", w, 5 * 128) == SP_OK);
    expect_same("tmp_cls_head", w, t.data + encoder_torch_find(&t, "tmp_cls_head.head.1.weight")->offset,
                5 * 128);
    sp_h5_close(f);
    ckpt_meta_free(&meta);

    /* linear probe file */
    SpTorchFlat lt;
    read_flat(&lt, LBIN, LMAN);
    ck_assert_msg(ckpt_open(lin, "linear", NULL, &f, &meta) == SP_OK, "%s", sp_error_message());
    float lw[3 * 128], lb[3];
    ck_assert(sp_h5_read_float(f, lin, "linear/weight", lw, 3 * 128) == SP_OK);
    ck_assert(sp_h5_read_float(f, lin, "linear/bias", lb, 3) == SP_OK);
    expect_same("linear/weight", lw, lt.data, 384);
    expect_same("linear/bias", lb, lt.data + 384, 3);
    char *ref = NULL;
    ck_assert(sp_h5_attr_read_str(f, lin, "/", "encoder_ckpt", &ref) == SP_OK);
    char *abs = realpath(out, NULL);
    ck_assert_ptr_nonnull(abs);
    ck_assert_str_eq(ref, abs);
    free(abs);
    free(ref);
    sp_h5_close(f);
    ckpt_meta_free(&meta);
    encoder_torch_free(&lt);
    encoder_torch_free(&t);
    sp_config_free(cfg);
    sp_tmpdir_cleanup();
}
END_TEST

/* ------------------------------------------------------------ errors */
static char g_out[1 << 16];

static int run_cli(const char *const *argv) { return sp_run_cli(g_out, sizeof g_out, argv); }

static void expect_out(const char *needle) {
    ck_assert_msg(strstr(g_out, needle) != NULL, "output lacks '%s':\n%s", needle, g_out);
}

static void *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc((size_t)sz + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    ((char *)b)[sz] = '\0';
    *n = (size_t)sz;
    return b;
}

static const char *tmp_write(const char *name, const void *data, size_t n) {
    static char path[4][512];
    static int k = 0;
    k = (k + 1) & 3;
    snprintf(path[k], sizeof path[k], "%s/%s", sp_tmpdir(), name);
    FILE *f = fopen(path[k], "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
    return path[k];
}

/* The manifest without the line of `drop`, or with `count` replaced in it. */
static const char *edited_manifest(const char *name, const char *target, const char *new_count) {
    size_t n;
    char *m = slurp(MAN, &n);
    char *out = malloc(n + 64);
    size_t o = 0;
    for (char *line = m; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
        size_t tl = strlen(target);
        if (!strncmp(line, target, tl) && line[tl] == '\t') {
            if (new_count) {
                /* replace the last column */
                char *last = line + len - 1;
                while (last > line && *last != '\t') last--;
                memcpy(out + o, line, (size_t)(last - line + 1));
                o += (size_t)(last - line + 1);
                o += (size_t)sprintf(out + o, "%s\n", new_count);
            }
        } else {
            memcpy(out + o, line, len);
            o += len;
        }
        line += len;
    }
    const char *p = tmp_write(name, out, o);
    free(m);
    free(out);
    return p;
}

START_TEST(import_errors_exit_2) {
    char ck[512];
    snprintf(ck, sizeof ck, "%s/x.h5", sp_tmpdir());
    /* truncated bin */
    size_t n;
    char *bin = slurp(BIN, &n);
    const char *tb = tmp_write("trunc.f32.bin", bin, n - 100 * 4);
    const char *a1[] = {"specssl", "import-torch", "--bin", tb, "--manifest", MAN, "--out", ck, NULL};
    ck_assert_int_eq(run_cli(a1), 2);
    expect_out("trunc.f32.bin");
    expect_out("truncated");
    expect_out("tmp_cls_head.head.1.weight");
    /* a tensor missing from the manifest */
    const char *m2 = edited_manifest("missing.tsv", "encoder_q.encoder.conv3.0.bias", NULL);
    const char *a2[] = {"specssl", "import-torch", "--bin", BIN, "--manifest", m2, "--out", ck, NULL};
    ck_assert_int_eq(run_cli(a2), 2);
    expect_out("missing.tsv");
    expect_out("encoder_q.encoder.conv3.0.bias");
    /* a wrong count */
    const char *m3 = edited_manifest("count.tsv", "encoder_k.head.2.bias", "127");
    const char *a3[] = {"specssl", "import-torch", "--bin", BIN, "--manifest", m3, "--out", ck, NULL};
    ck_assert_int_eq(run_cli(a3), 2);
    expect_out("count.tsv");
    expect_out("encoder_k.head.2.bias");
    /* a queue column that is not unit norm */
    float *v = (float *)(void *)bin;
    v[5 * 1744 + 17] *= 1.01f;
    const char *qb = tmp_write("queue.f32.bin", bin, n);
    const char *a4[] = {"specssl", "import-torch", "--bin", qb, "--manifest", MAN, "--out", ck, NULL};
    ck_assert_int_eq(run_cli(a4), 2);
    expect_out("queue column 17");
    free(bin);
    /* nothing was left under the final name */
    FILE *f = fopen(ck, "rb");
    ck_assert_msg(f == NULL, "a failed import left '%s'", ck);
    sp_tmpdir_cleanup();
}
END_TEST

/* ------------------------------------------------------------ cli */
START_TEST(cli_import_then_embed) {
    char ck[512], lin[512], emb[512], embp[512];
    snprintf(ck, sizeof ck, "%s/ck.h5", sp_tmpdir());
    snprintf(lin, sizeof lin, "%s/lin.h5", sp_tmpdir());
    snprintf(emb, sizeof emb, "%s/emb.h5", sp_tmpdir());
    snprintf(embp, sizeof embp, "%s/embp.h5", sp_tmpdir());
    const char *a1[] = {"specssl", "import-torch", "--bin", BIN, "--manifest", MAN,
                        "--linear-bin", LBIN, "--linear-manifest", LMAN, "--linear-out", lin,
                        "--out", ck, NULL};
    ck_assert_msg(run_cli(a1) == 0, "import-torch failed:\n%s", g_out);
    const char *a2[] = {"specssl", "embed", "--ckpt", ck, "--data", FX("parity_input.h5"),
                        "--out", emb, "--batch", "5", NULL};
    ck_assert_msg(run_cli(a2) == 0, "embed failed:\n%s", g_out);
    const char *a3[] = {"specssl", "embed", "--ckpt", ck, "--data", FX("parity_input.h5"),
                        "--out", embp, "--output", "projection", NULL};
    ck_assert_msg(run_cli(a3) == 0, "embed --output projection failed:\n%s", g_out);
    const char *exp = FX("parity_expected.h5");
    float *feat_ref = read_f(exp, "feature", 8 * 128);
    float *proj_ref = read_f(exp, "projection", 8 * 128);
    float *feat = read_f(emb, "embeddings", 8 * 128);
    float *proj = read_f(embp, "embeddings", 8 * 128);
    sp_expect_close_f("embed feature", feat, feat_ref, 8 * 128, 0, 3e-5);
    sp_expect_close_f("embed projection", proj, proj_ref, 8 * 128, 0, 1e-6);
    free(feat_ref);
    free(proj_ref);
    free(feat);
    free(proj);
    /* bad --output, missing checkpoint */
    const char *a4[] = {"specssl", "embed", "--ckpt", ck, "--data", FX("parity_input.h5"),
                        "--out", emb, "--output", "logits", NULL};
    ck_assert_int_eq(run_cli(a4), 2);
    const char *a5[] = {"specssl", "embed", "--ckpt", "/nonexistent/ck.h5", "--data",
                        FX("parity_input.h5"), "--out", emb, NULL};
    ck_assert_int_eq(run_cli(a5), 2);
    expect_out("/nonexistent/ck.h5");
    sp_tmpdir_cleanup();
}
END_TEST

int main(void) {
    Suite *s = suite_create("convsc_parity");
    TCase *tc = tcase_create("forward");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, eval_parity);
    suite_add_tcase(s, tc);

    tc = tcase_create("backward");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, train_parity, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("io");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, flat_reader_and_invariants);
    tcase_add_test(tc, import_writes_checkpoint);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, import_errors_exit_2);
    suite_add_tcase(s, tc);

    tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cli_import_then_embed);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
