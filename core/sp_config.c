/* sp_config.c - libconfig files checked against the registered key schema.
 *
 * The registry is one growing array of SpCfgKey (copied structs; their
 * strings point into the modules' static tables) plus the parsed default of
 * each key. A loaded SpConfig holds a snapshot of the registry and one value
 * per key, so keys registered after a load are not visible in that config.
 *
 * Parsing goes through libconfig 1.5 for files, `--set` values (wrapped in a
 * one-line document "v = <value>;") and registered defaults alike, so the
 * three share one type/range/choice check (value_from_setting).
 * libconfig 1.5 quirks handled here (STYLE.md §4 traps 9-11):
 *  - integers beyond 32 bits wrap silently unless written with an `L`
 *    suffix: add_int64_suffix() appends it to such literals before parsing;
 *  - config_error_file() is NULL for I/O errors and for string input;
 *  - strings die with config_destroy: values are copied out first.
 * Numbers are parsed and printed in the C locale (uselocale).
 *
 * Allocates (load/set/dump). Not for use inside OpenMP regions; registration
 * is not thread-safe (done once at start-up).
 */
#include "sp_config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SP_CFG_WHERE_MAX 1100
#define SP_PATH_MAX_CFG 4200

/* ------------------------------------------------------------------ values */

typedef struct {
    SpCfgType type;
    int64_t i;
    double f;
    int b;
    char *s;
    int n;          /* list length */
    int64_t *il;
    double *fl;
    char **sl;
    const char *origin;   /* "default", "--set" or the owning config's path/origin */
} SpCfgValue;

struct SpConfig {
    int n;
    SpCfgKey *keys;   /* snapshot of the registry */
    SpCfgValue *v;
    char *path;       /* "" for defaults only */
    char *origin;     /* name used in messages for from_text configs */
};

static void value_free(SpCfgValue *v) {
    free(v->s);
    free(v->il);
    free(v->fl);
    if (v->sl) {
        for (int i = 0; i < v->n; i++) free(v->sl[i]);
        free(v->sl);
    }
    memset(v, 0, sizeof *v);
}

