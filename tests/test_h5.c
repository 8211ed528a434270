/* test_h5: the shared HDF5 helpers (core/sp_h5.h): atomic writer, reads with
 * dtype conversion, error messages for missing datasets/groups/attributes,
 * bad files, chunking limits and attributes. */
#define _XOPEN_SOURCE 700
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_h5.h"
#include "sp_test.h"

/* ------------------------------------------------------------------ io */

START_TEST(atomic_writer_commit_and_abort) {
    const char *p = sp_tmp_path("a.h5");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    SpH5Writer w;
    ck_assert_int_eq(sp_h5_create_atomic(&w, p), SP_OK);
    ck_assert(sp_file_exists(tmp));
    ck_assert(!sp_file_exists(p)); /* nothing under the final name while writing */
    const float v[3] = {0.5f, -1.25f, 3.0f};
    hsize_t d = 3;
    ck_assert_int_eq(sp_h5_write_float(w.f, "x", 1, &d, v, 0), SP_OK);
    ck_assert_int_eq(sp_h5_commit(&w), SP_OK);
    ck_assert(sp_file_exists(p));
    ck_assert(!sp_file_exists(tmp));
    /* an aborted rewrite leaves the committed file untouched and no .tmp */
    ck_assert_int_eq(sp_h5_create_atomic(&w, p), SP_OK);
    const float z[3] = {9, 9, 9};
    ck_assert_int_eq(sp_h5_write_float(w.f, "x", 1, &d, z, 0), SP_OK);
    sp_h5_abort(&w);
    ck_assert(!sp_file_exists(tmp));
    hid_t f;
    ck_assert_int_eq(sp_h5_open_read(p, &f), SP_OK);
    float r[3];
    ck_assert_int_eq(sp_h5_read_float(f, p, "x", r, 3), SP_OK);
    ck_assert(memcmp(r, v, sizeof v) == 0);
    /* 1.10 object format: superblock version 3 (metadata checksums) */
    H5F_info2_t fi;
    ck_assert(H5Fget_info2(f, &fi) >= 0);
    ck_assert_uint_ge(fi.super.version, 3);
    sp_h5_close(f);
    /* a folder that does not exist */
    ck_assert_int_eq(sp_h5_create_atomic(&w, sp_tmp_path("nope/b.h5")), SP_EIO);
    sp_expect_error_msg("nope/b.h5");
}
END_TEST

