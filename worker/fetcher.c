/*
 * fetcher.c - the fetcher thread: where a worker claims tasks.
 *
 * While executor slots are idle, one claim round shares them among the
 * queues by weight (baton_worker_allocate_slots) and sends one claim.lua per
 * queue that got slots, all in one pipeline; the claimed jobs go to the
 * executors (baton_worker_slots_hand_over). With nothing to claim it blocks in
 * BLPOP on the queues' notify lists, which every enqueue pushes to: no
 * busy polling, and BLOCK_TIMEOUT bounds how long a stop waits for it.
 * With every slot busy it sleeps until one is freed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "timeutil.h"
#include "worker_internal.h"

#define BLOCK_TIMEOUT "0.5" /* BLPOP seconds: bounds stop latency */
#define CLAIM_FIELDS 6      /* claim.lua answers 6 strings per task */

/* The fields of claim.lua's entry `e` (CLAIM_FIELDS replies); borrowed
 * from the reply. */
static struct worker_claim claim_of(redisReply **e) {
    struct worker_claim c = {e[0]->str, e[1]->str, e[2]->str, e[3]->str,
                             e[4]->str, e[5]->str, e[5]->len};
    return c;
}

/* Turns one queue's claim.lua reply into jobs for the executors. An
 * unreadable task is marked dead at once. Returns the jobs handed over. */
static int take_claimed(baton_worker_t *w, baton_redis_t *r, const struct worker_queue *q,
                        const redisReply *reply) {
    size_t n = reply->elements / CLAIM_FIELDS;
    baton_job_t *jobs[n ? n : 1];
    int got = 0;
    for (size_t k = 0; k < n; k++) {
        struct worker_claim claim = claim_of(reply->element + k * CLAIM_FIELDS);
        baton_job_t *job = baton_worker_job_new(q, &claim);
        if (job && job->task) {
            baton_metric_inc(w->metrics.claimed, BATON_LABELS(job->queue, job->type));
            jobs[got++] = job;
        } else {
            baton_worker_job_unref(job);
            baton_worker_outcome_unreadable(w, r, q, &claim);
        }
    }
    baton_worker_slots_hand_over(w, jobs, got);
    return got;
}

/*
 * One claim round: pipelined claim.lua for the queues that got slots.
 * Returns the number of jobs claimed, or -1 on a Redis error (in errstr).
 */
static int claim_round(baton_worker_t *w, baton_redis_t *r, int idle, char *errstr,
                       size_t errstr_size) {
    int counts[w->nqueues];
    baton_worker_allocate_slots(w->queues, w->nqueues, idle, counts);
    int64_t started_ns = baton_metrics_now_ns();
    baton_redis_pipeline_begin(r);
    size_t appended = 0;
    for (size_t i = 0; i < w->nqueues; i++) {
        if (!counts[i])
            continue;
        const struct worker_queue *q = &w->queues[i];
        char count[16];
        snprintf(count, sizeof count, "%d", counts[i]);
        const char *argv[] = {q->ready,  q->running, q->deadline,   q->events, q->paused,
                              q->prefix, w->id,      w->lease_text, count,     w->retention_text};
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
            claimed += take_claimed(w, r, &w->queues[i], reply);
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

void *baton_worker_fetcher_main(void *arg) {
    baton_worker_t *w = arg;
    baton_redis_t *r = w->fetcher_redis;
    char errstr[1024];
    unsigned failures = 0;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->stopping && w->busy >= w->config.concurrency)
            pthread_cond_wait(&w->slot_freed, &w->lock);
        int idle = w->config.concurrency - w->busy;
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (stopping)
            break;
        int claimed = claim_round(w, r, idle, errstr, sizeof errstr);
        if (claimed < 0) {
            if (failures++ == 0 || failures % 20 == 0)
                BATON_WARN(WORKER_LOG, "claim failed (will retry): %s", errstr);
            struct timespec until = baton_time_mono_after(WORKER_RETRY_AFTER_ERROR_MS);
            pthread_mutex_lock(&w->lock);
            if (!w->stopping)
                pthread_cond_timedwait(&w->stop_cond, &w->lock, &until);
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        if (failures)
            BATON_INFO(WORKER_LOG, "claiming again after %u failures", failures);
        failures = 0;
        if (claimed == 0)
            block_for_work(w, r);
    }
    return NULL;
}
