/* enc_convsc_parts.c - ConvSC pieces shared by arch convsc and convsct
 * (see enc_convsc_parts.h). */
#include "enc_convsc_parts.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_layers.h"

SpStatus enc_convsc_dims(ConvscDims *d, const SpConfig *cfg, const char *arch) {
    char k[96];
#define KEY(name) (snprintf(k, sizeof k, "encoder.%s." name, arch), k)
    memset(d, 0, sizeof *d);
    d->C1 = (int)sp_cfg_int(cfg, KEY("conv1_channels"));
    d->C3 = (int)sp_cfg_int(cfg, KEY("conv3_channels"));
    d->NB = (int)sp_cfg_int(cfg, KEY("bins"));
    d->T = (int)sp_cfg_int(cfg, KEY("embed_dim"));
    d->H = (int)sp_cfg_int(cfg, KEY("heads"));
    d->S = (int)sp_cfg_int(cfg, KEY("bn_splits"));
    d->gamma_one = strcmp(sp_cfg_str(cfg, KEY("bn_gamma_init")), "one") == 0;
#undef KEY
    if (d->C3 % d->H != 0)
        SP_FAIL(SP_ECONFIG,
                "encoder.%s.heads = %d does not divide encoder.%s.conv3_channels = %d "
                "(the attention embedding width)", arch, d->H, arch, d->C3);
    return SP_OK;
}

SpStatus enc_convsc_declare(int *ix, SpParams *p, const ConvscDims *d) {
    const SpTensorKind P = SP_TENSOR_PARAM, BF = SP_TENSOR_BUFFER;
    ix[T_C1W] = sp_params_add_dims(p, "conv1.0.weight", P, 3, d->C1, 1, 5);
    ix[T_C1B] = sp_params_add_dims(p, "conv1.0.bias", P, 1, d->C1);
    ix[T_BN1W] = sp_params_add_dims(p, "conv1.1.weight", P, 1, d->C1);
    ix[T_BN1B] = sp_params_add_dims(p, "conv1.1.bias", P, 1, d->C1);
    ix[T_BN1RM] = sp_params_add_dims(p, "conv1.1.running_mean", BF, 1, d->C1);
    ix[T_BN1RV] = sp_params_add_dims(p, "conv1.1.running_var", BF, 1, d->C1);
    ix[T_BN1NB] = sp_params_add_dims(p, "conv1.1.num_batches_tracked", BF, 0);
    ix[T_C3W] = sp_params_add_dims(p, "conv3.0.weight", P, 3, d->C3, d->C1, 5);
    ix[T_C3B] = sp_params_add_dims(p, "conv3.0.bias", P, 1, d->C3);
    ix[T_BN3W] = sp_params_add_dims(p, "conv3.1.weight", P, 1, d->C3);
    ix[T_BN3B] = sp_params_add_dims(p, "conv3.1.bias", P, 1, d->C3);
    ix[T_BN3RM] = sp_params_add_dims(p, "conv3.1.running_mean", BF, 1, d->C3);
    ix[T_BN3RV] = sp_params_add_dims(p, "conv3.1.running_var", BF, 1, d->C3);
    ix[T_BN3NB] = sp_params_add_dims(p, "conv3.1.num_batches_tracked", BF, 0);
    ix[T_DCW] = sp_params_add_dims(p, "dec_conv3.0.weight", P, 3, 1, d->C3, 1);
    ix[T_DCB] = sp_params_add_dims(p, "dec_conv3.0.bias", P, 1, 1);
    ix[T_BN4W] = sp_params_add_dims(p, "dec_conv3.1.weight", P, 1, 1);
    ix[T_BN4B] = sp_params_add_dims(p, "dec_conv3.1.bias", P, 1, 1);
    ix[T_BN4RM] = sp_params_add_dims(p, "dec_conv3.1.running_mean", BF, 1, 1);
    ix[T_BN4RV] = sp_params_add_dims(p, "dec_conv3.1.running_var", BF, 1, 1);
    ix[T_BN4NB] = sp_params_add_dims(p, "dec_conv3.1.num_batches_tracked", BF, 0);
    ix[T_EMW] = sp_params_add_dims(p, "embeding.0.weight", P, 2, d->T, d->NB);
    ix[T_EMB] = sp_params_add_dims(p, "embeding.0.bias", P, 1, d->T);
    ix[T_LN1W] = sp_params_add_dims(p, "embeding.1.weight", P, 1, d->T);
    ix[T_LN1B] = sp_params_add_dims(p, "embeding.1.bias", P, 1, d->T);
    ix[T_INW] = sp_params_add_dims(p, "MultiHeadAttention.in_proj_weight", P, 2, 3 * d->C3, d->C3);
    ix[T_INB] = sp_params_add_dims(p, "MultiHeadAttention.in_proj_bias", P, 1, 3 * d->C3);
    ix[T_OUTW] = sp_params_add_dims(p, "MultiHeadAttention.out_proj.weight", P, 2, d->C3, d->C3);
    ix[T_OUTB] = sp_params_add_dims(p, "MultiHeadAttention.out_proj.bias", P, 1, d->C3);
    ix[T_GAM] = sp_params_add_dims(p, "C_Attention_F.gamma", P, 1, 1);
    ix[T_LN2W] = sp_params_add_dims(p, "LayerNorm.weight", P, 1, d->T);
    ix[T_LN2B] = sp_params_add_dims(p, "LayerNorm.bias", P, 1, d->T);
    for (int i = 0; i < T_CONVSC_COUNT; i++)
        if (ix[i] < 0) return sp_error_status();
    return SP_OK;
}

