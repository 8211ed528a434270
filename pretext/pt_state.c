/* pt_state.c - the combined pretraining objective and one training step
 * (reference/specrrmoco.md §5-7):
 *
 *   L = c_inter L_inter + c_intra L_intra + c_ext L_ext + c_moco (L12 + L21)
 *
 * One step (pretrain_step):
 *   1. augment (pretrain_prepare): MoCo pair im1, im2 (view slots 0, 1); V RR
 *      views (slots 2 + v) and their cut pieces, view-major;
 *   2. momentum update of f_k (§6.3 step 1);
 *   3. forward + backward (pretrain_forward_backward), f_q called in the
 *      reference order q1, q2, views, pieces0, pieces1 (BN running statistics
 *      depend on it), f_k on shuffled im2 then im1;
 *   4. NaN/Inf guard on every loss term and every gradient;
 *   5. enqueue [k1; k2] (k1 first), queue read by both directions before it;
 *   6. optimizer step over f_q, its projection head and the RR heads in use.
 * A head whose coefficient is 0 is not built and costs nothing; with
 * pretext.moco.coef = 0 there is no key encoder and no queue.
 *
 * Allocation: pretrain_state_create only (every buffer for maxB). Threading:
 * the step runs layers and augmentations that open their own OpenMP regions;
 * the glue loops here are serial and cheap (pair assembly, scatters).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt_dist.h"
#include "pt_internal.h"
#include "sp_checkpoint.h"
#include "sp_h5.h"
#include "sp_layers.h"
#include "sp_log.h"
#include "sp_losses.h"

static size_t g_alloc_bytes;   /* buffers of the state being created (serial) */

static float *alloc_f(size_t n, const char *what, int *bad) {
    if (n == 0) return NULL;
    g_alloc_bytes += n * sizeof(float);
    float *p = sp_aligned_alloc(n * sizeof(float), what);
    if (!p) *bad = 1;
    else memset(p, 0, n * sizeof(float));   /* touch every page once, here */
    return p;
}

static int *alloc_i(size_t n, const char *what, int *bad) {
    if (n == 0) return NULL;
    g_alloc_bytes += n * sizeof(int);
    int *p = sp_aligned_alloc(n * sizeof(int), what);
    if (!p) *bad = 1;
    else memset(p, 0, n * sizeof(int));
    return p;
}

static SpStatus optim_kind(const SpConfig *cfg, SpOptimKind *k) {
    const char *name = sp_cfg_str(cfg, "optim.name");
    if (strcmp(name, "sgd") == 0) *k = SP_OPT_SGD;
    else if (strcmp(name, "adam") == 0) *k = SP_OPT_ADAM;
    else if (strcmp(name, "adamw") == 0) *k = SP_OPT_ADAMW;
    else SP_FAIL(SP_ECONFIG, "optim.name: unknown optimizer '%s'", name);
    return SP_OK;
}

static SpStatus add_group(PretrainState *s, SpParams *p, const char *name, const SpConfig *cfg) {
    PT_ASSERT(s->ngroups < PT_MAX_GROUPS, "too many parameter groups");
    SpOptimKind kind = SP_OPT_SGD;
    SP_TRY(optim_kind(cfg, &kind));
    int i = s->ngroups;
    SP_TRY(optim_init(&s->optim[i], kind, p));
    s->ngroups++;
    SpOptim *o = &s->optim[i];
    o->momentum = (float)sp_cfg_float(cfg, "optim.momentum");
    o->nesterov = sp_cfg_bool(cfg, "optim.nesterov");
    o->weight_decay = (float)sp_cfg_float(cfg, "optim.weight_decay");
    o->beta1 = (float)sp_cfg_float(cfg, "optim.beta1");
    o->beta2 = (float)sp_cfg_float(cfg, "optim.beta2");
    o->eps = (float)sp_cfg_float(cfg, "optim.eps");
    s->groups[i] = p;
    s->group_names[i] = name;
    return SP_OK;
}

void pretrain_state_destroy(PretrainState **ps) {
    if (!ps || !*ps) return;
    PretrainState *s = *ps;
    for (int i = 0; i < s->ngroups; i++) optim_free(&s->optim[i]);
    encoder_act_destroy(&s->a_q1);
    encoder_act_destroy(&s->a_views);
    encoder_act_destroy(&s->a_p0);
    encoder_act_destroy(&s->a_p1);
    encoder_proj_act_destroy(&s->pa_q1);
    encoder_proj_act_destroy(&s->pa_views);
    encoder_proj_act_destroy(&s->pa_p0);
    encoder_proj_act_destroy(&s->pa_p1);
    rr_head_act_free(&s->ha_rel);
    rr_head_act_free(&s->ha_cls);
    rr_head_act_free(&s->ha_ext);
    rr_head_free(&s->rel);
    rr_head_free(&s->cls);
    rr_head_free(&s->ext);
    moco_key_free(&s->key);
    moco_queue_free(&s->queue);
    aug_pipeline_destroy(&s->aug);
    encoder_proj_destroy(&s->proj);
    encoder_destroy(&s->enc);
    float *fbufs[] = {s->im1, s->im2, s->views, s->p0, s->p1, s->h_q1, s->h_q2, s->h_views,
                      s->h_p0, s->h_p1, s->z_q1, s->z_q2, s->z_views, s->z_p0, s->z_p1,
                      s->dz_q1, s->dz_q2, s->dz_views, s->dz_p0, s->dz_p1, s->dh, s->k1, s->k2,
                      s->keys_cat, s->nce_work, s->pair_target, s->pair_x, s->dpair_x,
                      s->dlog_rel, s->cut_x, s->dcut_x, s->dlog_cls, s->prob_cls, s->dprob_cls,
                      s->dlog_ext, s->prob_ext, s->dprob_ext};
    for (size_t i = 0; i < sizeof fbufs / sizeof fbufs[0]; i++) free(fbufs[i]);
    free(s->sample_idx);
    free(s->cut_labels);
    free(s->ext_labels);
    free(s->perm);
    free(s->pair_left);
    free(s->pair_right);
    pt_dist_free(&s->dist);
    free(s);
    *ps = NULL;
}

