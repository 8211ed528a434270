/* pt_dist.c - the MPI parts of pretraining (pt_dist.h has the scheme):
 * distributed state, the distributed step (cross-rank shuffle BN, key
 * all-gather, z all-gather and global RR heads, gradient all-reduce, BN
 * running-statistics averaging), the sharded loader, the normalisation fit
 * on rank 0, agreement helpers, the consistency hash and the debug dump.
 *
 * Dimension letters: P ranks, r this rank, B global batch, Bl = B / P local
 * batch, V views, D projection width, L spectrum length, w piece length.
 * Global row of local row (v, i) of a view-major block: v B + r + P i.
 *
 * Allocation: pt_dist_state_create and pt_loader_create only (every buffer
 * for the largest batch). Threading: serial glue and MPI calls between the
 * OpenMP regions of the layers; never call inside a parallel region.
 */
#include "pt_dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt_internal.h"
#include "sp_dist.h"
#include "sp_h5.h"
#include "sp_log.h"
#include "sp_losses.h"

static int g_force;

int pt_dist_on(void) { return g_force || sp_dist_size() > 1; }
void pt_dist_force(int on) { g_force = on != 0; }
int pt_dist_is_root(void) { return sp_dist_rank() == 0; }

struct PtDist {
    int P, rank;
    int Bmax, Blmax;       /* global / local largest batch */
    int S;                 /* global BN splits (local S / P... times P) */
    SpConfig *cfg_local;   /* the run's config with bn_splits = S / P */
    /* MoCo */
    int *perm;             /* (Bmax) shuffle permutation of the global batch */
    float *xsend, *xrecv;  /* (Blmax, L) exchange buffers */
    float *xk;             /* (Blmax, L) key-encoder inputs of this rank's shuffled rows */
    float *kloc;           /* (Blmax, D) keys of those rows */
    float *kshuf;          /* (Bmax, D) keys in shuffled order */
    float *k1g, *k2g;      /* (Bmax, D) global keys */
    float *keys_cat;       /* (2 Bmax, D) [k1; k2] */
    float *zq;             /* (Bmax, D) global z of q1 (collapse metric) */
    size_t *cnt;           /* (4 P) alltoallv counts / offsets */
    int *cursor;           /* (P) */
    /* all-gather scratch: P blocks of up to gbytes */
    unsigned char *gbuf;
    size_t gbytes;
    /* global RR blocks (view-major, V Bmax rows) */
    float *z_views, *dz_views, *z_p0, *z_p1, *dz_p0, *dz_p1;   /* (V Bmax, D) */
    int *cut_labels, *ext_labels;                               /* (V Bmax) */
    int *pair_left, *pair_right;                                /* (V(V-1) Bmax) */
    float *pair_target, *pair_x, *dpair_x, *dlog_rel;
    float *cut_x, *dcut_x, *dlog_cls, *prob_cls, *dprob_cls;
    float *dlog_ext, *prob_ext, *dprob_ext;
    RrHeadAct ha_rel, ha_cls, ha_ext;
    int have_rel, have_cls, have_ext;
};

/* ------------------------------------------------------------ agreement */

SpStatus pt_dist_agree(SpStatus rc) { return pt_dist_on() ? sp_dist_agree(rc) : rc; }

int pt_dist_signal(int sig) {
    if (!pt_dist_on()) return sig;
    int v = sig;
    sp_dist_allreduce_max_i(&v, 1);
    return v;
}

/* ------------------------------------------------------------ the state */

void pt_dist_free(PtDist **pd) {
    if (!pd || !*pd) return;
    PtDist *d = *pd;
    if (d->have_rel) rr_head_act_free(&d->ha_rel);
    if (d->have_cls) rr_head_act_free(&d->ha_cls);
    if (d->have_ext) rr_head_act_free(&d->ha_ext);
    void *bufs[] = {d->perm,     d->xsend,      d->xrecv,      d->xk,         d->kloc,
                    d->kshuf,    d->k1g,        d->k2g,        d->keys_cat,   d->zq,
                    d->cnt,      d->cursor,     d->gbuf,       d->z_views,    d->dz_views,
                    d->z_p0,     d->z_p1,       d->dz_p0,      d->dz_p1,      d->cut_labels,
                    d->ext_labels, d->pair_left, d->pair_right, d->pair_target, d->pair_x,
                    d->dpair_x,  d->dlog_rel,   d->cut_x,      d->dcut_x,     d->dlog_cls,
                    d->prob_cls, d->dprob_cls,  d->dlog_ext,   d->prob_ext,   d->dprob_ext};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    sp_config_free(d->cfg_local);
    free(d);
    *pd = NULL;
}

static void *zalloc(size_t bytes, const char *what, int *bad) {
    if (bytes == 0) return NULL;
    void *p = sp_aligned_alloc(bytes, what);
    if (!p) *bad = 1;
    else memset(p, 0, bytes);   /* touch every page once, here */
    return p;
}

/* The encoder's BN split count and whether it has BatchNorm at all. */
static SpStatus probe_encoder(const SpConfig *cfg, int *S, int *has_bn, char *arch, size_t n) {
    SpEncoder *e = NULL;
    SP_TRY(encoder_create(&e, cfg, NULL));
    *S = encoder_batch_multiple(e);
    *has_bn = encoder_params(e)->n_buf > 0;
    snprintf(arch, n, "%s", encoder_arch(e));
    encoder_destroy(&e);
    return SP_OK;
}

