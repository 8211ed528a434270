/* lbfgs.c - limited-memory BFGS with a strong-Wolfe line search (Nocedal &
 * Wright, Algorithms 7.4, 3.5 and 3.6), in double.
 *
 * Used by the linear probe: the objective (multinomial logistic regression
 * with L2) is smooth and convex, so the plain algorithm is enough; the line
 * search guards against a non-finite f (treated as "too large") and against
 * the precision floor of a float-computed objective (SP_LBFGS_LINESEARCH,
 * x left at the best point found). n is the parameter count.
 *
 * Allocates (2m + 4) n doubles per call. Serial; the objective may open its
 * own OpenMP regions.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_linear_eval.h"

void lineval_lbfgs_default(LinLbfgsParam *p) {
    p->m = 10;
    p->max_iter = 500;
    p->gtol = 1e-5;
    p->ftol = 1e-10;
    p->max_ls = 40;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double absmax(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double v = fabs(a[i]);
        if (v > m || v != v) m = v;
    }
    return m;
}

typedef struct {
    LinObjective f;
    void *ctx;
    const double *x0, *d;
    double *xt, *gt;   /* trial point and its gradient (the last evaluation) */
    size_t n;
    int evals;
} LineFn;

/* phi(a) = f(x0 + a d); *dphi = g . d. The trial point stays in xt/gt. */
static double line_eval(LineFn *lf, double a, double *dphi) {
    for (size_t i = 0; i < lf->n; i++) lf->xt[i] = lf->x0[i] + a * lf->d[i];
    double v = lf->f(lf->ctx, lf->xt, lf->gt);
    lf->evals++;
    *dphi = dot(lf->gt, lf->d, lf->n);
    if (!isfinite(v) || !isfinite(*dphi)) {
        *dphi = NAN;
        return INFINITY;
    }
    return v;
}

/* Minimiser of the cubic through (a, fa, da), (b, fb, db), safeguarded into
 * the middle 80 % of the interval; bisection when the cubic is unusable. */
static double cubic_step(double a, double fa, double da, double b, double fb, double db) {
    double lo = a < b ? a : b, hi = a < b ? b : a, w = hi - lo;
    double mid = 0.5 * (a + b);
    if (!isfinite(fa) || !isfinite(fb) || !isfinite(da) || !isfinite(db)) return mid;
    double d1 = da + db - 3.0 * (fa - fb) / (a - b);
    double disc = d1 * d1 - da * db;
    if (disc < 0) return mid;
    double d2 = (b > a ? 1.0 : -1.0) * sqrt(disc);
    double den = db - da + 2.0 * d2;
    if (den == 0) return mid;
    double t = b - (b - a) * (db + d2 - d1) / den;
    if (!isfinite(t) || t < lo + 0.1 * w || t > hi - 0.1 * w) return mid;
    return t;
}

/* Strong-Wolfe search along d from x0 (f0, dphi0 < 0). Returns the accepted
 * step (> 0) with xt/gt holding that point and *fa its value, or 0 when no
 * step satisfied even sufficient decrease.
 *
 * Sufficient decrease is Armijo, or (Hager & Zhang's approximate Wolfe
 * condition, for objectives computed in float whose values stop resolving
 * progress near the minimum) phi(a) <= phi(0) + epsf with
 * phi'(a) <= (2 c1 - 1) phi'(0); comparisons of two function values treat
 * differences within epsf as ties and let the derivative decide. */
static double line_search(LineFn *lf, double f0, double dphi0, double a1, int max_ls,
                          double *fa) {
    const double c1 = 1e-4, c2 = 0.9;
    const double epsf = 1e-6 * fabs(f0) + 1e-300;
#define SUFF(a_, f_, d_) \
    ((f_) <= f0 + c1 * (a_) * dphi0 || ((f_) <= f0 + epsf && (d_) <= (2 * c1 - 1) * dphi0))
    double a_prev = 0, f_prev = f0, d_prev = dphi0;
    double a = a1;
    double best_a = 0, best_f = f0;   /* best point meeting sufficient decrease */
    int start_evals = lf->evals;
    double lo = 0, flo = f0, dlo = dphi0, hi = 0, fhi = 0, dhi = 0;
    int zoom = 0;
    for (int i = 0; lf->evals - start_evals < max_ls; i++) {
        double dp;
        double fv = line_eval(lf, a, &dp);
        if (!SUFF(a, fv, dp) || (i > 0 && fv > f_prev + epsf) ||
            (i > 0 && fv >= f_prev && !(dp < 0))) {
            lo = a_prev; flo = f_prev; dlo = d_prev;
            hi = a; fhi = fv; dhi = dp;
            zoom = 1;
            break;
        }
        if (fv < best_f) {
            best_f = fv;
            best_a = a;
        }
        if (fabs(dp) <= -c2 * dphi0) {
            *fa = fv;
            return a;
        }
        if (dp >= 0) {
            lo = a; flo = fv; dlo = dp;
            hi = a_prev; fhi = f_prev; dhi = d_prev;
            zoom = 1;
            break;
        }
        a_prev = a;
        f_prev = fv;
        d_prev = dp;
        a = a * 4.0;
        if (a > 1e20) break;
    }
    if (zoom) {
        while (lf->evals - start_evals < max_ls) {
            double aj = cubic_step(lo, flo, dlo, hi, fhi, dhi);
            if (!isfinite(fhi)) aj = lo + 0.1 * (hi - lo);  /* shrink hard away from inf */
            double dj;
            double fj = line_eval(lf, aj, &dj);
            if (!SUFF(aj, fj, dj) || fj > flo + epsf || (fj >= flo && !(dj * (hi - lo) < 0))) {
                hi = aj; fhi = fj; dhi = dj;
            } else {
                if (fj < best_f || best_a == 0) {
                    best_f = fj;
                    best_a = aj;
                }
                if (fabs(dj) <= -c2 * dphi0) {
                    *fa = fj;
                    return aj;
                }
                if (dj * (hi - lo) >= 0) {
                    hi = lo; fhi = flo; dhi = dlo;
                }
                lo = aj; flo = fj; dlo = dj;
            }
            if (fabs(hi - lo) <= 1e-16 * (fabs(lo) + fabs(hi))) break;
        }
    }
#undef SUFF
    if (best_a > 0) {
        double dp;
        *fa = line_eval(lf, best_a, &dp);   /* restore xt/gt at the accepted point */
        if (isfinite(*fa) && *fa <= f0 + epsf) return best_a;
    }
    return 0;
}

