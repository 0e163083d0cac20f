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
 * STRING and LIST (owned by the struct, freed with baton_config_free()), an
 * int64_t for INT and DURATION (milliseconds; an int or a size_t with
 * BATON_OPT_INT_FIELD or BATON_OPT_SIZE_FIELD), an int for BOOL, a double for DOUBLE. Entries may
 * be flags only (BATON_OPT_NO_ENV), required (BATON_OPT_REQUIRED), grouped
 * under section headings (BATON_OPT_SECTION) for --help and the docs; a
 * command line may mix the flags of several tables (baton_config_args(),
 * batonctl's global options and its command's).
 */
#ifndef BATON_CONFIG_H
#define BATON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

enum baton_opt_type {
    BATON_OPT_STRING,   /* char *, owned by the config struct (or BATON_OPT_BORROWED) */
    BATON_OPT_INT,      /* int64_t within [min, max] (or BATON_OPT_INT_FIELD...) */
    BATON_OPT_BOOL,     /* int: 1/0; "true|false|1|0|yes|no|on|off" */
    BATON_OPT_DOUBLE,   /* double within [min, max] */
    BATON_OPT_LIST,     /* char *, entries joined by '\n': a flag may repeat
                           (each adds one entry); the environment variable
                           holds entries on separate lines */
    BATON_OPT_DURATION, /* int64_t milliseconds within [min, max]:
                           "500ms", "30s", "2m", "1h", "1d", "1w" or a sum
                           ("1h30m"); a bare number is milliseconds unless
                           BATON_OPT_NEED_UNIT */
    BATON_OPT_HEADING,  /* no option: starts a help section titled `doc`
                           (BATON_OPT_SECTION) */
};

/*
 * Bits OR'ed into an entry's type (BATON_OPT_STRING | BATON_OPT_NO_ENV), so
 * a plain entry stays the seven fields it always was.
 */
#define BATON_OPT_TYPE_MASK 0xffu /* the enum baton_opt_type part */
/* Flag only: no environment variable (what a command acts on, a task's
 * fields: a variable left in the environment must not pick them). */
#define BATON_OPT_NO_ENV 0x100u
/* Must be given: a STRING or LIST must hold a non-empty value (from the
 * flag, the variable or an earlier parse); another type, the flag or the
 * variable in this parse. */
#define BATON_OPT_REQUIRED 0x200u
/* DURATION: a bare number is refused, where "30" would be a trap (prune
 * --older-than 30: 30 ms or 30 days?). */
#define BATON_OPT_NEED_UNIT 0x400u
/* STRING: a const char * borrowed from argv, the environment or the
 * default text, valid for the process's life; never freed. */
#define BATON_OPT_BORROWED 0x800u
/* INT, DURATION: the field is an int instead of an int64_t. */
#define BATON_OPT_INT_FIELD 0x1000u
/* INT, DURATION: the field is a size_t (the range must start at 0 or more). */
#define BATON_OPT_SIZE_FIELD 0x2000u
/* LIST: each entry is KEY=VALUE (so --help says). */
#define BATON_OPT_KEY_VALUE 0x4000u

struct baton_opt {
    const char *name;          /* "redis-url": flag --redis-url, env BATON_REDIS_URL;
                                  NULL for a heading */
    unsigned type;             /* enum baton_opt_type | BATON_OPT_* bits */
    const char *default_value; /* text form of the default; NULL = unset */
    const char *doc;           /* one line for --help and docs; a heading's title */
    size_t offset;             /* offsetof(config struct, field) */
    double min, max;           /* numeric range (INT, DOUBLE; DURATION in ms); 0,0 = none */
};

/* The enum baton_opt_type of an entry, without the bits. */
#define BATON_OPT_KIND(opt) ((enum baton_opt_type)((opt)->type & BATON_OPT_TYPE_MASK))

/* A section heading among the entries: --help and the docs page group the
 * entries after it under `title`. */
#define BATON_OPT_SECTION(title)                                                                   \
    { NULL, BATON_OPT_HEADING, NULL, (title), 0, 0, 0 }

/* One table and the struct its entries store into: a command line may mix
 * the flags of several (batonctl's global options and its command's). */
struct baton_opt_set {
    const struct baton_opt *table;
    size_t count;
    void *config;
};

