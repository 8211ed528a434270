/* ref_layers.h - test-only double-precision reference layers and losses.
 *
 * Straight loops, no BLAS, no OpenMP, no cleverness: these are the maths the
 * production float kernels (core/sp_layers.h, sp_losses.h) are checked
 * against (STYLE.md 3, tiers A and B). Same layouts and argument order as the
 * production functions. Forward overwrites its outputs; backward ADDS into
 * every gradient (NULL gradients are skipped). Functions that need scratch
 * allocate it themselves (tests only).
 */
#ifndef REF_LAYERS_H
#define REF_LAYERS_H

#include <stddef.h>

/* conv1d: inp (B,C,L), w (O,C,K), bias (O) or NULL, out (B,O,Lo). */
void ref_conv1d_forward(double *out, const double *inp, const double *w, const double *bias,
                        int B, int C, int L, int O, int K, int stride, int pad);
void ref_conv1d_backward(double *dinp, double *dw, double *dbias, const double *dout,
                         const double *inp, const double *w, int B, int C, int L, int O, int K,
                         int stride, int pad);

/* linear: inp (N,in), w (out,in), bias (out) or NULL, out (N,out). */
void ref_linear_forward(double *out, const double *inp, const double *w, const double *bias, int N,
                        int in, int out_f);
void ref_linear_backward(double *dinp, double *dw, double *dbias, const double *dout,
                         const double *inp, const double *w, int N, int in, int out_f);

/* split batch norm over (N,C,L), S interleaved splits (sample n in split n % S).
 * mean, var: [S*C] (biased variance); gamma/beta may be NULL (1 / 0). */
void ref_batchnorm_forward_train(double *out, double *mean, double *var, const double *inp,
                                 const double *gamma, const double *beta, int N, int C, int L,
                                 int S, double eps);
/* running stats update as documented in sp_layers.h */
void ref_batchnorm_running_update(double *rm, double *rv, const double *mean, const double *var,
                                  int N, int C, int L, int S, double momentum);
void ref_batchnorm_backward_train(double *dinp, double *dgamma, double *dbeta, const double *dout,
                                  const double *inp, const double *gamma, int N, int C, int L,
                                  int S, double eps);
void ref_batchnorm_forward_eval(double *out, const double *inp, const double *gamma,
                                const double *beta, const double *rm, const double *rv, int N,
                                int C, int L, double eps);
void ref_batchnorm_backward_eval(double *dinp, double *dgamma, double *dbeta, const double *dout,
                                 const double *inp, const double *gamma, const double *rm,
                                 const double *rv, int N, int C, int L, double eps);

/* layer norm over the last axis of (N,D); w, b may be NULL. */
void ref_layernorm_forward(double *out, const double *inp, const double *w, const double *b, int N,
                           int D, double eps);
void ref_layernorm_backward(double *dinp, double *dw, double *db, const double *dout,
                            const double *inp, const double *w, int N, int D, double eps);

void ref_relu_forward(double *out, const double *inp, size_t n);
void ref_relu_backward(double *dinp, const double *dout, const double *inp, size_t n);
void ref_leaky_relu_forward(double *out, const double *inp, size_t n, double slope);
void ref_leaky_relu_backward(double *dinp, const double *dout, const double *inp, size_t n,
                             double slope);
void ref_softmax_forward(double *out, const double *inp, int N, int D);
void ref_softmax_backward(double *dinp, const double *dout, const double *inp, int N, int D);

/* max pool window = stride = k over (NC, L) rows; first maximum on ties. */
void ref_maxpool1d_forward(double *out, int *idx, const double *inp, int NC, int L, int k);
void ref_maxpool1d_backward(double *dinp, const double *dout, const double *inp, int NC, int L,
                            int k);
void ref_adaptive_avgpool1d_forward(double *out, const double *inp, int NC, int Lin, int Lout);
void ref_adaptive_avgpool1d_backward(double *dinp, const double *dout, int NC, int Lin, int Lout);
void ref_global_avgpool1d_forward(double *out, const double *inp, int B, int C, int L);
void ref_global_avgpool1d_backward(double *dinp, const double *dout, int B, int C, int L);

/* multi-head self-attention, tokens as rows: inp (B,T,E), w_in (3E,E), b_in (3E),
 * w_out (E,E), b_out (E), H heads. */
void ref_mha_forward(double *out, const double *inp, const double *w_in, const double *b_in,
                     const double *w_out, const double *b_out, int B, int T, int E, int H);
