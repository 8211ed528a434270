/* synth_schuetzke.c - the Schuetzke et al. (2023) universal synthetic spectra,
 * bit-exact with the upstream numpy/scipy scripts (reference/synthetic.md
 * Part A). Build with -ffp-contract=off (the project default): an FMA in the
 * blur changes the last bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_data.h"

#define SHIFT_RANGE 50
#define VAR_RANGE 0.05
#define N_TRAIN 50
#define N_VAL 10

int synth_rows_per_class(SpSynthSet set, SpSynthSplit split) {
    switch (split) {
    case SP_SPLIT_TRAIN: return N_TRAIN;
    case SP_SPLIT_VAL: return N_VAL;
    case SP_SPLIT_TEST: return set == SP_SYNTH_CHALLENGE ? 6 : 9;
    }
    return 0;
}

static int clip_pos(int64_t p) { return p < 0 ? 0 : p > SP_SYNTH_L - 1 ? SP_SYNTH_L - 1 : (int)p; }
static double clip_h(double h) { return h < 0.0 ? 0.0 : h > 2.0 ? 2.0 : h; }

/* One train/val sample (§A5): K shift draws, K height draws (challenge: none
 * for a height of exactly 1.0), one sigma draw. */
static void draw_row(SpRng *rng, SpSynthSet set, int c, SpSynthRow *r) {
    SpSynthClass k = synth_class(set, c);
    r->label = c;
    r->npk = k.npk;
    for (int i = 0; i < k.npk; i++)
        r->pos[i] = clip_pos(sp_rng_integers(rng, (int64_t)k.pos[i] - SHIFT_RANGE,
                                             (int64_t)k.pos[i] + SHIFT_RANGE));
    for (int i = 0; i < k.npk; i++) {
        double h = k.h[i];
        if (set == SP_SYNTH_CHALLENGE && h == 1.0) {
            r->h[i] = 1.0;
            continue;
        }
        double lo = h - VAR_RANGE, hi = h + VAR_RANGE;
        r->h[i] = clip_h(sp_rng_uniform(rng, lo, hi));
    }
    r->sigma = sp_rng_uniform(rng, 2.0, 5.0);
}

SpStatus synth_train_val_params(SpSynthSet set, SpSynthRow *train, SpSynthRow *val, SpRng *out) {
    SpRng rng;
    sp_rng_numpy2022(&rng);
    const int nc = synth_num_classes(set);
    SpSynthRow tmp;
    for (int c = 0; c < nc; c++) {
        for (int j = 0; j < N_TRAIN; j++) draw_row(&rng, set, c, train ? &train[c * N_TRAIN + j] : &tmp);
        for (int j = 0; j < N_VAL; j++) draw_row(&rng, set, c, val ? &val[c * N_VAL + j] : &tmp);
    }
    if (out) *out = rng;
    return SP_OK;
}

/* Test rows (§A7, §A8): a whole-pattern shift s and height offset d. */
static void test_row(SpSynthSet set, int c, int shift, int hsign, double d, SpSynthRow *r) {
    SpSynthClass k = synth_class(set, c);
    r->label = c;
    r->npk = k.npk;
    r->sigma = 2.0;
    for (int i = 0; i < k.npk; i++) {
        r->pos[i] = clip_pos((int64_t)k.pos[i] + shift);
        double h = k.h[i];
        if (h != 1.0 && hsign > 0) h = h + d;
        if (h != 1.0 && hsign < 0) h = h - d;
        r->h[i] = clip_h(h);
    }
}

