/* enc_cnn.c - configurable 1D CNN encoder.
 *
 *   [LN over the points of each spectrum (no affine; encoder.cnn.layernorm_input)]
 *   n times: conv(C_i -> O_i, K_i, stride_i, pad_i, bias) [-> split BN] -> ReLU
 *            [-> max pool P_i (window = stride = P_i; 0 or 1: none)]
 *   head "gap":     global average pool -> feature (B, O_last), any length
 *   head "flatten": flatten (B, O_last * Lp_last) channel-major -> linear dense
 *                   layer (no activation) -> feature (B, flatten_dim); keeps
 *                   where peaks are (Schuetzke et al.'s CNN2/CNN3 family);
 *                   the input length is fixed (encoder.input_length)
 * Tensors "conv<i>.weight" (O,C,K), "conv<i>.bias" (O), with batchnorm
 * "bn<i>.{weight,bias,running_mean,running_var}", with the flatten head
 * "dense.weight" (flatten_dim, O_last * Lp_last), "dense.bias" (flatten_dim).
 * configs/bench_cnn.cfg: 1->32 k7 p3, pool 2; 32->64 k5 p2, pool 2; 64->128
 * k3 p1; 128-d feature (about 23.5 MFLOP per spectrum at L = 1024).
 *
 * Dimension letters: B batch, L input length, C/O channels, Lc conv output
 * length, Lp pooled length. Pool and ReLU commute (see enc_convsc.c), so the
 * ReLU runs on the pooled map. Allocation: create / act_create only. Every
 * function opens its own OpenMP regions; do not call from inside one.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_blas.h"
#include "sp_kernels.h"
#include "sp_layers.h"

#define CNN_MAX_LAYERS 32

static const SpCfgKey g_keys[] = {
    {"encoder.cnn.channels", SP_CFG_INT_LIST, "[32, 64, 128]", 1, 65536, NULL,
     "cnn: output channels per conv layer (the last one is the feature width)"},
    {"encoder.cnn.kernels", SP_CFG_INT_LIST, "[7, 5, 3]", 1, 4096, NULL,
     "cnn: kernel width per conv layer"},
    {"encoder.cnn.strides", SP_CFG_INT_LIST, "[1, 1, 1]", 1, 4096, NULL,
     "cnn: stride per conv layer"},
    {"encoder.cnn.padding", SP_CFG_INT_LIST, "[3, 2, 1]", 0, 4096, NULL,
     "cnn: zero padding (each side) per conv layer"},
    {"encoder.cnn.pool", SP_CFG_INT_LIST, "[2, 2, 0]", 0, 4096, NULL,
     "cnn: max-pool window (= stride) after each conv layer's ReLU; 0 or 1 = none"},
    {"encoder.cnn.batchnorm", SP_CFG_BOOL, "false", 1, 0, NULL,
     "cnn: BatchNorm after every convolution"},
    {"encoder.cnn.bn_splits", SP_CFG_INT, "1", 1, 1024, NULL,
     "cnn: split-BatchNorm groups in training mode (1 = plain BN)"},
    {"encoder.cnn.layernorm_input", SP_CFG_BOOL, "false", 1, 0, NULL,
     "cnn: standardise each input spectrum over its points first (LayerNorm without affine "
     "parameters, so any length works)"},
    {"encoder.cnn.head", SP_CFG_STRING, "\"gap\"", 1, 0, "gap|flatten",
     "cnn: global average pool over positions (any length; position-blind) or flatten + a "
     "linear dense layer (keeps peak positions; needs encoder.input_length)"},
    {"encoder.cnn.flatten_dim", SP_CFG_INT, "256", 1, 65536, NULL,
     "cnn, head = flatten: width of the dense layer, the feature h (no activation)"},
};

void enc_cnn_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

typedef struct {
    int n;                       /* layers */
    int pool[CNN_MAX_LAYERS];
    int ln_input;
    EncConvSpec cv[CNN_MAX_LAYERS];
    int flatten;                 /* head = flatten */
    int Lfix;                    /* flatten: the only input length */
    int Din, Dout;               /* flatten: O_last * Lp_last -> flatten_dim */
    int iwd, ibd;                /* flatten: dense tensors */
} Cnn;

/* Length after the conv/pool stack (< 1: too short). */
static int cnn_stack_len(const Cnn *s, int L) {
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        L = conv1d_out_len(L, c->K, c->stride, c->pad);
        if (L < 1) return 0;
        L /= s->pool[i];
        if (L < 1) return 0;
    }
    return L;
}

static SpStatus read_list(const SpConfig *cfg, const char *key, int n, int *out) {
    int len = sp_cfg_list_len(cfg, key);
    if (len != n)
        SP_FAIL(SP_ECONFIG, "%s has %d entries, encoder.cnn.channels has %d (one per layer)", key,
                len, n);
    for (int i = 0; i < n; i++) out[i] = (int)sp_cfg_int_at(cfg, key, i);
    return SP_OK;
}

