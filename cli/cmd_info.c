/* cmd_info.c - `specssl info FILE.h5`: what a file holds.
 *
 * A specssl checkpoint (root attribute format = "specssl") is validated with
 * ckpt_open and summarised: kind, arch, epoch/step, versions, and per group
 * the number of tensors and of parameter/buffer values. Any other HDF5 file
 * is described as a dataset: every dataset with its shape and dtype, root
 * attributes, and when /labels exists the classes with their counts (and
 * names from the class_names attribute). Bad files exit 2 with one line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "cmd_util.h"
#include "sp_checkpoint.h"
#include "sp_data.h"
#include "sp_h5.h"

int cmd_info(int argc, char **argv);

#define INFO_PATH_MAX 1024

static void dtype_name(hid_t ty, char *out, size_t n) {
    H5T_class_t c = H5Tget_class(ty);
    size_t sz = H5Tget_size(ty);
    switch (c) {
    case H5T_FLOAT: snprintf(out, n, "float%zu", sz * 8); break;
    case H5T_INTEGER:
        snprintf(out, n, "%sint%zu", H5Tget_sign(ty) == H5T_SGN_NONE ? "u" : "", sz * 8);
        break;
    case H5T_STRING: snprintf(out, n, "string"); break;
    case H5T_COMPOUND: snprintf(out, n, "compound"); break;
    case H5T_ENUM: snprintf(out, n, "enum"); break;
    case H5T_ARRAY: snprintf(out, n, "array"); break;
    case H5T_VLEN: snprintf(out, n, "vlen"); break;
    case H5T_OPAQUE: snprintf(out, n, "opaque"); break;
    case H5T_BITFIELD: snprintf(out, n, "bitfield"); break;
    case H5T_REFERENCE: snprintf(out, n, "reference"); break;
    default: snprintf(out, n, "unknown"); break;
    }
}

static void shape_of(hid_t sp, char *out, size_t n, hsize_t *count) {
    int rank = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[32];
    *count = 0;
    if (rank < 0 || rank > 32) {
        snprintf(out, n, "?");
        return;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    hsize_t c = 1;
    size_t used = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < rank && used < n; i++) {
        used += (size_t)snprintf(out + used, n - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)dims[i]);
        c *= dims[i];
    }
    if (used < n) snprintf(out + used, n - used, "]%s", rank == 0 ? " (scalar)" : "");
    *count = H5Sget_simple_extent_type(sp) == H5S_NULL ? 0 : c;
}

/* ------------------------------------------------------------- traversal */

typedef struct {
    char group[INFO_PATH_MAX];
    long tensors;
    unsigned long long params, buffers;
} GroupSum;

typedef struct {
    int checkpoint;
    int ndsets;
    GroupSum *groups;
    int ngroups, capgroups;
    int failed;
} Visit;

static GroupSum *group_slot(Visit *v, const char *group) {
    for (int i = 0; i < v->ngroups; i++)
        if (strcmp(v->groups[i].group, group) == 0) return &v->groups[i];
    if (v->ngroups == v->capgroups) {
        int cap = v->capgroups ? 2 * v->capgroups : 16;
        GroupSum *g = realloc(v->groups, (size_t)cap * sizeof *g);
        if (!g) return NULL;
        v->groups = g;
        v->capgroups = cap;
    }
    GroupSum *g = &v->groups[v->ngroups++];
    memset(g, 0, sizeof *g);
    snprintf(g->group, sizeof g->group, "%s", group);
    return g;
}

