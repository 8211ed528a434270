/* sp_checkpoint.c - versioned HDF5 checkpoints (see sp_checkpoint.h).
 *
 * Layout: root attributes format, format_version, kind, arch, config, epoch,
 * step, created, specssl_version; one group per SpParams table with one
 * float32 dataset per tensor (attribute kind = "param" | "buffer").
 * Tensors are written chunked with the Fletcher-32 checksum filter
 * (SP_H5_CHECKSUM) so flipped bytes in their data are reported on reading
 * instead of loading silently; scalars (rank 0) cannot be chunked and are
 * stored compact, inside the checksummed object header. The file uses the
 * HDF5 1.10 object format, whose metadata (object headers, chunk indexes)
 * carries checksums too (sp_h5_create_atomic). Not covered: variable-length
 * strings (the stored config text) live in the global heap, unchecksummed.
 *
 * Allocates only transiently (messages, attribute strings). Serial.
 */
#include "sp_checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sp_log.h"

#define SP_CKPT_NAME_MAX 512

static void shape_str(char *out, size_t n, int rank, const hsize_t *dims) {
    size_t used = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < rank && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s%llu", i ? "," : "",
                                 (unsigned long long)dims[i]);
    if (used < n) snprintf(out + used, n - used, "]");
}

static void shape_str64(char *out, size_t n, int rank, const int64_t *dims) {
    hsize_t d[SP_PARAM_MAX_DIMS];
    for (int i = 0; i < rank; i++) d[i] = (hsize_t)dims[i];
    shape_str(out, n, rank, d);
}

static SpStatus tensor_path(char *out, size_t n, const char *group, const char *name) {
    int k = snprintf(out, n, "%s%s/%s", group[0] == '/' ? "" : "/", group, name);
    if (k < 0 || (size_t)k >= n) SP_FAIL(SP_EINTERNAL, "tensor path too long: %s/%s", group, name);
    return SP_OK;
}

SpStatus ckpt_begin(SpH5Writer *w, const char *path, const char *kind, const char *arch,
                    const char *config_text, int64_t epoch, int64_t step) {
    SP_TRY(sp_h5_create_atomic(w, path));
    char created[64] = "";
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv)) strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    SpStatus rc = SP_OK;
    hid_t f = w->f;
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(f, "/", "format", SP_CKPT_FORMAT), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(f, "/", "format_version", SP_CKPT_VERSION), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(f, "/", "kind", kind ? kind : ""), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(f, "/", "arch", arch ? arch : ""), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(f, "/", "config", config_text ? config_text : ""), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(f, "/", "epoch", epoch), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(f, "/", "step", step), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(f, "/", "created", created), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(f, "/", "specssl_version", SPECSSL_VERSION), fail);
    return SP_OK;
fail:
    sp_h5_abort(w);
    return rc;
}

static SpStatus write_tensor(hid_t f, const char *group, const SpTensorInfo *t, const float *v) {
    char path[SP_CKPT_NAME_MAX];
    SP_TRY(tensor_path(path, sizeof path, group, t->name));
    hsize_t dims[SP_PARAM_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) dims[d] = (hsize_t)t->shape[d];
    SP_TRY(sp_h5_write_float(f, path, t->ndim, dims, v, SP_H5_CHECKSUM));
    SP_TRY(sp_h5_attr_write_str(f, path, "kind", t->kind == SP_TENSOR_BUFFER ? "buffer" : "param"));
    return SP_OK;
}

SpStatus ckpt_write_params(hid_t f, const char *group, const SpParams *p) {
    if (!p->finalized) SP_FAIL(SP_EINTERNAL, "ckpt_write_params('%s'): table not finalized", group);
    SP_TRY(sp_h5_ensure_group(f, group));
    for (int i = 0; i < p->n; i++) SP_TRY(write_tensor(f, group, &p->t[i], sp_params_data(p, i)));
    return SP_OK;
}

SpStatus ckpt_write_arena(hid_t f, const char *group, const SpParams *p, const float *values) {
    if (!p->finalized) SP_FAIL(SP_EINTERNAL, "ckpt_write_arena('%s'): table not finalized", group);
    SP_TRY(sp_h5_ensure_group(f, group));
    for (int i = 0; i < p->n; i++) {
        const SpTensorInfo *t = &p->t[i];
        if (t->kind != SP_TENSOR_PARAM) continue;
        SP_TRY(write_tensor(f, group, t, values + t->offset));
    }
    return SP_OK;
}

