/* test_supervised: end-to-end training of encoder + linear classifier
 * (every registered architecture overfits a tiny set), early stopping
 * restores the best weights, model files round-trip, and the labelled split
 * is the probe's split for the same seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_linear_eval.h"
#include "sp_test.h"

enum { L = 64, NCLS = 3, PER = 4, N = NCLS * PER };

static void register_keys(void) {
    sp_core_config_register();
    data_config_register();
    augment_config_register();
    encoder_config_register();
    linear_eval_config_register();
}

/* Class c: a sine of class-specific frequency (2, 5, 11 periods) with a
 * random phase, plus noise: a local pattern, so encoders ending in global
 * pooling separate the classes as well as position-aware ones. */
static void make_data(float *x, int32_t *y, int n, uint64_t seed) {
    static const double freq[NCLS] = {2, 5, 11};
    sp_fill_uniform_f(x, (size_t)n * L, seed, -0.1, 0.1);
    for (int i = 0; i < n; i++) {
        y[i] = i % NCLS;
        double ph = 0.7 * i;
        for (int t = 0; t < L; t++)
            x[i * L + t] += (float)sin(2 * 3.14159265358979 * freq[y[i]] * t / L + ph);
    }
}

static SpDataset *open_data(const char *name, int n, uint64_t seed, int32_t *yout) {
    float *x = malloc(sizeof(float) * n * L);
    int32_t *y = malloc(sizeof(int32_t) * n);
    make_data(x, y, n, seed);
    if (yout) memcpy(yout, y, sizeof(int32_t) * n);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", sp_tmpdir(), name);
    SpDatasetOut d = {x, n, L, y, NULL, NULL, NULL, 0, "test"};
    ck_assert_int_eq(dataset_write(path, &d), SP_OK);
    SpDataOptions o;
    data_options_default(&o);
    SpDataset *ds = NULL;
    ck_assert_int_eq(dataset_open(&ds, path, &o), SP_OK);
    free(x);
    free(y);
    return ds;
}

/* Small settings per architecture so every one trains in seconds. */
static SpConfig *arch_config(const char *arch) {
    const char *sets[] = {
        "encoder.convsc.conv1_channels=8", "encoder.convsc.conv3_channels=4",
        "encoder.convsc.bins=16",          "encoder.convsc.embed_dim=16",
        "encoder.convsc.bn_splits=2",      "encoder.cnn.channels=[8, 16]",
        "encoder.cnn.kernels=[5, 3]",      "encoder.cnn.strides=[1, 1]",
        "encoder.cnn.padding=[2, 1]",      "encoder.cnn.pool=[2, 0]",
        "encoder.resnet1d.stem_channels=8", "encoder.resnet1d.widths=[8, 16]",
        "encoder.resnet1d.blocks=[1, 1]",  "encoder.input_length=64",
        "encoder.fcnn.hidden=[32, 16]",    "encoder.binned_fcnn.bins=32",
        "encoder.binned_fcnn.hidden=16",   "encoder.lstm.patch=8",
        "encoder.lstm.embed_dim=8",        "encoder.lstm.hidden=12",
        "encoder.lstm.layers=1",           "encoder.transformer.patch=8",
        "encoder.transformer.d_model=8",   "encoder.transformer.heads=2",
        "encoder.transformer.layers=1",    "encoder.transformer.ff=16",
        "encoder.convsct.conv1_channels=8", "encoder.convsct.conv3_channels=4",
        "encoder.convsct.bins=16",         "encoder.convsct.embed_dim=16",
        "encoder.convsct.bn_splits=2",     "encoder.convsct.ff=32",
        "supervised.lr=3e-3",
        "supervised.epochs=100",           "supervised.patience=0",
        "supervised.plateau_patience=0",   "supervised.min_steps_per_epoch=2",
    };
    int n = (int)(sizeof sets / sizeof sets[0]);
    /* keys of archs that are not registered (yet) are left out */
    const char *use[64];
    int k = 0;
    int nk = 0;
    const SpCfgKey *keys = sp_config_keys(&nk);
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(sets[i], '=');
        for (int j = 0; j < nk; j++)
            if (strlen(keys[j].key) == (size_t)(eq - sets[i]) &&
                !strncmp(keys[j].key, sets[i], (size_t)(eq - sets[i]))) {
                use[k++] = sets[i];
                break;
            }
    }
    SpConfig *c = NULL;
    char archset[96];
    snprintf(archset, sizeof archset, "encoder.arch=\"%s\"", arch);
    use[k++] = archset;
    ck_assert_msg(sp_config_load(&c, NULL, use, k) == SP_OK, "config: %s", sp_error_message());
    return c;
}

