/*
 * test_timeutil.c - common/timeutil.c: strict RFC 3339 parsing against the
 * calendar, millisecond formatting on both sides of 1970, round trips over
 * the whole representable range, and the two clocks. The formatter and the
 * parser are checked against glibc's gmtime_r() and timegm() (available via
 * _DEFAULT_SOURCE), implementations independent of ours.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z. */
#define MIN_MS INT64_C(-62167219200000)
#define MAX_MS INT64_C(253402300799999)

/* ---------------------------------------------------------------------------
 * Good inputs
 * ------------------------------------------------------------------------ */

static const struct {
    const char *text;
    int64_t ms;
} good[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"1970-01-01T00:00:00.001Z", 1},
    {"1969-12-31T23:59:59.999Z", -1},
    {"1969-12-31T23:59:59Z", -1000},
    {"2026-11-25T15:04:05Z", INT64_C(1795619045000)},
    {"2026-11-25t15:04:05z", INT64_C(1795619045000)},
    {"2026-11-25 15:04:05Z", INT64_C(1795619045000)},
    {"2026-11-25T17:04:05+02:00", INT64_C(1795619045000)},
    {"2026-11-25T10:04:05-05:00", INT64_C(1795619045000)},
    {"2026-11-25T20:34:05+05:30", INT64_C(1795619045000)},
    {"2026-11-25T15:04:05-00:00", INT64_C(1795619045000)},
    {"2026-11-25T15:04:05+00:00", INT64_C(1795619045000)},
    /* Fractions: padded on the right, truncated (not rounded) past ms. */
    {"2026-11-25T15:04:05.1Z", INT64_C(1795619045100)},
    {"2026-11-25T15:04:05.12Z", INT64_C(1795619045120)},
    {"2026-11-25T15:04:05.123Z", INT64_C(1795619045123)},
    {"2026-11-25T17:04:05.123456+02:00", INT64_C(1795619045123)},
    {"2026-11-25T15:04:05.9999999Z", INT64_C(1795619045999)},
    {"2026-11-25T15:04:05.000000000000000000000000000001Z", INT64_C(1795619045000)},
    /* Leap years: 2000 is one (divisible by 400), 2024 too, 1900 not. */
    {"2000-02-29T00:00:00Z", INT64_C(951782400000)},
    {"2024-02-29T12:00:00Z", INT64_C(1709208000000)},
    {"1900-02-28T00:00:00Z", INT64_C(-2203977600000)},
    {"1900-03-01T00:00:00Z", INT64_C(-2203891200000)},
    {"2023-12-31T23:59:59Z", INT64_C(1704067199000)},
    /* A leap second is the first instant of the next minute. */
    {"1998-12-31T23:59:60Z", INT64_C(915148800000)},
    {"1999-01-01T00:00:00Z", INT64_C(915148800000)},
    /* Offset extremes. */
    {"2026-01-01T23:59:00+23:59", INT64_C(1767225600000)},
    {"2025-12-31T00:01:00-23:59", INT64_C(1767225600000)},
    /* Range ends. */
    {"0000-01-01T00:00:00Z", MIN_MS},
    {"9999-12-31T23:59:59.999Z", MAX_MS},
    {"0000-01-01T00:00:00-00:01", MIN_MS + 60000},
    {"9999-12-31T23:58:59.999-00:01", MAX_MS},
    {"9999-12-31T23:59:00+00:01", MAX_MS - 119999},
};

