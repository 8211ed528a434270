/* enc_unit.c - building blocks shared by the cnn and resnet1d encoders: a
 * conv1d + optional split-BatchNorm unit and small parallel elementwise
 * helpers. Dimension letters: B batch, C in channels, O out channels, L in
 * length, Lo out length, S BN splits. No allocation; every function opens its
 * own OpenMP region (directly or through sp_layers.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_layers.h"

SpStatus enc_conv_declare(EncConvSpec *c, SpParams *p, const char *conv_name,
                          const char *bn_name, int C, int O, int K, int stride, int pad,
                          int bias, int bn, int S) {
    char n[SP_PARAM_NAME_MAX];
    memset(c, 0, sizeof *c);
    *c = (EncConvSpec){C, O, K, stride, pad, bias, bn, S, -1, -1, -1, -1, -1, -1};
    snprintf(n, sizeof n, "%s.weight", conv_name);
    if ((c->iw = sp_params_add_dims(p, n, SP_TENSOR_PARAM, 3, O, C, K)) < 0) goto fail;
    if (bias) {
        snprintf(n, sizeof n, "%s.bias", conv_name);
        if ((c->ib = sp_params_add_dims(p, n, SP_TENSOR_PARAM, 1, O)) < 0) goto fail;
    }
    if (bn) {
        snprintf(n, sizeof n, "%s.weight", bn_name);
        if ((c->ig = sp_params_add_dims(p, n, SP_TENSOR_PARAM, 1, O)) < 0) goto fail;
        snprintf(n, sizeof n, "%s.bias", bn_name);
        if ((c->ibeta = sp_params_add_dims(p, n, SP_TENSOR_PARAM, 1, O)) < 0) goto fail;
        snprintf(n, sizeof n, "%s.running_mean", bn_name);
        if ((c->irm = sp_params_add_dims(p, n, SP_TENSOR_BUFFER, 1, O)) < 0) goto fail;
        snprintf(n, sizeof n, "%s.running_var", bn_name);
        if ((c->irv = sp_params_add_dims(p, n, SP_TENSOR_BUFFER, 1, O)) < 0) goto fail;
    }
    return SP_OK;
fail:
    return sp_error_status();
}

void enc_conv_init(const EncConvSpec *c, SpParams *p, SpRng *rng) {
    if (c->bn) enc_fill_const(sp_params_data(p, c->irv), (size_t)c->O, 1.0f);
    if (!rng) return;
    double fan_in = (double)c->C * c->K;
    enc_fill_normal(sp_params_data(p, c->iw), p->t[c->iw].count, sqrt(2.0 / fan_in), rng);
    if (c->bias) enc_fill_uniform(sp_params_data(p, c->ib), (size_t)c->O, 1.0 / sqrt(fan_in), rng);
    if (c->bn) enc_fill_const(sp_params_data(p, c->ig), (size_t)c->O, 1.0f);
}

void enc_conv_layout(EncConvAct *a, EncArena *ar, const EncConvSpec *c, int B, int L, int grad) {
    a->cv = conv1d_shape(B, c->C, L, c->O, c->K, c->stride, c->pad);
    a->Lo = a->cv.Lo;
    size_t n = (size_t)B * c->O * a->Lo;
    a->conv_out = enc_take(ar, n);
    if (c->bn) {
        a->bn = (SpBatchNorm){B, c->O, a->Lo, c->S, 1e-5f, 0.1f};
        a->out = enc_take(ar, n);
        a->mean = enc_take(ar, (size_t)c->S * c->O);
        a->rstd = enc_take(ar, (size_t)c->S * c->O);
        a->dconv = enc_take(ar, grad ? n : 0);
    } else {
        a->out = a->conv_out;
        a->mean = a->rstd = a->dconv = NULL;
    }
}

size_t enc_conv_work_floats(const EncConvAct *a) {
    size_t w = conv1d_work_floats(&a->cv);
    if (a->out != a->conv_out) {
        size_t v = batchnorm_work_floats(&a->bn);
        if (v > w) w = v;
    }
    return w;
}

void enc_conv_forward(const EncConvSpec *c, EncConvAct *a, const SpParams *p, const float *in,
                      int B, int train, float *work) {
    a->cv.B = B;
    a->bn.N = B;
    conv1d_forward(a->conv_out, in, sp_params_data(p, c->iw),
                   c->bias ? sp_params_data(p, c->ib) : NULL, &a->cv, work);
    if (!c->bn) return;
    if (train)
        batchnorm_forward_train(a->out, a->mean, a->rstd, a->conv_out, sp_params_data(p, c->ig),
                                sp_params_data(p, c->ibeta), sp_params_data(p, c->irm),
                                sp_params_data(p, c->irv), &a->bn);
    else
        batchnorm_forward_eval(a->out, a->conv_out, sp_params_data(p, c->ig),
                               sp_params_data(p, c->ibeta), sp_params_data(p, c->irm),
                               sp_params_data(p, c->irv), &a->bn);
}

void enc_conv_backward(const EncConvSpec *c, EncConvAct *a, const SpParams *p, float *din,
                       const float *dout, const float *in, int B, int train, float *work) {
    a->cv.B = B;
    a->bn.N = B;
    const float *dconv = dout;
    if (c->bn) {
        enc_zero(a->dconv, B, (size_t)c->O * a->Lo);
        if (train)
            batchnorm_backward(a->dconv, sp_params_grad(p, c->ig), sp_params_grad(p, c->ibeta),
                               dout, a->conv_out, a->mean, a->rstd, sp_params_data(p, c->ig),
                               &a->bn, work);
        else
            batchnorm_backward_eval(a->dconv, sp_params_grad(p, c->ig),
                                    sp_params_grad(p, c->ibeta), dout, a->conv_out,
                                    sp_params_data(p, c->ig), sp_params_data(p, c->irm),
                                    sp_params_data(p, c->irv), &a->bn, work);
        dconv = a->dconv;
    }
    conv1d_backward(din, sp_params_grad(p, c->iw), c->bias ? sp_params_grad(p, c->ib) : NULL,
                    dconv, in, sp_params_data(p, c->iw), &a->cv, work);
}

void enc_zero(float *x, int B, size_t per) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) memset(x + (size_t)b * per, 0, per * sizeof(float));
}

void enc_relu_inplace(float *y, int B, size_t per) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *y_b = y + (size_t)b * per;
        for (size_t i = 0; i < per; i++)
            if (y_b[i] < 0.0f) y_b[i] = 0.0f; /* NaN passes through, as in PyTorch */
    }
}

