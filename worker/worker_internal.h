/*
 * worker_internal.h - what the worker library's files share; not part of
 * the public API (worker.h).
 *
 * The engine is one file per mechanism:
 *   job.c       a claimed task's lifecycle: reference count, stop request,
 *               the once-only right to write its outcome; baton_job_*
 *   queues.c    the --queues list (keys, weights) and slot allocation by
 *               smooth weighted round robin (pure)
 *   fetcher.c   the fetcher thread: claim.lua for idle slots, BLPOP when idle
 *   executor.c  the slots: claimed jobs handed to the executor threads,
 *               successes to the completer thread, slots freed
 *   outcome.c   the only caller of the finishing scripts (complete.lua,
 *               fail.lua, finish_canceled.lua, requeue.lua) and of the
 *               backoff inputs fail.lua turns into a retry delay
 *   keeper.c    the keeper thread: lease renewals (renew.lua), timeouts,
 *               the registry heartbeat (heartbeat.lua)
 *   worker.c    new, register, run, stop, drain, destroy
 *   worker_metrics.c  the metric families
 *   command.c   command handlers; handlers.c the built-in handlers
 *
 * Every function declared here is prefixed baton_worker_ (like the public
 * API, so that no name of a static libbaton can collide with a user's) and
 * has hidden visibility: the shared library exports only worker.h's.
 */
#ifndef BATON_WORKER_INTERNAL_H
#define BATON_WORKER_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "queue.h"
#include "redis.h"
#include "transition.h"
#include "worker.h"

#define WORKER_INTERNAL __attribute__((visibility("hidden")))

#define WORKER_LOG "worker"             /* the log component of every worker file */
#define WORKER_RETRY_AFTER_ERROR_MS 500 /* pause before retrying Redis */

/* ---------------------------------------------------------------- queues */

/* One queue of --queues, with its keys built once. */
struct worker_queue {
    struct baton_queue_keys keys; /* keys.name is the queue's name */
    int weight;                   /* 1-1000, from "name=weight" */
    int current;                  /* smooth weighted round robin state; fetcher thread only */
};

/*
 * Parses "a=3,b,c=1" (weight 1 if omitted, 1-1000) into *out, *n entries
 * with their keys; the caller frees *out with baton_worker_queues_free().
 * BATON_ERR_CONFIG names the bad entry in errstr (bad weight or name, a
 * queue listed twice, an empty list).
 */
WORKER_INTERNAL baton_err_t baton_worker_queues_parse(const char *spec, struct worker_queue **out,
                                                      size_t *n, char *errstr, size_t errstr_size);
WORKER_INTERNAL void baton_worker_queues_free(struct worker_queue *queues, size_t n);

/*
 * Shares `idle` slots among `n` queues by smooth weighted round robin:
 * counts[i] (n entries, written) is how many tasks to claim from queue i.
 * Advances each queue's `current`, so successive rounds interleave by
 * weight. Pure. @locality the fetcher thread
 */
WORKER_INTERNAL void baton_worker_allocate_slots(struct worker_queue *queues, size_t n, int idle,
                                                 int *counts);
/* The same among the queues whose eligible[i] is not 0 (NULL: all); the
 * others get 0 slots and keep their state. Each pick of the round robin
 * hands out `chunk` slots (the last pick what is left; chunk < 1 counts
 * as 1): fewer, larger claims, each a script call in Redis; over rounds
 * the picks, and so the slots, still follow the weights. */
WORKER_INTERNAL void baton_worker_allocate_slots_among(struct worker_queue *queues, size_t n,
                                                       const unsigned char *eligible, int idle,
                                                       int chunk, int *counts);

/* ------------------------------------------------------------------ jobs */

/* Why a job should stop (baton_job_should_stop() is stop_reason != NONE). */
enum job_stop {
    JOB_STOP_NONE = 0,
    JOB_STOP_TIMEOUT = 1,  /* its timeout_ms passed */
    JOB_STOP_LOST = 2,     /* lease renewal refused: another owner now */
    JOB_STOP_SHUTDOWN = 3, /* the worker is stopping and returned it */
    JOB_STOP_CANCELED = 4, /* batonctl cancel: report "canceled" */
};

