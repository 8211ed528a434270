/* probe.c - the linear probe: multinomial logistic regression on (optionally
 * standardised) frozen features, full-batch L-BFGS, L2 strength selected on
 * the validation rows.
 *
 * Objective on n training rows, C classes, D features:
 *   f(W, b) = (1/n) sum_i [logsumexp(z_i) - z_i,y_i] + l2/2 |W|^2,  z = x W^T + b
 *   dW = (1/n) (P - Y)^T x + l2 W,  db = (1/n) sum_i (P - Y)_i
 * Logits and dW are single-threaded sgemm calls inside OpenMP loops over
 * fixed row blocks (logits) and fixed column chunks (dW); loss and db are
 * summed per block in double and combined in block order, so f and its
 * gradient do not depend on the thread count. Parameters live in double for
 * L-BFGS and are rounded to float for each evaluation.
 *
 * Allocation: lineval_train allocates the logits (n x C floats) and the
 * standardised feature copies once per call.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "sp_blas.h"
#include "sp_layers_util.h"
#include "sp_linear_eval.h"
#include "sp_log.h"

#define ROWBLK 256
#define COLCHUNK 32

/* z[n, C] = x[n, D] w[C, D]^T + b, OpenMP over row blocks. */
static void logits_rows(float *z, const float *x, int64_t n, int D, int C, const float *w,
                        const float *b) {
    int64_t nblk = (n + ROWBLK - 1) / ROWBLK;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nblk; k++) {
        int64_t r0 = k * ROWBLK, rn = n - r0 < ROWBLK ? n - r0 : ROWBLK;
        float *zk = z + (size_t)r0 * C;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rn, C, D, 1.0f,
                    x + (size_t)r0 * D, D, w, D, 0.0f, zk, C);
        if (b)
            for (int64_t i = 0; i < rn; i++)
                for (int c = 0; c < C; c++) zk[(size_t)i * C + c] += b[c];
    }
}

/* In place: row of logits -> softmax probabilities; returns logsumexp
 * (core's vectorised exp, within ~0.5 ulp of expf; sum in double). */
static double softmax_row(float *z, int C) {
    const float mx = sp_max_f(z, (size_t)C);
    const double s = sp_exp_shift_f(z, z, (size_t)C, mx);
    const float inv = (float)(1.0 / s);
    for (int c = 0; c < C; c++) z[c] *= inv;
    return (double)mx + log(s);
}

static int argmax_row(const float *z, int C) {
    int best = 0;
    for (int c = 1; c < C; c++)
        if (z[c] > z[best]) best = c;
    return best;
}

typedef struct {
    const float *x;
    const int32_t *y;
    int64_t n;
    int D, C;
    double l2;
    float *w, *b, *z, *gw;
    double *blk_loss, *blk_db;
    int64_t nblk;
} ProbeObj;

static double probe_objective(void *ctx, const double *th, double *g) {
    ProbeObj *o = ctx;
    const int C = o->C, D = o->D;
    const size_t CD = (size_t)C * D;
    for (size_t i = 0; i < CD; i++) o->w[i] = (float)th[i];
    for (int c = 0; c < C; c++) o->b[c] = (float)th[CD + c];
    const float invn = (float)(1.0 / (double)o->n);
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < o->nblk; k++) {
        int64_t r0 = k * ROWBLK, rn = o->n - r0 < ROWBLK ? o->n - r0 : ROWBLK;
        float *zk = o->z + (size_t)r0 * C;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rn, C, D, 1.0f,
                    o->x + (size_t)r0 * D, D, o->w, D, 0.0f, zk, C);
        double loss = 0;
        double *db = o->blk_db + (size_t)k * C;
        for (int c = 0; c < C; c++) db[c] = 0;
        for (int64_t i = 0; i < rn; i++) {
            float *zi = zk + (size_t)i * C;
            for (int c = 0; c < C; c++) zi[c] += o->b[c];
            int yi = o->y[r0 + i];
            double zy = zi[yi];
            double lse = softmax_row(zi, C);
            loss += lse - zy;
            zi[yi] -= 1.0f;
            for (int c = 0; c < C; c++) {
                db[c] += (double)zi[c];
                zi[c] *= invn;
            }
        }
        o->blk_loss[k] = loss;
    }
    /* dW = G^T X over fixed column chunks (each chunk owns its columns) */
    int nchunk = (D + COLCHUNK - 1) / COLCHUNK;
