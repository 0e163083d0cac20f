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
#include <errno.h>
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
    uint64_t written, backlog;
    size_t largest_entry;         /* bytes of the largest entry read so far */
    size_t most_events;           /* events of the entry with the most read so far */
    char sqlstate[6];             /* of PostgreSQL's last refusal; "" when none came */
    int no_partition;             /* that refusal was a row no partition holds */
    int staged;                   /* the staging tables hold rows of this transaction */
    size_t set_aside;             /* events of the batch in hand set aside */
    size_t set_aside_by_class[3]; /* the same, by SQLSTATE class (REFUSED_CLASSES) */
    /* The batch in hand, parsed (write_batch); arrays reused batch after batch. */
    struct ev *evs;      /* one per event of the batch */
    struct ent *ents;    /* its stream entries */
    size_t *ent_order;   /* ents sorted by (stream, id) */
    size_t *todo;        /* the events to write: new, not set aside */
    size_t *ord;         /* a range's task events by (queue, id, seq) */
    struct fold *folds;  /* a range's tasks */
    unsigned char *seen; /* per fold: its row came back from the upsert */
    size_t evs_cap, nents, ents_cap, ent_order_cap, ntodo, todo_cap, ord_cap, nfolds, folds_cap,
        seen_cap;
    struct baton_buf events, rejections, entries; /* COPY text */
    struct baton_buf detail, scratch, arr[17];    /* one event's detail; a value; array literals */
    /* Ranges [lo, hi) of time (ms) where every partitioned history table has
     * a partition: made or found by this connection. */
    struct part_range {
        int64_t lo, hi;
    } * parts;
    size_t nparts, parts_cap;
    int64_t partitions_retry_ms; /* no partitions made ahead before this (mono ms) */
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

/* The latest time (ms) the writer makes a partition for: the end of year
 * 9999, as far as an RFC 3339 text reaches. */
#define TIME_MAX_MS 253402300799999LL
#define TERMINAL_STATES "('succeeded', 'dead', 'expired', 'canceled')"

/* The session-private staging table of a batch's rejections, emptied at
 * COMMIT and ROLLBACK. */
static const char STAGING_SQL[] =
    "CREATE TEMP TABLE IF NOT EXISTS rejbatch (kafka_topic text, kafka_partition integer,"
    " kafka_offset bigint, at_ms bigint, reason text, field text, detail text,"
    " message_value bytea) ON COMMIT DELETE ROWS";

#define EVENTS_COPY                                                                                \
    "baton.task_events (queue, task_id, seq, at, event, from_state, to_state, attempt,"            \
    " fencing_token, worker_id, error, detail)"
#define ENTRIES_COPY "baton.history_entries (stream, at, last_at, entry_ids)"

/* Entries of the batch's streams written before: the rows of each stream
 * ($1) whose range of times overlaps the batch's ($2, $3), with their ids.
 * Run under the writers' lock (write_batch), so that no other writer adds
 * rows between this look-up and the batch's own COPY. */
static const char FIND_ENTRIES_SQL[] =
    "SELECT h.stream, h.entry_ids"
    " FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(stream, lo, hi)"
    " JOIN baton.history_entries h ON h.stream = k.stream AND h.last_at >= k.lo AND h.at <= k.hi";

/* $1 time (ms): makes the partitions that hold it; their common range. */
static const char PARTITIONS_SQL[] =
    "SELECT (extract(epoch FROM lower_bound) * 1000)::bigint,"
    " (extract(epoch FROM upper_bound) * 1000)::bigint"
    " FROM baton.create_history_partitions(to_timestamp($1::bigint / 1000.0))";

/* Rows of tasks whose "submitted" event is not in the batch ($1 queues, $2
 * ids): submitted time and last event folded. One probe per task through
 * the partitions newest first, stopping at the first that has the row (an
 * ordered Append under the LIMIT). */
static const char LOOKUP_SQL[] =
    "SELECT k.queue, k.id, (extract(epoch FROM s.submitted_at) * 1000)::bigint, s.last_seq"
    " FROM unnest($1::text[], $2::text[]) AS k(queue, id)"
    " CROSS JOIN LATERAL (SELECT t.submitted_at, t.last_seq FROM baton.tasks t"
    "  WHERE t.id = k.id AND t.queue = k.queue ORDER BY t.submitted_at DESC LIMIT 1) s";

/* Tasks with events but no row yet ($1 queues, $2 ids, $3 first times). */
static const char EARLY_ADD_SQL[] =
    "INSERT INTO baton.tasks_early (queue, id, first_at)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])"
    " ON CONFLICT (queue, id) DO UPDATE"
    " SET first_at = least(baton.tasks_early.first_at, excluded.first_at)";

/* Tasks of the batch's "submitted" events that had events before. */
static const char EARLY_TAKE_SQL[] =
    "DELETE FROM baton.tasks_early e USING unnest($1::text[], $2::text[]) AS k(queue, id)"
    " WHERE e.queue = k.queue AND e.id = k.id RETURNING e.queue, e.id";

#define STATIC_COLUMNS                                                                             \
    "type, priority, max_attempts, timeout_ms, run_at, deadline, payload, meta, extra,"            \
    " kafka_topic, kafka_partition, kafka_offset"
/* A static column of a row made by later events, from the batch's
 * "submitted" event. */
#define FILL(c) c " = CASE WHEN t.type IS NULL THEN excluded." c " ELSE t." c " END"

/* One upsert per batch of the task rows folded in memory ($1 keep
 * payloads; the folds as arrays $2..$18). The task JSON is parsed once per
 * row (OFFSET 0 keeps the planner from pulling the subquery up, which
 * would parse it for every column read from it), and `extra` computed only
 * for a task the writer saw keys outside the contract in (other_keys). A new row takes the fold as
 * it is, its static columns from the task JSON of its "submitted" event (NULL without one). An
 * existing row takes a fold whose events all come after its last one (write_tasks checks it by a
 * look-up first): the latest state, attempt, worker, error and result, the earliest start, the
 * latest queued and event times; and its static columns when it had none.
 * A "submitted" fold that meets a row (the task's other events came first)
 * leaves last_seq 0 there, which the writer reads back to recompute the row
 * (RECOMPUTE_SQL) in the same transaction. */
