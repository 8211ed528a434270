/* synth_ramp.c - beamtime-like XRD spectra along compression ramps with phase
 * transitions (reference/synthetic.md Part B). Deterministic from one seed:
 * one PCG64 stream per ramp; in gauss mode every frame consumes a fixed
 * number of doubles, so frames are generated in parallel by jumping the
 * stream ahead (the result does not depend on the thread count). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_data.h"

__extension__ typedef unsigned __int128 u128;

#define NPK 28
#define LAMBDA 0.4828
#define TTH_LO 4.0
#define TTH_SPAN 24.0
#define BETA 0.5
#define PHI_FAST 1.3
#define COUNTS_S 2000.0
#define READ_NOISE 3.0
#define SP_PI_D 3.14159265358979323846

/* §B3 tables A (6 peaks), B (11), C (11), in this order. */
static const double k_d0[NPK] = {
    2.4866, 2.1535, 1.5228, 1.2986, 1.2433, 1.0768,
    2.5017, 2.4816, 2.1535, 1.5273, 1.5182, 1.3036, 1.2979, 1.2950, 1.2509, 1.2408, 1.0767,
    2.7010, 2.3279, 2.1378, 1.7633, 1.4243, 1.3505, 1.3440, 1.2033, 1.1682, 1.1378, 1.0689,
};
static const double k_h[NPK] = {
    0.650, 1.000, 0.618, 0.273, 0.187, 0.076,
    0.165, 0.485, 1.000, 0.313, 0.306, 0.069, 0.136, 0.068, 0.048, 0.139, 0.076,
    0.220, 0.043, 1.000, 0.411, 0.262, 0.071, 0.210, 0.112, 0.013, 0.109, 0.056,
};
static const double k_kappa[3] = {0.10, 0.10, 0.05};

static int peak_phase(int k) { return k < 6 ? 0 : k < 17 ? 1 : 2; }

void synth_ramp_default(SpRampOptions *o) {
    memset(o, 0, sizeof *o);
    o->seed = 2024;
    o->ramps = 2;
    o->first_ramp = 0;
    o->frames_slow = 654;
    o->frames_fast = 218;
    o->L = 4020;
    o->poisson = 0;
    o->intensity_scaling = 1;
}

static int ramp_frames(const SpRampOptions *o, int r) {
    return (r & 1) ? o->frames_fast : o->frames_slow;
}

int64_t synth_ramp_total_frames(const SpRampOptions *o) {
    int64_t n = 0;
    for (int i = 0; i < o->ramps; i++) n += ramp_frames(o, o->first_ramp + i);
    return n;
}

void synth_ramp_seed(SpRng *rng, uint64_t seed, int r) {
    uint64_t x = seed;
    uint64_t a = sp_splitmix64(&x);
    uint64_t b = sp_splitmix64(&x);
    sp_rng_srandom(rng, a, b, 0, (uint64_t)r);
}

/* PCG64 jump ahead by delta steps (delta next_u64 calls). */
static void rng_advance(SpRng *r, uint64_t delta) {
    u128 cur_mult = ((u128)0x2360ED051FC65DA4ULL << 64) | 0x4385DF649FCCF645ULL;
    u128 cur_plus = ((u128)r->inc_hi << 64) | r->inc_lo;
    u128 acc_mult = 1, acc_plus = 0;
    while (delta > 0) {
        if (delta & 1) {
            acc_mult *= cur_mult;
            acc_plus = acc_plus * cur_mult + cur_plus;
        }
        cur_plus = (cur_mult + 1) * cur_plus;
        cur_mult *= cur_mult;
        delta >>= 1;
    }
    u128 s = ((u128)r->s_hi << 64) | r->s_lo;
    s = acc_mult * s + acc_plus;
    r->s_hi = (uint64_t)(s >> 64);
    r->s_lo = (uint64_t)s;
}

/* doubles drawn per ramp before frame 0 */
#define RAMP_DRAWS (1 + 1 + 1 + 1 + 1 + 4 + 1 + 2 * NPK)

