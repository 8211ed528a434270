/* sp_augment.h - stochastic spectral augmentations, the configurable
 * augmentation pipeline and the relational-reasoning cut pieces
 * (reference/specrrmoco.md §2, §11 quirks 7 and 13, §15).
 *
 * Dimension letters: L points per spectrum, B batch, W cut-piece length,
 * nk spline points (knots + 2).
 *
 * Three layers:
 *  1. Numerics, deterministic, in double: the not-a-knot cubic spline
 *     (scipy CubicSpline) and np.interp.
 *  2. Transforms. aug_<name>_apply() take their random draws as arguments (so
 *     they can be compared with numpy/scipy fixtures); aug_transform_apply()
 *     draws from an SpRng in the order documented below and calls them. All
 *     of them read and write double: the reference chains float64 arrays and
 *     converts each view to float32 only at the end.
 *  3. The pipeline: an ordered list of transforms (an AugSpec, filled from the
 *     `augment` config section or by hand), created once for a length L.
 *     aug_apply() runs it on one float32 spectrum, aug_apply_batch() on a
 *     batch with OpenMP, each sample on its own PCG64 stream keyed by
 *     (seed, epoch, sample index, view slot): results do not depend on the
 *     thread count or on which other samples share the batch.
 *
 * Gates: every transform of a pipeline draws one uniform u first, always
 * (also when p = 1 or p = 0, as the reference's random.random() < p), and
 * fires when u < p. The stream layout therefore does not depend on p.
 *
 * Draw order of each transform, after its gate (z ~ N(0,1) by sp_rng_normal
 * unless noted; U(a,b) by sp_rng_uniform; integers by sp_rng_integers and
 * sp_rng_below, numpy's integers(lo, hi) = {lo..hi-1}):
 *   magnitude_warp  nk normals: w_i = 1 + sigma z_i, i = 0..nk-1
 *   time_warp       nk normals: speeds s_i = 1 + sigma z_i
 *   jitter          L normals by aug_normals (polar method), one per point
 *   scaling         1 normal: f = 1 + sigma z
 *   intensity       1 normal: f = exp(sigma z)               (log-normal)
 *   cutout          start = integers(0, L - w - 1)
 *   window_slice    start = integers(0, L - T) (nothing when T >= L)
 *   window_warp     r = scales[below(2)], then start = integers(1, L - W - 1)
 *   shift           s = U(-max, max) (rounded when integer = true)
 *   baseline        degree + 1 uniforms c_k = U(-1, 1)
 *   poisson         L normals by aug_normals, one per point (also where x <= 0)
 *   crop_resize     Lc = integers(Lmin, L + 1), then start = below(L - Lc + 1)
 *   mask            per band: start = below(L - w + 1)
 *
 * One pretraining batch (§2.8), B samples with dataset indices idx[], raw
 * spectra X[B][L] in batch order, V views, piece length w and C classes from
 * aug_cut_check:
 *     aug_apply_batch(pipe, X, B, L, seed, epoch, idx, 0, im1);          MoCo pair
 *     aug_apply_batch(pipe, X, B, L, seed, epoch, idx, 1, im2);
 *     for (v = 0; v < V; v++)                                             view-major
 *         aug_apply_batch_cut(pipe, X, B, L, seed, epoch, idx, 2 + v,
 *                             views + v*B*L, w, C, p0 + v*B*w, p1 + v*B*w, cut + v*B);
 *
 * Allocation: only aug_pipeline_create/destroy allocate. Everything else works
 * in caller- or pipeline-provided scratch.
 * Threading: every function is serial and safe inside a parallel region
 * (given distinct out / scratch / rng per thread), except aug_apply_batch*,
 * which open their own OpenMP region and must not be called inside one.
 */
#ifndef SP_AUGMENT_H
#define SP_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_error.h"
#include "sp_rng.h"

/* ---------------------------------------------------------------- numerics */

#define SP_AUG_MAX_KNOTS 64                      /* `knots` parameter upper bound */
#define SP_AUG_MAX_POINTS (SP_AUG_MAX_KNOTS + 2) /* spline points nk <= this */
#define SP_AUG_MAX_TRANSFORMS 16                 /* entries of augment.transforms */
#define SP_AUG_CLAMP_SPEED 1e-6                  /* time-warp speed floor (quirk 13) */

