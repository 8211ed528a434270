#include "sp_h5.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void sp_h5_init(void) {
    static int done = 0;
    if (done) return;
    /* No library shutdown at exit: after a write failed (disk full), HDF5
     * 1.10 keeps a half-closed file whose close at exit crashes (SIGSEGV in
     * H5F__close_cb). The process is ending anyway; our files are written
     * atomically, so nothing depends on that final close. Effective only
     * before the library's first use (main calls sp_h5_init first). */
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
}

SpStatus sp_h5_open_read(const char *path, hid_t *out) {
    sp_h5_init();
    *out = -1;
    struct stat st;
    if (stat(path, &st) != 0)
        SP_FAIL(SP_EINPUT, "'%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) SP_FAIL(SP_EINPUT, "'%s': not a regular file", path);
    if (st.st_size == 0) SP_FAIL(SP_EFORMAT, "'%s': empty file (0 bytes), not an HDF5 file", path);
    if (access(path, R_OK) != 0) SP_FAIL(SP_EINPUT, "'%s': %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) SP_FAIL(SP_EFORMAT, "'%s': not an HDF5 file (no HDF5 signature)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        SP_FAIL(SP_EFORMAT, "'%s': cannot open as HDF5 (truncated or corrupted file?)", path);
    *out = f;
    return SP_OK;
}

void sp_h5_close(hid_t f) {
    if (f >= 0) H5Fclose(f);
}

int sp_h5_exists(hid_t loc, const char *name) {
    /* Walk the path component by component: H5Lexists fails (< 0) when an
     * intermediate group is missing. */
    char buf[SP_PATH_MAX];
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof buf) return 0;
    if (strcmp(name, "/") == 0) return 1;
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char save = buf[i];
            buf[i] = '\0';
            if (strcmp(buf, "/") != 0 && buf[0]) {
                htri_t e;
                H5E_BEGIN_TRY { e = H5Lexists(loc, buf, H5P_DEFAULT); }
                H5E_END_TRY;
                if (e <= 0) return 0;
                if (save == '/') {
                    htri_t ok;
                    H5E_BEGIN_TRY { ok = H5Oexists_by_name(loc, buf, H5P_DEFAULT); }
                    H5E_END_TRY;
                    if (ok <= 0) return 0;
                }
            }
            buf[i] = save;
        }
    }
    htri_t ok;
    H5E_BEGIN_TRY { ok = H5Oexists_by_name(loc, name, H5P_DEFAULT); }
    H5E_END_TRY;
    return ok > 0;
}

static hid_t open_dset(hid_t f, const char *file, const char *dset) {
    if (!sp_h5_exists(f, dset)) {
        sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': dataset '%s' not found", file, dset);
        return -1;
    }
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    if (d < 0)
        sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': '%s' is not a readable dataset", file, dset);
    return d;
}

