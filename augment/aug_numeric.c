/* aug_numeric.c - the deterministic numerics behind the warps, in double:
 * the not-a-knot cubic spline of scipy.interpolate.CubicSpline (§2.2) and
 * np.interp (§2.3), plus np.linspace's element formula.
 *
 * L: evaluation points, nk: spline points. No allocation (the spline's
 * per-knot arrays live on the stack, nk <= SP_AUG_MAX_POINTS). Serial, safe
 * inside a parallel region.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "aug_internal.h"
#include "sp_augment.h"

double aug_linspace_at(int k, int num, double stop) {
    /* numpy: step = delta/div; y = arange(num)*step (+ start = 0); y[-1] = stop.
     * num == 1: [0]. */
    if (num <= 1) return 0.0;
    if (k == num - 1) return stop;
    double step = stop / (double)(num - 1);
    return (double)k * step;
}

/* Second derivatives M[0..n] of the not-a-knot spline through y[0..n] on a
 * uniform grid of spacing h (n = nk-1 >= 1).
 *   interior rows i = 1..n-1:  M[i-1] + 4 M[i] + M[i+1] = r[i] = 6 (y[i+1] - 2y[i] + y[i-1]) / h^2
 *   not-a-knot rows:           M0 - 2 M1 + M2 = 0,  M[n-2] - 2 M[n-1] + M[n] = 0.
 * Substituting M0 = 2M1 - M2 into row 1 gives 6 M1 = r1 (and likewise
 * M[n-1] = r[n-1]/6), so the system reduces to a diagonally dominant
 * tridiagonal one in M[2..n-2] (Thomas algorithm, no pivoting needed). n = 2
 * (three points) is the parabola: M0 = M1 = M2 = r1/6; n = 1 the line. */
static void spline_second_derivatives(double *M, const double *y, int n, double h) {
    if (n == 1) {
        M[0] = M[1] = 0.0;
        return;
    }
    double r[SP_AUG_MAX_POINTS] = {0};
    double hh = h * h;
    for (int i = 1; i < n; i++) r[i] = 6.0 * (y[i + 1] - 2.0 * y[i] + y[i - 1]) / hh;
    if (n == 2) {
        M[0] = M[1] = M[2] = r[1] / 6.0;
        return;
    }
    M[1] = r[1] / 6.0;
    M[n - 1] = r[n - 1] / 6.0;
    /* Unknowns M[2..n-2] (m = n-3 of them). */
    int m = n - 3;
    if (m > 0) {
        double cp[SP_AUG_MAX_POINTS], dp[SP_AUG_MAX_POINTS];
        for (int k = 0; k < m; k++) {
            int i = k + 2;
            double rhs = r[i];
            if (k == 0) rhs -= M[1];
            if (k == m - 1) rhs -= M[n - 1];
            if (k == 0) {
                cp[k] = 1.0 / 4.0;
                dp[k] = rhs / 4.0;
            } else {
                double den = 4.0 - cp[k - 1];
                cp[k] = 1.0 / den;
                dp[k] = (rhs - dp[k - 1]) / den;
            }
        }
        M[m - 1 + 2] = dp[m - 1];
        for (int k = m - 2; k >= 0; k--) M[k + 2] = dp[k] - cp[k] * M[k + 3];
    }
    M[0] = 2.0 * M[1] - M[2];
    M[n] = 2.0 * M[n - 1] - M[n - 2];
}

void aug_spline_setup(const double *y, int nk, int L, double *xk, double *M, double *h_out) {
    AUG_ASSERT(nk >= 2 && nk <= SP_AUG_MAX_POINTS, "spline points %d not in [2, %d]", nk,
               SP_AUG_MAX_POINTS);
    AUG_ASSERT(L >= 2, "spline length %d < 2", L);
    int n = nk - 1;
    double stop = (double)(L - 1);
    for (int i = 0; i <= n; i++) xk[i] = aug_linspace_at(i, nk, stop);
    double h = stop / (double)n;
    spline_second_derivatives(M, y, n, h);
    *h_out = h;
}

void aug_spline_eval(double *out, const double *y, int nk, int L) {
    double xk[SP_AUG_MAX_POINTS], M[SP_AUG_MAX_POINTS], h;
    aug_spline_setup(y, nk, L, xk, M, &h);
    aug_spline_eval_mul(out, NULL, y, nk, L, xk, M, h);
}

