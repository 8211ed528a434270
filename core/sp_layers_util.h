/* sp_layers_util.h - small helpers shared by the layer, loss and optimizer
 * sources in core/ (internal: not part of the public API).
 *
 * Everything here is static inline (STYLE.md 2.1), serial, and safe inside a
 * parallel region. */
#ifndef SP_LAYERS_UTIL_H
#define SP_LAYERS_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <omp.h>

/* Internal invariant (a caller bug, never bad user input): print and abort. */
#define SP_LAYER_CHECK(cond, ...)                                             \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: internal error: ", __FILE__, __LINE__);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* Threads a parallel region may use; *_work_floats() queries size per-thread
 * scratch with this, so the caller must not raise the OpenMP thread count
 * between the query and the call. */
static inline int sp_layer_threads(void) {
    int nt = omp_get_max_threads();
    return nt < 1 ? 1 : nt;
}

/* Static partition of [0, n) into nt contiguous blocks: block t is [*lo, *hi). */
static inline void sp_layer_block(size_t n, int nt, int t, size_t *lo, size_t *hi) {
    size_t q = n / (size_t)nt, r = n % (size_t)nt, ut = (size_t)t;
    *lo = ut * q + (ut < r ? ut : r);
    *hi = *lo + q + (ut < r ? 1 : 0);
}

/* Deterministic double-accumulated reductions of float rows. Eight
 * independent accumulators (fixed association, so the result depends only on
 * the data and n) let the compiler vectorise without -ffast-math. */
#define SP_RED_LANES 8

static inline double sp_red_finish(const double *a, double tail) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + tail;
}

/* sum x[i] */
static inline double sp_sum_f(const float *x, size_t n) {
    double a[SP_RED_LANES] = {0}, tail = 0.0;
    size_t i = 0;
    for (; i + SP_RED_LANES <= n; i += SP_RED_LANES)
        for (int k = 0; k < SP_RED_LANES; k++) a[k] += (double)x[i + k];
    for (; i < n; i++) tail += (double)x[i];
    return sp_red_finish(a, tail);
}

/* sum (x[i] - m)^2 */
static inline double sp_sumsq_dev_f(const float *x, size_t n, double m) {
    double a[SP_RED_LANES] = {0}, tail = 0.0;
    size_t i = 0;
    for (; i + SP_RED_LANES <= n; i += SP_RED_LANES)
        for (int k = 0; k < SP_RED_LANES; k++) {
            double d = (double)x[i + k] - m;
            a[k] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - m;
        tail += d * d;
    }
    return sp_red_finish(a, tail);
}

/* sum x[i] * y[i] */
static inline double sp_dot_f(const float *x, const float *y, size_t n) {
    double a[SP_RED_LANES] = {0}, tail = 0.0;
    size_t i = 0;
    for (; i + SP_RED_LANES <= n; i += SP_RED_LANES)
        for (int k = 0; k < SP_RED_LANES; k++) a[k] += (double)x[i + k] * (double)y[i + k];
    for (; i < n; i++) tail += (double)x[i] * (double)y[i];
    return sp_red_finish(a, tail);
}

/* sum g[i] * (x[i] - m) */
static inline double sp_dot_dev_f(const float *g, const float *x, size_t n, double m) {
    double a[SP_RED_LANES] = {0}, tail = 0.0;
    size_t i = 0;
    for (; i + SP_RED_LANES <= n; i += SP_RED_LANES)
        for (int k = 0; k < SP_RED_LANES; k++) a[k] += (double)g[i + k] * ((double)x[i + k] - m);
    for (; i < n; i++) tail += (double)g[i] * ((double)x[i] - m);
    return sp_red_finish(a, tail);
}

#endif