SpStatus pt_dist_state_create(PretrainState **out, const SpConfig *cfg, int L, int batch,
                              int ext_classes, int64_t n_data) {
    *out = NULL;
    if (!pt_dist_on()) return pretrain_state_create(out, cfg, L, batch, ext_classes, n_data);
    const int P = sp_dist_size(), rank = sp_dist_rank();
    PretextOptions o;
    SP_TRY(pretext_options_from_config(cfg, &o));
    int S = 1, has_bn = 0;
    char arch[64];
    SP_TRY(probe_encoder(cfg, &S, &has_bn, arch, sizeof arch));
    if (batch % P != 0)
        SP_FAIL(SP_ECONFIG,
                "train.batch_size = %d is not a multiple of the %d MPI ranks: each rank takes an "
                "equal share of every global batch",
                batch, P);
    char key[128];
    snprintf(key, sizeof key, "encoder.%s.bn_splits", arch);
    if (has_bn && S % P != 0)
        SP_FAIL(SP_ECONFIG,
                "%s = %d is not a multiple of the %d MPI ranks: each rank must hold whole "
                "BatchNorm splits (S/P each) for the run to equal the single-process one\nhint: "
                "set %s to a multiple of %d (the batch size must stay a multiple of it)",
                key, S, P, key, P);
    const int Bl = batch / P;
    const int use_inter = o.inter_coef > 0.0;
    if (use_inter && Bl < 2)
        SP_FAIL(SP_ECONFIG,
                "train.batch_size = %d gives %d spectrum per MPI rank; the relation head needs "
                "at least 2 per rank (use a batch of at least %d)",
                batch, Bl, 2 * P);
    if (o.moco_coef > 0.0) {
        int keys = (o.symmetric ? 2 : 1) * batch;
        if (o.queue < keys)
            SP_FAIL(SP_ECONFIG,
                    "pretext.moco.queue = %d is smaller than the keys of one step (%d = %s x "
                    "batch %d): use a queue of at least %d",
                    o.queue, keys, o.symmetric ? "2" : "1", batch, keys);
    }

    PtDist *d = sp_calloc(1, sizeof *d, "distributed pretraining state");
    if (!d) return SP_ENOMEM;
    d->P = P;
    d->rank = rank;
    d->Bmax = batch;
    d->Blmax = Bl;
    d->S = S;
    SpStatus rc = SP_OK;
    PretrainState *s = NULL;
    {   /* the local config: S / P splits per rank */
        char *text = sp_config_dump(cfg);
        if (!text) SP_FAIL_GOTO(rc, fail, SP_ENOMEM, "out of memory (config text)");
        rc = sp_config_from_text(&d->cfg_local, text, "distributed run config");
        free(text);
        if (rc != SP_OK) goto fail;
        if (has_bn && S > 1) {
            char set[160];
            snprintf(set, sizeof set, "%s=%d", key, S / P);
            SP_TRY_GOTO(rc, sp_config_set(d->cfg_local, set), fail);
        }
    }
    SP_TRY_GOTO(rc, pretrain_state_create(&s, d->cfg_local, L, Bl, ext_classes, n_data), fail);
    {
        const size_t B = (size_t)batch, V = (size_t)s->V, VB = V * B, D = (size_t)s->D;
        const size_t Lz = (size_t)L;
        int bad = 0;
        if (s->use_moco) {
            d->perm = zalloc(B * sizeof(int), "shuffle permutation", &bad);
            d->xsend = zalloc((size_t)Bl * Lz * sizeof(float), "key exchange", &bad);
            d->xrecv = zalloc((size_t)Bl * Lz * sizeof(float), "key exchange", &bad);
            d->xk = zalloc((size_t)Bl * Lz * sizeof(float), "key inputs", &bad);
            d->kloc = zalloc((size_t)Bl * D * sizeof(float), "keys", &bad);
            d->kshuf = zalloc(B * D * sizeof(float), "keys", &bad);
            d->k1g = zalloc(B * D * sizeof(float), "keys", &bad);
            d->k2g = zalloc(B * D * sizeof(float), "keys", &bad);
            d->keys_cat = zalloc(2 * B * D * sizeof(float), "keys", &bad);
            d->zq = zalloc(B * D * sizeof(float), "queries", &bad);
        }
        d->cnt = zalloc((size_t)4 * (size_t)P * sizeof(size_t), "exchange counts", &bad);
        d->cursor = zalloc((size_t)P * sizeof(int), "exchange counts", &bad);
        d->gbytes = (V > 0 ? V : 1) * (size_t)Bl * D * sizeof(float);
        d->gbuf = zalloc((size_t)P * d->gbytes, "all-gather buffer", &bad);
        if (s->use_views) {
            d->z_views = zalloc(VB * D * sizeof(float), "global views", &bad);
            d->dz_views = zalloc(VB * D * sizeof(float), "global views", &bad);
        }
        if (s->use_intra) {
            d->z_p0 = zalloc(VB * D * sizeof(float), "global pieces", &bad);
            d->z_p1 = zalloc(VB * D * sizeof(float), "global pieces", &bad);
            d->dz_p0 = zalloc(VB * D * sizeof(float), "global pieces", &bad);
            d->dz_p1 = zalloc(VB * D * sizeof(float), "global pieces", &bad);
            d->cut_labels = zalloc(VB * sizeof(int), "cut labels", &bad);
            d->cut_x = zalloc(VB * 2 * D * sizeof(float), "cut-piece pairs", &bad);
            d->dcut_x = zalloc(VB * 2 * D * sizeof(float), "cut-piece pairs", &bad);
            d->dlog_cls = zalloc(VB * (size_t)s->C_cut * sizeof(float), "cut head", &bad);
            d->prob_cls = zalloc(VB * (size_t)s->C_cut * sizeof(float), "cut head", &bad);
            d->dprob_cls = zalloc(VB * (size_t)s->C_cut * sizeof(float), "cut head", &bad);
            if (!bad) {
                SP_TRY_GOTO(rc, rr_head_act_create(&d->ha_cls, &s->cls, (int)VB), fail);
                d->have_cls = 1;
            }
        }
        if (s->use_inter) {
            size_t np = (size_t)rr_num_pairs(s->V, batch);
            d->pair_left = zalloc(np * sizeof(int), "pairs", &bad);
            d->pair_right = zalloc(np * sizeof(int), "pairs", &bad);
            d->pair_target = zalloc(np * sizeof(float), "pairs", &bad);
            d->pair_x = zalloc(np * 2 * D * sizeof(float), "relation pairs", &bad);
            d->dpair_x = zalloc(np * 2 * D * sizeof(float), "relation pairs", &bad);
            d->dlog_rel = zalloc(np * sizeof(float), "relation head", &bad);
            if (!bad) {
                SP_TRY_GOTO(rc, rr_head_act_create(&d->ha_rel, &s->rel, (int)np), fail);
                d->have_rel = 1;
            }
        }
        if (s->use_ext) {
            d->ext_labels = zalloc(VB * sizeof(int), "external labels", &bad);
            d->dlog_ext = zalloc(VB * (size_t)s->C_ext * sizeof(float), "external head", &bad);
            d->prob_ext = zalloc(VB * (size_t)s->C_ext * sizeof(float), "external head", &bad);
            d->dprob_ext = zalloc(VB * (size_t)s->C_ext * sizeof(float), "external head", &bad);
            if (!bad) {
                SP_TRY_GOTO(rc, rr_head_act_create(&d->ha_ext, &s->ext, (int)VB), fail);
                d->have_ext = 1;
            }
        }
        if (bad)
            SP_FAIL_GOTO(rc, fail, SP_ENOMEM,
                         "out of memory allocating the distributed pretraining buffers (global "
                         "batch %d, %d views)",
                         batch, s->V);
    }
    s->dist = d;
    sp_log(SP_LOG_INFO,
           "distributed: %d MPI ranks (%s), global batch %d = %d per rank, BatchNorm splits %d "
           "= %d per rank x %d ranks%s",
           P, sp_dist_backend(), batch, Bl, S, has_bn ? S / P : S, has_bn ? P : 1,
           has_bn ? "" : " (the encoder has no BatchNorm)");
    *out = s;
    return SP_OK;
fail:
    pretrain_state_destroy(&s);
    pt_dist_free(&d);
    return rc;
}