/* Not-a-knot cubic spline through nk >= 2 points y[0..nk-1] placed at
 * x_i = linspace(0, L-1, nk)[i], evaluated at t = 0, 1, ..., L-1 into out[L]
 * (§2.2; scipy.interpolate.CubicSpline with the default boundary: nk = 2 is
 * the line, nk = 3 the parabola, nk = 4 one cubic). L >= 2. */
void aug_spline_eval(double *out, const double *y, int nk, int L);

/* np.interp for increasing query points t[nt] over increasing xp[n], fp[n]:
 * t < xp[0] -> fp[0], t >= xp[n-1] -> fp[n-1], otherwise
 * slope*(t - xp[j]) + fp[j] with slope = (fp[j+1]-fp[j])/(xp[j+1]-xp[j]), the
 * same operations as numpy, so results are bit-identical. One merge pass. */
void aug_interp(double *out, const double *t, int nt, const double *xp, const double *fp, int n);

/* np.interp(t, arange(n), fp) for one query (the unit grid needs no search). */
double aug_interp_unit(double t, const double *fp, int n);

/* n standard normals by the Marsaglia polar method (pairs from two uniforms
 * sp_rng_next_double each, rejected outside the unit disc): the per-point
 * noise of jitter and poisson (about 4x cheaper than sp_rng_normal). */
void aug_normals(double *z, int n, SpRng *r);

/* np.linspace(0, stop, num)[k]: k*(stop/(num-1)), last element exactly stop. */
double aug_linspace_at(int k, int num, double stop);

/* ------------------------------------------------------ transforms, fixed draws
 * x[L] in, out[L] out (out must not alias x). */

/* out = x * S, S the spline through w[nk] (§2.4). */
void aug_magnitude_warp_apply(double *out, const double *x, int L, const double *w, int nk);
/* Time warp with spline speeds s[nk] (§2.5): s(t) clamped to >= 1e-6, cumulative
 * sum c, tt = c*((L-1)/c[L-1]) with tt[L-1] set to exactly L-1, out[j] =
 * interp(j; tt, x). tt: scratch of L doubles. Returns how many points were
 * clamped (0 in the reference's normal regime). As in the reference, sigma = 0
 * is not the identity: c[t] = t+1 maps sample t to (t+1)(L-1)/L, a shift of
 * about one point at the start fading to none at the end. */
int aug_time_warp_apply(double *out, const double *x, int L, const double *s, int nk, double *tt);
/* x with x[start .. start+w-1] = 0. */
void aug_cutout_apply(double *out, const double *x, int L, int w, int start);
/* Window slice of T points from start, resampled to L (§2.6). quirk_grid != 0:
 * the reference grid j*T/(L-1) (quirk 7); else j*(T-1)/(L-1). T >= L: copy. */
void aug_window_slice_apply(double *out, const double *x, int L, int T, int start, int quirk_grid);
/* Window warp (§2.6): window of W points at start resampled to nseg points,
 * series re-read on L points. scratch: 2*(L - W + nseg) doubles. */
void aug_window_warp_apply(double *out, const double *x, int L, int W, int start, int nseg,
                           double *scratch);
/* out[j] = interp(j - s; arange(L), x): positive s moves features to higher
 * indices; edges are filled with the edge values. */
void aug_shift_apply(double *out, const double *x, int L, double s);
/* out = x + A*R*b(u)/(deg+1), b(u) = sum_k c[k] u^k, u = 2t/(L-1) - 1 in [-1, 1],
 * R = max(x) - min(x) (a constant spectrum gets no baseline). With c_k in
 * [-1, 1], |baseline| <= A*R. */
void aug_baseline_apply(double *out, const double *x, int L, const double *c, int deg,
                        double amplitude);
/* Window of Lc points from start, resampled to L by linear interpolation. */
void aug_crop_resize_apply(double *out, const double *x, int L, int Lc, int start);

/* ------------------------------------------------------------- transforms */

