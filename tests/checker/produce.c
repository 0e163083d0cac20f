/*
 * produce.c - `baton-check produce`: a numbered workload whose acknowledged
 * ids are written down as they are acknowledged.
 *
 * The fault scenarios need to know exactly which tasks the system owes
 * them: guarantee 1 covers a task once Kafka acknowledged it, not one that
 * was merely handed to a client. So this publishes COUNT tasks with the ids
 * <prefix>-1 .. <prefix>-COUNT through the libbaton producer (idempotent,
 * acks=all, key = queue) and appends each id to the --acked file the moment
 * its delivery report says BATON_OK. Each line goes out with one write(2)
 * on an O_APPEND descriptor, never through a stdio buffer, so a run killed
 * at any instant leaves a file of whole lines that names only acknowledged
 * tasks, and several runs (different --id-prefix) may append to one file.
 *
 * --rate paces submissions evenly on the monotonic clock (task i is due at
 * start + (i-1)/rate s); the wait is spent serving delivery reports. The
 * last line on stdout is {"submitted":N,"acked":A,"failed":F}.
 *
 * Exit status: 0 every task acknowledged; 1 some were not (each is named on
 * stderr) or the run was interrupted; 2 usage error, unwritable --acked
 * file or a producer that cannot be created.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checker.h"
#include "config.h"
#include "log.h"
#include "producer.h"
#include "task.h"
#include "timeutil.h"

#define PROG CHECK_PROG " produce"
/* Longest wait in one poll while pacing: a stop signal is noticed this fast. */
#define PACE_POLL_MAX_MS 100
/* Failures named individually on stderr before they are only counted. */
#define FAILURES_NAMED_MAX 50

struct produce_config {
    /* Where to publish: flag or environment. */
    char *kafka_brokers;
    char *kafka_config;
    char *topic;
    int64_t delivery_timeout_ms;
    char *log_level;
    /* The workload: flags only. */
    char *queue;
    char *type;
    char *payload;
    int64_t count;
    double rate;
    int64_t max_attempts;
    int64_t timeout_ms;
    int64_t priority;
    char *id_prefix;
    char *acked;
};

