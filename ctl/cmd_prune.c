/*
 * cmd_prune.c - `batonctl prune --older-than DURATION`: drops old history.
 *
 * What goes: every partition of baton.tasks, baton.task_events and
 * baton.history_entries whose whole range of time lies before the cutoff
 * (migration 0005: tasks by submitted time, events by their time, stream
 * entries by their id's time), the rejections recorded before the cutoff,
 * and the notes of baton.tasks_early older than it. The cutoff is fixed
 * once, from PostgreSQL's clock.
 *
 * Why partitions: dropping one costs the same whatever it holds, where a
 * DELETE of a month of history works row by row, bloats the tables and
 * competes with the writer. Why CONCURRENTLY: a plain DETACH or DROP of a
 * partition locks the parent table ACCESS EXCLUSIVE; queued behind a long
 * report that reads the history, that lock would stop the history writer
 * (whose inserts queue behind it) until the report ends. DETACH PARTITION
 * ... CONCURRENTLY locks the parent SHARE UPDATE EXCLUSIVE, which neither
 * inserts nor reads wait for, and waits itself for the transactions that
 * may see the partition; the partition, no longer part of the parent, is
 * then dropped. It cannot run in a transaction block: each partition is
 * its own two transactions, so a prune that dies leaves at most one
 * partition detached or half-detached, which the next run finishes first.
 *
 * Rejections (rare rows, kept unpartitioned so that a message read twice
 * is stored once, see docs/history-schema.md) are deleted in batches of
 * --batch rows, each its own transaction, skipping rows locked.
 *
 * The statements are fixed; the cutoff, the batch size and the partition
 * names read from the catalog (quoted) are their only inputs.
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
     "prune history older than this (30d, 12h, 90m)", offsetof(struct prune_opts, older_than_ms), 0,
     0},
    {"batch", BATON_OPT_INT | CTL_FLAG, NULL, "rejection rows per statement (default 10000)",
     offsetof(struct prune_opts, batch), 1, 1000000},
    {"dry-run", BATON_OPT_BOOL | CTL_FLAG, NULL, "list what would be dropped, drop nothing",
     offsetof(struct prune_opts, dry_run), 0, 0},
};

static const struct ctl_usage prune_usage = {
    COMMAND,
    "prune --older-than DURATION [--batch N] [--dry-run]",
    "Drops from the PostgreSQL history the partitions (of baton.tasks,\n"
    "baton.task_events, baton.history_entries) that hold only times more than\n"
    "DURATION ago, and deletes the rejections older than that. Partitions are\n"
    "detached CONCURRENTLY: the history writer never waits for a prune. Needs\n"
    "--pg-dsn. Redis is not touched.",
    prune_flags,
    sizeof prune_flags / sizeof prune_flags[0],
    0,
    0};

/* $1: DURATION in ms. The cutoff as epoch ms, from the server's clock. */
static const char CUTOFF_SQL[] =
    "SELECT " CTL_SQL_MS("now() - $1::bigint * interval '1 millisecond'");

/* $1 cutoff ms. Partitions wholly before the cutoff, and any a prune left
 * half-detached, oldest first. */
// clang-format off
static const char PARTITIONS_SQL[] =
    "SELECT parent, partition, " CTL_SQL_MS("lower_bound") ", " CTL_SQL_MS("upper_bound") ","
    " detach_pending"
    " FROM baton.history_partitions()"
    " WHERE upper_bound <= to_timestamp($1::bigint / 1000.0) OR detach_pending"
    " ORDER BY lower_bound, parent";
// clang-format on

/* Tables a prune detached but did not drop (it died in between): named
 * like a partition, attached to nothing. */
static const char LEFTOVERS_SQL[] =
    "SELECT c.relname FROM pg_class c"
    " WHERE c.relnamespace = 'baton'::regnamespace AND c.relkind = 'r' AND NOT c.relispartition"
    " AND c.relname ~ '^(tasks|task_events|history_entries)_[0-9]{8}_[0-9]{4}$'"
    " ORDER BY c.relname";

