/* test_optim: core/sp_optim.h (SGD, Adam, AdamW over an SpParams arena; the
 * cosine + warm-up schedule).
 *
 * step: three steps with a constant gradient of 0.5 from theta = 1, values
 *       worked out by hand in the comments (exact binary fractions for SGD,
 *       so compared exactly); no_decay honoured; buffers untouched.
 * schedule: the reference table (reference/specrrmoco.md 8) and the clamp.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_optim.h"
#include "sp_params.h"
#include "sp_test.h"

/* w (decayed, 2x2), b (no_decay, 2), a buffer rm (2) */
typedef struct {
    SpParams p;
    int iw, ib, irm;
} Model;

static void model_init(Model *m) {
    sp_params_init(&m->p);
    m->iw = sp_params_add_dims(&m->p, "w", SP_TENSOR_PARAM, 2, 2, 2);
    m->ib = sp_params_add_dims(&m->p, "b", SP_TENSOR_PARAM, 1, 2);
    m->irm = sp_params_add_dims(&m->p, "rm", SP_TENSOR_BUFFER, 1, 2);
    ck_assert(m->iw >= 0 && m->ib >= 0 && m->irm >= 0);
    m->p.t[m->ib].no_decay = 1;
    ck_assert_int_eq(sp_params_finalize(&m->p), SP_OK);
    for (size_t i = 0; i < m->p.n_param; i++) m->p.data[i] = 1.0f;
    float *rm = sp_params_data(&m->p, m->irm);
    rm[0] = 3.0f;
    rm[1] = 4.0f;
}

static void set_grad(Model *m, float g) {
    for (size_t i = 0; i < m->p.n_param; i++) m->p.grad[i] = g;
}

/* run 3 steps and compare w[0] and b[0] after each with the expected values */
static void run3(Model *m, SpOptim *o, float lr, const double *want_w, const double *want_b,
                 double tol, const char *what) {
    for (int s = 0; s < 3; s++) {
        set_grad(m, 0.5f);
        optim_step(o, &m->p, lr);
        const float *w = sp_params_data(&m->p, m->iw), *b = sp_params_data(&m->p, m->ib);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(fabs(w[i] - want_w[s]) <= tol, "%s step %d: w[%d] = %.9g, want %.9g", what,
                          s + 1, i, w[i], want_w[s]);
        for (int i = 0; i < 2; i++)
            ck_assert_msg(fabs(b[i] - want_b[s]) <= tol, "%s step %d: b[%d] = %.9g, want %.9g", what,
                          s + 1, i, b[i], want_b[s]);
        ck_assert_int_eq(o->step, s + 1);
    }
    const float *rm = sp_params_data(&m->p, m->irm);
    ck_assert(rm[0] == 3.0f && rm[1] == 4.0f);  /* buffers are never stepped */
}

START_TEST(sgd_momentum_weight_decay) {
    /* lr 0.5, mu 0.5, wd 0.25, g = 0.5, theta0 = 1:
     * w: g' = 0.75, buf = 0.75 (first step), theta = 1 - 0.375 = 0.625
     *    g' = 0.5 + 0.15625 = 0.65625, buf = 0.375 + 0.65625 = 1.03125, theta = 0.109375
     *    g' = 0.52734375, buf = 0.515625 + 0.52734375 = 1.04296875, theta = -0.412109375
     * b (no_decay): buf 0.5, 0.75, 0.875 -> theta 0.75, 0.375, -0.0625 */
    Model m;
    model_init(&m);
    SpOptim o;
    ck_assert_int_eq(optim_init(&o, SP_OPT_SGD, &m.p), SP_OK);
    ck_assert_ptr_null(o.v);
    ck_assert(o.n == m.p.n_param && o.step == 0);
    o.momentum = 0.5f;
    o.weight_decay = 0.25f;
    const double w[3] = {0.625, 0.109375, -0.412109375}, b[3] = {0.75, 0.375, -0.0625};
    run3(&m, &o, 0.5f, w, b, 0.0, "sgd");
    /* the momentum buffer holds the last buf */
    ck_assert(o.m[0] == 1.04296875f && o.m[m.p.t[m.ib].offset] == 0.875f);
    optim_free(&o);
    ck_assert_ptr_null(o.m);
    sp_params_free(&m.p);
}
END_TEST

