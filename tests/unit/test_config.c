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
    {"verbose", BATON_OPT_BOOL, "false", "more output",
     offsetof(struct test_config, verbose), 0, 0},
    {"memory-fraction", BATON_OPT_DOUBLE, "0.9", "pause above this fraction",
     offsetof(struct test_config, memory_fraction), 0.0, 1.0},
    {"unset", BATON_OPT_STRING, NULL, "no default", offsetof(struct test_config, unset), 0, 0},
    {"command", BATON_OPT_LIST, NULL, "TYPE=PROGRAM", offsetof(struct test_config, commands), 0,
     0},
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
    char *argv[] = {"prog", "--redis-url", "redis://flag:2/0", "--batch-size=7",
                    "--verbose", "sub", "--not-parsed", NULL};
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
 * doc; entries from `settings` on are flags only. */
START_TEST(test_markdown) {
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    baton_config_markdown(out, table, N, 4);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "| flag | environment | type | default | meaning |\n"
                                       "|---|---|---|---|---|\n"
                                       "| `--redis-url` | `BATON_REDIS_URL` | text | "
                                       "`redis://127.0.0.1:6379/0` | Redis URL |\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "| `--batch-size` | `BATON_BATCH_SIZE` | integer 1 to 100000 | `500` |"));
    ck_assert_ptr_nonnull(strstr(text, "| `--verbose` | `BATON_VERBOSE` | bool | `false` |"));
    ck_assert_ptr_nonnull(strstr(text, "| number 0 to 1 | `0.9` |"));
    ck_assert_ptr_nonnull(strstr(text, "| `--unset` | (flag only) | text | (none) | no default |"));
    ck_assert_ptr_nonnull(strstr(text, "| `--command` | (flag only) | text, repeatable |"));
    free(text);

    /* A '|' would split the cell, "<host>" would vanish as an HTML tag. */
    static const struct baton_opt odd[] = {
        {"id", BATON_OPT_STRING, "a|b", "default <host>-<pid> | none", 0, 0, 0},
        {"extra", BATON_OPT_STRING, "", "empty default", 0, 0, 0},
    };
    out = open_memstream(&text, &size);
    baton_config_markdown(out, odd, 2, 2);
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
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_int_range);
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
