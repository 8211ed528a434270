/* sp_params.h - a model's tensors in two contiguous arenas (llm.c style).
 *
 * Trainable parameters live in one float arena with a gradient arena of the
 * same size, so zeroing gradients, the optimizer step, the MoCo momentum
 * update and an MPI all-reduce are each one loop / one call. Buffers (BN
 * running statistics, counters) live in a second arena without gradients.
 *
 * Usage: sp_params_init; sp_params_add(...) for every tensor (returns its
 * index); sp_params_finalize (allocates, zero-filled); then take pointers with
 * sp_params_data / sp_params_grad. Pointers stay valid until sp_params_free.
 */
#ifndef SP_PARAMS_H
#define SP_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "sp_error.h"

#define SP_PARAM_NAME_MAX 96
#define SP_PARAM_MAX_DIMS 4

typedef enum { SP_TENSOR_PARAM = 0, SP_TENSOR_BUFFER = 1 } SpTensorKind;

typedef struct {
    char name[SP_PARAM_NAME_MAX];  /* e.g. "conv1.weight" (PyTorch-like) */
    int ndim;                      /* 0 = scalar */
    int64_t shape[SP_PARAM_MAX_DIMS];
    size_t count;                  /* product of shape (1 for scalar) */
    size_t offset;                 /* in floats, within its arena */
    SpTensorKind kind;
    int no_decay;                  /* optimizer skips weight decay (default 0) */
} SpTensorInfo;

typedef struct {
    SpTensorInfo *t;
    int n, cap;
    float *data;     /* trainable parameters, n_param floats */
    float *grad;     /* same size as data */
    float *buf;      /* buffers, n_buf floats */
    size_t n_param, n_buf;
    int finalized;
} SpParams;

void sp_params_init(SpParams *p);
/* ndim 0..4, dims as int64. Returns the tensor index, or -1 on error (name
 * too long, duplicate, after finalize) with the error set. */
int sp_params_add(SpParams *p, const char *name, SpTensorKind kind, int ndim, const int64_t *shape);
/* Convenience for up to 4 dims: sp_params_add_dims(p, "w", SP_TENSOR_PARAM, 3, O, C, K). */
int sp_params_add_dims(SpParams *p, const char *name, SpTensorKind kind, int ndim, ...);
SpStatus sp_params_finalize(SpParams *p);
float *sp_params_data(const SpParams *p, int idx);   /* param or buffer storage */
float *sp_params_grad(const SpParams *p, int idx);   /* NULL for buffers */
int sp_params_find(const SpParams *p, const char *name); /* -1 if absent */
void sp_params_zero_grad(SpParams *p);
/* Copy values of every tensor (params and buffers) from src with identical layout. */
SpStatus sp_params_copy(SpParams *dst, const SpParams *src);
/* True if both tables have the same names, kinds and shapes in the same order. */
int sp_params_same_layout(const SpParams *a, const SpParams *b);
size_t sp_params_count(const SpParams *p);  /* number of trainable floats */
void sp_params_free(SpParams *p);

#endif
