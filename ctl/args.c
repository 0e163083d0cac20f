/*
 * args.c - subcommand arguments and usage errors for batonctl.
 *
 * Each subcommand describes its flags as an option table (CTL_FLAG
 * entries), the way main.c describes the global options; the one parser of
 * common/config.c reads both tables at once, so any flag may come before
 * or after the positional arguments ("status ID --queue Q --json" and
 * "status --json --queue Q ID"); "--" ends the flags. Unlike the global
 * options, a command's flags have no environment fallback: what a command
 * acts on is always spelled out on its command line.
 */
#include <stdarg.h>
#include <stdio.h>

#include "ctl.h"
#include "log.h"
#include "task.h"

void ctl_error(const char *command, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One line, whatever a server or a task put in its message: its
     * newlines and escape sequences are shown, not obeyed. */
    ctl_term_printf(stderr, "batonctl %s: %s\n", command, line);
}

static void help(const struct ctl_usage *u) {
    printf("usage: batonctl [options] %s\n\n%s\n", u->synopsis, u->summary);
    if (u->nflags)
        baton_config_help_options(stdout, "flags", u->flags, u->nflags);
    baton_config_help_options(stdout, "global options (before or after the command)", ctl_options,
                              ctl_option_count);
    printf("\nexit codes: 0 ok, 1 operation failed (server unreachable, wrong state),\n"
           "2 usage error, 3 not found (unknown task id or queue).\n");
}

int ctl_parse_args(struct ctl_config *config, const struct ctl_usage *u, void *opts, int argc,
                   char **argv, const char **positional, int *npositional) {
    char errstr[512];
    const struct baton_opt_set sets[] = {{u->flags, u->nflags, opts},
                                         {ctl_options, ctl_option_count, config}};
    /* Only the command's table starts from its defaults: the global options
     * keep what the environment and the flags before the command gave. */
    baton_err_t err =
        opts ? baton_config_init(u->flags, u->nflags, opts, errstr, sizeof errstr) : BATON_OK;
    int n = 0;
    if (!err)
        err = baton_config_args(sets, 2, argc, argv, positional, u->max_args, &n, errstr,
                                sizeof errstr);
    if (err == BATON_ERR_HELP) {
        help(u);
        return CTL_HELP_SHOWN;
    }
    if (!err && baton_log_level_parse(config->log_level, &baton_log_threshold))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--log-level: unknown level '%s'", config->log_level);
    if (err) {
        ctl_error(u->command, "%s", errstr);
        return CTL_EXIT_USAGE;
    }
    if (n < u->min_args) {
        ctl_error(u->command, "missing argument: usage: batonctl %s", u->synopsis);
        return CTL_EXIT_USAGE;
    }
    *npositional = n;
    return CTL_EXIT_OK;
}

int ctl_check_queue_name(const char *command, const char *queue) {
    if (queue && !baton_task_name_valid(queue)) {
        ctl_error(command, "'%s' is not a valid queue name ([A-Za-z0-9_.:-]{1,128})", queue);
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

int ctl_check_task_id(const char *command, const char *id) {
    if (!baton_task_id_valid(id)) {
        ctl_error(command, "'%s' is not a valid task id (1-128 printable characters)", id);
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}
