/* enc_transformer.c - transformer encoder baseline over patches of the spectrum.
 *
 *   x (B, L) -> [standardise each spectrum over its points; encoder.transformer.input_layernorm]
 *            -> zero-pad to T P points, T = ceil(L / P) patches of P points  (B, T, P)
 *            -> patch embedding Linear(P -> d) + sinusoidal positions        X0 (B, T, d)
 *            -> N encoder layers, post-LN as PyTorch's default
 *               nn.TransformerEncoderLayer (ReLU, dropout 0):
 *                 X = LN1(X + MHA(X));  X = LN2(X + Linear2(ReLU(Linear1(X))))
 *            -> mean over the T tokens                                       h (B, d)
 * Defaults P 16, d 64, 4 heads, 2 layers, ff 128 (encoder.transformer.*).
 * Positions: pe[t, 2i] = sin(t w_i), pe[t, 2i+1] = cos(t w_i),
 * w_i = 10000^(-2i/d) (the PyTorch tutorial's PositionalEncoding, added
 * unscaled).
 *
 * Why not the reference's network: the seed study's transformer (reference
 * §14: LN(4023) -> Linear(4023, 256) -> LN -> ReLU -> positions -> 2 layers
 * (d 256, 8 heads, ff 256) -> Linear(256, 1)) attends over 51 noisy copies
 * of a spectrum, a sequence that does not exist when one spectrum is
 * classified. Here the tokens are patches of the spectrum (ViT-style); the
 * encoder layers are the reference's (post-LN, ReLU, no dropout). The input
 * standardisation has no affine parameters, so any length L >= P works.
 *
 * Tensors (PyTorch names of nn.TransformerEncoder's layers):
 * "patch_embed.weight" (d, P), "patch_embed.bias" (d), and per layer i
 * "layers.<i>.self_attn.in_proj_weight" (3d, d), ".in_proj_bias" (3d),
 * "layers.<i>.self_attn.out_proj.weight" (d, d), ".out_proj.bias" (d),
 * "layers.<i>.linear1.weight" (ff, d), ".linear1.bias" (ff),
 * "layers.<i>.linear2.weight" (d, ff), ".linear2.bias" (d),
 * "layers.<i>.norm1.{weight,bias}", "layers.<i>.norm2.{weight,bias}" (d).
 * Init as PyTorch: Linear weight and bias U(+-1/sqrt(fan_in)); attention
 * in_proj Xavier-uniform U(+-sqrt(6/(4d))), in_proj and out_proj biases 0,
 * out_proj weight U(+-1/sqrt(d)); LayerNorm 1 / 0. Each layer draws its own
 * values (PyTorch's TransformerEncoder deep-copies one layer, so all its
 * layers start identical; that is not reproduced). No BatchNorm, no
 * dropout: train and eval modes compute the same thing.
 *
 * Dimension letters: B batch, L points, P patch, T tokens, d model width,
 * ff feed-forward width, N layers. Attention is core mha_* (token-major).
 * Allocation: create / act_create only. Every function opens its own OpenMP
 * regions; never call from inside one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_layers.h"

#define TF_MAX_LAYERS 16
#define LN_EPS 1e-5f
/* Elementwise loops below this many floats run serially: an OpenMP region
 * costs more than the work (tiny shapes, oversubscribed cores). */
#define PAR_MIN 32768

static const SpCfgKey g_keys[] = {
    {"encoder.transformer.patch", SP_CFG_INT, "16", 1, 65536, NULL,
     "transformer: points per patch P = one token (the last patch is zero-padded)"},
    {"encoder.transformer.d_model", SP_CFG_INT, "64", 1, 65536, NULL,
     "transformer: token width d = feature width"},
    {"encoder.transformer.heads", SP_CFG_INT, "4", 1, 1024, NULL,
     "transformer: attention heads (must divide d_model)"},
    {"encoder.transformer.layers", SP_CFG_INT, "2", 1, TF_MAX_LAYERS, NULL,
     "transformer: encoder layers (post-LN, as nn.TransformerEncoderLayer)"},
    {"encoder.transformer.ff", SP_CFG_INT, "128", 1, 1048576, NULL,
     "transformer: feed-forward width of each layer (Linear(d -> ff) -> ReLU -> Linear(ff -> d))"},
    {"encoder.transformer.input_layernorm", SP_CFG_BOOL, "true", 1, 0, NULL,
     "transformer: standardise each spectrum over its points first (no affine parameters)"},
};

