/* test_config: libconfig loading against the key schema (core/sp_config.h):
 * defaults, file and --set overrides, every error class with a message that
 * names the file:line and the key, and the dump -> load round trip. */
#include <float.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sp_config.h"
#include "sp_test.h"

/* A module-like table exercising lists, nesting and string choices. */
static const SpCfgKey k_test_keys[] = {
    {"testmod.kernels", SP_CFG_INT_LIST, "[7, 5, 3]", 1, 99, NULL, "kernel widths"},
    {"testmod.weights", SP_CFG_FLOAT_LIST, "[0.5, 0.25]", 0, 10, NULL, "loss weights"},
    {"testmod.names", SP_CFG_STRING_LIST, "[\"a\", \"b\"]", 1, 0, "a|b|c", "names"},
    {"testmod.empty", SP_CFG_INT_LIST, "[]", 1, 0, NULL, "empty by default"},
    {"testmod.deep.level", SP_CFG_INT, "3", -5, 5, NULL, "a key three levels deep"},
    {"testmod.deep.label", SP_CFG_STRING, "\"x\"", 1, 0, NULL, "any string"},
    {"testmod.ratio", SP_CFG_FLOAT, "0.5", 1, 0, NULL, "unchecked float"},
};

static void register_test_keys(void) {
    sp_core_config_register();
    sp_config_register(k_test_keys, (int)(sizeof k_test_keys / sizeof k_test_keys[0]));
}

static const char *write_cfg(const char *name, const char *text) {
    static char path[4][512];
    static int k = 0;
    k = (k + 1) & 3;
    snprintf(path[k], sizeof path[k], "%s/%s", sp_tmpdir(), name);
    FILE *f = fopen(path[k], "w");
    ck_assert_msg(f != NULL, "cannot create %s", path[k]);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path[k];
}

/* Load path, expect SP_ECONFIG and a message containing every needle. */
static void expect_load_error(const char *path, const char *const *sets, int nsets,
                              const char *const *needles) {
    SpConfig *c = (SpConfig *)0x1;
    SpStatus rc = sp_config_load(&c, path, sets, nsets);
    const char *msg = sp_error_message();
    ck_assert_msg(rc == SP_ECONFIG, "expected SP_ECONFIG, got %d (%s)", rc, msg);
    ck_assert_msg(c == NULL, "config must be NULL on error");
    for (int i = 0; needles[i]; i++)
        ck_assert_msg(strstr(msg, needles[i]) != NULL, "message '%s' lacks '%s'", msg, needles[i]);
}

/* ------------------------------------------------------------ defaults */

START_TEST(defaults_and_origins) {
    register_test_keys();
    SpConfig *c = NULL;
    ck_assert_int_eq(sp_config_load(&c, NULL, NULL, 0), SP_OK);
    ck_assert(sp_cfg_float(c, "optim.lr") == 0.15);
    ck_assert_str_eq(sp_cfg_str(c, "optim.name"), "sgd");
    ck_assert(sp_cfg_float(c, "optim.momentum") == 0.9);
    ck_assert(sp_cfg_float(c, "optim.weight_decay") == 1e-4);
    ck_assert_int_eq(sp_cfg_bool(c, "optim.nesterov"), 0);
    ck_assert(sp_cfg_float(c, "optim.eps") == 1e-8);
    ck_assert_str_eq(sp_cfg_str(c, "optim.schedule"), "cosine");
    ck_assert_int_eq(sp_cfg_int(c, "optim.warmup_epochs"), 10);
    ck_assert(sp_cfg_float(c, "optim.warmup_from") == 0.01);
    ck_assert_int_eq(sp_cfg_int(c, "train.seed"), 8);
    ck_assert_int_eq(sp_cfg_int(c, "train.threads"), 0);
    ck_assert_int_eq(sp_cfg_bool(c, "reference_quirks"), 0);
    ck_assert_int_eq(sp_cfg_list_len(c, "testmod.kernels"), 3);
    ck_assert_int_eq(sp_cfg_int_at(c, "testmod.kernels", 2), 3);
    ck_assert(sp_cfg_float_at(c, "testmod.weights", 1) == 0.25);
    ck_assert_str_eq(sp_cfg_str_at(c, "testmod.names", 1), "b");
    ck_assert_int_eq(sp_cfg_list_len(c, "testmod.empty"), 0);
    ck_assert_str_eq(sp_cfg_origin(c, "optim.lr"), "default");
    ck_assert_str_eq(sp_config_path(c), "");
    sp_config_free(c);
}
END_TEST

