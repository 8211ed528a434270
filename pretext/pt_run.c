/* pt_run.c - the pretraining loop behind `specssl pretrain` (pretrain_run).
 *
 * Files in RUN_DIR:
 *  - config.cfg: the effective configuration (defaults and --set included),
 *    rewritten at every start; `-c RUN_DIR/config.cfg --resume` continues.
 *  - checkpoint.h5 (kind "pretrain"): encoder_q, proj_q, encoder_k, proj_k,
 *    heads/{relation_head,cls_head,tmp_cls_head}, queue (D, Q), queue_ptr,
 *    optim/m/<group> (and optim/v for Adam), norm (the input normalisation
 *    fitted on the pretraining data; embed and linear evaluation apply it),
 *    train_state/epoch_acc (the running sums of a partly done epoch), and
 *    root attributes epoch (epochs completed), step (optimizer steps),
 *    batch_in_epoch (steps already done in epoch `epoch` when the checkpoint
 *    was written mid-epoch after a signal; 0 otherwise), optim_step, seed,
 *    data_n, data_L, data_path, config (the full text). Written atomically
 *    every train.checkpoint_every epochs, at the end and on SIGINT/SIGTERM.
 *    Every random draw is keyed by (seed, epoch, step/sample, slot), so the
 *    checkpoint plus the config determine the rest of the run: with one
 *    thread a resumed run is bit-identical to an uninterrupted one.
 *  - metrics.jsonl: one JSON object per completed epoch (epoch = epochs
 *    completed, 1-based; means over all steps of the epoch, weighted by the
 *    spectra of each step; accuracies are pooled counts). Append-only and
 *    fsynced. Lines wait in memory and are flushed just before each
 *    checkpoint is written, so no epoch that a checkpoint covers can be
 *    missing from the file after a crash or kill. A kill between the flush
 *    and the checkpoint's commit leaves lines of epochs that the previous
 *    checkpoint does not cover: the resumed run repeats those epochs and
 *    appends their lines again. Reader rule: the last line of each epoch
 *    wins; a line without its final newline (torn by a kill) is not a
 *    record (the next flush starts a new line after it). The deterministic
 *    fields come first; the timing fields (spectra_s, gflops, epoch_s,
 *    wall_s) last.
 *
 * Batches: a permutation of the N spectra per epoch (loader, keyed by seed
 * and epoch), consecutive chunks of train.batch_size. Every batch reaching
 * the encoder must be a multiple of its BN splits S: train.batch_size must
 * be (checked); the last, smaller batch (drop_last false) is cut to a
 * multiple of S by dropping its last rows, and skipped when fewer than
 * max(S, 2) rows remain (logged once with the number of rows dropped).
 *
 * kNN monitor: when the data has labels, a stratified subset of the
 * labelled spectra (at most train.knn_max_rows) is split per class into
 * queries (train.knn_val_fraction, at least one per class with >= 2 rows)
 * and a memory bank (the rest); every train.knn_every epochs the encoder
 * features h (eval mode, L2-normalised) of both are computed and the
 * weighted kNN accuracy of the queries is logged.
 *
 * Allocation: at start only (state, loader, kNN buffers); pending metrics
 * lines are small strings. Serial glue around the parallel step.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pt_dist.h"
#include "pt_internal.h"
#include "sp_blas.h"
#include "sp_checkpoint.h"
#include "sp_data.h"
#include "sp_h5.h"
#include "sp_log.h"
#include "sp_progress.h"
#include "sp_signal.h"

#define PT_NAN ((double)NAN)

/* Running sums of one epoch (saved in mid-epoch checkpoints). */
enum {
    ACC_STEPS = 0,
    ACC_ROWS,
    ACC_LOSS,
    ACC_INTER,
    ACC_INTRA,
    ACC_EXT,
    ACC_MOCO,
    ACC_ZSTD,
    ACC_N_INTER,
    ACC_C_INTER,
    ACC_N_POS,
    ACC_C_POS,
    ACC_N_NEG,
    ACC_C_NEG,
    ACC_N_INTRA,
    ACC_C_INTRA,
    ACC_N_EXT,
    ACC_C_EXT,
    ACC_N_MOCO,
    ACC_C_MOCO,
    ACC_LR,          /* learning rate of the last step */
    ACC_FLOPS,       /* not saved meaningfully across processes: timing only */
    ACC_COUNT
};

typedef struct {
    char *line;
} PendingLine;

typedef struct {
    const SpConfig *cfg;
    const char *data_path, *run_dir;
    char ckpt_path[SP_PATH_MAX], metrics_path[SP_PATH_MAX], config_path[SP_PATH_MAX];
    char *config_text;
    SpDataset *ds;
    SpNorm norm;
    int have_norm;
    PretrainState *st;
    PtLoader *ld;   /* SpLoader, or this rank's share of it (pt_dist.h) */
    int64_t epochs, batch, ckpt_every, knn_every, log_every;
    int drop_last;
    uint64_t seed;
    int64_t gstep;
    /* pending metrics lines */
    PendingLine *pending;
    int npending, cap_pending;
    /* kNN monitor */
    int knn_on, knn_k, knn_C, knn_batch;
    float knn_t;
    int64_t knn_nb, knn_nq;
    float *knn_x;          /* (nb + nq, L) normalised spectra: bank rows first */
    int32_t *knn_labels;   /* (nb + nq) */
    float *knn_feat;       /* (nb + nq, F) */
    float *knn_scratch;
    SpEncAct *knn_act;
} RunCtx;

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static SpStatus mkdir_p(const char *dir) {
    char tmp[SP_PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof tmp) SP_FAIL(SP_EUSAGE, "--out: bad run directory '%s'", dir);
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            SP_FAIL(SP_EIO, "cannot create directory '%s': %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        SP_FAIL(SP_EIO, "cannot create run directory '%s': %s", tmp, strerror(errno));
    struct stat sb;
    if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode))
        SP_FAIL(SP_EUSAGE, "--out '%s' exists and is not a directory", dir);
    return SP_OK;
}

