/* test_augment: spectral augmentations, the pipeline and cut pieces
 * (reference/specrrmoco.md §2). Fixtures: tests/fixtures/augment (numpy 1.24 /
 * scipy 1.10 outputs for fixed draws, see its README); the scalar parameters
 * below repeat those of scripts/fixtures/gen_augment_fixtures.py. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_augment.h"
#include "sp_config.h"
#include "sp_test.h"

/* ------------------------------------------------------------- helpers */

/* Check's ck_assert* report every passing check to the parent process (a
 * pipe write each), far too slow inside per-point loops: only call into
 * Check on failure. The failure still names this file and line. */
#define REQ(cond)                                                              \
    do {                                                                       \
        if (!(cond)) ck_abort_msg("Assertion '%s' failed", #cond);             \
    } while (0)
#define REQ_MSG(cond, ...)                                                     \
    do {                                                                       \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                \
    } while (0)

static double *read_f64(const char *name, int n) {
    char file[256];
    snprintf(file, sizeof file, "augment/%s.f64", name);
    const char *path = sp_fixture(file);
    FILE *f = fopen(path, "rb");
    REQ_MSG(f != NULL, "cannot open fixture %s", path);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    REQ_MSG(bytes == (long)n * 8, "fixture %s: %ld bytes, expected %d float64", path, bytes,
                  n);
    double *a = malloc((size_t)n * sizeof *a);
    REQ(a != NULL);
    REQ_MSG(fread(a, 8, (size_t)n, f) == (size_t)n, "short read of %s", path);
    fclose(f);
    return a;
}

static void fill_random(double *x, int L, unsigned long long seed) {
    sp_fill_uniform_d(x, (size_t)L, seed, -1.0, 2.0);
}

/* Straightforward np.interp (linear search), the test's own reference. */
static double naive_interp(double t, const double *xp, const double *fp, int n) {
    if (t < xp[0]) return fp[0];
    if (t >= xp[n - 1]) return fp[n - 1];
    int j = 0;
    while (!(xp[j] <= t && t < xp[j + 1])) j++;
    return fp[j] + (t - xp[j]) * (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
}

static AugPipeline *make_single(AugTransform t, int L) {
    AugSpec spec = {0};
    spec.n = 1;
    spec.t[0] = t;
    AugPipeline *p = NULL;
    SpStatus rc = aug_pipeline_create(&p, &spec, L);
    REQ_MSG(rc == SP_OK, "pipeline for %s: %s", aug_kind_name(t.kind), sp_error_message());
    return p;
}

/* ------------------------------------------------------------- numerics */

static const struct { int L, nk; } g_spline_cases[] = {
    {4020, 6}, {4020, 10}, {4020, 66}, {37, 2}, {37, 3},
    {37, 4},   {37, 5},    {37, 6},    {37, 10}, {5, 10},
};

START_TEST(spline_matches_scipy) {
    int L = g_spline_cases[_i].L, nk = g_spline_cases[_i].nk;
    double *y = read_f64("spl_y", 66);
    char name[64];
    snprintf(name, sizeof name, "spl_L%d_nk%d", L, nk);
    double *ref = read_f64(name, L);
    double *got = malloc((size_t)L * sizeof *got);
    aug_spline_eval(got, y, nk, L);
    /* measured: <= 1.1e-15 for 6 and 10 points, 3.4e-15 for 66 */
    sp_expect_close_dd(name, got, ref, (size_t)L, 0.0, nk > 10 ? 1e-14 : 2e-15);
    free(y);
    free(ref);
    free(got);
}
END_TEST

START_TEST(spline_reproduces_polynomials) {
    /* A not-a-knot spline reproduces any cubic exactly (nk >= 4). */
    int L = 101;
    double y[12], got[101];
    for (int nk = 4; nk <= 12; nk++) {
        double h = 100.0 / (nk - 1);
        for (int i = 0; i < nk; i++) {
            double x = i * h;
            y[i] = 0.5 - 0.01 * x + 3e-4 * x * x - 2e-6 * x * x * x;
        }
        aug_spline_eval(got, y, nk, L);
        for (int t = 0; t < L; t++) {
            double want = 0.5 - 0.01 * t + 3e-4 * t * t - 2e-6 * (double)t * t * t;
            REQ_MSG(fabs(got[t] - want) < 1e-12, "nk %d t %d: %.17g vs %.17g", nk, t,
                          got[t], want);
        }
    }
}
END_TEST

START_TEST(interp_matches_numpy) {
    double *xp = read_f64("interp_xp", 50), *fp = read_f64("interp_fp", 50);
    double *t = read_f64("interp_t", 212), *ref = read_f64("interp_out", 212);
    double got[212];
    aug_interp(got, t, 212, xp, fp, 50);
    /* same operations as numpy: bit-identical */
    for (int i = 0; i < 212; i++)
        REQ_MSG(got[i] == ref[i], "interp[%d] at %.17g: %.17g vs numpy %.17g", i, t[i],
                      got[i], ref[i]);
    free(xp);
    free(fp);
    free(t);
    free(ref);
}
END_TEST

START_TEST(linspace_elements) {
    REQ(aug_linspace_at(0, 5, 4.0) == 0.0);
    REQ(aug_linspace_at(4, 5, 4.0) == 4.0);
    REQ(aug_linspace_at(3, 7, 3216.0) == 3.0 * (3216.0 / 6.0));
    REQ(aug_linspace_at(0, 1, 10.0) == 0.0);
}
END_TEST

/* ---------------------------------------------------- transforms vs numpy */

START_TEST(magnitude_warp_matches_numpy) {
    double *w = read_f64("mw_w", 6);
    int Ls[2] = {4020, 37};
    for (int c = 0; c < 2; c++) {
        int L = Ls[c];
        char xn[32], rn[32];
        snprintf(xn, sizeof xn, "x_L%d", L);
        snprintf(rn, sizeof rn, "mw_L%d", L);
        double *x = read_f64(xn, L), *ref = read_f64(rn, L);
        double *got = malloc((size_t)L * sizeof *got);
        aug_magnitude_warp_apply(got, x, L, w, 6);
        sp_expect_close_dd(rn, got, ref, (size_t)L, 0.0, 2e-15);
        free(x);
        free(ref);
        free(got);
    }
    free(w);
}
END_TEST

START_TEST(time_warp_matches_numpy) {
    const char *cases[3][3] = {{"x_L4020", "tw_s", "tw_L4020"},
                               {"x_L37", "tw_s", "tw_L37"},
                               {"x_L4020", "tw_s2", "tw2_L4020"}};
    for (int c = 0; c < 3; c++) {
        int L = strstr(cases[c][0], "4020") ? 4020 : 37;
        double *x = read_f64(cases[c][0], L), *s = read_f64(cases[c][1], 10);
        double *ref = read_f64(cases[c][2], L);
        double *got = malloc((size_t)L * sizeof *got), *tt = malloc((size_t)2 * L * sizeof *tt);
        int clamped = aug_time_warp_apply(got, x, L, s, 10, tt);
        ck_assert_int_eq(clamped, 0);
        /* measured <= 7.4e-14: the spline's 1e-16 rounding accumulates in the cumulative sum */
        sp_expect_close_dd(cases[c][2], got, ref, (size_t)L, 0.0, 2e-13);
        REQ(got[0] == x[0]);
        REQ(got[L - 1] == x[L - 1]);
        free(x);
        free(s);
        free(ref);
        free(got);
        free(tt);
    }
}
END_TEST

START_TEST(published_chain_matches_numpy) {
    /* magnitude warp then time warp, float64 throughout (§2.1) */
    int L = 4020;
    double *x = read_f64("x_L4020", L), *w = read_f64("mw_w", 6), *s = read_f64("tw_s", 10);
    double *ref = read_f64("chain_L4020", L);
    double *a = malloc((size_t)L * 8), *b = malloc((size_t)L * 8), *tt = malloc((size_t)2 * L * 8);
    aug_magnitude_warp_apply(a, x, L, w, 6);
    aug_time_warp_apply(b, a, L, s, 10, tt);
    sp_expect_close_dd("chain", b, ref, (size_t)L, 0.0, 2e-13);
    free(x);
    free(w);
    free(s);
    free(ref);
    free(a);
    free(b);
    free(tt);
}
END_TEST

START_TEST(window_slice_matches_numpy) {
    const struct { int L, start; } cs[2] = {{4020, 123}, {37, 3}};
    for (int c = 0; c < 2; c++) {
        int L = cs[c].L, T = (int)ceil(0.8 * L);
        char n[48];
        snprintf(n, sizeof n, "x_L%d", L);
        double *x = read_f64(n, L), *got = malloc((size_t)L * 8);
        for (int quirk = 0; quirk <= 1; quirk++) {
            snprintf(n, sizeof n, "ws_%s_L%d", quirk ? "quirk" : "correct", L);
            double *ref = read_f64(n, L);
            aug_window_slice_apply(got, x, L, T, cs[c].start, quirk);
            for (int i = 0; i < L; i++) /* np.interp's operations: bit-identical */
                REQ_MSG(got[i] == ref[i], "%s[%d]: %.17g vs numpy %.17g", n, i, got[i], ref[i]);
            free(ref);
        }
        /* the reference grid overshoots: its last points are clamped to seg[T-1]
         * (two of them for L = 4020); the correct grid ends exactly there */
        aug_window_slice_apply(got, x, L, T, cs[c].start, 1);
        REQ(got[L - 1] == x[cs[c].start + T - 1]);
        if (L == 4020) REQ(got[L - 2] == x[cs[c].start + T - 1]);
        free(x);
        free(got);
    }
}
END_TEST

START_TEST(window_warp_matches_numpy) {
    const struct { int L, start; } cs[2] = {{4020, 777}, {37, 5}};
    for (int c = 0; c < 2; c++) {
        int L = cs[c].L, W = (int)ceil(0.3 * L);
        char n[48];
        snprintf(n, sizeof n, "x_L%d", L);
        double *x = read_f64(n, L), *got = malloc((size_t)L * 8);
        for (int hi = 0; hi <= 1; hi++) {
            double r = hi ? 1.5 : 0.7;
            int nseg = (int)(W * r);
            double *scratch = malloc((size_t)3 * (L - W + nseg) * 8);
            snprintf(n, sizeof n, "ww_%s_L%d", hi ? "hi" : "lo", L);
            double *ref = read_f64(n, L);
            aug_window_warp_apply(got, x, L, W, cs[c].start, nseg, scratch);
            for (int i = 0; i < L; i++) /* np.interp's operations: bit-identical */
                REQ_MSG(got[i] == ref[i], "%s[%d]: %.17g vs numpy %.17g", n, i, got[i], ref[i]);
            free(ref);
            free(scratch);
        }
        free(x);
        free(got);
    }
    ck_assert_int_eq((int)ceil(0.3 * 4020), 1206);
    ck_assert_int_eq((int)(1206 * 0.7), 844);
    ck_assert_int_eq((int)(1206 * 1.5), 1809);
}
END_TEST

START_TEST(shift_and_crop_match_numpy) {
    double *x37 = read_f64("x_L37", 37), got[4020];
    double *ref = read_f64("shift_L37", 37);
    aug_shift_apply(got, x37, 37, 2.3);
    sp_expect_close_dd("shift", got, ref, 37, 0.0, 0.0);
    free(ref);
    ref = read_f64("shiftneg_L37", 37);
    aug_shift_apply(got, x37, 37, -4.75);
    sp_expect_close_dd("shiftneg", got, ref, 37, 0.0, 0.0);
    free(ref);
    double *x = read_f64("x_L4020", 4020);
    ref = read_f64("crop_L4020", 4020);
    aug_crop_resize_apply(got, x, 4020, 3500, 100);
    sp_expect_close_dd("crop", got, ref, 4020, 0.0, 0.0);
    free(ref);
    free(x);
    free(x37);
}
END_TEST

/* ----------------------------------------------------------- properties */

static const int g_lengths[5] = {2, 3, 37, 64, 4020};

/* Every kind with its default parameters keeps the length, stays finite on
 * random, all-zero and constant spectra, and writes nothing past L. */
START_TEST(every_transform_finite_keeps_length) {
    AugKind k = (AugKind)_i;
    for (int li = 0; li < 5; li++) {
        int L = g_lengths[li];
        AugTransform t;
        aug_transform_default(&t, k);
        if (aug_transform_check(&t, L) != SP_OK) continue; /* e.g. a window too large for L */
        AugPipeline *p = make_single(t, L);
        size_t ns = aug_pipeline_scratch_len(p);
        double *scratch = malloc(ns * sizeof *scratch);
        float *in = malloc((size_t)L * 4), *out = malloc((size_t)(L + 1) * 4);
        for (int kind_in = 0; kind_in < 3; kind_in++) {
            for (int rep = 0; rep < 20; rep++) {
                for (int i = 0; i < L; i++)
                    in[i] = kind_in == 0 ? 0.0f : kind_in == 1 ? 3.5f
                                                              : (float)sin(0.1 * i + rep) * 2.0f;
                out[L] = 12345.0f; /* sentinel */
                SpRng r;
                aug_stream(&r, 7, (uint64_t)rep, kind_in, li);
                aug_apply(p, in, out, L, &r, scratch);
                for (int i = 0; i < L; i++)
                    REQ_MSG(isfinite(out[i]), "%s L=%d input %d: out[%d] = %g",
                                  aug_kind_name(k), L, kind_in, i, (double)out[i]);
                REQ(out[L] == 12345.0f);
                if (kind_in == 0 && k != SP_AUG_JITTER && k != SP_AUG_BASELINE) {
                    /* multiplicative / resampling transforms keep zero at zero */
                    for (int i = 0; i < L; i++) REQ(out[i] == 0.0f);
                }
            }
        }
        free(scratch);
        free(in);
        free(out);
        aug_pipeline_destroy(&p);
        REQ(p == NULL);
    }
}
END_TEST

/* Zero strength is the identity (bit-exact through double and back). */
START_TEST(zero_strength_is_identity) {
    int L = 4020;
    AugTransform ts[12];
    int n = 0;
    aug_transform_default(&ts[n], SP_AUG_MAGNITUDE_WARP); ts[n++].sigma = 0.0;
    aug_transform_default(&ts[n], SP_AUG_JITTER); ts[n++].sigma = 0.0;
    aug_transform_default(&ts[n], SP_AUG_SCALING); ts[n++].sigma = 0.0;
    aug_transform_default(&ts[n], SP_AUG_INTENSITY); ts[n++].sigma = 0.0;
    aug_transform_default(&ts[n], SP_AUG_CUTOUT); ts[n++].ratio = 0.0;
    aug_transform_default(&ts[n], SP_AUG_WINDOW_SLICE); ts[n++].ratio = 1.0;
    aug_transform_default(&ts[n], SP_AUG_WINDOW_WARP);
    ts[n].scale_low = ts[n].scale_high = 1.0; n++;
    aug_transform_default(&ts[n], SP_AUG_SHIFT); ts[n++].max_shift = 0.0;
    aug_transform_default(&ts[n], SP_AUG_BASELINE); ts[n++].amplitude = 0.0;
    aug_transform_default(&ts[n], SP_AUG_POISSON); ts[n++].scale = 0.0;
    aug_transform_default(&ts[n], SP_AUG_CROP_RESIZE); ts[n++].ratio = 1.0;
    aug_transform_default(&ts[n], SP_AUG_MASK); ts[n++].ratio = 0.0;
    float *in = malloc((size_t)L * 4), *out = malloc((size_t)L * 4);
    for (int i = 0; i < L; i++) in[i] = (float)(cos(0.01 * i) * 3.0 + 0.25 * i / L);
    for (int k = 0; k < n; k++) {
        AugPipeline *p = make_single(ts[k], L);
        double *scratch = malloc(aug_pipeline_scratch_len(p) * 8);
        for (int rep = 0; rep < 3; rep++) {
            SpRng r;
            aug_stream(&r, 1, 2, rep, 3);
            aug_apply(p, in, out, L, &r, scratch);
            for (int i = 0; i < L; i++)
                REQ_MSG(out[i] == in[i], "%s at zero strength: out[%d] = %.9g, in %.9g",
                              aug_kind_name(ts[k].kind), i, (double)out[i], (double)in[i]);
        }
        free(scratch);
        aug_pipeline_destroy(&p);
    }
    free(in);
    free(out);
}
END_TEST

START_TEST(time_warp_zero_sigma_closed_form) {
    /* sigma = 0: s = 1, c[t] = t+1, tt[t] = (t+1)(L-1)/L: not the identity
     * (the reference's cumulative sum starts at s(0)); a shift of about one
     * point at the start fading to none at the end. */
    int L = 37;
    double x[37], s[10], got[37], tt[74], xp[37];
    fill_random(x, L, 5);
    for (int i = 0; i < 10; i++) s[i] = 1.0;
    aug_time_warp_apply(got, x, L, s, 10, tt);
    for (int t = 0; t < L; t++) xp[t] = (t + 1) * ((double)(L - 1) / L);
    xp[L - 1] = L - 1;
    for (int j = 0; j < L; j++) {
        double want = naive_interp(j, xp, x, L);
        REQ_MSG(fabs(got[j] - want) <= 1e-14, "j %d: %.17g vs %.17g", j, got[j], want);
    }
}
END_TEST

START_TEST(time_warp_endpoints_and_range) {
    int L = 4020;
    AugTransform t;
    aug_transform_default(&t, SP_AUG_TIME_WARP);
    double *x = malloc((size_t)L * 8), *out = malloc((size_t)L * 8), *tt = malloc((size_t)2 * L * 8);
    fill_random(x, L, 9);
    double lo = 1e300, hi = -1e300;
    for (int i = 0; i < L; i++) {
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    int total_clamped = 0;
    for (int rep = 0; rep < 60; rep++) {
        t.sigma = rep < 30 ? 0.2 : 2.0; /* sigma 2: speeds often negative -> clamped */
        SpRng r;
        aug_stream(&r, 3, rep, 0, 0);
        total_clamped += aug_transform_apply(&t, out, x, L, &r, tt);
        REQ(out[0] == x[0]);
        REQ(out[L - 1] == x[L - 1]);
        for (int i = 0; i < L; i++) REQ(out[i] >= lo && out[i] <= hi);
        for (int i = 1; i < L; i++) REQ_MSG(tt[i] > tt[i - 1], "tt not increasing at %d", i);
        if (rep == 29) ck_assert_int_eq(total_clamped, 0);
    }
    REQ_MSG(total_clamped > 0, "sigma 2 never produced a negative speed");
    free(x);
    free(out);
    free(tt);
}
END_TEST

START_TEST(statistics_of_noise_and_scaling) {
    int L = 4020;
    double *x = malloc((size_t)L * 8), *out = malloc((size_t)L * 8);
    fill_random(x, L, 13);
    AugTransform t;
    SpRng r;
    /* jitter: residual sd = sigma */
    aug_transform_default(&t, SP_AUG_JITTER);
    aug_stream(&r, 1, 1, 1, 1);
    aug_transform_apply(&t, out, x, L, &r, NULL);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < L; i++) {
        double e = out[i] - x[i];
        s1 += e;
        s2 += e * e;
    }
    double sd = sqrt(s2 / L - (s1 / L) * (s1 / L));
    REQ_MSG(fabs(sd - 0.1) < 0.006, "jitter sd %.4f", sd);
    REQ_MSG(fabs(s1 / L) < 0.006, "jitter mean %.4f", s1 / L);
    /* scaling / intensity: one factor for all points */
    AugKind mult[2] = {SP_AUG_SCALING, SP_AUG_INTENSITY};
    for (int m = 0; m < 2; m++) {
        aug_transform_default(&t, mult[m]);
        aug_transform_apply(&t, out, x, L, &r, NULL);
        double f = out[0] / x[0];
        for (int i = 0; i < L; i++) REQ(fabs(out[i] - f * x[i]) <= 1e-12 * fabs(x[i]) + 1e-300);
        REQ(f != 1.0);
        if (mult[m] == SP_AUG_INTENSITY) REQ(f > 0.0);
    }
    /* poisson: untouched where x <= 0, standardized residual ~ N(0, 1) */
    aug_transform_default(&t, SP_AUG_POISSON);
    t.scale = 0.04;
    aug_transform_apply(&t, out, x, L, &r, NULL);
    int npos = 0;
    s1 = s2 = 0;
    for (int i = 0; i < L; i++) {
        if (x[i] <= 0) {
            REQ(out[i] == x[i]);
        } else {
            double z = (out[i] - x[i]) / sqrt(x[i] * t.scale);
            s1 += z;
            s2 += z * z;
            npos++;
        }
    }
    REQ(npos > 1000);
    REQ_MSG(fabs(s2 / npos - 1.0) < 0.1, "poisson standardized variance %.3f", s2 / npos);
    free(x);
    free(out);
}
END_TEST

START_TEST(cutout_mask_baseline_shapes) {
    int L = 200;
    double x[200], out[200];
    for (int i = 0; i < L; i++) x[i] = 1.0 + 0.01 * i; /* no zeros */
    AugTransform t;
    SpRng r;
    aug_stream(&r, 5, 0, 0, 0);
    /* cutout: one run of exactly int(0.1 L) zeros, start in {0..L-w-2} */
    aug_transform_default(&t, SP_AUG_CUTOUT);
    int w = (int)(0.1 * L), max_start = -1;
    for (int rep = 0; rep < 2000; rep++) {
        aug_transform_apply(&t, out, x, L, &r, NULL);
        int first = -1, nz = 0;
        for (int i = 0; i < L; i++)
            if (out[i] == 0.0) {
                if (first < 0) first = i;
                nz++;
            } else {
                REQ(out[i] == x[i]);
            }
        ck_assert_int_eq(nz, w);
        for (int i = first; i < first + w; i++) REQ(out[i] == 0.0);
        if (first > max_start) max_start = first;
    }
    ck_assert_int_eq(max_start, L - w - 2);
    /* mask: band = its mean / zero / line between neighbours */
    aug_transform_default(&t, SP_AUG_MASK);
    t.ratio = 0.1;
    for (int fill = 0; fill < 3; fill++) {
        t.fill = (AugFill)fill;
        aug_transform_apply(&t, out, x, L, &r, NULL);
        int first = -1;
        for (int i = 0; i < L; i++)
            if (out[i] != x[i]) {
                first = i;
                break;
            }
        if (fill == SP_AUG_FILL_LINEAR) {
            /* the line through the neighbours of a linear x is x itself */
            for (int i = 0; i < L; i++) REQ(fabs(out[i] - x[i]) < 1e-12);
            continue;
        }
        REQ(first >= 0);
        if (fill == SP_AUG_FILL_ZERO) {
            for (int i = first; i < first + 20; i++) REQ(out[i] == 0.0);
        } else if (fill == SP_AUG_FILL_MEAN) {
            /* band of 20 points: constant, equal to the mean of x over it */
            int s = first;
            while (s > 0 && out[s - 1] == out[first]) s--;
            double m = 0;
            for (int i = s; i < s + 20; i++) m += x[i];
            m /= 20;
            for (int i = s; i < s + 20; i++) REQ(fabs(out[i] - m) < 1e-12);
        }
    }
    /* linear fill of a non-linear x: straight line between the neighbours */
    for (int i = 0; i < L; i++) x[i] = sin(0.1 * i) + 2.0;
    t.fill = SP_AUG_FILL_LINEAR;
    aug_transform_apply(&t, out, x, L, &r, NULL);
    int first = -1;
    for (int i = 0; i < L; i++)
        if (out[i] != x[i]) {
            first = i;
            break;
        }
    REQ(first >= 0);
    if (first > 0 && first + 20 < L) {
        for (int i = first; i < first + 20; i++) {
            double f = (double)(i - first + 1) / 21.0;
            REQ(fabs(out[i] - (x[first - 1] + (x[first + 20] - x[first - 1]) * f)) < 1e-12);
        }
    }
    /* baseline: |out - x| <= amplitude * range, smooth polynomial */
    aug_transform_default(&t, SP_AUG_BASELINE);
    t.amplitude = 0.3;
    aug_transform_apply(&t, out, x, L, &r, NULL);
    double lo = 1e9, hi = -1e9, dmax = 0;
    for (int i = 0; i < L; i++) {
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    for (int i = 0; i < L; i++) dmax = fmax(dmax, fabs(out[i] - x[i]));
    REQ(dmax > 0 && dmax <= 0.3 * (hi - lo) + 1e-12);
    /* degree 2: third differences of the baseline vanish */
    for (int i = 3; i < L; i++) {
        double b0 = out[i] - x[i], b1 = out[i - 1] - x[i - 1], b2 = out[i - 2] - x[i - 2],
               b3 = out[i - 3] - x[i - 3];
        REQ(fabs(b0 - 3 * b1 + 3 * b2 - b3) < 1e-12);
    }
}
END_TEST

START_TEST(resampling_transforms_stay_in_range) {
    int L = 4020;
    double *x = malloc((size_t)L * 8), *out = malloc((size_t)L * 8);
    double *scratch = malloc((size_t)4 * L * 8);
    fill_random(x, L, 21);
    double lo = 1e300, hi = -1e300;
    for (int i = 0; i < L; i++) {
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    AugKind ks[4] = {SP_AUG_WINDOW_SLICE, SP_AUG_WINDOW_WARP, SP_AUG_SHIFT, SP_AUG_CROP_RESIZE};
    SpRng r;
    aug_stream(&r, 8, 0, 0, 0);
    for (int k = 0; k < 4; k++) {
        AugTransform t;
        aug_transform_default(&t, ks[k]);
        for (int quirk = 0; quirk <= 1; quirk++) {
            t.quirk_grid = quirk;
            REQ(aug_transform_scratch_len(&t, L) <= (size_t)4 * L);
            for (int rep = 0; rep < 30; rep++) {
                aug_transform_apply(&t, out, x, L, &r, scratch);
                for (int i = 0; i < L; i++)
                    REQ_MSG(out[i] >= lo && out[i] <= hi, "%s out[%d] = %g out of range",
                                  aug_kind_name(ks[k]), i, out[i]);
            }
        }
    }
    /* integer shift moves samples exactly */
    AugTransform t;
    aug_transform_default(&t, SP_AUG_SHIFT);
    t.integer_shift = 1;
    t.max_shift = 5;
    for (int rep = 0; rep < 20; rep++) {
        aug_transform_apply(&t, out, x, L, &r, scratch);
        int s = 0;
        while (s <= 5 && !(out[100] == x[100 - s])) s++;
        int found = s <= 5;
        if (!found) {
            for (s = -1; s >= -5; s--)
                if (out[100] == x[100 - s]) {
                    found = 1;
                    break;
                }
        }
        REQ(found);
        for (int j = 10; j < L - 10; j++) REQ(out[j] == x[j - s]);
    }
    free(x);
    free(out);
    free(scratch);
}
END_TEST

/* ------------------------------------------------------------ cut pieces */

START_TEST(cut_label_rule) {
    /* exact integer rule where u = L/(2C) is exact in binary:
     * label = min(floor(2C d / L), C-1) */
    const int cs[4][2] = {{4020, 5}, {37, 4}, {100, 5}, {30, 3}};
    for (int c = 0; c < 4; c++) {
        int L = cs[c][0], C = cs[c][1];
        for (int d = 0; d < L; d++) {
            int want = (int)((2LL * C * d) / L);
            if (want > C - 1) want = C - 1;
            REQ_MSG(aug_cut_label(d, L, C) == want, "L %d C %d d %d: %d vs %d", L, C, d,
                          aug_cut_label(d, L, C), want);
        }
    }
    /* boundaries for L = 4020, C = 5 (u = 402) */
    ck_assert_int_eq(aug_cut_label(401, 4020, 5), 0);
    ck_assert_int_eq(aug_cut_label(402, 4020, 5), 1);
    ck_assert_int_eq(aug_cut_label(1607, 4020, 5), 3);
    ck_assert_int_eq(aug_cut_label(1608, 4020, 5), 4);
    ck_assert_int_eq(aug_cut_label(3215, 4020, 5), 4);
}
END_TEST

START_TEST(cut_priors_formula_and_sampling) {
    int L = 4020, C = 5, w = 0;
    REQ(aug_cut_check(L, 0.2, C, 27, &w) == SP_OK);
    ck_assert_int_eq(w, 804);
    double prior[5];
    aug_cut_priors(L, w, C, prior);
    double *ref = read_f64("cut_priors_L4020_w804_C5", 5);
    sp_expect_close_dd("priors", prior, ref, 5, 0.0, 1e-14);
    free(ref);
    const double spec[5] = {0.234, 0.203, 0.172, 0.141, 0.250}; /* §2.7, 3 decimals */
    for (int c = 0; c < C; c++) REQ(fabs(prior[c] - spec[c]) <= 0.0006);
    /* sampled */
    const int n = 200000;
    long cnt[5] = {0};
    SpRng r;
    aug_stream(&r, 11, 0, 0, 0);
    int smin = L, smax = -1;
    for (int i = 0; i < n; i++) {
        int s1, s2;
        int lab = aug_cut_draw(L, w, C, &r, &s1, &s2);
        REQ(lab >= 0 && lab < C);
        ck_assert_int_eq(lab, aug_cut_label(abs(s1 - s2), L, C));
        cnt[lab]++;
        smin = s1 < smin ? s1 : smin;
        smax = s1 > smax ? s1 : smax;
    }
    ck_assert_int_eq(smin, 0);
    ck_assert_int_eq(smax, L - w - 1);
    for (int c = 0; c < C; c++) {
        double f = (double)cnt[c] / n, sd = sqrt(prior[c] * (1 - prior[c]) / n);
        REQ_MSG(fabs(f - prior[c]) < 5 * sd, "class %d: frequency %.5f, prior %.5f (sd %.5f)",
                      c, f, prior[c], sd);
    }
}
END_TEST

START_TEST(cut_piece_content) {
    int L = 300, w = 60, C = 5;
    float view[300], p0[60], p1[60];
    for (int i = 0; i < L; i++) view[i] = (float)i;
    SpRng r;
    aug_stream(&r, 2, 0, 0, 0);
    for (int rep = 0; rep < 100; rep++) {
        SpRng clone = r;
        int s1, s2, label;
        int want = aug_cut_draw(L, w, C, &clone, &s1, &s2);
        aug_cut_piece(view, L, w, C, &r, p0, p1, &label);
        ck_assert_int_eq(label, want);
        for (int i = 0; i < w; i++) {
            REQ(p0[i] == (float)(s1 + i));
            REQ(p1[i] == (float)(s2 + i));
        }
    }
}
END_TEST

/* -------------------------------------------------------------- pipeline */

START_TEST(pipeline_deterministic_per_key) {
    int L = 4020;
    AugSpec spec;
    aug_spec_default(&spec);
    ck_assert_int_eq(spec.n, 2);
    ck_assert_int_eq(spec.t[0].kind, SP_AUG_MAGNITUDE_WARP);
    ck_assert_int_eq(spec.t[1].kind, SP_AUG_TIME_WARP);
    AugPipeline *p = NULL;
    REQ(aug_pipeline_create(&p, &spec, L) == SP_OK);
    double *scratch = malloc(aug_pipeline_scratch_len(p) * 8);
    float *in = malloc((size_t)L * 4), *a = malloc((size_t)L * 4), *b = malloc((size_t)L * 4);
    for (int i = 0; i < L; i++) in[i] = (float)(sin(0.003 * i) + 1.5);
    SpRng r;
    aug_stream(&r, 42, 3, 17, 2);
    aug_apply(p, in, a, L, &r, scratch);
    aug_stream(&r, 42, 3, 17, 2);
    aug_apply(p, in, b, L, &r, scratch);
    REQ(memcmp(a, b, (size_t)L * 4) == 0);
    /* a different view slot / epoch / sample / seed gives a different view */
    const uint64_t keys[4][4] = {{42, 3, 17, 3}, {42, 4, 17, 2}, {42, 3, 18, 2}, {43, 3, 17, 2}};
    for (int k = 0; k < 4; k++) {
        aug_stream(&r, keys[k][0], keys[k][1], (int64_t)keys[k][2], (int)keys[k][3]);
        aug_apply(p, in, b, L, &r, scratch);
        REQ_MSG(memcmp(a, b, (size_t)L * 4) != 0, "key %d gave the same view", k);
    }
    /* in-place works */
    memcpy(b, in, (size_t)L * 4);
    aug_stream(&r, 42, 3, 17, 2);
    aug_apply(p, b, b, L, &r, scratch);
    REQ(memcmp(a, b, (size_t)L * 4) == 0);
    /* p = 0: gates are still drawn, nothing fires: identity */
    spec.t[0].p = spec.t[1].p = 0.0;
    AugPipeline *q = NULL;
    REQ(aug_pipeline_create(&q, &spec, L) == SP_OK);
    aug_apply(q, in, b, L, &r, scratch);
    REQ(memcmp(in, b, (size_t)L * 4) == 0);
    aug_pipeline_destroy(&q);
    free(scratch);
    free(in);
    free(a);
    free(b);
    aug_pipeline_destroy(&p);
}
END_TEST

START_TEST(pipeline_draw_order_documented) {
    /* aug_apply == replaying the documented draws through the fixed-draw
     * functions: gate, nk normals (magnitude warp), gate, nk normals (time
     * warp), window_warp: gate, below(2), integers(1, L-W-1); cutout: gate,
     * integers(0, L-w-1); then the cut piece: below(L-w) twice. */
    int L = 301;
    AugSpec spec;
    aug_spec_default(&spec);
    aug_spec_add(&spec, SP_AUG_WINDOW_WARP, 1.0);
    aug_spec_add(&spec, SP_AUG_CUTOUT, 0.5);
    AugPipeline *p = NULL;
    ck_assert(aug_pipeline_create(&p, &spec, L) == SP_OK);
    double *scratch = malloc(aug_pipeline_scratch_len(p) * 8);
    float in[301], got[301], want[301], p0[60], p1[60];
    double a[301], b[301], tt[602], ws[3 * 301];
    for (int i = 0; i < L; i++) in[i] = (float)(1.0 + sin(0.05 * i));
    for (int rep = 0; rep < 40; rep++) {
        SpRng r, q;
        aug_stream(&r, 5, 1, rep, 2);
        q = r;
        aug_apply(p, in, got, L, &r, scratch);
        int label;
        aug_cut_piece(got, L, 60, 5, &r, p0, p1, &label);
        /* replay */
        for (int i = 0; i < L; i++) a[i] = in[i];
        double w[10];
        REQ(sp_rng_next_double(&q) < 1.0);
        for (int i = 0; i < 6; i++) w[i] = 1.0 + 0.3 * sp_rng_normal(&q);
        aug_magnitude_warp_apply(b, a, L, w, 6);
        REQ(sp_rng_next_double(&q) < 1.0);
        for (int i = 0; i < 10; i++) w[i] = 1.0 + 0.2 * sp_rng_normal(&q);
        aug_time_warp_apply(a, b, L, w, 10, tt);
        REQ(sp_rng_next_double(&q) < 1.0);
        int W = (int)ceil(0.3 * L);
        double sc = sp_rng_below(&q, 2) == 0 ? 0.7 : 1.5;
        int start = (int)sp_rng_integers(&q, 1, L - W - 1);
        aug_window_warp_apply(b, a, L, W, start, (int)(W * sc), ws);
        if (sp_rng_next_double(&q) < 0.5) {
            int cw = (int)(0.1 * L);
            int cs = (int)sp_rng_integers(&q, 0, L - cw - 1);
            aug_cutout_apply(a, b, L, cw, cs);
        } else {
            memcpy(a, b, sizeof a);
        }
        for (int i = 0; i < L; i++) want[i] = (float)a[i];
        REQ_MSG(memcmp(got, want, sizeof got) == 0, "rep %d: pipeline differs from the replay",
                rep);
        int s1, s2;
        REQ(aug_cut_draw(L, 60, 5, &q, &s1, &s2) == label);
        REQ(memcmp(p0, got + s1, sizeof p0) == 0 && memcmp(p1, got + s2, sizeof p1) == 0);
        REQ(sp_rng_next_u64(&q) == sp_rng_next_u64(&r)); /* both streams at the same place */
    }
    free(scratch);
    aug_pipeline_destroy(&p);
}
END_TEST

START_TEST(pipeline_gate_frequency) {
    /* p = 0.2 (linear evaluation): scaling fires in ~20 % of the draws */
    int L = 16;
    AugSpec spec = {0};
    aug_spec_add(&spec, SP_AUG_SCALING, 0.2);
    AugPipeline *p = NULL;
    REQ(aug_pipeline_create(&p, &spec, L) == SP_OK);
    double scratch[64];
    REQ(aug_pipeline_scratch_len(p) <= 64);
    float in[16], out[16];
    for (int i = 0; i < L; i++) in[i] = 1.0f + i;
    int fired = 0, n = 20000;
    for (int s = 0; s < n; s++) {
        SpRng r;
        aug_stream(&r, 1, 0, s, 0);
        aug_apply(p, in, out, L, &r, scratch);
        fired += memcmp(in, out, sizeof in) != 0;
    }
    double f = (double)fired / n;
    REQ_MSG(fabs(f - 0.2) < 5 * sqrt(0.16 / n), "fired %.4f", f);
    aug_pipeline_destroy(&p);
}
END_TEST

START_TEST(batch_independent_of_threads_and_composition) {
    int L = 517, B = 23;
    AugSpec spec;
    REQ(aug_spec_group(&spec, "G2", 0.7));
    ck_assert_int_eq(spec.n, 5);
    aug_spec_add(&spec, SP_AUG_MAGNITUDE_WARP, 1.0);
    aug_spec_add(&spec, SP_AUG_TIME_WARP, 1.0);
    AugPipeline *p = NULL;
    omp_set_num_threads(2);
    REQ(aug_pipeline_create(&p, &spec, L) == SP_OK);
    float *X = malloc((size_t)B * L * 4);
    float *o1 = malloc((size_t)B * L * 4), *o2 = malloc((size_t)B * L * 4);
    float *o3 = malloc((size_t)B * L * 4);
    sp_fill_uniform_f(X, (size_t)B * L, 77, -1.0, 1.0);
    int idx[23];
    for (int b = 0; b < B; b++) idx[b] = 1000 + 7 * b;
    omp_set_num_threads(1);
    REQ(aug_apply_batch(p, X, B, L, 9, 4, idx, 2, o1) == SP_OK);
    omp_set_num_threads(2);
    REQ(aug_apply_batch(p, X, B, L, 9, 4, idx, 2, o2) == SP_OK);
    REQ(memcmp(o1, o2, (size_t)B * L * 4) == 0);
    /* each row equals a serial aug_apply on its own stream */
    double *scratch = malloc(aug_pipeline_scratch_len(p) * 8);
    float *row = malloc((size_t)L * 4);
    for (int b = 0; b < B; b++) {
        SpRng r;
        aug_stream(&r, 9, 4, idx[b], 2);
        aug_apply(p, X + (size_t)b * L, row, L, &r, scratch);
        REQ_MSG(memcmp(row, o1 + (size_t)b * L, (size_t)L * 4) == 0, "row %d", b);
    }
    /* a sub-batch in another order gives the same rows */
    float *Xs = malloc((size_t)5 * L * 4);
    int sidx[5], pick[5] = {22, 3, 17, 0, 9};
    for (int k = 0; k < 5; k++) {
        memcpy(Xs + (size_t)k * L, X + (size_t)pick[k] * L, (size_t)L * 4);
        sidx[k] = idx[pick[k]];
    }
    REQ(aug_apply_batch(p, Xs, 5, L, 9, 4, sidx, 2, o3) == SP_OK);
    for (int k = 0; k < 5; k++)
        REQ(memcmp(o3 + (size_t)k * L, o1 + (size_t)pick[k] * L, (size_t)L * 4) == 0);
    /* with cut pieces: views identical, pieces consistent, labels in range */
    int w = 0, C = 5;
    REQ(aug_cut_check(L, 0.2, C, 27, &w) == SP_OK);
    float *p0 = malloc((size_t)B * w * 4), *p1 = malloc((size_t)B * w * 4);
    float *q0 = malloc((size_t)B * w * 4), *q1 = malloc((size_t)B * w * 4);
    int lab1[23], lab2[23];
    omp_set_num_threads(1);
    REQ(aug_apply_batch_cut(p, X, B, L, 9, 4, idx, 2, o2, w, C, p0, p1, lab1) == SP_OK);
    omp_set_num_threads(2);
    REQ(aug_apply_batch_cut(p, X, B, L, 9, 4, idx, 2, o3, w, C, q0, q1, lab2) == SP_OK);
    REQ(memcmp(o1, o2, (size_t)B * L * 4) == 0);
    REQ(memcmp(o2, o3, (size_t)B * L * 4) == 0);
    REQ(memcmp(p0, q0, (size_t)B * w * 4) == 0);
    REQ(memcmp(p1, q1, (size_t)B * w * 4) == 0);
    REQ(memcmp(lab1, lab2, sizeof lab1) == 0);
    for (int b = 0; b < B; b++) REQ(lab1[b] >= 0 && lab1[b] < C);
    /* wrong L is reported, not crashed on */
    REQ(aug_apply_batch(p, X, B, L - 1, 9, 4, idx, 2, o1) == SP_EINTERNAL);
    REQ(aug_pipeline_clamp_count(p) >= 0);
    free(X);
    free(o1);
    free(o2);
    free(o3);
    free(Xs);
    free(scratch);
    free(row);
    free(p0);
    free(p1);
    free(q0);
    free(q1);
    aug_pipeline_destroy(&p);
}
END_TEST

START_TEST(groups_and_names) {
    AugSpec s;
    REQ(aug_spec_group(&s, "G0", 1.0));
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.t[0].kind, SP_AUG_JITTER);
    ck_assert_int_eq(s.t[1].kind, SP_AUG_MAGNITUDE_WARP);
    ck_assert_int_eq(s.t[2].kind, SP_AUG_WINDOW_SLICE);
    REQ(aug_spec_group(&s, "G1", 1.0));
    ck_assert_int_eq(s.t[1].kind, SP_AUG_TIME_WARP);
    REQ(aug_spec_group(&s, "none", 1.0));
    ck_assert_int_eq(s.n, 0);
    REQ(!aug_spec_group(&s, "G3", 1.0));
    for (int k = 0; k < SP_AUG_NKINDS; k++) {
        ck_assert_int_eq(aug_kind_from_name(aug_kind_name((AugKind)k)), k);
        REQ(strstr(aug_kind_names(), aug_kind_name((AugKind)k)) != NULL);
    }
    ck_assert_int_eq(aug_kind_from_name("magnitude_wrap"), -1);
    char buf[512];
    aug_spec_default(&s);
    aug_spec_describe(&s, buf, sizeof buf);
    ck_assert_str_eq(buf,
                     "magnitude_warp(sigma=0.3, knots=4, p=1) -> time_warp(sigma=0.2, knots=8, p=1)");
    aug_spec_group(&s, "none", 1.0);
    aug_spec_describe(&s, buf, sizeof buf);
    ck_assert_str_eq(buf, "none");
    ck_assert(aug_spec_group(&s, "G2", 0.2));
    aug_spec_describe(&s, buf, 20); /* truncated, terminated */
    ck_assert_uint_eq(strlen(buf), 19);
}
END_TEST

/* ---------------------------------------------------------------- errors */

static void expect_pipeline_error(AugTransform t, int L, const char *key) {
    AugSpec spec = {0};
    spec.n = 1;
    spec.t[0] = t;
    AugPipeline *p = (AugPipeline *)&spec; /* must be reset to NULL */
    sp_error_clear();
    SpStatus rc = aug_pipeline_create(&p, &spec, L);
    REQ_MSG(rc == SP_ECONFIG, "%s: status %d", key, (int)rc);
    REQ(p == NULL);
    REQ_MSG(strstr(sp_error_message(), key) != NULL, "message '%s' does not name %s",
                  sp_error_message(), key);
}

START_TEST(bad_parameters_name_the_key) {
    AugTransform t;
    aug_transform_default(&t, SP_AUG_JITTER);
    t.sigma = -0.1;
    expect_pipeline_error(t, 100, "augment.jitter.sigma");
    aug_transform_default(&t, SP_AUG_MAGNITUDE_WARP);
    t.sigma = NAN;
    expect_pipeline_error(t, 100, "augment.magnitude_warp.sigma");
    aug_transform_default(&t, SP_AUG_TIME_WARP);
    t.knots = 65;
    expect_pipeline_error(t, 100, "augment.time_warp.knots");
    aug_transform_default(&t, SP_AUG_SCALING);
    t.p = 1.5;
    expect_pipeline_error(t, 100, "augment.scaling.p");
    aug_transform_default(&t, SP_AUG_CUTOUT);
    t.ratio = 0.98; /* int(0.98*37) = 36 > L-2 */
    expect_pipeline_error(t, 37, "augment.cutout.ratio");
    aug_transform_default(&t, SP_AUG_WINDOW_WARP);
    t.ratio = 0.95;
    expect_pipeline_error(t, 37, "augment.window_warp.ratio");
    aug_transform_default(&t, SP_AUG_WINDOW_WARP);
    t.scale_low = 0.001;
    expect_pipeline_error(t, 37, "augment.window_warp.scale_low");
    aug_transform_default(&t, SP_AUG_SHIFT);
    t.max_shift = -1;
    expect_pipeline_error(t, 37, "augment.shift.max");
    aug_transform_default(&t, SP_AUG_CROP_RESIZE);
    t.ratio = 0.0;
    expect_pipeline_error(t, 37, "augment.crop_resize.min_ratio");
    aug_transform_default(&t, SP_AUG_MASK);
    t.bands = -2;
    expect_pipeline_error(t, 37, "augment.mask.bands");
    aug_transform_default(&t, SP_AUG_BASELINE);
    t.degree = 40;
    expect_pipeline_error(t, 37, "augment.baseline.degree");
    t.kind = (AugKind)99;
    expect_pipeline_error(t, 37, "augment.transforms");
}
END_TEST

START_TEST(bad_piece_size_names_the_key) {
    int w = -1;
    const double bad[4] = {0.7, 0.005, 804.5, -0.1};
    for (int i = 0; i < 4; i++) {
        sp_error_clear();
        REQ(aug_cut_check(4020, bad[i], 5, 27, &w) == SP_ECONFIG);
        REQ_MSG(strstr(sp_error_message(), "pretext.rr.piece_size") != NULL, "%s",
                      sp_error_message());
    }
    /* the reachability bound: w <= L - 1 - (C-1) L/(2C) = 2411 for L = 4020, C = 5 */
    REQ(aug_cut_check(4020, 2411, 5, 27, &w) == SP_OK);
    ck_assert_int_eq(w, 2411);
    double prior[5];
    aug_cut_priors(4020, w, 5, prior);
    REQ(prior[4] > 0.0);
    REQ(aug_cut_check(4020, 2412, 5, 27, &w) == SP_ECONFIG);
    REQ(strstr(sp_error_message(), "2411") != NULL);
    /* too short for the encoder; whole-length pieces */
    REQ(aug_cut_check(100, 26, 2, 27, &w) == SP_ECONFIG);
    REQ(aug_cut_check(100, 27, 2, 27, &w) == SP_OK);
    REQ(aug_cut_check(100, 100, 1, 27, &w) == SP_ECONFIG);
    REQ(aug_cut_check(100, 0.2, 1, 10, &w) == SP_ECONFIG); /* one class */
}
END_TEST

/* ---------------------------------------------------------------- config */

static SpStatus load_with(SpConfig **c, const char *const *sets, int n) {
    sp_core_config_register();
    augment_config_register();
    augment_config_register(); /* idempotent */
    sp_error_clear();
    return sp_config_load(c, NULL, sets, n);
}

START_TEST(config_defaults_are_the_published_run) {
    SpConfig *c = NULL;
    ck_assert_msg(load_with(&c, NULL, 0) == SP_OK, "%s", sp_error_message());
    AugSpec spec;
    ck_assert_msg(aug_spec_from_config(&spec, c) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(spec.n, 2);
    ck_assert_int_eq(spec.t[0].kind, SP_AUG_MAGNITUDE_WARP);
    REQ(spec.t[0].sigma == 0.3 && spec.t[0].knots == 4 && spec.t[0].p == 1.0);
    ck_assert_int_eq(spec.t[1].kind, SP_AUG_TIME_WARP);
    REQ(spec.t[1].sigma == 0.2 && spec.t[1].knots == 8 && spec.t[1].p == 1.0);
    /* every registered augment key has a doc line and a valid default */
    int nk = 0;
    const SpCfgKey *keys = sp_config_keys(&nk);
    int naug = 0;
    for (int i = 0; i < nk; i++)
        if (strncmp(keys[i].key, "augment.", 8) == 0) {
            naug++;
            REQ_MSG(keys[i].doc && keys[i].doc[0], "%s has no doc", keys[i].key);
        }
    REQ(naug >= 2 + 2 * SP_AUG_NKINDS);
    /* the defaults of the keys and of aug_transform_default agree */
    for (int k = 0; k < SP_AUG_NKINDS; k++) {
        AugTransform d;
        aug_transform_default(&d, (AugKind)k);
        char set[96];
        snprintf(set, sizeof set, "augment.transforms=[\"%s\"]", aug_kind_name((AugKind)k));
        const char *sets[1] = {set};
        SpConfig *c2 = NULL;
        ck_assert_msg(load_with(&c2, sets, 1) == SP_OK, "%s", sp_error_message());
        ck_assert_msg(aug_spec_from_config(&spec, c2) == SP_OK, "%s", sp_error_message());
        ck_assert_int_eq(spec.n, 1);
        REQ_MSG(memcmp(&spec.t[0], &d, sizeof d) == 0, "%s: config defaults differ from "
                "aug_transform_default", aug_kind_name((AugKind)k));
        sp_config_free(c2);
    }
    sp_config_free(c);
}
END_TEST

START_TEST(config_overrides_groups_and_quirks) {
    const char *sets[] = {"augment.transforms=[\"G2\"]", "augment.p=0.2",
                          "augment.jitter.sigma=0.25", "augment.cutout.p=0.9",
                          "augment.window_warp.scale_low=0.5", "augment.window_warp.scale_high=2",
                          "reference_quirks=true"};
    SpConfig *c = NULL;
    ck_assert_msg(load_with(&c, sets, 7) == SP_OK, "%s", sp_error_message());
    AugSpec spec;
    ck_assert_msg(aug_spec_from_config(&spec, c) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(spec.n, 5);
    const AugKind want[5] = {SP_AUG_JITTER, SP_AUG_TIME_WARP, SP_AUG_WINDOW_SLICE,
                             SP_AUG_WINDOW_WARP, SP_AUG_CUTOUT};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(spec.t[i].kind, want[i]);
        REQ(spec.t[i].p == (want[i] == SP_AUG_CUTOUT ? 0.9 : 0.2));
    }
    REQ(spec.t[0].sigma == 0.25);
    REQ(spec.t[2].quirk_grid == 1);
    REQ(spec.t[3].scale_low == 0.5 && spec.t[3].scale_high == 2.0);
    AugPipeline *p = NULL;
    ck_assert_msg(aug_pipeline_create(&p, &spec, 4020) == SP_OK, "%s", sp_error_message());
    aug_pipeline_destroy(&p);
    sp_config_free(c);
    /* spectral extras with their parameters */
    const char *sets2[] = {"augment.transforms=[\"shift\", \"mask\", \"baseline\"]",
                           "augment.shift.max=3.5", "augment.shift.integer=true",
                           "augment.mask.fill=\"linear\"", "augment.mask.bands=3",
                           "augment.baseline.degree=4"};
    ck_assert_msg(load_with(&c, sets2, 6) == SP_OK, "%s", sp_error_message());
    ck_assert_msg(aug_spec_from_config(&spec, c) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(spec.n, 3);
    REQ(spec.t[0].max_shift == 3.5 && spec.t[0].integer_shift == 1);
    REQ(spec.t[1].fill == SP_AUG_FILL_LINEAR && spec.t[1].bands == 3);
    REQ(spec.t[2].degree == 4);
    sp_config_free(c);
    /* an empty list is the identity pipeline; "none" too */
    const char *sets3[] = {"augment.transforms=[]"};
    ck_assert_msg(load_with(&c, sets3, 1) == SP_OK, "%s", sp_error_message());
    ck_assert_msg(aug_spec_from_config(&spec, c) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(spec.n, 0);
    sp_config_free(c);
    const char *sets4[] = {"augment.transforms=[\"none\"]"};
    ck_assert_msg(load_with(&c, sets4, 1) == SP_OK, "%s", sp_error_message());
    ck_assert_msg(aug_spec_from_config(&spec, c) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(spec.n, 0);
    sp_config_free(c);
}
END_TEST

START_TEST(config_errors_name_the_key) {
    SpConfig *c = NULL;
    AugSpec spec;
    /* unknown transform name: the key and the valid names */
    const char *s1[] = {"augment.transforms=[\"jitter\", \"magnitude_wrap\"]"};
    ck_assert_msg(load_with(&c, s1, 1) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(aug_spec_from_config(&spec, c), SP_ECONFIG);
    REQ_MSG(strstr(sp_error_message(), "augment.transforms") &&
                strstr(sp_error_message(), "magnitude_wrap") &&
                strstr(sp_error_message(), "time_warp"),
            "%s", sp_error_message());
    sp_config_free(c);
    /* a group inside a longer list */
    const char *s2[] = {"augment.transforms=[\"G0\", \"jitter\"]"};
    ck_assert_msg(load_with(&c, s2, 1) == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(aug_spec_from_config(&spec, c), SP_ECONFIG);
    REQ_MSG(strstr(sp_error_message(), "augment.transforms"), "%s", sp_error_message());
    sp_config_free(c);
    /* out-of-range values are rejected at load time, naming the key */
    const char *bad[] = {"augment.jitter.sigma=-0.1", "augment.time_warp.knots=65",
                         "augment.p=1.5", "augment.mask.fill=\"noise\"",
                         "augment.magnitude_warp.knots=2.5", "augment.jitter.sigmaa=1"};
    const char *keys[] = {"augment.jitter.sigma", "augment.time_warp.knots", "augment.p",
                          "augment.mask.fill", "augment.magnitude_warp.knots",
                          "augment.jitter.sigmaa"};
    for (int i = 0; i < 6; i++) {
        const char *one[1] = {bad[i]};
        c = NULL;
        SpStatus rc = load_with(&c, one, 1);
        REQ_MSG(rc == SP_ECONFIG, "%s: status %d", bad[i], (int)rc);
        REQ_MSG(strstr(sp_error_message(), keys[i]), "%s: '%s'", bad[i], sp_error_message());
        sp_config_free(c);
    }
    /* a value valid for the config but not for this L: at pipeline creation */
    const char *s3[] = {"augment.transforms=[\"cutout\"]", "augment.cutout.ratio=0.98"};
    ck_assert_msg(load_with(&c, s3, 2) == SP_OK, "%s", sp_error_message());
    ck_assert_msg(aug_spec_from_config(&spec, c) == SP_OK, "%s", sp_error_message());
    AugPipeline *p = NULL;
    ck_assert_int_eq(aug_pipeline_create(&p, &spec, 37), SP_ECONFIG);
    REQ_MSG(strstr(sp_error_message(), "augment.cutout.ratio"), "%s", sp_error_message());
    ck_assert_msg(aug_pipeline_create(&p, &spec, 4020) == SP_OK, "%s", sp_error_message());
    aug_pipeline_destroy(&p);
    sp_config_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("augment");
    TCase *tc = tcase_create("numerics");
    tcase_add_loop_test(tc, spline_matches_scipy, 0,
                        (int)(sizeof g_spline_cases / sizeof g_spline_cases[0]));
    tcase_add_test(tc, spline_reproduces_polynomials);
    tcase_add_test(tc, interp_matches_numpy);
    tcase_add_test(tc, linspace_elements);
    suite_add_tcase(s, tc);

    tc = tcase_create("forward");
    tcase_add_test(tc, magnitude_warp_matches_numpy);
    tcase_add_test(tc, time_warp_matches_numpy);
    tcase_add_test(tc, published_chain_matches_numpy);
    tcase_add_test(tc, window_slice_matches_numpy);
    tcase_add_test(tc, window_warp_matches_numpy);
    tcase_add_test(tc, shift_and_crop_match_numpy);
    suite_add_tcase(s, tc);

    tc = tcase_create("properties");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, every_transform_finite_keeps_length, 0, SP_AUG_NKINDS);
    tcase_add_test(tc, zero_strength_is_identity);
    tcase_add_test(tc, time_warp_zero_sigma_closed_form);
    tcase_add_test(tc, time_warp_endpoints_and_range);
    tcase_add_test(tc, statistics_of_noise_and_scaling);
    tcase_add_test(tc, cutout_mask_baseline_shapes);
    tcase_add_test(tc, resampling_transforms_stay_in_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("cut");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, cut_label_rule);
    tcase_add_test(tc, cut_priors_formula_and_sampling);
    tcase_add_test(tc, cut_piece_content);
    suite_add_tcase(s, tc);

    tc = tcase_create("pipeline");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, pipeline_deterministic_per_key);
    tcase_add_test(tc, pipeline_draw_order_documented);
    tcase_add_test(tc, pipeline_gate_frequency);
    tcase_add_test(tc, batch_independent_of_threads_and_composition);
    tcase_add_test(tc, groups_and_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, bad_parameters_name_the_key);
    tcase_add_test(tc, bad_piece_size_names_the_key);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_test(tc, config_defaults_are_the_published_run);
    tcase_add_test(tc, config_overrides_groups_and_quirks);
    tcase_add_test(tc, config_errors_name_the_key);
    suite_add_tcase(s, tc);
    return sp_run_suite(s);
}
