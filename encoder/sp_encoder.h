/* sp_encoder.h - 1D encoders (spectrum -> feature vector), the projection head,
 * model save/load and the import of the published SpecRRMoco weights.
 *
 * Dimension letters: B batch, L spectrum length, D feature width
 * (encoder_feature_dim), H projection hidden width, P projection width.
 * Inputs are row-major (B, L) float32 blocks (one channel per spectrum).
 *
 * Objects and lifetimes (STYLE.md 2.4):
 * - SpEncoder: an architecture plus its SpParams (trainable parameters with a
 *   gradient arena, and buffers: BN running statistics and counters).
 *   Created from the config keys encoder.* (encoder_config_register). A MoCo
 *   key encoder is a second SpEncoder built from the same config, filled with
 *   sp_params_copy(encoder_params(k), encoder_params(q)).
 * - SpEncAct: activations, saved statistics and scratch for up to maxB
 *   spectra of ONE length L, allocated once and reused every step. Several
 *   contexts per encoder are normal (MoCo queries, RR views, cut pieces of
 *   another length). A context works with any encoder built from the same
 *   config; a forward overwrites the context's activations, so two encoders
 *   may share a context only when no backward is pending on it (f_k, which
 *   never runs backward, can share with another forward-only pass).
 * - Nothing allocates in encoder_forward / encoder_backward.
 * - A context's scratch is sized for the OpenMP thread count at its creation:
 *   set the thread count (sp_blas_init) first; raising it later is refused.
 *
 * Threading: forward and backward open their own OpenMP regions over the
 * batch (policy A, BLAS single-threaded); never call them from inside a
 * parallel region. Deterministic for a given thread count, bit-identical
 * from run to run with one thread.
 *
 * Modes (encoder_forward's `mode`):
 * - SP_ENC_TRAIN: batch statistics in every BatchNorm (split BN with S splits,
 *   sample n in split n % S; B % S == 0 is required, see
 *   encoder_batch_multiple), running statistics updated (momentum 0.1);
 *   backward allowed.
 * - SP_ENC_EVAL: running statistics, nothing changes; inference only (the
 *   fastest path: some architectures keep no activations), no backward.
 * - SP_ENC_EVAL_GRAD: the eval-mode transform, keeping what backward needs
 *   (fine-tuning with frozen BN statistics).
 *
 * Checkpoint layout (DESIGN.md): the query encoder's tensors are datasets of
 * group SP_GROUP_ENCODER_Q named exactly as in encoder_params (for convsc the
 * PyTorch names minus "encoder_q.encoder.", e.g. "conv1.0.weight",
 * "conv1.1.running_mean", "MultiHeadAttention.in_proj_weight"); the key
 * encoder likewise under SP_GROUP_ENCODER_K; projection heads under
 * SP_GROUP_PROJ_Q / SP_GROUP_PROJ_K ("0.weight", "0.bias", "2.weight",
 * "2.bias" as PyTorch's head.N); RR heads under "heads/<pytorch module name>"
 * with their PyTorch tensor names ("heads/relation_head/head.0.weight").
 * Every model file that holds an encoder (pretrain, supervised) keeps it under
 * SP_GROUP_ENCODER_Q, so `specssl embed` works on any of them.
 */
#ifndef SP_ENCODER_H
#define SP_ENCODER_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_error.h"
#include "sp_params.h"
#include "sp_rng.h"

#define SP_GROUP_ENCODER_Q "encoder_q"
#define SP_GROUP_ENCODER_K "encoder_k"
#define SP_GROUP_PROJ_Q "proj_q"
#define SP_GROUP_PROJ_K "proj_k"
#define SP_GROUP_HEADS "heads"
/* Input normalisation of the training data (data module's norm_save group);
 * absent = spectra are fed as stored (imported weights). */
#define SP_GROUP_NORM "norm"

/* Registers encoder.* (arch, proj_hidden, proj_dim, input_length, convsc.*,
 * cnn.*, resnet1d.*, fcnn.*, binned_fcnn.*, lstm.*, transformer.*,
 * convsct.*). Idempotent. */
void encoder_config_register(void);

/* ------------------------------------------------------------------ encoder */
typedef struct SpEncoder SpEncoder;
typedef struct SpEncAct SpEncAct;
typedef struct SpProjHead SpProjHead;
typedef struct SpProjAct SpProjAct;

