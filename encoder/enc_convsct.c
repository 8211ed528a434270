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
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "enc_convsc_parts.h"
#include "sp_layers.h"

#define BN_EPS 1e-5f
#define BN_MOM 0.1f
#define LN_EPS 1e-5f

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
/* conv (k5, bias) -> split BN -> max pool 2 -> ReLU on the layer path:
 * conv1 (1 -> C1, stride 2) and conv3 (C1 -> C3). */
typedef struct {
    SpConv1d cv;
    SpBatchNorm bn;
    float *c;             /* (B, C, Lc) conv output */
    float *t;             /* (B, C, Lc) pre-pool BN output; its gradient in backward */
    float *p;             /* (B, C, Lc / 2) pooled, ReLU */
    int *idx;             /* pool picks */
    float *m, *r;         /* BN saved mean / rstd (S*C) */
    float *dc, *dp;       /* backward: gradients w.r.t. c and p */
} Stem;

typedef struct {
    ConvscLens n;
    char *arena;
    Stem s1, s3;                                 /* conv1 and conv3 stems */
    ConvscAttn att;                              /* s3.p -> Y (enc_convsc_parts.h) */
    ConvscDec dec;                               /* Y3 -> h */
    /* forward, kept for backward */
    float *xin;                                  /* (B, L) input: conv1's weight gradient */
    float *f1, *S3, *Y3;
    float *lm3, *lr3;                            /* LN saved mean / rstd */
    /* backward */
    float *df1, *dS3, *dY3;
    float *work;
} ConvsctAct;

static void stem_layout(Stem *t, EncArena *ar, SpConv1d cv, const ConvscDims *d, int grad) {
    const size_t Bc = (size_t)cv.B * cv.O * cv.Lo, Bp = (size_t)cv.B * cv.O * (cv.Lo / 2);
    t->cv = cv;
    t->bn = (SpBatchNorm){cv.B, cv.O, cv.Lo, d->S, BN_EPS, BN_MOM};
    t->c = enc_take(ar, Bc);
    t->t = enc_take(ar, Bc);
    t->p = enc_take(ar, Bp);
    t->idx = enc_take_int(ar, Bp);
    t->m = enc_take(ar, (size_t)d->S * cv.O);
    t->r = enc_take(ar, (size_t)d->S * cv.O);
    t->dc = grad ? enc_take(ar, Bc) : NULL;
    t->dp = grad ? enc_take(ar, Bp) : NULL;
}

static size_t stem_work_floats(const Stem *t) {
    size_t w = conv1d_work_floats(&t->cv), v = batchnorm_work_floats(&t->bn);
    return v > w ? v : w;
}

/* in (B, cv.C, cv.L) -> t->p; k: the stem's first tensor index (T_C1W or
 * T_C3W: conv weight, bias, BN weight, bias, running mean, var follow). */
_Static_assert(T_BN1RV == T_C1W + 5 && T_BN3RV == T_C3W + 5, "stem tensors are consecutive");
static void stem_forward(Stem *t, const SpParams *p, const int *ix, int k, const float *in, int B,
                         int train, float *work) {
    const int C = t->cv.O, Lc = t->cv.Lo;
#define D(i) sp_params_data(p, ix[k + (i)])
    t->cv.B = B;
    t->bn.N = B;
    conv1d_forward(t->c, in, D(0), D(1), &t->cv, work);
    if (train)
        batchnorm_forward_train(t->t, t->m, t->r, t->c, D(2), D(3), D(4), D(5), &t->bn);
    else
        batchnorm_forward_eval(t->t, t->c, D(2), D(3), D(4), D(5), &t->bn);
    maxpool1d_forward(t->p, t->idx, t->t, B * C, Lc, 2);
    enc_relu_inplace(t->p, B, (size_t)C * (Lc / 2));
#undef D
}

