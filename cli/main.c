/* main.c - the `specssl` command: global options, start-up (allocator,
 * HDF5, threading), config-key registration and dispatch to the
 * subcommands in cli/cmd_<name>.c.
 *
 * Every subcommand and every module's config registration is referenced
 * strongly, so each module's object files are always linked and every config
 * key is known to every command (unknown keys are refused).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <libconfig.h>

#include "cmd_util.h"
#include "sp_blas.h"
#include "sp_config.h"
#include "sp_error.h"
#include "sp_h5.h"
#include "sp_log.h"

/* Subcommands (cli/cmd_<name>.c). */
int cmd_synth(int, char **);
int cmd_info(int, char **);
int cmd_pretrain(int, char **);
int cmd_embed(int, char **);
int cmd_linear_eval(int, char **);
int cmd_supervised(int, char **);
int cmd_sweep(int, char **);
int cmd_predict(int, char **);
int cmd_import_torch(int, char **);
int cmd_demo(int, char **);
int cmd_config(int, char **);

/* Config keys of the modules (see sp_config.h). */
void data_config_register(void);
void augment_config_register(void);
void encoder_config_register(void);
void pretext_config_register(void);
void linear_eval_config_register(void);

void cmd_register_all_config(void) {
    sp_core_config_register();
    data_config_register();
    augment_config_register();
    encoder_config_register();
    pretext_config_register();
    linear_eval_config_register();
}

static int cmd_version(int argc, char **argv);

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} Command;

static const Command *commands(int *n) {
    static Command tab[13];
    static int count = 0;
    if (!count) {
        const Command init[] = {
            {"synth", cmd_synth, "generate a synthetic dataset (schuetzke, challenge, ramp)"},
            {"info", cmd_info, "describe a dataset or checkpoint file (shapes, classes, config)"},
            {"pretrain", cmd_pretrain, "self-supervised pretraining (MoCo v2 + relational reasoning)"},
            {"embed", cmd_embed, "features of spectra from a frozen encoder"},
            {"linear-eval", cmd_linear_eval, "linear probe / kNN on a frozen encoder with few labels"},
            {"supervised", cmd_supervised, "train a supervised baseline on the same labels"},
            {"sweep", cmd_sweep, "label-fraction sweep: probe vs supervised baselines, report"},
            {"predict", cmd_predict, "class predictions of a trained model"},
            {"import-torch", cmd_import_torch, "convert published PyTorch weights to a checkpoint"},
            {"demo", cmd_demo, "the whole pipeline on generated data, in minutes"},
            {"config", cmd_config, "print the default config, check a config file, list keys"},
            {"version", cmd_version, "versions of specssl and its libraries; threading"},
        };
        count = (int)(sizeof init / sizeof init[0]);
        memcpy(tab, init, sizeof init);
    }
    *n = count;
    return tab;
}

static void usage(FILE *to) {
    int n;
    const Command *c = commands(&n);
    fprintf(to,
            "specssl %s - self-supervised learning on 1D spectra\n\n"
            "usage: specssl [--threads N] [--quiet | --verbose] <command> [options]\n"
            "       specssl <command> --help\n\ncommands:\n",
            SPECSSL_VERSION);
    for (int i = 0; i < n; i++)
        fprintf(to, "  %-13s %s\n", c[i].name, c[i].summary);
    fprintf(to,
            "\nglobal options (anywhere on the line):\n"
            "  --threads N   OpenMP threads (default: train.threads, else OMP_NUM_THREADS)\n"
            "  -q, --quiet   only warnings and errors on stderr\n"
            "  --verbose     debug messages, including the full effective config\n"
            "\nexit status: 0 success, 2 bad usage/config/input, 1 runtime failure.\n");
}

static int cmd_version(int argc, char **argv) {
    const CmdSpec spec = {"version", "", "print the versions of specssl and its libraries", NULL,
                          NULL, 0, 0, 0};
    int rc = cmd_parse(&spec, argc, argv, NULL);
    if (rc != CMD_CONTINUE) return rc;
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    char line[1024];
    sp_threading_line(line, sizeof line);
    printf("specssl %s\n", SPECSSL_VERSION);
    printf("hdf5 %u.%u.%u (headers %d.%d.%d)\n", maj, min, rel, H5_VERS_MAJOR, H5_VERS_MINOR,
           H5_VERS_RELEASE);
    printf("libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
    printf("openblas %s (core %s)\n", sp_blas_config(), sp_blas_corename());
    const char *ct = getenv("OPENBLAS_CORETYPE");
    if (ct) printf("OPENBLAS_CORETYPE=%s (overrides CPU detection)\n", ct);
    printf("%s\n", line);
#ifdef __VERSION__
    printf("compiler %s\n", __VERSION__);
#endif
    return 0;
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 60 || lb > 60) return 99;
    int row[61];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], v = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < v) v = row[j] + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
        }
    }
    return row[lb];
}

/* Remove the global options from argv; returns the new argc, or -1 after a
 * usage error. */
static int strip_global_options(int argc, char **argv) {
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {   /* keep the rest untouched */
            while (i < argc) argv[out++] = argv[i++];
            break;
        }
        const char *val = NULL;
        if (!strcmp(a, "--threads")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "specssl: error: --threads needs a value\n");
                return -1;
            }
            val = argv[++i];
        } else if (!strncmp(a, "--threads=", 10)) {
            val = a + 10;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            sp_log_set_level(SP_LOG_WARN);
            continue;
        } else if (!strcmp(a, "--verbose")) {
            sp_log_set_level(SP_LOG_DEBUG);
            continue;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        char *end;
        long t = strtol(val, &end, 10);
        if (end == val || *end || t < 1 || t > 4096) {
            fprintf(stderr, "specssl: error: --threads '%s': expected an integer in [1, 4096]\n", val);
            return -1;
        }
        cmd_set_cli_threads((int)t);
    }
    argv[out] = NULL;
    return out;
}

int main(int argc, char **argv) {
    /* Keep freed memory in the process: fresh pages cost a fault each
     * (STYLE.md 2.4), and large blocks would otherwise go back to the kernel. */
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);

    argc = strip_global_options(argc, argv);
    if (argc < 0) return 2;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) name = "version";

    sp_h5_init();
    sp_blas_init(cmd_cli_threads());
    cmd_register_all_config();

    int help_for = !strcmp(name, "help");
    if (help_for) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        name = argv[2];
    }
    int n;
    const Command *cmds = commands(&n);
    for (int i = 0; i < n; i++) {
        if (strcmp(cmds[i].name, name) != 0) continue;
        if (help_for) {
            static char hname[32], hflag[] = "--help";
            snprintf(hname, sizeof hname, "%s", cmds[i].name);
            char *hargv[3] = {hname, hflag, NULL};
            return cmds[i].fn(2, hargv);
        }
        return cmds[i].fn(argc - 1, argv + 1);
    }
    const char *best = NULL;
    int bestd = 3;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, cmds[i].name);
        if (d < bestd) {
            bestd = d;
            best = cmds[i].name;
        }
    }
    if (best)
        fprintf(stderr, "specssl: error: unknown command '%s' (did you mean '%s'? see specssl --help)\n",
                name, best);
    else
        fprintf(stderr, "specssl: error: unknown command '%s' (see specssl --help)\n", name);
    return 2;
}
