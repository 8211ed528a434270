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

#include "sp_augment.h"
#include "sp_config.h"
#include "sp_data.h"
#include "sp_encoder.h"
#include "sp_error.h"
#include "sp_optim.h"

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
#define SP_LIN_PATH_MAX 4096

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
    int refine_iters;      /* iterations refining the selected strength to the full tolerance */
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
 * losing on both. The path is fitted to 10x the tolerance (the ranking is
 * what matters); the selected strength is then refined to the tolerance. The returned model is the training-rows fit at the selected
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

/* ============================================================ features */

/* Features h of dataset rows idx[0..n) (idx NULL: rows 0..n-1) into out
 * (n, D): encoder in eval mode, input normalised with norm (may be NULL), no
 * augmentation, batches of `batch`. SP_ENUMERIC on a non-finite feature. */
SpStatus lineval_features(SpEncoder *e, SpDataset *ds, const int64_t *idx, int64_t n,
                          const SpNorm *norm, int batch, float *out);
/* Rows idx[0..n) of ds, normalised, into out (n, L) (sequential loader). */
SpStatus lineval_gather(SpDataset *ds, const int64_t *idx, int64_t n, const SpNorm *norm,
                        int batch, float *out);
/* FNV-1a 64 of every parameter and buffer byte (BN running statistics
 * included): the frozen-encoder check compares it before and after. */
uint64_t lineval_encoder_hash(const SpEncoder *e);

/* A copy of cfg whose encoder.input_length is L when it was 0 (so
 * architectures whose parameters depend on the length build for the data). */
SpStatus lineval_config_with_length(SpConfig **out, const SpConfig *cfg, int L);

/* The labelled subset of a run (split_make, see the module comment):
 * spec->per_class > 0: k rows per class; spec->fraction > 0: that fraction;
 * both 0: every labelled row that is not validation ("all"). */
SpStatus lineval_split(SpSplit *s, const SpDataset *ds, const SpSplitSpec *spec);

/* ========================================================= supervised */

typedef struct {
    SpOptimKind opt;
    double lr, momentum, weight_decay;
    int epochs, batch_size, min_steps_per_epoch;
    int patience;            /* early stopping on the validation loss (0: off) */
    double min_delta;
    int plateau_patience;    /* lr *= plateau_factor after this many flat epochs (0: off) */
    double plateau_factor, min_lr;
    int augment;             /* augment training batches (augment.* pipeline, each p = augment_p) */
    double augment_p;
    double encoder_lr_mult;  /* encoder lr = lr * this (1: from scratch; fine-tuning < 1) */
    int bn_frozen;           /* fine-tuning with the running BN statistics (no batch stats) */
    int eval_batch;
    uint64_t seed;           /* batch order and augmentation streams */
    int log_level;           /* SpLogLevel of the per-epoch lines */
    char tag[48];            /* log prefix, e.g. "supervised:cnn" */
} LinSupParam;

/* An encoder with a linear classifier on its feature h. */
typedef struct {
    SpEncoder *enc;          /* owned */
    SpParams head;           /* "weight" (C, D), "bias" (C) */
    int C, D;
    /* record of the last training run */
    int epochs_run, best_epoch, stopped_early;
    double best_val_loss, best_val_acc, best_train_loss, best_train_acc, final_lr, train_seconds;
    double last_val_loss;    /* of the last epoch run (before the best weights were restored) */
} LinSupModel;

/* supervised.* (plus linear_eval.batch, train.seed) into p; encoder_lr_mult 1. */
SpStatus lineval_sup_param_from_config(LinSupParam *p, const SpConfig *c);
const char *lineval_sup_check_param(const LinSupParam *p);
/* Takes ownership of *enc (set to NULL); classifier initialised as PyTorch's
 * nn.Linear from a stream keyed by seed. */
SpStatus lineval_sup_create(LinSupModel **out, SpEncoder **enc, int C, uint64_t seed);
/* Train on dataset rows train_idx with validation rows val_idx (see
 * supervised.c for the batch rules); the weights of the best validation
 * epoch are restored at the end. aug may be NULL when p->augment = 0. */
SpStatus lineval_sup_train(LinSupModel *m, SpDataset *ds, const int64_t *train_idx,
                           int64_t n_train, const int64_t *val_idx, int64_t n_val,
                           const SpNorm *norm, const AugSpec *aug, const LinSupParam *p);
/* Eval-mode predictions of rows idx (NULL: 0..n-1): pred [n], prob [n, C]
 * (either may be NULL). */
SpStatus lineval_sup_predict(LinSupModel *m, SpDataset *ds, const int64_t *idx, int64_t n,
                             const SpNorm *norm, int batch, int32_t *pred, float *prob);
/* Model file: kind "supervised", arch = the encoder's, config_text (must set
 * encoder.arch to that architecture so encoder_load_ckpt rebuilds it);
 * groups encoder_q, classifier, norm, split (indices of the labelled rows). */
SpStatus lineval_sup_save(const LinSupModel *m, const char *path, const SpNorm *norm,
                          const char *config_text, const SpSplit *split);
SpStatus lineval_sup_load(LinSupModel **out, const char *path, SpNorm *norm, int *have_norm);
void lineval_sup_destroy(LinSupModel **m);

/* ================================================== runs, sweep, reports */

/* linear_eval.* into p (grid copied into grid[SP_LIN_MAX_GRID]). */
SpStatus lineval_param_from_config(LinParam *p, double *grid, const SpConfig *c, int n_classes);
/* The input normalisation stored with a checkpoint (group "norm"); *have = 0
 * when absent (imported weights: spectra are fed as stored). */
SpStatus lineval_load_norm(const char *ckpt, SpNorm *nm, int *have);

#define SP_SWEEP_MAX_BUDGETS 32
#define SP_SWEEP_MAX_METHODS 16

