/*
 * config.c - table-driven configuration: defaults, environment, flags.
 *
 * The three sources are applied in order of precedence over the same store
 * function, so a value is validated identically wherever it came from and an
 * error names its source ("--priority" or "BATON_PRIORITY"). Only the table's
 * long flags are accepted: a typo is an error, never silently ignored.
 *
 * Every binary and test tool parses its command line here, batonctl's
 * commands included (their flags are one more table, given with the global
 * one to baton_config_args()), so flags, durations, errors and help read the
 * same everywhere. Heading entries (BATON_OPT_SECTION) hold no value: every
 * loop over a table skips them.
 */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void baton_config_env_name(const char *name, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "BATON_%s", name);
    for (size_t i = 6; i < n && i < size; i++)
        buf[i] = buf[i] == '-' ? '_' : (char)toupper((unsigned char)buf[i]);
}

static int parse_bool(const char *text, int *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

int baton_duration_parse(const char *text, int bare_ms, int64_t *ms) {
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
        if (ulen == 0 && p == text && *end == '\0' && bare_ms)
            scale = 1; /* the whole text is a number: milliseconds */
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

char *baton_duration_text(int64_t ms, char *buf, size_t size) {
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"w", 604800000}, {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t u = 0; ms != 0 && u < sizeof units / sizeof units[0]; u++)
        if (ms % units[u].ms == 0) {
            snprintf(buf, size, "%" PRId64 "%s", ms / units[u].ms, units[u].unit);
            return buf;
        }
    snprintf(buf, size, "%" PRId64 "ms", ms);
    return buf;
}

/* Stores an INT or DURATION value into its field: an int64_t, or an int
 * or size_t when the entry says so. */
static baton_err_t store_integer(const struct baton_opt *opt, char *field, int64_t v,
                                 const char *source, char *errstr, size_t errstr_size) {
    if (opt->type & BATON_OPT_INT_FIELD) {
        if (v < INT_MIN || v > INT_MAX)
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: %" PRId64 " is out of range", source, v);
        int iv = (int)v;
        memcpy(field, &iv, sizeof iv);
    } else if (opt->type & BATON_OPT_SIZE_FIELD) {
        if (v < 0)
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: %" PRId64 " is out of range", source, v);
        size_t sv = (size_t)v;
        memcpy(field, &sv, sizeof sv);
    } else {
        memcpy(field, &v, sizeof v);
    }
    return BATON_OK;
}

/* Parses `text` for `opt` and stores it; `source` names where it came from.
 * `append`: a repeated LIST flag adds an entry instead of replacing. */
static baton_err_t store(const struct baton_opt *opt, void *config, const char *text,
                         const char *source, int append, char *errstr, size_t errstr_size) {
    char *field = (char *)config + opt->offset;
    int ranged = opt->min != 0 || opt->max != 0;
    switch (BATON_OPT_KIND(opt)) {
    case BATON_OPT_LIST: {
        char **slot = (char **)(void *)field;
        if (!append || !*slot || !**slot)
            return store(&(struct baton_opt){.type = BATON_OPT_STRING, .offset = opt->offset},
                         config, text, source, 0, errstr, errstr_size);
        size_t old = strlen(*slot), add = strlen(text);
        char *joined = realloc(*slot, old + 1 + add + 1);
        if (!joined)
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        joined[old] = '\n';
        memcpy(joined + old + 1, text, add + 1);
        *slot = joined;
        return BATON_OK;
    }
    case BATON_OPT_STRING: {
        if (opt->type & BATON_OPT_BORROWED) {
            memcpy(field, &text, sizeof text);
            return BATON_OK;
        }
        char *copy = text ? strdup(text) : NULL;
        if (text && !copy)
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        char **slot = (char **)(void *)field;
        free(*slot);
        *slot = copy;
        return BATON_OK;
    }
    case BATON_OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end != '\0')
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: expected an integer, got '%s'", source, text);
        if (ranged && (v < opt->min || v > opt->max))
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: %lld is out of range [%.0f, %.0f]", source, v, opt->min,
                                opt->max);
        return store_integer(opt, field, (int64_t)v, source, errstr, errstr_size);
    }
    case BATON_OPT_DURATION: {
        int64_t ms;
        int bare = !(opt->type & BATON_OPT_NEED_UNIT);
        if (baton_duration_parse(text, bare, &ms))
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: expected a duration %s; got '%s'", source,
                                bare ? "like 30s, 500ms, 2m, 1h (a bare number is milliseconds)"
                                     : "with a unit like 30d, 12h, 15m, 90s, 500ms",
                                text);
        if (ranged && (ms < opt->min || ms > opt->max)) {
            char v[32], lo[32], hi[32];
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: %s is out of range [%s, %s]", source,
                                baton_duration_text(ms, v, sizeof v),
                                baton_duration_text((int64_t)opt->min, lo, sizeof lo),
                                baton_duration_text((int64_t)opt->max, hi, sizeof hi));
        }
        return store_integer(opt, field, ms, source, errstr, errstr_size);
    }
    case BATON_OPT_HEADING: return BATON_OK;
    case BATON_OPT_BOOL: {
        int b;
        if (!parse_bool(text, &b))
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: expected true or false, got '%s'", source, text);
        memcpy(field, &b, sizeof b);
        return BATON_OK;
    }
    case BATON_OPT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (errno || end == text || *end != '\0' || !isfinite(v))
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: expected a number, got '%s'", source, text);
        if (ranged && (v < opt->min || v > opt->max))
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "%s: %g is out of range [%g, %g]", source, v, opt->min, opt->max);
        memcpy(field, &v, sizeof v);
        return BATON_OK;
    }
    }
    return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "%s: unknown option type", source);
}

