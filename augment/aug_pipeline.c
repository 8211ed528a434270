/* aug_pipeline.c - the configurable augmentation pipeline (§2.1, §2.8): an
 * ordered list of gated transforms applied in double to one float32 spectrum,
 * and the batch drivers that give every (seed, epoch, sample, view slot) its
 * own PCG64 stream.
 *
 * L: points per spectrum, B: batch. Allocates only in aug_pipeline_create
 * (per-thread scratch for omp_get_max_threads() threads). aug_apply is
 * serial and safe inside a parallel region; aug_apply_batch* open their own
 * OpenMP region (never call them inside one).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aug_internal.h"
#include "sp_augment.h"

#define AUG_PAD 8 /* doubles per cache line: per-thread blocks start on their own line */

struct AugPipeline {
    AugSpec spec;
    int L;
    size_t scratch_len;   /* doubles per aug_apply call */
    size_t stride;        /* per-thread block, multiple of AUG_PAD */
    int nthreads;
    double *scratch;      /* nthreads * stride */
    int64_t *tclamp;      /* nthreads * AUG_PAD, per-thread clamp counters */
    int64_t clamp_total;
};

/* ------------------------------------------------------------- specs */

void aug_spec_default(AugSpec *spec) {
    memset(spec, 0, sizeof *spec);
    aug_spec_add(spec, SP_AUG_MAGNITUDE_WARP, 1.0);
    aug_spec_add(spec, SP_AUG_TIME_WARP, 1.0);
}

AugTransform *aug_spec_add(AugSpec *spec, AugKind kind, double p) {
    if (spec->n >= SP_AUG_MAX_TRANSFORMS) return NULL;
    AugTransform *t = &spec->t[spec->n++];
    aug_transform_default(t, kind);
    t->p = p;
    return t;
}

int aug_spec_group(AugSpec *spec, const char *name, double p) {
    static const AugKind g0[] = {SP_AUG_JITTER, SP_AUG_MAGNITUDE_WARP, SP_AUG_WINDOW_SLICE};
    static const AugKind g1[] = {SP_AUG_JITTER, SP_AUG_TIME_WARP, SP_AUG_WINDOW_SLICE};
    static const AugKind g2[] = {SP_AUG_JITTER, SP_AUG_TIME_WARP, SP_AUG_WINDOW_SLICE,
                                 SP_AUG_WINDOW_WARP, SP_AUG_CUTOUT};
    const AugKind *k = NULL;
    int n = 0;
    if (strcmp(name, "G0") == 0) {
        k = g0;
        n = 3;
    } else if (strcmp(name, "G1") == 0) {
        k = g1;
        n = 3;
    } else if (strcmp(name, "G2") == 0) {
        k = g2;
        n = 5;
    } else if (strcmp(name, "none") != 0) {
        return 0;
    }
    memset(spec, 0, sizeof *spec);
    for (int i = 0; i < n; i++) aug_spec_add(spec, k[i], p);
    return 1;
}

static int describe_one(const AugTransform *t, char *b, size_t n) {
    const char *name = aug_kind_name(t->kind);
    switch (t->kind) {
    case SP_AUG_MAGNITUDE_WARP:
    case SP_AUG_TIME_WARP:
        return snprintf(b, n, "%s(sigma=%g, knots=%d, p=%g)", name, t->sigma, t->knots, t->p);
    case SP_AUG_JITTER:
    case SP_AUG_SCALING:
    case SP_AUG_INTENSITY: return snprintf(b, n, "%s(sigma=%g, p=%g)", name, t->sigma, t->p);
    case SP_AUG_CUTOUT: return snprintf(b, n, "%s(ratio=%g, p=%g)", name, t->ratio, t->p);
    case SP_AUG_WINDOW_SLICE:
        return snprintf(b, n, "%s(ratio=%g, grid=%s, p=%g)", name, t->ratio,
                        t->quirk_grid ? "reference" : "correct", t->p);
    case SP_AUG_WINDOW_WARP:
        return snprintf(b, n, "%s(ratio=%g, scales=%g|%g, p=%g)", name, t->ratio, t->scale_low,
                        t->scale_high, t->p);
    case SP_AUG_SHIFT:
        return snprintf(b, n, "%s(max=%g%s, p=%g)", name, t->max_shift,
                        t->integer_shift ? ", integer" : "", t->p);
    case SP_AUG_BASELINE:
        return snprintf(b, n, "%s(degree=%d, amplitude=%g, p=%g)", name, t->degree,
                        t->amplitude, t->p);
    case SP_AUG_POISSON: return snprintf(b, n, "%s(scale=%g, p=%g)", name, t->scale, t->p);
    case SP_AUG_CROP_RESIZE:
        return snprintf(b, n, "%s(min_ratio=%g, p=%g)", name, t->ratio, t->p);
    case SP_AUG_MASK: {
        static const char *const fills[3] = {"mean", "zero", "linear"};
        return snprintf(b, n, "%s(bands=%d, width=%g, fill=%s, p=%g)", name, t->bands, t->ratio,
                        (t->fill >= 0 && t->fill <= 2) ? fills[t->fill] : "?", t->p);
    }
    default: return snprintf(b, n, "%s", name);
    }
}

