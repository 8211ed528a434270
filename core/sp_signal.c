/* sp_signal.c - SIGINT/SIGTERM set a flag polled by long loops (sp_signal.h). */
#include "sp_signal.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) {
    static const char note[] =
        "\nspecssl: stop requested; finishing the current step and writing a checkpoint "
        "(signal again to abort at once)\n";
    g_signal = sig;
    ssize_t w = write(STDERR_FILENO, note, sizeof note - 1);
    (void)w;
}

void sp_signal_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESETHAND: the second signal takes the default action. */
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int sp_signal_requested(void) { return (int)g_signal; }

void sp_signal_reset(void) {
    g_signal = 0;
    sp_signal_install();
}
