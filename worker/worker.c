/*
 * worker.c - the worker engine: claim, run, renew, finish, stop.
 *
 * Threads, each with its own Redis connection (hiredis contexts are not
 * shared):
 *   fetcher    claims tasks for idle executor slots: slots are shared among
 *              the queues by smooth weighted round robin, one claim.lua per
 *              queue in one pipeline; with nothing to claim it blocks in
 *              BLPOP on the queues' notify lists (no busy polling), which
 *              every enqueue pushes to;
 *   executors  `concurrency` threads that run handlers and report failures
 *              (fail.lua) with the fencing token;
 *   completer  writes successes, many per round trip (complete.lua pipelined);
 *   keeper     renews leases every lease/3 (renew.lua, one call per queue),
 *              enforces timeouts, and writes the registry heartbeat;
 *   main       (baton_worker_run) waits for stop, then drains in order.
 * A job is shared by the lists and threads through a reference count; who
 * writes its outcome is decided once, under the job's lock ("finished").
 * With a metrics registry in the config, outcomes are counted where they
 * are written (after Redis accepted them), by queue and task type.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"
#include "redis.h"
#include "state.h"
#include "task.h"
#include "timeutil.h"
#include "utf8.h"
#include "worker_internal.h"

#define COMPONENT "worker"
#define BLOCK_TIMEOUT "0.5"          /* BLPOP seconds: bounds stop latency */
#define KEEPER_TICK_MS 50            /* timeout checks */
#define HEARTBEAT_EVERY_MS 2000
#define HEARTBEAT_TTL_MS 10000
#define RETRY_AFTER_ERROR_MS 500
#define REQUEUE_WAIT_EXTRA_MS 1000   /* after requeue, wait for handlers */
#define REAP_EVERY_MS 1000           /* as PID 1: how often orphans are reaped */

struct worker_queue {
    char *name;
    int weight;
    int current;                     /* smooth weighted round robin state */
    char ready[BATON_KEY_MAX], running[BATON_KEY_MAX], deadline[BATON_KEY_MAX];
    char events[BATON_KEY_MAX], paused[BATON_KEY_MAX], notify[BATON_KEY_MAX];
    char scheduled[BATON_KEY_MAX], dead[BATON_KEY_MAX], seq[BATON_KEY_MAX];
    char prefix[BATON_KEY_MAX];
};

struct handler_entry {
    char *type;
    baton_handler_fn fn;
    void *ctx;
    struct command_handler *command; /* owned when a command handler */
};

/* The worker's metric families (docs/metrics.md); all NULL without a
 * registry, which the metrics API takes as no-ops. */
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

struct baton_worker {
    struct baton_worker_config config;
    struct worker_metrics metrics;
    char *redis_url, *queue_spec, *id;
    char **command_env;              /* --command-env names, owned */
    char lease_text[24], retention_text[24];
    struct worker_queue *queues;
    size_t nqueues;
    struct handler_entry *handlers;
    size_t nhandlers;

    pthread_mutex_t lock;            /* guards everything below */
    pthread_cond_t work;             /* executors: a job is ready / exiting */
    pthread_cond_t slots;            /* fetcher and main: a slot freed */
    baton_job_t *ready_head, *ready_tail; /* claimed, waiting for an executor */
    int busy;                        /* jobs claimed and not done */
    int stopping;                    /* no more claims */
    int exiting;                     /* executors leave */
    int keeper_exit;
    uint64_t done, failed, stale;
    uint64_t claims;                 /* claim counter: jobs' claim_seq */
    baton_job_t *done_head, *done_tail; /* successes waiting for the completer */
    int completer_exit;              /* set once no executor can add more */
    pthread_cond_t done_cond;        /* completer: a success is waiting / exiting */
    pthread_t completer;

    volatile sig_atomic_t stop_requests;
    int threads_stuck;               /* a handler never returned: do not free */
    int64_t started_ms;              /* wall clock, for the registry */
    struct running_set {
        baton_job_t **jobs;
        size_t count, cap;
    } running_set;                   /* claimed jobs, one reference each */
    pthread_t fetcher, keeper, *executors;
    int started;
};


/* ------------------------------------------------------------------ jobs */

struct job_ref {
    baton_job_t job;
    atomic_int refs;
};

static baton_job_t *job_ref(baton_job_t *job) {
    atomic_fetch_add(&((struct job_ref *)job)->refs, 1);
    return job;
}

static void job_unref(baton_job_t *job) {
    if (!job || atomic_fetch_sub(&((struct job_ref *)job)->refs, 1) != 1)
        return;
    free(job->id);
    free(job->queue);
    free(job->type);
    json_decref(job->task);
    free(job->result);
    free(job->error);
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->wake);
    free(job);
}

void job_request_stop(baton_job_t *job, enum job_stop reason) {
    int expected = JOB_STOP_NONE;
    atomic_compare_exchange_strong(&job->stop_reason, &expected, (int)reason);
    int pgid = atomic_load(&job->pgid);
    if (pgid > 0)
        kill(-pgid, SIGTERM);
    pthread_mutex_lock(&job->lock);
    pthread_cond_broadcast(&job->wake);
    pthread_mutex_unlock(&job->lock);
}

/* Claims the right to write the job's outcome; 1 for the first caller. */
static int job_take_finish(baton_job_t *job) {
    pthread_mutex_lock(&job->lock);
    int first = !job->finished;
    job->finished = 1;
    pthread_mutex_unlock(&job->lock);
    return first;
}

/* 1 once some thread has taken the right to write the job's outcome. */
static int job_finish_taken(baton_job_t *job) {
    pthread_mutex_lock(&job->lock);
    int taken = job->finished;
    pthread_mutex_unlock(&job->lock);
    return taken;
}

const char *baton_job_id(const baton_job_t *job) { return job->id; }
const char *baton_job_type(const baton_job_t *job) { return job->type; }
const char *baton_job_queue(const baton_job_t *job) { return job->queue; }
int baton_job_attempt(const baton_job_t *job) { return job->attempt; }
const char *baton_job_token(const baton_job_t *job) { return job->token; }
const json_t *baton_job_payload(const baton_job_t *job) { return job->payload; }

int64_t baton_job_remaining_ms(const baton_job_t *job) {
    return job->deadline_mono_ms - baton_time_mono_ms();
}

int baton_job_should_stop(const baton_job_t *job) {
    return atomic_load(&((baton_job_t *)job)->stop_reason) != JOB_STOP_NONE;
}

