/*
 * bench.c - baton-bench: end-to-end throughput, latency and cost.
 *
 * Against a running local stack (dev/stack.sh; addresses from the
 * BATON_* environment or flags) it:
 *   1. starts its own baton-scheduler (history writer on, or off with
 *      --history false) and N workers, unless --external says they
 *      already run;
 *   2. warms up: one task per Kafka partition the run uses, end to end, so
 *      the consumer group has joined and holds a position on each of them
 *      before the clock starts;
 *   3. memory phase (--memory-tasks > 0, history on): enqueues tasks to a
 *      queue no worker serves and measures Redis used_memory per queued
 *      task;
 *   4. main phase: publishes --tasks tasks with the producer library, as
 *      fast as possible or at --rate per second, spread evenly over the
 *      topic's partitions (see "Kafka" below), and waits until every one is
 *      finished: in PostgreSQL's history (history on; it is written from
 *      Redis's transition events, so finished in history means finished in
 *      Redis), or in Redis itself (history off: every task's hash says
 *      succeeded);
 *   5. checks the run lost nothing: every published task finished exactly
 *      once; a task that can no longer arrive (Kafka dropped its message
 *      before the scheduler read it) fails the run, with the reason;
 *   6. reports publish rate, end-to-end rate (first publish -> last task
 *      seen finished), submit->start and submit->finish percentiles
 *      (publish time recorded here, start/finish times from history or
 *      from the task hashes; one machine, one clock), CPU seconds and peak
 *      RSS per process, CPU microseconds per task, Redis bytes per queued
 *      task, PostgreSQL bytes per task, and the settings; as a table and,
 *      with --json FILE, as JSON holding every figure of the table.
 * The figures are measurements, never pass/fail: see docs/performance.md.
 *
 * Kafka. The local stack's embedded Kafka (librdkafka's mock cluster, see
 * dev/kafka_mock.c) keeps at most 5 MiB or 100,000 message sets per
 * partition and silently drops the oldest beyond that; a consumer that
 * lags by more then loses messages. Tasks are keyed by queue by default,
 * so a few queues would pile a whole burst onto a few partitions (two
 * queues may even hash to one). The main phase therefore gives each task a
 * key chosen to land on partition (task number mod P) with the producer's
 * partitioner (consistent, CRC32 of the key), P = every partition of the
 * topic unless --kafka-partitions says fewer: each partition gets 1/P of
 * the burst. Before a throughput run the bench computes the bytes one task
 * takes in the topic and refuses a run whose share per partition would not
 * fit in --kafka-partition-bytes (default the mock's 5 MiB, with a 10 %
 * margin). While it waits it watches each partition's log start offset
 * against the scheduler's committed offset; when progress stalls it looks
 * for tasks that never reached Redis and whose message is below the log
 * start: those are lost, and the run fails saying so.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"
#include "procstat.h"
#include "producer.h"
#include "queue.h"
#include "redis.h"
#include "timeutil.h"

extern char **environ;

/* What the embedded Kafka keeps per partition (dev/kafka_mock.c). */
#define MOCK_PARTITION_BYTES "5242880"
#define MOCK_PARTITION_MSGSETS 100000
/* Share of the retention a planned burst may fill: batch headers and the
 * warm-up's messages need some room. */
#define RETENTION_MARGIN 0.9
/* A Kafka v2 record's own fields around key and value (length, attributes,
 * timestamp and offset deltas, key and value lengths, header count: varints,
 * at most 21 bytes at these sizes), rounded up. */
#define RECORD_OVERHEAD_BYTES 24
/* Tasks per Redis pipeline when the bench reads task hashes. */
#define REDIS_CHUNK 1000

struct bench_config {
    char *kafka_brokers, *kafka_config, *redis_url, *pg_dsn, *stack_dir, *bin_dir;
    char *kafka_config_file, *redis_durability, *topic, *group_id, *history_text;
    int64_t tasks, workers, concurrency, memory_tasks, payload_bytes, timeout_s, stall_s;
    int64_t kafka_partitions, kafka_partition_bytes;
    double rate;
    char *type, *priorities, *queues, *json_path, *log_level;
    int external, test_pause_scheduler;
};

