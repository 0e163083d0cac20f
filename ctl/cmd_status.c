/*
 * cmd_status.c - `batonctl status ID [--queue Q]`: one task, wherever it is.
 *
 * A task lives in two places: its Redis hash baton:{Q}:t:<id> while it is
 * live (and for the retention period after it finished), and its history
 * row and events in PostgreSQL once the history writer has copied them. A
 * status merges both, so it answers for a task that is only in Redis (the
 * writer is behind, or runs without history), only in PostgreSQL (expired
 * from Redis) or in both. Where both know a field, Redis wins: it is the
 * live truth, the history trails it.
 *
 * Ids are unique per queue, not globally: without --queue every queue of
 * baton:queues is searched and every match is shown. PostgreSQL is
 * optional: without --pg-dsn, or with the server down, the history is
 * reported unavailable and the live state is still shown.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pg.h"
#include "queue.h"
#include "timeutil.h"

#define COMMAND "status"

struct status_opts {
    const char *queue;
};

static const struct baton_opt status_flags[] = {
    {"queue", BATON_OPT_STRING | CTL_FLAG, NULL,
     "look in this queue only (default: every known queue)", offsetof(struct status_opts, queue), 0,
     0},
};

static const struct ctl_usage status_usage = {
    COMMAND,
    "status ID [--queue Q]",
    "Shows one task: its live state from Redis merged with its history (the\n"
    "baton.tasks row and the event timeline) from PostgreSQL. Works for a task\n"
    "only in Redis, only in the history, or in both; without --pg-dsn (or with\n"
    "PostgreSQL down) the history is reported unavailable. Exit 3 when no queue\n"
    "has the id.",
    status_flags,
    sizeof status_flags / sizeof status_flags[0],
    1,
    1};

/* One queue's view of the task. */
struct match {
    char *queue;
    redisReply *live; /* HGETALL reply, owned; NULL when not in Redis */
    int row;          /* row in the tasks result, -1 when not in history */
};

struct lookup {
    struct match *items;
    size_t count;
    PGresult *tasks;  /* owned; NULL when the history is unavailable */
    PGresult *events; /* owned */
    int history;      /* 1 when PostgreSQL answered */
    char history_error[512];
};

static struct match *match_for(struct lookup *l, const char *queue) {
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].queue, queue) == 0)
            return &l->items[i];
    struct match *grown = realloc(l->items, (l->count + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    l->items = grown;
    struct match *m = &l->items[l->count];
    m->queue = strdup(queue);
    m->live = NULL;
    m->row = -1;
    if (!m->queue)
        return NULL;
    l->count++;
    return m;
}

static int compare_matches(const void *a, const void *b) {
    return strcmp(((const struct match *)a)->queue, ((const struct match *)b)->queue);
}

static void lookup_free(struct lookup *l) {
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].queue);
        if (l->items[i].live)
            freeReplyObject(l->items[i].live);
    }
    free(l->items);
    PQclear(l->tasks);
    PQclear(l->events);
}

/* HGETALL of baton:{Q}:t:<id> in each candidate queue, pipelined. */
static baton_err_t read_live(baton_redis_t *r, const char *id, const char *queue, struct lookup *l,
                             char *errstr, size_t errstr_size) {
    struct ctl_names queues = {NULL, 0};
    baton_err_t err = BATON_OK;
    if (queue) {
        queues.items = malloc(sizeof *queues.items);
        if (!queues.items || !(queues.items[0] = strdup(queue))) {
            free(queues.items);
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        }
        queues.count = 1;
    } else if ((err = ctl_known_queues(r, &queues, errstr, errstr_size))) {
        return err;
    }
    for (size_t i = 0; i < queues.count && !err; i++) {
        char key[BATON_KEY_MAX];
        baton_task_key(key, queues.items[i], id);
        const char *argv[] = {"HGETALL", key};
        err = baton_redis_append(r, 2, argv, NULL, errstr, errstr_size);
    }
    for (size_t i = 0; i < queues.count && !err; i++) {
        redisReply *reply;
        err = baton_redis_get_reply(r, &reply, errstr, errstr_size);
        if (err)
            break;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
            struct match *m = match_for(l, queues.items[i]);
            if (!m) {
                freeReplyObject(reply);
                err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
                break;
            }
            m->live = reply;
        } else {
            if (reply->type == REDIS_REPLY_ERROR)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis HGETALL: %s",
                                   reply->str);
            freeReplyObject(reply);
        }
    }
    ctl_names_free(&queues);
    return err;
}