/* Name of registered architecture i (0-based) into out; 0 when i is past
 * the last one. */
static int arch_name(int i, char *out, size_t n) {
    char names[256];
    snprintf(names, sizeof names, "%s", encoder_arch_names());
    int k = 0;
    for (char *save = NULL, *a = strtok_r(names, "|", &save); a; a = strtok_r(NULL, "|", &save))
        if (k++ == i) {
            snprintf(out, n, "%s", a);
            return 1;
        }
    return 0;
}

#define SP_MAX_ARCHS 16

/* One registered architecture per loop index (each with its own timeout). */
START_TEST(overfit_every_arch) {
    register_keys();
    char a[32];
    if (!arch_name(_i, a, sizeof a)) return;   /* fewer architectures registered */
    sp_blas_init(2);
    int32_t y[N];
    SpDataset *ds = open_data("tiny.h5", N, 5, y);
    SpConfig *c = arch_config(a);
    SpRng rng;
    sp_rng_stream(&rng, 3, 0, 0, 0);
    SpEncoder *e = NULL;
    ck_assert_msg(encoder_create_arch(&e, a, c, &rng) == SP_OK, "%s: %s", a, sp_error_message());
    LinSupModel *m = NULL;
    ck_assert_int_eq(lineval_sup_create(&m, &e, NCLS, 1), SP_OK);
    ck_assert_ptr_null(e);
    LinSupParam p;
    lineval_sup_param_from_config(&p, c);
    snprintf(p.tag, sizeof p.tag, "overfit:%s", a);
    int64_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = i;
    SpStatus rc = lineval_sup_train(m, ds, idx, N, NULL, 0, NULL, NULL, &p);
    ck_assert_msg(rc == SP_OK, "%s: %s", a, sp_error_message());
    ck_assert_msg(m->best_train_loss < 0.05 && m->best_train_acc == 1.0,
                  "%s: best training loss %.4g, accuracy %.3f after %d epochs", a,
                  m->best_train_loss, m->best_train_acc, m->epochs_run);
    int32_t pred[N];
    ck_assert_int_eq(lineval_sup_predict(m, ds, NULL, N, NULL, 5, pred, NULL), SP_OK);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += pred[i] == y[i];
    ck_assert_msg(ok == N, "%s: eval-mode accuracy on the training rows %d/%d", a, ok, N);
    lineval_sup_destroy(&m);
    ck_assert_ptr_null(m);
    sp_config_free(c);
    dataset_close(&ds);
    sp_tmpdir_cleanup();
}
END_TEST

START_TEST(at_least_the_core_archs) {
    char a[64];
    ck_assert(arch_name(2, a, sizeof a));   /* convsc, cnn, resnet1d at least */
    ck_assert(!arch_name(SP_MAX_ARCHS, a, sizeof a));   /* the loop covers them all */
}
END_TEST

/* Validation rows whose labels contradict the training rows: the validation
 * loss grows as training fits, so the best epoch is early and the final
 * weights differ from it. After training, the model must be the best
 * epoch's (its validation loss recomputed from predictions), not the last. */
