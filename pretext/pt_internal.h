/* pt_internal.h - shared internals of the pretext module (not installed). */
#ifndef PT_INTERNAL_H
#define PT_INTERNAL_H

#include <stdint.h>

#include "sp_augment.h"
#include "sp_optim.h"
#include "sp_pretext.h"

/* Abort with a message: an internal invariant is broken (a bug, never user input). */
#define PT_ASSERT(cond, ...)                                          \
    do {                                                              \
        if (!(cond)) pt_assert_fail(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
void pt_assert_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Stream tags of the derived seeds (sp_pretext.h "Randomness"). */
enum {
    PT_SEED_INIT = 1,
    PT_SEED_LOADER = 2,
    PT_SEED_AUG = 3,
    PT_SEED_SHUFFLE = 4,
    PT_SEED_KNN = 5
};
uint64_t pt_derive_seed(uint64_t seed, int tag);

/* Init components (the 'a' key of the init stream). */
enum { PT_INIT_ENC = 0, PT_INIT_PROJ, PT_INIT_QUEUE, PT_INIT_REL, PT_INIT_CLS, PT_INIT_EXT };

#define PT_MAX_GROUPS 5

struct PretrainState {
    PretextOptions o;
    int L, maxB, V, F, D, S, w, C_cut, C_ext;
    int use_moco, use_inter, use_intra, use_ext, use_views;
    uint64_t seed_aug, seed_shuffle;

    SpEncoder *enc;
    SpProjHead *proj;
    MocoKeyEncoder key;
    MocoQueue queue;
    RrHead rel, cls, ext;
    AugPipeline *aug;

    /* trainable groups and their optimizers */
    int ngroups;
    SpParams *groups[PT_MAX_GROUPS];
    const char *group_names[PT_MAX_GROUPS];
    SpOptim optim[PT_MAX_GROUPS];

    /* encoder / projection contexts (per f_q call, kept for backward) */
    SpEncAct *a_q1, *a_views, *a_p0, *a_p1;      /* a_q1 serves k2, q1, k1, q2 */
    SpProjAct *pa_q1, *pa_views, *pa_p0, *pa_p1;
    RrHeadAct ha_rel, ha_cls, ha_ext;

    /* current batch */
    int B;
    int64_t epoch;
    int *sample_idx;        /* (maxB) */
    float *im1, *im2;       /* (maxB, L) */
    float *views;           /* (V maxB, L) */
    float *p0, *p1;         /* (V maxB, w) */
    int *cut_labels;        /* (V maxB) */
    int *ext_labels;        /* (V maxB) */

    /* features and their gradients */
    float *h_q1, *h_q2, *h_views, *h_p0, *h_p1;       /* (rows, F) */
    float *z_q1, *z_q2, *z_views, *z_p0, *z_p1;       /* (rows, D) */
    float *dz_q1, *dz_q2, *dz_views, *dz_p0, *dz_p1;  /* (rows, D) */
    float *dh;                                        /* (V maxB, F) scratch */
    float *k1, *k2;                                   /* (maxB, D) keys */
    float *keys_cat;                                  /* (2 maxB, D) [k1; k2] */
    int *perm;                                        /* (maxB) */
    float *nce_work;

    /* relation pairs */
    int *pair_left, *pair_right;  /* (V(V-1) maxB) */
    float *pair_target;
    float *pair_x, *dpair_x;      /* (V(V-1) maxB, 2D) */
    float *dlog_rel;              /* (V(V-1) maxB) */
    /* cut-piece head */
    float *cut_x, *dcut_x;        /* (V maxB, 2D) */
    float *dlog_cls, *prob_cls, *dprob_cls;   /* (V maxB, C_cut) */
    /* external head */
    float *dlog_ext, *prob_ext, *dprob_ext;   /* (V maxB, C_ext) */

    int have_keys;   /* keys of the current batch ready for the enqueue */
    struct PtDist *dist; /* distributed run (pt_dist.c); NULL in a single process */
    size_t buf_bytes; /* the state's own buffers */
};

/* The buffers the three RR heads work on for B spectra (V B view rows,
 * view-major): the state's own in one process, the global blocks of a
 * distributed step (pt_dist.c). dz_* must be zeroed by the caller. */
typedef struct {
    float *z_views, *z_p0, *z_p1, *dz_views, *dz_p0, *dz_p1;
    int *cut_labels, *ext_labels, *pair_left, *pair_right;
    float *pair_target, *pair_x, *dpair_x, *dlog_rel;
    float *cut_x, *dcut_x, *dlog_cls, *prob_cls, *dprob_cls;
    float *dlog_ext, *prob_ext, *dprob_ext;
    RrHeadAct *ha_rel, *ha_cls, *ha_ext;
} PtHeadBufs;

/* Forward, loss and backward of the enabled RR heads (inter-sample relation,
 * cut-piece distance, external variable): losses and accuracies into st,
 * head parameter gradients accumulated, dz_* accumulated. */
void pt_heads_step(PretrainState *s, const PtHeadBufs *b, int B, PretrainStepStats *st);

/* The end of a training step after the forward/backward pass, the same for
 * one process and a distributed step (where every value checked is
 * identical on all ranks): refuse a non-finite loss or gradient, enqueue the
 * B (2B symmetric) keys of keys_cat, take the optimizer step, and refuse
 * non-finite parameters or BatchNorm statistics (f_q, heads, key encoder). */
SpStatus pt_step_finish(PretrainState *s, const float *keys_cat, int B, int64_t epoch,
                        int64_t step, float lr, const PretrainStepStats *st);

/* Every non-finite float of the trainable gradient arenas: index of the
 * first group with one, or -1. */
int pt_grad_nonfinite(const PretrainState *s);

#endif
