/* cmd_util.c - option parsing, config loading, exit codes and the banner
 * shared by the specssl subcommands (see cmd_util.h). */
#define _XOPEN_SOURCE 700   /* realpath */
#include "cmd_util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp_blas.h"
#include "sp_log.h"

static int g_cli_threads = 0;

void cmd_set_cli_threads(int n) { g_cli_threads = n; }
int cmd_cli_threads(void) { return g_cli_threads; }

void cmd_strlist_free(CmdStrList *l) {
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int strlist_push(CmdStrList *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        const char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void opt_label(const CmdOpt *o, char *buf, size_t n) {
    if (o->short_name)
        snprintf(buf, n, "-%c, --%s%s%s", o->short_name, o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
    else
        snprintf(buf, n, "    --%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
}

void cmd_print_help(const CmdSpec *spec, FILE *to) {
    fprintf(to, "usage: specssl %s %s\n\n%s\n", spec->name, spec->usage ? spec->usage : "",
            spec->summary ? spec->summary : "");
    fprintf(to, "\noptions:\n");
    for (int i = 0; i < spec->nopts; i++) {
        const CmdOpt *o = &spec->opts[i];
        char label[128];
        opt_label(o, label, sizeof label);
        fprintf(to, "  %-30s %s%s%s\n", label, o->help ? o->help : "",
                o->required ? " (required)" : "", o->type == CMD_LIST ? " (repeatable)" : "");
    }
    fprintf(to, "  %-30s %s\n", "-h, --help", "show this help");
    fprintf(to, "  %-30s %s\n", "    --threads N", "OpenMP threads (global; overrides train.threads)");
    fprintf(to, "  %-30s %s\n", "-q, --quiet", "only warnings and errors on stderr (global)");
    fprintf(to, "  %-30s %s\n", "    --verbose", "debug messages and the full effective config (global)");
    if (spec->description) fprintf(to, "\n%s\n", spec->description);
}

static int usage_error(const CmdSpec *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const CmdSpec *spec, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "specssl: error: %s: ", spec->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `specssl %s --help`)\n", spec->name);
    return 2;
}

static const CmdOpt *find_long(const CmdSpec *spec, const char *name, size_t len) {
    for (int i = 0; i < spec->nopts; i++)
        if (strlen(spec->opts[i].name) == len && strncmp(spec->opts[i].name, name, len) == 0)
            return &spec->opts[i];
    return NULL;
}

static const CmdOpt *find_short(const CmdSpec *spec, char c) {
    for (int i = 0; i < spec->nopts; i++)
        if (spec->opts[i].short_name == c) return &spec->opts[i];
    return NULL;
}

static int store(const CmdSpec *spec, const CmdOpt *o, const char *val) {
    switch (o->type) {
    case CMD_FLAG: *(int *)o->dest = 1; return 0;
    case CMD_STR: *(const char **)o->dest = val; return 0;
    case CMD_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (errno || end == val || *end)
            return usage_error(spec, "--%s: '%s' is not an integer", o->name, val);
        *(int64_t *)o->dest = v;
        return 0;
    }
    case CMD_FLOAT: {
        char *end;
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(v))
            return usage_error(spec, "--%s: '%s' is not a number", o->name, val);
        *(double *)o->dest = v;
        return 0;
    }
    case CMD_LIST:
        if (strlist_push((CmdStrList *)o->dest, val) != 0) {
            fprintf(stderr, "specssl: error: out of memory parsing options\n");
            return 1;
        }
        return 0;
    }
    return 0;
}

int cmd_parse(const CmdSpec *spec, int argc, char **argv, CmdPos *pos) {
    int seen[64] = {0};
    if (pos) pos->n = 0;
    int npos = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            cmd_print_help(spec, stdout);
            return 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const CmdOpt *o = NULL;
        const char *val = NULL;
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-' && a[2]) {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find_long(spec, name, len);
            if (!o) return usage_error(spec, "unknown option '--%.*s'", (int)len, name);
            if (eq) {
                if (o->type == CMD_FLAG)
                    return usage_error(spec, "option --%s takes no value", o->name);
                val = eq + 1;
            }
        } else if (!only_pos && a[0] == '-' && a[1] && a[1] != '-' &&
                   !(a[1] >= '0' && a[1] <= '9') && a[1] != '.') {
            o = find_short(spec, a[1]);
            if (!o) return usage_error(spec, "unknown option '-%c'", a[1]);
            if (a[2]) {
                if (o->type == CMD_FLAG)
                    return usage_error(spec, "option -%c takes no value", a[1]);
                val = a + 2;   /* -cFILE */
            }
        } else {
            if (npos >= spec->max_pos || npos >= 16)
                return usage_error(spec, "unexpected argument '%s'", a);
            if (pos) pos->v[pos->n++] = a;
            npos++;
            continue;
        }
        if (o->type != CMD_FLAG && !val) {
            if (i + 1 >= argc)
                return usage_error(spec, "option --%s needs a value (%s)", o->name,
                                   o->metavar ? o->metavar : "VALUE");
            val = argv[++i];
        }
        int idx = (int)(o - spec->opts);
        if (idx < 64) {
            if (seen[idx] && o->type != CMD_LIST && o->type != CMD_FLAG)
                return usage_error(spec, "option --%s given twice", o->name);
            seen[idx] = 1;
        }
        int rc = store(spec, o, val);
        if (rc) return rc;
    }
    for (int i = 0; i < spec->nopts && i < 64; i++)
        if (spec->opts[i].required && !seen[i])
            return usage_error(spec, "missing required option --%s %s", spec->opts[i].name,
                               spec->opts[i].metavar ? spec->opts[i].metavar : "");
    if (npos < spec->min_pos)
        return usage_error(spec, "expected %d argument%s, got %d (usage: specssl %s %s)",
                           spec->min_pos, spec->min_pos == 1 ? "" : "s", npos, spec->name,
                           spec->usage ? spec->usage : "");
    return CMD_CONTINUE;
}

SpStatus cmd_load_config(SpConfig **out, const char *path, const CmdStrList *sets) {
    cmd_register_all_config();
    SP_TRY(sp_config_load(out, path, sets ? sets->v : NULL, sets ? sets->n : 0));
    int t = (int)sp_cfg_int(*out, "train.threads");
    if (g_cli_threads <= 0 && t > 0) sp_blas_init(t);
    return SP_OK;
}

int cmd_finish(SpStatus rc) {
    if (rc != SP_OK) sp_error_print(stderr);
    return sp_exit_code(rc);
}

void cmd_banner(const char *command, const SpConfig *c, const CmdStrList *sets) {
    char line[1024];
    sp_log(SP_LOG_INFO, "specssl %s %s", SPECSSL_VERSION, command);
    const char *path = c ? sp_config_path(c) : "";
    if (path[0]) {
        char *abs = realpath(path, NULL);
        sp_log(SP_LOG_INFO, "config: %s", abs ? abs : path);
        free(abs);
    } else {
        sp_log(SP_LOG_INFO, "config: defaults (no -c file)");
    }
    if (sets)
        for (int i = 0; i < sets->n; i++) sp_log(SP_LOG_INFO, "config: --set %s", sets->v[i]);
    if (c && sp_log_get_level() <= SP_LOG_DEBUG) {   /* --verbose: the whole resolved config */
        char *text = sp_config_dump(c);
        if (text) sp_log(SP_LOG_DEBUG, "%s", text);
        free(text);
    }
    sp_threading_line(line, sizeof line);
    sp_log(SP_LOG_INFO, "%s", line);
}
