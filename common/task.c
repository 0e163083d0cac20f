/*
 * task.c - the task model and its JSON codec (contract version 1).
 *
 * Every Kafka message the scheduler ingests passes through baton_task_parse(),
 * so it is built for that path: jansson parses the value once, each contract
 * field is read by name in contract order (so the first problem reported is
 * the same whatever the key order), and nothing is copied until the whole
 * message has passed. Then the task takes references to the parsed payload
 * and meta instead of copying them, and the parsed root object itself, with
 * the contract fields deleted, becomes `extra` (the unknown fields). A
 * valid message costs the parse, one size walk of the payload, one of the
 * stored form's other fields (so that it too fits the message limit), the
 * struct and three short strings.
 *
 * Rejections carry a stable reason (the DLQ header), the field and one
 * sentence naming the field and the bad value. Values quoted in that sentence
 * are cut short and escaped to printable ASCII, because they end up in Kafka
 * headers and log lines whatever bytes the producer sent.
 *
 * The checks on single values are shared by the parser and by
 * baton_task_validate(), so a task built in code fails with exactly the
 * reason, field and sentence the same task would get as a message.
 * baton_task_encode() writes JSON directly into one growing buffer (jansson
 * dumps only payload, meta and unknown fields into it) and always writes
 * every contract field, so a stored task never depends on today's defaults.
 */
#include "task.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

/* Room a message may use beyond its payload for the other fields, meta and
 * unknown fields. A longer message is rejected before jansson sees it, so an
 * oversized message costs no parse and no memory. */
#define ENVELOPE_BYTES (64 * 1024)

/* The instants RFC 3339 can write (years 0000-9999 UTC); the same range
 * baton_time_parse_rfc3339() enforces, needed here to validate times set in
 * code so that encode's output parses again. */
#define TIME_MIN_MS INT64_C(-62167219200000)
#define TIME_MAX_MS INT64_C(253402300799999)

/*
 * Parser flags. Duplicate keys are rejected, anywhere in the message:
 * {"priority":1,"priority":9} means different things to different JSON
 * readers, and the task must mean one thing to every client. JSON_DECODE_ANY
 * lets a top-level scalar parse so that it is reported as not_an_object, the
 * more precise reason. JSON_ALLOW_NUL is deliberately absent: a \u0000 is
 * rejected, so every string is a plain C string (and PostgreSQL jsonb, which
 * cannot hold \u0000, can store any accepted task's history).
 */
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/* One encoding for measuring the payload and for writing it. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

/* Names the contract reserves: never unknown fields. */
static const char *const contract_fields[] = {
    "id",         "type",   "queue",    "priority", "payload", "max_attempts",
    "timeout_ms", "run_at", "delay_ms", "deadline", "meta",
};
#define N_CONTRACT_FIELDS (sizeof contract_fields / sizeof contract_fields[0])

/* Buffer for a bad value quoted in an error detail: short enough that the
 * sentence around it still fits the 256-byte detail. */
#define EXCERPT_SIZE 64

/* FNV-1a 64-bit parameters (http://www.isthe.com/chongo/tech/comp/fnv/). */
#define FNV1A_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV1A_PRIME UINT64_C(0x100000001b3)

const char *baton_task_reason_str(baton_task_reason_t reason) {
    switch (reason) {
    case BATON_TASK_OK: return "ok";
    case BATON_TASK_EMPTY: return "empty_message";
    case BATON_TASK_TOO_LARGE: return "too_large";
    case BATON_TASK_INVALID_JSON: return "invalid_json";
    case BATON_TASK_NOT_OBJECT: return "not_an_object";
    case BATON_TASK_MISSING_FIELD: return "missing_field";
    case BATON_TASK_WRONG_TYPE: return "wrong_type";
    case BATON_TASK_OUT_OF_RANGE: return "out_of_range";
    case BATON_TASK_BAD_CHARSET: return "bad_charset";
    case BATON_TASK_BAD_LENGTH: return "bad_length";
    case BATON_TASK_BAD_TIME: return "bad_time";
    case BATON_TASK_CONFLICT: return "conflicting_fields";
    case BATON_TASK_NO_ID: return "missing_id";
    case BATON_TASK_UNKNOWN_QUEUE: return "unknown_queue";
    }
    return "unknown";
}

/* ---------------------------------------------------------------------------
 * Error reporting
 * ------------------------------------------------------------------------ */

static void clear_error(struct baton_task_error *err) {
    err->reason = BATON_TASK_OK;
    err->field[0] = '\0';
    err->detail[0] = '\0';
}

/* Fills *err; see reject(). */
static void describe(struct baton_task_error *err, baton_task_reason_t reason, const char *field,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Fills *err and is BATON_ERR_INVALID, so a check ends with
 * `return reject(...)`. A macro, so that the result is visible where it is
 * used: the static analyser does not follow variadic calls, and would
 * otherwise take a rejection for a success. */
#define reject(err, reason, field, ...)                                                            \
    (describe((err), (reason), (field), __VA_ARGS__), BATON_ERR_INVALID)

static void describe(struct baton_task_error *err, baton_task_reason_t reason, const char *field,
                     const char *fmt, ...) {
    err->reason = reason;
    snprintf(err->field, sizeof err->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
}

/* Writes a printable-ASCII copy of `s` (`len` bytes) into `buf` (`size`
 * bytes, at least 8): bytes outside 0x20-0x7e as \xHH, and '"' and '\' too
 * when `quoted` (the copy goes between double quotes); cut with "..." where
 * `buf` runs out. Returns buf. */
static const char *printable(char *buf, size_t size, const char *s, size_t len, int quoted) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0, i = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = c >= 0x20 && c <= 0x7e && !(quoted && (c == '"' || c == '\\'));
        if (n + (plain ? 1 : 4) + 4 > size) /* keep room for "..." and NUL */
            break;
        if (plain) {
            buf[n++] = (char)c;
        } else {
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 0xf];
        }
    }
    if (i < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* A bad value, for a detail that puts it between double quotes. */
static const char *excerpt(char *buf, size_t size, const char *s, size_t len) {
    return printable(buf, size, s, len, 1);
}

/* "a string", "an integer", ...: the JSON type of `v` for a detail. */
static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "an unknown JSON value";
}

