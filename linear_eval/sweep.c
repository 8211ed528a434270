/* sweep.c - the evaluation protocol over label budgets x seeds x methods
 * (see the module comment in sp_linear_eval.h).
 *
 * Per run (budget b, seed s): one lineval_split of the labelled rows of the
 * training file; every method trains on split.train, selects on split.val
 * and scores the labelled rows of the test file once.
 *   probe, knn           frozen SSL encoder features (computed once for the
 *                        labelled training rows and the test rows)
 *   random_probe/_knn    the same on a randomly initialised encoder of the
 *                        checkpoint's architecture (one per seed, shared by
 *                        every budget of that seed)
 *   supervised:<arch>    fresh encoder (user config, encoder.arch = <arch>)
 *                        + linear classifier, trained end to end; input
 *                        normalisation data.normalise fitted on all rows of
 *                        the training file (labels are not used)
 *   finetune             the checkpoint's encoder + classifier, end to end,
 *                        encoder lr x supervised.finetune_lr_mult; the
 *                        checkpoint's normalisation
 * Allocation: features and per-run buffers; not a training step.
 */
#define _XOPEN_SOURCE 700   /* realpath */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_linear_eval.h"
#include "sp_log.h"
#include "sp_signal.h"

typedef struct {
    const SpConfig *cfg;
    const LinSweepSpec *spec;
    const char *ckpt;
    SpDataset *dtr, *dte;
    int C;
    /* SSL encoder */
    SpEncoder *enc;
    SpConfig *ckcfg;
    SpNorm ck_norm;
    int have_ck_norm;
    int D;
    int64_t n_lab, *lab_idx, *row_of;   /* labelled training rows; dataset index -> row */
    float *f_lab, *f_test;
    int64_t n_test, *test_idx;
    int32_t *y_test;
    /* random encoders, one per seed */
    float **rf_lab, **rf_test;
    int rD;
    /* supervised */
    SpConfig *sup_cfg;    /* cfg with encoder.input_length = L when it was 0 */
    SpNorm sup_norm;
    int have_sup_norm;
    AugSpec aug;
    LinParam lp;
    double grid[SP_LIN_MAX_GRID];
    LinSupParam sp;
    int knn_k;
    double knn_t;
    int batch;
    char ckpt_abs[PATH_MAX];
} Ctx;

static int method_index(const LinSweepSpec *s, const char *prefix) {
    for (int i = 0; i < s->n_methods; i++)
        if (!strncmp(s->methods[i], prefix, strlen(prefix))) return i;
    return -1;
}

static int needs(const LinSweepSpec *s, const char *prefix) { return method_index(s, prefix) >= 0; }

void lineval_sweep_free(LinSweepResult **r) {
    if (!r || !*r) return;
    free((*r)->rows);
    free((*r)->confusion);
    if ((*r)->class_names) data_free_names((*r)->class_names, (*r)->C);
    free(*r);
    *r = NULL;
}

static SpStatus add_row(LinSweepResult *r, const LinSweepRow *row) {
    if (r->n_rows == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        LinSweepRow *n = realloc(r->rows, (size_t)cap * sizeof *n);
        if (!n) SP_FAIL(SP_ENOMEM, "out of memory");
        r->rows = n;
        r->cap = cap;
    }
    r->rows[r->n_rows++] = *row;
    return SP_OK;
}