int baton_job_sleep(baton_job_t *job, int64_t ms) {
    struct timespec until = baton_time_mono_after(ms);
    pthread_mutex_lock(&job->lock);
    while (!baton_job_should_stop(job))
        if (pthread_cond_timedwait(&job->wake, &job->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&job->lock);
    return baton_job_should_stop(job);
}

baton_err_t baton_job_set_result(baton_job_t *job, const char *text, size_t len) {
    json_error_t jerr;
    json_t *parsed = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    char *copy;
    if (parsed) {
        copy = json_dumps(parsed, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(parsed);
    } else {
        /* Not JSON (plain program output): keep it as a JSON string, made
         * valid UTF-8 (invalid bytes become U+FFFD) for PostgreSQL. */
        size_t clean_len;
        char *clean = baton_utf8_sanitize(text, len, &clean_len);
        json_t *s = clean ? json_stringn_nocheck(clean, clean_len) : NULL;
        free(clean);
        copy = s ? json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(s);
    }
    if (!copy)
        return BATON_ERR_NOMEM;
    free(job->result);
    job->result = copy;
    job->result_len = strlen(copy);
    return BATON_OK;
}

void baton_job_set_error(baton_job_t *job, const char *fmt, ...) {
    /* At most ERROR_MAX bytes, cut on a character boundary (the 3 bytes
     * past it tell where a character ends), then made valid UTF-8. */
    enum { ERROR_MAX = 4095 };
    char buf[ERROR_MAX + 4];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    len = baton_utf8_head_len(buf, len, ERROR_MAX);
    free(job->error);
    job->error = baton_utf8_sanitize(buf, len, NULL);
}

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

size_t worker_max_result_bytes(const baton_worker_t *w) { return w->config.max_result_bytes; }
char *const *worker_command_env(const baton_worker_t *w) { return w->command_env; }
int64_t worker_kill_grace_ms(const baton_worker_t *w) { return w->config.kill_grace_ms; }
const char *baton_worker_id(const baton_worker_t *w) { return w->id; }

/* Parses "a=3,b,c=1" into w->queues. */
static baton_err_t parse_queues(baton_worker_t *w, char *errstr, size_t errstr_size) {
    char *copy = strdup(w->queue_spec);
    if (!copy)
        return BATON_ERR_NOMEM;
    size_t cap = 1;
    for (const char *p = copy; *p; p++)
        cap += *p == ',';
    w->queues = calloc(cap, sizeof *w->queues);
    baton_err_t err = w->queues ? BATON_OK : BATON_ERR_NOMEM;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); !err && item;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        long weight = 1;
        if (eq) {
            *eq = '\0';
            char *end;
            weight = strtol(eq + 1, &end, 10);
            if (end == eq + 1 || *end || weight < 1 || weight > 1000)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                   "--queues: weight of '%s' must be an integer 1-1000", item);
        }
        if (!err && !baton_task_name_valid(item))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                               "--queues: '%s' is not a valid queue name", item);
        for (size_t i = 0; !err && i < w->nqueues; i++)
            if (strcmp(w->queues[i].name, item) == 0)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                   "--queues: '%s' is listed twice", item);
        if (err)
            break;
        struct worker_queue *q = &w->queues[w->nqueues++];
        q->name = strdup(item);
        q->weight = (int)weight;
        baton_queue_key(q->ready, item, "ready");
        baton_queue_key(q->running, item, "running");
        baton_queue_key(q->deadline, item, "deadline");
        baton_queue_key(q->events, item, "events");
        baton_queue_key(q->paused, item, "paused");
        baton_queue_key(q->notify, item, "notify");
        baton_queue_key(q->scheduled, item, "scheduled");
        baton_queue_key(q->dead, item, "dead");
        baton_queue_key(q->seq, item, "seq");
        baton_queue_key(q->prefix, item, "t:");
    }
    free(copy);
    if (!err && w->nqueues == 0)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "--queues: no queue given");
    return err;
}

/* ------------------------------------------------------------ metrics */

/* baton_worker_threads at scrape time: executors busy with a claimed task
 * (running or about to) and idle ones. @locality an HTTP server thread */
static void collect_threads(baton_metric_t *family, void *ctx) {
    baton_worker_t *w = ctx;
    pthread_mutex_lock(&w->lock);
    int busy = w->busy < w->config.concurrency ? w->busy : w->config.concurrency;
    pthread_mutex_unlock(&w->lock);
    baton_metric_set(family, BATON_LABELS("busy"), busy);
    baton_metric_set(family, BATON_LABELS("idle"), w->config.concurrency - busy);
}

static void register_metrics(baton_worker_t *w, baton_metrics_t *r) {
    static const double fast[] = {BATON_BUCKETS_FAST_SECONDS};
    static const double slow[] = {BATON_BUCKETS_SLOW_SECONDS};
    struct worker_metrics *mx = &w->metrics;
    mx->claimed = baton_metrics_counter(r, "baton_worker_tasks_claimed_total",
                                        "Tasks claimed by this worker.", "queue,type");
    mx->succeeded = baton_metrics_counter(r, "baton_worker_tasks_succeeded_total",
                                          "Tasks this worker completed successfully.",
                                          "queue,type");
    mx->failed = baton_metrics_counter(r, "baton_worker_tasks_failed_total",
                                       "Failed attempts reported by this worker, by reason "
                                       "(error, timeout).",
                                       "queue,type,reason");
    mx->retried = baton_metrics_counter(r, "baton_worker_tasks_retried_total",
                                        "Failed attempts scheduled for a retry.", "queue,type");
    mx->dead = baton_metrics_counter(r, "baton_worker_tasks_dead_total",
                                     "Failed attempts that left the task dead (out of attempts "
                                     "or a permanent failure).",
                                     "queue,type");
    mx->canceled = baton_metrics_counter(r, "baton_worker_tasks_canceled_total",
                                         "Running tasks stopped on a cancel request.",
                                         "queue,type");
    mx->stale = baton_metrics_counter(r, "baton_worker_stale_refusals_total",
                                      "Outcomes and lease renewals Redis refused because the lease was taken over "
                                      "(stale fencing token).",
                                      "queue");
    mx->run_seconds = baton_metrics_histogram(r, "baton_task_run_seconds",
                                              "Time a handler ran, by task type.", "type", slow,
                                              sizeof slow / sizeof slow[0]);
    mx->threads = baton_metrics_gauge(r, "baton_worker_threads",
                                      "Executor threads, busy or idle.", "state");
    mx->roundtrip = baton_metrics_histogram(
        r, "baton_redis_roundtrip_seconds",
        "Time of one Redis round trip (a pipeline or a single command), by component.",
        "component", fast, sizeof fast / sizeof fast[0]);
    baton_metric_set_collector(mx->threads, collect_threads, w);
}

