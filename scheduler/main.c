/*
 * main.c - baton-scheduler: parse config, check Redis, run ingest and the
 * maintenance thread, stop in order on SIGTERM/SIGINT (stop intake, finish
 * the batch in hand, commit, stop maintenance, close). With --metrics-port,
 * serves /metrics, /healthz and /readyz from the start to the end.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "redis.h"
#include "retention.h"
#include "scheduler.h"

volatile sig_atomic_t scheduler_stop;

static void on_signal(int sig) {
    (void)sig;
    scheduler_stop = 1;
}

#define CFG(field) offsetof(struct scheduler_config, field)
static const struct baton_opt options[] = {
    BATON_OPT_SECTION("Kafka ingest"),
    {"kafka-brokers", BATON_OPT_STRING, NULL, "Kafka bootstrap servers (host:port,...)",
     CFG(kafka_brokers), 0, 0},
    {"kafka-config", BATON_OPT_STRING, "", "extra librdkafka properties, k=v,k=v",
     CFG(kafka_config), 0, 0},
    {"kafka-config-file", BATON_OPT_STRING, "",
     "file of librdkafka properties, one name=value a line (# comments); for values with "
     "commas; --kafka-config wins",
     CFG(kafka_config_file), 0, 0},
    {"topic", BATON_OPT_STRING, "baton.tasks", "topic to consume tasks from", CFG(topic), 0, 0},
    {"dlq-topic", BATON_OPT_STRING, "baton.tasks.dlq", "dead-letter topic for rejected messages",
     CFG(dlq_topic), 0, 0},
    {"group-id", BATON_OPT_STRING, "baton-scheduler", "Kafka consumer group", CFG(group_id), 0, 0},
    {"batch-size", BATON_OPT_INT, "1000", "most messages per ingest batch", CFG(batch_size), 1,
     100000},
    {"batch-wait-ms", BATON_OPT_DURATION, "100ms",
     "longest wait for a first message; a batch then takes what is already fetched",
     CFG(batch_wait_ms), 1, 60000},
    {"max-payload-bytes", BATON_OPT_INT, "1048576", "payload size limit (compact JSON bytes)",
     CFG(max_payload_bytes), 1, 268435456},
    {"queues-allowed", BATON_OPT_STRING, "",
     "queues ingest accepts, comma-separated; 'p*' takes every name starting with p; tasks for "
     "others go to the DLQ as unknown_queue (empty = any queue)",
     CFG(queues_allowed), 0, 0},
    {"ingest", BATON_OPT_BOOL, "true", "run Kafka ingest", CFG(ingest), 0, 0},
    BATON_OPT_SECTION("Redis"),
    {"redis-url", BATON_OPT_STRING, "redis://127.0.0.1:6379/0", "Redis URL", CFG(redis_url), 0, 0},
    {"redis-durability", BATON_OPT_STRING, "strict",
     "strict: refuse a Redis without appendonly yes and appendfsync always (checked at each "
     "connect); relaxed: accept it, and lose acknowledged tasks if Redis crashes",
     CFG(redis_durability), 0, 0},
    {"redis-timeout-ms", BATON_OPT_DURATION, "5s", "Redis connect and command timeout",
     CFG(redis_timeout_ms), 1, 600000},
    {"memory-pause-fraction", BATON_OPT_DOUBLE, "0.9",
     "pause ingest while the memory Redis counts against maxmemory (used_memory less "
     "mem_not_counted_for_evict) / maxmemory is above this",
     CFG(memory_pause_fraction), 0.01, 1.0},
    {"retention-ms", BATON_OPT_DURATION, "7d",
     "how long finished tasks stay in Redis (history keeps them for good); published in Redis "
     "for the workers and batonctl, and a scheduler given another value than the one "
     "published refuses to start",
     CFG(retention_ms), 1000, 31536000000.0},
    BATON_OPT_SECTION("Maintenance"),
    {"maintenance", BATON_OPT_BOOL, "true", "run the maintenance loop", CFG(maintenance), 0, 0},
    {"maintenance-interval-ms", BATON_OPT_DURATION, "100ms",
     "maintenance tick: due tasks, deadlines, expired leases", CFG(maintenance_interval_ms), 1,
     60000},
    {"maintenance-batch", BATON_OPT_INT, "1000", "most tasks moved per maintenance script call",
     CFG(maintenance_batch), 1, 100000},
    {"maintenance-idle-ms", BATON_OPT_DURATION, "1m",
     "a queue with no ready, scheduled, running or deadline task for this long is no longer "
     "ticked until a task arrives; idle queues are still checked once a second (0 = always "
     "tick)",
     CFG(maintenance_idle_ms), 0, 86400000},
    BATON_OPT_SECTION("History (PostgreSQL)"),
    {"pg-dsn", BATON_OPT_STRING, NULL, "PostgreSQL connection string, for the history writer",
     CFG(pg_dsn), 0, 0},
    {"history", BATON_OPT_BOOL, "true", "run the history writer (needs --pg-dsn)", CFG(history), 0,
     0},
    {"history-batch", BATON_OPT_INT, "2000", "most events per PostgreSQL transaction",
     CFG(history_batch), 1, 100000},
    {"history-batch-bytes", BATON_OPT_INT, "67108864",
     "most bytes of events per PostgreSQL transaction (a batch holds at least one event)",
     CFG(history_batch_bytes), 65536, 1073741824},
    {"history-claim-idle-ms", BATON_OPT_DURATION, "30s",
     "take over events another writer left unacknowledged this long", CFG(history_claim_idle_ms),
     100, 86400000},
    {"history-payload", BATON_OPT_BOOL, "true", "keep task payloads in history",
     CFG(history_payload), 0, 0},
    BATON_OPT_SECTION("Logs and metrics"),
    {"log-level", BATON_OPT_STRING, "info", "debug, info, warn, error or off", CFG(log_level), 0,
     0},
    {"metrics-port", BATON_OPT_INT, "0",
     "port of /metrics, /healthz and /readyz (0 = off; 9464 by convention)", CFG(metrics_port), 0,
     65535},
    {"metrics-bind", BATON_OPT_STRING, "127.0.0.1",
     "address the metrics endpoint listens on (the container image sets 0.0.0.0)",
     CFG(metrics_bind), 0, 0},
    {"metrics-label-values", BATON_OPT_INT, "200",
     "distinct values each metric label keeps its own series for (queues, task types); more "
     "are counted under \"other\"",
     CFG(metrics_label_values), 1, 100000},
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

/* Refuses an evicting Redis before anything starts (guarantee 9), then
 * publishes --retention-ms for the workers and batonctl; a different one
 * already published is a configuration error (*rc 2, like a bad flag). */
