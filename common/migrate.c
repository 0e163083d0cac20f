/*
 * migrate.c - the migration runner (see migrate.h).
 *
 * Why an advisory lock rather than relying on transactions alone: two
 * services starting at once would both see a file as pending and one would
 * fail on "relation already exists". Holding pg_advisory_lock for the whole
 * run makes the second wait, then find nothing to do. The bookkeeping table
 * is created under the same lock for the same reason.
 */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

static const char BOOKKEEPING_SQL[] = "CREATE SCHEMA IF NOT EXISTS baton;"
                                      "CREATE TABLE IF NOT EXISTS baton.schema_migrations ("
                                      "  version integer PRIMARY KEY,"
                                      "  name text NOT NULL,"
                                      "  checksum text NOT NULL,"
                                      "  applied_at timestamptz NOT NULL DEFAULT now())";

/* Parses the leading digits of "0001_name.sql"; -1 if the name is malformed. */
static int file_version(const char *name) {
    int version = 0, digits = 0;
    for (; name[digits] >= '0' && name[digits] <= '9'; digits++)
        version = version * 10 + (name[digits] - '0');
    if (digits != 4 || name[digits] != '_')
        return -1;
    size_t len = strlen(name);
    if (len < 9 || strcmp(name + len - 4, ".sql") != 0)
        return -1;
    return version;
}

/*
 * Looks up `version`: returns 1 and sets *same when recorded (*same = whether
 * the stored checksum equals md5 of `text`), 0 when pending, -1 on error.
 */
static int recorded(PGconn *conn, int version, const char *text, int *same, char *errstr,
                    size_t errstr_size) {
    char vbuf[16];
    snprintf(vbuf, sizeof vbuf, "%d", version);
    const char *params[2] = {vbuf, text};
    PGresult *res = PQexecParams(conn,
                                 "SELECT checksum = md5($2::text) FROM baton.schema_migrations"
                                 " WHERE version = $1::integer",
                                 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        baton_pg_error(conn, res, "reading baton.schema_migrations", errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    int found = PQntuples(res) == 1;
    if (found)
        *same = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return found;
}

/* Applies one file and its bookkeeping row in one transaction. */
static baton_err_t apply(PGconn *conn, const struct baton_embedded_file *file, int version,
                         char *errstr, size_t errstr_size) {
    char what[160];
    snprintf(what, sizeof what, "migration %s", file->name);
    baton_err_t err = baton_pg_exec(conn, "BEGIN", errstr, errstr_size);
    if (err)
        return err;
    PGresult *res = PQexec(conn, file->data);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        baton_pg_error(conn, res, what, errstr, errstr_size);
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return BATON_ERR_PG;
    }
    PQclear(res);

    char vbuf[16];
    snprintf(vbuf, sizeof vbuf, "%d", version);
    const char *params[3] = {vbuf, file->name, file->data};
    res = PQexecParams(conn,
                       "INSERT INTO baton.schema_migrations (version, name, checksum)"
                       " VALUES ($1::integer, $2, md5($3::text))",
                       3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        baton_pg_error(conn, res, what, errstr, errstr_size);
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return BATON_ERR_PG;
    }
    PQclear(res);
    res = PQexec(conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        baton_pg_error(conn, res, what, errstr, errstr_size);
        PQclear(res);
        return BATON_ERR_PG;
    }
    PQclear(res);
    return BATON_OK;
}

baton_err_t baton_migrate(PGconn *conn, const struct baton_embedded_file *files, size_t count,
                          struct baton_migrate_result *result, char *errstr, size_t errstr_size) {
    struct baton_migrate_result r = {0, 0, 0};
    char lock_sql[96];
    snprintf(lock_sql, sizeof lock_sql, "SELECT pg_advisory_lock(%lld)", BATON_MIGRATE_LOCK_KEY);
    baton_err_t err = baton_pg_exec(conn, lock_sql, errstr, errstr_size);
    if (err)
        return err;
    err = baton_pg_exec(conn, BOOKKEEPING_SQL, errstr, errstr_size);

    int previous = -1;
    for (size_t i = 0; err == BATON_OK && i < count; i++) {
        int version = file_version(files[i].name);
        if (version < 0) {
            err = baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                               "migration file '%s' is not named NNNN_name.sql", files[i].name);
            break;
        }
        if (version == previous) {
            err = baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                               "two migration files have version %04d", version);
            break;
        }
        previous = version;
        int same = 0;
        int found = recorded(conn, version, files[i].data, &same, errstr, errstr_size);
        if (found < 0) {
            err = BATON_ERR_PG;
        } else if (found && !same) {
            err = baton_seterr(errstr, errstr_size, BATON_ERR_STATE,
                               "migration %s was changed after it was applied; applied "
                               "migrations are never edited, add a new file instead",
                               files[i].name);
        } else if (found) {
            r.already++;
            r.latest = version;
        } else if ((err = apply(conn, &files[i], version, errstr, errstr_size)) == BATON_OK) {
            r.applied++;
            r.latest = version;
        }
    }

    char unlock_sql[96];
    snprintf(unlock_sql, sizeof unlock_sql, "SELECT pg_advisory_unlock(%lld)",
             BATON_MIGRATE_LOCK_KEY);
    char ignored[256];
    baton_pg_exec(conn, unlock_sql, ignored, sizeof ignored);
    if (result)
        *result = r;
    return err;
}
