/*
 * ingest.c - Kafka -> Redis: the scheduler's intake (see scheduler.h).
 *
 * The loop, per batch:
 *   1. take up to batch-size messages from the consumer queue;
 *   2. parse and validate each with the common codec (once per batch);
 *   3. hand each reject to the DLQ producer, once: it is "held" (message
 *      and all) until the broker acknowledges it;
 *   4. one Redis round trip: a pipeline of enqueue.lua calls, one per queue
 *      (chunked), plus the rejection events and the queue registry;
 *   5. only then store offsets, which auto-commit sends: per partition, up
 *      to the batch's end but never past a held reject.
 * If 4 fails, or Redis is above its memory threshold, the assigned
 * partitions are paused and the same batch is retried with backoff, so no
 * message is skipped and no offset moves past what Redis holds (guarantee
 * 1). Replays are harmless: enqueue is idempotent on task id (guarantee 2).
 *
 * The DLQ does not hold up valid tasks. A Kafka offset covers every message
 * below it, so it may be committed only when each of those is in Redis or
 * acknowledged by the DLQ; ingest therefore goes on enqueueing while the
 * DLQ refuses, and each partition's offset waits at its oldest held reject
 * (docs/reliability.md, "The dead-letter topic"). A reject is produced once;
 * it is produced again only after its delivery report says it failed, never
 * while librdkafka still has it, so a retry cannot duplicate it (the
 * idempotent producer keeps librdkafka's own retries exact). Held rejects
 * are bounded (DLQ_HELD_MAX, DLQ_HELD_BYTES_MAX): beyond that, intake
 * pauses until the DLQ takes them.
 */
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/types.h>
#include <string.h>

#include "kafka.h"
#include "log.h"
#include "queue.h"
#include "redis.h"
#include "scheduler.h"
#include "task.h"
#include "timeutil.h"
#include "transition.h"

#define COMPONENT "ingest"
#define ENQUEUE_CHUNK 500         /* tasks per enqueue.lua call */
#define REJECT_VALUE_MAX 65536    /* bytes of a rejected value kept in the event */
#define MEMORY_CHECK_EVERY_MS 250 /* how often INFO memory is read, at least */
/* Redis bytes one enqueued task may take, for the memory check's estimate
 * between two readings: the task hash and its "submitted" event each hold
 * the task's JSON, plus keys, set and stream entries (measured: about
 * 1.8 KB for a task of some 550 bytes of JSON, a 400-byte payload, while
 * its event waits for the history writer). A rejection's event holds its
 * value. An estimate, not a bound: it only decides when to look again. */
#define TASK_MEMORY_FACTOR 3
#define TASK_MEMORY_OVERHEAD 256
#define BACKOFF_START_MS 50
#define BACKOFF_MAX_MS 2000
#define DLQ_FLUSH_TIMEOUT_MS 10000 /* at stop: rejects in flight get this long */
/* Rejects held for the DLQ before intake pauses. Each keeps its Kafka
 * message in memory, and the offsets of its partition wait for it, so a
 * crash replays everything after the oldest: enough to ride out a DLQ
 * outage at a moderate reject rate, small enough for memory and replay. */
#define DLQ_HELD_MAX 10000
#define DLQ_HELD_BYTES_MAX (64 * 1024 * 1024)
#define DLQ_RETRY_START_MS 100 /* a refused reject is produced again after this, doubling */
#define DLQ_RETRY_MAX_MS 5000
#define DLQ_LOG_EVERY 100          /* log the first refusal in a row, then every this many */
#define DLQ_VALUE_MAX (900 * 1024) /* under Kafka's default 1 MB message limit */

/* Where one valid task's stored form (baton_task_encode()) is in the
 * batch's text: an offset, as the text may move while the batch grows. */
struct task_args {
    size_t json_at;
    size_t json_len;
};

/* A batch text buffer larger than this is freed with its batch: one batch of
 * large tasks must not hold its size for good. */
#define BATCH_TEXT_KEEP (4 * 1024 * 1024)

/* Where a reject stands with the DLQ. */
enum dlq_state {
    DLQ_SENDING, /* in librdkafka's hands: wait for its delivery report */
    DLQ_REFUSED, /* delivery failed: produce again at retry_at_ms */
    DLQ_ACKED,   /* the broker has it */
};

/* One rejected message on its way to the DLQ, held until acknowledged. */
struct dlq_entry {
    rd_kafka_message_t *msg;       /* the rejected message, owned */
    struct baton_task_error error; /* why it was rejected */
    enum dlq_state state;
    unsigned attempts;   /* produce calls so far */
    int64_t retry_at_ms; /* monotonic, when REFUSED */
};

/* What ingest has done with one assigned partition. */
struct partition_pos {
    char *topic; /* owned */
    int32_t partition;
    int64_t next;   /* offset after the last message of a batch in Redis */
    int64_t stored; /* last offset given to rd_kafka_offsets_store(); -1: none */
};

struct parsed {
    struct baton_task *task; /* NULL when rejected or a consumer error */
    struct baton_task_error error;
    int rejected; /* 1: goes to the DLQ */
};

/*
 * --queues-allowed, parsed: exact names, or prefixes for entries that end
 * in '*' ("mail.*" takes mail.high and mail.low). Entries point into
 * `text`, one owned copy of the option with NULs at the commas.
 */
struct allowlist {
    char *text;     /* owned; NULL when every queue is allowed */
    char **entries; /* owned array of pointers into text */
    size_t count;
};

struct ingest {
    const struct scheduler_config *config;
    struct allowlist allowed; /* queues accepted; none listed: any */
    rd_kafka_t *consumer;
    rd_kafka_queue_t *queue; /* the consumer queue */
    rd_kafka_t *dlq;         /* producer for rejected messages */
    baton_redis_t *redis;
    struct baton_task_parse_opts parse_opts;

    rd_kafka_message_t **msgs;   /* the batch in hand, owned */
    struct parsed *parsed;       /* parallel to msgs */
    struct task_args *args;      /* parallel to msgs */
    struct baton_task_text text; /* the stored form of the batch's valid tasks */
    size_t count, parsed_count, cap;
    size_t dlq_done; /* rejects in msgs[0..dlq_done) are held (owned there) */

