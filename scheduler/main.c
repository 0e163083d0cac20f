/*
 * main.c - baton-scheduler: parse config, check Redis, run ingest and the
 * maintenance thread, stop in order on SIGTERM/SIGINT (stop intake, finish
 * the batch in hand, commit, stop maintenance, close).
 */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "redis.h"
#include "scheduler.h"

volatile sig_atomic_t scheduler_stop;

static void on_signal(int sig) {
    (void)sig;
    scheduler_stop = 1;
}

#define CFG(field) offsetof(struct scheduler_config, field)
static const struct baton_opt options[] = {
    {"kafka-brokers", BATON_OPT_STRING, NULL, "Kafka bootstrap servers (host:port,...)",
     CFG(kafka_brokers), 0, 0},
    {"kafka-config", BATON_OPT_STRING, "", "extra librdkafka properties, k=v,k=v",
     CFG(kafka_config), 0, 0},
    {"topic", BATON_OPT_STRING, "baton.tasks", "topic to consume tasks from", CFG(topic), 0, 0},
    {"dlq-topic", BATON_OPT_STRING, "baton.tasks.dlq", "dead-letter topic for rejected messages",
     CFG(dlq_topic), 0, 0},
    {"group-id", BATON_OPT_STRING, "baton-scheduler", "Kafka consumer group", CFG(group_id), 0, 0},
    {"redis-url", BATON_OPT_STRING, "redis://127.0.0.1:6379/0", "Redis URL", CFG(redis_url), 0, 0},
    {"redis-timeout-ms", BATON_OPT_INT, "5000", "Redis connect and command timeout (ms)",
     CFG(redis_timeout_ms), 1, 600000},
    {"batch-size", BATON_OPT_INT, "1000", "most messages per ingest batch", CFG(batch_size), 1,
     100000},
    {"batch-wait-ms", BATON_OPT_INT, "20", "longest wait to fill an ingest batch (ms)",
     CFG(batch_wait_ms), 1, 60000},
    {"max-payload-bytes", BATON_OPT_INT, "1048576", "payload size limit (compact JSON bytes)",
     CFG(max_payload_bytes), 1, 268435456},
    {"memory-pause-fraction", BATON_OPT_DOUBLE, "0.9",
     "pause ingest while Redis used_memory / maxmemory is above this", CFG(memory_pause_fraction),
     0.01, 1.0},
    {"retention-ms", BATON_OPT_INT, "604800000",
     "how long finished tasks stay in Redis (ms; history keeps them for good)", CFG(retention_ms),
     1000, 31536000000.0},
    {"maintenance-interval-ms", BATON_OPT_INT, "100",
     "maintenance tick: due tasks, deadlines, expired leases (ms)", CFG(maintenance_interval_ms),
     1, 60000},
    {"maintenance-batch", BATON_OPT_INT, "1000", "most tasks moved per maintenance script call",
     CFG(maintenance_batch), 1, 100000},
    {"pg-dsn", BATON_OPT_STRING, NULL, "PostgreSQL connection string, for the history writer",
     CFG(pg_dsn), 0, 0},
    {"history", BATON_OPT_BOOL, "true", "run the history writer (needs --pg-dsn)", CFG(history),
     0, 0},
    {"history-batch", BATON_OPT_INT, "2000", "most events per PostgreSQL transaction",
     CFG(history_batch), 1, 100000},
    {"history-claim-idle-ms", BATON_OPT_INT, "30000",
     "take over events another writer left unacknowledged this long", CFG(history_claim_idle_ms),
     100, 86400000},
    {"history-payload", BATON_OPT_BOOL, "true", "keep task payloads in history",
     CFG(history_payload), 0, 0},
    {"ingest", BATON_OPT_BOOL, "true", "run Kafka ingest", CFG(ingest), 0, 0},
    {"maintenance", BATON_OPT_BOOL, "true", "run the maintenance loop", CFG(maintenance), 0, 0},
    {"log-level", BATON_OPT_STRING, "info", "debug, info, warn, error or off", CFG(log_level), 0,
     0},
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

/* Refuses an evicting Redis before anything starts (guarantee 9). */
static baton_err_t check_redis(const struct scheduler_config *config, char *errstr,
                               size_t errstr_size) {
    baton_redis_t *redis = NULL;
    baton_err_t err = baton_redis_connect(config->redis_url, (int)config->redis_timeout_ms,
                                          &redis, errstr, errstr_size);
    if (!err)
        err = baton_redis_check_policy(redis, errstr, errstr_size);
    baton_redis_destroy(redis);
    return err;
}

int main(int argc, char **argv) {
    struct scheduler_config config;
    char errstr[1024];
    int first_arg = argc;
    baton_err_t err = baton_config_parse(options, OPTION_COUNT, &config, argc, argv, &first_arg,
                                         errstr, sizeof errstr);
    if (err == BATON_ERR_HELP) {
        baton_config_help(stdout, "baton-scheduler [options]",
                          "Consumes tasks from Kafka into Redis queues and runs the maintenance "
                          "loops (due tasks, deadlines, expired leases).",
                          options, OPTION_COUNT);
        baton_config_free(options, OPTION_COUNT, &config);
        return 0;
    }
    if (!err && first_arg < argc)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG, "unexpected argument '%s'",
                           argv[first_arg]);
    if (!err && baton_log_level_parse(config.log_level, &baton_log_threshold))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--log-level: unknown level '%s'", config.log_level);
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

    int rc = 0;
    maintenance_t *maintenance = NULL;
    history_t *history = NULL;
    err = check_redis(&config, errstr, sizeof errstr);
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
        rc = 1;
    }
    maintenance_stop(maintenance);
    history_stop(history);
    BATON_INFO("scheduler", "stopped");
    baton_config_free(options, OPTION_COUNT, &config);
    return rc;
}
