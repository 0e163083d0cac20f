/*
 * cmd_prune.c - `batonctl prune --older-than DURATION`: deletes old history.
 *
 * What goes: tasks in a terminal state (succeeded, dead, expired, canceled)
 * that finished before the cutoff, with all their events, and rejections
 * recorded before the cutoff. The cutoff is fixed once, from PostgreSQL's
 * clock, so every batch agrees on it.
 *
 * Why batches: one DELETE of a month of history would hold row locks on
 * millions of rows for minutes and block the history writer, which upserts
 * task rows. Each statement here deletes at most --batch task rows (and
 * their events, in the same statement, so a task never loses its events
 * without its row or the reverse) and commits; rows the writer holds at
 * that moment are skipped (SKIP LOCKED) and taken by a later batch or run.
 *
 * The statements are fixed; the cutoff and batch size are parameters.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pg.h"
#include "timeutil.h"

#define COMMAND "prune"

struct prune_opts {
    int64_t older_than_ms;
    int64_t batch;
    int dry_run;
};

static const struct baton_opt prune_flags[] = {
    {"older-than", BATON_OPT_DURATION | CTL_FLAG | BATON_OPT_NEED_UNIT | BATON_OPT_REQUIRED, NULL,
     "prune what finished more than this long ago (30d, 12h, 90m)",
     offsetof(struct prune_opts, older_than_ms), 0, 0},
    {"batch", BATON_OPT_INT | CTL_FLAG, NULL,
     "task rows (with their events) per statement (default 1000)",
     offsetof(struct prune_opts, batch), 1, 100000},
    {"dry-run", BATON_OPT_BOOL | CTL_FLAG, NULL, "count what would be deleted, delete nothing",
     offsetof(struct prune_opts, dry_run), 0, 0},
};

static const struct ctl_usage prune_usage = {
    COMMAND,
    "prune --older-than DURATION [--batch N] [--dry-run]",
    "Deletes from the PostgreSQL history the tasks that finished (succeeded,\n"
    "dead, expired, canceled) more than DURATION ago, with their events, and the\n"
    "rejections older than that. Works in small committed batches, so it never\n"
    "holds many locks. Needs --pg-dsn. Redis is not touched.",
    prune_flags,
    sizeof prune_flags / sizeof prune_flags[0],
    0,
    0};

/* $1: DURATION in ms. The cutoff as epoch ms, from the server's clock. */
static const char CUTOFF_SQL[] =
    "SELECT " CTL_SQL_MS("now() - $1::bigint * interval '1 millisecond'");

/* Finished before the cutoff. updated_at equals finished_at for a task in
 * a terminal state (the writer sets both from the last event), so the
 * (state, updated_at) index finds them. */
#define PRUNABLE_TASKS                                                                             \
    " FROM baton.tasks"                                                                            \
    " WHERE state IN ('succeeded', 'dead', 'expired', 'canceled')"                                 \
    " AND updated_at < to_timestamp($1::bigint / 1000.0)"                                          \
    " AND finished_at < to_timestamp($1::bigint / 1000.0)"

/* $1 cutoff ms, $2 batch. Returns (tasks, events) deleted. */
static const char PRUNE_TASKS_SQL[] =
    "WITH victims AS (SELECT queue, id" PRUNABLE_TASKS
    " ORDER BY updated_at LIMIT $2::bigint FOR UPDATE SKIP LOCKED),"
    " gone_events AS (DELETE FROM baton.task_events e USING victims v"
    "  WHERE e.queue = v.queue AND e.task_id = v.id RETURNING 1),"
    " gone_tasks AS (DELETE FROM baton.tasks t USING victims v"
    "  WHERE t.queue = v.queue AND t.id = v.id RETURNING 1)"
    " SELECT (SELECT count(*) FROM gone_tasks), (SELECT count(*) FROM gone_events)";

/* $1 cutoff ms, $2 batch (rows of its own: a rejection has no events). */
static const char PRUNE_REJECTIONS_SQL[] =
    "WITH victims AS (SELECT kafka_topic, kafka_partition, kafka_offset FROM baton.rejections"
    " WHERE at < to_timestamp($1::bigint / 1000.0) ORDER BY at LIMIT $2::bigint"
    " FOR UPDATE SKIP LOCKED)"
    " DELETE FROM baton.rejections r USING victims v"
    " WHERE r.kafka_topic = v.kafka_topic AND r.kafka_partition = v.kafka_partition"
    " AND r.kafka_offset = v.kafka_offset";

/* --dry-run: what a run would delete now. $1 cutoff ms. */
static const char COUNT_SQL[] =
    "WITH victims AS (SELECT queue, id" PRUNABLE_TASKS ")"
    " SELECT (SELECT count(*) FROM victims),"
    " (SELECT count(*) FROM baton.task_events e JOIN victims v"
    "  ON e.queue = v.queue AND e.task_id = v.id),"
    " (SELECT count(*) FROM baton.rejections WHERE at < to_timestamp($1::bigint / 1000.0))";

