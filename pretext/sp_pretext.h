/* sp_pretext.h - self-supervised pretraining: MoCo v2 (queue, momentum key
 * encoder, shuffle BN, InfoNCE), relational reasoning (inter-sample relation
 * head, intra-sample cut-piece head, external-variable head), the combined
 * objective and the pretraining loop with resume and monitors
 * (reference/specrrmoco.md §4-8, §11, §15).
 *
 * Dimension letters: B batch (spectra), L spectrum length, V RR views per
 * spectrum, F encoder feature width (h), D projection width (z), Q queue
 * length, H relation-head hidden width, w cut-piece length, C classes.
 *
 * Layouts.
 * - A multi-view block is view-major: row v*B + b is view v of sample b
 *   (§1), for the views, the cut pieces and their labels.
 * - The queue is (D, Q) row-major: element (d, j) at d*Q + j, column j is
 *   key j (as the reference buffer and core infonce_loss).
 * - Relation pairs (rr_make_pairs): for v1 < v2 (lexicographic) B positive
 *   rows [F[v1 B + b]; F[v2 B + b]] then B negative rows
 *   [F[v1 B + b]; F[v2 B + (b - c) mod B]], c = 1 at the first pair, +1 per
 *   pair, back to 1 when c >= B (torch.roll semantics).
 *
 * Randomness. Nothing keeps hidden RNG state between steps: every draw comes
 * from an sp_rng_stream keyed by (derived seed, epoch, step or sample, slot):
 *   parameter and queue init     (seed_init, component, 0, 0)
 *   epoch permutation            loader (seed_loader, epoch)
 *   augmentation of sample i     aug stream (seed_aug, epoch, i, slot):
 *                                slots 0, 1 = MoCo pair, 2 + v = RR view v
 *                                (its cut pieces come from the same stream)
 *   shuffle-BN permutation       (seed_shuffle, epoch, step, direction)
 * so a resumed run equals an uninterrupted one bit for bit (1 thread) and
 * results do not depend on batch composition or thread count (augmentation).
 *
 * Allocation: *_create / *_init allocate everything once for the largest
 * batch; steps allocate nothing. Threading: functions that run layers open
 * their own OpenMP regions (never call them inside one); helpers marked
 * "serial" are safe anywhere.
 */
#ifndef SP_PRETEXT_H
#define SP_PRETEXT_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_encoder.h"
#include "sp_error.h"
#include "sp_params.h"
#include "sp_rng.h"

/* Registers pretext.moco.*, pretext.rr.* and train.* (except train.seed and
 * train.threads, owned by core). Idempotent. */
void pretext_config_register(void);

/* ====================================================================== MoCo */

typedef struct {
    int D, Q;
    float *data;    /* (D, Q): column j = key j */
    int64_t ptr;    /* next column written, in [0, Q) */
} MocoQueue;

/* Columns drawn N(0, 1) from rng (column by column, d = 0..D-1), each
 * L2-normalised; ptr = 0. */
SpStatus moco_queue_init(MocoQueue *q, int D, int Q, SpRng *rng);
void moco_queue_free(MocoQueue *q);
/* keys (n, D) row-major -> columns ptr, ptr+1, ... (mod Q): the write wraps
 * around in two pieces when it runs past column Q-1; ptr <- (ptr + n) mod Q.
 * Requires 1 <= n <= Q (a bug otherwise: aborts). Serial. */
void moco_queue_push(MocoQueue *q, const float *keys, int n);

/* theta_k <- m theta_k + (1 - m) theta_q over n floats (the reference's
 * param_k * m + param_q * (1 - m) in float). Serial. */
void moco_momentum_update(float *theta_k, const float *theta_q, size_t n, float m);

/* Shuffle-BN permutation of 0..B-1 from stream (seed, epoch, step, dir). Serial. */
void moco_shuffle_perm(int *perm, int B, uint64_t seed, int64_t epoch, int64_t step, int dir);

/* The key encoder f_k and its projection head (same config as f_q; own BN
 * running statistics; no gradients). */
