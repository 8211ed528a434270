/* sp_losses.c - cross-entropy, BCE / focal loss with logits, InfoNCE with a
 * queue; each a fused forward + backward (see sp_losses.h).
 *
 * Dimensions: N rows, C classes; InfoNCE: B queries of width D, a queue of Q
 * keys stored (D, Q) (column j = key j), T the temperature.
 *
 * Per-row losses are computed in double (log-sum-exp with the max
 * subtracted) and summed in row order, so the returned loss does not depend
 * on the thread count. Gradients are ADDED (scale * d mean / d input).
 * cross_entropy_loss and bce_logits_loss are serial (safe inside a parallel
 * region); infonce_loss opens its own parallel region over fixed chunks of
 * rows with a single-threaded sgemm per chunk (never call it from inside one;
 * bit-identical for any thread count). Nothing
 * allocates. */
#include <math.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_layers_util.h"
#include "sp_losses.h"

double cross_entropy_loss(float *dlogits, const float *logits, const int *labels, int N, int C,
                          float scale, int *ncorrect) {
    SP_LAYER_CHECK(N >= 0 && C > 0, "cross_entropy: bad shape N=%d C=%d", N, C);
    int nv = 0, nc = 0;
    for (int n = 0; n < N; n++) {
        SP_LAYER_CHECK(labels[n] < C, "cross_entropy: label %d of row %d not in [0, %d)", labels[n],
                       n, C);
        nv += labels[n] >= 0;
    }
    if (ncorrect) *ncorrect = 0;
    if (nv == 0) return 0.0;
    const double g = (double)scale / nv;
    double loss = 0.0;
    for (int n = 0; n < N; n++) {
        const int y = labels[n];
        if (y < 0) continue;
        const float *x = logits + (size_t)n * C;
        int am = 0;
        for (int c = 1; c < C; c++) am = x[c] > x[am] ? c : am;  /* first maximum */
        nc += am == y;
        const double mx = (double)x[am];
        double sum = 0.0;
        for (int c = 0; c < C; c++) sum += exp((double)x[c] - mx);
        const double lse = mx + log(sum);
        loss += lse - (double)x[y];
        if (dlogits) {
            float *d = dlogits + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                double p = exp((double)x[c] - lse);
                d[c] += (float)(g * (p - (c == y ? 1.0 : 0.0)));
            }
        }
    }
    if (ncorrect) *ncorrect = nc;
    return loss / nv;
}

/* sigmoid(x) and 1 - sigmoid(x) without cancellation */
static void sigmoid_pair(double x, double *p, double *q) {
    if (x >= 0) {
        double e = exp(-x);
        *p = 1.0 / (1.0 + e);
        *q = e / (1.0 + e);
    } else {
        double e = exp(x);
        *p = e / (1.0 + e);
        *q = 1.0 / (1.0 + e);
    }
}

double bce_logits_loss(float *dlogits, const float *logits, const float *targets, int N,
                       float focal_gamma, float focal_alpha, float scale, int *ncorrect) {
    SP_LAYER_CHECK(N >= 0, "bce_logits: bad size N=%d", N);
    if (ncorrect) *ncorrect = 0;
    if (N == 0) return 0.0;
    const double gam = (double)focal_gamma, alpha = (double)focal_alpha;
    const double g = (double)scale / N;
    double loss = 0.0;
    int nc = 0;
    for (int n = 0; n < N; n++) {
        const double x = (double)logits[n], t = (double)targets[n];
        /* ce = -t log p - (1-t) log(1-p) = max(x,0) - x t + log1p(exp(-|x|)) */
        const double ce = (x > 0 ? x : 0.0) - x * t + log1p(exp(-fabs(x)));
        double p, q;
        sigmoid_pair(x, &p, &q);
        double l = ce, dl = p - t;
        if (gam > 0) {
            /* focal: a_t (1 - p_t)^gamma ce, p_t = p t + (1-p)(1-t) */
            const double omp = p * (1.0 - t) + q * t;      /* 1 - p_t */
            const double f = pow(omp, gam);
            const double dpt = p * q * (2.0 * t - 1.0);    /* d p_t / dx */
            const double df = omp > 0 ? -gam * pow(omp, gam - 1.0) * dpt : 0.0;
            l = f * ce;
            dl = df * ce + f * (p - t);
            if (alpha >= 0) {
                const double at = alpha * t + (1.0 - alpha) * (1.0 - t);
                l *= at;
                dl *= at;
            }
        }
        loss += l;
        if (dlogits) dlogits[n] += (float)(g * dl);
        nc += (logits[n] > 0.0f) == (targets[n] > 0.5f);
    }
    if (ncorrect) *ncorrect = nc;
    return loss / N;
}

