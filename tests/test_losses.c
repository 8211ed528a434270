/* test_losses: core/sp_losses.h (cross-entropy, BCE / focal, InfoNCE with a queue).
 *
 * gradcheck: tier A, the double reference's gradient vs central differences.
 * forward/backward: tier B, production float vs the double reference (loss,
 *            gradient accumulated twice into a prefilled buffer, accuracy
 *            counts), hand-computed exact cases, chance level of InfoNCE.
 * determinism: InfoNCE loss and gradient with 1 and 2 threads.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ref_layers.h"
#include "sp_blas.h"
#include "sp_losses.h"
#include "sp_rng.h"
#include "sp_test.h"

#define GC_TOL 1e-7

static void expect_loss(const char *name, double got, double ref, double rtol) {
    ck_assert_msg(fabs(got - ref) <= rtol * fabs(ref) + 1e-12 && isfinite(got),
                  "%s: got %.12g, reference %.12g", name, got, ref);
}

/* random unit rows */
static void unit_rows(float *x, int N, int D, unsigned long long seed) {
    SpRng r;
    sp_rng_stream(&r, seed, 3, 0, 0);
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int d = 0; d < D; d++) {
            double z = sp_rng_normal(&r);
            x[(size_t)n * D + d] = (float)z;
            s += z * z;
        }
        for (int d = 0; d < D; d++) x[(size_t)n * D + d] = (float)(x[(size_t)n * D + d] / sqrt(s));
    }
}

/* ------------------------------------------------------------ cross-entropy */
typedef struct {
    int N, C;
    const int *labels;
    double *logits;
} CeCtx;

static double ce_loss(void *p) {
    CeCtx *x = p;
    return ref_cross_entropy(NULL, x->logits, x->labels, x->N, x->C, 1.0);
}

START_TEST(cross_entropy_gradcheck) {
    const int N = 6, C = 5;
    const int labels[6] = {0, 4, -1, 2, 2, 1};
    CeCtx x = {N, C, labels, ref_drand((size_t)N * C, 1, -3, 3)};
    double *g = ref_dalloc((size_t)N * C);
    ref_cross_entropy(g, x.logits, labels, N, C, 1.0);
    ref_expect_gradcheck("cross_entropy dlogits", ce_loss, &x, x.logits, (size_t)N * C, g, NULL, GC_TOL);
    free(x.logits);
    free(g);
}
END_TEST

START_TEST(cross_entropy_vs_reference) {
    const int N = 300, C = 7;
    size_t n = (size_t)N * C;
    int *labels = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) labels[i] = i % 11 == 3 ? -1 : (i * 5) % C;
    float *logits = ref_frand(n, 2, -8, 8), *g0 = ref_frand(n, 3, -1, 1), *g = ref_falloc(n);
    memcpy(g, g0, n * sizeof(float));
    double *dl = ref_dcopy(logits, n), *rg = ref_dalloc(n);
    double rloss = ref_cross_entropy(rg, dl, labels, N, C, 0.5);
    int nc = -1, rnc = 0, nv = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] < 0) continue;
        nv++;
        int am = 0;
        for (int c = 1; c < C; c++) am = dl[(size_t)i * C + c] > dl[(size_t)i * C + am] ? c : am;
        rnc += am == labels[i];
    }
    for (int rep = 1; rep <= 2; rep++) {
        double loss = cross_entropy_loss(g, logits, labels, N, C, 0.5f, &nc);
        expect_loss("ce loss", loss, rloss, 1e-6);
        ref_expect_accum("ce dlogits", g, g0, rg, n, rep, 1e-5, 1e-6);
    }
    ck_assert_int_eq(nc, rnc);
    ck_assert_int_gt(nc, 0);
    ck_assert_int_lt(nc, nv);
    free(labels); free(logits); free(g0); free(g); free(dl); free(rg);
}
END_TEST