/* Columns of TASK_SQL, in order. */
enum {
    T_QUEUE,
    T_ID,
    T_TYPE,
    T_PRIORITY,
    T_STATE,
    T_ATTEMPTS,
    T_MAX_ATTEMPTS,
    T_TIMEOUT_MS,
    T_RUN_AT,
    T_DEADLINE,
    T_SUBMITTED_AT,
    T_QUEUED_AT,
    T_FIRST_STARTED_AT,
    T_FINISHED_AT,
    T_LAST_WORKER,
    T_LAST_ERROR,
    T_RESULT,
    T_PAYLOAD,
    T_META,
    T_EXTRA,
    T_KAFKA_TOPIC,
    T_KAFKA_PARTITION,
    T_KAFKA_OFFSET,
    T_UPDATED_AT,
    T_LAST_SEQ,
    T_COLUMNS
};

static const char *const task_column_names[T_COLUMNS] = {"queue",
                                                         "id",
                                                         "type",
                                                         "priority",
                                                         "state",
                                                         "attempts",
                                                         "max_attempts",
                                                         "timeout_ms",
                                                         "run_at",
                                                         "deadline",
                                                         "submitted_at",
                                                         "queued_at",
                                                         "first_started_at",
                                                         "finished_at",
                                                         "last_worker",
                                                         "last_error",
                                                         "result",
                                                         "payload",
                                                         "meta",
                                                         "extra",
                                                         "kafka_topic",
                                                         "kafka_partition",
                                                         "kafka_offset",
                                                         "updated_at",
                                                         "last_seq"};

static const enum ctl_pg_kind task_column_kinds[T_COLUMNS] = {
    CTL_PG_TEXT, CTL_PG_TEXT, CTL_PG_TEXT, CTL_PG_INT,  CTL_PG_TEXT, CTL_PG_INT,  CTL_PG_INT,
    CTL_PG_INT,  CTL_PG_TIME, CTL_PG_TIME, CTL_PG_TIME, CTL_PG_TIME, CTL_PG_TIME, CTL_PG_TIME,
    CTL_PG_TEXT, CTL_PG_TEXT, CTL_PG_JSON, CTL_PG_JSON, CTL_PG_JSON, CTL_PG_JSON, CTL_PG_TEXT,
    CTL_PG_INT,  CTL_PG_INT,  CTL_PG_TIME, CTL_PG_INT};

// clang-format off
static const char TASK_SQL[] =
    "SELECT queue, id, type, priority, state, attempts, max_attempts, timeout_ms, "
    CTL_SQL_MS("run_at") ", " CTL_SQL_MS("deadline") ", " CTL_SQL_MS("submitted_at") ", "
    CTL_SQL_MS("queued_at") ", " CTL_SQL_MS("first_started_at") ", "
    CTL_SQL_MS("finished_at") ", last_worker, last_error, "
    "result::text, payload::text, meta::text, extra::text, "
    "kafka_topic, kafka_partition, kafka_offset, " CTL_SQL_MS("updated_at") ", last_seq"
    " FROM baton.tasks WHERE id = $1 AND ($2::text IS NULL OR queue = $2) ORDER BY queue";
// clang-format on

/* Columns of EVENTS_SQL, in order. */
enum {
    E_QUEUE,
    E_SEQ,
    E_AT,
    E_EVENT,
    E_FROM,
    E_TO,
    E_ATTEMPT,
    E_TOKEN,
    E_WORKER,
    E_ERROR,
    E_DETAIL,
    E_COLUMNS
};

// clang-format off
static const char EVENTS_SQL[] =
    "SELECT queue, seq, " CTL_SQL_MS("at") ", event, from_state, to_state, attempt,"
    " fencing_token, worker_id, error, coalesce(detail, '{}'::jsonb)::text"
    " FROM baton.task_events WHERE task_id = $1 AND ($2::text IS NULL OR queue = $2)"
    " ORDER BY queue, seq";
// clang-format on

