/* sp_rng.h - numpy-compatible PCG64 (XSL-RR 128/64), bit-exact with
 * numpy.random.Generator(PCG64) for the draws used by the synthetic benchmark
 * (reference/synthetic.md §A4), plus the stream derivation used everywhere
 * else. Every stochastic part of specssl takes an explicit SpRng.
 */
#ifndef SP_RNG_H
#define SP_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s_hi, s_lo;      /* 128-bit LCG state */
    uint64_t inc_hi, inc_lo;  /* 128-bit increment (odd) */
    int has_uint32;           /* numpy's one-word next_uint32 buffer */
    uint32_t uinteger;
} SpRng;

/* Set state and increment directly (e.g. the state after default_rng(2022)). */
void sp_rng_set_raw(SpRng *r, uint64_t s_hi, uint64_t s_lo, uint64_t inc_hi, uint64_t inc_lo);
/* PCG's standard srandom: s=0; inc=(initseq<<1)|1; step; s+=initstate; step. */
void sp_rng_srandom(SpRng *r, uint64_t initstate_hi, uint64_t initstate_lo,
                    uint64_t initseq_hi, uint64_t initseq_lo);
/* The state of numpy.random.default_rng(2022). */
void sp_rng_numpy2022(SpRng *r);
/* splitmix64: advances *x and returns the next output. */
uint64_t sp_splitmix64(uint64_t *x);
/* Independent stream keyed by (seed, a, b, c): e.g. (seed, epoch, sample, view).
 * initstate = two splitmix64 outputs of seed, initseq = hash(a, b, c). The
 * result depends only on the key, never on thread count or call order. */
void sp_rng_stream(SpRng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

uint64_t sp_rng_next_u64(SpRng *r);
uint32_t sp_rng_next_u32(SpRng *r);   /* numpy buffering: low half, then high half */
double sp_rng_next_double(SpRng *r);  /* (u64 >> 11) * 2^-53, in [0, 1) */
/* numpy Generator.integers(lo, hi) for a scalar, int64 dtype: [lo, hi). Uses
 * the 32-bit Lemire path when hi-lo-1 < 2^32-1 (as numpy), else 64-bit. */
int64_t sp_rng_integers(SpRng *r, int64_t lo, int64_t hi);
/* Uniform integer in [0, n) (n >= 1): same as sp_rng_integers(r, 0, n). */
int64_t sp_rng_below(SpRng *r, int64_t n);
double sp_rng_uniform(SpRng *r, double a, double b); /* a + (b-a)*next_double */
/* Standard normal by Box-Muller, cosine branch only: exactly two doubles per
 * call: sqrt(-2 ln(1-u1)) * cos(2 pi u2) (reference/synthetic.md §B6). */
double sp_rng_normal(SpRng *r);
/* Fisher-Yates shuffle of an index array (uses sp_rng_below). */
void sp_rng_shuffle_int(SpRng *r, int *a, int n);

#endif
