/* test_moco.c - MoCo v2 pieces of the pretext module: queue wrap-around and
 * pointer, unit-norm keys, the momentum update (exact binary values), the key
 * encoder never trained by gradients, the InfoNCE level at initialisation,
 * shuffle BN. Tiny cnn encoders, augmentation off. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sp_augment.h"
#include "sp_blas.h"
#include "sp_config.h"
#include "sp_data.h"
#include "sp_encoder.h"
#include "sp_pretext.h"
#include "sp_test.h"

static void register_all(void) {
    sp_core_config_register();
    data_config_register();
    augment_config_register();
    encoder_config_register();
    pretext_config_register();
}

/* Defaults + a tiny cnn + the given overrides. */
static SpConfig *tiny_cfg(const char *const *extra, int nextra) {
    register_all();
    const char *base[] = {
        "encoder.arch=\"cnn\"",          "encoder.cnn.channels=[4, 6]",
        "encoder.cnn.kernels=[3, 3]",    "encoder.cnn.strides=[1, 1]",
        "encoder.cnn.padding=[1, 1]",    "encoder.cnn.pool=[2, 0]",
        "encoder.proj_hidden=8",         "encoder.proj_dim=8",
        "augment.transforms=[\"none\"]", "pretext.rr.hidden=8",
        "pretext.rr.views=2",
    };
    const int nb = (int)(sizeof base / sizeof base[0]);
    const char *all[64];
    for (int i = 0; i < nb; i++) all[i] = base[i];
    for (int i = 0; i < nextra; i++) all[nb + i] = extra[i];
    SpConfig *c = NULL;
    SpStatus rc = sp_config_load(&c, NULL, all, nb + nextra);
    ck_assert_msg(rc == SP_OK, "config: %s", sp_error_message());
    return c;
}

/* ------------------------------------------------------------------ queue */

START_TEST(queue_init_unit_columns) {
    SpRng r;
    sp_rng_stream(&r, 7, 1, 2, 3);
    MocoQueue q;
    ck_assert_int_eq(moco_queue_init(&q, 8, 37, &r), SP_OK);
    ck_assert_int_eq(q.ptr, 0);
    for (int j = 0; j < q.Q; j++) {
        double ss = 0.0;
        for (int d = 0; d < q.D; d++) ss += (double)q.data[d * q.Q + j] * q.data[d * q.Q + j];
        ck_assert_msg(fabs(sqrt(ss) - 1.0) < 1e-6, "column %d has norm %.9g", j, sqrt(ss));
    }
    moco_queue_free(&q);
}
END_TEST

/* Q = 7 with 3 keys per push (Q not a multiple of the keys per step): the
 * pointer cycles 0 -> 3 -> 6 -> 2 -> 5 -> 1 -> 4 -> 0 and each push lands in
 * the right columns, wrapping in two pieces, values exact. */
START_TEST(queue_push_wraps) {
    const int D = 2, Q = 7, n = 3;
    MocoQueue q;
    SpRng r;
    sp_rng_stream(&r, 1, 0, 0, 0);
    ck_assert_int_eq(moco_queue_init(&q, D, Q, &r), SP_OK);
    float expect[2 * 7];
    memcpy(expect, q.data, sizeof expect);
    const int64_t ptrs[] = {3, 6, 2, 5, 1, 4, 0, 3};
    float keys[3 * 2];
    for (int push = 0; push < 8; push++) {
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++) keys[i * D + d] = 0.5f * (float)(push * 16 + i * 2 + d);
        int64_t start = q.ptr;
        moco_queue_push(&q, keys, n);
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++) expect[d * Q + (start + i) % Q] = keys[i * D + d];
        ck_assert_msg(q.ptr == ptrs[push], "push %d: ptr %lld, expected %lld", push,
                      (long long)q.ptr, (long long)ptrs[push]);
        for (int k = 0; k < D * Q; k++)
            ck_assert_msg(q.data[k] == expect[k], "push %d: queue[%d] = %g, expected %g", push, k,
                          (double)q.data[k], (double)expect[k]);
    }
    /* a push of exactly Q keys overwrites everything, pointer unchanged */
    float full[7 * 2];
    for (int i = 0; i < Q * D; i++) full[i] = 0.25f * (float)i;
    int64_t p0 = q.ptr;
    moco_queue_push(&q, full, Q);
    ck_assert_int_eq(q.ptr, p0);
    for (int i = 0; i < Q; i++)
        for (int d = 0; d < D; d++)
            ck_assert(q.data[d * Q + (p0 + i) % Q] == full[i * D + d]);
    moco_queue_free(&q);
}
END_TEST

