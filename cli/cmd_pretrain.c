/* cmd_pretrain.c - `specssl pretrain -c CFG --data FILE.h5 --out RUN_DIR
 * [--resume] [--set key=value ...]`: self-supervised pretraining (MoCo v2 +
 * relational reasoning), see pretext/sp_pretext.h and pretext/pt_run.c. */
#include <stdio.h>

#include "cmd_util.h"
#include "sp_config.h"
#include "sp_dist.h"
#include "sp_error.h"
#include "sp_pretext.h"
#include "sp_signal.h"

int cmd_pretrain(int argc, char **argv);

int cmd_pretrain(int argc, char **argv) {
    const char *cfg_path = NULL, *data = NULL, *out = NULL;
    int resume = 0;
    CmdStrList sets = {0};
    const CmdOpt opts[] = {
        CMD_OPT_CONFIG(&cfg_path),
        {"data", 0, CMD_STR, "FILE.h5", "unlabelled spectra (HDF5, data.* keys name the datasets)",
         &data, 1},
        {"out", 'o', CMD_STR, "RUN_DIR",
         "run directory: config.cfg, checkpoint.h5, metrics.jsonl", &out, 1},
        {"resume", 0, CMD_FLAG, NULL,
         "continue the run in RUN_DIR from its checkpoint (same config; train.epochs may grow)",
         &resume, 0},
        CMD_OPT_SET(&sets),
    };
    const CmdSpec spec = {
        "pretrain", "-c CFG --data FILE.h5 --out RUN_DIR [--resume] [--set KEY=VALUE ...]",
        "self-supervised pretraining (MoCo v2 + relational reasoning)",
        "Trains the encoder on unlabelled spectra and writes RUN_DIR/checkpoint.h5\n"
        "(every train.checkpoint_every epochs, at the end, and on Ctrl-C / SIGTERM),\n"
        "RUN_DIR/metrics.jsonl (one JSON line per epoch) and RUN_DIR/config.cfg (the\n"
        "effective config). One key=value line per epoch goes to stderr: loss terms,\n"
        "ln(Q+1) (chance level of L_moco per direction), pretext accuracies\n"
        "(relation head overall / positives / negatives, cut pieces, external\n"
        "variable, MoCo), collapse std of z, kNN accuracy when the data has labels,\n"
        "lr, spectra/s, GFLOP/s, ETA.\n"
        "An existing run is never overwritten: use --resume to continue it. Resuming\n"
        "is exact (bit-identical with one thread). configs/specrrmoco.cfg is the\n"
        "reference recipe.\n"
        "MPI builds: `mpirun -np R specssl pretrain ...` (or srun) trains data-parallel,\n"
        "each rank on its share of every global batch (README \"Running on a cluster\").",
        opts, CMD_NOPTS(opts), 0, 0};
    int rc = cmd_parse(&spec, argc, argv, NULL);
    if (rc != CMD_CONTINUE) {
        cmd_strlist_free(&sets);
        return rc;
    }
    pretext_config_register();
    SpConfig *cfg = NULL;
    SpStatus st = sp_dist_init();   /* MPI when started by mpirun/srun (core/sp_dist.h) */
    if (st == SP_OK) st = cmd_load_config(&cfg, cfg_path, &sets);
    if (st == SP_OK) {
        cmd_banner("pretrain", cfg, &sets);
        sp_signal_install();
        PretrainRunOpts ro = {0};
        ro.resume = resume;
        st = pretrain_run(cfg, data, out, &ro);
    }
    sp_config_free(cfg);
    cmd_strlist_free(&sets);
    st = sp_dist_finalize(st);   /* every rank exits with the same status */
    return cmd_finish(st);
}
