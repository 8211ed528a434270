/* sp_enc_test.c - helpers shared by the encoder tests (see sp_enc_test.h). */
#include "sp_enc_test.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "sp_encoder.h"
#include "sp_test.h"

SpConfig *sp_enc_cfg(const char *const *sets) {
    sp_core_config_register();
    encoder_config_register();
    int n = 0;
    while (sets && sets[n]) n++;
    SpConfig *c = NULL;
    SpStatus rc = sp_config_load(&c, NULL, sets, n);
    ck_assert_msg(rc == SP_OK, "config: %s", sp_error_message());
    return c;
}

void sp_fill_spectra(float *x, int B, int L, unsigned long long seed) {
    sp_fill_uniform_f(x, (size_t)B * L, seed, -0.3, 0.3);
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            double c = 0.3 * L + 0.1 * b * L, d = (l - c) / (0.08 * L);
            x[(size_t)b * L + l] += (float)(1.5 * exp(-0.5 * d * d));
        }
}

void sp_expect_create_error(const char *const *sets, const char *needle) {
    sp_core_config_register();
    encoder_config_register();
    int n = 0;
    while (sets[n]) n++;
    SpConfig *c = NULL;
    SpStatus rc = sp_config_load(&c, NULL, sets, n);
    if (rc == SP_OK) {
        SpEncoder *e = (SpEncoder *)0x1;
        rc = encoder_create(&e, c, NULL);
        ck_assert_ptr_null(e);
    }
    ck_assert_msg(rc == SP_ECONFIG, "expected SP_ECONFIG, got %d (%s)", rc, sp_error_message());
    sp_expect_error_msg(needle);
    sp_config_free(c);
}
