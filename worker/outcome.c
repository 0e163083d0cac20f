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
 * in batches: one complete.lua call per queue, all in one pipeline
 * (baton_worker_outcome_complete_batch).
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
                               struct baton_tr_failure *out) {
    out->backoff_base_ms = base_ms;
    out->backoff_cap_ms = cap_ms;
    /* random_bits / 2^32, in [0, 1): fail.lua gets it with 9 decimals,
     * where the two largest draws round to "1.000000000", which it takes
     * as the whole window. */
    out->jitter = (double)random_bits / 4294967296.0;
}

/* One finishing write: which script, and what it needs beyond the job. */
struct finish_call {
    baton_tr_script_id_t script; /* COMPLETE, FAIL or FINISH_CANCELED */
    const char *result;          /* COMPLETE: JSON text, borrowed */
    size_t result_len;
    const struct baton_tr_failure *failure; /* FAIL: borrowed */
    baton_state_t next;                     /* FAIL: the task's new state, set when written */
};

/* Sends `call` for `job` once. */
static baton_err_t finish_once(const baton_worker_t *w, baton_redis_t *r, const baton_job_t *job,
                               struct finish_call *call, char *errstr, size_t errstr_size) {
    const struct baton_queue_keys *keys = &job->wq->keys;
    int64_t retention_ms = w->config.retention_ms;
    switch (call->script) {
    case BATON_TR_COMPLETE:
        return baton_tr_complete(r, keys, job->id, job->token, call->result, call->result_len,
                                 retention_ms, errstr, errstr_size);
    case BATON_TR_FAIL:
        return baton_tr_fail(r, keys, job->id, job->token, call->failure, retention_ms, &call->next,
                             NULL, errstr, errstr_size);
    default:
        return baton_tr_finish_canceled(r, keys, job->id, job->token, retention_ms, errstr,
                                        errstr_size);
    }
}

/* Runs one finishing script; handles a stale token. Returns BATON_OK when
 * written. */
static baton_err_t run_finish(baton_worker_t *w, baton_redis_t *r, const baton_job_t *job,
                              struct finish_call *call) {
    const char *script = baton_tr_scripts[call->script].name;
    char errstr[1024];
    baton_err_t err = BATON_OK;
    int64_t give_up = baton_time_mono_ms() + w->config.lease_ms;
    for (;;) {
        int64_t started_ns = baton_metrics_now_ns();
        err = finish_once(w, r, job, call, errstr, sizeof errstr);
        if (!err || err == BATON_ERR_STALE_TOKEN)
            baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                                 baton_metrics_since(started_ns));
        if (!err || err == BATON_ERR_STALE_TOKEN || baton_time_mono_ms() > give_up)
            break;
        BATON_LOG_TASK(BATON_LOG_WARN, WORKER_LOG, job->id, "%s failed, retrying: %s", script,
                       errstr);
        usleep(WORKER_RETRY_AFTER_ERROR_MS * 1000);
    }
    if (err == BATON_ERR_STALE_TOKEN)
        baton_worker_note_stale(w, job, "outcome", errstr);
    else if (err)
        BATON_LOG_TASK(BATON_LOG_ERROR, WORKER_LOG, job->id,
                       "could not report the outcome, maintenance will reclaim it: %s", errstr);
    return err;
}

/* The result complete.lua gets for `job`; `marker` (96 bytes) holds the
 * stand-in for a result over the size limit. Borrowed from job or marker. */
static const char *result_of(const baton_worker_t *w, const baton_job_t *job, char *marker,
                             size_t *len) {
    const char *result = job->result ? job->result : "null";
    *len = job->result ? job->result_len : 4;
    if (*len > w->config.max_result_bytes) {
        /* Keep success a success; say what was dropped. */
        snprintf(marker, 96, "{\"truncated\":true,\"bytes\":%zu}", *len);
        result = marker;
        *len = strlen(marker);
    }
    return result;
}

static void count_success(baton_worker_t *w, const baton_job_t *job) {
    baton_metric_inc(w->metrics.succeeded, BATON_LABELS(job->queue, job->type));
    pthread_mutex_lock(&w->lock);
    w->done++;
    pthread_mutex_unlock(&w->lock);
}

/* One success, one round trip, with retries (the completer's fallback). */
static baton_err_t report_success(baton_worker_t *w, baton_redis_t *r, baton_job_t *job) {
    char marker[96];
    struct finish_call call = {.script = BATON_TR_COMPLETE};
    call.result = result_of(w, job, marker, &call.result_len);
    baton_err_t err = run_finish(w, r, job, &call);
    if (!err)
        count_success(w, job);
    return err;
}

