/*
 * queues.c - the queues a worker serves and how it shares its slots.
 *
 * --queues "critical=6,default=3,low=1" gives each queue a weight; each
 * claim round shares the idle executor slots among the queues by smooth
 * weighted round robin (the nginx upstream algorithm): over any run of
 * rounds every queue gets slots in proportion to its weight, interleaved
 * rather than in bursts, and a queue of weight 1 is never starved. A busy
 * worker hands slots out in chunks (the fetcher's CLAIM_CHUNK), so that a
 * claim carries several tasks: every claim is one script call, whose
 * fixed cost in Redis is that of several tasks. The
 * fetcher shares only among the queues that may have work
 * (baton_worker_allocate_slots_among), so a drained queue costs no claim. Every
 * key a queue's scripts need is built here once, at start.
 * Pure: no Redis, no locks (the fetcher thread alone allocates).
 */
#include <stdlib.h>
#include <string.h>

#include "task.h"
#include "worker_internal.h"

/* Fills q's name, weight and keys (name already checked by
 * baton_task_name_valid, so it fits). */
static void queue_init(struct worker_queue *q, const char *name, int weight) {
    baton_queue_keys_init(&q->keys, name);
    q->weight = weight;
    q->current = 0;
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
            if (strcmp(queues[i].keys.name, item) == 0)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                   "--queues: '%s' is listed twice", item);
        if (!err)
            queue_init(&queues[count++], item, (int)weight);
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
    (void)n; /* a queue owns nothing beyond its slot */
    free(queues);
}

void baton_worker_allocate_slots(struct worker_queue *queues, size_t n, int idle, int *counts) {
    baton_worker_allocate_slots_among(queues, n, NULL, idle, 1, counts);
}

void baton_worker_allocate_slots_among(struct worker_queue *queues, size_t n,
                                       const unsigned char *eligible, int idle, int chunk,
                                       int *counts) {
    int total = 0;
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
        counts[i] = 0;
        if (eligible && !eligible[i])
            continue;
        total += queues[i].weight;
        if (first == n)
            first = i;
    }
    if (first == n)
        return; /* no queue to share among */
    if (chunk < 1)
        chunk = 1;
    for (int s = 0; s < idle; s += chunk) {
        size_t best = first;
        for (size_t i = first; i < n; i++) {
            if (eligible && !eligible[i])
                continue;
            queues[i].current += queues[i].weight;
            if (queues[i].current > queues[best].current)
                best = i;
        }
        queues[best].current -= total;
        counts[best] += idle - s < chunk ? idle - s : chunk;
    }
}
