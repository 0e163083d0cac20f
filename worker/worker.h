/*
 * worker.h - the baton worker library: build your own worker binary.
 *
 * A worker claims tasks from Redis queues with leases, runs the handler
 * registered for each task's type, and reports the outcome with the task's
 * fencing token (guarantees 3, 6, 7 and 8 of docs/guarantees.md).
 * baton-worker is this library plus the built-in and command handlers; a
 * user's program can register its own C handlers instead (example: unit):
 *
 *     static baton_handler_status_t resize(baton_job_t *job, void *ctx) {
 *         const json_t *payload = baton_job_payload(job);
 *         json_int_t width = json_integer_value(json_object_get(payload, "width"));
 *         if (width <= 0) {
 *             baton_job_set_error(job, "payload needs a positive \"width\"");
 *             return BATON_HANDLER_FAILED_PERMANENT; // retrying cannot help
 *         }
 *         for (int slice = 0; slice < 10; slice++) // the work, in slices
 *             if (baton_job_sleep(job, 100))       // timeout, lease lost, stop
 *                 return BATON_HANDLER_FAILED;
 *         baton_job_set_result(job, "{\"ok\":true}", 11);
 *         return BATON_HANDLER_OK;
 *     }
 *
 *     static void add_handlers(baton_worker_t *worker) {
 *         baton_worker_register(worker, "image.resize", resize, NULL);
 *     }
 *
 * See worker/examples/example_worker.c for a complete program.
 *
 * Threads: handlers run on the worker's executor threads, `concurrency` of
 * them, so a handler may block; it must not call exit() or longjmp out.
 * A C handler cannot be killed: it should check baton_job_should_stop() (or
 * wait with baton_job_sleep()) and return soon after it turns true. One
 * that overruns its timeout has its attempt failed with reason "timeout"
 * anyway, and whatever it returns later is discarded.
 */
#ifndef BATON_WORKER_H
#define BATON_WORKER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "metrics.h"

typedef struct baton_worker baton_worker_t;
typedef struct baton_job baton_job_t;

typedef enum baton_handler_status {
    BATON_HANDLER_OK = 0,              /* success: the result (if set) is kept */
    BATON_HANDLER_FAILED = 1,          /* failed: retried while attempts remain */
    BATON_HANDLER_FAILED_PERMANENT = 2 /* failed: dead at once, never retried */
} baton_handler_status_t;

/*
 * A handler. `job` is borrowed for the duration of the call; `ctx` is the
 * pointer given at registration.
 * @locality an executor thread of the worker
 */
typedef baton_handler_status_t (*baton_handler_fn)(baton_job_t *job, void *ctx);

struct baton_worker_config {
    const char *redis_url;    /* redis://host:port/db */
    const char *queues;       /* "critical=6,default=3,low=1"; weight 1 if omitted */
    int concurrency;          /* executor threads, >= 1 */
    int64_t lease_ms;         /* lease length; renewed every lease/3 */
    int64_t grace_ms;         /* graceful stop: wait this long for running tasks */
    int64_t backoff_base_ms;  /* retry backoff: full jitter over */
    int64_t backoff_cap_ms;   /*   min(cap, base * 2^(attempt-1)) */
    int64_t retention_ms;     /* how long finished tasks stay in Redis */
    int64_t kill_grace_ms;    /* command handlers: SIGTERM, then SIGKILL after this */
    size_t max_result_bytes;  /* larger results are replaced by a marker */
    int64_t redis_timeout_ms; /* connect and command timeout */
    const char *worker_id;    /* NULL: "<host>-<pid>-<random>" */
    const char *command_env;  /* command handlers: names of the worker's environment
                                 variables passed on besides PATH, HOME, LANG, LC_*,
                                 TZ, e.g. "AWS_REGION,APP_*"; NULL = none */
    baton_metrics_t *metrics; /* registry for the worker's metrics (docs/metrics.md);
                                 borrowed, must outlive the worker; NULL = none */
};

/* Fills `config` with the defaults (the same as baton-worker's flags). */
void baton_worker_config_defaults(struct baton_worker_config *config);

/*
 * Creates a worker: parses the queue list, connects to Redis (refusing one
 * whose maxmemory-policy can evict). The config's strings are copied.
 * On success *out is a worker the caller frees with baton_worker_destroy().
 */
baton_err_t baton_worker_new(const struct baton_worker_config *config, baton_worker_t **out,
                             char *errstr, size_t errstr_size);

/*
 * Registers `fn` for tasks of `type` (replacing an earlier registration).
 * Call before baton_worker_run(). `ctx` is borrowed: it must outlive the
 * worker.
 */
