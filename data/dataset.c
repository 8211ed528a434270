/* dataset.c - open, validate and read spectra datasets (HDF5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_data.h"
#include "sp_log.h"

void data_options_default(SpDataOptions *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->spectra_path, sizeof o->spectra_path, "%s", SP_DATA_DEFAULT_SPECTRA);
    snprintf(o->labels_path, sizeof o->labels_path, "%s", SP_DATA_DEFAULT_LABELS);
    snprintf(o->extvar_path, sizeof o->extvar_path, "%s", SP_DATA_DEFAULT_EXTVAR);
    snprintf(o->axis_path, sizeof o->axis_path, "%s", SP_DATA_DEFAULT_AXIS);
    o->load = SP_LOAD_AUTO;
    o->max_memory_mb = 2048.0;
    o->block_rows = 256;
    o->shuffle_window = 8;
    o->nonfinite = SP_NONFINITE_ERROR;
}

/* ------------------------------------------------------------- helpers */

static int row_finite(const float *x, int L) {
    for (int j = 0; j < L; j++)
        if (!isfinite(x[j])) return 0;
    return 1;
}

/* Re-raise the current error with a prefix naming the dataset (keeps rc). */
static SpStatus rewrap(const char *dset) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", sp_error_message());
    SpStatus rc = sp_error_status();
    if (rc == SP_OK) rc = SP_EFORMAT;
    return sp_error_set(rc, __FILE__, __LINE__, "%s (while reading dataset '%s')", msg, dset);
}

/* An optional dataset: "" disables; missing at the default path means absent;
 * missing at a path the user chose is an error. Returns 1 present, 0 absent,
 * -1 error (set). */
static int optional_present(hid_t f, const char *file, const char *path, const char *def,
                            const char *what, const char *key) {
    if (!path[0]) return 0;
    if (sp_h5_exists(f, path)) return 1;
    if (strcmp(path, def) == 0) return 0;
    sp_error_set(SP_EINPUT, __FILE__, __LINE__,
                 "'%s': %s dataset '%s' not found (set by %s)", file, what, path, key);
    return -1;
}

/* Read a 1-D (or [N,1]) numeric integer-valued dataset of length n into int32. */
static SpStatus read_int_vector(hid_t f, const char *file, const char *dset, const char *what,
                                int64_t n, int32_t **out) {
    SpH5Info info;
    SP_TRY(sp_h5_info(f, file, dset, &info));
    if (info.cls != H5T_INTEGER && info.cls != H5T_FLOAT)
        SP_FAIL(SP_EINPUT, "'%s': %s dataset '%s' is not numeric", file, what, dset);
    if (!(info.rank == 1 || (info.rank == 2 && info.dims[1] == 1)))
        SP_FAIL(SP_EINPUT, "'%s': %s dataset '%s' has rank %d, expected 1 ([N])", file, what, dset,
                info.rank);
    if ((int64_t)info.dims[0] != n)
        SP_FAIL(SP_EINPUT, "'%s': %s dataset '%s' has %llu entries but the spectra have N=%lld rows",
                file, what, dset, (unsigned long long)info.dims[0], (long long)n);
    double *tmp = sp_malloc((size_t)n * sizeof *tmp + 8, "label buffer");
    if (!tmp) return SP_ENOMEM;
    SpStatus rc = sp_h5_read_double(f, file, dset, tmp, (size_t)n);
    if (rc != SP_OK) {
        free(tmp);
        return rewrap(dset);
    }
    int32_t *v = sp_malloc((size_t)n * sizeof *v + 8, "label buffer");
    if (!v) {
        free(tmp);
        return SP_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        double d = tmp[i];
        if (!isfinite(d) || d != floor(d) || d < -2147483648.0 || d > 2147483647.0) {
            free(tmp);
            free(v);
            SP_FAIL(SP_EINPUT, "'%s': %s dataset '%s': row %lld holds %.17g, not an integer", file,
                    what, dset, (long long)i, d);
        }
        v[i] = (int32_t)d;
    }
    free(tmp);
    *out = v;
    return SP_OK;
}