/* ---------------------------------------------------------- lifecycle */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

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
    if (config->worker_id) {
        w->id = strdup(config->worker_id);
    } else {
        char host[256] = "host";
        gethostname(host, sizeof host - 1);
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != sizeof r)
            r = (uint32_t)baton_time_wall_ms();
        char buf[320];
        snprintf(buf, sizeof buf, "%s-%ld-%04x", host, (long)getpid(), r & 0xffff);
        w->id = strdup(buf);
    }
    w->config.worker_id = w->id;
    snprintf(w->lease_text, sizeof w->lease_text, "%" PRId64, config->lease_ms);
    snprintf(w->retention_text, sizeof w->retention_text, "%" PRId64, config->retention_ms);
    pthread_mutex_init(&w->lock, NULL);
    baton_cond_init_monotonic(&w->work);
    baton_cond_init_monotonic(&w->done_cond);
    baton_cond_init_monotonic(&w->slots);
    baton_err_t err = (!w->redis_url || !w->queue_spec || !w->id)
                          ? baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory")
                          : parse_queues(w, errstr, errstr_size);
    if (!err)
        err = command_env_parse(config->command_env, &w->command_env, errstr, errstr_size);
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
        register_metrics(w, config->metrics);
    *out = w;
    return BATON_OK;
}

static struct handler_entry *find_handler(baton_worker_t *w, const char *type) {
    for (size_t i = 0; i < w->nhandlers; i++)
        if (strcmp(w->handlers[i].type, type) == 0)
            return &w->handlers[i];
    return NULL;
}

static baton_err_t add_handler(baton_worker_t *w, const char *type, baton_handler_fn fn,
                               void *ctx, struct command_handler *command) {
    if (!type || !baton_task_name_valid(type) || w->started)
        return BATON_ERR_INVALID;
    struct handler_entry *h = find_handler(w, type);
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
    baton_err_t err = add_handler(w, type, command_run, c, c);
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
    } builtins[] = {{"noop", builtin_noop}, {"sleep", builtin_sleep}, {"echo", builtin_echo},
                    {"fail", builtin_fail}, {"crash", builtin_crash}};
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

void baton_worker_stop(baton_worker_t *w) { w->stop_requests++; }

void baton_worker_destroy(baton_worker_t *w) {
    if (!w || w->threads_stuck) /* a handler thread may still use it */
        return;
    baton_metric_set_collector(w->metrics.threads, NULL, NULL); /* waits for a scrape */
    for (size_t i = 0; i < w->nqueues; i++)
        free(w->queues[i].name);
    free(w->queues);
    for (size_t i = 0; i < w->nhandlers; i++) {
        free(w->handlers[i].type);
        if (w->handlers[i].command) {
            free(w->handlers[i].command->command);
            free(w->handlers[i].command);
        }
    }
    free(w->handlers);
    for (size_t i = 0; i < w->running_set.count; i++)
        job_unref(w->running_set.jobs[i]);
    free(w->running_set.jobs);
    free(w->executors);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->slots);
    pthread_cond_destroy(&w->done_cond);
    free(w->redis_url);
    free(w->queue_spec);
    free(w->id);
    command_env_free(w->command_env);
    free(w);
}

/* ------------------------------------------------------------- claiming */

/*
 * Builds a job from one claim.lua entry (6 strings). Returns NULL when the
 * task JSON cannot be read (then the caller fails the attempt).
 */
static baton_job_t *job_from_claim(const struct worker_queue *q, redisReply **e) {
    struct job_ref *jr = calloc(1, sizeof *jr);
    if (!jr)
        return NULL;
    baton_job_t *job = &jr->job;
    atomic_init(&jr->refs, 1);
    atomic_init(&job->stop_reason, JOB_STOP_NONE);
    atomic_init(&job->pgid, 0);
    pthread_mutex_init(&job->lock, NULL);
    baton_cond_init_monotonic(&job->wake);
    job->wq = q;
    job->id = strdup(e[0]->str);
    job->queue = strdup(q->name);
    snprintf(job->token, sizeof job->token, "%s", e[1]->str);
    job->attempt = atoi(e[2]->str);
    job->max_attempts = e[3]->str ? atoi(e[3]->str) : 1;
    job->timeout_ms = e[4]->str ? strtoll(e[4]->str, NULL, 10) : 300000;
    json_error_t jerr;
    job->task = e[5]->str ? json_loadb(e[5]->str, e[5]->len, 0, &jerr) : NULL;
    const char *type = json_string_value(json_object_get(job->task, "type"));
    job->type = strdup(type ? type : "");
    job->payload = json_object_get(job->task, "payload");
    if (!job->payload)
        job->payload = json_null();
    job->started_mono_ms = baton_time_mono_ms();
    /* Saturating: a task enqueued before the contract capped timeout_ms
     * may hold up to 2^63-1, and a wrapped sum would time it out at once. */
    job->deadline_mono_ms = baton_time_add_sat(job->started_mono_ms, job->timeout_ms);
    if (!job->id || !job->queue || !job->type) {
        job_unref(job);
        return NULL;
    }
    return job;
}

/* Shares `idle` slots among the queues by smooth weighted round robin. */
static void allocate_slots(baton_worker_t *w, int idle, int *counts) {
    int total = 0;
    for (size_t i = 0; i < w->nqueues; i++) {
        counts[i] = 0;
        total += w->queues[i].weight;
    }
    for (int s = 0; s < idle; s++) {
        size_t best = 0;
        for (size_t i = 0; i < w->nqueues; i++) {
            w->queues[i].current += w->queues[i].weight;
            if (w->queues[i].current > w->queues[best].current)
                best = i;
        }
        w->queues[best].current -= total;
        counts[best]++;
    }
}

/* Hands claimed jobs to the executors. */
static void enqueue_jobs(baton_worker_t *w, baton_job_t **jobs, int n) {
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < n; i++) {
        baton_job_t *j = jobs[i];
        /* The running list holds one reference, the ready list borrows it. */
        j->next = NULL;
        if (w->ready_tail)
            w->ready_tail->next = j;
        else
            w->ready_head = j;
        w->ready_tail = j;
        w->busy++;
    }
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->lock);
}

/* The running set: every claimed job not yet done; worker lock held. */
static void running_add(baton_worker_t *w, baton_job_t *j) {
    struct running_set *running_jobs = &w->running_set;
    if (running_jobs->count == running_jobs->cap) {
        size_t cap = running_jobs->cap ? running_jobs->cap * 2 : 16;
        baton_job_t **grown = realloc(running_jobs->jobs, cap * sizeof *grown);
        if (!grown)
            abort(); /* cannot track a claimed task: fail loudly, lease saves it */
        running_jobs->jobs = grown;
        running_jobs->cap = cap;
    }
    running_jobs->jobs[running_jobs->count++] = j;
}

static void running_remove(baton_worker_t *w, baton_job_t *j) {
    struct running_set *running_jobs = &w->running_set;
    for (size_t i = 0; i < running_jobs->count; i++) {
        if (running_jobs->jobs[i] == j) {
            running_jobs->jobs[i] = running_jobs->jobs[--running_jobs->count];
            return;
        }
    }
}

/* Copies the running set with a reference on each job; caller unrefs. */
static baton_job_t **running_snapshot(baton_worker_t *w, size_t *n) {
    struct running_set *running_jobs = &w->running_set;
    pthread_mutex_lock(&w->lock);
    baton_job_t **copy = malloc((running_jobs->count ? running_jobs->count : 1) * sizeof *copy);
    *n = 0;
    if (copy)
        for (size_t i = 0; i < running_jobs->count; i++)
            copy[(*n)++] = job_ref(running_jobs->jobs[i]);
    pthread_mutex_unlock(&w->lock);
    return copy;
}