baton_err_t baton_worker_register(baton_worker_t *worker, const char *type, baton_handler_fn fn,
                                  void *ctx);

/*
 * Registers an external program for tasks of `type`: `command` runs with
 * /bin/sh -c in its own process group, the payload JSON on its stdin and
 * BATON_TASK_ID, BATON_TASK_TYPE, BATON_TASK_QUEUE, BATON_TASK_ATTEMPT and
 * BATON_TASK_TOKEN (the attempt's fencing token) in its environment; of
 * the worker's own environment only PATH, HOME, LANG, LC_*, TZ and the
 * config's command_env names, and no descriptor but stdin, stdout and
 * stderr. Exit 0 is success with stdout as the result (JSON if it
 * parses, else a JSON string); any other exit is a failure with the tail
 * of stderr as the error. On timeout or stop its group gets SIGTERM, then
 * after kill_grace_ms every process it started is killed (SIGKILL), also
 * those that left its group (setsid, double fork); the same when the
 * program exits: nothing it started outlives the attempt. `command` is
 * copied. A worker running as PID 1 also reaps the container's orphans.
 */
baton_err_t baton_worker_register_command(baton_worker_t *worker, const char *type,
                                          const char *command);

/*
 * Registers the built-in handlers named in `names`, a comma-separated list
 * of: noop, sleep (payload: milliseconds), echo (result = payload), fail
 * (always fails; payload is the message), crash (kills its own worker
 * process with SIGKILL, for fault tests). "" or "none" registers none. Only
 * name fail and crash where every producer is trusted: anyone who can
 * publish a task of type crash can kill the worker. An unknown name is
 * BATON_ERR_CONFIG, naming it in errstr.
 */
baton_err_t baton_worker_register_builtins(baton_worker_t *worker, const char *names, char *errstr,
                                           size_t errstr_size);

/*
 * Runs until baton_worker_stop(): claims and runs tasks. Then stops in
 * order: no more claims, running tasks get grace_ms to finish, the rest go
 * back to the head of their queues. Returns BATON_OK after a clean stop.
 * @locality the caller's thread (usually main)
 */
baton_err_t baton_worker_run(baton_worker_t *worker, char *errstr, size_t errstr_size);

/*
 * Asks a running worker to stop. Async-signal-safe: call it from a SIGTERM
 * handler. A second call makes baton_worker_run() return without waiting
 * (the leases then expire and maintenance reclaims the tasks).
 */
void baton_worker_stop(baton_worker_t *worker);

/*
 * SIGKILLs the process group of every running command handler.
 * Async-signal-safe: call it from a signal handler before _exit() when the
 * process leaves without draining, so no program outlives its worker.
 */
void baton_worker_kill_commands(void);

/* Frees the worker. Call after baton_worker_run() returned. NULL is a no-op. */
void baton_worker_destroy(baton_worker_t *worker);

/* This worker's id, as recorded in its leases and the registry. Borrowed. */
const char *baton_worker_id(const baton_worker_t *worker);

/* ------------------------------------------------------------ job access */

const char *baton_job_id(const baton_job_t *job);    /* borrowed, valid during the call */
const char *baton_job_type(const baton_job_t *job);  /* borrowed */
const char *baton_job_queue(const baton_job_t *job); /* borrowed */
int baton_job_attempt(const baton_job_t *job);       /* 1 for the first attempt */
/* The attempt's fencing token (decimal, borrowed): strictly increasing per
 * task across claims, so a handler can pass it to an external system that
 * refuses writes carrying an older token than one it has seen. */
const char *baton_job_token(const baton_job_t *job);
const json_t *baton_job_payload(const baton_job_t *job); /* borrowed; never NULL */

/* Milliseconds left before this attempt's timeout (may be negative). */
int64_t baton_job_remaining_ms(const baton_job_t *job);

/*
 * 1 when the handler should give up now: the attempt timed out, its lease
 * was taken over, or the worker is stopping. Cheap; call it often.
 */
int baton_job_should_stop(const baton_job_t *job);

/* Sleeps up to `ms`; returns early with 1 when baton_job_should_stop(). */
int baton_job_sleep(baton_job_t *job, int64_t ms);

/* Sets the result (JSON text, copied; not JSON: stored as a JSON string). */
baton_err_t baton_job_set_result(baton_job_t *job, const char *text, size_t len);

/* Sets the error message of a failed attempt (printf-style, copied). */
void baton_job_set_error(baton_job_t *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
