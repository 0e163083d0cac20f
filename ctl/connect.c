/*
 * connect.c - batonctl's way to Redis and PostgreSQL, and finding things
 * in Redis: the known queues, and which queue holds a task id.
 *
 * Every key of a queue carries the queue as a hash tag (docs/redis.md), so
 * a task is addressed by (queue, id); a user usually knows only the id.
 * Lookup therefore walks baton:queues and asks for baton:{Q}:t:<id> in each
 * queue, all in one pipeline: one round trip whatever the number of queues.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pg.h"
#include "queue.h"
#include "retention.h"

int ctl_redis_open(const struct ctl_config *config, const char *command, baton_redis_t **out) {
    char errstr[512];
    baton_err_t err = baton_redis_connect(config->redis_url, (int)config->redis_timeout_ms, out,
                                          errstr, sizeof errstr);
    if (err) {
        ctl_error(command, "%s", errstr);
        return err == BATON_ERR_CONFIG ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

int ctl_retention(struct ctl_config *config, const char *command, baton_redis_t *r) {
    char errstr[1024];
    int given = config->retention_ms != 0;
    if (!given)
        config->retention_ms = BATON_RETENTION_DEFAULT_MS;
    baton_err_t err =
        baton_retention_agree(r, "batonctl", &config->retention_ms, given, errstr, sizeof errstr);
    if (err) {
        ctl_error(command, "%s", errstr);
        return err == BATON_ERR_CONFIG ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

baton_err_t ctl_pg_open(const struct ctl_config *config, PGconn **out, char *errstr,
                        size_t errstr_size) {
    return baton_pg_connect(config->pg_dsn, "batonctl", out, errstr, errstr_size);
}

/* Most arguments of one ctl_redis_cmd(). */
#define CMD_MAX_ARGS 16

baton_err_t ctl_redis_cmd(baton_redis_t *r, redisReply **reply, char *errstr, size_t errstr_size,
                          const char *arg0, ...) {
    const char *argv[CMD_MAX_ARGS];
    int argc = 0;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && argc < CMD_MAX_ARGS; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    return baton_redis_command(r, reply, argc, argv, NULL, errstr, errstr_size);
}

void ctl_names_free(struct ctl_names *names) {
    for (size_t i = 0; i < names->count; i++)
        free(names->items[i]);
    free(names->items);
    names->items = NULL;
    names->count = 0;
}

static int names_add(struct ctl_names *names, const char *name) {
    char **grown = realloc(names->items, (names->count + 1) * sizeof *grown);
    if (!grown)
        return -1;
    names->items = grown;
    if (!(grown[names->count] = strdup(name)))
        return -1;
    names->count++;
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

baton_err_t ctl_known_queues(baton_redis_t *r, struct ctl_names *out, char *errstr,
                             size_t errstr_size) {
    out->items = NULL;
    out->count = 0;
    redisReply *reply;
    baton_err_t err =
        ctl_redis_cmd(r, &reply, errstr, errstr_size, "SMEMBERS", BATON_KEY_QUEUES, NULL);
    if (err)
        return err;
    for (size_t i = 0; i < reply->elements && !err; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING && names_add(out, reply->element[i]->str))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    freeReplyObject(reply);
    if (err) {
        ctl_names_free(out);
        return err;
    }
    if (out->count > 1)
        qsort(out->items, out->count, sizeof *out->items, compare_names);
    return BATON_OK;
}

baton_err_t ctl_find_task(baton_redis_t *r, const char *id, const char *queue,
                          struct ctl_names *out, char *errstr, size_t errstr_size) {
    struct ctl_names candidates = {NULL, 0};
    baton_err_t err = BATON_OK;
    out->items = NULL;
    out->count = 0;
    if (queue) {
        if (names_add(&candidates, queue)) {
            ctl_names_free(&candidates); /* the array grew before strdup() failed */
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        }
    } else if ((err = ctl_known_queues(r, &candidates, errstr, errstr_size))) {
        return err;
    }
    for (size_t i = 0; i < candidates.count && !err; i++) {
        char key[BATON_KEY_MAX];
        baton_task_key(key, candidates.items[i], id);
        const char *argv[] = {"EXISTS", key};
        err = baton_redis_append(r, 2, argv, NULL, errstr, errstr_size);
    }
    /* Read every reply that was sent, even after a failure, so the
     * connection stays in step. */
    for (size_t i = 0; i < candidates.count && !err; i++) {
        redisReply *reply;
        err = baton_redis_get_reply(r, &reply, errstr, errstr_size);
        if (err)
            break;
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1 &&
            names_add(out, candidates.items[i]))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        else if (reply->type == REDIS_REPLY_ERROR)
            err =
                baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis EXISTS: %s", reply->str);
        freeReplyObject(reply);
    }
    ctl_names_free(&candidates);
    if (err)
        ctl_names_free(out);
    return err;
}

