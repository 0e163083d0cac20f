/*
 * test_migrate.c - common/migrate.c against the live PostgreSQL of the local
 * stack (BATON_PG_DSN). Each test works in a database of its own, created
 * here, so the tests are independent of each other and of other suites.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate.h"
#include "pg.h"

static const char *base_dsn(void) {
    const char *dsn = getenv("BATON_PG_DSN");
    ck_assert_msg(dsn != NULL, "BATON_PG_DSN not set (run under ctest with the stack)");
    return dsn;
}

/* Connects to database `db` on the stack's server. Caller PQfinish()es. */
static PGconn *connect_db(const char *db) {
    const char *keys[] = {"dbname", "dbname", NULL};
    const char *values[] = {base_dsn(), db, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connect %s: %s", db, PQerrorMessage(conn));
    return conn;
}

/* Creates a fresh, uniquely named database and writes its name into `db`. */
static void fresh_db(char *db, size_t size) {
    static int counter;
    snprintf(db, size, "migrate_test_%ld_%d", (long)getpid(), ++counter);
    PGconn *admin = connect_db("baton");
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db);
    PQclear(PQexec(admin, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    PGresult *res = PQexec(admin, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(admin));
    PQclear(res);
    PQfinish(admin);
}

/* Runs a query that returns one integer. */
static long query_long(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(conn));
    long v = atol(PQgetvalue(res, 0, 0)); // NOLINT(cert-err34-c): PostgreSQL's text of a count
    PQclear(res);
    return v;
}

START_TEST(test_applies_once) {
    char db[64], err[512];
    fresh_db(db, sizeof db);
    PGconn *conn = connect_db(db);
    struct baton_migrate_result r;
    ck_assert_msg(baton_migrations_count >= 1, "no migrations embedded");
    ck_assert_int_eq(
        baton_migrate(conn, baton_migrations, baton_migrations_count, &r, err, sizeof err),
        BATON_OK);
    ck_assert_int_eq(r.applied, (int)baton_migrations_count);
    ck_assert_int_eq(r.already, 0);
    ck_assert_int_ge(r.latest, 1);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.schema_migrations"),
                     (long)baton_migrations_count);
    /* The history tables exist and take rows. */
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM information_schema.tables "
                                      "WHERE table_schema = 'baton' AND table_name IN "
                                      "('tasks', 'task_events', 'rejections')"),
                     3);

    /* A second run changes nothing. */
    long before = query_long(conn, "SELECT count(*) FROM pg_class");
    ck_assert_int_eq(
        baton_migrate(conn, baton_migrations, baton_migrations_count, &r, err, sizeof err),
        BATON_OK);
    ck_assert_int_eq(r.applied, 0);
    ck_assert_int_eq(r.already, (int)baton_migrations_count);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM pg_class"), before);
    PQfinish(conn);
}
END_TEST

struct racer {
    const char *db;
    baton_err_t err;
    struct baton_migrate_result result;
    char errstr[512];
};

static void *race(void *arg) {
    struct racer *r = arg;
    PGconn *conn = connect_db(r->db);
    r->err = baton_migrate(conn, baton_migrations, baton_migrations_count, &r->result, r->errstr,
                           sizeof r->errstr);
    PQfinish(conn);
    return NULL;
}

/* Runs statements that return nothing. */
static void exec_ok(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
}

/* Migration 0005 makes the history tables partitioned: the rows of the
 * tables of 0001-0004 are carried over, into partitions of their day, and
 * the views read them. */
