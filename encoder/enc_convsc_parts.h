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

#include "sp_config.h"
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

/* CAM + fusion, one sample. X, As (C, T); Att (C, C); AX, Z (C, T):
 * E = X X^T, Att = softmax_row(-E), AX = Att X, Z = (X + As) + (gamma AX + X).
 * E and Att X are accumulated in double (C*C*T terms: about 1 % of the work).
 * acc: T doubles of scratch. C <= CAM_MAX_C. */
void enc_cam_fuse_sample(float *Z, float *Att, float *AX, const float *X, const float *As,
                         float gamma, int C, int T, double *acc);

/* CAM backward, one sample. dZ (C,T) -> dX += ..., returns dgamma. */
double enc_cam_backward_sample(float *dX, const float *dZ, const float *X, const float *Att,
                               const float *AX, float gamma, int C, int T);

#endif
