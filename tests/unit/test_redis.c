/*
 * test_redis.c - common/redis.c without a server: the memory figure that
 * backpressure compares with maxmemory is the one Redis itself compares
 * (used_memory less mem_not_counted_for_evict), read from INFO memory; URLs
 * whose password no error message shows, with a percent-decoded user and
 * password; the durability verdict (appendonly yes + appendfsync
 * always) that the daemons require; a handle made before Redis is
 * reachable (baton_redis_new), which connects on use; and the commands
 * baton_redis_format writes, byte for byte what hiredis's own formatter
 * writes.
 */
#include <check.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

/* Lines as Redis 7 prints them (CRLF), in its order. */
static const char INFO_AOF_BUFFER[] = "# Memory\r\n"
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
    ck_assert_int_eq(
        baton_redis_memory_parse("used_memory_human:1M\r\nmaxmemory:5\r\n", &used, &max), 0);
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

/* ---------------------------------------------------------------- URLs */

#define SECRET "S3cretPW"

START_TEST(test_redact) {
    char buf[256];
    baton_redis_url_redact("redis://user:" SECRET "@host:99999/0", buf, sizeof buf);
    ck_assert_str_eq(buf, "redis://user:***@host:99999/0");
    baton_redis_url_redact("redis://:" SECRET "@host", buf, sizeof buf);
    ck_assert_str_eq(buf, "redis://:***@host");
    /* No ':' in the userinfo: the parser takes it all as the password. */
    baton_redis_url_redact("redis://" SECRET "@host", buf, sizeof buf);
    ck_assert_str_eq(buf, "redis://***@host");
    /* '@' and '/' inside an unencoded password: hidden up to the last '@'. */
    baton_redis_url_redact("redis://u:a@b/" SECRET "@host/1", buf, sizeof buf);
    ck_assert_str_eq(buf, "redis://u:***@host/1");
    /* Other schemes, or none, are redacted the same way. */
    baton_redis_url_redact("rediss://u:" SECRET "@h", buf, sizeof buf);
    ck_assert_str_eq(buf, "rediss://u:***@h");
    baton_redis_url_redact("u:" SECRET "@h:1", buf, sizeof buf);
    ck_assert_str_eq(buf, "u:***@h:1");
    baton_redis_url_redact("redis://host:6379/2", buf, sizeof buf);
    ck_assert_str_eq(buf, "redis://host:6379/2");
    /* Truncated, never overrun. */
    char small[12];
    baton_redis_url_redact("redis://u:" SECRET "@h", small, sizeof small);
    ck_assert_str_eq(small, "redis://u:*");
}
END_TEST

/* Asserts that `url` is refused with `want` in the error and SECRET
 * nowhere in it. */
static void refused(const char *url, const char *want) {
    struct baton_redis_url parsed;
    char errstr[512] = "";
    ck_assert_int_eq(baton_redis_parse_url(url, &parsed, errstr, sizeof errstr), BATON_ERR_CONFIG);
    ck_assert_msg(strstr(errstr, want), "'%s' not in: %s", want, errstr);
    ck_assert_msg(!strstr(errstr, SECRET) && !strstr(errstr, "S3cret"), "secret in: %s", errstr);
    ck_assert_str_eq(parsed.password, "");
}

START_TEST(test_errors_never_show_the_password) {
    refused("redis://user:" SECRET "@host:99999/0",
            "Redis URL 'redis://user:***@host:99999/0' has a bad port");
    refused("redis://user:" SECRET "@host:1/x", "'redis://user:***@host:1/x' has a bad database");
    refused("redis://user:" SECRET "@", "has no host");
    refused("redis://user:" SECRET "@host:1/0/", "has a bad database number");
    refused("http://user:" SECRET "@host", "'http://user:***@host' must start with redis://");
    refused("user:" SECRET "@host", "must start with redis://");
}
END_TEST

