/* loader.c - epoch permutations and batches, in memory or streamed by blocks. */
#include <stdlib.h>
#include <string.h>

#include "sp_data.h"

struct SpLoader {
    SpDataset *ds;
    const SpNorm *norm;
    int B, shuffle, drop_last;
    uint64_t seed;
    int64_t n_idx;   /* rows selected */
    int64_t n_emit;  /* rows per epoch (drop_last applied) */
    int64_t *sorted; /* [n_idx] selected dataset indices, ascending */
    /* batch buffers */
    float *x;
    int64_t *index;
    int32_t *labels, *extvar;
    /* epoch state */
    SpRng rng;
    int64_t emitted;
    int started;
    /* in memory */
    int64_t *perm; /* [n_idx] */
    /* streaming */
    int64_t nblocks;
    int64_t *blk_start, *blk_count; /* offsets into sorted */
    int64_t *blk_order;
    int64_t next_block;
    int window;          /* blocks per window */
    int64_t block_rows;
    float *win;          /* [window * block_rows, L] */
    int64_t *win_index;  /* dataset index of each window row */
    int64_t *win_perm;
    int64_t win_rows, win_pos;
};

static void shuffle_i64(SpRng *r, int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = sp_rng_below(r, i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void loader_free(SpLoader **pl) {
    if (!pl || !*pl) return;
    SpLoader *l = *pl;
    free(l->sorted);
    free(l->x);
    free(l->index);
    free(l->labels);
    free(l->extvar);
    free(l->perm);
    free(l->blk_start);
    free(l->blk_count);
    free(l->blk_order);
    free(l->win);
    free(l->win_index);
    free(l->win_perm);
    free(l);
    *pl = NULL;
}

SpStatus loader_create(SpLoader **out, SpDataset *ds, const int64_t *idx, int64_t n_idx,
                       int batch, int shuffle, int drop_last, uint64_t seed, const SpNorm *norm) {
    *out = NULL;
    if (batch <= 0) SP_FAIL(SP_EINPUT, "batch size must be positive (got %d)", batch);
    if (!idx) n_idx = ds->n;
    if (n_idx <= 0) SP_FAIL(SP_EINPUT, "'%s': no rows to iterate over", ds->path);
    if (norm && norm->kind == SP_NORM_STANDARDISE && norm->L != ds->L)
        SP_FAIL(SP_EINPUT, "'%s': spectra have L=%d points but the normalisation was fitted on L=%d",
                ds->path, ds->L, norm->L);
    SpLoader *l = calloc(1, sizeof *l);
    if (!l) SP_FAIL(SP_ENOMEM, "out of memory");
    l->ds = ds;
    l->norm = norm;
    l->B = batch;
    l->shuffle = shuffle;
    l->drop_last = drop_last;
    l->seed = seed;
    l->n_idx = n_idx;
    l->n_emit = drop_last ? (n_idx / batch) * batch : n_idx;
    if (l->n_emit == 0) {
        loader_free(&l);
        SP_FAIL(SP_EINPUT, "'%s': %lld rows are fewer than one batch of %d (drop_last is set)",
                ds->path, (long long)n_idx, batch);
    }
    const size_t L = (size_t)ds->L;
    l->sorted = malloc((size_t)n_idx * sizeof(int64_t));
    l->x = sp_aligned_alloc((size_t)batch * L * sizeof(float), "batch");
    l->index = malloc((size_t)batch * sizeof(int64_t));
    if (ds->labels) l->labels = malloc((size_t)batch * sizeof(int32_t));
    if (ds->extvar) l->extvar = malloc((size_t)batch * sizeof(int32_t));
    if (!l->sorted || !l->x || !l->index || (ds->labels && !l->labels) || (ds->extvar && !l->extvar)) {
        loader_free(&l);
        SP_FAIL(SP_ENOMEM, "out of memory allocating the batch loader");
    }
    for (int64_t i = 0; i < n_idx; i++) {
        int64_t v = idx ? idx[i] : i;
        if (v < 0 || v >= ds->n) {
            loader_free(&l);
            SP_FAIL(SP_EINPUT, "'%s': row index %lld outside 0..%lld", ds->path, (long long)v,
                    (long long)ds->n - 1);
        }
        l->sorted[i] = v;
    }
    qsort(l->sorted, (size_t)n_idx, sizeof(int64_t), cmp_i64);
    for (int64_t i = 1; i < n_idx; i++)
        if (l->sorted[i] == l->sorted[i - 1]) {
            int64_t v = l->sorted[i];
            loader_free(&l);
            SP_FAIL(SP_EINPUT, "'%s': row index %lld selected twice", ds->path, (long long)v);
        }

    if (ds->in_memory) {
        l->perm = malloc((size_t)n_idx * sizeof(int64_t));
        if (!l->perm) {
            loader_free(&l);
            SP_FAIL(SP_ENOMEM, "out of memory");
        }
    } else {
        int64_t R = ds->block_rows > 0 ? ds->block_rows : 256;
        l->block_rows = R;
        l->window = ds->shuffle_window > 0 ? ds->shuffle_window : 8;
        /* blocks: dataset rows [b R, (b+1) R) that hold selected rows */
        int64_t nb = 0;
        for (int64_t i = 0; i < n_idx; i++)
            if (i == 0 || l->sorted[i] / R != l->sorted[i - 1] / R) nb++;
        l->nblocks = nb;
        l->blk_start = malloc((size_t)nb * sizeof(int64_t));
        l->blk_count = malloc((size_t)nb * sizeof(int64_t));
        l->blk_order = malloc((size_t)nb * sizeof(int64_t));
        size_t wrows = (size_t)l->window * (size_t)R;
        l->win = sp_aligned_alloc(wrows * L * sizeof(float), "streaming window");
        l->win_index = malloc(wrows * sizeof(int64_t));
        l->win_perm = malloc(wrows * sizeof(int64_t));
        if (!l->blk_start || !l->blk_count || !l->blk_order || !l->win || !l->win_index || !l->win_perm) {
            loader_free(&l);
            SP_FAIL(SP_ENOMEM, "out of memory allocating the streaming window (%d blocks of %lld rows)",
                    ds->shuffle_window, (long long)R);
        }
        int64_t b = -1;
        for (int64_t i = 0; i < n_idx; i++) {
            if (i == 0 || l->sorted[i] / R != l->sorted[i - 1] / R) {
                b++;
                l->blk_start[b] = i;
                l->blk_count[b] = 0;
            }
            l->blk_count[b]++;
        }
    }
    *out = l;
    return SP_OK;
}

int64_t loader_num_rows(const SpLoader *l) { return l->n_emit; }

int64_t loader_num_batches(const SpLoader *l) { return (l->n_emit + l->B - 1) / l->B; }

SpStatus loader_start_epoch(SpLoader *l, int64_t epoch) {
    sp_rng_stream(&l->rng, l->seed, (uint64_t)epoch, 0x6c6f6164ULL /* "load" */, 0);
    l->emitted = 0;
    l->started = 1;
    if (l->ds->in_memory) {
        memcpy(l->perm, l->sorted, (size_t)l->n_idx * sizeof(int64_t));
        if (l->shuffle) shuffle_i64(&l->rng, l->perm, l->n_idx);
    } else {
        for (int64_t b = 0; b < l->nblocks; b++) l->blk_order[b] = b;
        if (l->shuffle) shuffle_i64(&l->rng, l->blk_order, l->nblocks);
        l->next_block = 0;
        l->win_rows = l->win_pos = 0;
    }
    return SP_OK;
}

/* Streaming: read the next window of blocks, compact the selected rows,
 * shuffle them within the window. */
static SpStatus fill_window(SpLoader *l) {
    SpDataset *ds = l->ds;
    const size_t L = (size_t)ds->L;
    int64_t filled = 0;
    for (int w = 0; w < l->window && l->next_block < l->nblocks; w++) {
        int64_t b = l->blk_order[l->next_block++];
        const int64_t *sel = l->sorted + l->blk_start[b];
        int64_t cnt = l->blk_count[b];
        int64_t first = sel[0], span = sel[cnt - 1] - first + 1;
        float *dst = l->win + (size_t)filled * L;
        SP_TRY(dataset_read_rows(ds, first, span, dst));
        for (int64_t t = 0; t < cnt; t++) {
            int64_t off = sel[t] - first;
            if (off != t) memmove(dst + (size_t)t * L, dst + (size_t)off * L, L * sizeof(float));
            l->win_index[filled + t] = sel[t];
        }
        filled += cnt;
    }
    l->win_rows = filled;
    l->win_pos = 0;
    for (int64_t i = 0; i < filled; i++) l->win_perm[i] = i;
    if (l->shuffle) shuffle_i64(&l->rng, l->win_perm, filled);
    return SP_OK;
}

SpStatus loader_next(SpLoader *l, SpBatch *b) {
    if (!l->started) SP_TRY(loader_start_epoch(l, 0));
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
    if (ds->in_memory) {
        for (int i = 0; i < n; i++) {
            int64_t v = l->perm[l->emitted + i];
            memcpy(l->x + (size_t)i * L, ds->x + (size_t)v * L, L * sizeof(float));
            l->index[i] = v;
        }
    } else {
        int i = 0;
        while (i < n) {
            if (l->win_pos >= l->win_rows) {
                SP_TRY(fill_window(l));
                if (l->win_rows == 0) SP_FAIL(SP_EINTERNAL, "loader: ran out of rows mid-epoch");
            }
            int64_t k = l->win_perm[l->win_pos++];
            memcpy(l->x + (size_t)i * L, l->win + (size_t)k * L, L * sizeof(float));
            l->index[i] = l->win_index[k];
            i++;
        }
    }
    for (int i = 0; i < n; i++) {
        if (l->labels) l->labels[i] = ds->labels[l->index[i]];
        if (l->extvar) l->extvar[i] = ds->extvar[l->index[i]];
    }
    if (l->norm) norm_apply(l->norm, l->x, n, ds->L);
    l->emitted += n;
    return SP_OK;
}
