/*
 * ctl.h - batonctl's shared state: global options, exit codes, the
 * subcommands, and the small helpers they share (argument parsing, output,
 * connections, task lookup).
 *
 * main.c parses the global options before the command (one config table),
 * then hands the remaining arguments to one subcommand. Each subcommand
 * lives in a cmd_<name>.c (related ones share a file) and returns the
 * process exit code. Its flags are a small option table (common/config.h)
 * parsed by ctl_parse_args() together with the global table, so global
 * options may also follow the command ("status ID --json"). Command flags
 * are flags only, no environment variables (a BATON_QUEUE in the
 * environment must never silently pick the queue an operator acts on).
 *
 * Output: a human table or text by default; with the global --json, exactly
 * one JSON document on stdout. Errors are one line on stderr,
 * "batonctl <command>: <what went wrong>".
 */
#ifndef BATON_CTL_H
#define BATON_CTL_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "redis.h"

struct ctl_config {
    char *pg_dsn;             /* PostgreSQL connection string; NULL = no history */
    char *redis_url;          /* Redis URL */
    int64_t redis_timeout_ms; /* connect and command timeout */
    int64_t retention_ms;     /* how long a canceled task stays in Redis; 0 until
                                 given, then ctl_retention() settles it */
    char *log_level;          /* debug|info|warn|error|off */
    int json;                 /* machine-readable output */
};

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1      /* the operation failed: server unreachable, refused */
#define CTL_EXIT_USAGE 2     /* bad flag, missing or malformed argument */
#define CTL_EXIT_NOT_FOUND 3 /* unknown task id or queue */

/* The subcommands; each returns the exit code. argv[0] is the command name.
 * `config` holds the global options given before the command; the
 * command's ctl_parse_args() adds those given after it. */
