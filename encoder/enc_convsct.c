/* enc_convsct.c - "Conv SCT attention": the ConvSC attention encoder
 * (reference §3, enc_convsc.c) with a transformer-style position-wise
 * feed-forward block after the attention fusion ("T" for transformer).
 *
 *   x (B,1,L) -> conv1 (C1,k5,s2) -> splitBN -> ReLU -> maxpool2      (B,C1,L2)
 *             -> conv3 (C3,k5)    -> splitBN -> ReLU -> maxpool2      (B,C3,L4)
 *             -> adaptive avg pool NB -> Linear(NB->T) -> LN(T)        X (B,C3,T)
 *   A_S = MHA over the T tokens of C3 dims (H heads)                  (B,C3,T)
 *   CAM: E = X X^T (C3xC3), Att = softmax_row(-E), AX = Att X
 *   Z = (X + A_S) + (gamma AX + X) -> LN(T)                           Y (B,C3,T)
 *   feed-forward on every (sample, channel) row of T values:
 *   Y3 = LN(Y + Linear(F->T)(ReLU(Linear(T->F)(Y))))                  (B,C3,T)
 *   -> conv 1x1 (C3->1) -> splitBN(1) -> ReLU                         h (B,T)
 * Defaults C1 64, C3 16, NB 236, T 128, H 2, S 8, F 512 = 4 T
 * (encoder.convsct.*). 169,604 parameters: ConvSC's 37,636 plus the block
 * (65,536 + 512 + 65,536 + 128 + 256).
 *
 * The seed study's Conv SCT notebook and weights are missing (reference §14:
 * 1,953,353 parameters, nothing else known); its sibling "Conv SC attention"
 * runs a feed-forward 256 -> 1024 -> 256 with LayerNorms on the embedding
 * axis. This definition keeps the SpecRRMoco ConvSC encoder unchanged and
 * inserts the feed-forward sublayer of a post-LN transformer layer (width
 * 4 T, residual, LayerNorm) on the same embedding axis, before dec_conv3.
 * The ConvSC pieces both archs share are in enc_convsc_parts.c.
 *
 * Tensors: ConvSC's names (enc_convsc.c, reference §3.7) plus "ffn.0.weight"
 * (F, T), "ffn.0.bias" (F), "ffn.2.weight" (T, F), "ffn.2.bias" (T),
 * "ffn_norm.weight", "ffn_norm.bias" (T).
 * Init: reference §3.8 for the ConvSC part, drawn in ConvSC's order (so the
 * same generator gives the same ConvSC part as arch convsc), then the block
 * with the same rule as every Linear of the reference's _create_weights:
 * weights N(0, 0.05^2), biases U(+-1/sqrt(fan_in)); its LayerNorm 1 / 0.
 *
 * Dimension letters: B batch, L input length, C1/C3 conv channels, L1..L4
 * lengths after conv1/pool/conv3/pool, NB adaptive-pool bins, T tokens (=
 * embedding width = feature width), H heads, F feed-forward width, S BN
 * splits. ReLU runs after the max pool (they commute; see enc_convsc.c).
 * Allocation: create / act_create only. Every function opens its own OpenMP
 * regions (through sp_layers.h or below); never call from inside one.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "enc_convsc_parts.h"
#include "sp_layers.h"

#define BN_EPS 1e-5f
#define BN_MOM 0.1f
#define LN_EPS 1e-5f
/* Elementwise loops below this many floats run serially: an OpenMP region
 * costs more than the work (tiny shapes, oversubscribed cores). */
#define PAR_MIN 32768