LinSweepStat lineval_sweep_stat(const LinSweepResult *r, int method, int budget) {
    LinSweepStat st;
    memset(&st, 0, sizeof st);
    double sa = 0, sf = 0, ss = 0, sn = 0;
    for (int i = 0; i < r->n_rows; i++) {
        const LinSweepRow *w = &r->rows[i];
        if (w->budget != budget || strcmp(w->method, r->spec.methods[method]) != 0) continue;
        st.n++;
        sa += w->acc;
        sf += w->f1;
        ss += w->seconds;
        sn += (double)w->n_train;
    }
    if (!st.n) return st;
    st.acc_mean = sa / st.n;
    st.f1_mean = sf / st.n;
    st.sec_mean = ss / st.n;
    st.n_train_mean = sn / st.n;
    double va = 0, vf = 0;
    for (int i = 0; i < r->n_rows; i++) {
        const LinSweepRow *w = &r->rows[i];
        if (w->budget != budget || strcmp(w->method, r->spec.methods[method]) != 0) continue;
        va += (w->acc - st.acc_mean) * (w->acc - st.acc_mean);
        vf += (w->f1 - st.f1_mean) * (w->f1 - st.f1_mean);
    }
    if (st.n > 1) {
        st.acc_std = sqrt(va / (st.n - 1));
        st.f1_std = sqrt(vf / (st.n - 1));
    }
    return st;
}

/* ----------------------------------------------------------- features */

static SpStatus labelled_rows(const SpDataset *ds, int64_t **idx, int64_t *n) {
    *n = 0;
    *idx = malloc(((size_t)ds->n + 1) * sizeof(int64_t));
    if (!*idx) SP_FAIL(SP_ENOMEM, "out of memory");
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] >= 0) (*idx)[(*n)++] = i;
    return SP_OK;
}

/* Features of the labelled training rows and the test rows for encoder e. */
static SpStatus encode_both(Ctx *x, SpEncoder *e, float **flab, float **ftest) {
    const int D = encoder_feature_dim(e);
    *flab = malloc(((size_t)x->n_lab * D + 1) * sizeof(float));
    *ftest = malloc(((size_t)x->n_test * D + 1) * sizeof(float));
    if (!*flab || !*ftest) SP_FAIL(SP_ENOMEM, "out of memory (features)");
    const SpNorm *nm = x->have_ck_norm ? &x->ck_norm : NULL;
    SP_TRY(lineval_features(e, x->dtr, x->lab_idx, x->n_lab, nm, x->batch, *flab));
    SP_TRY(lineval_features(e, x->dte, x->test_idx, x->n_test, nm, x->batch, *ftest));
    return SP_OK;
}

static SpStatus random_features(Ctx *x, int s) {
    if (x->rf_lab[s]) return SP_OK;
    SpRng rng;
    sp_rng_stream(&rng, x->spec->seed0 + (uint64_t)s, 0x72616e64ULL /* "rand" */, 0, 0);
    SpEncoder *e = NULL;
    SP_TRY(encoder_create_arch(&e, encoder_arch(x->enc), x->ckcfg, &rng));
    SpStatus rc = encode_both(x, e, &x->rf_lab[s], &x->rf_test[s]);
    x->rD = encoder_feature_dim(e);
    encoder_destroy(&e);
    return rc;
}

/* Rows of a split as a feature problem (buffers owned by the caller). */
static void take_rows(const Ctx *x, const float *flab, int D, const int64_t *idx, int64_t n,
                      float *xo, int32_t *yo) {
    for (int64_t i = 0; i < n; i++) {
        int64_t r = x->row_of[idx[i]];
        memcpy(xo + (size_t)i * D, flab + (size_t)r * D, (size_t)D * sizeof(float));
        yo[i] = x->dtr->labels[idx[i]];
    }
}

/* ------------------------------------------------------------ methods */

typedef struct {
    const SpSplit *split;
    int bi, si, mi;
    uint64_t seed;
    int32_t *pred;   /* [n_test] */
} Run;