int ctl_cmd_migrate(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_status(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_history(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_queues(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_workers(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_dead(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_retry(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_cancel(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_pause(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_resume(struct ctl_config *config, int argc, char **argv);
int ctl_cmd_prune(struct ctl_config *config, int argc, char **argv);

/* The global options (main.c), parsed before the command and again, with
 * the command's flags, after it. */
extern const struct baton_opt ctl_options[];
extern const size_t ctl_option_count;

/* =================================================== subcommand arguments */

/* The bits of every entry of a command's option table: flag only (no
 * environment variable), a STRING borrowed from argv (nothing to free). */
#define CTL_FLAG (BATON_OPT_NO_ENV | BATON_OPT_BORROWED)

struct ctl_usage {
    const char *command;           /* "status" */
    const char *synopsis;          /* "status ID [--queue Q]" */
    const char *summary;           /* what it does, one or more lines */
    const struct baton_opt *flags; /* the command's option table; may be NULL */
    size_t nflags;
    int min_args, max_args; /* positional arguments allowed */
};

#define CTL_HELP_SHOWN (-1)

/*
 * Parses argv[1..argc-1] (argv[0] is the command): the flags of `usage`
 * into `opts` and the global options into `config`, each anywhere among
 * the positional arguments; the log level is applied again. Positional
 * arguments go to `positional` (room for usage->max_args, borrowed from
 * argv) and their number to *npositional. Fields of `opts` whose entry has
 * no default keep the caller's values. Returns CTL_EXIT_OK; CTL_EXIT_USAGE
 * after printing one line on stderr; CTL_HELP_SHOWN after printing the
 * command's help on stdout.
 */
int ctl_parse_args(struct ctl_config *config, const struct ctl_usage *usage, void *opts, int argc,
                   char **argv, const char **positional, int *npositional);

/* Writes one line "batonctl <command>: <message>" on stderr. */
void ctl_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks a queue name / task id given by the user; prints the usage error
 * and returns CTL_EXIT_USAGE when malformed, else CTL_EXIT_OK. */
int ctl_check_queue_name(const char *command, const char *queue);
int ctl_check_task_id(const char *command, const char *id);

/* ================================================================= output */

/*
 * `text` made safe for an operator's terminal: bytes that are not UTF-8
 * become U+FFFD, C0 controls and DEL become \n, \r, \t or \xHH, C1
 * controls (U+0080-U+009F) become \u0080-\u009f; everything else, other
 * UTF-8 included, is unchanged. Every human printer passes text from
 * producers, handlers and servers through it; JSON output does not.
 * Returns a new string the caller frees with free(); NULL for NULL text or
 * when out of memory.
 */
char *ctl_term_text(const char *text);

/* printf to `out` with the whole formatted text passed through
 * ctl_term_text(), except one newline ending the format. */
void ctl_term_printf(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A human table: columns sized to their widest cell, two spaces apart.
 * Cells go through ctl_term_text(). */
struct ctl_table;

/* Creates a table with `ncols` columns named by the NULL-free `headers`.
 * Caller frees with ctl_table_free(). NULL on out of memory. */
struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers);
/* Adds a row of ncols cells (copied; NULL prints "-"). */
void ctl_table_row(struct ctl_table *t, const char *const *cells);
/* Prints the header and rows to `out`. */
void ctl_table_print(const struct ctl_table *t, FILE *out);
void ctl_table_free(struct ctl_table *t);

/* Prints `doc` (stolen: decref'd here) as one JSON document on stdout. */
void ctl_json_print(json_t *doc);

/* RFC 3339 text of `ms` (epoch ms) in buf (BATON_RFC3339_BUFSZ), or "-"
 * when ms <= 0. Returns buf. */
char *ctl_time_text(int64_t ms, char *buf);
/* JSON string of the RFC 3339 time, or JSON null when ms <= 0. New reference. */
json_t *ctl_time_json(int64_t ms);
/* "1.2s", "3m04s", "2h05m", "3d04h": a compact age for tables, into buf. */
char *ctl_age_text(int64_t ms, char *buf, size_t size);

/* ============================================================ connections */

/*
 * Connects to Redis with the global options. On failure prints one line
 * ("batonctl <command>: Redis 127.0.0.1:1: connect: Connection refused")
 * and returns CTL_EXIT_FAIL (CTL_EXIT_USAGE for a malformed URL). On
 * success *out is freed by the caller with baton_redis_destroy().
 */
int ctl_redis_open(const struct ctl_config *config, const char *command, baton_redis_t **out);

/*
 * For commands that write a terminal state (cancel): settles
 * config->retention_ms with the scheduler's published one
 * (common/retention.h): adopted when --retention-ms was not given, the
 * default when none is published. A given value that differs prints one
 * line and returns CTL_EXIT_USAGE; a Redis failure CTL_EXIT_FAIL.
 */
int ctl_retention(struct ctl_config *config, const char *command, baton_redis_t *r);

/*
 * Connects to PostgreSQL with --pg-dsn. BATON_OK, or an error with the one
 * line reason in errstr (no DSN given, unreachable). Caller PQfinish()es.
 */
baton_err_t ctl_pg_open(const struct ctl_config *config, PGconn **out, char *errstr,
                        size_t errstr_size);

/* Runs one Redis command given as NULL-terminated strings; the reply (never
 * an error reply: those are errors with the text in errstr) goes to *reply,
 * freed by the caller with freeReplyObject(). */
baton_err_t ctl_redis_cmd(baton_redis_t *r, redisReply **reply, char *errstr, size_t errstr_size,
                          const char *arg0, ...) __attribute__((sentinel));

/* A sorted list of names (queues), each owned by the list. */
struct ctl_names {
    char **items;
    size_t count;
};
void ctl_names_free(struct ctl_names *names);

/* The members of baton:queues, sorted. */
baton_err_t ctl_known_queues(baton_redis_t *r, struct ctl_names *out, char *errstr,
                             size_t errstr_size);

/*
 * The queues whose task hash baton:{Q}:t:<id> exists: only `queue` when not
 * NULL, else every queue of baton:queues (one pipelined round trip).
 */
baton_err_t ctl_find_task(baton_redis_t *r, const char *id, const char *queue,
                          struct ctl_names *out, char *errstr, size_t errstr_size);

/*
 * The queues to act on for a --queue option: just `queue` (which must be
 * in baton:queues, else CTL_EXIT_NOT_FOUND after one line on stderr), or
 * every known queue when NULL. Returns an exit code; on CTL_EXIT_OK the
 * caller frees *out with ctl_names_free().
 */
int ctl_select_queues(baton_redis_t *r, const char *command, const char *queue,
                      struct ctl_names *out);

/*
 * For retry and cancel: resolves task `id` to exactly one queue. Returns
 * CTL_EXIT_OK with the queue (caller frees) in *queue_out;
 * CTL_EXIT_NOT_FOUND when no queue has it; CTL_EXIT_USAGE when several do
 * and --queue was not given. Errors are printed.
 */
int ctl_resolve_task(baton_redis_t *r, const char *command, const char *id, const char *queue,
                     char **queue_out);

/* Value of `name` in a flat [field, value, ...] reply (HGETALL), or NULL. */
const char *ctl_reply_field(const redisReply *fields, const char *name);

/* ============================================================ PostgreSQL */

/* How a result column becomes JSON. Times are selected as epoch
 * milliseconds (CTL_SQL_MS) and printed as RFC 3339. */
enum ctl_pg_kind { CTL_PG_TEXT, CTL_PG_INT, CTL_PG_TIME, CTL_PG_JSON };

/* SQL for a timestamptz column as epoch milliseconds (bigint). */
#define CTL_SQL_MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"

/* Cell (row, col) as JSON (null when SQL NULL). New reference. */
json_t *ctl_pg_json(const PGresult *res, int row, int col, enum ctl_pg_kind kind);
/* Cell as text (borrowed from res), NULL when SQL NULL. */
const char *ctl_pg_text(const PGresult *res, int row, int col);
/* Cell as an integer, 0 when SQL NULL. */
int64_t ctl_pg_int(const PGresult *res, int row, int col);

/* JSON string of `text`; bytes that are not UTF-8 become '?'; null for
 * NULL. New reference. */
json_t *ctl_json_str(const char *text);

/* `text` parsed as JSON when it is JSON, else as a JSON string; null for
 * NULL. New reference. */
json_t *ctl_json_from_text(const char *text);

#endif
