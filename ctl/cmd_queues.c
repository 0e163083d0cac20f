/*
 * cmd_queues.c - the queue-level commands: `queues` (the counts of every
 * queue), `pause QUEUE` and `resume QUEUE`.
 *
 * Counts come from the queue's own keys (docs/redis.md) in one pipeline per
 * run: ZCOUNT per priority band of the ready set (the bands of
 * baton_ready_priority_range(), so a task handed back to the head of its
 * level still counts in its level), ZCARD of scheduled, running and dead,
 * EXISTS of the paused flag, and XLEN of the events stream, which after
 * the history writer's ack.lua (XACK, then XTRIM MINID to the first entry
 * still needed) holds the stream entries PostgreSQL does not have yet, one
 * per script call: the history backlog, in entries rather than events.
 *
 * Pausing is the flag key baton:{Q}:paused: claim.lua claims nothing while
 * it exists, so a pause takes effect at every worker's next claim without
 * telling the workers. Running tasks finish normally. Resuming deletes it
 * and pushes wake-up tokens on the queue's notify list, because idle
 * workers may be blocked on it and nothing else would wake them before
 * their BLPOP times out.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "queue.h"

/* Commands per queue in the counts pipeline. */
#define PRIORITIES 10
#define PER_QUEUE (PRIORITIES + 5)

/* Most wake-up tokens one resume pushes (as _lib.lua's wake()). */
#define RESUME_WAKE_MAX 64
/* The notify list's bound (docs/redis.md). */
#define NOTIFY_KEEP "-1024"

struct queue_counts {
    long long ready_by_priority[PRIORITIES]; /* index = priority */
    long long ready, scheduled, running, dead, backlog;
    int paused;
};

static baton_err_t read_counts(baton_redis_t *r, const struct ctl_names *queues,
                               struct queue_counts *out, char *errstr, size_t errstr_size) {
    baton_err_t err = BATON_OK;
    size_t sent = 0;
    for (size_t q = 0; q < queues->count && !err; q++) {
        struct baton_queue_keys keys;
        baton_queue_keys_init(&keys, queues->items[q]);
        for (int p = 9; p >= 0 && !err; p--) {
            double min, max;
            char lo[32], hi[32];
            baton_ready_priority_range(p, &min, &max);
            snprintf(lo, sizeof lo, "%.0f", min);
            snprintf(hi, sizeof hi, "%.0f", max);
            const char *argv[] = {"ZCOUNT", keys.ready, lo, hi};
            err = baton_redis_append(r, 4, argv, NULL, errstr, errstr_size);
            sent += !err;
        }
        const char *const sets[] = {keys.scheduled, keys.running, keys.dead};
        for (int s = 0; s < 3 && !err; s++) {
            const char *argv[] = {"ZCARD", sets[s]};
            err = baton_redis_append(r, 2, argv, NULL, errstr, errstr_size);
            sent += !err;
        }
        if (!err) {
            const char *argv[] = {"EXISTS", keys.paused};
            err = baton_redis_append(r, 2, argv, NULL, errstr, errstr_size);
            sent += !err;
        }
        if (!err) {
            const char *argv[] = {"XLEN", keys.events};
            err = baton_redis_append(r, 2, argv, NULL, errstr, errstr_size);
            sent += !err;
        }
    }
    if (err)
        return err; /* the connection was dropped: nothing left to read */
    for (size_t i = 0; i < sent && !err; i++) {
        redisReply *reply;
        err = baton_redis_get_reply(r, &reply, errstr, errstr_size);
        if (err)
            break;
        if (reply->type != REDIS_REPLY_INTEGER) {
            err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis: unexpected reply%s%s",
                               reply->type == REDIS_REPLY_ERROR ? ": " : "",
                               reply->type == REDIS_REPLY_ERROR ? reply->str : "");
            freeReplyObject(reply);
            /* Drain the rest so the connection stays usable. */
            for (size_t k = i + 1; k < sent; k++)
                if (baton_redis_get_reply(r, &reply, errstr, errstr_size) == BATON_OK)
                    freeReplyObject(reply);
            break;
        }
        struct queue_counts *c = &out[i / PER_QUEUE];
        size_t slot = i % PER_QUEUE;
        long long v = reply->integer;
        freeReplyObject(reply);
        if (slot < PRIORITIES) {
            c->ready_by_priority[9 - slot] = v;
            c->ready += v;
        } else if (slot == PRIORITIES) {
            c->scheduled = v;
        } else if (slot == PRIORITIES + 1) {
            c->running = v;
        } else if (slot == PRIORITIES + 2) {
            c->dead = v;
        } else if (slot == PRIORITIES + 3) {
            c->paused = v > 0;
        } else {
            c->backlog = v;
        }
    }
    return err;
}

static const struct ctl_usage queues_usage = {
    "queues",
    "queues",
    "Shows every queue of baton:queues: ready tasks (per priority), scheduled,\n"
    "running, dead, whether it is paused, and the history backlog (events in\n"
    "Redis not yet written to PostgreSQL).",
    NULL,
    0,
    0,
    0};

