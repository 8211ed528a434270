/* rr.c - relational-reasoning pieces (reference/specrrmoco.md §5): relation
 * pairs by the roll rule, the MLP and linear heads with forward/backward, the
 * relation (BCE/focal) and classification (CE, optional double softmax) losses;
 * plus the monitors (weighted kNN accuracy, collapse std).
 *
 * Dimension letters: V views, B batch, N head rows, H hidden, C classes,
 * D feature width. Allocation: rr_head_create / rr_head_act_create only.
 * Head forward/backward run core layers (own OpenMP regions). Pairs, losses
 * and the collapse metric are serial; pretext_knn_accuracy opens its own
 * OpenMP region.
 */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt_internal.h"
#include "sp_layers.h"
#include "sp_losses.h"

void pt_assert_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "specssl: internal error at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

uint64_t pt_derive_seed(uint64_t seed, int tag) {
    uint64_t x = seed ^ (0x5045525445585400ULL + (uint64_t)tag);  /* "PRETEXT" + tag */
    sp_splitmix64(&x);
    return sp_splitmix64(&x);
}

/* ------------------------------------------------------------------ pairs */

int rr_num_pairs(int V, int B) {
    if (V < 2 || B < 1) return 0;
    return V * (V - 1) * B;
}

void rr_make_pairs(int V, int B, int *left, int *right, float *target) {
    int r = 0, c = 1;
    for (int v1 = 0; v1 < V; v1++) {
        for (int v2 = v1 + 1; v2 < V; v2++) {
            for (int b = 0; b < B; b++, r++) {
                left[r] = v1 * B + b;
                right[r] = v2 * B + b;
                target[r] = 1.0f;
            }
            for (int b = 0; b < B; b++, r++) {
                int src = ((b - c) % B + B) % B;   /* torch.roll(F_v2, c): row b <- row b - c */
                left[r] = v1 * B + b;
                right[r] = v2 * B + src;
                target[r] = 0.0f;
            }
            c++;
            if (c >= B) c = 1;
        }
    }
}

/* ------------------------------------------------------------------ heads */

static SpBatchNorm head_bn(int N, int H) {
    SpBatchNorm b;
    b.N = N;
    b.C = H;
    b.L = 1;
    b.S = 1;
    b.eps = 1e-5f;
    b.momentum = 0.1f;
    return b;
}

static void fill_normal(float *x, size_t n, double std, SpRng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * sp_rng_normal(r));
}

static void fill_uniform(float *x, size_t n, double bound, SpRng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)sp_rng_uniform(r, -bound, bound);
}

SpStatus rr_head_create(RrHead *h, RrHeadKind kind, int in, int hidden, int out, SpRng *rng) {
    memset(h, 0, sizeof *h);
    h->kind = kind;
    h->in = in;
    h->hidden = kind == RR_HEAD_MLP ? hidden : 0;
    h->out = out;
    h->iw0 = h->ib0 = h->ig = h->ibeta = h->irm = h->irv = h->inbt = h->iw3 = h->ib3 = -1;
    if (in < 1 || out < 1 || (kind == RR_HEAD_MLP && hidden < 1))
        SP_FAIL(SP_ECONFIG, "RR head: widths must be >= 1 (in %d, hidden %d, out %d)", in, hidden,
                out);
    SpParams *p = &h->params;
    sp_params_init(p);
    int bad = 0;
    if (kind == RR_HEAD_MLP) {
        bad |= (h->iw0 = sp_params_add_dims(p, "head.0.weight", SP_TENSOR_PARAM, 2, hidden, in)) < 0;
        bad |= (h->ib0 = sp_params_add_dims(p, "head.0.bias", SP_TENSOR_PARAM, 1, hidden)) < 0;
        bad |= (h->ig = sp_params_add_dims(p, "head.1.weight", SP_TENSOR_PARAM, 1, hidden)) < 0;
        bad |= (h->ibeta = sp_params_add_dims(p, "head.1.bias", SP_TENSOR_PARAM, 1, hidden)) < 0;
        bad |= (h->irm = sp_params_add_dims(p, "head.1.running_mean", SP_TENSOR_BUFFER, 1,
                                            hidden)) < 0;
        bad |= (h->irv = sp_params_add_dims(p, "head.1.running_var", SP_TENSOR_BUFFER, 1,
                                            hidden)) < 0;
        bad |= (h->inbt = sp_params_add_dims(p, "head.1.num_batches_tracked", SP_TENSOR_BUFFER,
                                             0)) < 0;
        bad |= (h->iw3 = sp_params_add_dims(p, "head.3.weight", SP_TENSOR_PARAM, 2, out, hidden)) < 0;
        bad |= (h->ib3 = sp_params_add_dims(p, "head.3.bias", SP_TENSOR_PARAM, 1, out)) < 0;
    } else {
        bad |= (h->iw3 = sp_params_add_dims(p, "head.1.weight", SP_TENSOR_PARAM, 2, out, in)) < 0;
        bad |= (h->ib3 = sp_params_add_dims(p, "head.1.bias", SP_TENSOR_PARAM, 1, out)) < 0;
    }
    SpStatus rc = bad ? sp_error_status() : sp_params_finalize(p);
    if (rc != SP_OK) {
        rr_head_free(h);
        return rc == SP_OK ? SP_EINTERNAL : rc;
    }
    if (kind == RR_HEAD_MLP) {
        float *rv = sp_params_data(p, h->irv);
        for (int i = 0; i < hidden; i++) rv[i] = 1.0f;
    }
    if (rng) {
        if (kind == RR_HEAD_MLP) {
            fill_normal(sp_params_data(p, h->iw0), (size_t)hidden * in, 0.05, rng);
            fill_uniform(sp_params_data(p, h->ib0), (size_t)hidden, 1.0 / sqrt((double)in), rng);
            fill_normal(sp_params_data(p, h->ig), (size_t)hidden, 0.05, rng);
            fill_normal(sp_params_data(p, h->iw3), (size_t)out * hidden, 0.05, rng);
            fill_uniform(sp_params_data(p, h->ib3), (size_t)out, 1.0 / sqrt((double)hidden), rng);
        } else {
            fill_normal(sp_params_data(p, h->iw3), (size_t)out * in, 0.05, rng);
            fill_uniform(sp_params_data(p, h->ib3), (size_t)out, 1.0 / sqrt((double)in), rng);
        }
    }
    return SP_OK;
}

