/* conv1d.c - 1D convolution (cross-correlation, zero padding) as im2col +
 * single-threaded sgemm per sample, parallel over the batch (policy A).
 *
 * Dimensions: B batch, C input channels, L input length, O output channels,
 * K kernel width, Lo output length; CK = C*K is the im2col row count.
 * inp (B, C, L), w (O, C, K) == (O, CK) row-major, bias (O), out (B, O, Lo).
 *
 * Work (conv1d_work_floats), per thread t of the region:
 *   cols  [CK * Lo]      im2col matrix, reused as dcols in backward
 *   part  [O*CK + O]     this thread's partial dw and dbias (backward only)
 *   ph    [L + stride]   the input row split into stride phases (C == 1 path)
 * Forward and dinp are owned per sample (bit-identical for any thread count);
 * dw/dbias are per-thread partials added in thread order after the loop.
 *
 * Tap path (stride 1, C > 1, K > 1, AVX-512 build: sp_gemm_strided_fast()):
 * no im2col copy and no col2im; every tap k is one register-blocked product
 * on the rows of the input read in place (sp_kernels.h):
 *   forward  out_b (O, Lo) = bias + sum_k W_k (O, C) . inp_b[:, t + k - pad];
 *   dinp     dinp_b[:, t + k - pad] += W_k^T (C, O) . dout_b (O, Lo);
 *   dw       pdwT[k] (C, O) += inp_b[:, t + k - pad] (C, Lo) . dout_b^T (Lo, O)
 *            (dout_b transposed into `cols`; the partial kept as [k][c][o]
 *            and transposed to (O, C, K) by the reduction).
 * The narrow (O x Lo) products of a convolution with few output channels run
 * about twice as fast as im2col + sgemm. Different summation order from the
 * im2col path (both within float rounding of the double reference).
 * Nothing here allocates. Functions open their own parallel region: never
 * call them from inside one. */
#include <string.h>

#include "sp_blas.h"
#include "sp_kernels.h"
#include "sp_layers.h"
#include "sp_layers_util.h"

int conv1d_out_len(int L, int K, int stride, int pad) {
    if (L <= 0 || K <= 0 || stride <= 0 || pad < 0) return 0;
    long span = (long)L + 2L * pad - K;
    if (span < 0) return 0;
    return (int)(span / stride + 1);
}

SpConv1d conv1d_shape(int B, int C, int L, int O, int K, int stride, int pad) {
    SpConv1d s = {B, C, L, O, K, stride, pad, conv1d_out_len(L, K, stride, pad)};
    return s;
}

/* The 1x1 stride-1 unpadded case needs no im2col: cols == the input. */
static int conv1d_is_pointwise(const SpConv1d *s) {
    return s->K == 1 && s->stride == 1 && s->pad == 0;
}

/* floats of scratch per thread: cols, partial dw + dbias, stride phases */
static size_t conv1d_per_thread(const SpConv1d *s) {
    const size_t ck = (size_t)s->C * s->K;
    return ck * (size_t)s->Lo + (size_t)s->O * ck + (size_t)s->O + (size_t)s->L + (size_t)s->stride;
}

size_t conv1d_work_floats(const SpConv1d *s) {
    return conv1d_per_thread(s) * (size_t)sp_layer_threads();
}

static void conv1d_check(const SpConv1d *s) {
    SP_LAYER_CHECK(s->B >= 0 && s->C > 0 && s->L > 0 && s->O > 0 && s->K > 0 && s->stride > 0 &&
                       s->pad >= 0,
                   "conv1d: bad shape B=%d C=%d L=%d O=%d K=%d stride=%d pad=%d", s->B, s->C,
                   s->L, s->O, s->K, s->stride, s->pad);
    SP_LAYER_CHECK(s->Lo == conv1d_out_len(s->L, s->K, s->stride, s->pad) && s->Lo > 0,
                   "conv1d: Lo=%d inconsistent with L=%d K=%d stride=%d pad=%d", s->Lo, s->L,
                   s->K, s->stride, s->pad);
}

/* Output positions t in [*t0, *t1) read a valid input index i = t*stride + k - pad. */
static void conv1d_valid_range(const SpConv1d *s, int k, int *t0, int *t1) {
    int off = k - s->pad;  /* i = t*stride + off */
    int lo = 0;
    if (off < 0) lo = (-off + s->stride - 1) / s->stride;
    int hi;  /* last t with t*stride + off <= L-1, plus one */
    if (s->L - 1 - off < 0) hi = 0;
    else hi = (s->L - 1 - off) / s->stride + 1;
    if (hi > s->Lo) hi = s->Lo;
    if (lo > hi) lo = hi;
    *t0 = lo;
    *t1 = hi;
}