START_TEST(registration_is_idempotent) {
    register_test_keys();
    int n1, n2;
    sp_config_keys(&n1);
    register_test_keys();
    sp_core_config_register();
    const SpCfgKey *k = sp_config_keys(&n2);
    ck_assert_int_eq(n1, n2);
    int seen_lr = 0;
    for (int i = 0; i < n2; i++) seen_lr += strcmp(k[i].key, "optim.lr") == 0;
    ck_assert_int_eq(seen_lr, 1);
}
END_TEST

/* ------------------------------------------------------------ overrides */

START_TEST(file_overrides) {
    register_test_keys();
    const char *p = write_cfg("ok.cfg",
                              "# comment\n"
                              "optim = { lr = 0.05; name = \"adam\"; warmup_epochs = 0; };\n"
                              "train : { seed = 3000000000; }  // big seed without L suffix\n"
                              "testmod = { kernels = [9, 1]; weights = (1, 2.5); deep = { level = -5; }; };\n"
                              "reference_quirks = true;\n");
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, p, NULL, 0) == SP_OK, "%s", sp_error_message());
    ck_assert(sp_cfg_float(c, "optim.lr") == 0.05);
    ck_assert_str_eq(sp_cfg_str(c, "optim.name"), "adam");
    ck_assert_int_eq(sp_cfg_int(c, "optim.warmup_epochs"), 0);
    ck_assert(sp_cfg_int(c, "train.seed") == 3000000000LL);
    ck_assert_int_eq(sp_cfg_list_len(c, "testmod.kernels"), 2);
    ck_assert_int_eq(sp_cfg_int_at(c, "testmod.kernels", 0), 9);
    ck_assert(sp_cfg_float_at(c, "testmod.weights", 0) == 1.0);   /* int accepted in a float list */
    ck_assert(sp_cfg_float_at(c, "testmod.weights", 1) == 2.5);
    ck_assert_int_eq(sp_cfg_int(c, "testmod.deep.level"), -5);
    ck_assert_int_eq(sp_cfg_bool(c, "reference_quirks"), 1);
    ck_assert(sp_cfg_float(c, "optim.momentum") == 0.9);          /* untouched */
    ck_assert_str_eq(sp_cfg_origin(c, "optim.lr"), p);
    ck_assert_str_eq(sp_cfg_origin(c, "optim.momentum"), "default");
    ck_assert_str_eq(sp_config_path(c), p);
    sp_config_free(c);
}
END_TEST

START_TEST(set_overrides) {
    register_test_keys();
    const char *p = write_cfg("base.cfg", "optim = { lr = 0.05; };\n");
    const char *sets[] = {"optim.lr=0.01",           "optim.name=adamw",
                          "testmod.deep.label=\"quoted value\"", " train.seed = 12 ",
                          "testmod.kernels=[1,2,5]", "testmod.names=[\"c\"]",
                          "optim.nesterov=true",     "testmod.deep.level=-2",
                          "testmod.ratio=3"};
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, p, sets, 9) == SP_OK, "%s", sp_error_message());
    ck_assert(sp_cfg_float(c, "optim.lr") == 0.01);
    ck_assert_str_eq(sp_cfg_str(c, "optim.name"), "adamw");
    ck_assert_str_eq(sp_cfg_str(c, "testmod.deep.label"), "quoted value");
    ck_assert_int_eq(sp_cfg_int(c, "train.seed"), 12);
    ck_assert_int_eq(sp_cfg_list_len(c, "testmod.kernels"), 3);
    ck_assert_int_eq(sp_cfg_int_at(c, "testmod.kernels", 2), 5);
    ck_assert_str_eq(sp_cfg_str_at(c, "testmod.names", 0), "c");
    ck_assert_int_eq(sp_cfg_bool(c, "optim.nesterov"), 1);
    ck_assert_int_eq(sp_cfg_int(c, "testmod.deep.level"), -2);
    ck_assert(sp_cfg_float(c, "testmod.ratio") == 3.0);
    ck_assert_str_eq(sp_cfg_origin(c, "optim.lr"), "--set");
    /* sp_config_set on a loaded config, bare word with a path-like value */
    ck_assert_int_eq(sp_config_set(c, "testmod.deep.label=/entry/data/data"), SP_OK);
    ck_assert_str_eq(sp_cfg_str(c, "testmod.deep.label"), "/entry/data/data");
    sp_config_free(c);
}
END_TEST