static int value_copy(SpCfgValue *dst, const SpCfgValue *src) {
    *dst = *src;
    dst->s = NULL;
    dst->il = NULL;
    dst->fl = NULL;
    dst->sl = NULL;
    if (src->s && !(dst->s = strdup(src->s))) return -1;
    size_t n = (size_t)(src->n > 0 ? src->n : 1);
    if (src->il) {
        if (!(dst->il = malloc(n * sizeof *dst->il))) return -1;
        memcpy(dst->il, src->il, (size_t)src->n * sizeof *dst->il);
    }
    if (src->fl) {
        if (!(dst->fl = malloc(n * sizeof *dst->fl))) return -1;
        memcpy(dst->fl, src->fl, (size_t)src->n * sizeof *dst->fl);
    }
    if (src->sl) {
        if (!(dst->sl = calloc(n, sizeof *dst->sl))) return -1;
        for (int i = 0; i < src->n; i++)
            if (!(dst->sl[i] = strdup(src->sl[i]))) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- registry */

static SpCfgKey *g_keys;
static SpCfgValue *g_defs;
static int g_n, g_cap;

static int registry_find(const char *key) {
    for (int i = 0; i < g_n; i++)
        if (strcmp(g_keys[i].key, key) == 0) return i;
    return -1;
}

static void cfg_bug(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void cfg_bug(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("specssl: internal error (config): ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static const char *type_name(SpCfgType t) {
    switch (t) {
    case SP_CFG_INT: return "int";
    case SP_CFG_FLOAT: return "float";
    case SP_CFG_BOOL: return "bool";
    case SP_CFG_STRING: return "string";
    case SP_CFG_INT_LIST: return "list of int";
    case SP_CFG_FLOAT_LIST: return "list of float";
    case SP_CFG_STRING_LIST: return "list of string";
    }
    return "?";
}

static int is_list_type(SpCfgType t) {
    return t == SP_CFG_INT_LIST || t == SP_CFG_FLOAT_LIST || t == SP_CFG_STRING_LIST;
}

/* Is `prefix` a strict dotted prefix of a registered key ("optim" of "optim.lr")? */
static int is_group_in(const SpCfgKey *keys, int n, const char *prefix) {
    size_t lp = strlen(prefix);
    for (int i = 0; i < n; i++)
        if (strncmp(keys[i].key, prefix, lp) == 0 && keys[i].key[lp] == '.') return 1;
    return 0;
}

static SpStatus parse_value_text(const SpCfgKey *k, const char *text, const char *where,
                                 const char *origin, SpCfgValue *out);

void sp_config_register(const SpCfgKey *keys, int n) {
    for (int j = 0; j < n; j++) {
        const SpCfgKey *k = &keys[j];
        if (!k->key || !k->key[0] || !k->def)
            cfg_bug("key #%d of a registered table has no name or no default", j);
        int at = registry_find(k->key);
        if (at >= 0) {
            const SpCfgKey *o = &g_keys[at];
            if (o->type != k->type || strcmp(o->def, k->def) != 0)
                cfg_bug("key '%s' registered twice with different type/default", k->key);
            continue;   /* idempotent */
        }
        if (is_group_in(g_keys, g_n, k->key))
            cfg_bug("key '%s' is already a section of other keys", k->key);
        for (const char *d = strchr(k->key, '.'); d; d = strchr(d + 1, '.')) {
            char pre[256];
            size_t lp = (size_t)(d - k->key);
            if (lp >= sizeof pre) cfg_bug("key '%s' too long", k->key);
            memcpy(pre, k->key, lp);
            pre[lp] = '\0';
            if (registry_find(pre) >= 0)
                cfg_bug("key '%s' is inside '%s', which is a key, not a section", k->key, pre);
        }
        if (g_n == g_cap) {
            int cap = g_cap ? 2 * g_cap : 64;
            SpCfgKey *nk = realloc(g_keys, (size_t)cap * sizeof *nk);
            if (!nk) cfg_bug("out of memory registering keys");
            g_keys = nk;
            SpCfgValue *nd = realloc(g_defs, (size_t)cap * sizeof *nd);
            if (!nd) cfg_bug("out of memory registering keys");
            g_defs = nd;
            g_cap = cap;
        }
        SpCfgValue def;
        memset(&def, 0, sizeof def);
        if (parse_value_text(k, k->def, "default", "default", &def) != SP_OK)
            cfg_bug("default of key '%s' is invalid: %s", k->key, sp_error_message());
        g_keys[g_n] = *k;
        g_defs[g_n] = def;
        g_n++;
    }
}

const SpCfgKey *sp_config_keys(int *n) {
    if (n) *n = g_n;
    return g_keys;
}

static const SpCfgKey g_core_keys[] = {
    {"optim.name", SP_CFG_STRING, "\"sgd\"", 1, 0, "sgd|adam|adamw",
     "optimizer (the reference uses SGD with momentum)"},
    {"optim.lr", SP_CFG_FLOAT, "0.15", DBL_TRUE_MIN, 1e3, NULL,
     "base learning rate lr0 (before warm-up and schedule)"},
    {"optim.momentum", SP_CFG_FLOAT, "0.9", 0, 1, NULL, "SGD momentum"},
    {"optim.weight_decay", SP_CFG_FLOAT, "1e-4", 0, 1, NULL,
     "L2 weight decay (added to the gradient; decoupled for adamw)"},
    {"optim.nesterov", SP_CFG_BOOL, "false", 1, 0, NULL, "SGD: Nesterov momentum"},
    {"optim.beta1", SP_CFG_FLOAT, "0.9", 0, 1, NULL, "Adam/AdamW first-moment decay"},
    {"optim.beta2", SP_CFG_FLOAT, "0.999", 0, 1, NULL, "Adam/AdamW second-moment decay"},
    {"optim.eps", SP_CFG_FLOAT, "1e-8", DBL_TRUE_MIN, 1, NULL, "Adam/AdamW epsilon"},
    {"optim.schedule", SP_CFG_STRING, "\"cosine\"", 1, 0, "cosine|constant",
     "learning-rate schedule over epochs (cosine down to lr0 * lr_decay_rate^3)"},
    {"optim.lr_decay_rate", SP_CFG_FLOAT, "0.1", 0, 1, NULL,
     "cosine schedule: eta_min = lr0 * lr_decay_rate^3"},
    {"optim.warmup_epochs", SP_CFG_INT, "10", 0, 1e6, NULL,
     "linear warm-up epochs W (0 = no warm-up)"},
    {"optim.warmup_from", SP_CFG_FLOAT, "0.01", 0, 1e3, NULL, "learning rate at the start of warm-up"},
    {"train.seed", SP_CFG_INT, "8", 0, 9.2e18, NULL,
     "seed of every random stream (init, shuffling, augmentation)"},
    {"train.threads", SP_CFG_INT, "0", 0, 4096, NULL,
     "OpenMP threads (0 = OMP_NUM_THREADS or the OpenMP default)"},
    {"reference_quirks", SP_CFG_BOOL, "false", 1, 0, NULL,
     "reproduce the published code's quirks (specrrmoco.md section 11)"},
};

void sp_core_config_register(void) {
    sp_config_register(g_core_keys, (int)(sizeof g_core_keys / sizeof g_core_keys[0]));
}

/* ------------------------------------------------------------- C locale */

static locale_t c_locale(void) {
    static locale_t loc = (locale_t)0;
    if (loc == (locale_t)0) loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    return loc;
}

typedef struct { locale_t old; int active; } LocaleGuard;

static LocaleGuard locale_enter(void) {
    LocaleGuard g = {(locale_t)0, 0};
    locale_t c = c_locale();
    if (c != (locale_t)0) {
        g.old = uselocale(c);
        g.active = 1;
    }
    return g;
}

static void locale_leave(LocaleGuard g) {
    if (g.active) uselocale(g.old);
}

/* -------------------------------------------------------- text helpers */

typedef struct { char *p; size_t n, cap; int oom; } Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void buf_puts(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof tmp) {
        buf_put(b, tmp, (size_t)k);
        return;
    }
    char *big = malloc((size_t)k + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    buf_put(b, big, (size_t)k);
    free(big);
}

/* libconfig 1.5 parses an integer literal beyond 32 bits without an `L`
 * suffix by silently wrapping it. Return a copy of text where such literals
 * get the suffix (line numbers unchanged). Strings and comments are skipped. */
static char *add_int64_suffix(const char *text) {
    Buf b = {0};
    const char *p = text;
    while (*p) {
        if (*p == '"') {                       /* string literal */
            const char *q = p + 1;
            while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
            if (*q) q++;
            buf_put(&b, p, (size_t)(q - p));
            p = q;
        } else if (*p == '#' || (*p == '/' && p[1] == '/')) {
            const char *q = strchr(p, '\n');
            if (!q) q = p + strlen(p);
            buf_put(&b, p, (size_t)(q - p));
            p = q;
        } else if (*p == '/' && p[1] == '*') {
            const char *q = strstr(p + 2, "*/");
            q = q ? q + 2 : p + strlen(p);
            buf_put(&b, p, (size_t)(q - p));
            p = q;
        } else if (isdigit((unsigned char)*p) &&
                   (p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' ||
                                   p[-1] == '.'))) {
            const char *q = p;
            int hex = q[0] == '0' && (q[1] == 'x' || q[1] == 'X');
            if (hex) {
                q += 2;
                while (isxdigit((unsigned char)*q)) q++;
            } else {
                while (isdigit((unsigned char)*q)) q++;
            }
            int is_float = !hex && (*q == '.' || *q == 'e' || *q == 'E');
            int has_l = *q == 'L';
            buf_put(&b, p, (size_t)(q - p));
            if (!is_float && !has_l && !isalpha((unsigned char)*q) && *q != '_') {
                errno = 0;
                unsigned long long v = strtoull(p, NULL, hex ? 16 : 10);
                int neg = !hex && p > text && p[-1] == '-';
                int big = errno == ERANGE || (hex ? v > 0xffffffffULL
                                                  : (neg ? v > 2147483648ULL : v > 2147483647ULL));
                if (big) buf_puts(&b, "L");
            }
            p = q;
        } else {
            buf_put(&b, p, 1);
            p++;
        }
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (!b.p) return strdup("");
    return b.p;
}

/* Levenshtein distance (small strings). */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 200 || lb > 200) return INT_MAX / 2;
    int row[201];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int v = diag + cost;
            if (row[j] + 1 < v) v = row[j] + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
        }
    }
    return row[lb];
}