#pragma omp parallel for schedule(static)
    for (int q = 0; q < nchunk; q++) {
        int d0 = q * COLCHUNK, dn = D - d0 < COLCHUNK ? D - d0 : COLCHUNK;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, dn, (int)o->n, 1.0f, o->z, C,
                    o->x + d0, D, 0.0f, o->gw + d0, D);
    }
    double loss = 0, reg = 0;
    for (int64_t k = 0; k < o->nblk; k++) loss += o->blk_loss[k];
    for (size_t i = 0; i < CD; i++) {
        g[i] = (double)o->gw[i] + o->l2 * th[i];
        reg += th[i] * th[i];
    }
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int64_t k = 0; k < o->nblk; k++) s += o->blk_db[(size_t)k * C + c];
        g[CD + c] = s / (double)o->n;
    }
    return loss / (double)o->n + 0.5 * o->l2 * reg;
}

const char *lineval_check_param(const LinParam *p) {
    if (!p) return "no parameters";
    if (p->n_classes < 2) return "the probe needs at least 2 classes";
    if (p->n_l2 < 0 || p->n_l2 > SP_LIN_MAX_GRID) return "linear_eval.l2_grid: 0..64 values";
    if (p->n_l2 > 0 && !p->l2_grid) return "linear_eval.l2_grid: missing values";
    for (int i = 0; i < p->n_l2; i++)
        if (!(p->l2_grid[i] >= 0) || !isfinite(p->l2_grid[i]))
            return "linear_eval.l2_grid: every strength must be finite and >= 0";
    if (!(p->l2_default >= 0) || !isfinite(p->l2_default))
        return "linear_eval.l2_default must be finite and >= 0";
    if (p->lbfgs.m < 1 || p->lbfgs.m > 100) return "linear_eval.lbfgs_m must be in [1, 100]";
    if (p->lbfgs.max_iter < 1) return "linear_eval.max_iter must be >= 1";
    if (!(p->lbfgs.gtol > 0)) return "linear_eval.tol must be > 0";
    return NULL;
}

void lineval_destroy(LinModel **m) {
    if (!m || !*m) return;
    free((*m)->w);
    free((*m)->b);
    free((*m)->mean);
    free((*m)->std);
    free(*m);
    *m = NULL;
}

static LinModel *model_alloc(int C, int D, int standardise) {
    LinModel *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->C = C;
    m->D = D;
    m->w = calloc((size_t)C * D, sizeof(float));
    m->b = calloc((size_t)C, sizeof(float));
    if (standardise) {
        m->mean = calloc((size_t)D, sizeof(float));
        m->std = calloc((size_t)D, sizeof(float));
    }
    snprintf(m->feature, sizeof m->feature, "feature");
    if (!m->w || !m->b || (standardise && (!m->mean || !m->std))) lineval_destroy(&m);
    return m;
}

/* out[n, D] = (x - mean) / std (or a copy). */
static void standardise_rows(float *out, const float *x, int64_t n, int D, const float *mean,
                             const float *std) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * D;
        float *oi = out + (size_t)i * D;
        if (mean)
            for (int d = 0; d < D; d++) oi[d] = (xi[d] - mean[d]) / std[d];
        else
            memcpy(oi, xi, (size_t)D * sizeof(float));
    }
}

static SpStatus check_problem(const LinProblem *p, int C, const char *what) {
    if (p->n > 0 && (!p->x || !p->y)) SP_FAIL(SP_EINTERNAL, "probe: %s set without data", what);
    for (int64_t i = 0; i < p->n; i++)
        if (p->y[i] < 0 || p->y[i] >= C)
            SP_FAIL(SP_EINPUT, "probe: %s row %lld has label %d, expected 0..%d", what,
                    (long long)i, p->y[i], C - 1);
    for (size_t i = 0; i < (size_t)p->n * p->D; i++)
        if (!isfinite(p->x[i]))
            SP_FAIL(SP_ENUMERIC, "probe: %s features contain a non-finite value (row %lld)", what,
                    (long long)(i / (size_t)p->D));
    return SP_OK;
}