typedef struct {
    SpEncoder *enc;
    SpProjHead *proj;
    SpEncAct *act;      /* own, or borrowed (act_shared) */
    SpProjAct *pact;
    int act_shared;
    int maxB, L, F, D;
    float *xs;   /* (maxB, L) shuffled inputs */
    float *h;    /* (maxB, F) */
    float *zs;   /* (maxB, D) keys in shuffled order */
} MocoKeyEncoder;

/* Build f_k from cfg, copy every tensor of enc_q / proj_q into it (params and
 * buffers), allocate contexts for maxB spectra of length L. shared != NULL:
 * use that encoder context (e.g. one of f_q's: f_k needs no backward, so a
 * context of f_q that is free at the time can serve it) instead of an own one. */
SpStatus moco_key_create(MocoKeyEncoder *k, const SpConfig *cfg, const SpEncoder *enc_q,
                         const SpProjHead *proj_q, int maxB, int L, SpEncAct *shared);
void moco_key_free(MocoKeyEncoder *k);
/* Momentum update of f_k's trainable parameters and projection head from
 * f_q's (BN running statistics are not touched). */
void moco_key_momentum(MocoKeyEncoder *k, const SpEncoder *enc_q, const SpProjHead *proj_q,
                       float m);
/* keys (B, D), unit rows, of x (B, L) through f_k in train mode. perm != NULL
 * (shuffle BN, §6.2): f_k sees x[perm[i]] in row i and the result is
 * un-permuted (keys[perm[i]] = k'[i]). */
SpStatus moco_key_encode(MocoKeyEncoder *k, const float *x, int B, const int *perm, float *keys);

/* ==================================================== relational reasoning */

/* V(V-1)B pair rows (0 if V < 2 or B < 1). */
int rr_num_pairs(int V, int B);
/* left[r], right[r]: rows of the view-major feature block; target[r] 1 for
 * positives, 0 for negatives (order in the file comment). Serial. */
void rr_make_pairs(int V, int B, int *left, int *right, float *target);

/* RR heads, parameters named as the reference's modules:
 *  RR_HEAD_MLP (relation_head, cls_head): head.0 Linear(in -> hidden),
 *    head.1 BatchNorm1d(hidden) (plain BN over all rows, running statistics,
 *    momentum 0.1, num_batches_tracked counter), LeakyReLU(0.01),
 *    head.3 Linear(hidden -> out);
 *  RR_HEAD_LINEAR (tmp_cls_head): LeakyReLU(0.01), head.1 Linear(in -> out).
 * Init (§3.8): weights and BN gamma N(0, 0.05^2), biases U(+-1/sqrt(fan_in)),
 * BN beta 0, running mean 0 / var 1. */
typedef enum { RR_HEAD_MLP = 0, RR_HEAD_LINEAR = 1 } RrHeadKind;

typedef struct {
    RrHeadKind kind;
    int in, hidden, out;
    SpParams params;
    int iw0, ib0, ig, ibeta, irm, irv, inbt, iw3, ib3;   /* -1 when absent */
} RrHead;

typedef struct {
    int maxN, N, train;
    const float *x;           /* input of the last forward (borrowed; must stay valid) */
    float *a0;                /* (N, hidden) first linear */
    float *bn;                /* (N, hidden) BN output */
    float *act;               /* MLP: (N, hidden) LeakyReLU output; LINEAR: (N, in) */
    float *mean, *rstd;       /* (hidden) saved BN statistics */
    float *logits;            /* (N, out) */
    float *dact, *dbn, *da0;  /* backward scratch */
    float *work;
} RrHeadAct;

/* rng NULL: zeros (running var 1). */
SpStatus rr_head_create(RrHead *h, RrHeadKind kind, int in, int hidden, int out, SpRng *rng);
void rr_head_free(RrHead *h);
SpStatus rr_head_act_create(RrHeadAct *a, const RrHead *h, int maxN);
void rr_head_act_free(RrHeadAct *a);
/* x (N, in) -> a->logits (N, out). train: BN batch statistics and running
 * statistics/counter update; else running statistics. */
void rr_head_forward(RrHead *h, RrHeadAct *a, const float *x, int N, int train);
/* dlogits (N, out) of the last forward -> ADDS into the head's gradients and
 * into dx (N, in) (dx may be NULL). Uses the saved activations. */
