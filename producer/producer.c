/*
 * producer.c - libbaton's producer over librdkafka (see producer.h).
 *
 * Why it is shaped so:
 *   - One idempotent librdkafka producer per baton_producer_t. Idempotence
 *     (with acks=all) means librdkafka's own retries never duplicate or
 *     reorder a message within a partition, so the tasks of one queue, keyed
 *     by the queue name, arrive in publish order exactly once per submit.
 *   - The codec is the gate: baton_submit() validates with the same checks
 *     the scheduler's parser applies, then encodes, so a task that would be
 *     dead-lettered is refused at the caller instead, with the same reason.
 *   - Each message carries a small heap record (its id and the caller's
 *     opaque) as librdkafka's per-message opaque, so the delivery report can
 *     name the task without parsing the value again. The record is freed in
 *     the report callback, which librdkafka calls exactly once per message
 *     it accepted.
 *   - A full local queue is not an error for a producer that can wait: the
 *     submit polls (which frees room as reports come in) and retries. The
 *     wait is bounded by message.timeout.ms, after which librdkafka fails the
 *     queued messages and so makes room.
 *   - librdkafka's fatal errors (the idempotent producer's sequence state
 *     lost) are remembered: every later submit fails with the reason rather
 *     than queueing messages that can never be sent.
 */
#include "producer.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kafka.h"
#include "log.h"
#include "timeutil.h"

#define COMPONENT "producer"
/* How long a submit waits for room in a full queue before trying again. */
#define QUEUE_FULL_POLL_MS 100
/* How long destroy serves the reports of purged messages. */
#define DESTROY_DRAIN_MS 5000
/* Batching: long enough to gather a burst, short enough to be unnoticed. */
#define DEFAULT_LINGER_MS "5"

struct baton_producer {
    rd_kafka_t *rk;                      /* the librdkafka producer, owned */
    rd_kafka_topic_t *rkt;               /* handle of the task topic, owned */
    struct baton_task_parse_opts limits; /* payload limit for validation */
    baton_delivery_cb *on_delivery;      /* may be NULL */
    void *opaque;                        /* for on_delivery */
    atomic_size_t pending;               /* accepted tasks without a report yet */
    atomic_int fatal;                    /* 1 once fatal_reason is written */
    char fatal_reason[512];              /* librdkafka's fatal error, written once */
    pthread_mutex_t client_error_lock;   /* guards client_error */
    char client_error[384];              /* the latest client-level error ("" none):
                                            why deliveries time out */
};

/* librdkafka's per-message opaque: what the delivery report needs. */
struct in_flight {
    void *msg_opaque; /* the caller's, from baton_submit() */
    char id[];        /* the task id, NUL-terminated */
};

/* ---------------------------------------------------------------------------
 * librdkafka callbacks
 * ------------------------------------------------------------------------ */

static baton_err_t translate_delivery_error(rd_kafka_resp_err_t err) {
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return BATON_OK;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT: return BATON_ERR_TIMEOUT;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT: return BATON_ERR_STATE;
    default: return BATON_ERR_KAFKA;
    }
}

/*
 * A failed report says why in librdkafka's words ("Local: Message timed
 * out"), which alone does not tell an unreachable cluster from a slow one:
 * the latest client-level error (a refused connection, a failed name
 * lookup) is added to it.
 */
static void failure_text(baton_producer_t *producer, rd_kafka_resp_err_t err, char *buf,
                         size_t size) {
    if (err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        snprintf(buf, size,
                 "not delivered: the producer was destroyed before the broker "
                 "acknowledged the task");
        return;
    }
    pthread_mutex_lock(&producer->client_error_lock);
    if (producer->client_error[0])
        snprintf(buf, size, "%s (last Kafka client error: %s)", rd_kafka_err2str(err),
                 producer->client_error);
    else
        snprintf(buf, size, "%s", rd_kafka_err2str(err));
    pthread_mutex_unlock(&producer->client_error_lock);
}

/* @locality the thread serving librdkafka's queue (poll, flush, submit). */
static void on_message_delivered(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    baton_producer_t *producer = opaque;
    struct in_flight *record = msg->_private;
    char why[512] = "";
    if (msg->err)
        failure_text(producer, msg->err, why, sizeof why);
    struct baton_delivery report = {
        .task_id = record ? record->id : "",
        .topic = rd_kafka_topic_name(msg->rkt),
        .partition = msg->partition,
        .offset = msg->err ? -1 : msg->offset,
        .err = translate_delivery_error(msg->err),
        .errstr = why,
        .msg_opaque = record ? record->msg_opaque : NULL,
    };
    if (msg->err)
        BATON_LOG_TASK(BATON_LOG_DEBUG, COMPONENT, report.task_id, "delivery failed: %s",
                       report.errstr);
    if (producer->on_delivery)
        producer->on_delivery(&report, producer->opaque);
    free(record);
    atomic_fetch_sub(&producer->pending, 1);
}

