/* test_synth: the Schuetzke benchmark generator against the upstream fixtures
 * (reference/synthetic.md §A11 items 1-6) and the ramp generator's
 * self-checks (§B7, §B8). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp_data.h"
#include "sp_h5.h"
#include "sp_test.h"

/* ck_assert_msg writes a record on every call (slow in loops over millions of
 * values); CHECK only calls it when the condition fails. */
#define CHECK(cond, ...)                              \
    do {                                              \
        int check_ok_ = !!(cond);                     \
        if (!check_ok_) ck_assert_msg(0, __VA_ARGS__); \
    } while (0)

/* ------------------------------------------------------------ fixtures */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open fixture %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

typedef struct {
    char split[8];
    int row, label, npk;
    double sigma;
    int pos[SP_SYNTH_MAXPK + 1];
    double h[SP_SYNTH_MAXPK + 1];
} CsvRow;

/* split,row,label,sigma,positions,heights */
static CsvRow *read_params(const char *name, int *n_out) {
    char *buf = slurp(sp_fixture(name));
    int cap = 1024, n = 0;
    CsvRow *rows = malloc((size_t)cap * sizeof *rows);
    char *save = NULL;
    char *line = strtok_r(buf, "\n", &save);
    CHECK(line && !strncmp(line, "split,row,label,sigma,positions,heights", 39), "%s header", name);
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (n == cap) rows = realloc(rows, (size_t)(cap *= 2) * sizeof *rows);
        CsvRow *r = &rows[n++];
        char *f[6], *s2 = NULL;
        f[0] = strtok_r(line, ",", &s2);
        for (int k = 1; k < 6; k++) f[k] = strtok_r(NULL, ",", &s2);
        CHECK(f[5] != NULL, "%s line %d: 6 fields expected", name, n + 1);
        snprintf(r->split, sizeof r->split, "%s", f[0]);
        r->row = atoi(f[1]);
        r->label = atoi(f[2]);
        r->sigma = strtod(f[3], NULL);
        char *p = f[4], *e;
        r->npk = 0;
        for (long v = strtol(p, &e, 10); e != p; v = strtol(p, &e, 10)) {
            CHECK(r->npk < SP_SYNTH_MAXPK, "r->npk < SP_SYNTH_MAXPK");
            r->pos[r->npk++] = (int)v;
            p = e;
        }
        p = f[5];
        int nh = 0;
        for (double v = strtod(p, &e); e != p; v = strtod(p, &e)) {
            CHECK(nh < SP_SYNTH_MAXPK, "nh < SP_SYNTH_MAXPK");
            r->h[nh++] = v;
            p = e;
        }
        CHECK(nh == r->npk, "%s line %d: %d positions, %d heights", name, n + 1, r->npk, nh);
    }
    free(buf);
    *n_out = n;
    return rows;
}

static void expect_row(const char *what, const CsvRow *want, const SpSynthRow *got) {
    CHECK(got->label == want->label, "%s %s %d: label %d, fixture %d", what, want->split,
                  want->row, got->label, want->label);
    CHECK(got->npk == want->npk, "%s %s %d: %d peaks, fixture %d", what, want->split,
                  want->row, got->npk, want->npk);
    CHECK(got->sigma == want->sigma, "%s %s %d: sigma %.17g, fixture %.17g", what,
                  want->split, want->row, got->sigma, want->sigma);
    for (int k = 0; k < got->npk; k++) {
        CHECK(got->pos[k] == want->pos[k], "%s %s %d peak %d: position %d, fixture %d", what,
                      want->split, want->row, k, got->pos[k], want->pos[k]);
        CHECK(got->h[k] == want->h[k], "%s %s %d peak %d: height %.17g, fixture %.17g", what,
                      want->split, want->row, k, got->h[k], want->h[k]);
    }
}

static double *read_raw(const char *name) {
    char *buf = slurp(sp_fixture(name));
    double *v = malloc(SP_SYNTH_L * sizeof(double));
    char *p = buf, *e;
    for (int i = 0; i < SP_SYNTH_L; i++) {
        v[i] = strtod(p, &e);
        CHECK(e != p, "%s: value %d missing", name, i);
        p = e;
    }
    free(buf);
    return v;
}

/* ------------------------------------------------------- configuration */

