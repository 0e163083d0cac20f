/*
 * ctl.h - batonctl's shared state: global options and the subcommand table.
 *
 * main.c parses the global options (the config table below), then hands the
 * remaining arguments to one subcommand. Each subcommand lives in its own
 * cmd_<name>.c and returns the process exit code: 0 success, 1 the operation
 * failed (server unreachable, migration failed), 2 bad usage.
 */
#ifndef BATON_CTL_H
#define BATON_CTL_H

#include <stdint.h>

struct ctl_config {
    char *pg_dsn;    /* PostgreSQL connection string */
    char *log_level; /* debug|info|warn|error|off */
    int json;        /* machine-readable output */
};

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

/* `batonctl migrate`: applies pending migrations. */
int ctl_cmd_migrate(const struct ctl_config *config, int argc, char **argv);

#endif