START_TEST(test_0005_carries_rows_over) {
    char db[64], err[512];
    fresh_db(db, sizeof db);
    PGconn *conn = connect_db(db);
    size_t before_0005 = 0;
    while (before_0005 < baton_migrations_count &&
           strncmp(baton_migrations[before_0005].name, "0005", 4) < 0)
        before_0005++;
    ck_assert_int_eq(before_0005, 4);
    ck_assert_int_eq(baton_migrate(conn, baton_migrations, before_0005, NULL, err, sizeof err),
                     BATON_OK);
    /* Two days of history, the old way: 3 tasks, their events, a rejection. */
    exec_ok(conn,
            "INSERT INTO baton.tasks (queue, id, type, priority, state, attempts, max_attempts,"
            " timeout_ms, submitted_at, first_started_at, finished_at, updated_at, last_seq,"
            " payload, meta, last_worker)"
            " SELECT 'q', 't' || i, 'noop', i, 'succeeded', 1, 3, 1000,"
            " timestamptz '2026-01-01 10:00:00Z' + i * interval '1 day',"
            " timestamptz '2026-01-01 10:00:01Z' + i * interval '1 day',"
            " timestamptz '2026-01-01 10:00:02Z' + i * interval '1 day',"
            " timestamptz '2026-01-01 10:00:02Z' + i * interval '1 day', 3, '{\"n\": 1}',"
            " '{}', 'w' FROM generate_series(0, 2) i;"
            "INSERT INTO baton.task_events (queue, task_id, seq, at, event, from_state, to_state,"
            " attempt, worker_id, detail)"
            " SELECT 'q', 't' || i, s, timestamptz '2026-01-01 10:00:00Z' + i * interval '1 day'"
            " + s * interval '1 s', (ARRAY['submitted', 'claimed', 'succeeded'])[s],"
            " (ARRAY[NULL, 'queued', 'running'])[s], (ARRAY['queued', 'running', 'succeeded'])[s],"
            " s - 1, 'w', '{}' FROM generate_series(0, 2) i, generate_series(1, 3) s;"
            "INSERT INTO baton.rejections (kafka_topic, kafka_partition, kafka_offset, at, reason,"
            " detail) VALUES ('t', 0, 1, now(), 'invalid_json', 'x')");
    struct baton_migrate_result r;
    ck_assert_int_eq(
        baton_migrate(conn, baton_migrations, baton_migrations_count, &r, err, sizeof err),
        BATON_OK);
    ck_assert_int_eq(r.applied, (int)(baton_migrations_count - before_0005));
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.tasks"), 3);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.task_events"), 9);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.rejections"), 1);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.tasks WHERE id = 't1'"
                                      " AND priority = 1 AND payload = '{\"n\": 1}'"
                                      " AND last_seq = 3 AND last_worker = 'w'"),
                     1);
    /* The 3 days, each a partition of each table; the old tables gone. */
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.history_partitions()"
                                      " WHERE parent IN ('tasks', 'task_events')"),
                     6);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.tasks_20260102_0000"), 1);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM pg_class WHERE relname IN"
                                      " ('tasks_0004', 'task_events_0004', 'event_staging')"),
                     0);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.attempts"), 3);
    ck_assert_int_eq(query_long(conn, "SELECT tasks FROM baton.latency_by_type"), 3);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.task_latest"), 3);
    PQfinish(conn);
}
END_TEST

START_TEST(test_concurrent_runs) {
    char db[64];
    fresh_db(db, sizeof db);
    enum { RACERS = 4 };
    struct racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.db = db};
        pthread_create(&threads[i], NULL, race, &racers[i]);
    }
    int applied = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        ck_assert_msg(racers[i].err == BATON_OK, "racer %d: %s", i, racers[i].errstr);
        applied += racers[i].result.applied;
    }
    /* Each file applied exactly once across all racers. */
    ck_assert_int_eq(applied, (int)baton_migrations_count);
    PGconn *conn = connect_db(db);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM baton.schema_migrations"),
                     (long)baton_migrations_count);
    ck_assert_int_eq(query_long(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'baton'"),
                     1);
    PQfinish(conn);
}
END_TEST