START_TEST(early_stopping_restores_best) {
    register_keys();
    sp_blas_init(2);
    enum { NT = 12, NV = 6 };
    float x[(NT + NV) * L];
    int32_t y[NT + NV];
    make_data(x, y, NT + NV, 9);
    for (int i = NT; i < NT + NV; i++) y[i] = (y[i] + 1) % NCLS;   /* contradicting labels */
    char path[1024];
    snprintf(path, sizeof path, "%s/es.h5", sp_tmpdir());
    SpDatasetOut d = {x, NT + NV, L, y, NULL, NULL, NULL, 0, "test"};
    ck_assert_int_eq(dataset_write(path, &d), SP_OK);
    SpDataOptions o;
    data_options_default(&o);
    SpDataset *ds = NULL;
    ck_assert_int_eq(dataset_open(&ds, path, &o), SP_OK);
    SpConfig *c = arch_config("cnn");
    ck_assert_int_eq(sp_config_set(c, "supervised.patience=5"), SP_OK);
    ck_assert_int_eq(sp_config_set(c, "supervised.epochs=100"), SP_OK);
    SpRng rng;
    sp_rng_stream(&rng, 4, 0, 0, 0);
    SpEncoder *e = NULL;
    ck_assert_int_eq(encoder_create_arch(&e, "cnn", c, &rng), SP_OK);
    LinSupModel *m = NULL;
    ck_assert_int_eq(lineval_sup_create(&m, &e, NCLS, 2), SP_OK);
    LinSupParam p;
    lineval_sup_param_from_config(&p, c);
    int64_t tr[NT], va[NV];
    for (int i = 0; i < NT; i++) tr[i] = i;
    for (int i = 0; i < NV; i++) va[i] = NT + i;
    ck_assert_int_eq(lineval_sup_train(m, ds, tr, NT, va, NV, NULL, NULL, &p), SP_OK);
    ck_assert_int_eq(m->stopped_early, 1);
    ck_assert_int_eq(m->epochs_run, m->best_epoch + 1 + 5);
    ck_assert_msg(m->last_val_loss > m->best_val_loss + 1e-3,
                  "construction: last validation loss %.5f should exceed the best %.5f",
                  m->last_val_loss, m->best_val_loss);
    float prob[NV * NCLS];
    ck_assert_int_eq(lineval_sup_predict(m, ds, va, NV, NULL, 4, NULL, prob), SP_OK);
    double loss = 0;
    for (int i = 0; i < NV; i++) loss -= log((double)prob[i * NCLS + y[NT + i]]);
    loss /= NV;
    ck_assert_msg(fabs(loss - m->best_val_loss) < 1e-4,
                  "restored weights give validation loss %.6f, best epoch had %.6f (last %.6f)",
                  loss, m->best_val_loss, m->last_val_loss);
    /* model file round trip: same predictions */
    char mp[1024];
    snprintf(mp, sizeof mp, "%s/model.h5", sp_tmpdir());
    char *text = sp_config_dump(c);
    ck_assert_int_eq(lineval_sup_save(m, mp, NULL, text, NULL), SP_OK);
    free(text);
    LinSupModel *r = NULL;
    ck_assert_msg(lineval_sup_load(&r, mp, NULL, NULL) == SP_OK, "%s", sp_error_message());
    float prob2[NV * NCLS];
    ck_assert_int_eq(lineval_sup_predict(r, ds, va, NV, NULL, 4, NULL, prob2), SP_OK);
    ck_assert_int_eq(memcmp(prob, prob2, sizeof prob), 0);
    ck_assert_int_eq(r->best_epoch, m->best_epoch);
    lineval_sup_destroy(&r);
    lineval_sup_destroy(&m);
    sp_config_free(c);
    dataset_close(&ds);
    sp_tmpdir_cleanup();
}
END_TEST

/* The split of a run depends only on (labels, budget, validation size,
 * seed): the probe, kNN and every supervised method of a run share it, and
 * larger budgets contain smaller ones with the same validation rows. */
START_TEST(split_shared_and_nested) {
    register_keys();
    enum { NN = 60 };
    int32_t y[NN];
    SpDataset *ds = open_data("split.h5", NN, 1, y);
    SpSplitSpec a = {2, 0, 3, 0, 42}, b = a, c = a;
    c.per_class = 5;
    SpSplit s1, s2, s3, s4;
    ck_assert_int_eq(lineval_split(&s1, ds, &a), SP_OK);
    ck_assert_int_eq(lineval_split(&s2, ds, &b), SP_OK);
    ck_assert_int_eq(s1.n_train, 2 * NCLS);
    ck_assert_int_eq(s1.n_val, 3 * NCLS);
    ck_assert_int_eq(memcmp(s1.train, s2.train, sizeof(int64_t) * s1.n_train), 0);
    ck_assert_int_eq(memcmp(s1.val, s2.val, sizeof(int64_t) * s1.n_val), 0);
    ck_assert_int_eq(lineval_split(&s3, ds, &c), SP_OK);
    ck_assert_int_eq(memcmp(s1.val, s3.val, sizeof(int64_t) * s1.n_val), 0);
    for (int64_t i = 0; i < s1.n_train; i++) {
        int found = 0;
        for (int64_t j = 0; j < s3.n_train; j++) found |= s3.train[j] == s1.train[i];
        ck_assert_msg(found, "row %lld of the 2-per-class split is missing from the 5-per-class one",
                      (long long)s1.train[i]);
    }
    /* "all": every labelled row that is not validation */
    SpSplitSpec all = {0, 0, 3, 0, 42};
    ck_assert_int_eq(lineval_split(&s4, ds, &all), SP_OK);
    ck_assert_int_eq(s4.n_train, NN - 3 * NCLS);
    ck_assert_int_eq(memcmp(s1.val, s4.val, sizeof(int64_t) * s1.n_val), 0);
    for (int64_t i = 0; i < s4.n_train; i++)
        for (int64_t j = 0; j < s4.n_val; j++) ck_assert(s4.train[i] != s4.val[j]);
    split_free(&s1);
    split_free(&s2);
    split_free(&s3);
    split_free(&s4);
    dataset_close(&ds);
    sp_tmpdir_cleanup();
}
END_TEST

