/* enc_binned_fcnn.c - "binned FCNN with automatic weighting" of the seed
 * studies (reference §14, CMP WeightModel-FNN-DiffBin notebook and PAN):
 *
 *   the L points are split into NB contiguous bins; bin j holds the points
 *   [floor(j L / NB), floor((j+1) L / NB)) (sizes differ by at most one);
 *   every point l of bin j is the pair (u_l, x_l) and goes through the bin's
 *   own small network
 *       Linear(2 -> Hd) -> BatchNorm(Hd) -> ReLU -> Linear(Hd -> 2) -> BatchNorm(2) -> sigmoid;
 *   the bin's 2 outputs are the mean of the sigmoid outputs over its points;
 *   h = the 2 NB bin outputs (B, 2 NB) is the feature. The reference's
 *   "automatic weighting" Linear(2B, 1) + sigmoid over these outputs is the
 *   supervised trainer's linear head.
 * Defaults NB = 15 (PAN), Hd = 150. Parameters 1056 per bin at Hd = 150
 * (the reference's 1059 + 1058 (NB - 1) minus its Linear(2NB, 1) head).
 *
 * Choices where the reference is ambiguous or unavailable (its notebook is
 * not in the stored material; the spec gives the layer list only):
 * - Position: the reference feeds (2θ, I); the encoder sees no axis, so the
 *   position is the index normalised to the whole spectrum, u_l = l / (L - 1)
 *   (an affine image of a uniform 2θ grid: the first Linear and its
 *   BatchNorm absorb the affine map).
 * - Aggregation over a bin's points: the mean of the per-point sigmoid
 *   outputs (bins of different sizes then give outputs on the same scale).
 * - BatchNorm: plain BatchNorm1d (no splits): statistics per bin over all
 *   points of all spectra in the batch (B n_j rows), momentum 0.1, eps 1e-5;
 *   eval mode uses the running statistics. No num_batches_tracked counters.
 * - Init: PyTorch defaults (Linear weight and bias U(+-1/sqrt(fan_in)),
 *   BatchNorm weight 1, bias 0, running mean 0, variance 1), bins in order.
 *
 * Tensors, bin j (nn.Sequential indices of the reference block):
 * "bins.<j>.0.weight" (Hd, 2), "bins.<j>.0.bias" (Hd), "bins.<j>.1.{weight,
 * bias,running_mean,running_var}" (Hd), "bins.<j>.3.weight" (2, Hd),
 * "bins.<j>.3.bias" (2), "bins.<j>.4.{weight,bias,running_mean,running_var}" (2).
 *
 * Memory: the first Linear's output (B L Hd floats, 2.4 MB per spectrum at
 * L = 4020, Hd = 150) is kept for backward; the BatchNorm -> ReLU output is
 * recomputed from it in backward (scratch for the largest bin, per thread).
 * Inference-only contexts keep nothing: per-thread rows of one bin.
 * Threading: one OpenMP region per forward / backward, each thread owning
 * whole bins (static schedule, single-threaded sgemm, BatchNorm statistics in
 * double): a bin's outputs and parameter gradients are computed by one
 * thread in a fixed order, so results are bit-identical for any thread count.
 *
 * Dimension letters: B batch, L points, NB bins, n_j points of bin j,
 * N_j = B n_j rows of bin j, Hd hidden width.
 * Allocation: create / act_create only. Every function opens its own OpenMP
 * regions (through sp_layers.h or below); never call from inside one.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_blas.h"
#include "sp_layers.h"

#define BN_EPS 1e-5f
#define BN_MOM 0.1f
#define NOUT 2          /* outputs per bin (reference Linear(150, 2)) */
/* Elementwise loops below this many floats run serially: an OpenMP region
 * costs more than the work (tiny shapes, oversubscribed cores). */
#define PAR_MIN 32768

static const SpCfgKey g_keys[] = {
    {"encoder.binned_fcnn.bins", SP_CFG_INT, "15", 1, 4096, NULL,
     "binned_fcnn: number of contiguous bins over the spectrum, each with its own small "
     "network (feature width 2 x bins; reference PAN 15)"},
    {"encoder.binned_fcnn.hidden", SP_CFG_INT, "150", 1, 65536, NULL,
     "binned_fcnn: hidden width of each bin's Linear(2 -> hidden) -> BN -> ReLU -> "
     "Linear(hidden -> 2) network (reference 150)"},
};

