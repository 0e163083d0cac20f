/*
 * handlers.c - the built-in handlers: noop, sleep, echo, fail, crash.
 *
 * They exist for tests, the demo and the benchmark: each exercises one
 * path of the worker (success, a long cooperative handler that honours
 * timeouts and stops, a result, a failure with a message, a dying process).
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "worker_internal.h"

baton_handler_status_t baton_worker_builtin_noop(baton_job_t *job, void *ctx) {
    (void)job;
    (void)ctx;
    return BATON_HANDLER_OK;
}

/* Payload: milliseconds, as a number or {"ms": N}. Stops early (and fails)
 * when the attempt times out or the worker stops. */
baton_handler_status_t baton_worker_builtin_sleep(baton_job_t *job, void *ctx) {
    (void)ctx;
    const json_t *p = baton_job_payload(job);
    const json_t *ms = json_is_object(p) ? json_object_get(p, "ms") : p;
    if (!json_is_integer(ms) || json_integer_value(ms) < 0) {
        baton_job_set_error(job, "sleep: payload must be a number of milliseconds");
        return BATON_HANDLER_FAILED_PERMANENT;
    }
    if (baton_job_sleep(job, (int64_t)json_integer_value(ms))) {
        baton_job_set_error(job, "sleep: interrupted");
        return BATON_HANDLER_FAILED;
    }
    return BATON_HANDLER_OK;
}

/* The result is the payload. */
baton_handler_status_t baton_worker_builtin_echo(baton_job_t *job, void *ctx) {
    (void)ctx;
    char *text = json_dumps(baton_job_payload(job), JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return BATON_HANDLER_FAILED;
    baton_err_t err = baton_job_set_result(job, text, strlen(text));
    free(text);
    return err ? BATON_HANDLER_FAILED : BATON_HANDLER_OK;
}

/* Always fails; the payload (a string, or any JSON) is the message. */
baton_handler_status_t baton_worker_builtin_fail(baton_job_t *job, void *ctx) {
    (void)ctx;
    const json_t *p = baton_job_payload(job);
    if (json_is_string(p)) {
        baton_job_set_error(job, "%s", json_string_value(p));
    } else {
        char *text = json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
        baton_job_set_error(job, "fail handler: %s", text ? text : "null");
        free(text);
    }
    return BATON_HANDLER_FAILED;
}

/* Kills this worker process at once, as a crash would: for the fault tests
 * (leases expire, maintenance reclaims every task the worker held). */
baton_handler_status_t baton_worker_builtin_crash(baton_job_t *job, void *ctx) {
    (void)job;
    (void)ctx;
    kill(getpid(), SIGKILL);
    pause();
    return BATON_HANDLER_FAILED;
}