void rr_head_free(RrHead *h) {
    sp_params_free(&h->params);
    memset(h, 0, sizeof *h);
    h->iw0 = h->ib0 = h->ig = h->ibeta = h->irm = h->irv = h->inbt = h->iw3 = h->ib3 = -1;
}

SpStatus rr_head_act_create(RrHeadAct *a, const RrHead *h, int maxN) {
    memset(a, 0, sizeof *a);
    if (maxN < 1) SP_FAIL(SP_EINTERNAL, "RR head context for %d rows", maxN);
    a->maxN = maxN;
    size_t N = (size_t)maxN;
    size_t H = (size_t)(h->kind == RR_HEAD_MLP ? h->hidden : 0);
    size_t work = 0;
    if (h->kind == RR_HEAD_MLP) {
        SpBatchNorm bn = head_bn(maxN, h->hidden);
        size_t w1 = linear_work_floats(maxN, h->in, h->hidden);
        size_t w2 = linear_work_floats(maxN, h->hidden, h->out);
        size_t w3 = batchnorm_work_floats(&bn);
        work = w1 > w2 ? w1 : w2;
        if (w3 > work) work = w3;
        a->a0 = sp_aligned_alloc(N * H * sizeof(float), "RR head");
        a->bn = sp_aligned_alloc(N * H * sizeof(float), "RR head");
        a->act = sp_aligned_alloc(N * H * sizeof(float), "RR head");
        a->dact = sp_aligned_alloc(N * H * sizeof(float), "RR head");
        a->dbn = sp_aligned_alloc(N * H * sizeof(float), "RR head");
        a->da0 = sp_aligned_alloc(N * H * sizeof(float), "RR head");
        a->mean = sp_aligned_alloc(H * sizeof(float), "RR head");
        a->rstd = sp_aligned_alloc(H * sizeof(float), "RR head");
        if (!a->a0 || !a->bn || !a->act || !a->dact || !a->dbn || !a->da0 || !a->mean ||
            !a->rstd) {
            rr_head_act_free(a);
            return SP_ENOMEM;
        }
    } else {
        work = linear_work_floats(maxN, h->in, h->out);
        a->act = sp_aligned_alloc(N * (size_t)h->in * sizeof(float), "RR head");
        a->dact = sp_aligned_alloc(N * (size_t)h->in * sizeof(float), "RR head");
        if (!a->act || !a->dact) {
            rr_head_act_free(a);
            return SP_ENOMEM;
        }
    }
    a->logits = sp_aligned_alloc(N * (size_t)h->out * sizeof(float), "RR head");
    a->work = sp_aligned_alloc((work > 0 ? work : 1) * sizeof(float), "RR head");
    if (!a->logits || !a->work) {
        rr_head_act_free(a);
        return SP_ENOMEM;
    }
    return SP_OK;
}

