/*
 * queue.c - key names and ready scores (see queue.h for the layout and why).
 */
#include "queue.h"

#include <math.h>
#include <stdio.h>

size_t baton_queue_key(char *buf, const char *queue, const char *suffix) {
    int n = snprintf(buf, BATON_KEY_MAX, BATON_KEY_PREFIX "{%s}:%s", queue, suffix);
    return n < 0 ? 0 : (size_t)n;
}

void baton_queue_keys_init(struct baton_queue_keys *k, const char *queue) {
    snprintf(k->name, sizeof k->name, "%s", queue);
    baton_queue_key(k->ready, queue, "ready");
    baton_queue_key(k->scheduled, queue, "scheduled");
    baton_queue_key(k->running, queue, "running");
    baton_queue_key(k->dead, queue, "dead");
    baton_queue_key(k->deadline, queue, "deadline");
    baton_queue_key(k->seq, queue, "seq");
    baton_queue_key(k->events, queue, "events");
    baton_queue_key(k->notify, queue, "notify");
    baton_queue_key(k->paused, queue, "paused");
    baton_queue_key(k->task_prefix, queue, "t:");
    baton_queue_key(k->key_prefix, queue, "");
}

size_t baton_worker_key(char *buf, const char *worker_id) {
    int n = snprintf(buf, BATON_KEY_MAX, BATON_KEY_PREFIX "worker:%s", worker_id);
    return n < 0 ? 0 : (size_t)n;
}

size_t baton_task_key(char *buf, const char *queue, const char *id) {
    int n = snprintf(buf, BATON_KEY_MAX, BATON_KEY_PREFIX "{%s}:t:%s", queue, id);
    return n < 0 ? 0 : (size_t)n;
}

double baton_ready_score(int priority, int64_t seq) {
    return (double)(9 - priority) * BATON_SCORE_SPAN + (double)seq;
}

int baton_ready_score_priority(double score) {
    /* Bands are centred on (9 - p) * SPAN; round to the nearest centre. */
    long band = lround(score / BATON_SCORE_SPAN);
    if (band < 0)
        band = 0;
    if (band > 9)
        band = 9;
    return 9 - (int)band;
}

void baton_ready_priority_range(int priority, double *min, double *max) {
    double centre = (double)(9 - priority) * BATON_SCORE_SPAN;
    *min = centre - (double)BATON_SCORE_SEQ_LIMIT;
    *max = centre + (double)BATON_SCORE_SEQ_LIMIT - 1;
}
