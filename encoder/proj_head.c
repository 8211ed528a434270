/* proj_head.c - the MoCo projection head 'mlp' (reference §4):
 *   z = normalize(W2 relu(W1 h + b1) + b2), normalize(v) = v / max(|v|, 1e-12).
 * Dimension letters: B batch, D input (feature) width, H hidden, P output.
 * Tensors "0.weight" (H,D), "0.bias" (H), "2.weight" (P,H), "2.bias" (P), as
 * PyTorch's nn.Sequential indices (1 is the ReLU).
 * Allocation: create / act_create only. Forward/backward open OpenMP regions
 * through sp_layers.h; do not call from inside one.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_checkpoint.h"
#include "sp_layers.h"

struct SpProjHead {
    int D, H, P;
    SpParams params;
    int iw1, ib1, iw2, ib2;
};

struct SpProjAct {
    int maxB, D, H, P;
    int nthreads;       /* OpenMP threads the scratch was sized for */
    int B;
    char *arena;
    float *inp, *a1, *p, *norms;   /* kept: input copy, relu(W1 h + b1), pre-norm output, norms */
    float *dp, *da1, *work;
};

SpStatus encoder_proj_create(SpProjHead **out, int in_dim, int hidden, int out_dim,
                             SpRng *init_rng) {
    *out = NULL;
    if (in_dim < 1 || hidden < 1 || out_dim < 1)
        SP_FAIL(SP_ECONFIG, "projection head: widths must be >= 1 (in %d, hidden %d, out %d)",
                in_dim, hidden, out_dim);
    SpProjHead *h = sp_calloc(1, sizeof *h, "projection head");
    if (!h) return SP_ENOMEM;
    h->D = in_dim;
    h->H = hidden;
    h->P = out_dim;
    sp_params_init(&h->params);
    h->iw1 = sp_params_add_dims(&h->params, "0.weight", SP_TENSOR_PARAM, 2, hidden, in_dim);
    h->ib1 = sp_params_add_dims(&h->params, "0.bias", SP_TENSOR_PARAM, 1, hidden);
    h->iw2 = sp_params_add_dims(&h->params, "2.weight", SP_TENSOR_PARAM, 2, out_dim, hidden);
    h->ib2 = sp_params_add_dims(&h->params, "2.bias", SP_TENSOR_PARAM, 1, out_dim);
    SpStatus rc = (h->iw1 < 0 || h->ib1 < 0 || h->iw2 < 0 || h->ib2 < 0)
                      ? sp_error_status()
                      : sp_params_finalize(&h->params);
    if (rc != SP_OK) {
        encoder_proj_destroy(&h);
        return rc;
    }
    if (init_rng) {
        SpParams *p = &h->params;
        enc_fill_normal(sp_params_data(p, h->iw1), p->t[h->iw1].count, 0.05, init_rng);
        enc_fill_uniform(sp_params_data(p, h->ib1), p->t[h->ib1].count, 1.0 / sqrt(in_dim),
                         init_rng);
        enc_fill_normal(sp_params_data(p, h->iw2), p->t[h->iw2].count, 0.05, init_rng);
        enc_fill_uniform(sp_params_data(p, h->ib2), p->t[h->ib2].count, 1.0 / sqrt(hidden),
                         init_rng);
    }
    *out = h;
    return SP_OK;
}

SpStatus encoder_proj_create_cfg(SpProjHead **h, const SpConfig *cfg, int in_dim,
                                 SpRng *init_rng) {
    return encoder_proj_create(h, in_dim, (int)sp_cfg_int(cfg, "encoder.proj_hidden"),
                               (int)sp_cfg_int(cfg, "encoder.proj_dim"), init_rng);
}

void encoder_proj_destroy(SpProjHead **h) {
    if (!h || !*h) return;
    sp_params_free(&(*h)->params);
    free(*h);
    *h = NULL;
}

int encoder_proj_in_dim(const SpProjHead *h) { return h->D; }
int encoder_proj_out_dim(const SpProjHead *h) { return h->P; }
SpParams *encoder_proj_params(SpProjHead *h) { return &h->params; }
const SpParams *encoder_proj_params_const(const SpProjHead *h) { return &h->params; }

