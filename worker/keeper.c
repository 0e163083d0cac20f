/*
 * keeper.c - the keeper thread: where leases are renewed.
 *
 * Every KEEPER_TICK_MS it enforces timeouts; every lease/3 it renews the
 * lease of every running job (renew.lua, one call per queue), which also
 * tells it of a lost lease (stop the attempt) or a cancel request (stop
 * the handler, report "canceled"); every HEARTBEAT_EVERY_MS it writes this
 * worker's registry entry (heartbeat.lua), which it deletes on the way
 * out. As PID 1 it also reaps the container's orphans.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"
#include "worker_internal.h"

#define KEEPER_TICK_MS 50 /* timeout checks */
#define HEARTBEAT_EVERY_MS 2000
#define HEARTBEAT_TTL_MS 10000
#define REAP_EVERY_MS 1000 /* as PID 1: how often orphans are reaped */

/* Acts on renew.lua's `answer` for `job`. */
static void on_renewal(baton_worker_t *w, baton_job_t *job, baton_tr_renewal_t answer) {
    /* A job whose outcome is taken (being written, or written between the
     * snapshot and this reply: then the task is no longer running and
     * renew.lua refuses) is not a lost lease: if it was lost, the write
     * itself is refused and counted (baton_worker_note_stale). */
    if (answer == BATON_TR_RENEW_REFUSED && !baton_job_should_stop(job) &&
        !baton_worker_job_finish_taken(job)) {
        baton_worker_note_stale(w, job, "lease renewal", "stopping the attempt");
        baton_worker_job_request_stop(job, JOB_STOP_LOST);
    } else if (answer == BATON_TR_RENEW_CANCELED && !baton_job_should_stop(job)) {
        BATON_LOG_TASK(BATON_LOG_INFO, WORKER_LOG, job->id,
                       "cancellation requested: stopping the handler");
        baton_worker_job_request_stop(job, JOB_STOP_CANCELED);
    }
}

/* Renews the leases of `jobs` that belong to `q`: one renew.lua. */
static void renew_queue(baton_worker_t *w, baton_redis_t *r, const struct worker_queue *q,
                        baton_job_t **jobs, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += jobs[i]->wq == q;
    if (!count)
        return;
    struct baton_tr_lease *leases = malloc(count * sizeof *leases);
    baton_tr_renewal_t *answers = malloc(count * sizeof *answers);
    baton_job_t **mine = malloc(count * sizeof *mine);
    if (!leases || !answers || !mine) {
        free(leases);
        free(answers);
        free(mine);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]->wq != q)
            continue;
        mine[k] = jobs[i];
        leases[k].id = jobs[i]->id;
        leases[k].token = jobs[i]->token;
        k++;
    }
    char errstr[1024];
    int64_t started_ns = baton_metrics_now_ns();
    /* k == count (the same test chose them); k is what was filled in. */
    if (baton_tr_renew(r, &q->keys, w->config.lease_ms, leases, k, answers, errstr,
                       sizeof errstr) != BATON_OK) {
        BATON_WARN(WORKER_LOG, "lease renewal on %s failed (will retry): %s", q->keys.name, errstr);
    } else {
        baton_metric_observe(w->metrics.roundtrip, BATON_LABELS("worker"),
                             baton_metrics_since(started_ns));
        for (size_t i = 0; i < k; i++)
            on_renewal(w, mine[i], answers[i]);
    }
    free(leases);
    free(answers);
    free(mine);
}

/* Renews the leases of every running job, one renew.lua per queue. */
static void renew_leases(baton_worker_t *w, baton_redis_t *r) {
    size_t n;
    baton_job_t **jobs = baton_worker_running_snapshot(w, &n);
    if (!jobs)
        return;
    for (size_t qi = 0; qi < w->nqueues; qi++)
        renew_queue(w, r, &w->queues[qi], jobs, n);
    baton_worker_running_release(jobs, n);
}

/*
 * Timeouts: at the deadline the job is told to stop (a command's process
 * group gets SIGTERM); kill_grace_ms later a command's whole process tree
 * is killed (baton_worker_command_kill_tree: its descendants that left the group
 * too); a C handler that has not returned by then has its attempt failed
 * from here, and its late outcome is discarded.
 */
