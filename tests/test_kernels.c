/* test_kernels: the performance kernels of core/sp_kernels.h and the
 * channel-last CNN path built on them (encoder/enc_cnn.c, networks without
 * BatchNorm), against straight double-precision loops.
 *
 * - gemm: sp_gemm_strided for many shapes (edge tiles of every micro-kernel,
 *   masked column tails), overlapping A windows (sa < R), transposed strides,
 *   accumulate on/off; C is never read when not accumulating (NaN sentinel).
 * - cnn: features and every parameter gradient of small no-BN CNNs (strides,
 *   padding, pools of 2 and 3 with a dropped tail, LayerNorm input, gap and
 *   flatten heads) in SP_ENC_TRAIN, SP_ENC_EVAL_GRAD and SP_ENC_EVAL against a
 *   double reference of conv -> max pool (first maximum) -> ReLU -> head with
 *   loss = sum feat * G (tier B tolerances).
 * - conv1d: core conv1d's tap path (stride 1, C > 1) forward and gradients
 *   against double loops at shapes with several panels, padding, empty taps.
 * - determinism: features identical with 1 and 2 threads; gradients identical
 *   from run to run with 2 threads.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_config.h"
#include "sp_encoder.h"
#include "sp_kernels.h"
#include "sp_layers.h"
#include "sp_rng.h"
#include "sp_test.h"

/* ------------------------------------------------------------------ gemm */
static void gemm_case(int M, int N, int R, int sa, int sr, int ldb, int ldc, int acc,
                      unsigned long long seed) {
    size_t na = (size_t)(M > 0 ? (M - 1) : 0) * sa + (size_t)(R > 0 ? (R - 1) : 0) * sr + 1;
    size_t nb = (size_t)(R > 0 ? R : 1) * ldb;
    size_t nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float));
    float *C = malloc(nc * sizeof(float));
    double *ref = malloc(nc * sizeof(double)), *mag = malloc(nc * sizeof(double));
    sp_fill_uniform_f(A, na, seed, -1.0, 1.0);
    sp_fill_uniform_f(B, nb, seed + 1, -1.0, 1.0);
    sp_fill_uniform_f(C, nc, seed + 2, -1.0, 1.0);
    for (int i = 0; i < M; i++)
        for (int n = ldc > N ? N : ldc; n < ldc; n++) C[(size_t)i * ldc + n] = 7.0f;  /* untouched */
    if (!acc)
        for (int i = 0; i < M; i++)
            for (int n = 0; n < N; n++) C[(size_t)i * ldc + n] = NAN;
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) {
            double s = acc ? (double)C[(size_t)i * ldc + n] : 0.0, m = fabs(s);
            for (int r = 0; r < R; r++) {
                double p = (double)A[(size_t)i * sa + (size_t)r * sr] * (double)B[(size_t)r * ldb + n];
                s += p;
                m += fabs(p);
            }
            ref[(size_t)i * ldc + n] = s;
            mag[(size_t)i * ldc + n] = m;
        }
    sp_gemm_strided(M, N, R, A, sa, sr, B, ldb, C, ldc, acc);
    for (int i = 0; i < M; i++) {
        for (int n = 0; n < N; n++) {
            size_t q = (size_t)i * ldc + n;
            double err = fabs((double)C[q] - ref[q]);
            ck_assert_msg(err <= 2e-6 * mag[q] + 1e-30,
                          "gemm M=%d N=%d R=%d sa=%d sr=%d acc=%d: C[%d,%d] = %.9g, ref %.9g", M,
                          N, R, sa, sr, acc, i, n, (double)C[q], ref[q]);
        }
        for (int n = N; n < ldc; n++)
            ck_assert_msg(C[(size_t)i * ldc + n] == 7.0f, "gemm wrote past N at row %d col %d", i, n);
    }
    free(A);
    free(B);
    free(C);
    free(ref);
    free(mag);
}