START_TEST(test_parse_good) {
    char errstr[128] = "";
    int64_t ms = 42;
    ck_assert_msg(baton_time_parse_rfc3339(good[_i].text, &ms, errstr, sizeof errstr) == BATON_OK,
                  "%s: %s", good[_i].text, errstr);
    ck_assert_msg(ms == good[_i].ms, "%s: got %lld, want %lld", good[_i].text, (long long)ms,
                  (long long)good[_i].ms);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Bad inputs
 * ------------------------------------------------------------------------ */

static const char *const bad[] = {
    "",
    "2026",
    "2026-11-25",          /* a date is not a date-time */
    "2026-11-25T15:04Z",   /* seconds are mandatory */
    "2026-11-25T15:04:05", /* the offset is mandatory */
    "26-11-25T15:04:05Z",  /* two-digit year */
    "2026-1-25T15:04:05Z", /* one-digit month */
    "2026-11-5T15:04:05Z",
    "2026-11-25T5:04:05Z",
    "2026/11/25T15:04:05Z",
    "2026-11-25X15:04:05Z",
    "2026-11-25T15-04-05Z",
    "+2026-11-25T15:04:05Z",
    " 2026-11-25T15:04:05Z",
    "2026-11-25T15:04:05Z ",
    "2026-11-25T15:04:05ZZ",
    "2026-11-25T15:04:05.Z", /* '.' needs at least one digit */
    "2026-11-25T15:04:05,5Z",
    "2026-11-25T15:04:05+0200", /* offset needs its colon */
    "2026-11-25T15:04:05+2:00",
    "2026-11-25T15:04:05+02",
    "2026-11-25T15:04:05+24:00",
    "2026-11-25T15:04:05+23:60",
    "2026-11-25T15:04:05-24:00",
    "2026-11-25T15:04:05UTC",
    "2026-00-10T00:00:00Z",
    "2026-13-10T00:00:00Z",
    "2026-01-00T00:00:00Z",
    "2026-01-32T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-06-31T00:00:00Z",
    "2026-09-31T00:00:00Z",
    "2026-11-31T00:00:00Z",
    "2023-02-29T00:00:00Z", /* not a leap year */
    "1900-02-29T00:00:00Z", /* divisible by 100, not by 400 */
    "2100-02-29T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2026-11-25T24:00:00Z",
    "2026-11-25T23:60:00Z",
    "2026-11-25T23:59:61Z",
    "２026-11-25T15:04:05Z",     /* a fullwidth digit is not a digit */
    "0000-01-01T00:00:00+00:01", /* before year 0000 in UTC */
    "9999-12-31T23:59:60Z",      /* after year 9999 in UTC */
    "9999-12-31T23:59:59-00:01",
};

START_TEST(test_parse_bad) {
    char errstr[128] = "";
    int64_t ms = 42;
    ck_assert_msg(baton_time_parse_rfc3339(bad[_i], &ms, errstr, sizeof errstr) ==
                      BATON_ERR_INVALID,
                  "accepted \"%s\"", bad[_i]);
    ck_assert_msg(errstr[0] != '\0', "no description for \"%s\"", bad[_i]);
    ck_assert_int_eq(ms, 42); /* untouched on failure */
}
END_TEST

START_TEST(test_parse_errors_are_specific) {
    char errstr[128];
    int64_t ms;
    baton_time_parse_rfc3339("2023-02-29T00:00:00Z", &ms, errstr, sizeof errstr);
    ck_assert_str_eq(errstr, "day 29 is out of range for 2023-02 (28 days)");
    baton_time_parse_rfc3339("2026-13-01T00:00:00Z", &ms, errstr, sizeof errstr);
    ck_assert_str_eq(errstr, "month 13 is out of range 01-12");
    baton_time_parse_rfc3339("2026-01-01T00:00:61Z", &ms, errstr, sizeof errstr);
    ck_assert_str_eq(errstr, "second 61 is out of range 00-60");
    baton_time_parse_rfc3339("2026-01-01T00:00:00+24:00", &ms, errstr, sizeof errstr);
    ck_assert_str_eq(errstr, "offset +24:00 is out of range -23:59 to +23:59");
    baton_time_parse_rfc3339("2026-01-01T00:00:00Zjunk", &ms, errstr, sizeof errstr);
    ck_assert_str_eq(errstr, "unexpected text after the offset at index 20");
}
END_TEST

START_TEST(test_parse_null_and_no_errstr) {
    int64_t ms;
    ck_assert_int_eq(baton_time_parse_rfc3339(NULL, &ms, NULL, 0), BATON_ERR_INVALID);
    ck_assert_int_eq(baton_time_parse_rfc3339("nope", &ms, NULL, 0), BATON_ERR_INVALID);
}
END_TEST

/* ---------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------ */

START_TEST(test_format_known) {
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-999, "1969-12-31T23:59:59.001Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {-1001, "1969-12-31T23:59:58.999Z"},
        {-86400000, "1969-12-31T00:00:00.000Z"},
        {-86400001, "1969-12-30T23:59:59.999Z"},
        {INT64_C(951782400000), "2000-02-29T00:00:00.000Z"},
        {INT64_C(1795619045123), "2026-11-25T15:04:05.123Z"},
        {INT64_C(-2203977600000), "1900-02-28T00:00:00.000Z"},
        {MIN_MS, "0000-01-01T00:00:00.000Z"},
        {MAX_MS, "9999-12-31T23:59:59.999Z"},
    };
    char buf[BATON_RFC3339_BUFSZ];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_ptr_eq(baton_time_format_rfc3339(cases[i].ms, buf), buf);
        ck_assert_str_eq(buf, cases[i].text);
    }
}
END_TEST