void ref_mha_backward(double *dinp, double *dw_in, double *db_in, double *dw_out, double *db_out,
                      const double *dout, const double *inp, const double *w_in,
                      const double *b_in, const double *w_out, int B, int T, int E, int H);

/* y = x / max(|x|, eps) per row of (N,D). */
void ref_l2norm_forward(double *out, const double *inp, int N, int D, double eps);
void ref_l2norm_backward(double *dinp, const double *dout, const double *inp, int N, int D,
                         double eps);

/* Losses: return the mean loss; add scale * d(mean)/d(input) when the gradient is non-NULL. */
double ref_cross_entropy(double *dlogits, const double *logits, const int *labels, int N, int C,
                         double scale);
double ref_bce_logits(double *dlogits, const double *logits, const double *targets, int N,
                      double gamma, double alpha, double scale);
/* queue (D,Q): element (d,j) at d*Q + j. */
double ref_infonce(double *dq, const double *q, const double *k, const double *queue, int B, int D,
                   int Q, double T, double scale);

/* Generic finite-difference gradient check (tier A).
 * loss(ctx) evaluates the scalar loss from the current contents of x; x has n
 * entries and analytic[i] is d loss / d x[i]. Coordinates with skip[i] != 0
 * are skipped (skip may be NULL). Central differences with
 * eps = 1e-5 * max(1, |x_i|). Returns the max relative error
 * |a - n| / (|a| + |n|) (0 when both are 0) and, through *worst, its index. */
typedef double (*RefLossFn)(void *ctx);
double ref_gradcheck(RefLossFn loss, void *ctx, double *x, size_t n, const double *analytic,
                     const unsigned char *skip, size_t *worst, double *worst_a, double *worst_n);

/* Same for loss = sum_k out_k G_k with out computed by fwd(ctx, out) (n_out
 * entries): the numeric derivative is sum_k (out+_k - out-_k) G_k / 2h, which
 * differences each output before summing, so outputs that do not depend on
 * x_i cancel exactly and only real rounding noise remains. */
typedef void (*RefFwdFn)(void *ctx, double *out);
double ref_gradcheck_fwd(RefFwdFn fwd, void *ctx, size_t n_out, const double *G, double *x,
                         size_t n, const double *analytic, const unsigned char *skip,
                         size_t *worst, double *worst_a, double *worst_n);
void ref_expect_gradcheck_fwd(const char *name, RefFwdFn fwd, void *ctx, size_t n_out,
                              const double *G, double *x, size_t n, const double *analytic,
                              const unsigned char *skip, double tol);

/* Check-assert that ref_gradcheck's max relative error is <= tol, naming the
 * tensor, the worst index, both derivatives and the error on failure. */
void ref_expect_gradcheck(const char *name, RefLossFn loss, void *ctx, double *x, size_t n,
                          const double *analytic, const unsigned char *skip, double tol);

/* |got - ref| <= atol + rtol*|ref| and got finite for every element. Like
 * sp_expect_close_d, but checks all elements first and calls ck_assert_msg
 * once (on the first failing element): Check writes a checkpoint record to
 * its pipe on every ck_assert call, which dominates the run time when called
 * per element. */
void ref_expect_close(const char *name, const float *got, const double *ref, size_t n, double rtol,
                      double atol);
void ref_expect_close_ff(const char *name, const float *got, const float *ref, size_t n,
                         double rtol, double atol);

/* sum_i out[i] * G[i] */
double ref_dot(const double *a, const double *b, size_t n);
/* float <-> double copies */
void ref_to_double(double *dst, const float *src, size_t n);
void ref_to_float(float *dst, const double *src, size_t n);

/* Test buffers (Check-assert on allocation failure; n == 0 gives a valid
 * 1-element buffer; caller frees): zeroed float / double arrays, a double
 * copy of a float array, and arrays of reproducible values in [lo, hi)
 * (sp_fill_uniform_f / _d). */
float *ref_falloc(size_t n);
double *ref_dalloc(size_t n);
double *ref_dcopy(const float *x, size_t n);
float *ref_frand(size_t n, unsigned long long seed, double lo, double hi);
double *ref_drand(size_t n, unsigned long long seed, double lo, double hi);

/* A gradient accumulated k times from init: got == init + k * ref, with
 * ref_expect_close(rtol, atol = atol_rel * (max|ref| + max|init|)). */
void ref_expect_accum(const char *name, const float *got, const float *init, const double *ref,
                      size_t n, double k, double rtol, double atol_rel);

#endif