START_TEST(gemm_shapes) {
    unsigned long long seed = 11;
    const int Ns[] = {1, 5, 16, 17, 31, 32, 33, 48, 50, 64, 65, 100, 128, 150, 192};
    for (int M = 1; M <= 14; M++)
        for (size_t k = 0; k < sizeof Ns / sizeof Ns[0]; k++) {
            int N = Ns[k];
            int R = (M * 7 + N) % 23 + 1;
            gemm_case(M, N, R, R, 1, N, N, 0, seed++);            /* plain row-major */
            gemm_case(M, N, R, R + 3, 1, N + 5, N + 2, 1, seed++); /* leading dimensions, += */
        }
}
END_TEST

START_TEST(gemm_overlapping_and_transposed) {
    unsigned long long seed = 101;
    /* conv forward: windows of K*C over rows of C (sa = s*C < R) */
    for (int C = 1; C <= 9; C += 4)
        for (int K = 1; K <= 7; K += 3)
            for (int s = 1; s <= 2; s++) {
                gemm_case(19, 37, K * C, s * C, 1, 37, 37, 0, seed++);
                /* conv weights: A^T windows (sa = 1, sr = s*C) */
                gemm_case(K * C, 21, 29, 1, s * C, 21, 21, 1, seed++);
            }
    gemm_case(64, 70, 0, 1, 1, 70, 70, 0, seed++);   /* R = 0: zeros */
    gemm_case(3, 4, 0, 1, 1, 4, 4, 1, seed++);       /* R = 0, accumulate: unchanged */
}
END_TEST

START_TEST(overlap_add) {
    float dst[40], src[3 * 6];
    double ref[40];
    for (int i = 0; i < 40; i++) ref[i] = dst[i] = (float)(0.25 * i);
    for (int i = 0; i < 18; i++) src[i] = (float)(0.5 * (i + 1));
    for (int t = 0; t < 3; t++)
        for (int j = 0; j < 6; j++) ref[t * 4 + j] += src[t * 6 + j];
    sp_overlap_add_rows(dst, 4, src, 3, 6);
    for (int i = 0; i < 40; i++) ck_assert_msg(dst[i] == (float)ref[i], "dst[%d]", i);
}
END_TEST

/* -------------------------------------------------------- cnn reference */
typedef struct {
    int n, C[4], O[4], K[4], st[4], pad[4], pool[4];
    int ln, flatten, Dout;
} RefNet;

/* double forward + backward of loss = sum feat * G for one sample; adds the
 * parameter gradients into g* (same layouts as the encoder's tensors). */
