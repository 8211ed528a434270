/* report.c - the sweep's reports: sweep.csv (one row per method x budget x
 * seed), sweep_summary.csv (mean and sample std over seeds), sweep.md
 * (tables), sweep.svg (test accuracy vs labelled spectra per class on a log
 * axis, one line per method, error bars = std over seeds), confusion.csv and
 * confusion.svg (the best method at the largest label budget, summed over
 * seeds). Text in the C locale, numbers with %.9g / %.17g. Every file is
 * written to "<name>.tmp" and renamed. Serial; allocates text buffers.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp_linear_eval.h"

/* ------------------------------------------------------------ text buffer */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} Txt;

static void tx(Txt *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tx(Txt *t, const char *fmt, ...) {
    if (t->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            t->oom = 1;
            return;
        }
        if (t->p && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->n + (size_t)k + 1) cap *= 2;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->oom = 1;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

/* XML-escaped copy of s */
static void tx_xml(Txt *t, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': tx(t, "&amp;"); break;
        case '<': tx(t, "&lt;"); break;
        case '>': tx(t, "&gt;"); break;
        case '"': tx(t, "&quot;"); break;
        default: tx(t, "%c", *s);
        }
    }
}

/* CSV field: quoted when it holds a comma or quote */
static void tx_csv(Txt *t, const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        tx(t, "%s", s);
        return;
    }
    tx(t, "\"");
    for (; *s; s++) tx(t, *s == '"' ? "\"\"" : "%c", *s);
    tx(t, "\"");
}

static SpStatus write_atomic(const char *dir, const char *name, Txt *t) {
    if (t->oom) SP_FAIL(SP_ENOMEM, "out of memory (report %s)", name);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) SP_FAIL(SP_EIO, "'%s': cannot create the report (does the folder exist?)", tmp);
    size_t w = t->n ? fwrite(t->p, 1, t->n, f) : 0;
    int bad = w != t->n || ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        remove(tmp);
        SP_FAIL(SP_EIO, "'%s': write failed (disk full?)", tmp);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        SP_FAIL(SP_EIO, "'%s': cannot rename to '%s'", tmp, path);
    }
    return SP_OK;
}

/* ---------------------------------------------------------------- stats */

/* The budget with the most training rows (mean over seeds). */
static int largest_budget(const LinSweepResult *r) {
    int best = 0;
    double bn = -1;
    for (int b = 0; b < r->spec.n_budgets; b++) {
        double n = 0;
        int k = 0;
        for (int i = 0; i < r->n_rows; i++)
            if (r->rows[i].budget == b) {
                n += (double)r->rows[i].n_train;
                k++;
            }
        if (k && n / k > bn) {
            bn = n / k;
            best = b;
        }
    }
    return best;
}

static int best_method(const LinSweepResult *r, int budget) {
    int best = 0;
    double ba = -1;
    for (int m = 0; m < r->spec.n_methods; m++) {
        LinSweepStat s = lineval_sweep_stat(r, m, budget);
        if (s.n && s.acc_mean > ba) {
            ba = s.acc_mean;
            best = m;
        }
    }
    return best;
}

