/* test_rr.c - relational-reasoning pieces: relation pairs by the roll rule
 * (exact indices), the RR heads and their losses against a straight-loop
 * double reference (gradients by central differences in double, compared with
 * the production float backward), the double-softmax loss floor, accuracy
 * rules, the kNN monitor and the collapse metric. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_pretext.h"
#include "sp_test.h"

/* ------------------------------------------------------------------ pairs */

/* V = 3, B = 4: pairs (0,1) c=1, (0,2) c=2, (1,2) c=3; negatives take row
 * (b - c) mod B of the second view (torch.roll(F_v2, c)). */
START_TEST(pairs_v3_b4) {
    const int V = 3, B = 4, N = rr_num_pairs(V, B);
    ck_assert_int_eq(N, 24);
    int left[24], right[24];
    float target[24];
    rr_make_pairs(V, B, left, right, target);
    const int eleft[24] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7};
    const int eright[24] = {4, 5, 6,  7,  7,  4,  5,  6,  8,  9,  10, 11,
                            10, 11, 8, 9, 8, 9, 10, 11, 9, 10, 11, 8};
    const float etarget[24] = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0};
    for (int r = 0; r < N; r++) {
        ck_assert_msg(left[r] == eleft[r], "left[%d] = %d, expected %d", r, left[r], eleft[r]);
        ck_assert_msg(right[r] == eright[r], "right[%d] = %d, expected %d", r, right[r], eright[r]);
        ck_assert_msg(target[r] == etarget[r], "target[%d] = %g", r, (double)target[r]);
    }
}
END_TEST

/* The shift counter wraps to 1 when it reaches B (never a zero shift):
 * V = 4, B = 3 gives shifts 1, 2, 1, 2, 1, 2 over the 6 pairs. */
START_TEST(pairs_counter_wraps) {
    const int V = 4, B = 3, N = rr_num_pairs(V, B);
    ck_assert_int_eq(N, 36);
    int left[36], right[36];
    float target[36];
    rr_make_pairs(V, B, left, right, target);
    const int v1s[6] = {0, 0, 0, 1, 1, 2}, v2s[6] = {1, 2, 3, 2, 3, 3}, shift[6] = {1, 2, 1, 2, 1, 2};
    for (int p = 0; p < 6; p++)
        for (int b = 0; b < B; b++) {
            int rp = p * 2 * B + b, rn = rp + B;
            ck_assert_int_eq(left[rp], v1s[p] * B + b);
            ck_assert_int_eq(right[rp], v2s[p] * B + b);
            ck_assert_int_eq(left[rn], v1s[p] * B + b);
            ck_assert_int_eq(right[rn], v2s[p] * B + ((b - shift[p]) % B + B) % B);
            ck_assert(target[rp] == 1.0f && target[rn] == 0.0f);
            ck_assert_int_ne(right[rn], right[rp]);   /* never the positive partner */
        }
    ck_assert_int_eq(rr_num_pairs(1, 4), 0);
}
END_TEST

/* --------------------------------------------------- double reference */

typedef struct {
    RrHeadKind kind;
    int in, H, out, N;
    /* parameters in double (copied from the float head) */
    double *w0, *b0, *g, *beta, *w3, *b3;
} RefHead;

static void ref_from(RefHead *r, const RrHead *h, int N) {
    memset(r, 0, sizeof *r);
    r->kind = h->kind;
    r->in = h->in;
    r->H = h->hidden;
    r->out = h->out;
    r->N = N;
    const SpParams *p = &h->params;
#define CP(dst, idx)                                                         \
    if ((idx) >= 0) {                                                        \
        size_t n_ = p->t[idx].count;                                         \
        dst = malloc(n_ * sizeof(double));                                   \
        for (size_t i_ = 0; i_ < n_; i_++) dst[i_] = sp_params_data(p, idx)[i_]; \
    }
    CP(r->w0, h->iw0);
    CP(r->b0, h->ib0);
    CP(r->g, h->ig);
    CP(r->beta, h->ibeta);
    CP(r->w3, h->iw3);
    CP(r->b3, h->ib3);
#undef CP
}

static void ref_free(RefHead *r) {
    free(r->w0);
    free(r->b0);
    free(r->g);
    free(r->beta);
    free(r->w3);
    free(r->b3);
}

