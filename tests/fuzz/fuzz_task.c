/*
 * fuzz_task.c - libFuzzer target for the v1 task codec (common/task.c).
 *
 * Every Kafka message value reaches baton_task_parse() unfiltered, so the
 * codec is the one piece of baton that must survive any bytes at all. This
 * target feeds each input, as the message value (exact length, not
 * NUL-terminated, as scheduler/ingest.c passes m->payload and m->len), to the
 * parser under the four ways the code base calls it:
 *
 *   ingest    the scheduler: default payload limit, coordinates of
 *             baton.tasks, so a message without an id gets a derived one;
 *   small     the scheduler with --max-payload-bytes 64 and coordinates
 *             drawn from the input (a topic of 0-249 characters, any
 *             partition and offset), so both derived-id forms and the
 *             payload too_large check are reached;
 *   no_coord  another user of the codec: no coordinates, so no id is
 *             missing_id;
 *   producer  producer/submit.c: no coordinates and id_optional.
 *
 * For an accepted task it checks what the contract promises (every field in
 * range, baton_task_validate() agrees) and the round trip the scheduler
 * relies on when it stores baton_task_encode()'s output: the encoding parses
 * again, to an equal task, whose encoding is byte for byte the same. For a
 * rejection it checks that the reason is one of the documented ones, with a
 * field name that fits it and a one-line printable detail. The four runs must
 * also agree with each other (ingest and producer differ only in the id).
 * Any broken promise calls abort(), which libFuzzer reports as a crash with
 * the input saved; everything is freed, so LeakSanitizer finds leaks.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 3339's range (years 0000-9999 UTC) in Unix ms, as in task.c. */
#define TIME_MIN_MS INT64_C(-62167219200000)
#define TIME_MAX_MS INT64_C(253402300799999)

/* Payload limit of the `small` run: small enough that short inputs reach
 * the payload too_large check. */
#define SMALL_PAYLOAD_LIMIT 64

/* Kafka's longest topic name; longer than 128 - ":p:o" forces the hashed
 * derived id. */
#define KAFKA_TOPIC_MAX 249

/* Where an input came from, for the message on a failed check. */
static const uint8_t *cur_data;
static size_t cur_size;

/* Reports a broken promise and aborts, so libFuzzer saves the input. */
static void fail(const char *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)))
__attribute__((noreturn));

static void fail(const char *run, const char *fmt, ...) {
    fprintf(stderr, "fuzz_task [%s]: ", run);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (input of %zu bytes: %.*s)\n", cur_size,
            (int)(cur_size > 300 ? 300 : cur_size), (const char *)cur_data);
    abort();
}

/* ---------------------------------------------------------------------------
 * Rejections
 * ------------------------------------------------------------------------ */

/* The fields a parse rejection may name, per reason (docs/task-contract.md,
 * "Rejections"); "" is "not one field". NULL ends a list. */
static int field_fits_reason(baton_task_reason_t reason, const char *field) {
    static const char *const none[] = {"", NULL};
    static const char *const too_large[] = {"", "payload", NULL};
    static const char *const missing[] = {"type", NULL};
    static const char *const typed[] = {"type",         "id",         "queue",  "priority",
                                        "max_attempts", "timeout_ms", "run_at", "delay_ms",
                                        "deadline",     "meta",       NULL};
    static const char *const ranged[] = {"priority", "max_attempts", "timeout_ms", "delay_ms",
                                         NULL};
    static const char *const named[] = {"type", "id", "queue", NULL};
    static const char *const timed[] = {"run_at", "deadline", NULL};
    static const char *const conflict[] = {"delay_ms", NULL};
    static const char *const no_id[] = {"id", NULL};
    const char *const *allowed;
    switch (reason) {
    case BATON_TASK_EMPTY:
    case BATON_TASK_INVALID_JSON:
    case BATON_TASK_NOT_OBJECT: allowed = none; break;
    case BATON_TASK_TOO_LARGE: allowed = too_large; break;
    case BATON_TASK_MISSING_FIELD: allowed = missing; break;
    case BATON_TASK_WRONG_TYPE: allowed = typed; break;
    case BATON_TASK_OUT_OF_RANGE: allowed = ranged; break;
    case BATON_TASK_BAD_CHARSET:
    case BATON_TASK_BAD_LENGTH: allowed = named; break;
    case BATON_TASK_BAD_TIME: allowed = timed; break;
    case BATON_TASK_CONFLICT: allowed = conflict; break;
    case BATON_TASK_NO_ID: allowed = no_id; break;
    default: return 0;
    }
    for (; *allowed; allowed++)
        if (strcmp(*allowed, field) == 0)
            return 1;
    return 0;
}

