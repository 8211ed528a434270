/* normalise.c - per-spectrum and training-statistics normalisation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_data.h"

static const char *const k_names[] = {"none", "max", "minmax", "global_minmax", "standardise"};

SpStatus norm_parse(const char *name, SpNormKind *out) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, k_names[i])) {
            *out = (SpNormKind)i;
            return SP_OK;
        }
    if (!strcmp(name, "standardize")) {
        *out = SP_NORM_STANDARDISE;
        return SP_OK;
    }
    SP_FAIL(SP_ECONFIG, "data.normalise: unknown normalisation '%s' (choose none, max, minmax, "
            "global_minmax, standardise)", name);
}

const char *norm_name(SpNormKind k) {
    return (int)k >= 0 && (int)k < 5 ? k_names[k] : "?";
}

void norm_free(SpNorm *nm) {
    if (!nm) return;
    free(nm->mean);
    free(nm->std);
    memset(nm, 0, sizeof *nm);
}

SpStatus norm_fit(SpNorm *nm, SpNormKind kind, SpDataset *ds, const int64_t *idx, int64_t n) {
    memset(nm, 0, sizeof *nm);
    nm->kind = kind;
    nm->L = ds->L;
    if (!idx) n = ds->n;
    nm->count = n;
    if (kind != SP_NORM_GLOBAL_MINMAX && kind != SP_NORM_STANDARDISE) return SP_OK;
    if (n <= 0) SP_FAIL(SP_EINPUT, "'%s': cannot fit normalisation '%s' on zero rows", ds->path,
                        norm_name(kind));
    const int L = ds->L;
    double *sum = NULL, *sq = NULL, *shift = NULL;
    if (kind == SP_NORM_STANDARDISE) {
        sum = calloc((size_t)L, sizeof *sum);
        sq = calloc((size_t)L, sizeof *sq);
        shift = calloc((size_t)L, sizeof *shift);
        nm->mean = calloc((size_t)L, sizeof *nm->mean);
        nm->std = calloc((size_t)L, sizeof *nm->std);
        if (!sum || !sq || !shift || !nm->mean || !nm->std) {
            free(sum);
            free(sq);
            free(shift);
            norm_free(nm);
            SP_FAIL(SP_ENOMEM, "out of memory fitting the normalisation");
        }
    }
    /* one pass in blocks: contiguous runs of idx are read together */
    const int64_t B = ds->in_memory ? 1 : (ds->block_rows > 0 ? ds->block_rows : 256);
    float *buf = ds->in_memory ? NULL : sp_malloc((size_t)B * (size_t)L * sizeof(float), "norm buffer");
    if (!ds->in_memory && !buf) {
        free(sum);
        free(sq);
        free(shift);
        norm_free(nm);
        return SP_ENOMEM;
    }
    double mn = INFINITY, mx = -INFINITY;
    SpStatus rc = SP_OK;
    int64_t k = 0, seen = 0;
    while (k < n) {
        int64_t i0 = idx ? idx[k] : k, m = 1;
        if (!ds->in_memory)
            while (k + m < n && m < B && (idx ? idx[k + m] : k + m) == i0 + m) m++;
        const float *rows;
        if (ds->in_memory) {
            rows = ds->x + (size_t)i0 * (size_t)L;
        } else {
            rc = dataset_read_rows(ds, i0, m, buf);
            if (rc != SP_OK) break;
            rows = buf;
        }
        for (int64_t r = 0; r < m; r++) {
            const float *x = rows + (size_t)r * (size_t)L;
            if (kind == SP_NORM_GLOBAL_MINMAX) {
                for (int j = 0; j < L; j++) {
                    double v = x[j];
                    if (v < mn) mn = v;
                    if (v > mx) mx = v;
                }
            } else {
                /* shifted sums (shift = first row) keep the variance accurate */
                if (seen == 0)
                    for (int j = 0; j < L; j++) shift[j] = x[j];
                for (int j = 0; j < L; j++) {
                    double d = (double)x[j] - shift[j];
                    sum[j] += d;
                    sq[j] += d * d;
                }
            }
            seen++;
        }
        k += m;
    }
    free(buf);
    if (rc == SP_OK) {
        if (kind == SP_NORM_GLOBAL_MINMAX) {
            nm->gmin = mn;
            nm->gmax = mx;
        } else {
            for (int j = 0; j < L; j++) {
                double mean_d = sum[j] / (double)seen;
                double var = sq[j] / (double)seen - mean_d * mean_d;
                if (var < 0) var = 0;
                nm->mean[j] = shift[j] + mean_d;
                nm->std[j] = sqrt(var);
            }
        }
    } else {
        norm_free(nm);
    }
    free(sum);
    free(sq);
    free(shift);
    return rc;
}