/* cols (CK, Lo) <- im2col of one sample inp_b (C, L). */
static void conv1d_im2col(float *cols, const float *inp_b, const SpConv1d *s) {
    const int Lo = s->Lo, st = s->stride;
    for (int c = 0; c < s->C; c++) {
        const float *x = inp_b + (size_t)c * s->L;
        for (int k = 0; k < s->K; k++) {
            float *row = cols + ((size_t)c * s->K + k) * Lo;
            int t0, t1;
            conv1d_valid_range(s, k, &t0, &t1);
            for (int t = 0; t < t0; t++) row[t] = 0.0f;
            const int off = k - s->pad;  /* input index t*st + off, >= 0 for t >= t0 */
            if (st == 1) {
                if (t1 > t0) memcpy(row + t0, x + t0 + off, sizeof(float) * (size_t)(t1 - t0));
            } else if (st == 2) {
                for (int t = t0; t < t1; t++) row[t] = x[2 * t + off];
            } else {
                for (int t = t0; t < t1; t++) row[t] = x[(size_t)t * st + off];
            }
            for (int t = t1; t < Lo; t++) row[t] = 0.0f;
        }
    }
}

/* dinp_b (C, L) += col2im(dcols (CK, Lo)): each thread owns its sample. */
static void conv1d_col2im_add(float *dinp_b, const float *dcols, const SpConv1d *s) {
    const int Lo = s->Lo, st = s->stride;
    for (int c = 0; c < s->C; c++) {
        float *dx = dinp_b + (size_t)c * s->L;
        for (int k = 0; k < s->K; k++) {
            const float *row = dcols + ((size_t)c * s->K + k) * Lo;
            int t0, t1;
            conv1d_valid_range(s, k, &t0, &t1);
            const int off = k - s->pad;
            if (st == 1) {
                for (int t = t0; t < t1; t++) dx[t + off] += row[t];
            } else {
                for (int t = t0; t < t1; t++) dx[(size_t)t * st + off] += row[t];
            }
        }
    }
}

/* ------------------------------------------------------------ C == 1 path
 * The first layer sees raw spectra (C = 1): the GEMM's inner dimension would
 * be only K, which OpenBLAS packs poorly, and stride 2 makes the taps a
 * gather. The row is split into its stride phases (ph[p][j] = x[j*st + p]) so
 * every tap k reads a contiguous run: x[t*st + k - pad] = ph[p_k][t + q_k]
 * with k - pad = q_k*st + p_k, 0 <= p_k < st. Interior outputs [ti0, ti1)
 * (all taps inside the row) run vectorised loops; the few edge outputs take
 * the checked path. Same summation order everywhere: bias, then k = 0..K-1. */
typedef struct {
    const float *ph;  /* phases, np floats each (the row itself when st == 1) */
    int np, ti0, ti1;
} ConvC1;

static ConvC1 conv1d_c1_prepare(float *scratch, const float *x, const SpConv1d *s) {
    const int st = s->stride, L = s->L, K = s->K, pad = s->pad;
    ConvC1 c;
    if (st == 1) {
        c.ph = x;
        c.np = L;
    } else {
        c.np = (L + st - 1) / st;
        for (int p = 0; p < st; p++) {
            float *dst = scratch + (size_t)p * c.np;
            int j = 0;
            for (; j * st + p < L; j++) dst[j] = x[(size_t)j * st + p];
            for (; j < c.np; j++) dst[j] = 0.0f;
        }
        c.ph = scratch;
    }
    /* interior: t*st - pad >= 0 and t*st - pad + K - 1 <= L - 1 */
    c.ti0 = (pad + st - 1) / st;
    c.ti1 = (L - K + pad) >= 0 ? (L - K + pad) / st + 1 : 0;
    if (c.ti1 > s->Lo) c.ti1 = s->Lo;
    if (c.ti0 > c.ti1) c.ti0 = c.ti1;
    return c;
}