START_TEST(test_percent_decoding) {
    struct baton_redis_url u;
    char errstr[256];
    ck_assert_int_eq(baton_redis_parse_url("redis://us%65r%3A1:p%40ss%3Aw%2F%25rd@h:7/3", &u,
                                           errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_str_eq(u.username, "user:1");
    ck_assert_str_eq(u.password, "p@ss:w/%rd");
    ck_assert_str_eq(u.host, "h");
    ck_assert_int_eq(u.port, 7);
    ck_assert_int_eq(u.db, 3);
    /* Unencoded text stays as it was (no '+' to space: that is forms). */
    ck_assert_int_eq(baton_redis_parse_url("redis://:a+b@h", &u, errstr, sizeof errstr), BATON_OK);
    ck_assert_str_eq(u.password, "a+b");
    /* A bad escape is refused, and neither the escape nor the rest of the
     * password is shown. */
    refused("redis://u:S3cret%zzPW@h", "the password has a bad percent-encoding");
    refused("redis://u:" SECRET "%4@h", "the password has a bad percent-encoding");
    refused("redis://u:" SECRET "%@h", "the password has a bad percent-encoding");
    refused("redis://u:" SECRET "%00@h", "the password has a bad percent-encoding");
    refused("redis://u%g1:" SECRET "@h", "the user has a bad percent-encoding");
}
END_TEST

START_TEST(test_too_long) {
    char url[600];
    char pw[300];
    memset(pw, 'x', sizeof pw - 1);
    pw[sizeof pw - 1] = '\0';
    snprintf(url, sizeof url, "redis://u:%s@h", pw);
    refused(url, "the password is too long");
    /* 255 bytes fit; 255 escapes of 3 characters decode to 255 bytes. */
    char enc[800];
    size_t n = (size_t)snprintf(enc, sizeof enc, "redis://u:");
    for (int i = 0; i < 255; i++)
        n += (size_t)snprintf(enc + n, sizeof enc - n, "%%41");
    snprintf(enc + n, sizeof enc - n, "@h");
    struct baton_redis_url u;
    char errstr[256];
    ck_assert_int_eq(baton_redis_parse_url(enc, &u, errstr, sizeof errstr), BATON_OK);
    ck_assert_uint_eq(strlen(u.password), 255);
}
END_TEST

/* ---------------------------------------------------------------- durability */

START_TEST(test_durability_verdict) {
    char errstr[512];
    ck_assert_int_eq(baton_redis_durability_verdict("h:1", "yes", "always", errstr, sizeof errstr),
                     BATON_OK);
    ck_assert_int_eq(
        baton_redis_durability_verdict("h:1", "yes", "everysec", errstr, sizeof errstr),
        BATON_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "Redis h:1 has appendfsync everysec"));
    ck_assert_ptr_nonnull(strstr(errstr, "--redis-durability=relaxed"));
    ck_assert_int_eq(baton_redis_durability_verdict("h:1", "no", "always", errstr, sizeof errstr),
                     BATON_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "appendonly no (AOF off)"));
    ck_assert_int_eq(baton_redis_durability_verdict("h:1", NULL, NULL, errstr, sizeof errstr),
                     BATON_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "appendonly unknown"));
    ck_assert_int_eq(baton_redis_durability_verdict("h:1", "yes", "no", errstr, sizeof errstr),
                     BATON_ERR_CONFIG);
}
END_TEST