// clang-format off
static const char UPSERT_SQL[] =
    "INSERT INTO baton.tasks AS t (queue, id, state, attempts, submitted_at, queued_at,"
    " first_started_at, finished_at, last_worker, last_error, result, updated_at, last_seq, "
    STATIC_COLUMNS ")"
    " SELECT s.queue, s.id, s.state, s.attempts, s.submitted_at, s.queued_at, s.first_started_at,"
    " CASE WHEN s.state IN " TERMINAL_STATES " THEN s.updated_at END, s.last_worker,"
    " s.last_error, s.result::jsonb, s.updated_at, s.last_seq,"
    " s.task->>'type', (s.task->>'priority')::smallint, (s.task->>'max_attempts')::integer,"
    " (s.task->>'timeout_ms')::bigint, (s.task->>'run_at')::timestamptz,"
    " (s.task->>'deadline')::timestamptz, CASE WHEN $1::boolean THEN s.task->'payload' END,"
    " coalesce(s.task->'meta', '{}'::jsonb),"
    " CASE WHEN s.other_keys THEN nullif(s.task - ARRAY['id', 'type', 'queue', 'priority',"
    " 'payload', 'max_attempts', 'timeout_ms', 'run_at', 'delay_ms', 'deadline', 'meta'],"
    " '{}'::jsonb) END,"
    " s.kafka_topic, s.kafka_partition, s.kafka_offset"
    " FROM (SELECT u.*, u.task_text::jsonb AS task FROM unnest($2::text[], $3::text[],"
    "  $4::text[], $5::integer[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[],"
    "  $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[],"
    "  $15::text[], $16::integer[], $17::bigint[], $18::boolean[]) AS u(queue, id, state,"
    "  attempts, submitted_at, queued_at, first_started_at, updated_at, last_worker, last_error,"
    "  result, last_seq, task_text, kafka_topic, kafka_partition, kafka_offset, other_keys)"
    "  OFFSET 0) s"
    " ON CONFLICT (id, queue, submitted_at) DO UPDATE SET state = excluded.state,"
    " attempts = excluded.attempts, queued_at = greatest(t.queued_at, excluded.queued_at),"
    " first_started_at = least(t.first_started_at, excluded.first_started_at),"
    " finished_at = CASE WHEN excluded.state IN " TERMINAL_STATES
    "  THEN greatest(t.updated_at, excluded.updated_at) END,"
    " last_worker = coalesce(excluded.last_worker, t.last_worker),"
    " last_error = coalesce(excluded.last_error, t.last_error),"
    " result = coalesce(excluded.result, t.result),"
    " updated_at = greatest(t.updated_at, excluded.updated_at),"
    " last_seq = CASE WHEN excluded.type IS NULL THEN excluded.last_seq ELSE 0 END, "
    FILL("type") ", " FILL("priority") ", " FILL("max_attempts") ", " FILL("timeout_ms") ", "
    FILL("run_at") ", " FILL("deadline") ", " FILL("payload") ", " FILL("meta") ", "
    FILL("extra") ", " FILL("kafka_topic") ", " FILL("kafka_partition") ", "
    FILL("kafka_offset")
    " RETURNING t.queue, t.id, t.last_seq";

/* Rows recomputed from all their events ($1 queues, $2 ids, $3 submitted
 * times), as every row was on every batch before migration 0005. */
static const char RECOMPUTE_SQL[] =
    "WITH agg AS (SELECT k.queue, k.id, k.submitted_at, a.* FROM"
    "  unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(queue, id, submitted_at)"
    "  CROSS JOIN LATERAL (SELECT max(e.seq) AS last_seq,"
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
    "  FROM baton.task_events e WHERE e.task_id = k.id AND e.queue = k.queue) a"
    "  WHERE a.last_seq IS NOT NULL)"
    " UPDATE baton.tasks t SET state = agg.state, attempts = agg.attempts,"
    " queued_at = agg.queued_at, first_started_at = agg.first_started_at,"
    " finished_at = CASE WHEN agg.state IN " TERMINAL_STATES " THEN agg.updated_at END,"
    " last_worker = agg.last_worker, last_error = agg.last_error, result = agg.result,"
    " updated_at = agg.updated_at, last_seq = agg.last_seq"
    " FROM agg WHERE t.id = agg.id AND t.queue = agg.queue AND t.submitted_at = agg.submitted_at";
// clang-format on

static const char INSERT_REJECTIONS_SQL[] =
    "INSERT INTO baton.rejections (kafka_topic, kafka_partition, kafka_offset, at, reason,"
    " field, detail, message_value)"
    " SELECT kafka_topic, kafka_partition, kafka_offset, to_timestamp(at_ms / 1000.0), reason,"
    " nullif(field, ''), detail, message_value FROM rejbatch ON CONFLICT DO NOTHING";

/* An event PostgreSQL refused, in a form it cannot refuse: its fields as
 * bytea, the stream name and the message made valid UTF-8 by the writer. */
static const char SET_ASIDE_SQL[] =
    "INSERT INTO baton.history_set_aside (stream, entry_id, event_no, sqlstate, error, fields)"
    " VALUES ($1, $2, $3, $4, $5, $6::bytea[]) ON CONFLICT DO NOTHING";

static const struct {
    const char *name, *sql;
} STATEMENTS[] = {{"find_entries", FIND_ENTRIES_SQL},
                  {"partitions", PARTITIONS_SQL},
                  {"lookup", LOOKUP_SQL},
                  {"early_add", EARLY_ADD_SQL},
                  {"early_take", EARLY_TAKE_SQL},
                  {"upsert", UPSERT_SQL},
                  {"recompute", RECOMPUTE_SQL},
                  {"insert_rejections", INSERT_REJECTIONS_SQL},
                  {"set_aside", SET_ASIDE_SQL}};

static void pg_close(struct history *h) {
    if (h->pg)
        PQfinish(h->pg);
    h->pg = NULL;
    h->nparts = 0; /* partitions may be dropped while we are away */
}

static baton_err_t pg_open(struct history *h, char *errstr, size_t errstr_size) {
    if (h->pg && PQstatus(h->pg) == CONNECTION_OK)
        return BATON_OK;
    pg_close(h);
    baton_err_t err =
        baton_pg_connect(h->config->pg_dsn, "baton history writer", &h->pg, errstr, errstr_size);
    if (!err)
        err = baton_pg_exec(h->pg, STAGING_SQL, errstr, errstr_size);
    for (size_t i = 0; !err && i < sizeof STATEMENTS / sizeof STATEMENTS[0]; i++) {
        PGresult *res = PQprepare(h->pg, STATEMENTS[i].name, STATEMENTS[i].sql, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            err = baton_pg_error(h->pg, res, "prepare", errstr, errstr_size);
        PQclear(res);
    }
    if (err)
        pg_close(h);
    return err;
}

/* Records the SQLSTATE of a failed statement (none when `res` is NULL: the
 * connection failed) for refused_by_data(), and words the error. A row for
 * which no partition exists (23514 without a constraint: a partition
 * dropped by a prune since we made it) is not the data's fault: the
 * partitions known are forgotten, to be made again on the next try. */
static baton_err_t pg_fail(struct history *h, const PGresult *res, const char *what, char *errstr,
                           size_t errstr_size) {
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(h->sqlstate, sizeof h->sqlstate, "%s", code ? code : "");
    if (code && strcmp(code, "23514") == 0 && !PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME)) {
        h->no_partition = 1;
        h->nparts = 0;
    }
    return baton_pg_error(h->pg, res, what, errstr, errstr_size);
}

/* Index in REFUSED_CLASSES of the error just met when it is PostgreSQL
 * refusing the data of the batch, on a healthy connection; -1 for every
 * other failure (a lost connection, 08; too little memory or disk, 53; a
 * shutdown, 57; a deadlock, 40; a missing table, 42; a missing partition),
 * which the caller retries with the batch whole. */
static int refused_by_data(const struct history *h) {
    if (!h->pg || PQstatus(h->pg) != CONNECTION_OK || h->no_partition)
        return -1;
    for (int i = 0; i < (int)(sizeof REFUSED_CLASSES / sizeof REFUSED_CLASSES[0]); i++)
        if (strncmp(h->sqlstate, REFUSED_CLASSES[i], 2) == 0)
            return i;
    return -1;
}

/* Streams `data` into `table` (with its column list) with COPY FROM STDIN,
 * in chunks (PQputCopyData takes an int length). */