static double leaky(double v) { return v > 0 ? v : 0.01 * v; }

/* logits (N, out) of x (N, in) in training mode */
static void ref_forward(const RefHead *r, const double *x, double *logits) {
    const int N = r->N;
    if (r->kind == RR_HEAD_LINEAR) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < r->out; o++) {
                double s = r->b3[o];
                for (int i = 0; i < r->in; i++) s += r->w3[o * r->in + i] * leaky(x[n * r->in + i]);
                logits[n * r->out + o] = s;
            }
        return;
    }
    const int H = r->H;
    double *a = malloc((size_t)N * H * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            double s = r->b0[h];
            for (int i = 0; i < r->in; i++) s += r->w0[h * r->in + i] * x[n * r->in + i];
            a[n * H + h] = s;
        }
    for (int h = 0; h < H; h++) {
        double m = 0, v = 0;
        for (int n = 0; n < N; n++) m += a[n * H + h];
        m /= N;
        for (int n = 0; n < N; n++) v += (a[n * H + h] - m) * (a[n * H + h] - m);
        v /= N;
        for (int n = 0; n < N; n++)
            a[n * H + h] = leaky(r->g[h] * (a[n * H + h] - m) / sqrt(v + 1e-5) + r->beta[h]);
    }
    for (int n = 0; n < N; n++)
        for (int o = 0; o < r->out; o++) {
            double s = r->b3[o];
            for (int h = 0; h < H; h++) s += r->w3[o * H + h] * a[n * H + h];
            logits[n * r->out + o] = s;
        }
    free(a);
}

typedef enum { LOSS_BCE, LOSS_FOCAL, LOSS_CE, LOSS_CE2 } LossKind;

static double ref_loss(LossKind k, const double *z, const float *target, const int *labels, int N,
                       int C) {
    double sum = 0;
    for (int n = 0; n < N; n++) {
        if (k == LOSS_BCE || k == LOSS_FOCAL) {
            double x = z[n], t = target[n];
            double p = 1 / (1 + exp(-x));
            double ce = -(t * log(p) + (1 - t) * log(1 - p));
            if (k == LOSS_FOCAL) {
                double pt = t > 0.5 ? p : 1 - p, at = t > 0.5 ? 0.25 : 0.75;
                ce = at * pow(1 - pt, 2.0) * ce;
            }
            sum += ce;
        } else {
            double l[16] = {0};
            for (int c = 0; c < C; c++) l[c] = z[n * C + c];
            if (k == LOSS_CE2) {   /* softmax first, then CE on the probabilities */
                double m = l[0], se = 0;
                for (int c = 1; c < C; c++) m = fmax(m, l[c]);
                for (int c = 0; c < C; c++) se += exp(l[c] - m);
                for (int c = 0; c < C; c++) l[c] = exp(l[c] - m) / se;
            }
            double m = l[0], se = 0;
            for (int c = 1; c < C; c++) m = fmax(m, l[c]);
            for (int c = 0; c < C; c++) se += exp(l[c] - m);
            sum += m + log(se) - l[labels[n]];
        }
    }
    return sum / N;
}

static double ref_total(const RefHead *r, LossKind k, const double *x, const float *target,
                        const int *labels, double scale) {
    double *z = malloc((size_t)r->N * r->out * sizeof(double));
    ref_forward(r, x, z);
    double l = scale * ref_loss(k, z, target, labels, r->N, r->out);
    free(z);
    return l;
}

/* Compare the production float gradients (head parameters and dx) with
 * central differences of the double reference (eps 1e-5 relative). */
