/*
 * test_events.c - common/events.c: a stream entry's flat field list split
 * into its events at every field named `id`, values never taken for field
 * names, and malformed entries (not starting with `id`, an odd count, no
 * fields, a value that is not a string) reported as errors without any
 * event handed out.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"

/* A field array built from strings, as hiredis would return it. */
struct fake {
    redisReply array;
    redisReply items[64];
    redisReply *ptrs[64];
};

static void fake_init(struct fake *f, const char *const *values, size_t n) {
    memset(f, 0, sizeof *f);
    f->array.type = REDIS_REPLY_ARRAY;
    f->array.elements = n;
    f->array.element = f->ptrs;
    for (size_t i = 0; i < n; i++) {
        f->items[i].type = REDIS_REPLY_STRING;
        f->items[i].str = (char *)values[i];
        f->items[i].len = strlen(values[i]);
        f->ptrs[i] = &f->items[i];
    }
}

static const char *value(const struct fake *f, const struct baton_event_span *s, const char *name) {
    return baton_event_field(&f->array, s, name, NULL);
}

START_TEST(test_one_event) {
    const char *v[] = {"id", "t-1", "seq", "1", "event", "submitted", "from", "", "to", "queued"};
    struct fake f;
    fake_init(&f, v, 10);
    struct baton_events it;
    struct baton_event_span s;
    baton_events_begin(&it, &f.array);
    ck_assert_int_eq(baton_events_next(&it, &s, NULL), 1);
    ck_assert_uint_eq(s.first, 0);
    ck_assert_uint_eq(s.count, 10);
    ck_assert_uint_eq(s.index, 0);
    size_t len = 99;
    ck_assert_str_eq(baton_event_field(&f.array, &s, "event", &len), "submitted");
    ck_assert_uint_eq(len, 9);
    ck_assert_ptr_null(baton_event_field(&f.array, &s, "worker", &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(baton_events_next(&it, &s, NULL), 0);
    ck_assert_int_eq(baton_events_next(&it, &s, NULL), 0);
}
END_TEST

START_TEST(test_three_events) {
    /* Values named "id" or "seq" are values: only names split. The last
     * event has an extra field the others do not. */
    const char *v[] = {"id", "a",  "seq", "1",  "event",  "claimed", /* event 0 */
                       "id", "id", "seq", "id", "worker", "id",      /* event 1 */
                       "id", "c",  "seq", "3",  "event",  "succeeded", "result", "{\"id\":1}"};
    struct fake f;
    fake_init(&f, v, 20);
    struct baton_events it;
    struct baton_event_span s[3];
    baton_events_begin(&it, &f.array);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(baton_events_next(&it, &s[i], NULL), 1);
    ck_assert_int_eq(baton_events_next(&it, &s[0], NULL) == 0, 1);
    baton_events_begin(&it, &f.array);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(baton_events_next(&it, &s[i], NULL), 1);
        ck_assert_uint_eq(s[i].index, (size_t)i);
    }
    ck_assert_uint_eq(s[0].first, 0);
    ck_assert_uint_eq(s[0].count, 6);
    ck_assert_uint_eq(s[1].first, 6);
    ck_assert_uint_eq(s[1].count, 6);
    ck_assert_uint_eq(s[2].first, 12);
    ck_assert_uint_eq(s[2].count, 8);
    ck_assert_str_eq(value(&f, &s[0], "id"), "a");
    ck_assert_str_eq(value(&f, &s[1], "id"), "id");
    ck_assert_str_eq(value(&f, &s[1], "seq"), "id");
    ck_assert_str_eq(value(&f, &s[1], "worker"), "id");
    ck_assert_ptr_null(value(&f, &s[1], "event")); /* not borrowed from a neighbour */
    ck_assert_ptr_null(value(&f, &s[0], "result"));
    ck_assert_str_eq(value(&f, &s[2], "result"), "{\"id\":1}");
    ck_assert_str_eq(value(&f, &s[2], "event"), "succeeded");
}
END_TEST

/* Expects the entry to be refused at once, with a reason, and no event. */
static void expect_malformed(const redisReply *fields) {
    struct baton_events it;
    struct baton_event_span s = {7, 7, 7};
    const char *why = NULL;
    baton_events_begin(&it, fields);
    ck_assert_int_eq(baton_events_next(&it, &s, &why), -1);
    ck_assert_ptr_nonnull(why);
    ck_assert_uint_eq(s.first, 7);                          /* untouched */
    ck_assert_int_eq(baton_events_next(&it, &s, NULL), -1); /* and it stays so */
}

START_TEST(test_not_starting_with_id) {
    const char *v[] = {"seq", "1", "id", "t-1", "event", "claimed"};
    struct fake f;
    fake_init(&f, v, 6);
    expect_malformed(&f.array);
    /* A rejection entry (baton:rejections) has no id at all. */
    const char *r[] = {"topic", "t", "partition", "0", "offset", "12", "reason", "bad_json"};
    fake_init(&f, r, 8);
    expect_malformed(&f.array);
}
END_TEST

START_TEST(test_odd_count) {
    const char *v[] = {"id", "t-1", "seq", "1", "event"};
    struct fake f;
    fake_init(&f, v, 5);
    expect_malformed(&f.array);
    fake_init(&f, v, 1); /* "id" alone */
    expect_malformed(&f.array);
}
END_TEST

START_TEST(test_empty_and_not_an_array) {
    struct fake f;
    fake_init(&f, NULL, 0);
    expect_malformed(&f.array);
    expect_malformed(NULL);
    redisReply nil = {.type = REDIS_REPLY_NIL};
    expect_malformed(&nil); /* an entry deleted under a reader */
    redisReply integer = {.type = REDIS_REPLY_INTEGER, .integer = 3};
    expect_malformed(&integer);
}
END_TEST

START_TEST(test_value_not_a_string) {
    const char *v[] = {"id", "t-1", "seq", "1"};
    struct fake f;
    fake_init(&f, v, 4);
    f.items[3].type = REDIS_REPLY_NIL;
    f.items[3].str = NULL;
    expect_malformed(&f.array);
    fake_init(&f, v, 4);
    f.items[2].type = REDIS_REPLY_ARRAY; /* a nested array where a name should be */
    f.items[2].str = NULL;
    expect_malformed(&f.array);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_one_event);
    tcase_add_test(tc, test_three_events);
    tcase_add_test(tc, test_not_starting_with_id);
    tcase_add_test(tc, test_odd_count);
    tcase_add_test(tc, test_empty_and_not_an_array);
    tcase_add_test(tc, test_value_not_a_string);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
