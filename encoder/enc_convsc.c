/* enc_convsc.c - the SpecRRMoco encoder ConvSC_NoFdfwd (reference §3), exactly.
 *
 *   x (B,1,L) -> conv1 (C1,k5,s2) -> splitBN -> ReLU -> maxpool2      (B,C1,L2)
 *             -> conv3 (C3,k5)    -> splitBN -> ReLU -> maxpool2      (B,C3,L4)
 *             -> adaptive avg pool NB -> Linear(NB->T) -> LN(T)        X (B,C3,T)
 *   A_S = MHA over the T tokens of C3 dims (H heads)                  (B,C3,T)
 *   CAM: E = X X^T (C3xC3), Att = softmax_row(-E), AX = Att X
 *   Z = (X + A_S) + (gamma AX + X) -> LN(T) -> conv 1x1 (C3->1) -> splitBN(1) -> ReLU
 *   h (B,T) is the feature.
 * Defaults: C1 64, C3 16, NB 236, T 128, H 2, S 8 (encoder.convsc.*).
 *
 * Dimension letters: B batch, L input length, C1/C3 conv channels, L1..L4
 * lengths after conv1/pool/conv3/pool, NB adaptive-pool bins, T tokens (=
 * embedding width = feature width), H heads.
 * ReLU and max pool commute (ReLU is monotone; on ties both orders give the
 * same value and a zero gradient unless the value is positive, where the
 * first maximum is taken either way), so the ReLU runs on the pooled map.
 * BN + pool + ReLU are fused (stage_*, s1_*): no normalised pre-pool map is
 * stored, conv1's map is recomputed instead of stored, conv3's map is
 * overwritten by its gradient in backward (one backward per forward).
 * Memory per sample at L = 4020: about 1 MB for a training context.
 * Allocation: create / act_create only. Threading: every function opens its
 * own OpenMP regions (through sp_layers.h or below); do not call from inside
 * one.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "enc_convsc_parts.h"
#include "sp_layers.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define BN_EPS 1e-5f
#define BN_MOM 0.1f
#define K1 5            /* conv1 kernel width (stride 2) */

static const SpCfgKey g_keys[] = {
    {"encoder.convsc.conv1_channels", SP_CFG_INT, "64", 1, 4096, NULL,
     "convsc: output channels of conv1 (reference n_feature 64)"},
    {"encoder.convsc.conv3_channels", SP_CFG_INT, "16", 1, CAM_MAX_C, NULL,
     "convsc: output channels of conv3 = attention embedding width (reference O_channel 16)"},
    {"encoder.convsc.bins", SP_CFG_INT, "236", 1, 1000000, NULL,
     "convsc: adaptive average pool bins before the embedding Linear (reference 236)"},
    {"encoder.convsc.embed_dim", SP_CFG_INT, "128", 1, 65536, NULL,
     "convsc: embedding width = attention tokens = feature width (reference 128)"},
    {"encoder.convsc.heads", SP_CFG_INT, "2", 1, 1024, NULL,
     "convsc: attention heads (must divide conv3_channels; reference 2)"},
    {"encoder.convsc.bn_splits", SP_CFG_INT, "8", 1, 1024, NULL,
     "convsc: split-BatchNorm groups in training mode (sample n in group n % S; "
     "training batches must be multiples of S; reference 8)"},
    {"encoder.convsc.bn_gamma_init", SP_CFG_STRING, "\"normal\"", 1, 0, "normal|one",
     "convsc: BatchNorm weight init: normal = N(0, 0.05^2) as the reference, one = 1"},
};

void enc_convsc_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

/* Tensor indices: enc_convsc_parts.h. */
enum { T_COUNT = T_CONVSC_COUNT };

typedef struct {
    ConvscDims d;
    int idx[T_COUNT];
} Convsc;

static int convsc_length_ok(const SpEncoder *e, int L) {
    (void)e;
    return enc_convsc_length_ok(L);
}

static SpStatus convsc_create(SpEncoder *e, const SpConfig *cfg) {
    Convsc s;
    memset(&s, 0, sizeof s);
    SpStatus rc = enc_convsc_dims(&s.d, cfg, "convsc");
    if (rc != SP_OK) return rc;
    if ((rc = enc_convsc_declare(s.idx, &e->params, &s.d)) != SP_OK) return rc;

    Convsc *impl = sp_malloc(sizeof *impl, "convsc spec");
    if (!impl) return SP_ENOMEM;
    *impl = s;
    e->impl = impl;
    e->feature_dim = s.d.T;
    e->batch_multiple = s.d.S;
    return SP_OK;
}

static void convsc_init(SpEncoder *e, SpRng *rng) {
    const Convsc *s = e->impl;
    enc_convsc_init(&e->params, s->idx, &s->d, rng);
}