START_TEST(cross_entropy_exact) {
    /* uniform logits: loss = ln C exactly-ish, gradient (1/C - onehot)/N;
     * ties: first maximum is the prediction (row 0 correct with label 0) */
    float logits[8] = {1, 1, 1, 1, 0, 0, 0, 0}, d[8] = {0};
    int labels[2] = {0, 3}, nc = -1;
    double loss = cross_entropy_loss(d, logits, labels, 2, 4, 1.0f, &nc);
    ck_assert_msg(fabs(loss - log(4.0)) < 1e-12, "loss %.17g", loss);
    ck_assert_int_eq(nc, 1);
    ck_assert(d[0] == -0.375f && d[1] == 0.125f && d[7] == -0.375f && d[4] == 0.125f);
    /* all ignored: 0 loss, untouched gradient, 0 correct */
    int ign[2] = {-1, -1};
    memset(d, 0, sizeof d);
    loss = cross_entropy_loss(d, logits, ign, 2, 4, 1.0f, &nc);
    ck_assert(loss == 0.0 && nc == 0 && d[0] == 0.0f);
    /* extreme logits stay finite */
    float big[3] = {1e30f, -1e30f, 0};
    int lb[1] = {1};
    float db[3] = {0};
    loss = cross_entropy_loss(db, big, lb, 1, 3, 1.0f, NULL);
    ck_assert(isfinite(loss) && loss > 1e29);
    ck_assert(db[0] == 1.0f && db[1] == -1.0f && db[2] == 0.0f);
}
END_TEST

/* --------------------------------------------------------------------- BCE */
typedef struct {
    int N;
    double gamma, alpha, *logits, *targets;
} BceCtx;

static double bce_loss(void *p) {
    BceCtx *x = p;
    return ref_bce_logits(NULL, x->logits, x->targets, x->N, x->gamma, x->alpha, 1.0);
}

/* (gamma, alpha): plain BCE, focal gamma 2 with and without alpha, gamma 0.5 */
static const double bce_params[][2] = {{0, -1}, {2, 0.25}, {2, -1}, {0.5, 0.75}, {1, 0.5}};
#define N_BCE_PARAMS 5

START_TEST(bce_gradcheck) {
    const int N = 12;
    BceCtx x = {N, bce_params[_i][0], bce_params[_i][1], ref_drand(N, 1, -4, 4), ref_dalloc(N)};
    for (int i = 0; i < N; i++) x.targets[i] = i % 3 == 0 ? 1.0 : i % 3 == 1 ? 0.0 : 0.3;
    double *g = ref_dalloc(N);
    ref_bce_logits(g, x.logits, x.targets, N, x.gamma, x.alpha, 1.0);
    ref_expect_gradcheck("bce dlogits", bce_loss, &x, x.logits, N, g, NULL, GC_TOL);
    free(x.logits); free(x.targets); free(g);
}
END_TEST

START_TEST(bce_vs_reference) {
    const int N = 257;
    float gamma = (float)bce_params[_i][0], alpha = (float)bce_params[_i][1];
    float *logits = ref_frand(N, 5, -12, 12), *targets = ref_falloc(N),
          *g0 = ref_frand(N, 6, -1, 1), *g = ref_falloc(N);
    for (int i = 0; i < N; i++) targets[i] = (float)((i * 7) % 3 == 0);
    targets[5] = 0.25f;  /* a soft target */
    logits[7] = 0.0f;    /* a logit of exactly 0 predicts 0 */
    targets[7] = 1.0f;
    memcpy(g, g0, N * sizeof(float));
    double *dl = ref_dcopy(logits, N), *dt = ref_dcopy(targets, N), *rg = ref_dalloc(N);
    double rloss = ref_bce_logits(rg, dl, dt, N, (double)gamma, (double)alpha, 2.0);
    int rnc = 0, nc = -1;
    for (int i = 0; i < N; i++) rnc += (logits[i] > 0) == (targets[i] > 0.5f);
    for (int rep = 1; rep <= 2; rep++) {
        double loss = bce_logits_loss(g, logits, targets, N, gamma, alpha, 2.0f, &nc);
        expect_loss("bce loss", loss, rloss, 1e-9);
        ref_expect_accum("bce dlogits", g, g0, rg, N, rep, 1e-5, 1e-7);
    }
    ck_assert_int_eq(nc, rnc);
    free(logits); free(targets); free(g0); free(g); free(dl); free(dt); free(rg);
}
END_TEST

