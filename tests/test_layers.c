/* test_layers: core/sp_layers.h against the double reference (tests/support/ref_layers).
 *
 * gradcheck: tier A, the reference backward vs central differences in double
 *            (loss = sum out * G with a fixed random G), max rel err <= 1e-7.
 * forward/backward: tier B, the production float kernels vs the reference,
 *            swept over shapes; backward accumulates (+=) into prefilled grads.
 * determinism: 1 thread bit-identical run to run; 1 vs 2 threads bit-identical
 *            where a kernel owns its writes, within tolerance for reductions.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ref_layers.h"
#include "sp_blas.h"
#include "sp_layers.h"
#include "sp_test.h"

#define GC_TOL 1e-7

/* ------------------------------------------------------------------ helpers */
static float *fa(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *da(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *dcopy(const float *x, size_t n) {
    double *d = da(n);
    ref_to_double(d, x, n);
    return d;
}

static float *frand(size_t n, unsigned long long seed, double lo, double hi) {
    float *p = fa(n);
    sp_fill_uniform_f(p, n, seed, lo, hi);
    return p;
}

static double *drand_(size_t n, unsigned long long seed, double lo, double hi) {
    double *p = da(n);
    sp_fill_uniform_d(p, n, seed, lo, hi);
    return p;
}

/* got (float, after backward twice from init) == init + k * ref */
static void expect_accum(const char *name, const float *got, const float *init, const double *ref,
                         size_t n, double k, double rtol, double atol_rel) {
    double *want = da(n);
    for (size_t i = 0; i < n; i++) want[i] = (double)init[i] + k * ref[i];
    double atol = atol_rel * (sp_max_abs_d(ref, n) + sp_max_abs_f(init, n));
    sp_expect_close_d(name, got, want, n, rtol, atol);
    free(want);
}

static void expect_bits(const char *name, const void *a, const void *b, size_t bytes) {
    ck_assert_msg(memcmp(a, b, bytes) == 0, "%s: results differ bit-wise", name);
}

static void use_threads(int n) {
    omp_set_num_threads(n);
    sp_blas_init(n);
}

/* ------------------------------------------------------------------ conv1d */
typedef struct { int B, C, L, O, K, stride, pad; } ConvCase;

static const ConvCase conv_cases[] = {
    {2, 3, 11, 4, 3, 1, 0}, {2, 3, 11, 4, 3, 1, 1}, {2, 3, 11, 4, 3, 2, 0}, {2, 3, 11, 4, 3, 2, 1},
    {2, 3, 12, 4, 5, 2, 2}, {2, 3, 11, 4, 1, 1, 0}, {2, 1, 11, 4, 5, 2, 0}, {2, 1, 13, 4, 5, 1, 2},
    {3, 3, 10, 4, 3, 3, 1}, {2, 2, 7, 3, 1, 2, 0},  {2, 1, 12, 3, 5, 3, 4}, {5, 3, 11, 4, 3, 1, 1},
    {2, 16, 37, 8, 5, 1, 0}, {2, 1, 4, 4, 5, 1, 1}, {3, 2, 9, 5, 4, 2, 3},  {1, 4, 5, 2, 5, 1, 0},
};
#define N_CONV_CASES ((int)(sizeof conv_cases / sizeof conv_cases[0]))

typedef struct {
    ConvCase c;
    int Lo;
    double *inp, *w, *b, *G, *out;
} ConvCtx;

static void conv_fwd(void *p, double *out) {
    ConvCtx *x = p;
    const ConvCase *c = &x->c;
    ref_conv1d_forward(out, x->inp, x->w, x->b, c->B, c->C, c->L, c->O, c->K, c->stride, c->pad);
}

START_TEST(conv1d_out_len_rule) {
    ck_assert_int_eq(conv1d_out_len(11, 3, 1, 0), 9);
    ck_assert_int_eq(conv1d_out_len(11, 3, 2, 1), 6);
    ck_assert_int_eq(conv1d_out_len(4020, 5, 2, 0), 2008);
    ck_assert_int_eq(conv1d_out_len(1004, 5, 1, 0), 1000);
    ck_assert_int_eq(conv1d_out_len(4, 5, 1, 0), 0);  /* too short */
    ck_assert_int_eq(conv1d_out_len(4, 5, 2, 0), 0);  /* (-1)/2 + 1 must not give 1 */
    ck_assert_int_eq(conv1d_out_len(5, 5, 3, 0), 1);
    ck_assert_int_eq(conv1d_out_len(3, 5, 1, 1), 1);
    SpConv1d s = conv1d_shape(2, 3, 11, 4, 3, 2, 1);
    ck_assert_int_eq(s.Lo, 6);
    ck_assert_int_eq(s.O, 4);
}
END_TEST

START_TEST(conv1d_gradcheck) {
    const ConvCase c = conv_cases[_i];
    ConvCtx x = {c, conv1d_out_len(c.L, c.K, c.stride, c.pad), 0, 0, 0, 0, 0};
    size_t ni = (size_t)c.B * c.C * c.L, nw = (size_t)c.O * c.C * c.K, no = (size_t)c.B * c.O * x.Lo;
    x.inp = drand_(ni, 1, -1, 1);
    x.w = drand_(nw, 2, -1, 1);
    x.b = drand_(c.O, 3, -1, 1);
    x.G = drand_(no, 4, -1, 1);
    x.out = da(no);
    double *di = da(ni), *dw = da(nw), *db = da(c.O);
    ref_conv1d_backward(di, dw, db, x.G, x.inp, x.w, c.B, c.C, c.L, c.O, c.K, c.stride, c.pad);
    ref_expect_gradcheck_fwd("conv1d dinp", conv_fwd, &x, no, x.G, x.inp, ni, di, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("conv1d dw", conv_fwd, &x, no, x.G, x.w, nw, dw, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("conv1d db", conv_fwd, &x, no, x.G, x.b, c.O, db, NULL, GC_TOL);
    free(x.inp); free(x.w); free(x.b); free(x.G); free(x.out); free(di); free(dw); free(db);
}
END_TEST

/* Tier B: forward, and backward twice into prefilled gradients (accumulation). */
static void conv_tier_b(const ConvCase c, int with_bias) {
    sp_blas_init(0);
    SpConv1d s = conv1d_shape(c.B, c.C, c.L, c.O, c.K, c.stride, c.pad);
    ck_assert_int_gt(s.Lo, 0);
    size_t ni = (size_t)c.B * c.C * c.L, nw = (size_t)c.O * c.C * c.K, no = (size_t)c.B * c.O * s.Lo;
    float *inp = frand(ni, 10, -1, 1), *w = frand(nw, 11, -1, 1), *b = frand(c.O, 12, -1, 1);
    float *dout = frand(no, 13, -1, 1), *out = fa(no), *work = fa(conv1d_work_floats(&s));
    /* NaN-poisoned output: forward must overwrite every element */
    for (size_t i = 0; i < no; i++) out[i] = NAN;
    conv1d_forward(out, inp, w, with_bias ? b : NULL, &s, work);
    double *dinp = dcopy(inp, ni), *dw = dcopy(w, nw), *db = dcopy(b, c.O), *ddout = dcopy(dout, no);
    double *rout = da(no);
    ref_conv1d_forward(rout, dinp, dw, with_bias ? db : NULL, c.B, c.C, c.L, c.O, c.K, c.stride, c.pad);
    sp_expect_close_d("conv1d out", out, rout, no, 1e-5, 1e-6 * sp_max_abs_d(rout, no));

    double *rgi = da(ni), *rgw = da(nw), *rgb = da(c.O);
    ref_conv1d_backward(rgi, rgw, rgb, ddout, dinp, dw, c.B, c.C, c.L, c.O, c.K, c.stride, c.pad);
    float *gi0 = frand(ni, 20, -1, 1), *gw0 = frand(nw, 21, -1, 1), *gb0 = frand(c.O, 22, -1, 1);
    float *gi = fa(ni), *gw = fa(nw), *gb = fa(c.O);
    memcpy(gi, gi0, ni * sizeof(float));
    memcpy(gw, gw0, nw * sizeof(float));
    memcpy(gb, gb0, c.O * sizeof(float));
    conv1d_backward(gi, gw, gb, dout, inp, w, &s, work);
    expect_accum("conv1d dinp", gi, gi0, rgi, ni, 1, 1e-5, 1e-6);
    expect_accum("conv1d dw", gw, gw0, rgw, nw, 1, 1e-5, 1e-6);
    expect_accum("conv1d db", gb, gb0, rgb, c.O, 1, 1e-5, 1e-6);
    conv1d_backward(gi, gw, gb, dout, inp, w, &s, work);
    expect_accum("conv1d dinp x2", gi, gi0, rgi, ni, 2, 1e-5, 1e-6);
    expect_accum("conv1d dw x2", gw, gw0, rgw, nw, 2, 1e-5, 1e-6);
    expect_accum("conv1d db x2", gb, gb0, rgb, c.O, 2, 1e-5, 1e-6);
    /* NULL dinp / dbias (first layer): dw still right */
    memcpy(gw, gw0, nw * sizeof(float));
    conv1d_backward(NULL, gw, NULL, dout, inp, w, &s, work);
    expect_accum("conv1d dw (dinp NULL)", gw, gw0, rgw, nw, 1, 1e-5, 1e-6);

    free(inp); free(w); free(b); free(dout); free(out); free(work); free(dinp); free(dw); free(db);
    free(ddout); free(rout); free(rgi); free(rgw); free(rgb); free(gi0); free(gw0); free(gb0);
    free(gi); free(gw); free(gb);
}

START_TEST(conv1d_vs_reference) { conv_tier_b(conv_cases[_i], 1); }
END_TEST

START_TEST(conv1d_vs_reference_nobias) { conv_tier_b(conv_cases[_i], 0); }
END_TEST

START_TEST(conv1d_exact_small) {
    /* Hand-computed: C=1, L=5, K=3, stride 2, pad 1, exact binary values.
     * x = [1 2 3 4 5], w = [0.5 1 -1], b = 0.25: padded x = [0 1 2 3 4 5 0]
     * t=0: 0*0.5 + 1*1 + 2*(-1) + .25 = -0.75; t=1: 1 + 3 - 4 + .25 = 0.25;
     * t=2: 2 + 5 - 0 + .25 = 7.25 */
    sp_blas_init(0);
    float x[5] = {1, 2, 3, 4, 5}, w[3] = {0.5f, 1, -1}, b[1] = {0.25f}, out[3];
    SpConv1d s = conv1d_shape(1, 1, 5, 1, 3, 2, 1);
    float *work = fa(conv1d_work_floats(&s));
    conv1d_forward(out, x, w, b, &s, work);
    ck_assert(out[0] == -0.75f && out[1] == 0.25f && out[2] == 7.25f);
    /* same through the im2col path: two input channels, the second all zero */
    float x2[10] = {1, 2, 3, 4, 5, 0, 0, 0, 0, 0}, w2[6] = {0.5f, 1, -1, 3, 3, 3};
    SpConv1d s2 = conv1d_shape(1, 2, 5, 1, 3, 2, 1);
    float *work2 = fa(conv1d_work_floats(&s2));
    conv1d_forward(out, x2, w2, b, &s2, work2);
    ck_assert(out[0] == -0.75f && out[1] == 0.25f && out[2] == 7.25f);
    /* backward with dout = [1 1 1]: dinp = sum of taps landing on each input:
     * x0: t0 k1 -> 1; x1: t0 k2 + t1 k0 -> -1 + 0.5; x2: t1 k1 -> 1; x3: t1 k2 + t2 k0
     * -> -0.5; x4: t2 k1 -> 1 */
    float dout[3] = {1, 1, 1}, dx[10] = {0}, dw[6] = {0}, db[1] = {0};
    conv1d_backward(dx, dw, db, dout, x2, w2, &s2, work2);
    ck_assert(dx[0] == 1 && dx[1] == -0.5f && dx[2] == 1 && dx[3] == -0.5f && dx[4] == 1);
    ck_assert(dx[5] == 3 && dx[6] == 6 && dx[7] == 3 && dx[8] == 6 && dx[9] == 3);
    /* dw[k] = sum_t padded x[2t + k]: k0: 0+2+4, k1: 1+3+5, k2: 2+4+0 */
    ck_assert(dw[0] == 6 && dw[1] == 9 && dw[2] == 6 && db[0] == 3);
    free(work);
    free(work2);
}
END_TEST

START_TEST(conv1d_determinism) {
    const ConvCase cs[3] = {{7, 5, 67, 6, 5, 2, 2}, {5, 1, 40, 6, 5, 2, 0}, {6, 4, 30, 3, 1, 1, 0}};
    for (int k = 0; k < 3; k++) {
        ConvCase c = cs[k];
        use_threads(2);
        SpConv1d s = conv1d_shape(c.B, c.C, c.L, c.O, c.K, c.stride, c.pad);
        size_t ni = (size_t)c.B * c.C * c.L, nw = (size_t)c.O * c.C * c.K, no = (size_t)c.B * c.O * s.Lo;
        float *inp = frand(ni, 30, -1, 1), *w = frand(nw, 31, -1, 1), *b = frand(c.O, 32, -1, 1);
        float *dout = frand(no, 33, -1, 1), *work = fa(conv1d_work_floats(&s));
        float *out[3], *gi[3], *gw[3], *gb[3];
        for (int r = 0; r < 3; r++) {  /* runs: 1 thread, 1 thread, 2 threads */
            use_threads(r < 2 ? 1 : 2);
            out[r] = fa(no); gi[r] = fa(ni); gw[r] = fa(nw); gb[r] = fa(c.O);
            conv1d_forward(out[r], inp, w, b, &s, work);
            conv1d_backward(gi[r], gw[r], gb[r], dout, inp, w, &s, work);
        }
        expect_bits("conv1d out 1t", out[0], out[1], no * sizeof(float));
        expect_bits("conv1d dinp 1t", gi[0], gi[1], ni * sizeof(float));
        expect_bits("conv1d dw 1t", gw[0], gw[1], nw * sizeof(float));
        expect_bits("conv1d db 1t", gb[0], gb[1], c.O * sizeof(float));
        expect_bits("conv1d out 1t vs 2t", out[0], out[2], no * sizeof(float));
        expect_bits("conv1d dinp 1t vs 2t", gi[0], gi[2], ni * sizeof(float));
        sp_expect_close_f("conv1d dw 1t vs 2t", gw[2], gw[0], nw, 1e-5, 1e-6 * sp_max_abs_f(gw[0], nw));
        sp_expect_close_f("conv1d db 1t vs 2t", gb[2], gb[0], c.O, 1e-5, 1e-6 * sp_max_abs_f(gb[0], c.O));
        for (int r = 0; r < 3; r++) { free(out[r]); free(gi[r]); free(gw[r]); free(gb[r]); }
        free(inp); free(w); free(b); free(dout); free(work);
    }
}
END_TEST

/* ------------------------------------------------------------------ linear */
typedef struct { int N, in, out; } LinCase;
static const LinCase lin_cases[] = {{5, 7, 3}, {1, 4, 1}, {9, 6, 8}, {13, 5, 2}, {4, 3, 16}, {33, 17, 5}};
#define N_LIN_CASES ((int)(sizeof lin_cases / sizeof lin_cases[0]))

typedef struct {
    LinCase c;
    double *inp, *w, *b, *G, *out;
} LinCtx;

static void lin_fwd(void *p, double *out) {
    LinCtx *x = p;
    ref_linear_forward(out, x->inp, x->w, x->b, x->c.N, x->c.in, x->c.out);
}

START_TEST(linear_gradcheck) {
    LinCase c = lin_cases[_i];
    size_t ni = (size_t)c.N * c.in, nw = (size_t)c.out * c.in, no = (size_t)c.N * c.out;
    LinCtx x = {c, drand_(ni, 1, -1, 1), drand_(nw, 2, -1, 1), drand_(c.out, 3, -1, 1),
                drand_(no, 4, -1, 1), da(no)};
    double *di = da(ni), *dw = da(nw), *db = da(c.out);
    ref_linear_backward(di, dw, db, x.G, x.inp, x.w, c.N, c.in, c.out);
    ref_expect_gradcheck_fwd("linear dinp", lin_fwd, &x, no, x.G, x.inp, ni, di, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("linear dw", lin_fwd, &x, no, x.G, x.w, nw, dw, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("linear db", lin_fwd, &x, no, x.G, x.b, c.out, db, NULL, GC_TOL);
    free(x.inp); free(x.w); free(x.b); free(x.G); free(x.out); free(di); free(dw); free(db);
}
END_TEST

START_TEST(linear_vs_reference) {
    sp_blas_init(0);
    LinCase c = lin_cases[_i];
    size_t ni = (size_t)c.N * c.in, nw = (size_t)c.out * c.in, no = (size_t)c.N * c.out;
    float *inp = frand(ni, 10, -1, 1), *w = frand(nw, 11, -1, 1), *b = frand(c.out, 12, -1, 1);
    float *dout = frand(no, 13, -1, 1), *out = fa(no), *work = fa(linear_work_floats(c.N, c.in, c.out));
    double *dinp = dcopy(inp, ni), *dw = dcopy(w, nw), *db = dcopy(b, c.out), *ddout = dcopy(dout, no);
    double *rout = da(no);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        for (size_t i = 0; i < no; i++) out[i] = NAN;
        linear_forward(out, inp, w, with_bias ? b : NULL, c.N, c.in, c.out);
        ref_linear_forward(rout, dinp, dw, with_bias ? db : NULL, c.N, c.in, c.out);
        sp_expect_close_d("linear out", out, rout, no, 1e-5, 1e-6 * sp_max_abs_d(rout, no));
    }
    double *rgi = da(ni), *rgw = da(nw), *rgb = da(c.out);
    ref_linear_backward(rgi, rgw, rgb, ddout, dinp, dw, c.N, c.in, c.out);
    float *gi0 = frand(ni, 20, -1, 1), *gw0 = frand(nw, 21, -1, 1), *gb0 = frand(c.out, 22, -1, 1);
    float *gi = fa(ni), *gw = fa(nw), *gb = fa(c.out);
    memcpy(gi, gi0, ni * sizeof(float));
    memcpy(gw, gw0, nw * sizeof(float));
    memcpy(gb, gb0, c.out * sizeof(float));
    for (int rep = 1; rep <= 2; rep++) {
        linear_backward(gi, gw, gb, dout, inp, w, c.N, c.in, c.out, work);
        expect_accum("linear dinp", gi, gi0, rgi, ni, rep, 1e-5, 1e-6);
        expect_accum("linear dw", gw, gw0, rgw, nw, rep, 1e-5, 1e-6);
        expect_accum("linear db", gb, gb0, rgb, c.out, rep, 1e-5, 1e-6);
    }
    memcpy(gw, gw0, nw * sizeof(float));
    linear_backward(NULL, gw, NULL, dout, inp, w, c.N, c.in, c.out, work);
    expect_accum("linear dw (dinp NULL)", gw, gw0, rgw, nw, 1, 1e-5, 1e-6);
    free(inp); free(w); free(b); free(dout); free(out); free(work); free(dinp); free(dw); free(db);
    free(ddout); free(rout); free(rgi); free(rgw); free(rgb); free(gi0); free(gw0); free(gb0);
    free(gi); free(gw); free(gb);
}
END_TEST

START_TEST(linear_determinism) {
    const LinCase cs[2] = {{37, 19, 11}, {41, 13, 1}};  /* output-row split and partials */
    for (int k = 0; k < 2; k++) {
        LinCase c = cs[k];
        use_threads(2);
        size_t ni = (size_t)c.N * c.in, nw = (size_t)c.out * c.in, no = (size_t)c.N * c.out;
        float *inp = frand(ni, 30, -1, 1), *w = frand(nw, 31, -1, 1), *b = frand(c.out, 32, -1, 1);
        float *dout = frand(no, 33, -1, 1), *work = fa(linear_work_floats(c.N, c.in, c.out));
        float *out[3], *gi[3], *gw[3], *gb[3];
        for (int r = 0; r < 3; r++) {
            use_threads(r < 2 ? 1 : 2);
            out[r] = fa(no); gi[r] = fa(ni); gw[r] = fa(nw); gb[r] = fa(c.out);
            linear_forward(out[r], inp, w, b, c.N, c.in, c.out);
            linear_backward(gi[r], gw[r], gb[r], dout, inp, w, c.N, c.in, c.out, work);
        }
        expect_bits("linear out 1t", out[0], out[1], no * sizeof(float));
        expect_bits("linear dinp 1t", gi[0], gi[1], ni * sizeof(float));
        expect_bits("linear dw 1t", gw[0], gw[1], nw * sizeof(float));
        expect_bits("linear db 1t", gb[0], gb[1], c.out * sizeof(float));
        sp_expect_close_f("linear out 1t vs 2t", out[2], out[0], no, 1e-6, 1e-7);
        sp_expect_close_f("linear dinp 1t vs 2t", gi[2], gi[0], ni, 1e-6, 1e-7);
        sp_expect_close_f("linear dw 1t vs 2t", gw[2], gw[0], nw, 1e-5, 1e-6 * sp_max_abs_f(gw[0], nw));
        sp_expect_close_f("linear db 1t vs 2t", gb[2], gb[0], c.out, 1e-5, 1e-6 * sp_max_abs_f(gb[0], c.out));
        for (int r = 0; r < 3; r++) { free(out[r]); free(gi[r]); free(gw[r]); free(gb[r]); }
        free(inp); free(w); free(b); free(dout); free(work);
    }
}
END_TEST

/* ------------------------------------------------------------- activations */
typedef struct {
    int kind;  /* 0 relu, 1 leaky relu, 2 softmax */
    int N, D;
    double slope, *inp, *G, *out;
} ActCtx;

static void act_fwd(void *p, double *out) {
    ActCtx *x = p;
    size_t n = (size_t)x->N * x->D;
    if (x->kind == 0) ref_relu_forward(out, x->inp, n);
    else if (x->kind == 1) ref_leaky_relu_forward(out, x->inp, n, x->slope);
    else ref_softmax_forward(out, x->inp, x->N, x->D);
}

START_TEST(activation_gradcheck) {
    const int N = 4, D = 7;
    size_t n = (size_t)N * D;
    ActCtx x = {_i, N, D, 0.01, drand_(n, 1, -2, 2), drand_(n, 2, -1, 1), da(n)};
    double *g = da(n);
    unsigned char *skip = calloc(n, 1);
    /* skip coordinates within ~10 eps of the ReLU kink */
    for (size_t i = 0; i < n; i++) skip[i] = _i < 2 && fabs(x.inp[i]) < 1e-4;
    if (_i == 0) ref_relu_backward(g, x.G, x.inp, n);
    else if (_i == 1) ref_leaky_relu_backward(g, x.G, x.inp, n, x.slope);
    else ref_softmax_backward(g, x.G, x.inp, N, D);
    ref_expect_gradcheck_fwd(_i == 0 ? "relu" : _i == 1 ? "leaky_relu" : "softmax", act_fwd, &x,
                             n, x.G, x.inp, n, g, skip, GC_TOL);
    free(x.inp); free(x.G); free(x.out); free(g); free(skip);
}
END_TEST

START_TEST(activation_vs_reference) {
    sp_blas_init(0);
    /* big enough (> 32768 elements) to take the parallel path too */
    const int shapes[2][2] = {{3, 5}, {300, 129}};
    for (int sh = 0; sh < 2; sh++) {
        int N = shapes[sh][0], D = shapes[sh][1];
        size_t n = (size_t)N * D;
        float *x = frand(n, 40 + sh, -3, 3), *g = frand(n, 50 + sh, -1, 1), *y = fa(n);
        x[0] = 0.0f;  /* ReLU'(0) = 0 */
        double *dx = dcopy(x, n), *dg = dcopy(g, n), *ry = da(n), *rg = da(n);
        float *gi0 = frand(n, 60, -1, 1), *gi = fa(n);
        for (int kind = 0; kind < 3; kind++) {
            memset(rg, 0, n * sizeof(double));
            memcpy(gi, gi0, n * sizeof(float));
            if (kind == 0) {
                relu_forward(y, x, n);
                ref_relu_forward(ry, dx, n);
                for (int r = 0; r < 2; r++) relu_backward(gi, g, x, n);
                ref_relu_backward(rg, dg, dx, n);
            } else if (kind == 1) {
                leaky_relu_forward(y, x, n, 0.01f);
                ref_leaky_relu_forward(ry, dx, n, (double)0.01f);
                for (int r = 0; r < 2; r++) leaky_relu_backward(gi, g, x, n, 0.01f);
                ref_leaky_relu_backward(rg, dg, dx, n, (double)0.01f);
            } else {
                softmax_forward(y, x, N, D);
                ref_softmax_forward(ry, dx, N, D);
                for (int r = 0; r < 2; r++) softmax_backward(gi, g, y, N, D);
                ref_softmax_backward(rg, dg, dx, N, D);
            }
            sp_expect_close_d("activation out", y, ry, n, 1e-5, 1e-6 * sp_max_abs_d(ry, n));
            expect_accum("activation dinp x2", gi, gi0, rg, n, 2, 1e-5, 1e-6);
        }
        /* in place */
        float *z = fa(n);
        memcpy(z, x, n * sizeof(float));
        relu_forward(z, z, n);
        relu_forward(y, x, n);
        expect_bits("relu in place", z, y, n * sizeof(float));
        memcpy(z, x, n * sizeof(float));
        leaky_relu_forward(z, z, n, 0.2f);
        leaky_relu_forward(y, x, n, 0.2f);
        expect_bits("leaky relu in place", z, y, n * sizeof(float));
        ck_assert(y[0] == 0.0f);
        free(x); free(g); free(y); free(dx); free(dg); free(ry); free(rg); free(gi0); free(gi);
        free(z);
    }
}
END_TEST

START_TEST(softmax_stable_and_exact) {
    /* huge logits must not overflow; equal logits give exact uniform rows */
    float x[8] = {1000, 1000, 1000, 1000, -1000, 0, 1000, -1000}, y[8];
    softmax_forward(y, x, 2, 4);
    for (int d = 0; d < 4; d++) ck_assert(y[d] == 0.25f);
    ck_assert(isfinite(y[4]) && y[6] > 0.99f && y[4] == 0.0f);
    double s = 0;
    for (int d = 4; d < 8; d++) s += y[d];
    ck_assert(fabs(s - 1) < 1e-6);
}
END_TEST

/* ----------------------------------------------------------------- pooling */
typedef struct {
    int kind;  /* 0 max, 1 adaptive, 2 global */
    int NC, L, k, Lout;
    double *inp, *G, *out;
} PoolCtx;

static size_t pool_nout(const PoolCtx *x) {
    return (size_t)x->NC * (x->kind == 0 ? x->L / x->k : x->kind == 1 ? x->Lout : 1);
}

static void pool_fwd(void *p, double *out) {
    PoolCtx *x = p;
    if (x->kind == 0) ref_maxpool1d_forward(out, NULL, x->inp, x->NC, x->L, x->k);
    else if (x->kind == 1) ref_adaptive_avgpool1d_forward(out, x->inp, x->NC, x->L, x->Lout);
    else ref_global_avgpool1d_forward(out, x->inp, x->NC, 1, x->L);
}

/* (kind, NC, L, k, Lout) */
static const int pool_cases[][5] = {
    {0, 3, 11, 2, 0}, {0, 4, 12, 3, 0}, {0, 2, 7, 7, 0},  {0, 2, 9, 1, 0},
    {1, 3, 11, 0, 4}, {1, 2, 5, 0, 3},  {1, 2, 4, 0, 9},  {1, 2, 7, 0, 7},
    {1, 2, 30, 0, 11}, {2, 3, 11, 0, 0}, {2, 2, 1, 0, 0},
};
#define N_POOL_CASES ((int)(sizeof pool_cases / sizeof pool_cases[0]))

START_TEST(pool_gradcheck) {
    const int *pc = pool_cases[_i];
    PoolCtx x = {pc[0], pc[1], pc[2], pc[3], pc[4], 0, 0, 0};
    size_t ni = (size_t)x.NC * x.L, no = pool_nout(&x);
    x.inp = drand_(ni, 1, -1, 1);
    x.G = drand_(no, 2, -1, 1);
    x.out = da(no);
    double *g = da(ni);
    unsigned char *skip = calloc(ni, 1);
    if (x.kind == 0) {
        ref_maxpool1d_backward(g, x.G, x.inp, x.NC, x.L, x.k);
        /* skip windows whose top two values are within 10 eps (a tie) */
        for (int r = 0; r < x.NC; r++)
            for (int t = 0; t < x.L / x.k; t++)
                for (int a = 0; a < x.k; a++)
                    for (int b = a + 1; b < x.k; b++)
                        if (fabs(x.inp[(size_t)r * x.L + t * x.k + a] - x.inp[(size_t)r * x.L + t * x.k + b]) < 1e-4)
                            for (int j = 0; j < x.k; j++) skip[(size_t)r * x.L + t * x.k + j] = 1;
    } else if (x.kind == 1) {
        ref_adaptive_avgpool1d_backward(g, x.G, x.NC, x.L, x.Lout);
    } else {
        ref_global_avgpool1d_backward(g, x.G, x.NC, 1, x.L);
    }
    ref_expect_gradcheck_fwd("pool dinp", pool_fwd, &x, no, x.G, x.inp, ni, g, skip, GC_TOL);
    free(x.inp); free(x.G); free(x.out); free(g); free(skip);
}
END_TEST

START_TEST(pool_vs_reference) {
    sp_blas_init(0);
    const int *pc = pool_cases[_i];
    for (int big = 0; big < 2; big++) {
        /* the big variant has > 32768 elements (parallel path) */
        PoolCtx x = {pc[0], pc[1] * (big ? 1200 : 1), pc[2], pc[3], pc[4], 0, 0, 0};
        size_t ni = (size_t)x.NC * x.L, no = pool_nout(&x);
        float *inp = frand(ni, 5, -1, 1), *dout = frand(no, 6, -1, 1), *out = fa(no);
        float *g0 = frand(ni, 7, -1, 1), *g = fa(ni);
        memcpy(g, g0, ni * sizeof(float));
        double *din = dcopy(inp, ni), *ddout = dcopy(dout, no), *rout = da(no), *rg = da(ni);
        int *idx = calloc(no, sizeof(int));
        for (int rep = 0; rep < 2; rep++) {
            if (x.kind == 0) {
                maxpool1d_forward(out, idx, inp, x.NC, x.L, x.k);
                maxpool1d_backward(g, dout, idx, x.NC, x.L, x.k);
            } else if (x.kind == 1) {
                adaptive_avgpool1d_forward(out, inp, x.NC, x.L, x.Lout);
                adaptive_avgpool1d_backward(g, dout, x.NC, x.L, x.Lout);
            } else {
                global_avgpool1d_forward(out, inp, x.NC, 1, x.L);
                global_avgpool1d_backward(g, dout, x.NC, 1, x.L);
            }
        }
        if (x.kind == 0) {
            int *ridx = calloc(no, sizeof(int));
            ref_maxpool1d_forward(rout, ridx, din, x.NC, x.L, x.k);
            ck_assert(memcmp(idx, ridx, no * sizeof(int)) == 0);
            ref_maxpool1d_backward(rg, ddout, din, x.NC, x.L, x.k);
            free(ridx);
        } else if (x.kind == 1) {
            ref_adaptive_avgpool1d_forward(rout, din, x.NC, x.L, x.Lout);
            ref_adaptive_avgpool1d_backward(rg, ddout, x.NC, x.L, x.Lout);
        } else {
            ref_global_avgpool1d_forward(rout, din, x.NC, 1, x.L);
            ref_global_avgpool1d_backward(rg, ddout, x.NC, 1, x.L);
        }
        sp_expect_close_d("pool out", out, rout, no, 1e-6, 1e-7);
        expect_accum("pool dinp x2", g, g0, rg, ni, 2, 1e-5, 1e-6);
        free(inp); free(dout); free(out); free(g0); free(g); free(din); free(ddout); free(rout);
        free(rg); free(idx);
    }
}
END_TEST

START_TEST(maxpool_ties_and_remainder) {
    /* ties go to the first maximum; the trailing element (L = 7, k = 2) is dropped */
    float x[7] = {2, 2, -1, 3, 5, 5, 9}, y[3], dx[7] = {0}, g[3] = {1, 2, 4};
    int idx[3];
    maxpool1d_forward(y, idx, x, 1, 7, 2);
    ck_assert(idx[0] == 0 && idx[1] == 3 && idx[2] == 4);
    ck_assert(y[0] == 2 && y[1] == 3 && y[2] == 5);
    maxpool1d_backward(dx, g, idx, 1, 7, 2);
    const float want[7] = {1, 0, 0, 2, 4, 0, 0};
    ck_assert(memcmp(dx, want, sizeof want) == 0);
    /* a NaN propagates (PyTorch) */
    float xn[4] = {1, NAN, 3, 2}, yn[2];
    maxpool1d_forward(yn, idx, xn, 1, 4, 2);
    ck_assert(isnan(yn[0]) && idx[0] == 1 && yn[1] == 3);
}
END_TEST

START_TEST(adaptive_bins_exact) {
    /* Lin 5 -> 3: bins [0,2) [1,4) [3,5) */
    float x[5] = {1, 2, 4, 8, 16}, y[3], dx[5] = {0}, g[3] = {3, 3, 2};
    adaptive_avgpool1d_forward(y, x, 1, 5, 3);
    ck_assert(y[0] == 1.5f && y[1] == 14.0f / 3.0f && y[2] == 12.0f);
    adaptive_avgpool1d_backward(dx, g, 1, 5, 3);
    ck_assert(dx[0] == 1.5f && dx[1] == 2.5f && dx[2] == 1.0f && dx[3] == 2.0f && dx[4] == 1.0f);
    /* Lin 2 -> 3 (Lin < Lout, positions repeat): bins [0,1) [0,2) [1,2) */
    float x2[2] = {1, 3}, y2[3], dx2[2] = {0}, g2[3] = {1, 2, 4};
    adaptive_avgpool1d_forward(y2, x2, 1, 2, 3);
    ck_assert(y2[0] == 1 && y2[1] == 2 && y2[2] == 3);
    adaptive_avgpool1d_backward(dx2, g2, 1, 2, 3);
    ck_assert(dx2[0] == 2 && dx2[1] == 5);
    /* encoder shapes: bin sizes for Lin = 500 are 3 or 4, for Lin = 98 are 1 or 2
     * (reference/specrrmoco.md 3.2): a ones row averages to exactly 1 and the
     * backward of ones counts how many bins cover each position */
    const int lins[2] = {500, 98};
    for (int k = 0; k < 2; k++) {
        int Lin = lins[k];
        float *ones = fa((size_t)Lin), *cover = fa((size_t)Lin), *o = fa(236), *g1 = fa(236);
        for (int i = 0; i < Lin; i++) ones[i] = 1;
        for (int i = 0; i < 236; i++) g1[i] = 1;
        adaptive_avgpool1d_forward(o, ones, 1, Lin, 236);
        for (int i = 0; i < 236; i++) ck_assert(o[i] == 1.0f);
        /* sum over positions of the gradient = number of bins */
        adaptive_avgpool1d_backward(cover, g1, 1, Lin, 236);
        double s = 0;
        for (int i = 0; i < Lin; i++) s += cover[i];
        ck_assert(fabs(s - 236) < 1e-3);
        free(ones); free(cover); free(o); free(g1);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("layers");

    TCase *tg = tcase_create("gradcheck");
    tcase_set_timeout(tg, 120);
    tcase_add_loop_test(tg, conv1d_gradcheck, 0, N_CONV_CASES);
    tcase_add_loop_test(tg, linear_gradcheck, 0, N_LIN_CASES);
    tcase_add_loop_test(tg, activation_gradcheck, 0, 3);
    tcase_add_loop_test(tg, pool_gradcheck, 0, N_POOL_CASES);
    suite_add_tcase(s, tg);

    TCase *tf = tcase_create("forward");
    tcase_set_timeout(tf, 60);
    tcase_add_test(tf, conv1d_out_len_rule);
    tcase_add_test(tf, conv1d_exact_small);
    tcase_add_test(tf, softmax_stable_and_exact);
    tcase_add_test(tf, maxpool_ties_and_remainder);
    tcase_add_test(tf, adaptive_bins_exact);
    suite_add_tcase(s, tf);

    TCase *tb = tcase_create("backward");
    tcase_set_timeout(tb, 120);
    tcase_add_loop_test(tb, conv1d_vs_reference, 0, N_CONV_CASES);
    tcase_add_loop_test(tb, conv1d_vs_reference_nobias, 0, N_CONV_CASES);
    tcase_add_loop_test(tb, linear_vs_reference, 0, N_LIN_CASES);
    tcase_add_test(tb, activation_vs_reference);
    tcase_add_loop_test(tb, pool_vs_reference, 0, N_POOL_CASES);
    suite_add_tcase(s, tb);

    TCase *td = tcase_create("determinism");
    tcase_set_timeout(td, 60);
    tcase_add_test(td, conv1d_determinism);
    tcase_add_test(td, linear_determinism);
    suite_add_tcase(s, td);

    return sp_run_suite(s);
}
