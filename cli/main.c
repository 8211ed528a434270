/* specssl command line (skeleton: subcommands land with their modules). */
#include <stdio.h>
#include <string.h>

#include "sp_blas.h"
#include "sp_error.h"

static void usage(FILE *to) {
    fprintf(to,
            "specssl %s - self-supervised learning on 1D spectra\n\n"
            "usage: specssl <command> [options]\n\n"
            "commands:\n"
            "  version     versions of specssl, HDF5, libconfig, OpenBLAS; threads\n",
            SPECSSL_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    sp_blas_init(0);
    if (!strcmp(argv[1], "version")) {
        char line[512];
        sp_threading_line(line, sizeof line);
        printf("specssl %s\n%s\n", SPECSSL_VERSION, line);
        return 0;
    }
    fprintf(stderr, "specssl: error: unknown command '%s' (see specssl --help)\n", argv[1]);
    return 2;
}
