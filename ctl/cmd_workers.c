/*
 * cmd_workers.c - `batonctl workers`: the live workers, from the registry.
 *
 * Each worker's keeper runs heartbeat.lua every 2 s: its hash
 * baton:worker:<id> (which expires 10 s after the last beat) and its id in
 * the sorted set baton:workers. The set is never trimmed by the workers, so
 * it also names workers that are gone: an id whose hash has expired is a
 * dead worker and is skipped. Ages are measured against Redis TIME, the
 * clock the heartbeats were written with.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "queue.h"

#define COMMAND "workers"

static const struct ctl_usage workers_usage = {
    COMMAND,
    "workers",
    "Shows the live workers (baton:workers and their baton:worker:<id> hashes;\n"
    "ids whose hash expired are gone and skipped): host, pid, queues,\n"
    "concurrency, busy slots, tasks done and failed, stale-token refusals and\n"
    "the age of the last heartbeat (every 2 s; gone after 10 s).",
    NULL,
    0,
    0,
    0};

static long long field_int(const redisReply *h, const char *name) {
    const char *v = ctl_reply_field(h, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

int ctl_cmd_workers(struct ctl_config *config, int argc, char **argv) {
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &workers_usage, NULL, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    baton_redis_t *r = NULL;
    if ((rc = ctl_redis_open(config, COMMAND, &r)))
        return rc;
    char errstr[512];
    int64_t now = 0;
    redisReply *ids = NULL;
    baton_err_t err = baton_redis_time_ms(r, &now, errstr, sizeof errstr);
    if (!err)
        err = ctl_redis_cmd(r, &ids, errstr, sizeof errstr, "ZRANGE", BATON_KEY_WORKERS, "0", "-1",
                            NULL);
    size_t n = ids ? ids->elements : 0;
    for (size_t i = 0; i < n && !err; i++) {
        char key[BATON_KEY_MAX];
        baton_worker_key(key, ids->element[i]->str);
        const char *argv_h[] = {"HGETALL", key};
        err = baton_redis_append(r, 2, argv_h, NULL, errstr, sizeof errstr);
    }
    redisReply **hashes = calloc(n ? n : 1, sizeof *hashes);
    if (!hashes && !err)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !err; i++)
        err = baton_redis_get_reply(r, &hashes[i], errstr, sizeof errstr);
    baton_redis_destroy(r);
    if (err) {
        ctl_error(COMMAND, "%s", errstr);
        for (size_t i = 0; hashes && i < n; i++)
            if (hashes[i])
                freeReplyObject(hashes[i]);
        free(hashes);
        if (ids)
            freeReplyObject(ids);
        return CTL_EXIT_FAIL;
    }

    json_t *list = json_array();
    static const char *const headers[] = {"ID",   "HOST", "PID",    "QUEUES", "CONC",
                                          "BUSY", "DONE", "FAILED", "STALE",  "HEARTBEAT"};
    struct ctl_table *t = ctl_table_new(10, headers);
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *h = hashes[i];
        if (!h || h->type != REDIS_REPLY_ARRAY || h->elements == 0)
            continue; /* expired: the worker is gone */
        live++;
        int64_t beat = field_int(h, "heartbeat_ms");
        int64_t age = beat > 0 ? now - beat : -1;
        if (config->json) {
            json_t *o = json_object();
            json_object_set_new(o, "id", ctl_json_str(ids->element[i]->str));
            json_object_set_new(o, "host", ctl_json_str(ctl_reply_field(h, "host")));
            json_object_set_new(o, "pid", json_integer(field_int(h, "pid")));
            json_object_set_new(o, "queues", ctl_json_str(ctl_reply_field(h, "queues")));
            json_object_set_new(o, "concurrency", json_integer(field_int(h, "concurrency")));
            json_object_set_new(o, "busy", json_integer(field_int(h, "busy")));
            json_object_set_new(o, "done", json_integer(field_int(h, "done")));
            json_object_set_new(o, "failed", json_integer(field_int(h, "failed")));
            json_object_set_new(o, "stale_refusals", json_integer(field_int(h, "stale_refusals")));
            json_object_set_new(o, "started_at", ctl_time_json(field_int(h, "started_ms")));
            json_object_set_new(o, "heartbeat_at", ctl_time_json(beat));
            json_object_set_new(o, "heartbeat_age_ms", age >= 0 ? json_integer(age) : json_null());
            json_array_append_new(list, o);
        } else {
            char age_text[32];
            const char *cells[10] = {ids->element[i]->str,
                                     ctl_reply_field(h, "host"),
                                     ctl_reply_field(h, "pid"),
                                     ctl_reply_field(h, "queues"),
                                     ctl_reply_field(h, "concurrency"),
                                     ctl_reply_field(h, "busy"),
                                     ctl_reply_field(h, "done"),
                                     ctl_reply_field(h, "failed"),
                                     ctl_reply_field(h, "stale_refusals"),
                                     age >= 0 ? ctl_age_text(age, age_text, sizeof age_text)
                                              : NULL};
            ctl_table_row(t, cells);
        }
    }
    if (config->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "workers", list);
        ctl_json_print(doc);
    } else {
        json_decref(list);
        ctl_table_print(t, stdout);
        printf("(%zu live worker%s)\n", live, live == 1 ? "" : "s");
    }
    ctl_table_free(t);
    for (size_t i = 0; i < n; i++)
        if (hashes[i])
            freeReplyObject(hashes[i]);
    free(hashes);
    if (ids)
        freeReplyObject(ids);
    return CTL_EXIT_OK;
}
