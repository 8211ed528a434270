/* enc_lstm.c - LSTM sequence baseline over patches of the spectrum.
 *
 *   x (B, L) -> [standardise each spectrum over its points; encoder.lstm.input_layernorm]
 *            -> zero-pad to T P points, T = ceil(L / P) patches of P points (B, T, P)
 *            -> patch embedding Linear(P -> E) -> LayerNorm(E) -> ReLU      (B, T, E)
 *            -> LSTM (E -> H), n layers stacked                             (B, T, H)
 *            -> pool over time: mean of h_t (default) or the last h_{T-1}   (B, H)
 *            -> LayerNorm(H)                                                h (B, H)
 * Defaults P 16, E 64, H 128, 2 layers, mean pooling (encoder.lstm.*).
 *
 * Why not the reference's network: the seed study's LSTM (reference §14:
 * LN(4023) -> Linear(4023, 512) -> LN -> ReLU -> LSTM(512, 512, 2 layers) ->
 * LN -> Linear(512, 1)) runs its recurrence over 51 noisy copies of a
 * spectrum, a sequence that does not exist when one spectrum is classified.
 * Here the sequence is the spectrum itself, read patch by patch; the
 * embedding block keeps the reference's Linear -> LN -> ReLU shape and the
 * output keeps its final LN. Mean pooling (rather than the last state) gives
 * every patch a direct gradient path over T = 252 steps at L = 4020; "last"
 * is available. The input standardisation has no affine parameters, so any
 * length L >= P works (the reference's affine LN(4023) would fix L).
 *
 * Tensors (PyTorch-like names): "patch_embed.weight" (E, P),
 * "patch_embed.bias" (E), "embed_norm.weight" / "embed_norm.bias" (E),
 * "lstm.weight_ih_l<k>" (4H, E or H), "lstm.weight_hh_l<k>" (4H, H),
 * "lstm.bias_ih_l<k>", "lstm.bias_hh_l<k>" (4H), "norm.weight" / "norm.bias" (H).
 * Init as PyTorch's defaults: Linear U(+-1/sqrt(P)) weight and bias, every
 * LSTM tensor U(+-1/sqrt(H)), LayerNorm 1 / 0. No BatchNorm, no dropout:
 * train and eval modes compute the same thing.
 *
 * Dimension letters: B batch, L points, P patch, T patches, E embedding,
 * H hidden units, n layers. The LSTM layer is core/sp_rnn.h (input
 * projection of all steps in one sgemm per thread, BPTT backward).
 * Allocation: create / act_create only. Every function opens its own OpenMP
 * regions; never call from inside one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_layers.h"
#include "sp_rnn.h"

#define LSTM_MAX_LAYERS 8
#define LN_EPS 1e-5f
/* Elementwise loops below this many floats run serially: an OpenMP region
 * costs more than the work (tiny shapes, oversubscribed cores). */
#define PAR_MIN 32768

static const SpCfgKey g_keys[] = {
    {"encoder.lstm.patch", SP_CFG_INT, "16", 1, 65536, NULL,
     "lstm: points per patch P (one time step per patch; the last patch is zero-padded)"},
    {"encoder.lstm.embed_dim", SP_CFG_INT, "64", 1, 65536, NULL,
     "lstm: patch embedding width E (Linear(P -> E) -> LayerNorm -> ReLU)"},
    {"encoder.lstm.hidden", SP_CFG_INT, "128", 1, 65536, NULL,
     "lstm: hidden units H of every LSTM layer = feature width"},
    {"encoder.lstm.layers", SP_CFG_INT, "2", 1, LSTM_MAX_LAYERS, NULL,
     "lstm: stacked LSTM layers (reference 2)"},
    {"encoder.lstm.pool", SP_CFG_STRING, "\"mean\"", 1, 0, "mean|last",
     "lstm: feature from the top layer's hidden states: mean over the patches or the last one "
     "(then LayerNorm)"},
    {"encoder.lstm.input_layernorm", SP_CFG_BOOL, "true", 1, 0, NULL,
     "lstm: standardise each spectrum over its points first (no affine parameters)"},
};

void enc_lstm_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

typedef struct {
    int P, E, H, n, pool_last, ln_in;
    int i_pw, i_pb, i_ew, i_eb, i_nw, i_nb;
    int i_wih[LSTM_MAX_LAYERS], i_whh[LSTM_MAX_LAYERS], i_bih[LSTM_MAX_LAYERS],
        i_bhh[LSTM_MAX_LAYERS];
} Lstm;