void enc_convsc_init(SpParams *p, const int *ix, const ConvscDims *d, SpRng *rng) {
#define D(k) sp_params_data(p, ix[k])
#define N(k) p->t[ix[k]].count
    enc_fill_const(D(T_BN1RV), N(T_BN1RV), 1.0f);
    enc_fill_const(D(T_BN3RV), N(T_BN3RV), 1.0f);
    enc_fill_const(D(T_BN4RV), N(T_BN4RV), 1.0f);
    if (!rng) return; /* the caller loads values */
    enc_fill_const(D(T_LN1W), N(T_LN1W), 1.0f);
    enc_fill_const(D(T_LN2W), N(T_LN2W), 1.0f);
    /* Reference §3.8, drawn in table order. */
    enc_fill_normal(D(T_C1W), N(T_C1W), 0.05, rng);
    enc_fill_uniform(D(T_C1B), N(T_C1B), 1.0 / sqrt(5.0), rng);
    if (d->gamma_one) enc_fill_const(D(T_BN1W), N(T_BN1W), 1.0f);
    else enc_fill_normal(D(T_BN1W), N(T_BN1W), 0.05, rng);
    enc_fill_normal(D(T_C3W), N(T_C3W), 0.05, rng);
    enc_fill_uniform(D(T_C3B), N(T_C3B), 1.0 / sqrt(5.0 * d->C1), rng);
    if (d->gamma_one) enc_fill_const(D(T_BN3W), N(T_BN3W), 1.0f);
    else enc_fill_normal(D(T_BN3W), N(T_BN3W), 0.05, rng);
    enc_fill_normal(D(T_DCW), N(T_DCW), 0.05, rng);
    enc_fill_uniform(D(T_DCB), N(T_DCB), 1.0 / sqrt((double)d->C3), rng);
    if (d->gamma_one) enc_fill_const(D(T_BN4W), N(T_BN4W), 1.0f);
    else enc_fill_normal(D(T_BN4W), N(T_BN4W), 0.05, rng);
    enc_fill_normal(D(T_EMW), N(T_EMW), 0.05, rng);
    enc_fill_uniform(D(T_EMB), N(T_EMB), 1.0 / sqrt((double)d->NB), rng);
    enc_fill_uniform(D(T_INW), N(T_INW), sqrt(6.0 / (4.0 * d->C3)), rng); /* Xavier (3E, E) */
    enc_fill_normal(D(T_OUTW), N(T_OUTW), 0.05, rng);
    /* in_proj / out_proj biases, BN betas, LN betas, CAM gamma, running means: 0. */
#undef D
#undef N
}

ConvscLens enc_convsc_lens(int L) {
    ConvscLens n;
    n.L1 = conv1d_out_len(L, 5, 2, 0);
    n.L2 = n.L1 > 0 ? n.L1 / 2 : 0;
    n.L3 = n.L2 >= 5 ? n.L2 - 4 : 0;
    n.L4 = n.L3 / 2;
    return n;
}

int enc_convsc_length_ok(int L) {
    if (L < 5) return 0;
    ConvscLens n = enc_convsc_lens(L);
    return n.L1 >= 1 && n.L2 >= 1 && n.L3 >= 1 && n.L4 >= 1;
}

