/* supervised.c - end-to-end training of an encoder + linear classifier on
 * the labelled rows of a run: the supervised baselines (fresh encoder of any
 * registered architecture) and fine-tuning of a pretrained encoder.
 *
 * Recipe (Schuetzke et al., reference/synthetic.md §A12, as defaults):
 * cross-entropy, Adam lr 3e-4, batch 128, at most 500 epochs, early stopping
 * on the validation loss (patience 25, min_delta 1e-4) with the best weights
 * restored, lr x 0.1 after 10 epochs without improvement. Validation and
 * test are evaluated in eval mode (BN running statistics).
 *
 * Batches (explicit rules, BatchNorm needs them):
 * - B = min(supervised.batch_size rounded down to a multiple of S,
 *   n_train rounded up to a multiple of S), S = encoder_batch_multiple (BN
 *   split count), so a train-mode batch is always a multiple of S.
 * - Each epoch draws a permutation of the training rows (seed, epoch) and
 *   reads it cyclically: step s takes positions [sB, (s+1)B) modulo n_train.
 *   An epoch has max(ceil(n_train / B), supervised.min_steps_per_epoch)
 *   steps, so every row is seen at least once per epoch and the last batch
 *   is padded with rows from the start of the same permutation (never
 *   dropped, never smaller).
 * - Without validation rows the training loss (epoch mean) stands in for the
 *   validation loss (early stopping, plateau, best weights); a warning says so.
 *
 * Memory: the training and validation rows are gathered once (normalised),
 * every step buffer is allocated before the first step; nothing is
 * allocated inside the loop. Threading: the encoder and layers open their
 * own OpenMP regions.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_checkpoint.h"
#include "sp_layers.h"
#include "sp_linear_eval.h"
#include "sp_log.h"
#include "sp_losses.h"
#include "sp_progress.h"
#include "sp_signal.h"

SpStatus lineval_sup_param_from_config(LinSupParam *p, const SpConfig *c) {
    memset(p, 0, sizeof *p);
    const char *o = sp_cfg_str(c, "supervised.optimizer");
    p->opt = !strcmp(o, "sgd") ? SP_OPT_SGD : !strcmp(o, "adamw") ? SP_OPT_ADAMW : SP_OPT_ADAM;
    p->lr = sp_cfg_float(c, "supervised.lr");
    p->momentum = sp_cfg_float(c, "supervised.momentum");
    p->weight_decay = sp_cfg_float(c, "supervised.weight_decay");
    p->epochs = (int)sp_cfg_int(c, "supervised.epochs");
    p->min_steps_per_epoch = (int)sp_cfg_int(c, "supervised.min_steps_per_epoch");
    p->batch_size = (int)sp_cfg_int(c, "supervised.batch_size");
    p->patience = (int)sp_cfg_int(c, "supervised.patience");
    p->min_delta = sp_cfg_float(c, "supervised.min_delta");
    p->plateau_patience = (int)sp_cfg_int(c, "supervised.plateau_patience");
    p->plateau_factor = sp_cfg_float(c, "supervised.plateau_factor");
    p->min_lr = sp_cfg_float(c, "supervised.min_lr");
    p->augment = sp_cfg_bool(c, "supervised.augment");
    p->augment_p = sp_cfg_float(c, "supervised.augment_p");
    p->encoder_lr_mult = 1.0;
    p->bn_frozen = 0;
    p->eval_batch = (int)sp_cfg_int(c, "linear_eval.batch");
    p->seed = (uint64_t)sp_cfg_int(c, "train.seed");
    p->log_level = SP_LOG_INFO;
    snprintf(p->tag, sizeof p->tag, "supervised");
    return SP_OK;
}

void lineval_sup_destroy(LinSupModel **m) {
    if (!m || !*m) return;
    encoder_destroy(&(*m)->enc);
    sp_params_free(&(*m)->head);
    free(*m);
    *m = NULL;
}

static SpStatus head_init(LinSupModel *m, SpRng *rng) {
    sp_params_init(&m->head);
    int iw = sp_params_add_dims(&m->head, "weight", SP_TENSOR_PARAM, 2, (int64_t)m->C,
                                (int64_t)m->D);
    int ib = sp_params_add_dims(&m->head, "bias", SP_TENSOR_PARAM, 1, (int64_t)m->C);
    if (iw < 0 || ib < 0) return sp_error_status();
    SP_TRY(sp_params_finalize(&m->head));
    if (rng) {   /* PyTorch nn.Linear default: U(-1/sqrt(D), 1/sqrt(D)) */
        double a = 1.0 / sqrt((double)m->D);
        float *w = sp_params_data(&m->head, iw), *b = sp_params_data(&m->head, ib);
        for (size_t i = 0; i < (size_t)m->C * m->D; i++) w[i] = (float)sp_rng_uniform(rng, -a, a);
        for (int c = 0; c < m->C; c++) b[c] = (float)sp_rng_uniform(rng, -a, a);
    }
    return SP_OK;
}

