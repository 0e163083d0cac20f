/*
 * config.h - configuration as one table per binary.
 *
 * Each binary describes its settings once, as an array of struct baton_opt
 * (name, type, default, doc, where the value goes). From that one table come
 * the long flag (--redis-url), the environment variable (BATON_REDIS_URL),
 * the --help text and the docs page. Precedence: default < environment <
 * flag; the flag wins.
 *
 * Values are stored into a caller's config struct at `offset`: a char * for
 * STRING and LIST (owned by the struct, freed with baton_config_free()), an int64_t
 * for INT and DURATION_MS, an int for BOOL, a double for DOUBLE.
 */
#ifndef BATON_CONFIG_H
#define BATON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

enum baton_opt_type {
    BATON_OPT_STRING,  /* char *, owned by the config struct */
    BATON_OPT_INT,     /* int64_t within [min, max] */
    BATON_OPT_BOOL,    /* int: 1/0; "true|false|1|0|yes|no|on|off" */
    BATON_OPT_DOUBLE,  /* double within [min, max] */
    BATON_OPT_LIST,    /* char *, entries joined by '\n': a flag may repeat
                          (each adds one entry); the environment variable
                          holds entries on separate lines */
};

struct baton_opt {
    const char *name;          /* "redis-url": flag --redis-url, env BATON_REDIS_URL */
    enum baton_opt_type type;  /* how the text is parsed and stored */
    const char *default_value; /* text form of the default; NULL = unset */
    const char *doc;           /* one line for --help and docs */
    size_t offset;             /* offsetof(config struct, field) */
    double min, max;           /* numeric range (INT, DOUBLE); 0,0 = none */
};

/*
 * Fills `config` from defaults, then BATON_* environment variables, then the
 * flags in argv[1..argc-1] ("--name value" or "--name=value"; a BOOL flag
 * alone means true). Parsing stops at the first argument that is not a flag
 * or after "--"; its index goes to *first_arg (argc when none), so a CLI can
 * read a subcommand and its own flags after it.
 *
 * BATON_CONFIG_MARKDOWN_FLAG among the flags prints the table as Markdown
 * and exits the process with 0: the entry point of the docs generator.
 *
 * Returns BATON_OK; BATON_ERR_HELP when -h/--help was given (the caller
 * prints baton_config_help()); BATON_ERR_CONFIG with one clear line in
 * errstr naming the flag or variable and the problem. On error, strings
 * already stored stay owned by `config`: free with baton_config_free().
 */
baton_err_t baton_config_parse(const struct baton_opt *table, size_t count,
                               void *config, int argc, char **argv,
                               int *first_arg, char *errstr, size_t errstr_size);

/*
 * The start of every daemon's main(): parses the table like
 * baton_config_parse() (no positional arguments allowed), prints --help
 * (`usage`, `summary`) to stdout, and applies the log level found at
 * `*log_level` once parsed (a pointer into `config`). Returns -1 to go on,
 * or the exit code to leave with: 0 after --help, 2 after a bad flag (one
 * line "<prog>: <reason>" on stderr). On a return other than -1 the
 * config's strings are already freed.
 */
int baton_config_start(const char *prog, const char *usage, const char *summary,
                       const struct baton_opt *table, size_t count, void *config, int argc,
                       char **argv, char *const *log_level);

/* Frees the STRING values stored in `config` and sets them to NULL. */
void baton_config_free(const struct baton_opt *table, size_t count, void *config);

/*
 * Writes the --help text: usage line, `summary`, then one entry per option
 * with its flag, environment variable, default and doc.
 */
void baton_config_help(FILE *out, const char *usage, const char *summary,
                       const struct baton_opt *table, size_t count);

/*
 * Writes the table as a Markdown table (flag, environment variable, type
 * and range, default, doc) for docs/configuration.md. Entries from index
 * `settings` on are flags only (a binary that ignores their variables says
 * so); pass `count` when every entry has its variable.
 */
void baton_config_markdown(FILE *out, const struct baton_opt *table, size_t count, size_t settings);

/*
 * The hidden flag that prints a binary's table with baton_config_markdown()
 * to stdout and exits 0: baton_config_parse() handles it wherever it meets
 * it among the flags, so a main needs no code for it (baton-submit handles
 * it first, to mark its flags-only entries). docs/configuration.md is
 * generated from it (cmake --build build --target configuration-doc).
 */
#define BATON_CONFIG_MARKDOWN_FLAG "--help-markdown"

/* Writes "BATON_" + upper(name, '-' -> '_') into buf. */
void baton_config_env_name(const char *name, char *buf, size_t size);

#endif
