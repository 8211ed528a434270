/* bench_probe: wall time of the linear probe (L-BFGS over the L2 grid with
 * validation selection) and of weighted kNN on synthetic features.
 *   bench_probe [N_train D C N_val N_test]   (default 25000 128 500 2500 4500)
 * Features: class means N(0, 1) per coordinate, rows = mean + N(0, sigma^2)
 * with sigma = 4 (overlapping classes, so the regularisation matters). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sp_blas.h"
#include "sp_linear_eval.h"
#include "sp_log.h"
#include "sp_rng.h"

static void make(float *x, int32_t *y, int64_t n, int D, int C, const float *mu, uint64_t seed) {
    SpRng r;
    sp_rng_stream(&r, seed, 1, 2, 3);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % C);
        for (int d = 0; d < D; d++)
            x[i * D + d] = mu[(size_t)y[i] * D + d] + (float)(4.0 * sp_rng_normal(&r));
    }
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atoll(argv[1]) : 25000;
    int D = argc > 2 ? atoi(argv[2]) : 128, C = argc > 3 ? atoi(argv[3]) : 500;
    int64_t nv = argc > 4 ? atoll(argv[4]) : 2500, ns = argc > 5 ? atoll(argv[5]) : 4500;
    int th = sp_blas_init(0);
    char line[256];
    sp_threading_line(line, sizeof line);
    printf("%s\n", line);
    sp_log_set_level(SP_LOG_DEBUG);
    float *mu = malloc((size_t)C * D * sizeof(float));
    float *x = malloc((size_t)n * D * sizeof(float)), *xv = malloc((size_t)nv * D * sizeof(float));
    float *xs = malloc((size_t)ns * D * sizeof(float));
    int32_t *y = malloc((size_t)n * 4), *yv = malloc((size_t)nv * 4), *ys = malloc((size_t)ns * 4);
    int32_t *pred = malloc((size_t)ns * 4);
    SpRng r;
    sp_rng_stream(&r, 1, 0, 0, 0);
    for (size_t i = 0; i < (size_t)C * D; i++) mu[i] = (float)sp_rng_normal(&r);
    make(x, y, n, D, C, mu, 10);
    make(xv, yv, nv, D, C, mu, 11);
    make(xs, ys, ns, D, C, mu, 12);
    double grid[8] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
    LinParam p = {0};
    p.n_classes = C;
    p.l2_grid = grid;
    p.n_l2 = 8;
    p.l2_default = 1e-3;
    p.l2_patience = argc > 6 ? atoi(argv[6]) : 1;
    p.standardise = 1;
    lineval_lbfgs_default(&p.lbfgs);
    p.lbfgs.gtol = 1e-4;
    LinProblem tr = {n, D, x, y}, va = {nv, D, xv, yv};
    double t0 = sp_time_now();
    LinModel *m = NULL;
    if (lineval_train(&m, &tr, &va, &p) != SP_OK) {
        sp_error_print(stderr);
        return 1;
    }
    double t1 = sp_time_now();
    lineval_predict(m, xs, ns, pred, NULL);
    int64_t ok = 0;
    for (int64_t i = 0; i < ns; i++) ok += pred[i] == ys[i];
    printf("probe: N=%lld D=%d C=%d val=%lld threads=%d: fit+selection %.2f s, selected l2=%g, "
           "test acc %.4f\n", (long long)n, D, C, (long long)nv, th, t1 - t0, m->l2,
           (double)ok / (double)ns);
    for (int i = 0; i < m->n_path; i++)
        printf("  l2=%-8g iters=%-4d train_loss=%.5f val_acc=%.4f val_loss=%.4f\n", m->path_l2[i],
               m->path_iters[i], m->path_train_loss[i], m->path_val_acc[i], m->path_val_loss[i]);
    t0 = sp_time_now();
    lineval_knn(&tr, C, xs, ns, 20, 0.1, pred, NULL);
    t1 = sp_time_now();
    ok = 0;
    for (int64_t i = 0; i < ns; i++) ok += pred[i] == ys[i];
    printf("  refine of the selected strength: %d iterations\n", m->refine_iters);
    printf("knn: k=20 %lld queries: %.2f s, test acc %.4f\n", (long long)ns, t1 - t0,
           (double)ok / (double)ns);
    lineval_destroy(&m);
    free(mu); free(x); free(xv); free(xs); free(y); free(yv); free(ys); free(pred);
    return 0;
}
