/* sp_enc_test.h - helpers shared by the encoder tests (test_encoder,
 * test_baselines). */
#ifndef SP_ENC_TEST_H
#define SP_ENC_TEST_H

#include "sp_config.h"

/* Defaults of core + encoder keys with the NULL-terminated `key=value` sets
 * applied (sets may be NULL); Check-asserts the load. Free with sp_config_free. */
SpConfig *sp_enc_cfg(const char *const *sets);

/* x (B, L): smooth peaks (one per sample, at 0.3 L + 0.1 b L) plus uniform
 * noise in [-0.3, 0.3), so BN statistics are not degenerate. */
void sp_fill_spectra(float *x, int B, int L, unsigned long long seed);

/* Loading the sets or creating the encoder fails with SP_ECONFIG, no encoder
 * is returned, and the message names needle. */
void sp_expect_create_error(const char *const *sets, const char *needle);

#endif
