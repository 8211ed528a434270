/* sp_pt_test.h - helpers shared by the pretraining tests (test_pretrain,
 * test_mpi): config registration, the tiny two-class data set and HDF5
 * file comparison. */
#ifndef SP_PT_TEST_H
#define SP_PT_TEST_H

#include <stddef.h>
#include <stdint.h>

/* Register every module's config keys (the CLI stores all of them). */
void spt_register_all(void);

/* The tiny data set in memory: x (N, L), lab (N), ext (N); see spt_write_data. */
void spt_make_data(float *x, int32_t *lab, int32_t *ext, int N, int L);

/* Tiny data at path: N spectra of length L, two classes of smooth peaks at
 * 0.3 L and 0.7 L (/labels i % 2), 3 extvar bins (/extvar (i / 2) % 3),
 * noise from a fixed PCG64 stream. Check-asserts the write. */
void spt_write_data(const char *path, int N, int L);

/* 0 when every dataset of file a is in file b with the same size and equal
 * values: byte for byte when exact (or for non-float data), otherwise within
 * atol + rtol * max|a| per dataset. Otherwise 1 with the reason in msg; also
 * 1 when fewer than min_dsets datasets were compared. worst (may be NULL):
 * the largest |error| / allowance seen (0 when exact). */
int spt_cmp_files(const char *a, const char *b, int exact, double rtol, double atol,
                  int min_dsets, char *msg, size_t n, double *worst);

#endif