void enc_relu_mask(float *d, const float *y, int B, size_t per) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *d_b = d + (size_t)b * per;
        const float *y_b = y + (size_t)b * per;
        for (size_t i = 0; i < per; i++)
            if (!(y_b[i] > 0.0f)) d_b[i] = 0.0f;
    }
}

/* Elementwise loops below this many floats run serially: an OpenMP region
 * costs more than the work (tiny shapes, oversubscribed cores). */
#define ENC_PAR_MIN 32768

void enc_add(float *out, const float *a, const float *b, int B, size_t per) {
#pragma omp parallel for schedule(static) if ((size_t)B * per >= ENC_PAR_MIN)
    for (int i = 0; i < B; i++) {
        const size_t o = (size_t)i * per;
        for (size_t j = 0; j < per; j++) out[o + j] = a[o + j] + b[o + j];
    }
}

void enc_patchify(float *xp, const float *x, int B, int L, int TP, int ln, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)B * TP >= ENC_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * L;
        float *y = xp + (size_t)b * TP;
        if (ln) {
            double m = 0.0, v = 0.0;
            for (int l = 0; l < L; l++) m += (double)xb[l];
            m /= L;
            for (int l = 0; l < L; l++) v += ((double)xb[l] - m) * ((double)xb[l] - m);
            const float mf = (float)m, r = (float)(1.0 / sqrt(v / L + (double)eps));
            for (int l = 0; l < L; l++) y[l] = (xb[l] - mf) * r;
        } else {
            memcpy(y, xb, (size_t)L * sizeof(float));
        }
        for (int l = L; l < TP; l++) y[l] = 0.0f;
    }
}

void enc_free_impl(SpEncoder *e) {
    free(e->impl);
    e->impl = NULL;
}
