/* moco.c - MoCo v2 pieces (reference/specrrmoco.md §6): the key queue, the
 * momentum update, the shuffle-BN permutation and the key encoder f_k with
 * its projection head.
 *
 * Dimension letters: B batch, L length, F feature width, D key width, Q queue.
 * Allocation: moco_queue_init and moco_key_create only. moco_key_encode runs
 * layers (own OpenMP regions, not inside a parallel region); the other
 * functions are serial.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt_internal.h"

SpStatus moco_queue_init(MocoQueue *q, int D, int Q, SpRng *rng) {
    memset(q, 0, sizeof *q);
    if (D < 1 || Q < 1) SP_FAIL(SP_ECONFIG, "pretext.moco.queue: queue of %d x %d keys", D, Q);
    q->data = sp_aligned_alloc((size_t)D * (size_t)Q * sizeof(float), "MoCo queue");
    if (!q->data) return SP_ENOMEM;
    q->D = D;
    q->Q = Q;
    q->ptr = 0;
    double *col = malloc((size_t)D * sizeof(double));
    if (!col) {
        moco_queue_free(q);
        SP_FAIL(SP_ENOMEM, "out of memory (queue init)");
    }
    for (int j = 0; j < Q; j++) {
        double ss = 0.0;
        for (int d = 0; d < D; d++) {
            col[d] = sp_rng_normal(rng);
            ss += col[d] * col[d];
        }
        double nrm = sqrt(ss);
        if (nrm < 1e-12) nrm = 1e-12;
        for (int d = 0; d < D; d++) q->data[(size_t)d * Q + j] = (float)(col[d] / nrm);
    }
    free(col);
    return SP_OK;
}

void moco_queue_free(MocoQueue *q) {
    free(q->data);
    memset(q, 0, sizeof *q);
}

void moco_queue_push(MocoQueue *q, const float *keys, int n) {
    PT_ASSERT(n >= 1 && n <= q->Q, "moco_queue_push: %d keys for a queue of %d", n, q->Q);
    const int D = q->D, Q = q->Q;
    int start = (int)q->ptr;
    int n1 = n < Q - start ? n : Q - start;  /* first piece: up to column Q-1 */
    int n2 = n - n1;                          /* second piece: from column 0 */
    for (int d = 0; d < D; d++) {
        float *row = q->data + (size_t)d * Q;
        for (int i = 0; i < n1; i++) row[start + i] = keys[(size_t)i * D + d];
        for (int i = 0; i < n2; i++) row[i] = keys[(size_t)(n1 + i) * D + d];
    }
    q->ptr = (q->ptr + n) % Q;
}

void moco_momentum_update(float *theta_k, const float *theta_q, size_t n, float m) {
    const float om = (float)(1.0 - (double)m);
    for (size_t i = 0; i < n; i++) theta_k[i] = theta_k[i] * m + theta_q[i] * om;
}

void moco_shuffle_perm(int *perm, int B, uint64_t seed, int64_t epoch, int64_t step, int dir) {
    SpRng r;
    sp_rng_stream(&r, seed, (uint64_t)epoch, (uint64_t)step, (uint64_t)dir);
    for (int i = 0; i < B; i++) perm[i] = i;
    sp_rng_shuffle_int(&r, perm, B);
}