/* ------------------------------------------------------------ activations */
typedef struct {
    ConvscLens n;
    SpConv1d cv3;
    char *arena;
    ConvscAttn att;                              /* p3 -> Y (enc_convsc_parts.h) */
    ConvscDec dec;                               /* Y -> h */
    /* forward, kept for backward */
    float *xe, *xo, *p1, *c3, *p3;
    unsigned char *w1, *w3;                      /* max-pool choice (0/1) per pooled value */
    double *mu1, *mu3;                           /* stage BN batch means (S*C), double */
    double *ps1;                                 /* stage-1 per-(sample, channel) partials */
    float *r1, *r3;                              /* stage BN batch rstd (S*C) */
    /* backward (c3 is overwritten by its own gradient) */
    float *dp1, *dp3;
    double *k1, *k2;                             /* stage BN backward coefficients (S*C1) */
    float *work;
} ConvscAct;

static void convsc_layout(ConvscAct *t, EncArena *ar, const Convsc *s, int B, int L, int infer,
                          int nthreads) {
    ConvscLens n = enc_convsc_lens(L);
    const ConvscDims *d = &s->d;
    const int Bg = infer ? 0 : B;   /* backward buffers */
    size_t BC1L2 = (size_t)B * d->C1 * n.L2;
    size_t BC3L3 = (size_t)B * d->C3 * n.L3, BC3L4 = (size_t)B * d->C3 * n.L4;
    t->n = n;
    t->cv3 = conv1d_shape(B, d->C1, n.L2, d->C3, 5, 1, 0);

    t->xe = enc_take(ar, (size_t)B * ((L + 1) / 2));
    t->xo = enc_take(ar, (size_t)B * (L / 2));
    t->p1 = enc_take(ar, BC1L2);
    t->w1 = enc_take_u8(ar, BC1L2);
    t->c3 = enc_take(ar, BC3L3);
    t->p3 = enc_take(ar, BC3L4);
    t->w3 = enc_take_u8(ar, BC3L4);
    enc_convsc_attn_layout(&t->att, ar, d, B, !infer, nthreads);
    enc_convsc_dec_layout(&t->dec, ar, d, B, !infer);
    t->mu1 = enc_take_double(ar, (size_t)d->S * d->C1);
    t->ps1 = enc_take_double(ar, (size_t)B * d->C1 * (K1 + 3));
    t->r1 = enc_take(ar, (size_t)d->S * d->C1);
    t->mu3 = enc_take_double(ar, (size_t)d->S * d->C3);
    t->r3 = enc_take(ar, (size_t)d->S * d->C3);
    t->dp1 = enc_take(ar, BC1L2 / B * Bg);
    t->dp3 = enc_take(ar, BC3L4 / B * Bg);
    size_t sc = (size_t)d->S * (d->C1 > d->C3 ? d->C1 : d->C3);
    t->k1 = enc_take_double(ar, sc);
    t->k2 = enc_take_double(ar, sc);

    size_t w = conv1d_work_floats(&t->cv3), v;
    if ((v = enc_convsc_attn_work_floats(&t->att, d, B)) > w) w = v;
    if ((v = enc_convsc_dec_work_floats(&t->dec)) > w) w = v;
    t->work = enc_take(ar, w);
}

