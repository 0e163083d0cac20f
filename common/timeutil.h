/*
 * timeutil.h - RFC 3339 timestamps and millisecond clocks.
 *
 * Task times (run_at, deadline) travel as RFC 3339 text and live inside baton
 * as signed milliseconds since the Unix epoch (UTC). Guarantee 5 says task
 * state decisions use Redis TIME, never the client clock: the clock here is
 * only for logs, timeouts of our own waits and benchmarks.
 */
#ifndef BATON_TIMEUTIL_H
#define BATON_TIMEUTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

/* Room for "YYYY-MM-DDTHH:MM:SS.mmmZ" and its NUL, with margin. */
#define BATON_RFC3339_BUFSZ 32

/*
 * Parses an RFC 3339 date-time ("2026-11-25T15:04:05Z",
 * "2026-11-25t15:04:05.123456+02:00", a space instead of 'T' is accepted).
 * Fractions beyond milliseconds are truncated. Validates every field's range
 * (month, day of that month in that year, hour, minute, second 0-60, offset
 * within +-23:59). Returns BATON_OK and sets *ms_out, or BATON_ERR_INVALID
 * with a description in errstr.
 */
baton_err_t baton_time_parse_rfc3339(const char *text, int64_t *ms_out, char *errstr,
                                     size_t errstr_size);

/*
 * Formats `ms` (Unix epoch milliseconds) as "YYYY-MM-DDTHH:MM:SS.mmmZ" into
 * `buf` (at least BATON_RFC3339_BUFSZ bytes). Returns buf.
 */
char *baton_time_format_rfc3339(int64_t ms, char *buf);

/* Wall clock, Unix epoch milliseconds (CLOCK_REALTIME). For logs only. */
int64_t baton_time_wall_ms(void);

/* Monotonic clock in milliseconds, for our own timeouts and intervals. */
int64_t baton_time_mono_ms(void);

/*
 * `t` + `d` milliseconds, clamped to INT64_MIN..INT64_MAX instead of
 * overflowing. Every deadline computed from a clock and a duration goes
 * through it: a duration taken from a task or a flag must make a deadline
 * far away, never one that wrapped into the past.
 */
int64_t baton_time_add_sat(int64_t t, int64_t d);

/*
 * The CLOCK_MONOTONIC instant `ms` from now, as pthread_cond_timedwait()
 * wants it for a condition variable made by baton_cond_init_monotonic().
 * A negative `ms` means now; a huge one saturates (never a wrapped or
 * non-normalised timespec, which timedwait would refuse with EINVAL).
 */
struct timespec baton_time_mono_after(int64_t ms);
/* The same, `us` microseconds from now. */
struct timespec baton_time_mono_after_us(int64_t us);

/* Initializes `cond` so that its timed waits use CLOCK_MONOTONIC (immune to
 * wall-clock steps). Returns pthread_cond_init()'s result. */
int baton_cond_init_monotonic(pthread_cond_t *cond);

#endif