void synth_ramp_params(SpRng *rng, int r, const SpRampOptions *o, SpRampParams *p) {
    memset(p, 0, sizeof *p);
    p->fast = r & 1;
    p->n_frames = ramp_frames(o, r);
    /* separate statements: the draw order is the contract (§B6) */
    p->gamma = exp(sp_rng_uniform(rng, -0.2, 0.2));
    p->pi1 = 0.30 + sp_rng_uniform(rng, -0.04, 0.04);
    p->pi2 = 0.70 + sp_rng_uniform(rng, -0.04, 0.04);
    p->gamma0 = sp_rng_uniform(rng, 0.035, 0.055);
    p->eta = sp_rng_uniform(rng, 0.3, 0.7);
    p->c[0] = sp_rng_uniform(rng, 0.15, 0.35);
    p->c[1] = sp_rng_uniform(rng, -0.10, 0.10);
    p->c[2] = sp_rng_uniform(rng, 0.0, 0.10);
    p->c[3] = sp_rng_uniform(rng, -0.03, 0.03);
    p->delta = sp_rng_uniform(rng, -0.2, 0.2);
    for (int k = 0; k < NPK; k++) p->tau[k] = exp(0.15 * sp_rng_normal(rng));
    p->w1 = p->w2 = 0.05;
    if (p->fast) {
        p->pi1 += 0.05;
        p->pi2 += 0.05;
        p->w1 *= 1.5;
        p->w2 *= 1.5;
    }
}

static double clamp01(double v) { return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v; }

void synth_ramp_fractions(const SpRampParams *rp, double p, double f[3]) {
    double s1 = clamp01((p - (rp->pi1 - rp->w1)) / (2.0 * rp->w1));
    double s2 = clamp01((p - (rp->pi2 - rp->w2)) / (2.0 * rp->w2));
    f[0] = 1.0 - s1;
    f[1] = s1 * (1.0 - s2);
    f[2] = s1 * s2;
}

double synth_ramp_peak_2theta(int k, double p) {
    double d = k_d0[k] * (1.0 - k_kappa[peak_phase(k)] * p);
    double s = LAMBDA / (2.0 * d);
    if (!(s < 1.0)) return -1.0;
    return 2.0 * asin(s) * (180.0 / SP_PI_D);
}

/* Poisson(mu): Knuth below 30, else rounded normal approximation (>= 0). */
static double poisson_draw(SpRng *rng, double mu) {
    if (mu < 30.0) {
        double lim = exp(-mu), prod = 1.0;
        int k = -1;
        do {
            k++;
            prod *= sp_rng_next_double(rng);
        } while (prod > lim);
        return (double)k;
    }
    double v = floor(mu + sqrt(mu) * sp_rng_normal(rng) + 0.5);
    return v < 0.0 ? 0.0 : v;
}

/* One frame: draws A, the 28 grain factors, then the noise, in this order. */
static void gen_frame(SpRng *rng, const SpRampOptions *o, const SpRampParams *rp, int f,
                      const double *axis, const double *u, float *out, double *fr_out, double *t_out,
                      double *p_out, int *bin_out) {
    const int L = o->L;
    double t = rp->n_frames > 1 ? (double)f / (double)(rp->n_frames - 1) : 0.0;
    double p = pow(t, rp->gamma);
    int bin = (int)floor(5.0 * t);
    if (bin > 4) bin = 4;
    double fr[3];
    synth_ramp_fractions(rp, p, fr);

    double A = sp_rng_uniform(rng, 0.8, 1.2);
    if (!o->intensity_scaling) A = 1.0;
    double height[NPK], tth[NPK];
    for (int k = 0; k < NPK; k++) {
        double j = exp(0.05 * sp_rng_normal(rng));
        height[k] = fr[peak_phase(k)] * k_h[k] * rp->tau[k] * j;
        tth[k] = synth_ramp_peak_2theta(k, p);
    }
    double G = rp->gamma0 * (1.0 + BETA * p) * (rp->fast ? PHI_FAST : 1.0);
    const double eta = rp->eta, g4 = 4.0 * log(2.0);
    for (int i = 0; i < L; i++) {
        double uu = u[i];
        double bg = rp->c[0] * (1.0 + rp->delta * t) + rp->c[1] * uu + rp->c[2] * uu * uu +
                    rp->c[3] * uu * uu * uu;
        if (bg < 0.01) bg = 0.01;
        double acc = 0.0;
        for (int k = 0; k < NPK; k++) {
            if (height[k] == 0.0 || tth[k] < 0.0) continue; /* adds exactly 0 */
            double v = (axis[i] - tth[k]) / G;
            double v2 = v * v;
            /* exp(-a) is exactly +0.0 for a >= 746 (e^-746 < 2^-1075): skipping the
             * call there changes no value and avoids libm's slow underflow path */
            double a = g4 * v2;
            double ga = a < 746.0 ? exp(-a) : 0.0;
            acc += height[k] * (eta / (1.0 + 4.0 * v2) + (1.0 - eta) * ga);
        }
        double mu = COUNTS_S * A * (bg + acc);
        double y;
        if (!o->poisson) {
            y = mu + sqrt(mu + READ_NOISE * READ_NOISE) * sp_rng_normal(rng);
        } else {
            y = poisson_draw(rng, mu) + READ_NOISE * sp_rng_normal(rng);
        }
        out[i] = (float)(y > 0.0 ? y : 0.0);
    }
    fr_out[0] = fr[0];
    fr_out[1] = fr[1];
    fr_out[2] = fr[2];
    *t_out = t;
    *p_out = p;
    *bin_out = bin;
}