START_TEST(sgd_nesterov_and_plain) {
    /* nesterov, lr 0.5, mu 0.5, wd 0: buf 0.5, 0.75, 0.875; d = g + mu*buf =
     * 0.75, 0.875, 0.9375 -> theta 0.625, 0.1875, -0.28125 */
    Model m;
    model_init(&m);
    SpOptim o;
    ck_assert_int_eq(optim_init(&o, SP_OPT_SGD, &m.p), SP_OK);
    o.momentum = 0.5f;
    o.nesterov = 1;
    const double w[3] = {0.625, 0.1875, -0.28125};
    run3(&m, &o, 0.5f, w, w, 0.0, "sgd nesterov");
    optim_free(&o);
    sp_params_free(&m.p);
    /* no momentum, wd 0.5, lr 0.25: theta -= 0.25 (0.5 + 0.5 theta):
     * w: 1 -> 0.75 -> 0.53125 -> 0.33984375; b (no decay): 0.875, 0.75, 0.625 */
    model_init(&m);
    ck_assert_int_eq(optim_init(&o, SP_OPT_SGD, &m.p), SP_OK);
    o.weight_decay = 0.5f;
    const double w2[3] = {0.75, 0.53125, 0.33984375}, b2[3] = {0.875, 0.75, 0.625};
    run3(&m, &o, 0.25f, w2, b2, 0.0, "sgd plain");
    optim_free(&o);
    sp_params_free(&m.p);
}
END_TEST

START_TEST(adam_and_adamw) {
    /* Adam, lr 0.5, betas (0.5, 0.75), eps 0, constant g = 0.5: m_hat = v_hat^(1/2)
     * = 0.5 at every step, so each step moves theta by exactly lr:
     * step 1: m 0.25, v 0.0625, bc1 0.5, bc2 0.25 -> 1 - 1*(0.25/0.5) = 0.5
     * step 2: m 0.375, v 0.109375, bc1 0.75, bc2 0.4375 -> 0.5 - (2/3)(0.375/0.5) = 0
     * step 3: m 0.4375, v 0.14453125, bc1 0.875, bc2 0.578125 -> -0.5 */
    Model m;
    model_init(&m);
    SpOptim o;
    ck_assert_int_eq(optim_init(&o, SP_OPT_ADAM, &m.p), SP_OK);
    ck_assert_ptr_nonnull(o.v);
    o.beta1 = 0.5f;
    o.beta2 = 0.75f;
    o.eps = 0.0f;
    const double w[3] = {0.5, 0.0, -0.5};
    run3(&m, &o, 0.5f, w, w, 1e-6, "adam");
    optim_free(&o);
    sp_params_free(&m.p);

    /* Adam with L2 decay 0.5 (w only): g' = 0.5 + 0.5 theta;
     * step 1: g' = 1, m 0.5, v 0.25 -> m_hat 1, v_hat 1 -> theta 0.5
     * step 2: g' = 0.75, m 0.625, v 0.328125 -> m_hat 0.8333, v_hat 0.75
     *         -> 0.5 - 0.5 * 0.83333 / 0.86603 = 0.0188748
     * step 3: -0.4230623 (PyTorch 1.13 float: 0.5, 0.01887476, -0.42306226) */
    model_init(&m);
    ck_assert_int_eq(optim_init(&o, SP_OPT_ADAM, &m.p), SP_OK);
    o.beta1 = 0.5f;
    o.beta2 = 0.75f;
    o.eps = 0.0f;
    o.weight_decay = 0.5f;
    const double wl2[3] = {0.5, 0.018874775675311872, -0.423062231348275};
    run3(&m, &o, 0.5f, wl2, w, 2e-6, "adam l2");
    optim_free(&o);
    sp_params_free(&m.p);

    /* AdamW, wd 0.5, lr 0.5: theta *= 1 - 0.25 first, then the same lr-sized
     * Adam step: w 0.75 - 0.5 = 0.25; 0.1875 - 0.5 = -0.3125;
     * -0.234375 - 0.5 = -0.734375. b (no decay): 0.5, 0, -0.5 */
    model_init(&m);
    ck_assert_int_eq(optim_init(&o, SP_OPT_ADAMW, &m.p), SP_OK);
    o.beta1 = 0.5f;
    o.beta2 = 0.75f;
    o.eps = 0.0f;
    o.weight_decay = 0.5f;
    const double ww[3] = {0.25, -0.3125, -0.734375};
    run3(&m, &o, 0.5f, ww, w, 1e-6, "adamw");
    optim_free(&o);
    sp_params_free(&m.p);
}
END_TEST