static SpStatus lstm_create(SpEncoder *e, const SpConfig *cfg) {
    Lstm s;
    memset(&s, 0, sizeof s);
    s.P = (int)sp_cfg_int(cfg, "encoder.lstm.patch");
    s.E = (int)sp_cfg_int(cfg, "encoder.lstm.embed_dim");
    s.H = (int)sp_cfg_int(cfg, "encoder.lstm.hidden");
    s.n = (int)sp_cfg_int(cfg, "encoder.lstm.layers");
    s.pool_last = strcmp(sp_cfg_str(cfg, "encoder.lstm.pool"), "last") == 0;
    s.ln_in = sp_cfg_bool(cfg, "encoder.lstm.input_layernorm");
    SpParams *p = &e->params;
    const SpTensorKind PK = SP_TENSOR_PARAM;
    if ((s.i_pw = sp_params_add_dims(p, "patch_embed.weight", PK, 2, s.E, s.P)) < 0 ||
        (s.i_pb = sp_params_add_dims(p, "patch_embed.bias", PK, 1, s.E)) < 0 ||
        (s.i_ew = sp_params_add_dims(p, "embed_norm.weight", PK, 1, s.E)) < 0 ||
        (s.i_eb = sp_params_add_dims(p, "embed_norm.bias", PK, 1, s.E)) < 0)
        return sp_error_status();
    for (int k = 0; k < s.n; k++) {
        char nm[SP_PARAM_NAME_MAX];
        const int in = k ? s.H : s.E;
        snprintf(nm, sizeof nm, "lstm.weight_ih_l%d", k);
        if ((s.i_wih[k] = sp_params_add_dims(p, nm, PK, 2, 4 * s.H, in)) < 0)
            return sp_error_status();
        snprintf(nm, sizeof nm, "lstm.weight_hh_l%d", k);
        if ((s.i_whh[k] = sp_params_add_dims(p, nm, PK, 2, 4 * s.H, s.H)) < 0)
            return sp_error_status();
        snprintf(nm, sizeof nm, "lstm.bias_ih_l%d", k);
        if ((s.i_bih[k] = sp_params_add_dims(p, nm, PK, 1, 4 * s.H)) < 0) return sp_error_status();
        snprintf(nm, sizeof nm, "lstm.bias_hh_l%d", k);
        if ((s.i_bhh[k] = sp_params_add_dims(p, nm, PK, 1, 4 * s.H)) < 0) return sp_error_status();
    }
    if ((s.i_nw = sp_params_add_dims(p, "norm.weight", PK, 1, s.H)) < 0 ||
        (s.i_nb = sp_params_add_dims(p, "norm.bias", PK, 1, s.H)) < 0)
        return sp_error_status();
    Lstm *impl = sp_malloc(sizeof *impl, "lstm spec");
    if (!impl) return SP_ENOMEM;
    *impl = s;
    e->impl = impl;
    e->feature_dim = s.H;
    e->batch_multiple = 1;
    return SP_OK;
}

static void lstm_init(SpEncoder *e, SpRng *rng) {
    const Lstm *s = e->impl;
    SpParams *p = &e->params;
#define D(i) sp_params_data(p, i)
    if (!rng) return; /* the caller loads values */
    enc_fill_const(D(s->i_ew), (size_t)s->E, 1.0f);
    enc_fill_const(D(s->i_nw), (size_t)s->H, 1.0f);
    const double bp = 1.0 / sqrt((double)s->P), bh = 1.0 / sqrt((double)s->H);
    enc_fill_uniform(D(s->i_pw), (size_t)s->E * s->P, bp, rng);
    enc_fill_uniform(D(s->i_pb), (size_t)s->E, bp, rng);
    for (int k = 0; k < s->n; k++) {
        const size_t in = (size_t)(k ? s->H : s->E), G4 = 4 * (size_t)s->H;
        enc_fill_uniform(D(s->i_wih[k]), G4 * in, bh, rng);
        enc_fill_uniform(D(s->i_whh[k]), G4 * s->H, bh, rng);
        enc_fill_uniform(D(s->i_bih[k]), G4, bh, rng);
        enc_fill_uniform(D(s->i_bhh[k]), G4, bh, rng);
    }
#undef D
}