SpStatus lineval_sup_create(LinSupModel **out, SpEncoder **enc, int C, uint64_t seed) {
    *out = NULL;
    LinSupModel *m = calloc(1, sizeof *m);
    if (!m) SP_FAIL(SP_ENOMEM, "out of memory");
    m->C = C;
    m->D = encoder_feature_dim(*enc);
    SpRng rng;
    sp_rng_stream(&rng, seed, 0x68656164ULL /* "head" */, 0, 0);
    SpStatus rc = head_init(m, &rng);
    if (rc != SP_OK) {
        sp_params_free(&m->head);
        free(m);
        return rc;
    }
    m->enc = *enc;
    *enc = NULL;
    *out = m;
    return SP_OK;
}

/* ------------------------------------------------------------ evaluation */

/* Loss, accuracy (and optionally predictions / probabilities / logits) of
 * in-memory normalised rows x (n, L) in eval mode. */
typedef struct {
    SpEncAct *act;
    int maxB;
    float *feat, *logits;
} EvalCtx;

static void eval_ctx_free(EvalCtx *e) {
    encoder_act_destroy(&e->act);
    free(e->feat);
    free(e->logits);
    memset(e, 0, sizeof *e);
}

static SpStatus eval_ctx_init(EvalCtx *e, const LinSupModel *m, int maxB, int L) {
    memset(e, 0, sizeof *e);
    e->maxB = maxB;
    SP_TRY(encoder_act_create_infer(&e->act, m->enc, maxB, L));
    e->feat = malloc((size_t)maxB * m->D * sizeof(float));
    e->logits = malloc((size_t)maxB * m->C * sizeof(float));
    if (!e->feat || !e->logits) {
        eval_ctx_free(e);
        SP_FAIL(SP_ENOMEM, "out of memory (evaluation buffers)");
    }
    return SP_OK;
}

/* x (B, L) -> e->logits (B, C), eval mode. */
static SpStatus eval_logits(LinSupModel *m, EvalCtx *e, const float *x, int B) {
    SP_TRY(encoder_forward(m->enc, e->act, x, B, SP_ENC_EVAL, e->feat));
    linear_forward(e->logits, e->feat, sp_params_data(&m->head, 0), sp_params_data(&m->head, 1),
                   B, m->D, m->C);
    return SP_OK;
}

static SpStatus eval_rows(LinSupModel *m, EvalCtx *e, const float *x, const int32_t *y,
                          int64_t n, int L, double *loss, double *acc) {
    double lsum = 0;
    int64_t correct = 0, counted = 0;
    for (int64_t r0 = 0; r0 < n; r0 += e->maxB) {
        int B = (int)(n - r0 < e->maxB ? n - r0 : e->maxB);
        SP_TRY(eval_logits(m, e, x + (size_t)r0 * L, B));
        int nc = 0;
        double l = cross_entropy_loss(NULL, e->logits, y + r0, B, m->C, 1.0f, &nc);
        lsum += l * B;
        correct += nc;
        counted += B;
    }
    *loss = counted ? lsum / (double)counted : 0;
    *acc = counted ? (double)correct / (double)counted : 0;
    return SP_OK;
}