SpStatus sp_h5_info(hid_t f, const char *file, const char *dset, SpH5Info *info) {
    memset(info, 0, sizeof *info);
    hid_t d = open_dset(f, file, dset);
    if (d < 0) return sp_error_status();
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    SpStatus rc = SP_OK;
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank < 0 || rank > 8 || ty < 0) {
        rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': cannot read the shape of '%s'", file, dset);
    } else {
        info->rank = rank;
        H5Sget_simple_extent_dims(sp, info->dims, NULL);
        info->cls = H5Tget_class(ty);
        info->type_size = H5Tget_size(ty);
        info->is_signed = info->cls == H5T_INTEGER ? H5Tget_sign(ty) == H5T_SGN_2 : 1;
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

static SpStatus read_all(hid_t f, const char *file, const char *dset, hid_t memtype,
                         void *out, size_t count) {
    hid_t d = open_dset(f, file, dset);
    if (d < 0) return sp_error_status();
    SpStatus rc = SP_OK;
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    H5T_class_t cls = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__,
                          "'%s': dataset '%s' is not numeric (integer or float)", file, dset);
    } else if (n < 0 || (size_t)n != count) {
        rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__,
                          "'%s': dataset '%s' has %lld elements, expected %zu", file, dset,
                          (long long)n, count);
    } else if (count > 0 && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        rc = sp_error_set(SP_EFORMAT, __FILE__, __LINE__,
                          "'%s': reading dataset '%s' failed (truncated or corrupted file?)", file, dset);
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

SpStatus sp_h5_read_float(hid_t f, const char *file, const char *dset, float *out, size_t count) {
    return read_all(f, file, dset, H5T_NATIVE_FLOAT, out, count);
}
SpStatus sp_h5_read_double(hid_t f, const char *file, const char *dset, double *out, size_t count) {
    return read_all(f, file, dset, H5T_NATIVE_DOUBLE, out, count);
}
SpStatus sp_h5_read_int32(hid_t f, const char *file, const char *dset, int32_t *out, size_t count) {
    return read_all(f, file, dset, H5T_NATIVE_INT32, out, count);
}
SpStatus sp_h5_read_int64(hid_t f, const char *file, const char *dset, int64_t *out, size_t count) {
    return read_all(f, file, dset, H5T_NATIVE_INT64, out, count);
}

SpStatus sp_h5_read_rows_float(hid_t d, const char *file, const char *dset, hsize_t row0,
                               hsize_t nrows, hsize_t ncols, float *out) {
    if (nrows == 0) return SP_OK;
    hid_t fs = H5Dget_space(d);
    hsize_t start[2] = {row0, 0}, cnt[2] = {nrows, ncols};
    hid_t ms = H5Screate_simple(2, cnt, NULL);
    SpStatus rc = SP_OK;
    hsize_t dims[2] = {0, 0};
    int ok = fs >= 0 && ms >= 0 && H5Sget_simple_extent_ndims(fs) == 2 &&
             H5Sget_simple_extent_dims(fs, dims, NULL) == 2;
    if (!ok || row0 + nrows > dims[0] || ncols != dims[1] ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0)
        rc = sp_error_set(SP_EIO, __FILE__, __LINE__,
                          "'%s': reading rows %llu..%llu of '%s' failed (outside its shape)", file,
                          (unsigned long long)row0, (unsigned long long)(row0 + nrows - 1), dset);
    else if (H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) < 0)
        /* the selection is valid: the file's data is damaged (input error) */
        rc = sp_error_set(SP_EFORMAT, __FILE__, __LINE__,
                          "'%s': reading rows %llu..%llu of '%s' failed (truncated or corrupted file?)",
                          file, (unsigned long long)row0, (unsigned long long)(row0 + nrows - 1), dset);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

/* ------------------------------------------------------------------ writing */

/* Groups (and the root group, through the file creation list) keep their
 * links and attributes "compact", as messages of the group's own object
 * header, whatever their number. The default switches to "dense" storage
 * (a fractal heap + B-tree) beyond 8 links/attributes; HDF5 1.10 crashes on
 * some corruptions there (SIGSEGV in H5G__dense_iterate's cleanup after a
 * failed read), while a corrupted object header fails its checksum cleanly. */
static void set_compact(hid_t ocpl) {
    H5Pset_link_phase_change(ocpl, 65535, 65535);
    H5Pset_attr_phase_change(ocpl, 65535, 65535);
}

SpStatus sp_h5_create_atomic(SpH5Writer *w, const char *path) {
    sp_h5_init();
    memset(w, 0, sizeof *w);
    w->f = -1;
    if (strlen(path) >= SP_PATH_MAX) SP_FAIL(SP_EUSAGE, "output path too long: '%s'", path);
    strcpy(w->final_path, path);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    /* 1.10 object format: superblock, object headers and chunk indexes all
     * carry checksums, so corrupted metadata is detected on reading (the 1.8
     * format's v1 B-tree chunk index has none: a flipped chunk address could
     * silently point at another chunk). Readable by HDF5 >= 1.10 (h5py). */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    set_compact(fcpl);   /* the root group's links and attributes (see set_compact) */
    errno = 0;
    w->f = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (w->f < 0) {
        int e = errno;
        SP_FAIL(SP_EIO, "cannot create '%s' (%s): is the folder missing or not writable?",
                w->tmp_path, e ? strerror(e) : "HDF5 error");
    }
    return SP_OK;
}

SpStatus sp_h5_commit(SpH5Writer *w) {
    if (w->f < 0) SP_FAIL(SP_EINTERNAL, "commit of a writer that is not open");
    herr_t fl = H5Fflush(w->f, H5F_SCOPE_GLOBAL);
    herr_t cl = H5Fclose(w->f);
    w->f = -1;
    if (fl < 0 || cl < 0) {
        unlink(w->tmp_path);
        SP_FAIL(SP_EIO, "writing '%s' failed (disk full?); nothing was written under that name",
                w->final_path);
    }
    int fd = open(w->tmp_path, O_RDONLY);
    if (fd >= 0) {
        int rc = fsync(fd);
        int e = errno;
        close(fd);
        if (rc != 0) {
            unlink(w->tmp_path);
            SP_FAIL(SP_EIO, "writing '%s' failed: %s", w->final_path, strerror(e));
        }
    }
    if (rename(w->tmp_path, w->final_path) != 0) {
        int e = errno;
        unlink(w->tmp_path);
        SP_FAIL(SP_EIO, "cannot rename '%s' to '%s': %s", w->tmp_path, w->final_path, strerror(e));
    }
    /* Make the rename itself durable (best effort: not every file system
     * supports fsync on a directory). */
    char dir[SP_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", w->final_path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return SP_OK;
}

void sp_h5_abort(SpH5Writer *w) {
    if (w->f >= 0) {
        H5Fclose(w->f);
        w->f = -1;
    }
    if (w->tmp_path[0]) unlink(w->tmp_path);
}

static hid_t make_lcpl(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

/* Create the missing groups of a path's parents (not the last component). */
static SpStatus ensure_parents(hid_t loc, const char *name) {
    char buf[SP_PATH_MAX];
    size_t n = strlen(name);
    if (n >= sizeof buf) SP_FAIL(SP_EUSAGE, "HDF5 path too long: '%s'", name);
    memcpy(buf, name, n + 1);
    SpStatus rc = SP_OK;
    hid_t gcpl = -1;
    for (size_t i = 1; i < n && rc == SP_OK; i++) {
        if (buf[i] != '/') continue;
        buf[i] = '\0';
        if (!sp_h5_exists(loc, buf)) {
            if (gcpl < 0) {
                gcpl = H5Pcreate(H5P_GROUP_CREATE);
                set_compact(gcpl);
            }
            hid_t g = H5Gcreate2(loc, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (g < 0) rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "cannot create HDF5 group '%s'", buf);
            else H5Gclose(g);
        }
        buf[i] = '/';
    }
    if (gcpl >= 0) H5Pclose(gcpl);
    return rc;
}

SpStatus sp_h5_ensure_group(hid_t loc, const char *path) {
    if (sp_h5_exists(loc, path)) return SP_OK;
    SP_TRY(ensure_parents(loc, path));
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    set_compact(gcpl);
    hid_t g = H5Gcreate2(loc, path, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g < 0) SP_FAIL(SP_EIO, "cannot create HDF5 group '%s'", path);
    H5Gclose(g);
    return SP_OK;
}

static hid_t chunked_dcpl(int rank, const hsize_t *dims, size_t elem, int compress, int extendible) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (!compress && !extendible) return dcpl;
    hsize_t chunk[8];
    size_t total = elem;
    for (int i = rank - 1; i >= 0; i--) {
        hsize_t d = dims[i] ? dims[i] : 1;
        chunk[i] = d;
        total *= d;
    }
    /* keep chunks <= 1 MiB: shrink the leading dimension first */
    const size_t maxb = (size_t)1 << 20;
    for (int i = 0; i < rank && total > maxb; i++) {
        size_t row = total / chunk[i];
        hsize_t c = row >= maxb ? 1 : (hsize_t)(maxb / row);
        if (c < 1) c = 1;
        if (c < chunk[i]) {
            total = row * c;
            chunk[i] = c;
        }
    }
    H5Pset_chunk(dcpl, rank, chunk);
    if (compress == SP_H5_CHECKSUM) {
        H5Pset_fletcher32(dcpl);
    } else if (compress && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 4);
    }
    return dcpl;
}

static SpStatus write_ds(hid_t loc, const char *name, int rank, const hsize_t *dims,
                         hid_t filetype, hid_t memtype, size_t elem, const void *data, int compress) {
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    int chunk = compress && rank > 0 && n > 0;
    hid_t dcpl = rank == 0 ? H5Pcreate(H5P_DATASET_CREATE)
                           : chunked_dcpl(rank, dims, elem, chunk ? compress : 0, 0);
    /* Scalars and empty datasets cannot be chunked: with SP_H5_CHECKSUM they
     * are stored compact, inside the (checksummed) object header. */
    if (compress == SP_H5_CHECKSUM && !chunk && n * elem <= 16384)
        H5Pset_layout(dcpl, H5D_COMPACT);
    SpStatus rc = ensure_parents(loc, name);
    hid_t lcpl = make_lcpl();
    hid_t d = -1;
    if (rc == SP_OK) {
        d = H5Dcreate2(loc, name, filetype, sp, lcpl, dcpl, H5P_DEFAULT);
        if (d < 0)
            rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "cannot create dataset '%s'", name);
        else if (n > 0 && H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
            rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "writing dataset '%s' failed (disk full?)",
                              name);
    }
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return rc;
}

