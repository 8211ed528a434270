/* sp_progress.h - progress of long loops (STYLE.md 2.9).
 *
 * On a terminal (isatty(fileno(stderr))) a bar is redrawn in place with '\r'
 * at most 5 times a second: "pretrain [#####.....] 45% 120/266 3.1 it/s
 * ETA 0:41 loss=3.91". Otherwise nothing is drawn and no '\r' is ever
 * written: the caller prints one key=value line per epoch with
 * sp_progress_line (on a terminal the bar is cleared first and redrawn
 * after). Nothing is drawn when the log level is above INFO (--quiet).
 *
 *   SpProgress p;
 *   sp_progress_begin(&p, "pretrain", steps_per_epoch * epochs);
 *   for (...) { ...; sp_progress_step(&p, done, "loss=%.4f", loss); }
 *   sp_progress_line(&p, "epoch=%d/%d loss=%.4f samples_s=%.0f", ...);
 *   sp_progress_end(&p);
 *
 * No allocation; serial (call from outside parallel regions).
 */
#ifndef SP_PROGRESS_H
#define SP_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    char label[48];
    int64_t total, done;
    double t0, last_draw;
    FILE *to;
    int tty;        /* draw the bar */
    int drawn;      /* a bar is on screen (needs clearing) */
} SpProgress;

void sp_progress_begin(SpProgress *p, const char *label, int64_t total);
/* The same with an explicit stream and terminal flag (tests). */
void sp_progress_begin_to(SpProgress *p, const char *label, int64_t total, FILE *to, int tty);
/* done = steps completed so far; fmt (may be NULL) appends short metrics. */
void sp_progress_step(SpProgress *p, int64_t done, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One full line (e.g. the per-epoch key=value line) on the progress stream. */
void sp_progress_line(SpProgress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear the bar (terminal) and print nothing else. */
void sp_progress_end(SpProgress *p);
/* Seconds since sp_progress_begin. */
double sp_progress_elapsed(const SpProgress *p);

#endif
