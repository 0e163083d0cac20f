/*
 * history.c - the history writer: Redis event streams -> PostgreSQL.
 *
 * A thread of baton-scheduler (--history). Several schedulers share the
 * work through one Redis consumer group ("baton-history") per stream: each
 * queue's baton:{Q}:events and the global baton:rejections. Per batch:
 *   1. XREADGROUP up to --history-batch entries over all streams;
 *   2. one PostgreSQL transaction: COPY the events into a session-private
 *      staging table, INSERT them into baton.task_events ON CONFLICT DO
 *      NOTHING (the key (queue, task_id, seq) makes a replay a no-op),
 *      insert new task rows from "submitted" events, recompute every
 *      touched task row from all of its events, insert rejections;
 *   3. after COMMIT: acknowledge the entries and trim each stream up to the
 *      first entry still needed (ack.lua; Redis keeps only what
 *      PostgreSQL does not have yet: the backlog).
 * A crash between 2 and 3 re-delivers the batch, which changes nothing.
 * An entry whose data PostgreSQL refuses (invalid UTF-8, a jsonb "\u0000",
 * a value out of range) must not hold back the others: the writer finds it
 * by writing the batch in halves under savepoints, stores it raw in
 * baton.history_set_aside (migration 0003), and the batch goes through.
 * A batch is bounded by --history-batch-bytes as well as by
 * --history-batch events (read_batch).
 * Entries a dead writer left pending are taken over with XAUTOCLAIM after
 * --history-claim-idle-ms. While PostgreSQL is down the batch in hand is
 * retried with backoff and events wait in Redis; execution is unaffected.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "events.h"
#include "log.h"
#include "pg.h"
#include "queue.h"
#include "redis.h"
#include "scheduler.h"
#include "timeutil.h"
#include "transition.h"
#include "utf8.h"

#define COMPONENT "history"
#define GROUP "baton-history"
#define QUEUE_REFRESH_MS 1000
#define BACKOFF_START_MS 100
#define BACKOFF_MAX_MS 5000
#define HISTORY_LOCK_KEY "7089075310396532855" /* "baton-hw" as a bigint */
void (*history_after_commit_hook)(size_t events);

#define ORPHANS_PER_CALL 100 /* oldest delivered entries orphans.lua looks at */
/* Bytes of an event entry besides the task's payload: the rest of the task
 * JSON (the contract allows 64 KiB), a result (the worker's default limit
 * is 64 KiB) and the event's own fields. */
#define ENTRY_OVERHEAD (128 * 1024)
#define COPY_CHUNK (1 << 20) /* bytes per PQputCopyData, whose length is an int */

/* One COPY text-format field: NULL as \N, specials escaped; a JSON
 * "\u0000" (which jsonb refuses) becomes U+FFFD so one bad value cannot
 * block the writer. `tab` ends the field with a tab, else a newline. */
static void copy_field(struct baton_buf *t, const char *s, size_t n, int json, int tab) {
    if (!s) {
        baton_buf_put(t, "\\N", 2);
    } else {
        size_t start = 0;
        for (size_t i = 0; i < n; i++) {
            const char *rep = NULL;
            size_t skip = 1;
            switch (s[i]) {
            case '\\':
                if (json && i + 5 < n && memcmp(s + i, "\\u0000", 6) == 0) {
                    rep = "\\\\ufffd";
                    skip = 6;
                } else if (json && i + 1 < n && s[i + 1] == '\\') {
                    rep = "\\\\\\\\"; /* an escaped backslash: "\\u0000" is text */
                    skip = 2;
                } else {
                    rep = "\\\\";
                }
                break;
            case '\n': rep = "\\n"; break;
            case '\r': rep = "\\r"; break;
            case '\t': rep = "\\t"; break;
            default: break;
            }
            if (rep) {
                baton_buf_put(t, s + start, i - start);
                baton_buf_put(t, rep, strlen(rep));
                i += skip - 1;
                start = i + 1;
            }
        }
        baton_buf_put(t, s + start, n - start);
    }
    baton_buf_put(t, tab ? "\t" : "\n", 1);
}

/* Appends s[0..n) as lowercase hex digits. */
static void put_hex(struct baton_buf *t, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char pair[2] = {hex[(unsigned char)s[i] >> 4], hex[(unsigned char)s[i] & 15]};
        baton_buf_put(t, pair, 2);
    }
}

/* bytea in COPY text: "\\x" then hex. */
static void copy_bytea(struct baton_buf *t, const char *s, size_t n, int tab) {
    baton_buf_put(t, "\\\\x", 3);
    put_hex(t, s, n);
    baton_buf_put(t, tab ? "\t" : "\n", 1);
}

/* ------------------------------------------------------------- the batch */

/* One event of the batch. A queue's stream entry holds the events of one
 * script call (common/events.h): its events share `stream` and `id`, and
 * follow each other in the batch, `index` 0 first. A rejection entry is
 * one event, its whole field array. */
struct entry {
    const char *stream; /* borrowed from a reply */
    const char *id;     /* stream entry id, borrowed */
    redisReply *fields; /* the stream entry's array of field, value, ... ; borrowed */
    size_t first;       /* this event: fields->element[first .. first + count) */
    size_t count;
    size_t index; /* place of the event in its stream entry, from 0 */
    int several;  /* its stream entry holds more than one event */
};

struct batch {
    redisReply **replies; /* owned */
    size_t nreplies, rcap;
    struct entry *entries; /* events, in stream entry order */
    size_t count, cap;
    size_t nentries; /* stream entries the events came in */
    size_t bytes;    /* field names and values of the entries */
    size_t largest;  /* bytes of the largest stream entry */
    size_t most;     /* events of the stream entry with the most */
};

static void batch_clear(struct batch *b) {
    for (size_t i = 0; i < b->nreplies; i++)
        freeReplyObject(b->replies[i]);
    b->nreplies = b->count = b->nentries = b->bytes = b->largest = b->most = 0;
}

