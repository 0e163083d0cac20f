/*
 * test_producer.c - producer/producer.c without a Kafka cluster: generated
 * ids, configuration errors, the contract check before sending, and the
 * delivery-report guarantees (exactly one report per accepted task, naming
 * it) against a broker address where nothing listens (127.0.0.1:1), so
 * every delivery fails fast and deterministically. The happy path against
 * the stack's Kafka is tests/integration/producer/test_producer_kafka.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "producer.h"
#include "task.h"

#define NOWHERE "127.0.0.1:1"

/* Collected delivery reports. */
struct reports {
    int count;
    int ok, timeout, state, other;
    char last_id[BATON_TASK_ID_MAX + 1];
    char last_errstr[512];
    void *last_opaque;
    int32_t last_partition;
    int64_t last_offset;
};

static void collect(const struct baton_delivery *r, void *opaque) {
    struct reports *seen = opaque;
    seen->count++;
    switch (r->err) {
    case BATON_OK: seen->ok++; break;
    case BATON_ERR_TIMEOUT: seen->timeout++; break;
    case BATON_ERR_STATE: seen->state++; break;
    default: seen->other++; break;
    }
    snprintf(seen->last_id, sizeof seen->last_id, "%s", r->task_id);
    snprintf(seen->last_errstr, sizeof seen->last_errstr, "%s", r->errstr);
    seen->last_opaque = r->msg_opaque;
    seen->last_partition = r->partition;
    seen->last_offset = r->offset;
}

/* A producer that can never deliver: deliveries fail after timeout_ms. */
static baton_producer_t *nowhere(struct reports *seen, int64_t timeout_ms, const char *extra) {
    char errstr[512];
    struct baton_producer_config cfg = {
        .kafka_brokers = NOWHERE,
        .kafka_config = extra,
        .topic = "unit.producer",
        .delivery_timeout_ms = timeout_ms,
        .on_delivery = collect,
        .opaque = seen,
    };
    baton_producer_t *p = baton_producer_new(&cfg, errstr, sizeof errstr);
    ck_assert_msg(p != NULL, "baton_producer_new: %s", errstr);
    return p;
}

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* ---- core ---------------------------------------------------------------- */

START_TEST(test_new_id_is_uuid_v4) {
    char id[BATON_PRODUCER_ID_BUFSZ], errstr[128];
    ck_assert_int_eq(baton_producer_new_id(id, errstr, sizeof errstr), BATON_OK);
    ck_assert_uint_eq(strlen(id), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ck_assert_msg(id[i] == '-', "%s: no dash at %d", id, i);
        else
            ck_assert_msg(is_hex(id[i]), "%s: not lowercase hex at %d", id, i);
    }
    ck_assert_msg(id[14] == '4', "%s: version nibble is not 4", id);
    ck_assert_msg(strchr("89ab", id[19]) != NULL, "%s: variant is not RFC 4122", id);
    ck_assert(baton_task_id_valid(id));
}
END_TEST

