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
 * Forward and dinp are owned per sample (bit-identical for any thread count);
 * dw/dbias are per-thread partials added in thread order after the loop.
 * Nothing here allocates. Functions open their own parallel region: never
 * call them from inside one. */
#include <string.h>

#include "sp_blas.h"
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

size_t conv1d_work_floats(const SpConv1d *s) {
    size_t ck = (size_t)s->C * s->K;
    size_t per = ck * (size_t)s->Lo + (size_t)s->O * ck + (size_t)s->O;
    return per * (size_t)sp_layer_threads();
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

/* One output of the C == 1 kernel at an edge (some taps in the padding). */
static float conv1d_c1_edge(const float *wo, float b0, const float *x, int t, const SpConv1d *s) {
    float acc = b0;
    for (int k = 0; k < s->K; k++) {
        int i = t * s->stride + k - s->pad;
        if (i >= 0 && i < s->L) acc += wo[k] * x[i];
    }
    return acc;
}

/* Direct kernel for C == 1 (the first layer on raw spectra): out[o, t] =
 * b[o] + sum_k w[o, k] x[t*stride + k - pad]. The GEMM's inner dimension would
 * be only K, which OpenBLAS packs poorly. Interior positions are a fixed-size
 * loop the compiler vectorises over t; the edges take the checked path. */
static void conv1d_forward_c1(float *out_b, const float *x, const float *w, const float *bias,
                              const SpConv1d *s) {
    const int K = s->K, st = s->stride, pad = s->pad, L = s->L, Lo = s->Lo;
    /* Same summation order everywhere: bias, then taps k = 0..K-1.
     * interior: t with t*st - pad >= 0 and t*st - pad + K - 1 <= L - 1 */
    int ti0 = (pad + st - 1) / st;
    int ti1 = (L - K + pad) >= 0 ? (L - K + pad) / st + 1 : 0;
    if (ti1 > Lo) ti1 = Lo;
    if (ti0 > ti1) ti0 = ti1;
    for (int o = 0; o < s->O; o++) {
        const float *wo = w + (size_t)o * K;
        const float b0 = bias ? bias[o] : 0.0f;
        float *y = out_b + (size_t)o * Lo;
        for (int t = 0; t < ti0; t++) y[t] = conv1d_c1_edge(wo, b0, x, t, s);
        for (int t = ti0; t < ti1; t++) y[t] = b0;
        for (int k = 0; k < K; k++) {
            const float wk = wo[k];
            const int off = k - pad;
            if (st == 1) {
                for (int t = ti0; t < ti1; t++) y[t] += wk * x[t + off];
            } else if (st == 2) {
                for (int t = ti0; t < ti1; t++) y[t] += wk * x[2 * t + off];
            } else {
                for (int t = ti0; t < ti1; t++) y[t] += wk * x[(size_t)t * st + off];
            }
        }
        for (int t = ti1; t < Lo; t++) y[t] = conv1d_c1_edge(wo, b0, x, t, s);
    }
}

void conv1d_forward(float *out, const float *inp, const float *w, const float *bias,
                    const SpConv1d *s, float *work) {
    conv1d_check(s);
    const size_t ck = (size_t)s->C * s->K, Lo = (size_t)s->Lo;
    const size_t per = ck * Lo + (size_t)s->O * ck + (size_t)s->O;
    const int pointwise = conv1d_is_pointwise(s);
    const int direct = (s->C == 1);
#pragma omp parallel
    {
        float *cols = work + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int b = 0; b < s->B; b++) {
            const float *inp_b = inp + (size_t)b * s->C * s->L;
            float *out_b = out + (size_t)b * s->O * Lo;
            if (direct) {
                conv1d_forward_c1(out_b, inp_b, w, bias, s);
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
    const size_t per = ck * Lo + nw + (size_t)s->O;
    const int pointwise = conv1d_is_pointwise(s);
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
                for (int o = 0; o < s->O; o++) {
                    const float *g = dout_b + (size_t)o * Lo;
                    double acc = 0.0;
                    for (size_t t = 0; t < Lo; t++) acc += (double)g[t];
                    pdb[o] += (float)acc;
                }
            }
            if (dw) {
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
                float acc = dw[j];
                for (int t = 0; t < nt_used; t++) acc += work[per * (size_t)t + ck * Lo + j];
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
