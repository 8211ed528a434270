/* sp_linear_eval.h - evaluation of representations with few labels: the
 * frozen-encoder linear probe, weighted kNN, supervised baselines trained on
 * exactly the same labelled subsets, the label-fraction sweep and its
 * reports (reference/specrrmoco.md §9.2, §15).
 *
 * Dimension letters: N rows, D feature width, C classes, L spectrum length.
 * Features are row-major float32 (N, D); labels int32 in [0, C).
 *
 * Protocol (what every function here implements, in one place):
 * - Features are the encoder output h (not the projection), computed once,
 *   without augmentation, with the encoder in eval mode and the input
 *   normalisation stored with the checkpoint.
 * - The labelled subset of a run is split_make's stratified draw: per class,
 *   v validation rows first (independent of the label budget), then k
 *   training rows (k = 0: every remaining labelled row). Every method of a
 *   run (probe, kNN, supervised, fine-tuning) uses the same rows.
 * - Hyper-parameters (probe: L2 strength; supervised: early stopping, lr
 *   plateau) are chosen on the validation rows only. The final probe is the
 *   fit on the training rows at the selected strength (no refit on
 *   train + val: every method learns its weights from the same k labels per
 *   class); the test rows are scored exactly once.
 *
 * Allocation: lineval_train/knn/metrics allocate their own scratch (not
 * training-step code). Threading: functions open their own OpenMP regions
 * (BLAS single-threaded inside); never call them from inside a parallel
 * region. Results are deterministic for a given thread count.
 */
#ifndef SP_LINEAR_EVAL_H
#define SP_LINEAR_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_data.h"
#include "sp_error.h"

/* Registers linear_eval.*, supervised.*, sweep.* (idempotent). */
void linear_eval_config_register(void);

/* =============================================================== metrics */

typedef struct {
    int C;
    int64_t n;            /* scored rows */
    int64_t correct;
    double acc;           /* correct / n */
    double macro_f1;      /* mean F1 over classes present in truth or prediction */
    int64_t *confusion;   /* [C, C] row = true class, column = prediction */
} LinMetrics;

/* pred, labels [n] in [0, C) (rows with label < 0 are skipped). Allocates
 * the confusion matrix (lineval_metrics_free). */
SpStatus lineval_metrics(LinMetrics *m, const int32_t *pred, const int32_t *labels, int64_t n,
                         int C);
void lineval_metrics_free(LinMetrics *m);

/* ================================================================ L-BFGS */

/* f(x) and its gradient g (n doubles); returns f. A non-finite f makes the
 * line search backtrack. */
typedef double (*LinObjective)(void *ctx, const double *x, double *g);

typedef struct {
    int m;            /* history pairs (10) */
    int max_iter;     /* iterations (500) */
    double gtol;      /* stop when max|g| <= gtol */
    double ftol;      /* stop when the relative decrease of f over one iteration < ftol */
    int max_ls;       /* function evaluations per line search (40) */
} LinLbfgsParam;

typedef enum {
    SP_LBFGS_GTOL = 0,     /* gradient small enough */
    SP_LBFGS_FTOL,         /* no more relative progress */
    SP_LBFGS_MAXITER,      /* iteration budget used */
    SP_LBFGS_LINESEARCH    /* no acceptable step (precision limit of f): x is the best point */
} LinLbfgsStop;

typedef struct {
    int iters, evals;
    double f, gmax;
    LinLbfgsStop stop;
} LinLbfgsResult;

void lineval_lbfgs_default(LinLbfgsParam *p);
/* Minimise f from x (in place, n doubles): two-loop recursion with m pairs,
 * strong-Wolfe line search (c1 1e-4, c2 0.9; bracketing + zoom with cubic
 * interpolation), first step 1/|g|. Curvature pairs with s.y <= eps are
 * skipped. Allocates (2m+4)n doubles. SP_ENUMERIC if f(x0) is not finite. */
SpStatus lineval_lbfgs(LinObjective f, void *ctx, double *x, size_t n, const LinLbfgsParam *p,
                       LinLbfgsResult *res);

/* ========================================================== linear probe */