#define CFG(f) offsetof(struct bench_config, f)
static const struct baton_opt options[] = {
    BATON_OPT_SECTION("The stack (required ones: source the stack's env file)"),
    {"kafka-brokers", BATON_OPT_STRING | BATON_OPT_REQUIRED, NULL, "Kafka bootstrap servers",
     CFG(kafka_brokers), 0, 0},
    {"kafka-config", BATON_OPT_STRING, "fetch.wait.max.ms=5",
     "extra librdkafka properties for the scheduler and the producer", CFG(kafka_config), 0, 0},
    {"kafka-config-file", BATON_OPT_STRING, "",
     "file of librdkafka properties (name=value lines) for the scheduler and the producer",
     CFG(kafka_config_file), 0, 0},
    {"topic", BATON_OPT_STRING | BATON_OPT_NO_ENV, "baton.tasks",
     "topic the tasks go through (the scheduler started here reads it)", CFG(topic), 0, 0},
    {"group-id", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL,
     "consumer group of the scheduler, whose committed offsets are watched (default: a group "
     "of this run's own; with --external, baton-scheduler)",
     CFG(group_id), 0, 0},
    {"kafka-partitions", BATON_OPT_INT | BATON_OPT_NO_ENV, "0",
     "spread the main phase over this many partitions of the topic (0: all of them)",
     CFG(kafka_partitions), 0, 100000},
    {"kafka-partition-bytes", BATON_OPT_INT | BATON_OPT_NO_ENV, MOCK_PARTITION_BYTES,
     "bytes the topic keeps per partition (the embedded Kafka's 5 MiB): a throughput run whose "
     "share per partition would not fit is refused; 0: no limit (a Kafka with real retention)",
     CFG(kafka_partition_bytes), 0, 1099511627776.0},
    {"redis-durability", BATON_OPT_STRING, "strict",
     "passed to the scheduler and the workers: relaxed to measure a Redis without "
     "appendfsync always",
     CFG(redis_durability), 0, 0},
    {"redis-url", BATON_OPT_STRING | BATON_OPT_REQUIRED, NULL, "Redis URL", CFG(redis_url), 0, 0},
    {"pg-dsn", BATON_OPT_STRING | BATON_OPT_REQUIRED, NULL,
     "PostgreSQL DSN (history must be migrated)", CFG(pg_dsn), 0, 0},
    {"stack-dir", BATON_OPT_STRING, NULL,
     "local stack directory, for the pids of Redis, PostgreSQL and Kafka", CFG(stack_dir), 0, 0},
    {"bin-dir", BATON_OPT_STRING, NULL,
     "build directory holding scheduler/baton-scheduler and worker/baton-worker "
     "(default: next to this binary)",
     CFG(bin_dir), 0, 0},
    BATON_OPT_SECTION("The workload"),
    {"tasks", BATON_OPT_INT, "20000", "tasks in the main phase", CFG(tasks), 1, 10000000},
    {"workers", BATON_OPT_INT, "2", "worker processes to start", CFG(workers), 0, 64},
    {"concurrency", BATON_OPT_INT, "16", "concurrency of each worker", CFG(concurrency), 1, 1024},
    {"rate", BATON_OPT_DOUBLE, "0",
     "latency mode: publish this many tasks/s (0: as fast as "
     "possible)",
     CFG(rate), 0, 1000000},
    {"type", BATON_OPT_STRING, "noop", "task type", CFG(type), 0, 0},
    {"payload-bytes", BATON_OPT_INT, "0", "payload: a JSON string of this many bytes",
     CFG(payload_bytes), 0, 1048576},
    {"priorities", BATON_OPT_STRING, "5", "priorities to cycle through, e.g. 0,5,9",
     CFG(priorities), 0, 0},
    {"queues", BATON_OPT_STRING, "bench", "queues to spread tasks over, e.g. a,b", CFG(queues), 0,
     0},
    {"history", BATON_OPT_STRING | BATON_OPT_NO_ENV, "true",
     "true: the scheduler runs its history writer and a task counts as finished once its row "
     "is in PostgreSQL; false: no history writer, a task counts as finished once its Redis "
     "hash says succeeded (what full history costs is the difference)",
     CFG(history_text), 0, 0},
    {"memory-tasks", BATON_OPT_INT, "10000",
     "tasks of the Redis memory phase (0: skip the phase; skipped with --history false)",
     CFG(memory_tasks), 0, 1000000},
    {"timeout-s", BATON_OPT_INT, "900", "give up waiting after this long", CFG(timeout_s), 1,
     86400},
    {"stall-s", BATON_OPT_INT | BATON_OPT_NO_ENV, "30",
     "when no task has finished for this long, look for tasks Kafka dropped before the "
     "scheduler read them (and fail if there are any)",
     CFG(stall_s), 1, 86400},
    {"external", BATON_OPT_BOOL, "false", "use a scheduler and workers that already run",
     CFG(external), 0, 0},
    {"json", BATON_OPT_STRING, NULL, "also write the figures as JSON to this file", CFG(json_path),
     0, 0},
    {"log-level", BATON_OPT_STRING, "warn", "log level of this program", CFG(log_level), 0, 0},
    BATON_OPT_SECTION("Test hooks"),
    {"test-pause-scheduler", BATON_OPT_BOOL | BATON_OPT_NO_ENV, "false",
     "stop the scheduler (SIGSTOP) while the main phase publishes and let it go on (SIGCONT) "
     "after, so that the backlog meets the topic's retention: checks the loss detection",
     CFG(test_pause_scheduler), 0, 0},
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

static volatile sig_atomic_t interrupted; /* the signal number */
static void on_signal(int sig) {
    interrupted = sig;
}

static double wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* The processes this run started: stopped on every way out (die() exits). */
static pid_t started_pids[70];
static size_t nstarted;

static void stop_started(void) {
    for (size_t i = 0; i < nstarted; i++)
        if (started_pids[i] > 0) {
            kill(started_pids[i], SIGTERM);
            kill(started_pids[i], SIGCONT); /* a paused scheduler must see the TERM */
        }
    for (size_t i = 0; i < nstarted; i++)
        if (started_pids[i] > 0)
            waitpid(started_pids[i], NULL, 0);
    nstarted = 0;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "baton-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* ------------------------------------------------------------ processes */

struct child {
    char role[32]; /* "scheduler", "worker 1", ... */
    pid_t pid;
    struct proc_usage before;
};

/* Starts `argv` with stdout and stderr to `log_path`. */
static pid_t spawn_logged(char *const argv[], const char *log_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        die("cannot start %s: %s", argv[0], strerror(rc));
    started_pids[nstarted++] = pid;
    return pid;
}

/* ------------------------------------------------------------- services */

struct bench {
    struct bench_config *cfg;
    int history;   /* --history, parsed */
    char run[32];  /* unique per run: task id and queue prefix */
    char **queues; /* the main phase's queues, with the run suffix */
    size_t nqueues;
    int *priorities;
    size_t npriorities;
    baton_redis_t *redis;
    PGconn *pg;
    baton_producer_t *producer;
    uint64_t delivered, failed;
    char logdir[256];
    struct child children[66];
    size_t nchildren;

    /* Kafka: a consumer handle in the scheduler's group that never
     * subscribes, for the topic's metadata, log start offsets and the
     * group's committed offsets. */
    rd_kafka_t *kc;
    char group[160];
    int32_t topic_partitions; /* of the topic */
    int32_t nspread;          /* partitions the main phase uses: 0..nspread-1 */
    char **spread_keys;       /* spread_keys[p]: a key the partitioner maps to p */
    size_t task_bytes;        /* one main-phase task in the topic, estimated */
    int32_t *task_partition;  /* main phase, by task number: from its delivery report */
    int64_t *task_offset;
    int64_t *first_offset, *last_task; /* per partition: lowest offset, task of the highest */
    /* The watch: did a log start ever pass the group's committed offset? */
    int overtaken;
    int32_t overtaken_partition;
    int64_t overtaken_low, overtaken_committed;
};

static void on_delivery(const struct baton_delivery *report, void *opaque) {
    struct bench *b = opaque;
    if (report->err) {
        b->failed++;
        if (b->failed <= 5)
            fprintf(stderr, "baton-bench: task %s not delivered: %s\n", report->task_id,
                    report->errstr);
        return;
    }
    b->delivered++;
    if (report->msg_opaque && b->task_partition) {
        /* Main-phase tasks carry their number + 1. */
        size_t k = (size_t)((uintptr_t)report->msg_opaque - 1);
        b->task_partition[k] = report->partition;
        b->task_offset[k] = report->offset;
    }
}

static long long pg_long(struct bench *b, const char *sql, int nparams, const char *const *params) {
    PGresult *res = PQexecParams(b->pg, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die("PostgreSQL: %s", PQerrorMessage(b->pg));
    /* NOLINTNEXTLINE(cert-err34-c): PostgreSQL's text form of a bigint */
    long long v = PQgetisnull(res, 0, 0) ? 0 : atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static uint64_t redis_used_memory(struct bench *b) {
    uint64_t used, max;
    char errstr[512];
    if (baton_redis_memory(b->redis, &used, &max, errstr, sizeof errstr))
        die("%s", errstr);
    return used;
}

static long long redis_int(struct bench *b, int argc, const char **argv) {
    redisReply *reply;
    char errstr[512];
    if (baton_redis_command(b->redis, &reply, argc, argv, NULL, errstr, sizeof errstr))
        die("%s", errstr);
    long long v = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    freeReplyObject(reply);
    return v;
}

/* Appends one pipelined command; dies on a broken connection. */
static void redis_append(struct bench *b, int argc, const char **argv) {
    char errstr[512];
    if (baton_redis_append(b->redis, argc, argv, NULL, errstr, sizeof errstr))
        die("%s", errstr);
}

/* Reads the next pipelined reply (the caller frees it); dies on an error. */
static redisReply *redis_reply(struct bench *b) {
    redisReply *reply;
    char errstr[512];
    if (baton_redis_get_reply(b->redis, &reply, errstr, sizeof errstr))
        die("%s", errstr);
    if (reply->type == REDIS_REPLY_ERROR)
        die("Redis: %s", reply->str);
    return reply;
}

/* "{...}" of the queues list as a PostgreSQL text[] literal parameter. */
static void queues_array(struct bench *b, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "{");
    for (size_t i = 0; i < b->nqueues && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s\"%s\"", i ? "," : "", b->queues[i]);
    snprintf(buf + used, size > used ? size - used : 0, "}");
}

/* The id of main-phase task k. */
static void main_task_id(const struct bench *b, int64_t k, char *buf, size_t size) {
    snprintf(buf, size, "%s-t%" PRId64, b->run, k);
}

/* The Redis hash key of main-phase task k. */
static void main_task_key(const struct bench *b, int64_t k, char *buf) {
    char id[96];
    main_task_id(b, k, id, sizeof id);
    baton_task_key(buf, b->queues[(size_t)k % b->nqueues], id);
}

/* A task as the bench publishes it: caller destroys it. */
static struct baton_task *make_task(struct bench *b, const char *id, const char *queue,
                                    int priority, json_t *payload) {
    struct baton_task *t = baton_task_new(b->cfg->type);
    t->id = strdup(id);
    free(t->queue);
    t->queue = strdup(queue);
    t->priority = priority;
    json_decref(t->payload);
    t->payload = json_incref(payload);
    return t;
}

/* The payload of every task: a JSON string of --payload-bytes, or null. */
static json_t *make_payload(const struct bench *b) {
    if (b->cfg->payload_bytes <= 0)
        return json_null();
    char *text = malloc((size_t)b->cfg->payload_bytes + 1);
    memset(text, 'x', (size_t)b->cfg->payload_bytes);
    text[b->cfg->payload_bytes] = '\0';
    json_t *payload = json_string(text);
    free(text);
    return payload;
}

/* Publishes `count` tasks: ids "<run>-<prefix><n>", queue n mod nqueues,
 * partition key keys[n mod nkeys] (the queue when keys is NULL); records
 * publish times; with `numbered`, each delivery report carries n + 1. */
static void publish(struct bench *b, const char *prefix, const char *const *queues, size_t nqueues,
                    const char *const *keys, size_t nkeys, int64_t count, double rate,
                    double *published_ms, int numbered) {
    json_t *payload = make_payload(b);
    double start = wall_ms();
    char errstr[512];
    for (int64_t n = 0; n < count && !interrupted; n++) {
        if (rate > 0) {
            double due = start + (double)n * 1000.0 / rate;
            double now = wall_ms();
            if (due > now) {
                struct timespec ts = {(time_t)((due - now) / 1000),
                                      (long)(fmod(due - now, 1000.0) * 1e6)};
                nanosleep(&ts, NULL);
            }
        }
        char id[96];
        snprintf(id, sizeof id, "%s-%s%" PRId64, b->run, prefix, n);
        struct baton_task *t = make_task(b, id, queues[(size_t)n % nqueues],
                                         b->priorities[(size_t)n % b->npriorities], payload);
        if (published_ms)
            published_ms[n] = wall_ms();
        if (baton_submit(b->producer, t, keys ? keys[(size_t)n % nkeys] : NULL,
                         numbered ? (void *)(uintptr_t)(n + 1) : NULL, errstr, sizeof errstr))
            die("submit: %s", errstr);
        baton_task_destroy(t);
        if ((n & 1023) == 0)
            baton_producer_poll(b->producer, 0);
    }
    if (baton_producer_flush(b->producer, 60000))
        die("the producer could not flush within 60 s");
    json_decref(payload);
}

/* Draws the progress line when stderr is a terminal. */
static void progress(const char *what, long long done, long long total, double started_ms) {
    if (!isatty(2))
        return;
    int width = 30, filled = total ? (int)(width * done / total) : width;
    double secs = (wall_ms() - started_ms) / 1000.0;
    fprintf(stderr, "\r%-10s [%.*s%*s] %lld/%lld  %.1f s  ", what, filled,
            "##############################", width - filled, "", done, total, secs);
    if (done >= total)
        fprintf(stderr, "\n");
}

/* ---------------------------------------------------------------- Kafka */

/* Opens the watching handle and reads the topic's partition count. */
static void kafka_open(struct bench *b) {
    const struct bench_config *c = b->cfg;
    char errstr[512];
    /* Never subscribes, so it never joins the group: it only asks the
     * coordinator for the group's committed offsets. */
    struct baton_kafka_prop defaults[] = {{"group.id", b->group},
                                          {"enable.auto.commit", "false"},
                                          {"client.id", "baton-bench-watch"}};
    rd_kafka_conf_t *conf = baton_kafka_conf_new(c->kafka_brokers, defaults, 3, c->kafka_config,
                                                 c->kafka_config_file, errstr, sizeof errstr);
    if (!conf)
        die("%s", errstr);
    b->kc = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!b->kc) {
        rd_kafka_conf_destroy(conf);
        die("Kafka: %s", errstr);
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(b->kc, c->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    double until = wall_ms() + 30000;
    /* Right after the stack starts, metadata may not list the topic yet. */
    for (;;) {
        err = rd_kafka_metadata(b->kc, 0, rkt, &md, 5000);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
            break;
        if (!err) {
            err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
            rd_kafka_metadata_destroy(md);
            md = NULL;
        }
        if (wall_ms() > until || interrupted)
            die("Kafka: no metadata for topic %s: %s", c->topic, rd_kafka_err2str(err));
        usleep(200000);
    }
    b->topic_partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    b->nspread = c->kafka_partitions > 0 ? (int32_t)c->kafka_partitions : b->topic_partitions;
    if (b->nspread > b->topic_partitions)
        die("--kafka-partitions %d: topic %s has only %d partitions", (int)b->nspread, c->topic,
            (int)b->topic_partitions);
    /* One key per partition, found by asking the partitioner the producer
     * is told to use (partitioner=consistent_random: CRC32 of the key). */
    b->spread_keys = calloc((size_t)b->nspread, sizeof *b->spread_keys);
    int32_t found = 0;
    for (unsigned i = 0; found < b->nspread && i < 10000000; i++) {
        char key[32];
        int len = snprintf(key, sizeof key, "spread-%u", i);
        int32_t p = rd_kafka_msg_partitioner_consistent(NULL, key, (size_t)len, b->topic_partitions,
                                                        NULL, NULL);
        if (p < b->nspread && !b->spread_keys[p]) {
            b->spread_keys[p] = strdup(key);
            found++;
        }
    }
    if (found < b->nspread)
        die("found no partition key for every partition of %s", c->topic);
}

/* Log start offsets of partitions 0..nspread-1 into low[]; -1 where the
 * broker did not answer. */
static void kafka_low(struct bench *b, int64_t *low) {
    for (int32_t p = 0; p < b->nspread; p++) {
        int64_t lo = -1, hi = -1;
        if (rd_kafka_query_watermark_offsets(b->kc, b->cfg->topic, p, &lo, &hi, 5000))
            lo = -1;
        low[p] = lo;
    }
}

/* One look: does any partition's log start lie past the group's committed
 * offset there (or, before the group committed anything there, past the
 * run's first message)? Such messages were dropped before the scheduler
 * had committed them: lost unless it had already fetched them. Remembered
 * for the report. */
static void kafka_watch(struct bench *b) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(b->nspread);
    for (int32_t p = 0; p < b->nspread; p++)
        rd_kafka_topic_partition_list_add(list, b->cfg->topic, p);
    if (rd_kafka_committed(b->kc, list, 5000)) {
        rd_kafka_topic_partition_list_destroy(list);
        return; /* no answer this time; the next look asks again */
    }
    int64_t *low = malloc((size_t)b->nspread * sizeof *low);
    kafka_low(b, low);
    for (int32_t p = 0; p < b->nspread; p++) {
        int64_t committed = list->elems[p].err ? RD_KAFKA_OFFSET_INVALID : list->elems[p].offset;
        int64_t floor = committed >= 0 ? committed : b->first_offset[p];
        if (low[p] < 0 || floor < 0 || low[p] <= floor)
            continue;
        if (!b->overtaken || low[p] - floor > b->overtaken_low - b->overtaken_committed) {
            b->overtaken_partition = p;
            b->overtaken_low = low[p];
            b->overtaken_committed = floor;
        }
        b->overtaken = 1;
    }
    free(low);
    rd_kafka_topic_partition_list_destroy(list);
}

/* Bytes one main-phase task takes in the topic: its encoded value (the
 * longest id and queue of the run), its key and the record's own fields. */
static size_t task_bytes(struct bench *b) {
    size_t longest_queue = 0, longest_key = 0;
    for (size_t i = 0; i < b->nqueues; i++)
        if (strlen(b->queues[i]) > strlen(b->queues[longest_queue]))
            longest_queue = i;
    for (int32_t p = 0; p < b->nspread; p++)
        if (strlen(b->spread_keys[p]) > longest_key)
            longest_key = strlen(b->spread_keys[p]);
    char id[96];
    main_task_id(b, b->cfg->tasks - 1, id, sizeof id);
    json_t *payload = make_payload(b);
    struct baton_task *t = make_task(b, id, b->queues[longest_queue], 9, payload);
    size_t len = 0;
    char *value = baton_task_encode(t, &len);
    free(value);
    baton_task_destroy(t);
    json_decref(payload);
    return len + longest_key + RECORD_OVERHEAD_BYTES;
}

/* Refuses, before anything runs, a throughput burst whose share per
 * partition the topic would not keep. */
static void check_retention(struct bench *b) {
    const struct bench_config *c = b->cfg;
    b->task_bytes = task_bytes(b);
    if (c->kafka_partition_bytes <= 0 || c->rate > 0)
        return; /* a real Kafka, or a paced run whose backlog stays small */
    double budget = (double)c->kafka_partition_bytes * RETENTION_MARGIN;
    int64_t per_partition = (c->tasks + b->nspread - 1) / b->nspread;
    double need_bytes = (double)c->tasks * (double)b->task_bytes;
    int64_t need = (int64_t)ceil(need_bytes / budget);
    int64_t need_sets = (c->tasks + MOCK_PARTITION_MSGSETS - 1) / MOCK_PARTITION_MSGSETS;
    if (need_sets > need)
        need = need_sets;
    if ((double)per_partition * (double)b->task_bytes <= budget &&
        per_partition <= MOCK_PARTITION_MSGSETS)
        return;
    die("%" PRId64 " tasks of about %zu bytes each would put %.1f MiB into each of %d "
        "partitions of %s, but the topic keeps %.1f MiB per partition (--kafka-partition-bytes; "
        "the embedded Kafka silently drops older messages), and a burst the scheduler has not "
        "read yet must fit in %.0f%% of that: it needs at least %" PRId64 " partitions. A run "
        "that loses "
        "messages is not a result: publish fewer or smaller tasks, use a topic with more "
        "partitions (baton-kafka-mock --topic NAME:COUNT, then --topic NAME here), publish "
        "with --rate, or pass --kafka-partition-bytes 0 for a Kafka that keeps everything",
        c->tasks, b->task_bytes, (double)per_partition * (double)b->task_bytes / 1048576.0,
        (int)b->nspread, c->topic, (double)c->kafka_partition_bytes / 1048576.0,
        RETENTION_MARGIN * 100, need);
}

/* ------------------------------------------------------------ the phases */

static void start_services(struct bench *b, const char *self) {
    const struct bench_config *c = b->cfg;
    char bindir[512];
    if (c->bin_dir) {
        snprintf(bindir, sizeof bindir, "%s", c->bin_dir);
    } else {
        /* <build>/bench/baton-bench -> <build> */
        char exe[512];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
        if (n <= 0)
            snprintf(exe, sizeof exe, "%s", self);
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(bindir, sizeof bindir, "%s", exe);
    }
    char sched_bin[600], worker_bin[600], log[600], queues[1024] = "";
    snprintf(sched_bin, sizeof sched_bin, "%s/scheduler/baton-scheduler", bindir);
    snprintf(worker_bin, sizeof worker_bin, "%s/worker/baton-worker", bindir);
    for (size_t i = 0; i < b->nqueues; i++)
        snprintf(queues + strlen(queues), sizeof queues - strlen(queues), "%s%s", i ? "," : "",
                 b->queues[i]);
    char conc[24];
    snprintf(conc, sizeof conc, "%" PRId64, c->concurrency);

    snprintf(log, sizeof log, "%s/scheduler.log", b->logdir);
    /* A consumer group of its own that starts at the end of the topic: the
     * run reads only its own tasks, and no earlier member of a shared group
     * can hold up the join (warm_up() waits for the assignment). */
    char kconf[1024];
    snprintf(kconf, sizeof kconf, "%s%sauto.offset.reset=latest", c->kafka_config,
             *c->kafka_config ? "," : "");
    char *sargv[] = {sched_bin,
                     "--kafka-brokers",
                     c->kafka_brokers,
                     "--redis-url",
                     c->redis_url,
                     "--pg-dsn",
                     c->pg_dsn,
                     "--kafka-config",
                     kconf,
                     "--topic",
                     c->topic,
                     "--group-id",
                     b->group,
                     "--kafka-config-file",
                     c->kafka_config_file,
                     "--redis-durability",
                     c->redis_durability,
                     b->history ? "--history=true" : "--history=false",
                     "--log-level",
                     "warn",
                     NULL};
    b->children[b->nchildren++] = (struct child){"scheduler", spawn_logged(sargv, log), {0, 0, 0}};
    for (int64_t w = 0; w < c->workers; w++) {
        snprintf(log, sizeof log, "%s/worker%" PRId64 ".log", b->logdir, w + 1);
        char *wargv[] = {worker_bin,
                         "--redis-url",
                         c->redis_url,
                         "--queues",
                         queues,
                         "--concurrency",
                         conc,
                         "--redis-durability",
                         c->redis_durability,
                         "--log-level",
                         "warn",
                         NULL};
        struct child *child = &b->children[b->nchildren++];
        *child = (struct child){.pid = spawn_logged(wargv, log)};
        snprintf(child->role, sizeof child->role, "worker %" PRId64, w + 1);
    }
}

/* Dies when a process this bench started has exited: nothing would
 * finish, and its log says why. */
static void check_children(struct bench *b) {
    for (size_t i = 0; i < b->nchildren; i++) {
        int status;
        if (waitpid(b->children[i].pid, &status, WNOHANG) == b->children[i].pid) {
            for (size_t j = 0; j < nstarted; j++)
                if (started_pids[j] == b->children[i].pid)
                    started_pids[j] = 0; /* reaped: never signal the pid again */
            die("the %s exited (%s %d; log in %s)", b->children[i].role,
                WIFEXITED(status) ? "status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), b->logdir);
        }
    }
}

/* 1 when task `id` of `queue` is finished: its history row says so
 * (history on), or its Redis hash says succeeded (history off). */
static int task_finished(struct bench *b, const char *queue, const char *id) {
    if (b->history) {
        const char *params[] = {queue, id};
        return pg_long(b,
                       "SELECT count(*) FROM baton.tasks WHERE queue = $1 AND id = $2"
                       " AND finished_at IS NOT NULL",
                       2, params) > 0;
    }
    char key[BATON_KEY_MAX + 1];
    baton_task_key(key, queue, id);
    const char *argv[] = {"HGET", key, "state"};
    redisReply *reply;
    char errstr[512];
    if (baton_redis_command(b->redis, &reply, 3, argv, NULL, errstr, sizeof errstr))
        die("%s", errstr);
    int done = reply->type == REDIS_REPLY_STRING && strcmp(reply->str, "succeeded") == 0;
    freeReplyObject(reply);
    return done;
}

/* One task per partition the main phase uses, end to end, until all have
 * arrived: then the consumer group has joined (a group reading from the end
 * of the topic misses what was published before its assignment), holds a
 * position on every one of those partitions, and every connection is open
 * before any clock starts. */
static void warm_up(struct bench *b) {
    double until = wall_ms() + 90000;
    unsigned char *done = calloc((size_t)b->nspread, 1);
    for (int round = 0; !interrupted; round++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "warmup-%d-", round);
        /* Task p goes to partition p: keys in order, queues cycled. */
        const char **queues = malloc((size_t)b->nspread * sizeof *queues);
        for (int32_t p = 0; p < b->nspread; p++)
            queues[p] = b->queues[(size_t)p % b->nqueues];
        publish(b, prefix, queues, (size_t)b->nspread, (const char *const *)b->spread_keys,
                (size_t)b->nspread, b->nspread, 0, NULL, 0);
        double round_end = wall_ms() + 1000;
        int32_t left;
        do {
            left = 0;
            for (int32_t p = 0; p < b->nspread; p++) {
                if (done[p])
                    continue;
                char id[96];
                snprintf(id, sizeof id, "%s-%s%d", b->run, prefix, (int)p);
                done[p] = (unsigned char)task_finished(b, queues[p], id);
                left += !done[p];
            }
            if (left) {
                check_children(b);
                usleep(20000);
            }
        } while (left && !interrupted && wall_ms() < round_end);
        free(queues);
        if (!left) {
            free(done);
            return;
        }
        if (wall_ms() > until)
            die("no warm-up task finished on %d of %d partitions after 90 s (logs: %s)", (int)left,
                (int)b->nspread, b->logdir);
    }
    free(done);
}

/* Deletes every key of `queue` (SCAN + UNLINK of its prefix). */
static void drop_queue_keys(struct bench *b, const char *queue) {
    struct baton_queue_keys qkeys;
    baton_queue_keys_init(&qkeys, queue);
    char pattern[BATON_KEY_MAX + 1];
    snprintf(pattern, sizeof pattern, "%s*", qkeys.key_prefix);
    const char *cursor = "0";
    char next[32];
    do {
        const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "10000"};
        redisReply *reply;
        char errstr[256];
        if (baton_redis_command(b->redis, &reply, 6, scan, NULL, errstr, sizeof errstr))
            die("%s", errstr);
        snprintf(next, sizeof next, "%s", reply->element[0]->str);
        redisReply *keys = reply->element[1];
        if (keys->elements) {
            const char **argv = malloc((keys->elements + 1) * sizeof *argv);
            argv[0] = "UNLINK";
            for (size_t i = 0; i < keys->elements; i++)
                argv[i + 1] = keys->element[i]->str;
            redisReply *r2;
            if (baton_redis_command(b->redis, &r2, (int)keys->elements + 1, argv, NULL, errstr,
                                    sizeof errstr) == BATON_OK)
                freeReplyObject(r2);
            free(argv);
        }
        freeReplyObject(reply);
        cursor = next;
    } while (strcmp(cursor, "0") != 0);
}

/* Redis bytes per queued task: a queue no worker serves. */
static double memory_phase(struct bench *b) {
    int64_t n = b->cfg->memory_tasks;
    char queue[64];
    snprintf(queue, sizeof queue, "%s-mem", b->run);
    struct baton_queue_keys qkeys;
    baton_queue_keys_init(&qkeys, queue);
    uint64_t before = redis_used_memory(b);
    const char *queues[] = {queue};
    double started = wall_ms();
    publish(b, "mem-", queues, 1, NULL, 0, n, 0, NULL, 0);
    const char *zcard[] = {"ZCARD", qkeys.ready};
    const char *xlen[] = {"XLEN", qkeys.events};
    long long queued;
    while (!interrupted && ((queued = redis_int(b, 2, zcard)) < n || redis_int(b, 2, xlen) > 0)) {
        progress("memory", queued, n, started);
        usleep(50000);
    }
    progress("memory", n, n, started);
    uint64_t after = redis_used_memory(b);
    /* Clean up: the tasks' keys in Redis, their rows in history. */
    drop_queue_keys(b, queue);
    const char *params[] = {queue};
    PQclear(PQexecParams(b->pg, "DELETE FROM baton.task_events WHERE queue = $1", 1, NULL, params,
                         NULL, NULL, 0));
    PQclear(PQexecParams(b->pg, "DELETE FROM baton.tasks WHERE queue = $1", 1, NULL, params, NULL,
                         NULL, 0));
    return after > before ? (double)(after - before) / (double)n : 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, size_t n, double p) {
    if (!n)
        return 0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return sorted[rank ? rank - 1 : 0];
}

static json_t *latency_json(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return json_pack("{s:f,s:f,s:f,s:f,s:f,s:I}", "p50_ms", percentile(v, n, 50), "p90_ms",
                     percentile(v, n, 90), "p99_ms", percentile(v, n, 99), "p99_9_ms",
                     percentile(v, n, 99.9), "max_ms", n ? v[n - 1] : 0, "count", (json_int_t)n);
}

/* What the main phase found out about its tasks. */
struct outcome {
    unsigned char *finished; /* by task number */
    size_t counted, duplicates, unknown;
    long long extra_attempts;
    double *to_start, *to_finish; /* latencies of counted tasks that have both times */
    size_t nlat_start, nlat_finish;
};

static void outcome_init(struct outcome *o, int64_t n) {
    memset(o, 0, sizeof *o);
    o->finished = calloc((size_t)n, 1);
    o->to_start = malloc((size_t)n * sizeof *o->to_start);
    o->to_finish = malloc((size_t)n * sizeof *o->to_finish);
}

static void outcome_free(struct outcome *o) {
    free(o->finished);
    free(o->to_start);
    free(o->to_finish);
}

/* Counts one finished task k (its times in ms since the epoch, <0 unknown). */
static void outcome_add(struct outcome *o, int64_t k, const double *published, double started,
                        double finished, long long attempts) {
    if (o->finished[k]++) {
        o->duplicates++;
        return;
    }
    o->counted++;
    if (started >= 0)
        o->to_start[o->nlat_start++] = started - published[k];
    if (finished >= 0)
        o->to_finish[o->nlat_finish++] = finished - published[k];
    o->extra_attempts += attempts - 1;
}

/* Task number of a main-phase id, or -1 for an id of no main-phase task. */
static int64_t task_number(const struct bench *b, const char *id, int64_t n) {
    size_t prefix_len = strlen(b->run) + 2; /* "<run>-t" */
    if (strncmp(id, b->run, prefix_len - 2) != 0 || strncmp(id + prefix_len - 2, "-t", 2) != 0)
        return -1;
    char *end;
    long long k = strtoll(id + prefix_len, &end, 10);
    return *end || k < 0 || k >= n || end == id + prefix_len ? -1 : k;
}

/* Fills `o` from history: every finished row of the run's tasks. */
static void collect_history(struct bench *b, const double *published, struct outcome *o) {
    int64_t n = b->cfg->tasks;
    char qarray[2048], like[64];
    queues_array(b, qarray, sizeof qarray);
    snprintf(like, sizeof like, "%s-t%%", b->run);
    const char *params[] = {qarray, like};
    PGresult *res =
        PQexecParams(b->pg,
                     "SELECT id, extract(epoch FROM first_started_at) * 1000,"
                     " extract(epoch FROM finished_at) * 1000, attempts FROM baton.tasks"
                     " WHERE queue = ANY($1::text[]) AND id LIKE $2 AND finished_at IS NOT NULL",
                     2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die("PostgreSQL: %s", PQerrorMessage(b->pg));
    outcome_free(o);
    outcome_init(o, n);
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t k = task_number(b, PQgetvalue(res, r, 0), n);
        if (k < 0) {
            o->unknown++;
            continue;
        }
        /* NOLINTBEGIN(cert-err34-c): PostgreSQL's text form of numeric columns */
        outcome_add(o, k, published, PQgetisnull(res, r, 1) ? -1 : atof(PQgetvalue(res, r, 1)),
                    atof(PQgetvalue(res, r, 2)), atoll(PQgetvalue(res, r, 3)));
        /* NOLINTEND(cert-err34-c) */
    }
    PQclear(res);
}

/* Looks for lost tasks: not finished, not in Redis at all, and their
 * message below its partition's log start (Kafka dropped it, so nothing
 * can bring it in any more). Returns how many; `why` says where. */
static int64_t find_lost(struct bench *b, const struct outcome *o, char *why, size_t size) {
    int64_t n = b->cfg->tasks, lost = 0;
    int64_t *low = malloc((size_t)b->nspread * sizeof *low);
    kafka_low(b, low);
    int64_t *cand = malloc((size_t)n * sizeof *cand);
    size_t ncand = 0;
    for (int64_t k = 0; k < n; k++) {
        int32_t p = b->task_partition[k];
        if (!o->finished[k] && p >= 0 && p < b->nspread && low[p] >= 0 &&
            b->task_offset[k] < low[p])
            cand[ncand++] = k;
    }
    int32_t where = -1;
    int64_t first_lost = -1;
    for (size_t i = 0; i < ncand; i += REDIS_CHUNK) {
        size_t m = ncand - i < REDIS_CHUNK ? ncand - i : REDIS_CHUNK;
        baton_redis_pipeline_begin(b->redis);
        for (size_t j = 0; j < m; j++) {
            char key[BATON_KEY_MAX + 1];
            main_task_key(b, cand[i + j], key);
            const char *argv[] = {"EXISTS", key};
            redis_append(b, 2, argv);
        }
        for (size_t j = 0; j < m; j++) {
            redisReply *reply = redis_reply(b);
            if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
                if (!lost++) {
                    where = b->task_partition[cand[i + j]];
                    first_lost = b->task_offset[cand[i + j]];
                }
            }
            freeReplyObject(reply);
        }
    }
    if (lost)
        snprintf(why, size,
                 "e.g. partition %d of %s now starts at offset %" PRId64
                 ", past task offset %" PRId64,
                 (int)where, b->cfg->topic, low[where], first_lost);
    free(cand);
    free(low);
    return lost;
}

/* Fails the run for lost tasks, or, at the deadline, for missing ones. */
static void fail_missing(struct bench *b, const struct outcome *o, int at_deadline) {
    char why[512] = "";
    int64_t n = b->cfg->tasks;
    int64_t lost = find_lost(b, o, why, sizeof why);
    int64_t missing = n - (int64_t)o->counted;
    if (lost)
        die("LOST MESSAGES: %" PRId64 " of %" PRId64 " tasks never reached Redis because the "
            "Kafka topic dropped their messages before the scheduler read them (%s); %" PRId64
            " tasks missing in all. A run that loses messages is not a result: give the topic "
            "more partitions, publish fewer or smaller tasks, or publish with --rate (logs: %s)",
            lost, n, why, missing, b->logdir);
    if (at_deadline)
        die("only %zu of %" PRId64 " tasks finished %s after %" PRId64 " s; none of the %" PRId64
            " missing was dropped by Kafka (logs: %s)",
            o->counted, n, b->history ? "in history" : "in Redis", b->cfg->timeout_s, missing,
            b->logdir);
}

/* Cheap check, in Redis, that the run may be over: each partition's last
 * task exists, the queues' ready, scheduled and running sets are empty and
 * their events streams too (the history writer trims what PostgreSQL has
 * committed). The history count, a scan of the run's rows, then runs only
 * when it can succeed (and once a second for progress): polled every
 * 20 ms it cost PostgreSQL more CPU than the history writer. */
static int redis_quiet(struct bench *b, const struct baton_queue_keys *qk) {
    baton_redis_pipeline_begin(b->redis);
    size_t expected = 0;
    for (int32_t p = 0; p < b->nspread; p++) {
        if (b->last_task[p] < 0)
            continue;
        char key[BATON_KEY_MAX + 1];
        main_task_key(b, b->last_task[p], key);
        const char *argv[] = {"EXISTS", key};
        redis_append(b, 2, argv);
        expected++;
    }
    size_t exists = expected;
    for (size_t q = 0; q < b->nqueues; q++) {
        const char *sets[] = {qk[q].ready, qk[q].scheduled, qk[q].running};
        for (int s = 0; s < 3; s++) {
            const char *argv[] = {"ZCARD", sets[s]};
            redis_append(b, 2, argv);
        }
        const char *xlen[] = {"XLEN", qk[q].events};
        redis_append(b, 2, xlen);
        expected += 4;
    }
    int quiet = 1;
    for (size_t i = 0; i < expected; i++) {
        redisReply *reply = redis_reply(b);
        long long v = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
        if (i < exists ? v != 1 : v != 0)
            quiet = 0;
        freeReplyObject(reply);
    }
    return quiet;
}

/* Waits until every task is finished in history; returns that moment. */
static double wait_history(struct bench *b, const double *published, double t0, struct outcome *o) {
    int64_t n = b->cfg->tasks;
    char qarray[2048], like[64];
    queues_array(b, qarray, sizeof qarray);
    snprintf(like, sizeof like, "%s-t%%", b->run);
    const char *params[] = {qarray, like};
    const char *count_sql = "SELECT count(*) FROM baton.tasks WHERE queue = ANY($1::text[])"
                            " AND id LIKE $2 AND finished_at IS NOT NULL";
    struct baton_queue_keys *qk = malloc(b->nqueues * sizeof *qk);
    if (!qk)
        die("out of memory");
    for (size_t q = 0; q < b->nqueues; q++)
        baton_queue_keys_init(&qk[q], b->queues[q]);
    long long done = 0, last_done = -1;
    double deadline = t0 + (double)b->cfg->timeout_s * 1000.0, last_change = wall_ms();
    double next_watch = 0, next_count = 0;
    while (!interrupted) {
        double now = wall_ms();
        if (now >= next_count || redis_quiet(b, qk)) {
            done = pg_long(b, count_sql, 2, params);
            next_count = now + 1000;
            if (done >= n)
                break;
        }
        progress("tasks", done, n, t0);
        if (now >= next_watch) {
            check_children(b);
            kafka_watch(b);
            next_watch = now + 1000;
        }
        if (done != last_done) {
            last_done = done;
            last_change = now;
        } else if (now - last_change > (double)b->cfg->stall_s * 1000.0) {
            collect_history(b, published, o);
            fail_missing(b, o, 0);
            last_change = now; /* nothing provably lost: wait on */
        }
        if (now > deadline) {
            collect_history(b, published, o);
            if (o->counted < (size_t)n)
                fail_missing(b, o, 1);
        }
        usleep(20000);
    }
    double t_done = wall_ms();
    free(qk);
    progress("tasks", n, n, t0);
    return t_done;
}

/* Reads the hashes of the pending tasks (a list of task numbers, compacted
 * in place): each that says succeeded is counted in `o` and leaves the
 * list. */
static void verify_redis(struct bench *b, const double *published, int64_t *pending,
                         size_t *npending, struct outcome *o) {
    size_t kept = 0;
    for (size_t i = 0; i < *npending; i += REDIS_CHUNK) {
        size_t m = *npending - i < REDIS_CHUNK ? *npending - i : REDIS_CHUNK;
        baton_redis_pipeline_begin(b->redis);
        for (size_t j = 0; j < m; j++) {
            char key[BATON_KEY_MAX + 1];
            main_task_key(b, pending[i + j], key);
            const char *argv[] = {"HMGET",       key,      "state", "first_started_ms",
                                  "finished_ms", "attempt"};
            redis_append(b, 6, argv);
        }
        for (size_t j = 0; j < m; j++) {
            redisReply *r = redis_reply(b);
            int64_t k = pending[i + j];
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
                r->element[0]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[0]->str, "succeeded") == 0) {
                /* NOLINTBEGIN(cert-err34-c): Redis's decimal text of integers */
                double started =
                    r->element[1]->type == REDIS_REPLY_STRING ? atof(r->element[1]->str) : -1;
                double finished =
                    r->element[2]->type == REDIS_REPLY_STRING ? atof(r->element[2]->str) : -1;
                long long attempts =
                    r->element[3]->type == REDIS_REPLY_STRING ? atoll(r->element[3]->str) : 1;
                /* NOLINTEND(cert-err34-c) */
                outcome_add(o, k, published, started, finished, attempts);
            } else {
                pending[kept++] = k;
            }
            freeReplyObject(r);
        }
    }
    *npending = kept;
}

