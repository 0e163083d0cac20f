/*
 * test_worker_job.c - worker/job.c: a claimed task becomes a job. The
 * task's type and readability come from a scan that must never call a
 * text readable that jansson (json_loadb, flags 0, what the worker used
 * before the scan) refuses, nor give another type: a table of edge cases
 * and random mutations of a task check that, and the jobs made from
 * readable, unreadable and out-of-subset texts. Links the worker library.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker_internal.h"

/* What jansson makes of `text`: 1 if it reads it, with its type (or NULL). */
static int jansson_reads(const char *text, size_t n, char **type) {
    json_error_t jerr;
    json_t *t = json_loadb(text, n, 0, &jerr);
    const char *ty = json_string_value(json_object_get(t, "type"));
    *type = ty ? strdup(ty) : NULL;
    json_decref(t);
    return t != NULL;
}

/* The scan's answer for `text` agrees with jansson's; returns the scan's. */
static int check_agrees(const char *text, size_t n) {
    const char *type;
    size_t type_len;
    int scanned = baton_worker_task_scan(text, n, &type, &type_len);
    if (!scanned)
        return 0;
    char *jtype;
    ck_assert_msg(jansson_reads(text, n, &jtype), "scan reads what jansson refuses: %.*s", (int)n,
                  text);
    if (!jtype)
        ck_assert_msg(type == NULL, "scan found a type jansson does not: %.*s", (int)n, text);
    else
        ck_assert_msg(type && type_len == strlen(jtype) && memcmp(type, jtype, type_len) == 0,
                      "types differ (%s) for %.*s", jtype, (int)n, text);
    free(jtype);
    return 1;
}

START_TEST(test_scan_cases) {
    static const struct {
        const char *text;
        int scanned; /* 1: the fast path reads it */
    } cases[] = {
        {"{\"id\":\"a\",\"type\":\"noop\",\"queue\":\"q\",\"payload\":null}", 1},
        {" {\"type\" : \"noop\" , \"payload\":{\"a\":[1,2.5,-0.25,true,false,null,\"x\"]}} \n", 1},
        {"{\"type\":\"a\",\"type\":\"b\"}", 1}, /* the last one counts, as in jansson */
        {"{\"type\":\"a\",\"type\":5}", 1},     /* not a string: no type */
        {"{\"payload\":{\"type\":\"inner\"}}", 1},
        {"[1,2,{\"type\":\"x\"}]", 1}, /* an array: readable, no type */
        {"{}", 1},
        {"{\"t\":\"tab\\t quote\\\" slash\\/\"}", 1},
        {"{\"n\":123456789012345678}", 1},
        /* jansson decides (it refuses some, reads others) */
        {"{\"n\":12345678901234567890123}", 0}, /* too big an integer */
        {"{\"n\":1e400}", 0},                   /* real overflow */
        {"{\"n\":1e4}", 0},
        {"{\"s\":\"\\u0000\"}", 0},
        {"{\"s\":\"\\ud800\"}", 0},
        {"{\"type\":\"no\\u006fp\"}", 0},
        {"{\"typ\\u0065\":\"noop\"}", 0},
        {"{\"s\":\"caf\xc3\xa9\"}", 0},
        {"{\"s\":\"bad \xff\"}", 0},
        {"{\"s\":\"ctl \x01\"}", 0},
        {"\"just a string\"", 0},
        {"42", 0},
        {"", 0},
        {"   ", 0},
        {"{", 0},
        {"{\"a\":1,}", 0},
        {"{\"a\":01}", 0},
        {"{\"a\":1.}", 0},
        {"{\"a\":-}", 0},
        {"{\"a\":tru}", 0},
        {"{\"a\":truex}", 0},
        {"{\"a\":1} x", 0},
        {"{\"a\":1}{}", 0},
        {"{a:1}", 0},
        {"{\"a\" 1}", 0},
        {"[1 2]", 0},
        {"{\"a\":\"unterminated}", 0},
        {"{\"a\":\"bad escape \\x\"}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].text);
        ck_assert_msg(check_agrees(cases[i].text, n) == cases[i].scanned, "case %zu: %s", i,
                      cases[i].text);
    }
    /* A NUL inside the text, and nesting deeper than the scan follows. */
    ck_assert_int_eq(check_agrees("{\"a\":1}\0", 8), 0);
    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    ck_assert_int_eq(check_agrees(deep, 200), 0);
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    ck_assert_int_eq(check_agrees(deep, 128), 1);
}
END_TEST

/* Random mutations of a task (bytes replaced, inserted, deleted): the scan
 * never reads one that jansson refuses, or reads it differently. */
START_TEST(test_scan_mutations) {
    static const char *base = "{\"id\":\"t-1\",\"type\":\"noop\",\"queue\":\"q0\",\"priority\":3,"
                              "\"payload\":{\"ms\":10,\"x\":[1,-2.5,\"a\\\"b\",true,null]},"
                              "\"max_attempts\":3,\"timeout_ms\":30000}";
    static const char alphabet[] = "{}[]:,\"\\ \t\n0123456789.-+eEtrufalsn\x01\x80\xff"
                                   "typeu";
    unsigned seed = 12345;
    size_t base_len = strlen(base), readable = 0;
    char text[512];
    for (int iter = 0; iter < 200000; iter++) {
        memcpy(text, base, base_len);
        size_t n = base_len;
        int edits = 1 + (int)(rand_r(&seed) % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)rand_r(&seed) % n;
            char c = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)];
            switch (rand_r(&seed) % 3) {
            case 0: text[at] = c; break;
            case 1:
                memmove(text + at + 1, text + at, n - at);
                text[at] = c;
                n++;
                break;
            default: memmove(text + at, text + at + 1, n - at - 1); n--;
            }
        }
        readable += (size_t)check_agrees(text, n);
    }
    ck_assert_uint_gt(readable, 1000); /* the fast path was exercised too */
}
END_TEST