struct baton_job {
    const char *id;    /* in this job's allocation (text below) */
    const char *queue; /* borrowed from wq */
    const char *type;  /* in this job's allocation, or in task */
    char token[24];    /* fencing token, as Redis returned it */
    int attempt;
    int max_attempts;
    int64_t timeout_ms;
    int readable;          /* the task JSON could be read (else: marked dead) */
    json_t *task;          /* parsed task JSON, owned; NULL until loaded */
    const json_t *payload; /* borrowed from task; NULL until loaded */
    const char *task_json; /* text to load it from (checked readable), in
                              this job's allocation; NULL once loaded */
    size_t task_json_len;
    uint64_t claim_seq;            /* this worker's claim order (graceful stop
                                      hands tasks back in reverse of it) */
    int64_t started_mono_ms;       /* when this worker started it */
    int64_t deadline_mono_ms;      /* started + timeout_ms */
    const struct worker_queue *wq; /* borrowed from the worker */

    char *result; /* JSON text, owned; NULL = null; executor */
    size_t result_len;
    char *error; /* owned; NULL = none; executor */

    atomic_int refs;        /* baton_worker_job_ref/unref; any thread */
    atomic_int stop_reason; /* enum job_stop; any thread */
    atomic_int pgid;        /* command handler's process group (its
                               supervisor's pid), 0 = none */
    pthread_mutex_t lock;   /* guards finished and the condvar */
    pthread_cond_t wake;    /* baton_job_sleep() waits here */
    int finished;           /* outcome written (or given up): once only */
    struct baton_job *next; /* ready list or done list; worker lock */
};

/* A job for `claim` (one task of claim.lua's answer, borrowed) on `q`
 * with one reference, its deadline counted from now; a field a damaged
 * task hash lacks takes the default (1 attempt, 300000 ms), and it is not
 * `readable` when the JSON is missing or cannot be read (by jansson, as
 * baton_worker_job_load() would). Its type is known; the payload is parsed
 * only by baton_worker_job_load(), when a handler may want it. NULL
 * without memory. Caller drops the reference with baton_worker_job_unref(). */
WORKER_INTERNAL baton_job_t *baton_worker_job_new(const struct worker_queue *q,
                                                  const struct baton_tr_claimed *claim);
/* Parses a readable job's task JSON (once) and sets its payload.
 * BATON_ERR_NOMEM when jansson could not (out of memory). @locality the
 * job's executor, before its handler runs */
WORKER_INTERNAL baton_err_t baton_worker_job_load(baton_job_t *job);
/* Whether the task text `s` (n bytes) is in a subset of JSON that jansson
 * reads (json_loadb, flags 0) without doubt: ASCII without \u escapes or
 * control characters, no exponent, short numbers, shallow nesting, an
 * object or an array at the top. 1 if so, with the top-level object's last
 * "type" member in *type (*type_len bytes; NULL when absent or not a
 * string, as json_string_value gives); 0 means "ask jansson", not
 * "invalid". Pure; exposed for its unit test. */
WORKER_INTERNAL int baton_worker_task_scan(const char *s, size_t n, const char **type,
                                           size_t *type_len);
WORKER_INTERNAL baton_job_t *baton_worker_job_ref(baton_job_t *job); /* returns job */
WORKER_INTERNAL void baton_worker_job_unref(baton_job_t *job);       /* NULL is a no-op */

/* Marks `job` to stop for `reason` (first reason wins) and wakes it; sends
 * a command handler's process group SIGTERM. Any thread. */
WORKER_INTERNAL void baton_worker_job_request_stop(baton_job_t *job, enum job_stop reason);

/* Takes the right to write the job's outcome: 1 for the first caller only. */
WORKER_INTERNAL int baton_worker_job_take_finish(baton_job_t *job);
/* 1 once some thread has taken that right. */
WORKER_INTERNAL int baton_worker_job_finish_taken(baton_job_t *job);

/* --------------------------------------------------------------- worker */

struct handler_entry {
    char *type; /* owned */
    baton_handler_fn fn;
    void *ctx;                       /* borrowed, or `command` */
    struct command_handler *command; /* owned when a command handler */
};