static int batch_keep(struct batch *b, redisReply *reply) {
    if (b->nreplies == b->rcap) {
        size_t cap = b->rcap ? b->rcap * 2 : 16;
        redisReply **grown = realloc(b->replies, cap * sizeof *grown);
        if (!grown)
            return -1;
        b->replies = grown;
        b->rcap = cap;
    }
    b->replies[b->nreplies++] = reply;
    return 0;
}

static int batch_push(struct batch *b, struct entry e) {
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        struct entry *grown = realloc(b->entries, cap * sizeof *grown);
        if (!grown)
            return -1;
        b->entries = grown;
        b->cap = cap;
    }
    b->entries[b->count++] = e;
    return 0;
}

/* Adds the events of one stream's entries ([id, [f, v, ...]] items). A
 * queue's entry is split into its events; one that cannot be split
 * (common/events.h: not beginning with `id`, an odd field count) goes in
 * whole as one event, so that PostgreSQL refuses it and it is set aside
 * with its raw fields (write_range): never dropped, never blocking. */
static int batch_add_entries(struct batch *b, const char *stream, redisReply *items) {
    int events_stream = strcmp(stream, BATON_KEY_REJECTIONS) != 0;
    for (size_t i = 0; i < items->elements; i++) {
        redisReply *e = items->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue; /* an entry deleted meanwhile comes back as nil */
        redisReply *fields = e->element[1];
        const char *id = e->element[0]->str;
        size_t bytes = 0;
        for (size_t f = 0; f < fields->elements; f++)
            bytes += fields->element[f]->len;
        b->bytes += bytes;
        if (bytes > b->largest)
            b->largest = bytes;
        size_t start = b->count;
        b->nentries++;
        struct baton_events it;
        struct baton_event_span span;
        const char *why = NULL;
        int more = 0;
        baton_events_begin(&it, fields);
        if (events_stream)
            while ((more = baton_events_next(&it, &span, &why)) == 1)
                if (batch_push(b, (struct entry){stream, id, fields, span.first, span.count,
                                                 span.index, 0}))
                    return -1;
        if (more < 0)
            BATON_WARN(COMPONENT,
                       "entry %s of %s cannot be split into events (%s): written as one event", id,
                       stream, why);
        if (!events_stream || more < 0) {
            if (batch_push(b, (struct entry){stream, id, fields, 0, fields->elements, 0, 0}))
                return -1;
        }
        for (size_t k = start; b->count - start > 1 && k < b->count; k++)
            b->entries[k].several = 1;
        if (b->count - start > b->most)
            b->most = b->count - start;
    }
    return 0;
}

/* Value of `name` in an event, or NULL; *len set. */
static const char *field(const struct entry *e, const char *name, size_t *len) {
    struct baton_event_span span = {e->first, e->count, e->index};
    return baton_event_field(e->fields, &span, name, len);
}

/* ---------------------------------------------------------------- writer */

struct history {
    const struct scheduler_config *config;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    baton_redis_t *redis;
    PGconn *pg;
    char consumer[128];
    char **streams; /* event streams in the group, owned */
    size_t nstreams;
    int64_t queues_refreshed_ms, claimed_ms;
    struct batch batch;
    struct baton_buf events, rejections;
    uint64_t written, backlog;
    size_t largest_entry;         /* bytes of the largest entry read so far */
    size_t most_events;           /* events of the entry with the most read so far */
    char sqlstate[6];             /* of PostgreSQL's last refusal; "" when none came */
    int staged;                   /* the staging tables hold rows of this transaction */
    size_t set_aside;             /* entries of the batch in hand set aside */
    size_t set_aside_by_class[3]; /* the same, by SQLSTATE class (REFUSED_CLASSES) */
};

/* SQLSTATE classes of errors that are PostgreSQL refusing the data, not
 * failing to store it: 22 data exception (invalid byte sequence, "\u0000"
 * in jsonb, a number or time out of range), 23 integrity constraint
 * violation (NULL where a value is required, a CHECK), 54 program limit
 * exceeded (a value too large for an index row). */
static const char *const REFUSED_CLASSES[] = {"22", "23", "54"};

static int stop_requested(struct history *h) {
    pthread_mutex_lock(&h->lock);
    int s = h->stopping;
    pthread_mutex_unlock(&h->lock);
    return s;
}

static void wait_ms(struct history *h, int64_t ms) {
    struct timespec until = baton_time_mono_after(ms);
    pthread_mutex_lock(&h->lock);
    if (!h->stopping)
        pthread_cond_timedwait(&h->wake, &h->lock, &until);
    pthread_mutex_unlock(&h->lock);
}

static int has_stream(struct history *h, const char *key) {
    for (size_t i = 0; i < h->nstreams; i++)
        if (strcmp(h->streams[i], key) == 0)
            return 1;
    return 0;
}

/* Creates the consumer group on a stream (BUSYGROUP: it exists) and adds
 * the stream to the list read. */
