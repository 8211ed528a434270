/* linear.c - fully connected layer y = x W^T + b over rows.
 *
 * Dimensions: N rows, in input features, out_f output features.
 * inp (N, in), w (out_f, in) PyTorch layout, bias (out_f), out (N, out_f).
 *
 * Forward and dinp: single-threaded sgemm calls over fixed chunks of rows
 * (each chunk owned by one iteration). dw/dbias: with out_f >= 16, fixed
 * chunks of output features own their rows of dw (full contraction over N, no
 * reduction); otherwise (e.g. a 1-logit head) each thread writes a partial
 * over its block of N into work and the partials are added in thread order.
 * Work (linear_work_floats): nthreads * (out_f*in + out_f).
 * Nothing here allocates; functions open their own parallel region. */
#include <string.h>

#include "sp_blas.h"
#include "sp_layers.h"
#include "sp_layers_util.h"

size_t linear_work_floats(int N, int in, int out) {
    (void)N;
    return (size_t)sp_layer_threads() * ((size_t)out * in + (size_t)out);
}

static void linear_check(int N, int in, int out_f) {
    SP_LAYER_CHECK(N >= 0 && in > 0 && out_f > 0, "linear: bad shape N=%d in=%d out=%d", N, in,
                   out_f);
}

/* Rows are processed in fixed chunks of SP_LIN_ROWS (output features of dw
 * in chunks of SP_LIN_OUTS): every sgemm call then has the same shape
 * whatever the thread count, so forward, dinp and (for out_f >= SP_LIN_OUTS)
 * dw/dbias are bit-identical for any number of threads. */
#define SP_LIN_ROWS 64
#define SP_LIN_OUTS 16

void linear_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                    int in, int out_f) {
    linear_check(N, in, out_f);
    if (N == 0) return;
    const int nchunk = (N + SP_LIN_ROWS - 1) / SP_LIN_ROWS;
#pragma omp parallel for schedule(static) if (nchunk > 1)
    for (int ch = 0; ch < nchunk; ch++) {
        const size_t r0 = (size_t)ch * SP_LIN_ROWS;
        const int rows = N - (int)r0 < SP_LIN_ROWS ? N - (int)r0 : SP_LIN_ROWS;
        float *y = out + r0 * (size_t)out_f;
        float beta = 0.0f;
        if (bias) {
            for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * out_f, bias, sizeof(float) * (size_t)out_f);
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out_f, in, 1.0f,
                    inp + r0 * (size_t)in, in, w, in, beta, y, out_f);
    }
}

void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int in, int out_f, float *work) {
    linear_check(N, in, out_f);
    if (N == 0) return;
    const size_t nw = (size_t)out_f * in, per = nw + (size_t)out_f;
    const int nchunk = (N + SP_LIN_ROWS - 1) / SP_LIN_ROWS;
    const int by_out = out_f >= SP_LIN_OUTS;
    const int nochunk = (out_f + SP_LIN_OUTS - 1) / SP_LIN_OUTS;
    int nt_used = 1;
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
#pragma omp single
        nt_used = nt;
        /* dinp (N, in) += dout (N, out) . W (out, in), fixed row chunks */
        if (dinp) {
#pragma omp for schedule(static) nowait
            for (int ch = 0; ch < nchunk; ch++) {
                const size_t r0 = (size_t)ch * SP_LIN_ROWS;
                const int rows = N - (int)r0 < SP_LIN_ROWS ? N - (int)r0 : SP_LIN_ROWS;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out_f, 1.0f,
                            dout + r0 * (size_t)out_f, out_f, w, in, 1.0f, dinp + r0 * (size_t)in, in);
            }
        }
        if (by_out) {
            /* dw[o0:o1] (rows, in) += dout[:, o0:o1]^T (rows, N) . inp (N, in):
             * each chunk of output features owned by one iteration */
#pragma omp for schedule(static)
            for (int ch = 0; ch < nochunk; ch++) {
                const size_t o0 = (size_t)ch * SP_LIN_OUTS;
                const int nout = out_f - (int)o0 < SP_LIN_OUTS ? out_f - (int)o0 : SP_LIN_OUTS;
                if (dw) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nout, in, N, 1.0f,
                                dout + o0, out_f, inp, in, 1.0f, dw + o0 * (size_t)in, in);
                }
                if (dbias) {
                    double acc[SP_LIN_OUTS] = {0};
                    for (size_t n = 0; n < (size_t)N; n++) {
                        const float *g = dout + n * out_f + o0;
                        for (int k = 0; k < nout; k++) acc[k] += (double)g[k];
                    }
                    for (int k = 0; k < nout; k++) dbias[o0 + k] += (float)acc[k];
                }
            }
        } else if (dw || dbias) {
            /* few output features: per-thread partials over row blocks, added
             * in thread order (deterministic for a given thread count) */
            size_t r0, r1;
            sp_layer_block((size_t)N, nt, tid, &r0, &r1);
            float *pdw = work + per * (size_t)tid, *pdb = pdw + nw;
            memset(pdw, 0, sizeof(float) * per);
            if (r1 > r0) {
                if (dw) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_f, in, (int)(r1 - r0),
                                1.0f, dout + r0 * (size_t)out_f, out_f, inp + r0 * (size_t)in, in,
                                0.0f, pdw, in);
                }
                if (dbias) {
                    for (int o = 0; o < out_f; o++) {
                        double acc = 0.0;
                        for (size_t n = r0; n < r1; n++) acc += (double)dout[n * out_f + o];
                        pdb[o] = (float)acc;
                    }
                }
            }
#pragma omp barrier
            if (dw) {
#pragma omp for schedule(static)
                for (size_t j = 0; j < nw; j++) {
                    float acc = dw[j];
                    for (int t = 0; t < nt_used; t++) acc += work[per * (size_t)t + j];
                    dw[j] = acc;
                }
            }
            if (dbias) {
#pragma omp for schedule(static)
                for (int o = 0; o < out_f; o++) {
                    float acc = dbias[o];
                    for (int t = 0; t < nt_used; t++) acc += work[per * (size_t)t + nw + o];
                    dbias[o] = acc;
                }
            }
        }
    }
}
