/*
 * maintenance.c - the scheduler's maintenance thread (see scheduler.h).
 *
 * Every tick it reads the queue registry (baton:queues) and, per queue,
 * pipelines promote.lua (due scheduled -> ready), expire.lua (deadline
 * passed before start) and reclaim.lua (expired leases): one round trip per
 * queue per tick. Each script decides by Redis TIME and moves a task
 * atomically, so any number of schedulers can run this loop at once. A
 * script that moved a full batch makes the next tick start at once, so a
 * large backlog of due tasks drains at script speed, not tick speed.
 *
 * Every few seconds the thread also samples the size of each queue's sets
 * for the queue gauges of /metrics (one pipeline per queue: ZCOUNT per
 * priority band of the ready set, ZCARD of the others).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "queue.h"
#include "redis.h"
#include "scheduler.h"
#include "timeutil.h"

#define COMPONENT "maintenance"
#define SAMPLE_EVERY_MS 2000 /* queue gauges: often enough for a dashboard */

struct maintenance {
    const struct scheduler_config *config;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;            /* guarded by lock */
    baton_redis_t *redis;    /* owned by the thread */
    const struct scheduler_metrics *metrics; /* borrowed from the config */
    int64_t sampled_ms;      /* last queue gauge sample (monotonic) */
};

/* The three scripts of one queue, with their KEYS. */
static baton_err_t append_queue(struct maintenance *m, const char *queue, char *errstr,
                                size_t errstr_size) {
    char k[6][BATON_KEY_MAX], prefix[BATON_KEY_MAX], limit[24], retention[24];
    baton_queue_key(prefix, queue, "t:");
    snprintf(limit, sizeof limit, "%lld", (long long)m->config->maintenance_batch);
    snprintf(retention, sizeof retention, "%lld", (long long)m->config->retention_ms);

    baton_queue_key(k[0], queue, "scheduled");
    baton_queue_key(k[1], queue, "ready");
    baton_queue_key(k[2], queue, "seq");
    baton_queue_key(k[3], queue, "events");
    baton_queue_key(k[4], queue, "notify");
    const char *promote[] = {k[0], k[1], k[2], k[3], k[4], prefix, limit};
    baton_err_t err = baton_redis_append_script(m->redis, "promote.lua", 5, 7, promote, NULL,
                                                errstr, errstr_size);
    if (err)
        return err;

    char deadline[BATON_KEY_MAX];
    baton_queue_key(deadline, queue, "deadline");
    const char *expire[] = {deadline, k[1], k[0], k[3], prefix, limit, retention};
    err = baton_redis_append_script(m->redis, "expire.lua", 4, 7, expire, NULL, errstr,
                                    errstr_size);
    if (err)
        return err;

    char running[BATON_KEY_MAX], dead[BATON_KEY_MAX];
    baton_queue_key(running, queue, "running");
    baton_queue_key(dead, queue, "dead");
    const char *reclaim[] = {running, k[1], dead, k[2], k[3], k[4], prefix, limit, retention};
    return baton_redis_append_script(m->redis, "reclaim.lua", 6, 9, reclaim, NULL, errstr,
                                     errstr_size);
}

/*
 * One pass over every queue. Returns BATON_OK and sets *busy when some
 * script moved a full batch (more may be waiting right now).
 */
