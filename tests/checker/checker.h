/*
 * checker.h - baton-check: the fault-injection scenarios' workload and judge.
 *
 * Two subcommands share one binary: `produce` publishes a bounded, numbered
 * workload through libbaton and records which ids the brokers acknowledged;
 * `verify` waits for those tasks to settle and checks invariants I1-I4
 * (docs/reliability.md) against Redis and PostgreSQL. Each subcommand has
 * its own configuration table (common/config.h) and is entered with the
 * arguments after its name, argv[0] being the subcommand itself.
 */
#ifndef BATON_CHECKER_H
#define BATON_CHECKER_H

#include <stddef.h>

#include "error.h"

#define CHECK_PROG "baton-check"

/* Exit statuses shared by both subcommands. */
#define CHECK_EXIT_OK 0     /* everything acknowledged / no violation */
#define CHECK_EXIT_FAILED 1 /* some delivery failed / some violation */
#define CHECK_EXIT_USAGE 2  /* bad flag, unreachable server */

/* `baton-check produce ...`; returns the exit status. */
int check_produce_main(int argc, char **argv);

/* `baton-check verify ...`; returns the exit status. */
int check_verify_main(int argc, char **argv);

/*
 * Parses a subcommand's flags into `config` (strings owned by it, freed
 * with baton_config_free()); refuses stray arguments. The table's run
 * entries are flags only (BATON_OPT_NO_ENV): --queue or --count never
 * silently come from an exported variable. Returns BATON_OK;
 * BATON_ERR_HELP after printing --help; any other error with the reason in
 * errstr.
 */
struct baton_opt;
baton_err_t check_parse(const struct baton_opt *table, size_t count, void *config, int argc,
                        char **argv, const char *usage, const char *summary, char *errstr,
                        size_t errstr_size);

#endif