static SpStatus convsc_act_create(SpEncAct *a, const SpEncoder *e) {
    const Convsc *s = e->impl;
    ConvscAct *t = sp_calloc(1, sizeof *t, "convsc activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    convsc_layout(t, &ar, s, a->maxB, a->L, a->infer, a->nthreads);
    a->bytes = ar.used;
    if (enc_arena_alloc(&ar, "convsc activations") != SP_OK) {
        free(t);
        return SP_ENOMEM;
    }
    t->arena = ar.base;
    convsc_layout(t, &ar, s, a->maxB, a->L, a->infer, a->nthreads);
    a->impl = t;
    return SP_OK;
}

static void convsc_act_free(SpEncAct *a) {
    ConvscAct *t = a->impl;
    if (t) free(t->arena);
    free(t);
    a->impl = NULL;
}

/* ------------------------------------------------------------ conv stages */
/* conv output c (B, C, Lc) -> split BN (train: batch statistics; eval:
 * running statistics) -> max pool 2 -> ReLU -> p (B, C, Lp = Lc / 2), with
 * the pool choice w (0/1) per pooled value. Fused so that no normalised
 * pre-pool map is stored: the backward recomputes what it needs from c and
 * writes the gradient w.r.t. c over c itself. The normalisation is the same
 * float expression as core's batchnorm (((x - mu_hi) - mu_lo) * rstd gamma +
 * beta; statistics two-pass in double, running statistics as sp_layers.h).
 * ReLU after the pool equals PyTorch's pool after ReLU (see the top). */
typedef struct {
    int B, C, Lc, S;
} Stage;

static inline void stage_pool_row(float *p, unsigned char *w, const float *x, int Lp, float mh,
                                  float ml, float a, float b) {
    for (int t = 0; t < Lp; t++) {
        float u = ((x[2 * t] - mh) - ml) * a + b, v = ((x[2 * t + 1] - mh) - ml) * a + b;
        int second = v > u || v != v;   /* first maximum on ties; NaN wins */
        float m = second ? v : u;
        p[t] = m < 0.0f ? 0.0f : m;     /* ReLU (NaN passes) */
        w[t] = (unsigned char)second;
    }
}

/* The BN transform of one (sample, channel) row as ((x - mh) - ml) * a + beta:
 * q = split * C + channel of the batch statistics (train; the mean split in
 * a high and a low float part, as core's batchnorm), else running statistics. */
static inline void stage_affine(float *mh, float *ml, float *a, int train, int q, int ch,
                                const double *mu, const float *rstd, const float *gamma,
                                const float *rm, const float *rv) {
    if (train) {
        *mh = (float)mu[q];
        *ml = (float)(mu[q] - (double)*mh);
        *a = rstd[q] * gamma[ch];
    } else {
        *mh = rm[ch];
        *ml = 0.0f;
        *a = (float)((double)gamma[ch] / sqrt((double)rv[ch] + (double)BN_EPS));
    }
}

/* Backward of one (split, channel) q from its sums sg = sum dy, sgx = sum dy
 * (x - mean) over m values: k1 = sg / m, k2 = sgx rstd / m (train only), and
 * the split's terms of dbeta (tg) and dgamma (tgx); eval: the running variance rv. */
static inline void stage_split_coeffs(double *k1, double *k2, double *tg, double *tgx, double sg,
                                      double sgx, double m, int train, int q, const float *rstd,
                                      float rv) {
    double r_ = train ? (double)rstd[q] : 1.0 / sqrt((double)rv + (double)BN_EPS);
    sgx *= r_;   /* sum dy * xhat */
    if (train) {
        k1[q] = sg / m;
        k2[q] = sgx / m;
    }
    *tg += sg;
    *tgx += sgx;
}

static void stage_forward(const Stage *g, float *p, unsigned char *w, double *mu, float *rstd,
                          const float *c, const float *gamma, const float *beta, float *rm,
                          float *rv, int train) {
    const int B = g->B, C = g->C, Lc = g->Lc, S = g->S, Lp = Lc / 2, per = B / S;
    if (train) {
        const double m = (double)per * Lc, bessel = m > 1 ? m / (m - 1) : 1.0;
#pragma omp parallel for schedule(static)
        for (int ch = 0; ch < C; ch++) {
            double am = 0.0, av = 0.0;
            for (int sp = 0; sp < S; sp++) {
                double acc = 0.0;
                for (int j = 0; j < per; j++) {
                    const float *x = c + ((size_t)(j * S + sp) * C + ch) * Lc;
                    double a8[8] = {0};
                    int l = 0;
                    for (; l + 8 <= Lc; l += 8)
                        for (int k = 0; k < 8; k++) a8[k] += (double)x[l + k];
                    for (; l < Lc; l++) a8[0] += (double)x[l];
                    for (int k = 0; k < 8; k++) acc += a8[k];
                }
                double mean = acc / m;
                acc = 0.0;
                for (int j = 0; j < per; j++) {
                    const float *x = c + ((size_t)(j * S + sp) * C + ch) * Lc;
                    double a8[8] = {0};
                    int l = 0;
                    for (; l + 8 <= Lc; l += 8)
                        for (int k = 0; k < 8; k++) {
                            double d = (double)x[l + k] - mean;
                            a8[k] += d * d;
                        }
                    for (; l < Lc; l++) {
                        double d = (double)x[l] - mean;
                        a8[0] += d * d;
                    }
                    for (int k = 0; k < 8; k++) acc += a8[k];
                }
                double var = acc / m;
                mu[sp * C + ch] = mean;
                rstd[sp * C + ch] = (float)(1.0 / sqrt(var + (double)BN_EPS));
                am += (1.0 - (double)BN_MOM) * (double)rm[ch] + (double)BN_MOM * mean;
                av += (1.0 - (double)BN_MOM) * (double)rv[ch] + (double)BN_MOM * var * bessel;
            }
            rm[ch] = (float)(am / S);
            rv[ch] = (float)(av / S);
        }
    }
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++) {
            const size_t r = (size_t)b * C + ch;
            float mh, ml, a;
            stage_affine(&mh, &ml, &a, train, (b % S) * C + ch, ch, mu, rstd, gamma, rm, rv);
            stage_pool_row(p + r * Lp, w + r * Lp, c + r * Lc, Lp, mh, ml, a, beta[ch]);
        }
}

/* dp (B, C, Lp): gradient w.r.t. p, already masked by the ReLU. Overwrites
 * c with the gradient w.r.t. c; adds into dgamma, dbeta. train: the batch
 * statistics transform; else the running-statistics one. */