START_TEST(errors) {
    register_keys();
    SpConfig *c = arch_config("cnn");
    LinSupParam p;
    lineval_sup_param_from_config(&p, c);
    p.plateau_factor = 2;
    ck_assert_ptr_nonnull(strstr(lineval_sup_check_param(&p), "plateau_factor"));
    sp_config_free(c);
    /* a dataset without labels cannot be split */
    float x[4 * L] = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/nolabels.h5", sp_tmpdir());
    SpDatasetOut d = {x, 4, L, NULL, NULL, NULL, NULL, 0, "test"};
    ck_assert_int_eq(dataset_write(path, &d), SP_OK);
    SpDataOptions o;
    data_options_default(&o);
    SpDataset *ds = NULL;
    ck_assert_int_eq(dataset_open(&ds, path, &o), SP_OK);
    SpSplitSpec a = {2, 0, 1, 0, 1};
    SpSplit s;
    ck_assert_int_eq(lineval_split(&s, ds, &a), SP_EINPUT);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "nolabels.h5"));
    dataset_close(&ds);
    sp_tmpdir_cleanup();
}
END_TEST


/* The cnn flatten head (encoder.cnn.head = "flatten"): the fused eval path
 * equals the layer path, the dense layer's gradient matches finite
 * differences, other lengths are refused, and it learns classes that differ
 * only in peak POSITION. */
