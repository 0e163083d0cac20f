/*
 * task.h - the task model and its JSON codec (contract version 1).
 *
 * A task is one Kafka message whose value is a UTF-8 JSON object (see
 * docs/task-contract.md). baton_task_parse() turns a
 * message value into a struct baton_task, applying the defaults of the
 * contract and rejecting bad input with a precise, stable reason that the
 * scheduler puts in the dead-letter headers. baton_task_encode() writes a
 * task back as v1 JSON that always parses again to the same task.
 *
 * Ownership: a struct baton_task owns every pointer in it; free the whole
 * task with baton_task_destroy().
 */
#ifndef BATON_TASK_H
#define BATON_TASK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Contract limits and defaults (docs/task-contract.md, "version 1"). */
#define BATON_TASK_NAME_MAX 128 /* type and queue length */
#define BATON_TASK_ID_MAX 128   /* id length */
#define BATON_TASK_DEFAULT_QUEUE "default"
#define BATON_TASK_DEFAULT_PRIORITY 5
#define BATON_TASK_PRIORITY_MIN 0
#define BATON_TASK_PRIORITY_MAX 9 /* 9 is most urgent */
#define BATON_TASK_DEFAULT_MAX_ATTEMPTS 3
#define BATON_TASK_DEFAULT_TIMEOUT_MS 300000
/* Caps on the durations and counts a producer chooses. Each keeps every sum
 * baton forms with it (Redis TIME + delay_ms in a Lua double, the worker's
 * monotonic start + timeout_ms, the retry backoff's 2^(attempt-1)) finite
 * and exact, and refuses what is a mistake rather than a task: an attempt
 * longer than a day, a start more than a year away, a task retried for
 * weeks. */
#define BATON_TASK_MAX_ATTEMPTS_MAX 1000
#define BATON_TASK_TIMEOUT_MS_MAX 86400000           /* 24 hours */
#define BATON_TASK_DELAY_MS_MAX INT64_C(31536000000) /* 365 days */
#define BATON_TASK_DEFAULT_MAX_PAYLOAD (1024 * 1024) /* 1 MiB, configurable */

/* Sentinel for "not set" in the optional time fields below. */
#define BATON_TIME_UNSET INT64_MIN

struct baton_task {
    char *id;            /* idempotency key, 1-128 printable ASCII chars
                            (0x21-0x7e); NULL only after a parse with
                            id_optional */
    int id_derived;      /* 1 when id came from the Kafka coordinates; not
                            part of the encoding (a re-parse gives 0) */
    char *type;          /* handler name, [A-Za-z0-9_.:-]{1,128} */
    char *queue;         /* queue name, same charset; default "default" */
    int priority;        /* 0-9, default 5 */
    json_t *payload;     /* any JSON value, never NULL (json null default) */
    int max_attempts;    /* 1-1000, default 3 */
    int64_t timeout_ms;  /* 1 ms to 24 h, default 300000 */
    int64_t run_at_ms;   /* absolute earliest start, or BATON_TIME_UNSET */
    int64_t delay_ms;    /* relative earliest start (from enqueue time,
                            Redis clock), 0 to 365 days, or
                            BATON_TIME_UNSET */
    int64_t deadline_ms; /* absolute, or BATON_TIME_UNSET */
    json_t *meta;        /* object whose values are all strings, never NULL */
    json_t *extra;       /* unknown top-level fields, kept for history; object,
                            never NULL */
};

/* Why a message was rejected. Stable: the string forms are part of the DLQ
 * header contract (baton-reason) and of history. */
typedef enum baton_task_reason {
    BATON_TASK_OK = 0,
    BATON_TASK_EMPTY,         /* "empty_message": zero-length value */
    BATON_TASK_TOO_LARGE,     /* "too_large": message or payload over limit */
    BATON_TASK_INVALID_JSON,  /* "invalid_json": not JSON / not UTF-8 */
    BATON_TASK_NOT_OBJECT,    /* "not_an_object": top level is not {} */
    BATON_TASK_MISSING_FIELD, /* "missing_field": a required field absent */
    BATON_TASK_WRONG_TYPE,    /* "wrong_type": field has the wrong JSON type */
    BATON_TASK_OUT_OF_RANGE,  /* "out_of_range": number outside its range */
    BATON_TASK_BAD_CHARSET,   /* "bad_charset": char outside allowed set */
    BATON_TASK_BAD_LENGTH,    /* "bad_length": string empty or too long */
    BATON_TASK_BAD_TIME,      /* "bad_time": not an RFC 3339 date-time */
    BATON_TASK_CONFLICT,      /* "conflicting_fields": run_at with delay_ms */
    BATON_TASK_NO_ID,         /* "missing_id": no id and no coordinates */
    BATON_TASK_UNKNOWN_QUEUE, /* "unknown_queue": valid, but for a queue the
                                 scheduler's --queues-allowed leaves out */
} baton_task_reason_t;