/* Reports an outcome for a job whose task JSON could not be read. */
static void fail_unreadable(baton_redis_t *r, const struct worker_queue *q, redisReply **e,
                            const char *retention);

/*
 * One claim round: pipelined claim.lua for the queues that got slots.
 * Returns the number of jobs claimed, or -1 on a Redis error.
 */
static int claim_round(baton_worker_t *w, baton_redis_t *r, int idle, char *errstr,
                       size_t errstr_size) {
    int counts[w->nqueues];
    allocate_slots(w, idle, counts);
    int64_t started_ns = baton_metrics_now_ns();
    baton_redis_pipeline_begin(r);
    size_t appended = 0;
    for (size_t i = 0; i < w->nqueues; i++) {
        if (!counts[i])
            continue;
        struct worker_queue *q = &w->queues[i];
        char count[16];
        snprintf(count, sizeof count, "%d", counts[i]);
        const char *argv[] = {q->ready, q->running, q->deadline, q->events, q->paused,
                              q->prefix, w->id, w->lease_text, count, w->retention_text};
        if (baton_redis_append_script(r, "claim.lua", 5, 10, argv, NULL, errstr, errstr_size))
            return -1;
        appended++;
    }
    int claimed = 0;
    baton_err_t err = BATON_OK;
    for (size_t i = 0, seen = 0; i < w->nqueues && seen < appended; i++) {
        if (!counts[i])
            continue;
        seen++;
        redisReply *reply;
        if (baton_redis_get_reply(r, &reply, errstr, errstr_size))
            return -1;
        if (reply->type == REDIS_REPLY_ERROR) {
            if (!err)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "claim on %s: %s",
                                   w->queues[i].name, reply->str);
        } else if (reply->type == REDIS_REPLY_ARRAY) {
            size_t n = reply->elements / 6;
            baton_job_t *jobs[n ? n : 1];
            int got = 0;
            for (size_t k = 0; k < n; k++) {
                baton_job_t *job = job_from_claim(&w->queues[i], reply->element + k * 6);
                if (job && job->task) {
                    baton_metric_inc(w->metrics.claimed, BATON_LABELS(job->queue, job->type));
                    jobs[got++] = job;
                } else {
                    job_unref(job);
                    fail_unreadable(r, &w->queues[i], reply->element + k * 6, w->retention_text);
                }
            }
            pthread_mutex_lock(&w->lock);
            for (int k = 0; k < got; k++) {
                jobs[k]->claim_seq = ++w->claims;
                running_add(w, job_ref(jobs[k]));
            }
            pthread_mutex_unlock(&w->lock);
            enqueue_jobs(w, jobs, got);
            for (int k = 0; k < got; k++)
                job_unref(jobs[k]); /* the running set and ready list hold it now */
            claimed += got;
        }
        freeReplyObject(reply);
    }
    baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                         baton_metrics_since(started_ns));
    return err ? -1 : claimed;
}

/* Blocks until some queue of ours is notified, or BLOCK_TIMEOUT passes. */
static void block_for_work(baton_worker_t *w, baton_redis_t *r) {
    size_t argc = w->nqueues + 2;
    const char *argv[argc];
    argv[0] = "BLPOP";
    for (size_t i = 0; i < w->nqueues; i++)
        argv[i + 1] = w->queues[i].notify;
    argv[argc - 1] = BLOCK_TIMEOUT;
    redisReply *reply;
    char errstr[256];
    if (baton_redis_command(r, &reply, (int)argc, argv, NULL, errstr, sizeof errstr) == BATON_OK)
        freeReplyObject(reply);
}

/* Waits up to `ms` on `cond` or until stopping; with the lock held. */
static void timed_wait_locked(baton_worker_t *w, pthread_cond_t *cond, int64_t ms) {
    struct timespec until = baton_time_mono_after(ms);
    pthread_cond_timedwait(cond, &w->lock, &until);
}

/* @locality the fetcher thread */
static void *fetcher_main(void *arg) {
    baton_worker_t *w = arg;
    baton_redis_t *r = NULL;
    char errstr[1024];
    unsigned failures = 0;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->stopping && w->busy >= w->config.concurrency)
            pthread_cond_wait(&w->slots, &w->lock);
        int idle = w->config.concurrency - w->busy;
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (stopping)
            break;
        int claimed = -1;
        if (r || baton_redis_connect(w->redis_url, (int)w->config.redis_timeout_ms, &r, errstr,
                                     sizeof errstr) == BATON_OK)
            claimed = claim_round(w, r, idle, errstr, sizeof errstr);
        if (claimed < 0) {
            if (failures++ == 0 || failures % 20 == 0)
                BATON_WARN(COMPONENT, "claim failed (will retry): %s", errstr);
            pthread_mutex_lock(&w->lock);
            if (!w->stopping)
                timed_wait_locked(w, &w->slots, RETRY_AFTER_ERROR_MS);
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        if (failures)
            BATON_INFO(COMPONENT, "claiming again after %u failures", failures);
        failures = 0;
        if (claimed == 0)
            block_for_work(w, r);
    }
    baton_redis_destroy(r);
    return NULL;
}

/* ------------------------------------------------------------ finishing */

/* Counts and logs a refusal for a stale token (guarantee 3): `what` was
 * refused ("outcome" or "lease renewal"), `why` says more. Every such line
 * contains "refused, the lease was taken over" (tests/checker counts it). */
static void note_stale(baton_worker_t *w, const baton_job_t *job, const char *what,
                       const char *why) {
    pthread_mutex_lock(&w->lock);
    w->stale++;
    pthread_mutex_unlock(&w->lock);
    baton_metric_inc(w->metrics.stale, BATON_LABELS(job->queue));
    BATON_LOG_TASK(BATON_LOG_WARN, COMPONENT, job->id,
                   "%s refused, the lease was taken over (token %s): %s", what, job->token, why);
}

/* Runs one finishing script; handles STALE. Returns BATON_OK when written,
 * with the first element of an array reply (fail.lua's new state) copied
 * into `state` when given. */
