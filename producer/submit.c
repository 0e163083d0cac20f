/*
 * submit.c - baton-submit: publish tasks to Kafka from the command line.
 *
 *   baton-submit --type email.send --queue mail --payload '{"to":"a@b"}'
 *   baton-submit --file tasks.jsonl        (or: ... - < tasks.jsonl)
 *
 * One task from flags, or many from JSON lines (one v1 task per line, the
 * same contract as any Kafka message; a line without "id" gets a generated
 * one). Prints the id of every delivered task, one per line in input order,
 * as soon as it and every task before it are settled; failures go to stderr
 * naming the line and the task id. With --json, one object per input task
 * instead, in input order ("line" is absent for the task from flags):
 *   {"line":N,"id":...,"queue":...,"topic":...,"partition":P,"offset":O}
 *   {"line":N,"error":"invalid","reason":...,"field":...,"detail":...}
 *   {"line":N,"id":...,"queue":...,"error":"not_delivered","detail":...}
 *   {"line":N,...,"error":"not_sent","detail":...}  (other lines were bad,
 *                                                    or interrupted)
 * The partition key is the task's queue (the producer library's default).
 *
 * All input is read and checked before anything is sent: if any line is
 * bad, every bad line is reported (line number, the codec's reason and
 * detail) and nothing is sent, so a fixed file can simply be submitted
 * again without duplicating its good half. --skip-invalid sends the valid
 * lines anyway. The price is that the whole input is held in memory as
 * parsed tasks; split very large files.
 *
 * Exit status: 0 every task delivered (with --skip-invalid: every valid
 * one); 1 input rejected, or a delivery failed, or interrupted; 2 usage
 * error (bad flag, unreadable --file, bad Kafka property).
 *
 * Settings about where to publish come from flags or BATON_* environment
 * variables, like every baton binary. The task's own fields and the input
 * and output flags are flags only (BATON_OPT_NO_ENV): an exported
 * BATON_PRIORITY or BATON_ID silently changing every submitted task would
 * be a trap.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kafka.h"
#include "log.h"
#include "producer.h"
#include "task.h"
#include "timeutil.h"

#define PROG "baton-submit"
#define EXIT_REJECTED 1
#define EXIT_USAGE 2
/* Unset marker for the integer task flags (the table leaves them alone). */
#define UNSET INT64_MIN
/* A batch this large gets a progress line (when stderr is a terminal). */
#define PROGRESS_MIN_TASKS 1000
#define PROGRESS_EVERY_MS 200
/* Submits between two polls of delivery reports while sending. */
#define POLL_EVERY 256

/* ---------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

struct submit_config {
    /* Where and how to publish (flags and environment). */
    char *kafka_brokers;
    char *kafka_config;
    char *kafka_config_file;
    char *topic;
    int64_t delivery_timeout_ms;
    int64_t max_payload_bytes;
    char *log_level;
    /* Input and output (flags only). */
    char *file;
    int json;
    int skip_invalid;
    /* The task given by flags (flags only; UNSET / NULL when not given). */
    char *type;
    char *queue;
    int64_t priority;
    char *payload;
    int64_t delay_ms;
    char *run_at;
    char *deadline;
    int64_t max_attempts;
    int64_t timeout_ms;
    char *id;
    char *meta; /* "KEY=VALUE" entries joined by '\n' (BATON_OPT_LIST) */
};

