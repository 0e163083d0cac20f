/*
 * main.c - baton-worker: the worker library with the built-in handlers and
 * command handlers from configuration. SIGTERM/SIGINT: graceful stop (no
 * more claims, running tasks get --grace-ms, the rest return to the head
 * of their queues, exit 0); a second signal exits at once (leases expire
 * and maintenance reclaims the tasks). With --metrics-port, serves
 * /metrics, /healthz and /readyz (ready while Redis answers).
 */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "redis.h"
#include "retention.h"
#include "worker.h"
#ifdef BATON_TEST_HOOKS
#include "worker_internal.h"
#endif

/* What the command line sets: the library's config, and the binary's own
 * settings (handlers, metrics, logging). The table stores straight into
 * `worker`; its defaults are baton_worker_config_defaults()'s, checked at
 * start (main()), so the two cannot drift apart. */
struct worker_settings {
    struct baton_worker_config worker; /* first: check_defaults() compares it */
    int64_t retention_ms; /* --retention-ms as given; 0 = not given (agree_retention()) */
    char *redis_durability;
    char *commands;
    char *builtins;
    char *log_level;
    int64_t metrics_port;
    char *metrics_bind;
    int64_t metrics_label_values;
};

#define W(field) offsetof(struct worker_settings, worker.field)
#define CFG(field) offsetof(struct worker_settings, field)
static const struct baton_opt options[] = {
    BATON_OPT_SECTION("Redis and queues"),
    {"redis-url", BATON_OPT_STRING, "redis://127.0.0.1:6379/0", "Redis URL", W(redis_url), 0, 0},
    {"redis-durability", BATON_OPT_STRING, "strict",
     "strict: refuse a Redis without appendonly yes and appendfsync always (checked at each "
     "connect); relaxed: accept it, and lose acknowledged outcomes if Redis crashes",
     CFG(redis_durability), 0, 0},
    {"redis-timeout-ms", BATON_OPT_DURATION, "5s", "Redis connect and command timeout",
     W(redis_timeout_ms), 1, 600000},
    {"queues", BATON_OPT_STRING, "default",
     "queues to serve with weights, e.g. critical=6,default=3,low=1 (weight 1 if omitted)",
     W(queues), 0, 0},
    {"worker-id", BATON_OPT_STRING, NULL, "worker id (default <host>-<pid>-<random>)", W(worker_id),
     0, 0},
    BATON_OPT_SECTION("Running tasks"),
    {"concurrency", BATON_OPT_INT | BATON_OPT_INT_FIELD, "4",
     "tasks run at once (executor threads)", W(concurrency), 1, 1024},
    {"lease-ms", BATON_OPT_DURATION, "30s", "lease length; renewed every lease/3", W(lease_ms), 300,
     86400000},
    {"grace-ms", BATON_OPT_DURATION, "30s",
     "on SIGTERM, how long running tasks may finish before they are returned", W(grace_ms), 0,
     86400000},
    {"backoff-base-ms", BATON_OPT_DURATION, "1s", "retry backoff base (full jitter)",
     W(backoff_base_ms), 0, 86400000},
    {"backoff-cap-ms", BATON_OPT_DURATION, "10m", "retry backoff cap", W(backoff_cap_ms), 0,
     604800000},
    {"retention-ms", BATON_OPT_DURATION, NULL,
     "how long finished tasks stay in Redis; unset: the scheduler's (published in Redis), or 7d "
     "if no scheduler has run yet; a value other than the scheduler's is refused at start",
     CFG(retention_ms), 1000, 31536000000.0},
    {"max-result-bytes", BATON_OPT_INT | BATON_OPT_SIZE_FIELD, "65536",
     "largest result kept; larger ones are replaced by {\"truncated\":true,\"bytes\":N}",
     W(max_result_bytes), 0, 67108864},
    BATON_OPT_SECTION("Handlers"),
    {"builtins", BATON_OPT_STRING, "noop,sleep,echo",
     "built-in handlers to register, comma-separated: noop, sleep, echo, and the test-only fail "
     "and crash (crash SIGKILLs the worker: never where producers are untrusted); none for none",
     CFG(builtins), 0, 0},
    {"command", BATON_OPT_LIST | BATON_OPT_KEY_VALUE, NULL,
     "TYPE=PROGRAM: run PROGRAM (sh -c) for tasks of TYPE; repeat the flag, or one per line in "
     "the environment variable",
     CFG(commands), 0, 0},
    {"command-env", BATON_OPT_STRING, NULL,
     "command handlers: environment variables passed on to the program, comma-separated "
     "(NAME, or PREFIX* for a prefix); besides these it gets only PATH, HOME, LANG, LC_*, TZ "
     "and its BATON_TASK_* variables, never the worker's secrets",
     W(command_env), 0, 0},
    {"kill-grace-ms", BATON_OPT_DURATION, "5s", "command handlers: SIGKILL this long after SIGTERM",
     W(kill_grace_ms), 0, 600000},
    BATON_OPT_SECTION("Logs and metrics"),
    {"log-level", BATON_OPT_STRING, "info", "debug, info, warn, error or off", CFG(log_level), 0,
     0},
    {"metrics-port", BATON_OPT_INT, "0",
     "port of /metrics, /healthz and /readyz (0 = off; 9465 by convention)", CFG(metrics_port), 0,
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

static baton_worker_t *the_worker;
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig) {
    (void)sig;
    if (signals_seen++) {
        /* Second signal: leave now; leases expire and the tasks are
         * reclaimed. Command handlers go too: none may run on unwatched. */
        baton_worker_kill_commands();
        _exit(130);
    }
    baton_worker_stop(the_worker);
}

#define PROBE_TIMEOUT_MS 1000 /* a readiness check answers "not ready", never hangs */

/* What /readyz checks: Redis, with a connection of its own. */
struct readiness {
    const char *redis_url;
    pthread_mutex_t lock; /* guards redis: probes may run at once */
    baton_redis_t *redis; /* owned; NULL until needed or after a failure */
};

/* Ready while Redis answers PING. @locality an HTTP server thread */
static int worker_ready(void *ctx, char *why, size_t why_size) {
    struct readiness *rd = ctx;
    char errstr[512];
    pthread_mutex_lock(&rd->lock);
    baton_err_t err =
        baton_redis_probe(&rd->redis, rd->redis_url, PROBE_TIMEOUT_MS, errstr, sizeof errstr);
    pthread_mutex_unlock(&rd->lock);
    if (err)
        snprintf(why, why_size, "redis: %s", errstr);
    return !err;
}

#ifdef BATON_TEST_HOOKS
/*
 * baton-worker-test only (tests/integration): failure points set from the
 * environment. The production binary is built without them, so no
 * environment can trigger one there.
 */
static int64_t return_pause_ms;

static void return_pause(void) {
    BATON_INFO("worker", "test hook: pausing %lld ms before handing a task back",
               (long long)return_pause_ms);
    usleep((useconds_t)(return_pause_ms * 1000));
}

static void install_test_hooks(void) {
    const char *pause = getenv("BATON_TEST_RETURN_PAUSE_MS");
    return_pause_ms = pause ? strtoll(pause, NULL, 10) : 0;
    if (return_pause_ms > 0)
        baton_worker_test_return_pause = return_pause;
}
#endif

/*
 * The retention the worker runs with, agreed with the scheduler's
 * (common/retention.h): --retention-ms when given, checked against the
 * published one; else the published one, or the library's default before
 * any scheduler ran. Here rather than in the library: a library user
 * chooses its own configuration. A disagreement is a configuration error
 * (*rc 2); Redis unreachable fails as the worker's own connect would.
 */
static baton_err_t agree_retention(struct worker_settings *flags, int *rc, char *errstr,
                                   size_t errstr_size) {
    struct baton_worker_config *config = &flags->worker;
    int given = flags->retention_ms != 0;
    if (given)
        config->retention_ms = flags->retention_ms;
    baton_redis_t *r = NULL;
    baton_err_t err = baton_redis_connect(config->redis_url, (int)config->redis_timeout_ms, &r,
                                          errstr, errstr_size);
    if (!err) {
        err = baton_retention_agree(r, "worker", &config->retention_ms, given, errstr, errstr_size);
        if (err == BATON_ERR_CONFIG)
            *rc = 2;
    }
    baton_redis_destroy(r);
    return err;
}

/* Registers each "TYPE=PROGRAM" line of `commands`. */
static baton_err_t register_commands(baton_worker_t *w, char *commands, char *errstr,
                                     size_t errstr_size) {
    char *save = NULL;
    for (char *line = strtok_r(commands, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq || eq == line || !eq[1])
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "--command '%s': expected TYPE=PROGRAM", line);
        *eq = '\0';
        baton_err_t err = baton_worker_register_command(w, line, eq + 1);
        if (err)
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "--command: '%s' is not a valid task type", line);
    }
    return BATON_OK;
}