static void ref_sample(const RefNet *r, const float *x, int L, double *const *w,
                       double *const *bias, const double *wd, const double *bd, const double *G,
                       double *feat, double *const *gw, double *const *gb, double *gwd,
                       double *gbd) {
    /* forward, keeping every map */
    double *in[5], *conv[4], *outm[4];
    int Lin[5], Lc[4], Lo[4];
    int *pick[4];
    Lin[0] = L;
    in[0] = malloc(sizeof(double) * L);
    double m = 0, v = 0;
    for (int j = 0; j < L; j++) m += x[j];
    m /= L;
    for (int j = 0; j < L; j++) v += (x[j] - m) * (x[j] - m);
    double rs = 1.0 / sqrt(v / L + 1e-5);
    for (int j = 0; j < L; j++) in[0][j] = r->ln ? (x[j] - m) * rs : x[j];
    for (int i = 0; i < r->n; i++) {
        const int C = r->C[i], O = r->O[i], K = r->K[i], s = r->st[i], p = r->pad[i];
        Lc[i] = (Lin[i] + 2 * p - K) / s + 1;
        Lo[i] = Lc[i] / r->pool[i];
        conv[i] = malloc(sizeof(double) * O * Lc[i]);
        outm[i] = malloc(sizeof(double) * O * Lo[i]);
        pick[i] = malloc(sizeof(int) * O * Lo[i]);
        for (int o = 0; o < O; o++)
            for (int t = 0; t < Lc[i]; t++) {
                double acc = bias[i][o];
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < K; k++) {
                        int q = t * s + k - p;
                        if (q >= 0 && q < Lin[i]) acc += w[i][(o * C + c) * K + k] * in[i][c * Lin[i] + q];
                    }
                conv[i][o * Lc[i] + t] = acc;
            }
        for (int o = 0; o < O; o++)
            for (int t = 0; t < Lo[i]; t++) {
                int best = t * r->pool[i];
                for (int j = 1; j < r->pool[i]; j++)
                    if (conv[i][o * Lc[i] + t * r->pool[i] + j] > conv[i][o * Lc[i] + best])
                        best = t * r->pool[i] + j;
                pick[i][o * Lo[i] + t] = best;
                double y = conv[i][o * Lc[i] + best];
                outm[i][o * Lo[i] + t] = y > 0 ? y : 0;
            }
        Lin[i + 1] = Lo[i];
        in[i + 1] = outm[i];
    }
    const int l = r->n - 1, D = r->O[l], Lp = Lo[l];
    double *dlast = calloc((size_t)D * Lp, sizeof(double));
    if (r->flatten) {
        for (int d = 0; d < r->Dout; d++) {
            double acc = bd[d];
            for (int j = 0; j < D * Lp; j++) acc += wd[d * D * Lp + j] * outm[l][j];
            feat[d] = acc;
            gbd[d] += G[d];
            for (int j = 0; j < D * Lp; j++) {
                gwd[d * D * Lp + j] += G[d] * outm[l][j];
                dlast[j] += G[d] * wd[d * D * Lp + j];
            }
        }
    } else {
        for (int o = 0; o < D; o++) {
            double acc = 0;
            for (int t = 0; t < Lp; t++) acc += outm[l][o * Lp + t];
            feat[o] = acc / Lp;
            for (int t = 0; t < Lp; t++) dlast[o * Lp + t] = G[o] / Lp;
        }
    }
    /* backward */
    double *dout = dlast;
    for (int i = l; i >= 0; i--) {
        const int C = r->C[i], O = r->O[i], K = r->K[i], s = r->st[i], p = r->pad[i];
        double *dconv = calloc((size_t)O * Lc[i], sizeof(double));
        for (int o = 0; o < O; o++)
            for (int t = 0; t < Lo[i]; t++)
                if (outm[i][o * Lo[i] + t] > 0)
                    dconv[o * Lc[i] + pick[i][o * Lo[i] + t]] += dout[o * Lo[i] + t];
        double *din = calloc((size_t)C * Lin[i], sizeof(double));
        for (int o = 0; o < O; o++)
            for (int t = 0; t < Lc[i]; t++) {
                double d = dconv[o * Lc[i] + t];
                gb[i][o] += d;
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < K; k++) {
                        int q = t * s + k - p;
                        if (q >= 0 && q < Lin[i]) {
                            gw[i][(o * C + c) * K + k] += d * in[i][c * Lin[i] + q];
                            din[c * Lin[i] + q] += d * w[i][(o * C + c) * K + k];
                        }
                    }
            }
        free(dconv);
        free(dout);
        dout = din;
    }
    free(dout);
    free(in[0]);
    for (int i = 0; i < r->n; i++) {
        free(conv[i]);
        free(outm[i]);
        free(pick[i]);
    }
}