SpStatus lineval_sup_predict(LinSupModel *m, SpDataset *ds, const int64_t *idx, int64_t n,
                             const SpNorm *norm, int batch, int32_t *pred, float *prob) {
    if (n <= 0) return SP_OK;
    if (encoder_check_length(m->enc, ds->L) != SP_OK) {
        sp_error_prefix("'%s': ", ds->path);
        return sp_error_status();
    }
    if (batch < 1) batch = 1;
    if (batch > n) batch = (int)n;
    SpLoader *ld = NULL;
    EvalCtx e;
    memset(&e, 0, sizeof e);
    SpStatus rc = SP_OK;
    SP_TRY_GOTO(rc, loader_create(&ld, ds, idx, n, batch, 0, 0, 0, norm), out);
    SP_TRY_GOTO(rc, eval_ctx_init(&e, m, batch, ds->L), out);
    SP_TRY_GOTO(rc, loader_start_epoch(ld, 0), out);
    int64_t done = 0;
    for (;;) {
        SpBatch b;
        SP_TRY_GOTO(rc, loader_next(ld, &b), out);
        if (b.n == 0) break;
        SP_TRY_GOTO(rc, eval_logits(m, &e, b.x, b.n), out);
        if (pred)
            for (int i = 0; i < b.n; i++) {
                const float *z = e.logits + (size_t)i * m->C;
                int best = 0;
                for (int c = 1; c < m->C; c++)
                    if (z[c] > z[best]) best = c;
                pred[done + i] = best;
            }
        if (prob) softmax_forward(prob + (size_t)done * m->C, e.logits, b.n, m->C);
        done += b.n;
    }
out:
    eval_ctx_free(&e);
    loader_free(&ld);
    return rc;
}

/* -------------------------------------------------------------- training */

const char *lineval_sup_check_param(const LinSupParam *p) {
    if (!(p->lr > 0)) return "supervised.lr must be > 0";
    if (p->epochs < 1) return "supervised.epochs must be >= 1";
    if (p->batch_size < 1) return "supervised.batch_size must be >= 1";
    if (!(p->plateau_factor > 0 && p->plateau_factor <= 1))
        return "supervised.plateau_factor must be in (0, 1]";
    if (p->augment && !(p->augment_p >= 0 && p->augment_p <= 1))
        return "supervised.augment_p must be in [0, 1]";
    if (!(p->encoder_lr_mult >= 0)) return "supervised.finetune_lr_mult must be >= 0";
    return NULL;
}