#define CFG(field) offsetof(struct produce_config, field)
static const struct baton_opt options[] = {
    {"kafka-brokers", BATON_OPT_STRING | BATON_OPT_REQUIRED, NULL,
     "Kafka bootstrap servers (host:port,...)", CFG(kafka_brokers), 0, 0},
    {"kafka-config", BATON_OPT_STRING, "", "extra librdkafka properties, k=v,k=v",
     CFG(kafka_config), 0, 0},
    {"topic", BATON_OPT_STRING, BATON_PRODUCER_DEFAULT_TOPIC, "topic to publish tasks to",
     CFG(topic), 0, 0},
    {"delivery-timeout-ms", BATON_OPT_INT, "60000",
     "a task not acknowledged after this long counts as failed (ms)", CFG(delivery_timeout_ms), 1,
     2147483647},
    {"log-level", BATON_OPT_STRING, "warn",
     "JSON log lines on stderr: debug, info, warn, error, off", CFG(log_level), 0, 0},
    BATON_OPT_SECTION("the run (flags only, no environment variable)"),
    {"queue", BATON_OPT_STRING | BATON_OPT_NO_ENV | BATON_OPT_REQUIRED, NULL, "queue of every task",
     CFG(queue), 0, 0},
    {"type", BATON_OPT_STRING | BATON_OPT_NO_ENV | BATON_OPT_REQUIRED, NULL,
     "handler name of every task", CFG(type), 0, 0},
    {"payload", BATON_OPT_STRING | BATON_OPT_NO_ENV, "null",
     "payload of every task, any JSON value", CFG(payload), 0, 0},
    {"count", BATON_OPT_INT | BATON_OPT_NO_ENV, "1000",
     "number of tasks: ids <prefix>-1 .. <prefix>-COUNT", CFG(count), 1, 100000000},
    {"rate", BATON_OPT_DOUBLE | BATON_OPT_NO_ENV, "0",
     "tasks per second, evenly paced; 0 = as fast as possible", CFG(rate), 0, 1e9},
    {"max-attempts", BATON_OPT_INT | BATON_OPT_NO_ENV, "3", "max_attempts of every task",
     CFG(max_attempts), 1, 2147483647},
    {"timeout-ms", BATON_OPT_INT | BATON_OPT_NO_ENV, "300000", "timeout_ms of every task",
     CFG(timeout_ms), 1, 9007199254740991.0},
    {"priority", BATON_OPT_INT | BATON_OPT_NO_ENV, "5", "priority of every task, 0-9",
     CFG(priority), 0, 9},
    {"id-prefix", BATON_OPT_STRING | BATON_OPT_NO_ENV, "t", "task ids are <prefix>-<n>",
     CFG(id_prefix), 0, 0},
    {"acked", BATON_OPT_STRING | BATON_OPT_NO_ENV | BATON_OPT_REQUIRED, NULL,
     "append each acknowledged id to this file, one per line", CFG(acked), 0, 0},
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

static const char usage_line[] =
    PROG " --kafka-brokers B --queue Q --type T --acked FILE [options]";
static const char summary[] =
    "Publishes COUNT tasks with ids <prefix>-1..COUNT through the libbaton producer\n"
    "(idempotent, acks=all, key = queue) and appends each id whose delivery was\n"
    "acknowledged to --acked as the report arrives. Ends with one JSON line on stdout:\n"
    "{\"submitted\":N,\"acked\":A,\"failed\":F}. Exit status: 0 all acknowledged, 1 some\n"
    "not (named on stderr) or interrupted, 2 usage error.";

/* What the delivery callback updates. @locality the main thread only: every
 * report is served from inside baton_submit/poll/flush/destroy there. */
struct produce_run {
    int acked_fd;      /* O_APPEND descriptor of --acked; owned */
    int64_t submitted; /* accepted by baton_submit(): a report follows */
    int64_t acked;     /* reports with BATON_OK, each written to acked_fd */
    int64_t failed;    /* reports with an error, plus refused submits */
    int64_t refused;   /* submits baton_submit() refused (no report) */
    int write_failed;  /* 1: an acknowledged id could not be recorded */
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* Writes all of buf to fd, retrying short writes and EINTR. 0 or -1. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void note_failure(struct produce_run *run, const char *id, const char *why) {
    run->failed++;
    if (run->failed <= FAILURES_NAMED_MAX)
        fprintf(stderr, PROG ": task %s not delivered: %s\n", id, why);
    else if (run->failed == FAILURES_NAMED_MAX + 1)
        fprintf(stderr, PROG ": more failures follow, only counted\n");
}

/* @locality the main thread, inside baton_submit/poll/flush/destroy. */
static void on_delivery(const struct baton_delivery *report, void *opaque) {
    struct produce_run *run = opaque;
    if (report->err != BATON_OK) {
        note_failure(run, report->task_id, report->errstr);
        return;
    }
    /* One write per line: a line is either wholly in the file or absent. */
    char line[BATON_TASK_ID_MAX + 2];
    int len = snprintf(line, sizeof line, "%s\n", report->task_id);
    if (len < 0 || (size_t)len >= sizeof line || write_all(run->acked_fd, line, (size_t)len)) {
        if (!run->write_failed)
            fprintf(stderr, PROG ": cannot record acknowledged id %s: %s\n", report->task_id,
                    strerror(errno));
        run->write_failed = 1;
    }
    run->acked++;
}

/* Builds the template task from the flags; its id is replaced per task.
 * Returns NULL with the reason in errstr. Caller frees with
 * baton_task_destroy(). */
static struct baton_task *template_task(const struct produce_config *c, char *errstr,
                                        size_t errstr_size) {
    json_error_t jerr;
    json_t *payload = json_loads(c->payload, JSON_DECODE_ANY, &jerr);
    if (!payload) {
        snprintf(errstr, errstr_size, "--payload is not JSON: %s", jerr.text);
        return NULL;
    }
    struct baton_task *task = baton_task_new(c->type);
    char *queue = strdup(c->queue);
    if (!task || !queue) {
        json_decref(payload);
        baton_task_destroy(task);
        free(queue);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    free(task->queue);
    task->queue = queue;
    json_decref(task->payload);
    task->payload = payload;
    task->priority = (int)c->priority;
    task->max_attempts = (int)c->max_attempts;
    task->timeout_ms = c->timeout_ms;
    return task;
}

/* Sets task->id to "<prefix>-<n>". BATON_ERR_NOMEM or BATON_OK. */
static baton_err_t set_id(struct baton_task *task, const char *prefix, int64_t n) {
    char id[BATON_TASK_ID_MAX + 32];
    snprintf(id, sizeof id, "%s-%lld", prefix, (long long)n);
    char *copy = strdup(id);
    if (!copy)
        return BATON_ERR_NOMEM;
    free(task->id);
    task->id = copy;
    return BATON_OK;
}

/* Waits until the monotonic instant due_ms, serving delivery reports. */
static void pace_until(baton_producer_t *producer, int64_t due_ms) {
    for (;;) {
        int64_t left = due_ms - baton_time_mono_ms();
        if (left <= 0 || stop_requested)
            return;
        baton_producer_poll(producer, left < PACE_POLL_MAX_MS ? (int)left : PACE_POLL_MAX_MS);
    }
}

/* Parses the command line into *c. Returns -1 to go on, else the exit status. */
static int parse_flags(int argc, char **argv, struct produce_config *c) {
    char errstr[512];
    baton_err_t err = check_parse(options, OPTION_COUNT, c, argc, argv, usage_line, summary, errstr,
                                  sizeof errstr);
    if (err == BATON_ERR_HELP)
        return CHECK_EXIT_OK;
    if (!err && baton_log_level_parse(c->log_level, &baton_log_threshold))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--log-level: unknown level '%s'", c->log_level);
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return CHECK_EXIT_USAGE;
    }
    return -1;
}

int check_produce_main(int argc, char **argv) {
    struct produce_config config;
    memset(&config, 0, sizeof config);
    int rc = parse_flags(argc, argv, &config);
    if (rc >= 0) {
        baton_config_free(options, OPTION_COUNT, &config);
        return rc;
    }

    char errstr[1024];
    struct produce_run run = {.acked_fd = -1};
    baton_producer_t *producer = NULL;
    struct baton_task *task = template_task(&config, errstr, sizeof errstr);
    if (!task) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = CHECK_EXIT_USAGE;
        goto done;
    }
    /* Check the contract once, with the longest id, before anything is sent:
     * a bad --type or --queue is a usage error, not COUNT failed tasks. */
    struct baton_task_error terr;
    if (set_id(task, config.id_prefix, config.count) ||
        baton_task_validate(task, NULL, &terr) != BATON_OK) {
        fprintf(stderr, PROG ": the tasks would be rejected: %s: %s\n",
                baton_task_reason_str(terr.reason), terr.detail);
        rc = CHECK_EXIT_USAGE;
        goto done;
    }
    run.acked_fd = open(config.acked, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (run.acked_fd < 0) {
        fprintf(stderr, PROG ": open %s: %s\n", config.acked, strerror(errno));
        rc = CHECK_EXIT_USAGE;
        goto done;
    }
    struct baton_producer_config pconf = {
        .kafka_brokers = config.kafka_brokers,
        .kafka_config = config.kafka_config,
        .topic = config.topic,
        .delivery_timeout_ms = config.delivery_timeout_ms,
        .on_delivery = on_delivery,
        .opaque = &run,
    };
    producer = baton_producer_new(&pconf, errstr, sizeof errstr);
    if (!producer) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = CHECK_EXIT_USAGE;
        goto done;
    }

    /* A stop signal ends submitting; what was sent still gets its report
     * (and its line). A second signal kills (SA_RESETHAND). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int64_t start_ms = baton_time_mono_ms();
    for (int64_t n = 1; n <= config.count && !stop_requested; n++) {
        if (config.rate > 0)
            pace_until(producer, start_ms + (int64_t)((double)(n - 1) * 1000.0 / config.rate));
        if (stop_requested)
            break;
        if (set_id(task, config.id_prefix, n)) {
            fprintf(stderr, PROG ": out of memory\n");
            break;
        }
        baton_err_t err = baton_submit(producer, task, NULL, NULL, errstr, sizeof errstr);
        if (err != BATON_OK) {
            /* No report follows. The producer refuses only when it is
             * broken for good, so stop rather than fail every task. */
            note_failure(&run, task->id, errstr);
            run.refused++;
            break;
        }
        run.submitted++;
        baton_producer_poll(producer, 0);
    }
    if (baton_producer_flush(producer, -1) != BATON_OK)
        fprintf(stderr, PROG ": %zu reports still outstanding\n", baton_producer_pending(producer));
    /* Destroy serves any report still outstanding (as failed), so the
     * figures below are final. */
    baton_producer_destroy(producer);
    producer = NULL;

    int64_t not_sent = config.count - run.submitted - run.refused;
    if (not_sent > 0)
        fprintf(stderr, PROG ": %lld tasks not sent%s\n", (long long)not_sent,
                stop_requested ? " (interrupted)" : "");
    if (run.failed > FAILURES_NAMED_MAX)
        fprintf(stderr, PROG ": %lld tasks not delivered in all\n", (long long)run.failed);
    printf("{\"submitted\":%lld,\"acked\":%lld,\"failed\":%lld}\n", (long long)run.submitted,
           (long long)run.acked, (long long)run.failed);
    fflush(stdout);
    if (run.write_failed)
        rc = CHECK_EXIT_USAGE;
    else
        rc = run.acked == config.count ? CHECK_EXIT_OK : CHECK_EXIT_FAILED;

done:
    baton_producer_destroy(producer);
    if (run.acked_fd >= 0)
        close(run.acked_fd);
    baton_task_destroy(task);
    baton_config_free(options, OPTION_COUNT, &config);
    return rc;
}