static void cnn_case(const RefNet *r, int B, int L, int mode, unsigned long long seed) {
    char sets[12][128];
    const char *sv[13];
    int ns = 0;
    char ch[64] = "", ks[64] = "", st[64] = "", pd[64] = "", pl[64] = "";
    for (int i = 0; i < r->n; i++) {
        const char *sep = i ? ", " : "";
        snprintf(ch + strlen(ch), sizeof ch - strlen(ch), "%s%d", sep, r->O[i]);
        snprintf(ks + strlen(ks), sizeof ks - strlen(ks), "%s%d", sep, r->K[i]);
        snprintf(st + strlen(st), sizeof st - strlen(st), "%s%d", sep, r->st[i]);
        snprintf(pd + strlen(pd), sizeof pd - strlen(pd), "%s%d", sep, r->pad[i]);
        snprintf(pl + strlen(pl), sizeof pl - strlen(pl), "%s%d", sep, r->pool[i] > 1 ? r->pool[i] : 0);
    }
    snprintf(sets[ns++], 128, "encoder.arch=cnn");
    snprintf(sets[ns++], 128, "encoder.cnn.channels=[%s]", ch);
    snprintf(sets[ns++], 128, "encoder.cnn.kernels=[%s]", ks);
    snprintf(sets[ns++], 128, "encoder.cnn.strides=[%s]", st);
    snprintf(sets[ns++], 128, "encoder.cnn.padding=[%s]", pd);
    snprintf(sets[ns++], 128, "encoder.cnn.pool=[%s]", pl);
    snprintf(sets[ns++], 128, "encoder.cnn.batchnorm=false");
    snprintf(sets[ns++], 128, "encoder.cnn.layernorm_input=%s", r->ln ? "true" : "false");
    if (r->flatten) {
        snprintf(sets[ns++], 128, "encoder.cnn.head=\"flatten\"");
        snprintf(sets[ns++], 128, "encoder.cnn.flatten_dim=%d", r->Dout);
        snprintf(sets[ns++], 128, "encoder.input_length=%d", L);
    }
    for (int i = 0; i < ns; i++) sv[i] = sets[i];
    SpConfig *cfg = NULL;
    ck_assert_msg(sp_config_load(&cfg, NULL, sv, ns) == SP_OK, "config: %s", sp_error_message());
    SpRng rng;
    sp_rng_stream(&rng, seed, 1, 2, 3);
    SpEncoder *e = NULL;
    ck_assert_msg(encoder_create(&e, cfg, &rng) == SP_OK, "%s", sp_error_message());
    SpParams *p = encoder_params(e);
    const int D = encoder_feature_dim(e);

    /* parameters as doubles; biases made non-trivial */
    double *w[4], *bias[4], *gw[4], *gb[4], *wd = NULL, *bd = NULL, *gwd = NULL, *gbd = NULL;
    int iw[4], ib[4];
    for (int i = 0; i < r->n; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "conv%d.weight", i);
        iw[i] = sp_params_find(p, nm);
        snprintf(nm, sizeof nm, "conv%d.bias", i);
        ib[i] = sp_params_find(p, nm);
        ck_assert(iw[i] >= 0 && ib[i] >= 0);
        size_t nw = (size_t)r->O[i] * r->C[i] * r->K[i];
        float *bf = sp_params_data(p, ib[i]);
        sp_fill_uniform_f(bf, (size_t)r->O[i], seed + 50 + i, -0.3, 0.3);
        w[i] = malloc(nw * sizeof(double));
        bias[i] = malloc(r->O[i] * sizeof(double));
        gw[i] = calloc(nw, sizeof(double));
        gb[i] = calloc(r->O[i], sizeof(double));
        for (size_t j = 0; j < nw; j++) w[i][j] = sp_params_data(p, iw[i])[j];
        for (int o = 0; o < r->O[i]; o++) bias[i][o] = bf[o];
    }
    int iwd = -1, ibd = -1;
    size_t nwd = 0;
    if (r->flatten) {
        iwd = sp_params_find(p, "dense.weight");
        ibd = sp_params_find(p, "dense.bias");
        nwd = p->t[iwd].count;
        sp_fill_uniform_f(sp_params_data(p, ibd), (size_t)r->Dout, seed + 60, -0.3, 0.3);
        wd = malloc(nwd * sizeof(double));
        bd = malloc(r->Dout * sizeof(double));
        gwd = calloc(nwd, sizeof(double));
        gbd = calloc(r->Dout, sizeof(double));
        for (size_t j = 0; j < nwd; j++) wd[j] = sp_params_data(p, iwd)[j];
        for (int d = 0; d < r->Dout; d++) bd[d] = sp_params_data(p, ibd)[d];
    }

    float *x = malloc(sizeof(float) * B * L), *feat = malloc(sizeof(float) * B * D);
    float *Gf = malloc(sizeof(float) * B * D);
    double *G = malloc(sizeof(double) * B * D), *rf = malloc(sizeof(double) * B * D);
    sp_fill_uniform_f(x, (size_t)B * L, seed + 70, -1.0, 1.0);
    sp_fill_uniform_f(Gf, (size_t)B * D, seed + 71, -1.0, 1.0);
    for (int i = 0; i < B * D; i++) G[i] = Gf[i];
    for (int b = 0; b < B; b++)
        ref_sample(r, x + (size_t)b * L, L, w, bias, wd, bd, G + (size_t)b * D, rf + (size_t)b * D,
                   gw, gb, gwd, gbd);

    SpEncAct *a = NULL;
    ck_assert_msg((mode == SP_ENC_EVAL ? encoder_act_create_infer(&a, e, B, L)
                                       : encoder_act_create(&a, e, B, L)) == SP_OK,
                  "%s", sp_error_message());
    ck_assert_msg(encoder_forward(e, a, x, B, mode, feat) == SP_OK, "%s", sp_error_message());
    sp_expect_close_d("cnn features", feat, rf, (size_t)B * D, 1e-5, 1e-6 * sp_max_abs_d(rf, (size_t)B * D));
    if (mode != SP_ENC_EVAL) {
        sp_params_zero_grad(p);
        encoder_backward(e, a, Gf, B);
        for (int i = 0; i < r->n; i++) {
            size_t nw = (size_t)r->O[i] * r->C[i] * r->K[i];
            sp_expect_close_d("conv weight grad", sp_params_grad(p, iw[i]), gw[i], nw, 1e-4,
                              1e-6 * sp_max_abs_d(gw[i], nw));
            sp_expect_close_d("conv bias grad", sp_params_grad(p, ib[i]), gb[i], (size_t)r->O[i],
                              1e-4, 1e-6 * sp_max_abs_d(gb[i], (size_t)r->O[i]));
        }
        if (r->flatten) {
            sp_expect_close_d("dense weight grad", sp_params_grad(p, iwd), gwd, nwd, 1e-4,
                              1e-6 * sp_max_abs_d(gwd, nwd));
            sp_expect_close_d("dense bias grad", sp_params_grad(p, ibd), gbd, (size_t)r->Dout,
                              1e-4, 1e-6 * sp_max_abs_d(gbd, (size_t)r->Dout));
        }
    }
    for (int i = 0; i < r->n; i++) {
        free(w[i]);
        free(bias[i]);
        free(gw[i]);
        free(gb[i]);
    }
    free(wd);
    free(bd);
    free(gwd);
    free(gbd);
    free(x);
    free(feat);
    free(Gf);
    free(G);
    free(rf);
    encoder_act_destroy(&a);
    encoder_destroy(&e);
    sp_config_free(cfg);
}

