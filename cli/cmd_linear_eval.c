/* cmd_linear_eval.c - `specssl linear-eval`: the frozen-encoder linear probe
 * and weighted kNN for one label budget over several split seeds; prints a
 * table, optionally writes reports, splits and the probe models to --out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_util.h"
#include "sp_linear_eval.h"
#include "sp_log.h"

int cmd_linear_eval(int argc, char **argv);

int cmd_linear_eval(int argc, char **argv) {
    const char *ckpt = NULL, *train = NULL, *test = NULL, *out = NULL, *cfg = NULL;
    int64_t per_class = -1, seeds = -1;
    double fraction = -1;
    int random_too = 0;
    CmdStrList sets = {0};
    const CmdOpt opts[] = {
        {"ckpt", 0, CMD_STR, "CKPT.h5", "checkpoint with the encoder (pretrain or supervised)",
         &ckpt, 1},
        {"train", 0, CMD_STR, "FILE.h5", "labelled spectra the probe learns from", &train, 1},
        {"test", 0, CMD_STR, "FILE.h5", "labelled spectra scored once", &test, 1},
        {"labels-per-class", 0, CMD_INT, "N",
         "training labels per class (0: all; default linear_eval.labels_per_class)", &per_class, 0},
        {"fraction", 0, CMD_FLOAT, "F", "instead: this fraction of each class's labels", &fraction,
         0},
        {"seeds", 0, CMD_INT, "S", "split seeds train.seed .. train.seed+S-1 (default "
         "linear_eval.seeds)", &seeds, 0},
        {"random", 0, CMD_FLAG, NULL, "also the probe and kNN on a randomly initialised encoder "
         "of the same architecture", &random_too, 0},
        {"out", 'o', CMD_STR, "DIR", "write sweep.{csv,md,svg}, splits.h5 and probe_*.h5 here",
         &out, 0},
        CMD_OPT_CONFIG(&cfg),
        CMD_OPT_SET(&sets),
    };
    const CmdSpec spec = {
        "linear-eval",
        "--ckpt CKPT.h5 --train FILE.h5 --test FILE.h5 [--labels-per-class N | --fraction F] "
        "[--seeds S] [--out DIR]",
        "linear probe / kNN on a frozen encoder with few labels",
        "Per seed, a stratified subset of the training file's labels is drawn:\n"
        "linear_eval.val_per_class validation rows per class first, then N training rows\n"
        "per class. The encoder (eval mode, never updated) gives the features h once;\n"
        "the probe is a multinomial logistic regression (L-BFGS) whose L2 strength is\n"
        "chosen on the validation rows; the test file is scored once per seed. The\n"
        "encoder's fingerprint is checked at the end (frozen-encoder check).",
        opts, CMD_NOPTS(opts), 0, 0};
    int rc = cmd_parse(&spec, argc, argv, NULL);
    if (rc != CMD_CONTINUE) {
        cmd_strlist_free(&sets);
        return rc;
    }
    if (per_class >= 0 && fraction >= 0) {
        fprintf(stderr, "specssl: error: linear-eval: give --labels-per-class or --fraction, not "
                "both\n");
        cmd_strlist_free(&sets);
        return 2;
    }
    if (fraction >= 0 && !(fraction > 0 && fraction <= 1)) {
        fprintf(stderr, "specssl: error: linear-eval: --fraction %g: expected a value in (0, 1]\n",
                fraction);
        cmd_strlist_free(&sets);
        return 2;
    }
    if (seeds != -1 && (seeds < 1 || seeds > 1000)) {
        fprintf(stderr, "specssl: error: linear-eval: --seeds %lld: expected 1..1000\n",
                (long long)seeds);
        cmd_strlist_free(&sets);
        return 2;
    }
    SpConfig *c = NULL;
    LinSweepResult *res = NULL;
    int made_out = 0;
    SpStatus st = cmd_load_config(&c, cfg, &sets);
    if (st == SP_OK) {
        cmd_banner("linear-eval", c, &sets);
        LinSweepSpec sw;
        memset(&sw, 0, sizeof sw);
        sw.n_budgets = 1;
        LinBudget *b = &sw.budgets[0];
        if (fraction > 0) {
            b->fraction = fraction;
            snprintf(b->name, sizeof b->name, "%g%%", 100 * fraction);
        } else {
            b->per_class = per_class >= 0 ? (int)per_class
                                          : (int)sp_cfg_int(c, "linear_eval.labels_per_class");
            if (b->per_class > 0)
                snprintf(b->name, sizeof b->name, "%d", b->per_class);
            else
                snprintf(b->name, sizeof b->name, "all");
        }
        sw.n_seeds = seeds > 0 ? (int)seeds : (int)sp_cfg_int(c, "linear_eval.seeds");
        sw.seed0 = (uint64_t)sp_cfg_int(c, "train.seed");
        const char *ms[4] = {"probe", "knn", "random_probe", "random_knn"};
        sw.n_methods = random_too ? 4 : 2;
        for (int i = 0; i < sw.n_methods; i++) snprintf(sw.methods[i], sizeof sw.methods[i], "%s", ms[i]);
        sw.title = "specssl linear-eval";
        if (out) {
            made_out = access(out, F_OK) != 0;
            st = lineval_mkdir_p(out);
            sw.out_dir = out;
            sw.reports = 1;
            sw.save_probes = 1;
        }
        if (st == SP_OK) st = lineval_sweep_run(&res, c, ckpt, train, test, &sw);
        if (st == SP_OK) {
            char *tab = lineval_sweep_table(res);
            printf("\nTest accuracy (%%), mean ± std over %d seed%s (%s training labels per class, "
                   "%lld validation rows):\n\n%s", sw.n_seeds, sw.n_seeds == 1 ? "" : "s", b->name,
                   res->n_rows ? (long long)res->rows[0].n_val : 0LL, tab ? tab : "");
            free(tab);
            printf("\n%-14s %-6s %8s %8s %10s %10s\n", "method", "seed", "test_acc", "macro_f1",
                   "selected", "time_s");
            for (int i = 0; i < res->n_rows; i++) {
                const LinSweepRow *w = &res->rows[i];
                printf("%-14s %-6llu %8.4f %8.4f %10.3g %10.2f\n", w->method,
                       (unsigned long long)w->seed, w->acc, w->f1, w->selected, w->seconds);
            }
            printf("\nfrozen-encoder check passed (fingerprint %016llx)\n",
                   (unsigned long long)res->encoder_hash);
            if (out) printf("wrote %s/sweep.md, sweep.csv, sweep.svg, splits.h5, probe_*.h5\n", out);
        }
    }
    /* a refused run leaves no trace: remove the folder we created if it is
     * still empty (rmdir fails on a non-empty one) */
    if (st != SP_OK && made_out) rmdir(out);
    lineval_sweep_free(&res);
    sp_config_free(c);
    cmd_strlist_free(&sets);
    return cmd_finish(st);
}
