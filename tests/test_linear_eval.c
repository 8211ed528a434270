/* test_linear_eval: L-BFGS, the linear probe (closed form, Newton reference,
 * L2 selection on validation only), weighted kNN with hand-computed votes,
 * metrics, probe model files, and the frozen-encoder check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_linear_eval.h"
#include "sp_test.h"

/* ------------------------------------------------------------ L-BFGS */

static double rosenbrock(void *ctx, const double *x, double *g) {
    (void)ctx;
    double a = 1 - x[0], b = x[1] - x[0] * x[0];
    g[0] = -2 * a - 400 * x[0] * b;
    g[1] = 200 * b;
    return a * a + 100 * b * b;
}

START_TEST(lbfgs_rosenbrock) {
    double x[2] = {-1.2, 1.0};
    LinLbfgsParam p;
    lineval_lbfgs_default(&p);
    p.gtol = 1e-9;
    p.ftol = 0;
    LinLbfgsResult r;
    ck_assert_int_eq(lineval_lbfgs(rosenbrock, NULL, x, 2, &p, &r), SP_OK);
    ck_assert_msg(fabs(x[0] - 1) < 1e-6 && fabs(x[1] - 1) < 1e-6,
                  "rosenbrock minimum: got (%.9g, %.9g) after %d iterations, stop %d", x[0], x[1],
                  r.iters, (int)r.stop);
    ck_assert_int_lt(r.iters, 100);
}
END_TEST

/* Ill-conditioned quadratic sum_i c_i (x_i - i)^2 / 2, c from 1 to 1e4
 * (scipy's L-BFGS-B, m = 10, needs 1022 iterations to max|g| <= 1e-8). */
static double quad(void *ctx, const double *x, double *g) {
    int n = *(int *)ctx;
    double f = 0;
    for (int i = 0; i < n; i++) {
        double c = pow(1e4, (double)i / (n - 1)), d = x[i] - i;
        g[i] = c * d;
        f += 0.5 * c * d * d;
    }
    return f;
}

START_TEST(lbfgs_quadratic) {
    int n = 50;
    double x[50] = {0};
    LinLbfgsParam p;
    lineval_lbfgs_default(&p);
    p.gtol = 1e-8;
    p.ftol = 0;
    p.max_iter = 3000;
    LinLbfgsResult r;
    ck_assert_int_eq(lineval_lbfgs(quad, &n, x, (size_t)n, &p, &r), SP_OK);
    ck_assert_int_eq(r.stop, SP_LBFGS_GTOL);
    ck_assert_int_lt(r.iters, 1500);
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(x[i] - i) < 1e-6, "x[%d] = %.9g, expected %d", i, x[i], i);
}
END_TEST

static double not_finite(void *ctx, const double *x, double *g) {
    (void)ctx;
    g[0] = 0;
    return x[0] > -1 ? NAN : 0;
}

START_TEST(lbfgs_nonfinite_start) {
    double x[1] = {0};
    LinLbfgsParam p;
    lineval_lbfgs_default(&p);
    LinLbfgsResult r;
    ck_assert_int_eq(lineval_lbfgs(not_finite, NULL, x, 1, &p, &r), SP_ENUMERIC);
}
END_TEST

/* ----------------------------------------------------- probe: reference */

static void default_param(LinParam *p, int C) {
    memset(p, 0, sizeof *p);
    p->n_classes = C;
    p->l2_default = 1e-3;
    p->standardise = 0;
    lineval_lbfgs_default(&p->lbfgs);
    p->lbfgs.gtol = 1e-7;
    p->lbfgs.ftol = 0;
    p->lbfgs.max_iter = 2000;
}

/* 1-D, two classes at x = -1 (class 0) and x = +1 (class 1). By symmetry
 * W = [-a, a], b = 0 with l2 a = 1 / (1 + exp(2a)). */