/* ---------------------------------------------------------------------------
 * Checks on single values, shared by parse and validate
 * ------------------------------------------------------------------------ */

static int is_name_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

static int is_id_char(unsigned char c) {
    return c >= 0x21 && c <= 0x7e;
}

/* Index of the first byte of `s` failing `ok`, or `len` when all pass. */
static size_t first_bad_char(const char *s, size_t len, int (*ok)(unsigned char)) {
    size_t i = 0;
    while (i < len && ok((unsigned char)s[i]))
        i++;
    return i;
}

/* type and queue: [A-Za-z0-9_.:-]{1,128}. */
static baton_err_t check_name(const char *field, const char *s, size_t len,
                              struct baton_task_error *err) {
    char ex[EXCERPT_SIZE];
    if (len == 0 || len > BATON_TASK_NAME_MAX)
        return reject(err, BATON_TASK_BAD_LENGTH, field,
                      "field '%s' must be 1 to %d characters long, got %zu (\"%s\")", field,
                      BATON_TASK_NAME_MAX, len, excerpt(ex, sizeof ex, s, len));
    size_t bad = first_bad_char(s, len, is_name_char);
    if (bad < len)
        return reject(err, BATON_TASK_BAD_CHARSET, field,
                      "field '%s' may only contain [A-Za-z0-9_.:-], got \"%s\" "
                      "(byte 0x%02x at index %zu)",
                      field, excerpt(ex, sizeof ex, s, len), (unsigned char)s[bad], bad);
    return BATON_OK;
}

/* id: 1-128 printable ASCII characters, 0x21-0x7e. */
static baton_err_t check_id(const char *s, size_t len, struct baton_task_error *err) {
    char ex[EXCERPT_SIZE];
    if (len == 0 || len > BATON_TASK_ID_MAX)
        return reject(err, BATON_TASK_BAD_LENGTH, "id",
                      "field 'id' must be 1 to %d characters long, got %zu (\"%s\")",
                      BATON_TASK_ID_MAX, len, excerpt(ex, sizeof ex, s, len));
    size_t bad = first_bad_char(s, len, is_id_char);
    if (bad < len)
        return reject(err, BATON_TASK_BAD_CHARSET, "id",
                      "field 'id' may only contain printable ASCII (0x21-0x7e), got "
                      "\"%s\" (byte 0x%02x at index %zu)",
                      excerpt(ex, sizeof ex, s, len), (unsigned char)s[bad], bad);
    return BATON_OK;
}

/* An integer field of the contract: its bounds and the rule in words. */
struct int_rule {
    const char *field;
    long long min;
    long long max;
    const char *want; /* completes "field 'x' must be ..." */
};

_Static_assert(BATON_TASK_PRIORITY_MIN == 0 && BATON_TASK_PRIORITY_MAX == 9,
               "update priority_rule's wording");
_Static_assert(BATON_TASK_MAX_ATTEMPTS_MAX == 1000, "update max_attempts_rule's wording");
_Static_assert(BATON_TASK_TIMEOUT_MS_MAX == 86400000, "update timeout_rule's wording");
_Static_assert(BATON_TASK_DELAY_MS_MAX == INT64_C(31536000000), "update delay_rule's wording");

/* The upper bounds are the caps of task.h: the wording names them, so an
 * out_of_range detail says the field, the value and the cap. */
static const struct int_rule priority_rule = {"priority", BATON_TASK_PRIORITY_MIN,
                                              BATON_TASK_PRIORITY_MAX, "an integer from 0 to 9"};
static const struct int_rule max_attempts_rule = {"max_attempts", 1, BATON_TASK_MAX_ATTEMPTS_MAX,
                                                  "an integer from 1 to 1000"};
static const struct int_rule timeout_rule = {"timeout_ms", 1, BATON_TASK_TIMEOUT_MS_MAX,
                                             "an integer from 1 to 86400000 (24 hours)"};
static const struct int_rule delay_rule = {"delay_ms", 0, BATON_TASK_DELAY_MS_MAX,
                                           "an integer from 0 to 31536000000 (365 days)"};

static baton_err_t check_int(const struct int_rule *rule, long long v,
                             struct baton_task_error *err) {
    if (v < rule->min || v > rule->max)
        return reject(err, BATON_TASK_OUT_OF_RANGE, rule->field, "field '%s' must be %s, got %lld",
                      rule->field, rule->want, v);
    return BATON_OK;
}

static baton_err_t check_conflict(int64_t run_at_ms, int64_t delay_ms,
                                  struct baton_task_error *err) {
    if (run_at_ms != BATON_TIME_UNSET && delay_ms != BATON_TIME_UNSET)
        return reject(err, BATON_TASK_CONFLICT, "delay_ms",
                      "fields 'run_at' and 'delay_ms' are mutually exclusive, got both");
    return BATON_OK;
}

