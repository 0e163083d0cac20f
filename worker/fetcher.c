/*
 * fetcher.c - the fetcher thread: where a worker claims tasks.
 *
 * While executor slots are idle, one claim round shares them by weight
 * among the queues that may have work (baton_worker_allocate_slots_among)
 * and sends one claim.lua per queue that got slots, all in one pipeline;
 * the claimed jobs go to the executors (baton_worker_slots_hand_over).
 *
 * A queue whose claim came back short is drained: it gets no claim (which
 * would cost a script call in Redis and a round trip's share here, for
 * nothing) until there is a sign of work. The signs are the notify lists,
 * which every script that makes a task ready pushes a token to: with every
 * queue drained the fetcher blocks in BLPOP on all of them (no busy
 * polling; BLOCK_TIMEOUT bounds how long a stop waits for it) and claims
 * from the queue whose token it got; while other queues keep it busy, each
 * round (at most every PROBE_EVERY_MS) pops a drained queue's token, if
 * any, without blocking. Every HINTS_RESET_MS every queue is claimed again
 * all the same, for work that comes without a token (a queue resumed by
 * batonctl). With every slot busy it sleeps until one is freed; with
 * some busy it waits up to CLAIM_GATHER_US for half of them to be free,
 * and hands the slots to the queues in chunks of half the concurrency:
 * under load a claim carries many tasks rather than one or two.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"
#include "worker_internal.h"

#define BLOCK_TIMEOUT "0.5" /* BLPOP seconds: bounds stop latency */
#define HINTS_RESET_MS 500  /* every queue is claimed from at least this often */
#define PROBE_EVERY_MS 1    /* drained queues' notify lists, popped at most this often */
/* A busy worker (some task running) waits up to this long for half its
 * slots to be idle before it claims, so that a claim carries several
 * tasks: each claim is one script call, whose fixed cost in Redis is that
 * of several tasks, and one round trip here. An idle worker claims at
 * once (the idle latency stays a BLPOP wake-up). */
#define CLAIM_GATHER_US 1000

/* What the fetcher knows of its queues; the fetcher thread's own. */
struct fetch_state {
    unsigned char *maybe; /* per queue: 0 once a claim came back short */
    int64_t reset_at_ms;  /* monotonic: every queue is claimed from again */
    int64_t probe_at_ms;  /* monotonic: the next pop of drained queues' tokens */
};

static void hints_reset(baton_worker_t *w, struct fetch_state *st) {
    memset(st->maybe, 1, w->nqueues);
    st->reset_at_ms = baton_time_mono_ms() + HINTS_RESET_MS;
}

/* The queue whose notify list is `key`, or -1. */
static int queue_of_notify(const baton_worker_t *w, const char *key, size_t len) {
    for (size_t i = 0; i < w->nqueues; i++)
        if (strlen(w->queues[i].keys.notify) == len &&
            memcmp(w->queues[i].keys.notify, key, len) == 0)
            return (int)i;
    return -1;
}

/* Turns one queue's claimed tasks into jobs for the executors. An
 * unreadable task is marked dead at once. Returns the jobs handed over. */
static int take_claimed(baton_worker_t *w, baton_redis_t *r, const struct worker_queue *q,
                        const struct baton_tr_claim *claim) {
    baton_job_t *jobs[claim->count ? claim->count : 1];
    int got = 0;
    for (size_t k = 0; k < claim->count; k++) {
        baton_job_t *job = baton_worker_job_new(q, &claim->tasks[k]);
        if (job && job->readable) {
            baton_metric_inc(w->metrics.claimed, BATON_LABELS(job->queue, job->type));
            jobs[got++] = job;
        } else {
            baton_worker_job_unref(job);
            baton_worker_outcome_unreadable(w, r, q, &claim->tasks[k]);
        }
    }
    baton_worker_slots_hand_over(w, jobs, got);
    return got;
}

/*
 * One claim round: pipelined claim.lua for the queues that got slots, and
 * when due a non-blocking pop of the drained queues' notify lists. Returns
 * the number of jobs claimed, or -1 on a Redis error (in errstr). Every
 * reply is read even after an error, so the pipeline stays in step and no
 * claimed task is left unread.
 */
