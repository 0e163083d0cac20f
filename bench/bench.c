/*
 * bench.c - baton-bench: end-to-end throughput, latency and cost.
 *
 * Against a running local stack (dev/stack.sh; addresses from the
 * BATON_* environment or flags) it:
 *   1. starts its own baton-scheduler (history writer on) and N workers,
 *      unless --external says they already run;
 *   2. warms up: one task through the whole path, so the consumer group has
 *      joined before the clock starts;
 *   3. memory phase (--memory-tasks > 0): enqueues tasks to a queue no
 *      worker serves and measures Redis used_memory per queued task;
 *   4. main phase: publishes --tasks tasks with the producer library, as
 *      fast as possible or at --rate per second, and waits until every one
 *      is finished in PostgreSQL's history (which is written from Redis's
 *      transition events, so finished in history means finished in Redis);
 *   5. reports publish rate, end-to-end rate (first publish -> last history
 *      row seen), submit->start and submit->finish percentiles (publish time
 *      recorded here, start/finish times from history; one machine, one
 *      clock), CPU seconds and peak RSS per process, CPU microseconds per
 *      task, Redis bytes per queued task, PostgreSQL bytes per task; as a
 *      table and, with --json FILE, as JSON.
 * The figures are measurements, never pass/fail: see docs/performance.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pg.h"
#include "procstat.h"
#include "producer.h"
#include "queue.h"
#include "redis.h"
#include "timeutil.h"

extern char **environ;

struct bench_config {
    char *kafka_brokers, *kafka_config, *redis_url, *pg_dsn, *stack_dir, *bin_dir;
    char *kafka_config_file, *redis_durability;
    int64_t tasks, workers, concurrency, memory_tasks, payload_bytes, timeout_s;
    double rate;
    char *type, *priorities, *queues, *json_path, *log_level;
    int external;
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
    {"memory-tasks", BATON_OPT_INT, "10000", "tasks of the Redis memory phase (0: skip the phase)",
     CFG(memory_tasks), 0, 1000000},
    {"timeout-s", BATON_OPT_INT, "900", "give up waiting after this long", CFG(timeout_s), 1,
     86400},
    {"external", BATON_OPT_BOOL, "false", "use a scheduler and workers that already run",
     CFG(external), 0, 0},
    {"json", BATON_OPT_STRING, NULL, "also write the figures as JSON to this file", CFG(json_path),
     0, 0},
    {"log-level", BATON_OPT_STRING, "warn", "log level of this program", CFG(log_level), 0, 0},
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
        if (started_pids[i] > 0)
            kill(started_pids[i], SIGTERM);
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
};

static void on_delivery(const struct baton_delivery *report, void *opaque) {
    struct bench *b = opaque;
    if (report->err) {
        b->failed++;
        if (b->failed <= 5)
            fprintf(stderr, "baton-bench: task %s not delivered: %s\n", report->task_id,
                    report->errstr);
    } else {
        b->delivered++;
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

/* "{...}" of the queues list as a PostgreSQL text[] literal parameter. */
static void queues_array(struct bench *b, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "{");
    for (size_t i = 0; i < b->nqueues && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s\"%s\"", i ? "," : "", b->queues[i]);
    snprintf(buf + used, size > used ? size - used : 0, "}");
}

/* Publishes `count` tasks: ids "<run>-<prefix><n>"; records publish times. */
static void publish(struct bench *b, const char *prefix, const char *const *queues, size_t nqueues,
                    int64_t count, double rate, double *published_ms) {
    char *payload_text = NULL;
    json_t *payload = json_null();
    if (b->cfg->payload_bytes > 0) {
        payload_text = malloc((size_t)b->cfg->payload_bytes + 1);
        memset(payload_text, 'x', (size_t)b->cfg->payload_bytes);
        payload_text[b->cfg->payload_bytes] = '\0';
        payload = json_string(payload_text);
    }
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
        struct baton_task *t = baton_task_new(b->cfg->type);
        char id[96];
        snprintf(id, sizeof id, "%s-%s%" PRId64, b->run, prefix, n);
        t->id = strdup(id);
        free(t->queue);
        t->queue = strdup(queues[(size_t)n % nqueues]);
        t->priority = b->priorities[(size_t)n % b->npriorities];
        json_decref(t->payload);
        t->payload = json_incref(payload);
        if (published_ms)
            published_ms[n] = wall_ms();
        if (baton_submit(b->producer, t, NULL, NULL, errstr, sizeof errstr))
            die("submit: %s", errstr);
        baton_task_destroy(t);
        if ((n & 1023) == 0)
            baton_producer_poll(b->producer, 0);
    }
    if (baton_producer_flush(b->producer, 60000))
        die("the producer could not flush within 60 s");
    json_decref(payload);
    free(payload_text);
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
    char group[64], kconf[1024];
    snprintf(group, sizeof group, "baton-bench-%s", b->run);
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
                     "--group-id",
                     group,
                     "--kafka-config-file",
                     c->kafka_config_file,
                     "--redis-durability",
                     c->redis_durability,
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