/* ------------------------------------------------------- config on resume */

static int compared_key(const char *k) {
    static const char *const sections[] = {"data.", "augment.", "encoder.", "pretext.", "optim.",
                                           "train."};
    /* keys that do not change the training trajectory */
    static const char *const free_keys[] = {"train.epochs", "train.threads",
                                            "train.checkpoint_every", "train.log_every"};
    for (size_t i = 0; i < sizeof free_keys / sizeof free_keys[0]; i++)
        if (strcmp(k, free_keys[i]) == 0) return 0;
    if (strncmp(k, "train.knn_", 10) == 0) return 0;   /* monitor only */
    if (strcmp(k, "reference_quirks") == 0) return 1;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (strncmp(k, sections[i], strlen(sections[i])) == 0) return 1;
    return 0;
}

static void value_text(const SpConfig *c, const SpCfgKey *k, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    switch (k->type) {
    case SP_CFG_INT: snprintf(buf, n, "%lld", (long long)sp_cfg_int(c, k->key)); return;
    case SP_CFG_FLOAT: snprintf(buf, n, "%.17g", sp_cfg_float(c, k->key)); return;
    case SP_CFG_BOOL: snprintf(buf, n, "%s", sp_cfg_bool(c, k->key) ? "true" : "false"); return;
    case SP_CFG_STRING: snprintf(buf, n, "\"%s\"", sp_cfg_str(c, k->key)); return;
    default: break;
    }
    int len = sp_cfg_list_len(c, k->key);
    used += (size_t)snprintf(buf + used, n - used, "[");
    for (int i = 0; i < len && used < n; i++) {
        const char *sep = i ? ", " : "";
        if (k->type == SP_CFG_INT_LIST)
            used += (size_t)snprintf(buf + used, n - used, "%s%lld", sep,
                                     (long long)sp_cfg_int_at(c, k->key, i));
        else if (k->type == SP_CFG_FLOAT_LIST)
            used += (size_t)snprintf(buf + used, n - used, "%s%.17g", sep,
                                     sp_cfg_float_at(c, k->key, i));
        else
            used += (size_t)snprintf(buf + used, n - used, "%s\"%s\"", sep,
                                     sp_cfg_str_at(c, k->key, i));
    }
    if (used < n) snprintf(buf + used, n - used, "]");
}

static SpStatus check_resume_config(const SpConfig *cur, const char *old_text, const char *file,
                                    int64_t epochs_done) {
    SpConfig *old = NULL;
    SP_TRY(sp_config_from_text(&old, old_text, file));
    int n = 0;
    const SpCfgKey *keys = sp_config_keys(&n);
    char a[512], b[512];
    for (int i = 0; i < n; i++) {
        if (!compared_key(keys[i].key)) continue;
        value_text(cur, &keys[i], a, sizeof a);
        value_text(old, &keys[i], b, sizeof b);
        if (strcmp(a, b) != 0) {
            sp_config_free(old);
            SP_FAIL(SP_ECONFIG,
                    "--resume: %s = %s differs from the run in '%s' (%s); only train.epochs "
                    "(to grow), train.threads, train.checkpoint_every, train.log_every and the "
                    "train.knn_* monitor keys may change\nhint: resume with -c <run "
                    "dir>/config.cfg, or start a new run in another --out directory",
                    keys[i].key, a, file, b);
        }
    }
    sp_config_free(old);
    int64_t e = sp_cfg_int(cur, "train.epochs");
    if (e < epochs_done)
        SP_FAIL(SP_ECONFIG, "--resume: train.epochs = %lld but '%s' already completed %lld epochs",
                (long long)e, file, (long long)epochs_done);
    return SP_OK;
}

/* --------------------------------------------------------------- metrics */

static SpStatus pending_add(RunCtx *r, const char *line) {
    if (r->npending == r->cap_pending) {
        int cap = r->cap_pending ? 2 * r->cap_pending : 16;
        PendingLine *p = realloc(r->pending, (size_t)cap * sizeof *p);
        if (!p) SP_FAIL(SP_ENOMEM, "out of memory (metrics lines)");
        r->pending = p;
        r->cap_pending = cap;
    }
    r->pending[r->npending].line = strdup(line);
    if (!r->pending[r->npending].line) SP_FAIL(SP_ENOMEM, "out of memory (metrics lines)");
    r->npending++;
    return SP_OK;
}

static SpStatus pending_flush_root(RunCtx *r) {
    if (r->npending == 0) return SP_OK;
    FILE *fp = fopen(r->metrics_path, "a+");
    if (!fp) SP_FAIL(SP_EIO, "cannot open '%s' for appending: %s", r->metrics_path, strerror(errno));
    /* a line torn by a kill (no final newline) stays a line of its own */
    if (fseek(fp, 0, SEEK_END) == 0 && ftell(fp) > 0 && fseek(fp, -1, SEEK_END) == 0) {
        int last = fgetc(fp);
        fseek(fp, 0, SEEK_END);
        if (last != '\n') fputc('\n', fp);
    }
    for (int i = 0; i < r->npending; i++) {
        fputs(r->pending[i].line, fp);
        fputc('\n', fp);
    }
    int bad = ferror(fp) != 0;
    bad |= fflush(fp) != 0;
    bad |= fsync(fileno(fp)) != 0;
    bad |= fclose(fp) != 0;
    if (bad) SP_FAIL(SP_EIO, "writing '%s' failed: %s", r->metrics_path, strerror(errno));
    for (int i = 0; i < r->npending; i++) free(r->pending[i].line);
    r->npending = 0;
    return SP_OK;
}