/*
 * Fills `config` from defaults, then BATON_* environment variables (not for
 * BATON_OPT_NO_ENV entries), then the flags in argv[1..argc-1] ("--name
 * value" or "--name=value"; a BOOL flag alone means true). Parsing stops at
 * the first argument that is not a flag or after "--"; its index goes to
 * *first_arg (argc when none), so a CLI can read a subcommand and go on
 * with baton_config_args() after it.
 *
 * BATON_CONFIG_MARKDOWN_FLAG among the flags prints the table as Markdown
 * and exits the process with 0: the entry point of the docs generator.
 *
 * Returns BATON_OK; BATON_ERR_HELP when -h/--help was given (the caller
 * prints baton_config_help()); BATON_ERR_CONFIG with one clear line in
 * errstr naming the flag or variable and the problem (a BATON_OPT_REQUIRED
 * entry not given included). On error, strings already stored stay owned
 * by `config`: free with baton_config_free().
 */
baton_err_t baton_config_parse(const struct baton_opt *table, size_t count, void *config, int argc,
                               char **argv, int *first_arg, char *errstr, size_t errstr_size);

/*
 * The first step of baton_config_parse() alone: sets the table's strings to
 * NULL, stores the defaults, then the environment variables. Same errors.
 */
baton_err_t baton_config_init(const struct baton_opt *table, size_t count, void *config,
                              char *errstr, size_t errstr_size);

/*
 * The flags step, over several tables at once: a flag of any set's table
 * may stand anywhere in argv[1..argc-1], before, between or after the
 * positional arguments (so "batonctl status ID --json" and "batonctl --json
 * status ID" mean the same); "--" makes every later argument positional.
 * Positional arguments go to `positional` (room for `max_positional`, the
 * strings borrowed from argv) and their number to *npositional; one more is
 * an error ("unexpected argument 'x'"). Values replace what
 * baton_config_init() stored; REQUIRED entries are checked at the end.
 * Returns like baton_config_parse().
 */
baton_err_t baton_config_args(const struct baton_opt_set *sets, size_t nsets, int argc, char **argv,
                              const char **positional, int max_positional, int *npositional,
                              char *errstr, size_t errstr_size);

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

/*
 * For a library whose defaults also exist as a C function (a config struct
 * filled by baton_worker_config_defaults()): checks that the default text
 * of every entry that stores into the first `size` bytes of the config
 * gives the value `reference` holds there (an entry without a default: a
 * NULL or zero field). BATON_ERR_CONFIG names the first entry that
 * disagrees and both values. `reference` is borrowed.
 */
baton_err_t baton_config_check_defaults(const struct baton_opt *table, size_t count,
                                        const void *reference, size_t size, char *errstr,
                                        size_t errstr_size);

/* Frees the STRING and LIST values stored in `config` (not the
 * BATON_OPT_BORROWED ones) and sets them to NULL. */
void baton_config_free(const struct baton_opt *table, size_t count, void *config);

/*
 * Writes the --help text: usage line, `summary`, then the options under
 * "options (flag, environment variable, default)" and the table's section
 * headings, then -h/--help.
 */
void baton_config_help(FILE *out, const char *usage, const char *summary,
                       const struct baton_opt *table, size_t count);

/*
 * Writes the entries of `table` for --help under the heading `title` (and
 * the table's own section headings): flag and kind of value, doc, then the
 * environment variable (or "flag only"), "required", and the default.
 */
void baton_config_help_options(FILE *out, const char *title, const struct baton_opt *table,
                               size_t count);

/*
 * Writes the table as Markdown tables (flag, environment variable, type
 * and range, default, doc) for docs/configuration.md: one table, and one
 * more under a "### title" line at each section heading. BATON_OPT_NO_ENV
 * entries say "(flag only)".
 */
void baton_config_markdown(FILE *out, const struct baton_opt *table, size_t count);

/*
 * The hidden flag that prints a binary's table with baton_config_markdown()
 * to stdout and exits 0: baton_config_parse() handles it wherever it meets
 * it among the flags, so a main needs no code for it. docs/configuration.md
 * is generated from it (cmake --build build --target configuration-doc).
 */
#define BATON_CONFIG_MARKDOWN_FLAG "--help-markdown"

/*
 * Parses a duration: "500ms", "30s", "2m", "1h", "1d", "1w", or a sum of
 * them ("1h30m"); with `bare_ms`, a number alone is milliseconds. Returns
 * 0 with the milliseconds in *ms, or -1 on malformed or absurdly large text.
 */
int baton_duration_parse(const char *text, int bare_ms, int64_t *ms);

/* Writes `ms` in the largest unit that divides it ("7d", "30s", "250ms";
 * "0ms") into buf. Returns buf. */
char *baton_duration_text(int64_t ms, char *buf, size_t size);

/* Writes "BATON_" + upper(name, '-' -> '_') into buf. */
void baton_config_env_name(const char *name, char *buf, size_t size);

#endif
