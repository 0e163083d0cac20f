/*
 * checker.c - baton-check's entry point: picks the subcommand.
 *
 *   baton-check produce --kafka-brokers B --queue Q --type T --acked FILE ...
 *   baton-check verify  --redis-url U --pg-dsn D --queue Q --acked FILE ...
 *
 * The chaos scenarios (tests/chaos/chaos_lib.sh) call both: produce before
 * the fault, verify after it. Each subcommand parses its own flags from its
 * own table, so `baton-check produce --help` lists exactly what produce
 * takes; this file only dispatches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checker.h"
#include "config.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: " CHECK_PROG " produce [options]   publish a numbered workload, record acked ids\n"
        "       " CHECK_PROG " verify [options]    wait for it to settle, check invariants I1-I4\n"
        "\n"
        "'" CHECK_PROG " COMMAND --help' lists the options of COMMAND.\n"
        "Exit status: 0 ok, 1 failed deliveries or violations, 2 usage or connection error.\n");
}

baton_err_t check_parse(const struct baton_opt *table, size_t count, void *config, int argc,
                        char **argv, const char *usage_text, const char *summary, char *errstr,
                        size_t errstr_size) {
    int first_arg = argc;
    baton_err_t err =
        baton_config_parse(table, count, config, argc, argv, &first_arg, errstr, errstr_size);
    if (err == BATON_ERR_HELP)
        baton_config_help(stdout, usage_text, summary, table, count);
    else if (!err && first_arg < argc)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "unexpected argument '%s'",
                           argv[first_arg]);
    return err;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CHECK_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0) {
        usage(stdout);
        return CHECK_EXIT_OK;
    }
    if (strcmp(command, "produce") == 0)
        return check_produce_main(argc - 1, argv + 1);
    if (strcmp(command, "verify") == 0)
        return check_verify_main(argc - 1, argv + 1);
    fprintf(stderr, CHECK_PROG ": unknown command '%s' (produce or verify; see --help)\n", command);
    return CHECK_EXIT_USAGE;
}
