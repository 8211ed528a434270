/* test_baselines: the LSTM layer (core/sp_rnn.h) of the supervised-baseline
 * encoders.
 *
 * - lstm_layer: tier A (tests/support/ref_lstm.c: double backward vs central
 *   differences of the double forward, every coordinate, rel err <= 1e-7 with
 *   the denominator floored at 1e-3 of the tensor's largest entry) and tier B
 *   (production float forward, dinp, dW_ih, dW_hh, db_ih, db_hh vs the double
 *   reference, rtol 1e-4, backward into prefilled gradients so accumulation is
 *   checked too; no-bias and T = 1 cases); 1 vs 2 threads.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_lstm.h"
#include "sp_blas.h"
#include "sp_rnn.h"
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

int main(void) {
    Suite *s = suite_create("baselines");
    TCase *tc = tcase_create("lstm_layer");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, lstm_gradcheck_double, 0, N_LSTM_CASES);
    tcase_add_loop_test(tc, lstm_vs_reference, 0, N_LSTM_CASES);
    tcase_add_test(tc, lstm_threads);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
