/*
 * test_log.c - common/log.c: every record is one line of valid JSON (parsed
 * back with jansson) with time, level, component, msg and the given fields;
 * records below the threshold are not written and their arguments are not
 * evaluated; awkward text is escaped, not corrupted.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"

/* Sends log records to a memory stream until capture_end(). */
static void capture_begin(FILE **out, char **text, size_t *size) {
    *out = open_memstream(text, size);
    baton_log_set_stream(*out);
}

static void capture_end(FILE *out) {
    baton_log_set_stream(NULL);
    fclose(out);
}

START_TEST(test_record_is_json) {
    FILE *out;
    char *text;
    size_t size;
    capture_begin(&out, &text, &size);
    baton_log_threshold = BATON_LOG_INFO;
    struct baton_log_field fields[] = {{"task_id", "t-1"}, {"queue", "default"}, {"skip", NULL}};
    baton_log_write(BATON_LOG_WARN, "scheduler", fields, 3, "enqueued %d tasks", 12);
    capture_end(out);

    /* One record, one line: the only newline is the last byte. */
    ck_assert_ptr_eq(strchr(text, '\n'), text + strlen(text) - 1);
    json_error_t jerr;
    json_t *rec = json_loads(text, 0, &jerr);
    ck_assert_msg(rec != NULL, "not JSON: %s (%s)", text, jerr.text);
    ck_assert_str_eq(json_string_value(json_object_get(rec, "level")), "warn");
    ck_assert_str_eq(json_string_value(json_object_get(rec, "component")), "scheduler");
    ck_assert_str_eq(json_string_value(json_object_get(rec, "msg")), "enqueued 12 tasks");
    ck_assert_str_eq(json_string_value(json_object_get(rec, "task_id")), "t-1");
    ck_assert_str_eq(json_string_value(json_object_get(rec, "queue")), "default");
    ck_assert_ptr_null(json_object_get(rec, "skip"));
    /* The time is RFC 3339 UTC with milliseconds, and parses back. */
    const char *when = json_string_value(json_object_get(rec, "time"));
    ck_assert_ptr_nonnull(when);
    ck_assert_int_eq(strlen(when), 24);
    ck_assert_int_eq(when[23], 'Z');
    int64_t ms;
    ck_assert_int_eq(baton_time_parse_rfc3339(when, &ms, NULL, 0), BATON_OK);
    json_decref(rec);
    free(text);
}
END_TEST

static int evaluated;
static int side_effect(void) {
    evaluated++;
    return 1;
}

START_TEST(test_threshold_skips_evaluation) {
    FILE *out;
    char *text;
    size_t size;
    capture_begin(&out, &text, &size);
    baton_log_threshold = BATON_LOG_WARN;
    evaluated = 0;
    BATON_DEBUG("test", "value %d", side_effect());
    BATON_INFO("test", "value %d", side_effect());
    BATON_LOG_TASK(BATON_LOG_INFO, "test", "t-2", "value %d", side_effect());
    ck_assert_int_eq(evaluated, 0);
    BATON_ERROR("test", "value %d", side_effect());
    BATON_LOG_TASK(BATON_LOG_WARN, "test", "t-3", "claimed");
    capture_end(out);
    ck_assert_int_eq(evaluated, 1);

    /* Exactly two lines, each valid JSON; the second carries its task id. */
    char *second = strchr(text, '\n');
    ck_assert_ptr_nonnull(second);
    *second++ = '\0';
    ck_assert_ptr_nonnull(strchr(second, '\n'));
    ck_assert_ptr_null(strchr(strchr(second, '\n') + 1, '\n'));
    json_t *a = json_loads(text, 0, NULL);
    json_t *b = json_loads(second, JSON_DISABLE_EOF_CHECK, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(json_string_value(json_object_get(a, "level")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(b, "task_id")), "t-3");
    json_decref(a);
    json_decref(b);
    free(text);
    baton_log_threshold = BATON_LOG_INFO;
}
END_TEST

START_TEST(test_escaping_and_bad_utf8) {
    FILE *out;
    char *text;
    size_t size;
    capture_begin(&out, &text, &size);
    baton_log_threshold = BATON_LOG_DEBUG;
    BATON_INFO("test", "quote \" backslash \\ newline \n tab \t");
    BATON_INFO("test", "bad utf8 \xff\xfe here");
    capture_end(out);
    char *second = strchr(text, '\n');
    *second++ = '\0';
    json_t *a = json_loads(text, 0, NULL);
    json_t *b = json_loads(second, JSON_DISABLE_EOF_CHECK, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(json_string_value(json_object_get(a, "msg")),
                     "quote \" backslash \\ newline \n tab \t");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(b, "msg")));
    json_decref(a);
    json_decref(b);
    free(text);
    baton_log_threshold = BATON_LOG_INFO;
}
END_TEST

START_TEST(test_level_parse) {
    baton_log_level_t level;
    ck_assert_int_eq(baton_log_level_parse("debug", &level), BATON_OK);
    ck_assert_int_eq(level, BATON_LOG_DEBUG);
    ck_assert_int_eq(baton_log_level_parse("off", &level), BATON_OK);
    ck_assert_int_eq(level, BATON_LOG_OFF);
    ck_assert_int_eq(baton_log_level_parse("verbose", &level), BATON_ERR_CONFIG);
    ck_assert_int_eq(baton_log_level_parse(NULL, &level), BATON_ERR_CONFIG);
    ck_assert_str_eq(baton_log_level_str(BATON_LOG_WARN), "warn");
}
END_TEST

static Suite *log_suite(void) {
    Suite *s = suite_create("log");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_record_is_json);
    tcase_add_test(core, test_threshold_skips_evaluation);
    tcase_add_test(core, test_level_parse);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_escaping_and_bad_utf8);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
