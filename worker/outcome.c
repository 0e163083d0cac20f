/*
 * outcome.c - writing what became of an attempt: the only caller of the
 * finishing scripts (complete.lua, fail.lua, finish_canceled.lua,
 * requeue.lua).
 *
 * Each write carries the attempt's fencing token; Redis refuses one whose
 * lease was taken over ("STALE": counted and logged, never retried,
 * guarantee 3). A Redis outage must not lose an outcome while the lease
 * still holds, so a single write retries for about one lease length, after
 * which maintenance reclaims the task (guarantee 7). Successes are written
 * in batches, one pipeline per batch (baton_worker_outcome_complete_batch).
 * Outcomes are counted (metrics, registry) once Redis accepted them.
 *
 * The retry delay after a failure is computed by fail.lua (at Redis TIME,
 * from the attempt count Redis holds); its inputs, the configured base and
 * cap and a random jitter, are made by baton_worker_backoff_args.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "state.h"
#include "timeutil.h"
#include "worker_internal.h"

void baton_worker_note_stale(baton_worker_t *w, const baton_job_t *job, const char *what,
                             const char *why) {
    pthread_mutex_lock(&w->lock);
    w->stale++;
    pthread_mutex_unlock(&w->lock);
    baton_metric_inc(w->metrics.stale, BATON_LABELS(job->queue));
    /* Every such line contains "refused, the lease was taken over"
     * (tests/checker counts it). */
    BATON_LOG_TASK(BATON_LOG_WARN, WORKER_LOG, job->id,
                   "%s refused, the lease was taken over (token %s): %s", what, job->token, why);
}

