#include "sp_blas.h"

#include <omp.h>
#include <stdio.h>

/* OpenBLAS extensions (declared in its cblas.h on Debian, repeated for safety). */
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

int sp_blas_init(int nthreads) {
    if (nthreads > 0) omp_set_num_threads(nthreads);
    openblas_set_num_threads(1);
    return omp_get_max_threads();
}

int sp_num_threads(void) { return omp_get_max_threads(); }
const char *sp_blas_corename(void) { return openblas_get_corename(); }
const char *sp_blas_config(void) { return openblas_get_config(); }

void sp_threading_line(char *buf, size_t n) {
    snprintf(buf, n, "threads=%d policy=omp-batch/blas-1 blas=\"%s\" core=%s",
             omp_get_max_threads(), openblas_get_config(), openblas_get_corename());
}
