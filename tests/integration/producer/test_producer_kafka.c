/*
 * test_producer_kafka.c - producer/producer.c against the stack's Kafka
 * (BATON_KAFKA_BROKERS): every submitted task gets one delivery report with
 * its id and where it landed, generated ids are unique valid UUIDs, the
 * partition key is the queue unless the caller gives one, and what arrives
 * is v1 JSON that the scheduler's parser accepts as it stands. Each test
 * publishes to a topic of its own and reads it back with a plain consumer
 * (assigned partitions, no group rebalance to wait for).
 */
#include <check.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "producer.h"
#include "task.h"
#include "timeutil.h"

#define WAIT_MS 30000

static const char *brokers(void) {
    const char *b = getenv("BATON_KAFKA_BROKERS");
    ck_assert_msg(b != NULL, "BATON_KAFKA_BROKERS not set (run under ctest with the stack)");
    return b;
}

static void unique_topic(char *buf, size_t size, const char *what) {
    static int counter;
    snprintf(buf, size, "producer-test.%s.%ld.%d.%d", what, (long)getpid(), ++counter,
             rand() % 100000);
}

/* One submitted task and its report. */
struct sent {
    char id[BATON_TASK_ID_MAX + 1]; /* read back from task->id after submit */
    char key[64];                   /* the key the message should carry */
    int generated;                  /* 1: the producer made the id */
    int reports;                    /* how many reports named it (must be 1) */
    baton_err_t err;
    char report_id[BATON_TASK_ID_MAX + 1];
    int32_t partition;
    int64_t offset;
    int seen; /* consumed back */
};

static void record(const struct baton_delivery *r, void *opaque) {
    (void)opaque;
    struct sent *s = r->msg_opaque;
    s->reports++;
    s->err = r->err;
    snprintf(s->report_id, sizeof s->report_id, "%s", r->task_id);
    s->partition = r->partition;
    s->offset = r->offset;
}

static baton_producer_t *producer_for(const char *topic) {
    char errstr[512];
    struct baton_producer_config cfg = {
        .kafka_brokers = brokers(),
        .topic = topic,
        .delivery_timeout_ms = WAIT_MS,
        .on_delivery = record,
    };
    baton_producer_t *p = baton_producer_new(&cfg, errstr, sizeof errstr);
    ck_assert_msg(p != NULL, "baton_producer_new: %s", errstr);
    return p;
}