SpStatus sp_h5_write_float(hid_t loc, const char *name, int rank, const hsize_t *dims,
                           const float *data, int compress) {
    return write_ds(loc, name, rank, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, data, compress);
}
SpStatus sp_h5_write_double(hid_t loc, const char *name, int rank, const hsize_t *dims,
                            const double *data, int compress) {
    return write_ds(loc, name, rank, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 8, data, compress);
}
SpStatus sp_h5_write_int32(hid_t loc, const char *name, int rank, const hsize_t *dims,
                           const int32_t *data, int compress) {
    return write_ds(loc, name, rank, dims, H5T_STD_I32LE, H5T_NATIVE_INT32, 4, data, compress);
}
SpStatus sp_h5_write_int64(hid_t loc, const char *name, int rank, const hsize_t *dims,
                           const int64_t *data, int compress) {
    return write_ds(loc, name, rank, dims, H5T_STD_I64LE, H5T_NATIVE_INT64, 8, data, compress);
}

SpStatus sp_h5_create_rows_float(hid_t loc, const char *name, hsize_t ncols, hid_t *dset_out) {
    hsize_t dims[2] = {0, ncols}, maxd[2] = {H5S_UNLIMITED, ncols};
    hid_t sp = H5Screate_simple(2, dims, maxd);
    hsize_t cdims[2] = {(1u << 20) / (4 * (ncols ? ncols : 1)) + 1, ncols};
    hid_t dcpl = chunked_dcpl(2, cdims, 4, 1, 1);
    SP_TRY(ensure_parents(loc, name));
    hid_t lcpl = make_lcpl();
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(sp);
    *dset_out = d;
    if (d < 0) SP_FAIL(SP_EIO, "cannot create dataset '%s'", name);
    return SP_OK;
}