static baton_err_t report_failure(baton_worker_t *w, baton_redis_t *r, const baton_job_t *job,
                                  const char *error, const char *reason, int permanent) {
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
        rnd = (uint32_t)baton_time_mono_ms();
    struct baton_tr_failure failure = {.error = error, .reason = reason, .permanent = permanent};
    baton_worker_backoff_args(w->config.backoff_base_ms, w->config.backoff_cap_ms, rnd, &failure);
    struct finish_call call = {.script = BATON_TR_FAIL, .failure = &failure};
    baton_err_t err = run_finish(w, r, job, &call);
    if (!err) {
        baton_metric_inc(w->metrics.failed, BATON_LABELS(job->queue, job->type, reason));
        baton_state_t next = call.next;
        if (next == BATON_STATE_COUNT)
            BATON_LOG_TASK(BATON_LOG_WARN, WORKER_LOG, job->id,
                           "%s answered a new state this worker does not know",
                           baton_tr_scripts[BATON_TR_FAIL].name);
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
                                     const struct baton_tr_claimed *claim) {
    static const struct baton_tr_failure unreadable = {
        "task JSON in Redis is unreadable", "error", 0, 0, 0, 1};
    char errstr[256];
    /* Best effort: unwritten, the lease runs out and maintenance reclaims it. */
    (void)baton_tr_fail(r, &q->keys, claim->id, claim->token, &unreadable, w->config.retention_ms,
                        NULL, NULL, errstr, sizeof errstr);
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
        struct finish_call call = {.script = BATON_TR_FINISH_CANCELED};
        if (run_finish(w, r, job, &call) == BATON_OK) {
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
 * One complete.lua call per queue for all of the batch's successes of that
 * queue, every call in one pipeline. Each task's token is checked on its
 * own: a STALE answer for one task is counted and logged for that task
 * only, as a single write's would be. A call that fails as a whole (an I/O
 * error, NOSCRIPT, OOM) and an answer other than 1 or STALE send their
 * tasks through the one-at-a-time path, which retries for a lease length.
 */
void baton_worker_outcome_complete_batch(baton_worker_t *w, baton_redis_t *r, baton_job_t **jobs,
                                         size_t n) {
    if (n == 0)
        return;
    char errstr[1024];
    char markers[n][96];                   /* n <= the completer's batch: 24 KiB at most */
    baton_job_t *order[n];                 /* the jobs grouped by queue, in batch order */
    struct baton_tr_success tasks[n];      /* order[i]'s success */
    struct baton_tr_completion answers[n]; /* order[i]'s answer */
    size_t call_start[n], call_len[n], calls = 0;
    int taken[n];
    memset(taken, 0, sizeof taken);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (taken[i])
            continue;
        call_start[calls] = k;
        for (size_t j = i; j < n; j++) {
            if (taken[j] || jobs[j]->wq != jobs[i]->wq)
                continue;
            taken[j] = 1;
            baton_job_t *job = jobs[j];
            order[k] = job;
            tasks[k].id = job->id;
            tasks[k].token = job->token;
            tasks[k].result = result_of(w, job, markers[k], &tasks[k].result_len);
            k++;
        }
        call_len[calls] = k - call_start[calls];
        calls++;
    }
    baton_redis_pipeline_begin(r);
    int64_t started_ns = baton_metrics_now_ns();
    size_t sent = 0;
    for (; sent < calls; sent++) {
        const baton_job_t *first = order[call_start[sent]];
        if (baton_tr_append_complete(r, &first->wq->keys, &tasks[call_start[sent]], call_len[sent],
                                     w->config.retention_ms, errstr, sizeof errstr))
            break;
    }
    /* After an I/O error the later reads fail at once: their jobs, too,
     * go one at a time. */
    size_t answered = 0;
    for (size_t c = 0; c < calls; c++) {
        size_t at = call_start[c], len = call_len[c];
        baton_err_t err = c < sent
                              ? baton_tr_read_complete(r, &answers[at], len, errstr, sizeof errstr)
                              : BATON_ERR_REDIS;
        answered += !err;
        for (size_t i = at; i < at + len; i++) {
            baton_job_t *job = order[i];
            if (!err && answers[i].err == BATON_OK)
                count_success(w, job);
            else if (!err && answers[i].err == BATON_ERR_STALE_TOKEN)
                baton_worker_note_stale(w, job, "outcome", answers[i].why);
            else /* the call failed (NOSCRIPT and the like), or an odd answer: retry alone */
                report_success(w, r, job);
        }
    }
    if (answered)
        baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                             baton_metrics_since(started_ns));
}

baton_err_t baton_worker_outcome_requeue(baton_worker_t *w, baton_redis_t *r,
                                         const baton_job_t *job, char *errstr, size_t errstr_size) {
    return baton_tr_requeue(r, &job->wq->keys, job->id, job->token, w->config.retention_ms, errstr,
                            errstr_size);
}