SpStatus pretrain_state_create(PretrainState **out, const SpConfig *cfg, int L, int maxB,
                               int ext_classes, int64_t n_data) {
    *out = NULL;
    PretrainState *s = sp_calloc(1, sizeof *s, "pretraining state");
    if (!s) return SP_ENOMEM;
    s->rel.iw0 = s->cls.iw0 = s->ext.iw0 = -1;
    SpStatus rc = SP_OK;
    PretextOptions *o = &s->o;
    SP_TRY_GOTO(rc, pretext_options_from_config(cfg, o), fail);
    s->L = L;
    s->maxB = maxB;
    s->V = o->views;
    s->use_moco = o->moco_coef > 0.0;
    s->use_inter = o->inter_coef > 0.0;
    s->use_intra = o->intra_coef > 0.0;
    s->use_ext = o->ext_coef > 0.0 && ext_classes > 0;
    s->use_views = s->use_inter || s->use_ext;
    s->C_cut = o->cut_classes;
    s->C_ext = s->use_ext ? ext_classes : 0;
    if (!s->use_moco && !s->use_inter && !s->use_intra && !s->use_ext)
        SP_FAIL_GOTO(rc, fail, SP_ECONFIG,
                     "pretext.rr.ext_coef is the only non-zero loss weight but the data has no "
                     "external variable (/extvar): nothing to train");
    uint64_t seed_init = pt_derive_seed(o->seed, PT_SEED_INIT);
    s->seed_aug = pt_derive_seed(o->seed, PT_SEED_AUG);
    s->seed_shuffle = pt_derive_seed(o->seed, PT_SEED_SHUFFLE);

    /* f_q and its projection head */
    SpRng rng;
    sp_rng_stream(&rng, seed_init, PT_INIT_ENC, 0, 0);
    SP_TRY_GOTO(rc, encoder_create(&s->enc, cfg, &rng), fail);
    SP_TRY_GOTO(rc, encoder_check_length(s->enc, L), fail);
    s->F = encoder_feature_dim(s->enc);
    s->S = encoder_batch_multiple(s->enc);
    sp_rng_stream(&rng, seed_init, PT_INIT_PROJ, 0, 0);
    SP_TRY_GOTO(rc, encoder_proj_create_cfg(&s->proj, cfg, s->F, &rng), fail);
    s->D = encoder_proj_out_dim(s->proj);

    /* batch checks */
    if (maxB < 1) SP_FAIL_GOTO(rc, fail, SP_ECONFIG, "train.batch_size: %d spectra", maxB);
    if (s->use_inter && maxB < 2)
        SP_FAIL_GOTO(rc, fail, SP_ECONFIG,
                     "train.batch_size = %d: the relation head needs at least 2 spectra per batch "
                     "(its negatives pair different spectra)",
                     maxB);
    if (maxB < s->S)
        SP_FAIL_GOTO(rc, fail, SP_ECONFIG,
                     "train.batch_size = %d is smaller than the encoder's BatchNorm splits (%d, "
                     "encoder.%s.bn_splits)",
                     maxB, s->S, encoder_arch(s->enc));

    /* MoCo */
    if (s->use_moco) {
        int keys = (o->symmetric ? 2 : 1) * maxB;
        if (o->queue < keys)
            SP_FAIL_GOTO(rc, fail, SP_ECONFIG,
                         "pretext.moco.queue = %d is smaller than the keys of one step (%d = %s "
                         "x batch %d): use a queue of at least %d",
                         o->queue, keys, o->symmetric ? "2" : "1", maxB, keys);
        if (n_data > 0 && o->queue > n_data)
            sp_log(SP_LOG_WARN,
                   "pretext.moco.queue = %d exceeds the %lld spectra per epoch: every spectrum's "
                   "own older keys stay in the queue as negatives (reference quirk 4)",
                   o->queue, (long long)n_data);
        sp_rng_stream(&rng, seed_init, PT_INIT_QUEUE, 0, 0);
        SP_TRY_GOTO(rc, moco_queue_init(&s->queue, s->D, o->queue, &rng), fail);
        /* one (B, L) context serves k2, q1, k1, q2 in turn (see forward_backward) */
        SP_TRY_GOTO(rc, encoder_act_create(&s->a_q1, s->enc, maxB, L), fail);
        SP_TRY_GOTO(rc, moco_key_create(&s->key, cfg, s->enc, s->proj, maxB, L, s->a_q1), fail);
    }

    /* RR heads */
    if (s->use_intra)
        SP_TRY_GOTO(rc, aug_cut_check(L, o->piece_size, s->C_cut, encoder_min_length(s->enc), &s->w),
                    fail);
    if (s->use_inter) {
        sp_rng_stream(&rng, seed_init, PT_INIT_REL, 0, 0);
        SP_TRY_GOTO(rc, rr_head_create(&s->rel, RR_HEAD_MLP, 2 * s->D, o->hidden, 1, &rng), fail);
    }
    if (s->use_intra) {
        sp_rng_stream(&rng, seed_init, PT_INIT_CLS, 0, 0);
        SP_TRY_GOTO(rc,
                    rr_head_create(&s->cls, RR_HEAD_MLP, 2 * s->D, o->hidden, s->C_cut, &rng),
                    fail);
    }
    if (s->use_ext) {
        sp_rng_stream(&rng, seed_init, PT_INIT_EXT, 0, 0);
        SP_TRY_GOTO(rc, rr_head_create(&s->ext, RR_HEAD_LINEAR, s->D, 0, s->C_ext, &rng), fail);
    }

    /* augmentation */
    {
        AugSpec spec;
        SP_TRY_GOTO(rc, aug_spec_from_config(&spec, cfg), fail);
        SP_TRY_GOTO(rc, aug_pipeline_create(&s->aug, &spec, L), fail);
    }

    /* parameter groups + optimizers */
    SP_TRY_GOTO(rc, add_group(s, encoder_params(s->enc), SP_GROUP_ENCODER_Q, cfg), fail);
    SP_TRY_GOTO(rc, add_group(s, encoder_proj_params(s->proj), SP_GROUP_PROJ_Q, cfg), fail);
    if (s->use_inter)
        SP_TRY_GOTO(rc, add_group(s, &s->rel.params, "heads/relation_head", cfg), fail);
    if (s->use_intra) SP_TRY_GOTO(rc, add_group(s, &s->cls.params, "heads/cls_head", cfg), fail);
    if (s->use_ext) SP_TRY_GOTO(rc, add_group(s, &s->ext.params, "heads/tmp_cls_head", cfg), fail);

    /* contexts and buffers */
    g_alloc_bytes = 0;
    {
        const size_t B = (size_t)maxB, VB = (size_t)s->V * B, Lz = (size_t)L;
        const size_t F = (size_t)s->F, D = (size_t)s->D, w = (size_t)s->w;
        int bad = 0;
        s->sample_idx = alloc_i(B, "sample indices", &bad);
        if (s->use_moco) {
            SP_TRY_GOTO(rc, encoder_proj_act_create(&s->pa_q1, s->proj, maxB), fail);
            s->im1 = alloc_f(B * Lz, "MoCo views", &bad);
            s->im2 = alloc_f(B * Lz, "MoCo views", &bad);
            s->h_q1 = alloc_f(B * F, "features", &bad);
            s->z_q1 = alloc_f(B * D, "features", &bad);
            s->dz_q1 = alloc_f(B * D, "features", &bad);
            if (o->symmetric) {
                s->h_q2 = alloc_f(B * F, "features", &bad);
                s->z_q2 = alloc_f(B * D, "features", &bad);
                s->dz_q2 = alloc_f(B * D, "features", &bad);
            }
            s->k1 = alloc_f(B * D, "keys", &bad);
            s->k2 = alloc_f(B * D, "keys", &bad);
            s->keys_cat = alloc_f(2 * B * D, "keys", &bad);
            s->perm = alloc_i(B, "shuffle permutation", &bad);
            s->nce_work = alloc_f(infonce_work_floats(maxB, o->queue), "InfoNCE logits", &bad);
        }
        if (s->use_views || s->use_intra) s->views = alloc_f(VB * Lz, "RR views", &bad);
        if (s->use_views) {
            SP_TRY_GOTO(rc, encoder_act_create(&s->a_views, s->enc, (int)VB, L), fail);
            SP_TRY_GOTO(rc, encoder_proj_act_create(&s->pa_views, s->proj, (int)VB), fail);
            s->h_views = alloc_f(VB * F, "features", &bad);
            s->z_views = alloc_f(VB * D, "features", &bad);
            s->dz_views = alloc_f(VB * D, "features", &bad);
        }
        if (s->use_intra) {
            SP_TRY_GOTO(rc, encoder_act_create(&s->a_p0, s->enc, (int)VB, s->w), fail);
            SP_TRY_GOTO(rc, encoder_act_create(&s->a_p1, s->enc, (int)VB, s->w), fail);
            SP_TRY_GOTO(rc, encoder_proj_act_create(&s->pa_p0, s->proj, (int)VB), fail);
            SP_TRY_GOTO(rc, encoder_proj_act_create(&s->pa_p1, s->proj, (int)VB), fail);
            s->p0 = alloc_f(VB * w, "cut pieces", &bad);
            s->p1 = alloc_f(VB * w, "cut pieces", &bad);
            s->cut_labels = alloc_i(VB, "cut labels", &bad);
            s->h_p0 = alloc_f(VB * F, "features", &bad);
            s->h_p1 = alloc_f(VB * F, "features", &bad);
            s->z_p0 = alloc_f(VB * D, "features", &bad);
            s->z_p1 = alloc_f(VB * D, "features", &bad);
            s->dz_p0 = alloc_f(VB * D, "features", &bad);
            s->dz_p1 = alloc_f(VB * D, "features", &bad);
            s->cut_x = alloc_f(VB * 2 * D, "cut-piece pairs", &bad);
            s->dcut_x = alloc_f(VB * 2 * D, "cut-piece pairs", &bad);
            s->dlog_cls = alloc_f(VB * (size_t)s->C_cut, "cut head", &bad);
            s->prob_cls = alloc_f(VB * (size_t)s->C_cut, "cut head", &bad);
            s->dprob_cls = alloc_f(VB * (size_t)s->C_cut, "cut head", &bad);
            if (!bad) SP_TRY_GOTO(rc, rr_head_act_create(&s->ha_cls, &s->cls, (int)VB), fail);
        }
        if (s->use_views || s->use_intra || s->use_moco)
            s->dh = alloc_f((s->use_views || s->use_intra ? VB : B) * F, "feature gradients", &bad);
        if (s->use_inter) {
            size_t np = (size_t)rr_num_pairs(s->V, maxB);
            s->pair_left = alloc_i(np, "pairs", &bad);
            s->pair_right = alloc_i(np, "pairs", &bad);
            s->pair_target = alloc_f(np, "pairs", &bad);
            s->pair_x = alloc_f(np * 2 * D, "relation pairs", &bad);
            s->dpair_x = alloc_f(np * 2 * D, "relation pairs", &bad);
            s->dlog_rel = alloc_f(np, "relation head", &bad);
            if (!bad) SP_TRY_GOTO(rc, rr_head_act_create(&s->ha_rel, &s->rel, (int)np), fail);
        }
        if (s->use_ext) {
            s->ext_labels = alloc_i(VB, "external labels", &bad);
            s->dlog_ext = alloc_f(VB * (size_t)s->C_ext, "external head", &bad);
            s->prob_ext = alloc_f(VB * (size_t)s->C_ext, "external head", &bad);
            s->dprob_ext = alloc_f(VB * (size_t)s->C_ext, "external head", &bad);
            if (!bad) SP_TRY_GOTO(rc, rr_head_act_create(&s->ha_ext, &s->ext, (int)VB), fail);
        }
        s->buf_bytes = g_alloc_bytes;
        if (bad) SP_FAIL_GOTO(rc, fail, SP_ENOMEM, "out of memory allocating the pretraining buffers "
                                                   "(batch %d, %d views, L = %d)",
                              maxB, s->V, L);
    }
    *out = s;
    return SP_OK;
fail:
    pretrain_state_destroy(&s);
    return rc;
}