static SpStatus run_feature_method(Ctx *x, const Run *run, const float *flab, const float *ftest,
                                   int D, int knn, LinSweepRow *row, const char *probe_path) {
    const SpSplit *sp = run->split;
    float *xt = malloc(((size_t)sp->n_train * D + 1) * sizeof(float));
    float *xv = malloc(((size_t)sp->n_val * D + 1) * sizeof(float));
    int32_t *yt = malloc(((size_t)sp->n_train + 1) * sizeof(int32_t));
    int32_t *yv = malloc(((size_t)sp->n_val + 1) * sizeof(int32_t));
    SpStatus rc = SP_OK;
    LinModel *m = NULL;
    if (!xt || !xv || !yt || !yv) SP_FAIL_GOTO(rc, out, SP_ENOMEM, "out of memory");
    take_rows(x, flab, D, sp->train, sp->n_train, xt, yt);
    take_rows(x, flab, D, sp->val, sp->n_val, xv, yv);
    LinProblem tr = {sp->n_train, D, xt, yt}, va = {sp->n_val, D, xv, yv};
    double t0 = sp_time_now();
    if (knn) {
        SP_TRY_GOTO(rc, lineval_knn(&tr, x->C, ftest, x->n_test, x->knn_k, x->knn_t, run->pred,
                                    NULL), out);
        row->selected = x->knn_k < sp->n_train ? x->knn_k : (double)sp->n_train;
        if (sp->n_val > 0) {
            int32_t *pv = malloc((size_t)sp->n_val * sizeof(int32_t));
            if (!pv) SP_FAIL_GOTO(rc, out, SP_ENOMEM, "out of memory");
            rc = lineval_knn(&tr, x->C, xv, sp->n_val, x->knn_k, x->knn_t, pv, NULL);
            int64_t ok = 0;
            for (int64_t i = 0; i < sp->n_val; i++) ok += pv[i] == yv[i];
            row->val_acc = (double)ok / (double)sp->n_val;
            free(pv);
            if (rc != SP_OK) goto out;
        }
    } else {
        LinParam lp = x->lp;
        lp.n_classes = x->C;
        SP_TRY_GOTO(rc, lineval_train(&m, &tr, &va, &lp), out);
        SP_TRY_GOTO(rc, lineval_predict(m, ftest, x->n_test, run->pred, NULL), out);
        row->selected = m->l2;
        for (int i = 0; i < m->n_path; i++)
            if (m->path_l2[i] == m->l2) row->val_acc = m->path_val_acc[i];
        if (probe_path) {
            snprintf(m->encoder_ckpt, sizeof m->encoder_ckpt, "%s", x->ckpt_abs);
            snprintf(m->arch, sizeof m->arch, "%s", encoder_arch(x->enc));
            m->encoder_hash = lineval_encoder_hash(x->enc);
            char *text = sp_config_dump(x->cfg);
            rc = lineval_save(m, probe_path, x->have_ck_norm ? &x->ck_norm : NULL, text);
            free(text);
            if (rc != SP_OK) goto out;
            sp_log(SP_LOG_INFO, "wrote probe model %s", probe_path);
        }
    }
    row->seconds = sp_time_now() - t0;
out:
    lineval_destroy(&m);
    free(xt);
    free(xv);
    free(yt);
    free(yv);
    return rc;
}

static SpStatus run_trained_method(Ctx *x, const Run *run, const char *method, LinSweepRow *row) {
    const SpSplit *sp = run->split;
    SpEncoder *e = NULL;
    LinSupModel *m = NULL;
    SpStatus rc = SP_OK;
    LinSupParam p = x->sp;
    const SpNorm *nm;
    snprintf(p.tag, sizeof p.tag, "%s", method);
    p.seed = run->seed * 1000003ULL + (uint64_t)run->mi;
    p.log_level = SP_LOG_DEBUG;
    if (!strcmp(method, "finetune")) {
        SP_TRY(encoder_load_ckpt(x->ckpt, NULL, NULL, &e, NULL));
        p.encoder_lr_mult = sp_cfg_float(x->cfg, "supervised.finetune_lr_mult");
        p.bn_frozen = !strcmp(sp_cfg_str(x->cfg, "supervised.finetune_bn"), "frozen");
        nm = x->have_ck_norm ? &x->ck_norm : NULL;
    } else {
        SpRng rng;
        sp_rng_stream(&rng, p.seed, 0x696e6974ULL /* "init" */, 0, 0);
        SP_TRY(encoder_create_arch(&e, method + 11, x->sup_cfg, &rng));
        nm = x->have_sup_norm ? &x->sup_norm : NULL;
    }
    SP_TRY_GOTO(rc, lineval_sup_create(&m, &e, x->C, p.seed), out);
    SP_TRY_GOTO(rc, lineval_sup_train(m, x->dtr, sp->train, sp->n_train, sp->val, sp->n_val, nm,
                                      &x->aug, &p), out);
    SP_TRY_GOTO(rc, lineval_sup_predict(m, x->dte, x->test_idx, x->n_test, nm, x->batch,
                                        run->pred, NULL), out);
    row->seconds = m->train_seconds;
    row->selected = m->best_epoch + 1;
    row->val_acc = m->best_val_acc;
out:
    encoder_destroy(&e);
    lineval_sup_destroy(&m);
    return rc;
}

