/*
 * test_redis.c - common/redis.c without a server: the memory figure that
 * backpressure compares with maxmemory is the one Redis itself compares
 * (used_memory less mem_not_counted_for_evict), read from INFO memory.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "redis.h"

/* Lines as Redis 7 prints them (CRLF), in its order. */
static const char INFO_AOF_BUFFER[] =
    "# Memory\r\n"
    "used_memory:4460064\r\n"
    "used_memory_human:4.25M\r\n"
    "used_memory_dataset:2246256\r\n"
    "maxmemory:4272272\r\n"
    "maxmemory_human:4.07M\r\n"
    "maxmemory_policy:noeviction\r\n"
    "mem_not_counted_for_evict:524288\r\n"
    "mem_aof_buffer:524288\r\n";

START_TEST(test_not_counted_is_left_out) {
    uint64_t used = 1, max = 1;
    ck_assert_int_eq(baton_redis_memory_parse(INFO_AOF_BUFFER, &used, &max), 1);
    ck_assert_uint_eq(used, 4460064 - 524288);
    ck_assert_uint_eq(max, 4272272);
}
END_TEST

START_TEST(test_without_not_counted_field) {
    /* Older servers: all of used_memory counts. No limit: max 0. */
    uint64_t used, max;
    ck_assert_int_eq(baton_redis_memory_parse("used_memory:1000\r\nmaxmemory:0\r\n", &used, &max),
                     1);
    ck_assert_uint_eq(used, 1000);
    ck_assert_uint_eq(max, 0);
}
END_TEST

START_TEST(test_no_used_memory) {
    /* used_memory_human alone is not used_memory. */
    uint64_t used = 1, max = 1;
    ck_assert_int_eq(baton_redis_memory_parse("used_memory_human:1M\r\nmaxmemory:5\r\n", &used,
                                              &max),
                     0);
    ck_assert_uint_eq(used, 0);
    ck_assert_uint_eq(max, 0);
}
END_TEST

START_TEST(test_not_counted_over_used) {
    /* Never wraps below zero, whatever a reply says. */
    uint64_t used, max;
    ck_assert_int_eq(
        baton_redis_memory_parse("used_memory:10\nmem_not_counted_for_evict:20\n", &used, &max), 1);
    ck_assert_uint_eq(used, 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("memory");
    tcase_add_test(tc, test_not_counted_is_left_out);
    tcase_add_test(tc, test_without_not_counted_field);
    tcase_add_test(tc, test_no_used_memory);
    tcase_add_test(tc, test_not_counted_over_used);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