START_TEST(test_durability_parse) {
    baton_redis_durability_t d;
    char errstr[256];
    ck_assert_int_eq(baton_redis_durability_parse("strict", &d, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(d, BATON_REDIS_DURABILITY_STRICT);
    ck_assert_int_eq(baton_redis_durability_parse("relaxed", &d, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(d, BATON_REDIS_DURABILITY_RELAXED);
    ck_assert_int_eq(baton_redis_durability_parse("lax", &d, errstr, sizeof errstr),
                     BATON_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "expected strict or relaxed, got 'lax'"));
}
END_TEST

/* ------------------------------------------------------------ lazy handle */

/* A local port nothing listens on: bound, then closed. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

START_TEST(test_new_does_not_connect) {
    char url[64], errstr[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", closed_port());
    baton_redis_t *r = NULL;
    /* Redis is not there: the handle is made all the same... */
    ck_assert_int_eq(baton_redis_new(url, 500, &r, errstr, sizeof errstr), BATON_OK);
    ck_assert_ptr_nonnull(r);
    /* ...and every use tries to connect, failing cleanly each time. */
    for (int i = 0; i < 2; i++) {
        errstr[0] = '\0';
        ck_assert_int_eq(baton_redis_ensure(r, errstr, sizeof errstr), BATON_ERR_REDIS);
        ck_assert_msg(strstr(errstr, "connect"), "%s", errstr);
        const char *ping[] = {"PING"};
        redisReply *reply = (void *)1;
        ck_assert_int_eq(baton_redis_command(r, &reply, 1, ping, NULL, errstr, sizeof errstr),
                         BATON_ERR_REDIS);
    }
    baton_redis_destroy(r);
    /* baton_redis_connect is new + ensure: it gives no handle. */
    r = (void *)1;
    ck_assert_int_eq(baton_redis_connect(url, 500, &r, errstr, sizeof errstr), BATON_ERR_REDIS);
    ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_new_refuses_a_bad_url) {
    char errstr[256];
    baton_redis_t *r = (void *)1;
    ck_assert_int_eq(baton_redis_new("http://x", 500, &r, errstr, sizeof errstr), BATON_ERR_CONFIG);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(baton_redis_new("redis://u:secret@h:99999", 500, &r, errstr, sizeof errstr),
                     BATON_ERR_CONFIG);
    ck_assert_ptr_null(r);
    ck_assert_ptr_null(strstr(errstr, "secret"));
}
END_TEST

/* baton_redis_format of prefix + argv equals redisFormatCommandArgv of
 * the two joined. */
static void check_format(int nprefix, const char *const *prefix, const size_t *prefix_len, int argc,
                         const char *const *argv, const size_t *lens) {
    const char *all[64];
    size_t all_len[64];
    ck_assert_int_le(nprefix + argc, 64);
    for (int i = 0; i < nprefix; i++) {
        all[i] = prefix[i];
        all_len[i] = prefix_len[i];
    }
    for (int i = 0; i < argc; i++) {
        all[nprefix + i] = argv[i];
        all_len[nprefix + i] = lens ? lens[i] : strlen(argv[i]);
    }
    char *want = NULL;
    int want_len = redisFormatCommandArgv(&want, nprefix + argc, all, all_len);
    ck_assert_int_gt(want_len, 0);
    size_t size = baton_redis_format_size(nprefix, prefix, prefix_len, argc, argv, lens);
    ck_assert_uint_eq(size, (size_t)want_len);
    char *got = malloc(size + 1);
    got[size] = 'X'; /* must stay: the size is exact */
    ck_assert_uint_eq(baton_redis_format(got, nprefix, prefix, prefix_len, argc, argv, lens), size);
    ck_assert_int_eq(got[size], 'X');
    ck_assert_int_eq(memcmp(got, want, size), 0);
    free(got);
    redisFreeCommand(want);
}

START_TEST(test_format_is_resp) {
    const char *ping[] = {"PING"};
    check_format(0, NULL, NULL, 1, ping, NULL);
    /* Binary values (a NUL inside, lengths given), empty ones, and lengths
     * of every digit count up to 6. */
    static char big[123456];
    memset(big, 'v', sizeof big);
    big[7] = '\0';
    const char *args[] = {"k", "", big, big, big, big, big, big};
    const size_t lens[] = {1, 0, 9, 10, 99, 100, 12345, sizeof big};
    check_format(0, NULL, NULL, 8, args, lens);
    /* A script call: EVALSHA, its SHA, numkeys, then the caller's arguments;
     * 20 of them, so that the count itself has two digits. */
    const char *prefix[] = {"EVALSHA", "0123456789012345678901234567890123456789", "12"};
    const size_t prefix_len[] = {7, 40, 2};
    const char *many[17];
    for (int i = 0; i < 17; i++)
        many[i] = i % 2 ? "baton:{q}:ready" : "1700000000000";
    check_format(3, prefix, prefix_len, 17, many, NULL);
    check_format(3, prefix, prefix_len, 0, NULL, NULL);
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
    TCase *urls = tcase_create("urls");
    tcase_add_test(urls, test_redact);
    tcase_add_test(urls, test_errors_never_show_the_password);
    tcase_add_test(urls, test_percent_decoding);
    tcase_add_test(urls, test_too_long);
    suite_add_tcase(s, urls);
    TCase *durability = tcase_create("durability");
    tcase_add_test(durability, test_durability_verdict);
    tcase_add_test(durability, test_durability_parse);
    TCase *lazy = tcase_create("lazy");
    tcase_add_test(lazy, test_new_does_not_connect);
    tcase_add_test(lazy, test_new_refuses_a_bad_url);
    suite_add_tcase(s, lazy);
    suite_add_tcase(s, durability);
    TCase *format = tcase_create("format");
    tcase_add_test(format, test_format_is_resp);
    suite_add_tcase(s, format);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
