/*
 * executor.c - the slots: a claimed job's way through the worker's threads.
 *
 * The fetcher hands claimed jobs over (baton_worker_slots_hand_over): each takes
 * a slot (busy), joins the running set (which the keeper renews and the
 * drain hands back) and the ready list. `concurrency` executor threads
 * take jobs from the ready list and run their handlers. A success, the
 * common case, goes to the done list, whose completer thread writes many
 * in one round trip (one script call per queue); any other outcome the executor writes itself
 * (outcome.c). Once written, the job leaves the running set and its slot
 * is freed (job_done), which wakes the fetcher.
 */
#include <stdlib.h>

#include "log.h"
#include "worker_internal.h"

/* Most successes written per round trip. */
#define COMPLETE_BATCH 256

/* The running set; worker lock held. */
static void running_add(baton_worker_t *w, baton_job_t *j) {
    struct running_set *set = &w->running;
    if (set->count == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        baton_job_t **grown = realloc(set->jobs, cap * sizeof *grown);
        if (!grown)
            abort(); /* cannot track a claimed task: fail loudly, lease saves it */
        set->jobs = grown;
        set->cap = cap;
    }
    set->jobs[set->count++] = j;
}

static void running_remove(baton_worker_t *w, baton_job_t *j) {
    struct running_set *set = &w->running;
    for (size_t i = 0; i < set->count; i++) {
        if (set->jobs[i] == j) {
            set->jobs[i] = set->jobs[--set->count];
            return;
        }
    }
}

/*
 * Wakes one idle executor if the ready list has work that no woken
 * executor will take: none is on its way (`waking`), and every executor
 * that runs a handler looks at the list again before it sleeps. The woken
 * one calls this again after taking its job, so a long list spreads over
 * the executors one wake-up at a time, while a burst of short tasks is
 * mostly run by the executors already awake: a wake-up costs two system
 * calls and a context switch, more than a noop task. Worker lock held.
 */
static void wake_one_if_needed(baton_worker_t *w) {
    struct worker_executor *e = w->idle_executors;
    if (!w->ready_head || w->waking || !e)
        return;
    w->idle_executors = e->next_idle;
    e->next_idle = NULL;
    e->woken = 1;
    w->waking++;
    pthread_cond_signal(&e->wake);
}

void baton_worker_executors_wake_all(baton_worker_t *w) {
    while (w->idle_executors) {
        struct worker_executor *e = w->idle_executors;
        w->idle_executors = e->next_idle;
        e->next_idle = NULL;
        e->woken = 1;
        w->waking++;
        pthread_cond_signal(&e->wake);
    }
}

void baton_worker_slots_hand_over(baton_worker_t *w, baton_job_t **jobs, int n) {
    if (n <= 0)
        return;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < n; i++) {
        baton_job_t *j = jobs[i];
        j->claim_seq = ++w->claims;
        /* The running set holds the reference, the ready list borrows it. */
        running_add(w, j);
        j->next = NULL;
        if (w->ready_tail)
            w->ready_tail->next = j;
        else
            w->ready_head = j;
        w->ready_tail = j;
        w->busy++;
    }
    wake_one_if_needed(w);
    pthread_mutex_unlock(&w->lock);
}

baton_job_t **baton_worker_running_snapshot(baton_worker_t *w, size_t *n) {
    struct running_set *set = &w->running;
    pthread_mutex_lock(&w->lock);
    baton_job_t **copy = malloc((set->count ? set->count : 1) * sizeof *copy);
    *n = 0;
    if (copy)
        for (size_t i = 0; i < set->count; i++)
            copy[(*n)++] = baton_worker_job_ref(set->jobs[i]);
    pthread_mutex_unlock(&w->lock);
    return copy;
}

void baton_worker_running_release(baton_job_t **jobs, size_t n) {
    for (size_t i = 0; jobs && i < n; i++)
        baton_worker_job_unref(jobs[i]);
    free(jobs);
}

/* Takes `job` off the worker's books and frees its slot; worker lock
 * held. The caller wakes the slot's waiters (the fetcher, the drain). */
static void job_done_locked(baton_worker_t *w, baton_job_t *job) {
    running_remove(w, job);
    w->busy--;
}

/* job_done_locked for one job, with the lock, the wake-up and the running
 * set's reference. */
static void job_done(baton_worker_t *w, baton_job_t *job) {
    pthread_mutex_lock(&w->lock);
    job_done_locked(w, job);
    pthread_cond_broadcast(&w->slot_freed);
    pthread_mutex_unlock(&w->lock);
    baton_worker_job_unref(job); /* the running set's reference */
}