static void stage_backward(const Stage *g, float *c, const float *dp, const unsigned char *w,
                           const double *mu, const float *rstd, const float *gamma,
                           const float *rm, const float *rv, float *dgamma, float *dbeta,
                           double *k1, double *k2, int train) {
    const int B = g->B, C = g->C, Lc = g->Lc, S = g->S, Lp = Lc / 2, per = B / S;
    const double m = (double)per * Lc;
    /* per (split, channel): sum of dy and of dy (x - mu), dy sparse (pool picks) */
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < C; ch++) {
        double tg = 0.0, tgx = 0.0;
        const int nsp = train ? S : 1;
        for (int sp = 0; sp < nsp; sp++) {
            const double mean = train ? mu[sp * C + ch] : (double)rm[ch];
            double sg = 0.0, sgx = 0.0;
            for (int j = 0; j < (train ? per : B); j++) {
                const int b = train ? j * S + sp : j;
                const size_t r = (size_t)b * C + ch;
                const float *x = c + r * Lc, *d = dp + r * Lp;
                const unsigned char *wr = w + r * Lp;
                for (int t = 0; t < Lp; t++) {
                    double dy = d[t];
                    sg += dy;
                    sgx += dy * ((double)x[2 * t + wr[t]] - mean);
                }
            }
            stage_split_coeffs(k1, k2, &tg, &tgx, sg, sgx, m, train, sp * C + ch, rstd, rv[ch]);
        }
        dbeta[ch] += (float)tg;
        dgamma[ch] += (float)tgx;
    }
    /* dx = a (dy - k1 - (x - mu) rstd k2), a = rstd gamma (train);
     * dx = dy gamma / sqrt(rv + eps) (eval). In place over c. */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++) {
            const size_t r = (size_t)b * C + ch;
            float *x = c + r * Lc;
            const float *d = dp + r * Lp;
            const unsigned char *wr = w + r * Lp;
            if (train) {
                const int q = (b % S) * C + ch;
                const float rs = rstd[q], a = rs * gamma[ch];
                const float mh = (float)mu[q], ml = (float)(mu[q] - (double)mh);
                const float f1 = (float)k1[q], f2 = rs * (float)k2[q];
                for (int l = 0; l < Lc; l++) x[l] = a * (-f1 - ((x[l] - mh) - ml) * f2);
                for (int t = 0; t < Lp; t++) x[2 * t + wr[t]] += a * d[t];
            } else {
                const float a = (float)((double)gamma[ch] / sqrt((double)rv[ch] + (double)BN_EPS));
                for (int l = 0; l < Lc; l++) x[l] = 0.0f;
                for (int t = 0; t < Lp; t++) x[2 * t + wr[t]] = a * d[t];
            }
        }
}

/* ------------------------------------------------------------ stage 1 */
/* conv1 (1 -> C1, k5, stride 2, bias) -> split BN -> max pool 2 -> ReLU,
 * fused one step further than stage_*: conv1 costs 5 multiply-adds per
 * value, so it is recomputed in every pass instead of being stored (its map
 * is the largest tensor of the network, B*C1*L1 floats). Passes, each
 * parallel over the samples, with per-(sample, channel) partial sums added
 * in sample order (bit-identical for any thread count):
 *   forward  A (train): shifted sums of conv1 -> batch mean / variance;
 *            B: normalise, pool, ReLU -> p1 (+ the pool choices w1);
 *   backward C (train): sums of dy and dy (y - mean) at the pooled positions;
 *            D: dy -> d(conv1) at every position -> conv1 weight and bias
 *            gradients, accumulated on the fly (no gradient map either).
 * The input is kept deinterleaved (xe[i] = x[2i], xo[i] = x[2i+1]) so that
 * conv1 at position p reads contiguous runs; its value is computed as core's
 * direct C = 1 kernel does (bias, then taps 0..4), identically in every
 * pass. Positions are processed in blocks of S1_BLK (float lanes, added in
 * double per block). */
#define S1_BLK 256

typedef struct {
    int B, C, L, L1, S;
    int Le, Lo;   /* lengths of the even / odd halves of the input */
} Stage1;

/* y[0..n) = conv1 at positions p0..p0+n of one channel. */
static inline void s1_conv_blk(float *y, const float *xe, const float *xo, const float *w,
                               float b, int p0, int n) {
    const float *e0 = xe + p0, *o0 = xo + p0;
    for (int i = 0; i < n; i++) {
        float v = b;
        v += w[0] * e0[i];
        v += w[1] * o0[i];
        v += w[2] * e0[i + 1];
        v += w[3] * o0[i + 1];
        v += w[4] * e0[i + 2];
        y[i] = v;
    }
}

static void s1_split_input(const Stage1 *g, float *xe, float *xo, const float *x) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < g->B; b++) {
        const float *xb = x + (size_t)b * g->L;
        float *e = xe + (size_t)b * g->Le, *o = xo + (size_t)b * g->Lo;
        for (int i = 0; i < g->Le; i++) e[i] = xb[2 * i];
        for (int i = 0; i < g->Lo; i++) o[i] = xb[2 * i + 1];
    }
}

