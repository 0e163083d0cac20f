/*
 * main.c - batonctl: parse global options, dispatch to a subcommand.
 *
 * Global options (this file's config table: flags or BATON_* environment
 * variables) come before or after the command; each command's own flags
 * come after it (ctl_parse_args() reads both tables). The exit codes are the same for every command
 * (ctl.h) and are listed in --help, so scripts can tell "not found" from "server down".
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "log.h"

const struct baton_opt ctl_options[] = {
    {"redis-url", BATON_OPT_STRING, "redis://127.0.0.1:6379/0",
     "Redis URL (redis://[[user]:password@]host[:port][/db])",
     offsetof(struct ctl_config, redis_url), 0, 0},
    {"redis-timeout-ms", BATON_OPT_DURATION, "5s", "Redis connect and command timeout",
     offsetof(struct ctl_config, redis_timeout_ms), 1, 600000},
    {"pg-dsn", BATON_OPT_STRING, NULL,
     "PostgreSQL connection string (libpq URI or key=value): status, history, prune, migrate",
     offsetof(struct ctl_config, pg_dsn), 0, 0},
    {"retention-ms", BATON_OPT_DURATION, NULL,
     "how long a task canceled by `cancel` stays in Redis; unset: the scheduler's (published "
     "in Redis), or 7d if no scheduler has run yet; a value other than the scheduler's is "
     "refused",
     offsetof(struct ctl_config, retention_ms), 1, 9.0e15},
    {"log-level", BATON_OPT_STRING, "warn", "log level: debug, info, warn, error, off",
     offsetof(struct ctl_config, log_level), 0, 0},
    {"json", BATON_OPT_BOOL, "false", "print results as one JSON document",
     offsetof(struct ctl_config, json), 0, 0},
};
#define CTL_OPTION_COUNT (sizeof ctl_options / sizeof ctl_options[0])
const size_t ctl_option_count = CTL_OPTION_COUNT;

struct ctl_command {
    const char *name;
    const char *summary;
    int (*run)(struct ctl_config *config, int argc, char **argv);
};

static const struct ctl_command commands[] = {
    {"status", "one task: live state from Redis, history from PostgreSQL", ctl_cmd_status},
    {"history", "finished and past tasks from PostgreSQL, newest first", ctl_cmd_history},
    {"queues", "per queue: ready by priority, scheduled, running, dead, paused, backlog",
     ctl_cmd_queues},
    {"workers", "live workers from the registry", ctl_cmd_workers},
    {"dead", "dead tasks with their error and attempts", ctl_cmd_dead},
    {"retry", "give dead tasks a new set of attempts", ctl_cmd_retry},
    {"cancel", "cancel a queued, scheduled or running task", ctl_cmd_cancel},
    {"pause", "stop workers claiming from a queue", ctl_cmd_pause},
    {"resume", "let workers claim from a paused queue again", ctl_cmd_resume},
    {"prune", "delete old finished tasks from the PostgreSQL history", ctl_cmd_prune},
    {"migrate", "apply pending PostgreSQL migrations (safe to run concurrently)", ctl_cmd_migrate},
};
#define CTL_COMMAND_COUNT (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    baton_config_help(out, "batonctl [options] COMMAND [args]",
                      "Inspect and control a baton deployment. Options go before or after the\n"
                      "command; the command's own flags after it (batonctl COMMAND --help).",
                      ctl_options, CTL_OPTION_COUNT);
    fprintf(out, "\ncommands:\n");
    for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nexit codes:\n"
                 "  0  success\n"
                 "  1  the operation failed (server unreachable, task in the wrong state)\n"
                 "  2  usage error (bad flag, missing or malformed argument)\n"
                 "  3  not found (unknown task id or queue)\n");
}

int main(int argc, char **argv) {
    struct ctl_config config = {0}; /* retention_ms 0: not given (ctl_retention()) */
    char errstr[512];
    int first_arg = argc;
    baton_err_t err = baton_config_parse(ctl_options, CTL_OPTION_COUNT, &config, argc, argv,
                                         &first_arg, errstr, sizeof errstr);
    int rc = CTL_EXIT_USAGE;
    if (err == BATON_ERR_HELP) {
        usage(stdout);
        rc = CTL_EXIT_OK;
    } else if (err) {
        fprintf(stderr, "batonctl: %s\n", errstr);
    } else if (baton_log_level_parse(config.log_level, &baton_log_threshold)) {
        fprintf(stderr, "batonctl: --log-level: unknown level '%s'\n", config.log_level);
    } else if (first_arg >= argc) {
        fprintf(stderr, "batonctl: no command given (see batonctl --help)\n");
    } else {
        const char *name = argv[first_arg];
        size_t i = 0;
        for (; i < CTL_COMMAND_COUNT; i++)
            if (strcmp(commands[i].name, name) == 0)
                break;
        if (i == CTL_COMMAND_COUNT)
            fprintf(stderr, "batonctl: unknown command '%s' (see batonctl --help)\n", name);
        else
            rc = commands[i].run(&config, argc - first_arg, argv + first_arg);
    }
    baton_config_free(ctl_options, CTL_OPTION_COUNT, &config);
    return rc;
}
