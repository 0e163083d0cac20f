/*
 * state.c - names of task states and events (state.h).
 *
 * Plain tables indexed by the enums; the lists are short, so a lookup by
 * name is a linear scan.
 */
#include "state.h"

#include <stdio.h>
#include <string.h>

static const char *const state_names[BATON_STATE_COUNT] = {
    [BATON_STATE_SCHEDULED] = "scheduled", [BATON_STATE_QUEUED] = "queued",
    [BATON_STATE_RUNNING] = "running",     [BATON_STATE_SUCCEEDED] = "succeeded",
    [BATON_STATE_DEAD] = "dead",           [BATON_STATE_EXPIRED] = "expired",
    [BATON_STATE_CANCELED] = "canceled",
};

static const char *const event_names[BATON_EVENT_COUNT] = {
    [BATON_EVENT_SUBMITTED] = "submitted",
    [BATON_EVENT_DUE] = "due",
    [BATON_EVENT_CLAIMED] = "claimed",
    [BATON_EVENT_SUCCEEDED] = "succeeded",
    [BATON_EVENT_FAILED] = "failed",
    [BATON_EVENT_DEAD] = "dead",
    [BATON_EVENT_EXPIRED] = "expired",
    [BATON_EVENT_CANCELED] = "canceled",
    [BATON_EVENT_CANCEL_REQUESTED] = "cancel_requested",
    [BATON_EVENT_RECLAIMED] = "reclaimed",
    [BATON_EVENT_RETURNED] = "returned",
    [BATON_EVENT_RETRIED] = "retried",
};

const char *baton_state_name(baton_state_t state) {
    return (unsigned)state < BATON_STATE_COUNT ? state_names[state] : NULL;
}

const char *baton_event_name(baton_event_t event) {
    return (unsigned)event < BATON_EVENT_COUNT ? event_names[event] : NULL;
}

/* Index of `name` in `names` (`count` entries), or -1. */
static int find(const char *const *names, int count, const char *name) {
    if (!name)
        return -1;
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

int baton_state_parse(const char *name, baton_state_t *out) {
    int i = find(state_names, BATON_STATE_COUNT, name);
    if (i < 0)
        return -1;
    *out = (baton_state_t)i;
    return 0;
}

int baton_event_parse(const char *name, baton_event_t *out) {
    int i = find(event_names, BATON_EVENT_COUNT, name);
    if (i < 0)
        return -1;
    *out = (baton_event_t)i;
    return 0;
}

static char *join(const char *const *names, int count, char *buf, size_t size) {
    size_t n = 0;
    if (size)
        buf[0] = '\0';
    for (int i = 0; i < count && n < size; i++) {
        int w = snprintf(buf + n, size - n, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return buf;
}

char *baton_state_names(char *buf, size_t size) {
    return join(state_names, BATON_STATE_COUNT, buf, size);
}

char *baton_event_names(char *buf, size_t size) {
    return join(event_names, BATON_EVENT_COUNT, buf, size);
}
