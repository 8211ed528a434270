/* norm.c - split batch norm (train / eval) and layer norm, forward and backward.
 *
 * Dimensions: batch norm over (N, C, L) with S interleaved splits (split s
 * holds samples n % S == s), m = (N/S)*L elements per (split, channel) group;
 * layer norm over the last axis of (N, D).
 *
 * Statistics are two-pass (mean, then the sum of squared deviations) and
 * accumulated in double with a fixed association (sp_layers_util.h), so they
 * do not depend on the thread count. Every output element and every
 * per-channel statistic is owned by one loop iteration; parameter gradients
 * sum per-(split, channel) partials in split order. Results are therefore
 * bit-identical for any thread count.
 *
 * Two layouts: L > 1 reduces contiguous rows of L; L == 1 (BatchNorm1d on
 * (N, C) rows, e.g. the relation head) reduces over rows for a block of
 * SP_BN_CB channels at a time so the reads stay contiguous.
 * Functions open their own OpenMP region: never call them from inside one.
 * Nothing allocates. */
#include <math.h>
#include <string.h>

#include "sp_layers.h"
#include "sp_layers_util.h"

#define SP_BN_CB 16  /* channels per block on the L == 1 path */

static void bn_check(const SpBatchNorm *s) {
    SP_LAYER_CHECK(s->N > 0 && s->C > 0 && s->L > 0 && s->S >= 1 && s->N % s->S == 0,
                   "batchnorm: bad shape N=%d C=%d L=%d S=%d (N must be a positive multiple of S)",
                   s->N, s->C, s->L, s->S);
}

size_t batchnorm_work_floats(const SpBatchNorm *s) { return 2 * (size_t)s->S * (size_t)s->C; }

static const float *bn_row(const float *x, const SpBatchNorm *s, int n, int c) {
    return x + ((size_t)n * s->C + c) * s->L;
}

void batchnorm_forward_train(float *out, float *mean, float *rstd, const float *inp,
                             const float *gamma, const float *beta, float *running_mean,
                             float *running_var, const SpBatchNorm *s) {
    bn_check(s);
    const int N = s->N, C = s->C, L = s->L, S = s->S, per = N / S;
    const double m = (double)per * L;
    /* Bessel factor for the running variance; undefined for m == 1, where the
     * biased value is kept (PyTorch refuses to train on one value). */
    const double bessel = m > 1 ? m / (m - 1) : 1.0;
    const double mom = (double)s->momentum, eps = (double)s->eps;
    const int nblk = (C + SP_BN_CB - 1) / SP_BN_CB;
    const int nunits = L > 1 ? C : nblk;
#pragma omp parallel for schedule(static)
    for (int u = 0; u < nunits; u++) {
        const int c0 = L > 1 ? u : u * SP_BN_CB;
        const int c1 = L > 1 ? u + 1 : (c0 + SP_BN_CB < C ? c0 + SP_BN_CB : C);
        const int nc = c1 - c0;
        double mu[SP_BN_CB], var[SP_BN_CB];
        double am[SP_BN_CB] = {0}, av[SP_BN_CB] = {0};  /* running-stat sums over splits */
        for (int sp = 0; sp < S; sp++) {
            if (L > 1) {
                double acc = 0.0;
                for (int j = 0; j < per; j++) acc += sp_sum_f(bn_row(inp, s, j * S + sp, c0), (size_t)L);
                mu[0] = acc / m;
                acc = 0.0;
                for (int j = 0; j < per; j++)
                    acc += sp_sumsq_dev_f(bn_row(inp, s, j * S + sp, c0), (size_t)L, mu[0]);
                var[0] = acc / m;
            } else {
                double a[SP_BN_CB] = {0};
                for (int j = 0; j < per; j++) {
                    const float *x = inp + (size_t)(j * S + sp) * C + c0;
                    for (int k = 0; k < nc; k++) a[k] += (double)x[k];
                }
                for (int k = 0; k < nc; k++) mu[k] = a[k] / m;
                for (int k = 0; k < nc; k++) a[k] = 0.0;
                for (int j = 0; j < per; j++) {
                    const float *x = inp + (size_t)(j * S + sp) * C + c0;
                    for (int k = 0; k < nc; k++) {
                        double d = (double)x[k] - mu[k];
                        a[k] += d * d;
                    }
                }
                for (int k = 0; k < nc; k++) var[k] = a[k] / m;
            }
            float mh[SP_BN_CB], ml[SP_BN_CB], sa[SP_BN_CB], sb[SP_BN_CB];
            for (int k = 0; k < nc; k++) {
                const int c = c0 + k;
                mh[k] = (float)mu[k];
                ml[k] = (float)(mu[k] - (double)mh[k]);
                mean[sp * C + c] = mh[k];
                rstd[sp * C + c] = (float)(1.0 / sqrt(var[k] + eps));
                sa[k] = rstd[sp * C + c] * (gamma ? gamma[c] : 1.0f);
                sb[k] = beta ? beta[c] : 0.0f;
                /* rm <- mean_s((1-mom) rm + mom mu_s), rv likewise with the
                 * unbiased var_s * m/(m-1), summed in split order */
                if (running_mean) am[k] += (1.0 - mom) * (double)running_mean[c0 + k] + mom * mu[k];
                if (running_var)
                    av[k] += (1.0 - mom) * (double)running_var[c0 + k] + mom * var[k] * bessel;
            }
            /* y = ((x - mu_hi) - mu_lo) * (rstd gamma) + beta: mu split in two
             * floats, so x - mu keeps full precision even when the variance is
             * tiny relative to the mean (x - mu_hi is exact there). */
            for (int j = 0; j < per; j++) {
                const int n = j * S + sp;
                if (L > 1) {
                    const float *x = bn_row(inp, s, n, c0);
                    float *y = out + ((size_t)n * C + c0) * L;
                    for (int l = 0; l < L; l++) y[l] = ((x[l] - mh[0]) - ml[0]) * sa[0] + sb[0];
                } else {
                    const float *x = inp + (size_t)n * C + c0;
                    float *y = out + (size_t)n * C + c0;
                    for (int k = 0; k < nc; k++) y[k] = ((x[k] - mh[k]) - ml[k]) * sa[k] + sb[k];
                }
            }
        }
        for (int k = 0; k < nc; k++) {
            if (running_mean) running_mean[c0 + k] = (float)(am[k] / S);
            if (running_var) running_var[c0 + k] = (float)(av[k] / S);
        }
    }
}

void batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var,
                            const SpBatchNorm *s) {
    SP_LAYER_CHECK(s->N >= 0 && s->C > 0 && s->L > 0, "batchnorm: bad shape N=%d C=%d L=%d", s->N,
                   s->C, s->L);
    const int N = s->N, C = s->C, L = s->L;
    const double eps = (double)s->eps;
    if (L > 1) {
        const size_t rows = (size_t)N * C;
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const int c = (int)(r % C);
            const float a = (float)((gamma ? (double)gamma[c] : 1.0) / sqrt((double)running_var[c] + eps));
            const float mu = running_mean[c], b = beta ? beta[c] : 0.0f;
            const float *x = inp + r * L;
            float *y = out + r * L;
            for (int l = 0; l < L; l++) y[l] = (x[l] - mu) * a + b;
        }
        return;
    }
#pragma omp parallel
    {
        float a[256];
        for (int c0 = 0; c0 < C; c0 += 256) {
            const int nc = C - c0 < 256 ? C - c0 : 256;
            for (int k = 0; k < nc; k++)
                a[k] = (float)((gamma ? (double)gamma[c0 + k] : 1.0) /
                               sqrt((double)running_var[c0 + k] + eps));
#pragma omp for schedule(static)
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C + c0;
                float *y = out + (size_t)n * C + c0;
                for (int k = 0; k < nc; k++)
                    y[k] = (x[k] - running_mean[c0 + k]) * a[k] + (beta ? beta[c0 + k] : 0.0f);
            }
        }
    }
}

/* dinp += gamma rstd (g - mean(g) - xhat mean(g xhat)) per (split, channel)
 * group; dgamma += sum g xhat, dbeta += sum g (summed over splits in order).
 * work: [S*C] sums of g, then [S*C] sums of g*xhat. */
void batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *mean, const float *rstd,
                        const float *gamma, const SpBatchNorm *s, float *work) {
    bn_check(s);
    const int N = s->N, C = s->C, L = s->L, S = s->S, per = N / S;
    const double m = (double)per * L;
    float *wsum = work, *wdot = work + (size_t)S * C;
    const int nblk = (C + SP_BN_CB - 1) / SP_BN_CB;
    const int nunits = L > 1 ? C : nblk;
#pragma omp parallel for schedule(static)
    for (int u = 0; u < nunits; u++) {
        const int c0 = L > 1 ? u : u * SP_BN_CB;
        const int c1 = L > 1 ? u + 1 : (c0 + SP_BN_CB < C ? c0 + SP_BN_CB : C);
        const int nc = c1 - c0;
        double tg[SP_BN_CB] = {0}, tgx[SP_BN_CB] = {0};  /* totals over splits */
        for (int sp = 0; sp < S; sp++) {
            double sg[SP_BN_CB] = {0}, sgx[SP_BN_CB] = {0};
            if (L > 1) {
                const double mu = (double)mean[sp * C + c0];
                for (int j = 0; j < per; j++) {
                    const int n = j * S + sp;
                    sg[0] += sp_sum_f(bn_row(dout, s, n, c0), (size_t)L);
                    sgx[0] += sp_dot_dev_f(bn_row(dout, s, n, c0), bn_row(inp, s, n, c0), (size_t)L, mu);
                }
            } else {
                double mu[SP_BN_CB];
                for (int k = 0; k < nc; k++) mu[k] = (double)mean[sp * C + c0 + k];
                for (int j = 0; j < per; j++) {
                    const size_t o = (size_t)(j * S + sp) * C + c0;
                    for (int k = 0; k < nc; k++) {
                        sg[k] += (double)dout[o + k];
                        sgx[k] += (double)dout[o + k] * ((double)inp[o + k] - mu[k]);
                    }
                }
            }
            for (int k = 0; k < nc; k++) {
                const int p = sp * C + c0 + k;
                sgx[k] *= (double)rstd[p];  /* sum g * xhat */
                wsum[p] = (float)(sg[k] / m);
                wdot[p] = (float)(sgx[k] / m);
                tg[k] += sg[k];
                tgx[k] += sgx[k];
            }
        }
        for (int k = 0; k < nc; k++) {
            if (dbeta) dbeta[c0 + k] += (float)tg[k];
            if (dgamma) dgamma[c0 + k] += (float)tgx[k];
        }
    }
    if (!dinp) return;
    if (L > 1) {
        const size_t rows = (size_t)N * C;
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const int n = (int)(r / C), c = (int)(r % C), p = (n % S) * C + c;
            const float mu = mean[p], rs = rstd[p], a = rs * (gamma ? gamma[c] : 1.0f);
            const float k1 = wsum[p], k2 = wdot[p];
            const float *x = inp + r * L, *g = dout + r * L;
            float *dx = dinp + r * L;
            for (int l = 0; l < L; l++) dx[l] += a * (g[l] - k1 - (x[l] - mu) * rs * k2);
        }
    } else {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const int p0 = (n % S) * C;
            const size_t o = (size_t)n * C;
            for (int c = 0; c < C; c++) {
                const float mu = mean[p0 + c], rs = rstd[p0 + c];
                const float a = rs * (gamma ? gamma[c] : 1.0f);
                dinp[o + c] += a * (dout[o + c] - wsum[p0 + c] - (inp[o + c] - mu) * rs * wdot[p0 + c]);
            }
        }
    }
}

void batchnorm_backward_eval(float *dinp, float *dgamma, float *dbeta, const float *dout,
                             const float *inp, const float *gamma, const float *running_mean,
                             const float *running_var, const SpBatchNorm *s, float *work) {
    (void)work;
    SP_LAYER_CHECK(s->N >= 0 && s->C > 0 && s->L > 0, "batchnorm: bad shape N=%d C=%d L=%d", s->N,
                   s->C, s->L);
    const int N = s->N, C = s->C, L = s->L;
    const double eps = (double)s->eps;
    const int nblk = (C + SP_BN_CB - 1) / SP_BN_CB;
    const int nunits = L > 1 ? C : nblk;
    /* each unit owns its channels: their dgamma/dbeta and their dinp entries */
#pragma omp parallel for schedule(static)
    for (int u = 0; u < nunits; u++) {
        const int c0 = L > 1 ? u : u * SP_BN_CB;
        const int c1 = L > 1 ? u + 1 : (c0 + SP_BN_CB < C ? c0 + SP_BN_CB : C);
        const int nc = c1 - c0;
        double r[SP_BN_CB], sg[SP_BN_CB] = {0}, sgx[SP_BN_CB] = {0};
        float a[SP_BN_CB];
        for (int k = 0; k < nc; k++) {
            r[k] = 1.0 / sqrt((double)running_var[c0 + k] + eps);
            a[k] = (float)(r[k] * (gamma ? (double)gamma[c0 + k] : 1.0));
        }
        if (L > 1) {
            const double mu = (double)running_mean[c0];
            for (int n = 0; n < N; n++) {
                const size_t o = ((size_t)n * C + c0) * L;
                sg[0] += sp_sum_f(dout + o, (size_t)L);
                sgx[0] += sp_dot_dev_f(dout + o, inp + o, (size_t)L, mu);
                if (dinp)
                    for (int l = 0; l < L; l++) dinp[o + l] += dout[o + l] * a[0];
            }
        } else {
            for (int n = 0; n < N; n++) {
                const size_t o = (size_t)n * C + c0;
                for (int k = 0; k < nc; k++) {
                    sg[k] += (double)dout[o + k];
                    sgx[k] += (double)dout[o + k] * ((double)inp[o + k] - (double)running_mean[c0 + k]);
                    if (dinp) dinp[o + k] += dout[o + k] * a[k];
                }
            }
        }
        for (int k = 0; k < nc; k++) {
            if (dbeta) dbeta[c0 + k] += (float)sg[k];
            if (dgamma) dgamma[c0 + k] += (float)(sgx[k] * r[k]);
        }
    }
}

