/* test_baselines: the supervised-baseline encoders (fcnn, binned_fcnn, lstm,
 * transformer, convsct; encoder/enc_*.c) and the LSTM layer (core/sp_rnn.h).
 *
 * - lstm_layer: tier A (tests/support/ref_lstm.c: double backward vs central
 *   differences of the double forward, every coordinate, rel err <= 1e-7 with
 *   the denominator floored at 1e-3 of the tensor's largest entry: below that
 *   the rounding of the loss dominates) and tier B (production float forward,
 *   dinp, dW_ih, dW_hh, db_ih, db_hh vs the double reference, rtol 1e-4,
 *   backward into prefilled gradients so accumulation is checked too; no-bias
 *   and T = 1 cases); 1 vs 2 threads.
 * - gradcheck: tier C through every architecture (STYLE.md 3): float
 *   forward, eps = 1e-2, loss = sum(feat * G) in double with a fixed random G,
 *   up to 4 coordinates of every parameter tensor; max relative error <= 2e-2,
 *   mean <= 1e-3, every gradient finite; at init and after 3 SGD steps; the
 *   BatchNorm architectures in training and in eval (frozen statistics) mode.
 *   The loss is evaluated at -2, -1, 0, 1, 2 eps. Smooth around the
 *   coordinate (the four slopes change linearly): the fourth-order central
 *   difference (Richardson on eps, 2 eps); a kink only outside [-eps, eps]
 *   (inner slopes agree within 1 %): the central difference; else the
 *   coordinate sits next to a ReLU / max-pool kink and is skipped, counted
 *   and replaced by another draw (forward values only decide). Every tensor
 *   needs one kink-free coordinate; at most a third of the draws may be
 *   skipped. Relative errors use |a - n| / max(|a| + |n|, floor), floor =
 *   max(1e-3 of the largest gradient, 100 noise), noise = FLT_EPSILON *
 *   sum|feat G| / eps: the float rounding of the loss, as a slope. Smaller
 *   entries are thus checked to an absolute 2 noise.
 *   A few weights are scaled before the check where a normalisation follows
 *   them (the function barely changes, the step eps becomes small relative
 *   to the weights): see scale_tensor / convsct_prep.
 * - forward: shapes, parameter counts of the default configs at L = 4020,
 *   feature of one sample independent of the batch in eval mode, length and
 *   config errors naming the key.
 * - io: save/load round trip bit-exact (parameters and buffers), same
 *   features after loading.
 * - determinism: 1 thread twice and 2 threads twice bit-identical, 1 vs 2
 *   threads close (binned_fcnn, whose threads own whole bins: identical).
 * - train: every architecture + a linear head (CE, core Adam) overfits a
 *   tiny labelled set (3 classes x 4 spectra): loss < 0.05 and 100 % eval
 *   accuracy.
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_lstm.h"
#include "sp_blas.h"
#include "sp_checkpoint.h"
#include "sp_config.h"
#include "sp_encoder.h"
#include "sp_h5.h"
#include "sp_layers.h"
#include "sp_losses.h"
#include "sp_optim.h"
#include "sp_rnn.h"
#include "sp_enc_test.h"
#include "sp_test.h"

/* ================================================================ LSTM layer */
typedef struct { int B, T, E, H, bias; } LstmCase;
static const LstmCase lstm_cases[] = {
    {2, 5, 3, 4, 1},   /* the brief's tiny shape */
    {3, 1, 2, 3, 1},   /* one step: no recurrent term */
    {5, 7, 4, 6, 1},   /* odd batch: uneven thread blocks */
    {2, 4, 3, 5, 0},   /* no biases */
};
#define N_LSTM_CASES ((int)(sizeof lstm_cases / sizeof lstm_cases[0]))

typedef struct {
    LstmCase c;
    size_t ni, no, nwi, nwh, nb;
    double *inp, *wih, *whh, *bih, *bhh, *G;
} LstmRef;

static void lstm_ref_make(LstmRef *r, LstmCase c, unsigned long long seed) {
    r->c = c;
    r->ni = (size_t)c.B * c.T * c.E;
    r->no = (size_t)c.B * c.T * c.H;
    r->nwi = (size_t)4 * c.H * c.E;
    r->nwh = (size_t)4 * c.H * c.H;
    r->nb = (size_t)4 * c.H;
    r->inp = malloc(sizeof(double) * r->ni);
    r->wih = malloc(sizeof(double) * r->nwi);
    r->whh = malloc(sizeof(double) * r->nwh);
    r->bih = malloc(sizeof(double) * r->nb);
    r->bhh = malloc(sizeof(double) * r->nb);
    r->G = malloc(sizeof(double) * r->no);
    sp_fill_uniform_d(r->inp, r->ni, seed, -1.0, 1.0);
    sp_fill_uniform_d(r->wih, r->nwi, seed + 1, -0.6, 0.6);
    sp_fill_uniform_d(r->whh, r->nwh, seed + 2, -0.6, 0.6);
    sp_fill_uniform_d(r->bih, r->nb, seed + 3, -0.5, 0.5);
    sp_fill_uniform_d(r->bhh, r->nb, seed + 4, -0.5, 0.5);
    sp_fill_uniform_d(r->G, r->no, seed + 5, -1.0, 1.0);
}

static void lstm_ref_free(LstmRef *r) {
    free(r->inp);
    free(r->wih);
    free(r->whh);
    free(r->bih);
    free(r->bhh);
    free(r->G);
}

static double lstm_ref_loss(const LstmRef *r) {
    const LstmCase c = r->c;
    double *out = malloc(sizeof(double) * r->no);
    ref_lstm_forward(out, NULL, r->inp, r->wih, r->whh, c.bias ? r->bih : NULL,
                     c.bias ? r->bhh : NULL, c.B, c.T, c.E, c.H);
    double l = 0.0;
    for (size_t i = 0; i < r->no; i++) l += out[i] * r->G[i];
    free(out);
    return l;
}

/* Tier A: the reference backward against central differences in double. */
START_TEST(lstm_gradcheck_double) {
    const LstmCase c = lstm_cases[_i];
    LstmRef r;
    lstm_ref_make(&r, c, 100 + (unsigned long long)_i);
    double *g[5];
    size_t n[5] = {r.ni, r.nwi, r.nwh, r.nb, r.nb};
    double *v[5] = {r.inp, r.wih, r.whh, r.bih, r.bhh};
    const char *name[5] = {"dinp", "dw_ih", "dw_hh", "db_ih", "db_hh"};
    for (int k = 0; k < 5; k++) g[k] = calloc(n[k], sizeof(double));
    ref_lstm_backward(g[0], g[1], g[2], c.bias ? g[3] : NULL, c.bias ? g[4] : NULL, r.G, r.inp,
                      r.wih, r.whh, c.bias ? r.bih : NULL, c.bias ? r.bhh : NULL, c.B, c.T, c.E,
                      c.H);
    double worst = 0.0;
    for (int k = 0; k < (c.bias ? 5 : 3); k++) {
        /* relative errors of entries far below the tensor's largest one are
         * dominated by the rounding of the loss (|L| eps_double / eps): floor
         * the denominator at 1e-3 of the largest analytic entry */
        const double floor_k = 1e-3 * sp_max_abs_d(g[k], n[k]);
        for (size_t i = 0; i < n[k]; i++) {
            const double x0 = v[k][i], eps = 1e-5 * fmax(1.0, fabs(x0));
            v[k][i] = x0 + eps;
            const double lp = lstm_ref_loss(&r);
            v[k][i] = x0 - eps;
            const double lm = lstm_ref_loss(&r);
            v[k][i] = x0;
            const double num = (lp - lm) / (2.0 * eps);
            double den = fabs(g[k][i]) + fabs(num);
            if (den < floor_k) den = floor_k;
            const double err = den > 0 ? fabs(g[k][i] - num) / den : 0.0;
            ck_assert_msg(err <= 1e-7, "case %d %s[%zu]: analytic %.12g numeric %.12g rel err %.3g",
                          _i, name[k], i, g[k][i], num, err);
            if (err > worst) worst = err;
        }
    }
    if (getenv("SPECSSL_TEST_LOG")) fprintf(stderr, "lstm tier A case %d: max rel err %.3g\n", _i, worst);
    for (int k = 0; k < 5; k++) free(g[k]);
    lstm_ref_free(&r);
}
END_TEST

