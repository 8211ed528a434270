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
#include "sp_layers_util.h"
#include "sp_test.h"

#define GC_TOL 1e-7

/* ------------------------------------------------------------------ helpers */
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
    /* the one large case (C = 16, L = 37) is tier B only: keeps the sanitizer run short */
    if ((size_t)c.B * c.C * c.L > 600) return;
    ConvCtx x = {c, conv1d_out_len(c.L, c.K, c.stride, c.pad), 0, 0, 0, 0, 0};
    size_t ni = (size_t)c.B * c.C * c.L, nw = (size_t)c.O * c.C * c.K, no = (size_t)c.B * c.O * x.Lo;
    x.inp = ref_drand(ni, 1, -1, 1);
    x.w = ref_drand(nw, 2, -1, 1);
    x.b = ref_drand(c.O, 3, -1, 1);
    x.G = ref_drand(no, 4, -1, 1);
    x.out = ref_dalloc(no);
    double *di = ref_dalloc(ni), *dw = ref_dalloc(nw), *db = ref_dalloc(c.O);
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
    float *inp = ref_frand(ni, 10, -1, 1), *w = ref_frand(nw, 11, -1, 1),
          *b = ref_frand(c.O, 12, -1, 1);
    float *dout = ref_frand(no, 13, -1, 1), *out = ref_falloc(no),
          *work = ref_falloc(conv1d_work_floats(&s));
    /* NaN-poisoned output: forward must overwrite every element */
    for (size_t i = 0; i < no; i++) out[i] = NAN;
    conv1d_forward(out, inp, w, with_bias ? b : NULL, &s, work);
    double *dinp = ref_dcopy(inp, ni), *dw = ref_dcopy(w, nw), *db = ref_dcopy(b, c.O),
           *ddout = ref_dcopy(dout, no);
    double *rout = ref_dalloc(no);
    ref_conv1d_forward(rout, dinp, dw, with_bias ? db : NULL, c.B, c.C, c.L, c.O, c.K, c.stride, c.pad);
    ref_expect_close("conv1d out", out, rout, no, 1e-5, 1e-6 * sp_max_abs_d(rout, no));

    double *rgi = ref_dalloc(ni), *rgw = ref_dalloc(nw), *rgb = ref_dalloc(c.O);
    ref_conv1d_backward(rgi, rgw, rgb, ddout, dinp, dw, c.B, c.C, c.L, c.O, c.K, c.stride, c.pad);
    float *gi0 = ref_frand(ni, 20, -1, 1), *gw0 = ref_frand(nw, 21, -1, 1),
          *gb0 = ref_frand(c.O, 22, -1, 1);
    float *gi = ref_falloc(ni), *gw = ref_falloc(nw), *gb = ref_falloc(c.O);
    memcpy(gi, gi0, ni * sizeof(float));
    memcpy(gw, gw0, nw * sizeof(float));
    memcpy(gb, gb0, c.O * sizeof(float));
    conv1d_backward(gi, gw, gb, dout, inp, w, &s, work);
    ref_expect_accum("conv1d dinp", gi, gi0, rgi, ni, 1, 1e-5, 1e-6);
    ref_expect_accum("conv1d dw", gw, gw0, rgw, nw, 1, 1e-5, 1e-6);
    ref_expect_accum("conv1d db", gb, gb0, rgb, c.O, 1, 1e-5, 1e-6);
    conv1d_backward(gi, gw, gb, dout, inp, w, &s, work);
    ref_expect_accum("conv1d dinp x2", gi, gi0, rgi, ni, 2, 1e-5, 1e-6);
    ref_expect_accum("conv1d dw x2", gw, gw0, rgw, nw, 2, 1e-5, 1e-6);
    ref_expect_accum("conv1d db x2", gb, gb0, rgb, c.O, 2, 1e-5, 1e-6);
    /* NULL dinp / dbias (first layer): dw still right */
    memcpy(gw, gw0, nw * sizeof(float));
    conv1d_backward(NULL, gw, NULL, dout, inp, w, &s, work);
    ref_expect_accum("conv1d dw (dinp NULL)", gw, gw0, rgw, nw, 1, 1e-5, 1e-6);

    free(inp); free(w); free(b); free(dout); free(out); free(work); free(dinp); free(dw); free(db);
    free(ddout); free(rout); free(rgi); free(rgw); free(rgb); free(gi0); free(gw0); free(gb0);
    free(gi); free(gw); free(gb);
}

START_TEST(conv1d_vs_reference) {
    conv_tier_b(conv_cases[_i], 1);
    conv_tier_b(conv_cases[_i], 0);  /* without bias */
}
END_TEST

START_TEST(conv1d_exact_small) {
    /* Hand-computed: C=1, L=5, K=3, stride 2, pad 1, exact binary values.
     * x = [1 2 3 4 5], w = [0.5 1 -1], b = 0.25: padded x = [0 1 2 3 4 5 0]
     * t=0: 0*0.5 + 1*1 + 2*(-1) + .25 = -0.75; t=1: 1 + 3 - 4 + .25 = 0.25;
     * t=2: 2 + 5 - 0 + .25 = 7.25 */
    sp_blas_init(0);
    float x[5] = {1, 2, 3, 4, 5}, w[3] = {0.5f, 1, -1}, b[1] = {0.25f}, out[3];
    SpConv1d s = conv1d_shape(1, 1, 5, 1, 3, 2, 1);
    float *work = ref_falloc(conv1d_work_floats(&s));
    conv1d_forward(out, x, w, b, &s, work);
    ck_assert(out[0] == -0.75f && out[1] == 0.25f && out[2] == 7.25f);
    /* same through the im2col path: two input channels, the second all zero */
    float x2[10] = {1, 2, 3, 4, 5, 0, 0, 0, 0, 0}, w2[6] = {0.5f, 1, -1, 3, 3, 3};
    SpConv1d s2 = conv1d_shape(1, 2, 5, 1, 3, 2, 1);
    float *work2 = ref_falloc(conv1d_work_floats(&s2));
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
        float *inp = ref_frand(ni, 30, -1, 1), *w = ref_frand(nw, 31, -1, 1),
              *b = ref_frand(c.O, 32, -1, 1);
        float *dout = ref_frand(no, 33, -1, 1), *work = ref_falloc(conv1d_work_floats(&s));
        float *out[3], *gi[3], *gw[3], *gb[3];
        for (int r = 0; r < 3; r++) {  /* runs: 1 thread, 1 thread, 2 threads */
            use_threads(r < 2 ? 1 : 2);
            out[r] = ref_falloc(no);
            gi[r] = ref_falloc(ni);
            gw[r] = ref_falloc(nw);
            gb[r] = ref_falloc(c.O);
            conv1d_forward(out[r], inp, w, b, &s, work);
            conv1d_backward(gi[r], gw[r], gb[r], dout, inp, w, &s, work);
        }
        expect_bits("conv1d out 1t", out[0], out[1], no * sizeof(float));
        expect_bits("conv1d dinp 1t", gi[0], gi[1], ni * sizeof(float));
        expect_bits("conv1d dw 1t", gw[0], gw[1], nw * sizeof(float));
        expect_bits("conv1d db 1t", gb[0], gb[1], c.O * sizeof(float));
        expect_bits("conv1d out 1t vs 2t", out[0], out[2], no * sizeof(float));
        expect_bits("conv1d dinp 1t vs 2t", gi[0], gi[2], ni * sizeof(float));
        ref_expect_close_ff("conv1d dw 1t vs 2t", gw[2], gw[0], nw, 1e-5, 1e-6 * sp_max_abs_f(gw[0], nw));
        ref_expect_close_ff("conv1d db 1t vs 2t", gb[2], gb[0], c.O, 1e-5, 1e-6 * sp_max_abs_f(gb[0], c.O));
        for (int r = 0; r < 3; r++) { free(out[r]); free(gi[r]); free(gw[r]); free(gb[r]); }
        free(inp); free(w); free(b); free(dout); free(work);
    }
}
END_TEST

