/* linear.c - fully connected layer y = x W^T + b over rows.
 *
 * Dimensions: N rows, in input features, out_f output features.
 * inp (N, in), w (out_f, in) PyTorch layout, bias (out_f), out (N, out_f).
 *
 * Forward and dinp: one single-threaded sgemm per thread over a contiguous
 * block of rows (each thread owns its rows). dw/dbias: when there are enough
 * output features, each thread owns a block of rows of dw (full contraction
 * over N, no reduction); otherwise (out_f small, e.g. a 1-logit head) each
 * thread writes a partial over its block of N into work and the partials are
 * added in thread order. Work (linear_work_floats): nthreads * (out_f*in + out_f).
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

void linear_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                    int in, int out_f) {
    linear_check(N, in, out_f);
    if (N == 0) return;
#pragma omp parallel
    {
        size_t r0, r1;
        sp_layer_block((size_t)N, omp_get_num_threads(), omp_get_thread_num(), &r0, &r1);
        if (r1 > r0) {
            float *y = out + r0 * (size_t)out_f;
            float beta = 0.0f;
            if (bias) {
                for (size_t r = r0; r < r1; r++) {
                    memcpy(out + r * (size_t)out_f, bias, sizeof(float) * (size_t)out_f);
                }
                beta = 1.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), out_f, in, 1.0f,
                        inp + r0 * (size_t)in, in, w, in, beta, y, out_f);
        }
    }
}

void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int in, int out_f, float *work) {
    linear_check(N, in, out_f);
    if (N == 0) return;
    const size_t nw = (size_t)out_f * in, per = nw + (size_t)out_f;
    int nt_used = 1;
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
#pragma omp single
        nt_used = nt;
        size_t r0, r1;
        sp_layer_block((size_t)N, nt, tid, &r0, &r1);
        /* dinp (N, in) += dout (N, out) . W (out, in), row blocks */
        if (dinp && r1 > r0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), in, out_f, 1.0f,
                        dout + r0 * (size_t)out_f, out_f, w, in, 1.0f, dinp + r0 * (size_t)in, in);
        }
        const int by_out = out_f >= 2 * nt;  /* same decision in every thread */
        if (by_out) {
            size_t o0, o1;
            sp_layer_block((size_t)out_f, nt, tid, &o0, &o1);
            if (o1 > o0) {
                /* dw[o0:o1] (rows, in) += dout[:, o0:o1]^T (rows, N) . inp (N, in) */
                if (dw) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(o1 - o0), in, N,
                                1.0f, dout + o0, out_f, inp, in, 1.0f, dw + o0 * (size_t)in, in);
                }
                if (dbias) {
                    for (size_t o = o0; o < o1; o++) {
                        double acc = 0.0;
                        for (size_t n = 0; n < (size_t)N; n++) acc += (double)dout[n * out_f + o];
                        dbias[o] += (float)acc;
                    }
                }
            }
        } else if (dw || dbias) {
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