static const SpCfgKey g_keys[] = {
    {"encoder.convsct.conv1_channels", SP_CFG_INT, "64", 1, 4096, NULL,
     "convsct: output channels of conv1 (as convsc)"},
    {"encoder.convsct.conv3_channels", SP_CFG_INT, "16", 1, CAM_MAX_C, NULL,
     "convsct: output channels of conv3 = attention embedding width (as convsc)"},
    {"encoder.convsct.bins", SP_CFG_INT, "236", 1, 1000000, NULL,
     "convsct: adaptive average pool bins before the embedding Linear (as convsc)"},
    {"encoder.convsct.embed_dim", SP_CFG_INT, "128", 1, 65536, NULL,
     "convsct: embedding width = attention tokens = feature width (as convsc)"},
    {"encoder.convsct.heads", SP_CFG_INT, "2", 1, 1024, NULL,
     "convsct: attention heads (must divide conv3_channels)"},
    {"encoder.convsct.bn_splits", SP_CFG_INT, "8", 1, 1024, NULL,
     "convsct: split-BatchNorm groups in training mode (training batches must be multiples)"},
    {"encoder.convsct.bn_gamma_init", SP_CFG_STRING, "\"normal\"", 1, 0, "normal|one",
     "convsct: BatchNorm weight init: normal = N(0, 0.05^2) as the reference, one = 1"},
    {"encoder.convsct.ff", SP_CFG_INT, "512", 1, 1048576, NULL,
     "convsct: width of the feed-forward block Linear(embed_dim -> ff) -> ReLU -> "
     "Linear(ff -> embed_dim), residual + LayerNorm (4 x embed_dim as a transformer)"},
};

void enc_convsct_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

/* Tensor indices: ConvSC's (enc_convsc_parts.h), then the block. */
enum { T_F1W = T_CONVSC_COUNT, T_F1B, T_F2W, T_F2B, T_LN3W, T_LN3B, T_COUNT };

typedef struct {
    ConvscDims d;
    int F;
    int idx[T_COUNT];
} Convsct;

static int convsct_length_ok(const SpEncoder *e, int L) {
    (void)e;
    return enc_convsc_length_ok(L);
}

static SpStatus convsct_create(SpEncoder *e, const SpConfig *cfg) {
    Convsct s;
    memset(&s, 0, sizeof s);
    SpStatus rc = enc_convsc_dims(&s.d, cfg, "convsct");
    if (rc != SP_OK) return rc;
    s.F = (int)sp_cfg_int(cfg, "encoder.convsct.ff");
    if ((rc = enc_convsc_declare(s.idx, &e->params, &s.d)) != SP_OK) return rc;
    SpParams *p = &e->params;
    const SpTensorKind P = SP_TENSOR_PARAM;
    int *ix = s.idx;
    ix[T_F1W] = sp_params_add_dims(p, "ffn.0.weight", P, 2, s.F, s.d.T);
    ix[T_F1B] = sp_params_add_dims(p, "ffn.0.bias", P, 1, s.F);
    ix[T_F2W] = sp_params_add_dims(p, "ffn.2.weight", P, 2, s.d.T, s.F);
    ix[T_F2B] = sp_params_add_dims(p, "ffn.2.bias", P, 1, s.d.T);
    ix[T_LN3W] = sp_params_add_dims(p, "ffn_norm.weight", P, 1, s.d.T);
    ix[T_LN3B] = sp_params_add_dims(p, "ffn_norm.bias", P, 1, s.d.T);
    for (int i = T_CONVSC_COUNT; i < T_COUNT; i++)
        if (ix[i] < 0) return sp_error_status();

    Convsct *impl = sp_malloc(sizeof *impl, "convsct spec");
    if (!impl) return SP_ENOMEM;
    *impl = s;
    e->impl = impl;
    e->feature_dim = s.d.T;
    e->batch_multiple = s.d.S;
    return SP_OK;
}

static void convsct_init(SpEncoder *e, SpRng *rng) {
    const Convsct *s = e->impl;
    SpParams *p = &e->params;
    enc_convsc_init(p, s->idx, &s->d, rng);   /* drawn first: the same as arch convsc */
    if (!rng) return; /* the caller loads values */
#define D(k) sp_params_data(p, s->idx[k])
#define N(k) p->t[s->idx[k]].count
    enc_fill_const(D(T_LN3W), N(T_LN3W), 1.0f);
    /* the feed-forward block */
    enc_fill_normal(D(T_F1W), N(T_F1W), 0.05, rng);
    enc_fill_uniform(D(T_F1B), N(T_F1B), 1.0 / sqrt((double)s->d.T), rng);
    enc_fill_normal(D(T_F2W), N(T_F2W), 0.05, rng);
    enc_fill_uniform(D(T_F2B), N(T_F2B), 1.0 / sqrt((double)s->F), rng);
#undef D
#undef N
}

