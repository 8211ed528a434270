/* test_data: dataset reading/validation, normalisation, splits, loader, writers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_data.h"
#include "sp_h5.h"
#include "sp_test.h"

/* ---------------------------------------------------------------- helpers */

static hid_t create_file(const char *path) {
    sp_h5_init();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot create %s", path);
    return f;
}

/* Write a dataset of file type ftype from memory type mtype; chunk != 0 adds
 * chunking + deflate. */
static void put(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                const void *data, int chunk) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) {
        hsize_t c[8];
        for (int i = 0; i < rank; i++) c[i] = dims[i] > 2 ? 2 : (dims[i] ? dims[i] : 1);
        H5Pset_chunk(dcpl, rank, c);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 4);
    }
    hid_t d = H5Dcreate2(f, name, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "create %s", name);
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (n) ck_assert(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(sp);
}

/* A small valid file: N rows, L points, x[i][j] = i*L + j (exact), labels i%3. */
static const char *make_simple(const char *name, int N, int L, int with_labels) {
    const char *p = sp_tmp_path(name);
    hid_t f = create_file(p);
    float *x = malloc((size_t)N * L * sizeof(float));
    int32_t *lab = malloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < L; j++) x[i * L + j] = (float)(i * L + j);
        lab[i] = i % 3;
    }
    hsize_t d2[2] = {(hsize_t)N, (hsize_t)L}, d1[1] = {(hsize_t)N};
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    if (with_labels) put(f, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, lab, 0);
    H5Fclose(f);
    free(x);
    free(lab);
    return p;
}

