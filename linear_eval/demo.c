/* demo.c - `specssl demo`: the whole pipeline on generated data in a few
 * minutes on two cores.
 *
 *   1. beamtime-like compression ramps (data module's ramp generator):
 *      training file = ramps 0-1 (one slow, one fast), test file = ramps 2-3
 *      (disjoint ramps: other kinetics, background, peak widths, transition
 *      points), spectra of demo_length points;
 *   2. self-supervised pretraining on the training spectra without labels
 *      (relational reasoning: inter-sample relations, cut-piece distances and
 *      the ramp-bin external variable), small conv-attention encoder;
 *   3. the label sweep: frozen-encoder probe and kNN, the same probe on a
 *      randomly initialised encoder, and the same architecture trained
 *      supervised from scratch on exactly the same labels.
 * The demo's settings (k_settings) apply to every key the user left at its
 * default, so -c/--set still change anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sp_linear_eval.h"
#include "sp_log.h"
#include "sp_pretext.h"

/* Chosen so the demo takes about 2-3 minutes on 2 cores (measured: see the
 * report in the commit that tuned them) and shows what pretraining buys with
 * 1-10 labels per class. */
static const char *const k_settings[] = {
    /* encoder: the reference conv-attention encoder, narrowed */
    "encoder.arch=\"convsc\"",
    "encoder.convsc.conv1_channels=16",
    "encoder.convsc.conv3_channels=8",
    "encoder.convsc.bins=128",
    "encoder.convsc.embed_dim=64",
    "encoder.convsc.heads=2",
    "encoder.convsc.bn_splits=2",
    "encoder.convsc.bn_gamma_init=\"one\"",
    "encoder.proj_hidden=64",
    "encoder.proj_dim=64",
    /* pretext: relational reasoning with 4 views; MoCo off for time */
    "pretext.moco.coef=0.0",
    "pretext.rr.views=4",
    /* augmentations that model beamtime nuisances */
    "augment.transforms=[\"intensity\", \"baseline\", \"poisson\", \"shift\"]",
    "augment.shift.max=3.0",
    /* pretraining schedule */
    "train.epochs=10",
    "train.batch_size=64",
    "train.knn_every=5",
    "optim.name=\"adam\"",
    "optim.lr=1e-3",
    "optim.weight_decay=0.0",
    "optim.warmup_epochs=0",
    "optim.schedule=\"constant\"",
    /* evaluation */
    "linear_eval.val_per_class=5",
    "sweep.labels_per_class=[1, 2, 5, 10]",
    "sweep.seeds=3",
    "sweep.methods=[\"probe\", \"knn\", \"random_probe\", \"supervised:convsc\"]",
    /* supervised baseline: with 1-10 labels per class an epoch is one batch,
     * so each epoch is 8 steps (the rows reshuffled) and patience counts
     * such epochs */
    "supervised.lr=1e-3",
    "supervised.epochs=30",
    "supervised.min_steps_per_epoch=8",
    "supervised.patience=8",
    "supervised.plateau_patience=0",
    "supervised.batch_size=32",
};

SpStatus lineval_demo_config(SpConfig *c) {
    for (size_t i = 0; i < sizeof k_settings / sizeof k_settings[0]; i++) {
        char key[128];
        const char *eq = strchr(k_settings[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - k_settings[i]), k_settings[i]);
        if (strcmp(sp_cfg_origin(c, key), "default") != 0) continue;   /* the user's value wins */
        SP_TRY(sp_config_set(c, k_settings[i]));
    }
    return SP_OK;
}

static SpStatus write_ramps(const char *path, int first_ramp, int L) {
    SpRampOptions o;
    synth_ramp_default(&o);
    o.first_ramp = first_ramp;
    o.ramps = 2;
    o.L = L;
    SpRampData d;
    SP_TRY(synth_ramp_generate(&o, &d));
    static const char *const names[3] = {"A (cubic B1)", "B (rhombohedral rB1)",
                                         "C (hexagonal inverse-B8)"};
    char gen[256];
    snprintf(gen, sizeof gen, "specssl synth ramp --seed %llu --ramps 2 --first-ramp %d --length %d",
             (unsigned long long)o.seed, first_ramp, L);
    SpDatasetOut out = {d.x, d.n, d.L, d.labels, d.extvar, d.axis, names, 3, gen};
    SpStatus rc = dataset_write(path, &out);
    synth_ramp_free(&d);
    return rc;
}

SpStatus lineval_demo_run(const SpConfig *c, const char *out_dir, int length,
                          LinSweepResult **res, LinDemoPaths *paths) {
    *res = NULL;
    memset(paths, 0, sizeof *paths);
    double t0 = sp_time_now();
    SP_TRY(lineval_mkdir_p(out_dir));
    snprintf(paths->data_dir, sizeof paths->data_dir, "%s/data", out_dir);
    snprintf(paths->train, sizeof paths->train, "%s/train.h5", paths->data_dir);
    snprintf(paths->test, sizeof paths->test, "%s/test.h5", paths->data_dir);
    snprintf(paths->run_dir, sizeof paths->run_dir, "%s/pretrain", out_dir);
    snprintf(paths->ckpt, sizeof paths->ckpt, "%s/checkpoint.h5", paths->run_dir);
    snprintf(paths->sweep_dir, sizeof paths->sweep_dir, "%s/sweep", out_dir);
    SP_TRY(lineval_mkdir_p(paths->data_dir));

    sp_log(SP_LOG_INFO, "demo [1/3] data: compression ramps 0-1 (training, unlabelled for "
           "pretraining) and 2-3 (test), %d points per spectrum", length);
    SP_TRY(write_ramps(paths->train, 0, length));
    SP_TRY(write_ramps(paths->test, 2, length));
    paths->seconds_data = sp_time_now() - t0;

    double t1 = sp_time_now();
    struct stat st;
    PretrainRunOpts po;
    memset(&po, 0, sizeof po);
    po.resume = stat(paths->ckpt, &st) == 0;
    sp_log(SP_LOG_INFO, "demo [2/3] self-supervised pretraining on %s (labels unused) -> %s%s",
           paths->train, paths->run_dir,
           po.resume ? " (continuing the run already there; remove the folder to start over)" : "");
    SP_TRY(pretrain_run(c, paths->train, paths->run_dir, &po));
    paths->seconds_pretrain = sp_time_now() - t1;

    double t2 = sp_time_now();
    sp_log(SP_LOG_INFO, "demo [3/3] label sweep -> %s", paths->sweep_dir);
    LinSweepSpec sw;
    SP_TRY(lineval_sweep_spec_from_config(&sw, c));
    SP_TRY(lineval_mkdir_p(paths->sweep_dir));
    sw.out_dir = paths->sweep_dir;
    sw.reports = 1;
    sw.title = "specssl demo: XRD phases, train ramps 0-1, test ramps 2-3";
    SP_TRY(lineval_sweep_run(res, c, paths->ckpt, paths->train, paths->test, &sw));
    paths->seconds_sweep = sp_time_now() - t2;
    paths->seconds_total = sp_time_now() - t0;
    return SP_OK;
}