void enc_binned_fcnn_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

/* Tensor indices per bin. */
enum { T_W1, T_B1, T_G1, T_BE1, T_RM1, T_RV1, T_W2, T_B2, T_G2, T_BE2, T_RM2, T_RV2, T_NB };

typedef struct {
    int NB, Hd;
    int *idx;           /* NB * T_NB */
} Binned;

static SpStatus binned_create(SpEncoder *e, const SpConfig *cfg) {
    const int NB = (int)sp_cfg_int(cfg, "encoder.binned_fcnn.bins");
    const int Hd = (int)sp_cfg_int(cfg, "encoder.binned_fcnn.hidden");
    Binned *s = sp_calloc(1, sizeof *s, "binned_fcnn spec");
    if (!s) return SP_ENOMEM;
    s->NB = NB;
    s->Hd = Hd;
    s->idx = sp_calloc((size_t)NB * T_NB, sizeof(int), "binned_fcnn tensor table");
    if (!s->idx) {
        free(s);
        return SP_ENOMEM;
    }
    SpParams *p = &e->params;
    const SpTensorKind P = SP_TENSOR_PARAM, BF = SP_TENSOR_BUFFER;
    static const char *const suffix[T_NB] = {
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "3.weight", "3.bias", "4.weight", "4.bias", "4.running_mean", "4.running_var"};
    for (int j = 0; j < NB; j++) {
        int *ix = s->idx + (size_t)j * T_NB;
        for (int k = 0; k < T_NB; k++) {
            char nm[SP_PARAM_NAME_MAX];
            snprintf(nm, sizeof nm, "bins.%d.%s", j, suffix[k]);
            const SpTensorKind kind = (k == T_RM1 || k == T_RV1 || k == T_RM2 || k == T_RV2) ? BF : P;
            switch (k) {
            case T_W1: ix[k] = sp_params_add_dims(p, nm, kind, 2, Hd, 2); break;
            case T_W2: ix[k] = sp_params_add_dims(p, nm, kind, 2, NOUT, Hd); break;
            case T_B1: case T_G1: case T_BE1: case T_RM1: case T_RV1:
                ix[k] = sp_params_add_dims(p, nm, kind, 1, Hd);
                break;
            default: ix[k] = sp_params_add_dims(p, nm, kind, 1, NOUT); break;
            }
            if (ix[k] < 0) {
                free(s->idx);
                free(s);
                return sp_error_status();
            }
        }
    }
    e->impl = s;
    e->feature_dim = NOUT * NB;
    e->batch_multiple = 1;
    return SP_OK;
}

static void binned_free_impl(SpEncoder *e) {
    Binned *s = e->impl;
    if (s) free(s->idx);
    free(s);
    e->impl = NULL;
}

static void binned_init(SpEncoder *e, SpRng *rng) {
    const Binned *s = e->impl;
    SpParams *p = &e->params;
    for (int j = 0; j < s->NB; j++) {
        const int *ix = s->idx + (size_t)j * T_NB;
#define D(k) sp_params_data(p, ix[k])
        enc_fill_const(D(T_RV1), (size_t)s->Hd, 1.0f);
        enc_fill_const(D(T_RV2), NOUT, 1.0f);
        if (rng) {
            enc_fill_const(D(T_G1), (size_t)s->Hd, 1.0f);
            enc_fill_const(D(T_G2), NOUT, 1.0f);
            const double b1 = 1.0 / sqrt(2.0), b2 = 1.0 / sqrt((double)s->Hd);
            enc_fill_uniform(D(T_W1), (size_t)s->Hd * 2, b1, rng);
            enc_fill_uniform(D(T_B1), (size_t)s->Hd, b1, rng);
            enc_fill_uniform(D(T_W2), (size_t)NOUT * s->Hd, b2, rng);
            enc_fill_uniform(D(T_B2), NOUT, b2, rng);
        }
#undef D
    }
}

