/* sp_progress.c - progress bar on a terminal, plain lines otherwise
 * (see sp_progress.h). */
#include "sp_progress.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "sp_log.h"

#define SP_PROGRESS_MIN_INTERVAL 0.2   /* seconds between redraws (<= 5 per second) */
#define SP_PROGRESS_BAR 24

void sp_progress_begin_to(SpProgress *p, const char *label, int64_t total, FILE *to, int tty) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total > 0 ? total : 0;
    p->to = to ? to : stderr;
    p->tty = tty && sp_log_get_level() <= SP_LOG_INFO;
    p->t0 = sp_time_now();
    p->last_draw = -1e30;
}

void sp_progress_begin(SpProgress *p, const char *label, int64_t total) {
    sp_progress_begin_to(p, label, total, stderr, isatty(fileno(stderr)));
}

double sp_progress_elapsed(const SpProgress *p) { return sp_time_now() - p->t0; }

static void format_hms(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void clear_bar(SpProgress *p) {
    if (p->drawn) {
        fputs("\r\033[K", p->to);
        p->drawn = 0;
    }
}

static void draw(SpProgress *p, const char *extra) {
    double el = sp_progress_elapsed(p);
    double rate = el > 0 ? (double)p->done / el : 0.0;
    char line[512], eta[32], bar[SP_PROGRESS_BAR + 1];
    int filled = p->total > 0 ? (int)((double)SP_PROGRESS_BAR * (double)p->done / (double)p->total) : 0;
    if (filled > SP_PROGRESS_BAR) filled = SP_PROGRESS_BAR;
    for (int i = 0; i < SP_PROGRESS_BAR; i++) bar[i] = i < filled ? '#' : '.';
    bar[SP_PROGRESS_BAR] = '\0';
    format_hms(eta, sizeof eta,
               rate > 0 && p->total > p->done ? (double)(p->total - p->done) / rate : 0.0);
    int pct = p->total > 0 ? (int)(100.0 * (double)p->done / (double)p->total) : 0;
    snprintf(line, sizeof line, "%s [%s] %3d%% %lld/%lld %.3g it/s ETA %s%s%s", p->label, bar, pct,
             (long long)p->done, (long long)p->total, rate, eta, extra && extra[0] ? " " : "",
             extra ? extra : "");
    fputs("\r\033[K", p->to);
    fputs(line, p->to);
    fflush(p->to);
    p->drawn = 1;
}

void sp_progress_step(SpProgress *p, int64_t done, const char *fmt, ...) {
    p->done = done;
    if (!p->tty) return;
    double now = sp_time_now();
    int last = p->total > 0 && done >= p->total;
    if (!last && now - p->last_draw < SP_PROGRESS_MIN_INTERVAL) return;
    p->last_draw = now;
    char extra[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    draw(p, extra);
}

void sp_progress_line(SpProgress *p, const char *fmt, ...) {
    if (sp_log_get_level() > SP_LOG_INFO) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int had_bar = p->drawn;
    clear_bar(p);
    fputs(line, p->to);
    fputc('\n', p->to);
    if (had_bar && p->tty && !(p->total > 0 && p->done >= p->total)) draw(p, NULL);
    fflush(p->to);
}

void sp_progress_end(SpProgress *p) {
    clear_bar(p);
    fflush(p->to);
}