void norm_apply(const SpNorm *nm, float *x, int64_t n, int L) {
    if (!nm) return;
    switch (nm->kind) {
    case SP_NORM_NONE:
        return;
    case SP_NORM_MAX:
        for (int64_t i = 0; i < n; i++) {
            float *r = x + (size_t)i * (size_t)L;
            double m = r[0];
            for (int j = 1; j < L; j++)
                if ((double)r[j] > m) m = r[j];
            if (!(m > 0)) continue;
            for (int j = 0; j < L; j++) r[j] = (float)((double)r[j] / m);
        }
        return;
    case SP_NORM_MINMAX:
        for (int64_t i = 0; i < n; i++) {
            float *r = x + (size_t)i * (size_t)L;
            double lo = r[0], hi = r[0];
            for (int j = 1; j < L; j++) {
                if ((double)r[j] < lo) lo = r[j];
                if ((double)r[j] > hi) hi = r[j];
            }
            double w = hi - lo;
            for (int j = 0; j < L; j++) r[j] = w > 0 ? (float)(((double)r[j] - lo) / w) : 0.0f;
        }
        return;
    case SP_NORM_GLOBAL_MINMAX: {
        double w = nm->gmax - nm->gmin;
        for (size_t t = 0; t < (size_t)n * (size_t)L; t++)
            x[t] = w > 0 ? (float)(2.0 * ((double)x[t] - nm->gmin) / w - 1.0) : 0.0f;
        return;
    }
    case SP_NORM_STANDARDISE:
        for (int64_t i = 0; i < n; i++) {
            float *r = x + (size_t)i * (size_t)L;
            for (int j = 0; j < L && j < nm->L; j++) {
                double s = nm->std[j] > 0 ? nm->std[j] : 1.0;
                r[j] = (float)(((double)r[j] - nm->mean[j]) / s);
            }
        }
        return;
    }
}

SpStatus norm_save(const SpNorm *nm, hid_t loc, const char *group) {
    SP_TRY(sp_h5_ensure_group(loc, group));
    SP_TRY(sp_h5_attr_write_str(loc, group, "kind", norm_name(nm->kind)));
    SP_TRY(sp_h5_attr_write_int64(loc, group, "L", nm->L));
    SP_TRY(sp_h5_attr_write_int64(loc, group, "count", nm->count));
    SP_TRY(sp_h5_attr_write_double(loc, group, "gmin", nm->gmin));
    SP_TRY(sp_h5_attr_write_double(loc, group, "gmax", nm->gmax));
    if (nm->kind == SP_NORM_STANDARDISE) {
        char name[512];
        hsize_t dims[1] = {(hsize_t)nm->L};
        snprintf(name, sizeof name, "%s/mean", group);
        SP_TRY(sp_h5_write_double(loc, name, 1, dims, nm->mean, SP_H5_CHECKSUM));
        snprintf(name, sizeof name, "%s/std", group);
        SP_TRY(sp_h5_write_double(loc, name, 1, dims, nm->std, SP_H5_CHECKSUM));
    }
    return SP_OK;
}

SpStatus norm_load(SpNorm *nm, hid_t loc, const char *file, const char *group) {
    memset(nm, 0, sizeof *nm);
    if (!sp_h5_exists(loc, group))
        SP_FAIL(SP_EINPUT, "'%s': normalisation group '%s' not found", file, group);
    char *kind = NULL;
    SP_TRY(sp_h5_attr_read_str(loc, file, group, "kind", &kind));
    SpStatus rc = norm_parse(kind, &nm->kind);
    free(kind);
    if (rc != SP_OK) SP_FAIL(SP_EINPUT, "'%s': group '%s': %s", file, group, sp_error_message());
    int64_t L = 0, count = 0;
    SP_TRY(sp_h5_attr_read_int64(loc, file, group, "L", &L));
    SP_TRY(sp_h5_attr_read_int64(loc, file, group, "count", &count));
    SP_TRY(sp_h5_attr_read_double(loc, file, group, "gmin", &nm->gmin));
    SP_TRY(sp_h5_attr_read_double(loc, file, group, "gmax", &nm->gmax));
    if (L <= 0 || L > 100000000)
        SP_FAIL(SP_EINPUT, "'%s': group '%s': invalid length L=%lld", file, group, (long long)L);
    nm->L = (int)L;
    nm->count = count;
    if (nm->kind == SP_NORM_STANDARDISE) {
        nm->mean = malloc((size_t)L * sizeof(double));
        nm->std = malloc((size_t)L * sizeof(double));
        if (!nm->mean || !nm->std) {
            norm_free(nm);
            SP_FAIL(SP_ENOMEM, "out of memory");
        }
        char name[512];
        snprintf(name, sizeof name, "%s/mean", group);
        rc = sp_h5_read_double(loc, file, name, nm->mean, (size_t)L);
        if (rc == SP_OK) {
            snprintf(name, sizeof name, "%s/std", group);
            rc = sp_h5_read_double(loc, file, name, nm->std, (size_t)L);
        }
        if (rc != SP_OK) {
            norm_free(nm);
            return rc;
        }
    }
    return SP_OK;
}