/* Filled by baton_task_parse() on rejection. */
struct baton_task_error {
    baton_task_reason_t reason; /* what kind of bad input */
    char field[32];             /* the offending field ("" if not one field) */
    char detail[256];           /* one human sentence, names field and value */
};

/* Kafka coordinates of a message: the source of a derived id. */
struct baton_kafka_coord {
    const char *topic; /* borrowed */
    int32_t partition;
    int64_t offset;
};

/* Parse-time options; NULL options mean the defaults. */
struct baton_task_parse_opts {
    size_t max_payload_bytes; /* compact-encoded payload limit; 0 = default.
                                 The whole message may be up to this plus
                                 64 KiB for the other fields. */
    int id_optional;          /* 1: an absent id with no coordinates is
                                 accepted and task->id is left NULL (the
                                 producer generates one before sending) */
};

/* Stable snake_case name of `reason` ("invalid_json", ...). Never NULL. */
const char *baton_task_reason_str(baton_task_reason_t reason);

/*
 * Parses and validates one message value (`len` bytes, need not be
 * NUL-terminated). `coord` gives the Kafka coordinates used to derive an id
 * when the message has none; with coord NULL an absent id is an error
 * (BATON_TASK_NO_ID). On success returns BATON_OK and *out is a new task the
 * caller frees with baton_task_destroy(). On bad input returns
 * BATON_ERR_INVALID and fills *err; on allocation failure BATON_ERR_NOMEM.
 */
baton_err_t baton_task_parse(const char *value, size_t len,
                             const struct baton_task_parse_opts *opts,
                             const struct baton_kafka_coord *coord, struct baton_task **out,
                             struct baton_task_error *err);

/*
 * Text that baton_task_parse_encode() appends encoded tasks to: keep one
 * for many calls (set `len` to 0 to reuse its memory) and a task's encoding
 * costs no allocation of its own. Free `data` with free().
 */
struct baton_task_text {
    char *data;
    size_t len, cap;
};

/*
 * baton_task_parse(), and on success the task's baton_task_encode() form
 * too: written into `text` at *json_at, *json_len bytes, NUL-terminated
 * (text->len moves past the NUL). The encoding is the one the parser
 * measures for its size check anyway, so it is made once instead of
 * counted and then written again. On an error `text` holds what it held
 * (its buffer may have grown).
 */
baton_err_t baton_task_parse_encode(const char *value, size_t len,
                                    const struct baton_task_parse_opts *opts,
                                    const struct baton_kafka_coord *coord, struct baton_task **out,
                                    struct baton_task_text *text, size_t *json_at, size_t *json_len,
                                    struct baton_task_error *err);

/*
 * New task of `type` with every contract default applied and no id (the
 * caller sets one, or the producer generates one). Returns NULL on no memory.
 * Caller frees with baton_task_destroy().
 */
struct baton_task *baton_task_new(const char *type);

/* Frees `task` and everything it owns. NULL is a no-op. */
void baton_task_destroy(struct baton_task *task);

/*
 * Checks a task built in code against the contract (the producer calls this
 * before sending, so what it sends always validates). Same error reporting as
 * baton_task_parse(); an absent id is BATON_TASK_NO_ID.
 */
baton_err_t baton_task_validate(const struct baton_task *task,
                                const struct baton_task_parse_opts *opts,
                                struct baton_task_error *err);

/*
 * Encodes `task` as compact v1 JSON: every contract field explicitly (defaults
 * included), times as RFC 3339 UTC, unknown fields kept. Returns a
 * NUL-terminated string the caller frees with free(), and its length in
 * *len_out (may be NULL); NULL on no memory.
 */
char *baton_task_encode(const struct baton_task *task, size_t *len_out);

/*
 * Writes the derived id for a message without one into `buf` (at least
 * BATON_TASK_ID_MAX + 1 bytes): "<topic>:<partition>:<offset>" when that fits
 * in 128 characters, otherwise "kafka:" followed by 16 hex digits of a 64-bit
 * FNV-1a hash of the same text. A pure function of the coordinates.
 */
void baton_task_derive_id(const struct baton_kafka_coord *coord, char *buf);

/* 1 when `name` is a valid type/queue name ([A-Za-z0-9_.:-]{1,128}). */
int baton_task_name_valid(const char *name);

/* 1 when `id` is a valid id (1-128 printable ASCII, 0x21-0x7e). */
int baton_task_id_valid(const char *id);

#endif
