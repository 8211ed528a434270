/* aug_internal.h - private helpers of the augment module (not installed). */
#ifndef AUG_INTERNAL_H
#define AUG_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>

/* Internal invariant (a bug, not bad input): always compiled in. */
#define AUG_ASSERT(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: internal error: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* out[j] = np.interp(j, xp, fp) for j = 0..L-1 (integer queries), xp[n]
 * increasing: one merge pass. */
void aug_interp_int_queries(double *out, int L, const double *xp, const double *fp, int n);

/* Spline knots xk[nk], second derivatives M[nk] and spacing h (§2.2). */
void aug_spline_setup(const double *y, int nk, int L, double *xk, double *M, double *h);
/* out[t] = S(t), or x[t]*S(t) when x is not NULL, t = 0..L-1. */
void aug_spline_eval_mul(double *out, const double *x, const double *y, int nk, int L,
                         const double *xk, const double *M, double h);

#endif