START_TEST(embedded_configs) {
    ck_assert_int_eq(synth_num_classes(SP_SYNTH_GENERAL), 500);
    ck_assert_int_eq(synth_num_classes(SP_SYNTH_CHALLENGE), 27);
    int total = 0, hist[11] = {0};
    for (int c = 0; c < 500; c++) {
        SpSynthClass k = synth_class(SP_SYNTH_GENERAL, c);
        ck_assert(k.npk >= 2 && k.npk <= 10);
        total += k.npk;
        hist[k.npk]++;
        double mx = 0;
        for (int i = 0; i < k.npk; i++) {
            ck_assert(k.pos[i] >= 100 && k.pos[i] < 4900);
            if (i) ck_assert(k.pos[i] > k.pos[i - 1]);
            if (k.h[i] > mx) mx = k.h[i];
        }
        ck_assert(mx == 1.0);
    }
    /* §A3 statistics */
    ck_assert_int_eq(total, 1749);
    const int want[11] = {0, 0, 126, 183, 100, 50, 19, 7, 6, 3, 6};
    for (int i = 2; i <= 10; i++) ck_assert_int_eq(hist[i], want[i]);
    SpSynthClass c0 = synth_class(SP_SYNTH_GENERAL, 0);
    ck_assert(c0.pos[0] == 391 && c0.h[0] == 0.424 && c0.h[9] == 0.101);
    total = 0;
    for (int c = 0; c < 27; c++) {
        SpSynthClass k = synth_class(SP_SYNTH_CHALLENGE, c);
        total += k.npk;
        int n1 = 0;
        for (int i = 0; i < k.npk; i++) n1 += k.h[i] == 1.0;
        ck_assert_int_eq(n1, 1);
    }
    ck_assert_int_eq(total, 67);
}
END_TEST

/* ---------------------------------------------------------- parameters */

static void check_train_val(SpSynthSet set, const char *csv, int n_expect, uint64_t stream_end) {
    int n;
    CsvRow *want = read_params(csv, &n);
    CHECK((n) == (n_expect), "n == n_expect");
    const int nc = synth_num_classes(set);
    SpSynthRow *tr = malloc((size_t)nc * 50 * sizeof *tr), *va = malloc((size_t)nc * 10 * sizeof *va);
    SpRng end;
    CHECK(synth_train_val_params(set, tr, va, &end) == SP_OK, "synth_train_val_params(set, tr, va, &end) == SP_OK");
    int ntr = 0, nva = 0;
    for (int i = 0; i < n; i++) {
        /* generation order: per class 50 train then 10 val */
        int c = i / 60, j = i % 60;
        int is_train = j < 50;
        CHECK(!strcmp(want[i].split, is_train ? "train" : "val"), "row %d split", i);
        CHECK((want[i].row) == (is_train ? c * 50 + j : c * 10 + j - 50), "want[i].row == is_train ? c * 50 + j : c * 10 + j - 50");
        if (is_train) {
            expect_row("train/val", &want[i], &tr[want[i].row]);
            ntr++;
        } else {
            expect_row("train/val", &want[i], &va[want[i].row]);
            nva++;
        }
    }
    CHECK((ntr) == (nc * 50), "ntr == nc * 50");
    CHECK((nva) == (nc * 10), "nva == nc * 10");
    /* §A10 stream end: the u32 buffer is empty and the next word is fixed */
    CHECK((end.has_uint32) == (0), "end.has_uint32 == 0");
    uint64_t next = sp_rng_next_u64(&end);
    CHECK(next == stream_end, "next_uint64 after all draws: %llu, expected %llu",
                  (unsigned long long)next, (unsigned long long)stream_end);
    free(want);
    free(tr);
    free(va);
}

START_TEST(general_train_val_params) {
    check_train_val(SP_SYNTH_GENERAL, "schuetzke/general_train_val_params.csv", 30000,
                    8937334490369523836ULL);
    /* §A10 spot values */
    SpSynthRow tr[5];
    SpSynthRow *all = malloc(500 * 50 * sizeof *all);
    synth_train_val_params(SP_SYNTH_GENERAL, all, NULL, NULL);
    memcpy(tr, all, sizeof tr);
    free(all);
    const int pos[10] = {411, 387, 656, 963, 3004, 3283, 3767, 3996, 4228, 4611};
    for (int k = 0; k < 10; k++) ck_assert_int_eq(tr[0].pos[k], pos[k]);
    ck_assert(tr[0].h[0] == 0.44951577777762974 && tr[0].h[9] == 0.08320202913705964);
    ck_assert(tr[2].sigma == 2.008637587296359 && tr[4].sigma == 4.68708127732943);
}
END_TEST

START_TEST(challenge_train_val_params) {
    check_train_val(SP_SYNTH_CHALLENGE, "schuetzke/challenge_train_val_params.csv", 1620,
                    15173196921182276153ULL);
}
END_TEST

static void check_test_params(SpSynthSet set, const char *csv, int n_expect) {
    int n;
    CsvRow *want = read_params(csv, &n);
    CHECK((n) == (n_expect), "n == n_expect");
    SpSynthRow *t = malloc((size_t)n * sizeof *t);
    synth_test_params(set, t);
    for (int i = 0; i < n; i++) {
        CHECK((want[i].row) == (i), "want[i].row == i");
        CHECK(!strcmp(want[i].split, "test"), "row %d split", i);
        expect_row("test", &want[i], &t[i]);
    }
    free(t);
    free(want);
}

