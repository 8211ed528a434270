/* aug_transforms.c - every spectral transform (reference/specrrmoco.md §2.4-2.6,
 * §15): the fixed-draw forms aug_<name>_apply, the parameter checks and the
 * random form aug_transform_apply that draws in the order documented in
 * sp_augment.h.
 *
 * L: points per spectrum. Arrays are double (the reference's float64 chain).
 * No allocation; serial, safe inside a parallel region.
 */
#include <math.h>
#include <string.h>

#include "aug_internal.h"
#include "sp_augment.h"

/* ------------------------------------------------------------- names */

static const char *const g_names[SP_AUG_NKINDS] = {
    "magnitude_warp", "time_warp", "jitter",      "scaling", "cutout",
    "window_slice",   "window_warp", "shift",     "baseline", "poisson",
    "crop_resize",    "mask",      "intensity",
};

const char *aug_kind_name(AugKind k) {
    return (k >= 0 && k < SP_AUG_NKINDS) ? g_names[k] : "?";
}

int aug_kind_from_name(const char *name) {
    if (!name) return -1;
    for (int k = 0; k < SP_AUG_NKINDS; k++)
        if (strcmp(name, g_names[k]) == 0) return k;
    return -1;
}

const char *aug_kind_names(void) {
    return "magnitude_warp, time_warp, jitter, scaling, cutout, window_slice, window_warp, "
           "shift, baseline, poisson, crop_resize, mask, intensity";
}

void aug_transform_default(AugTransform *t, AugKind kind) {
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->p = 1.0;
    switch (kind) {
    case SP_AUG_MAGNITUDE_WARP: t->sigma = 0.3; t->knots = 4; break;
    case SP_AUG_TIME_WARP: t->sigma = 0.2; t->knots = 8; break;
    case SP_AUG_JITTER: t->sigma = 0.1; break;
    case SP_AUG_SCALING: t->sigma = 0.4; break;
    case SP_AUG_CUTOUT: t->ratio = 0.1; break;
    case SP_AUG_WINDOW_SLICE: t->ratio = 0.8; break;
    case SP_AUG_WINDOW_WARP: t->ratio = 0.3; t->scale_low = 0.7; t->scale_high = 1.5; break;
    case SP_AUG_SHIFT: t->max_shift = 10.0; t->integer_shift = 0; break;
    case SP_AUG_BASELINE: t->degree = 2; t->amplitude = 0.05; break;
    case SP_AUG_POISSON: t->scale = 0.01; break;
    case SP_AUG_CROP_RESIZE: t->ratio = 0.8; break;
    case SP_AUG_MASK: t->ratio = 0.05; t->bands = 1; t->fill = SP_AUG_FILL_MEAN; break;
    case SP_AUG_INTENSITY: t->sigma = 0.1; break;
    default: break;
    }
}

/* -------------------------------------------------- sizes shared with checks */

static int cutout_width(double ratio, int L) { return (int)(ratio * (double)L); }
static int slice_len(double ratio, int L) { return (int)ceil(ratio * (double)L); }
static int warp_window(double ratio, int L) { return (int)ceil(ratio * (double)L); }
static int warp_nseg(int W, double r) { return (int)((double)W * r); }
static int crop_min(double ratio, int L) {
    int m = (int)ceil(ratio * (double)L);
    return m < 2 ? 2 : m;
}

/* ------------------------------------------------------ fixed-draw forms */

void aug_magnitude_warp_apply(double *out, const double *x, int L, const double *w, int nk) {
    double xk[SP_AUG_MAX_POINTS], M[SP_AUG_MAX_POINTS], h;
    aug_spline_setup(w, nk, L, xk, M, &h);
    aug_spline_eval_mul(out, x, w, nk, L, xk, M, h);
}