START_TEST(probe_symmetric_closed_form) {
    float x[8] = {-1, -1, -1, -1, 1, 1, 1, 1};
    int32_t y[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    LinProblem tr = {8, 1, x, y};
    const double l2s[3] = {1.0, 0.1, 0.01};
    for (int t = 0; t < 3; t++) {
        double l2 = l2s[t];
        double lo = 0, hi = 100;
        for (int it = 0; it < 200; it++) {
            double a = 0.5 * (lo + hi);
            if (l2 * a - 1.0 / (1.0 + exp(2 * a)) > 0) hi = a; else lo = a;
        }
        double a = 0.5 * (lo + hi);
        LinParam p;
        default_param(&p, 2);
        p.l2_default = l2;
        LinModel *m = NULL;
        ck_assert_int_eq(lineval_train(&m, &tr, NULL, &p), SP_OK);
        ck_assert_double_eq(m->l2, l2);
        ck_assert_msg(fabs(m->w[1] - a) < 1e-5 * (1 + a) && fabs(m->w[0] + a) < 1e-5 * (1 + a),
                      "l2 %g: W = [%.7g, %.7g], closed form [-%.7g, %.7g]", l2, m->w[0], m->w[1], a, a);
        ck_assert_msg(fabs(m->b[0]) < 1e-5 && fabs(m->b[1]) < 1e-5, "bias [%g, %g] should be 0",
                      m->b[0], m->b[1]);
        int32_t pred[8];
        ck_assert_int_eq(lineval_predict(m, x, 8, pred, NULL), SP_OK);
        for (int i = 0; i < 8; i++) ck_assert_int_eq(pred[i], y[i]);
        lineval_destroy(&m);
        ck_assert_ptr_null(m);
    }
}
END_TEST

/* Separable 3-class set, weak L2: training accuracy 100 %, probabilities of
 * the true class close to 1. */
START_TEST(probe_separable) {
    enum { N = 60, D = 4, C = 3 };
    float x[N * D];
    int32_t y[N];
    sp_fill_uniform_f(x, N * D, 7, -0.3, 0.3);
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        x[i * D + y[i]] += 3.0f;   /* class c has a large coordinate c */
    }
    LinParam p;
    default_param(&p, C);
    p.standardise = 1;
    p.l2_default = 1e-4;
    LinProblem tr = {N, D, x, y};
    LinModel *m = NULL;
    ck_assert_int_eq(lineval_train(&m, &tr, NULL, &p), SP_OK);
    int32_t pred[N];
    float prob[N * C];
    ck_assert_int_eq(lineval_predict(m, x, N, pred, prob), SP_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(pred[i], y[i]);
        ck_assert_msg(prob[i * C + y[i]] > 0.97f, "row %d: p(true) = %g", i, prob[i * C + y[i]]);
        float s = prob[i * C] + prob[i * C + 1] + prob[i * C + 2];
        ck_assert_msg(fabsf(s - 1) < 1e-5f, "row %d: probabilities sum to %g", i, s);
    }
    lineval_destroy(&m);
}
END_TEST

/* Newton's method in double on the same objective (plus (sum b)^2 / 2, zero
 * at the solution, which removes the softmax's shift invariance). */
