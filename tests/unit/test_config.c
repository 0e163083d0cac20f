/*
 * test_config.c - common/config.c: defaults < environment < flags, typed
 * parsing with clear errors, help and env names from the same table.
 */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

struct test_config {
    char *redis_url;
    int64_t batch_size;
    int verbose;
    double memory_fraction;
    char *unset;
    char *commands;
};

static const struct baton_opt table[] = {
    {"redis-url", BATON_OPT_STRING, "redis://127.0.0.1:6379/0", "Redis URL",
     offsetof(struct test_config, redis_url), 0, 0},
    {"batch-size", BATON_OPT_INT, "500", "messages per batch",
     offsetof(struct test_config, batch_size), 1, 100000},
    {"verbose", BATON_OPT_BOOL, "false", "more output", offsetof(struct test_config, verbose), 0,
     0},
    {"memory-fraction", BATON_OPT_DOUBLE, "0.9", "pause above this fraction",
     offsetof(struct test_config, memory_fraction), 0.0, 1.0},
    {"unset", BATON_OPT_STRING, NULL, "no default", offsetof(struct test_config, unset), 0, 0},
    {"command", BATON_OPT_LIST, NULL, "TYPE=PROGRAM", offsetof(struct test_config, commands), 0, 0},
};
#define N (sizeof table / sizeof table[0])

static void clear_env(void) {
    unsetenv("BATON_REDIS_URL");
    unsetenv("BATON_BATCH_SIZE");
    unsetenv("BATON_VERBOSE");
    unsetenv("BATON_MEMORY_FRACTION");
    unsetenv("BATON_UNSET");
    unsetenv("BATON_COMMAND");
}

/* Parses argv (NULL-terminated list) into *c; returns the error code. */
static baton_err_t parse(struct test_config *c, char *errstr, int *first, char **argv) {
    int argc = 0;
    while (argv[argc])
        argc++;
    return baton_config_parse(table, N, c, argc, argv, first, errstr, 256);
}

START_TEST(test_defaults) {
    clear_env();
    struct test_config c;
    char err[256];
    int first;
    char *argv[] = {"prog", NULL};
    ck_assert_int_eq(parse(&c, err, &first, argv), BATON_OK);
    ck_assert_str_eq(c.redis_url, "redis://127.0.0.1:6379/0");
    ck_assert_int_eq(c.batch_size, 500);
    ck_assert_int_eq(c.verbose, 0);
    ck_assert_double_eq(c.memory_fraction, 0.9);
    ck_assert_ptr_null(c.unset);
    ck_assert_int_eq(first, 1);
    baton_config_free(table, N, &c);
}
END_TEST

START_TEST(test_env_overrides_default) {
    clear_env();
    setenv("BATON_REDIS_URL", "redis://env:1/0", 1);
    setenv("BATON_BATCH_SIZE", "42", 1);
    setenv("BATON_VERBOSE", "yes", 1);
    struct test_config c;
    char err[256];
    char *argv[] = {"prog", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv), BATON_OK);
    ck_assert_str_eq(c.redis_url, "redis://env:1/0");
    ck_assert_int_eq(c.batch_size, 42);
    ck_assert_int_eq(c.verbose, 1);
    baton_config_free(table, N, &c);
    clear_env();
}
END_TEST

START_TEST(test_flag_overrides_env) {
    clear_env();
    setenv("BATON_REDIS_URL", "redis://env:1/0", 1);
    setenv("BATON_BATCH_SIZE", "42", 1);
    struct test_config c;
    char err[256];
    int first;
    char *argv[] = {"prog",      "--redis-url", "redis://flag:2/0", "--batch-size=7",
                    "--verbose", "sub",         "--not-parsed",     NULL};
    ck_assert_int_eq(parse(&c, err, &first, argv), BATON_OK);
    ck_assert_str_eq(c.redis_url, "redis://flag:2/0");
    ck_assert_int_eq(c.batch_size, 7);
    ck_assert_int_eq(c.verbose, 1);
    ck_assert_int_eq(first, 5); /* "sub": parsing stops at the subcommand */
    baton_config_free(table, N, &c);
    clear_env();
}
END_TEST

