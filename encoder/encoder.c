/* encoder.c - architecture dispatch, contexts, save/load, config keys.
 *
 * The architectures live in enc_<name>.c behind the SpEncArch ops table
 * (enc_arch.h). encoder_create / encoder_act_create allocate; forward and
 * backward never do. Functions here are serial unless noted and must not be
 * called from inside an OpenMP region (forward/backward open their own).
 */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_checkpoint.h"
#include "sp_h5.h"
#include "sp_log.h"

/* ------------------------------------------------------------ registry */
#define ENC_ARCH_CHOICES "convsc|cnn|resnet1d|fcnn|binned_fcnn|lstm|transformer|convsct"

static const SpEncArch *const g_archs[] = {
    &sp_enc_arch_convsc,
    &sp_enc_arch_cnn,
    &sp_enc_arch_resnet1d,
    &sp_enc_arch_fcnn,
    &sp_enc_arch_binned_fcnn,
    &sp_enc_arch_lstm,
    &sp_enc_arch_transformer,
    &sp_enc_arch_convsct,
};
static void (*const g_register[])(void) = {
    enc_convsc_config_register,
    enc_cnn_config_register,
    enc_resnet1d_config_register,
    enc_fcnn_config_register,
    enc_binned_fcnn_config_register,
    enc_lstm_config_register,
    enc_transformer_config_register,
    enc_convsct_config_register,
};
#define N_ARCHS ((int)(sizeof g_archs / sizeof g_archs[0]))

static const SpCfgKey g_keys[] = {
    {"encoder.arch", SP_CFG_STRING, "\"convsc\"", 1, 0, ENC_ARCH_CHOICES,
     "encoder architecture: convsc (SpecRRMoco ConvSC), cnn (configurable conv stack), "
     "resnet1d; supervised baselines of the seed studies: fcnn, binned_fcnn, lstm, "
     "transformer, convsct"},
    {"encoder.proj_hidden", SP_CFG_INT, "128", 1, 65536, NULL,
     "projection head 'mlp': hidden width H"},
    {"encoder.proj_dim", SP_CFG_INT, "128", 1, 65536, NULL,
     "projection head 'mlp': output width P (the unit vectors MoCo and RR consume)"},
    {"encoder.input_length", SP_CFG_INT, "0", 0, 16777216, NULL,
     "points per spectrum L for architectures whose parameters depend on it (fcnn); "
     "0 = unknown (such architectures then refuse to build)"},
};

void encoder_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
    for (int i = 0; i < N_ARCHS; i++) g_register[i]();
}

const char *encoder_arch_names(void) { return ENC_ARCH_CHOICES; }

/* ------------------------------------------------------------ helpers */
void enc_assert_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: internal error: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static size_t round64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

float *enc_take(EncArena *ar, size_t n) {
    size_t off = ar->used;
    ar->used += round64(n * sizeof(float));
    return ar->base ? (float *)(void *)(ar->base + off) : NULL;
}

int *enc_take_int(EncArena *ar, size_t n) {
    size_t off = ar->used;
    ar->used += round64(n * sizeof(int));
    return ar->base ? (int *)(void *)(ar->base + off) : NULL;
}

double *enc_take_double(EncArena *ar, size_t n) {
    size_t off = ar->used;
    ar->used += round64(n * sizeof(double));
    return ar->base ? (double *)(void *)(ar->base + off) : NULL;
}

unsigned char *enc_take_u8(EncArena *ar, size_t n) {
    size_t off = ar->used;
    ar->used += round64(n);
    return ar->base ? (unsigned char *)(ar->base + off) : NULL;
}

SpStatus enc_arena_alloc(EncArena *ar, const char *what) {
    size_t bytes = ar->used ? ar->used : 64;
    ar->base = sp_aligned_alloc(bytes, what);
    if (!ar->base) return SP_ENOMEM;
    memset(ar->base, 0, bytes);
    ar->used = 0;
    return SP_OK;
}

void enc_fill_normal(float *x, size_t n, double std, SpRng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * sp_rng_normal(rng));
}

