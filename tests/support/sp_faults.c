/* sp_faults.c - see sp_faults.h. */
#define _XOPEN_SOURCE 700   /* nftw */
#include "sp_faults.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sp_test.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

int spf_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

long long spf_file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

char *spf_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (n) *n = 0;
        return NULL;
    }
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap + 1);
    size_t k;
    while (buf && (k = fread(buf + used, 1, cap - used, f)) > 0) {
        used += k;
        if (used == cap) {
            char *b2 = realloc(buf, 2 * cap + 1);
            if (!b2) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b2;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[used] = '\0';
    if (n) *n = used;
    return buf;
}

int spf_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    int bad = fclose(f) != 0;
    return (w != n || bad) ? -1 : 0;
}

int spf_same(const char *path, const void *data, size_t n) {
    size_t m;
    char *b = spf_read(path, &m);
    int same = b && m == n && memcmp(b, data, n) == 0;
    free(b);
    return same;
}

int spf_copy(const char *from, const char *to) {
    size_t n;
    char *b = spf_read(from, &n);
    if (!b) return -1;
    int rc = spf_write(to, b, n);
    free(b);
    return rc;
}

int spf_flip_bit(const char *path, long long off, int bit) {
    int fd = open(path, O_RDWR);
    if (fd < 0) return -1;
    unsigned char c;
    int rc = -1;
    if (pread(fd, &c, 1, (off_t)off) == 1) {
        c ^= (unsigned char)(1u << (bit & 7));
        if (pwrite(fd, &c, 1, (off_t)off) == 1) rc = 0;
    }
    close(fd);
    return rc;
}

static int count_entries(const char *dir, int only_tmp) {
    DIR *d = opendir(dir);
    if (!d) return only_tmp ? 0 : -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t l = strlen(e->d_name);
        if (only_tmp) {
            if (l >= 4 && !strcmp(e->d_name + l - 4, ".tmp")) n++;
        } else {
            char p[4096];
            struct stat sb;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) n++;
        }
    }
    closedir(d);
    return n;
}

int spf_count_tmp(const char *dir) { return count_entries(dir, 1); }
int spf_count_files(const char *dir) { return count_entries(dir, 0); }

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void spf_rm_rf(const char *path) { nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

const char *spf_fmt(const char *fmt, ...) {
    static char buf[16][4096];
    static int k = 0;
    k = (k + 1) & 15;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf[k], sizeof buf[k], fmt, ap);
    va_end(ap);
    return buf[k];
}

void spf_free(SpfResult *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int spf_run(SpfResult *r, const char *const *argv, const SpfOpts *o) {
    static int seq = 0;
    SpfOpts def;
    memset(&def, 0, sizeof def);
    if (!o) o = &def;
    memset(r, 0, sizeof *r);
    r->status = -1;
    char out_path[512], err_path[512];
    seq++;
    snprintf(out_path, sizeof out_path, "%s/.spf_%d_%d.out", sp_tmpdir(), (int)getpid(), seq);
    snprintf(err_path, sizeof err_path, "%s/.spf_%d_%d.err", sp_tmpdir(), (int)getpid(), seq);
    fflush(stdout);
    fflush(stderr);
    const double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        close(fo);
        close(fe);
        /* default dispositions for the signals under test (Check's parent
         * may have changed them); SIGXFSZ ignored: writes fail with EFBIG */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (o->fsize_limit > 0) {
            struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
            signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(125);
        }
        execv(SP_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    const double timeout = o->timeout_s > 0 ? o->timeout_s : 300.0;
    int st = 0, done = 0;
    double t_fire = -1.0;
    while (!done) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            done = 1;
            break;
        }
        if (w < 0 && errno != EINTR) break;
        double t = now_s() - t0;
        if (o->kill_sig && !r->sent) {
            int fire = 0;
            if (t_fire < 0) {
                if (o->kill_after_s > 0 && t >= o->kill_after_s) fire = 1;
                if (o->kill_when_exists && spf_exists(o->kill_when_exists)) fire = 1;
                if (o->kill_when_err) {
                    char *e = spf_read(err_path, NULL);
                    if (e && strstr(e, o->kill_when_err)) fire = 1;
                    free(e);
                }
            }
            if (fire) t_fire = t + (o->kill_delay_s > 0 ? o->kill_delay_s : 0.0);
            if (t_fire >= 0 && t >= t_fire) {
                kill(pid, o->kill_sig);
                r->sent = o->kill_sig;
            }
        }
        if (t > timeout) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            done = 1;
            break;
        }
        nap_us(200);
    }
    r->seconds = now_s() - t0;
    if (WIFEXITED(st)) {
        r->status = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        r->signaled = WTERMSIG(st);
        r->status = 128 + r->signaled;
    }
    r->out = spf_read(out_path, NULL);
    r->err = spf_read(err_path, NULL);
    if (!r->out) r->out = calloc(1, 1);
    if (!r->err) r->err = calloc(1, 1);
    unlink(out_path);
    unlink(err_path);
    return r->status;
}

const char *spf_describe(const SpfResult *r) {
    static char buf[12288];
    const char *e = r->err ? r->err : "";
    size_t le = strlen(e);
    /* the end of a long stderr is the interesting part */
    if (le > 8000) e += le - 8000;
    const char *o = r->out ? r->out : "";
    size_t lo = strlen(o);
    if (lo > 2000) o += lo - 2000;
    snprintf(buf, sizeof buf, "exit %d%s%s after %.2f s\n--- stderr\n%s--- stdout (tail)\n%s",
             r->status, r->signaled ? " (signal)" : "", r->sent ? " [signal sent]" : "",
             r->seconds, e, o);
    return buf;
}

int spf_run_ok(const char *what, const char *const *argv, char *why, size_t n) {
    SpfResult r;
    spf_run(&r, argv, NULL);
    int ok = r.status == 0;
    if (!ok) snprintf(why, n, "fixture step '%s' failed: %s", what, spf_describe(&r));
    spf_free(&r);
    return ok;
}

const char *spf_bad_trace(const char *err) {
    static const char *bad[] = {"HDF5-DIAG",         "#000:",           "#001:",
                                "AddressSanitizer",  "LeakSanitizer",   "runtime error:",
                                "UndefinedBehavior", "double free",     "corrupted size",
                                "malloc(): ",        "free(): ",        "Segmentation fault",
                                "Assertion `",       "stack smashing",  "Aborted"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strstr(err, bad[i])) return bad[i];
    return NULL;
}

int spf_error_lines(const char *err) {
    const char *p = strstr(err, "specssl: error:");
    if (!p) return 0;
    int n = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (nl == p) { /* blank line */
            p++;
            continue;
        }
        n++;
        if (!nl) break;
        p = nl + 1;
    }
    return n;
}
