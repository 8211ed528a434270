/* enc_fcnn.c - fully connected baseline "FCNN 1D" of the seed studies
 * (reference §14), up to its last hidden representation:
 *
 *   x (B, L) -> [LayerNorm(L), affine; encoder.fcnn.input_layernorm]
 *            -> n times: Linear(in_i -> h_i) -> LayerNorm(h_i) -> ReLU
 *   h (B, h_last) is the feature; the supervised trainer's linear head
 *   replaces the reference's final Linear(64, 1) + sigmoid.
 * Defaults h = [256, 512, 64] (reference FCNN 1D). At L = 4023 the reference
 * counts 1,204,335 parameters: 1,204,270 here plus its Linear(64, 1) head.
 *
 * The first Linear (and the affine input LayerNorm) have one weight per
 * spectrum point, so the input length is fixed when the encoder is built: it
 * comes from encoder.input_length (registered in encoder.c; 0 = unknown is
 * refused with a message naming the key); contexts of any other length are
 * refused.
 *
 * Tensors (PyTorch-like names): "ln_in.weight" / "ln_in.bias" (L),
 * "fc<i>.weight" (h_i, in_i), "fc<i>.bias" (h_i), "ln<i>.weight" /
 * "ln<i>.bias" (h_i), i = 0 .. n-1. Init as PyTorch's defaults: Linear weight
 * and bias U(+-1/sqrt(in_i)), LayerNorm weight 1, bias 0.
 * No BatchNorm and no dropout: train and eval modes compute the same thing.
 *
 * Dimension letters: B batch, L points, n layers, h_i widths.
 * Allocation: create / act_create only. Every function opens its own OpenMP
 * regions (through sp_layers.h); never call from inside one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_layers.h"

#define FC_MAX_LAYERS 16
#define LN_EPS 1e-5f

static const SpCfgKey g_keys[] = {
    {"encoder.fcnn.hidden", SP_CFG_INT_LIST, "[256, 512, 64]", 1, 65536, NULL,
     "fcnn: widths of the Linear -> LayerNorm -> ReLU layers (the last one is the feature "
     "width; reference FCNN 1D [256, 512, 64])"},
    {"encoder.fcnn.input_layernorm", SP_CFG_BOOL, "true", 1, 0, NULL,
     "fcnn: LayerNorm over the points of each spectrum (affine, L weights) before the first "
     "Linear, as the reference"},
};

void enc_fcnn_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

typedef struct {
    int L, n, ln_in;
    int h[FC_MAX_LAYERS], in[FC_MAX_LAYERS];
    int i_lnw, i_lnb;
    int i_w[FC_MAX_LAYERS], i_b[FC_MAX_LAYERS], i_gw[FC_MAX_LAYERS], i_gb[FC_MAX_LAYERS];
} Fcnn;

static SpStatus fcnn_create(SpEncoder *e, const SpConfig *cfg) {
    Fcnn s;
    memset(&s, 0, sizeof s);
    s.L = (int)sp_cfg_int(cfg, "encoder.input_length");
    if (s.L < 1)
        SP_FAIL(SP_ECONFIG,
                "encoder.input_length = %d: architecture 'fcnn' has one weight per spectrum point "
                "in its first layer and must know the number of points L\nhint: set "
                "encoder.input_length to the spectrum length of the data (e.g. --set "
                "encoder.input_length=4020)", s.L);
    s.n = sp_cfg_list_len(cfg, "encoder.fcnn.hidden");
    if (s.n < 1 || s.n > FC_MAX_LAYERS)
        SP_FAIL(SP_ECONFIG, "encoder.fcnn.hidden: %d layers, expected 1..%d", s.n, FC_MAX_LAYERS);
    s.ln_in = sp_cfg_bool(cfg, "encoder.fcnn.input_layernorm");
    for (int i = 0; i < s.n; i++) {
        s.h[i] = (int)sp_cfg_int_at(cfg, "encoder.fcnn.hidden", i);
        s.in[i] = i ? s.h[i - 1] : s.L;
    }
    SpParams *p = &e->params;
    const SpTensorKind P = SP_TENSOR_PARAM;
    s.i_lnw = s.i_lnb = -1;
    if (s.ln_in) {
        if ((s.i_lnw = sp_params_add_dims(p, "ln_in.weight", P, 1, s.L)) < 0 ||
            (s.i_lnb = sp_params_add_dims(p, "ln_in.bias", P, 1, s.L)) < 0)
            return sp_error_status();
    }
    for (int i = 0; i < s.n; i++) {
        char nm[SP_PARAM_NAME_MAX];
        snprintf(nm, sizeof nm, "fc%d.weight", i);
        if ((s.i_w[i] = sp_params_add_dims(p, nm, P, 2, s.h[i], s.in[i])) < 0)
            return sp_error_status();
        snprintf(nm, sizeof nm, "fc%d.bias", i);
        if ((s.i_b[i] = sp_params_add_dims(p, nm, P, 1, s.h[i])) < 0) return sp_error_status();
        snprintf(nm, sizeof nm, "ln%d.weight", i);
        if ((s.i_gw[i] = sp_params_add_dims(p, nm, P, 1, s.h[i])) < 0) return sp_error_status();
        snprintf(nm, sizeof nm, "ln%d.bias", i);
        if ((s.i_gb[i] = sp_params_add_dims(p, nm, P, 1, s.h[i])) < 0) return sp_error_status();
    }
    Fcnn *impl = sp_malloc(sizeof *impl, "fcnn spec");
    if (!impl) return SP_ENOMEM;
    *impl = s;
    e->impl = impl;
    e->feature_dim = s.h[s.n - 1];
    e->batch_multiple = 1;
    return SP_OK;
}

static void fcnn_init(SpEncoder *e, SpRng *rng) {
    const Fcnn *s = e->impl;
    SpParams *p = &e->params;
    if (!rng) return; /* the caller loads values */
    if (s->ln_in) enc_fill_const(sp_params_data(p, s->i_lnw), (size_t)s->L, 1.0f);
    for (int i = 0; i < s->n; i++) enc_fill_const(sp_params_data(p, s->i_gw[i]), (size_t)s->h[i], 1.0f);
    for (int i = 0; i < s->n; i++) {
        double bound = 1.0 / sqrt((double)s->in[i]);
        enc_fill_uniform(sp_params_data(p, s->i_w[i]), (size_t)s->h[i] * s->in[i], bound, rng);
        enc_fill_uniform(sp_params_data(p, s->i_b[i]), (size_t)s->h[i], bound, rng);
    }
}