static baton_err_t run_finish(baton_worker_t *w, baton_redis_t *r, const baton_job_t *job,
                              const char *script, int nkeys, int argc, const char **argv,
                              const size_t *lens, char *state, size_t state_size) {
    char errstr[1024];
    redisReply *reply = NULL;
    baton_err_t err = BATON_OK;
    /* A Redis outage must not lose the outcome while our lease still
     * holds: retry for about one lease length, then leave it to reclaim. */
    int64_t give_up = baton_time_mono_ms() + w->config.lease_ms;
    for (;;) {
        int64_t started_ns = baton_metrics_now_ns();
        err = baton_redis_script(r, script, nkeys, argc, argv, lens, &reply, errstr,
                                 sizeof errstr);
        if (!err || strstr(errstr, "STALE"))
            baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                                 baton_metrics_since(started_ns));
        if (!err || strstr(errstr, "STALE") || baton_time_mono_ms() > give_up)
            break;
        BATON_LOG_TASK(BATON_LOG_WARN, COMPONENT, job->id, "%s failed, retrying: %s", script,
                       errstr);
        usleep(RETRY_AFTER_ERROR_MS * 1000);
    }
    if (state && state_size) {
        state[0] = '\0';
        if (!err && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
            reply->element[0]->str)
            snprintf(state, state_size, "%s", reply->element[0]->str);
    }
    if (reply)
        freeReplyObject(reply);
    if (err && strstr(errstr, "STALE"))
        note_stale(w, job, "outcome", errstr);
    else if (err)
        BATON_LOG_TASK(BATON_LOG_ERROR, COMPONENT, job->id,
                       "could not report the outcome, maintenance will reclaim it: %s", errstr);
    return err;
}

/* complete.lua's KEYS and ARGV for `job`; `marker` (96 bytes) holds the
 * stand-in for a result over the size limit. */
static void complete_args(const baton_worker_t *w, const baton_job_t *job, const char **argv,
                          size_t *lens, char *marker) {
    const struct worker_queue *q = job->wq;
    const char *result = job->result ? job->result : "null";
    size_t result_len = job->result ? job->result_len : 4;
    if (result_len > w->config.max_result_bytes) {
        /* Keep success a success; say what was dropped. */
        snprintf(marker, 96, "{\"truncated\":true,\"bytes\":%zu}", result_len);
        result = marker;
        result_len = strlen(marker);
    }
    const char *values[7] = {q->running, q->events, q->prefix, job->id, job->token, result,
                             w->retention_text};
    for (int i = 0; i < 7; i++) {
        argv[i] = values[i];
        lens[i] = i == 5 ? result_len : strlen(values[i]);
    }
}

static void count_success(baton_worker_t *w, const baton_job_t *job) {
    baton_metric_inc(w->metrics.succeeded, BATON_LABELS(job->queue, job->type));
    pthread_mutex_lock(&w->lock);
    w->done++;
    pthread_mutex_unlock(&w->lock);
}

/* One success, one round trip, with retries (the completer's fallback). */
static baton_err_t report_success(baton_worker_t *w, baton_redis_t *r, baton_job_t *job) {
    const char *argv[7];
    size_t lens[7];
    char marker[96];
    complete_args(w, job, argv, lens, marker);
    baton_err_t err = run_finish(w, r, job, "complete.lua", 2, 7, argv, lens, NULL, 0);
    if (!err)
        count_success(w, job);
    return err;
}

static baton_err_t report_failure(baton_worker_t *w, baton_redis_t *r, const baton_job_t *job,
                                  const char *error, const char *reason, int permanent) {
    const struct worker_queue *q = job->wq;
    char base[24], cap[24], jitter[32];
    snprintf(base, sizeof base, "%" PRId64, w->config.backoff_base_ms);
    snprintf(cap, sizeof cap, "%" PRId64, w->config.backoff_cap_ms);
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
        rnd = (uint32_t)baton_time_mono_ms();
    snprintf(jitter, sizeof jitter, "%.9f", (double)rnd / 4294967296.0);
    const char *argv[] = {q->running, q->scheduled, q->dead, q->events, q->prefix, job->id,
                          job->token, error, reason, base, cap, jitter, permanent ? "1" : "0",
                          w->retention_text};
    char state[16];
    baton_err_t err = run_finish(w, r, job, "fail.lua", 4, 14, argv, NULL, state, sizeof state);
    if (!err) {
        baton_metric_inc(w->metrics.failed, BATON_LABELS(job->queue, job->type, reason));
        baton_state_t next;
        if (baton_state_parse(state, &next) != 0)
            BATON_LOG_TASK(BATON_LOG_WARN, COMPONENT, job->id,
                           "fail.lua answered '%s', which is no state", state);
        else if (next == BATON_STATE_SCHEDULED)
            baton_metric_inc(w->metrics.retried, BATON_LABELS(job->queue, job->type));
        else if (next == BATON_STATE_DEAD)
            baton_metric_inc(w->metrics.dead, BATON_LABELS(job->queue, job->type));
        else if (next == BATON_STATE_CANCELED) /* a cancel requested while it ran */
            baton_metric_inc(w->metrics.canceled, BATON_LABELS(job->queue, job->type));
    }
    return err;
}

static void fail_unreadable(baton_redis_t *r, const struct worker_queue *q, redisReply **e,
                            const char *retention) {
    const char *argv[] = {q->running, q->scheduled, q->dead, q->events, q->prefix, e[0]->str,
                          e[1]->str, "task JSON in Redis is unreadable", "error", "0", "0",
                          "0", "1", retention};
    redisReply *reply = NULL;
    char errstr[256];
    baton_redis_script(r, "fail.lua", 4, 14, argv, NULL, &reply, errstr, sizeof errstr);
    if (reply)
        freeReplyObject(reply);
    BATON_LOG_TASK(BATON_LOG_ERROR, COMPONENT, e[0]->str, "task JSON unreadable: marked dead");
}

/* Writes the outcome of `job` once, whoever calls first. */
static void finish_job(baton_worker_t *w, baton_redis_t *r, baton_job_t *job,
                       baton_handler_status_t status) {
    if (!job_take_finish(job))
        return;
    int reason = atomic_load(&job->stop_reason);
    baton_err_t err = BATON_OK;
    if (reason == JOB_STOP_LOST) {
        BATON_LOG_TASK(BATON_LOG_WARN, COMPONENT, job->id,
                       "lease lost: abandoning the attempt without writing");
        return;
    } else if (reason == JOB_STOP_SHUTDOWN) {
        /* Not reached: return_unfinished takes the outcome before it stops
         * the handler. A stop for shutdown never writes one. */
        return;
    } else if (reason == JOB_STOP_CANCELED) {
        const struct worker_queue *q = job->wq;
        const char *argv[] = {q->running, q->events, q->prefix, job->id, job->token,
                              w->retention_text};
        if (run_finish(w, r, job, "finish_canceled.lua", 2, 6, argv, NULL, NULL, 0) == BATON_OK) {
            baton_metric_inc(w->metrics.canceled, BATON_LABELS(job->queue, job->type));
            BATON_LOG_TASK(BATON_LOG_INFO, COMPONENT, job->id, "canceled");
        }
        return;
    } else if (reason == JOB_STOP_TIMEOUT) {
        char error[128];
        snprintf(error, sizeof error, "timed out after %" PRId64 " ms", job->timeout_ms);
        err = report_failure(w, r, job, error, "timeout", 0);
    } else if (status == BATON_HANDLER_OK) {
        report_success(w, r, job); /* counts itself */
        return;
    } else {
        err = report_failure(w, r, job, job->error ? job->error : "handler failed", "error",
                             status == BATON_HANDLER_FAILED_PERMANENT);
    }
    if (!err) {
        pthread_mutex_lock(&w->lock);
        w->failed++;
        pthread_mutex_unlock(&w->lock);
    }
}