/* meta: an object whose values are all strings. */
static baton_err_t check_meta(const json_t *meta, struct baton_task_error *err) {
    if (!json_is_object(meta))
        return reject(err, BATON_TASK_WRONG_TYPE, "meta",
                      "field 'meta' must be an object of strings, got %s",
                      meta ? json_kind(meta) : "NULL");
    const char *key;
    json_t *value;
    /* jansson's iteration API takes a non-const object; it does not modify. */
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value)) {
            char ex[EXCERPT_SIZE];
            return reject(err, BATON_TASK_WRONG_TYPE, "meta",
                          "field 'meta' must be an object of strings, key \"%s\" holds %s",
                          excerpt(ex, sizeof ex, key, strlen(key)), json_kind(value));
        }
    }
    return BATON_OK;
}

/* ---------------------------------------------------------------------------
 * Derived ids
 * ------------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t hash, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        hash ^= (unsigned char)s[i];
        hash *= FNV1A_PRIME;
    }
    return hash;
}

void baton_task_derive_id(const struct baton_kafka_coord *coord, char *buf) {
    const char *topic = coord->topic ? coord->topic : "";
    size_t topic_len = strlen(topic);
    char suffix[48]; /* ":" int32 ":" int64: at most 33 characters */
    int suffix_len =
        snprintf(suffix, sizeof suffix, ":%" PRId32 ":%" PRId64, coord->partition, coord->offset);
    if (topic_len + (size_t)suffix_len <= BATON_TASK_ID_MAX) {
        memcpy(buf, topic, topic_len);
        memcpy(buf + topic_len, suffix, (size_t)suffix_len + 1);
        return;
    }
    /* Hashing the two pieces in turn hashes their concatenation, without
     * building a string as long as the topic. */
    uint64_t hash = fnv1a(fnv1a(FNV1A_OFFSET, topic, topic_len), suffix, (size_t)suffix_len);
    snprintf(buf, BATON_TASK_ID_MAX + 1, "kafka:%016" PRIx64, hash);
}

int baton_task_name_valid(const char *name) {
    if (!name)
        return 0;
    size_t len = strlen(name);
    return len >= 1 && len <= BATON_TASK_NAME_MAX && first_bad_char(name, len, is_name_char) == len;
}

int baton_task_id_valid(const char *id) {
    if (!id)
        return 0;
    size_t len = strlen(id);
    return len >= 1 && len <= BATON_TASK_ID_MAX && first_bad_char(id, len, is_id_char) == len;
}

/* ---------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

/* The contract defaults of every scalar field. */
static void set_scalar_defaults(struct baton_task *task) {
    task->priority = BATON_TASK_DEFAULT_PRIORITY;
    task->max_attempts = BATON_TASK_DEFAULT_MAX_ATTEMPTS;
    task->timeout_ms = BATON_TASK_DEFAULT_TIMEOUT_MS;
    task->run_at_ms = BATON_TIME_UNSET;
    task->delay_ms = BATON_TIME_UNSET;
    task->deadline_ms = BATON_TIME_UNSET;
}