    struct dlq_entry **held; /* rejects the DLQ has not acknowledged, owned */
    size_t held_count, held_cap;
    size_t held_bytes;           /* bytes of their values */
    unsigned dlq_refusals;       /* failed deliveries since the last success */
    struct partition_pos *parts; /* partitions with messages in Redis, owned */
    size_t nparts, parts_cap;
    int paused;
    int64_t memory_checked_ms;
    int64_t memory_budget; /* bytes below the pause mark at the last reading; -1: no limit */
    int64_t memory_sent;   /* estimated bytes enqueued since that reading */

    const struct scheduler_metrics *metrics; /* borrowed from the config */

    /* Totals, for the periodic log line. */
    uint64_t total_queued, total_scheduled, total_expired, total_duplicates, total_rejected;
};

static struct partition_pos *position(struct ingest *ing, const char *topic, int32_t partition,
                                      int add);
static void position_drop(struct ingest *ing, size_t i);

/* ---------------------------------------------------------------- Kafka */

static int64_t dlq_retry_delay(unsigned attempts) {
    int64_t ms = DLQ_RETRY_START_MS;
    for (unsigned i = 1; i < attempts && ms < DLQ_RETRY_MAX_MS; i++)
        ms *= 2;
    return ms < DLQ_RETRY_MAX_MS ? ms : DLQ_RETRY_MAX_MS;
}

/* Marks `e` refused by `kerr`: produced again after a backoff. */
static void dlq_refused(struct ingest *ing, struct dlq_entry *e, rd_kafka_resp_err_t kerr,
                        int possibly_persisted) {
    e->state = DLQ_REFUSED;
    e->retry_at_ms = baton_time_mono_ms() + dlq_retry_delay(e->attempts);
    if (ing->dlq_refusals++ % DLQ_LOG_EVERY == 0)
        BATON_WARN(COMPONENT,
                   "DLQ refused %s[%d]@%lld: %s (%u refusals in a row, %zu rejects held; "
                   "valid tasks go on, offsets wait)%s",
                   rd_kafka_topic_name(e->msg->rkt), (int)e->msg->partition,
                   (long long)e->msg->offset, rd_kafka_err2str(kerr), ing->dlq_refusals,
                   ing->held_count,
                   possibly_persisted ? "; it may have been written, so it may appear twice" : "");
}

/* @locality librdkafka's poll, on the ingest thread (rd_kafka_poll/flush of the DLQ). */
static void dlq_delivered(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    struct ingest *ing = opaque;
    struct dlq_entry *e = msg->_private;
    if (!msg->err) {
        e->state = DLQ_ACKED;
        if (ing->dlq_refusals)
            BATON_INFO(COMPONENT, "DLQ accepts again after %u refusals", ing->dlq_refusals);
        ing->dlq_refusals = 0;
        return;
    }
    /* Not persisted: sending again cannot duplicate it. Possibly persisted
     * (only after a message.timeout.ms the operator set; the default waits
     * for good): sending again may, but not sending would lose it. */
    dlq_refused(ing, e, msg->err,
                rd_kafka_message_status(msg) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED);
}

/* Formats "topic[p,p,...]" lists for the log. */
static void format_parts(const rd_kafka_topic_partition_list_t *parts, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < parts->cnt && used + 16 < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s[%d]", i ? "," : "", parts->elems[i].topic,
                         (int)parts->elems[i].partition);
        if (n > 0)
            used += (size_t)n;
    }
}

/*
 * Assignment changes, logged so operators (and tests) see how schedulers
 * split the partitions. Newly assigned partitions stay paused while the
 * batch in hand waits for Redis.
 * @locality the ingest thread, from inside a consumer poll
 */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    struct ingest *ing = opaque;
    char list[2048];
    format_parts(parts, list, sizeof list);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        BATON_INFO(COMPONENT, "assigned %d partitions: %s", parts->cnt, list);
        rd_kafka_assign(rk, parts);
        if (ing->paused)
            rd_kafka_pause_partitions(rk, parts);
    } else {
        BATON_INFO(COMPONENT, "revoked %d partitions: %s", parts->cnt, list);
        rd_kafka_assign(rk, NULL);
        /* Their held rejects still go to the DLQ but gate nothing here:
         * the next owner reads on from the committed offset. */
        for (int i = 0; i < parts->cnt; i++) {
            struct partition_pos *pos =
                position(ing, parts->elems[i].topic, parts->elems[i].partition, 0);
            if (pos)
                position_drop(ing, (size_t)(pos - ing->parts));
        }
    }
}

static baton_err_t kafka_open(struct ingest *ing, char *errstr, size_t errstr_size) {
    const struct scheduler_config *c = ing->config;
    char why[512];
    const struct baton_kafka_prop consumer_defaults[] = {
        {"group.id", c->group_id},
        {"enable.auto.offset.store", "false"}, /* store only after Redis accepted */
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        {"auto.offset.reset", "earliest"}, /* a new group reads the backlog */
        {"enable.partition.eof", "false"},
        /* librdkafka prefetches up to 100,000 messages or 64 MiB per
         * partition by default; a batch is at most batch-size messages,
         * so a few batches' worth is plenty (and keeps the RSS small). */
        {"queued.min.messages", "5000"},
        {"queued.max.messages.kbytes", "8192"},
        {"client.id", "baton-scheduler"},
    };
    rd_kafka_conf_t *conf = baton_kafka_conf_new(
        c->kafka_brokers, consumer_defaults, sizeof consumer_defaults / sizeof consumer_defaults[0],
        c->kafka_config, c->kafka_config_file, errstr, errstr_size);
    if (!conf)
        return BATON_ERR_CONFIG;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, ing);
    ing->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!ing->consumer) {
        rd_kafka_conf_destroy(conf);
        return baton_seterr(errstr, errstr_size, BATON_ERR_KAFKA, "Kafka consumer: %s", why);
    }
    conf = NULL; /* owned by the consumer now */
    rd_kafka_poll_set_consumer(ing->consumer);
    ing->queue = rd_kafka_queue_get_consumer(ing->consumer);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(ing->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr)
        return baton_seterr(errstr, errstr_size, BATON_ERR_KAFKA, "subscribe to %s: %s", c->topic,
                            rd_kafka_err2str(kerr));

    const struct baton_kafka_prop producer_defaults[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        /* No local timeout: librdkafka retries a reject until the broker
         * takes it or refuses it for good, so a delivery report never says
         * "timed out, perhaps written", and ingest never has to guess
         * whether producing it again would make a duplicate. */
        {"message.timeout.ms", "0"},
        {"linger.ms", "5"},
        {"client.id", "baton-scheduler-dlq"},
    };
    rd_kafka_conf_t *pconf = baton_kafka_conf_new(
        c->kafka_brokers, producer_defaults, sizeof producer_defaults / sizeof producer_defaults[0],
        c->kafka_config, c->kafka_config_file, errstr, errstr_size);
    if (!pconf)
        return BATON_ERR_CONFIG;
    rd_kafka_conf_set_dr_msg_cb(pconf, dlq_delivered);
    rd_kafka_conf_set_opaque(pconf, ing);
    ing->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, why, sizeof why);
    if (!ing->dlq) {
        rd_kafka_conf_destroy(pconf);
        return baton_seterr(errstr, errstr_size, BATON_ERR_KAFKA, "Kafka DLQ producer: %s", why);
    }
    return BATON_OK;
}