static const char *last_component(const char *key) {
    const char *d = strrchr(key, '.');
    return d ? d + 1 : key;
}

/* Closest registered key to an unknown one, or NULL. */
static const char *suggest_key(const SpCfgKey *keys, int n, const char *unknown) {
    const char *best = NULL;
    int bestd = INT_MAX;
    size_t lu = strlen(unknown);
    int limit = (int)(lu / 3 > 2 ? lu / 3 : 2);
    for (int i = 0; i < n; i++) {
        int d = edit_distance(unknown, keys[i].key);
        /* the right name in the wrong section ("train.lr" for "optim.lr") */
        if (strcmp(last_component(unknown), last_component(keys[i].key)) == 0 && d > 1)
            d = d < limit ? d : limit;
        if (d < bestd) {
            bestd = d;
            best = keys[i].key;
        }
    }
    return bestd <= limit ? best : NULL;
}

/* "0.15" / "1e-08" -> always contains '.', 'e', "inf" or "nan" so it reads
 * back as a float; shortest of %.9g / %.17g that round-trips. */
static void format_float(char *out, size_t n, double x) {
    snprintf(out, n, "%.9g", x);
    if (strtod(out, NULL) != x) snprintf(out, n, "%.17g", x);
    if (strpbrk(out, ".ein")) {
        char *e = strchr(out, 'e');
        if (e && !memchr(out, '.', (size_t)(e - out))) {   /* "1e-08" -> "1.0e-08" */
            char tail[64];
            snprintf(tail, sizeof tail, "%s", e);
            snprintf(e, n - (size_t)(e - out), ".0%s", tail);
        }
        return;
    }
    size_t l = strlen(out);
    if (l + 2 < n) memcpy(out + l, ".0", 3);
}

static void format_int(char *out, size_t n, int64_t v) {
    if (v > INT32_MAX || v < INT32_MIN)
        snprintf(out, n, "%" PRId64 "L", v);
    else
        snprintf(out, n, "%" PRId64, v);
}

static void put_string_literal(Buf *b, const char *s) {
    buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\f': buf_puts(b, "\\f"); break;
        default:
            if (*p < 0x20)
                buf_printf(b, "\\x%02x", *p);
            else
                buf_put(b, (const char *)p, 1);
        }
    }
    buf_puts(b, "\"");
}

static void put_value(Buf *b, const SpCfgValue *v) {
    char tmp[64];
    switch (v->type) {
    case SP_CFG_INT: format_int(tmp, sizeof tmp, v->i); buf_puts(b, tmp); break;
    case SP_CFG_FLOAT: format_float(tmp, sizeof tmp, v->f); buf_puts(b, tmp); break;
    case SP_CFG_BOOL: buf_puts(b, v->b ? "true" : "false"); break;
    case SP_CFG_STRING: put_string_literal(b, v->s ? v->s : ""); break;
    case SP_CFG_INT_LIST:
    case SP_CFG_FLOAT_LIST:
    case SP_CFG_STRING_LIST:
        buf_puts(b, "[");
        for (int i = 0; i < v->n; i++) {
            if (i) buf_puts(b, ", ");
            if (v->type == SP_CFG_INT_LIST) {
                format_int(tmp, sizeof tmp, v->il[i]);
                buf_puts(b, tmp);
            } else if (v->type == SP_CFG_FLOAT_LIST) {
                format_float(tmp, sizeof tmp, v->fl[i]);
                buf_puts(b, tmp);
            } else {
                put_string_literal(b, v->sl[i]);
            }
        }
        buf_puts(b, "]");
        break;
    }
}

/* "[1e-09, 1000]" or "(0, 1000]" when min is the smallest positive double. */
static void format_range(char *out, size_t n, const SpCfgKey *k) {
    char lo[40], hi[40];
    snprintf(lo, sizeof lo, "%.9g", k->min);
    snprintf(hi, sizeof hi, "%.9g", k->max);
    if (k->min > 0 && k->min <= DBL_TRUE_MIN)
        snprintf(out, n, "(0, %s]", hi);
    else
        snprintf(out, n, "[%s, %s]", lo, hi);
}