static int fcnn_length_ok(const SpEncoder *e, int L) {
    const Fcnn *s = e->impl;
    return L == s->L;
}

static double fcnn_flops(const SpEncoder *e, int L) {
    const Fcnn *s = e->impl;
    (void)L;
    double f = 0.0;
    for (int i = 0; i < s->n; i++) f += 2.0 * (double)s->in[i] * s->h[i];
    return f;
}

/* ------------------------------------------------------------ activations */
typedef struct {
    char *arena;
    float *xraw;                         /* (B, L) copy of the input (input LN only) */
    float *xin;                          /* (B, L) first Linear's input */
    float *lnm, *lnr;                    /* input LN statistics (B) */
    float *z[FC_MAX_LAYERS];             /* (B, h_i) Linear outputs */
    float *a[FC_MAX_LAYERS];             /* (B, h_i) LN -> ReLU outputs */
    float *m[FC_MAX_LAYERS], *r[FC_MAX_LAYERS];   /* LN statistics (B) */
    float *dA, *dZ;                      /* (B, max(h, L)) backward scratch */
    float *work;
} FcnnAct;

/* grad = 0 (inference-only context): no raw-input copy, no backward scratch. */
static void fcnn_layout(FcnnAct *t, EncArena *ar, const Fcnn *s, int B, int grad) {
    size_t wmax = 0, dmax = (size_t)s->L, v;
    t->xraw = s->ln_in && grad ? enc_take(ar, (size_t)B * s->L) : NULL;
    t->xin = enc_take(ar, (size_t)B * s->L);
    t->lnm = enc_take(ar, (size_t)B);
    t->lnr = enc_take(ar, (size_t)B);
    if (s->ln_in) wmax = layernorm_work_floats(B, s->L);
    for (int i = 0; i < s->n; i++) {
        t->z[i] = enc_take(ar, (size_t)B * s->h[i]);
        t->a[i] = enc_take(ar, (size_t)B * s->h[i]);
        t->m[i] = enc_take(ar, (size_t)B);
        t->r[i] = enc_take(ar, (size_t)B);
        if ((size_t)s->h[i] > dmax) dmax = (size_t)s->h[i];
        v = linear_work_floats(B, s->in[i], s->h[i]);
        if (v > wmax) wmax = v;
        v = layernorm_work_floats(B, s->h[i]);
        if (v > wmax) wmax = v;
    }
    if (!grad) dmax = wmax = 0;   /* the forward needs no work buffer */
    t->dA = grad ? enc_take(ar, (size_t)B * dmax) : NULL;
    t->dZ = grad ? enc_take(ar, (size_t)B * dmax) : NULL;
    t->work = grad ? enc_take(ar, wmax) : NULL;
}

