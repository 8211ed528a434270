/* cmd_sweep.c - `specssl sweep`: every method of sweep.methods on every
 * label budget x seed, with reports (sweep.csv, sweep.md, sweep.svg,
 * confusion.*) and the split indices in --out. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cmd_util.h"
#include "sp_linear_eval.h"

int cmd_sweep(int argc, char **argv);

int cmd_sweep(int argc, char **argv) {
    const char *ckpt = NULL, *train = NULL, *test = NULL, *out = NULL, *cfg = NULL,
               *title = NULL;
    CmdStrList sets = {0};
    const CmdOpt opts[] = {
        CMD_OPT_CONFIG(&cfg),
        {"ckpt", 0, CMD_STR, "CKPT.h5",
         "pretrained checkpoint (needed by probe, knn, random_*, finetune)", &ckpt, 0},
        {"train", 0, CMD_STR, "FILE.h5", "labelled training spectra", &train, 1},
        {"test", 0, CMD_STR, "FILE.h5", "labelled test spectra (scored once per run)", &test, 1},
        {"out", 'o', CMD_STR, "DIR", "output folder (created)", &out, 1},
        {"title", 0, CMD_STR, "TEXT", "title of the plot and report", &title, 0},
        CMD_OPT_SET(&sets),
    };
    const CmdSpec spec = {
        "sweep", "-c CFG --ckpt CKPT.h5 --train FILE.h5 --test FILE.h5 --out DIR",
        "label-fraction sweep: probe vs supervised baselines, report",
        "For every label budget (sweep.labels_per_class, 0 = all; sweep.fractions) and\n"
        "seed (sweep.seeds, from train.seed), one stratified labelled subset is drawn and\n"
        "every method of sweep.methods trains on exactly those rows:\n"
        "  probe, knn            frozen encoder of --ckpt (features h, eval mode)\n"
        "  random_probe/_knn     the same on a randomly initialised encoder\n"
        "  supervised:<arch>     that architecture trained from scratch (supervised.*)\n"
        "  finetune              the pretrained encoder trained end to end\n"
        "Outputs: sweep.csv (one row per method x budget x seed), sweep_summary.csv,\n"
        "sweep.md, sweep.svg, confusion.csv/.svg (best method, largest budget),\n"
        "splits.h5 (the indices of every labelled subset).",
        opts, CMD_NOPTS(opts), 0, 0};
    int rc = cmd_parse(&spec, argc, argv, NULL);
    if (rc != CMD_CONTINUE) {
        cmd_strlist_free(&sets);
        return rc;
    }
    SpConfig *c = NULL;
    LinSweepResult *res = NULL;
    int made_out = 0;
    SpStatus st = cmd_load_config(&c, cfg, &sets);
    if (st == SP_OK) {
        cmd_banner("sweep", c, &sets);
        LinSweepSpec sw;
        st = lineval_sweep_spec_from_config(&sw, c);
        made_out = access(out, F_OK) != 0;
        if (st == SP_OK) st = lineval_mkdir_p(out);
        if (st == SP_OK) {
            sw.out_dir = out;
            sw.reports = 1;
            sw.title = title ? title : "specssl sweep";
            st = lineval_sweep_run(&res, c, ckpt, train, test, &sw);
        }
        if (st == SP_OK) {
            char *tab = lineval_sweep_table(res);
            printf("\nTest accuracy (%%), mean ± std over %d seed%s:\n\n%s\n", sw.n_seeds,
                   sw.n_seeds == 1 ? "" : "s", tab ? tab : "");
            free(tab);
            printf("wrote %s/sweep.md, sweep.csv, sweep_summary.csv, sweep.svg, confusion.csv, "
                   "confusion.svg, splits.h5\n", out);
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
