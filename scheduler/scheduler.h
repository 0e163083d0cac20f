/*
 * scheduler.h - baton-scheduler's configuration and its two parts.
 *
 * ingest.c       consumes baton.tasks in a consumer group, validates, enqueues
 *                into Redis one pipeline per batch, dead-letters bad input,
 *                and stores offsets only after Redis accepted the batch.
 * maintenance.c  a thread that, per queue, moves due scheduled tasks to
 *                ready, expires tasks past their deadline and reclaims
 *                expired leases (scripts promote.lua, expire.lua, reclaim.lua).
 * history.c      a thread that writes the events streams to PostgreSQL.
 *
 * Several schedulers may run at once: ingest splits partitions through the
 * consumer group; maintenance scripts are atomic, so each task moves once.
 */
#ifndef BATON_SCHEDULER_H
#define BATON_SCHEDULER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "metrics.h"

struct scheduler_config {
    char *kafka_brokers;             /* bootstrap servers */
    char *kafka_config;              /* extra librdkafka properties, "k=v,k=v" */
    char *kafka_config_file;         /* librdkafka properties, one name=value a line */
    char *topic;                     /* tasks topic */
    char *dlq_topic;                 /* dead-letter topic for rejected messages */
    char *group_id;                  /* consumer group */
    char *redis_url;                 /* redis://host:port/db */
    char *redis_durability;          /* strict | relaxed (see redis.h) */
    int64_t redis_timeout_ms;        /* connect and per-command timeout */
    int64_t batch_size;              /* most messages per ingest batch */
    int64_t batch_wait_ms;           /* longest wait for a first message */
    int64_t max_payload_bytes;       /* payload size limit of the contract */
    double memory_pause_fraction;    /* pause ingest above used/maxmemory */
    int64_t retention_ms;            /* how long terminal tasks stay in Redis */
    int64_t maintenance_interval_ms; /* maintenance tick */
    int64_t maintenance_batch;       /* most tasks moved per script call */
    int64_t maintenance_idle_ms;     /* a queue empty this long is no longer ticked; 0 = never */
    char *queues_allowed;            /* "a,b,p.*": queues ingest accepts; "" = any */
    char *pg_dsn;                    /* PostgreSQL, for the history writer */
    int history;                     /* run the history writer */
    int64_t history_batch;           /* most events per PostgreSQL transaction */
    int64_t history_batch_bytes;     /* most bytes of events per transaction (read_batch) */
    int64_t history_claim_idle_ms;   /* take over events pending this long */
    int history_payload;             /* keep task payloads in history */
    int ingest;                      /* run ingest */
    int maintenance;                 /* run the maintenance loop */
    char *log_level;                 /* debug|info|warn|error */
    int64_t metrics_port;            /* /metrics, /healthz, /readyz; 0 = off */
    char *metrics_bind;              /* address the endpoint listens on */
    int64_t metrics_label_values;    /* distinct values per metric label; more fold into "other" */
    struct scheduler_metrics *metrics; /* set by main.c, not an option; never NULL */
};

/*
 * The scheduler's metric families (docs/metrics.md), registered by main.c,
 * borrowed from its registry. A part that is off (--ingest, --maintenance,
 * --history) has NULL families, which the metrics API takes as no-ops.
 */
struct scheduler_metrics {
    baton_metric_t *ingest_messages;    /* counter {topic}: messages consumed */
    baton_metric_t *ingest_rejected;    /* counter {reason}: messages dead-lettered */
    baton_metric_t *ingest_enqueued;    /* counter {queue,result}: enqueue.lua outcomes */
    baton_metric_t *ingest_batch;       /* histogram: one batch, consume to offsets stored */
    baton_metric_t *ingest_paused;      /* gauge: 1 while partitions are paused */
    baton_metric_t *ingest_dlq_pending; /* gauge: rejects not yet acknowledged by the DLQ */
    baton_metric_t *consumer_lag;       /* gauge {topic,partition}: collected by ingest.c */
    baton_metric_t *redis_roundtrip;    /* histogram {component}: one pipeline round trip */
    baton_metric_t *maintenance_tasks;  /* counter {queue,action}: tasks moved */
    baton_metric_t *maintenance_queues; /* gauge {state}: queues ticked (active) or not (idle) */
    baton_metric_t *queue_ready;        /* gauge {queue,priority}: sampled */
    baton_metric_t *queue_scheduled;    /* gauge {queue}: sampled */
    baton_metric_t *queue_running;      /* gauge {queue}: sampled */
    baton_metric_t *queue_dead;         /* gauge {queue}: sampled */
    baton_metric_t *history_backlog;    /* gauge: events waiting for PostgreSQL */
    baton_metric_t *history_batch;      /* histogram: one batch, PostgreSQL to XACK */
    baton_metric_t *history_written;    /* counter: events written to PostgreSQL */
    baton_metric_t *history_takeovers;  /* counter {reason}: events taken over (take_over) */
    baton_metric_t *history_set_aside;  /* counter {class}: entries PostgreSQL refused */
};

/* Set by the signal handler; every loop checks it. */
extern volatile sig_atomic_t scheduler_stop;

/*
 * Runs ingest until scheduler_stop is set. Returns BATON_OK on a clean stop,
 * or the error that made start-up impossible (bad config, Redis evicting).
 * @locality main thread
 */
baton_err_t ingest_run(const struct scheduler_config *config, char *errstr, size_t errstr_size);

/*
 * Checks --queues-allowed before anything starts: BATON_OK, or
 * BATON_ERR_CONFIG with the bad entry in errstr.
 */
baton_err_t ingest_check_config(const struct scheduler_config *config, char *errstr,
                                size_t errstr_size);

/*
 * Readiness of ingest's Kafka connection: 1 when a metadata request on the
 * consumer gets an answer within `timeout_ms`; else 0 with the reason in
 * `why` (also while ingest has not started or has stopped).
 * @locality an HTTP server thread
 */
int ingest_kafka_ready(int timeout_ms, char *why, size_t why_size);

typedef struct maintenance maintenance_t;

/*
 * Starts the maintenance thread. On success *out is a handle the caller stops
 * and frees with maintenance_stop().
 */
baton_err_t maintenance_start(const struct scheduler_config *config, maintenance_t **out,
                              char *errstr, size_t errstr_size);

/* Asks the thread to stop, joins it and frees `m`. NULL is a no-op. */
void maintenance_stop(maintenance_t *m);

typedef struct history history_t;

/*
 * Starts the history writer thread; refuses (BATON_ERR_PG) when PostgreSQL
 * is unreachable at start. Caller stops and frees it with history_stop().
 */
baton_err_t history_start(const struct scheduler_config *config, history_t **out, char *errstr,
                          size_t errstr_size);

/* Events waiting in Redis for PostgreSQL, as last measured (about 1/s). */
uint64_t history_backlog(history_t *h);

/* Stops the writer (the batch in hand stays pending for the next one). */
void history_stop(history_t *h);

/*
 * Failure point between a batch's COMMIT and its XACK, called with the
 * batch's size when not NULL. NULL in baton-scheduler: nothing in the
 * product sets it. The test build (tests/integration/history/scheduler_test_hooks.c,
 * linked into baton-scheduler-testhooks only) sets it to kill the process.
 * @locality the history thread
 */
extern void (*history_after_commit_hook)(size_t events);

#endif
