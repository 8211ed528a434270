/* sp_losses.h - losses as fused forward + backward.
 *
 * Each returns the mean loss over the rows it scores (as double) and, when the
 * gradient pointer is non-NULL, ADDS scale * d(mean loss)/d(input) into it.
 * Accuracy counts go to *ncorrect when non-NULL. Loss sums run in double in a
 * fixed order (deterministic for any thread count).
 */
#ifndef SP_LOSSES_H
#define SP_LOSSES_H

#include <stddef.h>

/* Cross-entropy from logits (N, C), labels in [0, C) (rows with label < 0
 * are ignored; the mean is over the rest). */
double cross_entropy_loss(float *dlogits, const float *logits, const int *labels, int N, int C,
                          float scale, int *ncorrect);

/* Binary cross-entropy with logits (N), targets in {0,1} (or [0,1]).
 * focal_gamma = 0: plain BCE. focal_gamma > 0: focal loss
 * -alpha_t (1-p_t)^gamma log p_t with alpha_t = alpha for target 1, 1-alpha
 * for target 0 (alpha < 0 disables alpha weighting). ncorrect counts
 * (logit > 0) == (target > 0.5), a logit of exactly 0 predicting 0. */
double bce_logits_loss(float *dlogits, const float *logits, const float *targets, int N,
                       float focal_gamma, float focal_alpha, float scale, int *ncorrect);

/* InfoNCE over (positive, queue): q (B, D), k (B, D) (positives, detached),
 * queue (D, Q) column-major keys as in the reference (column j = key j,
 * element (d, j) at d*Q + j), detached. logits = [q.k, q.queue_j] / T;
 * loss = mean_i CE(logits_i, 0). Gradient only into dq. work: B*(Q+1) floats.
 * ncorrect counts rows whose positive logit is the (first) maximum. */
size_t infonce_work_floats(int B, int Q);
double infonce_loss(float *dq, const float *q, const float *k, const float *queue,
                    int B, int D, int Q, float T, float scale, int *ncorrect, float *work);

#endif
