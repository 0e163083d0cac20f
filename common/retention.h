/*
 * retention.h - one retention period for every service.
 *
 * How long a finished task's hash stays in Redis is set by whoever writes
 * the terminal state: the scheduler (enqueue.lua for a task expired on
 * arrival, expire.lua and reclaim.lua in maintenance), the workers (the
 * finishing scripts) and batonctl cancel. Each reads --retention-ms from
 * its own configuration, so this module is what makes them agree: the
 * scheduler, the authority, publishes its value in Redis
 * (BATON_KEY_CONFIG, field BATON_CONFIG_RETENTION_MS) at every start; a
 * worker or batonctl then adopts it when its own option was not given,
 * and refuses to start when it was given a different one. A second
 * scheduler with a different value refuses too. The published value stays
 * when schedulers stop, so a worker started later is still checked;
 * changing the retention is a deliberate step (docs/deploy.md).
 */
#ifndef BATON_RETENTION_H
#define BATON_RETENTION_H

#include <stdint.h>

#include "error.h"
#include "redis.h"

/* The retention of a service that was given none before any scheduler
 * published one: 7 days, every --retention-ms's default. */
#define BATON_RETENTION_DEFAULT_MS 604800000

/* The field of BATON_KEY_CONFIG that holds the scheduler's retention, ms. */
#define BATON_CONFIG_RETENTION_MS "retention_ms"

/*
 * The scheduler's side: publishes `retention_ms` unless a value is already
 * published (one atomic HSETNX, so two schedulers starting at once cannot
 * both win). BATON_OK when it published or found the same value;
 * BATON_ERR_CONFIG with one line naming both values when another value is
 * published (or the field is not a number); BATON_ERR_REDIS when Redis
 * fails. `r` is borrowed.
 */
baton_err_t baton_retention_publish(baton_redis_t *r, int64_t retention_ms, char *errstr,
                                    size_t errstr_size);

/*
 * A worker's or batonctl's side: agrees *retention_ms with the published
 * one. `given`: *retention_ms came from --retention-ms or
 * BATON_RETENTION_MS; else it holds the built-in default. Published and
 * not given: *retention_ms becomes the published value. Published, given
 * and different: BATON_ERR_CONFIG with one line naming both values and
 * both flags. Not published (no scheduler has run on this Redis database):
 * *retention_ms is kept. Logs what it chose at info, as `component`. `r`
 * is borrowed.
 */
baton_err_t baton_retention_agree(baton_redis_t *r, const char *component, int64_t *retention_ms,
                                  int given, char *errstr, size_t errstr_size);

#endif
