/* pt_config.c - the pretext.* and train.* config keys (defaults: §15, §17 of
 * reference/specrrmoco.md; the reference recipe is configs/specrrmoco.cfg)
 * and their reading into PretextOptions. Cross-key checks that need the
 * data (batch vs N, queue vs keys per step, piece length vs L) happen in
 * pretrain_state_create / pretrain_run. Allocates nothing. */
#include <float.h>
#include <string.h>

#include "sp_pretext.h"

static const SpCfgKey g_keys[] = {
    /* MoCo v2 (§6) */
    {"pretext.moco.coef", SP_CFG_FLOAT, "0.01", 0, 1e6, NULL,
     "weight of L_moco (= L12 + L21) in the total loss; 0 = relational reasoning only "
     "(no key encoder); for MoCo alone set the pretext.rr.*_coef to 0 and this to 1"},
    {"pretext.moco.queue", SP_CFG_INT, "4096", 1, 1e8, NULL,
     "MoCo queue length Q (keys); must hold one step's keys (2 x batch when symmetric); "
     "a warning is printed when Q exceeds the data set size"},
    {"pretext.moco.momentum", SP_CFG_FLOAT, "0.99", 0, 1, NULL,
     "key encoder momentum m: theta_k <- m theta_k + (1 - m) theta_q"},
    {"pretext.moco.temperature", SP_CFG_FLOAT, "0.1", DBL_TRUE_MIN, 100, NULL,
     "InfoNCE temperature T"},
    {"pretext.moco.symmetric", SP_CFG_BOOL, "true", 1, 0, NULL,
     "symmetric loss L12 + L21 (both views as queries), 2 x batch keys per step"},
    {"pretext.moco.shuffle_bn", SP_CFG_BOOL, "true", 1, 0, NULL,
     "shuffle the key encoder's batch before its split BatchNorm (MoCo shuffle BN)"},
    /* Relational reasoning (§5) */
    {"pretext.rr.views", SP_CFG_INT, "6", 2, 64, NULL,
     "augmented views V per spectrum for the RR heads (>= 2; memory grows as V^2 x batch)"},
    {"pretext.rr.inter_coef", SP_CFG_FLOAT, "1", 0, 1e6, NULL,
     "weight of the inter-sample relation loss (BCE); 0 = head off"},
    {"pretext.rr.intra_coef", SP_CFG_FLOAT, "1", 0, 1e6, NULL,
     "weight of the intra-sample cut-piece distance loss (CE); 0 = head off"},
    {"pretext.rr.ext_coef", SP_CFG_FLOAT, "1", 0, 1e6, NULL,
     "weight of the external-variable loss (CE on /extvar); 0 = head off "
     "(also off when the data has no /extvar)"},
    {"pretext.rr.hidden", SP_CFG_INT, "64", 1, 65536, NULL,
     "hidden width of the relation and cut-piece heads"},
    {"pretext.rr.cut_classes", SP_CFG_INT, "5", 2, 1000, NULL,
     "cut-piece distance classes C_cut"},
    {"pretext.rr.piece_size", SP_CFG_FLOAT, "0.2", DBL_TRUE_MIN, 1e9, NULL,
     "cut-piece length: fraction of L when < 1, else points"},
    {"pretext.rr.ext_classes", SP_CFG_INT, "0", 0, 1e6, NULL,
     "external-variable classes C_ext (0 = max extvar + 1 of the data)"},
    {"pretext.rr.focal_gamma", SP_CFG_FLOAT, "0", 0, 100, NULL,
     "relation head: focal-loss gamma (0 = plain BCE, the reference)"},
    {"pretext.rr.focal_alpha", SP_CFG_FLOAT, "-1", -1, 1, NULL,
     "relation head: focal-loss alpha for positives (< 0 = no alpha weighting)"},
    /* Training loop */
    {"train.epochs", SP_CFG_INT, "100", 1, 1e7, NULL,
     "pretraining epochs (may grow on --resume)"},
    {"train.batch_size", SP_CFG_INT, "128", 2, 1e6, NULL,
     "spectra per step; a multiple of the encoder's BN splits, at most the data set size"},
    {"train.drop_last", SP_CFG_BOOL, "false", 1, 0, NULL,
     "drop the last incomplete batch of every epoch (otherwise it is cut to a multiple of the "
     "BN splits, at least 2 spectra)"},
    {"train.checkpoint_every", SP_CFG_INT, "1", 1, 1e7, NULL,
     "write RUN_DIR/checkpoint.h5 every this many epochs (and at the end)"},
    {"train.knn_every", SP_CFG_INT, "10", 0, 1e7, NULL,
     "weighted kNN monitor every this many epochs when the data has labels (0 = off)"},
    {"train.knn_k", SP_CFG_INT, "20", 1, 10000, NULL, "kNN monitor: neighbours k"},
    {"train.knn_t", SP_CFG_FLOAT, "0.1", DBL_TRUE_MIN, 100, NULL,
     "kNN monitor: temperature t of the exp(sim / t) votes"},
    {"train.knn_val_fraction", SP_CFG_FLOAT, "0.2", DBL_TRUE_MIN, 0.9, NULL,
     "kNN monitor: stratified fraction of the labelled spectra used as queries (the rest is "
     "the memory bank)"},
    {"train.knn_max_rows", SP_CFG_INT, "20000", 2, 1e8, NULL,
     "kNN monitor: at most this many labelled spectra (a stratified subset)"},
    {"train.log_every", SP_CFG_INT, "0", 0, 1e8, NULL,
     "also print a key=value line every this many steps inside an epoch (0 = epoch lines only)"},
};