START_TEST(bce_exact) {
    /* logit 0: loss ln 2, gradient (0.5 - t)/N; focal gamma 2 at p = 0.5:
     * (0.5)^2 ln 2 with alpha_t; a logit of 0 predicts class 0 */
    float x[2] = {0, 0}, t[2] = {1, 0}, d[2] = {0};
    int nc = -1;
    double loss = bce_logits_loss(d, x, t, 2, 0.0f, -1.0f, 1.0f, &nc);
    ck_assert(fabs(loss - log(2.0)) < 1e-15);
    ck_assert(d[0] == -0.25f && d[1] == 0.25f && nc == 1);
    loss = bce_logits_loss(NULL, x, t, 2, 2.0f, 0.25f, 1.0f, NULL);
    /* mean of 0.25 * 0.25 ln2 and 0.75 * 0.25 ln2 */
    ck_assert_msg(fabs(loss - 0.125 * log(2.0)) < 1e-15, "focal %.17g", loss);
    /* huge logits: finite loss and gradient, correct sign */
    float xb[2] = {100, -100}, tb[2] = {0, 0}, db[2] = {0};
    loss = bce_logits_loss(db, xb, tb, 2, 0.0f, -1.0f, 1.0f, &nc);
    ck_assert(fabs(loss - 50.0) < 1e-9 && db[0] == 0.5f && fabs(db[1]) < 1e-30f && nc == 1);
    loss = bce_logits_loss(db, xb, tb, 2, 2.0f, 0.25f, 1.0f, NULL);
    ck_assert(isfinite(loss) && isfinite(db[0]) && isfinite(db[1]));
}
END_TEST

/* ----------------------------------------------------------------- InfoNCE */
typedef struct {
    int B, D, Q;
    double T, *q, *k, *queue;
} NceCtx;

static double nce_loss(void *p) {
    NceCtx *x = p;
    return ref_infonce(NULL, x->q, x->k, x->queue, x->B, x->D, x->Q, x->T, 1.0);
}

START_TEST(infonce_gradcheck) {
    const int B = 3, D = 5, Q = 7;
    NceCtx x = {B,
                D,
                Q,
                0.2,
                ref_drand((size_t)B * D, 1, -1, 1),
                ref_drand((size_t)B * D, 2, -1, 1),
                ref_drand((size_t)D * Q, 3, -1, 1)};
    double *g = ref_dalloc((size_t)B * D);
    ref_infonce(g, x.q, x.k, x.queue, B, D, Q, x.T, 1.0);
    ref_expect_gradcheck("infonce dq", nce_loss, &x, x.q, (size_t)B * D, g, NULL, GC_TOL);
    free(x.q); free(x.k); free(x.queue); free(g);
}
END_TEST

/* (B, D, Q, T) */
static const double nce_cases[][4] = {{4, 8, 16, 0.1}, {5, 3, 1, 0.5}, {3, 4, 0, 0.2},
                                      {33, 16, 100, 0.07}, {64, 128, 257, 0.1}};
#define N_NCE_CASES 5

