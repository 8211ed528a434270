/* sp_layers_util.h - small helpers shared by the layer, loss and optimizer
 * sources in core/ (internal: not part of the public API).
 *
 * Everything here is static inline (STYLE.md 2.1), serial, and safe inside a
 * parallel region. */
#ifndef SP_LAYERS_UTIL_H
#define SP_LAYERS_UTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    const size_t nv = n - n % SP_RED_LANES;
    size_t i = 0;
    for (; i < nv; i += SP_RED_LANES)
        for (int k = 0; k < SP_RED_LANES; k++) a[k] += (double)x[i + k];
    for (; i < n; i++) tail += (double)x[i];
    return sp_red_finish(a, tail);
}

/* sum (x[i] - m)^2 */
static inline double sp_sumsq_dev_f(const float *x, size_t n, double m) {
    double a[SP_RED_LANES] = {0}, tail = 0.0;
    const size_t nv = n - n % SP_RED_LANES;
    size_t i = 0;
    for (; i < nv; i += SP_RED_LANES)
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
    const size_t nv = n - n % SP_RED_LANES;
    size_t i = 0;
    for (; i < nv; i += SP_RED_LANES)
        for (int k = 0; k < SP_RED_LANES; k++) a[k] += (double)x[i + k] * (double)y[i + k];
    for (; i < n; i++) tail += (double)x[i] * (double)y[i];
    return sp_red_finish(a, tail);
}

/* sum g[i] * (x[i] - m) */
static inline double sp_dot_dev_f(const float *g, const float *x, size_t n, double m) {
    double a[SP_RED_LANES] = {0}, tail = 0.0;
    const size_t nv = n - n % SP_RED_LANES;
    size_t i = 0;
    for (; i < nv; i += SP_RED_LANES)
        for (int k = 0; k < SP_RED_LANES; k++) a[k] += (double)g[i + k] * ((double)x[i + k] - m);
    for (; i < n; i++) tail += (double)g[i] * ((double)x[i] - m);
    return sp_red_finish(a, tail);
}

/* max of x[0..n), n >= 1: 16 independent lanes so the loop vectorises (a
 * NaN is skipped as by a sequential `x > m` scan unless it is x[0]; it then
 * reaches the caller's exp and propagates). */
#define SP_MAX_LANES 16
static inline float sp_max_f(const float *x, size_t n) {
    if (n < SP_MAX_LANES) {
        float m = x[0];
        for (size_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
        return m;
    }
    float m[SP_MAX_LANES];
    for (int l = 0; l < SP_MAX_LANES; l++) m[l] = x[l];
    const size_t nv = n - n % SP_MAX_LANES;
    for (size_t i = SP_MAX_LANES; i < nv; i += SP_MAX_LANES)
        for (int l = 0; l < SP_MAX_LANES; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
    float r = m[0];
    for (int l = 1; l < SP_MAX_LANES; l++) r = m[l] > r ? m[l] : r;
    for (size_t i = nv; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

/* exp for float rows, vectorised without libm calls (glibc's expf is a
 * scalar call, and PyTorch's softmax uses a vectorised exp too). The
 * argument (a float) is reduced and the polynomial evaluated in double:
 * x = n ln2 + r, |r| <= ln2/2, exp(r) by its degree-8 Taylor polynomial
 * (truncation < 3e-10), times 2^n built in the exponent field; the single
 * final rounding to float makes the result within ~0.5 ulp (as accurate as
 * libm's expf, which matters for float finite-difference checks downstream).
 * Three branch-free passes over chunks of SP_EXP_CHUNK values, because GCC
 * does not if-convert the clamps once they are fused with the polynomial:
 *   A: t = clamp(x - shift, lo, hi), NaN -> 0 (keeps the int cast defined)
 *   B: t = exp_poly(t)
 *   C: y = t, or 0 below lo (underflow), +inf above hi, NaN for NaN.
 * y may equal x. Returns the sum of y in double (sp_sum_f order). */
#define SP_EXP_CHUNK 256
#define SP_EXP_HI 88.3762626647949f  /* exp(HI) < FLT_MAX, n <= 127 */
#define SP_EXP_LO -87.3365448f       /* exp(LO) ~ FLT_MIN, n >= -126 */

static inline float sp_exp_poly(float xc) {
    const double x = (double)xc;
    const double t = x * 1.4426950408889634074;
    const int n = (int)(t + 128.5) - 128;  /* round to nearest; t + 128.5 > 0 */
    const double r = x - (double)n * 0.69314718055994530942;
    double p = 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const int64_t bits = (int64_t)(n + 1023) << 52;  /* 2^n as a double */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return (float)(p * scale);
}

static inline void sp_exp_shift_chunk(float *y, const float *x, size_t n, float shift) {
    float t[SP_EXP_CHUNK];
    for (size_t i = 0; i < n; i++) {
        float v = x[i] - shift;
        v = v > SP_EXP_HI ? SP_EXP_HI : v;
        v = v < SP_EXP_LO ? SP_EXP_LO : v;
        t[i] = v == v ? v : 0.0f;
    }
    for (size_t i = 0; i < n; i++) t[i] = sp_exp_poly(t[i]);
    for (size_t i = 0; i < n; i++) {
        const float d = x[i] - shift;
        float v = t[i];
        v = d < SP_EXP_LO ? 0.0f : v;
        v = d > SP_EXP_HI ? (float)HUGE_VAL : v;
        y[i] = d != d ? d : v;
    }
}

/* y[i] = exp(x[i] - shift), in place allowed; returns sum y in double */
static inline double sp_exp_shift_f(float *y, const float *x, size_t n, float shift) {
    for (size_t i0 = 0; i0 < n; i0 += SP_EXP_CHUNK) {
        const size_t m = n - i0 < SP_EXP_CHUNK ? n - i0 : SP_EXP_CHUNK;
        sp_exp_shift_chunk(y + i0, x + i0, m, shift);
    }
    return sp_sum_f(y, n);
}

/* scalar exp with the same arithmetic */
static inline float sp_expf(float x) {
    float y;
    sp_exp_shift_chunk(&y, &x, 1, 0.0f);
    return y;
}

#endif