START_TEST(set_errors) {
    register_test_keys();
    SpConfig *c = NULL;
    ck_assert_int_eq(sp_config_load(&c, NULL, NULL, 0), SP_OK);
    ck_assert_int_eq(sp_config_set(c, "optim.lr"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "key=value"));
    ck_assert_int_eq(sp_config_set(c, "optim.lrr=0.1"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "'optim.lrr'"));
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "did you mean 'optim.lr'"));
    ck_assert_int_eq(sp_config_set(c, "train.lr=0.1"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "did you mean 'optim.lr'"));
    ck_assert_int_eq(sp_config_set(c, "optim=1"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "section"));
    ck_assert_int_eq(sp_config_set(c, "optim.lr=fast"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "optim.lr"));
    ck_assert_int_eq(sp_config_set(c, "optim.lr=-0.1"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "out of range"));
    ck_assert_int_eq(sp_config_set(c, "testmod.kernels=[1,"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "testmod.kernels"));
    ck_assert_int_eq(sp_config_set(c, "optim.warmup_epochs=2.5"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "optim.warmup_epochs"));
    ck_assert_int_eq(sp_config_set(c, "optim.name=rmsprop"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "sgd|adam|adamw"));
    ck_assert_int_eq(sp_config_set(c, "optim.lr=1; optim = 2"), SP_ECONFIG);
    ck_assert_int_eq(sp_config_set(c, "optim.nesterov=yes"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "true/false"));
    /* nothing changed by the failed sets */
    ck_assert(sp_cfg_float(c, "optim.lr") == 0.15);
    ck_assert_str_eq(sp_cfg_str(c, "optim.name"), "sgd");
    sp_config_free(c);
    /* through sp_config_load: the message names the --set */
    const char *sets[] = {"optim.momentum=2"};
    const char *needles[] = {"--set optim.momentum=2", "'optim.momentum'", "2", "[0, 1]", NULL};
    expect_load_error(NULL, sets, 1, needles);
}
END_TEST

/* --------------------------------------------------------------- errors */

START_TEST(unknown_key_names_file_line_and_suggests) {
    register_test_keys();
    const char *p = write_cfg("unknown.cfg", "optim = {\n  lr = 0.1;\n  lrr = 0.2;\n};\n");
    char fl[600];
    snprintf(fl, sizeof fl, "%s:3", p);
    const char *needles[] = {fl, "unknown key 'optim.lrr'", "did you mean 'optim.lr'", NULL};
    expect_load_error(p, NULL, 0, needles);
}
END_TEST

START_TEST(unknown_section_and_top_level) {
    register_test_keys();
    const char *p = write_cfg("section.cfg", "\noptm = { lr = 0.1; };\n");
    char fl[600];
    snprintf(fl, sizeof fl, "%s:2", p);
    const char *needles[] = {fl, "'optm.lr'", "did you mean 'optim.lr'", NULL};
    expect_load_error(p, NULL, 0, needles);
    const char *q = write_cfg("top.cfg", "zzzzzz_nothing_like_it = 1;\n");
    const char *needles2[] = {q, "unknown key 'zzzzzz_nothing_like_it'", NULL};
    expect_load_error(q, NULL, 0, needles2);
    ck_assert_ptr_null(strstr(sp_error_message(), "did you mean"));
    /* a section given as a scalar */
    const char *r = write_cfg("scalar.cfg", "optim = 3;\n");
    const char *needles3[] = {r, "'optim'", "section", NULL};
    expect_load_error(r, NULL, 0, needles3);
}
END_TEST

