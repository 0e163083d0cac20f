/*
 * verify.c - `baton-check verify`: does the system still owe nothing?
 *
 * After a fault scenario, this waits for every acknowledged task (the ids
 * `produce` wrote down) to settle, then judges one queue against the
 * guarantees of docs/guarantees.md, as invariants I1-I4 of docs/reliability.md:
 *
 *   I1 no loss: every acked id is terminal in Redis and has a history row
 *      in the same terminal state (and, with --expect, a state listed);
 *   G4 history matches Redis: baton.task_events holds exactly seq 1..ev of
 *      each acked task (ev = the Redis hash's event counter), chained
 *      from_state = previous to_state;
 *   I2 every extra run is visible: each handler start recorded in
 *      --executions ("<id> <token>") matches a `claimed` event with that
 *      fencing token;
 *   I3 no zombie writes: claim tokens strictly increase per task, every
 *      event leaving `running` carries the latest claim's token, at most
 *      one `succeeded`, nothing after a terminal event but `retried`;
 *   I4 structure: every key of the queue is a known kind, every task hash
 *      is well formed and sits in exactly the sorted set its state implies,
 *      and every set member has a task hash.
 *
 * How it reads. Redis is read as one snapshot: a SCAN finds the queue's
 * keys, then one MULTI/EXEC returns the five sorted sets and every task
 * hash together, so a task changing state while we read (one not in the
 * acked list may still be running) never looks inconsistent. Set members
 * without a hash in the snapshot are re-checked atomically (EXISTS + ZSCORE
 * in one MULTI each) before they count as orphans, since a task may have
 * been created after the SCAN. History is read with two queries, ordered by
 * task and seq. Everything is then judged in memory: a few thousand tasks
 * take milliseconds.
 *
 * Ownership: one struct verify_run owns everything: the task records (and
 * their id strings), the Redis snapshot reply and the PostgreSQL results,
 * from which the records borrow their field strings until run_free().
 *
 * Output: each violation on stderr with its kind and task id (the first
 * VIOLATIONS_PRINTED_MAX, then a count), figures on stderr, and one JSON
 * object on stdout and in --report. Exit 0 no violation, 1 some, 2 usage
 * error or a server that never answered. The figures: `executions` lines of
 * --executions, `duplicate_executions` the sum over tasks of executions - 1,
 * `claims` the queue's `claimed` events, `reclaims` its `reclaimed` events
 * plus the others with error "lease expired" (a lease lost on the last
 * attempt ends `dead`), `tasks_with_retries` tasks claimed more than once,
 * `stale_refusals` the workers' refusal log lines (an outcome or a lease
 * renewal refused: the lease was taken over), or, without logs, their
 * registry counters. An acked task that ends outside --expect
 * counts in `unexpected_states`, apart from `lost`.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checker.h"
#include "config.h"
#include "log.h"
#include "pg.h"
#include "queue.h"
#include "redis.h"
#include "task.h"
#include "timeutil.h"

#define PROG CHECK_PROG " verify"
/* How often the wait polls Redis and PostgreSQL. */
#define POLL_INTERVAL_MS 100
/* Redis connect and per-command timeout. A snapshot of a few thousand
 * tasks is one command of a few milliseconds; this is only a bound. */
#define REDIS_TIMEOUT_MS 5000
/* Violations printed one by one; the rest are counted. */
#define VIOLATIONS_PRINTED_MAX 50
/* Commands per pipelined batch while waiting (one HGET per task). */
#define WAIT_BATCH 1000
/* What the worker logs when Redis refused a stale outcome (worker/outcome.c). */
#define STALE_REFUSAL_LINE "refused, the lease was taken over"

/* ---------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

struct verify_config {
    /* Where to look: flag or environment. */
    char *redis_url;
    char *pg_dsn;
    char *log_level;
    /* What to judge: flags only. */
    char *queue;
    char *acked; /* files, '\n'-joined (repeatable flag) */
    char *executions;
    char *worker_logs; /* files, '\n'-joined (repeatable flag) */
    char *expect;
    int64_t wait_s;
    char *report;
};

