/* activation.c - elementwise activations, softmax over rows, row L2 norm.
 *
 * Dimensions: n elements; (N, D) rows of D features.
 * Elementwise functions allow out == inp; their backward reads the forward
 * INPUT and adds into dinp. Row functions run one row per iteration in
 * double where a row is reduced. Large loops open their own OpenMP region
 * (if-clause on the size), so never call these from inside one. Nothing
 * allocates. */
#include <math.h>

#include "sp_layers.h"
#include "sp_layers_util.h"

/* Below this many elements a parallel region costs more than it saves. */
#define SP_ACT_PAR_MIN 32768

void relu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n >= SP_ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n >= SP_ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

void leaky_relu_forward(float *out, const float *inp, size_t n, float slope) {
#pragma omp parallel for schedule(static) if (n >= SP_ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : slope * inp[i];
}

void leaky_relu_backward(float *dinp, const float *dout, const float *inp, size_t n, float slope) {
#pragma omp parallel for schedule(static) if (n >= SP_ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : slope * dout[i];
}

void softmax_forward(float *out, const float *inp, int N, int D) {
    SP_LAYER_CHECK(N >= 0 && D > 0, "softmax: bad shape N=%d D=%d", N, D);
#pragma omp parallel for schedule(static) if ((size_t)N * D >= SP_ACT_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *y = out + (size_t)n * D;
        const float mx = sp_max_f(x, (size_t)D);
        const double sum = sp_exp_shift_f(y, x, (size_t)D, mx);
        const float inv = (float)(1.0 / sum);
        for (int d = 0; d < D; d++) y[d] *= inv;
    }
}

void softmax_backward(float *dinp, const float *dout, const float *out, int N, int D) {
    SP_LAYER_CHECK(N >= 0 && D > 0, "softmax: bad shape N=%d D=%d", N, D);
#pragma omp parallel for schedule(static) if ((size_t)N * D >= SP_ACT_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * D, *y = out + (size_t)n * D;
        float *dx = dinp + (size_t)n * D;
        const float fdot = (float)sp_dot_f(g, y, (size_t)D);
        for (int d = 0; d < D; d++) dx[d] += y[d] * (g[d] - fdot);
    }
}

void l2norm_forward(float *out, float *norms, const float *inp, int N, int D, float eps) {
    SP_LAYER_CHECK(N >= 0 && D > 0, "l2norm: bad shape N=%d D=%d", N, D);
#pragma omp parallel for schedule(static) if ((size_t)N * D >= SP_ACT_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *y = out + (size_t)n * D;
        const double nrm = sqrt(sp_dot_f(x, x, (size_t)D));
        norms[n] = (float)nrm;
        double den = nrm > (double)eps ? nrm : (double)eps;
        float inv = (float)(1.0 / den);
        for (int d = 0; d < D; d++) y[d] = x[d] * inv;
    }
}

/* y = x / max(|x|, eps). Where |x| >= eps: dx = (g - y (y.g)) / |x|; below eps
 * the denominator is the constant eps: dx = g / eps (PyTorch clamp_min rule). */
void l2norm_backward(float *dinp, const float *dout, const float *inp, const float *norms, int N,
                     int D, float eps) {
    SP_LAYER_CHECK(N >= 0 && D > 0, "l2norm: bad shape N=%d D=%d", N, D);
#pragma omp parallel for schedule(static) if ((size_t)N * D >= SP_ACT_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D, *g = dout + (size_t)n * D;
        float *dx = dinp + (size_t)n * D;
        double nrm = (double)norms[n];
        if (nrm >= (double)eps && nrm > 0.0) {
            const double xg = sp_dot_f(x, g, (size_t)D);
            /* dx = g/|x| - x (x.g)/|x|^3 */
            float a = (float)(1.0 / nrm), c = (float)(xg / (nrm * nrm * nrm));
            for (int d = 0; d < D; d++) dx[d] += a * g[d] - c * x[d];
        } else {
            float a = 1.0f / eps;
            for (int d = 0; d < D; d++) dx[d] += a * g[d];
        }
    }
}
