/* sp_optim.h - optimizers over an SpParams arena, and learning-rate schedules. */
#ifndef SP_OPTIM_H
#define SP_OPTIM_H

#include "sp_params.h"

typedef enum { SP_OPT_SGD = 0, SP_OPT_ADAM = 1, SP_OPT_ADAMW = 2 } SpOptimKind;

typedef struct {
    SpOptimKind kind;
    float momentum;      /* SGD */
    int nesterov;        /* SGD */
    float weight_decay;  /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
    float beta1, beta2, eps;
    long step;           /* completed steps (Adam bias correction; SGD first-step rule) */
    size_t n;            /* floats covered (== params->n_param) */
    float *m;            /* SGD momentum buffer / Adam first moment */
    float *v;            /* Adam second moment (NULL for SGD) */
} SpOptim;

/* Allocates state for p's trainable arena (zeroed). Also sets the PyTorch
 * default hyper-parameters (momentum 0, nesterov 0, weight_decay 0, betas
 * 0.9/0.999, eps 1e-8, step 0): set the fields you need AFTER this call. */
SpStatus optim_init(SpOptim *o, SpOptimKind kind, const SpParams *p);
/* One step with learning rate lr over every trainable tensor of p, honouring
 * SpTensorInfo.no_decay. SGD follows PyTorch exactly:
 * g' = g + wd*theta; buf = g' on the first step, else buf = mu*buf + g';
 * (nesterov: g' + mu*buf); theta -= lr * step. Adam/AdamW as PyTorch. */
void optim_step(SpOptim *o, SpParams *p, float lr);
void optim_free(SpOptim *o);

/* Cosine schedule with linear warm-up, per iteration.
 * lr(e) = eta_min + (lr0 - eta_min) (1 + cos(pi e / E)) / 2 with
 * eta_min = lr0 * decay_rate^3 (the reference), evaluated per epoch e.
 * Warm-up (warmup_epochs W > 0): for e < W, p = (it + e*nb) / (W*nb) and
 * lr = warmup_from + p (warmup_to - warmup_from) with warmup_to = lr(W).
 * reference_quirk = 1 reproduces the reference's 1-based formula
 * p = (it + (e-1) nb) / (W nb) for e <= W. The result is never negative
 * (clamped at 0). constant: cosine = 0 gives lr0 after warm-up. */
typedef struct {
    double lr0;
    int epochs;
    int cosine;
    double decay_rate;
    int warmup_epochs;
    double warmup_from;
    int reference_quirk;
} SpSchedule;

double sched_lr(const SpSchedule *s, int epoch, int iter, int iters_per_epoch);

#endif
