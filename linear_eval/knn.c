/* knn.c - weighted k-nearest-neighbour classification on frozen features
 * (the MoCo / solo-learn monitor): cosine similarity of L2-normalised rows,
 * the k most similar training rows vote for their class with weight
 * exp(sim / t).
 *
 * Similarities come from single-threaded sgemm calls on fixed blocks of
 * QBLK query rows inside an OpenMP loop (each block owns its output rows),
 * so results do not depend on the thread count. Allocates the normalised
 * training copy and one similarity block per thread.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "sp_blas.h"
#include "sp_linear_eval.h"

#define QBLK 64

static void l2_normalise_rows(float *out, const float *x, int64_t n, int D) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)xi[d] * (double)xi[d];
        double nrm = sqrt(s);
        float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
        for (int d = 0; d < D; d++) out[(size_t)i * D + d] = xi[d] * inv;
    }
}

SpStatus lineval_knn(const LinProblem *train, int C, const float *query, int64_t nq, int k,
                     double t, int32_t *pred, float *scores) {
    const int64_t nt = train->n;
    const int D = train->D;
    if (nt < 1) SP_FAIL(SP_EINPUT, "kNN: no training rows");
    if (C < 1) SP_FAIL(SP_EINPUT, "kNN: no classes");
    if (k < 1) SP_FAIL(SP_ECONFIG, "kNN: k = %d must be >= 1", k);
    if (!(t > 0)) SP_FAIL(SP_ECONFIG, "kNN: temperature %g must be > 0", t);
    for (int64_t i = 0; i < nt; i++)
        if (train->y[i] < 0 || train->y[i] >= C)
            SP_FAIL(SP_EINPUT, "kNN: training row %lld has label %d, expected 0..%d", (long long)i,
                    train->y[i], C - 1);
    if (k > nt) k = (int)nt;
    if (nq <= 0) return SP_OK;
    const int nth = omp_get_max_threads();
    float *tn = malloc((size_t)nt * D * sizeof(float));
    float *qn = malloc((size_t)nth * QBLK * D * sizeof(float));
    float *sim = malloc((size_t)nth * QBLK * nt * sizeof(float));
    int64_t *tidx = malloc((size_t)nth * k * sizeof(int64_t));
    float *tval = malloc((size_t)nth * k * sizeof(float));
    double *vote = malloc((size_t)nth * C * sizeof(double));
    if (!tn || !qn || !sim || !tidx || !tval || !vote) {
        free(tn);
        free(qn);
        free(sim);
        free(tidx);
        free(tval);
        free(vote);
        SP_FAIL(SP_ENOMEM, "kNN: out of memory (%lld training rows)", (long long)nt);
    }
    l2_normalise_rows(tn, train->x, nt, D);
    const int64_t nblk = (nq + QBLK - 1) / QBLK;
    const double invt = 1.0 / t;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int th = omp_get_thread_num();
        float *q = qn + (size_t)th * QBLK * D, *s = sim + (size_t)th * QBLK * nt;
        int64_t *ti = tidx + (size_t)th * k;
        float *tv = tval + (size_t)th * k;
        double *v = vote + (size_t)th * C;
        int64_t r0 = blk * QBLK, rn = nq - r0 < QBLK ? nq - r0 : QBLK;
        for (int64_t i = 0; i < rn; i++) {   /* normalise serially (no nested region) */
            const float *xi = query + (size_t)(r0 + i) * D;
            double ss = 0;
            for (int d = 0; d < D; d++) ss += (double)xi[d] * (double)xi[d];
            double nrm = sqrt(ss);
            float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
            for (int d = 0; d < D; d++) q[(size_t)i * D + d] = xi[d] * inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rn, (int)nt, D, 1.0f, q, D, tn,
                    D, 0.0f, s, (int)nt);
        for (int64_t i = 0; i < rn; i++) {
            const float *si = s + (size_t)i * nt;
            int cnt = 0;
            for (int64_t j = 0; j < nt; j++) {
                float sv = si[j];
                if (sv != sv) sv = -INFINITY;
                if (cnt == k && !(sv > tv[k - 1])) continue;
                int pos = cnt < k ? cnt : k - 1;
                while (pos > 0 && sv > tv[pos - 1]) {   /* strict: earlier index wins ties */
                    tv[pos] = tv[pos - 1];
                    ti[pos] = ti[pos - 1];
                    pos--;
                }
                tv[pos] = sv;
                ti[pos] = j;
                if (cnt < k) cnt++;
            }
            for (int c = 0; c < C; c++) v[c] = 0;
            for (int j = 0; j < cnt; j++) v[train->y[ti[j]]] += exp((double)tv[j] * invt);
            int best = 0;
            double tot = 0;
            for (int c = 0; c < C; c++) {
                tot += v[c];
                if (v[c] > v[best]) best = c;
            }
            if (pred) pred[r0 + i] = best;
            if (scores)
                for (int c = 0; c < C; c++)
                    scores[(size_t)(r0 + i) * C + c] = (float)(tot > 0 ? v[c] / tot : 0);
        }
    }
    free(tn);
    free(qn);
    free(sim);
    free(tidx);
    free(tval);
    free(vote);
    return SP_OK;
}