static baton_err_t adopt_stream(struct history *h, const char *key, char *errstr,
                                size_t errstr_size) {
    const char *argv[] = {"XGROUP", "CREATE", key, GROUP, "0", "MKSTREAM"};
    redisReply *reply;
    baton_err_t err = baton_tr_command(h->redis, &reply, 6, argv, errstr, errstr_size);
    if (err && err != BATON_ERR_EXISTS) /* BUSYGROUP: the group is there already */
        return err;
    if (!err)
        freeReplyObject(reply);
    char **grown = realloc(h->streams, (h->nstreams + 1) * sizeof *grown);
    if (!grown || !(grown[h->nstreams] = strdup(key))) {
        if (grown)
            h->streams = grown;
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    h->streams = grown;
    h->nstreams++;
    return BATON_OK;
}

/* Drops the list of streams read, so the next refresh_streams() rebuilds it
 * (and recreates the group on streams deleted under us, e.g. by an operator
 * removing a queue's keys): one vanished stream must not stop the writer. */
static void forget_streams(struct history *h) {
    for (size_t i = 0; i < h->nstreams; i++)
        free(h->streams[i]);
    h->nstreams = 0;
    h->queues_refreshed_ms = 0;
}

/* Picks up queues ingest has seen since the last look. */
static baton_err_t refresh_streams(struct history *h, char *errstr, size_t errstr_size) {
    int64_t now = baton_time_mono_ms();
    if (h->nstreams && now - h->queues_refreshed_ms < QUEUE_REFRESH_MS)
        return BATON_OK;
    baton_err_t err = BATON_OK;
    if (!has_stream(h, BATON_KEY_REJECTIONS))
        err = adopt_stream(h, BATON_KEY_REJECTIONS, errstr, errstr_size);
    const char *argv[] = {"SMEMBERS", BATON_KEY_QUEUES};
    redisReply *queues = NULL;
    if (!err)
        err = baton_redis_command(h->redis, &queues, 2, argv, NULL, errstr, errstr_size);
    for (size_t i = 0; !err && i < queues->elements; i++) {
        struct baton_queue_keys keys;
        baton_queue_keys_init(&keys, queues->element[i]->str);
        if (!has_stream(h, keys.events))
            err = adopt_stream(h, keys.events, errstr, errstr_size);
    }
    if (queues)
        freeReplyObject(queues);
    if (!err)
        h->queues_refreshed_ms = now;
    return err;
}

/* The largest an entry can be, as far as this writer knows: a "submitted"
 * event carries the task JSON, whose payload the contract bounds by
 * --max-payload-bytes; or the largest entry seen, if larger (a result
 * under a worker's higher --max-result-bytes). */
static size_t entry_bound(const struct history *h) {
    size_t contract = (size_t)h->config->max_payload_bytes + ENTRY_OVERHEAD;
    return h->largest_entry > contract ? h->largest_entry : contract;
}

/* How many entries to ask each of `streams` streams for, so that the batch
 * stays within --history-batch events and --history-batch-bytes even if
 * every entry is as large as entry_bound() and holds as many events as the
 * fullest entry seen (an entry holds the events of one script call). At
 * least 1: a batch holds at least one entry per stream read, however large. */
static size_t entries_that_fit(const struct history *h, size_t streams) {
    size_t max_count = (size_t)h->config->history_batch;
    size_t max_bytes = (size_t)h->config->history_batch_bytes;
    size_t left_count = max_count > h->batch.count ? max_count - h->batch.count : 0;
    size_t left_bytes = max_bytes > h->batch.bytes ? max_bytes - h->batch.bytes : 0;
    size_t fit = left_bytes / entry_bound(h) / (streams ? streams : 1);
    size_t per_entry = h->most_events ? h->most_events : 1;
    if (fit > left_count / per_entry)
        fit = left_count / per_entry;
    return fit ? fit : 1;
}

/* Keeps a take-over reply (XAUTOCLAIM's, or orphans.lua's) and its
 * `items` in the batch; frees a reply without any. */
static baton_err_t take_entries(struct history *h, const char *stream, redisReply *reply,
                                redisReply *items, char *errstr, size_t errstr_size) {
    if (items->type != REDIS_REPLY_ARRAY || items->elements == 0) {
        freeReplyObject(reply);
        return BATON_OK;
    }
    if (batch_keep(&h->batch, reply)) {
        freeReplyObject(reply);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    if (batch_add_entries(&h->batch, stream, items))
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    return BATON_OK;
}

/* Takes over what no live writer will write, on stream i: entries idle too
 * long in others' pending lists (XAUTOCLAIM: their writer died), else
 * entries the group lost (orphans.lua: behind its last delivered id and
 * in no pending list, which XREADGROUP never returns again). */
static baton_err_t take_over(struct history *h, size_t i, char *errstr, size_t errstr_size) {
    char count[24], idle[24];
    size_t fit = entries_that_fit(h, 1);
    snprintf(count, sizeof count, "%zu", fit);
    snprintf(idle, sizeof idle, "%" PRId64, h->config->history_claim_idle_ms);
    const char *stream = h->streams[i];
    const char *argv[] = {"XAUTOCLAIM", stream, GROUP, h->consumer, idle, "0-0", "COUNT", count};
    redisReply *reply;
    baton_err_t err = baton_tr_command(h->redis, &reply, 8, argv, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) {
        freeReplyObject(reply);
        return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "XAUTOCLAIM: unexpected reply");
    }
    redisReply *claimed = reply->element[1];
    if (claimed->type == REDIS_REPLY_ARRAY && claimed->elements) {
        BATON_INFO(COMPONENT, "took over %zu entries left pending on %s", claimed->elements,
                   stream);
        baton_metric_add(h->config->metrics->history_takeovers, BATON_LABELS("pending"),
                         (double)claimed->elements);
    }
    err = take_entries(h, stream, reply, claimed, errstr, errstr_size);
    if (err || h->batch.count)
        return err;
    err = baton_tr_orphans(h->redis, stream, GROUP, h->consumer,
                           fit < ORPHANS_PER_CALL ? fit : ORPHANS_PER_CALL, &reply, errstr,
                           errstr_size);
    if (err)
        return err;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        BATON_WARN(COMPONENT,
                   "%zu entries of %s were in no pending list although the group had delivered "
                   "them (acknowledged but never deleted, or skipped by its position): writing "
                   "them now",
                   reply->elements, stream);
        baton_metric_add(h->config->metrics->history_takeovers, BATON_LABELS("lost"),
                         (double)reply->elements);
    }
    return take_entries(h, stream, reply, reply, errstr, errstr_size);
}

/* One XREADGROUP of up to `count` new entries per stream into the batch;
 * blocks up to 100 ms when `block`. */