/* Rank 0 writes (MPI runs, pt_dist.h); every rank learns the outcome. */
static SpStatus pending_flush(RunCtx *r) {
    if (pt_dist_is_root()) return pt_dist_agree(pending_flush_root(r));
    for (int i = 0; i < r->npending; i++) free(r->pending[i].line);
    r->npending = 0;
    return pt_dist_agree(SP_OK);
}

/* ------------------------------------------------------------ checkpoint */

static SpStatus write_checkpoint_root(RunCtx *r, int64_t epochs_done, int64_t batch_in_epoch,
                                      const double *acc) {
    SpH5Writer w;
    SP_TRY(ckpt_begin(&w, r->ckpt_path, "pretrain", encoder_arch(pretrain_encoder_q(r->st)),
                      r->config_text, epochs_done, r->gstep));
    SpStatus rc = SP_OK;
    hid_t f = w.f;
    SP_TRY_GOTO(rc, pretrain_state_save(r->st, f), fail);
    SP_TRY_GOTO(rc, norm_save(&r->norm, f, SP_GROUP_NORM), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(f, "/", "batch_in_epoch", batch_in_epoch), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(f, "/", "seed", (int64_t)r->seed), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(f, "/", "data_n", r->ds->n), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_int64(f, "/", "data_L", r->ds->L), fail);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(f, "/", "data_path", r->data_path), fail);
    {
        hsize_t dims[1] = {ACC_COUNT};
        SP_TRY_GOTO(rc, sp_h5_write_double(f, "train_state/epoch_acc", 1, dims, acc, SP_H5_CHECKSUM), fail);
    }
    SP_TRY_GOTO(rc, ckpt_commit(&w), out);
out:
    return rc;
fail:
    sp_h5_abort(&w);
    return rc;
}

/* MPI runs: the ranks' states are compared (hash), rank 0 writes. */
static SpStatus write_checkpoint(RunCtx *r, int64_t epochs_done, int64_t batch_in_epoch,
                                 const double *acc) {
    SP_TRY(pt_dist_check_consistent(r->st));
    SP_TRY(pt_dist_agree(pt_dist_is_root() ? write_checkpoint_root(r, epochs_done, batch_in_epoch,
                                                                   acc)
                                           : SP_OK));
    return pt_dist_dump(r->st);
}

/* ------------------------------------------------------------------- kNN */

static void knn_free(RunCtx *r) {
    free(r->knn_x);
    free(r->knn_labels);
    free(r->knn_feat);
    free(r->knn_scratch);
    encoder_act_destroy(&r->knn_act);
    r->knn_x = r->knn_feat = r->knn_scratch = NULL;
    r->knn_labels = NULL;
    r->knn_on = 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static SpStatus knn_setup(RunCtx *r) {
    SpDataset *ds = r->ds;
    r->knn_on = 0;
    if (r->knn_every <= 0) return SP_OK;
    if (!ds->labels || ds->n_classes < 2) {
        sp_log(SP_LOG_INFO, "kNN monitor off: the data has no labels (or fewer than 2 classes)");
        return SP_OK;
    }
    const int C = ds->n_classes;
    int64_t *counts = calloc((size_t)C, sizeof *counts);
    if (!counts) SP_FAIL(SP_ENOMEM, "out of memory (kNN monitor)");
    int64_t nl = dataset_count_labelled(ds, counts);
    int64_t cap = sp_cfg_int(r->cfg, "train.knn_max_rows");
    double keep = nl > cap ? (double)cap / (double)nl : 1.0;
    double vf = sp_cfg_float(r->cfg, "train.knn_val_fraction");
    uint64_t seed = pt_derive_seed(r->seed, PT_SEED_KNN);
    int64_t *bank = malloc((size_t)(nl > 0 ? nl : 1) * sizeof *bank);
    int64_t *query = malloc((size_t)(nl > 0 ? nl : 1) * sizeof *query);
    int64_t *rows = malloc((size_t)(nl > 0 ? nl : 1) * sizeof *rows);
    if (!bank || !query || !rows) {
        free(counts);
        free(bank);
        free(query);
        free(rows);
        SP_FAIL(SP_ENOMEM, "out of memory (kNN monitor)");
    }
    int64_t nb = 0, nq = 0;
    for (int c = 0; c < C; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < ds->n; i++)
            if (ds->labels[i] == c) rows[m++] = i;
        if (m == 0) continue;
        SpRng rg;
        sp_rng_stream(&rg, seed, (uint64_t)c, 0, 0);
        for (int64_t i = m - 1; i > 0; i--) {   /* Fisher-Yates */
            int64_t j = sp_rng_below(&rg, i + 1);
            int64_t t = rows[i];
            rows[i] = rows[j];
            rows[j] = t;
        }
        int64_t use = (int64_t)ceil(keep * (double)m);
        if (use > m) use = m;
        int64_t q = use >= 2 ? (int64_t)ceil(vf * (double)use) : 0;
        if (q >= use) q = use - 1;
        for (int64_t i = 0; i < q; i++) query[nq++] = rows[i];
        for (int64_t i = q; i < use; i++) bank[nb++] = rows[i];
    }
    free(counts);
    free(rows);
    if (nq == 0 || nb == 0) {
        free(bank);
        free(query);
        sp_log(SP_LOG_INFO, "kNN monitor off: too few labelled spectra");
        return SP_OK;
    }
    qsort(bank, (size_t)nb, sizeof *bank, cmp_i64);
    qsort(query, (size_t)nq, sizeof *query, cmp_i64);
    const int L = ds->L, F = encoder_feature_dim(pretrain_encoder_q(r->st));
    const int64_t n = nb + nq;
    r->knn_x = sp_aligned_alloc((size_t)n * L * sizeof(float), "kNN spectra");
    r->knn_labels = malloc((size_t)n * sizeof(int32_t));
    r->knn_feat = sp_aligned_alloc((size_t)n * F * sizeof(float), "kNN features");
    r->knn_k = (int)sp_cfg_int(r->cfg, "train.knn_k");
    r->knn_t = (float)sp_cfg_float(r->cfg, "train.knn_t");
    r->knn_C = C;
    size_t per = pretext_knn_scratch_floats(nb, r->knn_k, C);
    r->knn_scratch = sp_aligned_alloc(per * (size_t)omp_get_max_threads() * sizeof(float),
                                      "kNN scratch");
    SpStatus rc = SP_OK;
    if (!r->knn_x || !r->knn_labels || !r->knn_feat || !r->knn_scratch) {
        rc = SP_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t row = i < nb ? bank[i] : query[i - nb];
        SP_TRY_GOTO(rc, dataset_read_rows(ds, row, 1, r->knn_x + (size_t)i * L), done);
        r->knn_labels[i] = ds->labels[row];
    }
    norm_apply(&r->norm, r->knn_x, n, L);
    r->knn_batch = 64;
    SP_TRY_GOTO(rc, encoder_act_create(&r->knn_act, pretrain_encoder_q(r->st), r->knn_batch, L),
                done);
    r->knn_nb = nb;
    r->knn_nq = nq;
    r->knn_on = 1;
    sp_log(SP_LOG_INFO,
           "kNN monitor: %lld queries vs a bank of %lld labelled spectra (%d classes), k=%d "
           "t=%g, every %lld epochs",
           (long long)nq, (long long)nb, C, r->knn_k, (double)r->knn_t, (long long)r->knn_every);
done:
    free(bank);
    free(query);
    if (rc != SP_OK) knn_free(r);
    return rc;
}