/* A NUL-terminated copy of `len` bytes; caller frees. NULL on no memory. */
static char *dup_bytes(const char *s, size_t len) {
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

struct baton_task *baton_task_new(const char *type) {
    struct baton_task *task = calloc(1, sizeof *task);
    if (!task)
        return NULL;
    set_scalar_defaults(task);
    task->type = type ? strdup(type) : NULL;
    task->queue = strdup(BATON_TASK_DEFAULT_QUEUE);
    task->payload = json_null();
    task->meta = json_object();
    task->extra = json_object();
    if ((type && !task->type) || !task->queue || !task->meta || !task->extra) {
        baton_task_destroy(task);
        return NULL;
    }
    return task;
}

void baton_task_destroy(struct baton_task *task) {
    if (!task)
        return;
    free(task->id);
    free(task->type);
    free(task->queue);
    json_decref(task->payload);
    json_decref(task->meta);
    json_decref(task->extra);
    free(task);
}

/* ---------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

static size_t payload_limit(const struct baton_task_parse_opts *opts) {
    return opts && opts->max_payload_bytes ? opts->max_payload_bytes
                                           : BATON_TASK_DEFAULT_MAX_PAYLOAD;
}

/*
 * The value of an optional field, or NULL when it is absent. A JSON null
 * counts as absent: producers that serialise every struct member write
 * "deadline": null for "no deadline", and that must mean the default, not a
 * wrong_type rejection. For the required `type`, null is missing_field.
 */
static json_t *field_value(const json_t *root, const char *field) {
    json_t *v = json_object_get(root, field);
    return json_is_null(v) ? NULL : v;
}

/* A validated message, still pointing into the parsed tree: nothing is
 * copied until every field has passed. */
struct task_view {
    const char *type, *id, *queue; /* borrowed; queue NULL = default */
    size_t type_len, id_len, queue_len;
    char derived_id[BATON_TASK_ID_MAX + 1];
    int id_derived;
    long long priority, max_attempts, timeout_ms, delay_ms;
    int64_t run_at_ms, deadline_ms;
    json_t *payload, *meta; /* borrowed; NULL = default */
    size_t payload_size;    /* compact-encoded size of payload; 0 when absent */
};

/* A type/queue name field; *s stays NULL when absent. */
static baton_err_t read_name(const json_t *root, const char *field, const char **s, size_t *len,
                             struct baton_task_error *err) {
    const json_t *v = field_value(root, field);
    if (!v)
        return BATON_OK;
    if (!json_is_string(v))
        return reject(err, BATON_TASK_WRONG_TYPE, field,
                      "field '%s' must be a string matching [A-Za-z0-9_.:-]{1,128}, got %s", field,
                      json_kind(v));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return check_name(field, *s, *len, err);
}

/* An integer field; *out keeps `dflt` when absent. */
static baton_err_t read_int(const json_t *root, const struct int_rule *rule, long long dflt,
                            long long *out, struct baton_task_error *err) {
    const json_t *v = field_value(root, rule->field);
    *out = dflt;
    if (!v)
        return BATON_OK;
    /* Only JSON integers: 5.0 is a real in JSON's own model and in
     * jansson's, and accepting it would make "5.5" a question of rounding. */
    if (!json_is_integer(v))
        return reject(err, BATON_TASK_WRONG_TYPE, rule->field, "field '%s' must be %s, got %s",
                      rule->field, rule->want, json_kind(v));
    *out = json_integer_value(v);
    return check_int(rule, *out, err);
}

/* An RFC 3339 time field; *out stays BATON_TIME_UNSET when absent. */
static baton_err_t read_time(const json_t *root, const char *field, int64_t *out,
                             struct baton_task_error *err) {
    const json_t *v = field_value(root, field);
    *out = BATON_TIME_UNSET;
    if (!v)
        return BATON_OK;
    if (!json_is_string(v))
        return reject(err, BATON_TASK_WRONG_TYPE, field,
                      "field '%s' must be an RFC 3339 date-time string, got %s", field,
                      json_kind(v));
    char why[128];
    int64_t ms;
    if (baton_time_parse_rfc3339(json_string_value(v), &ms, why, sizeof why) != BATON_OK) {
        char ex[EXCERPT_SIZE];
        return reject(err, BATON_TASK_BAD_TIME, field,
                      "field '%s' must be an RFC 3339 date-time, got \"%s\": %s", field,
                      excerpt(ex, sizeof ex, json_string_value(v), json_string_length(v)), why);
    }
    *out = ms;
    return BATON_OK;
}

/* Checks every field of `root` in contract order and fills *view. */
static baton_err_t read_fields(const json_t *root, size_t max_payload, int measure_payload,
                               int id_optional, const struct baton_kafka_coord *coord,
                               struct task_view *view, struct baton_task_error *err) {
    baton_err_t rc;

    if ((rc = read_name(root, "type", &view->type, &view->type_len, err)) != BATON_OK)
        return rc;
    if (!view->type)
        return reject(err, BATON_TASK_MISSING_FIELD, "type",
                      "field 'type' is required (absent or null)");

    const json_t *id = field_value(root, "id");
    if (id) {
        if (!json_is_string(id))
            return reject(err, BATON_TASK_WRONG_TYPE, "id",
                          "field 'id' must be a string of 1 to %d printable ASCII "
                          "characters, got %s",
                          BATON_TASK_ID_MAX, json_kind(id));
        view->id = json_string_value(id);
        view->id_len = json_string_length(id);
        if ((rc = check_id(view->id, view->id_len, err)) != BATON_OK)
            return rc;
    } else if (coord) {
        baton_task_derive_id(coord, view->derived_id);
        view->id = view->derived_id;
        view->id_len = strlen(view->derived_id);
        view->id_derived = 1;
    } else if (!id_optional) {
        return reject(err, BATON_TASK_NO_ID, "id",
                      "field 'id' is absent and no Kafka coordinates were given to "
                      "derive one");
    }

    if ((rc = read_name(root, "queue", &view->queue, &view->queue_len, err)) != BATON_OK)
        return rc;
    if ((rc = read_int(root, &priority_rule, BATON_TASK_DEFAULT_PRIORITY, &view->priority, err)) !=
        BATON_OK)
        return rc;

    view->payload = field_value(root, "payload");
    if (view->payload && measure_payload) {
        /* Measured as it will be stored (compact), not as it arrived: a
         * NULL buffer makes json_dumpb() count without writing. 0 means
         * jansson's loop check could not allocate; a parsed tree has no
         * cycles. */
        size_t size = json_dumpb(view->payload, NULL, 0, DUMP_FLAGS);
        if (size == 0)
            return BATON_ERR_NOMEM;
        view->payload_size = size;
        if (size > max_payload)
            return reject(err, BATON_TASK_TOO_LARGE, "payload",
                          "field 'payload' is %zu bytes compact-encoded, over the "
                          "limit of %zu",
                          size, max_payload);
    }

    if ((rc = read_int(root, &max_attempts_rule, BATON_TASK_DEFAULT_MAX_ATTEMPTS,
                       &view->max_attempts, err)) != BATON_OK)
        return rc;
    if ((rc = read_int(root, &timeout_rule, BATON_TASK_DEFAULT_TIMEOUT_MS, &view->timeout_ms,
                       err)) != BATON_OK)
        return rc;
    if ((rc = read_time(root, "run_at", &view->run_at_ms, err)) != BATON_OK)
        return rc;
    if ((rc = read_int(root, &delay_rule, BATON_TIME_UNSET, &view->delay_ms, err)) != BATON_OK)
        return rc;
    if ((rc = check_conflict(view->run_at_ms, view->delay_ms, err)) != BATON_OK)
        return rc;
    if ((rc = read_time(root, "deadline", &view->deadline_ms, err)) != BATON_OK)
        return rc;

    view->meta = field_value(root, "meta");
    if (view->meta && (rc = check_meta(view->meta, err)) != BATON_OK)
        return rc;
    return BATON_OK;
}

/* How many keys of `root` are contract fields. */
static size_t count_contract_keys(json_t *root) {
    size_t n = 0;
    const char *key;
    size_t key_len;
    json_t *value;
    json_object_keylen_foreach(root, key, key_len, value) {
        for (size_t i = 0; i < N_CONTRACT_FIELDS; i++) {
            if (strlen(contract_fields[i]) == key_len &&
                memcmp(contract_fields[i], key, key_len) == 0) {
                n++;
                break;
            }
        }
    }
    return n;
}

/* Builds the task from a checked view. Takes ownership of `root`, which
 * becomes the task's `extra`. NULL on no memory (root freed). */
static struct baton_task *build_task(json_t *root, const struct task_view *view) {
    struct baton_task *task = calloc(1, sizeof *task);
    if (!task) {
        json_decref(root);
        return NULL;
    }
    task->id = view->id ? dup_bytes(view->id, view->id_len) : NULL;
    task->id_derived = view->id_derived;
    task->type = dup_bytes(view->type, view->type_len);
    task->queue =
        view->queue ? dup_bytes(view->queue, view->queue_len) : strdup(BATON_TASK_DEFAULT_QUEUE);
    task->priority = (int)view->priority;
    task->payload = view->payload ? json_incref(view->payload) : json_null();
    task->max_attempts = (int)view->max_attempts;
    task->timeout_ms = view->timeout_ms;
    task->run_at_ms = view->run_at_ms;
    task->delay_ms = view->delay_ms;
    task->deadline_ms = view->deadline_ms;
    task->meta = view->meta ? json_incref(view->meta) : json_object();

    /* What is left of the root once the contract fields (null ones too) are
     * gone is exactly the unknown fields, in their original order: it
     * becomes `extra` with no copy. payload and meta survive the deletion
     * through the references just taken. Most messages have no unknown
     * field: then a new empty object is cheaper than the deletions. */
    if (count_contract_keys(root) == json_object_size(root)) {
        json_decref(root);
        task->extra = json_object();
    } else {
        for (size_t i = 0; i < N_CONTRACT_FIELDS; i++)
            json_object_del(root, contract_fields[i]); /* -1 when absent: fine */
        task->extra = root;
    }

    if ((view->id && !task->id) || !task->type || !task->queue || !task->meta || !task->extra) {
        baton_task_destroy(task);
        return NULL;
    }
    return task;
}

/* A growing output buffer. With `counting` set it only adds up lengths,
 * which is how validate learns the exact size encode would produce. */
struct out_buf {
    char *data;
    size_t len, cap;
    int counting;
    size_t payload_size;               /* counting: the payload's size when already known
                                          (it is not dumped again); 0 = dump it */
    int failed;                        /* an allocation failed; later writes are no-ops */
    size_t payload_start, payload_end; /* where encode_into wrote the payload */
};

static size_t encoded_size(const struct baton_task *task, size_t payload_size);
static void encode_into(struct out_buf *out, const struct baton_task *task);

/*
 * How much a payload can grow from the message to its compact encoding:
 * only real numbers grow (jansson prints them with 17 significant digits,
 * "0.1" becomes "0.10000000000000001"), from at least 3 characters to at
 * most 24; strings, integers and whitespace never grow. A message of at
 * most max_payload / PAYLOAD_GROWTH_MAX bytes therefore cannot hold a
 * payload over the limit, and its payload need not be measured before the
 * other fields are checked (the encoding measures it again all the same).
 */
#define PAYLOAD_GROWTH_MAX 8

/* baton_task_parse(); with `enc` the task is also encoded into it (the
 * stored form, measured for the size check), else only counted. */
static baton_err_t parse_task(const char *value, size_t len,
                              const struct baton_task_parse_opts *opts,
                              const struct baton_kafka_coord *coord, struct baton_task **out,
                              struct out_buf *enc, struct baton_task_error *err) {
    struct baton_task_error scratch;
    if (!err)
        err = &scratch;
    clear_error(err);
    *out = NULL;

    size_t max_payload = payload_limit(opts);
    if (len == 0)
        return reject(err, BATON_TASK_EMPTY, "", "the message value is empty");
    /* Written as a subtraction so a huge configured limit cannot wrap. */
    if (len > ENVELOPE_BYTES && len - ENVELOPE_BYTES > max_payload)
        return reject(err, BATON_TASK_TOO_LARGE, "",
                      "the message is %zu bytes, over the limit of %zu "
                      "(max_payload_bytes plus %d bytes for the other fields)",
                      len, max_payload + ENVELOPE_BYTES, ENVELOPE_BYTES);

    json_error_t jerr;
    json_t *root = json_loadb(value, len, LOAD_FLAGS, &jerr);
    if (!root) {
        enum json_error_code code = json_error_code(&jerr);
        if (code == json_error_out_of_memory)
            return BATON_ERR_NOMEM;
        if (code == json_error_null_character || code == json_error_null_byte_in_key)
            return reject(err, BATON_TASK_INVALID_JSON, "",
                          "the message is not valid JSON for the contract: a string holds "
                          "\\u0000 (at byte %d)",
                          jerr.position);
        /* jansson's text may quote the offending input: make it printable. */
        char text[sizeof jerr.text];
        return reject(err, BATON_TASK_INVALID_JSON, "",
                      "the message is not valid JSON: %s (at byte %d)",
                      printable(text, sizeof text, jerr.text, strlen(jerr.text), 0), jerr.position);
    }
    if (!json_is_object(root)) {
        baton_err_t rc = reject(err, BATON_TASK_NOT_OBJECT, "",
                                "the message must be a JSON object, got %s", json_kind(root));
        json_decref(root);
        return rc;
    }

    struct task_view view = {0};
    int measure_payload = !enc || len > max_payload / PAYLOAD_GROWTH_MAX;
    baton_err_t rc = read_fields(root, max_payload, measure_payload, opts ? opts->id_optional : 0,
                                 coord, &view, err);
    if (rc != BATON_OK) {
        json_decref(root);
        return rc;
    }
    struct baton_task *task = build_task(root, &view);
    root = NULL; /* owned by the task (or freed) now */
    if (!task)
        return BATON_ERR_NOMEM;

    /* The stored form must fit the message limit too, or it would not parse
     * again (and baton_task_validate() would refuse the task): it writes
     * every default out, and jansson re-prints real numbers (0.1 becomes
     * 0.10000000000000001), so it can be several times the message. */
    size_t start = enc ? enc->len : 0;
    size_t stored;
    if (enc) {
        encode_into(enc, task);
        stored = enc->failed ? 0 : enc->len - start;
        size_t payload_size = enc->payload_end - enc->payload_start;
        if (stored && payload_size > max_payload) { /* not measured above */
            enc->len = start;
            baton_task_destroy(task);
            return reject(err, BATON_TASK_TOO_LARGE, "payload",
                          "field 'payload' is %zu bytes compact-encoded, over the "
                          "limit of %zu",
                          payload_size, max_payload);
        }
    } else {
        stored = encoded_size(task, view.payload_size);
    }
    if (stored == 0 || (stored > ENVELOPE_BYTES && stored - ENVELOPE_BYTES > max_payload)) {
        baton_task_destroy(task);
        if (enc)
            enc->len = start;
        if (stored == 0)
            return BATON_ERR_NOMEM;
        return reject(err, BATON_TASK_TOO_LARGE, "",
                      "the message is %zu bytes once stored (defaults written out, numbers "
                      "as jansson prints them), over the limit of %zu (max_payload_bytes "
                      "plus %d bytes for the other fields)",
                      stored, max_payload + ENVELOPE_BYTES, ENVELOPE_BYTES);
    }
    *out = task;
    return BATON_OK;
}

baton_err_t baton_task_parse(const char *value, size_t len,
                             const struct baton_task_parse_opts *opts,
                             const struct baton_kafka_coord *coord, struct baton_task **out,
                             struct baton_task_error *err) {
    return parse_task(value, len, opts, coord, out, NULL, err);
}

baton_err_t baton_task_parse_encode(const char *value, size_t len,
                                    const struct baton_task_parse_opts *opts,
                                    const struct baton_kafka_coord *coord, struct baton_task **out,
                                    struct baton_task_text *text, size_t *json_at, size_t *json_len,
                                    struct baton_task_error *err) {
    struct out_buf enc = {.data = text->data, .len = text->len, .cap = text->cap};
    baton_err_t rc = parse_task(value, len, opts, coord, out, &enc, err);
    text->data = enc.data;
    text->cap = enc.cap;
    if (rc == BATON_OK && enc.failed) { /* cannot happen: parse_task checked */
        baton_task_destroy(*out);
        *out = NULL;
        rc = BATON_ERR_NOMEM;
    }
    if (rc != BATON_OK)
        return rc;
    enc.data[enc.len] = '\0'; /* out_write always leaves room for it */
    *json_at = text->len;
    *json_len = enc.len - text->len;
    text->len = enc.len + 1;
    return BATON_OK;
}

/* ---------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static int out_write(struct out_buf *out, const char *s, size_t n) {
    if (out->failed)
        return -1;
    if (!out->counting) {
        if (out->cap - out->len < n + 1) { /* +1 keeps room for the final NUL */
            size_t cap = out->cap ? out->cap : 512;
            while (cap - out->len < n + 1)
                cap *= 2;
            char *data = realloc(out->data, cap);
            if (!data) {
                out->failed = 1;
                return -1;
            }
            out->data = data;
            out->cap = cap;
        }
        memcpy(out->data + out->len, s, n);
    }
    out->len += n;
    return 0;
}

