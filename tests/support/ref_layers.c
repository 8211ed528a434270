/* ref_layers.c - straight-loop double-precision reference layers and losses
 * (tests only; see ref_layers.h). Clarity over speed: every formula is the
 * textbook one, written out index by index. */
#include "ref_layers.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_test.h"

static void *ref_alloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) abort();
    return p;
}

double ref_dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void ref_to_double(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

void ref_to_float(float *dst, const double *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

/* ------------------------------------------------------------ test buffers */
float *ref_falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

double *ref_dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

double *ref_dcopy(const float *x, size_t n) {
    double *d = ref_dalloc(n);
    ref_to_double(d, x, n);
    return d;
}

float *ref_frand(size_t n, unsigned long long seed, double lo, double hi) {
    float *p = ref_falloc(n);
    sp_fill_uniform_f(p, n, seed, lo, hi);
    return p;
}

double *ref_drand(size_t n, unsigned long long seed, double lo, double hi) {
    double *p = ref_dalloc(n);
    sp_fill_uniform_d(p, n, seed, lo, hi);
    return p;
}

void ref_expect_accum(const char *name, const float *got, const float *init, const double *ref,
                      size_t n, double k, double rtol, double atol_rel) {
    double *want = ref_dalloc(n);
    for (size_t i = 0; i < n; i++) want[i] = (double)init[i] + k * ref[i];
    double atol = atol_rel * (sp_max_abs_d(ref, n) + sp_max_abs_f(init, n));
    ref_expect_close(name, got, want, n, rtol, atol);
    free(want);
}

/* ------------------------------------------------------------------ conv1d */
static int ref_conv_lo(int L, int K, int stride, int pad) { return (L + 2 * pad - K) / stride + 1; }

void ref_conv1d_forward(double *out, const double *inp, const double *w, const double *bias,
                        int B, int C, int L, int O, int K, int stride, int pad) {
    int Lo = ref_conv_lo(L, K, stride, pad);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++)
            for (int t = 0; t < Lo; t++) {
                double acc = bias ? bias[o] : 0.0;
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < K; k++) {
                        int i = t * stride + k - pad;
                        if (i < 0 || i >= L) continue;
                        acc += w[((size_t)o * C + c) * K + k] * inp[((size_t)b * C + c) * L + i];
                    }
                out[((size_t)b * O + o) * Lo + t] = acc;
            }
}

void ref_conv1d_backward(double *dinp, double *dw, double *dbias, const double *dout,
                         const double *inp, const double *w, int B, int C, int L, int O, int K,
                         int stride, int pad) {
    int Lo = ref_conv_lo(L, K, stride, pad);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++)
            for (int t = 0; t < Lo; t++) {
                double g = dout[((size_t)b * O + o) * Lo + t];
                if (dbias) dbias[o] += g;
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < K; k++) {
                        int i = t * stride + k - pad;
                        if (i < 0 || i >= L) continue;
                        size_t wi = ((size_t)o * C + c) * K + k, xi = ((size_t)b * C + c) * L + i;
                        if (dw) dw[wi] += g * inp[xi];
                        if (dinp) dinp[xi] += g * w[wi];
                    }
            }
}

/* ------------------------------------------------------------------ linear */
void ref_linear_forward(double *out, const double *inp, const double *w, const double *bias, int N,
                        int in, int out_f) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out_f; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < in; i++) acc += inp[(size_t)n * in + i] * w[(size_t)o * in + i];
            out[(size_t)n * out_f + o] = acc;
        }
}

void ref_linear_backward(double *dinp, double *dw, double *dbias, const double *dout,
                         const double *inp, const double *w, int N, int in, int out_f) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out_f; o++) {
            double g = dout[(size_t)n * out_f + o];
            if (dbias) dbias[o] += g;
            for (int i = 0; i < in; i++) {
                if (dw) dw[(size_t)o * in + i] += g * inp[(size_t)n * in + i];
                if (dinp) dinp[(size_t)n * in + i] += g * w[(size_t)o * in + i];
            }
        }
}

/* --------------------------------------------------------------- batchnorm */
#define REF_X(n, c, l) (((size_t)(n) * C + (c)) * L + (l))

