/*
 * timeutil.c - RFC 3339 timestamps and millisecond clocks.
 *
 * Task times cross the wire as RFC 3339 text and live inside baton as signed
 * Unix epoch milliseconds (UTC). The conversion is done here by hand, with
 * the proleptic Gregorian day-count algorithms of Howard Hinnant
 * ("chrono-compatible low-level date algorithms"), instead of timegm() or TZ
 * games: those depend on the process environment, are not thread-safe to set
 * up, and timegm() silently normalises "February 30" into March 2 where the
 * contract needs a rejection.
 *
 * Parsing is strict: exactly the RFC 3339 "date-time" production (4-digit
 * year, 2-digit fields, mandatory seconds and offset), with every field
 * range-checked against the calendar. A leap second (:60) is accepted as RFC
 * 3339 allows and, since Unix time has no leap seconds, lands on the first
 * millisecond of the next minute. The resulting instant must lie within
 * years 0000-9999 UTC, so that every parsed time formats back to RFC 3339
 * text that parses again to the same value (the task codec relies on that).
 */
#include "timeutil.h"

#include <stdio.h>
#include <time.h>

#define MS_PER_SECOND INT64_C(1000)
#define MS_PER_MINUTE (60 * MS_PER_SECOND)
#define MS_PER_DAY (86400 * MS_PER_SECOND)

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the instants RFC
 * 3339's four-digit UTC year can express (checked by test_timeutil). */
#define RFC3339_MIN_MS INT64_C(-62167219200000)
#define RFC3339_MAX_MS INT64_C(253402300799999)

/* ---------------------------------------------------------------------------
 * Civil date arithmetic (proleptic Gregorian, year 0 = 1 BC)
 * ------------------------------------------------------------------------ */

static int is_leap_year(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap_year(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a valid civil date. Shifting the year to start in
 * March puts the leap day last, so a day of the year is a closed formula. */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                   /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* Inverse of days_from_civil(), for any day count an int64 ms can produce. */
static void civil_from_days(int64_t z, int64_t *y_out, int *m_out, int *d_out) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y_out = yoe + era * 400 + (m <= 2);
    *m_out = m;
    *d_out = d;
}

/* ---------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Reads exactly `n` ASCII digits at *p (never past the NUL, which is not a
 * digit). Advances *p and returns 1, or returns 0 leaving *p alone. */
static int read_digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 1;
}

baton_err_t baton_time_parse_rfc3339(const char *text, int64_t *ms_out, char *errstr,
                                     size_t errstr_size) {
    if (!text)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID, "no text");

    const char *p = text;
    int year, month, day, hour, minute, second;
    if (!read_digits(&p, 4, &year) || *p++ != '-' || !read_digits(&p, 2, &month) || *p++ != '-' ||
        !read_digits(&p, 2, &day))
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "expected a YYYY-MM-DD date at the start");
    if (month < 1 || month > 12)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "month %02d is out of range 01-12", month);
    if (day < 1 || day > days_in_month(year, month))
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "day %02d is out of range for %04d-%02d (%d days)", day, year, month,
                            days_in_month(year, month));

    /* RFC 3339 section 5.6 permits 't' and, by note, a space. */
    if (*p != 'T' && *p != 't' && *p != ' ')
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "expected 'T' between date and time at index %td", p - text);
    p++;
    if (!read_digits(&p, 2, &hour) || *p++ != ':' || !read_digits(&p, 2, &minute) || *p++ != ':' ||
        !read_digits(&p, 2, &second))
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "expected an HH:MM:SS time at index 11");
    if (hour > 23)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "hour %02d is out of range 00-23", hour);
    if (minute > 59)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "minute %02d is out of range 00-59", minute);
    if (second > 60)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "second %02d is out of range 00-60", second);

    /* Any number of fraction digits: the first three are the milliseconds,
     * the rest are truncated (scale reaches 0), never rounded, so .9999
     * stays in the same millisecond as .999. */
    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                                "expected a digit after '.' at index %td", p - text);
        for (int64_t scale = 100; is_digit(*p); p++, scale /= 10)
            frac_ms += (*p - '0') * scale;
    }

    int64_t offset_ms = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int off_hour, off_minute;
        if (!read_digits(&p, 2, &off_hour) || *p++ != ':' || !read_digits(&p, 2, &off_minute))
            return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                                "expected a +HH:MM or -HH:MM offset");
        if (off_hour > 23 || off_minute > 59)
            return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                                "offset %c%02d:%02d is out of range -23:59 to +23:59",
                                sign < 0 ? '-' : '+', off_hour, off_minute);
        offset_ms = sign * (off_hour * 60 + off_minute) * MS_PER_MINUTE;
    } else {
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "expected 'Z' or a +HH:MM offset at index %td", p - text);
    }
    if (*p != '\0')
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "unexpected text after the offset at index %td", p - text);

    int64_t ms = days_from_civil(year, month, day) * MS_PER_DAY +
                 ((int64_t)hour * 60 + minute) * MS_PER_MINUTE + second * MS_PER_SECOND + frac_ms -
                 offset_ms;
    if (ms < RFC3339_MIN_MS || ms > RFC3339_MAX_MS)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "the instant is outside years 0000-9999 UTC");
    *ms_out = ms;
    return BATON_OK;
}

/* ---------------------------------------------------------------------------
 * Formatting and clocks
 * ------------------------------------------------------------------------ */

/* Outside years 0000-9999 (which baton_time_parse_rfc3339() never returns)
 * the year is printed as a plain signed number: still readable in a log, but
 * not RFC 3339. */
char *baton_time_format_rfc3339(int64_t ms, char *buf) {
    /* Floor division: the time of day of a negative instant counts forward
     * from the previous midnight (-1 ms is 23:59:59.999 on 1969-12-31).
     * Done as quotient and remainder so INT64_MIN does not overflow. */
    int64_t days = ms / MS_PER_DAY;
    int64_t ms_of_day = ms % MS_PER_DAY;
    if (ms_of_day < 0) {
        ms_of_day += MS_PER_DAY;
        days--;
    }
    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    int secs = (int)(ms_of_day / MS_PER_SECOND);
    /* The widest year an int64 ms reaches (-292277026) still fits. */
    snprintf(buf, BATON_RFC3339_BUFSZ, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)year,
             month, day, secs / 3600, secs / 60 % 60, secs % 60, (int)(ms_of_day % MS_PER_SECOND));
    return buf;
}

int64_t baton_time_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t baton_time_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t baton_time_add_sat(int64_t t, int64_t d) {
    int64_t sum;
    if (__builtin_add_overflow(t, d, &sum))
        return d > 0 ? INT64_MAX : INT64_MIN;
    return sum;
}

struct timespec baton_time_mono_after(int64_t ms) {
    return baton_time_mono_after_us(ms > INT64_MAX / 1000 ? INT64_MAX : ms * 1000);
}

struct timespec baton_time_mono_after_us(int64_t us) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (us <= 0)
        return ts;
    /* tv_sec is at least 64 bits on the platforms baton builds for
     * (static assert below), and us / 10^6 plus today's monotonic seconds
     * stays far below its limit; only tv_nsec needs carrying. */
    ts.tv_sec += (time_t)(us / 1000000);
    ts.tv_nsec += (long)(us % 1000000) * 1000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}
_Static_assert(sizeof(time_t) >= 8, "baton_time_mono_after_us assumes a 64-bit time_t");

int baton_cond_init_monotonic(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}
