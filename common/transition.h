/*
 * transition.h - one typed C function per Redis script of common/scripts/.
 *
 * Every task transition is a Lua script (docs/redis.md): its KEYS and ARGV
 * are positional, its answers are Redis replies and its refusals are error
 * replies whose first word is a code ("STALE task t is ..."). This module is
 * the only place that knows those positions and codes. Callers pass a
 * struct baton_queue_keys (common/queue.h) and typed values, and get a
 * baton_err_t back:
 *
 *     STALE     -> BATON_ERR_STALE_TOKEN  (the fencing token is no longer current)
 *     NOTFOUND  -> BATON_ERR_NOT_FOUND    (no such task)
 *     STATE     -> BATON_ERR_STATE        (the task is in a state the call refuses)
 *     NOGROUP   -> BATON_ERR_NOT_FOUND    (orphans.lua, or Redis itself: no such
 *                                          stream or consumer group)
 *     BUSYGROUP -> BATON_ERR_EXISTS       (Redis: XGROUP CREATE of a group that exists)
 *     UNBLOCKED -> BATON_ERR_NOT_FOUND    (Redis: a blocked XREADGROUP's stream was deleted)
 *     NOSCRIPT  -> BATON_ERR_REDIS        (a restarted Redis lost the scripts; the
 *                                          next call on the connection reloads them)
 *     anything else -> BATON_ERR_REFUSED  (OOM, BUSY ...: Redis refused, the
 *                                          connection is fine)
 *
 * and a broken connection is BATON_ERR_REDIS, as everywhere. The
 * script's message (less its code word) goes to errstr. The stream
 * codes live here too (baton_tr_reply_error) because orphans.lua answers
 * with Redis's own NOGROUP: one mapping for both.
 *
 * Each script has up to three forms:
 *   baton_tr_X()         one call, one round trip; NOSCRIPT (a restarted
 *                        Redis) is retried once after the reload;
 *   baton_tr_append_X()  appends the call to the caller's pipeline
 *                        (after baton_redis_pipeline_begin), and
 *   baton_tr_read_X()    reads its reply, in pipeline order. An error reply
 *                        is consumed like any other, so the pipeline stays
 *                        in step: read every reply even after an error.
 *
 * baton_tr_scripts[] describes every script (KEYS and ARGV, as documented
 * in the script's header comment); the functions build their arguments
 * from it, and tests/unit/test_transition.c compares it with the headers,
 * so the C side and the Lua side cannot drift apart.
 *
 * Strings passed in are borrowed for the call. Not thread-safe beyond the
 * baton_redis_t given (one per thread).
 */
#ifndef BATON_TRANSITION_H
#define BATON_TRANSITION_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "queue.h"
#include "redis.h"
#include "state.h"
#include "task.h"

/* --------------------------------------------------------- the table */

/* The scripts, in the order of baton_tr_scripts[]. */
typedef enum baton_tr_script_id {
    BATON_TR_ACK = 0,
    BATON_TR_CANCEL,
    BATON_TR_CLAIM,
    BATON_TR_COMPLETE,
    BATON_TR_ENQUEUE,
    BATON_TR_EXPIRE,
    BATON_TR_FAIL,
    BATON_TR_FINISH_CANCELED,
    BATON_TR_HEARTBEAT,
    BATON_TR_ORPHANS,
    BATON_TR_PROMOTE,
    BATON_TR_RECLAIM,
    BATON_TR_RENEW,
    BATON_TR_REQUEUE,
    BATON_TR_RETRY,
    BATON_TR_SCRIPT_COUNT
} baton_tr_script_id_t;

/* Where the functions take KEYS[i] from. */
struct baton_tr_key {
    const char *doc; /* its description in the script's header, e.g. "ready" */
    ptrdiff_t field; /* offset in struct baton_queue_keys; -1: a key the
                        function passes itself (registry, stream) */
};

