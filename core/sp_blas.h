/* sp_blas.h - the threading policy and BLAS facts.
 *
 * Policy (STYLE.md 2.5 "policy A"): OpenMP threads over the batch, OpenBLAS
 * single-threaded everywhere. sp_blas_init() must run once at start-up (CLI,
 * benches and tests that call layers do it) before any parallel region.
 */
#ifndef SP_BLAS_H
#define SP_BLAS_H

#include <cblas.h>

/* nthreads <= 0: keep OMP_NUM_THREADS / the OpenMP default. Sets OpenBLAS to
 * one thread. Returns the number of OpenMP threads in use. */
int sp_blas_init(int nthreads);
int sp_num_threads(void);
const char *sp_blas_corename(void);   /* openblas_get_corename() */
const char *sp_blas_config(void);     /* openblas_get_config() */
/* One line: "threads=2 policy=omp-batch/blas-1 openblas=0.3.21 core=SkylakeX" */
void sp_threading_line(char *buf, size_t n);

#endif