#define SP_NCE_ROWS 32

size_t infonce_work_floats(int B, int Q) { return (size_t)B * ((size_t)Q + 1); }

double infonce_loss(float *dq, const float *q, const float *k, const float *queue, int B, int D,
                    int Q, float T, float scale, int *ncorrect, float *work) {
    SP_LAYER_CHECK(B >= 0 && D > 0 && Q >= 0 && T > 0.0f, "infonce: bad shape B=%d D=%d Q=%d T=%g",
                   B, D, Q, (double)T);
    if (ncorrect) *ncorrect = 0;
    if (B == 0) return 0.0;
    const int Q1 = Q + 1;
    const float invT = 1.0f / T;
    /* gradient of mean_i CE wrt q_i: (scale / (B T)) (sum_j p_ij key_j - k_i) */
    const float gs = (float)((double)scale / ((double)B * (double)T));
    /* Fixed chunks of rows: every sgemm call has the same shape whatever the
     * thread count, so the result is bit-identical for any number of threads. */
    const int nchunk = (B + SP_NCE_ROWS - 1) / SP_NCE_ROWS;
    int nc = 0;
#pragma omp parallel for schedule(static) reduction(+ : nc) if (nchunk > 1)
    for (int ch = 0; ch < nchunk; ch++) {
        const size_t r0 = (size_t)ch * SP_NCE_ROWS;
        const int rows = B - (int)r0 < SP_NCE_ROWS ? B - (int)r0 : SP_NCE_ROWS;
        const size_t r1 = r0 + (size_t)rows;
        /* logits (rows, Q1): column 0 = q.k / T, columns 1..Q = q.queue / T */
        if (Q > 0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, Q, D, invT,
                        q + r0 * (size_t)D, D, queue, Q, 0.0f, work + r0 * (size_t)Q1 + 1, Q1);
        }
        for (size_t i = r0; i < r1; i++) {
            float *row = work + i * (size_t)Q1;
            const float *qi = q + i * (size_t)D, *ki = k + i * (size_t)D;
            row[0] = (float)(sp_dot_f(qi, ki, (size_t)D) / (double)T);
            const float mx = sp_max_f(row, (size_t)Q1);
            nc += row[0] >= mx;  /* the positive is the first maximum */
            const double l0 = (double)row[0];
            /* row <- exp(row - max) (vectorised), sum in double */
            const double sum = sp_exp_shift_f(row, row, (size_t)Q1, mx);
            const double li = (double)mx + log(sum) - l0;
            if (dq) {
                /* positive term: (p_0 - 1) k_i with p_0 = exp(-loss_i) */
                const float c0 = gs * (float)expm1(-li);
                float *dqi = dq + i * (size_t)D;
                for (int d = 0; d < D; d++) dqi[d] += c0 * ki[d];
                /* negatives: p_j = exp(l_j - max) / sum */
                const float inv = (float)(1.0 / sum);
                for (int j = 1; j < Q1; j++) row[j] *= inv;
            }
            row[0] = (float)li;  /* kept for the ordered loss sum */
        }
        if (dq && Q > 0) {
            /* dq (rows, D) += gs * P (rows, Q) . queue^T (Q, D) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, D, Q, gs,
                        work + r0 * (size_t)Q1 + 1, Q1, queue, Q, 1.0f, dq + r0 * (size_t)D, D);
        }
    }
    double loss = 0.0;
    for (int i = 0; i < B; i++) loss += (double)work[(size_t)i * Q1];
    if (ncorrect) *ncorrect = nc;
    return loss / B;
}