/* One script's interface, as its header comment documents it. */
struct baton_tr_script {
    const char *name;                /* file name, "claim.lua" */
    size_t nkeys;                    /* number of KEYS */
    const struct baton_tr_key *keys; /* KEYS[1..nkeys] */
    size_t nargs;                    /* number of fixed ARGV */
    const char *const *args;         /* ARGV[1..nargs] descriptions */
    const char *rest;                /* the header's "then ..." line on the
                                        ARGV after the fixed ones; NULL: none */
};

/* Every script but _lib.lua, indexed by baton_tr_script_id_t. */
extern const struct baton_tr_script baton_tr_scripts[BATON_TR_SCRIPT_COUNT];

/*
 * Failure hooks for tests/unit/test_transition.c: replaced, they see the
 * exact KEYS/ARGV a function sends (append) and feed it replies (get_reply)
 * without a Redis. NULL (the default): baton_redis_append_script (redis_script.h) and
 * baton_redis_get_reply.
 */
extern baton_err_t (*baton_tr_append_hook)(baton_redis_t *r, const char *name, int numkeys,
                                           int argc, const char **argv, const size_t *lens,
                                           char *errstr, size_t errstr_size);
extern baton_err_t (*baton_tr_get_reply_hook)(baton_redis_t *r, redisReply **reply, char *errstr,
                                              size_t errstr_size);

/*
 * The baton_err_t of an error reply (see the table at the top), with the
 * reply's message (less its code word) in errstr, prefixed by `what` for
 * codes that are not a script's answer. `reply` must be an error reply.
 * The one place where a reply's text is looked at.
 */
baton_err_t baton_tr_reply_error(const redisReply *reply, const char *what, char *errstr,
                                 size_t errstr_size);

/*
 * A plain Redis command (argv form) whose error replies are mapped by
 * baton_tr_reply_error, for the stream commands whose NOGROUP, BUSYGROUP
 * and UNBLOCKED the history writer acts on. *reply as baton_redis_command.
 */
baton_err_t baton_tr_command(baton_redis_t *r, redisReply **reply, int argc, const char **argv,
                             char *errstr, size_t errstr_size);

/* ------------------------------------------------------------ ingest */

/* One task of an enqueue batch: the parsed task and where Kafka had it. */
struct baton_tr_new_task {
    const struct baton_task *task; /* borrowed; its queue is the batch's */
    const char *json;              /* baton_task_encode() of it, borrowed */
    size_t json_len;
    const char *topic; /* Kafka coordinates, kept with the task */
    int32_t partition;
    int64_t offset;
};

/* What one enqueue.lua call did. */
struct baton_tr_enqueued {
    long long queued, scheduled, expired, duplicates;
};

/* enqueue.lua for tasks[0..n) of queue `keys` (n >= 1, all that queue). */
baton_err_t baton_tr_append_enqueue(baton_redis_t *r, const struct baton_queue_keys *keys,
                                    int64_t retention_ms, const struct baton_tr_new_task *tasks,
                                    size_t n, char *errstr, size_t errstr_size);
baton_err_t baton_tr_read_enqueue(baton_redis_t *r, struct baton_tr_enqueued *out, char *errstr,
                                  size_t errstr_size);
baton_err_t baton_tr_enqueue(baton_redis_t *r, const struct baton_queue_keys *keys,
                             int64_t retention_ms, const struct baton_tr_new_task *tasks, size_t n,
                             struct baton_tr_enqueued *out, char *errstr, size_t errstr_size);

/* ------------------------------------------------------- maintenance */

/* What promote.lua or expire.lua did: tasks moved, and the time (ms, Redis
 * clock) of the next due task or deadline, -1 when there is none. */
struct baton_tr_moved {
    long long moved;
    long long next_ms;
};

/* promote.lua: up to `batch` due tasks scheduled -> queued. */
baton_err_t baton_tr_append_promote(baton_redis_t *r, const struct baton_queue_keys *keys,
                                    int64_t batch, char *errstr, size_t errstr_size);