int pt_dist_batch_multiple(const PretrainState *s) {
    if (!s->dist) return pretrain_batch_multiple(s);
    /* local S/P splits on each of P ranks, or any multiple of P without BN */
    return s->S * s->dist->P;
}

int pt_dist_min_batch(const PretrainState *s) {
    int S = pt_dist_batch_multiple(s);
    return S > 2 ? S : 2;
}

/* -------------------------------------------------------- row movement */

/* local: V blocks of Bl rows (view-major, rb bytes each) on every rank ->
 * global: V blocks of B = P Bl rows, local row (v, i) of rank q at global
 * row v B + q + P i. Collective. */
static void gather_rows(PtDist *d, const void *local, size_t rb, int V, int Bl, void *global) {
    const int P = d->P;
    const size_t blk = (size_t)V * (size_t)Bl * rb;
    if (P == 1) {
        memcpy(global, local, blk);
        return;
    }
    PT_ASSERT(blk <= d->gbytes, "all-gather of %zu bytes per rank (buffer %zu)", blk, d->gbytes);
    sp_dist_allgather(local, blk, d->gbuf);
    const size_t B = (size_t)Bl * (size_t)P;
    unsigned char *g = global;
    for (int q = 0; q < P; q++) {
        const unsigned char *src = d->gbuf + (size_t)q * blk;
        for (int v = 0; v < V; v++)
            for (int i = 0; i < Bl; i++)
                memcpy(g + ((size_t)v * B + (size_t)q + (size_t)P * (size_t)i) * rb,
                       src + ((size_t)v * Bl + (size_t)i) * rb, rb);
    }
}

/* The inverse selection: this rank's rows of a global view-major block. */
static void local_rows(const PtDist *d, const void *global, size_t rb, int V, int Bl,
                       void *local) {
    const int P = d->P, r = d->rank;
    const size_t B = (size_t)Bl * (size_t)P;
    const unsigned char *g = global;
    unsigned char *l = local;
    for (int v = 0; v < V; v++)
        for (int i = 0; i < Bl; i++)
            memcpy(l + ((size_t)v * Bl + (size_t)i) * rb,
                   g + ((size_t)v * B + (size_t)r + (size_t)P * (size_t)i) * rb, rb);
}

/* Keys of the global batch, un-permuted, into kg (B, D): f_k on x, this
 * rank's Bl rows. With shuffle BN, shuffled row j = the spectrum of global
 * sample perm[j] is encoded by rank j % P as its local row j / P. */