/* ------------------------------------------------------ setting -> value */

static const char *setting_type_name(const config_setting_t *s) {
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP: return "a group { ... }";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an int";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a bool";
    case CONFIG_TYPE_ARRAY: return "an array [ ... ]";
    case CONFIG_TYPE_LIST: return "a list ( ... )";
    default: return "an unknown type";
    }
}

static int setting_is_int(const config_setting_t *s) {
    int t = config_setting_type(s);
    return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* A short rendering of a scalar setting for messages. */
static void setting_repr(char *out, size_t n, const config_setting_t *s) {
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(out, n, "%lld", config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT: snprintf(out, n, "%.9g", config_setting_get_float(s)); break;
    case CONFIG_TYPE_BOOL: snprintf(out, n, "%s", config_setting_get_bool(s) ? "true" : "false"); break;
    case CONFIG_TYPE_STRING: snprintf(out, n, "\"%s\"", config_setting_get_string(s)); break;
    default: snprintf(out, n, "%s", setting_type_name(s));
    }
}

static int choice_ok(const char *choices, const char *s) {
    size_t ls = strlen(s);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t lt = bar ? (size_t)(bar - p) : strlen(p);
        if (lt == ls && strncmp(p, s, ls) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Check one scalar element (or the scalar itself) of key k.
 * idx >= 0 names a list element. `where` prefixes the message ("x.cfg:12"). */
static SpStatus check_scalar(const SpCfgKey *k, const config_setting_t *s, int idx,
                             const char *where, SpCfgType want, int64_t *iv, double *fv,
                             int *bv, const char **sv) {
    char name[300];
    if (idx >= 0)
        snprintf(name, sizeof name, "'%s'[%d]", k->key, idx);
    else
        snprintf(name, sizeof name, "'%s'", k->key);
    char found[256];
    setting_repr(found, sizeof found, s);
    int t = config_setting_type(s);
    const char *want_name = want == SP_CFG_INT ? "an int"
                            : want == SP_CFG_FLOAT ? "a float (or an int)"
                            : want == SP_CFG_BOOL ? "a bool (true/false)" : "a string";
    int ok = (want == SP_CFG_INT && setting_is_int(s)) ||
             (want == SP_CFG_FLOAT && (setting_is_int(s) || t == CONFIG_TYPE_FLOAT)) ||
             (want == SP_CFG_BOOL && t == CONFIG_TYPE_BOOL) ||
             (want == SP_CFG_STRING && t == CONFIG_TYPE_STRING);
    if (!ok) {
        const char *hint = want == SP_CFG_INT && t == CONFIG_TYPE_FLOAT
                               ? " (write it without a decimal point)" : "";
        if (t == CONFIG_TYPE_GROUP || t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST)
            SP_FAIL(SP_ECONFIG, "%s: key %s expects %s, found %s", where, name, want_name,
                    setting_type_name(s));
        SP_FAIL(SP_ECONFIG, "%s: key %s expects %s, found %s %s%s", where, name, want_name,
                setting_type_name(s), found, hint);
    }
    char range[96];
    format_range(range, sizeof range, k);
    int ranged = k->min <= k->max;
    if (want == SP_CFG_INT) {
        long long v = config_setting_get_int64(s);
        if (ranged && ((double)v < k->min || (double)v > k->max))
            SP_FAIL(SP_ECONFIG, "%s: key %s = %lld is out of range %s", where, name, v, range);
        *iv = v;
    } else if (want == SP_CFG_FLOAT) {
        double v = setting_is_int(s) ? (double)config_setting_get_int64(s)
                                     : config_setting_get_float(s);
        if (!isfinite(v))
            SP_FAIL(SP_ECONFIG, "%s: key %s = %s is not a finite number", where, name, found);
        if (ranged && (v < k->min || v > k->max))
            SP_FAIL(SP_ECONFIG, "%s: key %s = %.9g is out of range %s", where, name, v, range);
        *fv = v;
    } else if (want == SP_CFG_BOOL) {
        *bv = config_setting_get_bool(s) ? 1 : 0;
    } else {
        const char *v = config_setting_get_string(s);
        if (!v) v = "";
        if (k->choices && !choice_ok(k->choices, v))
            SP_FAIL(SP_ECONFIG, "%s: key %s = \"%s\" is not one of %s", where, name, v, k->choices);
        *sv = v;
    }
    return SP_OK;
}

static SpStatus value_from_setting(const SpCfgKey *k, const config_setting_t *s,
                                   const char *where, const char *origin, SpCfgValue *out) {
    SpCfgValue v;
    memset(&v, 0, sizeof v);
    v.type = k->type;
    v.origin = origin;
    SpStatus rc = SP_OK;
    if (!is_list_type(k->type)) {
        const char *sv = NULL;
        rc = check_scalar(k, s, -1, where, k->type, &v.i, &v.f, &v.b, &sv);
        if (rc != SP_OK) return rc;
        if (k->type == SP_CFG_STRING && !(v.s = strdup(sv)))
            SP_FAIL(SP_ENOMEM, "out of memory reading key '%s'", k->key);
        *out = v;
        return SP_OK;
    }
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
        char found[256];
        setting_repr(found, sizeof found, s);
        SP_FAIL(SP_ECONFIG, "%s: key '%s' expects a %s like [1, 2], found %s%s%s", where, k->key,
                type_name(k->type), setting_type_name(s),
                t == CONFIG_TYPE_GROUP ? "" : " ", t == CONFIG_TYPE_GROUP ? "" : found);
    }
    int n = config_setting_length(s);
    v.n = n;
    size_t cap = (size_t)(n > 0 ? n : 1);
    SpCfgType et = k->type == SP_CFG_INT_LIST ? SP_CFG_INT
                   : k->type == SP_CFG_FLOAT_LIST ? SP_CFG_FLOAT : SP_CFG_STRING;
    if (et == SP_CFG_INT) v.il = calloc(cap, sizeof *v.il);
    if (et == SP_CFG_FLOAT) v.fl = calloc(cap, sizeof *v.fl);
    if (et == SP_CFG_STRING) v.sl = calloc(cap, sizeof *v.sl);
    if (!v.il && !v.fl && !v.sl) SP_FAIL(SP_ENOMEM, "out of memory reading key '%s'", k->key);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int64_t iv = 0;
        double fv = 0;
        int bv = 0;
        const char *sv = NULL;
        rc = check_scalar(k, e, i, where, et, &iv, &fv, &bv, &sv);
        if (rc != SP_OK) {
            v.n = i;
            value_free(&v);
            return rc;
        }
        if (et == SP_CFG_INT) v.il[i] = iv;
        if (et == SP_CFG_FLOAT) v.fl[i] = fv;
        if (et == SP_CFG_STRING && !(v.sl[i] = strdup(sv))) {
            v.n = i;
            value_free(&v);
            SP_FAIL(SP_ENOMEM, "out of memory reading key '%s'", k->key);
        }
    }
    *out = v;
    return SP_OK;
}

static const char k_mixed_hint[] =
    " (hint: an array [ ... ] holds one element type: write 3.0 rather than 3 among floats, "
    "or use a list ( ... ))";

static void syntax_message(char *out, size_t n, const config_t *lc, const char *name) {
    const char *ef = config_error_file(lc);   /* NULL for string input (trap 10) */
    const char *et = config_error_text(lc);
    snprintf(out, n, "%s:%d: %s%s", ef ? ef : name, config_error_line(lc),
             et ? et : "syntax error", et && strstr(et, "mismatched") ? k_mixed_hint : "");
}

/* Parse `text` as the value of key k ("0.15", "[1, 2]", "\"sgd\""). */
static SpStatus parse_value_text(const SpCfgKey *k, const char *text, const char *where,
                                 const char *origin, SpCfgValue *out) {
    size_t lt = strlen(text);
    char *doc = malloc(lt + 16);
    if (!doc) SP_FAIL(SP_ENOMEM, "out of memory parsing key '%s'", k->key);
    snprintf(doc, lt + 16, "v = %s\n;", text);
    if (k->type == SP_CFG_FLOAT_LIST) {
        /* "[1e-7, 3]" mixes float and int, which a libconfig array refuses;
         * a list ( ... ) accepts it and the element check converts ints. */
        char *open = strchr(doc, '[');
        char *close = strrchr(doc, ']');
        if (open && close && close > open && open == doc + 4 + strspn(text, " \t")) {
            *open = '(';
            *close = ')';
        }
    }
    char *fixed = add_int64_suffix(doc);
    free(doc);
    if (!fixed) SP_FAIL(SP_ENOMEM, "out of memory parsing key '%s'", k->key);
    config_t lc;
    config_init(&lc);
    LocaleGuard lg = locale_enter();
    int ok = config_read_string(&lc, fixed);
    locale_leave(lg);
    free(fixed);
    SpStatus rc = SP_OK;
    if (!ok && k->type == SP_CFG_BOOL) {
        rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__,
                          "%s: key '%s' expects a bool (true/false), found '%s'", where, k->key, text);
    } else if (!ok) {
        const char *et = config_error_text(&lc);
        rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__,
                          "%s: key '%s': cannot parse value '%s' (%s)%s", where, k->key, text,
                          et ? et : "syntax error", et && strstr(et, "mismatched") ? k_mixed_hint : "");
    } else {
        const config_setting_t *s = config_lookup(&lc, "v");
        if (!s || config_setting_length(config_root_setting(&lc)) != 1)
            rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__,
                              "%s: key '%s': '%s' is not a single value", where, k->key, text);
        else
            rc = value_from_setting(k, s, where, origin, out);
    }
    config_destroy(&lc);
    return rc;
}