START_TEST(wrong_type) {
    register_test_keys();
    const char *p = write_cfg("type.cfg", "optim = { lr = \"fast\"; };\n");
    const char *needles[] = {p, ":1", "'optim.lr'", "float", "string", NULL};
    expect_load_error(p, NULL, 0, needles);
    const char *q = write_cfg("type2.cfg", "optim = { nesterov = 1; };\n");
    const char *needles2[] = {"'optim.nesterov'", "bool", "int", NULL};
    expect_load_error(q, NULL, 0, needles2);
    const char *r = write_cfg("type3.cfg", "testmod = { kernels = 7; };\n");
    const char *needles3[] = {"'testmod.kernels'", "list of int", NULL};
    expect_load_error(r, NULL, 0, needles3);
    const char *s = write_cfg("type4.cfg", "testmod = { kernels = [1.5, 2.5]; };\n");
    const char *needles4[] = {"'testmod.kernels'[0]", "an int", "a float", NULL};
    expect_load_error(s, NULL, 0, needles4);
    const char *t = write_cfg("type5.cfg", "testmod = { names = (\"a\", 3); };\n");
    const char *needles5[] = {"'testmod.names'[1]", "string", NULL};
    expect_load_error(t, NULL, 0, needles5);
    const char *u = write_cfg("type6.cfg", "optim = { lr = { x = 1; }; };\n");
    const char *needles6[] = {"'optim.lr'", "group", NULL};
    expect_load_error(u, NULL, 0, needles6);
}
END_TEST

START_TEST(float_for_int_refused_int_for_float_accepted) {
    register_test_keys();
    const char *p = write_cfg("f4i.cfg", "optim = { warmup_epochs = 5.0; };\n");
    const char *needles[] = {p, "'optim.warmup_epochs'", "expects an int", "a float", NULL};
    expect_load_error(p, NULL, 0, needles);
    const char *q = write_cfg("i4f.cfg", "optim = { lr = 1; momentum = 0; };\n");
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, q, NULL, 0) == SP_OK, "%s", sp_error_message());
    ck_assert(sp_cfg_float(c, "optim.lr") == 1.0);
    ck_assert(sp_cfg_float(c, "optim.momentum") == 0.0);
    sp_config_free(c);
}
END_TEST

START_TEST(out_of_range) {
    register_test_keys();
    const char *p = write_cfg("range.cfg", "optim = { momentum = 1.5; };\n");
    const char *needles[] = {p, "'optim.momentum'", "1.5", "out of range [0, 1]", NULL};
    expect_load_error(p, NULL, 0, needles);
    const char *q = write_cfg("lr0.cfg", "optim = { lr = 0.0; };\n");
    const char *needles2[] = {"'optim.lr'", "= 0 ", "(0, 1000]", NULL};
    expect_load_error(q, NULL, 0, needles2);
    const char *r = write_cfg("lrneg.cfg", "optim = { lr = -0.1; };\n");
    const char *needles3[] = {"'optim.lr'", "-0.1", NULL};
    expect_load_error(r, NULL, 0, needles3);
    const char *s = write_cfg("elem.cfg", "testmod = { kernels = [3, 100]; };\n");
    const char *needles4[] = {"'testmod.kernels'[1]", "100", "[1, 99]", NULL};
    expect_load_error(s, NULL, 0, needles4);
    const char *t = write_cfg("int.cfg", "testmod = { deep = { level = 6; }; };\n");
    const char *needles5[] = {"'testmod.deep.level'", "6", "[-5, 5]", NULL};
    expect_load_error(t, NULL, 0, needles5);
}
END_TEST

