/* enc_convsc_parts.c - ConvSC pieces shared by arch convsc and convsct
 * (see enc_convsc_parts.h). */
#include "enc_convsc_parts.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_layers.h"

#define BN_EPS 1e-5f
#define BN_MOM 0.1f
#define LN_EPS 1e-5f

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

double enc_convsc_macs(const ConvscDims *d, int L) {
    ConvscLens n = enc_convsc_lens(L);
    double C1 = d->C1, C3 = d->C3, T = d->T;
    return C1 * 5.0 * n.L1            /* conv1 */
           + C3 * C1 * 5.0 * n.L3     /* conv3 */
           + C3 * d->NB * T           /* embedding */
           + 4.0 * C3 * C3 * T        /* MHA in_proj (3) + out_proj (1) */
           + 2.0 * T * T * C3         /* scores + weighted values */
           + 2.0 * C3 * C3 * T        /* CAM: E and Att X */
           + C3 * T;                  /* dec_conv3 */
}

/* ------------------------------------------------ the attention part */
void enc_convsc_attn_layout(ConvscAttn *t, EncArena *ar, const ConvscDims *d, int B, int grad,
                            int nthreads) {
    const size_t BCT = (size_t)B * d->C3 * d->T;
    t->mha = (SpMHA){B, d->T, d->C3, d->H};
    t->ap = enc_take(ar, (size_t)B * d->C3 * d->NB);
    t->emb = enc_take(ar, BCT);
    t->X = enc_take(ar, BCT);
    t->Xt = enc_take(ar, BCT);
    t->cache = enc_take(ar, mha_cache_floats(&t->mha));
    t->Att = enc_take(ar, (size_t)B * d->C3 * d->C3);
    t->AX = enc_take(ar, BCT);
    t->Z = enc_take(ar, BCT);
    t->Y = enc_take(ar, BCT);
    t->At = enc_take(ar, BCT);
    t->lm1 = enc_take(ar, (size_t)B * d->C3);
    t->lr1 = enc_take(ar, (size_t)B * d->C3);
    t->lm2 = enc_take(ar, (size_t)B * d->C3);
    t->lr2 = enc_take(ar, (size_t)B * d->C3);
    t->dY = enc_take(ar, BCT);
    t->camacc = enc_take_double(ar, (size_t)d->T * nthreads);
    t->dap = t->demb = t->dX = t->dXt = t->dAt = t->dZ = NULL;
    t->dgam = NULL;
    if (!grad) return;
    t->dap = enc_take(ar, (size_t)B * d->C3 * d->NB);
    t->demb = enc_take(ar, BCT);
    t->dX = enc_take(ar, BCT);
    t->dXt = enc_take(ar, BCT);
    t->dAt = enc_take(ar, BCT);
    t->dZ = enc_take(ar, BCT);
    t->dgam = enc_take_double(ar, (size_t)B);
}

size_t enc_convsc_attn_work_floats(const ConvscAttn *t, const ConvscDims *d, int B) {
    size_t w = linear_work_floats(B * d->C3, d->NB, d->T), v;
    if ((v = layernorm_work_floats(B * d->C3, d->T)) > w) w = v;
    if ((v = mha_work_floats(&t->mha)) > w) w = v;
    return w;
}

void enc_convsc_attn_forward(ConvscAttn *t, const SpParams *p, const int *ix, const ConvscDims *d,
                             const float *p3, int B, int L4, float *work) {
    const int C3 = d->C3, T = d->T;
    t->mha.B = B;
#define D(k) sp_params_data(p, ix[k])
    /* adaptive pool -> embedding Linear -> LN: X (B*C3, T) */
    adaptive_avgpool1d_forward(t->ap, p3, B * C3, L4, d->NB);
    linear_forward(t->emb, t->ap, D(T_EMW), D(T_EMB), B * C3, d->NB, T);
    layernorm_forward(t->X, t->lm1, t->lr1, t->emb, D(T_LN1W), D(T_LN1B), B * C3, T, LN_EPS);

    /* spatial attention over the T tokens (token-major) */
    enc_transpose_bcl(t->Xt, t->X, B, C3, T);
    mha_forward(t->At, t->cache, t->Xt, D(T_INW), D(T_INB), D(T_OUTW), D(T_OUTB), &t->mha, work);
    /* A_S back to channel-major into dY (free until backward) */
    enc_transpose_bcl(t->dY, t->At, B, T, C3);

    /* CAM + fusion */
    const float gamma = D(T_GAM)[0];
#pragma omp parallel
    {
        double *acc = t->camacc + (size_t)T * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            size_t o = (size_t)b * C3 * T;
            enc_cam_fuse_sample(t->Z + o, t->Att + (size_t)b * C3 * C3, t->AX + o, t->X + o,
                                t->dY + o, gamma, C3, T, acc);
        }
    }
    layernorm_forward(t->Y, t->lm2, t->lr2, t->Z, D(T_LN2W), D(T_LN2B), B * C3, T, LN_EPS);
#undef D
}