static baton_err_t pg_copy(struct history *h, const char *table, const struct baton_buf *data,
                           char *errstr, size_t errstr_size) {
    char sql[256];
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

/* Runs a prepared statement; *out (when not NULL) gets the result of one
 * that returns rows, which the caller PQclear()s. */
static baton_err_t pg_query(struct history *h, const char *name, int nparams,
                            const char *const *params, PGresult **out, char *errstr,
                            size_t errstr_size) {
    if (out)
        *out = NULL;
    PGresult *res = PQexecPrepared(h->pg, name, nparams, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        baton_err_t err = pg_fail(h, res, name, errstr, errstr_size);
        PQclear(res);
        return err;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return BATON_OK;
}

static baton_err_t pg_run(struct history *h, const char *name, int nparams,
                          const char *const *params, char *errstr, size_t errstr_size) {
    return pg_query(h, name, nparams, params, NULL, errstr, errstr_size);
}

/* ------------------------------------------------------- events of a batch */

/* Fields of a task event the writer reads (their names in the stream). */
enum {
    F_ID,
    F_SEQ,
    F_AT,
    F_EVENT,
    F_FROM,
    F_TO,
    F_ATTEMPT,
    F_TOKEN,
    F_WORKER,
    F_ERROR,
    F_REASON,
    F_DUE,
    F_RESULT,
    F_KTOPIC,
    F_KPARTITION,
    F_KOFFSET,
    F_TASK,
    F_SUB,
    F_COUNT
};
static const char *const FIELD_NAMES[F_COUNT] = {
    "id",    "seq",    "at",  "event",  "from",   "to",         "attempt", "token", "worker",
    "error", "reason", "due", "result", "ktopic", "kpartition", "koffset", "task",  "sub"};

enum ev_kind {
    EV_TASK,      /* an event of a queue's stream */
    EV_REJECTION, /* an entry of baton:rejections */
    EV_SKIP,      /* an entry of a stream the writer does not know: acknowledged, not written */
};

/* One event of the batch, parsed once. Strings are borrowed from the batch's
 * replies; a field absent from the stream is NULL. */
struct ev {
    enum ev_kind kind;
    const char *queue; /* inside the stream name: not terminated */
    size_t queue_len;
    const char *f[F_COUNT];
    size_t n[F_COUNT];
    int64_t seq, at_ms, sub_ms;
    int at_ok, sub_ok; /* at_ms, sub_ms hold a time a partition can be made for */
    size_t entry;      /* index in h->ents */
    unsigned event_no; /* its place among its stream entry's events */
    int is_new;        /* its stream entry was not written before */
    int set_aside;
};

/* One Redis stream entry of the batch: the unit of idempotency. */
struct ent {
    const char *stream, *id; /* borrowed */
    int64_t ms;              /* the id's time */
    int is_new;
};

/* The fold of one task's events in the range being written. */
struct fold {
    size_t key; /* an event of the task (its queue and id) */
    /* Events: the latest; the latest with a worker, an error, a result
     * (succeeded); the "submitted" one. NONE when there is none. */
    size_t last, worker, error, result, submit;
    int64_t first_seq, first_at, queued_at, started_at, updated_at, sub_ms, row_last_seq;
    int sub_known; /* sub_ms is the submitted time of the task's row */
    int found;     /* its row exists, with last_seq row_last_seq (lookup_rows) */
    int upsert, recompute;
};
#define NONE ((size_t)-1)

/* A decimal int64, all of [s, s+n): no sign but '-', no blanks. */
static int parse_i64(const char *s, size_t n, int64_t *out) {
    if (!s || n == 0 || n > 20)
        return -1;
    char tmp[24];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9')))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end || end == tmp)
        return -1;
    *out = v;
    return 0;
}

/* The event's fields: name, value, name, value, ... (its span of its
 * stream entry's field array). */
static size_t ev_nfields(const struct entry *e) {
    return e->count;
}
static const redisReply *ev_field(const struct entry *e, size_t i) {
    return e->fields->element[e->first + i];
}

/* Value of a rejection entry's field `name`, or NULL; *len set. */
static const char *rejection_field(const struct entry *e, const char *name, size_t *len) {
    for (size_t i = 0; i + 1 < ev_nfields(e); i += 2) {
        if (strcmp(ev_field(e, i)->str, name) == 0) {
            *len = (size_t)ev_field(e, i + 1)->len;
            return ev_field(e, i + 1)->str;
        }
    }
    *len = 0;
    return NULL;
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *grown = realloc(*p, c * size);
    if (!grown)
        return -1;
    *p = grown;
    *cap = c;
    return 0;
}

/* Parses every event of the batch and lists its stream entries. */
static baton_err_t parse_batch(struct history *h) {
    size_t count = h->batch.count;
    if (grow((void **)&h->evs, &h->evs_cap, count, sizeof *h->evs) ||
        grow((void **)&h->ents, &h->ents_cap, count, sizeof *h->ents))
        return BATON_ERR_NOMEM;
    h->nents = 0;
    for (size_t i = 0; i < count; i++) {
        const struct entry *e = &h->batch.entries[i];
        struct ev *v = &h->evs[i];
        memset(v, 0, sizeof *v);
        /* Events of one entry are next to each other in the batch. */
        struct ent *last = h->nents ? &h->ents[h->nents - 1] : NULL;
        if (last && strcmp(last->id, e->id) == 0 && strcmp(last->stream, e->stream) == 0) {
            v->entry = h->nents - 1;
            v->event_no = h->evs[i - 1].event_no + 1;
        } else {
            struct ent *n = &h->ents[h->nents];
            n->stream = e->stream;
            n->id = e->id;
            n->ms = strtoll(e->id, NULL, 10);
            n->is_new = 0;
            v->entry = h->nents++;
        }
        if (strcmp(e->stream, BATON_KEY_REJECTIONS) == 0) {
            v->kind = EV_REJECTION;
            continue;
        }
        /* baton:{<queue>}:events -> queue */
        const char *open = strchr(e->stream, '{'), *close = strrchr(e->stream, '}');
        if (!open || !close || close < open) {
            v->kind = EV_SKIP;
            continue;
        }
        v->kind = EV_TASK;
        v->queue = open + 1;
        v->queue_len = (size_t)(close - open - 1);
        for (size_t k = 0; k + 1 < ev_nfields(e); k += 2) {
            const redisReply *name = ev_field(e, k), *value = ev_field(e, k + 1);
            for (int f = 0; f < F_COUNT; f++) {
                if ((size_t)name->len == strlen(FIELD_NAMES[f]) &&
                    memcmp(name->str, FIELD_NAMES[f], (size_t)name->len) == 0) {
                    v->f[f] = value->str;
                    v->n[f] = (size_t)value->len;
                    break;
                }
            }
        }
        /* "" means none for from, to, attempt, token, worker, error */
        for (int f = F_FROM; f <= F_ERROR; f++)
            if (v->f[f] && v->n[f] == 0)
                v->f[f] = NULL;
        v->at_ok = parse_i64(v->f[F_AT], v->n[F_AT], &v->at_ms) == 0 && v->at_ms >= 0 &&
                   v->at_ms <= TIME_MAX_MS;
        v->sub_ok = parse_i64(v->f[F_SUB], v->n[F_SUB], &v->sub_ms) == 0 && v->sub_ms >= 0 &&
                    v->sub_ms <= TIME_MAX_MS;
        if (parse_i64(v->f[F_SEQ], v->n[F_SEQ], &v->seq))
            v->seq = 0; /* refused by COPY (bigint) before any fold reads it */
    }
    return BATON_OK;
}

/* ------------------------------------------------------------ partitions */

static int covered(const struct history *h, int64_t ms) {
    for (size_t i = 0; i < h->nparts; i++)
        if (h->parts[i].lo <= ms && ms < h->parts[i].hi)
            return 1;
    return 0;
}

/* Makes the partitions that hold time `ms` (in the transaction open). */
static baton_err_t make_partitions(struct history *h, int64_t ms, char *errstr,
                                   size_t errstr_size) {
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, ms);
    const char *params[] = {t};
    PGresult *res = NULL;
    baton_err_t err = pg_query(h, "partitions", 1, params, &res, errstr, errstr_size);
    if (err)
        return err;
    if (PQntuples(res) == 1 &&
        !grow((void **)&h->parts, &h->parts_cap, h->nparts + 1, sizeof *h->parts)) {
        h->parts[h->nparts].lo = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        h->parts[h->nparts].hi = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        h->nparts++;
    }
    PQclear(res);
    return BATON_OK;
}

/* Times (ms) the batch's new rows are partitioned by: its entries', its
 * events' and its tasks' submitted times. Calls `fn` for each one not in a
 * partition known to exist, until it fails. */
static baton_err_t each_uncovered(struct history *h,
                                  baton_err_t (*fn)(struct history *, int64_t, char *, size_t),
                                  char *errstr, size_t errstr_size) {
    baton_err_t err = BATON_OK;
    for (size_t i = 0; !err && i < h->nents; i++)
        if (h->ents[i].ms >= 0 && h->ents[i].ms <= TIME_MAX_MS && !covered(h, h->ents[i].ms))
            err = fn(h, h->ents[i].ms, errstr, errstr_size);
    for (size_t i = 0; !err && i < h->batch.count; i++) {
        const struct ev *v = &h->evs[i];
        if (v->kind != EV_TASK)
            continue;
        if (v->at_ok && !covered(h, v->at_ms))
            err = fn(h, v->at_ms, errstr, errstr_size);
        if (!err && v->sub_ok && !covered(h, v->sub_ms))
            err = fn(h, v->sub_ms, errstr, errstr_size);
    }
    return err;
}

static baton_err_t found_uncovered(struct history *h, int64_t ms, char *errstr,
                                   size_t errstr_size) {
    (void)h, (void)ms;
    return baton_seterr(errstr, errstr_size, BATON_ERR_NOT_FOUND, "uncovered");
}

/* Whether the batch needs a partition not known to exist. */
static int any_uncovered(struct history *h) {
    char errstr[16];
    return each_uncovered(h, found_uncovered, errstr, sizeof errstr) != BATON_OK;
}

/* Before the batch's transaction, in one of their own that waits at most
 * 1 s for a lock: the partitions the batch needs, and those of the next
 * period once the batch is in the second half of one, so that a batch
 * rarely makes a partition itself. ATTACH PARTITION waits while a prune
 * detaches one; a failure here only leaves the work to the batch. */
static void prepare_partitions(struct history *h) {
    int64_t now = baton_time_mono_ms();
    if (now < h->partitions_retry_ms)
        return;
    int64_t latest = -1;
    for (size_t i = 0; i < h->nents; i++)
        if (h->ents[i].ms <= TIME_MAX_MS && h->ents[i].ms > latest)
            latest = h->ents[i].ms;
    int64_t next = -1;
    for (size_t i = 0; latest >= 0 && i < h->nparts; i++)
        if (h->parts[i].lo <= latest && latest < h->parts[i].hi &&
            h->parts[i].hi - latest < (h->parts[i].hi - h->parts[i].lo) / 2 &&
            h->parts[i].hi <= TIME_MAX_MS && !covered(h, h->parts[i].hi))
            next = h->parts[i].hi;
    if (next < 0 && !any_uncovered(h))
        return;
    char errstr[512];
    baton_err_t err =
        baton_pg_exec(h->pg, "BEGIN; SET LOCAL lock_timeout = '1s'", errstr, sizeof errstr);
    if (!err)
        err = each_uncovered(h, make_partitions, errstr, sizeof errstr);
    if (!err && next >= 0)
        err = make_partitions(h, next, errstr, sizeof errstr);
    if (!err)
        err = baton_pg_exec(h->pg, "COMMIT", errstr, sizeof errstr);
    if (err) {
        char ignored[256];
        if (h->pg && PQstatus(h->pg) == CONNECTION_OK)
            baton_pg_exec(h->pg, "ROLLBACK", ignored, sizeof ignored);
        h->nparts = 0;
        h->partitions_retry_ms = now + 10000;
        BATON_DEBUG(COMPONENT, "partitions not made ahead (the batch will make them): %s", errstr);
    }
}

/* --------------------------------------------------------- COPY builders */

/* A time in ms as COPY text (RFC 3339, UTC). */
static void copy_time(struct baton_buf *t, int64_t ms, int tab) {
    char text[BATON_RFC3339_BUFSZ];
    baton_time_format_rfc3339(ms, text);
    copy_field(t, text, strlen(text), 0, tab);
}

/* Appends s[0..n) as the inside of a JSON string. */
static void put_json_string(struct baton_buf *t, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    baton_buf_put(t, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        baton_buf_put(t, s + start, i - start);
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            baton_buf_put(t, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            baton_buf_put(t, esc, 6);
        }
        start = i + 1;
    }
    baton_buf_put(t, s + start, n - start);
    baton_buf_put(t, "\"", 1);
}

/* The JSON value of a `result` field: the text itself when it is JSON,
 * else the text as a JSON string. Into h->scratch. */
static void result_json(struct history *h, const struct ev *v) {
    baton_buf_reset(&h->scratch);
    json_error_t jerr;
    json_t *parsed = json_loadb(v->f[F_RESULT], v->n[F_RESULT], JSON_DECODE_ANY, &jerr);
    if (parsed)
        baton_buf_put(&h->scratch, v->f[F_RESULT], v->n[F_RESULT]);
    else
        put_json_string(&h->scratch, v->f[F_RESULT], v->n[F_RESULT]);
    json_decref(parsed);
}

/* An event as a row of baton.task_events. detail: the event-specific
 * fields, as a JSON object (NULL when none). */
static void copy_event(struct history *h, const struct ev *v) {
    struct baton_buf *t = &h->events;
    copy_field(t, v->queue, v->queue_len, 0, 1);
    copy_field(t, v->f[F_ID], v->n[F_ID], 0, 1);
    copy_field(t, v->f[F_SEQ], v->n[F_SEQ], 0, 1);
    copy_time(t, v->at_ms, 1);
    static const int cols[] = {F_EVENT, F_FROM, F_TO, F_ATTEMPT, F_TOKEN, F_WORKER, F_ERROR};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        copy_field(t, v->f[cols[c]], v->n[cols[c]], 0, 1);
    struct baton_buf *d = &h->detail;
    baton_buf_reset(d);
    baton_buf_put(d, "{", 1);
    static const int extras[] = {F_REASON, F_DUE, F_RESULT, F_KTOPIC, F_KPARTITION, F_KOFFSET};
    for (size_t c = 0; c < sizeof extras / sizeof extras[0]; c++) {
        int f = extras[c];
        if (!v->f[f])
            continue;
        if (d->len > 1)
            baton_buf_put(d, ",", 1);
        baton_buf_put(d, "\"", 1);
        baton_buf_put(d, FIELD_NAMES[f], strlen(FIELD_NAMES[f]));
        baton_buf_put(d, "\":", 2);
        if (f == F_RESULT) {
            result_json(h, v);
            baton_buf_put(d, h->scratch.data ? h->scratch.data : "", h->scratch.len);
        } else if (f == F_REASON || f == F_KTOPIC) {
            put_json_string(d, v->f[f], v->n[f]);
        } else { /* times, coordinates */
            char num[24];
            char tmp[24];
            size_t n = v->n[f] < sizeof tmp - 1 ? v->n[f] : sizeof tmp - 1;
            memcpy(tmp, v->f[f], n);
            tmp[n] = '\0';
            snprintf(num, sizeof num, "%lld", strtoll(tmp, NULL, 10));
            baton_buf_put(d, num, strlen(num));
        }
    }
    baton_buf_put(d, "}", 1);
    if (d->len == 2) /* no event-specific field */
        copy_field(t, NULL, 0, 0, 0);
    else
        copy_field(t, d->data, d->len, 1, 0);
}

/* A rejection entry as a row of the rejbatch staging table. */
static void copy_rejection(struct history *h, size_t i) {
    const struct entry *e = &h->batch.entries[i];
    struct baton_buf *t = &h->rejections;
    size_t n;
    const char *v;
    static const char *const cols[] = {"topic", "partition", "offset"};
    for (int c = 0; c < 3; c++) {
        v = rejection_field(e, cols[c], &n);
        copy_field(t, v, n, 0, 1);
    }
    char at[24];
    snprintf(at, sizeof at, "%lld", strtoll(e->id, NULL, 10)); /* stream id ms */
    copy_field(t, at, strlen(at), 0, 1);
    v = rejection_field(e, "reason", &n);
    copy_field(t, v, n, 0, 1);
    v = rejection_field(e, "field", &n);
    copy_field(t, v, n, 0, 1);
    v = rejection_field(e, "detail", &n);
    copy_field(t, v, n, 0, 1);
    v = rejection_field(e, "value", &n);
    copy_bytea(t, v ? v : "", n, 0);
}

/* ---------------------------------------------------- array parameters */

/* Appends s[0..n) to a text[] literal being built in `a` ("{" first). */
static void array_add(struct baton_buf *a, const char *s, size_t n) {
    baton_buf_put(a, a->len > 1 ? ",\"" : "\"", a->len > 1 ? 2 : 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            baton_buf_put(a, s + start, i - start);
            baton_buf_put(a, "\\", 1);
            start = i;
        }
    }
    baton_buf_put(a, s + start, n - start);
    baton_buf_put(a, "\"", 1);
}