/* The worker's metric families (docs/metrics.md); all NULL without a
 * registry, which the metrics API takes as no-ops. Set by
 * baton_worker_new, then only read. */
struct worker_metrics {
    baton_metric_t *claimed;     /* counter {queue,type} */
    baton_metric_t *succeeded;   /* counter {queue,type} */
    baton_metric_t *failed;      /* counter {queue,type,reason}: failed attempts */
    baton_metric_t *retried;     /* counter {queue,type}: fail.lua said "scheduled" */
    baton_metric_t *dead;        /* counter {queue,type}: fail.lua said "dead" */
    baton_metric_t *canceled;    /* counter {queue,type} */
    baton_metric_t *stale;       /* counter {queue}: outcomes refused, token stale */
    baton_metric_t *run_seconds; /* histogram {type}: handler time */
    baton_metric_t *threads;     /* gauge {state}: busy|idle, collected at scrape */
    baton_metric_t *roundtrip;   /* histogram {component}: "worker" */
};

/*
 * Locks: `lock` guards the fields marked [lock]; a job's own lock guards
 * its `finished`. Never hold `lock` across a Redis call or a handler.
 * Fields marked [setup] are written before baton_worker_run() starts the
 * threads and only read afterwards, without a lock.
 */
struct baton_worker {
    struct baton_worker_config config; /* [setup] strings point below */
    struct worker_metrics metrics;     /* [setup] */
    char *redis_url, *queue_spec, *id; /* [setup] owned */
    char **command_env;                /* [setup] --command-env names, owned */
    struct worker_queue *queues;       /* [setup] owned; `current`: fetcher only */
    size_t nqueues;                    /* [setup] */
    struct handler_entry *handlers;    /* [setup] owned */
    size_t nhandlers;                  /* [setup] */
    int64_t started_ms;                /* [setup] wall clock, for the registry */

    pthread_mutex_t lock;
    /* Condition variables, one per event; each waits on `lock`. */
    pthread_cond_t completed;  /* a success joined the done list while the
                                  completer was idle, or completer_exit:
                                  the completer waits */
    pthread_cond_t slot_freed; /* busy went down (once per completer batch,
                                  or an executor's own outcome), or
                                  stopping: the fetcher waits for a slot,
                                  run() for busy == 0 */
    pthread_cond_t stop_cond;  /* stopping or keeper_exit set: the keeper's
                                  tick and the fetcher's pause after an
                                  error are timed waits on it */

    /* [lock] claimed jobs waiting for an executor, borrowed from `running`:
     * the fetcher appends, executors take. */
    baton_job_t *ready_head, *ready_tail;
    /* [lock] executors waiting for work, the latest idle first (its
     * cache is warm), and how many were woken and have not yet looked at
     * the ready list. Executors are woken one at a time: a woken one that
     * leaves work behind wakes the next (executor.c), so a burst of short
     * tasks wakes few threads and long ones still spread. */
    struct worker_executor *idle_executors;
    int waking;
    /* [lock] the completer waits for the done list (it is woken only
     * then, not for each success). */
    int completer_idle;
    /* [lock] successes whose outcome is taken, one reference each:
     * executors append, the completer takes. */
    baton_job_t *done_head, *done_tail;
    /* [lock] every claimed job not yet done, one reference each: the
     * fetcher adds, executors and the completer remove (job_done), the
     * keeper and the drain take snapshots. */
    struct running_set {
        baton_job_t **jobs;
        size_t count, cap;
    } running;
    /* [lock] jobs claimed and not done (<= concurrency): the fetcher
     * raises it, job_done lowers it; read by run(), the keeper's
     * heartbeat and the metrics scrape. */
    int busy;
    uint64_t claims;              /* [lock] claim counter: jobs' claim_seq; fetcher */
    uint64_t done, failed, stale; /* [lock] outcomes written (outcome.c, keeper);
                                     the heartbeat reads them */
    /* [lock] set once by run(), in this order, each read by the thread(s)
     * it lets go: */
    int stopping;       /* no more claims: the fetcher leaves */
    int exiting;        /* executors leave when the ready list is empty */
    int keeper_exit;    /* the keeper leaves the registry and ends */
    int completer_exit; /* the completer ends once the done list is empty */