static const RefNet NET_A = {3, {1, 3, 5}, {3, 5, 4}, {5, 3, 3}, {1, 2, 1}, {2, 1, 0}, {2, 1, 2},
                             0, 0, 0};
static const RefNet NET_B = {3, {1, 17, 20}, {17, 20, 33}, {7, 5, 3}, {1, 1, 2}, {3, 2, 1},
                             {3, 2, 1}, 1, 0, 0};
static const RefNet NET_FLAT = {2, {1, 6}, {6, 5}, {3, 3}, {1, 1}, {1, 0}, {2, 2}, 0, 1, 7};
/* the bench_cnn shape at a short length */
static const RefNet NET_BENCH = {3, {1, 32, 64}, {32, 64, 128}, {7, 5, 3}, {1, 1, 1}, {3, 2, 1},
                                 {2, 2, 1}, 0, 0, 0};

START_TEST(cnn_train_vs_reference) {
    sp_blas_init(2);
    cnn_case(&NET_A, 3, 37, SP_ENC_TRAIN, 1000);
    cnn_case(&NET_B, 4, 61, SP_ENC_TRAIN, 2000);
    cnn_case(&NET_FLAT, 3, 23, SP_ENC_TRAIN, 3000);
    cnn_case(&NET_BENCH, 3, 96, SP_ENC_TRAIN, 4000);
}
END_TEST