/* Budgets in increasing order of training rows. */
static void budget_order(const LinSweepResult *r, int *ord) {
    int nb = r->spec.n_budgets;
    double key[SP_SWEEP_MAX_BUDGETS];
    for (int b = 0; b < nb; b++) {
        ord[b] = b;
        LinSweepStat s = lineval_sweep_stat(r, 0, b);
        key[b] = s.n_train_mean;
    }
    for (int i = 1; i < nb; i++)
        for (int j = i; j > 0 && key[ord[j]] < key[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
}

static void budget_label(const LinSweepResult *r, int b, char *out, size_t n) {
    const LinBudget *bu = &r->spec.budgets[b];
    LinSweepStat s = lineval_sweep_stat(r, 0, b);
    if (bu->per_class > 0)
        snprintf(out, n, "%s", bu->name);
    else
        snprintf(out, n, "%s (%.0f)", bu->name, s.n_train_mean / (r->C > 0 ? r->C : 1));
}

/* ------------------------------------------------------------ tables */

static void md_table(Txt *t, const LinSweepResult *r, int what) {
    const LinSweepSpec *sp = &r->spec;
    int ord[SP_SWEEP_MAX_BUDGETS];
    budget_order(r, ord);
    tx(t, "| labels per class |");
    for (int m = 0; m < sp->n_methods; m++) tx(t, " %s |", sp->methods[m]);
    tx(t, "\n|---|");
    for (int m = 0; m < sp->n_methods; m++) tx(t, "---|");
    tx(t, "\n");
    for (int k = 0; k < sp->n_budgets; k++) {
        int b = ord[k];
        char lab[64];
        budget_label(r, b, lab, sizeof lab);
        tx(t, "| %s |", lab);
        int bm = best_method(r, b);
        for (int m = 0; m < sp->n_methods; m++) {
            LinSweepStat s = lineval_sweep_stat(r, m, b);
            if (!s.n) {
                tx(t, " - |");
                continue;
            }
            if (what == 0)
                tx(t, m == bm ? " **%.1f ± %.1f** |" : " %.1f ± %.1f |", 100 * s.acc_mean,
                   100 * s.acc_std);
            else if (what == 1)
                tx(t, " %.1f ± %.1f |", 100 * s.f1_mean, 100 * s.f1_std);
            else
                tx(t, " %.2f |", s.sec_mean);
        }
        tx(t, "\n");
    }
}

char *lineval_sweep_table(const LinSweepResult *r) {
    Txt t = {0};
    md_table(&t, r, 0);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

/* --------------------------------------------------------------- plot */

static const char *k_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                 "#9467bd", "#8c564b", "#e377c2", "#17becf"};

static void svg_plot(Txt *t, const LinSweepResult *r) {
    const LinSweepSpec *sp = &r->spec;
    const int W = 760, H = 480, ml = 70, mr = 200, mt = 56, mb = 70;
    const int pw = W - ml - mr, ph = H - mt - mb;
    const int nb = sp->n_budgets, nm = sp->n_methods;
    double xv[SP_SWEEP_MAX_BUDGETS];
    double xmin = 1e300, xmax = -1e300, ymin = 1, ymax = 0;
    for (int b = 0; b < nb; b++) {
        LinSweepStat s0 = lineval_sweep_stat(r, 0, b);
        double per = s0.n_train_mean / (r->C > 0 ? r->C : 1);
        xv[b] = log10(per > 0.1 ? per : 0.1);
        if (xv[b] < xmin) xmin = xv[b];
        if (xv[b] > xmax) xmax = xv[b];
        for (int m = 0; m < nm; m++) {
            LinSweepStat s = lineval_sweep_stat(r, m, b);
            if (!s.n) continue;
            if (s.acc_mean - s.acc_std < ymin) ymin = s.acc_mean - s.acc_std;
            if (s.acc_mean + s.acc_std > ymax) ymax = s.acc_mean + s.acc_std;
        }
    }
    if (xmax - xmin < 1e-9) {
        xmin -= 0.5;
        xmax += 0.5;
    }
    double xpad = 0.06 * (xmax - xmin);
    xmin -= xpad;
    xmax += xpad;
    ymin = floor(ymin * 10) / 10;
    ymax = ceil(ymax * 10) / 10;
    if (ymin < 0) ymin = 0;
    if (ymax > 1) ymax = 1;
    if (ymax - ymin < 0.1) {
        if (ymax >= 1)
            ymin = ymax - 0.1;
        else
            ymax = ymin + 0.1;
    }
    double ystep = ymax - ymin > 0.5 ? 0.1 : 0.05;
#define PX(v) (ml + (v - xmin) / (xmax - xmin) * pw)
#define PY(v) (mt + (ymax - (v)) / (ymax - ymin) * ph)
    tx(t, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    tx(t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
       "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n", W, H, W, H);
    tx(t, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    const char *title = sp->title ? sp->title : "specssl sweep";
    size_t tl = strlen(title);
    int fs = tl <= 60 ? 16 : tl <= 80 ? 13 : 11;   /* keep long titles inside the canvas */
    tx(t, "<text x=\"%d\" y=\"26\" font-size=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">",
       W / 2, fs);
    tx_xml(t, title);
    tx(t, "</text>\n");
    tx(t, "<text x=\"%d\" y=\"44\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">test "
       "accuracy, mean &#177; std over %d seed%s; %d classes</text>\n", W / 2, sp->n_seeds,
       sp->n_seeds == 1 ? "" : "s", r->C);
    /* grid and y axis */
    for (double y = ymin; y <= ymax + 1e-9; y += ystep) {
        double py = PY(y);
        tx(t, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", ml, py,
           ml + pw, py);
        tx(t, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", ml - 6, py + 4,
           100 * y);
    }
    for (int b = 0; b < nb; b++) {
        double px = PX(xv[b]);
        char lab[64];
        budget_label(r, b, lab, sizeof lab);
        tx(t, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#f0f0f0\"/>\n", px, mt, px,
           mt + ph);
        tx(t, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", px, mt + ph,
           px, mt + ph + 5);
        tx(t, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", px, mt + ph + 19);
        tx_xml(t, lab);
        tx(t, "</text>\n");
    }
    tx(t, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n",
       ml, mt, pw, ph);
    tx(t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">labelled training spectra per class "
       "(log scale)</text>\n", ml + pw / 2, H - 22);
    tx(t, "<text x=\"18\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 18 %d)\">test "
       "accuracy (%%)</text>\n", mt + ph / 2, mt + ph / 2);
    /* one line per method */
    int ord[SP_SWEEP_MAX_BUDGETS];
    budget_order(r, ord);
    for (int m = 0; m < nm; m++) {
        const char *col = k_colors[m % 8];
        const char *dash = m >= 8 ? " stroke-dasharray=\"5,3\"" : "";
        tx(t, "<g>\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", col, dash);
        for (int k = 0; k < nb; k++) {
            LinSweepStat s = lineval_sweep_stat(r, m, ord[k]);
            if (s.n) tx(t, "%.1f,%.1f ", PX(xv[ord[k]]), PY(s.acc_mean));
        }
        tx(t, "\"/>\n");
        for (int b = 0; b < nb; b++) {
            LinSweepStat s = lineval_sweep_stat(r, m, b);
            if (!s.n) continue;
            double px = PX(xv[b]) + (m - (nm - 1) / 2.0) * 2.0;   /* dodge error bars */
            double y0 = PY(fmin(ymax, s.acc_mean + s.acc_std)),
                   y1 = PY(fmax(ymin, s.acc_mean - s.acc_std));
            if (s.acc_std > 0) {
                tx(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", px,
                   y0, px, y1, col);
                tx(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
                   px - 4, y0, px + 4, y0, col);
                tx(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
                   px - 4, y1, px + 4, y1, col);
            }
            tx(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>", PX(xv[b]),
               PY(s.acc_mean), col);
            tx_xml(t, sp->methods[m]);
            tx(t, " %s: %.2f &#177; %.2f %%</title></circle>\n", sp->budgets[b].name,
               100 * s.acc_mean, 100 * s.acc_std);
        }
        tx(t, "</g>\n");
        /* legend */
        int ly = mt + 10 + 22 * m;
        tx(t, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
           ml + pw + 16, ly, ml + pw + 44, ly, col, dash);
        tx(t, "<circle cx=\"%d\" cy=\"%d\" r=\"3.5\" fill=\"%s\"/>\n", ml + pw + 30, ly, col);
        tx(t, "<text x=\"%d\" y=\"%d\">", ml + pw + 52, ly + 4);
        tx_xml(t, sp->methods[m]);
        tx(t, "</text>\n");
    }
    tx(t, "</svg>\n");
#undef PX
#undef PY
}

static void svg_confusion(Txt *t, const LinSweepResult *r, int m, int b, const int64_t *cf) {
    const int C = r->C;
    int cell = C <= 10 ? 40 : C <= 30 ? 20 : C <= 100 ? 6 : 2;
    int names = C <= 40;
    int ml = names ? 110 : 60, mt = 70, grid = cell * C;
    int W = ml + grid + 30, H = mt + grid + 60;
    if (W < 560) {   /* room for the title; centre the grid */
        ml += (560 - W) / 2;
        W = 560;
    }
    tx(t, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    tx(t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
       "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n", W, H, W, H);
    tx(t, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    tx(t, "<text x=\"%d\" y=\"22\" font-size=\"14\" font-weight=\"bold\" text-anchor=\"middle\">"
       "confusion: ", W / 2);
    tx_xml(t, r->spec.methods[m]);
    tx(t, ", %s labels per class</text>\n", r->spec.budgets[b].name);
    tx(t, "<text x=\"%d\" y=\"40\" text-anchor=\"middle\" fill=\"#555\">rows: true class, columns: "
       "predicted; colour = row fraction; summed over seeds</text>\n", W / 2);
    tx(t, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n",
       ml, mt, grid, grid);
    for (int i = 0; i < C; i++) {
        int64_t row = 0;
        for (int j = 0; j < C; j++) row += cf[(size_t)i * C + j];
        for (int j = 0; j < C; j++) {
            int64_t v = cf[(size_t)i * C + j];
            if (!v) continue;
            double f = row ? (double)v / (double)row : 0;
            int rr = (int)(255 - f * (255 - 8)), gg = (int)(255 - f * (255 - 48)),
                bb = (int)(255 - f * (255 - 107));
            if (i != j && f < 0.15) {   /* make rare errors visible */
                rr = 230;
                gg = 120;
                bb = 80;
            }
            tx(t, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\">"
               "<title>true %d, predicted %d: %lld</title></rect>\n", ml + j * cell, mt + i * cell,
               cell, cell, rr, gg, bb, i, j, (long long)v);
            if (C <= 20)
                tx(t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">%lld</text>\n",
                   ml + j * cell + cell / 2, mt + i * cell + cell / 2 + 4,
                   f > 0.5 ? "white" : "black", (long long)v);
        }
        if (names) {
            tx(t, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", ml - 4, mt + i * cell + cell / 2 + 4);
            if (r->class_names)
                tx_xml(t, r->class_names[i]);
            else
                tx(t, "%d", i);
            tx(t, "</text>\n");
            tx(t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n",
               ml + i * cell + cell / 2, mt - 4, i);
        }
    }
    tx(t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">predicted class</text>\n", ml + grid / 2,
       mt + grid + 22);
    tx(t, "<text x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">true "
       "class</text>\n", mt + grid / 2, mt + grid / 2);
    tx(t, "</svg>\n");
}

/* --------------------------------------------------------------- writer */

SpStatus lineval_sweep_write_reports(const LinSweepResult *r, const char *dir) {
    const LinSweepSpec *sp = &r->spec;
    Txt t = {0};
    SpStatus rc = SP_OK;
    /* sweep.csv */
    tx(&t, "method,budget,labels_per_class,fraction,seed,n_train,n_val,n_test,test_acc,macro_f1,"
       "train_seconds,val_acc,selected\n");
    for (int i = 0; i < r->n_rows; i++) {
        const LinSweepRow *w = &r->rows[i];
        const LinBudget *b = &sp->budgets[w->budget];
        tx_csv(&t, w->method);
        tx(&t, ",%s,%d,%.9g,%llu,%lld,%lld,%lld,%.9g,%.9g,%.9g,%.9g,%.9g\n", b->name, b->per_class,
           b->fraction, (unsigned long long)w->seed, (long long)w->n_train, (long long)w->n_val,
           (long long)w->n_test, w->acc, w->f1, w->seconds, w->val_acc, w->selected);
    }
    SP_TRY_GOTO(rc, write_atomic(dir, "sweep.csv", &t), out);
    /* sweep_summary.csv */
    t.n = 0;
    tx(&t, "method,budget,labels_per_class,fraction,n_seeds,n_train_mean,acc_mean,acc_std,"
       "f1_mean,f1_std,train_seconds_mean\n");
    for (int b = 0; b < sp->n_budgets; b++)
        for (int m = 0; m < sp->n_methods; m++) {
            LinSweepStat s = lineval_sweep_stat(r, m, b);
            if (!s.n) continue;
            tx_csv(&t, sp->methods[m]);
            tx(&t, ",%s,%d,%.9g,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", sp->budgets[b].name,
               sp->budgets[b].per_class, sp->budgets[b].fraction, s.n, s.n_train_mean, s.acc_mean,
               s.acc_std, s.f1_mean, s.f1_std, s.sec_mean);
        }
    SP_TRY_GOTO(rc, write_atomic(dir, "sweep_summary.csv", &t), out);
    /* sweep.md */
    t.n = 0;
    tx(&t, "# %s\n\n", sp->title ? sp->title : "specssl sweep");
    tx(&t, "%d classes; %lld test spectra; %d seed%s per label budget. Each run draws one "
       "stratified labelled subset (training rows per class as listed, plus validation rows "
       "drawn first and shared by every budget); every method trains on exactly those rows, "
       "selects hyper-parameters or stops early on the validation rows only, and scores the "
       "test set once. The numbers in parentheses after a fraction or \"all\" are the mean "
       "training rows per class.\n\n", r->C, r->n_rows ? (long long)r->rows[0].n_test : 0LL,
       sp->n_seeds, sp->n_seeds == 1 ? "" : "s");
    tx(&t, "## Test accuracy (%%), mean ± std over seeds\n\n");
    md_table(&t, r, 0);
    tx(&t, "\n## Macro-F1 (%%), mean ± std over seeds\n\n");
    md_table(&t, r, 1);
    tx(&t, "\n## Training time (s), mean over seeds\n\n");
    md_table(&t, r, 2);
    tx(&t, "\nMethods: `probe` = multinomial logistic regression (L-BFGS, L2 chosen on the "
       "validation rows) on standardised frozen features h; `knn` = weighted kNN (cosine, "
       "votes exp(sim/t)) with the training rows as memory; `random_*` = the same on a "
       "randomly initialised encoder of the same architecture; `supervised:<arch>` = that "
       "architecture trained end to end from scratch; `finetune` = the pretrained encoder "
       "trained end to end. Probe/kNN times exclude the shared feature extraction (%.1f s).\n",
       r->feature_seconds);
    if (r->encoder_hash)
        tx(&t, "\nFrozen-encoder check passed: encoder fingerprint %016llx before and after.\n",
           (unsigned long long)r->encoder_hash);
    SP_TRY_GOTO(rc, write_atomic(dir, "sweep.md", &t), out);
    /* sweep.svg */
    t.n = 0;
    svg_plot(&t, r);
    SP_TRY_GOTO(rc, write_atomic(dir, "sweep.svg", &t), out);
    /* confusion of the best method at the largest budget */
    int b = largest_budget(r), m = best_method(r, b);
    const int C = r->C;
    const int64_t *cf = r->confusion + ((size_t)m * sp->n_budgets + b) * C * C;
    t.n = 0;
    tx(&t, "# method=%s labels_per_class=%s (rows: true class, columns: predicted; summed over "
       "seeds)\ntrue\\pred", sp->methods[m], sp->budgets[b].name);
    for (int j = 0; j < C; j++) tx(&t, ",%d", j);
    tx(&t, "\n");
    for (int i = 0; i < C; i++) {
        tx(&t, "%d", i);
        for (int j = 0; j < C; j++) tx(&t, ",%lld", (long long)cf[(size_t)i * C + j]);
        tx(&t, "\n");
    }
    SP_TRY_GOTO(rc, write_atomic(dir, "confusion.csv", &t), out);
    t.n = 0;
    svg_confusion(&t, r, m, b, cf);
    SP_TRY_GOTO(rc, write_atomic(dir, "confusion.svg", &t), out);
out:
    free(t.p);
    return rc;
}