/* Runs the handler for `job`; BATON_HANDLER_FAILED without one, or when
 * the job was told to stop before it started. @locality an executor */
static baton_handler_status_t run_handler(baton_worker_t *w, baton_job_t *job) {
    if (baton_job_should_stop(job))
        return BATON_HANDLER_FAILED;
    struct handler_entry *h = baton_worker_find_handler(w, job->type);
    if (!h) {
        baton_job_set_error(job, "no handler for type '%s' on worker %s", job->type, w->id);
        return BATON_HANDLER_FAILED;
    }
    /* The payload is parsed here, for the handlers that may read it: the
     * built-in noop does not. */
    if (h->fn != baton_worker_builtin_noop && baton_worker_job_load(job)) {
        baton_job_set_error(job, "cannot read the payload: out of memory");
        return BATON_HANDLER_FAILED;
    }
    BATON_LOG_TASK(BATON_LOG_DEBUG, WORKER_LOG, job->id, "running %s (attempt %d)", job->type,
                   job->attempt);
    int64_t started_ns = baton_metrics_now_ns();
    baton_handler_status_t status = h->fn(job, h->ctx);
    baton_metric_observe(w->metrics.run_seconds, BATON_LABELS(job->type),
                         baton_metrics_since(started_ns));
    return status;
}

/* Hands a success (its outcome taken, with this thread's reference) to
 * the completer. */
static void to_completer(baton_worker_t *w, baton_job_t *job) {
    pthread_mutex_lock(&w->lock);
    job->next = NULL;
    if (w->done_tail)
        w->done_tail->next = job;
    else
        w->done_head = job;
    w->done_tail = job;
    /* A busy completer finds it when it comes back for the next batch. */
    if (w->completer_idle) {
        w->completer_idle = 0;
        pthread_cond_signal(&w->completed);
    }
    pthread_mutex_unlock(&w->lock);
}

void *baton_worker_executor_main(void *arg) {
    struct worker_executor *self = arg;
    baton_worker_t *w = self->worker;
    baton_redis_t *r = self->redis;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->ready_head && !w->exiting) {
            /* Idle: on the stack until someone pops and wakes it (a
             * spurious wake-up leaves it there, waiting again). */
            self->next_idle = w->idle_executors;
            w->idle_executors = self;
            self->woken = 0;
            while (!self->woken)
                pthread_cond_wait(&self->wake, &w->lock);
            w->waking--;
        }
        baton_job_t *job = w->ready_head;
        if (!job) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        w->ready_head = job->next;
        if (!w->ready_head)
            w->ready_tail = NULL;
        wake_one_if_needed(w); /* work left behind: the next executor */
        baton_worker_job_ref(job);
        pthread_mutex_unlock(&w->lock);

        baton_handler_status_t status = run_handler(w, job);
        /* Successes go to the completer (it also frees the slot and takes
         * over this thread's reference). */
        if (status == BATON_HANDLER_OK && !baton_job_should_stop(job) &&
            baton_worker_job_take_finish(job)) {
            to_completer(w, job);
            continue;
        }
        /* Retries a Redis outage for one lease length, after which
         * maintenance reclaims the task. */
        baton_worker_outcome_finish(w, r, job, status);
        job_done(w, job);
        baton_worker_job_unref(job);
    }
    return NULL;
}

/*
 * Writes successes in batches: all that are waiting, up to COMPLETE_BATCH,
 * one complete.lua call per queue in one pipeline
 * (baton_worker_outcome_complete_batch), then frees their slots.
 */
void *baton_worker_completer_main(void *arg) {
    baton_worker_t *w = arg;
    baton_job_t *batch[COMPLETE_BATCH];
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->done_head && !w->completer_exit) {
            w->completer_idle = 1;
            pthread_cond_wait(&w->completed, &w->lock);
        }
        w->completer_idle = 0;
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
        baton_worker_outcome_complete_batch(w, w->completer_redis, batch, n);
        /* The whole batch's slots at once: one wake-up of the fetcher,
         * which then claims for all of them in one round. */
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < n; i++)
            job_done_locked(w, batch[i]);
        pthread_cond_broadcast(&w->slot_freed);
        pthread_mutex_unlock(&w->lock);
        for (size_t i = 0; i < n; i++) {
            baton_worker_job_unref(batch[i]); /* the running set's reference */
            baton_worker_job_unref(batch[i]); /* the executor's, handed over */
        }
    }
    return NULL;
}