static void s1_forward(const Stage1 *g, float *p, unsigned char *wsel, double *mu, float *rstd,
                       double *ps, const float *xe, const float *xo, const float *w,
                       const float *bias, const float *gamma, const float *beta, float *rm,
                       float *rv, int train) {
    const int B = g->B, C = g->C, L1 = g->L1, S = g->S, Lp = L1 / 2, per = B / S;
    if (train) {
        /* A: sums of (y - shift), (y - shift)^2 with shift = the running mean
         * (the same for every sample): one pass in double is then as exact as
         * two for any realistic mean / std ratio */
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++) {
            const float *e = xe + (size_t)b * g->Le, *o = xo + (size_t)b * g->Lo;
            float yb[S1_BLK];
            for (int ch = 0; ch < C; ch++) {
                const double sh = rm[ch];
                double s1[8] = {0}, s2[8] = {0};
                for (int p0 = 0; p0 < L1; p0 += S1_BLK) {
                    const int n = L1 - p0 < S1_BLK ? L1 - p0 : S1_BLK;
                    s1_conv_blk(yb, e, o, w + (size_t)ch * K1, bias[ch], p0, n);
                    int i = 0;
#if defined(__AVX512F__)
                    /* the 8 double lanes of s1 / s2 in registers (GCC leaves
                     * the loop below scalar); same lanes and operations */
                    {
                        __m512d v1 = _mm512_loadu_pd(s1), v2 = _mm512_loadu_pd(s2);
                        const __m512d vs = _mm512_set1_pd(sh);
                        for (; i + 8 <= n; i += 8) {
                            __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(yb + i)), vs);
                            v1 = _mm512_add_pd(v1, d);
                            v2 = _mm512_add_pd(v2, _mm512_mul_pd(d, d));
                        }
                        _mm512_storeu_pd(s1, v1);
                        _mm512_storeu_pd(s2, v2);
                    }
#endif
                    for (; i + 8 <= n; i += 8)
                        for (int k = 0; k < 8; k++) {
                            double d = (double)yb[i + k] - sh;
                            s1[k] += d;
                            s2[k] += d * d;
                        }
                    for (; i < n; i++) {
                        double d = (double)yb[i] - sh;
                        s1[0] += d;
                        s2[0] += d * d;
                    }
                }
                double t1 = 0.0, t2 = 0.0;
                for (int k = 0; k < 8; k++) {
                    t1 += s1[k];
                    t2 += s2[k];
                }
                ps[((size_t)b * C + ch) * 2] = t1;
                ps[((size_t)b * C + ch) * 2 + 1] = t2;
            }
        }
        const double m = (double)per * L1, bessel = m > 1 ? m / (m - 1) : 1.0;
        for (int ch = 0; ch < C; ch++) {
            double am = 0.0, av = 0.0;
            for (int sp = 0; sp < S; sp++) {
                double t1 = 0.0, t2 = 0.0;
                for (int j = 0; j < per; j++) {
                    const size_t q = ((size_t)(j * S + sp) * C + ch) * 2;
                    t1 += ps[q];
                    t2 += ps[q + 1];
                }
                double md = t1 / m, var = t2 / m - md * md;
                if (var < 0.0) var = 0.0;
                double mean = (double)rm[ch] + md;
                mu[sp * C + ch] = mean;
                rstd[sp * C + ch] = (float)(1.0 / sqrt(var + (double)BN_EPS));
                am += (1.0 - (double)BN_MOM) * (double)rm[ch] + (double)BN_MOM * mean;
                av += (1.0 - (double)BN_MOM) * (double)rv[ch] + (double)BN_MOM * var * bessel;
            }
            rm[ch] = (float)(am / S);
            rv[ch] = (float)(av / S);
        }
    }
    /* B: normalise, pool, ReLU */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *e = xe + (size_t)b * g->Le, *o = xo + (size_t)b * g->Lo;
        float yb[S1_BLK];
        for (int ch = 0; ch < C; ch++) {
            const size_t r = (size_t)b * C + ch;
            float mh, ml, a;
            stage_affine(&mh, &ml, &a, train, (b % S) * C + ch, ch, mu, rstd, gamma, rm, rv);
            const float be = beta[ch];
            float *pr = p + r * Lp;
            unsigned char *wr = wsel + r * Lp;
            for (int t0 = 0; t0 < Lp; t0 += S1_BLK / 2) {
                const int nt = Lp - t0 < S1_BLK / 2 ? Lp - t0 : S1_BLK / 2;
                s1_conv_blk(yb, e, o, w + (size_t)ch * K1, bias[ch], 2 * t0, 2 * nt);
                stage_pool_row(pr + t0, wr + t0, yb, nt, mh, ml, a, be);
            }
        }
    }
}

/* dp (B, C, Lp): gradient w.r.t. p1 before the ReLU; masked in place here
 * (dp = 0 where p1 <= 0, the ReLU's backward, fused into pass C so each row
 * is read from memory once). Adds into the conv1 weight / bias and BN weight
 * / bias gradients. ps: B*C*(K1+3) doubles. */