static float *to_float(const double *x, size_t n) {
    float *f = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}

/* Production forward + backward (into gradients prefilled with `pre`). */
typedef struct {
    float *out, *dinp, *dwih, *dwhh, *dbih, *dbhh;
} LstmRun;

static void lstm_run(LstmRun *o, const LstmRef *r, float pre) {
    const LstmCase c = r->c;
    SpLSTM s = {c.B, c.T, c.E, c.H};
    float *inp = to_float(r->inp, r->ni), *wih = to_float(r->wih, r->nwi);
    float *whh = to_float(r->whh, r->nwh), *bih = to_float(r->bih, r->nb);
    float *bhh = to_float(r->bhh, r->nb), *G = to_float(r->G, r->no);
    float *cache = malloc(sizeof(float) * lstm_cache_floats(&s));
    float *work = malloc(sizeof(float) * lstm_work_floats(&s));
    o->out = malloc(sizeof(float) * r->no);
    o->dinp = malloc(sizeof(float) * r->ni);
    o->dwih = malloc(sizeof(float) * r->nwi);
    o->dwhh = malloc(sizeof(float) * r->nwh);
    o->dbih = malloc(sizeof(float) * r->nb);
    o->dbhh = malloc(sizeof(float) * r->nb);
    float *all[5] = {o->dinp, o->dwih, o->dwhh, o->dbih, o->dbhh};
    size_t n[5] = {r->ni, r->nwi, r->nwh, r->nb, r->nb};
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < n[k]; i++) all[k][i] = pre;
    lstm_forward(o->out, cache, inp, wih, whh, c.bias ? bih : NULL, c.bias ? bhh : NULL, &s);
    lstm_backward(o->dinp, o->dwih, o->dwhh, c.bias ? o->dbih : NULL, c.bias ? o->dbhh : NULL, G,
                  inp, o->out, cache, wih, whh, &s, work);
    free(inp);
    free(wih);
    free(whh);
    free(bih);
    free(bhh);
    free(G);
    free(cache);
    free(work);
}

static void lstm_run_free(LstmRun *o) {
    free(o->out);
    free(o->dinp);
    free(o->dwih);
    free(o->dwhh);
    free(o->dbih);
    free(o->dbhh);
}

/* Tier B: float production layer vs the double reference. */
START_TEST(lstm_vs_reference) {
    sp_blas_init(0);
    const LstmCase c = lstm_cases[_i];
    LstmRef r;
    lstm_ref_make(&r, c, 200 + (unsigned long long)_i);
    /* the float inputs, back in double, are what the reference sees */
    double *v[5] = {r.inp, r.wih, r.whh, r.bih, r.bhh};
    size_t nv[5] = {r.ni, r.nwi, r.nwh, r.nb, r.nb};
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < nv[k]; i++) v[k][i] = (double)(float)v[k][i];
    for (size_t i = 0; i < r.no; i++) r.G[i] = (double)(float)r.G[i];
    const float pre = 0.25f;
    LstmRun o;
    lstm_run(&o, &r, pre);

    double *out = malloc(sizeof(double) * r.no);
    ref_lstm_forward(out, NULL, r.inp, r.wih, r.whh, c.bias ? r.bih : NULL, c.bias ? r.bhh : NULL,
                     c.B, c.T, c.E, c.H);
    sp_expect_close_d("lstm out", o.out, out, r.no, 1e-4, 1e-6 * sp_max_abs_d(out, r.no));
    double *g[5];
    for (int k = 0; k < 5; k++) g[k] = calloc(nv[k], sizeof(double));
    ref_lstm_backward(g[0], g[1], g[2], g[3], g[4], r.G, r.inp, r.wih, r.whh,
                      c.bias ? r.bih : NULL, c.bias ? r.bhh : NULL, c.B, c.T, c.E, c.H);
    const float *got[5] = {o.dinp, o.dwih, o.dwhh, o.dbih, o.dbhh};
    const char *name[5] = {"dinp", "dw_ih", "dw_hh", "db_ih", "db_hh"};
    for (int k = 0; k < 5; k++) {
        double m = sp_max_abs_d(g[k], nv[k]);
        if (k >= 3 && !c.bias) {
            /* NULL bias gradients are untouched */
            for (size_t i = 0; i < nv[k]; i++) ck_assert_float_eq(got[k][i], pre);
            continue;
        }
        for (size_t i = 0; i < nv[k]; i++) g[k][i] += pre;   /* backward adds */
        sp_expect_close_d(name[k], got[k], g[k], nv[k], 1e-4, 1e-6 * m);
    }
    for (int k = 0; k < 5; k++) free(g[k]);
    free(out);
    lstm_run_free(&o);
    lstm_ref_free(&r);
}
END_TEST

START_TEST(lstm_threads) {
    /* Same result for one and two threads (blocks of samples and of gate
     * rows); bit-identical when repeated with the same count. */
    sp_blas_init(0);
    LstmRef r;
    lstm_ref_make(&r, (LstmCase){5, 6, 3, 4, 1}, 300);
    LstmRun o[4];
    for (int k = 0; k < 4; k++) {
        omp_set_num_threads(k < 2 ? 1 : 2);
        lstm_run(&o[k], &r, 0.0f);
    }
    size_t no = r.no, nw = r.nwh;
    ck_assert(memcmp(o[0].out, o[1].out, no * sizeof(float)) == 0);
    ck_assert(memcmp(o[0].dwhh, o[1].dwhh, nw * sizeof(float)) == 0);
    ck_assert(memcmp(o[2].out, o[3].out, no * sizeof(float)) == 0);
    ck_assert(memcmp(o[2].dwhh, o[3].dwhh, nw * sizeof(float)) == 0);
    ck_assert(memcmp(o[2].dinp, o[3].dinp, r.ni * sizeof(float)) == 0);
    sp_expect_close_f("out 1 vs 2 threads", o[2].out, o[0].out, no, 1e-5, 1e-7);
    sp_expect_close_f("dinp 1 vs 2 threads", o[2].dinp, o[0].dinp, r.ni, 1e-4, 1e-6);
    sp_expect_close_f("dw_ih 1 vs 2 threads", o[2].dwih, o[0].dwih, r.nwi, 1e-4, 1e-6);
    sp_expect_close_f("dw_hh 1 vs 2 threads", o[2].dwhh, o[0].dwhh, nw, 1e-4, 1e-6);
    sp_expect_close_f("db_ih 1 vs 2 threads", o[2].dbih, o[0].dbih, r.nb, 1e-4, 1e-6);
    for (int k = 0; k < 4; k++) lstm_run_free(&o[k]);
    lstm_ref_free(&r);
}
END_TEST

