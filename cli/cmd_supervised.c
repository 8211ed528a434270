/* cmd_supervised.c - `specssl supervised`: train a supervised baseline (or
 * fine-tune a pretrained encoder) on a labelled subset and score the test
 * file; the subset is the one linear-eval / sweep draw for the same budget,
 * validation size and seed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_util.h"
#include "sp_linear_eval.h"

int cmd_supervised(int argc, char **argv);

int cmd_supervised(int argc, char **argv) {
    const char *arch = NULL, *train = NULL, *test = NULL, *out = NULL, *cfg = NULL, *init = NULL;
    int64_t per_class = -1, seed = -1;
    double fraction = -1;
    CmdStrList sets = {0};
    const CmdOpt opts[] = {
        CMD_OPT_CONFIG(&cfg),
        {"arch", 0, CMD_STR, "NAME", "encoder architecture (default encoder.arch)", &arch, 0},
        {"train", 0, CMD_STR, "FILE.h5", "labelled training spectra", &train, 1},
        {"test", 0, CMD_STR, "FILE.h5", "labelled test spectra", &test, 1},
        {"labels-per-class", 0, CMD_INT, "N", "training labels per class (default 0 = all)",
         &per_class, 0},
        {"fraction", 0, CMD_FLOAT, "F", "instead: this fraction of each class's labels",
         &fraction, 0},
        {"seed", 0, CMD_INT, "S", "split / init seed (default train.seed)", &seed, 0},
        {"init", 0, CMD_STR, "CKPT.h5",
         "fine-tune: start from this checkpoint's encoder (its arch and normalisation)", &init, 0},
        {"out", 'o', CMD_STR, "MODEL.h5", "model file (kind supervised)", &out, 1},
        CMD_OPT_SET(&sets),
    };
    const CmdSpec spec = {
        "supervised",
        "-c CFG --arch NAME --train FILE.h5 --test FILE.h5 [--labels-per-class N | --fraction F] "
        "[--seed S] --out MODEL.h5",
        "train a supervised baseline on the same labels",
        "The labelled subset: linear_eval.val_per_class validation rows per class, then N\n"
        "training rows per class (split seed S), exactly as linear-eval and sweep draw it.\n"
        "Training (supervised.*): cross-entropy, early stopping on the validation loss\n"
        "with the best weights restored, lr reduced on plateaus; input normalisation\n"
        "data.normalise fitted on the training file. With --init, the encoder of a\n"
        "pretrained checkpoint is fine-tuned (encoder lr x supervised.finetune_lr_mult).",
        opts, CMD_NOPTS(opts), 0, 0};
    int rc = cmd_parse(&spec, argc, argv, NULL);
    if (rc != CMD_CONTINUE) {
        cmd_strlist_free(&sets);
        return rc;
    }
    if (per_class >= 0 && fraction >= 0) {
        fprintf(stderr, "specssl: error: supervised: give --labels-per-class or --fraction, not "
                "both\n");
        cmd_strlist_free(&sets);
        return 2;
    }
    if (fraction >= 0 && !(fraction > 0 && fraction <= 1)) {
        fprintf(stderr, "specssl: error: supervised: --fraction %g: expected (0, 1]\n", fraction);
        cmd_strlist_free(&sets);
        return 2;
    }
    if (init && arch) {
        fprintf(stderr, "specssl: error: supervised: --init fixes the architecture; drop --arch\n");
        cmd_strlist_free(&sets);
        return 2;
    }
    SpConfig *c = NULL;
    SpStatus st = cmd_load_config(&c, cfg, &sets);
    if (st == SP_OK) {
        cmd_banner("supervised", c, &sets);
        const char *a = arch ? arch : sp_cfg_str(c, "encoder.arch");
        char mname[96];
        snprintf(mname, sizeof mname, "supervised:%s", a);
        const char *msg = init ? NULL : lineval_check_method(mname);
        if (msg) {
            st = sp_error_set(SP_EUSAGE, __FILE__, __LINE__, "--arch '%s': %s (choices: %s)", a,
                              msg, encoder_arch_names());
        } else {
            int64_t vpc = sp_cfg_int(c, "linear_eval.val_per_class");
            SpSplitSpec b = {per_class > 0 ? (int)per_class : 0, fraction > 0 ? fraction : 0,
                             (int)vpc, vpc > 0 ? 0 : sp_cfg_float(c, "linear_eval.val_fraction"),
                             seed >= 0 ? (uint64_t)seed : (uint64_t)sp_cfg_int(c, "train.seed")};
            LinSupRunInfo info;
            st = lineval_supervised_file(c, a, init, train, test, &b, out, &info);
            if (st == SP_OK) {
                printf("%s %s: %lld training + %lld validation rows, best epoch %d of %d "
                       "(val_acc %.4f), %.1f s\n", init ? "finetune" : "supervised", info.arch,
                       (long long)info.n_train, (long long)info.n_val, info.best_epoch,
                       info.epochs, info.best_val_acc, info.seconds);
                printf("test: %lld spectra, accuracy %.4f, macro-F1 %.4f\n", (long long)info.n_test,
                       info.test_acc, info.test_f1);
                printf("wrote %s\n", out);
            }
        }
    }
    sp_config_free(c);
    cmd_strlist_free(&sets);
    return cmd_finish(st);
}