static void head_gradcheck(RrHeadKind kind, LossKind lk, int in, int H, int out, int N,
                           unsigned seed) {
    sp_blas_init(1);
    RrHead h;
    SpRng rng;
    sp_rng_stream(&rng, seed, 0, 0, 0);
    ck_assert_int_eq(rr_head_create(&h, kind, in, H, out, &rng), SP_OK);
    /* larger weights than the 0.05 init, so every term matters */
    SpParams *p = &h.params;
    for (int t = 0; t < p->n; t++)
        if (p->t[t].kind == SP_TENSOR_PARAM)
            sp_fill_uniform_f(sp_params_data(p, t), p->t[t].count, seed + 7 + t, -0.8, 0.8);
    RrHeadAct a;
    ck_assert_int_eq(rr_head_act_create(&a, &h, N), SP_OK);
    float *x = malloc((size_t)N * in * sizeof(float));
    float *dx = calloc((size_t)N * in, sizeof(float));
    sp_fill_uniform_f(x, (size_t)N * in, seed + 1, -1.0, 1.0);
    float *target = malloc((size_t)N * sizeof(float));
    int *labels = malloc((size_t)N * sizeof(int));
    for (int n = 0; n < N; n++) {
        target[n] = (float)(n % 2);
        labels[n] = (n * 3 + 1) % out;
    }
    const float scale = 0.75f;
    rr_head_forward(&h, &a, x, N, 1);
    float *dlog = calloc((size_t)N * out, sizeof(float));
    float *prob = malloc((size_t)N * out * sizeof(float));
    float *dprob = malloc((size_t)N * out * sizeof(float));
    RrStats st;
    if (lk == LOSS_BCE || lk == LOSS_FOCAL)
        rr_relation_loss(a.logits, target, N, lk == LOSS_FOCAL ? 2.0f : 0.0f,
                         lk == LOSS_FOCAL ? 0.25f : -1.0f, scale, dlog, &st);
    else
        rr_class_loss(a.logits, labels, N, out, lk == LOSS_CE2, scale, dlog, prob, dprob, &st);
    sp_params_zero_grad(p);
    rr_head_backward(&h, &a, dlog, dx);

    RefHead r;
    ref_from(&r, &h, N);
    double *xd = malloc((size_t)N * in * sizeof(double));
    for (int i = 0; i < N * in; i++) xd[i] = x[i];
    /* loss value */
    double lref = ref_total(&r, lk, xd, target, labels, scale);
    ck_assert_msg(fabs(scale * st.loss - lref) <= 1e-5 * fabs(lref) + 1e-6,
                  "loss %.9g vs reference %.9g", scale * st.loss, lref);
    /* parameters */
    double *tens[6] = {r.w0, r.b0, r.g, r.beta, r.w3, r.b3};
    int idx[6] = {h.iw0, h.ib0, h.ig, h.ibeta, h.iw3, h.ib3};
    for (int t = 0; t < 6; t++) {
        if (idx[t] < 0) continue;
        size_t n = p->t[idx[t]].count;
        const float *g = sp_params_grad(p, idx[t]);
        double gmax = 0.0;
        double *num = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            double v = tens[t][i], eps = 1e-5 * fmax(1.0, fabs(v));
            tens[t][i] = v + eps;
            double lp = ref_total(&r, lk, xd, target, labels, scale);
            tens[t][i] = v - eps;
            double lm = ref_total(&r, lk, xd, target, labels, scale);
            tens[t][i] = v;
            num[i] = (lp - lm) / (2 * eps);
            gmax = fmax(gmax, fabs(num[i]));
        }
        sp_expect_close_d(p->t[idx[t]].name, g, num, n, 1e-3, 1e-4 * gmax + 1e-7);
        free(num);
    }
    /* input */
    {
        size_t n = (size_t)N * in;
        double *num = malloc(n * sizeof(double)), gmax = 0.0;
        for (size_t i = 0; i < n; i++) {
            double v = xd[i], eps = 1e-5 * fmax(1.0, fabs(v));
            if (kind == RR_HEAD_LINEAR && fabs(v) < 1e-3) {   /* LeakyReLU kink */
                num[i] = dx[i];
                continue;
            }
            xd[i] = v + eps;
            double lp = ref_total(&r, lk, xd, target, labels, scale);
            xd[i] = v - eps;
            double lm = ref_total(&r, lk, xd, target, labels, scale);
            xd[i] = v;
            num[i] = (lp - lm) / (2 * eps);
            gmax = fmax(gmax, fabs(num[i]));
        }
        sp_expect_close_d("dx", dx, num, n, 1e-3, 1e-4 * gmax + 1e-7);
        free(num);
    }
    ref_free(&r);
    free(xd);
    free(x);
    free(dx);
    free(target);
    free(labels);
    free(dlog);
    free(prob);
    free(dprob);
    rr_head_act_free(&a);
    rr_head_free(&h);
}

