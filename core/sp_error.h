/* sp_error.h - one way to fail loudly.
 *
 * Library functions return SpStatus. The first failure records a message that
 * names the input (file, dataset, config key) and the problem; callers up the
 * stack may add context lines. The CLI prints the chain once and maps the
 * status to an exit code: bad usage/config/input -> 2, runtime failure -> 1.
 */
#ifndef SP_ERROR_H
#define SP_ERROR_H

#include <stdio.h>

typedef enum {
    SP_OK = 0,
    SP_EUSAGE,     /* bad command line                        -> exit 2 */
    SP_ECONFIG,    /* bad configuration (syntax, key, type)   -> exit 2 */
    SP_EINPUT,     /* bad input data (missing, shape, values) -> exit 2 */
    SP_EFORMAT,    /* file is not what it claims (not HDF5...) -> exit 2 */
    SP_EIO,        /* I/O failure while writing / reading     -> exit 1 */
    SP_ENOMEM,     /* allocation failure                      -> exit 1 */
    SP_ENUMERIC,   /* NaN/Inf during training, divergence     -> exit 1 */
    SP_EINTERRUPT, /* SIGINT/SIGTERM: stopped after a checkpoint -> exit 1 */
    SP_EINTERNAL   /* a bug                                    -> exit 1 */
} SpStatus;

/* Record the root cause (replaces any previous error). Always returns rc. */
SpStatus sp_error_set(SpStatus rc, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Add a context line ("while loading checkpoint 'x.h5'"). */
void sp_error_push(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Put text before the root-cause message, e.g. the file a library check
 * did not know about: sp_error_prefix("'%s': ", path). */
void sp_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The root-cause message (empty string when none). */
const char *sp_error_message(void);
SpStatus sp_error_status(void);
void sp_error_clear(void);
/* Print "specssl: error: <root cause>" then each context line. With
 * SPECSSL_DEBUG set in the environment, also the source file:line of each. */
void sp_error_print(FILE *to);
/* Exit status for a status: 0, 2 (usage/config/input/format) or 1. */
int sp_exit_code(SpStatus rc);
const char *sp_status_name(SpStatus rc);

#define SP_FAIL(rc, ...) \
    return sp_error_set((rc), __FILE__, __LINE__, __VA_ARGS__)

#define SP_TRY(call)                                                  \
    do {                                                              \
        SpStatus sp_rc_ = (call);                                     \
        if (sp_rc_ != SP_OK) {                                        \
            sp_error_push(__FILE__, __LINE__, "%s", #call);           \
            return sp_rc_;                                            \
        }                                                             \
    } while (0)

/* Like SP_TRY but jumps to a cleanup label with rc set. */
#define SP_TRY_GOTO(rc, call, label)                                  \
    do {                                                              \
        (rc) = (call);                                                \
        if ((rc) != SP_OK) {                                          \
            sp_error_push(__FILE__, __LINE__, "%s", #call);           \
            goto label;                                               \
        }                                                             \
    } while (0)

#define SP_FAIL_GOTO(rc, label, code, ...)                            \
    do {                                                              \
        (rc) = sp_error_set((code), __FILE__, __LINE__, __VA_ARGS__); \
        goto label;                                                   \
    } while (0)

/* Allocation helpers: on failure set SP_ENOMEM with the size. */
void *sp_malloc(size_t bytes, const char *what);
void *sp_calloc(size_t n, size_t size, const char *what);
/* 64-byte aligned, size rounded up to a multiple of 64; free with free(). */
void *sp_aligned_alloc(size_t bytes, const char *what);

#endif