START_TEST(general_test_params) {
    check_test_params(SP_SYNTH_GENERAL, "schuetzke/general_test_params.csv", 4500);
}
END_TEST

START_TEST(challenge_test_params) {
    check_test_params(SP_SYNTH_CHALLENGE, "schuetzke/challenge_test_params.csv", 162);
}
END_TEST

/* ---------------------------------------------------------------- rows */

START_TEST(raw_test_row0_bit_exact) {
    double *want = read_raw("schuetzke/general_test_row0_raw.txt");
    SpSynthRow t[9];
    SpSynthRow *all = malloc(4500 * sizeof *all);
    synth_test_params(SP_SYNTH_GENERAL, all);
    memcpy(t, all, sizeof t);
    free(all);
    double y[SP_SYNTH_L];
    synth_blur_row(&t[0], SP_EXP_SVML, y);
    int nz = 0;
    for (int i = 0; i < SP_SYNTH_L; i++) {
        CHECK(y[i] == want[i], "test row 0 [%d]: %.17g, fixture %.17g", i, y[i], want[i]);
        nz += y[i] != 0.0;
    }
    CHECK((nz) == (170), "nz == 170");
    /* §A10: max 0.199474647864745 at 3272 */
    CHECK(y[3272] == 0.199474647864745, "y[3272] == 0.199474647864745");
    /* with the C library's exp the row differs by at most ~1 ulp of the values */
    double z[SP_SYNTH_L];
    synth_blur_row(&t[0], SP_EXP_LIBM, z);
    for (int i = 0; i < SP_SYNTH_L; i++) CHECK(fabs(z[i] - want[i]) <= 1e-15, "fabs(z[i] - want[i]) <= 1e-15");
    free(want);
}
END_TEST

START_TEST(raw_train_row0) {
    double *want = read_raw("schuetzke/general_train_row0_raw.txt");
    SpSynthRow *all = malloc(500 * 50 * sizeof *all);
    synth_train_val_params(SP_SYNTH_GENERAL, all, NULL, NULL);
    double y[SP_SYNTH_L];
    synth_blur_row(&all[0], SP_EXP_LIBM, y);
    double ym = 0, wm = 0, maxdiff = 0;
    int nz = 0;
    for (int i = 0; i < SP_SYNTH_L; i++) {
        double dlt = fabs(y[i] - want[i]);
        if (dlt > maxdiff) maxdiff = dlt;
        CHECK(dlt <= 1e-15, "train row 0 [%d]: %.17g, fixture %.17g", i, y[i], want[i]);
        if (y[i] > ym) ym = y[i];
        if (want[i] > wm) wm = want[i];
        nz += y[i] != 0.0;
    }
    CHECK((nz) == (375), "nz == 375");
    /* float32 of the max-normalised row is identical */
    for (int i = 0; i < SP_SYNTH_L; i++)
        CHECK((float)(y[i] / ym) == (float)(want[i] / wm), "normalised train row 0 [%d]", i);
    /* the generator's float output is that row */
    float *x = malloc((size_t)25000 * SP_SYNTH_L * sizeof(float));
    int32_t *lab = malloc(25000 * sizeof(int32_t));
    CHECK(synth_schuetzke_generate(SP_SYNTH_GENERAL, SP_SPLIT_TRAIN, SP_EXP_LIBM, 1, x, lab) == SP_OK, "synth_schuetzke_generate(SP_SYNTH_GENERAL, SP_SPLIT_TRAIN, SP_EXP_LIBM, 1, x, lab) == SP_OK");
    for (int i = 0; i < SP_SYNTH_L; i++) CHECK(x[i] == (float)(want[i] / wm), "x[i] == (float)(want[i] / wm)");
    CHECK(lab[0] == 0 && lab[49] == 0 && lab[50] == 1 && lab[24999] == 499, "lab[0] == 0 && lab[49] == 0 && lab[50] == 1 && lab[24999] == 499");
    /* val split, raw: rows follow their parameters */
    SpSynthRow *va = malloc(5000 * sizeof *va);
    synth_train_val_params(SP_SYNTH_GENERAL, NULL, va, NULL);
    CHECK(synth_schuetzke_generate(SP_SYNTH_GENERAL, SP_SPLIT_VAL, SP_EXP_LIBM, 0, x, lab) == SP_OK, "generate val");
    for (int r = 0; r < 5000; r += 1234) {
        synth_blur_row(&va[r], SP_EXP_LIBM, y);
        for (int i = 0; i < SP_SYNTH_L; i++)
            CHECK(x[(size_t)r * SP_SYNTH_L + i] == (float)y[i], "val row %d [%d]", r, i);
        CHECK(lab[r] == r / 10, "val label %d", r);
    }
    free(va);
    free(x);
    free(lab);
    free(all);
    free(want);
}
END_TEST

