/*
 * main.c - batonctl: parse global options, dispatch to a subcommand.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "log.h"

static const struct baton_opt ctl_options[] = {
    {"pg-dsn", BATON_OPT_STRING, NULL,
     "PostgreSQL connection string (libpq URI or key=value)",
     offsetof(struct ctl_config, pg_dsn), 0, 0},
    {"log-level", BATON_OPT_STRING, "warn", "log level: debug, info, warn, error, off",
     offsetof(struct ctl_config, log_level), 0, 0},
    {"json", BATON_OPT_BOOL, "false", "print results as JSON",
     offsetof(struct ctl_config, json), 0, 0},
};
#define CTL_OPTION_COUNT (sizeof ctl_options / sizeof ctl_options[0])

struct ctl_command {
    const char *name;
    const char *summary;
    int (*run)(const struct ctl_config *config, int argc, char **argv);
};

static const struct ctl_command commands[] = {
    {"migrate", "apply pending PostgreSQL migrations (safe to run concurrently)",
     ctl_cmd_migrate},
};

static void usage(FILE *out) {
    baton_config_help(out, "batonctl [options] COMMAND [args]",
                      "Inspect and control a baton deployment.", ctl_options,
                      CTL_OPTION_COUNT);
    fprintf(out, "\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    struct ctl_config config;
    char errstr[512];
    int first_arg = argc;
    baton_err_t err = baton_config_parse(ctl_options, CTL_OPTION_COUNT, &config, argc,
                                         argv, &first_arg, errstr, sizeof errstr);
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
        for (; i < sizeof commands / sizeof commands[0]; i++)
            if (strcmp(commands[i].name, name) == 0)
                break;
        if (i == sizeof commands / sizeof commands[0])
            fprintf(stderr, "batonctl: unknown command '%s' (see batonctl --help)\n", name);
        else
            rc = commands[i].run(&config, argc - first_arg, argv + first_arg);
    }
    baton_config_free(ctl_options, CTL_OPTION_COUNT, &config);
    return rc;
}
