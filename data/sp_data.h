/* sp_data.h - datasets (HDF5 in, HDF5 out), normalisation, labelled splits,
 * batch streaming and the synthetic generators.
 *
 * Index spaces. A dataset's rows are numbered 0..n-1 ("dataset indices").
 * They equal the rows of the file unless rows with NaN/Inf were dropped
 * (data.nonfinite = "drop"); dataset_file_row() maps back. Loaders, splits,
 * normalisation fits and writers all speak dataset indices.
 *
 * Memory. A dataset is either held in memory (float32 [n, L]) or streamed:
 * rows are read by hyperslab from the open HDF5 dataset, never one point at a
 * time. data.load = "auto" keeps it in memory when n*L*4 bytes fit in
 * data.max_memory_mb.
 *
 * Errors. Every refusal is SP_EINPUT or SP_EFORMAT (CLI exit 2) with a message
 * naming the file and the dataset.
 */
#ifndef SP_DATA_H
#define SP_DATA_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_error.h"
#include "sp_h5.h"
#include "sp_rng.h"

/* ================================================================ options */

typedef enum { SP_LOAD_AUTO = 0, SP_LOAD_MEMORY, SP_LOAD_STREAM } SpLoadMode;
typedef enum { SP_NONFINITE_ERROR = 0, SP_NONFINITE_DROP } SpNonfinite;

#define SP_DATA_NAME_MAX 256

/* Default dataset paths; a missing dataset at its default path simply means
 * "absent" (no labels, no extvar, no axis). A missing dataset at a path the
 * user changed is an error. An empty string disables the dataset. */
#define SP_DATA_DEFAULT_SPECTRA "/spectra"
#define SP_DATA_DEFAULT_LABELS "/labels"
#define SP_DATA_DEFAULT_EXTVAR "/extvar"
#define SP_DATA_DEFAULT_AXIS "/axis"

/* Without class_names (or a class count fixed by the caller) the number of
 * classes is inferred as max label + 1, and of extvar bins as max extvar + 1;
 * a value at or above this limit is refused as out of range (a stray
 * 1000000000 would otherwise size per-class arrays by it). */
#define SP_DATA_MAX_CLASSES 65536

typedef struct {
    char spectra_path[SP_DATA_NAME_MAX]; /* data.spectra_path */
    char labels_path[SP_DATA_NAME_MAX];  /* data.labels_path ("" = ignore) */
    char extvar_path[SP_DATA_NAME_MAX];  /* data.extvar_path ("" = ignore) */
    char axis_path[SP_DATA_NAME_MAX];    /* data.axis_path ("" = ignore) */
    SpLoadMode load;                     /* data.load */
    double max_memory_mb;                /* data.max_memory_mb (auto threshold) */
    int block_rows;                      /* data.block_rows: streaming block (rows) */
    int shuffle_window;                  /* data.shuffle_window: blocks shuffled together */
    SpNonfinite nonfinite;               /* data.nonfinite */
    /* Set by the caller, not by config: */
    int min_length;      /* refuse L < min_length (the encoder's minimum); 0: no check */
    int num_classes;     /* > 0: labels must be < num_classes; 0: inferred */
    int require_labels;  /* refuse a file without labels */
} SpDataOptions;

void data_options_default(SpDataOptions *o);
/* Register the data.* keys (idempotent). */
void data_config_register(void);
/* Fill o from a loaded config (keys registered by data_config_register);
 * min_length/num_classes/require_labels keep their current values. */
SpStatus data_options_from_config(const SpConfig *c, SpDataOptions *o);

/* ================================================================ dataset */

typedef struct {
    char path[SP_PATH_MAX];
    char spectra_path[SP_DATA_NAME_MAX];
    char labels_path[SP_DATA_NAME_MAX];   /* "" when the file has none */
    char extvar_path[SP_DATA_NAME_MAX];
    int64_t n;          /* rows (after dropping non-finite rows) */
    int64_t n_file;     /* rows in the file */
    int L;              /* points per spectrum */
    int in_memory;      /* 1: x holds all rows; 0: streamed from the file */
    float *x;           /* [n, L] or NULL when streaming */
    int32_t *labels;    /* [n] (-1 = unlabelled) or NULL */
    int32_t *extvar;    /* [n] (>= 0) or NULL */
    double *axis;       /* [L] or NULL */
    int n_classes;      /* fixed by the caller, else class_names count, else max label + 1 (0: none) */
    int n_extvar;       /* max extvar + 1 (0: none) */
    char **class_names; /* [n_class_names] or NULL */
    int n_class_names;
    int64_t *file_row;  /* [n] file row of each index, NULL when no row was dropped */
    int64_t n_dropped;
    char *generator;    /* root attribute "generator" or NULL */
    /* streaming state */
    hid_t file, dset;
    int block_rows, shuffle_window;
} SpDataset;

