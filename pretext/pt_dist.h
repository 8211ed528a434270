/* pt_dist.h - data-parallel pretraining over MPI (DESIGN.md "Scale-out",
 * reference/specrrmoco.md §15 "MPI data parallelism"): the hooks the run
 * loop (pt_run.c) and the step (pt_state.c) call. Everything here falls back
 * to the single-process behaviour when no distributed run is active (a
 * world of size 1 and pt_dist_force off), so the default build is unchanged.
 *
 * The scheme, for P ranks and a global batch of B spectra (B % P == 0):
 *  - Sharding: every rank derives the same global epoch order (the loader's
 *    permutation for (seed, epoch), in memory or streamed by blocks; see
 *    PtLoader) and takes positions r, r+P, r+2P, ... of every global batch:
 *    rank r's local sample i is global sample g = r + i P. The global batch
 *    composition and order equal the single-process run's.
 *  - Split BN: each rank runs its encoders with S/P splits (P must divide the
 *    encoder's bn_splits S). Local split s' holds local samples i = s' mod S/P,
 *    i.e. global samples g = r + P s' (mod S): exactly global split r + P s'
 *    of the single process, with the same samples in the same order. The
 *    view-major blocks (views, cut pieces: row v B + b) map the same way.
 *    BN running statistics are averaged over ranks after every step (the
 *    update is affine, so the average equals the single process's update).
 *  - MoCo shuffle BN spans ranks: every rank derives the same permutation pi
 *    of 0..B-1 (moco_shuffle_perm, as the single process); shuffled row j is
 *    encoded by rank j mod P (its local row j / P, hence the same BN split as
 *    in the single process); the inputs travel by one all-to-all (each rank
 *    sends and receives B/P spectra), the keys come back by an all-gather and
 *    are un-permuted, so every rank holds the global keys k[pi[j]] = k'[j].
 *  - Queue: every rank enqueues the same global block [k1; k2] (2B keys, in
 *    the single process's order) and so holds an identical queue.
 *  - InfoNCE runs on the local queries against the local slice of the keys;
 *    its coefficient is divided by P, so every rank's gradient contribution
 *    already carries the global 1/B and the all-reduce is a plain sum.
 *  - RR: the projections z of the views and cut pieces (and their labels) are
 *    all-gathered in global view-major order, and every rank evaluates the
 *    three RR heads on the whole global batch (roll negatives across ranks,
 *    relation- and cut-head BN over all pair rows, exactly as one process);
 *    each rank back-propagates the rows of dz that belong to its samples.
 *    The heads are small next to the encoder (see README "Running on a
 *    cluster" for the measured cost); their gradients and BN buffers are
 *    broadcast from rank 0 so the ranks stay bit-identical whatever their
 *    thread counts.
 *  - Gradients: one MPI_Allreduce(SUM) over the flat gradient arena of f_q
 *    and one over its projection head.
 *  - Rank 0 writes config.cfg, checkpoints, metrics.jsonl and logs; every
 *    checkpoint is preceded by a hash comparison of the model state of all
 *    ranks (a divergence stops the run with an error). A checkpoint holds the
 *    global state (identical on every rank), so --resume works with any rank
 *    count.
 *
 * Tolerance vs one process (same config and seed): forward values are
 * bit-identical in the first step with one thread per rank (same BN groups,
 * same summation order inside each group, per-sample kernels); differences
 * enter through (a) the gradient all-reduce (per-rank partial sums added in
 * another order than one process's batch reduction), (b) InfoNCE's 1/(P B_l)
 * vs 1/B scaling and (c) the averaged BN running statistics, all at float
 * rounding (~1e-7 relative per step), and then grow slowly through training.
 * tests/test_mpi.c checks per-step losses to 1e-5 relative (observed: a few
 * 1e-8 over 6 steps on 2 ranks) and parameters, BN buffers, optimizer state
 * and queue to 1e-3 of each tensor's largest |value| plus 1e-6 absolute
 * (observed: under 5% of that allowance after 20 steps).
 *
 * Error handling: rank-local failures (reading data, augmentation input
 * checks, writing files on rank 0) are followed by an agreement point
 * (sp_dist_agree) before the next collective, so all ranks stop together
 * with the failing rank's status.
 *
 * Allocation: pt_dist_state_create and pt_loader_create only. Threading:
 * serial glue and MPI calls on the main thread between OpenMP regions.
 */