void enc_fill_uniform(float *x, size_t n, double bound, SpRng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = (float)sp_rng_uniform(rng, -bound, bound);
}

void enc_fill_const(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

int enc_tensor(const SpParams *p, const char *name) {
    int i = sp_params_find(p, name);
    ENC_ASSERT(i >= 0, "tensor '%s' not in the parameter table", name);
    return i;
}

void enc_transpose_bcl(float *out, const float *inp, int B, int C, int L) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *i_b = inp + (size_t)b * C * L;
        float *o_b = out + (size_t)b * C * L;
        for (int c = 0; c < C; c++)
            for (int l = 0; l < L; l++) o_b[(size_t)l * C + c] = i_b[(size_t)c * L + l];
    }
}

void enc_transpose_bcl_add(float *out, const float *inp, int B, int C, int L) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *i_b = inp + (size_t)b * C * L;
        float *o_b = out + (size_t)b * C * L;
        for (int c = 0; c < C; c++)
            for (int l = 0; l < L; l++) o_b[(size_t)l * C + c] += i_b[(size_t)c * L + l];
    }
}

/* ------------------------------------------------------------ encoder */
static const SpEncArch *find_arch(const char *name) {
    for (int i = 0; i < N_ARCHS; i++)
        if (strcmp(g_archs[i]->name, name) == 0) return g_archs[i];
    return NULL;
}

SpStatus encoder_create_arch(SpEncoder **out, const char *arch, const SpConfig *cfg,
                             SpRng *init_rng) {
    *out = NULL;
    const SpEncArch *ops = find_arch(arch);
    if (!ops)
        SP_FAIL(SP_ECONFIG, "encoder.arch: unknown architecture '%s' (choices: %s)", arch,
                ENC_ARCH_CHOICES);
    SpEncoder *e = sp_calloc(1, sizeof *e, "encoder");
    if (!e) return SP_ENOMEM;
    e->arch = ops;
    e->batch_multiple = 1;
    sp_params_init(&e->params);
    SpStatus rc = ops->create(e, cfg);
    if (rc != SP_OK) {
        sp_params_free(&e->params);
        free(e);
        sp_error_push(__FILE__, __LINE__, "while building encoder '%s'", arch);
        return rc;
    }
    rc = sp_params_finalize(&e->params);
    if (rc != SP_OK) {
        encoder_destroy(&e);
        return rc;
    }
    /* Shortest length: the length rules are monotone in L. */
    e->min_length = 0;
    for (int L = 1; L <= 1 << 20; L++)
        if (ops->length_ok(e, L)) {
            e->min_length = L;
            break;
        }
    if (e->min_length == 0) {
        encoder_destroy(&e);
        SP_FAIL(SP_ECONFIG, "encoder.%s: no input length up to 2^20 survives the network", arch);
    }
    ops->init(e, init_rng);
    *out = e;
    return SP_OK;
}

SpStatus encoder_create(SpEncoder **e, const SpConfig *cfg, SpRng *init_rng) {
    return encoder_create_arch(e, sp_cfg_str(cfg, "encoder.arch"), cfg, init_rng);
}

void encoder_destroy(SpEncoder **e) {
    if (!e || !*e) return;
    if ((*e)->arch && (*e)->impl) (*e)->arch->free_impl(*e);
    sp_params_free(&(*e)->params);
    free(*e);
    *e = NULL;
}

const char *encoder_arch(const SpEncoder *e) { return e->arch->name; }
int encoder_feature_dim(const SpEncoder *e) { return e->feature_dim; }
int encoder_min_length(const SpEncoder *e) { return e->min_length; }
int encoder_batch_multiple(const SpEncoder *e) { return e->batch_multiple; }
SpParams *encoder_params(SpEncoder *e) { return &e->params; }
const SpParams *encoder_params_const(const SpEncoder *e) { return &e->params; }
double encoder_flops(const SpEncoder *e, int L) { return e->arch->flops(e, L); }

