/*
 * config.c - table-driven configuration: defaults, environment, flags.
 *
 * The three sources are applied in order of precedence over the same store
 * function, so a value is validated identically wherever it came from and an
 * error names its source ("--priority" or "BATON_PRIORITY"). Only the table's
 * long flags are accepted: a typo is an error, never silently ignored.
 */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
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

/* Parses `text` for `opt` and stores it; `source` names where it came from.
 * `append`: a repeated LIST flag adds an entry instead of replacing. */
static baton_err_t store(const struct baton_opt *opt, void *config, const char *text,
                         const char *source, int append, char *errstr, size_t errstr_size) {
    char *field = (char *)config + opt->offset;
    int ranged = opt->min != 0 || opt->max != 0;
    switch (opt->type) {
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
                                "%s: %lld is out of range [%.0f, %.0f]", source, v,
                                opt->min, opt->max);
        int64_t iv = (int64_t)v;
        memcpy(field, &iv, sizeof iv);
        return BATON_OK;
    }
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
                                "%s: %g is out of range [%g, %g]", source, v, opt->min,
                                opt->max);
        memcpy(field, &v, sizeof v);
        return BATON_OK;
    }
    }
    return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "%s: unknown option type",
                        source);
}

static const struct baton_opt *find_flag(const struct baton_opt *table, size_t count,
                                         const char *name, size_t len) {
    for (size_t i = 0; i < count; i++)
        if (strlen(table[i].name) == len && strncmp(table[i].name, name, len) == 0)
            return &table[i];
    return NULL;
}

baton_err_t baton_config_parse(const struct baton_opt *table, size_t count,
                               void *config, int argc, char **argv,
                               int *first_arg, char *errstr, size_t errstr_size) {
    baton_err_t err;
    char source[160];

    for (size_t i = 0; i < count; i++) {
        if (table[i].type == BATON_OPT_STRING || table[i].type == BATON_OPT_LIST) {
            char **slot = (char **)(void *)((char *)config + table[i].offset);
            *slot = NULL;
        }
        if (!table[i].default_value)
            continue;
        snprintf(source, sizeof source, "default of --%s", table[i].name);
        err = store(&table[i], config, table[i].default_value, source, 0, errstr, errstr_size);
        if (err)
            return err;
    }

    for (size_t i = 0; i < count; i++) {
        char env[128];
        baton_config_env_name(table[i].name, env, sizeof env);
        const char *value = getenv(env);
        if (!value)
            continue;
        err = store(&table[i], config, value, env, 0, errstr, errstr_size);
        if (err)
            return err;
    }

    /* Flags replace what the environment gave; repeated LIST flags add up. */
    unsigned char *seen = calloc(count ? count : 1, 1);
    if (!seen)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            free(seen);
            return BATON_ERR_HELP;
        }
        if (strcmp(arg, BATON_CONFIG_MARKDOWN_FLAG) == 0) {
            /* Handled here, not by each main, so every binary with a table
             * serves the docs generator (tests/docs/configuration.py). */
            free(seen);
            baton_config_markdown(stdout, table, count, count);
            baton_config_free(table, count, config);
            exit(fflush(stdout) == 0 ? 0 : 1);
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (arg[0] == '-' && arg[1] != '\0') {
                free(seen);
                return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                    "unknown flag '%s' (see --help)", arg);
            }
            break; /* first positional argument */
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct baton_opt *opt = find_flag(table, count, name, len);
        if (!opt) {
            free(seen);
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "unknown flag '--%.*s' (see --help)", (int)len, name);
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (opt->type == BATON_OPT_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            free(seen);
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "flag '--%s' needs a value", opt->name);
        }
        snprintf(source, sizeof source, "--%s", opt->name);
        size_t index = (size_t)(opt - table);
        err = store(opt, config, value, source, seen[index], errstr, errstr_size);
        seen[index] = 1;
        if (err) {
            free(seen);
            return err;
        }
    }
    free(seen);
    if (first_arg)
        *first_arg = i;
    return BATON_OK;
}

void baton_config_free(const struct baton_opt *table, size_t count, void *config) {
    for (size_t i = 0; i < count; i++) {
        if (table[i].type != BATON_OPT_STRING && table[i].type != BATON_OPT_LIST)
            continue;
        char **slot = (char **)(void *)((char *)config + table[i].offset);
        free(*slot);
        *slot = NULL;
    }
}

static const char *type_hint(enum baton_opt_type type) {
    switch (type) {
    case BATON_OPT_STRING: return "TEXT";
    case BATON_OPT_INT: return "N";
    case BATON_OPT_BOOL: return "BOOL";
    case BATON_OPT_DOUBLE: return "X";
    case BATON_OPT_LIST: return "TEXT (repeatable)";
    }
    return "";
}

void baton_config_help(FILE *out, const char *usage, const char *summary,
                       const struct baton_opt *table, size_t count) {
    fprintf(out, "usage: %s\n\n%s\n\noptions (flag, environment variable, default):\n",
            usage, summary);
    for (size_t i = 0; i < count; i++) {
        char env[128];
        baton_config_env_name(table[i].name, env, sizeof env);
        fprintf(out, "  --%s %s\n      %s  [env %s", table[i].name,
                type_hint(table[i].type), table[i].doc, env);
        if (table[i].default_value)
            fprintf(out, ", default '%s'", table[i].default_value);
        fprintf(out, "]\n");
    }
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
    switch (opt->type) {
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
    }
}

void baton_config_markdown(FILE *out, const struct baton_opt *table, size_t count,
                           size_t settings) {
    fprintf(out, "| flag | environment | type | default | meaning |\n");
    fprintf(out, "|---|---|---|---|---|\n");
    for (size_t i = 0; i < count; i++) {
        char env[128];
        baton_config_env_name(table[i].name, env, sizeof env);
        fprintf(out, "| `--%s` | ", table[i].name);
        if (i < settings)
            fprintf(out, "`%s`", env);
        else
            fputs("(flag only)", out);
        fputs(" | ", out);
        markdown_type(out, &table[i]);
        fputs(" | ", out);
        if (!table[i].default_value) {
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