    volatile sig_atomic_t stop_requests;  /* baton_worker_stop (a signal
                                             handler); run() polls it */
    int started;                          /* run() only */
    int threads_stuck;                    /* run() only: a handler never returned, do not free */
    pthread_t fetcher, keeper, completer; /* run() only */
    struct worker_executor *executors;    /* run() only; `concurrency` of them */
    /* One Redis handle per thread (hiredis contexts are not shared), made
     * by run() before the threads start (baton_redis_new: they connect on
     * first use and reconnect by themselves) and freed after they joined;
     * each used by its thread alone. */
    baton_redis_t *fetcher_redis, *keeper_redis, *completer_redis;
};

/* One executor thread; baton_worker_executor_main's argument. */
struct worker_executor {
    baton_worker_t *worker; /* borrowed */
    baton_redis_t *redis;   /* this thread's handle, owned by run() */
    pthread_t thread;
    pthread_cond_t wake;               /* waits here on the worker lock when idle */
    int woken;                         /* [lock] told to look at the ready list */
    struct worker_executor *next_idle; /* [lock] the idle stack */
};

/* Wakes every idle executor (run(), after setting exiting); worker lock
 * held. */
WORKER_INTERNAL void baton_worker_executors_wake_all(baton_worker_t *w);

/* Creates the worker's metric families in `registry` (borrowed) and the
 * busy/idle collector; unregister removes the collector, waiting for a
 * scrape under way. */
WORKER_INTERNAL void baton_worker_metrics_register(baton_worker_t *w, baton_metrics_t *registry);
WORKER_INTERNAL void baton_worker_metrics_unregister(baton_worker_t *w);

/* The handler registered for `type`, or NULL. Borrowed from the worker.
 * @locality any thread once run() started (handlers are [setup]) */
WORKER_INTERNAL struct handler_entry *baton_worker_find_handler(baton_worker_t *w,
                                                                const char *type);

/* --------------------------------------------------- executor.c: slots */

/* Takes over `jobs` (n, one reference each) claimed by the fetcher: gives
 * each its claim_seq, puts it in the running set and the ready list, and
 * takes a slot for it. @locality the fetcher thread */
WORKER_INTERNAL void baton_worker_slots_hand_over(baton_worker_t *w, baton_job_t **jobs, int n);

/* A copy of the running set with a reference on each job (*n of them);
 * release with baton_worker_running_release(). NULL without memory. */
WORKER_INTERNAL baton_job_t **baton_worker_running_snapshot(baton_worker_t *w, size_t *n);
WORKER_INTERNAL void baton_worker_running_release(baton_job_t **jobs, size_t n);

/* Thread entry points; `arg` is the worker, for an executor its struct
 * worker_executor. */
WORKER_INTERNAL void *baton_worker_executor_main(void *arg);
WORKER_INTERNAL void *baton_worker_completer_main(void *arg);
WORKER_INTERNAL void *baton_worker_fetcher_main(void *arg);
WORKER_INTERNAL void *baton_worker_keeper_main(void *arg);

/* ---------------------------------------------------- outcome.c: writes */

/* Writes the outcome of `job` once, whoever calls first (the executor, or
 * the keeper for a C handler stuck past its timeout): complete.lua,
 * fail.lua or finish_canceled.lua by its status and stop reason; nothing
 * for a lost lease. Retries a Redis outage for about one lease length. */
WORKER_INTERNAL void baton_worker_outcome_finish(baton_worker_t *w, baton_redis_t *r,
                                                 baton_job_t *job, baton_handler_status_t status);

/* Writes `n` successes (their outcome already taken) in one pipeline of
 * complete.lua; what the pipeline could not write goes one at a time
 * with retries. Borrows the jobs. @locality the completer thread */
WORKER_INTERNAL void baton_worker_outcome_complete_batch(baton_worker_t *w, baton_redis_t *r,
                                                         baton_job_t **jobs, size_t n);

/* Marks dead a claimed task whose JSON cannot be read (fail.lua, permanent). */
WORKER_INTERNAL void baton_worker_outcome_unreadable(baton_worker_t *w, baton_redis_t *r,
                                                     const struct worker_queue *q,
                                                     const struct baton_tr_claimed *claim);