static void ref_bn_stats(double *mean, double *var, const double *inp, int N, int C, int L, int S) {
    int per = N / S;
    for (int s = 0; s < S; s++)
        for (int c = 0; c < C; c++) {
            double m = 0;
            for (int j = 0; j < per; j++)
                for (int l = 0; l < L; l++) m += inp[REF_X(j * S + s, c, l)];
            m /= (double)per * L;
            double v = 0;
            for (int j = 0; j < per; j++)
                for (int l = 0; l < L; l++) {
                    double d = inp[REF_X(j * S + s, c, l)] - m;
                    v += d * d;
                }
            v /= (double)per * L;
            mean[s * C + c] = m;
            var[s * C + c] = v;
        }
}

void ref_batchnorm_forward_train(double *out, double *mean, double *var, const double *inp,
                                 const double *gamma, const double *beta, int N, int C, int L,
                                 int S, double eps) {
    ref_bn_stats(mean, var, inp, N, C, L, S);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            int s = n % S;
            double mu = mean[s * C + c], r = 1.0 / sqrt(var[s * C + c] + eps);
            for (int l = 0; l < L; l++) {
                double xh = (inp[REF_X(n, c, l)] - mu) * r;
                out[REF_X(n, c, l)] = (gamma ? gamma[c] : 1.0) * xh + (beta ? beta[c] : 0.0);
            }
        }
}

void ref_batchnorm_running_update(double *rm, double *rv, const double *mean, const double *var,
                                  int N, int C, int L, int S, double momentum) {
    double m = (double)(N / S) * L;
    for (int c = 0; c < C; c++) {
        double am = 0, av = 0;
        for (int s = 0; s < S; s++) {
            am += (1 - momentum) * rm[c] + momentum * mean[s * C + c];
            av += (1 - momentum) * rv[c] + momentum * var[s * C + c] * m / (m - 1);
        }
        rm[c] = am / S;
        rv[c] = av / S;
    }
}

void ref_batchnorm_backward_train(double *dinp, double *dgamma, double *dbeta, const double *dout,
                                  const double *inp, const double *gamma, int N, int C, int L,
                                  int S, double eps) {
    double *mean = ref_alloc(sizeof(double) * S * C), *var = ref_alloc(sizeof(double) * S * C);
    ref_bn_stats(mean, var, inp, N, C, L, S);
    int per = N / S;
    double m = (double)per * L;
    for (int s = 0; s < S; s++)
        for (int c = 0; c < C; c++) {
            double mu = mean[s * C + c], r = 1.0 / sqrt(var[s * C + c] + eps);
            double g = gamma ? gamma[c] : 1.0;
            double sum_d = 0, sum_dx = 0;  /* sum dxhat, sum dxhat * xhat */
            for (int j = 0; j < per; j++)
                for (int l = 0; l < L; l++) {
                    size_t i = REF_X(j * S + s, c, l);
                    double xh = (inp[i] - mu) * r;
                    if (dbeta) dbeta[c] += dout[i];
                    if (dgamma) dgamma[c] += dout[i] * xh;
                    sum_d += dout[i] * g;
                    sum_dx += dout[i] * g * xh;
                }
            if (!dinp) continue;
            for (int j = 0; j < per; j++)
                for (int l = 0; l < L; l++) {
                    size_t i = REF_X(j * S + s, c, l);
                    double xh = (inp[i] - mu) * r;
                    dinp[i] += r / m * (m * dout[i] * g - sum_d - xh * sum_dx);
                }
        }
    free(mean);
    free(var);
}

void ref_batchnorm_forward_eval(double *out, const double *inp, const double *gamma,
                                const double *beta, const double *rm, const double *rv, int N,
                                int C, int L, double eps) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int l = 0; l < L; l++) {
                double xh = (inp[REF_X(n, c, l)] - rm[c]) / sqrt(rv[c] + eps);
                out[REF_X(n, c, l)] = (gamma ? gamma[c] : 1.0) * xh + (beta ? beta[c] : 0.0);
            }
}

void ref_batchnorm_backward_eval(double *dinp, double *dgamma, double *dbeta, const double *dout,
                                 const double *inp, const double *gamma, const double *rm,
                                 const double *rv, int N, int C, int L, double eps) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int l = 0; l < L; l++) {
                size_t i = REF_X(n, c, l);
                double r = 1.0 / sqrt(rv[c] + eps), xh = (inp[i] - rm[c]) * r;
                if (dbeta) dbeta[c] += dout[i];
                if (dgamma) dgamma[c] += dout[i] * xh;
                if (dinp) dinp[i] += dout[i] * (gamma ? gamma[c] : 1.0) * r;
            }
}
#undef REF_X