int ctl_cmd_queues(struct ctl_config *config, int argc, char **argv) {
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &queues_usage, NULL, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    baton_redis_t *r = NULL;
    if ((rc = ctl_redis_open(config, "queues", &r)))
        return rc;
    struct ctl_names queues;
    if ((rc = ctl_select_queues(r, "queues", NULL, &queues))) {
        baton_redis_destroy(r);
        return rc;
    }
    char errstr[512];
    struct queue_counts *counts = calloc(queues.count ? queues.count : 1, sizeof *counts);
    baton_err_t err = counts
                          ? read_counts(r, &queues, counts, errstr, sizeof errstr)
                          : baton_seterr(errstr, sizeof errstr, BATON_ERR_NOMEM, "out of memory");
    baton_redis_destroy(r);
    if (err) {
        ctl_error("queues", "%s", errstr);
        free(counts);
        ctl_names_free(&queues);
        return CTL_EXIT_FAIL;
    }
    if (config->json) {
        json_t *list = json_array();
        for (size_t q = 0; q < queues.count; q++) {
            const struct queue_counts *c = &counts[q];
            json_t *o = json_object(), *by = json_object();
            for (int p = 9; p >= 0; p--) {
                char k[4];
                snprintf(k, sizeof k, "%d", p);
                json_object_set_new(by, k, json_integer(c->ready_by_priority[p]));
            }
            json_object_set_new(o, "name", ctl_json_str(queues.items[q]));
            json_object_set_new(o, "ready", json_integer(c->ready));
            json_object_set_new(o, "ready_by_priority", by);
            json_object_set_new(o, "scheduled", json_integer(c->scheduled));
            json_object_set_new(o, "running", json_integer(c->running));
            json_object_set_new(o, "dead", json_integer(c->dead));
            json_object_set_new(o, "paused", json_boolean(c->paused));
            json_object_set_new(o, "history_backlog", json_integer(c->backlog));
            json_array_append_new(list, o);
        }
        json_t *doc = json_object();
        json_object_set_new(doc, "queues", list);
        ctl_json_print(doc);
    } else {
        static const char *const headers[] = {"QUEUE",   "READY", "BY PRIORITY", "SCHEDULED",
                                              "RUNNING", "DEAD",  "PAUSED",      "BACKLOG"};
        struct ctl_table *t = ctl_table_new(8, headers);
        for (size_t q = 0; q < queues.count; q++) {
            const struct queue_counts *c = &counts[q];
            char ready[24], by[256] = "", scheduled[24], running[24], dead[24], backlog[24];
            size_t used = 0;
            for (int p = 9; p >= 0; p--)
                if (c->ready_by_priority[p] && used < sizeof by)
                    used += (size_t)snprintf(by + used, sizeof by - used, "%sp%d:%lld",
                                             used ? " " : "", p, c->ready_by_priority[p]);
            snprintf(ready, sizeof ready, "%lld", c->ready);
            snprintf(scheduled, sizeof scheduled, "%lld", c->scheduled);
            snprintf(running, sizeof running, "%lld", c->running);
            snprintf(dead, sizeof dead, "%lld", c->dead);
            snprintf(backlog, sizeof backlog, "%lld", c->backlog);
            const char *cells[8] = {queues.items[q], ready, by[0] ? by : NULL,        scheduled,
                                    running,         dead,  c->paused ? "yes" : "no", backlog};
            ctl_table_row(t, cells);
        }
        ctl_table_print(t, stdout);
        ctl_table_free(t);
        if (queues.count == 0)
            printf("(no queues yet: none in %s)\n", BATON_KEY_QUEUES);
    }
    free(counts);
    ctl_names_free(&queues);
    return CTL_EXIT_OK;
}

/* ========================================================= pause / resume */

struct pause_opts {
    int force;
};

static const struct baton_opt pause_flags[] = {
    {"force", BATON_OPT_BOOL | CTL_FLAG, NULL,
     "pause even a queue no task has been seen on yet (not in baton:queues)",
     offsetof(struct pause_opts, force), 0, 0},
};

static const struct ctl_usage pause_usage = {
    "pause",
    "pause QUEUE [--force]",
    "Pauses QUEUE: workers claim nothing from it (claim.lua checks the flag\n"
    "baton:{QUEUE}:paused) until `batonctl resume QUEUE`. Tasks already running\n"
    "finish normally; ingest keeps enqueueing. Exit 3 for a queue not in\n"
    "baton:queues unless --force.",
    pause_flags,
    sizeof pause_flags / sizeof pause_flags[0],
    1,
    1};

static const struct ctl_usage resume_usage = {
    "resume",
    "resume QUEUE",
    "Resumes a paused QUEUE and wakes idle workers blocked on its notify list.",
    NULL,
    0,
    1,
    1};

/* 1 when `queue` is in baton:queues, 0 when not, -1 on error (printed). */
static int queue_known(baton_redis_t *r, const char *command, const char *queue) {
    char errstr[512];
    redisReply *reply;
    if (ctl_redis_cmd(r, &reply, errstr, sizeof errstr, "SISMEMBER", BATON_KEY_QUEUES, queue,
                      NULL)) {
        ctl_error(command, "%s", errstr);
        return -1;
    }
    int known = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    return known;
}

