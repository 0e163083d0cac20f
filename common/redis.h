/*
 * redis.h - Redis connection, URL parsing and baton's Lua scripts.
 *
 * A baton_redis_t is one synchronous hiredis connection that knows how to
 * come back: it remembers its URL, reconnects on the next call after an I/O
 * error, and reloads the Lua scripts (which a restarted Redis has lost) when
 * Redis answers NOSCRIPT. Pipelining is explicit: append commands, then read
 * their replies in order, so a batch costs one round trip.
 *
 * Scripts are the files of common/scripts/, embedded at build time, loaded
 * once with SCRIPT LOAD and called by SHA1.
 *
 * Not thread-safe: one baton_redis_t per thread.
 */
#ifndef BATON_REDIS_H
#define BATON_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "embedded.h"
#include "error.h"

/* The scripts compiled into this binary (common/scripts/), sorted by name. */
extern const struct baton_embedded_file baton_scripts[];
extern const size_t baton_scripts_count;

struct baton_redis_url {
    char host[256];     /* host name or address */
    int port;           /* default 6379 */
    int db;             /* database number, default 0 */
    char username[128]; /* ACL user, "" for none */
    char password[256]; /* "" for none */
};

typedef struct baton_redis baton_redis_t;

/*
 * Parses "redis://[[user]:password@]host[:port][/db]"; the user and the
 * password are percent-decoded (%40 for '@', %3A for ':', %25 for '%').
 * Returns BATON_ERR_CONFIG with the reason in errstr for anything else; the
 * reason shows the URL redacted (baton_redis_url_redact) and never the
 * password, and *out is left zeroed.
 */
baton_err_t baton_redis_parse_url(const char *url, struct baton_redis_url *out, char *errstr,
                                  size_t errstr_size);

/*
 * Writes `url` into `buf` (of `size` bytes, NUL-ended, truncated if need
 * be) with its password replaced by "***": "redis://user:***@host:6379/0".
 * Every Redis URL that baton prints goes through here.
 */
void baton_redis_url_redact(const char *url, char *buf, size_t size);

/*
 * How much of what Redis acknowledged must survive a Redis crash. Ingest
 * commits Kafka offsets once Redis has replied, and workers report outcomes
 * once Redis has replied: with AOF off or `appendfsync everysec` a crash
 * loses replied writes (lost tasks, outcomes rolled back; guarantees 1, 3
 * and 4). The daemons set baton_redis_durability from --redis-durability
 * before their first connection.
 */
typedef enum baton_redis_durability {
    BATON_REDIS_DURABILITY_UNCHECKED = 0, /* tools and tests: no check (the default) */
    BATON_REDIS_DURABILITY_STRICT,        /* refuse a Redis without AOF + appendfsync always */
    BATON_REDIS_DURABILITY_RELAXED,       /* the operator accepts the loss: no check */
} baton_redis_durability_t;

/*
 * Checked by every connect and reconnect (baton_redis_ensure): with STRICT
 * a connection to a Redis that does not fsync each write fails with
 * BATON_ERR_CONFIG, so a Redis restarted with a weaker configuration stops
 * writes (ingest pauses, workers wait) instead of silently risking them.
 * Set once, before any thread connects.
 */
extern baton_redis_durability_t baton_redis_durability;

/* Parses "strict" or "relaxed" into *out; BATON_ERR_CONFIG otherwise. */
baton_err_t baton_redis_durability_parse(const char *text, baton_redis_durability_t *out,
                                         char *errstr, size_t errstr_size);

/*
 * A daemon's --redis-durability: parses `text` into baton_redis_durability
 * and, for "relaxed", logs a warning as `component` (once, at start: the
 * operator chose the risk, the log and the metric
 * baton_redis_durability_relaxed say so). Call before connecting.
 */
baton_err_t baton_redis_durability_configure(const char *text, const char *component, char *errstr,
                                             size_t errstr_size);

/* Help text of the gauge baton_redis_durability_relaxed, which both daemons export. */
#define BATON_REDIS_DURABILITY_METRIC_HELP                                                         \
    "1 when started with --redis-durability=relaxed: Redis is not required to fsync each "         \
    "write, and a Redis crash can lose tasks and outcomes it acknowledged."

/*
 * The verdict on a Redis whose CONFIG says `appendonly` and `appendfsync`
 * (NULL when not reported): BATON_OK for "yes" and "always", else
 * BATON_ERR_CONFIG with what is missing and how to fix it in errstr.
 * `where` ("host:port") names the server in the message.
 */
baton_err_t baton_redis_durability_verdict(const char *where, const char *appendonly,
                                           const char *appendfsync, char *errstr,
                                           size_t errstr_size);

/*
 * Creates a handle for `url` without connecting: its first command (or
 * baton_redis_ensure) connects, as every later one reconnects, with the
 * same setup each time (AUTH, SELECT, the durability check, the scripts).
 * For a thread that must keep running while Redis is down: it holds one
 * handle from the start and never asks "am I connected yet?".
 * On success *out is a handle the caller frees with baton_redis_destroy().
 * Fails only for a bad URL (BATON_ERR_CONFIG) or memory (BATON_ERR_NOMEM).
 */