/* Hands `job` back to the head of its queue (requeue.lua); its outcome
 * must be taken. BATON_OK when Redis took it, else the reason in errstr. */
WORKER_INTERNAL baton_err_t baton_worker_outcome_requeue(baton_worker_t *w, baton_redis_t *r,
                                                         const baton_job_t *job, char *errstr,
                                                         size_t errstr_size);

/* Counts and logs a refusal for a stale token (guarantee 3): `what` was
 * refused ("outcome" or "lease renewal"), `why` says more. */
WORKER_INTERNAL void baton_worker_note_stale(baton_worker_t *w, const baton_job_t *job,
                                             const char *what, const char *why);

/*
 * fail.lua's backoff arguments, written into out's backoff_base_ms,
 * backoff_cap_ms and jitter (its other fields untouched). The retry delay
 * itself is computed by fail.lua, at Redis TIME and from the attempt count
 * Redis holds: jitter * min(cap, base * 2^(attempt-1)) (full jitter). The
 * worker supplies base and cap (its config) and the jitter, drawn from
 * `random_bits` (uniform 32 bits) here: random_bits / 2^32, in [0, 1). Pure.
 */
WORKER_INTERNAL void baton_worker_backoff_args(int64_t base_ms, int64_t cap_ms,
                                               uint32_t random_bits, struct baton_tr_failure *out);

/* ------------------------------------------------------------ command.c */

/* Command handlers' supervisors (command.c), reachable from a signal
 * handler. baton_worker_command_kill_tree() asks one to SIGKILL every process of
 * its command and exit; async-signal-safe. */
WORKER_INTERNAL void baton_worker_command_track(int pgid);
WORKER_INTERNAL void baton_worker_command_untrack(int pgid);
WORKER_INTERNAL void baton_worker_command_kill_tree(int supervisor);

/* Reaps exited children of the worker that are not command supervisors:
 * orphans re-parented to a worker running as PID 1. @locality the keeper */
WORKER_INTERNAL void baton_worker_command_reap_orphans(void);

/* Parses --command-env ("NAME,PREFIX*,..."; NULL or "" for none) into a
 * NULL-terminated array that the caller frees with
 * baton_worker_command_env_free(). BATON_ERR_CONFIG names a bad entry in errstr. */
WORKER_INTERNAL baton_err_t baton_worker_command_env_parse(const char *spec, char ***out,
                                                           char *errstr, size_t errstr_size);
WORKER_INTERNAL void baton_worker_command_env_free(char **names);

/* Registry-facing limits shared by the handlers. */
WORKER_INTERNAL size_t baton_worker_max_result_bytes(const baton_worker_t *worker);
WORKER_INTERNAL int64_t baton_worker_kill_grace_ms(const baton_worker_t *worker);
/* The --command-env names (baton_worker_command_env_parse()); borrowed from the worker. */
WORKER_INTERNAL char *const *baton_worker_command_env(const baton_worker_t *worker);

/* Failure point for tests: called after the drain told a handler to stop
 * and before it hands the task back. NULL, never set by the production
 * binary; only baton-worker-test (main.c built with BATON_TEST_HOOKS)
 * sets it. */
extern void (*baton_worker_test_return_pause)(void);

/* The built-in handlers (handlers.c). */
WORKER_INTERNAL baton_handler_status_t baton_worker_builtin_noop(baton_job_t *job, void *ctx);
WORKER_INTERNAL baton_handler_status_t baton_worker_builtin_sleep(baton_job_t *job, void *ctx);
WORKER_INTERNAL baton_handler_status_t baton_worker_builtin_echo(baton_job_t *job, void *ctx);
WORKER_INTERNAL baton_handler_status_t baton_worker_builtin_fail(baton_job_t *job, void *ctx);
WORKER_INTERNAL baton_handler_status_t baton_worker_builtin_crash(baton_job_t *job, void *ctx);

/* The command handler (command.c); ctx is a struct command_handler. */
struct command_handler {
    char *command; /* /bin/sh -c text, owned */
    const baton_worker_t *worker;
};
WORKER_INTERNAL baton_handler_status_t baton_worker_command_run(baton_job_t *job, void *ctx);

#endif