static struct worker_queue *queue(size_t *n) {
    struct worker_queue *q = NULL;
    char errstr[256];
    ck_assert_int_eq(baton_worker_queues_parse("q0", &q, n, errstr, sizeof errstr), BATON_OK);
    return q;
}

static baton_job_t *job_for(const struct worker_queue *q, const char *task_json) {
    struct baton_tr_claimed claim = {.id = "t-1",
                                     .token = "7",
                                     .attempt = 1,
                                     .max_attempts = 3,
                                     .timeout_ms = 1000,
                                     .task_json = task_json,
                                     .task_json_len = task_json ? strlen(task_json) : 0};
    baton_job_t *job = baton_worker_job_new(q, &claim);
    ck_assert_ptr_nonnull(job);
    return job;
}

START_TEST(test_job_new) {
    size_t nq;
    struct worker_queue *q = queue(&nq);
    /* Read by the scan: type now, payload when loaded. */
    baton_job_t *job = job_for(q, "{\"type\":\"echo\",\"payload\":{\"a\":[1,2]}}");
    ck_assert_int_eq(job->readable, 1);
    ck_assert_str_eq(baton_job_type(job), "echo");
    ck_assert_str_eq(baton_job_id(job), "t-1");
    ck_assert_str_eq(baton_job_queue(job), "q0");
    ck_assert_str_eq(baton_job_token(job), "7");
    ck_assert_int_eq(baton_worker_job_load(job), BATON_OK);
    char *payload = json_dumps(baton_job_payload(job), JSON_COMPACT);
    ck_assert_str_eq(payload, "{\"a\":[1,2]}");
    free(payload);
    ck_assert_int_eq(baton_worker_job_load(job), BATON_OK); /* once */
    baton_worker_job_unref(job);

    /* Outside the scan's subset: jansson reads it at once. */
    job = job_for(q, "{\"type\":\"no\\u006fp\",\"payload\":\"caf\xc3\xa9\"}");
    ck_assert_int_eq(job->readable, 1);
    ck_assert_str_eq(baton_job_type(job), "noop");
    ck_assert_int_eq(baton_worker_job_load(job), BATON_OK);
    ck_assert_str_eq(json_string_value(baton_job_payload(job)), "caf\xc3\xa9");
    baton_worker_job_unref(job);

    /* No payload member: null. */
    job = job_for(q, "{\"type\":\"sleep\"}");
    ck_assert_int_eq(baton_worker_job_load(job), BATON_OK);
    ck_assert(json_is_null(baton_job_payload(job)));
    baton_worker_job_unref(job);

    /* Unreadable (the fetcher marks these dead): broken, refused by
     * jansson though close to the subset, missing. */
    static const char *broken[] = {"{\"type\":\"noop\",", "{\"type\":\"noop\",\"n\":1e999}",
                                   "{\"type\":\"noop\",\"s\":\"\\u0000\"}", "\"noop\"", NULL};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        job = job_for(q, broken[i]);
        ck_assert_msg(job->readable == 0, "readable: %s", broken[i] ? broken[i] : "(none)");
        ck_assert_str_eq(baton_job_type(job), "");
        baton_worker_job_unref(job);
    }
    baton_worker_queues_free(q, nq);
}
END_TEST

int main(void) {
    Suite *s = suite_create("worker_job");
    TCase *tc = tcase_create("job");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_scan_cases);
    tcase_add_test(tc, test_scan_mutations);
    tcase_add_test(tc, test_job_new);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
