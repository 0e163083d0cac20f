/*
 * pg.c - PostgreSQL connection helpers (see pg.h).
 *
 * libpq messages end with a newline and sometimes span lines (DETAIL, HINT);
 * baton's logs and CLI errors are one line each, so messages are folded here.
 */
#include "pg.h"

#include <string.h>

#include "log.h"

/* Server notices ("relation already exists, skipping") are routine: they go
 * to the debug log instead of libpq's default of raw lines on stderr. */
static void log_notice(void *arg, const char *message) {
    (void)arg;
    BATON_DEBUG("pg", "%.*s", (int)strcspn(message, "\n"), message);
}

/* Copies `msg` into errstr after `what: `, turning newlines into spaces. */
static void fold_message(const char *what, const char *msg, char *errstr,
                         size_t errstr_size) {
    if (!errstr || errstr_size == 0)
        return;
    int n = snprintf(errstr, errstr_size, "%s: %s", what, msg && *msg ? msg : "unknown error");
    size_t len = n < 0 ? 0 : ((size_t)n < errstr_size ? (size_t)n : errstr_size - 1);
    while (len > 0 && (errstr[len - 1] == '\n' || errstr[len - 1] == ' '))
        errstr[--len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (errstr[i] == '\n')
            errstr[i] = ' ';
}

baton_err_t baton_pg_error(PGconn *conn, const PGresult *res, const char *what,
                           char *errstr, size_t errstr_size) {
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    fold_message(what, msg, errstr, errstr_size);
    return BATON_ERR_PG;
}

baton_err_t baton_pg_connect(const char *dsn, const char *application_name,
                             PGconn **out, char *errstr, size_t errstr_size) {
    /* Later keywords override earlier ones, and the expanded dsn comes last,
     * so our defaults apply only where the user's DSN is silent. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *values[] = {BATON_PG_CONNECT_TIMEOUT_S, application_name, dsn, NULL};
    *out = NULL;
    if (!dsn || !*dsn)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "no PostgreSQL DSN given (set BATON_PG_DSN or --pg-dsn)");
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (!conn)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
        baton_pg_error(conn, NULL, "PostgreSQL connect", errstr, errstr_size);
        PQfinish(conn);
        return BATON_ERR_PG;
    }
    PQsetNoticeProcessor(conn, log_notice, NULL);
    *out = conn;
    return BATON_OK;
}

baton_err_t baton_pg_exec(PGconn *conn, const char *sql, char *errstr,
                          size_t errstr_size) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    baton_err_t err = BATON_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        err = baton_pg_error(conn, res, "PostgreSQL", errstr, errstr_size);
    PQclear(res);
    return err;
}
