#include "sp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static SpLogLevel g_level = SP_LOG_INFO;
static SpLogSink g_sink = NULL;

static void default_sink(SpLogLevel level, const char *line) {
    if (level == SP_LOG_WARN) fputs("warning: ", stderr);
    fputs(line, stderr);
    fputc('\n', stderr);
}

void sp_log(SpLogLevel level, const char *fmt, ...) {
    if (level < g_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    (g_sink ? g_sink : default_sink)(level, buf);
}

void sp_log_set_level(SpLogLevel min_level) { g_level = min_level; }
SpLogLevel sp_log_get_level(void) { return g_level; }
void sp_log_set_sink(SpLogSink sink) { g_sink = sink; }

double sp_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
