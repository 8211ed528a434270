/* torch_import.c - flat PyTorch exports (.f32.bin + manifest.tsv) and the
 * import of the published SpecRRMoco checkpoint (reference §13).
 *
 * The .bin holds little-endian float32 values (this code assumes a
 * little-endian host, as every platform specssl targets); int64 tensors
 * (queue_ptr, num_batches_tracked) were converted to float by the exporter.
 * Serial; allocates (read once at start-up).
 */
#define _XOPEN_SOURCE 700   /* realpath */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc_arch.h"
#include "sp_checkpoint.h"
#include "sp_log.h"

/* ------------------------------------------------------------ manifest */
static int parse_shape(const char *s, int *ndim, int64_t *shape) {
    if (strcmp(s, "scalar") == 0) {
        *ndim = 0;
        return 1;
    }
    int n = 0;
    const char *c = s;
    while (*c) {
        if (n == SP_PARAM_MAX_DIMS) return 0;
        char *end;
        errno = 0;
        long long v = strtoll(c, &end, 10);
        if (end == c || errno || v < 0) return 0;
        shape[n++] = v;
        if (*end == 'x') c = end + 1;
        else if (*end == '\0') c = end;
        else return 0;
        if (*end == 'x' && *c == '\0') return 0;
    }
    *ndim = n;
    return n > 0;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    if (ndim == 0) {
        snprintf(buf, n, "scalar");
        return;
    }
    size_t k = 0;
    buf[0] = '\0';
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? "x%" PRId64 : "%" PRId64, shape[d]);
}

static int parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno || s[0] == '-') return 0;
    *out = (size_t)v;
    return 1;
}

void encoder_torch_free(SpTorchFlat *t) {
    free(t->t);
    free(t->data);
    memset(t, 0, sizeof *t);
}