static SpStatus dist_keys(PretrainState *s, PtDist *d, const float *x, int64_t epoch,
                          int64_t step, int dir, float *kg) {
    const int Bl = s->B, P = d->P, r = d->rank, B = Bl * P, D = s->D;
    const size_t L = (size_t)s->L, rowb = L * sizeof(float), kb = (size_t)D * sizeof(float);
    if (!s->o.shuffle_bn) {
        SP_TRY(moco_key_encode(&s->key, x, Bl, NULL, d->kloc));
        gather_rows(d, d->kloc, kb, 1, Bl, kg);
        return SP_OK;
    }
    int *perm = d->perm;
    moco_shuffle_perm(perm, B, s->seed_shuffle, epoch, step, dir);
    size_t *sb = d->cnt, *so = d->cnt + P, *rb = d->cnt + 2 * P, *ro = d->cnt + 3 * P;
    /* send: for each destination q, the rows j = q, q + P, ... whose sample lives here */
    size_t off = 0;
    for (int q = 0; q < P; q++) {
        so[q] = off * rowb;
        size_t c = 0;
        for (int j = q; j < B; j += P) {
            if (perm[j] % P != r) continue;
            memcpy(d->xsend + (off + c) * L, x + (size_t)(perm[j] / P) * L, rowb);
            c++;
        }
        sb[q] = c * rowb;
        off += c;
    }
    /* receive: rows j = r, r + P, ... grouped by the rank holding sample perm[j] */
    for (int q = 0; q < P; q++) rb[q] = 0;
    for (int j = r; j < B; j += P) rb[perm[j] % P] += rowb;
    off = 0;
    for (int q = 0; q < P; q++) {
        ro[q] = off;
        off += rb[q];
        d->cursor[q] = (int)(ro[q] / rowb);
    }
    sp_dist_alltoallv(d->xsend, sb, so, d->xrecv, rb, ro);
    for (int t = 0; t < Bl; t++) {
        int q = perm[r + P * t] % P;
        memcpy(d->xk + (size_t)t * L, d->xrecv + (size_t)d->cursor[q]++ * L, rowb);
    }
    SP_TRY(moco_key_encode(&s->key, d->xk, Bl, NULL, d->kloc));
    gather_rows(d, d->kloc, kb, 1, Bl, d->kshuf);
    for (int j = 0; j < B; j++)
        memcpy(kg + (size_t)perm[j] * D, d->kshuf + (size_t)j * D, kb);
    return SP_OK;
}

/* f_q forward of one call: x (n, len) -> h, z. */
static SpStatus fq_forward(PretrainState *s, SpEncAct *a, SpProjAct *pa, const float *x, int n,
                           float *h, float *z) {
    SP_TRY(encoder_forward(s->enc, a, x, n, SP_ENC_TRAIN, h));
    encoder_proj_forward(s->proj, pa, h, n, z);
    return SP_OK;
}

/* f_q backward of one call: dz (n, D) -> parameter gradients. */
static void fq_backward(PretrainState *s, SpEncAct *a, SpProjAct *pa, const float *dz, int n) {
    memset(s->dh, 0, (size_t)n * s->F * sizeof(float));
    encoder_proj_backward(s->proj, pa, dz, n, s->dh);
    encoder_backward(s->enc, a, s->dh, n);
}

/* The three RR heads on the global blocks of B spectra (every rank, the same
 * computation as one process's pretrain_forward_backward). */
static void global_heads(PretrainState *s, PtDist *d, int B, PretrainStepStats *st) {
    const size_t rows = (size_t)s->V * B * s->D * sizeof(float);
    if (s->use_views) memset(d->dz_views, 0, rows);
    if (s->use_intra) {
        memset(d->dz_p0, 0, rows);
        memset(d->dz_p1, 0, rows);
    }
    const PtHeadBufs hb = {
        .z_views = d->z_views, .z_p0 = d->z_p0, .z_p1 = d->z_p1, .dz_views = d->dz_views,
        .dz_p0 = d->dz_p0, .dz_p1 = d->dz_p1, .cut_labels = d->cut_labels,
        .ext_labels = d->ext_labels, .pair_left = d->pair_left, .pair_right = d->pair_right,
        .pair_target = d->pair_target, .pair_x = d->pair_x, .dpair_x = d->dpair_x,
        .dlog_rel = d->dlog_rel, .cut_x = d->cut_x, .dcut_x = d->dcut_x,
        .dlog_cls = d->dlog_cls, .prob_cls = d->prob_cls, .dprob_cls = d->dprob_cls,
        .dlog_ext = d->dlog_ext, .prob_ext = d->prob_ext, .dprob_ext = d->dprob_ext,
        .ha_rel = &d->ha_rel, .ha_cls = &d->ha_cls, .ha_ext = &d->ha_ext};
    pt_heads_step(s, &hb, B, st);
}

static int is_head_group(const PretrainState *s, int i) {
    return strcmp(s->group_names[i], SP_GROUP_ENCODER_Q) != 0 &&
           strcmp(s->group_names[i], SP_GROUP_PROJ_Q) != 0;
}

/* Gradients and BN running statistics made global and identical on every
 * rank: f_q and its projection head summed (each rank's share already
 * carries the global normalisation), the RR heads (computed identically on
 * every rank) broadcast from rank 0, encoder running statistics averaged. */
static void reduce_step(PretrainState *s, PtDist *d) {
    for (int i = 0; i < s->ngroups; i++) {
        SpParams *p = s->groups[i];
        if (is_head_group(s, i)) {
            sp_dist_bcast(p->grad, p->n_param * sizeof(float), 0);
            if (p->n_buf) sp_dist_bcast(p->buf, p->n_buf * sizeof(float), 0);
        } else {
            sp_dist_allreduce_sum_f(p->grad, p->n_param);
        }
    }
    const float inv = (float)(1.0 / (double)d->P);
    SpParams *bufs[2] = {encoder_params(s->enc), s->use_moco ? encoder_params(s->key.enc) : NULL};
    for (int k = 0; k < 2; k++) {
        SpParams *p = bufs[k];
        if (!p || p->n_buf == 0 || d->P == 1) continue;
        sp_dist_allreduce_sum_f(p->buf, p->n_buf);
        for (size_t j = 0; j < p->n_buf; j++) p->buf[j] *= inv;
    }
}