static int is_text(const struct baton_opt *opt) {
    return BATON_OPT_KIND(opt) == BATON_OPT_STRING || BATON_OPT_KIND(opt) == BATON_OPT_LIST;
}

/* The entry of --name (name of `len` bytes) in any of the sets, the first
 * set first; its set's index goes to *set. */
static const struct baton_opt *find_flag(const struct baton_opt_set *sets, size_t nsets,
                                         const char *name, size_t len, size_t *set) {
    for (size_t s = 0; s < nsets; s++)
        for (size_t i = 0; i < sets[s].count; i++) {
            const struct baton_opt *opt = &sets[s].table[i];
            if (opt->name && strlen(opt->name) == len && strncmp(opt->name, name, len) == 0) {
                *set = s;
                return opt;
            }
        }
    return NULL;
}

baton_err_t baton_config_init(const struct baton_opt *table, size_t count, void *config,
                              char *errstr, size_t errstr_size) {
    baton_err_t err;
    char source[160];

    for (size_t i = 0; i < count; i++) {
        if (is_text(&table[i])) {
            char **slot = (char **)(void *)((char *)config + table[i].offset);
            *slot = NULL;
        }
        if (!table[i].default_value || BATON_OPT_KIND(&table[i]) == BATON_OPT_HEADING)
            continue;
        snprintf(source, sizeof source, "default of --%s", table[i].name);
        err = store(&table[i], config, table[i].default_value, source, 0, errstr, errstr_size);
        if (err)
            return err;
    }

    for (size_t i = 0; i < count; i++) {
        if (BATON_OPT_KIND(&table[i]) == BATON_OPT_HEADING || (table[i].type & BATON_OPT_NO_ENV))
            continue;
        char env[128];
        baton_config_env_name(table[i].name, env, sizeof env);
        const char *value = getenv(env);
        if (!value)
            continue;
        err = store(&table[i], config, value, env, 0, errstr, errstr_size);
        if (err)
            return err;
    }
    return BATON_OK;
}

/* After the flags: every REQUIRED entry holds a non-empty text (from this
 * step or an earlier one), or, for other types, was given now (`seen`) or
 * by its variable. */
static baton_err_t check_required(const struct baton_opt_set *set, const unsigned char *seen,
                                  char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < set->count; i++) {
        const struct baton_opt *opt = &set->table[i];
        if (!(opt->type & BATON_OPT_REQUIRED))
            continue;
        char env[128];
        baton_config_env_name(opt->name, env, sizeof env);
        if (is_text(opt)) {
            char *stored;
            memcpy(&stored, (char *)set->config + opt->offset, sizeof stored);
            if (stored && *stored)
                continue;
        } else if (seen[i] || (!(opt->type & BATON_OPT_NO_ENV) && getenv(env))) {
            continue;
        }
        if (opt->type & BATON_OPT_NO_ENV)
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "--%s is required",
                                opt->name);
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "--%s is required (the flag or %s)", opt->name, env);
    }
    return BATON_OK;
}