static int cmp_offset(const void *a, const void *b) {
    const SpTorchTensor *x = *(const SpTorchTensor *const *)a, *y = *(const SpTorchTensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

SpStatus encoder_torch_read(SpTorchFlat *t, const char *bin_path, const char *manifest_path) {
    memset(t, 0, sizeof *t);
    snprintf(t->bin_path, sizeof t->bin_path, "%s", bin_path);
    snprintf(t->manifest_path, sizeof t->manifest_path, "%s", manifest_path);
    SpStatus rc = SP_OK;
    FILE *fm = NULL, *fb = NULL;
    SpTorchTensor **order = NULL;
    char line[4096];

    fm = fopen(manifest_path, "r");
    if (!fm) SP_FAIL_GOTO(rc, fail, SP_EINPUT, "'%s': cannot open manifest: %s", manifest_path,
                          strerror(errno));
    int cap = 0, lineno = 0;
    while (fgets(line, sizeof line, fm)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n')
            SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s':%d: line too long", manifest_path, lineno);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        char *col[6] = {0};
        int nc = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, "\t", &save); tok && nc < 6;
             tok = strtok_r(NULL, "\t", &save))
            col[nc++] = tok;
        if (nc != 5)
            SP_FAIL_GOTO(rc, fail, SP_EFORMAT,
                         "'%s':%d: expected 5 tab-separated columns (name, dtype, shape, offset, "
                         "count), found %d", manifest_path, lineno, nc);
        if (t->n == cap) {
            cap = cap ? 2 * cap : 64;
            SpTorchTensor *nt = realloc(t->t, (size_t)cap * sizeof *nt);
            if (!nt) SP_FAIL_GOTO(rc, fail, SP_ENOMEM, "out of memory reading '%s'", manifest_path);
            t->t = nt;
        }
        SpTorchTensor *e = &t->t[t->n];
        memset(e, 0, sizeof *e);
        if (strlen(col[0]) >= sizeof e->name || strlen(col[1]) >= sizeof e->dtype)
            SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s':%d: name or dtype too long", manifest_path,
                         lineno);
        strcpy(e->name, col[0]);
        strcpy(e->dtype, col[1]);
        if (!parse_shape(col[2], &e->ndim, e->shape))
            SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s':%d: tensor '%s': bad shape '%s'",
                         manifest_path, lineno, e->name, col[2]);
        if (!parse_size(col[3], &e->offset) || !parse_size(col[4], &e->count))
            SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s':%d: tensor '%s': bad offset/count '%s' '%s'",
                         manifest_path, lineno, e->name, col[3], col[4]);
        size_t prod = 1;
        for (int d = 0; d < e->ndim; d++) prod *= (size_t)e->shape[d];
        if (prod != e->count)
            SP_FAIL_GOTO(rc, fail, SP_EFORMAT,
                         "'%s':%d: tensor '%s': shape %s has %zu elements but count is %zu",
                         manifest_path, lineno, e->name, col[2], prod, e->count);
        for (int i = 0; i < t->n; i++)
            if (strcmp(t->t[i].name, e->name) == 0)
                SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s':%d: tensor '%s' listed twice",
                             manifest_path, lineno, e->name);
        t->n++;
    }
    if (ferror(fm))
        SP_FAIL_GOTO(rc, fail, SP_EIO, "'%s': read error", manifest_path);
    fclose(fm);
    fm = NULL;
    if (t->n == 0) SP_FAIL_GOTO(rc, fail, SP_EFORMAT, "'%s': no tensors listed", manifest_path);

    /* Tensors must not overlap; gaps are allowed here (a tensor dropped from
     * the manifest is then reported by name by whoever needs it). */
    order = malloc((size_t)t->n * sizeof *order);
    if (!order) SP_FAIL_GOTO(rc, fail, SP_ENOMEM, "out of memory");
    for (int i = 0; i < t->n; i++) order[i] = &t->t[i];
    qsort(order, (size_t)t->n, sizeof *order, cmp_offset);
    size_t end = 0;
    for (int i = 0; i < t->n; i++) {
        if (i > 0 && order[i]->offset < order[i - 1]->offset + order[i - 1]->count)
            SP_FAIL_GOTO(rc, fail, SP_EFORMAT,
                         "'%s': tensor '%s' (floats %zu..%zu) overlaps tensor '%s'",
                         manifest_path, order[i]->name, order[i]->offset,
                         order[i]->offset + order[i]->count, order[i - 1]->name);
        end = order[i]->offset + order[i]->count;
    }

    fb = fopen(bin_path, "rb");
    if (!fb) SP_FAIL_GOTO(rc, fail, SP_EINPUT, "'%s': cannot open: %s", bin_path, strerror(errno));
    if (fseek(fb, 0, SEEK_END) != 0) SP_FAIL_GOTO(rc, fail, SP_EIO, "'%s': cannot seek", bin_path);
    long sz = ftell(fb);
    if (sz < 0 || fseek(fb, 0, SEEK_SET) != 0)
        SP_FAIL_GOTO(rc, fail, SP_EIO, "'%s': cannot determine the size", bin_path);
    if (sz % (long)sizeof(float) != 0)
        SP_FAIL_GOTO(rc, fail, SP_EINPUT, "'%s': %ld bytes is not a whole number of float32 "
                     "values (truncated?)", bin_path, sz);
    size_t expect = (size_t)sz / sizeof(float);
    if (expect < end) {
        int k = 0;
        while (k < t->n && order[k]->offset + order[k]->count <= expect) k++;
        SP_FAIL_GOTO(rc, fail, SP_EINPUT,
                     "'%s': truncated: %zu floats, but tensor '%s' of manifest '%s' occupies "
                     "floats %zu..%zu", bin_path, expect, order[k]->name, manifest_path,
                     order[k]->offset, order[k]->offset + order[k]->count);
    }
    if (expect > end)
        sp_log(SP_LOG_WARN, "'%s': %zu floats after the last tensor of '%s' are not described",
               bin_path, expect - end, manifest_path);
    t->total = expect;
    t->data = malloc(expect * sizeof(float) + 1);
    if (!t->data) SP_FAIL_GOTO(rc, fail, SP_ENOMEM, "out of memory reading '%s'", bin_path);
    if (fread(t->data, sizeof(float), expect, fb) != expect)
        SP_FAIL_GOTO(rc, fail, SP_EIO, "'%s': short read (%s)", bin_path,
                     ferror(fb) ? strerror(errno) : "unexpected end of file");
    fclose(fb);
    fb = NULL;
    free(order);
    return SP_OK;
fail:
    if (fm) fclose(fm);
    if (fb) fclose(fb);
    free(order);
    free(t->t);
    free(t->data);
    t->t = NULL;
    t->data = NULL;
    t->n = 0;
    return rc;
}