START_TEST(infonce_vs_reference) {
    sp_blas_init(0);
    int B = (int)nce_cases[_i][0], D = (int)nce_cases[_i][1], Q = (int)nce_cases[_i][2];
    float T = (float)nce_cases[_i][3];
    float *q = ref_falloc((size_t)B * D), *k = ref_falloc((size_t)B * D),
          *keys = ref_falloc((size_t)Q * D + 1);
    unit_rows(q, B, D, 1);
    unit_rows(k, B, D, 2);
    unit_rows(keys, Q, D, 3);
    /* make half the positives close to their query so both branches matter */
    for (int i = 0; i < B; i += 2)
        for (int d = 0; d < D; d++) k[(size_t)i * D + d] = 0.8f * q[(size_t)i * D + d] + 0.2f * k[(size_t)i * D + d];
    float *queue = ref_falloc((size_t)D * Q + 1); /* (D, Q): column j = key j */
    for (int j = 0; j < Q; j++)
        for (int d = 0; d < D; d++) queue[(size_t)d * Q + j] = keys[(size_t)j * D + d];
    float *work = ref_falloc(infonce_work_floats(B, Q));
    for (size_t i = 0; i < infonce_work_floats(B, Q); i++) work[i] = NAN;
    float *g0 = ref_frand((size_t)B * D, 4, -1, 1), *g = ref_falloc((size_t)B * D);
    memcpy(g, g0, sizeof(float) * B * D);
    double *dq = ref_dcopy(q, (size_t)B * D), *dk = ref_dcopy(k, (size_t)B * D),
           *dqu = ref_dcopy(queue, (size_t)D * Q);
    double *rg = ref_dalloc((size_t)B * D);
    double rloss = ref_infonce(rg, dq, dk, dqu, B, D, Q, (double)T, 0.5);
    int rnc = 0;
    for (int i = 0; i < B; i++) {
        double pos = ref_dot(dq + (size_t)i * D, dk + (size_t)i * D, D);
        int ok = 1;
        for (int j = 0; j < Q; j++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += dq[(size_t)i * D + d] * dqu[(size_t)d * Q + j];
            ok &= pos >= s;
        }
        rnc += ok;
    }
    int nc = -1;
    for (int rep = 1; rep <= 2; rep++) {
        double loss = infonce_loss(g, q, k, queue, B, D, Q, T, 0.5f, &nc, work);
        expect_loss("infonce loss", loss, rloss, 1e-5);
        ref_expect_accum("infonce dq", g, g0, rg, (size_t)B * D, rep, 1e-4, 1e-5);
    }
    ck_assert_int_eq(nc, rnc);
    /* loss only (dq NULL) gives the same value */
    double l2 = infonce_loss(NULL, q, k, queue, B, D, Q, T, 0.5f, NULL, work);
    expect_loss("infonce loss (no grad)", l2, rloss, 1e-5);
    if (Q == 0) ck_assert(rloss == 0.0 && l2 == 0.0);
    free(q); free(k); free(keys); free(queue); free(work); free(g0); free(g); free(dq); free(dk);
    free(dqu); free(rg);
}
END_TEST

START_TEST(infonce_exact) {
    /* B = 2, D = 2, Q = 2, T = 0.5; queue columns (0,1) and (-1,0).
     * row 0: q = (1,0), k = (1,0): logits (2, 0, -2) -> correct
     * row 1: q = (0,1), k = (1,0): logits (0, 2, 0)  -> wrong */
    sp_blas_init(0);
    float q[4] = {1, 0, 0, 1}, k[4] = {1, 0, 1, 0}, queue[4] = {0, -1, 1, 0}, work[6];
    int nc = -1;
    double loss = infonce_loss(NULL, q, k, queue, 2, 2, 2, 0.5f, 1.0f, &nc, work);
    double l0 = log(exp(2.0) + 1 + exp(-2.0)) - 2, l1 = log(2 + exp(2.0));
    ck_assert_msg(fabs(loss - (l0 + l1) / 2) < 1e-6, "loss %.9g want %.9g", loss, (l0 + l1) / 2);
    ck_assert_int_eq(nc, 1);
    /* a tie between the positive and a negative counts as correct (first maximum) */
    float q2[2] = {1, 0}, k2[2] = {1, 0}, queue2[2] = {1, 0};  /* D = 2, Q = 1: key j=0 is (1,0) */
    infonce_loss(NULL, q2, k2, queue2, 1, 2, 1, 1.0f, 1.0f, &nc, work);
    ck_assert_int_eq(nc, 1);
}
END_TEST