#define CFG(field) offsetof(struct verify_config, field)
static const struct baton_opt options[] = {
    {"redis-url", BATON_OPT_STRING | BATON_OPT_REQUIRED, NULL,
     "Redis URL, redis://[[user]:password@]host[:port][/db]", CFG(redis_url), 0, 0},
    {"pg-dsn", BATON_OPT_STRING | BATON_OPT_REQUIRED, NULL,
     "PostgreSQL DSN of the history database", CFG(pg_dsn), 0, 0},
    {"log-level", BATON_OPT_STRING, "warn",
     "JSON log lines on stderr: debug, info, warn, error, off", CFG(log_level), 0, 0},
    BATON_OPT_SECTION("the run (flags only, no environment variable)"),
    {"queue", BATON_OPT_STRING | BATON_OPT_NO_ENV | BATON_OPT_REQUIRED, NULL, "queue to judge",
     CFG(queue), 0, 0},
    {"acked", BATON_OPT_LIST | BATON_OPT_NO_ENV | BATON_OPT_REQUIRED, NULL,
     "file of acknowledged ids, one per line, as produce writes it (repeatable)", CFG(acked), 0, 0},
    {"executions", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL,
     "file of handler starts, one '<id> <token>' line each (the chaos handler's)", CFG(executions),
     0, 0},
    {"worker-log", BATON_OPT_LIST | BATON_OPT_NO_ENV, NULL,
     "worker log (JSON lines) to count stale refusals in (repeatable; none: read the live "
     "worker registry)",
     CFG(worker_logs), 0, 0},
    {"expect", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL,
     "terminal states every acked task must end in, comma-separated (default: any terminal)",
     CFG(expect), 0, 0},
    {"wait-s", BATON_OPT_INT | BATON_OPT_NO_ENV, "60",
     "wait at most this long for the tasks to settle and history to catch up; then check anyway",
     CFG(wait_s), 0, 86400},
    {"report", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL, "also write the JSON report to this file",
     CFG(report), 0, 0},
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

static const char usage_line[] = PROG " --redis-url U --pg-dsn D --queue Q --acked FILE [options]";
static const char summary[] =
    "Waits (at most --wait-s) until every acked task of the queue is terminal in Redis and in\n"
    "history and the queue's events stream is empty, then checks invariants I1-I4 of\n"
    "docs/reliability.md: no loss, history = Redis, every execution recorded as a claim, no\n"
    "zombie writes (fencing), the Redis structure of the queue. Violations go to stderr; one\n"
    "JSON report to stdout (and --report). Exit status: 0 no violation, 1 violations, 2 usage\n"
    "or connection error.";

/* ---------------------------------------------------------------------------
 * States and sets
 * ------------------------------------------------------------------------ */

static const char *const terminal_states[] = {"succeeded", "dead", "expired", "canceled"};
#define TERMINAL_COUNT 4
static const char *const live_states[] = {"scheduled", "queued", "running"};
#define LIVE_COUNT 3

/* Index in terminal_states, or -1. */
static int terminal_index(const char *state) {
    for (int i = 0; state && i < TERMINAL_COUNT; i++)
        if (strcmp(state, terminal_states[i]) == 0)
            return i;
    return -1;
}

static int is_terminal(const char *state) {
    return terminal_index(state) >= 0;
}

static int is_redis_state(const char *state) {
    for (int i = 0; state && i < LIVE_COUNT; i++)
        if (strcmp(state, live_states[i]) == 0)
            return 1;
    return is_terminal(state);
}

/* The queue's sorted sets, in the order the snapshot reads them. */
enum qset { SET_READY, SET_SCHEDULED, SET_RUNNING, SET_DEAD, SET_DEADLINE, SET_COUNT };
static const char *const set_names[SET_COUNT] = {"ready", "scheduled", "running", "dead",
                                                 "deadline"};
#define QKEY(name) offsetof(struct baton_queue_keys, name)
static const size_t set_keys[SET_COUNT] = {QKEY(ready), QKEY(scheduled), QKEY(running), QKEY(dead),
                                           QKEY(deadline)};

/* Every key kind a queue may have besides task hashes ("t:<id>"). */
static const char *const known_keys[] = {"ready", "seq",    "scheduled", "deadline", "running",
                                         "dead",  "events", "notify",    "paused"};
static const size_t known_key_fields[] = {QKEY(ready),    QKEY(seq),     QKEY(scheduled),
                                          QKEY(deadline), QKEY(running), QKEY(dead),
                                          QKEY(events),   QKEY(notify),  QKEY(paused)};
#define KNOWN_KEY_COUNT 9

/* Key `field` (a QKEY offset) of `keys`. */
static const char *qkey(const struct baton_queue_keys *keys, size_t field) {
    return (const char *)keys + field;
}
/* The Redis type each of those must have. */
static const char *const known_key_types[] = {"zset", "string", "zset", "zset",  "zset",
                                              "zset", "stream", "list", "string"};

/* The one set a task in `state` belongs in; -1 for none (finished). */
static int home_set(const char *state) {
    if (strcmp(state, "queued") == 0)
        return SET_READY;
    if (strcmp(state, "scheduled") == 0)
        return SET_SCHEDULED;
    if (strcmp(state, "running") == 0)
        return SET_RUNNING;
    if (strcmp(state, "dead") == 0)
        return SET_DEAD;
    return -1;
}

/* ---------------------------------------------------------------------------
 * Task records and the id table
 * ------------------------------------------------------------------------ */

/* One history event (a baton.task_events row). Strings borrowed from the
 * run's PostgreSQL result. */
struct hist_event {
    int64_t seq;
    const char *event;
    const char *from; /* "" for NULL */
    const char *to;
    const char *error; /* "" for NULL */
    int64_t token;
    int has_token;
};

/* Everything known about one task id of the queue. `id` is owned; every
 * other string is borrowed from the run's snapshot or results. */
struct task {
    char *id;
    int acked;         /* named in an --acked file */
    int in_redis;      /* the snapshot has a non-empty hash */
    const char *state; /* hash fields, NULL when absent */
    const char *hash_id;
    const char *hash_queue;
    const char *worker;
    const char *lease_ms;
    const char *ev;
    const char *score[SET_COUNT]; /* score in each set, NULL when not a member */
    const char *pg_state;         /* baton.tasks.state, NULL when no row */
    size_t ev_first, ev_count;    /* its events: run->events[ev_first ..] */
    int executions;               /* lines of --executions */
    int snapshot_read;            /* its HGETALL is in the snapshot already */
};

struct verify_run {
    const struct verify_config *config;
    struct task *tasks; /* owned; grows */
    size_t ntasks, cap;
    size_t *slots; /* open-addressing id table: task index + 1, 0 = empty */
    size_t nslots;
    size_t acked;               /* distinct acked ids */
    int expect[TERMINAL_COUNT]; /* 1: state allowed by --expect */

    baton_redis_t *redis;
    PGconn *pg;
    redisReply *snapshot;      /* owned: the MULTI/EXEC reply tasks borrow from */
    PGresult *pg_tasks;        /* owned */
    PGresult *pg_events;       /* owned */
    struct hist_event *events; /* owned; ordered by task, seq */
    size_t nevents;
    struct baton_queue_keys keys; /* of the queue checked */
    const char *key_prefix;       /* keys.key_prefix: "baton:{Q}:" */
    size_t key_prefix_len;

    /* Figures. */
    int64_t terminal[TERMINAL_COUNT];
    int64_t retired; /* terminal in history, hash gone from Redis (retention) */
    int64_t executions, duplicate_executions, claims, reclaims, tasks_with_retries;
    int64_t stale_refusals;
    int64_t waited_ms;
    int settled; /* the wait ended because everything settled */
    /* Violations by kind. */
    int64_t lost, unexpected_states, unrecorded, zombies, structure, history;
    int64_t printed, violations;
};

/* FNV-1a: ids are short and the table is for this run only. */
static uint64_t hash_id(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int table_grow(struct verify_run *run) {
    size_t nslots = run->nslots ? run->nslots * 2 : 4096;
    size_t *slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < run->ntasks; i++) {
        size_t at = hash_id(run->tasks[i].id) & (nslots - 1);
        while (slots[at])
            at = (at + 1) & (nslots - 1);
        slots[at] = i + 1;
    }
    free(run->slots);
    run->slots = slots;
    run->nslots = nslots;
    return 0;
}

/* The record of `id` (len bytes), or NULL when there is none. */
static struct task *task_find(struct verify_run *run, const char *id, size_t len) {
    if (!run->nslots)
        return NULL;
    char buf[BATON_KEY_MAX];
    if (len >= sizeof buf)
        return NULL;
    memcpy(buf, id, len);
    buf[len] = '\0';
    for (size_t at = hash_id(buf) & (run->nslots - 1); run->slots[at];
         at = (at + 1) & (run->nslots - 1)) {
        struct task *t = &run->tasks[run->slots[at] - 1];
        if (strcmp(t->id, buf) == 0)
            return t;
    }
    return NULL;
}

/* The record of `id`, made when new. NULL on no memory or an id too long
 * to be one. The pointer is valid until the next task_get(). */
static struct task *task_get(struct verify_run *run, const char *id, size_t len) {
    struct task *t = task_find(run, id, len);
    if (t || len == 0 || len > BATON_KEY_MAX - 1)
        return t;
    if ((run->ntasks + 1) * 2 > run->nslots && table_grow(run))
        return NULL;
    if (run->ntasks == run->cap) {
        size_t cap = run->cap ? run->cap * 2 : 1024;
        struct task *tasks = realloc(run->tasks, cap * sizeof *tasks);
        if (!tasks)
            return NULL;
        run->tasks = tasks;
        run->cap = cap;
    }
    t = &run->tasks[run->ntasks];
    memset(t, 0, sizeof *t);
    t->id = strndup(id, len);
    if (!t->id)
        return NULL;
    size_t at = hash_id(t->id) & (run->nslots - 1);
    while (run->slots[at])
        at = (at + 1) & (run->nslots - 1);
    run->slots[at] = ++run->ntasks;
    return t;
}

static void run_free(struct verify_run *run) {
    for (size_t i = 0; i < run->ntasks; i++)
        free(run->tasks[i].id);
    free(run->tasks);
    free(run->slots);
    free(run->events);
    if (run->snapshot)
        freeReplyObject(run->snapshot);
    PQclear(run->pg_tasks);
    PQclear(run->pg_events);
    baton_redis_destroy(run->redis);
    if (run->pg)
        PQfinish(run->pg);
}

/* ---------------------------------------------------------------------------
 * Violations
 * ------------------------------------------------------------------------ */

/* Counts one violation in *counter and prints it (the first ones). */
static void violate(struct verify_run *run, int64_t *counter, const char *kind, const char *id,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void violate(struct verify_run *run, int64_t *counter, const char *kind, const char *id,
                    const char *fmt, ...) {
    (*counter)++;
    run->violations++;
    if (run->printed >= VIOLATIONS_PRINTED_MAX)
        return;
    run->printed++;
    fprintf(stderr, PROG ": VIOLATION %s: %s: ", kind, id);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---------------------------------------------------------------------------
 * Input files
 * ------------------------------------------------------------------------ */

/* Calls `line_cb` for each line of each file in `files` ('\n'-joined
 * names), without its newline. BATON_ERR_IO naming the file that cannot be
 * read. */
static baton_err_t for_each_line(const char *files, void *ctx,
                                 baton_err_t (*line_cb)(void *ctx, char *line, size_t len),
                                 char *errstr, size_t errstr_size) {
    for (const char *name = files; name && *name;) {
        const char *end = strchr(name, '\n');
        size_t nlen = end ? (size_t)(end - name) : strlen(name);
        char *path = strndup(name, nlen);
        if (!path)
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        FILE *f = fopen(path, "r");
        if (!f) {
            baton_err_t err = baton_seterr(errstr, errstr_size, BATON_ERR_IO, "open %s: %s", path,
                                           strerror(errno));
            free(path);
            return err;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        baton_err_t err = BATON_OK;
        while (!err && (n = getline(&line, &cap, f)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
            err = line_cb(ctx, line, (size_t)n);
        }
        if (!err && ferror(f))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_IO, "read %s: %s", path,
                               strerror(errno));
        free(line);
        fclose(f);
        free(path);
        if (err)
            return err;
        name = end ? end + 1 : name + nlen;
    }
    return BATON_OK;
}

static baton_err_t acked_line(void *ctx, char *line, size_t len) {
    struct verify_run *run = ctx;
    if (len == 0)
        return BATON_OK;
    struct task *t = task_get(run, line, len);
    if (!t)
        return BATON_ERR_NOMEM;
    if (!t->acked)
        run->acked++;
    t->acked = 1;
    return BATON_OK;
}

/* One execution: "<id> <token>". Checked against history later; here the
 * count per task. Lines that are not two fields are reported, not judged
 * (a handler killed mid-write cannot leave one: each is one small write). */
static baton_err_t execution_line(void *ctx, char *line, size_t len) {
    struct verify_run *run = ctx;
    if (len == 0)
        return BATON_OK;
    char *space = strchr(line, ' ');
    if (!space || space == line || !space[1]) {
        fprintf(stderr, PROG ": warning: --executions line not '<id> <token>': %s\n", line);
        return BATON_OK;
    }
    struct task *t = task_get(run, line, (size_t)(space - line));
    if (!t)
        return BATON_ERR_NOMEM;
    t->executions++;
    run->executions++;
    return BATON_OK;
}

static baton_err_t ignore_line(void *ctx, char *line, size_t len) {
    (void)ctx, (void)line, (void)len;
    return BATON_OK;
}

static baton_err_t log_line(void *ctx, char *line, size_t len) {
    (void)len;
    struct verify_run *run = ctx;
    if (strstr(line, STALE_REFUSAL_LINE))
        run->stale_refusals++;
    return BATON_OK;
}

/* ---------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

static void sleep_ms(int64_t ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* Connects to Redis and PostgreSQL, retrying until `deadline_ms`
 * (monotonic): a scenario may call us right after restarting a server.
 * BATON_ERR_CONFIG for a bad URL, else the last connection error. */
static baton_err_t connect_all(struct verify_run *run, int64_t deadline_ms, char *errstr,
                               size_t errstr_size) {
    const struct verify_config *c = run->config;
    for (;;) {
        baton_err_t err = BATON_OK;
        if (!run->redis) {
            err = baton_redis_connect(c->redis_url, REDIS_TIMEOUT_MS, &run->redis, errstr,
                                      errstr_size);
            if (err == BATON_ERR_CONFIG)
                return err;
        }
        if (!err && !run->pg)
            err = baton_pg_connect(c->pg_dsn, "baton-check", &run->pg, errstr, errstr_size);
        if (!err || baton_time_mono_ms() >= deadline_ms)
            return err;
        sleep_ms(POLL_INTERVAL_MS);
    }
}

/* Makes sure the PostgreSQL connection is usable, resetting it once. */
static void pg_ensure(struct verify_run *run) {
    if (PQstatus(run->pg) != CONNECTION_OK)
        PQreset(run->pg);
}

/* Runs `sql` with text parameters; NULL (errstr filled) unless it returned
 * rows. Caller frees the result with PQclear(). */
static PGresult *pg_query(struct verify_run *run, const char *sql, int nparams,
                          const char *const *params, char *errstr, size_t errstr_size) {
    pg_ensure(run);
    PGresult *res = PQexecParams(run->pg, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        baton_pg_error(run->pg, res, "PostgreSQL", errstr, errstr_size);
        PQclear(res);
        return NULL;
    }
    return res;
}

/* ---------------------------------------------------------------------------
 * Waiting for the tasks to settle
 * ------------------------------------------------------------------------ */

/*
 * Drops from `pending` (task indices) the tasks whose Redis state is
 * terminal, one pipelined HGET per task. BATON_ERR_REDIS on a broken
 * connection (the caller retries in the next round).
 */
static baton_err_t drop_settled_in_redis(struct verify_run *run, size_t *pending, size_t *npending,
                                         char *errstr, size_t errstr_size) {
    size_t kept = 0;
    for (size_t from = 0; from < *npending; from += WAIT_BATCH) {
        size_t n = *npending - from < WAIT_BATCH ? *npending - from : WAIT_BATCH;
        baton_redis_pipeline_begin(run->redis);
        for (size_t i = 0; i < n; i++) {
            char key[BATON_KEY_MAX];
            baton_task_key(key, run->config->queue, run->tasks[pending[from + i]].id);
            const char *argv[] = {"HGET", key, "state"};
            baton_err_t err = baton_redis_append(run->redis, 3, argv, NULL, errstr, errstr_size);
            if (err)
                return err;
        }
        for (size_t i = 0; i < n; i++) {
            redisReply *reply;
            baton_err_t err = baton_redis_get_reply(run->redis, &reply, errstr, errstr_size);
            if (err)
                return err;
            /* No hash: not ingested yet, or finished and gone after the
             * retention period; history decides (the caller waits for
             * every acked task to be terminal there too). */
            int settled = reply->type == REDIS_REPLY_NIL ||
                          (reply->type == REDIS_REPLY_STRING && is_terminal(reply->str));
            freeReplyObject(reply);
            if (!settled)
                pending[kept++] = pending[from + i];
        }
    }
    *npending = kept;
    return BATON_OK;
}

/* Length of the queue's events stream (the history backlog), or -1. */
static long long events_backlog(struct verify_run *run) {
    char errstr[256];
    const char *argv[] = {"XLEN", run->keys.events};
    redisReply *reply;
    if (baton_redis_command(run->redis, &reply, 2, argv, NULL, errstr, sizeof errstr))
        return -1;
    long long n = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    return n;
}

/* The acked ids as a PostgreSQL text[] literal: {"a","b"}; ids are printable
 * ASCII, so quoting " and \ is all it takes. Caller frees. */
static char *acked_array_literal(const struct verify_run *run) {
    size_t cap = 3;
    for (size_t i = 0; i < run->ntasks; i++)
        if (run->tasks[i].acked)
            cap += 2 * strlen(run->tasks[i].id) + 3;
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < run->ntasks; i++) {
        if (!run->tasks[i].acked)
            continue;
        if (p[-1] != '{')
            *p++ = ',';
        *p++ = '"';
        for (const char *s = run->tasks[i].id; *s; s++) {
            if (*s == '"' || *s == '\\')
                *p++ = '\\';
            *p++ = *s;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

/* Number of acked ids whose history row is terminal, or -1. */
static long long history_settled(struct verify_run *run, const char *ids) {
    static const char sql[] =
        "SELECT count(*) FROM baton.tasks WHERE queue = $1 AND id = ANY($2::text[])"
        " AND state IN ('succeeded', 'dead', 'expired', 'canceled')";
    const char *params[] = {run->config->queue, ids};
    char errstr[512];
    PGresult *res = pg_query(run, sql, 2, params, errstr, sizeof errstr);
    if (!res)
        return -1;
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/*
 * Waits until every acked task is terminal in Redis, the events stream is
 * empty and history shows every acked task terminal, polling every
 * POLL_INTERVAL_MS until `deadline_ms`. Server errors only cost a round.
 * Sets run->settled; says on stderr what was still missing at a timeout.
 */
static void wait_settled(struct verify_run *run, int64_t deadline_ms) {
    size_t npending = 0;
    size_t *pending = malloc((run->ntasks + 1) * sizeof *pending);
    char *ids = acked_array_literal(run);
    if (!pending || !ids) {
        fprintf(stderr, PROG ": out of memory while waiting; checking at once\n");
        free(pending);
        free(ids);
        return;
    }
    for (size_t i = 0; i < run->ntasks; i++)
        if (run->tasks[i].acked)
            pending[npending++] = i;
    long long backlog = -1, in_history = -1;
    char errstr[512] = "";
    for (;;) {
        baton_err_t err = baton_redis_ensure(run->redis, errstr, sizeof errstr);
        if (!err)
            err = drop_settled_in_redis(run, pending, &npending, errstr, sizeof errstr);
        if (!err && npending == 0) {
            backlog = events_backlog(run);
            if (backlog == 0)
                in_history = history_settled(run, ids);
        }
        if (!err && npending == 0 && backlog == 0 && in_history == (long long)run->acked) {
            run->settled = 1;
            break;
        }
        if (baton_time_mono_ms() >= deadline_ms) {
            fprintf(stderr,
                    PROG
                    ": gave up waiting after %llds: %zu acked tasks not terminal in Redis%s%s, "
                    "events backlog %lld, %lld of %zu terminal in history\n",
                    (long long)run->config->wait_s, npending, npending ? ", e.g. " : "",
                    npending ? run->tasks[pending[0]].id : "", backlog, in_history, run->acked);
            if (err)
                fprintf(stderr, PROG ": last Redis error: %s\n", errstr);
            break;
        }
        sleep_ms(POLL_INTERVAL_MS);
    }
    free(pending);
    free(ids);
}

/* ---------------------------------------------------------------------------
 * The Redis snapshot
 * ------------------------------------------------------------------------ */

/* A growable list of owned strings. */
struct strvec {
    char **v;
    size_t n, cap;
};

static int strvec_push(struct strvec *sv, const char *s, size_t len) {
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 256;
        char **v = realloc(sv->v, cap * sizeof *v);
        if (!v)
            return -1;
        sv->v = v;
        sv->cap = cap;
    }
    if (!(sv->v[sv->n] = strndup(s, len)))
        return -1;
    sv->n++;
    return 0;
}

static void strvec_free(struct strvec *sv) {
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    memset(sv, 0, sizeof *sv);
}

/* All keys matching `pattern` (SCAN; a key may come twice, callers cope). */
static baton_err_t scan_keys(baton_redis_t *r, const char *pattern, struct strvec *out,
                             char *errstr, size_t errstr_size) {
    char cursor[32] = "0";
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *reply;
        baton_err_t err = baton_redis_command(r, &reply, 6, argv, NULL, errstr, errstr_size);
        if (err)
            return err;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "unexpected SCAN reply");
        }
        snprintf(cursor, sizeof cursor, "%s", reply->element[0]->str);
        for (size_t i = 0; i < reply->element[1]->elements; i++) {
            redisReply *k = reply->element[1]->element[i];
            if (k->type == REDIS_REPLY_STRING && strvec_push(out, k->str, k->len)) {
                freeReplyObject(reply);
                return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
            }
        }
        freeReplyObject(reply);
    } while (strcmp(cursor, "0") != 0);
    return BATON_OK;
}

/*
 * Runs `ncmds` commands (argv arrays of `argcs` entries) as one MULTI/EXEC
 * and returns the EXEC reply (an array of their replies) in *out; caller
 * frees with freeReplyObject().
 */
static baton_err_t redis_transaction(baton_redis_t *r, size_t ncmds, const int *argcs,
                                     const char *const *const *argvs, redisReply **out,
                                     char *errstr, size_t errstr_size) {
    *out = NULL;
    baton_redis_pipeline_begin(r);
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    baton_err_t err = baton_redis_append(r, 1, multi, NULL, errstr, errstr_size);
    for (size_t i = 0; !err && i < ncmds; i++)
        err = baton_redis_append(r, argcs[i], (const char **)argvs[i], NULL, errstr, errstr_size);
    if (!err)
        err = baton_redis_append(r, 1, exec, NULL, errstr, errstr_size);
    /* MULTI's +OK and each +QUEUED are dropped. An error reply does not
     * stop the reading, so the connection stays in step; only an I/O error
     * does (and the next pipeline_begin() then reconnects). */
    baton_err_t first_error = BATON_OK;
    for (size_t i = 0; !err && i < ncmds + 2; i++) {
        redisReply *reply;
        err = baton_redis_get_reply(r, &reply, errstr, errstr_size);
        if (err)
            break;
        if (i == ncmds + 1) {
            *out = reply;
            break;
        }
        if (reply->type == REDIS_REPLY_ERROR && !first_error)
            first_error =
                baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis: %s", reply->str);
        freeReplyObject(reply);
    }
    if (!err)
        err = first_error;
    if (!err && (!*out || (*out)->type != REDIS_REPLY_ARRAY || (*out)->elements != ncmds))
        err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "transaction was aborted");
    if (err && *out) {
        freeReplyObject(*out);
        *out = NULL;
    }
    return err;
}

/* Fills the record's fields from an HGETALL reply (flat field/value array). */
static void take_hash(struct task *t, const redisReply *h) {
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *f = h->element[i]->str, *v = h->element[i + 1]->str;
        if (!f || !v)
            continue;
        if (strcmp(f, "state") == 0)
            t->state = v;
        else if (strcmp(f, "id") == 0)
            t->hash_id = v;
        else if (strcmp(f, "queue") == 0)
            t->hash_queue = v;
        else if (strcmp(f, "worker") == 0)
            t->worker = v;
        else if (strcmp(f, "lease_ms") == 0)
            t->lease_ms = v;
        else if (strcmp(f, "ev") == 0)
            t->ev = v;
    }
    t->in_redis = h->elements > 0;
}

/*
 * Reads the queue's keys as one snapshot and checks the key kinds (I4,
 * orphan keys and key types). Task records get their hash fields and set
 * scores, borrowed from run->snapshot.
 */
static baton_err_t read_snapshot(struct verify_run *run, char *errstr, size_t errstr_size) {
    char pattern[BATON_KEY_MAX + 2];
    snprintf(pattern, sizeof pattern, "%s*", run->key_prefix);
    struct strvec keys = {0};
    baton_err_t err = scan_keys(run->redis, pattern, &keys, errstr, errstr_size);

    /* Commands: TYPE of each known key, ZRANGE of each set, HGETALL of each
     * task hash; `task_of` remembers which record each HGETALL is for. */
    size_t max_cmds = KNOWN_KEY_COUNT + SET_COUNT + keys.n;
    int *argcs = calloc(max_cmds, sizeof *argcs);
    const char *const **argvs = calloc(max_cmds, sizeof *argvs);
    const char **words = calloc(max_cmds * 5, sizeof *words);
    size_t *task_of = calloc(max_cmds, sizeof *task_of);
    const char **fixed = calloc(KNOWN_KEY_COUNT + SET_COUNT, sizeof *fixed);
    if (!err && (!argcs || !argvs || !words || !task_of || !fixed))
        err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    size_t ncmds = 0;
    for (size_t i = 0; !err && i < KNOWN_KEY_COUNT; i++) {
        fixed[i] = qkey(&run->keys, known_key_fields[i]);
        const char **w = &words[ncmds * 5];
        w[0] = "TYPE";
        w[1] = fixed[i];
        argcs[ncmds] = 2;
        argvs[ncmds++] = w;
    }
    for (size_t s = 0; !err && s < SET_COUNT; s++) {
        const char *key = fixed[KNOWN_KEY_COUNT + s] = qkey(&run->keys, set_keys[s]);
        const char **w = &words[ncmds * 5];
        w[0] = "ZRANGE";
        w[1] = key;
        w[2] = "0";
        w[3] = "-1";
        w[4] = "WITHSCORES";
        argcs[ncmds] = 5;
        argvs[ncmds++] = w;
    }
    size_t first_hash = ncmds;
    for (size_t i = 0; !err && i < keys.n; i++) {
        const char *rest = keys.v[i] + run->key_prefix_len;
        if (strncmp(rest, "t:", 2) == 0 && rest[2]) {
            struct task *t = task_get(run, rest + 2, strlen(rest + 2));
            if (!t) {
                err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
                break;
            }
            /* SCAN may return a key twice: read it once. */
            if (t->snapshot_read)
                continue;
            t->snapshot_read = 1;
            size_t index = (size_t)(t - run->tasks);
            const char **w = &words[ncmds * 5];
            w[0] = "HGETALL";
            w[1] = keys.v[i];
            task_of[ncmds] = index;
            argcs[ncmds] = 2;
            argvs[ncmds++] = w;
            continue;
        }
        int known = 0;
        for (size_t k = 0; k < KNOWN_KEY_COUNT && !known; k++)
            known = strcmp(rest, known_keys[k]) == 0;
        if (!known) {
            int repeated = 0;
            for (size_t j = 0; j < i && !repeated; j++)
                repeated = strcmp(keys.v[j], keys.v[i]) == 0;
            if (!repeated)
                violate(run, &run->structure, "orphan key", keys.v[i],
                        "not a key kind baton makes (t:<id>, ready, seq, scheduled, deadline, "
                        "running, dead, events, notify, paused)");
        }
    }
    if (!err)
        err =
            redis_transaction(run->redis, ncmds, argcs, argvs, &run->snapshot, errstr, errstr_size);
    if (!err) {
        redisReply **r = run->snapshot->element;
        for (size_t i = 0; i < KNOWN_KEY_COUNT; i++)
            if (r[i]->type == REDIS_REPLY_STATUS && strcmp(r[i]->str, "none") != 0 &&
                strcmp(r[i]->str, known_key_types[i]) != 0)
                violate(run, &run->structure, "wrong key type", fixed[i], "is a %s, not a %s",
                        r[i]->str, known_key_types[i]);
        for (size_t i = first_hash; i < ncmds; i++) {
            if (r[i]->type == REDIS_REPLY_ARRAY)
                take_hash(&run->tasks[task_of[i]], r[i]);
            else if (r[i]->type == REDIS_REPLY_ERROR)
                violate(run, &run->structure, "wrong key type", argvs[i][1],
                        "a task key that is not a hash: %s", r[i]->str);
        }
        /* Members may make new records (orphans), so hashes come first:
         * task_get() may move run->tasks. */
        for (size_t s = 0; s < SET_COUNT && !err; s++) {
            redisReply *z = r[KNOWN_KEY_COUNT + s];
            if (z->type != REDIS_REPLY_ARRAY)
                continue; /* WRONGTYPE: reported above */
            for (size_t i = 0; i + 1 < z->elements; i += 2) {
                struct task *t = task_get(run, z->element[i]->str, z->element[i]->len);
                if (!t) {
                    err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
                    break;
                }
                t->score[s] = z->element[i + 1]->str;
            }
        }
    }
    free(argcs);
    free(argvs);
    free(words);
    free(task_of);
    free(fixed);
    strvec_free(&keys);
    return err;
}

/*
 * A set member whose hash was not in the snapshot may belong to a task made
 * after the SCAN: it is an orphan only if, atomically, the member is there
 * and the hash is not. One MULTI/EXEC per member, all pipelined.
 */
static baton_err_t check_orphan_members(struct verify_run *run, char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < run->ntasks; i++) {
        struct task *t = &run->tasks[i];
        if (t->in_redis)
            continue;
        for (int s = 0; s < SET_COUNT; s++) {
            if (!t->score[s])
                continue;
            char tkey[BATON_KEY_MAX];
            baton_task_key(tkey, run->config->queue, t->id);
            const char *skey = qkey(&run->keys, set_keys[s]);
            const char *exists[] = {"EXISTS", tkey}, *zscore[] = {"ZSCORE", skey, t->id};
            const char *const *argvs[] = {exists, zscore};
            const int argcs[] = {2, 3};
            redisReply *reply;
            baton_err_t err =
                redis_transaction(run->redis, 2, argcs, argvs, &reply, errstr, errstr_size);
            if (err)
                return err;
            if (reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer == 0 &&
                reply->element[1]->type != REDIS_REPLY_NIL)
                violate(run, &run->structure, "orphan member", t->id,
                        "in %s (score %s) but has no task hash", set_names[s], t->score[s]);
            freeReplyObject(reply);
        }
    }
    return BATON_OK;
}