/* --------------------------------------------------------------- layernorm */
void ref_layernorm_forward(double *out, const double *inp, const double *w, const double *b, int N,
                           int D, double eps) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * D;
        double m = 0, v = 0;
        for (int d = 0; d < D; d++) m += x[d];
        m /= D;
        for (int d = 0; d < D; d++) v += (x[d] - m) * (x[d] - m);
        v /= D;
        double r = 1.0 / sqrt(v + eps);
        for (int d = 0; d < D; d++)
            out[(size_t)n * D + d] = (x[d] - m) * r * (w ? w[d] : 1.0) + (b ? b[d] : 0.0);
    }
}

void ref_layernorm_backward(double *dinp, double *dw, double *db, const double *dout,
                            const double *inp, const double *w, int N, int D, double eps) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * D, *g = dout + (size_t)n * D;
        double m = 0, v = 0;
        for (int d = 0; d < D; d++) m += x[d];
        m /= D;
        for (int d = 0; d < D; d++) v += (x[d] - m) * (x[d] - m);
        v /= D;
        double r = 1.0 / sqrt(v + eps);
        double sum_d = 0, sum_dx = 0;
        for (int d = 0; d < D; d++) {
            double xh = (x[d] - m) * r, dxh = g[d] * (w ? w[d] : 1.0);
            if (dw) dw[d] += g[d] * xh;
            if (db) db[d] += g[d];
            sum_d += dxh;
            sum_dx += dxh * xh;
        }
        if (!dinp) continue;
        for (int d = 0; d < D; d++) {
            double xh = (x[d] - m) * r, dxh = g[d] * (w ? w[d] : 1.0);
            dinp[(size_t)n * D + d] += r / D * (D * dxh - sum_d - xh * sum_dx);
        }
    }
}

/* ------------------------------------------------------------- activations */
void ref_relu_forward(double *out, const double *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : 0.0;
}

void ref_relu_backward(double *dinp, const double *dout, const double *inp, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0 ? dout[i] : 0.0;
}

void ref_leaky_relu_forward(double *out, const double *inp, size_t n, double slope) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : slope * inp[i];
}

void ref_leaky_relu_backward(double *dinp, const double *dout, const double *inp, size_t n,
                             double slope) {
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0 ? dout[i] : slope * dout[i];
}

void ref_softmax_forward(double *out, const double *inp, int N, int D) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * D;
        double mx = x[0], s = 0;
        for (int d = 1; d < D; d++) mx = fmax(mx, x[d]);
        for (int d = 0; d < D; d++) s += exp(x[d] - mx);
        for (int d = 0; d < D; d++) out[(size_t)n * D + d] = exp(x[d] - mx) / s;
    }
}

void ref_softmax_backward(double *dinp, const double *dout, const double *inp, int N, int D) {
    double *y = ref_alloc(sizeof(double) * D);
    for (int n = 0; n < N; n++) {
        ref_softmax_forward(y, inp + (size_t)n * D, 1, D);
        /* dx_i = sum_j g_j dy_j/dx_i = sum_j g_j y_j (delta_ij - y_i) */
        for (int i = 0; i < D; i++) {
            double acc = 0;
            for (int j = 0; j < D; j++)
                acc += dout[(size_t)n * D + j] * y[j] * ((i == j ? 1.0 : 0.0) - y[i]);
            dinp[(size_t)n * D + i] += acc;
        }
    }
    free(y);
}

/* ----------------------------------------------------------------- pooling */
void ref_maxpool1d_forward(double *out, int *idx, const double *inp, int NC, int L, int k) {
    int Lo = L / k;
    for (int r = 0; r < NC; r++)
        for (int t = 0; t < Lo; t++) {
            int best = t * k;
            for (int j = 1; j < k; j++)
                if (inp[(size_t)r * L + t * k + j] > inp[(size_t)r * L + best]) best = t * k + j;
            out[(size_t)r * Lo + t] = inp[(size_t)r * L + best];
            if (idx) idx[(size_t)r * Lo + t] = best;
        }
}

