/*
 * events.c - splitting a stream entry into its events (see events.h).
 */
#include "events.h"

#include <string.h>

/* A field name or value: hiredis gives stream fields as bulk strings. */
static int is_text(const redisReply *e) {
    return e && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) && e->str;
}

static int is_id(const redisReply *e) {
    return e->len == 2 && memcmp(e->str, "id", 2) == 0;
}

/* The whole entry is checked once, before the first event is handed out. */
static const char *check(const redisReply *fields) {
    if (!fields || fields->type != REDIS_REPLY_ARRAY)
        return "the entry's fields are not an array";
    if (fields->elements == 0)
        return "the entry has no fields";
    if (fields->elements % 2)
        return "the entry has an odd number of fields and values";
    for (size_t i = 0; i < fields->elements; i++)
        if (!is_text(fields->element[i]))
            return "a field or value of the entry is not a string";
    if (!is_id(fields->element[0]))
        return "the entry does not begin with the field id";
    return NULL;
}

void baton_events_begin(struct baton_events *it, const redisReply *fields) {
    it->fields = fields;
    it->next = 0;
    it->index = 0;
    it->checked = 0;
}

int baton_events_next(struct baton_events *it, struct baton_event_span *span, const char **why) {
    if (!it->checked) {
        const char *bad = check(it->fields);
        if (bad) {
            if (why)
                *why = bad;
            return -1;
        }
        it->checked = 1;
    }
    size_t n = it->fields->elements;
    if (it->next >= n)
        return 0;
    size_t end = it->next + 2;
    while (end < n && !is_id(it->fields->element[end]))
        end += 2;
    span->first = it->next;
    span->count = end - it->next;
    span->index = it->index++;
    it->next = end;
    return 1;
}

const char *baton_event_field(const redisReply *fields, const struct baton_event_span *span,
                              const char *name, size_t *len) {
    size_t nlen = strlen(name);
    size_t end = span->first + span->count;
    for (size_t i = span->first; i + 1 < end && i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i];
        if (f->str && f->len == nlen && memcmp(f->str, name, nlen) == 0) {
            if (len)
                *len = fields->element[i + 1]->len;
            return fields->element[i + 1]->str;
        }
    }
    if (len)
        *len = 0;
    return NULL;
}
