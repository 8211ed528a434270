/* sp_layers.h - layers as forward/backward pairs on a batch (llm.c style).
 *
 * Conventions (every function below):
 * - Layout is row-major, batch first: a 1D feature map is (B, C, L); a
 *   matrix of row vectors is (N, D). Weights use PyTorch layouts: conv
 *   (O, C, K), linear (out, in).
 * - Forward overwrites its outputs. Backward ADDS (+=) into every gradient it
 *   writes, input gradients included: the caller zeroes gradient arenas once
 *   per step. Any gradient pointer documented "may be NULL" is skipped.
 * - Functions that need scratch take `float *work` sized by the matching
 *   *_work_floats() query; the caller allocates it once per (model, batch
 *   size) and reuses it. Nothing here allocates.
 * - Threading policy (one policy for the whole program): functions open their
 *   own OpenMP parallel region over the batch (or rows) and call BLAS with one
 *   thread (sp_blas_init sets OpenBLAS to 1 thread). They must not be called
 *   from inside a parallel region. Results are deterministic for a given
 *   thread count: static schedules, per-thread partial sums for parameter
 *   gradients reduced in thread order, no atomics, no float reduction clauses.
 *   With one thread results are bit-identical from run to run.
 * - Numerics follow PyTorch: BN/LN eps as given, biased variance for
 *   normalisation, two-pass statistics (mean, then sum of squared deviations),
 *   ReLU'(0) = 0, max-pool ties go to the first element.
 */
#ifndef SP_LAYERS_H
#define SP_LAYERS_H

#include <stddef.h>

/* ---------------------------------------------------------------- conv1d */
/* inp (B, C, L), w (O, C, K), bias (O) or NULL, out (B, O, Lo) with
 * Lo = (L + 2*pad - K) / stride + 1 (cross-correlation, zero padding). */
typedef struct { int B, C, L, O, K, stride, pad, Lo; } SpConv1d;

int conv1d_out_len(int L, int K, int stride, int pad);  /* <= 0 if too short */
SpConv1d conv1d_shape(int B, int C, int L, int O, int K, int stride, int pad);
size_t conv1d_work_floats(const SpConv1d *s);  /* covers forward and backward */
void conv1d_forward(float *out, const float *inp, const float *w, const float *bias,
                    const SpConv1d *s, float *work);
/* dinp may be NULL (first layer); dbias may be NULL. */
void conv1d_backward(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, const SpConv1d *s, float *work);

/* ---------------------------------------------------------------- linear */
/* inp (N, in), w (out, in), bias (out) or NULL -> out (N, out): y = x W^T + b */
size_t linear_work_floats(int N, int in, int out);
void linear_forward(float *out, const float *inp, const float *w, const float *bias,
                    int N, int in, int out_f);
void linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                     const float *inp, const float *w, int N, int in, int out_f, float *work);

/* ------------------------------------------------------------- batchnorm */
/* Batch norm over (N, C, L) (use L = 1 for BatchNorm1d on (N, C)).
 * S splits (S = 1: plain BN). Split s holds samples n with n % S == s
 * (interleaved, as the reference's SplitBatchNorm); N % S must be 0.
 * Train: per (split, channel) mean and biased variance over N/S samples x L
 * positions; saves mean[S*C], rstd[S*C] (index s*C + c) for backward. If
 * running_mean/var are non-NULL they are updated with momentum mom:
 *   rm <- mean_s((1-mom) rm + mom mu_s),  rv <- mean_s((1-mom) rv + mom var_s * m/(m-1)),
 * m = (N/S)*L (unbiased). Eval: plain BN with running statistics. */
typedef struct { int N, C, L, S; float eps, momentum; } SpBatchNorm;

void batchnorm_forward_train(float *out, float *mean, float *rstd, const float *inp,
                             const float *gamma, const float *beta,
                             float *running_mean, float *running_var, const SpBatchNorm *s);
void batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var,
                            const SpBatchNorm *s);
