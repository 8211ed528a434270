/* commands.c - the work behind `specssl supervised` and `specssl predict`
 * (the CLI files only parse arguments and print), plus small file helpers.
 * Allocates; serial apart from the encoder/probe calls.
 */
#define _XOPEN_SOURCE 700   /* realpath */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sp_checkpoint.h"
#include "sp_linear_eval.h"
#include "sp_log.h"

SpStatus lineval_mkdir_p(const char *dir) {
    char buf[PATH_MAX];
    if (!dir || !dir[0]) SP_FAIL(SP_EUSAGE, "empty output folder name");
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        SP_FAIL(SP_EUSAGE, "output folder name too long");
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            struct stat st;
            if (stat(buf, &st) != 0) {
                if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                    SP_FAIL(SP_EIO, "'%s': cannot create folder: %s", buf, strerror(errno));
            } else if (!S_ISDIR(st.st_mode)) {
                SP_FAIL(SP_EUSAGE, "'%s' exists and is not a folder", buf);
            }
            *p = c;
            if (!c) break;
        }
    }
    return SP_OK;
}

/* Set every registered encoder.* key of dst to its value in src (so a model
 * file's config rebuilds the encoder it holds). */
static SpStatus copy_encoder_keys(SpConfig *dst, const SpConfig *src) {
    int nk = 0;
    const SpCfgKey *keys = sp_config_keys(&nk);
    char buf[4096];
    for (int i = 0; i < nk; i++) {
        const SpCfgKey *k = &keys[i];
        if (strncmp(k->key, "encoder.", 8) != 0) continue;
        int n = snprintf(buf, sizeof buf, "%s=", k->key);
        size_t u = (size_t)n;
        switch (k->type) {
        case SP_CFG_INT: snprintf(buf + u, sizeof buf - u, "%lld", (long long)sp_cfg_int(src, k->key)); break;
        case SP_CFG_FLOAT: snprintf(buf + u, sizeof buf - u, "%.17g", sp_cfg_float(src, k->key)); break;
        case SP_CFG_BOOL: snprintf(buf + u, sizeof buf - u, "%s", sp_cfg_bool(src, k->key) ? "true" : "false"); break;
        case SP_CFG_STRING: snprintf(buf + u, sizeof buf - u, "\"%s\"", sp_cfg_str(src, k->key)); break;
        default: {
            int len = sp_cfg_list_len(src, k->key);
            u += (size_t)snprintf(buf + u, sizeof buf - u, "[");
            for (int j = 0; j < len && u < sizeof buf - 64; j++) {
                if (k->type == SP_CFG_INT_LIST)
                    u += (size_t)snprintf(buf + u, sizeof buf - u, "%s%lld", j ? ", " : "",
                                          (long long)sp_cfg_int_at(src, k->key, j));
                else if (k->type == SP_CFG_FLOAT_LIST)
                    u += (size_t)snprintf(buf + u, sizeof buf - u, "%s%.17g", j ? ", " : "",
                                          sp_cfg_float_at(src, k->key, j));
                else
                    u += (size_t)snprintf(buf + u, sizeof buf - u, "%s\"%s\"", j ? ", " : "",
                                          sp_cfg_str_at(src, k->key, j));
            }
            if (len == 0 && k->type == SP_CFG_STRING_LIST) {
                /* an empty list keeps its default type: leave the key alone */
                continue;
            }
            snprintf(buf + u, sizeof buf - u, "]");
        }
        }
        SP_TRY(sp_config_set(dst, buf));
    }
    return SP_OK;
}