void rr_head_act_free(RrHeadAct *a) {
    free(a->a0);
    free(a->bn);
    free(a->act);
    free(a->dact);
    free(a->dbn);
    free(a->da0);
    free(a->mean);
    free(a->rstd);
    free(a->logits);
    free(a->work);
    memset(a, 0, sizeof *a);
}

#define RR_SLOPE 0.01f

void rr_head_forward(RrHead *h, RrHeadAct *a, const float *x, int N, int train) {
    PT_ASSERT(N >= 1 && N <= a->maxN, "RR head: %d rows, context holds 1..%d", N, a->maxN);
    const SpParams *p = &h->params;
    a->x = x;
    a->N = N;
    a->train = train;
    if (h->kind == RR_HEAD_MLP) {
        const int H = h->hidden;
        SpBatchNorm bn = head_bn(N, H);
        linear_forward(a->a0, x, sp_params_data(p, h->iw0), sp_params_data(p, h->ib0), N, h->in,
                       H);
        if (train) {
            batchnorm_forward_train(a->bn, a->mean, a->rstd, a->a0, sp_params_data(p, h->ig),
                                    sp_params_data(p, h->ibeta), sp_params_data(p, h->irm),
                                    sp_params_data(p, h->irv), &bn);
            sp_params_data(p, h->inbt)[0] += 1.0f;
        } else {
            batchnorm_forward_eval(a->bn, a->a0, sp_params_data(p, h->ig),
                                   sp_params_data(p, h->ibeta), sp_params_data(p, h->irm),
                                   sp_params_data(p, h->irv), &bn);
        }
        leaky_relu_forward(a->act, a->bn, (size_t)N * H, RR_SLOPE);
        linear_forward(a->logits, a->act, sp_params_data(p, h->iw3), sp_params_data(p, h->ib3), N,
                       H, h->out);
    } else {
        leaky_relu_forward(a->act, x, (size_t)N * h->in, RR_SLOPE);
        linear_forward(a->logits, a->act, sp_params_data(p, h->iw3), sp_params_data(p, h->ib3), N,
                       h->in, h->out);
    }
}

void rr_head_backward(RrHead *h, RrHeadAct *a, const float *dlogits, float *dx) {
    const int N = a->N;
    PT_ASSERT(N >= 1, "RR head backward before forward");
    const SpParams *p = &h->params;
    if (h->kind == RR_HEAD_MLP) {
        const int H = h->hidden;
        const size_t nh = (size_t)N * H;
        SpBatchNorm bn = head_bn(N, H);
        memset(a->dact, 0, nh * sizeof(float));
        linear_backward(a->dact, sp_params_grad(p, h->iw3), sp_params_grad(p, h->ib3), dlogits,
                        a->act, sp_params_data(p, h->iw3), N, H, h->out, a->work);
        memset(a->dbn, 0, nh * sizeof(float));
        leaky_relu_backward(a->dbn, a->dact, a->bn, nh, RR_SLOPE);
        memset(a->da0, 0, nh * sizeof(float));
        if (a->train)
            batchnorm_backward(a->da0, sp_params_grad(p, h->ig), sp_params_grad(p, h->ibeta),
                               a->dbn, a->a0, a->mean, a->rstd, sp_params_data(p, h->ig), &bn,
                               a->work);
        else
            batchnorm_backward_eval(a->da0, sp_params_grad(p, h->ig), sp_params_grad(p, h->ibeta),
                                    a->dbn, a->a0, sp_params_data(p, h->ig),
                                    sp_params_data(p, h->irm), sp_params_data(p, h->irv), &bn,
                                    a->work);
        linear_backward(dx, sp_params_grad(p, h->iw0), sp_params_grad(p, h->ib0), a->da0, a->x,
                        sp_params_data(p, h->iw0), N, h->in, H, a->work);
    } else {
        const size_t ni = (size_t)N * h->in;
        memset(a->dact, 0, ni * sizeof(float));
        linear_backward(a->dact, sp_params_grad(p, h->iw3), sp_params_grad(p, h->ib3), dlogits,
                        a->act, sp_params_data(p, h->iw3), N, h->in, h->out, a->work);
        if (dx) leaky_relu_backward(dx, a->dact, a->x, ni, RR_SLOPE);
    }
}

/* ----------------------------------------------------------------- losses */