static void check_rejection(const char *run, const struct baton_task_error *err, size_t size,
                            const struct baton_kafka_coord *coord,
                            const struct baton_task_parse_opts *opts) {
    const char *name = baton_task_reason_str(err->reason);
    if (!name || err->reason == BATON_TASK_OK || strcmp(name, "unknown") == 0)
        fail(run, "rejected with undocumented reason %d", (int)err->reason);
    if (!memchr(err->field, '\0', sizeof err->field))
        fail(run, "field is not NUL-terminated");
    if (!memchr(err->detail, '\0', sizeof err->detail))
        fail(run, "detail is not NUL-terminated");
    if (!field_fits_reason(err->reason, err->field))
        fail(run, "reason %s with field \"%s\"", name, err->field);
    size_t detail_len = strlen(err->detail);
    if (detail_len == 0)
        fail(run, "reason %s with an empty detail", name);
    for (size_t i = 0; i < detail_len; i++)
        if (err->detail[i] < 0x20 || err->detail[i] > 0x7e)
            fail(run, "byte 0x%02x in detail \"%s\"", (unsigned char)err->detail[i], err->detail);
    if ((err->reason == BATON_TASK_EMPTY) != (size == 0))
        fail(run, "reason %s for %zu bytes", name, size);
    if (err->reason == BATON_TASK_NO_ID && (coord || (opts && opts->id_optional)))
        fail(run, "missing_id although an id could be derived or was optional");
}

/* ---------------------------------------------------------------------------
 * Accepted tasks
 * ------------------------------------------------------------------------ */

static int time_ok(int64_t ms) {
    return ms == BATON_TIME_UNSET || (ms >= TIME_MIN_MS && ms <= TIME_MAX_MS);
}

/* Every promise of struct baton_task for a task baton_task_parse() made. */
static void check_task(const char *run, const struct baton_task *t,
                       const struct baton_kafka_coord *coord, int id_optional) {
    if (t->id ? !baton_task_id_valid(t->id) : !(id_optional && !coord))
        fail(run, "bad id \"%s\"", t->id ? t->id : "(null)");
    if (t->id_derived && (!coord || !t->id))
        fail(run, "id_derived without coordinates");
    if (!baton_task_name_valid(t->type) || !baton_task_name_valid(t->queue))
        fail(run, "bad type or queue");
    if (t->priority < BATON_TASK_PRIORITY_MIN || t->priority > BATON_TASK_PRIORITY_MAX ||
        t->max_attempts < 1 || t->timeout_ms < 1)
        fail(run, "integer field out of range");
    if (t->delay_ms != BATON_TIME_UNSET && (t->delay_ms < 0 || t->run_at_ms != BATON_TIME_UNSET))
        fail(run, "bad delay_ms %lld", (long long)t->delay_ms);
    if (!time_ok(t->run_at_ms) || !time_ok(t->deadline_ms))
        fail(run, "time out of range");
    if (!t->payload || !json_is_object(t->meta) || !json_is_object(t->extra))
        fail(run, "payload, meta or extra missing");
    const char *key;
    json_t *value;
    json_object_foreach(t->meta, key, value) {
        if (!json_is_string(value))
            fail(run, "meta key \"%s\" is not a string", key);
    }
    static const char *const contract[] = {"id",       "type",         "queue",      "priority",
                                           "payload",  "max_attempts", "timeout_ms", "run_at",
                                           "delay_ms", "deadline",     "meta"};
    for (size_t i = 0; i < sizeof contract / sizeof contract[0]; i++)
        if (json_object_get(t->extra, contract[i]))
            fail(run, "extra holds contract field %s", contract[i]);
}

