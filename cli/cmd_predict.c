/* cmd_predict.c - `specssl predict`: apply a saved probe (with its encoder
 * checkpoint) or supervised model to a dataset. */
#include <stdio.h>
#include <stdlib.h>

#include "cmd_util.h"
#include "sp_linear_eval.h"

int cmd_predict(int argc, char **argv);

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL, *cfg = NULL;
    CmdStrList sets = {0};
    const CmdOpt opts[] = {
        {"model", 0, CMD_STR, "MODEL.h5", "probe (kind linear) or supervised model", &model, 1},
        {"data", 0, CMD_STR, "FILE.h5", "spectra to classify", &data, 1},
        {"out", 'o', CMD_STR, "PRED.h5", "/predictions, /probabilities (+ /labels)", &out, 1},
        CMD_OPT_CONFIG(&cfg),
        CMD_OPT_SET(&sets),
    };
    const CmdSpec spec = {
        "predict", "--model MODEL.h5 --data FILE.h5 --out PRED.h5",
        "class predictions of a trained model",
        "A probe uses the encoder checkpoint it names (its fingerprint must match) and\n"
        "the stored input normalisation. -c/--set only affect how the data file is read.\n"
        "When the data has labels, the accuracy is printed.",
        opts, CMD_NOPTS(opts), 0, 0};
    int rc = cmd_parse(&spec, argc, argv, NULL);
    if (rc != CMD_CONTINUE) {
        cmd_strlist_free(&sets);
        return rc;
    }
    SpConfig *c = NULL;
    SpStatus st = cmd_load_config(&c, cfg, &sets);
    if (st == SP_OK) {
        cmd_banner("predict", c, &sets);
        LinPredictInfo info;
        st = lineval_predict_file(c, model, data, out, &info);
        if (st == SP_OK) {
            printf("%s model %s%s%s: %lld spectra, %d classes\n", info.kind, model,
                   info.encoder[0] ? " on encoder " : "", info.encoder, (long long)info.n, info.C);
            if (info.labelled > 0)
                printf("accuracy %.4f (%lld of %lld labelled spectra)\n",
                       (double)info.correct / (double)info.labelled, (long long)info.correct,
                       (long long)info.labelled);
            printf("wrote %s: /predictions [%lld], /probabilities [%lld, %d]%s\n", out,
                   (long long)info.n, (long long)info.n, info.C,
                   info.labelled > 0 ? ", /labels" : "");
        }
    }
    sp_config_free(c);
    cmd_strlist_free(&sets);
    return cmd_finish(st);
}
