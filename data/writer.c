/* writer.c - atomic, streaming HDF5 writers for datasets, embeddings and
 * predictions. Float rows stream into an extendible chunked dataset; the
 * small int32 columns are buffered and written at commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_data.h"

static void rw_reset(SpRowWriter *w) {
    memset(w, 0, sizeof *w);
    w->h5.f = -1;
    w->rows = w->rows2 = -1;
}

static SpStatus rw_open(SpRowWriter *w, const char *path, const char *rows_name, int64_t ncols,
                        const char *rows2_name, int64_t ncols2, const char *int0, const char *int1) {
    rw_reset(w);
    if (ncols <= 0) SP_FAIL(SP_EINPUT, "'%s': cannot write rows of %lld columns", path, (long long)ncols);
    SP_TRY(sp_h5_create_atomic(&w->h5, path));
    w->open = 1;
    snprintf(w->rows_name, sizeof w->rows_name, "%s", rows_name);
    w->ncols = ncols;
    SpStatus rc = sp_h5_create_rows_float(w->h5.f, rows_name, (hsize_t)ncols, &w->rows);
    if (rc == SP_OK && rows2_name) {
        w->ncols2 = ncols2;
        rc = sp_h5_create_rows_float(w->h5.f, rows2_name, (hsize_t)ncols2, &w->rows2);
    }
    if (rc != SP_OK) {
        row_writer_abort(w);
        return rc;
    }
    const char *in[2] = {int0, int1};
    for (int k = 0; k < 2; k++)
        if (in[k]) {
            w->has_int[k] = 1;
            snprintf(w->int_names[k], sizeof w->int_names[k], "%s", in[k]);
        }
    return SP_OK;
}

static SpStatus rw_grow(SpRowWriter *w, int64_t need) {
    if (need <= w->int_cap) return SP_OK;
    int64_t cap = w->int_cap ? w->int_cap : 1024;
    while (cap < need) cap *= 2;
    for (int k = 0; k < 2; k++) {
        if (!w->has_int[k]) continue;
        int32_t *p = realloc(w->ints[k], (size_t)cap * sizeof(int32_t));
        if (!p) SP_FAIL(SP_ENOMEM, "out of memory buffering '%s'", w->int_names[k]);
        w->ints[k] = p;
    }
    w->int_cap = cap;
    return SP_OK;
}

static SpStatus rw_append(SpRowWriter *w, const float *x, const float *x2, int64_t n,
                          const int32_t *i0, const int32_t *i1) {
    if (!w->open) SP_FAIL(SP_EINTERNAL, "append to a writer that is not open");
    if (n <= 0) return SP_OK;
    const int32_t *in[2] = {i0, i1};
    for (int k = 0; k < 2; k++)
        if (w->has_int[k] && !in[k])
            SP_FAIL(SP_EINTERNAL, "'%s': '%s' values missing in append", w->h5.final_path, w->int_names[k]);
    SpStatus rc = sp_h5_append_rows_float(w->rows, (hsize_t)w->n, (hsize_t)n, (hsize_t)w->ncols, x);
    if (rc == SP_OK && w->rows2 >= 0)
        rc = sp_h5_append_rows_float(w->rows2, (hsize_t)w->n, (hsize_t)n, (hsize_t)w->ncols2, x2);
    if (rc != SP_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", sp_error_message());
        SP_FAIL(rc, "'%s': %s", w->h5.final_path, msg);
    }
    SP_TRY(rw_grow(w, w->n + n));
    for (int k = 0; k < 2; k++)
        if (w->has_int[k]) memcpy(w->ints[k] + w->n, in[k], (size_t)n * sizeof(int32_t));
    w->n += n;
    return SP_OK;
}

hid_t row_writer_file(const SpRowWriter *w) { return w->h5.f; }

void row_writer_abort(SpRowWriter *w) {
    if (w->rows >= 0) H5Dclose(w->rows);
    if (w->rows2 >= 0) H5Dclose(w->rows2);
    w->rows = w->rows2 = -1;
    if (w->open) sp_h5_abort(&w->h5);
    free(w->ints[0]);
    free(w->ints[1]);
    w->ints[0] = w->ints[1] = NULL;
    w->open = 0;
}

SpStatus row_writer_commit(SpRowWriter *w) {
    if (!w->open) SP_FAIL(SP_EINTERNAL, "commit of a writer that is not open");
    SpStatus rc = SP_OK;
    for (int k = 0; k < 2 && rc == SP_OK; k++) {
        if (!w->has_int[k]) continue;
        hsize_t d[1] = {(hsize_t)w->n};
        int32_t dummy = 0;
        rc = sp_h5_write_int32(w->h5.f, w->int_names[k], 1, d, w->n ? w->ints[k] : &dummy, 1);
    }
    if (w->rows >= 0 && H5Dclose(w->rows) < 0 && rc == SP_OK)
        rc = sp_error_set(SP_EIO, __FILE__, __LINE__,
                          "writing '%s' failed while closing '%s' (disk full?); nothing was written "
                          "under that name", w->h5.final_path, w->rows_name);
    w->rows = -1;
    if (w->rows2 >= 0) H5Dclose(w->rows2);
    w->rows2 = -1;
    if (rc != SP_OK) {
        row_writer_abort(w);
        return rc;
    }
    free(w->ints[0]);
    free(w->ints[1]);
    w->ints[0] = w->ints[1] = NULL;
    w->open = 0;
    return sp_h5_commit(&w->h5);
}

SpStatus row_writer_set_axis(SpRowWriter *w, const double *axis, int64_t L) {
    hsize_t d[1] = {(hsize_t)L};
    return sp_h5_write_double(w->h5.f, "/axis", 1, d, axis, 1);
}

SpStatus row_writer_set_generator(SpRowWriter *w, const char *generator) {
    return sp_h5_attr_write_str(w->h5.f, "/", "generator", generator);
}

/* Fixed-length strings (NUL-padded to the longest name): they are stored in
 * the checksummed object header, not in the unchecksummed global heap (see
 * sp_h5_attr_write_str). */