static PGresult *query(PGconn *pg, const char *sql, const char *id, const char *queue, char *errstr,
                       size_t errstr_size) {
    const char *params[2] = {id, queue};
    PGresult *res = PQexecParams(pg, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        baton_pg_error(pg, res, "PostgreSQL", errstr, errstr_size);
        PQclear(res);
        return NULL;
    }
    return res;
}

/* The history of the id; failures only mark the history unavailable. */
static void read_history(const struct ctl_config *config, const char *id, const char *queue,
                         struct lookup *l) {
    PGconn *pg = NULL;
    if (ctl_pg_open(config, &pg, l->history_error, sizeof l->history_error))
        return;
    l->tasks = query(pg, TASK_SQL, id, queue, l->history_error, sizeof l->history_error);
    if (l->tasks)
        l->events = query(pg, EVENTS_SQL, id, queue, l->history_error, sizeof l->history_error);
    PQfinish(pg);
    if (!l->events) {
        PQclear(l->tasks);
        l->tasks = NULL;
        return;
    }
    l->history = 1;
}

/* Redis hash fields holding integers; *_ms times among them. */
static int live_field_is_int(const char *name) {
    static const char *const ints[] = {"priority",   "attempt", "max_attempts",
                                       "timeout_ms", "token",   "ev",
                                       "kpartition", "koffset", "cancel_requested"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(name, ints[i]) == 0)
            return 1;
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, "_ms") == 0;
}

/* The Redis hash as a JSON object: numbers as numbers, the task JSON and
 * the result parsed. The hash keeps no id (the key names it) and no
 * attempt before the first claim (absent means 0): both are filled in, so
 * the object reads as it did when the hash held them. */
static json_t *live_json(const redisReply *h, const char *id) {
    json_t *o = json_object();
    json_object_set_new(o, "id", ctl_json_str(id));
    json_object_set_new(o, "attempt", json_integer(0));
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *name = h->element[i]->str, *value = h->element[i + 1]->str;
        json_t *v;
        char *end;
        long long n = strtoll(value, &end, 10);
        if (live_field_is_int(name) && !*value)
            v = json_null(); /* "" is how the scripts write "none" */
        else if (live_field_is_int(name) && !*end)
            v = json_integer(n);
        else if (strcmp(name, "task") == 0 || strcmp(name, "result") == 0)
            v = ctl_json_from_text(value);
        else
            v = ctl_json_str(value);
        json_object_set_new(o, name, v);
    }
    return o;
}

static json_t *event_json(const PGresult *ev, int row) {
    json_t *o = json_object();
    json_object_set_new(o, "seq", ctl_pg_json(ev, row, E_SEQ, CTL_PG_INT));
    json_object_set_new(o, "at", ctl_pg_json(ev, row, E_AT, CTL_PG_TIME));
    json_object_set_new(o, "event", ctl_pg_json(ev, row, E_EVENT, CTL_PG_TEXT));
    json_object_set_new(o, "from", ctl_pg_json(ev, row, E_FROM, CTL_PG_TEXT));
    json_object_set_new(o, "to", ctl_pg_json(ev, row, E_TO, CTL_PG_TEXT));
    json_object_set_new(o, "attempt", ctl_pg_json(ev, row, E_ATTEMPT, CTL_PG_INT));
    json_object_set_new(o, "token", ctl_pg_json(ev, row, E_TOKEN, CTL_PG_INT));
    json_object_set_new(o, "worker", ctl_pg_json(ev, row, E_WORKER, CTL_PG_TEXT));
    json_object_set_new(o, "error", ctl_pg_json(ev, row, E_ERROR, CTL_PG_TEXT));
    json_object_set_new(o, "detail", ctl_pg_json(ev, row, E_DETAIL, CTL_PG_JSON));
    return o;
}

static const char *history_state(const struct lookup *l, const struct match *m) {
    return m->row >= 0 ? ctl_pg_text(l->tasks, m->row, T_STATE) : NULL;
}