static int str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* 1 when two tasks are the same, ids aside. */
static int same_but_id(const struct baton_task *a, const struct baton_task *b) {
    return str_eq(a->type, b->type) && str_eq(a->queue, b->queue) && a->priority == b->priority &&
           json_equal(a->payload, b->payload) && a->max_attempts == b->max_attempts &&
           a->timeout_ms == b->timeout_ms && a->run_at_ms == b->run_at_ms &&
           a->delay_ms == b->delay_ms && a->deadline_ms == b->deadline_ms &&
           json_equal(a->meta, b->meta) && json_equal(a->extra, b->extra);
}

/* encode -> parse -> encode: the stored form parses to the same task and is
 * a fixed point. Returns 0 when an allocation failed (not a finding). */
static int check_round_trip(const char *run, const struct baton_task *task,
                            const struct baton_task_parse_opts *opts) {
    size_t len = 0;
    char *text = baton_task_encode(task, &len);
    if (!text)
        return 0;
    if (len != strlen(text))
        fail(run, "encode length %zu, strlen %zu", len, strlen(text));

    /* No coordinates: the encoding carries the id explicitly (or, for the
     * producer's id_optional, leaves it out, which the same opts allow). */
    struct baton_task *again = NULL;
    struct baton_task_error err;
    baton_err_t rc = baton_task_parse(text, len, opts, NULL, &again, &err);
    if (rc == BATON_ERR_NOMEM) {
        free(text);
        return 0;
    }
    if (rc != BATON_OK)
        fail(run, "the encoding does not parse again: %s (%s): %s; encoding: %.300s",
             baton_task_reason_str(err.reason), err.field, err.detail, text);
    if (!str_eq(again->id, task->id) || again->id_derived || !same_but_id(task, again))
        fail(run, "the encoding parses to a different task: %.300s", text);

    size_t len2 = 0;
    char *text2 = baton_task_encode(again, &len2);
    if (text2 && (len2 != len || memcmp(text, text2, len) != 0))
        fail(run, "encoding is not a fixed point: %.300s then %.300s", text, text2);
    free(text2);
    baton_task_destroy(again);
    free(text);
    return 1;
}

/* ---------------------------------------------------------------------------
 * One run
 * ------------------------------------------------------------------------ */

struct outcome {
    baton_err_t rc;
    struct baton_task *task; /* owned, NULL when rejected */
    struct baton_task_error err;
};

/* Parses the input as `run`, checks everything, keeps the outcome for the
 * cross-checks. Returns 0 on no memory (the input is then skipped). */
static int run_one(const char *run, const uint8_t *data, size_t size,
                   const struct baton_task_parse_opts *opts, const struct baton_kafka_coord *coord,
                   struct outcome *out) {
    out->task = NULL;
    out->rc = baton_task_parse((const char *)data, size, opts, coord, &out->task, &out->err);
    if (out->rc == BATON_ERR_NOMEM)
        return 0;
    if (out->rc == BATON_ERR_INVALID) {
        if (out->task)
            fail(run, "rejected but *out is set");
        check_rejection(run, &out->err, size, coord, opts);
        return 1;
    }
    if (out->rc != BATON_OK)
        fail(run, "unexpected return code %d", (int)out->rc);
    if (!out->task || out->err.reason != BATON_TASK_OK || out->err.field[0] || out->err.detail[0])
        fail(run, "accepted without a task or with an error set");
    check_task(run, out->task, coord, opts->id_optional);

    /* A parsed task is valid by construction; the producer's id-less tasks
     * fail only for the id. */
    struct baton_task_error verr;
    baton_err_t vrc = baton_task_validate(out->task, opts, &verr);
    if (vrc == BATON_ERR_NOMEM)
        return 0;
    if (out->task->id ? vrc != BATON_OK : verr.reason != BATON_TASK_NO_ID)
        fail(run, "a parsed task does not validate: %s (%s): %s",
             baton_task_reason_str(verr.reason), verr.field, verr.detail);
    return check_round_trip(run, out->task, opts);
}

static int same_error(const struct baton_task_error *a, const struct baton_task_error *b) {
    return a->reason == b->reason && strcmp(a->field, b->field) == 0 &&
           strcmp(a->detail, b->detail) == 0;
}