const SpTorchTensor *encoder_torch_find(const SpTorchFlat *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->t[i].name, name) == 0) return &t->t[i];
    return NULL;
}

static SpTorchTensor *find_mut(SpTorchFlat *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->t[i].name, name) == 0) return &t->t[i];
    return NULL;
}

/* Same shape? A 1-element [1] tensor and a scalar are not interchangeable:
 * specssl keeps the PyTorch shapes. */
static int same_shape(const SpTorchTensor *m, const SpTensorInfo *ti) {
    if (m->ndim != ti->ndim) return 0;
    for (int d = 0; d < m->ndim; d++)
        if (m->shape[d] != ti->shape[d]) return 0;
    return 1;
}

SpStatus encoder_torch_to_params(SpTorchFlat *t, const char *prefix, SpParams *p) {
    char name[sizeof t->t[0].name + SP_PARAM_NAME_MAX];
    for (int i = 0; i < p->n; i++) {
        const SpTensorInfo *ti = &p->t[i];
        snprintf(name, sizeof name, "%s%s", prefix, ti->name);
        SpTorchTensor *m = find_mut(t, name);
        if (!m) {
            char b[64];
            shape_str(b, sizeof b, ti->ndim, ti->shape);
            SP_FAIL(SP_EINPUT, "'%s': tensor '%s' is missing (the model needs shape %s)",
                    t->manifest_path, name, b);
        }
        if (!same_shape(m, ti)) {
            char a[64], b[64];
            shape_str(a, sizeof a, m->ndim, m->shape);
            shape_str(b, sizeof b, ti->ndim, ti->shape);
            SP_FAIL(SP_EINPUT, "'%s': tensor '%s' has shape %s, the model expects %s",
                    t->manifest_path, name, a, b);
        }
        memcpy(sp_params_data(p, i), t->data + m->offset, m->count * sizeof(float));
        m->used = 1;
    }
    return SP_OK;
}

/* ------------------------------------------------------------ SpecRRMoco */
#define RRM_TOTAL 399328u
#define RRM_FQ_BLOCK 70825u