/* 1 when a worker's `queues` field ("a=3,b") names `queue`. */
static int serves_queue(const char *queues, const char *queue) {
    size_t qlen = strlen(queue);
    for (const char *s = queues; s && *s;) {
        size_t len = strcspn(s, ",");
        size_t name = strcspn(s, "=,");
        if (name == qlen && strncmp(s, queue, qlen) == 0)
            return 1;
        s += len + (s[len] == ',');
    }
    return 0;
}

/*
 * Sum of `stale_refusals` over the live worker registry entries of workers
 * serving the queue, when no logs were given. Weaker than the logs: an
 * entry is as of its worker's last heartbeat (every 2 s) and disappears 10 s
 * after the worker stopped.
 */
static baton_err_t registry_refusals(struct verify_run *run, char *errstr, size_t errstr_size) {
    struct strvec keys = {0};
    baton_err_t err = scan_keys(run->redis, BATON_KEY_WORKER_PATTERN, &keys, errstr, errstr_size);
    for (size_t i = 0; !err && i < keys.n; i++) {
        const char *argv[] = {"HMGET", keys.v[i], "queues", "stale_refusals"};
        redisReply *reply;
        err = baton_redis_command(run->redis, &reply, 4, argv, NULL, errstr, errstr_size);
        if (!err) {
            if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                reply->element[0]->type == REDIS_REPLY_STRING &&
                reply->element[1]->type == REDIS_REPLY_STRING &&
                serves_queue(reply->element[0]->str, run->config->queue))
                run->stale_refusals += strtoll(reply->element[1]->str, NULL, 10);
            freeReplyObject(reply);
        }
    }
    strvec_free(&keys);
    return err;
}

