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
 *
 * Idle queues. Producers name queues, and every name stays in the registry;
 * ticking each one forever costs Redis three scripts per queue per tick
 * (500 empty queues kept an idle Redis at ~9 % CPU). The scripts only act
 * on the ready, scheduled, running and deadline sets, so a queue whose four
 * sets have been empty (EXISTS = 0) for --maintenance-idle-ms is set idle:
 * no scripts, no gauge samples. It is active again as soon as
 *  - ingest enqueues into it: each batch ZADDs its queues to
 *    baton:queues:touched with the time, which every tick reads from the
 *    newest time seen (less a margin for other schedulers' clocks): one
 *    small read per tick, not one per queue; or
 *  - a check finds a set non-empty again: idle queues get one pipelined
 *    EXISTS each once a second, which catches what does not come through
 *    ingest (batonctl retry moves a dead task back to ready) and wakes the
 *    queue before a lease taken meanwhile can expire unnoticed by more
 *    than that second.
 * A queue with a scheduled task, a running task or a deadline is never
 * idle, so promotion, expiry and the reclaim of expired leases are never
 * skipped. The state is per scheduler and in memory: a restart starts
 * with every queue active.
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
#include "transition.h"

#define COMPONENT "maintenance"
#define SAMPLE_EVERY_MS 2000 /* queue gauges: often enough for a dashboard */
/* How often each queue is checked for emptiness (active queues, on their
 * way to idle) or for work (idle queues): a second bounds how late an idle
 * queue wakes for work that did not come through ingest. */
#define IDLE_CHECK_EVERY_MS 1000
/* baton:queues:touched holds each scheduler's wall clock; reading from
 * this far before the newest entry tolerates that much skew between
 * schedulers (a later touch is still caught by the check above). */
#define TOUCH_SKEW_MARGIN_MS 5000

/* What maintenance knows of one queue of the registry. */
struct queue_state {
    const char *name;              /* keys->name */
    struct baton_queue_keys *keys; /* owned, built once when the queue is first seen */
    int idle;                      /* 1: not ticked until woken */
    int64_t empty_since_ms;        /* monotonic time the sets were first seen empty; 0: not empty */
    int64_t touched;               /* newest baton:queues:touched score acted on */
    int seen;                      /* in the registry at the last read (mark and sweep) */
};

struct maintenance {
    const struct scheduler_config *config;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;                            /* guarded by lock */
    baton_redis_t *redis;                    /* owned by the thread */
    const struct scheduler_metrics *metrics; /* borrowed from the config */
    int64_t sampled_ms;                      /* last queue gauge sample (monotonic) */
    struct queue_state *queues;              /* sorted by name, owned */
    size_t nqueues, cap;
    int64_t idle_checked_ms; /* last emptiness check (monotonic) */
    int64_t touched_max;     /* newest score read from baton:queues:touched; -1: none yet */
};

/* The three scripts of one queue. */
static baton_err_t append_queue(struct maintenance *m, const struct baton_queue_keys *keys,
                                char *errstr, size_t errstr_size) {
    int64_t batch = m->config->maintenance_batch, retention = m->config->retention_ms;
    baton_err_t err = baton_tr_append_promote(m->redis, keys, batch, errstr, errstr_size);
    if (!err)
        err = baton_tr_append_expire(m->redis, keys, batch, retention, errstr, errstr_size);
    if (!err)
        err = baton_tr_append_reclaim(m->redis, keys, batch, retention, errstr, errstr_size);
    return err;
}

/* ------------------------------------------------------- queue registry */

static int by_name(const void *key, const void *elem) {
    return strcmp(key, ((const struct queue_state *)elem)->name);
}

/* The state of queue `name`, added (active) if new; NULL on no memory.
 * Borrowed: valid until the next call that adds or sweeps. */
static struct queue_state *queue_get(struct maintenance *m, const char *name) {
    size_t lo = 0, hi = m->nqueues;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = by_name(name, &m->queues[mid]);
        if (c == 0)
            return &m->queues[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (m->nqueues == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct queue_state *q = realloc(m->queues, cap * sizeof *q);
        if (!q)
            return NULL;
        m->queues = q;
        m->cap = cap;
    }
    struct baton_queue_keys *keys = malloc(sizeof *keys);
    if (!keys)
        return NULL;
    baton_queue_keys_init(keys, name);
    memmove(&m->queues[lo + 1], &m->queues[lo], (m->nqueues - lo) * sizeof *m->queues);
    m->nqueues++;
    memset(&m->queues[lo], 0, sizeof m->queues[lo]);
    m->queues[lo].keys = keys;
    m->queues[lo].name = keys->name;
    return &m->queues[lo];
}

/* Makes idle queue `q` active again; `why` for the debug log. */
static void queue_wake(struct queue_state *q, const char *why) {
    if (q->idle)
        BATON_DEBUG(COMPONENT, "queue %s active again: %s", q->name, why);
    q->idle = 0;
    q->empty_since_ms = 0;
}

/*
 * One round trip: the registry (SMEMBERS) and the queues ingest touched
 * lately. Adds new queues (active), forgets queues no longer registered,
 * and wakes idle queues that got tasks.
 */
static baton_err_t sync_queues(struct maintenance *m, char *errstr, size_t errstr_size) {
    char since[32];
    if (m->touched_max < 0)
        snprintf(since, sizeof since, "-inf");
    else
        snprintf(since, sizeof since, "%lld", (long long)(m->touched_max - TOUCH_SKEW_MARGIN_MS));
    const char *members[] = {"SMEMBERS", BATON_KEY_QUEUES};
    const char *touched[] = {"ZRANGEBYSCORE", BATON_KEY_QUEUES_TOUCHED, since, "+inf",
                             "WITHSCORES"};
    int64_t started_ns = baton_metrics_now_ns();
    baton_redis_pipeline_begin(m->redis);
    baton_err_t err = baton_redis_append(m->redis, 2, members, NULL, errstr, errstr_size);
    if (!err)
        err = baton_redis_append(m->redis, 5, touched, NULL, errstr, errstr_size);
    redisReply *reply[2] = {NULL, NULL};
    for (int r = 0; !err && r < 2; r++)
        err = baton_redis_get_reply(m->redis, &reply[r], errstr, errstr_size);
    if (!err && (reply[0]->type != REDIS_REPLY_ARRAY || reply[1]->type != REDIS_REPLY_ARRAY))
        err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "queue registry: %s",
                           reply[0]->type == REDIS_REPLY_ERROR   ? reply[0]->str
                           : reply[1]->type == REDIS_REPLY_ERROR ? reply[1]->str
                                                                 : "unexpected reply");
    if (!err) {
        baton_metric_observe(m->metrics->redis_roundtrip, BATON_LABELS(COMPONENT),
                             baton_metrics_since(started_ns));
        for (size_t i = 0; i < m->nqueues; i++)
            m->queues[i].seen = 0;
        for (size_t i = 0; !err && i < reply[0]->elements; i++) {
            struct queue_state *q = queue_get(m, reply[0]->element[i]->str);
            if (!q)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
            else
                q->seen = 1;
        }
        size_t kept = 0;
        for (size_t i = 0; i < m->nqueues; i++) {
            if (m->queues[i].seen || err)
                m->queues[kept++] = m->queues[i];
            else
                free(m->queues[i].keys);
        }
        m->nqueues = kept;
        for (size_t i = 0; !err && i + 1 < reply[1]->elements; i += 2) {
            int64_t score = strtoll(reply[1]->element[i + 1]->str, NULL, 10);
            if (score > m->touched_max)
                m->touched_max = score;
            struct queue_state *q = bsearch(reply[1]->element[i]->str, m->queues, m->nqueues,
                                            sizeof *m->queues, by_name);
            if (q && score > q->touched) {
                /* First read at start: every queue is active already. */
                q->touched = score;
                queue_wake(q, "ingest enqueued");
            }
        }
    }
    freeReplyObject(reply[0]);
    freeReplyObject(reply[1]);
    return err;
}

/* Appends EXISTS of the four sets the scripts act on: 0 means nothing to do. */
static baton_err_t append_exists(struct maintenance *m, const struct baton_queue_keys *keys,
                                 char *errstr, size_t errstr_size) {
    const char *argv[5] = {"EXISTS", keys->ready, keys->scheduled, keys->running, keys->deadline};
    return baton_redis_append(m->redis, 5, argv, NULL, errstr, errstr_size);
}

/* Acts on an EXISTS reply of queue `q` (active or idle) at `now`. */
static void queue_checked(struct maintenance *m, struct queue_state *q, const redisReply *reply,
                          int64_t now) {
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer > 0) {
        queue_wake(q, "tasks found"); /* an error reply counts as work: never idle by mistake */
        return;
    }
    if (q->idle)
        return;
    if (q->empty_since_ms == 0)
        q->empty_since_ms = now;
    else if (now - q->empty_since_ms >= m->config->maintenance_idle_ms) {
        q->idle = 1;
        BATON_DEBUG(COMPONENT, "queue %s idle: empty for %lld ms", q->name,
                    (long long)(now - q->empty_since_ms));
    }
}