/* ---------------------------------------------------------------- accessors */

int pretrain_batch_multiple(const PretrainState *s) { return s->S; }
int pretrain_num_groups(const PretrainState *s) { return s->ngroups; }
SpParams *pretrain_group(PretrainState *s, int i, const char **name) {
    if (i < 0 || i >= s->ngroups) return NULL;
    if (name) *name = s->group_names[i];
    return s->groups[i];
}
SpEncoder *pretrain_encoder_q(PretrainState *s) { return s->enc; }
SpProjHead *pretrain_proj_q(PretrainState *s) { return s->proj; }
MocoKeyEncoder *pretrain_key_encoder(PretrainState *s) { return s->use_moco ? &s->key : NULL; }
MocoQueue *pretrain_queue(PretrainState *s) { return s->use_moco ? &s->queue : NULL; }
const PretextOptions *pretrain_options(const PretrainState *s) { return &s->o; }
int pretrain_piece_len(const PretrainState *s) { return s->use_intra ? s->w : 0; }
int pretrain_ext_classes(const PretrainState *s) { return s->C_ext; }
size_t pretrain_state_bytes(const PretrainState *s) {
    size_t b = s->buf_bytes;
    const SpEncAct *acts[4] = {s->a_q1, s->a_views, s->a_p0, s->a_p1};
    for (int i = 0; i < 4; i++)
        if (acts[i]) b += encoder_act_bytes(acts[i]);
    if (s->use_moco && !s->key.act_shared && s->key.act) b += encoder_act_bytes(s->key.act);
    for (int i = 0; i < s->ngroups; i++)
        b += s->groups[i]->n_param * sizeof(float) * (s->optim[i].v ? 4 : 3);
    if (s->use_moco) b += (size_t)s->queue.D * s->queue.Q * sizeof(float);
    return b;
}