SpStatus encoder_check_length(const SpEncoder *e, int L) {
    if (L < e->min_length)
        SP_FAIL(SP_EINPUT,
                "spectrum length %d is too short for encoder '%s' (minimum %d points)", L,
                e->arch->name, e->min_length);
    if (!e->arch->length_ok(e, L)) /* fixed-size input layers (fcnn) */
        SP_FAIL(SP_EINPUT,
                "spectrum length %d does not fit encoder '%s', built for spectra of %d points "
                "(encoder.input_length)", L, e->arch->name, e->min_length);
    return SP_OK;
}

/* ------------------------------------------------------------ contexts */
static SpStatus act_create(SpEncAct **out, const SpEncoder *e, int maxB, int L, int infer) {
    *out = NULL;
    if (maxB < 1) SP_FAIL(SP_EINPUT, "encoder context: batch size %d < 1", maxB);
    SP_TRY(encoder_check_length(e, L));
    SpEncAct *a = sp_calloc(1, sizeof *a, "encoder context");
    if (!a) return SP_ENOMEM;
    a->arch = e->arch;
    a->n_param = e->params.n_param;
    a->maxB = maxB;
    a->L = L;
    a->nthreads = omp_get_max_threads();
    a->infer = infer;
    SpStatus rc = e->arch->act_create(a, e);
    if (rc != SP_OK) {
        free(a);
        sp_error_push(__FILE__, __LINE__, "while allocating activations for B=%d, L=%d", maxB, L);
        return rc;
    }
    *out = a;
    return SP_OK;
}

SpStatus encoder_act_create(SpEncAct **a, const SpEncoder *e, int maxB, int L) {
    return act_create(a, e, maxB, L, 0);
}

SpStatus encoder_act_create_infer(SpEncAct **a, const SpEncoder *e, int maxB, int L) {
    return act_create(a, e, maxB, L, 1);
}

void encoder_act_destroy(SpEncAct **a) {
    if (!a || !*a) return;
    if ((*a)->impl) (*a)->arch->act_free(*a);
    free(*a);
    *a = NULL;
}

int encoder_act_length(const SpEncAct *a) { return a->L; }
int encoder_act_max_batch(const SpEncAct *a) { return a->maxB; }
size_t encoder_act_bytes(const SpEncAct *a) { return a->bytes; }

SpStatus encoder_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                         float *feat) {
    if (mode != SP_ENC_EVAL && mode != SP_ENC_TRAIN && mode != SP_ENC_EVAL_GRAD)
        SP_FAIL(SP_EINTERNAL, "encoder_forward: unknown mode %d", mode);
    if (a->arch != e->arch || a->n_param != e->params.n_param)
        SP_FAIL(SP_EINTERNAL, "encoder_forward: context built for another encoder layout");
    if (a->infer && mode != SP_ENC_EVAL)
        SP_FAIL(SP_EINTERNAL, "encoder_forward: inference-only context used with mode %d", mode);
    if (omp_get_max_threads() > a->nthreads)
        SP_FAIL(SP_EINTERNAL, "encoder_forward: context sized for %d OpenMP threads, now %d "
                "(create contexts after setting the thread count)", a->nthreads,
                omp_get_max_threads());
    if (B < 1 || B > a->maxB)
        SP_FAIL(SP_EINPUT, "encoder_forward: batch of %d spectra, context holds 1..%d", B,
                a->maxB);
    if (mode == SP_ENC_TRAIN && B % e->batch_multiple != 0)
        SP_FAIL(SP_EINPUT,
                "encoder '%s' in training mode: batch of %d spectra is not a multiple of the "
                "%d split-BatchNorm groups\nhint: choose a batch size (and view/piece counts) "
                "divisible by %d, or change the bn_splits key of the encoder",
                e->arch->name, B, e->batch_multiple, e->batch_multiple);
    a->B = 0;
    a->mode = mode;
    e->arch->forward(e, a, x, B, mode, feat);
    a->B = B;
    return SP_OK;
}