START_TEST(test_double_dash_ends_flags) {
    clear_env();
    struct test_config c;
    char err[256];
    int first;
    char *argv[] = {"prog", "--", "--verbose", NULL};
    ck_assert_int_eq(parse(&c, err, &first, argv), BATON_OK);
    ck_assert_int_eq(c.verbose, 0);
    ck_assert_int_eq(first, 2);
    baton_config_free(table, N, &c);
}
END_TEST

START_TEST(test_unknown_flag) {
    clear_env();
    struct test_config c;
    char err[256];
    char *argv[] = {"prog", "--redis-ur=x", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "unknown flag '--redis-ur' (see --help)");
    baton_config_free(table, N, &c);
}
END_TEST

START_TEST(test_bad_int_names_source) {
    clear_env();
    setenv("BATON_BATCH_SIZE", "12abc", 1);
    struct test_config c;
    char err[256];
    char *argv[] = {"prog", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "BATON_BATCH_SIZE: expected an integer, got '12abc'");
    baton_config_free(table, N, &c);
    clear_env();
}
END_TEST

START_TEST(test_int_range) {
    clear_env();
    struct test_config c;
    char err[256];
    char *argv[] = {"prog", "--batch-size", "0", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "--batch-size: 0 is out of range [1, 100000]");
    baton_config_free(table, N, &c);
    char *argv2[] = {"prog", "--batch-size", "100000", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv2), BATON_OK);
    ck_assert_int_eq(c.batch_size, 100000);
    baton_config_free(table, N, &c);
}
END_TEST

START_TEST(test_double_range_and_bool_errors) {
    clear_env();
    struct test_config c;
    char err[256];
    char *argv[] = {"prog", "--memory-fraction=1.5", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv), BATON_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "--memory-fraction"));
    baton_config_free(table, N, &c);
    char *argv2[] = {"prog", "--verbose=maybe", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv2), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "--verbose: expected true or false, got 'maybe'");
    baton_config_free(table, N, &c);
    char *argv3[] = {"prog", "--verbose=off", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv3), BATON_OK);
    ck_assert_int_eq(c.verbose, 0);
    baton_config_free(table, N, &c);
}
END_TEST

START_TEST(test_missing_value) {
    clear_env();
    struct test_config c;
    char err[256];
    char *argv[] = {"prog", "--redis-url", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "flag '--redis-url' needs a value");
    baton_config_free(table, N, &c);
}
END_TEST

START_TEST(test_help) {
    clear_env();
    struct test_config c;
    char err[256];
    char *argv[] = {"prog", "--help", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv), BATON_ERR_HELP);
    baton_config_free(table, N, &c);

    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    baton_config_help(out, "prog [options]", "Does things.", table, N);
    fclose(out);
    /* Every option shows with its flag, env var and default. */
    ck_assert_ptr_nonnull(strstr(text, "--redis-url"));
    ck_assert_ptr_nonnull(strstr(text, "BATON_REDIS_URL"));
    ck_assert_ptr_nonnull(strstr(text, "default 'redis://127.0.0.1:6379/0'"));
    ck_assert_ptr_nonnull(strstr(text, "BATON_MEMORY_FRACTION"));
    free(text);
}
END_TEST

START_TEST(test_list_repeats) {
    clear_env();
    setenv("BATON_COMMAND", "a=/bin/a\nb=/bin/b", 1);
    struct test_config c;
    char err[256];
    char *argv[] = {"prog", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv), BATON_OK);
    ck_assert_str_eq(c.commands, "a=/bin/a\nb=/bin/b");
    baton_config_free(table, N, &c);
    /* Flags replace the environment's entries, and repeat. */
    char *argv2[] = {"prog", "--command", "x=echo 1", "--command=y=echo 2", NULL};
    ck_assert_int_eq(parse(&c, err, NULL, argv2), BATON_OK);
    ck_assert_str_eq(c.commands, "x=echo 1\ny=echo 2");
    baton_config_free(table, N, &c);
    clear_env();
}
END_TEST

/* The daemons' start: -1 to go on, 0 after --help, 2 after a bad flag,
 * stray argument or log level; the log level is applied. */