int aug_time_warp_apply(double *out, const double *x, int L, const double *s, int nk, double *tt) {
    aug_spline_eval(tt, s, nk, L);
    int clamped = 0;
    double c = 0.0;
    for (int t = 0; t < L; t++) {
        double v = tt[t];
        if (!(v >= SP_AUG_CLAMP_SPEED)) { /* also catches NaN */
            v = SP_AUG_CLAMP_SPEED;
            clamped++;
        }
        c += v;
        tt[t] = c;
    }
    double scale = (double)(L - 1) / tt[L - 1];
    for (int t = 0; t < L; t++) tt[t] = tt[t] * scale;
    tt[L - 1] = (double)(L - 1); /* c*((L-1)/c) can miss L-1 by an ulp */
    /* out[j] = interp(j; tt, x), j = 0..L-1, merged with the increasing tt. */
    aug_interp_int_queries(out, L, tt, x, L);
    return clamped;
}

void aug_cutout_apply(double *out, const double *x, int L, int w, int start) {
    memcpy(out, x, (size_t)L * sizeof *out);
    int s = start < 0 ? 0 : start;
    int e = start + w > L ? L : start + w;
    for (int t = s; t < e; t++) out[t] = 0.0;
}

void aug_window_slice_apply(double *out, const double *x, int L, int T, int start, int quirk_grid) {
    if (T >= L) {
        memcpy(out, x, (size_t)L * sizeof *out);
        return;
    }
    const double *seg = x + start;
    /* reference: linspace(0, T, L); correct: linspace(0, T-1, L) */
    double stop = quirk_grid ? (double)T : (double)(T - 1);
    for (int j = 0; j < L; j++) out[j] = aug_interp_unit(aug_linspace_at(j, L, stop), seg, T);
}

void aug_window_warp_apply(double *out, const double *x, int L, int W, int start, int nseg,
                           double *scratch) {
    int ny = L - W + nseg;
    double *y = scratch, *xp = scratch + ny;
    memcpy(y, x, (size_t)start * sizeof *y);
    const double *seg = x + start;
    for (int k = 0; k < nseg; k++)
        y[start + k] = aug_interp_unit(aug_linspace_at(k, nseg, (double)(W - 1)), seg, W);
    memcpy(y + start + nseg, x + start + W, (size_t)(L - start - W) * sizeof *y);
    for (int k = 0; k < ny; k++) xp[k] = aug_linspace_at(k, ny, (double)(L - 1));
    aug_interp_int_queries(out, L, xp, y, ny);
}

void aug_shift_apply(double *out, const double *x, int L, double s) {
    for (int j = 0; j < L; j++) out[j] = aug_interp_unit((double)j - s, x, L);
}

void aug_baseline_apply(double *out, const double *x, int L, const double *c, int deg,
                        double amplitude) {
    double lo = x[0], hi = x[0];
    for (int t = 1; t < L; t++) {
        if (x[t] < lo) lo = x[t];
        if (x[t] > hi) hi = x[t];
    }
    double range = hi - lo;
    double gain = (isfinite(range) ? range : 0.0) * amplitude / (double)(deg + 1);
    double inv = L > 1 ? 2.0 / (double)(L - 1) : 0.0;
    for (int t = 0; t < L; t++) {
        double u = (double)t * inv - 1.0;
        double b = c[deg];
        for (int k = deg - 1; k >= 0; k--) b = b * u + c[k];
        out[t] = x[t] + gain * b;
    }
}

void aug_crop_resize_apply(double *out, const double *x, int L, int Lc, int start) {
    const double *seg = x + start;
    for (int j = 0; j < L; j++)
        out[j] = aug_interp_unit(aug_linspace_at(j, L, (double)(Lc - 1)), seg, Lc);
}

/* ------------------------------------------------------------- checks */

#define CHECK_SIGMA(t, name)                                                               \
    do {                                                                                   \
        if (!(isfinite((t)->sigma) && (t)->sigma >= 0.0))                                  \
            SP_FAIL(SP_ECONFIG, "augment.%s.sigma = %g: must be a finite number >= 0",    \
                    name, (t)->sigma);                                                     \
    } while (0)