/* Build the architecture named by encoder.arch (encoder_create) or by `arch`
 * (encoder_create_arch; the other encoder.<arch>.* keys still come from cfg).
 * Cross-key checks (list lengths, heads dividing the width, ...) fail with
 * SP_ECONFIG naming the key before anything is allocated. init_rng != NULL:
 * the architecture's reference initialisation drawn from it; NULL: every
 * parameter 0, running variances 1 (the caller loads values). */
SpStatus encoder_create(SpEncoder **e, const SpConfig *cfg, SpRng *init_rng);
SpStatus encoder_create_arch(SpEncoder **e, const char *arch, const SpConfig *cfg,
                             SpRng *init_rng);
void encoder_destroy(SpEncoder **e);   /* sets *e = NULL; NULL-safe */

/* Registered architecture names, "|"-separated ("convsc|cnn|resnet1d"). */
const char *encoder_arch_names(void);
const char *encoder_arch(const SpEncoder *e);
int encoder_feature_dim(const SpEncoder *e);
/* Shortest input length that survives every convolution / pooling. */
int encoder_min_length(const SpEncoder *e);
/* Train-mode batches must be a multiple of this (the BN split count; 1 if
 * the architecture has no split BN). */
int encoder_batch_multiple(const SpEncoder *e);
SpParams *encoder_params(SpEncoder *e);
const SpParams *encoder_params_const(const SpEncoder *e);
/* Forward FLOPs (2 per multiply-add) per spectrum of length L (convs,
 * linears, attention; elementwise work ignored). For throughput logs. */
double encoder_flops(const SpEncoder *e, int L);

/* SP_EINPUT naming L and the minimum when L is too short. */
SpStatus encoder_check_length(const SpEncoder *e, int L);
SpStatus encoder_act_create(SpEncAct **a, const SpEncoder *e, int maxB, int L);
/* Inference-only context: SP_ENC_EVAL forwards only (no training or backward
 * buffers; much smaller, e.g. for embedding a dataset). */
SpStatus encoder_act_create_infer(SpEncAct **a, const SpEncoder *e, int maxB, int L);
void encoder_act_destroy(SpEncAct **a);
int encoder_act_length(const SpEncAct *a);
int encoder_act_max_batch(const SpEncAct *a);
size_t encoder_act_bytes(const SpEncAct *a);

enum { SP_ENC_EVAL = 0, SP_ENC_TRAIN = 1, SP_ENC_EVAL_GRAD = 2 };

/* x (B, L) -> feat (B, D). B <= maxB of the context; in SP_ENC_TRAIN mode
 * B % encoder_batch_multiple(e) == 0. Violations return SP_EINPUT with a
 * message (nothing is computed). */
SpStatus encoder_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                         float *feat);
/* dfeat (B, D) for the B of the last forward on `a` (SP_ENC_TRAIN or
 * SP_ENC_EVAL_GRAD); at most one backward per forward (it may consume the
 * saved activations). ADDS into
 * encoder_params(e)->grad (zero it once per step). No input gradient. */
void encoder_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B);

/* Every tensor (parameters and buffers) as a dataset of `group` (created). */
SpStatus encoder_save(const SpEncoder *e, hid_t f, const char *group);
/* Reads every tensor; a missing tensor or a wrong shape fails naming the
 * file, the tensor and both shapes. `file` is used in messages only. */
SpStatus encoder_load(SpEncoder *e, hid_t f, const char *file, const char *group);

/* Open checkpoint `path` (any kind with an encoder), rebuild the encoder from
 * the config stored in it and load group `group` (NULL: SP_GROUP_ENCODER_Q).
 * proj != NULL: also build and load the projection head from SP_GROUP_PROJ_Q.
 * cfg_out != NULL receives the stored config (sp_config_free). The keys of
 * every module named in the stored config must be registered. */
SpStatus encoder_load_ckpt(const char *path, const char *group, SpConfig **cfg_out,
                           SpEncoder **enc, SpProjHead **proj);

/* Convenience for feature extraction of in-memory data: x (N, L) -> feat
 * (N, D) in eval mode, batches of `batch`. Allocates one context (not for
 * use inside a training step). */
SpStatus encoder_features(SpEncoder *e, const float *x, size_t N, int L, int batch,
                          float *feat);

/* -------------------------------------------------------- projection head */
/* 'mlp': z = normalize(W2 relu(W1 h + b1) + b2), normalize(v) = v / max(|v|, 1e-12).
 * Tensors "0.weight" (H, D), "0.bias" (H), "2.weight" (P, H), "2.bias" (P);
 * init as the reference: weights N(0, 0.05^2), biases U(+-1/sqrt(fan_in)). */
