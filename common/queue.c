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