static baton_err_t check_redis(const struct scheduler_config *config, int *rc, char *errstr,
                               size_t errstr_size) {
    baton_redis_t *redis = NULL;
    baton_err_t err = baton_redis_connect(config->redis_url, (int)config->redis_timeout_ms, &redis,
                                          errstr, errstr_size);
    if (!err)
        err = baton_redis_check_policy(redis, errstr, errstr_size);
    if (!err) {
        err = baton_retention_publish(redis, config->retention_ms, errstr, errstr_size);
        if (err == BATON_ERR_CONFIG)
            *rc = 2;
    }
    baton_redis_destroy(redis);
    return err;
}

/* ---------------------------------------------------------------- metrics */

#define PROBE_TIMEOUT_MS 1000 /* each readiness check: an unready answer, not a hang */

static const double fast_buckets[] = {BATON_BUCKETS_FAST_SECONDS};
#define FAST_BUCKETS fast_buckets, sizeof fast_buckets / sizeof fast_buckets[0]

/* Registers the families of the parts that run (docs/metrics.md). */
static void register_metrics(baton_metrics_t *r, const struct scheduler_config *c,
                             struct scheduler_metrics *mx) {
    memset(mx, 0, sizeof *mx);
    mx->redis_roundtrip = baton_metrics_histogram(
        r, "baton_redis_roundtrip_seconds",
        "Time of one Redis round trip (a pipeline or a single command), by component.", "component",
        FAST_BUCKETS);
    if (c->ingest) {
        mx->ingest_messages = baton_metrics_counter(
            r, "baton_ingest_messages_total",
            "Kafka messages ingested (valid and rejected), counted once their batch is in Redis.",
            "topic");
        mx->ingest_rejected = baton_metrics_counter(
            r, "baton_ingest_rejected_total",
            "Messages rejected by validation and sent to the dead-letter topic, by reason.",
            "reason");
        mx->ingest_enqueued =
            baton_metrics_counter(r, "baton_ingest_enqueued_total",
                                  "Tasks handled by enqueue.lua, by queue and result "
                                  "(queued, scheduled, expired, duplicate).",
                                  "queue,result");
        mx->ingest_batch = baton_metrics_histogram(
            r, "baton_ingest_batch_seconds",
            "Time to get one ingest batch into Redis, from parsing to offsets stored "
            "(retries included).",
            NULL, FAST_BUCKETS);
        mx->ingest_paused = baton_metrics_gauge(
            r, "baton_ingest_paused",
            "1 while ingest holds its partitions paused (Redis error, memory pressure, or too "
            "many rejects waiting for the DLQ).",
            NULL);
        mx->ingest_dlq_pending = baton_metrics_gauge(
            r, "baton_ingest_dlq_pending",
            "Rejected messages not yet acknowledged by the DLQ topic; their offsets are not "
            "committed meanwhile.",
            NULL);
        mx->consumer_lag = baton_metrics_gauge(
            r, "baton_kafka_consumer_lag",
            "Messages behind the high watermark, per assigned partition (high watermark - "
            "position).",
            "topic,partition");
    }
    if (c->maintenance) {
        mx->maintenance_tasks = baton_metrics_counter(
            r, "baton_maintenance_tasks_total",
            "Tasks moved by maintenance, by queue and action (due, expired, reclaimed, dead).",
            "queue,action");
        mx->maintenance_queues = baton_metrics_gauge(
            r, "baton_maintenance_queues",
            "Known queues by state: active (ticked) or idle (empty for --maintenance-idle-ms, "
            "checked once a second).",
            "state");
        mx->queue_ready = baton_metrics_gauge(r, "baton_queue_ready",
                                              "Tasks ready to run, by queue and priority "
                                              "(sampled every 2 s).",
                                              "queue,priority");
        mx->queue_scheduled = baton_metrics_gauge(
            r, "baton_queue_scheduled",
            "Tasks waiting for their start time or a retry backoff (sampled).", "queue");
        mx->queue_running = baton_metrics_gauge(r, "baton_queue_running",
                                                "Tasks claimed by workers (sampled).", "queue");
        mx->queue_dead = baton_metrics_gauge(
            r, "baton_queue_dead", "Tasks out of attempts, in the dead set (sampled).", "queue");
    }
    if (c->history) {
        mx->history_backlog = baton_metrics_gauge(
            r, "baton_history_backlog_events",
            "Events waiting in Redis for the history writer (measured every second).", NULL);
        mx->history_batch = baton_metrics_histogram(
            r, "baton_history_batch_seconds",
            "Time to write one batch of events to PostgreSQL and acknowledge it in Redis.", NULL,
            FAST_BUCKETS);
        mx->history_written = baton_metrics_counter(
            r, "baton_history_events_written_total",
            "Events written to PostgreSQL by this scheduler's history writer.", NULL);
        mx->history_takeovers = baton_metrics_counter(
            r, "baton_history_takeovers_total",
            "Events this writer took over: left pending by another writer (pending) or lost "
            "by the consumer group (lost).",
            "reason");
        mx->history_set_aside = baton_metrics_counter(
            r, "baton_history_set_aside_total",
            "Stream entries PostgreSQL refused (SQLSTATE class 22, 23 or 54), written raw to "
            "baton.history_set_aside instead.",
            "class");
    }
}