static void print_markdown_and_exit(const struct baton_opt_set *sets, size_t nsets) {
    /* Handled here, not by each main, so every binary with a table serves
     * the docs generator (tests/docs/configuration.py). */
    for (size_t s = 0; s < nsets; s++)
        baton_config_markdown(stdout, sets[s].table, sets[s].count);
    for (size_t s = 0; s < nsets; s++)
        baton_config_free(sets[s].table, sets[s].count, sets[s].config);
    exit(fflush(stdout) == 0 ? 0 : 1);
}

/*
 * The flags of argv over `sets`. With `positional` NULL, stops at the
 * first positional argument and puts its index in *npositional; else
 * collects the positional arguments wherever they stand. `seen` has one
 * byte per entry of each set, in order (zeroed by the caller).
 */
static baton_err_t parse_flags(const struct baton_opt_set *sets, size_t nsets, int argc,
                               char **argv, const char **positional, int max_positional,
                               int *npositional, unsigned char *seen, char *errstr,
                               size_t errstr_size) {
    char source[160];
    int n = 0, flags_done = 0, i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        int is_flag = !flags_done && arg[0] == '-' && arg[1] != '\0';
        if (is_flag && strcmp(arg, "--") == 0) {
            flags_done = 1;
            if (!positional) {
                i++;
                break;
            }
            continue;
        }
        if (!is_flag) {
            if (!positional)
                break; /* the first positional argument: a subcommand */
            if (n >= max_positional)
                return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                    "unexpected argument '%s'", arg);
            positional[n++] = arg;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return BATON_ERR_HELP;
        if (strcmp(arg, BATON_CONFIG_MARKDOWN_FLAG) == 0)
            print_markdown_and_exit(sets, nsets);
        if (arg[1] != '-')
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "unknown flag '%s' (see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        size_t set = 0;
        const struct baton_opt *opt = find_flag(sets, nsets, name, len, &set);
        if (!opt)
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "unknown flag '--%.*s' (see --help)", (int)len, name);
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (BATON_OPT_KIND(opt) == BATON_OPT_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "flag '--%s' needs a value",
                                opt->name);
        }
        snprintf(source, sizeof source, "--%s", opt->name);
        size_t index = (size_t)(opt - sets[set].table);
        for (size_t s = 0; s < set; s++)
            index += sets[s].count;
        baton_err_t err =
            store(opt, sets[set].config, value, source, seen[index], errstr, errstr_size);
        seen[index] = 1;
        if (err)
            return err;
    }
    *npositional = positional ? n : i;
    for (size_t s = 0, base = 0; s < nsets; base += sets[s].count, s++) {
        baton_err_t err = check_required(&sets[s], seen + base, errstr, errstr_size);
        if (err)
            return err;
    }
    return BATON_OK;
}

/* parse_flags() with its `seen` bytes. */
static baton_err_t parse_sets(const struct baton_opt_set *sets, size_t nsets, int argc, char **argv,
                              const char **positional, int max_positional, int *npositional,
                              char *errstr, size_t errstr_size) {
    size_t total = 0;
    for (size_t s = 0; s < nsets; s++)
        total += sets[s].count;
    unsigned char *seen = calloc(total ? total : 1, 1);
    if (!seen)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    int n = 0;
    baton_err_t err = parse_flags(sets, nsets, argc, argv, positional, max_positional, &n, seen,
                                  errstr, errstr_size);
    free(seen);
    if (!err && npositional)
        *npositional = n;
    return err;
}

baton_err_t baton_config_parse(const struct baton_opt *table, size_t count, void *config, int argc,
                               char **argv, int *first_arg, char *errstr, size_t errstr_size) {
    baton_err_t err = baton_config_init(table, count, config, errstr, errstr_size);
    if (err)
        return err;
    const struct baton_opt_set set = {table, count, config};
    return parse_sets(&set, 1, argc, argv, NULL, 0, first_arg, errstr, errstr_size);
}

baton_err_t baton_config_args(const struct baton_opt_set *sets, size_t nsets, int argc, char **argv,
                              const char **positional, int max_positional, int *npositional,
                              char *errstr, size_t errstr_size) {
    static const char *none[1];
    return parse_sets(sets, nsets, argc, argv, positional ? positional : none,
                      positional ? max_positional : 0, npositional, errstr, errstr_size);
}