START_TEST(test_config_start) {
    clear_env();
    struct test_config c;
    char *help[] = {"prog", "--help", NULL};
    ck_assert_int_eq(baton_config_start("prog", "prog", "s", table, N, &c, 2, help, &c.redis_url),
                     0);
    char *stray[] = {"prog", "extra", NULL};
    ck_assert_int_eq(baton_config_start("prog", "prog", "s", table, N, &c, 2, stray, NULL), 2);
    char *bad_level[] = {"prog", "--redis-url", "loud", NULL};
    /* redis_url stands in for a log-level field here: "loud" is no level */
    ck_assert_int_eq(
        baton_config_start("prog", "prog", "s", table, N, &c, 3, bad_level, &c.redis_url), 2);
    char *ok[] = {"prog", "--redis-url", "debug", NULL};
    ck_assert_int_eq(baton_config_start("prog", "prog", "s", table, N, &c, 3, ok, &c.redis_url),
                     -1);
    ck_assert_int_eq(baton_log_threshold, BATON_LOG_DEBUG);
    baton_log_threshold = BATON_LOG_INFO;
    baton_config_free(table, N, &c);
}
END_TEST

/* docs/configuration.md's rows: env column, type with range, default,
 * doc. */
START_TEST(test_markdown) {
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    baton_config_markdown(out, table, N);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "| flag | environment | type | default | meaning |\n"
                                       "|---|---|---|---|---|\n"
                                       "| `--redis-url` | `BATON_REDIS_URL` | text | "
                                       "`redis://127.0.0.1:6379/0` | Redis URL |\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "| `--batch-size` | `BATON_BATCH_SIZE` | integer 1 to 100000 | `500` |"));
    ck_assert_ptr_nonnull(strstr(text, "| `--verbose` | `BATON_VERBOSE` | bool | `false` |"));
    ck_assert_ptr_nonnull(strstr(text, "| number 0 to 1 | `0.9` |"));
    ck_assert_ptr_nonnull(
        strstr(text, "| `--unset` | `BATON_UNSET` | text | (none) | no default |"));
    ck_assert_ptr_nonnull(strstr(text, "| `--command` | `BATON_COMMAND` | text, repeatable |"));
    free(text);

    /* A '|' would split the cell, "<host>" would vanish as an HTML tag. */
    static const struct baton_opt odd[] = {
        {"id", BATON_OPT_STRING, "a|b", "default <host>-<pid> | none", 0, 0, 0},
        {"extra", BATON_OPT_STRING, "", "empty default", 0, 0, 0},
    };
    out = open_memstream(&text, &size);
    baton_config_markdown(out, odd, 2);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(
        text,
        "| `--id` | `BATON_ID` | text | `a\\|b` | default &lt;host&gt;-&lt;pid&gt; \\| none |"));
    ck_assert_ptr_nonnull(strstr(text, "| `--extra` | `BATON_EXTRA` | text | (empty) |"));
    free(text);
}
END_TEST

/* The hidden flag: any binary's parser prints its table and exits 0, so
 * the docs generator needs no code in the mains. Runs in a child: it exits. */