/* ------------------------------------------------------------------ linear */
typedef struct { int N, in, out; } LinCase;
static const LinCase lin_cases[] = {{5, 7, 3}, {1, 4, 1}, {9, 6, 8}, {13, 5, 2}, {4, 3, 16}, {33, 17, 5}, {70, 9, 35}};
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
    LinCtx x = {c,
                ref_drand(ni, 1, -1, 1),
                ref_drand(nw, 2, -1, 1),
                ref_drand(c.out, 3, -1, 1),
                ref_drand(no, 4, -1, 1),
                ref_dalloc(no)};
    double *di = ref_dalloc(ni), *dw = ref_dalloc(nw), *db = ref_dalloc(c.out);
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
    float *inp = ref_frand(ni, 10, -1, 1), *w = ref_frand(nw, 11, -1, 1),
          *b = ref_frand(c.out, 12, -1, 1);
    float *dout = ref_frand(no, 13, -1, 1), *out = ref_falloc(no),
          *work = ref_falloc(linear_work_floats(c.N, c.in, c.out));
    double *dinp = ref_dcopy(inp, ni), *dw = ref_dcopy(w, nw), *db = ref_dcopy(b, c.out),
           *ddout = ref_dcopy(dout, no);
    double *rout = ref_dalloc(no);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        for (size_t i = 0; i < no; i++) out[i] = NAN;
        linear_forward(out, inp, w, with_bias ? b : NULL, c.N, c.in, c.out);
        ref_linear_forward(rout, dinp, dw, with_bias ? db : NULL, c.N, c.in, c.out);
        ref_expect_close("linear out", out, rout, no, 1e-5, 1e-6 * sp_max_abs_d(rout, no));
    }
    double *rgi = ref_dalloc(ni), *rgw = ref_dalloc(nw), *rgb = ref_dalloc(c.out);
    ref_linear_backward(rgi, rgw, rgb, ddout, dinp, dw, c.N, c.in, c.out);
    float *gi0 = ref_frand(ni, 20, -1, 1), *gw0 = ref_frand(nw, 21, -1, 1),
          *gb0 = ref_frand(c.out, 22, -1, 1);
    float *gi = ref_falloc(ni), *gw = ref_falloc(nw), *gb = ref_falloc(c.out);
    memcpy(gi, gi0, ni * sizeof(float));
    memcpy(gw, gw0, nw * sizeof(float));
    memcpy(gb, gb0, c.out * sizeof(float));
    for (int rep = 1; rep <= 2; rep++) {
        linear_backward(gi, gw, gb, dout, inp, w, c.N, c.in, c.out, work);
        ref_expect_accum("linear dinp", gi, gi0, rgi, ni, rep, 1e-5, 1e-6);
        ref_expect_accum("linear dw", gw, gw0, rgw, nw, rep, 1e-5, 1e-6);
        ref_expect_accum("linear db", gb, gb0, rgb, c.out, rep, 1e-5, 1e-6);
    }
    memcpy(gw, gw0, nw * sizeof(float));
    linear_backward(NULL, gw, NULL, dout, inp, w, c.N, c.in, c.out, work);
    ref_expect_accum("linear dw (dinp NULL)", gw, gw0, rgw, nw, 1, 1e-5, 1e-6);
    free(inp); free(w); free(b); free(dout); free(out); free(work); free(dinp); free(dw); free(db);
    free(ddout); free(rout); free(rgi); free(rgw); free(rgb); free(gi0); free(gw0); free(gb0);
    free(gi); free(gw); free(gb);
}
END_TEST