static size_t prefix_count(const SpTorchFlat *t, const char *prefix) {
    size_t n = 0, k = strlen(prefix);
    for (int i = 0; i < t->n; i++)
        if (strncmp(t->t[i].name, prefix, k) == 0) n += t->t[i].count;
    return n;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int is_buffer_name(const char *name) {
    return ends_with(name, "running_mean") || ends_with(name, "running_var") ||
           ends_with(name, "num_batches_tracked");
}

/* Every tensor "<prefix><rest>" -> a table with names <rest>, same shapes. */
static SpStatus table_from_prefix(SpTorchFlat *t, const char *prefix, SpParams *p) {
    sp_params_init(p);
    size_t k = strlen(prefix);
    for (int i = 0; i < t->n; i++) {
        const SpTorchTensor *m = &t->t[i];
        if (strncmp(m->name, prefix, k) != 0) continue;
        SpTensorKind kind = is_buffer_name(m->name) ? SP_TENSOR_BUFFER : SP_TENSOR_PARAM;
        if (sp_params_add(p, m->name + k, kind, m->ndim, m->shape) < 0) return sp_error_status();
    }
    if (p->n == 0) SP_FAIL(SP_EINPUT, "'%s': no tensor named '%s*'", t->manifest_path, prefix);
    SP_TRY(sp_params_finalize(p));
    SP_TRY(encoder_torch_to_params(t, prefix, p));
    return SP_OK;
}

static SpStatus check_counter(const SpTorchFlat *t, const char *name, double want) {
    const SpTorchTensor *m = encoder_torch_find(t, name);
    if (!m) SP_FAIL(SP_EINPUT, "'%s': tensor '%s' is missing", t->manifest_path, name);
    double v = t->data[m->offset];
    if (want >= 0 && v != want)
        SP_FAIL(SP_EINPUT,
                "'%s': %s = %g, expected %g (not the published SpecRRMoco checkpoint?)",
                t->bin_path, name, v, want);
    if (want < 0 && (v < 0 || v != floor(v)))
        SP_FAIL(SP_EINPUT, "'%s': %s = %g is not a non-negative integer", t->bin_path, name, v);
    return SP_OK;
}

/* Invariants of the published file (reference §13) that the name mapping
 * does not already guarantee. */
static SpStatus check_invariants(const SpTorchFlat *t) {
    size_t fq = prefix_count(t, "encoder_q.");
    if (fq != RRM_FQ_BLOCK)
        SP_FAIL(SP_EINPUT, "'%s': the encoder_q.* block has %zu floats, expected %u",
                t->manifest_path, fq, RRM_FQ_BLOCK);
    size_t fk = prefix_count(t, "encoder_k.");
    if (fk != RRM_FQ_BLOCK)
        SP_FAIL(SP_EINPUT, "'%s': the encoder_k.* block has %zu floats, expected %u",
                t->manifest_path, fk, RRM_FQ_BLOCK);
    const SpTorchTensor *q = encoder_torch_find(t, "queue");
    if (!q) SP_FAIL(SP_EINPUT, "'%s': tensor 'queue' is missing", t->manifest_path);
    if (q->ndim != 2 || q->shape[0] != 128 || q->shape[1] < 1)
        SP_FAIL(SP_EINPUT, "'%s': tensor 'queue' must be 128 x Q", t->manifest_path);
    const int D = (int)q->shape[0], Q = (int)q->shape[1];
    const float *qd = t->data + q->offset;
    double worst = 0.0;
    int worst_j = 0;
    for (int j = 0; j < Q; j++) {
        double s = 0.0;
        for (int d = 0; d < D; d++) {
            double v = qd[(size_t)d * Q + j];
            s += v * v;
        }
        double dev = fabs(sqrt(s) - 1.0);
        if (!(dev <= worst)) {   /* NaN counts as the worst */
            worst = dev;
            worst_j = j;
        }
    }
    if (!(worst <= 3e-7))
        SP_FAIL(SP_EINPUT, "'%s': queue column %d has norm 1 %+.3g (unit norm expected within "
                "3e-7)", t->bin_path, worst_j, worst);
    const SpTorchTensor *qp = encoder_torch_find(t, "queue_ptr");
    if (!qp || qp->count != 1)
        SP_FAIL(SP_EINPUT, "'%s': tensor 'queue_ptr' (1 value) is missing", t->manifest_path);
    double ptr = t->data[qp->offset];
    if (!(ptr >= 0 && ptr < Q && ptr == floor(ptr)))
        SP_FAIL(SP_EINPUT, "'%s': queue_ptr = %g is not an index into the %d-column queue",
                t->bin_path, ptr, Q);
    static const char *const enc_counters[] = {
        "encoder_q.encoder.conv1.1.num_batches_tracked",
        "encoder_q.encoder.conv3.1.num_batches_tracked",
        "encoder_q.encoder.dec_conv3.1.num_batches_tracked",
        "encoder_k.encoder.conv1.1.num_batches_tracked",
        "encoder_k.encoder.conv3.1.num_batches_tracked",
        "encoder_k.encoder.dec_conv3.1.num_batches_tracked",
    };
    /* Split BN never increments its counters: 0 proves S > 1 was used. */
    for (size_t i = 0; i < sizeof enc_counters / sizeof enc_counters[0]; i++)
        SP_TRY(check_counter(t, enc_counters[i], 0.0));
    SP_TRY(check_counter(t, "relation_head.head.1.num_batches_tracked", -1.0));
    SP_TRY(check_counter(t, "cls_head.head.1.num_batches_tracked", -1.0));
    sp_log(SP_LOG_INFO, "import: %zu floats, queue %dx%d (max |norm-1| %.2g), queue_ptr %d, "
           "encoder_q block %zu floats", t->total, D, Q, worst, (int)ptr, fq);
    return SP_OK;
}

static SpStatus import_linear(const SpImportOpts *o, const SpConfig *cfg, int D) {
    SpTorchFlat lt;
    SpH5Writer w;
    int begun = 0;
    SpStatus rc = SP_OK;
    char *text = NULL;
    SP_TRY(encoder_torch_read(&lt, o->lin_bin, o->lin_manifest));
    const SpTorchTensor *W = encoder_torch_find(&lt, "linear_layer.weight");
    const SpTorchTensor *b = encoder_torch_find(&lt, "linear_layer.bias");
    if (!W) SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': tensor 'linear_layer.weight' is missing",
                         o->lin_manifest);
    if (!b) SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': tensor 'linear_layer.bias' is missing",
                         o->lin_manifest);
    if (W->ndim != 2 || W->shape[1] != D)
        SP_FAIL_GOTO(rc, done, SP_EINPUT,
                     "'%s': tensor 'linear_layer.weight' must be (classes, %d) for the %d-d "
                     "encoder feature", o->lin_manifest, D, D);
    if (b->ndim != 1 || b->shape[0] != W->shape[0])
        SP_FAIL_GOTO(rc, done, SP_EINPUT,
                     "'%s': tensor 'linear_layer.bias' must have %" PRId64 " entries",
                     o->lin_manifest, W->shape[0]);
    if (lt.n != 2)
        SP_FAIL_GOTO(rc, done, SP_EINPUT, "'%s': %d tensors, expected linear_layer.weight and "
                     "linear_layer.bias only", o->lin_manifest, lt.n);
    text = sp_config_dump(cfg);
    SP_TRY_GOTO(rc, ckpt_begin(&w, o->lin_out, "linear", "convsc", text, 0, 0), done);
    begun = 1;
    hsize_t dw[2] = {(hsize_t)W->shape[0], (hsize_t)W->shape[1]}, db[1] = {(hsize_t)b->shape[0]};
    SP_TRY_GOTO(rc, sp_h5_write_float(w.f, "linear/weight", 2, dw, lt.data + W->offset, SP_H5_CHECKSUM), done);
    SP_TRY_GOTO(rc, sp_h5_write_float(w.f, "linear/bias", 1, db, lt.data + b->offset, SP_H5_CHECKSUM), done);
    {
        /* absolute path of the (already committed) encoder checkpoint */
        char *abs = realpath(o->out, NULL);
        rc = sp_h5_attr_write_str(w.f, "/", "encoder_ckpt", abs ? abs : o->out);
        free(abs);
        if (rc != SP_OK) goto done;
    }
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "feature", "feature"), done);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "imported_from", o->lin_bin), done);
    SP_TRY_GOTO(rc, ckpt_commit(&w), done);
    begun = 0;
