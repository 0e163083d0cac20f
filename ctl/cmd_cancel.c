/*
 * cmd_cancel.c - `batonctl cancel ID [--queue Q]`.
 *
 * cancel.lua does the work atomically: a queued or scheduled task is
 * canceled at once (out of its sets, event "canceled", kept for the
 * retention period); a running one is only marked: its worker learns it at
 * the next lease renewal (every lease/3), stops the handler and writes
 * "canceled" itself with its fencing token (finish_canceled.lua). So a
 * cancel never races a worker's own outcome: whichever script runs first
 * wins, and the other sees a state it does not expect.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "queue.h"
#include "transition.h"

#define COMMAND "cancel"

struct cancel_opts {
    const char *queue;
};

static const struct baton_opt cancel_flags[] = {
    {"queue", BATON_OPT_STRING | CTL_FLAG, NULL,
     "the task's queue (needed when the id exists in several)", offsetof(struct cancel_opts, queue),
     0, 0},
};

static const struct ctl_usage cancel_usage = {
    COMMAND,
    "cancel ID [--queue Q]",
    "Cancels a task. Queued or scheduled: canceled at once, it never runs.\n"
    "Running: cancellation is requested and the worker stops the handler at its\n"
    "next lease renewal (every lease/3), then records \"canceled\". A finished\n"
    "task cannot be canceled (exit 1); an unknown id exits 3. Canceled tasks\n"
    "stay in Redis for the scheduler's retention (global --retention-ms).",
    cancel_flags,
    sizeof cancel_flags / sizeof cancel_flags[0],
    1,
    1};

int ctl_cmd_cancel(struct ctl_config *config, int argc, char **argv) {
    struct cancel_opts opts = {NULL};
    const char *args[1];
    int nargs = 0;
    int rc = ctl_parse_args(config, &cancel_usage, &opts, argc, argv, args, &nargs);
    if (rc)
        return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
    const char *id = args[0];
    if ((rc = ctl_check_task_id(COMMAND, id)) || (rc = ctl_check_queue_name(COMMAND, opts.queue)))
        return rc;
    baton_redis_t *r = NULL;
    if ((rc = ctl_redis_open(config, COMMAND, &r)))
        return rc;
    char *queue = NULL;
    if ((rc = ctl_retention(config, COMMAND, r)) ||
        (rc = ctl_resolve_task(r, COMMAND, id, opts.queue, &queue))) {
        baton_redis_destroy(r);
        return rc;
    }
    struct baton_queue_keys keys;
    baton_queue_keys_init(&keys, queue);
    char errstr[512];
    baton_event_t result = BATON_EVENT_CANCELED;
    baton_err_t err =
        baton_tr_cancel(r, &keys, id, config->retention_ms, &result, errstr, sizeof errstr);
    baton_redis_destroy(r);
    if (err == BATON_ERR_NOT_FOUND || err == BATON_ERR_STATE) {
        /* Gone since the lookup, or "task x is succeeded and cannot be
         * canceled". */
        rc = err == BATON_ERR_NOT_FOUND ? CTL_EXIT_NOT_FOUND : CTL_EXIT_FAIL;
        ctl_error(COMMAND, "queue %s: %s", queue, errstr);
    } else if (err) {
        ctl_error(COMMAND, "%s", errstr);
        rc = CTL_EXIT_FAIL;
    } else {
        int requested = result == BATON_EVENT_CANCEL_REQUESTED;
        if (config->json) {
            json_t *doc = json_object();
            json_object_set_new(doc, "queue", ctl_json_str(queue));
            json_object_set_new(doc, "id", ctl_json_str(id));
            json_object_set_new(doc, "result",
                                json_string(requested ? "cancel_requested" : "canceled"));
            ctl_json_print(doc);
        } else if (requested) {
            printf("cancel requested (running: the worker stops it)\n");
        } else {
            printf("canceled\n");
        }
    }
    free(queue);
    return rc;
}