static void newton_reference(const float *x, const int32_t *y, int n, int D, int C, double l2,
                             double *th) {
    const int np = C * D + C;
    double *H = calloc((size_t)np * np, sizeof(double)), *g = calloc((size_t)np, sizeof(double));
    double *p = malloc((size_t)C * sizeof(double)), *xt = malloc((size_t)(D + 1) * sizeof(double));
    memset(th, 0, (size_t)np * sizeof(double));
    for (int it = 0; it < 50; it++) {
        memset(H, 0, (size_t)np * np * sizeof(double));
        memset(g, 0, (size_t)np * sizeof(double));
        for (int i = 0; i < n; i++) {
            for (int d = 0; d < D; d++) xt[d] = x[i * D + d];
            xt[D] = 1;
            double mx = -1e300;
            for (int c = 0; c < C; c++) {
                double z = th[C * D + c];
                for (int d = 0; d < D; d++) z += th[c * D + d] * xt[d];
                p[c] = z;
                if (z > mx) mx = z;
            }
            double s = 0;
            for (int c = 0; c < C; c++) s += (p[c] = exp(p[c] - mx));
            for (int c = 0; c < C; c++) p[c] /= s;
            /* index of parameter (c, d): d < D -> c*D + d, d == D -> C*D + c */
            for (int c = 0; c < C; c++) {
                double r = p[c] - (y[i] == c);
                for (int d = 0; d <= D; d++) {
                    int a = d < D ? c * D + d : C * D + c;
                    g[a] += r * xt[d] / n;
                    for (int c2 = 0; c2 < C; c2++) {
                        double h = ((c == c2) ? p[c] : 0) - p[c] * p[c2];
                        for (int d2 = 0; d2 <= D; d2++) {
                            int b = d2 < D ? c2 * D + d2 : C * D + c2;
                            H[(size_t)a * np + b] += h * xt[d] * xt[d2] / n;
                        }
                    }
                }
            }
        }
        double sb = 0;
        for (int c = 0; c < C; c++) sb += th[C * D + c];
        for (int a = 0; a < C * D; a++) {
            g[a] += l2 * th[a];
            H[(size_t)a * np + a] += l2;
        }
        for (int c = 0; c < C; c++) {
            g[C * D + c] += sb;
            for (int c2 = 0; c2 < C; c2++) H[(size_t)(C * D + c) * np + C * D + c2] += 1;
        }
        /* solve H d = g by Gaussian elimination with partial pivoting */
        for (int k = 0; k < np; k++) {
            int piv = k;
            for (int r = k + 1; r < np; r++)
                if (fabs(H[(size_t)r * np + k]) > fabs(H[(size_t)piv * np + k])) piv = r;
            if (piv != k) {
                for (int j = 0; j < np; j++) {
                    double t = H[(size_t)k * np + j];
                    H[(size_t)k * np + j] = H[(size_t)piv * np + j];
                    H[(size_t)piv * np + j] = t;
                }
                double t = g[k];
                g[k] = g[piv];
                g[piv] = t;
            }
            for (int r = k + 1; r < np; r++) {
                double f = H[(size_t)r * np + k] / H[(size_t)k * np + k];
                for (int j = k; j < np; j++) H[(size_t)r * np + j] -= f * H[(size_t)k * np + j];
                g[r] -= f * g[k];
            }
        }
        for (int k = np - 1; k >= 0; k--) {
            double s = g[k];
            for (int j = k + 1; j < np; j++) s -= H[(size_t)k * np + j] * g[j];
            g[k] = s / H[(size_t)k * np + k];
        }
        for (int a = 0; a < np; a++) th[a] -= g[a];
    }
    free(H);
    free(g);
    free(p);
    free(xt);
}

START_TEST(probe_matches_newton) {
    enum { N = 14, D = 4, C = 3 };
    float x[N * D];
    int32_t y[N];
    sp_fill_uniform_f(x, N * D, 11, -1.0, 1.0);
    for (int i = 0; i < N; i++) {
        y[i] = (i * 7) % C;
        x[i * D + y[i]] += 0.6f;   /* overlapping classes: a non-trivial optimum */
    }
    const double l2 = 0.05;
    double th[C * D + C];
    newton_reference(x, y, N, D, C, l2, th);
    LinParam p;
    default_param(&p, C);
    p.l2_default = l2;
    LinProblem tr = {N, D, x, y};
    LinModel *m = NULL;
    ck_assert_int_eq(lineval_train(&m, &tr, NULL, &p), SP_OK);
    double refw[C * D], bmean = 0, refb[C];
    float gotb[C];
    for (int i = 0; i < C * D; i++) refw[i] = th[i];
    for (int c = 0; c < C; c++) bmean += m->b[c] / (double)C;
    for (int c = 0; c < C; c++) {
        refb[c] = th[C * D + c];
        gotb[c] = (float)(m->b[c] - bmean);
    }
    sp_expect_close_d("W", m->w, refw, C * D, 1e-4, 1e-5);
    sp_expect_close_d("b (centred)", gotb, refb, C, 1e-4, 1e-5);
    lineval_destroy(&m);
}
END_TEST