SpStatus ckpt_commit(SpH5Writer *w) { return sp_h5_commit(w); }

void ckpt_meta_free(SpCkptMeta *meta) {
    if (!meta) return;
    free(meta->config_text);
    meta->config_text = NULL;
}

static SpStatus read_str_attr_into(hid_t f, const char *path, const char *name, char *dst,
                                   size_t n) {
    char *s = NULL;
    SP_TRY(sp_h5_attr_read_str(f, path, "/", name, &s));
    if (strlen(s) >= n) {
        free(s);
        SP_FAIL(SP_EFORMAT, "'%s': attribute '%s' is too long (%zu characters max)", path, name, n - 1);
    }
    snprintf(dst, n, "%s", s);
    free(s);
    return SP_OK;
}

SpStatus ckpt_open(const char *path, const char *expect_kind, const char *expect_arch,
                   hid_t *f_out, SpCkptMeta *meta) {
    *f_out = -1;
    memset(meta, 0, sizeof *meta);
    hid_t f = -1;
    SP_TRY(sp_h5_open_read(path, &f));
    SpStatus rc = SP_OK;
    char *format = NULL;
    if (sp_h5_attr_probe(f, "/", "format") < 0)
        SP_FAIL_GOTO(rc, fail, SP_EFORMAT,
                     "'%s': cannot read the file's attributes (corrupted file?)", path);
    if (!sp_h5_attr_exists(f, "/", "format") ||
        sp_h5_attr_read_str(f, path, "/", "format", &format) != SP_OK) {
        SP_FAIL_GOTO(rc, fail, SP_EFORMAT,
                     "'%s' is not a specssl checkpoint (no 'format' attribute)\n"
                     "hint: `specssl info %s` shows what the file contains", path, path);
    }
    if (strcmp(format, SP_CKPT_FORMAT) != 0) {
        SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s' is not a specssl checkpoint (format is '%s')",
                     path, format);
    }
    if (!sp_h5_attr_exists(f, "/", "format_version"))
        SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s': checkpoint has no 'format_version' attribute", path);
    SP_TRY_GOTO(rc, sp_h5_attr_read_int64(f, path, "/", "format_version", &meta->version), fail);
    if (meta->version > SP_CKPT_VERSION)
        SP_FAIL_GOTO(rc, fail, SP_EFORMAT,
                     "'%s': checkpoint format version %lld is newer than this specssl supports (%d)\n"
                     "hint: use a newer specssl to read it", path, (long long)meta->version,
                     SP_CKPT_VERSION);
    if (meta->version < 1)
        SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s': invalid checkpoint format version %lld", path,
                     (long long)meta->version);
    SP_TRY_GOTO(rc, read_str_attr_into(f, path, "kind", meta->kind, sizeof meta->kind), fail);
    SP_TRY_GOTO(rc, read_str_attr_into(f, path, "arch", meta->arch, sizeof meta->arch), fail);
    if (expect_kind && strcmp(meta->kind, expect_kind) != 0)
        SP_FAIL_GOTO(rc, fail, SP_EINPUT, "'%s': checkpoint kind is '%s', expected '%s'", path,
                     meta->kind, expect_kind);
    if (expect_arch && strcmp(meta->arch, expect_arch) != 0)
        SP_FAIL_GOTO(rc, fail, SP_EINPUT,
                     "'%s': checkpoint architecture is '%s', expected '%s' (encoder.arch)", path,
                     meta->arch, expect_arch);
    SP_TRY_GOTO(rc, sp_h5_attr_read_int64(f, path, "/", "epoch", &meta->epoch), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_read_int64(f, path, "/", "step", &meta->step), fail);
    if (sp_h5_attr_exists(f, "/", "config"))
        SP_TRY_GOTO(rc, sp_h5_attr_read_str(f, path, "/", "config", &meta->config_text), fail);
    free(format);
    *f_out = f;
    return SP_OK;
fail:
    free(format);
    ckpt_meta_free(meta);
    sp_h5_close(f);
    return rc;
}