static baton_err_t read_new(struct history *h, size_t count, int block, char *errstr,
                            size_t errstr_size) {
    char count_arg[24];
    snprintf(count_arg, sizeof count_arg, "%zu", count);
    size_t argc = 9 + 2 * h->nstreams;
    const char **argv = malloc(argc * sizeof *argv);
    if (!argv)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    size_t n = 0;
    argv[n++] = "XREADGROUP";
    argv[n++] = "GROUP";
    argv[n++] = GROUP;
    argv[n++] = h->consumer;
    argv[n++] = "COUNT";
    argv[n++] = count_arg;
    if (block) {
        argv[n++] = "BLOCK";
        argv[n++] = "100";
    }
    argv[n++] = "STREAMS";
    for (size_t i = 0; i < h->nstreams; i++)
        argv[n++] = h->streams[i];
    for (size_t i = 0; i < h->nstreams; i++)
        argv[n++] = ">";
    redisReply *reply;
    baton_err_t err = baton_tr_command(h->redis, &reply, (int)n, argv, errstr, errstr_size);
    free(argv);
    if (err)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY) { /* nil: nothing new */
        freeReplyObject(reply);
        return BATON_OK;
    }
    if (batch_keep(&h->batch, reply))
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < reply->elements; i++) {
        redisReply *s = reply->element[i];
        if (batch_add_entries(&h->batch, s->element[0]->str, s->element[1]))
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    return BATON_OK;
}

/* Reads the next batch: first what no live writer will write (take_over,
 * every half --history-claim-idle-ms), else new entries. Redis cannot cap
 * a reply by bytes, so new entries come in as many XREADGROUP calls as it
 * takes to reach --history-batch events or --history-batch-bytes, each
 * asking for what fits if every entry were as large as entry_bound(); only
 * the first call blocks. */
static baton_err_t read_batch(struct history *h, char *errstr, size_t errstr_size) {
    int64_t now = baton_time_mono_ms();
    if (now - h->claimed_ms >= h->config->history_claim_idle_ms / 2) {
        h->claimed_ms = now;
        for (size_t i = 0; i < h->nstreams && h->batch.count == 0; i++) {
            baton_err_t err = take_over(h, i, errstr, errstr_size);
            if (err)
                return err;
        }
        if (h->batch.count)
            return BATON_OK;
    }
    size_t max_count = (size_t)h->config->history_batch;
    size_t max_bytes = (size_t)h->config->history_batch_bytes;
    for (int first = 1;; first = 0) {
        if (!first && (h->batch.count >= max_count ||
                       h->batch.bytes + entry_bound(h) * h->nstreams > max_bytes))
            return BATON_OK;
        size_t before = h->batch.nentries, ask = entries_that_fit(h, h->nstreams);
        baton_err_t err = read_new(h, ask, first, errstr, errstr_size);
        if (h->batch.largest > h->largest_entry)
            h->largest_entry = h->batch.largest;
        if (h->batch.most > h->most_events)
            h->most_events = h->batch.most;
        if (err && !first)
            return BATON_OK; /* write what is in hand; the next read meets the error again */
        if (err || h->batch.nentries - before < ask)
            return err; /* fewer than asked: the streams are drained */
    }
}

/* ------------------------------------------------------------ PostgreSQL */

static const char STAGING_SQL[] =
    "CREATE TEMP TABLE IF NOT EXISTS batch (LIKE baton.event_staging) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS rejbatch (kafka_topic text, kafka_partition integer,"
    " kafka_offset bigint, at_ms bigint, reason text, field text, detail text,"
    " message_value bytea) ON COMMIT DELETE ROWS";

static const char INSERT_EVENTS_SQL[] =
    "INSERT INTO baton.task_events (queue, task_id, seq, at, event, from_state, to_state,"
    " attempt, fencing_token, worker_id, error, detail)"
    " SELECT queue, task_id, seq, to_timestamp(at_ms / 1000.0), event, from_state, to_state,"
    " attempt, fencing_token, worker_id, error, detail FROM batch"
    " ON CONFLICT DO NOTHING";

/* Static columns from the "submitted" event; $1: keep payloads. */
static const char INSERT_TASKS_SQL[] =
    "INSERT INTO baton.tasks (queue, id, type, priority, state, attempts, max_attempts,"
    " timeout_ms, run_at, deadline, submitted_at, payload, meta, extra, kafka_topic,"
    " kafka_partition, kafka_offset, updated_at)"
    " SELECT b.queue, b.task_id, b.task->>'type', (b.task->>'priority')::smallint, b.to_state,"
    " 0, (b.task->>'max_attempts')::integer, (b.task->>'timeout_ms')::bigint,"
    " (b.task->>'run_at')::timestamptz, (b.task->>'deadline')::timestamptz,"
    " to_timestamp(b.at_ms / 1000.0), CASE WHEN $1::boolean THEN b.task->'payload' END,"
    " coalesce(b.task->'meta', '{}'::jsonb),"
    " nullif(b.task - ARRAY['id', 'type', 'queue', 'priority', 'payload', 'max_attempts',"
    " 'timeout_ms', 'run_at', 'delay_ms', 'deadline', 'meta'], '{}'::jsonb),"
    " b.kafka_topic, b.kafka_partition, b.kafka_offset, to_timestamp(b.at_ms / 1000.0)"
    " FROM batch b WHERE b.event = 'submitted'"
    " ON CONFLICT (queue, id) DO NOTHING";