/* Every bin needs at least 2 points (BatchNorm of one spectrum in training
 * mode, and a meaningful bin). */
static int binned_length_ok(const SpEncoder *e, int L) {
    const Binned *s = e->impl;
    return L >= 2 * s->NB;
}

static double binned_flops(const SpEncoder *e, int L) {
    const Binned *s = e->impl;
    return 2.0 * (double)L * (2.0 * s->Hd + (double)s->Hd * NOUT);
}

/* ------------------------------------------------------------ activations */
typedef struct {
    char *arena;
    int L, nthreads;
    int keep;              /* 1: every bin's rows are kept for backward; 0: inference
                            * only, each thread reuses rows sized for the largest bin */
    size_t rows;           /* rows of the largest bin for the largest batch */
    int *start;            /* NB + 1 bin boundaries */
    float *X;              /* (B L, 2) per-bin input rows, bin j at row B start[j] */
    float *z1;             /* (B L, Hd) first Linear outputs */
    float *z2, *s2;        /* (B L, 2) second Linear outputs, sigmoid outputs */
    float *m1, *r1;        /* (NB, Hd) BN1 mean / rstd in use (batch or running) */
    float *m2, *r2;        /* (NB, 2) */
    float *scr;            /* per thread: a1 (rows, Hd), y2 (rows, 2), then da1, dy2
                            * (training contexts) or X, z1, z2, s2 (inference) */
    double *dscr;          /* per thread: 2 Hd double accumulators */
    size_t scr_per;        /* floats per thread */
} BinnedAct;

