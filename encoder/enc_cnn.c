/* enc_cnn.c - configurable 1D CNN encoder ending in global average pooling.
 *
 *   [LN over the points of each spectrum (no affine; encoder.cnn.layernorm_input)]
 *   n times: conv(C_i -> O_i, K_i, stride_i, pad_i, bias) [-> split BN] -> ReLU
 *            [-> max pool P_i (window = stride = P_i; 0 or 1: none)]
 *   global average pool -> feature (B, O_last)
 * Tensors "conv<i>.weight" (O,C,K), "conv<i>.bias" (O), and with batchnorm
 * "bn<i>.{weight,bias,running_mean,running_var}".
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
};

void enc_cnn_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

typedef struct {
    int n;                       /* layers */
    int pool[CNN_MAX_LAYERS];
    int ln_input;
    EncConvSpec cv[CNN_MAX_LAYERS];
} Cnn;

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
    e->impl = s;
    e->feature_dim = ch[n - 1];
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
}

static int cnn_length_ok(const SpEncoder *e, int L) {
    const Cnn *s = e->impl;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        L = conv1d_out_len(L, c->K, c->stride, c->pad);
        if (L < 1) return 0;
        L /= s->pool[i];
        if (L < 1) return 0;
    }
    return 1;
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
    return f;
}

/* ------------------------------------------------------------ activations */
typedef struct {
    char *arena;
    int n, L;
    float *xin;                       /* (B, L) input (after the optional LN) */
    float *lnm, *lnr;                 /* LN statistics (B) */
    EncConvAct cu[CNN_MAX_LAYERS];
    int Lin[CNN_MAX_LAYERS], Lc[CNN_MAX_LAYERS], Lout[CNN_MAX_LAYERS];
    float *pooled[CNN_MAX_LAYERS];    /* (B,O,Lout) when pooling */
    int *idx[CNN_MAX_LAYERS];
    float *out[CNN_MAX_LAYERS];       /* layer output after ReLU (kept) */
    float *dout[CNN_MAX_LAYERS];      /* gradient w.r.t. out[i] */
    float *dpre[CNN_MAX_LAYERS];      /* gradient w.r.t. the pre-pool map */
    float *work;
    /* Eval-mode fused path (one sample at a time per thread, cache resident):
     * per-thread scratch of ev_per floats: two padded activation buffers,
     * an im2col matrix and a conv output; per-layer affine (bias or folded BN). */
    int nthreads;
    size_t ev_per, ev_buf, ev_cols;
    float *ev;
    float *ev_scale[CNN_MAX_LAYERS], *ev_shift[CNN_MAX_LAYERS];
} CnnAct;

static void cnn_layout(CnnAct *t, EncArena *ar, const Cnn *s, int B, int L) {
    t->n = s->n;
    t->L = L;
    t->xin = enc_take(ar, (size_t)B * L);
    t->lnm = enc_take(ar, (size_t)B);
    t->lnr = enc_take(ar, (size_t)B);
    size_t w = s->ln_input ? layernorm_work_floats(B, L) : 0;
    int Li = L;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        EncConvAct *u = &t->cu[i];
        t->Lin[i] = Li;
        enc_conv_layout(u, ar, c, B, Li);
        t->Lc[i] = u->Lo;
        t->Lout[i] = u->Lo / s->pool[i];
        size_t no = (size_t)B * c->O * t->Lout[i];
        if (s->pool[i] > 1) {
            t->pooled[i] = enc_take(ar, no);
            t->idx[i] = enc_take_int(ar, no);
            t->dpre[i] = enc_take(ar, (size_t)B * c->O * u->Lo);
            t->out[i] = t->pooled[i];
        } else {
            t->pooled[i] = NULL;
            t->idx[i] = NULL;
            t->dpre[i] = NULL;
            t->out[i] = u->out;
        }
        t->dout[i] = enc_take(ar, no);
        size_t v = enc_conv_work_floats(u);
        if (v > w) w = v;
        Li = t->Lout[i];
    }
    t->work = enc_take(ar, w);

    /* fused eval path */
    size_t buf = (size_t)L + 2 * (size_t)s->cv[0].pad, cols = 0, conv = 0;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        size_t in = (size_t)c->C * (t->Lin[i] + 2 * (size_t)c->pad);
        size_t ck = c->C > 1 ? (size_t)c->C * c->K * t->Lc[i] : 0;
        size_t co = (size_t)c->O * t->Lc[i];
        if (in > buf) buf = in;
        if (ck > cols) cols = ck;
        if (co > conv) conv = co;
        t->ev_scale[i] = enc_take(ar, (size_t)c->O);
        t->ev_shift[i] = enc_take(ar, (size_t)c->O);
    }
    t->ev_buf = (buf + 15) & ~(size_t)15;
    t->ev_cols = (cols + 15) & ~(size_t)15;
    t->ev_per = 2 * t->ev_buf + t->ev_cols + ((conv + 15) & ~(size_t)15);
    t->ev = enc_take(ar, t->ev_per * (size_t)t->nthreads);
}

