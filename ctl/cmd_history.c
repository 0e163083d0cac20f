/*
 * cmd_history.c - `batonctl history`: tasks from baton.tasks, newest first.
 *
 * One fixed statement whose filters are all parameters ("$1 IS NULL OR
 * type = $1"): nothing the user types becomes SQL text.
 * --since takes a duration back from PostgreSQL's now() or an RFC 3339
 * time, and filters on submitted_at, the time that orders the output.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pg.h"
#include "state.h"
#include "task.h"
#include "timeutil.h"

#define COMMAND "history"

struct history_opts {
    const char *type, *queue, *state, *event, *since;
    int64_t limit;
};

static const struct baton_opt history_flags[] = {
    {"type", BATON_OPT_STRING | CTL_FLAG, NULL, "only tasks of this type",
     offsetof(struct history_opts, type), 0, 0},
    {"queue", BATON_OPT_STRING | CTL_FLAG, NULL, "only tasks of this queue",
     offsetof(struct history_opts, queue), 0, 0},
    {"state", BATON_OPT_STRING | CTL_FLAG, NULL,
     "only tasks now in this state (" BATON_STATE_LIST_TEXT ")",
     offsetof(struct history_opts, state), 0, 0},
    {"event", BATON_OPT_STRING | CTL_FLAG, NULL,
     "only tasks that had this event (" BATON_EVENT_LIST_TEXT ")",
     offsetof(struct history_opts, event), 0, 0},
    {"since", BATON_OPT_STRING | CTL_FLAG, NULL,
     "only tasks submitted in the last DURATION (30m, 12h, 7d) or since an RFC 3339 TIME",
     offsetof(struct history_opts, since), 0, 0},
    {"limit", BATON_OPT_INT | CTL_FLAG, NULL, "at most this many tasks (default 50)",
     offsetof(struct history_opts, limit), 1, 100000},
};

static const struct ctl_usage history_usage = {
    COMMAND,
    "history [--type T] [--queue Q] [--state S] [--event E] [--since DURATION|RFC3339] "
    "[--limit N]",
    "Lists tasks from the PostgreSQL history (baton.tasks), newest submitted\n"
    "first. Needs --pg-dsn. Live tasks appear as far as the history writer has\n"
    "copied their events; use `status ID` for the live state.",
    history_flags,
    sizeof history_flags / sizeof history_flags[0],
    0,
    0};

enum {
    H_QUEUE,
    H_ID,
    H_TYPE,
    H_STATE,
    H_PRIORITY,
    H_ATTEMPTS,
    H_MAX_ATTEMPTS,
    H_SUBMITTED,
    H_FIRST_STARTED,
    H_FINISHED,
    H_WORKER,
    H_ERROR,
    H_COLUMNS
};

/* $7 (--event) matches tasks with at least one such event: the events'
 * primary key (queue, task_id, seq) finds a task's events directly. */
// clang-format off
static const char HISTORY_SQL[] =
    "SELECT queue, id, type, state, priority, attempts, max_attempts, "
    CTL_SQL_MS("submitted_at") ", " CTL_SQL_MS("first_started_at") ", "
    CTL_SQL_MS("finished_at") ", last_worker, last_error"
    " FROM baton.tasks t"
    " WHERE ($1::text IS NULL OR type = $1)"
    " AND ($2::text IS NULL OR queue = $2)"
    " AND ($3::text IS NULL OR state = $3)"
    " AND ($4::bigint IS NULL OR submitted_at >= now() - $4::bigint * interval '1 millisecond')"
    " AND ($5::bigint IS NULL OR submitted_at >= to_timestamp($5::bigint / 1000.0))"
    " AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM baton.task_events e"
    "      WHERE e.queue = t.queue AND e.task_id = t.id AND e.event = $7))"
    " ORDER BY submitted_at DESC, queue, id LIMIT $6::bigint";
// clang-format on