SpStatus lineval_lbfgs(LinObjective f, void *ctx, double *x, size_t n, const LinLbfgsParam *p,
                       LinLbfgsResult *res) {
    memset(res, 0, sizeof *res);
    if (n == 0) SP_FAIL(SP_EINTERNAL, "lbfgs: no parameters");
    const int m = p->m > 0 ? p->m : 10;
    double *mem = malloc(((size_t)2 * m + 4) * n * sizeof(double));
    double *rho = malloc((size_t)m * sizeof(double)), *alpha = malloc((size_t)m * sizeof(double));
    if (!mem || !rho || !alpha) {
        free(mem);
        free(rho);
        free(alpha);
        SP_FAIL(SP_ENOMEM, "lbfgs: out of memory (%zu parameters, m = %d)", n, m);
    }
    double *S = mem, *Y = S + (size_t)m * n, *g = Y + (size_t)m * n, *d = g + n, *xt = d + n,
           *gt = xt + n;
    double fx = f(ctx, x, g);
    res->evals = 1;
    if (!isfinite(fx)) {
        free(mem);
        free(rho);
        free(alpha);
        SP_FAIL(SP_ENUMERIC, "lbfgs: objective is not finite at the starting point (%g)", fx);
    }
    int k = 0, head = 0;   /* stored pairs, next slot */
    res->stop = SP_LBFGS_MAXITER;
    LineFn lf = {f, ctx, x, d, xt, gt, n, 0};
    int it;
    for (it = 0; it < p->max_iter; it++) {
        double gmax = absmax(g, n);
        if (gmax <= p->gtol) {
            res->stop = SP_LBFGS_GTOL;
            break;
        }
        /* two-loop recursion: d = -H g */
        for (size_t i = 0; i < n; i++) d[i] = -g[i];
        for (int j = 0; j < k; j++) {
            int s = (head - 1 - j + m) % m;
            alpha[s] = rho[s] * dot(S + (size_t)s * n, d, n);
            const double *ys = Y + (size_t)s * n;
            for (size_t i = 0; i < n; i++) d[i] -= alpha[s] * ys[i];
        }
        if (k > 0) {
            int s = (head - 1 + m) % m;
            const double *ys = Y + (size_t)s * n;
            double gamma = dot(S + (size_t)s * n, ys, n) / dot(ys, ys, n);
            for (size_t i = 0; i < n; i++) d[i] *= gamma;
        }
        for (int j = k - 1; j >= 0; j--) {
            int s = (head - 1 - j + m) % m;
            const double *ys = Y + (size_t)s * n, *ss = S + (size_t)s * n;
            double beta = rho[s] * dot(ys, d, n);
            for (size_t i = 0; i < n; i++) d[i] += (alpha[s] - beta) * ss[i];
        }
        double dphi0 = dot(g, d, n);
        if (!(dphi0 < 0)) {   /* not a descent direction: restart with steepest descent */
            for (size_t i = 0; i < n; i++) d[i] = -g[i];
            dphi0 = -dot(g, g, n);
            k = 0;
        }
        double a1 = 1.0;
        if (k == 0) {
            double gn = sqrt(dot(g, g, n));
            a1 = gn > 0 ? fmin(1.0, 1.0 / gn) : 1.0;
        }
        double fnew = fx;
        lf.evals = 0;
        double a = line_search(&lf, fx, dphi0, a1, p->max_ls, &fnew);
        res->evals += lf.evals;
        if (a <= 0) {
            res->stop = SP_LBFGS_LINESEARCH;
            break;
        }
        /* s = xt - x, y = gt - g, into the ring */
        double *sn = S + (size_t)head * n, *yn = Y + (size_t)head * n;
        for (size_t i = 0; i < n; i++) {
            sn[i] = xt[i] - x[i];
            yn[i] = gt[i] - g[i];
        }
        double sy = dot(sn, yn, n);
        if (sy > 1e-12 * dot(yn, yn, n) && sy > 0) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % m;
            if (k < m) k++;
        }
        double fold = fx;
        memcpy(x, xt, n * sizeof(double));
        memcpy(g, gt, n * sizeof(double));
        fx = fnew;
        double scale = fmax(fmax(fabs(fold), fabs(fx)), 1.0);
        if (p->ftol > 0 && (fold - fx) <= p->ftol * scale) {
            it++;
            res->stop = absmax(g, n) <= p->gtol ? SP_LBFGS_GTOL : SP_LBFGS_FTOL;
            break;
        }
    }
    res->iters = it;
    res->f = fx;
    res->gmax = absmax(g, n);
    free(mem);
    free(rho);
    free(alpha);
    return SP_OK;
}