static SpStatus cnn_create(SpEncoder *e, const SpConfig *cfg) {
    int n = sp_cfg_list_len(cfg, "encoder.cnn.channels");
    if (n < 1 || n > CNN_MAX_LAYERS)
        SP_FAIL(SP_ECONFIG, "encoder.cnn.channels: %d layers, expected 1..%d", n, CNN_MAX_LAYERS);
    int ch[CNN_MAX_LAYERS], k[CNN_MAX_LAYERS], st[CNN_MAX_LAYERS], pad[CNN_MAX_LAYERS];
    Cnn *s = sp_calloc(1, sizeof *s, "cnn spec");
    if (!s) return SP_ENOMEM;
    SpStatus rc = SP_OK;
    SP_TRY_GOTO(rc, read_list(cfg, "encoder.cnn.channels", n, ch), fail);
    SP_TRY_GOTO(rc, read_list(cfg, "encoder.cnn.kernels", n, k), fail);
    SP_TRY_GOTO(rc, read_list(cfg, "encoder.cnn.strides", n, st), fail);
    SP_TRY_GOTO(rc, read_list(cfg, "encoder.cnn.padding", n, pad), fail);
    SP_TRY_GOTO(rc, read_list(cfg, "encoder.cnn.pool", n, s->pool), fail);
    int bn = sp_cfg_bool(cfg, "encoder.cnn.batchnorm");
    int S = (int)sp_cfg_int(cfg, "encoder.cnn.bn_splits");
    s->n = n;
    s->ln_input = sp_cfg_bool(cfg, "encoder.cnn.layernorm_input");
    for (int i = 0; i < n; i++) {
        if (pad[i] >= k[i])
            SP_FAIL_GOTO(rc, fail, SP_ECONFIG,
                         "encoder.cnn.padding[%d] = %d must be smaller than the kernel width %d",
                         i, pad[i], k[i]);
        if (s->pool[i] < 2) s->pool[i] = 1;
        char cn[32], bnn[32];
        snprintf(cn, sizeof cn, "conv%d", i);
        snprintf(bnn, sizeof bnn, "bn%d", i);
        SP_TRY_GOTO(rc, enc_conv_declare(&s->cv[i], &e->params, cn, bnn, i ? ch[i - 1] : 1, ch[i],
                                         k[i], st[i], pad[i], 1, bn, S), fail);
    }
    s->flatten = !strcmp(sp_cfg_str(cfg, "encoder.cnn.head"), "flatten");
    e->feature_dim = ch[n - 1];
    if (s->flatten) {
        s->Lfix = (int)sp_cfg_int(cfg, "encoder.input_length");
        if (s->Lfix < 1)
            SP_FAIL_GOTO(rc, fail, SP_ECONFIG, "encoder.input_length must be set (> 0) when "
                         "encoder.cnn.head = \"flatten\": the dense layer needs a fixed length");
        int Lp = cnn_stack_len(s, s->Lfix);
        if (Lp < 1)
            SP_FAIL_GOTO(rc, fail, SP_ECONFIG, "encoder.input_length = %d is too short for "
                         "the convolutions and pools of encoder.cnn.*", s->Lfix);
        s->Din = ch[n - 1] * Lp;
        s->Dout = (int)sp_cfg_int(cfg, "encoder.cnn.flatten_dim");
        s->iwd = sp_params_add_dims(&e->params, "dense.weight", SP_TENSOR_PARAM, 2,
                                    (int64_t)s->Dout, (int64_t)s->Din);
        s->ibd = sp_params_add_dims(&e->params, "dense.bias", SP_TENSOR_PARAM, 1,
                                    (int64_t)s->Dout);
        if (s->iwd < 0 || s->ibd < 0) {
            rc = sp_error_status();
            goto fail;
        }
        e->feature_dim = s->Dout;
    }
    e->impl = s;
    e->batch_multiple = bn ? S : 1;
    return SP_OK;
fail:
    free(s);
    return rc;
}

static void cnn_free_impl(SpEncoder *e) {
    free(e->impl);
    e->impl = NULL;
}

static void cnn_init(SpEncoder *e, SpRng *rng) {
    const Cnn *s = e->impl;
    for (int i = 0; i < s->n; i++) enc_conv_init(&s->cv[i], &e->params, rng);
    if (s->flatten && rng) {   /* Keras Dense default: Glorot uniform, zero bias */
        double bound = sqrt(6.0 / ((double)s->Din + s->Dout));
        enc_fill_uniform(sp_params_data(&e->params, s->iwd), (size_t)s->Dout * s->Din, bound, rng);
        enc_fill_const(sp_params_data(&e->params, s->ibd), (size_t)s->Dout, 0.0f);
    }
}

static int cnn_length_ok(const SpEncoder *e, int L) {
    const Cnn *s = e->impl;
    if (s->flatten && L != s->Lfix) return 0;
    return cnn_stack_len(s, L) >= 1;
}