/*
 * Client-level errors. Most are transient (a broker down, a connection
 * reset) and librdkafka retries by itself: they are logged so an operator
 * sees why deliveries are slow or failing. A fatal error ends the producer.
 * @locality the thread serving librdkafka's queue.
 */
static void on_client_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    baton_producer_t *producer = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[384];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        if (!atomic_load(&producer->fatal)) {
            snprintf(producer->fatal_reason, sizeof producer->fatal_reason, "%s: %s",
                     rd_kafka_err2name(orig), why);
            atomic_store(&producer->fatal, 1);
        }
        BATON_ERROR(COMPONENT, "fatal Kafka producer error, no more tasks accepted: %s", why);
        return;
    }
    pthread_mutex_lock(&producer->client_error_lock);
    snprintf(producer->client_error, sizeof producer->client_error, "%s", reason);
    pthread_mutex_unlock(&producer->client_error_lock);
    BATON_WARN(COMPONENT, "Kafka: %s", reason);
}

/* ---------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

baton_producer_t *baton_producer_new(const struct baton_producer_config *config, char *errstr,
                                     size_t errstr_size) {
    if (!config) {
        baton_seterr(errstr, errstr_size, BATON_ERR_INVALID, "no producer configuration");
        return NULL;
    }
    char timeout[24];
    struct baton_kafka_prop defaults[5] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", DEFAULT_LINGER_MS},
        {"client.id", "baton-producer"},
    };
    size_t ndefaults = 4;
    if (config->delivery_timeout_ms < 0) {
        baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                     "delivery timeout must be >= 0 ms, got %lld",
                     (long long)config->delivery_timeout_ms);
        return NULL;
    }
    if (config->delivery_timeout_ms > 0) {
        snprintf(timeout, sizeof timeout, "%lld", (long long)config->delivery_timeout_ms);
        defaults[ndefaults++] = (struct baton_kafka_prop){"message.timeout.ms", timeout};
    }
    const char *topic =
        config->topic && *config->topic ? config->topic : BATON_PRODUCER_DEFAULT_TOPIC;

    baton_producer_t *producer = calloc(1, sizeof *producer);
    if (!producer) {
        baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        return NULL;
    }
    producer->limits.max_payload_bytes = config->max_payload_bytes;
    producer->on_delivery = config->on_delivery;
    producer->opaque = config->opaque;
    atomic_init(&producer->pending, 0);
    atomic_init(&producer->fatal, 0);
    pthread_mutex_init(&producer->client_error_lock, NULL);

    rd_kafka_conf_t *conf =
        baton_kafka_conf_new(config->kafka_brokers, defaults, ndefaults, config->kafka_config,
                             config->kafka_config_file, errstr, errstr_size);
    if (!conf) {
        pthread_mutex_destroy(&producer->client_error_lock);
        free(producer);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_message_delivered);
    rd_kafka_conf_set_error_cb(conf, on_client_error);
    rd_kafka_conf_set_opaque(conf, producer);

    char why[512];
    producer->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!producer->rk) {
        rd_kafka_conf_destroy(conf);
        pthread_mutex_destroy(&producer->client_error_lock);
        free(producer);
        baton_seterr(errstr, errstr_size, BATON_ERR_KAFKA, "Kafka producer: %s", why);
        return NULL;
    }
    conf = NULL; /* owned by the producer now */

    producer->rkt = rd_kafka_topic_new(producer->rk, topic, NULL);
    if (!producer->rkt) {
        baton_seterr(errstr, errstr_size, BATON_ERR_KAFKA, "Kafka topic '%s': %s", topic,
                     rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_destroy(producer->rk);
        pthread_mutex_destroy(&producer->client_error_lock);
        free(producer);
        return NULL;
    }
    return producer;
}

