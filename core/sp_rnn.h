/* sp_rnn.h - recurrent layers: a single-layer unidirectional LSTM
 * (nn.LSTM semantics, batch_first, zero initial state), forward and full
 * back-propagation through time.
 *
 * Dimension letters: B batch, T time steps, E input features, H hidden units.
 * Layouts (row-major, batch first):
 *   inp   (B, T, E)    input sequence
 *   out   (B, T, H)    hidden states h_t of every step
 *   w_ih  (4H, E)      input weights, gate blocks in PyTorch order [i; f; g; o]
 *   w_hh  (4H, H)      recurrent weights, same gate order
 *   b_ih, b_hh (4H)    biases (either may be NULL: treated as 0)
 * Per step (sigma = logistic): z = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,
 *   i = sigma(z_i), f = sigma(z_f), g = tanh(z_g), o = sigma(z_o),
 *   c_t = f c_{t-1} + i g,  h_t = o tanh(c_t),  h_{-1} = c_{-1} = 0.
 *
 * Cache (lstm_cache_floats = B*T*5H): the activated gates (B, T, 4H) [i f g o]
 * and the cell states c (B, T, H) of the forward pass, read by backward.
 * Work (lstm_work_floats, backward only): gate gradients (B, T, 4H) and the
 * carried dh/dc (B, H) each.
 *
 * Threading: each function opens one OpenMP region. Samples are independent,
 * so every thread runs its contiguous block of samples through all T steps
 * (one single-threaded sgemm per step for the recurrent product; the input
 * projection of all steps of the block is one sgemm). Parameter gradients are
 * owned by gate rows (each thread a block of the 4H rows, contraction over
 * every sample and step): no reductions across threads, deterministic for
 * any thread count. Never call from inside a parallel region. Nothing here
 * allocates.
 */
#ifndef SP_RNN_H
#define SP_RNN_H

#include <stddef.h>

typedef struct { int B, T, E, H; } SpLSTM;

size_t lstm_cache_floats(const SpLSTM *s);
size_t lstm_work_floats(const SpLSTM *s);
/* FLOPs of one forward pass (2 per multiply-add; gate nonlinearities ignored). */
double lstm_flops(const SpLSTM *s);

/* Overwrites out and cache. */
void lstm_forward(float *out, float *cache, const float *inp, const float *w_ih,
                  const float *w_hh, const float *b_ih, const float *b_hh, const SpLSTM *s);

/* dout (B, T, H): gradient w.r.t. every h_t. ADDS into dinp (may be NULL),
 * dw_ih, dw_hh, db_ih, db_hh (the bias gradients may be NULL). inp, out and
 * cache are those of the matching forward. */
void lstm_backward(float *dinp, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh,
                   const float *dout, const float *inp, const float *out, const float *cache,
                   const float *w_ih, const float *w_hh, const SpLSTM *s, float *work);

#endif