START_TEST(test_edited_migration_refused) {
    char db[64], err[512];
    fresh_db(db, sizeof db);
    PGconn *conn = connect_db(db);
    static const char v1[] = "CREATE TABLE a (x integer);";
    static const char v1_edited[] = "CREATE TABLE a (x bigint);";
    struct baton_embedded_file files[] = {{"0001_a.sql", v1, sizeof v1 - 1}};
    ck_assert_int_eq(baton_migrate(conn, files, 1, NULL, err, sizeof err), BATON_OK);
    files[0].data = v1_edited;
    files[0].len = sizeof v1_edited - 1;
    ck_assert_int_eq(baton_migrate(conn, files, 1, NULL, err, sizeof err), BATON_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(err, "0001_a.sql was changed after it was applied"));
    PQfinish(conn);
}
END_TEST

START_TEST(test_failing_file_rolls_back) {
    char db[64], err[512];
    fresh_db(db, sizeof db);
    PGconn *conn = connect_db(db);
    static const char ok[] = "CREATE TABLE a (x integer);";
    static const char bad[] = "CREATE TABLE b (x integer); SELECT no_such_function();";
    static const char after[] = "CREATE TABLE c (x integer);";
    struct baton_embedded_file files[] = {{"0001_a.sql", ok, sizeof ok - 1},
                                          {"0002_b.sql", bad, sizeof bad - 1},
                                          {"0003_c.sql", after, sizeof after - 1}};
    struct baton_migrate_result r;
    ck_assert_int_eq(baton_migrate(conn, files, 3, &r, err, sizeof err), BATON_ERR_PG);
    ck_assert_msg(strstr(err, "0002_b.sql") && strstr(err, "no_such_function"), "%s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_int_eq(r.applied, 1);
    /* Nothing of the failed file or after it: no half-written schema. */
    ck_assert_int_eq(
        query_long(conn, "SELECT count(*) FROM pg_tables WHERE tablename IN ('b', 'c')"), 0);
    ck_assert_int_eq(query_long(conn, "SELECT max(version) FROM baton.schema_migrations"), 1);
    /* The lock was released: another session can migrate right away. */
    ck_assert_int_eq(
        query_long(
            conn,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"),
        0);
    PQfinish(conn);
}
END_TEST

START_TEST(test_bad_file_name) {
    char db[64], err[512];
    fresh_db(db, sizeof db);
    PGconn *conn = connect_db(db);
    static const char sql[] = "SELECT 1;";
    struct baton_embedded_file files[] = {{"1_short.sql", sql, sizeof sql - 1}};
    ck_assert_int_eq(baton_migrate(conn, files, 1, NULL, err, sizeof err), BATON_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "1_short.sql"));
    PQfinish(conn);
}
END_TEST

START_TEST(test_unreachable_server) {
    char err[512];
    PGconn *conn = NULL;
    /* Port 1 on loopback: nothing listens there; connect fails at once. */
    ck_assert_int_eq(
        baton_pg_connect("postgresql://baton@127.0.0.1:1/baton", "test", &conn, err, sizeof err),
        BATON_ERR_PG);
    ck_assert_ptr_null(conn);
    ck_assert_ptr_nonnull(strstr(err, "PostgreSQL connect"));
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_int_eq(baton_pg_connect("", "test", &conn, err, sizeof err), BATON_ERR_CONFIG);
}
END_TEST

static Suite *migrate_suite(void) {
    Suite *s = suite_create("migrate");
    TCase *core = tcase_create("core");
    tcase_set_timeout(core, 120);
    tcase_add_test(core, test_applies_once);
    tcase_add_test(core, test_concurrent_runs);
    tcase_add_test(core, test_0005_carries_rows_over);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_set_timeout(errors, 120);
    tcase_add_test(errors, test_edited_migration_refused);
    tcase_add_test(errors, test_failing_file_rolls_back);
    tcase_add_test(errors, test_bad_file_name);
    tcase_add_test(errors, test_unreachable_server);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(migrate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