size_t batchnorm_work_floats(const SpBatchNorm *s);
void batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *mean, const float *rstd,
                        const float *gamma, const SpBatchNorm *s, float *work);
/* Backward of the eval-mode transform (fine-tuning with frozen statistics). */
void batchnorm_backward_eval(float *dinp, float *dgamma, float *dbeta, const float *dout,
                             const float *inp, const float *gamma, const float *running_mean,
                             const float *running_var, const SpBatchNorm *s, float *work);

/* ------------------------------------------------------------- layernorm */
/* Over the last axis of (N, D); w, b (D) or NULL (no affine). Saves mean[N], rstd[N]. */
size_t layernorm_work_floats(int N, int D);
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int D, float eps);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *mean, const float *rstd, const float *w, int N, int D,
                        float *work);

/* ----------------------------------------------------------- activations */
/* In-place allowed (out == inp). Backward reads the forward INPUT. */
void relu_forward(float *out, const float *inp, size_t n);
void relu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void leaky_relu_forward(float *out, const float *inp, size_t n, float slope);
void leaky_relu_backward(float *dinp, const float *dout, const float *inp, size_t n, float slope);

/* Softmax over the last axis of (N, D), max-shifted. Backward uses the output y:
 * dinp += y * (dout - sum_j dout_j y_j). */
void softmax_forward(float *out, const float *inp, int N, int D);
void softmax_backward(float *dinp, const float *dout, const float *out, int N, int D);

/* --------------------------------------------------------------- pooling */
/* Max pool, window k, stride k, no padding, over (NC, L) rows -> (NC, L/k)
 * (trailing remainder dropped). idx (NC, L/k) stores the argmax position
 * within the row (first maximum on ties). */
void maxpool1d_forward(float *out, int *idx, const float *inp, int NC, int L, int k);
void maxpool1d_backward(float *dinp, const float *dout, const int *idx, int NC, int L, int k);

/* Adaptive average pool (PyTorch rule) over (NC, Lin) rows -> (NC, Lout): bin i
 * averages positions [floor(i*Lin/Lout), ceil((i+1)*Lin/Lout)). Works for
 * Lin < Lout (positions repeat). */
void adaptive_avgpool1d_forward(float *out, const float *inp, int NC, int Lin, int Lout);
void adaptive_avgpool1d_backward(float *dinp, const float *dout, int NC, int Lin, int Lout);

/* Global average pool (B, C, L) -> (B, C). */
void global_avgpool1d_forward(float *out, const float *inp, int B, int C, int L);
void global_avgpool1d_backward(float *dinp, const float *dout, int B, int C, int L);

/* ----------------------------------------------- multi-head self-attention */
/* nn.MultiheadAttention semantics, no dropout, no mask. Tokens are rows:
 * inp (B, T, E) token-major. w_in (3E, E) rows [q; k; v], b_in (3E),
 * w_out (E, E), b_out (E); H heads of E/H dims, scores scaled 1/sqrt(E/H).
 * cache (mha_cache_floats) keeps q, k, v, attention probabilities and the
 * concatenated head outputs for backward. */
typedef struct { int B, T, E, H; } SpMHA;

size_t mha_cache_floats(const SpMHA *s);
size_t mha_work_floats(const SpMHA *s);
void mha_forward(float *out, float *cache, const float *inp, const float *w_in,
                 const float *b_in, const float *w_out, const float *b_out, const SpMHA *s,
                 float *work);
void mha_backward(float *dinp, float *dw_in, float *db_in, float *dw_out, float *db_out,
                  const float *dout, const float *inp, const float *cache, const float *w_in,
                  const float *w_out, const SpMHA *s, float *work);

/* ------------------------------------------------------------------ misc */
/* Row-wise L2 normalisation y = x / max(||x||, eps) over (N, D); saves norms[N]. */
void l2norm_forward(float *out, float *norms, const float *inp, int N, int D, float eps);
void l2norm_backward(float *dinp, const float *dout, const float *inp, const float *norms,
                     int N, int D, float eps);

#endif