/* Train (imbalanced 30:10) / val / test built so that the strength that is
 * best on val (strong: always predict the majority class) is worst on test,
 * where the weak strength is perfect. The probe must pick the val optimum. */
START_TEST(probe_l2_selected_on_val_only) {
    enum { NT = 40, NV = 10, NS = 20 };
    float xt[NT], xv[NV], xs[NS];
    int32_t yt[NT], yv[NV], ys[NS];
    for (int i = 0; i < NT; i++) {
        yt[i] = i < 30 ? 0 : 1;
        xt[i] = (yt[i] ? 1.0f : -1.0f) + 0.01f * (float)(i % 5 - 2);
    }
    for (int i = 0; i < NV; i++) {   /* labelled 0 but looking like class 1 */
        yv[i] = 0;
        xv[i] = 1.0f + 0.01f * (float)(i % 3);
    }
    for (int i = 0; i < NS; i++) {   /* honest test rows, balanced */
        ys[i] = i % 2;
        xs[i] = ys[i] ? 1.0f : -1.0f;
    }
    const double grid[2] = {1e-4, 10.0};
    LinProblem tr = {NT, 1, xt, yt}, va = {NV, 1, xv, yv};
    double test_acc[2];
    int32_t pred[NS];
    for (int g = 0; g < 2; g++) {   /* test accuracy of each candidate on its own */
        LinParam p;
        default_param(&p, 2);
        p.standardise = 1;
        p.l2_default = grid[g];
        LinModel *m = NULL;
        ck_assert_int_eq(lineval_train(&m, &tr, NULL, &p), SP_OK);
        ck_assert_int_eq(lineval_predict(m, xs, NS, pred, NULL), SP_OK);
        int ok = 0;
        for (int i = 0; i < NS; i++) ok += pred[i] == ys[i];
        test_acc[g] = ok / (double)NS;
        lineval_destroy(&m);
    }
    ck_assert_msg(test_acc[0] == 1.0 && test_acc[1] == 0.5,
                  "construction: test accuracy should be 1.0 (weak) and 0.5 (strong), got %g %g",
                  test_acc[0], test_acc[1]);
    LinParam p;
    default_param(&p, 2);
    p.standardise = 1;
    p.l2_grid = grid;
    p.n_l2 = 2;
    LinModel *m = NULL;
    ck_assert_int_eq(lineval_train(&m, &tr, &va, &p), SP_OK);
    ck_assert_int_eq(m->n_path, 2);
    ck_assert_double_eq(m->path_l2[0], 10.0);   /* strongest first */
    ck_assert_double_eq(m->path_val_acc[0], 1.0);
    ck_assert_double_eq(m->path_val_acc[1], 0.0);
    ck_assert_double_eq(m->l2, 10.0);
    ck_assert_int_eq(lineval_predict(m, xs, NS, pred, NULL), SP_OK);
    int ok = 0;
    for (int i = 0; i < NS; i++) ok += pred[i] == ys[i];
    ck_assert_int_eq(ok, NS / 2);   /* the selected model is the val optimum, not the test one */
    lineval_destroy(&m);
}
END_TEST

START_TEST(probe_errors) {
    float x[4] = {0, 1, 2, 3};
    int32_t y[4] = {0, 1, 5, 0};
    LinProblem tr = {4, 1, x, y};
    LinParam p;
    default_param(&p, 2);
    LinModel *m = NULL;
    ck_assert_int_eq(lineval_train(&m, &tr, NULL, &p), SP_EINPUT);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "label 5"));
    ck_assert_ptr_null(m);
    p.n_classes = 1;
    ck_assert_ptr_nonnull(lineval_check_param(&p));
    default_param(&p, 2);
    double bad[1] = {-1};
    p.l2_grid = bad;
    p.n_l2 = 1;
    ck_assert_ptr_nonnull(strstr(lineval_check_param(&p), "l2_grid"));
    y[2] = 1;
    x[1] = NAN;
    default_param(&p, 2);
    ck_assert_int_eq(lineval_train(&m, &tr, NULL, &p), SP_ENUMERIC);
}
END_TEST