static void expect_fail(const char *path, const SpDataOptions *o, const char *dset,
                        const char *needle) {
    SpDataset *ds = NULL;
    sp_error_clear();
    SpStatus rc = dataset_open(&ds, path, o);
    ck_assert_msg(rc == SP_EINPUT || rc == SP_EFORMAT, "'%s': expected SP_EINPUT/SP_EFORMAT, got %s (%s)",
                  path, sp_status_name(rc), sp_error_message());
    ck_assert_int_eq(sp_exit_code(rc), 2);
    ck_assert(ds == NULL);
    const char *msg = sp_error_message();
    ck_assert_msg(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    if (dset) ck_assert_msg(strstr(msg, dset) != NULL, "message does not name '%s': %s", dset, msg);
    if (needle) ck_assert_msg(strstr(msg, needle) != NULL, "message lacks '%s': %s", needle, msg);
}

/* ------------------------------------------------------------------- io */

START_TEST(read_dtypes) {
    /* float32, float64, int16, uint8 spectra with exactly representable values */
    const int N = 4, L = 5;
    float ref[20];
    double dv[20];
    int16_t iv[20];
    uint8_t uv[20];
    for (int i = 0; i < N * L; i++) {
        ref[i] = (float)(i * 3);
        dv[i] = i * 3;
        iv[i] = (int16_t)(i * 3 - 20);
        uv[i] = (uint8_t)(i * 3);
    }
    hsize_t d2[2] = {N, L};
    struct { const char *name; hid_t ft, mt; const void *data; double off; } cases[4] = {
        {"f32.h5", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ref, 0},
        {"f64.h5", H5T_IEEE_F64BE, H5T_NATIVE_DOUBLE, dv, 0},
        {"i16.h5", H5T_STD_I16LE, H5T_NATIVE_INT16, iv, -20},
        {"u8.h5", H5T_STD_U8LE, H5T_NATIVE_UINT8, uv, 0},
    };
    for (int c = 0; c < 4; c++) {
        for (int load = 0; load < 2; load++) {
            const char *p = sp_tmp_path(cases[c].name);
            hid_t f = create_file(p);
            put(f, "/spectra", cases[c].ft, cases[c].mt, 2, d2, cases[c].data, c % 2);
            /* float64 labels as written by the upstream numpy scripts */
            double lab[4] = {0, 2, -1, 1};
            hsize_t d1[1] = {N};
            put(f, "/labels", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, lab, 0);
            H5Fclose(f);
            SpDataOptions o;
            data_options_default(&o);
            o.load = load ? SP_LOAD_STREAM : SP_LOAD_MEMORY;
            SpDataset *ds = NULL;
            ck_assert_msg(dataset_open(&ds, p, &o) == SP_OK, "%s: %s", p, sp_error_message());
            ck_assert_int_eq(ds->n, N);
            ck_assert_int_eq(ds->L, L);
            ck_assert_int_eq(ds->in_memory, !load);
            float got[20];
            ck_assert(dataset_read_rows(ds, 0, N, got) == SP_OK);
            for (int i = 0; i < N * L; i++)
                ck_assert_msg(got[i] == (float)(i * 3 + cases[c].off), "%s [%d]: %g", cases[c].name, i,
                              (double)got[i]);
            ck_assert(ds->labels && ds->labels[0] == 0 && ds->labels[1] == 2 && ds->labels[2] == -1 &&
                      ds->labels[3] == 1);
            ck_assert_int_eq(ds->n_classes, 3);
            ck_assert_int_eq(dataset_count_labelled(ds, NULL), 3);
            dataset_close(&ds);
            ck_assert(ds == NULL);
        }
    }
}
END_TEST

START_TEST(nexus_path_and_optional_datasets) {
    /* /entry/data/data float64, chunked + compressed; labels under a custom path */
    const char *p = sp_tmp_path("nexus.h5");
    hid_t f = create_file(p);
    const int N = 7, L = 9;
    double x[63];
    for (int i = 0; i < N * L; i++) x[i] = 0.25 * i;
    int32_t lab[7] = {1, 0, 1, 0, 1, 0, 1}, ev[7] = {0, 0, 1, 1, 2, 2, 4};
    double ax[9];
    for (int j = 0; j < L; j++) ax[j] = 4.0 + 0.5 * j;
    hsize_t d2[2] = {N, L}, d1[1] = {N}, da[1] = {L};
    put(f, "/entry/data/data", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d2, x, 1);
    put(f, "/entry/sample/phase", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, lab, 0);
    put(f, "/entry/sample/bin", H5T_STD_I64LE, H5T_NATIVE_INT32, 1, d1, ev, 0);
    put(f, "/entry/data/two_theta", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, da, ax, 0);
    const char *names[2] = {"wuestite", "rB1"};
    ck_assert(data_write_class_names(f, names, 2) == SP_OK);
    H5Fclose(f);

    SpDataOptions o;
    data_options_default(&o);
    /* default paths: /spectra missing -> clear error naming it and the key */
    expect_fail(p, &o, "/spectra", "data.spectra_path");

    snprintf(o.spectra_path, sizeof o.spectra_path, "/entry/data/data");
    snprintf(o.labels_path, sizeof o.labels_path, "/entry/sample/phase");
    snprintf(o.extvar_path, sizeof o.extvar_path, "/entry/sample/bin");
    snprintf(o.axis_path, sizeof o.axis_path, "/entry/data/two_theta");
    for (int load = 0; load < 2; load++) {
        o.load = load ? SP_LOAD_STREAM : SP_LOAD_AUTO;
        SpDataset *ds = NULL;
        ck_assert_msg(dataset_open(&ds, p, &o) == SP_OK, "%s", sp_error_message());
        ck_assert_int_eq(ds->n, N);
        ck_assert_int_eq(ds->L, L);
        float row[9];
        ck_assert(dataset_read_rows(ds, 3, 1, row) == SP_OK);
        for (int j = 0; j < L; j++) ck_assert(row[j] == (float)(0.25 * (3 * L + j)));
        ck_assert(ds->labels && ds->labels[2] == 1);
        ck_assert(ds->extvar && ds->extvar[6] == 4);
        ck_assert_int_eq(ds->n_extvar, 5);
        ck_assert(ds->axis && ds->axis[8] == 8.0);
        ck_assert_int_eq(ds->n_class_names, 2);
        ck_assert_str_eq(ds->class_names[1], "rB1");
        ck_assert_int_eq(ds->n_classes, 2);
        dataset_close(&ds);
    }
    /* a user-chosen path that is missing is an error (a default one is not) */
    snprintf(o.labels_path, sizeof o.labels_path, "/entry/sample/missing");
    expect_fail(p, &o, "/entry/sample/missing", "data.labels_path");
    /* "" disables the dataset */
    o.labels_path[0] = '\0';
    SpDataset *ds = NULL;
    ck_assert(dataset_open(&ds, p, &o) == SP_OK);
    ck_assert(ds->labels == NULL);
    ck_assert_int_eq(ds->n_classes, 2); /* from class_names */
    dataset_close(&ds);
    /* require_labels */
    o.require_labels = 1;
    expect_fail(p, &o, "/labels", "labels");
}
END_TEST

START_TEST(nexus_via_config) {
    /* the same NeXus layout through config keys only */
    const char *p = sp_tmp_path("nexus_cfg.h5");
    hid_t f = create_file(p);
    double x[12];
    for (int i = 0; i < 12; i++) x[i] = 0.5 * i;
    int32_t lab[3] = {2, 0, 1};
    hsize_t d2[2] = {3, 4}, d1[1] = {3};
    put(f, "/entry/data/data", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d2, x, 1);
    put(f, "/entry/sample/phase", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, lab, 0);
    H5Fclose(f);
    data_config_register();
    const char *sets[] = {"data.spectra_path=\"/entry/data/data\"",
                          "data.labels_path=\"/entry/sample/phase\"", "data.load=\"stream\"",
                          "data.block_rows=2", "data.nonfinite=\"drop\""};
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, NULL, sets, 5) == SP_OK, "%s", sp_error_message());
    SpDataOptions o;
    data_options_default(&o);
    ck_assert(data_options_from_config(c, &o) == SP_OK);
    ck_assert_str_eq(o.spectra_path, "/entry/data/data");
    ck_assert(o.load == SP_LOAD_STREAM && o.block_rows == 2 && o.nonfinite == SP_NONFINITE_DROP);
    sp_config_free(c);
    SpDataset *ds = NULL;
    ck_assert_msg(dataset_open(&ds, p, &o) == SP_OK, "%s", sp_error_message());
    ck_assert(ds->n == 3 && ds->L == 4 && !ds->in_memory);
    ck_assert(ds->labels[0] == 2 && ds->n_classes == 3);
    float row[4];
    ck_assert(dataset_read_rows(ds, 2, 1, row) == SP_OK);
    ck_assert(row[3] == 5.5f);
    dataset_close(&ds);
    /* defaults of the keys equal data_options_default */
    ck_assert(sp_config_load(&c, NULL, NULL, 0) == SP_OK);
    SpDataOptions a, b;
    data_options_default(&a);
    data_options_default(&b);
    ck_assert(data_options_from_config(c, &b) == SP_OK);
    ck_assert(!memcmp(&a, &b, sizeof a));
    ck_assert_str_eq(sp_cfg_str(c, "data.normalise"), "global_minmax");
    sp_config_free(c);
    /* a bad value names the key */
    const char *bad[] = {"data.load=\"sometimes\""};
    ck_assert(sp_config_load(&c, NULL, bad, 1) == SP_ECONFIG);
    ck_assert_msg(strstr(sp_error_message(), "data.load") != NULL, "%s", sp_error_message());
}
END_TEST

