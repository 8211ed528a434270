/* sp_h5.h - the HDF5 helpers every module shares.
 *
 * - HDF5's automatic error printing is switched off (sp_h5_init); every
 *   failure becomes one specssl error naming the file, the dataset and the
 *   problem.
 * - Files are written atomically: sp_h5_create_atomic writes "<path>.tmp" in
 *   the same folder, sp_h5_commit flushes, closes, fsyncs and renames it; a
 *   file under its final name is always complete. sp_h5_abort removes the
 *   temporary file.
 * - Datasets are written chunked (chunks <= 1 MiB) with shuffle + deflate
 *   when the filter is available.
 */
#ifndef SP_H5_H
#define SP_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_error.h"

#define SP_PATH_MAX 4096

void sp_h5_init(void);

/* Open an existing file read-only. Distinguishes: missing file, not a regular
 * file, zero-byte file, not HDF5, truncated/corrupted HDF5. */
SpStatus sp_h5_open_read(const char *path, hid_t *out);
void sp_h5_close(hid_t f);

/* Does the object (dataset/group, absolute path like "/entry/data/data")
 * exist? Safe for missing intermediate groups. */
int sp_h5_exists(hid_t loc, const char *name);

typedef struct {
    int rank;
    hsize_t dims[8];
    H5T_class_t cls;     /* H5T_INTEGER, H5T_FLOAT, ... */
    size_t type_size;    /* bytes per element */
    int is_signed;
} SpH5Info;

/* Info about a dataset; error (SP_EINPUT) naming file and dataset if missing. */
SpStatus sp_h5_info(hid_t f, const char *file, const char *dset, SpH5Info *info);

/* Whole-dataset reads with type conversion by HDF5 (any int/float class ->
 * float / int32 / double / int64). `count` must equal the dataset's element
 * count; otherwise SP_EINPUT naming the dataset and both sizes. */
SpStatus sp_h5_read_float(hid_t f, const char *file, const char *dset, float *out, size_t count);
SpStatus sp_h5_read_double(hid_t f, const char *file, const char *dset, double *out, size_t count);
SpStatus sp_h5_read_int32(hid_t f, const char *file, const char *dset, int32_t *out, size_t count);
SpStatus sp_h5_read_int64(hid_t f, const char *file, const char *dset, int64_t *out, size_t count);

/* Rows [row0, row0+nrows) of a rank-2 dataset (N, ncols), converted to float.
 * dset_id stays open between calls (streaming). */
SpStatus sp_h5_read_rows_float(hid_t dset_id, const char *file, const char *dset,
                               hsize_t row0, hsize_t nrows, hsize_t ncols, float *out);

/* Atomic writer. Files use the HDF5 1.10 object format (readable by HDF5 >=
 * 1.10 / h5py), whose superblock, object headers and chunk indexes carry
 * checksums. */
typedef struct {
    char final_path[SP_PATH_MAX];
    char tmp_path[SP_PATH_MAX + 8];
    hid_t f;
} SpH5Writer;

SpStatus sp_h5_create_atomic(SpH5Writer *w, const char *path);
SpStatus sp_h5_commit(SpH5Writer *w);  /* on failure the temp file is removed */
void sp_h5_abort(SpH5Writer *w);

/* Dataset writers. `name` may be a path ("encoder_q/conv1.weight" or
 * "/entry/data/data"); missing intermediate groups are created. rank 0 writes
 * a scalar dataset. compress 1: chunked + shuffle + deflate(4);
 * SP_H5_CHECKSUM: chunked + Fletcher-32 checksum, no compression (reading a
 * corrupted chunk then fails instead of returning wrong numbers); scalars and
 * empty datasets are then stored compact, inside the checksummed object
 * header. */
#define SP_H5_CHECKSUM 2
SpStatus sp_h5_write_float(hid_t loc, const char *name, int rank, const hsize_t *dims,
                           const float *data, int compress);
SpStatus sp_h5_write_double(hid_t loc, const char *name, int rank, const hsize_t *dims,
                            const double *data, int compress);
SpStatus sp_h5_write_int32(hid_t loc, const char *name, int rank, const hsize_t *dims,
                           const int32_t *data, int compress);
SpStatus sp_h5_write_int64(hid_t loc, const char *name, int rank, const hsize_t *dims,
                           const int64_t *data, int compress);

/* Extendible (N unlimited) float dataset for streaming writes of rows. */
SpStatus sp_h5_create_rows_float(hid_t loc, const char *name, hsize_t ncols, hid_t *dset_out);
SpStatus sp_h5_append_rows_float(hid_t dset, hsize_t row0, hsize_t nrows, hsize_t ncols,
                                 const float *data);

/* Attributes on an object (file root: pass the file id and "/"). */
SpStatus sp_h5_attr_write_str(hid_t loc, const char *obj, const char *name, const char *value);
SpStatus sp_h5_attr_write_int64(hid_t loc, const char *obj, const char *name, int64_t value);
SpStatus sp_h5_attr_write_double(hid_t loc, const char *obj, const char *name, double value);
/* Reads return SP_EINPUT (naming file and attribute) if missing, of the wrong
 * class or not a single value (arrays are refused). Strings: *out is
 * malloc'ed (free()). */
int sp_h5_attr_exists(hid_t loc, const char *obj, const char *name);
/* 1 present, 0 absent, -1 the attribute storage cannot be read (a failed
 * checksum: corrupted file). */
int sp_h5_attr_probe(hid_t loc, const char *obj, const char *name);
SpStatus sp_h5_attr_read_str(hid_t loc, const char *file, const char *obj, const char *name,
                             char **out);
SpStatus sp_h5_attr_read_int64(hid_t loc, const char *file, const char *obj, const char *name,
                               int64_t *out);
SpStatus sp_h5_attr_read_double(hid_t loc, const char *file, const char *obj, const char *name,
                                double *out);

/* Create a group (and parents) if missing. */
SpStatus sp_h5_ensure_group(hid_t loc, const char *path);

#endif