/* t->dp (gradient w.r.t. p, overwritten by its ReLU mask) -> din (B, cv.C,
 * cv.L; overwritten, NULL: not needed); adds into the parameter gradients. */
static void stem_backward(Stem *t, const SpParams *p, const int *ix, int k, float *din,
                          const float *in, int B, int train, float *work) {
    const int C = t->cv.O, Lc = t->cv.Lo;
#define D(i) sp_params_data(p, ix[k + (i)])
#define G(i) sp_params_grad(p, ix[k + (i)])
    t->cv.B = B;
    t->bn.N = B;
    enc_relu_mask(t->dp, t->p, B, (size_t)C * (Lc / 2));
    enc_zero(t->t, B, (size_t)C * Lc);
    maxpool1d_backward(t->t, t->dp, t->idx, B * C, Lc, 2);
    enc_zero(t->dc, B, (size_t)C * Lc);
    if (train)
        batchnorm_backward(t->dc, G(2), G(3), t->t, t->c, t->m, t->r, D(2), &t->bn, work);
    else
        batchnorm_backward_eval(t->dc, G(2), G(3), t->t, t->c, D(2), D(4), D(5), &t->bn, work);
    if (din) enc_zero(din, B, (size_t)t->cv.C * t->cv.L);
    conv1d_backward(din, G(0), G(1), t->dc, in, D(0), &t->cv, work);
#undef D
#undef G
}

/* grad = 0 (inference-only context): no backward buffers. */
static void convsct_layout(ConvsctAct *t, EncArena *ar, const Convsct *s, int B, int L,
                           int grad, int nthreads) {
    ConvscLens n = enc_convsc_lens(L);
    const ConvscDims *d = &s->d;
    size_t BCT = (size_t)B * d->C3 * d->T, BCF = (size_t)B * d->C3 * s->F;
    t->n = n;
    t->xin = enc_take(ar, (size_t)B * L);
    stem_layout(&t->s1, ar, conv1d_shape(B, 1, L, d->C1, 5, 2, 0), d, grad);
    stem_layout(&t->s3, ar, conv1d_shape(B, d->C1, n.L2, d->C3, 5, 1, 0), d, grad);
    enc_convsc_attn_layout(&t->att, ar, d, B, grad, nthreads);
    enc_convsc_dec_layout(&t->dec, ar, d, B, grad);
    t->f1 = enc_take(ar, BCF);
    t->S3 = enc_take(ar, BCT);
    t->Y3 = enc_take(ar, BCT);
    t->lm3 = enc_take(ar, (size_t)B * d->C3);
    t->lr3 = enc_take(ar, (size_t)B * d->C3);
    t->df1 = grad ? enc_take(ar, BCF) : NULL;
    t->dS3 = grad ? enc_take(ar, BCT) : NULL;
    t->dY3 = grad ? enc_take(ar, BCT) : NULL;

    size_t w = stem_work_floats(&t->s1);
    size_t v;
#define MAXW(x) v = (x); if (v > w) w = v
    MAXW(stem_work_floats(&t->s3));
    MAXW(linear_work_floats(B * d->C3, d->T, s->F));
    MAXW(linear_work_floats(B * d->C3, s->F, d->T));
    MAXW(layernorm_work_floats(B * d->C3, d->T));
    MAXW(enc_convsc_attn_work_floats(&t->att, d, B));
    MAXW(enc_convsc_dec_work_floats(&t->dec));
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

static void convsct_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                            float *feat) {
    const int train = mode == SP_ENC_TRAIN;
    const Convsct *s = e->impl;
    ConvsctAct *t = a->impl;
    const SpParams *p = &e->params;
    const ConvscLens n = t->n;
    const int C3 = s->d.C3, T = s->d.T;
    const int *ix = s->idx;
#define D(k) sp_params_data(p, ix[k])

    /* conv1 -> BN -> pool -> ReLU (x is kept: conv1's weight gradient needs it) */
    memcpy(t->xin, x, (size_t)B * a->L * sizeof(float));
    stem_forward(&t->s1, p, ix, T_C1W, t->xin, B, train, t->work);
    /* conv3 -> BN -> pool -> ReLU */
    stem_forward(&t->s3, p, ix, T_C3W, t->s1.p, B, train, t->work);

    /* adaptive pool -> embedding -> MHA + CAM -> fusion -> LN: Y (B*C3, T) */
    enc_convsc_attn_forward(&t->att, p, ix, &s->d, t->s3.p, B, n.L4, t->work);
    const float *Y = t->att.Y;

    /* feed-forward block: Y3 = LN(Y + W2 relu(W1 Y + b1) + b2) per (sample, channel) row */
    linear_forward(t->f1, Y, D(T_F1W), D(T_F1B), B * C3, T, s->F);
    enc_relu_inplace(t->f1, B, (size_t)C3 * s->F);
    linear_forward(t->S3, t->f1, D(T_F2W), D(T_F2B), B * C3, s->F, T);
    enc_add(t->S3, t->S3, Y, B, (size_t)C3 * T);
    layernorm_forward(t->Y3, t->lm3, t->lr3, t->S3, D(T_LN3W), D(T_LN3B), B * C3, T, LN_EPS);

    /* dec_conv3 (1x1, C3 -> 1) -> BN(1) -> ReLU */
    enc_convsc_dec_forward(&t->dec, p, ix, t->Y3, B, train, feat, t->work);
#undef D
}