/* The size of an entry's field in the config struct. */
static size_t field_size(const struct baton_opt *opt) {
    switch (BATON_OPT_KIND(opt)) {
    case BATON_OPT_STRING:
    case BATON_OPT_LIST: return sizeof(char *);
    case BATON_OPT_BOOL: return sizeof(int);
    case BATON_OPT_DOUBLE: return sizeof(double);
    case BATON_OPT_INT:
    case BATON_OPT_DURATION:
        return opt->type & BATON_OPT_INT_FIELD    ? sizeof(int)
               : opt->type & BATON_OPT_SIZE_FIELD ? sizeof(size_t)
                                                  : sizeof(int64_t);
    case BATON_OPT_HEADING: return 0;
    }
    return 0;
}

baton_err_t baton_config_check_defaults(const struct baton_opt *table, size_t count,
                                        const void *reference, size_t size, char *errstr,
                                        size_t errstr_size) {
    for (size_t i = 0; i < count; i++) {
        const struct baton_opt *opt = &table[i];
        size_t width = field_size(opt);
        if (!width || opt->offset + width > size)
            continue; /* a heading, or a field beyond the reference */
        /* The default, stored alone into a scratch struct at the same offset. */
        unsigned char scratch[64] = {0};
        if (width > sizeof scratch - sizeof(int64_t))
            continue;
        struct baton_opt at = *opt;
        at.offset = 0;
        at.type &= ~(unsigned)BATON_OPT_BORROWED;
        baton_err_t err = BATON_OK;
        if (opt->default_value)
            err = store(&at, scratch, opt->default_value, "default", 0, errstr, errstr_size);
        if (err)
            return err;
        const unsigned char *have = (const unsigned char *)reference + opt->offset;
        int same;
        if (is_text(opt)) {
            char *mine, *theirs;
            memcpy(&mine, scratch, sizeof mine);
            memcpy(&theirs, have, sizeof theirs);
            same = (!mine && !theirs) || (mine && theirs && strcmp(mine, theirs) == 0);
            free(mine);
        } else {
            same = memcmp(scratch, have, width) == 0;
        }
        if (!same)
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "the default of --%s ('%s') differs from the library's", opt->name,
                                opt->default_value ? opt->default_value : "(none)");
    }
    return BATON_OK;
}

void baton_config_free(const struct baton_opt *table, size_t count, void *config) {
    for (size_t i = 0; i < count; i++) {
        if (!is_text(&table[i]) ||
            (BATON_OPT_KIND(&table[i]) == BATON_OPT_STRING && (table[i].type & BATON_OPT_BORROWED)))
            continue; /* a borrowed string; a LIST is always owned (joined) */
        char **slot = (char **)(void *)((char *)config + table[i].offset);
        free(*slot);
        *slot = NULL;
    }
}

static const char *type_hint(const struct baton_opt *opt) {
    switch (BATON_OPT_KIND(opt)) {
    case BATON_OPT_STRING: return "TEXT";
    case BATON_OPT_INT: return "N";
    case BATON_OPT_BOOL: return "BOOL";
    case BATON_OPT_DOUBLE: return "X";
    case BATON_OPT_LIST:
        return opt->type & BATON_OPT_KEY_VALUE ? "KEY=VALUE (repeatable)" : "TEXT (repeatable)";
    case BATON_OPT_DURATION: return "DURATION";
    case BATON_OPT_HEADING: return "";
    }
    return "";
}

void baton_config_help_options(FILE *out, const char *title, const struct baton_opt *table,
                               size_t count) {
    if (count && BATON_OPT_KIND(&table[0]) != BATON_OPT_HEADING)
        fprintf(out, "\n%s:\n", title);
    for (size_t i = 0; i < count; i++) {
        const struct baton_opt *opt = &table[i];
        if (BATON_OPT_KIND(opt) == BATON_OPT_HEADING) {
            fprintf(out, "\n%s:\n", opt->doc);
            continue;
        }
        char env[128];
        baton_config_env_name(opt->name, env, sizeof env);
        fprintf(out, "  --%s %s\n      %s  [", opt->name, type_hint(opt), opt->doc);
        if (opt->type & BATON_OPT_NO_ENV)
            fputs("flag only", out);
        else
            fprintf(out, "env %s", env);
        if (opt->type & BATON_OPT_REQUIRED)
            fputs(", required", out);
        if (opt->default_value)
            fprintf(out, ", default '%s'", opt->default_value);
        fprintf(out, "]\n");
    }
}

void baton_config_help(FILE *out, const char *usage, const char *summary,
                       const struct baton_opt *table, size_t count) {
    fprintf(out, "usage: %s\n\n%s\n", usage, summary);
    baton_config_help_options(out, "options (flag, environment variable, default)", table, count);
    fprintf(out, "  -h, --help\n      show this help and exit\n");
}

