/*
 * pg.h - PostgreSQL connection helpers.
 *
 * Wraps libpq's connect so that every baton binary connects the same way (a
 * bounded connect timeout, application_name set, errors as baton_err_t with
 * libpq's message in errstr) and so that libpq's types stay behind this
 * module and the ones that use it.
 */
#ifndef BATON_PG_H
#define BATON_PG_H

#include <libpq-fe.h>
#include <stddef.h>

#include "error.h"

/* Connect timeout applied unless the DSN sets connect_timeout itself. */
#define BATON_PG_CONNECT_TIMEOUT_S "10"

/*
 * Connects to `dsn` (a libpq connection string or URI). `application_name`
 * shows in pg_stat_activity. On success *out is a connection the caller
 * closes with PQfinish(). Returns BATON_ERR_PG with libpq's reason (one line)
 * in errstr when the server is unreachable or refuses; BATON_ERR_CONFIG for a
 * DSN that does not parse. No message shows the DSN's password: libpq's
 * parse errors quote the DSN, so their quoted text is hidden.
 */
baton_err_t baton_pg_connect(const char *dsn, const char *application_name, PGconn **out,
                             char *errstr, size_t errstr_size);

/*
 * Runs `sql` (no parameters; may hold several statements) and checks that it
 * succeeded. Returns BATON_ERR_PG with the server's message in errstr.
 */
baton_err_t baton_pg_exec(PGconn *conn, const char *sql, char *errstr, size_t errstr_size);

/*
 * Copies libpq's last message for `conn` (or `res` when not NULL) into
 * errstr as one line, prefixed with `what`, and returns BATON_ERR_PG.
 */
baton_err_t baton_pg_error(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                           size_t errstr_size);

#endif
