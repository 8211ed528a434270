/* test_rng: PCG64 bit-exact with numpy (reference/synthetic.md §A4, §A10, §B7). */
#include <math.h>
#include <stdlib.h>

#include "sp_rng.h"
#include "sp_test.h"

START_TEST(first_u64_after_default_rng_2022) {
    SpRng r;
    sp_rng_numpy2022(&r);
    const uint64_t want[4] = {4564205269675521265ULL, 1715363869126164805ULL,
                              11285042376529136859ULL, 1119017745463946747ULL};
    for (int i = 0; i < 4; i++) {
        uint64_t got = sp_rng_next_u64(&r);
        ck_assert_msg(got == want[i], "next_uint64 #%d: got %llu, numpy %llu", i,
                      (unsigned long long)got, (unsigned long long)want[i]);
    }
}
END_TEST

START_TEST(first_u32_low_then_high) {
    SpRng r;
    sp_rng_numpy2022(&r);
    const uint32_t want[6] = {3036263665u, 1062686850u, 3217948997u,
                              399389273u, 809487579u, 2627503680u};
    for (int i = 0; i < 6; i++) {
        uint32_t got = sp_rng_next_u32(&r);
        ck_assert_msg(got == want[i], "next_uint32 #%d: got %u, numpy %u", i, got, want[i]);
    }
}
END_TEST

START_TEST(first_doubles) {
    SpRng r;
    sp_rng_numpy2022(&r);
    const double want[3] = {0.24742606345259932, 0.0929900616754864, 0.6117633730611934};
    for (int i = 0; i < 3; i++) {
        double got = sp_rng_next_double(&r);
        ck_assert_msg(got == want[i], "next_double #%d: got %.17g, numpy %.17g", i, got, want[i]);
    }
}
END_TEST

START_TEST(u32_buffer_survives_double_draws) {
    /* u32, then a double (does not touch the buffer), then u32 = high half of
     * the first word. */
    SpRng a, b;
    sp_rng_numpy2022(&a);
    sp_rng_numpy2022(&b);
    uint64_t w0 = sp_rng_next_u64(&b);
    uint64_t w1 = sp_rng_next_u64(&b);
    uint32_t lo = sp_rng_next_u32(&a);
    double d = sp_rng_next_double(&a);
    uint32_t hi = sp_rng_next_u32(&a);
    ck_assert_uint_eq(lo, (uint32_t)w0);
    ck_assert(d == (double)(w1 >> 11) * 0x1p-53);
    ck_assert_uint_eq(hi, (uint32_t)(w0 >> 32));
}
END_TEST

START_TEST(class0_train0_offsets) {
    /* §A10: class 0 train row 0 shift offsets from integers(p-50, p+50). */
    static const int pos[10] = {391, 413, 632, 1004, 3036, 3272, 3724, 4040, 4272, 4595};
    static const int off[10] = {20, -26, 24, -41, -32, 11, 43, -44, -44, 16};
    SpRng r;
    sp_rng_numpy2022(&r);
    for (int k = 0; k < 10; k++) {
        int64_t p = sp_rng_integers(&r, pos[k] - 50, pos[k] + 50);
        ck_assert_msg(p - pos[k] == off[k], "peak %d: offset %lld, expected %d", k,
                      (long long)(p - pos[k]), off[k]);
    }
}
END_TEST

START_TEST(ramp_seeding_self_checks) {
    /* §B7: splitmix64 from seed 2024, srandom(initstate, r), first outputs. */
    uint64_t x = 2024;
    uint64_t a = sp_splitmix64(&x), b = sp_splitmix64(&x);
    ck_assert(a == 0x9f6d8fecf88eecd5ULL);
    ck_assert(b == 0x18e430bb1511f2d2ULL);
    SpRng r;
    sp_rng_srandom(&r, a, b, 0, 0);
    ck_assert(r.s_hi == 0xa7d1dfd9929406f1ULL && r.s_lo == 0x41a780367a5134e0ULL);
    ck_assert(r.inc_hi == 0 && r.inc_lo == 1);
    const uint64_t want[3] = {4995514941711254095ULL, 11395503902389594291ULL,
                              8869035959038418230ULL};
    for (int i = 0; i < 3; i++) ck_assert(sp_rng_next_u64(&r) == want[i]);
    sp_rng_srandom(&r, a, b, 0, 1);
    ck_assert(r.s_hi == 0xee93b9e3d220c239ULL && r.s_lo == 0xc8b33effb9eb216cULL);
    ck_assert(r.inc_lo == 3);
    ck_assert(sp_rng_next_u64(&r) == 15291903424327330376ULL);
}
END_TEST

START_TEST(bounded_integers_in_range_and_streams_differ) {
    SpRng r, s;
    sp_rng_stream(&r, 7, 1, 2, 3);
    sp_rng_stream(&s, 7, 1, 2, 4);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        int64_t v = sp_rng_integers(&r, -3, 5);
        ck_assert(v >= -3 && v < 5);
        int64_t big = sp_rng_integers(&r, 0, (int64_t)1 << 40);
        ck_assert(big >= 0 && big < ((int64_t)1 << 40));
        same += sp_rng_next_u64(&r) == sp_rng_next_u64(&s);
    }
    ck_assert_int_lt(same, 2);
    /* same key -> same stream */
    SpRng t, u;
    sp_rng_stream(&t, 99, 5, 6, 7);
    sp_rng_stream(&u, 99, 5, 6, 7);
    for (int i = 0; i < 10; i++) ck_assert(sp_rng_next_u64(&t) == sp_rng_next_u64(&u));
}
END_TEST

START_TEST(normal_moments) {
    SpRng r;
    sp_rng_stream(&r, 1, 0, 0, 0);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double z = sp_rng_normal(&r);
        s += z;
        s2 += z * z;
    }
    double m = s / n, v = s2 / n - m * m;
    ck_assert_msg(fabs(m) < 0.01 && fabs(v - 1) < 0.02, "mean %g var %g", m, v);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("numpy");
    tcase_add_test(tc, first_u64_after_default_rng_2022);
    tcase_add_test(tc, first_u32_low_then_high);
    tcase_add_test(tc, first_doubles);
    tcase_add_test(tc, u32_buffer_survives_double_draws);
    tcase_add_test(tc, class0_train0_offsets);
    tcase_add_test(tc, ramp_seeding_self_checks);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("streams");
    tcase_add_test(tc2, bounded_integers_in_range_and_streams_differ);
    tcase_add_test(tc2, normal_moments);
    suite_add_tcase(s, tc2);
    return sp_run_suite(s);
}