/* tap k reads ph[base + t + q] for interior t */
static void conv1d_c1_tap(const SpConv1d *s, const ConvC1 *c, int k, size_t *base, int *q) {
    const int off = k - s->pad, st = s->stride;
    int qq = off >= 0 ? off / st : -((-off + st - 1) / st);  /* floor(off / st) */
    *q = qq;
    *base = (size_t)(off - qq * st) * (size_t)c->np;
}

static float conv1d_c1_edge(const float *wo, float b0, const float *x, int t, const SpConv1d *s) {
    float acc = b0;
    for (int k = 0; k < s->K; k++) {
        int i = t * s->stride + k - s->pad;
        if (i >= 0 && i < s->L) acc += wo[k] * x[i];
    }
    return acc;
}

static void conv1d_forward_c1(float *out_b, const float *x, const float *w, const float *bias,
                              const SpConv1d *s, float *scratch) {
    const int K = s->K, Lo = s->Lo;
    const ConvC1 c = conv1d_c1_prepare(scratch, x, s);
    for (int o = 0; o < s->O; o++) {
        const float *wo = w + (size_t)o * K;
        const float b0 = bias ? bias[o] : 0.0f;
        float *y = out_b + (size_t)o * Lo;
        for (int t = 0; t < c.ti0; t++) y[t] = conv1d_c1_edge(wo, b0, x, t, s);
        for (int t = c.ti0; t < c.ti1; t++) y[t] = b0;
        for (int k = 0; k < K; k++) {
            size_t base;
            int q;
            conv1d_c1_tap(s, &c, k, &base, &q);
            const float wk = wo[k];
            const int n = c.ti1 - c.ti0;
            if (n <= 0) continue;
            const float *src = c.ph + base + (size_t)(c.ti0 + q);  /* ti0 + q >= 0 */
            float *yi = y + c.ti0;
            for (int t = 0; t < n; t++) yi[t] += wk * src[t];
        }
        for (int t = c.ti1; t < Lo; t++) y[t] = conv1d_c1_edge(wo, b0, x, t, s);
    }
}

/* sum g[i] x[i] for 4 rows g0..g3 sharing x: 16 float lanes per row (one
 * vector register each), combined in double. Fixed association. */
#define SP_C1_LANES 16
static void conv1d_dot4(double out[4], const float *g0, const float *g1, const float *g2,
                        const float *g3, const float *x, size_t n) {
    float a0[SP_C1_LANES] = {0}, a1[SP_C1_LANES] = {0}, a2[SP_C1_LANES] = {0},
          a3[SP_C1_LANES] = {0};
    const size_t nv = n - n % SP_C1_LANES;
    for (size_t i = 0; i < nv; i += SP_C1_LANES)
        for (int l = 0; l < SP_C1_LANES; l++) {
            const float xv = x[i + l];
            a0[l] += g0[i + l] * xv;
            a1[l] += g1[i + l] * xv;
            a2[l] += g2[i + l] * xv;
            a3[l] += g3[i + l] * xv;
        }
    double r[4] = {0, 0, 0, 0};
    for (int l = 0; l < SP_C1_LANES; l++) {
        r[0] += (double)a0[l];
        r[1] += (double)a1[l];
        r[2] += (double)a2[l];
        r[3] += (double)a3[l];
    }
    for (size_t i = nv; i < n; i++) {
        r[0] += (double)g0[i] * (double)x[i];
        r[1] += (double)g1[i] * (double)x[i];
        r[2] += (double)g2[i] * (double)x[i];
        r[3] += (double)g3[i] * (double)x[i];
    }
    for (int j = 0; j < 4; j++) out[j] = r[j];
}

/* pdw (O, K) += sum_t dout_b[o, t] x[t*st + k - pad] */
static void conv1d_dw_c1(float *pdw, const float *dout_b, const float *x, const SpConv1d *s,
                         float *scratch) {
    const int K = s->K, Lo = s->Lo, O = s->O;
    const ConvC1 c = conv1d_c1_prepare(scratch, x, s);
    const int n = c.ti1 - c.ti0;
    for (int k = 0; k < K; k++) {
        size_t base;
        int q;
        conv1d_c1_tap(s, &c, k, &base, &q);
        const float *src = n > 0 ? c.ph + base + (size_t)(c.ti0 + q) : c.ph;
        for (int o0 = 0; o0 < O; o0 += 4) {
            const float *g[4];
            for (int j = 0; j < 4; j++) g[j] = dout_b + (size_t)(o0 + j < O ? o0 + j : O - 1) * Lo;
            double acc[4] = {0, 0, 0, 0};
            if (n > 0) conv1d_dot4(acc, g[0] + c.ti0, g[1] + c.ti0, g[2] + c.ti0, g[3] + c.ti0, src, (size_t)n);
            for (int j = 0; j < 4 && o0 + j < O; j++) {
                for (int t = 0; t < c.ti0; t++) {
                    int i = t * s->stride + k - s->pad;
                    if (i >= 0 && i < s->L) acc[j] += (double)g[j][t] * (double)x[i];
                }
                for (int t = c.ti1; t < Lo; t++) {
                    int i = t * s->stride + k - s->pad;
                    if (i >= 0 && i < s->L) acc[j] += (double)g[j][t] * (double)x[i];
                }
                pdw[(size_t)(o0 + j) * K + k] += (float)acc[j];
            }
        }
    }
}

