/*
 * test_buf.c - common/buf.c: appends grow the buffer and keep it
 * NUL-terminated; reset empties it and keeps the memory; free releases it.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

START_TEST(test_put_grows_and_terminates) {
    struct baton_buf b = {0};
    baton_buf_put(&b, "abc", 3);
    ck_assert_str_eq(b.data, "abc");
    char big[10000];
    memset(big, 'x', sizeof big);
    baton_buf_put(&b, big, sizeof big); /* past the first allocation */
    ck_assert_uint_eq(b.len, 3 + sizeof big);
    ck_assert_int_eq(b.data[b.len], '\0');
    ck_assert_int_eq(b.data[3], 'x');
    ck_assert_int_eq(b.failed, 0);
    baton_buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(test_reset_keeps_memory) {
    struct baton_buf b = {0};
    baton_buf_put(&b, "hello", 5);
    char *mem = b.data;
    baton_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    baton_buf_put(&b, "hi", 2);
    ck_assert_ptr_eq(b.data, mem);
    ck_assert_str_eq(b.data, "hi");
    baton_buf_free(&b);
}
END_TEST

START_TEST(test_failed_is_sticky) {
    struct baton_buf b = {0};
    b.failed = 1; /* as after an allocation failure */
    baton_buf_put(&b, "x", 1);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_null(b.data);
    baton_buf_reset(&b);
    ck_assert_int_eq(b.failed, 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("buf");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_put_grows_and_terminates);
    tcase_add_test(core, test_reset_keeps_memory);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_failed_is_sticky);
    suite_add_tcase(s, errors);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