void enc_transformer_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

enum { L_INW, L_INB, L_OUTW, L_OUTB, L_W1, L_B1, L_W2, L_B2, L_N1W, L_N1B, L_N2W, L_N2B, L_COUNT };

typedef struct {
    int P, d, H, n, ff, ln_in;
    int i_pw, i_pb;
    int idx[TF_MAX_LAYERS][L_COUNT];
} Tf;

static SpStatus tf_create(SpEncoder *e, const SpConfig *cfg) {
    Tf s;
    memset(&s, 0, sizeof s);
    s.P = (int)sp_cfg_int(cfg, "encoder.transformer.patch");
    s.d = (int)sp_cfg_int(cfg, "encoder.transformer.d_model");
    s.H = (int)sp_cfg_int(cfg, "encoder.transformer.heads");
    s.n = (int)sp_cfg_int(cfg, "encoder.transformer.layers");
    s.ff = (int)sp_cfg_int(cfg, "encoder.transformer.ff");
    s.ln_in = sp_cfg_bool(cfg, "encoder.transformer.input_layernorm");
    if (s.d % s.H != 0)
        SP_FAIL(SP_ECONFIG,
                "encoder.transformer.heads = %d does not divide encoder.transformer.d_model = %d",
                s.H, s.d);
    SpParams *p = &e->params;
    const SpTensorKind PK = SP_TENSOR_PARAM;
    if ((s.i_pw = sp_params_add_dims(p, "patch_embed.weight", PK, 2, s.d, s.P)) < 0 ||
        (s.i_pb = sp_params_add_dims(p, "patch_embed.bias", PK, 1, s.d)) < 0)
        return sp_error_status();
    static const char *const suffix[L_COUNT] = {
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
        "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
        "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"};
    for (int i = 0; i < s.n; i++) {
        for (int k = 0; k < L_COUNT; k++) {
            char nm[SP_PARAM_NAME_MAX];
            snprintf(nm, sizeof nm, "layers.%d.%s", i, suffix[k]);
            int r;
            switch (k) {
            case L_INW: r = sp_params_add_dims(p, nm, PK, 2, 3 * s.d, s.d); break;
            case L_INB: r = sp_params_add_dims(p, nm, PK, 1, 3 * s.d); break;
            case L_OUTW: r = sp_params_add_dims(p, nm, PK, 2, s.d, s.d); break;
            case L_W1: r = sp_params_add_dims(p, nm, PK, 2, s.ff, s.d); break;
            case L_B1: r = sp_params_add_dims(p, nm, PK, 1, s.ff); break;
            case L_W2: r = sp_params_add_dims(p, nm, PK, 2, s.d, s.ff); break;
            default: r = sp_params_add_dims(p, nm, PK, 1, s.d); break;
            }
            if (r < 0) return sp_error_status();
            s.idx[i][k] = r;
        }
    }
    Tf *impl = sp_malloc(sizeof *impl, "transformer spec");
    if (!impl) return SP_ENOMEM;
    *impl = s;
    e->impl = impl;
    e->feature_dim = s.d;
    e->batch_multiple = 1;
    return SP_OK;
}