static int lstm_length_ok(const SpEncoder *e, int L) {
    const Lstm *s = e->impl;
    return L >= s->P && L >= 2;
}

static double lstm_enc_flops(const SpEncoder *e, int L) {
    const Lstm *s = e->impl;
    const int T = (L + s->P - 1) / s->P;
    double f = 2.0 * T * (double)s->P * s->E;
    for (int k = 0; k < s->n; k++) {
        SpLSTM sh = {1, T, k ? s->H : s->E, s->H};
        f += lstm_flops(&sh);
    }
    return f;
}

/* ------------------------------------------------------------ activations */
typedef struct {
    char *arena;
    int L, T;
    float *xp;                       /* (B, T, P) standardised, zero-padded patches */
    float *emb;                      /* (B, T, E) patch embedding (LN input) */
    float *em, *er;                  /* (B T) LN statistics */
    float *u;                        /* (B, T, E) LN -> ReLU: LSTM input */
    float *out[LSTM_MAX_LAYERS];     /* (B, T, H) hidden states per layer */
    float *cache[LSTM_MAX_LAYERS];
    float *pool;                     /* (B, H) pooled (LN input) */
    float *pm, *pr;                  /* (B) final LN statistics */
    float *dA, *dB;                  /* (B, T, max(E, H)) backward ping-pong */
    float *dpool;                    /* (B, H) */
    float *work;
} LstmAct;

/* grad = 0 (inference-only context): the layers share two output buffers and
 * one cache, no backward buffers. */
static void lstm_layout(LstmAct *t, EncArena *ar, const Lstm *s, int B, int L, int grad) {
    const int T = (L + s->P - 1) / s->P;
    const size_t BT = (size_t)B * T, M = (size_t)(s->E > s->H ? s->E : s->H);
    t->L = L;
    t->T = T;
    t->xp = enc_take(ar, BT * s->P);
    t->emb = enc_take(ar, BT * s->E);
    t->em = enc_take(ar, BT);
    t->er = enc_take(ar, BT);
    t->u = enc_take(ar, BT * s->E);
    size_t w = linear_work_floats((int)BT, s->P, s->E), v;
    if ((v = layernorm_work_floats((int)BT, s->E)) > w) w = v;
    if ((v = layernorm_work_floats(B, s->H)) > w) w = v;
    for (int k = 0; k < s->n; k++) {
        SpLSTM sh = {B, T, k ? s->H : s->E, s->H};
        if (grad || k < 2) t->out[k] = enc_take(ar, BT * s->H);
        else t->out[k] = t->out[k - 2];
        if (grad || k == 0) t->cache[k] = enc_take(ar, lstm_cache_floats(&sh));
        else t->cache[k] = t->cache[0];   /* the cache does not depend on the input width */
        if ((v = lstm_work_floats(&sh)) > w) w = v;
    }
    t->pool = enc_take(ar, (size_t)B * s->H);
    t->pm = enc_take(ar, (size_t)B);
    t->pr = enc_take(ar, (size_t)B);
    t->dA = t->dB = t->dpool = t->work = NULL;
    if (!grad) return;   /* the forward needs no work buffer */
    t->dA = enc_take(ar, BT * M);
    t->dB = enc_take(ar, BT * M);
    t->dpool = enc_take(ar, (size_t)B * s->H);
    t->work = enc_take(ar, w);
}