/* ================================================================ encoders */
static const char *const FCNN_TINY[] = {"encoder.arch=fcnn", "encoder.input_length=11",
                                        "encoder.fcnn.hidden=[6, 5, 4]", NULL};
static const char *const FCNN_NOLN[] = {"encoder.arch=fcnn", "encoder.input_length=11",
                                        "encoder.fcnn.hidden=[6]",
                                        "encoder.fcnn.input_layernorm=false", NULL};
static const char *const BINNED_TINY[] = {"encoder.arch=binned_fcnn", "encoder.binned_fcnn.bins=3",
                                          "encoder.binned_fcnn.hidden=5", NULL};
static const char *const LSTM_TINY[] = {"encoder.arch=lstm", "encoder.lstm.patch=4",
                                        "encoder.lstm.embed_dim=4", "encoder.lstm.hidden=5",
                                        "encoder.lstm.layers=2", NULL};
static const char *const LSTM_LAST[] = {"encoder.arch=lstm", "encoder.lstm.patch=3",
                                        "encoder.lstm.embed_dim=4", "encoder.lstm.hidden=3",
                                        "encoder.lstm.layers=1", "encoder.lstm.pool=last",
                                        "encoder.lstm.input_layernorm=false", NULL};
static const char *const TF_TINY[] = {"encoder.arch=transformer", "encoder.transformer.patch=4",
                                      "encoder.transformer.d_model=4", "encoder.transformer.heads=2",
                                      "encoder.transformer.layers=2", "encoder.transformer.ff=6",
                                      NULL};
static const char *const CONVSCT_TINY[] = {
    "encoder.arch=convsct", "encoder.convsct.conv1_channels=4", "encoder.convsct.conv3_channels=4",
    "encoder.convsct.bins=12", "encoder.convsct.embed_dim=8", "encoder.convsct.heads=2",
    "encoder.convsct.bn_splits=2", "encoder.convsct.ff=6", "encoder.convsct.bn_gamma_init=one",
    NULL};

typedef struct {
    SpEncoder *e;
    SpEncAct *a;
    float *x, *G, *feat;
    int B, L, D, mode;
} Case;

static void case_init(Case *c, const char *const *sets, int B, int L, unsigned long long seed) {
    memset(c, 0, sizeof *c);
    SpConfig *cfg = sp_enc_cfg(sets);
    SpRng rng;
    sp_rng_stream(&rng, seed, 1, 0, 0);
    ck_assert_msg(encoder_create(&c->e, cfg, &rng) == SP_OK, "%s", sp_error_message());
    ck_assert_msg(encoder_act_create(&c->a, c->e, B, L) == SP_OK, "%s", sp_error_message());
    sp_config_free(cfg);
    c->B = B;
    c->L = L;
    c->D = encoder_feature_dim(c->e);
    c->mode = SP_ENC_TRAIN;
    c->x = malloc(sizeof(float) * (size_t)B * L);
    c->G = malloc(sizeof(float) * (size_t)B * c->D);
    c->feat = malloc(sizeof(float) * (size_t)B * c->D);
    sp_fill_spectra(c->x, B, L, seed + 1);
    sp_fill_uniform_f(c->G, (size_t)B * c->D, seed + 2, -1.0, 1.0);
}

static void case_free(Case *c) {
    encoder_act_destroy(&c->a);
    encoder_destroy(&c->e);
    free(c->x);
    free(c->G);
    free(c->feat);
}

static double case_loss(Case *c) {
    SpStatus rc = encoder_forward(c->e, c->a, c->x, c->B, c->mode, c->feat);
    ck_assert_msg(rc == SP_OK, "forward: %s", sp_error_message());
    double s = 0.0;
    for (size_t i = 0; i < (size_t)c->B * c->D; i++) s += (double)c->feat[i] * (double)c->G[i];
    return s;
}

static double case_grad(Case *c) {
    sp_params_zero_grad(encoder_params(c->e));
    double l = case_loss(c);
    encoder_backward(c->e, c->a, c->G, c->B);
    return l;
}

static double max_abs_grad(const SpParams *p) {
    double m = 0.0;
    for (size_t i = 0; i < p->n_param; i++) m = fmax(m, fabs((double)p->grad[i]));
    return m;
}

