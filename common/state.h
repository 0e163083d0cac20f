/*
 * state.h - the task states and the events between them: one list, with
 * names.
 *
 * A task hash in Redis has a `state` (what it is now); each transition
 * appends an event (what happened) to the queue's events stream, which the
 * history writer copies to baton.task_events. The two lists overlap in
 * spelling but not in meaning: "failed" is an event (an attempt failed; the
 * task goes back to scheduled or becomes dead), never a state, and "due"
 * and "claimed" are events whose states are queued and running.
 *
 * The Lua scripts in common/scripts/ write these names, batonctl parses
 * them from the command line, and the CHECK constraints of migrations/
 * hold the same lists; tests/unit/test_state.c reads both the scripts and
 * the migrations and fails when either names something not listed here
 * (or this list names something neither uses).
 */
#ifndef BATON_STATE_H
#define BATON_STATE_H

#include <stddef.h>

/* Where a task is. Terminal: succeeded, dead, expired, canceled (a dead
 * task can still be retried by an operator). */
typedef enum baton_state {
    BATON_STATE_SCHEDULED = 0, /* waiting for its due time (delay, run_at, retry backoff) */
    BATON_STATE_QUEUED,        /* in the ready set, waiting for a worker */
    BATON_STATE_RUNNING,       /* claimed by a worker under a lease */
    BATON_STATE_SUCCEEDED,     /* its handler succeeded */
    BATON_STATE_DEAD,          /* its attempts are used up (or a permanent failure) */
    BATON_STATE_EXPIRED,       /* its deadline passed before it started */
    BATON_STATE_CANCELED,      /* canceled by an operator */
    BATON_STATE_COUNT
} baton_state_t;

/* What happened to a task: the `event` of an events stream entry. */
typedef enum baton_event {
    BATON_EVENT_SUBMITTED = 0,    /* ingest created it (enqueue.lua) */
    BATON_EVENT_DUE,              /* scheduled -> queued at its due time */
    BATON_EVENT_CLAIMED,          /* queued -> running */
    BATON_EVENT_SUCCEEDED,        /* running -> succeeded */
    BATON_EVENT_FAILED,           /* an attempt failed; running -> scheduled */
    BATON_EVENT_DEAD,             /* running -> dead */
    BATON_EVENT_EXPIRED,          /* deadline passed before a start */
    BATON_EVENT_CANCELED,         /* -> canceled */
    BATON_EVENT_CANCEL_REQUESTED, /* a cancel of a running task, for its worker */
    BATON_EVENT_RECLAIMED,        /* lease expired; running -> queued */
    BATON_EVENT_RETURNED,         /* a stopping worker gave it back; running -> queued */
    BATON_EVENT_RETRIED,          /* an operator retried it; dead -> queued */
    BATON_EVENT_COUNT
} baton_event_t;

/* The same lists as text, for help strings fixed at compile time;
 * tests/unit/test_state.c checks they equal baton_state_names() and
 * baton_event_names(). */
#define BATON_STATE_LIST_TEXT "scheduled, queued, running, succeeded, dead, expired, canceled"
#define BATON_EVENT_LIST_TEXT                                                                      \
    "submitted, due, claimed, succeeded, failed, dead, expired, canceled, cancel_requested, "      \
    "reclaimed, returned, retried"

/* "scheduled", "queued", ...; NULL for a value out of range. */
const char *baton_state_name(baton_state_t state);
/* "submitted", "due", ...; NULL for a value out of range. */
const char *baton_event_name(baton_event_t event);

/* The state named `name` in *out: 0, or -1 when `name` (may be NULL) is not
 * a state. */
int baton_state_parse(const char *name, baton_state_t *out);
/* The event named `name` in *out: 0, or -1 when it is not an event. */
int baton_event_parse(const char *name, baton_event_t *out);

/* Every state name, or every event name, joined by ", " into `buf`
 * (`size` bytes, cut short when too small), for messages that list the
 * valid values. Returns buf. */
char *baton_state_names(char *buf, size_t size);
char *baton_event_names(char *buf, size_t size);

#endif
