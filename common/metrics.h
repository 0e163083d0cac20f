/*
 * metrics.h - a small thread-safe Prometheus registry.
 *
 * A baton_metrics_t holds metric families: counters, gauges and histograms,
 * each with a fixed list of label names. A series (one combination of label
 * values) is created on its first update. Any thread may update any family;
 * each family has its own lock, so threads updating different metrics never
 * wait for each other, and a scrape holds a family's lock only while it
 * formats that family.
 *
 * Values that are cheaper to read than to track (queue depth, consumer lag,
 * busy threads) come from a collector: a callback attached to a gauge
 * family that the registry calls at scrape time, after dropping the
 * family's series, to set the current ones.
 *
 * baton_metrics_render() writes the Prometheus text exposition format 0.0.4.
 *
 * Label values often come from producers (queue names, task types), and
 * every series lives until the process ends. So each label of a family
 * admits a limited number of distinct values (BATON_METRICS_LABEL_VALUES,
 * see baton_metrics_set_label_values()); an update with a new value past
 * the limit is counted under the value "other" instead, and counted in
 * baton_metric_values_folded_total{metric="..."}, which the registry
 * exports from the first such update on. Counters and histograms under
 * "other" add up; a gauge's "other" holds the last value set through it.
 * baton_metric_reset() (and so every scrape of a collected gauge) forgets
 * the admitted values.
 *
 * Ownership: the registry owns its families; a baton_metric_t pointer is
 * borrowed and valid until baton_metrics_destroy(). Every update function
 * accepts a NULL family and does nothing, so code paths can be instrumented
 * unconditionally and run without a registry.
 */
#ifndef BATON_METRICS_H
#define BATON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct baton_metrics baton_metrics_t;
typedef struct baton_metric baton_metric_t;

/* Label values of one series, in the order of the family's label names:
 * baton_metric_inc(f, BATON_LABELS(queue, type)). */
#define BATON_LABELS(...) ((const char *const[]){__VA_ARGS__})

/* Distinct values one label of a family admits by default; more fold
 * into "other". */
#define BATON_METRICS_LABEL_VALUES 200
/* Label names a family may have. */
#define BATON_METRICS_MAX_LABELS 8

/* Buckets for Redis and PostgreSQL round trips, in seconds (100 us - 5 s). */
#define BATON_BUCKETS_FAST_SECONDS                                                                 \
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
/* Buckets for task run times and batches, in seconds (1 ms - 1 h). */
#define BATON_BUCKETS_SLOW_SECONDS                                                                 \
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600

/*
 * Called at scrape time, on the scraping thread, with the family's series
 * already dropped: sets the current values with baton_metric_set(). It may
 * only update `family` (registering or rendering from it deadlocks).
 * @locality an HTTP server thread (whoever calls baton_metrics_render())
 */
typedef void (*baton_metric_collect_fn)(baton_metric_t *family, void *ctx);

/* A new, empty registry; NULL when out of memory. Free with
 * baton_metrics_destroy(). */
baton_metrics_t *baton_metrics_new(void);

/*
 * Sets how many distinct values each label of a family admits (0 = the
 * default, BATON_METRICS_LABEL_VALUES). Values admitted already stay; the
 * limit applies to new ones. NULL is a no-op.
 * @locality any thread
 */
void baton_metrics_set_label_values(baton_metrics_t *m, size_t limit);

/* Frees the registry and every family. Nothing may use it afterwards (stop
 * the HTTP server first). NULL is a no-op. */
void baton_metrics_destroy(baton_metrics_t *m);

/*
 * Register a family. `name` follows Prometheus conventions (counters end
 * in _total, base units: _seconds, _bytes); `help` is one line; `labels`
 * is a comma-separated list of label names ("queue,type"; at most
 * BATON_METRICS_MAX_LABELS), or NULL / "" for none. A family without labels has its one series from
 * the start, at 0. Registering a name again with the same type and labels returns the existing
 * family; a different type or label list, or an invalid name, returns NULL (as does running out of
 * memory). All strings are copied.
 */
baton_metric_t *baton_metrics_counter(baton_metrics_t *m, const char *name, const char *help,
                                      const char *labels);
baton_metric_t *baton_metrics_gauge(baton_metrics_t *m, const char *name, const char *help,
                                    const char *labels);

/*
 * A histogram with `nbounds` upper bounds (strictly increasing, finite; the
 * +Inf bucket is implicit). An observation v counts in every bucket with
 * bound >= v.
 */
baton_metric_t *baton_metrics_histogram(baton_metrics_t *m, const char *name, const char *help,
                                        const char *labels, const double *bounds, size_t nbounds);

/*
 * Attaches (or with fn NULL, detaches) the scrape-time collector of a gauge
 * family. Waits for a scrape in progress, so after detaching, `ctx` is no
 * longer used and may be freed. BATON_ERR_INVALID for a non-gauge family.
 */
baton_err_t baton_metric_set_collector(baton_metric_t *family, baton_metric_collect_fn fn,
                                       void *ctx);

/*
 * Updates of the series named by `values` (one string per label name; NULL
 * is taken as ""; ignored when the family has no labels). Values are
 * copied. Out of memory, an update is dropped.
 *
 * add:     counter (v >= 0, else ignored) or gauge
 * inc:     add 1
 * set:     gauge only
 * observe: histogram only
 */
void baton_metric_add(baton_metric_t *family, const char *const *values, double v);
void baton_metric_inc(baton_metric_t *family, const char *const *values);
void baton_metric_set(baton_metric_t *family, const char *const *values, double v);
void baton_metric_observe(baton_metric_t *family, const char *const *values, double v);

/* Drops every series of a labelled family (a labelless one goes back to 0). */
void baton_metric_reset(baton_metric_t *family);

/* The current value of a counter or gauge series (0 when it does not
 * exist), or a histogram series' count. For tests and logs. */
double baton_metric_value(baton_metric_t *family, const char *const *values);

/*
 * Renders every family in the text exposition format 0.0.4 (families in
 * registration order, series in creation order), after running the
 * collectors. On success *out is NUL-terminated text of *len bytes that the
 * caller frees with free().
 * @locality any thread; scrapes are serialized
 */
baton_err_t baton_metrics_render(baton_metrics_t *m, char **out, size_t *len);

/* A monotonic clock in nanoseconds, for timing what goes into histograms. */
int64_t baton_metrics_now_ns(void);

/* Seconds elapsed since `start_ns` (a baton_metrics_now_ns() value). */
double baton_metrics_since(int64_t start_ns);

#endif
