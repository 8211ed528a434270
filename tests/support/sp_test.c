#define _XOPEN_SOURCE 700
#include "sp_test.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_error.h"
#include "sp_log.h"
#include "sp_rng.h"

double sp_rel_err(double a, double n) {
    double d = fabs(a) + fabs(n);
    return d == 0.0 ? 0.0 : fabs(a - n) / d;
}

double sp_max_abs_d(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

double sp_max_abs_f(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

void sp_expect_close_f(const char *name, const float *got, const float *ref, size_t n,
                       double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], err = fabs(g - r);
        /* assert only on failure: Check writes to its pipe on every assert */
        if (!(err <= atol + rtol * fabs(r) && isfinite(g)))
            ck_assert_msg(0, "%s[%zu]: got %.9g, reference %.9g, |err| %.3g (atol %.3g, rtol %.3g)",
                          name, i, g, r, err, atol, rtol);
    }
}

void sp_expect_close_d(const char *name, const float *got, const double *ref, size_t n,
                       double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], err = fabs(g - r);
        /* assert only on failure: Check writes to its pipe on every assert */
        if (!(err <= atol + rtol * fabs(r) && isfinite(g)))
            ck_assert_msg(0, "%s[%zu]: got %.9g, reference %.9g, |err| %.3g (atol %.3g, rtol %.3g)",
                          name, i, g, r, err, atol, rtol);
    }
}

void sp_expect_close_dd(const char *name, const double *got, const double *ref, size_t n,
                        double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], err = fabs(g - r);
        if (!(err <= atol + rtol * fabs(r) && isfinite(g)))
            ck_assert_msg(0, "%s[%zu]: got %.17g, reference %.17g, |err| %.3g (atol %.3g, rtol %.3g)",
                          name, i, g, r, err, atol, rtol);
    }
}

void sp_fill_uniform_f(float *x, size_t n, unsigned long long seed, double lo, double hi) {
    SpRng r;
    sp_rng_stream(&r, seed, 11, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)sp_rng_uniform(&r, lo, hi);
}

void sp_fill_uniform_d(double *x, size_t n, unsigned long long seed, double lo, double hi) {
    SpRng r;
    sp_rng_stream(&r, seed, 11, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = sp_rng_uniform(&r, lo, hi);
}

const char *sp_fixture(const char *name) {
    static char buf[4][4096];
    static int k = 0;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", SP_FIXTURES_DIR, name);
    return buf[k];
}

static char g_tmpdir[256];

const char *sp_tmpdir(void) {
    if (!g_tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/specssl-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(g_tmpdir)) {
            fprintf(stderr, "mkdtemp failed: %s\n", strerror(errno));
            abort();
        }
    }
    return g_tmpdir;
}

const char *sp_tmp_path(const char *name) {
    static char buf[4][1024];
    static int k = 0;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", sp_tmpdir(), name);
    return buf[k];
}

int sp_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void sp_expect_error_msg(const char *needle) {
    ck_assert_msg(strstr(sp_error_message(), needle) != NULL, "message '%s' lacks '%s'",
                  sp_error_message(), needle);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

void sp_tmpdir_cleanup(void) {
    if (g_tmpdir[0]) {
        nftw(g_tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        g_tmpdir[0] = '\0';
    }
}

int sp_run_cli(char *out, size_t n, const char *const *argv) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execv(SP_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t used = 0;
    char tmp[4096];
    ssize_t k;
    while ((k = read(fd[0], tmp, sizeof tmp)) > 0) {
        size_t c = (size_t)k;
        if (out && used + 1 < n) {
            size_t room = n - 1 - used;
            memcpy(out + used, tmp, c < room ? c : room);
            used += c < room ? c : room;
        }
    }
    if (out && n) out[used] = '\0';
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

static void quiet_sink(SpLogLevel level, const char *line) { (void)level; (void)line; }

int sp_run_suite(Suite *s) {
    if (!getenv("SPECSSL_TEST_LOG")) sp_log_set_sink(quiet_sink);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
