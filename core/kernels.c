/* kernels.c - sp_gemm_strided and sp_overlap_add_rows (sp_kernels.h).
 *
 * AVX-512 path: the output is cut into panels of up to 64 columns (4 vectors
 * of 16 floats, the last one masked) and tiles of MR rows; a micro-kernel
 * keeps its MR x NV accumulators in registers over the whole reduction
 * (r = 0..R-1: NV vector loads of B's row r, MR broadcasts of A, MR*NV fused
 * multiply-adds). MR x NV <= 24 leaves registers for B and the broadcast.
 * The micro-kernels are generated for every row count 1..MR so edge tiles
 * take the same register path. Plain loops without AVX-512.
 * Serial, allocation-free, safe inside parallel regions.
 */
#include <stdint.h>

#include "sp_kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>

typedef void (*SpMk)(const float *A, ptrdiff_t sa, ptrdiff_t sr, const float *B, ptrdiff_t ldb,
                     int R, float *C, ptrdiff_t ldc, int acc_in, __mmask16 m);

#define SP_LOADV(p, v, NV, m) \
    ((v) == (NV) - 1 ? _mm512_maskz_loadu_ps((m), (p)) : _mm512_loadu_ps(p))

#define SP_MKDEF(MR, NV)                                                                        \
    static void sp_mk_##MR##_##NV(const float *A, ptrdiff_t sa, ptrdiff_t sr, const float *B,  \
                                  ptrdiff_t ldb, int R, float *C, ptrdiff_t ldc, int acc_in,    \
                                  __mmask16 m) {                                                \
        __m512 acc[MR][NV];                                                                     \
        if (acc_in) {                                                                           \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                               \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                            \
                    acc[i][v] = SP_LOADV(C + i * ldc + 16 * v, v, NV, m);                       \
        } else {                                                                                \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                               \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                            \
                    acc[i][v] = _mm512_setzero_ps();                                            \
        }                                                                                       \
        for (int r = 0; r < R; r++) {                                                           \
            const float *b = B + r * ldb;                                                       \
            const float *a = A + r * sr;                                                        \
            __m512 bv[NV];                                                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                \
                bv[v] = SP_LOADV(b + 16 * v, v, NV, m);                                         \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                             \
                const __m512 av = _mm512_set1_ps(a[i * sa]);                                    \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                            \
                    acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);                          \
            }                                                                                   \
        }                                                                                       \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                   \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                              \
                if (v == NV - 1)                                                                \
                    _mm512_mask_storeu_ps(C + i * ldc + 16 * v, m, acc[i][v]);                  \
                else                                                                            \
                    _mm512_storeu_ps(C + i * ldc + 16 * v, acc[i][v]);                          \
            }                                                                                   \
    }

/* NV = 1, 2: up to 12 rows; NV = 3: 8 rows; NV = 4: 6 rows. */
SP_MKDEF(1, 1) SP_MKDEF(2, 1) SP_MKDEF(3, 1) SP_MKDEF(4, 1) SP_MKDEF(5, 1) SP_MKDEF(6, 1)
SP_MKDEF(7, 1) SP_MKDEF(8, 1) SP_MKDEF(9, 1) SP_MKDEF(10, 1) SP_MKDEF(11, 1) SP_MKDEF(12, 1)
SP_MKDEF(1, 2) SP_MKDEF(2, 2) SP_MKDEF(3, 2) SP_MKDEF(4, 2) SP_MKDEF(5, 2) SP_MKDEF(6, 2)
SP_MKDEF(7, 2) SP_MKDEF(8, 2) SP_MKDEF(9, 2) SP_MKDEF(10, 2) SP_MKDEF(11, 2) SP_MKDEF(12, 2)
SP_MKDEF(1, 3) SP_MKDEF(2, 3) SP_MKDEF(3, 3) SP_MKDEF(4, 3) SP_MKDEF(5, 3) SP_MKDEF(6, 3)
SP_MKDEF(7, 3) SP_MKDEF(8, 3)
SP_MKDEF(1, 4) SP_MKDEF(2, 4) SP_MKDEF(3, 4) SP_MKDEF(4, 4) SP_MKDEF(5, 4) SP_MKDEF(6, 4)