/* Takes `job` off the worker's books and frees a slot. */
static void job_done(baton_worker_t *w, baton_job_t *job) {
    pthread_mutex_lock(&w->lock);
    running_remove(w, job);
    w->busy--;
    pthread_cond_broadcast(&w->slots);
    pthread_mutex_unlock(&w->lock);
    job_unref(job); /* the running set's reference */
}

/* @locality an executor thread */
static void *executor_main(void *arg) {
    baton_worker_t *w = arg;
    baton_redis_t *r = NULL;
    char errstr[1024];
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->ready_head && !w->exiting)
            pthread_cond_wait(&w->work, &w->lock);
        baton_job_t *job = w->ready_head;
        if (!job) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        w->ready_head = job->next;
        if (!w->ready_head)
            w->ready_tail = NULL;
        job_ref(job);
        pthread_mutex_unlock(&w->lock);

        baton_handler_status_t status = BATON_HANDLER_FAILED;
        if (!baton_job_should_stop(job)) {
            struct handler_entry *h = find_handler(w, job->type);
            if (h) {
                BATON_LOG_TASK(BATON_LOG_DEBUG, COMPONENT, job->id, "running %s (attempt %d)",
                               job->type, job->attempt);
                int64_t started_ns = baton_metrics_now_ns();
                status = h->fn(job, h->ctx);
                baton_metric_observe(w->metrics.run_seconds, BATON_LABELS(job->type),
                                     baton_metrics_since(started_ns));
            } else {
                baton_job_set_error(job, "no handler for type '%s' on worker %s", job->type,
                                    w->id);
            }
        }
        /* Successes, the common case, go to the completer, which writes
         * many in one round trip (it also frees the slot and takes over
         * this thread's reference). */
        if (status == BATON_HANDLER_OK && !baton_job_should_stop(job) && job_take_finish(job)) {
            pthread_mutex_lock(&w->lock);
            job->next = NULL;
            if (w->done_tail)
                w->done_tail->next = job;
            else
                w->done_head = job;
            w->done_tail = job;
            pthread_cond_signal(&w->done_cond);
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        /* Without Redis the outcome cannot be written: keep trying for
         * one lease length, after which maintenance reclaims the task. */
        int64_t give_up = baton_time_mono_ms() + w->config.lease_ms;
        while (!r && baton_redis_connect(w->redis_url, (int)w->config.redis_timeout_ms, &r,
                                         errstr, sizeof errstr) != BATON_OK) {
            BATON_WARN(COMPONENT, "executor cannot reach Redis: %s", errstr);
            if (baton_time_mono_ms() > give_up)
                break;
            usleep(RETRY_AFTER_ERROR_MS * 1000);
        }
        if (r)
            finish_job(w, r, job, status);
        job_done(w, job);
        job_unref(job);
    }
    baton_redis_destroy(r);
    return NULL;
}

/* Most successes written per round trip. */
#define COMPLETE_BATCH 256

/*
 * Writes successes in batches: one pipeline of complete.lua calls for all
 * that are waiting. A STALE refusal is counted like any other; an I/O
 * error sends the rest of the batch through the one-at-a-time path, which
 * retries for a lease length.
 * @locality the completer thread
 */
static void *completer_main(void *arg) {
    baton_worker_t *w = arg;
    baton_redis_t *r = NULL;
    baton_job_t *batch[COMPLETE_BATCH];
    char errstr[1024];
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->done_head && !w->completer_exit)
            pthread_cond_wait(&w->done_cond, &w->lock);
        size_t n = 0;
        while (w->done_head && n < COMPLETE_BATCH) {
            batch[n++] = w->done_head;
            w->done_head = w->done_head->next;
        }
        if (!w->done_head)
            w->done_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        if (n == 0)
            break; /* exiting and drained */

        if (!r && baton_redis_connect(w->redis_url, (int)w->config.redis_timeout_ms, &r, errstr,
                                      sizeof errstr) != BATON_OK)
            r = NULL;
        size_t sent = 0;
        if (r) {
            baton_redis_pipeline_begin(r);
            int64_t started_ns = baton_metrics_now_ns();
            char markers[COMPLETE_BATCH][96];
            for (; sent < n; sent++) {
                const char *argv[7];
                size_t lens[7];
                complete_args(w, batch[sent], argv, lens, markers[sent]);
                if (baton_redis_append_script(r, "complete.lua", 2, 7, argv, lens, errstr,
                                              sizeof errstr))
                    break;
            }
            size_t answered = 0;
            for (; answered < sent; answered++) {
                redisReply *reply;
                if (baton_redis_get_reply(r, &reply, errstr, sizeof errstr))
                    break;
                baton_job_t *job = batch[answered];
                if (reply->type != REDIS_REPLY_ERROR)
                    count_success(w, job);
                else if (strncmp(reply->str, "STALE", 5) == 0)
                    note_stale(w, job, "outcome", reply->str);
                else
                    report_success(w, r, job); /* NOSCRIPT and the like: retry alone */
                freeReplyObject(reply);
            }
            if (answered)
                baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                                     baton_metrics_since(started_ns));
            sent = answered;
        }
        for (size_t i = sent; i < n; i++)
            if (r || baton_redis_connect(w->redis_url, (int)w->config.redis_timeout_ms, &r,
                                         errstr, sizeof errstr) == BATON_OK)
                report_success(w, r, batch[i]);
        for (size_t i = 0; i < n; i++) {
            job_done(w, batch[i]);
            job_unref(batch[i]); /* the executor's reference, handed over */
        }
    }
    baton_redis_destroy(r);
    return NULL;
}

/* ---------------------------------------------------------------- keeper */