static void proj_layout(SpProjAct *a, EncArena *ar) {
    size_t B = (size_t)a->maxB;
    a->inp = enc_take(ar, B * a->D);
    a->a1 = enc_take(ar, B * a->H);
    a->p = enc_take(ar, B * a->P);
    a->norms = enc_take(ar, B);
    a->dp = enc_take(ar, B * a->P);
    a->da1 = enc_take(ar, B * a->H);
    size_t w1 = linear_work_floats(a->maxB, a->D, a->H);
    size_t w2 = linear_work_floats(a->maxB, a->H, a->P);
    a->work = enc_take(ar, w1 > w2 ? w1 : w2);
}

SpStatus encoder_proj_act_create(SpProjAct **out, const SpProjHead *h, int maxB) {
    *out = NULL;
    if (maxB < 1) SP_FAIL(SP_EINPUT, "projection head context: batch size %d < 1", maxB);
    SpProjAct *a = sp_calloc(1, sizeof *a, "projection head context");
    if (!a) return SP_ENOMEM;
    a->maxB = maxB;
    a->D = h->D;
    a->H = h->H;
    a->P = h->P;
    a->nthreads = omp_get_max_threads();
    EncArena ar = {NULL, 0};
    proj_layout(a, &ar);
    if (enc_arena_alloc(&ar, "projection head activations") != SP_OK) {
        free(a);
        return SP_ENOMEM;
    }
    a->arena = ar.base;
    proj_layout(a, &ar);
    *out = a;
    return SP_OK;
}

void encoder_proj_act_destroy(SpProjAct **a) {
    if (!a || !*a) return;
    free((*a)->arena);
    free(*a);
    *a = NULL;
}

void encoder_proj_forward(SpProjHead *h, SpProjAct *a, const float *feat, int B, float *z) {
    ENC_ASSERT(a->D == h->D && a->H == h->H && a->P == h->P,
               "projection head context built for another head");
    ENC_ASSERT(B >= 1 && B <= a->maxB, "projection head: B=%d, context holds 1..%d", B,
               a->maxB);
    ENC_ASSERT(omp_get_max_threads() <= a->nthreads,
               "projection head context sized for %d threads, now %d", a->nthreads,
               omp_get_max_threads());
    const SpParams *p = &h->params;
    memcpy(a->inp, feat, (size_t)B * h->D * sizeof(float));
    linear_forward(a->a1, a->inp, sp_params_data(p, h->iw1), sp_params_data(p, h->ib1), B, h->D,
                   h->H);
    relu_forward(a->a1, a->a1, (size_t)B * h->H);
    linear_forward(a->p, a->a1, sp_params_data(p, h->iw2), sp_params_data(p, h->ib2), B, h->H,
                   h->P);
    l2norm_forward(z, a->norms, a->p, B, h->P, 1e-12f);
    a->B = B;
}

void encoder_proj_backward(SpProjHead *h, SpProjAct *a, const float *dz, int B, float *dfeat) {
    ENC_ASSERT(a->B > 0 && B == a->B, "projection head backward: B=%d, last forward B=%d", B,
               a->B);
    const SpParams *p = &h->params;
    memset(a->dp, 0, (size_t)B * h->P * sizeof(float));
    l2norm_backward(a->dp, dz, a->p, a->norms, B, h->P, 1e-12f);
    memset(a->da1, 0, (size_t)B * h->H * sizeof(float));
    linear_backward(a->da1, sp_params_grad(p, h->iw2), sp_params_grad(p, h->ib2), a->dp, a->a1,
                    sp_params_data(p, h->iw2), B, h->H, h->P, a->work);
    /* ReLU backward from its output (kept in a1): a1 > 0 <=> input > 0 */
    for (size_t i = 0; i < (size_t)B * h->H; i++)
        if (!(a->a1[i] > 0.0f)) a->da1[i] = 0.0f;
    linear_backward(dfeat, sp_params_grad(p, h->iw1), sp_params_grad(p, h->ib1), a->da1, a->inp,
                    sp_params_data(p, h->iw1), B, h->D, h->H, a->work);
}

SpStatus encoder_proj_save(const SpProjHead *h, hid_t f, const char *group) {
    SP_TRY(ckpt_write_params(f, group, &h->params));
    return SP_OK;
}

SpStatus encoder_proj_load(SpProjHead *h, hid_t f, const char *file, const char *group) {
    SP_TRY(ckpt_read_params(f, file, group, &h->params));
    return SP_OK;
}