/* --------------------------------------------------------------- momentum */

START_TEST(momentum_exact) {
    float k[4] = {1.0f, -2.0f, 0.5f, 8.0f};
    const float q[4] = {3.0f, 2.0f, -0.5f, 0.0f};
    moco_momentum_update(k, q, 4, 0.5f);
    const float e1[4] = {2.0f, 0.0f, 0.0f, 4.0f};
    for (int i = 0; i < 4; i++) ck_assert_msg(k[i] == e1[i], "m=0.5: [%d] %g", i, (double)k[i]);
    moco_momentum_update(k, q, 4, 0.75f);
    /* 0.75 k + 0.25 q */
    const float e2[4] = {2.25f, 0.5f, -0.125f, 3.0f};
    for (int i = 0; i < 4; i++) ck_assert_msg(k[i] == e2[i], "m=0.75: [%d] %g", i, (double)k[i]);
    moco_momentum_update(k, q, 4, 0.0f);   /* m = 0: copy */
    for (int i = 0; i < 4; i++) ck_assert(k[i] == q[i]);
    float k2[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    moco_momentum_update(k2, q, 4, 1.0f);  /* m = 1: frozen */
    for (int i = 0; i < 4; i++) ck_assert(k2[i] == (float)(i + 1));
}
END_TEST

/* The key encoder: parameters copied at creation (buffers too), the momentum
 * update touches parameters only and follows the formula exactly. */
START_TEST(key_encoder_momentum) {
    sp_blas_init(1);
    const char *sets[] = {"encoder.cnn.batchnorm=true", "encoder.cnn.bn_splits=2"};
    SpConfig *c = tiny_cfg(sets, 2);
    SpRng r;
    sp_rng_stream(&r, 3, 0, 0, 0);
    SpEncoder *eq = NULL;
    SpProjHead *pq = NULL;
    ck_assert_int_eq(encoder_create(&eq, c, &r), SP_OK);
    ck_assert_int_eq(encoder_proj_create_cfg(&pq, c, encoder_feature_dim(eq), &r), SP_OK);
    SpParams *p = encoder_params(eq);
    for (size_t i = 0; i < p->n_buf; i++) p->buf[i] = 0.5f + 0.25f * (float)(i % 4);
    MocoKeyEncoder k;
    ck_assert_int_eq(moco_key_create(&k, c, eq, pq, 4, 16, NULL), SP_OK);
    SpParams *pk = encoder_params(k.enc);
    ck_assert(pk->n_param == p->n_param && pk->n_buf == p->n_buf);
    ck_assert(memcmp(pk->data, p->data, p->n_param * sizeof(float)) == 0);
    ck_assert(memcmp(pk->buf, p->buf, p->n_buf * sizeof(float)) == 0);
    /* binary-exact parameters: q = 2, k = 1 (encoder), q = -1, k = 3 (head) */
    for (size_t i = 0; i < p->n_param; i++) {
        p->data[i] = 2.0f;
        pk->data[i] = 1.0f;
    }
    for (size_t i = 0; i < p->n_buf; i++) pk->buf[i] = 7.0f;
    SpParams *hq = encoder_proj_params(pq), *hk = encoder_proj_params(k.proj);
    for (size_t i = 0; i < hq->n_param; i++) {
        hq->data[i] = -1.0f;
        hk->data[i] = 3.0f;
    }
    moco_key_momentum(&k, eq, pq, 0.75f);
    for (size_t i = 0; i < p->n_param; i++) ck_assert(pk->data[i] == 1.25f);
    for (size_t i = 0; i < hq->n_param; i++) ck_assert(hk->data[i] == 2.0f);
    for (size_t i = 0; i < p->n_buf; i++) ck_assert_msg(pk->buf[i] == 7.0f, "buffer %zu moved", i);
    moco_key_momentum(&k, eq, pq, 0.5f);
    for (size_t i = 0; i < p->n_param; i++) ck_assert(pk->data[i] == 1.625f);
    for (size_t i = 0; i < hq->n_param; i++) ck_assert(hk->data[i] == 0.5f);
    moco_key_free(&k);
    encoder_proj_destroy(&pq);
    encoder_destroy(&eq);
    sp_config_free(c);
}
END_TEST

/* -------------------------------------------------------------- the step */

static void fill_batch(float *x, int B, int L, unsigned long long seed) {
    sp_fill_uniform_f(x, (size_t)B * L, seed, -1.0, 1.0);
}

/* MoCo only: keys are unit vectors; after one step f_k equals the momentum
 * update of the pre-step f_q exactly (so it got no gradient), f_q moved, the
 * queue got [k1; k2] at its pointer. */
START_TEST(step_key_encoder_untrained) {
    sp_blas_init(1);
    const char *sets[] = {"pretext.rr.inter_coef=0", "pretext.rr.intra_coef=0",
                          "pretext.rr.ext_coef=0",   "pretext.moco.coef=1",
                          "pretext.moco.queue=20",   "pretext.moco.momentum=0.5",
                          "optim.lr=0.5",            "encoder.cnn.batchnorm=true",
                          "encoder.cnn.bn_splits=2"};
    SpConfig *c = tiny_cfg(sets, 9);
    const int B = 4, L = 16;
    PretrainState *s = NULL;
    ck_assert_msg(pretrain_state_create(&s, c, L, B, 0, 100) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(pretrain_num_groups(s), 2);
    MocoKeyEncoder *k = pretrain_key_encoder(s);
    MocoQueue *q = pretrain_queue(s);
    ck_assert_ptr_nonnull(k);
    SpParams *pq = encoder_params(pretrain_encoder_q(s)), *pk = encoder_params(k->enc);
    SpParams *hq = encoder_proj_params(pretrain_proj_q(s)), *hk = encoder_proj_params(k->proj);
    float *q_before = malloc(pq->n_param * sizeof(float));
    float *hq_before = malloc(hq->n_param * sizeof(float));
    float *k_before = malloc(pk->n_param * sizeof(float));
    float *hk_before = malloc(hk->n_param * sizeof(float));
    float *qu_before = malloc((size_t)q->D * q->Q * sizeof(float));
    float *x = malloc((size_t)B * L * sizeof(float));
    fill_batch(x, B, L, 11);
    for (int step = 0; step < 3; step++) {
        memcpy(q_before, pq->data, pq->n_param * sizeof(float));
        memcpy(hq_before, hq->data, hq->n_param * sizeof(float));
        memcpy(k_before, pk->data, pk->n_param * sizeof(float));
        memcpy(hk_before, hk->data, hk->n_param * sizeof(float));
        memcpy(qu_before, q->data, (size_t)q->D * q->Q * sizeof(float));
        int64_t ptr0 = q->ptr;
        PretrainStepStats st;
        ck_assert_msg(pretrain_step(s, x, B, NULL, NULL, 0, step, 0.5f, &st) == SP_OK, "%s",
                      sp_error_message());
        for (size_t i = 0; i < pk->n_param; i++) {
            float e = k_before[i] * 0.5f + q_before[i] * 0.5f;
            ck_assert_msg(pk->data[i] == e, "step %d f_k[%zu] = %.9g, expected %.9g", step, i,
                          (double)pk->data[i], (double)e);
            ck_assert(pk->grad[i] == 0.0f);
        }
        for (size_t i = 0; i < hk->n_param; i++) {
            float e = hk_before[i] * 0.5f + hq_before[i] * 0.5f;
            ck_assert(hk->data[i] == e);
            ck_assert(hk->grad[i] == 0.0f);
        }
        size_t moved = 0;
        for (size_t i = 0; i < pq->n_param; i++) moved += pq->data[i] != q_before[i];
        ck_assert_msg(moved > pq->n_param / 2, "only %zu of %zu f_q parameters moved", moved,
                      pq->n_param);
        /* queue: 2B new unit columns at ptr0.., the rest untouched */
        ck_assert_int_eq(q->ptr, (ptr0 + 2 * B) % q->Q);
        for (int j = 0; j < q->Q; j++) {
            int fresh = ((j - ptr0) % q->Q + q->Q) % q->Q < 2 * B;
            double ss = 0.0;
            int same = 1;
            for (int d = 0; d < q->D; d++) {
                float v = q->data[d * q->Q + j];
                ss += (double)v * v;
                same &= v == qu_before[d * q->Q + j];
            }
            ck_assert_msg(fabs(sqrt(ss) - 1.0) < 1e-5, "queue column %d norm %g", j, sqrt(ss));
            ck_assert_msg(fresh ? !same : same, "queue column %d (%s)", j,
                          fresh ? "should be new" : "should be untouched");
        }
        ck_assert(isfinite(st.l_moco) && st.moco_n == 2 * B);
    }
    free(q_before);
    free(hq_before);
    free(k_before);
    free(hk_before);
    free(qu_before);
    free(x);
    pretrain_state_destroy(&s);
    sp_config_free(c);
}
END_TEST

/* Keys are unit vectors. */
START_TEST(keys_unit_norm) {
    sp_blas_init(1);
    const char *sets[] = {"encoder.cnn.batchnorm=true", "encoder.cnn.bn_splits=2"};
    SpConfig *c = tiny_cfg(sets, 2);
    SpRng r;
    sp_rng_stream(&r, 5, 0, 0, 0);
    SpEncoder *eq = NULL;
    SpProjHead *pq = NULL;
    ck_assert_int_eq(encoder_create(&eq, c, &r), SP_OK);
    ck_assert_int_eq(encoder_proj_create_cfg(&pq, c, encoder_feature_dim(eq), &r), SP_OK);
    MocoKeyEncoder k;
    ck_assert_int_eq(moco_key_create(&k, c, eq, pq, 6, 20, NULL), SP_OK);
    float x[6 * 20], keys[6 * 8];
    fill_batch(x, 6, 20, 3);
    int perm[6];
    moco_shuffle_perm(perm, 6, 9, 0, 0, 0);
    ck_assert_int_eq(moco_key_encode(&k, x, 6, perm, keys), SP_OK);
    for (int b = 0; b < 6; b++) {
        double ss = 0.0;
        for (int d = 0; d < 8; d++) ss += (double)keys[b * 8 + d] * keys[b * 8 + d];
        ck_assert_msg(fabs(sqrt(ss) - 1.0) < 1e-6, "key %d norm %.9g", b, sqrt(ss));
    }
    moco_key_free(&k);
    encoder_proj_destroy(&pq);
    encoder_destroy(&eq);
    sp_config_free(c);
}
END_TEST

/* Shuffle BN. Without BN (and with plain BN over the whole batch, S = 1) the
 * keys do not depend on the order the key encoder sees the batch in, so the
 * shuffled and unshuffled keys agree (to rounding); with S = 2 the split
 * membership changes and so do the keys. A wrong un-permutation would fail
 * the first two cases. */
static double shuffle_diff(const char *bn, const char *splits) {
    const char *sets[] = {bn, splits};
    SpConfig *c = tiny_cfg(sets, 2);
    SpRng r;
    sp_rng_stream(&r, 5, 0, 0, 0);
    SpEncoder *eq = NULL;
    SpProjHead *pq = NULL;
    ck_assert_int_eq(encoder_create(&eq, c, &r), SP_OK);
    ck_assert_int_eq(encoder_proj_create_cfg(&pq, c, encoder_feature_dim(eq), &r), SP_OK);
    MocoKeyEncoder k;
    ck_assert_int_eq(moco_key_create(&k, c, eq, pq, 8, 24, NULL), SP_OK);
    float x[8 * 24], k0[8 * 8], k1[8 * 8];
    fill_batch(x, 8, 24, 4);
    int perm[8];
    moco_shuffle_perm(perm, 8, 1, 0, 3, 0);
    int ident = 1;
    for (int i = 0; i < 8; i++) ident &= perm[i] == i;
    ck_assert_msg(!ident, "test permutation is the identity");
    ck_assert_int_eq(moco_key_encode(&k, x, 8, NULL, k0), SP_OK);
    ck_assert_int_eq(moco_key_encode(&k, x, 8, perm, k1), SP_OK);
    double md = 0.0;
    for (int i = 0; i < 64; i++) md = fmax(md, fabs((double)k0[i] - k1[i]));
    moco_key_free(&k);
    encoder_proj_destroy(&pq);
    encoder_destroy(&eq);
    sp_config_free(c);
    return md;
}

START_TEST(shuffle_bn) {
    sp_blas_init(1);
    double d_nobn = shuffle_diff("encoder.cnn.batchnorm=false", "encoder.cnn.bn_splits=1");
    double d_s1 = shuffle_diff("encoder.cnn.batchnorm=true", "encoder.cnn.bn_splits=1");
    double d_s2 = shuffle_diff("encoder.cnn.batchnorm=true", "encoder.cnn.bn_splits=2");
    ck_assert_msg(d_nobn < 1e-6, "no BN: shuffled keys differ by %g", d_nobn);
    ck_assert_msg(d_s1 < 1e-5, "plain BN: shuffled keys differ by %g", d_s1);
    ck_assert_msg(d_s2 > 1e-3, "split BN (S=2): shuffled keys differ by only %g", d_s2);
}
END_TEST

/* ------------------------------------------------------ loss at start */

/* At initialisation f_k = f_q and (augmentation off) im1 = im2, so every
 * positive logit is exactly 1/T, while the negatives are q . u_j / T with u_j
 * the random unit columns of the queue. Expected per direction:
 *   L = log(exp(1/T) + sum_j exp(q.u_j / T)) - 1/T
 *     ~ log(1 + Q M exp(-1/T)),  M = E exp(q.u/T) over u uniform on S^{D-1}.
 * That is far BELOW the chance level ln(Q+1) for small T (the reference's
 * "epoch-0 trap": its first logged L_moco is 0.29 while chance is 14.93), and
 * close to ln(Q+1) (within 1/T) for a large T. M is estimated here by Monte
 * Carlo with fresh random unit vectors. */
static double mc_M(int D, double T, int n) {
    SpRng r;
    sp_rng_stream(&r, 99, 0, 0, 0);
    double q[256], u[256], acc = 0.0;
    double nq = 0.0;
    for (int d = 0; d < D; d++) {
        q[d] = sp_rng_normal(&r);
        nq += q[d] * q[d];
    }
    for (int d = 0; d < D; d++) q[d] /= sqrt(nq);
    for (int i = 0; i < n; i++) {
        double nu = 0.0, dot = 0.0;
        for (int d = 0; d < D; d++) {
            u[d] = sp_rng_normal(&r);
            nu += u[d] * u[d];
        }
        for (int d = 0; d < D; d++) dot += q[d] * u[d];
        acc += exp(dot / sqrt(nu) / T);
    }
    return acc / n;
}

static double init_loss(const char *temp, const char *queue) {
    const char *sets[] = {"pretext.rr.inter_coef=0", "pretext.rr.intra_coef=0",
                          "pretext.rr.ext_coef=0",   "pretext.moco.coef=1",
                          "pretext.moco.shuffle_bn=false", "encoder.proj_dim=128",
                          "encoder.proj_hidden=16", temp, queue};
    SpConfig *c = tiny_cfg(sets, 9);
    PretrainState *s = NULL;
    const int B = 8, L = 16;
    ck_assert_msg(pretrain_state_create(&s, c, L, B, 0, 0) == SP_OK, "%s", sp_error_message());
    float x[8 * 16];
    fill_batch(x, B, L, 21);
    PretrainStepStats st;
    ck_assert_int_eq(pretrain_prepare(s, x, B, NULL, NULL, 0), SP_OK);
    ck_assert_int_eq(pretrain_forward_backward(s, 0, 0, &st), SP_OK);
    pretrain_state_destroy(&s);
    sp_config_free(c);
    ck_assert_int_eq(st.moco_n, 2 * B);
    return st.l_moco / 2.0;   /* per direction */
}

START_TEST(loss_at_init) {
    sp_blas_init(1);
    const int D = 128, Q = 4096;
    /* the reference's T = 0.1, D = 128: the epoch-0 trap */
    double l = init_loss("pretext.moco.temperature=0.1", "pretext.moco.queue=4096");
    double expect = log(1.0 + Q * mc_M(D, 0.1, 50000) * exp(-1.0 / 0.1));
    ck_assert_msg(fabs(l - expect) < 0.05 * expect, "T=0.1: L12 %.4f, expected %.4f", l, expect);
    ck_assert_msg(l < 0.1 * log(Q + 1.0), "T=0.1: L12 %.4f not far below ln(Q+1) %.4f", l,
                  log(Q + 1.0));
    /* large temperature: positives look like negatives, L ~ ln(Q+1) */
    double l2 = init_loss("pretext.moco.temperature=20", "pretext.moco.queue=4096");
    double e2 = log(exp(1.0 / 20) + Q * mc_M(D, 20, 20000)) - 1.0 / 20;
    ck_assert_msg(fabs(l2 - e2) < 0.01, "T=20: L12 %.4f, expected %.4f", l2, e2);
    ck_assert_msg(fabs(l2 - log(Q + 1.0)) < 0.06, "T=20: L12 %.4f vs ln(Q+1) %.4f", l2,
                  log(Q + 1.0));
}
END_TEST

/* ----------------------------------------------------------------- errors */

START_TEST(queue_too_small) {
    sp_blas_init(1);
    const char *sets[] = {"pretext.moco.queue=15"};
    SpConfig *c = tiny_cfg(sets, 1);
    PretrainState *s = NULL;
    SpStatus rc = pretrain_state_create(&s, c, 16, 8, 0, 100);   /* keys per step: 16 */
    ck_assert_int_eq(rc, SP_ECONFIG);
    ck_assert_msg(strstr(sp_error_message(), "pretext.moco.queue") != NULL, "%s",
                  sp_error_message());
    ck_assert_ptr_null(s);
    sp_config_free(c);
    /* exactly the keys of one step is fine */
    const char *ok[] = {"pretext.moco.queue=16"};
    c = tiny_cfg(ok, 1);
    ck_assert_int_eq(pretrain_state_create(&s, c, 16, 8, 0, 100), SP_OK);
    pretrain_state_destroy(&s);
    sp_config_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("moco");
    TCase *tc = tcase_create("queue");
    tcase_add_test(tc, queue_init_unit_columns);
    tcase_add_test(tc, queue_push_wraps);
    suite_add_tcase(s, tc);
    tc = tcase_create("momentum");
    tcase_add_test(tc, momentum_exact);
    tcase_add_test(tc, key_encoder_momentum);
    suite_add_tcase(s, tc);
    tc = tcase_create("forward");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, keys_unit_norm);
    tcase_add_test(tc, shuffle_bn);
    tcase_add_test(tc, step_key_encoder_untrained);
    tcase_add_test(tc, loss_at_init);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, queue_too_small);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