SpStatus aug_transform_check(const AugTransform *t, int L) {
    if (t->kind < 0 || t->kind >= SP_AUG_NKINDS)
        SP_FAIL(SP_ECONFIG, "augment.transforms: unknown transform kind %d (valid: %s)",
                (int)t->kind, aug_kind_names());
    const char *name = aug_kind_name(t->kind);
    if (!(t->p >= 0.0 && t->p <= 1.0))
        SP_FAIL(SP_ECONFIG, "augment.%s.p (or augment.p) = %g: must be in [0, 1]", name, t->p);
    if (L < 2) SP_FAIL(SP_ECONFIG, "augment.%s: spectra of %d point(s); need L >= 2", name, L);
    switch (t->kind) {
    case SP_AUG_MAGNITUDE_WARP:
    case SP_AUG_TIME_WARP:
        CHECK_SIGMA(t, name);
        if (t->knots < 0 || t->knots > SP_AUG_MAX_KNOTS)
            SP_FAIL(SP_ECONFIG, "augment.%s.knots = %d: must be in [0, %d]", name, t->knots,
                    SP_AUG_MAX_KNOTS);
        break;
    case SP_AUG_JITTER:
    case SP_AUG_SCALING:
        CHECK_SIGMA(t, name);
        break;
    case SP_AUG_INTENSITY:
        CHECK_SIGMA(t, name);
        if (t->sigma > 5.0)
            SP_FAIL(SP_ECONFIG, "augment.intensity.sigma = %g: must be <= 5 (log-normal factor)",
                    t->sigma);
        break;
    case SP_AUG_CUTOUT: {
        if (!(t->ratio >= 0.0 && t->ratio < 1.0))
            SP_FAIL(SP_ECONFIG, "augment.cutout.ratio = %g: must be in [0, 1)", t->ratio);
        int w = cutout_width(t->ratio, L);
        if (w > L - 2)
            SP_FAIL(SP_ECONFIG,
                    "augment.cutout.ratio = %g: a cutout of %d points leaves no start position in "
                    "spectra of %d points (need int(ratio*L) <= L-2)",
                    t->ratio, w, L);
        break;
    }
    case SP_AUG_WINDOW_SLICE:
        if (!(t->ratio > 0.0 && t->ratio <= 1.0))
            SP_FAIL(SP_ECONFIG, "augment.window_slice.ratio = %g: must be in (0, 1]", t->ratio);
        break;
    case SP_AUG_WINDOW_WARP: {
        if (!(t->ratio > 0.0 && t->ratio < 1.0))
            SP_FAIL(SP_ECONFIG, "augment.window_warp.ratio = %g: must be in (0, 1)", t->ratio);
        if (!(t->scale_low > 0.0 && t->scale_low <= 10.0))
            SP_FAIL(SP_ECONFIG, "augment.window_warp.scale_low = %g: must be in (0, 10]",
                    t->scale_low);
        if (!(t->scale_high > 0.0 && t->scale_high <= 10.0))
            SP_FAIL(SP_ECONFIG, "augment.window_warp.scale_high = %g: must be in (0, 10]",
                    t->scale_high);
        int W = warp_window(t->ratio, L);
        if (W > L - 3)
            SP_FAIL(SP_ECONFIG,
                    "augment.window_warp.ratio = %g: a window of %d points leaves no start "
                    "position in spectra of %d points (need ceil(ratio*L) <= L-3)",
                    t->ratio, W, L);
        if (warp_nseg(W, t->scale_low) < 1)
            SP_FAIL(SP_ECONFIG,
                    "augment.window_warp.scale_low = %g: the %d-point window would shrink to "
                    "no point (need int(W*scale) >= 1)",
                    t->scale_low, W);
        if (warp_nseg(W, t->scale_high) < 1)
            SP_FAIL(SP_ECONFIG,
                    "augment.window_warp.scale_high = %g: the %d-point window would shrink to "
                    "no point (need int(W*scale) >= 1)",
                    t->scale_high, W);
        break;
    }
    case SP_AUG_SHIFT:
        if (!(isfinite(t->max_shift) && t->max_shift >= 0.0))
            SP_FAIL(SP_ECONFIG, "augment.shift.max = %g: must be a finite number >= 0",
                    t->max_shift);
        break;
    case SP_AUG_BASELINE:
        if (t->degree < 0 || t->degree > 16)
            SP_FAIL(SP_ECONFIG, "augment.baseline.degree = %d: must be in [0, 16]", t->degree);
        if (!(isfinite(t->amplitude) && t->amplitude >= 0.0))
            SP_FAIL(SP_ECONFIG, "augment.baseline.amplitude = %g: must be a finite number >= 0",
                    t->amplitude);
        break;
    case SP_AUG_POISSON:
        if (!(isfinite(t->scale) && t->scale >= 0.0))
            SP_FAIL(SP_ECONFIG, "augment.poisson.scale = %g: must be a finite number >= 0",
                    t->scale);
        break;
    case SP_AUG_CROP_RESIZE:
        if (!(t->ratio > 0.0 && t->ratio <= 1.0))
            SP_FAIL(SP_ECONFIG, "augment.crop_resize.min_ratio = %g: must be in (0, 1]",
                    t->ratio);
        break;
    case SP_AUG_MASK:
        if (!(t->ratio >= 0.0 && t->ratio <= 1.0))
            SP_FAIL(SP_ECONFIG, "augment.mask.width = %g: must be in [0, 1]", t->ratio);
        if (t->bands < 0 || t->bands > 64)
            SP_FAIL(SP_ECONFIG, "augment.mask.bands = %d: must be in [0, 64]", t->bands);
        if (t->fill != SP_AUG_FILL_MEAN && t->fill != SP_AUG_FILL_ZERO &&
            t->fill != SP_AUG_FILL_LINEAR)
            SP_FAIL(SP_ECONFIG, "augment.mask.fill: unknown fill mode %d (mean|zero|linear)",
                    (int)t->fill);
        break;
    default: break;
    }
    return SP_OK;
}