void data_free_names(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

SpStatus data_read_class_names(hid_t f, const char *file, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    if (!sp_h5_attr_exists(f, "/", "class_names")) return SP_OK;
    hid_t a = H5Aopen_by_name(f, "/", "class_names", H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) SP_FAIL(SP_EINPUT, "'%s': cannot open attribute 'class_names'", file);
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    SpStatus rc = SP_OK;
    hssize_t cnt = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING || cnt < 0 || cnt > 10000000) {
        rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__,
                          "'%s': attribute 'class_names' is not an array of strings", file);
        goto done;
    }
    char **out = calloc((size_t)cnt + 1, sizeof *out);
    if (!out) {
        rc = sp_error_set(SP_ENOMEM, __FILE__, __LINE__, "out of memory reading class_names");
        goto done;
    }
    if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char **raw = calloc((size_t)cnt + 1, sizeof *raw);
        if (!raw || H5Aread(a, mt, raw) < 0) {
            rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': cannot read attribute 'class_names'", file);
        } else {
            for (hssize_t i = 0; i < cnt; i++) out[i] = strdup(raw[i] ? raw[i] : "");
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
        }
        free(raw);
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(ft);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz);
        H5Tset_strpad(mt, H5T_STR_NULLPAD);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *buf = calloc((size_t)cnt * sz + 1, 1);
        if (!buf || H5Aread(a, mt, buf) < 0) {
            rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': cannot read attribute 'class_names'", file);
        } else {
            for (hssize_t i = 0; i < cnt; i++) {
                char *s = calloc(sz + 1, 1);
                if (s) memcpy(s, buf + (size_t)i * sz, sz);
                out[i] = s;
            }
        }
        free(buf);
        H5Tclose(mt);
    }
    if (rc == SP_OK) {
        for (hssize_t i = 0; i < cnt; i++)
            if (!out[i]) rc = sp_error_set(SP_ENOMEM, __FILE__, __LINE__, "out of memory reading class_names");
    }
    if (rc != SP_OK) {
        data_free_names(out, (int)cnt);
    } else {
        *names = out;
        *n = (int)cnt;
    }
done:
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

/* ------------------------------------------------------------ open/close */

void dataset_close(SpDataset **pds) {
    if (!pds || !*pds) return;
    SpDataset *ds = *pds;
    free(ds->x);
    free(ds->labels);
    free(ds->extvar);
    free(ds->axis);
    free(ds->file_row);
    free(ds->generator);
    data_free_names(ds->class_names, ds->n_class_names);
    if (ds->dset >= 0) H5Dclose(ds->dset);
    if (ds->file >= 0) H5Fclose(ds->file);
    free(ds);
    *pds = NULL;
}

/* Contiguous hyperslab reads of file rows [r0, r0+n). */
static SpStatus read_file_rows(SpDataset *ds, int64_t r0, int64_t n, float *out) {
    return sp_h5_read_rows_float(ds->dset, ds->path, ds->spectra_path, (hsize_t)r0, (hsize_t)n,
                                 (hsize_t)ds->L, out);
}

int64_t dataset_file_row(const SpDataset *ds, int64_t i) {
    return ds->file_row ? ds->file_row[i] : i;
}

SpStatus dataset_read_rows(SpDataset *ds, int64_t i0, int64_t n, float *out) {
    if (n <= 0) return SP_OK;
    if (i0 < 0 || i0 + n > ds->n)
        SP_FAIL(SP_EINTERNAL, "dataset_read_rows: rows %lld..%lld outside 0..%lld", (long long)i0,
                (long long)(i0 + n - 1), (long long)ds->n - 1);
    if (ds->in_memory) {
        memcpy(out, ds->x + (size_t)i0 * (size_t)ds->L, (size_t)n * (size_t)ds->L * sizeof(float));
        return SP_OK;
    }
    if (!ds->file_row) return read_file_rows(ds, i0, n, out);
    /* rows were dropped: read each run of consecutive file rows at once */
    int64_t k = 0;
    while (k < n) {
        int64_t r0 = ds->file_row[i0 + k], m = 1;
        while (k + m < n && ds->file_row[i0 + k + m] == r0 + m) m++;
        SP_TRY(read_file_rows(ds, r0, m, out + (size_t)k * (size_t)ds->L));
        k += m;
    }
    return SP_OK;
}

/* Scan for non-finite rows (after conversion to float32). Fills bad[] flags
 * (n_file) and returns the count. */
static SpStatus scan_nonfinite(SpDataset *ds, unsigned char *bad, int64_t *nbad) {
    *nbad = 0;
    if (ds->in_memory) {
        for (int64_t i = 0; i < ds->n_file; i++) {
            bad[i] = !row_finite(ds->x + (size_t)i * (size_t)ds->L, ds->L);
            *nbad += bad[i];
        }
        return SP_OK;
    }
    int64_t B = ds->block_rows > 0 ? ds->block_rows : 256;
    float *buf = sp_malloc((size_t)B * (size_t)ds->L * sizeof(float), "validation buffer");
    if (!buf) return SP_ENOMEM;
    for (int64_t r0 = 0; r0 < ds->n_file; r0 += B) {
        int64_t m = ds->n_file - r0 < B ? ds->n_file - r0 : B;
        SpStatus rc = read_file_rows(ds, r0, m, buf);
        if (rc != SP_OK) {
            free(buf);
            return rc;
        }
        for (int64_t i = 0; i < m; i++) {
            bad[r0 + i] = !row_finite(buf + (size_t)i * (size_t)ds->L, ds->L);
            *nbad += bad[r0 + i];
        }
    }
    free(buf);
    return SP_OK;
}

