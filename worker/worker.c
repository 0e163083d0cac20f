/*
 * worker.c - the worker's lifecycle: new, register, run, stop, destroy.
 *
 * baton_worker_new checks the configuration and the Redis it will use;
 * handlers are registered before the run (handlers.c). baton_worker_run starts the
 * threads (each in its own file, see worker_internal.h):
 *   keeper     renews leases, enforces timeouts, writes the registry;
 *   executors  `concurrency` threads that run handlers;
 *   completer  writes successes, many per round trip;
 *   fetcher    claims tasks for idle slots;
 * then waits for baton_worker_stop() and drains in order (guarantee 8): no
 * more claims, running tasks get the grace period, what is left goes back
 * to the head of its queue, then the threads leave in the order that lets
 * each one finish what the previous left it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "task.h"
#include "timeutil.h"
#include "worker_internal.h"

#define STOP_POLL_MS 50            /* how often run() looks at stop_requests */
#define REQUEUE_WAIT_EXTRA_MS 1000 /* after requeue, wait for handlers */

/* ------------------------------------------------------------ config */

void baton_worker_config_defaults(struct baton_worker_config *c) {
    memset(c, 0, sizeof *c);
    c->redis_url = "redis://127.0.0.1:6379/0";
    c->queues = "default";
    c->concurrency = 4;
    c->lease_ms = 30000;
    c->grace_ms = 30000;
    c->backoff_base_ms = 1000;
    c->backoff_cap_ms = 600000;
    c->retention_ms = 604800000;
    c->kill_grace_ms = 5000;
    c->max_result_bytes = 65536;
    c->redis_timeout_ms = 5000;
}

size_t baton_worker_max_result_bytes(const baton_worker_t *w) {
    return w->config.max_result_bytes;
}
char *const *baton_worker_command_env(const baton_worker_t *w) {
    return w->command_env;
}
int64_t baton_worker_kill_grace_ms(const baton_worker_t *w) {
    return w->config.kill_grace_ms;
}
const char *baton_worker_id(const baton_worker_t *w) {
    return w->id;
}

/* ---------------------------------------------------------- lifecycle */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

/* "<host>-<pid>-<random>": unique enough among live workers; owned. */
static char *default_id(void) {
    char host[256] = "host";
    gethostname(host, sizeof host - 1);
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (uint32_t)baton_time_wall_ms();
    char buf[320];
    snprintf(buf, sizeof buf, "%s-%ld-%04x", host, (long)getpid(), r & 0xffff);
    return strdup(buf);
}

baton_err_t baton_worker_new(const struct baton_worker_config *config, baton_worker_t **out,
                             char *errstr, size_t errstr_size) {
    *out = NULL;
    if (config->concurrency < 1)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "concurrency must be >= 1");
    if (config->lease_ms < 300)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "lease must be >= 300 ms");
    baton_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    w->config = *config;
    w->redis_url = dup_or_null(config->redis_url);
    w->queue_spec = dup_or_null(config->queues ? config->queues : "default");
    w->config.redis_url = w->redis_url;
    w->config.queues = w->queue_spec;
    w->config.command_env = NULL; /* parsed into w->command_env */
    w->id = config->worker_id ? strdup(config->worker_id) : default_id();
    w->config.worker_id = w->id;
    pthread_mutex_init(&w->lock, NULL);
    baton_cond_init_monotonic(&w->completed);
    baton_cond_init_monotonic(&w->slot_freed);
    baton_cond_init_monotonic(&w->stop_cond);
    baton_err_t err = (!w->redis_url || !w->queue_spec || !w->id)
                          ? baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory")
                          : baton_worker_queues_parse(w->queue_spec, &w->queues, &w->nqueues,
                                                      errstr, errstr_size);
    if (!err)
        err = baton_worker_command_env_parse(config->command_env, &w->command_env, errstr,
                                             errstr_size);
    if (!err) {
        /* Refuse an evicting Redis before claiming anything (guarantee 9). */
        baton_redis_t *r = NULL;
        err = baton_redis_connect(w->redis_url, (int)config->redis_timeout_ms, &r, errstr,
                                  errstr_size);
        if (!err)
            err = baton_redis_check_policy(r, errstr, errstr_size);
        baton_redis_destroy(r);
    }
    if (err) {
        baton_worker_destroy(w);
        return err;
    }
    if (config->metrics)
        baton_worker_metrics_register(w, config->metrics);
    *out = w;
    return BATON_OK;
}