/* ---------------------------------------------------------------- kNN */

START_TEST(knn_hand_computed_votes) {
    /* train: a=(2,0) class 0, b=(0,3) class 1, c=(1,1) class 1, d=(-1,0) class 2 */
    const float xt[8] = {2, 0, 0, 3, 1, 1, -1, 0};
    const int32_t yt[4] = {0, 1, 1, 2};
    LinProblem tr = {4, 2, xt, yt};
    /* q = (5, 0): cos sims a 1, b 0, c 1/sqrt(2), d -1. k = 3: a, c, b.
     * t = 0.5: class 0 e^2 = 7.389 beats class 1 e^1.414 + e^0 = 5.113
     * although class 1 has two of the three neighbours. */
    const float q[4] = {5, 0, 0, 0.5f};
    int32_t pred[2];
    float sc[6];
    ck_assert_int_eq(lineval_knn(&tr, 3, q, 2, 3, 0.5, pred, sc), SP_OK);
    double v0 = exp(2.0), v1 = exp(sqrt(2.0)) + 1.0, tot = v0 + v1;
    ck_assert_int_eq(pred[0], 0);
    double ref0[3] = {v0 / tot, v1 / tot, 0};
    sp_expect_close_d("scores q0", sc, ref0, 3, 1e-5, 1e-7);
    /* q = (0, 0.5): sims b 1, c 1/sqrt(2), a 0, d 0; k = 3 takes b, c and
     * then a (tie with d: the lower index wins). */
    double w1 = exp(2.0) + exp(sqrt(2.0)), w0 = 1.0, tot1 = w0 + w1;
    ck_assert_int_eq(pred[1], 1);
    double ref1[3] = {w0 / tot1, w1 / tot1, 0};
    sp_expect_close_d("scores q1", sc + 3, ref1, 3, 1e-5, 1e-7);
    /* with a large temperature the majority of k = 3 wins for q0 */
    ck_assert_int_eq(lineval_knn(&tr, 3, q, 1, 3, 100.0, pred, NULL), SP_OK);
    ck_assert_int_eq(pred[0], 1);
    /* k larger than the training set is clamped: all 4 vote */
    ck_assert_int_eq(lineval_knn(&tr, 3, q, 1, 50, 0.5, pred, sc), SP_OK);
    double v2 = exp(-2.0), tot2 = v0 + v1 + v2;
    double ref2[3] = {v0 / tot2, v1 / tot2, v2 / tot2};
    sp_expect_close_d("scores k clamped", sc, ref2, 3, 1e-5, 1e-7);
}
END_TEST

START_TEST(knn_many_rows_thread_invariant) {
    /* more rows than one query block; 1 and 2 threads give the same bits */
    enum { NT = 300, NQ = 200, D = 8, C = 5 };
    float *xt = malloc(NT * D * sizeof(float)), *xq = malloc(NQ * D * sizeof(float));
    int32_t yt[NT], p1[NQ], p2[NQ];
    float *s1 = malloc(NQ * C * sizeof(float)), *s2 = malloc(NQ * C * sizeof(float));
    sp_fill_uniform_f(xt, NT * D, 3, -1, 1);
    sp_fill_uniform_f(xq, NQ * D, 4, -1, 1);
    for (int i = 0; i < NT; i++) yt[i] = i % C;
    LinProblem tr = {NT, D, xt, yt};
    sp_blas_init(1);
    ck_assert_int_eq(lineval_knn(&tr, C, xq, NQ, 20, 0.1, p1, s1), SP_OK);
    sp_blas_init(2);
    ck_assert_int_eq(lineval_knn(&tr, C, xq, NQ, 20, 0.1, p2, s2), SP_OK);
    ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
    ck_assert_int_eq(memcmp(s1, s2, NQ * C * sizeof(float)), 0);
    /* a query equal to a training row has it as its nearest neighbour */
    ck_assert_int_eq(lineval_knn(&tr, C, xt + 17 * D, 1, 1, 0.1, p1, NULL), SP_OK);
    ck_assert_int_eq(p1[0], yt[17]);
    free(xt);
    free(xq);
    free(s1);
    free(s2);
}
END_TEST

