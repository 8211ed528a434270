/* probe_io.c - linear probe model files (kind "linear").
 *
 * Layout (sp_checkpoint root attributes, plus):
 *   /linear/weight (C, D), /linear/bias (C)       on standardised features
 *   /linear/feat_mean, /linear/feat_std (D)       absent: no standardisation
 *   /linear/path_l2, path_val_acc, path_val_loss  the L2 selection path
 *   root attributes encoder_ckpt (absolute path of the encoder checkpoint),
 *   feature ("feature" = h), n_classes, l2, encoder_hash (hex string),
 *   n_train, n_val
 *   /norm                                         the encoder's input normalisation
 * The probe written by `specssl import-torch` (linear/weight, linear/bias,
 * encoder_ckpt, feature) loads as a probe without standardisation.
 * Serial; allocates the model.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_checkpoint.h"
#include "sp_linear_eval.h"

SpStatus lineval_save(const LinModel *m, const char *path, const SpNorm *norm,
                      const char *config_text) {
    SpH5Writer w;
    SP_TRY(ckpt_begin(&w, path, "linear", m->arch[0] ? m->arch : "", config_text, 0, 0));
    SpStatus rc = SP_OK;
    hsize_t d2[2] = {(hsize_t)m->C, (hsize_t)m->D}, dc[1] = {(hsize_t)m->C},
            dd[1] = {(hsize_t)m->D}, dp[1] = {(hsize_t)m->n_path};
    SP_TRY_GOTO(rc, sp_h5_write_float(w.f, "linear/weight", 2, d2, m->w, SP_H5_CHECKSUM), fail);
    SP_TRY_GOTO(rc, sp_h5_write_float(w.f, "linear/bias", 1, dc, m->b, SP_H5_CHECKSUM), fail);
    if (m->mean) {
        SP_TRY_GOTO(rc, sp_h5_write_float(w.f, "linear/feat_mean", 1, dd, m->mean, SP_H5_CHECKSUM),
                    fail);
        SP_TRY_GOTO(rc, sp_h5_write_float(w.f, "linear/feat_std", 1, dd, m->std, SP_H5_CHECKSUM),
                    fail);
    }
    if (m->n_path > 0) {
        SP_TRY_GOTO(rc, sp_h5_write_double(w.f, "linear/path_l2", 1, dp, m->path_l2, SP_H5_CHECKSUM), fail);
        SP_TRY_GOTO(rc, sp_h5_write_double(w.f, "linear/path_val_acc", 1, dp, m->path_val_acc, SP_H5_CHECKSUM),
                    fail);
        SP_TRY_GOTO(rc, sp_h5_write_double(w.f, "linear/path_val_loss", 1, dp, m->path_val_loss, SP_H5_CHECKSUM),
                    fail);
    }
    char hash[32];
    snprintf(hash, sizeof hash, "%016" PRIx64, m->encoder_hash);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "encoder_ckpt", m->encoder_ckpt), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "feature", m->feature[0] ? m->feature : "feature"),
                fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(w.f, "/", "n_classes", m->C), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_double(w.f, "/", "l2", m->l2), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "encoder_hash", hash), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(w.f, "/", "n_train", m->n_train), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(w.f, "/", "n_val", m->n_val), fail);
    if (norm) SP_TRY_GOTO(rc, norm_save(norm, w.f, "norm"), fail);
    return ckpt_commit(&w);
fail:
    sp_h5_abort(&w);
    return rc;
}

static SpStatus read_vec(hid_t f, const char *file, const char *name, int64_t n, float *out) {
    SpH5Info info;
    SP_TRY(sp_h5_info(f, file, name, &info));
    if (info.rank != 1 || (int64_t)info.dims[0] != n)
        SP_FAIL(SP_EFORMAT, "'%s': dataset '%s' has %d dims (first %llu), expected [%lld]", file,
                name, info.rank, (unsigned long long)info.dims[0], (long long)n);
    return sp_h5_read_float(f, file, name, out, (size_t)n);
}

SpStatus lineval_load(LinModel **out, const char *path, SpNorm *norm, int *have_norm) {
    *out = NULL;
    if (have_norm) *have_norm = 0;
    hid_t f = -1;
    SpCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    SP_TRY(ckpt_open(path, "linear", NULL, &f, &meta));
    SpStatus rc = SP_OK;
    LinModel *m = NULL;
    char *s = NULL;
    SpH5Info info;
    SP_TRY_GOTO(rc, sp_h5_info(f, path, "linear/weight", &info), done);
    if (info.rank != 2 || info.dims[0] < 1 || info.dims[1] < 1)
        SP_FAIL_GOTO(rc, done, SP_EFORMAT, "'%s': linear/weight must be (classes, features)", path);
    int C = (int)info.dims[0], D = (int)info.dims[1];
    int stdz = sp_h5_exists(f, "linear/feat_mean");
    m = calloc(1, sizeof *m);
    if (!m) SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
    m->C = C;
    m->D = D;
    m->w = malloc((size_t)C * D * sizeof(float));
    m->b = malloc((size_t)C * sizeof(float));
    if (stdz) {
        m->mean = malloc((size_t)D * sizeof(float));
        m->std = malloc((size_t)D * sizeof(float));
    }
    if (!m->w || !m->b || (stdz && (!m->mean || !m->std)))
        SP_FAIL_GOTO(rc, done, SP_ENOMEM, "out of memory");
    SP_TRY_GOTO(rc, sp_h5_read_float(f, path, "linear/weight", m->w, (size_t)C * D), done);
    SP_TRY_GOTO(rc, read_vec(f, path, "linear/bias", C, m->b), done);
    if (stdz) {
        SP_TRY_GOTO(rc, read_vec(f, path, "linear/feat_mean", D, m->mean), done);
        SP_TRY_GOTO(rc, read_vec(f, path, "linear/feat_std", D, m->std), done);
        for (int d = 0; d < D; d++)
            if (!(m->std[d] > 0))
                SP_FAIL_GOTO(rc, done, SP_EFORMAT, "'%s': linear/feat_std[%d] = %g is not positive",
                             path, d, (double)m->std[d]);
    }
    snprintf(m->arch, sizeof m->arch, "%s", meta.arch);
    snprintf(m->feature, sizeof m->feature, "feature");
    if (sp_h5_attr_exists(f, "/", "encoder_ckpt")) {
        SP_TRY_GOTO(rc, sp_h5_attr_read_str(f, path, "/", "encoder_ckpt", &s), done);
        snprintf(m->encoder_ckpt, sizeof m->encoder_ckpt, "%s", s);
        free(s);
        s = NULL;
    }
    if (sp_h5_attr_exists(f, "/", "feature")) {
        SP_TRY_GOTO(rc, sp_h5_attr_read_str(f, path, "/", "feature", &s), done);
        if (strcmp(s, "feature") != 0)
            SP_FAIL_GOTO(rc, done, SP_EFORMAT, "'%s': probe on '%s' outputs; only 'feature' (h) "
                         "is supported", path, s);
        free(s);
        s = NULL;
    }
    if (sp_h5_attr_exists(f, "/", "encoder_hash")) {
        SP_TRY_GOTO(rc, sp_h5_attr_read_str(f, path, "/", "encoder_hash", &s), done);
        m->encoder_hash = strtoull(s, NULL, 16);
        free(s);
        s = NULL;
    }
    if (sp_h5_attr_exists(f, "/", "l2"))
        SP_TRY_GOTO(rc, sp_h5_attr_read_double(f, path, "/", "l2", &m->l2), done);
    if (sp_h5_attr_exists(f, "/", "n_train"))
        SP_TRY_GOTO(rc, sp_h5_attr_read_int64(f, path, "/", "n_train", &m->n_train), done);
    if (sp_h5_attr_exists(f, "/", "n_val"))
        SP_TRY_GOTO(rc, sp_h5_attr_read_int64(f, path, "/", "n_val", &m->n_val), done);
    if (norm && sp_h5_exists(f, "norm")) {
        SP_TRY_GOTO(rc, norm_load(norm, f, path, "norm"), done);
        if (have_norm) *have_norm = 1;
    }
    *out = m;
    m = NULL;
done:
    free(s);
    lineval_destroy(&m);
    ckpt_meta_free(&meta);
    sp_h5_close(f);
    return rc;
}