/* ---------------------------------------------------------------------------
 * History
 * ------------------------------------------------------------------------ */

/* Reads baton.tasks and baton.task_events of the queue. */
static baton_err_t read_history(struct verify_run *run, char *errstr, size_t errstr_size) {
    const char *params[] = {run->config->queue};
    run->pg_tasks = pg_query(run, "SELECT id, state FROM baton.tasks WHERE queue = $1", 1, params,
                             errstr, errstr_size);
    if (!run->pg_tasks)
        return BATON_ERR_PG;
    for (int i = 0; i < PQntuples(run->pg_tasks); i++) {
        struct task *t = task_get(run, PQgetvalue(run->pg_tasks, i, 0),
                                  (size_t)PQgetlength(run->pg_tasks, i, 0));
        if (!t)
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        t->pg_state = PQgetvalue(run->pg_tasks, i, 1);
    }
    run->pg_events = pg_query(run,
                              "SELECT task_id, seq, event, coalesce(from_state, ''), to_state,"
                              " coalesce(error, ''), fencing_token"
                              " FROM baton.task_events WHERE queue = $1 ORDER BY task_id, seq",
                              1, params, errstr, errstr_size);
    if (!run->pg_events)
        return BATON_ERR_PG;
    PGresult *res = run->pg_events;
    size_t n = (size_t)PQntuples(res);
    run->events = calloc(n + 1, sizeof *run->events);
    if (!run->events)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    struct task *current = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *id = PQgetvalue(res, (int)i, 0);
        if (!current || strcmp(current->id, id) != 0) {
            current = task_get(run, id, (size_t)PQgetlength(res, (int)i, 0));
            if (!current)
                return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
            current->ev_first = i;
            current->ev_count = 0;
        }
        struct hist_event *e = &run->events[i];
        e->seq = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
        e->event = PQgetvalue(res, (int)i, 2);
        e->from = PQgetvalue(res, (int)i, 3);
        e->to = PQgetvalue(res, (int)i, 4);
        e->error = PQgetvalue(res, (int)i, 5);
        e->has_token = !PQgetisnull(res, (int)i, 6);
        e->token = e->has_token ? strtoll(PQgetvalue(res, (int)i, 6), NULL, 10) : 0;
        current->ev_count++;
    }
    run->nevents = n;
    return BATON_OK;
}