static SpStatus lstm_act_create(SpEncAct *a, const SpEncoder *e) {
    const Lstm *s = e->impl;
    LstmAct *t = sp_calloc(1, sizeof *t, "lstm activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    lstm_layout(t, &ar, s, a->maxB, a->L, !a->infer);
    a->bytes = ar.used;
    if (enc_arena_alloc(&ar, "lstm activations") != SP_OK) {
        free(t);
        return SP_ENOMEM;
    }
    t->arena = ar.base;
    lstm_layout(t, &ar, s, a->maxB, a->L, !a->infer);
    a->impl = t;
    return SP_OK;
}

static void lstm_act_free(SpEncAct *a) {
    LstmAct *t = a->impl;
    if (t) free(t->arena);
    free(t);
    a->impl = NULL;
}

static void lstm_forward_enc(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                             float *feat) {
    (void)mode; /* no BatchNorm, no dropout */
    const Lstm *s = e->impl;
    LstmAct *t = a->impl;
    const SpParams *p = &e->params;
    const int T = t->T, H = s->H, BT = B * T;
#define D(i) sp_params_data(p, i)
    enc_patchify(t->xp, x, B, t->L, T * s->P, s->ln_in, LN_EPS);
    linear_forward(t->emb, t->xp, D(s->i_pw), D(s->i_pb), BT, s->P, s->E);
    layernorm_forward(t->u, t->em, t->er, t->emb, D(s->i_ew), D(s->i_eb), BT, s->E, LN_EPS);
    enc_relu_inplace(t->u, BT, (size_t)s->E);
    const float *in = t->u;
    for (int k = 0; k < s->n; k++) {
        SpLSTM sh = {B, T, k ? H : s->E, H};
        lstm_forward(t->out[k], t->cache[k], in, D(s->i_wih[k]), D(s->i_whh[k]), D(s->i_bih[k]),
                     D(s->i_bhh[k]), &sh);
        in = t->out[k];
    }
    const float *top = t->out[s->n - 1];
#pragma omp parallel for schedule(static) if ((size_t)BT * H >= PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *o = top + (size_t)b * T * H;
        float *q = t->pool + (size_t)b * H;
        if (s->pool_last) {
            memcpy(q, o + (size_t)(T - 1) * H, (size_t)H * sizeof(float));
        } else {
            for (int j = 0; j < H; j++) {
                double acc = 0.0;
                for (int tt = 0; tt < T; tt++) acc += (double)o[(size_t)tt * H + j];
                q[j] = (float)(acc / T);
            }
        }
    }
    layernorm_forward(feat, t->pm, t->pr, t->pool, D(s->i_nw), D(s->i_nb), B, H, LN_EPS);
#undef D
}

static void lstm_backward_enc(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Lstm *s = e->impl;
    LstmAct *t = a->impl;
    const SpParams *p = &e->params;
    const int T = t->T, H = s->H, BT = B * T;
#define D(i) sp_params_data(p, i)
#define G(i) sp_params_grad(p, i)
    enc_zero(t->dpool, B, (size_t)H);
    layernorm_backward(t->dpool, G(s->i_nw), G(s->i_nb), dfeat, t->pool, t->pm, t->pr, D(s->i_nw),
                       B, H, t->work);
    /* pooling: dout of the top layer */
    float *dout = t->dA, *dnext = t->dB;
    const float invT = 1.0f / (float)T;
#pragma omp parallel for schedule(static) if ((size_t)BT * H >= PAR_MIN)
    for (int b = 0; b < B; b++) {
        float *d = dout + (size_t)b * T * H;
        const float *g = t->dpool + (size_t)b * H;
        for (int tt = 0; tt < T; tt++)
            for (int j = 0; j < H; j++)
                d[(size_t)tt * H + j] = s->pool_last ? (tt == T - 1 ? g[j] : 0.0f) : g[j] * invT;
    }
    for (int k = s->n - 1; k >= 0; k--) {
        const int in = k ? H : s->E;
        SpLSTM sh = {B, T, in, H};
        enc_zero(dnext, BT, (size_t)in);
        lstm_backward(dnext, G(s->i_wih[k]), G(s->i_whh[k]), G(s->i_bih[k]), G(s->i_bhh[k]), dout,
                      k ? t->out[k - 1] : t->u, t->out[k], t->cache[k], D(s->i_wih[k]),
                      D(s->i_whh[k]), &sh, t->work);
        float *tmp = dout;
        dout = dnext;
        dnext = tmp;
    }
    /* dout: gradient w.r.t. u (B, T, E) */
    enc_relu_mask(dout, t->u, BT, (size_t)s->E);
    enc_zero(dnext, BT, (size_t)s->E);
    layernorm_backward(dnext, G(s->i_ew), G(s->i_eb), dout, t->emb, t->em, t->er, D(s->i_ew), BT,
                       s->E, t->work);
    linear_backward(NULL, G(s->i_pw), G(s->i_pb), dnext, t->xp, D(s->i_pw), BT, s->P, s->E,
                    t->work);
#undef D
#undef G
}

const SpEncArch sp_enc_arch_lstm = {
    .name = "lstm",
    .create = lstm_create,
    .init = lstm_init,
    .length_ok = lstm_length_ok,
    .act_create = lstm_act_create,
    .act_free = lstm_act_free,
    .forward = lstm_forward_enc,
    .backward = lstm_backward_enc,
    .flops = lstm_enc_flops,
    .free_impl = enc_free_impl,
};