static baton_err_t tick(struct maintenance *m, int *busy, char *errstr, size_t errstr_size) {
    *busy = 0;
    const char *argv[] = {"SMEMBERS", BATON_KEY_QUEUES};
    redisReply *queues;
    int64_t started_ns = baton_metrics_now_ns();
    baton_err_t err = baton_redis_command(m->redis, &queues, 2, argv, NULL, errstr, errstr_size);
    if (err)
        return err;
    baton_metric_observe(m->metrics->redis_roundtrip, BATON_LABELS(COMPONENT),
                         baton_metrics_since(started_ns));
    for (size_t q = 0; !err && q < queues->elements; q++) {
        const char *queue = queues->element[q]->str;
        started_ns = baton_metrics_now_ns();
        baton_redis_pipeline_begin(m->redis);
        err = append_queue(m, queue, errstr, errstr_size);
        long long moved[3] = {0, 0, 0}, dead = 0;
        baton_err_t script_err = BATON_OK;
        /* Read all three replies even after an error reply, so the
         * connection stays in step. */
        for (int r = 0; !err && r < 3; r++) {
            redisReply *reply;
            err = baton_redis_get_reply(m->redis, &reply, errstr, errstr_size);
            if (err)
                break;
            if (reply->type == REDIS_REPLY_ERROR) {
                if (!script_err)
                    script_err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS,
                                              "maintenance of queue %s: %s", queue, reply->str);
            } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2) {
                moved[r] = reply->element[0]->integer +
                           (r == 2 ? reply->element[1]->integer : 0);
                if (r == 2)
                    dead = reply->element[1]->integer;
            }
            freeReplyObject(reply);
        }
        if (!err)
            baton_metric_observe(m->metrics->redis_roundtrip, BATON_LABELS(COMPONENT),
                                 baton_metrics_since(started_ns));
        if (!err)
            err = script_err;
        /* promote {moved}, expire {expired}, reclaim {requeued, dead} */
        const long long counts[4] = {moved[0], moved[1], moved[2] - dead, dead};
        static const char *const actions[4] = {"due", "expired", "reclaimed", "dead"};
        for (int a = 0; a < 4; a++)
            if (counts[a] > 0)
                baton_metric_add(m->metrics->maintenance_tasks, BATON_LABELS(queue, actions[a]),
                                 (double)counts[a]);
        if (moved[0] + moved[1] + moved[2] > 0)
            BATON_DEBUG(COMPONENT, "queue %s: %lld due, %lld expired, %lld reclaimed", queue,
                        moved[0], moved[1], moved[2]);
        for (int r = 0; r < 3; r++)
            if (moved[r] >= m->config->maintenance_batch)
                *busy = 1;
    }
    freeReplyObject(queues);
    return err;
}

/*
 * Samples the queue gauges: per queue one pipeline of a ZCOUNT per
 * priority band of the ready set and a ZCARD of the scheduled, running and
 * dead sets. Counts come from Redis in one round trip per queue, so they
 * are a snapshot, not a sum of events; several schedulers report the same
 * numbers (aggregate with max, not sum).
 */
static baton_err_t sample_queues(struct maintenance *m, char *errstr, size_t errstr_size) {
    const struct scheduler_metrics *mx = m->metrics;
    const char *argv[] = {"SMEMBERS", BATON_KEY_QUEUES};
    redisReply *queues;
    baton_err_t err = baton_redis_command(m->redis, &queues, 2, argv, NULL, errstr, errstr_size);
    if (err)
        return err;
    for (size_t q = 0; !err && q < queues->elements; q++) {
        const char *queue = queues->element[q]->str;
        char ready[BATON_KEY_MAX], min[10][32], max[10][32], set[3][BATON_KEY_MAX];
        static const char *const sets[3] = {"scheduled", "running", "dead"};
        int64_t started_ns = baton_metrics_now_ns();
        baton_redis_pipeline_begin(m->redis);
        baton_queue_key(ready, queue, "ready");
        for (int p = 0; !err && p < 10; p++) {
            double lo, hi;
            baton_ready_priority_range(p, &lo, &hi);
            snprintf(min[p], sizeof min[p], "%.0f", lo);
            snprintf(max[p], sizeof max[p], "%.0f", hi);
            const char *zcount[] = {"ZCOUNT", ready, min[p], max[p]};
            err = baton_redis_append(m->redis, 4, zcount, NULL, errstr, errstr_size);
        }
        for (int k = 0; !err && k < 3; k++) {
            baton_queue_key(set[k], queue, sets[k]);
            const char *zcard[] = {"ZCARD", set[k]};
            err = baton_redis_append(m->redis, 2, zcard, NULL, errstr, errstr_size);
        }
        long long counts[13];
        for (int r = 0; !err && r < 13; r++) {
            redisReply *reply;
            err = baton_redis_get_reply(m->redis, &reply, errstr, errstr_size);
            if (err)
                break;
            counts[r] = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
            freeReplyObject(reply);
        }
        if (err)
            break;
        baton_metric_observe(mx->redis_roundtrip, BATON_LABELS(COMPONENT),
                             baton_metrics_since(started_ns));
        for (int p = 0; p < 10; p++) {
            char priority[4];
            snprintf(priority, sizeof priority, "%d", p);
            baton_metric_set(mx->queue_ready, BATON_LABELS(queue, priority), (double)counts[p]);
        }
        baton_metric_set(mx->queue_scheduled, BATON_LABELS(queue), (double)counts[10]);
        baton_metric_set(mx->queue_running, BATON_LABELS(queue), (double)counts[11]);
        baton_metric_set(mx->queue_dead, BATON_LABELS(queue), (double)counts[12]);
    }
    freeReplyObject(queues);
    return err;
}