static double cnn_flops(const SpEncoder *e, int L) {
    const Cnn *s = e->impl;
    double f = 0.0;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        int Lc = conv1d_out_len(L, c->K, c->stride, c->pad);
        f += 2.0 * c->O * c->C * c->K * Lc;
        L = Lc / s->pool[i];
    }
    if (s->flatten) f += 2.0 * s->Din * s->Dout;
    return f;
}

/* ------------------------------------------------------------ activations
 *
 * Two paths.
 * - Channel-last path ("cl"), used for every mode when the network has no
 *   BatchNorm, and for SP_ENC_EVAL always: one sample at a time per thread,
 *   maps stored channel-last (position t, channel c at t*C + c) with the next
 *   layer's zero padding rows around them, so a convolution is one
 *   sp_gemm_strided over overlapping windows of its input (no im2col copy):
 *     Y (Lc, O) = Xp[t*s*C + j] (Lc, K*C) . Wr (K*C, O),  j = k*C + c,
 *   followed by one epilogue pass: affine (bias, or BN with running
 *   statistics folded in), max pool (first maximum; NaN wins), ReLU, written
 *   straight into the next layer's padded input. Training keeps, per sample,
 *   every layer's output and the pool choice (one byte per pooled value);
 *   the backward runs per sample too:
 *     G (gradient w.r.t. the layer output) -> ReLU mask -> scattered to the
 *     pool picks = dY (Lc, O); dWr += Xp^T dY (per-thread partials, reduced
 *     in thread order); dcols = dY Wr^T (Lc, K*C) overlap-added into the
 *     gradient of the previous (padded) output.
 * - Layer-by-layer path (BatchNorm networks in SP_ENC_TRAIN /
 *   SP_ENC_EVAL_GRAD): (B, C, L) maps through enc_conv_* (split BN needs the
 *   batch statistics before any sample can be normalised).
 * Both are deterministic for a given thread count and bit-identical from run
 * to run with one thread. */
