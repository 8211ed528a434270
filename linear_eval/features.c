/* features.c - frozen-encoder features, the encoder fingerprint used by the
 * frozen check, row gathering and the labelled split of a run.
 *
 * Features: the encoder in eval mode (running BN statistics, nothing
 * updated), rows read through a sequential loader (streaming datasets work)
 * with the checkpoint's input normalisation, no augmentation.
 * Allocates one activation context and the loader per call.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_linear_eval.h"
#include "sp_log.h"

uint64_t lineval_encoder_hash(const SpEncoder *e) {
    const SpParams *p = encoder_params_const(e);
    uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a 64 */
    const unsigned char *b = (const unsigned char *)p->data;
    for (size_t i = 0; i < p->n_param * sizeof(float); i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    b = (const unsigned char *)p->buf;
    for (size_t i = 0; i < p->n_buf * sizeof(float); i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    h ^= (uint64_t)p->n_param * 0x9E3779B97F4A7C15ULL ^ (uint64_t)p->n_buf;
    return h;
}

SpStatus lineval_gather(SpDataset *ds, const int64_t *idx, int64_t n, const SpNorm *norm,
                        int batch, float *out) {
    if (n <= 0) return SP_OK;
    SpLoader *ld = NULL;
    if (batch > n) batch = (int)n;
    SP_TRY(loader_create(&ld, ds, idx, n, batch, 0, 0, 0, norm));
    SpStatus rc = SP_OK;
    int64_t done = 0;
    SP_TRY_GOTO(rc, loader_start_epoch(ld, 0), out);
    for (;;) {
        SpBatch b;
        SP_TRY_GOTO(rc, loader_next(ld, &b), out);
        if (b.n == 0) break;
        if (done + b.n > n) SP_FAIL_GOTO(rc, out, SP_EINTERNAL, "gather: loader overran");
        memcpy(out + (size_t)done * ds->L, b.x, (size_t)b.n * ds->L * sizeof(float));
        done += b.n;
    }
    if (done != n)
        SP_FAIL_GOTO(rc, out, SP_EINTERNAL, "gather: %lld of %lld rows", (long long)done,
                     (long long)n);
out:
    loader_free(&ld);
    return rc;
}

SpStatus lineval_features(SpEncoder *e, SpDataset *ds, const int64_t *idx, int64_t n,
                          const SpNorm *norm, int batch, float *out) {
    if (n <= 0) return SP_OK;
    if (encoder_check_length(e, ds->L) != SP_OK) {
        sp_error_prefix("'%s': ", ds->path);
        return sp_error_status();
    }
    if (batch < 1) batch = 1;
    if (batch > n) batch = (int)n;
    SpLoader *ld = NULL;
    SpEncAct *act = NULL;
    SpStatus rc = SP_OK;
    const int D = encoder_feature_dim(e);
    SP_TRY_GOTO(rc, loader_create(&ld, ds, idx, n, batch, 0, 0, 0, norm), out);
    SP_TRY_GOTO(rc, encoder_act_create_infer(&act, e, batch, ds->L), out);
    SP_TRY_GOTO(rc, loader_start_epoch(ld, 0), out);
    int64_t done = 0;
    for (;;) {
        SpBatch b;
        SP_TRY_GOTO(rc, loader_next(ld, &b), out);
        if (b.n == 0) break;
        if (done + b.n > n) SP_FAIL_GOTO(rc, out, SP_EINTERNAL, "features: loader overran");
        SP_TRY_GOTO(rc, encoder_forward(e, act, b.x, b.n, SP_ENC_EVAL, out + (size_t)done * D),
                    out);
        done += b.n;
    }
    for (size_t i = 0; i < (size_t)n * D; i++)
        if (!isfinite(out[i]))
            SP_FAIL_GOTO(rc, out, SP_ENUMERIC, "features of '%s': non-finite value in row %lld "
                         "(encoder %s)", ds->path, (long long)(i / (size_t)D), encoder_arch(e));
out:
    encoder_act_destroy(&act);
    loader_free(&ld);
    return rc;
}

SpStatus lineval_split(SpSplit *s, const SpDataset *ds, const SpSplitSpec *spec) {
    memset(s, 0, sizeof *s);
    if (!ds->labels)
        SP_FAIL(SP_EINPUT, "'%s': no labels (dataset '%s'): a labelled split is impossible",
                ds->path, ds->labels_path[0] ? ds->labels_path : SP_DATA_DEFAULT_LABELS);
    if (ds->n_classes < 2)
        SP_FAIL(SP_EINPUT, "'%s': %d class(es) in the labels; classification needs at least 2",
                ds->path, ds->n_classes);
    int all = spec->per_class <= 0 && !(spec->fraction > 0);
    SpSplitSpec sp = *spec;
    if (all) sp.per_class = 1;
    SP_TRY(split_make(s, ds->labels, ds->n, ds->n_classes, &sp));
    s->spec = *spec;
    if (all) {
        /* every labelled row that is not validation (both lists sorted) */
        int64_t *tr = malloc(((size_t)ds->n + 1) * sizeof(int64_t));
        if (!tr) {
            split_free(s);
            SP_FAIL(SP_ENOMEM, "out of memory");
        }
        int64_t nt = 0, j = 0;
        for (int64_t i = 0; i < ds->n; i++) {
            if (ds->labels[i] < 0) continue;
            while (j < s->n_val && s->val[j] < i) j++;
            if (j < s->n_val && s->val[j] == i) continue;
            tr[nt++] = i;
        }
        free(s->train);
        s->train = tr;
        s->n_train = nt;
    }
    return SP_OK;
}

SpStatus lineval_load_norm(const char *ckpt, SpNorm *nm, int *have) {
    *have = 0;
    memset(nm, 0, sizeof *nm);
    hid_t f = -1;
    SP_TRY(sp_h5_open_read(ckpt, &f));
    SpStatus rc = SP_OK;
    if (sp_h5_exists(f, SP_GROUP_NORM)) {
        rc = norm_load(nm, f, ckpt, SP_GROUP_NORM);
        if (rc == SP_OK) *have = 1;
    }
    sp_h5_close(f);
    return rc;
}

SpStatus lineval_config_with_length(SpConfig **out, const SpConfig *cfg, int L) {
    *out = NULL;
    char *text = sp_config_dump(cfg);
    if (!text) SP_FAIL(SP_ENOMEM, "out of memory (config text)");
    SpStatus rc = sp_config_from_text(out, text, sp_config_path(cfg)[0] ? sp_config_path(cfg)
                                                                        : "config");
    free(text);
    if (rc != SP_OK) return rc;
    if (sp_cfg_int(*out, "encoder.input_length") == 0) {
        char set[64];
        snprintf(set, sizeof set, "encoder.input_length=%d", L);
        rc = sp_config_set(*out, set);
        if (rc != SP_OK) {
            sp_config_free(*out);
            *out = NULL;
        }
    }
    return rc;
}
