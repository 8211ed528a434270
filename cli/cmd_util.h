/* cmd_util.h - what every `specssl <command>` shares: a small option parser
 * with generated --help, config loading with --set overrides, the
 * SpStatus -> exit code mapping and the start-of-run banner.
 *
 * A command looks like:
 *
 *   int cmd_embed(int argc, char **argv) {
 *       const char *ckpt = NULL, *data = NULL, *out = NULL, *cfg = NULL;
 *       CmdStrList sets = {0};
 *       const CmdOpt opts[] = {
 *           {"ckpt", 0, CMD_STR, "CKPT.h5", "pretrained checkpoint", &ckpt, 1},
 *           {"data", 0, CMD_STR, "FILE.h5", "spectra to embed", &data, 1},
 *           {"out", 'o', CMD_STR, "EMB.h5", "output file", &out, 1},
 *           CMD_OPT_CONFIG(&cfg), CMD_OPT_SET(&sets),
 *       };
 *       const CmdSpec spec = {"embed", "--ckpt CKPT.h5 --data FILE.h5 --out EMB.h5",
 *                             "embed spectra with a frozen encoder", NULL,
 *                             opts, CMD_NOPTS(opts), 0, 0};
 *       int rc = cmd_parse(&spec, argc, argv, NULL);
 *       if (rc != CMD_CONTINUE) { cmd_strlist_free(&sets); return rc; }
 *       SpConfig *c = NULL;
 *       SpStatus st = cmd_load_config(&c, cfg, &sets);
 *       ...
 *       return cmd_finish(st);     // prints the error chain, maps to 0/1/2
 *   }
 *
 * Options: "--name value", "--name=value", "-c value" (short names), flags
 * take no value, CMD_LIST options may repeat (--set a=1 --set b=2), "--"
 * ends the options. -h/--help prints the help and returns 0.
 * Not for use inside OpenMP regions. Allocates only for CMD_LIST options.
 */
#ifndef SP_CMD_UTIL_H
#define SP_CMD_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "sp_config.h"
#include "sp_error.h"

typedef enum {
    CMD_FLAG = 0,   /* dest: int*, set to 1 */
    CMD_STR,        /* dest: const char** */
    CMD_INT,        /* dest: int64_t* */
    CMD_FLOAT,      /* dest: double* */
    CMD_LIST        /* dest: CmdStrList*, repeatable */
} CmdOptType;

typedef struct {
    const char **v;
    int n, cap;
} CmdStrList;

typedef struct {
    const char *name;      /* long name without dashes: "labels-per-class" */
    char short_name;       /* 'c' or 0 */
    CmdOptType type;
    const char *metavar;   /* "FILE.h5" (NULL for flags) */
    const char *help;      /* one line */
    void *dest;
    int required;
} CmdOpt;

#define CMD_NOPTS(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define CMD_OPT_CONFIG(dest) \
    {"config", 'c', CMD_STR, "CFG", "libconfig file (keys not in it keep their defaults)", (dest), 0}
#define CMD_OPT_SET(dest) \
    {"set", 0, CMD_LIST, "KEY=VALUE", "override a config key (repeatable), e.g. optim.lr=0.05", (dest), 0}

typedef struct {
    const char *name;         /* "pretrain" */
    const char *usage;        /* argument synopsis after "specssl <name> " */
    const char *summary;      /* one line */
    const char *description;  /* optional paragraph(s), printed after the options */
    const CmdOpt *opts;
    int nopts;
    int min_pos, max_pos;     /* positional arguments allowed */
} CmdSpec;

#define CMD_CONTINUE (-1)

/* Positional arguments (pointers into argv). */
typedef struct {
    const char *v[16];
    int n;
} CmdPos;

/* Parse argv (argv[0] = command name). Returns CMD_CONTINUE when the command
 * should run, 0 after printing --help, 2 after printing a usage error. pos
 * may be NULL when the command takes no positional arguments. */
int cmd_parse(const CmdSpec *spec, int argc, char **argv, CmdPos *pos);
void cmd_print_help(const CmdSpec *spec, FILE *to);
void cmd_strlist_free(CmdStrList *l);

/* Load the config (path may be NULL: defaults) with the --set overrides,
 * after every module registered its keys, then apply train.threads unless
 * --threads was given on the command line. */
SpStatus cmd_load_config(SpConfig **out, const char *path, const CmdStrList *sets);

/* Print the error chain (if rc != SP_OK) and return the exit code 0/1/2. */
int cmd_finish(SpStatus rc);

/* Start-of-run banner on the log (stderr): version, command, resolved config
 * path and --set overrides, threading/BLAS line (STYLE.md 2.9). c may be NULL. */
void cmd_banner(const char *command, const SpConfig *c, const CmdStrList *sets);

/* Global options handled by main.c before dispatch. */
void cmd_set_cli_threads(int n);   /* --threads N (0: not given) */
int cmd_cli_threads(void);

/* Register the config keys of every module that is linked in (main.c). */
void cmd_register_all_config(void);

#endif