/* History off: waits until every task's hash says succeeded; returns the
 * moment that was first seen. Reading 200,000 hashes every few ms would
 * load the Redis under test, so a cheap gate comes first: the last task
 * published to each partition exists in Redis (ingest keeps a partition's
 * order, so everything before it was enqueued too) and no queue of the
 * run has a task queued, scheduled or running. Only then are the pending
 * hashes read, and at most every 200 ms while some stay pending. */
static double wait_redis(struct bench *b, const double *published, double t0, struct outcome *o) {
    int64_t n = b->cfg->tasks;
    int64_t *pending = calloc((size_t)n, sizeof *pending);
    size_t npending = (size_t)n;
    for (int64_t k = 0; k < n; k++)
        pending[k] = k;
    struct baton_queue_keys *qk = malloc(b->nqueues * sizeof *qk);
    for (size_t q = 0; q < b->nqueues; q++)
        baton_queue_keys_init(&qk[q], b->queues[q]);
    double deadline = t0 + (double)b->cfg->timeout_s * 1000.0, last_change = wall_ms();
    double next_watch = 0, next_verify = 0, t_done = 0;
    long long last_signature = -1;
    while (!interrupted) {
        double now = wall_ms();
        if (now >= next_watch) {
            check_children(b);
            kafka_watch(b);
            next_watch = now + 1000;
        }
        baton_redis_pipeline_begin(b->redis);
        int32_t used = 0;
        for (int32_t p = 0; p < b->nspread; p++) {
            if (b->last_task[p] < 0)
                continue;
            char key[BATON_KEY_MAX + 1];
            main_task_key(b, b->last_task[p], key);
            const char *argv[] = {"EXISTS", key};
            redis_append(b, 2, argv);
            used++;
        }
        for (size_t q = 0; q < b->nqueues; q++) {
            const char *sets[] = {qk[q].ready, qk[q].scheduled, qk[q].running};
            for (int s = 0; s < 3; s++) {
                const char *argv[] = {"ZCARD", sets[s]};
                redis_append(b, 2, argv);
            }
        }
        long long arrived = 0, busy = 0;
        for (int32_t i = 0; i < used; i++) {
            redisReply *r = redis_reply(b);
            arrived += r->integer;
            freeReplyObject(r);
        }
        for (size_t i = 0; i < b->nqueues * 3; i++) {
            redisReply *r = redis_reply(b);
            busy += r->integer;
            freeReplyObject(r);
        }
        if (arrived == used && busy == 0 && now >= next_verify) {
            verify_redis(b, published, pending, &npending, o);
            if (!npending) {
                t_done = now;
                break;
            }
            next_verify = now + 200;
        }
        progress("tasks", (long long)o->counted, n, t0);
        /* Anything moving at all: tasks in the sets, partitions arrived,
         * tasks counted. */
        long long signature = busy * 1000003LL + arrived * 1009LL + (long long)npending;
        if (signature != last_signature) {
            last_signature = signature;
            last_change = now;
        } else if (now - last_change > (double)b->cfg->stall_s * 1000.0) {
            verify_redis(b, published, pending, &npending, o);
            fail_missing(b, o, 0);
            last_change = now;
        }
        if (now > deadline) {
            verify_redis(b, published, pending, &npending, o);
            if (npending)
                fail_missing(b, o, 1);
        }
        usleep(20000);
    }
    progress("tasks", n, n, t0);
    free(qk);
    free(pending);
    return t_done;
}