START_TEST(auto_memory_threshold) {
    const char *p = make_simple("auto.h5", 64, 256, 1); /* 64 KiB */
    SpDataOptions o;
    data_options_default(&o);
    SpDataset *ds = NULL;
    ck_assert(dataset_open(&ds, p, &o) == SP_OK);
    ck_assert_int_eq(ds->in_memory, 1);
    dataset_close(&ds);
    o.max_memory_mb = 0.03; /* 31 KiB < 64 KiB */
    ck_assert(dataset_open(&ds, p, &o) == SP_OK);
    ck_assert_int_eq(ds->in_memory, 0);
    float row[256];
    ck_assert(dataset_read_rows(ds, 63, 1, row) == SP_OK);
    ck_assert(row[255] == (float)(63 * 256 + 255));
    dataset_close(&ds);
}
END_TEST

/* --------------------------------------------------------------- errors */

START_TEST(bad_files) {
    SpDataOptions o;
    data_options_default(&o);
    /* missing file */
    expect_fail(sp_tmp_path("does_not_exist.h5"), &o, NULL, NULL);
    /* zero-byte */
    const char *p = sp_tmp_path("zero.h5");
    FILE *fp = fopen(p, "wb");
    fclose(fp);
    expect_fail(p, &o, "/spectra", "0 bytes");
    /* not HDF5 */
    p = sp_tmp_path("text.h5");
    fp = fopen(p, "wb");
    fputs("this is a CSV file, not HDF5\n1,2,3\n", fp);
    fclose(fp);
    expect_fail(p, &o, "/spectra", "not an HDF5");
    /* truncated: a valid file cut in half */
    const char *good = make_simple("good.h5", 50, 100, 1);
    struct stat st;
    ck_assert(stat(good, &st) == 0);
    p = sp_tmp_path("trunc.h5");
    FILE *in = fopen(good, "rb"), *out = fopen(p, "wb");
    char *buf = malloc((size_t)st.st_size);
    ck_assert(fread(buf, 1, (size_t)st.st_size, in) == (size_t)st.st_size);
    fwrite(buf, 1, (size_t)st.st_size / 2, out);
    fclose(in);
    fclose(out);
    free(buf);
    expect_fail(p, &o, "/spectra", NULL);
}
END_TEST

START_TEST(bad_shapes_and_types) {
    SpDataOptions o;
    data_options_default(&o);
    float x[24] = {0};
    hsize_t d1[1] = {24}, d3[3] = {2, 3, 4}, d0a[2] = {0, 5}, d0b[2] = {5, 0};
    const char *p;
    hid_t f;
    /* missing /spectra */
    p = sp_tmp_path("nospectra.h5");
    f = create_file(p);
    put(f, "/other", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d1, x, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/spectra", "not found");
    /* rank 1 */
    p = sp_tmp_path("rank1.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d1, x, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/spectra", "rank 1");
    /* rank 3 */
    p = sp_tmp_path("rank3.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d3, x, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/spectra", "rank 3");
    /* N = 0 and L = 0 */
    p = sp_tmp_path("n0.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d0a, x, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/spectra", "empty");
    p = sp_tmp_path("l0.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d0b, x, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/spectra", "empty");
    /* too short for the encoder */
    p = make_simple("short.h5", 4, 6, 0);
    o.min_length = 7;
    expect_fail(p, &o, "/spectra", "at least 7");
    o.min_length = 6;
    SpDataset *ds = NULL;
    ck_assert(dataset_open(&ds, p, &o) == SP_OK);
    dataset_close(&ds);
    o.min_length = 0;
    /* non-numeric dtype: fixed-length strings */
    p = sp_tmp_path("strings.h5");
    f = create_file(p);
    {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, 4);
        char s[6][4];
        memset(s, 'a', sizeof s);
        hsize_t d2[2] = {2, 3};
        put(f, "/spectra", st, st, 2, d2, s, 0);
        H5Tclose(st);
    }
    H5Fclose(f);
    expect_fail(p, &o, "/spectra", "not numeric");
}
END_TEST