static herr_t visit_cb(hid_t root, const char *name, const H5L_info_t *li, void *op) {
    Visit *v = op;
    if (li->type != H5L_TYPE_HARD) {
        printf("  /%-40s (%s link)\n", name, li->type == H5L_TYPE_SOFT ? "soft" : "external");
        return 0;
    }
    hid_t o = -1;
    H5E_BEGIN_TRY { o = H5Oopen(root, name, H5P_DEFAULT); }
    H5E_END_TRY;
    if (o < 0) {
        printf("  /%-40s (unreadable object)\n", name);
        v->failed = 1;
        return 0;
    }
    if (H5Iget_type(o) != H5I_DATASET) {
        H5Oclose(o);
        return 0;
    }
    v->ndsets++;
    hid_t sp = H5Dget_space(o), ty = H5Dget_type(o);
    char shape[256] = "?", dt[32] = "?";
    hsize_t count = 0;
    if (sp >= 0) shape_of(sp, shape, sizeof shape, &count);
    if (ty >= 0) dtype_name(ty, dt, sizeof dt);
    char kind[16] = "";
    if (v->checkpoint && sp_h5_attr_exists(o, ".", "kind")) {
        char *k = NULL;
        if (sp_h5_attr_read_str(o, "", ".", "kind", &k) == SP_OK) snprintf(kind, sizeof kind, "%s", k);
        free(k);
    }
    if (v->checkpoint && kind[0]) {
        char group[INFO_PATH_MAX];
        snprintf(group, sizeof group, "/%s", name);
        char *slash = strrchr(group, '/');
        if (slash == group) slash[1] = '\0';
        else *slash = '\0';
        GroupSum *g = group_slot(v, group);
        if (g) {
            g->tensors++;
            if (!strcmp(kind, "buffer")) g->buffers += count;
            else g->params += count;
        }
    } else {
        printf("  /%-40s %-22s %s\n", name, shape, dt);
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    H5Oclose(o);
    return 0;
}

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *ai, void *op) {
    (void)ai;
    int *shown = op;
    if (!strcmp(name, "class_names") || !strcmp(name, "config")) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t ty = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t c = H5Tget_class(ty);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    char value[128] = "";
    if (npts == 1 && c == H5T_STRING) {
        char *s = NULL;
        if (sp_h5_attr_read_str(loc, "", ".", name, &s) == SP_OK) {
            for (char *q = s; *q; q++)
                if (*q == '\n' || *q == '\t') *q = ' ';
            snprintf(value, sizeof value, "%.100s%s", s, strlen(s) > 100 ? "..." : "");
        }
        free(s);
    } else if (npts == 1 && c == H5T_INTEGER) {
        long long x = 0;
        if (H5Aread(a, H5T_NATIVE_LLONG, &x) >= 0) snprintf(value, sizeof value, "%lld", x);
    } else if (npts == 1 && c == H5T_FLOAT) {
        double x = 0;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &x) >= 0) snprintf(value, sizeof value, "%.9g", x);
    } else {
        char dt[32];
        dtype_name(ty, dt, sizeof dt);
        snprintf(value, sizeof value, "(%lld x %s)", (long long)npts, dt);
    }
    if (!*shown) printf("attributes:\n");
    *shown = 1;
    printf("  %-20s %s\n", name, value);
    H5Sclose(sp);
    H5Tclose(ty);
    H5Aclose(a);
    return 0;
}

/* --------------------------------------------------------------- dataset */

static SpStatus describe_labels(hid_t f, const char *path) {
    if (!sp_h5_exists(f, "/labels")) {
        printf("labels: none (no /labels dataset)\n");
        return SP_OK;
    }
    SpH5Info li;
    SP_TRY(sp_h5_info(f, path, "/labels", &li));
    if (li.cls != H5T_INTEGER || li.rank != 1) {
        printf("labels: /labels is not a 1-D integer dataset; not summarised\n");
        return SP_OK;
    }
    size_t n = (size_t)li.dims[0];
    int32_t *lab = sp_malloc((n ? n : 1) * sizeof *lab, "labels");
    if (!lab) return SP_ENOMEM;
    SpStatus rc = sp_h5_read_int32(f, path, "/labels", lab, n);
    if (rc != SP_OK) {
        free(lab);
        return rc;
    }
    char **names = NULL;
    int nnames = 0;
    if (data_read_class_names(f, path, &names, &nnames) != SP_OK) {
        printf("class_names: unreadable (%s)\n", sp_error_message());
        sp_error_clear();
    }
    int32_t maxl = -1;
    size_t unl = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (lab[i] > maxl) maxl = lab[i];
        if (lab[i] == -1) unl++;
        if (lab[i] < -1) bad++;
    }
    int64_t ncls = (int64_t)maxl + 1 > nnames ? (int64_t)maxl + 1 : nnames;
    if (ncls > 100000) {
        printf("labels: largest label %d, too many classes to list\n", maxl);
        ncls = 0;
    }
    size_t *counts = calloc((size_t)(ncls > 0 ? ncls : 1), sizeof *counts);
    if (!counts) {
        free(lab);
        data_free_names(names, nnames);
        SP_FAIL(SP_ENOMEM, "out of memory counting labels");
    }
    for (size_t i = 0; i < n; i++)
        if (lab[i] >= 0 && lab[i] < ncls) counts[lab[i]]++;
    printf("classes: %lld (labelled %zu of %zu, unlabelled %zu)%s\n", (long long)ncls, n - unl - bad, n, unl,
           nnames ? "" : "  [no class_names attribute]");
    if (bad) printf("  warning: %zu labels below -1 (invalid)\n", bad);
    for (int c = 0; c < ncls; c++)
        printf("  %4d  %-24s %zu\n", c, c < nnames ? names[c] : "", counts[c]);
    free(counts);
    free(lab);
    data_free_names(names, nnames);
    return SP_OK;
}

