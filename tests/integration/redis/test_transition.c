/*
 * test_transition.c - common/transition.c against the stack's Redis and the
 * real scripts: each function's arguments land where its script reads them
 * (a task walks through enqueue, claim, renew, fail, promote, claim,
 * complete) and each refusal comes back as its baton_err_t; a batch of
 * completions with one stale token refuses that task only. The unit test
 * checks the positions against the headers; this one checks the headers
 * tell the truth. Uses a queue of its own (deleted at the end) in
 * database 0 of BATON_REDIS_URL.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events.h"
#include "transition.h"

#define RETENTION_MS 60000

static baton_redis_t *r;
static struct baton_queue_keys keys;
static char errstr[512];

static void setup(void) {
    const char *url = getenv("BATON_REDIS_URL");
    ck_assert_msg(url != NULL, "BATON_REDIS_URL not set (run under with_stack.sh)");
    ck_assert_int_eq(baton_redis_connect(url, 5000, &r, errstr, sizeof errstr), BATON_OK);
    char queue[64];
    snprintf(queue, sizeof queue, "tr-test-%ld", (long)getpid());
    baton_queue_keys_init(&keys, queue);
}

/* Deletes every key of the test's queue. */
static void teardown(void) {
    char pattern[BATON_KEY_MAX + 1];
    snprintf(pattern, sizeof pattern, "%s*", keys.key_prefix);
    const char *scan[] = {"KEYS", pattern};
    redisReply *reply;
    if (baton_redis_command(r, &reply, 2, scan, NULL, errstr, sizeof errstr) == BATON_OK) {
        for (size_t i = 0; i < reply->elements; i++) {
            const char *del[] = {"DEL", reply->element[i]->str};
            redisReply *d;
            if (baton_redis_command(r, &d, 2, del, NULL, errstr, sizeof errstr) == BATON_OK)
                freeReplyObject(d);
        }
        freeReplyObject(reply);
    }
    baton_redis_destroy(r);
}