/* Rejections are small rows without events: bigger batches. */
#define REJECTION_BATCH_FACTOR 10

static int fail_pg(PGconn *pg, PGresult *res, const char *what) {
    char errstr[512];
    baton_pg_error(pg, res, what, errstr, sizeof errstr);
    ctl_error(COMMAND, "%s", errstr);
    PQclear(res);
    PQfinish(pg);
    return CTL_EXIT_FAIL;
}

static PGresult *run(PGconn *pg, const char *name, int nparams, const char *const *params) {
    return PQexecPrepared(pg, name, nparams, params, NULL, NULL, 0);
}

int ctl_cmd_prune(struct ctl_config *config, int argc, char **argv) {
    struct prune_opts opts = {-1, 1000, 0};
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &prune_usage, &opts, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    char errstr[512];
    PGconn *pg = NULL;
    if (ctl_pg_open(config, &pg, errstr, sizeof errstr)) {
        ctl_error(COMMAND, "%s", errstr);
        return CTL_EXIT_FAIL;
    }
    static const struct {
        const char *name, *sql;
        int nparams;
    } statements[] = {{"cutoff", CUTOFF_SQL, 1},
                      {"prune_tasks", PRUNE_TASKS_SQL, 2},
                      {"prune_rejections", PRUNE_REJECTIONS_SQL, 2},
                      {"count", COUNT_SQL, 1}};
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
        PGresult *res =
            PQprepare(pg, statements[i].name, statements[i].sql, statements[i].nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            return fail_pg(pg, res, "PostgreSQL prepare");
        PQclear(res);
    }

    char older[24], cutoff[24], batch[24], rejection_batch[24];
    snprintf(older, sizeof older, "%" PRId64, opts.older_than_ms);
    snprintf(batch, sizeof batch, "%" PRId64, opts.batch);
    snprintf(rejection_batch, sizeof rejection_batch, "%" PRId64,
             opts.batch * REJECTION_BATCH_FACTOR);
    const char *p_cutoff[1] = {older};
    PGresult *res = run(pg, "cutoff", 1, p_cutoff);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail_pg(pg, res, "PostgreSQL");
    int64_t cutoff_ms = ctl_pg_int(res, 0, 0);
    PQclear(res);
    snprintf(cutoff, sizeof cutoff, "%" PRId64, cutoff_ms);

    int64_t tasks = 0, events = 0, rejections = 0, batches = 0;
    if (opts.dry_run) {
        const char *params[1] = {cutoff};
        res = run(pg, "count", 1, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            return fail_pg(pg, res, "PostgreSQL");
        tasks = ctl_pg_int(res, 0, 0);
        events = ctl_pg_int(res, 0, 1);
        rejections = ctl_pg_int(res, 0, 2);
        PQclear(res);
    } else {
        /* Until a batch comes back short: what is left was skipped as
         * locked, or finished after the cutoff. */
        const char *params[2] = {cutoff, batch};
        for (;;) {
            res = run(pg, "prune_tasks", 2, params);
            if (PQresultStatus(res) != PGRES_TUPLES_OK)
                return fail_pg(pg, res, "PostgreSQL");
            int64_t t = ctl_pg_int(res, 0, 0), e = ctl_pg_int(res, 0, 1);
            PQclear(res);
            tasks += t;
            events += e;
            batches++;
            if (t < opts.batch)
                break;
        }
        const char *rparams[2] = {cutoff, rejection_batch};
        for (;;) {
            res = run(pg, "prune_rejections", 2, rparams);
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                return fail_pg(pg, res, "PostgreSQL");
            int64_t n = strtoll(PQcmdTuples(res), NULL, 10);
            PQclear(res);
            rejections += n;
            batches++;
            if (n < opts.batch * REJECTION_BATCH_FACTOR)
                break;
        }
    }
    PQfinish(pg);

    char cutoff_text[BATON_RFC3339_BUFSZ];
    baton_time_format_rfc3339(cutoff_ms, cutoff_text);
    if (config->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "cutoff", json_string(cutoff_text));
        json_object_set_new(doc, "dry_run", json_boolean(opts.dry_run));
        json_object_set_new(doc, "tasks", json_integer(tasks));
        json_object_set_new(doc, "events", json_integer(events));
        json_object_set_new(doc, "rejections", json_integer(rejections));
        json_object_set_new(doc, "statements", json_integer(batches));
        ctl_json_print(doc);
    } else {
        printf("%s %" PRId64 " task%s, %" PRId64 " event%s and %" PRId64
               " rejection%s older than %s\n",
               opts.dry_run ? "would prune" : "pruned", tasks, tasks == 1 ? "" : "s", events,
               events == 1 ? "" : "s", rejections, rejections == 1 ? "" : "s", cutoff_text);
    }
    return CTL_EXIT_OK;
}
