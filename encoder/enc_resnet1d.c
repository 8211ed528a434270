/* enc_resnet1d.c - residual 1D encoder (BasicBlocks), global average pooling.
 *
 *   stem: conv(1 -> C0, k stem_kernel, stride 2, pad k/2) -> BN -> ReLU -> maxpool 2
 *   stage s (width W_s, blocks n_s): first block stride 1 for s = 0, else 2
 *     block: y = ReLU( BN(conv_k(ReLU(BN(conv_k,stride(x))))) + shortcut(x) )
 *     shortcut: identity, or conv 1x1 stride + BN when the stride or width changes
 *   global average pool -> feature (B, W_last)
 * Convolutions have no bias (BN follows). Tensors: "stem.conv.weight",
 * "stem.bn.*", "s<s>.b<j>.conv1.weight", "s<s>.b<j>.bn1.*", ".conv2", ".bn2",
 * ".down.conv", ".down.bn".
 *
 * Dimension letters: B batch, L length, C/W channels. Residual backward: the
 * block input gradient receives the main path and the shortcut (accumulate).
 * Allocation: create / act_create only. Every function opens its own OpenMP
 * regions; do not call from inside one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_layers.h"

#define RN_MAX_STAGES 8
#define RN_MAX_BLOCKS 64

static const SpCfgKey g_keys[] = {
    {"encoder.resnet1d.stem_channels", SP_CFG_INT, "32", 1, 65536, NULL,
     "resnet1d: channels of the stem convolution"},
    {"encoder.resnet1d.stem_kernel", SP_CFG_INT, "7", 1, 4096, NULL,
     "resnet1d: kernel width of the stem convolution (stride 2, padding k/2)"},
    {"encoder.resnet1d.widths", SP_CFG_INT_LIST, "[32, 64, 128]", 1, 65536, NULL,
     "resnet1d: channels per stage (the last one is the feature width)"},
    {"encoder.resnet1d.blocks", SP_CFG_INT_LIST, "[1, 1, 1]", 1, 64, NULL,
     "resnet1d: BasicBlocks per stage"},
    {"encoder.resnet1d.kernel", SP_CFG_INT, "3", 1, 4095, NULL,
     "resnet1d: kernel width inside the blocks (odd; padding k/2)"},
    {"encoder.resnet1d.bn_splits", SP_CFG_INT, "1", 1, 1024, NULL,
     "resnet1d: split-BatchNorm groups in training mode (1 = plain BN)"},
};

void enc_resnet1d_config_register(void) {
    sp_config_register(g_keys, (int)(sizeof g_keys / sizeof g_keys[0]));
}

typedef struct {
    EncConvSpec c1, c2, down;
    int has_down;
} RnBlock;

typedef struct {
    EncConvSpec stem;
    int nb;
    RnBlock blk[RN_MAX_BLOCKS];
    int D;
} Resnet;

static SpStatus rn_create(SpEncoder *e, const SpConfig *cfg) {
    int ns = sp_cfg_list_len(cfg, "encoder.resnet1d.widths");
    if (ns < 1 || ns > RN_MAX_STAGES)
        SP_FAIL(SP_ECONFIG, "encoder.resnet1d.widths: %d stages, expected 1..%d", ns,
                RN_MAX_STAGES);
    if (sp_cfg_list_len(cfg, "encoder.resnet1d.blocks") != ns)
        SP_FAIL(SP_ECONFIG, "encoder.resnet1d.blocks has %d entries, encoder.resnet1d.widths "
                "has %d (one per stage)", sp_cfg_list_len(cfg, "encoder.resnet1d.blocks"), ns);
    int K = (int)sp_cfg_int(cfg, "encoder.resnet1d.kernel");
    if (K % 2 == 0) SP_FAIL(SP_ECONFIG, "encoder.resnet1d.kernel = %d must be odd", K);
    int Ks = (int)sp_cfg_int(cfg, "encoder.resnet1d.stem_kernel");
    int C0 = (int)sp_cfg_int(cfg, "encoder.resnet1d.stem_channels");
    int S = (int)sp_cfg_int(cfg, "encoder.resnet1d.bn_splits");
    int total = 0;
    for (int s = 0; s < ns; s++) total += (int)sp_cfg_int_at(cfg, "encoder.resnet1d.blocks", s);
    if (total > RN_MAX_BLOCKS)
        SP_FAIL(SP_ECONFIG, "encoder.resnet1d.blocks: %d blocks in total, at most %d", total,
                RN_MAX_BLOCKS);
    Resnet *r = sp_calloc(1, sizeof *r, "resnet1d spec");
    if (!r) return SP_ENOMEM;
    SpStatus rc = SP_OK;
    SpParams *p = &e->params;
    SP_TRY_GOTO(rc, enc_conv_declare(&r->stem, p, "stem.conv", "stem.bn", 1, C0, Ks, 2, Ks / 2,
                                     0, 1, S), fail);
    int C = C0;
    for (int s = 0; s < ns; s++) {
        int W = (int)sp_cfg_int_at(cfg, "encoder.resnet1d.widths", s);
        int nblk = (int)sp_cfg_int_at(cfg, "encoder.resnet1d.blocks", s);
        for (int j = 0; j < nblk; j++) {
            RnBlock *b = &r->blk[r->nb++];
            int stride = (j == 0 && s > 0) ? 2 : 1;
            char n1[64], n2[64];
            snprintf(n1, sizeof n1, "s%d.b%d.conv1", s, j);
            snprintf(n2, sizeof n2, "s%d.b%d.bn1", s, j);
            SP_TRY_GOTO(rc, enc_conv_declare(&b->c1, p, n1, n2, C, W, K, stride, K / 2, 0, 1, S),
                        fail);
            snprintf(n1, sizeof n1, "s%d.b%d.conv2", s, j);
            snprintf(n2, sizeof n2, "s%d.b%d.bn2", s, j);
            SP_TRY_GOTO(rc, enc_conv_declare(&b->c2, p, n1, n2, W, W, K, 1, K / 2, 0, 1, S),
                        fail);
            b->has_down = stride != 1 || C != W;
            if (b->has_down) {
                snprintf(n1, sizeof n1, "s%d.b%d.down.conv", s, j);
                snprintf(n2, sizeof n2, "s%d.b%d.down.bn", s, j);
                SP_TRY_GOTO(rc, enc_conv_declare(&b->down, p, n1, n2, C, W, 1, stride, 0, 0, 1,
                                                 S), fail);
            }
            C = W;
        }
    }
    r->D = C;
    e->impl = r;
    e->feature_dim = C;
    e->batch_multiple = S;
    return SP_OK;
fail:
    free(r);
    return rc;
}

static void rn_init(SpEncoder *e, SpRng *rng) {
    const Resnet *r = e->impl;
    enc_conv_init(&r->stem, &e->params, rng);
    for (int i = 0; i < r->nb; i++) {
        enc_conv_init(&r->blk[i].c1, &e->params, rng);
        enc_conv_init(&r->blk[i].c2, &e->params, rng);
        if (r->blk[i].has_down) enc_conv_init(&r->blk[i].down, &e->params, rng);
    }
}

/* Output length of the stem (after the pool) and of each block. */
static int rn_lengths(const Resnet *r, int L, int *Lstem_conv, int *Lblk) {
    int Lc = conv1d_out_len(L, r->stem.K, r->stem.stride, r->stem.pad);
    if (Lc < 2) return 0;
    if (Lstem_conv) *Lstem_conv = Lc;
    int Lx = Lc / 2;
    for (int i = 0; i < r->nb; i++) {
        const RnBlock *b = &r->blk[i];
        Lx = conv1d_out_len(Lx, b->c1.K, b->c1.stride, b->c1.pad);
        if (Lx < 1) return 0;
        if (Lblk) Lblk[i] = Lx;
    }
    return Lx;
}

