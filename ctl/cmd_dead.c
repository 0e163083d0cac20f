/*
 * cmd_dead.c - dead tasks: `dead` lists them, `retry` gives them a new set
 * of attempts.
 *
 * A dead task stays in Redis (its hash does not expire) and in its queue's
 * sorted set baton:{Q}:dead, scored by the time it died, until it is
 * retried or pruned. `retry` runs retry.lua, which checks the task is still
 * dead, puts it at the tail of its priority in the ready set with attempt 0
 * and records a "retried" event, atomically; so racing retries (two
 * operators, or a retry against a concurrent one) retry a task once and
 * the loser gets a clear "not dead" answer.
 *
 * `retry --all-dead` walks each dead set in chunks by score up to the time
 * it started, so a retried task that dies again meanwhile is not retried a
 * second time by the same run (that would never end for a task that always
 * fails).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "queue.h"
#include "timeutil.h"
#include "transition.h"

/* Tasks per retry.lua pipeline of --all-dead. */
#define RETRY_CHUNK 500

/* =================================================================== dead */

struct dead_opts {
    const char *queue;
    int64_t limit;
};

static const struct baton_opt dead_flags[] = {
    {"queue", BATON_OPT_STRING | CTL_FLAG, NULL, "only this queue (default: every known queue)",
     offsetof(struct dead_opts, queue), 0, 0},
    {"limit", BATON_OPT_INT | CTL_FLAG, NULL,
     "show at most this many tasks, most recently dead first (default 50)",
     offsetof(struct dead_opts, limit), 1, 100000},
};

static const struct ctl_usage dead_usage = {
    "dead",
    "dead [--queue Q] [--limit N]",
    "Lists dead tasks (out of attempts, or failed permanently), most recently\n"
    "dead first, with their error and attempts. Exit 3 for an unknown --queue.",
    dead_flags,
    sizeof dead_flags / sizeof dead_flags[0],
    0,
    0};

struct dead_entry {
    const char *queue; /* borrowed from the queue list */
    char *id;          /* owned */
    int64_t died_ms;
    redisReply *fields; /* HMGET reply, owned */
};

/* HMGET field order. */
static const char *const dead_fields[] = {"state", "attempt", "max_attempts",
                                          "error", "task",    "priority"};
#define DEAD_NFIELDS (sizeof dead_fields / sizeof dead_fields[0])

static int compare_dead(const void *a, const void *b) {
    const struct dead_entry *x = a, *y = b;
    if (x->died_ms != y->died_ms)
        return x->died_ms > y->died_ms ? -1 : 1;
    int c = strcmp(x->queue, y->queue);
    return c ? c : strcmp(x->id, y->id);
}

static const char *dead_field(const struct dead_entry *e, size_t index) {
    if (!e->fields || e->fields->type != REDIS_REPLY_ARRAY || index >= e->fields->elements)
        return NULL;
    const redisReply *v = e->fields->element[index];
    return v->type == REDIS_REPLY_STRING ? v->str : NULL;
}

/* The task's type, from its JSON; caller frees. */
static char *dead_type(const struct dead_entry *e) {
    const char *text = dead_field(e, 4);
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *task = json_loads(text, 0, &jerr);
    const char *type = task ? json_string_value(json_object_get(task, "type")) : NULL;
    char *copy = type ? strdup(type) : NULL;
    json_decref(task);
    return copy;
}