/* The formatter must not overflow or misbehave at the ends of int64. */
START_TEST(test_format_int64_extremes) {
    char buf[BATON_RFC3339_BUFSZ];
    baton_time_format_rfc3339(INT64_MIN, buf);
    ck_assert_str_eq(buf, "-292275055-05-16T16:47:04.192Z");
    baton_time_format_rfc3339(INT64_MAX, buf);
    ck_assert_str_eq(buf, "292278994-08-17T07:12:55.807Z");
}
END_TEST

/* Pseudo-random instants over the whole range, compared with gmtime_r(). */
START_TEST(test_format_matches_gmtime) {
    uint64_t state = 0x9e3779b97f4a7c15u;
    char buf[BATON_RFC3339_BUFSZ], want[96];
    for (int i = 0; i < 200000; i++) {
        state = state * 6364136223846793005u + 1442695040888963407u;
        int64_t ms = MIN_MS + (int64_t)((state >> 11) % (uint64_t)(MAX_MS - MIN_MS + 1));
        int64_t ms_of_sec = ((ms % 1000) + 1000) % 1000;
        time_t secs = (time_t)((ms - ms_of_sec) / 1000);
        struct tm tm;
        ck_assert_ptr_nonnull(gmtime_r(&secs, &tm));
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms_of_sec);
        ck_assert_str_eq(baton_time_format_rfc3339(ms, buf), want);
    }
}
END_TEST

/* ---------------------------------------------------------------------------
 * Round trips
 * ------------------------------------------------------------------------ */

/* Every day of 1899-2101 at three times of day, then a pseudo-random sweep
 * of the whole range: format -> parse gives the same millisecond. */
START_TEST(test_round_trip) {
    char buf[BATON_RFC3339_BUFSZ], errstr[128];
    int64_t ms, back;
    int64_t from = INT64_C(-2240524800000); /* 1899-01-01 */
    int64_t to = INT64_C(4165516800000);    /* 2102-01-01 */
    for (ms = from; ms < to; ms += 86400000) {
        const int64_t times[] = {0, 1, 86399999};
        for (size_t i = 0; i < 3; i++) {
            baton_time_format_rfc3339(ms + times[i], buf);
            ck_assert_msg(baton_time_parse_rfc3339(buf, &back, errstr, sizeof errstr) == BATON_OK,
                          "%s: %s", buf, errstr);
            ck_assert_msg(back == ms + times[i], "%s", buf);
        }
    }
    uint64_t state = 12345;
    for (int i = 0; i < 200000; i++) {
        state = state * 6364136223846793005u + 1442695040888963407u;
        ms = MIN_MS + (int64_t)((state >> 11) % (uint64_t)(MAX_MS - MIN_MS + 1));
        baton_time_format_rfc3339(ms, buf);
        ck_assert_int_eq(baton_time_parse_rfc3339(buf, &back, errstr, sizeof errstr), BATON_OK);
        ck_assert_msg(back == ms, "%s", buf);
    }
}
END_TEST

/* Our day arithmetic agrees with timegm() at every midnight 1901-2100. */
START_TEST(test_parse_matches_timegm) {
    char text[64], errstr[128];
    for (int year = 1901; year <= 2100; year++)
        for (int month = 1; month <= 12; month++)
            for (int day = 1; day <= 31; day++) {
                struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day};
                time_t want = timegm(&tm);
                int valid = tm.tm_mday == day; /* timegm normalised an invalid day */
                snprintf(text, sizeof text, "%04d-%02d-%02dT00:00:00Z", year, month, day);
                int64_t ms;
                baton_err_t rc = baton_time_parse_rfc3339(text, &ms, errstr, sizeof errstr);
                ck_assert_msg((rc == BATON_OK) == valid, "%s", text);
                if (valid)
                    ck_assert_msg(ms == (int64_t)want * 1000, "%s", text);
            }
}
END_TEST

/* ---------------------------------------------------------------------------
 * Clocks
 * ------------------------------------------------------------------------ */