/* json_dump_callback() sink. */
static int out_dump_cb(const char *buffer, size_t size, void *data) {
    return out_write(data, buffer, size);
}

/* `v` in decimal, as jansson and printf("%lld") write it, into `buf` (24
 * bytes); returns the length. */
static size_t format_ll(char *buf, long long v) {
    char digits[24];
    size_t n = 0;
    /* Through unsigned: -LLONG_MIN does not exist as a long long. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = digits[--n];
    return len;
}

/* A JSON value as jansson dumps it with DUMP_FLAGS. The values most tasks
 * carry (null, an empty object, an integer) are written here directly:
 * jansson's dump has a fixed cost (its callback, its loop check) that is
 * most of the encoding of a small task. */
static void out_json(struct out_buf *out, const json_t *value) {
    char num[24];
    switch (json_typeof(value)) {
    case JSON_NULL: out_write(out, "null", 4); return;
    case JSON_TRUE: out_write(out, "true", 4); return;
    case JSON_FALSE: out_write(out, "false", 5); return;
    case JSON_INTEGER:
        out_write(out, num, format_ll(num, (long long)json_integer_value(value)));
        return;
    case JSON_OBJECT:
        if (json_object_size(value) == 0) {
            out_write(out, "{}", 2);
            return;
        }
        break;
    case JSON_ARRAY:
        if (json_array_size(value) == 0) {
            out_write(out, "[]", 2);
            return;
        }
        break;
    default: break;
    }
    if (json_dump_callback(value, out_dump_cb, out, DUMP_FLAGS) != 0)
        out->failed = 1;
}

/* A JSON string literal. Runs of plain bytes go out in one write; UTF-8
 * passes through unescaped, as jansson writes it without JSON_ENSURE_ASCII. */
static void out_string(struct out_buf *out, const char *s, size_t len) {
    out_write(out, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out_write(out, s + run, i - run);
        run = i + 1;
        const char *short_escape = c == '"'    ? "\\\""
                                   : c == '\\' ? "\\\\"
                                   : c == '\n' ? "\\n"
                                   : c == '\r' ? "\\r"
                                   : c == '\t' ? "\\t"
                                               : NULL;
        if (short_escape) {
            out_write(out, short_escape, 2);
        } else {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            out_write(out, esc, 6);
        }
    }
    out_write(out, s + run, len - run);
    out_write(out, "\"", 1);
}

/* `"name":`, preceded by a comma unless it is the first member. */
static void out_key(struct out_buf *out, int *first, const char *key, size_t key_len) {
    if (!*first)
        out_write(out, ",", 1);
    *first = 0;
    out_string(out, key, key_len);
    out_write(out, ":", 1);
}

static void out_int_field(struct out_buf *out, int *first, const char *key, long long v) {
    char num[24];
    size_t n = format_ll(num, v);
    out_key(out, first, key, strlen(key));
    out_write(out, num, n);
}

static void out_time_field(struct out_buf *out, int *first, const char *key, int64_t ms) {
    char text[BATON_RFC3339_BUFSZ];
    baton_time_format_rfc3339(ms, text);
    out_key(out, first, key, strlen(key));
    out_string(out, text, strlen(text));
}

/* Writes `task` as v1 JSON; see baton_task_encode(). A NULL id is left out
 * (such a task does not validate); NULL payload and meta are written as
 * their defaults. */
static void encode_into(struct out_buf *out, const struct baton_task *task) {
    int first = 1;
    out_write(out, "{", 1);
    if (task->id) {
        out_key(out, &first, "id", 2);
        out_string(out, task->id, strlen(task->id));
    }
    out_key(out, &first, "type", 4);
    out_string(out, task->type ? task->type : "", task->type ? strlen(task->type) : 0);
    out_key(out, &first, "queue", 5);
    out_string(out, task->queue ? task->queue : "", task->queue ? strlen(task->queue) : 0);
    out_int_field(out, &first, "priority", task->priority);
    out_key(out, &first, "payload", 7);
    out->payload_start = out->len;
    if (out->counting && out->payload_size)
        out->len += out->payload_size;
    else
        out_json(out, task->payload ? task->payload : json_null());
    out->payload_end = out->len;
    out_int_field(out, &first, "max_attempts", task->max_attempts);
    out_int_field(out, &first, "timeout_ms", task->timeout_ms);
    if (task->run_at_ms != BATON_TIME_UNSET)
        out_time_field(out, &first, "run_at", task->run_at_ms);
    if (task->delay_ms != BATON_TIME_UNSET)
        out_int_field(out, &first, "delay_ms", task->delay_ms);
    if (task->deadline_ms != BATON_TIME_UNSET)
        out_time_field(out, &first, "deadline", task->deadline_ms);
    out_key(out, &first, "meta", 4);
    if (task->meta)
        out_json(out, task->meta);
    else
        out_write(out, "{}", 2);
    if (task->extra) {
        const char *key;
        size_t key_len;
        json_t *value;
        json_object_keylen_foreach(task->extra, key, key_len, value) {
            out_key(out, &first, key, key_len);
            out_json(out, value);
        }
    }
    out_write(out, "}", 1);
}

/* Length of baton_task_encode()'s output, counted without writing it;
 * `payload_size`, when not 0, is the payload's known compact size. 0 on no
 * memory. */
static size_t encoded_size(const struct baton_task *task, size_t payload_size) {
    struct out_buf counter = {.counting = 1, .payload_size = payload_size};
    encode_into(&counter, task);
    return counter.failed ? 0 : counter.len;
}

char *baton_task_encode(const struct baton_task *task, size_t *len_out) {
    struct out_buf out = {0};
    encode_into(&out, task);
    if (out.failed) {
        free(out.data);
        return NULL;
    }
    out.data[out.len] = '\0'; /* out_write always leaves room for it */
    if (len_out)
        *len_out = out.len;
    return out.data;
}

/* ---------------------------------------------------------------------------
 * Validation of tasks built in code
 * ------------------------------------------------------------------------ */

/*
 * 1 when a string or object key anywhere in `v` holds a NUL byte. jansson
 * can build such values (json_stringn(), json_object_setn()) but the parser
 * rejects \u0000, so a task holding one would encode to a message that does
 * not parse. Call only on values json_dumpb() accepted, which rules out
 * reference cycles.
 */
static int holds_nul(const json_t *v) {
    if (json_is_string(v))
        return strlen(json_string_value(v)) != json_string_length(v);
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (holds_nul(json_array_get(v, i)))
                return 1;
        return 0;
    }
    if (json_is_object(v)) {
        const char *key;
        size_t key_len;
        json_t *value;
        json_object_keylen_foreach((json_t *)v, key, key_len, value) {
            if (strlen(key) != key_len || holds_nul(value))
                return 1;
        }
    }
    return 0;
}