/* A labelled feature set: x (n, D), y (n) in [0, C). */
typedef struct {
    int64_t n;
    int D;
    const float *x;
    const int32_t *y;
} LinProblem;

typedef struct {
    int n_classes;         /* C */
    const double *l2_grid; /* candidate L2 strengths (on the mean loss), any order */
    int n_l2;
    double l2_default;     /* used when there are no validation rows */
    int l2_patience;       /* > 0: stop the path after this many consecutive strengths
                            * worse than the best in both validation accuracy and loss */
    int standardise;       /* 1: z-score features with the training rows' mean/std */
    LinLbfgsParam lbfgs;   /* gtol is relative: max|g| <= gtol * max|g(W = 0, b = 0)| */
} LinParam;

#define SP_LIN_MAX_GRID 64
#define SP_LIN_PATH_MAX 1024

typedef struct {
    int C, D;
    float *w;              /* [C, D], acting on standardised features */
    float *b;              /* [C] */
    float *mean, *std;     /* [D]: x' = (x - mean) / std; NULL: identity */
    double l2;             /* selected strength */
    /* selection path (in the order fitted: strongest first) */
    int n_path;
    double path_l2[SP_LIN_MAX_GRID], path_val_acc[SP_LIN_MAX_GRID],
        path_val_loss[SP_LIN_MAX_GRID], path_train_loss[SP_LIN_MAX_GRID];
    int path_iters[SP_LIN_MAX_GRID];
    int64_t n_train, n_val;
    double fit_seconds;
    /* provenance (saved with the model) */
    char encoder_ckpt[SP_LIN_PATH_MAX];  /* path of the encoder checkpoint ("" if none) */
    char arch[64];
    char feature[32];                    /* "feature" (h) */
    uint64_t encoder_hash;               /* lineval_encoder_hash of that encoder (0: unknown) */
} LinModel;

/* NULL or a message naming the problem (liblinear's check_parameter). */
const char *lineval_check_param(const LinParam *p);
/* Fit the probe on train; select the L2 strength on val (val may be NULL or
 * empty: l2_default). The grid is fitted from the strongest to the weakest
 * strength with warm starts; each candidate is scored by validation accuracy,
 * ties broken by the lower validation cross-entropy, then by the stronger
 * strength; with l2_patience the path stops once weaker strengths keep
 * losing on both. The returned model is the training-rows fit at the selected
 * strength. Objective: mean cross-entropy + l2/2 |W|^2 (bias unpenalised). */
SpStatus lineval_train(LinModel **out, const LinProblem *train, const LinProblem *val,
                       const LinParam *p);
/* pred [n] (may be NULL), prob [n, C] (may be NULL) for raw features x (n, D). */
SpStatus lineval_predict(const LinModel *m, const float *x, int64_t n, int32_t *pred, float *prob);
/* Model file: kind "linear" (sp_checkpoint), arch = m->arch, config_text
 * stored (may be NULL); datasets linear/weight (C, D), linear/bias (C),
 * linear/feat_mean, linear/feat_std (D) when standardised, linear/selection
 * path; attributes encoder_ckpt, feature, n_classes, l2, encoder_hash; the
 * input normalisation of the encoder (norm, may be NULL) as group "norm". */
SpStatus lineval_save(const LinModel *m, const char *path, const SpNorm *norm,
                      const char *config_text);
/* Loads a kind "linear" file (also the probe written by import-torch, which
 * has no standardisation). norm (may be NULL) receives the stored input
 * normalisation; *have_norm = 0 when absent. */
SpStatus lineval_load(LinModel **out, const char *path, SpNorm *norm, int *have_norm);
void lineval_destroy(LinModel **m);

/* ============================================================ kNN */

/* Weighted kNN (solo-learn / MoCo monitor): cosine similarity of
 * L2-normalised features, the k most similar training rows (ties: lower
 * index), class vote sum exp(sim / t); prediction = argmax (ties: lower
 * class). k is clamped to n_train. scores [nq, C] (may be NULL) receives the
 * votes normalised to sum 1. */
SpStatus lineval_knn(const LinProblem *train, int C, const float *query, int64_t nq, int k,
                     double t, int32_t *pred, float *scores);

#endif