void baton_worker_backoff_args(int64_t base_ms, int64_t cap_ms, uint32_t random_bits,
                               struct worker_backoff *out) {
    snprintf(out->base, sizeof out->base, "%" PRId64, base_ms);
    snprintf(out->cap, sizeof out->cap, "%" PRId64, cap_ms);
    /* random_bits / 2^32, in [0, 1), printed with 9 decimals: the two
     * largest draws round to "1.000000000", which fail.lua takes as the
     * whole window. */
    snprintf(out->jitter, sizeof out->jitter, "%.9f", (double)random_bits / 4294967296.0);
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
    int64_t give_up = baton_time_mono_ms() + w->config.lease_ms;
    for (;;) {
        int64_t started_ns = baton_metrics_now_ns();
        err = baton_redis_script(r, script, nkeys, argc, argv, lens, &reply, errstr, sizeof errstr);
        if (!err || strstr(errstr, "STALE"))
            baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                                 baton_metrics_since(started_ns));
        if (!err || strstr(errstr, "STALE") || baton_time_mono_ms() > give_up)
            break;
        BATON_LOG_TASK(BATON_LOG_WARN, WORKER_LOG, job->id, "%s failed, retrying: %s", script,
                       errstr);
        usleep(WORKER_RETRY_AFTER_ERROR_MS * 1000);
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
        baton_worker_note_stale(w, job, "outcome", errstr);
    else if (err)
        BATON_LOG_TASK(BATON_LOG_ERROR, WORKER_LOG, job->id,
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
    const char *values[7] = {q->running, q->events, q->prefix,        job->id,
                             job->token, result,    w->retention_text};
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
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
        rnd = (uint32_t)baton_time_mono_ms();
    struct worker_backoff backoff;
    baton_worker_backoff_args(w->config.backoff_base_ms, w->config.backoff_cap_ms, rnd, &backoff);
    const char *argv[] = {q->running,
                          q->scheduled,
                          q->dead,
                          q->events,
                          q->prefix,
                          job->id,
                          job->token,
                          error,
                          reason,
                          backoff.base,
                          backoff.cap,
                          backoff.jitter,
                          permanent ? "1" : "0",
                          w->retention_text};
    char state[16];
    baton_err_t err = run_finish(w, r, job, "fail.lua", 4, 14, argv, NULL, state, sizeof state);
    if (!err) {
        baton_metric_inc(w->metrics.failed, BATON_LABELS(job->queue, job->type, reason));
        baton_state_t next;
        if (baton_state_parse(state, &next) != 0)
            BATON_LOG_TASK(BATON_LOG_WARN, WORKER_LOG, job->id,
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

void baton_worker_outcome_unreadable(baton_worker_t *w, baton_redis_t *r,
                                     const struct worker_queue *q,
                                     const struct worker_claim *claim) {
    const char *argv[] = {q->running,   q->scheduled,
                          q->dead,      q->events,
                          q->prefix,    claim->id,
                          claim->token, "task JSON in Redis is unreadable",
                          "error",      "0",
                          "0",          "0",
                          "1",          w->retention_text};
    redisReply *reply = NULL;
    char errstr[256];
    baton_redis_script(r, "fail.lua", 4, 14, argv, NULL, &reply, errstr, sizeof errstr);
    if (reply)
        freeReplyObject(reply);
    BATON_LOG_TASK(BATON_LOG_ERROR, WORKER_LOG, claim->id, "task JSON unreadable: marked dead");
}

void baton_worker_outcome_finish(baton_worker_t *w, baton_redis_t *r, baton_job_t *job,
                                 baton_handler_status_t status) {
    if (!baton_worker_job_take_finish(job))
        return;
    int reason = atomic_load(&job->stop_reason);
    baton_err_t err = BATON_OK;
    if (reason == JOB_STOP_LOST) {
        BATON_LOG_TASK(BATON_LOG_WARN, WORKER_LOG, job->id,
                       "lease lost: abandoning the attempt without writing");
        return;
    } else if (reason == JOB_STOP_SHUTDOWN) {
        /* Not reached: the drain takes the outcome before it stops the
         * handler. A stop for shutdown never writes one. */
        return;
    } else if (reason == JOB_STOP_CANCELED) {
        const struct worker_queue *q = job->wq;
        const char *argv[] = {q->running, q->events,  q->prefix,
                              job->id,    job->token, w->retention_text};
        if (run_finish(w, r, job, "finish_canceled.lua", 2, 6, argv, NULL, NULL, 0) == BATON_OK) {
            baton_metric_inc(w->metrics.canceled, BATON_LABELS(job->queue, job->type));
            BATON_LOG_TASK(BATON_LOG_INFO, WORKER_LOG, job->id, "canceled");
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

/*
 * A STALE refusal is counted like any other; an I/O error sends the rest
 * of the batch through the one-at-a-time path, which retries for a lease
 * length.
 */
void baton_worker_outcome_complete_batch(baton_worker_t *w, baton_redis_t *r, baton_job_t **jobs,
                                         size_t n) {
    char errstr[1024];
    char markers[n ? n : 1][96]; /* n <= the completer's batch: 24 KiB at most */
    size_t sent = 0;
    baton_redis_pipeline_begin(r);
    int64_t started_ns = baton_metrics_now_ns();
    for (; sent < n; sent++) {
        const char *argv[7];
        size_t lens[7];
        complete_args(w, jobs[sent], argv, lens, markers[sent]);
        if (baton_redis_append_script(r, "complete.lua", 2, 7, argv, lens, errstr, sizeof errstr))
            break;
    }
    size_t answered = 0;
    for (; answered < sent; answered++) {
        redisReply *reply;
        if (baton_redis_get_reply(r, &reply, errstr, sizeof errstr))
            break;
        baton_job_t *job = jobs[answered];
        if (reply->type != REDIS_REPLY_ERROR)
            count_success(w, job);
        else if (strncmp(reply->str, "STALE", 5) == 0)
            baton_worker_note_stale(w, job, "outcome", reply->str);
        else
            report_success(w, r, job); /* NOSCRIPT and the like: retry alone */
        freeReplyObject(reply);
    }
    if (answered)
        baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                             baton_metrics_since(started_ns));
    for (size_t i = answered; i < n; i++)
        report_success(w, r, jobs[i]);
}

baton_err_t baton_worker_outcome_requeue(baton_worker_t *w, baton_redis_t *r,
                                         const baton_job_t *job, char *errstr, size_t errstr_size) {
    const struct worker_queue *q = job->wq;
    const char *argv[] = {q->running, q->ready, q->seq,     q->events,        q->notify,
                          q->prefix,  job->id,  job->token, w->retention_text};
    redisReply *reply = NULL;
    baton_err_t err =
        baton_redis_script(r, "requeue.lua", 5, 9, argv, NULL, &reply, errstr, errstr_size);
    if (reply)
        freeReplyObject(reply);
    return err;
}
