/* config.c - the linear_eval.*, supervised.* and sweep.* configuration keys
 * and their conversion into parameter structs. */
#include <float.h>
#include <string.h>

#include "sp_linear_eval.h"

static const SpCfgKey g_keys[] = {
    /* ------------------------------------------------------ linear probe */
    {"linear_eval.l2_grid", SP_CFG_FLOAT_LIST, "[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]", 0,
     1e6, NULL,
     "probe: candidate L2 strengths on the mean cross-entropy, chosen on the validation rows"},
    {"linear_eval.l2_patience", SP_CFG_INT, "2", 0, 64, NULL,
     "probe: stop the L2 path (strong to weak) after this many strengths worse than the best "
     "in both validation accuracy and loss (0: fit the whole grid)"},
    {"linear_eval.l2_default", SP_CFG_FLOAT, "1e-3", 0, 1e6, NULL,
     "probe: L2 strength used when a run has no validation rows"},
    {"linear_eval.standardise", SP_CFG_BOOL, "true", 1, 0, NULL,
     "probe: z-score features with the mean/std of the labelled training rows"},
    {"linear_eval.max_iter", SP_CFG_INT, "500", 1, 1e6, NULL,
     "probe: L-BFGS iterations per L2 strength"},
    {"linear_eval.tol", SP_CFG_FLOAT, "1e-4", DBL_TRUE_MIN, 1, NULL,
     "probe: L-BFGS stops when max |gradient| <= tol * max |gradient at W = 0|"},
    {"linear_eval.lbfgs_m", SP_CFG_INT, "10", 1, 100, NULL, "probe: L-BFGS history pairs"},
    {"linear_eval.val_per_class", SP_CFG_INT, "5", 0, 1e9, NULL,
     "validation rows per class drawn from the labelled training file, before the training "
     "rows and independent of the label budget (L2 selection, early stopping); 0: use "
     "val_fraction"},
    {"linear_eval.val_fraction", SP_CFG_FLOAT, "0.0", 0, 0.99, NULL,
     "validation fraction per class when val_per_class = 0 (0: no validation rows)"},
    {"linear_eval.knn_k", SP_CFG_INT, "20", 1, 1e6, NULL, "kNN: neighbours (clamped to the "
     "training rows)"},
    {"linear_eval.knn_t", SP_CFG_FLOAT, "0.1", DBL_TRUE_MIN, 1e3, NULL,
     "kNN: temperature of the vote weights exp(sim / t)"},
    {"linear_eval.batch", SP_CFG_INT, "256", 1, 1e6, NULL,
     "spectra per batch for feature extraction and evaluation"},
    {"linear_eval.labels_per_class", SP_CFG_INT, "10", 0, 1e9, NULL,
     "linear-eval: labelled training rows per class (0: all); --labels-per-class overrides"},
    {"linear_eval.seeds", SP_CFG_INT, "3", 1, 1000, NULL,
     "linear-eval: number of split seeds (train.seed, train.seed + 1, ...); --seeds overrides"},
    /* --------------------------------------------------- supervised */
    {"supervised.optimizer", SP_CFG_STRING, "\"adam\"", 1, 0, "adam|adamw|sgd",
     "supervised / fine-tuning optimizer"},
    {"supervised.lr", SP_CFG_FLOAT, "3e-4", DBL_TRUE_MIN, 10, NULL,
     "supervised: learning rate (Schuetzke et al.: Adam 3e-4)"},
    {"supervised.momentum", SP_CFG_FLOAT, "0.9", 0, 1, NULL, "supervised: SGD momentum"},
    {"supervised.weight_decay", SP_CFG_FLOAT, "0.0", 0, 1, NULL,
     "supervised: L2 weight decay (decoupled for adamw)"},
    {"supervised.epochs", SP_CFG_INT, "500", 1, 1e7, NULL, "supervised: maximum epochs"},
    {"supervised.min_steps_per_epoch", SP_CFG_INT, "1", 1, 1e6, NULL,
     "supervised: an epoch is at least this many steps (tiny label budgets repeat the "
     "shuffled training rows)"},
    {"supervised.batch_size", SP_CFG_INT, "128", 1, 1e6, NULL,
     "supervised: training batch (rounded down to a multiple of the BN split count)"},
    {"supervised.patience", SP_CFG_INT, "25", 0, 1e7, NULL,
     "supervised: early stopping after this many epochs without a better validation loss "
     "(0: off); the best weights are restored"},
    {"supervised.min_delta", SP_CFG_FLOAT, "1e-4", 0, 1e3, NULL,
     "supervised: an improvement of the validation loss must exceed this"},
    {"supervised.plateau_patience", SP_CFG_INT, "10", 0, 1e7, NULL,
     "supervised: multiply the lr by plateau_factor after this many epochs without a better "
     "validation loss (0: off)"},
    {"supervised.plateau_factor", SP_CFG_FLOAT, "0.1", DBL_TRUE_MIN, 1, NULL,
     "supervised: lr reduction factor on a plateau"},
    {"supervised.min_lr", SP_CFG_FLOAT, "0.0", 0, 10, NULL, "supervised: lower bound of the lr"},
    {"supervised.augment", SP_CFG_BOOL, "false", 1, 0, NULL,
     "supervised: augment training batches with the augment.* pipeline"},
    {"supervised.augment_p", SP_CFG_FLOAT, "0.5", 0, 1, NULL,
     "supervised: firing probability of each augmentation (when augment = true)"},
    {"supervised.finetune_lr_mult", SP_CFG_FLOAT, "0.1", 0, 10, NULL,
     "fine-tuning: encoder lr = supervised.lr * this (the classifier uses supervised.lr)"},
    {"supervised.finetune_bn", SP_CFG_STRING, "\"train\"", 1, 0, "train|frozen",
     "fine-tuning: BatchNorm uses batch statistics (train) or keeps the pretrained running "
     "statistics (frozen)"},
    /* -------------------------------------------------------- sweep */
    {"sweep.labels_per_class", SP_CFG_INT_LIST, "[1, 2, 5, 10, 25, 0]", 0, 1e9, NULL,
     "sweep: labelled training rows per class (0 = all labelled rows)"},
    {"sweep.fractions", SP_CFG_FLOAT_LIST, "[]", 0, 1, NULL,
     "sweep: label fractions per class (in addition to labels_per_class)"},
    {"sweep.seeds", SP_CFG_INT, "3", 1, 1000, NULL,
     "sweep: split seeds per label budget (train.seed, train.seed + 1, ...)"},
    {"sweep.methods", SP_CFG_STRING_LIST, "[\"probe\", \"knn\", \"supervised:cnn\"]", 1, 0, NULL,
     "sweep: probe | knn | random_probe | random_knn | finetune | supervised:<arch>"},
};

void linear_eval_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}
