/*
 * args.c - subcommand flags, durations, and usage errors for batonctl.
 *
 * Each subcommand describes its flags as a small table (struct ctl_flag),
 * the way main.c describes the global options, and its help text comes
 * from that table. Flags may come before or after the positional
 * arguments ("status ID --queue Q" and "status --queue Q ID"); "--" ends
 * the flags. Unlike the global options there is no environment fallback:
 * what a command acts on is always spelled out on its command line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
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

int ctl_parse_duration_ms(const char *text, int64_t *ms) {
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                 {"h", 3600000}, {"d", 86400000}, {"w", 604800000}};
    const char *p = text;
    int64_t total = 0;
    if (!p || !*p)
        return -1;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -1;
        char *end;
        errno = 0;
        long long n = strtoll(p, &end, 10);
        if (errno || n < 0)
            return -1;
        size_t ulen = 0;
        while (end[ulen] >= 'a' && end[ulen] <= 'z')
            ulen++;
        int64_t scale = 0;
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
            if (strlen(units[u].unit) == ulen && strncmp(units[u].unit, end, ulen) == 0)
                scale = units[u].ms;
        if (!scale || n > INT64_MAX / scale / 2 || total > INT64_MAX / 2)
            return -1; /* no unit, an unknown one, or absurdly large */
        total += (int64_t)n * scale;
        p = end + ulen;
    }
    *ms = total;
    return 0;
}

static void help(const struct ctl_usage *u) {
    printf("usage: batonctl [options] %s\n\n%s\n", u->synopsis, u->summary);
    if (u->nflags) {
        printf("\nflags:\n");
        for (size_t i = 0; i < u->nflags; i++) {
            const struct ctl_flag *f = &u->flags[i];
            char left[64];
            snprintf(left, sizeof left, "--%s%s%s", f->name, f->metavar ? " " : "",
                     f->metavar ? f->metavar : "");
            printf("  %-22s %s\n", left, f->doc);
        }
    }
    printf("\nexit codes: 0 ok, 1 operation failed (server unreachable, wrong state),\n"
           "2 usage error, 3 not found (unknown task id or queue).\n"
           "Global options (--json, --redis-url, --pg-dsn, ...) go before the command:\n"
           "see batonctl --help.\n");
}

static int store(const char *command, const struct ctl_flag *f, void *opts, const char *value) {
    char *field = (char *)opts + f->offset;
    switch (f->type) {
    case CTL_FLAG_STRING: memcpy(field, &value, sizeof value); return CTL_EXIT_OK;
    case CTL_FLAG_BOOL: {
        int one = 1;
        memcpy(field, &one, sizeof one);
        return CTL_EXIT_OK;
    }
    case CTL_FLAG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            ctl_error(command, "--%s: expected an integer, got '%s'", f->name, value);
            return CTL_EXIT_USAGE;
        }
        if ((f->min || f->max) && (v < f->min || v > f->max)) {
            ctl_error(command, "--%s: %lld is out of range [%" PRId64 ", %" PRId64 "]", f->name, v,
                      f->min, f->max);
            return CTL_EXIT_USAGE;
        }
        int64_t iv = v;
        memcpy(field, &iv, sizeof iv);
        return CTL_EXIT_OK;
    }
    case CTL_FLAG_DURATION: {
        int64_t ms;
        if (ctl_parse_duration_ms(value, &ms)) {
            ctl_error(command, "--%s: expected a duration like 30d, 12h, 15m, 90s, 500ms; got '%s'",
                      f->name, value);
            return CTL_EXIT_USAGE;
        }
        memcpy(field, &ms, sizeof ms);
        return CTL_EXIT_OK;
    }
    }
    return CTL_EXIT_USAGE;
}

int ctl_parse_args(const struct ctl_usage *u, void *opts, int argc, char **argv,
                   const char **positional, int *npositional) {
    int n = 0, flags_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!flags_done && strcmp(arg, "--") == 0) {
            flags_done = 1;
            continue;
        }
        if (!flags_done && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)) {
            help(u);
            return CTL_HELP_SHOWN;
        }
        if (!flags_done && arg[0] == '-' && arg[1] != '\0') {
            const char *name = arg[1] == '-' ? arg + 2 : arg + 1;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const struct ctl_flag *f = NULL;
            for (size_t k = 0; arg[1] == '-' && k < u->nflags; k++)
                if (strlen(u->flags[k].name) == len && strncmp(u->flags[k].name, name, len) == 0)
                    f = &u->flags[k];
            if (!f) {
                if (arg[1] == '-' && ctl_is_global_flag(name, len))
                    ctl_error(u->command,
                              "'--%.*s' is a global option: put it before the command "
                              "(batonctl --%.*s ... %s)",
                              (int)len, name, (int)len, name, u->command);
                else
                    ctl_error(u->command, "unknown flag '%s' (see batonctl %s --help)", arg,
                              u->command);
                return CTL_EXIT_USAGE;
            }
            const char *value;
            if (f->type == CTL_FLAG_BOOL) {
                if (eq) {
                    ctl_error(u->command, "--%s takes no value", f->name);
                    return CTL_EXIT_USAGE;
                }
                value = "1";
            } else if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                ctl_error(u->command, "flag '--%s' needs a value", f->name);
                return CTL_EXIT_USAGE;
            }
            int rc = store(u->command, f, opts, value);
            if (rc)
                return rc;
            continue;
        }
        if (n >= u->max_args) {
            ctl_error(u->command, "unexpected argument '%s' (see batonctl %s --help)", arg,
                      u->command);
            return CTL_EXIT_USAGE;
        }
        positional[n++] = arg;
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