/* Writes `text` as the content of a Markdown table cell: '|' would end the
 * cell and '<' start an HTML tag ("<host>" in a doc line would vanish). */
static void markdown_cell(FILE *out, const char *text) {
    for (; *text; text++) {
        if (*text == '|')
            fputs("\\|", out);
        else if (*text == '<')
            fputs("&lt;", out);
        else if (*text == '>')
            fputs("&gt;", out);
        else
            fputc(*text, out);
    }
}

/* The type column: the kind of value and, for numbers, the accepted range. */
static void markdown_type(FILE *out, const struct baton_opt *opt) {
    int ranged = opt->min != 0 || opt->max != 0;
    switch (BATON_OPT_KIND(opt)) {
    case BATON_OPT_STRING: fputs("text", out); return;
    case BATON_OPT_LIST: fputs("text, repeatable", out); return;
    case BATON_OPT_BOOL: fputs("bool", out); return;
    case BATON_OPT_INT:
        fputs("integer", out);
        if (ranged)
            fprintf(out, " %.0f to %.0f", opt->min, opt->max);
        return;
    case BATON_OPT_DOUBLE:
        fputs("number", out);
        if (ranged)
            fprintf(out, " %.15g to %.15g", opt->min, opt->max);
        return;
    case BATON_OPT_DURATION: {
        fputs(opt->type & BATON_OPT_NEED_UNIT ? "duration" : "duration (bare number: ms)", out);
        char lo[32], hi[32];
        if (ranged)
            fprintf(out, " %s to %s", baton_duration_text((int64_t)opt->min, lo, sizeof lo),
                    baton_duration_text((int64_t)opt->max, hi, sizeof hi));
        return;
    }
    case BATON_OPT_HEADING: return;
    }
}

static void markdown_header(FILE *out) {
    fprintf(out, "| flag | environment | type | default | meaning |\n");
    fprintf(out, "|---|---|---|---|---|\n");
}

void baton_config_markdown(FILE *out, const struct baton_opt *table, size_t count) {
    if (count && BATON_OPT_KIND(&table[0]) != BATON_OPT_HEADING)
        markdown_header(out);
    for (size_t i = 0; i < count; i++) {
        if (BATON_OPT_KIND(&table[i]) == BATON_OPT_HEADING) {
            fprintf(out, "%s### ", i ? "\n" : "");
            markdown_cell(out, table[i].doc);
            fputs("\n\n", out);
            markdown_header(out);
            continue;
        }
        char env[128];
        baton_config_env_name(table[i].name, env, sizeof env);
        fprintf(out, "| `--%s` | ", table[i].name);
        if (table[i].type & BATON_OPT_NO_ENV)
            fputs("(flag only)", out);
        else
            fprintf(out, "`%s`", env);
        fputs(" | ", out);
        markdown_type(out, &table[i]);
        fputs(" | ", out);
        if (table[i].type & BATON_OPT_REQUIRED) {
            fputs("(required)", out);
        } else if (!table[i].default_value) {
            fputs("(none)", out);
        } else if (!*table[i].default_value) {
            fputs("(empty)", out);
        } else {
            fputc('`', out);
            markdown_cell(out, table[i].default_value);
            fputc('`', out);
        }
        fputs(" | ", out);
        markdown_cell(out, table[i].doc);
        fputs(" |\n", out);
    }
}

int baton_config_start(const char *prog, const char *usage, const char *summary,
                       const struct baton_opt *table, size_t count, void *config, int argc,
                       char **argv, char *const *log_level) {
    char errstr[1024];
    int first_arg = argc;
    baton_err_t err =
        baton_config_parse(table, count, config, argc, argv, &first_arg, errstr, sizeof errstr);
    if (err == BATON_ERR_HELP) {
        baton_config_help(stdout, usage, summary, table, count);
        baton_config_free(table, count, config);
        return 0;
    }
    if (!err && first_arg < argc)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG, "unexpected argument '%s'",
                           argv[first_arg]);
    if (!err && log_level && baton_log_level_parse(*log_level, &baton_log_threshold))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--log-level: unknown level '%s'", *log_level ? *log_level : "");
    if (err) {
        fprintf(stderr, "%s: %s\n", prog, errstr);
        baton_config_free(table, count, config);
        return 2;
    }
    return -1;
}