/* sum_t a[t] b[t] in double, 8 lanes (fixed order; vectorisable). */
static inline double dot_d(const float *a, const float *b, int n) {
    double l[8] = {0};
    int t = 0;
    for (; t + 8 <= n; t += 8)
        for (int k = 0; k < 8; k++) l[k] += (double)a[t + k] * (double)b[t + k];
    double acc = 0.0;
    for (; t < n; t++) acc += (double)a[t] * (double)b[t];
    for (int k = 0; k < 8; k++) acc += l[k];
    return acc;
}

/* CAM + fusion, one sample. X, As (C, T); Att (C, C); AX, Z (C, T).
 * E and Att X are accumulated in double (C*C*T terms: about 1 % of the work).
 * acc: T doubles of scratch. */
void enc_cam_fuse_sample(float *Z, float *Att, float *AX, const float *X, const float *As,
                         float gamma, int C, int T, double *acc) {
    double er[CAM_MAX_C];
    for (int i = 0; i < C; i++) {
        const float *xi = X + (size_t)i * T;
        double emin = 0.0;
        for (int j = 0; j < C; j++) {
            double e = dot_d(xi, X + (size_t)j * T, T);
            er[j] = e;
            if (j == 0 || e < emin) emin = e;
        }
        /* softmax(-E) over the row with the max shift: exp(-(E - min E)) */
        double sum = 0.0;
        for (int j = 0; j < C; j++) {
            er[j] = exp(-(er[j] - emin));
            sum += er[j];
        }
        for (int j = 0; j < C; j++) Att[(size_t)i * C + j] = (float)(er[j] / sum);
    }
    for (int i = 0; i < C; i++) {
        float *axi = AX + (size_t)i * T;
        const float *ai = Att + (size_t)i * C;
        for (int t = 0; t < T; t++) acc[t] = 0.0;
        for (int j = 0; j < C; j++) {
            const double a = ai[j];
            const float *xj = X + (size_t)j * T;
            for (int t = 0; t < T; t++) acc[t] += a * (double)xj[t];
        }
        for (int t = 0; t < T; t++) axi[t] = (float)acc[t];
        const float *xi = X + (size_t)i * T, *asi = As + (size_t)i * T;
        float *zi = Z + (size_t)i * T;
        for (int t = 0; t < T; t++) zi[t] = (xi[t] + asi[t]) + (gamma * axi[t] + xi[t]);
    }
}

/* CAM backward, one sample. dZ (C,T) -> dX += ..., returns dgamma.
 * Z = 2X + A_S + gamma AX, AX = Att X, Att = softmax_row(-E), E = X X^T. */
double enc_cam_backward_sample(float *dX, const float *dZ, const float *X, const float *Att,
                               const float *AX, float gamma, int C, int T) {
    const double dg = dot_d(dZ, AX, C * T);
    for (size_t i = 0; i < (size_t)C * T; i++) dX[i] += 2.0f * dZ[i];
    if (gamma == 0.0f) return dg; /* dAX = 0: nothing flows through Att */
    double datt[CAM_MAX_C];
    for (int i = 0; i < C; i++) {
        const float *dzi = dZ + (size_t)i * T;
        const float *ai = Att + (size_t)i * C;
        const float *xi = X + (size_t)i * T;
        float *dxi = dX + (size_t)i * T;
        /* dAtt_ij = gamma * sum_t dZ_it X_jt */
        double dot = 0.0;
        for (int j = 0; j < C; j++) {
            datt[j] = (double)gamma * dot_d(dzi, X + (size_t)j * T, T);
            dot += datt[j] * (double)ai[j];
        }
        for (int j = 0; j < C; j++) {
            /* through AX = Att X: dX_j += gamma Att_ij dZ_i */
            float w = gamma * ai[j];
            /* through the softmax of -E: dE_ij = -Att_ij (dAtt_ij - dot);
             * E_ij = x_i . x_j: dx_i += dE_ij x_j, dx_j += dE_ij x_i */
            float de = (float)(-(double)ai[j] * (datt[j] - dot));
            const float *xj = X + (size_t)j * T;
            float *dxj = dX + (size_t)j * T;
            for (int t = 0; t < T; t++) dxj[t] += w * dzi[t] + de * xi[t];
            for (int t = 0; t < T; t++) dxi[t] += de * xj[t];
        }
    }
    return dg;
}