START_TEST(infonce_chance_level) {
    /* q independent of keys: logits ~ N(0, 1/(D T^2)), so the loss is
     * ln(Q+1) + 1/(2 D T^2) to first order (log of a sum of log-normals);
     * with T = 1 that is ln(Q+1) + 0.004. */
    sp_blas_init(0);
    const int B = 512, D = 128, Q = 1000;
    float *q = ref_falloc((size_t)B * D), *k = ref_falloc((size_t)B * D),
          *keys = ref_falloc((size_t)Q * D);
    float *queue = ref_falloc((size_t)D * Q), *work = ref_falloc(infonce_work_floats(B, Q));
    unit_rows(q, B, D, 11);
    unit_rows(k, B, D, 12);
    unit_rows(keys, Q, D, 13);
    for (int j = 0; j < Q; j++)
        for (int d = 0; d < D; d++) queue[(size_t)d * Q + j] = keys[(size_t)j * D + d];
    const double lnq = log(Q + 1.0);
    double l1 = infonce_loss(NULL, q, k, queue, B, D, Q, 1.0f, 1.0f, NULL, work);
    ck_assert_msg(fabs(l1 - lnq) < 0.03, "T=1: loss %.5f vs ln(Q+1) = %.5f", l1, lnq);
    double l2 = infonce_loss(NULL, q, k, queue, B, D, Q, 0.2f, 1.0f, NULL, work);
    double want = lnq + 1.0 / (2 * D * 0.04);
    ck_assert_msg(fabs(l2 - want) < 0.07, "T=0.2: loss %.5f vs %.5f", l2, want);
    free(q); free(k); free(keys); free(queue); free(work);
}
END_TEST

START_TEST(infonce_determinism) {
    const int B = 37, D = 16, Q = 61;
    float *q = ref_frand((size_t)B * D, 21, -1, 1), *k = ref_frand((size_t)B * D, 22, -1, 1);
    float *queue = ref_frand((size_t)D * Q, 23, -1, 1),
          *work = ref_falloc(infonce_work_floats(B, Q));
    float *g[3];
    double loss[3];
    int nc[3];
    for (int r = 0; r < 3; r++) {
        omp_set_num_threads(r < 2 ? 1 : 2);
        sp_blas_init(r < 2 ? 1 : 2);
        g[r] = ref_falloc((size_t)B * D);
        loss[r] = infonce_loss(g[r], q, k, queue, B, D, Q, 0.1f, 1.0f, &nc[r], work);
    }
    ck_assert(loss[0] == loss[1] && memcmp(g[0], g[1], sizeof(float) * B * D) == 0);
    ck_assert_int_eq(nc[0], nc[2]);
    /* each row is owned by one thread: the same bits with 2 threads */
    ck_assert_msg(loss[0] == loss[2], "loss 1t %.17g 2t %.17g", loss[0], loss[2]);
    ref_expect_close_ff("infonce dq 1t vs 2t", g[2], g[0], (size_t)B * D, 1e-6, 1e-7);
    for (int r = 0; r < 3; r++) free(g[r]);
    free(q); free(k); free(queue); free(work);
}
END_TEST

int main(void) {
    Suite *s = suite_create("losses");
    TCase *tg = tcase_create("gradcheck");
    tcase_set_timeout(tg, 60);
    tcase_add_test(tg, cross_entropy_gradcheck);
    tcase_add_loop_test(tg, bce_gradcheck, 0, N_BCE_PARAMS);
    tcase_add_test(tg, infonce_gradcheck);
    suite_add_tcase(s, tg);

    TCase *tf = tcase_create("forward");
    tcase_set_timeout(tf, 60);
    tcase_add_test(tf, cross_entropy_exact);
    tcase_add_test(tf, bce_exact);
    tcase_add_test(tf, infonce_exact);
    tcase_add_test(tf, infonce_chance_level);
    suite_add_tcase(s, tf);

    TCase *tb = tcase_create("backward");
    tcase_set_timeout(tb, 60);
    tcase_add_test(tb, cross_entropy_vs_reference);
    tcase_add_loop_test(tb, bce_vs_reference, 0, N_BCE_PARAMS);
    tcase_add_loop_test(tb, infonce_vs_reference, 0, N_NCE_CASES);
    suite_add_tcase(s, tb);

    TCase *td = tcase_create("determinism");
    tcase_set_timeout(td, 60);
    tcase_add_test(td, infonce_determinism);
    suite_add_tcase(s, td);
    return sp_run_suite(s);
}