/* ------------------------------------------------- metrics and readiness */

/*
 * The consumer, as the HTTP thread's readiness probe sees it: published
 * after kafka_open(), withdrawn before the consumer is destroyed. One ingest
 * runs per process, so this is file state.
 */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static rd_kafka_t *probe_consumer; /* guarded by probe_lock */

int ingest_kafka_ready(int timeout_ms, char *why, size_t why_size) {
    pthread_mutex_lock(&probe_lock);
    int ready = 0;
    if (!probe_consumer) {
        snprintf(why, why_size, "kafka: consumer not running");
    } else {
        /* A metadata request needs a broker that answers: it is the
         * cheapest proof that the brokers are reachable. */
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t kerr = rd_kafka_metadata(probe_consumer, 0, NULL, &md, timeout_ms);
        if (kerr)
            snprintf(why, why_size, "kafka: %s", rd_kafka_err2str(kerr));
        else if (md->broker_cnt == 0)
            snprintf(why, why_size, "kafka: no brokers");
        else
            ready = 1;
        if (md)
            rd_kafka_metadata_destroy(md);
    }
    pthread_mutex_unlock(&probe_lock);
    return ready;
}

/*
 * baton_kafka_consumer_lag at scrape time: high watermark - position for
 * every assigned partition. Both come from librdkafka's cache (the high
 * watermark is updated by each fetch response), so a scrape costs no
 * broker round trip; a partition with no position or high watermark yet
 * (nothing consumed since it was assigned) is left out unless it is empty.
 * @locality an HTTP server thread; librdkafka's calls here are thread-safe
 */