/* Renews the leases of every running job, one renew.lua per queue. */
static void renew_leases(baton_worker_t *w, baton_redis_t *r) {
    size_t n;
    baton_job_t **jobs = running_snapshot(w, &n);
    if (!jobs)
        return;
    char errstr[1024];
    for (size_t qi = 0; qi < w->nqueues; qi++) {
        const struct worker_queue *q = &w->queues[qi];
        size_t count = 0;
        for (size_t i = 0; i < n; i++)
            count += jobs[i]->wq == q;
        if (!count)
            continue;
        const char **argv = malloc((3 + 2 * count) * sizeof *argv);
        baton_job_t **mine = malloc(count * sizeof *mine);
        if (!argv || !mine) {
            free(argv);
            free(mine);
            continue;
        }
        size_t argc = 0, k = 0;
        argv[argc++] = q->running;
        argv[argc++] = q->prefix;
        argv[argc++] = w->lease_text;
        for (size_t i = 0; i < n; i++) {
            if (jobs[i]->wq != q)
                continue;
            mine[k++] = jobs[i];
            argv[argc++] = jobs[i]->id;
            argv[argc++] = jobs[i]->token;
        }
        redisReply *reply = NULL;
        int64_t started_ns = baton_metrics_now_ns();
        if (baton_redis_script(r, "renew.lua", 1, (int)argc, argv, NULL, &reply, errstr,
                               sizeof errstr) != BATON_OK) {
            BATON_WARN(COMPONENT, "lease renewal on %s failed (will retry): %s", q->name, errstr);
        } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == count) {
            baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                                 baton_metrics_since(started_ns));
            for (size_t i = 0; i < count; i++) {
                long long answer = reply->element[i]->integer;
                /* A job whose outcome is taken (being written, or written
                 * between the snapshot and this reply: then the task is no
                 * longer running and renew.lua answers 0) is not a lost
                 * lease: if it was lost, the write itself is refused and
                 * counted (note_stale). */
                if (answer == 0 && !baton_job_should_stop(mine[i]) &&
                    !job_finish_taken(mine[i])) {
                    note_stale(w, mine[i], "lease renewal", "stopping the attempt");
                    job_request_stop(mine[i], JOB_STOP_LOST);
                } else if (answer == 2 && !baton_job_should_stop(mine[i])) {
                    BATON_LOG_TASK(BATON_LOG_INFO, COMPONENT, mine[i]->id,
                                   "cancellation requested: stopping the handler");
                    job_request_stop(mine[i], JOB_STOP_CANCELED);
                }
            }
        }
        if (reply)
            freeReplyObject(reply);
        free(argv);
        free(mine);
    }
    for (size_t i = 0; i < n; i++)
        job_unref(jobs[i]);
    free(jobs);
}

/*
 * Timeouts: at the deadline the job is told to stop (a command's process
 * group gets SIGTERM); kill_grace_ms later a command's whole process tree
 * is killed (command_kill_tree: its descendants that left the group too);
 * a C handler that has not returned by then has its attempt failed from
 * here, and its late outcome is discarded.
 */
static void enforce_timeouts(baton_worker_t *w, baton_redis_t *r) {
    size_t n;
    baton_job_t **jobs = running_snapshot(w, &n);
    if (!jobs)
        return;
    int64_t now = baton_time_mono_ms();
    for (size_t i = 0; i < n; i++) {
        baton_job_t *job = jobs[i];
        if (now < job->deadline_mono_ms)
            continue;
        if (!baton_job_should_stop(job)) {
            BATON_LOG_TASK(BATON_LOG_WARN, COMPONENT, job->id, "timed out after %" PRId64 " ms",
                           job->timeout_ms);
            job_request_stop(job, JOB_STOP_TIMEOUT);
        } else if (atomic_load(&job->stop_reason) == JOB_STOP_TIMEOUT &&
                   now >= baton_time_add_sat(job->deadline_mono_ms, w->config.kill_grace_ms)) {
            int pgid = atomic_load(&job->pgid);
            if (pgid > 0)
                command_kill_tree(pgid);
            else if (r)
                finish_job(w, r, job, BATON_HANDLER_FAILED); /* a stuck C handler */
        }
    }
    for (size_t i = 0; i < n; i++)
        job_unref(jobs[i]);
    free(jobs);
}

static void heartbeat(baton_worker_t *w, baton_redis_t *r) {
    char key[BATON_KEY_MAX], ttl[24], pid[24], conc[24], busy[24], done[24], failed[24],
        stale[24], started[24], host[256] = "";
    snprintf(key, sizeof key, BATON_KEY_PREFIX "worker:%s", w->id);
    snprintf(ttl, sizeof ttl, "%d", HEARTBEAT_TTL_MS);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(conc, sizeof conc, "%d", w->config.concurrency);
    gethostname(host, sizeof host - 1);
    pthread_mutex_lock(&w->lock);
    snprintf(busy, sizeof busy, "%d", w->busy);
    snprintf(done, sizeof done, "%" PRIu64, w->done);
    snprintf(failed, sizeof failed, "%" PRIu64, w->failed);
    snprintf(stale, sizeof stale, "%" PRIu64, w->stale);
    pthread_mutex_unlock(&w->lock);
    snprintf(started, sizeof started, "%" PRId64, w->started_ms);
    const char *argv[] = {key, BATON_KEY_PREFIX "workers", w->id, ttl, "host", host,
                          "pid", pid, "queues", w->queue_spec, "concurrency", conc,
                          "busy", busy, "done", done, "failed", failed,
                          "stale_refusals", stale, "started_ms", started};
    redisReply *reply = NULL;
    char errstr[512];
    if (baton_redis_script(r, "heartbeat.lua", 2,
                           (int)(sizeof argv / sizeof argv[0]), argv, NULL, &reply, errstr,
                           sizeof errstr) == BATON_OK)
        freeReplyObject(reply);
}

/* @locality the keeper thread */
static void *keeper_main(void *arg) {
    baton_worker_t *w = arg;
    baton_redis_t *r = NULL;
    char errstr[1024];
    int64_t renew_every = w->config.lease_ms / 3;
    int64_t next_renew = baton_time_mono_ms() + renew_every;
    int64_t next_beat = 0, next_reap = 0;
    /* As PID 1 (a container without an init) every orphan of the
     * container becomes ours: reap them, or zombies pile up. */
    int reaper = getpid() == 1;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        if (!w->keeper_exit)
            timed_wait_locked(w, &w->slots, KEEPER_TICK_MS);
        int exit_now = w->keeper_exit;
        pthread_mutex_unlock(&w->lock);
        if (exit_now)
            break;
        if (!r && baton_redis_connect(w->redis_url, (int)w->config.redis_timeout_ms, &r, errstr,
                                      sizeof errstr) != BATON_OK) {
            r = NULL;
        }
        enforce_timeouts(w, r);
        int64_t now = baton_time_mono_ms();
        if (reaper && now >= next_reap) {
            command_reap_orphans();
            next_reap = now + REAP_EVERY_MS;
        }
        if (r && now >= next_renew) {
            renew_leases(w, r);
            next_renew = now + renew_every;
        }
        if (r && now >= next_beat) {
            heartbeat(w, r);
            next_beat = now + HEARTBEAT_EVERY_MS;
        }
    }
    if (r) {
        /* Leave the registry: this worker is gone, not merely silent. */
        char key[BATON_KEY_MAX];
        snprintf(key, sizeof key, BATON_KEY_PREFIX "worker:%s", w->id);
        const char *del[] = {"DEL", key};
        const char *zrem[] = {"ZREM", BATON_KEY_PREFIX "workers", w->id};
        redisReply *reply;
        if (baton_redis_command(r, &reply, 2, del, NULL, errstr, sizeof errstr) == BATON_OK)
            freeReplyObject(reply);
        if (baton_redis_command(r, &reply, 3, zrem, NULL, errstr, sizeof errstr) == BATON_OK)
            freeReplyObject(reply);
    }
    baton_redis_destroy(r);
    return NULL;
}

