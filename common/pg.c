/*
 * pg.c - PostgreSQL connection helpers (see pg.h).
 *
 * libpq messages end with a newline and sometimes span lines (DETAIL, HINT);
 * baton's logs and CLI errors are one line each, so messages are folded here.
 */
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Server notices ("relation already exists, skipping") are routine: they go
 * to the debug log instead of libpq's default of raw lines on stderr. */
static void log_notice(void *arg, const char *message) {
    (void)arg;
    BATON_DEBUG("pg", "%.*s", (int)strcspn(message, "\n"), message);
}

/* Copies `msg` into errstr after `what: `, turning newlines into spaces. */
static void fold_message(const char *what, const char *msg, char *errstr, size_t errstr_size) {
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

baton_err_t baton_pg_error(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                           size_t errstr_size) {
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    fold_message(what, msg, errstr, errstr_size);
    return BATON_ERR_PG;
}

/* Overwrites each occurrence of `secret` in `text` (NUL-ended) with '*'. */
static void mask(char *text, const char *secret) {
    size_t len = secret ? strlen(secret) : 0;
    if (len == 0)
        return;
    for (char *p = strstr(text, secret); p; p = strstr(p + len, secret))
        memset(p, '*', len);
}

/* Overwrites the text between each pair of double quotes with '*': libpq's
 * parse errors quote the token they stopped at, or the whole URI, and
 * either may hold the password. */
static void mask_quoted(char *text) {
    for (char *open = strchr(text, '"'); open; open = strchr(open + 1, '"')) {
        char *close = strchr(open + 1, '"');
        if (!close)
            break;
        memset(open + 1, '*', (size_t)(close - open - 1));
        open = close;
    }
}

/*
 * Checks that a DSN libpq would parse as a connection string or URI (not a
 * bare database name) parses, and reports the password it holds (caller
 * frees *password with free(); NULL when none). The error never shows
 * the DSN's text.
 */
static baton_err_t parse_dsn(const char *dsn, char **password, char *errstr, size_t errstr_size) {
    *password = NULL;
    int conninfo = strchr(dsn, '=') || strncmp(dsn, "postgresql://", 13) == 0 ||
                   strncmp(dsn, "postgres://", 11) == 0;
    if (!conninfo)
        return BATON_OK;
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &why);
    if (!opts) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s", why ? why : "out of memory");
        PQfreemem(why);
        mask_quoted(reason);
        fold_message("PostgreSQL DSN is not valid (quoted text hidden)", reason, errstr,
                     errstr_size);
        return BATON_ERR_CONFIG;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
            *password = strdup(o->val); /* NULL on ENOMEM: then nothing to mask */
            break;                      /* one entry per keyword */
        }
    PQconninfoFree(opts);
    return BATON_OK;
}

baton_err_t baton_pg_connect(const char *dsn, const char *application_name, PGconn **out,
                             char *errstr, size_t errstr_size) {
    /* Later keywords override earlier ones, and the expanded dsn comes last,
     * so our defaults apply only where the user's DSN is silent. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *values[] = {BATON_PG_CONNECT_TIMEOUT_S, application_name, dsn, NULL};
    *out = NULL;
    if (!dsn || !*dsn)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "no PostgreSQL DSN given (set BATON_PG_DSN or --pg-dsn)");
    char *password = NULL;
    baton_err_t err = parse_dsn(dsn, &password, errstr, errstr_size);
    if (err)
        return err;
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (!conn)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    else if (PQstatus(conn) != CONNECTION_OK) {
        err = baton_pg_error(conn, NULL, "PostgreSQL connect", errstr, errstr_size);
        /* libpq does not quote a password once the DSN parsed; this keeps
         * it so whatever a future message says. */
        if (errstr && errstr_size)
            mask(errstr, password);
        PQfinish(conn);
    } else {
        PQsetNoticeProcessor(conn, log_notice, NULL);
        *out = conn;
    }
    free(password);
    return err;
}

baton_err_t baton_pg_exec(PGconn *conn, const char *sql, char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    baton_err_t err = BATON_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        err = baton_pg_error(conn, res, "PostgreSQL", errstr, errstr_size);
    PQclear(res);
    return err;
}