static json_t *status_json(const char *id, const struct lookup *l) {
    json_t *doc = json_object();
    json_object_set_new(doc, "id", ctl_json_str(id));
    json_object_set_new(doc, "history_available", json_boolean(l->history));
    json_object_set_new(doc, "history_error",
                        l->history ? json_null() : ctl_json_str(l->history_error));
    json_t *tasks = json_array();
    for (size_t i = 0; i < l->count; i++) {
        const struct match *m = &l->items[i];
        json_t *t = json_object();
        const char *live_state = ctl_reply_field(m->live, "state");
        const char *state = live_state ? live_state : history_state(l, m);
        json_object_set_new(t, "queue", ctl_json_str(m->queue));
        json_object_set_new(t, "state", ctl_json_str(state));
        json_object_set_new(t, "in_redis", json_boolean(m->live != NULL));
        json_object_set_new(t, "in_history", json_boolean(m->row >= 0));
        json_object_set_new(t, "live", m->live ? live_json(m->live, id) : json_null());
        json_t *row = json_null();
        if (m->row >= 0) {
            row = json_object();
            for (int c = 0; c < T_COLUMNS; c++)
                if (c != T_QUEUE && c != T_ID)
                    json_object_set_new(row, task_column_names[c],
                                        ctl_pg_json(l->tasks, m->row, c, task_column_kinds[c]));
        }
        json_object_set_new(t, "history", row);
        json_t *events = json_array();
        for (int e = 0; l->events && e < PQntuples(l->events); e++)
            if (strcmp(PQgetvalue(l->events, e, E_QUEUE), m->queue) == 0)
                json_array_append_new(events, event_json(l->events, e));
        json_object_set_new(t, "events", events);
        json_array_append_new(tasks, t);
    }
    json_object_set_new(doc, "tasks", tasks);
    return doc;
}

/* ------------------------------------------------------------ human text */

static void line(const char *label, const char *value) {
    if (value && *value)
        ctl_term_printf(stdout, "  %-15s %s\n", label, value);
}

/* A time from the live hash (ms) or else the history (ms column). */
static void time_line(const char *label, const struct lookup *l, const struct match *m,
                      const char *live_field, int column) {
    const char *text = ctl_reply_field(m->live, live_field);
    int64_t ms = text ? strtoll(text, NULL, 10) : 0;
    if (!text && m->row >= 0 && column >= 0)
        ms = ctl_pg_int(l->tasks, m->row, column);
    char buf[BATON_RFC3339_BUFSZ];
    if (ms > 0)
        line(label, ctl_time_text(ms, buf));
}

/* A JSON value as compact text, cut to `max` characters. */
static void json_line(const char *label, json_t *value, size_t max) {
    if (!value || json_is_null(value))
        return;
    if (json_is_object(value) && json_object_size(value) == 0)
        return;
    char *text = json_is_string(value) ? strdup(json_string_value(value))
                                       : json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return;
    if (strlen(text) > max)
        snprintf(text + max - 3, 4, "...");
    line(label, text);
    free(text);
}