void rr_head_backward(RrHead *h, RrHeadAct *a, const float *dlogits, float *dx);

/* Loss statistics of one head call. */
typedef struct {
    double loss;                      /* mean loss over the scored rows */
    int64_t n, correct;               /* rows scored, rows right */
    int64_t n_pos, correct_pos;       /* relation head: positive pairs */
    int64_t n_neg, correct_neg;       /* relation head: negative pairs */
} RrStats;

/* Relation loss: BCE with logits (focal when gamma > 0; alpha < 0: no alpha
 * weighting) over N rows; ADDS scale * d(mean loss)/dlogits into dlogits
 * (may be NULL). Accuracy: predict 1 iff logit > 0 (exactly 0 predicts 0).
 * Serial over rows for the counts; the loss comes from core bce_logits_loss. */
void rr_relation_loss(const float *logits, const float *target, int N, float gamma, float alpha,
                      float scale, float *dlogits, RrStats *st);
/* Classification loss for the cut-piece and external-variable heads: CE on
 * the logits (N, C); double_softmax != 0 (reference quirk 1): CE applied to
 * softmax(logits) as if it were logits. prob, dprob: (N, C) scratch.
 * Accuracy: argmax (first maximum). */
void rr_class_loss(const float *logits, const int *labels, int N, int C, int double_softmax,
                   float scale, float *dlogits, float *prob, float *dprob, RrStats *st);

/* Weighted kNN accuracy (§15): bank (Nb, D) and queries (Nq, D) unit rows;
 * for each query the k most similar bank rows (cosine = dot) vote for their
 * class with weight exp(sim / t); prediction = argmax (lowest class on
 * ties). scratch: pretext_knn_scratch_floats(Nb, k, C) floats per thread, for
 * omp_get_max_threads() threads. Opens its own OpenMP region. */
size_t pretext_knn_scratch_floats(int64_t Nb, int k, int C);
double pretext_knn_accuracy(const float *bank, const int32_t *bank_labels, int64_t Nb,
                            const float *queries, const int32_t *query_labels, int64_t Nq, int D,
                            int C, int k, float t, float *scratch);

/* Mean over dimensions of the batch standard deviation of z (B, D): about
 * 1/sqrt(D) for healthy unit vectors, -> 0 under collapse. Serial. */
double pretext_collapse_std(const float *z, int B, int D);

/* ========================================================= combined step */

typedef struct {
    /* MoCo */
    double moco_coef;
    int queue;
    float momentum, temperature;
    int symmetric, shuffle_bn;
    /* RR */
    int views;
    double inter_coef, intra_coef, ext_coef;
    int hidden, cut_classes;
    double piece_size;
    int ext_classes;            /* 0 = auto (max extvar + 1) */
    float focal_gamma, focal_alpha;
    int quirks;                 /* reference_quirks */
    uint64_t seed;              /* train.seed */
} PretextOptions;

SpStatus pretext_options_from_config(const SpConfig *cfg, PretextOptions *o);

/* Statistics of one step (means over the rows each term scores). */
typedef struct {
    int B;
    double loss;                          /* sum of coef * term */
    double l_inter, l_intra, l_ext, l_moco;   /* l_moco: sum over directions */
    RrStats inter, intra, ext;
    int64_t moco_n, moco_correct;         /* (Q+1)-way accuracy counts */
    double z_std;                         /* collapse metric of this batch */
} PretrainStepStats;

typedef struct PretrainState PretrainState;

/* Build f_q + projection head, f_k (when MoCo is on), the RR heads in use,
 * the queue, the augmentation pipeline, the optimizer and every buffer for
 * batches of up to maxB spectra of length L. ext_classes: number of
 * external-variable classes (0: external head off). n_data: spectra per
 * epoch (0: unknown) for the queue warning (Q > N). Validates the config
 * (SP_ECONFIG naming the key). Parameters are initialised from train.seed. */
SpStatus pretrain_state_create(PretrainState **out, const SpConfig *cfg, int L, int maxB,
                               int ext_classes, int64_t n_data);
void pretrain_state_destroy(PretrainState **s);