static SpStatus open_impl(SpDataset *ds, const SpDataOptions *o) {
    const char *file = ds->path;
    const char *sp = o->spectra_path[0] ? o->spectra_path : SP_DATA_DEFAULT_SPECTRA;
    snprintf(ds->spectra_path, sizeof ds->spectra_path, "%s", sp);

    if (sp_h5_open_read(file, &ds->file) != SP_OK) return rewrap(sp);
    hid_t f = ds->file;

    /* spectra: shape and type */
    SpH5Info info;
    if (!sp_h5_exists(f, sp))
        SP_FAIL(SP_EINPUT, "'%s': dataset '%s' not found (spectra; set data.spectra_path for "
                "other layouts, e.g. \"/entry/data/data\")", file, sp);
    SP_TRY(sp_h5_info(f, file, sp, &info));
    if (info.cls != H5T_INTEGER && info.cls != H5T_FLOAT)
        SP_FAIL(SP_EINPUT, "'%s': dataset '%s' is not numeric (integer or float): cannot read spectra",
                file, sp);
    if (info.rank != 2)
        SP_FAIL(SP_EINPUT, "'%s': dataset '%s' has rank %d, expected 2 ([N spectra, L points])",
                file, sp, info.rank);
    if (info.dims[0] == 0 || info.dims[1] == 0)
        SP_FAIL(SP_EINPUT, "'%s': dataset '%s' is empty (shape [%llu, %llu])", file, sp,
                (unsigned long long)info.dims[0], (unsigned long long)info.dims[1]);
    if (info.dims[1] > 100000000ULL || info.dims[0] > (1ULL << 40))
        SP_FAIL(SP_EINPUT, "'%s': dataset '%s' shape [%llu, %llu] is too large", file, sp,
                (unsigned long long)info.dims[0], (unsigned long long)info.dims[1]);
    ds->n_file = (int64_t)info.dims[0];
    ds->L = (int)info.dims[1];
    if (o->min_length > 0 && ds->L < o->min_length)
        SP_FAIL(SP_EINPUT, "'%s': dataset '%s': spectra have L=%d points, the encoder needs at least %d",
                file, sp, ds->L, o->min_length);

    /* labels */
    int pres = optional_present(f, file, o->labels_path, SP_DATA_DEFAULT_LABELS, "labels",
                                "data.labels_path");
    if (pres < 0) return sp_error_status();
    if (pres) {
        snprintf(ds->labels_path, sizeof ds->labels_path, "%s", o->labels_path);
        SP_TRY(read_int_vector(f, file, o->labels_path, "labels", ds->n_file, &ds->labels));
    } else if (o->require_labels) {
        SP_FAIL(SP_EINPUT, "'%s': no labels: dataset '%s' not found (labels are needed here; "
                "set data.labels_path if they are stored elsewhere)", file,
                o->labels_path[0] ? o->labels_path : SP_DATA_DEFAULT_LABELS);
    }
    /* extvar */
    pres = optional_present(f, file, o->extvar_path, SP_DATA_DEFAULT_EXTVAR, "extvar",
                            "data.extvar_path");
    if (pres < 0) return sp_error_status();
    if (pres) {
        snprintf(ds->extvar_path, sizeof ds->extvar_path, "%s", o->extvar_path);
        SP_TRY(read_int_vector(f, file, o->extvar_path, "extvar", ds->n_file, &ds->extvar));
        for (int64_t i = 0; i < ds->n_file; i++) {
            if (ds->extvar[i] < 0)
                SP_FAIL(SP_EINPUT, "'%s': extvar dataset '%s': row %lld holds %d; values must be >= 0",
                        file, o->extvar_path, (long long)i, ds->extvar[i]);
            if (ds->extvar[i] >= SP_DATA_MAX_CLASSES)
                SP_FAIL(SP_EINPUT, "'%s': extvar dataset '%s': row %lld holds %d; values must be "
                        "bins 0..%d", file, o->extvar_path, (long long)i, ds->extvar[i],
                        SP_DATA_MAX_CLASSES - 1);
            if (ds->extvar[i] + 1 > ds->n_extvar) ds->n_extvar = ds->extvar[i] + 1;
        }
    }
    /* axis */
    pres = optional_present(f, file, o->axis_path, SP_DATA_DEFAULT_AXIS, "axis", "data.axis_path");
    if (pres < 0) return sp_error_status();
    if (pres) {
        SpH5Info ai;
        SP_TRY(sp_h5_info(f, file, o->axis_path, &ai));
        if (ai.cls != H5T_INTEGER && ai.cls != H5T_FLOAT)
            SP_FAIL(SP_EINPUT, "'%s': axis dataset '%s' is not numeric", file, o->axis_path);
        if (ai.rank != 1 || (int64_t)ai.dims[0] != ds->L)
            SP_FAIL(SP_EINPUT, "'%s': axis dataset '%s' must have shape [%d] (the spectrum length), "
                    "found rank %d with %llu entries", file, o->axis_path, ds->L, ai.rank,
                    (unsigned long long)ai.dims[0]);
        ds->axis = sp_malloc((size_t)ds->L * sizeof(double), "axis");
        if (!ds->axis) return SP_ENOMEM;
        if (sp_h5_read_double(f, file, o->axis_path, ds->axis, (size_t)ds->L) != SP_OK)
            return rewrap(o->axis_path);
    }
    /* class names, generator */
    SP_TRY(data_read_class_names(f, file, &ds->class_names, &ds->n_class_names));
    if (sp_h5_attr_exists(f, "/", "generator")) {
        char *g = NULL;
        if (sp_h5_attr_read_str(f, file, "/", "generator", &g) == SP_OK) ds->generator = g;
        sp_error_clear();
    }

    /* label range */
    if (ds->labels) {
        int maxl = -1;
        int limit = o->num_classes > 0 ? o->num_classes : ds->n_class_names;
        for (int64_t i = 0; i < ds->n_file; i++) {
            int32_t l = ds->labels[i];
            if (l < -1)
                SP_FAIL(SP_EINPUT, "'%s': labels dataset '%s': row %lld holds %d; labels must be >= 0 "
                        "(or -1 for unlabelled)", file, ds->labels_path, (long long)i, l);
            if (limit > 0 && l >= limit)
                SP_FAIL(SP_EINPUT, "'%s': labels dataset '%s': row %lld holds %d, but there are only "
                        "%d classes (%s)", file, ds->labels_path, (long long)i, l, limit,
                        o->num_classes > 0 ? "fixed by the model/config" : "attribute class_names");
            if (limit <= 0 && l >= SP_DATA_MAX_CLASSES)
                SP_FAIL(SP_EINPUT, "'%s': labels dataset '%s': row %lld holds %d; labels must be "
                        "class indices 0..%d (store the class_names attribute for more classes)",
                        file, ds->labels_path, (long long)i, l, SP_DATA_MAX_CLASSES - 1);
            if (l > maxl) maxl = l;
        }
        ds->n_classes = o->num_classes > 0 ? o->num_classes
                        : ds->n_class_names > 0 ? ds->n_class_names : maxl + 1;
    } else {
        ds->n_classes = o->num_classes > 0 ? o->num_classes : ds->n_class_names;
    }

    /* open the dataset for reading (bigger chunk cache for compressed NeXus) */
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, 12421, (size_t)32 << 20, 0.75);
    ds->dset = H5Dopen2(f, sp, dapl);
    H5Pclose(dapl);
    if (ds->dset < 0) SP_FAIL(SP_EINPUT, "'%s': '%s' is not a readable dataset", file, sp);

    /* memory or streaming */
    double bytes = (double)ds->n_file * (double)ds->L * 4.0;
    ds->in_memory = o->load == SP_LOAD_MEMORY ||
                    (o->load == SP_LOAD_AUTO && bytes <= o->max_memory_mb * 1048576.0);
    if (ds->in_memory) {
        ds->x = sp_malloc((size_t)ds->n_file * (size_t)ds->L * sizeof(float), "spectra");
        if (!ds->x) {
            sp_error_push(__FILE__, __LINE__,
                          "loading '%s' '%s' into memory (%.0f MB); data.load = \"stream\" reads it in blocks",
                          file, sp, bytes / 1048576.0);
            return SP_ENOMEM;
        }
        if (H5Dread(ds->dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->x) < 0)
            SP_FAIL(SP_EFORMAT, "'%s': reading dataset '%s' failed (truncated or corrupted file?)",
                    file, sp);
    }

    /* non-finite rows */
    unsigned char *bad = calloc((size_t)ds->n_file + 1, 1);
    if (!bad) SP_FAIL(SP_ENOMEM, "out of memory");
    int64_t nbad = 0;
    SpStatus rc = scan_nonfinite(ds, bad, &nbad);
    if (rc != SP_OK) {
        free(bad);
        if (rc == SP_EIO) return rewrap(sp);
        return rc;
    }
    if (nbad > 0) {
        int64_t first = 0;
        while (!bad[first]) first++;
        if (o->nonfinite != SP_NONFINITE_DROP) {
            free(bad);
            SP_FAIL(SP_EINPUT, "'%s': dataset '%s': row %lld contains NaN or Inf (%lld of %lld rows "
                    "do); set data.nonfinite = \"drop\" to skip them", file, sp, (long long)first,
                    (long long)nbad, (long long)ds->n_file);
        }
        if (nbad == ds->n_file) {
            free(bad);
            SP_FAIL(SP_EINPUT, "'%s': dataset '%s': every row contains NaN or Inf", file, sp);
        }
        int64_t n = ds->n_file - nbad;
        ds->file_row = sp_malloc((size_t)n * sizeof(int64_t), "row map");
        if (!ds->file_row) {
            free(bad);
            return SP_ENOMEM;
        }
        int64_t k = 0;
        for (int64_t i = 0; i < ds->n_file; i++) {
            if (bad[i]) continue;
            ds->file_row[k] = i;
            if (ds->in_memory && k != i)
                memmove(ds->x + (size_t)k * (size_t)ds->L, ds->x + (size_t)i * (size_t)ds->L,
                        (size_t)ds->L * sizeof(float));
            if (ds->labels) ds->labels[k] = ds->labels[i];
            if (ds->extvar) ds->extvar[k] = ds->extvar[i];
            k++;
        }
        ds->n = n;
        ds->n_dropped = nbad;
        sp_log(SP_LOG_WARN, "'%s': dropped %lld of %lld rows of '%s' containing NaN or Inf "
               "(first: row %lld)", file, (long long)nbad, (long long)ds->n_file, sp, (long long)first);
    } else {
        ds->n = ds->n_file;
    }
    free(bad);
    if (ds->in_memory) {
        /* nothing more to read: release the file */
        H5Dclose(ds->dset);
        ds->dset = -1;
        H5Fclose(ds->file);
        ds->file = -1;
    }
    return SP_OK;
}