/* What /readyz checks, with connections of its own. */
struct readiness {
    const struct scheduler_config *config;
    pthread_mutex_t lock; /* guards redis: probes may run at once */
    baton_redis_t *redis; /* the probe's connection, owned; NULL until needed */
};

/*
 * Ready when Redis answers PING, Kafka answers a metadata request (ingest
 * on) and PostgreSQL accepts connections (history writer on); each check
 * is bounded by PROBE_TIMEOUT_MS.
 * @locality an HTTP server thread
 */
static int scheduler_ready(void *ctx, char *why, size_t why_size) {
    struct readiness *rd = ctx;
    const struct scheduler_config *c = rd->config;
    char errstr[512];
    pthread_mutex_lock(&rd->lock);
    baton_err_t err =
        baton_redis_probe(&rd->redis, c->redis_url, PROBE_TIMEOUT_MS, errstr, sizeof errstr);
    pthread_mutex_unlock(&rd->lock);
    if (err) {
        snprintf(why, why_size, "redis: %s", errstr);
        return 0;
    }
    if (c->ingest && !ingest_kafka_ready(PROBE_TIMEOUT_MS, why, why_size))
        return 0;
    if (c->history) {
        const char *keys[] = {"dbname", "connect_timeout", NULL};
        const char *values[] = {c->pg_dsn, "1", NULL};
        if (PQpingParams(keys, values, 1) != PQPING_OK) {
            snprintf(why, why_size, "postgresql: not accepting connections");
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    struct scheduler_config config = {0};
    char errstr[1024];
    int rc = baton_config_start(
        "baton-scheduler", "baton-scheduler [options]",
        "Consumes tasks from Kafka into Redis queues and runs the maintenance loops (due tasks, "
        "deadlines, expired leases).",
        options, OPTION_COUNT, &config, argc, argv, &config.log_level);
    if (rc >= 0)
        return rc;
    baton_err_t err = baton_redis_durability_configure(config.redis_durability, "scheduler", errstr,
                                                       sizeof errstr);
    if (!err)
        err = ingest_check_config(&config, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "baton-scheduler: %s\n", errstr);
        baton_config_free(options, OPTION_COUNT, &config);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Signals go to the main thread only: threads inherit the blocked mask,
     * the main thread restores it (or waits for them in sigsuspend). */
    sigset_t stop_signals, unblocked;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &unblocked);

    rc = 0;
    maintenance_t *maintenance = NULL;
    history_t *history = NULL;
    baton_http_t *http = NULL;
    struct scheduler_metrics metrics;
    baton_metrics_t *registry = baton_metrics_new();
    struct readiness readiness = {&config, PTHREAD_MUTEX_INITIALIZER, NULL};
    config.metrics = &metrics;
    if (!registry)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_NOMEM, "out of memory");
    else {
        baton_metrics_set_label_values(registry, (size_t)config.metrics_label_values);
        register_metrics(registry, &config, &metrics);
        baton_metric_set(baton_metrics_gauge(registry, "baton_redis_durability_relaxed",
                                             BATON_REDIS_DURABILITY_METRIC_HELP, NULL),
                         NULL, baton_redis_durability == BATON_REDIS_DURABILITY_RELAXED);
    }
    /* Up before anything else, so /healthz answers during start-up; its
     * threads inherit the blocked stop signals. */
    if (!err && config.metrics_port > 0) {
        struct baton_http_config http_config = {config.metrics_bind,
                                                (int)config.metrics_port,
                                                registry,
                                                scheduler_ready,
                                                &readiness,
                                                {0}};
        err = baton_http_start(&http_config, &http, errstr, sizeof errstr);
        if (err == BATON_ERR_CONFIG)
            rc = 2;
    }
    if (!err)
        err = check_redis(&config, &rc, errstr, sizeof errstr);
    if (!err && config.history && (!config.pg_dsn || !*config.pg_dsn))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "the history writer needs --pg-dsn (or BATON_PG_DSN); "
                           "--history=false runs without it");
    if (!err && config.history)
        err = history_start(&config, &history, errstr, sizeof errstr);
    if (!err && config.maintenance)
        err = maintenance_start(&config, &maintenance, errstr, sizeof errstr);
    if (!err) {
        BATON_INFO("scheduler", "started (ingest %s, maintenance %s, history %s)",
                   config.ingest ? "on" : "off", config.maintenance ? "on" : "off",
                   config.history ? "on" : "off");
        if (config.ingest) {
            pthread_sigmask(SIG_SETMASK, &unblocked, NULL);
            err = ingest_run(&config, errstr, sizeof errstr);
        } else {
            while (!scheduler_stop)
                sigsuspend(&unblocked);
        }
    }
    if (err) {
        fprintf(stderr, "baton-scheduler: %s\n", errstr);
        BATON_ERROR("scheduler", "%s", errstr);
        rc = rc ? rc : 1;
    }
    maintenance_stop(maintenance);
    history_stop(history);
    baton_http_stop(http);
    baton_redis_destroy(readiness.redis);
    baton_metrics_destroy(registry);
    BATON_INFO("scheduler", "stopped");
    baton_config_free(options, OPTION_COUNT, &config);
    return rc;
}
