/* sp_config.h - libconfig files with a schema.
 *
 * Every module registers the keys it owns (a static SpCfgKey table) before a
 * config is loaded:
 *   core: optim.*, train.seed, train.threads       (sp_core_config_register)
 *   data: data.*                                   (data_config_register)
 *   augment: augment.*                             (augment_config_register)
 *   encoder: encoder.*                             (encoder_config_register)
 *   pretext: pretext.*, the rest of train.*        (pretext_config_register)
 *   linear_eval: linear_eval.*, supervised.*, sweep.* (linear_eval_config_register)
 * Registration is idempotent. Keys are dotted paths; in the file they are
 * nested groups: `optim = { lr = 0.15; };` is key "optim.lr".
 *
 * Loading fails with SP_ECONFIG and a one-line message naming the file (and
 * line where libconfig reports one) and the key for: syntax errors, unknown
 * keys, wrong types (an integer is accepted where a float is expected, never
 * the reverse), values out of range or not among the choices, and a missing
 * or unreadable file. `--set key=value` overrides are validated the same way.
 * Every key has a default, so a file only lists what it changes.
 */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdint.h>

#include "sp_error.h"

typedef enum {
    SP_CFG_INT = 0,
    SP_CFG_FLOAT,
    SP_CFG_BOOL,
    SP_CFG_STRING,
    SP_CFG_INT_LIST,
    SP_CFG_FLOAT_LIST,
    SP_CFG_STRING_LIST
} SpCfgType;

typedef struct {
    const char *key;      /* "optim.lr" */
    SpCfgType type;
    const char *def;      /* default in libconfig syntax: "0.15", "\"cosine\"", "[7, 5, 3]", "true" */
    double min, max;      /* inclusive range for numbers and list elements; min > max: unchecked;
                           * min = DBL_TRUE_MIN means "> 0" (shown as "(0, max]") */
    const char *choices;  /* strings: "sgd|adam|adamw" (NULL: any string) */
    const char *doc;      /* one line, shown by `specssl config --help` and in demo.cfg */
} SpCfgKey;

typedef struct SpConfig SpConfig;

void sp_config_register(const SpCfgKey *keys, int n);
void sp_core_config_register(void);
/* All registered keys (for docs and tests). */
const SpCfgKey *sp_config_keys(int *n);

/* path NULL: defaults only. sets: "section.key=value" strings (value in
 * libconfig syntax; a bare word is taken as a string for string keys). */
SpStatus sp_config_load(SpConfig **out, const char *path, const char *const *sets, int nsets);
/* Parse config text (e.g. stored in a checkpoint); origin names it in errors. */
SpStatus sp_config_from_text(SpConfig **out, const char *text, const char *origin);
SpStatus sp_config_set(SpConfig *c, const char *assignment);
void sp_config_free(SpConfig *c);

/* Typed getters. Asking for an unregistered key or the wrong type is a bug
 * (aborts with a message). */
int64_t sp_cfg_int(const SpConfig *c, const char *key);
double sp_cfg_float(const SpConfig *c, const char *key);
int sp_cfg_bool(const SpConfig *c, const char *key);
const char *sp_cfg_str(const SpConfig *c, const char *key);   /* valid until sp_config_free */
int sp_cfg_list_len(const SpConfig *c, const char *key);
int64_t sp_cfg_int_at(const SpConfig *c, const char *key, int i);
double sp_cfg_float_at(const SpConfig *c, const char *key, int i);
const char *sp_cfg_str_at(const SpConfig *c, const char *key, int i);
/* Where the value came from: "default", the file name, or "--set". */
const char *sp_cfg_origin(const SpConfig *c, const char *key);

/* Effective config as libconfig text (all keys, nested groups, C locale).
 * Returns malloc'ed text. */
char *sp_config_dump(const SpConfig *c);
/* The same with each key's doc line, type and range as a comment above it
 * (`specssl config --defaults`, configs/demo.cfg). c NULL: the registered
 * defaults. header (may be NULL) is copied verbatim first. Malloc'ed. */
char *sp_config_dump_documented(const SpConfig *c, const char *header);
/* Atomic write of sp_config_dump to path. */
SpStatus sp_config_write(const SpConfig *c, const char *path);
/* The config file the user passed (or "" for defaults). */
const char *sp_config_path(const SpConfig *c);

#endif