SpStatus sp_h5_append_rows_float(hid_t d, hsize_t row0, hsize_t nrows, hsize_t ncols,
                                 const float *data) {
    if (nrows == 0) return SP_OK;
    hsize_t newd[2] = {row0 + nrows, ncols};
    if (H5Dset_extent(d, newd) < 0) SP_FAIL(SP_EIO, "cannot extend dataset (disk full?)");
    hid_t fs = H5Dget_space(d);
    hsize_t start[2] = {row0, 0}, cnt[2] = {nrows, ncols};
    hid_t ms = H5Screate_simple(2, cnt, NULL);
    SpStatus rc = SP_OK;
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0 ||
        H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, data) < 0)
        rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "writing rows failed (disk full?)");
    H5Sclose(ms);
    H5Sclose(fs);
    return rc;
}

/* --------------------------------------------------------------- attributes */

static SpStatus attr_write(hid_t loc, const char *obj, const char *name, hid_t type,
                           const void *value) {
    if (H5Aexists_by_name(loc, obj, name, H5P_DEFAULT) > 0)
        H5Adelete_by_name(loc, obj, name, H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(loc, obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    SpStatus rc = SP_OK;
    if (a < 0 || H5Awrite(a, type, value) < 0)
        rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "cannot write attribute '%s' on '%s'", name, obj);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

/* Fixed-length, not variable-length: a variable-length string lives in the
 * global heap, which carries no checksum, and HDF5 1.10 copies a corrupted
 * heap object's length unchecked (a flipped byte there crashed the reader).
 * A fixed-length value is stored in the attribute message itself, inside the
 * checksummed object header. Readers accept both kinds. */
SpStatus sp_h5_attr_write_str(hid_t loc, const char *obj, const char *name, const char *value) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, H5T_CSET_UTF8);
    SpStatus rc = attr_write(loc, obj, name, t, value);
    H5Tclose(t);
    return rc;
}