/* ------------------------------------------------------------ tap path */
static int conv1d_use_taps(const SpConv1d *s) {
    return s->stride == 1 && s->C > 1 && s->K > 1 && s->O <= s->C * s->K && sp_gemm_strided_fast();
}

static void conv1d_forward_taps(float *out_b, const float *inp_b, const float *w, const float *bias,
                                const SpConv1d *s) {
    const int Lo = s->Lo, CK = s->C * s->K;
    for (int o = 0; o < s->O; o++) {
        float *y = out_b + (size_t)o * Lo;
        const float b0 = bias ? bias[o] : 0.0f;
        for (int t = 0; t < Lo; t++) y[t] = b0;
    }
    for (int k = 0; k < s->K; k++) {
        int t0, t1;
        conv1d_valid_range(s, k, &t0, &t1);
        if (t1 <= t0) continue;
        /* out[o, t] += sum_c w[o, c, k] inp[c, t + k - pad] */
        sp_gemm_strided(s->O, t1 - t0, s->C, w + k, CK, s->K, inp_b + t0 + k - s->pad, s->L,
                        out_b + t0, Lo, 1);
    }
}

/* dinp_b (C, L) += sum_k W_k^T . dout_b, shifted */
static void conv1d_dinp_taps(float *dinp_b, const float *dout_b, const float *w,
                             const SpConv1d *s) {
    const int Lo = s->Lo, CK = s->C * s->K;
    for (int k = 0; k < s->K; k++) {
        int t0, t1;
        conv1d_valid_range(s, k, &t0, &t1);
        if (t1 <= t0) continue;
        sp_gemm_strided(s->C, t1 - t0, s->O, w + k, s->K, CK, dout_b + t0, Lo,
                        dinp_b + t0 + k - s->pad, s->L, 1);
    }
}

/* pdwT (K, C, O) += inp_b shifted . dout_b^T; doutT: Lo*O floats of scratch */
static void conv1d_dw_taps(float *pdwT, const float *dout_b, const float *inp_b, float *doutT,
                           const SpConv1d *s) {
    const int Lo = s->Lo, O = s->O;
    for (int o = 0; o < O; o++) {
        const float *g = dout_b + (size_t)o * Lo;
        for (int t = 0; t < Lo; t++) doutT[(size_t)t * O + o] = g[t];
    }
    for (int k = 0; k < s->K; k++) {
        int t0, t1;
        conv1d_valid_range(s, k, &t0, &t1);
        if (t1 <= t0) continue;
        sp_gemm_strided(s->C, O, t1 - t0, inp_b + t0 + k - s->pad, s->L, 1, doutT + (size_t)t0 * O,
                        O, pdwT + (size_t)k * s->C * O, O, 1);
    }
}

void conv1d_forward(float *out, const float *inp, const float *w, const float *bias,
                    const SpConv1d *s, float *work) {
    conv1d_check(s);
    const size_t ck = (size_t)s->C * s->K, Lo = (size_t)s->Lo;
    const size_t per = conv1d_per_thread(s);
    const int pointwise = conv1d_is_pointwise(s);
    const int direct = (s->C == 1);
    const int taps = conv1d_use_taps(s);
#pragma omp parallel
    {
        float *cols = work + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int b = 0; b < s->B; b++) {
            const float *inp_b = inp + (size_t)b * s->C * s->L;
            float *out_b = out + (size_t)b * s->O * Lo;
            if (taps) {
                conv1d_forward_taps(out_b, inp_b, w, bias, s);
                continue;
            }
            if (direct) {
                conv1d_forward_c1(out_b, inp_b, w, bias, s, cols + per - (size_t)s->L - s->stride);
                continue;
            }
            const float *a;
            if (pointwise) {
                a = inp_b;
            } else {
                conv1d_im2col(cols, inp_b, s);
                a = cols;
            }
            float beta = 0.0f;
            if (bias) {
                for (int o = 0; o < s->O; o++) {
                    float *y = out_b + (size_t)o * Lo;
                    for (size_t t = 0; t < Lo; t++) y[t] = bias[o];
                }
                beta = 1.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->O, (int)Lo, (int)ck, 1.0f, w,
                        (int)ck, a, (int)Lo, beta, out_b, (int)Lo);
        }
    }
}