/* --------------------------------------------------------- handlers */

struct handler_entry *baton_worker_find_handler(baton_worker_t *w, const char *type) {
    for (size_t i = 0; i < w->nhandlers; i++)
        if (strcmp(w->handlers[i].type, type) == 0)
            return &w->handlers[i];
    return NULL;
}

static baton_err_t add_handler(baton_worker_t *w, const char *type, baton_handler_fn fn, void *ctx,
                               struct command_handler *command) {
    if (!type || !baton_task_name_valid(type) || w->started)
        return BATON_ERR_INVALID;
    struct handler_entry *h = baton_worker_find_handler(w, type);
    if (!h) {
        struct handler_entry *grown = realloc(w->handlers, (w->nhandlers + 1) * sizeof *grown);
        if (!grown)
            return BATON_ERR_NOMEM;
        w->handlers = grown;
        h = &w->handlers[w->nhandlers++];
        memset(h, 0, sizeof *h);
        h->type = strdup(type);
        if (!h->type) {
            w->nhandlers--;
            return BATON_ERR_NOMEM;
        }
    } else if (h->command) {
        free(h->command->command);
        free(h->command);
    }
    h->fn = fn;
    h->ctx = ctx;
    h->command = command;
    return BATON_OK;
}

baton_err_t baton_worker_register(baton_worker_t *w, const char *type, baton_handler_fn fn,
                                  void *ctx) {
    if (!fn)
        return BATON_ERR_INVALID;
    return add_handler(w, type, fn, ctx, NULL);
}

baton_err_t baton_worker_register_command(baton_worker_t *w, const char *type,
                                          const char *command) {
    if (!command || !*command)
        return BATON_ERR_INVALID;
    struct command_handler *c = calloc(1, sizeof *c);
    if (!c || !(c->command = strdup(command))) {
        free(c);
        return BATON_ERR_NOMEM;
    }
    c->worker = w;
    baton_err_t err = add_handler(w, type, baton_worker_command_run, c, c);
    if (err) {
        free(c->command);
        free(c);
    }
    return err;
}

baton_err_t baton_worker_register_builtins(baton_worker_t *w, const char *names, char *errstr,
                                           size_t errstr_size) {
    static const struct {
        const char *type;
        baton_handler_fn fn;
    } builtins[] = {{"noop", baton_worker_builtin_noop},
                    {"sleep", baton_worker_builtin_sleep},
                    {"echo", baton_worker_builtin_echo},
                    {"fail", baton_worker_builtin_fail},
                    {"crash", baton_worker_builtin_crash}};
    const char *p = names ? names : "";
    if (strcmp(p, "none") == 0)
        return BATON_OK;
    while (*p) {
        size_t len = strcspn(p, ",");
        size_t i = 0;
        while (i < sizeof builtins / sizeof builtins[0] &&
               !(strlen(builtins[i].type) == len && strncmp(builtins[i].type, p, len) == 0))
            i++;
        if (i == sizeof builtins / sizeof builtins[0])
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "unknown built-in handler '%.*s' (known: noop, sleep, echo, fail, "
                                "crash; or none)",
                                (int)(len > 64 ? 64 : len), p);
        baton_err_t err = baton_worker_register(w, builtins[i].type, builtins[i].fn, NULL);
        if (err)
            return baton_seterr(errstr, errstr_size, err, "cannot register built-in '%s'",
                                builtins[i].type);
        p += len;
        if (*p == ',')
            p++;
    }
    return BATON_OK;
}

void baton_worker_stop(baton_worker_t *w) {
    w->stop_requests++;
}

void baton_worker_destroy(baton_worker_t *w) {
    if (!w || w->threads_stuck) /* a handler thread may still use it */
        return;
    baton_worker_metrics_unregister(w);
    baton_worker_queues_free(w->queues, w->nqueues);
    for (size_t i = 0; i < w->nhandlers; i++) {
        free(w->handlers[i].type);
        if (w->handlers[i].command) {
            free(w->handlers[i].command->command);
            free(w->handlers[i].command);
        }
    }
    free(w->handlers);
    for (size_t i = 0; i < w->running.count; i++)
        baton_worker_job_unref(w->running.jobs[i]);
    free(w->running.jobs);
    for (int i = 0; w->executors && i < w->config.concurrency; i++)
        if (w->executors[i].worker) /* its condition variable was made */
            pthread_cond_destroy(&w->executors[i].wake);
    free(w->executors);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->completed);
    pthread_cond_destroy(&w->slot_freed);
    pthread_cond_destroy(&w->stop_cond);
    free(w->redis_url);
    free(w->queue_spec);
    free(w->id);
    baton_worker_command_env_free(w->command_env);
    free(w);
}

