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
    /* Eval-mode fused path (one sample at a time per thread, cache resident,
     * channel-last (position, channel) maps): per-thread scratch of ev_per
     * floats: two zero-padded activation buffers and a conv output; per
     * layer the weights reordered to (K, C, O) and the affine (conv bias, or
     * BN with running statistics folded in). */
    int nthreads, infer;
    size_t ev_per, ev_buf, ev_conv;
    float *ev;
    float *ev_w[CNN_MAX_LAYERS];
    float *ev_scale[CNN_MAX_LAYERS], *ev_shift[CNN_MAX_LAYERS];
    size_t ev_flat;                   /* flatten head: per-thread (O, Lp) copy */
} CnnAct;

static void cnn_layout(CnnAct *t, EncArena *ar, const Cnn *s, int B, int L) {
    t->n = s->n;
    t->L = L;
    /* Layer-by-layer path (training, SP_ENC_EVAL_GRAD): not in inference-only
     * contexts, which run the fused path only. */
    const int Bl = t->infer ? 0 : B;
    t->xin = enc_take(ar, (size_t)Bl * L);
    t->lnm = enc_take(ar, (size_t)Bl);
    t->lnr = enc_take(ar, (size_t)Bl);
    size_t w = s->ln_input && !t->infer ? layernorm_work_floats(B, L) : 0;
    int Li = L;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        EncConvAct *u = &t->cu[i];
        t->Lin[i] = Li;
        enc_conv_layout(u, ar, c, Bl, Li, 1);
        u->cv.B = B;
        u->bn.N = B;
        t->Lc[i] = u->Lo;
        t->Lout[i] = u->Lo / s->pool[i];
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
        size_t v = t->infer ? 0 : enc_conv_work_floats(u);
        if (v > w) w = v;
        Li = t->Lout[i];
    }
    if (s->flatten && !t->infer) {
        size_t v = linear_work_floats(B, s->Din, s->Dout);
        if (v > w) w = v;
    }
    t->work = enc_take(ar, w);

    /* fused eval path */
    size_t buf = (size_t)L + 2 * (size_t)s->cv[0].pad, conv = 0;
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        size_t in = (size_t)c->C * (t->Lin[i] + 2 * (size_t)c->pad);
        size_t co = (size_t)c->O * t->Lc[i];
        if (in > buf) buf = in;
        if (co > conv) conv = co;
        t->ev_w[i] = enc_take(ar, (size_t)c->K * c->C * c->O);
        t->ev_scale[i] = enc_take(ar, (size_t)c->O);
        t->ev_shift[i] = enc_take(ar, (size_t)c->O);
    }
    t->ev_buf = (buf + 15) & ~(size_t)15;
    t->ev_conv = (conv + 15) & ~(size_t)15;
    t->ev_flat = s->flatten ? ((size_t)s->Din + 15) & ~(size_t)15 : 0;
    t->ev_per = 2 * t->ev_buf + t->ev_conv + t->ev_flat;
    t->ev = enc_take(ar, t->ev_per * (size_t)t->nthreads);
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

/* ------------------------------------------------------------ fused eval */
/* Per layer: y = pool(relu(scale * conv + shift)) with scale/shift the conv
 * bias or the BN (running statistics) folded into it. One sample at a time
 * per thread keeps every activation in L2; nothing is stored for backward.
 * Maps are channel-last (position t, channel c) with `pad` zero rows above
 * and below, so a convolution is a sum over the K taps of plain GEMMs:
 *   out (Lc, O) = sum_k X[k + t*stride, :] (Lc, C; lda = stride*C) . W_k (C, O)
 * with no im2col copy. */