/* out[t] = S(t) (x NULL) or x[t]*S(t), given the knots and second derivatives.
 * Per interval S = a + b d + c d^2 + e d^3, evaluated in scipy's PPoly order
 * (a, + b z, + c z, + e z with z = d, d*d, d*d*d). Interval i holds the
 * integers t with x_i <= t < x_{i+1} (the last one also t = x_n), i.e. the
 * boundaries of comparing t with the stored knot array, as scipy; the inner
 * loops have no branches and vectorise. */
void aug_spline_eval_mul(double *out, const double *x, const double *y, int nk, int L,
                         const double *xk, const double *M, double h) {
    int n = nk - 1;
    int t0 = 0;
    for (int i = 0; i < n && t0 < L; i++) {
        int t1 = L;
        if (i < n - 1) {
            double c1 = ceil(xk[i + 1]);
            t1 = c1 < (double)L ? (int)c1 : L;
        }
        const double a = y[i];
        const double b = (y[i + 1] - y[i]) / h - h * (2.0 * M[i] + M[i + 1]) / 6.0;
        const double c = M[i] / 2.0;
        const double e = (M[i + 1] - M[i]) / (6.0 * h);
        const double xi = xk[i];
        if (x) {
            for (int t = t0; t < t1; t++) {
                double d = (double)t - xi;
                double z = d, res = a;
                res += b * z;
                z *= d;
                res += c * z;
                z *= d;
                res += e * z;
                out[t] = x[t] * res;
            }
        } else {
            for (int t = t0; t < t1; t++) {
                double d = (double)t - xi;
                double z = d, res = a;
                res += b * z;
                z *= d;
                res += c * z;
                z *= d;
                res += e * z;
                out[t] = res;
            }
        }
        t0 = t1;
    }
}

/* One np.interp step given j with xp[j] <= t < xp[j+1] (numpy arr_interp). */
static inline double interp_seg(double t, const double *xp, const double *fp, int j) {
    if (xp[j] == t) return fp[j];
    double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    double v = slope * (t - xp[j]) + fp[j];
    if (isnan(v)) {
        v = slope * (t - xp[j + 1]) + fp[j + 1];
        if (isnan(v) && fp[j] == fp[j + 1]) v = fp[j];
    }
    return v;
}

void aug_interp(double *out, const double *t, int nt, const double *xp, const double *fp, int n) {
    AUG_ASSERT(n >= 1, "interp over %d points", n);
    int j = 0;
    for (int k = 0; k < nt; k++) {
        double tv = t[k];
        if (isnan(tv)) {
            out[k] = tv;
            continue;
        }
        if (tv < xp[0]) {
            out[k] = fp[0];
            continue;
        }
        if (tv >= xp[n - 1]) {
            out[k] = fp[n - 1];
            continue;
        }
        /* Queries increase: advance j to the last xp[j] <= tv. */
        if (xp[j] > tv) j = 0;   /* defensive: a decreasing query restarts the merge */
        while (j + 1 < n && xp[j + 1] <= tv) j++;
        out[k] = interp_seg(tv, xp, fp, j);
    }
}

void aug_interp_int_queries(double *out, int L, const double *xp, const double *fp, int n) {
    int j = 0;
    for (int k = 0; k < L; k++) {
        double q = (double)k;
        if (q < xp[0]) {
            out[k] = fp[0];
        } else if (q >= xp[n - 1]) {
            out[k] = fp[n - 1];
        } else {
            while (j + 1 < n && xp[j + 1] <= q) j++;
            out[k] = interp_seg(q, xp, fp, j);
        }
    }
}

void aug_normals(double *z, int n, SpRng *r) {
    for (int i = 0; i < n; i += 2) {
        double u, v, s;
        do {
            u = 2.0 * sp_rng_next_double(r) - 1.0;
            v = 2.0 * sp_rng_next_double(r) - 1.0;
            s = u * u + v * v;
        } while (s >= 1.0 || s == 0.0);
        double f = sqrt(-2.0 * log(s) / s);
        z[i] = u * f;
        if (i + 1 < n) z[i + 1] = v * f;
    }
}

double aug_interp_unit(double t, const double *fp, int n) {
    if (isnan(t)) return t;
    if (t < 0.0) return fp[0];
    if (t >= (double)(n - 1)) return fp[n - 1];
    int j = (int)t; /* floor for t >= 0; xp[j] = j <= t < j+1 */
    if ((double)j == t) return fp[j];
    /* slope = (fp[j+1]-fp[j]) / ((j+1) - j) = the difference itself, exactly. */
    double slope = fp[j + 1] - fp[j];
    double v = slope * (t - (double)j) + fp[j];
    if (isnan(v)) {
        v = slope * (t - (double)(j + 1)) + fp[j + 1];
        if (isnan(v) && fp[j] == fp[j + 1]) v = fp[j];
    }
    return v;
}