/* Open and validate a dataset file (see the module comment). */
SpStatus dataset_open(SpDataset **out, const char *path, const SpDataOptions *opt);
void dataset_close(SpDataset **ds);
/* Rows [i0, i0+n) in dataset indices into out [n, L] (from memory or by
 * hyperslab reads of contiguous file runs). */
SpStatus dataset_read_rows(SpDataset *ds, int64_t i0, int64_t n, float *out);
/* Row i in the file (== i unless rows were dropped). */
int64_t dataset_file_row(const SpDataset *ds, int64_t i);
/* Number of labelled rows (label >= 0) and per-class counts (counts[n_classes], may be NULL). */
int64_t dataset_count_labelled(const SpDataset *ds, int64_t *counts);
/* "N=872 L=4020 float32(in memory) labels=3 classes extvar=5 bins" for logs. */
void dataset_describe(const SpDataset *ds, char *buf, size_t n);

/* ========================================================== normalisation */

typedef enum {
    SP_NORM_NONE = 0,
    SP_NORM_MAX,           /* per spectrum: x / max(x) (Schuetzke); unchanged if max <= 0 */
    SP_NORM_MINMAX,        /* per spectrum to [0, 1]: (x - min) / (max - min); 0 if constant */
    SP_NORM_GLOBAL_MINMAX, /* 2 (x - min) / (max - min) - 1 with min/max of the training set */
    SP_NORM_STANDARDISE    /* per point: (x - mean_j) / std_j, training statistics (std 0 -> 1) */
} SpNormKind;

typedef struct {
    SpNormKind kind;
    int L;
    double gmin, gmax;  /* global_minmax */
    double *mean, *std; /* standardise: [L] (population std) */
    int64_t count;      /* rows the statistics came from */
} SpNorm;

SpStatus norm_parse(const char *name, SpNormKind *out);   /* SP_ECONFIG on unknown */
const char *norm_name(SpNormKind k);
/* Fit on dataset rows idx[0..n) (idx NULL: all rows), one streaming pass.
 * Per-spectrum kinds need no statistics (count is still recorded). */
SpStatus norm_fit(SpNorm *nm, SpNormKind kind, SpDataset *ds, const int64_t *idx, int64_t n);
/* In place on rows [n, L]; computed in double, stored as float. */
void norm_apply(const SpNorm *nm, float *x, int64_t n, int L);
/* Save/load as a group (attributes kind, L, gmin, gmax, count; datasets mean, std). */
SpStatus norm_save(const SpNorm *nm, hid_t loc, const char *group);
SpStatus norm_load(SpNorm *nm, hid_t loc, const char *file, const char *group);
void norm_free(SpNorm *nm);

/* ================================================================= splits */

typedef struct {
    int per_class;       /* > 0: k labelled rows per class */
    double fraction;     /* else: this fraction of each class (at least 1 row per class) */
    int val_per_class;   /* > 0: validation rows per class */
    double val_fraction; /* else: this fraction of each class (0: no validation part) */
    uint64_t seed;
} SpSplitSpec;

typedef struct {
    int64_t *train, n_train; /* sorted dataset indices */
    int64_t *val, n_val;     /* sorted, disjoint from train */
    int n_classes;
    int n_short;             /* classes that had fewer rows than requested */
    SpSplitSpec spec;
} SpSplit;

/* Stratified by class. Per class: the labelled rows are shuffled with a stream
 * keyed by (seed, class); validation takes the first v, train the next k, so
 * the validation part does not depend on k and larger k contain smaller k.
 * A class with fewer than k + v rows gives train min(k, count) and validation
 * the rest; this is logged as a warning. Unlabelled rows (-1) are never used. */
SpStatus split_make(SpSplit *s, const int32_t *labels, int64_t n, int n_classes,
                    const SpSplitSpec *spec);
/* Datasets <group>/train_indices, <group>/val_indices (int64) + spec attributes. */
SpStatus split_save(const SpSplit *s, hid_t loc, const char *group);
SpStatus split_load(SpSplit *s, hid_t loc, const char *file, const char *group);
void split_free(SpSplit *s);

/* ================================================================= loader */

typedef struct {
    int n;              /* rows in this batch (0: epoch finished) */
    int L;
    float *x;           /* [n, L], normalised when the loader has a norm */
    int64_t *index;     /* [n] dataset indices */
    int32_t *labels;    /* [n] or NULL */
    int32_t *extvar;    /* [n] or NULL */
} SpBatch;

typedef struct SpLoader SpLoader;