START_TEST(row_checks_all) {
    /* argmax and nonzeros exact, raw_max within 2e-16, raw_sum within 1e-14,
     * for all 25,000 + 5,000 + 4,500 general rows */
    char *buf = slurp(sp_fixture("schuetzke/general_row_checks.csv"));
    SpSynthRow *tr = malloc(25000 * sizeof *tr), *va = malloc(5000 * sizeof *va),
               *te = malloc(4500 * sizeof *te);
    synth_train_val_params(SP_SYNTH_GENERAL, tr, va, NULL);
    synth_test_params(SP_SYNTH_GENERAL, te);
    char *save = NULL;
    char *line = strtok_r(buf, "\n", &save);
    CHECK(!strncmp(line, "split,row,raw_max,argmax,raw_sum,nonzeros", 41), "!strncmp(line, \"split,row,raw_max,argmax,raw_sum,nonzeros\", 41)");
    int n = 0, bad_bits_max = 0;
    double worst_max = 0, worst_sum = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char split[8];
        int row, am, nzw;
        double rmax, rsum;
        char *c1 = strchr(line, ',');
        CHECK(c1 != NULL, "c1 != NULL");
        size_t sl = (size_t)(c1 - line);
        CHECK(sl < sizeof split, "sl < sizeof split");
        memcpy(split, line, sl);
        split[sl] = '\0';
        CHECK(sscanf(c1 + 1, "%d,%lf,%d,%lf,%d", &row, &rmax, &am, &rsum, &nzw) == 5, "sscanf(c1 + 1, \"%%d,%%lf,%%d,%%lf,%%d\", &row, &rmax, &am, &rsum, &nzw) == 5");
        const SpSynthRow *r = !strcmp(split, "train") ? &tr[row] : !strcmp(split, "val") ? &va[row] : &te[row];
        double y[SP_SYNTH_L];
        synth_blur_row(r, split[1] == 'e' ? SP_EXP_SVML : SP_EXP_LIBM, y);
        double m = y[0];
        int a = 0, nz = 0;
        for (int i = 0; i < SP_SYNTH_L; i++) {
            if (y[i] > m) {
                m = y[i];
                a = i;
            }
            nz += y[i] != 0.0;
        }
        double s = synth_pairwise_sum(y, SP_SYNTH_L);
        CHECK(a == am, "%s %d: argmax %d, fixture %d", split, row, a, am);
        CHECK(nz == nzw, "%s %d: %d non-zeros, fixture %d", split, row, nz, nzw);
        CHECK(fabs(m - rmax) <= 2e-16, "%s %d: max %.17g, fixture %.17g", split, row, m, rmax);
        CHECK(fabs(s - rsum) <= 1e-14, "%s %d: sum %.17g, fixture %.17g", split, row, s, rsum);
        if (split[1] == 'e') {
            /* test rows use numpy's SVML exp values: bit-exact */
            CHECK(m == rmax && s == rsum, "test %d: not bit-exact", row);
        }
        bad_bits_max += m != rmax;
        if (fabs(m - rmax) > worst_max) worst_max = fabs(m - rmax);
        if (fabs(s - rsum) > worst_sum) worst_sum = fabs(s - rsum);
        n++;
    }
    CHECK((n) == (34500), "n == 34500");
    fprintf(stderr, "row checks: 34500 rows, %d maxima differ in the last bits (max |d| %.3g), "
            "max |d sum| %.3g\n", bad_bits_max, worst_max, worst_sum);
    free(buf);
    free(tr);
    free(va);
    free(te);
}
END_TEST

/* ---------------------------------------------------------------- ramp */

