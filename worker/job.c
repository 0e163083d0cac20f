/*
 * job.c - a claimed task inside the worker: its life from claim to outcome.
 *
 * A job is shared by the fetcher, an executor, the completer, the keeper
 * and the drain, so it is reference counted (baton_worker_job_ref/unref) and
 * freed by whoever drops the last reference. Two things are decided on it
 * across threads: why it should stop (an atomic, first reason wins), and
 * who writes its outcome (baton_worker_job_take_finish, once, under the job's
 * lock): an executor, the keeper for a stuck C handler, or the drain.
 * The baton_job_* accessors of worker.h are the handler's view of it.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"
#include "utf8.h"
#include "worker_internal.h"

baton_job_t *baton_worker_job_new(const struct worker_queue *q, const struct worker_claim *claim) {
    baton_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    atomic_init(&job->refs, 1);
    atomic_init(&job->stop_reason, JOB_STOP_NONE);
    atomic_init(&job->pgid, 0);
    pthread_mutex_init(&job->lock, NULL);
    baton_cond_init_monotonic(&job->wake);
    job->wq = q;
    job->id = strdup(claim->id);
    job->queue = strdup(q->name);
    snprintf(job->token, sizeof job->token, "%s", claim->token);
    job->attempt = atoi(claim->attempt);
    job->max_attempts = claim->max_attempts ? atoi(claim->max_attempts) : 1;
    job->timeout_ms = claim->timeout_ms ? strtoll(claim->timeout_ms, NULL, 10) : 300000;
    json_error_t jerr;
    job->task = claim->task ? json_loadb(claim->task, claim->task_len, 0, &jerr) : NULL;
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
        baton_worker_job_unref(job);
        return NULL;
    }
    return job;
}

baton_job_t *baton_worker_job_ref(baton_job_t *job) {
    atomic_fetch_add(&job->refs, 1);
    return job;
}

void baton_worker_job_unref(baton_job_t *job) {
    if (!job || atomic_fetch_sub(&job->refs, 1) != 1)
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

void baton_worker_job_request_stop(baton_job_t *job, enum job_stop reason) {
    int expected = JOB_STOP_NONE;
    atomic_compare_exchange_strong(&job->stop_reason, &expected, (int)reason);
    int pgid = atomic_load(&job->pgid);
    if (pgid > 0)
        kill(-pgid, SIGTERM);
    pthread_mutex_lock(&job->lock);
    pthread_cond_broadcast(&job->wake);
    pthread_mutex_unlock(&job->lock);
}

int baton_worker_job_take_finish(baton_job_t *job) {
    pthread_mutex_lock(&job->lock);
    int first = !job->finished;
    job->finished = 1;
    pthread_mutex_unlock(&job->lock);
    return first;
}

int baton_worker_job_finish_taken(baton_job_t *job) {
    pthread_mutex_lock(&job->lock);
    int taken = job->finished;
    pthread_mutex_unlock(&job->lock);
    return taken;
}

/* ------------------------------------------------- the handler's view */

const char *baton_job_id(const baton_job_t *job) {
    return job->id;
}
const char *baton_job_type(const baton_job_t *job) {
    return job->type;
}
const char *baton_job_queue(const baton_job_t *job) {
    return job->queue;
}
int baton_job_attempt(const baton_job_t *job) {
    return job->attempt;
}
const char *baton_job_token(const baton_job_t *job) {
    return job->token;
}
const json_t *baton_job_payload(const baton_job_t *job) {
    return job->payload;
}

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
