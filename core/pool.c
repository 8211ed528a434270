/* pool.c - max pool (window = stride = k), adaptive average pool (PyTorch
 * bin rule) and global average pool over rows of a (rows, L) map.
 *
 * Dimensions: NC rows (= batch x channels), L / Lin input length, Lout output
 * length. Every row is owned by one iteration, so results are identical for
 * any thread count. Backward adds into dinp. Functions open their own OpenMP
 * region (if-clause on the size): never call them from inside one. Nothing
 * allocates. */
#include <math.h>

#include "sp_layers.h"
#include "sp_layers_util.h"

#define SP_POOL_PAR_MIN 32768

void maxpool1d_forward(float *out, int *idx, const float *inp, int NC, int L, int k) {
    SP_LAYER_CHECK(NC >= 0 && L > 0 && k > 0, "maxpool1d: bad shape NC=%d L=%d k=%d", NC, L, k);
    const int Lo = L / k;
#pragma omp parallel for schedule(static) if ((size_t)NC * L >= SP_POOL_PAR_MIN)
    for (int r = 0; r < NC; r++) {
        const float *x = inp + (size_t)r * L;
        float *y = out + (size_t)r * Lo;
        int *ix = idx + (size_t)r * Lo;
        for (int t = 0; t < Lo; t++) {
            int best = t * k;
            float m = x[best];
            for (int j = 1; j < k; j++) {
                /* strict '>' keeps the first maximum on ties; a NaN wins
                 * (propagates) as in PyTorch */
                float v = x[t * k + j];
                if (v > m || isnan(v)) {
                    m = v;
                    best = t * k + j;
                }
            }
            y[t] = m;
            ix[t] = best;
        }
    }
}

void maxpool1d_backward(float *dinp, const float *dout, const int *idx, int NC, int L, int k) {
    SP_LAYER_CHECK(NC >= 0 && L > 0 && k > 0, "maxpool1d: bad shape NC=%d L=%d k=%d", NC, L, k);
    const int Lo = L / k;
#pragma omp parallel for schedule(static) if ((size_t)NC * L >= SP_POOL_PAR_MIN)
    for (int r = 0; r < NC; r++) {
        float *dx = dinp + (size_t)r * L;
        const float *g = dout + (size_t)r * Lo;
        const int *ix = idx + (size_t)r * Lo;
        for (int t = 0; t < Lo; t++) dx[ix[t]] += g[t];
    }
}

/* Bin i covers [floor(i*Lin/Lout), ceil((i+1)*Lin/Lout)). */
static void adaptive_bin(int i, int Lin, int Lout, int *a, int *b) {
    long long n = (long long)i * Lin, m = (long long)(i + 1) * Lin;
    *a = (int)(n / Lout);
    *b = (int)((m + Lout - 1) / Lout);
}

/* The bins of every output (ab[2i] = start, ab[2i+1] = end), computed once
 * per call instead of two 64-bit divisions per (row, bin); 0 (nothing
 * filled) when Lout exceeds the stack cache. */
#define SP_POOL_BIN_CACHE 2048
static int adaptive_bins(int *ab, int Lin, int Lout) {
    if (Lout > SP_POOL_BIN_CACHE) return 0;
    for (int i = 0; i < Lout; i++) adaptive_bin(i, Lin, Lout, &ab[2 * i], &ab[2 * i + 1]);
    return 1;
}

void adaptive_avgpool1d_forward(float *out, const float *inp, int NC, int Lin, int Lout) {
    SP_LAYER_CHECK(NC >= 0 && Lin > 0 && Lout > 0, "adaptive_avgpool1d: bad shape NC=%d Lin=%d Lout=%d",
                   NC, Lin, Lout);
    int ab[2 * SP_POOL_BIN_CACHE];
    const int cached = adaptive_bins(ab, Lin, Lout);
#pragma omp parallel for schedule(static) if ((size_t)NC * (Lin + Lout) >= SP_POOL_PAR_MIN)
    for (int r = 0; r < NC; r++) {
        const float *x = inp + (size_t)r * Lin;
        float *y = out + (size_t)r * Lout;
        for (int i = 0; i < Lout; i++) {
            int a, b;
            if (cached) {
                a = ab[2 * i];
                b = ab[2 * i + 1];
            } else {
                adaptive_bin(i, Lin, Lout, &a, &b);
            }
            double acc = 0.0;
            for (int j = a; j < b; j++) acc += (double)x[j];
            y[i] = (float)(acc / (double)(b - a));
        }
    }
}

void adaptive_avgpool1d_backward(float *dinp, const float *dout, int NC, int Lin, int Lout) {
    SP_LAYER_CHECK(NC >= 0 && Lin > 0 && Lout > 0, "adaptive_avgpool1d: bad shape NC=%d Lin=%d Lout=%d",
                   NC, Lin, Lout);
    int ab[2 * SP_POOL_BIN_CACHE];
    const int cached = adaptive_bins(ab, Lin, Lout);
#pragma omp parallel for schedule(static) if ((size_t)NC * (Lin + Lout) >= SP_POOL_PAR_MIN)
    for (int r = 0; r < NC; r++) {
        float *dx = dinp + (size_t)r * Lin;
        const float *g = dout + (size_t)r * Lout;
        for (int i = 0; i < Lout; i++) {
            int a, b;
            if (cached) {
                a = ab[2 * i];
                b = ab[2 * i + 1];
            } else {
                adaptive_bin(i, Lin, Lout, &a, &b);
            }
            float gi = g[i] / (float)(b - a);
            for (int j = a; j < b; j++) dx[j] += gi;
        }
    }
}

void global_avgpool1d_forward(float *out, const float *inp, int B, int C, int L) {
    SP_LAYER_CHECK(B >= 0 && C > 0 && L > 0, "global_avgpool1d: bad shape B=%d C=%d L=%d", B, C, L);
    const size_t rows = (size_t)B * C;
#pragma omp parallel for schedule(static) if (rows * L >= SP_POOL_PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        out[r] = (float)(sp_sum_f(inp + r * L, (size_t)L) / L);
    }
}

void global_avgpool1d_backward(float *dinp, const float *dout, int B, int C, int L) {
    SP_LAYER_CHECK(B >= 0 && C > 0 && L > 0, "global_avgpool1d: bad shape B=%d C=%d L=%d", B, C, L);
    const size_t rows = (size_t)B * C;
#pragma omp parallel for schedule(static) if (rows * L >= SP_POOL_PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        float *dx = dinp + r * L;
        float g = dout[r] / (float)L;
        for (int j = 0; j < L; j++) dx[j] += g;
    }
}
