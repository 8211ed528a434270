#include "sp_params.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void sp_params_init(SpParams *p) { memset(p, 0, sizeof *p); }

int sp_params_add(SpParams *p, const char *name, SpTensorKind kind, int ndim, const int64_t *shape) {
    if (p->finalized) {
        sp_error_set(SP_EINTERNAL, __FILE__, __LINE__, "tensor '%s' added after finalize", name);
        return -1;
    }
    if (strlen(name) >= SP_PARAM_NAME_MAX || ndim < 0 || ndim > SP_PARAM_MAX_DIMS) {
        sp_error_set(SP_EINTERNAL, __FILE__, __LINE__, "bad tensor '%s' (ndim %d)", name, ndim);
        return -1;
    }
    if (sp_params_find(p, name) >= 0) {
        sp_error_set(SP_EINTERNAL, __FILE__, __LINE__, "duplicate tensor name '%s'", name);
        return -1;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 32;
        SpTensorInfo *t = realloc(p->t, (size_t)cap * sizeof *t);
        if (!t) {
            sp_error_set(SP_ENOMEM, __FILE__, __LINE__, "out of memory (parameter table)");
            return -1;
        }
        p->t = t;
        p->cap = cap;
    }
    SpTensorInfo *ti = &p->t[p->n];
    memset(ti, 0, sizeof *ti);
    strcpy(ti->name, name);
    ti->ndim = ndim;
    ti->count = 1;
    for (int d = 0; d < ndim; d++) {
        ti->shape[d] = shape[d];
        ti->count *= (size_t)shape[d];
    }
    ti->kind = kind;
    if (kind == SP_TENSOR_PARAM) {
        ti->offset = p->n_param;
        p->n_param += ti->count;
    } else {
        ti->offset = p->n_buf;
        p->n_buf += ti->count;
    }
    return p->n++;
}

int sp_params_add_dims(SpParams *p, const char *name, SpTensorKind kind, int ndim, ...) {
    int64_t shape[SP_PARAM_MAX_DIMS] = {0};
    va_list ap;
    va_start(ap, ndim);
    for (int d = 0; d < ndim && d < SP_PARAM_MAX_DIMS; d++) shape[d] = (int64_t)va_arg(ap, int);
    va_end(ap);
    return sp_params_add(p, name, kind, ndim, shape);
}

SpStatus sp_params_finalize(SpParams *p) {
    if (p->finalized) return SP_OK;
    p->data = sp_aligned_alloc((p->n_param ? p->n_param : 1) * sizeof(float), "parameters");
    p->grad = sp_aligned_alloc((p->n_param ? p->n_param : 1) * sizeof(float), "gradients");
    p->buf = sp_aligned_alloc((p->n_buf ? p->n_buf : 1) * sizeof(float), "buffers");
    if (!p->data || !p->grad || !p->buf) return SP_ENOMEM;
    memset(p->data, 0, p->n_param * sizeof(float));
    memset(p->grad, 0, p->n_param * sizeof(float));
    memset(p->buf, 0, p->n_buf * sizeof(float));
    p->finalized = 1;
    return SP_OK;
}

float *sp_params_data(const SpParams *p, int idx) {
    const SpTensorInfo *t = &p->t[idx];
    return (t->kind == SP_TENSOR_PARAM ? p->data : p->buf) + t->offset;
}

float *sp_params_grad(const SpParams *p, int idx) {
    const SpTensorInfo *t = &p->t[idx];
    return t->kind == SP_TENSOR_PARAM ? p->grad + t->offset : NULL;
}

int sp_params_find(const SpParams *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->t[i].name, name) == 0) return i;
    return -1;
}

void sp_params_zero_grad(SpParams *p) {
    if (p->grad) memset(p->grad, 0, p->n_param * sizeof(float));
}

int sp_params_same_layout(const SpParams *a, const SpParams *b) {
    if (a->n != b->n || a->n_param != b->n_param || a->n_buf != b->n_buf) return 0;
    for (int i = 0; i < a->n; i++) {
        const SpTensorInfo *x = &a->t[i], *y = &b->t[i];
        if (strcmp(x->name, y->name) || x->kind != y->kind || x->ndim != y->ndim) return 0;
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] != y->shape[d]) return 0;
    }
    return 1;
}

SpStatus sp_params_copy(SpParams *dst, const SpParams *src) {
    if (!sp_params_same_layout(dst, src))
        SP_FAIL(SP_EINTERNAL, "sp_params_copy: tables differ in layout");
    memcpy(dst->data, src->data, src->n_param * sizeof(float));
    memcpy(dst->buf, src->buf, src->n_buf * sizeof(float));
    return SP_OK;
}

size_t sp_params_count(const SpParams *p) { return p->n_param; }

void sp_params_free(SpParams *p) {
    free(p->t);
    free(p->data);
    free(p->grad);
    free(p->buf);
    memset(p, 0, sizeof *p);
}
