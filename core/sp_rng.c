#include "sp_rng.h"

#include <math.h>

__extension__ typedef unsigned __int128 sp_u128;

#define SP_PCG_MULT_HI 0x2360ED051FC65DA4ULL
#define SP_PCG_MULT_LO 0x4385DF649FCCF645ULL
#define SP_TWO_PI 6.283185307179586476925286766559

static sp_u128 mk(uint64_t hi, uint64_t lo) { return ((sp_u128)hi << 64) | lo; }

static void step(SpRng *r) {
    sp_u128 s = mk(r->s_hi, r->s_lo);
    s = s * mk(SP_PCG_MULT_HI, SP_PCG_MULT_LO) + mk(r->inc_hi, r->inc_lo);
    r->s_hi = (uint64_t)(s >> 64);
    r->s_lo = (uint64_t)s;
}

void sp_rng_set_raw(SpRng *r, uint64_t s_hi, uint64_t s_lo, uint64_t inc_hi, uint64_t inc_lo) {
    r->s_hi = s_hi;
    r->s_lo = s_lo;
    r->inc_hi = inc_hi;
    r->inc_lo = inc_lo;
    r->has_uint32 = 0;
    r->uinteger = 0;
}

void sp_rng_srandom(SpRng *r, uint64_t initstate_hi, uint64_t initstate_lo,
                    uint64_t initseq_hi, uint64_t initseq_lo) {
    sp_u128 inc = (mk(initseq_hi, initseq_lo) << 1) | 1u;
    sp_rng_set_raw(r, 0, 0, (uint64_t)(inc >> 64), (uint64_t)inc);
    step(r);
    sp_u128 s = mk(r->s_hi, r->s_lo) + mk(initstate_hi, initstate_lo);
    r->s_hi = (uint64_t)(s >> 64);
    r->s_lo = (uint64_t)s;
    step(r);
}

void sp_rng_numpy2022(SpRng *r) {
    sp_rng_set_raw(r, 0x73f21f8ab6cea0f1ULL, 0xa68cdd8edc871faeULL,
                   0x68189d6798d19a7aULL, 0x725c30681f97445bULL);
}

uint64_t sp_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void sp_rng_stream(SpRng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x = seed;
    uint64_t hi = sp_splitmix64(&x), lo = sp_splitmix64(&x);
    /* initseq: hash of the key components (any injective-enough mix will do:
     * PCG streams with different increments are independent). */
    uint64_t h = a * 0x9E3779B97F4A7C15ULL;
    uint64_t y = h ^ (b + 0x632BE59BD9B4E019ULL);
    uint64_t s1 = sp_splitmix64(&y);
    y = s1 ^ (c + 0x85EBCA77C2B2AE63ULL);
    uint64_t s2 = sp_splitmix64(&y);
    sp_rng_srandom(r, hi, lo, s1 ^ a, s2);
}

uint64_t sp_rng_next_u64(SpRng *r) {
    step(r);
    uint64_t x = r->s_hi ^ r->s_lo;
    unsigned rot = (unsigned)(r->s_hi >> 58);
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

uint32_t sp_rng_next_u32(SpRng *r) {
    if (r->has_uint32) {
        r->has_uint32 = 0;
        return r->uinteger;
    }
    uint64_t v = sp_rng_next_u64(r);
    r->has_uint32 = 1;
    r->uinteger = (uint32_t)(v >> 32);
    return (uint32_t)v;
}

double sp_rng_next_double(SpRng *r) {
    return (double)(sp_rng_next_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t bounded_u32(SpRng *r, uint32_t rng) {
    /* Lemire, numpy buffered_bounded_lemire_uint32 without local buffer */
    uint32_t excl = rng + 1u;
    uint64_t m = (uint64_t)sp_rng_next_u32(r) * excl;
    uint32_t left = (uint32_t)m;
    if (left < excl) {
        uint32_t t = (UINT32_MAX - rng) % excl;
        while (left < t) {
            m = (uint64_t)sp_rng_next_u32(r) * excl;
            left = (uint32_t)m;
        }
    }
    return m >> 32;
}

static uint64_t bounded_u64(SpRng *r, uint64_t rng) {
    /* Lemire 64-bit (numpy bounded_lemire_uint64) */
    uint64_t excl = rng + 1u;
    sp_u128 m = (sp_u128)sp_rng_next_u64(r) * excl;
    uint64_t left = (uint64_t)m;
    if (left < excl) {
        uint64_t t = (UINT64_MAX - rng) % excl;
        while (left < t) {
            m = (sp_u128)sp_rng_next_u64(r) * excl;
            left = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

int64_t sp_rng_integers(SpRng *r, int64_t lo, int64_t hi) {
    uint64_t rng = (uint64_t)(hi - lo - 1);
    if (hi - lo <= 1) return lo;
    if (rng == 0xFFFFFFFFULL) return lo + (int64_t)sp_rng_next_u32(r);
    if (rng < 0xFFFFFFFFULL) return lo + (int64_t)bounded_u32(r, (uint32_t)rng);
    if (rng == UINT64_MAX) return lo + (int64_t)sp_rng_next_u64(r);
    return lo + (int64_t)bounded_u64(r, rng);
}

int64_t sp_rng_below(SpRng *r, int64_t n) { return sp_rng_integers(r, 0, n); }

double sp_rng_uniform(SpRng *r, double a, double b) {
    return a + (b - a) * sp_rng_next_double(r);
}

double sp_rng_normal(SpRng *r) {
    double u1 = sp_rng_next_double(r);
    double u2 = sp_rng_next_double(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(SP_TWO_PI * u2);
}

void sp_rng_shuffle_int(SpRng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)sp_rng_below(r, (int64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