/* ------------------------------------------------------------ drain */

void (*baton_worker_test_return_pause)(void);

/* Latest claim first: requeue.lua puts each task at the head of its
 * level, so handing back in reverse claim order keeps their FIFO order. */
static int by_claim_desc(const void *a, const void *b) {
    uint64_t x = (*(baton_job_t *const *)a)->claim_seq, y = (*(baton_job_t *const *)b)->claim_seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Hands every unfinished job back to the head of its queue (graceful
 * stop); `r` NULL when Redis could not be reached. */
static void return_unfinished(baton_worker_t *w, baton_redis_t *r) {
    size_t n;
    baton_job_t **jobs = baton_worker_running_snapshot(w, &n);
    if (!jobs)
        return;
    qsort(jobs, n, sizeof *jobs, by_claim_desc);
    for (size_t i = 0; i < n; i++) {
        baton_job_t *job = jobs[i];
        /* The outcome first, then the stop: a handler told to stop returns
         * at once, and its executor must find the outcome taken. Taking it
         * itself, it gave the task up as returned, this loop skipped it,
         * and the task stayed running in Redis until its lease ran out. */
        if (!baton_worker_job_take_finish(job))
            continue; /* finished meanwhile: its executor writes the outcome */
        baton_worker_job_request_stop(job, JOB_STOP_SHUTDOWN);
        if (baton_worker_test_return_pause) /* its executor wakes meanwhile */
            baton_worker_test_return_pause();
        char errstr[1024];
        if (r && baton_worker_outcome_requeue(w, r, job, errstr, sizeof errstr) == BATON_OK) {
            BATON_LOG_TASK(BATON_LOG_INFO, WORKER_LOG, job->id,
                           "returned to the head of %s (grace period over)", job->wq->keys.name);
        } else {
            BATON_LOG_TASK(BATON_LOG_WARN, WORKER_LOG, job->id,
                           "could not return the task (%s): its lease will expire and "
                           "maintenance reclaims it",
                           r ? errstr : "no Redis connection");
        }
    }
    baton_worker_running_release(jobs, n);
}

/* Waits until no job is busy, `ms` passes, or a further stop request
 * (polled: a signal handler cannot signal a condition variable). */
static int wait_idle(baton_worker_t *w, int64_t ms, sig_atomic_t requests) {
    int64_t until = baton_time_mono_ms() + ms;
    pthread_mutex_lock(&w->lock);
    while (w->busy > 0 && baton_time_mono_ms() < until && w->stop_requests == requests) {
        struct timespec poll = baton_time_mono_after(STOP_POLL_MS);
        pthread_cond_timedwait(&w->slot_freed, &w->lock, &poll);
    }
    int idle = w->busy == 0;
    pthread_mutex_unlock(&w->lock);
    return idle;
}

/* Waits for the first baton_worker_stop(). */
static void wait_stop_request(baton_worker_t *w) {
    struct timespec poll = {0, STOP_POLL_MS * 1000000L};
    while (w->stop_requests == 0)
        nanosleep(&poll, NULL);
}

/* The drain after a stop request, with the fetcher gone: running tasks get
 * the grace period; what is left goes back to the head of its queue. */
static void drain(baton_worker_t *w, sig_atomic_t requests) {
    pthread_mutex_lock(&w->lock);
    int busy = w->busy;
    pthread_mutex_unlock(&w->lock);
    if (busy)
        BATON_INFO(WORKER_LOG, "stopping: waiting up to %" PRId64 " ms for %d running tasks",
                   w->config.grace_ms, busy);
    if (wait_idle(w, w->config.grace_ms, requests))
        return;
    /* A connection of its own, once: the threads' handles are theirs. */
    baton_redis_t *r = NULL;
    char why[512];
    if (baton_redis_connect(w->redis_url, (int)w->config.redis_timeout_ms, &r, why, sizeof why) !=
        BATON_OK)
        r = NULL;
    return_unfinished(w, r);
    baton_redis_destroy(r);
    if (!wait_idle(w, w->config.kill_grace_ms + REQUEUE_WAIT_EXTRA_MS, w->stop_requests)) {
        BATON_WARN(WORKER_LOG, "a handler did not return; exiting without it");
        w->threads_stuck = 1;
    }
}

/* ------------------------------------------------------------- run */

/* One Redis handle per thread (baton_redis_new: connected on first use). */
static baton_err_t make_handles(baton_worker_t *w, char *errstr, size_t errstr_size) {
    int timeout = (int)w->config.redis_timeout_ms;
    baton_err_t err =
        baton_redis_new(w->redis_url, timeout, &w->fetcher_redis, errstr, errstr_size);
    if (!err)
        err = baton_redis_new(w->redis_url, timeout, &w->keeper_redis, errstr, errstr_size);
    if (!err)
        err = baton_redis_new(w->redis_url, timeout, &w->completer_redis, errstr, errstr_size);
    for (int i = 0; !err && i < w->config.concurrency; i++) {
        w->executors[i].worker = w;
        baton_cond_init_monotonic(&w->executors[i].wake);
        err = baton_redis_new(w->redis_url, timeout, &w->executors[i].redis, errstr, errstr_size);
    }
    return err;
}

static void free_handles(baton_worker_t *w) {
    baton_redis_destroy(w->fetcher_redis);
    baton_redis_destroy(w->keeper_redis);
    baton_redis_destroy(w->completer_redis);
    w->fetcher_redis = w->keeper_redis = w->completer_redis = NULL;
    for (int i = 0; w->executors && i < w->config.concurrency; i++) {
        baton_redis_destroy(w->executors[i].redis);
        w->executors[i].redis = NULL;
    }
}

baton_err_t baton_worker_run(baton_worker_t *w, char *errstr, size_t errstr_size) {
    if (w->started)
        return baton_seterr(errstr, errstr_size, BATON_ERR_STATE, "worker already ran");
    w->started = 1;
    w->started_ms = baton_time_wall_ms();
    w->executors = calloc((size_t)w->config.concurrency, sizeof *w->executors);
    if (!w->executors)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    baton_err_t err = make_handles(w, errstr, errstr_size);
    if (err) {
        free_handles(w);
        return err;
    }
    int nexec = 0;
    int ok = pthread_create(&w->keeper, NULL, baton_worker_keeper_main, w) == 0;
    int keeper_ok = ok;
    for (; ok && nexec < w->config.concurrency; nexec++)
        ok = pthread_create(&w->executors[nexec].thread, NULL, baton_worker_executor_main,
                            &w->executors[nexec]) == 0;
    if (!ok)
        nexec--;
    int completer_ok =
        ok && pthread_create(&w->completer, NULL, baton_worker_completer_main, w) == 0;
    ok = completer_ok;
    int fetcher_ok = ok && pthread_create(&w->fetcher, NULL, baton_worker_fetcher_main, w) == 0;
    if (!fetcher_ok)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "cannot start threads");
    else
        BATON_INFO(WORKER_LOG, "worker %s started: queues %s, concurrency %d, %zu handlers", w->id,
                   w->queue_spec, w->config.concurrency, w->nhandlers);

    if (!err)
        wait_stop_request(w);
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->stop_cond);
    pthread_cond_broadcast(&w->slot_freed); /* the fetcher may wait for a slot */
    pthread_mutex_unlock(&w->lock);
    sig_atomic_t requests = w->stop_requests;
    if (fetcher_ok)
        pthread_join(w->fetcher, NULL);

    /* Graceful stop (guarantee 8): no more claims (the fetcher is gone). */
    drain(w, requests);

    pthread_mutex_lock(&w->lock);
    w->exiting = 1;
    w->keeper_exit = 1;
    baton_worker_executors_wake_all(w);
    pthread_cond_broadcast(&w->stop_cond);
    pthread_mutex_unlock(&w->lock);
    if (!w->threads_stuck)
        for (int i = 0; i < nexec; i++)
            pthread_join(w->executors[i].thread, NULL);
    /* The executors are gone: the completer writes what they left, then
     * leaves. */
    pthread_mutex_lock(&w->lock);
    w->completer_exit = 1;
    pthread_cond_signal(&w->completed);
    pthread_mutex_unlock(&w->lock);
    if (completer_ok)
        pthread_join(w->completer, NULL);
    if (keeper_ok)
        pthread_join(w->keeper, NULL);
    if (!w->threads_stuck)
        free_handles(w);
    BATON_INFO(WORKER_LOG,
               "worker %s stopped: %" PRIu64 " succeeded, %" PRIu64 " failed, %" PRIu64
               " stale refusals",
               w->id, w->done, w->failed, w->stale);
    return err;
}