int64_t pretrain_optim_steps(const PretrainState *s) {
    return s->ngroups > 0 ? (int64_t)s->optim[0].step : 0;
}

double pretrain_step_flops(const PretrainState *s, int B) {
    const double fL = encoder_flops(s->enc, s->L);
    const double VB = (double)s->V * B;
    double fq = 0.0, fk = 0.0, heads = 0.0;
    const double dirs = s->o.symmetric ? 2.0 : 1.0;
    if (s->use_moco) {
        fq += dirs * B * fL;
        fk += dirs * B * fL;
        heads += dirs * 2.0 * B * (double)s->D * (s->o.queue + 1);   /* logits */
    }
    if (s->use_views) fq += VB * fL;
    if (s->use_intra) fq += 2.0 * VB * encoder_flops(s->enc, s->w);
    const double D2 = 2.0 * s->D, H = s->o.hidden;
    if (s->use_inter) heads += 2.0 * rr_num_pairs(s->V, B) * (D2 * H + H);
    if (s->use_intra) heads += 2.0 * VB * (D2 * H + H * s->C_cut);
    if (s->use_ext) heads += 2.0 * VB * s->D * s->C_ext;
    /* backward of the trainable parts costs about twice their forward */
    return 3.0 * (fq + heads) + fk;
}

/* ------------------------------------------------------------------- step */