START_TEST(linear_determinism) {
    /* out_f >= 16: fixed output chunks own dw (bit-identical for any thread
     * count); fewer outputs: per-thread partials (within tolerance) */
    const LinCase cs[3] = {{150, 20, 40}, {37, 19, 11}, {41, 13, 1}};
    for (int k = 0; k < 3; k++) {
        LinCase c = cs[k];
        use_threads(2);
        size_t ni = (size_t)c.N * c.in, nw = (size_t)c.out * c.in, no = (size_t)c.N * c.out;
        float *inp = ref_frand(ni, 30, -1, 1), *w = ref_frand(nw, 31, -1, 1),
              *b = ref_frand(c.out, 32, -1, 1);
        float *dout = ref_frand(no, 33, -1, 1),
              *work = ref_falloc(linear_work_floats(c.N, c.in, c.out));
        float *out[3], *gi[3], *gw[3], *gb[3];
        for (int r = 0; r < 3; r++) {
            use_threads(r < 2 ? 1 : 2);
            out[r] = ref_falloc(no);
            gi[r] = ref_falloc(ni);
            gw[r] = ref_falloc(nw);
            gb[r] = ref_falloc(c.out);
            linear_forward(out[r], inp, w, b, c.N, c.in, c.out);
            linear_backward(gi[r], gw[r], gb[r], dout, inp, w, c.N, c.in, c.out, work);
        }
        expect_bits("linear out 1t", out[0], out[1], no * sizeof(float));
        expect_bits("linear dinp 1t", gi[0], gi[1], ni * sizeof(float));
        expect_bits("linear dw 1t", gw[0], gw[1], nw * sizeof(float));
        expect_bits("linear db 1t", gb[0], gb[1], c.out * sizeof(float));
        expect_bits("linear out 1t vs 2t", out[0], out[2], no * sizeof(float));
        expect_bits("linear dinp 1t vs 2t", gi[0], gi[2], ni * sizeof(float));
        if (c.out >= 16) {
            expect_bits("linear dw 1t vs 2t", gw[0], gw[2], nw * sizeof(float));
            expect_bits("linear db 1t vs 2t", gb[0], gb[2], c.out * sizeof(float));
        } else {
            ref_expect_close_ff("linear dw 1t vs 2t", gw[2], gw[0], nw, 1e-5, 1e-6 * sp_max_abs_f(gw[0], nw));
            ref_expect_close_ff("linear db 1t vs 2t", gb[2], gb[0], c.out, 1e-5, 1e-6 * sp_max_abs_f(gb[0], c.out));
        }
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
    ActCtx x = {_i, N, D, 0.01, ref_drand(n, 1, -2, 2), ref_drand(n, 2, -1, 1), ref_dalloc(n)};
    double *g = ref_dalloc(n);
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
        float *x = ref_frand(n, 40 + sh, -3, 3), *g = ref_frand(n, 50 + sh, -1, 1),
              *y = ref_falloc(n);
        x[0] = 0.0f;  /* ReLU'(0) = 0 */
        double *dx = ref_dcopy(x, n), *dg = ref_dcopy(g, n), *ry = ref_dalloc(n),
               *rg = ref_dalloc(n);
        float *gi0 = ref_frand(n, 60, -1, 1), *gi = ref_falloc(n);
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
            ref_expect_close("activation out", y, ry, n, 1e-5, 1e-6 * sp_max_abs_d(ry, n));
            ref_expect_accum("activation dinp x2", gi, gi0, rg, n, 2, 1e-5, 1e-6);
        }
        /* in place */
        float *z = ref_falloc(n);
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

START_TEST(vector_exp_accuracy) {
    /* the vectorised exp behind every softmax: within ~half an ulp over
     * the float range, exact special values, in place */
    enum { N = 4096 };
    static float x[N], y[N];
    double maxrel = 0;
    for (float lo = -87.0f; lo < 88.3f; lo += 17.3f) {
        for (int i = 0; i < N; i++) x[i] = fminf(lo + 17.3f * (float)i / N, 88.3f);
        double s = sp_exp_shift_f(y, x, N, 0.0f), sref = 0;
        for (int i = 0; i < N; i++) {
            double e = exp((double)x[i]);
            sref += y[i];
            maxrel = fmax(maxrel, fabs(y[i] - e) / e);
        }
        ck_assert(s == s && fabs(s - sref) <= 1e-12 * sref);
    }
    ck_assert_msg(maxrel < 6.5e-8, "vector exp max rel err %.3g (half an ulp is 6e-8)", maxrel);
    float sp[7] = {0.0f, -100.0f, -INFINITY, INFINITY, NAN, 89.0f, 1.0f};
    sp_exp_shift_f(sp, sp, 7, 0.0f);  /* in place */
    ck_assert(sp[0] == 1.0f && sp[1] == 0.0f && sp[2] == 0.0f && isinf(sp[3]) && isnan(sp[4]) &&
              isinf(sp[5]) && fabs(sp[6] - 2.718281828) < 3e-7);
    /* shift: exp(x - 3) */
    float a[3] = {3.0f, 4.0f, 2.0f}, b3[3];
    sp_exp_shift_f(b3, a, 3, 3.0f);
    ck_assert(b3[0] == 1.0f && fabs(b3[1] - 2.718281828) < 3e-7 && fabs(b3[2] - 0.3678794412) < 1e-7);
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
    x.inp = ref_drand(ni, 1, -1, 1);
    x.G = ref_drand(no, 2, -1, 1);
    x.out = ref_dalloc(no);
    double *g = ref_dalloc(ni);
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
        float *inp = ref_frand(ni, 5, -1, 1), *dout = ref_frand(no, 6, -1, 1),
              *out = ref_falloc(no);
        float *g0 = ref_frand(ni, 7, -1, 1), *g = ref_falloc(ni);
        memcpy(g, g0, ni * sizeof(float));
        double *din = ref_dcopy(inp, ni), *ddout = ref_dcopy(dout, no), *rout = ref_dalloc(no),
               *rg = ref_dalloc(ni);
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
        ref_expect_close("pool out", out, rout, no, 1e-6, 1e-7);
        ref_expect_accum("pool dinp x2", g, g0, rg, ni, 2, 1e-5, 1e-6);
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
        float *ones = ref_falloc((size_t)Lin), *cover = ref_falloc((size_t)Lin),
              *o = ref_falloc(236), *g1 = ref_falloc(236);
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

/* --------------------------------------------------------------- batchnorm */
typedef struct { int N, C, L, S; } BnCase;
static const BnCase bn_cases[] = {
    {4, 3, 5, 1}, {4, 3, 5, 2}, {8, 3, 5, 4}, {6, 20, 1, 2}, {8, 5, 1, 4},
    {4, 2, 7, 4}, {12, 17, 1, 1}, {6, 2, 3, 3}, {2, 1, 9, 2}, {16, 33, 1, 4},
};
#define N_BN_CASES ((int)(sizeof bn_cases / sizeof bn_cases[0]))
#define BN_EPS 1e-5

typedef struct {
    BnCase c;
    int eval;
    double *inp, *gamma, *beta, *rm, *rv, *mean, *var;
} BnCtx;

static void bn_fwd(void *p, double *out) {
    BnCtx *x = p;
    if (x->eval)
        ref_batchnorm_forward_eval(out, x->inp, x->gamma, x->beta, x->rm, x->rv, x->c.N, x->c.C,
                                   x->c.L, BN_EPS);
    else
        ref_batchnorm_forward_train(out, x->mean, x->var, x->inp, x->gamma, x->beta, x->c.N,
                                    x->c.C, x->c.L, x->c.S, BN_EPS);
}

/* Tier A uses groups of m >= 8 values: for m = 2 the normalised output is
 * +-1 whatever the input (its gradient is eps-level cancellation) and for very
 * small m the third derivative makes the h^2 truncation error of central
 * differences exceed 1e-7. The small groups are covered by tier B below
 * (same reference code path). */
static const BnCase bn_gc_cases[] = {
    {8, 3, 5, 1}, {8, 3, 5, 2}, {16, 3, 5, 4}, {16, 20, 1, 2}, {32, 5, 1, 4},
    {12, 17, 1, 1}, {8, 2, 7, 4}, {2, 1, 9, 2}, {24, 3, 3, 3},
};
#define N_BN_GC_CASES ((int)(sizeof bn_gc_cases / sizeof bn_gc_cases[0]))

START_TEST(batchnorm_gradcheck) {
    BnCase c = bn_gc_cases[_i / 2];
    int eval = _i % 2;
    size_t n = (size_t)c.N * c.C * c.L;
    BnCtx x = {c,
               eval,
               ref_drand(n, 1, -2, 2),
               ref_drand(c.C, 2, 0.5, 1.5),
               ref_drand(c.C, 3, -1, 1),
               ref_drand(c.C, 4, -0.5, 0.5),
               ref_drand(c.C, 5, 0.5, 2),
               ref_dalloc((size_t)c.S * c.C),
               ref_dalloc((size_t)c.S * c.C)};
    double *G = ref_drand(n, 6, -1, 1), *gi = ref_dalloc(n), *gg = ref_dalloc(c.C),
           *gb = ref_dalloc(c.C);
    if (eval)
        ref_batchnorm_backward_eval(gi, gg, gb, G, x.inp, x.gamma, x.rm, x.rv, c.N, c.C, c.L, BN_EPS);
    else
        ref_batchnorm_backward_train(gi, gg, gb, G, x.inp, x.gamma, c.N, c.C, c.L, c.S, BN_EPS);
    ref_expect_gradcheck_fwd("batchnorm dinp", bn_fwd, &x, n, G, x.inp, n, gi, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("batchnorm dgamma", bn_fwd, &x, n, G, x.gamma, c.C, gg, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("batchnorm dbeta", bn_fwd, &x, n, G, x.beta, c.C, gb, NULL, GC_TOL);
    free(x.inp); free(x.gamma); free(x.beta); free(x.rm); free(x.rv); free(x.mean); free(x.var);
    free(G); free(gi); free(gg); free(gb);
}
END_TEST

/* Tier B, train mode: out, saved mean/rstd, running stats, backward x2. */
START_TEST(batchnorm_train_vs_reference) {
    sp_blas_init(0);
    BnCase c = bn_cases[_i];
    SpBatchNorm s = {c.N, c.C, c.L, c.S, 1e-5f, 0.1f};
    size_t n = (size_t)c.N * c.C * c.L, sc = (size_t)c.S * c.C;
    float *inp = ref_frand(n, 10, -2, 3), *gamma = ref_frand(c.C, 11, -1.5, 1.5),
          *beta = ref_frand(c.C, 12, -1, 1);
    float *rm = ref_frand(c.C, 13, -0.5, 0.5), *rv = ref_frand(c.C, 14, 0.5, 2),
          *out = ref_falloc(n);
    float *mean = ref_falloc(sc), *rstd = ref_falloc(sc), *dout = ref_frand(n, 15, -1, 1);
    float *work = ref_falloc(batchnorm_work_floats(&s));
    double *di = ref_dcopy(inp, n), *dg = ref_dcopy(gamma, c.C), *dbt = ref_dcopy(beta, c.C);
    double *drm = ref_dcopy(rm, c.C), *drv = ref_dcopy(rv, c.C), *ddout = ref_dcopy(dout, n);
    double *rout = ref_dalloc(n), *rmean = ref_dalloc(sc), *rvar = ref_dalloc(sc);
    for (size_t i = 0; i < n; i++) out[i] = NAN;
    batchnorm_forward_train(out, mean, rstd, inp, gamma, beta, rm, rv, &s);
    ref_batchnorm_forward_train(rout, rmean, rvar, di, dg, dbt, c.N, c.C, c.L, c.S, (double)s.eps);
    ref_batchnorm_running_update(drm, drv, rmean, rvar, c.N, c.C, c.L, c.S, (double)s.momentum);
    double *rrstd = ref_dalloc(sc);
    for (size_t i = 0; i < sc; i++) rrstd[i] = 1 / sqrt(rvar[i] + (double)s.eps);
    ref_expect_close("bn out", out, rout, n, 1e-5, 1e-6 * sp_max_abs_d(rout, n));
    ref_expect_close("bn mean", mean, rmean, sc, 1e-6, 1e-7);
    ref_expect_close("bn rstd", rstd, rrstd, sc, 1e-6, 0);
    ref_expect_close("bn running_mean", rm, drm, c.C, 1e-6, 1e-7);
    ref_expect_close("bn running_var", rv, drv, c.C, 1e-6, 1e-7);
    /* NULL running stats: nothing touched, same output */
    float *out2 = ref_falloc(n);
    batchnorm_forward_train(out2, mean, rstd, inp, gamma, beta, NULL, NULL, &s);
    expect_bits("bn out without running stats", out, out2, n * sizeof(float));

    double *rgi = ref_dalloc(n), *rgg = ref_dalloc(c.C), *rgb = ref_dalloc(c.C);
    ref_batchnorm_backward_train(rgi, rgg, rgb, ddout, di, dg, c.N, c.C, c.L, c.S, (double)s.eps);
    float *gi0 = ref_frand(n, 20, -1, 1), *gg0 = ref_frand(c.C, 21, -1, 1),
          *gb0 = ref_frand(c.C, 22, -1, 1);
    float *gi = ref_falloc(n), *gg = ref_falloc(c.C), *gb = ref_falloc(c.C);
    memcpy(gi, gi0, n * sizeof(float));
    memcpy(gg, gg0, c.C * sizeof(float));
    memcpy(gb, gb0, c.C * sizeof(float));
    for (int rep = 1; rep <= 2; rep++) {
        batchnorm_backward(gi, gg, gb, dout, inp, mean, rstd, gamma, &s, work);
        ref_expect_accum("bn dinp", gi, gi0, rgi, n, rep, 1e-4, 1e-5);
        ref_expect_accum("bn dgamma", gg, gg0, rgg, c.C, rep, 1e-5, 1e-6);
        ref_expect_accum("bn dbeta", gb, gb0, rgb, c.C, rep, 1e-5, 1e-6);
    }
    free(inp); free(gamma); free(beta); free(rm); free(rv); free(out); free(mean); free(rstd);
    free(dout); free(work); free(di); free(dg); free(dbt); free(drm); free(drv); free(ddout);
    free(rout); free(rmean); free(rvar); free(rrstd); free(out2); free(rgi); free(rgg); free(rgb);
    free(gi0); free(gg0); free(gb0); free(gi); free(gg); free(gb);
}
END_TEST

START_TEST(batchnorm_eval_vs_reference) {
    sp_blas_init(0);
    BnCase c = bn_cases[_i];
    SpBatchNorm s = {c.N, c.C, c.L, c.S, 1e-5f, 0.1f};
    size_t n = (size_t)c.N * c.C * c.L;
    float *inp = ref_frand(n, 30, -2, 3), *gamma = ref_frand(c.C, 31, -1.5, 1.5),
          *beta = ref_frand(c.C, 32, -1, 1);
    float *rm = ref_frand(c.C, 33, -0.5, 0.5), *rv = ref_frand(c.C, 34, 1e-6, 2),
          *out = ref_falloc(n);
    float *dout = ref_frand(n, 35, -1, 1), *work = ref_falloc(batchnorm_work_floats(&s));
    double *di = ref_dcopy(inp, n), *dg = ref_dcopy(gamma, c.C), *dbt = ref_dcopy(beta, c.C);
    double *drm = ref_dcopy(rm, c.C), *drv = ref_dcopy(rv, c.C), *ddout = ref_dcopy(dout, n),
           *rout = ref_dalloc(n);
    batchnorm_forward_eval(out, inp, gamma, beta, rm, rv, &s);
    ref_batchnorm_forward_eval(rout, di, dg, dbt, drm, drv, c.N, c.C, c.L, (double)s.eps);
    ref_expect_close("bn eval out", out, rout, n, 1e-5, 1e-6 * sp_max_abs_d(rout, n));
    double *rgi = ref_dalloc(n), *rgg = ref_dalloc(c.C), *rgb = ref_dalloc(c.C);
    ref_batchnorm_backward_eval(rgi, rgg, rgb, ddout, di, dg, drm, drv, c.N, c.C, c.L, (double)s.eps);
    float *gi0 = ref_frand(n, 40, -1, 1), *gg0 = ref_frand(c.C, 41, -1, 1),
          *gb0 = ref_frand(c.C, 42, -1, 1);
    float *gi = ref_falloc(n), *gg = ref_falloc(c.C), *gb = ref_falloc(c.C);
    memcpy(gi, gi0, n * sizeof(float));
    memcpy(gg, gg0, c.C * sizeof(float));
    memcpy(gb, gb0, c.C * sizeof(float));
    for (int rep = 1; rep <= 2; rep++) {
        batchnorm_backward_eval(gi, gg, gb, dout, inp, gamma, rm, rv, &s, work);
        ref_expect_accum("bn eval dinp", gi, gi0, rgi, n, rep, 1e-5, 1e-6);
        ref_expect_accum("bn eval dgamma", gg, gg0, rgg, c.C, rep, 1e-5, 1e-6);
        ref_expect_accum("bn eval dbeta", gb, gb0, rgb, c.C, rep, 1e-5, 1e-6);
    }
    free(inp); free(gamma); free(beta); free(rm); free(rv); free(out); free(dout); free(work);
    free(di); free(dg); free(dbt); free(drm); free(drv); free(ddout); free(rout); free(rgi);
    free(rgg); free(rgb); free(gi0); free(gg0); free(gb0); free(gi); free(gg); free(gb);
}
END_TEST

START_TEST(batchnorm_interleaved_splits_exact) {
    /* N = 4, C = 1, L = 2, S = 2: samples 0, 2 hold {0, 1}, samples 1, 3 hold
     * {8, 9}. Interleaved splits: split 0 = {0, 2} -> mean 0.5, split 1 =
     * {1, 3} -> mean 8.5, both with biased variance 0.25. A contiguous split
     * ({0, 1}, {2, 3}) would give mean 4.75 twice. */
    float x[8] = {0, 1, 8, 9, 0, 1, 8, 9}, y[8], mean[2], rstd[2];
    float g[1] = {1}, b[1] = {0}, rm[1] = {0}, rv[1] = {1};
    SpBatchNorm s = {4, 1, 2, 2, 0.0f, 0.5f};
    batchnorm_forward_train(y, mean, rstd, x, g, b, rm, rv, &s);
    ck_assert_msg(mean[0] == 0.5f && mean[1] == 8.5f, "split means %g %g (contiguous split?)",
                  mean[0], mean[1]);
    ck_assert(rstd[0] == 2.0f && rstd[1] == 2.0f);
    const float want[8] = {-1, 1, -1, 1, -1, 1, -1, 1};
    ck_assert(memcmp(y, want, sizeof want) == 0);
    /* running: rm = mean_s(0.5*0 + 0.5*mu_s) = 2.25; m = 4, unbiased var 1/3:
     * rv = 0.5*1 + 0.5/3 = 2/3 */
    ck_assert(rm[0] == 2.25f);
    ck_assert_msg(fabs(rv[0] - 2.0 / 3.0) < 1e-7, "running var %.9g", rv[0]);
    /* same with L = 1 layout (C = 2 channels, the second constant 3): sample n
     * row = {x, 3} */
    float x1[8] = {0, 3, 8, 3, 2, 3, 10, 3}, y1[8], m1[4], r1[4], rm1[2] = {0, 0}, rv1[2] = {1, 1};
    SpBatchNorm s1 = {4, 2, 1, 2, 0.0f, 0.5f};
    batchnorm_forward_train(y1, m1, r1, x1, NULL, NULL, rm1, rv1, &s1);
    /* split 0 = samples {0, 2}: channel 0 {0, 2} mean 1; split 1 = {1, 3}: {8, 10} mean 9 */
    ck_assert_msg(m1[0] == 1.0f && m1[2] == 9.0f && m1[1] == 3.0f && m1[3] == 3.0f,
                  "L=1 split means %g %g %g %g", m1[0], m1[1], m1[2], m1[3]);
    ck_assert(r1[0] == 1.0f && r1[2] == 1.0f);
    ck_assert(y1[0] == -1 && y1[2] == -1 && y1[4] == 1 && y1[6] == 1);
    ck_assert(rm1[0] == 2.5f && rm1[1] == 1.5f);
}
END_TEST

START_TEST(batchnorm_tiny_variance) {
    /* mean 100, std ~1e-3 (published weights have variances down to 1e-6):
     * two-pass double statistics keep full float accuracy. */
    sp_blas_init(0);
    BnCase c = {8, 3, 50, 2};
    SpBatchNorm s = {c.N, c.C, c.L, c.S, 1e-5f, 0.1f};
    size_t n = (size_t)c.N * c.C * c.L, sc = (size_t)c.S * c.C;
    float *inp = ref_frand(n, 50, -1e-3, 1e-3), *out = ref_falloc(n), *mean = ref_falloc(sc),
          *rstd = ref_falloc(sc);
    for (size_t i = 0; i < n; i++) inp[i] += 100.0f;
    double *di = ref_dcopy(inp, n), *rout = ref_dalloc(n), *rmean = ref_dalloc(sc),
           *rvar = ref_dalloc(sc), *rrstd = ref_dalloc(sc);
    batchnorm_forward_train(out, mean, rstd, inp, NULL, NULL, NULL, NULL, &s);
    ref_batchnorm_forward_train(rout, rmean, rvar, di, NULL, NULL, c.N, c.C, c.L, c.S, (double)s.eps);
    for (size_t i = 0; i < sc; i++) rrstd[i] = 1 / sqrt(rvar[i] + (double)s.eps);
    ref_expect_close("bn rstd (tiny var)", rstd, rrstd, sc, 1e-5, 0);
    ref_expect_close("bn out (tiny var)", out, rout, n, 1e-4, 1e-4 * sp_max_abs_d(rout, n));
    /* eval with a running variance of 1e-6 and a large running mean */
    float rm[3] = {100, 100, 100}, rv[3] = {1e-6f, 2e-6f, 1e-5f};
    double drm[3] = {100, 100, 100}, drv[3];
    ref_to_double(drv, rv, 3);
    s.eps = 1e-5f;
    batchnorm_forward_eval(out, inp, NULL, NULL, rm, rv, &s);
    ref_batchnorm_forward_eval(rout, di, NULL, NULL, drm, drv, c.N, c.C, c.L, (double)s.eps);
    ref_expect_close("bn eval out (tiny var)", out, rout, n, 1e-5, 1e-6 * sp_max_abs_d(rout, n));
    free(inp); free(out); free(mean); free(rstd); free(di); free(rout); free(rmean); free(rvar);
    free(rrstd);
}
END_TEST

START_TEST(batchnorm_determinism) {
    const BnCase cs[2] = {{12, 5, 37, 4}, {24, 40, 1, 2}};
    for (int k = 0; k < 2; k++) {
        BnCase c = cs[k];
        SpBatchNorm s = {c.N, c.C, c.L, c.S, 1e-5f, 0.1f};
        size_t n = (size_t)c.N * c.C * c.L, sc = (size_t)c.S * c.C;
        float *inp = ref_frand(n, 60, -2, 2), *gamma = ref_frand(c.C, 61, -1, 1),
              *beta = ref_frand(c.C, 62, -1, 1);
        float *dout = ref_frand(n, 63, -1, 1), *work = ref_falloc(batchnorm_work_floats(&s));
        float *out[3], *gi[3], *gg[3], *gb[3], *rm[3], *rv[3], *mean = ref_falloc(sc),
                                                               *rstd = ref_falloc(sc);
        for (int r = 0; r < 3; r++) {
            use_threads(r < 2 ? 1 : 2);
            out[r] = ref_falloc(n);
            gi[r] = ref_falloc(n);
            gg[r] = ref_falloc(c.C);
            gb[r] = ref_falloc(c.C);
            rm[r] = ref_falloc(c.C);
            rv[r] = ref_falloc(c.C);
            batchnorm_forward_train(out[r], mean, rstd, inp, gamma, beta, rm[r], rv[r], &s);
            batchnorm_backward(gi[r], gg[r], gb[r], dout, inp, mean, rstd, gamma, &s, work);
        }
        for (int r = 1; r < 3; r++) {
            expect_bits("bn out", out[0], out[r], n * sizeof(float));
            expect_bits("bn dinp", gi[0], gi[r], n * sizeof(float));
            expect_bits("bn dgamma", gg[0], gg[r], c.C * sizeof(float));
            expect_bits("bn dbeta", gb[0], gb[r], c.C * sizeof(float));
            expect_bits("bn running mean", rm[0], rm[r], c.C * sizeof(float));
            expect_bits("bn running var", rv[0], rv[r], c.C * sizeof(float));
        }
        for (int r = 0; r < 3; r++) {
            free(out[r]); free(gi[r]); free(gg[r]); free(gb[r]); free(rm[r]); free(rv[r]);
        }
        free(inp); free(gamma); free(beta); free(dout); free(work); free(mean); free(rstd);
    }
}
END_TEST

/* --------------------------------------------------------------- layernorm */
typedef struct {
    int N, D;
    double *inp, *w, *b;
} LnCtx;
#define LN_EPS 1e-5

static void ln_fwd(void *p, double *out) {
    LnCtx *x = p;
    ref_layernorm_forward(out, x->inp, x->w, x->b, x->N, x->D, LN_EPS);
}

static const int ln_cases[][2] = {{3, 7}, {4, 16}, {2, 13}, {5, 130}, {1, 1}, {3, 2}};
#define N_LN_CASES ((int)(sizeof ln_cases / sizeof ln_cases[0]))
/* tier A: D = 2 is degenerate (xhat = +-1, gradient pure cancellation), see batchnorm */
#define N_LN_GC_CASES (N_LN_CASES - 1)

START_TEST(layernorm_gradcheck) {
    int N = ln_cases[_i][0], D = ln_cases[_i][1];
    size_t n = (size_t)N * D;
    LnCtx x = {N, D, ref_drand(n, 1, -2, 2), ref_drand(D, 2, 0.5, 1.5), ref_drand(D, 3, -1, 1)};
    double *G = ref_drand(n, 4, -1, 1), *gi = ref_dalloc(n), *gw = ref_dalloc(D),
           *gb = ref_dalloc(D);
    ref_layernorm_backward(gi, gw, gb, G, x.inp, x.w, N, D, LN_EPS);
    ref_expect_gradcheck_fwd("layernorm dinp", ln_fwd, &x, n, G, x.inp, n, gi, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("layernorm dw", ln_fwd, &x, n, G, x.w, D, gw, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("layernorm db", ln_fwd, &x, n, G, x.b, D, gb, NULL, GC_TOL);
    free(x.inp); free(x.w); free(x.b); free(G); free(gi); free(gw); free(gb);
}
END_TEST

START_TEST(layernorm_vs_reference) {
    sp_blas_init(0);
    for (int big = 0; big < 2; big++) {
        int N = ln_cases[_i][0] * (big ? 300 : 1), D = ln_cases[_i][1];
        size_t n = (size_t)N * D;
        float *inp = ref_frand(n, 10, -2, 3), *w = ref_frand(D, 11, -1.5, 1.5),
              *b = ref_frand(D, 12, -1, 1);
        float *out = ref_falloc(n), *mean = ref_falloc(N), *rstd = ref_falloc(N),
              *dout = ref_frand(n, 13, -1, 1);
        float *work = ref_falloc(layernorm_work_floats(N, D));
        double *di = ref_dcopy(inp, n), *dw = ref_dcopy(w, D), *db = ref_dcopy(b, D),
               *ddout = ref_dcopy(dout, n);
        double *rout = ref_dalloc(n);
        for (int affine = 0; affine < 2; affine++) {
            layernorm_forward(out, mean, rstd, inp, affine ? w : NULL, affine ? b : NULL, N, D, 1e-5f);
            ref_layernorm_forward(rout, di, affine ? dw : NULL, affine ? db : NULL, N, D, (double)1e-5f);
            ref_expect_close("ln out", out, rout, n, 1e-5, 1e-5 * sp_max_abs_d(rout, n));
        }
        double *rgi = ref_dalloc(n), *rgw = ref_dalloc(D), *rgb = ref_dalloc(D);
        ref_layernorm_backward(rgi, rgw, rgb, ddout, di, dw, N, D, (double)1e-5f);
        float *gi0 = ref_frand(n, 20, -1, 1), *gw0 = ref_frand(D, 21, -1, 1),
              *gb0 = ref_frand(D, 22, -1, 1);
        float *gi = ref_falloc(n), *gw = ref_falloc(D), *gb = ref_falloc(D);
        memcpy(gi, gi0, n * sizeof(float));
        memcpy(gw, gw0, D * sizeof(float));
        memcpy(gb, gb0, D * sizeof(float));
        for (int rep = 1; rep <= 2; rep++) {
            layernorm_backward(gi, gw, gb, dout, inp, mean, rstd, w, N, D, work);
            /* D = 1 and 2 are degenerate (xhat is 0 or +-1): dinp is pure cancellation */
            ref_expect_accum("ln dinp", gi, gi0, rgi, n, rep, 1e-4, D <= 2 ? 1e-4 : 1e-5);
            ref_expect_accum("ln dw", gw, gw0, rgw, D, rep, 1e-4, 1e-5);
            ref_expect_accum("ln db", gb, gb0, rgb, D, rep, 1e-5, 1e-6);
        }
        free(inp); free(w); free(b); free(out); free(mean); free(rstd); free(dout); free(work);
        free(di); free(dw); free(db); free(ddout); free(rout); free(rgi); free(rgw); free(rgb);
        free(gi0); free(gw0); free(gb0); free(gi); free(gw); free(gb);
    }
}
END_TEST

START_TEST(layernorm_determinism) {
    int N = 301, D = 130;
    size_t n = (size_t)N * D;
    float *inp = ref_frand(n, 70, -2, 2), *w = ref_frand(D, 71, -1, 1),
          *b = ref_frand(D, 72, -1, 1);
    float *dout = ref_frand(n, 73, -1, 1), *mean = ref_falloc(N), *rstd = ref_falloc(N);
    float *out[3], *gi[3], *gw[3], *gb[3];
    for (int r = 0; r < 3; r++) {
        use_threads(r < 2 ? 1 : 2);
        out[r] = ref_falloc(n);
        gi[r] = ref_falloc(n);
        gw[r] = ref_falloc(D);
        gb[r] = ref_falloc(D);
        layernorm_forward(out[r], mean, rstd, inp, w, b, N, D, 1e-5f);
        layernorm_backward(gi[r], gw[r], gb[r], dout, inp, mean, rstd, w, N, D, NULL);
    }
    for (int r = 1; r < 3; r++) {
        expect_bits("ln out", out[0], out[r], n * sizeof(float));
        expect_bits("ln dinp", gi[0], gi[r], n * sizeof(float));
        expect_bits("ln dw", gw[0], gw[r], D * sizeof(float));
        expect_bits("ln db", gb[0], gb[r], D * sizeof(float));
    }
    for (int r = 0; r < 3; r++) { free(out[r]); free(gi[r]); free(gw[r]); free(gb[r]); }
    free(inp); free(w); free(b); free(dout); free(mean); free(rstd);
}
END_TEST

/* --------------------------------------------------------------------- MHA */
typedef struct { int B, T, E, H; } MhaCase;
static const MhaCase mha_cases[] = {{2, 5, 4, 2}, {1, 3, 4, 1}, {2, 4, 6, 3}, {3, 7, 6, 2},
                                    {2, 1, 4, 2}, {2, 33, 16, 2}, {3, 128, 16, 2}};
#define N_MHA_CASES ((int)(sizeof mha_cases / sizeof mha_cases[0]))
#define N_MHA_GC_CASES 5  /* the last two are tier B only (size) */

typedef struct {
    MhaCase c;
    double *inp, *w_in, *b_in, *w_out, *b_out;
} MhaCtx;

static void mha_fwd(void *p, double *out) {
    MhaCtx *x = p;
    ref_mha_forward(out, x->inp, x->w_in, x->b_in, x->w_out, x->b_out, x->c.B, x->c.T, x->c.E, x->c.H);
}

START_TEST(mha_gradcheck) {
    MhaCase c = mha_cases[_i];
    size_t n = (size_t)c.B * c.T * c.E, E = (size_t)c.E;
    MhaCtx x = {c,
                ref_drand(n, 1, -1, 1),
                ref_drand(3 * E * E, 2, -0.8, 0.8),
                ref_drand(3 * E, 3, -0.5, 0.5),
                ref_drand(E * E, 4, -0.8, 0.8),
                ref_drand(E, 5, -0.5, 0.5)};
    double *G = ref_drand(n, 6, -1, 1), *gi = ref_dalloc(n), *gwi = ref_dalloc(3 * E * E),
           *gbi = ref_dalloc(3 * E);
    double *gwo = ref_dalloc(E * E), *gbo = ref_dalloc(E);
    ref_mha_backward(gi, gwi, gbi, gwo, gbo, G, x.inp, x.w_in, x.b_in, x.w_out, c.B, c.T, c.E, c.H);
    ref_expect_gradcheck_fwd("mha dinp", mha_fwd, &x, n, G, x.inp, n, gi, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("mha dw_in", mha_fwd, &x, n, G, x.w_in, 3 * E * E, gwi, NULL, GC_TOL);
    /* The key bias cannot change the output (it adds q.b_k to a whole
     * softmax row): its true gradient is 0 and both derivatives are rounding
     * noise, so it is checked for ~0 instead of a relative error. */
    unsigned char *skip = calloc(3 * E, 1);
    for (size_t j = E; j < 2 * E; j++) {
        skip[j] = 1;
        ck_assert_msg(fabs(gbi[j]) < 1e-12, "mha db_in[%zu] (key bias) = %g, expected 0", j, gbi[j]);
    }
    ref_expect_gradcheck_fwd("mha db_in", mha_fwd, &x, n, G, x.b_in, 3 * E, gbi, skip, GC_TOL);
    free(skip);
    ref_expect_gradcheck_fwd("mha dw_out", mha_fwd, &x, n, G, x.w_out, E * E, gwo, NULL, GC_TOL);
    ref_expect_gradcheck_fwd("mha db_out", mha_fwd, &x, n, G, x.b_out, E, gbo, NULL, GC_TOL);
    free(x.inp); free(x.w_in); free(x.b_in); free(x.w_out); free(x.b_out);
    free(G); free(gi); free(gwi); free(gbi); free(gwo); free(gbo);
}
END_TEST

START_TEST(mha_vs_reference) {
    sp_blas_init(0);
    MhaCase c = mha_cases[_i];
    SpMHA s = {c.B, c.T, c.E, c.H};
    size_t n = (size_t)c.B * c.T * c.E, E = (size_t)c.E;
    float *inp = ref_frand(n, 10, -1, 1), *w_in = ref_frand(3 * E * E, 11, -0.8, 0.8);
    float *b_in = ref_frand(3 * E, 12, -0.5, 0.5), *w_out = ref_frand(E * E, 13, -0.8, 0.8);
    float *b_out = ref_frand(E, 14, -0.5, 0.5), *dout = ref_frand(n, 15, -1, 1),
          *out = ref_falloc(n);
    float *cache = ref_falloc(mha_cache_floats(&s)), *work = ref_falloc(mha_work_floats(&s));
    double *di = ref_dcopy(inp, n), *dwi = ref_dcopy(w_in, 3 * E * E),
           *dbi = ref_dcopy(b_in, 3 * E);
    double *dwo = ref_dcopy(w_out, E * E), *dbo = ref_dcopy(b_out, E), *ddout = ref_dcopy(dout, n),
           *rout = ref_dalloc(n);
    for (size_t i = 0; i < n; i++) out[i] = NAN;
    mha_forward(out, cache, inp, w_in, b_in, w_out, b_out, &s, work);
    ref_mha_forward(rout, di, dwi, dbi, dwo, dbo, c.B, c.T, c.E, c.H);
    ref_expect_close("mha out", out, rout, n, 1e-5, 1e-6 * sp_max_abs_d(rout, n));
    double *rgi = ref_dalloc(n), *rgwi = ref_dalloc(3 * E * E), *rgbi = ref_dalloc(3 * E),
           *rgwo = ref_dalloc(E * E), *rgbo = ref_dalloc(E);
    ref_mha_backward(rgi, rgwi, rgbi, rgwo, rgbo, ddout, di, dwi, dbi, dwo, c.B, c.T, c.E, c.H);
    float *g0[5], *g[5];
    const size_t sz[5] = {n, 3 * E * E, 3 * E, E * E, E};
    const double *rg[5] = {rgi, rgwi, rgbi, rgwo, rgbo};
    const char *nm[5] = {"mha dinp", "mha dw_in", "mha db_in", "mha dw_out", "mha db_out"};
    for (int k = 0; k < 5; k++) {
        g0[k] = ref_frand(sz[k], 20 + k, -1, 1);
        g[k] = ref_falloc(sz[k]);
        memcpy(g[k], g0[k], sz[k] * sizeof(float));
    }
    for (int rep = 1; rep <= 2; rep++) {
        mha_backward(g[0], g[1], g[2], g[3], g[4], dout, inp, cache, w_in, w_out, &s, work);
        for (int k = 0; k < 5; k++)
            ref_expect_accum(nm[k], g[k], g0[k], rg[k], sz[k], rep, 1e-4, 1e-5);
    }
    /* NULL dinp */
    memcpy(g[1], g0[1], sz[1] * sizeof(float));
    mha_backward(NULL, g[1], NULL, NULL, NULL, dout, inp, cache, w_in, w_out, &s, work);
    ref_expect_accum("mha dw_in (others NULL)", g[1], g0[1], rg[1], sz[1], 1, 1e-4, 1e-5);
    for (int k = 0; k < 5; k++) { free(g0[k]); free(g[k]); }
    free(inp); free(w_in); free(b_in); free(w_out); free(b_out); free(dout); free(out); free(cache);
    free(work); free(di); free(dwi); free(dbi); free(dwo); free(dbo); free(ddout); free(rout);
    free(rgi); free(rgwi); free(rgbi); free(rgwo); free(rgbo);
}
END_TEST

START_TEST(mha_determinism) {
    MhaCase c = {5, 19, 16, 2};
    SpMHA s = {c.B, c.T, c.E, c.H};
    size_t n = (size_t)c.B * c.T * c.E, E = (size_t)c.E;
    use_threads(2);
    float *inp = ref_frand(n, 80, -1, 1), *w_in = ref_frand(3 * E * E, 81, -0.5, 0.5);
    float *b_in = ref_frand(3 * E, 82, -0.5, 0.5), *w_out = ref_frand(E * E, 83, -0.5, 0.5);
    float *b_out = ref_frand(E, 84, -0.5, 0.5), *dout = ref_frand(n, 85, -1, 1);
    float *cache = ref_falloc(mha_cache_floats(&s)), *work = ref_falloc(mha_work_floats(&s));
    float *out[3], *gi[3], *gw[3];
    for (int r = 0; r < 3; r++) {
        use_threads(r < 2 ? 1 : 2);
        out[r] = ref_falloc(n);
        gi[r] = ref_falloc(n);
        gw[r] = ref_falloc(3 * E * E);
        mha_forward(out[r], cache, inp, w_in, b_in, w_out, b_out, &s, work);
        mha_backward(gi[r], gw[r], NULL, NULL, NULL, dout, inp, cache, w_in, w_out, &s, work);
    }
    expect_bits("mha out 1t", out[0], out[1], n * sizeof(float));
    expect_bits("mha dinp 1t", gi[0], gi[1], n * sizeof(float));
    expect_bits("mha dw_in 1t", gw[0], gw[1], 3 * E * E * sizeof(float));
    expect_bits("mha out 1t vs 2t", out[0], out[2], n * sizeof(float));
    expect_bits("mha dinp 1t vs 2t", gi[0], gi[2], n * sizeof(float));
    ref_expect_close_ff("mha dw_in 1t vs 2t", gw[2], gw[0], 3 * E * E, 1e-5, 1e-6 * sp_max_abs_f(gw[0], 3 * E * E));
    for (int r = 0; r < 3; r++) { free(out[r]); free(gi[r]); free(gw[r]); }
    free(inp); free(w_in); free(b_in); free(w_out); free(b_out); free(dout); free(cache); free(work);
}
END_TEST

/* ------------------------------------------------------------------ l2norm */
typedef struct {
    int N, D;
    double eps, *inp;
} L2Ctx;

static void l2_fwd(void *p, double *out) {
    L2Ctx *x = p;
    ref_l2norm_forward(out, x->inp, x->N, x->D, x->eps);
}

START_TEST(l2norm_gradcheck) {
    int N = 4, D = 6;
    size_t n = (size_t)N * D;
    L2Ctx x = {N, D, 1e-12, ref_drand(n, 1, -1, 1)};
    /* row 3 is tiny: below eps = 0.05 the denominator is the constant eps */
    for (int d = 0; d < D; d++) x.inp[3 * D + d] *= 1e-2;
    x.eps = 0.05;
    double *G = ref_drand(n, 2, -1, 1), *g = ref_dalloc(n);
    ref_l2norm_backward(g, G, x.inp, N, D, x.eps);
    ref_expect_gradcheck_fwd("l2norm dinp", l2_fwd, &x, n, G, x.inp, n, g, NULL, GC_TOL);
    free(x.inp); free(G); free(g);
}
END_TEST

START_TEST(l2norm_vs_reference) {
    sp_blas_init(0);
    for (int big = 0; big < 2; big++) {
        int N = big ? 600 : 5, D = big ? 128 : 7;
        size_t n = (size_t)N * D;
        float *x = ref_frand(n, 90, -1, 1), *y = ref_falloc(n), *norms = ref_falloc(N),
              *g = ref_frand(n, 91, -1, 1);
        for (int d = 0; d < D; d++) x[D + d] *= 1e-3f;  /* row 1 below eps */
        float eps = 0.01f;
        float *gi0 = ref_frand(n, 92, -1, 1), *gi = ref_falloc(n);
        memcpy(gi, gi0, n * sizeof(float));
        double *dx = ref_dcopy(x, n), *dg = ref_dcopy(g, n), *ry = ref_dalloc(n),
               *rg = ref_dalloc(n);
        l2norm_forward(y, norms, x, N, D, eps);
        ref_l2norm_forward(ry, dx, N, D, (double)eps);
        ref_expect_close("l2norm out", y, ry, n, 1e-5, 1e-7);
        double nr0 = sqrt(ref_dot(dx, dx, D));
        ck_assert_msg(fabs(norms[0] - nr0) <= 1e-6 * nr0, "norm %g vs %g", norms[0], nr0);
        for (int rep = 1; rep <= 2; rep++) {
            l2norm_backward(gi, g, x, norms, N, D, eps);
            if (rep == 1) ref_l2norm_backward(rg, dg, dx, N, D, (double)eps);
            ref_expect_accum("l2norm dinp", gi, gi0, rg, n, rep, 1e-5, 1e-6);
        }
        free(x); free(y); free(norms); free(g); free(gi0); free(gi); free(dx); free(dg); free(ry);
        free(rg);
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
    tcase_add_loop_test(tg, batchnorm_gradcheck, 0, 2 * N_BN_GC_CASES);
    tcase_add_loop_test(tg, layernorm_gradcheck, 0, N_LN_GC_CASES);
    tcase_add_loop_test(tg, mha_gradcheck, 0, N_MHA_GC_CASES);
    tcase_add_test(tg, l2norm_gradcheck);
    suite_add_tcase(s, tg);

    TCase *tf = tcase_create("forward");
    tcase_set_timeout(tf, 60);
    tcase_add_test(tf, conv1d_out_len_rule);
    tcase_add_test(tf, conv1d_exact_small);
    tcase_add_test(tf, vector_exp_accuracy);
    tcase_add_test(tf, softmax_stable_and_exact);
    tcase_add_test(tf, maxpool_ties_and_remainder);
    tcase_add_test(tf, adaptive_bins_exact);
    tcase_add_test(tf, batchnorm_interleaved_splits_exact);
    tcase_add_test(tf, batchnorm_tiny_variance);
    suite_add_tcase(s, tf);

    TCase *tb = tcase_create("backward");
    tcase_set_timeout(tb, 120);
    tcase_add_loop_test(tb, conv1d_vs_reference, 0, N_CONV_CASES);
    tcase_add_loop_test(tb, linear_vs_reference, 0, N_LIN_CASES);
    tcase_add_test(tb, activation_vs_reference);
    tcase_add_loop_test(tb, pool_vs_reference, 0, N_POOL_CASES);
    tcase_add_loop_test(tb, batchnorm_train_vs_reference, 0, N_BN_CASES);
    tcase_add_loop_test(tb, batchnorm_eval_vs_reference, 0, N_BN_CASES);
    tcase_add_loop_test(tb, layernorm_vs_reference, 0, N_LN_CASES);
    tcase_add_loop_test(tb, mha_vs_reference, 0, N_MHA_CASES);
    tcase_add_test(tb, l2norm_vs_reference);
    suite_add_tcase(s, tb);

    TCase *td = tcase_create("determinism");
    tcase_set_timeout(td, 60);
    tcase_add_test(td, conv1d_determinism);
    tcase_add_test(td, linear_determinism);
    tcase_add_test(td, batchnorm_determinism);
    tcase_add_test(td, layernorm_determinism);
    tcase_add_test(td, mha_determinism);
    suite_add_tcase(s, td);

    return sp_run_suite(s);
}