static void print_task(const char *id, const struct lookup *l, const struct match *m) {
    const char *live_state = ctl_reply_field(m->live, "state");
    const char *state = live_state ? live_state : history_state(l, m);
    const char *where = m->live && m->row >= 0 ? "live in Redis, history in PostgreSQL"
                        : m->live              ? "live in Redis"
                                               : "history only (no longer in Redis)";
    ctl_term_printf(stdout, "task %s in queue %s: %s%s  (%s)\n", id, m->queue, state ? state : "?",
                    ctl_reply_field(m->live, "cancel_requested") && live_state &&
                            strcmp(live_state, "running") == 0
                        ? " (cancel requested)"
                        : "",
                    where);

    json_t *task = NULL;
    const char *task_text = ctl_reply_field(m->live, "task");
    if (task_text)
        task = ctl_json_from_text(task_text);
    const char *type = task ? json_string_value(json_object_get(task, "type")) : NULL;
    if (!type && m->row >= 0)
        type = ctl_pg_text(l->tasks, m->row, T_TYPE);
    line("type", type);

    char buf[128];
    const char *prio = ctl_reply_field(m->live, "priority");
    if (!prio && m->row >= 0)
        prio = ctl_pg_text(l->tasks, m->row, T_PRIORITY);
    line("priority", prio);
    const char *attempt = ctl_reply_field(m->live, "attempt");
    if (m->live && !attempt)
        attempt = "0"; /* enqueue.lua writes none: not claimed yet */
    const char *max_attempts = ctl_reply_field(m->live, "max_attempts");
    if (!m->live && m->row >= 0) {
        attempt = ctl_pg_text(l->tasks, m->row, T_ATTEMPTS);
        max_attempts = ctl_pg_text(l->tasks, m->row, T_MAX_ATTEMPTS);
    }
    if (attempt && max_attempts) {
        snprintf(buf, sizeof buf, "%s of %s", attempt, max_attempts);
        line("attempts", buf);
    }
    const char *timeout = ctl_reply_field(m->live, "timeout_ms");
    if (!timeout && m->row >= 0)
        timeout = ctl_pg_text(l->tasks, m->row, T_TIMEOUT_MS);
    if (timeout) {
        snprintf(buf, sizeof buf, "%s ms", timeout);
        line("timeout", buf);
    }
    time_line("submitted", l, m, "submitted_ms", T_SUBMITTED_AT);
    if (state && strcmp(state, "scheduled") == 0)
        time_line("due", l, m, "due_ms", T_RUN_AT);
    time_line("deadline", l, m, "deadline_ms", T_DEADLINE);
    time_line("queued", l, m, "queued_ms", T_QUEUED_AT);
    time_line("first started", l, m, "first_started_ms", T_FIRST_STARTED_AT);
    if (m->live && state && strcmp(state, "running") == 0) {
        time_line("started", l, m, "started_ms", -1);
        time_line("lease until", l, m, "lease_ms", -1);
    }
    time_line("finished", l, m, "finished_ms", T_FINISHED_AT);
    const char *worker = ctl_reply_field(m->live, "worker");
    if (!worker && m->row >= 0)
        worker = ctl_pg_text(l->tasks, m->row, T_LAST_WORKER);
    line("worker", worker);
    const char *error = ctl_reply_field(m->live, "error");
    if (!error && m->row >= 0)
        error = ctl_pg_text(l->tasks, m->row, T_LAST_ERROR);
    line("error", error);
    json_t *result = NULL;
    if (ctl_reply_field(m->live, "result"))
        result = ctl_json_from_text(ctl_reply_field(m->live, "result"));
    else if (m->row >= 0)
        result = ctl_pg_json(l->tasks, m->row, T_RESULT, CTL_PG_JSON);
    json_line("result", result, 200);
    json_decref(result);
    json_t *payload = task ? json_incref(json_object_get(task, "payload")) : NULL;
    if (!payload && m->row >= 0)
        payload = ctl_pg_json(l->tasks, m->row, T_PAYLOAD, CTL_PG_JSON);
    json_line("payload", payload, 200);
    json_decref(payload);
    json_t *meta = task ? json_incref(json_object_get(task, "meta")) : NULL;
    if (!meta && m->row >= 0)
        meta = ctl_pg_json(l->tasks, m->row, T_META, CTL_PG_JSON);
    json_line("meta", meta, 200);
    json_decref(meta);
    json_decref(task);
    const char *ktopic = ctl_reply_field(m->live, "ktopic");
    if (ktopic && *ktopic) {
        snprintf(buf, sizeof buf, "%s [%s] @ %s", ktopic,
                 ctl_reply_field(m->live, "kpartition") ? ctl_reply_field(m->live, "kpartition")
                                                        : "?",
                 ctl_reply_field(m->live, "koffset") ? ctl_reply_field(m->live, "koffset") : "?");
        line("kafka", buf);
    } else if (m->row >= 0 && ctl_pg_text(l->tasks, m->row, T_KAFKA_TOPIC)) {
        snprintf(buf, sizeof buf, "%s [%s] @ %s", ctl_pg_text(l->tasks, m->row, T_KAFKA_TOPIC),
                 ctl_pg_text(l->tasks, m->row, T_KAFKA_PARTITION)
                     ? ctl_pg_text(l->tasks, m->row, T_KAFKA_PARTITION)
                     : "?",
                 ctl_pg_text(l->tasks, m->row, T_KAFKA_OFFSET)
                     ? ctl_pg_text(l->tasks, m->row, T_KAFKA_OFFSET)
                     : "?");
        line("kafka", buf);
    }

    if (!l->history) {
        ctl_term_printf(stdout, "  history         unavailable: %s\n", l->history_error);
        return;
    }
    if (m->row < 0) {
        printf("  history         none yet (the history writer has not copied it)\n");
        return;
    }
    const char *ev_in_redis = ctl_reply_field(m->live, "ev");
    int64_t written = ctl_pg_int(l->tasks, m->row, T_LAST_SEQ);
    if (ev_in_redis && strtoll(ev_in_redis, NULL, 10) > written)
        snprintf(buf, sizeof buf, "%" PRId64 " of %s events written (writer catching up)", written,
                 ev_in_redis);
    else
        snprintf(buf, sizeof buf, "%" PRId64 " event%s, state %s", written, written == 1 ? "" : "s",
                 ctl_pg_text(l->tasks, m->row, T_STATE));
    line("history", buf);
    static const char *const headers[] = {"SEQ", "AT",      "EVENT",  "FROM",
                                          "TO",  "ATTEMPT", "WORKER", "ERROR"};
    struct ctl_table *t = ctl_table_new(8, headers);
    for (int e = 0; e < PQntuples(l->events); e++) {
        if (strcmp(PQgetvalue(l->events, e, E_QUEUE), m->queue) != 0)
            continue;
        char at[BATON_RFC3339_BUFSZ];
        const char *cells[8] = {
            PQgetvalue(l->events, e, E_SEQ),     ctl_time_text(ctl_pg_int(l->events, e, E_AT), at),
            ctl_pg_text(l->events, e, E_EVENT),  ctl_pg_text(l->events, e, E_FROM),
            ctl_pg_text(l->events, e, E_TO),     ctl_pg_text(l->events, e, E_ATTEMPT),
            ctl_pg_text(l->events, e, E_WORKER), ctl_pg_text(l->events, e, E_ERROR)};
        ctl_table_row(t, cells);
    }
    printf("  events:\n");
    /* Indent the timeline under its task. */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem) {
        ctl_table_print(t, mem);
        fclose(mem);
        for (char *p = text, *nl; p && *p; p = nl ? nl + 1 : NULL) {
            nl = strchr(p, '\n');
            printf("    %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
        }
        free(text);
    }
    ctl_table_free(t);
}

