/* ref_lstm.h - test-only double-precision reference LSTM (core/sp_rnn.h).
 *
 * Straight loops in double, no BLAS, no OpenMP: the maths the production
 * float layer is checked against (STYLE.md 3, tiers A and B). Same layouts
 * and gate order as sp_rnn.h: inp (B,T,E), out (B,T,H), w_ih (4H,E),
 * w_hh (4H,H), b_ih, b_hh (4H) or NULL; gates [i; f; g; o]; zero initial state.
 * Forward overwrites its outputs; backward ADDS into every gradient (NULL
 * gradients are skipped) and recomputes the forward itself. Allocates
 * (tests only).
 */
#ifndef REF_LSTM_H
#define REF_LSTM_H

/* c_out (B,T,H) may be NULL. */
void ref_lstm_forward(double *out, double *c_out, const double *inp, const double *w_ih,
                      const double *w_hh, const double *b_ih, const double *b_hh, int B, int T,
                      int E, int H);
void ref_lstm_backward(double *dinp, double *dw_ih, double *dw_hh, double *db_ih, double *db_hh,
                       const double *dout, const double *inp, const double *w_ih,
                       const double *w_hh, const double *b_ih, const double *b_hh, int B, int T,
                       int E, int H);

#endif
