/* metrics.c - accuracy, macro-F1 and the confusion matrix of predictions.
 * Macro-F1 follows scikit-learn's default: the mean of per-class F1 over the
 * classes that occur in the labels or in the predictions. Serial. */
#include <stdlib.h>
#include <string.h>

#include "sp_linear_eval.h"

void lineval_metrics_free(LinMetrics *m) {
    if (!m) return;
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

SpStatus lineval_metrics(LinMetrics *m, const int32_t *pred, const int32_t *labels, int64_t n,
                         int C) {
    memset(m, 0, sizeof *m);
    if (C < 1) SP_FAIL(SP_EINPUT, "metrics: no classes");
    m->C = C;
    m->confusion = calloc((size_t)C * C, sizeof(int64_t));
    if (!m->confusion) SP_FAIL(SP_ENOMEM, "metrics: out of memory (%d classes)", C);
    for (int64_t i = 0; i < n; i++) {
        int y = labels[i], p = pred[i];
        if (y < 0) continue;
        if (y >= C || p < 0 || p >= C) {
            lineval_metrics_free(m);
            SP_FAIL(SP_EINPUT, "metrics: row %lld: label %d / prediction %d outside 0..%d",
                    (long long)i, y, p, C - 1);
        }
        m->confusion[(size_t)y * C + p]++;
        m->n++;
        m->correct += (y == p);
    }
    m->acc = m->n ? (double)m->correct / (double)m->n : 0;
    double f1 = 0;
    int present = 0;
    for (int c = 0; c < C; c++) {
        int64_t tp = m->confusion[(size_t)c * C + c], row = 0, col = 0;
        for (int j = 0; j < C; j++) {
            row += m->confusion[(size_t)c * C + j];
            col += m->confusion[(size_t)j * C + c];
        }
        if (row == 0 && col == 0) continue;
        present++;
        f1 += 2.0 * (double)tp / (double)(row + col);
    }
    m->macro_f1 = present ? f1 / present : 0;
    return SP_OK;
}