SpStatus encoder_proj_create(SpProjHead **h, int in_dim, int hidden, int out_dim,
                             SpRng *init_rng);
/* hidden / out_dim from encoder.proj_hidden / encoder.proj_dim. */
SpStatus encoder_proj_create_cfg(SpProjHead **h, const SpConfig *cfg, int in_dim,
                                 SpRng *init_rng);
void encoder_proj_destroy(SpProjHead **h);
int encoder_proj_in_dim(const SpProjHead *h);
int encoder_proj_out_dim(const SpProjHead *h);
SpParams *encoder_proj_params(SpProjHead *h);
const SpParams *encoder_proj_params_const(const SpProjHead *h);
SpStatus encoder_proj_act_create(SpProjAct **a, const SpProjHead *h, int maxB);
void encoder_proj_act_destroy(SpProjAct **a);
/* feat (B, D) -> z (B, P), unit rows. */
void encoder_proj_forward(SpProjHead *h, SpProjAct *a, const float *feat, int B, float *z);
/* dz (B, P) -> ADDS into the head's gradients and into dfeat (B, D) (dfeat may be NULL). */
void encoder_proj_backward(SpProjHead *h, SpProjAct *a, const float *dz, int B, float *dfeat);
SpStatus encoder_proj_save(const SpProjHead *h, hid_t f, const char *group);
SpStatus encoder_proj_load(SpProjHead *h, hid_t f, const char *file, const char *group);

/* ------------------------------------------------- PyTorch flat weights */
/* A flat export: little-endian float32 values (int64 tensors converted to
 * float) plus a manifest (TSV: name, dtype, shape "AxBxC" | "scalar", offset
 * in floats, count; '#' lines are comments). */
typedef struct {
    char name[SP_PARAM_NAME_MAX + 32];
    char dtype[16];
    int ndim;                          /* 0 = "scalar" */
    int64_t shape[SP_PARAM_MAX_DIMS];
    size_t offset, count;
    int used;                          /* set by the importer */
} SpTorchTensor;

typedef struct {
    SpTorchTensor *t;
    int n;
    float *data;          /* all floats of the .bin */
    size_t total;         /* floats in the .bin */
    char bin_path[1024], manifest_path[1024];
} SpTorchFlat;

/* Parses the manifest and reads the .bin; checks every entry (shape product
 * == count, ranges inside the file, no overlap/duplicates, total == file
 * size). Errors name the file, the line and the tensor. */
SpStatus encoder_torch_read(SpTorchFlat *t, const char *bin_path, const char *manifest_path);
void encoder_torch_free(SpTorchFlat *t);
const SpTorchTensor *encoder_torch_find(const SpTorchFlat *t, const char *name);
/* Copy tensors prefix+<name> into every tensor of p (shapes must match;
 * errors name the tensor, both shapes and the file). Marks them used. */
SpStatus encoder_torch_to_params(SpTorchFlat *t, const char *prefix, SpParams *p);

/* Import of the published SpecRRMoco checkpoint (reference §13). Checks the
 * invariants (total 399,328 floats, f_q block 70,825, unit-norm queue
 * columns within 3e-7, queue_ptr 0, encoder BN counters 0), then writes a
 * specssl checkpoint at out_path: kind "pretrain", arch "convsc", config =
 * cfg's text (cfg must describe the reference encoder: encoder.arch "convsc"
 * and default encoder.convsc.* / proj_* keys), groups encoder_q, encoder_k,
 * proj_q, proj_k, heads/{relation_head,cls_head,tmp_cls_head} (PyTorch
 * names), datasets /queue (128, Q) and /queue_ptr (int64). If lin_bin is
 * given, the linear probe (3x128 + 3) goes to lin_out: kind "linear", arch
 * "convsc", datasets linear/weight, linear/bias, attribute encoder_ckpt =
 * out_path, feature = "feature". Imported weights carry no input
 * normalisation: spectra are fed to the encoder as stored. */
typedef struct {
    const char *bin, *manifest;
    const char *lin_bin, *lin_manifest, *lin_out;  /* all NULL or all set */
    const char *out;
} SpImportOpts;
SpStatus encoder_import_specrrmoco(const SpImportOpts *o, const SpConfig *cfg);

#endif