/* ------------------------------------------------------------- SpConfig */

static int cfg_find(const SpConfig *c, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->keys[i].key, key) == 0) return i;
    return -1;
}

static SpStatus config_new_defaults(SpConfig **out) {
    *out = NULL;
    sp_core_config_register();
    SpConfig *c = calloc(1, sizeof *c);
    if (!c) SP_FAIL(SP_ENOMEM, "out of memory (config)");
    c->n = g_n;
    c->keys = malloc((size_t)(g_n ? g_n : 1) * sizeof *c->keys);
    c->v = calloc((size_t)(g_n ? g_n : 1), sizeof *c->v);
    c->path = strdup("");
    c->origin = strdup("");
    if (!c->keys || !c->v || !c->path || !c->origin) {
        sp_config_free(c);
        SP_FAIL(SP_ENOMEM, "out of memory (config)");
    }
    memcpy(c->keys, g_keys, (size_t)g_n * sizeof *c->keys);
    for (int i = 0; i < g_n; i++) {
        if (value_copy(&c->v[i], &g_defs[i]) != 0) {
            c->n = i + 1;
            sp_config_free(c);
            SP_FAIL(SP_ENOMEM, "out of memory (config defaults)");
        }
        c->v[i].origin = "default";
    }
    *out = c;
    return SP_OK;
}