START_TEST(bad_choice) {
    register_test_keys();
    const char *p = write_cfg("choice.cfg", "optim = { schedule = \"linear\"; };\n");
    const char *needles[] = {p, "'optim.schedule'", "\"linear\"", "cosine|constant", NULL};
    expect_load_error(p, NULL, 0, needles);
    const char *q = write_cfg("choice2.cfg", "testmod = { names = [\"a\", \"d\"]; };\n");
    const char *needles2[] = {"'testmod.names'[1]", "\"d\"", "a|b|c", NULL};
    expect_load_error(q, NULL, 0, needles2);
}
END_TEST

START_TEST(syntax_error_has_file_line) {
    register_test_keys();
    const char *p = write_cfg("syntax.cfg", "optim = {\n  lr = 0.1;\n  momentum = = 0.5;\n};\n");
    char fl[600];
    snprintf(fl, sizeof fl, "%s:3:", p);
    const char *needles[] = {fl, "syntax error", NULL};
    expect_load_error(p, NULL, 0, needles);
    const char *q = write_cfg("dup.cfg", "optim = { lr = 0.1; lr = 0.2; };\n");
    const char *needles2[] = {q, ":1:", "duplicate", NULL};
    expect_load_error(q, NULL, 0, needles2);
    const char *r = write_cfg("mixed.cfg", "testmod = {\n weights = [1, 2.5]; };\n");
    const char *needles3[] = {r, ":2:", "mismatched", "hint", NULL};
    expect_load_error(r, NULL, 0, needles3);
    /* the same in a list ( ... ) is fine: ints are accepted as floats */
    const char *t = write_cfg("mixedlist.cfg", "testmod = {\n weights = (1, 2.5); };\n");
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, t, NULL, 0) == SP_OK, "%s", sp_error_message());
    sp_config_free(c);
}
END_TEST

START_TEST(missing_and_unreadable_files) {
    register_test_keys();
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.cfg", sp_tmpdir());
    const char *needles[] = {path, "No such file", NULL};
    expect_load_error(path, NULL, 0, needles);
    const char *needles2[] = {sp_tmpdir(), "not a regular file", NULL};
    expect_load_error(sp_tmpdir(), NULL, 0, needles2);
    const char *p = write_cfg("binary.cfg", "x");
    FILE *f = fopen(p, "wb");
    const char bytes[] = {'o', 'p', 0, 1, 2};
    fwrite(bytes, 1, sizeof bytes, f);
    fclose(f);
    const char *needles3[] = {p, NULL};
    expect_load_error(p, NULL, 0, needles3);
    /* an empty file is a valid config: all defaults */
    const char *e = write_cfg("empty.cfg", "");
    SpConfig *c = NULL;
    ck_assert_int_eq(sp_config_load(&c, e, NULL, 0), SP_OK);
    ck_assert(sp_cfg_float(c, "optim.lr") == 0.15);
    sp_config_free(c);
}
END_TEST

START_TEST(include_is_relative_to_the_file) {
    register_test_keys();
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub", sp_tmpdir());
    mkdir(sub, 0755);
    write_cfg("sub/base.cfg", "optim = { lr = 0.02; };\n");
    const char *p = write_cfg("sub/main.cfg", "@include \"base.cfg\"\ntrain = { seed = 5; };\n");
    SpConfig *c = NULL;
    ck_assert_msg(sp_config_load(&c, p, NULL, 0) == SP_OK, "%s", sp_error_message());
    ck_assert(sp_cfg_float(c, "optim.lr") == 0.02);
    ck_assert_int_eq(sp_cfg_int(c, "train.seed"), 5);
    sp_config_free(c);
}
END_TEST

START_TEST(from_text_names_origin) {
    register_test_keys();
    SpConfig *c = NULL;
    ck_assert_int_eq(sp_config_from_text(&c, "optim = { lr = 0.5; };", "ckpt.h5:config"), SP_OK);
    ck_assert(sp_cfg_float(c, "optim.lr") == 0.5);
    ck_assert_str_eq(sp_cfg_origin(c, "optim.lr"), "ckpt.h5:config");
    sp_config_free(c);
    c = NULL;
    ck_assert_int_eq(sp_config_from_text(&c, "\n\noptim = { nope = 1; };", "ckpt.h5:config"),
                     SP_ECONFIG);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "ckpt.h5:config:3"));
    ck_assert_int_eq(sp_config_from_text(&c, "optim = {", "ckpt.h5:config"), SP_ECONFIG);
    ck_assert_ptr_nonnull(strstr(sp_error_message(), "ckpt.h5:config:"));
}
END_TEST