START_TEST(cnn_eval_vs_reference) {
    sp_blas_init(2);
    cnn_case(&NET_A, 3, 37, SP_ENC_EVAL_GRAD, 1100);
    cnn_case(&NET_B, 5, 50, SP_ENC_EVAL, 2100);
    cnn_case(&NET_FLAT, 2, 23, SP_ENC_EVAL, 3100);
    cnn_case(&NET_BENCH, 5, 64, SP_ENC_EVAL, 4100);
}
END_TEST

/* Features bit-identical for 1 and 2 threads (per-sample ownership);
 * gradients bit-identical from run to run with 2 threads. */
START_TEST(cnn_determinism) {
    const char *sets[] = {"encoder.arch=cnn", "encoder.cnn.channels=[8, 16, 24]", NULL};
    SpConfig *cfg = NULL;
    ck_assert(sp_config_load(&cfg, NULL, sets, 2) == SP_OK);
    SpRng rng;
    sp_rng_stream(&rng, 5, 6, 7, 8);
    SpEncoder *e = NULL;
    ck_assert(encoder_create(&e, cfg, &rng) == SP_OK);
    const int B = 6, L = 128, D = encoder_feature_dim(e);
    SpParams *p = encoder_params(e);
    float *x = malloc(sizeof(float) * B * L), *f[3], *g = malloc(sizeof(float) * B * D);
    float *gr[2];
    sp_fill_uniform_f(x, (size_t)B * L, 9, -1.0, 1.0);
    sp_fill_uniform_f(g, (size_t)B * D, 10, -1.0, 1.0);
    const size_t np = sp_params_count(p);
    for (int r = 0; r < 3; r++) {
        sp_blas_init(r == 0 ? 1 : 2);
        SpEncAct *a = NULL;
        ck_assert(encoder_act_create(&a, e, B, L) == SP_OK);
        f[r] = malloc(sizeof(float) * B * D);
        ck_assert(encoder_forward(e, a, x, B, SP_ENC_TRAIN, f[r]) == SP_OK);
        sp_params_zero_grad(p);
        encoder_backward(e, a, g, B);
        if (r > 0) {
            gr[r - 1] = malloc(np * sizeof(float));
            memcpy(gr[r - 1], p->grad, np * sizeof(float));
        }
        encoder_act_destroy(&a);
    }
    ck_assert_msg(memcmp(f[0], f[1], sizeof(float) * B * D) == 0, "features differ 1 vs 2 threads");
    ck_assert_msg(memcmp(f[1], f[2], sizeof(float) * B * D) == 0, "features differ run to run");
    ck_assert_msg(memcmp(gr[0], gr[1], np * sizeof(float)) == 0, "gradients differ run to run");
    for (int r = 0; r < 3; r++) free(f[r]);
    free(gr[0]);
    free(gr[1]);
    free(x);
    free(g);
    encoder_destroy(&e);
    sp_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------------ conv1d
 * core conv1d's tap path (stride 1, C > 1: per-tap sp_gemm_strided on the
 * input rows in place, sp_kernels.h) at shapes with several 64-column panels,
 * edge tiles and padding, with 2 threads: forward, dinp, dw, dbias (added into
 * prefilled gradients) against double loops. Every stride / C = 1 / pointwise
 * case of the im2col path is in test_layers. */
