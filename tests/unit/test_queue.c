/*
 * test_queue.c - common/queue.c: key names carry the queue as a hash tag,
 * and ready scores order strict priority then FIFO, with head insertion
 * (negative seq) ahead of every normal entry of the same priority and
 * behind every entry of a higher priority.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

START_TEST(test_keys_share_hash_tag) {
    char buf[BATON_KEY_MAX];
    struct baton_queue_keys keys;
    baton_queue_keys_init(&keys, "emails");
    ck_assert_str_eq(keys.ready, "baton:{emails}:ready");
    baton_task_key(buf, "emails", "t-1");
    ck_assert_str_eq(buf, "baton:{emails}:t:t-1");
}
END_TEST

START_TEST(test_priority_then_fifo) {
    /* Every (priority, seq) pair sorts as the contract says. */
    int priorities[] = {9, 5, 5, 0, 9, 0};
    long long seqs[] = {10, 1, 2, 3, 11, 1};
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 6; j++) {
            double a = baton_ready_score(priorities[i], seqs[i]);
            double b = baton_ready_score(priorities[j], seqs[j]);
            int before = priorities[i] > priorities[j] ||
                         (priorities[i] == priorities[j] && seqs[i] < seqs[j]);
            if (before)
                ck_assert_msg(a < b, "(%d,%lld) must pop before (%d,%lld)", priorities[i], seqs[i],
                              priorities[j], seqs[j]);
        }
    }
}
END_TEST

START_TEST(test_head_insertion) {
    /* Returned to the head: before normal entries of its priority, after
     * the whole band of the priority above. */
    double head = baton_ready_score(5, -3);
    ck_assert(head < baton_ready_score(5, 1));
    ck_assert(baton_ready_score(5, -4) < head);
    ck_assert(baton_ready_score(6, BATON_SCORE_SEQ_LIMIT - 1) < head);
    ck_assert_int_eq(baton_ready_score_priority(head), 5);
}
END_TEST

START_TEST(test_bands_exact_and_decoded) {
    for (int p = 0; p <= 9; p++) {
        double min, max;
        baton_ready_priority_range(p, &min, &max);
        /* Extreme seqs stay in their band and decode to their priority. */
        double lo = baton_ready_score(p, -BATON_SCORE_SEQ_LIMIT);
        double hi = baton_ready_score(p, BATON_SCORE_SEQ_LIMIT - 1);
        ck_assert(lo >= min && hi <= max);
        ck_assert_int_eq(baton_ready_score_priority(lo), p);
        ck_assert_int_eq(baton_ready_score_priority(hi), p);
        ck_assert_int_eq(baton_ready_score_priority(baton_ready_score(p, 1)), p);
        /* Scores are exact integers in a double: one apart stays apart. */
        ck_assert(baton_ready_score(p, 1000001) - baton_ready_score(p, 1000000) == 1.0);
        ck_assert(hi < 9007199254740992.0); /* 2^53 */
        if (p < 9) {
            double min_up, max_up;
            baton_ready_priority_range(p + 1, &min_up, &max_up);
            ck_assert(max_up < min); /* bands never overlap */
        }
    }
}
END_TEST

static Suite *queue_suite(void) {
    Suite *s = suite_create("queue");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_keys_share_hash_tag);
    tcase_add_test(core, test_priority_then_fifo);
    tcase_add_test(core, test_head_insertion);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_bands_exact_and_decoded);
    suite_add_tcase(s, limits);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(queue_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