static SpStatus knn_eval(RunCtx *r, double *acc) {
    SpEncoder *enc = pretrain_encoder_q(r->st);
    const int L = r->ds->L, F = encoder_feature_dim(enc);
    const int64_t n = r->knn_nb + r->knn_nq;
    for (int64_t i0 = 0; i0 < n; i0 += r->knn_batch) {
        int b = (int)(n - i0 < r->knn_batch ? n - i0 : r->knn_batch);
        SP_TRY(encoder_forward(enc, r->knn_act, r->knn_x + (size_t)i0 * L, b, SP_ENC_EVAL,
                               r->knn_feat + (size_t)i0 * F));
    }
    for (int64_t i = 0; i < n; i++) {
        float *v = r->knn_feat + (size_t)i * F;
        double ss = 0.0;
        for (int d = 0; d < F; d++) ss += (double)v[d] * (double)v[d];
        double nrm = sqrt(ss);
        float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
        for (int d = 0; d < F; d++) v[d] *= inv;
    }
    *acc = pretext_knn_accuracy(r->knn_feat, r->knn_labels, r->knn_nb,
                                r->knn_feat + (size_t)r->knn_nb * F, r->knn_labels + r->knn_nb,
                                r->knn_nq, F, r->knn_C, r->knn_k, r->knn_t, r->knn_scratch);
    return SP_OK;
}

/* ------------------------------------------------------------ formatting */

static double ratio(const double *a, int num, int den) {
    return a[den] > 0 ? a[num] / a[den] : PT_NAN;
}

static void json_num(char *buf, size_t n, size_t *used, const char *key, double v) {
    if (*used >= n) return;
    if (isfinite(v))
        *used += (size_t)snprintf(buf + *used, n - *used, ",\"%s\":%.9g", key, v);
    else
        *used += (size_t)snprintf(buf + *used, n - *used, ",\"%s\":null", key);
}

static void line_num(char *buf, size_t n, size_t *used, const char *key, const char *fmt,
                     double v) {
    if (*used >= n || !isfinite(v)) return;
    *used += (size_t)snprintf(buf + *used, n - *used, " %s=", key);
    if (*used < n) *used += (size_t)snprintf(buf + *used, n - *used, fmt, v);
}