done:
    if (begun) sp_h5_abort(&w);
    free(text);
    encoder_torch_free(&lt);
    return rc;
}

SpStatus encoder_import_specrrmoco(const SpImportOpts *o, const SpConfig *cfg) {
    const char *arch = sp_cfg_str(cfg, "encoder.arch");
    if (strcmp(arch, "convsc") != 0)
        SP_FAIL(SP_ECONFIG, "encoder.arch = '%s': the published weights need 'convsc'", arch);
    int nl = (o->lin_bin != NULL) + (o->lin_manifest != NULL) + (o->lin_out != NULL);
    if (nl != 0 && nl != 3)
        SP_FAIL(SP_EUSAGE, "the linear probe needs --linear-bin, --linear-manifest and "
                "--linear-out together");
    SpTorchFlat t;
    SP_TRY(encoder_torch_read(&t, o->bin, o->manifest));
    SpStatus rc = SP_OK;
    SpH5Writer w;
    int begun = 0;
    char *text = NULL;
    SpEncoder *enc[2] = {NULL, NULL};
    SpProjHead *proj[2] = {NULL, NULL};
    SpParams heads[3];
    static const char *const head_names[3] = {"relation_head", "cls_head", "tmp_cls_head"};
    static const char *const enc_prefix[2] = {"encoder_q.encoder.", "encoder_k.encoder."};
    static const char *const proj_prefix[2] = {"encoder_q.head.", "encoder_k.head."};
    static const char *const enc_group[2] = {SP_GROUP_ENCODER_Q, SP_GROUP_ENCODER_K};
    static const char *const proj_group[2] = {SP_GROUP_PROJ_Q, SP_GROUP_PROJ_K};
    for (int i = 0; i < 3; i++) sp_params_init(&heads[i]);

    if (t.total != RRM_TOTAL)
        SP_FAIL_GOTO(rc, done, SP_EINPUT,
                     "'%s': %zu floats, the published SpecRRMoco export has %u", o->bin, t.total,
                     RRM_TOTAL);
    /* 1. Map every tensor by name (missing tensors and wrong shapes are named). */
    for (int k = 0; k < 2; k++) {
        SP_TRY_GOTO(rc, encoder_create(&enc[k], cfg, NULL), done);
        SP_TRY_GOTO(rc, encoder_torch_to_params(&t, enc_prefix[k], encoder_params(enc[k])), done);
        SP_TRY_GOTO(rc, encoder_proj_create_cfg(&proj[k], cfg, encoder_feature_dim(enc[k]), NULL),
                    done);
        SP_TRY_GOTO(rc, encoder_torch_to_params(&t, proj_prefix[k], encoder_proj_params(proj[k])),
                    done);
    }
    for (int i = 0; i < 3; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s.", head_names[i]);
        SP_TRY_GOTO(rc, table_from_prefix(&t, prefix, &heads[i]), done);
    }
    /* 2. The invariants of the published checkpoint. */
    SP_TRY_GOTO(rc, check_invariants(&t), done);
    SpTorchTensor *q = find_mut(&t, "queue"), *qp = find_mut(&t, "queue_ptr");
    q->used = qp->used = 1;
    for (int i = 0; i < t.n; i++)
        if (!t.t[i].used)
            SP_FAIL_GOTO(rc, done, SP_EINPUT,
                         "'%s': tensor '%s' is not part of the SpecRRMoco model (unexpected "
                         "manifest entry)", o->manifest, t.t[i].name);
    {
        const SpParams *pq = encoder_params(enc[0]), *pk = encoder_params(enc[1]);
        double dmax = 0.0;
        for (size_t i = 0; i < pq->n_param; i++) {
            double d = fabs((double)pq->data[i] - (double)pk->data[i]);
            if (d > dmax) dmax = d;
        }
        int ig = sp_params_find(pq, "C_Attention_F.gamma");
        sp_log(SP_LOG_INFO, "import: CAM gamma f_q %.5f, f_k %.5f; max |f_q - f_k| over "
               "parameters %.3g", ig >= 0 ? (double)sp_params_data(pq, ig)[0] : 0.0,
               ig >= 0 ? (double)sp_params_data(pk, ig)[0] : 0.0, dmax);
    }
    /* 3. Write. */
    text = sp_config_dump(cfg);
    SP_TRY_GOTO(rc, ckpt_begin(&w, o->out, "pretrain", "convsc", text, 800, 1600), done);
    begun = 1;
    for (int k = 0; k < 2; k++) {
        SP_TRY_GOTO(rc, encoder_save(enc[k], w.f, enc_group[k]), done);
        SP_TRY_GOTO(rc, encoder_proj_save(proj[k], w.f, proj_group[k]), done);
    }
    for (int i = 0; i < 3; i++) {
        char group[64];
        snprintf(group, sizeof group, "%s/%s", SP_GROUP_HEADS, head_names[i]);
        SP_TRY_GOTO(rc, ckpt_write_params(w.f, group, &heads[i]), done);
    }
    hsize_t dq[2] = {(hsize_t)q->shape[0], (hsize_t)q->shape[1]};
    SP_TRY_GOTO(rc, sp_h5_write_float(w.f, "queue", 2, dq, t.data + q->offset, SP_H5_CHECKSUM), done);
    int64_t ptr = (int64_t)t.data[qp->offset];
    SP_TRY_GOTO(rc, sp_h5_write_int64(w.f, "queue_ptr", 0, NULL, &ptr, SP_H5_CHECKSUM), done);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "imported_from", o->bin), done);
    SP_TRY_GOTO(rc, sp_h5_attr_write_str(w.f, "/", "source",
                                         "SpecRRMoco-Net published weights (backbone_last.tar, "
                                         "epoch 799), MIT licence, Copyright (c) 2023 "
                                         "sunyue-xfel"), done);
    SP_TRY_GOTO(rc, ckpt_commit(&w), done);
    begun = 0;
    sp_log(SP_LOG_INFO, "import: wrote '%s'", o->out);
    if (o->lin_bin)
        SP_TRY_GOTO(rc, import_linear(o, cfg, encoder_feature_dim(enc[0])), done);
done:
    if (begun) sp_h5_abort(&w);
    for (int k = 0; k < 2; k++) {
        encoder_destroy(&enc[k]);
        encoder_proj_destroy(&proj[k]);
    }
    for (int i = 0; i < 3; i++) sp_params_free(&heads[i]);
    free(text);
    encoder_torch_free(&t);
    return rc;
}
