/* sp_signal.h - graceful stop on SIGINT/SIGTERM.
 *
 * sp_signal_install() makes the first SIGINT or SIGTERM only set a flag
 * (a volatile sig_atomic_t) and print one note; long loops poll
 * sp_signal_requested() between steps, write a checkpoint and return
 * SP_EINTERRUPT. A second signal gets the default action (the process dies
 * at once), so a stuck run can still be stopped with a second Ctrl-C.
 * Async-signal-safe handler; no allocation.
 */
#ifndef SP_SIGNAL_H
#define SP_SIGNAL_H

void sp_signal_install(void);
/* The signal number received (SIGINT/SIGTERM) or 0. */
int sp_signal_requested(void);
/* Forget a received signal and re-arm the handlers (tests, interactive use). */
void sp_signal_reset(void);

#endif