START_TEST(ramp_seeding_and_draws) {
    SpRng r;
    synth_ramp_seed(&r, 2024, 0);
    ck_assert(r.s_hi == 0xa7d1dfd9929406f1ULL && r.s_lo == 0x41a780367a5134e0ULL);
    ck_assert(r.inc_hi == 0 && r.inc_lo == 1);
    ck_assert(sp_rng_next_u64(&r) == 4995514941711254095ULL);
    ck_assert(sp_rng_next_u64(&r) == 11395503902389594291ULL);
    ck_assert(sp_rng_next_u64(&r) == 8869035959038418230ULL);
    synth_ramp_seed(&r, 2024, 1);
    ck_assert(r.s_hi == 0xee93b9e3d220c239ULL && r.s_lo == 0xc8b33effb9eb216cULL);
    ck_assert(r.inc_hi == 0 && r.inc_lo == 3);
    ck_assert(sp_rng_next_u64(&r) == 15291903424327330376ULL);

    SpRampOptions o;
    synth_ramp_default(&o);
    SpRampParams p;
    synth_ramp_seed(&r, 2024, 0);
    synth_ramp_params(&r, 0, &o, &p);
    ck_assert(!p.fast && p.n_frames == 654);
    ck_assert(p.pi1 == 0.30942012035015137);
    ck_assert(p.pi2 == 0.69846331221856595);
    ck_assert(p.gamma0 == 0.049788373686191205);
    ck_assert(p.eta == 0.60986777626201372);
    ck_assert(p.c[0] == 0.28411305731625669 && p.c[1] == 0.046447613553921852 &&
              p.c[2] == 0.097979011966270527 && p.c[3] == -0.012058954989518603);
    ck_assert(p.delta == 0.0057078874447719363);
    /* gamma goes through exp: equal up to the C library */
    ck_assert(fabs(p.gamma - 0.91239977337961875) <= 2e-16);
    /* the first frame's intensity scaling follows the 66 per-ramp doubles */
    double A = sp_rng_uniform(&r, 0.8, 1.2);
    ck_assert_msg(A == 1.1823149233061896, "A of frame 0: %.17g", A);
    /* ramp 1 (fast): the drawn centres (the fast shift of +0.05 is added after) */
    synth_ramp_seed(&r, 2024, 1);
    synth_ramp_params(&r, 1, &o, &p);
    ck_assert(p.fast && p.n_frames == 218 && p.w1 == 0.05 * 1.5);
    ck_assert(fabs(p.pi1 - 0.05 - 0.3255173341928238) < 1e-15);
    ck_assert(fabs(p.pi2 - 0.05 - 0.69781511556081) < 1e-15);
    ck_assert(fabs(p.gamma - 1.14064090098585) < 1e-14);
    /* A (200) at p = 0: 12.872 deg, channel ~1486 */
    double tth = synth_ramp_peak_2theta(1, 0.0);
    ck_assert(fabs(tth - 12.872) < 5e-4);
    ck_assert_int_eq((int)floor((tth - 4.0) / 24.0 * 4019 + 0.5), 1486);
    /* peaks move to higher angles under compression */
    ck_assert(synth_ramp_peak_2theta(1, 0.5) > tth);
}
END_TEST

START_TEST(ramp_defaults_self_checks) {
    SpRampOptions o;
    synth_ramp_default(&o);
    SpRampData d;
    CHECK(synth_ramp_generate(&o, &d) == SP_OK, "synth_ramp_generate(&o, &d) == SP_OK");
    CHECK((d.n) == (872), "d.n == 872");
    CHECK((d.L) == (4020), "d.L == 4020");
    int cnt[2][3] = {{0}}, bl[5][3] = {{0}}, binc[5] = {0}, mix = 0;
    for (int64_t i = 0; i < d.n; i++) {
        CHECK(d.ramp[i] == (i < 654 ? 0 : 1), "d.ramp[i] == (i < 654 ? 0 : 1)");
        CHECK(d.frame[i] == (i < 654 ? i : i - 654), "d.frame[i] == (i < 654 ? i : i - 654)");
        CHECK(d.fast[i] == (i >= 654), "d.fast[i] == (i >= 654)");
        cnt[d.ramp[i]][d.labels[i]]++;
        if (d.ramp[i] == 0) {
            bl[d.extvar[i]][d.labels[i]]++;
            binc[d.extvar[i]]++;
        }
        double f[3];
        f[0] = d.fractions[3 * i];
        f[1] = d.fractions[3 * i + 1];
        f[2] = d.fractions[3 * i + 2];
        CHECK(fabs(f[0] + f[1] + f[2] - 1.0) < 1e-6, "fractions of row %lld", (long long)i);
        float mx = d.fractions[3 * i];
        for (int c = 1; c < 3; c++)
            if (d.fractions[3 * i + c] > mx) mx = d.fractions[3 * i + c];
        mix += mx < 1.0f;
        CHECK(d.extvar[i] >= 0 && d.extvar[i] <= 4, "d.extvar[i] >= 0 && d.extvar[i] <= 4");
    }
    CHECK(cnt[0][0] == 181 && cnt[0][1] == 260 && cnt[0][2] == 213, "cnt[0][0] == 181 && cnt[0][1] == 260 && cnt[0][2] == 213");
    CHECK(cnt[1][0] == 92 && cnt[1][1] == 77 && cnt[1][2] == 49, "cnt[1][0] == 92 && cnt[1][1] == 77 && cnt[1][2] == 49");
    CHECK((mix) == (194), "mix == 194");
    const int wb[5] = {131, 131, 130, 131, 131};
    const int wt[5][3] = {{131, 0, 0}, {50, 81, 0}, {0, 130, 0}, {0, 49, 82}, {0, 0, 131}};
    for (int b = 0; b < 5; b++) {
        CHECK((binc[b]) == (wb[b]), "binc[b] == wb[b]");
        for (int c = 0; c < 3; c++)
            CHECK(bl[b][c] == wt[b][c], "bin %d label %d: %d, expected %d", b, c, bl[b][c], wt[b][c]);
    }
    /* fractions in double sum to 1 */
    SpRng r;
    SpRampParams rp;
    synth_ramp_seed(&r, 2024, 0);
    synth_ramp_params(&r, 0, &o, &rp);
    for (int i = 0; i < 654; i++) {
        double f[3];
        synth_ramp_fractions(&rp, d.p[i], f);
        CHECK(fabs(f[0] + f[1] + f[2] - 1.0) <= 2.3e-16, "fabs(f[0] + f[1] + f[2] - 1.0) <= 2.3e-16");
        CHECK(f[0] >= 0 && f[1] >= 0 && f[2] >= 0, "f[0] >= 0 && f[1] >= 0 && f[2] >= 0");
    }
    /* every value finite and >= 0 */
    for (size_t i = 0; i < (size_t)d.n * d.L; i++) CHECK(isfinite(d.x[i]) && d.x[i] >= 0.0f, "isfinite(d.x[i]) && d.x[i] >= 0.0f");
    /* axis */
    CHECK(d.axis[0] == 4.0 && d.axis[4019] == 28.0, "d.axis[0] == 4.0 && d.axis[4019] == 28.0");
    /* frame sums (libm-dependent, ~1e-9) */
    double s0 = 0, s1 = 0;
    for (int j = 0; j < d.L; j++) {
        s0 += d.x[j];
        s1 += d.x[(size_t)653 * d.L + j];
    }
    CHECK(fabs(s0 - 3.08679e6) <= 2e-6 * 3.08679e6, "frame 0 sum %.9g", s0);
    CHECK(fabs(s1 - 2.65311e6) <= 2e-6 * 2.65311e6, "frame 653 sum %.9g", s1);
    /* the A (200) peak dominates frame 0 near channel 1486 */
    int am = 0;
    for (int j = 1; j < d.L; j++)
        if (d.x[j] > d.x[am]) am = j;
    CHECK(abs(am - 1486) <= 3, "frame 0 argmax channel %d", am);
    synth_ramp_free(&d);
}
END_TEST