/* ---------------------------------------------------------------- dump */

static void expect_same_values(const SpConfig *a, const SpConfig *b) {
    int n;
    const SpCfgKey *k = sp_config_keys(&n);
    for (int i = 0; i < n; i++) {
        const char *key = k[i].key;
        switch (k[i].type) {
        case SP_CFG_INT: ck_assert_msg(sp_cfg_int(a, key) == sp_cfg_int(b, key), "%s", key); break;
        case SP_CFG_FLOAT:
            ck_assert_msg(sp_cfg_float(a, key) == sp_cfg_float(b, key), "%s: %.17g vs %.17g", key,
                          sp_cfg_float(a, key), sp_cfg_float(b, key));
            break;
        case SP_CFG_BOOL: ck_assert_msg(sp_cfg_bool(a, key) == sp_cfg_bool(b, key), "%s", key); break;
        case SP_CFG_STRING: ck_assert_str_eq(sp_cfg_str(a, key), sp_cfg_str(b, key)); break;
        default: {
            int la = sp_cfg_list_len(a, key);
            ck_assert_msg(la == sp_cfg_list_len(b, key), "%s length", key);
            for (int j = 0; j < la; j++) {
                if (k[i].type == SP_CFG_INT_LIST)
                    ck_assert(sp_cfg_int_at(a, key, j) == sp_cfg_int_at(b, key, j));
                else if (k[i].type == SP_CFG_FLOAT_LIST)
                    ck_assert(sp_cfg_float_at(a, key, j) == sp_cfg_float_at(b, key, j));
                else
                    ck_assert_str_eq(sp_cfg_str_at(a, key, j), sp_cfg_str_at(b, key, j));
            }
        }
        }
    }
}

START_TEST(dump_round_trip) {
    register_test_keys();
    const char *sets[] = {"optim.lr=0.30000000000000004",   /* needs 17 digits */
                          "optim.weight_decay=1e-5",
                          "optim.warmup_from=2",             /* int given for a float */
                          "testmod.deep.label=\"tab\\there \\\"q\\\" back\\\\slash\"",
                          "train.seed=9000000000",
                          "testmod.weights=[1e-7, 3, 0.1]",
                          "testmod.names=[\"c\", \"a\"]",
                          "testmod.ratio=-1e300",
                          "reference_quirks=true"};
    SpConfig *a = NULL, *b = NULL, *d = NULL;
    ck_assert_msg(sp_config_load(&a, NULL, sets, 9) == SP_OK, "%s", sp_error_message());
    ck_assert_str_eq(sp_cfg_str(a, "testmod.deep.label"), "tab\there \"q\" back\\slash");
    char *t1 = sp_config_dump(a);
    ck_assert_ptr_nonnull(t1);
    /* floats keep a decimal point so they read back as floats */
    ck_assert_ptr_nonnull(strstr(t1, "warmup_from = 2.0;"));
    ck_assert_ptr_nonnull(strstr(t1, "weight_decay = 1.0e-05;"));
    ck_assert_ptr_nonnull(strstr(t1, "seed = 9000000000L;"));
    ck_assert_ptr_nonnull(strstr(t1, "optim = {"));
    ck_assert_ptr_nonnull(strstr(t1, "deep = {"));
    ck_assert_msg(sp_config_from_text(&b, t1, "dump") == SP_OK, "%s\n%s", sp_error_message(), t1);
    expect_same_values(a, b);
    char *t2 = sp_config_dump(b);
    /* identical apart from the header line (origin) */
    ck_assert_str_eq(strchr(t1, '\n'), strchr(t2, '\n'));
    /* atomic write + load from the file */
    char path[600];
    snprintf(path, sizeof path, "%s/effective.cfg", sp_tmpdir());
    ck_assert_int_eq(sp_config_write(a, path), SP_OK);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct stat st;
    ck_assert_int_ne(stat(tmp, &st), 0);
    ck_assert_msg(sp_config_load(&d, path, NULL, 0) == SP_OK, "%s", sp_error_message());
    expect_same_values(a, d);
    /* the documented defaults load back and equal the defaults */
    char *doc = sp_config_dump_documented(NULL, "# header\n");
    ck_assert_ptr_nonnull(doc);
    ck_assert_ptr_nonnull(strstr(doc, "# base learning rate"));
    ck_assert_ptr_nonnull(strstr(doc, "(0, 1000]"));
    SpConfig *e = NULL, *dflt = NULL;
    ck_assert_msg(sp_config_from_text(&e, doc, "doc") == SP_OK, "%s", sp_error_message());
    ck_assert_int_eq(sp_config_load(&dflt, NULL, NULL, 0), SP_OK);
    expect_same_values(e, dflt);
    free(doc);
    free(t1);
    free(t2);
    sp_config_free(a);
    sp_config_free(b);
    sp_config_free(d);
    sp_config_free(e);
    sp_config_free(dflt);
}
END_TEST