static void enqueue_one(const char *id, int max_attempts) {
    struct baton_task task = {.id = (char *)id,
                              .queue = keys.name,
                              .priority = 5,
                              .max_attempts = max_attempts,
                              .timeout_ms = 1000,
                              .run_at_ms = BATON_TIME_UNSET,
                              .delay_ms = BATON_TIME_UNSET,
                              .deadline_ms = BATON_TIME_UNSET};
    const struct baton_tr_new_task nt = {&task, "{\"id\":\"x\"}", 10, "topic", 0, 1};
    struct baton_tr_enqueued done;
    ck_assert_int_eq(baton_tr_enqueue(r, &keys, RETENTION_MS, &nt, 1, &done, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_eq(done.queued, 1);
}

/* Claims exactly one task and copies its id and token out. */
static void claim_one(char *id, char *token) {
    struct baton_tr_claim claim;
    ck_assert_int_eq(
        baton_tr_claim(r, &keys, "w1", 30000, 1, RETENTION_MS, &claim, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_uint_eq(claim.count, 1);
    snprintf(id, 64, "%s", claim.tasks[0].id);
    snprintf(token, 32, "%s", claim.tasks[0].token);
    ck_assert_int_eq(claim.tasks[0].timeout_ms, 1000);
    ck_assert_str_eq(claim.tasks[0].task_json, "{\"id\":\"x\"}");
    baton_tr_claim_free(&claim);
}

START_TEST(test_a_task_walks_through) {
    enqueue_one("t1", 2);
    struct baton_tr_enqueued again;
    struct baton_task task = {.id = "t1",
                              .queue = keys.name,
                              .priority = 5,
                              .max_attempts = 2,
                              .timeout_ms = 1000,
                              .run_at_ms = BATON_TIME_UNSET,
                              .delay_ms = BATON_TIME_UNSET,
                              .deadline_ms = BATON_TIME_UNSET};
    const struct baton_tr_new_task nt = {&task, "{}", 2, "topic", 0, 1};
    ck_assert_int_eq(
        baton_tr_enqueue(r, &keys, RETENTION_MS, &nt, 1, &again, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(again.duplicates, 1);

    char id[64], token[32];
    claim_one(id, token);
    ck_assert_str_eq(id, "t1");
    const struct baton_tr_lease leases[2] = {{"t1", token}, {"t1", "999"}};
    baton_tr_renewal_t answers[2];
    ck_assert_int_eq(baton_tr_renew(r, &keys, 30000, leases, 2, answers, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_eq(answers[0], BATON_TR_RENEW_OK);
    ck_assert_int_eq(answers[1], BATON_TR_RENEW_REFUSED);

    /* A retry with no delay: base 0 puts it due at once. */
    const struct baton_tr_failure f = {"boom", "error", 0, 0, 0.0, 0};
    baton_state_t next;
    int64_t due;
    ck_assert_int_eq(
        baton_tr_fail(r, &keys, "t1", token, &f, RETENTION_MS, &next, &due, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(next, BATON_STATE_SCHEDULED);
    ck_assert_int_ge(due, 0);
    /* The old token is refused from now on. */
    ck_assert_int_eq(
        baton_tr_complete(r, &keys, "t1", token, "1", 1, RETENTION_MS, errstr, sizeof errstr),
        BATON_ERR_STALE_TOKEN);
    ck_assert_msg(strstr(errstr, "task t1 is scheduled"), "%s", errstr);

    struct baton_tr_moved moved;
    ck_assert_int_eq(baton_tr_promote(r, &keys, 100, &moved, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(moved.moved, 1);
    ck_assert_int_eq(moved.next_ms, -1);
    claim_one(id, token);
    ck_assert_int_eq(baton_tr_complete(r, &keys, "t1", token, "{\"ok\":1}", 8, RETENTION_MS, errstr,
                                       sizeof errstr),
                     BATON_OK);
    /* A repeat of its own success is not stale (a lost reply, retried). */
    ck_assert_int_eq(baton_tr_complete(r, &keys, "t1", token, "{\"ok\":1}", 8, RETENTION_MS, errstr,
                                       sizeof errstr),
                     BATON_OK);

    ck_assert_int_eq(baton_tr_expire(r, &keys, 100, RETENTION_MS, &moved, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_eq(moved.moved, 0);
    struct baton_tr_reclaimed rec;
    ck_assert_int_eq(baton_tr_reclaim(r, &keys, 100, RETENTION_MS, &rec, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_eq(rec.requeued + rec.dead, 0);
}
END_TEST

START_TEST(test_worker_endings) {
    enqueue_one("a", 1);
    char id[64], token[32];
    claim_one(id, token);
    ck_assert_int_eq(baton_tr_requeue(r, &keys, "a", token, RETENTION_MS, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_eq(baton_tr_requeue(r, &keys, "a", token, RETENTION_MS, errstr, sizeof errstr),
                     BATON_ERR_STALE_TOKEN);
    claim_one(id, token);
    baton_event_t result;
    ck_assert_int_eq(baton_tr_cancel(r, &keys, "a", RETENTION_MS, &result, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_eq(result, BATON_EVENT_CANCEL_REQUESTED);
    const struct baton_tr_lease lease = {"a", token};
    baton_tr_renewal_t answer;
    ck_assert_int_eq(baton_tr_renew(r, &keys, 30000, &lease, 1, &answer, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_eq(answer, BATON_TR_RENEW_CANCELED);
    ck_assert_int_eq(
        baton_tr_finish_canceled(r, &keys, "a", token, RETENTION_MS, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(baton_tr_cancel(r, &keys, "a", RETENTION_MS, &result, errstr, sizeof errstr),
                     BATON_ERR_STATE);

    /* One attempt, permanent: dead, then retried by an operator. */
    enqueue_one("b", 1);
    claim_one(id, token);
    const struct baton_tr_failure f = {"bad input", "error", 1000, 60000, 0.5, 1};
    baton_state_t next;
    ck_assert_int_eq(
        baton_tr_fail(r, &keys, "b", token, &f, RETENTION_MS, &next, NULL, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(next, BATON_STATE_DEAD);
    ck_assert_int_eq(baton_tr_retry(r, &keys, "b", errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(baton_tr_retry(r, &keys, "b", errstr, sizeof errstr), BATON_ERR_STATE);
    ck_assert_int_eq(baton_tr_retry(r, &keys, "nope", errstr, sizeof errstr), BATON_ERR_NOT_FOUND);
    ck_assert_str_eq(errstr, "task nope does not exist");
}
END_TEST

/* A plain command's reply, for checks; the caller frees it. */
static redisReply *cmd(int argc, const char **argv) {
    redisReply *reply;
    ck_assert_int_eq(baton_redis_command(r, &reply, argc, argv, NULL, errstr, sizeof errstr),
                     BATON_OK);
    return reply;
}

static long long xlen(void) {
    const char *argv[] = {"XLEN", keys.events};
    redisReply *reply = cmd(2, argv);
    long long n = reply->integer;
    freeReplyObject(reply);
    return n;
}

/* One complete.lua call for three tasks, one of whose tokens is stale: the
 * other two succeed, the stale one is refused and left exactly as it was
 * (running under its new owner), and the call's events are one stream
 * entry. A repeat of the call's own successes changes nothing. */
START_TEST(test_complete_many_with_a_stale_token) {
    enqueue_one("c1", 2);
    enqueue_one("c2", 2);
    enqueue_one("c3", 2);
    struct baton_tr_claim claim;
    ck_assert_int_eq(
        baton_tr_claim(r, &keys, "w1", 30000, 3, RETENTION_MS, &claim, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_uint_eq(claim.count, 3);
    char tokens[3][32];
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(claim.tasks[i].id, i == 0 ? "c1" : i == 1 ? "c2" : "c3");
        snprintf(tokens[i], sizeof tokens[i], "%s", claim.tasks[i].token);
    }
    baton_tr_claim_free(&claim);
    /* c2's lease is taken over: it fails back to scheduled (no delay), is
     * promoted and claimed by another worker, with a new token. */
    const struct baton_tr_failure f = {"lost", "error", 0, 0, 0.0, 0};
    ck_assert_int_eq(baton_tr_fail(r, &keys, "c2", tokens[1], &f, RETENTION_MS, NULL, NULL, errstr,
                                   sizeof errstr),
                     BATON_OK);
    struct baton_tr_moved moved;
    ck_assert_int_eq(baton_tr_promote(r, &keys, 100, &moved, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(moved.moved, 1);
    ck_assert_int_eq(
        baton_tr_claim(r, &keys, "w2", 30000, 1, RETENTION_MS, &claim, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_uint_eq(claim.count, 1);
    ck_assert_str_eq(claim.tasks[0].id, "c2");
    char c2_token[32];
    snprintf(c2_token, sizeof c2_token, "%s", claim.tasks[0].token);
    baton_tr_claim_free(&claim);

    long long before = xlen();
    const struct baton_tr_success done[] = {{"c1", tokens[0], "{\"n\":1}", 7},
                                            {"c2", tokens[1], "{\"n\":2}", 7},
                                            {"c3", tokens[2], "{\"n\":3}", 7}};
    struct baton_tr_completion answers[3];
    ck_assert_int_eq(
        baton_tr_complete_many(r, &keys, done, 3, RETENTION_MS, answers, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(answers[0].err, BATON_OK);
    ck_assert_int_eq(answers[1].err, BATON_ERR_STALE_TOKEN);
    ck_assert_msg(strstr(answers[1].why, "task c2 is running with token"), "%s", answers[1].why);
    ck_assert_int_eq(answers[2].err, BATON_OK);

    /* c2 untouched: running for w2 with its new token, no result, leased. */
    char c2_key[BATON_KEY_MAX];
    baton_task_key(c2_key, keys.name, "c2");
    const char *hmget[] = {"HMGET", c2_key, "state", "token", "worker", "result"};
    redisReply *h = cmd(6, hmget);
    ck_assert_str_eq(h->element[0]->str, "running");
    ck_assert_str_eq(h->element[1]->str, c2_token);
    ck_assert_str_eq(h->element[2]->str, "w2");
    ck_assert_int_eq(h->element[3]->type, REDIS_REPLY_NIL);
    freeReplyObject(h);
    const char *zscore[] = {"ZSCORE", keys.running, "c2"};
    h = cmd(3, zscore);
    ck_assert_int_ne(h->type, REDIS_REPLY_NIL);
    freeReplyObject(h);
    char c1_key[BATON_KEY_MAX];
    baton_task_key(c1_key, keys.name, "c1");
    const char *c1_state[] = {"HGET", c1_key, "state"};
    h = cmd(3, c1_state);
    ck_assert_str_eq(h->str, "succeeded");
    freeReplyObject(h);

    /* One new stream entry, holding c1's and c3's "succeeded". */
    ck_assert_int_eq(xlen(), before + 1);
    const char *last[] = {"XREVRANGE", keys.events, "+", "-", "COUNT", "1"};
    redisReply *entry = cmd(6, last);
    ck_assert_uint_eq(entry->elements, 1);
    const redisReply *fields = entry->element[0]->element[1];
    struct baton_events it;
    struct baton_event_span span;
    baton_events_begin(&it, fields);
    const char *want[] = {"c1", "c3"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(baton_events_next(&it, &span, NULL), 1);
        ck_assert_str_eq(baton_event_field(fields, &span, "id", NULL), want[i]);
        ck_assert_str_eq(baton_event_field(fields, &span, "event", NULL), "succeeded");
        ck_assert_str_eq(baton_event_field(fields, &span, "seq", NULL), "3");
        ck_assert_str_eq(baton_event_field(fields, &span, "attempt", NULL), "1");
        ck_assert_str_eq(baton_event_field(fields, &span, "worker", NULL), "w1");
        ck_assert_str_eq(baton_event_field(fields, &span, "token", NULL), tokens[i == 0 ? 0 : 2]);
    }
    ck_assert_int_eq(baton_events_next(&it, &span, NULL), 0);
    freeReplyObject(entry);

    /* The same call again (its reply lost): c1 and c3 are their own
     * successes, 1 and nothing written; c2 still refused. */
    ck_assert_int_eq(
        baton_tr_complete_many(r, &keys, done, 3, RETENTION_MS, answers, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(answers[0].err, BATON_OK);
    ck_assert_int_eq(answers[1].err, BATON_ERR_STALE_TOKEN);
    ck_assert_int_eq(answers[2].err, BATON_OK);
    ck_assert_int_eq(xlen(), before + 1);
}
END_TEST

/* XREADGROUP of `count` new entries of the test's stream for `consumer`
 * of group "g"; their ids into ids[]. */
static void read_group(const char *consumer, const char *count, size_t n, char ids[][32]) {
    const char *argv[] = {"XREADGROUP", "GROUP",   "g",         consumer, "COUNT",
                          count,        "STREAMS", keys.events, ">"};
    redisReply *reply = cmd(9, argv);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    const redisReply *items = reply->element[0]->element[1];
    ck_assert_uint_eq(items->elements, n);
    for (size_t i = 0; i < items->elements; i++)
        snprintf(ids[i], 32, "%s", items->element[i]->element[0]->str);
    freeReplyObject(reply);
}

/* ack.lua acknowledges and trims, never past an entry another writer
 * holds or the group has not delivered; orphans.lua then finds nothing,
 * but does find an entry the group skipped (XGROUP SETID). */
START_TEST(test_ack_trims_only_what_is_written) {
    const char *create[] = {"XGROUP", "CREATE", keys.events, "g", "0", "MKSTREAM"};
    freeReplyObject(cmd(6, create));
    for (int i = 0; i < 6; i++) {
        const char *xadd[] = {"XADD", keys.events, "*", "id", "t", "seq", "1"};
        freeReplyObject(cmd(7, xadd));
    }
    char a[2][32], b[2][32];
    read_group("A", "2", 2, a); /* writer A holds the first two */
    read_group("B", "2", 2, b); /* writer B the next two; two never read */
    const char *b_ids[] = {b[0], b[1]};
    long long acked, trimmed;
    ck_assert_int_eq(
        baton_tr_ack(r, keys.events, "g", b_ids, 2, &acked, &trimmed, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(acked, 2);
    ck_assert_int_eq(trimmed, 0); /* A's entries come first: nothing may go */
    ck_assert_int_eq(xlen(), 6);
    redisReply *lost;
    ck_assert_int_eq(baton_tr_orphans(r, keys.events, "g", "C", 10, &lost, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_uint_eq(lost->elements, 0); /* B's acknowledged entries are not lost */
    freeReplyObject(lost);
    const char *a_ids[] = {a[0], a[1]};
    ck_assert_int_eq(
        baton_tr_ack(r, keys.events, "g", a_ids, 2, &acked, &trimmed, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(acked, 2);
    ck_assert_int_eq(trimmed, 4); /* up to the last delivered; the two unread stay */
    ck_assert_int_eq(xlen(), 2);
    /* Acknowledged twice (a batch written again): nothing more. */
    ck_assert_int_eq(
        baton_tr_ack(r, keys.events, "g", a_ids, 2, &acked, &trimmed, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(acked + trimmed, 0);
    ck_assert_int_eq(xlen(), 2);

    /* The group skips the next entry: lost, and found as such. */
    const char *first[] = {"XRANGE", keys.events, "-", "+", "COUNT", "1"};
    redisReply *head = cmd(6, first);
    char skipped[32];
    snprintf(skipped, sizeof skipped, "%s", head->element[0]->element[0]->str);
    freeReplyObject(head);
    const char *setid[] = {"XGROUP", "SETID", keys.events, "g", skipped};
    freeReplyObject(cmd(5, setid));
    ck_assert_int_eq(baton_tr_orphans(r, keys.events, "g", "C", 10, &lost, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_uint_eq(lost->elements, 1);
    ck_assert_str_eq(lost->element[0]->element[0]->str, skipped);
    freeReplyObject(lost);
    const char *c_ids[] = {skipped};
    ck_assert_int_eq(
        baton_tr_ack(r, keys.events, "g", c_ids, 1, &acked, &trimmed, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(acked, 1);
    ck_assert_int_eq(trimmed, 1);
    ck_assert_int_eq(xlen(), 1); /* the one never delivered */

    /* No such group, no such stream: nothing to do. */
    ck_assert_int_eq(
        baton_tr_ack(r, keys.events, "nogroup", c_ids, 1, &acked, &trimmed, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(acked + trimmed, 0);
    ck_assert_int_eq(
        baton_tr_ack(r, keys.ready, "g", c_ids, 1, &acked, &trimmed, errstr, sizeof errstr),
        BATON_OK);
    ck_assert_int_eq(acked + trimmed, 0);
}
END_TEST

START_TEST(test_registry_and_streams) {
    char worker[BATON_KEY_MAX + 8];
    snprintf(worker, sizeof worker, "%s-worker", keys.name);
    const char *fields[] = {"host", "h", "busy", "0"};
    int64_t at = 0;
    ck_assert_int_eq(baton_tr_heartbeat(r, worker, 10000, fields, 4, &at, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_gt(at, 0);
    char key[BATON_KEY_MAX];
    baton_worker_key(key, worker);
    const char *hget[] = {"HGET", key, "busy"};
    redisReply *reply;
    ck_assert_int_eq(baton_redis_command(r, &reply, 3, hget, NULL, errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_str_eq(reply->str, "0");
    freeReplyObject(reply);
    const char *del[] = {"DEL", key};
    const char *zrem[] = {"ZREM", BATON_KEY_WORKERS, worker};
    ck_assert_int_eq(baton_redis_command(r, &reply, 2, del, NULL, errstr, sizeof errstr), BATON_OK);
    freeReplyObject(reply);
    ck_assert_int_eq(baton_redis_command(r, &reply, 3, zrem, NULL, errstr, sizeof errstr),
                     BATON_OK);
    freeReplyObject(reply);

    /* No stream: orphans.lua's NOGROUP; a group created twice: BUSYGROUP. */
    redisReply *entries;
    ck_assert_int_eq(
        baton_tr_orphans(r, keys.events, "g", "me", 10, &entries, errstr, sizeof errstr),
        BATON_ERR_NOT_FOUND);
    const char *create[] = {"XGROUP", "CREATE", keys.events, "g", "0", "MKSTREAM"};
    ck_assert_int_eq(baton_tr_command(r, &reply, 6, create, errstr, sizeof errstr), BATON_OK);
    freeReplyObject(reply);
    ck_assert_int_eq(baton_tr_command(r, &reply, 6, create, errstr, sizeof errstr),
                     BATON_ERR_EXISTS);
    ck_assert_int_eq(
        baton_tr_orphans(r, keys.events, "g", "me", 10, &entries, errstr, sizeof errstr), BATON_OK);
    ck_assert_uint_eq(entries->elements, 0);
    freeReplyObject(entries);
}
END_TEST

/* A Redis that lost its scripts (SCRIPT FLUSH): one retry after reload. */
START_TEST(test_noscript_reloads) {
    const char *flush[] = {"SCRIPT", "FLUSH"};
    redisReply *reply;
    ck_assert_int_eq(baton_redis_command(r, &reply, 2, flush, NULL, errstr, sizeof errstr),
                     BATON_OK);
    freeReplyObject(reply);
    ck_assert_int_eq(baton_tr_retry(r, &keys, "nope", errstr, sizeof errstr), BATON_ERR_NOT_FOUND);
}
END_TEST

int main(void) {
    Suite *s = suite_create("transition");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_a_task_walks_through);
    tcase_add_test(core, test_worker_endings);
    tcase_add_test(core, test_complete_many_with_a_stale_token);
    tcase_add_test(core, test_ack_trims_only_what_is_written);
    tcase_add_test(core, test_registry_and_streams);
    tcase_add_test(core, test_noscript_reloads);
    suite_add_tcase(s, core);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