baton_err_t baton_tr_read_promote(baton_redis_t *r, struct baton_tr_moved *out, char *errstr,
                                  size_t errstr_size);
baton_err_t baton_tr_promote(baton_redis_t *r, const struct baton_queue_keys *keys, int64_t batch,
                             struct baton_tr_moved *out, char *errstr, size_t errstr_size);

/* expire.lua: up to `batch` tasks whose deadline passed before a start. */
baton_err_t baton_tr_append_expire(baton_redis_t *r, const struct baton_queue_keys *keys,
                                   int64_t batch, int64_t retention_ms, char *errstr,
                                   size_t errstr_size);
baton_err_t baton_tr_read_expire(baton_redis_t *r, struct baton_tr_moved *out, char *errstr,
                                 size_t errstr_size);
baton_err_t baton_tr_expire(baton_redis_t *r, const struct baton_queue_keys *keys, int64_t batch,
                            int64_t retention_ms, struct baton_tr_moved *out, char *errstr,
                            size_t errstr_size);

/* What reclaim.lua did with expired leases. */
struct baton_tr_reclaimed {
    long long requeued; /* back to ready (attempts left) */
    long long dead;     /* attempts used up */
};

/* reclaim.lua: up to `batch` running tasks whose lease passed. */
baton_err_t baton_tr_append_reclaim(baton_redis_t *r, const struct baton_queue_keys *keys,
                                    int64_t batch, int64_t retention_ms, char *errstr,
                                    size_t errstr_size);
baton_err_t baton_tr_read_reclaim(baton_redis_t *r, struct baton_tr_reclaimed *out, char *errstr,
                                  size_t errstr_size);
baton_err_t baton_tr_reclaim(baton_redis_t *r, const struct baton_queue_keys *keys, int64_t batch,
                             int64_t retention_ms, struct baton_tr_reclaimed *out, char *errstr,
                             size_t errstr_size);

/* ----------------------------------------------------------- history */

/*
 * ack.lua: acknowledges entries ids[0..n) of `stream` for `group` (after
 * PostgreSQL committed them) and trims the stream up to the smallest id
 * still needed (the group's smallest pending id, else the entry after its
 * last delivered id). *acked and *trimmed (either may be NULL) get the
 * counts. BATON_ERR_REFUSED (with Redis's NOPERM message) when the caller
 * may not XTRIM: nothing was acknowledged.
 */
baton_err_t baton_tr_append_ack(baton_redis_t *r, const char *stream, const char *group,
                                const char *const *ids, size_t n, char *errstr, size_t errstr_size);
baton_err_t baton_tr_read_ack(baton_redis_t *r, long long *acked, long long *trimmed, char *errstr,
                              size_t errstr_size);
baton_err_t baton_tr_ack(baton_redis_t *r, const char *stream, const char *group,
                         const char *const *ids, size_t n, long long *acked, long long *trimmed,
                         char *errstr, size_t errstr_size);

/*
 * orphans.lua: entries of `stream` lost by `group`, made pending for
 * `consumer` (at most `most`). *entries gets the XCLAIM-shaped array reply
 * (possibly empty); caller frees it with freeReplyObject().
 * BATON_ERR_NOT_FOUND when the stream or the group does not exist.
 */
baton_err_t baton_tr_orphans(baton_redis_t *r, const char *stream, const char *group,
                             const char *consumer, size_t most, redisReply **entries, char *errstr,
                             size_t errstr_size);

/* ---------------------------------------------------------- batonctl */

/*
 * cancel.lua: cancels task `id` of the queue. *result is
 * BATON_EVENT_CANCELED (queued or scheduled: canceled now) or
 * BATON_EVENT_CANCEL_REQUESTED (running: its worker stops it).
 * BATON_ERR_NOT_FOUND (no such task), BATON_ERR_STATE (finished).
 */