/* Waits up to `ms` or until maintenance_stop(); returns 1 when stopping. */
static int wait_or_stop(struct maintenance *m, int64_t ms) {
    struct timespec until = baton_time_mono_after(ms);
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        if (pthread_cond_timedwait(&m->wake, &m->lock, &until) == ETIMEDOUT)
            break;
    }
    int stopping = m->stopping;
    pthread_mutex_unlock(&m->lock);
    return stopping;
}

/* @locality the maintenance thread */
static void *run(void *arg) {
    struct maintenance *m = arg;
    char errstr[1024];
    unsigned failures = 0;
    int64_t interval = m->config->maintenance_interval_ms;
    for (;;) {
        int busy = 0;
        baton_err_t err = tick(m, &busy, errstr, sizeof errstr);
        int64_t now = baton_time_mono_ms();
        if (!err && m->metrics->queue_ready && now - m->sampled_ms >= SAMPLE_EVERY_MS) {
            err = sample_queues(m, errstr, sizeof errstr);
            m->sampled_ms = now;
        }
        int64_t wait = interval;
        if (err) {
            if (failures++ == 0 || failures % 50 == 0)
                BATON_WARN(COMPONENT, "%s (will retry)", errstr);
            wait = 1000; /* Redis is away: retry about once a second */
        } else {
            if (failures)
                BATON_INFO(COMPONENT, "Redis is back after %u failed ticks", failures);
            failures = 0;
            if (busy)
                wait = 0;
        }
        if (wait_or_stop(m, wait))
            break;
    }
    return NULL;
}

baton_err_t maintenance_start(const struct scheduler_config *config, maintenance_t **out,
                              char *errstr, size_t errstr_size) {
    *out = NULL;
    struct maintenance *m = calloc(1, sizeof *m);
    if (!m)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    m->config = config;
    m->metrics = config->metrics;
    m->sampled_ms = baton_time_mono_ms() - SAMPLE_EVERY_MS; /* sample at the first tick */
    baton_err_t err = baton_redis_connect(config->redis_url, (int)config->redis_timeout_ms,
                                          &m->redis, errstr, errstr_size);
    if (err) {
        free(m);
        return err;
    }
    baton_cond_init_monotonic(&m->wake);
    pthread_mutex_init(&m->lock, NULL);
    if (pthread_create(&m->thread, NULL, run, m) != 0) {
        baton_redis_destroy(m->redis);
        pthread_cond_destroy(&m->wake);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "cannot start thread");
    }
    *out = m;
    return BATON_OK;
}

void maintenance_stop(maintenance_t *m) {
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    baton_redis_destroy(m->redis);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