SpStatus data_write_class_names(hid_t f, const char *const *names, int n) {
    size_t width = 1;
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) + 1 > width) width = strlen(names[i]) + 1;
    char *buf = calloc((size_t)(n > 0 ? n : 1), width);
    if (!buf) SP_FAIL(SP_ENOMEM, "out of memory writing attribute 'class_names'");
    for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * width, names[i], strlen(names[i]));
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, width);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t d[1] = {(hsize_t)n};
    hid_t sp = H5Screate_simple(1, d, NULL);
    if (H5Aexists_by_name(f, "/", "class_names", H5P_DEFAULT) > 0)
        H5Adelete_by_name(f, "/", "class_names", H5P_DEFAULT);
    hid_t a = H5Acreate_by_name(f, "/", "class_names", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    SpStatus rc = SP_OK;
    if (a < 0 || H5Awrite(a, t, buf) < 0)
        rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "cannot write attribute 'class_names'");
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    free(buf);
    return rc;
}

SpStatus row_writer_set_class_names(SpRowWriter *w, const char *const *names, int n) {
    return data_write_class_names(w->h5.f, names, n);
}

SpStatus dataset_writer_open(SpRowWriter *w, const char *path, int L, int with_labels,
                             int with_extvar) {
    return rw_open(w, path, "/spectra", L, NULL, 0, with_labels ? "/labels" : NULL,
                   with_extvar ? "/extvar" : NULL);
}

SpStatus dataset_writer_append(SpRowWriter *w, const float *x, int64_t n, const int32_t *labels,
                               const int32_t *extvar) {
    return rw_append(w, x, NULL, n, labels, extvar);
}

SpStatus embed_writer_open(SpRowWriter *w, const char *path, int D, int with_labels) {
    return rw_open(w, path, "/embeddings", D, NULL, 0, with_labels ? "/labels" : NULL, NULL);
}

SpStatus embed_writer_append(SpRowWriter *w, const float *emb, int64_t n, const int32_t *labels) {
    return rw_append(w, emb, NULL, n, labels, NULL);
}

SpStatus pred_writer_open(SpRowWriter *w, const char *path, int C, int with_labels) {
    /* rows = probabilities; ints[0] = predictions, ints[1] = labels */
    return rw_open(w, path, "/probabilities", C, NULL, 0, "/predictions",
                   with_labels ? "/labels" : NULL);
}

SpStatus pred_writer_append(SpRowWriter *w, const int32_t *pred, const float *prob, int64_t n,
                            const int32_t *labels) {
    return rw_append(w, prob, NULL, n, pred, labels);
}

SpStatus dataset_write(const char *path, const SpDatasetOut *d) {
    SpRowWriter w;
    SP_TRY(dataset_writer_open(&w, path, d->L, d->labels != NULL, d->extvar != NULL));
    SpStatus rc = SP_OK;
    /* append in slabs of ~16 MB so the chunked writes stay bounded */
    int64_t step = (16 << 20) / ((int64_t)d->L * 4) + 1;
    for (int64_t i = 0; i < d->n && rc == SP_OK; i += step) {
        int64_t m = d->n - i < step ? d->n - i : step;
        rc = dataset_writer_append(&w, d->x + (size_t)i * (size_t)d->L, m,
                                   d->labels ? d->labels + i : NULL, d->extvar ? d->extvar + i : NULL);
    }
    if (rc == SP_OK && d->axis) rc = row_writer_set_axis(&w, d->axis, d->L);
    if (rc == SP_OK && d->class_names && d->n_class_names > 0)
        rc = row_writer_set_class_names(&w, d->class_names, d->n_class_names);
    if (rc == SP_OK && d->generator) rc = row_writer_set_generator(&w, d->generator);
    if (rc != SP_OK) {
        row_writer_abort(&w);
        return rc;
    }
    return row_writer_commit(&w);
}