#define SP_MR_MAX 12
static const int g_mr[5] = {0, 12, 12, 8, 6};
static const SpMk g_mk[5][SP_MR_MAX + 1] = {
    {0},
    {0, sp_mk_1_1, sp_mk_2_1, sp_mk_3_1, sp_mk_4_1, sp_mk_5_1, sp_mk_6_1, sp_mk_7_1, sp_mk_8_1,
     sp_mk_9_1, sp_mk_10_1, sp_mk_11_1, sp_mk_12_1},
    {0, sp_mk_1_2, sp_mk_2_2, sp_mk_3_2, sp_mk_4_2, sp_mk_5_2, sp_mk_6_2, sp_mk_7_2, sp_mk_8_2,
     sp_mk_9_2, sp_mk_10_2, sp_mk_11_2, sp_mk_12_2},
    {0, sp_mk_1_3, sp_mk_2_3, sp_mk_3_3, sp_mk_4_3, sp_mk_5_3, sp_mk_6_3, sp_mk_7_3, sp_mk_8_3},
    {0, sp_mk_1_4, sp_mk_2_4, sp_mk_3_4, sp_mk_4_4, sp_mk_5_4, sp_mk_6_4},
};

void sp_gemm_strided(int M, int N, int R, const float *A, ptrdiff_t sa, ptrdiff_t sr,
                     const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (R <= 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++)
                for (int n = 0; n < N; n++) C[(ptrdiff_t)i * ldc + n] = 0.0f;
        return;
    }
    for (int n0 = 0; n0 < N; n0 += 64) {
        const int w = N - n0 < 64 ? N - n0 : 64;
        const int nv = (w + 15) / 16;
        const int last = w - 16 * (nv - 1);
        const __mmask16 m = (__mmask16)(last == 16 ? 0xffffu : (1u << last) - 1u);
        const int mr = g_mr[nv];
        const float *Bp = B + n0;
        float *Cp = C + n0;
        int i0 = 0;
        for (; i0 + mr <= M; i0 += mr)
            g_mk[nv][mr](A + i0 * sa, sa, sr, Bp, ldb, R, Cp + i0 * ldc, ldc, accumulate, m);
        if (i0 < M)
            g_mk[nv][M - i0](A + i0 * sa, sa, sr, Bp, ldb, R, Cp + i0 * ldc, ldc, accumulate, m);
    }
}

int sp_gemm_strided_fast(void) { return 1; }

#else /* no AVX-512: plain loops (same contract) */

int sp_gemm_strided_fast(void) { return 0; }

void sp_gemm_strided(int M, int N, int R, const float *A, ptrdiff_t sa, ptrdiff_t sr,
                     const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int accumulate) {
    for (int i = 0; i < M; i++) {
        float *c = C + (ptrdiff_t)i * ldc;
        if (!accumulate)
            for (int n = 0; n < N; n++) c[n] = 0.0f;
        const float *a = A + (ptrdiff_t)i * sa;
        for (int r = 0; r < R; r++) {
            const float av = a[(ptrdiff_t)r * sr];
            const float *b = B + (ptrdiff_t)r * ldb;
            for (int n = 0; n < N; n++) c[n] += av * b[n];
        }
    }
}

#endif

void sp_overlap_add_rows(float *dst, ptrdiff_t step, const float *src, int rows, int width) {
    for (int t = 0; t < rows; t++) {
        float *d = dst + (ptrdiff_t)t * step;
        const float *s = src + (ptrdiff_t)t * width;
        for (int j = 0; j < width; j++) d[j] += s[j];
    }
}
