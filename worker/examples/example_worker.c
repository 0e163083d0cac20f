/*
 * example_worker.c - a complete worker program of your own, built on the
 * baton worker library (worker/worker.h). It serves one task type,
 * "example.wordcount": the payload is {"text": "..."} and the result is
 * {"words": N}. Build it like the tests do (CMake target example-worker),
 * run it like baton-worker:
 *
 *     example-worker redis://127.0.0.1:6379/0 default
 *
 * SIGTERM or Ctrl-C stops it gracefully.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "worker.h"

static baton_worker_t *worker;

static void on_signal(int sig) {
    (void)sig;
    /* async-signal-safe: it only counts the request */
    baton_worker_stop(worker); // NOLINT(bugprone-signal-handler)
}

/* The handler: runs on one of the worker's threads, once per attempt. */
static baton_handler_status_t wordcount(baton_job_t *job, void *ctx) {
    (void)ctx;
    const char *text = json_string_value(json_object_get(baton_job_payload(job), "text"));
    if (!text) {
        baton_job_set_error(job, "payload must be {\"text\": \"...\"}");
        return BATON_HANDLER_FAILED_PERMANENT; /* retrying cannot help */
    }
    long words = 0;
    for (int in_word = 0; *text; text++) {
        if (isspace((unsigned char)*text))
            in_word = 0;
        else if (!in_word++)
            words++;
    }
    char result[64];
    snprintf(result, sizeof result, "{\"words\":%ld}", words);
    baton_job_set_result(job, result, strlen(result));
    return BATON_HANDLER_OK;
}

int main(int argc, char **argv) {
    struct baton_worker_config config;
    baton_worker_config_defaults(&config);
    config.redis_url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379/0";
    config.queues = argc > 2 ? argv[2] : "default";
    config.concurrency = 2;

    char errstr[512];
    if (baton_worker_new(&config, &worker, errstr, sizeof errstr) != BATON_OK) {
        fprintf(stderr, "example-worker: %s\n", errstr);
        return 1;
    }
    baton_worker_register(worker, "example.wordcount", wordcount, NULL);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    baton_err_t err = baton_worker_run(worker, errstr, sizeof errstr);
    if (err)
        fprintf(stderr, "example-worker: %s\n", errstr);
    baton_worker_destroy(worker);
    return err ? 1 : 0;
}