void sp_config_free(SpConfig *c) {
    if (!c) return;
    if (c->v)
        for (int i = 0; i < c->n; i++) value_free(&c->v[i]);
    free(c->v);
    free(c->keys);
    free(c->path);
    free(c->origin);
    free(c);
}

/* First leaf below an unknown group, for a precise "unknown key" message. */
static const config_setting_t *first_leaf(const config_setting_t *s, char *full, size_t n) {
    while (config_setting_type(s) == CONFIG_TYPE_GROUP && config_setting_length(s) > 0) {
        s = config_setting_get_elem(s, 0);
        size_t l = strlen(full);
        snprintf(full + l, n - l, ".%s", config_setting_name(s) ? config_setting_name(s) : "?");
    }
    return s;
}

static SpStatus walk_group(SpConfig *c, const config_setting_t *g, const char *prefix,
                           const char *name) {
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *nm = config_setting_name(s);
        char full[512];
        if (prefix[0])
            snprintf(full, sizeof full, "%s.%s", prefix, nm ? nm : "?");
        else
            snprintf(full, sizeof full, "%s", nm ? nm : "?");
        const char *sf = config_setting_source_file(s);
        char where[SP_CFG_WHERE_MAX];
        snprintf(where, sizeof where, "%s:%u", sf ? sf : name,
                 (unsigned)config_setting_source_line(s));
        int idx = cfg_find(c, full);
        if (idx >= 0) {
            SpCfgValue v;
            SpStatus rc = value_from_setting(&c->keys[idx], s, where, c->origin, &v);
            if (rc != SP_OK) return rc;
            value_free(&c->v[idx]);
            c->v[idx] = v;
            continue;
        }
        if (is_group_in(c->keys, c->n, full)) {
            if (config_setting_type(s) != CONFIG_TYPE_GROUP)
                SP_FAIL(SP_ECONFIG,
                        "%s: '%s' is a section and must be a group (%s = { ... };), found %s",
                        where, full, full, setting_type_name(s));
            SpStatus rc = walk_group(c, s, full, name);
            if (rc != SP_OK) return rc;
            continue;
        }
        const config_setting_t *leaf = first_leaf(s, full, sizeof full);
        if (leaf != s) {
            sf = config_setting_source_file(leaf);
            snprintf(where, sizeof where, "%s:%u", sf ? sf : name,
                     (unsigned)config_setting_source_line(leaf));
        }
        const char *sug = suggest_key(c->keys, c->n, full);
        if (sug)
            SP_FAIL(SP_ECONFIG, "%s: unknown key '%s' (did you mean '%s'?)", where, full, sug);
        SP_FAIL(SP_ECONFIG, "%s: unknown key '%s' (see `specssl config --keys`)", where, full);
    }
    return SP_OK;
}

/* Parse libconfig text into c; `name` names it in messages. */
static SpStatus apply_text(SpConfig *c, const char *text, const char *name, const char *incdir) {
    char *fixed = add_int64_suffix(text);
    if (!fixed) SP_FAIL(SP_ENOMEM, "out of memory parsing '%s'", name);
    config_t lc;
    config_init(&lc);
    if (incdir) config_set_include_dir(&lc, incdir);
    LocaleGuard lg = locale_enter();
    int ok = config_read_string(&lc, fixed);
    locale_leave(lg);
    free(fixed);
    SpStatus rc = SP_OK;
    if (!ok) {
        char msg[1024];
        syntax_message(msg, sizeof msg, &lc, name);
        rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__, "%s", msg);
    } else {
        rc = walk_group(c, config_root_setting(&lc), "", name);
    }
    config_destroy(&lc);
    return rc;
}

static char *read_text_file(const char *path, SpStatus *rc) {
    *rc = SP_OK;
    struct stat st;
    if (stat(path, &st) != 0) {
        *rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__, "config file '%s': %s", path,
                           strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        *rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__, "config file '%s': not a regular file",
                           path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        *rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__, "config file '%s': %s", path,
                           strerror(errno));
        return NULL;
    }
    Buf b = {0};
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) buf_put(&b, tmp, k);
    int err = ferror(f);
    fclose(f);
    if (err || b.oom) {
        free(b.p);
        *rc = sp_error_set(err ? SP_ECONFIG : SP_ENOMEM, __FILE__, __LINE__,
                           "config file '%s': %s", path, err ? "read error" : "out of memory");
        return NULL;
    }
    if (!b.p) b.p = strdup("");
    if (b.p && memchr(b.p, '\0', b.n)) {
        free(b.p);
        *rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__,
                           "config file '%s': contains NUL bytes, not a text file", path);
        return NULL;
    }
    return b.p;
}

SpStatus sp_config_load(SpConfig **out, const char *path, const char *const *sets, int nsets) {
    *out = NULL;
    SpConfig *c = NULL;
    SP_TRY(config_new_defaults(&c));
    SpStatus rc = SP_OK;
    if (path && path[0]) {
        free(c->path);
        free(c->origin);
        c->path = strdup(path);
        c->origin = strdup(path);
        if (!c->path || !c->origin) {
            sp_config_free(c);
            SP_FAIL(SP_ENOMEM, "out of memory (config)");
        }
        char *text = read_text_file(path, &rc);
        if (!text) {
            sp_config_free(c);
            return rc;
        }
        /* @include "x.cfg" is resolved relative to the including file's folder. */
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) *slash = '\0';
        rc = apply_text(c, text, path, slash ? dir : NULL);
        free(dir);
        free(text);
        if (rc != SP_OK) {
            sp_config_free(c);
            return rc;
        }
    }
    for (int i = 0; i < nsets; i++) {
        rc = sp_config_set(c, sets[i]);
        if (rc != SP_OK) {
            sp_config_free(c);
            return rc;
        }
    }
    *out = c;
    return SP_OK;
}