/* One training step on raw (already normalised) spectra x (B, L): augment
 * (streams keyed by epoch and index[b]; index NULL: 0..B-1), momentum update,
 * forward and backward of every term, NaN/Inf guard on every loss term and
 * gradient, enqueue, optimizer step with learning rate lr, NaN/Inf guard on
 * the updated parameters. A guard failure returns SP_ENUMERIC naming the
 * epoch, step and loss terms; the state is then spoilt (the run loop keeps
 * the last checkpoint and stops). extvar (B) may be NULL only when the external head
 * is off. B <= maxB, B a multiple of pretrain_batch_multiple, B >= 2 with RR. */
SpStatus pretrain_step(PretrainState *s, const float *x, int B, const int64_t *index,
                       const int32_t *extvar, int64_t epoch, int64_t step, float lr,
                       PretrainStepStats *st);

/* The pieces of pretrain_step, for gradient checks and benchmarks:
 * prepare (augmentation, labels) then forward_backward (zero gradients,
 * every forward and backward, keys kept for the enqueue; changes nothing but
 * BN running statistics, activations and gradients). */
SpStatus pretrain_prepare(PretrainState *s, const float *x, int B, const int64_t *index,
                          const int32_t *extvar, int64_t epoch);
SpStatus pretrain_forward_backward(PretrainState *s, int64_t epoch, int64_t step,
                                   PretrainStepStats *st);

/* Introspection. */
int pretrain_batch_multiple(const PretrainState *s);   /* split-BN S */
int pretrain_num_groups(const PretrainState *s);      /* trainable groups */
/* Group i: its parameters and checkpoint name ("encoder_q", "proj_q",
 * "heads/relation_head", "heads/cls_head", "heads/tmp_cls_head"). */
SpParams *pretrain_group(PretrainState *s, int i, const char **name);
SpEncoder *pretrain_encoder_q(PretrainState *s);
SpProjHead *pretrain_proj_q(PretrainState *s);
MocoKeyEncoder *pretrain_key_encoder(PretrainState *s);   /* NULL when MoCo is off */
MocoQueue *pretrain_queue(PretrainState *s);              /* NULL when MoCo is off */
const PretextOptions *pretrain_options(const PretrainState *s);
int pretrain_piece_len(const PretrainState *s);            /* w (0: intra head off) */
int pretrain_ext_classes(const PretrainState *s);          /* 0: external head off */
/* Model FLOPs of one step of B spectra (forward + backward estimate). */
double pretrain_step_flops(const PretrainState *s, int B);
/* Bytes held for activations, buffers, parameters, optimizer state and
 * queue (approximate: small per-call scratch not counted). */
size_t pretrain_state_bytes(const PretrainState *s);
/* Optimizer steps taken. */
int64_t pretrain_optim_steps(const PretrainState *s);

/* Save / load everything that evolves (all parameter groups and buffers,
 * f_k, queue and pointer, optimizer state) under the file/group f. */
SpStatus pretrain_state_save(const PretrainState *s, hid_t f);
SpStatus pretrain_state_load(PretrainState *s, hid_t f, const char *file);

/* ========================================================== the run loop */

typedef struct {
    int resume;               /* continue RUN_DIR/checkpoint.h5 */
    int64_t stop_after_epoch; /* > 0: checkpoint and return SP_OK once this many epochs are done */
    /* Called after every optimizer step (may be NULL; tests, benchmarks). */
    void (*on_step)(void *user, int64_t epoch, int64_t step);
    void *user;
} PretrainRunOpts;

/* `specssl pretrain`: open and normalise the data (data.*), build the
 * state, train train.epochs epochs writing RUN_DIR/{config.cfg,
 * checkpoint.h5, metrics.jsonl}. See pt_run.c for the files' contracts.
 * Returns SP_EUSAGE when RUN_DIR already holds a run and resume is off (or
 * holds none and resume is on), SP_ENUMERIC on a non-finite loss/gradient
 * (last good checkpoint kept), SP_EINTERRUPT after SIGINT/SIGTERM (a
 * checkpoint of the current step was written). */
SpStatus pretrain_run(const SpConfig *cfg, const char *data_path, const char *run_dir,
                      const PretrainRunOpts *opts);

#endif