static void tf_init(SpEncoder *e, SpRng *rng) {
    const Tf *s = e->impl;
    SpParams *p = &e->params;
    const size_t d = (size_t)s->d, ff = (size_t)s->ff;
#define D(i) sp_params_data(p, i)
    if (!rng) return; /* the caller loads values */
    for (int i = 0; i < s->n; i++) {
        enc_fill_const(D(s->idx[i][L_N1W]), d, 1.0f);
        enc_fill_const(D(s->idx[i][L_N2W]), d, 1.0f);
    }
    const double bp = 1.0 / sqrt((double)s->P);
    enc_fill_uniform(D(s->i_pw), d * s->P, bp, rng);
    enc_fill_uniform(D(s->i_pb), d, bp, rng);
    for (int i = 0; i < s->n; i++) {
        const int *ix = s->idx[i];
        const double bd = 1.0 / sqrt((double)d), bf = 1.0 / sqrt((double)ff);
        enc_fill_uniform(D(ix[L_INW]), 3 * d * d, sqrt(6.0 / (4.0 * (double)d)), rng);
        enc_fill_uniform(D(ix[L_OUTW]), d * d, bd, rng);
        enc_fill_uniform(D(ix[L_W1]), ff * d, bd, rng);
        enc_fill_uniform(D(ix[L_B1]), ff, bd, rng);
        enc_fill_uniform(D(ix[L_W2]), d * ff, bf, rng);
        enc_fill_uniform(D(ix[L_B2]), d, bf, rng);
    }
#undef D
}

static int tf_length_ok(const SpEncoder *e, int L) {
    const Tf *s = e->impl;
    return L >= s->P && L >= 2;
}

static double tf_flops(const SpEncoder *e, int L) {
    const Tf *s = e->impl;
    const double T = (double)((L + s->P - 1) / s->P), d = s->d;
    double f = T * s->P * d;                                  /* patch embedding */
    for (int i = 0; i < s->n; i++)
        f += 4.0 * T * d * d                                  /* in_proj (3) + out_proj */
             + 2.0 * T * T * d                                /* scores + weighted values */
             + 2.0 * T * d * s->ff;                           /* feed-forward */
    return 2.0 * f;
}

/* ------------------------------------------------------------ activations */
typedef struct {
    char *arena;
    int L, T;
    SpMHA mha;
    float *pe;                         /* (T, d) positions */
    float *xp;                         /* (B, T, P) standardised, padded patches */
    float *X[TF_MAX_LAYERS + 1];       /* (B, T, d) layer inputs; X[n] the output */
    float *cache[TF_MAX_LAYERS];       /* MHA caches */
    float *s1[TF_MAX_LAYERS], *y1[TF_MAX_LAYERS], *s2[TF_MAX_LAYERS];   /* (B, T, d) */
    float *r[TF_MAX_LAYERS];           /* (B, T, ff) ReLU outputs */
    float *m1[TF_MAX_LAYERS], *q1[TF_MAX_LAYERS], *m2[TF_MAX_LAYERS], *q2[TF_MAX_LAYERS];
    float *att;                        /* (B, T, d) scratch */
    float *g, *gn, *ds, *dy;           /* (B, T, d) backward */
    float *dr;                         /* (B, T, ff) */
    float *work;
} TfAct;

/* grad = 0 (inference-only context): the layers share one set of buffers
 * (inputs ping-pong), no backward buffers. */
static void tf_layout(TfAct *t, EncArena *ar, const Tf *s, int B, int L, int grad) {
    const int T = (L + s->P - 1) / s->P;
    const size_t BT = (size_t)B * T, d = (size_t)s->d;
    t->L = L;
    t->T = T;
    t->mha = (SpMHA){B, T, s->d, s->H};
    t->pe = enc_take(ar, (size_t)T * d);
    t->xp = enc_take(ar, BT * s->P);
    for (int i = 0; i <= s->n; i++) t->X[i] = grad || i < 2 ? enc_take(ar, BT * d) : t->X[i - 2];
    size_t w = linear_work_floats((int)BT, s->P, s->d), v;
    if ((v = mha_work_floats(&t->mha)) > w) w = v;
    if ((v = linear_work_floats((int)BT, s->d, s->ff)) > w) w = v;
    if ((v = linear_work_floats((int)BT, s->ff, s->d)) > w) w = v;
    if ((v = layernorm_work_floats((int)BT, s->d)) > w) w = v;
    for (int i = 0; i < s->n; i++) {
        if (!grad && i > 0) {
            t->cache[i] = t->cache[0];
            t->s1[i] = t->s1[0];
            t->y1[i] = t->y1[0];
            t->s2[i] = t->s2[0];
            t->r[i] = t->r[0];
            t->m1[i] = t->m1[0];
            t->q1[i] = t->q1[0];
            t->m2[i] = t->m2[0];
            t->q2[i] = t->q2[0];
            continue;
        }
        t->cache[i] = enc_take(ar, mha_cache_floats(&t->mha));
        t->s1[i] = enc_take(ar, BT * d);
        t->y1[i] = enc_take(ar, BT * d);
        t->s2[i] = enc_take(ar, BT * d);
        t->r[i] = enc_take(ar, BT * s->ff);
        t->m1[i] = enc_take(ar, BT);
        t->q1[i] = enc_take(ar, BT);
        t->m2[i] = enc_take(ar, BT);
        t->q2[i] = enc_take(ar, BT);
    }
    t->att = enc_take(ar, BT * d);
    t->g = t->gn = t->ds = t->dy = t->dr = NULL;
    if (!grad) {   /* the forward's work: the attention only */
        t->work = enc_take(ar, mha_work_floats(&t->mha));
        return;
    }
    t->g = enc_take(ar, BT * d);
    t->gn = enc_take(ar, BT * d);
    t->ds = enc_take(ar, BT * d);
    t->dy = enc_take(ar, BT * d);
    t->dr = enc_take(ar, BT * s->ff);
    t->work = enc_take(ar, w);
}