/* One pipeline of EXISTS for every idle queue; wakes those with tasks. */
static baton_err_t check_idle_queues(struct maintenance *m, int64_t now, char *errstr,
                                     size_t errstr_size) {
    size_t sent = 0;
    baton_err_t err = BATON_OK;
    baton_redis_pipeline_begin(m->redis);
    for (size_t i = 0; !err && i < m->nqueues; i++)
        if (m->queues[i].idle && !(err = append_exists(m, m->queues[i].keys, errstr, errstr_size)))
            sent++;
    for (size_t i = 0; !err && sent && i < m->nqueues; i++) {
        if (!m->queues[i].idle)
            continue;
        redisReply *reply;
        err = baton_redis_get_reply(m->redis, &reply, errstr, errstr_size);
        if (err)
            break;
        queue_checked(m, &m->queues[i], reply, now);
        freeReplyObject(reply);
    }
    return err;
}

/*
 * One pass over every active queue, and once a second the emptiness
 * checks (see the top of the file). Returns BATON_OK and sets *busy when
 * some script moved a full batch (more may be waiting right now).
 */
static baton_err_t tick(struct maintenance *m, int *busy, char *errstr, size_t errstr_size) {
    *busy = 0;
    baton_err_t err = sync_queues(m, errstr, errstr_size);
    if (err)
        return err;
    int64_t now = baton_time_mono_ms();
    int check =
        m->config->maintenance_idle_ms > 0 && now - m->idle_checked_ms >= IDLE_CHECK_EVERY_MS;
    /* Idle queues first: a queue woken here is ticked in this pass. */
    if (check)
        err = check_idle_queues(m, now, errstr, errstr_size);
    size_t idle = 0;
    for (size_t i = 0; !err && i < m->nqueues; i++) {
        struct queue_state *qs = &m->queues[i];
        if (qs->idle) {
            idle++;
            continue;
        }
        const char *queue = qs->name;
        int64_t started_ns = baton_metrics_now_ns();
        baton_redis_pipeline_begin(m->redis);
        err = append_queue(m, qs->keys, errstr, errstr_size);
        /* After the scripts, so it sees what they left. */
        if (!err && check)
            err = append_exists(m, qs->keys, errstr, errstr_size);
        struct baton_tr_moved promoted = {0, -1}, expired = {0, -1};
        struct baton_tr_reclaimed reclaimed = {0, 0};
        baton_err_t script_err = BATON_OK;
        char why[512];
        /* Read every reply even after an error reply, so the connection
         * stays in step (an error reply is consumed like any other; after
         * an I/O error every read fails at once). */
        if (!err) {
            char why_more[512];
            baton_err_t e[3];
            e[0] = baton_tr_read_promote(m->redis, &promoted, why, sizeof why);
            e[1] = baton_tr_read_expire(m->redis, &expired, e[0] ? why_more : why, sizeof why);
            e[2] = baton_tr_read_reclaim(m->redis, &reclaimed, e[0] || e[1] ? why_more : why,
                                         sizeof why);
            script_err = e[0] ? e[0] : e[1] ? e[1] : e[2];
            if (script_err) /* the first error's text is in why */
                snprintf(errstr, errstr_size, "maintenance of queue %s: %s", queue, why);
        }
        if (!err && check) {
            redisReply *reply;
            baton_err_t e = baton_redis_get_reply(m->redis, &reply, why, sizeof why);
            if (e && !script_err) {
                script_err = e;
                snprintf(errstr, errstr_size, "%s", why);
            }
            if (!e) {
                queue_checked(m, qs, reply, now);
                if (qs->idle)
                    idle++;
                freeReplyObject(reply);
            }
        }
        long long moved[3] = {promoted.moved, expired.moved, reclaimed.requeued + reclaimed.dead};
        long long dead = reclaimed.dead;
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
    if (!err && check)
        m->idle_checked_ms = now;
    if (!err) {
        baton_metric_set(m->metrics->maintenance_queues, BATON_LABELS("idle"), (double)idle);
        baton_metric_set(m->metrics->maintenance_queues, BATON_LABELS("active"),
                         (double)(m->nqueues - idle));
    }
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
    baton_err_t err = BATON_OK;
    for (size_t q = 0; !err && q < m->nqueues; q++) {
        /* An idle queue's sets are empty: its gauges keep their last
         * sample (the dead set only changes through an active queue). */
        if (m->queues[q].idle)
            continue;
        const char *queue = m->queues[q].name;
        const struct baton_queue_keys *keys = m->queues[q].keys;
        char min[10][32], max[10][32];
        const char *const sets[3] = {keys->scheduled, keys->running, keys->dead};
        int64_t started_ns = baton_metrics_now_ns();
        baton_redis_pipeline_begin(m->redis);
        for (int p = 0; !err && p < 10; p++) {
            double lo, hi;
            baton_ready_priority_range(p, &lo, &hi);
            snprintf(min[p], sizeof min[p], "%.0f", lo);
            snprintf(max[p], sizeof max[p], "%.0f", hi);
            const char *zcount[] = {"ZCOUNT", keys->ready, min[p], max[p]};
            err = baton_redis_append(m->redis, 4, zcount, NULL, errstr, errstr_size);
        }
        for (int k = 0; !err && k < 3; k++) {
            const char *zcard[] = {"ZCARD", sets[k]};
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
    m->idle_checked_ms = baton_time_mono_ms();
    m->touched_max = -1;
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
    for (size_t i = 0; i < m->nqueues; i++)
        free(m->queues[i].keys);
    free(m->queues);
    free(m);
}
