/*
 * test_task.c - common/task.c: the v1 task contract as a codec.
 *
 * Good messages are a table of (input, canonical encoding): parsing the input
 * and encoding the task must give exactly the canonical text, which pins
 * every default and every normalisation (times to UTC milliseconds, unknown
 * fields kept in order) in one readable line, and the canonical text must
 * parse back to an equal task. Bad messages are a table of (input, reason,
 * field, a piece of the detail). Tasks built in code go through a table of
 * mutations checked by baton_task_validate(). The rest are the limits (exact
 * boundaries of every length, size and range) and the derived ids. Every
 * parse goes through baton_task_parse_encode() too (parse_both), which
 * must decide exactly as baton_task_parse() and give baton_task_encode()'s
 * text.
 *
 * In the tables, a ' in a JSON text stands for ", to keep them readable.
 */
#include <check.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"

/* The coordinates messages in the tables come from. */
static const struct baton_kafka_coord coord = {"baton.tasks", 3, 42};
#define COORD_ID "baton.tasks:3:42"

/* A copy of `text` with every ' turned into "; caller frees. */
static char *dq(const char *text) {
    char *s = strdup(text);
    ck_assert_ptr_nonnull(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

static char *encode_ok(const struct baton_task *task) {
    size_t len = 0;
    char *text = baton_task_encode(task, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(len, strlen(text));
    return text;
}

/* The text baton_task_parse_encode() appends to, shared by every call so
 * that encodings land after others. */
static struct baton_task_text shared_text;

/*
 * baton_task_parse(), checked against baton_task_parse_encode(): the same
 * answer, the same error, and on success the encoding is
 * baton_task_encode()'s, NUL-terminated, after what the text held, which
 * stays as it was.
 */
static baton_err_t parse_both(const char *value, size_t len,
                              const struct baton_task_parse_opts *opts,
                              const struct baton_kafka_coord *from, struct baton_task **out,
                              struct baton_task_error *err) {
    baton_err_t rc = baton_task_parse(value, len, opts, from, out, err);
    if (shared_text.len > (1 << 20))
        shared_text.len = 0;
    if (shared_text.len == 0) {
        struct baton_task *t = NULL;
        size_t at = 0, n = 0;
        ck_assert_int_eq(baton_task_parse_encode("{\"type\":\"x\"}", 12, NULL, &coord, &t,
                                                 &shared_text, &at, &n, NULL),
                         BATON_OK);
        baton_task_destroy(t);
    }
    size_t before = shared_text.len;
    char *held = malloc(before);
    memcpy(held, shared_text.data, before);
    struct baton_task *task = (struct baton_task *)&task;
    struct baton_task_error err2;
    size_t at = 0, n = 0;
    baton_err_t rc2 =
        baton_task_parse_encode(value, len, opts, from, &task, &shared_text, &at, &n, &err2);
    ck_assert_int_eq(rc2, rc);
    ck_assert_int_eq(memcmp(shared_text.data, held, before), 0);
    free(held);
    if (rc == BATON_OK) {
        char *want = encode_ok(*out);
        ck_assert_uint_eq(at, before);
        ck_assert_uint_eq(n, strlen(want));
        ck_assert_uint_eq(shared_text.len, at + n + 1);
        ck_assert_int_eq(shared_text.data[at + n], '\0');
        ck_assert_str_eq(shared_text.data + at, want);
        free(want);
        baton_task_destroy(task);
    } else {
        ck_assert_ptr_null(task);
        ck_assert_uint_eq(shared_text.len, before);
        if (err) {
            ck_assert_int_eq(err2.reason, err->reason);
            ck_assert_str_eq(err2.field, err->field);
            ck_assert_str_eq(err2.detail, err->detail);
        }
    }
    return rc;
}

/* Parses `json` (a C string, ' for ") with the table coordinates; must pass. */
static struct baton_task *parse_ok(const char *json) {
    char *text = dq(json);
    struct baton_task *task = NULL;
    struct baton_task_error err;
    baton_err_t rc = parse_both(text, strlen(text), NULL, &coord, &task, &err);
    ck_assert_msg(rc == BATON_OK, "%s: %s (%s): %s", text, baton_task_reason_str(err.reason),
                  err.field, err.detail);
    ck_assert_ptr_nonnull(task);
    ck_assert_int_eq(err.reason, BATON_TASK_OK);
    free(text);
    return task;
}

/* A detail is one printable-ASCII sentence that fits its buffer. */
static void assert_detail_sane(const struct baton_task_error *err) {
    size_t len = strlen(err->detail);
    ck_assert_msg(len > 0, "empty detail");
    ck_assert_uint_lt(len, sizeof err->detail);
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(err->detail[i] >= 0x20 && err->detail[i] <= 0x7e,
                      "unprintable byte 0x%02x in detail \"%s\"", (unsigned char)err->detail[i],
                      err->detail);
}

/* Parses `len` bytes of `value`, which must be rejected as stated. */
static void expect_reject(const char *value, size_t len, const struct baton_task_parse_opts *opts,
                          const struct baton_kafka_coord *from, baton_task_reason_t reason,
                          const char *field, const char *detail_part) {
    struct baton_task *task = (struct baton_task *)&task; /* must be reset */
    struct baton_task_error err;
    baton_err_t rc = parse_both(value, len, opts, from, &task, &err);
    ck_assert_msg(rc == BATON_ERR_INVALID, "accepted %.*s", (int)(len > 200 ? 200 : len), value);
    ck_assert_ptr_null(task);
    ck_assert_msg(err.reason == reason, "%.*s: reason %s, want %s (%s)",
                  (int)(len > 200 ? 200 : len), value, baton_task_reason_str(err.reason),
                  baton_task_reason_str(reason), err.detail);
    ck_assert_str_eq(err.field, field);
    assert_detail_sane(&err);
    if (detail_part)
        ck_assert_msg(strstr(err.detail, detail_part), "detail \"%s\" lacks \"%s\"", err.detail,
                      detail_part);
}

static void assert_task_eq(const struct baton_task *a, const struct baton_task *b) {
    ck_assert_str_eq(a->id, b->id);
    ck_assert_str_eq(a->type, b->type);
    ck_assert_str_eq(a->queue, b->queue);
    ck_assert_int_eq(a->priority, b->priority);
    ck_assert_msg(json_equal(a->payload, b->payload), "payloads differ");
    ck_assert_int_eq(a->max_attempts, b->max_attempts);
    ck_assert_int_eq(a->timeout_ms, b->timeout_ms);
    ck_assert_int_eq(a->run_at_ms, b->run_at_ms);
    ck_assert_int_eq(a->delay_ms, b->delay_ms);
    ck_assert_int_eq(a->deadline_ms, b->deadline_ms);
    ck_assert_msg(json_equal(a->meta, b->meta), "meta differs");
    ck_assert_msg(json_equal(a->extra, b->extra), "extra differs");
}

/* A string of `n` copies of `c`; caller frees. */
static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---------------------------------------------------------------------------
 * Good messages: input -> canonical encoding
 * ------------------------------------------------------------------------ */

/* The encoding of every defaulted field between type and meta. */
#define DEFAULTS                                                                                   \
    "'queue':'default','priority':5,'payload':null,'max_attempts':3,"                              \
    "'timeout_ms':300000"

static const struct {
    const char *input;
    const char *canonical;
} good_cases[] = {
    /* Only the required field: every default, id derived. */
    {"{'type':'email.send'}", "{'id':'" COORD_ID "','type':'email.send'," DEFAULTS ",'meta':{}}"},
    /* Every field set; times normalised to UTC milliseconds. */
    {"{'id':'order-1','type':'a','queue':'q','priority':9,'payload':{'x':[1,2.5,'s',true,null]},"
     "'max_attempts':1,'timeout_ms':1,'run_at':'2026-11-25T15:04:05Z',"
     "'deadline':'2026-11-26T00:00:00+01:00','meta':{'tenant':'acme','trace':''}}",
     "{'id':'order-1','type':'a','queue':'q','priority':9,'payload':{'x':[1,2.5,'s',true,null]},"
     "'max_attempts':1,'timeout_ms':1,'run_at':'2026-11-25T15:04:05.000Z',"
     "'deadline':'2026-11-25T23:00:00.000Z','meta':{'tenant':'acme','trace':''}}"},
    /* null for every optional field means absent. */
    {"{'type':'a','id':null,'queue':null,'priority':null,'payload':null,'max_attempts':null,"
     "'timeout_ms':null,'run_at':null,'delay_ms':null,'deadline':null,'meta':null}",
     "{'id':'" COORD_ID "','type':'a'," DEFAULTS ",'meta':{}}"},
    {"{'type':'a','id':'x','delay_ms':0}",
     "{'id':'x','type':'a'," DEFAULTS ",'delay_ms':0,'meta':{}}"},
    /* delay_ms at its cap of 365 days. */
    {"{'type':'a','id':'x','delay_ms':31536000000}",
     "{'id':'x','type':'a'," DEFAULTS ",'delay_ms':31536000000,'meta':{}}"},
    /* run_at with a null delay_ms is no conflict; fraction truncated. */
    {"{'type':'a','id':'x','run_at':'2026-01-01t00:00:00.123456789+00:00','delay_ms':null}",
     "{'id':'x','type':'a'," DEFAULTS ",'run_at':'2026-01-01T00:00:00.123Z','meta':{}}"},
    {"{'type':'a','id':'x','run_at':'1969-07-20 20:17:40Z','deadline':'0000-01-01T00:00:00Z'}",
     "{'id':'x','type':'a'," DEFAULTS ",'run_at':'1969-07-20T20:17:40.000Z',"
     "'deadline':'0000-01-01T00:00:00.000Z','meta':{}}"},
    /* Unknown fields are kept, in their order, after the contract fields. */
    {"{'v':1,'type':'a','zzz':{'k':[]},'id':'x','aaa':'s','Type':null}",
     "{'id':'x','type':'a'," DEFAULTS ",'meta':{},'v':1,'zzz':{'k':[]},'aaa':'s','Type':null}"},
    /* Payloads of every JSON type. */
    {"{'type':'a','id':'x','payload':'hello'}",
     "{'id':'x','type':'a','queue':'default','priority':5,'payload':'hello','max_attempts':3,"
     "'timeout_ms':300000,'meta':{}}"},
    {"{'type':'a','id':'x','payload':-12.5e3}",
     "{'id':'x','type':'a','queue':'default','priority':5,'payload':-12500.0,'max_attempts':3,"
     "'timeout_ms':300000,'meta':{}}"},
    {"{'type':'a','id':'x','payload':[]}",
     "{'id':'x','type':'a','queue':'default','priority':5,'payload':[],'max_attempts':3,"
     "'timeout_ms':300000,'meta':{}}"},
    {"{'type':'a','id':'x','payload':false}",
     "{'id':'x','type':'a','queue':'default','priority':5,'payload':false,'max_attempts':3,"
     "'timeout_ms':300000,'meta':{}}"},
    {"{'type':'a','id':'x','payload':{'deep':{'er':[[{}]]}}}",
     "{'id':'x','type':'a','queue':'default','priority':5,'payload':{'deep':{'er':[[{}]]}},"
     "'max_attempts':3,'timeout_ms':300000,'meta':{}}"},
    /* Whitespace anywhere JSON allows it. */
    {" \n\t{ 'type' : 'a' ,\r\n 'id' : 'x' , 'payload' : [ 1 , 2 ] }\n ",
     "{'id':'x','type':'a','queue':'default','priority':5,'payload':[1,2],'max_attempts':3,"
     "'timeout_ms':300000,'meta':{}}"},
    /* UTF-8 passes through; escapes are decoded and re-encoded minimally. */
    {"{'type':'a','id':'x','payload':'h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80',"
     "'meta':{'n\xc3\xa9v':'\xc3\xa9rt\xc3\xa9k'},'\xc3\xbc':'\xc3\xbc'}",
     "{'id':'x','type':'a','queue':'default','priority':5,"
     "'payload':'h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80','max_attempts':3,"
     "'timeout_ms':300000,'meta':{'n\xc3\xa9v':'\xc3\xa9rt\xc3\xa9k'},'\xc3\xbc':'\xc3\xbc'}"},
    {"{'type':'a','id':'x','payload':'\\u00e9\\n\\u0001\\/\\ud83d\\ude00'}",
     "{'id':'x','type':'a','queue':'default','priority':5,"
     "'payload':'\xc3\xa9\\n\\u0001/\xf0\x9f\x98\x80','max_attempts':3,"
     "'timeout_ms':300000,'meta':{}}"},
    /* -0 is the integer 0. */
    {"{'type':'a','id':'x','priority':-0}",
     "{'id':'x','type':'a','queue':'default','priority':0,'payload':null,'max_attempts':3,"
     "'timeout_ms':300000,'meta':{}}"},
    /* Every printable ASCII character an id may hold, including \" and \\. */
    {"{'type':'a','id':'!#$%&()*+,-./09:;<=>?@AZ[]^_`az{|}~\\\"\\\\'}",
     "{'id':'!#$%&()*+,-./09:;<=>?@AZ[]^_`az{|}~\\\"\\\\','type':'a'," DEFAULTS ",'meta':{}}"},
    /* Every character a name may hold. */
    {"{'type':'Az09_.:-','queue':'-:._90zA','id':'x'}",
     "{'id':'x','type':'Az09_.:-','queue':'-:._90zA','priority':5,'payload':null,"
     "'max_attempts':3,'timeout_ms':300000,'meta':{}}"},
    /* Integer fields at their caps. */
    {"{'type':'a','id':'x','max_attempts':1000,'timeout_ms':86400000}",
     "{'id':'x','type':'a','queue':'default','priority':5,'payload':null,"
     "'max_attempts':1000,'timeout_ms':86400000,'meta':{}}"},
};

START_TEST(test_parse_good) {
    struct baton_task *task = parse_ok(good_cases[_i].input);
    char *want = dq(good_cases[_i].canonical);
    char *text = encode_ok(task);
    ck_assert_str_eq(text, want);

    /* The canonical form parses to the same task and is a fixed point. */
    struct baton_task *again = parse_ok(text);
    assert_task_eq(task, again);
    ck_assert_int_eq(again->id_derived, 0); /* the id is explicit now */
    char *text2 = encode_ok(again);
    ck_assert_str_eq(text2, text);

    free(text2);
    free(text);
    free(want);
    baton_task_destroy(again);
    baton_task_destroy(task);
}
END_TEST

/* Every default, field by field, not through the encoder. */
START_TEST(test_parse_defaults_exact) {
    struct baton_task *task = parse_ok("{'type':'a'}");
    ck_assert_str_eq(task->id, COORD_ID);
    ck_assert_int_eq(task->id_derived, 1);
    ck_assert_str_eq(task->type, "a");
    ck_assert_str_eq(task->queue, "default");
    ck_assert_int_eq(task->priority, 5);
    ck_assert(json_is_null(task->payload));
    ck_assert_int_eq(task->max_attempts, 3);
    ck_assert_int_eq(task->timeout_ms, 300000);
    ck_assert(task->run_at_ms == BATON_TIME_UNSET);
    ck_assert(task->delay_ms == BATON_TIME_UNSET);
    ck_assert(task->deadline_ms == BATON_TIME_UNSET);
    ck_assert(json_is_object(task->meta) && json_object_size(task->meta) == 0);
    ck_assert(json_is_object(task->extra) && json_object_size(task->extra) == 0);
    baton_task_destroy(task);
}
END_TEST

START_TEST(test_new_defaults_exact) {
    struct baton_task *task = baton_task_new("email.send");
    ck_assert_ptr_nonnull(task);
    ck_assert_ptr_null(task->id);
    ck_assert_int_eq(task->id_derived, 0);
    ck_assert_str_eq(task->type, "email.send");
    ck_assert_str_eq(task->queue, BATON_TASK_DEFAULT_QUEUE);
    ck_assert_int_eq(task->priority, BATON_TASK_DEFAULT_PRIORITY);
    ck_assert(json_is_null(task->payload));
    ck_assert_int_eq(task->max_attempts, BATON_TASK_DEFAULT_MAX_ATTEMPTS);
    ck_assert_int_eq(task->timeout_ms, BATON_TASK_DEFAULT_TIMEOUT_MS);
    ck_assert(task->run_at_ms == BATON_TIME_UNSET);
    ck_assert(task->delay_ms == BATON_TIME_UNSET);
    ck_assert(task->deadline_ms == BATON_TIME_UNSET);
    ck_assert(json_is_object(task->meta) && json_object_size(task->meta) == 0);
    ck_assert(json_is_object(task->extra) && json_object_size(task->extra) == 0);
    baton_task_destroy(task);
    baton_task_destroy(NULL); /* a no-op */
}
END_TEST

/* A task built in code with everything set survives encode -> parse. */
START_TEST(test_round_trip_built_task) {
    struct baton_task *task = baton_task_new("report.build");
    task->id = strdup("tenant-7/report-2026-11");
    free(task->queue);
    task->queue = strdup("reports");
    task->priority = 0;
    json_decref(task->payload);
    task->payload = json_pack("{s:s, s:[i, f, b, n], s:{s:s}}", "name", "q3 \"final\"\n", "xs", 7,
                              0.1, 1, "nested", "k", "\xe2\x82\xac");
    task->max_attempts = 10;
    task->timeout_ms = INT64_C(86400000);
    task->delay_ms = 1500;
    task->deadline_ms = INT64_C(-14182940000); /* 1969-07-20T20:17:40Z */
    json_object_set_new(task->meta, "tenant", json_string("acme"));
    json_object_set_new(task->meta, "traceparent", json_string("00-4bf92f-00f067-01"));
    json_object_set_new(task->extra, "source", json_string("cron"));
    json_object_set_new(task->extra, "v", json_integer(2));
    json_object_set_new(task->extra, "tags", json_pack("[s,s]", "a", "b"));

    struct baton_task_error err;
    ck_assert_int_eq(baton_task_validate(task, NULL, &err), BATON_OK);
    char *text = encode_ok(task);
    struct baton_task *back = NULL;
    ck_assert_int_eq(parse_both(text, strlen(text), NULL, NULL, &back, &err), BATON_OK);
    assert_task_eq(task, back);
    ck_assert_int_eq(back->id_derived, 0);
    char *text2 = encode_ok(back);
    ck_assert_str_eq(text2, text);

    /* And the same with run_at instead of delay_ms. */
    task->delay_ms = BATON_TIME_UNSET;
    task->run_at_ms = INT64_C(1795619045123);
    free(text);
    text = encode_ok(task);
    ck_assert_ptr_nonnull(strstr(text, "\"run_at\":\"2026-11-25T15:04:05.123Z\""));
    baton_task_destroy(back);
    ck_assert_int_eq(parse_both(text, strlen(text), NULL, NULL, &back, &err), BATON_OK);
    assert_task_eq(task, back);

    free(text2);
    free(text);
    baton_task_destroy(back);
    baton_task_destroy(task);
}
END_TEST

/* The value need not be NUL-terminated: only `len` bytes are read. */
START_TEST(test_encode_values_as_jansson) {
    /* encode writes the common values itself (null, booleans, integers,
     * empty containers) and leaves the rest to jansson: either way the
     * payload's text is jansson's compact dump of it. */
    static const char *const values[] = {"null",
                                         "true",
                                         "false",
                                         "0",
                                         "-1",
                                         "42",
                                         "9223372036854775807",
                                         "-9223372036854775808",
                                         "{}",
                                         "[]",
                                         "\"x\"",
                                         "[1,{}]",
                                         "{\"a\":[]}",
                                         "0.5",
                                         "\"\\n\\u0001\""};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        json_error_t jerr;
        json_t *v = json_loads(values[i], JSON_DECODE_ANY, &jerr);
        ck_assert_msg(v != NULL, "%s", values[i]);
        struct baton_task *t = baton_task_new("t");
        t->id = strdup("i");
        json_decref(t->payload);
        t->payload = v;
        json_decref(t->meta);
        t->meta = json_incref(v);
        if (!json_is_object(v)) { /* meta must be an object: keep the default */
            json_decref(t->meta);
            t->meta = json_object();
        }
        char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char *meta = json_dumps(t->meta, JSON_COMPACT);
        char *got = encode_ok(t);
        char expect[512];
        snprintf(expect, sizeof expect,
                 "{\"id\":\"i\",\"type\":\"t\",\"queue\":\"default\",\"priority\":5,"
                 "\"payload\":%s,\"max_attempts\":3,\"timeout_ms\":300000,\"meta\":%s}",
                 dump, meta);
        ck_assert_str_eq(got, expect);
        free(got);
        free(dump);
        free(meta);
        baton_task_destroy(t);
    }
}
END_TEST

START_TEST(test_parse_reads_only_len_bytes) {
    const char buf[] = "{\"type\":\"a\",\"id\":\"x\"}GARBAGE";
    struct baton_task *task = NULL;
    ck_assert_int_eq(parse_both(buf, 21, NULL, NULL, &task, NULL), BATON_OK);
    ck_assert_str_eq(task->id, "x");
    baton_task_destroy(task);
}
END_TEST

/* An explicit id wins over the coordinates. */
START_TEST(test_explicit_id_not_derived) {
    struct baton_task *task = parse_ok("{'type':'a','id':'mine'}");
    ck_assert_str_eq(task->id, "mine");
    ck_assert_int_eq(task->id_derived, 0);
    baton_task_destroy(task);
}
END_TEST

START_TEST(test_reason_strings) {
    static const struct {
        baton_task_reason_t reason;
        const char *name;
    } names[] = {
        {BATON_TASK_OK, "ok"},
        {BATON_TASK_EMPTY, "empty_message"},
        {BATON_TASK_TOO_LARGE, "too_large"},
        {BATON_TASK_INVALID_JSON, "invalid_json"},
        {BATON_TASK_NOT_OBJECT, "not_an_object"},
        {BATON_TASK_MISSING_FIELD, "missing_field"},
        {BATON_TASK_WRONG_TYPE, "wrong_type"},
        {BATON_TASK_OUT_OF_RANGE, "out_of_range"},
        {BATON_TASK_BAD_CHARSET, "bad_charset"},
        {BATON_TASK_BAD_LENGTH, "bad_length"},
        {BATON_TASK_BAD_TIME, "bad_time"},
        {BATON_TASK_CONFLICT, "conflicting_fields"},
        {BATON_TASK_NO_ID, "missing_id"},
        {BATON_TASK_UNKNOWN_QUEUE, "unknown_queue"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_str_eq(baton_task_reason_str(names[i].reason), names[i].name);
    ck_assert_str_eq(baton_task_reason_str((baton_task_reason_t)999), "unknown");
}
END_TEST

START_TEST(test_name_and_id_valid) {
    ck_assert(baton_task_name_valid("email.send"));
    ck_assert(baton_task_name_valid("A-z_0.9:x"));
    ck_assert(!baton_task_name_valid(NULL));
    ck_assert(!baton_task_name_valid(""));
    ck_assert(!baton_task_name_valid("a b"));
    ck_assert(!baton_task_name_valid("a/b"));
    ck_assert(!baton_task_name_valid("caf\xc3\xa9"));
    ck_assert(baton_task_id_valid("order-1"));
    ck_assert(baton_task_id_valid("!~\"\\"));
    ck_assert(!baton_task_id_valid(NULL));
    ck_assert(!baton_task_id_valid(""));
    ck_assert(!baton_task_id_valid("a b"));
    ck_assert(!baton_task_id_valid("a\x7f"));
    ck_assert(!baton_task_id_valid("\xc3\xa9"));
}
END_TEST

/* ---------------------------------------------------------------------------
 * Derived ids
 * ------------------------------------------------------------------------ */

static const char *derive(const char *topic, int32_t partition, int64_t offset, char *buf) {
    struct baton_kafka_coord c = {topic, partition, offset};
    baton_task_derive_id(&c, buf);
    return buf;
}

START_TEST(test_derive_id_plain_and_stable) {
    char a[BATON_TASK_ID_MAX + 1], b[BATON_TASK_ID_MAX + 1];
    ck_assert_str_eq(derive("baton.tasks", 3, 42, a), "baton.tasks:3:42");
    ck_assert_str_eq(derive("baton.tasks", 3, 42, b), a);
    ck_assert_str_eq(derive("t", 0, 0, a), "t:0:0");
    ck_assert_str_eq(derive("t", INT32_MAX, INT64_MAX, a), "t:2147483647:9223372036854775807");
    ck_assert_str_eq(derive("t", -1, -1001, a), "t:-1:-1001");
    ck_assert(baton_task_id_valid(derive("baton.tasks", 3, 42, a)));
}
END_TEST

START_TEST(test_derive_id_differs) {
    char base[BATON_TASK_ID_MAX + 1], other[BATON_TASK_ID_MAX + 1];
    derive("baton.tasks", 3, 42, base);
    ck_assert_str_ne(derive("baton.tasks", 3, 43, other), base);
    ck_assert_str_ne(derive("baton.tasks", 4, 42, other), base);
    ck_assert_str_ne(derive("baton.tasks2", 3, 42, other), base);
    /* The separator keeps topic/partition boundaries apart. */
    ck_assert_str_ne(derive("t1", 23, 4, base), derive("t", 123, 4, other));
}
END_TEST

/* Reference FNV-1a 64, written out independently of task.c. */
static uint64_t reference_fnv1a(const char *s) {
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= UINT64_C(1099511628211);
    }
    return h;
}

START_TEST(test_derive_id_long_topic_hashed) {
    char *topic = repeat('t', 300);
    char id[BATON_TASK_ID_MAX + 1], again[BATON_TASK_ID_MAX + 1], want[64];
    char full[400];
    derive(topic, 3, 42, id);
    ck_assert_uint_eq(strlen(id), 6 + 16);
    ck_assert_int_eq(strncmp(id, "kafka:", 6), 0);
    for (size_t i = 6; i < 22; i++)
        ck_assert_msg(strchr("0123456789abcdef", id[i]), "not lower hex: %s", id);
    snprintf(full, sizeof full, "%s:3:42", topic);
    snprintf(want, sizeof want, "kafka:%016" PRIx64, reference_fnv1a(full));
    ck_assert_str_eq(id, want);
    ck_assert_str_eq(derive(topic, 3, 42, again), id);
    ck_assert_str_ne(derive(topic, 3, 43, again), id);
    ck_assert_str_ne(derive(topic, 2, 42, again), id);
    topic[0] = 'u';
    ck_assert_str_ne(derive(topic, 3, 42, again), id);
    free(topic);
}
END_TEST

/* The plain form is used up to exactly 128 characters. */
START_TEST(test_derive_id_boundary) {
    char id[BATON_TASK_ID_MAX + 1];
    char *topic = repeat('t', 123); /* + ":3:42" = 128 */
    derive(topic, 3, 42, id);
    ck_assert_uint_eq(strlen(id), 128);
    ck_assert_int_eq(strncmp(id, topic, 123), 0);
    ck_assert_str_eq(id + 123, ":3:42");
    free(topic);
    topic = repeat('t', 124); /* 129: hashed */
    derive(topic, 3, 42, id);
    ck_assert_uint_eq(strlen(id), 22);
    ck_assert_int_eq(strncmp(id, "kafka:", 6), 0);
    free(topic);
}
END_TEST

/* A message from a long topic gets the hashed id, and it is valid. */
START_TEST(test_parse_derives_hashed_id) {
    char *topic = repeat('x', 249); /* Kafka's longest topic name */
    struct baton_kafka_coord from = {topic, 0, 7};
    struct baton_task *task = NULL;
    const char *msg = "{\"type\":\"a\"}";
    ck_assert_int_eq(parse_both(msg, strlen(msg), NULL, &from, &task, NULL), BATON_OK);
    ck_assert_uint_eq(strlen(task->id), 22);
    ck_assert_int_eq(task->id_derived, 1);
    ck_assert(baton_task_id_valid(task->id));
    baton_task_destroy(task);
    free(topic);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Limits
 * ------------------------------------------------------------------------ */

/* `{"type":"<type>","queue":"<queue>","id":"<id>"}`; caller frees. */
static char *names_message(const char *type, const char *queue, const char *id) {
    size_t size = strlen(type) + strlen(queue) + strlen(id) + 64;
    char *msg = malloc(size);
    ck_assert_ptr_nonnull(msg);
    snprintf(msg, size, "{\"type\":\"%s\",\"queue\":\"%s\",\"id\":\"%s\"}", type, queue, id);
    return msg;
}

START_TEST(test_name_lengths) {
    char *n128 = repeat('n', 128), *n129 = repeat('n', 129);
    char *msg;
    struct baton_task *task = NULL;

    msg = names_message(n128, n128, n128);
    ck_assert_int_eq(parse_both(msg, strlen(msg), NULL, NULL, &task, NULL), BATON_OK);
    ck_assert_uint_eq(strlen(task->type), 128);
    ck_assert_uint_eq(strlen(task->queue), 128);
    ck_assert_uint_eq(strlen(task->id), 128);
    ck_assert(baton_task_name_valid(n128) && baton_task_id_valid(n128));
    ck_assert(!baton_task_name_valid(n129) && !baton_task_id_valid(n129));
    baton_task_destroy(task);
    free(msg);

    msg = names_message(n129, "q", "i");
    expect_reject(msg, strlen(msg), NULL, NULL, BATON_TASK_BAD_LENGTH, "type", "got 129");
    free(msg);
    msg = names_message("t", n129, "i");
    expect_reject(msg, strlen(msg), NULL, NULL, BATON_TASK_BAD_LENGTH, "queue", "got 129");
    free(msg);
    msg = names_message("t", "q", n129);
    expect_reject(msg, strlen(msg), NULL, NULL, BATON_TASK_BAD_LENGTH, "id", "got 129");
    free(msg);
    free(n128);
    free(n129);
}
END_TEST

/* `{"type":"a","id":"x","payload":"<n a's>"}`: payload is n + 2 bytes. */
static char *payload_message(size_t n, size_t *len) {
    const char *head = "{\"type\":\"a\",\"id\":\"x\",\"payload\":\"";
    size_t head_len = strlen(head);
    char *msg = malloc(head_len + n + 3);
    ck_assert_ptr_nonnull(msg);
    memcpy(msg, head, head_len);
    memset(msg + head_len, 'a', n);
    memcpy(msg + head_len + n, "\"}", 3);
    *len = head_len + n + 2;
    return msg;
}

START_TEST(test_payload_default_limit) {
    size_t len;
    struct baton_task *task = NULL;
    char *msg = payload_message(BATON_TASK_DEFAULT_MAX_PAYLOAD - 2, &len);
    ck_assert_int_eq(parse_both(msg, len, NULL, NULL, &task, NULL), BATON_OK);
    ck_assert_uint_eq(json_string_length(task->payload), BATON_TASK_DEFAULT_MAX_PAYLOAD - 2);
    struct baton_task_error err;
    ck_assert_int_eq(baton_task_validate(task, NULL, &err), BATON_OK);
    baton_task_destroy(task);
    free(msg);

    msg = payload_message(BATON_TASK_DEFAULT_MAX_PAYLOAD - 1, &len);
    expect_reject(msg, len, NULL, NULL, BATON_TASK_TOO_LARGE, "payload",
                  "is 1048577 bytes compact-encoded, over the limit of 1048576");
    free(msg);
}
END_TEST

START_TEST(test_payload_configured_limit) {
    struct baton_task_parse_opts opts = {.max_payload_bytes = 100};
    size_t len;
    struct baton_task *task = NULL;
    char *msg = payload_message(98, &len);
    ck_assert_int_eq(parse_both(msg, len, &opts, NULL, &task, NULL), BATON_OK);
    ck_assert_int_eq(baton_task_validate(task, &opts, NULL), BATON_OK);
    opts.max_payload_bytes = 99;
    struct baton_task_error err;
    ck_assert_int_eq(baton_task_validate(task, &opts, &err), BATON_ERR_INVALID);
    ck_assert_int_eq(err.reason, BATON_TASK_TOO_LARGE);
    ck_assert_str_eq(err.field, "payload");
    opts.max_payload_bytes = 100;
    baton_task_destroy(task);
    free(msg);

    msg = payload_message(99, &len);
    expect_reject(msg, len, &opts, NULL, BATON_TASK_TOO_LARGE, "payload", "101 bytes");
    /* 0 means the default, under which it is fine. */
    opts.max_payload_bytes = 0;
    ck_assert_int_eq(parse_both(msg, len, &opts, NULL, &task, NULL), BATON_OK);
    baton_task_destroy(task);
    free(msg);
}
END_TEST

/* The limit is on the compact encoding, not on the bytes as sent. */
START_TEST(test_payload_measured_compact) {
    struct baton_task_parse_opts opts = {.max_payload_bytes = 9}; /* [1,2,3,4] */
    const char *msg = "{\"type\":\"a\",\"id\":\"x\",\"payload\":[ 1 ,\n 2 ,\t3 , 4 ]}";
    struct baton_task *task = NULL;
    ck_assert_int_eq(parse_both(msg, strlen(msg), &opts, NULL, &task, NULL), BATON_OK);
    baton_task_destroy(task);
    opts.max_payload_bytes = 8;
    expect_reject(msg, strlen(msg), &opts, NULL, BATON_TASK_TOO_LARGE, "payload", "9 bytes");
}
END_TEST

/* A message over max_payload_bytes + 64 KiB is refused unparsed. */
START_TEST(test_message_envelope_limit) {
    struct baton_task_parse_opts opts = {.max_payload_bytes = 100};
    size_t limit = 100 + 64 * 1024;
    char *msg = repeat(' ', limit + 1);
    const char *task_json = "{\"type\":\"a\",\"id\":\"x\"}";
    memcpy(msg, task_json, strlen(task_json));
    struct baton_task *task = NULL;
    ck_assert_int_eq(parse_both(msg, limit, &opts, NULL, &task, NULL), BATON_OK);
    baton_task_destroy(task);
    expect_reject(msg, limit + 1, &opts, NULL, BATON_TASK_TOO_LARGE, "", "65637 bytes");
    /* Refused before parsing: garbage of that size is too_large, not invalid. */
    memset(msg, '{', limit + 1);
    expect_reject(msg, limit + 1, &opts, NULL, BATON_TASK_TOO_LARGE, "", NULL);
    free(msg);
}
END_TEST

/* `{"type":"a","id":"x","pad":"<n x's>"}`, stored as `<stored prefix><n
 * x's>"}`; caller frees. */
#define PAD_STORED_PREFIX                                                                          \
    "{\"id\":\"x\",\"type\":\"a\",\"queue\":\"default\",\"priority\":5,\"payload\":null,"          \
    "\"max_attempts\":3,\"timeout_ms\":300000,\"meta\":{},\"pad\":\""
static char *pad_message(size_t n, size_t *len) {
    const char *head = "{\"type\":\"a\",\"id\":\"x\",\"pad\":\"";
    size_t head_len = strlen(head);
    char *msg = malloc(head_len + n + 3);
    ck_assert_ptr_nonnull(msg);
    memcpy(msg, head, head_len);
    memset(msg + head_len, 'x', n);
    memcpy(msg + head_len + n, "\"}", 3);
    *len = head_len + n + 2;
    return msg;
}

/*
 * Found by tests/fuzz/fuzz_task.c (its round-trip check, on a hand-made
 * input): a message within the whole-message limit whose stored form is
 * not. baton_task_encode() writes every default out and jansson re-prints
 * real numbers (0.1 becomes 0.10000000000000001), so the stored form could
 * be several times the message: it did not parse again, and
 * baton_task_validate() refused the task parse_both() had accepted.
 * The parser now holds the stored form to the same limit.
 */
START_TEST(test_stored_form_limit) {
    struct baton_task_parse_opts opts = {.max_payload_bytes = 100};
    size_t limit = 100 + 64 * 1024;
    size_t fixed = strlen(PAD_STORED_PREFIX) + 2; /* + `"}` */

    /* Stored in exactly `limit` bytes: accepted, and the round trip holds. */
    size_t len;
    char *msg = pad_message(limit - fixed, &len);
    ck_assert_uint_lt(len, limit);
    struct baton_task *task = NULL;
    struct baton_task_error err;
    ck_assert_int_eq(parse_both(msg, len, &opts, NULL, &task, &err), BATON_OK);
    size_t stored_len = 0;
    char *stored = baton_task_encode(task, &stored_len);
    ck_assert_uint_eq(stored_len, limit);
    ck_assert_int_eq(strncmp(stored, PAD_STORED_PREFIX, strlen(PAD_STORED_PREFIX)), 0);
    ck_assert_int_eq(baton_task_validate(task, &opts, &err), BATON_OK);
    struct baton_task *again = NULL;
    ck_assert_int_eq(parse_both(stored, stored_len, &opts, NULL, &again, &err), BATON_OK);
    assert_task_eq(task, again);
    baton_task_destroy(again);
    baton_task_destroy(task);
    free(stored);
    free(msg);

    /* One byte more once stored, though the message itself is shorter
     * than the limit: too_large. */
    msg = pad_message(limit - fixed + 1, &len);
    ck_assert_uint_lt(len, limit);
    expect_reject(msg, len, &opts, NULL, BATON_TASK_TOO_LARGE, "", "65637 bytes once stored");
    free(msg);

    /* Real numbers: 4 bytes each as sent, 20 as stored. */
    size_t n = 4000;
    msg = malloc(32 + 4 * n);
    ck_assert_ptr_nonnull(msg);
    const char *head = "{\"type\":\"a\",\"x\":[";
    len = strlen(head);
    memcpy(msg, head, len);
    for (size_t i = 0; i < n; i++, len += 4)
        memcpy(msg + len, "0.1,", 4);
    memcpy(msg + len - 1, "]}", 3); /* the last comma becomes ] */
    len++;
    ck_assert_uint_lt(len, 17000);
    expect_reject(msg, len, &opts, &coord, BATON_TASK_TOO_LARGE, "", "once stored");
    /* Under the default limit the same message is fine. */
    ck_assert_int_eq(parse_both(msg, len, NULL, &coord, &task, &err), BATON_OK);
    ck_assert_int_eq(baton_task_validate(task, NULL, &err), BATON_OK);
    baton_task_destroy(task);
    free(msg);
}
END_TEST

START_TEST(test_integer_bounds) {
    static const struct {
        const char *json;
        int ok;
        const char *field;
    } cases[] = {
        {"{'type':'a','priority':0}", 1, NULL},
        {"{'type':'a','priority':9}", 1, NULL},
        {"{'type':'a','priority':-1}", 0, "priority"},
        {"{'type':'a','priority':10}", 0, "priority"},
        {"{'type':'a','max_attempts':1}", 1, NULL},
        {"{'type':'a','max_attempts':0}", 0, "max_attempts"},
        {"{'type':'a','max_attempts':1000}", 1, NULL},
        {"{'type':'a','max_attempts':1001}", 0, "max_attempts"},
        {"{'type':'a','max_attempts':2147483647}", 0, "max_attempts"},
        {"{'type':'a','max_attempts':2147483648}", 0, "max_attempts"},
        {"{'type':'a','timeout_ms':1}", 1, NULL},
        {"{'type':'a','timeout_ms':86400000}", 1, NULL},
        {"{'type':'a','timeout_ms':86400001}", 0, "timeout_ms"},
        {"{'type':'a','timeout_ms':9223372036854775807}", 0, "timeout_ms"},
        {"{'type':'a','timeout_ms':0}", 0, "timeout_ms"},
        {"{'type':'a','timeout_ms':-9223372036854775808}", 0, "timeout_ms"},
        {"{'type':'a','delay_ms':0}", 1, NULL},
        {"{'type':'a','delay_ms':31536000000}", 1, NULL},
        {"{'type':'a','delay_ms':31536000001}", 0, "delay_ms"},
        {"{'type':'a','delay_ms':9223372036854775807}", 0, "delay_ms"},
        {"{'type':'a','delay_ms':-1}", 0, "delay_ms"},
        {"{'type':'a','delay_ms':-9223372036854775808}", 0, "delay_ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msg = dq(cases[i].json);
        if (cases[i].ok) {
            baton_task_destroy(parse_ok(cases[i].json));
        } else {
            expect_reject(msg, strlen(msg), NULL, &coord, BATON_TASK_OUT_OF_RANGE, cases[i].field,
                          "must be an integer");
        }
        free(msg);
    }
}
END_TEST

/* A value beyond int64 or double, or nesting beyond jansson's depth limit,
 * is a JSON problem, reported as such and never a crash. */
START_TEST(test_json_limits) {
    const char *big = "{\"type\":\"a\",\"timeout_ms\":9223372036854775808}";
    expect_reject(big, strlen(big), NULL, &coord, BATON_TASK_INVALID_JSON, "", NULL);
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    ck_assert_ptr_nonnull(deep);
    size_t n = (size_t)snprintf(deep, 64, "{\"type\":\"a\",\"payload\":");
    memset(deep + n, '[', depth);
    memset(deep + n + depth, ']', depth);
    memcpy(deep + n + 2 * depth, "}", 2);
    expect_reject(deep, strlen(deep), NULL, &coord, BATON_TASK_INVALID_JSON, "", NULL);
    free(deep);
}
END_TEST

/* However long and however binary the bad value, the detail stays a short
 * printable sentence. */
START_TEST(test_detail_bounded_and_printable) {
    size_t n = 100000;
    char *msg = malloc(n + 32);
    ck_assert_ptr_nonnull(msg);
    memcpy(msg, "{\"type\":\"", 9);
    for (size_t i = 0; i < n; i++)
        msg[9 + i] = (i % 2) ? '\x7f' : '\x01';
    memcpy(msg + 9 + n, "\"}", 3);
    /* Raw control characters already make it invalid JSON... */
    expect_reject(msg, strlen(msg), NULL, &coord, BATON_TASK_INVALID_JSON, "", NULL);
    for (size_t i = 0; i < n; i++)
        msg[9 + i] = (i % 2) ? '\x7f' : ' ';
    /* ...while space and DEL are legal JSON, just not in a type. */
    expect_reject(msg, strlen(msg), NULL, &coord, BATON_TASK_BAD_LENGTH, "type", "...");
    msg[9 + 128] = '\0';
    memcpy(msg + 9 + 100, "\"}", 3);
    expect_reject(msg, strlen(msg), NULL, &coord, BATON_TASK_BAD_CHARSET, "type", "\\x7f");
    free(msg);
}
END_TEST

START_TEST(test_time_bounds) {
    baton_task_destroy(parse_ok("{'type':'a','run_at':'0000-01-01T00:00:00Z',"
                                "'deadline':'9999-12-31T23:59:59.999Z'}"));
    char *msg = dq("{'type':'a','deadline':'9999-12-31T23:59:59.999-01:00'}");
    expect_reject(msg, strlen(msg), NULL, &coord, BATON_TASK_BAD_TIME, "deadline",
                  "outside years 0000-9999");
    free(msg);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Bad messages: input -> reason, field, part of the detail
 * ------------------------------------------------------------------------ */

static const struct {
    const char *json; /* ' stands for " */
    baton_task_reason_t reason;
    const char *field;
    const char *detail; /* must occur in the detail; NULL: anything */
} bad_cases[] = {
    {"", BATON_TASK_EMPTY, "", "empty"},
    /* Not JSON. */
    {" ", BATON_TASK_INVALID_JSON, "", "not valid JSON"},
    {"{", BATON_TASK_INVALID_JSON, "", "not valid JSON"},
    {"{'type':'a',}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a'} {}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a'}x", BATON_TASK_INVALID_JSON, "", NULL},
    {"{type:'a'}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a','type':'b'}", BATON_TASK_INVALID_JSON, "", "duplicate"},
    {"{'type':'a','payload':{'k':1,'k':2}}", BATON_TASK_INVALID_JSON, "", "duplicate"},
    {"{'type':'a','payload':'\xff'}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a','payload':'\xc3('}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a','payload':'\xed\xa0\x80'}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a','payload':'\xc0\xaf'}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a','payload':'\\u0000'}", BATON_TASK_INVALID_JSON, "", "holds \\u0000"},
    {"{'type':'a','meta':{'\\u0000':'x'}}", BATON_TASK_INVALID_JSON, "", "holds \\u0000"},
    {"{'type':'a','payload':'\\ud800'}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a','payload':NaN}", BATON_TASK_INVALID_JSON, "", NULL},
    {"{'type':'a','payload':1e999}", BATON_TASK_INVALID_JSON, "", NULL},
    {"\xef\xbb\xbf{'type':'a'}", BATON_TASK_INVALID_JSON, "", NULL}, /* BOM */
    /* Not an object. */
    {"'task'", BATON_TASK_NOT_OBJECT, "", "got a string"},
    {"[{'type':'a'}]", BATON_TASK_NOT_OBJECT, "", "got an array"},
    {"null", BATON_TASK_NOT_OBJECT, "", "got null"},
    {" 42 ", BATON_TASK_NOT_OBJECT, "", "got an integer"},
    /* type */
    {"{}", BATON_TASK_MISSING_FIELD, "type", "field 'type' is required"},
    {"{'id':'x','Type':'a'}", BATON_TASK_MISSING_FIELD, "type", NULL},
    {"{'type':null}", BATON_TASK_MISSING_FIELD, "type", NULL},
    {"{'type':42}", BATON_TASK_WRONG_TYPE, "type", "got an integer"},
    {"{'type':['a']}", BATON_TASK_WRONG_TYPE, "type", "got an array"},
    {"{'type':''}", BATON_TASK_BAD_LENGTH, "type", "must be 1 to 128 characters long, got 0"},
    {"{'type':'send email'}", BATON_TASK_BAD_CHARSET, "type", "(byte 0x20 at index 4)"},
    {"{'type':'a/b'}", BATON_TASK_BAD_CHARSET, "type", "got \"a/b\""},
    {"{'type':'caf\xc3\xa9'}", BATON_TASK_BAD_CHARSET, "type", "got \"caf\\xc3\\xa9\""},
    {"{'type':'a\\n'}", BATON_TASK_BAD_CHARSET, "type", "got \"a\\x0a\""},
    /* id */
    {"{'type':'a','id':7}", BATON_TASK_WRONG_TYPE, "id", "got an integer"},
    {"{'type':'a','id':''}", BATON_TASK_BAD_LENGTH, "id", "got 0"},
    {"{'type':'a','id':'a b'}", BATON_TASK_BAD_CHARSET, "id", "(byte 0x20 at index 1)"},
    {"{'type':'a','id':'a\\tb'}", BATON_TASK_BAD_CHARSET, "id", "byte 0x09"},
    {"{'type':'a','id':'\xc3\xa9'}", BATON_TASK_BAD_CHARSET, "id", "byte 0xc3"},
    {"{'type':'a','id':'a\\u007f'}", BATON_TASK_BAD_CHARSET, "id", "byte 0x7f"},
    /* queue */
    {"{'type':'a','queue':''}", BATON_TASK_BAD_LENGTH, "queue", NULL},
    {"{'type':'a','queue':false}", BATON_TASK_WRONG_TYPE, "queue", "got false"},
    {"{'type':'a','queue':'high!'}", BATON_TASK_BAD_CHARSET, "queue", "byte 0x21"},
    /* priority */
    {"{'type':'a','priority':12}", BATON_TASK_OUT_OF_RANGE, "priority",
     "field 'priority' must be an integer from 0 to 9, got 12"},
    {"{'type':'a','priority':10}", BATON_TASK_OUT_OF_RANGE, "priority", "got 10"},
    {"{'type':'a','priority':-1}", BATON_TASK_OUT_OF_RANGE, "priority", "got -1"},
    {"{'type':'a','priority':5.0}", BATON_TASK_WRONG_TYPE, "priority",
     "field 'priority' must be an integer from 0 to 9, got a real number"},
    {"{'type':'a','priority':1e0}", BATON_TASK_WRONG_TYPE, "priority", "real number"},
    {"{'type':'a','priority':'5'}", BATON_TASK_WRONG_TYPE, "priority", "got a string"},
    {"{'type':'a','priority':true}", BATON_TASK_WRONG_TYPE, "priority", "got true"},
    {"{'type':'a','priority':[5]}", BATON_TASK_WRONG_TYPE, "priority", "got an array"},
    /* max_attempts, timeout_ms */
    {"{'type':'a','max_attempts':0}", BATON_TASK_OUT_OF_RANGE, "max_attempts", "got 0"},
    {"{'type':'a','max_attempts':-3}", BATON_TASK_OUT_OF_RANGE, "max_attempts", "got -3"},
    {"{'type':'a','max_attempts':2147483648}", BATON_TASK_OUT_OF_RANGE, "max_attempts",
     "from 1 to 1000, got 2147483648"},
    {"{'type':'a','max_attempts':1001}", BATON_TASK_OUT_OF_RANGE, "max_attempts",
     "field 'max_attempts' must be an integer from 1 to 1000, got 1001"},
    {"{'type':'a','max_attempts':2.5}", BATON_TASK_WRONG_TYPE, "max_attempts", "real number"},
    {"{'type':'a','timeout_ms':0}", BATON_TASK_OUT_OF_RANGE, "timeout_ms", "from 1 to"},
    /* The overflow a producer could cause before the cap: the worker added
     * this to its clock and timed the task out at once. */
    {"{'type':'a','timeout_ms':9223372036854775807}", BATON_TASK_OUT_OF_RANGE, "timeout_ms",
     "field 'timeout_ms' must be an integer from 1 to 86400000 (24 hours), got "
     "9223372036854775807"},
    {"{'type':'a','timeout_ms':-1}", BATON_TASK_OUT_OF_RANGE, "timeout_ms", "got -1"},
    {"{'type':'a','timeout_ms':'300s'}", BATON_TASK_WRONG_TYPE, "timeout_ms", "got a string"},
    /* run_at, delay_ms, deadline */
    {"{'type':'a','run_at':'tomorrow'}", BATON_TASK_BAD_TIME, "run_at", "got \"tomorrow\""},
    {"{'type':'a','run_at':'2023-02-29T00:00:00Z'}", BATON_TASK_BAD_TIME, "run_at",
     "day 29 is out of range for 2023-02"},
    {"{'type':'a','run_at':'2026-01-01'}", BATON_TASK_BAD_TIME, "run_at", NULL},
    {"{'type':'a','run_at':'2026-01-01T00:00:00'}", BATON_TASK_BAD_TIME, "run_at", NULL},
    {"{'type':'a','run_at':1767225600000}", BATON_TASK_WRONG_TYPE, "run_at", "got an integer"},
    {"{'type':'a','delay_ms':-1}", BATON_TASK_OUT_OF_RANGE, "delay_ms", "got -1"},
    {"{'type':'a','delay_ms':9223372036854775807}", BATON_TASK_OUT_OF_RANGE, "delay_ms",
     "field 'delay_ms' must be an integer from 0 to 31536000000 (365 days), got "
     "9223372036854775807"},
    {"{'type':'a','delay_ms':1.5}", BATON_TASK_WRONG_TYPE, "delay_ms", NULL},
    {"{'type':'a','delay_ms':'5s'}", BATON_TASK_WRONG_TYPE, "delay_ms", NULL},
    {"{'type':'a','run_at':'2026-01-01T00:00:00Z','delay_ms':0}", BATON_TASK_CONFLICT, "delay_ms",
     "mutually exclusive"},
    {"{'type':'a','deadline':'2026-01-01T25:00:00Z'}", BATON_TASK_BAD_TIME, "deadline", "hour 25"},
    {"{'type':'a','deadline':{}}", BATON_TASK_WRONG_TYPE, "deadline", "got an object"},
    /* meta */
    {"{'type':'a','meta':[]}", BATON_TASK_WRONG_TYPE, "meta", "got an array"},
    {"{'type':'a','meta':'tenant=acme'}", BATON_TASK_WRONG_TYPE, "meta", "got a string"},
    {"{'type':'a','meta':{'a':'b','n':1}}", BATON_TASK_WRONG_TYPE, "meta",
     "key \"n\" holds an integer"},
    {"{'type':'a','meta':{'a':null}}", BATON_TASK_WRONG_TYPE, "meta", "holds null"},
    {"{'type':'a','meta':{'a':{'b':'c'}}}", BATON_TASK_WRONG_TYPE, "meta", "holds an object"},
    /* Contract order decides which problem is reported, not key order. */
    {"{'priority':99,'type':'a b'}", BATON_TASK_BAD_CHARSET, "type", NULL},
    {"{'meta':1,'priority':99,'type':'a'}", BATON_TASK_OUT_OF_RANGE, "priority", NULL},
    {"{'deadline':'x','delay_ms':1,'run_at':'2026-01-01T00:00:00Z','type':'a'}",
     BATON_TASK_CONFLICT, "delay_ms", NULL},
};

START_TEST(test_parse_bad) {
    char *msg = dq(bad_cases[_i].json);
    expect_reject(msg, strlen(msg), NULL, &coord, bad_cases[_i].reason, bad_cases[_i].field,
                  bad_cases[_i].detail);
    free(msg);
}
END_TEST

START_TEST(test_missing_id_without_coordinates) {
    const char *msg = "{\"type\":\"a\"}";
    expect_reject(msg, strlen(msg), NULL, NULL, BATON_TASK_NO_ID, "id", "no Kafka coordinates");
    msg = "{\"type\":\"a\",\"id\":null}";
    expect_reject(msg, strlen(msg), NULL, NULL, BATON_TASK_NO_ID, "id", NULL);
}
END_TEST

/* A NUL byte inside the value (a C string's terminator sent along). */
START_TEST(test_parse_embedded_nul) {
    const char msg[] = "{\"type\":\"a\",\"id\":\"x\"}";
    expect_reject(msg, sizeof msg, NULL, NULL, BATON_TASK_INVALID_JSON, "", NULL);
    const char msg2[] = "{\"type\":\"a\0b\",\"id\":\"x\"}";
    expect_reject(msg2, sizeof msg2 - 1, NULL, NULL, BATON_TASK_INVALID_JSON, "", NULL);
}
END_TEST

/* err may be NULL; *out is NULL after any failure. */
START_TEST(test_parse_without_error_struct) {
    struct baton_task *task = (struct baton_task *)&task;
    ck_assert_int_eq(parse_both("{}", 2, NULL, &coord, &task, NULL), BATON_ERR_INVALID);
    ck_assert_ptr_null(task);
    ck_assert_int_eq(parse_both("", 0, NULL, &coord, &task, NULL), BATON_ERR_INVALID);
    ck_assert_ptr_null(task);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Validation of tasks built in code
 * ------------------------------------------------------------------------ */

static void set_str(char **field, const char *value) {
    free(*field);
    *field = value ? strdup(value) : NULL;
}

static void mut_none(struct baton_task *t) {
    (void)t;
}
static void mut_no_type(struct baton_task *t) {
    set_str(&t->type, NULL);
}
static void mut_type_space(struct baton_task *t) {
    set_str(&t->type, "a b");
}
static void mut_type_long(struct baton_task *t) {
    free(t->type);
    t->type = repeat('a', 129);
}
static void mut_no_id(struct baton_task *t) {
    set_str(&t->id, NULL);
}
static void mut_id_empty(struct baton_task *t) {
    set_str(&t->id, "");
}
static void mut_id_space(struct baton_task *t) {
    set_str(&t->id, "a b");
}
static void mut_no_queue(struct baton_task *t) {
    set_str(&t->queue, NULL);
}
static void mut_queue_bad(struct baton_task *t) {
    set_str(&t->queue, "q/1");
}
static void mut_priority_10(struct baton_task *t) {
    t->priority = 10;
}
static void mut_priority_neg(struct baton_task *t) {
    t->priority = -1;
}
static void mut_no_payload(struct baton_task *t) {
    json_decref(t->payload);
    t->payload = NULL;
}
static void mut_payload_nul(struct baton_task *t) {
    json_decref(t->payload);
    t->payload = json_pack("{s:[o]}", "k", json_stringn("a\0b", 3));
}
static void mut_payload_big(struct baton_task *t) {
    char *s = repeat('p', BATON_TASK_DEFAULT_MAX_PAYLOAD - 1);
    json_decref(t->payload);
    t->payload = json_string(s);
    free(s);
}
static void mut_attempts_0(struct baton_task *t) {
    t->max_attempts = 0;
}
static void mut_timeout_0(struct baton_task *t) {
    t->timeout_ms = 0;
}
static void mut_delay_neg(struct baton_task *t) {
    t->delay_ms = -1;
}
static void mut_attempts_over_cap(struct baton_task *t) {
    t->max_attempts = INT_MAX;
}
static void mut_timeout_over_cap(struct baton_task *t) {
    t->timeout_ms = INT64_MAX;
}
static void mut_delay_over_cap(struct baton_task *t) {
    t->delay_ms = BATON_TASK_DELAY_MS_MAX + 1;
}
static void mut_at_caps(struct baton_task *t) {
    t->max_attempts = BATON_TASK_MAX_ATTEMPTS_MAX;
    t->timeout_ms = BATON_TASK_TIMEOUT_MS_MAX;
    t->delay_ms = BATON_TASK_DELAY_MS_MAX;
}
static void mut_conflict(struct baton_task *t) {
    t->run_at_ms = 0;
    t->delay_ms = 0;
}
static void mut_run_at_far(struct baton_task *t) {
    t->run_at_ms = INT64_C(253402300800000);
}
static void mut_deadline_early(struct baton_task *t) {
    t->deadline_ms = INT64_C(-62167219200001);
}
static void mut_no_meta(struct baton_task *t) {
    json_decref(t->meta);
    t->meta = NULL;
}
static void mut_meta_int(struct baton_task *t) {
    json_object_set_new(t->meta, "n", json_integer(1));
}
static void mut_meta_nul(struct baton_task *t) {
    json_object_set_new(t->meta, "k", json_stringn("x\0y", 3));
}
static void mut_meta_huge(struct baton_task *t) {
    char *s = repeat('m', BATON_TASK_DEFAULT_MAX_PAYLOAD + 64 * 1024);
    json_object_set_new(t->meta, "k", json_string(s));
    free(s);
}
static void mut_extra_contract(struct baton_task *t) {
    json_object_set_new(t->extra, "priority", json_integer(1));
}
static void mut_extra_array(struct baton_task *t) {
    json_decref(t->extra);
    t->extra = json_array();
}
static void mut_extra_nul_key(struct baton_task *t) {
    json_object_setn_new(t->extra, "a\0b", 3, json_true());
}

static const struct {
    void (*mutate)(struct baton_task *);
    baton_task_reason_t reason; /* BATON_TASK_OK: must validate */
    const char *field;
} validate_cases[] = {
    {mut_none, BATON_TASK_OK, ""},
    {mut_no_type, BATON_TASK_MISSING_FIELD, "type"},
    {mut_type_space, BATON_TASK_BAD_CHARSET, "type"},
    {mut_type_long, BATON_TASK_BAD_LENGTH, "type"},
    {mut_no_id, BATON_TASK_NO_ID, "id"},
    {mut_id_empty, BATON_TASK_BAD_LENGTH, "id"},
    {mut_id_space, BATON_TASK_BAD_CHARSET, "id"},
    {mut_no_queue, BATON_TASK_MISSING_FIELD, "queue"},
    {mut_queue_bad, BATON_TASK_BAD_CHARSET, "queue"},
    {mut_priority_10, BATON_TASK_OUT_OF_RANGE, "priority"},
    {mut_priority_neg, BATON_TASK_OUT_OF_RANGE, "priority"},
    {mut_no_payload, BATON_TASK_MISSING_FIELD, "payload"},
    {mut_payload_nul, BATON_TASK_INVALID_JSON, "payload"},
    {mut_payload_big, BATON_TASK_TOO_LARGE, "payload"},
    {mut_attempts_0, BATON_TASK_OUT_OF_RANGE, "max_attempts"},
    {mut_timeout_0, BATON_TASK_OUT_OF_RANGE, "timeout_ms"},
    {mut_delay_neg, BATON_TASK_OUT_OF_RANGE, "delay_ms"},
    /* The producer library validates with these: it refuses to send what
     * the scheduler would reject. */
    {mut_attempts_over_cap, BATON_TASK_OUT_OF_RANGE, "max_attempts"},
    {mut_timeout_over_cap, BATON_TASK_OUT_OF_RANGE, "timeout_ms"},
    {mut_delay_over_cap, BATON_TASK_OUT_OF_RANGE, "delay_ms"},
    {mut_at_caps, BATON_TASK_OK, ""},
    {mut_conflict, BATON_TASK_CONFLICT, "delay_ms"},
    {mut_run_at_far, BATON_TASK_BAD_TIME, "run_at"},
    {mut_deadline_early, BATON_TASK_BAD_TIME, "deadline"},
    {mut_no_meta, BATON_TASK_WRONG_TYPE, "meta"},
    {mut_meta_int, BATON_TASK_WRONG_TYPE, "meta"},
    {mut_meta_nul, BATON_TASK_INVALID_JSON, "meta"},
    {mut_meta_huge, BATON_TASK_TOO_LARGE, ""},
    {mut_extra_contract, BATON_TASK_CONFLICT, "extra"},
    {mut_extra_array, BATON_TASK_WRONG_TYPE, "extra"},
    {mut_extra_nul_key, BATON_TASK_INVALID_JSON, "extra"},
};

START_TEST(test_validate) {
    struct baton_task *task = baton_task_new("email.send");
    ck_assert_ptr_nonnull(task);
    task->id = strdup("order-1");
    validate_cases[_i].mutate(task);
    struct baton_task_error err;
    baton_err_t rc = baton_task_validate(task, NULL, &err);
    if (validate_cases[_i].reason == BATON_TASK_OK) {
        ck_assert_msg(rc == BATON_OK, "%s", err.detail);
        ck_assert_int_eq(err.reason, BATON_TASK_OK);
    } else {
        ck_assert_int_eq(rc, BATON_ERR_INVALID);
        ck_assert_msg(err.reason == validate_cases[_i].reason, "reason %s, want %s (%s)",
                      baton_task_reason_str(err.reason),
                      baton_task_reason_str(validate_cases[_i].reason), err.detail);
        ck_assert_str_eq(err.field, validate_cases[_i].field);
        assert_detail_sane(&err);
    }
    baton_task_destroy(task);
}
END_TEST

/* The same bad value gets the same reason, field and sentence whether it
 * arrives as a message or is set in code. */
START_TEST(test_validate_reports_like_parse) {
    struct baton_task *task = parse_ok("{'type':'a','id':'x'}");
    struct baton_task_error from_parse, from_validate;
    struct baton_task *bad = NULL;

    const char *msg = "{\"type\":\"a\",\"id\":\"x\",\"priority\":12}";
    parse_both(msg, strlen(msg), NULL, NULL, &bad, &from_parse);
    task->priority = 12;
    ck_assert_int_eq(baton_task_validate(task, NULL, &from_validate), BATON_ERR_INVALID);
    ck_assert_int_eq(from_validate.reason, from_parse.reason);
    ck_assert_str_eq(from_validate.field, from_parse.field);
    ck_assert_str_eq(from_validate.detail, from_parse.detail);
    task->priority = 5;

    msg = "{\"type\":\"a\",\"id\":\"x\",\"queue\":\"no way\"}";
    parse_both(msg, strlen(msg), NULL, NULL, &bad, &from_parse);
    set_str(&task->queue, "no way");
    ck_assert_int_eq(baton_task_validate(task, NULL, &from_validate), BATON_ERR_INVALID);
    ck_assert_str_eq(from_validate.detail, from_parse.detail);
    set_str(&task->queue, "default");

    msg = "{\"type\":\"a\",\"id\":\"x\",\"meta\":{\"k\":true}}";
    parse_both(msg, strlen(msg), NULL, NULL, &bad, &from_parse);
    json_object_set_new(task->meta, "k", json_true());
    ck_assert_int_eq(baton_task_validate(task, NULL, &from_validate), BATON_ERR_INVALID);
    ck_assert_str_eq(from_validate.detail, from_parse.detail);

    ck_assert_ptr_null(bad);
    baton_task_destroy(task);
}
END_TEST

/* A payload that contains itself cannot be encoded: an error, not a hang. */
START_TEST(test_validate_payload_cycle) {
    struct baton_task *task = baton_task_new("a");
    task->id = strdup("x");
    json_t *outer = json_array(), *inner = json_array();
    json_array_append(outer, inner);
    json_array_append(inner, outer);
    json_decref(task->payload);
    task->payload = outer;
    struct baton_task_error err;
    ck_assert_int_eq(baton_task_validate(task, NULL, &err), BATON_ERR_INVALID);
    ck_assert_int_eq(err.reason, BATON_TASK_INVALID_JSON);
    ck_assert_str_eq(err.field, "payload");
    ck_assert_ptr_null(baton_task_encode(task, NULL));
    json_array_clear(inner); /* break the cycle so both are freed */
    json_decref(inner);
    baton_task_destroy(task);
}
END_TEST

START_TEST(test_validate_null_and_no_error_struct) {
    struct baton_task_error err;
    ck_assert_int_eq(baton_task_validate(NULL, NULL, &err), BATON_ERR_INVALID);
    struct baton_task *task = baton_task_new("a");
    ck_assert_int_eq(baton_task_validate(task, NULL, NULL), BATON_ERR_INVALID); /* no id */
    task->id = strdup("x");
    ck_assert_int_eq(baton_task_validate(task, NULL, NULL), BATON_OK);
    baton_task_destroy(task);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Suite
 * ------------------------------------------------------------------------ */

#define N(table) ((int)(sizeof(table) / sizeof((table)[0])))

/* id_optional: the producer's path for JSON lines without an id. */
START_TEST(test_id_optional) {
    static const char msg[] = "{\"type\":\"a\"}";
    struct baton_task_parse_opts opts = {.id_optional = 1};
    struct baton_task_error err;
    struct baton_task *t = NULL;
    ck_assert_int_eq(parse_both(msg, sizeof msg - 1, &opts, NULL, &t, &err), BATON_OK);
    ck_assert_ptr_null(t->id);
    ck_assert_int_eq(t->id_derived, 0);
    baton_task_destroy(t);
    /* Without the option the same message is refused... */
    ck_assert_int_eq(parse_both(msg, sizeof msg - 1, NULL, NULL, &t, &err), BATON_ERR_INVALID);
    ck_assert_int_eq(err.reason, BATON_TASK_NO_ID);
    /* ...and coordinates still win over the option. */
    struct baton_kafka_coord here = {"baton.tasks", 2, 7};
    ck_assert_int_eq(parse_both(msg, sizeof msg - 1, &opts, &here, &t, &err), BATON_OK);
    ck_assert_str_eq(t->id, "baton.tasks:2:7");
    baton_task_destroy(t);
    /* A present id is checked as usual. */
    static const char bad[] = "{\"type\":\"a\",\"id\":\"has space\"}";
    ck_assert_int_eq(parse_both(bad, sizeof bad - 1, &opts, NULL, &t, &err), BATON_ERR_INVALID);
    ck_assert_int_eq(err.reason, BATON_TASK_BAD_CHARSET);
}
END_TEST

static Suite *task_suite(void) {
    Suite *s = suite_create("task");

    TCase *core = tcase_create("core");
    tcase_add_loop_test(core, test_parse_good, 0, N(good_cases));
    tcase_add_test(core, test_parse_defaults_exact);
    tcase_add_test(core, test_new_defaults_exact);
    tcase_add_test(core, test_round_trip_built_task);
    tcase_add_test(core, test_encode_values_as_jansson);
    tcase_add_test(core, test_parse_reads_only_len_bytes);
    tcase_add_test(core, test_explicit_id_not_derived);
    tcase_add_test(core, test_reason_strings);
    tcase_add_test(core, test_name_and_id_valid);
    tcase_add_test(core, test_derive_id_plain_and_stable);
    tcase_add_test(core, test_derive_id_differs);
    tcase_add_test(core, test_derive_id_long_topic_hashed);
    tcase_add_test(core, test_parse_derives_hashed_id);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_derive_id_boundary);
    tcase_add_test(limits, test_name_lengths);
    tcase_add_test(limits, test_payload_default_limit);
    tcase_add_test(limits, test_payload_configured_limit);
    tcase_add_test(limits, test_payload_measured_compact);
    tcase_add_test(limits, test_message_envelope_limit);
    tcase_add_test(limits, test_stored_form_limit);
    tcase_add_test(limits, test_integer_bounds);
    tcase_add_test(limits, test_json_limits);
    tcase_add_test(limits, test_detail_bounded_and_printable);
    tcase_add_test(limits, test_time_bounds);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_loop_test(errors, test_parse_bad, 0, N(bad_cases));
    tcase_add_test(errors, test_missing_id_without_coordinates);
    tcase_add_test(errors, test_id_optional);
    tcase_add_test(errors, test_parse_embedded_nul);
    tcase_add_test(errors, test_parse_without_error_struct);
    tcase_add_loop_test(errors, test_validate, 0, N(validate_cases));
    tcase_add_test(errors, test_validate_reports_like_parse);
    tcase_add_test(errors, test_validate_payload_cycle);
    tcase_add_test(errors, test_validate_null_and_no_error_struct);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(task_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