static void array_add_null(struct baton_buf *a) {
    baton_buf_put(a, a->len > 1 ? ",NULL" : "NULL", a->len > 1 ? 5 : 4);
}

static void array_add_time(struct baton_buf *a, int64_t ms) {
    char text[BATON_RFC3339_BUFSZ];
    baton_time_format_rfc3339(ms, text);
    array_add(a, text, strlen(text));
}

static void arrays_begin(struct history *h, int n) {
    for (int i = 0; i < n; i++) {
        baton_buf_reset(&h->arr[i]);
        baton_buf_put(&h->arr[i], "{", 1);
    }
}

/* Closes the literals; the parameter values, or -1 when out of memory. */
static int arrays_end(struct history *h, int n, const char **params) {
    int failed = 0;
    for (int i = 0; i < n; i++) {
        baton_buf_put(&h->arr[i], "}", 1);
        failed |= h->arr[i].failed;
        params[i] = h->arr[i].data;
    }
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------- the tasks */

static int cmp_key(const struct ev *a, const struct ev *b) {
    size_t n = a->queue_len < b->queue_len ? a->queue_len : b->queue_len;
    int c = memcmp(a->queue, b->queue, n);
    if (c || a->queue_len != b->queue_len)
        return c ? c : (a->queue_len < b->queue_len ? -1 : 1);
    n = a->n[F_ID] < b->n[F_ID] ? a->n[F_ID] : b->n[F_ID];
    c = memcmp(a->f[F_ID] ? a->f[F_ID] : "", b->f[F_ID] ? b->f[F_ID] : "", n);
    if (c || a->n[F_ID] != b->n[F_ID])
        return c ? c : (a->n[F_ID] < b->n[F_ID] ? -1 : 1);
    return 0;
}

/* The events cmp_ord() sorts: qsort has no context argument. */
static _Thread_local const struct ev *sort_evs;

static int cmp_ord(const void *x, const void *y) {
    const struct ev *a = &sort_evs[*(const size_t *)x], *b = &sort_evs[*(const size_t *)y];
    int c = cmp_key(a, b);
    if (c)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The fold of (queue, id) given as strings, or NULL (folds are sorted). */
static struct fold *find_fold(struct history *h, const char *queue, const char *id) {
    struct ev key = {0};
    key.queue = queue;
    key.queue_len = strlen(queue);
    key.f[F_ID] = id;
    key.n[F_ID] = strlen(id);
    size_t lo = 0, hi = h->nfolds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(&h->evs[h->folds[mid].key], &key);
        if (c == 0)
            return &h->folds[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Folds the task events of todo[lo, hi) per task, in memory. */
static baton_err_t fold_range(struct history *h, size_t lo, size_t hi) {
    size_t n = 0;
    if (grow((void **)&h->ord, &h->ord_cap, hi - lo, sizeof *h->ord))
        return BATON_ERR_NOMEM;
    for (size_t i = lo; i < hi; i++)
        if (h->evs[h->todo[i]].kind == EV_TASK)
            h->ord[n++] = h->todo[i];
    sort_evs = h->evs;
    qsort(h->ord, n, sizeof *h->ord, cmp_ord);
    if (grow((void **)&h->folds, &h->folds_cap, n, sizeof *h->folds))
        return BATON_ERR_NOMEM;
    h->nfolds = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ev *v = &h->evs[h->ord[i]];
        struct fold *f = h->nfolds ? &h->folds[h->nfolds - 1] : NULL;
        if (!f || cmp_key(&h->evs[f->key], v) != 0) {
            f = &h->folds[h->nfolds++];
            *f = (struct fold){.key = h->ord[i],
                               .worker = NONE,
                               .error = NONE,
                               .result = NONE,
                               .submit = NONE,
                               .first_seq = v->seq,
                               .first_at = v->at_ms,
                               .queued_at = INT64_MIN,
                               .started_at = INT64_MAX,
                               .updated_at = v->at_ms};
        }
        /* In seq order: each later event overrides. */
        f->last = h->ord[i];
        if (v->f[F_WORKER])
            f->worker = h->ord[i];
        if (v->f[F_ERROR])
            f->error = h->ord[i];
        int is = v->f[F_EVENT] != NULL;
        if (is && v->n[F_EVENT] == 9 && memcmp(v->f[F_EVENT], "succeeded", 9) == 0)
            f->result = h->ord[i];
        if (is && v->n[F_EVENT] == 9 && memcmp(v->f[F_EVENT], "submitted", 9) == 0) {
            f->submit = h->ord[i];
            f->sub_ms = v->at_ms;
            f->sub_known = 1;
        }
        if (is && v->n[F_EVENT] == 7 && memcmp(v->f[F_EVENT], "claimed", 7) == 0 &&
            v->at_ms < f->started_at)
            f->started_at = v->at_ms;
        if (v->f[F_TO] && v->n[F_TO] == 6 && memcmp(v->f[F_TO], "queued", 6) == 0 &&
            v->at_ms > f->queued_at)
            f->queued_at = v->at_ms;
        if (v->at_ms > f->updated_at)
            f->updated_at = v->at_ms;
        if (v->at_ms < f->first_at)
            f->first_at = v->at_ms;
        if (!f->sub_known && v->sub_ok) {
            f->sub_ms = v->sub_ms;
            f->sub_known = 1;
        }
    }
    return BATON_OK;
}

/* The rows of the folds without a "submitted" event: their submitted
 * time and last event folded. */
static baton_err_t lookup_rows(struct history *h, char *errstr, size_t errstr_size) {
    arrays_begin(h, 2);
    size_t asked = 0;
    for (size_t i = 0; i < h->nfolds; i++) {
        const struct fold *f = &h->folds[i];
        if (f->submit != NONE)
            continue;
        const struct ev *v = &h->evs[f->key];
        array_add(&h->arr[0], v->queue, v->queue_len);
        array_add(&h->arr[1], v->f[F_ID], v->n[F_ID]);
        asked++;
    }
    if (!asked)
        return BATON_OK;
    const char *params[2];
    if (arrays_end(h, 2, params))
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    PGresult *res = NULL;
    baton_err_t err = pg_query(h, "lookup", 2, params, &res, errstr, errstr_size);
    if (err)
        return err;
    for (int r = 0; r < PQntuples(res); r++) {
        struct fold *f = find_fold(h, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
        if (f && f->submit == NONE) {
            f->sub_ms = strtoll(PQgetvalue(res, r, 2), NULL, 10);
            f->row_last_seq = strtoll(PQgetvalue(res, r, 3), NULL, 10);
            f->sub_known = f->found = 1;
        }
    }
    PQclear(res);
    return BATON_OK;
}

/* Number of arrays UPSERT_SQL takes, $2.. */
#define UPSERT_ARRAYS 17

/* The top-level keys of the contract (task-contract.md); others go to
 * `extra`. */
static const char *const TASK_KEYS[] = {"id",       "type",         "queue",      "priority",
                                        "payload",  "max_attempts", "timeout_ms", "run_at",
                                        "delay_ms", "deadline",     "meta"};

/* Whether the JSON object s[0..n) may have a top-level key outside
 * TASK_KEYS: 0 only when every key was read and is one of them (a key
 * written with an escape counts as other). A scan of the text, not a
 * parse: PostgreSQL parses it, and computes `extra` when this says 1. */
static int has_other_keys(const char *s, size_t n) {
    size_t i = 0;
    int depth = 0, expect_key = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            size_t start = ++i;
            int escaped = 0;
            while (i < n && s[i] != '"') {
                if (s[i] == '\\') {
                    escaped = 1;
                    i++;
                }
                i++;
            }
            if (i >= n)
                return 1;
            if (depth == 1 && expect_key) {
                if (escaped)
                    return 1;
                int known = 0;
                for (size_t k = 0; k < sizeof TASK_KEYS / sizeof TASK_KEYS[0]; k++)
                    if (strlen(TASK_KEYS[k]) == i - start &&
                        memcmp(TASK_KEYS[k], s + start, i - start) == 0)
                        known = 1;
                if (!known)
                    return 1;
                expect_key = 0;
            }
            i++;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
            expect_key = c == '{' && depth == 1;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            expect_key = 1;
        }
        i++;
    }
    return depth != 0;
}

static void array_add_ev(struct baton_buf *a, const struct ev *v, int f) {
    if (v && v->f[f])
        array_add(a, v->f[f], v->n[f]);
    else
        array_add_null(a);
}

static void array_add_time_or_null(struct baton_buf *a, int64_t ms, int64_t none) {
    if (ms == none)
        array_add_null(a);
    else
        array_add_time(a, ms);
}

/* The folds to upsert as the arrays of UPSERT_SQL. */
static void upsert_arrays(struct history *h) {
    struct baton_buf *a = h->arr;
    arrays_begin(h, UPSERT_ARRAYS);
    for (size_t i = 0; i < h->nfolds; i++) {
        const struct fold *f = &h->folds[i];
        if (!f->upsert)
            continue;
        const struct ev *k = &h->evs[f->key], *last = &h->evs[f->last];
        const struct ev *w = f->worker != NONE ? &h->evs[f->worker] : NULL;
        const struct ev *e = f->error != NONE ? &h->evs[f->error] : NULL;
        const struct ev *r = f->result != NONE ? &h->evs[f->result] : NULL;
        const struct ev *s = f->submit != NONE ? &h->evs[f->submit] : NULL;
        char num[24];
        array_add(&a[0], k->queue, k->queue_len);
        array_add_ev(&a[1], k, F_ID);
        array_add_ev(&a[2], last, F_TO);
        array_add_ev(&a[3], last, F_ATTEMPT);
        array_add_time(&a[4], f->sub_ms);
        array_add_time_or_null(&a[5], f->queued_at, INT64_MIN);
        array_add_time_or_null(&a[6], f->started_at, INT64_MAX);
        array_add_time(&a[7], f->updated_at);
        array_add_ev(&a[8], w, F_WORKER);
        array_add_ev(&a[9], e, F_ERROR);
        if (r && r->f[F_RESULT]) {
            result_json(h, r);
            array_add(&a[10], h->scratch.data ? h->scratch.data : "", h->scratch.len);
        } else {
            array_add_null(&a[10]);
        }
        snprintf(num, sizeof num, "%" PRId64, last->seq);
        array_add(&a[11], num, strlen(num));
        array_add_ev(&a[12], s, F_TASK);
        array_add_ev(&a[13], s, F_KTOPIC);
        if (s && s->n[F_KPARTITION])
            array_add_ev(&a[14], s, F_KPARTITION);
        else
            array_add_null(&a[14]);
        if (s && s->n[F_KOFFSET])
            array_add_ev(&a[15], s, F_KOFFSET);
        else
            array_add_null(&a[15]);
        int other = s && s->f[F_TASK] && has_other_keys(s->f[F_TASK], s->n[F_TASK]);
        array_add(&a[16], other ? "t" : "f", 1);
    }
}

/* Keys (queue, id) of the folds `which` picks into h->arr[0..1], and a
 * time into h->arr[2]: none (0), the first event's (1), the submitted
 * one (2). The number of keys. */
static size_t fold_keys(struct history *h, int (*which)(const struct fold *), int with_time) {
    arrays_begin(h, with_time ? 3 : 2);
    size_t n = 0;
    for (size_t i = 0; i < h->nfolds; i++) {
        const struct fold *f = &h->folds[i];
        if (!which(f))
            continue;
        array_add(&h->arr[0], h->evs[f->key].queue, h->evs[f->key].queue_len);
        array_add(&h->arr[1], h->evs[f->key].f[F_ID], h->evs[f->key].n[F_ID]);
        if (with_time == 1)
            array_add_time(&h->arr[2], f->first_at);
        else if (with_time == 2)
            array_add_time(&h->arr[2], f->sub_ms);
        n++;
    }
    return n;
}

static int has_submit(const struct fold *f) {
    return f->submit != NONE;
}
static int goes_early(const struct fold *f) {
    return !f->sub_known;
}
static int recomputed(const struct fold *f) {
    return f->recompute && f->sub_known;
}

/* Rows of the range's tasks. A fold with the task's "submitted" event makes
 * its row; a fold whose row exists and whose events all come after the
 * row's last one updates it; both in one upsert. A fold with events from
 * before the row's last one (they arrived out of order), a fold that met a
 * row made by events that came first, and the row of a task noted early
 * when its "submitted" event comes are recomputed from all the task's
 * events. A fold whose row cannot be found and whose submitted time is not
 * known (its "submitted" event not written yet) is noted in
 * baton.tasks_early. */
static baton_err_t write_tasks(struct history *h, size_t lo, size_t hi, char *errstr,
                               size_t errstr_size) {
    if (fold_range(h, lo, hi))
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    if (!h->nfolds)
        return BATON_OK;
    const char *keep_payload = h->config->history_payload ? "true" : "false";
    baton_err_t err = lookup_rows(h, errstr, errstr_size);
    if (err)
        return err;
    size_t upserts = 0;
    for (size_t i = 0; i < h->nfolds; i++) {
        struct fold *f = &h->folds[i];
        if (f->found && f->first_seq <= f->row_last_seq) {
            f->recompute = 1;
        } else if (f->sub_known) {
            f->upsert = 1;
            upserts++;
        }
    }

    const char *params[1 + UPSERT_ARRAYS];
    if (fold_keys(h, has_submit, 0)) { /* tasks noted early whose "submitted" event is here */
        if (arrays_end(h, 2, params))
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        PGresult *res = NULL;
        err = pg_query(h, "early_take", 2, params, &res, errstr, errstr_size);
        if (err)
            return err;
        for (int r = 0; r < PQntuples(res); r++) {
            struct fold *f = find_fold(h, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
            if (f)
                f->recompute = 1;
        }
        PQclear(res);
    }

    if (upserts) {
        upsert_arrays(h);
        params[0] = keep_payload;
        if (arrays_end(h, UPSERT_ARRAYS, params + 1) || h->scratch.failed)
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        PGresult *res = NULL;
        err = pg_query(h, "upsert", 1 + UPSERT_ARRAYS, params, &res, errstr, errstr_size);
        if (err)
            return err;
        /* A "submitted" fold that met a row: its other events came first. */
        for (int r = 0; r < PQntuples(res); r++) {
            struct fold *f = find_fold(h, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
            if (f && f->submit != NONE && strcmp(PQgetvalue(res, r, 2), "0") == 0)
                f->recompute = 1;
        }
        PQclear(res);
    }

    if (fold_keys(h, goes_early, 1)) {
        if (arrays_end(h, 3, params))
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        err = pg_run(h, "early_add", 3, params, errstr, errstr_size);
        if (err)
            return err;
    }

    if (fold_keys(h, recomputed, 2)) {
        if (arrays_end(h, 3, params))
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        err = pg_run(h, "recompute", 3, params, errstr, errstr_size);
    }
    return err;
}

/* ------------------------------------------------------------ the batch */

static int cmp_ent_key(const struct ent *a, const struct ent *b) {
    int c = strcmp(a->stream, b->stream);
    return c ? c : strcmp(a->id, b->id);
}

/* The entries cmp_ent() sorts. */
static _Thread_local const struct ent *sort_ents;

static int cmp_ent(const void *x, const void *y) {
    return cmp_ent_key(&sort_ents[*(const size_t *)x], &sort_ents[*(const size_t *)y]);
}

/* Finds which of the batch's stream entries were written before (replays:
 * their events are not written again), then records the others: one row
 * per stream, its ids in an array, by COPY. Under the writers' lock. */
static baton_err_t register_entries(struct history *h, char *errstr, size_t errstr_size) {
    if (grow((void **)&h->ent_order, &h->ent_order_cap, h->nents, sizeof *h->ent_order))
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < h->nents; i++) {
        h->ents[i].is_new = 1;
        if (h->ents[i].ms >= 0 && h->ents[i].ms <= TIME_MAX_MS)
            h->ent_order[n++] = i; /* else no partition holds it: written, never recognised */
    }
    if (!n)
        return BATON_OK;
    sort_ents = h->ents;
    qsort(h->ent_order, n, sizeof *h->ent_order, cmp_ent);

    /* Per stream, the range of times of its entries in the batch. */
    arrays_begin(h, 3);
    for (size_t i = 0; i < n;) {
        const struct ent *first = &h->ents[h->ent_order[i]];
        int64_t lo = first->ms, hi = first->ms;
        size_t j = i;
        for (; j < n && strcmp(h->ents[h->ent_order[j]].stream, first->stream) == 0; j++) {
            int64_t ms = h->ents[h->ent_order[j]].ms;
            lo = ms < lo ? ms : lo;
            hi = ms > hi ? ms : hi;
        }
        array_add(&h->arr[0], first->stream, strlen(first->stream));
        array_add_time(&h->arr[1], lo);
        array_add_time(&h->arr[2], hi);
        i = j;
    }
    const char *params[3];
    if (arrays_end(h, 3, params))
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    PGresult *res = NULL;
    baton_err_t err = pg_query(h, "find_entries", 3, params, &res, errstr, errstr_size);
    if (err)
        return err;
    for (int r = 0; r < PQntuples(res); r++) {
        /* {id,id,...}: ids are digits and '-', never quoted */
        char *ids = PQgetvalue(res, r, 1);
        struct ent key = {.stream = PQgetvalue(res, r, 0)};
        for (char *p = ids; *p;) {
            while (*p == '{' || *p == ',' || *p == '"')
                p++;
            char *end = p + strcspn(p, ",}\"");
            if (end == p)
                break;
            char saved = *end;
            *end = '\0';
            key.id = p;
            size_t lo = 0, hi = n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = cmp_ent_key(&h->ents[h->ent_order[mid]], &key);
                if (c == 0) {
                    h->ents[h->ent_order[mid]].is_new = 0;
                    break;
                }
                if (c < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            *end = saved;
            p = end;
        }
    }
    PQclear(res);

    /* The new ones: a row per stream. */
    struct baton_buf *t = &h->entries;
    baton_buf_reset(t);
    for (size_t i = 0; i < n;) {
        const struct ent *first = &h->ents[h->ent_order[i]];
        struct baton_buf *ids = &h->arr[0];
        baton_buf_reset(ids);
        baton_buf_put(ids, "{", 1);
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        size_t j = i;
        for (; j < n && strcmp(h->ents[h->ent_order[j]].stream, first->stream) == 0; j++) {
            const struct ent *e = &h->ents[h->ent_order[j]];
            if (!e->is_new)
                continue;
            lo = e->ms < lo ? e->ms : lo;
            hi = e->ms > hi ? e->ms : hi;
            array_add(ids, e->id, strlen(e->id));
        }
        baton_buf_put(ids, "}", 1);
        if (lo != INT64_MAX) {
            copy_field(t, first->stream, strlen(first->stream), 0, 1);
            copy_time(t, lo, 1);
            copy_time(t, hi, 1);
            copy_field(t, ids->data, ids->len, 0, 0);
        }
        i = j;
    }
    if (t->failed || h->arr[0].failed)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    return t->len ? pg_copy(h, ENTRIES_COPY, t, errstr, errstr_size) : BATON_OK;
}

/* Writes event `i` of the batch, which PostgreSQL refused (or which no
 * partition can hold) with `sqlstate` and `why`, to baton.history_set_aside:
 * its fields as a bytea[] literal of hex values (`{"\\x..","\\x.."}`), which
 * no byte can break, and the stream name and the message made valid
 * UTF-8. */
static baton_err_t set_aside(struct history *h, size_t i, const char *sqlstate, const char *why,
                             int by_pg, char *errstr, size_t errstr_size) {
    const struct entry *e = &h->batch.entries[i];
    struct baton_buf fields = {0};
    baton_buf_put(&fields, "{", 1);
    for (size_t k = 0; k < ev_nfields(e); k++) {
        const redisReply *f = ev_field(e, k);
        baton_buf_put(&fields, k ? ",\"\\\\x" : "\"\\\\x", k ? 5 : 4);
        put_hex(&fields, f->str ? f->str : "", f->str ? (size_t)f->len : 0);
        baton_buf_put(&fields, "\"", 1);
    }
    baton_buf_put(&fields, "}", 1);
    char *stream = baton_utf8_sanitize(e->stream, strlen(e->stream), NULL);
    char *message = baton_utf8_sanitize(why, strlen(why), NULL);
    char event_no[16];
    snprintf(event_no, sizeof event_no, "%u", h->evs[i].event_no);
    baton_err_t err = BATON_OK;
    if (fields.failed || !stream || !message) {
        err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    } else {
        const char *params[] = {stream, e->id, event_no, sqlstate, message, fields.data};
        err = pg_run(h, "set_aside", 6, params, errstr, errstr_size);
    }
    if (!err) {
        h->evs[i].set_aside = 1;
        BATON_WARN(COMPONENT,
                   "set aside entry %s of %s (event %s of the entry): %s (%s); its raw fields "
                   "are in baton.history_set_aside, the rest of the batch is written",
                   e->id, stream, event_no,
                   by_pg ? "PostgreSQL refused it" : "it cannot be stored as it is", message);
    }
    free(stream);
    free(message);
    baton_buf_free(&fields);
    return err;
}

static void count_set_aside(struct history *h, int class) {
    h->set_aside++;
    h->set_aside_by_class[class]++;
}

/* Events the writer cannot hand to PostgreSQL as they are go to
 * baton.history_set_aside before the rest is written, with the SQLSTATE of
 * the rule they break: no partition can hold an event whose "at" is
 * missing (a NULL where baton.task_events requires a value, 23502) or no
 * time in milliseconds (22007); a task JSON with a NUL byte cannot be a
 * query parameter (PostgreSQL refuses NUL in text, 22021). The other
 * fields go through COPY, which refuses such bytes itself. */
static baton_err_t set_aside_unstorable(struct history *h, char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < h->batch.count; i++) {
        const struct ev *v = &h->evs[i];
        if (v->kind != EV_TASK || !h->ents[v->entry].is_new)
            continue;
        const char *sqlstate, *why;
        if (!v->f[F_AT]) {
            sqlstate = "23502";
            why = "the event has no \"at\": no partition of baton.task_events can hold it (null "
                  "value in column \"at\")";
        } else if (!v->at_ok) {
            sqlstate = "22007";
            why = "the event's \"at\" is not a time in milliseconds between 1970 and 9999: no "
                  "partition of baton.task_events can hold it";
        } else if (v->f[F_TASK] && memchr(v->f[F_TASK], '\0', v->n[F_TASK])) {
            sqlstate = "22021";
            why = "invalid byte sequence for encoding \"UTF8\": 0x00 in the task JSON";
        } else {
            continue;
        }
        char message[256];
        snprintf(message, sizeof message, "%s %s", sqlstate, why);
        baton_err_t err = set_aside(h, i, sqlstate, message, 0, errstr, errstr_size);
        if (err)
            return err;
        count_set_aside(h, sqlstate[1] == '2' ? 0 : 1);
    }
    return BATON_OK;
}

/* Sends the new events of todo[lo, hi): events by COPY, the task rows they
 * change, the rejections. */
static baton_err_t write_staged(struct history *h, size_t lo, size_t hi, char *errstr,
                                size_t errstr_size) {
    baton_buf_reset(&h->events);
    baton_buf_reset(&h->rejections);
    for (size_t i = lo; i < hi; i++) {
        size_t k = h->todo[i];
        if (h->evs[k].kind == EV_TASK)
            copy_event(h, &h->evs[k]);
        else if (h->evs[k].kind == EV_REJECTION)
            copy_rejection(h, k);
    }
    if (h->events.failed || h->rejections.failed || h->detail.failed || h->scratch.failed)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    baton_err_t err = BATON_OK;
    if (h->events.len)
        err = pg_copy(h, EVENTS_COPY, &h->events, errstr, errstr_size);
    if (!err && h->events.len)
        err = write_tasks(h, lo, hi, errstr, errstr_size);
    if (!err && h->rejections.len)
        err = pg_copy(h, "rejbatch", &h->rejections, errstr, errstr_size);
    if (!err && h->rejections.len)
        err = pg_run(h, "insert_rejections", 0, NULL, errstr, errstr_size);
    return err;
}

/* Writes events todo[lo, hi) of the batch inside the open transaction,
 * under a savepoint. When PostgreSQL refuses their data, rolls back to the
 * savepoint and writes each half the same way, down to single events,
 * which are set aside: k refused events out of n cost about 2k*log2(n)
 * tries, a batch with none a savepoint. Returns an error only for a
 * failure that is not the data's; the caller rolls back and retries. */
static baton_err_t write_range(struct history *h, size_t lo, size_t hi, char *errstr,
                               size_t errstr_size) {
    if (lo == hi)
        return BATON_OK;
    /* Rows of ranges written before this one are in the tables already. */
    baton_err_t err =
        baton_pg_exec(h->pg, h->staged ? "DELETE FROM rejbatch; SAVEPOINT part" : "SAVEPOINT part",
                      errstr, errstr_size);
    if (err)
        return err;
    h->sqlstate[0] = '\0';
    h->no_partition = 0;
    err = write_staged(h, lo, hi, errstr, errstr_size);
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
        err = set_aside(h, h->todo[lo], sqlstate, why, 1, errstr, errstr_size);
        if (!err)
            count_set_aside(h, class);
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
    if (parse_batch(h))
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    prepare_partitions(h);
    h->staged = 0; /* the staging tables are emptied at COMMIT and ROLLBACK */
    h->set_aside = 0;
    memset(h->set_aside_by_class, 0, sizeof h->set_aside_by_class);
    err = baton_pg_exec(h->pg, "BEGIN", errstr, errstr_size);
    /* Writers take turns: a task row is found by a look-up of what other
     * batches committed (its submitted time, whether it exists), which two
     * writers committing events of one task at the same time would each
     * miss. (Writers still overlap their Redis reads with each other's
     * writes.) */
    if (!err)
        err = baton_pg_exec(h->pg, "SELECT pg_advisory_xact_lock(" HISTORY_LOCK_KEY ")", errstr,
                            errstr_size);
    /* Partitions not made ahead: made here, waiting at most 10 s for a
     * prune that detaches one. */
    if (!err && any_uncovered(h)) {
        err = baton_pg_exec(h->pg, "SET LOCAL lock_timeout = '10s'", errstr, errstr_size);
        if (!err)
            err = each_uncovered(h, make_partitions, errstr, errstr_size);
        if (!err)
            err = baton_pg_exec(h->pg, "SET LOCAL lock_timeout TO DEFAULT", errstr, errstr_size);
    }
    if (!err)
        err = register_entries(h, errstr, errstr_size);
    if (!err)
        err = set_aside_unstorable(h, errstr, errstr_size);
    if (!err) {
        h->ntodo = 0;
        if (grow((void **)&h->todo, &h->todo_cap, h->batch.count, sizeof *h->todo))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !err && i < h->batch.count; i++) {
            const struct ev *v = &h->evs[i];
            if (h->ents[v->entry].is_new && !v->set_aside && v->kind != EV_SKIP)
                h->todo[h->ntodo++] = i;
        }
    }
    if (!err)
        err = write_range(h, 0, h->ntodo, errstr, errstr_size);
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
    free(h->evs);
    free(h->ents);
    free(h->ent_order);
    free(h->todo);
    free(h->ord);
    free(h->folds);
    free(h->seen);
    free(h->parts);
    baton_buf_free(&h->events);
    baton_buf_free(&h->rejections);
    baton_buf_free(&h->entries);
    baton_buf_free(&h->detail);
    baton_buf_free(&h->scratch);
    for (size_t i = 0; i < sizeof h->arr / sizeof h->arr[0]; i++)
        baton_buf_free(&h->arr[i]);
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