/* Reads "model name" of /proc/cpuinfo and MemTotal of /proc/meminfo. */
static json_t *machine_json(void) {
    char line[512], model[256] = "unknown";
    long long mem_kib = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(model, sizeof model, "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f)
        fclose(f);
    f = fopen("/proc/meminfo", "r");
    /* NOLINTNEXTLINE(cert-err34-c): the kernel's own decimal */
    while (f && fgets(line, sizeof line, f) && sscanf(line, "MemTotal: %lld kB", &mem_kib) != 1) {
    }
    if (f)
        fclose(f);
    return json_pack("{s:I,s:s,s:f}", "nproc", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN),
                     "cpu_model", model, "memory_gib", (double)mem_kib / 1048576.0);
}

/* Main phase: publish, wait until every task is finished, measure. Returns
 * the report. */
static json_t *main_phase(struct bench *b) {
    int64_t n = b->cfg->tasks;
    /* The whole schema, whatever tables and partitions it has: regular
     * tables (partitions are) with their indexes and TOAST. */
    const char *size_sql = "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)"
                           " FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace"
                           " WHERE s.nspname = 'baton' AND c.relkind IN ('r', 'm')";
    long long pg_before = pg_long(b, size_sql, 0, NULL);

    pid_t redis_pid = 0, pg_pid = 0, kafka_pid = 0;
    if (b->cfg->stack_dir) {
        char path[600];
        snprintf(path, sizeof path, "%s/redis.pid", b->cfg->stack_dir);
        redis_pid = proc_read_pidfile(path);
        snprintf(path, sizeof path, "%s/postgres.pid", b->cfg->stack_dir);
        pg_pid = proc_read_pidfile(path);
        snprintf(path, sizeof path, "%s/kafka.pid", b->cfg->stack_dir);
        kafka_pid = proc_read_pidfile(path);
    }
    struct child servers[3] = {{"redis", redis_pid, {0, 0, 0}},
                               {"postgresql", pg_pid, {0, 0, 0}},
                               {"kafka (embedded)", kafka_pid, {0, 0, 0}}};
    for (int i = 0; i < 3; i++)
        servers[i].before = proc_usage(servers[i].pid, i == 1);
    for (size_t i = 0; i < b->nchildren; i++)
        b->children[i].before = proc_usage(b->children[i].pid, 0);

    double *published = calloc((size_t)n, sizeof *published);
    b->task_partition = malloc((size_t)n * sizeof *b->task_partition);
    b->task_offset = malloc((size_t)n * sizeof *b->task_offset);
    for (int64_t k = 0; k < n; k++) {
        b->task_partition[k] = -1;
        b->task_offset[k] = -1;
    }
    const char *const *queues = (const char *const *)b->queues;
    pid_t scheduler = b->cfg->test_pause_scheduler ? b->children[0].pid : 0;
    if (scheduler && kill(scheduler, SIGSTOP))
        die("cannot pause the scheduler: %s", strerror(errno));
    double t0 = wall_ms();
    publish(b, "t", queues, b->nqueues, (const char *const *)b->spread_keys, (size_t)b->nspread, n,
            b->cfg->rate, published, 1);
    double t_published = wall_ms();
    if (scheduler)
        kill(scheduler, SIGCONT);
    if (b->failed)
        die("%" PRIu64 " tasks were not delivered to Kafka", b->failed);

    /* Where the tasks went, from their delivery reports. */
    b->first_offset = malloc((size_t)b->nspread * sizeof *b->first_offset);
    b->last_task = malloc((size_t)b->nspread * sizeof *b->last_task);
    int64_t *per_partition = calloc((size_t)b->nspread, sizeof *per_partition);
    for (int32_t p = 0; p < b->nspread; p++)
        b->first_offset[p] = b->last_task[p] = -1;
    int64_t misplaced = 0, max_per_partition = 0;
    for (int64_t k = 0; k < n; k++) {
        int32_t p = b->task_partition[k];
        if (p < 0 || p >= b->nspread) {
            misplaced++;
            continue;
        }
        misplaced += p != (int32_t)(k % b->nspread);
        per_partition[p]++;
        if (b->first_offset[p] < 0 || b->task_offset[k] < b->first_offset[p])
            b->first_offset[p] = b->task_offset[k];
        if (b->last_task[p] < 0 || b->task_offset[k] > b->task_offset[b->last_task[p]])
            b->last_task[p] = k;
    }
    int32_t partitions_used = 0;
    for (int32_t p = 0; p < b->nspread; p++) {
        partitions_used += per_partition[p] > 0;
        if (per_partition[p] > max_per_partition)
            max_per_partition = per_partition[p];
    }
    free(per_partition);
    if (misplaced)
        fprintf(stderr,
                "baton-bench: warning: %" PRId64 " tasks landed on another partition than "
                "planned (a partitioner other than consistent_random in --kafka-config-file?)\n",
                misplaced);

    struct outcome o;
    outcome_init(&o, n);
    double t_done =
        b->history ? wait_history(b, published, t0, &o) : wait_redis(b, published, t0, &o);
    if (interrupted)
        die("interrupted by signal %d", (int)interrupted);
    kafka_watch(b);

    /* Usage, before anything stops. */
    json_t *procs = json_array();
    double total_cpu = 0;
    struct child *all[70];
    size_t nall = 0;
    for (size_t i = 0; i < b->nchildren; i++)
        all[nall++] = &b->children[i];
    for (int i = 0; i < 3; i++)
        if (servers[i].pid)
            all[nall++] = &servers[i];
    for (size_t i = 0; i < nall; i++) {
        struct proc_usage now = proc_usage(all[i]->pid, strcmp(all[i]->role, "postgresql") == 0);
        double cpu = now.cpu_seconds - all[i]->before.cpu_seconds;
        total_cpu += cpu;
        json_array_append_new(procs,
                              json_pack("{s:s,s:i,s:f,s:f,s:f}", "process", all[i]->role, "pid",
                                        (int)all[i]->pid, "cpu_seconds", cpu, "cpu_us_per_task",
                                        cpu * 1e6 / (double)n, "peak_rss_mib", now.peak_rss_mib));
    }

    /* The bookkeeping, from where "finished" is recorded. */
    if (b->history)
        collect_history(b, published, &o);
    if (o.counted != (size_t)n || o.duplicates || o.unknown)
        die("bookkeeping: %zu of %" PRId64 " tasks counted once, %zu duplicates, %zu rows of "
            "unknown tasks: the run is not a result (logs: %s)",
            o.counted, n, o.duplicates, o.unknown, b->logdir);
    long long pg_after = pg_long(b, size_sql, 0, NULL);

    json_t *report = json_object();
    json_object_set_new(report, "tasks", json_integer(n));
    json_object_set_new(report, "counted_once", json_integer((json_int_t)o.counted));
    json_object_set_new(report, "duplicates", json_integer((json_int_t)o.duplicates));
    json_object_set_new(report, "unknown_rows", json_integer((json_int_t)o.unknown));
    json_object_set_new(report, "extra_attempts", json_integer(o.extra_attempts));
    json_object_set_new(report, "lost", json_integer(0));
    json_object_set_new(report, "mode", json_string(b->cfg->rate > 0 ? "latency" : "throughput"));
    json_object_set_new(report, "history", json_boolean(b->history));
    json_object_set_new(report, "finished_in",
                        json_string(b->history ? "postgresql history (last row)"
                                               : "redis (every task hash succeeded)"));
    json_object_set_new(report, "target_rate", json_real(b->cfg->rate));
    json_object_set_new(report, "publish_rate", json_real((double)n * 1000.0 / (t_published - t0)));
    json_object_set_new(report, "publish_seconds", json_real((t_published - t0) / 1000.0));
    json_object_set_new(report, "end_to_end_rate", json_real((double)n * 1000.0 / (t_done - t0)));
    json_object_set_new(report, "end_to_end_seconds", json_real((t_done - t0) / 1000.0));
    json_object_set_new(report, "submit_to_start", latency_json(o.to_start, o.nlat_start));
    json_object_set_new(report, "submit_to_finish", latency_json(o.to_finish, o.nlat_finish));
    json_object_set_new(report, "processes", procs);
    json_object_set_new(report, "cpu_seconds_total", json_real(total_cpu));
    json_object_set_new(report, "cpu_us_per_task_total", json_real(total_cpu * 1e6 / (double)n));
    if (b->history)
        json_object_set_new(report, "postgres_bytes_per_task",
                            json_real((double)(pg_after - pg_before) / (double)n));
    json_t *kafka = json_object();
    json_object_set_new(kafka, "topic", json_string(b->cfg->topic));
    json_object_set_new(kafka, "group", json_string(b->group));
    json_object_set_new(kafka, "topic_partitions", json_integer(b->topic_partitions));
    json_object_set_new(kafka, "partitions_used", json_integer(partitions_used));
    json_object_set_new(kafka, "tasks_per_partition_max", json_integer(max_per_partition));
    json_object_set_new(kafka, "task_bytes_estimate", json_integer((json_int_t)b->task_bytes));
    json_object_set_new(kafka, "bytes_per_partition_max_estimate",
                        json_integer((json_int_t)b->task_bytes * max_per_partition));
    json_object_set_new(kafka, "partition_bytes_limit",
                        json_integer(b->cfg->kafka_partition_bytes));
    json_object_set_new(kafka, "misplaced_tasks", json_integer(misplaced));
    json_object_set_new(kafka, "log_start_passed_commit", json_boolean(b->overtaken));
    if (b->overtaken)
        json_object_set_new(kafka, "log_start_passed_commit_at",
                            json_pack("{s:i,s:I,s:I}", "partition", (int)b->overtaken_partition,
                                      "log_start", (json_int_t)b->overtaken_low, "committed",
                                      (json_int_t)b->overtaken_committed));
    json_object_set_new(report, "kafka", kafka);
    outcome_free(&o);
    free(published);
    return report;
}