static void conv_tap_case(int B, int C, int L, int O, int K, int pad, unsigned long long seed) {
    SpConv1d s = conv1d_shape(B, C, L, O, K, 1, pad);
    const int Lo = s.Lo;
    ck_assert_int_gt(Lo, 0);
    const size_t ni = (size_t)B * C * L, nw = (size_t)O * C * K, no = (size_t)B * O * Lo;
    SpRng r;
    sp_rng_stream(&r, seed, 5, 0, 0);
    float *x = malloc(ni * sizeof(float)), *w = malloc(nw * sizeof(float)), *bias = malloc(O * sizeof(float));
    float *g = malloc(no * sizeof(float)), *y = malloc(no * sizeof(float));
    float *dx = malloc(ni * sizeof(float)), *dw = malloc(nw * sizeof(float)), *db = malloc(O * sizeof(float));
    float *work = malloc(conv1d_work_floats(&s) * sizeof(float));
    double *ry = calloc(no, sizeof(double)), *rdx = calloc(ni, sizeof(double));
    double *rdw = calloc(nw, sizeof(double)), *rdb = calloc((size_t)O, sizeof(double));
    for (size_t i = 0; i < ni; i++) x[i] = (float)sp_rng_uniform(&r, -1.0, 1.0);
    for (size_t i = 0; i < nw; i++) w[i] = (float)sp_rng_uniform(&r, -1.0, 1.0);
    for (int i = 0; i < O; i++) bias[i] = (float)sp_rng_uniform(&r, -1.0, 1.0);
    for (size_t i = 0; i < no; i++) g[i] = (float)sp_rng_uniform(&r, -1.0, 1.0);
    for (size_t i = 0; i < ni; i++) dx[i] = 0.5f;
    for (size_t i = 0; i < nw; i++) dw[i] = -0.25f;
    for (int i = 0; i < O; i++) db[i] = 1.0f;
    for (size_t i = 0; i < no; i++) y[i] = NAN;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++)
            for (int t = 0; t < Lo; t++) {
                double acc = bias[o];
                const double gy = g[((size_t)b * O + o) * Lo + t];
                rdb[o] += gy;
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < K; k++) {
                        const int i = t + k - pad;
                        if (i < 0 || i >= L) continue;
                        const size_t xi = ((size_t)b * C + c) * L + i, wi = ((size_t)o * C + c) * K + k;
                        acc += (double)w[wi] * x[xi];
                        rdx[xi] += (double)w[wi] * gy;
                        rdw[wi] += (double)x[xi] * gy;
                    }
                ry[((size_t)b * O + o) * Lo + t] = acc;
            }
    sp_blas_init(2);
    conv1d_forward(y, x, w, bias, &s, work);
    conv1d_backward(dx, dw, db, g, x, w, &s, work);
    for (size_t i = 0; i < ni; i++) rdx[i] += 0.5;
    for (size_t i = 0; i < nw; i++) rdw[i] -= 0.25;
    for (int i = 0; i < O; i++) rdb[i] += 1.0;
    /* float sums of n terms of size <= 1: atol 1e-6 n (a wrong tap or a
     * missed edge is off by O(1)) */
    sp_expect_close_d("conv1d taps forward", y, ry, no, 1e-5, 1e-6 * C * K);
    sp_expect_close_d("conv1d taps dinp", dx, rdx, ni, 1e-5, 1e-6 * O * K);
    sp_expect_close_d("conv1d taps dw", dw, rdw, nw, 1e-5, 1e-6 * Lo * B);
    sp_expect_close_d("conv1d taps dbias", db, rdb, (size_t)O, 1e-5, 1e-6 * Lo * B);
    sp_blas_init(0);
    free(x); free(w); free(bias); free(g); free(y); free(dx); free(dw); free(db); free(work);
    free(ry); free(rdx); free(rdw); free(rdb);
}

START_TEST(conv1d_tap_path) {
    conv_tap_case(3, 64, 170, 16, 5, 0, 1);    /* ConvSC conv3-like: 3 panels, edge tiles */
    conv_tap_case(2, 5, 140, 70, 3, 1, 2);     /* O > 64, padding */
    conv_tap_case(3, 3, 9, 7, 5, 2, 3);        /* pad 2 on a short row: partial tap ranges */
    conv_tap_case(1, 2, 6, 2, 4, 3, 4);        /* taps with empty ranges */
}
END_TEST

static Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("forward");
    tcase_add_test(tc, gemm_shapes);
    tcase_add_test(tc, gemm_overlapping_and_transposed);
    tcase_add_test(tc, overlap_add);
    tcase_add_test(tc, conv1d_tap_path);
    suite_add_tcase(s, tc);
    tc = tcase_create("cnn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cnn_train_vs_reference);
    tcase_add_test(tc, cnn_eval_vs_reference);
    tcase_add_test(tc, cnn_determinism);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    sp_core_config_register();
    encoder_config_register();
    return sp_run_suite(kernels_suite());
}