static void print_pause_result(const struct ctl_config *config, const char *queue, int paused,
                               int changed) {
    if (config->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "queue", ctl_json_str(queue));
        json_object_set_new(doc, "paused", json_boolean(paused));
        json_object_set_new(doc, "changed", json_boolean(changed));
        ctl_json_print(doc);
    } else if (paused) {
        printf(changed ? "paused %s: workers claim nothing from it until `batonctl resume %s`\n"
                       : "%s was already paused (resume with `batonctl resume %s`)\n",
               queue, queue);
    } else if (changed) {
        printf("resumed %s: workers claim from it again\n", queue);
    } else {
        printf("%s was not paused\n", queue);
    }
}

int ctl_cmd_pause(struct ctl_config *config, int argc, char **argv) {
    struct pause_opts opts = {0};
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &pause_usage, &opts, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    const char *queue = args[0];
    if ((rc = ctl_check_queue_name("pause", queue)))
        return rc;
    baton_redis_t *r = NULL;
    if ((rc = ctl_redis_open(config, "pause", &r)))
        return rc;
    int known = opts.force ? 1 : queue_known(r, "pause", queue);
    if (known <= 0) {
        if (known == 0)
            ctl_error("pause", "unknown queue '%s' (not in %s; --force pauses it anyway)", queue,
                      BATON_KEY_QUEUES);
        baton_redis_destroy(r);
        return known == 0 ? CTL_EXIT_NOT_FOUND : CTL_EXIT_FAIL;
    }
    struct baton_queue_keys keys;
    char errstr[512];
    baton_queue_keys_init(&keys, queue);
    redisReply *reply;
    /* NX: the answer tells whether this call paused it. */
    if (ctl_redis_cmd(r, &reply, errstr, sizeof errstr, "SET", keys.paused, "1", "NX", NULL)) {
        ctl_error("pause", "%s", errstr);
        baton_redis_destroy(r);
        return CTL_EXIT_FAIL;
    }
    int changed = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    baton_redis_destroy(r);
    print_pause_result(config, queue, 1, changed);
    return CTL_EXIT_OK;
}

int ctl_cmd_resume(struct ctl_config *config, int argc, char **argv) {
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &resume_usage, NULL, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    const char *queue = args[0];
    if ((rc = ctl_check_queue_name("resume", queue)))
        return rc;
    baton_redis_t *r = NULL;
    if ((rc = ctl_redis_open(config, "resume", &r)))
        return rc;
    struct baton_queue_keys keys;
    char errstr[512];
    baton_queue_keys_init(&keys, queue);
    const char *paused = keys.paused, *ready = keys.ready, *notify = keys.notify;
    redisReply *reply;
    if (ctl_redis_cmd(r, &reply, errstr, sizeof errstr, "DEL", paused, NULL)) {
        ctl_error("resume", "%s", errstr);
        baton_redis_destroy(r);
        return CTL_EXIT_FAIL;
    }
    int changed = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    freeReplyObject(reply);
    if (!changed) {
        int known = queue_known(r, "resume", queue);
        if (known <= 0) {
            if (known == 0)
                ctl_error("resume", "unknown queue '%s' (not in %s, not paused)", queue,
                          BATON_KEY_QUEUES);
            baton_redis_destroy(r);
            return known == 0 ? CTL_EXIT_NOT_FOUND : CTL_EXIT_FAIL;
        }
    }
    /* One token per ready task, up to RESUME_WAKE_MAX: each wakes one idle
     * worker, which claims a batch. A spare token costs one empty claim. */
    long long tokens = 1;
    if (ctl_redis_cmd(r, &reply, errstr, sizeof errstr, "ZCARD", ready, NULL) == BATON_OK) {
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 1)
            tokens = reply->integer < RESUME_WAKE_MAX ? reply->integer : RESUME_WAKE_MAX;
        freeReplyObject(reply);
    }
    const char *argv_push[2 + RESUME_WAKE_MAX];
    argv_push[0] = "RPUSH";
    argv_push[1] = notify;
    for (long long i = 0; i < tokens; i++)
        argv_push[2 + i] = "1";
    const char *argv_trim[] = {"LTRIM", notify, NOTIFY_KEEP, "-1"};
    baton_err_t err =
        baton_redis_command(r, &reply, (int)(2 + tokens), argv_push, NULL, errstr, sizeof errstr);
    if (!err) {
        freeReplyObject(reply);
        err = baton_redis_command(r, &reply, 4, argv_trim, NULL, errstr, sizeof errstr);
        if (!err)
            freeReplyObject(reply);
    }
    baton_redis_destroy(r);
    if (err) {
        /* The queue is resumed; workers notice within their BLPOP timeout. */
        ctl_error("resume", "resumed %s, but waking workers failed: %s", queue, errstr);
        return CTL_EXIT_FAIL;
    }
    print_pause_result(config, queue, 0, changed);
    return CTL_EXIT_OK;
}