baton_err_t baton_tr_cancel(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                            int64_t retention_ms, baton_event_t *result, char *errstr,
                            size_t errstr_size);

/* retry.lua: a dead task back to ready with new attempts.
 * BATON_ERR_NOT_FOUND (no such task), BATON_ERR_STATE (not dead). */
baton_err_t baton_tr_append_retry(baton_redis_t *r, const struct baton_queue_keys *keys,
                                  const char *id, char *errstr, size_t errstr_size);
baton_err_t baton_tr_read_retry(baton_redis_t *r, char *errstr, size_t errstr_size);
baton_err_t baton_tr_retry(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                           char *errstr, size_t errstr_size);

/* ------------------------------------------------------------ worker */

/* One task claim.lua handed over; strings borrowed from the claim. A
 * field missing from a damaged task hash is -1 (numbers) or NULL (JSON):
 * the task is running all the same, and the caller fails it. */
struct baton_tr_claimed {
    const char *id;
    const char *token; /* fencing token, as text (sent back as is) */
    long long attempt; /* this attempt's number, 1 for the first */
    long long max_attempts;
    long long timeout_ms;
    const char *task_json; /* the normalized task (baton_task_parse) */
    size_t task_json_len;
};

/* The answer of one claim.lua: count tasks, valid until
 * baton_tr_claim_free(). */
struct baton_tr_claim {
    struct baton_tr_claimed *tasks; /* owned */
    size_t count;
    redisReply *reply; /* owned: the strings above live in it */
};

/* Frees what a claim holds; a zeroed claim is a no-op. */
void baton_tr_claim_free(struct baton_tr_claim *claim);

/* claim.lua: up to `count` ready tasks of the queue for `worker_id`, each
 * leased for `lease_ms`. Nothing when the queue is paused. */
baton_err_t baton_tr_append_claim(baton_redis_t *r, const struct baton_queue_keys *keys,
                                  const char *worker_id, int64_t lease_ms, int count,
                                  int64_t retention_ms, char *errstr, size_t errstr_size);
/* On success *out holds the claimed tasks; the caller frees it with
 * baton_tr_claim_free() (on error it is zeroed). */
baton_err_t baton_tr_read_claim(baton_redis_t *r, struct baton_tr_claim *out, char *errstr,
                                size_t errstr_size);
baton_err_t baton_tr_claim(baton_redis_t *r, const struct baton_queue_keys *keys,
                           const char *worker_id, int64_t lease_ms, int count, int64_t retention_ms,
                           struct baton_tr_claim *out, char *errstr, size_t errstr_size);

/* One running task of the caller's, as renew.lua checks it. */
struct baton_tr_lease {
    const char *id;
    const char *token;
};

/* renew.lua's answer per lease. */
typedef enum baton_tr_renewal {
    BATON_TR_RENEW_REFUSED = 0,  /* stale token or not running: abandon, write nothing */
    BATON_TR_RENEW_OK = 1,       /* renewed */
    BATON_TR_RENEW_CANCELED = 2, /* renewed, but a cancellation was requested */
} baton_tr_renewal_t;

/* renew.lua: extends leases[0..n) by `lease_ms`; answers[i] is the answer
 * for leases[i] (answers has room for n). */
baton_err_t baton_tr_renew(baton_redis_t *r, const struct baton_queue_keys *keys, int64_t lease_ms,
                           const struct baton_tr_lease *leases, size_t n,
                           baton_tr_renewal_t *answers, char *errstr, size_t errstr_size);

/* One success, as complete.lua takes it: the attempt holding `token`
 * succeeded with `result` (JSON text, result_len bytes). Borrowed. */
struct baton_tr_success {
    const char *id;
    const char *token;
    const char *result;
    size_t result_len;
};

/* complete.lua's answer for one task of a call. */
struct baton_tr_completion {
    baton_err_t err; /* BATON_OK: succeeded (or this attempt's own success,
                        written before); BATON_ERR_STALE_TOKEN: the lease was
                        taken over and nothing was written for this task */
    char why[256];   /* the refusal's message, "" for BATON_OK */
};