SpStatus lineval_supervised_file(const SpConfig *cfg, const char *arch, const char *init_ckpt,
                                 const char *train_path, const char *test_path,
                                 const SpSplitSpec *budget, const char *out_path,
                                 LinSupRunInfo *info) {
    memset(info, 0, sizeof *info);
    SpDataset *dtr = NULL, *dte = NULL;
    SpEncoder *enc = NULL;
    LinSupModel *m = NULL;
    SpConfig *ckcfg = NULL, *store = NULL;
    SpNorm nm;
    int have_norm = 0;
    SpSplit split;
    memset(&split, 0, sizeof split);
    memset(&nm, 0, sizeof nm);
    int64_t *tidx = NULL;
    int32_t *pred = NULL, *ytest = NULL;
    char *text = NULL;
    SpStatus rc = SP_OK;
    SpConfig *lcfg = NULL;   /* cfg with encoder.input_length = L when it was 0 */
    LinSupParam p;
    SP_TRY(lineval_sup_param_from_config(&p, cfg));
    p.seed = budget->seed;
    SpDataOptions o;
    data_options_default(&o);
    SP_TRY(data_options_from_config(cfg, &o));
    o.require_labels = 1;
    SP_TRY_GOTO(rc, dataset_open(&dtr, train_path, &o), done);
    SP_TRY_GOTO(rc, dataset_open(&dte, test_path, &o), done);
    if (dtr->L != dte->L)
        SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s' has %d points per spectrum, '%s' %d", train_path,
                     dtr->L, test_path, dte->L);
    int C = dtr->n_classes > dte->n_classes ? dtr->n_classes : dte->n_classes;
    if (init_ckpt) {   /* fine-tuning */
        SP_TRY_GOTO(rc, encoder_load_ckpt(init_ckpt, NULL, &ckcfg, &enc, NULL), done);
        SP_TRY_GOTO(rc, lineval_load_norm(init_ckpt, &nm, &have_norm), done);
        p.encoder_lr_mult = sp_cfg_float(cfg, "supervised.finetune_lr_mult");
        p.bn_frozen = !strcmp(sp_cfg_str(cfg, "supervised.finetune_bn"), "frozen");
        snprintf(p.tag, sizeof p.tag, "finetune:%s", encoder_arch(enc));
    } else {
        SpRng rng;
        sp_rng_stream(&rng, p.seed * 1000003ULL, 0x696e6974ULL /* "init" */, 0, 0);
        SP_TRY_GOTO(rc, lineval_config_with_length(&lcfg, cfg, dtr->L), done);
        SP_TRY_GOTO(rc, encoder_create_arch(&enc, arch, lcfg, &rng), done);
        SpNormKind kind;
        SP_TRY_GOTO(rc, norm_parse(sp_cfg_str(cfg, "data.normalise"), &kind), done);
        SP_TRY_GOTO(rc, norm_fit(&nm, kind, dtr, NULL, dtr->n), done);
        have_norm = 1;
        snprintf(p.tag, sizeof p.tag, "supervised:%s", arch);
    }
    snprintf(info->arch, sizeof info->arch, "%s", encoder_arch(enc));
    SP_TRY_GOTO(rc, lineval_split(&split, dtr, budget), done);
    sp_log(SP_LOG_INFO, "%s: %zu parameters, input normalisation %s; labelled subset seed %llu: "
           "%lld training + %lld validation rows", p.tag, sp_params_count(encoder_params(enc)),
           have_norm ? norm_name(nm.kind) : "none", (unsigned long long)budget->seed,
           (long long)split.n_train, (long long)split.n_val);
    SP_TRY_GOTO(rc, lineval_sup_create(&m, &enc, C, p.seed * 1000003ULL), done);
    AugSpec aug;
    SP_TRY_GOTO(rc, aug_spec_from_config(&aug, cfg), done);
    SP_TRY_GOTO(rc, lineval_sup_train(m, dtr, split.train, split.n_train, split.val, split.n_val,
                                      have_norm ? &nm : NULL, &aug, &p), done);
    /* test: the labelled rows of the test file, scored once */
    tidx = malloc(((size_t)dte->n + 1) * sizeof(int64_t));
    ytest = malloc(((size_t)dte->n + 1) * sizeof(int32_t));
    pred = malloc(((size_t)dte->n + 1) * sizeof(int32_t));
    if (!tidx || !ytest || !pred) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
    int64_t nt = 0;
    for (int64_t i = 0; i < dte->n; i++)
        if (dte->labels[i] >= 0) {
            tidx[nt] = i;
            ytest[nt++] = dte->labels[i];
        }
    SP_TRY_GOTO(rc, lineval_sup_predict(m, dte, tidx, nt, have_norm ? &nm : NULL, p.eval_batch,
                                        pred, NULL), done);
    LinMetrics mt;
    SP_TRY_GOTO(rc, lineval_metrics(&mt, pred, ytest, nt, C), done);
    info->test_acc = mt.acc;
    info->test_f1 = mt.macro_f1;
    info->n_test = mt.n;
    lineval_metrics_free(&mt);
    info->n_train = split.n_train;
    info->n_val = split.n_val;
    info->best_epoch = m->best_epoch + 1;
    info->epochs = m->epochs_run;
    info->best_val_acc = m->best_val_acc;
    info->seconds = m->train_seconds;
    if (out_path) {
        SP_TRY_GOTO(rc, sp_config_from_text(&store, text = sp_config_dump(lcfg ? lcfg : cfg),
                                            "config"), done);
        char set[128];
        snprintf(set, sizeof set, "encoder.arch=\"%s\"", info->arch);
        if (ckcfg) SP_TRY_GOTO(rc, copy_encoder_keys(store, ckcfg), done);
        SP_TRY_GOTO(rc, sp_config_set(store, set), done);
        free(text);
        text = sp_config_dump(store);
        SP_TRY_GOTO(rc, lineval_sup_save(m, out_path, have_norm ? &nm : NULL, text, &split), done);
    }