baton_err_t baton_redis_new(const char *url, int timeout_ms, baton_redis_t **out, char *errstr,
                            size_t errstr_size);

/*
 * Connects to `url` with `timeout_ms` for connect and for each command,
 * authenticates, selects the database and loads every embedded script.
 * On success *out is a handle the caller frees with baton_redis_destroy().
 * BATON_ERR_CONFIG for a bad URL, BATON_ERR_REDIS when unreachable.
 */
baton_err_t baton_redis_connect(const char *url, int timeout_ms, baton_redis_t **out, char *errstr,
                                size_t errstr_size);

/* Closes the connection and frees `r`. NULL is a no-op. */
void baton_redis_destroy(baton_redis_t *r);

/*
 * Makes sure the connection is up, connecting (a handle from
 * baton_redis_new) or reconnecting (and reloading scripts) if a previous
 * call broke it. Every command calls it first. BATON_ERR_REDIS when Redis
 * is still unreachable, BATON_ERR_CONFIG when it fails the durability check.
 */
baton_err_t baton_redis_ensure(baton_redis_t *r, char *errstr, size_t errstr_size);

/*
 * Runs one command (argv form) and returns its reply in *reply, which the
 * caller frees with freeReplyObject(). A Redis error reply is returned as
 * BATON_ERR_REDIS with its text in errstr (and *reply NULL).
 */
baton_err_t baton_redis_command(baton_redis_t *r, redisReply **reply, int argc, const char **argv,
                                const size_t *argvlen, char *errstr, size_t errstr_size);

/*
 * Starts a pipeline: if an earlier one left replies unread (it stopped at
 * an error), the connection is dropped and reopened by the next call, so
 * no reply is ever taken for another command's. Call before the first
 * append of each pipeline; the single-call functions do it themselves.
 */
void baton_redis_pipeline_begin(baton_redis_t *r);

/*
 * Pipelining: appends a command to the output buffer without waiting.
 * Read each appended command's reply, in order, with baton_redis_get_reply().
 */
baton_err_t baton_redis_append(baton_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                               char *errstr, size_t errstr_size);

/*
 * A command in the Redis protocol (RESP), as baton_redis_append sends it:
 * the `nprefix` arguments of prefix (lengths in prefix_len) then the argc
 * of argv (lengths in argvlen, or strlen() when NULL). baton_redis_format
 * writes it to `out`, which has room for baton_redis_format_size() bytes,
 * and returns the bytes written. Pure.
 */
size_t baton_redis_format_size(int nprefix, const char *const *prefix, const size_t *prefix_len,
                               int argc, const char *const *argv, const size_t *argvlen);
size_t baton_redis_format(char *out, int nprefix, const char *const *prefix,
                          const size_t *prefix_len, int argc, const char *const *argv,
                          const size_t *argvlen);

/*
 * Reads the next pipelined reply. The reply (which may be an error reply:
 * check reply->type) goes to *reply; caller frees it with freeReplyObject().
 * A reply "NOSCRIPT" marks the scripts for reloading, so that the caller's
 * retry of the batch finds them. BATON_ERR_REDIS on I/O errors (the
 * connection is then closed and reopened by the next call).
 */
baton_err_t baton_redis_get_reply(baton_redis_t *r, redisReply **reply, char *errstr,
                                  size_t errstr_size);

/*
 * Readiness probe: PING over `*cached` (connected on first use to `url`
 * with `timeout_ms`; dropped after a failure so the next probe starts
 * afresh). The caller serialises probes sharing one `cached`. Returns
 * BATON_OK when Redis answered; else BATON_ERR_REDIS with the reason.
 */
baton_err_t baton_redis_probe(baton_redis_t **cached, const char *url, int timeout_ms, char *errstr,
                              size_t errstr_size);

/*
 * Refuses a Redis that may evict keys: BATON_ERR_CONFIG unless
 * maxmemory-policy is "noeviction" (guarantee 9: no task may disappear).
 */
baton_err_t baton_redis_check_policy(baton_redis_t *r, char *errstr, size_t errstr_size);

/*
 * Reads INFO memory: *max is maxmemory in bytes (0 = no limit), *used the
 * bytes Redis compares with it before it refuses a write: used_memory less
 * mem_not_counted_for_evict (the AOF buffer and replicas' output buffers,
 * which can be large for a moment and never make Redis refuse a write).
 */
baton_err_t baton_redis_memory(baton_redis_t *r, uint64_t *used, uint64_t *max, char *errstr,
                               size_t errstr_size);

/* The same from an INFO memory text; 0 if it has no used_memory field. */
int baton_redis_memory_parse(const char *info, uint64_t *used, uint64_t *max);

/* Redis TIME in Unix epoch milliseconds (guarantee 5: time from Redis). */
baton_err_t baton_redis_time_ms(baton_redis_t *r, int64_t *ms, char *errstr, size_t errstr_size);

#endif