static SpStatus tf_act_create(SpEncAct *a, const SpEncoder *e) {
    const Tf *s = e->impl;
    TfAct *t = sp_calloc(1, sizeof *t, "transformer activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    tf_layout(t, &ar, s, a->maxB, a->L, !a->infer);
    a->bytes = ar.used;
    if (enc_arena_alloc(&ar, "transformer activations") != SP_OK) {
        free(t);
        return SP_ENOMEM;
    }
    t->arena = ar.base;
    tf_layout(t, &ar, s, a->maxB, a->L, !a->infer);
    for (int tt = 0; tt < t->T; tt++)
        for (int j = 0; j < s->d; j++) {
            const int i2 = j & ~1;
            const double w = exp(-log(10000.0) * (double)i2 / (double)s->d);
            t->pe[(size_t)tt * s->d + j] = (float)((j & 1) ? cos(tt * w) : sin(tt * w));
        }
    a->impl = t;
    return SP_OK;
}

static void tf_act_free(SpEncAct *a) {
    TfAct *t = a->impl;
    if (t) free(t->arena);
    free(t);
    a->impl = NULL;
}

static void tf_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode, float *feat) {
    (void)mode; /* no BatchNorm, no dropout */
    const Tf *s = e->impl;
    TfAct *t = a->impl;
    const SpParams *p = &e->params;
    const int T = t->T, d = s->d, BT = B * T;
    const size_t Td = (size_t)T * d;
    t->mha.B = B;
#define D(i) sp_params_data(p, i)
    enc_patchify(t->xp, x, B, t->L, T * s->P, s->ln_in, LN_EPS);
    linear_forward(t->X[0], t->xp, D(s->i_pw), D(s->i_pb), BT, s->P, d);
#pragma omp parallel for schedule(static) if ((size_t)B * Td >= PAR_MIN)
    for (int b = 0; b < B; b++) {
        float *xb = t->X[0] + (size_t)b * Td;
        for (size_t j = 0; j < Td; j++) xb[j] += t->pe[j];
    }
    for (int i = 0; i < s->n; i++) {
        const int *ix = s->idx[i];
        mha_forward(t->att, t->cache[i], t->X[i], D(ix[L_INW]), D(ix[L_INB]), D(ix[L_OUTW]),
                    D(ix[L_OUTB]), &t->mha, t->work);
        enc_add(t->s1[i], t->X[i], t->att, B, Td);
        layernorm_forward(t->y1[i], t->m1[i], t->q1[i], t->s1[i], D(ix[L_N1W]), D(ix[L_N1B]), BT,
                          d, LN_EPS);
        linear_forward(t->r[i], t->y1[i], D(ix[L_W1]), D(ix[L_B1]), BT, d, s->ff);
        enc_relu_inplace(t->r[i], B, (size_t)T * s->ff);
        linear_forward(t->att, t->r[i], D(ix[L_W2]), D(ix[L_B2]), BT, s->ff, d);
        enc_add(t->s2[i], t->y1[i], t->att, B, Td);
        layernorm_forward(t->X[i + 1], t->m2[i], t->q2[i], t->s2[i], D(ix[L_N2W]), D(ix[L_N2B]),
                          BT, d, LN_EPS);
    }
    /* mean over the tokens */
    const float *xo = t->X[s->n];
#pragma omp parallel for schedule(static) if ((size_t)B * Td >= PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int j = 0; j < d; j++) {
            double acc = 0.0;
            for (int tt = 0; tt < T; tt++) acc += (double)xo[(size_t)b * Td + (size_t)tt * d + j];
            feat[(size_t)b * d + j] = (float)(acc / T);
        }