/* ---------------------------------------------------------------------------
 * The checks
 * ------------------------------------------------------------------------ */

/* I1: acked tasks are terminal in Redis and in history, in the same state. */
static void check_no_loss(struct verify_run *run) {
    for (size_t i = 0; i < run->ntasks; i++) {
        struct task *t = &run->tasks[i];
        if (!t->acked)
            continue;
        int ti = terminal_index(t->state);
        if (!t->in_redis) {
            /* Guarantee 1 allows it: finished hashes leave Redis after the
             * retention period (--retention-ms), history keeps them. */
            int pi = t->pg_state ? terminal_index(t->pg_state) : -1;
            if (pi < 0) {
                violate(run, &run->lost, "lost", t->id,
                        "acked but no task hash in Redis and %s in history",
                        t->pg_state ? t->pg_state : "no row");
                continue;
            }
            run->terminal[pi]++;
            run->retired++;
            if (!run->expect[pi])
                violate(run, &run->unexpected_states, "unexpected state", t->id,
                        "ended %s, not one of --expect %s", t->pg_state, run->config->expect);
            continue;
        }
        if (ti < 0) {
            violate(run, &run->lost, "lost", t->id, "acked but %s in Redis, not terminal",
                    t->state ? t->state : "(no state)");
            continue;
        }
        run->terminal[ti]++;
        if (!t->pg_state || !is_terminal(t->pg_state)) {
            violate(run, &run->lost, "lost", t->id, "%s in Redis but %s in history", t->state,
                    t->pg_state ? t->pg_state : "no baton.tasks row");
            continue;
        }
        if (strcmp(t->pg_state, t->state) != 0)
            violate(run, &run->history, "history mismatch", t->id,
                    "%s in Redis but %s in baton.tasks", t->state, t->pg_state);
        if (!run->expect[ti])
            violate(run, &run->unexpected_states, "unexpected state", t->id,
                    "ended %s, not one of --expect %s", t->state, run->config->expect);
    }
}