/* -------------------------------------------------------------- driver */

static SpStatus open_data(Ctx *x, const char *train_path, const char *test_path) {
    SpDataOptions o;
    data_options_default(&o);
    SP_TRY(data_options_from_config(x->cfg, &o));
    o.require_labels = 1;
    SP_TRY(dataset_open(&x->dtr, train_path, &o));
    SP_TRY(dataset_open(&x->dte, test_path, &o));
    if (x->dtr->L != x->dte->L)
        SP_FAIL(SP_EINPUT, "'%s' has spectra of %d points, '%s' of %d: train and test must match",
                train_path, x->dtr->L, test_path, x->dte->L);
    x->C = x->dtr->n_classes > x->dte->n_classes ? x->dtr->n_classes : x->dte->n_classes;
    if (x->C < 2)
        SP_FAIL(SP_EINPUT, "'%s': %d class(es); classification needs at least 2", train_path, x->C);
    char d1[512], d2[512];
    dataset_describe(x->dtr, d1, sizeof d1);
    dataset_describe(x->dte, d2, sizeof d2);
    sp_log(SP_LOG_INFO, "train %s: %s", train_path, d1);
    sp_log(SP_LOG_INFO, "test  %s: %s", test_path, d2);
    return SP_OK;
}

static void ctx_free(Ctx *x) {
    if (x->rf_lab)
        for (int s = 0; s < x->spec->n_seeds; s++) {
            free(x->rf_lab[s]);
            free(x->rf_test[s]);
        }
    free(x->rf_lab);
    free(x->rf_test);
    free(x->f_lab);
    free(x->f_test);
    free(x->lab_idx);
    free(x->row_of);
    free(x->test_idx);
    free(x->y_test);
    if (x->have_ck_norm) norm_free(&x->ck_norm);
    if (x->have_sup_norm) norm_free(&x->sup_norm);
    encoder_destroy(&x->enc);
    sp_config_free(x->ckcfg);
    sp_config_free(x->sup_cfg);
    dataset_close(&x->dtr);
    dataset_close(&x->dte);
}

static void split_group(char *out, size_t n, const LinBudget *b, uint64_t seed) {
    if (b->per_class > 0)
        snprintf(out, n, "labels_%d/seed_%llu", b->per_class, (unsigned long long)seed);
    else if (b->fraction > 0)
        snprintf(out, n, "fraction_%g/seed_%llu", b->fraction, (unsigned long long)seed);
    else
        snprintf(out, n, "labels_all/seed_%llu", (unsigned long long)seed);
}

static SpStatus write_splits(const Ctx *x, SpSplit *splits, const char *path,
                             const char *train_path, const char *test_path) {
    SpH5Writer w;
    SP_TRY(sp_h5_create_atomic(&w, path));
    SpStatus rc = SP_OK;
    const LinSweepSpec *s = x->spec;
    char *text = sp_config_dump(x->cfg);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "train", train_path), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "test", test_path), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "ckpt", x->ckpt ? x->ckpt_abs : ""), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "config", text ? text : ""), fail);
    for (int b = 0; b < s->n_budgets; b++)
        for (int i = 0; i < s->n_seeds; i++) {
            char g[128];
            split_group(g, sizeof g, &s->budgets[b], s->seed0 + (uint64_t)i);
            SP_TRY_GOTO(rc, split_save(&splits[b * s->n_seeds + i], w.f, g), fail);
        }
    free(text);
    return sp_h5_commit(&w);
