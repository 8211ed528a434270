/* sp_optim.c - SGD (PyTorch rule: momentum, nesterov, L2 weight decay),
 * Adam (L2) and AdamW (decoupled) over the trainable arena of an SpParams,
 * and the cosine + warm-up learning-rate schedule.
 *
 * State: m (momentum buffer / first moment) and v (second moment, Adam only),
 * each n_param floats with the layout of p->data, so a checkpoint can store
 * them next to the parameters. optim_init allocates (and sets PyTorch default
 * hyper-parameters, to be overridden by the caller after init); optim_step
 * does not allocate. optim_step opens an OpenMP region only for large tensors
 * (elementwise, deterministic for any thread count). */
#include "sp_optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_layers_util.h"

#define SP_PI 3.14159265358979323846
#define SP_OPT_PAR_MIN 65536

SpStatus optim_init(SpOptim *o, SpOptimKind kind, const SpParams *p) {
    if (kind != SP_OPT_SGD && kind != SP_OPT_ADAM && kind != SP_OPT_ADAMW)
        SP_FAIL(SP_ECONFIG, "optimizer: unknown kind %d (expected 0 sgd, 1 adam, 2 adamw)", (int)kind);
    if (!p->finalized)
        SP_FAIL(SP_EINTERNAL, "optimizer: parameter table is not finalized");
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->momentum = 0.0f;
    o->nesterov = 0;
    o->weight_decay = 0.0f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->step = 0;
    o->n = p->n_param;
    if (o->n == 0) return SP_OK;
    size_t bytes = sizeof(float) * o->n;
    o->m = sp_aligned_alloc(bytes, "optimizer first moment / momentum buffer");
    if (!o->m) return SP_ENOMEM;
    memset(o->m, 0, bytes);
    if (kind != SP_OPT_SGD) {
        o->v = sp_aligned_alloc(bytes, "optimizer second moment");
        if (!o->v) {
            free(o->m);
            o->m = NULL;
            return SP_ENOMEM;
        }
        memset(o->v, 0, bytes);
    }
    return SP_OK;
}

void optim_free(SpOptim *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
    o->n = 0;
}

/* PyTorch SGD (dampening 0), one tensor:
 * g' = g + wd*theta; buf = g' (first step) or mu*buf + g';
 * d = nesterov ? g' + mu*buf : buf (or g' without momentum); theta -= lr*d. */
static void sgd_tensor(float *th, const float *gr, float *buf, size_t n, float lr, float wd,
                       float mu, int nesterov, int first) {
#pragma omp parallel for schedule(static) if (n >= SP_OPT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = gr[i];
        if (wd != 0.0f) g = g + wd * th[i];
        float d = g;
        if (mu != 0.0f) {
            float b = first ? g : mu * buf[i] + g;
            buf[i] = b;
            d = nesterov ? g + mu * b : b;
        }
        th[i] = th[i] - lr * d;
    }
}

/* PyTorch Adam/AdamW (amsgrad off), one tensor. decoupled: AdamW. */
static void adam_tensor(float *th, const float *gr, float *m, float *v, size_t n, float lr, float wd,
                        float b1, float b2, float eps, long step, int decoupled) {
    const double bc1 = 1.0 - pow((double)b1, (double)step);
    const double bc2 = 1.0 - pow((double)b2, (double)step);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float omb1 = (float)(1.0 - (double)b1), omb2 = (float)(1.0 - (double)b2);
    const float shrink = (float)(1.0 - (double)lr * (double)wd);
#pragma omp parallel for schedule(static) if (n >= SP_OPT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = gr[i], t = th[i];
        if (wd != 0.0f) {
            if (decoupled) t = t * shrink;
            else g = g + wd * t;
        }
        const float mi = m[i] * b1 + g * omb1;
        const float vi = v[i] * b2 + omb2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        th[i] = t - step_size * (mi / denom);
    }
}

void optim_step(SpOptim *o, SpParams *p, float lr) {
    SP_LAYER_CHECK(o->n == p->n_param, "optimizer: state covers %zu floats, parameters %zu", o->n,
                   p->n_param);
    for (int k = 0; k < p->n; k++) {
        const SpTensorInfo *t = &p->t[k];
        if (t->kind != SP_TENSOR_PARAM || t->count == 0) continue;
        float *th = p->data + t->offset;
        const float *gr = p->grad + t->offset;
        const float wd = t->no_decay ? 0.0f : o->weight_decay;
        if (o->kind == SP_OPT_SGD) {
            sgd_tensor(th, gr, o->m + t->offset, t->count, lr, wd, o->momentum, o->nesterov,
                       o->step == 0);
        } else {
            adam_tensor(th, gr, o->m + t->offset, o->v + t->offset, t->count, lr, wd, o->beta1,
                        o->beta2, o->eps, o->step + 1, o->kind == SP_OPT_ADAMW);
        }
    }
    o->step++;
}

/* cosine value at the start of epoch e (or lr0 without cosine) */
static double sched_epoch_lr(const SpSchedule *s, int e) {
    if (!s->cosine || s->epochs <= 0) return s->lr0;
    const double eta_min = s->lr0 * s->decay_rate * s->decay_rate * s->decay_rate;
    return eta_min + (s->lr0 - eta_min) * (1.0 + cos(SP_PI * (double)e / (double)s->epochs)) / 2.0;
}

double sched_lr(const SpSchedule *s, int epoch, int iter, int iters_per_epoch) {
    const int W = s->warmup_epochs, nb = iters_per_epoch > 0 ? iters_per_epoch : 1;
    double lr;
    const int warm = W > 0 && (s->reference_quirk ? epoch <= W : epoch < W);
    if (warm) {
        /* linear from warmup_from to the cosine value at epoch W */
        const double e0 = s->reference_quirk ? (double)epoch - 1.0 : (double)epoch;
        const double p = ((double)iter + e0 * nb) / ((double)W * nb);
        const double to = sched_epoch_lr(s, W);
        lr = s->warmup_from + p * (to - s->warmup_from);
    } else {
        lr = sched_epoch_lr(s, epoch);
    }
    return lr > 0.0 ? lr : 0.0;
}
