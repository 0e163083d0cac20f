/*
 * test_utf8.c - common/utf8.c: invalid bytes, truncated sequences, overlongs
 * and surrogates become U+FFFD; valid text is unchanged; cuts fall on
 * character boundaries.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define FFFD "\xEF\xBF\xBD"

static void check_clean(const char *in, size_t len, const char *want) {
    size_t out_len = 0;
    char *out = baton_utf8_sanitize(in, len, &out_len);
    ck_assert_ptr_nonnull(out);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(out_len, strlen(want));
    free(out);
}

START_TEST(test_invalid_byte) {
    check_clean("a\xff"
                "b",
                3, "a" FFFD "b");
}
END_TEST

START_TEST(test_nul_byte) {
    /* PostgreSQL text and jsonb refuse U+0000 (jsonb: "\u0000"): a NUL
     * from a handler's output becomes U+FFFD, and the copy stays one C
     * string. */
    check_clean("a\0b", 3, "a" FFFD "b");
    check_clean("\0", 1, FFFD);
}
END_TEST

START_TEST(test_split_at_end) {
    /* U+20AC (E2 82 AC) cut after two bytes: one U+FFFD. */
    check_clean("x\xE2\x82", 3, "x" FFFD);
}
END_TEST

START_TEST(test_overlong) {
    check_clean("\xC0\xAF", 2, FFFD FFFD);
    check_clean("\xE0\x80\xAF", 3, FFFD FFFD FFFD);
}
END_TEST

START_TEST(test_surrogate_and_too_big) {
    check_clean("\xED\xA0\x80", 3, FFFD FFFD FFFD);
    check_clean("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);
}
END_TEST

START_TEST(test_valid_unchanged) {
    const char *s = "plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 end";
    check_clean(s, strlen(s), s);
}
END_TEST

START_TEST(test_boundary_cuts) {
    const char *s = "ab\xE2\x82\xAC"
                    "cd"; /* a b [E2 82 AC] c d */
    size_t len = strlen(s);
    /* tail of at most 4 bytes starts at 82: moves to c */
    ck_assert_uint_eq(baton_utf8_tail_start(s, len, 4), 5);
    ck_assert_uint_eq(baton_utf8_tail_start(s, len, 5), 2);
    ck_assert_uint_eq(baton_utf8_tail_start(s, len, 100), 0);
    /* head of at most 4 bytes would end inside the euro sign */
    ck_assert_uint_eq(baton_utf8_head_len(s, len, 4), 2);
    ck_assert_uint_eq(baton_utf8_head_len(s, len, 5), 5);
    ck_assert_uint_eq(baton_utf8_head_len(s, len, 100), len);
}
END_TEST

int main(void) {
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_invalid_byte);
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_split_at_end);
    tcase_add_test(tc, test_overlong);
    tcase_add_test(tc, test_surrogate_and_too_big);
    tcase_add_test(tc, test_valid_unchanged);
    tcase_add_test(tc, test_boundary_cuts);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
