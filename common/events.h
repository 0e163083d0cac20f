/*
 * events.h - the events of one entry of a queue's events stream.
 *
 * Every script call writes ONE stream entry holding all its events
 * (common/scripts/_lib.lua, emit() and reply()): the entry's fields are the
 * events one after the other, each beginning with its field `id` (the task
 * id) followed by seq, event, from, to, at, attempt and the event's own
 * fields. A reader splits the flat field list at every field named `id`.
 *
 * The iterator works on the entry's field array as hiredis returns it
 * ([field, value, field, value, ...]) and allocates nothing: an event is a
 * span of that array. A malformed entry (not an array of strings, an odd
 * number of elements, no field or a first field other than `id`) is
 * reported as an error before any event is handed out, so a reader either
 * gets every event of an entry or none.
 */
#ifndef BATON_EVENTS_H
#define BATON_EVENTS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* One event: fields->element[first .. first + count), field/value pairs,
 * the first pair being `id`; `index` is its place in the entry, from 0. */
struct baton_event_span {
    size_t first;
    size_t count;
    size_t index;
};

struct baton_events {
    const redisReply *fields;
    size_t next;  /* element where the next event begins */
    size_t index; /* index of the next event */
    int checked;  /* the entry was found well formed */
};

/* Starts iterating over the events of an entry's field array (may be NULL:
 * malformed). */
void baton_events_begin(struct baton_events *it, const redisReply *fields);

/*
 * The next event into *span. Returns 1 for an event, 0 when there are no
 * more, -1 when the entry is malformed (the first call says so; *why, when
 * not NULL, gets a static description), and nothing was handed out.
 */
int baton_events_next(struct baton_events *it, struct baton_event_span *span, const char **why);

/* The value of field `name` in `span` of `fields`, or NULL; *len (may be
 * NULL) gets its length. Only field names (even offsets) are compared. */
const char *baton_event_field(const redisReply *fields, const struct baton_event_span *span,
                              const char *name, size_t *len);

#endif