/* Iterate over dataset rows idx[0..n_idx) (idx NULL: all rows) in batches of
 * `batch`. shuffle = 1: every epoch a permutation from (seed, epoch): in
 * memory a shuffle of the indices, streaming a shuffle of the blocks of
 * data.block_rows consecutive rows and of the rows within each window of
 * data.shuffle_window blocks. shuffle = 0: rows in index order (sequential
 * reader for embedding/prediction). The last batch is smaller unless
 * drop_last. All buffers are allocated here, once. norm may be NULL; it is
 * borrowed, not copied. */
SpStatus loader_create(SpLoader **out, SpDataset *ds, const int64_t *idx, int64_t n_idx,
                       int batch, int shuffle, int drop_last, uint64_t seed, const SpNorm *norm);
void loader_free(SpLoader **l);
/* Start epoch e (any order; the permutation depends only on seed and e). */
SpStatus loader_start_epoch(SpLoader *l, int64_t epoch);
/* Next batch; b->n == 0 at the end of the epoch. The batch's buffers belong
 * to the loader and stay valid until the next call. */
SpStatus loader_next(SpLoader *l, SpBatch *b);
int64_t loader_num_batches(const SpLoader *l);
int64_t loader_num_rows(const SpLoader *l);   /* rows per epoch (after drop_last) */

/* ================================================================ writers */

/* Streaming dataset writer: /spectra float32 [N, L] (chunked, shuffle +
 * deflate), /labels int32, /extvar int32, /axis float64, root attributes
 * class_names (array of strings) and generator. Atomic: nothing appears
 * under the final name before dataset_writer_commit. */
typedef struct {
    SpH5Writer h5;
    hid_t rows;
    char rows_name[64];
    int64_t n, ncols;
    int32_t *ints[2];      /* labels/extvar (dataset), labels/predictions (pred) */
    char int_names[2][64];
    int has_int[2];
    int64_t int_cap;
    hid_t rows2;           /* second float dataset (probabilities) */
    int64_t ncols2;
    int open;
} SpRowWriter;

SpStatus dataset_writer_open(SpRowWriter *w, const char *path, int L, int with_labels,
                             int with_extvar);
/* Append n rows; labels/extvar may be NULL when the writer was opened without them. */
SpStatus dataset_writer_append(SpRowWriter *w, const float *x, int64_t n,
                               const int32_t *labels, const int32_t *extvar);
/* hid of the open temporary file, for extra datasets/attributes. */
hid_t row_writer_file(const SpRowWriter *w);
SpStatus row_writer_set_axis(SpRowWriter *w, const double *axis, int64_t L);
SpStatus row_writer_set_class_names(SpRowWriter *w, const char *const *names, int n);
SpStatus row_writer_set_generator(SpRowWriter *w, const char *generator);
SpStatus row_writer_commit(SpRowWriter *w);
void row_writer_abort(SpRowWriter *w);

/* Embeddings: /embeddings float32 [N, D] (+ /labels when with_labels). */
SpStatus embed_writer_open(SpRowWriter *w, const char *path, int D, int with_labels);
SpStatus embed_writer_append(SpRowWriter *w, const float *emb, int64_t n, const int32_t *labels);
/* Predictions: /predictions int32 [N], /probabilities float32 [N, C] (+ /labels). */
SpStatus pred_writer_open(SpRowWriter *w, const char *path, int C, int with_labels);
SpStatus pred_writer_append(SpRowWriter *w, const int32_t *pred, const float *prob, int64_t n,
                            const int32_t *labels);

/* One-shot dataset file (uses the streaming writer). Optional arrays may be NULL. */
typedef struct {
    const float *x;
    int64_t n;
    int L;
    const int32_t *labels;
    const int32_t *extvar;
    const double *axis;
    const char *const *class_names;
    int n_class_names;
    const char *generator;
} SpDatasetOut;
SpStatus dataset_write(const char *path, const SpDatasetOut *d);

/* class_names attribute helpers (array of variable-length UTF-8 strings on
 * the root group; reading also accepts fixed-length strings). */
SpStatus data_write_class_names(hid_t f, const char *const *names, int n);
SpStatus data_read_class_names(hid_t f, const char *file, char ***names, int *n);
void data_free_names(char **names, int n);

/* ============================================== synthetic generators */

/* Schuetzke et al. 2023 benchmark (reference/synthetic.md Part A). */
#define SP_SYNTH_L 5000
#define SP_SYNTH_MAXPK 10

typedef enum { SP_SYNTH_GENERAL = 0, SP_SYNTH_CHALLENGE } SpSynthSet;
typedef enum { SP_SPLIT_TRAIN = 0, SP_SPLIT_VAL, SP_SPLIT_TEST } SpSynthSplit;
typedef enum { SP_EXP_SVML = 0, SP_EXP_LIBM } SpSynthExp;