START_TEST(dump_uses_c_locale) {
    register_test_keys();
    const char *locs[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "C.UTF-8", NULL};
    int set = 0;
    for (int i = 0; locs[i] && !set; i++) set = setlocale(LC_ALL, locs[i]) != NULL;
    /* Whatever locale could be set (maybe only "C"), numbers use '.' both ways. */
    SpConfig *c = NULL, *b = NULL;
    const char *sets[] = {"optim.lr=0.125"};
    ck_assert_int_eq(sp_config_load(&c, NULL, sets, 1), SP_OK);
    ck_assert(sp_cfg_float(c, "optim.lr") == 0.125);
    char *t = sp_config_dump(c);
    ck_assert_ptr_nonnull(strstr(t, "lr = 0.125;"));
    ck_assert_int_eq(sp_config_from_text(&b, t, "dump"), SP_OK);
    ck_assert(sp_cfg_float(b, "optim.lr") == 0.125);
    setlocale(LC_ALL, "C");
    free(t);
    sp_config_free(c);
    sp_config_free(b);
}
END_TEST

START_TEST(getter_wrong_type_aborts) {
    register_test_keys();
    SpConfig *c = NULL;
    ck_assert_int_eq(sp_config_load(&c, NULL, NULL, 0), SP_OK);
    (void)sp_cfg_int(c, "optim.lr");   /* a float read as int: a bug -> abort */
}
END_TEST

START_TEST(getter_unregistered_aborts) {
    register_test_keys();
    SpConfig *c = NULL;
    ck_assert_int_eq(sp_config_load(&c, NULL, NULL, 0), SP_OK);
    (void)sp_cfg_float(c, "optim.nothing");
}
END_TEST

static void teardown(void) { sp_tmpdir_cleanup(); }

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("io");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, defaults_and_origins);
    tcase_add_test(tc, registration_is_idempotent);
    tcase_add_test(tc, file_overrides);
    tcase_add_test(tc, set_overrides);
    tcase_add_test(tc, include_is_relative_to_the_file);
    tcase_add_test(tc, from_text_names_origin);
    tcase_add_test(tc, dump_round_trip);
    tcase_add_test(tc, dump_uses_c_locale);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_checked_fixture(te, NULL, teardown);
    tcase_add_test(te, set_errors);
    tcase_add_test(te, unknown_key_names_file_line_and_suggests);
    tcase_add_test(te, unknown_section_and_top_level);
    tcase_add_test(te, wrong_type);
    tcase_add_test(te, float_for_int_refused_int_for_float_accepted);
    tcase_add_test(te, out_of_range);
    tcase_add_test(te, bad_choice);
    tcase_add_test(te, syntax_error_has_file_line);
    tcase_add_test(te, missing_and_unreadable_files);
    tcase_add_test_raise_signal(te, getter_wrong_type_aborts, SIGABRT);
    tcase_add_test_raise_signal(te, getter_unregistered_aborts, SIGABRT);
    suite_add_tcase(s, te);
    return sp_run_suite(s);
}