SpStatus sp_config_from_text(SpConfig **out, const char *text, const char *origin) {
    *out = NULL;
    SpConfig *c = NULL;
    SP_TRY(config_new_defaults(&c));
    free(c->origin);
    c->origin = strdup(origin ? origin : "config text");
    if (!c->origin) {
        sp_config_free(c);
        SP_FAIL(SP_ENOMEM, "out of memory (config)");
    }
    SpStatus rc = apply_text(c, text ? text : "", c->origin, NULL);
    if (rc != SP_OK) {
        sp_config_free(c);
        return rc;
    }
    *out = c;
    return SP_OK;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t l = strlen(s);
    while (l > 0 && isspace((unsigned char)s[l - 1])) s[--l] = '\0';
    return s;
}

SpStatus sp_config_set(SpConfig *c, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    if (!eq)
        SP_FAIL(SP_ECONFIG, "--set '%s': expected key=value (e.g. --set optim.lr=0.05)", assignment);
    char *dup = strdup(assignment);
    if (!dup) SP_FAIL(SP_ENOMEM, "out of memory (--set)");
    dup[eq - assignment] = '\0';
    char *key = trim(dup), *val = trim(dup + (eq - assignment) + 1);
    SpStatus rc = SP_OK;
    int idx = cfg_find(c, key);
    if (idx < 0) {
        const char *sug = suggest_key(c->keys, c->n, key);
        if (is_group_in(c->keys, c->n, key))
            rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__,
                              "--set %s: '%s' is a section, not a key (e.g. --set %s.<key>=...)",
                              assignment, key, key);
        else if (sug)
            rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__,
                              "--set %s: unknown key '%s' (did you mean '%s'?)", assignment, key, sug);
        else
            rc = sp_error_set(SP_ECONFIG, __FILE__, __LINE__,
                              "--set %s: unknown key '%s' (see `specssl config --keys`)",
                              assignment, key);
        free(dup);
        return rc;
    }
    const SpCfgKey *k = &c->keys[idx];
    char where[SP_CFG_WHERE_MAX];
    snprintf(where, sizeof where, "--set %s", assignment);
    SpCfgValue v;
    memset(&v, 0, sizeof v);
    if (k->type == SP_CFG_STRING && val[0] != '"') {
        /* bare word for a string key: take it literally */
        config_t lc;
        config_init(&lc);
        config_setting_t *s = config_setting_add(config_root_setting(&lc), "v", CONFIG_TYPE_STRING);
        if (!s || !config_setting_set_string(s, val))
            rc = sp_error_set(SP_ENOMEM, __FILE__, __LINE__, "out of memory (--set)");
        else
            rc = value_from_setting(k, s, where, "--set", &v);
        config_destroy(&lc);
    } else {
        rc = parse_value_text(k, val, where, "--set", &v);
    }
    if (rc == SP_OK) {
        value_free(&c->v[idx]);
        c->v[idx] = v;
    }
    free(dup);
    return rc;
}

/* ----------------------------------------------------------------- getters */

static const SpCfgValue *get(const SpConfig *c, const char *key, SpCfgType t) {
    if (!c) cfg_bug("config getter called with a NULL config (key '%s')", key);
    int i = cfg_find(c, key);
    if (i < 0)
        cfg_bug("key '%s' is not registered (register it before sp_config_load)", key);
    if (c->keys[i].type != t)
        cfg_bug("key '%s' is a %s, read as a %s", key, type_name(c->keys[i].type), type_name(t));
    return &c->v[i];
}

int64_t sp_cfg_int(const SpConfig *c, const char *key) { return get(c, key, SP_CFG_INT)->i; }
double sp_cfg_float(const SpConfig *c, const char *key) { return get(c, key, SP_CFG_FLOAT)->f; }
int sp_cfg_bool(const SpConfig *c, const char *key) { return get(c, key, SP_CFG_BOOL)->b; }
const char *sp_cfg_str(const SpConfig *c, const char *key) { return get(c, key, SP_CFG_STRING)->s; }

static const SpCfgValue *get_list(const SpConfig *c, const char *key) {
    int i = c ? cfg_find(c, key) : -1;
    if (i < 0) cfg_bug("key '%s' is not registered (register it before sp_config_load)", key);
    if (!is_list_type(c->keys[i].type))
        cfg_bug("key '%s' is a %s, read as a list", key, type_name(c->keys[i].type));
    return &c->v[i];
}

int sp_cfg_list_len(const SpConfig *c, const char *key) { return get_list(c, key)->n; }

static void check_index(const SpCfgValue *v, const char *key, int i) {
    if (i < 0 || i >= v->n) cfg_bug("key '%s': index %d out of range (length %d)", key, i, v->n);
}

int64_t sp_cfg_int_at(const SpConfig *c, const char *key, int i) {
    const SpCfgValue *v = get(c, key, SP_CFG_INT_LIST);
    check_index(v, key, i);
    return v->il[i];
}

double sp_cfg_float_at(const SpConfig *c, const char *key, int i) {
    const SpCfgValue *v = get(c, key, SP_CFG_FLOAT_LIST);
    check_index(v, key, i);
    return v->fl[i];
}