static SpStatus fcnn_act_create(SpEncAct *a, const SpEncoder *e) {
    const Fcnn *s = e->impl;
    FcnnAct *t = sp_calloc(1, sizeof *t, "fcnn activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    fcnn_layout(t, &ar, s, a->maxB, !a->infer);
    a->bytes = ar.used;
    if (enc_arena_alloc(&ar, "fcnn activations") != SP_OK) {
        free(t);
        return SP_ENOMEM;
    }
    t->arena = ar.base;
    fcnn_layout(t, &ar, s, a->maxB, !a->infer);
    a->impl = t;
    return SP_OK;
}

static void fcnn_act_free(SpEncAct *a) {
    FcnnAct *t = a->impl;
    if (t) free(t->arena);
    free(t);
    a->impl = NULL;
}

/* No BatchNorm, no dropout: every mode computes the same transform
 * (SP_ENC_EVAL only skips keeping the raw input for backward). */
static void fcnn_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode, float *feat) {
    const Fcnn *s = e->impl;
    FcnnAct *t = a->impl;
    const SpParams *p = &e->params;
    if (s->ln_in) {
        const float *xr = x;
        if (mode != SP_ENC_EVAL) { /* the LN weight gradient needs the raw input */
            memcpy(t->xraw, x, (size_t)B * s->L * sizeof(float));
            xr = t->xraw;
        }
        layernorm_forward(t->xin, t->lnm, t->lnr, xr, sp_params_data(p, s->i_lnw),
                          sp_params_data(p, s->i_lnb), B, s->L, LN_EPS);
    } else {
        memcpy(t->xin, x, (size_t)B * s->L * sizeof(float));
    }
    const float *in = t->xin;
    for (int i = 0; i < s->n; i++) {
        linear_forward(t->z[i], in, sp_params_data(p, s->i_w[i]), sp_params_data(p, s->i_b[i]), B,
                       s->in[i], s->h[i]);
        layernorm_forward(t->a[i], t->m[i], t->r[i], t->z[i], sp_params_data(p, s->i_gw[i]),
                          sp_params_data(p, s->i_gb[i]), B, s->h[i], LN_EPS);
        enc_relu_inplace(t->a[i], B, (size_t)s->h[i]);
        in = t->a[i];
    }
    memcpy(feat, t->a[s->n - 1], (size_t)B * s->h[s->n - 1] * sizeof(float));
}

static void fcnn_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Fcnn *s = e->impl;
    FcnnAct *t = a->impl;
    const SpParams *p = &e->params;
    /* dA: gradient w.r.t. a[i] (then w.r.t. the LN output after the mask) */
    memcpy(t->dA, dfeat, (size_t)B * s->h[s->n - 1] * sizeof(float));
    for (int i = s->n - 1; i >= 0; i--) {
        const int h = s->h[i];
        enc_relu_mask(t->dA, t->a[i], B, (size_t)h);
        enc_zero(t->dZ, B, (size_t)h);
        layernorm_backward(t->dZ, sp_params_grad(p, s->i_gw[i]), sp_params_grad(p, s->i_gb[i]),
                           t->dA, t->z[i], t->m[i], t->r[i], sp_params_data(p, s->i_gw[i]), B, h,
                           t->work);
        const int want_din = i > 0 || s->ln_in;
        if (want_din) enc_zero(t->dA, B, (size_t)s->in[i]);
        linear_backward(want_din ? t->dA : NULL, sp_params_grad(p, s->i_w[i]),
                        sp_params_grad(p, s->i_b[i]), t->dZ, i ? t->a[i - 1] : t->xin,
                        sp_params_data(p, s->i_w[i]), B, s->in[i], h, t->work);
    }
    if (s->ln_in) /* dA holds the gradient w.r.t. the LN output; no input gradient */
        layernorm_backward(NULL, sp_params_grad(p, s->i_lnw), sp_params_grad(p, s->i_lnb), t->dA,
                           t->xraw, t->lnm, t->lnr,
                           sp_params_data(p, s->i_lnw), B, s->L, t->work);
}

const SpEncArch sp_enc_arch_fcnn = {
    .name = "fcnn",
    .create = fcnn_create,
    .init = fcnn_init,
    .length_ok = fcnn_length_ok,
    .act_create = fcnn_act_create,
    .act_free = fcnn_act_free,
    .forward = fcnn_forward,
    .backward = fcnn_backward,
    .flops = fcnn_flops,
    .free_impl = enc_free_impl,
};