int ctl_select_queues(baton_redis_t *r, const char *command, const char *queue,
                      struct ctl_names *out) {
    char errstr[512];
    out->items = NULL;
    out->count = 0;
    if (queue) {
        redisReply *reply;
        if (ctl_redis_cmd(r, &reply, errstr, sizeof errstr, "SISMEMBER", BATON_KEY_QUEUES, queue,
                          NULL)) {
            ctl_error(command, "%s", errstr);
            return CTL_EXIT_FAIL;
        }
        int known = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
        freeReplyObject(reply);
        if (!known) {
            ctl_error(command, "unknown queue '%s' (not in %s)", queue, BATON_KEY_QUEUES);
            return CTL_EXIT_NOT_FOUND;
        }
        if (names_add(out, queue)) {
            ctl_error(command, "out of memory");
            return CTL_EXIT_FAIL;
        }
        return CTL_EXIT_OK;
    }
    if (ctl_known_queues(r, out, errstr, sizeof errstr)) {
        ctl_error(command, "%s", errstr);
        return CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

int ctl_resolve_task(baton_redis_t *r, const char *command, const char *id, const char *queue,
                     char **queue_out) {
    char errstr[512];
    struct ctl_names found;
    *queue_out = NULL;
    if (ctl_find_task(r, id, queue, &found, errstr, sizeof errstr)) {
        ctl_error(command, "%s", errstr);
        return CTL_EXIT_FAIL;
    }
    if (found.count == 0) {
        if (queue)
            ctl_error(command, "task '%s' not found in queue '%s'", id, queue);
        else
            ctl_error(command, "task '%s' not found in any queue", id);
        return CTL_EXIT_NOT_FOUND;
    }
    if (found.count > 1) {
        char list[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < found.count && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     found.items[i]);
        ctl_error(command, "task '%s' exists in several queues (%s): choose one with --queue", id,
                  list);
        ctl_names_free(&found);
        return CTL_EXIT_USAGE;
    }
    *queue_out = found.items[0];
    found.items[0] = NULL;
    free(found.items);
    return CTL_EXIT_OK;
}

const char *ctl_reply_field(const redisReply *fields, const char *name) {
    if (!fields || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1]->str;
    return NULL;
}

/* ============================================================ PostgreSQL */

const char *ctl_pg_text(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int64_t ctl_pg_int(const PGresult *res, int row, int col) {
    const char *text = ctl_pg_text(res, row, col);
    return text ? strtoll(text, NULL, 10) : 0;
}

json_t *ctl_json_str(const char *text) {
    if (!text)
        return json_null();
    json_t *value = json_string(text);
    if (value)
        return value;
    char *copy = strdup(text);
    if (!copy)
        return json_null();
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    value = json_string(copy);
    free(copy);
    return value ? value : json_null();
}

json_t *ctl_json_from_text(const char *text) {
    if (!text)
        return json_null();
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);
    return value ? value : ctl_json_str(text);
}

json_t *ctl_pg_json(const PGresult *res, int row, int col, enum ctl_pg_kind kind) {
    const char *text = ctl_pg_text(res, row, col);
    if (!text)
        return json_null();
    switch (kind) {
    case CTL_PG_INT: return json_integer(strtoll(text, NULL, 10));
    case CTL_PG_TIME: return ctl_time_json(strtoll(text, NULL, 10));
    case CTL_PG_JSON: return ctl_json_from_text(text);
    case CTL_PG_TEXT: break;
    }
    return ctl_json_str(text);
}