/* Validation accuracy and mean cross-entropy of the current float weights. */
static void score_val(const float *xv, const int32_t *yv, int64_t nv, int D, int C,
                      const float *w, const float *b, float *z, double *acc, double *loss) {
    logits_rows(z, xv, nv, D, C, w, b);
    int64_t correct = 0;
    double l = 0;
    for (int64_t i = 0; i < nv; i++) {
        float *zi = z + (size_t)i * C;
        int pred = argmax_row(zi, C);
        double zy = zi[yv[i]];
        l += softmax_row(zi, C) - zy;
        correct += pred == yv[i];
    }
    *acc = nv ? (double)correct / (double)nv : 0;
    *loss = nv ? l / (double)nv : 0;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

SpStatus lineval_train(LinModel **out, const LinProblem *train, const LinProblem *val,
                       const LinParam *p) {
    *out = NULL;
    const char *msg = lineval_check_param(p);
    if (msg) SP_FAIL(SP_ECONFIG, "linear probe: %s", msg);
    const int C = p->n_classes, D = train->D;
    if (train->n < 1 || D < 1) SP_FAIL(SP_EINPUT, "linear probe: no training rows");
    const int64_t n = train->n, nv = (val && val->n > 0) ? val->n : 0;
    if (nv && val->D != D)
        SP_FAIL(SP_EINTERNAL, "probe: validation features have %d columns, training %d", val->D, D);
    SP_TRY(check_problem(train, C, "training"));
    if (nv) SP_TRY(check_problem(val, C, "validation"));

    double t0 = sp_time_now();
    SpStatus rc = SP_OK;
    LinModel *m = model_alloc(C, D, p->standardise);
    const size_t CD = (size_t)C * D, np = CD + C;
    int64_t nblk = (n + ROWBLK - 1) / ROWBLK;
    float *xs = malloc((size_t)n * D * sizeof(float));
    float *xvs = nv ? malloc((size_t)nv * D * sizeof(float)) : NULL;
    int64_t zrows = n > nv ? n : nv;
    float *z = malloc((size_t)zrows * C * sizeof(float));
    float *gw = malloc(CD * sizeof(float));
    double *blk = malloc((size_t)nblk * (C + 1) * sizeof(double));
    double *th = calloc(np, sizeof(double)), *best = malloc(np * sizeof(double));
    if (!m || !xs || (nv && !xvs) || !z || !gw || !blk || !th || !best)
        SP_FAIL_GOTO(rc, done, SP_ENOMEM, "linear probe: out of memory (%lld x %d features, %d "
                     "classes)", (long long)n, D, C);
    m->n_train = n;
    m->n_val = nv;
    if (p->standardise) {
        for (int d = 0; d < D; d++) {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < n; i++) s += (double)train->x[(size_t)i * D + d];
            double mu = s / (double)n;
            for (int64_t i = 0; i < n; i++) {
                double v = (double)train->x[(size_t)i * D + d] - mu;
                ss += v * v;
            }
            double sd = sqrt(ss / (double)n);
            /* constant feature (or a single row): leave its scale alone */
            if (!(sd > 1e-6 * (1.0 + fabs(mu)))) sd = 1.0;
            m->mean[d] = (float)mu;
            m->std[d] = (float)sd;
        }
    }
    standardise_rows(xs, train->x, n, D, m->mean, m->std);
    if (nv) standardise_rows(xvs, val->x, nv, D, m->mean, m->std);

    double grid[SP_LIN_MAX_GRID];
    int ng = 0;
    if (nv && p->n_l2 > 0) {
        memcpy(grid, p->l2_grid, (size_t)p->n_l2 * sizeof(double));
        qsort(grid, (size_t)p->n_l2, sizeof(double), cmp_desc);
        for (int i = 0; i < p->n_l2; i++)
            if (ng == 0 || grid[i] != grid[ng - 1]) grid[ng++] = grid[i];
    } else {
        grid[0] = p->l2_default;
        ng = 1;
    }
    ProbeObj o = {xs, train->y, n, D, C, 0, m->w, m->b, z, gw, blk, blk + nblk, nblk};
    /* The tolerance is relative to the gradient at W = 0, b = 0 (its scale
     * shrinks like 1/C and with the class balance). */
    LinLbfgsParam lp = p->lbfgs;
    {
        double *g0 = malloc(np * sizeof(double));
        if (!g0) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "linear probe: out of memory");
        probe_objective(&o, th, g0);
        double g0max = 0;
        for (size_t i = 0; i < np; i++) g0max = fmax(g0max, fabs(g0[i]));
        free(g0);
        lp.gtol = p->lbfgs.gtol * (g0max > 0 ? g0max : 1.0);
    }
    /* Selection needs the ranking of the strengths, not their last digits:
     * the path is fitted to a 10x looser tolerance and only the selected
     * strength is refined to the full one (warm start). */
    LinLbfgsParam lpath = lp;
    if (ng > 1) lpath.gtol = 10.0 * lp.gtol;
    int best_i = -1, worse = 0;
    double best_acc = -1, best_loss = INFINITY;
    for (int gi = 0; gi < ng; gi++) {
        o.l2 = grid[gi];
        LinLbfgsResult r;
        SP_TRY_GOTO(rc, lineval_lbfgs(probe_objective, &o, th, np, &lpath, &r), done);
        if (!isfinite(r.f))
            SP_FAIL_GOTO(rc, done, SP_ENUMERIC, "linear probe: loss not finite at l2 = %g", grid[gi]);
        for (size_t i = 0; i < CD; i++) m->w[i] = (float)th[i];
        for (int c = 0; c < C; c++) m->b[c] = (float)th[CD + c];
        double acc = 0, loss = 0;
        if (nv) score_val(xvs, val->y, nv, D, C, m->w, m->b, z, &acc, &loss);
        m->path_l2[gi] = grid[gi];
        m->path_val_acc[gi] = acc;
        m->path_val_loss[gi] = loss;
        m->path_train_loss[gi] = r.f;
        m->path_iters[gi] = r.iters;
        m->n_path = gi + 1;
        sp_log(SP_LOG_DEBUG, "probe: l2=%-8.3g iters=%-4d evals=%-4d f=%.6g gmax=%.2e stop=%d "
               "val_acc=%.4f val_loss=%.4f", grid[gi], r.iters, r.evals, r.f, r.gmax, (int)r.stop,
               acc, loss);
        if (r.stop == SP_LBFGS_MAXITER)
            sp_log(SP_LOG_DEBUG, "probe: l2 = %g stopped at the iteration limit (max|g| = %.2e)",
                   grid[gi], r.gmax);
        if (acc > best_acc || (acc == best_acc && loss < best_loss)) {
            best_acc = acc;
            best_loss = loss;
            best_i = gi;
            worse = 0;
            memcpy(best, th, np * sizeof(double));
        } else if (acc < best_acc && loss > best_loss) {
            /* weaker strengths only overfit more: stop the path early */
            if (p->l2_patience > 0 && ++worse >= p->l2_patience) break;
        } else {
            worse = 0;
        }
    }
    m->l2 = grid[best_i];
    if (ng > 1) {
        o.l2 = m->l2;
        LinLbfgsResult r;
        SP_TRY_GOTO(rc, lineval_lbfgs(probe_objective, &o, best, np, &lp, &r), done);
        if (!isfinite(r.f))
            SP_FAIL_GOTO(rc, done, SP_ENUMERIC, "linear probe: loss not finite at l2 = %g", m->l2);
        sp_log(SP_LOG_DEBUG, "probe: selected l2=%g refined in %d iterations (f=%.6g gmax=%.2e)",
               m->l2, r.iters, r.f, r.gmax);
        m->refine_iters = r.iters;
    }
    for (size_t i = 0; i < CD; i++) m->w[i] = (float)best[i];
    for (int c = 0; c < C; c++) m->b[c] = (float)best[CD + c];
    m->fit_seconds = sp_time_now() - t0;
    *out = m;
    m = NULL;