static void gradcheck_now(Case *c, const char *what, unsigned long long seed) {
    const float eps = 1e-2f;
    const double l0 = case_grad(c);
    /* Float rounding of one loss evaluation: about an ulp of sum |feat G|;
     * noise_g bounds its effect on a difference quotient. */
    double sabs = 0.0;
    for (size_t i = 0; i < (size_t)c->B * c->D; i++) sabs += fabs((double)c->feat[i] * c->G[i]);
    const double noise_g = FLT_EPSILON * sabs / (double)eps;
    SpParams *p = encoder_params(c->e);
    const double gmax = max_abs_grad(p);
    const double floor_abs = fmax(1e-3 * gmax, 100.0 * noise_g);
    ck_assert_msg(gmax > 0 && isfinite(gmax), "%s: gradients all zero or not finite", what);
    for (size_t i = 0; i < p->n_param; i++)
        ck_assert_msg(isfinite(p->grad[i]), "%s: gradient %zu not finite", what, i);
    SpRng r;
    sp_rng_stream(&r, seed, 7, 0, 0);
    double max_err = 0.0, sum_err = 0.0;
    int count = 0, skipped = 0, tried = 0;
    for (int ti = 0; ti < p->n; ti++) {
        const SpTensorInfo *t = &p->t[ti];
        if (t->kind != SP_TENSOR_PARAM) continue;
        float *w = sp_params_data(p, ti);
        const float *g = sp_params_grad(p, ti);
        const int want = t->count < 4 ? (int)t->count : 4;
        int got = 0;
        for (int k = 0; k < 16 && got < want; k++) {
            size_t i = (t->count <= 4 && k < (int)t->count)
                           ? (size_t)k
                           : (size_t)sp_rng_below(&r, (int64_t)t->count);
            const float w0 = w[i];
            double lv[5];
            for (int j = 0; j < 5; j++) {
                if (j == 2) {
                    lv[j] = l0;
                    continue;
                }
                w[i] = w0 + (float)(j - 2) * eps;
                lv[j] = case_loss(c);
            }
            w[i] = w0;
            tried++;
            /* Slopes over [-2,-1], [-1,0], [0,1], [1,2] eps. (a) On a smooth
             * loss they change linearly (second differences of order eps^2
             * times the third derivative): no kink in [-2 eps, 2 eps], use the
             * fourth-order difference (Richardson on eps and 2 eps). (b)
             * Otherwise, if the two inner slopes agree within 1 %, no kink of
             * consequence lies in [-eps, eps]: use the central difference.
             * (c) Else a ReLU / max-pool kink sits next to the coordinate: skip
             * it (the decision uses forward values only). */
            double sl[4];
            for (int j = 0; j < 4; j++) sl[j] = (lv[j + 1] - lv[j]) / (double)eps;
            const double k1 = fabs(sl[0] - 2 * sl[1] + sl[2]), k2 = fabs(sl[1] - 2 * sl[2] + sl[3]);
            const double tol = 0.02 * (fabs(sl[1]) + fabs(sl[2]));
            double n;
            if (fmax(k1, k2) <= tol + 0.05 * floor_abs) {
                n = (8.0 * (lv[3] - lv[1]) - (lv[4] - lv[0])) / (12.0 * (double)eps);
            } else if (fabs(sl[1] - sl[2]) <= 0.5 * tol + 0.02 * floor_abs) {
                n = (lv[3] - lv[1]) / (2.0 * (double)eps);
            } else {
                if (getenv("SPECSSL_TEST_KINKS"))
                    fprintf(stderr, "%s %s[%zu] skipped: slopes %.6g %.6g %.6g %.6g grad %.6g\n",
                            what, t->name, i, sl[0], sl[1], sl[2], sl[3], (double)g[i]);
                skipped++;
                continue;
            }
            got++;
            const double a = g[i];
            double den = fabs(a) + fabs(n);
            if (den < floor_abs) den = floor_abs;
            const double err = den > 0 ? fabs(a - n) / den : 0.0;
            if (getenv("SPECSSL_TEST_KINKS") && err > 1e-2)   /* diagnostics */
                fprintf(stderr, "%s %s[%zu]: a %.7g n %.7g slopes %.6g %.6g %.6g %.6g floor %.3g\n",
                        what, t->name, i, a, n, sl[0], sl[1], sl[2], sl[3], floor_abs);
            ck_assert_msg(err <= 2e-2,
                          "%s %s[%zu]: analytic %.7g numeric %.7g rel err %.3g (eps %g)", what,
                          t->name, i, a, n, err, (double)eps);
            if (err > max_err) max_err = err;
            sum_err += err;
            count++;
        }
        ck_assert_msg(got >= 1, "%s %s: every coordinate tried sits on a kink", what, t->name);
    }
    ck_assert_msg(3 * skipped <= tried, "%s: %d of %d coordinates sit on a kink", what, skipped,
                  tried);
    const double mean = sum_err / count;
    ck_assert_msg(mean <= 1e-3,
                  "%s: mean relative error %.3g over %d coordinates (max %.3g)", what, mean, count,
                  max_err);
    if (getenv("SPECSSL_TEST_LOG"))
        fprintf(stderr, "%s: %d coordinates, max rel err %.3g, mean %.3g, %d/%d kinks skipped, "
                "floor %.3g\n", what, count, max_err, mean, skipped, tried, floor_abs);
}

static void sgd_steps(Case *c, int steps, float lr) {
    for (int s = 0; s < steps; s++) {
        case_grad(c);
        SpParams *p = encoder_params(c->e);
        for (size_t i = 0; i < p->n_param; i++) p->data[i] -= lr * p->grad[i];
    }
}

static void scale_tensor(Case *c, const char *name, float f) {
    SpParams *p = encoder_params(c->e);
    int i = sp_params_find(p, name);
    ck_assert_int_ge(i, 0);
    for (size_t j = 0; j < p->t[i].count; j++) sp_params_data(p, i)[j] *= f;
}

/* fcnn (with its LayerNorms) and lstm: the weights of a Linear followed by a
 * LayerNorm x 10 (fc<i>.weight; patch_embed.weight): the step
 * eps of the Linear's bias and weights then moves the ReLUs after the
 * LayerNorm (B T E of them in lstm) by a fraction of their spread instead of
 * across many kinks; the function changes only through the bias / weight
 * ratio.
 * convsct: the conv1, conv3 and dec_conv3 weights x 10. BatchNorm follows
 * each of these convolutions, so the function barely changes (only the
 * bias / weight ratios), but eps becomes a small relative step for weights
 * drawn from N(0, 0.05^2): without it nearly every coordinate moves some
 * max-pool or ReLU input across its kink within +-2 eps. dec_bias sets the
 * last BatchNorm's bias: most final ReLUs open, so that the 4 dec_conv3
 * weights (each moving all B*T final units) are not all next to a kink. */
static void convsct_prep(Case *c, float gamma, float dec_bias) {
    SpParams *p = encoder_params(c->e);
    scale_tensor(c, "conv1.0.weight", 10.0f);
    scale_tensor(c, "conv3.0.weight", 10.0f);
    scale_tensor(c, "dec_conv3.0.weight", 10.0f);
    sp_params_data(p, sp_params_find(p, "C_Attention_F.gamma"))[0] = gamma;
    sp_params_data(p, sp_params_find(p, "dec_conv3.1.bias"))[0] = dec_bias;
}

static void gradcheck_case(const char *const *sets, int B, int L, int mode, const char *what,
                           unsigned long long seed) {
    sp_blas_init(0);
    Case c;
    case_init(&c, sets, B, L, seed);
    c.mode = mode;
    if (strcmp(encoder_arch(c.e), "convsct") == 0) convsct_prep(&c, 0.0f, 1.5f);
    if (strcmp(encoder_arch(c.e), "lstm") == 0) scale_tensor(&c, "patch_embed.weight", 10.0f);
    if (strcmp(encoder_arch(c.e), "fcnn") == 0) {
        SpParams *p = encoder_params(c.e);
        for (int i = 0; i < p->n; i++)
            if (strncmp(p->t[i].name, "fc", 2) == 0 && strstr(p->t[i].name, ".weight"))
                scale_tensor(&c, p->t[i].name, 10.0f);
    }
    char name[128];
    snprintf(name, sizeof name, "%s at init", what);
    gradcheck_now(&c, name, seed);
    sgd_steps(&c, 3, 0.05f);
    snprintf(name, sizeof name, "%s after 3 SGD steps", what);
    gradcheck_now(&c, name, seed + 10);
    case_free(&c);
}