const char *sp_cfg_str_at(const SpConfig *c, const char *key, int i) {
    const SpCfgValue *v = get(c, key, SP_CFG_STRING_LIST);
    check_index(v, key, i);
    return v->sl[i];
}

const char *sp_cfg_origin(const SpConfig *c, const char *key) {
    int i = c ? cfg_find(c, key) : -1;
    if (i < 0) cfg_bug("key '%s' is not registered", key);
    return c->v[i].origin ? c->v[i].origin : "default";
}

const char *sp_config_path(const SpConfig *c) { return c && c->path ? c->path : ""; }

/* -------------------------------------------------------------------- dump */

static void put_doc_comment(Buf *b, const SpCfgKey *k, int indent) {
    buf_printf(b, "%*s# %s", indent, "", k->doc ? k->doc : "");
    char range[96];
    if (k->type == SP_CFG_STRING || k->type == SP_CFG_STRING_LIST) {
        if (k->choices) buf_printf(b, " [%s: %s]", type_name(k->type), k->choices);
        else buf_printf(b, " [%s]", type_name(k->type));
    } else if (k->type == SP_CFG_BOOL) {
        buf_puts(b, " [bool]");
    } else if (k->min <= k->max) {
        format_range(range, sizeof range, k);
        buf_printf(b, " [%s in %s]", type_name(k->type), range);
    } else {
        buf_printf(b, " [%s]", type_name(k->type));
    }
    buf_puts(b, "\n");
}

/* Emit every key below `prefix` (dotted, "" for the root) as nested groups,
 * in registration order (a group appears where its first key was registered). */
static void dump_level(Buf *b, const SpCfgKey *keys, const SpCfgValue *vals, int n,
                       const char *prefix, int indent, int docs, unsigned char *done) {
    size_t lp = strlen(prefix);
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        const char *key = keys[i].key;
        if (lp && !(strncmp(key, prefix, lp) == 0 && key[lp] == '.')) continue;
        const char *rest = lp ? key + lp + 1 : key;
        const char *dot = strchr(rest, '.');
        if (!dot) {
            if (docs) put_doc_comment(b, &keys[i], indent);
            buf_printf(b, "%*s%s = ", indent, "", rest);
            put_value(b, &vals[i]);
            buf_puts(b, ";\n");
            done[i] = 1;
            continue;
        }
        char sub[512];
        size_t ls = (size_t)(dot - key);
        if (ls >= sizeof sub) continue;
        memcpy(sub, key, ls);
        sub[ls] = '\0';
        if (docs && indent == 0) buf_puts(b, "\n");
        buf_printf(b, "%*s%.*s = {\n", indent, "", (int)(dot - rest), rest);
        dump_level(b, keys, vals, n, sub, indent + 2, docs, done);
        buf_printf(b, "%*s};\n", indent, "");
    }
}

static char *dump_impl(const SpCfgKey *keys, const SpCfgValue *vals, int n, int docs,
                       const char *header) {
    Buf b = {0};
    unsigned char *done = calloc((size_t)(n ? n : 1), 1);
    if (!done) return NULL;
    LocaleGuard lg = locale_enter();
    if (header) buf_puts(&b, header);
    dump_level(&b, keys, vals, n, "", 0, docs, done);
    locale_leave(lg);
    free(done);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (!b.p) b.p = strdup("");
    return b.p;
}

char *sp_config_dump(const SpConfig *c) {
    char header[SP_PATH_MAX_CFG];
    snprintf(header, sizeof header, "# specssl %s effective configuration (from %s",
             SPECSSL_VERSION, c->path && c->path[0] ? c->path : "defaults");
    for (char *q = header; *q; q++)   /* a control character would end the comment */
        if ((unsigned char)*q < 0x20) *q = '?';
    size_t lh = strlen(header);
    if (lh + 3 < sizeof header) memcpy(header + lh, ")\n", 3);
    return dump_impl(c->keys, c->v, c->n, 0, header);
}

char *sp_config_dump_documented(const SpConfig *c, const char *header) {
    if (c) return dump_impl(c->keys, c->v, c->n, 1, header);
    sp_core_config_register();
    return dump_impl(g_keys, g_defs, g_n, 1, header);
}

SpStatus sp_config_write(const SpConfig *c, const char *path) {
    char *text = sp_config_dump(c);
    if (!text) SP_FAIL(SP_ENOMEM, "out of memory writing config '%s'", path);
    size_t lp = strlen(path);
    char *tmp = malloc(lp + 8);
    if (!tmp) {
        free(text);
        SP_FAIL(SP_ENOMEM, "out of memory writing config '%s'", path);
    }
    snprintf(tmp, lp + 8, "%s.tmp", path);
    SpStatus rc = SP_OK;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "cannot create '%s': %s", tmp, strerror(errno));
    } else {
        size_t n = strlen(text);
        int bad = fwrite(text, 1, n, f) != n;
        bad |= fflush(f) != 0;
        bad |= fsync(fileno(f)) != 0;
        int e = errno;
        bad |= fclose(f) != 0;
        if (bad) {
            unlink(tmp);
            rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "writing '%s' failed: %s", path,
                              strerror(e ? e : errno));
        } else if (rename(tmp, path) != 0) {
            e = errno;
            unlink(tmp);
            rc = sp_error_set(SP_EIO, __FILE__, __LINE__, "cannot rename '%s' to '%s': %s", tmp,
                              path, strerror(e));
        }
    }
    free(tmp);
    free(text);
    return rc;
}