void conv1d_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, const SpConv1d *s, float *work) {
    conv1d_check(s);
    const size_t ck = (size_t)s->C * s->K, Lo = (size_t)s->Lo;
    const size_t nw = (size_t)s->O * ck;
    const size_t per = conv1d_per_thread(s);
    const int pointwise = conv1d_is_pointwise(s);
    const int direct = (s->C == 1) && !pointwise;
    const int taps = conv1d_use_taps(s);
    int nt_used = 1;
#pragma omp parallel
    {
        const int tid = omp_get_thread_num();
#pragma omp single
        nt_used = omp_get_num_threads();
        float *cols = work + per * (size_t)tid;
        float *pdw = cols + ck * Lo;
        float *pdb = pdw + nw;
        if (dw) memset(pdw, 0, sizeof(float) * nw);
        if (dbias) memset(pdb, 0, sizeof(float) * (size_t)s->O);
#pragma omp for schedule(static)
        for (int b = 0; b < s->B; b++) {
            const float *inp_b = inp + (size_t)b * s->C * s->L;
            const float *dout_b = dout + (size_t)b * s->O * Lo;
            if (dbias) {
                for (int o = 0; o < s->O; o++) pdb[o] += (float)sp_sum_f(dout_b + (size_t)o * Lo, Lo);
            }
            if (taps) {
                if (dw) conv1d_dw_taps(pdw, dout_b, inp_b, cols, s);
                if (dinp) conv1d_dinp_taps(dinp + (size_t)b * s->C * s->L, dout_b, w, s);
                continue;
            }
            if (dw && direct) {
                conv1d_dw_c1(pdw, dout_b, inp_b, s, cols + per - (size_t)s->L - s->stride);
            } else if (dw) {
                const float *a = inp_b;
                if (!pointwise) {
                    conv1d_im2col(cols, inp_b, s);
                    a = cols;
                }
                /* pdw (O, CK) += dout_b (O, Lo) . cols^T (Lo, CK) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->O, (int)ck, (int)Lo, 1.0f,
                            dout_b, (int)Lo, a, (int)Lo, 1.0f, pdw, (int)ck);
            }
            if (dinp) {
                float *dinp_b = dinp + (size_t)b * s->C * s->L;
                if (pointwise) {
                    /* dinp_b (C, L) += W^T (C, O) . dout_b (O, L) */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ck, (int)Lo, s->O,
                                1.0f, w, (int)ck, dout_b, (int)Lo, 1.0f, dinp_b, (int)Lo);
                } else {
                    /* dcols (CK, Lo) = W^T (CK, O) . dout_b (O, Lo), then col2im */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ck, (int)Lo, s->O,
                                1.0f, w, (int)ck, dout_b, (int)Lo, 0.0f, cols, (int)Lo);
                    conv1d_col2im_add(dinp_b, cols, s);
                }
            }
        }
        /* implicit barrier: every partial is complete. Reduce in thread order;
         * each element is owned by one thread. */
        if (dw) {
#pragma omp for schedule(static)
            for (size_t j = 0; j < nw; j++) {
                /* tap path: the partial is [k][c][o]; j = o*CK + c*K + k */
                const size_t src = taps ? ((j % s->K) * s->C + (j % ck) / s->K) * s->O + j / ck : j;
                float acc = dw[j];
                for (int t = 0; t < nt_used; t++) acc += work[per * (size_t)t + ck * Lo + src];
                dw[j] = acc;
            }
        }
        if (dbias) {
#pragma omp for schedule(static)
            for (int o = 0; o < s->O; o++) {
                float acc = dbias[o];
                for (int t = 0; t < nt_used; t++) acc += work[per * (size_t)t + ck * Lo + nw + o];
                dbias[o] = acc;
            }
        }
    }
}