static void bin_bounds(int *start, int L, int NB) {
    for (int j = 0; j <= NB; j++) start[j] = (int)(((long long)j * L) / NB);
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* grad = 0 (inference-only context): no per-bin storage, no backward scratch. */
static void binned_layout(BinnedAct *t, EncArena *ar, const Binned *s, int B, int L, int nthreads,
                          int grad) {
    const int NB = s->NB, Hd = s->Hd;
    const size_t rows = (size_t)B * (size_t)(L / NB + 1), BL = (size_t)B * L;
    t->L = L;
    t->nthreads = nthreads;
    t->keep = grad;
    t->rows = rows;
    t->start = enc_take_int(ar, (size_t)NB + 1);
    t->X = grad ? enc_take(ar, BL * 2) : NULL;
    t->z1 = grad ? enc_take(ar, BL * Hd) : NULL;
    t->z2 = grad ? enc_take(ar, BL * NOUT) : NULL;
    t->s2 = grad ? enc_take(ar, BL * NOUT) : NULL;
    t->m1 = enc_take(ar, (size_t)NB * Hd);
    t->r1 = enc_take(ar, (size_t)NB * Hd);
    t->m2 = enc_take(ar, (size_t)NB * NOUT);
    t->r2 = enc_take(ar, (size_t)NB * NOUT);
    size_t per = 2 * round16(rows * Hd) + 2 * round16(rows * NOUT);
    if (!grad) per += round16(rows * 2) + round16(rows * NOUT);
    t->scr_per = per;
    t->scr = enc_take(ar, per * (size_t)nthreads);
    t->dscr = enc_take_double(ar, 2 * (size_t)Hd * nthreads);
}

static SpStatus binned_act_create(SpEncAct *a, const SpEncoder *e) {
    const Binned *s = e->impl;
    BinnedAct *t = sp_calloc(1, sizeof *t, "binned_fcnn activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    binned_layout(t, &ar, s, a->maxB, a->L, a->nthreads, !a->infer);
    a->bytes = ar.used;
    if (enc_arena_alloc(&ar, "binned_fcnn activations") != SP_OK) {
        free(t);
        return SP_ENOMEM;
    }
    t->arena = ar.base;
    binned_layout(t, &ar, s, a->maxB, a->L, a->nthreads, !a->infer);
    bin_bounds(t->start, a->L, s->NB);
    a->impl = t;
    return SP_OK;
}

static void binned_act_free(SpEncAct *a) {
    BinnedAct *t = a->impl;
    if (t) free(t->arena);
    free(t);
    a->impl = NULL;
}

/* The buffers of bin j (rows B n_j) for thread tid. */
typedef struct {
    float *X, *z1, *z2, *s2;     /* the bin's rows (kept in training contexts) */
    float *a1, *y2, *da1, *dy2;  /* thread scratch */
    double *acc;                 /* 2 Hd */
} BinBufs;

static BinBufs bin_bufs(const BinnedAct *t, int Hd, int B, int j, int tid) {
    BinBufs q;
    float *sc = t->scr + t->scr_per * (size_t)tid;
    const size_t rows = t->rows;
    q.a1 = sc;
    sc += round16(rows * Hd);
    q.da1 = sc;   /* also z1 in inference contexts */
    sc += round16(rows * Hd);
    q.y2 = sc;
    sc += round16(rows * NOUT);
    q.dy2 = sc;   /* also z2 in inference contexts */
    sc += round16(rows * NOUT);
    if (t->keep) {
        const size_t off = (size_t)B * t->start[j];
        q.X = t->X + off * 2;
        q.z1 = t->z1 + off * Hd;
        q.z2 = t->z2 + off * NOUT;
        q.s2 = t->s2 + off * NOUT;
    } else {
        q.z1 = q.da1;
        q.z2 = q.dy2;
        q.X = sc;
        sc += round16(rows * 2);
        q.s2 = sc;
        q.da1 = q.dy2 = NULL;
    }
    q.acc = t->dscr + 2 * (size_t)Hd * tid;
    return q;
}

/* BatchNorm1d over N rows of C channels, plain (one split): training mode
 * sets mean / rstd from the batch (two-pass, double) and updates the running
 * statistics (momentum 0.1, unbiased variance); eval mode takes them from
 * the running statistics. acc: 2 C doubles. */
static void bn_stats(float *mean, float *rstd, const float *z, int N, int C, int train, float *rm,
                     float *rv, double *acc) {
    if (!train) {
        for (int c = 0; c < C; c++) {
            mean[c] = rm[c];
            rstd[c] = (float)(1.0 / sqrt((double)rv[c] + (double)BN_EPS));
        }
        return;
    }
    double *mu = acc, *var = acc + C;
    for (int c = 0; c < C; c++) mu[c] = var[c] = 0.0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) mu[c] += (double)z[(size_t)n * C + c];
    for (int c = 0; c < C; c++) mu[c] /= N;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const double d = (double)z[(size_t)n * C + c] - mu[c];
            var[c] += d * d;
        }
    const double mom = (double)BN_MOM, bessel = N > 1 ? (double)N / (N - 1) : 1.0;
    for (int c = 0; c < C; c++) {
        var[c] /= N;
        mean[c] = (float)mu[c];
        rstd[c] = (float)(1.0 / sqrt(var[c] + (double)BN_EPS));
        rm[c] = (float)((1.0 - mom) * (double)rm[c] + mom * mu[c]);
        rv[c] = (float)((1.0 - mom) * (double)rv[c] + mom * var[c] * bessel);
    }
}

/* y = (z - mean) (rstd g) + b over N rows of C channels; relu: max(y, 0). */
static void bn_apply(float *y, const float *z, const float *mean, const float *rstd, const float *g,
                     const float *b, int N, int C, int relu) {
    for (int n = 0; n < N; n++) {
        const float *zr = z + (size_t)n * C;
        float *yr = y + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            const float v = (zr[c] - mean[c]) * (rstd[c] * g[c]) + b[c];
            yr[c] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    }
}

/* BatchNorm backward, in place: d (N, C) holds dL/dy and becomes dL/dz.
 * Training: dz = g rstd (dy - mean(dy) - xhat mean(dy xhat)); eval:
 * dz = g rstd dy. Adds dgamma, dbeta. acc: 2 C doubles. */