static void convsct_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Convsct *s = e->impl;
    ConvsctAct *t = a->impl;
    const SpParams *p = &e->params;
    const ConvscLens n = t->n;
    const int C3 = s->d.C3, T = s->d.T;
    const int *ix = s->idx;
    const int train = a->mode == SP_ENC_TRAIN;
#define D(k) sp_params_data(p, ix[k])
#define G(k) sp_params_grad(p, ix[k])
    const size_t CT = (size_t)C3 * T;

    /* ReLU -> BN(1) -> dec_conv3 */
    enc_convsc_dec_backward(&t->dec, p, ix, dfeat, t->Y3, t->dY3, B, train, t->work);

    /* feed-forward block */
    enc_zero(t->dS3, B, CT);
    layernorm_backward(t->dS3, G(T_LN3W), G(T_LN3B), t->dY3, t->S3, t->lm3, t->lr3, D(T_LN3W),
                       B * C3, T, t->work);
    float *dY = t->att.dY;
    memcpy(dY, t->dS3, (size_t)B * CT * sizeof(float));   /* residual */
    enc_zero(t->df1, B, (size_t)C3 * s->F);
    linear_backward(t->df1, G(T_F2W), G(T_F2B), t->dS3, t->f1, D(T_F2W), B * C3, s->F, T,
                    t->work);
    enc_relu_mask(t->df1, t->f1, B, (size_t)C3 * s->F);
    linear_backward(dY, G(T_F1W), G(T_F1B), t->df1, t->att.Y, D(T_F1W), B * C3, T, s->F, t->work);

    /* LN2 -> CAM / MHA -> LN1 -> embedding -> adaptive pool */
    enc_convsc_attn_backward(&t->att, p, ix, &s->d, t->s3.dp, B, n.L4, t->work);

    /* ReLU -> pool -> BN -> conv3 -> ReLU -> pool -> BN -> conv1 (no input gradient) */
    stem_backward(&t->s3, p, ix, T_C3W, t->s1.dp, t->s1.p, B, train, t->work);
    stem_backward(&t->s1, p, ix, T_C1W, NULL, t->xin, B, train, t->work);
#undef D
#undef G
}

static double convsct_flops(const SpEncoder *e, int L) {
    const Convsct *s = e->impl;
    const double ffn = 2.0 * s->d.C3 * s->d.T * s->F;   /* the feed-forward block */
    return 2.0 * (enc_convsc_macs(&s->d, L) + ffn);
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