SpStatus pretrain_prepare(PretrainState *s, const float *x, int B, const int64_t *index,
                          const int32_t *extvar, int64_t epoch) {
    if (B < 1 || B > s->maxB)
        SP_FAIL(SP_EINPUT, "pretraining batch of %d spectra (the state holds 1..%d)", B, s->maxB);
    if (B % s->S != 0)
        SP_FAIL(SP_EINPUT,
                "pretraining batch of %d spectra is not a multiple of the BatchNorm splits (%d, "
                "encoder.%s.bn_splits)",
                B, s->S, encoder_arch(s->enc));
    if (s->use_inter && B < 2 && !s->dist)   /* distributed: the heads see the global batch */
        SP_FAIL(SP_EINPUT, "pretraining batch of %d spectra: the relation head needs >= 2", B);
    if (s->use_ext && !extvar)
        SP_FAIL(SP_EINPUT, "pretraining batch without external variable (the external head is on)");
    const int L = s->L;
    for (int b = 0; b < B; b++) {
        int64_t v = index ? index[b] : b;
        if (v < 0 || v > INT32_MAX) SP_FAIL(SP_EINPUT, "sample index %lld out of range", (long long)v);
        s->sample_idx[b] = (int)v;
    }
    if (s->use_moco) {
        SP_TRY(aug_apply_batch(s->aug, x, B, L, s->seed_aug, (uint64_t)epoch, s->sample_idx, 0,
                               s->im1));
        SP_TRY(aug_apply_batch(s->aug, x, B, L, s->seed_aug, (uint64_t)epoch, s->sample_idx, 1,
                               s->im2));
    }
    if (s->use_views || s->use_intra) {
        const size_t BL = (size_t)B * L, Bw = (size_t)B * s->w;
        for (int v = 0; v < s->V; v++) {
            if (s->use_intra)
                SP_TRY(aug_apply_batch_cut(s->aug, x, B, L, s->seed_aug, (uint64_t)epoch,
                                           s->sample_idx, 2 + v, s->views + v * BL, s->w,
                                           s->C_cut, s->p0 + v * Bw, s->p1 + v * Bw,
                                           s->cut_labels + (size_t)v * B));
            else
                SP_TRY(aug_apply_batch(s->aug, x, B, L, s->seed_aug, (uint64_t)epoch,
                                       s->sample_idx, 2 + v, s->views + v * BL));
        }
    }
    if (s->use_ext) {
        for (int b = 0; b < B; b++)
            if (extvar[b] < 0 || extvar[b] >= s->C_ext)
                SP_FAIL(SP_EINPUT,
                        "external variable %d of sample %d is outside 0..%d "
                        "(pretext.rr.ext_classes = %d)",
                        (int)extvar[b], s->sample_idx[b], s->C_ext - 1, s->C_ext);
        for (int v = 0; v < s->V; v++)
            for (int b = 0; b < B; b++) s->ext_labels[(size_t)v * B + b] = extvar[b];
    }
    s->B = B;
    s->epoch = epoch;
    s->have_keys = 0;
    return SP_OK;
}

/* f_q forward of one call: x (n, len) -> h, z. */
static SpStatus fq_forward(PretrainState *s, SpEncAct *a, SpProjAct *pa, const float *x, int n,
                           float *h, float *z) {
    SP_TRY(encoder_forward(s->enc, a, x, n, SP_ENC_TRAIN, h));
    encoder_proj_forward(s->proj, pa, h, n, z);
    return SP_OK;
}

/* The RR heads on the buffers of b (pt_internal.h). */
void pt_heads_step(PretrainState *s, const PtHeadBufs *b, int B, PretrainStepStats *st) {
    const int V = s->V, VB = V * B, D = s->D;
    const PretextOptions *o = &s->o;
    /* ---- inter-sample relation head (§5.1) */
    if (s->use_inter) {
        const int np = rr_num_pairs(V, B);
        const size_t rowb = (size_t)D * sizeof(float);
        rr_make_pairs(V, B, b->pair_left, b->pair_right, b->pair_target);
        for (int r = 0; r < np; r++) {
            float *row = b->pair_x + (size_t)r * 2 * D;
            memcpy(row, b->z_views + (size_t)b->pair_left[r] * D, rowb);
            memcpy(row + D, b->z_views + (size_t)b->pair_right[r] * D, rowb);
        }
        rr_head_forward(&s->rel, b->ha_rel, b->pair_x, np, 1);
        memset(b->dlog_rel, 0, (size_t)np * sizeof(float));
        rr_relation_loss(b->ha_rel->logits, b->pair_target, np, o->focal_gamma, o->focal_alpha,
                         (float)o->inter_coef, b->dlog_rel, &st->inter);
        st->l_inter = st->inter.loss;
        memset(b->dpair_x, 0, (size_t)np * 2 * D * sizeof(float));
        rr_head_backward(&s->rel, b->ha_rel, b->dlog_rel, b->dpair_x);
        /* scatter the pair gradients back to the view rows, in pair order */
        for (int r = 0; r < np; r++) {
            const float *g = b->dpair_x + (size_t)r * 2 * D;
            float *dl = b->dz_views + (size_t)b->pair_left[r] * D;
            float *dr = b->dz_views + (size_t)b->pair_right[r] * D;
            for (int d = 0; d < D; d++) dl[d] += g[d];
            for (int d = 0; d < D; d++) dr[d] += g[D + d];
        }
    }

    /* ---- intra-sample cut-piece head (§5.2) */
    if (s->use_intra) {
        const size_t rowb = (size_t)D * sizeof(float);
        for (int i = 0; i < VB; i++) {
            float *row = b->cut_x + (size_t)i * 2 * D;
            memcpy(row, b->z_p0 + (size_t)i * D, rowb);
            memcpy(row + D, b->z_p1 + (size_t)i * D, rowb);
        }
        rr_head_forward(&s->cls, b->ha_cls, b->cut_x, VB, 1);
        memset(b->dlog_cls, 0, (size_t)VB * s->C_cut * sizeof(float));
        rr_class_loss(b->ha_cls->logits, b->cut_labels, VB, s->C_cut, o->quirks,
                      (float)o->intra_coef, b->dlog_cls, b->prob_cls, b->dprob_cls, &st->intra);
        st->l_intra = st->intra.loss;
        memset(b->dcut_x, 0, (size_t)VB * 2 * D * sizeof(float));
        rr_head_backward(&s->cls, b->ha_cls, b->dlog_cls, b->dcut_x);
        for (int i = 0; i < VB; i++) {
            const float *g = b->dcut_x + (size_t)i * 2 * D;
            float *d0 = b->dz_p0 + (size_t)i * D, *d1 = b->dz_p1 + (size_t)i * D;
            for (int d = 0; d < D; d++) d0[d] += g[d];
            for (int d = 0; d < D; d++) d1[d] += g[D + d];
        }
    }

    /* ---- external-variable head (§5.3) */
    if (s->use_ext) {
        rr_head_forward(&s->ext, b->ha_ext, b->z_views, VB, 1);
        memset(b->dlog_ext, 0, (size_t)VB * s->C_ext * sizeof(float));
        rr_class_loss(b->ha_ext->logits, b->ext_labels, VB, s->C_ext, o->quirks,
                      (float)o->ext_coef, b->dlog_ext, b->prob_ext, b->dprob_ext, &st->ext);
        st->l_ext = st->ext.loss;
        rr_head_backward(&s->ext, b->ha_ext, b->dlog_ext, b->dz_views);
    }
}