/* A JSON value in a code-built task: encodable (no cycle) and NUL-free.
 * Sets *size to its compact-encoded size. */
static baton_err_t check_encodable(const char *field, const json_t *v, size_t *size,
                                   struct baton_task_error *err) {
    if ((*size = json_dumpb(v, NULL, 0, DUMP_FLAGS)) == 0)
        return reject(err, BATON_TASK_INVALID_JSON, field,
                      "field '%s' cannot be encoded as JSON (a reference cycle, or no "
                      "memory)",
                      field);
    if (holds_nul(v))
        return reject(err, BATON_TASK_INVALID_JSON, field,
                      "field '%s' holds a NUL character, which the contract's JSON "
                      "cannot carry",
                      field);
    return BATON_OK;
}

static baton_err_t check_time(const char *field, int64_t ms, struct baton_task_error *err) {
    if (ms != BATON_TIME_UNSET && (ms < TIME_MIN_MS || ms > TIME_MAX_MS))
        return reject(err, BATON_TASK_BAD_TIME, field,
                      "field '%s' must be a time within years 0000-9999 UTC, got %" PRId64
                      " ms since the epoch",
                      field, ms);
    return BATON_OK;
}

baton_err_t baton_task_validate(const struct baton_task *task,
                                const struct baton_task_parse_opts *opts,
                                struct baton_task_error *err) {
    struct baton_task_error scratch;
    if (!err)
        err = &scratch;
    clear_error(err);
    if (!task)
        return reject(err, BATON_TASK_EMPTY, "", "no task");

    size_t max_payload = payload_limit(opts);
    baton_err_t rc;

    if (!task->type)
        return reject(err, BATON_TASK_MISSING_FIELD, "type", "field 'type' is required");
    if ((rc = check_name("type", task->type, strlen(task->type), err)) != BATON_OK)
        return rc;
    if (!task->id)
        return reject(err, BATON_TASK_NO_ID, "id", "field 'id' is not set");
    if ((rc = check_id(task->id, strlen(task->id), err)) != BATON_OK)
        return rc;
    if (!task->queue)
        return reject(err, BATON_TASK_MISSING_FIELD, "queue",
                      "field 'queue' is NULL (the default is \"" BATON_TASK_DEFAULT_QUEUE "\")");
    if ((rc = check_name("queue", task->queue, strlen(task->queue), err)) != BATON_OK)
        return rc;
    if ((rc = check_int(&priority_rule, task->priority, err)) != BATON_OK)
        return rc;

    if (!task->payload)
        return reject(err, BATON_TASK_MISSING_FIELD, "payload",
                      "field 'payload' is NULL (use json_null() for no payload)");
    size_t size;
    if ((rc = check_encodable("payload", task->payload, &size, err)) != BATON_OK)
        return rc;
    if (size > max_payload)
        return reject(err, BATON_TASK_TOO_LARGE, "payload",
                      "field 'payload' is %zu bytes compact-encoded, over the limit of %zu", size,
                      max_payload);

    if ((rc = check_int(&max_attempts_rule, task->max_attempts, err)) != BATON_OK)
        return rc;
    if ((rc = check_int(&timeout_rule, task->timeout_ms, err)) != BATON_OK)
        return rc;
    if ((rc = check_time("run_at", task->run_at_ms, err)) != BATON_OK)
        return rc;
    if (task->delay_ms != BATON_TIME_UNSET &&
        (rc = check_int(&delay_rule, task->delay_ms, err)) != BATON_OK)
        return rc;
    if ((rc = check_conflict(task->run_at_ms, task->delay_ms, err)) != BATON_OK)
        return rc;
    if ((rc = check_time("deadline", task->deadline_ms, err)) != BATON_OK)
        return rc;
    if ((rc = check_meta(task->meta, err)) != BATON_OK)
        return rc;
    if ((rc = check_encodable("meta", task->meta, &size, err)) != BATON_OK)
        return rc;

    /* Unknown fields must stay unknown: a contract name in `extra` would
     * encode as a duplicate key, which the parser rejects. */
    if (!json_is_object(task->extra))
        return reject(err, BATON_TASK_WRONG_TYPE, "extra",
                      "'extra' must be an object of unknown fields, got %s",
                      task->extra ? json_kind(task->extra) : "NULL");
    for (size_t i = 0; i < N_CONTRACT_FIELDS; i++)
        if (json_object_get(task->extra, contract_fields[i]))
            return reject(err, BATON_TASK_CONFLICT, "extra",
                          "'extra' holds the contract field '%s'; set the struct member "
                          "instead",
                          contract_fields[i]);
    if ((rc = check_encodable("extra", task->extra, &size, err)) != BATON_OK)
        return rc;

    /* The parser's whole-message limit, on the exact encoded size. */
    struct out_buf counter = {.counting = 1};
    encode_into(&counter, task);
    if (counter.len > ENVELOPE_BYTES && counter.len - ENVELOPE_BYTES > max_payload)
        return reject(err, BATON_TASK_TOO_LARGE, "",
                      "the encoded task is %zu bytes, over the limit of %zu "
                      "(max_payload_bytes plus %d bytes for the other fields)",
                      counter.len, max_payload + ENVELOPE_BYTES, ENVELOPE_BYTES);
    return BATON_OK;
}
