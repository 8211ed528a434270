/* attention.c - multi-head self-attention (nn.MultiheadAttention semantics,
 * no dropout, no mask), tokens as rows.
 *
 * Dimensions: B samples, T tokens, E embedding, H heads of dh = E/H.
 * inp (B, T, E); w_in (3E, E) rows [q; k; v]; b_in (3E); w_out (E, E);
 * b_out (E); out (B, T, E).
 *
 * Cache per sample b (mha_cache_floats = B * (3TE + HTT + TE)):
 *   qkv   (T, 3E)     projections [q | k | v] per token
 *   probs (H, T, T)   softmax(q_h k_h^T / sqrt(dh)) rows
 *   cat   (T, E)      concatenated head outputs (input of out_proj)
 * Work per thread (mha_work_floats): dcat (T, E), dqkv (T, 3E), dP (T, T) and
 * partial parameter gradients dw_in, db_in, dw_out, db_out, added in thread
 * order after the batch loop. Forward and dinp are owned per sample.
 * Parallel over the batch with single-threaded sgemm calls (policy A); never
 * call from inside a parallel region. Nothing allocates. */
#include <math.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_layers.h"
#include "sp_layers_util.h"

static void mha_check(const SpMHA *s) {
    SP_LAYER_CHECK(s->B >= 0 && s->T > 0 && s->E > 0 && s->H > 0 && s->E % s->H == 0,
                   "mha: bad shape B=%d T=%d E=%d H=%d (E must be a multiple of H)", s->B, s->T,
                   s->E, s->H);
}

static size_t mha_cache_per(const SpMHA *s) {
    const size_t T = (size_t)s->T, E = (size_t)s->E;
    return 3 * T * E + (size_t)s->H * T * T + T * E;
}

static size_t mha_params(const SpMHA *s) {
    const size_t E = (size_t)s->E;
    return 3 * E * E + 3 * E + E * E + E;
}

static size_t mha_work_per(const SpMHA *s) {
    const size_t T = (size_t)s->T, E = (size_t)s->E;
    return T * E + 3 * T * E + T * T + mha_params(s);
}

size_t mha_cache_floats(const SpMHA *s) { return (size_t)s->B * mha_cache_per(s); }

size_t mha_work_floats(const SpMHA *s) { return (size_t)sp_layer_threads() * mha_work_per(s); }

/* In-place softmax of each of the T rows of p (T, T): max-shifted, vectorised
 * exp, double sum. */
static void mha_softmax_rows(float *p, int T) {
    for (int t = 0; t < T; t++) {
        float *r = p + (size_t)t * T;
        const float mx = sp_max_f(r, (size_t)T);
        const double sum = sp_exp_shift_f(r, r, (size_t)T, mx);
        const float inv = (float)(1.0 / sum);
        for (int u = 0; u < T; u++) r[u] *= inv;
    }
}

void mha_forward(float *out, float *cache, const float *inp, const float *w_in,
                 const float *b_in, const float *w_out, const float *b_out, const SpMHA *s,
                 float *work) {
    (void)work;
    mha_check(s);
    const int T = s->T, E = s->E, H = s->H, dh = E / H, E3 = 3 * E;
    const float scale = (float)(1.0 / sqrt((double)dh));
    const size_t per = mha_cache_per(s);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < s->B; b++) {
        const float *x = inp + (size_t)b * T * E;
        float *qkv = cache + (size_t)b * per;
        float *probs = qkv + (size_t)T * E3;
        float *cat = probs + (size_t)H * T * T;
        float *y = out + (size_t)b * T * E;
        /* qkv (T, 3E) = x (T, E) . w_in^T + b_in */
        float beta = 0.0f;
        if (b_in) {
            for (int t = 0; t < T; t++) memcpy(qkv + (size_t)t * E3, b_in, sizeof(float) * (size_t)E3);
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, E3, E, 1.0f, x, E, w_in, E, beta,
                    qkv, E3);
        for (int h = 0; h < H; h++) {
            float *p = probs + (size_t)h * T * T;
            /* scores (T, T) = q_h k_h^T * scale */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, scale, qkv + h * dh, E3,
                        qkv + E + h * dh, E3, 0.0f, p, T);
            mha_softmax_rows(p, T);
            /* cat[:, h] (T, dh) = P (T, T) . v_h (T, dh) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, 1.0f, p, T,
                        qkv + 2 * E + h * dh, E3, 0.0f, cat + h * dh, E);
        }
        /* y (T, E) = cat . w_out^T + b_out */
        beta = 0.0f;
        if (b_out) {
            for (int t = 0; t < T; t++) memcpy(y + (size_t)t * E, b_out, sizeof(float) * (size_t)E);
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, E, E, 1.0f, cat, E, w_out, E, beta,
                    y, E);
    }
}