START_TEST(ramp_determinism) {
    SpRampOptions o;
    synth_ramp_default(&o);
    o.ramps = 3;
    o.frames_slow = 40;
    o.frames_fast = 17;
    o.L = 301;
    SpRampData a, b, c;
    /* same seed -> identical bytes, with 1 and 2 threads */
    omp_set_num_threads(1);
    CHECK(synth_ramp_generate(&o, &a) == SP_OK, "synth_ramp_generate(&o, &a) == SP_OK");
    omp_set_num_threads(2);
    CHECK(synth_ramp_generate(&o, &b) == SP_OK, "synth_ramp_generate(&o, &b) == SP_OK");
    CHECK((a.n) == (40 + 17 + 40), "a.n == 40 + 17 + 40");
    CHECK(!memcmp(a.x, b.x, (size_t)a.n * a.L * sizeof(float)), "!memcmp(a.x, b.x, (size_t)a.n * a.L * sizeof(float))");
    CHECK(!memcmp(a.labels, b.labels, (size_t)a.n * 4), "!memcmp(a.labels, b.labels, (size_t)a.n * 4)");
    CHECK(!memcmp(a.t, b.t, (size_t)a.n * 8), "!memcmp(a.t, b.t, (size_t)a.n * 8)");
    synth_ramp_free(&b);
    /* ramp r is the same alone or after other ramps */
    for (int r = 1; r <= 2; r++) {
        SpRampOptions one = o;
        one.first_ramp = r;
        one.ramps = 1;
        CHECK(synth_ramp_generate(&one, &c) == SP_OK, "synth_ramp_generate(&one, &c) == SP_OK");
        int64_t off = r == 1 ? 40 : 57;
        CHECK((c.n) == (r == 1 ? 17 : 40), "c.n == r == 1 ? 17 : 40");
        CHECK(!memcmp(c.x, a.x + (size_t)off * a.L, (size_t)c.n * c.L * sizeof(float)), "!memcmp(c.x, a.x + (size_t)off * a.L, (size_t)c.n * c.L * sizeof(float))");
        CHECK(!memcmp(c.labels, a.labels + off, (size_t)c.n * 4), "!memcmp(c.labels, a.labels + off, (size_t)c.n * 4)");
        CHECK(!memcmp(c.extvar, a.extvar + off, (size_t)c.n * 4), "!memcmp(c.extvar, a.extvar + off, (size_t)c.n * 4)");
        CHECK(c.ramp[0] == r, "c.ramp[0] == r");
        synth_ramp_free(&c);
    }
    /* a different seed differs */
    o.seed = 2025;
    CHECK(synth_ramp_generate(&o, &b) == SP_OK, "synth_ramp_generate(&o, &b) == SP_OK");
    CHECK(memcmp(a.x, b.x, (size_t)a.n * a.L * sizeof(float)) != 0, "memcmp(a.x, b.x, (size_t)a.n * a.L * sizeof(float)) != 0");
    synth_ramp_free(&b);
    /* intensity scaling off keeps the stream layout: same labels, different counts */
    o.seed = 2024;
    o.intensity_scaling = 0;
    CHECK(synth_ramp_generate(&o, &b) == SP_OK, "synth_ramp_generate(&o, &b) == SP_OK");
    CHECK(!memcmp(a.labels, b.labels, (size_t)a.n * 4), "!memcmp(a.labels, b.labels, (size_t)a.n * 4)");
    CHECK(memcmp(a.x, b.x, (size_t)a.n * a.L * sizeof(float)) != 0, "memcmp(a.x, b.x, (size_t)a.n * a.L * sizeof(float)) != 0");
    synth_ramp_free(&b);
    /* poisson mode: deterministic, finite, >= 0 */
    o.intensity_scaling = 1;
    o.poisson = 1;
    CHECK(synth_ramp_generate(&o, &b) == SP_OK, "synth_ramp_generate(&o, &b) == SP_OK");
    CHECK(synth_ramp_generate(&o, &c) == SP_OK, "synth_ramp_generate(&o, &c) == SP_OK");
    CHECK(!memcmp(b.x, c.x, (size_t)b.n * b.L * sizeof(float)), "!memcmp(b.x, c.x, (size_t)b.n * b.L * sizeof(float))");
    CHECK(!memcmp(a.labels, b.labels, (size_t)a.n * 4), "!memcmp(a.labels, b.labels, (size_t)a.n * 4)");
    for (size_t i = 0; i < (size_t)b.n * b.L; i++) CHECK(isfinite(b.x[i]) && b.x[i] >= 0.0f, "isfinite(b.x[i]) && b.x[i] >= 0.0f");
    synth_ramp_free(&b);
    synth_ramp_free(&c);
    synth_ramp_free(&a);
}
END_TEST