/* A timed wait on a monotonic condvar ends at the instant asked for. */
START_TEST(test_mono_deadline_and_cond) {
    struct timespec a = baton_time_mono_after(0), b = baton_time_mono_after(1500);
    int64_t diff_ms = (int64_t)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    ck_assert_int_ge(diff_ms, 1500);
    ck_assert_int_lt(diff_ms, 1500 + 1000);
    ck_assert(b.tv_nsec >= 0 && b.tv_nsec < 1000000000L);
    /* In microseconds: 1.5 ms and 2.5 s from now (the carry into tv_sec). */
    struct timespec c = baton_time_mono_after_us(1500), d = baton_time_mono_after_us(2500000);
    int64_t c_us = (int64_t)(c.tv_sec - a.tv_sec) * 1000000 + (c.tv_nsec - a.tv_nsec) / 1000;
    int64_t d_us = (int64_t)(d.tv_sec - a.tv_sec) * 1000000 + (d.tv_nsec - a.tv_nsec) / 1000;
    ck_assert_int_ge(c_us, 1500);
    ck_assert_int_lt(c_us, 1500 + 1000000);
    ck_assert_int_ge(d_us, 2500000);
    ck_assert_int_lt(d_us, 2500000 + 1000000);
    ck_assert(c.tv_nsec >= 0 && c.tv_nsec < 1000000000L);
    ck_assert(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    pthread_cond_t cond;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    ck_assert_int_eq(baton_cond_init_monotonic(&cond), 0);
    int64_t before = baton_time_mono_ms();
    struct timespec until = baton_time_mono_after(30);
    pthread_mutex_lock(&lock);
    while (pthread_cond_timedwait(&cond, &lock, &until) == 0) {
    }
    pthread_mutex_unlock(&lock);
    ck_assert_int_ge(baton_time_mono_ms() - before, 29);
    pthread_cond_destroy(&cond);
}
END_TEST

/* A deadline from a clock and a duration saturates instead of wrapping into
 * the past (the worker's start + timeout_ms with timeout_ms = 2^63-1). */
START_TEST(test_add_saturates) {
    ck_assert(baton_time_add_sat(1000, 500) == 1500);
    ck_assert(baton_time_add_sat(1000, -1500) == -500);
    ck_assert(baton_time_add_sat(baton_time_mono_ms(), INT64_MAX) == INT64_MAX);
    ck_assert(baton_time_add_sat(INT64_MAX, 1) == INT64_MAX);
    ck_assert(baton_time_add_sat(INT64_MIN, -1) == INT64_MIN);
    ck_assert(baton_time_add_sat(-5, INT64_MIN) == INT64_MIN);
    ck_assert(baton_time_add_sat(INT64_MAX, INT64_MIN) == -1);
}
END_TEST

/* A negative or huge wait still gives a timespec timedwait accepts: a
 * negative one used to leave tv_nsec negative (EINVAL, never ETIMEDOUT). */
START_TEST(test_mono_after_extremes) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct timespec ts = baton_time_mono_after(-1500);
    ck_assert(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
    ck_assert(ts.tv_sec >= now.tv_sec && ts.tv_sec <= now.tv_sec + 1);
    ts = baton_time_mono_after(INT64_MAX);
    ck_assert(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
    ck_assert(ts.tv_sec > now.tv_sec);

    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond;
    ck_assert_int_eq(baton_cond_init_monotonic(&cond), 0);
    pthread_mutex_lock(&lock);
    struct timespec past = baton_time_mono_after(-1);
    ck_assert_int_eq(pthread_cond_timedwait(&cond, &lock, &past), ETIMEDOUT);
    pthread_mutex_unlock(&lock);
    pthread_cond_destroy(&cond);
}
END_TEST

START_TEST(test_clocks) {
    int64_t wall = baton_time_wall_ms();
    int64_t now = (int64_t)time(NULL) * 1000;
    ck_assert_msg(wall > now - 2000 && wall < now + 2000, "wall clock %lld vs %lld",
                  (long long)wall, (long long)now);
    int64_t prev = baton_time_mono_ms();
    for (int i = 0; i < 1000; i++) {
        int64_t mono = baton_time_mono_ms();
        ck_assert_int_ge(mono, prev);
        prev = mono;
    }
    struct timespec pause = {0, 20 * 1000 * 1000};
    int64_t before = baton_time_mono_ms();
    nanosleep(&pause, NULL);
    ck_assert_int_ge(baton_time_mono_ms() - before, 19);
}
END_TEST

static Suite *timeutil_suite(void) {
    Suite *s = suite_create("timeutil");

    TCase *core = tcase_create("core");
    tcase_add_loop_test(core, test_parse_good, 0, (int)(sizeof good / sizeof good[0]));
    tcase_add_test(core, test_format_known);
    tcase_add_test(core, test_clocks);
    tcase_add_test(core, test_mono_deadline_and_cond);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_format_int64_extremes);
    tcase_add_test(limits, test_add_saturates);
    tcase_add_test(limits, test_mono_after_extremes);
    tcase_add_test(limits, test_format_matches_gmtime);
    tcase_add_test(limits, test_round_trip);
    tcase_add_test(limits, test_parse_matches_timegm);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_loop_test(errors, test_parse_bad, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(errors, test_parse_errors_are_specific);
    tcase_add_test(errors, test_parse_null_and_no_errstr);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(timeutil_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