/* The events of `t` are seq 1..n with no gap, each starting where the
 * previous one ended; returns 0 after reporting the first break. */
static int history_chained(struct verify_run *run, const struct task *t) {
    const struct hist_event *e = &run->events[t->ev_first];
    for (size_t k = 0; k < t->ev_count; k++) {
        const char *want_from = k == 0 ? "" : e[k - 1].to;
        if (e[k].seq != (int64_t)k + 1) {
            violate(run, &run->history, "history mismatch", t->id,
                    "event seq %lld where %zu was due (a gap)", (long long)e[k].seq, k + 1);
            return 0;
        }
        if (strcmp(e[k].from, want_from) != 0) {
            violate(run, &run->history, "history mismatch", t->id,
                    "event %lld (%s) starts from '%s' but the previous one ended in '%s'",
                    (long long)e[k].seq, e[k].event, e[k].from, want_from);
            return 0;
        }
    }
    return 1;
}

/* Guarantee 4: the history of each acked task is exactly seq 1..ev, each
 * event starting where the previous one ended, the last where Redis is.
 * A task whose hash has left Redis (retention) is held to its own chain,
 * ending where baton.tasks says. */
static void check_history_matches(struct verify_run *run) {
    for (size_t i = 0; i < run->ntasks; i++) {
        struct task *t = &run->tasks[i];
        if (!t->acked)
            continue;
        if (!t->in_redis) {
            if (!t->pg_state || !is_terminal(t->pg_state))
                continue; /* already "lost" */
            const struct hist_event *e = &run->events[t->ev_first];
            if (t->ev_count == 0)
                violate(run, &run->history, "history mismatch", t->id,
                        "%s in baton.tasks but no events", t->pg_state);
            else if (history_chained(run, t) && strcmp(e[t->ev_count - 1].to, t->pg_state) != 0)
                violate(run, &run->history, "history mismatch", t->id,
                        "last event %s ends in %s but baton.tasks says %s",
                        e[t->ev_count - 1].event, e[t->ev_count - 1].to, t->pg_state);
            continue;
        }
        char *end = NULL;
        long long ev = t->ev ? strtoll(t->ev, &end, 10) : -1;
        if (!t->ev || *end || ev < 1) {
            violate(run, &run->history, "history mismatch", t->id,
                    "task hash has no valid ev counter (%s)", t->ev ? t->ev : "absent");
            continue;
        }
        const struct hist_event *e = &run->events[t->ev_first];
        if ((long long)t->ev_count != ev) {
            /* Name the first seq that is missing (or extra): rows are in
             * seq order and unique, so it is the first k with seq != k+1. */
            size_t k = 0;
            while (k < t->ev_count && e[k].seq == (int64_t)k + 1)
                k++;
            if (k < t->ev_count)
                violate(run, &run->history, "history mismatch", t->id,
                        "%zu events in history, Redis counted ev=%lld; seq %zu is missing",
                        t->ev_count, ev, k + 1);
            else
                violate(run, &run->history, "history mismatch", t->id,
                        "%zu events in history, Redis counted ev=%lld", t->ev_count, ev);
            continue;
        }
        history_chained(run, t);
        if (t->ev_count && t->state && strcmp(e[t->ev_count - 1].to, t->state) != 0)
            violate(run, &run->history, "history mismatch", t->id,
                    "last event %s ends in %s but Redis says %s", e[t->ev_count - 1].event,
                    e[t->ev_count - 1].to, t->state);
    }
}