typedef struct {
    int npk;
    const int *pos;
    const double *h;
} SpSynthClass;

/* The embedded class configs (data/schuetzke_config.c, generated from the
 * upstream JSON by scripts/gen_schuetzke_config.py). */
int synth_num_classes(SpSynthSet set);
SpSynthClass synth_class(SpSynthSet set, int c);

typedef struct {
    int label;
    int npk;
    int pos[SP_SYNTH_MAXPK];
    double h[SP_SYNTH_MAXPK];
    double sigma;
} SpSynthRow;

/* Rows per class of a split: 50/10/9 (general), 50/10/6 (challenge). */
int synth_rows_per_class(SpSynthSet set, SpSynthSplit split);
/* Parameters of all train and val rows, drawn from a fresh default_rng(2022)
 * in generation order. train [classes*50] (row c*50+j), val [classes*10].
 * rng (may be NULL) receives the generator state after the last draw. */
SpStatus synth_train_val_params(SpSynthSet set, SpSynthRow *train, SpSynthRow *val, SpRng *rng);
/* Parameters of the deterministic test rows [classes * 9 or 6]. */
void synth_test_params(SpSynthSet set, SpSynthRow *test);
/* The raw row (float64 [5000]): assignment of the peaks, then scipy's
 * gaussian_filter1d (truncate 4, mode constant) with numpy's pairwise kernel
 * sum. exp_mode SVML uses numpy's SVML exp values for sigma == 2 (bit-exact
 * test rows); every other sigma uses the C library's exp. */
void synth_blur_row(const SpSynthRow *r, SpSynthExp exp_mode, double *out);
/* numpy's pairwise sum of a float64 vector (DOUBLE_pairwise_sum). */
double synth_pairwise_sum(const double *a, int64_t n);

/* The parameters of every row of a split, in row order (malloc'ed, free()). */
SpStatus synth_schuetzke_params(SpSynthSet set, SpSynthSplit split, SpSynthRow **rows, int64_t *n);
/* Blur rows[0..n) into float32 x [n, 5000] (see below); parallel over rows. */
SpStatus synth_schuetzke_render(const SpSynthRow *rows, int64_t n, SpSynthExp exp_mode, int max_norm,
                                float *x, int32_t *labels);
/* Generate a split into float32 rows x [rows, 5000]: raw (max_norm = 0) or
 * divided by the row maximum in double, then cast (max_norm = 1, as the
 * upstream training script). labels [rows]. Parallel over rows. */
SpStatus synth_schuetzke_generate(SpSynthSet set, SpSynthSplit split, SpSynthExp exp_mode,
                                  int max_norm, float *x, int32_t *labels);

/* Beamtime-like compression ramps (reference/synthetic.md Part B). */
typedef struct {
    uint64_t seed;          /* 2024 */
    int ramps, first_ramp;  /* 2, 0 */
    int frames_slow;        /* 654 */
    int frames_fast;        /* 218 */
    int L;                  /* 4020 */
    int poisson;            /* 0: gauss noise model, 1: poisson */
    int intensity_scaling;  /* 1: A ~ U(0.8, 1.2); 0: A = 1 (draw still made) */
} SpRampOptions;

void synth_ramp_default(SpRampOptions *o);
int64_t synth_ramp_total_frames(const SpRampOptions *o);

/* Everything per frame; arrays [N] except x [N, L], fractions [N, 3]. */
typedef struct {
    int64_t n;
    int L;
    float *x;
    int32_t *labels, *extvar, *ramp, *frame, *fast;
    double *t, *p;
    float *fractions;
    double *axis;   /* [L] 2theta in degrees */
} SpRampData;

/* Per-ramp parameters (exposed for tests and the generator attribute). */
typedef struct {
    int fast, n_frames;
    double gamma, pi1, pi2, w1, w2, gamma0, eta, c[4], delta;
    double tau[28];
} SpRampParams;

SpStatus synth_ramp_generate(const SpRampOptions *o, SpRampData *d);
void synth_ramp_free(SpRampData *d);
/* Seed ramp r's stream (splitmix64 of seed -> initstate, initseq = r). */
void synth_ramp_seed(SpRng *rng, uint64_t seed, int r);
/* Draw ramp r's per-ramp parameters from a freshly seeded stream. */
void synth_ramp_params(SpRng *rng, int r, const SpRampOptions *o, SpRampParams *p);
/* Phase fractions at pressure proxy p. */
void synth_ramp_fractions(const SpRampParams *rp, double p, double f[3]);
/* 2theta (degrees) of peak k (0..27) of the phase tables at pressure p; < 0 if skipped. */
double synth_ramp_peak_2theta(int k, double p);

#endif