done:
    free(text);
    free(tidx);
    free(ytest);
    free(pred);
    split_free(&split);
    if (have_norm) norm_free(&nm);
    lineval_sup_destroy(&m);
    encoder_destroy(&enc);
    sp_config_free(ckcfg);
    sp_config_free(store);
    sp_config_free(lcfg);
    dataset_close(&dtr);
    dataset_close(&dte);
    return rc;
}

/* Resolve a probe's encoder checkpoint: the stored path, else the same file
 * name next to the model file. */
static void resolve_encoder(const char *model_path, const char *stored, char *out, size_t n) {
    struct stat st;
    if (stat(stored, &st) == 0) {
        snprintf(out, n, "%s", stored);
        return;
    }
    const char *base = strrchr(stored, '/');
    base = base ? base + 1 : stored;
    const char *slash = strrchr(model_path, '/');
    int k = slash ? snprintf(out, n, "%.*s/", (int)(slash - model_path), model_path) : 0;
    if (k < 0 || (size_t)k >= n) k = 0;
    size_t lb = strlen(base);
    if ((size_t)k + lb < n) memcpy(out + k, base, lb + 1);
    if (stat(out, &st) != 0) snprintf(out, n, "%s", stored);
}

SpStatus lineval_predict_file(const SpConfig *cfg, const char *model_path, const char *data_path,
                              const char *out_path, LinPredictInfo *info) {
    memset(info, 0, sizeof *info);
    hid_t f = -1;
    SpCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    SP_TRY(ckpt_open(model_path, NULL, NULL, &f, &meta));
    sp_h5_close(f);
    char kind[32];
    snprintf(kind, sizeof kind, "%s", meta.kind);
    ckpt_meta_free(&meta);
    snprintf(info->kind, sizeof info->kind, "%s", kind);
    if (strcmp(kind, "linear") != 0 && strcmp(kind, "supervised") != 0)
        SP_FAIL(SP_EINPUT, "'%s' is a '%s' checkpoint without a classifier; predict needs a probe "
                "(specssl linear-eval --out DIR writes probe_*.h5) or a supervised model "
                "(specssl supervised --out)", model_path, kind);
    LinModel *lm = NULL;
    LinSupModel *sm = NULL;
    SpEncoder *enc = NULL;
    SpDataset *ds = NULL;
    SpNorm nm;
    memset(&nm, 0, sizeof nm);
    int have_norm = 0, open = 0;
    SpRowWriter w;
    float *feat = NULL, *prob = NULL;
    int32_t *pred = NULL;
    int64_t *idx = NULL;
    SpStatus rc = SP_OK;
    int C = 0;
    if (!strcmp(kind, "linear")) {
        SP_TRY_GOTO(rc, lineval_load(&lm, model_path, &nm, &have_norm), done);
        if (!lm->encoder_ckpt[0])
            SP_FAIL_GOTO(rc, done, SP_EFORMAT, "'%s': the probe names no encoder checkpoint "
                         "(attribute encoder_ckpt)", model_path);
        char encp[PATH_MAX];
        resolve_encoder(model_path, lm->encoder_ckpt, encp, sizeof encp);
        snprintf(info->encoder, sizeof info->encoder, "%s", encp);
        SP_TRY_GOTO(rc, encoder_load_ckpt(encp, NULL, NULL, &enc, NULL), done);
        if (lm->encoder_hash && lineval_encoder_hash(enc) != lm->encoder_hash)
            SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': the encoder checkpoint '%s' differs from the "
                         "one the probe was trained on (fingerprint %016llx, probe expects "
                         "%016llx)", model_path, encp,
                         (unsigned long long)lineval_encoder_hash(enc),
                         (unsigned long long)lm->encoder_hash);
        if (encoder_feature_dim(enc) != lm->D)
            SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': probe expects %d features, encoder '%s' "
                         "gives %d", model_path, lm->D, encp, encoder_feature_dim(enc));
        if (!have_norm) SP_TRY_GOTO(rc, lineval_load_norm(encp, &nm, &have_norm), done);
        C = lm->C;
    } else {
        SP_TRY_GOTO(rc, lineval_sup_load(&sm, model_path, &nm, &have_norm), done);
        enc = sm->enc;
        C = sm->C;
    }
    SpDataOptions o;
    data_options_default(&o);
    SP_TRY_GOTO(rc, data_options_from_config(cfg, &o), done);
    o.min_length = encoder_min_length(enc);
    o.num_classes = C;   /* a label the model cannot predict is out of range */
    SP_TRY_GOTO(rc, dataset_open(&ds, data_path, &o), done);
    if (have_norm && nm.kind == SP_NORM_STANDARDISE && nm.L != ds->L)
        SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': spectra have %d points, the model's "
                     "normalisation was fitted on %d", data_path, ds->L, nm.L);
    const int chunk = 4096, batch = (int)sp_cfg_int(cfg, "linear_eval.batch");
    const int D = encoder_feature_dim(enc);
    feat = malloc((size_t)chunk * D * sizeof(float));
    prob = malloc((size_t)chunk * C * sizeof(float));
    pred = malloc((size_t)chunk * sizeof(int32_t));
    idx = malloc((size_t)chunk * sizeof(int64_t));
    if (!feat || !prob || !pred || !idx) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
    SP_TRY_GOTO(rc, pred_writer_open(&w, out_path, C, ds->labels != NULL), done);
    open = 1;
    int64_t correct = 0, labelled = 0;
    for (int64_t r0 = 0; r0 < ds->n; r0 += chunk) {
        int64_t n = ds->n - r0 < chunk ? ds->n - r0 : chunk;
        for (int64_t i = 0; i < n; i++) idx[i] = r0 + i;
        if (lm) {
            SP_TRY_GOTO(rc, lineval_features(enc, ds, idx, n, have_norm ? &nm : NULL, batch, feat),
                        done);
            SP_TRY_GOTO(rc, lineval_predict(lm, feat, n, pred, prob), done);
        } else {
            SP_TRY_GOTO(rc, lineval_sup_predict(sm, ds, idx, n, have_norm ? &nm : NULL, batch,
                                                pred, prob), done);
        }
        const int32_t *lab = ds->labels ? ds->labels + r0 : NULL;
        SP_TRY_GOTO(rc, pred_writer_append(&w, pred, prob, n, lab), done);
        if (lab)
            for (int64_t i = 0; i < n; i++)
                if (lab[i] >= 0) {
                    labelled++;
                    correct += lab[i] == pred[i];
                }
    }
    SP_TRY_GOTO(rc, row_writer_commit(&w), done);
    open = 0;
    info->n = ds->n;
    info->C = C;
    info->labelled = labelled;
    info->correct = correct;
done:
    if (open) row_writer_abort(&w);
    free(feat);
    free(prob);
    free(pred);
    free(idx);
    dataset_close(&ds);
    if (have_norm) norm_free(&nm);
    if (lm) encoder_destroy(&enc);
    lineval_destroy(&lm);
    lineval_sup_destroy(&sm);
    return rc;
}