/* Dynamic columns: recomputed from every event of each touched task. */
static const char UPDATE_TASKS_SQL[] =
    "WITH touched AS (SELECT DISTINCT queue, task_id FROM batch),"
    " agg AS (SELECT e.queue, e.task_id, max(e.seq) AS last_seq,"
    "  (array_agg(e.to_state ORDER BY e.seq DESC))[1] AS state,"
    "  (array_agg(e.attempt ORDER BY e.seq DESC))[1] AS attempts,"
    "  max(e.at) FILTER (WHERE e.to_state = 'queued') AS queued_at,"
    "  min(e.at) FILTER (WHERE e.event = 'claimed') AS first_started_at,"
    "  (array_agg(e.worker_id ORDER BY e.seq DESC) FILTER (WHERE e.worker_id IS NOT NULL))[1]"
    "   AS last_worker,"
    "  (array_agg(e.error ORDER BY e.seq DESC) FILTER (WHERE e.error IS NOT NULL))[1]"
    "   AS last_error,"
    "  (array_agg(e.detail->'result' ORDER BY e.seq DESC) FILTER (WHERE e.event = 'succeeded'))[1]"
    "   AS result,"
    "  max(e.at) AS updated_at"
    "  FROM baton.task_events e JOIN touched t ON t.queue = e.queue AND t.task_id = e.task_id"
    "  GROUP BY e.queue, e.task_id)"
    " UPDATE baton.tasks t SET state = agg.state, attempts = agg.attempts,"
    " queued_at = agg.queued_at, first_started_at = agg.first_started_at,"
    " finished_at = CASE WHEN agg.state IN ('succeeded', 'dead', 'expired', 'canceled')"
    "  THEN agg.updated_at END,"
    " last_worker = agg.last_worker, last_error = agg.last_error, result = agg.result,"
    " updated_at = agg.updated_at, last_seq = agg.last_seq"
    " FROM agg WHERE t.queue = agg.queue AND t.id = agg.task_id";

static const char INSERT_REJECTIONS_SQL[] =
    "INSERT INTO baton.rejections (kafka_topic, kafka_partition, kafka_offset, at, reason,"
    " field, detail, message_value)"
    " SELECT kafka_topic, kafka_partition, kafka_offset, to_timestamp(at_ms / 1000.0), reason,"
    " nullif(field, ''), detail, message_value FROM rejbatch ON CONFLICT DO NOTHING";

/* An entry PostgreSQL refused, in a form it cannot refuse: its fields as
 * bytea, the stream name and the message made valid UTF-8 by the writer. */
static const char SET_ASIDE_SQL[] =
    "INSERT INTO baton.history_set_aside (stream, entry_id, sqlstate, error, fields)"
    " VALUES ($1, $2, $3, $4, $5::bytea[]) ON CONFLICT DO NOTHING";

static void pg_close(struct history *h) {
    if (h->pg)
        PQfinish(h->pg);
    h->pg = NULL;
}

