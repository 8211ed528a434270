/* sp_checkpoint.h - versioned HDF5 checkpoints / model files (DESIGN.md).
 *
 * Root attributes: format = "specssl", format_version, kind
 * ("pretrain" | "supervised" | "linear"), arch, config (full text), epoch,
 * step, created (ISO time), specssl_version. Each SpParams table is a group
 * holding one dataset per tensor, named exactly as the tensor (its shape as
 * the dataset shape; buffers in the same group, flagged by an attribute
 * kind = "buffer"). Extra arrays (queue, optimizer state, RNG state) are plain
 * datasets written by the caller through the SpH5Writer's file id.
 *
 * Writing: ckpt_begin -> ckpt_write_params / sp_h5_write_* -> ckpt_commit
 * (atomic: temp file + rename; a kill leaves the previous file intact).
 * Reading: ckpt_open validates format, version and (when expected != NULL)
 * kind and arch; ckpt_read_params checks every tensor's presence, rank, shape
 * and dtype, and fails naming the tensor with both shapes.
 */
#ifndef SP_CHECKPOINT_H
#define SP_CHECKPOINT_H

#include <hdf5.h>
#include <stdint.h>

#include "sp_h5.h"
#include "sp_params.h"

#define SP_CKPT_FORMAT "specssl"
#define SP_CKPT_VERSION 1

typedef struct {
    char kind[32];
    char arch[64];
    char *config_text;   /* malloc'ed; NULL if none */
    int64_t epoch, step;
    int64_t version;
} SpCkptMeta;

SpStatus ckpt_begin(SpH5Writer *w, const char *path, const char *kind, const char *arch,
                    const char *config_text, int64_t epoch, int64_t step);
/* Writes every tensor of p under group `group` ("encoder_q", "heads/relation"). */
SpStatus ckpt_write_params(hid_t f, const char *group, const SpParams *p);
/* Write gradients-shaped arrays (e.g. optimizer moments) with the same names
 * as p's trainable tensors, taken from arena `values` (n_param floats). */
SpStatus ckpt_write_arena(hid_t f, const char *group, const SpParams *p, const float *values);
SpStatus ckpt_commit(SpH5Writer *w);

/* Open and validate; expect_kind / expect_arch may be NULL. meta->config_text
 * must be freed by ckpt_meta_free. */
SpStatus ckpt_open(const char *path, const char *expect_kind, const char *expect_arch,
                   hid_t *f_out, SpCkptMeta *meta);
SpStatus ckpt_read_params(hid_t f, const char *file, const char *group, SpParams *p);
SpStatus ckpt_read_arena(hid_t f, const char *file, const char *group, const SpParams *p,
                         float *values);
void ckpt_meta_free(SpCkptMeta *meta);

#endif