void ref_maxpool1d_backward(double *dinp, const double *dout, const double *inp, int NC, int L,
                            int k) {
    int Lo = L / k;
    for (int r = 0; r < NC; r++)
        for (int t = 0; t < Lo; t++) {
            int best = t * k;
            for (int j = 1; j < k; j++)
                if (inp[(size_t)r * L + t * k + j] > inp[(size_t)r * L + best]) best = t * k + j;
            dinp[(size_t)r * L + best] += dout[(size_t)r * Lo + t];
        }
}

static void ref_bin(int i, int Lin, int Lout, int *a, int *b) {
    *a = (int)floor((double)i * Lin / Lout);
    *b = (int)ceil((double)(i + 1) * Lin / Lout);
}

void ref_adaptive_avgpool1d_forward(double *out, const double *inp, int NC, int Lin, int Lout) {
    for (int r = 0; r < NC; r++)
        for (int i = 0; i < Lout; i++) {
            int a, b;
            ref_bin(i, Lin, Lout, &a, &b);
            double s = 0;
            for (int j = a; j < b; j++) s += inp[(size_t)r * Lin + j];
            out[(size_t)r * Lout + i] = s / (b - a);
        }
}

void ref_adaptive_avgpool1d_backward(double *dinp, const double *dout, int NC, int Lin, int Lout) {
    for (int r = 0; r < NC; r++)
        for (int i = 0; i < Lout; i++) {
            int a, b;
            ref_bin(i, Lin, Lout, &a, &b);
            for (int j = a; j < b; j++) dinp[(size_t)r * Lin + j] += dout[(size_t)r * Lout + i] / (b - a);
        }
}

void ref_global_avgpool1d_forward(double *out, const double *inp, int B, int C, int L) {
    for (size_t r = 0; r < (size_t)B * C; r++) {
        double s = 0;
        for (int j = 0; j < L; j++) s += inp[r * L + j];
        out[r] = s / L;
    }
}

void ref_global_avgpool1d_backward(double *dinp, const double *dout, int B, int C, int L) {
    for (size_t r = 0; r < (size_t)B * C; r++)
        for (int j = 0; j < L; j++) dinp[r * L + j] += dout[r] / L;
}

/* --------------------------------------------------------------------- MHA */
/* Per sample: qkv (T,3E), p (H,T,T), o (T,E). */
static void ref_mha_sample(double *qkv, double *p, double *o, const double *x, const double *w_in,
                           const double *b_in, int T, int E, int H) {
    int dh = E / H;
    double scale = 1.0 / sqrt((double)dh);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < 3 * E; j++) {
            double acc = b_in ? b_in[j] : 0.0;
            for (int e = 0; e < E; e++) acc += w_in[(size_t)j * E + e] * x[(size_t)t * E + e];
            qkv[(size_t)t * 3 * E + j] = acc;
        }
    for (int h = 0; h < H; h++) {
        for (int t = 0; t < T; t++) {
            double *row = p + ((size_t)h * T + t) * T;
            for (int u = 0; u < T; u++) {
                double s = 0;
                for (int d = 0; d < dh; d++)
                    s += qkv[(size_t)t * 3 * E + h * dh + d] * qkv[(size_t)u * 3 * E + E + h * dh + d];
                row[u] = s * scale;
            }
            ref_softmax_forward(row, row, 1, T);
        }
        for (int t = 0; t < T; t++)
            for (int d = 0; d < dh; d++) {
                double acc = 0;
                for (int u = 0; u < T; u++)
                    acc += p[((size_t)h * T + t) * T + u] * qkv[(size_t)u * 3 * E + 2 * E + h * dh + d];
                o[(size_t)t * E + h * dh + d] = acc;
            }
    }
}

void ref_mha_forward(double *out, const double *inp, const double *w_in, const double *b_in,
                     const double *w_out, const double *b_out, int B, int T, int E, int H) {
    double *qkv = ref_alloc(sizeof(double) * T * 3 * E), *p = ref_alloc(sizeof(double) * H * T * T);
    double *o = ref_alloc(sizeof(double) * T * E);
    for (int b = 0; b < B; b++) {
        ref_mha_sample(qkv, p, o, inp + (size_t)b * T * E, w_in, b_in, T, E, H);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < E; i++) {
                double acc = b_out ? b_out[i] : 0.0;
                for (int j = 0; j < E; j++) acc += w_out[(size_t)i * E + j] * o[(size_t)t * E + j];
                out[((size_t)b * T + t) * E + i] = acc;
            }
    }
    free(qkv);
    free(p);
    free(o);
}