static void collect_lag(baton_metric_t *family, void *ctx) {
    struct ingest *ing = ctx;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(ing->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return;
    rd_kafka_position(ing->consumer, parts);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t low = -1, high = -1;
        if (rd_kafka_get_watermark_offsets(ing->consumer, tp->topic, tp->partition, &low, &high) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            high < 0)
            continue;
        int64_t lag;
        if (tp->offset >= 0)
            lag = high - tp->offset;
        else if (low >= 0 && low == high)
            lag = 0; /* an empty partition */
        else
            continue;
        char partition[16];
        snprintf(partition, sizeof partition, "%d", (int)tp->partition);
        baton_metric_set(family, BATON_LABELS(tp->topic, partition), (double)(lag > 0 ? lag : 0));
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

static void metrics_attach(struct ingest *ing) {
    baton_metric_set_collector(ing->metrics->consumer_lag, collect_lag, ing);
    pthread_mutex_lock(&probe_lock);
    probe_consumer = ing->consumer;
    pthread_mutex_unlock(&probe_lock);
}

/* Before the consumer goes: waits for a scrape or probe using it. */
static void metrics_detach(struct ingest *ing) {
    baton_metric_set_collector(ing->metrics->consumer_lag, NULL, NULL);
    pthread_mutex_lock(&probe_lock);
    probe_consumer = NULL;
    pthread_mutex_unlock(&probe_lock);
}

/* Pauses or resumes every assigned partition. */
static void set_paused(struct ingest *ing, int paused) {
    if (ing->paused == paused)
        return;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(ing->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        if (paused)
            rd_kafka_pause_partitions(ing->consumer, parts);
        else
            rd_kafka_resume_partitions(ing->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    ing->paused = paused;
    baton_metric_set(ing->metrics->ingest_paused, NULL, paused);
}

/* Adds `msg` to the batch in hand (takes ownership); consumer errors are
 * logged and dropped: they carry no message to lose. */
static baton_err_t batch_add(struct ingest *ing, rd_kafka_message_t *msg) {
    if (msg->err) {
        BATON_WARN(COMPONENT, "consumer: %s", rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg);
        return BATON_OK;
    }
    if (ing->count == ing->cap) {
        size_t cap = ing->cap ? ing->cap * 2 : 64;
        rd_kafka_message_t **msgs = realloc(ing->msgs, cap * sizeof *msgs);
        if (msgs)
            ing->msgs = msgs;
        struct parsed *parsed = realloc(ing->parsed, cap * sizeof *parsed);
        if (parsed)
            ing->parsed = parsed;
        struct task_args *args = realloc(ing->args, cap * sizeof *args);
        if (args)
            ing->args = args;
        if (!msgs || !parsed || !args) {
            rd_kafka_message_destroy(msg);
            return BATON_ERR_NOMEM;
        }
        ing->cap = cap;
    }
    ing->msgs[ing->count++] = msg;
    return BATON_OK;
}

/* Frees the batch in hand (after its offsets were stored). */
static void batch_clear(struct ingest *ing) {
    for (size_t i = 0; i < ing->count; i++) {
        if (!(i < ing->dlq_done && ing->parsed[i].rejected))
            rd_kafka_message_destroy(ing->msgs[i]); /* else its dlq_entry owns it */
        if (i < ing->parsed_count)
            baton_task_destroy(ing->parsed[i].task);
    }
    ing->text.len = 0;
    if (ing->text.cap > BATCH_TEXT_KEEP) {
        free(ing->text.data);
        ing->text = (struct baton_task_text){0};
    }
    ing->count = ing->parsed_count = 0;
    ing->dlq_done = 0;
}

/* ----------------------------------------------------- queue allowlist */

static void allowlist_free(struct allowlist *a) {
    free(a->text);
    free(a->entries);
    *a = (struct allowlist){0};
}

/*
 * Parses `spec` ("a,b,mail.*"; blanks around entries ignored) into *out,
 * which the caller frees with allowlist_free(). An empty spec allows every
 * queue. A bad entry is BATON_ERR_CONFIG naming it: a typo must stop the
 * start, not send a whole topic's tasks to the DLQ.
 */
static baton_err_t allowlist_parse(const char *spec, struct allowlist *out, char *errstr,
                                   size_t errstr_size) {
    static const char blanks[] = " \t\n";
    memset(out, 0, sizeof *out);
    if (!spec || spec[strspn(spec, blanks)] == '\0')
        return BATON_OK;
    size_t len = strlen(spec);
    out->text = strdup(spec);
    out->entries = calloc(len / 2 + 1, sizeof *out->entries); /* an entry and a comma each */
    if (!out->text || !out->entries) {
        allowlist_free(out);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    for (char *entry = out->text, *next; entry; entry = next) {
        next = strchr(entry, ',');
        if (next)
            *next++ = '\0';
        entry += strspn(entry, blanks);
        size_t n = strlen(entry);
        while (n && strchr(blanks, entry[n - 1]))
            entry[--n] = '\0';
        /* "p*" takes every queue whose name starts with p; "*" alone, all. */
        int prefix = n > 0 && entry[n - 1] == '*';
        if (prefix)
            entry[n - 1] = '\0';
        int valid = (prefix && n == 1) || baton_task_name_valid(entry);
        if (prefix)
            entry[n - 1] = '*';
        if (!valid) {
            baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                         "--queues-allowed: '%.140s' is not a queue name ([A-Za-z0-9_.:-]{1,128}) "
                         "or such a prefix followed by '*'",
                         entry);
            allowlist_free(out);
            return BATON_ERR_CONFIG;
        }
        out->entries[out->count++] = entry;
    }
    return BATON_OK;
}

/* 1 when ingest accepts tasks for `queue`. */
static int allowlist_match(const struct allowlist *a, const char *queue) {
    if (!a->text)
        return 1;
    for (size_t i = 0; i < a->count; i++) {
        const char *e = a->entries[i];
        size_t n = strlen(e);
        if (n && e[n - 1] == '*' ? strncmp(queue, e, n - 1) == 0 : strcmp(queue, e) == 0)
            return 1;
    }
    return 0;
}

baton_err_t ingest_check_config(const struct scheduler_config *config, char *errstr,
                                size_t errstr_size) {
    struct allowlist a;
    baton_err_t err = allowlist_parse(config->queues_allowed, &a, errstr, errstr_size);
    allowlist_free(&a);
    return err;
}

/* -------------------------------------------------------------- parsing */

/* Parses the messages not parsed yet; prepares each valid task's args. */
static baton_err_t parse_new(struct ingest *ing) {
    for (size_t i = ing->parsed_count; i < ing->count; i++) {
        rd_kafka_message_t *m = ing->msgs[i];
        struct parsed *p = &ing->parsed[i];
        struct task_args *a = &ing->args[i];
        memset(p, 0, sizeof *p);
        memset(a, 0, sizeof *a);
        struct baton_kafka_coord coord = {rd_kafka_topic_name(m->rkt), m->partition, m->offset};
        /* Parsed and encoded in one go: the encoding the parser measures is
         * the stored form, written into the batch's text. */
        baton_err_t err =
            baton_task_parse_encode(m->payload, m->len, &ing->parse_opts, &coord, &p->task,
                                    &ing->text, &a->json_at, &a->json_len, &p->error);
        if (err == BATON_ERR_NOMEM)
            return err;
        if (!err && !allowlist_match(&ing->allowed, p->task->queue)) {
            /* A valid task for a queue the operator did not list: each
             * queue name becomes keys, a registry entry and maintenance
             * work, so producers may not create them at will. */
            p->error.reason = BATON_TASK_UNKNOWN_QUEUE;
            snprintf(p->error.field, sizeof p->error.field, "queue");
            snprintf(p->error.detail, sizeof p->error.detail,
                     "queue '%s' is not in the scheduler's --queues-allowed", p->task->queue);
            baton_task_destroy(p->task);
            p->task = NULL;
            ing->text.len = a->json_at; /* its encoding is not needed */
            err = BATON_ERR_INVALID;
        }
        if (err) {
            p->rejected = 1;
            p->task = NULL;
        }
        ing->parsed_count = i + 1;
    }
    return BATON_OK;
}

/* ------------------------------------------------------------------ DLQ */

/* Hands `e` to the DLQ producer; a refusal on the spot is a REFUSED entry. */
static void dlq_produce(struct ingest *ing, struct dlq_entry *e) {
    rd_kafka_message_t *m = e->msg;
    char partition[16], offset[24];
    snprintf(partition, sizeof partition, "%d", (int)m->partition);
    snprintf(offset, sizeof offset, "%lld", (long long)m->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(7);
    rd_kafka_header_add(h, "baton-reason", -1, baton_task_reason_str(e->error.reason), -1);
    rd_kafka_header_add(h, "baton-field", -1, e->error.field, -1);
    rd_kafka_header_add(h, "baton-detail", -1, e->error.detail, -1);
    rd_kafka_header_add(h, "baton-source-topic", -1, rd_kafka_topic_name(m->rkt), -1);
    rd_kafka_header_add(h, "baton-source-partition", -1, partition, -1);
    rd_kafka_header_add(h, "baton-source-offset", -1, offset, -1);
    /* A value too large for the DLQ (a too_large reject can exceed the
     * producer's and brokers' 1 MB message limit) must not block ingest:
     * send its head, say so, and point at the original, which stays in
     * the source topic at the coordinates above. */
    size_t value_len = m->len;
    if (value_len > DLQ_VALUE_MAX) {
        char full[24];
        snprintf(full, sizeof full, "%zu", m->len);
        rd_kafka_header_add(h, "baton-truncated-from", -1, full, -1);
        value_len = DLQ_VALUE_MAX;
    }
    e->attempts++;
    e->state = DLQ_SENDING;
    rd_kafka_resp_err_t kerr = rd_kafka_producev(
        ing->dlq, RD_KAFKA_V_TOPIC(ing->config->dlq_topic), RD_KAFKA_V_VALUE(m->payload, value_len),
        RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(e), RD_KAFKA_V_END);
    if (kerr) {
        rd_kafka_headers_destroy(h); /* not taken over on failure */
        dlq_refused(ing, e, kerr, 0);
    }
}

/*
 * Holds this batch's new rejects (each takes its message over) and hands
 * each to the DLQ producer, once: a batch retried for Redis does not send
 * them again, and messages that joined the batch meanwhile get theirs.
 */
static baton_err_t dead_letter(struct ingest *ing, char *errstr, size_t errstr_size) {
    for (size_t i = ing->dlq_done; i < ing->count; i++) {
        if (!ing->parsed[i].rejected)
            continue;
        if (ing->held_count == ing->held_cap) {
            size_t cap = ing->held_cap ? ing->held_cap * 2 : 64;
            struct dlq_entry **held = realloc(ing->held, cap * sizeof *held);
            if (!held)
                return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
            ing->held = held;
            ing->held_cap = cap;
        }
        struct dlq_entry *e = calloc(1, sizeof *e);
        if (!e)
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        rd_kafka_message_t *m = ing->msgs[i];
        e->msg = m;
        e->error = ing->parsed[i].error;
        ing->held[ing->held_count++] = e;
        ing->held_bytes += m->len;
        ing->dlq_done = i + 1; /* msgs[i] is the entry's now */
        BATON_WARN(COMPONENT, "rejected %s[%d]@%lld (%s): %s", rd_kafka_topic_name(m->rkt),
                   (int)m->partition, (long long)m->offset, baton_task_reason_str(e->error.reason),
                   e->error.detail);
        dlq_produce(ing, e);
    }
    ing->dlq_done = ing->count;
    return BATON_OK;
}

/* 1 when intake must wait for the DLQ to take held rejects. */
static int dlq_full(const struct ingest *ing) {
    return ing->held_count >= DLQ_HELD_MAX || ing->held_bytes >= DLQ_HELD_BYTES_MAX;
}

/* ------------------------------------------------------------- offsets */

/* The position of `topic` [`partition`], added if new; NULL on no memory.
 * Borrowed until the next call that adds or drops. */
static struct partition_pos *position(struct ingest *ing, const char *topic, int32_t partition,
                                      int add) {
    for (size_t i = 0; i < ing->nparts; i++)
        if (ing->parts[i].partition == partition && strcmp(ing->parts[i].topic, topic) == 0)
            return &ing->parts[i];
    if (!add)
        return NULL;
    if (ing->nparts == ing->parts_cap) {
        size_t cap = ing->parts_cap ? ing->parts_cap * 2 : 16;
        struct partition_pos *parts = realloc(ing->parts, cap * sizeof *parts);
        if (!parts)
            return NULL;
        ing->parts = parts;
        ing->parts_cap = cap;
    }
    char *copy = strdup(topic);
    if (!copy)
        return NULL;
    ing->parts[ing->nparts] = (struct partition_pos){copy, partition, -1, -1};
    return &ing->parts[ing->nparts++];
}

/* Forgets partition i (revoked: its new owner reads on from the commit). */
static void position_drop(struct ingest *ing, size_t i) {
    free(ing->parts[i].topic);
    ing->parts[i] = ing->parts[--ing->nparts];
}

/*
 * Stores, per partition, the offset below which every message is in Redis
 * or acknowledged by the DLQ: the end of the last batch in Redis, or the
 * oldest held reject of the partition if that is lower. Auto-commit sends
 * what is stored.
 */
static void store_offsets(struct ingest *ing) {
    if (ing->nparts == 0)
        return;
    int64_t *commit = malloc(ing->nparts * sizeof *commit);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)ing->nparts);
    if (!commit || !list) {
        free(commit); /* stored at the next call */
        if (list)
            rd_kafka_topic_partition_list_destroy(list);
        return;
    }
    for (size_t p = 0; p < ing->nparts; p++)
        commit[p] = ing->parts[p].next;
    for (size_t h = 0; h < ing->held_count; h++) {
        const rd_kafka_message_t *m = ing->held[h]->msg;
        if (ing->held[h]->state == DLQ_ACKED)
            continue;
        struct partition_pos *pos = position(ing, rd_kafka_topic_name(m->rkt), m->partition, 0);
        if (pos && m->offset < commit[pos - ing->parts])
            commit[pos - ing->parts] = m->offset;
    }
    for (size_t p = 0; p < ing->nparts; p++)
        if (commit[p] > ing->parts[p].stored)
            rd_kafka_topic_partition_list_add(list, ing->parts[p].topic, ing->parts[p].partition)
                ->offset = commit[p];
    free(commit);
    if (list->cnt > 0) {
        rd_kafka_resp_err_t kerr = rd_kafka_offsets_store(ing->consumer, list);
        for (int i = 0; i < list->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &list->elems[i];
            struct partition_pos *pos = position(ing, tp->topic, tp->partition, 0);
            if (!pos)
                continue;
            if (tp->err == RD_KAFKA_RESP_ERR_NO_ERROR)
                pos->stored = tp->offset;
            else
                /* Revoked meanwhile: its new owner re-reads these messages
                 * and enqueue dedupes them. Nothing is lost. */
                position_drop(ing, (size_t)(pos - ing->parts));
        }
        if (kerr)
            BATON_INFO(COMPONENT, "offsets not stored for some partitions: %s",
                       rd_kafka_err2str(kerr));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* Moves each partition's position past the batch in hand (now in Redis). */
static baton_err_t advance_positions(struct ingest *ing) {
    for (size_t i = 0; i < ing->count; i++) {
        rd_kafka_message_t *m = ing->msgs[i];
        struct partition_pos *pos = position(ing, rd_kafka_topic_name(m->rkt), m->partition, 1);
        if (!pos)
            return BATON_ERR_NOMEM;
        if (m->offset + 1 > pos->next)
            pos->next = m->offset + 1;
    }
    return BATON_OK;
}

/*
 * Serves the DLQ producer's delivery reports, produces again the rejects
 * whose backoff is over, lets go of acknowledged ones and stores the
 * offsets that this frees. Called from every loop of the ingest thread.
 */
static void dlq_service(struct ingest *ing) {
    rd_kafka_poll(ing->dlq, 0);
    int64_t now = baton_time_mono_ms();
    size_t kept = 0, acked = 0;
    for (size_t h = 0; h < ing->held_count; h++) {
        struct dlq_entry *e = ing->held[h];
        if (e->state == DLQ_REFUSED && now >= e->retry_at_ms)
            dlq_produce(ing, e);
        if (e->state == DLQ_ACKED) {
            ing->held_bytes -= e->msg->len;
            rd_kafka_message_destroy(e->msg);
            free(e);
            acked++;
        } else {
            ing->held[kept++] = e;
        }
    }
    ing->held_count = kept;
    baton_metric_set(ing->metrics->ingest_dlq_pending, NULL, (double)kept);
    if (acked)
        store_offsets(ing);
}

/* ---------------------------------------------------------------- Redis */

/* Order of valid tasks for the pipeline: by queue, then arrival. */
static const struct ingest *sort_ing;
static int by_queue(const void *a, const void *b) {
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    int c = strcmp(sort_ing->parsed[ia].task->queue, sort_ing->parsed[ib].task->queue);
    return c ? c : (ia < ib ? -1 : ia > ib);
}

/* Appends one enqueue.lua call for tasks order[from..to) (all one queue);
 * `tasks` has room for ENQUEUE_CHUNK. */
static baton_err_t append_enqueue(struct ingest *ing, const size_t *order, size_t from, size_t to,
                                  struct baton_tr_new_task *tasks, char *errstr,
                                  size_t errstr_size) {
    struct baton_queue_keys keys;
    baton_queue_keys_init(&keys, ing->parsed[order[from]].task->queue);
    for (size_t j = from; j < to; j++) {
        size_t i = order[j];
        rd_kafka_message_t *m = ing->msgs[i];
        tasks[j - from] =
            (struct baton_tr_new_task){ing->parsed[i].task,   ing->text.data + ing->args[i].json_at,
                                       ing->args[i].json_len, rd_kafka_topic_name(m->rkt),
                                       m->partition,          m->offset};
    }
    return baton_tr_append_enqueue(ing->redis, &keys, ing->config->retention_ms, tasks, to - from,
                                   errstr, errstr_size);
}

/* Appends the "rejected" event of message i to baton:rejections. */
static baton_err_t append_rejection(struct ingest *ing, size_t i, char *errstr,
                                    size_t errstr_size) {
    rd_kafka_message_t *m = ing->msgs[i];
    const struct baton_task_error *e = &ing->parsed[i].error;
    const char *topic = rd_kafka_topic_name(m->rkt);
    const char *reason = baton_task_reason_str(e->reason);
    size_t value_len = m->len > REJECT_VALUE_MAX ? REJECT_VALUE_MAX : m->len;
    char partition[16], offset[24];
    snprintf(partition, sizeof partition, "%d", (int)m->partition);
    snprintf(offset, sizeof offset, "%lld", (long long)m->offset);
    const char *argv[] = {"XADD",
                          BATON_KEY_REJECTIONS,
                          "*",
                          "topic",
                          topic,
                          "partition",
                          partition,
                          "offset",
                          offset,
                          "reason",
                          reason,
                          "field",
                          e->field,
                          "detail",
                          e->detail,
                          "value",
                          m->payload ? (const char *)m->payload : "",
                          "value_len",
                          NULL};
    char full_len[24];
    snprintf(full_len, sizeof full_len, "%zu", m->len);
    size_t argc = sizeof argv / sizeof argv[0];
    argv[argc - 1] = full_len;
    enum { VALUE_ARG = 16 }; /* raw bytes, not NUL-terminated: never strlen */
    size_t lens[sizeof argv / sizeof argv[0]];
    for (size_t k = 0; k < argc; k++)
        lens[k] = k == VALUE_ARG ? value_len : strlen(argv[k]);
    return baton_redis_append(ing->redis, (int)argc, argv, lens, errstr, errstr_size);
}

/* Reads the reply of the enqueue.lua call for `queue`; adds its counts to
 * the totals. */
static baton_err_t read_enqueue(struct ingest *ing, const char *queue, char *errstr,
                                size_t errstr_size) {
    struct baton_tr_enqueued done;
    baton_err_t err = baton_tr_read_enqueue(ing->redis, &done, errstr, errstr_size);
    if (err)
        return err;
    /* What enqueue.lua did, counted as it happened: a batch retried after a
     * later error finds its tasks again as duplicates. */
    static const char *const results[4] = {"queued", "scheduled", "expired", "duplicate"};
    const long long counts[4] = {done.queued, done.scheduled, done.expired, done.duplicates};
    for (int k = 0; k < 4; k++)
        if (counts[k] > 0)
            baton_metric_add(ing->metrics->ingest_enqueued, BATON_LABELS(queue, results[k]),
                             (double)counts[k]);
    ing->total_queued += (uint64_t)done.queued;
    ing->total_scheduled += (uint64_t)done.scheduled;
    ing->total_expired += (uint64_t)done.expired;
    ing->total_duplicates += (uint64_t)done.duplicates;
    return BATON_OK;
}

/* Reads the reply of a plain command of the pipeline (SADD, ZADD, XADD). */
static baton_err_t read_other(struct ingest *ing, char *errstr, size_t errstr_size) {
    redisReply *reply;
    baton_err_t err = baton_redis_get_reply(ing->redis, &reply, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type == REDIS_REPLY_ERROR)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis: %s", reply->str);
    freeReplyObject(reply);
    return err;
}

/* One round trip: enqueue every valid task, record every reject. */
static baton_err_t write_redis(struct ingest *ing, char *errstr, size_t errstr_size) {
    size_t valid = 0, rejected = 0;
    size_t *order = malloc((ing->count ? ing->count : 1) * sizeof *order);
    struct baton_tr_new_task *tasks = malloc(ENQUEUE_CHUNK * sizeof *tasks);
    const char **sadd = malloc((ing->count + 2) * sizeof *sadd);
    const char **touch = malloc((2 * ing->count + 2) * sizeof *touch);
    const char **call_queue = malloc((ing->count + 1) * sizeof *call_queue); /* per enqueue call */
    int64_t started_ns = baton_metrics_now_ns();
    baton_err_t err = BATON_OK;
    if (!order || !tasks || !sadd || !touch || !call_queue) {
        err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < ing->count; i++) {
        if (ing->parsed[i].task) {
            order[valid++] = i;
            ing->memory_sent +=
                (int64_t)(TASK_MEMORY_FACTOR * ing->args[i].json_len + TASK_MEMORY_OVERHEAD);
        } else if (ing->parsed[i].rejected) {
            rejected++;
            size_t len =
                ing->msgs[i]->len > REJECT_VALUE_MAX ? REJECT_VALUE_MAX : ing->msgs[i]->len;
            ing->memory_sent += (int64_t)(len + TASK_MEMORY_OVERHEAD);
        }
    }
    sort_ing = ing;
    qsort(order, valid, sizeof *order, by_queue);
    baton_redis_pipeline_begin(ing->redis);

    size_t expect_enqueue = 0, expect_other = 0;
    size_t nqueues = 0;
    sadd[0] = "SADD";
    sadd[1] = BATON_KEY_QUEUES;
    for (size_t from = 0; !err && from < valid;) {
        const char *queue = ing->parsed[order[from]].task->queue;
        size_t to = from;
        while (to < valid && to - from < ENQUEUE_CHUNK &&
               strcmp(ing->parsed[order[to]].task->queue, queue) == 0)
            to++;
        if (nqueues == 0 || strcmp(sadd[nqueues + 1], queue) != 0)
            sadd[2 + nqueues++] = queue;
        err = append_enqueue(ing, order, from, to, tasks, errstr, errstr_size);
        call_queue[expect_enqueue++] = queue;
        from = to;
    }
    if (!err && nqueues) {
        err = baton_redis_append(ing->redis, (int)(nqueues + 2), sadd, NULL, errstr, errstr_size);
        expect_other++;
    }
    /* Wakes these queues in every scheduler's maintenance, which stops
     * ticking a queue that stayed empty (see maintenance.c). */
    char now_ms[24];
    snprintf(now_ms, sizeof now_ms, "%lld", (long long)baton_time_wall_ms());
    touch[0] = "ZADD";
    touch[1] = BATON_KEY_QUEUES_TOUCHED;
    for (size_t q = 0; q < nqueues; q++) {
        touch[2 + 2 * q] = now_ms;
        touch[3 + 2 * q] = sadd[2 + q];
    }
    if (!err && nqueues) {
        err = baton_redis_append(ing->redis, (int)(2 * nqueues + 2), touch, NULL, errstr,
                                 errstr_size);
        expect_other++;
    }
    for (size_t i = 0; !err && i < ing->count; i++) {
        if (ing->parsed[i].rejected) {
            err = append_rejection(ing, i, errstr, errstr_size);
            expect_other++;
        }
    }
    /* Read every reply even after an error reply, to keep the connection
     * in step (after an I/O error every read fails at once); the first
     * error decides. */
    baton_err_t first = err;
    for (size_t r = 0; !err && r < expect_enqueue + expect_other; r++) {
        char why[512];
        baton_err_t e = r < expect_enqueue ? read_enqueue(ing, call_queue[r], why, sizeof why)
                                           : read_other(ing, why, sizeof why);
        if (e && !first) {
            first = e;
            snprintf(errstr, errstr_size, "%s", why);
        }
    }
    if (!err)
        err = first;
    if (!err) {
        ing->total_rejected += rejected;
        baton_metric_observe(ing->metrics->redis_roundtrip, BATON_LABELS("ingest"),
                             baton_metrics_since(started_ns));
    }
done:
    free(order);
    free(tasks);
    free(sadd);
    free(touch);
    free(call_queue);
    return err;
}

/*
 * Backpressure (guarantee 9): refuses while Redis memory is above the mark.
 * INFO memory is read every MEMORY_CHECK_EVERY_MS, and sooner once the
 * batches sent since the last reading may have used half of what was then
 * left below the mark (estimated, see TASK_MEMORY_FACTOR): without that, a
 * burst of batches (a backlog read at full speed) could go past the mark
 * and past maxmemory itself within one interval, and a Redis over
 * maxmemory refuses the writes of workers and the history writer too. With
 * it, ingest overshoots the mark by about one batch at most, which the
 * remaining (1 - fraction) of maxmemory must hold.
 */
static baton_err_t check_memory(struct ingest *ing, char *errstr, size_t errstr_size) {
    int64_t now = baton_time_mono_ms();
    if (!ing->paused && now - ing->memory_checked_ms < MEMORY_CHECK_EVERY_MS &&
        (ing->memory_budget < 0 || ing->memory_sent < ing->memory_budget / 2))
        return BATON_OK;
    uint64_t used, max;
    baton_err_t err = baton_redis_memory(ing->redis, &used, &max, errstr, errstr_size);
    if (err)
        return err;
    ing->memory_checked_ms = now;
    ing->memory_sent = 0;
    double mark = ing->config->memory_pause_fraction * (double)max;
    ing->memory_budget = max == 0 ? -1 : (double)used < mark ? (int64_t)(mark - (double)used) : 0;
    if (max > 0 && (double)used > mark)
        return baton_seterr(errstr, errstr_size, BATON_ERR_STATE,
                            "Redis memory %llu of %llu bytes is above %.0f%%: ingest paused",
                            (unsigned long long)used, (unsigned long long)max,
                            ing->config->memory_pause_fraction * 100);
    return BATON_OK;
}

/* Counts an accepted batch's messages by topic and its rejects by reason. */
static void count_batch(struct ingest *ing) {
    for (size_t i = 0; i < ing->count; i++) {
        rd_kafka_message_t *m = ing->msgs[i];
        baton_metric_inc(ing->metrics->ingest_messages, BATON_LABELS(rd_kafka_topic_name(m->rkt)));
        if (ing->parsed[i].rejected)
            baton_metric_inc(ing->metrics->ingest_rejected,
                             BATON_LABELS(baton_task_reason_str(ing->parsed[i].error.reason)));
    }
}

/* Processes the batch in hand until it is safely in Redis (or stop). */
static baton_err_t process_batch(struct ingest *ing) {
    char errstr[1024];
    int64_t started_ns = baton_metrics_now_ns();
    int backoff = BACKOFF_START_MS;
    unsigned failures = 0;
    for (;;) {
        baton_err_t err = parse_new(ing);
        if (err == BATON_ERR_NOMEM)
            snprintf(errstr, sizeof errstr, "out of memory parsing a batch");
        if (!err)
            err = check_memory(ing, errstr, sizeof errstr);
        if (!err)
            err = dead_letter(ing, errstr, sizeof errstr);
        if (!err)
            err = write_redis(ing, errstr, sizeof errstr);
        if (!err)
            break;
        if (failures++ == 0 || failures % 20 == 0)
            BATON_WARN(COMPONENT, "batch of %zu held, retrying in %d ms: %s", ing->count, backoff,
                       errstr);
        if (scheduler_stop)
            return BATON_ERR_STATE; /* nothing stored: another scheduler re-reads it */
        set_paused(ing, 1);
        dlq_service(ing);
        /* The wait serves rebalances and keeps group membership; a message
         * that still arrives joins the batch in hand. */
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(ing->consumer, backoff);
        if (msg && batch_add(ing, msg) == BATON_ERR_NOMEM)
            return BATON_ERR_NOMEM;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    if (failures)
        BATON_INFO(COMPONENT, "batch of %zu accepted after %u retries", ing->count, failures);
    if (advance_positions(ing) == BATON_ERR_NOMEM)
        return BATON_ERR_NOMEM; /* nothing stored: the batch is read again */
    store_offsets(ing);
    set_paused(ing, 0);
    count_batch(ing);
    baton_metric_observe(ing->metrics->ingest_batch, NULL, baton_metrics_since(started_ns));
    batch_clear(ing);
    return BATON_OK;
}

baton_err_t ingest_run(const struct scheduler_config *config, char *errstr, size_t errstr_size) {
    struct ingest ing;
    memset(&ing, 0, sizeof ing);
    ing.config = config;
    ing.metrics = config->metrics;
    ing.parse_opts.max_payload_bytes = (size_t)config->max_payload_bytes;
    baton_err_t err = allowlist_parse(config->queues_allowed, &ing.allowed, errstr, errstr_size);
    if (!err)
        err = baton_redis_connect(config->redis_url, (int)config->redis_timeout_ms, &ing.redis,
                                  errstr, errstr_size);
    if (!err)
        err = kafka_open(&ing, errstr, errstr_size);
    if (ing.consumer)
        metrics_attach(&ing);
    size_t batch_size = (size_t)config->batch_size;
    rd_kafka_message_t **buf = err ? NULL : malloc(batch_size * sizeof *buf);
    if (!err && !buf)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    if (!err)
        BATON_INFO(COMPONENT, "consuming %s as group %s", config->topic, config->group_id);

    int64_t last_report = baton_time_mono_ms();
    uint64_t reported = 0;
    int64_t held_logged = 0;
    while (!err && !scheduler_stop) {
        dlq_service(&ing);
        if (dlq_full(&ing)) {
            /* Paused, but polled: the group keeps this member, and a
             * message fetched before the pause joins the next batch. */
            set_paused(&ing, 1);
            int64_t now = baton_time_mono_ms();
            if (now - held_logged >= 10000) {
                BATON_WARN(COMPONENT, "intake paused: %zu rejects (%zu bytes) wait for the DLQ",
                           ing.held_count, ing.held_bytes);
                held_logged = now;
            }
            rd_kafka_message_t *msg = rd_kafka_consumer_poll(ing.consumer, BACKOFF_START_MS);
            if (msg && batch_add(&ing, msg) == BATON_ERR_NOMEM)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
            continue;
        }
        if (ing.count == 0) {
            set_paused(&ing, 0);
            /* Wait for the first message only, then take whatever else is
             * already fetched: an idle scheduler hands a task on at once, a
             * busy one still gets full batches (waiting to fill a batch
             * would add its whole wait to every task's latency at moderate
             * rates). */
            rd_kafka_message_t *first =
                rd_kafka_consumer_poll(ing.consumer, (int)config->batch_wait_ms);
            if (!first)
                continue;
            if (batch_add(&ing, first) == BATON_ERR_NOMEM)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        }
        size_t room = ing.count < batch_size ? batch_size - ing.count : 0;
        ssize_t n = room ? rd_kafka_consume_batch_queue(ing.queue, 0, buf, room) : 0;
        if (n < 0) {
            BATON_WARN(COMPONENT, "consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
            n = 0;
        }
        for (ssize_t i = 0; i < n; i++)
            if (batch_add(&ing, buf[i]) == BATON_ERR_NOMEM)
                err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        if (!err && ing.count > 0) {
            baton_err_t perr = process_batch(&ing);
            if (perr == BATON_ERR_NOMEM)
                err = baton_seterr(errstr, errstr_size, perr, "out of memory");
        }
        int64_t now = baton_time_mono_ms();
        uint64_t total = ing.total_queued + ing.total_scheduled + ing.total_expired +
                         ing.total_duplicates + ing.total_rejected;
        if (now - last_report >= 10000 && total != reported) {
            BATON_INFO(
                COMPONENT,
                "totals: queued %llu, scheduled %llu, expired %llu, duplicates %llu, "
                "rejected %llu",
                (unsigned long long)ing.total_queued, (unsigned long long)ing.total_scheduled,
                (unsigned long long)ing.total_expired, (unsigned long long)ing.total_duplicates,
                (unsigned long long)ing.total_rejected);
            last_report = now;
            reported = total;
        }
    }

    /* Stop in order: the batch in hand was finished or abandoned (not
     * stored); rejects in flight get a last chance to reach the DLQ and
     * free their offsets; the DLQ producer goes, then the held messages
     * (the consumer's destroy waits until every message it handed out is
     * freed); close commits the stored offsets and leaves the group.
     * Rejects still held are read again by the next owner. */
    batch_clear(&ing);
    if (ing.dlq) {
        rd_kafka_flush(ing.dlq, DLQ_FLUSH_TIMEOUT_MS);
        if (ing.consumer)
            dlq_service(&ing);
        if (ing.held_count)
            BATON_WARN(COMPONENT,
                       "stopping with %zu rejects not acknowledged by the DLQ: "
                       "their offsets were not committed, they will be read again",
                       ing.held_count);
        /* Its last delivery reports may still name held entries: purge and
         * serve them before the entries go. */
        rd_kafka_purge(ing.dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(ing.dlq, 0);
        rd_kafka_destroy(ing.dlq);
    }
    for (size_t h = 0; h < ing.held_count; h++) {
        rd_kafka_message_destroy(ing.held[h]->msg);
        free(ing.held[h]);
    }
    free(ing.held);
    free(ing.msgs);
    free(ing.parsed);
    free(ing.args);
    free(ing.text.data);
    free(buf);
    metrics_detach(&ing);
    if (ing.queue)
        rd_kafka_queue_destroy(ing.queue);
    if (ing.consumer) {
        rd_kafka_consumer_close(ing.consumer);
        rd_kafka_destroy(ing.consumer);
    }
    for (size_t p = 0; p < ing.nparts; p++)
        free(ing.parts[p].topic);
    free(ing.parts);
    baton_redis_destroy(ing.redis);
    allowlist_free(&ing.allowed);
    return err;
}