SpStatus sp_h5_attr_write_int64(hid_t loc, const char *obj, const char *name, int64_t value) {
    return attr_write(loc, obj, name, H5T_NATIVE_INT64, &value);
}

SpStatus sp_h5_attr_write_double(hid_t loc, const char *obj, const char *name, double value) {
    return attr_write(loc, obj, name, H5T_NATIVE_DOUBLE, &value);
}

int sp_h5_attr_probe(hid_t loc, const char *obj, const char *name) {
    htri_t e;
    H5E_BEGIN_TRY { e = H5Aexists_by_name(loc, obj, name, H5P_DEFAULT); }
    H5E_END_TRY;
    return e > 0 ? 1 : e == 0 ? 0 : -1;
}

int sp_h5_attr_exists(hid_t loc, const char *obj, const char *name) {
    return sp_h5_attr_probe(loc, obj, name) > 0;
}

/* Number of values in an attribute (1 for a scalar), -1 on error. */
static hssize_t attr_npoints(hid_t a) {
    hid_t sp = H5Aget_space(a);
    if (sp < 0) return -1;
    hssize_t n = H5Sget_simple_extent_type(sp) == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    return n;
}

static hid_t attr_open(hid_t loc, const char *file, const char *obj, const char *name) {
    int e = sp_h5_attr_probe(loc, obj, name);
    if (e < 0) {
        sp_error_set(SP_EFORMAT, __FILE__, __LINE__,
                     "'%s': cannot read the attributes of '%s' (corrupted file?)", file, obj);
        return -1;
    }
    if (e == 0) {
        sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': attribute '%s' missing on '%s'", file, name, obj);
        return -1;
    }
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        sp_error_set(SP_EFORMAT, __FILE__, __LINE__,
                     "'%s': cannot open attribute '%s' (corrupted file?)", file, name);
    return a;
}

SpStatus sp_h5_attr_read_str(hid_t loc, const char *file, const char *obj, const char *name,
                             char **out) {
    *out = NULL;
    hid_t a = attr_open(loc, file, obj, name);
    if (a < 0) return sp_error_status();
    hid_t ft = H5Aget_type(a);
    SpStatus rc = SP_OK;
    hssize_t npts = attr_npoints(a);
    if (npts != 1) {
        rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__,
                          "'%s': attribute '%s' on '%s' holds %lld values, expected a single string",
                          file, name, obj, (long long)npts);
    } else if (H5Tget_class(ft) != H5T_STRING) {
        rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': attribute '%s' is not a string", file, name);
    } else if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft)); /* HDF5 does not convert ASCII <-> UTF-8 */
        char *s = NULL;
        if (H5Aread(a, mt, &s) < 0 || !s) {
            rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': cannot read attribute '%s'", file, name);
        } else {
            *out = strdup(s);
            H5free_memory(s);
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        char *s = calloc(n + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1);
        H5Tset_cset(mt, H5Tget_cset(ft));
        if (!s || H5Aread(a, mt, s) < 0) {
            free(s);
            rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': cannot read attribute '%s'", file, name);
        } else {
            *out = s;
        }
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static SpStatus attr_read_num(hid_t loc, const char *file, const char *obj, const char *name,
                              hid_t mt, void *out) {
    hid_t a = attr_open(loc, file, obj, name);
    if (a < 0) return sp_error_status();
    hid_t ft = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(ft);
    SpStatus rc = SP_OK;
    hssize_t npts = attr_npoints(a);
    if (npts != 1)
        rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__,
                          "'%s': attribute '%s' on '%s' holds %lld values, expected a single number",
                          file, name, obj, (long long)npts);
    else if ((c != H5T_INTEGER && c != H5T_FLOAT) || H5Aread(a, mt, out) < 0)
        rc = sp_error_set(SP_EINPUT, __FILE__, __LINE__, "'%s': attribute '%s' is not numeric", file, name);
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

SpStatus sp_h5_attr_read_int64(hid_t loc, const char *file, const char *obj, const char *name,
                               int64_t *out) {
    return attr_read_num(loc, file, obj, name, H5T_NATIVE_INT64, out);
}

SpStatus sp_h5_attr_read_double(hid_t loc, const char *file, const char *obj, const char *name,
                                double *out) {
    return attr_read_num(loc, file, obj, name, H5T_NATIVE_DOUBLE, out);
}