void ref_mha_backward(double *dinp, double *dw_in, double *db_in, double *dw_out, double *db_out,
                      const double *dout, const double *inp, const double *w_in,
                      const double *b_in, const double *w_out, int B, int T, int E, int H) {
    int dh = E / H;
    double scale = 1.0 / sqrt((double)dh);
    double *qkv = ref_alloc(sizeof(double) * T * 3 * E), *p = ref_alloc(sizeof(double) * H * T * T);
    double *o = ref_alloc(sizeof(double) * T * E), *dO = ref_alloc(sizeof(double) * T * E);
    double *dqkv = ref_alloc(sizeof(double) * T * 3 * E), *dp = ref_alloc(sizeof(double) * T);
    for (int b = 0; b < B; b++) {
        const double *x = inp + (size_t)b * T * E, *dy = dout + (size_t)b * T * E;
        ref_mha_sample(qkv, p, o, x, w_in, b_in, T, E, H);
        memset(dO, 0, sizeof(double) * T * E);
        memset(dqkv, 0, sizeof(double) * T * 3 * E);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < E; i++) {
                double g = dy[(size_t)t * E + i];
                if (db_out) db_out[i] += g;
                for (int j = 0; j < E; j++) {
                    if (dw_out) dw_out[(size_t)i * E + j] += g * o[(size_t)t * E + j];
                    dO[(size_t)t * E + j] += g * w_out[(size_t)i * E + j];
                }
            }
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const double *pr = p + ((size_t)h * T + t) * T;
                /* dp[u] = dO_t . v_u ; dv_u += p[t,u] dO_t */
                for (int u = 0; u < T; u++) {
                    double s = 0;
                    for (int d = 0; d < dh; d++) {
                        s += dO[(size_t)t * E + h * dh + d] * qkv[(size_t)u * 3 * E + 2 * E + h * dh + d];
                        dqkv[(size_t)u * 3 * E + 2 * E + h * dh + d] += pr[u] * dO[(size_t)t * E + h * dh + d];
                    }
                    dp[u] = s;
                }
                double dot = 0;
                for (int u = 0; u < T; u++) dot += pr[u] * dp[u];
                for (int u = 0; u < T; u++) {
                    double ds = pr[u] * (dp[u] - dot) * scale;
                    for (int d = 0; d < dh; d++) {
                        dqkv[(size_t)t * 3 * E + h * dh + d] += ds * qkv[(size_t)u * 3 * E + E + h * dh + d];
                        dqkv[(size_t)u * 3 * E + E + h * dh + d] += ds * qkv[(size_t)t * 3 * E + h * dh + d];
                    }
                }
            }
        for (int t = 0; t < T; t++)
            for (int j = 0; j < 3 * E; j++) {
                double g = dqkv[(size_t)t * 3 * E + j];
                if (db_in) db_in[j] += g;
                for (int e = 0; e < E; e++) {
                    if (dw_in) dw_in[(size_t)j * E + e] += g * x[(size_t)t * E + e];
                    if (dinp) dinp[((size_t)b * T + t) * E + e] += g * w_in[(size_t)j * E + e];
                }
            }
    }
    free(qkv);
    free(p);
    free(o);
    free(dO);
    free(dqkv);
    free(dp);
}

/* ------------------------------------------------------------------ l2norm */
void ref_l2norm_forward(double *out, const double *inp, int N, int D, double eps) {
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += inp[(size_t)n * D + d] * inp[(size_t)n * D + d];
        double den = fmax(sqrt(s), eps);
        for (int d = 0; d < D; d++) out[(size_t)n * D + d] = inp[(size_t)n * D + d] / den;
    }
}