#define CFG(field) offsetof(struct submit_config, field)
static const struct baton_opt options[] = {
    /* Settings: flag or environment. */
    {"kafka-brokers", BATON_OPT_STRING, NULL, "Kafka bootstrap servers (host:port,...)",
     CFG(kafka_brokers), 0, 0},
    {"kafka-config", BATON_OPT_STRING, "",
     "extra librdkafka properties, k=v,k=v (win over "
     "baton's defaults, e.g. message.timeout.ms=5000)",
     CFG(kafka_config), 0, 0},
    {"kafka-config-file", BATON_OPT_STRING, "",
     "file of librdkafka properties, one name=value a line (# comments); for values with "
     "commas; --kafka-config wins",
     CFG(kafka_config_file), 0, 0},
    {"topic", BATON_OPT_STRING, BATON_PRODUCER_DEFAULT_TOPIC, "topic to publish tasks to",
     CFG(topic), 0, 0},
    {"delivery-timeout-ms", BATON_OPT_DURATION, "1m",
     "give up on a task the brokers have not acknowledged after this long",
     CFG(delivery_timeout_ms), 1, 2147483647},
    {"max-payload-bytes", BATON_OPT_INT, "1048576",
     "payload size limit (compact JSON bytes); match the scheduler's", CFG(max_payload_bytes), 1,
     268435456},
    {"log-level", BATON_OPT_STRING, "error",
     "JSON log lines on stderr: debug, info, warn, error or off", CFG(log_level), 0, 0},
    BATON_OPT_SECTION("input and output (flags only)"),
    {"file", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL,
     "read tasks as JSON lines from this file ('-' or a lone - argument: stdin)", CFG(file), 0, 0},
    {"json", BATON_OPT_BOOL | BATON_OPT_NO_ENV, "false",
     "print one JSON object per task (line, id, queue, topic, partition, offset, or error)",
     CFG(json), 0, 0},
    {"skip-invalid", BATON_OPT_BOOL | BATON_OPT_NO_ENV, "false",
     "send the valid lines even if some are bad (the bad ones are still reported)",
     CFG(skip_invalid), 0, 0},
    /* Defaults are the contract's: an entry without one leaves its field
     * NULL or UNSET, so the codec fills it. */
    BATON_OPT_SECTION("the task, with --type (flags only; unset fields get the contract's "
                      "defaults)"),
    {"type", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL,
     "handler name: submits one task built from these flags", CFG(type), 0, 0},
    {"queue", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL, "queue name (default \"default\")",
     CFG(queue), 0, 0},
    {"priority", BATON_OPT_INT | BATON_OPT_NO_ENV, NULL, "0-9, 9 most urgent (default 5)",
     CFG(priority), -2147483648.0, 2147483647},
    {"payload", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL,
     "handler input, any JSON value (default null)", CFG(payload), 0, 0},
    {"delay", BATON_OPT_DURATION | BATON_OPT_NO_ENV, NULL,
     "earliest start, this long after enqueue", CFG(delay_ms), 0, 0},
    {"run-at", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL, "earliest start, RFC 3339 time",
     CFG(run_at), 0, 0},
    {"deadline", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL,
     "expire the task if not started by this RFC 3339 time", CFG(deadline), 0, 0},
    {"max-attempts", BATON_OPT_INT | BATON_OPT_NO_ENV, NULL,
     "attempts before the task is dead (default 3)", CFG(max_attempts), -2147483648.0, 2147483647},
    {"timeout", BATON_OPT_DURATION | BATON_OPT_NO_ENV, NULL, "limit of one attempt (default 5m)",
     CFG(timeout_ms), 0, 0},
    {"id", BATON_OPT_STRING | BATON_OPT_NO_ENV, NULL, "idempotency key (default: a generated UUID)",
     CFG(id), 0, 0},
    {"meta", BATON_OPT_LIST | BATON_OPT_NO_ENV | BATON_OPT_KEY_VALUE, NULL,
     "a meta label KEY=VALUE; repeat for more (--meta tenant=acme --meta trace=ab12)", CFG(meta), 0,
     0},
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

static const char usage_line[] =
    PROG " [options] --type TYPE [task flags]\n       " PROG " [options] --file PATH | -";
static const char summary[] =
    "Publishes tasks to Kafka for baton-scheduler: one task from flags, or one per line of\n"
    "JSON lines (same contract as any message; a line without \"id\" gets a generated one).\n"
    "Prints the id of each delivered task in input order. All lines are checked before any\n"
    "is sent: if one is bad, each bad line is reported and nothing is sent (see\n"
    "--skip-invalid). Exit status: 0 all delivered, 1 input rejected or delivery failed,\n"
    "2 usage error.";

/* Turns the --meta entries into a JSON object in `meta`. BATON_ERR_CONFIG
 * on an entry that is not KEY=VALUE, a repeated key or text not UTF-8. A
 * value cannot hold a newline here (the entry separator); JSON lines can. */
static baton_err_t parse_meta(const char *entries, json_t *meta, char *errstr, size_t errstr_size) {
    for (const char *item = entries; item && *item;) {
        const char *end = strchr(item, '\n');
        size_t len = end ? (size_t)(end - item) : strlen(item);
        const char *eq = memchr(item, '=', len);
        if (!eq || eq == item)
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "--meta: expected KEY=VALUE, got '%.*s'", (int)len, item);
        char *key = strndup(item, (size_t)(eq - item));
        json_t *value = json_stringn(eq + 1, len - (size_t)(eq - item) - 1);
        baton_err_t err = BATON_OK;
        if (!key || !value)
            err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                               "--meta: '%.*s' is not valid UTF-8 (or no memory)", (int)len, item);
        else if (json_object_get(meta, key))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                               "--meta: key '%s' given twice", key);
        else if (json_object_set(meta, key, value))
            err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                               "--meta: key '%s' is not valid UTF-8", key);
        json_decref(value);
        free(key);
        if (err)
            return err;
        item = end ? end + 1 : item + len;
    }
    return BATON_OK;
}