/* $1 cutoff ms, $2 batch. */
static const char PRUNE_REJECTIONS_SQL[] =
    "WITH victims AS (SELECT kafka_topic, kafka_partition, kafka_offset FROM baton.rejections"
    " WHERE at < to_timestamp($1::bigint / 1000.0) ORDER BY at LIMIT $2::bigint"
    " FOR UPDATE SKIP LOCKED)"
    " DELETE FROM baton.rejections r USING victims v"
    " WHERE r.kafka_topic = v.kafka_topic AND r.kafka_partition = v.kafka_partition"
    " AND r.kafka_offset = v.kafka_offset";

/* $1 cutoff ms. */
static const char PRUNE_EARLY_SQL[] =
    "DELETE FROM baton.tasks_early WHERE first_at < to_timestamp($1::bigint / 1000.0)";

/* --dry-run: $1 cutoff ms. */
static const char COUNT_SQL[] =
    "SELECT (SELECT count(*) FROM baton.rejections WHERE at < to_timestamp($1::bigint / 1000.0)),"
    " (SELECT count(*) FROM baton.tasks_early WHERE first_at < to_timestamp($1::bigint / 1000.0))";

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

/* Runs one statement built from catalog names: text, a name, text, and
 * optionally a second name and text; names are quoted. */
static int run_ddl(PGconn *pg, const char *t1, const char *n1, const char *t2, const char *n2,
                   const char *t3) {
    char *q1 = PQescapeIdentifier(pg, n1, strlen(n1));
    char *q2 = n2 ? PQescapeIdentifier(pg, n2, strlen(n2)) : NULL;
    if (!q1 || (n2 && !q2)) {
        PQfreemem(q1);
        PQfreemem(q2);
        ctl_error(COMMAND, "out of memory");
        PQfinish(pg);
        return CTL_EXIT_FAIL;
    }
    char sql[512];
    snprintf(sql, sizeof sql, "%s%s%s%s%s", t1, q1, t2, q2 ? q2 : "", t3);
    PQfreemem(q1);
    PQfreemem(q2);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail_pg(pg, res, "PostgreSQL");
    PQclear(res);
    return 0;
}