SpStatus pt_dist_forward_backward(PretrainState *s, int64_t epoch, int64_t step,
                                  PretrainStepStats *st) {
    PtDist *d = s->dist;
    PT_ASSERT(d != NULL, "pt_dist_forward_backward on a single-process state");
    const int Bl = s->B, P = d->P, B = Bl * P, V = s->V, VBl = V * Bl, D = s->D;
    const PretextOptions *o = &s->o;
    PT_ASSERT(Bl >= 1, "pt_dist_forward_backward before the batch was prepared");
    memset(st, 0, sizeof *st);
    st->B = B;
    for (int i = 0; i < s->ngroups; i++) sp_params_zero_grad(s->groups[i]);
    const size_t kb = (size_t)D * sizeof(float);
    double moco[3] = {0.0, 0.0, 0.0};   /* loss (sum of directions), rows, correct */

    /* ---- MoCo: the single process's call order (k2, q1, L12, k1, q2, L21) */
    if (s->use_moco) {
        const float scale = (float)(o->moco_coef / (double)P);
        int nc = 0;
        SP_TRY(dist_keys(s, d, s->im2, epoch, step, 0, d->k2g));
        local_rows(d, d->k2g, kb, 1, Bl, s->k2);
        memset(s->dz_q1, 0, (size_t)Bl * D * sizeof(float));
        SP_TRY(fq_forward(s, s->a_q1, s->pa_q1, s->im1, Bl, s->h_q1, s->z_q1));
        double l12 = infonce_loss(s->dz_q1, s->z_q1, s->k2, s->queue.data, Bl, D, s->queue.Q,
                                  o->temperature, scale, &nc, s->nce_work);
        fq_backward(s, s->a_q1, s->pa_q1, s->dz_q1, Bl);
        moco[0] = l12;
        moco[1] = Bl;
        moco[2] = nc;
        gather_rows(d, s->z_q1, kb, 1, Bl, d->zq);
        if (o->symmetric) {
            SP_TRY(dist_keys(s, d, s->im1, epoch, step, 1, d->k1g));
            local_rows(d, d->k1g, kb, 1, Bl, s->k1);
            memset(s->dz_q2, 0, (size_t)Bl * D * sizeof(float));
            SP_TRY(fq_forward(s, s->a_q1, s->pa_q1, s->im2, Bl, s->h_q2, s->z_q2));
            nc = 0;
            double l21 = infonce_loss(s->dz_q2, s->z_q2, s->k1, s->queue.data, Bl, D,
                                      s->queue.Q, o->temperature, scale, &nc, s->nce_work);
            fq_backward(s, s->a_q1, s->pa_q1, s->dz_q2, Bl);
            moco[0] += l21;
            moco[1] += Bl;
            moco[2] += nc;
            memcpy(d->keys_cat, d->k1g, (size_t)B * kb);
            memcpy(d->keys_cat + (size_t)B * D, d->k2g, (size_t)B * kb);
        } else {
            memcpy(d->keys_cat, d->k2g, (size_t)B * kb);
        }
        s->have_keys = 1;
    }

    /* ---- views and cut pieces: local forward, global blocks */
    if (s->use_views) {
        SP_TRY(fq_forward(s, s->a_views, s->pa_views, s->views, VBl, s->h_views, s->z_views));
        gather_rows(d, s->z_views, kb, V, Bl, d->z_views);
        if (s->use_ext) gather_rows(d, s->ext_labels, sizeof(int), V, Bl, d->ext_labels);
    }
    if (s->use_intra) {
        SP_TRY(fq_forward(s, s->a_p0, s->pa_p0, s->p0, VBl, s->h_p0, s->z_p0));
        SP_TRY(fq_forward(s, s->a_p1, s->pa_p1, s->p1, VBl, s->h_p1, s->z_p1));
        gather_rows(d, s->z_p0, kb, V, Bl, d->z_p0);
        gather_rows(d, s->z_p1, kb, V, Bl, d->z_p1);
        gather_rows(d, s->cut_labels, sizeof(int), V, Bl, d->cut_labels);
    }

    /* ---- RR heads on the global batch (every rank), then this rank's rows */
    global_heads(s, d, B, st);
    if (s->use_views) {
        local_rows(d, d->dz_views, kb, V, Bl, s->dz_views);
        fq_backward(s, s->a_views, s->pa_views, s->dz_views, VBl);
    }
    if (s->use_intra) {
        local_rows(d, d->dz_p0, kb, V, Bl, s->dz_p0);
        local_rows(d, d->dz_p1, kb, V, Bl, s->dz_p1);
        fq_backward(s, s->a_p0, s->pa_p0, s->dz_p0, VBl);
        fq_backward(s, s->a_p1, s->pa_p1, s->dz_p1, VBl);
    }

    /* ---- global statistics, gradients and running statistics */
    if (s->use_moco) {
        sp_dist_allreduce_sum_d(moco, 3);
        st->l_moco = moco[0] / (double)P;   /* every rank scored Bl rows per direction */
        st->moco_n = (int64_t)moco[1];
        st->moco_correct = (int64_t)moco[2];
    }
    reduce_step(s, d);
    st->loss = o->inter_coef * st->l_inter * s->use_inter +
               o->intra_coef * st->l_intra * s->use_intra +
               o->ext_coef * st->l_ext * s->use_ext + o->moco_coef * st->l_moco * s->use_moco;
    st->z_std = s->use_moco ? pretext_collapse_std(d->zq, B, D)
                            : s->use_views ? pretext_collapse_std(d->z_views, B, D)
                                           : pretext_collapse_std(d->z_p0, B, D);
    return SP_OK;
}