/* ----------------------------------------------------------------- CLI */

START_TEST(cli_ramp_round_trip) {
    char out[8192], path[1024];
    snprintf(path, sizeof path, "%s/ramp.h5", sp_tmpdir());
    const char *argv[] = {"specssl", "synth", "ramp", "--frames-slow", "20", "--frames-fast", "9",
                          "--ramps", "3", "--length", "150", "--seed", "7", "--out", path, NULL};
    int rc = sp_run_cli(out, sizeof out, argv);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    SpDataset *ds = NULL;
    ck_assert_msg(dataset_open(&ds, path, NULL) == SP_OK, "%s", sp_error_message());
    SpRampOptions o;
    synth_ramp_default(&o);
    o.frames_slow = 20;
    o.frames_fast = 9;
    o.ramps = 3;
    o.L = 150;
    o.seed = 7;
    SpRampData d;
    ck_assert(synth_ramp_generate(&o, &d) == SP_OK);
    ck_assert(ds->n == 49 && ds->L == 150 && d.n == 49);
    ck_assert(!memcmp(ds->x, d.x, (size_t)d.n * d.L * sizeof(float)));
    ck_assert(!memcmp(ds->labels, d.labels, (size_t)d.n * 4));
    ck_assert(!memcmp(ds->extvar, d.extvar, (size_t)d.n * 4));
    ck_assert(!memcmp(ds->axis, d.axis, (size_t)d.L * 8));
    ck_assert_int_eq(ds->n_class_names, 3);
    ck_assert_int_eq(ds->n_classes, 3);
    ck_assert_int_eq(ds->n_extvar, 5);
    ck_assert(ds->generator && strstr(ds->generator, "--seed 7") && strstr(ds->generator, "--length 150"));
    hid_t f;
    ck_assert(sp_h5_open_read(path, &f) == SP_OK);
    float fr[49 * 3];
    int32_t ramp[49];
    ck_assert(sp_h5_read_float(f, path, "/fractions", fr, 49 * 3) == SP_OK);
    ck_assert(!memcmp(fr, d.fractions, sizeof fr));
    ck_assert(sp_h5_read_int32(f, path, "/ramp", ramp, 49) == SP_OK);
    ck_assert(ramp[0] == 0 && ramp[20] == 1 && ramp[48] == 2);
    ck_assert(sp_h5_exists(f, "/frame") && sp_h5_exists(f, "/t") && sp_h5_exists(f, "/p") &&
              sp_h5_exists(f, "/fast"));
    H5Fclose(f);
    synth_ramp_free(&d);
    dataset_close(&ds);
}
END_TEST

