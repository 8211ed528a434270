/* split.c - stratified few-label subsets with a disjoint validation part. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sp_data.h"
#include "sp_log.h"

void split_free(SpSplit *s) {
    if (!s) return;
    free(s->train);
    free(s->val);
    memset(s, 0, sizeof *s);
}

#define SPLIT_WARN_MAX 5   /* per-class warnings before the summary line */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t take_count(int per_class, double fraction, int64_t avail) {
    if (per_class > 0) return per_class;
    if (fraction <= 0) return 0;
    int64_t k = (int64_t)floor(fraction * (double)avail + 0.5);
    if (k < 1) k = 1;
    return k;
}

SpStatus split_make(SpSplit *s, const int32_t *labels, int64_t n, int n_classes,
                    const SpSplitSpec *spec) {
    memset(s, 0, sizeof *s);
    s->spec = *spec;
    if (!labels) SP_FAIL(SP_EINPUT, "a labelled split needs labels");
    if (n_classes <= 0) SP_FAIL(SP_EINPUT, "a labelled split needs at least one class");
    if (spec->per_class <= 0 && !(spec->fraction > 0 && spec->fraction <= 1))
        SP_FAIL(SP_EINPUT, "split: give labels per class (> 0) or a fraction in (0, 1] (got %d, %g)",
                spec->per_class, spec->fraction);
    if (spec->val_per_class < 0 || spec->val_fraction < 0 || spec->val_fraction >= 1)
        SP_FAIL(SP_EINPUT, "split: validation size must be >= 0 (per class) or a fraction in [0, 1)");
    s->n_classes = n_classes;
    /* bucket rows by class (ascending within class) */
    int64_t *cnt = calloc((size_t)n_classes + 1, sizeof *cnt);
    int64_t *off = calloc((size_t)n_classes + 1, sizeof *off);
    int64_t *rows = malloc(((size_t)n + 1) * sizeof *rows);
    int64_t *fill = calloc((size_t)n_classes + 1, sizeof *fill);
    if (!cnt || !off || !rows || !fill) {
        free(cnt);
        free(off);
        free(rows);
        free(fill);
        SP_FAIL(SP_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] >= n_classes) {
            int32_t bad = labels[i];
            free(cnt);
            free(off);
            free(rows);
            free(fill);
            SP_FAIL(SP_EINPUT, "split: row %lld has label %d but there are %d classes", (long long)i,
                    bad, n_classes);
        }
        if (labels[i] >= 0) cnt[labels[i]]++;
    }
    for (int c = 1; c <= n_classes; c++) off[c] = off[c - 1] + cnt[c - 1];
    for (int64_t i = 0; i < n; i++)
        if (labels[i] >= 0) rows[off[labels[i]] + fill[labels[i]]++] = i;
    int64_t total = off[n_classes];
    s->train = malloc(((size_t)total + 1) * sizeof(int64_t));
    s->val = malloc(((size_t)total + 1) * sizeof(int64_t));
    if (!s->train || !s->val) {
        free(cnt);
        free(off);
        free(rows);
        free(fill);
        split_free(s);
        SP_FAIL(SP_ENOMEM, "out of memory");
    }
    for (int c = 0; c < n_classes; c++) {
        int64_t avail = cnt[c];
        int64_t *r = rows + off[c];
        SpRng rng;
        sp_rng_stream(&rng, spec->seed, (uint64_t)c, 0x73706c6974ULL /* "split" */, 0);
        for (int64_t i = avail - 1; i > 0; i--) {
            int64_t j = sp_rng_below(&rng, i + 1);
            int64_t t = r[i];
            r[i] = r[j];
            r[j] = t;
        }
        int64_t k = take_count(spec->per_class, spec->fraction, avail);
        int64_t v = spec->val_per_class > 0 ? spec->val_per_class
                    : spec->val_fraction > 0 ? (int64_t)floor(spec->val_fraction * (double)avail + 0.5)
                                             : 0;
        if (k + v > avail) {
            s->n_short++;
            int64_t k2 = k < avail ? k : avail;
            int64_t v2 = avail - k2 < v ? avail - k2 : v;
            /* one line per short class for the first few, then a summary at
             * the end (a file with label gaps would otherwise print one line
             * per missing class) */
            if (s->n_short <= SPLIT_WARN_MAX)
                sp_log(SP_LOG_WARN, "class %d has %lld labelled rows, fewer than the %lld + %lld "
                       "requested (train + validation): taking %lld + %lld", c, (long long)avail,
                       (long long)k, (long long)v, (long long)k2, (long long)v2);
            k = k2;
            v = v2;
        }
        /* validation first (independent of k), then train */
        for (int64_t i = 0; i < v; i++) s->val[s->n_val++] = r[i];
        for (int64_t i = 0; i < k; i++) s->train[s->n_train++] = r[v + i];
    }
    if (s->n_short > SPLIT_WARN_MAX)
        sp_log(SP_LOG_WARN, "... and %d more classes with fewer labelled rows than requested "
               "(%d of %d classes in all)", s->n_short - SPLIT_WARN_MAX, s->n_short, n_classes);
    qsort(s->train, (size_t)s->n_train, sizeof(int64_t), cmp_i64);
    qsort(s->val, (size_t)s->n_val, sizeof(int64_t), cmp_i64);
    free(cnt);
    free(off);
    free(rows);
    free(fill);
    if (s->n_train == 0) {
        split_free(s);
        SP_FAIL(SP_EINPUT, "split: no labelled rows (every label is -1)");
    }
    return SP_OK;
}