/* ------------------------------------------------------------ activations */
typedef struct {
    ConvscLens n;
    SpConv1d cv1, cv3, cvd;
    SpBatchNorm bn1, bn3, bn4;
    SpMHA mha;
    char *arena;
    /* forward, kept for backward */
    float *xin, *c1, *p1, *c3, *p3, *ap, *emb, *X, *Xt, *cache, *Att, *AX, *Z, *Y;
    float *f1, *S3, *Y3, *dc, *h;
    int *idx1, *idx3;
    float *m1, *r1, *m3, *r3, *m4, *r4;          /* BN saved mean / rstd (S*C) */
    float *lm1, *lr1, *lm2, *lr2, *lm3, *lr3;    /* LN saved mean / rstd */
    /* scratch: pre-pool BN output in forward, its gradient in backward */
    float *t1, *t3, *At;
    /* backward */
    float *dc1, *dp1, *dc3, *dp3, *dap, *demb, *dX, *dXt, *dAt, *dZ, *dY, *df1, *dS3, *dY3;
    float *ddc, *dh;
    double *dgam;                                /* per-sample dgamma partials (B) */
    double *camacc;                              /* CAM scratch, T doubles per thread */
    float *work;
} ConvsctAct;

/* grad = 0 (inference-only context): no backward buffers. */
static void convsct_layout(ConvsctAct *t, EncArena *ar, const Convsct *s, int B, int L,
                           int grad, int nthreads) {
    ConvscLens n = enc_convsc_lens(L);
    size_t BC1L1 = (size_t)B * s->d.C1 * n.L1, BC1L2 = (size_t)B * s->d.C1 * n.L2;
    size_t BC3L3 = (size_t)B * s->d.C3 * n.L3, BC3L4 = (size_t)B * s->d.C3 * n.L4;
    size_t BCT = (size_t)B * s->d.C3 * s->d.T, BT = (size_t)B * s->d.T;
    size_t BCF = (size_t)B * s->d.C3 * s->F;
    t->n = n;
    t->cv1 = conv1d_shape(B, 1, L, s->d.C1, 5, 2, 0);
    t->cv3 = conv1d_shape(B, s->d.C1, n.L2, s->d.C3, 5, 1, 0);
    t->cvd = conv1d_shape(B, s->d.C3, s->d.T, 1, 1, 1, 0);
    t->bn1 = (SpBatchNorm){B, s->d.C1, n.L1, s->d.S, BN_EPS, BN_MOM};
    t->bn3 = (SpBatchNorm){B, s->d.C3, n.L3, s->d.S, BN_EPS, BN_MOM};
    t->bn4 = (SpBatchNorm){B, 1, s->d.T, s->d.S, BN_EPS, BN_MOM};
    t->mha = (SpMHA){B, s->d.T, s->d.C3, s->d.H};

    t->xin = enc_take(ar, (size_t)B * L);
    t->c1 = enc_take(ar, BC1L1);
    t->p1 = enc_take(ar, BC1L2);
    t->idx1 = enc_take_int(ar, BC1L2);
    t->c3 = enc_take(ar, BC3L3);
    t->p3 = enc_take(ar, BC3L4);
    t->idx3 = enc_take_int(ar, BC3L4);
    t->ap = enc_take(ar, (size_t)B * s->d.C3 * s->d.NB);
    t->emb = enc_take(ar, BCT);
    t->X = enc_take(ar, BCT);
    t->Xt = enc_take(ar, BCT);
    t->cache = enc_take(ar, mha_cache_floats(&t->mha));
    t->Att = enc_take(ar, (size_t)B * s->d.C3 * s->d.C3);
    t->AX = enc_take(ar, BCT);
    t->Z = enc_take(ar, BCT);
    t->Y = enc_take(ar, BCT);
    t->f1 = enc_take(ar, BCF);
    t->S3 = enc_take(ar, BCT);
    t->Y3 = enc_take(ar, BCT);
    t->dc = enc_take(ar, BT);
    t->h = enc_take(ar, BT);
    t->m1 = enc_take(ar, (size_t)s->d.S * s->d.C1);
    t->r1 = enc_take(ar, (size_t)s->d.S * s->d.C1);
    t->m3 = enc_take(ar, (size_t)s->d.S * s->d.C3);
    t->r3 = enc_take(ar, (size_t)s->d.S * s->d.C3);
    t->m4 = enc_take(ar, (size_t)s->d.S);
    t->r4 = enc_take(ar, (size_t)s->d.S);
    t->lm1 = enc_take(ar, (size_t)B * s->d.C3);
    t->lr1 = enc_take(ar, (size_t)B * s->d.C3);
    t->lm2 = enc_take(ar, (size_t)B * s->d.C3);
    t->lr2 = enc_take(ar, (size_t)B * s->d.C3);
    t->lm3 = enc_take(ar, (size_t)B * s->d.C3);
    t->lr3 = enc_take(ar, (size_t)B * s->d.C3);
    t->t1 = enc_take(ar, BC1L1);
    t->t3 = enc_take(ar, BC3L3);
    t->At = enc_take(ar, BCT);
    t->dY = enc_take(ar, BCT);   /* also the forward's A_S scratch */
    t->camacc = enc_take_double(ar, (size_t)s->d.T * nthreads);
    t->dc1 = t->dp1 = t->dc3 = t->dp3 = t->dap = t->demb = t->dX = t->dXt = t->dAt = NULL;
    t->dZ = t->df1 = t->dS3 = t->dY3 = t->ddc = t->dh = NULL;
    t->dgam = NULL;
    if (grad) {
        t->dc1 = enc_take(ar, BC1L1);
        t->dp1 = enc_take(ar, BC1L2);
        t->dc3 = enc_take(ar, BC3L3);
        t->dp3 = enc_take(ar, BC3L4);
        t->dap = enc_take(ar, (size_t)B * s->d.C3 * s->d.NB);
        t->demb = enc_take(ar, BCT);
        t->dX = enc_take(ar, BCT);
        t->dXt = enc_take(ar, BCT);
        t->dAt = enc_take(ar, BCT);
        t->dZ = enc_take(ar, BCT);
        t->df1 = enc_take(ar, BCF);
        t->dS3 = enc_take(ar, BCT);
        t->dY3 = enc_take(ar, BCT);
        t->ddc = enc_take(ar, BT);
        t->dh = enc_take(ar, BT);
        t->dgam = enc_take_double(ar, (size_t)B);
    }

    size_t w = conv1d_work_floats(&t->cv1);
    size_t v;
#define MAXW(x) v = (x); if (v > w) w = v
    MAXW(conv1d_work_floats(&t->cv3));
    MAXW(conv1d_work_floats(&t->cvd));
    MAXW(batchnorm_work_floats(&t->bn1));
    MAXW(batchnorm_work_floats(&t->bn3));
    MAXW(batchnorm_work_floats(&t->bn4));
    MAXW(linear_work_floats(B * s->d.C3, s->d.NB, s->d.T));
    MAXW(linear_work_floats(B * s->d.C3, s->d.T, s->F));
    MAXW(linear_work_floats(B * s->d.C3, s->F, s->d.T));
    MAXW(layernorm_work_floats(B * s->d.C3, s->d.T));
    MAXW(mha_work_floats(&t->mha));
#undef MAXW
    t->work = enc_take(ar, w);
}