START_TEST(cnn_flatten_head) {
    register_keys();
    sp_blas_init(2);
    const char *sets[] = {"encoder.arch=\"cnn\"", "encoder.cnn.channels=[4, 6]",
                          "encoder.cnn.kernels=[5, 3]", "encoder.cnn.strides=[2, 1]",
                          "encoder.cnn.padding=[2, 1]", "encoder.cnn.pool=[2, 2]",
                          "encoder.cnn.head=\"flatten\"", "encoder.cnn.flatten_dim=10",
                          "encoder.input_length=64", "supervised.lr=3e-3",
                          "supervised.epochs=150", "supervised.patience=0",
                          "supervised.plateau_patience=0", "supervised.min_steps_per_epoch=2"};
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, NULL, sets, 14) == SP_OK, "%s", sp_error_message());
    SpRng rng;
    sp_rng_stream(&rng, 8, 0, 0, 0);
    SpEncoder *e = NULL;
    ck_assert_msg(encoder_create(&e, c, &rng) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(encoder_feature_dim(e), 10);
    ck_assert_int_eq(encoder_check_length(e, L), SP_OK);
    ck_assert_int_ne(encoder_check_length(e, L + 1), SP_OK);
    enum { B = 5, D = 10 };
    float x[B * L], f1[B * D], f2[B * D], G[B * D];
    sp_fill_uniform_f(x, B * L, 3, -1, 1);
    sp_fill_uniform_f(G, B * D, 4, -1, 1);
    SpEncAct *ai = NULL, *ag = NULL;
    ck_assert_int_eq(encoder_act_create_infer(&ai, e, B, L), SP_OK);
    ck_assert_int_eq(encoder_act_create(&ag, e, B, L), SP_OK);
    ck_assert_int_eq(encoder_forward(e, ai, x, B, SP_ENC_EVAL, f1), SP_OK);
    ck_assert_int_eq(encoder_forward(e, ag, x, B, SP_ENC_EVAL_GRAD, f2), SP_OK);
    sp_expect_close_f("fused vs layer path", f1, f2, B * D, 1e-5, 1e-6);
    /* d(sum feat * G)/d dense.weight, dense.bias, conv0.weight vs central differences */
    SpParams *p = encoder_params(e);
    sp_params_zero_grad(p);
    encoder_backward(e, ag, G, B);
    /* central differences, skipping coordinates whose one-sided differences
     * disagree (a ReLU or max-pool kink inside +-eps) */
    const char *names[3] = {"dense.weight", "dense.bias", "conv0.weight"};
    int checked = 0;
    for (int t = 0; t < 3; t++) {
        int ti = sp_params_find(p, names[t]);
        ck_assert_int_ge(ti, 0);
        float *w = sp_params_data(p, ti), *g = sp_params_grad(p, ti);
        size_t n = p->t[ti].count;
        double l0 = 0;
        ck_assert_int_eq(encoder_forward(e, ai, x, B, SP_ENC_EVAL, f1), SP_OK);
        for (int i = 0; i < B * D; i++) l0 += (double)f1[i] * G[i];
        for (int k = 0; k < 8; k++) {
            size_t j = (size_t)(k * 7919) % n;
            float keep = w[j];
            double eps = 1e-3, lp = 0, lm = 0;
            w[j] = keep + (float)eps;
            ck_assert_int_eq(encoder_forward(e, ai, x, B, SP_ENC_EVAL, f1), SP_OK);
            for (int i = 0; i < B * D; i++) lp += (double)f1[i] * G[i];
            w[j] = keep - (float)eps;
            ck_assert_int_eq(encoder_forward(e, ai, x, B, SP_ENC_EVAL, f1), SP_OK);
            for (int i = 0; i < B * D; i++) lm += (double)f1[i] * G[i];
            w[j] = keep;
            double dp = (lp - l0) / eps, dm = (l0 - lm) / eps, num = (lp - lm) / (2 * eps);
            if (fabs(dp - dm) > 0.02 * (fabs(dp) + fabs(dm)) + 2e-3) continue;   /* kink */
            checked++;
            ck_assert_msg(sp_rel_err(g[j], num) < 1e-2 || fabs(g[j] - num) < 2e-3,
                          "%s[%zu]: analytic %.6g, numeric %.6g", names[t], j, g[j], num);
        }
    }
    ck_assert_int_ge(checked, 16);
    encoder_act_destroy(&ai);
    encoder_act_destroy(&ag);
    /* classes that differ only in where a peak is: the flatten head separates them */
    enum { NN = 12 };
    float xs[NN * L];
    int32_t y[NN];
    sp_fill_uniform_f(xs, NN * L, 9, -0.05, 0.05);
    for (int i = 0; i < NN; i++) {
        y[i] = i % NCLS;
        double mu = 12 + 18 * y[i] + (i % 2);
        for (int t = 0; t < L; t++) xs[i * L + t] += (float)exp(-0.5 * (t - mu) * (t - mu) / 4.0);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/pos.h5", sp_tmpdir());
    SpDatasetOut d = {xs, NN, L, y, NULL, NULL, NULL, 0, "test"};
    ck_assert_int_eq(dataset_write(path, &d), SP_OK);
    SpDataOptions o;
    data_options_default(&o);
    SpDataset *ds = NULL;
    ck_assert_int_eq(dataset_open(&ds, path, &o), SP_OK);
    LinSupModel *m = NULL;
    ck_assert_int_eq(lineval_sup_create(&m, &e, NCLS, 1), SP_OK);
    LinSupParam sp;
    lineval_sup_param_from_config(&sp, c);
    int64_t idx[NN];
    for (int i = 0; i < NN; i++) idx[i] = i;
    ck_assert_int_eq(lineval_sup_train(m, ds, idx, NN, NULL, 0, NULL, NULL, &sp), SP_OK);
    ck_assert_msg(m->best_train_loss < 0.05, "flatten head: training loss %.4f",
                  m->best_train_loss);
    int32_t pred[NN];
    ck_assert_int_eq(lineval_sup_predict(m, ds, NULL, NN, NULL, 4, pred, NULL), SP_OK);
    for (int i = 0; i < NN; i++) ck_assert_int_eq(pred[i], y[i]);
    lineval_sup_destroy(&m);
    dataset_close(&ds);
    /* a missing input length is a config error naming the key */
    SpConfig *c2 = NULL;
    const char *bad[] = {"encoder.arch=\"cnn\"", "encoder.cnn.head=\"flatten\""};
    ck_assert_int_eq(sp_config_load(&c2, NULL, bad, 2), SP_OK);
    ck_assert_int_eq(encoder_create(&e, c2, &rng), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "encoder.input_length"));
    sp_config_free(c2);
    sp_config_free(c);
    sp_tmpdir_cleanup();
}
END_TEST

int main(void) {
    Suite *s = suite_create("supervised");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, overfit_every_arch, 0, SP_MAX_ARCHS);
    tcase_add_test(tc, at_least_the_core_archs);
    tcase_add_test(tc, early_stopping_restores_best);
    tcase_add_test(tc, cnn_flatten_head);
    suite_add_tcase(s, tc);
    tc = tcase_create("split");
    tcase_add_test(tc, split_shared_and_nested);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