SpStatus split_save(const SpSplit *s, hid_t loc, const char *group) {
    SP_TRY(sp_h5_ensure_group(loc, group));
    char name[512];
    hsize_t d[1];
    snprintf(name, sizeof name, "%s/train_indices", group);
    d[0] = (hsize_t)s->n_train;
    SP_TRY(sp_h5_write_int64(loc, name, 1, d, s->train, 0));
    snprintf(name, sizeof name, "%s/val_indices", group);
    d[0] = (hsize_t)s->n_val;
    SP_TRY(sp_h5_write_int64(loc, name, 1, d, s->val, 0));
    SP_TRY(sp_h5_attr_write_int64(loc, group, "per_class", s->spec.per_class));
    SP_TRY(sp_h5_attr_write_double(loc, group, "fraction", s->spec.fraction));
    SP_TRY(sp_h5_attr_write_int64(loc, group, "val_per_class", s->spec.val_per_class));
    SP_TRY(sp_h5_attr_write_double(loc, group, "val_fraction", s->spec.val_fraction));
    SP_TRY(sp_h5_attr_write_int64(loc, group, "seed", (int64_t)s->spec.seed));
    SP_TRY(sp_h5_attr_write_int64(loc, group, "n_classes", s->n_classes));
    return SP_OK;
}

static SpStatus read_idx(hid_t loc, const char *file, const char *name, int64_t **out, int64_t *n) {
    SpH5Info info;
    SP_TRY(sp_h5_info(loc, file, name, &info));
    if (info.rank != 1 || info.cls != H5T_INTEGER)
        SP_FAIL(SP_EINPUT, "'%s': '%s' must be a 1-D integer dataset", file, name);
    *n = (int64_t)info.dims[0];
    *out = malloc(((size_t)*n + 1) * sizeof(int64_t));
    if (!*out) SP_FAIL(SP_ENOMEM, "out of memory");
    return sp_h5_read_int64(loc, file, name, *out, (size_t)*n);
}

SpStatus split_load(SpSplit *s, hid_t loc, const char *file, const char *group) {
    memset(s, 0, sizeof *s);
    if (!sp_h5_exists(loc, group)) SP_FAIL(SP_EINPUT, "'%s': split group '%s' not found", file, group);
    char name[512];
    SpStatus rc;
    snprintf(name, sizeof name, "%s/train_indices", group);
    rc = read_idx(loc, file, name, &s->train, &s->n_train);
    if (rc == SP_OK) {
        snprintf(name, sizeof name, "%s/val_indices", group);
        rc = read_idx(loc, file, name, &s->val, &s->n_val);
    }
    int64_t v = 0;
    if (rc == SP_OK) rc = sp_h5_attr_read_int64(loc, file, group, "per_class", &v);
    s->spec.per_class = (int)v;
    if (rc == SP_OK) rc = sp_h5_attr_read_double(loc, file, group, "fraction", &s->spec.fraction);
    if (rc == SP_OK) rc = sp_h5_attr_read_int64(loc, file, group, "val_per_class", &v);
    s->spec.val_per_class = (int)v;
    if (rc == SP_OK) rc = sp_h5_attr_read_double(loc, file, group, "val_fraction", &s->spec.val_fraction);
    if (rc == SP_OK) rc = sp_h5_attr_read_int64(loc, file, group, "seed", &v);
    s->spec.seed = (uint64_t)v;
    if (rc == SP_OK) rc = sp_h5_attr_read_int64(loc, file, group, "n_classes", &v);
    s->n_classes = (int)v;
    if (rc != SP_OK) split_free(s);
    return rc;
}
