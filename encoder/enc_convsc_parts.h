/* enc_convsc_parts.h - the pieces of the ConvSC encoder (reference §3) that
 * arch convsc (enc_convsc.c) and arch convsct (enc_convsct.c, ConvSC plus a
 * feed-forward block) share; internal to encoder/.
 *
 * Dimension letters as in enc_convsc.c: C conv3 channels (attention
 * embedding width), T tokens. No allocation; safe inside an OpenMP region
 * (per-sample functions) unless said otherwise.
 */
#ifndef ENC_CONVSC_PARTS_H
#define ENC_CONVSC_PARTS_H

#include <stddef.h>

#include "enc_arch.h"
#include "sp_config.h"
#include "sp_layers.h"
#include "sp_params.h"
#include "sp_rng.h"

#define CAM_MAX_C 512   /* channel-attention rows kept on the stack */

/* ConvSC tensor indices, in manifest order (reference §3.7); convsct appends
 * its block's after T_CONVSC_COUNT. */
enum {
    T_C1W, T_C1B, T_BN1W, T_BN1B, T_BN1RM, T_BN1RV, T_BN1NB,
    T_C3W, T_C3B, T_BN3W, T_BN3B, T_BN3RM, T_BN3RV, T_BN3NB,
    T_DCW, T_DCB, T_BN4W, T_BN4B, T_BN4RM, T_BN4RV, T_BN4NB,
    T_EMW, T_EMB, T_LN1W, T_LN1B,
    T_INW, T_INB, T_OUTW, T_OUTB,
    T_GAM, T_LN2W, T_LN2B,
    T_CONVSC_COUNT
};

/* Sizes from encoder.<arch>.*: conv1 / conv3 channels, adaptive-pool bins,
 * embedding width = tokens, heads, BN splits, BN weight init. */
typedef struct {
    int C1, C3, NB, T, H, S;
    int gamma_one;
} ConvscDims;

/* Read encoder.<arch>.{conv1_channels, conv3_channels, bins, embed_dim,
 * heads, bn_splits, bn_gamma_init} (arch "convsc" or "convsct"); SP_ECONFIG
 * when heads does not divide conv3_channels. */
SpStatus enc_convsc_dims(ConvscDims *d, const SpConfig *cfg, const char *arch);

/* Declare the ConvSC tensors (reference names) into ix[0, T_CONVSC_COUNT). */
SpStatus enc_convsc_declare(int *ix, SpParams *p, const ConvscDims *d);

/* Reference §3.8 init of the ConvSC tensors, drawn in table order; running
 * variances 1 also without rng (the caller loads values). */
void enc_convsc_init(SpParams *p, const int *ix, const ConvscDims *d, SpRng *rng);

/* Lengths after conv1 (k5, s2), pool 2, conv3 (k5), pool 2. */
typedef struct {
    int L1, L2, L3, L4;
} ConvscLens;

ConvscLens enc_convsc_lens(int L);
/* Every length >= 1 (the stem works on L points). */
int enc_convsc_length_ok(int L);
/* Multiply-adds of one ConvSC forward on L points (integers: exact in double). */
double enc_convsc_macs(const ConvscDims *d, int L);

/* CAM + fusion, one sample. X, As (C, T); Att (C, C); AX, Z (C, T):
 * E = X X^T, Att = softmax_row(-E), AX = Att X, Z = (X + As) + (gamma AX + X).
 * E and Att X are accumulated in double (C*C*T terms: about 1 % of the work).
 * acc: T doubles of scratch. C <= CAM_MAX_C. */
void enc_cam_fuse_sample(float *Z, float *Att, float *AX, const float *X, const float *As,
                         float gamma, int C, int T, double *acc);

/* CAM backward, one sample. dZ (C,T) -> dX += ..., returns dgamma. */
double enc_cam_backward_sample(float *dX, const float *dZ, const float *X, const float *Att,
                               const float *AX, float gamma, int C, int T);

/* ------------------------------------------------ the attention part */
/* p3 (B, C3, L4) -> adaptive avg pool NB -> Linear(NB -> T) -> LN(T): X;
 * A_S = MHA over the T tokens; CAM; Z = (X + A_S) + (gamma AX + X) -> LN(T): Y
 * (B, C3, T). Buffers from enc_convsc_attn_layout (grad = 0: inference-only,
 * no backward buffers). Functions open their own OpenMP regions. */
typedef struct {
    SpMHA mha;
    float *ap;                      /* (B, C3, NB) pooled */
    float *emb, *X, *Xt, *At;       /* (B, C3, T); Xt, At token-major */
    float *cache;                   /* MHA cache */
    float *Att;                     /* (B, C3, C3) channel attention */
    float *AX, *Z, *Y;              /* (B, C3, T) */
    float *lm1, *lr1, *lm2, *lr2;   /* LN saved mean / rstd (B*C3) */
    float *dY;                      /* (B, C3, T) gradient w.r.t. Y; the forward's A_S scratch */
    double *camacc;                 /* CAM scratch, T doubles per thread */
    /* backward */
    float *dap, *demb, *dX, *dXt, *dAt, *dZ;
    double *dgam;                   /* per-sample dgamma partials (B) */
} ConvscAttn;

void enc_convsc_attn_layout(ConvscAttn *t, EncArena *ar, const ConvscDims *d, int B, int grad,
                            int nthreads);
/* floats of `work` forward and backward need (B = the context's maxB) */
size_t enc_convsc_attn_work_floats(const ConvscAttn *t, const ConvscDims *d, int B);
/* p3 (B, C3, L4) -> t->Y. */
void enc_convsc_attn_forward(ConvscAttn *t, const SpParams *p, const int *ix, const ConvscDims *d,
                             const float *p3, int B, int L4, float *work);
/* t->dY (the gradient w.r.t. Y) -> dp3 (B, C3, L4), overwritten; adds into
 * the parameter gradients. */
void enc_convsc_attn_backward(ConvscAttn *t, const SpParams *p, const int *ix,
                              const ConvscDims *d, float *dp3, int B, int L4, float *work);

/* --------------------------------------------------------- the output */
/* Y (B, C3, T) -> dec_conv3 (1x1, C3 -> 1) -> split BN(1) -> ReLU: h (B, T). */
typedef struct {
    SpConv1d cvd;
    SpBatchNorm bn4;
    float *dc, *h;                  /* (B, T) conv output, feature */
    float *m4, *r4;                 /* BN saved mean / rstd (S) */
    float *ddc, *dh;                /* backward (B, T) */
} ConvscDec;

void enc_convsc_dec_layout(ConvscDec *t, EncArena *ar, const ConvscDims *d, int B, int grad);
size_t enc_convsc_dec_work_floats(const ConvscDec *t);
/* train: batch statistics (SP_ENC_TRAIN); else running statistics. */
void enc_convsc_dec_forward(ConvscDec *t, const SpParams *p, const int *ix, const float *Y,
                            int B, int train, float *feat, float *work);
/* dfeat (B, T) -> dY (B, C3, T), overwritten; adds into the parameter gradients. */
void enc_convsc_dec_backward(ConvscDec *t, const SpParams *p, const int *ix, const float *dfeat,
                             const float *Y, float *dY, int B, int train, float *work);

#endif