SpStatus moco_key_create(MocoKeyEncoder *k, const SpConfig *cfg, const SpEncoder *enc_q,
                         const SpProjHead *proj_q, int maxB, int L, SpEncAct *shared) {
    memset(k, 0, sizeof *k);
    SpStatus rc = SP_OK;
    SP_TRY_GOTO(rc, encoder_create_arch(&k->enc, encoder_arch(enc_q), cfg, NULL), fail);
    if (!sp_params_same_layout(encoder_params(k->enc), encoder_params_const(enc_q)))
        SP_FAIL_GOTO(rc, fail, SP_EINTERNAL, "key encoder: layout differs from the query encoder");
    SP_TRY_GOTO(rc, sp_params_copy(encoder_params(k->enc), encoder_params_const(enc_q)), fail);
    {   /* same shapes as the query head (hidden width read from its first layer) */
        const SpParams *pq = encoder_proj_params_const(proj_q);
        int iw1 = sp_params_find(pq, "0.weight");
        PT_ASSERT(iw1 >= 0, "projection head without 0.weight");
        int hidden = (int)pq->t[iw1].shape[0];
        SP_TRY_GOTO(rc,
                    encoder_proj_create(&k->proj, encoder_proj_in_dim(proj_q), hidden,
                                        encoder_proj_out_dim(proj_q), NULL),
                    fail);
    }
    SP_TRY_GOTO(rc, sp_params_copy(encoder_proj_params(k->proj), encoder_proj_params_const(proj_q)),
                fail);
    k->maxB = maxB;
    k->L = L;
    k->F = encoder_feature_dim(k->enc);
    k->D = encoder_proj_out_dim(k->proj);
    if (shared) {
        if (encoder_act_max_batch(shared) < maxB || encoder_act_length(shared) != L)
            SP_FAIL_GOTO(rc, fail, SP_EINTERNAL, "key encoder: shared context too small");
        k->act = shared;
        k->act_shared = 1;
    } else {
        SP_TRY_GOTO(rc, encoder_act_create(&k->act, k->enc, maxB, L), fail);
    }
    SP_TRY_GOTO(rc, encoder_proj_act_create(&k->pact, k->proj, maxB), fail);
    k->xs = sp_aligned_alloc((size_t)maxB * L * sizeof(float), "key encoder input");
    k->h = sp_aligned_alloc((size_t)maxB * k->F * sizeof(float), "key features");
    k->zs = sp_aligned_alloc((size_t)maxB * k->D * sizeof(float), "keys");
    if (!k->xs || !k->h || !k->zs) {
        rc = SP_ENOMEM;
        goto fail;
    }
    return SP_OK;
fail:
    moco_key_free(k);
    return rc;
}

void moco_key_free(MocoKeyEncoder *k) {
    free(k->xs);
    free(k->h);
    free(k->zs);
    encoder_proj_act_destroy(&k->pact);
    if (!k->act_shared) encoder_act_destroy(&k->act);
    encoder_proj_destroy(&k->proj);
    encoder_destroy(&k->enc);
    memset(k, 0, sizeof *k);
}

void moco_key_momentum(MocoKeyEncoder *k, const SpEncoder *enc_q, const SpProjHead *proj_q,
                       float m) {
    SpParams *pk = encoder_params(k->enc);
    const SpParams *pq = encoder_params_const(enc_q);
    PT_ASSERT(pk->n_param == pq->n_param, "momentum update: arenas differ");
    moco_momentum_update(pk->data, pq->data, pk->n_param, m);
    SpParams *hk = encoder_proj_params(k->proj);
    const SpParams *hq = encoder_proj_params_const(proj_q);
    PT_ASSERT(hk->n_param == hq->n_param, "momentum update: head arenas differ");
    moco_momentum_update(hk->data, hq->data, hk->n_param, m);
}

SpStatus moco_key_encode(MocoKeyEncoder *k, const float *x, int B, const int *perm, float *keys) {
    const size_t L = (size_t)k->L;
    const float *in = x;
    if (perm) {
        for (int i = 0; i < B; i++)
            memcpy(k->xs + (size_t)i * L, x + (size_t)perm[i] * L, L * sizeof(float));
        in = k->xs;
    }
    SP_TRY(encoder_forward(k->enc, k->act, in, B, SP_ENC_TRAIN, k->h));
    if (perm) {
        encoder_proj_forward(k->proj, k->pact, k->h, B, k->zs);
        for (int i = 0; i < B; i++)
            memcpy(keys + (size_t)perm[i] * k->D, k->zs + (size_t)i * k->D,
                   (size_t)k->D * sizeof(float));
    } else {
        encoder_proj_forward(k->proj, k->pact, k->h, B, keys);
    }
    return SP_OK;
}
