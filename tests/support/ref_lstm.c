/* ref_lstm.c - double-precision reference LSTM (see ref_lstm.h). */
#include "ref_lstm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }

/* Forward keeping the activated gates acts (B,T,4H) and cells c (B,T,H). */
static void fwd(double *out, double *c, double *acts, const double *inp, const double *w_ih,
                const double *w_hh, const double *b_ih, const double *b_hh, int B, int T, int E,
                int H) {
    const int G4 = 4 * H;
    double *z = malloc(sizeof(double) * (size_t)G4);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const double *x = inp + ((size_t)b * T + t) * E;
            const double *hp = t > 0 ? out + ((size_t)b * T + t - 1) * H : NULL;
            const double *cp = t > 0 ? c + ((size_t)b * T + t - 1) * H : NULL;
            for (int r = 0; r < G4; r++) {
                double acc = (b_ih ? b_ih[r] : 0.0) + (b_hh ? b_hh[r] : 0.0);
                for (int k = 0; k < E; k++) acc += w_ih[(size_t)r * E + k] * x[k];
                if (hp)
                    for (int k = 0; k < H; k++) acc += w_hh[(size_t)r * H + k] * hp[k];
                z[r] = acc;
            }
            double *a = acts + ((size_t)b * T + t) * G4;
            double *cc = c + ((size_t)b * T + t) * H;
            double *h = out + ((size_t)b * T + t) * H;
            for (int j = 0; j < H; j++) {
                double i = sigm(z[j]), f = sigm(z[H + j]), g = tanh(z[2 * H + j]),
                       o = sigm(z[3 * H + j]);
                a[j] = i;
                a[H + j] = f;
                a[2 * H + j] = g;
                a[3 * H + j] = o;
                cc[j] = (cp ? f * cp[j] : 0.0) + i * g;
                h[j] = o * tanh(cc[j]);
            }
        }
    }
    free(z);
}

void ref_lstm_forward(double *out, double *c_out, const double *inp, const double *w_ih,
                      const double *w_hh, const double *b_ih, const double *b_hh, int B, int T,
                      int E, int H) {
    size_t n = (size_t)B * T;
    double *c = malloc(sizeof(double) * n * H);
    double *acts = malloc(sizeof(double) * n * 4 * H);
    fwd(out, c, acts, inp, w_ih, w_hh, b_ih, b_hh, B, T, E, H);
    if (c_out) memcpy(c_out, c, sizeof(double) * n * H);
    free(c);
    free(acts);
}

void ref_lstm_backward(double *dinp, double *dw_ih, double *dw_hh, double *db_ih, double *db_hh,
                       const double *dout, const double *inp, const double *w_ih,
                       const double *w_hh, const double *b_ih, const double *b_hh, int B, int T,
                       int E, int H) {
    const int G4 = 4 * H;
    size_t n = (size_t)B * T;
    double *out = malloc(sizeof(double) * n * H);
    double *c = malloc(sizeof(double) * n * H);
    double *acts = malloc(sizeof(double) * n * G4);
    double *dz = malloc(sizeof(double) * (size_t)G4);
    double *dh = malloc(sizeof(double) * (size_t)H);
    double *dc = malloc(sizeof(double) * (size_t)H);
    fwd(out, c, acts, inp, w_ih, w_hh, b_ih, b_hh, B, T, E, H);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < H; j++) dh[j] = dc[j] = 0.0;
        for (int t = T - 1; t >= 0; t--) {
            size_t bt = (size_t)b * T + t;
            const double *a = acts + bt * G4, *cc = c + bt * H;
            const double *cp = t > 0 ? cc - H : NULL;
            const double *hp = t > 0 ? out + (bt - 1) * H : NULL;
            const double *x = inp + bt * E;
            for (int j = 0; j < H; j++) {
                double i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
                double tc = tanh(cc[j]);
                double dhv = dout[bt * H + j] + dh[j];
                double dcv = dc[j] + dhv * o * (1.0 - tc * tc);
                dz[j] = dcv * g * i * (1.0 - i);
                dz[H + j] = (cp ? dcv * cp[j] : 0.0) * f * (1.0 - f);
                dz[2 * H + j] = dcv * i * (1.0 - g * g);
                dz[3 * H + j] = dhv * tc * o * (1.0 - o);
                dc[j] = dcv * f;
            }
            for (int k = 0; k < H; k++) {
                double acc = 0.0;
                for (int r = 0; r < G4; r++) acc += dz[r] * w_hh[(size_t)r * H + k];
                dh[k] = acc;
            }
            for (int r = 0; r < G4; r++) {
                if (db_ih) db_ih[r] += dz[r];
                if (db_hh) db_hh[r] += dz[r];
                if (dw_ih)
                    for (int k = 0; k < E; k++) dw_ih[(size_t)r * E + k] += dz[r] * x[k];
                if (dw_hh && hp)
                    for (int k = 0; k < H; k++) dw_hh[(size_t)r * H + k] += dz[r] * hp[k];
            }
            if (dinp)
                for (int k = 0; k < E; k++) {
                    double acc = 0.0;
                    for (int r = 0; r < G4; r++) acc += dz[r] * w_ih[(size_t)r * E + k];
                    dinp[bt * E + k] += acc;
                }
        }
    }
    free(out);
    free(c);
    free(acts);
    free(dz);
    free(dh);
    free(dc);
}
