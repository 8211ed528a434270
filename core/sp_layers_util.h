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

#endif