/* A rejection by the whole-message limit, which the stored form's size
 * (id included) counts against. */
static int stored_too_large(const struct outcome *o) {
    return !o->task && o->err.reason == BATON_TASK_TOO_LARGE && o->err.field[0] == '\0';
}

/* The four runs differ only in the id and the payload limit, so their
 * outcomes must agree everywhere else. */
static void check_agreement(const struct outcome *ingest, const struct outcome *small,
                            const struct outcome *no_coord, const struct outcome *producer) {
    /* A smaller payload limit never accepts more. */
    if (small->task && (!ingest->task || !same_but_id(ingest->task, small->task)))
        fail("cross", "small accepted what ingest did not, or differently");

    /* Without coordinates, only the id can make a difference. */
    if (no_coord->task) {
        if (!ingest->task || ingest->task->id_derived ||
            !str_eq(ingest->task->id, no_coord->task->id) ||
            !same_but_id(ingest->task, no_coord->task))
            fail("cross", "no_coord accepted what ingest did not, or differently");
    } else if (no_coord->err.reason != BATON_TASK_NO_ID &&
               (ingest->task || !same_error(&ingest->err, &no_coord->err))) {
        fail("cross", "no_coord and ingest disagree: %s / %s", no_coord->err.detail,
             ingest->task ? "accepted" : ingest->err.detail);
    }

    /* ingest and producer differ only in where an absent id comes from,
     * and so in the stored form's size by the derived id's length. */
    if (stored_too_large(ingest) || stored_too_large(producer))
        return;
    if ((ingest->task != NULL) != (producer->task != NULL))
        fail("cross", "ingest and producer disagree on accepting: %s / %s",
             ingest->task ? "accepted" : ingest->err.detail,
             producer->task ? "accepted" : producer->err.detail);
    if (ingest->task ? !same_but_id(ingest->task, producer->task)
                     : !same_error(&ingest->err, &producer->err))
        fail("cross", "ingest and producer disagree: %s / %s", ingest->err.detail,
             producer->err.detail);
    if (ingest->task && !ingest->task->id_derived && !str_eq(ingest->task->id, producer->task->id))
        fail("cross", "an explicit id differs between ingest and producer");
}

/* Coordinates drawn from the input: a topic of 0-249 characters, and a
 * partition and offset that cover negative and extreme values. */
static struct baton_kafka_coord coord_from(const uint8_t *data, size_t size, char *topic) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * UINT64_C(0x100000001b3);
    size_t topic_len = (size_t)(h % (KAFKA_TOPIC_MAX + 1));
    memset(topic, 't', topic_len);
    topic[topic_len] = '\0';
    struct baton_kafka_coord c = {topic, (int32_t)(uint32_t)(h >> 16), (int64_t)(h * 31)};
    return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    json_object_seed(1); /* the same hash seed in every run: reproducible */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cur_data = data;
    cur_size = size;

    static const struct baton_kafka_coord ingest_coord = {"baton.tasks", 5, 2};
    char topic[KAFKA_TOPIC_MAX + 1];
    struct baton_kafka_coord small_coord = coord_from(data, size, topic);
    const struct baton_task_parse_opts defaults = {0};
    const struct baton_task_parse_opts small = {.max_payload_bytes = SMALL_PAYLOAD_LIMIT};
    const struct baton_task_parse_opts producer = {.id_optional = 1};

    struct outcome ingest_out = {0}, small_out = {0}, no_coord_out = {0}, producer_out = {0};
    if (!run_one("ingest", data, size, &defaults, &ingest_coord, &ingest_out) ||
        !run_one("small", data, size, &small, &small_coord, &small_out) ||
        !run_one("no_coord", data, size, &defaults, NULL, &no_coord_out) ||
        !run_one("producer", data, size, &producer, NULL, &producer_out))
        goto done; /* no memory: not a finding */

    check_agreement(&ingest_out, &small_out, &no_coord_out, &producer_out);

done:
    baton_task_destroy(ingest_out.task);
    baton_task_destroy(small_out.task);
    baton_task_destroy(no_coord_out.task);
    baton_task_destroy(producer_out.task);
    return 0;
}