/* Frame f of ramp r (parameters rp) into row `row` of d, drawing from rng:
 * the spectrum, its label (the largest phase fraction, first on ties) and the
 * per-row metadata. */
static void gen_row(SpRampData *d, SpRng *rng, const SpRampOptions *o, const SpRampParams *rp,
                    int r, int f, int64_t row, const double *u) {
    double fr[3];
    int bin;
    gen_frame(rng, o, rp, f, d->axis, u, d->x + (size_t)row * (size_t)o->L, fr, &d->t[row],
              &d->p[row], &bin);
    int lab = 0;
    if (fr[1] > fr[lab]) lab = 1;
    if (fr[2] > fr[lab]) lab = 2;
    d->labels[row] = lab;
    d->extvar[row] = bin;
    d->ramp[row] = r;
    d->frame[row] = f;
    d->fast[row] = rp->fast;
    for (int c = 0; c < 3; c++) d->fractions[row * 3 + c] = (float)fr[c];
}

void synth_ramp_free(SpRampData *d) {
    if (!d) return;
    free(d->x);
    free(d->labels);
    free(d->extvar);
    free(d->ramp);
    free(d->frame);
    free(d->fast);
    free(d->t);
    free(d->p);
    free(d->fractions);
    free(d->axis);
    memset(d, 0, sizeof *d);
}

SpStatus synth_ramp_generate(const SpRampOptions *o, SpRampData *d) {
    memset(d, 0, sizeof *d);
    if (o->ramps < 1 || o->first_ramp < 0 || o->frames_slow < 1 || o->frames_fast < 1 || o->L < 2)
        SP_FAIL(SP_EUSAGE, "ramp: need ramps >= 1, first ramp >= 0, frames >= 1 and length >= 2");
    const int L = o->L;
    const int64_t n = synth_ramp_total_frames(o);
    d->n = n;
    d->L = L;
    d->x = malloc((size_t)n * (size_t)L * sizeof(float));
    d->labels = malloc((size_t)n * sizeof(int32_t));
    d->extvar = malloc((size_t)n * sizeof(int32_t));
    d->ramp = malloc((size_t)n * sizeof(int32_t));
    d->frame = malloc((size_t)n * sizeof(int32_t));
    d->fast = malloc((size_t)n * sizeof(int32_t));
    d->t = malloc((size_t)n * sizeof(double));
    d->p = malloc((size_t)n * sizeof(double));
    d->fractions = malloc((size_t)n * 3 * sizeof(float));
    d->axis = malloc((size_t)L * sizeof(double));
    double *u = malloc((size_t)L * sizeof(double));
    if (!d->x || !d->labels || !d->extvar || !d->ramp || !d->frame || !d->fast || !d->t || !d->p ||
        !d->fractions || !d->axis || !u) {
        free(u);
        synth_ramp_free(d);
        SP_FAIL(SP_ENOMEM, "out of memory for %lld ramp spectra of %d points", (long long)n, L);
    }
    for (int i = 0; i < L; i++) {
        d->axis[i] = TTH_LO + TTH_SPAN * (double)i / (double)(L - 1);
        u[i] = 2.0 * (double)i / (double)(L - 1) - 1.0;
    }
    int64_t row0 = 0;
    for (int ri = 0; ri < o->ramps; ri++) {
        const int r = o->first_ramp + ri;
        SpRng base;
        synth_ramp_seed(&base, o->seed, r);
        SpRampParams rp;
        synth_ramp_params(&base, r, o, &rp);
        const int nf = rp.n_frames;
        const uint64_t per_frame = 1 + 2 * NPK + 2 * (uint64_t)L;
        if (!o->poisson) {
#pragma omp parallel for schedule(static)
            for (int f = 0; f < nf; f++) {
                SpRng rng = base;
                rng_advance(&rng, per_frame * (uint64_t)f);
                gen_row(d, &rng, o, &rp, r, f, row0 + f, u);
            }
        } else {
            SpRng rng = base;
            for (int f = 0; f < nf; f++) gen_row(d, &rng, o, &rp, r, f, row0 + f, u);
        }
        row0 += nf;
    }
    free(u);
    return SP_OK;
}