void mha_backward(float *dinp, float *dw_in, float *db_in, float *dw_out, float *db_out,
                  const float *dout, const float *inp, const float *cache, const float *w_in,
                  const float *w_out, const SpMHA *s, float *work) {
    mha_check(s);
    const int T = s->T, E = s->E, H = s->H, dh = E / H, E3 = 3 * E;
    const float scale = (float)(1.0 / sqrt((double)dh));
    const size_t per = mha_cache_per(s), wper = mha_work_per(s), np = mha_params(s);
    const size_t o_dwin = 0, o_dbin = (size_t)E3 * E, o_dwout = o_dbin + (size_t)E3,
                 o_dbout = o_dwout + (size_t)E * E;
    int nt_used = 1;
#pragma omp parallel
    {
        const int tid = omp_get_thread_num();
#pragma omp single
        nt_used = omp_get_num_threads();
        float *dcat = work + wper * (size_t)tid;
        float *dqkv = dcat + (size_t)T * E;
        float *dP = dqkv + (size_t)T * E3;
        float *part = dP + (size_t)T * T;
        memset(part, 0, sizeof(float) * np);
#pragma omp for schedule(static)
        for (int b = 0; b < s->B; b++) {
            const float *x = inp + (size_t)b * T * E;
            const float *dy = dout + (size_t)b * T * E;
            const float *qkv = cache + (size_t)b * per;
            const float *probs = qkv + (size_t)T * E3;
            const float *cat = probs + (size_t)H * T * T;
            /* out_proj: dw_out += dy^T cat, db_out += colsum dy, dcat = dy w_out */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, E, T, 1.0f, dy, E, cat, E, 1.0f,
                        part + o_dwout, E);
            for (int t = 0; t < T; t++)
                for (int i = 0; i < E; i++) part[o_dbout + i] += dy[(size_t)t * E + i];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, E, E, 1.0f, dy, E, w_out, E,
                        0.0f, dcat, E);
            for (int h = 0; h < H; h++) {
                const float *p = probs + (size_t)h * T * T;
                const float *q = qkv + h * dh, *k = qkv + E + h * dh, *v = qkv + 2 * E + h * dh;
                const float *dO = dcat + h * dh;
                /* dP (T, T) = dO_h (T, dh) . v_h^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, 1.0f, dO, E, v, E3,
                            0.0f, dP, T);
                /* dv_h (T, dh) = P^T (T, T) . dO_h */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dh, T, 1.0f, p, T, dO, E,
                            0.0f, dqkv + 2 * E + h * dh, E3);
                /* dS = P * (dP - rowsum(dP * P)), in place in dP */
                for (int t = 0; t < T; t++) {
                    const float *pr = p + (size_t)t * T;
                    float *dr = dP + (size_t)t * T;
                    const float dot = (float)sp_dot_f(pr, dr, (size_t)T);
                    for (int u = 0; u < T; u++) dr[u] = pr[u] * (dr[u] - dot);
                }
                /* dq_h = dS k_h * scale; dk_h = dS^T q_h * scale */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, scale, dP, T, k,
                            E3, 0.0f, dqkv + h * dh, E3);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dh, T, scale, dP, T, q, E3,
                            0.0f, dqkv + E + h * dh, E3);
            }
            /* in_proj: dw_in += dqkv^T x, db_in += colsum dqkv, dinp += dqkv w_in */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E3, E, T, 1.0f, dqkv, E3, x, E,
                        1.0f, part + o_dwin, E);
            for (int t = 0; t < T; t++)
                for (int j = 0; j < E3; j++) part[o_dbin + j] += dqkv[(size_t)t * E3 + j];
            if (dinp) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, E, E3, 1.0f, dqkv, E3,
                            w_in, E, 1.0f, dinp + (size_t)b * T * E, E);
            }
        }
        /* implicit barrier; reduce partials in thread order */
        float *const dst[4] = {dw_in, db_in, dw_out, db_out};
        const size_t off[5] = {o_dwin, o_dbin, o_dwout, o_dbout, np};
        for (int g = 0; g < 4; g++) {
            if (!dst[g]) continue;
            const size_t n = off[g + 1] - off[g];
#pragma omp for schedule(static)
            for (size_t j = 0; j < n; j++) {
                float acc = dst[g][j];
                for (int t = 0; t < nt_used; t++) acc += work[wper * (size_t)t + (size_t)T * E +
                                                             (size_t)T * E3 + (size_t)T * T + off[g] + j];
                dst[g][j] = acc;
            }
        }
    }
}