/* The settings of this run, for the report. */
static json_t *settings_json(const struct bench *b, const char *kafka_producer_config) {
    const struct bench_config *c = b->cfg;
    json_t *queues = json_array(), *priorities = json_array();
    for (size_t i = 0; i < b->nqueues; i++)
        json_array_append_new(queues, json_string(b->queues[i]));
    for (size_t i = 0; i < b->npriorities; i++)
        json_array_append_new(priorities, json_integer(b->priorities[i]));
    json_t *s = json_object();
    json_object_set_new(s, "tasks", json_integer(c->tasks));
    json_object_set_new(s, "type", json_string(c->type));
    json_object_set_new(s, "payload_bytes", json_integer(c->payload_bytes));
    json_object_set_new(s, "queues", queues);
    json_object_set_new(s, "priorities", priorities);
    json_object_set_new(s, "rate", json_real(c->rate));
    json_object_set_new(s, "workers", json_integer(c->external ? 0 : c->workers));
    json_object_set_new(s, "concurrency", json_integer(c->concurrency));
    json_object_set_new(s, "external", json_boolean(c->external));
    json_object_set_new(s, "history", json_boolean(b->history));
    json_object_set_new(s, "memory_tasks", json_integer(b->history ? c->memory_tasks : 0));
    json_object_set_new(s, "redis_durability", json_string(c->redis_durability));
    json_object_set_new(s, "topic", json_string(c->topic));
    json_object_set_new(s, "kafka_partitions", json_integer(b->nspread));
    json_object_set_new(s, "kafka_partition_bytes", json_integer(c->kafka_partition_bytes));
    json_object_set_new(s, "kafka_config", json_string(c->kafka_config));
    json_object_set_new(s, "kafka_config_file", json_string(c->kafka_config_file));
    json_object_set_new(s, "producer_kafka_config", json_string(kafka_producer_config));
    json_object_set_new(s, "timeout_s", json_integer(c->timeout_s));
    json_object_set_new(s, "stall_s", json_integer(c->stall_s));
    json_object_set_new(s, "test_pause_scheduler", json_boolean(c->test_pause_scheduler));
    return s;
}