void pretext_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

SpStatus pretext_options_from_config(const SpConfig *cfg, PretextOptions *o) {
    memset(o, 0, sizeof *o);
    o->moco_coef = sp_cfg_float(cfg, "pretext.moco.coef");
    o->queue = (int)sp_cfg_int(cfg, "pretext.moco.queue");
    o->momentum = (float)sp_cfg_float(cfg, "pretext.moco.momentum");
    o->temperature = (float)sp_cfg_float(cfg, "pretext.moco.temperature");
    o->symmetric = sp_cfg_bool(cfg, "pretext.moco.symmetric");
    o->shuffle_bn = sp_cfg_bool(cfg, "pretext.moco.shuffle_bn");
    o->views = (int)sp_cfg_int(cfg, "pretext.rr.views");
    o->inter_coef = sp_cfg_float(cfg, "pretext.rr.inter_coef");
    o->intra_coef = sp_cfg_float(cfg, "pretext.rr.intra_coef");
    o->ext_coef = sp_cfg_float(cfg, "pretext.rr.ext_coef");
    o->hidden = (int)sp_cfg_int(cfg, "pretext.rr.hidden");
    o->cut_classes = (int)sp_cfg_int(cfg, "pretext.rr.cut_classes");
    o->piece_size = sp_cfg_float(cfg, "pretext.rr.piece_size");
    o->ext_classes = (int)sp_cfg_int(cfg, "pretext.rr.ext_classes");
    o->focal_gamma = (float)sp_cfg_float(cfg, "pretext.rr.focal_gamma");
    o->focal_alpha = (float)sp_cfg_float(cfg, "pretext.rr.focal_alpha");
    o->quirks = sp_cfg_bool(cfg, "reference_quirks");
    o->seed = (uint64_t)sp_cfg_int(cfg, "train.seed");
    if (o->moco_coef == 0.0 && o->inter_coef == 0.0 && o->intra_coef == 0.0 &&
        o->ext_coef == 0.0)
        SP_FAIL(SP_ECONFIG,
                "pretext.moco.coef, pretext.rr.inter_coef, pretext.rr.intra_coef and "
                "pretext.rr.ext_coef are all 0: nothing to train");
    return SP_OK;
}