static void enforce_timeouts(baton_worker_t *w, baton_redis_t *r) {
    size_t n;
    baton_job_t **jobs = baton_worker_running_snapshot(w, &n);
    if (!jobs)
        return;
    int64_t now = baton_time_mono_ms();
    for (size_t i = 0; i < n; i++) {
        baton_job_t *job = jobs[i];
        if (now < job->deadline_mono_ms)
            continue;
        if (!baton_job_should_stop(job)) {
            BATON_LOG_TASK(BATON_LOG_WARN, WORKER_LOG, job->id, "timed out after %" PRId64 " ms",
                           job->timeout_ms);
            baton_worker_job_request_stop(job, JOB_STOP_TIMEOUT);
        } else if (atomic_load(&job->stop_reason) == JOB_STOP_TIMEOUT &&
                   now >= baton_time_add_sat(job->deadline_mono_ms, w->config.kill_grace_ms)) {
            int pgid = atomic_load(&job->pgid);
            if (pgid > 0)
                baton_worker_command_kill_tree(pgid);
            else if (r)
                baton_worker_outcome_finish(w, r, job,
                                            BATON_HANDLER_FAILED); /* a stuck C handler */
        }
    }
    baton_worker_running_release(jobs, n);
}

static void heartbeat(baton_worker_t *w, baton_redis_t *r) {
    char pid[24], conc[24], busy[24], done[24], failed[24], stale[24], started[24], host[256] = "";
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
    /* Registry fields as name, value pairs. */
    // clang-format off
    const char *fields[] = {"host", host,
                            "pid", pid,
                            "queues", w->queue_spec,
                            "concurrency", conc,
                            "busy", busy,
                            "done", done,
                            "failed", failed,
                            "stale_refusals", stale,
                            "started_ms", started};
    // clang-format on
    char errstr[512];
    /* Best effort: a missed beat is written again HEARTBEAT_EVERY_MS later. */
    (void)baton_tr_heartbeat(r, w->id, HEARTBEAT_TTL_MS, fields, sizeof fields / sizeof fields[0],
                             NULL, errstr, sizeof errstr);
}

/* Leaves the registry: this worker is gone, not merely silent. */
static void registry_leave(baton_worker_t *w, baton_redis_t *r) {
    char key[BATON_KEY_MAX], errstr[512];
    baton_worker_key(key, w->id);
    const char *del[] = {"DEL", key};
    const char *zrem[] = {"ZREM", BATON_KEY_WORKERS, w->id};
    redisReply *reply;
    if (baton_redis_command(r, &reply, 2, del, NULL, errstr, sizeof errstr) == BATON_OK)
        freeReplyObject(reply);
    if (baton_redis_command(r, &reply, 3, zrem, NULL, errstr, sizeof errstr) == BATON_OK)
        freeReplyObject(reply);
}

void *baton_worker_keeper_main(void *arg) {
    baton_worker_t *w = arg;
    baton_redis_t *r = w->keeper_redis;
    char errstr[1024];
    int64_t renew_every = w->config.lease_ms / 3;
    int64_t next_renew = baton_time_mono_ms() + renew_every;
    int64_t next_beat = 0, next_reap = 0;
    /* As PID 1 (a container without an init) every orphan of the
     * container becomes ours: reap them, or zombies pile up. */
    int reaper = getpid() == 1;
    for (;;) {
        struct timespec tick = baton_time_mono_after(KEEPER_TICK_MS);
        pthread_mutex_lock(&w->lock);
        if (!w->keeper_exit)
            pthread_cond_timedwait(&w->stop_cond, &w->lock, &tick);
        int exit_now = w->keeper_exit;
        pthread_mutex_unlock(&w->lock);
        if (exit_now)
            break;
        /* Down: no renewal nor heartbeat this tick, as neither can land. */
        int up = baton_redis_ensure(r, errstr, sizeof errstr) == BATON_OK;
        enforce_timeouts(w, up ? r : NULL);
        int64_t now = baton_time_mono_ms();
        if (reaper && now >= next_reap) {
            baton_worker_command_reap_orphans();
            next_reap = now + REAP_EVERY_MS;
        }
        if (up && now >= next_renew) {
            renew_leases(w, r);
            next_renew = now + renew_every;
        }
        if (up && now >= next_beat) {
            heartbeat(w, r);
            next_beat = now + HEARTBEAT_EVERY_MS;
        }
    }
    if (baton_redis_ensure(r, errstr, sizeof errstr) == BATON_OK)
        registry_leave(w, r);
    return NULL;
}