int ctl_cmd_dead(struct ctl_config *config, int argc, char **argv) {
    struct dead_opts opts = {NULL, 50};
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &dead_usage, &opts, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    if ((rc = ctl_check_queue_name("dead", opts.queue)))
        return rc;
    baton_redis_t *r = NULL;
    if ((rc = ctl_redis_open(config, "dead", &r)))
        return rc;
    struct ctl_names queues;
    if ((rc = ctl_select_queues(r, "dead", opts.queue, &queues))) {
        baton_redis_destroy(r);
        return rc;
    }

    /* Per queue: ZCARD and the newest `limit` entries, one pipeline. */
    char errstr[512], stop[24];
    snprintf(stop, sizeof stop, "%" PRId64, opts.limit - 1);
    baton_err_t err = BATON_OK;
    for (size_t q = 0; q < queues.count && !err; q++) {
        struct baton_queue_keys keys;
        baton_queue_keys_init(&keys, queues.items[q]);
        const char *zcard[] = {"ZCARD", keys.dead};
        const char *zrev[] = {"ZREVRANGE", keys.dead, "0", stop, "WITHSCORES"};
        err = baton_redis_append(r, 2, zcard, NULL, errstr, sizeof errstr);
        if (!err)
            err = baton_redis_append(r, 5, zrev, NULL, errstr, sizeof errstr);
    }
    long long total = 0;
    struct dead_entry *entries = NULL;
    size_t count = 0, cap = 0;
    for (size_t q = 0; q < queues.count && !err; q++) {
        redisReply *card = NULL, *range = NULL;
        err = baton_redis_get_reply(r, &card, errstr, sizeof errstr);
        if (!err)
            err = baton_redis_get_reply(r, &range, errstr, sizeof errstr);
        if (!err && card->type == REDIS_REPLY_INTEGER)
            total += card->integer;
        for (size_t i = 0; !err && range->type == REDIS_REPLY_ARRAY && i + 1 < range->elements;
             i += 2) {
            if (count == cap) {
                cap = cap ? cap * 2 : 64;
                struct dead_entry *grown = realloc(entries, cap * sizeof *grown);
                if (!grown) {
                    err = baton_seterr(errstr, sizeof errstr, BATON_ERR_NOMEM, "out of memory");
                    break;
                }
                entries = grown;
            }
            entries[count] =
                (struct dead_entry){queues.items[q], strdup(range->element[i]->str),
                                    strtoll(range->element[i + 1]->str, NULL, 10), NULL};
            count++;
        }
        if (card)
            freeReplyObject(card);
        if (range)
            freeReplyObject(range);
    }
    if (!err && count > 1)
        qsort(entries, count, sizeof *entries, compare_dead);
    size_t shown = count < (size_t)opts.limit ? count : (size_t)opts.limit;
    for (size_t i = 0; i < shown && !err; i++) {
        char key[BATON_KEY_MAX];
        baton_task_key(key, entries[i].queue, entries[i].id ? entries[i].id : "");
        const char *hmget[2 + DEAD_NFIELDS] = {"HMGET", key};
        for (size_t f = 0; f < DEAD_NFIELDS; f++)
            hmget[2 + f] = dead_fields[f];
        err = baton_redis_append(r, 2 + DEAD_NFIELDS, hmget, NULL, errstr, sizeof errstr);
    }
    for (size_t i = 0; i < shown && !err; i++)
        err = baton_redis_get_reply(r, &entries[i].fields, errstr, sizeof errstr);
    baton_redis_destroy(r);

    if (!err) {
        json_t *list = json_array();
        static const char *const headers[] = {"DIED", "QUEUE", "ID", "TYPE", "ATTEMPTS", "ERROR"};
        struct ctl_table *t = ctl_table_new(6, headers);
        for (size_t i = 0; i < shown; i++) {
            const struct dead_entry *e = &entries[i];
            char *type = dead_type(e);
            const char *attempt = dead_field(e, 1), *max = dead_field(e, 2);
            const char *error = dead_field(e, 3);
            if (config->json) {
                json_t *o = json_object();
                json_object_set_new(o, "queue", ctl_json_str(e->queue));
                json_object_set_new(o, "id", ctl_json_str(e->id));
                json_object_set_new(o, "type", ctl_json_str(type));
                json_object_set_new(o, "state", ctl_json_str(dead_field(e, 0)));
                json_object_set_new(o, "priority",
                                    dead_field(e, 5)
                                        ? json_integer(strtoll(dead_field(e, 5), NULL, 10))
                                        : json_null());
                json_object_set_new(o, "attempts",
                                    attempt ? json_integer(strtoll(attempt, NULL, 10))
                                            : json_null());
                json_object_set_new(o, "max_attempts",
                                    max ? json_integer(strtoll(max, NULL, 10)) : json_null());
                json_object_set_new(o, "error", ctl_json_str(error));
                json_object_set_new(o, "died_at", ctl_time_json(e->died_ms));
                json_array_append_new(list, o);
            } else {
                char died[BATON_RFC3339_BUFSZ], attempts[48], err_text[81];
                snprintf(attempts, sizeof attempts, "%s/%s", attempt ? attempt : "?",
                         max ? max : "?");
                if (error) {
                    snprintf(err_text, sizeof err_text, "%s", error);
                    for (char *p = err_text; *p; p++)
                        if (*p == '\n' || *p == '\t')
                            *p = ' ';
                }
                const char *cells[6] = {
                    ctl_time_text(e->died_ms, died), e->queue, e->id, type, attempts,
                    error ? err_text : NULL};
                ctl_table_row(t, cells);
            }
            free(type);
        }
        if (config->json) {
            json_t *doc = json_object();
            json_object_set_new(doc, "total", json_integer(total));
            json_object_set_new(doc, "count", json_integer((json_int_t)shown));
            json_object_set_new(doc, "tasks", list);
            ctl_json_print(doc);
        } else {
            json_decref(list);
            ctl_table_print(t, stdout);
            printf("(%zu of %lld dead task%s)\n", shown, total, total == 1 ? "" : "s");
        }
        ctl_table_free(t);
    } else {
        ctl_error("dead", "%s", errstr);
    }
    for (size_t i = 0; i < count; i++) {
        free(entries[i].id);
        if (entries[i].fields)
            freeReplyObject(entries[i].fields);
    }
    free(entries);
    ctl_names_free(&queues);
    return err ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

/* ================================================================== retry */

struct retry_opts {
    const char *queue;
    int all_dead;
};

static const struct baton_opt retry_flags[] = {
    {"queue", BATON_OPT_STRING | CTL_FLAG, NULL,
     "the task's queue (needed when the id exists in several); with --all-dead: only this queue",
     offsetof(struct retry_opts, queue), 0, 0},
    {"all-dead", BATON_OPT_BOOL | CTL_FLAG, NULL,
     "retry every dead task (of --queue, or of every queue)", offsetof(struct retry_opts, all_dead),
     0, 0},
};

static const struct ctl_usage retry_usage = {
    "retry",
    "retry ID [--queue Q] | retry --all-dead [--queue Q]",
    "Gives dead tasks a new set of attempts: each goes back to the tail of its\n"
    "priority in the ready queue with attempt 0 (retry.lua; event \"retried\").\n"
    "Only dead tasks are retried: any other state is an error (exit 1); an\n"
    "unknown id or queue exits 3.",
    retry_flags,
    sizeof retry_flags / sizeof retry_flags[0],
    0,
    1};

struct retry_run {
    json_t *retried; /* [{queue, id}] */
    json_t *failed;  /* [{queue, id, error}] */
};

static void note(json_t *list, const char *queue, const char *id, const char *error) {
    json_t *o = json_object();
    json_object_set_new(o, "queue", ctl_json_str(queue));
    json_object_set_new(o, "id", ctl_json_str(id));
    if (error)
        json_object_set_new(o, "error", ctl_json_str(error));
    json_array_append_new(list, o);
}

static int retry_one(baton_redis_t *r, const char *id, const char *queue_opt,
                     struct retry_run *run) {
    char *queue = NULL;
    int rc = ctl_resolve_task(r, "retry", id, queue_opt, &queue);
    if (rc)
        return rc;
    struct baton_queue_keys keys;
    char errstr[512];
    baton_queue_keys_init(&keys, queue);
    baton_err_t err = baton_tr_retry(r, &keys, id, errstr, sizeof errstr);
    if (err == BATON_ERR_NOT_FOUND || err == BATON_ERR_STATE) {
        rc = err == BATON_ERR_NOT_FOUND ? CTL_EXIT_NOT_FOUND : CTL_EXIT_FAIL;
        ctl_error("retry", "queue %s: %s", queue, errstr);
        note(run->failed, queue, id, errstr);
    } else if (err) {
        ctl_error("retry", "%s", errstr);
        rc = CTL_EXIT_FAIL;
    } else {
        note(run->retried, queue, id, NULL);
    }
    free(queue);
    return rc;
}

/* Retries every task of `queue`'s dead set that died up to `cutoff_ms`. */
static baton_err_t retry_queue(baton_redis_t *r, const char *queue, int64_t cutoff_ms,
                               struct retry_run *run, char *errstr, size_t errstr_size) {
    struct baton_queue_keys k;
    char cutoff[24], chunk[16];
    baton_queue_keys_init(&k, queue);
    snprintf(cutoff, sizeof cutoff, "%" PRId64, cutoff_ms);
    snprintf(chunk, sizeof chunk, "%d", RETRY_CHUNK);
    long long skip = 0; /* ids that failed and stay in the set */
    for (;;) {
        char offset[24];
        snprintf(offset, sizeof offset, "%lld", skip);
        redisReply *ids;
        baton_err_t err = ctl_redis_cmd(r, &ids, errstr, errstr_size, "ZRANGEBYSCORE", k.dead,
                                        "-inf", cutoff, "LIMIT", offset, chunk, NULL);
        if (err)
            return err;
        size_t n = ids->type == REDIS_REPLY_ARRAY ? ids->elements : 0;
        if (n == 0) {
            freeReplyObject(ids);
            return BATON_OK;
        }
        for (size_t i = 0; i < n && !err; i++)
            err = baton_tr_append_retry(r, &k, ids->element[i]->str, errstr, errstr_size);
        for (size_t i = 0; i < n && !err; i++) {
            char why[512];
            baton_err_t e = baton_tr_read_retry(r, why, sizeof why);
            if (!e) {
                note(run->retried, queue, ids->element[i]->str, NULL);
            } else if (e != BATON_ERR_REDIS) {
                /* Refused (not dead any more, OOM ...): the id stays. */
                note(run->failed, queue, ids->element[i]->str, why);
                skip++;
            } else {
                /* NOSCRIPT (reloaded on the next append) or a broken
                 * connection (the next command reconnects, or fails and
                 * ends the run): the id is still dead and comes back in
                 * the next chunk. */
            }
        }
        freeReplyObject(ids);
        if (err)
            return err;
    }
}

int ctl_cmd_retry(struct ctl_config *config, int argc, char **argv) {
    struct retry_opts opts = {NULL, 0};
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &retry_usage, &opts, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    if (opts.all_dead == (nargs == 1)) {
        ctl_error("retry", "give either a task ID or --all-dead: usage: batonctl %s",
                  retry_usage.synopsis);
        return CTL_EXIT_USAGE;
    }
    if ((rc = ctl_check_queue_name("retry", opts.queue)) ||
        (nargs == 1 && (rc = ctl_check_task_id("retry", args[0]))))
        return rc;
    baton_redis_t *r = NULL;
    if ((rc = ctl_redis_open(config, "retry", &r)))
        return rc;
    struct retry_run run = {json_array(), json_array()};
    if (nargs == 1) {
        rc = retry_one(r, args[0], opts.queue, &run);
    } else {
        struct ctl_names queues;
        rc = ctl_select_queues(r, "retry", opts.queue, &queues);
        char errstr[512];
        int64_t cutoff = 0;
        if (!rc && baton_redis_time_ms(r, &cutoff, errstr, sizeof errstr)) {
            ctl_error("retry", "%s", errstr);
            rc = CTL_EXIT_FAIL;
        }
        for (size_t q = 0; !rc && q < queues.count; q++) {
            if (retry_queue(r, queues.items[q], cutoff, &run, errstr, sizeof errstr)) {
                ctl_error("retry", "queue %s: %s (retried %zu before)", queues.items[q], errstr,
                          json_array_size(run.retried));
                rc = CTL_EXIT_FAIL;
            }
        }
        if (!rc && json_array_size(run.failed)) {
            ctl_error("retry", "%zu dead task%s could not be retried", json_array_size(run.failed),
                      json_array_size(run.failed) == 1 ? "" : "s");
            rc = CTL_EXIT_FAIL;
        }
        ctl_names_free(&queues);
    }
    baton_redis_destroy(r);
    /* Report what was done even when part of it failed. */
    if (rc == CTL_EXIT_OK || json_array_size(run.retried) || opts.all_dead) {
        if (config->json) {
            json_t *doc = json_object();
            json_object_set_new(doc, "count",
                                json_integer((json_int_t)json_array_size(run.retried)));
            json_object_set_new(doc, "retried", run.retried);
            json_object_set_new(doc, "failed", run.failed);
            run.retried = run.failed = NULL;
            ctl_json_print(doc);
        } else {
            size_t i;
            json_t *o;
            json_array_foreach(run.retried, i, o) ctl_term_printf(
                stdout, "retried %s (queue %s)\n", json_string_value(json_object_get(o, "id")),
                json_string_value(json_object_get(o, "queue")));
            json_array_foreach(run.failed, i, o)
                ctl_term_printf(stdout, "not retried %s (queue %s): %s\n",
                                json_string_value(json_object_get(o, "id")),
                                json_string_value(json_object_get(o, "queue")),
                                json_string_value(json_object_get(o, "error")));
            if (opts.all_dead)
                printf("%zu dead task%s retried\n", json_array_size(run.retried),
                       json_array_size(run.retried) == 1 ? "" : "s");
        }
    }
    json_decref(run.retried);
    json_decref(run.failed);
    return rc;
}
