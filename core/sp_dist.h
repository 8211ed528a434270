/* sp_dist.h - a small distributed runtime for data-parallel training: rank,
 * size, all-reduce of float/double arenas, all-gather and all-to-all of
 * byte rows, broadcast, barrier and agreement on a status.
 *
 * Two builds of one API:
 * - SPECSSL_MPI (CMake option): MPI (Open MPI 4.1 on Debian; any MPI-3
 *   library). sp_dist_init calls MPI_Init_thread(MPI_THREAD_FUNNELED) only
 *   when the process was started by an MPI launcher (mpirun/mpiexec/srun set
 *   OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK/PMI_SIZE or, under Slurm,
 *   SLURM_NTASKS > 1 with SLURM_PROCID); a plain `specssl ...` of an MPI build
 *   stays a world of size 1 without touching MPI (no singleton start-up).
 * - default: a world-size-1 stub (rank 0, size 1; reductions are the
 *   identity, gathers copy), so the default build and its tests are MPI-free.
 *
 * Determinism. sp_dist_allreduce_sum_* is MPI_Allreduce(MPI_SUM) on
 * MPI_FLOAT / MPI_DOUBLE over MPI_COMM_WORLD. For a fixed rank count, message
 * size and MPI library the algorithm (and so the summation order) is fixed,
 * so the result is reproducible from run to run; Open MPI's algorithms
 * (recursive doubling, ring / Rabenseifner) give every rank the same bits
 * (pairwise sums are commutative; segment sums are computed once and
 * distributed). The order differs from a single process summing the same
 * terms, so a P-rank run equals a 1-rank run only within float tolerance.
 * Callers that must keep ranks bit-identical verify it (pt_dist.c hashes the
 * model state at every checkpoint).
 *
 * Threading: the MPI library is initialised FUNNELED: call these functions
 * from the main thread only, outside OpenMP parallel regions. Every function
 * except sp_dist_rank/size/active is collective: all ranks call it in the
 * same order with matching sizes. Nothing here allocates except the
 * in-place helpers' chunking (none) and sp_dist_init.
 */
#ifndef SP_DIST_H
#define SP_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "sp_error.h"

/* Start the runtime (see above). Idempotent. On ranks other than 0 the log
 * level is raised to errors only (rank 0 reports for the job). */
SpStatus sp_dist_init(void);
/* Agree on the final status (sp_dist_agree unless a failure was already
 * agreed), then MPI_Finalize. If MPI cannot agree (a rank is stuck elsewhere)
 * nothing can be done here: such paths call sp_dist_abort. Returns the
 * agreed status. No-op (returns rc) without MPI. */
SpStatus sp_dist_finalize(SpStatus rc);
/* Abort the whole job with exit status `code` (MPI_Abort); exit(code) without MPI. */
void sp_dist_abort(int code) __attribute__((noreturn));

int sp_dist_rank(void);     /* 0 without MPI */
int sp_dist_size(void);     /* 1 without MPI */
int sp_dist_active(void);   /* 1 when MPI is initialised (any size) */
/* "mpi: Open MPI v4.1.4, ..." (first line of MPI_Get_library_version) or "none". */
const char *sp_dist_backend(void);

/* Collective agreement: every rank passes its own status; all return the
 * status of the lowest-numbered failing rank (SP_OK when none failed). A
 * rank that did not fail itself gets an error message naming the failing
 * rank. After an agreed failure, further calls return that status without
 * communicating (so ranks unwinding through several agreement points stay
 * matched). */
SpStatus sp_dist_agree(SpStatus rc);
/* 1 once an agreement returned a failure. */
int sp_dist_failed(void);
/* Forget an agreed failure. Call on every rank at a point where all ranks
 * are known to be in step (e.g. between two runs in one process, in tests). */
void sp_dist_reset(void);

/* In-place sums over all ranks (MPI_Allreduce, MPI_IN_PLACE). n may exceed
 * INT_MAX (sent in chunks). */
void sp_dist_allreduce_sum_f(float *x, size_t n);
void sp_dist_allreduce_sum_d(double *x, size_t n);
/* In-place maximum of ints over all ranks. */
void sp_dist_allreduce_max_i(int *x, size_t n);
/* recv (size * bytes): block r = rank r's send (bytes each, same on every rank). */
void sp_dist_allgather(const void *send, size_t bytes, void *recv);
/* Rank i receives a copy of every rank's 64-bit value: out (size). */
void sp_dist_allgather_u64(uint64_t v, uint64_t *out);
/* Personalised exchange: this rank sends send_bytes[d] bytes from
 * send + send_off[d] to rank d and receives recv_bytes[s] bytes from rank s
 * into recv + recv_off[s] (arrays of size entries; each count < 2^31). */
void sp_dist_alltoallv(const void *send, const size_t *send_bytes, const size_t *send_off,
                       void *recv, const size_t *recv_bytes, const size_t *recv_off);
/* buf (bytes) from rank root to every rank. */
void sp_dist_bcast(void *buf, size_t bytes, int root);
void sp_dist_barrier(void);

/* Tests: make this process behave as a world of size 1 (no communication)
 * while on != 0, e.g. to run a single-process reference on rank 0 inside an
 * MPI job. Not collective. */
void sp_dist_set_local(int on);

#endif