/*
 * complete.lua: the successes tasks[0..n) (n >= 1) of queue `keys`, in one
 * call; each task's fencing token is checked on its own, a stale one
 * refuses that task only. The read fills answers[0..n) and returns
 * BATON_OK, or returns the error of the call as a whole (connection,
 * NOSCRIPT, OOM, an answer of the wrong shape): then no answer is known.
 */
baton_err_t baton_tr_append_complete(baton_redis_t *r, const struct baton_queue_keys *keys,
                                     const struct baton_tr_success *tasks, size_t n,
                                     int64_t retention_ms, char *errstr, size_t errstr_size);
baton_err_t baton_tr_read_complete(baton_redis_t *r, struct baton_tr_completion *answers, size_t n,
                                   char *errstr, size_t errstr_size);
baton_err_t baton_tr_complete_many(baton_redis_t *r, const struct baton_queue_keys *keys,
                                   const struct baton_tr_success *tasks, size_t n,
                                   int64_t retention_ms, struct baton_tr_completion *answers,
                                   char *errstr, size_t errstr_size);

/* complete.lua for one task: BATON_ERR_STALE_TOKEN when the lease was taken
 * over and nothing was written (the message in errstr). */
baton_err_t baton_tr_complete(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                              const char *token, const char *result, size_t result_len,
                              int64_t retention_ms, char *errstr, size_t errstr_size);

/* A failed attempt, as fail.lua takes it. */
struct baton_tr_failure {
    const char *error;       /* error text kept with the task */
    const char *reason;      /* "error", "timeout", "crash" */
    int64_t backoff_base_ms; /* retry delay: jitter * min(cap, base * 2^(attempt-1)) */
    int64_t backoff_cap_ms;
    double jitter; /* in [0, 1), randomness from the caller */
    int permanent; /* 1: no retry, dead at once */
};

/*
 * fail.lua: the attempt holding `token` failed. *next is the task's new
 * state: BATON_STATE_SCHEDULED (retry at *due_ms), BATON_STATE_DEAD or
 * BATON_STATE_CANCELED (a cancel requested while it ran); an answer that
 * names no state gives BATON_STATE_COUNT (written, but unknown to this
 * binary). *due_ms is -1 unless scheduled. Either may be NULL.
 * BATON_ERR_STALE_TOKEN: nothing written.
 */
baton_err_t baton_tr_fail(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                          const char *token, const struct baton_tr_failure *failure,
                          int64_t retention_ms, baton_state_t *next, int64_t *due_ms, char *errstr,
                          size_t errstr_size);

/* finish_canceled.lua: the attempt holding `token` stopped after a
 * cancellation request. BATON_ERR_STALE_TOKEN: nothing written. */
baton_err_t baton_tr_finish_canceled(baton_redis_t *r, const struct baton_queue_keys *keys,
                                     const char *id, const char *token, int64_t retention_ms,
                                     char *errstr, size_t errstr_size);

/* requeue.lua: a stopping worker returns the task to the head of its
 * priority (its attempt given back). BATON_ERR_STALE_TOKEN: nothing written. */
baton_err_t baton_tr_requeue(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                             const char *token, int64_t retention_ms, char *errstr,
                             size_t errstr_size);

/*
 * heartbeat.lua: records worker `worker_id` in the registry
 * (baton_worker_key, BATON_KEY_WORKERS) for `ttl_ms`, with fields[0..nfields)
 * as field/value pairs (nfields even). *heartbeat_ms (may be NULL) gets
 * the time recorded, Redis clock.
 */
baton_err_t baton_tr_heartbeat(baton_redis_t *r, const char *worker_id, int64_t ttl_ms,
                               const char *const *fields, size_t nfields, int64_t *heartbeat_ms,
                               char *errstr, size_t errstr_size);

#endif
