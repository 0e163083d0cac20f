/*
 * retention.c - the scheduler publishes its retention period, the other
 * services agree with it (see retention.h for why).
 *
 * The value is read and written as plain milliseconds in one hash field,
 * so an operator can see and change it with redis-cli; messages show it as
 * a duration ("7d"), the way --retention-ms is written.
 */
#include "retention.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "log.h"
#include "queue.h"

#define WHERE BATON_KEY_CONFIG " " BATON_CONFIG_RETENTION_MS

/* Reads the published retention: *found 0 when the field does not exist.
 * A field that is not a positive number is a configuration error (an
 * operator's typo must not silently pass for "no scheduler yet"). */
static baton_err_t read_published(baton_redis_t *r, int64_t *ms, int *found, char *errstr,
                                  size_t errstr_size) {
    const char *argv[] = {"HGET", BATON_KEY_CONFIG, BATON_CONFIG_RETENTION_MS};
    redisReply *reply = NULL;
    baton_err_t err = baton_redis_command(r, &reply, 3, argv, NULL, errstr, errstr_size);
    if (err)
        return err;
    *found = reply->type == REDIS_REPLY_STRING;
    if (*found) {
        char *end;
        errno = 0;
        long long v = strtoll(reply->str, &end, 10);
        if (errno || end == reply->str || *end || v < 1)
            err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                               "Redis %s holds '%s', not a number of milliseconds: set it "
                               "right or delete it (HDEL " WHERE ")",
                               WHERE, reply->str);
        *ms = (int64_t)v;
    } else if (reply->type != REDIS_REPLY_NIL) {
        err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis HGET %s: unexpected reply",
                           WHERE);
    }
    freeReplyObject(reply);
    return err;
}

baton_err_t baton_retention_publish(baton_redis_t *r, int64_t retention_ms, char *errstr,
                                    size_t errstr_size) {
    char mine[24], theirs[32], text[32];
    snprintf(mine, sizeof mine, "%" PRId64, retention_ms);
    baton_duration_text(retention_ms, text, sizeof text);
    /* Published, or found published; a field deleted between HSETNX and
     * HGET (an operator changing it) is simply tried again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        const char *argv[] = {"HSETNX", BATON_KEY_CONFIG, BATON_CONFIG_RETENTION_MS, mine};
        redisReply *reply = NULL;
        baton_err_t err = baton_redis_command(r, &reply, 4, argv, NULL, errstr, errstr_size);
        if (err)
            return err;
        int published = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
        freeReplyObject(reply);
        if (published) {
            BATON_INFO("scheduler", "retention %s published in Redis (%s)", text, WHERE);
            return BATON_OK;
        }
        int64_t ms = 0;
        int found = 0;
        if ((err = read_published(r, &ms, &found, errstr, errstr_size)))
            return err;
        if (found && ms == retention_ms) {
            BATON_INFO("scheduler", "retention %s, as published in Redis (%s)", text, WHERE);
            return BATON_OK;
        }
        if (found)
            return baton_seterr(
                errstr, errstr_size, BATON_ERR_CONFIG,
                "--retention-ms %s differs from the --retention-ms %s a scheduler published in "
                "Redis (%s): give every scheduler the same value; to change it, stop every "
                "scheduler, delete it (HDEL %s), start them with the new value, then restart the "
                "workers",
                text, baton_duration_text(ms, theirs, sizeof theirs), WHERE, WHERE);
    }
    return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS,
                        "Redis %s: could not publish the retention (deleted again and again)",
                        WHERE);
}

baton_err_t baton_retention_agree(baton_redis_t *r, const char *component, int64_t *retention_ms,
                                  int given, char *errstr, size_t errstr_size) {
    int64_t published = 0;
    int found = 0;
    char mine[32], theirs[32];
    baton_err_t err = read_published(r, &published, &found, errstr, errstr_size);
    if (err)
        return err;
    baton_duration_text(*retention_ms, mine, sizeof mine);
    if (!found) {
        BATON_INFO(component, "retention %s (%s): no scheduler has published one in Redis (%s)",
                   mine, given ? "--retention-ms" : "default", WHERE);
        return BATON_OK;
    }
    baton_duration_text(published, theirs, sizeof theirs);
    if (!given) {
        *retention_ms = published;
        BATON_INFO(component, "retention %s, the scheduler's (%s)", theirs, WHERE);
        return BATON_OK;
    }
    if (published != *retention_ms)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "--retention-ms %s (flag or BATON_RETENTION_MS) differs from the "
                            "scheduler's --retention-ms %s (published in Redis, %s): give both "
                            "the same value, or leave this one unset to use the scheduler's",
                            mine, theirs, WHERE);
    BATON_INFO(component, "retention %s, as the scheduler's (%s)", mine, WHERE);
    return BATON_OK;
}