START_TEST(test_new_ids_are_unique) {
    enum { N = 20000 };
    char(*ids)[BATON_PRODUCER_ID_BUFSZ] = malloc(N * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(baton_producer_new_id(ids[i], NULL, 0), BATON_OK);
    qsort(ids, N, sizeof *ids, (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < N; i++)
        ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "id %s generated twice", ids[i]);
    free(ids);
}
END_TEST

/* A task without id gets one in task->id, which its report names. */
START_TEST(test_submit_generates_id_and_reports_it) {
    struct reports seen = {0};
    baton_producer_t *p = nowhere(&seen, 200, NULL);
    struct baton_task *task = baton_task_new("unit.test");
    char errstr[512];
    int marker;
    ck_assert_int_eq(baton_submit(p, task, NULL, &marker, errstr, sizeof errstr), BATON_OK);
    ck_assert_ptr_nonnull(task->id);
    ck_assert(baton_task_id_valid(task->id));
    ck_assert_uint_eq(strlen(task->id), 36);
    char id[BATON_TASK_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", task->id);
    baton_task_destroy(task); /* the producer keeps nothing of it */
    ck_assert_uint_eq(baton_producer_pending(p), 1);

    ck_assert_int_eq(baton_producer_flush(p, 10000), BATON_OK);
    ck_assert_int_eq(seen.count, 1);
    ck_assert_int_eq(seen.timeout, 1);
    ck_assert_str_eq(seen.last_id, id);
    ck_assert_ptr_eq(seen.last_opaque, &marker);
    ck_assert_int_eq(seen.last_offset, -1);
    ck_assert_msg(strstr(seen.last_errstr, "timed out") != NULL, "errstr: %s", seen.last_errstr);
    /* Why it timed out: the client error that came before. */
    ck_assert_msg(strstr(seen.last_errstr, "127.0.0.1:1") != NULL, "errstr: %s", seen.last_errstr);
    ck_assert_uint_eq(baton_producer_pending(p), 0);
    baton_producer_destroy(p);
}
END_TEST

/* The caller's id is kept as is. */
START_TEST(test_submit_keeps_caller_id) {
    struct reports seen = {0};
    baton_producer_t *p = nowhere(&seen, 200, NULL);
    struct baton_task *task = baton_task_new("unit.test");
    task->id = strdup("caller-id-1");
    ck_assert_int_eq(baton_submit(p, task, "some-key", NULL, NULL, 0), BATON_OK);
    ck_assert_str_eq(task->id, "caller-id-1");
    baton_task_destroy(task);
    ck_assert_int_eq(baton_producer_flush(p, 10000), BATON_OK);
    ck_assert_int_eq(seen.count, 1);
    ck_assert_str_eq(seen.last_id, "caller-id-1");
    baton_producer_destroy(p);
}
END_TEST

/* Destroy with tasks outstanding still gives each one its report. */
START_TEST(test_destroy_reports_outstanding) {
    struct reports seen = {0};
    baton_producer_t *p = nowhere(&seen, 600000, NULL);
    for (int i = 0; i < 5; i++) {
        struct baton_task *task = baton_task_new("unit.test");
        ck_assert_int_eq(baton_submit(p, task, NULL, NULL, NULL, 0), BATON_OK);
        baton_task_destroy(task);
    }
    ck_assert_int_eq(seen.count, 0);
    ck_assert_int_eq(baton_producer_flush(p, 50), BATON_ERR_TIMEOUT);
    ck_assert_uint_eq(baton_producer_pending(p), 5);
    baton_producer_destroy(p);
    ck_assert_int_eq(seen.count, 5);
    ck_assert_int_eq(seen.state, 5);
    ck_assert_msg(strstr(seen.last_errstr, "destroyed") != NULL, "errstr: %s", seen.last_errstr);
}
END_TEST

/* ---- limits -------------------------------------------------------------- */

/* A full local queue makes submit wait (serving reports), not fail. */
START_TEST(test_queue_full_waits) {
    struct reports seen = {0};
    baton_producer_t *p = nowhere(&seen, 100, "queue.buffering.max.messages=4");
    /* librdkafka scans for timed-out messages once a second: each round of
     * 4 takes about that long. */
    for (int i = 0; i < 12; i++) {
        struct baton_task *task = baton_task_new("unit.test");
        char errstr[512];
        ck_assert_msg(baton_submit(p, task, NULL, NULL, errstr, sizeof errstr) == BATON_OK,
                      "submit %d: %s", i, errstr);
        baton_task_destroy(task);
    }
    /* 12 tasks through a 4-message queue: the first reports came during
     * submit, which is what made room. */
    ck_assert_int_ge(seen.count, 8);
    ck_assert_int_eq(baton_producer_flush(p, 10000), BATON_OK);
    ck_assert_int_eq(seen.count, 12);
    ck_assert_int_eq(seen.timeout, 12);
    baton_producer_destroy(p);
}
END_TEST

/* The payload limit is the configured one, checked before sending. */
START_TEST(test_payload_limit) {
    struct reports seen = {0};
    char errstr[512];
    struct baton_producer_config cfg = {.kafka_brokers = NOWHERE,
                                        .max_payload_bytes = 16,
                                        .delivery_timeout_ms = 100,
                                        .on_delivery = collect,
                                        .opaque = &seen};
    baton_producer_t *p = baton_producer_new(&cfg, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(p);
    struct baton_task *task = baton_task_new("unit.test");
    json_decref(task->payload);
    task->payload = json_string("this is longer than sixteen bytes");
    ck_assert_int_eq(baton_submit(p, task, NULL, NULL, errstr, sizeof errstr), BATON_ERR_INVALID);
    ck_assert_msg(strncmp(errstr, "too_large: ", 11) == 0, "errstr: %s", errstr);
    baton_task_destroy(task);
    baton_producer_destroy(p);
    ck_assert_int_eq(seen.count, 0);
}
END_TEST

/* ---- errors -------------------------------------------------------------- */

START_TEST(test_new_rejects_bad_config) {
    char errstr[512];
    ck_assert_ptr_null(baton_producer_new(NULL, errstr, sizeof errstr));

    struct baton_producer_config cfg = {0};
    ck_assert_ptr_null(baton_producer_new(&cfg, errstr, sizeof errstr));
    ck_assert_msg(strstr(errstr, "brokers") != NULL, "errstr: %s", errstr);

    cfg.kafka_brokers = NOWHERE;
    cfg.kafka_config = "no.such.property=1";
    ck_assert_ptr_null(baton_producer_new(&cfg, errstr, sizeof errstr));
    ck_assert_msg(strstr(errstr, "no.such.property") != NULL, "errstr: %s", errstr);

    /* Idempotence needs acks=all: librdkafka refuses, and so do we. */
    cfg.kafka_config = "acks=1";
    ck_assert_ptr_null(baton_producer_new(&cfg, errstr, sizeof errstr));
    ck_assert_msg(strstr(errstr, "acks") != NULL, "errstr: %s", errstr);

    cfg.kafka_config = NULL;
    cfg.delivery_timeout_ms = -1;
    ck_assert_ptr_null(baton_producer_new(&cfg, errstr, sizeof errstr));
}
END_TEST

/* A task the contract rejects is refused with the codec's reason, and no
 * report follows. */
START_TEST(test_submit_rejects_invalid_task) {
    struct reports seen = {0};
    baton_producer_t *p = nowhere(&seen, 100, NULL);
    char errstr[512];

    struct baton_task *task = baton_task_new("bad type");
    ck_assert_int_eq(baton_submit(p, task, NULL, NULL, errstr, sizeof errstr), BATON_ERR_INVALID);
    ck_assert_msg(strncmp(errstr, "bad_charset: ", 13) == 0, "errstr: %s", errstr);
    baton_task_destroy(task);

    task = baton_task_new("ok.type");
    task->priority = 10;
    ck_assert_int_eq(baton_submit(p, task, NULL, NULL, errstr, sizeof errstr), BATON_ERR_INVALID);
    ck_assert_msg(strncmp(errstr, "out_of_range: ", 14) == 0, "errstr: %s", errstr);
    baton_task_destroy(task);

    task = baton_task_new("ok.type");
    task->id = strdup("has space");
    ck_assert_int_eq(baton_submit(p, task, NULL, NULL, errstr, sizeof errstr), BATON_ERR_INVALID);
    baton_task_destroy(task);

    ck_assert_int_eq(baton_submit(p, NULL, NULL, NULL, errstr, sizeof errstr), BATON_ERR_INVALID);
    ck_assert_uint_eq(baton_producer_pending(p), 0);
    ck_assert_int_eq(baton_producer_flush(p, 1000), BATON_OK);
    ck_assert_int_eq(seen.count, 0);
    baton_producer_destroy(p);
}
END_TEST

START_TEST(test_destroy_null) {
    baton_producer_destroy(NULL);
}
END_TEST

static Suite *producer_suite(void) {
    Suite *s = suite_create("producer");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_new_id_is_uuid_v4);
    tcase_add_test(core, test_new_ids_are_unique);
    tcase_add_test(core, test_submit_generates_id_and_reports_it);
    tcase_add_test(core, test_submit_keeps_caller_id);
    tcase_add_test(core, test_destroy_reports_outstanding);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_queue_full_waits);
    tcase_add_test(limits, test_payload_limit);
    suite_add_tcase(s, limits);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_new_rejects_bad_config);
    tcase_add_test(errors, test_submit_rejects_invalid_task);
    tcase_add_test(errors, test_destroy_null);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    /* librdkafka's connection errors are expected here: keep output clean. */
    baton_log_threshold = BATON_LOG_OFF;
    SRunner *sr = srunner_create(producer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
