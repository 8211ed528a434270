/* enc_arch.h - how an architecture plugs into sp_encoder.h (internal to encoder/).
 *
 * Adding an architecture:
 *   1. write encoder/enc_<name>.c defining `const SpEncArch sp_enc_arch_<name>`
 *      (ops below) and its config keys (a static SpCfgKey table registered from
 *      a `void enc_<name>_config_register(void)`);
 *   2. add it to the table in encoder/encoder.c (g_archs, g_register) and to the
 *      choices of encoder.arch (ENC_ARCH_CHOICES).
 * Each arch keeps its own spec (shapes, tensor indices) in e->impl and its
 * activations in a->impl; the layers come from core/sp_layers.h.
 *
 * Buffers: use EncArena to carve one aligned allocation per context (call the
 * layout function twice: once to measure with base == NULL, once to assign).
 */
#ifndef ENC_ARCH_H
#define ENC_ARCH_H

#include <stddef.h>

#include "sp_encoder.h"
#include "sp_layers.h"

typedef struct SpEncArch SpEncArch;

struct SpEncoder {
    const SpEncArch *arch;
    SpParams params;
    int feature_dim;      /* D */
    int min_length;       /* shortest L that works */
    int batch_multiple;   /* BN splits in train mode (1 if none) */
    void *impl;           /* arch spec, owned */
};

struct SpEncAct {
    const SpEncArch *arch;
    size_t n_param;       /* layout fingerprint of the encoder it was built for */
    int maxB, L;
    int nthreads;         /* OpenMP threads the scratch was sized for */
    int infer;            /* inference-only context: SP_ENC_EVAL forwards only */
    int B, mode;          /* of the last forward; B = 0: no forward yet */
    size_t bytes;
    void *impl;           /* arch activations, owned */
};

struct SpEncArch {
    const char *name;
    /* Read and validate encoder.<name>.* from cfg; declare every tensor with
     * sp_params_add (not finalized); set feature_dim, min_length,
     * batch_multiple and impl. On failure free what was allocated in impl. */
    SpStatus (*create)(SpEncoder *e, const SpConfig *cfg);
    /* Initial values (params finalized and zero-filled). rng == NULL: leave
     * zeros but set running variances to 1. */
    void (*init)(SpEncoder *e, SpRng *rng);
    /* Lengths survive the network? (L -> 1/0); used for min_length / checks. */
    int (*length_ok)(const SpEncoder *e, int L);
    /* a->maxB, a->L, a->nthreads, a->infer set. infer: only what an
     * SP_ENC_EVAL forward needs (no backward or training buffers). */
    SpStatus (*act_create)(SpEncAct *a, const SpEncoder *e);
    void (*act_free)(SpEncAct *a);
    /* mode: SP_ENC_TRAIN (batch statistics), SP_ENC_EVAL (inference only) or
     * SP_ENC_EVAL_GRAD (running statistics, keep activations for backward).
     * backward finds the mode of the forward in a->mode. */
    void (*forward)(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode, float *feat);
    void (*backward)(SpEncoder *e, SpEncAct *a, const float *dfeat, int B);
    double (*flops)(const SpEncoder *e, int L);
    void (*free_impl)(SpEncoder *e);
};

extern const SpEncArch sp_enc_arch_convsc;
extern const SpEncArch sp_enc_arch_cnn;
extern const SpEncArch sp_enc_arch_resnet1d;
extern const SpEncArch sp_enc_arch_fcnn;
extern const SpEncArch sp_enc_arch_binned_fcnn;
extern const SpEncArch sp_enc_arch_lstm;
extern const SpEncArch sp_enc_arch_transformer;
extern const SpEncArch sp_enc_arch_convsct;

void enc_convsc_config_register(void);
void enc_cnn_config_register(void);
void enc_resnet1d_config_register(void);
void enc_fcnn_config_register(void);
void enc_binned_fcnn_config_register(void);
void enc_lstm_config_register(void);
void enc_transformer_config_register(void);
void enc_convsct_config_register(void);

/* ------------------------------------------------------------ helpers */
typedef struct {
    char *base;     /* NULL while measuring */
    size_t used;    /* bytes */
} EncArena;