/* Reads `want` messages of `topic` back and checks each against `sent`. */
static void consume_and_check(const char *topic, struct sent *sent, int want) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[128];
    snprintf(group, sizeof group, "check-%s", topic);
    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    ck_assert_int_eq(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    ck_assert_msg(rk != NULL, "consumer: %s", errstr);

    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    ck_assert_int_eq(rd_kafka_metadata(rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    ck_assert_int_eq(md->topic_cnt, 1);
    int partitions = md->topics[0].partition_cnt;
    ck_assert_int_gt(partitions, 0);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);

    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(parts, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);

    int got = 0;
    int64_t deadline = baton_time_mono_ms() + WAIT_MS;
    while (got < want && baton_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        got++;
        struct baton_task *task = NULL;
        struct baton_task_error terr;
        /* No coordinates: a message without an id would fail here. */
        ck_assert_msg(baton_task_parse(m->payload, m->len, NULL, NULL, &task, &terr) == BATON_OK,
                      "message does not parse: %s: %s", baton_task_reason_str(terr.reason),
                      terr.detail);
        struct sent *match = NULL;
        for (int i = 0; i < want && !match; i++)
            if (strcmp(sent[i].id, task->id) == 0)
                match = &sent[i];
        ck_assert_msg(match != NULL, "unexpected task id %s", task->id);
        ck_assert_msg(match->seen == 0, "task %s arrived twice", task->id);
        match->seen = 1;
        ck_assert_uint_eq(m->key_len, strlen(match->key));
        ck_assert_msg(memcmp(m->key, match->key, m->key_len) == 0, "task %s: key %.*s, want %s",
                      task->id, (int)m->key_len, (const char *)m->key, match->key);
        ck_assert_int_eq(m->partition, match->partition);
        ck_assert_int_eq(m->offset, match->offset);
        baton_task_destroy(task);
        rd_kafka_message_destroy(m);
    }
    ck_assert_int_eq(got, want);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* Submits `n` tasks, a third in each of three ways: generated id with the
 * queue as key, caller id with the queue as key, caller key. */
START_TEST(test_reports_and_keys) {
    enum { N = 90 };
    char topic[128];
    unique_topic(topic, sizeof topic, "reports");
    baton_producer_t *p = producer_for(topic);
    struct sent *sent = calloc(N, sizeof *sent);
    ck_assert_ptr_nonnull(sent);
    for (int i = 0; i < N; i++) {
        struct baton_task *task = baton_task_new("producer.test");
        json_decref(task->payload);
        task->payload = json_pack("{s:i}", "n", i);
        const char *key = NULL;
        free(task->queue);
        if (i % 3 == 0) {
            task->queue = strdup("q-generated");
            sent[i].generated = 1;
        } else if (i % 3 == 1) {
            task->queue = strdup("q-caller-id");
            char id[32];
            snprintf(id, sizeof id, "caller-%d", i);
            task->id = strdup(id);
        } else {
            task->queue = strdup("q-caller-key");
            key = "custom-key";
        }
        snprintf(sent[i].key, sizeof sent[i].key, "%s", key ? key : task->queue);
        char errstr[512];
        ck_assert_msg(baton_submit(p, task, key, &sent[i], errstr, sizeof errstr) == BATON_OK,
                      "submit %d: %s", i, errstr);
        snprintf(sent[i].id, sizeof sent[i].id, "%s", task->id);
        baton_task_destroy(task);
        baton_producer_poll(p, 0);
    }
    ck_assert_int_eq(baton_producer_flush(p, WAIT_MS), BATON_OK);
    ck_assert_uint_eq(baton_producer_pending(p), 0);
    baton_producer_destroy(p);

    int32_t partition_of[3] = {-1, -1, -1};
    int64_t last_offset[3] = {-1, -1, -1};
    for (int i = 0; i < N; i++) {
        ck_assert_msg(sent[i].reports == 1, "task %d had %d reports", i, sent[i].reports);
        ck_assert_msg(sent[i].err == BATON_OK, "task %d: %s", i, baton_err2str(sent[i].err));
        ck_assert_str_eq(sent[i].report_id, sent[i].id);
        ck_assert_int_ge(sent[i].partition, 0);
        ck_assert_int_ge(sent[i].offset, 0);
        /* One key, one partition, in submit order. */
        int way = i % 3;
        if (partition_of[way] < 0)
            partition_of[way] = sent[i].partition;
        ck_assert_int_eq(sent[i].partition, partition_of[way]);
        ck_assert_int_gt(sent[i].offset, last_offset[way]);
        last_offset[way] = sent[i].offset;
        if (sent[i].generated) {
            ck_assert_uint_eq(strlen(sent[i].id), 36);
            ck_assert(baton_task_id_valid(sent[i].id));
            for (int j = 0; j < i; j++)
                ck_assert_str_ne(sent[i].id, sent[j].id);
        }
    }
    consume_and_check(topic, sent, N);
    free(sent);
}
END_TEST

/* Several threads submitting on one producer: every task reported once. */
struct worker_arg {
    baton_producer_t *p;
    struct sent *sent;
    int from, to;
};

static void *submit_range(void *arg) {
    struct worker_arg *w = arg;
    for (int i = w->from; i < w->to; i++) {
        struct baton_task *task = baton_task_new("producer.threads");
        free(task->queue);
        char queue[16];
        snprintf(queue, sizeof queue, "q%d", i % 5);
        task->queue = strdup(queue);
        snprintf(w->sent[i].key, sizeof w->sent[i].key, "%s", queue);
        if (baton_submit(w->p, task, NULL, &w->sent[i], NULL, 0) != BATON_OK)
            w->sent[i].err = BATON_ERR_INVALID;
        snprintf(w->sent[i].id, sizeof w->sent[i].id, "%s", task->id);
        baton_task_destroy(task);
        baton_producer_poll(w->p, 0);
    }
    return NULL;
}

START_TEST(test_threads_share_a_producer) {
    enum { N = 2000, THREADS = 4 };
    char topic[128];
    unique_topic(topic, sizeof topic, "threads");
    baton_producer_t *p = producer_for(topic);
    struct sent *sent = calloc(N, sizeof *sent);
    pthread_t threads[THREADS];
    struct worker_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct worker_arg){p, sent, t * N / THREADS, (t + 1) * N / THREADS};
        ck_assert_int_eq(pthread_create(&threads[t], NULL, submit_range, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    ck_assert_int_eq(baton_producer_flush(p, WAIT_MS), BATON_OK);
    baton_producer_destroy(p);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(sent[i].reports == 1, "task %d had %d reports", i, sent[i].reports);
        ck_assert_int_eq(sent[i].err, BATON_OK);
        ck_assert_str_eq(sent[i].report_id, sent[i].id);
    }
    consume_and_check(topic, sent, N);
    free(sent);
}
END_TEST

static Suite *producer_kafka_suite(void) {
    Suite *s = suite_create("producer_kafka");
    TCase *core = tcase_create("core");
    tcase_set_timeout(core, 120);
    tcase_add_test(core, test_reports_and_keys);
    tcase_add_test(core, test_threads_share_a_producer);
    suite_add_tcase(s, core);
    return s;
}

int main(void) {
    srand((unsigned)getpid());
    baton_log_threshold = BATON_LOG_WARN;
    SRunner *sr = srunner_create(producer_kafka_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