void synth_test_params(SpSynthSet set, SpSynthRow *test) {
    const int nc = synth_num_classes(set);
    if (set == SP_SYNTH_GENERAL) {
        for (int c = 0; c < nc; c++) {
            int s = (c == 8 || c == 318) ? 17 : 30;
            double d = (c == 164 || c == 219 || c == 281 || c == 347) ? 0.025 : 0.04;
            const int sh[3] = {0, -s, s};
            for (int v = 0; v < 9; v++)
                test_row(set, c, sh[v % 3], v < 3 ? 0 : v < 6 ? 1 : -1, d, &test[c * 9 + v]);
        }
        return;
    }
    /* challenge: layouts per class group; entries (shift sign, height sign) */
    const int s = 30;
    const double d = 0.03;
    for (int c = 0; c < nc; c++) {
        int lay[6][2];
        int g; /* layout id */
        if (c <= 8 || c == 20 || c == 23 || c == 26) g = 0;
        else if (c == 9 || c == 12 || c == 15) g = 1;
        else if (c == 10 || c == 13 || c == 16) g = 2;
        else if (c == 11 || c == 14 || c == 17) g = 3;
        else if (c == 18 || c == 21 || c == 24) g = 4;
        else g = 5; /* 19, 22, 25 */
        static const int L[6][6][2] = {
            {{0, 0}, {-1, 0}, {1, 0}, {0, -1}, {-1, -1}, {1, -1}},
            {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, -1}, {1, -1}},
            {{-1, 0}, {1, 0}, {-1, 1}, {1, 1}, {-1, -1}, {1, -1}},
            {{0, 0}, {-1, 0}, {0, 1}, {-1, 1}, {0, -1}, {-1, -1}},
            {{0, 0}, {-1, 0}, {1, 0}, {0, 1}, {-1, 1}, {1, 1}},
            {{0, -1}, {-1, -1}, {1, -1}, {0, 1}, {-1, 1}, {1, 1}},
        };
        memcpy(lay, L[g], sizeof lay);
        for (int v = 0; v < 6; v++) test_row(set, c, lay[v][0] * s, lay[v][1], d, &test[c * 6 + v]);
    }
}

