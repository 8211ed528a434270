/* lstm.c - single-layer LSTM forward and back-propagation through time
 * (contract and layouts in sp_rnn.h).
 *
 * Dimensions: B batch, T steps, E inputs, H hidden units; G4 = 4H gate rows.
 * Forward, per thread and its block of samples [r0, r1):
 *   1. gates (rows, T, 4H) = b_ih + b_hh + inp W_ih^T      one sgemm (rows*T x 4H x E)
 *   2. for t: gates[:, t] += h_{t-1} W_hh^T                 one sgemm (rows x 4H x H)
 *      then the elementwise cell update; the activated gates and c_t are kept.
 * Backward, same blocks, t = T-1 .. 0:
 *   dh = dout_t + dh_carry, dc = dc_carry + dh o (1 - tanh^2 c_t),
 *   dz = [dc g i(1-i), dc c_{t-1} f(1-f), dc i (1-g^2), dh tanh(c_t) o(1-o)],
 *   dc_carry = dc f, dh_carry = dz W_hh (one sgemm per step);
 *   then dinp += dz W_ih for the block (one sgemm). After a barrier each thread
 *   owns a block of the 4H gate rows of dW_ih (one sgemm over all B*T rows),
 *   dW_hh (one sgemm per sample: pairs (t, t-1) must not cross samples) and
 *   the biases (double sums in a fixed order).
 * Nothing allocates; each function opens its own parallel region.
 */
#include <math.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_layers_util.h"
#include "sp_rnn.h"

static void lstm_check(const SpLSTM *s) {
    SP_LAYER_CHECK(s->B >= 0 && s->T > 0 && s->E > 0 && s->H > 0,
                   "lstm: bad shape B=%d T=%d E=%d H=%d", s->B, s->T, s->E, s->H);
}

size_t lstm_cache_floats(const SpLSTM *s) { return (size_t)s->B * s->T * 5 * (size_t)s->H; }

size_t lstm_work_floats(const SpLSTM *s) {
    return (size_t)s->B * s->T * 4 * (size_t)s->H + 2 * (size_t)s->B * s->H;
}

double lstm_flops(const SpLSTM *s) {
    return 2.0 * (double)s->T * 4.0 * s->H * ((double)s->E + s->H);
}

static inline float sigm(float z) { return 1.0f / (1.0f + expf(-z)); }

void lstm_forward(float *out, float *cache, const float *inp, const float *w_ih,
                  const float *w_hh, const float *b_ih, const float *b_hh, const SpLSTM *s) {
    lstm_check(s);
    const int B = s->B, T = s->T, E = s->E, H = s->H, G4 = 4 * s->H;
    if (B == 0) return;
    float *gates = cache;
    float *cst = cache + (size_t)B * T * G4;
#pragma omp parallel
    {
        size_t r0, r1;
        sp_layer_block((size_t)B, omp_get_num_threads(), omp_get_thread_num(), &r0, &r1);
        if (r1 > r0) {
            const int nb = (int)(r1 - r0);
            float *gb = gates + r0 * T * G4;
            for (size_t r = 0; r < (size_t)nb * T; r++) {
                float *z = gb + r * G4;
                for (int j = 0; j < G4; j++)
                    z[j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb * T, G4, E, 1.0f,
                        inp + r0 * T * E, E, w_ih, E, 1.0f, gb, G4);
            for (int t = 0; t < T; t++) {
                if (t > 0)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, G4, H, 1.0f,
                                out + (r0 * T + (size_t)t - 1) * H, T * H, w_hh, H, 1.0f,
                                gates + (r0 * T + (size_t)t) * G4, T * G4);
                for (size_t b = r0; b < r1; b++) {
                    const size_t bt = b * T + (size_t)t;
                    float *z = gates + bt * G4;
                    float *c = cst + bt * H;
                    const float *cp = t > 0 ? c - H : NULL;
                    float *h = out + bt * H;
                    for (int j = 0; j < H; j++) {
                        const float i = sigm(z[j]), f = sigm(z[H + j]);
                        const float g = tanhf(z[2 * H + j]), o = sigm(z[3 * H + j]);
                        const float cv = cp ? f * cp[j] + i * g : i * g;
                        z[j] = i;
                        z[H + j] = f;
                        z[2 * H + j] = g;
                        z[3 * H + j] = o;
                        c[j] = cv;
                        h[j] = o * tanhf(cv);
                    }
                }
            }
        }
    }
}

