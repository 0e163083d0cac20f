/*
 * worker_internal.h - what worker.c, handlers.c and command.c share; not
 * part of the public API (worker.h).
 */
#ifndef BATON_WORKER_INTERNAL_H
#define BATON_WORKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "worker.h"

/* Why a job should stop (baton_job_should_stop() is stop_reason != NONE). */
enum job_stop {
    JOB_STOP_NONE = 0,
    JOB_STOP_TIMEOUT = 1,  /* its timeout_ms passed */
    JOB_STOP_LOST = 2,     /* lease renewal refused: another owner now */
    JOB_STOP_SHUTDOWN = 3, /* the worker is stopping and returned it */
    JOB_STOP_CANCELED = 4, /* batonctl cancel: report "canceled" */
};

struct baton_job {
    char *id;                  /* owned */
    char *queue;               /* owned */
    char *type;                /* owned */
    char token[24];            /* fencing token, as Redis returned it */
    int attempt;
    int max_attempts;
    int64_t timeout_ms;
    json_t *task;              /* parsed task JSON, owned */
    const json_t *payload;     /* borrowed from task */
    uint64_t claim_seq;        /* this worker's claim order (graceful stop
                                  hands tasks back in reverse of it) */
    int64_t started_mono_ms;   /* when this worker started it */
    int64_t deadline_mono_ms;  /* started + timeout_ms */
    const struct worker_queue *wq; /* borrowed from the worker */

    char *result;              /* JSON text, owned; NULL = null */
    size_t result_len;
    char *error;               /* owned; NULL = none */

    atomic_int stop_reason;    /* enum job_stop */
    atomic_int pgid;           /* command handler's process group (its
                                  supervisor's pid), 0 = none */
    pthread_mutex_t lock;      /* guards finished and the condvar */
    pthread_cond_t wake;       /* baton_job_sleep() waits here */
    int finished;              /* outcome written (or given up): once only */
    struct baton_job *next;    /* worker's running list / ready list */
};

/* Marks `job` to stop for `reason` (first reason wins) and wakes it; sends
 * a command handler's process group SIGTERM. Any thread. */
void job_request_stop(baton_job_t *job, enum job_stop reason);

/* Command handlers' supervisors (command.c), reachable from a signal
 * handler. command_kill_tree() asks one to SIGKILL every process of its
 * command and exit; async-signal-safe. */
void command_track(int pgid);
void command_untrack(int pgid);
void command_kill_tree(int supervisor);

/* Reaps exited children of the worker that are not command supervisors:
 * orphans re-parented to a worker running as PID 1. @locality the keeper */
void command_reap_orphans(void);

/* Parses --command-env ("NAME,PREFIX*,..."; NULL or "" for none) into a
 * NULL-terminated array that the caller frees with command_env_free().
 * BATON_ERR_CONFIG names a bad entry in errstr. */
baton_err_t command_env_parse(const char *spec, char ***out, char *errstr, size_t errstr_size);
void command_env_free(char **names);

/* Registry-facing limits shared by the handlers. */
size_t worker_max_result_bytes(const baton_worker_t *worker);
int64_t worker_kill_grace_ms(const baton_worker_t *worker);
/* The --command-env names (command_env_parse()); borrowed from the worker. */
char *const *worker_command_env(const baton_worker_t *worker);

/* Failure point for tests: called after return_unfinished() told a handler
 * to stop and before it hands the task back. NULL, never set by the
 * production binary; only baton-worker-test (main.c built with
 * BATON_TEST_HOOKS) sets it. */
extern void (*worker_test_return_pause)(void);

/* The built-in handlers (handlers.c). */
baton_handler_status_t builtin_noop(baton_job_t *job, void *ctx);
baton_handler_status_t builtin_sleep(baton_job_t *job, void *ctx);
baton_handler_status_t builtin_echo(baton_job_t *job, void *ctx);
baton_handler_status_t builtin_fail(baton_job_t *job, void *ctx);
baton_handler_status_t builtin_crash(baton_job_t *job, void *ctx);

/* The command handler (command.c); ctx is a struct command_handler. */
struct command_handler {
    char *command;             /* /bin/sh -c text, owned */
    const baton_worker_t *worker;
};
baton_handler_status_t command_run(baton_job_t *job, void *ctx);

#endif
