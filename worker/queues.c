/*
 * queues.c - the queues a worker serves and how it shares its slots.
 *
 * --queues "critical=6,default=3,low=1" gives each queue a weight; each
 * claim round shares the idle executor slots among the queues by smooth
 * weighted round robin (the nginx upstream algorithm): over any run of
 * rounds every queue gets slots in proportion to its weight, interleaved
 * rather than in bursts, and a queue of weight 1 is never starved. Every
 * key a queue's scripts need is built here once, at start.
 * Pure: no Redis, no locks (the fetcher thread alone allocates).
 */
#include <stdlib.h>
#include <string.h>

#include "task.h"
#include "worker_internal.h"

/* Fills q's name, weight and keys; 0 without memory. */
static int queue_init(struct worker_queue *q, const char *name, int weight) {
    q->name = strdup(name);
    q->weight = weight;
    q->current = 0;
    baton_queue_key(q->ready, name, "ready");
    baton_queue_key(q->running, name, "running");
    baton_queue_key(q->deadline, name, "deadline");
    baton_queue_key(q->events, name, "events");
    baton_queue_key(q->paused, name, "paused");
    baton_queue_key(q->notify, name, "notify");
    baton_queue_key(q->scheduled, name, "scheduled");
    baton_queue_key(q->dead, name, "dead");
    baton_queue_key(q->seq, name, "seq");
    baton_queue_key(q->prefix, name, "t:");
    return q->name != NULL;
}

baton_err_t baton_worker_queues_parse(const char *spec, struct worker_queue **out, size_t *n,
                                      char *errstr, size_t errstr_size) {
    *out = NULL;
    *n = 0;
    char *copy = strdup(spec ? spec : "");
    if (!copy)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    size_t cap = 1;
    for (const char *p = copy; *p; p++)
        cap += *p == ',';
    struct worker_queue *queues = calloc(cap, sizeof *queues);
    size_t count = 0;
    baton_err_t err =
        queues ? BATON_OK : baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); !err && item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        long weight = 1;
        if (eq) {
            *eq = '\0';
            char *end;
            weight = strtol(eq + 1, &end, 10);
            if (end == eq + 1 || *end || weight < 1 || weight > 1000)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                   "--queues: weight of '%s' must be an integer 1-1000", item);
        }
        if (!err && !baton_task_name_valid(item))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                               "--queues: '%s' is not a valid queue name", item);
        for (size_t i = 0; !err && i < count; i++)
            if (strcmp(queues[i].name, item) == 0)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                   "--queues: '%s' is listed twice", item);
        if (!err && !queue_init(&queues[count++], item, (int)weight))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    free(copy);
    if (!err && count == 0)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "--queues: no queue given");
    if (err) {
        baton_worker_queues_free(queues, count);
        return err;
    }
    *out = queues;
    *n = count;
    return BATON_OK;
}

void baton_worker_queues_free(struct worker_queue *queues, size_t n) {
    for (size_t i = 0; queues && i < n; i++)
        free(queues[i].name);
    free(queues);
}

void baton_worker_allocate_slots(struct worker_queue *queues, size_t n, int idle, int *counts) {
    int total = 0;
    for (size_t i = 0; i < n; i++) {
        counts[i] = 0;
        total += queues[i].weight;
    }
    for (int s = 0; s < idle; s++) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            queues[i].current += queues[i].weight;
            if (queues[i].current > queues[best].current)
                best = i;
        }
        queues[best].current -= total;
        counts[best]++;
    }
}