static void s1_backward(const Stage1 *g, float *dp, const float *p1, const unsigned char *wsel,
                        const double *mu, const float *rstd, double *ps, const float *xe,
                        const float *xo, const float *w, const float *bias, const float *gamma,
                        const float *rm, const float *rv, float *dw, float *db, float *dgamma,
                        float *dbeta, double *k1, double *k2, int train) {
    const int B = g->B, C = g->C, L1 = g->L1, S = g->S, Lp = L1 / 2, per = B / S;
    const double m = (double)per * L1;
    const size_t stride = K1 + 3;   /* per (b, ch): dw[K1], db, sum dy, sum dy (y - mean) */
    /* C: sums over the pooled positions */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *e = xe + (size_t)b * g->Le, *o = xo + (size_t)b * g->Lo;
        float yb[S1_BLK], ys[S1_BLK / 2];
        for (int ch = 0; ch < C; ch++) {
            const size_t r = (size_t)b * C + ch;
            float *d = dp + r * Lp;
            const float *pr = p1 + r * Lp;
            for (int t = 0; t < Lp; t++)
                if (!(pr[t] > 0.0f)) d[t] = 0.0f;   /* ReLU backward */
            const unsigned char *wr = wsel + r * Lp;
            const double mean = train ? mu[(b % S) * C + ch] : (double)rm[ch];
            double sg[8] = {0}, sgx[8] = {0};
            for (int t0 = 0; t0 < Lp; t0 += S1_BLK / 2) {
                const int nt = Lp - t0 < S1_BLK / 2 ? Lp - t0 : S1_BLK / 2;
                s1_conv_blk(yb, e, o, w + (size_t)ch * K1, bias[ch], 2 * t0, 2 * nt);
                for (int t = 0; t < nt; t++) ys[t] = wr[t0 + t] ? yb[2 * t + 1] : yb[2 * t];
                const float *dt = d + t0;
                int t = 0;
#if defined(__AVX512F__)
                {
                    __m512d vg = _mm512_loadu_pd(sg), vgx = _mm512_loadu_pd(sgx);
                    const __m512d vm = _mm512_set1_pd(mean);
                    for (; t + 8 <= nt; t += 8) {
                        __m512d dy = _mm512_cvtps_pd(_mm256_loadu_ps(dt + t));
                        __m512d yv = _mm512_cvtps_pd(_mm256_loadu_ps(ys + t));
                        vg = _mm512_add_pd(vg, dy);
                        vgx = _mm512_add_pd(vgx, _mm512_mul_pd(dy, _mm512_sub_pd(yv, vm)));
                    }
                    _mm512_storeu_pd(sg, vg);
                    _mm512_storeu_pd(sgx, vgx);
                }
#endif
                for (; t + 8 <= nt; t += 8)
                    for (int k = 0; k < 8; k++) {
                        double dy = dt[t + k];
                        sg[k] += dy;
                        sgx[k] += dy * ((double)ys[t + k] - mean);
                    }
                for (; t < nt; t++) {
                    double dy = dt[t];
                    sg[0] += dy;
                    sgx[0] += dy * ((double)ys[t] - mean);
                }
            }
            double t1 = 0.0, t2 = 0.0;
            for (int k = 0; k < 8; k++) {
                t1 += sg[k];
                t2 += sgx[k];
            }
            ps[r * stride + K1 + 1] = t1;
            ps[r * stride + K1 + 2] = t2;
        }
    }
    for (int ch = 0; ch < C; ch++) {
        double tg = 0.0, tgx = 0.0;
        for (int sp = 0; sp < (train ? S : 1); sp++) {
            double sg = 0.0, sgx = 0.0;
            for (int j = 0; j < (train ? per : B); j++) {
                const int b = train ? j * S + sp : j;
                sg += ps[((size_t)b * C + ch) * stride + K1 + 1];
                sgx += ps[((size_t)b * C + ch) * stride + K1 + 2];
            }
            stage_split_coeffs(k1, k2, &tg, &tgx, sg, sgx, m, train, sp * C + ch, rstd, rv[ch]);
        }
        dbeta[ch] += (float)tg;
        dgamma[ch] += (float)tgx;
    }
    /* D: d(conv1) at every position, straight into the conv1 gradients:
     * dw[k] = sum_p dx[p] x[2p + k], db = sum_p dx[p] */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *e = xe + (size_t)b * g->Le, *o = xo + (size_t)b * g->Lo;
        float yb[S1_BLK], dx[S1_BLK];
        for (int ch = 0; ch < C; ch++) {
            const size_t r = (size_t)b * C + ch;
            const float *d = dp + r * Lp;
            const unsigned char *wr = wsel + r * Lp;
            double dacc[K1 + 1] = {0};
            float mh = 0.0f, ml = 0.0f, a, f1 = 0.0f, f2 = 0.0f;
            if (train) {
                const int q = (b % S) * C + ch;
                const float rs = rstd[q];
                a = rs * gamma[ch];
                mh = (float)mu[q];
                ml = (float)(mu[q] - (double)mh);
                f1 = (float)k1[q];
                f2 = rs * (float)k2[q];
            } else {
                /* frozen statistics: d(conv1) = a dy, nonzero at the pool picks only */
                a = (float)((double)gamma[ch] / sqrt((double)rv[ch] + (double)BN_EPS));
            }
            for (int p0 = 0; p0 < L1; p0 += S1_BLK) {
                const int n = L1 - p0 < S1_BLK ? L1 - p0 : S1_BLK;
                /* dy scattered to the pool picks (position 2t + w[t]) */
                const int t0 = p0 / 2, nt = (p0 + n) / 2 - t0 < Lp - t0 ? (p0 + n) / 2 - t0 : Lp - t0;
                int tv = 0;
#if defined(__AVX512F__)
                /* 8 pooled values -> 16 positions at once: each dy goes to the
                 * even or odd lane of its pair (w = 0 / 1), the other gets 0 */
                {
                    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
                    for (; tv + 8 <= nt; tv += 8) {
                        const __m512 dd = _mm512_permutexvar_ps(
                            dup, _mm512_castps256_ps512(_mm256_loadu_ps(d + t0 + tv)));
                        const __m128i wb = _mm_loadl_epi64((const __m128i *)(const void *)(wr + t0 + tv));
                        unsigned x = (unsigned)_mm_movemask_epi8(_mm_slli_epi16(wb, 7)) & 0xffu;
                        x = (x | (x << 4)) & 0x0f0fu;
                        x = (x | (x << 2)) & 0x3333u;
                        x = (x | (x << 1)) & 0x5555u;   /* bit j of w at bit 2j */
                        const __mmask16 pm = (__mmask16)((x << 1) | (x ^ 0x5555u));
                        _mm512_storeu_ps(dx + 2 * tv, _mm512_maskz_mov_ps(pm, dd));
                    }
                }
#endif
                for (int i = 2 * tv; i < n; i++) dx[i] = 0.0f;
                for (int t = tv; t < nt; t++) dx[2 * t + wr[t0 + t]] = d[t0 + t];
                if (train) {
                    s1_conv_blk(yb, e, o, w + (size_t)ch * K1, bias[ch], p0, n);
                    for (int i = 0; i < n; i++) dx[i] = a * (dx[i] - f1 - ((yb[i] - mh) - ml) * f2);
                } else {
                    for (int i = 0; i < n; i++) dx[i] = a * dx[i];
                }
                const float *e0 = e + p0, *o0 = o + p0;
                float acc[K1 + 1][16];
                for (int k = 0; k <= K1; k++)
                    for (int l = 0; l < 16; l++) acc[k][l] = 0.0f;
                int i = 0;
#if defined(__AVX512F__)
                /* the 6 x 16 float accumulators in registers (GCC keeps the
                 * array below on the stack); same lanes and operations */
                {
                    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
                    for (; i + 16 <= n; i += 16) {
                        const __m512 v = _mm512_loadu_ps(dx + i);
                        a0 = _mm512_add_ps(a0, _mm512_mul_ps(v, _mm512_loadu_ps(e0 + i)));
                        a1 = _mm512_add_ps(a1, _mm512_mul_ps(v, _mm512_loadu_ps(o0 + i)));
                        a2 = _mm512_add_ps(a2, _mm512_mul_ps(v, _mm512_loadu_ps(e0 + i + 1)));
                        a3 = _mm512_add_ps(a3, _mm512_mul_ps(v, _mm512_loadu_ps(o0 + i + 1)));
                        a4 = _mm512_add_ps(a4, _mm512_mul_ps(v, _mm512_loadu_ps(e0 + i + 2)));
                        a5 = _mm512_add_ps(a5, v);
                    }
                    _mm512_storeu_ps(acc[0], a0);
                    _mm512_storeu_ps(acc[1], a1);
                    _mm512_storeu_ps(acc[2], a2);
                    _mm512_storeu_ps(acc[3], a3);
                    _mm512_storeu_ps(acc[4], a4);
                    _mm512_storeu_ps(acc[5], a5);
                }
#endif
                for (; i + 16 <= n; i += 16)
                    for (int l = 0; l < 16; l++) {
                        const float v = dx[i + l];
                        acc[0][l] += v * e0[i + l];
                        acc[1][l] += v * o0[i + l];
                        acc[2][l] += v * e0[i + l + 1];
                        acc[3][l] += v * o0[i + l + 1];
                        acc[4][l] += v * e0[i + l + 2];
                        acc[5][l] += v;
                    }
                for (; i < n; i++) {
                    const float v = dx[i];
                    acc[0][0] += v * e0[i];
                    acc[1][0] += v * o0[i];
                    acc[2][0] += v * e0[i + 1];
                    acc[3][0] += v * o0[i + 1];
                    acc[4][0] += v * e0[i + 2];
                    acc[5][0] += v;
                }
                for (int k = 0; k <= K1; k++)
                    for (int l = 0; l < 16; l++) dacc[k] += (double)acc[k][l];
            }
            for (int k = 0; k <= K1; k++) ps[r * stride + k] = dacc[k];
        }
    }
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < C; ch++) {
        double sacc[K1 + 1] = {0};
        for (int b = 0; b < B; b++)
            for (int k = 0; k <= K1; k++) sacc[k] += ps[((size_t)b * C + ch) * stride + k];
        for (int k = 0; k < K1; k++) dw[(size_t)ch * K1 + k] += (float)sacc[k];
        db[ch] += (float)sacc[K1];
    }
}

