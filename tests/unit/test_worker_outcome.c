/*
 * test_worker_outcome.c - worker/outcome.c's pure part: the backoff
 * arguments the worker gives fail.lua, which computes the retry delay as
 * jitter * min(cap, base * 2^(attempt-1)), checked as values and as the
 * text fail.lua receives (through common/transition.c's append hook).
 * Links the worker library.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker_internal.h"

/* What fail.lua is sent for `f`, captured by the transition module's
 * append hook (no Redis): its jitter argument, as text. */
static char sent_jitter[64];

static baton_err_t capture(baton_redis_t *r, const char *name, int numkeys, int argc,
                           const char **argv, const size_t *lens, char *errstr,
                           size_t errstr_size) {
    (void)r;
    ck_assert_str_eq(name, baton_tr_scripts[BATON_TR_FAIL].name);
    /* KEYS, then prefix, id, token, error, reason, base, cap: jitter */
    int at = numkeys + 7;
    ck_assert_int_lt(at, argc);
    snprintf(sent_jitter, sizeof sent_jitter, "%.*s", (int)lens[at], argv[at]);
    /* Refused here: nothing is read, the call returns at once. */
    return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "captured");
}

static const char *jitter_sent(const struct baton_tr_failure *f) {
    struct baton_queue_keys keys;
    baton_queue_keys_init(&keys, "q");
    char errstr[64];
    sent_jitter[0] = '\0';
    baton_tr_append_hook = capture;
    baton_tr_fail(NULL, &keys, "t", "1", f, 1, NULL, NULL, errstr, sizeof errstr);
    baton_tr_append_hook = NULL;
    return sent_jitter;
}

START_TEST(test_base_and_cap_verbatim) {
    struct baton_tr_failure b = {"e", "error", 0, 0, 0, 0};
    baton_worker_backoff_args(1000, 600000, 0, &b);
    ck_assert_int_eq(b.backoff_base_ms, 1000);
    ck_assert_int_eq(b.backoff_cap_ms, 600000);
    ck_assert(b.jitter == 0.0);
    ck_assert_str_eq(jitter_sent(&b), "0.000000000");
    baton_worker_backoff_args(INT64_MAX, 0, 0, &b);
    ck_assert_int_eq(b.backoff_base_ms, INT64_MAX);
    ck_assert_int_eq(b.backoff_cap_ms, 0);
    /* the other fields are the caller's */
    ck_assert_str_eq(b.error, "e");
    ck_assert_str_eq(b.reason, "error");
    ck_assert_int_eq(b.permanent, 0);
}
END_TEST

START_TEST(test_jitter_is_the_fraction_of_2_32) {
    struct baton_tr_failure b = {"e", "error", 0, 0, 0, 0};
    baton_worker_backoff_args(1, 1, 1u << 31, &b);
    ck_assert(b.jitter == 0.5);
    ck_assert_str_eq(jitter_sent(&b), "0.500000000");
    baton_worker_backoff_args(1, 1, 1u << 30, &b);
    ck_assert(b.jitter == 0.25);
    ck_assert_str_eq(jitter_sent(&b), "0.250000000");
    baton_worker_backoff_args(1, 1, 429496730u, &b); /* ~0.1 */
    ck_assert_str_eq(jitter_sent(&b), "0.100000000");
}
END_TEST

START_TEST(test_jitter_bounds) {
    /* Every draw gives a number fail.lua reads in [0, 1]; only the two
     * largest draws reach it as 1 (the whole window), as they always did. */
    static const uint32_t draws[] = {0, 1, 4294967293u, 4294967294u, 4294967295u};
    static const char *want[] = {"0.000000000", "0.000000000", "0.999999999", "1.000000000",
                                 "1.000000000"};
    for (size_t i = 0; i < sizeof draws / sizeof draws[0]; i++) {
        struct baton_tr_failure b = {"e", "error", 0, 0, 0, 0};
        baton_worker_backoff_args(1000, 2000, draws[i], &b);
        ck_assert(b.jitter >= 0.0 && b.jitter < 1.0);
        const char *sent = jitter_sent(&b);
        ck_assert_str_eq(sent, want[i]);
        double j = strtod(sent, NULL);
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