SpStatus dataset_open(SpDataset **out, const char *path, const SpDataOptions *opt) {
    *out = NULL;
    SpDataOptions def;
    if (!opt) {
        data_options_default(&def);
        opt = &def;
    }
    if (strlen(path) >= SP_PATH_MAX) SP_FAIL(SP_EINPUT, "path too long: '%s'", path);
    SpDataset *ds = calloc(1, sizeof *ds);
    if (!ds) SP_FAIL(SP_ENOMEM, "out of memory");
    ds->file = ds->dset = -1;
    snprintf(ds->path, sizeof ds->path, "%s", path);
    ds->block_rows = opt->block_rows > 0 ? opt->block_rows : 256;
    ds->shuffle_window = opt->shuffle_window > 0 ? opt->shuffle_window : 8;
    SpStatus rc = open_impl(ds, opt);
    if (rc != SP_OK) {
        dataset_close(&ds);
        return rc;
    }
    *out = ds;
    return SP_OK;
}

int64_t dataset_count_labelled(const SpDataset *ds, int64_t *counts) {
    if (counts)
        for (int c = 0; c < ds->n_classes; c++) counts[c] = 0;
    if (!ds->labels) return 0;
    int64_t k = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        int32_t l = ds->labels[i];
        if (l < 0) continue;
        k++;
        if (counts && l < ds->n_classes) counts[l]++;
    }
    return k;
}

void dataset_describe(const SpDataset *ds, char *buf, size_t n) {
    int k = snprintf(buf, n, "'%s' %s: N=%lld L=%d (%s)", ds->path, ds->spectra_path,
                     (long long)ds->n, ds->L, ds->in_memory ? "in memory" : "streamed");
    if (k < 0 || (size_t)k >= n) return;
    if (ds->labels)
        k += snprintf(buf + k, n - (size_t)k, " labels=%lld/%lld classes=%d",
                      (long long)dataset_count_labelled(ds, NULL), (long long)ds->n, ds->n_classes);
    if (k < 0 || (size_t)k >= n) return;
    if (ds->extvar) k += snprintf(buf + k, n - (size_t)k, " extvar=%d values", ds->n_extvar);
    if (k < 0 || (size_t)k >= n) return;
    if (ds->n_dropped) snprintf(buf + k, n - (size_t)k, " dropped=%lld", (long long)ds->n_dropped);
}
