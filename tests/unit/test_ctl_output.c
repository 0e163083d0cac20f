/*
 * test_ctl_output.c - batonctl's human output (ctl/output.c): text from
 * producers and handlers is shown to an operator's terminal with its control
 * characters made visible, never obeyed.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static void expect_term(const char *in, const char *want) {
    char *got = ctl_term_text(in);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    free(got);
}

/* 1 when s holds a byte a terminal would obey: C0, DEL, or a C1 control
 * as UTF-8 (C2 80..9F) or as a raw 8-bit byte (80..9F) outside UTF-8. */
static int has_control(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; p[i]; i++) {
        if ((p[i] < 0x20 && p[i] != '\n') || p[i] == 0x7f)
            return 1;
        if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            return 1;
    }
    return 0;
}

START_TEST(test_plain_text_unchanged) {
    expect_term("", "");
    expect_term("send email to ada@example.com", "send email to ada@example.com");
    /* UTF-8 beyond the C1 block stays as it is, U+00A0 (C2 A0) included. */
    expect_term("h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 \xc2\xa0",
                "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 \xc2\xa0");
    /* Backslashes are data, not escapes. */
    expect_term("C:\\tmp \\x1b", "C:\\tmp \\x1b");
}
END_TEST

START_TEST(test_c0_and_del_escaped) {
    /* The two sequences of the report: set the window title, clear the
     * screen. */
    expect_term("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07");
    expect_term("ok\x1b[2J\x1b[H", "ok\\x1b[2J\\x1b[H");
    expect_term("a\nb\tc\rd", "a\\nb\\tc\\rd");
    expect_term("\x01\x08\x1f\x7f", "\\x01\\x08\\x1f\\x7f");
}
END_TEST

START_TEST(test_c1_escaped) {
    /* U+009B is CSI and U+009D OSC for terminals that take 8-bit controls. */
    expect_term("\xc2\x9b"
                "2J",
                "\\u009b2J");
    expect_term("\xc2\x9d"
                "0;t\xc2\x9c",
                "\\u009d0;t\\u009c");
    expect_term("\xc2\x80\xc2\x9f", "\\u0080\\u009f");
}
END_TEST

START_TEST(test_invalid_utf8_replaced) {
    /* A raw 0x9b byte is CSI to a terminal in an 8-bit mode: never passed
     * through; an invalid byte becomes U+FFFD. */
    expect_term("a\x9b"
                "2Jb",
                "a\xef\xbf\xbd"
                "2Jb");
    expect_term("\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd");
    /* A C2 lead byte cut off at the end. */
    expect_term("x\xc2", "x\xef\xbf\xbd");
    ck_assert_ptr_null(ctl_term_text(NULL));
}
END_TEST

/* Every table cell is escaped: a cell cannot break its row or the terminal. */
START_TEST(test_table_cells_escaped) {
    static const char *const headers[] = {"ID", "ERROR"};
    struct ctl_table *t = ctl_table_new(2, headers);
    ck_assert_ptr_nonnull(t);
    const char *row[] = {"t1", "boom\x1b]0;owned\x07\nline2\xc2\x9b"
                               "2J"};
    ctl_table_row(t, row);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(mem);
    ctl_table_print(t, mem);
    fclose(mem);
    ck_assert_msg(!has_control(text), "control character in: %s", text);
    ck_assert_ptr_nonnull(strstr(text, "boom\\x1b]0;owned\\x07\\nline2\\u009b2J"));
    /* Header and one row: two lines. */
    size_t lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    ck_assert_uint_eq(lines, 2);
    free(text);
    ctl_table_free(t);
}
END_TEST

START_TEST(test_term_printf) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(mem);
    ctl_term_printf(mem, "  %-6s %s\n", "error", "x\x1b[31my\nz");
    ctl_term_printf(mem, "no newline %d", 7);
    fclose(mem);
    ck_assert_str_eq(text, "  error  x\\x1b[31my\\nz\nno newline 7");
    free(text);
}
END_TEST

static Suite *ctl_output_suite(void) {
    Suite *s = suite_create("ctl_output");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_plain_text_unchanged);
    tcase_add_test(core, test_c0_and_del_escaped);
    tcase_add_test(core, test_c1_escaped);
    tcase_add_test(core, test_table_cells_escaped);
    tcase_add_test(core, test_term_printf);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_invalid_utf8_replaced);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(ctl_output_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