void rr_relation_loss(const float *logits, const float *target, int N, float gamma, float alpha,
                      float scale, float *dlogits, RrStats *st) {
    memset(st, 0, sizeof *st);
    st->loss = bce_logits_loss(dlogits, logits, target, N, gamma, alpha, scale, NULL);
    for (int i = 0; i < N; i++) {
        int pred = logits[i] > 0.0f;   /* round(sigmoid(0)) = 0 */
        int pos = target[i] > 0.5f;
        if (pos) {
            st->n_pos++;
            st->correct_pos += pred;
        } else {
            st->n_neg++;
            st->correct_neg += !pred;
        }
    }
    st->n = st->n_pos + st->n_neg;
    st->correct = st->correct_pos + st->correct_neg;
}

void rr_class_loss(const float *logits, const int *labels, int N, int C, int double_softmax,
                   float scale, float *dlogits, float *prob, float *dprob, RrStats *st) {
    memset(st, 0, sizeof *st);
    if (!double_softmax) {
        st->loss = cross_entropy_loss(dlogits, logits, labels, N, C, scale, NULL);
    } else {
        /* reference quirk 1: Softmax in the head, then CrossEntropyLoss on its output */
        softmax_forward(prob, logits, N, C);
        if (dlogits) memset(dprob, 0, (size_t)N * C * sizeof(float));
        st->loss = cross_entropy_loss(dlogits ? dprob : NULL, prob, labels, N, C, scale, NULL);
        if (dlogits) softmax_backward(dlogits, dprob, prob, N, C);
    }
    for (int i = 0; i < N; i++) {
        if (labels[i] < 0) continue;
        const float *l = logits + (size_t)i * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (l[c] > l[best]) best = c;
        st->n++;
        st->correct += best == labels[i];
    }
}

/* --------------------------------------------------------------- monitors */

size_t pretext_knn_scratch_floats(int64_t Nb, int k, int C) {
    return (size_t)Nb + 2 * (size_t)k + (size_t)C + 16;
}

double pretext_knn_accuracy(const float *bank, const int32_t *bank_labels, int64_t Nb,
                            const float *queries, const int32_t *query_labels, int64_t Nq, int D,
                            int C, int k, float t, float *scratch) {
    if (Nq <= 0 || Nb <= 0) return 0.0;
    if (k > Nb) k = (int)Nb;
    const size_t per = pretext_knn_scratch_floats(Nb, k, C);
    int64_t correct = 0;
#pragma omp parallel reduction(+ : correct)
    {
        int tid = omp_get_thread_num();
        float *sim = scratch + per * (size_t)tid;
        float *topv = sim + Nb;                 /* k best similarities, descending */
        int *topi = (int *)(topv + k);          /* their bank rows (float-sized slots) */
        float *vote = (float *)(topi + k);
#pragma omp for schedule(static)
        for (int64_t q = 0; q < Nq; q++) {
            const float *qv = queries + (size_t)q * D;
            for (int64_t j = 0; j < Nb; j++) {
                const float *bv = bank + (size_t)j * D;
                double s = 0.0;
                for (int d = 0; d < D; d++) s += (double)qv[d] * (double)bv[d];
                sim[j] = (float)s;
            }
            int n = 0;
            for (int64_t j = 0; j < Nb; j++) {
                float v = sim[j];
                if (n == k && !(v > topv[k - 1])) continue;
                int pos = n < k ? n : k - 1;
                while (pos > 0 && topv[pos - 1] < v) {
                    topv[pos] = topv[pos - 1];
                    topi[pos] = topi[pos - 1];
                    pos--;
                }
                topv[pos] = v;
                topi[pos] = (int)j;
                if (n < k) n++;
            }
            for (int c = 0; c < C; c++) vote[c] = 0.0f;
            for (int i = 0; i < n; i++) {
                int c = bank_labels[topi[i]];
                if (c >= 0 && c < C) vote[c] += expf(topv[i] / t);
            }
            int best = 0;
            for (int c = 1; c < C; c++)
                if (vote[c] > vote[best]) best = c;
            correct += best == query_labels[q];   /* integer reduction: deterministic */
        }
    }
    return (double)correct / (double)Nq;
}

double pretext_collapse_std(const float *z, int B, int D) {
    if (B < 2 || D < 1) return 0.0;
    double acc = 0.0;
    for (int d = 0; d < D; d++) {
        double m = 0.0;
        for (int b = 0; b < B; b++) m += (double)z[(size_t)b * D + d];
        m /= B;
        double v = 0.0;
        for (int b = 0; b < B; b++) {
            double e = (double)z[(size_t)b * D + d] - m;
            v += e * e;
        }
        acc += sqrt(v / (B - 1));
    }
    return acc / D;
}