/* f_q backward of one call: dz (n, D) -> parameter gradients. */
static void fq_backward(PretrainState *s, SpEncAct *a, SpProjAct *pa, const float *dz, int n) {
    memset(s->dh, 0, (size_t)n * s->F * sizeof(float));
    encoder_proj_backward(s->proj, pa, dz, n, s->dh);
    encoder_backward(s->enc, a, s->dh, n);
}

SpStatus pretrain_forward_backward(PretrainState *s, int64_t epoch, int64_t step,
                                   PretrainStepStats *st) {
    const int B = s->B, VB = s->V * s->B, D = s->D;
    const PretextOptions *o = &s->o;
    if (s->dist) return pt_dist_forward_backward(s, epoch, step, st);
    PT_ASSERT(B >= 1, "pretrain_forward_backward before pretrain_prepare");
    memset(st, 0, sizeof *st);
    st->B = B;
    for (int i = 0; i < s->ngroups; i++) sp_params_zero_grad(s->groups[i]);

    /* ---- MoCo (§6.2, §6.3). One encoder context serves all four calls:
     * k2 = f_k(im2) (no backward needed), q1 = f_q(im1), L12 and q1's
     * backward, then k1, q2, L21 and q2's backward. Each encoder sees its
     * calls in the reference order (f_q: q1, q2, ...; f_k: k2, k1), which is
     * all its BN running statistics depend on. */
    if (s->use_moco) {
        const float scale = (float)o->moco_coef;
        int nc = 0;
        if (o->shuffle_bn) moco_shuffle_perm(s->perm, B, s->seed_shuffle, epoch, step, 0);
        SP_TRY(moco_key_encode(&s->key, s->im2, B, o->shuffle_bn ? s->perm : NULL, s->k2));
        memset(s->dz_q1, 0, (size_t)B * D * sizeof(float));
        SP_TRY(fq_forward(s, s->a_q1, s->pa_q1, s->im1, B, s->h_q1, s->z_q1));
        double l12 = infonce_loss(s->dz_q1, s->z_q1, s->k2, s->queue.data, B, D, s->queue.Q,
                                  o->temperature, scale, &nc, s->nce_work);
        fq_backward(s, s->a_q1, s->pa_q1, s->dz_q1, B);
        st->l_moco = l12;
        st->moco_n = B;
        st->moco_correct = nc;
        if (o->symmetric) {
            if (o->shuffle_bn) moco_shuffle_perm(s->perm, B, s->seed_shuffle, epoch, step, 1);
            SP_TRY(moco_key_encode(&s->key, s->im1, B, o->shuffle_bn ? s->perm : NULL, s->k1));
            memset(s->dz_q2, 0, (size_t)B * D * sizeof(float));
            SP_TRY(fq_forward(s, s->a_q1, s->pa_q1, s->im2, B, s->h_q2, s->z_q2));
            nc = 0;
            double l21 = infonce_loss(s->dz_q2, s->z_q2, s->k1, s->queue.data, B, D, s->queue.Q,
                                      o->temperature, scale, &nc, s->nce_work);
            fq_backward(s, s->a_q1, s->pa_q1, s->dz_q2, B);
            st->l_moco += l21;
            st->moco_n += B;
            st->moco_correct += nc;
            memcpy(s->keys_cat, s->k1, (size_t)B * D * sizeof(float));
            memcpy(s->keys_cat + (size_t)B * D, s->k2, (size_t)B * D * sizeof(float));
        } else {
            memcpy(s->keys_cat, s->k2, (size_t)B * D * sizeof(float));
        }
        s->have_keys = 1;
    }

    /* ---- forward: views and cut pieces (§5) */
    if (s->use_views) {
        memset(s->dz_views, 0, (size_t)VB * D * sizeof(float));
        SP_TRY(fq_forward(s, s->a_views, s->pa_views, s->views, VB, s->h_views, s->z_views));
    }
    if (s->use_intra) {
        memset(s->dz_p0, 0, (size_t)VB * D * sizeof(float));
        memset(s->dz_p1, 0, (size_t)VB * D * sizeof(float));
        SP_TRY(fq_forward(s, s->a_p0, s->pa_p0, s->p0, VB, s->h_p0, s->z_p0));
        SP_TRY(fq_forward(s, s->a_p1, s->pa_p1, s->p1, VB, s->h_p1, s->z_p1));
    }

    /* ---- the RR heads (§5.1-5.3) */
    {
        const PtHeadBufs hb = {
            .z_views = s->z_views, .z_p0 = s->z_p0, .z_p1 = s->z_p1, .dz_views = s->dz_views,
            .dz_p0 = s->dz_p0, .dz_p1 = s->dz_p1, .cut_labels = s->cut_labels,
            .ext_labels = s->ext_labels, .pair_left = s->pair_left,
            .pair_right = s->pair_right, .pair_target = s->pair_target, .pair_x = s->pair_x,
            .dpair_x = s->dpair_x, .dlog_rel = s->dlog_rel, .cut_x = s->cut_x,
            .dcut_x = s->dcut_x, .dlog_cls = s->dlog_cls, .prob_cls = s->prob_cls,
            .dprob_cls = s->dprob_cls, .dlog_ext = s->dlog_ext, .prob_ext = s->prob_ext,
            .dprob_ext = s->dprob_ext, .ha_rel = &s->ha_rel, .ha_cls = &s->ha_cls,
            .ha_ext = &s->ha_ext};
        pt_heads_step(s, &hb, B, st);
    }

    /* ---- backward through the projection head and f_q (the MoCo calls
     * were done right after their losses) */
    if (s->use_views) fq_backward(s, s->a_views, s->pa_views, s->dz_views, VB);
    if (s->use_intra) {
        fq_backward(s, s->a_p0, s->pa_p0, s->dz_p0, VB);
        fq_backward(s, s->a_p1, s->pa_p1, s->dz_p1, VB);
    }

    st->loss = o->inter_coef * st->l_inter * s->use_inter +
               o->intra_coef * st->l_intra * s->use_intra +
               o->ext_coef * st->l_ext * s->use_ext + o->moco_coef * st->l_moco * s->use_moco;
    st->z_std = s->use_moco ? pretext_collapse_std(s->z_q1, B, D)
                            : s->use_views ? pretext_collapse_std(s->z_views, B, D)
                                           : pretext_collapse_std(s->z_p0, B, D);
    return SP_OK;
}