static void ev_prepare(const Cnn *s, CnnAct *t, const SpParams *p) {
    for (int i = 0; i < s->n; i++) {
        const EncConvSpec *c = &s->cv[i];
        const float *w = sp_params_data(p, c->iw), *b = sp_params_data(p, c->ib);
        float *wk = t->ev_w[i];   /* (K, C, O) */
        for (int o = 0; o < c->O; o++)
            for (int ci = 0; ci < c->C; ci++)
                for (int k = 0; k < c->K; k++)
                    wk[((size_t)k * c->C + ci) * c->O + o] = w[((size_t)o * c->C + ci) * c->K + k];
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

/* One input channel: xp (padded, length >= (Lc-1)*st + K), wk (K, O), conv (Lc, O).
 * Output channels in blocks of 64 held in a local accumulator (registers)
 * across the taps; same summation order (tap 0, then 1..K-1) for any O. */
static void ev_conv_c1(float *restrict conv, const float *restrict xp, const float *restrict wk,
                       int O, int K, int st, int Lc) {
    for (int o0 = 0; o0 < O; o0 += 64) {
        const int no = O - o0 < 64 ? O - o0 : 64;
        for (int t = 0; t < Lc; t++) {
            const float *x = xp + (size_t)t * st;
            float acc[64];
            const float x0 = x[0];
            for (int o = 0; o < no; o++) acc[o] = x0 * wk[o0 + o];
            for (int k = 1; k < K; k++) {
                const float xk = x[k];
                const float *w = wk + (size_t)k * O + o0;
                for (int o = 0; o < no; o++) acc[o] += xk * w[o];
            }
            float *y = conv + (size_t)t * O + o0;
            for (int o = 0; o < no; o++) y[o] = acc[o];
        }
    }
}

/* Affine + max pool (window P over positions) + ReLU of conv (Lc, O) into
 * out (rows of O, opad zero rows above and below). P = 1: no pool. */
static void ev_post(float *out, int opad, const float *conv, const float *scale,
                    const float *shift, int O, int Lc, int P) {
    const int Lo = Lc / P;
    memset(out, 0, sizeof(float) * (size_t)opad * O);
    memset(out + (size_t)(opad + Lo) * O, 0, sizeof(float) * (size_t)opad * O);
    float *y0 = out + (size_t)opad * O;
    for (int t = 0; t < Lo; t++) {
        float *y = y0 + (size_t)t * O;
        const float *x = conv + (size_t)t * P * O;
        for (int o = 0; o < O; o++) y[o] = scale[o] * x[o] + shift[o];
        for (int j = 1; j < P; j++) {
            const float *xj = x + (size_t)j * O;
            for (int o = 0; o < O; o++) {
                float v = scale[o] * xj[o] + shift[o];
                y[o] = (v > y[o] || v != v) ? v : y[o];   /* first max; NaN wins */
            }
        }
        for (int o = 0; o < O; o++) y[o] = y[o] < 0.0f ? 0.0f : y[o];   /* NaN passes */
    }
}

/* Mean over the L rows of x (L, O): float sums in fixed row order per
 * channel, in blocks of 64 rows each added in double. */
static void ev_mean_rows(float *feat, const float *x, int O, int L) {
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

static void cnn_forward_eval_fused(const Cnn *s, CnnAct *t, const SpParams *p, const float *x,
                                   int B, float *feat) {
    ev_prepare(s, t, p);
    const int L = t->L, D = s->cv[s->n - 1].O;
#pragma omp parallel
    {
        float *scr = t->ev + t->ev_per * (size_t)omp_get_thread_num();
        float *buf[2] = {scr, scr + t->ev_buf};
        float *conv = scr + 2 * t->ev_buf;
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            /* padded input (one channel), standardised when asked */
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
                const int Lc = t->Lc[i], C = c->C, O = c->O, st = c->stride;
                if (C == 1) {
                    ev_conv_c1(conv, buf[cur], t->ev_w[i], O, c->K, st, Lc);
                } else {
                    for (int k = 0; k < c->K; k++)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Lc, O, C, 1.0f,
                                    buf[cur] + (size_t)k * C, st * C,
                                    t->ev_w[i] + (size_t)k * C * O, O, k ? 1.0f : 0.0f, conv, O);
                }
                const int npad = i + 1 < s->n ? s->cv[i + 1].pad : 0;
                ev_post(buf[1 - cur], npad, conv, t->ev_scale[i], t->ev_shift[i], O, Lc,
                        s->pool[i]);
                cur = 1 - cur;
            }
            if (s->flatten) {   /* channel-major copy, then the dense layer */
                const int Lp = t->Lout[s->n - 1];
                float *flat = conv + t->ev_conv;
                for (int o = 0; o < D; o++)
                    for (int j = 0; j < Lp; j++) flat[(size_t)o * Lp + j] = buf[cur][(size_t)j * D + o];
                float *fb = feat + (size_t)b * s->Dout;
                memcpy(fb, sp_params_data(p, s->ibd), (size_t)s->Dout * sizeof(float));
                cblas_sgemv(CblasRowMajor, CblasNoTrans, s->Dout, s->Din, 1.0f,
                            sp_params_data(p, s->iwd), s->Din, flat, 1, 1.0f, fb, 1);
            } else {
                ev_mean_rows(feat + (size_t)b * D, buf[cur], D, t->Lout[s->n - 1]);
            }
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
    if (s->flatten)
        linear_forward(feat, t->out[l], sp_params_data(p, s->iwd), sp_params_data(p, s->ibd), B,
                       s->Din, s->Dout);
    else
        global_avgpool1d_forward(feat, t->out[l], B, s->cv[l].O, t->Lout[l]);
}

static void cnn_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Cnn *s = e->impl;
    CnnAct *t = a->impl;
    const SpParams *p = &e->params;
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