START_TEST(gradcheck_fcnn) { gradcheck_case(FCNN_TINY, 3, 11, SP_ENC_TRAIN, "fcnn", 11); }
END_TEST
START_TEST(gradcheck_fcnn_no_ln) { gradcheck_case(FCNN_NOLN, 3, 11, SP_ENC_TRAIN, "fcnn no LN", 12); }
END_TEST
START_TEST(gradcheck_binned) { gradcheck_case(BINNED_TINY, 3, 13, SP_ENC_TRAIN, "binned_fcnn", 21); }
END_TEST
START_TEST(gradcheck_binned_eval) {
    gradcheck_case(BINNED_TINY, 3, 13, SP_ENC_EVAL_GRAD, "binned_fcnn eval", 22);
}
END_TEST
START_TEST(gradcheck_lstm) { gradcheck_case(LSTM_TINY, 4, 17, SP_ENC_TRAIN, "lstm", 31); }
END_TEST
START_TEST(gradcheck_lstm_last) { gradcheck_case(LSTM_LAST, 2, 11, SP_ENC_TRAIN, "lstm last", 32); }
END_TEST
START_TEST(gradcheck_transformer) { gradcheck_case(TF_TINY, 3, 13, SP_ENC_TRAIN, "transformer", 41); }
END_TEST
START_TEST(gradcheck_convsct) { gradcheck_case(CONVSCT_TINY, 4, 61, SP_ENC_TRAIN, "convsct", 51); }
END_TEST
START_TEST(gradcheck_convsct_eval) {
    gradcheck_case(CONVSCT_TINY, 4, 61, SP_ENC_EVAL_GRAD, "convsct eval", 52);
}
END_TEST
START_TEST(gradcheck_convsct_cam_active) {
    /* CAM gamma is 0 at init, which cuts the paths through the channel
     * attention softmax: check them with gamma = 0.7. */
    sp_blas_init(0);
    Case c;
    case_init(&c, CONVSCT_TINY, 4, 61, 53);
    convsct_prep(&c, 0.7f, 1.5f);
    gradcheck_now(&c, "convsct gamma 0.7", 53);
    case_free(&c);
}
END_TEST

/* ---------------------------------------------------------------- forward */
static size_t count_params(const char *const *sets) {
    SpConfig *cfg = sp_enc_cfg(sets);
    SpEncoder *e = NULL;
    ck_assert_msg(encoder_create(&e, cfg, NULL) == SP_OK, "%s", sp_error_message());
    size_t n = sp_params_count(encoder_params(e));
    encoder_destroy(&e);
    sp_config_free(cfg);
    return n;
}

START_TEST(default_parameter_counts) {
    /* Default configs. fcnn at L = 4023: the reference FCNN 1D's 1,204,335
     * minus its Linear(64, 1) head (65). */
    const char *f4023[] = {"encoder.arch=fcnn", "encoder.input_length=4023", NULL};
    ck_assert_uint_eq(count_params(f4023), 1204335 - 65);
    const char *f4020[] = {"encoder.arch=fcnn", "encoder.input_length=4020", NULL};
    ck_assert_uint_eq(count_params(f4020), 1204335 - 65 - 3 * 2 - 3 * 256);
    /* binned: reference 1059 + 1058 (B - 1) minus its Linear(2B, 1) head */
    const char *bf[] = {"encoder.arch=binned_fcnn", NULL};
    ck_assert_uint_eq(count_params(bf), 1059 + 1058 * 14 - (2 * 15 + 1));
    const char *b1[] = {"encoder.arch=binned_fcnn", "encoder.binned_fcnn.bins=1", NULL};
    ck_assert_uint_eq(count_params(b1), 1059 - 3);
    /* lstm: embed 16*64+64 + LN 128; layer 0: 4*128*(64+128) + 2*512; layer 1:
     * 4*128*256 + 1024; LN 256 */
    const char *ls[] = {"encoder.arch=lstm", NULL};
    ck_assert_uint_eq(count_params(ls), 1088 + 128 + 98304 + 1024 + 131072 + 1024 + 256);
    /* reference LSTM(512, 512, 2 layers): 4,202,496 LSTM parameters */
    const char *lr[] = {"encoder.arch=lstm", "encoder.lstm.embed_dim=512",
                        "encoder.lstm.hidden=512", NULL};
    ck_assert_uint_eq(count_params(lr), 16 * 512 + 512 + 1024 + 4202496 + 1024);
    /* transformer: embed 16*64+64; per layer MHA 4*64*64+4*64, FF 64*128+128+128*64+64, LN 256 */
    const char *tf[] = {"encoder.arch=transformer", NULL};
    ck_assert_uint_eq(count_params(tf), 1088 + 2 * (16640 + 16576 + 256));
    /* reference layer (d 256, 8 heads, ff 256): 395,776 parameters */
    const char *tr[] = {"encoder.arch=transformer", "encoder.transformer.d_model=256",
                        "encoder.transformer.heads=8", "encoder.transformer.ff=256",
                        "encoder.transformer.layers=1", NULL};
    ck_assert_uint_eq(count_params(tr), 16 * 256 + 256 + 395776);
    /* convsct: ConvSC's 37,636 + 131,968 */
    const char *cs[] = {"encoder.arch=convsct", NULL};
    ck_assert_uint_eq(count_params(cs), 37636 + 65536 + 512 + 65536 + 128 + 256);
}
END_TEST

START_TEST(shapes_lengths_flops) {
    struct {
        const char *const *sets;
        int D, Lmin;
    } k[] = {{FCNN_TINY, 4, 11}, {BINNED_TINY, 6, 6}, {LSTM_TINY, 5, 4}, {TF_TINY, 4, 4},
             {CONVSCT_TINY, 8, 27}};
    for (int i = 0; i < 5; i++) {
        SpConfig *cfg = sp_enc_cfg(k[i].sets);
        SpEncoder *e = NULL;
        ck_assert(encoder_create(&e, cfg, NULL) == SP_OK);
        ck_assert_int_eq(encoder_feature_dim(e), k[i].D);
        ck_assert_int_eq(encoder_min_length(e), k[i].Lmin);
        ck_assert_msg(encoder_flops(e, 61 > k[i].Lmin ? 61 : k[i].Lmin) > 0, "flops");
        encoder_destroy(&e);
        sp_config_free(cfg);
    }
    /* Defaults at L = 4020 (FLOPs = 2 per multiply-add). */
    const char *ls[] = {"encoder.arch=lstm", NULL};
    SpConfig *cfg = sp_enc_cfg(ls);
    SpEncoder *e = NULL;
    ck_assert(encoder_create(&e, cfg, NULL) == SP_OK);
    /* T = 252: embed 16*64, layer0 4*128*192, layer1 4*128*256 per step */
    double f = encoder_flops(e, 4020), want = 2.0 * 252 * (1024 + 98304 + 131072);
    ck_assert_msg(fabs(f - want) < 1, "lstm flops %g, want %g", f, want);
    encoder_destroy(&e);
    sp_config_free(cfg);
}
END_TEST

START_TEST(eval_batch_independence) {
    /* Eval mode: a sample's feature does not depend on the rest of the batch;
     * the last patch (zero-padded) is handled for any L. */
    sp_blas_init(0);
    const char *const *cfgs[] = {FCNN_TINY, BINNED_TINY, LSTM_TINY, LSTM_LAST, TF_TINY,
                                 CONVSCT_TINY};
    const int Ls[] = {11, 14, 15, 10, 17, 61};
    for (int k = 0; k < 6; k++) {
        Case c;
        case_init(&c, cfgs[k], 3, Ls[k], 900 + (unsigned long long)k);
        if (strcmp(encoder_arch(c.e), "convsct") == 0) convsct_prep(&c, 0.5f, 1.5f);
        float *f1 = malloc(sizeof(float) * (size_t)c.D);
        ck_assert(encoder_forward(c.e, c.a, c.x, 3, SP_ENC_EVAL, c.feat) == SP_OK);
        ck_assert(encoder_forward(c.e, c.a, c.x + c.L, 1, SP_ENC_EVAL, f1) == SP_OK);
        double m = sp_max_abs_f(c.feat, (size_t)3 * c.D);
        ck_assert_msg(m > 0, "%s: all-zero features", encoder_arch(c.e));
        sp_expect_close_f(encoder_arch(c.e), f1, c.feat + c.D, (size_t)c.D, 1e-5, 1e-6 * m);
        /* EVAL and EVAL_GRAD compute the same transform */
        float *f2 = malloc(sizeof(float) * (size_t)3 * c.D);
        ck_assert(encoder_forward(c.e, c.a, c.x, 3, SP_ENC_EVAL_GRAD, f2) == SP_OK);
        ck_assert(memcmp(f2, c.feat, sizeof(float) * 3 * (size_t)c.D) == 0);
        free(f1);
        free(f2);
        case_free(&c);
    }
}
END_TEST

