/*
 * test_worker_queues.c - worker/queues.c: the --queues list (weights, keys,
 * errors) and the smooth weighted round robin that shares a worker's idle
 * slots among its queues. Links the worker library itself.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker_internal.h"

static struct worker_queue *parse_ok(const char *spec, size_t *n) {
    struct worker_queue *q = NULL;
    char errstr[256] = "";
    ck_assert_msg(baton_worker_queues_parse(spec, &q, n, errstr, sizeof errstr) == BATON_OK,
                  "%s: %s", spec, errstr);
    return q;
}

START_TEST(test_parse_weights_and_keys) {
    size_t n;
    struct worker_queue *q = parse_ok("critical=6,default,low=1", &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(q[0].keys.name, "critical");
    ck_assert_int_eq(q[0].weight, 6);
    ck_assert_str_eq(q[1].keys.name, "default");
    ck_assert_int_eq(q[1].weight, 1); /* omitted: 1 */
    ck_assert_int_eq(q[2].weight, 1);
    ck_assert_str_eq(q[0].keys.ready, "baton:{critical}:ready");
    ck_assert_str_eq(q[0].keys.running, "baton:{critical}:running");
    ck_assert_str_eq(q[1].keys.notify, "baton:{default}:notify");
    ck_assert_str_eq(q[2].keys.task_prefix, "baton:{low}:t:");
    baton_worker_queues_free(q, n);
}
END_TEST

