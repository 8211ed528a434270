/* sp_faults.h - run the specssl CLI under faults and check how it fails
 * (tests only: test_reliability, test_faults).
 *
 * spf_run forks and execs the built CLI (SP_CLI_PATH) with stdout and stderr
 * captured separately (through files in sp_tmpdir(), so a child that writes
 * a lot never blocks on a pipe while the parent polls). Optional faults:
 *  - a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so that a write
 *    past the limit fails with EFBIG, as on a full disk);
 *  - a signal sent after a delay, as soon as a path exists, or as soon as
 *    stderr contains a text;
 *  - a timeout (SIGKILL) so a hung child cannot hang the test.
 * The parent never starts OpenMP; safe to call from Check's forked tests and
 * from main() before srunner_run_all. Not thread-safe (serial tests only).
 */
#ifndef SP_FAULTS_H
#define SP_FAULTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int status;      /* exit code, or 128 + signal number */
    int signaled;    /* the signal that ended the child, or 0 */
    int sent;        /* the signal spf_run sent (kill_*), or 0 if the condition never held */
    char *out, *err; /* captured stdout / stderr, NUL-terminated (spf_free) */
    double seconds;  /* wall time of the child */
} SpfResult;

typedef struct {
    long long fsize_limit;        /* > 0: RLIMIT_FSIZE in bytes for the child */
    int kill_sig;                 /* signal to send (0: none) when a condition below holds */
    double kill_after_s;          /* > 0: after this many seconds */
    const char *kill_when_exists; /* this path exists (polled every ~0.2 ms) */
    const char *kill_when_err;    /* stderr contains this text */
    double kill_delay_s;          /* wait this long after the condition first holds */
    double timeout_s;             /* SIGKILL after this (0: 300 s) */
} SpfOpts;

/* Run SP_CLI_PATH with argv (argv[0] is the program name; NULL-terminated).
 * o may be NULL. Returns r->status (-1 if fork/exec setup failed). */
int spf_run(SpfResult *r, const char *const *argv, const SpfOpts *o);
void spf_free(SpfResult *r);

/* Describe a result for assertion messages: "exit 2 after 0.31 s\n--- stderr\n..."
 * (static buffer, overwritten by the next call). */
const char *spf_describe(const SpfResult *r);

/* Run argv without faults (a fixture step): 1 if it exited 0; else 0, with
 * "fixture step '<what>' failed: <spf_describe>" written into why (n bytes). */
int spf_run_ok(const char *what, const char *const *argv, char *why, size_t n);

/* Traces of a crash or of leaked library diagnostics in stderr: a sanitizer
 * report, HDF5's error stack ("HDF5-DIAG", "#000:"), glibc's abort texts.
 * Returns the offending text, or NULL when clean. */
const char *spf_bad_trace(const char *err);

/* Number of lines of the error report: from the first "specssl: error:"
 * line to the end of stderr (0 when there is none). */
int spf_error_lines(const char *err);

/* Files. spf_write writes n bytes (creating or truncating); spf_read returns
 * a malloc'ed, NUL-terminated copy (NULL if missing); spf_same compares a
 * file with bytes. */
int spf_write(const char *path, const void *data, size_t n);
char *spf_read(const char *path, size_t *n);
int spf_same(const char *path, const void *data, size_t n);
int spf_exists(const char *path);
/* Entries of dir whose name ends in ".tmp" (0 if dir is missing). */
int spf_count_tmp(const char *dir);
/* Regular files in dir (not recursive; -1 if dir is missing). */
int spf_count_files(const char *dir);
/* Remove a file or a folder tree (ignores a missing path). */
void spf_rm_rf(const char *path);
/* Copy a file; returns 0 on success. */
int spf_copy(const char *from, const char *to);
/* Flip bit `bit` of byte `off` of a file in place; returns 0 on success. */
int spf_flip_bit(const char *path, long long off, int bit);
long long spf_file_size(const char *path);

/* printf into one of 16 rotating static buffers (paths in tests). */
const char *spf_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