void baton_producer_destroy(baton_producer_t *producer) {
    if (!producer)
        return;
    if (atomic_load(&producer->pending) > 0) {
        rd_kafka_purge(producer->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        /* Purged messages get their reports on the next polls. */
        int64_t until = baton_time_mono_ms() + DESTROY_DRAIN_MS;
        while (atomic_load(&producer->pending) > 0 && baton_time_mono_ms() < until)
            rd_kafka_poll(producer->rk, 50);
    }
    rd_kafka_topic_destroy(producer->rkt);
    rd_kafka_destroy(producer->rk);
    pthread_mutex_destroy(&producer->client_error_lock);
    free(producer);
}

/* ---------------------------------------------------------------------------
 * Submitting
 * ------------------------------------------------------------------------ */

baton_err_t baton_producer_new_id(char *buf, char *errstr, size_t errstr_size) {
    unsigned char bytes[16];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return baton_seterr(errstr, errstr_size, BATON_ERR_IO, "getrandom: %s",
                                strerror(errno));
        }
        got += (size_t)n;
    }
    bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x40); /* version 4: random */
    bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80); /* variant: RFC 4122 */
    static const char hex[] = "0123456789abcdef";
    char *out = buf;
    for (size_t i = 0; i < sizeof bytes; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *out++ = '-';
        *out++ = hex[bytes[i] >> 4];
        *out++ = hex[bytes[i] & 0x0f];
    }
    *out = '\0';
    return BATON_OK;
}

baton_err_t baton_submit(baton_producer_t *producer, struct baton_task *task, const char *key,
                         void *msg_opaque, char *errstr, size_t errstr_size) {
    if (!producer || !task)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "baton_submit: no producer or no task");
    if (atomic_load(&producer->fatal))
        return baton_seterr(errstr, errstr_size, BATON_ERR_KAFKA,
                            "the producer stopped after a fatal Kafka error: %s",
                            producer->fatal_reason);
    baton_err_t err;
    if (!task->id) {
        char id[BATON_PRODUCER_ID_BUFSZ];
        if ((err = baton_producer_new_id(id, errstr, errstr_size)) != BATON_OK)
            return err;
        if (!(task->id = strdup(id)))
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    struct baton_task_error reject;
    if (baton_task_validate(task, &producer->limits, &reject) != BATON_OK)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID, "%s: %s",
                            baton_task_reason_str(reject.reason), reject.detail);

    size_t id_len = strlen(task->id);
    struct in_flight *record = malloc(sizeof *record + id_len + 1);
    size_t value_len = 0;
    char *value = baton_task_encode(task, &value_len);
    if (!record || !value) {
        free(record);
        free(value);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    record->msg_opaque = msg_opaque;
    memcpy(record->id, task->id, id_len + 1);
    if (!key)
        key = task->queue;

    /* Counted before producing: the report may be served on another thread
     * before producev() even returns here. */
    atomic_fetch_add(&producer->pending, 1);
    rd_kafka_resp_err_t kerr;
    for (;;) {
        kerr = rd_kafka_producev(
            producer->rk, RD_KAFKA_V_RKT(producer->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
            RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_OPAQUE(record), RD_KAFKA_V_END);
        if (kerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(producer->rk, QUEUE_FULL_POLL_MS);
    }
    if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR)
        // NOLINTNEXTLINE(clang-analyzer-unix.Malloc): the delivery report frees the opaque
        return BATON_OK; /* value is librdkafka's now (F_FREE), record the report's */

    /* Refused: no report will come, and value is still ours. */
    atomic_fetch_sub(&producer->pending, 1);
    free(value);
    free(record);
    if (kerr == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(producer->rk, why, sizeof why);
        return baton_seterr(errstr, errstr_size, BATON_ERR_KAFKA,
                            "the producer stopped after a fatal Kafka error: %s", why);
    }
    return baton_seterr(errstr, errstr_size, BATON_ERR_KAFKA, "Kafka refused task %s: %s", task->id,
                        rd_kafka_err2str(kerr));
}

/* ---------------------------------------------------------------------------
 * Serving reports
 * ------------------------------------------------------------------------ */

int baton_producer_poll(baton_producer_t *producer, int timeout_ms) {
    return rd_kafka_poll(producer->rk, timeout_ms);
}

baton_err_t baton_producer_flush(baton_producer_t *producer, int timeout_ms) {
    rd_kafka_resp_err_t kerr = rd_kafka_flush(producer->rk, timeout_ms);
    if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR && atomic_load(&producer->pending) == 0)
        return BATON_OK;
    /* rd_kafka_flush() may also return with reports queued but not served
     * yet (another thread polling): serve what is there. */
    rd_kafka_poll(producer->rk, 0);
    return atomic_load(&producer->pending) == 0 ? BATON_OK : BATON_ERR_TIMEOUT;
}

size_t baton_producer_pending(const baton_producer_t *producer) {
    return atomic_load(&((baton_producer_t *)producer)->pending);
}