fail:
    free(text);
    sp_h5_abort(&w);
    return rc;
}

SpStatus lineval_sweep_run(LinSweepResult **out, const SpConfig *cfg, const char *ckpt,
                           const char *train_path, const char *test_path,
                           const LinSweepSpec *spec) {
    *out = NULL;
    Ctx x;
    memset(&x, 0, sizeof x);
    x.cfg = cfg;
    x.spec = spec;
    x.ckpt = ckpt;
    SpStatus rc = SP_OK;
    LinSweepResult *r = NULL;
    SpSplit *splits = NULL;
    int32_t *pred = NULL;
    const int nb = spec->n_budgets, ns = spec->n_seeds, nm = spec->n_methods;
    if (nb < 1 || ns < 1 || nm < 1) SP_FAIL(SP_ECONFIG, "sweep: no budgets, seeds or methods");
    for (int i = 0; i < nm; i++) {
        const char *msg = lineval_check_method(spec->methods[i]);
        if (msg) SP_FAIL(SP_ECONFIG, "method '%s': %s", spec->methods[i], msg);
    }
    int need_ssl = needs(spec, "probe") || needs(spec, "knn") || needs(spec, "random_") ||
                   needs(spec, "finetune");
    if (need_ssl && !ckpt)
        SP_FAIL(SP_EUSAGE, "methods probe, knn, random_* and finetune need a checkpoint (--ckpt)");
    x.batch = (int)sp_cfg_int(cfg, "linear_eval.batch");
    x.knn_k = (int)sp_cfg_int(cfg, "linear_eval.knn_k");
    x.knn_t = sp_cfg_float(cfg, "linear_eval.knn_t");
    SP_TRY_GOTO(rc, open_data(&x, train_path, test_path), done);
    SP_TRY_GOTO(rc, lineval_param_from_config(&x.lp, x.grid, cfg, x.C), done);
    SP_TRY_GOTO(rc, lineval_sup_param_from_config(&x.sp, cfg), done);
    SP_TRY_GOTO(rc, aug_spec_from_config(&x.aug, cfg), done);

    r = calloc(1, sizeof *r);
    splits = calloc((size_t)nb * ns, sizeof *splits);
    if (!r || !splits) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
    r->spec = *spec;
    r->C = x.C;
    r->confusion = calloc((size_t)nm * nb * x.C * x.C, sizeof(int64_t));
    if (!r->confusion) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory (confusion matrices)");
    if (x.dtr->class_names && x.dtr->n_class_names == x.C) {
        r->class_names = calloc((size_t)x.C, sizeof(char *));
        if (r->class_names)
            for (int c = 0; c < x.C; c++) {
                size_t l = strlen(x.dtr->class_names[c]);
                r->class_names[c] = malloc(l + 1);
                if (r->class_names[c]) memcpy(r->class_names[c], x.dtr->class_names[c], l + 1);
            }
    }

    /* test rows: the labelled rows of the test file */
    SP_TRY_GOTO(rc, labelled_rows(x.dte, &x.test_idx, &x.n_test), done);
    if (x.n_test == 0) SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': no labelled rows to test on",
                                    test_path);
    x.y_test = malloc((size_t)x.n_test * sizeof(int32_t));
    pred = malloc((size_t)x.n_test * sizeof(int32_t));
    if (!x.y_test || !pred) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
    for (int64_t i = 0; i < x.n_test; i++) x.y_test[i] = x.dte->labels[x.test_idx[i]];
    SP_TRY_GOTO(rc, labelled_rows(x.dtr, &x.lab_idx, &x.n_lab), done);
    x.row_of = malloc(((size_t)x.dtr->n + 1) * sizeof(int64_t));
    if (!x.row_of) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
    for (int64_t i = 0; i < x.dtr->n; i++) x.row_of[i] = -1;
    for (int64_t i = 0; i < x.n_lab; i++) x.row_of[x.lab_idx[i]] = i;

    /* splits first: every method of a run shares them */
    int64_t vpc = sp_cfg_int(cfg, "linear_eval.val_per_class");
    double vfr = sp_cfg_float(cfg, "linear_eval.val_fraction");
    for (int b = 0; b < nb; b++)
        for (int s = 0; s < ns; s++) {
            SpSplitSpec ss = {spec->budgets[b].per_class, spec->budgets[b].fraction, (int)vpc,
                              vpc > 0 ? 0.0 : vfr, spec->seed0 + (uint64_t)s};
            SP_TRY_GOTO(rc, lineval_split(&splits[b * ns + s], x.dtr, &ss), done);
        }

    if (need_ssl) {
        if (!realpath(ckpt, x.ckpt_abs)) snprintf(x.ckpt_abs, sizeof x.ckpt_abs, "%s", ckpt);
        SP_TRY_GOTO(rc, encoder_load_ckpt(ckpt, NULL, &x.ckcfg, &x.enc, NULL), done);
        SP_TRY_GOTO(rc, lineval_load_norm(ckpt, &x.ck_norm, &x.have_ck_norm), done);
        if (x.have_ck_norm && x.ck_norm.kind == SP_NORM_STANDARDISE && x.ck_norm.L != x.dtr->L)
            SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': spectra have %d points, the checkpoint's "
                         "normalisation was fitted on %d", train_path, x.dtr->L, x.ck_norm.L);
        x.D = encoder_feature_dim(x.enc);
        r->encoder_hash = lineval_encoder_hash(x.enc);
        sp_log(SP_LOG_INFO, "encoder %s from %s: feature %d, %zu parameters, input normalisation "
               "%s, fingerprint %016llx", encoder_arch(x.enc), ckpt, x.D,
               sp_params_count(encoder_params(x.enc)),
               x.have_ck_norm ? norm_name(x.ck_norm.kind) : "none (not in the checkpoint)",
               (unsigned long long)r->encoder_hash);
        if (needs(spec, "probe") || needs(spec, "knn")) {
            double t0 = sp_time_now();
            SP_TRY_GOTO(rc, encode_both(&x, x.enc, &x.f_lab, &x.f_test), done);
            r->feature_seconds = sp_time_now() - t0;
            sp_log(SP_LOG_INFO, "features: %lld labelled training rows + %lld test rows in %.1f s",
                   (long long)x.n_lab, (long long)x.n_test, r->feature_seconds);
        }
        if (needs(spec, "random_")) {
            x.rf_lab = calloc((size_t)ns, sizeof(float *));
            x.rf_test = calloc((size_t)ns, sizeof(float *));
            if (!x.rf_lab || !x.rf_test) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
        }
    }
    for (int i = 0; i < nm; i++)
        if (!strncmp(spec->methods[i], "supervised:", 11)) {
            SpNormKind kind;
            SP_TRY_GOTO(rc, norm_parse(sp_cfg_str(cfg, "data.normalise"), &kind), done);
            SP_TRY_GOTO(rc, norm_fit(&x.sup_norm, kind, x.dtr, NULL, x.dtr->n), done);
            x.have_sup_norm = 1;
            SP_TRY_GOTO(rc, lineval_config_with_length(&x.sup_cfg, cfg, x.dtr->L), done);
            sp_log(SP_LOG_INFO, "supervised baselines: input normalisation %s (data.normalise, "
                   "fitted on the %lld rows of the training file)", norm_name(kind),
                   (long long)x.dtr->n);
            break;
        }

    const int total = nb * ns * nm;
    int done_runs = 0;
    double t_start = sp_time_now();
    for (int b = 0; b < nb; b++)
        for (int s = 0; s < ns; s++) {
            const SpSplit *sp = &splits[b * ns + s];
            for (int mi = 0; mi < nm; mi++) {
                if (sp_signal_requested())
                    SP_FAIL_GOTO(rc, done, SP_EINTERRUPT, "sweep interrupted after %d of %d runs",
                                 done_runs, total);
                const char *meth = spec->methods[mi];
                Run run = {sp, b, s, mi, spec->seed0 + (uint64_t)s, pred};
                LinSweepRow row;
                memset(&row, 0, sizeof row);
                snprintf(row.method, sizeof row.method, "%s", meth);
                row.budget = b;
                row.seed = run.seed;
                row.n_train = sp->n_train;
                row.n_val = sp->n_val;
                row.n_test = x.n_test;
                char probe_path[PATH_MAX + 64];
                const char *pp = NULL;
                if (spec->save_probes && spec->out_dir && !strcmp(meth, "probe")) {
                    snprintf(probe_path, sizeof probe_path, "%s/probe_%s_s%llu.h5", spec->out_dir,
                             spec->budgets[b].per_class > 0 || spec->budgets[b].fraction > 0
                                 ? spec->budgets[b].name : "all",
                             (unsigned long long)run.seed);
                    for (char *c = probe_path + strlen(spec->out_dir); *c; c++)
                        if (*c == '%') *c = 'p';
                    pp = probe_path;
                }
                if (!strcmp(meth, "probe") || !strcmp(meth, "knn")) {
                    SP_TRY_GOTO(rc, run_feature_method(&x, &run, x.f_lab, x.f_test, x.D,
                                                       !strcmp(meth, "knn"), &row, pp), done);
                } else if (!strncmp(meth, "random_", 7)) {
                    SP_TRY_GOTO(rc, random_features(&x, s), done);
                    SP_TRY_GOTO(rc, run_feature_method(&x, &run, x.rf_lab[s], x.rf_test[s], x.rD,
                                                       !strcmp(meth, "random_knn"), &row, NULL),
                                done);
                } else {
                    SP_TRY_GOTO(rc, run_trained_method(&x, &run, meth, &row), done);
                }
                LinMetrics mt;
                SP_TRY_GOTO(rc, lineval_metrics(&mt, pred, x.y_test, x.n_test, x.C), done);
                row.acc = mt.acc;
                row.f1 = mt.macro_f1;
                int64_t *cf = r->confusion + ((size_t)mi * nb + b) * x.C * x.C;
                for (size_t k = 0; k < (size_t)x.C * x.C; k++) cf[k] += mt.confusion[k];
                lineval_metrics_free(&mt);
                rc = add_row(r, &row);
                if (rc != SP_OK) goto done;
                done_runs++;
                sp_log(SP_LOG_INFO, "sweep [%d/%d] labels=%s seed=%llu method=%s n_train=%lld "
                       "test_acc=%.4f macro_f1=%.4f time_s=%.2f wall_s=%.0f", done_runs, total,
                       spec->budgets[b].name, (unsigned long long)run.seed, meth,
                       (long long)sp->n_train, row.acc, row.f1, row.seconds,
                       sp_time_now() - t_start);
            }
        }
    if (x.enc) {   /* the frozen check */
        uint64_t h = lineval_encoder_hash(x.enc);
        if (h != r->encoder_hash)
            SP_FAIL_GOTO(rc, done, SP_EINTERNAL, "frozen-encoder check failed: the encoder of "
                         "'%s' changed during the evaluation (fingerprint %016llx -> %016llx)",
                         ckpt, (unsigned long long)r->encoder_hash, (unsigned long long)h);
        sp_log(SP_LOG_INFO, "frozen-encoder check: parameters and BN statistics unchanged "
               "(fingerprint %016llx)", (unsigned long long)h);
    }
    if (spec->out_dir) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/splits.h5", spec->out_dir);
        SP_TRY_GOTO(rc, write_splits(&x, splits, path, train_path, test_path), done);
        if (spec->reports) SP_TRY_GOTO(rc, lineval_sweep_write_reports(r, spec->out_dir), done);
    }
    *out = r;
    r = NULL;
done:
    if (splits)
        for (int i = 0; i < nb * ns; i++) split_free(&splits[i]);
    free(splits);
    free(pred);
    lineval_sweep_free(&r);
    ctx_free(&x);
    return rc;
}