static int rn_length_ok(const SpEncoder *e, int L) { return rn_lengths(e->impl, L, NULL, NULL) > 0; }

static double conv_flops(const EncConvSpec *c, int Lo) { return 2.0 * c->O * c->C * c->K * Lo; }

static double rn_flops(const SpEncoder *e, int L) {
    const Resnet *r = e->impl;
    int Lsc, Lb[RN_MAX_BLOCKS];
    if (!rn_lengths(r, L, &Lsc, Lb)) return 0.0;
    double f = conv_flops(&r->stem, Lsc);
    for (int i = 0; i < r->nb; i++) {
        const RnBlock *b = &r->blk[i];
        f += conv_flops(&b->c1, Lb[i]) + conv_flops(&b->c2, Lb[i]);
        if (b->has_down) f += conv_flops(&b->down, Lb[i]);
    }
    return f;
}

/* ------------------------------------------------------------ activations */
typedef struct {
    EncConvAct c1, c2, down;
    int Lin, Lo;
    float *y;      /* block output after ReLU (B, W, Lo) (kept) */
    float *dy;     /* gradient w.r.t. y */
    float *da1;    /* gradient w.r.t. ReLU(BN1) output */
} RnBlockAct;

typedef struct {
    char *arena;
    float *xin;
    EncConvAct stem;
    int Lsc, Lsp;
    float *sp;              /* stem output after pool + ReLU (B, C0, Lsp) */
    int *sidx;
    float *dsp, *dspre;     /* gradients w.r.t. sp and the pre-pool map */
    RnBlockAct blk[RN_MAX_BLOCKS];
    float *work;
} RnAct;

