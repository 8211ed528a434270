/* aug_cut.c - cut pieces and their distance classes for the intra-sample
 * relational-reasoning head (reference/specrrmoco.md §2.7, SelfTime's
 * cut_piece with typeC classes).
 *
 * L: view length, W (w): piece length, C: classes. No allocation; serial,
 * safe inside a parallel region.
 */
#include <math.h>
#include <string.h>

#include "aug_internal.h"
#include "sp_augment.h"

SpStatus aug_cut_check(int L, double piece_size, int n_classes, int min_len, int *w_out) {
    if (n_classes < 2)
        SP_FAIL(SP_ECONFIG, "pretext.rr: %d cut-piece classes; need at least 2", n_classes);
    if (!(isfinite(piece_size) && piece_size > 0.0))
        SP_FAIL(SP_ECONFIG,
                "pretext.rr.piece_size = %g: must be > 0 (a fraction of L when < 1, else a "
                "number of points)",
                piece_size);
    int w;
    if (piece_size < 1.0) {
        w = (int)(piece_size * (double)L);
    } else {
        if (piece_size != floor(piece_size) || piece_size > 2147483647.0)
            SP_FAIL(SP_ECONFIG,
                    "pretext.rr.piece_size = %g: a value >= 1 is a number of points and must be "
                    "an integer",
                    piece_size);
        w = (int)piece_size;
    }
    if (w < min_len)
        SP_FAIL(SP_ECONFIG,
                "pretext.rr.piece_size = %g gives pieces of %d points for spectra of %d points; "
                "the encoder needs at least %d",
                piece_size, w, L, min_len);
    if (w < 1 || w > L - 1)
        SP_FAIL(SP_ECONFIG,
                "pretext.rr.piece_size = %g gives pieces of %d points; spectra of %d points allow "
                "at most %d",
                piece_size, w, L, L - 1);
    /* Class C-1 needs a distance d >= (C-1)*u with d <= L-w-1 (u = L/(2C)). */
    double u = (double)L / (double)(2 * n_classes);
    double need = (double)(n_classes - 1) * u;
    if ((double)(L - w - 1) < need) {
        int wmax = L - 1 - (int)ceil(need);
        SP_FAIL(SP_ECONFIG,
                "pretext.rr.piece_size = %g gives pieces of %d points: with %d distance classes "
                "over spectra of %d points the last class (distance >= %.6g) is unreachable; "
                "need at most %d points (piece_size <= %.4f)",
                piece_size, w, n_classes, L, need, wmax, (double)(wmax + 1) / (double)L);
    }
    if (w_out) *w_out = w;
    return SP_OK;
}

int aug_cut_label(int d, int L, int n_classes) {
    /* The reference loop, literally: win_class = L / (2 C) (real division). */
    double u = (double)L / (double)(2 * n_classes);
    double dd = (double)d;
    int label = 0;
    for (int i = 0; i < n_classes; i++) {
        if (dd >= (double)n_classes * u) label = n_classes - 1;
        if (dd >= (double)i * u && dd < (double)(i + 1) * u) label = i;
    }
    return label;
}

int aug_cut_draw(int L, int w, int n_classes, SpRng *rng, int *start1, int *start2) {
    int s1 = (int)sp_rng_below(rng, (int64_t)(L - w));
    int s2 = (int)sp_rng_below(rng, (int64_t)(L - w));
    if (start1) *start1 = s1;
    if (start2) *start2 = s2;
    return aug_cut_label(s1 > s2 ? s1 - s2 : s2 - s1, L, n_classes);
}

void aug_cut_piece(const float *view, int L, int w, int n_classes, SpRng *rng, float *p0,
                   float *p1, int *label) {
    AUG_ASSERT(w >= 1 && w <= L - 1, "cut piece of %d points from a view of %d", w, L);
    int s1, s2;
    *label = aug_cut_draw(L, w, n_classes, rng, &s1, &s2);
    memcpy(p0, view + s1, (size_t)w * sizeof *p0);
    memcpy(p1, view + s2, (size_t)w * sizeof *p1);
}

void aug_cut_priors(int L, int w, int n_classes, double *prior) {
    /* starts uniform in {0..M-1}, M = L-w: P(d=0) = 1/M, P(d=k) = 2(M-k)/M^2 */
    for (int c = 0; c < n_classes; c++) prior[c] = 0.0;
    int M = L - w;
    double m2 = (double)M * (double)M;
    for (int d = 0; d < M; d++) {
        double pd = (d == 0 ? (double)M : 2.0 * (double)(M - d)) / m2;
        prior[aug_cut_label(d, L, n_classes)] += pd;
    }
}