#undef D
}

static void tf_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Tf *s = e->impl;
    TfAct *t = a->impl;
    const SpParams *p = &e->params;
    const int T = t->T, d = s->d, BT = B * T;
    const size_t Td = (size_t)T * d;
    t->mha.B = B;
#define D(i) sp_params_data(p, i)
#define G(i) sp_params_grad(p, i)
    const float invT = 1.0f / (float)T;
#pragma omp parallel for schedule(static) if ((size_t)B * Td >= PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int tt = 0; tt < T; tt++)
            for (int j = 0; j < d; j++)
                t->g[(size_t)b * Td + (size_t)tt * d + j] = dfeat[(size_t)b * d + j] * invT;
    for (int i = s->n - 1; i >= 0; i--) {
        const int *ix = s->idx[i];
        /* g: gradient w.r.t. X[i+1] = LN2(s2) */
        enc_zero(t->ds, B, Td);
        layernorm_backward(t->ds, G(ix[L_N2W]), G(ix[L_N2B]), t->g, t->s2[i], t->m2[i], t->q2[i],
                           D(ix[L_N2W]), BT, d, t->work);
        /* s2 = y1 + Linear2(ReLU(Linear1(y1))) */
        memcpy(t->dy, t->ds, (size_t)B * Td * sizeof(float));
        enc_zero(t->dr, B, (size_t)T * s->ff);
        linear_backward(t->dr, G(ix[L_W2]), G(ix[L_B2]), t->ds, t->r[i], D(ix[L_W2]), BT, s->ff,
                        d, t->work);
        enc_relu_mask(t->dr, t->r[i], B, (size_t)T * s->ff);
        linear_backward(t->dy, G(ix[L_W1]), G(ix[L_B1]), t->dr, t->y1[i], D(ix[L_W1]), BT, d,
                        s->ff, t->work);
        /* y1 = LN1(s1), s1 = X + MHA(X) */
        enc_zero(t->ds, B, Td);
        layernorm_backward(t->ds, G(ix[L_N1W]), G(ix[L_N1B]), t->dy, t->s1[i], t->m1[i],
                           t->q1[i], D(ix[L_N1W]), BT, d, t->work);
        memcpy(t->gn, t->ds, (size_t)B * Td * sizeof(float));
        mha_backward(t->gn, G(ix[L_INW]), G(ix[L_INB]), G(ix[L_OUTW]), G(ix[L_OUTB]), t->ds,
                     t->X[i], t->cache[i], D(ix[L_INW]), D(ix[L_OUTW]), &t->mha, t->work);
        float *tmp = t->g;
        t->g = t->gn;
        t->gn = tmp;
    }
    /* g: gradient w.r.t. X[0] = patch embedding + positions */
    linear_backward(NULL, G(s->i_pw), G(s->i_pb), t->g, t->xp, D(s->i_pw), BT, s->P, d, t->work);
#undef D
#undef G
}

const SpEncArch sp_enc_arch_transformer = {
    .name = "transformer",
    .create = tf_create,
    .init = tf_init,
    .length_ok = tf_length_ok,
    .act_create = tf_act_create,
    .act_free = tf_act_free,
    .forward = tf_forward,
    .backward = tf_backward,
    .flops = tf_flops,
    .free_impl = enc_free_impl,
};