static int claim_round(baton_worker_t *w, baton_redis_t *r, struct fetch_state *st, int idle,
                       char *errstr, size_t errstr_size) {
    int counts[w->nqueues];
    int chunk = w->config.concurrency / 2;
    baton_worker_allocate_slots_among(w->queues, w->nqueues, st->maybe, idle, chunk, counts);
    int64_t started_ns = baton_metrics_now_ns();
    int64_t now = baton_time_mono_ms();
    int probe = now >= st->probe_at_ms;
    if (probe)
        st->probe_at_ms = now + PROBE_EVERY_MS;
    baton_redis_pipeline_begin(r);
    size_t appended = 0, probes = 0;
    for (size_t i = 0; i < w->nqueues; i++) {
        if (!counts[i])
            continue;
        if (baton_tr_append_claim(r, &w->queues[i].keys, w->id, w->config.lease_ms, counts[i],
                                  w->config.retention_ms, errstr, errstr_size))
            return -1;
        appended++;
    }
    for (size_t i = 0; probe && i < w->nqueues; i++) {
        if (st->maybe[i])
            continue;
        const char *lpop[] = {"LPOP", w->queues[i].keys.notify};
        if (baton_redis_append(r, 2, lpop, NULL, errstr, errstr_size))
            return -1;
        probes++;
    }
    int claimed = 0;
    baton_err_t err = BATON_OK;
    for (size_t i = 0, seen = 0; i < w->nqueues && seen < appended; i++) {
        if (!counts[i])
            continue;
        seen++;
        struct baton_tr_claim claim;
        char why[512];
        baton_err_t e = baton_tr_read_claim(r, &claim, why, sizeof why);
        if (e) {
            if (!err)
                err = baton_seterr(errstr, errstr_size, e, "claim on %s: %s",
                                   w->queues[i].keys.name, why);
            continue;
        }
        if (claim.count < (size_t)counts[i])
            st->maybe[i] = 0; /* drained (or paused) for now */
        claimed += take_claimed(w, r, &w->queues[i], &claim);
        baton_tr_claim_free(&claim);
    }
    for (size_t i = 0, seen = 0; i < w->nqueues && seen < probes; i++) {
        if (counts[i] || st->maybe[i])
            continue; /* claimed from, or not drained: not probed */
        seen++;
        redisReply *reply;
        char why[512];
        baton_err_t e = baton_redis_get_reply(r, &reply, why, sizeof why);
        if (e) {
            if (!err)
                err = baton_seterr(errstr, errstr_size, e, "notify of %s: %s",
                                   w->queues[i].keys.name, why);
            continue;
        }
        if (reply->type == REDIS_REPLY_STRING)
            st->maybe[i] = 1; /* a token: work arrived since it was drained */
        freeReplyObject(reply);
    }
    baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                         baton_metrics_since(started_ns));
    return err ? -1 : claimed;
}

/* Blocks until some queue of ours is notified, or BLOCK_TIMEOUT passes;
 * marks the queue notified (all of them after a timeout or an error). */
static void block_for_work(baton_worker_t *w, baton_redis_t *r, struct fetch_state *st) {
    size_t argc = w->nqueues + 2;
    const char *argv[argc];
    argv[0] = "BLPOP";
    for (size_t i = 0; i < w->nqueues; i++)
        argv[i + 1] = w->queues[i].keys.notify;
    argv[argc - 1] = BLOCK_TIMEOUT;
    redisReply *reply;
    char errstr[256];
    int notified = -1;
    if (baton_redis_command(r, &reply, (int)argc, argv, NULL, errstr, sizeof errstr) == BATON_OK) {
        /* [key, token], or nil after the timeout */
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
            reply->element[0]->type == REDIS_REPLY_STRING)
            notified = queue_of_notify(w, reply->element[0]->str, reply->element[0]->len);
        freeReplyObject(reply);
    }
    if (notified >= 0)
        st->maybe[notified] = 1;
    else
        hints_reset(w, st);
}

void *baton_worker_fetcher_main(void *arg) {
    baton_worker_t *w = arg;
    baton_redis_t *r = w->fetcher_redis;
    char errstr[1024];
    unsigned failures = 0;
    unsigned char maybe[w->nqueues];
    memset(maybe, 1, w->nqueues);
    struct fetch_state st = {.maybe = maybe};
    hints_reset(w, &st);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->stopping && w->busy >= w->config.concurrency)
            pthread_cond_wait(&w->slot_freed, &w->lock);
        int gather = w->config.concurrency / 2;
        if (w->busy > 0 && w->config.concurrency - w->busy < gather) {
            struct timespec until = baton_time_mono_after_us(CLAIM_GATHER_US);
            while (!w->stopping && w->busy > 0 && w->config.concurrency - w->busy < gather)
                if (pthread_cond_timedwait(&w->slot_freed, &w->lock, &until))
                    break; /* waited long enough: claim what is idle */
        }
        int idle = w->config.concurrency - w->busy;
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (stopping)
            break;
        if (baton_time_mono_ms() >= st.reset_at_ms)
            hints_reset(w, &st);
        size_t hinted = 0;
        for (size_t i = 0; i < w->nqueues; i++)
            hinted += maybe[i];
        if (!hinted) {
            block_for_work(w, r, &st);
            continue;
        }
        int claimed = claim_round(w, r, &st, idle, errstr, sizeof errstr);
        if (claimed < 0) {
            hints_reset(w, &st);
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
    }
    return NULL;
}