START_TEST(optim_defaults_and_errors) {
    Model m;
    model_init(&m);
    SpOptim o;
    ck_assert_int_eq(optim_init(&o, SP_OPT_ADAMW, &m.p), SP_OK);
    ck_assert(o.beta1 == 0.9f && o.beta2 == 0.999f && o.eps == 1e-8f && o.momentum == 0.0f &&
              o.weight_decay == 0.0f && o.nesterov == 0 && o.step == 0);
    for (size_t i = 0; i < o.n; i++) ck_assert(o.m[i] == 0.0f && o.v[i] == 0.0f);
    optim_free(&o);
    optim_free(&o);  /* idempotent */
    ck_assert_int_eq(optim_init(&o, (SpOptimKind)7, &m.p), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "unknown kind"));
    sp_params_free(&m.p);
}
END_TEST

/* ---------------------------------------------------------------- schedule */
static const SpSchedule ref_sched = {0.15, 800, 1, 0.1, 10, 0.01, 1};

START_TEST(schedule_reference_quirk_table) {
    /* reference/specrrmoco.md 8: W 10, from 0.01, nb 2, lr0 0.15, E 800 */
    const struct { int e, it; double lr; } rows[] = {
        {0, 1, 0.0030029}, {1, 0, 0.0100000}, {1, 1, 0.0169971}, {2, 0, 0.0239942},
        {2, 1, 0.0309913}, {5, 0, 0.0659769}, {5, 1, 0.0729740}, {10, 0, 0.1359480},
        {10, 1, 0.1429451}, {11, 0, 0.1499301}, {11, 1, 0.1499301}, {400, 0, 0.075075},
        {400, 1, 0.075075},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double lr = sched_lr(&ref_sched, rows[i].e, rows[i].it, 2);
        ck_assert_msg(fabs(lr - rows[i].lr) < 6e-8, "epoch %d iter %d: lr %.9f, table %.7f",
                      rows[i].e, rows[i].it, lr, rows[i].lr);
    }
    /* the quirk's epoch 0 iter 0 value is -0.0039942 in the reference: clamped to 0 */
    ck_assert(sched_lr(&ref_sched, 0, 0, 2) == 0.0);
    /* the checkpoint's final lr equals lr(799) */
    double last = sched_lr(&ref_sched, 799, 1, 2);
    ck_assert_msg(fabs(last - 0.00015057771809331863) < 1e-15, "lr(799) = %.17g", last);
}
END_TEST

START_TEST(schedule_correct_warmup_and_constant) {
    SpSchedule s = ref_sched;
    s.reference_quirk = 0;
    const double to = 0.14994223554033617;  /* lr(10) */
    ck_assert(sched_lr(&s, 0, 0, 2) == 0.01);
    double lr91 = sched_lr(&s, 9, 1, 2);  /* p = 19/20 */
    ck_assert_msg(fabs(lr91 - (0.01 + 0.95 * (to - 0.01))) < 1e-9, "epoch 9 iter 1: %.12g", lr91);
    ck_assert_msg(fabs(sched_lr(&s, 10, 0, 2) - to) < 1e-9, "epoch 10: %.12g", sched_lr(&s, 10, 0, 2));
    /* monotone warm-up over W*nb steps */
    double prev = -1;
    for (int e = 0; e < 10; e++)
        for (int it = 0; it < 2; it++) {
            double lr = sched_lr(&s, e, it, 2);
            ck_assert(lr > prev && lr < to);
            prev = lr;
        }
    /* no warm-up, cosine: lr(0) = lr0, lr(E/2) = (lr0 + eta_min)/2 */
    s.warmup_epochs = 0;
    ck_assert(fabs(sched_lr(&s, 0, 5, 2) - 0.15) < 1e-15);
    ck_assert(fabs(sched_lr(&s, 400, 0, 2) - (0.15 + 1.5e-4) / 2) < 1e-12);
    /* constant schedule */
    s.cosine = 0;
    ck_assert(sched_lr(&s, 0, 0, 2) == 0.15 && sched_lr(&s, 799, 1, 2) == 0.15);
    s.warmup_epochs = 4;
    s.warmup_from = 0.0;
    ck_assert(sched_lr(&s, 0, 0, 2) == 0.0);
    ck_assert(fabs(sched_lr(&s, 2, 0, 2) - 0.075) < 1e-15);
    ck_assert(sched_lr(&s, 4, 0, 2) == 0.15);
    /* never negative */
    s.warmup_from = -1.0;
    ck_assert(sched_lr(&s, 0, 0, 2) == 0.0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("step");
    tcase_add_test(tc, sgd_momentum_weight_decay);
    tcase_add_test(tc, sgd_nesterov_and_plain);
    tcase_add_test(tc, adam_and_adamw);
    tcase_add_test(tc, optim_defaults_and_errors);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("schedule");
    tcase_add_test(ts, schedule_reference_quirk_table);
    tcase_add_test(ts, schedule_correct_warmup_and_constant);
    suite_add_tcase(s, ts);
    return sp_run_suite(s);
}