SpStatus pt_dist_step(PretrainState *s, const float *x, int B, const int64_t *index,
                      const int32_t *extvar, int64_t epoch, int64_t step, float lr,
                      PretrainStepStats *st) {
    PtDist *d = s->dist;
    PT_ASSERT(d != NULL, "pt_dist_step on a single-process state");
    if (B < 1 || B % d->P != 0 || B > d->Bmax)
        SP_FAIL(SP_EINPUT,
                "distributed pretraining batch of %d spectra (needs a multiple of the %d ranks, "
                "at most %d)",
                B, d->P, d->Bmax);
    /* rank-local input checks and augmentation, then agree before any exchange */
    SpStatus rc = pretrain_prepare(s, x, B / d->P, index, extvar, epoch);
    rc = sp_dist_agree(rc);
    if (rc != SP_OK) return rc;
    if (s->use_moco) moco_key_momentum(&s->key, s->enc, s->proj, s->o.momentum);
    SP_TRY(pt_dist_forward_backward(s, epoch, step, st));
    /* every value checked is identical on all ranks: the guards agree */
    return pt_step_finish(s, d->keys_cat, B, epoch, step, lr, st);
}

/* ---------------------------------------------------------- consistency */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t params_hash(uint64_t h, const SpParams *p) {
    h = fnv(h, p->data, p->n_param * sizeof(float));
    if (p->n_buf) h = fnv(h, p->buf, p->n_buf * sizeof(float));
    return h;
}

static uint64_t state_hash(const PretrainState *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < s->ngroups; i++) {
        h = params_hash(h, s->groups[i]);
        h = fnv(h, s->optim[i].m, s->optim[i].n * sizeof(float));
        if (s->optim[i].v) h = fnv(h, s->optim[i].v, s->optim[i].n * sizeof(float));
    }
    if (s->use_moco) {
        h = params_hash(h, encoder_params_const(s->key.enc));
        h = params_hash(h, encoder_proj_params_const(s->key.proj));
        h = fnv(h, s->queue.data, (size_t)s->queue.D * (size_t)s->queue.Q * sizeof(float));
        h = fnv(h, &s->queue.ptr, sizeof s->queue.ptr);
    }
    return h;
}

SpStatus pt_dist_check_consistent(const PretrainState *s) {
    if (!s->dist || s->dist->P == 1) return SP_OK;
    const int P = s->dist->P;
    uint64_t mine = state_hash(s), all[1024];
    uint64_t *hs = P <= 1024 ? all : malloc((size_t)P * sizeof *hs);   /* checkpoint time only */
    if (!hs) SP_FAIL(SP_ENOMEM, "out of memory (consistency check)");
    sp_dist_allgather_u64(mine, hs);
    int bad = -1;
    for (int q = 1; q < P && bad < 0; q++)
        if (hs[q] != hs[0]) bad = q;
    if (hs != all) free(hs);
    if (bad >= 0)
        SP_FAIL(SP_EINTERNAL,
                "MPI ranks diverged: the model state of rank %d differs from rank 0's (hash "
                "mismatch before a checkpoint); this is a bug (or ranks with different builds)",
                bad);
    return SP_OK;
}

SpStatus pt_dist_dump(const PretrainState *s) {
    const char *dir = getenv("SPECSSL_DIST_DUMP");
    if (!dir || !dir[0] || !s->dist) return SP_OK;
    char path[SP_PATH_MAX];
    int k = snprintf(path, sizeof path, "%s/rank%d.h5", dir, sp_dist_rank());
    if (k < 0 || k >= (int)sizeof path) SP_FAIL(SP_EUSAGE, "SPECSSL_DIST_DUMP: path too long");
    SpH5Writer w;
    SpStatus rc = sp_h5_create_atomic(&w, path);
    if (rc == SP_OK) {
        rc = pretrain_state_save(s, w.f);
        if (rc == SP_OK) rc = sp_h5_commit(&w);
        else sp_h5_abort(&w);
    }
    if (rc == SP_OK) sp_log(SP_LOG_INFO, "SPECSSL_DIST_DUMP: wrote %s", path);
    return pt_dist_agree(rc);
}

/* -------------------------------------------------------- normalisation */

SpStatus pt_dist_norm_fit(SpNorm *nm, SpNormKind kind, SpDataset *ds) {
    if (!pt_dist_on()) return norm_fit(nm, kind, ds, NULL, ds->n);
    SpStatus rc = SP_OK;
    if (pt_dist_is_root()) rc = norm_fit(nm, kind, ds, NULL, ds->n);
    rc = sp_dist_agree(rc);
    if (rc != SP_OK) return rc;
    int64_t hdr[3] = {pt_dist_is_root() ? (int64_t)nm->kind : 0, pt_dist_is_root() ? nm->L : 0,
                      pt_dist_is_root() ? nm->count : 0};
    double mm[2] = {nm->gmin, nm->gmax};
    int has_vec = pt_dist_is_root() && nm->mean != NULL;
    sp_dist_bcast(hdr, sizeof hdr, 0);
    sp_dist_bcast(mm, sizeof mm, 0);
    sp_dist_bcast(&has_vec, sizeof has_vec, 0);
    if (!pt_dist_is_root()) {
        memset(nm, 0, sizeof *nm);
        nm->kind = (SpNormKind)hdr[0];
        nm->L = (int)hdr[1];
        nm->count = hdr[2];
        nm->gmin = mm[0];
        nm->gmax = mm[1];
        if (has_vec) {
            nm->mean = malloc((size_t)nm->L * sizeof(double));
            nm->std = malloc((size_t)nm->L * sizeof(double));
            if (!nm->mean || !nm->std) rc = sp_error_set(SP_ENOMEM, __FILE__, __LINE__,
                                                         "out of memory (normalisation)");
        }
    }
    rc = sp_dist_agree(rc);
    if (rc != SP_OK) return rc;
    if (has_vec) {
        sp_dist_bcast(nm->mean, (size_t)nm->L * sizeof(double), 0);
        sp_dist_bcast(nm->std, (size_t)nm->L * sizeof(double), 0);
    }
    return SP_OK;
}