static SpStatus convsct_act_create(SpEncAct *a, const SpEncoder *e) {
    const Convsct *s = e->impl;
    ConvsctAct *t = sp_calloc(1, sizeof *t, "convsct activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    convsct_layout(t, &ar, s, a->maxB, a->L, !a->infer, a->nthreads);
    a->bytes = ar.used;
    if (enc_arena_alloc(&ar, "convsct activations") != SP_OK) {
        free(t);
        return SP_ENOMEM;
    }
    t->arena = ar.base;
    convsct_layout(t, &ar, s, a->maxB, a->L, !a->infer, a->nthreads);
    a->impl = t;
    return SP_OK;
}

static void convsct_act_free(SpEncAct *a) {
    ConvsctAct *t = a->impl;
    if (t) free(t->arena);
    free(t);
    a->impl = NULL;
}

/* Shapes for the current batch size B (contexts are sized for maxB). */
static void set_batch(ConvsctAct *t, int B) {
    t->cv1.B = t->cv3.B = t->cvd.B = B;
    t->bn1.N = t->bn3.N = t->bn4.N = B;
    t->mha.B = B;
}

/* out = a + b over B samples of per floats */
static void add2(float *out, const float *a, const float *b, int B, size_t per) {
#pragma omp parallel for schedule(static) if ((size_t)B * per >= PAR_MIN)
    for (int i = 0; i < B; i++) {
        const size_t o = (size_t)i * per;
        for (size_t j = 0; j < per; j++) out[o + j] = a[o + j] + b[o + j];
    }
}

static void convsct_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                            float *feat) {
    const int train = mode == SP_ENC_TRAIN;
    const Convsct *s = e->impl;
    ConvsctAct *t = a->impl;
    const SpParams *p = &e->params;
    set_batch(t, B);
    const ConvscLens n = t->n;
    const int C1 = s->d.C1, C3 = s->d.C3, T = s->d.T;
    const int *ix = s->idx;
#define D(k) sp_params_data(p, ix[k])

    /* conv1 -> BN -> pool -> ReLU (x is kept: conv1's weight gradient needs it) */
    memcpy(t->xin, x, (size_t)B * a->L * sizeof(float));
    conv1d_forward(t->c1, t->xin, D(T_C1W), D(T_C1B), &t->cv1, t->work);
    if (train)
        batchnorm_forward_train(t->t1, t->m1, t->r1, t->c1, D(T_BN1W), D(T_BN1B), D(T_BN1RM),
                                D(T_BN1RV), &t->bn1);
    else
        batchnorm_forward_eval(t->t1, t->c1, D(T_BN1W), D(T_BN1B), D(T_BN1RM), D(T_BN1RV),
                               &t->bn1);
    maxpool1d_forward(t->p1, t->idx1, t->t1, B * C1, n.L1, 2);
    enc_relu_inplace(t->p1, B, (size_t)C1 * n.L2);

    /* conv3 -> BN -> pool -> ReLU */
    conv1d_forward(t->c3, t->p1, D(T_C3W), D(T_C3B), &t->cv3, t->work);
    if (train)
        batchnorm_forward_train(t->t3, t->m3, t->r3, t->c3, D(T_BN3W), D(T_BN3B), D(T_BN3RM),
                                D(T_BN3RV), &t->bn3);
    else
        batchnorm_forward_eval(t->t3, t->c3, D(T_BN3W), D(T_BN3B), D(T_BN3RM), D(T_BN3RV),
                               &t->bn3);
    maxpool1d_forward(t->p3, t->idx3, t->t3, B * C3, n.L3, 2);
    enc_relu_inplace(t->p3, B, (size_t)C3 * n.L4);

    /* adaptive pool -> embedding Linear -> LN: X (B*C3, T) */
    adaptive_avgpool1d_forward(t->ap, t->p3, B * C3, n.L4, s->d.NB);
    linear_forward(t->emb, t->ap, D(T_EMW), D(T_EMB), B * C3, s->d.NB, T);
    layernorm_forward(t->X, t->lm1, t->lr1, t->emb, D(T_LN1W), D(T_LN1B), B * C3, T, LN_EPS);

    /* spatial attention over the T tokens (token-major) */
    enc_transpose_bcl(t->Xt, t->X, B, C3, T);
    mha_forward(t->At, t->cache, t->Xt, D(T_INW), D(T_INB), D(T_OUTW), D(T_OUTB), &t->mha,
                t->work);
    /* A_S back to channel-major into dY (free until backward) */
    enc_transpose_bcl(t->dY, t->At, B, T, C3);

    /* CAM + fusion */
    const float gamma = D(T_GAM)[0];
#pragma omp parallel
    {
        double *acc = t->camacc + (size_t)T * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            size_t o = (size_t)b * C3 * T;
            enc_cam_fuse_sample(t->Z + o, t->Att + (size_t)b * C3 * C3, t->AX + o, t->X + o,
                                t->dY + o, gamma, C3, T, acc);
        }
    }
    layernorm_forward(t->Y, t->lm2, t->lr2, t->Z, D(T_LN2W), D(T_LN2B), B * C3, T, LN_EPS);

    /* feed-forward block: Y3 = LN(Y + W2 relu(W1 Y + b1) + b2) per (sample, channel) row */
    linear_forward(t->f1, t->Y, D(T_F1W), D(T_F1B), B * C3, T, s->F);
    enc_relu_inplace(t->f1, B, (size_t)C3 * s->F);
    linear_forward(t->S3, t->f1, D(T_F2W), D(T_F2B), B * C3, s->F, T);
    add2(t->S3, t->S3, t->Y, B, (size_t)C3 * T);
    layernorm_forward(t->Y3, t->lm3, t->lr3, t->S3, D(T_LN3W), D(T_LN3B), B * C3, T, LN_EPS);

    /* dec_conv3 (1x1, C3 -> 1) -> BN(1) -> ReLU */
    conv1d_forward(t->dc, t->Y3, D(T_DCW), D(T_DCB), &t->cvd, t->work);
    if (train)
        batchnorm_forward_train(t->h, t->m4, t->r4, t->dc, D(T_BN4W), D(T_BN4B), D(T_BN4RM),
                                D(T_BN4RV), &t->bn4);
    else
        batchnorm_forward_eval(t->h, t->dc, D(T_BN4W), D(T_BN4B), D(T_BN4RM), D(T_BN4RV),
                               &t->bn4);
    enc_relu_inplace(t->h, B, (size_t)T);
    memcpy(feat, t->h, (size_t)B * T * sizeof(float));