static void bn_backward(float *d, const float *z, const float *mean, const float *rstd,
                        const float *g, float *dg, float *db, int N, int C, int train,
                        double *acc) {
    double *sd = acc, *sdx = acc + C;
    for (int c = 0; c < C; c++) sd[c] = sdx[c] = 0.0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t i = (size_t)n * C + c;
            const double xh = ((double)z[i] - (double)mean[c]) * (double)rstd[c];
            sd[c] += (double)d[i];
            sdx[c] += (double)d[i] * xh;
        }
    for (int c = 0; c < C; c++) {
        dg[c] += (float)sdx[c];
        db[c] += (float)sd[c];
    }
    for (int c = 0; c < C; c++) {
        sd[c] /= N;
        sdx[c] /= N;
    }
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t i = (size_t)n * C + c;
            const float k = g[c] * rstd[c];
            if (train) {
                const float xh = (z[i] - mean[c]) * rstd[c];
                d[i] = k * (d[i] - (float)sd[c] - xh * (float)sdx[c]);
            } else {
                d[i] = k * d[i];
            }
        }
}

/* Bin j forward for the B spectra of x: rows (b, l) of the bin's network;
 * writes feat[:, 2j .. 2j+1]. Serial (one thread owns the bin). */
static void bin_forward(const Binned *s, BinnedAct *t, const SpParams *p, int j, const float *x,
                        int B, int train, float *feat, int tid) {
    const int Hd = s->Hd, L = t->L, D = NOUT * s->NB;
    const int l0 = t->start[j], nj = t->start[j + 1] - l0, N = B * nj;
    const int *ix = s->idx + (size_t)j * T_NB;
    BinBufs q = bin_bufs(t, Hd, B, j, tid);
#define D_(k) sp_params_data(p, ix[k])
    const float du = L > 1 ? 1.0f / (float)(L - 1) : 0.0f;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < nj; l++) {
            float *r = q.X + ((size_t)b * nj + l) * 2;
            r[0] = (float)(l0 + l) * du;
            r[1] = x[(size_t)b * L + l0 + l];
        }
    /* z1 = X W1^T + b1 */
    const float *b1 = D_(T_B1);
    for (int n = 0; n < N; n++) memcpy(q.z1 + (size_t)n * Hd, b1, sizeof(float) * (size_t)Hd);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Hd, 2, 1.0f, q.X, 2, D_(T_W1), 2,
                1.0f, q.z1, Hd);
    float *m1 = t->m1 + (size_t)j * Hd, *r1 = t->r1 + (size_t)j * Hd;
    float *m2 = t->m2 + (size_t)j * NOUT, *r2 = t->r2 + (size_t)j * NOUT;
    bn_stats(m1, r1, q.z1, N, Hd, train, D_(T_RM1), D_(T_RV1), q.acc);
    bn_apply(q.a1, q.z1, m1, r1, D_(T_G1), D_(T_BE1), N, Hd, 1);
    /* z2 = a1 W2^T + b2 */
    const float *b2 = D_(T_B2);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < NOUT; k++) q.z2[(size_t)n * NOUT + k] = b2[k];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, NOUT, Hd, 1.0f, q.a1, Hd, D_(T_W2), Hd,
                1.0f, q.z2, NOUT);
    bn_stats(m2, r2, q.z2, N, NOUT, train, D_(T_RM2), D_(T_RV2), q.acc);
    bn_apply(q.y2, q.z2, m2, r2, D_(T_G2), D_(T_BE2), N, NOUT, 0);
    /* sigmoid, then the mean over the bin's points */
    for (int b = 0; b < B; b++) {
        double acc[NOUT] = {0.0};
        for (int l = 0; l < nj; l++) {
            const size_t r = ((size_t)b * nj + l) * NOUT;
            for (int k = 0; k < NOUT; k++) {
                const float v = 1.0f / (1.0f + expf(-q.y2[r + k]));
                q.s2[r + k] = v;
                acc[k] += (double)v;
            }
        }
        for (int k = 0; k < NOUT; k++) feat[(size_t)b * D + NOUT * j + k] = (float)(acc[k] / nj);
    }
#undef D_
}

