#include "sp_error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SP_ERR_MSG 1024
#define SP_ERR_CTX 8

typedef struct {
    SpStatus rc;
    char msg[SP_ERR_MSG];
    const char *file;
    int line;
    int nctx;
    char ctx[SP_ERR_CTX][256];
    const char *ctx_file[SP_ERR_CTX];
    int ctx_line[SP_ERR_CTX];
} SpErrorState;

static _Thread_local SpErrorState g_err;

SpStatus sp_error_set(SpStatus rc, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err.msg, sizeof g_err.msg, fmt, ap);
    va_end(ap);
    g_err.rc = rc;
    g_err.file = file;
    g_err.line = line;
    g_err.nctx = 0;
    return rc;
}

void sp_error_push(const char *file, int line, const char *fmt, ...) {
    if (g_err.nctx >= SP_ERR_CTX) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err.ctx[g_err.nctx], sizeof g_err.ctx[0], fmt, ap);
    va_end(ap);
    g_err.ctx_file[g_err.nctx] = file;
    g_err.ctx_line[g_err.nctx] = line;
    g_err.nctx++;
}

void sp_error_prefix(const char *fmt, ...) {
    char buf[SP_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof buf) return;
    size_t rest = sizeof buf - (size_t)k;
    size_t m = strlen(g_err.msg);
    if (m >= rest) m = rest - 1;
    memcpy(buf + k, g_err.msg, m);
    buf[(size_t)k + m] = '\0';
    memcpy(g_err.msg, buf, (size_t)k + m + 1);
}

const char *sp_error_message(void) { return g_err.msg; }
SpStatus sp_error_status(void) { return g_err.rc; }

void sp_error_clear(void) {
    g_err.rc = SP_OK;
    g_err.msg[0] = '\0';
    g_err.nctx = 0;
}

void sp_error_print(FILE *to) {
    const char *dbg = getenv("SPECSSL_DEBUG");
    int debug = dbg && *dbg && strcmp(dbg, "0") != 0;
    fprintf(to, "specssl: error: %s\n", g_err.msg[0] ? g_err.msg : "unknown error");
    if (!debug) return;
    if (g_err.file) fprintf(to, "  at %s:%d\n", g_err.file, g_err.line);
    for (int i = 0; i < g_err.nctx; i++)
        fprintf(to, "  in %s (%s:%d)\n", g_err.ctx[i], g_err.ctx_file[i], g_err.ctx_line[i]);
}

int sp_exit_code(SpStatus rc) {
    switch (rc) {
    case SP_OK: return 0;
    case SP_EUSAGE:
    case SP_ECONFIG:
    case SP_EINPUT:
    case SP_EFORMAT: return 2;
    default: return 1;
    }
}

const char *sp_status_name(SpStatus rc) {
    static const char *names[] = {"ok", "usage", "config", "input", "format",
                                  "io", "nomem", "numeric", "interrupt", "internal"};
    return (unsigned)rc < sizeof names / sizeof names[0] ? names[rc] : "?";
}

void *sp_malloc(size_t bytes, const char *what) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) sp_error_set(SP_ENOMEM, __FILE__, __LINE__, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *sp_calloc(size_t n, size_t size, const char *what) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) sp_error_set(SP_ENOMEM, __FILE__, __LINE__, "out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}

void *sp_aligned_alloc(size_t bytes, const char *what) {
    size_t n = (bytes + 63) / 64 * 64;
    if (n == 0) n = 64;
    void *p = aligned_alloc(64, n);
    if (!p) sp_error_set(SP_ENOMEM, __FILE__, __LINE__, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}
