/*
 * producer.h - libbaton's producer: publish tasks to Kafka from C.
 *
 * A baton_producer_t wraps one idempotent librdkafka producer
 * (enable.idempotence=true, acks=all, a short linger.ms for batching) and
 * the task codec: baton_submit() checks a task against the contract
 * (baton_task_validate()), gives it a generated id when it has none, encodes
 * it as v1 JSON (baton_task_encode()) and hands it to librdkafka. Whatever a
 * producer sends therefore always passes the scheduler's validation.
 *
 * Delivery is asynchronous. Every task that baton_submit() accepted gets
 * exactly one delivery report, through the callback of the configuration,
 * with the task id, BATON_OK or the error, and where the message landed.
 * Reports are served by baton_producer_poll() and baton_producer_flush()
 * (and by baton_submit() itself while librdkafka's local queue is full), on
 * the thread that calls them. A typical lifecycle (example: unit):
 *
 *     static void delivered(const struct baton_delivery *report, void *opaque) {
 *         if (report->err != BATON_OK)
 *             ++*(size_t *)opaque; // count the tasks not delivered
 *     }
 *
 *     static size_t publish(struct baton_task **tasks, size_t count) {
 *         char errstr[512];
 *         size_t failed = 0;
 *         struct baton_producer_config cfg = {
 *             .kafka_brokers = "host:9092", .on_delivery = delivered, .opaque = &failed};
 *         baton_producer_t *p = baton_producer_new(&cfg, errstr, sizeof errstr);
 *         if (!p)
 *             return count;
 *         for (size_t i = 0; i < count; i++) {
 *             if (baton_submit(p, tasks[i], NULL, NULL, errstr, sizeof errstr) != BATON_OK)
 *                 failed++; // no report follows: errstr says why
 *             baton_producer_poll(p, 0);
 *         }
 *         baton_producer_flush(p, -1);
 *         baton_producer_destroy(p);
 *         return failed;
 *     }
 *
 * The partition key of a task is its queue unless the caller gives one, so
 * the tasks of one queue keep their publish order (one partition, and the
 * idempotent producer does not reorder on retries).
 *
 * Threads: baton_submit(), baton_producer_poll(), baton_producer_flush() and
 * baton_producer_pending() may be called from several threads at once on
 * one producer; the delivery callback then runs on whichever thread is
 * polling. baton_producer_new() and baton_producer_destroy() must not race
 * with anything else on the same producer.
 */
#ifndef BATON_PRODUCER_H
#define BATON_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "task.h"

/* The topic tasks go to when the configuration names none. */
#define BATON_PRODUCER_DEFAULT_TOPIC "baton.tasks"

/* Room for a generated id: a UUID string (36 chars) and its NUL. */
#define BATON_PRODUCER_ID_BUFSZ 37

typedef struct baton_producer baton_producer_t;

/* The outcome of one submitted task. Everything in it is borrowed and valid
 * only during the callback: copy what you keep. */
struct baton_delivery {
    const char *task_id; /* the id the task was sent with (generated or the caller's) */
    const char *topic;   /* topic it was produced to */
    int32_t partition;   /* partition, or -1 when it never got one */
    int64_t offset;      /* offset in the partition, or -1 when not delivered */
    baton_err_t err;     /* BATON_OK: acknowledged by all in-sync replicas;
                            BATON_ERR_TIMEOUT: not acknowledged within
                            message.timeout.ms; BATON_ERR_KAFKA: any other
                            failure; BATON_ERR_STATE: purged by
                            baton_producer_destroy() */
    const char *errstr;  /* "" on success, else one human sentence */
    void *msg_opaque;    /* the msg_opaque given to baton_submit() */
};

/*
 * Receives each delivery report; `opaque` is the configuration's opaque.
 * Must not call back into the same producer (no baton_submit(), poll, flush
 * or destroy from inside the callback): librdkafka does not allow polling
 * from within its own callbacks. Keep it short; it holds up the others.
 * @locality the thread calling baton_producer_poll(), baton_producer_flush(),
 * or baton_submit() while it waits for room in a full queue.
 */
typedef void baton_delivery_cb(const struct baton_delivery *report, void *opaque);

/* What baton_producer_new() needs. Strings are borrowed for the duration of
 * baton_producer_new() only (it copies what it keeps). */