/* Appends one reason to `why` (of `size` bytes, `*len` used), "; "-separated,
 * truncating when full. */
static void because(char *why, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void because(char *why, size_t size, size_t *len, const char *fmt, ...) {
    if (*len + 3 >= size)
        return;
    if (*len) {
        memcpy(why + *len, "; ", 3);
        *len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < size ? *len + (size_t)n : size - 1;
}

/* I3: fencing holds in every task's history; plus the I2 figures that come
 * from the same walk (claims, reclaims, tasks with retries). */
static void check_fencing(struct verify_run *run) {
    for (size_t i = 0; i < run->ntasks; i++) {
        struct task *t = &run->tasks[i];
        const struct hist_event *e = &run->events[t->ev_first];
        int64_t latest_claim = -1, max_claim = -1;
        int task_claims = 0, succeeded = 0, after_terminal = 0;
        for (size_t k = 0; k < t->ev_count; k++) {
            char why[256] = "";
            size_t wl = 0;
            if (after_terminal && strcmp(e[k].event, "retried") != 0)
                because(why, sizeof why, &wl, "follows a terminal event");
            if (strcmp(e[k].event, "claimed") == 0) {
                run->claims++;
                task_claims++;
                if (!e[k].has_token)
                    because(why, sizeof why, &wl, "claim without a fencing token");
                else if (e[k].token <= max_claim)
                    because(why, sizeof why, &wl, "claim token %lld not above earlier claim's %lld",
                            (long long)e[k].token, (long long)max_claim);
                if (e[k].has_token) {
                    latest_claim = e[k].token;
                    if (e[k].token > max_claim)
                        max_claim = e[k].token;
                }
            }
            if (strcmp(e[k].from, "running") == 0 && strcmp(e[k].to, "running") != 0) {
                if (latest_claim < 0)
                    because(why, sizeof why, &wl, "leaves running with no claim before it");
                else if (!e[k].has_token)
                    because(why, sizeof why, &wl,
                            "leaves running without a token (latest claim %lld)",
                            (long long)latest_claim);
                else if (e[k].token != latest_claim)
                    because(why, sizeof why, &wl,
                            "leaves running with token %lld, latest claim has %lld",
                            (long long)e[k].token, (long long)latest_claim);
            }
            if (strcmp(e[k].event, "succeeded") == 0 && ++succeeded > 1)
                because(why, sizeof why, &wl, "second succeeded event");
            if (strcmp(e[k].event, "reclaimed") == 0 || strcmp(e[k].error, "lease expired") == 0)
                run->reclaims++;
            if (wl)
                violate(run, &run->zombies, "zombie write", t->id, "event %lld %s (%s -> %s): %s",
                        (long long)e[k].seq, e[k].event, e[k].from, e[k].to, why);
            after_terminal = is_terminal(e[k].to);
        }
        if (task_claims > 1)
            run->tasks_with_retries++;
    }
}

/* I2: every execution line is a recorded claim (same task, same token). */
static baton_err_t execution_matches(void *ctx, char *line, size_t len) {
    struct verify_run *run = ctx;
    char *space = len ? strchr(line, ' ') : NULL;
    if (!space || space == line || !space[1])
        return BATON_OK; /* warned about while counting */
    char *end;
    long long token = strtoll(space + 1, &end, 10);
    const struct task *t = task_find(run, line, (size_t)(space - line));
    int found = 0;
    for (size_t k = 0; t && *end == '\0' && k < t->ev_count && !found; k++) {
        const struct hist_event *e = &run->events[t->ev_first + k];
        found = strcmp(e->event, "claimed") == 0 && e->has_token && e->token == token;
    }
    if (!found) {
        *space = '\0';
        violate(run, &run->unrecorded, "unrecorded execution", line,
                "a handler ran with token %s but history has no claim with it", space + 1);
    }
    return BATON_OK;
}

/* I4: each task hash is well formed and sits in the sets its state says. */
static void check_structure(struct verify_run *run) {
    const char *queue = run->config->queue;
    for (size_t i = 0; i < run->ntasks; i++) {
        struct task *t = &run->tasks[i];
        if (!t->in_redis)
            continue;
        if (!t->state) {
            violate(run, &run->structure, "structure", t->id, "task hash lacks state");
            continue;
        }
        /* The id and the queue are in the key (enqueue.lua keeps neither
         * field); a hash written by an older version has them, and they
         * must agree. */
        if ((t->hash_id && strcmp(t->hash_id, t->id) != 0) ||
            (t->hash_queue && strcmp(t->hash_queue, queue) != 0))
            violate(run, &run->structure, "structure", t->id, "hash says id %s, queue %s",
                    t->hash_id ? t->hash_id : t->id, t->hash_queue ? t->hash_queue : queue);
        if (!is_redis_state(t->state)) {
            violate(run, &run->structure, "structure", t->id, "invalid state '%s'", t->state);
            continue;
        }
        int home = home_set(t->state);
        for (int s = 0; s < SET_DEADLINE; s++) {
            if (s == home && !t->score[s])
                violate(run, &run->structure, "structure", t->id, "%s but not in the %s set",
                        t->state, set_names[s]);
            else if (s != home && t->score[s])
                violate(run, &run->structure, "structure", t->id, "%s but in the %s set", t->state,
                        set_names[s]);
        }
        if (t->score[SET_DEADLINE] && home != SET_READY && home != SET_SCHEDULED)
            violate(run, &run->structure, "structure", t->id, "%s but in the deadline set",
                    t->state);
        if (home == SET_RUNNING) {
            if (!t->worker || !*t->worker || !t->lease_ms || !*t->lease_ms)
                violate(run, &run->structure, "structure", t->id,
                        "running without a worker or lease_ms");
            else if (t->score[SET_RUNNING] &&
                     strtod(t->score[SET_RUNNING], NULL) != strtod(t->lease_ms, NULL))
                violate(run, &run->structure, "structure", t->id,
                        "running score %s differs from lease_ms %s", t->score[SET_RUNNING],
                        t->lease_ms);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Report
 * ------------------------------------------------------------------------ */

static json_t *report_json(const struct verify_run *run) {
    json_t *terminal = json_object();
    for (int i = 0; i < TERMINAL_COUNT; i++)
        json_object_set_new(terminal, terminal_states[i], json_integer(run->terminal[i]));
    json_t *o = json_object();
    json_object_set_new(o, "queue", json_string(run->config->queue));
    json_object_set_new(o, "acked", json_integer((json_int_t)run->acked));
    json_object_set_new(o, "terminal", terminal);
    json_object_set_new(o, "retired", json_integer(run->retired));
    json_object_set_new(o, "lost", json_integer(run->lost));
    json_object_set_new(o, "unexpected_states", json_integer(run->unexpected_states));
    json_object_set_new(o, "executions", json_integer(run->executions));
    json_object_set_new(o, "duplicate_executions", json_integer(run->duplicate_executions));
    json_object_set_new(o, "claims", json_integer(run->claims));
    json_object_set_new(o, "reclaims", json_integer(run->reclaims));
    json_object_set_new(o, "tasks_with_retries", json_integer(run->tasks_with_retries));
    json_object_set_new(o, "stale_refusals", json_integer(run->stale_refusals));
    json_object_set_new(o, "unrecorded_executions", json_integer(run->unrecorded));
    json_object_set_new(o, "zombie_writes", json_integer(run->zombies));
    json_object_set_new(o, "structure_violations", json_integer(run->structure));
    json_object_set_new(o, "history_mismatches", json_integer(run->history));
    json_object_set_new(o, "waited_ms", json_integer(run->waited_ms));
    json_object_set_new(o, "ok", json_boolean(run->violations == 0));
    return o;
}

/* Prints the report on stdout and writes it to --report. Returns 0, or -1
 * when the report file cannot be written. */
static int write_report(const struct verify_run *run) {
    json_t *o = report_json(run);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    puts(text);
    fflush(stdout);
    int rc = 0;
    if (run->config->report) {
        FILE *f = fopen(run->config->report, "w");
        if (!f || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0) {
            fprintf(stderr, PROG ": write %s: %s\n", run->config->report, strerror(errno));
            rc = -1;
        }
    }
    free(text);
    return rc;
}

static void print_figures(const struct verify_run *run) {
    fprintf(stderr,
            PROG ": queue %s: %zu acked; succeeded %lld, dead %lld, expired %lld, canceled %lld; "
                 "%lld only in history (retention); %lld executions (%lld duplicate), %lld "
                 "claims, %lld reclaims, %lld stale refusals; waited %lld ms%s\n",
            run->config->queue, run->acked, (long long)run->terminal[0],
            (long long)run->terminal[1], (long long)run->terminal[2], (long long)run->terminal[3],
            (long long)run->retired, (long long)run->executions,
            (long long)run->duplicate_executions, (long long)run->claims, (long long)run->reclaims,
            (long long)run->stale_refusals, (long long)run->waited_ms,
            run->settled ? "" : " (did not settle)");
    if (run->printed < run->violations)
        fprintf(stderr, PROG ": ... %lld more violations not printed\n",
                (long long)(run->violations - run->printed));
    fprintf(stderr,
            PROG ": %s: %lld violations (lost %lld, unexpected states %lld, unrecorded "
                 "executions %lld, zombie writes %lld, structure %lld, history mismatches "
                 "%lld)\n",
            run->violations ? "FAILED" : "OK", (long long)run->violations, (long long)run->lost,
            (long long)run->unexpected_states, (long long)run->unrecorded, (long long)run->zombies,
            (long long)run->structure, (long long)run->history);
}

/* ---------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

/* Sets run->expect from --expect; -1 on a state that is not terminal. */
static int parse_expect(struct verify_run *run, const char *expect, char *errstr,
                        size_t errstr_size) {
    for (int i = 0; i < TERMINAL_COUNT; i++)
        run->expect[i] = expect == NULL;
    for (const char *s = expect; s && *s;) {
        size_t len = strcspn(s, ",");
        int found = 0;
        for (int i = 0; i < TERMINAL_COUNT; i++)
            if (strlen(terminal_states[i]) == len && strncmp(s, terminal_states[i], len) == 0)
                found = run->expect[i] = 1;
        if (!found) {
            snprintf(errstr, errstr_size,
                     "--expect: '%.*s' is not a terminal state (succeeded, dead, expired, "
                     "canceled)",
                     (int)len, s);
            return -1;
        }
        s += len + (s[len] == ',');
    }
    return 0;
}

static int parse_flags(int argc, char **argv, struct verify_config *c) {
    char errstr[512];
    baton_err_t err = check_parse(options, OPTION_COUNT, c, argc, argv, usage_line, summary, errstr,
                                  sizeof errstr);
    if (err == BATON_ERR_HELP)
        return CHECK_EXIT_OK;
    /* The name goes into a SCAN pattern: the contract's charset has no
     * glob characters, anything else is refused. */
    if (!err && !baton_task_name_valid(c->queue))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--queue: '%s' is not a queue name ([A-Za-z0-9_.:-]{1,128})", c->queue);
    if (!err && baton_log_level_parse(c->log_level, &baton_log_threshold))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--log-level: unknown level '%s'", c->log_level);
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return CHECK_EXIT_USAGE;
    }
    return -1;
}

int check_verify_main(int argc, char **argv) {
    struct verify_config config;
    memset(&config, 0, sizeof config);
    int rc = parse_flags(argc, argv, &config);
    if (rc >= 0) {
        baton_config_free(options, OPTION_COUNT, &config);
        return rc;
    }
    struct verify_run run = {.config = &config};
    char errstr[1024];
    int64_t start_ms = baton_time_mono_ms();
    int64_t deadline_ms = start_ms + config.wait_s * 1000;
    baton_err_t err = BATON_OK;
    rc = CHECK_EXIT_USAGE;

    if (parse_expect(&run, config.expect, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        goto done;
    }
    baton_queue_keys_init(&run.keys, config.queue);
    run.key_prefix = run.keys.key_prefix;
    run.key_prefix_len = strlen(run.key_prefix);
    /* A missing input file is a usage error before any waiting. The acked
     * ids are read now; executions and logs grow while tasks still run, so
     * they are only checked for readability here and read after the wait. */
    err = for_each_line(config.acked, &run, acked_line, errstr, sizeof errstr);
    if (!err && config.executions)
        err = for_each_line(config.executions, NULL, ignore_line, errstr, sizeof errstr);
    if (!err && config.worker_logs)
        err = for_each_line(config.worker_logs, NULL, ignore_line, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, PROG ": %s\n", err == BATON_ERR_NOMEM ? "out of memory" : errstr);
        goto done;
    }
    if (run.acked == 0)
        fprintf(stderr, PROG ": warning: no acked ids in %s\n", config.acked);

    err = connect_all(&run, deadline_ms, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        goto done;
    }
    wait_settled(&run, deadline_ms);
    run.waited_ms = baton_time_mono_ms() - start_ms;

    err = BATON_OK;
    if (config.executions)
        err = for_each_line(config.executions, &run, execution_line, errstr, sizeof errstr);
    if (!err && config.worker_logs)
        err = for_each_line(config.worker_logs, &run, log_line, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, PROG ": %s\n", err == BATON_ERR_NOMEM ? "out of memory" : errstr);
        goto done;
    }
    /* The servers must answer now; one more reconnect each is all they get. */
    err = baton_redis_ensure(run.redis, errstr, sizeof errstr);
    if (!err)
        err = read_snapshot(&run, errstr, sizeof errstr);
    if (!err)
        err = check_orphan_members(&run, errstr, sizeof errstr);
    if (!err && !config.worker_logs)
        err = registry_refusals(&run, errstr, sizeof errstr);
    if (!err)
        err = read_history(&run, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        goto done;
    }

    check_no_loss(&run);
    check_history_matches(&run);
    check_fencing(&run);
    for (size_t i = 0; i < run.ntasks; i++)
        if (run.tasks[i].executions > 1)
            run.duplicate_executions += run.tasks[i].executions - 1;
    if (config.executions &&
        for_each_line(config.executions, &run, execution_matches, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        goto done;
    }
    check_structure(&run);

    print_figures(&run);
    if (write_report(&run))
        goto done;
    rc = run.violations ? CHECK_EXIT_FAILED : CHECK_EXIT_OK;

done:
    run_free(&run);
    baton_config_free(options, OPTION_COUNT, &config);
    return rc;
}