int pt_grad_nonfinite(const PretrainState *s) {
    for (int i = 0; i < s->ngroups; i++) {
        const float *g = s->groups[i]->grad;
        size_t n = s->groups[i]->n_param;
        int bad = 0;
        for (size_t j = 0; j < n; j++) bad |= !isfinite(g[j]);
        if (bad) return i;
    }
    return -1;
}

/* The end of a training step (pt_internal.h). */
SpStatus pt_step_finish(PretrainState *s, const float *keys_cat, int B, int64_t epoch,
                        int64_t step, float lr, const PretrainStepStats *st) {
    if (!isfinite(st->loss) || !isfinite(st->l_inter) || !isfinite(st->l_intra) ||
        !isfinite(st->l_ext) || !isfinite(st->l_moco))
        SP_FAIL(SP_ENUMERIC,
                "non-finite loss (epoch index %lld, step %lld): L=%g L_inter=%g L_intra=%g "
                "L_ext=%g L_moco=%g (lower optim.lr?)",
                (long long)epoch, (long long)step, st->loss, st->l_inter, st->l_intra, st->l_ext,
                st->l_moco);
    int g = pt_grad_nonfinite(s);
    if (g >= 0)
        SP_FAIL(SP_ENUMERIC,
                "non-finite gradient in '%s' (epoch index %lld, step %lld; loss terms: L=%g "
                "L_inter=%g L_intra=%g L_ext=%g L_moco=%g; lower optim.lr?)",
                s->group_names[g], (long long)epoch, (long long)step, st->loss, st->l_inter,
                st->l_intra, st->l_ext, st->l_moco);
    if (s->use_moco && s->have_keys) {
        moco_queue_push(&s->queue, keys_cat, (s->o.symmetric ? 2 : 1) * B);
        s->have_keys = 0;
    }
    for (int i = 0; i < s->ngroups; i++) optim_step(&s->optim[i], s->groups[i], lr);
    /* a finite gradient can still overflow a parameter (huge lr), and a
     * finite loss can come with overflowed BatchNorm running statistics
     * (training mode normalises with the batch's own): a checkpoint of
     * either would not be a good state (embed runs in eval mode) */
    const SpParams *key_tabs[2] = {NULL, NULL};
    if (s->use_moco) {
        key_tabs[0] = encoder_params_const(s->key.enc);
        key_tabs[1] = encoder_proj_params_const(s->key.proj);
    }
    for (int i = 0; i < s->ngroups + 2; i++) {
        const SpParams *p = i < s->ngroups ? s->groups[i] : key_tabs[i - s->ngroups];
        if (!p) continue;
        int bad = 0;
        for (size_t j = 0; j < p->n_param; j++) bad |= !isfinite(p->data[j]);
        for (size_t j = 0; j < p->n_buf; j++) bad |= !isfinite(p->buf[j]);
        if (bad)
            SP_FAIL(SP_ENUMERIC,
                    "non-finite parameters or BatchNorm statistics in '%s' after the optimizer "
                    "step (epoch index %lld, step %lld, lr %g; loss terms: L=%g L_inter=%g "
                    "L_intra=%g L_ext=%g L_moco=%g; lower optim.lr?)",
                    i < s->ngroups ? s->group_names[i] : i == s->ngroups ? "encoder_k" : "proj_k",
                    (long long)epoch, (long long)step, (double)lr, st->loss, st->l_inter,
                    st->l_intra, st->l_ext, st->l_moco);
    }
    return SP_OK;
}