/* --------------------------------------------------------------- loader */

struct PtLoader {
    SpLoader *ld;          /* single process: the data module's loader */
    /* distributed */
    SpDataset *ds;
    const SpNorm *norm;
    int B, P, rank, shuffle;
    uint64_t seed;
    int64_t n, n_emit, emitted;
    int64_t *order;        /* [n] epoch order */
    int64_t *blk_order;    /* [nblocks] streaming */
    int64_t *win_perm;     /* [window * block_rows] streaming */
    int64_t *wfirst, *wcnt; /* [window] first row and row count of each block of a window */
    int64_t nblocks, block_rows;
    int window;
    int started;
    int Bl;                /* ceil(B / P) */
    float *x;              /* [Bl, L] */
    int64_t *index;        /* [Bl] */
    int32_t *labels, *extvar;
    int64_t *sort_idx;     /* [Bl] dataset indices, sorted for the reads */
    int *sort_pos;         /* [Bl] their batch positions */
    float *scratch;        /* [Bl, L] rows read in dataset order */
};

void pt_loader_free(PtLoader **pl) {
    if (!pl || !*pl) return;
    PtLoader *l = *pl;
    loader_free(&l->ld);
    free(l->order);
    free(l->blk_order);
    free(l->win_perm);
    free(l->wfirst);
    free(l->wcnt);
    free(l->x);
    free(l->index);
    free(l->labels);
    free(l->extvar);
    free(l->sort_idx);
    free(l->sort_pos);
    free(l->scratch);
    free(l);
    *pl = NULL;
}

SpStatus pt_loader_create(PtLoader **out, SpDataset *ds, int batch, int drop_last, uint64_t seed,
                          const SpNorm *norm) {
    *out = NULL;
    PtLoader *l = sp_calloc(1, sizeof *l, "batch loader");
    if (!l) return SP_ENOMEM;
    SpStatus rc = SP_OK;
    if (!pt_dist_on()) {
        SP_TRY_GOTO(rc, loader_create(&l->ld, ds, NULL, 0, batch, 1, drop_last, seed, norm), fail);
        *out = l;
        return SP_OK;
    }
    if (batch <= 0) SP_FAIL_GOTO(rc, fail, SP_EINPUT, "batch size must be positive (got %d)", batch);
    if (norm && norm->kind == SP_NORM_STANDARDISE && norm->L != ds->L)
        SP_FAIL_GOTO(rc, fail, SP_EINPUT,
                     "'%s': spectra have L=%d points but the normalisation was fitted on L=%d",
                     ds->path, ds->L, norm->L);
    l->ds = ds;
    l->norm = norm;
    l->B = batch;
    l->P = sp_dist_size();
    l->rank = sp_dist_rank();
    l->shuffle = 1;
    l->seed = seed;
    l->n = ds->n;
    l->n_emit = drop_last ? (l->n / batch) * batch : l->n;
    if (l->n_emit == 0)
        SP_FAIL_GOTO(rc, fail, SP_EINPUT,
                     "'%s': %lld rows are fewer than one batch of %d (drop_last is set)", ds->path,
                     (long long)l->n, batch);
    l->Bl = (batch + l->P - 1) / l->P;
    const size_t L = (size_t)ds->L, Bl = (size_t)l->Bl;
    int bad = 0;
    l->order = zalloc((size_t)l->n * sizeof(int64_t), "epoch order", &bad);
    if (!ds->in_memory) {
        l->block_rows = ds->block_rows > 0 ? ds->block_rows : 256;
        l->window = ds->shuffle_window > 0 ? ds->shuffle_window : 8;
        l->nblocks = (l->n + l->block_rows - 1) / l->block_rows;
        l->blk_order = zalloc((size_t)l->nblocks * sizeof(int64_t), "block order", &bad);
        l->win_perm = zalloc((size_t)l->window * (size_t)l->block_rows * sizeof(int64_t),
                             "window order", &bad);
        l->wfirst = zalloc((size_t)l->window * sizeof(int64_t), "window order", &bad);
        l->wcnt = zalloc((size_t)l->window * sizeof(int64_t), "window order", &bad);
    }
    l->x = zalloc(Bl * L * sizeof(float), "batch", &bad);
    l->index = zalloc(Bl * sizeof(int64_t), "batch", &bad);
    if (ds->labels) l->labels = zalloc(Bl * sizeof(int32_t), "batch", &bad);
    if (ds->extvar) l->extvar = zalloc(Bl * sizeof(int32_t), "batch", &bad);
    l->sort_idx = zalloc(Bl * sizeof(int64_t), "batch", &bad);
    l->sort_pos = zalloc(Bl * sizeof(int), "batch", &bad);
    if (!ds->in_memory) l->scratch = zalloc(Bl * L * sizeof(float), "batch", &bad);
    if (bad) SP_FAIL_GOTO(rc, fail, SP_ENOMEM, "out of memory allocating the sharded loader");
    *out = l;
    return SP_OK;
fail:
    pt_loader_free(&l);
    return rc;
}