static void rn_layout(RnAct *t, EncArena *ar, const Resnet *r, int B, int L, int infer) {
    const int gr = !infer, Bg = infer ? 0 : B;   /* backward buffers */
    t->xin = enc_take(ar, (size_t)B * L);
    enc_conv_layout(&t->stem, ar, &r->stem, B, L, gr);
    t->Lsc = t->stem.Lo;
    t->Lsp = t->Lsc / 2;
    size_t nsp = (size_t)B * r->stem.O * t->Lsp;
    t->sp = enc_take(ar, nsp);
    t->sidx = enc_take_int(ar, nsp);
    t->dsp = enc_take(ar, nsp / B * Bg);
    t->dspre = enc_take(ar, (size_t)Bg * r->stem.O * t->Lsc);
    size_t w = enc_conv_work_floats(&t->stem), v;
    int Lx = t->Lsp;
    for (int i = 0; i < r->nb; i++) {
        const RnBlock *b = &r->blk[i];
        RnBlockAct *u = &t->blk[i];
        u->Lin = Lx;
        enc_conv_layout(&u->c1, ar, &b->c1, B, Lx, gr);
        u->Lo = u->c1.Lo;
        enc_conv_layout(&u->c2, ar, &b->c2, B, u->Lo, gr);
        if (b->has_down) enc_conv_layout(&u->down, ar, &b->down, B, Lx, gr);
        size_t ny = (size_t)B * b->c1.O * u->Lo;
        u->y = enc_take(ar, ny);
        u->dy = enc_take(ar, ny / B * Bg);
        u->da1 = enc_take(ar, ny / B * Bg);
        v = enc_conv_work_floats(&u->c1); if (v > w) w = v;
        v = enc_conv_work_floats(&u->c2); if (v > w) w = v;
        if (b->has_down) { v = enc_conv_work_floats(&u->down); if (v > w) w = v; }
        Lx = u->Lo;
    }
    t->work = enc_take(ar, w);
}

static SpStatus rn_act_create(SpEncAct *a, const SpEncoder *e) {
    const Resnet *r = e->impl;
    RnAct *t = sp_calloc(1, sizeof *t, "resnet1d activations");
    if (!t) return SP_ENOMEM;
    EncArena ar = {NULL, 0};
    rn_layout(t, &ar, r, a->maxB, a->L, a->infer);
    a->bytes = ar.used;
    if (enc_arena_alloc(&ar, "resnet1d activations") != SP_OK) {
        free(t);
        return SP_ENOMEM;
    }
    t->arena = ar.base;
    rn_layout(t, &ar, r, a->maxB, a->L, a->infer);
    a->impl = t;
    return SP_OK;
}

static void rn_act_free(SpEncAct *a) {
    RnAct *t = a->impl;
    if (t) free(t->arena);
    free(t);
    a->impl = NULL;
}

/* y = ReLU(main + shortcut), OpenMP over the batch. */
static void add_relu(float *y, const float *main, const float *sc, int B, size_t per) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * per;
        for (size_t i = 0; i < per; i++) {
            float v = main[o + i] + sc[o + i];
            y[o + i] = v < 0.0f ? 0.0f : v;
        }
    }
}