#ifndef PT_DIST_H
#define PT_DIST_H

#include <stdint.h>

#include "sp_data.h"
#include "sp_pretext.h"

typedef struct PtDist PtDist;

/* A distributed run is active: world size > 1, or forced (tests). */
int pt_dist_on(void);
/* Tests: run the distributed code path even in a world of size 1. */
void pt_dist_force(int on);
/* This rank writes files and logs (rank 0; always 1 without MPI). */
int pt_dist_is_root(void);

/* pretrain_state_create for a distributed run: validates P against the
 * batch, the BN splits and the queue (SP_ECONFIG naming the key), builds the
 * state for B/P spectra per rank with bn_splits S/P, and attaches the
 * global-batch buffers. Inactive: exactly pretrain_state_create. */
SpStatus pt_dist_state_create(PretrainState **out, const SpConfig *cfg, int L, int batch,
                              int ext_classes, int64_t n_data);
/* Global batch multiple (S; on a distributed state S/P local splits x P). */
int pt_dist_batch_multiple(const PretrainState *s);
/* Smallest global batch a step accepts (max(S, 2) with the relation head). */
int pt_dist_min_batch(const PretrainState *s);

/* Called by pretrain_step / pretrain_forward_backward when s->dist is set.
 * x, index, extvar: this rank's rows (positions rank, rank+P, ... of the
 * global batch); B: the global batch (a multiple of P). Statistics are
 * global (identical on every rank). */
SpStatus pt_dist_step(PretrainState *s, const float *x, int B, const int64_t *index,
                      const int32_t *extvar, int64_t epoch, int64_t step, float lr,
                      PretrainStepStats *st);
SpStatus pt_dist_forward_backward(PretrainState *s, int64_t epoch, int64_t step,
                                  PretrainStepStats *st);
void pt_dist_free(PtDist **d);

/* Collective: compare a hash of every parameter, buffer, optimizer state and
 * the queue across ranks; SP_EINTERNAL naming the first differing rank. */
SpStatus pt_dist_check_consistent(const PretrainState *s);
/* Debug (SPECSSL_DIST_DUMP=DIR in the environment): every rank of a
 * distributed run writes its whole state to DIR/rank<r>.h5
 * (pretrain_state_save) after each checkpoint. Collective; no-op when the
 * variable is unset or the state is not distributed. */
SpStatus pt_dist_dump(const PretrainState *s);

/* ---------------------------------------------------------------- loader */
/* The batch source of the run loop. Inactive: the data module's SpLoader
 * unchanged. Distributed: the same global order, computed from indices only
 * (memory: a shuffle of 0..n-1 from the loader's stream (seed, epoch); stream:
 * the loader's shuffle of blocks of data.block_rows rows and of the rows of
 * each window of data.shuffle_window blocks), and only this rank's rows are
 * read (streamed files: by hyperslab runs; in memory: copied). The batch
 * returned has n = rows of the global batch while x, index, labels and
 * extvar hold this rank's rows only (positions rank + P t, t = 0..n/P-1
 * when P divides n; the run loop uses the first Beff/P of them). */
typedef struct PtLoader PtLoader;
SpStatus pt_loader_create(PtLoader **out, SpDataset *ds, int batch, int drop_last, uint64_t seed,
                          const SpNorm *norm);
void pt_loader_free(PtLoader **l);
int64_t pt_loader_num_rows(const PtLoader *l);
SpStatus pt_loader_start_epoch(PtLoader *l, int64_t epoch);
SpStatus pt_loader_next(PtLoader *l, SpBatch *b);
/* The global epoch order (n_rows dataset indices) as the distributed loader
 * derives it; for tests (compared with SpLoader's). */
SpStatus pt_loader_epoch_order(PtLoader *l, int64_t epoch, int64_t *order);

/* Fresh start: rank 0 fits the normalisation (one pass over the data) and
 * broadcasts it. Inactive: norm_fit. */
SpStatus pt_dist_norm_fit(SpNorm *nm, SpNormKind kind, SpDataset *ds);
/* Agreement on a rank-local status (sp_dist_agree when active). */
SpStatus pt_dist_agree(SpStatus rc);
/* The signal requested on any rank (max over ranks; 0 = none). */
int pt_dist_signal(int sig);

#endif