done:
    lineval_destroy(&m);
    free(xs);
    free(xvs);
    free(z);
    free(gw);
    free(blk);
    free(th);
    free(best);
    return rc;
}

SpStatus lineval_predict(const LinModel *m, const float *x, int64_t n, int32_t *pred,
                         float *prob) {
    const int C = m->C, D = m->D;
    const int64_t chunk = 4096;
    int64_t cn = n < chunk ? n : chunk;
    if (n <= 0) return SP_OK;
    float *xs = malloc((size_t)cn * D * sizeof(float));
    float *z = malloc((size_t)cn * C * sizeof(float));
    if (!xs || !z) {
        free(xs);
        free(z);
        SP_FAIL(SP_ENOMEM, "probe predict: out of memory");
    }
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        int64_t rn = n - r0 < chunk ? n - r0 : chunk;
        standardise_rows(xs, x + (size_t)r0 * D, rn, D, m->mean, m->std);
        logits_rows(z, xs, rn, D, C, m->w, m->b);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rn; i++) {
            float *zi = z + (size_t)i * C;
            if (pred) pred[r0 + i] = argmax_row(zi, C);
            softmax_row(zi, C);
            if (prob) memcpy(prob + (size_t)(r0 + i) * C, zi, (size_t)C * sizeof(float));
        }
    }
    free(xs);
    free(z);
    return SP_OK;
}