static void convsc_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                           float *feat) {
    const int train = mode == SP_ENC_TRAIN;
    const Convsc *s = e->impl;
    ConvscAct *t = a->impl;
    const SpParams *p = &e->params;
    t->cv3.B = B;   /* contexts are sized for maxB */
    const ConvscLens n = t->n;
    const int C1 = s->d.C1, C3 = s->d.C3;
    const int *ix = s->idx;
#define D(k) sp_params_data(p, ix[k])

    /* conv1 -> BN -> pool -> ReLU (x is kept, deinterleaved: stage 1
     * recomputes conv1 from it) */
    const Stage1 g1 = {B, C1, a->L, n.L1, s->d.S, (a->L + 1) / 2, a->L / 2};
    s1_split_input(&g1, t->xe, t->xo, x);
    const Stage g3 = {B, C3, n.L3, s->d.S};
    s1_forward(&g1, t->p1, t->w1, t->mu1, t->r1, t->ps1, t->xe, t->xo, D(T_C1W), D(T_C1B),
               D(T_BN1W), D(T_BN1B), D(T_BN1RM), D(T_BN1RV), train);

    /* conv3 -> BN -> pool -> ReLU */
    conv1d_forward(t->c3, t->p1, D(T_C3W), D(T_C3B), &t->cv3, t->work);
    stage_forward(&g3, t->p3, t->w3, t->mu3, t->r3, t->c3, D(T_BN3W), D(T_BN3B), D(T_BN3RM),
                  D(T_BN3RV), train);

    /* adaptive pool -> embedding -> MHA + CAM -> fusion -> LN: Y (B*C3, T) */
    enc_convsc_attn_forward(&t->att, p, ix, &s->d, t->p3, B, n.L4, t->work);
    /* dec_conv3 (1x1, C3 -> 1) -> BN(1) -> ReLU */
    enc_convsc_dec_forward(&t->dec, p, ix, t->att.Y, B, train, feat, t->work);
#undef D
}