SpStatus lineval_sup_train(LinSupModel *m, SpDataset *ds, const int64_t *train_idx,
                           int64_t n_train, const int64_t *val_idx, int64_t n_val,
                           const SpNorm *norm, const AugSpec *aug, const LinSupParam *p) {
    const char *msg = lineval_sup_check_param(p);
    if (msg) SP_FAIL(SP_ECONFIG, "%s", msg);
    if (n_train < 1) SP_FAIL(SP_EINPUT, "%s: no training rows", p->tag);
    if (!ds->labels) SP_FAIL(SP_EINPUT, "'%s': supervised training needs labels", ds->path);
    const int L = ds->L, C = m->C, D = m->D;
    if (encoder_check_length(m->enc, L) != SP_OK) {
        sp_error_prefix("'%s': ", ds->path);
        return sp_error_status();
    }
    const int S = encoder_batch_multiple(m->enc);
    int bcfg = p->batch_size / S * S;
    if (bcfg < S) bcfg = S;
    int64_t nup = (n_train + S - 1) / S * S;
    const int B = (int)(nup < bcfg ? nup : bcfg);
    int64_t steps = (n_train + B - 1) / B;
    if (steps < p->min_steps_per_epoch) steps = p->min_steps_per_epoch;
    const int eB = p->eval_batch > 0 ? p->eval_batch : 256;
    const int mode = p->bn_frozen ? SP_ENC_EVAL_GRAD : SP_ENC_TRAIN;

    SpParams *ep = encoder_params(m->enc);
    SpStatus rc = SP_OK;
    float *xtr = NULL, *xva = NULL, *xb = NULL, *xa = NULL, *feat = NULL, *dfeat = NULL,
          *logits = NULL, *dlogits = NULL, *lwork = NULL, *snap = NULL;
    int32_t *ytr = NULL, *yva = NULL, *yb = NULL;
    int *sidx = NULL;
    int64_t *perm = NULL;
    SpEncAct *act = NULL;
    EvalCtx ev;
    memset(&ev, 0, sizeof ev);
    AugPipeline *pipe = NULL;
    SpOptim oe, oh;
    memset(&oe, 0, sizeof oe);
    memset(&oh, 0, sizeof oh);
    int have_oe = 0, have_oh = 0;
    const size_t nsnap = ep->n_param + ep->n_buf + m->head.n_param;

    xtr = malloc((size_t)n_train * L * sizeof(float));
    ytr = malloc((size_t)n_train * sizeof(int32_t));
    if (n_val > 0) {
        xva = malloc((size_t)n_val * L * sizeof(float));
        yva = malloc((size_t)n_val * sizeof(int32_t));
    }
    xb = sp_aligned_alloc((size_t)B * L * sizeof(float), "batch");
    xa = p->augment ? sp_aligned_alloc((size_t)B * L * sizeof(float), "augmented batch") : NULL;
    feat = sp_aligned_alloc((size_t)B * D * sizeof(float), "features");
    dfeat = sp_aligned_alloc((size_t)B * D * sizeof(float), "feature gradient");
    logits = sp_aligned_alloc((size_t)B * C * sizeof(float), "logits");
    dlogits = sp_aligned_alloc((size_t)B * C * sizeof(float), "logit gradient");
    lwork = sp_aligned_alloc((linear_work_floats(B, D, C) + 1) * sizeof(float), "linear work");
    snap = malloc((nsnap + 1) * sizeof(float));
    yb = malloc((size_t)B * sizeof(int32_t));
    sidx = malloc((size_t)B * sizeof(int));
    perm = malloc((size_t)n_train * sizeof(int64_t));
    if (!xtr || !ytr || (n_val > 0 && (!xva || !yva)) || !xb || (p->augment && !xa) || !feat ||
        !dfeat || !logits || !dlogits || !lwork || !snap || !yb || !sidx || !perm)
        SP_FAIL_GOTO(rc, done, SP_ENOMEM, "%s: out of memory (%lld training rows of %d points)",
                     p->tag, (long long)n_train, L);
    SP_TRY_GOTO(rc, lineval_gather(ds, train_idx, n_train, norm, eB, xtr), done);
    SP_TRY_GOTO(rc, lineval_gather(ds, val_idx, n_val, norm, eB, xva), done);
    for (int64_t i = 0; i < n_train; i++) {
        ytr[i] = ds->labels[train_idx[i]];
        if (ytr[i] < 0 || ytr[i] >= C)
            SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': row %lld has label %d, expected 0..%d",
                         ds->path, (long long)train_idx[i], ytr[i], C - 1);
    }
    for (int64_t i = 0; i < n_val; i++) {
        yva[i] = ds->labels[val_idx[i]];
        if (yva[i] < 0 || yva[i] >= C)
            SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': row %lld has label %d, expected 0..%d",
                         ds->path, (long long)val_idx[i], yva[i], C - 1);
    }
    SP_TRY_GOTO(rc, encoder_act_create(&act, m->enc, B, L), done);
    SP_TRY_GOTO(rc, eval_ctx_init(&ev, m, eB, L), done);
    if (p->augment) {
        AugSpec spec = *aug;
        for (int i = 0; i < spec.n; i++) spec.t[i].p = p->augment_p;
        SP_TRY_GOTO(rc, aug_pipeline_create(&pipe, &spec, L), done);
    }
    SP_TRY_GOTO(rc, optim_init(&oe, p->opt, ep), done);
    have_oe = 1;
    SP_TRY_GOTO(rc, optim_init(&oh, p->opt, &m->head), done);
    have_oh = 1;
    oe.momentum = oh.momentum = (float)p->momentum;
    oe.weight_decay = oh.weight_decay = (float)p->weight_decay;
    if (n_val == 0)
        sp_log(SP_LOG_WARN, "%s: no validation rows: early stopping and the lr plateau follow the "
               "training loss", p->tag);
    sp_log(p->log_level, "%s: %lld training rows, %lld validation rows, %d classes, batch %d "
           "(BN multiple %d), %lld steps per epoch, up to %d epochs, %s lr %g%s", p->tag,
           (long long)n_train, (long long)n_val, C, B, S, (long long)steps, p->epochs,
           p->opt == SP_OPT_SGD ? "sgd" : p->opt == SP_OPT_ADAMW ? "adamw" : "adam", p->lr,
           p->augment ? " augment" : "");

    float *W = sp_params_data(&m->head, 0), *bias = sp_params_data(&m->head, 1);
    float *dW = sp_params_grad(&m->head, 0), *dbias = sp_params_grad(&m->head, 1);
    double lr = p->lr, best = INFINITY, pbest = INFINITY;
    int wait = 0, pwait = 0;
    m->best_epoch = -1;
    double t0 = sp_time_now();
    SpProgress prog;
    sp_progress_begin(&prog, p->tag, (int64_t)p->epochs * steps);
    int epoch;
    for (epoch = 0; epoch < p->epochs; epoch++) {
        if (sp_signal_requested())
            SP_FAIL_GOTO(rc, done, SP_EINTERRUPT, "%s: interrupted at epoch %d", p->tag, epoch);
        for (int64_t i = 0; i < n_train; i++) perm[i] = i;
        SpRng r;
        sp_rng_stream(&r, p->seed, 0x73757065ULL /* "supe" */, (uint64_t)epoch, 0);
        for (int64_t i = n_train - 1; i > 0; i--) {
            int64_t j = sp_rng_below(&r, i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        double lsum = 0;
        int64_t correct = 0, seen = 0;
        double te = sp_time_now();
        for (int64_t s = 0; s < steps; s++) {
            for (int i = 0; i < B; i++) {
                int64_t k = perm[(s * B + i) % n_train];
                memcpy(xb + (size_t)i * L, xtr + (size_t)k * L, (size_t)L * sizeof(float));
                yb[i] = ytr[k];
                sidx[i] = (int)train_idx[k];
            }
            const float *xin = xb;
            if (pipe) {
                SP_TRY_GOTO(rc, aug_apply_batch(pipe, xb, B, L, p->seed, (uint64_t)epoch, sidx, 0,
                                                xa), done);
                xin = xa;
            }
            SP_TRY_GOTO(rc, encoder_forward(m->enc, act, xin, B, mode, feat), done);
            linear_forward(logits, feat, W, bias, B, D, C);
            memset(dlogits, 0, (size_t)B * C * sizeof(float));
            int nc = 0;
            double loss = cross_entropy_loss(dlogits, logits, yb, B, C, 1.0f, &nc);
            if (!isfinite(loss))
                SP_FAIL_GOTO(rc, done, SP_ENUMERIC, "%s: cross-entropy is %g at epoch %d step "
                             "%lld (lr %g): training diverged", p->tag, loss, epoch, (long long)s,
                             lr);
            sp_params_zero_grad(ep);
            sp_params_zero_grad(&m->head);
            memset(dfeat, 0, (size_t)B * D * sizeof(float));
            linear_backward(dfeat, dW, dbias, dlogits, feat, W, B, D, C, lwork);
            encoder_backward(m->enc, act, dfeat, B);
            if (p->encoder_lr_mult > 0) optim_step(&oe, ep, (float)(lr * p->encoder_lr_mult));
            optim_step(&oh, &m->head, (float)lr);
            lsum += loss * B;
            correct += nc;
            seen += B;
            sp_progress_step(&prog, (int64_t)epoch * steps + s + 1, "loss=%.4f", loss);
        }
        double tr_loss = lsum / (double)seen, tr_acc = (double)correct / (double)seen;
        double va_loss = tr_loss, va_acc = tr_acc;
        if (n_val > 0)
            SP_TRY_GOTO(rc, eval_rows(m, &ev, xva, yva, n_val, L, &va_loss, &va_acc), done);
        if (!isfinite(va_loss))
            SP_FAIL_GOTO(rc, done, SP_ENUMERIC, "%s: validation loss is %g at epoch %d", p->tag,
                         va_loss, epoch);
        double dt = sp_time_now() - te;
        m->last_val_loss = va_loss;
        int improved = va_loss < best - p->min_delta;
        if (improved) {
            best = va_loss;
            wait = 0;
            m->best_epoch = epoch;
            m->best_val_loss = va_loss;
            m->best_val_acc = va_acc;
            m->best_train_loss = tr_loss;
            m->best_train_acc = tr_acc;
            memcpy(snap, ep->data, ep->n_param * sizeof(float));
            memcpy(snap + ep->n_param, ep->buf, ep->n_buf * sizeof(float));
            memcpy(snap + ep->n_param + ep->n_buf, m->head.data, m->head.n_param * sizeof(float));
        } else {
            wait++;
        }
        if (p->plateau_patience > 0) {
            if (va_loss < pbest - p->min_delta) {
                pbest = va_loss;
                pwait = 0;
            } else if (++pwait >= p->plateau_patience) {
                double nl = lr * p->plateau_factor;
                if (nl < p->min_lr) nl = p->min_lr;
                if (nl < lr)
                    sp_log(p->log_level, "%s: epoch %d: validation loss flat for %d epochs, lr %g "
                           "-> %g", p->tag, epoch + 1, pwait, lr, nl);
                lr = nl;
                pwait = 0;
            }
        }
        if (p->log_level >= (int)sp_log_get_level())
            sp_progress_line(&prog, "%s epoch=%d/%d loss=%.4f acc=%.4f val_loss=%.4f val_acc=%.4f "
                             "lr=%.2e%s samples_s=%.0f wall_s=%.1f", p->tag, epoch + 1, p->epochs,
                             tr_loss, tr_acc, va_loss, va_acc, lr, improved ? " *" : "",
                             dt > 0 ? (double)seen / dt : 0.0, sp_time_now() - t0);
        if (p->patience > 0 && wait >= p->patience) {
            m->stopped_early = 1;
            epoch++;
            break;
        }
    }
    sp_progress_end(&prog);
    m->epochs_run = epoch;
    m->final_lr = lr;
    /* restore the best weights (and BN statistics) */
    memcpy(ep->data, snap, ep->n_param * sizeof(float));
    memcpy(ep->buf, snap + ep->n_param, ep->n_buf * sizeof(float));
    memcpy(m->head.data, snap + ep->n_param + ep->n_buf, m->head.n_param * sizeof(float));
    m->train_seconds = sp_time_now() - t0;
    sp_log(p->log_level, "%s: %d epochs%s in %.1f s; best epoch %d: %s=%.4f %s=%.4f "
           "(weights restored)", p->tag, m->epochs_run, m->stopped_early ? " (early stop)" : "",
           m->train_seconds, m->best_epoch + 1, n_val ? "val_loss" : "train_loss",
           m->best_val_loss, n_val ? "val_acc" : "train_acc", m->best_val_acc);
done:
    if (have_oe) optim_free(&oe);
    if (have_oh) optim_free(&oh);
    aug_pipeline_destroy(&pipe);
    eval_ctx_free(&ev);
    encoder_act_destroy(&act);
    free(xtr);
    free(ytr);
    free(xva);
    free(yva);
    free(xb);
    free(xa);
    free(feat);
    free(dfeat);
    free(logits);
    free(dlogits);
    free(lwork);
    free(snap);
    free(yb);
    free(sidx);
    free(perm);
    return rc;
}

/* ------------------------------------------------------------- model io */

SpStatus lineval_sup_save(const LinSupModel *m, const char *path, const SpNorm *norm,
                          const char *config_text, const SpSplit *split) {
    SpH5Writer w;
    SP_TRY(ckpt_begin(&w, path, "supervised", encoder_arch(m->enc), config_text,
                      m->epochs_run, 0));
    SpStatus rc = SP_OK;
    SP_TRY_GOTO(rc, encoder_save(m->enc, w.f, SP_GROUP_ENCODER_Q), fail);
    SP_TRY_GOTO(rc, ckpt_write_params(w.f, "classifier", &m->head), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(w.f, "/", "n_classes", m->C), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(w.f, "/", "best_epoch", m->best_epoch + 1), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_double(w.f, "/", "best_val_loss", m->best_val_loss), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_double(w.f, "/", "best_val_acc", m->best_val_acc), fail);
    if (norm) SP_TRY_GOTO(rc, norm_save(norm, w.f, SP_GROUP_NORM), fail);
    if (split) SP_TRY_GOTO(rc, split_save(split, w.f, "split"), fail);
    return ckpt_commit(&w);
fail:
    sp_h5_abort(&w);
    return rc;
}

SpStatus lineval_sup_load(LinSupModel **out, const char *path, SpNorm *norm, int *have_norm) {
    *out = NULL;
    if (have_norm) *have_norm = 0;
    SpEncoder *enc = NULL;
    SP_TRY(encoder_load_ckpt(path, NULL, NULL, &enc, NULL));
    hid_t f = -1;
    SpCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    LinSupModel *m = NULL;
    SpStatus rc = SP_OK;
    SP_TRY_GOTO(rc, ckpt_open(path, "supervised", NULL, &f, &meta), done);
    SpH5Info info;
    SP_TRY_GOTO(rc, sp_h5_info(f, path, "classifier/weight", &info), done);
    if (info.rank != 2 || (int)info.dims[1] != encoder_feature_dim(enc) || info.dims[0] < 2)
        SP_FAIL_GOTO(rc, done, SP_EFORMAT, "'%s': classifier/weight must be (classes >= 2, %d)",
                     path, encoder_feature_dim(enc));
    m = calloc(1, sizeof *m);
    if (!m) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
    m->C = (int)info.dims[0];
    m->D = encoder_feature_dim(enc);
    SP_TRY_GOTO(rc, head_init(m, NULL), done);
    SP_TRY_GOTO(rc, ckpt_read_params(f, path, "classifier", &m->head), done);
    if (norm && sp_h5_exists(f, SP_GROUP_NORM)) {
        SP_TRY_GOTO(rc, norm_load(norm, f, path, SP_GROUP_NORM), done);
        if (have_norm) *have_norm = 1;
    }
    if (sp_h5_attr_exists(f, "/", "best_epoch")) {
        int64_t be = 0;
        SP_TRY_GOTO(rc, sp_h5_attr_read_int64(f, path, "/", "best_epoch", &be), done);
        m->best_epoch = (int)be - 1;
    }
    m->enc = enc;
    enc = NULL;
    *out = m;
    m = NULL;
done:
    if (m) {
        sp_params_free(&m->head);
        free(m);
    }
    encoder_destroy(&enc);
    ckpt_meta_free(&meta);
    if (f >= 0) sp_h5_close(f);
    return rc;
}