typedef struct {
    char *arena;
    int n, L, cl;                      /* cl: no BN, the channel-last path trains */
    int nthreads, infer;
    int Lin[CNN_MAX_LAYERS], Lc[CNN_MAX_LAYERS], Lout[CNN_MAX_LAYERS];
    int Rin[CNN_MAX_LAYERS];           /* padded input rows of layer i: Lin + 2 pad */
    int Rout[CNN_MAX_LAYERS];          /* stored output rows: Lout + 2 pad of layer i+1 */

    /* layer-by-layer path (BN) */
    float *xin;                       /* (B, L) input (after the optional LN) */
    float *lnm, *lnr;                 /* LN statistics (B) */
    EncConvAct cu[CNN_MAX_LAYERS];
    float *pooled[CNN_MAX_LAYERS];    /* (B,O,Lout) when pooling */
    int *idx[CNN_MAX_LAYERS];
    float *out[CNN_MAX_LAYERS];       /* layer output after ReLU (kept) */
    float *dout[CNN_MAX_LAYERS];      /* gradient w.r.t. out[i] */
    float *dpre[CNN_MAX_LAYERS];      /* gradient w.r.t. the pre-pool map */
    float *work;

    /* channel-last path: weights reordered per forward/backward */
    float *wr[CNN_MAX_LAYERS];        /* (K*C, O) */
    float *wt[CNN_MAX_LAYERS];        /* (O, K*C) (training contexts) */
    float *scale[CNN_MAX_LAYERS], *shift[CNN_MAX_LAYERS];   /* eval affine (O) */
    /* kept for backward (training contexts of cl networks) */
    float *x0;                        /* (B, Rin[0]) padded input */
    float *act[CNN_MAX_LAYERS];       /* (B, Rout[i], O) */
    unsigned char *sel[CNN_MAX_LAYERS];   /* (B, Lout, O) pool choice, pool > 1 */
    float *flat, *dflat;              /* flatten head: (B, Din) channel-major */
    /* per-thread scratch */
    size_t sc_conv, sc_cols, sc_g, sc_flat, sc_per;
    float *scr;
    size_t pdw_per;                   /* floats of one thread's dW/db partials */
    size_t pdw_off[CNN_MAX_LAYERS];   /* offset of layer i's (K*C*O + O) block */
    float *pdw;
} CnnAct;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static void cnn_layout(CnnAct *t, EncArena *ar, const Cnn *s, int B, int L) {
    t->n = s->n;
    t->L = L;
    t->cl = !s->cv[0].bn;
    for (int i = 0; i < s->n; i++)
        if (s->pool[i] > 255) t->cl = 0;   /* pool choices are stored in bytes */
    const int train_ctx = !t->infer;
    int Li = L;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        t->Lin[i] = Li;
        t->Rin[i] = Li + 2 * c->pad;
        t->Lc[i] = conv1d_out_len(Li, c->K, c->stride, c->pad);
        t->Lout[i] = t->Lc[i] / s->pool[i];
        Li = t->Lout[i];
    }
    for (int i = 0; i < s->n; i++)
        t->Rout[i] = t->Lout[i] + (i + 1 < s->n ? 2 * s->cv[i + 1].pad : 0);

    /* layer-by-layer path: BN networks' training contexts only */
    const int Bl = (train_ctx && !t->cl) ? B : 0;
    t->xin = enc_take(ar, (size_t)Bl * L);
    t->lnm = enc_take(ar, (size_t)Bl);
    t->lnr = enc_take(ar, (size_t)Bl);
    size_t w = s->ln_input && Bl ? layernorm_work_floats(B, L) : 0;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        EncConvAct *u = &t->cu[i];
        enc_conv_layout(u, ar, c, Bl, t->Lin[i], 1);
        u->cv.B = B;
        u->bn.N = B;
        size_t no = (size_t)Bl * c->O * t->Lout[i];
        if (s->pool[i] > 1) {
            t->pooled[i] = enc_take(ar, no);
            t->idx[i] = enc_take_int(ar, no);
            t->dpre[i] = enc_take(ar, (size_t)Bl * c->O * u->Lo);
            t->out[i] = t->pooled[i];
        } else {
            t->pooled[i] = NULL;
            t->idx[i] = NULL;
            t->dpre[i] = NULL;
            t->out[i] = u->out;
        }
        t->dout[i] = enc_take(ar, no);
        size_t v = Bl ? enc_conv_work_floats(u) : 0;
        if (v > w) w = v;
    }
    if (s->flatten && train_ctx) {
        size_t v = linear_work_floats(B, s->Din, s->Dout);
        if (v > w) w = v;
    }
    t->work = enc_take(ar, w);

    /* channel-last path */
    const int Bc = (train_ctx && t->cl) ? B : 0;
    size_t conv = 0, cols = 0, g = 0;
    t->pdw_per = 0;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        const size_t KC = (size_t)c->K * c->C, O = (size_t)c->O;
        t->wr[i] = enc_take(ar, KC * O);
        t->wt[i] = enc_take(ar, Bc ? KC * O : 0);
        t->scale[i] = enc_take(ar, O);
        t->shift[i] = enc_take(ar, O);
        t->act[i] = enc_take(ar, (size_t)Bc * t->Rout[i] * O);
        t->sel[i] = enc_take_u8(ar, s->pool[i] > 1 ? (size_t)Bc * t->Lout[i] * O : 0);
        if ((size_t)t->Lc[i] * O > conv) conv = (size_t)t->Lc[i] * O;
        if (i > 0 && (size_t)t->Lc[i] * KC > cols) cols = (size_t)t->Lc[i] * KC;
        if ((size_t)t->Rin[i] * c->C > g) g = (size_t)t->Rin[i] * c->C;
        t->pdw_off[i] = t->pdw_per;
        t->pdw_per += round16(KC * O + O);
    }
    const int l = s->n - 1;
    if ((size_t)t->Lout[l] * s->cv[l].O > g) g = (size_t)t->Lout[l] * s->cv[l].O;
    t->x0 = enc_take(ar, (size_t)Bc * t->Rin[0]);
    t->flat = enc_take(ar, s->flatten ? (size_t)Bc * s->Din : 0);
    t->dflat = enc_take(ar, s->flatten ? (size_t)Bc * s->Din : 0);
    t->sc_conv = round16(conv);
    t->sc_cols = Bc ? round16(cols) : 0;
    t->sc_g = round16(g);
    t->sc_flat = s->flatten ? round16((size_t)s->Din) : 0;
    t->sc_per = t->sc_conv + t->sc_cols + 2 * t->sc_g + t->sc_flat;
    t->scr = enc_take(ar, t->sc_per * (size_t)t->nthreads);
    t->pdw = enc_take(ar, Bc ? t->pdw_per * (size_t)t->nthreads : 0);
}

static SpStatus cnn_act_create(SpEncAct *a, const SpEncoder *e) {
    const Cnn *s = e->impl;
    CnnAct *t = sp_calloc(1, sizeof *t, "cnn activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    t->nthreads = a->nthreads;
    t->infer = a->infer;
    cnn_layout(t, &ar, s, a->maxB, a->L);
    a->bytes = ar.used;
    if (enc_arena_alloc(&ar, "cnn activations") != SP_OK) {
        free(t);
        return SP_ENOMEM;
    }
    t->arena = ar.base;
    cnn_layout(t, &ar, s, a->maxB, a->L);
    a->impl = t;
    return SP_OK;
}

static void cnn_act_free(SpEncAct *a) {
    CnnAct *t = a->impl;
    if (t) free(t->arena);
    free(t);
    a->impl = NULL;
}

/* ------------------------------------------------------- channel-last path */
/* Weights (O, C, K) -> wr (K*C, O); with `eval`, the affine of each layer
 * (conv bias, or BN with running statistics folded in) into scale/shift. */
static void cl_prepare(const Cnn *s, CnnAct *t, const SpParams *p, int eval) {
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        const float *w = sp_params_data(p, c->iw), *b = sp_params_data(p, c->ib);
        float *wk = t->wr[i];
        for (int o = 0; o < c->O; o++)
            for (int ci = 0; ci < c->C; ci++)
                for (int k = 0; k < c->K; k++)
                    wk[((size_t)k * c->C + ci) * c->O + o] = w[((size_t)o * c->C + ci) * c->K + k];
        if (!eval) continue;
        for (int o = 0; o < c->O; o++) {
            if (c->bn) {
                const float *g = sp_params_data(p, c->ig), *be = sp_params_data(p, c->ibeta);
                const float *rm = sp_params_data(p, c->irm), *rv = sp_params_data(p, c->irv);
                double sc = (double)g[o] / sqrt((double)rv[o] + 1e-5);
                t->scale[i][o] = (float)sc;
                t->shift[i][o] = (float)((double)be[o] + sc * ((double)b[o] - (double)rm[o]));
            } else {
                t->scale[i][o] = 1.0f;
                t->shift[i][o] = b[o];
            }
        }
    }
}