START_TEST(bad_labels_and_extvar) {
    SpDataOptions o;
    data_options_default(&o);
    float x[12] = {0};
    hsize_t d2[2] = {4, 3}, d1[1] = {4}, d5[1] = {5};
    int32_t ok[5] = {0, 1, 2, -1, 0}, neg[4] = {0, -2, 1, 1}, ev_neg[4] = {0, 1, -1, 2};
    const char *p;
    hid_t f;
    /* labels length != N */
    p = sp_tmp_path("lablen.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    put(f, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d5, ok, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/labels", "N=4");
    /* labels < -1 */
    p = sp_tmp_path("labneg.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    put(f, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, neg, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/labels", "row 1");
    /* labels >= fixed number of classes */
    p = sp_tmp_path("labbig.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    put(f, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, ok, 0);
    H5Fclose(f);
    o.num_classes = 2;
    expect_fail(p, &o, "/labels", "row 2");
    o.num_classes = 3;
    SpDataset *ds = NULL;
    ck_assert(dataset_open(&ds, p, &o) == SP_OK);
    ck_assert_int_eq(ds->n_classes, 3);
    dataset_close(&ds);
    o.num_classes = 0;
    /* non-integer float labels */
    p = sp_tmp_path("labfrac.h5");
    f = create_file(p);
    double fl[4] = {0, 1, 1.5, 2};
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    put(f, "/labels", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, fl, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/labels", "not an integer");
    /* extvar length != N */
    p = sp_tmp_path("evlen.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    put(f, "/extvar", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d5, ok + 0, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/extvar", "N=4");
    /* extvar negative */
    p = sp_tmp_path("evneg.h5");
    f = create_file(p);
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    put(f, "/extvar", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, ev_neg, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/extvar", "row 2");
    /* axis of the wrong length */
    p = sp_tmp_path("axislen.h5");
    f = create_file(p);
    double ax[4] = {1, 2, 3, 4};
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    put(f, "/axis", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, ax, 0);
    H5Fclose(f);
    expect_fail(p, &o, "/axis", "shape [3]");
}
END_TEST

static const char *make_nonfinite(void) {
    const char *p = sp_tmp_path("nan.h5");
    hid_t f = create_file(p);
    const int N = 10, L = 4;
    float x[40];
    int32_t lab[10], ev[10];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < L; j++) x[i * L + j] = (float)(10 * i + j);
        lab[i] = i % 2;
        ev[i] = i;
    }
    x[3 * L + 2] = NAN;
    x[4 * L + 0] = INFINITY;
    x[8 * L + 3] = -INFINITY;
    hsize_t d2[2] = {N, L}, d1[1] = {N};
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    put(f, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, lab, 0);
    put(f, "/extvar", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, ev, 0);
    H5Fclose(f);
    return p;
}

START_TEST(nonfinite_refuse_and_drop) {
    const char *p = make_nonfinite();
    SpDataOptions o;
    data_options_default(&o);
    for (int load = 0; load < 2; load++) {
        o.load = load ? SP_LOAD_STREAM : SP_LOAD_MEMORY;
        o.block_rows = 3;
        o.nonfinite = SP_NONFINITE_ERROR;
        expect_fail(p, &o, "/spectra", "row 3 contains NaN or Inf (3 of 10");
        o.nonfinite = SP_NONFINITE_DROP;
        SpDataset *ds = NULL;
        ck_assert_msg(dataset_open(&ds, p, &o) == SP_OK, "%s", sp_error_message());
        ck_assert_int_eq(ds->n, 7);
        ck_assert_int_eq(ds->n_dropped, 3);
        const int64_t keep[7] = {0, 1, 2, 5, 6, 7, 9};
        float rows[28];
        ck_assert(dataset_read_rows(ds, 0, 7, rows) == SP_OK);
        for (int i = 0; i < 7; i++) {
            ck_assert_int_eq(dataset_file_row(ds, i), keep[i]);
            ck_assert_int_eq(ds->extvar[i], keep[i]);
            ck_assert_int_eq(ds->labels[i], keep[i] % 2);
            for (int j = 0; j < 4; j++) ck_assert(rows[i * 4 + j] == (float)(10 * keep[i] + j));
        }
        /* a read across the gap */
        ck_assert(dataset_read_rows(ds, 2, 3, rows) == SP_OK);
        ck_assert(rows[0] == 20.0f && rows[4] == 50.0f && rows[8] == 60.0f);
        dataset_close(&ds);
    }
}
END_TEST

/* -------------------------------------------------------- normalisation */

static const char *make_norm_file(void) {
    /* 3 rows x 4 points, exact binary values */
    const char *p = sp_tmp_path("norm.h5");
    hid_t f = create_file(p);
    float x[12] = {1, 2, 4, 0.5f, -2, 0, 2, 6, 3, 3, 3, 3};
    hsize_t d2[2] = {3, 4};
    put(f, "/spectra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, x, 0);
    H5Fclose(f);
    return p;
}

START_TEST(norm_modes_exact) {
    const char *p = make_norm_file();
    for (int load = 0; load < 2; load++) {
        SpDataOptions o;
        data_options_default(&o);
        o.load = load ? SP_LOAD_STREAM : SP_LOAD_MEMORY;
        o.block_rows = 2;
        SpDataset *ds = NULL;
        ck_assert(dataset_open(&ds, p, &o) == SP_OK);
        float x[12];
        SpNorm nm;
        /* none */
        ck_assert(dataset_read_rows(ds, 0, 3, x) == SP_OK);
        ck_assert(norm_fit(&nm, SP_NORM_NONE, ds, NULL, 0) == SP_OK);
        norm_apply(&nm, x, 3, 4);
        ck_assert(x[0] == 1 && x[11] == 3);
        norm_free(&nm);
        /* max: x / max per row; row 1 max 6; row 2 constant 3 -> 1 */
        ck_assert(dataset_read_rows(ds, 0, 3, x) == SP_OK);
        ck_assert(norm_fit(&nm, SP_NORM_MAX, ds, NULL, 0) == SP_OK);
        norm_apply(&nm, x, 3, 4);
        const float wmax[12] = {0.25f, 0.5f, 1, 0.125f, (float)(-2.0 / 6), 0, (float)(2.0 / 6), 1, 1, 1, 1, 1};
        for (int i = 0; i < 12; i++) ck_assert_msg(x[i] == wmax[i], "max[%d] %g", i, (double)x[i]);
        norm_free(&nm);
        /* minmax per row to [0,1]; constant row -> 0 */
        ck_assert(dataset_read_rows(ds, 0, 3, x) == SP_OK);
        ck_assert(norm_fit(&nm, SP_NORM_MINMAX, ds, NULL, 0) == SP_OK);
        norm_apply(&nm, x, 3, 4);
        const float wmm[12] = {(float)(0.5 / 3.5), (float)(1.5 / 3.5), 1, 0, 0, 0.25f, 0.5f, 1, 0, 0, 0, 0};
        for (int i = 0; i < 12; i++) ck_assert_msg(x[i] == wmm[i], "minmax[%d] %g", i, (double)x[i]);
        norm_free(&nm);
        /* global minmax fitted on rows {0, 1}: min -2, max 6 -> 2(x+2)/8 - 1 */
        int64_t idx[2] = {0, 1};
        ck_assert(norm_fit(&nm, SP_NORM_GLOBAL_MINMAX, ds, idx, 2) == SP_OK);
        ck_assert(nm.gmin == -2 && nm.gmax == 6 && nm.count == 2);
        ck_assert(dataset_read_rows(ds, 0, 3, x) == SP_OK);
        norm_apply(&nm, x, 3, 4);
        for (int i = 0; i < 12; i++) {
            float raw[12] = {1, 2, 4, 0.5f, -2, 0, 2, 6, 3, 3, 3, 3};
            float want = (float)((raw[i] + 2.0) / 4.0 - 1.0);
            ck_assert_msg(x[i] == want, "gminmax[%d] %g != %g", i, (double)x[i], (double)want);
        }
        ck_assert(x[4] == -1.0f && x[7] == 1.0f && x[0] == -0.25f);
        norm_free(&nm);
        /* standardise on all rows: column 0 = {1,-2,3}: mean 2/3, column 3 = {0.5,6,3} */
        ck_assert(norm_fit(&nm, SP_NORM_STANDARDISE, ds, NULL, 0) == SP_OK);
        double m0 = 2.0 / 3, v0 = ((1 - m0) * (1 - m0) + (-2 - m0) * (-2 - m0) + (3 - m0) * (3 - m0)) / 3;
        ck_assert(fabs(nm.mean[0] - m0) < 1e-15 && fabs(nm.std[0] - sqrt(v0)) < 1e-15);
        ck_assert(fabs(nm.mean[3] - 9.5 / 3) < 1e-15);
        ck_assert(dataset_read_rows(ds, 0, 3, x) == SP_OK);
        norm_apply(&nm, x, 3, 4);
        ck_assert(fabs(x[0] - (1 - m0) / sqrt(v0)) < 1e-6);
        /* column means of the standardised data are ~0 */
        for (int j = 0; j < 4; j++) ck_assert(fabs(x[j] + x[4 + j] + x[8 + j]) < 1e-6);
        norm_free(&nm);
        dataset_close(&ds);
    }
    SpNormKind k;
    ck_assert(norm_parse("global_minmax", &k) == SP_OK && k == SP_NORM_GLOBAL_MINMAX);
    ck_assert(norm_parse("zscore", &k) == SP_ECONFIG);
    ck_assert(strstr(sp_error_message(), "zscore") != NULL);
}
END_TEST

START_TEST(norm_save_load) {
    const char *p = make_norm_file();
    SpDataset *ds = NULL;
    ck_assert(dataset_open(&ds, p, NULL) == SP_OK);
    const char *ck = sp_tmp_path("ckpt_norm.h5");
    SpH5Writer w;
    SpNorm a, b;
    ck_assert(sp_h5_create_atomic(&w, ck) == SP_OK);
    ck_assert(norm_fit(&a, SP_NORM_STANDARDISE, ds, NULL, 0) == SP_OK);
    ck_assert(norm_save(&a, w.f, "/norm") == SP_OK);
    SpNorm g;
    ck_assert(norm_fit(&g, SP_NORM_GLOBAL_MINMAX, ds, NULL, 0) == SP_OK);
    ck_assert(norm_save(&g, w.f, "/data/norm2") == SP_OK);
    ck_assert(sp_h5_commit(&w) == SP_OK);
    hid_t f;
    ck_assert(sp_h5_open_read(ck, &f) == SP_OK);
    ck_assert(norm_load(&b, f, ck, "/norm") == SP_OK);
    ck_assert_int_eq(b.kind, SP_NORM_STANDARDISE);
    ck_assert_int_eq(b.L, 4);
    ck_assert_int_eq(b.count, 3);
    for (int j = 0; j < 4; j++) ck_assert(a.mean[j] == b.mean[j] && a.std[j] == b.std[j]);
    norm_free(&b);
    ck_assert(norm_load(&b, f, ck, "/data/norm2") == SP_OK);
    ck_assert(b.kind == SP_NORM_GLOBAL_MINMAX && b.gmin == -2 && b.gmax == 6);
    norm_free(&b);
    ck_assert(norm_load(&b, f, ck, "/nope") == SP_EINPUT);
    ck_assert(strstr(sp_error_message(), ck) && strstr(sp_error_message(), "/nope"));
    H5Fclose(f);
    norm_free(&a);
    norm_free(&g);
    dataset_close(&ds);
}
END_TEST

/* ---------------------------------------------------------------- splits */

START_TEST(split_stratified) {
    /* 3 classes with 20, 12, 3 rows + 5 unlabelled */
    const int n = 40;
    int32_t lab[40];
    for (int i = 0; i < n; i++) lab[i] = i < 35 ? (i % 7 < 4 ? 0 : i % 7 < 6 ? 1 : 2) : -1;
    int cnt[3] = {0, 0, 0};
    for (int i = 0; i < n; i++)
        if (lab[i] >= 0) cnt[lab[i]]++;
    ck_assert(cnt[0] == 20 && cnt[1] == 10 && cnt[2] == 5);
    SpSplitSpec spec = {.per_class = 3, .val_per_class = 2, .seed = 7};
    SpSplit a, b, c;
    ck_assert(split_make(&a, lab, n, 3, &spec) == SP_OK);
    ck_assert_int_eq(a.n_train, 9);
    ck_assert_int_eq(a.n_val, 6);
    ck_assert_int_eq(a.n_short, 0);
    int tc[3] = {0}, vc[3] = {0};
    char used[40] = {0};
    for (int64_t i = 0; i < a.n_train; i++) {
        ck_assert(lab[a.train[i]] >= 0);
        tc[lab[a.train[i]]]++;
        ck_assert(!used[a.train[i]]);
        used[a.train[i]] = 1;
        if (i) ck_assert(a.train[i] > a.train[i - 1]);
    }
    for (int64_t i = 0; i < a.n_val; i++) {
        vc[lab[a.val[i]]]++;
        ck_assert_msg(!used[a.val[i]], "val row %lld also in train", (long long)a.val[i]);
        used[a.val[i]] = 1;
    }
    for (int k = 0; k < 3; k++) ck_assert(tc[k] == 3 && vc[k] == 2);
    /* deterministic by seed; a different seed differs */
    ck_assert(split_make(&b, lab, n, 3, &spec) == SP_OK);
    ck_assert(b.n_train == a.n_train && !memcmp(a.train, b.train, (size_t)a.n_train * 8));
    ck_assert(!memcmp(a.val, b.val, (size_t)a.n_val * 8));
    split_free(&b);
    spec.seed = 8;
    ck_assert(split_make(&b, lab, n, 3, &spec) == SP_OK);
    ck_assert(memcmp(a.train, b.train, (size_t)a.n_train * 8) != 0);
    split_free(&b);
    /* nested: k = 1 with the same seed is a subset of k = 3; validation unchanged */
    spec.seed = 7;
    spec.per_class = 1;
    ck_assert(split_make(&c, lab, n, 3, &spec) == SP_OK);
    ck_assert(c.n_val == a.n_val && !memcmp(c.val, a.val, (size_t)a.n_val * 8));
    for (int64_t i = 0; i < c.n_train; i++) {
        int found = 0;
        for (int64_t j = 0; j < a.n_train; j++) found |= a.train[j] == c.train[i];
        ck_assert(found);
    }
    split_free(&c);
    /* short class: class 2 has 5 rows, ask 5 + 2 -> 5 + 0, counted */
    split_free(&a);
    spec.per_class = 5;
    ck_assert(split_make(&a, lab, n, 3, &spec) == SP_OK);
    ck_assert_int_eq(a.n_short, 1);
    ck_assert_int_eq(a.n_train, 15);
    ck_assert_int_eq(a.n_val, 4);
    split_free(&a);
    /* fraction */
    SpSplitSpec fs = {.fraction = 0.1, .val_fraction = 0.2, .seed = 1};
    ck_assert(split_make(&a, lab, n, 3, &fs) == SP_OK);
    ck_assert_int_eq(a.n_train, 2 + 1 + 1); /* round(2), round(1), max(1, round(0.5)) */
    ck_assert_int_eq(a.n_val, 4 + 2 + 1);
    /* save/load */
    const char *p = sp_tmp_path("split.h5");
    SpH5Writer w;
    ck_assert(sp_h5_create_atomic(&w, p) == SP_OK);
    ck_assert(split_save(&a, w.f, "/split/s1") == SP_OK);
    ck_assert(sp_h5_commit(&w) == SP_OK);
    hid_t f;
    ck_assert(sp_h5_open_read(p, &f) == SP_OK);
    ck_assert(split_load(&b, f, p, "/split/s1") == SP_OK);
    ck_assert(b.n_train == a.n_train && b.n_val == a.n_val);
    ck_assert(!memcmp(a.train, b.train, (size_t)a.n_train * 8));
    ck_assert(!memcmp(a.val, b.val, (size_t)a.n_val * 8));
    ck_assert(b.spec.seed == 1 && b.spec.fraction == 0.1 && b.spec.val_fraction == 0.2);
    ck_assert_int_eq(b.n_classes, 3);
    split_free(&b);
    ck_assert(split_load(&b, f, p, "/split/zz") == SP_EINPUT);
    H5Fclose(f);
    split_free(&a);
    /* bad spec */
    SpSplitSpec bad = {0};
    ck_assert(split_make(&a, lab, n, 3, &bad) == SP_EINPUT);
}
END_TEST

/* ---------------------------------------------------------------- loader */

static void check_epoch(SpLoader *l, int64_t epoch, int N, int L, int B, int64_t *order,
                        const int64_t *subset, int nsub) {
    ck_assert(loader_start_epoch(l, epoch) == SP_OK);
    int seen[200] = {0};
    int64_t k = 0, nb = 0;
    SpBatch b;
    for (;;) {
        ck_assert(loader_next(l, &b) == SP_OK);
        if (b.n == 0) break;
        nb++;
        ck_assert(b.n == B || k + b.n == nsub);
        for (int i = 0; i < b.n; i++) {
            int64_t v = b.index[i];
            ck_assert(v >= 0 && v < N);
            ck_assert_msg(!seen[v], "row %lld twice in epoch", (long long)v);
            seen[v] = 1;
            /* row content and labels travel with the index */
            ck_assert(b.x[(size_t)i * L] == (float)(v * L));
            ck_assert(b.x[(size_t)i * L + L - 1] == (float)(v * L + L - 1));
            ck_assert_int_eq(b.labels[i], (int)(v % 3));
            order[k++] = v;
        }
    }
    ck_assert_int_eq(k, nsub);
    ck_assert_int_eq(nb, loader_num_batches(l));
    for (int i = 0; i < nsub; i++) ck_assert_msg(seen[subset ? subset[i] : i], "row missing");
}

START_TEST(loader_epochs) {
    const int N = 103, L = 5, B = 10;
    const char *p = make_simple("loader.h5", N, L, 1);
    int64_t sub[40];
    for (int i = 0; i < 40; i++) sub[i] = (i * 37) % N; /* distinct since gcd(37,103)=1 */
    for (int load = 0; load < 2; load++) {
        SpDataOptions o;
        data_options_default(&o);
        o.load = load ? SP_LOAD_STREAM : SP_LOAD_MEMORY;
        o.block_rows = 4;
        o.shuffle_window = 3;
        SpDataset *ds = NULL;
        ck_assert(dataset_open(&ds, p, &o) == SP_OK);
        ck_assert_int_eq(ds->in_memory, !load);
        for (int s = 0; s < 2; s++) {
            const int64_t *idx = s ? sub : NULL;
            int nsub = s ? 40 : N;
            SpLoader *l = NULL, *l2 = NULL;
            ck_assert(loader_create(&l, ds, idx, nsub, B, 1, 0, 42, NULL) == SP_OK);
            ck_assert(loader_create(&l2, ds, idx, nsub, B, 1, 0, 42, NULL) == SP_OK);
            int64_t o0[200], o1[200], o2[200], o3[200];
            check_epoch(l, 0, N, L, B, o0, idx, nsub);
            check_epoch(l, 1, N, L, B, o1, idx, nsub);
            ck_assert_msg(memcmp(o0, o1, (size_t)nsub * 8) != 0, "same permutation in two epochs");
            /* same seed -> same order, regardless of the epochs visited before */
            check_epoch(l2, 1, N, L, B, o2, idx, nsub);
            ck_assert(!memcmp(o1, o2, (size_t)nsub * 8));
            check_epoch(l2, 0, N, L, B, o3, idx, nsub);
            ck_assert(!memcmp(o0, o3, (size_t)nsub * 8));
            /* the order is a real shuffle, not the identity */
            int inorder = 1;
            for (int i = 1; i < nsub; i++) inorder &= o0[i] > o0[i - 1];
            ck_assert(!inorder);
            loader_free(&l);
            loader_free(&l2);
            ck_assert(l == NULL);
            /* a different seed differs */
            ck_assert(loader_create(&l, ds, idx, nsub, B, 1, 0, 43, NULL) == SP_OK);
            check_epoch(l, 0, N, L, B, o1, idx, nsub);
            ck_assert(memcmp(o0, o1, (size_t)nsub * 8) != 0);
            loader_free(&l);
            /* sequential reader: in order */
            ck_assert(loader_create(&l, ds, idx, nsub, B, 0, 0, 0, NULL) == SP_OK);
            check_epoch(l, 0, N, L, B, o1, idx, nsub);
            for (int i = 1; i < nsub; i++) ck_assert(o1[i] > o1[i - 1]);
            loader_free(&l);
        }
        /* drop_last */
        SpLoader *l = NULL;
        ck_assert(loader_create(&l, ds, NULL, 0, B, 1, 1, 5, NULL) == SP_OK);
        ck_assert_int_eq(loader_num_batches(l), 10);
        ck_assert_int_eq(loader_num_rows(l), 100);
        ck_assert(loader_start_epoch(l, 3) == SP_OK);
        SpBatch b;
        int nb = 0;
        for (;;) {
            ck_assert(loader_next(l, &b) == SP_OK);
            if (!b.n) break;
            ck_assert_int_eq(b.n, B);
            nb++;
        }
        ck_assert_int_eq(nb, 10);
        loader_free(&l);
        ck_assert(loader_create(&l, ds, NULL, 0, 200, 1, 1, 5, NULL) == SP_EINPUT);
        dataset_close(&ds);
    }
}
END_TEST

START_TEST(loader_stream_equals_memory) {
    /* streaming with a tiny block size yields the same multiset as in memory,
     * and the rows it reads are the stored ones (normalised the same way) */
    const int N = 57, L = 6;
    const char *p = make_simple("stream.h5", N, L, 1);
    SpDataset *dm = NULL, *dst = NULL;
    SpDataOptions o;
    data_options_default(&o);
    o.load = SP_LOAD_MEMORY;
    ck_assert(dataset_open(&dm, p, &o) == SP_OK);
    o.load = SP_LOAD_STREAM;
    o.block_rows = 2;
    o.shuffle_window = 2;
    ck_assert(dataset_open(&dst, p, &o) == SP_OK);
    SpNorm nm, ns;
    ck_assert(norm_fit(&nm, SP_NORM_GLOBAL_MINMAX, dm, NULL, 0) == SP_OK);
    ck_assert(norm_fit(&ns, SP_NORM_GLOBAL_MINMAX, dst, NULL, 0) == SP_OK);
    ck_assert(nm.gmin == ns.gmin && nm.gmax == ns.gmax);
    ck_assert(nm.gmin == 0 && nm.gmax == N * L - 1);
    SpLoader *lm = NULL, *ls = NULL;
    ck_assert(loader_create(&lm, dm, NULL, 0, 8, 1, 0, 9, &nm) == SP_OK);
    ck_assert(loader_create(&ls, dst, NULL, 0, 8, 1, 0, 9, &ns) == SP_OK);
    float *rm = calloc((size_t)N * L, sizeof(float)), *rs = calloc((size_t)N * L, sizeof(float));
    for (int e = 0; e < 2; e++) {
        SpBatch b;
        SpLoader *ls_or_lm[2] = {lm, ls};
        float *dstbuf[2] = {rm, rs};
        for (int which = 0; which < 2; which++) {
            SpLoader *l = ls_or_lm[which];
            ck_assert(loader_start_epoch(l, e) == SP_OK);
            int total = 0;
            for (;;) {
                ck_assert(loader_next(l, &b) == SP_OK);
                if (!b.n) break;
                for (int i = 0; i < b.n; i++)
                    memcpy(dstbuf[which] + b.index[i] * L, b.x + (size_t)i * L, L * sizeof(float));
                total += b.n;
            }
            ck_assert_int_eq(total, N);
        }
        ck_assert(!memcmp(rm, rs, (size_t)N * L * sizeof(float)));
        ck_assert(rm[0] == -1.0f && rm[N * L - 1] == 1.0f);
    }
    free(rm);
    free(rs);
    loader_free(&lm);
    loader_free(&ls);
    norm_free(&nm);
    norm_free(&ns);
    dataset_close(&dm);
    dataset_close(&dst);
}
END_TEST

/* --------------------------------------------------------------- writers */

START_TEST(writers_round_trip) {
    const int N = 37, L = 11, D = 4, C = 3;
    float *x = malloc((size_t)N * L * sizeof(float));
    int32_t lab[37], ev[37], pred[37];
    double ax[11];
    for (int i = 0; i < N * L; i++) x[i] = 0.5f * (float)i - 3.0f;
    for (int i = 0; i < N; i++) {
        lab[i] = i % 3;
        ev[i] = i % 5;
        pred[i] = (i + 1) % 3;
    }
    for (int j = 0; j < L; j++) ax[j] = 4.0 + 0.125 * j;
    const char *names[3] = {"A", "B (rB1)", "C"};
    SpDatasetOut d = {x, N, L, lab, ev, ax, names, 3, "test writer"};
    const char *p = sp_tmp_path("written.h5");
    ck_assert_msg(dataset_write(p, &d) == SP_OK, "%s", sp_error_message());
    ck_assert(access(sp_tmp_path("written.h5.tmp"), F_OK) != 0);
    SpDataset *ds = NULL;
    ck_assert(dataset_open(&ds, p, NULL) == SP_OK);
    ck_assert(ds->n == N && ds->L == L);
    ck_assert(!memcmp(ds->x, x, (size_t)N * L * sizeof(float)));
    ck_assert(!memcmp(ds->labels, lab, sizeof lab));
    ck_assert(!memcmp(ds->extvar, ev, sizeof ev));
    ck_assert(!memcmp(ds->axis, ax, sizeof ax));
    ck_assert_int_eq(ds->n_class_names, 3);
    ck_assert_str_eq(ds->class_names[1], "B (rB1)");
    ck_assert_str_eq(ds->generator, "test writer");
    dataset_close(&ds);
    /* chunked + compressed */
    hid_t f;
    ck_assert(sp_h5_open_read(p, &f) == SP_OK);
    hid_t dd = H5Dopen2(f, "/spectra", H5P_DEFAULT);
    hid_t pl = H5Dget_create_plist(dd);
    ck_assert(H5Pget_layout(pl) == H5D_CHUNKED);
    int nf = H5Pget_nfilters(pl);
    ck_assert_int_ge(nf, 2);
    H5Pclose(pl);
    H5Dclose(dd);
    H5Fclose(f);

    /* embeddings, streamed in pieces */
    float emb[37 * 4];
    for (int i = 0; i < N * D; i++) emb[i] = (float)i * 0.25f;
    SpRowWriter w;
    const char *pe = sp_tmp_path("emb.h5");
    ck_assert(embed_writer_open(&w, pe, D, 1) == SP_OK);
    ck_assert(embed_writer_append(&w, emb, 20, lab) == SP_OK);
    ck_assert(access(pe, F_OK) != 0); /* nothing under the final name yet */
    ck_assert(embed_writer_append(&w, emb + 20 * D, 17, lab + 20) == SP_OK);
    ck_assert(row_writer_commit(&w) == SP_OK);
    ck_assert(sp_h5_open_read(pe, &f) == SP_OK);
    SpH5Info info;
    ck_assert(sp_h5_info(f, pe, "/embeddings", &info) == SP_OK);
    ck_assert(info.rank == 2 && info.dims[0] == (hsize_t)N && info.dims[1] == (hsize_t)D);
    float eback[37 * 4];
    int32_t lback[37];
    ck_assert(sp_h5_read_float(f, pe, "/embeddings", eback, (size_t)N * D) == SP_OK);
    ck_assert(!memcmp(eback, emb, sizeof emb));
    ck_assert(sp_h5_read_int32(f, pe, "/labels", lback, N) == SP_OK);
    ck_assert(!memcmp(lback, lab, sizeof lab));
    H5Fclose(f);

    /* predictions */
    float prob[37 * 3];
    for (int i = 0; i < N * C; i++) prob[i] = (float)(i % 4) * 0.25f;
    const char *pp = sp_tmp_path("pred.h5");
    ck_assert(pred_writer_open(&w, pp, C, 0) == SP_OK);
    ck_assert(pred_writer_append(&w, pred, prob, N, NULL) == SP_OK);
    ck_assert(row_writer_commit(&w) == SP_OK);
    ck_assert(sp_h5_open_read(pp, &f) == SP_OK);
    ck_assert(sp_h5_info(f, pp, "/probabilities", &info) == SP_OK);
    ck_assert(info.dims[0] == (hsize_t)N && info.dims[1] == (hsize_t)C);
    ck_assert(sp_h5_info(f, pp, "/predictions", &info) == SP_OK);
    ck_assert(info.rank == 1 && info.dims[0] == (hsize_t)N && info.cls == H5T_INTEGER);
    ck_assert(sp_h5_read_int32(f, pp, "/predictions", lback, N) == SP_OK);
    ck_assert(!memcmp(lback, pred, sizeof pred));
    float pback[37 * 3];
    ck_assert(sp_h5_read_float(f, pp, "/probabilities", pback, (size_t)N * C) == SP_OK);
    ck_assert(!memcmp(pback, prob, sizeof prob));
    ck_assert(!sp_h5_exists(f, "/labels"));
    H5Fclose(f);

    /* abort leaves nothing behind */
    const char *pa = sp_tmp_path("aborted.h5");
    ck_assert(embed_writer_open(&w, pa, D, 0) == SP_OK);
    ck_assert(embed_writer_append(&w, emb, 3, NULL) == SP_OK);
    row_writer_abort(&w);
    ck_assert(access(pa, F_OK) != 0);
    ck_assert(access(sp_tmp_path("aborted.h5.tmp"), F_OK) != 0);
    free(x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("data");
    TCase *io = tcase_create("io");
    tcase_add_test(io, read_dtypes);
    tcase_add_test(io, nexus_path_and_optional_datasets);
    tcase_add_test(io, nexus_via_config);
    tcase_add_test(io, auto_memory_threshold);
    tcase_add_test(io, writers_round_trip);
    suite_add_tcase(s, io);
    TCase *er = tcase_create("errors");
    tcase_add_test(er, bad_files);
    tcase_add_test(er, bad_shapes_and_types);
    tcase_add_test(er, bad_labels_and_extvar);
    tcase_add_test(er, nonfinite_refuse_and_drop);
    suite_add_tcase(s, er);
    TCase *nm = tcase_create("normalise");
    tcase_add_test(nm, norm_modes_exact);
    tcase_add_test(nm, norm_save_load);
    suite_add_tcase(s, nm);
    TCase *sp = tcase_create("split");
    tcase_add_test(sp, split_stratified);
    suite_add_tcase(s, sp);
    TCase *ld = tcase_create("loader");
    tcase_add_test(ld, loader_epochs);
    tcase_add_test(ld, loader_stream_equals_memory);
    suite_add_tcase(s, ld);
    sp_tmpdir(); /* created once here, shared by the forked tests, removed below */
    int rc = sp_run_suite(s);
    sp_tmpdir_cleanup();
    return rc;
}