void encoder_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    ENC_ASSERT(a->arch == e->arch && a->n_param == e->params.n_param,
               "encoder_backward: context built for another encoder layout");
    ENC_ASSERT(a->B > 0 && B == a->B, "encoder_backward: B=%d but the last forward had B=%d",
               B, a->B);
    ENC_ASSERT(a->mode != SP_ENC_EVAL,
               "encoder_backward after an SP_ENC_EVAL forward (use SP_ENC_EVAL_GRAD)");
    e->arch->backward(e, a, dfeat, B);
    a->B = 0;   /* the activations may be consumed: a second backward needs a new forward */
}

/* ------------------------------------------------------------ save/load */
SpStatus encoder_save(const SpEncoder *e, hid_t f, const char *group) {
    SP_TRY(ckpt_write_params(f, group, &e->params));
    return SP_OK;
}

SpStatus encoder_load(SpEncoder *e, hid_t f, const char *file, const char *group) {
    SP_TRY(ckpt_read_params(f, file, group, &e->params));
    return SP_OK;
}

SpStatus encoder_load_ckpt(const char *path, const char *group, SpConfig **cfg_out,
                           SpEncoder **enc, SpProjHead **proj) {
    hid_t f = -1;
    SpCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    SpConfig *cfg = NULL;
    SpStatus rc = SP_OK;
    *enc = NULL;
    if (proj) *proj = NULL;
    if (cfg_out) *cfg_out = NULL;
    if (!group) group = SP_GROUP_ENCODER_Q;
    SP_TRY(ckpt_open(path, NULL, NULL, &f, &meta));
    if (!meta.config_text)
        SP_FAIL_GOTO(rc, done, SP_EFORMAT, "'%s': checkpoint has no stored config (attribute "
                     "'config'), cannot rebuild its encoder", path);
    SP_TRY_GOTO(rc, sp_config_from_text(&cfg, meta.config_text, path), done);
    SP_TRY_GOTO(rc, encoder_create(enc, cfg, NULL), done);
    if (meta.arch[0] && strcmp(meta.arch, encoder_arch(*enc)) != 0)
        SP_FAIL_GOTO(rc, done, SP_EFORMAT, "'%s': attribute arch = '%s' but its config says "
                     "encoder.arch = '%s'", path, meta.arch, encoder_arch(*enc));
    if (!sp_h5_exists(f, group))
        SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': no encoder group '/%s' (kind '%s')", path,
                     group, meta.kind);
    SP_TRY_GOTO(rc, encoder_load(*enc, f, path, group), done);
    if (proj) {
        if (!sp_h5_exists(f, SP_GROUP_PROJ_Q))
            SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': no projection head '/%s' (kind '%s'): "
                         "only the encoder feature is available", path, SP_GROUP_PROJ_Q,
                         meta.kind);
        SP_TRY_GOTO(rc, encoder_proj_create_cfg(proj, cfg, encoder_feature_dim(*enc), NULL),
                    done);
        SP_TRY_GOTO(rc, encoder_proj_load(*proj, f, path, SP_GROUP_PROJ_Q), done);
    }
done:
    if (f >= 0) sp_h5_close(f);
    ckpt_meta_free(&meta);
    if (rc != SP_OK) {
        encoder_destroy(enc);
        if (proj) encoder_proj_destroy(proj);
        sp_config_free(cfg);
        return rc;
    }
    if (cfg_out) *cfg_out = cfg;
    else sp_config_free(cfg);
    return SP_OK;
}

SpStatus encoder_features(SpEncoder *e, const float *x, size_t N, int L, int batch,
                          float *feat) {
    if (N == 0) return SP_OK;
    if (batch < 1) batch = 256;
    if ((size_t)batch > N) batch = (int)N;
    SpEncAct *a = NULL;
    SP_TRY(encoder_act_create_infer(&a, e, batch, L));
    SpStatus rc = SP_OK;
    const int D = e->feature_dim;
    for (size_t n0 = 0; n0 < N; n0 += (size_t)batch) {
        int B = (int)(N - n0 < (size_t)batch ? N - n0 : (size_t)batch);
        rc = encoder_forward(e, a, x + n0 * (size_t)L, B, SP_ENC_EVAL, feat + n0 * (size_t)D);
        if (rc != SP_OK) break;
    }
    encoder_act_destroy(&a);
    return rc;
}
