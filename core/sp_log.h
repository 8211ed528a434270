/* sp_log.h - diagnostics to stderr through a swappable sink (libsvm's print
 * hook), so tests can silence the library. Results go to stdout, not here. */
#ifndef SP_LOG_H
#define SP_LOG_H

typedef enum { SP_LOG_DEBUG = 0, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR, SP_LOG_QUIET } SpLogLevel;

typedef void (*SpLogSink)(SpLogLevel level, const char *line);

void sp_log(SpLogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sp_log_set_level(SpLogLevel min_level);
SpLogLevel sp_log_get_level(void);
/* NULL restores the default sink (stderr, "warning: " prefix for warnings). */
void sp_log_set_sink(SpLogSink sink);
/* Monotonic wall clock in seconds (CLOCK_MONOTONIC; never clock()). */
double sp_time_now(void);

#endif