static void format_hms(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

/* ------------------------------------------------------------------ main */

static void run_free(RunCtx *r) {
    knn_free(r);
    pt_loader_free(&r->ld);
    pretrain_state_destroy(&r->st);
    if (r->have_norm) norm_free(&r->norm);
    dataset_close(&r->ds);
    for (int i = 0; i < r->npending; i++) free(r->pending[i].line);
    free(r->pending);
    free(r->config_text);
}

static SpStatus path_join(char *out, const char *dir, const char *name) {
    int k = snprintf(out, SP_PATH_MAX, "%s/%s", dir, name);
    if (k < 0 || k >= SP_PATH_MAX) SP_FAIL(SP_EUSAGE, "--out: path too long: '%s'", dir);
    return SP_OK;
}

static SpStatus run(RunCtx *r, const PretrainRunOpts *opts) {
    const SpConfig *cfg = r->cfg;
    SP_TRY(path_join(r->ckpt_path, r->run_dir, "checkpoint.h5"));
    SP_TRY(path_join(r->metrics_path, r->run_dir, "metrics.jsonl"));
    SP_TRY(path_join(r->config_path, r->run_dir, "config.cfg"));
    const int resume = opts->resume;
    if (!resume && (file_exists(r->ckpt_path) || file_exists(r->metrics_path)))
        SP_FAIL(SP_EUSAGE,
                "'%s' already holds a pretraining run (%s); use --resume to continue it, or "
                "another --out directory",
                r->run_dir, file_exists(r->ckpt_path) ? "checkpoint.h5" : "metrics.jsonl");
    if (resume && !file_exists(r->ckpt_path))
        SP_FAIL(SP_EUSAGE, "--resume: '%s' has no checkpoint.h5 to resume from", r->run_dir);

    r->epochs = sp_cfg_int(cfg, "train.epochs");
    r->batch = sp_cfg_int(cfg, "train.batch_size");
    r->drop_last = sp_cfg_bool(cfg, "train.drop_last");
    r->ckpt_every = sp_cfg_int(cfg, "train.checkpoint_every");
    r->knn_every = sp_cfg_int(cfg, "train.knn_every");
    r->log_every = sp_cfg_int(cfg, "train.log_every");
    r->seed = (uint64_t)sp_cfg_int(cfg, "train.seed");
    PretextOptions po;
    SP_TRY(pretext_options_from_config(cfg, &po));

    /* data */
    SpDataOptions dopt;
    data_options_default(&dopt);
    SP_TRY(data_options_from_config(cfg, &dopt));
    SP_TRY(dataset_open(&r->ds, r->data_path, &dopt));
    SpDataset *ds = r->ds;
    {
        char desc[512];
        dataset_describe(ds, desc, sizeof desc);
        sp_log(SP_LOG_INFO, "data: %s: %s", r->data_path, desc);
    }
    if (r->batch > ds->n)
        SP_FAIL(SP_ECONFIG, "train.batch_size = %lld exceeds the %lld spectra of '%s'",
                (long long)r->batch, (long long)ds->n, r->data_path);
    int ext_classes = 0;
    if (po.ext_coef > 0.0) {
        if (!ds->extvar) {
            sp_log(SP_LOG_INFO,
                   "external-variable head off: '%s' has no external variable (%s)",
                   r->data_path, dopt.extvar_path[0] ? dopt.extvar_path : "data.extvar_path = \"\"");
        } else {
            ext_classes = po.ext_classes > 0 ? po.ext_classes : ds->n_extvar;
            if (ds->n_extvar > ext_classes)
                SP_FAIL(SP_ECONFIG,
                        "pretext.rr.ext_classes = %d but '%s' has external-variable values up to "
                        "%d",
                        po.ext_classes, r->data_path, ds->n_extvar - 1);
            if (ext_classes < 2)
                sp_log(SP_LOG_WARN, "external variable of '%s' has a single class: its head "
                                    "learns nothing", r->data_path);
        }
    }

    /* state */
    {
        SpStatus src = pt_dist_state_create(&r->st, cfg, ds->L, (int)r->batch, ext_classes, ds->n);
        if (src == SP_EINPUT) sp_error_prefix("'%s': ", r->data_path);   /* e.g. too short */
        SP_TRY(src);
    }
    PretrainState *st = r->st;
    const int S = pt_dist_batch_multiple(st);   /* global (MPI: S/P per rank x P) */
    const char *arch = encoder_arch(pretrain_encoder_q(st));
    if (r->batch % S != 0)
        SP_FAIL(SP_ECONFIG,
                "train.batch_size = %lld is not a multiple of the encoder's BatchNorm splits "
                "(encoder.%s.bn_splits = %d): every batch must split evenly",
                (long long)r->batch, arch, S);

    r->config_text = sp_config_dump(cfg);
    if (!r->config_text) SP_FAIL(SP_ENOMEM, "out of memory (config text)");

    /* resume or fresh start */
    int64_t start_epoch = 0, start_batch = 0;
    double acc[ACC_COUNT];
    memset(acc, 0, sizeof acc);
    if (resume) {
        hid_t f = -1;
        SpCkptMeta meta;
        memset(&meta, 0, sizeof meta);
        SP_TRY(ckpt_open(r->ckpt_path, "pretrain", arch, &f, &meta));
        SpStatus rc = SP_OK;
        int64_t dn = 0, dL = 0;
        SP_TRY_GOTO(rc,
                    check_resume_config(cfg, meta.config_text ? meta.config_text : "",
                                        r->ckpt_path, meta.epoch),
                    rfail);
        SP_TRY_GOTO(rc, sp_h5_attr_read_int64(f, r->ckpt_path, "/", "data_n", &dn), rfail);
        SP_TRY_GOTO(rc, sp_h5_attr_read_int64(f, r->ckpt_path, "/", "data_L", &dL), rfail);
        if (dn != ds->n || dL != ds->L)
            SP_FAIL_GOTO(rc, rfail, SP_EINPUT,
                         "--resume: '%s' was trained on %lld spectra of L=%lld, '%s' has %lld of "
                         "L=%d",
                         r->ckpt_path, (long long)dn, (long long)dL, r->data_path,
                         (long long)ds->n, ds->L);
        SP_TRY_GOTO(rc, pretrain_state_load(st, f, r->ckpt_path), rfail);
        SP_TRY_GOTO(rc, norm_load(&r->norm, f, r->ckpt_path, SP_GROUP_NORM), rfail);
        r->have_norm = 1;
        SP_TRY_GOTO(rc,
                    sp_h5_attr_read_int64(f, r->ckpt_path, "/", "batch_in_epoch", &start_batch),
                    rfail);
        SP_TRY_GOTO(rc,
                    sp_h5_read_double(f, r->ckpt_path, "train_state/epoch_acc", acc, ACC_COUNT),
                    rfail);
        start_epoch = meta.epoch;
        r->gstep = meta.step;
        sp_log(SP_LOG_INFO, "resuming '%s': %lld epochs done%s, step %lld", r->ckpt_path,
               (long long)meta.epoch, start_batch > 0 ? " (plus part of the next)" : "",
               (long long)meta.step);
    rfail:
        ckpt_meta_free(&meta);
        sp_h5_close(f);
        if (rc != SP_OK) return rc;
    } else {
        SpNormKind kind;
        SP_TRY(norm_parse(sp_cfg_str(cfg, "data.normalise"), &kind));
        SP_TRY(pt_dist_norm_fit(&r->norm, kind, ds));
        r->have_norm = 1;
    }
    {
        SpStatus wrc = SP_OK;
        if (pt_dist_is_root()) {   /* MPI: rank 0 writes for the job */
            wrc = mkdir_p(r->run_dir);
            if (wrc == SP_OK) wrc = sp_config_write(cfg, r->config_path);
        }
        SP_TRY(pt_dist_agree(wrc));
    }

    /* loader and the batches each epoch actually uses */
    SP_TRY(pt_loader_create(&r->ld, ds, (int)r->batch, r->drop_last,
                            pt_derive_seed(r->seed, PT_SEED_LOADER), &r->norm));
    const int minB = S > 2 ? S : 2;
    const int64_t rows = pt_loader_num_rows(r->ld);
    int64_t nb_full = rows / r->batch, last = rows % r->batch;
    int64_t last_eff = last - last % S;
    int64_t nb_used = nb_full + (last_eff >= minB ? 1 : 0);
    int64_t rows_used = nb_full * r->batch + (last_eff >= minB ? last_eff : 0);
    if (rows_used < ds->n)
        sp_log(SP_LOG_INFO,
               "%lld of %lld spectra are left out of each epoch (a different random subset "
               "every epoch): %s",
               (long long)(ds->n - rows_used), (long long)ds->n,
               r->drop_last ? "train.drop_last is set"
                            : "the last batch is cut to a multiple of the BatchNorm splits");
    if (start_batch > nb_used)
        SP_FAIL(SP_EINPUT, "--resume: checkpoint is at step %lld of an epoch of %lld steps",
                (long long)start_batch, (long long)nb_used);

    SP_TRY(pt_dist_agree(pt_dist_is_root() ? knn_setup(r) : SP_OK));   /* MPI: rank 0 only */
    if (start_epoch == 0 && start_batch == 0) {
        double k0 = 0.0;
        SP_TRY(pt_dist_agree(r->knn_on ? knn_eval(r, &k0) : SP_OK));
        if (r->knn_on) sp_log(SP_LOG_INFO, "kNN accuracy of the initial (random) encoder: %.4f", k0);
    }

    /* banner */
    {
        size_t np = 0;
        for (int i = 0; i < pretrain_num_groups(st); i++)
            np += sp_params_count(pretrain_group(st, i, NULL));
        sp_log(SP_LOG_INFO,
               "pretrain: arch=%s params=%zu (f_q + projection + heads) batch=%lld steps/epoch=%lld "
               "epochs=%lld views=%d piece=%d ext_classes=%d queue=%d moco=%s inter=%s intra=%s "
               "ext=%s quirks=%s",
               arch, np, (long long)r->batch, (long long)nb_used, (long long)r->epochs, po.views,
               pretrain_piece_len(st), pretrain_ext_classes(st), po.queue,
               po.moco_coef > 0 ? "on" : "off", po.inter_coef > 0 ? "on" : "off",
               po.intra_coef > 0 ? "on" : "off", pretrain_ext_classes(st) > 0 ? "on" : "off",
               po.quirks ? "on" : "off");
        sp_log(SP_LOG_INFO,
               "model FLOPs per step of %lld spectra: %.3g (forward + backward); memory for "
               "activations, buffers and model: %.2f GB",
               (long long)r->batch, pretrain_step_flops(st, (int)r->batch),
               (double)pretrain_state_bytes(st) / 1e9);
    }

    SpSchedule sch;
    memset(&sch, 0, sizeof sch);
    sch.lr0 = sp_cfg_float(cfg, "optim.lr");
    sch.epochs = (int)r->epochs;
    sch.cosine = strcmp(sp_cfg_str(cfg, "optim.schedule"), "cosine") == 0;
    sch.decay_rate = sp_cfg_float(cfg, "optim.lr_decay_rate");
    sch.warmup_epochs = (int)sp_cfg_int(cfg, "optim.warmup_epochs");
    sch.warmup_from = sp_cfg_float(cfg, "optim.warmup_from");
    sch.reference_quirk = po.quirks;

    const double lnq1 = po.moco_coef > 0 ? log((double)po.queue + 1.0) : PT_NAN;
    const double dirs = po.symmetric ? 2.0 : 1.0;
    const int D = encoder_proj_out_dim(pretrain_proj_q(st));
    double moco_min = INFINITY;
    SpProgress pg;
    sp_progress_begin(&pg, "pretrain", (r->epochs - start_epoch) * nb_used - start_batch);
    int pg_open = 1;
    const double t_run = sp_time_now();
    double t_epochs = 0.0;
    int epochs_timed = 0;
    SpStatus rc = SP_OK;

    for (int64_t e = start_epoch; e < r->epochs; e++) {
        const double t_ep = sp_time_now();
        double t_steps = 0.0, rows_timed = 0.0, flops = 0.0;
        SP_TRY_GOTO(rc, pt_loader_start_epoch(r->ld, e), out);
        int64_t it = 0;
        SpBatch b;
        if (e == start_epoch && start_batch > 0) {
            for (; it < start_batch; it++) SP_TRY_GOTO(rc, pt_loader_next(r->ld, &b), out);
        } else {
            memset(acc, 0, sizeof acc);
        }
        for (; it < nb_used; it++) {
            SP_TRY_GOTO(rc, pt_loader_next(r->ld, &b), out);
            int Beff = b.n - b.n % S;
            PT_ASSERT(Beff >= minB, "batch %lld of %d rows in an epoch of %lld used steps",
                      (long long)it, b.n, (long long)nb_used);
            float lr = (float)sched_lr(&sch, (int)e, (int)it, (int)nb_used);
            PretrainStepStats ss;
            double t0 = sp_time_now();
            rc = pretrain_step(st, b.x, Beff, b.index, b.extvar, e, r->gstep, lr, &ss);
            if (rc != SP_OK) {
                /* the CLI prints the root message only: put the run context in it */
                char root[768];
                snprintf(root, sizeof root, "%s", sp_error_message());
                int64_t kept = -1;
                if (file_exists(r->ckpt_path)) {
                    hid_t f = -1;
                    if (sp_h5_open_read(r->ckpt_path, &f) == SP_OK) {
                        if (sp_h5_attr_read_int64(f, r->ckpt_path, "/", "epoch", &kept) != SP_OK)
                            kept = -1;
                        sp_h5_close(f);
                    }
                }
                char tail[SP_PATH_MAX + 128];
                if (kept >= 0)
                    snprintf(tail, sizeof tail, "'%s' keeps the last good state (%lld epochs)",
                             r->ckpt_path, (long long)kept);
                else
                    snprintf(tail, sizeof tail, "no checkpoint was written yet");
                rc = sp_error_set(rc, __FILE__, __LINE__, "in epoch %lld/%lld: %s\n%s",
                                  (long long)e + 1, (long long)r->epochs, root, tail);
                goto out;
            }
            t_steps += sp_time_now() - t0;
            rows_timed += Beff;
            flops += pretrain_step_flops(st, Beff);
            r->gstep++;
            const double w = Beff;
            acc[ACC_STEPS] += 1;
            acc[ACC_ROWS] += w;
            acc[ACC_LOSS] += w * ss.loss;
            acc[ACC_INTER] += w * ss.l_inter;
            acc[ACC_INTRA] += w * ss.l_intra;
            acc[ACC_EXT] += w * ss.l_ext;
            acc[ACC_MOCO] += w * ss.l_moco;
            acc[ACC_ZSTD] += w * ss.z_std;
            acc[ACC_N_INTER] += (double)ss.inter.n;
            acc[ACC_C_INTER] += (double)ss.inter.correct;
            acc[ACC_N_POS] += (double)ss.inter.n_pos;
            acc[ACC_C_POS] += (double)ss.inter.correct_pos;
            acc[ACC_N_NEG] += (double)ss.inter.n_neg;
            acc[ACC_C_NEG] += (double)ss.inter.correct_neg;
            acc[ACC_N_INTRA] += (double)ss.intra.n;
            acc[ACC_C_INTRA] += (double)ss.intra.correct;
            acc[ACC_N_EXT] += (double)ss.ext.n;
            acc[ACC_C_EXT] += (double)ss.ext.correct;
            acc[ACC_N_MOCO] += (double)ss.moco_n;
            acc[ACC_C_MOCO] += (double)ss.moco_correct;
            acc[ACC_LR] = lr;
            sp_progress_step(&pg, (e - start_epoch) * nb_used + it + 1 - start_batch,
                             "epoch %lld loss=%.4f", (long long)e + 1, ss.loss);
            if (r->log_every > 0 && r->gstep % r->log_every == 0)
                sp_progress_line(&pg, "epoch=%lld/%lld step=%lld loss=%.4f lr=%.4g",
                                 (long long)e + 1, (long long)r->epochs, (long long)r->gstep,
                                 ss.loss, (double)lr);
            if (opts->on_step) opts->on_step(opts->user, e, r->gstep);
            int sig = pt_dist_signal(sp_signal_requested());   /* MPI: any rank's */
            if (sig) {
                SP_TRY_GOTO(rc, pending_flush(r), out);
                SP_TRY_GOTO(rc, write_checkpoint(r, e, it + 1, acc), out);
                rc = sp_error_set(SP_EINTERRUPT, __FILE__, __LINE__,
                                  "interrupted by signal %d at epoch %lld step %lld; checkpoint "
                                  "written to '%s'\nhint: resume with: specssl pretrain -c %s "
                                  "--data %s --out %s --resume",
                                  sig, (long long)e + 1, (long long)r->gstep, r->ckpt_path,
                                  r->config_path, r->data_path, r->run_dir);
                goto out;
            }
        }

        /* epoch summary */
        const double ep_s = sp_time_now() - t_ep;   /* steps and data, before the monitor */
        t_epochs += ep_s;
        epochs_timed++;
        const int64_t done = e + 1;
        double knn = PT_NAN;
        SP_TRY_GOTO(rc,
                    pt_dist_agree(r->knn_on && (done % r->knn_every == 0 || done == r->epochs)
                                      ? knn_eval(r, &knn)
                                      : SP_OK),
                    out);
        const double rows_ep = acc[ACC_ROWS];
        const double l_moco = po.moco_coef > 0 ? acc[ACC_MOCO] / rows_ep : PT_NAN;
        if (l_moco / dirs < moco_min) moco_min = l_moco / dirs;
        const double l_inter = po.inter_coef > 0 ? acc[ACC_INTER] / rows_ep : PT_NAN;
        const double l_intra = po.intra_coef > 0 ? acc[ACC_INTRA] / rows_ep : PT_NAN;
        const double l_ext = pretrain_ext_classes(st) > 0 ? acc[ACC_EXT] / rows_ep : PT_NAN;
        const double sps = ep_s > 0 && rows_timed > 0 ? rows_timed / ep_s : PT_NAN;
        const double gfs = t_steps > 0 ? flops / t_steps * 1e-9 : PT_NAN;
        const double wall = sp_time_now() - t_run;
        const double eta = (double)(r->epochs - done) * (t_epochs / epochs_timed);
        char hms[32], etas[32];
        format_hms(hms, sizeof hms, wall);
        format_hms(etas, sizeof etas, eta);

        char line[1024];
        size_t u = (size_t)snprintf(line, sizeof line, "epoch=%lld/%lld step=%lld",
                                    (long long)done, (long long)r->epochs, (long long)r->gstep);
        line_num(line, sizeof line, &u, "loss", "%.4f", acc[ACC_LOSS] / rows_ep);
        line_num(line, sizeof line, &u, "L_inter", "%.4f", l_inter);
        line_num(line, sizeof line, &u, "L_intra", "%.4f", l_intra);
        line_num(line, sizeof line, &u, "L_ext", "%.4f", l_ext);
        line_num(line, sizeof line, &u, "L_moco", "%.4f", l_moco);
        line_num(line, sizeof line, &u, "lnQ1", "%.4f", lnq1);
        line_num(line, sizeof line, &u, "acc_inter", "%.3f", ratio(acc, ACC_C_INTER, ACC_N_INTER));
        line_num(line, sizeof line, &u, "acc+", "%.3f", ratio(acc, ACC_C_POS, ACC_N_POS));
        line_num(line, sizeof line, &u, "acc-", "%.3f", ratio(acc, ACC_C_NEG, ACC_N_NEG));
        line_num(line, sizeof line, &u, "acc_intra", "%.3f", ratio(acc, ACC_C_INTRA, ACC_N_INTRA));
        line_num(line, sizeof line, &u, "acc_ext", "%.3f", ratio(acc, ACC_C_EXT, ACC_N_EXT));
        line_num(line, sizeof line, &u, "acc_moco", "%.3f", ratio(acc, ACC_C_MOCO, ACC_N_MOCO));
        line_num(line, sizeof line, &u, "z_std", "%.4f", acc[ACC_ZSTD] / rows_ep);
        line_num(line, sizeof line, &u, "knn", "%.3f", knn);
        line_num(line, sizeof line, &u, "lr", "%.4g", acc[ACC_LR]);
        line_num(line, sizeof line, &u, "spectra_s", "%.0f", sps);
        line_num(line, sizeof line, &u, "gflops", "%.2f", gfs);
        if (u < sizeof line)
            snprintf(line + u, sizeof line - u, " eta=%s wall=%s", etas, hms);
        sp_progress_line(&pg, "%s", line);

        char js[2048];
        size_t ju = (size_t)snprintf(js, sizeof js, "{\"epoch\":%lld,\"epochs\":%lld,\"step\":%lld",
                                     (long long)done, (long long)r->epochs, (long long)r->gstep);
        json_num(js, sizeof js, &ju, "steps", acc[ACC_STEPS]);
        json_num(js, sizeof js, &ju, "spectra", rows_ep);
        json_num(js, sizeof js, &ju, "lr", acc[ACC_LR]);
        json_num(js, sizeof js, &ju, "loss", acc[ACC_LOSS] / rows_ep);
        json_num(js, sizeof js, &ju, "L_inter", l_inter);
        json_num(js, sizeof js, &ju, "L_intra", l_intra);
        json_num(js, sizeof js, &ju, "L_ext", l_ext);
        json_num(js, sizeof js, &ju, "L_moco", l_moco);
        json_num(js, sizeof js, &ju, "lnQ1", lnq1);
        json_num(js, sizeof js, &ju, "acc_inter", ratio(acc, ACC_C_INTER, ACC_N_INTER));
        json_num(js, sizeof js, &ju, "acc_pos", ratio(acc, ACC_C_POS, ACC_N_POS));
        json_num(js, sizeof js, &ju, "acc_neg", ratio(acc, ACC_C_NEG, ACC_N_NEG));
        json_num(js, sizeof js, &ju, "acc_intra", ratio(acc, ACC_C_INTRA, ACC_N_INTRA));
        json_num(js, sizeof js, &ju, "acc_ext", ratio(acc, ACC_C_EXT, ACC_N_EXT));
        json_num(js, sizeof js, &ju, "acc_moco", ratio(acc, ACC_C_MOCO, ACC_N_MOCO));
        json_num(js, sizeof js, &ju, "z_std", acc[ACC_ZSTD] / rows_ep);
        json_num(js, sizeof js, &ju, "z_std_healthy", 1.0 / sqrt((double)D));
        json_num(js, sizeof js, &ju, "knn_acc", knn);
        json_num(js, sizeof js, &ju, "spectra_s", sps);
        json_num(js, sizeof js, &ju, "gflops", gfs);
        json_num(js, sizeof js, &ju, "epoch_s", ep_s);
        json_num(js, sizeof js, &ju, "wall_s", wall);
        if (ju + 2 < sizeof js) snprintf(js + ju, sizeof js - ju, "}");
        SP_TRY_GOTO(rc, pending_add(r, js), out);

        const int stop = opts->stop_after_epoch > 0 && done >= opts->stop_after_epoch;
        if (done % r->ckpt_every == 0 || done == r->epochs || stop) {
            memset(acc, 0, sizeof acc);
            /* lines first: a kill after the flush repeats epochs (readers
             * keep the last line per epoch); the other order could lose them */
            SP_TRY_GOTO(rc, pending_flush(r), out);
            SP_TRY_GOTO(rc, write_checkpoint(r, done, 0, acc), out);
        }
        if (stop) break;
    }
    sp_progress_end(&pg);
    pg_open = 0;
    if (po.moco_coef > 0 && isfinite(moco_min) && moco_min >= lnq1)
        sp_log(SP_LOG_WARN,
               "L_moco per direction never dropped below ln(Q+1) = %.4f (chance level) in this "
               "run: MoCo is not learning (check the augmentations, lr, temperature)",
               lnq1);
out:
    if (pg_open) sp_progress_end(&pg);
    return rc;
}

SpStatus pretrain_run(const SpConfig *cfg, const char *data_path, const char *run_dir,
                      const PretrainRunOpts *opts) {
    PretrainRunOpts def;
    memset(&def, 0, sizeof def);
    if (!opts) opts = &def;
    RunCtx r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.data_path = data_path;
    r.run_dir = run_dir;
    SpStatus rc = pt_dist_agree(run(&r, opts));   /* MPI: every rank returns the same status */
    run_free(&r);
    return rc;
}
