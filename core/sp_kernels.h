/* sp_kernels.h - small dense kernels for cache-resident per-sample work
 * (channel-last convolutions without im2col copies).
 *
 * sp_gemm_strided is a register-blocked matrix product whose A operand is
 * addressed with two arbitrary strides, so overlapping windows of a
 * channel-last map (position t, channel c at t*C + c) are read in place:
 *
 *   C[i*ldc + n] (=|+=) sum_{r < R} A[i*sa + r*sr] * B[r*ldb + n]
 *   for 0 <= i < M, 0 <= n < N.
 *
 * A 1D convolution over a zero-padded channel-last input Xp (rows of C
 * floats), weights Wr (K*C, O) with row j = k*C + c, stride s:
 *   forward   Y (Lo, O)     : A = Xp, sa = s*C, sr = 1,   B = Wr, R = K*C
 *   weights   dWr (K*C, O) += A = Xp, sa = 1,   sr = s*C, B = dY, R = Lo
 *   input     dcols (Lo, KC): A = dY, sa = O,   sr = 1,   B = Wr^T (O, K*C), R = O
 *             then dXp[t*s*C + j] += dcols[t*KC + j] (sp_overlap_add_rows).
 * (cblas refuses lda < K, which is what the overlapping windows need.)
 *
 * With AVX-512 (compiled with -march=native on such a CPU) the product runs
 * micro-kernels of up to 6 x 64 outputs held in registers with fused
 * multiply-adds; otherwise a plain loop. The summation order for a given
 * (M, N, R) is fixed: results are deterministic and independent of threads.
 * Serial, allocation-free, safe inside an OpenMP parallel region. A, B and C
 * must not overlap C.
 */
#ifndef SP_KERNELS_H
#define SP_KERNELS_H

#include <stddef.h>

void sp_gemm_strided(int M, int N, int R, const float *A, ptrdiff_t sa, ptrdiff_t sr,
                     const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int accumulate);

/* 1 when sp_gemm_strided runs the AVX-512 register kernels (compiled with
 * AVX-512), 0 for the plain loops: callers that have a BLAS alternative use
 * sp_gemm_strided only when this is 1. */
int sp_gemm_strided_fast(void);

/* dst[t*step + j] += src[t*width + j] for t < rows, j < width (rows of src
 * added into overlapping windows of dst, in row order). Serial. */
void sp_overlap_add_rows(float *dst, ptrdiff_t step, const float *src, int rows, int width);

#endif