static void add_into(float *d, const float *s, int B, size_t per) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * per;
        for (size_t i = 0; i < per; i++) d[o + i] += s[o + i];
    }
}

static void rn_forward(SpEncoder *e, SpEncAct *a, const float *x, int B, int mode,
                       float *feat) {
    const int train = mode == SP_ENC_TRAIN;
    const Resnet *r = e->impl;
    RnAct *t = a->impl;
    const SpParams *p = &e->params;
    memcpy(t->xin, x, (size_t)B * a->L * sizeof(float));
    enc_conv_forward(&r->stem, &t->stem, p, t->xin, B, train, t->work);
    maxpool1d_forward(t->sp, t->sidx, t->stem.out, B * r->stem.O, t->Lsc, 2);
    enc_relu_inplace(t->sp, B, (size_t)r->stem.O * t->Lsp);
    const float *in = t->sp;
    for (int i = 0; i < r->nb; i++) {
        const RnBlock *b = &r->blk[i];
        RnBlockAct *u = &t->blk[i];
        enc_conv_forward(&b->c1, &u->c1, p, in, B, train, t->work);
        enc_relu_inplace(u->c1.out, B, (size_t)b->c1.O * u->Lo);
        enc_conv_forward(&b->c2, &u->c2, p, u->c1.out, B, train, t->work);
        const float *sc = in;
        if (b->has_down) {
            enc_conv_forward(&b->down, &u->down, p, in, B, train, t->work);
            sc = u->down.out;
        }
        add_relu(u->y, u->c2.out, sc, B, (size_t)b->c1.O * u->Lo);
        in = u->y;
    }
    const RnBlockAct *last = &t->blk[r->nb - 1];
    global_avgpool1d_forward(feat, r->nb ? last->y : t->sp, B, r->D, r->nb ? last->Lo : t->Lsp);
}

static void rn_backward(SpEncoder *e, SpEncAct *a, const float *dfeat, int B) {
    const Resnet *r = e->impl;
    RnAct *t = a->impl;
    const SpParams *p = &e->params;
    const int train = a->mode == SP_ENC_TRAIN;
    RnBlockAct *last = &t->blk[r->nb - 1];
    enc_zero(last->dy, B, (size_t)r->D * last->Lo);
    global_avgpool1d_backward(last->dy, dfeat, B, r->D, last->Lo);
    for (int i = r->nb - 1; i >= 0; i--) {
        const RnBlock *b = &r->blk[i];
        RnBlockAct *u = &t->blk[i];
        const size_t ny = (size_t)b->c1.O * u->Lo;
        const float *in = i ? t->blk[i - 1].y : t->sp;
        float *din = i ? t->blk[i - 1].dy : t->dsp;
        enc_zero(din, B, (size_t)b->c1.C * u->Lin);
        /* d(main + shortcut) = ReLU mask of dy */
        enc_relu_mask(u->dy, u->y, B, ny);
        enc_zero(u->da1, B, ny);
        enc_conv_backward(&b->c2, &u->c2, p, u->da1, u->dy, u->c1.out, B, train, t->work);
        enc_relu_mask(u->da1, u->c1.out, B, ny);
        enc_conv_backward(&b->c1, &u->c1, p, din, u->da1, in, B, train, t->work);
        if (b->has_down)
            enc_conv_backward(&b->down, &u->down, p, din, u->dy, in, B, train, t->work);
        else
            add_into(din, u->dy, B, ny);
    }
    enc_relu_mask(t->dsp, t->sp, B, (size_t)r->stem.O * t->Lsp);
    enc_zero(t->dspre, B, (size_t)r->stem.O * t->Lsc);
    maxpool1d_backward(t->dspre, t->dsp, t->sidx, B * r->stem.O, t->Lsc, 2);
    enc_conv_backward(&r->stem, &t->stem, p, NULL, t->dspre, t->xin, B, train, t->work);
}

const SpEncArch sp_enc_arch_resnet1d = {
    .name = "resnet1d",
    .create = rn_create,
    .init = rn_init,
    .length_ok = rn_length_ok,
    .act_create = rn_act_create,
    .act_free = rn_act_free,
    .forward = rn_forward,
    .backward = rn_backward,
    .flops = rn_flops,
    .free_impl = enc_free_impl,
};
