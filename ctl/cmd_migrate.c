/*
 * cmd_migrate.c - `batonctl migrate`: applies the migrations compiled into
 * this binary (the files of migrations/) to the database of --pg-dsn. Several
 * services may run it at once at start-up; see common/migrate.h for why that
 * is safe.
 */
#include <stdio.h>

#include "ctl.h"
#include "migrate.h"
#include "pg.h"

static const struct ctl_usage migrate_usage = {
    "migrate",
    "migrate",
    "Applies the PostgreSQL migrations compiled into batonctl that the database\n"
    "of --pg-dsn lacks, in order. Safe to run from several services at once\n"
    "(an advisory lock serialises them).",
    NULL,
    0,
    0,
    0};

int ctl_cmd_migrate(struct ctl_config *config, int argc, char **argv) {
    int nargs = 0;
    int rc = ctl_parse_args(config, &migrate_usage, NULL, argc, argv, NULL, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    char errstr[1024];
    PGconn *conn = NULL;
    if (baton_pg_connect(config->pg_dsn, "batonctl migrate", &conn, errstr, sizeof errstr)) {
        fprintf(stderr, "batonctl migrate: %s\n", errstr);
        return CTL_EXIT_FAIL;
    }
    struct baton_migrate_result result;
    baton_err_t err = baton_migrate(conn, baton_migrations, baton_migrations_count, &result, errstr,
                                    sizeof errstr);
    PQfinish(conn);
    if (err) {
        fprintf(stderr, "batonctl migrate: %s\n", errstr);
        return CTL_EXIT_FAIL;
    }
    if (config->json)
        printf("{\"applied\":%d,\"already_applied\":%d,\"schema_version\":%d}\n", result.applied,
               result.already, result.latest);
    else if (result.applied == 0)
        printf("schema is up to date (version %04d, %d migrations)\n", result.latest,
               result.already);
    else
        printf("applied %d migration%s, schema version %04d\n", result.applied,
               result.applied == 1 ? "" : "s", result.latest);
    return CTL_EXIT_OK;
}