/* Check one tensor (presence, class, rank, shape) and read it. */
static SpStatus read_tensor(hid_t f, const char *file, const char *group, const SpTensorInfo *t,
                            float *dst) {
    char path[SP_CKPT_NAME_MAX];
    SP_TRY(tensor_path(path, sizeof path, group, t->name));
    const char *shown = path + 1;   /* "encoder_q/conv1.weight" */
    char want[96], got[96];
    shape_str64(want, sizeof want, t->ndim, t->shape);
    if (!sp_h5_exists(f, path))
        SP_FAIL(SP_EINPUT, "'%s': tensor %s is missing (expected shape %s)", file, shown, want);
    SpH5Info info;
    SP_TRY(sp_h5_info(f, file, path, &info));
    if (info.cls != H5T_FLOAT)
        SP_FAIL(SP_EINPUT, "'%s': tensor %s is not a float dataset (HDF5 class %d)", file, shown,
                (int)info.cls);
    int same = info.rank == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = info.dims[d] == (hsize_t)t->shape[d];
    if (!same) {
        shape_str(got, sizeof got, info.rank, info.dims);
        SP_FAIL(SP_EINPUT, "'%s': tensor %s has shape %s, expected %s", file, shown, got, want);
    }
    SpStatus rc = sp_h5_read_float(f, file, path, dst, t->count);
    if (rc != SP_OK) {
        sp_error_push(__FILE__, __LINE__, "reading tensor %s of '%s'", shown, file);
        return rc;
    }
    return SP_OK;
}

typedef struct {
    const SpParams *p;
    int params_only;
    int extra;
    char first_extra[SP_PARAM_NAME_MAX];
} ExtraScan;

static herr_t extra_cb(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)g;
    (void)info;
    ExtraScan *s = op;
    int i = sp_params_find(s->p, name);
    if (i < 0 || (s->params_only && s->p->t[i].kind != SP_TENSOR_PARAM)) {
        if (!s->extra) snprintf(s->first_extra, sizeof s->first_extra, "%s", name);
        s->extra++;
    }
    return 0;
}

/* Datasets in the group that the table does not know: a warning, since the
 * caller's architecture check already failed if the model differs. */
static void warn_extra(hid_t f, const char *file, const char *group, const SpParams *p,
                       int params_only) {
    ExtraScan s = {p, params_only, 0, ""};
    hid_t g = -1;
    H5E_BEGIN_TRY { g = H5Gopen2(f, group, H5P_DEFAULT); }
    H5E_END_TRY;
    if (g < 0) return;
    hsize_t idx = 0;
    H5E_BEGIN_TRY { H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, extra_cb, &s); }
    H5E_END_TRY;
    H5Gclose(g);
    if (s.extra)
        sp_log(SP_LOG_WARN, "'%s': group '%s' has %d entr%s the model does not use (first: '%s')",
               file, group, s.extra, s.extra == 1 ? "y" : "ies", s.first_extra);
}

SpStatus ckpt_read_params(hid_t f, const char *file, const char *group, SpParams *p) {
    if (!p->finalized) SP_FAIL(SP_EINTERNAL, "ckpt_read_params('%s'): table not finalized", group);
    char gpath[SP_CKPT_NAME_MAX];
    snprintf(gpath, sizeof gpath, "%s%s", group[0] == '/' ? "" : "/", group);
    if (!sp_h5_exists(f, gpath))
        SP_FAIL(SP_EINPUT, "'%s': checkpoint has no group '%s'", file, group);
    for (int i = 0; i < p->n; i++) SP_TRY(read_tensor(f, file, group, &p->t[i], sp_params_data(p, i)));
    warn_extra(f, file, gpath, p, 0);
    return SP_OK;
}

SpStatus ckpt_read_arena(hid_t f, const char *file, const char *group, const SpParams *p,
                         float *values) {
    if (!p->finalized) SP_FAIL(SP_EINTERNAL, "ckpt_read_arena('%s'): table not finalized", group);
    char gpath[SP_CKPT_NAME_MAX];
    snprintf(gpath, sizeof gpath, "%s%s", group[0] == '/' ? "" : "/", group);
    if (!sp_h5_exists(f, gpath))
        SP_FAIL(SP_EINPUT, "'%s': checkpoint has no group '%s'", file, group);
    for (int i = 0; i < p->n; i++) {
        const SpTensorInfo *t = &p->t[i];
        if (t->kind != SP_TENSOR_PARAM) continue;
        SP_TRY(read_tensor(f, file, group, t, values + t->offset));
    }
    warn_extra(f, file, gpath, p, 1);
    return SP_OK;
}