static void bin_backward(const Binned *s, BinnedAct *t, const SpParams *p, int j,
                         const float *dfeat, int B, int train, int tid) {
    const int Hd = s->Hd, D = NOUT * s->NB;
    const int l0 = t->start[j], nj = t->start[j + 1] - l0, N = B * nj;
    const int *ix = s->idx + (size_t)j * T_NB;
    BinBufs q = bin_bufs(t, Hd, B, j, tid);
#define D_(k) sp_params_data(p, ix[k])
#define G_(k) sp_params_grad(p, ix[k])
    const float *m1 = t->m1 + (size_t)j * Hd, *r1 = t->r1 + (size_t)j * Hd;
    const float *m2 = t->m2 + (size_t)j * NOUT, *r2 = t->r2 + (size_t)j * NOUT;
    /* mean and sigmoid: dy2 = dfeat / n_j * s (1 - s) */
    const float inv = 1.0f / (float)nj;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < nj; l++) {
            const size_t r = ((size_t)b * nj + l) * NOUT;
            for (int k = 0; k < NOUT; k++) {
                const float sv = q.s2[r + k];
                q.dy2[r + k] = dfeat[(size_t)b * D + NOUT * j + k] * inv * sv * (1.0f - sv);
            }
        }
    bn_backward(q.dy2, q.z2, m2, r2, D_(T_G2), G_(T_G2), G_(T_BE2), N, NOUT, train, q.acc);
    /* a1 = relu(BN1(z1)), recomputed exactly as in the forward */
    bn_apply(q.a1, q.z1, m1, r1, D_(T_G1), D_(T_BE1), N, Hd, 1);
    /* second Linear: dW2 += dz2^T a1, db2 += sum dz2, da1 = dz2 W2 */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NOUT, Hd, N, 1.0f, q.dy2, NOUT, q.a1, Hd,
                1.0f, G_(T_W2), Hd);
    float *db2 = G_(T_B2);
    for (int k = 0; k < NOUT; k++) {
        double acc = 0.0;
        for (int n = 0; n < N; n++) acc += (double)q.dy2[(size_t)n * NOUT + k];
        db2[k] += (float)acc;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Hd, NOUT, 1.0f, q.dy2, NOUT,
                D_(T_W2), Hd, 0.0f, q.da1, Hd);
    for (size_t i = 0; i < (size_t)N * Hd; i++)
        if (!(q.a1[i] > 0.0f)) q.da1[i] = 0.0f;
    bn_backward(q.da1, q.z1, m1, r1, D_(T_G1), G_(T_G1), G_(T_BE1), N, Hd, train, q.acc);
    /* first Linear: dW1 += dz1^T X, db1 += sum dz1 */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Hd, 2, N, 1.0f, q.da1, Hd, q.X, 2, 1.0f,
                G_(T_W1), 2);
    double *acc = q.acc;
    for (int c = 0; c < Hd; c++) acc[c] = 0.0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < Hd; c++) acc[c] += (double)q.da1[(size_t)n * Hd + c];
    float *db1 = G_(T_B1);
    for (int c = 0; c < Hd; c++) db1[c] += (float)acc[c];
#undef D_
#undef G_
}

/* One parallel region: each thread owns whole bins (static schedule), so every
 * bin's result and parameter gradients are the same for any thread count. */
static void binned_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                           float *feat) {
    const Binned *s = e->impl;
    BinnedAct *t = a->impl;
    const int train = mode == SP_ENC_TRAIN;
#pragma omp parallel for schedule(static) if ((size_t)B * t->L * s->Hd >= PAR_MIN)
    for (int j = 0; j < s->NB; j++)
        bin_forward(s, t, &e->params, j, x, B, train, feat, omp_get_thread_num());
}

static void binned_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Binned *s = e->impl;
    BinnedAct *t = a->impl;
    const int train = a->mode == SP_ENC_TRAIN;
#pragma omp parallel for schedule(static) if ((size_t)B * t->L * s->Hd >= PAR_MIN)
    for (int j = 0; j < s->NB; j++)
        bin_backward(s, t, &e->params, j, dfeat, B, train, omp_get_thread_num());
}

const SpEncArch sp_enc_arch_binned_fcnn = {
    .name = "binned_fcnn",
    .create = binned_create,
    .init = binned_init,
    .length_ok = binned_length_ok,
    .act_create = binned_act_create,
    .act_free = binned_act_free,
    .forward = binned_forward,
    .backward = binned_backward,
    .flops = binned_flops,
    .free_impl = binned_free_impl,
};