START_TEST(grad_relation_bce) { head_gradcheck(RR_HEAD_MLP, LOSS_BCE, 6, 5, 1, 12, 1); }
END_TEST
START_TEST(grad_relation_focal) { head_gradcheck(RR_HEAD_MLP, LOSS_FOCAL, 6, 5, 1, 12, 2); }
END_TEST
START_TEST(grad_cut_ce) { head_gradcheck(RR_HEAD_MLP, LOSS_CE, 6, 4, 5, 10, 3); }
END_TEST
START_TEST(grad_cut_double_softmax) { head_gradcheck(RR_HEAD_MLP, LOSS_CE2, 6, 4, 5, 10, 4); }
END_TEST
START_TEST(grad_ext_ce) { head_gradcheck(RR_HEAD_LINEAR, LOSS_CE, 7, 0, 3, 9, 5); }
END_TEST
START_TEST(grad_ext_double_softmax) { head_gradcheck(RR_HEAD_LINEAR, LOSS_CE2, 7, 0, 4, 9, 6); }
END_TEST

/* ---------------------------------------------------------- loss rules */

/* Reference quirk 1: with a saturated softmax the double-softmax CE cannot go
 * below log(1 + (C-1)/e) (0.905 for C = 5) and its gradient vanishes; the
 * correct CE on logits goes to 0. */
START_TEST(double_softmax_floor) {
    const int N = 2, C = 5;
    float logits[10] = {60, 0, 0, 0, 0, 0, 0, 0, 70, 0};
    int labels[2] = {0, 3};
    float dl[10] = {0}, prob[10], dprob[10];
    RrStats st;
    rr_class_loss(logits, labels, N, C, 1, 1.0f, dl, prob, dprob, &st);
    double floor5 = log(1.0 + 4.0 / exp(1.0));
    ck_assert_msg(fabs(st.loss - floor5) < 1e-6, "double softmax loss %.9g, floor %.9g", st.loss,
                  floor5);
    ck_assert_msg(fabs(floor5 - 0.9048) < 1e-4, "floor %.6f", floor5);
    for (int i = 0; i < 10; i++) ck_assert_msg(fabs(dl[i]) < 1e-12, "dlogit[%d] = %g", i, (double)dl[i]);
    ck_assert_int_eq(st.n, 2);
    ck_assert_int_eq(st.correct, 2);
    memset(dl, 0, sizeof dl);
    rr_class_loss(logits, labels, N, C, 0, 1.0f, dl, prob, dprob, &st);
    ck_assert_msg(st.loss < 1e-20, "CE on logits %.3g", st.loss);
}
END_TEST

/* Relation accuracy: predict 1 iff logit > 0; a logit of exactly 0 counts
 * as 0 (round(sigmoid(0)) = 0). acc+ and acc- counted separately. */
START_TEST(relation_accuracy) {
    float logits[6] = {0.0f, 0.0f, 2.0f, -1.0f, 3.0f, -0.5f};
    float target[6] = {1, 0, 1, 1, 0, 0};
    RrStats st;
    rr_relation_loss(logits, target, 6, 0.0f, -1.0f, 1.0f, NULL, &st);
    ck_assert_int_eq(st.n_pos, 3);
    ck_assert_int_eq(st.correct_pos, 1);   /* 2.0 only */
    ck_assert_int_eq(st.n_neg, 3);
    ck_assert_int_eq(st.correct_neg, 2);   /* 0.0 and -0.5 */
    ck_assert_int_eq(st.n, 6);
    ck_assert_int_eq(st.correct, 3);
    /* loss: mean of softplus terms */
    double e = 0;
    for (int i = 0; i < 6; i++) {
        double x = logits[i], t = target[i];
        e += fmax(x, 0) - x * t + log1p(exp(-fabs(x)));
    }
    ck_assert_msg(fabs(st.loss - e / 6) < 1e-6, "BCE %.9g vs %.9g", st.loss, e / 6);
}
END_TEST

/* Class accuracy: argmax, first maximum on ties; label -1 is ignored. */
START_TEST(class_accuracy) {
    float logits[9] = {1, 1, 0, 0, 2, 2, 5, 0, 0};
    int labels[3] = {1, 1, -1};
    float prob[9], dprob[9];
    RrStats st;
    rr_class_loss(logits, labels, 3, 3, 0, 1.0f, NULL, prob, dprob, &st);
    ck_assert_int_eq(st.n, 2);
    ck_assert_int_eq(st.correct, 1);   /* row 0 ties -> class 0 (wrong); row 1 -> class 1 */
}
END_TEST

