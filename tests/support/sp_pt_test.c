/* sp_pt_test.c - see sp_pt_test.h. */
#include "sp_pt_test.h"

#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_config.h"
#include "sp_data.h"
#include "sp_encoder.h"
#include "sp_error.h"
#include "sp_h5.h"
#include "sp_linear_eval.h"
#include "sp_pretext.h"
#include "sp_augment.h"
#include "sp_rng.h"

void spt_register_all(void) {
    linear_eval_config_register();
    sp_core_config_register();
    data_config_register();
    augment_config_register();
    encoder_config_register();
    pretext_config_register();
}

void spt_make_data(float *x, int32_t *lab, int32_t *ext, int N, int L) {
    SpRng r;
    sp_rng_stream(&r, 42, 0, 0, 0);
    for (int i = 0; i < N; i++) {
        lab[i] = i % 2;
        ext[i] = (i / 2) % 3;
        double c = lab[i] ? 0.7 * L : 0.3 * L, w = 2.0 + sp_rng_uniform(&r, 0, 2);
        double a = sp_rng_uniform(&r, 0.5, 1.5);
        for (int t = 0; t < L; t++)
            x[(size_t)i * L + t] =
                (float)(a * exp(-0.5 * (t - c) * (t - c) / (w * w)) + 0.05 * sp_rng_normal(&r) +
                        0.1 * ext[i]);
    }
}

void spt_write_data(const char *path, int N, int L) {
    float *x = malloc((size_t)N * L * sizeof(float));
    int32_t *lab = malloc((size_t)N * sizeof(int32_t)), *ext = malloc((size_t)N * sizeof(int32_t));
    ck_assert(x && lab && ext);
    spt_make_data(x, lab, ext, N, L);
    SpDatasetOut d = {0};
    d.x = x;
    d.n = N;
    d.L = L;
    d.labels = lab;
    d.extvar = ext;
    ck_assert_msg(dataset_write(path, &d) == SP_OK, "%s", sp_error_message());
    free(x);
    free(lab);
    free(ext);
}

typedef struct {
    hid_t fb;
    const char *pa, *pb;
    int exact;
    double rtol, atol;
    int ndsets, bad;
    double worst;   /* largest error / allowance seen */
    char msg[640];
} CmpCtx;

static herr_t cmp_visit(hid_t obj, const char *name, const H5O_info_t *info, void *op) {
    CmpCtx *c = op;
    if (info->type != H5O_TYPE_DATASET || c->bad) return 0;
    hid_t da = H5Dopen2(obj, name, H5P_DEFAULT);
    hid_t db = H5Dopen2(c->fb, name, H5P_DEFAULT);
    if (db < 0) {
        snprintf(c->msg, sizeof c->msg, "dataset '%s' missing in %s", name, c->pb);
        c->bad = 1;
        H5Dclose(da);
        return 0;
    }
    hid_t ta = H5Dget_type(da);
    hid_t sa = H5Dget_space(da), sb = H5Dget_space(db);
    hssize_t na = H5Sget_simple_extent_npoints(sa), nb = H5Sget_simple_extent_npoints(sb);
    size_t es = H5Tget_size(ta);
    int is_float = H5Tget_class(ta) == H5T_FLOAT;
    if (na != nb) {
        snprintf(c->msg, sizeof c->msg, "dataset '%s': %lld vs %lld elements", name,
                 (long long)na, (long long)nb);
        c->bad = 1;
    } else if (c->exact || !is_float) {
        char *ba = malloc((size_t)na * es + 1), *bb = malloc((size_t)na * es + 1);
        H5Dread(da, ta, H5S_ALL, H5S_ALL, H5P_DEFAULT, ba);
        H5Dread(db, ta, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb);
        if (memcmp(ba, bb, (size_t)na * es) != 0) {
            snprintf(c->msg, sizeof c->msg, "dataset '%s' differs between %s and %s", name,
                     c->pa, c->pb);
            c->bad = 1;
        }
        free(ba);
        free(bb);
    } else {
        double *xa = malloc((size_t)na * sizeof(double) + 8);
        double *xb = malloc((size_t)na * sizeof(double) + 8);
        H5Dread(da, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, xa);
        H5Dread(db, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, xb);
        double mx = 0.0;
        for (hssize_t i = 0; i < na; i++) mx = fmax(mx, fabs(xa[i]));
        const double allow = c->atol + c->rtol * mx;
        for (hssize_t i = 0; i < na && !c->bad; i++) {
            double e = fabs(xa[i] - xb[i]);
            if (e / allow > c->worst) c->worst = e / allow;
            if (!(e <= allow)) {
                snprintf(c->msg, sizeof c->msg,
                         "dataset '%s'[%lld]: %.9g (%s) vs %.9g (%s), |err| %.3g > %.3g "
                         "(%g + %g max|x|)",
                         name, (long long)i, xa[i], c->pa, xb[i], c->pb, e, allow, c->atol,
                         c->rtol);
                c->bad = 1;
            }
        }
        free(xa);
        free(xb);
    }
    c->ndsets++;
    H5Sclose(sa);
    H5Sclose(sb);
    H5Tclose(ta);
    H5Dclose(da);
    H5Dclose(db);
    return 0;
}

int spt_cmp_files(const char *a, const char *b, int exact, double rtol, double atol,
                  int min_dsets, char *msg, size_t n, double *worst) {
    hid_t fa = -1, fb = -1;
    if (sp_h5_open_read(a, &fa) != SP_OK || sp_h5_open_read(b, &fb) != SP_OK) {
        snprintf(msg, n, "cannot open %s or %s: %s", a, b, sp_error_message());
        if (fa >= 0) sp_h5_close(fa);
        return 1;
    }
    CmpCtx c = {fb, a, b, exact, rtol, atol, 0, 0, 0.0, ""};
#if H5_VERSION_GE(1, 12, 0)
    H5Ovisit3(fa, H5_INDEX_NAME, H5_ITER_NATIVE, cmp_visit, &c, H5O_INFO_BASIC);
#else
    H5Ovisit2(fa, H5_INDEX_NAME, H5_ITER_NATIVE, cmp_visit, &c, H5O_INFO_BASIC);
#endif
    sp_h5_close(fa);
    sp_h5_close(fb);
    if (worst) *worst = c.worst;
    if (!c.bad && c.ndsets < min_dsets) {
        snprintf(c.msg, sizeof c.msg, "only %d datasets compared in %s", c.ndsets, a);
        c.bad = 1;
    }
    snprintf(msg, n, "%s", c.msg);
    return c.bad;
}