void aug_spec_describe(const AugSpec *spec, char *buf, size_t n) {
    if (!buf || n == 0) return;
    buf[0] = '\0';
    if (spec->n == 0) {
        snprintf(buf, n, "none");
        return;
    }
    size_t used = 0;
    for (int i = 0; i < spec->n && used + 1 < n; i++) {
        if (i > 0) {
            int w = snprintf(buf + used, n - used, " -> ");
            used += w > 0 ? (size_t)w : 0;
            if (used >= n) break;
        }
        int w = describe_one(&spec->t[i], buf + used, n - used);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* ------------------------------------------------------------ pipeline */

SpStatus aug_pipeline_create(AugPipeline **out, const AugSpec *spec, int L) {
    *out = NULL;
    if (spec->n < 0 || spec->n > SP_AUG_MAX_TRANSFORMS)
        SP_FAIL(SP_ECONFIG, "augment.transforms: %d entries, at most %d", spec->n,
                SP_AUG_MAX_TRANSFORMS);
    if (L < 2) SP_FAIL(SP_EINPUT, "augmentation pipeline: spectra of %d point(s), need >= 2", L);
    size_t extra = 0;
    for (int i = 0; i < spec->n; i++) {
        SP_TRY(aug_transform_check(&spec->t[i], L));
        size_t s = aug_transform_scratch_len(&spec->t[i], L);
        if (s > extra) extra = s;
    }
    AugPipeline *p = sp_calloc(1, sizeof *p, "augmentation pipeline");
    if (!p) return SP_ENOMEM;
    p->spec = *spec;
    p->L = L;
    p->scratch_len = 2 * (size_t)L + extra;
    p->stride = (p->scratch_len + AUG_PAD - 1) / AUG_PAD * AUG_PAD;
    p->nthreads = omp_get_max_threads();
    if (p->nthreads < 1) p->nthreads = 1;
    p->scratch = sp_aligned_alloc(p->stride * (size_t)p->nthreads * sizeof(double),
                                  "augmentation scratch");
    p->tclamp = sp_aligned_alloc((size_t)p->nthreads * AUG_PAD * sizeof(int64_t),
                                 "augmentation counters");
    if (!p->scratch || !p->tclamp) {
        aug_pipeline_destroy(&p);
        return SP_ENOMEM;
    }
    memset(p->tclamp, 0, (size_t)p->nthreads * AUG_PAD * sizeof(int64_t));
    /* First touch by the thread that will use each block. */
    if (omp_in_parallel()) {
        memset(p->scratch, 0, p->stride * (size_t)p->nthreads * sizeof(double));
    } else {
        double *s = p->scratch;
        size_t stride = p->stride;
#pragma omp parallel num_threads(p->nthreads)
        memset(s + (size_t)omp_get_thread_num() * stride, 0, stride * sizeof(double));
    }
    *out = p;
    return SP_OK;
}

void aug_pipeline_destroy(AugPipeline **pp) {
    if (!pp || !*pp) return;
    free((*pp)->scratch);
    free((*pp)->tclamp);
    free(*pp);
    *pp = NULL;
}

int aug_pipeline_len(const AugPipeline *p) { return p->L; }
const AugSpec *aug_pipeline_spec(const AugPipeline *p) { return &p->spec; }
size_t aug_pipeline_scratch_len(const AugPipeline *p) { return p->scratch_len; }
int64_t aug_pipeline_clamp_count(const AugPipeline *p) { return p->clamp_total; }

int aug_apply(const AugPipeline *p, const float *in, float *out, int L, SpRng *rng,
              double *scratch) {
    AUG_ASSERT(L == p->L, "aug_apply: L = %d but the pipeline was built for L = %d", L, p->L);
    double *a = scratch, *b = scratch + L, *ts = scratch + 2 * (size_t)L;
    for (int t = 0; t < L; t++) a[t] = (double)in[t];
    int clamps = 0;
    for (int i = 0; i < p->spec.n; i++) {
        const AugTransform *tr = &p->spec.t[i];
        double u = sp_rng_next_double(rng); /* the gate is drawn even when p = 1 */
        if (u < tr->p) {
            clamps += aug_transform_apply(tr, b, a, L, rng, ts);
            double *tmp = a;
            a = b;
            b = tmp;
        }
    }
    for (int t = 0; t < L; t++) out[t] = (float)a[t];
    return clamps;
}

void aug_stream(SpRng *r, uint64_t seed, uint64_t epoch, int64_t sample, int view_slot) {
    sp_rng_stream(r, seed, epoch, (uint64_t)sample, (uint64_t)(int64_t)view_slot);
}

static SpStatus batch_run(AugPipeline *p, const float *X, int B, int L, uint64_t seed,
                          uint64_t epoch, const int *sample_idx, int view_slot, float *out,
                          int w, int n_classes, float *p0, float *p1, int *labels) {
    if (omp_in_parallel())
        SP_FAIL(SP_EINTERNAL, "aug_apply_batch called inside a parallel region (it opens its "
                              "own; use aug_apply per sample there)");
    if (L != p->L)
        SP_FAIL(SP_EINTERNAL, "aug_apply_batch: spectra of %d points, pipeline built for %d", L,
                p->L);
    if (B <= 0) return SP_OK;
    const int cut = p0 != NULL;
    if (cut) {
        AUG_ASSERT(w >= 1 && w <= L - 1 && n_classes >= 1 && p1 && labels,
                   "aug_apply_batch_cut: bad piece arguments (w = %d, classes = %d)", w, n_classes);
    }
    const size_t stride = p->stride;
    double *scratch = p->scratch;
    int64_t *tclamp = p->tclamp;
    const AugPipeline *cp = p;
    int nt = omp_get_max_threads(); /* follows omp_set_num_threads, capped by the scratch */
    if (nt > p->nthreads) nt = p->nthreads;
    if (nt < 1) nt = 1;
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num();
        double *s = scratch + (size_t)tid * stride;
        int64_t local = 0;
        /* dynamic: rows own their stream and output, so any schedule gives
         * the same bits; dynamic copes with busy cores and uneven costs */
#pragma omp for schedule(dynamic, 4)
        for (int b = 0; b < B; b++) {
            SpRng r;
            int64_t idx = sample_idx ? (int64_t)sample_idx[b] : (int64_t)b;
            aug_stream(&r, seed, epoch, idx, view_slot);
            float *ob = out + (size_t)b * L;
            local += aug_apply(cp, X + (size_t)b * L, ob, L, &r, s);
            if (cut)
                aug_cut_piece(ob, L, w, n_classes, &r, p0 + (size_t)b * w, p1 + (size_t)b * w,
                              &labels[b]);
        }
        tclamp[(size_t)tid * AUG_PAD] = local;
    }
    for (int t = 0; t < p->nthreads; t++) {
        p->clamp_total += tclamp[(size_t)t * AUG_PAD];
        tclamp[(size_t)t * AUG_PAD] = 0;
    }
    return SP_OK;
}

SpStatus aug_apply_batch(AugPipeline *p, const float *X, int B, int L, uint64_t seed,
                         uint64_t epoch, const int *sample_idx, int view_slot, float *out) {
    return batch_run(p, X, B, L, seed, epoch, sample_idx, view_slot, out, 0, 0, NULL, NULL, NULL);
}

SpStatus aug_apply_batch_cut(AugPipeline *p, const float *X, int B, int L, uint64_t seed,
                             uint64_t epoch, const int *sample_idx, int view_slot, float *views,
                             int w, int n_classes, float *p0, float *p1, int *labels) {
    AUG_ASSERT(p0 != NULL, "aug_apply_batch_cut: p0 is NULL");
    return batch_run(p, X, B, L, seed, epoch, sample_idx, view_slot, views, w, n_classes, p0, p1,
                     labels);
}