size_t aug_transform_scratch_len(const AugTransform *t, int L) {
    switch (t->kind) {
    case SP_AUG_TIME_WARP: return (size_t)L;
    case SP_AUG_WINDOW_WARP: {
        int W = warp_window(t->ratio, L);
        int a = warp_nseg(W, t->scale_low), b = warp_nseg(W, t->scale_high);
        int nseg = a > b ? a : b;
        return 2 * (size_t)(L - W + nseg);
    }
    default: return 0;
    }
}

/* --------------------------------------------------------- random forms */

static void draw_knots(double *w, int nk, double sigma, SpRng *rng) {
    for (int i = 0; i < nk; i++) w[i] = 1.0 + sigma * sp_rng_normal(rng);
}

static void mask_apply(double *out, const double *x, int L, const AugTransform *t, SpRng *rng) {
    memcpy(out, x, (size_t)L * sizeof *out);
    int w = (int)(t->ratio * (double)L);
    if (w > L) w = L;
    for (int band = 0; band < t->bands; band++) {
        int start = (int)sp_rng_below(rng, (int64_t)(L - w) + 1);
        if (w == 0) continue;
        int end = start + w; /* exclusive */
        AugFill fill = t->fill;
        if (fill == SP_AUG_FILL_LINEAR && start == 0 && end == L) fill = SP_AUG_FILL_MEAN;
        if (fill == SP_AUG_FILL_ZERO) {
            for (int k = start; k < end; k++) out[k] = 0.0;
        } else if (fill == SP_AUG_FILL_MEAN) {
            double s = 0.0;
            for (int k = start; k < end; k++) s += out[k];
            double m = s / (double)w;
            for (int k = start; k < end; k++) out[k] = m;
        } else {
            /* the line joining the neighbours out[start-1] and out[end] */
            double a = start > 0 ? out[start - 1] : out[end];
            double b = end < L ? out[end] : out[start - 1];
            double span = (double)(w + 1);
            for (int k = start; k < end; k++) {
                double f = (double)(k - start + 1) / span;
                out[k] = a + (b - a) * f;
            }
        }
    }
}