int ctl_cmd_history(struct ctl_config *config, int argc, char **argv) {
    struct history_opts opts = {NULL, NULL, NULL, NULL, NULL, 50};
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &history_usage, &opts, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    if ((rc = ctl_check_queue_name(COMMAND, opts.queue)))
        return rc;
    if (opts.type && !baton_task_name_valid(opts.type)) {
        ctl_error(COMMAND, "--type: '%s' is not a valid type name", opts.type);
        return CTL_EXIT_USAGE;
    }
    baton_state_t state;
    baton_event_t event;
    char names[256];
    if (opts.state && baton_state_parse(opts.state, &state) != 0) {
        /* "failed", "claimed"...: a name the history knows, but as an event. */
        int is_event = baton_event_parse(opts.state, &event) == 0;
        ctl_error(COMMAND, "--state: unknown state '%s'%s%s%s (states: %s)", opts.state,
                  is_event ? ": it is an event; use --event " : "", is_event ? opts.state : "",
                  is_event ? " for tasks that had it" : "", baton_state_names(names, sizeof names));
        return CTL_EXIT_USAGE;
    }
    if (opts.event && baton_event_parse(opts.event, &event) != 0) {
        ctl_error(COMMAND, "--event: unknown event '%s' (events: %s)", opts.event,
                  baton_event_names(names, sizeof names));
        return CTL_EXIT_USAGE;
    }
    char ago[24], since[24], limit[24], errstr[512];
    const char *ago_param = NULL, *since_param = NULL;
    if (opts.since) {
        int64_t ms;
        if (baton_duration_parse(opts.since, 0, &ms) == 0) {
            snprintf(ago, sizeof ago, "%" PRId64, ms);
            ago_param = ago;
        } else if (baton_time_parse_rfc3339(opts.since, &ms, errstr, sizeof errstr) == BATON_OK) {
            snprintf(since, sizeof since, "%" PRId64, ms);
            since_param = since;
        } else {
            ctl_error(COMMAND,
                      "--since: expected a duration (30m, 12h, 7d) or an RFC 3339 time, got '%s'",
                      opts.since);
            return CTL_EXIT_USAGE;
        }
    }
    snprintf(limit, sizeof limit, "%" PRId64, opts.limit);

    PGconn *pg = NULL;
    if (ctl_pg_open(config, &pg, errstr, sizeof errstr)) {
        ctl_error(COMMAND, "%s", errstr);
        return CTL_EXIT_FAIL;
    }
    const char *params[7] = {opts.type,   opts.queue, opts.state, ago_param,
                             since_param, limit,      opts.event};
    PGresult *res = PQexecParams(pg, HISTORY_SQL, 7, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        baton_pg_error(pg, res, "PostgreSQL", errstr, sizeof errstr);
        ctl_error(COMMAND, "%s", errstr);
        PQclear(res);
        PQfinish(pg);
        return CTL_EXIT_FAIL;
    }
    int rows = PQntuples(res);
    if (config->json) {
        json_t *tasks = json_array();
        for (int i = 0; i < rows; i++) {
            json_t *t = json_object();
            json_object_set_new(t, "queue", ctl_pg_json(res, i, H_QUEUE, CTL_PG_TEXT));
            json_object_set_new(t, "id", ctl_pg_json(res, i, H_ID, CTL_PG_TEXT));
            json_object_set_new(t, "type", ctl_pg_json(res, i, H_TYPE, CTL_PG_TEXT));
            json_object_set_new(t, "state", ctl_pg_json(res, i, H_STATE, CTL_PG_TEXT));
            json_object_set_new(t, "priority", ctl_pg_json(res, i, H_PRIORITY, CTL_PG_INT));
            json_object_set_new(t, "attempts", ctl_pg_json(res, i, H_ATTEMPTS, CTL_PG_INT));
            json_object_set_new(t, "max_attempts", ctl_pg_json(res, i, H_MAX_ATTEMPTS, CTL_PG_INT));
            json_object_set_new(t, "submitted_at", ctl_pg_json(res, i, H_SUBMITTED, CTL_PG_TIME));
            json_object_set_new(t, "first_started_at",
                                ctl_pg_json(res, i, H_FIRST_STARTED, CTL_PG_TIME));
            json_object_set_new(t, "finished_at", ctl_pg_json(res, i, H_FINISHED, CTL_PG_TIME));
            json_object_set_new(t, "last_worker", ctl_pg_json(res, i, H_WORKER, CTL_PG_TEXT));
            json_object_set_new(t, "last_error", ctl_pg_json(res, i, H_ERROR, CTL_PG_TEXT));
            json_array_append_new(tasks, t);
        }
        json_t *doc = json_object();
        json_object_set_new(doc, "count", json_integer(rows));
        json_object_set_new(doc, "tasks", tasks);
        ctl_json_print(doc);
    } else {
        static const char *const headers[] = {"SUBMITTED", "QUEUE",    "ID",       "TYPE",
                                              "STATE",     "ATTEMPTS", "FINISHED", "ERROR"};
        struct ctl_table *t = ctl_table_new(8, headers);
        for (int i = 0; i < rows; i++) {
            char submitted[BATON_RFC3339_BUFSZ], finished[BATON_RFC3339_BUFSZ], attempts[48];
            snprintf(attempts, sizeof attempts, "%s/%s", PQgetvalue(res, i, H_ATTEMPTS),
                     PQgetvalue(res, i, H_MAX_ATTEMPTS));
            char error[81];
            const char *err_text = ctl_pg_text(res, i, H_ERROR);
            if (err_text) {
                snprintf(error, sizeof error, "%s", err_text);
                for (char *p = error; *p; p++)
                    if (*p == '\n' || *p == '\t')
                        *p = ' ';
            }
            const char *cells[8] = {ctl_time_text(ctl_pg_int(res, i, H_SUBMITTED), submitted),
                                    PQgetvalue(res, i, H_QUEUE),
                                    PQgetvalue(res, i, H_ID),
                                    PQgetvalue(res, i, H_TYPE),
                                    PQgetvalue(res, i, H_STATE),
                                    attempts,
                                    ctl_time_text(ctl_pg_int(res, i, H_FINISHED), finished),
                                    err_text ? error : NULL};
            ctl_table_row(t, cells);
        }
        ctl_table_print(t, stdout);
        ctl_table_free(t);
        printf("(%d task%s)\n", rows, rows == 1 ? "" : "s");
    }
    PQclear(res);
    PQfinish(pg);
    return CTL_EXIT_OK;
}