START_TEST(knn_errors) {
    const float xt[2] = {1, 0};
    const int32_t yt[1] = {4};
    LinProblem tr = {1, 2, xt, yt};
    int32_t pred[1];
    ck_assert_int_eq(lineval_knn(&tr, 3, xt, 1, 1, 0.1, pred, NULL), SP_EINPUT);
    const int32_t y0[1] = {0};
    tr.y = y0;
    ck_assert_int_eq(lineval_knn(&tr, 3, xt, 1, 0, 0.1, pred, NULL), SP_ECONFIG);
    ck_assert_int_eq(lineval_knn(&tr, 3, xt, 1, 1, 0.0, pred, NULL), SP_ECONFIG);
}
END_TEST

/* ------------------------------------------------------------- metrics */

START_TEST(metrics_exact) {
    const int32_t y[6] = {0, 0, 1, 1, 2, -1};
    const int32_t p[6] = {0, 1, 1, 1, 0, 2};
    LinMetrics m;
    ck_assert_int_eq(lineval_metrics(&m, p, y, 6, 3), SP_OK);
    ck_assert_int_eq(m.n, 5);   /* the unlabelled row is skipped */
    ck_assert_int_eq(m.correct, 3);
    ck_assert_double_eq(m.acc, 0.6);
    /* F1: class 0 2*1/(2+2) = 0.5, class 1 2*2/(2+3) = 0.8, class 2 0 */
    ck_assert_double_eq_tol(m.macro_f1, (0.5 + 0.8 + 0.0) / 3, 1e-15);
    const int64_t conf[9] = {1, 1, 0, 0, 2, 0, 1, 0, 0};
    for (int i = 0; i < 9; i++) ck_assert_int_eq(m.confusion[i], conf[i]);
    lineval_metrics_free(&m);
    /* a class absent from labels and predictions does not count */
    ck_assert_int_eq(lineval_metrics(&m, p, y, 4, 5), SP_OK);
    ck_assert_double_eq_tol(m.macro_f1, (2.0 / 3 + 0.8) / 2, 1e-15);
    lineval_metrics_free(&m);
    const int32_t bad[1] = {7};
    ck_assert_int_eq(lineval_metrics(&m, bad, y, 1, 3), SP_EINPUT);
}
END_TEST


/* -------------------------------------------------------------- model io */