START_TEST(binned_features_are_bin_means) {
    /* Exact structure: with bins of the outputs in (0, 1); changing the
     * points of bin 1 only changes features 2 and 3. */
    sp_blas_init(0);
    Case c;
    case_init(&c, BINNED_TINY, 3, 13, 77);
    ck_assert(encoder_forward(c.e, c.a, c.x, 3, SP_ENC_EVAL, c.feat) == SP_OK);
    float f0[18];
    memcpy(f0, c.feat, sizeof f0);
    for (int i = 0; i < 18; i++) ck_assert(f0[i] > 0.0f && f0[i] < 1.0f);
    for (int b = 0; b < 3; b++) c.x[(size_t)b * 13 + 5] += 1.0f;   /* bins: [0,4) [4,8) [8,13) */
    ck_assert(encoder_forward(c.e, c.a, c.x, 3, SP_ENC_EVAL, c.feat) == SP_OK);
    for (int b = 0; b < 3; b++)
        for (int j = 0; j < 6; j++) {
            int in_bin1 = j == 2 || j == 3;
            if (in_bin1) ck_assert_msg(c.feat[b * 6 + j] != f0[b * 6 + j], "bin 1 unchanged");
            else ck_assert_msg(c.feat[b * 6 + j] == f0[b * 6 + j], "other bin changed (%d, %d)", b, j);
        }
    case_free(&c);
}
END_TEST

/* ---------------------------------------------------------------- errors */
START_TEST(config_errors) {
    const char *a[] = {"encoder.arch=fcnn", NULL};   /* input_length 0 */
    sp_expect_create_error(a, "encoder.input_length");
    const char *b[] = {"encoder.arch=transformer", "encoder.transformer.heads=3", NULL};
    sp_expect_create_error(b, "encoder.transformer.heads");
    const char *c[] = {"encoder.arch=convsct", "encoder.convsct.heads=3", NULL};
    sp_expect_create_error(c, "encoder.convsct.heads");
    const char *d[] = {"encoder.arch=lstm", "encoder.lstm.pool=max", NULL};
    sp_expect_create_error(d, "encoder.lstm.pool");
    const char *e[] = {"encoder.arch=lstm", "encoder.lstm.layers=0", NULL};
    sp_expect_create_error(e, "encoder.lstm.layers");
    const char *f[] = {"encoder.arch=fcnn", "encoder.input_length=10", "encoder.fcnn.hidden=[]",
                       NULL};
    sp_expect_create_error(f, "encoder.fcnn.hidden");
}
END_TEST

START_TEST(length_errors) {
    sp_blas_init(0);
    const char *const *cfgs[] = {FCNN_TINY, BINNED_TINY, LSTM_TINY, TF_TINY, CONVSCT_TINY};
    const int bad[] = {12, 5, 3, 3, 26};
    for (int k = 0; k < 5; k++) {
        SpConfig *cfg = sp_enc_cfg(cfgs[k]);
        SpEncoder *e = NULL;
        SpEncAct *a = NULL;
        ck_assert(encoder_create(&e, cfg, NULL) == SP_OK);
        ck_assert_int_eq(encoder_act_create(&a, e, 2, bad[k]), SP_EINPUT);
        ck_assert_ptr_null(a);
        ck_assert_msg(strstr(sp_error_message(), encoder_arch(e)) != NULL, "%s",
                      sp_error_message());
        if (k == 0) /* longer than the fixed input */
            ck_assert_msg(strstr(sp_error_message(), "encoder.input_length") != NULL, "%s",
                          sp_error_message());
        encoder_destroy(&e);
        sp_config_free(cfg);
    }
}
END_TEST

/* ---------------------------------------------------------------- io */
static void roundtrip(const char *const *sets, int L) {
    sp_blas_init(0);
    SpConfig *cfg = sp_enc_cfg(sets);
    SpRng rng;
    sp_rng_stream(&rng, 31, 1, 0, 0);
    SpEncoder *a = NULL, *b = NULL;
    ck_assert(encoder_create(&a, cfg, &rng) == SP_OK);
    SpParams *pa = encoder_params(a);
    for (size_t i = 0; i < pa->n_buf; i++) pa->buf[i] = (float)(0.5 + 0.25 * sp_rng_next_double(&rng));
    char path[512];
    snprintf(path, sizeof path, "%s/%s.h5", sp_tmpdir(), encoder_arch(a));
    SpH5Writer w;
    ck_assert_msg(ckpt_begin(&w, path, "supervised", encoder_arch(a), "", 0, 0) == SP_OK, "%s",
                  sp_error_message());
    ck_assert_msg(encoder_save(a, w.f, SP_GROUP_ENCODER_Q) == SP_OK, "%s", sp_error_message());
    ck_assert_msg(ckpt_commit(&w) == SP_OK, "%s", sp_error_message());
    ck_assert(encoder_create(&b, cfg, NULL) == SP_OK);
    hid_t f;
    SpCkptMeta meta;
    ck_assert_msg(ckpt_open(path, "supervised", encoder_arch(a), &f, &meta) == SP_OK, "%s",
                  sp_error_message());
    ck_assert_msg(encoder_load(b, f, path, SP_GROUP_ENCODER_Q) == SP_OK, "%s", sp_error_message());
    sp_h5_close(f);
    ckpt_meta_free(&meta);
    SpParams *pb = encoder_params(b);
    ck_assert(sp_params_same_layout(pa, pb));
    ck_assert(memcmp(pa->data, pb->data, pa->n_param * sizeof(float)) == 0);
    ck_assert(memcmp(pa->buf, pb->buf, (pa->n_buf ? pa->n_buf : 0) * sizeof(float)) == 0);
    /* same features from both */
    const int B = 4, D = encoder_feature_dim(a);
    float *x = malloc(sizeof(float) * (size_t)B * L), *fa = malloc(sizeof(float) * (size_t)B * D),
          *fb = malloc(sizeof(float) * (size_t)B * D);
    sp_fill_spectra(x, B, L, 5);
    SpEncAct *ca = NULL, *cb = NULL;
    ck_assert(encoder_act_create(&ca, a, B, L) == SP_OK);
    ck_assert(encoder_act_create(&cb, b, B, L) == SP_OK);
    ck_assert(encoder_forward(a, ca, x, B, SP_ENC_EVAL, fa) == SP_OK);
    ck_assert(encoder_forward(b, cb, x, B, SP_ENC_EVAL, fb) == SP_OK);
    ck_assert(memcmp(fa, fb, sizeof(float) * (size_t)B * D) == 0);
    encoder_act_destroy(&ca);
    encoder_act_destroy(&cb);
    free(x);
    free(fa);
    free(fb);
    encoder_destroy(&a);
    encoder_destroy(&b);
    sp_config_free(cfg);
}

