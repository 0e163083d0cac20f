/*
 * worker_metrics.c - the worker's metric families (docs/metrics.md).
 *
 * Counters are incremented where an outcome is written (outcome.c), after
 * Redis accepted it; the busy/idle gauge is read at scrape time from the
 * slot count, so no thread updates it.
 */
#include "worker_internal.h"

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

void baton_worker_metrics_register(baton_worker_t *w, baton_metrics_t *r) {
    static const double fast[] = {BATON_BUCKETS_FAST_SECONDS};
    static const double slow[] = {BATON_BUCKETS_SLOW_SECONDS};
    struct worker_metrics *mx = &w->metrics;
    mx->claimed = baton_metrics_counter(r, "baton_worker_tasks_claimed_total",
                                        "Tasks claimed by this worker.", "queue,type");
    mx->succeeded =
        baton_metrics_counter(r, "baton_worker_tasks_succeeded_total",
                              "Tasks this worker completed successfully.", "queue,type");
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
    mx->canceled =
        baton_metrics_counter(r, "baton_worker_tasks_canceled_total",
                              "Running tasks stopped on a cancel request.", "queue,type");
    mx->stale = baton_metrics_counter(
        r, "baton_worker_stale_refusals_total",
        "Outcomes and lease renewals Redis refused because the lease was taken over "
        "(stale fencing token).",
        "queue");
    mx->run_seconds =
        baton_metrics_histogram(r, "baton_task_run_seconds", "Time a handler ran, by task type.",
                                "type", slow, sizeof slow / sizeof slow[0]);
    mx->threads =
        baton_metrics_gauge(r, "baton_worker_threads", "Executor threads, busy or idle.", "state");
    mx->roundtrip = baton_metrics_histogram(
        r, "baton_redis_roundtrip_seconds",
        "Time of one Redis round trip (a pipeline or a single command), by component.", "component",
        fast, sizeof fast / sizeof fast[0]);
    baton_metric_set_collector(mx->threads, collect_threads, w);
}

void baton_worker_metrics_unregister(baton_worker_t *w) {
    baton_metric_set_collector(w->metrics.threads, NULL, NULL); /* waits for a scrape */
}