START_TEST(test_markdown_flag_exits) {
    clear_env();
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDOUT_FILENO);
        struct test_config c;
        char err[256];
        char *argv[] = {"prog", "--verbose", BATON_CONFIG_MARKDOWN_FLAG, "--batch-size", "0", NULL};
        parse(&c, err, NULL, argv);
        _exit(99); /* not reached when the flag is handled */
    }
    close(fds[1]);
    char text[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof text - 1 && (n = read(fds[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    text[len] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_ptr_nonnull(strstr(text, "| `--redis-url` | `BATON_REDIS_URL` |"));
    ck_assert_ptr_nonnull(strstr(text, "| `--command` | `BATON_COMMAND` |"));
}
END_TEST

START_TEST(test_env_name) {
    char buf[64];
    baton_config_env_name("kafka-brokers", buf, sizeof buf);
    ck_assert_str_eq(buf, "BATON_KAFKA_BROKERS");
}
END_TEST

/* ------------------------------------------------------------------ new */

/* A table with every newer feature: sections, flags-only entries, a
 * required one, durations with and without bare milliseconds, narrow
 * integer fields, borrowed strings. */
struct cli_config {
    char *url;
    int64_t lease_ms;
    int64_t older_than_ms;
    char *queue;       /* required */
    const char *label; /* borrowed */
    int json;
    int threads;
    size_t max_bytes;
};

#define CLI(field) offsetof(struct cli_config, field)
static const struct baton_opt cli[] = {
    {"url", BATON_OPT_STRING, "redis://x", "where", CLI(url), 0, 0},
    {"lease-ms", BATON_OPT_DURATION, "30s", "lease", CLI(lease_ms), 300, 86400000},
    BATON_OPT_SECTION("The run"),
    {"older-than", BATON_OPT_DURATION | BATON_OPT_NEED_UNIT | BATON_OPT_NO_ENV, NULL, "age",
     CLI(older_than_ms), 0, 0},
    {"queue", BATON_OPT_STRING | BATON_OPT_REQUIRED, NULL, "the queue", CLI(queue), 0, 0},
    {"label", BATON_OPT_STRING | BATON_OPT_NO_ENV | BATON_OPT_BORROWED, NULL, "a label", CLI(label),
     0, 0},
    {"json", BATON_OPT_BOOL | BATON_OPT_NO_ENV, "false", "JSON output", CLI(json), 0, 0},
    {"threads", BATON_OPT_INT | BATON_OPT_INT_FIELD, "4", "threads", CLI(threads), 1, 64},
    {"max-bytes", BATON_OPT_INT | BATON_OPT_SIZE_FIELD, "65536", "bytes", CLI(max_bytes), 0, 1e9},
};
#define CLI_N (sizeof cli / sizeof cli[0])

static void clear_cli_env(void) {
    unsetenv("BATON_URL");
    unsetenv("BATON_LEASE_MS");
    unsetenv("BATON_OLDER_THAN");
    unsetenv("BATON_QUEUE");
    unsetenv("BATON_LABEL");
    unsetenv("BATON_JSON");
    unsetenv("BATON_THREADS");
    unsetenv("BATON_MAX_BYTES");
}

static baton_err_t parse_cli(struct cli_config *c, char *err, char **argv) {
    int argc = 0;
    while (argv[argc])
        argc++;
    memset(c, 0, sizeof *c);
    return baton_config_parse(cli, CLI_N, c, argc, argv, NULL, err, 256);
}

START_TEST(test_duration_units) {
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {{"500ms", 500},     {"30s", 30000},   {"2m", 120000},
              {"1h", 3600000},    {"1d", 86400000}, {"1w", 604800000},
              {"1h30m", 5400000}, {"0s", 0},        {"1m500ms", 60500}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        ck_assert_msg(baton_duration_parse(ok[i].text, 0, &ms) == 0, "%s", ok[i].text);
        ck_assert_int_eq(ms, ok[i].ms);
    }
    int64_t ms = -1;
    /* A bare number is milliseconds only when allowed. */
    ck_assert_int_eq(baton_duration_parse("250", 1, &ms), 0);
    ck_assert_int_eq(ms, 250);
    ck_assert_int_eq(baton_duration_parse("250", 0, &ms), -1);
    static const char *const bad[] = {
        "", "s", "5x", "-5s", "1.5s", "1h30", "30 s", "5S", "99999999999999999999ms", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(baton_duration_parse(bad[i], 1, &ms) == -1, "'%s' accepted", bad[i]);
    char buf[32];
    ck_assert_str_eq(baton_duration_text(604800000, buf, sizeof buf), "1w");
    ck_assert_str_eq(baton_duration_text(90000, buf, sizeof buf), "90s");
    ck_assert_str_eq(baton_duration_text(250, buf, sizeof buf), "250ms");
    ck_assert_str_eq(baton_duration_text(0, buf, sizeof buf), "0ms");
}
END_TEST

/* The existing *-ms options: a bare number stays milliseconds (flag and
 * environment), units work too, range errors read in units. */
START_TEST(test_duration_option) {
    clear_cli_env();
    struct cli_config c;
    char err[256];
    char *defaults[] = {"prog", "--queue", "q", NULL};
    ck_assert_int_eq(parse_cli(&c, err, defaults), BATON_OK);
    ck_assert_int_eq(c.lease_ms, 30000);
    ck_assert_int_eq(c.older_than_ms, 0);
    baton_config_free(cli, CLI_N, &c);
    char *bare[] = {"prog", "--queue", "q", "--lease-ms", "45000", NULL};
    ck_assert_int_eq(parse_cli(&c, err, bare), BATON_OK);
    ck_assert_int_eq(c.lease_ms, 45000);
    baton_config_free(cli, CLI_N, &c);
    setenv("BATON_LEASE_MS", "2m", 1);
    char *env[] = {"prog", "--queue", "q", "--older-than=30d", NULL};
    ck_assert_int_eq(parse_cli(&c, err, env), BATON_OK);
    ck_assert_int_eq(c.lease_ms, 120000);
    ck_assert_int_eq(c.older_than_ms, 30LL * 86400000);
    baton_config_free(cli, CLI_N, &c);
    clear_cli_env();

    char *small[] = {"prog", "--queue", "q", "--lease-ms", "100ms", NULL};
    ck_assert_int_eq(parse_cli(&c, err, small), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "--lease-ms: 100ms is out of range [300ms, 1d]");
    baton_config_free(cli, CLI_N, &c);
    char *junk[] = {"prog", "--queue", "q", "--lease-ms", "soon", NULL};
    ck_assert_int_eq(parse_cli(&c, err, junk), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "--lease-ms: expected a duration like 30s, 500ms, 2m, 1h (a bare number "
                          "is milliseconds); got 'soon'");
    baton_config_free(cli, CLI_N, &c);
    /* Where "30" would be a trap, a unit is needed. */
    char *no_unit[] = {"prog", "--queue", "q", "--older-than", "30", NULL};
    ck_assert_int_eq(parse_cli(&c, err, no_unit), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "--older-than: expected a duration with a unit like 30d, 12h, 15m, 90s, "
                          "500ms; got '30'");
    baton_config_free(cli, CLI_N, &c);
}
END_TEST

START_TEST(test_required) {
    clear_cli_env();
    struct cli_config c;
    char err[256];
    char *none[] = {"prog", NULL};
    ck_assert_int_eq(parse_cli(&c, err, none), BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "--queue is required (the flag or BATON_QUEUE)");
    baton_config_free(cli, CLI_N, &c);
    char *empty[] = {"prog", "--queue=", NULL};
    ck_assert_int_eq(parse_cli(&c, err, empty), BATON_ERR_CONFIG);
    baton_config_free(cli, CLI_N, &c);
    setenv("BATON_QUEUE", "from-env", 1);
    ck_assert_int_eq(parse_cli(&c, err, none), BATON_OK);
    ck_assert_str_eq(c.queue, "from-env");
    baton_config_free(cli, CLI_N, &c);
    clear_cli_env();
    /* --help is answered even without the required ones. */
    char *help[] = {"prog", "--help", NULL};
    ck_assert_int_eq(parse_cli(&c, err, help), BATON_ERR_HELP);
    baton_config_free(cli, CLI_N, &c);
}
END_TEST

/* A flags-only entry ignores its variable (no unsetenv() needed); a
 * variable of another entry still counts. */
START_TEST(test_env_less) {
    clear_cli_env();
    setenv("BATON_JSON", "true", 1);
    setenv("BATON_OLDER_THAN", "garbage", 1); /* never read, so never an error */
    setenv("BATON_LABEL", "from-env", 1);
    setenv("BATON_THREADS", "8", 1);
    struct cli_config c;
    char err[256];
    char *argv[] = {"prog", "--queue", "q", NULL};
    ck_assert_int_eq(parse_cli(&c, err, argv), BATON_OK);
    ck_assert_int_eq(c.json, 0);
    ck_assert_ptr_null(c.label);
    ck_assert_int_eq(c.threads, 8);
    baton_config_free(cli, CLI_N, &c);
    /* The flag itself works; a borrowed string points into argv. */
    char *flags[] = {"prog", "--queue", "q", "--json", "--label", "mine", "--max-bytes", "7", NULL};
    ck_assert_int_eq(parse_cli(&c, err, flags), BATON_OK);
    ck_assert_int_eq(c.json, 1);
    ck_assert_ptr_eq(c.label, flags[5]);
    ck_assert_uint_eq(c.max_bytes, 7);
    baton_config_free(cli, CLI_N, &c);
    ck_assert_ptr_eq(c.label, flags[5]); /* not freed */
    clear_cli_env();
}
END_TEST

/* --help and the docs page group entries under the table's headings and
 * mark flags-only and required entries. */
START_TEST(test_sections) {
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    baton_config_help(out, "prog [options]", "Does things.", cli, CLI_N);
    fclose(out);
    const char *general = strstr(text, "options (flag, environment variable, default):\n"
                                       "  --url TEXT\n");
    const char *run = strstr(text, "\nThe run:\n  --older-than DURATION\n");
    ck_assert_ptr_nonnull(general);
    ck_assert_ptr_nonnull(run);
    ck_assert(general < run);
    ck_assert_ptr_nonnull(strstr(text, "      age  [flag only]\n"));
    ck_assert_ptr_nonnull(strstr(text, "      the queue  [env BATON_QUEUE, required]\n"));
    ck_assert_ptr_nonnull(strstr(text, "      lease  [env BATON_LEASE_MS, default '30s']\n"));
    free(text);

    out = open_memstream(&text, &size);
    baton_config_markdown(out, cli, CLI_N);
    fclose(out);
    ck_assert_ptr_nonnull(
        strstr(text, "| `--lease-ms` | `BATON_LEASE_MS` | duration (bare number: ms) 300ms to 1d | "
                     "`30s` | lease |\n"
                     "\n### The run\n\n"
                     "| flag | environment | type | default | meaning |\n|---|---|---|---|---|\n"
                     "| `--older-than` | (flag only) | duration | (none) | age |\n"
                     "| `--queue` | `BATON_QUEUE` | text | (required) | the queue |\n"));
    free(text);

    /* A table that starts with a heading opens with it. */
    static const struct baton_opt headed[] = {
        BATON_OPT_SECTION("First"),
        {"x", BATON_OPT_BOOL, "false", "x", 0, 0, 0},
    };
    out = open_memstream(&text, &size);
    baton_config_markdown(out, headed, 2);
    fclose(out);
    ck_assert_str_eq(text, "### First\n\n| flag | environment | type | default | meaning |\n"
                           "|---|---|---|---|---|\n| `--x` | `BATON_X` | bool | `false` | x |\n");
    free(text);
}
END_TEST

/* batonctl's shape: global options before the command, then the
 * command's flags and the global ones mixed with its arguments. */
struct sub_config {
    const char *queue;
    int force;
};
static const struct baton_opt sub[] = {
    {"queue", BATON_OPT_STRING | BATON_OPT_NO_ENV | BATON_OPT_BORROWED, NULL, "queue",
     offsetof(struct sub_config, queue), 0, 0},
    {"force", BATON_OPT_BOOL | BATON_OPT_NO_ENV, NULL, "force", offsetof(struct sub_config, force),
     0, 0},
};

START_TEST(test_options_after_subcommand) {
    clear_env();
    struct test_config global;
    struct sub_config opts = {NULL, 0};
    char err[256];
    char *argv[] = {"prog",    "--batch-size", "9",
                    "status",  "ID",           "--verbose",
                    "--queue", "q1",           "--redis-url=redis://after:1/0",
                    NULL};
    int argc = 9, first = 0;
    ck_assert_int_eq(baton_config_parse(table, N, &global, argc, argv, &first, err, sizeof err),
                     BATON_OK);
    ck_assert_int_eq(first, 3);
    ck_assert_int_eq(global.verbose, 0); /* not parsed yet: after the command */
    const struct baton_opt_set sets[] = {{sub, 2, &opts}, {table, N, &global}};
    const char *positional[2];
    int n = -1;
    ck_assert_int_eq(baton_config_init(sub, 2, &opts, err, sizeof err), BATON_OK);
    ck_assert_int_eq(
        baton_config_args(sets, 2, argc - first, argv + first, positional, 2, &n, err, sizeof err),
        BATON_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(positional[0], "ID");
    ck_assert_int_eq(global.batch_size, 9); /* before the command: kept */
    ck_assert_int_eq(global.verbose, 1);    /* after it: applied */
    ck_assert_str_eq(global.redis_url, "redis://after:1/0");
    ck_assert_str_eq(opts.queue, "q1");

    /* Too many positional arguments, an unknown flag, "--" and --help. */
    char *extra[] = {"status", "a", "b", NULL};
    ck_assert_int_eq(baton_config_args(sets, 2, 3, extra, positional, 1, &n, err, sizeof err),
                     BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "unexpected argument 'b'");
    char *unknown[] = {"status", "a", "--nope", NULL};
    ck_assert_int_eq(baton_config_args(sets, 2, 3, unknown, positional, 1, &n, err, sizeof err),
                     BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "unknown flag '--nope' (see --help)");
    char *dashes[] = {"status", "--", "--force", NULL};
    ck_assert_int_eq(baton_config_args(sets, 2, 3, dashes, positional, 1, &n, err, sizeof err),
                     BATON_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(positional[0], "--force");
    ck_assert_int_eq(opts.force, 0);
    char *help[] = {"status", "x", "--help", NULL};
    ck_assert_int_eq(baton_config_args(sets, 2, 3, help, positional, 1, &n, err, sizeof err),
                     BATON_ERR_HELP);
    baton_config_free(table, N, &global);
}
END_TEST

/* A library's C defaults and a binary's table must agree (baton-worker). */
START_TEST(test_check_defaults) {
    struct cli_config reference = {NULL, 30000, 0, NULL, NULL, 0, 4, 65536};
    char err[256];
    reference.url = "redis://x";
    ck_assert_int_eq(
        baton_config_check_defaults(cli, CLI_N, &reference, sizeof reference, err, sizeof err),
        BATON_OK);
    reference.lease_ms = 31000;
    ck_assert_int_eq(
        baton_config_check_defaults(cli, CLI_N, &reference, sizeof reference, err, sizeof err),
        BATON_ERR_CONFIG);
    ck_assert_str_eq(err, "the default of --lease-ms ('30s') differs from the library's");
    reference.lease_ms = 30000;
    reference.url = "redis://y";
    ck_assert_int_eq(
        baton_config_check_defaults(cli, CLI_N, &reference, sizeof reference, err, sizeof err),
        BATON_ERR_CONFIG);
    reference.url = "redis://x";
    reference.threads = 5;
    ck_assert_int_eq(
        baton_config_check_defaults(cli, CLI_N, &reference, sizeof reference, err, sizeof err),
        BATON_ERR_CONFIG);
    /* Only the first `size` bytes are compared. */
    ck_assert_int_eq(baton_config_check_defaults(cli, CLI_N, &reference,
                                                 offsetof(struct cli_config, threads), err,
                                                 sizeof err),
                     BATON_OK);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_defaults);
    tcase_add_test(core, test_env_overrides_default);
    tcase_add_test(core, test_flag_overrides_env);
    tcase_add_test(core, test_double_dash_ends_flags);
    tcase_add_test(core, test_help);
    tcase_add_test(core, test_env_name);
    tcase_add_test(core, test_list_repeats);
    tcase_add_test(core, test_config_start);
    tcase_add_test(core, test_markdown);
    tcase_add_test(core, test_markdown_flag_exits);
    tcase_add_test(core, test_duration_option);
    tcase_add_test(core, test_required);
    tcase_add_test(core, test_env_less);
    tcase_add_test(core, test_sections);
    tcase_add_test(core, test_options_after_subcommand);
    tcase_add_test(core, test_check_defaults);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_int_range);
    tcase_add_test(limits, test_duration_units);
    suite_add_tcase(s, limits);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_unknown_flag);
    tcase_add_test(errors, test_bad_int_names_source);
    tcase_add_test(errors, test_double_range_and_bool_errors);
    tcase_add_test(errors, test_missing_value);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