static void convsc_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Convsc *s = e->impl;
    ConvscAct *t = a->impl;
    const SpParams *p = &e->params;
    t->cv3.B = B;   /* contexts are sized for maxB */
    const ConvscLens n = t->n;
    const int C1 = s->d.C1, C3 = s->d.C3;
    const int *ix = s->idx;
    const int train = a->mode == SP_ENC_TRAIN;
#define D(k) sp_params_data(p, ix[k])
#define G(k) sp_params_grad(p, ix[k])

    /* ReLU -> BN(1) -> dec_conv3 -> LN2 -> CAM / MHA -> LN1 -> embedding -> adaptive pool */
    enc_convsc_dec_backward(&t->dec, p, ix, dfeat, t->att.Y, t->att.dY, B, train, t->work);
    enc_convsc_attn_backward(&t->att, p, ix, &s->d, t->dp3, B, n.L4, t->work);

    /* ReLU -> pool -> BN -> conv3 (c3 becomes its gradient) */
    const Stage1 g1 = {B, C1, a->L, n.L1, s->d.S, (a->L + 1) / 2, a->L / 2};
    const Stage g3 = {B, C3, n.L3, s->d.S};
    enc_relu_mask(t->dp3, t->p3, B, (size_t)C3 * n.L4);
    stage_backward(&g3, t->c3, t->dp3, t->w3, t->mu3, t->r3, D(T_BN3W), D(T_BN3RM), D(T_BN3RV),
                   G(T_BN3W), G(T_BN3B), t->k1, t->k2, train);
    enc_zero(t->dp1, B, (size_t)C1 * n.L2);
    conv1d_backward(t->dp1, G(T_C3W), G(T_C3B), t->c3, t->p1, D(T_C3W), &t->cv3, t->work);

    /* ReLU (masked inside s1_backward) -> pool -> BN -> conv1 (no input gradient) */
    s1_backward(&g1, t->dp1, t->p1, t->w1, t->mu1, t->r1, t->ps1, t->xe, t->xo, D(T_C1W), D(T_C1B),
                D(T_BN1W), D(T_BN1RM), D(T_BN1RV), G(T_C1W), G(T_C1B), G(T_BN1W), G(T_BN1B), t->k1,
                t->k2, train);
#undef D
#undef G
}

static double convsc_flops(const SpEncoder *e, int L) {
    const Convsc *s = e->impl;
    return 2.0 * enc_convsc_macs(&s->d, L);
}

const SpEncArch sp_enc_arch_convsc = {
    .name = "convsc",
    .create = convsc_create,
    .init = convsc_init,
    .length_ok = convsc_length_ok,
    .act_create = convsc_act_create,
    .act_free = convsc_act_free,
    .forward = convsc_forward,
    .backward = convsc_backward,
    .flops = convsc_flops,
    .free_impl = enc_free_impl,
};