int aug_transform_apply(const AugTransform *t, double *out, const double *x, int L, SpRng *rng,
                        double *scratch) {
    switch (t->kind) {
    case SP_AUG_MAGNITUDE_WARP: {
        double w[SP_AUG_MAX_POINTS];
        int nk = t->knots + 2;
        draw_knots(w, nk, t->sigma, rng);
        aug_magnitude_warp_apply(out, x, L, w, nk);
        return 0;
    }
    case SP_AUG_TIME_WARP: {
        double s[SP_AUG_MAX_POINTS];
        int nk = t->knots + 2;
        draw_knots(s, nk, t->sigma, rng);
        return aug_time_warp_apply(out, x, L, s, nk, scratch);
    }
    case SP_AUG_JITTER:
        aug_normals(out, L, rng);
        for (int i = 0; i < L; i++) out[i] = x[i] + t->sigma * out[i];
        return 0;
    case SP_AUG_SCALING: {
        double f = 1.0 + t->sigma * sp_rng_normal(rng);
        for (int i = 0; i < L; i++) out[i] = x[i] * f;
        return 0;
    }
    case SP_AUG_INTENSITY: {
        double f = exp(t->sigma * sp_rng_normal(rng));
        for (int i = 0; i < L; i++) out[i] = x[i] * f;
        return 0;
    }
    case SP_AUG_CUTOUT: {
        int w = cutout_width(t->ratio, L);
        int start = (int)sp_rng_integers(rng, 0, (int64_t)(L - w - 1));
        aug_cutout_apply(out, x, L, w, start);
        return 0;
    }
    case SP_AUG_WINDOW_SLICE: {
        int T = slice_len(t->ratio, L);
        int start = 0;
        if (T < L) start = (int)sp_rng_integers(rng, 0, (int64_t)(L - T));
        aug_window_slice_apply(out, x, L, T, start, t->quirk_grid);
        return 0;
    }
    case SP_AUG_WINDOW_WARP: {
        int W = warp_window(t->ratio, L);
        double r = sp_rng_below(rng, 2) == 0 ? t->scale_low : t->scale_high;
        int start = (int)sp_rng_integers(rng, 1, (int64_t)(L - W - 1));
        aug_window_warp_apply(out, x, L, W, start, warp_nseg(W, r), scratch);
        return 0;
    }
    case SP_AUG_SHIFT: {
        double s = sp_rng_uniform(rng, -t->max_shift, t->max_shift);
        if (t->integer_shift) s = round(s);
        aug_shift_apply(out, x, L, s);
        return 0;
    }
    case SP_AUG_BASELINE: {
        double c[17];
        for (int k = 0; k <= t->degree; k++) c[k] = sp_rng_uniform(rng, -1.0, 1.0);
        aug_baseline_apply(out, x, L, c, t->degree, t->amplitude);
        return 0;
    }
    case SP_AUG_POISSON:
        aug_normals(out, L, rng);
        for (int i = 0; i < L; i++) {
            double v = x[i] > 0.0 ? x[i] : 0.0;
            out[i] = x[i] + sqrt(v * t->scale) * out[i];
        }
        return 0;
    case SP_AUG_CROP_RESIZE: {
        int lmin = crop_min(t->ratio, L);
        if (lmin > L) lmin = L;
        int Lc = (int)sp_rng_integers(rng, lmin, (int64_t)L + 1);
        int start = (int)sp_rng_below(rng, (int64_t)(L - Lc) + 1);
        aug_crop_resize_apply(out, x, L, Lc, start);
        return 0;
    }
    case SP_AUG_MASK:
        mask_apply(out, x, L, t, rng);
        return 0;
    default: AUG_ASSERT(0, "unknown transform kind %d", (int)t->kind);
    }
    return 0;
}
