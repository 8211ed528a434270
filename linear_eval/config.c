/* config.c - the linear_eval.*, supervised.* and sweep.* configuration keys
 * and their conversion into parameter structs. */
#include <float.h>
#include <stdio.h>
#include <string.h>

#include "sp_linear_eval.h"
#include "sp_log.h"

static const SpCfgKey g_keys[] = {
    /* ------------------------------------------------------ linear probe */
    {"linear_eval.l2_grid", SP_CFG_FLOAT_LIST, "[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]", 0,
     1e6, NULL,
     "probe: candidate L2 strengths on the mean cross-entropy, chosen on the validation rows"},
    {"linear_eval.l2_patience", SP_CFG_INT, "1", 0, 64, NULL,
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

SpStatus lineval_param_from_config(LinParam *p, double *grid, const SpConfig *c, int n_classes) {
    memset(p, 0, sizeof *p);
    p->n_classes = n_classes;
    int n = sp_cfg_list_len(c, "linear_eval.l2_grid");
    if (n > SP_LIN_MAX_GRID)
        SP_FAIL(SP_ECONFIG, "linear_eval.l2_grid: %d values, at most %d", n, SP_LIN_MAX_GRID);
    for (int i = 0; i < n; i++) grid[i] = sp_cfg_float_at(c, "linear_eval.l2_grid", i);
    p->l2_grid = grid;
    p->n_l2 = n;
    p->l2_default = sp_cfg_float(c, "linear_eval.l2_default");
    p->l2_patience = (int)sp_cfg_int(c, "linear_eval.l2_patience");
    p->standardise = sp_cfg_bool(c, "linear_eval.standardise");
    lineval_lbfgs_default(&p->lbfgs);
    p->lbfgs.m = (int)sp_cfg_int(c, "linear_eval.lbfgs_m");
    p->lbfgs.max_iter = (int)sp_cfg_int(c, "linear_eval.max_iter");
    p->lbfgs.gtol = sp_cfg_float(c, "linear_eval.tol");
    if (n == 0 && sp_cfg_int(c, "linear_eval.val_per_class") > 0)
        sp_log(SP_LOG_WARN, "linear_eval.l2_grid is empty: the probe uses l2_default = %g",
               p->l2_default);
    const char *msg = lineval_check_param(p);
    if (msg && n_classes >= 2) SP_FAIL(SP_ECONFIG, "%s", msg);
    return SP_OK;
}

const char *lineval_check_method(const char *name) {
    static const char *plain[] = {"probe", "knn", "random_probe", "random_knn", "finetune"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!strcmp(name, plain[i])) return NULL;
    if (!strncmp(name, "supervised:", 11)) {
        const char *arch = name + 11, *names = encoder_arch_names();
        size_t la = strlen(arch);
        for (const char *p = names; la > 0 && *p;) {
            const char *bar = strchr(p, '|');
            size_t lp = bar ? (size_t)(bar - p) : strlen(p);
            if (lp == la && !strncmp(p, arch, la)) return NULL;
            if (!bar) break;
            p = bar + 1;
        }
        return "unknown architecture after 'supervised:' (see encoder.arch for the choices)";
    }
    return "unknown method (choices: probe, knn, random_probe, random_knn, finetune, "
           "supervised:<arch>)";
}

SpStatus lineval_sweep_spec_from_config(LinSweepSpec *spec, const SpConfig *c) {
    memset(spec, 0, sizeof *spec);
    int nk = sp_cfg_list_len(c, "sweep.labels_per_class"), nf = sp_cfg_list_len(c, "sweep.fractions");
    if (nk + nf == 0)
        SP_FAIL(SP_ECONFIG, "sweep.labels_per_class and sweep.fractions are both empty: nothing "
                "to evaluate");
    if (nk + nf > SP_SWEEP_MAX_BUDGETS)
        SP_FAIL(SP_ECONFIG, "sweep: %d label budgets, at most %d", nk + nf, SP_SWEEP_MAX_BUDGETS);
    for (int i = 0; i < nk; i++) {
        LinBudget *b = &spec->budgets[spec->n_budgets++];
        b->per_class = (int)sp_cfg_int_at(c, "sweep.labels_per_class", i);
        if (b->per_class > 0)
            snprintf(b->name, sizeof b->name, "%d", b->per_class);
        else
            snprintf(b->name, sizeof b->name, "all");
    }
    for (int i = 0; i < nf; i++) {
        LinBudget *b = &spec->budgets[spec->n_budgets++];
        b->fraction = sp_cfg_float_at(c, "sweep.fractions", i);
        if (!(b->fraction > 0))
            SP_FAIL(SP_ECONFIG, "sweep.fractions[%d] = %g must be in (0, 1]", i, b->fraction);
        snprintf(b->name, sizeof b->name, "%g%%", 100 * b->fraction);
    }
    for (int i = 0; i < spec->n_budgets; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(spec->budgets[i].name, spec->budgets[j].name))
                SP_FAIL(SP_ECONFIG, "sweep: label budget '%s' is listed twice",
                        spec->budgets[i].name);
    spec->n_seeds = (int)sp_cfg_int(c, "sweep.seeds");
    spec->seed0 = (uint64_t)sp_cfg_int(c, "train.seed");
    int nm = sp_cfg_list_len(c, "sweep.methods");
    if (nm < 1) SP_FAIL(SP_ECONFIG, "sweep.methods is empty");
    if (nm > SP_SWEEP_MAX_METHODS)
        SP_FAIL(SP_ECONFIG, "sweep.methods: %d methods, at most %d", nm, SP_SWEEP_MAX_METHODS);
    for (int i = 0; i < nm; i++) {
        const char *m = sp_cfg_str_at(c, "sweep.methods", i);
        const char *msg = lineval_check_method(m);
        if (msg) SP_FAIL(SP_ECONFIG, "sweep.methods[%d] = '%s': %s", i, m, msg);
        if (strlen(m) >= sizeof spec->methods[0])
            SP_FAIL(SP_ECONFIG, "sweep.methods[%d]: name too long", i);
        for (int j = 0; j < i; j++)
            if (!strcmp(spec->methods[j], m))
                SP_FAIL(SP_ECONFIG, "sweep.methods: '%s' is listed twice", m);
        snprintf(spec->methods[spec->n_methods++], sizeof spec->methods[0], "%s", m);
    }
    spec->reports = 1;
    return SP_OK;
}