struct baton_producer_config {
    const char *kafka_brokers;      /* bootstrap servers "host:port,...": required */
    const char *kafka_config;       /* extra librdkafka properties "k=v,k=v", applied last
                                       so they override baton's defaults; NULL or "" for none */
    const char *kafka_config_file;  /* file of librdkafka properties, one name=value a line,
                                       applied before kafka_config; NULL or "" for none */
    const char *topic;              /* NULL: BATON_PRODUCER_DEFAULT_TOPIC */
    size_t max_payload_bytes;       /* payload limit checked before sending; 0: the
                                       contract default (1 MiB). Match the scheduler's. */
    int64_t delivery_timeout_ms;    /* message.timeout.ms: how long librdkafka keeps trying
                                       before a task's report says BATON_ERR_TIMEOUT;
                                       0: librdkafka's default (300000) */
    baton_delivery_cb *on_delivery; /* NULL: reports are counted but not passed on */
    void *opaque;                   /* passed to on_delivery */
};

/*
 * New producer. Returns NULL with one line in errstr on a bad configuration
 * (no brokers, an unknown or invalid librdkafka property) or when librdkafka
 * cannot create its client. No broker is contacted yet: an unreachable
 * cluster shows up as failed delivery reports, not here. Caller destroys the
 * result with baton_producer_destroy().
 */
baton_producer_t *baton_producer_new(const struct baton_producer_config *config, char *errstr,
                                     size_t errstr_size);

/*
 * Submits one task. If task->id is NULL, a generated id (a random UUIDv4
 * string, see baton_producer_new_id()) is stored in task->id first, owned by
 * the task like any other field, so the caller reads it back there; that
 * happens before validation and stays even if the call fails. `key` is the
 * partition key (NULL: the task's queue); `msg_opaque` comes back in the
 * delivery report. `task` and `key` are borrowed for the call only: the
 * caller may destroy the task as soon as this returns.
 *
 * Returns BATON_OK when the task is queued for delivery: its report will
 * follow. Otherwise no report follows and errstr says why:
 * BATON_ERR_INVALID (the contract rejects the task: "<reason>: <detail>",
 * reason as in baton_task_reason_str()), BATON_ERR_NOMEM, or
 * BATON_ERR_KAFKA (librdkafka refused the message, or the producer hit a
 * fatal error and accepts nothing any more). When librdkafka's local queue
 * is full the call polls (serving delivery reports) and retries until there
 * is room, which the delivery timeout bounds.
 */
baton_err_t baton_submit(baton_producer_t *producer, struct baton_task *task, const char *key,
                         void *msg_opaque, char *errstr, size_t errstr_size);

/*
 * Serves delivery reports (and librdkafka's error and log events), waiting
 * up to timeout_ms (0: do not wait, -1: wait for one event). Returns the
 * number of events served.
 */
int baton_producer_poll(baton_producer_t *producer, int timeout_ms);

/*
 * Waits until every submitted task has had its delivery report, serving the
 * reports meanwhile, for up to timeout_ms (-1: no limit other than the
 * delivery timeout). Returns BATON_OK, or BATON_ERR_TIMEOUT when reports are
 * still outstanding (baton_producer_pending() says how many).
 */
baton_err_t baton_producer_flush(baton_producer_t *producer, int timeout_ms);

/* Number of submitted tasks whose delivery report has not been served yet. */
size_t baton_producer_pending(const baton_producer_t *producer);

/*
 * Destroys the producer. Does not wait for delivery: call
 * baton_producer_flush() first. Tasks still outstanding are purged, and
 * their reports (err BATON_ERR_STATE, or the broker's verdict if it came in
 * meanwhile) are delivered from inside this call, so every accepted task
 * still gets exactly one report. NULL is a no-op.
 */
void baton_producer_destroy(baton_producer_t *producer);

/*
 * Writes a new random id into `buf` (at least BATON_PRODUCER_ID_BUFSZ
 * bytes): a lowercase UUID version 4 string, 122 random bits from
 * getrandom(). Returns BATON_OK, or BATON_ERR_IO when the kernel's random
 * source fails (errstr says why).
 */
baton_err_t baton_producer_new_id(char *buf, char *errstr, size_t errstr_size);

#endif