/* Tasks end to end until one arrives, so the consumer group has joined
 * (a group reading from the end of the topic misses what was published
 * before its assignment) and every connection is open before any clock
 * starts. */
static void warm_up(struct bench *b) {
    const char *queues[] = {b->queues[0]};
    char like[96];
    snprintf(like, sizeof like, "%s-warmup-%%", b->run);
    const char *params[] = {queues[0], like};
    double until = wall_ms() + 90000;
    for (int round = 0; !interrupted; round++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "warmup-%d-", round);
        publish(b, prefix, queues, 1, 1, 0, NULL);
        double round_end = wall_ms() + 1000;
        while (!interrupted && wall_ms() < round_end) {
            if (pg_long(b,
                        "SELECT count(*) FROM baton.tasks WHERE queue = $1 AND id LIKE $2"
                        " AND finished_at IS NOT NULL",
                        2, params) > 0)
                return;
            usleep(20000);
        }
        if (wall_ms() > until)
            die("no warm-up task finished in history after 90 s (logs: %s)", b->logdir);
    }
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
    publish(b, "mem-", queues, 1, n, 0, NULL);
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

/* Main phase: publish, wait for history, measure. Returns the report. */
static json_t *main_phase(struct bench *b) {
    int64_t n = b->cfg->tasks;
    char qarray[2048];
    queues_array(b, qarray, sizeof qarray);
    char like[64];
    snprintf(like, sizeof like, "%s-t%%", b->run);
    const char *params[] = {qarray, like};
    const char *size_sql = "SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint"
                           " FROM pg_class WHERE relnamespace = 'baton'::regnamespace"
                           " AND relkind = 'r'";
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
    const char *const *queues = (const char *const *)b->queues;
    double t0 = wall_ms();
    publish(b, "t", queues, b->nqueues, n, b->cfg->rate, published);
    double t_published = wall_ms();
    if (b->failed)
        die("%" PRIu64 " tasks were not delivered to Kafka", b->failed);

    const char *count_sql = "SELECT count(*) FROM baton.tasks WHERE queue = ANY($1::text[])"
                            " AND id LIKE $2 AND finished_at IS NOT NULL";
    long long done = 0;
    double deadline = t0 + (double)b->cfg->timeout_s * 1000.0;
    while (!interrupted && (done = pg_long(b, count_sql, 2, params)) < n) {
        progress("tasks", done, n, t0);
        if (wall_ms() > deadline)
            die("only %lld of %" PRId64 " tasks finished in history after %" PRId64 " s (logs: %s)",
                done, n, b->cfg->timeout_s, b->logdir);
        usleep(20000);
    }
    double t_done = wall_ms();
    progress("tasks", n, n, t0);
    if (interrupted)
        die("interrupted by signal %d", (int)interrupted);

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

    /* Latencies, from history and our publish times. */
    PGresult *res =
        PQexecParams(b->pg,
                     "SELECT id, extract(epoch FROM first_started_at) * 1000,"
                     " extract(epoch FROM finished_at) * 1000, attempts FROM baton.tasks"
                     " WHERE queue = ANY($1::text[]) AND id LIKE $2",
                     2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die("PostgreSQL: %s", PQerrorMessage(b->pg));
    size_t rows = (size_t)PQntuples(res);
    double *to_start = malloc((rows ? rows : 1) * sizeof *to_start);
    double *to_finish = malloc((rows ? rows : 1) * sizeof *to_finish);
    unsigned char *seen = calloc((size_t)n, 1);
    size_t counted = 0, duplicates = 0, unknown = 0;
    long long extra_attempts = 0;
    size_t prefix_len = strlen(b->run) + 2; /* "<run>-t" */
    for (size_t r = 0; r < rows; r++) {
        const char *id = PQgetvalue(res, (int)r, 0);
        char *end;
        long long k = strtoll(id + prefix_len, &end, 10);
        if (*end || k < 0 || k >= n) {
            unknown++;
            continue;
        }
        if (seen[k]++) {
            duplicates++;
            continue;
        }
        /* NOLINTBEGIN(cert-err34-c): PostgreSQL's text form of numeric columns */
        to_start[counted] = atof(PQgetvalue(res, (int)r, 1)) - published[k];
        to_finish[counted] = atof(PQgetvalue(res, (int)r, 2)) - published[k];
        extra_attempts += atoll(PQgetvalue(res, (int)r, 3)) - 1;
        /* NOLINTEND(cert-err34-c) */
        counted++;
    }
    PQclear(res);
    long long pg_after = pg_long(b, size_sql, 0, NULL);

    json_t *report = json_object();
    json_object_set_new(report, "tasks", json_integer(n));
    json_object_set_new(report, "counted_once", json_integer((json_int_t)counted));
    json_object_set_new(report, "duplicates", json_integer((json_int_t)duplicates));
    json_object_set_new(report, "unknown_rows", json_integer((json_int_t)unknown));
    json_object_set_new(report, "extra_attempts", json_integer(extra_attempts));
    json_object_set_new(report, "mode", json_string(b->cfg->rate > 0 ? "latency" : "throughput"));
    json_object_set_new(report, "target_rate", json_real(b->cfg->rate));
    json_object_set_new(report, "publish_rate", json_real((double)n * 1000.0 / (t_published - t0)));
    json_object_set_new(report, "end_to_end_rate", json_real((double)n * 1000.0 / (t_done - t0)));
    json_object_set_new(report, "end_to_end_seconds", json_real((t_done - t0) / 1000.0));
    json_object_set_new(report, "submit_to_start", latency_json(to_start, counted));
    json_object_set_new(report, "submit_to_finish", latency_json(to_finish, counted));
    json_object_set_new(report, "processes", procs);
    json_object_set_new(report, "cpu_us_per_task_total", json_real(total_cpu * 1e6 / (double)n));
    json_object_set_new(report, "postgres_bytes_per_task",
                        json_real((double)(pg_after - pg_before) / (double)n));
    free(to_start);
    free(to_finish);
    free(seen);
    free(published);
    return report;
}

static void print_report(const json_t *r) {
    printf("\nbaton-bench: %" JSON_INTEGER_FORMAT " %s tasks, %s mode\n",
           json_integer_value(json_object_get(r, "tasks")),
           json_string_value(json_object_get(r, "type")),
           json_string_value(json_object_get(r, "mode")));
    printf("  publish rate           %10.0f tasks/s\n",
           json_real_value(json_object_get(r, "publish_rate")));
    printf("  end-to-end rate        %10.0f tasks/s  (first publish -> last history row, %.2f s)\n",
           json_real_value(json_object_get(r, "end_to_end_rate")),
           json_real_value(json_object_get(r, "end_to_end_seconds")));
    const char *names[] = {"submit_to_start", "submit_to_finish"};
    printf("  latency (ms)           %8s %8s %8s %8s %8s\n", "p50", "p90", "p99", "p99.9", "max");
    for (int i = 0; i < 2; i++) {
        json_t *l = json_object_get(r, names[i]);
        printf("  %-22s %8.1f %8.1f %8.1f %8.1f %8.1f\n", names[i],
               json_real_value(json_object_get(l, "p50_ms")),
               json_real_value(json_object_get(l, "p90_ms")),
               json_real_value(json_object_get(l, "p99_ms")),
               json_real_value(json_object_get(l, "p99_9_ms")),
               json_real_value(json_object_get(l, "max_ms")));
    }
    printf("  %-22s %10s %12s %12s\n", "process", "cpu s", "cpu us/task", "peak RSS MiB");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r, "processes"), i, p) {
        printf("  %-22s %10.2f %12.1f %12.1f\n", json_string_value(json_object_get(p, "process")),
               json_real_value(json_object_get(p, "cpu_seconds")),
               json_real_value(json_object_get(p, "cpu_us_per_task")),
               json_real_value(json_object_get(p, "peak_rss_mib")));
    }
    printf("  %-22s %10s %12.1f\n", "all processes", "",
           json_real_value(json_object_get(r, "cpu_us_per_task_total")));
    json_t *mem = json_object_get(r, "redis_bytes_per_queued_task");
    if (mem)
        printf("  Redis bytes per queued task      %8.0f  (payload %" JSON_INTEGER_FORMAT
               " bytes)\n",
               json_real_value(mem), json_integer_value(json_object_get(r, "payload_bytes")));
    printf("  PostgreSQL bytes per task        %8.0f\n",
           json_real_value(json_object_get(r, "postgres_bytes_per_task")));
    printf("  bookkeeping: %" JSON_INTEGER_FORMAT " counted once, %" JSON_INTEGER_FORMAT
           " duplicates, %" JSON_INTEGER_FORMAT " extra attempts\n",
           json_integer_value(json_object_get(r, "counted_once")),
           json_integer_value(json_object_get(r, "duplicates")),
           json_integer_value(json_object_get(r, "extra_attempts")));
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
    if (!err && first < argc)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG, "unexpected argument '%s'",
                           argv[first]);
    if (!err && baton_log_level_parse(cfg.log_level, &baton_log_threshold))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG, "bad --log-level");
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

    struct bench b;
    memset(&b, 0, sizeof b);
    b.cfg = &cfg;
    snprintf(b.run, sizeof b.run, "b%lx", (unsigned long)(wall_ms() / 10) % 0xffffffffUL);
    size_t nq;
    char **qnames = split(cfg.queues, &nq);
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
    snprintf(b.logdir, sizeof b.logdir, "/tmp/baton-bench.%s", b.run);
    mkdir(b.logdir, 0755);

    if (baton_redis_connect(cfg.redis_url, 5000, &b.redis, errstr, sizeof errstr))
        die("%s", errstr);
    if (baton_pg_connect(cfg.pg_dsn, "baton-bench", &b.pg, errstr, sizeof errstr))
        die("%s", errstr);
    struct baton_producer_config pc = {.kafka_brokers = cfg.kafka_brokers,
                                       /* Latency mode: batch for at most 1 ms. */
                                       .kafka_config = cfg.rate > 0 ? "linger.ms=1" : "linger.ms=5",
                                       .kafka_config_file = cfg.kafka_config_file,
                                       .delivery_timeout_ms = 60000,
                                       .on_delivery = on_delivery,
                                       .opaque = &b};
    b.producer = baton_producer_new(&pc, errstr, sizeof errstr);
    if (!b.producer)
        die("%s", errstr);

    if (cfg.external)
        fprintf(stderr, "baton-bench: using running scheduler and workers (queues %s)\n",
                cfg.queues);
    else
        start_services(&b, argv[0]);
    warm_up(&b);
    double redis_per_task = -1;
    if (cfg.memory_tasks > 0)
        redis_per_task = memory_phase(&b);
    json_t *report = main_phase(&b);
    json_object_set_new(report, "run", json_string(b.run));
    json_object_set_new(report, "type", json_string(cfg.type));
    json_object_set_new(report, "payload_bytes", json_integer(cfg.payload_bytes));
    json_object_set_new(report, "workers", json_integer(cfg.workers));
    json_object_set_new(report, "concurrency", json_integer(cfg.concurrency));
    if (redis_per_task >= 0)
        json_object_set_new(report, "redis_bytes_per_queued_task", json_real(redis_per_task));
    stop_started();
    remove_logs(b.logdir);
    print_report(report);
    if (cfg.json_path && json_dump_file(report, cfg.json_path, JSON_INDENT(2)) != 0)
        die("cannot write %s", cfg.json_path);
    json_decref(report);
    baton_producer_destroy(b.producer);
    PQfinish(b.pg);
    baton_redis_destroy(b.redis);
    split_free(qnames, nq);
    split_free(pnames, np);
    split_free(b.queues, b.nqueues);
    free(b.priorities);
    baton_config_free(options, OPTION_COUNT, &cfg);
    return 0;
}