void ref_l2norm_backward(double *dinp, const double *dout, const double *inp, int N, int D,
                         double eps) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * D, *g = dout + (size_t)n * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += x[d] * x[d];
        double nr = sqrt(s);
        if (nr >= eps && nr > 0) {
            /* d(x_j/|x|)/dx_i = delta_ij/|x| - x_i x_j/|x|^3 */
            for (int i = 0; i < D; i++) {
                double acc = 0;
                for (int j = 0; j < D; j++)
                    acc += g[j] * ((i == j ? 1.0 : 0.0) / nr - x[i] * x[j] / (nr * nr * nr));
                dinp[(size_t)n * D + i] += acc;
            }
        } else {
            for (int i = 0; i < D; i++) dinp[(size_t)n * D + i] += g[i] / eps;
        }
    }
}

/* ------------------------------------------------------------------ losses */
double ref_cross_entropy(double *dlogits, const double *logits, const int *labels, int N, int C,
                         double scale) {
    int nv = 0;
    for (int n = 0; n < N; n++) nv += labels[n] >= 0;
    if (nv == 0) return 0.0;
    double *p = ref_alloc(sizeof(double) * C), loss = 0;
    for (int n = 0; n < N; n++) {
        if (labels[n] < 0) continue;
        ref_softmax_forward(p, logits + (size_t)n * C, 1, C);
        loss += -log(p[labels[n]]);
        if (dlogits)
            for (int c = 0; c < C; c++)
                dlogits[(size_t)n * C + c] += scale * (p[c] - (c == labels[n] ? 1.0 : 0.0)) / nv;
    }
    free(p);
    return loss / nv;
}

/* focal: L = a_t (1 - p_t)^g ce, ce = -log p_t, written as a plain function
 * of x so the derivative below is the textbook chain rule. */
double ref_bce_logits(double *dlogits, const double *logits, const double *targets, int N,
                      double gamma, double alpha, double scale) {
    double loss = 0;
    for (int n = 0; n < N; n++) {
        double x = logits[n], t = targets[n];
        double p = 1.0 / (1.0 + exp(-x));
        double ce = -(t * log(p) + (1 - t) * log(1 - p));
        double dce = p - t;
        double l = ce, dl = dce;
        if (gamma > 0) {
            double pt = p * t + (1 - p) * (1 - t);
            double dpt = p * (1 - p) * (2 * t - 1);
            double f = pow(1 - pt, gamma);
            double df = 1 - pt > 0 ? -gamma * pow(1 - pt, gamma - 1) * dpt : 0.0;
            l = f * ce;
            dl = df * ce + f * dce;
        }
        if (alpha >= 0) {
            double at = alpha * t + (1 - alpha) * (1 - t);
            if (gamma > 0) {
                l *= at;
                dl *= at;
            }
        }
        loss += l;
        if (dlogits) dlogits[n] += scale * dl / N;
    }
    return loss / N;
}

double ref_infonce(double *dq, const double *q, const double *k, const double *queue, int B, int D,
                   int Q, double T, double scale) {
    double *lg = ref_alloc(sizeof(double) * (Q + 1)), loss = 0;
    for (int i = 0; i < B; i++) {
        lg[0] = ref_dot(q + (size_t)i * D, k + (size_t)i * D, D) / T;
        for (int j = 0; j < Q; j++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += q[(size_t)i * D + d] * queue[(size_t)d * Q + j];
            lg[j + 1] = s / T;
        }
        ref_softmax_forward(lg, lg, 1, Q + 1);  /* lg now holds probabilities */
        loss += -log(lg[0]);
        if (!dq) continue;
        for (int d = 0; d < D; d++) {
            double g = (lg[0] - 1.0) * k[(size_t)i * D + d];
            for (int j = 0; j < Q; j++) g += lg[j + 1] * queue[(size_t)d * Q + j];
            dq[(size_t)i * D + d] += scale * g / (T * B);
        }
    }
    free(lg);
    return loss / B;
}

/* --------------------------------------------------------------- gradcheck */
double ref_gradcheck(RefLossFn loss, void *ctx, double *x, size_t n, const double *analytic,
                     const unsigned char *skip, size_t *worst, double *worst_a, double *worst_n) {
    double maxerr = 0;
    int have = 0;
    if (worst) *worst = 0;
    if (worst_a) *worst_a = 0;
    if (worst_n) *worst_n = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i]) continue;
        double x0 = x[i], h = 1e-5 * fmax(1.0, fabs(x0));
        x[i] = x0 + h;
        double fp = loss(ctx);
        x[i] = x0 - h;
        double fm = loss(ctx);
        x[i] = x0;
        double num = (fp - fm) / (2 * h), a = analytic[i];
        double den = fabs(a) + fabs(num);
        double err = den == 0 ? 0 : fabs(a - num) / den;
        if (err > maxerr || !have) {
            have = 1;
            maxerr = err > maxerr ? err : maxerr;
            if (worst) *worst = i;
            if (worst_a) *worst_a = a;
            if (worst_n) *worst_n = num;
        }
    }
    return maxerr;
}