/* numpy DOUBLE_pairwise_sum (loops_utils.h.src), unit stride. */
double synth_pairwise_sum(const double *a, int64_t n) {
    if (n < 8) {
        double res = 0.0;
        for (int64_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        int64_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return synth_pairwise_sum(a, n2) + synth_pairwise_sum(a + n2, n - n2);
}

/* numpy/SVML float64 exp(-k^2/8) for k = 0..8 (sigma = 2), §A6. */
static const double k_svml_sigma2[9] = {
    0x1p+0,
    0x1.c3d6a24ed8221p-1,
    0x1.368b2fc6f960ap-1,
    0x1.4c71b2477ab20p-2,
    0x1.152aaa3bf81cbp-3,
    0x1.67ee6d9ff847bp-5,
    0x1.6c0504695c418p-7,
    0x1.1eb805a03296cp-9,
    0x1.5fc21041027acp-12,
};

/* scipy _gaussian_kernel1d: w[k] for k = 0..r (symmetric), returns r. */
static int gauss_kernel(double sigma, SpSynthExp mode, double *w) {
    int r = (int)(4.0 * sigma + 0.5);
    double sigma2 = sigma * sigma;
    double c = -0.5 / sigma2;
    double e[2 * 64 + 1];
    for (int k = -r; k <= r; k++) {
        int ak = k < 0 ? -k : k;
        double v;
        if (mode == SP_EXP_SVML && sigma == 2.0)
            v = k_svml_sigma2[ak];
        else
            v = exp(c * (double)(k * k));
        e[k + r] = v;
    }
    double S = synth_pairwise_sum(e, 2 * r + 1);
    for (int k = 0; k <= r; k++) w[k] = e[k + r] / S;
    return r;
}

void synth_blur_row(const SpSynthRow *row, SpSynthExp exp_mode, double *y) {
    double x[SP_SYNTH_L];
    double w[2 * 64 + 1];
    memset(x, 0, sizeof x);
    for (int i = 0; i < SP_SYNTH_L; i++) y[i] = 0.0;
    for (int k = 0; k < row->npk; k++) x[row->pos[k]] = row->h[k]; /* assignment: later wins */
    if (!(row->sigma > 0.0) || row->sigma > 15.0) return; /* never in the benchmark */
    int r = gauss_kernel(row->sigma, exp_mode, w);
    /* Only outputs within r of a peak can be non-zero; elsewhere scipy's sum
     * is exactly 0.0, so computing just those outputs is bit-identical. */
    unsigned char mark[SP_SYNTH_L];
    memset(mark, 0, sizeof mark);
    for (int k = 0; k < row->npk; k++) {
        int a = row->pos[k] - r, b = row->pos[k] + r;
        if (a < 0) a = 0;
        if (b > SP_SYNTH_L - 1) b = SP_SYNTH_L - 1;
        memset(mark + a, 1, (size_t)(b - a + 1));
    }
    for (int i = 0; i < SP_SYNTH_L; i++) {
        if (!mark[i]) continue;
        double acc = x[i] * w[0];
        for (int j = r; j >= 1; j--) {
            double lo = i - j >= 0 ? x[i - j] : 0.0;
            double hi = i + j < SP_SYNTH_L ? x[i + j] : 0.0;
            acc += (lo + hi) * w[j];
        }
        y[i] = acc;
    }
}

SpStatus synth_schuetzke_params(SpSynthSet set, SpSynthSplit split, SpSynthRow **out, int64_t *n_out) {
    const int nc = synth_num_classes(set);
    const int64_t n = (int64_t)nc * synth_rows_per_class(set, split);
    *out = NULL;
    *n_out = 0;
    SpSynthRow *rows = malloc((size_t)n * sizeof *rows);
    if (!rows) SP_FAIL(SP_ENOMEM, "out of memory (synthetic parameters)");
    if (split == SP_SPLIT_TEST) {
        synth_test_params(set, rows);
    } else {
        SpSynthRow *other = malloc((size_t)nc * (split == SP_SPLIT_TRAIN ? N_VAL : N_TRAIN) * sizeof *other);
        if (!other) {
            free(rows);
            SP_FAIL(SP_ENOMEM, "out of memory (synthetic parameters)");
        }
        if (split == SP_SPLIT_TRAIN)
            synth_train_val_params(set, rows, other, NULL);
        else
            synth_train_val_params(set, other, rows, NULL);
        free(other);
    }
    *out = rows;
    *n_out = n;
    return SP_OK;
}

SpStatus synth_schuetzke_render(const SpSynthRow *rows, int64_t n, SpSynthExp exp_mode, int max_norm,
                                float *x, int32_t *labels) {
    int failed = 0;
#pragma omp parallel
    {
        double *y = malloc(SP_SYNTH_L * sizeof(double));
        if (!y) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            if (!y) continue;
            synth_blur_row(&rows[i], exp_mode, y);
            float *o = x + (size_t)i * SP_SYNTH_L;
            double m = y[0];
            for (int j = 1; j < SP_SYNTH_L; j++)
                if (y[j] > m) m = y[j];
            if (max_norm && m > 0.0)
                for (int j = 0; j < SP_SYNTH_L; j++) o[j] = (float)(y[j] / m);
            else
                for (int j = 0; j < SP_SYNTH_L; j++) o[j] = (float)y[j];
            if (labels) labels[i] = rows[i].label;
        }
        free(y);
    }
    if (failed) SP_FAIL(SP_ENOMEM, "out of memory (blur buffers)");
    return SP_OK;
}

SpStatus synth_schuetzke_generate(SpSynthSet set, SpSynthSplit split, SpSynthExp exp_mode,
                                  int max_norm, float *x, int32_t *labels) {
    SpSynthRow *rows;
    int64_t n;
    SP_TRY(synth_schuetzke_params(set, split, &rows, &n));
    SpStatus rc = synth_schuetzke_render(rows, n, exp_mode, max_norm, x, labels);
    free(rows);
    return rc;
}