START_TEST(probe_save_load_roundtrip) {
    enum { N = 30, D = 5, C = 3 };
    float x[N * D];
    int32_t y[N];
    sp_fill_uniform_f(x, N * D, 21, -1, 1);
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        x[i * D + y[i]] += 1.0f;
    }
    const double grid[3] = {1e-3, 1e-2, 1e-1};
    LinParam p;
    default_param(&p, C);
    p.standardise = 1;
    p.l2_grid = grid;
    p.n_l2 = 3;
    LinProblem tr = {20, D, x, y}, va = {10, D, x + 20 * D, y + 20};
    LinModel *m = NULL;
    ck_assert_int_eq(lineval_train(&m, &tr, &va, &p), SP_OK);
    snprintf(m->encoder_ckpt, sizeof m->encoder_ckpt, "/some/where/ckpt.h5");
    snprintf(m->arch, sizeof m->arch, "cnn");
    m->encoder_hash = 0xfedcba9876543210ULL;
    SpNorm nm;
    memset(&nm, 0, sizeof nm);
    nm.kind = SP_NORM_GLOBAL_MINMAX;
    nm.gmin = -2;
    nm.gmax = 6;
    nm.count = 7;
    nm.L = 16;
    char path[1024];
    snprintf(path, sizeof path, "%s/probe.h5", sp_tmpdir());
    ck_assert_int_eq(lineval_save(m, path, &nm, "linear_eval = { knn_k = 3; };"), SP_OK);
    LinModel *r = NULL;
    SpNorm nr;
    int have = 0;
    SpStatus lrc = lineval_load(&r, path, &nr, &have);
    ck_assert_msg(lrc == SP_OK, "load: %s", sp_error_message());
    ck_assert_int_eq(have, 1);
    ck_assert_int_eq(nr.kind, SP_NORM_GLOBAL_MINMAX);
    ck_assert_double_eq(nr.gmax, 6);
    norm_free(&nr);
    ck_assert_int_eq(r->C, C);
    ck_assert_int_eq(r->D, D);
    ck_assert_int_eq(memcmp(r->w, m->w, sizeof(float) * C * D), 0);
    ck_assert_int_eq(memcmp(r->b, m->b, sizeof(float) * C), 0);
    ck_assert_int_eq(memcmp(r->mean, m->mean, sizeof(float) * D), 0);
    ck_assert_int_eq(memcmp(r->std, m->std, sizeof(float) * D), 0);
    ck_assert_str_eq(r->encoder_ckpt, "/some/where/ckpt.h5");
    ck_assert_str_eq(r->arch, "cnn");
    ck_assert(r->encoder_hash == 0xfedcba9876543210ULL);
    ck_assert_double_eq(r->l2, m->l2);
    float p1[N * C], p2[N * C];
    ck_assert_int_eq(lineval_predict(m, x, N, NULL, p1), SP_OK);
    ck_assert_int_eq(lineval_predict(r, x, N, NULL, p2), SP_OK);
    ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
    lineval_destroy(&r);
    lineval_destroy(&m);
    /* not a model file / wrong kind */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/missing.h5", sp_tmpdir());
    ck_assert_int_ne(lineval_load(&r, bad, NULL, NULL), SP_OK);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "missing.h5"));
    sp_tmpdir_cleanup();
}
END_TEST


/* ------------------------------------------------------- frozen encoder */

/* Features (eval mode), probe and kNN leave every encoder byte unchanged,
 * BN running statistics included; one train-mode forward does change them,
 * so the check can fail. */