/* ------------------------------------------------------------ checkpoint */

static SpStatus describe_checkpoint(const char *path, int show_config) {
    hid_t f = -1;
    SpCkptMeta meta;
    SP_TRY(ckpt_open(path, NULL, NULL, &f, &meta));
    char *created = NULL, *ver = NULL;
    if (sp_h5_attr_exists(f, "/", "created")) sp_h5_attr_read_str(f, path, "/", "created", &created);
    if (sp_h5_attr_exists(f, "/", "specssl_version"))
        sp_h5_attr_read_str(f, path, "/", "specssl_version", &ver);
    printf("file: %s\nspecssl checkpoint, format version %lld (written by specssl %s, %s)\n", path,
           (long long)meta.version, ver ? ver : "?", created ? created : "?");
    printf("kind: %s\narch: %s\nepoch: %lld\nstep: %lld\n", meta.kind, meta.arch,
           (long long)meta.epoch, (long long)meta.step);
    free(created);
    free(ver);
    printf("other datasets:\n");
    Visit v = {1, 0, NULL, 0, 0, 0};
    H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &v);
    printf("tensor groups:\n");
    unsigned long long total = 0;
    for (int i = 0; i < v.ngroups; i++) {
        const GroupSum *g = &v.groups[i];
        printf("  %-28s %5ld tensors  %12llu parameters  %10llu buffer values\n", g->group,
               g->tensors, g->params, g->buffers);
        total += g->params;
    }
    printf("total parameters in tensor groups: %llu\n", total);
    if (meta.config_text) {
        if (show_config) {
            printf("config:\n%s", meta.config_text);
        } else {
            int lines = 0;
            for (const char *q = meta.config_text; *q; q++) lines += *q == '\n';
            printf("config: %d lines stored (show with --config)\n", lines);
        }
    }
    free(v.groups);
    ckpt_meta_free(&meta);
    sp_h5_close(f);
    return SP_OK;
}

static SpStatus describe_file(const char *path, int show_config) {
    hid_t f = -1;
    SP_TRY(sp_h5_open_read(path, &f));
    char *format = NULL;
    int is_ckpt = 0;
    if (sp_h5_attr_exists(f, "/", "format") &&
        sp_h5_attr_read_str(f, path, "/", "format", &format) == SP_OK)
        is_ckpt = !strcmp(format, "specssl");
    sp_error_clear();
    free(format);
    if (is_ckpt) {
        sp_h5_close(f);
        return describe_checkpoint(path, show_config);
    }
    printf("file: %s\nHDF5 data file (not a specssl checkpoint)\ndatasets:\n", path);
    Visit v = {0, 0, NULL, 0, 0, 0};
    herr_t st = H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &v);
    free(v.groups);
    if (st < 0 || v.failed) {
        sp_h5_close(f);
        SP_FAIL(SP_EFORMAT, "'%s': cannot walk the file's groups (corrupted file?)", path);
    }
    if (v.ndsets == 0) printf("  (no datasets)\n");
    int shown = 0;
    hsize_t idx = 0;
    H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &shown);
    SpStatus rc = describe_labels(f, path);
    sp_h5_close(f);
    return rc;
}

int cmd_info(int argc, char **argv) {
    int show_config = 0;
    const CmdOpt opts[] = {
        {"config", 0, CMD_FLAG, NULL, "checkpoints: print the stored configuration", &show_config, 0},
    };
    const CmdSpec spec = {
        "info", "FILE.h5 [--config]",
        "describe a dataset or checkpoint file",
        "For a specssl checkpoint: kind, architecture, epoch and step, versions, and\n"
        "the tensor groups with their parameter counts. For any other HDF5 file:\n"
        "every dataset with its shape and dtype, the root attributes, and the classes\n"
        "of /labels with their counts and class_names.",
        opts, CMD_NOPTS(opts), 1, 1};
    CmdPos pos;
    int rc = cmd_parse(&spec, argc, argv, &pos);
    if (rc != CMD_CONTINUE) return rc;
    SpStatus st = describe_file(pos.v[0], show_config);
    if (fflush(stdout) != 0 && st == SP_OK)
        st = sp_error_set(SP_EIO, __FILE__, __LINE__, "writing to stdout failed");
    return cmd_finish(st);
}