int ctl_cmd_prune(struct ctl_config *config, int argc, char **argv) {
    struct prune_opts opts = {-1, 10000, 0};
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
    } statements[] = {
        {"cutoff", CUTOFF_SQL, 1},           {"partitions", PARTITIONS_SQL, 1},
        {"leftovers", LEFTOVERS_SQL, 0},     {"prune_rejections", PRUNE_REJECTIONS_SQL, 2},
        {"prune_early", PRUNE_EARLY_SQL, 1}, {"count", COUNT_SQL, 1}};
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
        PGresult *res =
            PQprepare(pg, statements[i].name, statements[i].sql, statements[i].nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            return fail_pg(pg, res, "PostgreSQL prepare");
        PQclear(res);
    }

    char older[24], cutoff[24], batch[24];
    snprintf(older, sizeof older, "%" PRId64, opts.older_than_ms);
    snprintf(batch, sizeof batch, "%" PRId64, opts.batch);
    const char *p_older[1] = {older};
    PGresult *res = run(pg, "cutoff", 1, p_older);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail_pg(pg, res, "PostgreSQL");
    int64_t cutoff_ms = ctl_pg_int(res, 0, 0);
    PQclear(res);
    snprintf(cutoff, sizeof cutoff, "%" PRId64, cutoff_ms);
    const char *p_cutoff[1] = {cutoff};

    PGresult *parts = run(pg, "partitions", 1, p_cutoff);
    if (PQresultStatus(parts) != PGRES_TUPLES_OK)
        return fail_pg(pg, parts, "PostgreSQL");
    PGresult *leftovers = run(pg, "leftovers", 0, NULL);
    if (PQresultStatus(leftovers) != PGRES_TUPLES_OK) {
        PQclear(parts);
        return fail_pg(pg, leftovers, "PostgreSQL");
    }

    json_t *dropped = json_array();
    int64_t rejections = 0, early = 0, statements_run = 0;
    int failed = 0;
    for (int r = 0; !failed && r < PQntuples(leftovers); r++) {
        const char *name = PQgetvalue(leftovers, r, 0);
        if (!opts.dry_run && (failed = run_ddl(pg, "DROP TABLE baton.", name, "", NULL, "")))
            break;
        statements_run += !opts.dry_run;
        json_array_append_new(dropped, json_pack("{s:s,s:b}", "partition", name, "leftover", 1));
    }
    for (int r = 0; !failed && r < PQntuples(parts); r++) {
        const char *parent = PQgetvalue(parts, r, 0), *name = PQgetvalue(parts, r, 1);
        int pending = strcmp(PQgetvalue(parts, r, 4), "t") == 0;
        if (!opts.dry_run) {
            /* FINALIZE: a prune interrupted between the two transactions of a
             * DETACH CONCURRENTLY left it pending. */
            failed = run_ddl(pg, "ALTER TABLE baton.", parent, " DETACH PARTITION baton.", name,
                             pending ? " FINALIZE" : " CONCURRENTLY");
            if (!failed)
                failed = run_ddl(pg, "DROP TABLE baton.", name, "", NULL, "");
            if (failed)
                break;
            statements_run += 2;
        }
        char from[BATON_RFC3339_BUFSZ], to[BATON_RFC3339_BUFSZ];
        baton_time_format_rfc3339(ctl_pg_int(parts, r, 2), from);
        baton_time_format_rfc3339(ctl_pg_int(parts, r, 3), to);
        json_array_append_new(dropped, json_pack("{s:s,s:s,s:s,s:s}", "table", parent, "partition",
                                                 name, "from", from, "to", to));
    }
    PQclear(parts);
    PQclear(leftovers);
    if (failed) {
        json_decref(dropped);
        return failed;
    }

    if (opts.dry_run) {
        res = run(pg, "count", 1, p_cutoff);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            json_decref(dropped);
            return fail_pg(pg, res, "PostgreSQL");
        }
        rejections = ctl_pg_int(res, 0, 0);
        early = ctl_pg_int(res, 0, 1);
        PQclear(res);
    } else {
        /* Until a batch comes back short: what is left was skipped as
         * locked, or recorded after the cutoff. */
        const char *params[2] = {cutoff, batch};
        for (;;) {
            res = run(pg, "prune_rejections", 2, params);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                json_decref(dropped);
                return fail_pg(pg, res, "PostgreSQL");
            }
            int64_t n = strtoll(PQcmdTuples(res), NULL, 10);
            PQclear(res);
            rejections += n;
            statements_run++;
            if (n < opts.batch)
                break;
        }
        res = run(pg, "prune_early", 1, p_cutoff);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            json_decref(dropped);
            return fail_pg(pg, res, "PostgreSQL");
        }
        early = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        statements_run++;
    }
    PQfinish(pg);

    char cutoff_text[BATON_RFC3339_BUFSZ];
    baton_time_format_rfc3339(cutoff_ms, cutoff_text);
    size_t npart = json_array_size(dropped);
    if (config->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "cutoff", json_string(cutoff_text));
        json_object_set_new(doc, "dry_run", json_boolean(opts.dry_run));
        json_object_set_new(doc, "partitions", dropped);
        json_object_set_new(doc, "rejections", json_integer(rejections));
        json_object_set_new(doc, "early_tasks", json_integer(early));
        json_object_set_new(doc, "statements", json_integer(statements_run));
        ctl_json_print(doc);
    } else {
        printf("%s %zu partition%s and %" PRId64 " rejection%s older than %s\n",
               opts.dry_run ? "would drop" : "dropped", npart, npart == 1 ? "" : "s", rejections,
               rejections == 1 ? "" : "s", cutoff_text);
        for (size_t i = 0; i < npart; i++) {
            json_t *p = json_array_get(dropped, i);
            const char *from = json_string_value(json_object_get(p, "from"));
            printf("  baton.%s%s%s%s\n", json_string_value(json_object_get(p, "partition")),
                   from ? " (" : " (left over by an interrupted prune)", from ? from : "",
                   from ? ")" : "");
        }
        json_decref(dropped);
    }
    return CTL_EXIT_OK;
}