START_TEST(frozen_encoder_check) {
    sp_core_config_register();
    data_config_register();
    augment_config_register();
    encoder_config_register();
    linear_eval_config_register();
    sp_blas_init(2);
    const char *sets[] = {"encoder.arch=\"cnn\"", "encoder.cnn.channels=[6, 8]",
                          "encoder.cnn.kernels=[5, 3]", "encoder.cnn.strides=[1, 1]",
                          "encoder.cnn.padding=[2, 1]", "encoder.cnn.pool=[2, 0]",
                          "encoder.cnn.batchnorm=true"};
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, NULL, sets, 7) == SP_OK, "%s", sp_error_message());
    SpRng rng;
    sp_rng_stream(&rng, 1, 2, 3, 4);
    SpEncoder *e = NULL;
    ck_assert_int_eq(encoder_create(&e, c, &rng), SP_OK);
    enum { N = 40, L = 48 };
    float *x = malloc(sizeof(float) * N * L);
    int32_t y[N];
    sp_fill_uniform_f(x, N * L, 5, -1, 2);
    for (int i = 0; i < N; i++) {
        y[i] = i % 4;
        for (int t = 0; t < L; t++) x[i * L + t] += (float)(y[i] * sin(0.3 * t * (1 + y[i])));
    }
    /* non-trivial running statistics: a few train-mode forwards */
    SpEncAct *act = NULL;
    ck_assert_int_eq(encoder_act_create(&act, e, N, L), SP_OK);
    const int D = encoder_feature_dim(e);
    float *f = malloc(sizeof(float) * N * D);
    for (int k = 0; k < 3; k++) ck_assert_int_eq(encoder_forward(e, act, x, N, SP_ENC_TRAIN, f), SP_OK);
    SpParams *p = encoder_params(e);
    ck_assert_int_gt((int)p->n_buf, 0);
    size_t np = p->n_param, nb = p->n_buf;
    float *before = malloc(sizeof(float) * (np + nb));
    memcpy(before, p->data, sizeof(float) * np);
    memcpy(before + np, p->buf, sizeof(float) * nb);
    uint64_t h0 = lineval_encoder_hash(e);

    char path[1024];
    snprintf(path, sizeof path, "%s/frozen.h5", sp_tmpdir());
    SpDatasetOut d = {x, N, L, y, NULL, NULL, NULL, 0, "test"};
    ck_assert_int_eq(dataset_write(path, &d), SP_OK);
    SpDataOptions o;
    data_options_default(&o);
    SpDataset *ds = NULL;
    ck_assert_int_eq(dataset_open(&ds, path, &o), SP_OK);
    SpNorm nm;
    ck_assert_int_eq(norm_fit(&nm, SP_NORM_GLOBAL_MINMAX, ds, NULL, N), SP_OK);
    ck_assert_int_eq(lineval_features(e, ds, NULL, N, &nm, 7, f), SP_OK);
    LinParam lp;
    default_param(&lp, 4);
    const double grid[3] = {1e-3, 1e-1, 10};
    lp.l2_grid = grid;
    lp.n_l2 = 3;
    lp.standardise = 1;
    LinProblem tr = {24, D, f, y}, va = {16, D, f + 24 * D, y + 24};
    LinModel *m = NULL;
    ck_assert_int_eq(lineval_train(&m, &tr, &va, &lp), SP_OK);
    int32_t pred[N];
    ck_assert_int_eq(lineval_predict(m, f, N, pred, NULL), SP_OK);
    ck_assert_int_eq(lineval_knn(&tr, 4, f, N, 5, 0.1, pred, NULL), SP_OK);
    lineval_destroy(&m);
    ck_assert_msg(memcmp(before, p->data, sizeof(float) * np) == 0,
                  "encoder parameters changed during feature extraction / probe");
    ck_assert_msg(memcmp(before + np, p->buf, sizeof(float) * nb) == 0,
                  "BN running statistics changed during feature extraction / probe");
    ck_assert(lineval_encoder_hash(e) == h0);
    /* the check is sensitive: a train-mode forward updates the running stats */
    ck_assert_int_eq(encoder_forward(e, act, x, N, SP_ENC_TRAIN, f), SP_OK);
    ck_assert(memcmp(before + np, p->buf, sizeof(float) * nb) != 0);
    ck_assert(lineval_encoder_hash(e) != h0);
    norm_free(&nm);
    dataset_close(&ds);
    encoder_act_destroy(&act);
    encoder_destroy(&e);
    sp_config_free(c);
    free(x);
    free(f);
    free(before);
    sp_tmpdir_cleanup();
}
END_TEST

int main(void) {
    Suite *s = suite_create("linear_eval");
    TCase *tc = tcase_create("lbfgs");
    tcase_add_test(tc, lbfgs_rosenbrock);
    tcase_add_test(tc, lbfgs_quadratic);
    tcase_add_test(tc, lbfgs_nonfinite_start);
    suite_add_tcase(s, tc);
    tc = tcase_create("probe");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, probe_symmetric_closed_form);
    tcase_add_test(tc, probe_separable);
    tcase_add_test(tc, probe_matches_newton);
    tcase_add_test(tc, probe_l2_selected_on_val_only);
    suite_add_tcase(s, tc);
    tc = tcase_create("knn");
    tcase_add_test(tc, knn_hand_computed_votes);
    tcase_add_test(tc, knn_many_rows_thread_invariant);
    suite_add_tcase(s, tc);
    tc = tcase_create("metrics");
    tcase_add_test(tc, metrics_exact);
    suite_add_tcase(s, tc);
    tc = tcase_create("frozen");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, frozen_encoder_check);
    suite_add_tcase(s, tc);
    tc = tcase_create("io");
    tcase_add_test(tc, probe_save_load_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, probe_errors);
    tcase_add_test(tc, knn_errors);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