SpStatus pretrain_step(PretrainState *s, const float *x, int B, const int64_t *index,
                       const int32_t *extvar, int64_t epoch, int64_t step, float lr,
                       PretrainStepStats *st) {
    if (s->dist) return pt_dist_step(s, x, B, index, extvar, epoch, step, lr, st);
    SP_TRY(pretrain_prepare(s, x, B, index, extvar, epoch));
    if (s->use_moco) moco_key_momentum(&s->key, s->enc, s->proj, s->o.momentum);
    SP_TRY(pretrain_forward_backward(s, epoch, step, st));
    return pt_step_finish(s, s->keys_cat, B, epoch, step, lr, st);
}

/* ------------------------------------------------------------- save / load */

SpStatus pretrain_state_save(const PretrainState *s, hid_t f) {
    SP_TRY(encoder_save(s->enc, f, SP_GROUP_ENCODER_Q));
    SP_TRY(encoder_proj_save(s->proj, f, SP_GROUP_PROJ_Q));
    if (s->use_inter) SP_TRY(ckpt_write_params(f, "heads/relation_head", &s->rel.params));
    if (s->use_intra) SP_TRY(ckpt_write_params(f, "heads/cls_head", &s->cls.params));
    if (s->use_ext) SP_TRY(ckpt_write_params(f, "heads/tmp_cls_head", &s->ext.params));
    if (s->use_moco) {
        SP_TRY(encoder_save(s->key.enc, f, SP_GROUP_ENCODER_K));
        SP_TRY(encoder_proj_save(s->key.proj, f, SP_GROUP_PROJ_K));
        hsize_t dims[2] = {(hsize_t)s->queue.D, (hsize_t)s->queue.Q};
        SP_TRY(sp_h5_write_float(f, "queue", 2, dims, s->queue.data, SP_H5_CHECKSUM));
        int64_t ptr = s->queue.ptr;
        SP_TRY(sp_h5_write_int64(f, "queue_ptr", 0, NULL, &ptr, SP_H5_CHECKSUM));
    }
    for (int i = 0; i < s->ngroups; i++) {
        char name[128];
        snprintf(name, sizeof name, "optim/m/%s", s->group_names[i]);
        SP_TRY(ckpt_write_arena(f, name, s->groups[i], s->optim[i].m));
        if (s->optim[i].v) {
            snprintf(name, sizeof name, "optim/v/%s", s->group_names[i]);
            SP_TRY(ckpt_write_arena(f, name, s->groups[i], s->optim[i].v));
        }
    }
    SP_TRY(sp_h5_attr_write_int64(f, "/", "optim_step", pretrain_optim_steps(s)));
    return SP_OK;
}

SpStatus pretrain_state_load(PretrainState *s, hid_t f, const char *file) {
    SP_TRY(encoder_load(s->enc, f, file, SP_GROUP_ENCODER_Q));
    SP_TRY(encoder_proj_load(s->proj, f, file, SP_GROUP_PROJ_Q));
    if (s->use_inter) SP_TRY(ckpt_read_params(f, file, "heads/relation_head", &s->rel.params));
    if (s->use_intra) SP_TRY(ckpt_read_params(f, file, "heads/cls_head", &s->cls.params));
    if (s->use_ext) SP_TRY(ckpt_read_params(f, file, "heads/tmp_cls_head", &s->ext.params));
    if (s->use_moco) {
        SP_TRY(encoder_load(s->key.enc, f, file, SP_GROUP_ENCODER_K));
        SP_TRY(encoder_proj_load(s->key.proj, f, file, SP_GROUP_PROJ_K));
        SpH5Info info;
        SP_TRY(sp_h5_info(f, file, "queue", &info));
        if (info.rank != 2 || info.dims[0] != (hsize_t)s->queue.D ||
            info.dims[1] != (hsize_t)s->queue.Q)
            SP_FAIL(SP_EFORMAT, "'%s': dataset 'queue' has the wrong shape (expected %d x %d)",
                    file, s->queue.D, s->queue.Q);
        SP_TRY(sp_h5_read_float(f, file, "queue", s->queue.data,
                                (size_t)s->queue.D * s->queue.Q));
        int64_t ptr = 0;
        SP_TRY(sp_h5_read_int64(f, file, "queue_ptr", &ptr, 1));
        if (ptr < 0 || ptr >= s->queue.Q)
            SP_FAIL(SP_EFORMAT, "'%s': queue_ptr %lld outside 0..%d", file, (long long)ptr,
                    s->queue.Q - 1);
        s->queue.ptr = ptr;
    }
    int64_t steps = 0;
    SP_TRY(sp_h5_attr_read_int64(f, file, "/", "optim_step", &steps));
    for (int i = 0; i < s->ngroups; i++) {
        char name[128];
        snprintf(name, sizeof name, "optim/m/%s", s->group_names[i]);
        SP_TRY(ckpt_read_arena(f, file, name, s->groups[i], s->optim[i].m));
        if (s->optim[i].v) {
            snprintf(name, sizeof name, "optim/v/%s", s->group_names[i]);
            SP_TRY(ckpt_read_arena(f, file, name, s->groups[i], s->optim[i].v));
        }
        s->optim[i].step = (long)steps;
    }
    return SP_OK;
}