/* ------------------------------------------------------------------- run */

void (*worker_test_return_pause)(void);

/* Hands every unfinished job back to the head of its queue (graceful stop). */
/* Latest claim first: requeue.lua puts each task at the head of its
 * level, so handing back in reverse claim order keeps their FIFO order. */
static int by_claim_desc(const void *a, const void *b) {
    uint64_t x = (*(baton_job_t *const *)a)->claim_seq, y = (*(baton_job_t *const *)b)->claim_seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void return_unfinished(baton_worker_t *w, baton_redis_t *r) {
    size_t n;
    baton_job_t **jobs = running_snapshot(w, &n);
    if (!jobs)
        return;
    qsort(jobs, n, sizeof *jobs, by_claim_desc);
    for (size_t i = 0; i < n; i++) {
        baton_job_t *job = jobs[i];
        /* The outcome first, then the stop: a handler told to stop returns
         * at once, and its executor must find the outcome taken. Taking it
         * itself, it gave the task up as returned, this loop skipped it,
         * and the task stayed running in Redis until its lease ran out. */
        if (!job_take_finish(job))
            continue; /* finished meanwhile: its executor writes the outcome */
        job_request_stop(job, JOB_STOP_SHUTDOWN);
        if (worker_test_return_pause) /* its executor wakes meanwhile */
            worker_test_return_pause();
        const struct worker_queue *q = job->wq;
        const char *argv[] = {q->running, q->ready, q->seq, q->events, q->notify,
                              q->prefix, job->id, job->token, w->retention_text};
        redisReply *reply = NULL;
        char errstr[1024];
        if (r && baton_redis_script(r, "requeue.lua", 5, 9, argv, NULL, &reply, errstr,
                                    sizeof errstr) == BATON_OK) {
            BATON_LOG_TASK(BATON_LOG_INFO, COMPONENT, job->id,
                           "returned to the head of %s (grace period over)", q->name);
            freeReplyObject(reply);
        } else {
            BATON_LOG_TASK(BATON_LOG_WARN, COMPONENT, job->id,
                           "could not return the task (%s): its lease will expire and "
                           "maintenance reclaims it",
                           r ? errstr : "no Redis connection");
        }
    }
    for (size_t i = 0; i < n; i++)
        job_unref(jobs[i]);
    free(jobs);
}

/* Waits until no job is busy, `ms` passes, or a further stop request. */
static int wait_idle(baton_worker_t *w, int64_t ms, sig_atomic_t requests) {
    int64_t until = baton_time_mono_ms() + ms;
    pthread_mutex_lock(&w->lock);
    while (w->busy > 0 && baton_time_mono_ms() < until && w->stop_requests == requests)
        timed_wait_locked(w, &w->slots, KEEPER_TICK_MS);
    int idle = w->busy == 0;
    pthread_mutex_unlock(&w->lock);
    return idle;
}

baton_err_t baton_worker_run(baton_worker_t *w, char *errstr, size_t errstr_size) {
    if (w->started)
        return baton_seterr(errstr, errstr_size, BATON_ERR_STATE, "worker already ran");
    w->started = 1;
    w->started_ms = baton_time_wall_ms();
    w->executors = calloc((size_t)w->config.concurrency, sizeof *w->executors);
    if (!w->executors)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    int nexec = 0;
    int ok = pthread_create(&w->keeper, NULL, keeper_main, w) == 0;
    int keeper_ok = ok;
    for (; ok && nexec < w->config.concurrency; nexec++)
        ok = pthread_create(&w->executors[nexec], NULL, executor_main, w) == 0;
    if (!ok)
        nexec--;
    int completer_ok = ok && pthread_create(&w->completer, NULL, completer_main, w) == 0;
    ok = completer_ok;
    int fetcher_ok = ok && pthread_create(&w->fetcher, NULL, fetcher_main, w) == 0;
    baton_err_t err = BATON_OK;
    if (!fetcher_ok)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "cannot start threads");
    else
        BATON_INFO(COMPONENT, "worker %s started: queues %s, concurrency %d, %zu handlers", w->id,
                   w->queue_spec, w->config.concurrency, w->nhandlers);

    /* The stop request comes from a signal handler: check it often. */
    pthread_mutex_lock(&w->lock);
    while (!err && w->stop_requests == 0)
        timed_wait_locked(w, &w->slots, KEEPER_TICK_MS);
    w->stopping = 1;
    pthread_cond_broadcast(&w->slots);
    pthread_mutex_unlock(&w->lock);
    sig_atomic_t requests = w->stop_requests;
    if (fetcher_ok)
        pthread_join(w->fetcher, NULL);

    /* Graceful stop (guarantee 8): no more claims; running tasks get the
     * grace period; what is left goes back to the head of its queue. */
    int busy;
    pthread_mutex_lock(&w->lock);
    busy = w->busy;
    pthread_mutex_unlock(&w->lock);
    if (busy)
        BATON_INFO(COMPONENT, "stopping: waiting up to %" PRId64 " ms for %d running tasks",
                   w->config.grace_ms, busy);
    if (!wait_idle(w, w->config.grace_ms, requests)) {
        baton_redis_t *r = NULL;
        char why[512];
        if (baton_redis_connect(w->redis_url, (int)w->config.redis_timeout_ms, &r, why,
                                sizeof why) != BATON_OK)
            r = NULL;
        return_unfinished(w, r);
        baton_redis_destroy(r);
        if (!wait_idle(w, w->config.kill_grace_ms + REQUEUE_WAIT_EXTRA_MS, w->stop_requests)) {
            BATON_WARN(COMPONENT, "a handler did not return; exiting without it");
            w->threads_stuck = 1;
        }
    }

    pthread_mutex_lock(&w->lock);
    w->exiting = 1;
    w->keeper_exit = 1;
    pthread_cond_broadcast(&w->work);
    pthread_cond_broadcast(&w->slots);
    pthread_mutex_unlock(&w->lock);
    if (!w->threads_stuck)
        for (int i = 0; i < nexec; i++)
            pthread_join(w->executors[i], NULL);
    /* The executors are gone: the completer writes what they left, then
     * leaves. */
    pthread_mutex_lock(&w->lock);
    w->completer_exit = 1;
    pthread_cond_signal(&w->done_cond);
    pthread_mutex_unlock(&w->lock);
    if (completer_ok)
        pthread_join(w->completer, NULL);
    if (keeper_ok)
        pthread_join(w->keeper, NULL);
    BATON_INFO(COMPONENT, "worker %s stopped: %" PRIu64 " succeeded, %" PRIu64
               " failed, %" PRIu64 " stale refusals", w->id, w->done, w->failed, w->stale);
    return err;
}