/* Epilogue of one layer, one sample: v = scale * conv + shift (scale NULL:
 * conv + shift), max pool over windows of P rows (first maximum; NaN wins),
 * ReLU (NaN passes) -> out (opad zero rows, Lo = Lc / P rows, opad zero
 * rows; rows of O). sel (Lo, O) != NULL: the pool choice 0..P-1. */
static void cl_post(float *restrict out, int opad, unsigned char *restrict sel,
                    const float *restrict conv, const float *restrict scale,
                    const float *restrict shift, int O, int Lc, int P) {
    const int Lo = Lc / P;
    memset(out, 0, sizeof(float) * (size_t)opad * O);
    memset(out + (size_t)(opad + Lo) * O, 0, sizeof(float) * (size_t)opad * O);
    float *y0 = out + (size_t)opad * O;
    if (P == 2 && !scale && sel) {   /* the training case (vectorised) */
        for (int t = 0; t < Lo; t++) {
            float *restrict y = y0 + (size_t)t * O;
            unsigned char *restrict sl = sel + (size_t)t * O;
            const float *restrict x0 = conv + (size_t)2 * t * O, *restrict x1 = x0 + O;
            for (int o = 0; o < O; o++) {
                const float v0 = x0[o] + shift[o], v1 = x1[o] + shift[o];
                const int take = v1 > v0 || v1 != v1;
                const float m = take ? v1 : v0;
                y[o] = m < 0.0f ? 0.0f : m;
                sl[o] = (unsigned char)take;
            }
        }
        return;
    }
    for (int t = 0; t < Lo; t++) {
        float *restrict y = y0 + (size_t)t * O;
        const float *x = conv + (size_t)t * P * O;
        unsigned char *restrict sl = sel ? sel + (size_t)t * O : NULL;
        if (scale)
            for (int o = 0; o < O; o++) y[o] = scale[o] * x[o] + shift[o];
        else
            for (int o = 0; o < O; o++) y[o] = x[o] + shift[o];
        if (sl)
            for (int o = 0; o < O; o++) sl[o] = 0;
        for (int j = 1; j < P; j++) {
            const float *xj = x + (size_t)j * O;
            if (scale) {
                for (int o = 0; o < O; o++) {
                    const float v = scale[o] * xj[o] + shift[o];
                    const int take = v > y[o] || v != v;
                    y[o] = take ? v : y[o];
                    if (sl) sl[o] = take ? (unsigned char)j : sl[o];
                }
            } else {
                for (int o = 0; o < O; o++) {
                    const float v = xj[o] + shift[o];
                    const int take = v > y[o] || v != v;
                    y[o] = take ? v : y[o];
                    if (sl) sl[o] = take ? (unsigned char)j : sl[o];
                }
            }
        }
        for (int o = 0; o < O; o++) y[o] = y[o] < 0.0f ? 0.0f : y[o];
    }
}

/* Mean over the L rows of x (L, O): float sums in fixed row order per
 * channel, in blocks of 64 rows each added in double. */
static void cl_mean_rows(float *feat, const float *x, int O, int L) {
    double acc[512];
    float blk[512];
    for (int o0 = 0; o0 < O; o0 += 512) {
        const int no = O - o0 < 512 ? O - o0 : 512;
        for (int o = 0; o < no; o++) acc[o] = 0.0;
        for (int t0 = 0; t0 < L; t0 += 64) {
            const int t1 = t0 + 64 < L ? t0 + 64 : L;
            for (int o = 0; o < no; o++) blk[o] = 0.0f;
            for (int t = t0; t < t1; t++) {
                const float *r = x + (size_t)t * O + o0;
                for (int o = 0; o < no; o++) blk[o] += r[o];
            }
            for (int o = 0; o < no; o++) acc[o] += (double)blk[o];
        }
        for (int o = 0; o < no; o++) feat[o0 + o] = (float)(acc[o] / L);
    }
}