void ref_expect_gradcheck(const char *name, RefLossFn loss, void *ctx, double *x, size_t n,
                          const double *analytic, const unsigned char *skip, double tol) {
    size_t wi = 0;
    double wa = 0, wn = 0;
    double e = ref_gradcheck(loss, ctx, x, n, analytic, skip, &wi, &wa, &wn);
    double h = wi < n ? 1e-5 * fmax(1.0, fabs(x[wi])) : 0;
    ck_assert_msg(e <= tol,
                  "gradcheck %s: max rel err %.3g > %.1g at [%zu]: analytic %.15g numeric %.15g "
                  "(eps %.3g)",
                  name, e, tol, wi, wa, wn, h);
}

double ref_gradcheck_fwd(RefFwdFn fwd, void *ctx, size_t n_out, const double *G, double *x,
                         size_t n, const double *analytic, const unsigned char *skip,
                         size_t *worst, double *worst_a, double *worst_n) {
    double *op = ref_alloc(sizeof(double) * n_out), *om = ref_alloc(sizeof(double) * n_out);
    double maxerr = 0;
    int have = 0;
    if (worst) *worst = 0;
    if (worst_a) *worst_a = 0;
    if (worst_n) *worst_n = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i]) continue;
        double x0 = x[i], h = 1e-5 * fmax(1.0, fabs(x0));
        x[i] = x0 + h;
        fwd(ctx, op);
        x[i] = x0 - h;
        fwd(ctx, om);
        x[i] = x0;
        double d = 0;
        for (size_t k = 0; k < n_out; k++) d += (op[k] - om[k]) * G[k];
        double num = d / (2 * h), a = analytic[i];
        double den = fabs(a) + fabs(num);
        double err = den == 0 ? 0 : fabs(a - num) / den;
        if (err > maxerr || !have) {
            have = 1;
            maxerr = err > maxerr ? err : maxerr;
            if (worst) *worst = i;
            if (worst_a) *worst_a = a;
            if (worst_n) *worst_n = num;
        }
    }
    free(op);
    free(om);
    return maxerr;
}

void ref_expect_gradcheck_fwd(const char *name, RefFwdFn fwd, void *ctx, size_t n_out,
                              const double *G, double *x, size_t n, const double *analytic,
                              const unsigned char *skip, double tol) {
    size_t wi = 0;
    double wa = 0, wn = 0;
    double e = ref_gradcheck_fwd(fwd, ctx, n_out, G, x, n, analytic, skip, &wi, &wa, &wn);
    double h = wi < n ? 1e-5 * fmax(1.0, fabs(x[wi])) : 0;
    ck_assert_msg(e <= tol,
                  "gradcheck %s: max rel err %.3g > %.1g at [%zu]: analytic %.15g numeric %.15g "
                  "(eps %.3g)",
                  name, e, tol, wi, wa, wn, h);
}

void ref_expect_close(const char *name, const float *got, const double *ref, size_t n, double rtol,
                      double atol) {
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], err = fabs(g - r);
        if (!(err <= atol + rtol * fabs(r)) || !isfinite(g)) {
            ck_assert_msg(0, "%s[%zu]: got %.9g, reference %.9g, |err| %.3g (atol %.3g, rtol %.3g)",
                          name, i, g, r, err, atol, rtol);
        }
    }
}

void ref_expect_close_ff(const char *name, const float *got, const float *ref, size_t n,
                         double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], err = fabs(g - r);
        if (!(err <= atol + rtol * fabs(r)) || !isfinite(g)) {
            ck_assert_msg(0, "%s[%zu]: got %.9g, reference %.9g, |err| %.3g (atol %.3g, rtol %.3g)",
                          name, i, g, r, err, atol, rtol);
        }
    }
}
