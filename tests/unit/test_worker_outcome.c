/*
 * test_worker_outcome.c - worker/outcome.c's pure part: the backoff
 * arguments the worker gives fail.lua, which computes the retry delay as
 * jitter * min(cap, base * 2^(attempt-1)). Links the worker library.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker_internal.h"

START_TEST(test_base_and_cap_verbatim) {
    struct worker_backoff b;
    baton_worker_backoff_args(1000, 600000, 0, &b);
    ck_assert_str_eq(b.base, "1000");
    ck_assert_str_eq(b.cap, "600000");
    ck_assert_str_eq(b.jitter, "0.000000000");
    baton_worker_backoff_args(INT64_MAX, 0, 0, &b);
    ck_assert_str_eq(b.base, "9223372036854775807");
    ck_assert_str_eq(b.cap, "0");
}
END_TEST

START_TEST(test_jitter_is_the_fraction_of_2_32) {
    struct worker_backoff b;
    baton_worker_backoff_args(1, 1, 1u << 31, &b);
    ck_assert_str_eq(b.jitter, "0.500000000");
    baton_worker_backoff_args(1, 1, 1u << 30, &b);
    ck_assert_str_eq(b.jitter, "0.250000000");
    baton_worker_backoff_args(1, 1, 429496730u, &b); /* ~0.1 */
    ck_assert_str_eq(b.jitter, "0.100000000");
}
END_TEST

START_TEST(test_jitter_bounds) {
    /* Every draw gives a number fail.lua reads in [0, 1]; only the two
     * largest draws print as 1 (the whole window), as they always did. */
    static const uint32_t draws[] = {0, 1, 4294967293u, 4294967294u, 4294967295u};
    static const char *want[] = {"0.000000000", "0.000000000", "0.999999999", "1.000000000",
                                 "1.000000000"};
    for (size_t i = 0; i < sizeof draws / sizeof draws[0]; i++) {
        struct worker_backoff b;
        baton_worker_backoff_args(1000, 2000, draws[i], &b);
        ck_assert_str_eq(b.jitter, want[i]);
        double j = strtod(b.jitter, NULL);
        ck_assert(j >= 0.0 && j <= 1.0);
    }
}
END_TEST

static Suite *worker_outcome_suite(void) {
    Suite *s = suite_create("worker_outcome");
    TCase *backoff = tcase_create("backoff");
    tcase_add_test(backoff, test_base_and_cap_verbatim);
    tcase_add_test(backoff, test_jitter_is_the_fraction_of_2_32);
    tcase_add_test(backoff, test_jitter_bounds);
    suite_add_tcase(s, backoff);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(worker_outcome_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