/* Padded input of one sample: pad zeros, x (standardised when asked), pad zeros. */
static void cl_input(const Cnn *s, float *in, const float *xb, int L) {
    const int pad = s->cv[0].pad;
    for (int j = 0; j < pad; j++) in[j] = in[pad + L + j] = 0.0f;
    if (s->ln_input) {
        double m = 0.0, v = 0.0;
        for (int j = 0; j < L; j++) m += (double)xb[j];
        m /= L;
        for (int j = 0; j < L; j++) v += ((double)xb[j] - m) * ((double)xb[j] - m);
        float rstd = (float)(1.0 / sqrt(v / L + 1e-5)), mf = (float)m;
        for (int j = 0; j < L; j++) in[pad + j] = (xb[j] - mf) * rstd;
    } else {
        memcpy(in + pad, xb, (size_t)L * sizeof(float));
    }
}

/* Forward of one sample through the conv stack. in0: padded input (Rin[0]).
 * outs[i]: layer i's output buffer (Rout[i] rows of O); sels[i] or NULL.
 * eval: scale/shift epilogue, else conv bias. Returns the last output
 * (Lout rows of O, no padding). */
static const float *cl_sample_forward(const Cnn *s, const CnnAct *t, const SpParams *p,
                                      const float *in0, float *const *outs,
                                      unsigned char *const *sels, float *conv, int eval) {
    const float *in = in0;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        const int KC = c->K * c->C;
        sp_gemm_strided(t->Lc[i], c->O, KC, in, (ptrdiff_t)c->stride * c->C, 1, t->wr[i], c->O,
                        conv, c->O, 0);
        const int opad = i + 1 < s->n ? s->cv[i + 1].pad : 0;
        cl_post(outs[i], opad, sels ? sels[i] : NULL, conv, eval ? t->scale[i] : NULL,
                eval ? t->shift[i] : sp_params_data(p, c->ib), c->O, t->Lc[i], s->pool[i]);
        in = outs[i];
    }
    return outs[s->n - 1];
}

static void cl_forward_eval(const Cnn *s, CnnAct *t, const SpParams *p, const float *x, int B,
                            float *feat) {
    cl_prepare(s, t, p, 1);
    const int L = t->L, l = s->n - 1, D = s->cv[l].O;
#pragma omp parallel
    {
        float *scr = t->scr + t->sc_per * (size_t)omp_get_thread_num();
        float *conv = scr, *g0 = scr + t->sc_conv + t->sc_cols, *g1 = g0 + t->sc_g;
        float *flat = g1 + t->sc_g;
        float *outs[CNN_MAX_LAYERS];
        for (int i = 0; i < s->n; i++) outs[i] = (i % 2) ? g0 : g1;   /* input starts in g0 */
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            cl_input(s, g0, x + (size_t)b * L, L);
            const float *y = cl_sample_forward(s, t, p, g0, outs, NULL, conv, 1);
            if (s->flatten) {   /* channel-major copy, then the dense layer */
                const int Lp = t->Lout[l];
                for (int o = 0; o < D; o++)
                    for (int j = 0; j < Lp; j++) flat[(size_t)o * Lp + j] = y[(size_t)j * D + o];
                float *fb = feat + (size_t)b * s->Dout;
                memcpy(fb, sp_params_data(p, s->ibd), (size_t)s->Dout * sizeof(float));
                cblas_sgemv(CblasRowMajor, CblasNoTrans, s->Dout, s->Din, 1.0f,
                            sp_params_data(p, s->iwd), s->Din, flat, 1, 1.0f, fb, 1);
            } else {
                cl_mean_rows(feat + (size_t)b * D, y, D, t->Lout[l]);
            }
        }
    }
}

static void cl_forward_train(const Cnn *s, CnnAct *t, const SpParams *p, const float *x, int B,
                             float *feat) {
    cl_prepare(s, t, p, 0);
    const int L = t->L, l = s->n - 1, D = s->cv[l].O;
#pragma omp parallel
    {
        float *conv = t->scr + t->sc_per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            float *in0 = t->x0 + (size_t)b * t->Rin[0];
            float *outs[CNN_MAX_LAYERS];
            unsigned char *sels[CNN_MAX_LAYERS];
            for (int i = 0; i < s->n; i++) {
                const size_t O = (size_t)s->cv[i].O;
                outs[i] = t->act[i] + (size_t)b * t->Rout[i] * O;
                sels[i] = s->pool[i] > 1 ? t->sel[i] + (size_t)b * t->Lout[i] * O : NULL;
            }
            cl_input(s, in0, x + (size_t)b * L, L);
            const float *y = cl_sample_forward(s, t, p, in0, outs, sels, conv, 0);
            if (s->flatten) {
                const int Lp = t->Lout[l];
                float *fl = t->flat + (size_t)b * s->Din;
                for (int o = 0; o < D; o++)
                    for (int j = 0; j < Lp; j++) fl[(size_t)o * Lp + j] = y[(size_t)j * D + o];
            } else {
                cl_mean_rows(feat + (size_t)b * D, y, D, t->Lout[l]);
            }
        }
    }
    if (s->flatten)
        linear_forward(feat, t->flat, sp_params_data(p, s->iwd), sp_params_data(p, s->ibd), B,
                       s->Din, s->Dout);
}