/* A label budget: per_class > 0 rows per class, or fraction > 0, or "all"
 * (both 0). */
typedef struct {
    int per_class;
    double fraction;
    char name[32];     /* "5", "all", "10%" */
} LinBudget;

typedef struct {
    int n_budgets;
    LinBudget budgets[SP_SWEEP_MAX_BUDGETS];
    int n_seeds;
    uint64_t seed0;                 /* split seeds seed0, seed0 + 1, ... */
    int n_methods;
    char methods[SP_SWEEP_MAX_METHODS][64];
    const char *out_dir;            /* NULL: nothing written */
    int reports;                    /* write sweep.{csv,md,svg}, confusion.{csv,svg} */
    int save_probes;                /* write <out_dir>/probe_<budget>_s<seed>.h5 */
    const char *title;              /* plot title (NULL: "specssl sweep") */
} LinSweepSpec;

typedef struct {
    char method[64];
    int budget;                     /* index into the spec's budgets */
    uint64_t seed;
    int64_t n_train, n_val, n_test;
    double acc, f1, seconds, val_acc;
    double selected;                /* probe: l2; supervised/finetune: best epoch; kNN: k */
} LinSweepRow;

typedef struct {
    LinSweepSpec spec;
    int C;
    char **class_names;             /* [C] or NULL */
    int n_rows, cap;
    LinSweepRow *rows;
    int64_t *confusion;             /* [n_methods][n_budgets][C*C], summed over seeds */
    double feature_seconds;         /* SSL features of the labelled train + test rows */
    uint64_t encoder_hash;          /* of the frozen SSL encoder (0: none used) */
} LinSweepResult;

/* Check a method name: probe | knn | random_probe | random_knn | finetune |
 * supervised:<registered arch>. NULL or a message. */
const char *lineval_check_method(const char *name);
/* sweep.* (and linear_eval.val_*) into spec; out_dir etc. left to the caller. */
SpStatus lineval_sweep_spec_from_config(LinSweepSpec *spec, const SpConfig *c);

/* The whole protocol: open train/test (data.* keys of cfg), load the
 * checkpoint's encoder and normalisation when a method needs them, then for
 * every budget x seed draw the split (saved to <out_dir>/splits.h5) and run
 * every method on it, scoring the test rows once. The frozen SSL encoder is
 * fingerprinted before and re-checked after (SP_EINTERNAL on a change).
 * Progress lines go to the log. ckpt may be NULL when no method needs it. */
SpStatus lineval_sweep_run(LinSweepResult **out, const SpConfig *cfg, const char *ckpt,
                           const char *train_path, const char *test_path,
                           const LinSweepSpec *spec);
void lineval_sweep_free(LinSweepResult **r);

/* Mean and sample standard deviation over seeds of one (method, budget). */
typedef struct {
    int n;
    double acc_mean, acc_std, f1_mean, f1_std, sec_mean, n_train_mean;
} LinSweepStat;
LinSweepStat lineval_sweep_stat(const LinSweepResult *r, int method, int budget);

/* Reports in dir: sweep.csv (one row per method x budget x seed),
 * sweep_summary.csv, sweep.md, sweep.svg, confusion.csv, confusion.svg. */
SpStatus lineval_sweep_write_reports(const LinSweepResult *r, const char *dir);
/* The Markdown table (accuracy, mean +- std over seeds, in %) as text
 * (malloc'ed). */
char *lineval_sweep_table(const LinSweepResult *r);

/* ================================================== command back-ends */

/* mkdir -p */
SpStatus lineval_mkdir_p(const char *dir);

typedef struct {
    char arch[64];
    int64_t n_train, n_val, n_test;
    double test_acc, test_f1, best_val_acc, seconds;
    int best_epoch, epochs;
} LinSupRunInfo;

/* `specssl supervised`: split the training file (budget: lineval_split spec
 * incl. seed and validation size), train a fresh `arch` encoder (init_ckpt
 * NULL; input normalisation data.normalise fitted on the training file) or
 * fine-tune the encoder of init_ckpt (its normalisation), score the test
 * file's labelled rows once, and save the model (out_path may be NULL). */
SpStatus lineval_supervised_file(const SpConfig *cfg, const char *arch, const char *init_ckpt,
                                 const char *train_path, const char *test_path,
                                 const SpSplitSpec *budget, const char *out_path,
                                 LinSupRunInfo *info);

typedef struct {
    char kind[32];
    char encoder[4096];   /* probe: the encoder checkpoint used */
    int64_t n, labelled, correct;
    int C;
} LinPredictInfo;

/* `specssl predict`: apply a probe (kind "linear", with its encoder
 * checkpoint, whose fingerprint must match) or a supervised model to every
 * row of data_path; writes /predictions, /probabilities (+ /labels). */
SpStatus lineval_predict_file(const SpConfig *cfg, const char *model_path, const char *data_path,
                              const char *out_path, LinPredictInfo *info);

/* ================================================================ demo */

typedef struct {
    char data_dir[4096], train[4200], test[4200], run_dir[4200], ckpt[4300], sweep_dir[4200];
    double seconds_data, seconds_pretrain, seconds_sweep, seconds_total;
} LinDemoPaths;

/* Give every key the user left at its default the demo's value (small
 * conv-attention encoder, relational-reasoning pretraining, the sweep). */
SpStatus lineval_demo_config(SpConfig *c);
/* Generate the ramp data (training ramps 0-1, test ramps 2-3, `length`
 * points), pretrain (pretext module; an existing run in out_dir/pretrain is
 * continued), run the sweep; files under out_dir. */
SpStatus lineval_demo_run(const SpConfig *c, const char *out_dir, int length,
                          LinSweepResult **res, LinDemoPaths *paths);

#endif