/* ---------------------------------------------------------------- layernorm */
size_t layernorm_work_floats(int N, int D) {
    (void)N;
    (void)D;
    return 0;  /* no scratch: parameter gradients are reduced by column blocks */
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int D, float eps) {
    SP_LAYER_CHECK(N >= 0 && D > 0, "layernorm: bad shape N=%d D=%d", N, D);
#pragma omp parallel for schedule(static) if ((size_t)N * D >= 16384)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *y = out + (size_t)n * D;
        double mu = sp_sum_f(x, (size_t)D) / D;
        double var = sp_sumsq_dev_f(x, (size_t)D, mu) / D;
        const float fm = (float)mu, r = (float)(1.0 / sqrt(var + (double)eps));
        mean[n] = fm;
        rstd[n] = r;
        if (w && b) {
            for (int d = 0; d < D; d++) y[d] = (x[d] - fm) * r * w[d] + b[d];
        } else if (w) {
            for (int d = 0; d < D; d++) y[d] = (x[d] - fm) * r * w[d];
        } else {
            for (int d = 0; d < D; d++) y[d] = (x[d] - fm) * r + (b ? b[d] : 0.0f);
        }
    }
}

#define SP_LN_CB 64  /* columns per block for the dw/db reduction */

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *mean, const float *rstd, const float *w, int N, int D,
                        float *work) {
    (void)work;
    SP_LAYER_CHECK(N >= 0 && D > 0, "layernorm: bad shape N=%d D=%d", N, D);
    const int par = (size_t)N * D >= 16384;
    if (dinp) {
        /* rows: dinp += rstd (dxh - mean(dxh) - xhat mean(dxh xhat)), dxh = g w */
#pragma omp parallel for schedule(static) if (par)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * D, *g = dout + (size_t)n * D;
            float *dx = dinp + (size_t)n * D;
            const double mu = (double)mean[n], r = (double)rstd[n];
            double a[SP_RED_LANES] = {0}, bsum[SP_RED_LANES] = {0}, ta = 0.0, tb = 0.0;
            int d = 0;
            for (; d + SP_RED_LANES <= D; d += SP_RED_LANES)
                for (int k = 0; k < SP_RED_LANES; k++) {
                    double dxh = (double)g[d + k] * (w ? (double)w[d + k] : 1.0);
                    a[k] += dxh;
                    bsum[k] += dxh * (((double)x[d + k] - mu) * r);
                }
            for (; d < D; d++) {
                double dxh = (double)g[d] * (w ? (double)w[d] : 1.0);
                ta += dxh;
                tb += dxh * (((double)x[d] - mu) * r);
            }
            const float k1 = (float)(sp_red_finish(a, ta) / D), k2 = (float)(sp_red_finish(bsum, tb) / D);
            const float fm = mean[n], fr = rstd[n];
            for (int j = 0; j < D; j++) {
                float dxh = g[j] * (w ? w[j] : 1.0f);
                dx[j] += fr * (dxh - k1 - (x[j] - fm) * fr * k2);
            }
        }
    }
    if (!dw && !db) return;
    /* columns: dw[d] += sum_n g xhat, db[d] += sum_n g, each block of columns
     * owned by one iteration and summed over n in order */
    const int nblk = (D + SP_LN_CB - 1) / SP_LN_CB;
#pragma omp parallel for schedule(static) if (par)
    for (int u = 0; u < nblk; u++) {
        const int d0 = u * SP_LN_CB, nd = D - d0 < SP_LN_CB ? D - d0 : SP_LN_CB;
        double sw[SP_LN_CB] = {0}, sb[SP_LN_CB] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * D + d0, *g = dout + (size_t)n * D + d0;
            const double mu = (double)mean[n], r = (double)rstd[n];
            for (int k = 0; k < nd; k++) {
                sw[k] += (double)g[k] * (((double)x[k] - mu) * r);
                sb[k] += (double)g[k];
            }
        }
        for (int k = 0; k < nd; k++) {
            if (dw) dw[d0 + k] += (float)sw[k];
            if (db) db[d0 + k] += (float)sb[k];
        }
    }
}
