/*
 * test_error.c - common/error.c: every code has its own description, and
 * baton_seterr() formats, truncates and returns the code it was given.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

START_TEST(test_descriptions_distinct) {
    const baton_err_t codes[] = {
        BATON_OK,          BATON_ERR_NOMEM,     BATON_ERR_INVALID,     BATON_ERR_CONFIG,
        BATON_ERR_IO,      BATON_ERR_REDIS,     BATON_ERR_KAFKA,       BATON_ERR_PG,
        BATON_ERR_TIMEOUT, BATON_ERR_NOT_FOUND, BATON_ERR_STALE_TOKEN, BATON_ERR_STATE,
        BATON_ERR_EXISTS,  BATON_ERR_HELP,      BATON_ERR_REFUSED};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_ne(baton_err2str(codes[i]), "unknown error");
        for (size_t j = i + 1; j < n; j++)
            ck_assert_str_ne(baton_err2str(codes[i]), baton_err2str(codes[j]));
    }
    ck_assert_str_eq(baton_err2str((baton_err_t)-999), "unknown error");
}
END_TEST

START_TEST(test_seterr_formats_and_returns) {
    char buf[64];
    ck_assert_int_eq(baton_seterr(buf, sizeof buf, BATON_ERR_IO, "open %s: %d", "x", 2),
                     BATON_ERR_IO);
    ck_assert_str_eq(buf, "open x: 2");
}
END_TEST

START_TEST(test_seterr_truncates_and_tolerates_null) {
    char buf[5];
    baton_seterr(buf, sizeof buf, BATON_ERR_IO, "%s", "abcdefgh");
    ck_assert_str_eq(buf, "abcd");
    ck_assert_int_eq(baton_seterr(NULL, 0, BATON_ERR_PG, "x"), BATON_ERR_PG);
}
END_TEST

static Suite *error_suite(void) {
    Suite *s = suite_create("error");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_descriptions_distinct);
    tcase_add_test(core, test_seterr_formats_and_returns);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_seterr_truncates_and_tolerates_null);
    suite_add_tcase(s, limits);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(error_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