int ctl_cmd_status(struct ctl_config *config, int argc, char **argv) {
    struct status_opts opts = {NULL};
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &status_usage, &opts, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    const char *id = args[0];
    if ((rc = ctl_check_task_id(COMMAND, id)) || (rc = ctl_check_queue_name(COMMAND, opts.queue)))
        return rc;

    baton_redis_t *r = NULL;
    if ((rc = ctl_redis_open(config, COMMAND, &r)))
        return rc;
    struct lookup l;
    memset(&l, 0, sizeof l);
    char errstr[512];
    baton_err_t err = read_live(r, id, opts.queue, &l, errstr, sizeof errstr);
    baton_redis_destroy(r);
    if (err) {
        ctl_error(COMMAND, "%s", errstr);
        lookup_free(&l);
        return CTL_EXIT_FAIL;
    }
    read_history(config, id, opts.queue, &l);
    for (int row = 0; l.tasks && row < PQntuples(l.tasks); row++) {
        struct match *m = match_for(&l, PQgetvalue(l.tasks, row, T_QUEUE));
        if (m)
            m->row = row;
    }
    if (l.count > 1)
        qsort(l.items, l.count, sizeof *l.items, compare_matches);

    if (l.count == 0) {
        if (!l.history && config->pg_dsn && *config->pg_dsn) {
            ctl_error(COMMAND, "task '%s' is not in Redis and the history is unavailable: %s", id,
                      l.history_error);
            rc = CTL_EXIT_FAIL;
        } else {
            ctl_error(COMMAND, "task '%s' not found%s%s%s", id, opts.queue ? " in queue " : "",
                      opts.queue ? opts.queue : "",
                      l.history ? "" : " in Redis (no --pg-dsn: history not searched)");
            rc = CTL_EXIT_NOT_FOUND;
        }
        lookup_free(&l);
        return rc;
    }
    if (config->json) {
        ctl_json_print(status_json(id, &l));
    } else {
        for (size_t i = 0; i < l.count; i++) {
            if (i)
                printf("\n");
            print_task(id, &l, &l.items[i]);
        }
    }
    lookup_free(&l);
    return CTL_EXIT_OK;
}