#undef D
}

static void convsct_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Convsct *s = e->impl;
    ConvsctAct *t = a->impl;
    const SpParams *p = &e->params;
    set_batch(t, B);
    const ConvscLens n = t->n;
    const int C1 = s->d.C1, C3 = s->d.C3, T = s->d.T;
    const int *ix = s->idx;
    const int train = a->mode == SP_ENC_TRAIN;
#define D(k) sp_params_data(p, ix[k])
#define G(k) sp_params_grad(p, ix[k])
    const size_t CT = (size_t)C3 * T;

    /* ReLU -> BN(1) -> dec_conv3 */
    memcpy(t->dh, dfeat, (size_t)B * T * sizeof(float));
    enc_relu_mask(t->dh, t->h, B, (size_t)T);
    enc_zero(t->ddc, B, (size_t)T);
    if (train)
        batchnorm_backward(t->ddc, G(T_BN4W), G(T_BN4B), t->dh, t->dc, t->m4, t->r4, D(T_BN4W),
                           &t->bn4, t->work);
    else
        batchnorm_backward_eval(t->ddc, G(T_BN4W), G(T_BN4B), t->dh, t->dc, D(T_BN4W),
                                D(T_BN4RM), D(T_BN4RV), &t->bn4, t->work);
    enc_zero(t->dY3, B, CT);
    conv1d_backward(t->dY3, G(T_DCW), G(T_DCB), t->ddc, t->Y3, D(T_DCW), &t->cvd, t->work);

    /* feed-forward block */
    enc_zero(t->dS3, B, CT);
    layernorm_backward(t->dS3, G(T_LN3W), G(T_LN3B), t->dY3, t->S3, t->lm3, t->lr3, D(T_LN3W),
                       B * C3, T, t->work);
    memcpy(t->dY, t->dS3, (size_t)B * CT * sizeof(float));   /* residual */
    enc_zero(t->df1, B, (size_t)C3 * s->F);
    linear_backward(t->df1, G(T_F2W), G(T_F2B), t->dS3, t->f1, D(T_F2W), B * C3, s->F, T,
                    t->work);
    enc_relu_mask(t->df1, t->f1, B, (size_t)C3 * s->F);
    linear_backward(t->dY, G(T_F1W), G(T_F1B), t->df1, t->Y, D(T_F1W), B * C3, T, s->F, t->work);

    /* LN2 */
    enc_zero(t->dZ, B, CT);
    layernorm_backward(t->dZ, G(T_LN2W), G(T_LN2B), t->dY, t->Z, t->lm2, t->lr2, D(T_LN2W),
                       B * C3, T, t->work);

    /* CAM + fusion: dX from the X terms and the channel attention */
    enc_zero(t->dX, B, CT);
    const float gamma = D(T_GAM)[0];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * CT;
        t->dgam[b] = enc_cam_backward_sample(t->dX + o, t->dZ + o, t->X + o,
                                         t->Att + (size_t)b * C3 * C3, t->AX + o, gamma, C3, T);
    }
    double dg = 0.0;
    for (int b = 0; b < B; b++) dg += t->dgam[b];
    G(T_GAM)[0] += (float)dg;

    /* MHA: dA_S = dZ (token-major) */
    enc_transpose_bcl(t->dAt, t->dZ, B, C3, T);
    enc_zero(t->dXt, B, CT);
    mha_backward(t->dXt, G(T_INW), G(T_INB), G(T_OUTW), G(T_OUTB), t->dAt, t->Xt, t->cache,
                 D(T_INW), D(T_OUTW), &t->mha, t->work);
    enc_transpose_bcl_add(t->dX, t->dXt, B, T, C3);

    /* LN1 -> embedding Linear -> adaptive pool */
    enc_zero(t->demb, B, CT);
    layernorm_backward(t->demb, G(T_LN1W), G(T_LN1B), t->dX, t->emb, t->lm1, t->lr1, D(T_LN1W),
                       B * C3, T, t->work);
    enc_zero(t->dap, B, (size_t)C3 * s->d.NB);
    linear_backward(t->dap, G(T_EMW), G(T_EMB), t->demb, t->ap, D(T_EMW), B * C3, s->d.NB, T,
                    t->work);
    enc_zero(t->dp3, B, (size_t)C3 * n.L4);
    adaptive_avgpool1d_backward(t->dp3, t->dap, B * C3, n.L4, s->d.NB);

    /* ReLU -> pool -> BN -> conv3 */
    enc_relu_mask(t->dp3, t->p3, B, (size_t)C3 * n.L4);
    enc_zero(t->t3, B, (size_t)C3 * n.L3);
    maxpool1d_backward(t->t3, t->dp3, t->idx3, B * C3, n.L3, 2);
    enc_zero(t->dc3, B, (size_t)C3 * n.L3);
    if (train)
        batchnorm_backward(t->dc3, G(T_BN3W), G(T_BN3B), t->t3, t->c3, t->m3, t->r3, D(T_BN3W),
                           &t->bn3, t->work);
    else
        batchnorm_backward_eval(t->dc3, G(T_BN3W), G(T_BN3B), t->t3, t->c3, D(T_BN3W),
                                D(T_BN3RM), D(T_BN3RV), &t->bn3, t->work);
    enc_zero(t->dp1, B, (size_t)C1 * n.L2);
    conv1d_backward(t->dp1, G(T_C3W), G(T_C3B), t->dc3, t->p1, D(T_C3W), &t->cv3, t->work);

    /* ReLU -> pool -> BN -> conv1 (no input gradient) */
    enc_relu_mask(t->dp1, t->p1, B, (size_t)C1 * n.L2);
    enc_zero(t->t1, B, (size_t)C1 * n.L1);
    maxpool1d_backward(t->t1, t->dp1, t->idx1, B * C1, n.L1, 2);
    enc_zero(t->dc1, B, (size_t)C1 * n.L1);
    if (train)
        batchnorm_backward(t->dc1, G(T_BN1W), G(T_BN1B), t->t1, t->c1, t->m1, t->r1, D(T_BN1W),
                           &t->bn1, t->work);
    else
        batchnorm_backward_eval(t->dc1, G(T_BN1W), G(T_BN1B), t->t1, t->c1, D(T_BN1W),
                                D(T_BN1RM), D(T_BN1RV), &t->bn1, t->work);
    conv1d_backward(NULL, G(T_C1W), G(T_C1B), t->dc1, t->xin, D(T_C1W), &t->cv1, t->work);
#undef D
#undef G
}

static double convsct_flops(const SpEncoder *e, int L) {
    const Convsct *s = e->impl;
    ConvscLens n = enc_convsc_lens(L);
    double C1 = s->d.C1, C3 = s->d.C3, T = s->d.T;
    double macs = C1 * 5.0 * n.L1                 /* conv1 */
                  + C3 * C1 * 5.0 * n.L3          /* conv3 */
                  + C3 * s->d.NB * T                /* embedding */
                  + 4.0 * C3 * C3 * T             /* MHA in_proj (3) + out_proj (1) */
                  + 2.0 * T * T * C3              /* scores + weighted values */
                  + 2.0 * C3 * C3 * T             /* CAM: E and Att X */
                  + 2.0 * C3 * T * s->F           /* feed-forward block */
                  + C3 * T;                       /* dec_conv3 */
    return 2.0 * macs;
}

const SpEncArch sp_enc_arch_convsct = {
    .name = "convsct",
    .create = convsct_create,
    .init = convsct_init,
    .length_ok = convsct_length_ok,
    .act_create = convsct_act_create,
    .act_free = convsct_act_free,
    .forward = convsct_forward,
    .backward = convsct_backward,
    .flops = convsct_flops,
    .free_impl = enc_free_impl,
};