/* The name of the first task flag given, or NULL: the entries after the
 * task's section heading (the last one). */
static const char *first_task_flag(const struct submit_config *c) {
    size_t first = OPTION_COUNT;
    while (first > 0 && BATON_OPT_KIND(&options[first - 1]) != BATON_OPT_HEADING)
        first--;
    for (size_t i = first; i < OPTION_COUNT; i++) {
        const char *field = (const char *)c + options[i].offset;
        enum baton_opt_type kind = BATON_OPT_KIND(&options[i]);
        if (kind == BATON_OPT_STRING || kind == BATON_OPT_LIST) {
            char *value;
            memcpy(&value, field, sizeof value);
            if (value)
                return options[i].name;
        } else {
            int64_t value;
            memcpy(&value, field, sizeof value);
            if (value != UNSET)
                return options[i].name;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------
 * The tasks and their fate
 * ------------------------------------------------------------------------ */

enum item_state {
    ITEM_INVALID,   /* rejected by the codec, never sent */
    ITEM_READY,     /* valid, not handed to the producer yet */
    ITEM_SENT,      /* handed over, report outstanding */
    ITEM_DELIVERED, /* acknowledged */
    ITEM_FAILED,    /* refused or reported failed */
};

/* One input task: a line of the file, or the task from flags (line 0). */
struct item {
    size_t line; /* 1-based input line; 0: from flags */
    enum item_state state;
    struct baton_task *task;         /* owned until submitted */
    struct baton_task_error *reject; /* owned; ITEM_INVALID only */
    char *id;                        /* owned, once submitted */
    char *queue;                     /* owned, once submitted */
    int32_t partition;
    int64_t offset;
    char *error; /* owned; why ITEM_FAILED */
};

struct run {
    const struct submit_config *config;
    struct item *items;
    size_t count, cap;
    size_t invalid, delivered, failed, sent;
    size_t printed;     /* items[0..printed) are reported */
    int progress;       /* 1: draw the progress line */
    int progress_drawn; /* 1: the line is on screen now */
    int stdout_tty;     /* 1: stdout shares the terminal */
    int64_t progress_at_ms;
    int64_t started_ms;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void progress_clear(struct run *run) {
    if (run->progress_drawn) {
        fputs("\r\033[K", stderr);
        run->progress_drawn = 0;
    }
}

static void progress_draw(struct run *run) {
    if (!run->progress)
        return;
    int64_t now = baton_time_mono_ms();
    if (now - run->progress_at_ms < PROGRESS_EVERY_MS)
        return;
    run->progress_at_ms = now;
    size_t total = run->count - (run->config->skip_invalid ? run->invalid : 0);
    fprintf(stderr, "\r\033[K" PROG ": sent %zu/%zu, delivered %zu, failed %zu", run->sent, total,
            run->delivered, run->failed);
    fflush(stderr);
    run->progress_drawn = 1;
}

/* Prints a complaint about `item` on stderr, naming its line. */
static void complain(struct run *run, const struct item *item, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void complain(struct run *run, const struct item *item, const char *fmt, ...) {
    progress_clear(run);
    if (item->line)
        fprintf(stderr, PROG ": line %zu: ", item->line);
    else
        fprintf(stderr, PROG ": ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void print_json(json_t *obj) {
    if (!obj)
        return;
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text) {
        puts(text);
        free(text);
    }
    json_decref(obj);
}

/* The object --json prints for `item`: where it landed, or why not. */
static json_t *item_json(const struct item *item, const char *topic, const char *not_sent_why) {
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (item->line)
        json_object_set_new(o, "line", json_integer((json_int_t)item->line));
    const char *id = item->id ? item->id : item->task ? item->task->id : NULL;
    const char *queue = item->queue ? item->queue : item->task ? item->task->queue : NULL;
    if (id)
        json_object_set_new(o, "id", json_string(id));
    if (queue)
        json_object_set_new(o, "queue", json_string(queue));
    switch (item->state) {
    case ITEM_DELIVERED:
        json_object_set_new(o, "topic", json_string(topic));
        json_object_set_new(o, "partition", json_integer(item->partition));
        json_object_set_new(o, "offset", json_integer(item->offset));
        break;
    case ITEM_INVALID:
        json_object_set_new(o, "error", json_string("invalid"));
        json_object_set_new(o, "reason", json_string(baton_task_reason_str(item->reject->reason)));
        json_object_set_new(o, "field", json_string(item->reject->field));
        json_object_set_new(o, "detail", json_string(item->reject->detail));
        break;
    case ITEM_FAILED:
        json_object_set_new(o, "error", json_string("not_delivered"));
        json_object_set_new(o, "detail", json_string(item->error ? item->error : ""));
        break;
    case ITEM_READY:
    case ITEM_SENT:
        json_object_set_new(o, "error", json_string("not_sent"));
        json_object_set_new(o, "detail", json_string(not_sent_why));
        break;
    }
    return o;
}

/*
 * Reports items in input order as their fate becomes known: the id on
 * stdout (or the --json object), a failure on stderr. An invalid line was
 * already named on stderr when it was read.
 */
static void report_ready_items(struct run *run) {
    const struct submit_config *c = run->config;
    while (run->printed < run->count) {
        struct item *item = &run->items[run->printed];
        if (item->state == ITEM_READY || item->state == ITEM_SENT)
            break;
        if (item->state == ITEM_DELIVERED && !c->json) {
            if (run->stdout_tty)
                progress_clear(run);
            puts(item->id);
        } else if (item->state == ITEM_FAILED) {
            complain(run, item, "task %s not delivered: %s", item->id ? item->id : "(no id)",
                     item->error ? item->error : "unknown error");
        }
        if (c->json) {
            if (run->stdout_tty)
                progress_clear(run);
            print_json(item_json(item, c->topic, ""));
        }
        run->printed++;
    }
}

/* @locality the main thread, inside baton_submit/poll/flush. */
static void on_delivery(const struct baton_delivery *report, void *opaque) {
    struct run *run = opaque;
    struct item *item = report->msg_opaque;
    if (report->err == BATON_OK) {
        item->state = ITEM_DELIVERED;
        item->partition = report->partition;
        item->offset = report->offset;
        run->delivered++;
    } else {
        item->state = ITEM_FAILED;
        item->error = strdup(report->errstr);
        run->failed++;
    }
}

static struct item *add_item(struct run *run, size_t line) {
    if (run->count == run->cap) {
        size_t cap = run->cap ? run->cap * 2 : 1024;
        struct item *items = realloc(run->items, cap * sizeof *items);
        if (!items)
            return NULL;
        run->items = items;
        run->cap = cap;
    }
    struct item *item = &run->items[run->count++];
    memset(item, 0, sizeof *item);
    item->line = line;
    item->partition = -1;
    item->offset = -1;
    return item;
}

/* Parses one task text into `item` (valid or invalid). BATON_ERR_NOMEM only. */
static baton_err_t parse_item(struct run *run, struct item *item, const char *text, size_t len) {
    struct baton_task_parse_opts opts = {
        .max_payload_bytes = (size_t)run->config->max_payload_bytes,
        .id_optional = 1,
    };
    struct baton_task_error reject;
    baton_err_t err = baton_task_parse(text, len, &opts, NULL, &item->task, &reject);
    if (err == BATON_OK) {
        item->state = ITEM_READY;
        return BATON_OK;
    }
    if (err != BATON_ERR_INVALID)
        return err;
    item->state = ITEM_INVALID;
    if (!(item->reject = malloc(sizeof *item->reject)))
        return BATON_ERR_NOMEM;
    *item->reject = reject;
    run->invalid++;
    complain(run, item, "%s: %s", baton_task_reason_str(reject.reason), reject.detail);
    return BATON_OK;
}

/* Reads JSON lines from `in`; blank lines are skipped but counted. */
static baton_err_t read_lines(struct run *run, FILE *in, const char *name, char *errstr,
                              size_t errstr_size) {
    char *line = NULL;
    size_t line_cap = 0;
    size_t number = 0;
    ssize_t len;
    baton_err_t err = BATON_OK;
    while ((len = getline(&line, &line_cap, in)) >= 0) {
        number++;
        size_t n = (size_t)len;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        size_t blank = 0;
        while (blank < n && (line[blank] == ' ' || line[blank] == '\t'))
            blank++;
        if (blank == n)
            continue;
        struct item *item = add_item(run, number);
        if (!item || (err = parse_item(run, item, line, n)) != BATON_OK) {
            err = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory at line %zu",
                               number);
            break;
        }
    }
    if (!err && ferror(in))
        err = baton_seterr(errstr, errstr_size, BATON_ERR_IO, "read %s: %s", name, strerror(errno));
    free(line);
    return err;
}

/* The task from flags as a v1 JSON object, then parsed like a line, so both
 * paths give the same checks and the same reasons. */
static baton_err_t task_from_flags(struct run *run, json_t *meta, char *errstr,
                                   size_t errstr_size) {
    const struct submit_config *c = run->config;
    struct item *item = add_item(run, 0);
    json_t *obj = json_object();
    if (!item || !obj) {
        json_decref(obj);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    json_object_set_new(obj, "type", json_string(c->type));
    if (c->id)
        json_object_set_new(obj, "id", json_string(c->id));
    if (c->queue)
        json_object_set_new(obj, "queue", json_string(c->queue));
    if (c->priority != UNSET)
        json_object_set_new(obj, "priority", json_integer(c->priority));
    if (c->payload) {
        json_error_t jerr;
        json_t *payload = json_loads(c->payload, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!payload) {
            json_decref(obj);
            item->state = ITEM_INVALID;
            item->reject = calloc(1, sizeof *item->reject);
            if (!item->reject)
                return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
            item->reject->reason = BATON_TASK_INVALID_JSON;
            snprintf(item->reject->field, sizeof item->reject->field, "payload");
            snprintf(item->reject->detail, sizeof item->reject->detail,
                     "--payload is not valid JSON: %s (at character %d)", jerr.text, jerr.position);
            run->invalid++;
            complain(run, item, "%s: %s", "invalid_json", item->reject->detail);
            // NOLINTNEXTLINE(clang-analyzer-unix.Malloc): item is in run->items, freed with the run
            return BATON_OK;
        }
        json_object_set_new(obj, "payload", payload);
    }
    if (c->max_attempts != UNSET)
        json_object_set_new(obj, "max_attempts", json_integer(c->max_attempts));
    if (c->timeout_ms != UNSET)
        json_object_set_new(obj, "timeout_ms", json_integer(c->timeout_ms));
    if (c->delay_ms != UNSET)
        json_object_set_new(obj, "delay_ms", json_integer(c->delay_ms));
    if (c->run_at)
        json_object_set_new(obj, "run_at", json_string(c->run_at));
    if (c->deadline)
        json_object_set_new(obj, "deadline", json_string(c->deadline));
    if (json_object_size(meta))
        json_object_set(obj, "meta", meta);
    /* json_string() is NULL for text that is not UTF-8, and set_new then
     * leaves the field out: the codec would report a missing field, which
     * would be misleading. */
    static const char *const fields[] = {"type", "id", "queue", "run_at", "deadline"};
    static const char *const flags[] = {"type", "id", "queue", "run-at", "deadline"};
    const char *const values[] = {c->type, c->id, c->queue, c->run_at, c->deadline};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (values[i] && !json_object_get(obj, fields[i])) {
            json_decref(obj);
            return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                                "--%s: the value is not valid UTF-8", flags[i]);
        }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(obj);
    if (!text)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    baton_err_t err = parse_item(run, item, text, strlen(text));
    free(text);
    if (err)
        return baton_seterr(errstr, errstr_size, err, "out of memory");
    return BATON_OK;
}

/* ---------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

/* Hands every ready item to the producer, in input order. */
static void send_items(struct run *run, baton_producer_t *producer) {
    char errstr[512];
    for (size_t i = 0; i < run->count && !interrupted; i++) {
        struct item *item = &run->items[i];
        if (item->state != ITEM_READY)
            continue;
        baton_err_t err = baton_submit(producer, item->task, NULL, item, errstr, sizeof errstr);
        /* Keep what the report needs, drop the rest of the task now. */
        item->id = item->task->id;
        item->queue = item->task->queue;
        item->task->id = NULL;
        item->task->queue = NULL;
        baton_task_destroy(item->task);
        item->task = NULL;
        if (err == BATON_OK) {
            item->state = ITEM_SENT;
            run->sent++;
        } else {
            item->state = ITEM_FAILED;
            item->error = strdup(errstr);
            run->failed++;
        }
        if ((i & (POLL_EVERY - 1)) == 0) {
            baton_producer_poll(producer, 0);
            report_ready_items(run);
            progress_draw(run);
        }
    }
    /* Wait for every report; librdkafka gives each one within the delivery
     * timeout, so this ends. Short flushes keep the progress line alive. */
    while (baton_producer_flush(producer, 100) != BATON_OK) {
        report_ready_items(run);
        progress_draw(run);
    }
    report_ready_items(run);
}

/* Reports the items never sent (input rejected or interrupted). */
static void report_unsent(struct run *run, const char *why) {
    for (; run->printed < run->count; run->printed++) {
        struct item *item = &run->items[run->printed];
        if (run->config->json)
            print_json(item_json(item, run->config->topic, why));
    }
}

static void free_run(struct run *run) {
    for (size_t i = 0; i < run->count; i++) {
        struct item *item = &run->items[i];
        baton_task_destroy(item->task);
        free(item->reject);
        free(item->id);
        free(item->queue);
        free(item->error);
    }
    free(run->items);
}

/* ---------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

/* Parses the command line. Returns 0 to go on, or the exit status. */
static int parse_command_line(int argc, char **argv, struct submit_config *config, json_t *meta,
                              const char **input) {
    char errstr[1024];
    memset(config, 0, sizeof *config);
    config->priority = config->delay_ms = config->max_attempts = config->timeout_ms = UNSET;
    /* The only positional argument is a lone "-" (stdin), anywhere among
     * the flags; "--file -" is the flag's value. */
    const struct baton_opt_set set = {options, OPTION_COUNT, config};
    const char *positional[1] = {NULL};
    int npositional = 0;
    baton_err_t err = baton_config_init(options, OPTION_COUNT, config, errstr, sizeof errstr);
    if (!err)
        err = baton_config_args(&set, 1, argc, argv, positional, 1, &npositional, errstr,
                                sizeof errstr);
    if (err == BATON_ERR_HELP) {
        baton_config_help(stdout, usage_line, summary, options, OPTION_COUNT);
        return -1;
    }
    int stdin_given = npositional == 1 && strcmp(positional[0], "-") == 0;
    if (!err && npositional == 1 && !stdin_given)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG, "unexpected argument '%s'",
                           positional[0]);
    *input = config->file;
    if (!err && stdin_given && *input)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "give either --file or '-' (stdin), not both");
    if (stdin_given)
        *input = "-";
    if (!err)
        err = parse_meta(config->meta, meta, errstr, sizeof errstr);
    const char *task_flag = err ? NULL : first_task_flag(config);
    if (!err && *input && task_flag)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--%s sets a field of the task given by flags; with JSON lines "
                           "input each line carries its own fields",
                           task_flag);
    if (!err && !*input && !config->type)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           task_flag ? "--type is required for a task given by flags"
                                     : "nothing to submit: give --type TYPE for one task, or "
                                       "--file PATH (or -) for JSON lines; see --help");
    if (!err && baton_log_level_parse(config->log_level, &baton_log_threshold))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "--log-level: unknown level '%s'", config->log_level);
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct submit_config config;
    json_t *meta = json_object();
    const char *input = NULL;
    if (!meta) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_REJECTED;
    }
    int rc = parse_command_line(argc, argv, &config, meta, &input);
    if (rc) {
        json_decref(meta);
        baton_config_free(options, OPTION_COUNT, &config);
        return rc < 0 ? 0 : rc;
    }

    struct run run = {.config = &config, .started_ms = baton_time_mono_ms()};
    char errstr[1024];
    baton_producer_t *producer = NULL;
    FILE *in = NULL;

    /* Kafka settings are checked before reading a long input (a bad one is
     * a usage error), but the producer, which starts connecting at once, is
     * made only once there is something to send. */
    rd_kafka_conf_t *check =
        baton_kafka_conf_new(config.kafka_brokers, NULL, 0, config.kafka_config,
                             config.kafka_config_file, errstr, sizeof errstr);
    if (!check) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EXIT_USAGE;
        goto done;
    }
    rd_kafka_conf_destroy(check);

    baton_err_t err;
    if (input) {
        in = strcmp(input, "-") == 0 ? stdin : fopen(input, "r");
        if (!in) {
            fprintf(stderr, PROG ": open %s: %s\n", input, strerror(errno));
            rc = EXIT_USAGE;
            goto done;
        }
        err =
            read_lines(&run, in, strcmp(input, "-") == 0 ? "stdin" : input, errstr, sizeof errstr);
    } else {
        err = task_from_flags(&run, meta, errstr, sizeof errstr);
    }
    if (err) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = err == BATON_ERR_CONFIG ? EXIT_USAGE : EXIT_REJECTED;
        goto done;
    }

    if (run.invalid && !config.skip_invalid) {
        report_unsent(&run, "other lines were rejected, so nothing was sent");
        if (input)
            fprintf(stderr,
                    PROG ": %zu of %zu lines rejected; nothing sent (--skip-invalid sends the "
                         "%zu valid ones)\n",
                    run.invalid, run.count, run.count - run.invalid);
        rc = EXIT_REJECTED;
        goto done;
    }

    struct baton_producer_config pconf = {
        .kafka_brokers = config.kafka_brokers,
        .kafka_config = config.kafka_config,
        .kafka_config_file = config.kafka_config_file,
        .topic = config.topic,
        .max_payload_bytes = (size_t)config.max_payload_bytes,
        .delivery_timeout_ms = config.delivery_timeout_ms,
        .on_delivery = on_delivery,
        .opaque = &run,
    };
    producer = baton_producer_new(&pconf, errstr, sizeof errstr);
    if (!producer) {
        fprintf(stderr, PROG ": %s\n", errstr);
        rc = EXIT_USAGE;
        goto done;
    }

    /* Ctrl-C stops sending, waits for the reports of what was sent and
     * says what was not; a second one kills (SA_RESETHAND). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    size_t to_send = run.count - run.invalid;
    run.progress = isatty(STDERR_FILENO) && to_send >= PROGRESS_MIN_TASKS;
    run.stdout_tty = isatty(STDOUT_FILENO);
    send_items(&run, producer);
    size_t not_sent = 0;
    for (size_t i = run.printed; i < run.count; i++)
        not_sent += run.items[i].state == ITEM_READY;
    report_unsent(&run, "interrupted before it was sent");
    progress_clear(&run);

    if (run.progress)
        fprintf(stderr, PROG ": delivered %zu tasks in %.2f s\n", run.delivered,
                (double)(baton_time_mono_ms() - run.started_ms) / 1000.0);
    if (run.failed) {
        fprintf(stderr, PROG ": %zu of %zu tasks not delivered:", run.failed, to_send);
        size_t named = 0;
        for (size_t i = 0; i < run.count && named < 20; i++)
            if (run.items[i].state == ITEM_FAILED) {
                fprintf(stderr, " %s", run.items[i].id ? run.items[i].id : "(no id)");
                named++;
            }
        fprintf(stderr, "%s\n", run.failed > named ? " ... (each one is named above)" : "");
    }
    if (not_sent)
        fprintf(stderr, PROG ": interrupted: %zu tasks not sent\n", not_sent);
    if (run.invalid)
        fprintf(stderr, PROG ": %zu invalid lines skipped\n", run.invalid);
    rc = run.failed || not_sent ? EXIT_REJECTED : 0;

done:
    if (in && in != stdin)
        fclose(in);
    fflush(stdout);
    baton_producer_destroy(producer);
    free_run(&run);
    json_decref(meta);
    baton_config_free(options, OPTION_COUNT, &config);
    return rc;
}