int64_t pt_loader_num_rows(const PtLoader *l) {
    return l->ld ? loader_num_rows(l->ld) : l->n_emit;
}

/* The data module's shuffle (loader.c): Fisher-Yates from the top with
 * sp_rng_below, so the distributed order equals SpLoader's. */
static void shuffle_i64(SpRng *r, int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = sp_rng_below(r, i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* The epoch order of SpLoader (shuffle on, every row selected), from the
 * indices only: in memory, one shuffle of 0..n-1; streamed, a shuffle of the
 * blocks, then per window of `window` blocks (in that order) a shuffle of
 * its rows, all from one stream (seed, epoch, "load"). */
static void epoch_order(PtLoader *l, int64_t epoch, int64_t *order) {
    SpRng rng;
    sp_rng_stream(&rng, l->seed, (uint64_t)epoch, 0x6c6f6164ULL /* "load" */, 0);
    const int64_t n = l->n;
    if (l->ds->in_memory) {
        for (int64_t i = 0; i < n; i++) order[i] = i;
        if (l->shuffle) shuffle_i64(&rng, order, n);
        return;
    }
    const int64_t R = l->block_rows;
    for (int64_t b = 0; b < l->nblocks; b++) l->blk_order[b] = b;
    if (l->shuffle) shuffle_i64(&rng, l->blk_order, l->nblocks);
    int64_t pos = 0;
    for (int64_t nb = 0; nb < l->nblocks;) {
        /* one window: rows of up to `window` blocks, ascending within each */
        int64_t filled = 0, *first = l->wfirst, *cnt = l->wcnt;
        for (int w = 0; w < l->window && nb < l->nblocks; w++, nb++) {
            int64_t b = l->blk_order[nb];
            first[w] = b * R;
            cnt[w] = (b + 1) * R <= n ? R : n - b * R;
            filled += cnt[w];
        }
        for (int64_t i = 0; i < filled; i++) l->win_perm[i] = i;
        if (l->shuffle) shuffle_i64(&rng, l->win_perm, filled);
        for (int64_t i = 0; i < filled; i++) {
            int64_t k = l->win_perm[i];   /* row k of the window -> its block */
            int v = 0;
            while (k >= cnt[v]) k -= cnt[v++];
            order[pos++] = first[v] + k;
        }
    }
}

SpStatus pt_loader_epoch_order(PtLoader *l, int64_t epoch, int64_t *order) {
    if (l->ld) SP_FAIL(SP_EINTERNAL, "pt_loader_epoch_order on a single-process loader");
    epoch_order(l, epoch, order);
    return SP_OK;
}

SpStatus pt_loader_start_epoch(PtLoader *l, int64_t epoch) {
    if (l->ld) return loader_start_epoch(l->ld, epoch);
    SP_TRY(pt_loader_epoch_order(l, epoch, l->order));
    l->emitted = 0;
    l->started = 1;
    return SP_OK;
}

SpStatus pt_loader_next(PtLoader *l, SpBatch *b) {
    if (l->ld) return loader_next(l->ld, b);
    if (!l->started) SP_TRY(pt_loader_start_epoch(l, 0));
    SpDataset *ds = l->ds;
    const size_t L = (size_t)ds->L;
    int64_t left = l->n_emit - l->emitted;
    int n = left < l->B ? (int)left : l->B;
    b->n = n;
    b->L = ds->L;
    b->x = l->x;
    b->index = l->index;
    b->labels = l->labels;
    b->extvar = l->extvar;
    if (n == 0) return SP_OK;
    int m = 0;   /* this rank's rows: positions rank, rank + P, ... */
    for (int p = l->rank; p < n; p += l->P) l->index[m++] = l->order[l->emitted + p];
    if (ds->in_memory) {
        for (int t = 0; t < m; t++) SP_TRY(dataset_read_rows(ds, l->index[t], 1, l->x + t * L));
    } else {
        /* read in dataset order, one hyperslab per run of consecutive rows */
        for (int t = 0; t < m; t++) {
            l->sort_idx[t] = l->index[t];
            l->sort_pos[t] = t;
        }
        for (int gap = m / 2; gap > 0; gap /= 2)   /* shell sort: no allocation */
            for (int i = gap; i < m; i++) {
                int64_t v = l->sort_idx[i];
                int pv = l->sort_pos[i], j = i;
                for (; j >= gap && l->sort_idx[j - gap] > v; j -= gap) {
                    l->sort_idx[j] = l->sort_idx[j - gap];
                    l->sort_pos[j] = l->sort_pos[j - gap];
                }
                l->sort_idx[j] = v;
                l->sort_pos[j] = pv;
            }
        for (int t = 0; t < m;) {
            int run = 1;
            while (t + run < m && l->sort_idx[t + run] == l->sort_idx[t] + run) run++;
            SP_TRY(dataset_read_rows(ds, l->sort_idx[t], run, l->scratch + (size_t)t * L));
            t += run;
        }
        for (int t = 0; t < m; t++)
            memcpy(l->x + (size_t)l->sort_pos[t] * L, l->scratch + (size_t)t * L,
                   L * sizeof(float));
    }
    for (int t = 0; t < m; t++) {
        if (l->labels) l->labels[t] = ds->labels[l->index[t]];
        if (l->extvar) l->extvar[t] = ds->extvar[l->index[t]];
    }
    if (l->norm) norm_apply(l->norm, l->x, m, ds->L);
    l->emitted += n;
    return SP_OK;
}