/* Next n floats (64-byte aligned); NULL while measuring. */
float *enc_take(EncArena *ar, size_t n);
int *enc_take_int(EncArena *ar, size_t n);
double *enc_take_double(EncArena *ar, size_t n);
unsigned char *enc_take_u8(EncArena *ar, size_t n);
/* Allocate ar->used bytes (aligned, zero-filled: touches every page once). */
SpStatus enc_arena_alloc(EncArena *ar, const char *what);

/* Parameter init helpers (reference §3.8). */
void enc_fill_normal(float *x, size_t n, double std, SpRng *rng);
void enc_fill_uniform(float *x, size_t n, double bound, SpRng *rng);
void enc_fill_const(float *x, size_t n, float v);

/* Tensor helpers: the index of name (aborts if absent: a bug). */
int enc_tensor(const SpParams *p, const char *name);

/* Abort with a message: internal invariant broken (a bug, never user input). */
#define ENC_ASSERT(cond, ...)                                          \
    do {                                                               \
        if (!(cond)) enc_assert_fail(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
void enc_assert_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Out (B, C, L) <-> (B, L, C) transposes, OpenMP over the batch. */
void enc_transpose_bcl(float *out, const float *inp, int B, int C, int L);
/* out += transpose */
void enc_transpose_bcl_add(float *out, const float *inp, int B, int C, int L);

/* ------------------------------------------- conv (+ BatchNorm) unit */
/* Shared by cnn and resnet1d: conv1d (optional bias) then optional split BN.
 * Tensors "<conv>.weight" (O,C,K), "<conv>.bias" (O), "<bn>.weight",
 * "<bn>.bias", "<bn>.running_mean", "<bn>.running_var" (O). */
typedef struct {
    int C, O, K, stride, pad, bias, bn, S;
    int iw, ib, ig, ibeta, irm, irv;   /* tensor indices (-1 if absent) */
} EncConvSpec;

SpStatus enc_conv_declare(EncConvSpec *c, SpParams *p, const char *conv_name,
                          const char *bn_name, int C, int O, int K, int stride, int pad,
                          int bias, int bn, int S);
/* He-normal weights N(0, 2/(C K)), bias U(+-1/sqrt(C K)), BN weight 1, bias 0,
 * running var 1. rng NULL: running var 1 only. */
void enc_conv_init(const EncConvSpec *c, SpParams *p, SpRng *rng);

typedef struct {
    SpConv1d cv;
    SpBatchNorm bn;
    int Lo;
    float *conv_out;      /* (B,O,Lo) */
    float *out;           /* (B,O,Lo): BN output, or conv_out without BN */
    float *mean, *rstd;   /* (S*O) */
    float *dconv;         /* (B,O,Lo) scratch for the BN backward (BN only) */
} EncConvAct;

/* grad = 0: no backward scratch (inference-only contexts). */
void enc_conv_layout(EncConvAct *a, EncArena *ar, const EncConvSpec *c, int B, int L, int grad);
size_t enc_conv_work_floats(const EncConvAct *a);
void enc_conv_forward(const EncConvSpec *c, EncConvAct *a, const SpParams *p, const float *in,
                      int B, int train, float *work);
/* dout (B,O,Lo): gradient w.r.t. a->out. Adds into din (may be NULL) and the
 * parameter gradients. May modify nothing but a->dconv and the gradients. */
void enc_conv_backward(const EncConvSpec *c, EncConvAct *a, const SpParams *p, float *din,
                       const float *dout, const float *in, int B, int train, float *work);

/* Parallel helpers over B samples of `per` floats. */
void enc_zero(float *x, int B, size_t per);
void enc_relu_inplace(float *y, int B, size_t per);
/* d = (y > 0) ? d : 0: ReLU backward from the ReLU output. */
void enc_relu_mask(float *d, const float *y, int B, size_t per);
/* out = a + b (out may be a or b). */
void enc_add(float *out, const float *a, const float *b, int B, size_t per);

/* Patch input of the sequence encoders (lstm, transformer): x (B, L) ->
 * xp (B, TP), TP >= L: each spectrum standardised over its L points
 * (ln != 0: two-pass mean / variance in double, eps added to the variance)
 * or copied, then zero-padded to TP. No gradient flows to the input. */
void enc_patchify(float *xp, const float *x, int B, int L, int TP, int ln, float eps);

/* free_impl for archs whose spec is one plain allocation. */
void enc_free_impl(SpEncoder *e);

#endif