typedef enum {
    SP_AUG_MAGNITUDE_WARP = 0,
    SP_AUG_TIME_WARP,
    SP_AUG_JITTER,
    SP_AUG_SCALING,
    SP_AUG_CUTOUT,
    SP_AUG_WINDOW_SLICE,
    SP_AUG_WINDOW_WARP,
    SP_AUG_SHIFT,
    SP_AUG_BASELINE,
    SP_AUG_POISSON,
    SP_AUG_CROP_RESIZE,
    SP_AUG_MASK,
    SP_AUG_INTENSITY,
    SP_AUG_NKINDS
} AugKind;

typedef enum { SP_AUG_FILL_MEAN = 0, SP_AUG_FILL_ZERO, SP_AUG_FILL_LINEAR } AugFill;

/* One transform and its parameters; only the fields of its kind are read. */
typedef struct {
    AugKind kind;
    double p;             /* firing probability, [0, 1] */
    double sigma;         /* magnitude_warp, time_warp: knot sd around 1; jitter: noise sd;
                           * scaling: factor sd around 1; intensity: sd of log(factor) */
    int knots;            /* magnitude_warp, time_warp: nk = knots + 2 spline points */
    double ratio;         /* cutout: w = int(ratio*L); window_slice: T = ceil(ratio*L);
                           * window_warp: W = ceil(ratio*L); crop_resize: minimum crop
                           * ceil(ratio*L); mask: band width w = int(ratio*L) */
    double scale_low;     /* window_warp: the two window scales, one picked at random */
    double scale_high;
    double max_shift;     /* shift: |s| <= max_shift points */
    int integer_shift;    /* shift: round s to an integer */
    int degree;           /* baseline: polynomial degree */
    double amplitude;     /* baseline: amplitude relative to the spectrum's range */
    double scale;         /* poisson: out = x + sqrt(max(x,0)*scale) z (variance ∝ signal) */
    int bands;            /* mask: number of bands (may overlap) */
    AugFill fill;         /* mask: band mean, zero, or the line joining its neighbours */
    int quirk_grid;       /* window_slice: reference grid (set from reference_quirks) */
} AugTransform;

const char *aug_kind_name(AugKind k);          /* "magnitude_warp", ... */
int aug_kind_from_name(const char *name);     /* -1 when unknown */
/* Comma-separated list of valid transform names (static string). */
const char *aug_kind_names(void);
/* Defaults of the config keys (the pretraining values of the reference). */
void aug_transform_default(AugTransform *t, AugKind kind);

/* Check the parameters against L; SP_ECONFIG naming the config key
 * (augment.<name>.<param>) on failure. */
SpStatus aug_transform_check(const AugTransform *t, int L);
/* Scratch doubles aug_transform_apply needs for this transform at length L. */
size_t aug_transform_scratch_len(const AugTransform *t, int L);
/* Draw (order in the file comment) and apply, unconditionally (no gate).
 * Returns the number of clamped time-warp speeds (0 for other kinds). */
int aug_transform_apply(const AugTransform *t, double *out, const double *x, int L, SpRng *rng,
                        double *scratch);

/* --------------------------------------------------------------- pipeline */

typedef struct {
    int n;                                   /* 0: identity */
    AugTransform t[SP_AUG_MAX_TRANSFORMS];   /* applied in order */
} AugSpec;

/* The published run: magnitude_warp(0.3, 4) then time_warp(0.2, 8), p = 1. */
void aug_spec_default(AugSpec *spec);
/* Append a transform with its default parameters and probability p; returns
 * a pointer to it for changes (NULL when full). */
AugTransform *aug_spec_add(AugSpec *spec, AugKind kind, double p);
/* Named groups of §2.6 ("G0", "G1", "G2", "none"), parameters at defaults.
 * Returns 0 when name is not a group. */
int aug_spec_group(AugSpec *spec, const char *name, double p);

/* "magnitude_warp(sigma=0.3, knots=4, p=1) -> time_warp(sigma=0.2, knots=8, p=1)"
 * into buf (truncated to n bytes; "none" for an empty spec). */
void aug_spec_describe(const AugSpec *spec, char *buf, size_t n);

typedef struct AugPipeline AugPipeline;