static baton_err_t pg_open(struct history *h, char *errstr, size_t errstr_size) {
    if (h->pg && PQstatus(h->pg) == CONNECTION_OK)
        return BATON_OK;
    pg_close(h);
    baton_err_t err =
        baton_pg_connect(h->config->pg_dsn, "baton history writer", &h->pg, errstr, errstr_size);
    if (!err)
        err = baton_pg_exec(h->pg, STAGING_SQL, errstr, errstr_size);
    const char *names[] = {"insert_events", "insert_tasks", "update_tasks", "insert_rejections",
                           "set_aside"};
    const char *sqls[] = {INSERT_EVENTS_SQL, INSERT_TASKS_SQL, UPDATE_TASKS_SQL,
                          INSERT_REJECTIONS_SQL, SET_ASIDE_SQL};
    for (size_t i = 0; !err && i < sizeof names / sizeof names[0]; i++) {
        PGresult *res = PQprepare(h->pg, names[i], sqls[i], 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            err = baton_pg_error(h->pg, res, "prepare", errstr, errstr_size);
        PQclear(res);
    }
    if (err)
        pg_close(h);
    return err;
}

/* Records the SQLSTATE of a failed statement (none when `res` is NULL: the
 * connection failed) for refused_by_data(), and words the error. */
static baton_err_t pg_fail(struct history *h, const PGresult *res, const char *what, char *errstr,
                           size_t errstr_size) {
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(h->sqlstate, sizeof h->sqlstate, "%s", code ? code : "");
    return baton_pg_error(h->pg, res, what, errstr, errstr_size);
}

/* Index in REFUSED_CLASSES of the error just met when it is PostgreSQL
 * refusing the data of the batch, on a healthy connection; -1 for every
 * other failure (a lost connection, 08; too little memory or disk, 53; a
 * shutdown, 57; a deadlock, 40; a missing table, 42), which the caller
 * retries with the batch whole. */
static int refused_by_data(const struct history *h) {
    if (!h->pg || PQstatus(h->pg) != CONNECTION_OK)
        return -1;
    for (int i = 0; i < (int)(sizeof REFUSED_CLASSES / sizeof REFUSED_CLASSES[0]); i++)
        if (strncmp(h->sqlstate, REFUSED_CLASSES[i], 2) == 0)
            return i;
    return -1;
}

/* Streams `data` into the table `table` with COPY FROM STDIN, in chunks
 * (PQputCopyData takes an int length). */
static baton_err_t pg_copy(struct history *h, const char *table, const struct baton_buf *data,
                           char *errstr, size_t errstr_size) {
    char sql[96];
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", table);
    PGresult *res = PQexec(h->pg, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        baton_err_t err = pg_fail(h, res, "COPY", errstr, errstr_size);
        PQclear(res);
        return err;
    }
    PQclear(res);
    for (size_t off = 0; off < data->len; off += COPY_CHUNK) {
        size_t n = data->len - off < COPY_CHUNK ? data->len - off : COPY_CHUNK;
        if (PQputCopyData(h->pg, data->data + off, (int)n) != 1) {
            baton_err_t err = pg_fail(h, NULL, "COPY", errstr, errstr_size);
            pg_close(h); /* mid-COPY: the session cannot be reused */
            return err;
        }
    }
    if (PQputCopyEnd(h->pg, NULL) != 1) {
        baton_err_t err = pg_fail(h, NULL, "COPY", errstr, errstr_size);
        pg_close(h);
        return err;
    }
    res = PQgetResult(h->pg);
    baton_err_t err = BATON_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        err = pg_fail(h, res, "COPY", errstr, errstr_size);
    PQclear(res);
    while ((res = PQgetResult(h->pg)))
        PQclear(res);
    return err;
}

static baton_err_t pg_run(struct history *h, const char *name, int nparams,
                          const char *const *params, char *errstr, size_t errstr_size) {
    PGresult *res = PQexecPrepared(h->pg, name, nparams, params, NULL, NULL, 0);
    baton_err_t err = BATON_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        err = pg_fail(h, res, name, errstr, errstr_size);
    PQclear(res);
    return err;
}

/* Turns entries [lo, hi) of the batch into COPY text for batch / rejbatch. */
static baton_err_t build_copy(struct history *h, size_t lo, size_t hi) {
    baton_buf_reset(&h->events);
    baton_buf_reset(&h->rejections);
    for (size_t i = lo; i < hi; i++) {
        const struct entry *e = &h->batch.entries[i];
        size_t n;
        const char *v;
        if (strcmp(e->stream, BATON_KEY_REJECTIONS) == 0) {
            struct baton_buf *t = &h->rejections;
            static const char *const cols[] = {"topic", "partition", "offset"};
            for (int c = 0; c < 3; c++) {
                v = field(e, cols[c], &n);
                copy_field(t, v, n, 0, 1);
            }
            char at[24];
            snprintf(at, sizeof at, "%lld", strtoll(e->id, NULL, 10)); /* stream id ms */
            copy_field(t, at, strlen(at), 0, 1);
            v = field(e, "reason", &n);
            copy_field(t, v, n, 0, 1);
            v = field(e, "field", &n);
            copy_field(t, v, n, 0, 1);
            v = field(e, "detail", &n);
            copy_field(t, v, n, 0, 1);
            v = field(e, "value", &n);
            copy_bytea(t, v ? v : "", n, 0);
            continue;
        }
        /* baton:{<queue>}:events -> queue */
        const char *open = strchr(e->stream, '{'), *close = strrchr(e->stream, '}');
        if (!open || !close || close < open)
            continue;
        struct baton_buf *t = &h->events;
        copy_field(t, open + 1, (size_t)(close - open - 1), 0, 1);
        static const char *const cols[] = {"id", "seq",     "at",    "event",  "from",
                                           "to", "attempt", "token", "worker", "error"};
        for (int c = 0; c < 10; c++) {
            v = field(e, cols[c], &n);
            if (v && n == 0 && c >= 4) /* "" means none for from/worker/error */
                v = NULL;
            copy_field(t, v, n, 0, 1);
        }
        /* detail: the event-specific fields, as a JSON object. */
        json_t *detail = json_object();
        static const char *const extras[] = {"reason", "due",        "result",
                                             "ktopic", "kpartition", "koffset"};
        for (int c = 0; c < 6; c++) {
            v = field(e, extras[c], &n);
            if (!v)
                continue;
            json_t *value = NULL;
            if (strcmp(extras[c], "result") == 0) {
                json_error_t jerr;
                value = json_loadb(v, n, JSON_DECODE_ANY, &jerr);
            } else if (strcmp(extras[c], "reason") != 0 && strcmp(extras[c], "ktopic") != 0)
                value = json_integer(strtoll(v, NULL, 10)); /* times, coordinates */
            if (!value)
                value = json_stringn_nocheck(v, n);
            json_object_set_new(detail, extras[c], value);
        }
        char *dj = json_dumps(detail, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(detail);
        copy_field(t, dj, dj ? strlen(dj) : 0, 1, 1);
        free(dj);
        v = field(e, "task", &n);
        copy_field(t, v, n, 1, 1);
        v = field(e, "ktopic", &n);
        copy_field(t, v, n, 0, 1);
        v = field(e, "kpartition", &n);
        copy_field(t, v && n ? v : NULL, n, 0, 1);
        v = field(e, "koffset", &n);
        copy_field(t, v && n ? v : NULL, n, 0, 0);
    }
    return h->events.failed || h->rejections.failed ? BATON_ERR_NOMEM : BATON_OK;
}

/* Sends the staged COPY text and folds it into the tables. */
static baton_err_t write_staged(struct history *h, char *errstr, size_t errstr_size) {
    const char *keep_payload[] = {h->config->history_payload ? "true" : "false"};
    baton_err_t err = BATON_OK;
    if (h->events.len)
        err = pg_copy(h, "batch", &h->events, errstr, errstr_size);
    if (!err && h->events.len)
        err = pg_run(h, "insert_events", 0, NULL, errstr, errstr_size);
    if (!err && h->events.len)
        err = pg_run(h, "insert_tasks", 1, keep_payload, errstr, errstr_size);
    if (!err && h->events.len)
        err = pg_run(h, "update_tasks", 0, NULL, errstr, errstr_size);
    if (!err && h->rejections.len)
        err = pg_copy(h, "rejbatch", &h->rejections, errstr, errstr_size);
    if (!err && h->rejections.len)
        err = pg_run(h, "insert_rejections", 0, NULL, errstr, errstr_size);
    return err;
}

/* Writes entry `e`, which PostgreSQL refused with `sqlstate` and `why`, to
 * baton.history_set_aside: its fields as a bytea[] literal of hex values
 * (`{"\\x..","\\x.."}`), which no byte can break, and the stream name and
 * the message made valid UTF-8. */
static baton_err_t set_aside(struct history *h, const struct entry *e, const char *sqlstate,
                             const char *why, char *errstr, size_t errstr_size) {
    struct baton_buf fields = {0};
    baton_buf_put(&fields, "{", 1);
    for (size_t i = e->first; i < e->first + e->count; i++) {
        const redisReply *f = e->fields->element[i];
        int later = i > e->first;
        baton_buf_put(&fields, later ? ",\"\\\\x" : "\"\\\\x", later ? 5 : 4);
        put_hex(&fields, f->str ? f->str : "", f->str ? f->len : 0);
        baton_buf_put(&fields, "\"", 1);
    }
    baton_buf_put(&fields, "}", 1);
    char *stream = baton_utf8_sanitize(e->stream, strlen(e->stream), NULL);
    char *message = baton_utf8_sanitize(why, strlen(why), NULL);
    /* The events of one stream entry are set aside one by one: the entry
     * id, and the event's place in it when the entry holds several. */
    char entry_id[96];
    if (e->several)
        snprintf(entry_id, sizeof entry_id, "%s/%zu", e->id, e->index);
    else
        snprintf(entry_id, sizeof entry_id, "%s", e->id);
    baton_err_t err = BATON_OK;
    if (fields.failed || !stream || !message) {
        err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    } else {
        const char *params[] = {stream, entry_id, sqlstate, message, fields.data};
        err = pg_run(h, "set_aside", 5, params, errstr, errstr_size);
    }
    if (!err)
        BATON_WARN(COMPONENT,
                   "set aside entry %s of %s: PostgreSQL refused it (%s); its raw fields are in "
                   "baton.history_set_aside, the rest of the batch is written",
                   entry_id, stream, message);
    free(stream);
    free(message);
    baton_buf_free(&fields);
    return err;
}

/* Writes entries [lo, hi) of the batch inside the open transaction, under
 * a savepoint. When PostgreSQL refuses their data, rolls back to the
 * savepoint and writes each half the same way, down to single entries,
 * which are set aside: k refused entries out of n cost about 2k*log2(n)
 * tries, a batch with none a savepoint. Returns an error only for a
 * failure that is not the data's; the caller rolls back and retries. */
static baton_err_t write_range(struct history *h, size_t lo, size_t hi, char *errstr,
                               size_t errstr_size) {
    /* Rows of ranges written before this one are in the tables already. */
    baton_err_t err = baton_pg_exec(
        h->pg,
        h->staged ? "DELETE FROM batch; DELETE FROM rejbatch; SAVEPOINT part" : "SAVEPOINT part",
        errstr, errstr_size);
    if (err)
        return err;
    if (build_copy(h, lo, hi))
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    h->sqlstate[0] = '\0';
    err = write_staged(h, errstr, errstr_size);
    if (!err) {
        h->staged = 1;
        return baton_pg_exec(h->pg, "RELEASE SAVEPOINT part", errstr, errstr_size);
    }
    int class = refused_by_data(h);
    if (class < 0)
        return err;
    char sqlstate[sizeof h->sqlstate], why[512];
    snprintf(sqlstate, sizeof sqlstate, "%s", h->sqlstate);
    snprintf(why, sizeof why, "%s %s", sqlstate, errstr);
    err = baton_pg_exec(h->pg, "ROLLBACK TO SAVEPOINT part; RELEASE SAVEPOINT part", errstr,
                        errstr_size);
    if (err)
        return err;
    if (hi - lo == 1) {
        err = set_aside(h, &h->batch.entries[lo], sqlstate, why, errstr, errstr_size);
        if (!err) {
            h->set_aside++;
            h->set_aside_by_class[class]++;
        }
        return err;
    }
    size_t mid = lo + (hi - lo) / 2;
    err = write_range(h, lo, mid, errstr, errstr_size);
    return err ? err : write_range(h, mid, hi, errstr, errstr_size);
}

/* One transaction for the whole batch. */
static baton_err_t write_batch(struct history *h, char *errstr, size_t errstr_size) {
    baton_err_t err = pg_open(h, errstr, errstr_size);
    if (err)
        return err;
    h->staged = 0; /* the staging tables are emptied at COMMIT and ROLLBACK */
    h->set_aside = 0;
    memset(h->set_aside_by_class, 0, sizeof h->set_aside_by_class);
    err = baton_pg_exec(h->pg, "BEGIN", errstr, errstr_size);
    /* Writers take turns: a task row is recomputed from the events visible
     * to the statement, so two writers committing events of one task at
     * the same time could each miss the other's and the later UPDATE would
     * win with a stale row. Serialised batches see every committed event.
     * (Writers still overlap their Redis reads with each other's writes.) */
    if (!err)
        err = baton_pg_exec(h->pg, "SELECT pg_advisory_xact_lock(" HISTORY_LOCK_KEY ")", errstr,
                            errstr_size);
    if (!err)
        err = write_range(h, 0, h->batch.count, errstr, errstr_size);
    if (!err)
        err = baton_pg_exec(h->pg, "COMMIT", errstr, errstr_size);
    if (err) {
        char ignored[256];
        if (h->pg && PQstatus(h->pg) == CONNECTION_OK)
            baton_pg_exec(h->pg, "ROLLBACK", ignored, sizeof ignored);
        else
            pg_close(h);
    }
    return err;
}

/* After COMMIT: acknowledge the entries and trim each stream up to the
 * smallest entry still needed, one ack.lua call per stream (atomic, one
 * hash slot), all streams in one pipeline; each stream entry once, however
 * many events it held. One trim replaces an XDEL per entry: an entry
 * acknowledged is one PostgreSQL has, and the trim stops at the group's
 * smallest pending id (or the entry after its last delivered one), so it
 * never removes an entry another writer holds or has not read. An error
 * reply (-NOPERM for XTRIM, checked before anything changes; -LOADING)
 * fails the batch like a broken connection does: the caller keeps the
 * batch and writes and acknowledges it again (a stream already done
 * acknowledges nothing the second time). Every reply is read even after
 * an error, to keep the pipeline in step. */
static baton_err_t ack_batch(struct history *h, char *errstr, size_t errstr_size) {
    int64_t started_ns = baton_metrics_now_ns();
    baton_redis_pipeline_begin(h->redis);
    baton_err_t err = BATON_OK;
    size_t expected = 0;
    const char **ids = malloc((h->batch.nentries ? h->batch.nentries : 1) * sizeof *ids);
    if (!ids)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    for (size_t s = 0; !err && s < h->nstreams; s++) {
        /* Each stream entry once: its first event (index 0) stands for it. */
        size_t n = 0;
        for (size_t i = 0; i < h->batch.count; i++)
            if (h->batch.entries[i].index == 0 &&
                strcmp(h->batch.entries[i].stream, h->streams[s]) == 0)
                ids[n++] = h->batch.entries[i].id;
        if (!n)
            continue;
        err = baton_tr_append_ack(h->redis, h->streams[s], GROUP, ids, n, errstr, errstr_size);
        expected += !err;
    }
    free(ids);
    /* After a broken connection the later reads fail at once. */
    char why[512];
    for (size_t r = 0; r < expected; r++) {
        baton_err_t e = baton_tr_read_ack(h->redis, NULL, NULL, why, sizeof why);
        if (e && !err)
            err = baton_seterr(errstr, errstr_size, e, "%s", why);
    }
    if (!err)
        baton_metric_observe(h->config->metrics->redis_roundtrip, BATON_LABELS(COMPONENT),
                             baton_metrics_since(started_ns));
    return err;
}

/* Entries still waiting for PostgreSQL, over every stream (ack.lua trims
 * the written ones; with several writers, an entry one of them has written
 * stays until the older entries another holds are written). */
static void measure_backlog(struct history *h) {
    uint64_t total = 0;
    char errstr[256];
    for (size_t s = 0; s < h->nstreams; s++) {
        const char *argv[] = {"XLEN", h->streams[s]};
        redisReply *reply;
        if (baton_redis_command(h->redis, &reply, 2, argv, NULL, errstr, sizeof errstr))
            return;
        total += (uint64_t)reply->integer;
        freeReplyObject(reply);
    }
    pthread_mutex_lock(&h->lock);
    h->backlog = total;
    pthread_mutex_unlock(&h->lock);
    baton_metric_set(h->config->metrics->history_backlog, NULL, (double)total);
}

/* @locality the history thread */
static void *history_main(void *arg) {
    struct history *h = arg;
    char errstr[1024];
    int backoff = BACKOFF_START_MS;
    unsigned failures = 0;
    int64_t last_report = baton_time_mono_ms();
    while (!stop_requested(h)) {
        baton_err_t err = BATON_OK;
        if (h->batch.count == 0) {
            batch_clear(&h->batch);
            err = refresh_streams(h, errstr, sizeof errstr);
            if (!err)
                err = read_batch(h, errstr, sizeof errstr);
            /* NOGROUP or UNBLOCKED (baton_tr_reply_error): a stream was
             * deleted, so adopt the list afresh. */
            if (err == BATON_ERR_NOT_FOUND)
                forget_streams(h);
        }
        if (!err && h->batch.count) {
            int64_t started_ns = baton_metrics_now_ns();
            err = write_batch(h, errstr, sizeof errstr);
            if (!err && history_after_commit_hook)
                history_after_commit_hook(h->batch.count);
            if (!err)
                err = ack_batch(h, errstr, sizeof errstr);
            if (!err) {
                size_t written = h->batch.count - h->set_aside;
                BATON_DEBUG(COMPONENT, "wrote a batch of %zu events, %zu bytes, %zu set aside",
                            h->batch.count, h->batch.bytes, h->set_aside);
                h->written += written;
                baton_metric_add(h->config->metrics->history_written, NULL, (double)written);
                for (size_t c = 0; c < sizeof REFUSED_CLASSES / sizeof REFUSED_CLASSES[0]; c++)
                    if (h->set_aside_by_class[c])
                        baton_metric_add(h->config->metrics->history_set_aside,
                                         BATON_LABELS(REFUSED_CLASSES[c]),
                                         (double)h->set_aside_by_class[c]);
                baton_metric_observe(h->config->metrics->history_batch, NULL,
                                     baton_metrics_since(started_ns));
                batch_clear(&h->batch);
            }
        }
        int64_t now = baton_time_mono_ms();
        if (now - last_report >= 1000) {
            measure_backlog(h);
            last_report = now;
        }
        if (err) {
            if (failures++ == 0 || failures % 20 == 0)
                BATON_WARN(COMPONENT, "%zu events held, retrying in %d ms: %s", h->batch.count,
                           backoff, errstr);
            wait_ms(h, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        if (failures)
            BATON_INFO(COMPONENT, "writing again after %u failed attempts", failures);
        failures = 0;
        backoff = BACKOFF_START_MS;
    }
    return NULL;
}

baton_err_t history_start(const struct scheduler_config *config, history_t **out, char *errstr,
                          size_t errstr_size) {
    *out = NULL;
    struct history *h = calloc(1, sizeof *h);
    if (!h)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    h->config = config;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(h->consumer, sizeof h->consumer, "%s-%ld", host, (long)getpid());
    baton_err_t err = baton_redis_connect(config->redis_url, (int)config->redis_timeout_ms,
                                          &h->redis, errstr, errstr_size);
    if (err) {
        free(h);
        return err;
    }
    /* A bad DSN or an unreachable server at start is an error; later
     * outages are waited out. */
    err = pg_open(h, errstr, errstr_size);
    if (err && strstr(errstr, "does not exist")) {
        size_t len = strlen(errstr);
        snprintf(errstr + len, errstr_size > len ? errstr_size - len : 0,
                 " (is the history schema migrated? run: batonctl migrate)");
    }
    if (err) {
        baton_redis_destroy(h->redis);
        free(h);
        return err;
    }
    pthread_mutex_init(&h->lock, NULL);
    baton_cond_init_monotonic(&h->wake);
    if (pthread_create(&h->thread, NULL, history_main, h) != 0) {
        pg_close(h);
        baton_redis_destroy(h->redis);
        free(h);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "cannot start thread");
    }
    *out = h;
    return BATON_OK;
}

uint64_t history_backlog(history_t *h) {
    pthread_mutex_lock(&h->lock);
    uint64_t b = h->backlog;
    pthread_mutex_unlock(&h->lock);
    return b;
}

void history_stop(history_t *h) {
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    batch_clear(&h->batch);
    free(h->batch.replies);
    free(h->batch.entries);
    baton_buf_free(&h->events);
    baton_buf_free(&h->rejections);
    for (size_t i = 0; i < h->nstreams; i++)
        free(h->streams[i]);
    free(h->streams);
    pg_close(h);
    baton_redis_destroy(h->redis);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    BATON_INFO(COMPONENT, "stopped after writing %" PRIu64 " events", h->written);
    free(h);
}