static void print_report(const json_t *r) {
    const json_t *s = json_object_get(r, "settings");
    const json_t *m = json_object_get(r, "machine");
    printf("\nbaton-bench: %" JSON_INTEGER_FORMAT " %s tasks, %s mode, history %s\n",
           json_integer_value(json_object_get(r, "tasks")),
           json_string_value(json_object_get(r, "type")),
           json_string_value(json_object_get(r, "mode")),
           json_is_true(json_object_get(r, "history")) ? "on" : "off");
    printf("  date %s; machine: %" JSON_INTEGER_FORMAT " CPUs (%s), %.1f GiB\n",
           json_string_value(json_object_get(r, "date")),
           json_integer_value(json_object_get(m, "nproc")),
           json_string_value(json_object_get(m, "cpu_model")),
           json_real_value(json_object_get(m, "memory_gib")));
    size_t nq = json_array_size(json_object_get(s, "queues"));
    printf("  settings: %" JSON_INTEGER_FORMAT " workers x %" JSON_INTEGER_FORMAT
           " concurrency%s, %zu queues, priorities",
           json_integer_value(json_object_get(s, "workers")),
           json_integer_value(json_object_get(s, "concurrency")),
           json_is_true(json_object_get(s, "external")) ? " (external)" : "", nq);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(s, "priorities"), i, v) {
        printf("%s%" JSON_INTEGER_FORMAT, i ? "," : " ", json_integer_value(v));
    }
    printf(", payload %" JSON_INTEGER_FORMAT " bytes, rate %s, redis durability %s\n",
           json_integer_value(json_object_get(s, "payload_bytes")),
           json_real_value(json_object_get(s, "rate")) > 0 ? "paced" : "as fast as possible",
           json_string_value(json_object_get(s, "redis_durability")));
    if (json_real_value(json_object_get(s, "rate")) > 0)
        printf("  target rate            %10.0f tasks/s\n",
               json_real_value(json_object_get(s, "rate")));
    printf("  publish rate           %10.0f tasks/s  (%.2f s)\n",
           json_real_value(json_object_get(r, "publish_rate")),
           json_real_value(json_object_get(r, "publish_seconds")));
    printf("  end-to-end rate        %10.0f tasks/s  (first publish -> %s, %.2f s)\n",
           json_real_value(json_object_get(r, "end_to_end_rate")),
           json_is_true(json_object_get(r, "history")) ? "last history row"
                                                       : "last task succeeded in Redis",
           json_real_value(json_object_get(r, "end_to_end_seconds")));
    const char *names[] = {"submit_to_start", "submit_to_finish"};
    printf("  latency (ms)           %8s %8s %8s %8s %8s %8s\n", "p50", "p90", "p99", "p99.9",
           "max", "count");
    for (int k = 0; k < 2; k++) {
        json_t *l = json_object_get(r, names[k]);
        printf("  %-22s %8.1f %8.1f %8.1f %8.1f %8.1f %8" JSON_INTEGER_FORMAT "\n", names[k],
               json_real_value(json_object_get(l, "p50_ms")),
               json_real_value(json_object_get(l, "p90_ms")),
               json_real_value(json_object_get(l, "p99_ms")),
               json_real_value(json_object_get(l, "p99_9_ms")),
               json_real_value(json_object_get(l, "max_ms")),
               json_integer_value(json_object_get(l, "count")));
    }
    printf("  %-22s %8s %10s %12s %12s\n", "process", "pid", "cpu s", "cpu us/task",
           "peak RSS MiB");
    json_t *p;
    json_array_foreach(json_object_get(r, "processes"), i, p) {
        printf("  %-22s %8" JSON_INTEGER_FORMAT " %10.2f %12.1f %12.1f\n",
               json_string_value(json_object_get(p, "process")),
               json_integer_value(json_object_get(p, "pid")),
               json_real_value(json_object_get(p, "cpu_seconds")),
               json_real_value(json_object_get(p, "cpu_us_per_task")),
               json_real_value(json_object_get(p, "peak_rss_mib")));
    }
    printf("  %-22s %8s %10.2f %12.1f\n", "all processes", "",
           json_real_value(json_object_get(r, "cpu_seconds_total")),
           json_real_value(json_object_get(r, "cpu_us_per_task_total")));
    json_t *mem = json_object_get(r, "redis_bytes_per_queued_task");
    if (mem)
        printf("  Redis bytes per queued task      %8.0f  (payload %" JSON_INTEGER_FORMAT
               " bytes)\n",
               json_real_value(mem), json_integer_value(json_object_get(r, "payload_bytes")));
    else
        printf("  Redis bytes per queued task      %8s  (%s)\n", "-",
               json_string_value(json_object_get(r, "memory_phase")));
    json_t *pgb = json_object_get(r, "postgres_bytes_per_task");
    if (pgb)
        printf("  PostgreSQL bytes per task        %8.0f\n", json_real_value(pgb));
    else
        printf("  PostgreSQL bytes per task        %8s  (history off)\n", "-");
    json_t *k = json_object_get(r, "kafka");
    printf("  Kafka: topic %s, %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
           " partitions used, at most %" JSON_INTEGER_FORMAT " tasks (~%.2f MiB) per partition"
           " of %.2f MiB kept\n",
           json_string_value(json_object_get(k, "topic")),
           json_integer_value(json_object_get(k, "partitions_used")),
           json_integer_value(json_object_get(k, "topic_partitions")),
           json_integer_value(json_object_get(k, "tasks_per_partition_max")),
           (double)json_integer_value(json_object_get(k, "bytes_per_partition_max_estimate")) /
               1048576.0,
           (double)json_integer_value(json_object_get(k, "partition_bytes_limit")) / 1048576.0);
    if (json_is_true(json_object_get(k, "log_start_passed_commit"))) {
        json_t *at = json_object_get(k, "log_start_passed_commit_at");
        printf("  Kafka: WARNING: the log start of partition %" JSON_INTEGER_FORMAT
               " reached %" JSON_INTEGER_FORMAT
               " while the scheduler had committed only up to %" JSON_INTEGER_FORMAT
               " (nothing was lost: it had fetched them already)\n",
               json_integer_value(json_object_get(at, "partition")),
               json_integer_value(json_object_get(at, "log_start")),
               json_integer_value(json_object_get(at, "committed")));
    }
    printf("  bookkeeping: %" JSON_INTEGER_FORMAT " counted once, %" JSON_INTEGER_FORMAT
           " duplicates, %" JSON_INTEGER_FORMAT " unknown, %" JSON_INTEGER_FORMAT
           " extra attempts, %" JSON_INTEGER_FORMAT " lost\n",
           json_integer_value(json_object_get(r, "counted_once")),
           json_integer_value(json_object_get(r, "duplicates")),
           json_integer_value(json_object_get(r, "unknown_rows")),
           json_integer_value(json_object_get(r, "extra_attempts")),
           json_integer_value(json_object_get(r, "lost")));
}