static SpStatus cnn_act_create(SpEncAct *a, const SpEncoder *e) {
    const Cnn *s = e->impl;
    CnnAct *t = sp_calloc(1, sizeof *t, "cnn activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    t->nthreads = a->nthreads;
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

/* ------------------------------------------------------------ fused eval */
/* Per layer: y = pool(relu(scale * conv + shift)) with scale/shift the conv
 * bias or the BN (running statistics) folded into it. One sample at a time
 * per thread keeps every activation in L2; nothing is stored for backward. */
static void ev_affine(const Cnn *s, CnnAct *t, const SpParams *p) {
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        const float *b = sp_params_data(p, c->ib);
        for (int o = 0; o < c->O; o++) {
            if (c->bn) {
                const float *g = sp_params_data(p, c->ig), *be = sp_params_data(p, c->ibeta);
                const float *rm = sp_params_data(p, c->irm), *rv = sp_params_data(p, c->irv);
                double sc = (double)g[o] / sqrt((double)rv[o] + 1e-5);
                t->ev_scale[i][o] = (float)sc;
                t->ev_shift[i][o] = (float)((double)be[o] + sc * ((double)b[o] - (double)rm[o]));
            } else {
                t->ev_scale[i][o] = 1.0f;
                t->ev_shift[i][o] = b[o];
            }
        }
    }
}

/* Direct convolution for one input channel: xp is the padded input row
 * (length >= (Lc-1)*st + K), w (O, K), conv (O, Lc). */
static void ev_conv_c1(float *conv, const float *xp, const float *w, int O, int K, int st,
                       int Lc) {
    for (int o = 0; o < O; o++) {
        float *y = conv + (size_t)o * Lc;
        const float *wo = w + (size_t)o * K;
        if (st == 1) {
            for (int t = 0; t < Lc; t++) y[t] = wo[0] * xp[t];
            for (int k = 1; k < K; k++) {
                const float wk = wo[k];
                const float *xk = xp + k;
                for (int t = 0; t < Lc; t++) y[t] += wk * xk[t];
            }
        } else {
            for (int t = 0; t < Lc; t++) {
                float acc = 0.0f;
                for (int k = 0; k < K; k++) acc += wo[k] * xp[(size_t)t * st + k];
                y[t] = acc;
            }
        }
    }
}

/* im2col from padded rows: cols (C*K, Lc), row (c,k)[t] = xp[c][t*st + k]. */
static void ev_im2col(float *cols, const float *xp, int C, int Lp, int K, int st, int Lc) {
    for (int c = 0; c < C; c++) {
        const float *x = xp + (size_t)c * Lp;
        for (int k = 0; k < K; k++) {
            float *row = cols + ((size_t)c * K + k) * Lc;
            if (st == 1) {
                memcpy(row, x + k, (size_t)Lc * sizeof(float));
            } else {
                for (int t = 0; t < Lc; t++) row[t] = x[(size_t)t * st + k];
            }
        }
    }
}

/* Affine + max pool (window P) + ReLU of conv (O, Lc) into out rows of stride
 * ostride at offset opad (zero padding written around). P = 1: no pool. */
static void ev_post(float *out, int ostride, int opad, const float *conv, const float *scale,
                    const float *shift, int O, int Lc, int P) {
    const int Lo = Lc / P;
    for (int o = 0; o < O; o++) {
        const float a = scale[o], b = shift[o];
        const float *x = conv + (size_t)o * Lc;
        float *y = out + (size_t)o * ostride;
        for (int j = 0; j < opad; j++) y[j] = y[opad + Lo + j] = 0.0f;
        y += opad;
        if (P == 1) {
            for (int t = 0; t < Lo; t++) {
                float v = a * x[t] + b;
                y[t] = v < 0.0f ? 0.0f : v;
            }
        } else if (P == 2) {
            for (int t = 0; t < Lo; t++) {
                float u = a * x[2 * t] + b, v = a * x[2 * t + 1] + b;
                float m = (v > u || v != v) ? v : u;   /* first max; NaN wins */
                y[t] = m < 0.0f ? 0.0f : m;
            }
        } else {
            for (int t = 0; t < Lo; t++) {
                float m = a * x[(size_t)t * P] + b;
                for (int j = 1; j < P; j++) {
                    float v = a * x[(size_t)t * P + j] + b;
                    if (v > m || v != v) m = v;
                }
                y[t] = m < 0.0f ? 0.0f : m;
            }
        }
    }
}

/* Mean over the L positions of each of the O rows (row stride ostride): 16
 * float lanes, then the lanes summed in double (fixed order). */
static void ev_mean_rows(float *feat, const float *x, int O, int L, int stride) {
    for (int o = 0; o < O; o++) {
        const float *r = x + (size_t)o * stride;
        float lane[16] = {0};
        int t = 0;
        for (; t + 16 <= L; t += 16)
            for (int j = 0; j < 16; j++) lane[j] += r[t + j];
        double acc = 0.0;
        for (int j = 0; j < 16; j++) acc += (double)lane[j];
        for (; t < L; t++) acc += (double)r[t];
        feat[o] = (float)(acc / L);
    }
}

static void cnn_forward_eval_fused(const Cnn *s, CnnAct *t, const SpParams *p, const float *x,
                                   int B, float *feat) {
    ev_affine(s, t, p);
    const int L = t->L, D = s->cv[s->n - 1].O;
#pragma omp parallel
    {
        float *scr = t->ev + t->ev_per * (size_t)omp_get_thread_num();
        float *buf[2] = {scr, scr + t->ev_buf};
        float *cols = scr + 2 * t->ev_buf, *conv = cols + t->ev_cols;
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            /* padded input row (LN'd when asked) */
            const EncConvSpec *c0 = &s->cv[0];
            float *in = buf[0];
            const float *xb = x + (size_t)b * L;
            for (int j = 0; j < c0->pad; j++) in[j] = in[c0->pad + L + j] = 0.0f;
            if (s->ln_input) {
                double m = 0.0, v = 0.0;
                for (int j = 0; j < L; j++) m += (double)xb[j];
                m /= L;
                for (int j = 0; j < L; j++) v += ((double)xb[j] - m) * ((double)xb[j] - m);
                float rstd = (float)(1.0 / sqrt(v / L + 1e-5)), mf = (float)m;
                for (int j = 0; j < L; j++) in[c0->pad + j] = (xb[j] - mf) * rstd;
            } else {
                memcpy(in + c0->pad, xb, (size_t)L * sizeof(float));
            }
            int cur = 0;
            for (int i = 0; i < s->n; i++) {
                const EncConvSpec *c = &s->cv[i];
                const int Lc = t->Lc[i], Lp = t->Lin[i] + 2 * c->pad;
                const float *w = sp_params_data(p, c->iw);
                if (c->C == 1) {
                    ev_conv_c1(conv, buf[cur], w, c->O, c->K, c->stride, Lc);
                } else {
                    ev_im2col(cols, buf[cur], c->C, Lp, c->K, c->stride, Lc);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->O, Lc, c->C * c->K,
                                1.0f, w, c->C * c->K, cols, Lc, 0.0f, conv, Lc);
                }
                const int npad = i + 1 < s->n ? s->cv[i + 1].pad : 0;
                const int Lo = t->Lout[i];
                ev_post(buf[1 - cur], Lo + 2 * npad, npad, conv, t->ev_scale[i], t->ev_shift[i],
                        c->O, Lc, s->pool[i]);
                cur = 1 - cur;
            }
            ev_mean_rows(feat + (size_t)b * D, buf[cur], D, t->Lout[s->n - 1], t->Lout[s->n - 1]);
        }
    }
}

static void cnn_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                        float *feat) {
    const int train = mode == SP_ENC_TRAIN;
    const Cnn *s = e->impl;
    CnnAct *t = a->impl;
    const SpParams *p = &e->params;
    const int L = t->L;
    if (mode == SP_ENC_EVAL) {
        cnn_forward_eval_fused(s, t, p, x, B, feat);
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
    global_avgpool1d_forward(feat, t->out[l], B, s->cv[l].O, t->Lout[l]);
}

static void cnn_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Cnn *s = e->impl;
    CnnAct *t = a->impl;
    const SpParams *p = &e->params;
    const int l = s->n - 1;
    enc_zero(t->dout[l], B, (size_t)s->cv[l].O * t->Lout[l]);
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