void enc_convsc_attn_backward(ConvscAttn *t, const SpParams *p, const int *ix,
                              const ConvscDims *d, float *dp3, int B, int L4, float *work) {
    const int C3 = d->C3, T = d->T;
    const size_t CT = (size_t)C3 * T;
    t->mha.B = B;
#define D(k) sp_params_data(p, ix[k])
#define G(k) sp_params_grad(p, ix[k])
    /* LN2 */
    enc_zero(t->dZ, B, CT);
    layernorm_backward(t->dZ, G(T_LN2W), G(T_LN2B), t->dY, t->Z, t->lm2, t->lr2, D(T_LN2W),
                       B * C3, T, work);

    /* CAM + fusion: dX from the X terms and the channel attention */
    enc_zero(t->dX, B, CT);
    const float gamma = D(T_GAM)[0];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * CT;
        t->dgam[b] = enc_cam_backward_sample(t->dX + o, t->dZ + o, t->X + o,
                                             t->Att + (size_t)b * C3 * C3, t->AX + o, gamma, C3,
                                             T);
    }
    double dg = 0.0;
    for (int b = 0; b < B; b++) dg += t->dgam[b];
    G(T_GAM)[0] += (float)dg;

    /* MHA: dA_S = dZ (token-major) */
    enc_transpose_bcl(t->dAt, t->dZ, B, C3, T);
    enc_zero(t->dXt, B, CT);
    mha_backward(t->dXt, G(T_INW), G(T_INB), G(T_OUTW), G(T_OUTB), t->dAt, t->Xt, t->cache,
                 D(T_INW), D(T_OUTW), &t->mha, work);
    enc_transpose_bcl_add(t->dX, t->dXt, B, T, C3);

    /* LN1 -> embedding Linear -> adaptive pool */
    enc_zero(t->demb, B, CT);
    layernorm_backward(t->demb, G(T_LN1W), G(T_LN1B), t->dX, t->emb, t->lm1, t->lr1, D(T_LN1W),
                       B * C3, T, work);
    enc_zero(t->dap, B, (size_t)C3 * d->NB);
    linear_backward(t->dap, G(T_EMW), G(T_EMB), t->demb, t->ap, D(T_EMW), B * C3, d->NB, T,
                    work);
    enc_zero(dp3, B, (size_t)C3 * L4);
    adaptive_avgpool1d_backward(dp3, t->dap, B * C3, L4, d->NB);
#undef D
#undef G
}

/* --------------------------------------------------------- the output */
void enc_convsc_dec_layout(ConvscDec *t, EncArena *ar, const ConvscDims *d, int B, int grad) {
    const size_t BT = (size_t)B * d->T;
    t->cvd = conv1d_shape(B, d->C3, d->T, 1, 1, 1, 0);
    t->bn4 = (SpBatchNorm){B, 1, d->T, d->S, BN_EPS, BN_MOM};
    t->dc = enc_take(ar, BT);
    t->h = enc_take(ar, BT);
    t->m4 = enc_take(ar, (size_t)d->S);
    t->r4 = enc_take(ar, (size_t)d->S);
    t->ddc = grad ? enc_take(ar, BT) : NULL;
    t->dh = grad ? enc_take(ar, BT) : NULL;
}

size_t enc_convsc_dec_work_floats(const ConvscDec *t) {
    size_t w = conv1d_work_floats(&t->cvd), v = batchnorm_work_floats(&t->bn4);
    return v > w ? v : w;
}

void enc_convsc_dec_forward(ConvscDec *t, const SpParams *p, const int *ix, const float *Y,
                            int B, int train, float *feat, float *work) {
    t->cvd.B = B;
    t->bn4.N = B;
#define D(k) sp_params_data(p, ix[k])
    conv1d_forward(t->dc, Y, D(T_DCW), D(T_DCB), &t->cvd, work);
    if (train)
        batchnorm_forward_train(t->h, t->m4, t->r4, t->dc, D(T_BN4W), D(T_BN4B), D(T_BN4RM),
                                D(T_BN4RV), &t->bn4);
    else
        batchnorm_forward_eval(t->h, t->dc, D(T_BN4W), D(T_BN4B), D(T_BN4RM), D(T_BN4RV),
                               &t->bn4);
    enc_relu_inplace(t->h, B, (size_t)t->bn4.L);
    memcpy(feat, t->h, (size_t)B * t->bn4.L * sizeof(float));
#undef D
}

void enc_convsc_dec_backward(ConvscDec *t, const SpParams *p, const int *ix, const float *dfeat,
                             const float *Y, float *dY, int B, int train, float *work) {
    const int T = t->bn4.L;
    t->cvd.B = B;
    t->bn4.N = B;
#define D(k) sp_params_data(p, ix[k])
#define G(k) sp_params_grad(p, ix[k])
    /* ReLU -> BN(1) -> dec_conv3 */
    memcpy(t->dh, dfeat, (size_t)B * T * sizeof(float));
    enc_relu_mask(t->dh, t->h, B, (size_t)T);
    enc_zero(t->ddc, B, (size_t)T);
    if (train)
        batchnorm_backward(t->ddc, G(T_BN4W), G(T_BN4B), t->dh, t->dc, t->m4, t->r4, D(T_BN4W),
                           &t->bn4, work);
    else
        batchnorm_backward_eval(t->ddc, G(T_BN4W), G(T_BN4B), t->dh, t->dc, D(T_BN4W),
                                D(T_BN4RM), D(T_BN4RV), &t->bn4, work);
    enc_zero(dY, B, (size_t)t->cvd.C * T);
    conv1d_backward(dY, G(T_DCW), G(T_DCB), t->ddc, Y, D(T_DCW), &t->cvd, work);
#undef D
#undef G
}