START_TEST(cli_challenge_round_trip) {
    char out[8192], dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/ch", sp_tmpdir());
    const char *argv[] = {"specssl", "synth", "challenge", "--normalise", "max", "--out-dir", dir, NULL};
    int rc = sp_run_cli(out, sizeof out, argv);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    const SpSynthSplit sp[3] = {SP_SPLIT_TRAIN, SP_SPLIT_VAL, SP_SPLIT_TEST};
    const char *names[3] = {"train", "val", "test"};
    const int n[3] = {1350, 270, 162};
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/%s.h5", dir, names[s]);
        SpDataset *ds = NULL;
        ck_assert_msg(dataset_open(&ds, path, NULL) == SP_OK, "%s", sp_error_message());
        ck_assert_int_eq(ds->n, n[s]);
        ck_assert_int_eq(ds->L, 5000);
        ck_assert_int_eq(ds->n_class_names, 27);
        ck_assert_str_eq(ds->class_names[26], "26");
        float *x = malloc((size_t)n[s] * 5000 * sizeof(float));
        int32_t *lab = malloc((size_t)n[s] * sizeof(int32_t));
        ck_assert(synth_schuetzke_generate(SP_SYNTH_CHALLENGE, sp[s], SP_EXP_SVML, 1, x, lab) == SP_OK);
        ck_assert(!memcmp(ds->x, x, (size_t)n[s] * 5000 * sizeof(float)));
        ck_assert(!memcmp(ds->labels, lab, (size_t)n[s] * 4));
        ck_assert(ds->generator && strstr(ds->generator, "--normalise max"));
        free(x);
        free(lab);
        dataset_close(&ds);
    }
}
END_TEST

START_TEST(cli_errors) {
    char out[8192], path[1024];
    snprintf(path, sizeof path, "%s/bad.h5", sp_tmpdir());
    const char *a1[] = {"specssl", "synth", "nope", "--out", path, NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a1), 2);
    ck_assert_msg(strstr(out, "nope") != NULL, "%s", out);
    const char *a2[] = {"specssl", "synth", "ramp", NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a2), 2);
    ck_assert_msg(strstr(out, "--out") != NULL, "%s", out);
    const char *a3[] = {"specssl", "synth", "schuetzke", "--split", "tset", "--out", path, NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a3), 2);
    ck_assert_msg(strstr(out, "tset") != NULL, "%s", out);
    const char *a4[] = {"specssl", "synth", "ramp", "--length", "1", "--out", path, NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a4), 2);
    ck_assert_msg(strstr(out, "--length") != NULL, "%s", out);
    const char *a5[] = {"specssl", "synth", "challenge", "--seed", "3", "--out", path, NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a5), 2);
    const char *a6[] = {"specssl", "synth", "ramp", "--noise", "pink", "--out", path, NULL};
    ck_assert_int_eq(sp_run_cli(out, sizeof out, a6), 2);
    ck_assert_msg(strstr(out, "pink") != NULL, "%s", out);
    ck_assert(access(path, F_OK) != 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("synth");
    TCase *cfg = tcase_create("config");
    tcase_add_test(cfg, embedded_configs);
    suite_add_tcase(s, cfg);
    TCase *pr = tcase_create("params");
    tcase_set_timeout(pr, 120);
    tcase_add_test(pr, general_train_val_params);
    tcase_add_test(pr, challenge_train_val_params);
    tcase_add_test(pr, general_test_params);
    tcase_add_test(pr, challenge_test_params);
    suite_add_tcase(s, pr);
    TCase *rows = tcase_create("rows");
    tcase_set_timeout(rows, 300);
    tcase_add_test(rows, raw_test_row0_bit_exact);
    tcase_add_test(rows, raw_train_row0);
    tcase_add_test(rows, row_checks_all);
    suite_add_tcase(s, rows);
    TCase *rp = tcase_create("ramp");
    tcase_set_timeout(rp, 300);
    tcase_add_test(rp, ramp_seeding_and_draws);
    tcase_add_test(rp, ramp_defaults_self_checks);
    tcase_add_test(rp, ramp_determinism);
    suite_add_tcase(s, rp);
    TCase *cl = tcase_create("cli");
    tcase_set_timeout(cl, 120);
    tcase_add_test(cl, cli_ramp_round_trip);
    tcase_add_test(cl, cli_challenge_round_trip);
    tcase_add_test(cl, cli_errors);
    suite_add_tcase(s, cl);
    sp_tmpdir(); /* created once here, shared by the forked tests, removed below */
    int rc = sp_run_suite(s);
    sp_tmpdir_cleanup();
    return rc;
}