/* Removes the log directory of a run that succeeded (a failed run keeps it:
 * its path is in the error message). Only the files this run's children
 * wrote are there. */
static void remove_logs(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Splits "a,b,c" into a new array of strings (owned by the caller, freed
 * with split_free()). */
static char **split(const char *text, size_t *count) {
    char *copy = strdup(text);
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    char **out = calloc(cap, sizeof *out);
    *count = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        out[(*count)++] = strdup(t);
    free(copy);
    return out;
}

static void split_free(char **parts, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(parts[i]);
    free(parts);
}

/* --history takes a word (so "--history false" reads as it looks). */
static int parse_history(const char *text, int *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(text, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

int main(int argc, char **argv) {
    struct bench_config cfg;
    char errstr[1024];
    int first = argc;
    baton_err_t err =
        baton_config_parse(options, OPTION_COUNT, &cfg, argc, argv, &first, errstr, sizeof errstr);
    if (err == BATON_ERR_HELP) {
        baton_config_help(stdout, "baton-bench [options]",
                          "End-to-end benchmark on a running local stack (dev/stack.sh up; "
                          "BATON_* variables give the addresses).",
                          options, OPTION_COUNT);
        baton_config_free(options, OPTION_COUNT, &cfg);
        return 0;
    }
    struct bench b;
    memset(&b, 0, sizeof b);
    b.cfg = &cfg;
    if (!err && first < argc)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG, "unexpected argument '%s'",
                           argv[first]);
    if (!err && baton_log_level_parse(cfg.log_level, &baton_log_threshold))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG, "bad --log-level");
    if (!err && parse_history(cfg.history_text, &b.history))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--history: '%s' is neither true nor false", cfg.history_text);
    if (!err && cfg.test_pause_scheduler && cfg.external)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--test-pause-scheduler pauses the scheduler this bench starts: not "
                           "with --external");
    if (err) {
        fprintf(stderr, "baton-bench: %s\n", errstr);
        return 2;
    }
    if (!cfg.stack_dir)
        cfg.stack_dir = getenv("BATON_STACK_DIR") ? strdup(getenv("BATON_STACK_DIR")) : NULL;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    atexit(stop_started);
    signal(SIGPIPE, SIG_IGN);

    snprintf(b.run, sizeof b.run, "b%lx", (unsigned long)(wall_ms() / 10) % 0xffffffffUL);
    if (cfg.group_id)
        snprintf(b.group, sizeof b.group, "%s", cfg.group_id);
    else if (cfg.external)
        snprintf(b.group, sizeof b.group, "baton-scheduler");
    else
        snprintf(b.group, sizeof b.group, "baton-bench-%s", b.run);
    size_t nq;
    char **qnames = split(cfg.queues, &nq);
    if (!nq)
        die("--queues: no queue named");
    b.queues = calloc(nq, sizeof *b.queues);
    b.nqueues = nq;
    for (size_t i = 0; i < nq; i++) {
        char q[160];
        snprintf(q, sizeof q, "%s-%s", qnames[i], b.run);
        b.queues[i] = strdup(q);
    }
    size_t np;
    char **pnames = split(cfg.priorities, &np);
    b.priorities = calloc(np ? np : 1, sizeof *b.priorities);
    for (size_t i = 0; i < np; i++) {
        /* atoi() would run "x" or "10" as priority 0 or 10: refuse them. */
        char *end;
        errno = 0;
        long p = strtol(pnames[i], &end, 10);
        if (errno || end == pnames[i] || *end || p < BATON_TASK_PRIORITY_MIN ||
            p > BATON_TASK_PRIORITY_MAX)
            die("--priorities: '%s' is not a priority (%d-%d)", pnames[i], BATON_TASK_PRIORITY_MIN,
                BATON_TASK_PRIORITY_MAX);
        b.priorities[b.npriorities++] = (int)p;
    }
    if (!b.npriorities)
        b.priorities[b.npriorities++] = 5;

    if (baton_redis_connect(cfg.redis_url, 5000, &b.redis, errstr, sizeof errstr))
        die("%s", errstr);
    if (baton_pg_connect(cfg.pg_dsn, "baton-bench", &b.pg, errstr, sizeof errstr))
        die("%s", errstr);
    kafka_open(&b);
    check_retention(&b);
    /* Latency mode batches for at most 1 ms. The partitioner is named so
     * that the spread keys land where kafka_open() computed. */
    const char *producer_config = cfg.rate > 0 ? "linger.ms=1,partitioner=consistent_random"
                                               : "linger.ms=5,partitioner=consistent_random";
    struct baton_producer_config pc = {.kafka_brokers = cfg.kafka_brokers,
                                       .kafka_config = producer_config,
                                       .kafka_config_file = cfg.kafka_config_file,
                                       .topic = cfg.topic,
                                       .delivery_timeout_ms = 60000,
                                       .on_delivery = on_delivery,
                                       .opaque = &b};
    b.producer = baton_producer_new(&pc, errstr, sizeof errstr);
    if (!b.producer)
        die("%s", errstr);
    snprintf(b.logdir, sizeof b.logdir, "/tmp/baton-bench.%s", b.run);
    mkdir(b.logdir, 0755);

    if (cfg.external)
        fprintf(stderr, "baton-bench: using running scheduler and workers (queues %s, group %s)\n",
                cfg.queues, b.group);
    else
        start_services(&b, argv[0]);
    warm_up(&b);
    double redis_per_task = -1;
    const char *memory_note = "memory phase skipped: --memory-tasks 0";
    if (!b.history)
        memory_note = "memory phase skipped: with --history false every event stays in Redis";
    else if (cfg.memory_tasks > 0)
        redis_per_task = memory_phase(&b);
    json_t *report = main_phase(&b);
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    json_object_set_new(report, "date", json_string(date));
    json_object_set_new(report, "machine", machine_json());
    json_object_set_new(report, "settings", settings_json(&b, producer_config));
    json_object_set_new(report, "run", json_string(b.run));
    json_object_set_new(report, "type", json_string(cfg.type));
    json_object_set_new(report, "payload_bytes", json_integer(cfg.payload_bytes));
    json_object_set_new(report, "workers", json_integer(cfg.workers));
    json_object_set_new(report, "concurrency", json_integer(cfg.concurrency));
    if (redis_per_task >= 0)
        json_object_set_new(report, "redis_bytes_per_queued_task", json_real(redis_per_task));
    else
        json_object_set_new(report, "memory_phase", json_string(memory_note));
    stop_started();
    /* The run's tasks leave Redis (they would stay for the retention period
     * and fill the next runs' Redis); history keeps its rows. */
    for (size_t i = 0; i < b.nqueues; i++)
        drop_queue_keys(&b, b.queues[i]);
    remove_logs(b.logdir);
    print_report(report);
    if (cfg.json_path && json_dump_file(report, cfg.json_path, JSON_INDENT(2)) != 0)
        die("cannot write %s", cfg.json_path);
    json_decref(report);
    baton_producer_destroy(b.producer);
    rd_kafka_destroy(b.kc);
    PQfinish(b.pg);
    baton_redis_destroy(b.redis);
    split_free(qnames, nq);
    split_free(pnames, np);
    split_free(b.queues, b.nqueues);
    split_free(b.spread_keys, (size_t)b.nspread);
    free(b.priorities);
    free(b.task_partition);
    free(b.task_offset);
    free(b.first_offset);
    free(b.last_task);
    baton_config_free(options, OPTION_COUNT, &cfg);
    return 0;
}
