/* sp_test.h - helpers shared by the Check tests. */
#ifndef SP_TEST_H
#define SP_TEST_H

#include <check.h>
#include <stddef.h>

/* |got - ref| <= atol + rtol*|ref| for every element; failure names the
 * tensor, index, both values and the error (STYLE.md 5.3). */
void sp_expect_close_f(const char *name, const float *got, const float *ref, size_t n,
                       double rtol, double atol);
void sp_expect_close_d(const char *name, const float *got, const double *ref, size_t n,
                       double rtol, double atol);
void sp_expect_close_dd(const char *name, const double *got, const double *ref, size_t n,
                        double rtol, double atol);
/* Gradient-check error: |a-n| / (|a|+|n|), 0 when both are 0. */
double sp_rel_err(double a, double n);
double sp_max_abs_d(const double *x, size_t n);
double sp_max_abs_f(const float *x, size_t n);

/* Fill with reproducible values in [lo, hi) from a PCG64 stream keyed by seed. */
void sp_fill_uniform_f(float *x, size_t n, unsigned long long seed, double lo, double hi);
void sp_fill_uniform_d(double *x, size_t n, unsigned long long seed, double lo, double hi);

/* Path of a fixture: SP_FIXTURES_DIR "/" name (static buffer, rotating 4). */
const char *sp_fixture(const char *name);
/* A fresh temporary directory for this test (removed by sp_tmpdir_cleanup). */
const char *sp_tmpdir(void);
void sp_tmpdir_cleanup(void);
/* sp_tmpdir() "/" name (static buffer, rotating 4). */
const char *sp_tmp_path(const char *name);
/* 1 if path exists (stat succeeds), else 0. */
int sp_file_exists(const char *path);
/* Check-assert that the last error message (sp_error_message) contains needle. */
void sp_expect_error_msg(const char *needle);
/* Run the specssl CLI with argv (NULL-terminated), capture stdout+stderr into
 * out (up to n bytes). Returns the exit status (or 128+signal). */
int sp_run_cli(char *out, size_t n, const char *const *argv);

/* Run a suite the standard way; returns EXIT_SUCCESS/EXIT_FAILURE. Silences
 * the library log unless SPECSSL_TEST_LOG is set. */
int sp_run_suite(Suite *s);

#endif