START_TEST(save_load_roundtrip) {
    roundtrip(FCNN_TINY, 11);
    roundtrip(BINNED_TINY, 13);
    roundtrip(LSTM_TINY, 13);
    roundtrip(TF_TINY, 13);
    roundtrip(CONVSCT_TINY, 61);
    sp_tmpdir_cleanup();
}
END_TEST

START_TEST(load_wrong_shape_names_tensor) {
    const char *small[] = {"encoder.arch=lstm", "encoder.lstm.hidden=6", NULL};
    const char *big[] = {"encoder.arch=lstm", "encoder.lstm.hidden=8", NULL};
    SpConfig *cs = sp_enc_cfg(small), *cb = sp_enc_cfg(big);
    SpEncoder *a = NULL, *b = NULL;
    ck_assert(encoder_create(&a, cs, NULL) == SP_OK);
    ck_assert(encoder_create(&b, cb, NULL) == SP_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/lstm6.h5", sp_tmpdir());
    SpH5Writer w;
    ck_assert(ckpt_begin(&w, path, "supervised", "lstm", "", 0, 0) == SP_OK);
    ck_assert(encoder_save(a, w.f, SP_GROUP_ENCODER_Q) == SP_OK);
    ck_assert(ckpt_commit(&w) == SP_OK);
    hid_t f;
    SpCkptMeta meta;
    ck_assert(ckpt_open(path, NULL, NULL, &f, &meta) == SP_OK);
    SpStatus rc = encoder_load(b, f, path, SP_GROUP_ENCODER_Q);
    sp_h5_close(f);
    ckpt_meta_free(&meta);
    ck_assert(rc != SP_OK);
    ck_assert_msg(strstr(sp_error_message(), "lstm.weight_ih_l0") != NULL, "%s", sp_error_message());
    ck_assert_msg(strstr(sp_error_message(), "lstm6.h5") != NULL, "%s", sp_error_message());
    encoder_destroy(&a);
    encoder_destroy(&b);
    sp_config_free(cs);
    sp_config_free(cb);
    sp_tmpdir_cleanup();
}
END_TEST

/* ---------------------------------------------------------------- determinism */
static void run_once(const char *const *sets, int nthreads, float *feat, float *grad, int B, int L) {
    omp_set_num_threads(nthreads);
    Case c;
    case_init(&c, sets, B, L, 4242);   /* contexts sized for this thread count */
    case_grad(&c);
    memcpy(feat, c.feat, sizeof(float) * (size_t)B * c.D);
    SpParams *p = encoder_params(c.e);
    memcpy(grad, p->grad, sizeof(float) * p->n_param);
    case_free(&c);
}

/* exact: bit-identical for 1 and 2 threads too (kernels that own their writes). */
static void determinism_case(const char *const *sets, int B, int L, int exact) {
    sp_blas_init(0);
    SpConfig *cfg = sp_enc_cfg(sets);
    SpEncoder *e = NULL;
    ck_assert(encoder_create(&e, cfg, NULL) == SP_OK);
    const size_t nf = (size_t)B * encoder_feature_dim(e), ng = sp_params_count(encoder_params(e));
    const char *arch = encoder_arch(e);
    char name[64];
    snprintf(name, sizeof name, "%s", arch);
    encoder_destroy(&e);
    sp_config_free(cfg);
    float *f[4], *g[4];
    for (int i = 0; i < 4; i++) {
        f[i] = malloc(nf * sizeof(float));
        g[i] = malloc(ng * sizeof(float));
        run_once(sets, i < 2 ? 1 : 2, f[i], g[i], B, L);
    }
    ck_assert_msg(memcmp(f[0], f[1], nf * sizeof(float)) == 0, "%s 1 thread: features differ", name);
    ck_assert_msg(memcmp(g[0], g[1], ng * sizeof(float)) == 0, "%s 1 thread: gradients differ", name);
    ck_assert_msg(memcmp(f[2], f[3], nf * sizeof(float)) == 0, "%s 2 threads: features differ", name);
    ck_assert_msg(memcmp(g[2], g[3], ng * sizeof(float)) == 0, "%s 2 threads: gradients differ", name);
    if (exact) {
        ck_assert_msg(memcmp(f[0], f[2], nf * sizeof(float)) == 0, "%s 1 vs 2 threads: features differ", name);
        ck_assert_msg(memcmp(g[0], g[2], ng * sizeof(float)) == 0, "%s 1 vs 2 threads: gradients differ", name);
    }
    sp_expect_close_f(name, f[2], f[0], nf, 1e-4, 1e-5);
    const double gm = sp_max_abs_f(g[0], ng);
    sp_expect_close_f(name, g[2], g[0], ng, 1e-3, 1e-5 * gm);
    for (int i = 0; i < 4; i++) {
        free(f[i]);
        free(g[i]);
    }
}

START_TEST(determinism_all) {
    /* binned_fcnn: large enough for its parallel region (each thread owns bins) */
    const char *binned_par[] = {"encoder.arch=binned_fcnn", "encoder.binned_fcnn.bins=5",
                                "encoder.binned_fcnn.hidden=64", NULL};
    determinism_case(FCNN_TINY, 7, 11, 0);
    determinism_case(binned_par, 8, 67, 1);
    determinism_case(LSTM_TINY, 7, 13, 0);
    determinism_case(TF_TINY, 7, 13, 0);
    determinism_case(CONVSCT_TINY, 8, 61, 0);
}
END_TEST

/* ---------------------------------------------------------------- train */
/* 3 classes x 4 spectra of L points: class k has its peak at (0.25 + 0.25 k) L,
 * with random heights, widths, shifts and noise. */
#define OF_C 3
#define OF_N 12
static void overfit_data(float *x, int *y, int L, unsigned long long seed) {
    SpRng r;
    sp_rng_stream(&r, seed, 3, 0, 0);
    for (int n = 0; n < OF_N; n++) {
        const int k = n % OF_C;
        y[n] = k;
        const double c = (0.25 + 0.25 * k + sp_rng_uniform(&r, -0.04, 0.04)) * L;
        const double wd = sp_rng_uniform(&r, 0.04, 0.08) * L, h = sp_rng_uniform(&r, 1.0, 2.0);
        for (int l = 0; l < L; l++) {
            const double d = (l - c) / wd;
            x[(size_t)n * L + l] = (float)(h * exp(-0.5 * d * d) + sp_rng_uniform(&r, -0.1, 0.1));
        }
    }
}

static void overfit_case(const char *const *sets, int L, float lr, int max_steps) {
    sp_blas_init(0);
    SpConfig *cfg = sp_enc_cfg(sets);
    SpRng rng;
    sp_rng_stream(&rng, 2024, 1, 0, 0);
    SpEncoder *e = NULL;
    SpEncAct *a = NULL;
    ck_assert_msg(encoder_create(&e, cfg, &rng) == SP_OK, "%s", sp_error_message());
    ck_assert(encoder_act_create(&a, e, OF_N, L) == SP_OK);
    const int D = encoder_feature_dim(e);
    /* linear head h -> logits, PyTorch default init */
    SpParams head;
    sp_params_init(&head);
    const int iw = sp_params_add_dims(&head, "head.weight", SP_TENSOR_PARAM, 2, OF_C, D);
    const int ib = sp_params_add_dims(&head, "head.bias", SP_TENSOR_PARAM, 1, OF_C);
    ck_assert(sp_params_finalize(&head) == SP_OK);
    for (size_t i = 0; i < head.n_param; i++)
        head.data[i] = (float)sp_rng_uniform(&rng, -1.0 / sqrt(D), 1.0 / sqrt(D));
    SpOptim oe, oh;
    ck_assert(optim_init(&oe, SP_OPT_ADAM, encoder_params(e)) == SP_OK);
    ck_assert(optim_init(&oh, SP_OPT_ADAM, &head) == SP_OK);
    float *x = malloc(sizeof(float) * OF_N * (size_t)L), *feat = malloc(sizeof(float) * OF_N * D);
    float *dfeat = malloc(sizeof(float) * OF_N * D), logits[OF_N * OF_C], dlog[OF_N * OF_C];
    float *work = malloc(sizeof(float) * linear_work_floats(OF_N, D, OF_C));
    int y[OF_N], nc = 0;
    overfit_data(x, y, L, 99);
    double loss = 1e9;
    int step = 0;
    for (; step < max_steps && loss > 0.05; step++) {
        sp_params_zero_grad(encoder_params(e));
        sp_params_zero_grad(&head);
        ck_assert(encoder_forward(e, a, x, OF_N, SP_ENC_TRAIN, feat) == SP_OK);
        linear_forward(logits, feat, sp_params_data(&head, iw), sp_params_data(&head, ib), OF_N,
                       D, OF_C);
        memset(dlog, 0, sizeof dlog);
        loss = cross_entropy_loss(dlog, logits, y, OF_N, OF_C, 1.0f, &nc);
        ck_assert_msg(isfinite(loss), "%s: loss not finite at step %d", encoder_arch(e), step);
        memset(dfeat, 0, sizeof(float) * OF_N * D);
        linear_backward(dfeat, sp_params_grad(&head, iw), sp_params_grad(&head, ib), dlog, feat,
                        sp_params_data(&head, iw), OF_N, D, OF_C, work);
        encoder_backward(e, a, dfeat, OF_N);
        optim_step(&oe, encoder_params(e), lr);
        optim_step(&oh, &head, lr);
    }
    /* evaluation mode (running statistics where there is BatchNorm) */
    ck_assert(encoder_forward(e, a, x, OF_N, SP_ENC_EVAL, feat) == SP_OK);
    linear_forward(logits, feat, sp_params_data(&head, iw), sp_params_data(&head, ib), OF_N, D,
                   OF_C);
    const double eval_loss = cross_entropy_loss(NULL, logits, y, OF_N, OF_C, 1.0f, &nc);
    if (getenv("SPECSSL_TEST_LOG"))
        fprintf(stderr, "%s: train loss %.4g after %d Adam steps, eval loss %.4g, eval acc %d/%d\n",
                encoder_arch(e), loss, step, eval_loss, nc, OF_N);
    ck_assert_msg(loss <= 0.05, "%s: training loss %.4g after %d steps", encoder_arch(e), loss,
                  step);
    ck_assert_msg(nc == OF_N, "%s: eval accuracy %d/%d (eval loss %.4g)", encoder_arch(e), nc,
                  OF_N, eval_loss);
    optim_free(&oe);
    optim_free(&oh);
    sp_params_free(&head);
    free(x);
    free(feat);
    free(dfeat);
    free(work);
    encoder_act_destroy(&a);
    encoder_destroy(&e);
    sp_config_free(cfg);
}

START_TEST(overfit_fcnn) {
    const char *s[] = {"encoder.arch=fcnn", "encoder.input_length=64",
                       "encoder.fcnn.hidden=[32, 16]", NULL};
    overfit_case(s, 64, 1e-2f, 300);
}
END_TEST
START_TEST(overfit_binned) {
    const char *s[] = {"encoder.arch=binned_fcnn", "encoder.binned_fcnn.bins=4",
                       "encoder.binned_fcnn.hidden=16", NULL};
    overfit_case(s, 64, 1e-2f, 300);
}
END_TEST
START_TEST(overfit_lstm) {
    const char *s[] = {"encoder.arch=lstm", "encoder.lstm.patch=8", "encoder.lstm.embed_dim=8",
                       "encoder.lstm.hidden=12", "encoder.lstm.layers=1", NULL};
    overfit_case(s, 64, 1e-2f, 300);
}
END_TEST
START_TEST(overfit_transformer) {
    const char *s[] = {"encoder.arch=transformer", "encoder.transformer.patch=8",
                       "encoder.transformer.d_model=8", "encoder.transformer.heads=2",
                       "encoder.transformer.layers=1", "encoder.transformer.ff=16", NULL};
    overfit_case(s, 64, 1e-2f, 300);
}
END_TEST
START_TEST(overfit_convsct) {
    const char *s[] = {"encoder.arch=convsct", "encoder.convsct.conv1_channels=4",
                       "encoder.convsct.conv3_channels=4", "encoder.convsct.bins=12",
                       "encoder.convsct.embed_dim=8", "encoder.convsct.heads=2",
                       "encoder.convsct.bn_splits=2", "encoder.convsct.ff=16", NULL};
    overfit_case(s, 64, 1e-2f, 300);
}
END_TEST

int main(void) {
    Suite *s = suite_create("baselines");
    TCase *tc = tcase_create("lstm_layer");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, lstm_gradcheck_double, 0, N_LSTM_CASES);
    tcase_add_loop_test(tc, lstm_vs_reference, 0, N_LSTM_CASES);
    tcase_add_test(tc, lstm_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradcheck");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gradcheck_fcnn);
    tcase_add_test(tc, gradcheck_fcnn_no_ln);
    tcase_add_test(tc, gradcheck_binned);
    tcase_add_test(tc, gradcheck_binned_eval);
    tcase_add_test(tc, gradcheck_lstm);
    tcase_add_test(tc, gradcheck_lstm_last);
    tcase_add_test(tc, gradcheck_transformer);
    tcase_add_test(tc, gradcheck_convsct);
    tcase_add_test(tc, gradcheck_convsct_eval);
    tcase_add_test(tc, gradcheck_convsct_cam_active);
    suite_add_tcase(s, tc);

    tc = tcase_create("forward");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, default_parameter_counts);
    tcase_add_test(tc, shapes_lengths_flops);
    tcase_add_test(tc, eval_batch_independence);
    tcase_add_test(tc, binned_features_are_bin_means);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, length_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("io");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, save_load_roundtrip);
    tcase_add_test(tc, load_wrong_shape_names_tensor);
    suite_add_tcase(s, tc);

    tc = tcase_create("determinism");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, determinism_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("train");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, overfit_fcnn);
    tcase_add_test(tc, overfit_binned);
    tcase_add_test(tc, overfit_lstm);
    tcase_add_test(tc, overfit_transformer);
    tcase_add_test(tc, overfit_convsct);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