void lstm_backward(float *dinp, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh,
                   const float *dout, const float *inp, const float *out, const float *cache,
                   const float *w_ih, const float *w_hh, const SpLSTM *s, float *work) {
    lstm_check(s);
    const int B = s->B, T = s->T, E = s->E, H = s->H, G4 = 4 * s->H;
    if (B == 0) return;
    const float *gates = cache;
    const float *cst = cache + (size_t)B * T * G4;
    float *dG = work;
    float *dhn = work + (size_t)B * T * G4;
    float *dcn = dhn + (size_t)B * H;
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        size_t r0, r1;
        sp_layer_block((size_t)B, nt, tid, &r0, &r1);
        if (r1 > r0) {
            const int nb = (int)(r1 - r0);
            memset(dhn + r0 * H, 0, sizeof(float) * (size_t)nb * H);
            memset(dcn + r0 * H, 0, sizeof(float) * (size_t)nb * H);
            for (int t = T - 1; t >= 0; t--) {
                for (size_t b = r0; b < r1; b++) {
                    const size_t bt = b * T + (size_t)t;
                    const float *a = gates + bt * G4;
                    const float *c = cst + bt * H;
                    const float *cp = t > 0 ? c - H : NULL;
                    const float *go = dout + bt * H;
                    float *d = dG + bt * G4;
                    float *dh = dhn + b * H, *dc = dcn + b * H;
                    for (int j = 0; j < H; j++) {
                        const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
                        const float tc = tanhf(c[j]);
                        const float dhv = go[j] + dh[j];
                        const float dcv = dc[j] + dhv * o * (1.0f - tc * tc);
                        d[j] = dcv * g * i * (1.0f - i);
                        d[H + j] = cp ? dcv * cp[j] * f * (1.0f - f) : 0.0f;
                        d[2 * H + j] = dcv * i * (1.0f - g * g);
                        d[3 * H + j] = dhv * tc * o * (1.0f - o);
                        dc[j] = dcv * f;
                    }
                }
                if (t > 0)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, H, G4, 1.0f,
                                dG + (r0 * T + (size_t)t) * G4, T * G4, w_hh, H, 0.0f,
                                dhn + r0 * H, H);
            }
            if (dinp)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb * T, E, G4, 1.0f,
                            dG + r0 * T * G4, G4, w_ih, E, 1.0f, dinp + r0 * T * E, E);
        }
#pragma omp barrier
        size_t o0, o1;
        sp_layer_block((size_t)G4, nt, tid, &o0, &o1);
        if (o1 > o0) {
            const int no = (int)(o1 - o0);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, no, E, B * T, 1.0f, dG + o0, G4,
                        inp, E, 1.0f, dw_ih + o0 * E, E);
            if (T > 1)
                for (size_t b = 0; b < (size_t)B; b++)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, no, H, T - 1, 1.0f,
                                dG + (b * T + 1) * G4 + o0, G4, out + b * T * H, H, 1.0f,
                                dw_hh + o0 * H, H);
            if (db_ih || db_hh)
                for (size_t o = o0; o < o1; o++) {
                    double acc = 0.0;
                    for (size_t r = 0; r < (size_t)B * T; r++) acc += (double)dG[r * G4 + o];
                    if (db_ih) db_ih[o] += (float)acc;
                    if (db_hh) db_hh[o] += (float)acc;
                }
        }
    }
}