/* Validate spec for length L (SP_ECONFIG naming the key), compute the scratch
 * size and allocate per-thread scratch for omp_get_max_threads() threads:
 * create it after the thread count is set (sp_blas_init); batch calls use
 * min(omp_get_max_threads(), that count) threads. */
SpStatus aug_pipeline_create(AugPipeline **out, const AugSpec *spec, int L);
void aug_pipeline_destroy(AugPipeline **p);   /* sets *p = NULL */
int aug_pipeline_len(const AugPipeline *p);   /* L */
const AugSpec *aug_pipeline_spec(const AugPipeline *p);
/* Doubles of scratch one aug_apply call needs. */
size_t aug_pipeline_scratch_len(const AugPipeline *p);
/* Time-warp speed clamps counted by aug_apply_batch* so far (quirk 13). */
int64_t aug_pipeline_clamp_count(const AugPipeline *p);

/* One spectrum: in[L] -> out[L] (may alias), gates and draws from rng.
 * scratch: aug_pipeline_scratch_len doubles. Returns the clamp count. */
int aug_apply(const AugPipeline *p, const float *in, float *out, int L, SpRng *rng,
              double *scratch);
/* The stream of (seed, epoch, sample, view_slot) (sp_rng_stream). Suggested
 * view slots: 0, 1 for the MoCo pair, 2 + v for RR view v. */
void aug_stream(SpRng *r, uint64_t seed, uint64_t epoch, int64_t sample, int view_slot);

/* X[B][L] raw spectra in batch order -> out[B][L] (must not alias X). Row b
 * uses stream (seed, epoch, sample_idx[b], view_slot) (sample_idx NULL: b).
 * OpenMP over b with the pipeline's per-thread scratch; no allocation.
 * SP_EINTERNAL when L differs from the pipeline's or when called inside a
 * parallel region. */
SpStatus aug_apply_batch(AugPipeline *p, const float *X, int B, int L, uint64_t seed,
                         uint64_t epoch, const int *sample_idx, int view_slot, float *out);
/* As aug_apply_batch, then cut pieces from each view with the same stream
 * (aug_cut_piece): p0[B][w], p1[B][w], labels[B]. w and n_classes must have
 * passed aug_cut_check for this L. */
SpStatus aug_apply_batch_cut(AugPipeline *p, const float *X, int B, int L, uint64_t seed,
                             uint64_t epoch, const int *sample_idx, int view_slot, float *views,
                             int w, int n_classes, float *p0, float *p1, int *labels);

/* ------------------------------------------------------------- cut pieces */

/* Piece length from pretext.rr.piece_size (§2.7): w = int(piece_size*L) when
 * piece_size < 1, else piece_size points (must be an integer), then checks
 * min_len <= w (min_len: the encoder's minimum input length, 27 for convsc),
 * w <= L - 1, n_classes >= 2 and that every class is reachable:
 * L - w - 1 >= (n_classes-1)*L/(2 n_classes). SP_ECONFIG naming
 * pretext.rr.piece_size otherwise. */
SpStatus aug_cut_check(int L, double piece_size, int n_classes, int min_len, int *w_out);
/* Distance class of d = |start1 - start2| (§2.7, the reference's loop). */
int aug_cut_label(int d, int L, int n_classes);
/* Draw start1, start2 uniform in {0..L-w-1} (in that order) and return the label. */
int aug_cut_draw(int L, int w, int n_classes, SpRng *rng, int *start1, int *start2);
/* Two pieces view[start .. start+w-1] into p0[w], p1[w] and their label. */
void aug_cut_piece(const float *view, int L, int w, int n_classes, SpRng *rng, float *p0,
                   float *p1, int *label);
/* Exact class priors for uniform starts: prior[n_classes]. */
void aug_cut_priors(int L, int w, int n_classes, double *prior);

/* ----------------------------------------------------------------- config */

/* Register augment.* (idempotent): augment.transforms, augment.p and one
 * subgroup per transform (see aug_config.c for the table). */
void augment_config_register(void);
/* Fill spec from a loaded config (augment.* and reference_quirks); SP_ECONFIG
 * naming the key for unknown transform names. Checks that need L happen in
 * aug_pipeline_create. */
SpStatus aug_spec_from_config(AugSpec *spec, const SpConfig *cfg);

#endif