START_TEST(test_parse_errors) {
    static const struct {
        const char *spec, *says;
    } bad[] = {
        {"a=0", "weight of 'a' must be an integer 1-1000"},
        {"a=1001", "weight of 'a' must be an integer 1-1000"},
        {"a=x", "weight of 'a' must be an integer 1-1000"},
        {"a=", "weight of 'a' must be an integer 1-1000"},
        {"a=2junk", "weight of 'a' must be an integer 1-1000"},
        {"a,b,a=3", "'a' is listed twice"},
        {"ok,bad name", "'bad name' is not a valid queue name"},
        {"", "no queue given"},
        {",,", "no queue given"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct worker_queue *q = (void *)1;
        size_t n = 99;
        char errstr[256] = "";
        ck_assert_int_eq(baton_worker_queues_parse(bad[i].spec, &q, &n, errstr, sizeof errstr),
                         BATON_ERR_CONFIG);
        ck_assert_msg(strstr(errstr, bad[i].says), "'%s': %s", bad[i].spec, errstr);
        ck_assert_ptr_null(q);
        ck_assert_uint_eq(n, 0);
    }
}
END_TEST

/* One slot per round: the order in which queues get slots. */
static void order_of(const char *spec, int rounds, char *out) {
    size_t n;
    struct worker_queue *q = parse_ok(spec, &n);
    int counts[8];
    for (int r = 0; r < rounds; r++) {
        baton_worker_allocate_slots(q, n, 1, counts);
        int total = 0;
        for (size_t i = 0; i < n; i++) {
            total += counts[i];
            if (counts[i])
                out[r] = q[i].keys.name[0];
        }
        ck_assert_int_eq(total, 1);
    }
    out[rounds] = '\0';
    baton_worker_queues_free(q, n);
}

START_TEST(test_smooth_interleaving) {
    /* Smooth, not bursty: weight 5 does not take 5 slots in a row. */
    char order[32];
    order_of("a=5,b=1,c=1", 7, order);
    ck_assert_str_eq(order, "aabacaa");
    order_of("a=2,b=1", 6, order);
    ck_assert_str_eq(order, "abaaba");
    order_of("x,y,z", 6, order);
    ck_assert_str_eq(order, "xyzxyz");
}
END_TEST

START_TEST(test_one_round_splits_by_weight) {
    size_t n;
    struct worker_queue *q = parse_ok("critical=6,default=3,low=1", &n);
    int counts[3];
    baton_worker_allocate_slots(q, n, 10, counts);
    ck_assert_int_eq(counts[0], 6);
    ck_assert_int_eq(counts[1], 3);
    ck_assert_int_eq(counts[2], 1);
    /* After a whole cycle the state is back where it started. */
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(q[i].current, 0);
    baton_worker_queues_free(q, n);
}
END_TEST

START_TEST(test_rounds_carry_state) {
    /* Rounds of 3 idle slots over weights 6,3,1: after 10 rounds (30
     * slots, three cycles) each queue had exactly its share. */
    size_t n;
    struct worker_queue *q = parse_ok("a=6,b=3,c=1", &n);
    int counts[3], sum[3] = {0, 0, 0};
    for (int r = 0; r < 10; r++) {
        baton_worker_allocate_slots(q, n, 3, counts);
        for (int i = 0; i < 3; i++)
            sum[i] += counts[i];
    }
    ck_assert_int_eq(sum[0], 18);
    ck_assert_int_eq(sum[1], 9);
    ck_assert_int_eq(sum[2], 3);
    baton_worker_queues_free(q, n);
}
END_TEST

START_TEST(test_light_queue_not_starved) {
    /* One slot per round against a weight of 1000: the weight-1 queue
     * still gets a slot within one cycle (1001 rounds). */
    size_t n;
    struct worker_queue *q = parse_ok("heavy=1000,light=1", &n);
    int counts[2], light = 0;
    for (int r = 0; r < 1001; r++) {
        baton_worker_allocate_slots(q, n, 1, counts);
        light += counts[1];
    }
    ck_assert_int_eq(light, 1);
    baton_worker_queues_free(q, n);
}
END_TEST

START_TEST(test_no_idle_slot) {
    size_t n;
    struct worker_queue *q = parse_ok("a=2,b=1", &n);
    int counts[2] = {7, 7};
    baton_worker_allocate_slots(q, n, 0, counts);
    ck_assert_int_eq(counts[0], 0);
    ck_assert_int_eq(counts[1], 0);
    ck_assert_int_eq(q[0].current, 0);
    ck_assert_int_eq(q[1].current, 0);
    baton_worker_queues_free(q, n);
}
END_TEST

START_TEST(test_among_eligible_only) {
    /* The fetcher shares slots only among queues that may have work: a
     * drained queue gets none and its state stays; the others split by
     * their weights as if it were not there. */
    size_t n;
    struct worker_queue *q = parse_ok("a=6,b=3,c=1", &n);
    const unsigned char no_b[3] = {1, 0, 1};
    int counts[3];
    baton_worker_allocate_slots_among(q, n, no_b, 7, 1, counts);
    ck_assert_int_eq(counts[0], 6);
    ck_assert_int_eq(counts[1], 0);
    ck_assert_int_eq(counts[2], 1);
    ck_assert_int_eq(q[1].current, 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(q[i].current, 0); /* a whole cycle of a and c */
    /* None eligible: nothing shared, nothing moved. */
    const unsigned char none[3] = {0, 0, 0};
    counts[0] = counts[1] = counts[2] = 9;
    baton_worker_allocate_slots_among(q, n, none, 5, 1, counts);
    ck_assert_int_eq(counts[0] + counts[1] + counts[2], 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(q[i].current, 0);
    /* Only the last one: it takes every slot. */
    const unsigned char only_c[3] = {0, 0, 1};
    baton_worker_allocate_slots_among(q, n, only_c, 4, 1, counts);
    ck_assert_int_eq(counts[0], 0);
    ck_assert_int_eq(counts[1], 0);
    ck_assert_int_eq(counts[2], 4);
    /* NULL: every queue, as baton_worker_allocate_slots. */
    q[2].current = 0;
    baton_worker_allocate_slots_among(q, n, NULL, 10, 1, counts);
    ck_assert_int_eq(counts[0], 6);
    ck_assert_int_eq(counts[1], 3);
    ck_assert_int_eq(counts[2], 1);
    baton_worker_queues_free(q, n);
}
END_TEST

START_TEST(test_among_chunks) {
    /* In chunks: each pick gets `chunk` slots, the last one the rest, and
     * over rounds the slots still follow the weights 3:1. */
    size_t n;
    struct worker_queue *q = parse_ok("a=3,b=1,c=1", &n);
    int counts[3];
    baton_worker_allocate_slots_among(q, n, NULL, 10, 4, counts);
    ck_assert_int_eq(counts[0] + counts[1] + counts[2], 10);
    for (size_t i = 0; i < n; i++)
        ck_assert(counts[i] == 0 || counts[i] == 2 || counts[i] == 4 || counts[i] == 6 ||
                  counts[i] == 8);
    int total[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++)
        q[i].current = 0; /* whole cycles of 5 picks from here */
    for (int round = 0; round < 50; round++) {
        baton_worker_allocate_slots_among(q, n, NULL, 8, 8, counts);
        int given = 0;
        for (size_t i = 0; i < n; i++) {
            total[i] += counts[i];
            given += counts[i] != 0;
        }
        ck_assert_int_eq(given, 1); /* one claim of 8 per round */
    }
    ck_assert_int_eq(total[0], 3 * total[1]);
    ck_assert_int_eq(total[1], total[2]);
    /* A chunk below 1 counts as 1: every slot its own pick. */
    baton_worker_allocate_slots_among(q, n, NULL, 5, 0, counts);
    ck_assert_int_eq(counts[0] + counts[1] + counts[2], 5);
    baton_worker_queues_free(q, n);
}
END_TEST

static Suite *worker_queues_suite(void) {
    Suite *s = suite_create("worker_queues");
    TCase *parse = tcase_create("parse");
    tcase_add_test(parse, test_parse_weights_and_keys);
    tcase_add_test(parse, test_parse_errors);
    suite_add_tcase(s, parse);
    TCase *wrr = tcase_create("weighted_round_robin");
    tcase_add_test(wrr, test_smooth_interleaving);
    tcase_add_test(wrr, test_one_round_splits_by_weight);
    tcase_add_test(wrr, test_rounds_carry_state);
    tcase_add_test(wrr, test_light_queue_not_starved);
    tcase_add_test(wrr, test_no_idle_slot);
    tcase_add_test(wrr, test_among_eligible_only);
    tcase_add_test(wrr, test_among_chunks);
    suite_add_tcase(s, wrr);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(worker_queues_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