/* ------------------------------------------------------------- monitors */

START_TEST(knn_weighted_vote) {
    sp_blas_init(1);
    /* bank: class 0 near e0, class 1 near e1 (D = 2, unit rows) */
    const float s = 0.6f, c = 0.8f;
    float bank[5 * 2] = {1, 0, c, s, 0, 1, s, c, -1, 0};
    int32_t bl[5] = {0, 0, 1, 1, 1};
    float q[3 * 2] = {1, 0, 0, 1, 0.70710678f, 0.70710678f};
    int32_t ql[3] = {0, 1, 1};
    float scratch[3 * 64];
    /* k = 1: nearest neighbour; the diagonal query's nearest is (0.6, 0.8) or
     * (0.8, 0.6) at equal similarity: the first found (bank row 1, class 0) */
    double a1 = pretext_knn_accuracy(bank, bl, 5, q, ql, 3, 2, 2, 1, 0.1f, scratch);
    ck_assert_msg(fabs(a1 - 2.0 / 3.0) < 1e-12, "k=1 accuracy %g", a1);
    /* k = 4: the diagonal query sees rows 1, 3 (sim 0.99) and 0, 2 (sim 0.707):
     * tied weights per class -> class 0 (lowest) wins; the e1 query sees
     * class 1 rows 2, 3 plus row 1 (class 0) and row 0: class 1 wins */
    double a4 = pretext_knn_accuracy(bank, bl, 5, q, ql, 3, 2, 2, 4, 0.1f, scratch);
    ck_assert_msg(fabs(a4 - 2.0 / 3.0) < 1e-12, "k=4 accuracy %g", a4);
    /* votes are weighted: one very close class-0 row beats two far class-1
     * rows at small t, but not at large t */
    float bank2[3 * 2] = {1, 0, 0.6f, 0.8f, 0.6f, -0.8f};
    int32_t bl2[3] = {0, 1, 1};
    float q2[2] = {1, 0};
    int32_t ql2[1] = {0};
    ck_assert(pretext_knn_accuracy(bank2, bl2, 3, q2, ql2, 1, 2, 2, 3, 0.1f, scratch) == 1.0);
    ck_assert(pretext_knn_accuracy(bank2, bl2, 3, q2, ql2, 1, 2, 2, 3, 100.0f, scratch) == 0.0);
}
END_TEST

START_TEST(collapse_metric) {
    const int B = 400, D = 16;
    float *z = malloc((size_t)B * D * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) z[b * D + d] = d == 0 ? 1.0f : 0.0f;
    ck_assert(pretext_collapse_std(z, B, D) == 0.0);
    SpRng r;
    sp_rng_stream(&r, 3, 0, 0, 0);
    for (int b = 0; b < B; b++) {
        double ss = 0;
        for (int d = 0; d < D; d++) {
            double v = sp_rng_normal(&r);
            z[b * D + d] = (float)v;
            ss += v * v;
        }
        for (int d = 0; d < D; d++) z[b * D + d] = (float)(z[b * D + d] / sqrt(ss));
    }
    double s = pretext_collapse_std(z, B, D);
    ck_assert_msg(fabs(s - 1.0 / sqrt((double)D)) < 0.02, "random unit rows: %g vs %g", s,
                  1.0 / sqrt((double)D));
    free(z);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rr");
    TCase *tc = tcase_create("forward");
    tcase_add_test(tc, pairs_v3_b4);
    tcase_add_test(tc, pairs_counter_wraps);
    tcase_add_test(tc, double_softmax_floor);
    tcase_add_test(tc, relation_accuracy);
    tcase_add_test(tc, class_accuracy);
    tcase_add_test(tc, knn_weighted_vote);
    tcase_add_test(tc, collapse_metric);
    suite_add_tcase(s, tc);
    tc = tcase_create("gradcheck");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, grad_relation_bce);
    tcase_add_test(tc, grad_relation_focal);
    tcase_add_test(tc, grad_cut_ce);
    tcase_add_test(tc, grad_cut_double_softmax);
    tcase_add_test(tc, grad_ext_ce);
    tcase_add_test(tc, grad_ext_double_softmax);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