int main(int argc, char **argv) {
    struct worker_settings flags;
    char errstr[1024];
    struct baton_worker_config library_defaults;
    baton_worker_config_defaults(&library_defaults);
    if (baton_config_check_defaults(options, OPTION_COUNT, &library_defaults,
                                    sizeof library_defaults, errstr, sizeof errstr)) {
        /* A build defect, caught by every test that starts a worker. */
        fprintf(stderr, "baton-worker: %s (baton_worker_config_defaults)\n", errstr);
        return 70;
    }
    memset(&flags, 0, sizeof flags);
    flags.worker = library_defaults;
    int rc = baton_config_start("baton-worker", "baton-worker [options]",
                                "Claims tasks from Redis queues and runs them: built-in handlers "
                                "and command handlers (--command TYPE=PROGRAM).",
                                options, OPTION_COUNT, &flags, argc, argv, &flags.log_level);
    if (rc >= 0)
        return rc;
    baton_err_t err =
        baton_redis_durability_configure(flags.redis_durability, "worker", errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "baton-worker: %s\n", errstr);
        baton_config_free(options, OPTION_COUNT, &flags);
        return 2;
    }
#ifdef BATON_TEST_HOOKS
    install_test_hooks();
#endif

    struct baton_worker_config *config = &flags.worker;
    rc = 1;
    baton_metrics_t *registry = baton_metrics_new();
    baton_metrics_set_label_values(registry, (size_t)flags.metrics_label_values);
    baton_http_t *http = NULL;
    struct readiness readiness = {config->redis_url, PTHREAD_MUTEX_INITIALIZER, NULL};
    config->metrics = registry;
    err =
        registry ? BATON_OK : baton_seterr(errstr, sizeof errstr, BATON_ERR_NOMEM, "out of memory");
    if (registry)
        baton_metric_set(baton_metrics_gauge(registry, "baton_redis_durability_relaxed",
                                             BATON_REDIS_DURABILITY_METRIC_HELP, NULL),
                         NULL, baton_redis_durability == BATON_REDIS_DURABILITY_RELAXED);
    if (!err)
        err = agree_retention(&flags, &rc, errstr, sizeof errstr);
    if (!err)
        err = baton_worker_new(config, &the_worker, errstr, sizeof errstr);
    if (!err) {
        err = baton_worker_register_builtins(the_worker, flags.builtins, errstr, sizeof errstr);
        if (err == BATON_ERR_CONFIG)
            rc = 2;
    }
    if (!err && flags.commands)
        err = register_commands(the_worker, flags.commands, errstr, sizeof errstr);
    if (!err && flags.metrics_port > 0) {
        struct baton_http_config http_config = {
            flags.metrics_bind, (int)flags.metrics_port, registry, worker_ready, &readiness, {0}};
        err = baton_http_start(&http_config, &http, errstr, sizeof errstr);
        if (err == BATON_ERR_CONFIG)
            rc = 2;
    }
    if (!err) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        err = baton_worker_run(the_worker, errstr, sizeof errstr);
        rc = err ? 1 : 0;
    }
    if (err)
        fprintf(stderr, "baton-worker: %s\n", errstr);
    baton_http_stop(http);
    baton_redis_destroy(readiness.redis);
    baton_worker_destroy(the_worker);
    baton_metrics_destroy(registry);
    baton_config_free(options, OPTION_COUNT, &flags);
    return rc;
}