/* int16 and float64 on disk, read as float / double / int32 / int64. */
START_TEST(read_with_dtype_conversion) {
    const char *p = sp_tmp_path("conv.h5");
    SpH5Writer w;
    ck_assert_int_eq(sp_h5_create_atomic(&w, p), SP_OK);
    const short i16[6] = {-3, 0, 7, 32767, -32768, 12};
    hsize_t d2[2] = {2, 3};
    hid_t sp = H5Screate_simple(2, d2, NULL);
    hid_t ds = H5Dcreate2(w.f, "i16", H5T_STD_I16BE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(ds >= 0);
    ck_assert(H5Dwrite(ds, H5T_NATIVE_SHORT, H5S_ALL, H5S_ALL, H5P_DEFAULT, i16) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
    const double f64[4] = {0.5, -2.25, 1e-3, 1024.0};
    hsize_t d1 = 4;
    ck_assert_int_eq(sp_h5_write_double(w.f, "/g/f64", 1, &d1, f64, 1), SP_OK);
    ck_assert_int_eq(sp_h5_commit(&w), SP_OK);

    hid_t f;
    ck_assert_int_eq(sp_h5_open_read(p, &f), SP_OK);
    float got[6];
    ck_assert_int_eq(sp_h5_read_float(f, p, "i16", got, 6), SP_OK);
    for (int i = 0; i < 6; i++) ck_assert_msg(got[i] == (float)i16[i], "i16[%d] -> %g", i, got[i]);
    int32_t gi[6];
    ck_assert_int_eq(sp_h5_read_int32(f, p, "i16", gi, 6), SP_OK);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(gi[i], i16[i]);
    float gf[4];
    ck_assert_int_eq(sp_h5_read_float(f, p, "/g/f64", gf, 4), SP_OK);
    for (int i = 0; i < 4; i++) ck_assert(gf[i] == (float)f64[i]);
    double gd[4];
    ck_assert_int_eq(sp_h5_read_double(f, p, "g/f64", gd, 4), SP_OK);
    ck_assert(memcmp(gd, f64, sizeof gd) == 0);
    int64_t g64[6];
    ck_assert_int_eq(sp_h5_read_int64(f, p, "i16", g64, 6), SP_OK);
    ck_assert(g64[3] == 32767 && g64[4] == -32768);
    SpH5Info info;
    ck_assert_int_eq(sp_h5_info(f, p, "i16", &info), SP_OK);
    ck_assert_int_eq(info.rank, 2);
    ck_assert(info.dims[0] == 2 && info.dims[1] == 3);
    ck_assert(info.cls == H5T_INTEGER && info.type_size == 2 && info.is_signed);
    /* wrong element count: names the dataset and both sizes */
    ck_assert_int_eq(sp_h5_read_float(f, p, "i16", got, 5), SP_EINPUT);
    sp_expect_error_msg("'i16'");
    sp_expect_error_msg("6 elements, expected 5");
    sp_h5_close(f);
}
END_TEST

START_TEST(missing_dataset_and_intermediate_group) {
    const char *p = sp_tmp_path("m.h5");
    SpH5Writer w;
    ck_assert_int_eq(sp_h5_create_atomic(&w, p), SP_OK);
    const float v = 1.0f;
    ck_assert_int_eq(sp_h5_write_float(w.f, "/a/b/x", 0, NULL, &v, 0), SP_OK);   /* scalar */
    ck_assert_int_eq(sp_h5_ensure_group(w.f, "/q/r/s"), SP_OK);
    ck_assert_int_eq(sp_h5_ensure_group(w.f, "/q/r/s"), SP_OK);   /* idempotent */
    ck_assert_int_eq(sp_h5_commit(&w), SP_OK);
    hid_t f;
    ck_assert_int_eq(sp_h5_open_read(p, &f), SP_OK);
    ck_assert(sp_h5_exists(f, "/a/b/x"));
    ck_assert(sp_h5_exists(f, "/q/r/s"));
    ck_assert(sp_h5_exists(f, "/"));
    ck_assert(!sp_h5_exists(f, "/a/b/y"));
    ck_assert(!sp_h5_exists(f, "/nope/deeper/x"));   /* missing intermediate group */
    ck_assert(!sp_h5_exists(f, "/a/b/x/under_a_dataset"));
    float r = 0;
    ck_assert_int_eq(sp_h5_read_float(f, p, "/a/b/x", &r, 1), SP_OK);
    ck_assert(r == 1.0f);
    ck_assert_int_eq(sp_h5_read_float(f, p, "/nope/deeper/x", &r, 1), SP_EINPUT);
    sp_expect_error_msg(p);
    sp_expect_error_msg("'/nope/deeper/x' not found");
    SpH5Info info;
    ck_assert_int_eq(sp_h5_info(f, p, "/spectra", &info), SP_EINPUT);
    sp_expect_error_msg("'/spectra' not found");
    ck_assert_int_eq(sp_h5_info(f, p, "/q/r", &info), SP_EINPUT);   /* a group, not a dataset */
    sp_expect_error_msg("'/q/r'");
    ck_assert_int_eq(sp_h5_info(f, p, "/a/b/x", &info), SP_OK);
    ck_assert_int_eq(info.rank, 0);
    sp_h5_close(f);
}
END_TEST

START_TEST(attributes) {
    const char *p = sp_tmp_path("attr.h5");
    SpH5Writer w;
    ck_assert_int_eq(sp_h5_create_atomic(&w, p), SP_OK);
    ck_assert_int_eq(sp_h5_attr_write_str(w.f, "/", "name", "spectra \xc3\xa9t\xc3\xa9"), SP_OK);
    ck_assert_int_eq(sp_h5_attr_write_str(w.f, "/", "name", "replaced"), SP_OK);  /* overwrite */
    ck_assert_int_eq(sp_h5_attr_write_int64(w.f, "/", "epoch", -(1LL << 40)), SP_OK);
    ck_assert_int_eq(sp_h5_attr_write_double(w.f, "/", "lr", 0.15), SP_OK);
    hsize_t d = 2;
    const float v[2] = {1, 2};
    ck_assert_int_eq(sp_h5_write_float(w.f, "grp/x", 1, &d, v, 0), SP_OK);
    ck_assert_int_eq(sp_h5_attr_write_str(w.f, "grp/x", "kind", "buffer"), SP_OK);
    /* an array attribute and a fixed-length ASCII string, written directly */
    hsize_t three = 3;
    hid_t sp = H5Screate_simple(1, &three, NULL);
    const long long arr[3] = {1, 2, 3};
    hid_t a = H5Acreate2(w.f, "arr", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Awrite(a, H5T_NATIVE_LLONG, arr) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    hid_t ft = H5Tcopy(H5T_C_S1);
    H5Tset_size(ft, 8);
    hid_t ss = H5Screate(H5S_SCALAR);
    a = H5Acreate2(w.f, "fixed", ft, ss, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Awrite(a, ft, "abcdefgh") >= 0);
    H5Aclose(a);
    H5Sclose(ss);
    H5Tclose(ft);
    ck_assert_int_eq(sp_h5_commit(&w), SP_OK);

    hid_t f;
    ck_assert_int_eq(sp_h5_open_read(p, &f), SP_OK);
    char *s = NULL;
    ck_assert_int_eq(sp_h5_attr_read_str(f, p, "/", "name", &s), SP_OK);
    ck_assert_str_eq(s, "replaced");
    free(s);
    ck_assert_int_eq(sp_h5_attr_read_str(f, p, "/", "fixed", &s), SP_OK);
    ck_assert_str_eq(s, "abcdefgh");
    free(s);
    ck_assert_int_eq(sp_h5_attr_read_str(f, p, "/grp/x", "kind", &s), SP_OK);
    ck_assert_str_eq(s, "buffer");
    free(s);
    int64_t e = 0;
    ck_assert_int_eq(sp_h5_attr_read_int64(f, p, "/", "epoch", &e), SP_OK);
    ck_assert(e == -(1LL << 40));
    double lr = 0;
    ck_assert_int_eq(sp_h5_attr_read_double(f, p, "/", "lr", &lr), SP_OK);
    ck_assert(lr == 0.15);
    ck_assert(sp_h5_attr_exists(f, "/", "lr"));
    ck_assert(!sp_h5_attr_exists(f, "/", "nope"));
    ck_assert(!sp_h5_attr_exists(f, "/missing/group", "nope"));
    /* errors */
    ck_assert_int_eq(sp_h5_attr_read_int64(f, p, "/", "nope", &e), SP_EINPUT);
    sp_expect_error_msg(p);
    sp_expect_error_msg("'nope'");
    ck_assert_int_eq(sp_h5_attr_read_str(f, p, "/", "epoch", &s), SP_EINPUT);
    ck_assert_ptr_null(s);
    sp_expect_error_msg("not a string");
    ck_assert_int_eq(sp_h5_attr_read_int64(f, p, "/", "name", &e), SP_EINPUT);
    sp_expect_error_msg("not numeric");
    /* an array attribute is refused, not read past the end of one value */
    int64_t guard[2] = {77, 77};
    ck_assert_int_eq(sp_h5_attr_read_int64(f, p, "/", "arr", &guard[0]), SP_EINPUT);
    sp_expect_error_msg("3 values");
    ck_assert(guard[1] == 77);
    sp_h5_close(f);
}
END_TEST

START_TEST(chunking_compression_and_checksums) {
    const char *p = sp_tmp_path("chunk.h5");
    SpH5Writer w;
    ck_assert_int_eq(sp_h5_create_atomic(&w, p), SP_OK);
    const size_t N = 700, L = 1000;
    float *x = malloc(N * L * sizeof *x);
    for (size_t i = 0; i < N * L; i++) x[i] = (float)(i % 977) * 0.5f;
    hsize_t d[2] = {N, L};
    ck_assert_int_eq(sp_h5_write_float(w.f, "big", 2, d, x, 1), SP_OK);
    ck_assert_int_eq(sp_h5_write_float(w.f, "sum", 2, d, x, SP_H5_CHECKSUM), SP_OK);
    hsize_t zero[2] = {0, 5};
    ck_assert_int_eq(sp_h5_write_float(w.f, "empty", 2, zero, x, 1), SP_OK);
    ck_assert_int_eq(sp_h5_commit(&w), SP_OK);
    hid_t f;
    ck_assert_int_eq(sp_h5_open_read(p, &f), SP_OK);
    const char *names[2] = {"big", "sum"};
    for (int k = 0; k < 2; k++) {
        hid_t ds = H5Dopen2(f, names[k], H5P_DEFAULT);
        hid_t dcpl = H5Dget_create_plist(ds);
        ck_assert(H5Pget_layout(dcpl) == H5D_CHUNKED);
        hsize_t c[2];
        ck_assert_int_eq(H5Pget_chunk(dcpl, 2, c), 2);
        ck_assert_msg(c[0] * c[1] * 4 <= (1u << 20), "chunk %llux%llu exceeds 1 MiB",
                      (unsigned long long)c[0], (unsigned long long)c[1]);
        int nf = H5Pget_nfilters(dcpl);
        int has_fletcher = 0, has_deflate = 0;
        for (int i = 0; i < nf; i++) {
            unsigned flags;
            size_t ne = 0;
            H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ne, NULL, 0, NULL, NULL);
            has_fletcher |= id == H5Z_FILTER_FLETCHER32;
            has_deflate |= id == H5Z_FILTER_DEFLATE;
        }
        if (k == 1) ck_assert(has_fletcher && !has_deflate);
        if (k == 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) ck_assert(has_deflate);
        H5Pclose(dcpl);
        H5Dclose(ds);
        float *y = malloc(N * L * sizeof *y);
        ck_assert_int_eq(sp_h5_read_float(f, p, names[k], y, N * L), SP_OK);
        ck_assert(memcmp(x, y, N * L * sizeof *x) == 0);
        free(y);
    }
    SpH5Info info;
    ck_assert_int_eq(sp_h5_info(f, p, "empty", &info), SP_OK);
    ck_assert(info.dims[0] == 0 && info.dims[1] == 5);
    sp_h5_close(f);
    free(x);
}
END_TEST

START_TEST(streaming_rows) {
    const char *p = sp_tmp_path("rows.h5");
    SpH5Writer w;
    ck_assert_int_eq(sp_h5_create_atomic(&w, p), SP_OK);
    hid_t ds;
    ck_assert_int_eq(sp_h5_create_rows_float(w.f, "/out/emb", 4, &ds), SP_OK);
    float a[12], b[8];
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    for (int i = 0; i < 8; i++) b[i] = 100.0f + (float)i;
    ck_assert_int_eq(sp_h5_append_rows_float(ds, 0, 3, 4, a), SP_OK);
    ck_assert_int_eq(sp_h5_append_rows_float(ds, 3, 2, 4, b), SP_OK);
    H5Dclose(ds);
    ck_assert_int_eq(sp_h5_commit(&w), SP_OK);
    hid_t f;
    ck_assert_int_eq(sp_h5_open_read(p, &f), SP_OK);
    SpH5Info info;
    ck_assert_int_eq(sp_h5_info(f, p, "/out/emb", &info), SP_OK);
    ck_assert(info.rank == 2 && info.dims[0] == 5 && info.dims[1] == 4);
    hid_t d = H5Dopen2(f, "/out/emb", H5P_DEFAULT);
    float r[12];
    ck_assert_int_eq(sp_h5_read_rows_float(d, p, "/out/emb", 2, 3, 4, r), SP_OK);
    ck_assert(memcmp(r, a + 8, 4 * sizeof(float)) == 0);
    ck_assert(memcmp(r + 4, b, 8 * sizeof(float)) == 0);
    /* past the end: an error naming the rows, not a crash */
    ck_assert_int_eq(sp_h5_read_rows_float(d, p, "/out/emb", 4, 2, 4, r), SP_EIO);
    sp_expect_error_msg("rows 4..5");
    H5Dclose(d);
    sp_h5_close(f);
}
END_TEST

/* --------------------------------------------------------------- errors */

START_TEST(bad_files) {
    hid_t f;
    ck_assert_int_eq(sp_h5_open_read(sp_tmp_path("missing.h5"), &f), SP_EINPUT);
    sp_expect_error_msg("missing.h5");
    sp_expect_error_msg("No such file");
    ck_assert_int_eq(sp_h5_open_read(sp_tmpdir(), &f), SP_EINPUT);
    sp_expect_error_msg("not a regular file");
    const char *empty = sp_tmp_path("empty.h5");
    fclose(fopen(empty, "w"));
    ck_assert_int_eq(sp_h5_open_read(empty, &f), SP_EFORMAT);
    sp_expect_error_msg("empty file");
    const char *text = sp_tmp_path("text.h5");
    FILE *t = fopen(text, "w");
    fputs("this is not HDF5\n", t);
    fclose(t);
    ck_assert_int_eq(sp_h5_open_read(text, &f), SP_EFORMAT);
    sp_expect_error_msg("text.h5");
    sp_expect_error_msg("not an HDF5 file");
    /* truncated: a valid file cut in half */
    const char *p = sp_tmp_path("trunc.h5");
    SpH5Writer w;
    ck_assert_int_eq(sp_h5_create_atomic(&w, p), SP_OK);
    static float x[4096];
    hsize_t d = 4096;
    ck_assert_int_eq(sp_h5_write_float(w.f, "x", 1, &d, x, 0), SP_OK);
    ck_assert_int_eq(sp_h5_commit(&w), SP_OK);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(truncate(p, st.st_size / 2), 0);
    ck_assert_int_eq(sp_h5_open_read(p, &f), SP_EFORMAT);
    sp_expect_error_msg("trunc.h5");
    sp_expect_error_msg("truncated or corrupted");
}
END_TEST

static void teardown(void) { sp_tmpdir_cleanup(); }

int main(void) {
    Suite *s = suite_create("h5");
    TCase *tc = tcase_create("io");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, atomic_writer_commit_and_abort);
    tcase_add_test(tc, read_with_dtype_conversion);
    tcase_add_test(tc, attributes);
    tcase_add_test(tc, chunking_compression_and_checksums);
    tcase_add_test(tc, streaming_rows);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_checked_fixture(te, NULL, teardown);
    tcase_add_test(te, missing_dataset_and_intermediate_group);
    tcase_add_test(te, bad_files);
    suite_add_tcase(s, te);
    return sp_run_suite(s);
}