static void cl_backward(const Cnn *s, CnnAct *t, SpParams *p, const float *dfeat, int B) {
    const int l = s->n - 1, D = s->cv[l].O, Ll = t->Lout[l];
    for (int i = 0; i < s->n; i++) {   /* wt (O, K*C) = wr^T */
        const EncConvSpec *c = &s->cv[i];
        const int KC = c->K * c->C;
        for (int j = 0; j < KC; j++)
            for (int o = 0; o < c->O; o++)
                t->wt[i][(size_t)o * KC + j] = t->wr[i][(size_t)j * c->O + o];
    }
    if (s->flatten) {
        memset(t->dflat, 0, (size_t)B * s->Din * sizeof(float));
        linear_backward(t->dflat, sp_params_grad(p, s->iwd), sp_params_grad(p, s->ibd), dfeat,
                        t->flat, sp_params_data(p, s->iwd), B, s->Din, s->Dout, t->work);
    }
#pragma omp parallel
    {
        const int tid = omp_get_thread_num();
        const int nt = omp_get_num_threads();
        float *scr = t->scr + t->sc_per * (size_t)tid;
        float *conv = scr, *cols = scr + t->sc_conv;
        float *gb[2] = {cols + t->sc_cols, cols + t->sc_cols + t->sc_g};
        float *pdw = t->pdw + t->pdw_per * (size_t)tid;
        memset(pdw, 0, t->pdw_per * sizeof(float));
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            /* gradient w.r.t. the last layer's output (Ll, D) */
            int cur = 0;
            float *G = gb[0];
            if (s->flatten) {
                const float *df = t->dflat + (size_t)b * s->Din;
                for (int j = 0; j < Ll; j++)
                    for (int o = 0; o < D; o++) G[(size_t)j * D + o] = df[(size_t)o * Ll + j];
            } else {
                const float *df = dfeat + (size_t)b * D;
                for (int j = 0; j < Ll; j++)
                    for (int o = 0; o < D; o++) G[(size_t)j * D + o] = df[o] / (float)Ll;
            }
            for (int i = l; i >= 0; i--) {
                const EncConvSpec *c = &s->cv[i];
                const int O = c->O, C = c->C, KC = c->K * C, Lc = t->Lc[i], Lo = t->Lout[i];
                const int P = s->pool[i];
                const int opad = i < l ? s->cv[i + 1].pad : 0;
                const float *y = t->act[i] + ((size_t)b * t->Rout[i] + opad) * O;
                /* ReLU (from its output), max pool (the gradient goes to the picked
                 * row of each window; rows past Lo * P get none), bias sums */
                float *pw = pdw + t->pdw_off[i];
                float *restrict pb = pw + (size_t)KC * O;
                const float *dY = G;
                if (P > 1) {
                    const unsigned char *sl = t->sel[i] + (size_t)b * Lo * O;
                    float *restrict d = conv;
                    for (int q = 0; q < Lo; q++) {
                        const float *restrict gq = G + (size_t)q * O, *restrict yq = y + (size_t)q * O;
                        const unsigned char *restrict sq = sl + (size_t)q * O;
                        for (int j = 0; j < P; j++) {
                            float *restrict dr = d + ((size_t)q * P + j) * O;
                            for (int o = 0; o < O; o++) {
                                const float g = (yq[o] > 0.0f && sq[o] == j) ? gq[o] : 0.0f;
                                dr[o] = g;
                                pb[o] += g;
                            }
                        }
                    }
                    memset(d + (size_t)Lo * P * O, 0, (size_t)(Lc - Lo * P) * O * sizeof(float));
                    dY = conv;
                } else {
                    for (int q = 0; q < Lo; q++) {
                        float *restrict gq = G + (size_t)q * O;
                        const float *restrict yq = y + (size_t)q * O;
                        for (int o = 0; o < O; o++) {
                            const float g = yq[o] > 0.0f ? gq[o] : 0.0f;
                            gq[o] = g;
                            pb[o] += g;
                        }
                    }
                }
                /* dWr (K*C, O) += Xp^T dY */
                const float *in = i ? t->act[i - 1] + (size_t)b * t->Rout[i - 1] * C
                                    : t->x0 + (size_t)b * t->Rin[0];
                sp_gemm_strided(KC, O, Lc, in, 1, (ptrdiff_t)c->stride * C, dY, O, pw, O, 1);
                if (i == 0) break;
                /* dcols (Lc, K*C) = dY Wr^T, overlap-added into the padded input gradient */
                sp_gemm_strided(Lc, KC, O, dY, O, 1, t->wt[i], KC, cols, KC, 0);
                float *Gp = gb[1 - cur];
                memset(Gp, 0, (size_t)t->Rin[i] * C * sizeof(float));
                sp_overlap_add_rows(Gp, (ptrdiff_t)c->stride * C, cols, Lc, KC);
                cur = 1 - cur;
                G = Gp + (size_t)c->pad * C;   /* rows Lin[i] = Lout[i-1] of C channels */
            }
        }
        /* implicit barrier: all partials complete; reduce in thread order */
        for (int i = 0; i < s->n; i++) {
            const EncConvSpec *c = &s->cv[i];
            const int O = c->O, C = c->C, K = c->K, KC = K * C;
            float *gw = sp_params_grad(p, c->iw), *gbias = sp_params_grad(p, c->ib);
#pragma omp for schedule(static) nowait
            for (int j = 0; j < KC + 1; j++) {
                if (j < KC) {
                    const int k = j / C, ci = j % C;
                    for (int o = 0; o < O; o++) {
                        float acc = gw[((size_t)o * C + ci) * K + k];
                        for (int u = 0; u < nt; u++)
                            acc += t->pdw[t->pdw_per * (size_t)u + t->pdw_off[i] + (size_t)j * O + o];
                        gw[((size_t)o * C + ci) * K + k] = acc;
                    }
                } else {
                    for (int o = 0; o < O; o++) {
                        float acc = gbias[o];
                        for (int u = 0; u < nt; u++)
                            acc += t->pdw[t->pdw_per * (size_t)u + t->pdw_off[i] + (size_t)KC * O + o];
                        gbias[o] = acc;
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------ dispatch */
static void cnn_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                        float *feat) {
    const int train = mode == SP_ENC_TRAIN;
    const Cnn *s = e->impl;
    CnnAct *t = a->impl;
    const SpParams *p = &e->params;
    const int L = t->L;
    if (mode == SP_ENC_EVAL) {
        cl_forward_eval(s, t, p, x, B, feat);
        return;
    }
    if (t->cl) {   /* no BN: training and eval-with-gradient are the same transform */
        cl_forward_train(s, t, p, x, B, feat);
        return;
    }
    if (s->ln_input)
        layernorm_forward(t->xin, t->lnm, t->lnr, x, NULL, NULL, B, L, 1e-5f);
    else
        memcpy(t->xin, x, (size_t)B * L * sizeof(float));
    const float *in = t->xin;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        EncConvAct *u = &t->cu[i];
        enc_conv_forward(c, u, p, in, B, train, t->work);
        if (s->pool[i] > 1)
            maxpool1d_forward(t->pooled[i], t->idx[i], u->out, B * c->O, t->Lc[i], s->pool[i]);
        enc_relu_inplace(t->out[i], B, (size_t)c->O * t->Lout[i]);
        in = t->out[i];
    }
    const int l = s->n - 1;
    if (s->flatten)
        linear_forward(feat, t->out[l], sp_params_data(p, s->iwd), sp_params_data(p, s->ibd), B,
                       s->Din, s->Dout);
    else
        global_avgpool1d_forward(feat, t->out[l], B, s->cv[l].O, t->Lout[l]);
}

static void cnn_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Cnn *s = e->impl;
    CnnAct *t = a->impl;
    SpParams *p = &e->params;
    if (t->cl) {
        cl_backward(s, t, p, dfeat, B);
        return;
    }
    const int l = s->n - 1;
    enc_zero(t->dout[l], B, (size_t)s->cv[l].O * t->Lout[l]);
    if (s->flatten)
        linear_backward(t->dout[l], sp_params_grad(p, s->iwd), sp_params_grad(p, s->ibd), dfeat,
                        t->out[l], sp_params_data(p, s->iwd), B, s->Din, s->Dout, t->work);
    else
        global_avgpool1d_backward(t->dout[l], dfeat, B, s->cv[l].O, t->Lout[l]);
    for (int i = l; i >= 0; i--) {
        const EncConvSpec *c = &s->cv[i];
        EncConvAct *u = &t->cu[i];
        enc_relu_mask(t->dout[i], t->out[i], B, (size_t)c->O * t->Lout[i]);
        const float *dpre = t->dout[i];
        if (s->pool[i] > 1) {
            enc_zero(t->dpre[i], B, (size_t)c->O * t->Lc[i]);
            maxpool1d_backward(t->dpre[i], t->dout[i], t->idx[i], B * c->O, t->Lc[i], s->pool[i]);
            dpre = t->dpre[i];
        }
        float *din = NULL;
        if (i > 0) {
            din = t->dout[i - 1];
            enc_zero(din, B, (size_t)c->C * t->Lin[i]);
        }
        enc_conv_backward(c, u, p, din, dpre, i ? t->out[i - 1] : t->xin, B, a->mode == SP_ENC_TRAIN, t->work);
    }
}

const SpEncArch sp_enc_arch_cnn = {
    .name = "cnn",
    .create = cnn_create,
    .init = cnn_init,
    .length_ok = cnn_length_ok,
    .act_create = cnn_act_create,
    .act_free = cnn_act_free,
    .forward = cnn_forward,
    .backward = cnn_backward,
    .flops = cnn_flops,
    .free_impl = cnn_free_impl,
};
