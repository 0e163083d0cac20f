/*
 * transition.c - the typed calls of baton's Lua scripts (see transition.h).
 *
 * Each call is built the same way: the script's KEYS come from its row of
 * baton_tr_scripts[] (offsets into struct baton_queue_keys, so the key
 * order is written once, next to the header text it must match), then its
 * ARGV in the documented order. call_send() refuses a call whose argument
 * count disagrees with the table: a programming error caught on the first
 * run of any test, not a script reading the wrong position. Replies are
 * read by take(), which turns error replies into baton_err_t codes; the
 * parse_* functions check each answer's shape.
 */
#include "transition.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_script.h"

/* ------------------------------------------------------------ the table */

#define QK(name)                                                                                   \
    { #name, offsetof(struct baton_queue_keys, name) }
#define PREFIX_DOC "task key prefix"
#define RETENTION_DOC "retention of terminal tasks, ms"

static const struct baton_tr_key ack_keys[] = {{"events stream", -1}};
static const char *const ack_args[] = {"consumer group"};

static const struct baton_tr_key cancel_keys[] = {QK(ready), QK(scheduled), QK(deadline),
                                                  QK(events)};
static const char *const cancel_args[] = {PREFIX_DOC, "id", RETENTION_DOC};

static const struct baton_tr_key claim_keys[] = {QK(ready), QK(running), QK(deadline), QK(events),
                                                 QK(paused)};
static const char *const claim_args[] = {PREFIX_DOC, "worker id", "lease length, ms",
                                         "most tasks to claim", RETENTION_DOC};

static const struct baton_tr_key complete_keys[] = {QK(running), QK(events)};
static const char *const complete_args[] = {PREFIX_DOC, RETENTION_DOC};
/* The group of ARGV per task that follows: id, token, result. */
#define COMPLETE_PER_TASK 3

static const struct baton_tr_key enqueue_keys[] = {QK(ready), QK(scheduled), QK(deadline),
                                                   QK(seq),   QK(events),    QK(notify)};
static const char *const enqueue_args[] = {PREFIX_DOC, RETENTION_DOC, "number of tasks N"};
/* The group of ARGV per task that follows, in this order. */
#define ENQUEUE_PER_TASK 11

static const struct baton_tr_key expire_keys[] = {QK(deadline), QK(ready), QK(scheduled),
                                                  QK(events)};
static const char *const expire_args[] = {PREFIX_DOC, "most tasks per call", RETENTION_DOC};

static const struct baton_tr_key fail_keys[] = {QK(running), QK(scheduled), QK(dead), QK(events)};
static const char *const fail_args[] = {PREFIX_DOC,
                                        "id",
                                        "fencing token",
                                        "error text",
                                        "reason",
                                        "backoff base, ms",
                                        "backoff cap, ms",
                                        "jitter in [0, 1)",
                                        "1 = permanent failure, do not retry",
                                        RETENTION_DOC};

static const struct baton_tr_key finish_canceled_keys[] = {QK(running), QK(events)};
static const char *const finish_canceled_args[] = {PREFIX_DOC, "id", "fencing token",
                                                   RETENTION_DOC};

static const struct baton_tr_key heartbeat_keys[] = {{"the worker's hash", -1},
                                                     {"\"" BATON_KEY_WORKERS "\"", -1}};
static const char *const heartbeat_args[] = {"worker id", "time to live, ms"};

static const struct baton_tr_key orphans_keys[] = {{"events stream", -1}};
static const char *const orphans_args[] = {"consumer group", "consumer",
                                           "most entries looked at in this call"};

static const struct baton_tr_key promote_keys[] = {QK(scheduled), QK(ready), QK(seq), QK(events),
                                                   QK(notify)};
static const char *const promote_args[] = {PREFIX_DOC, "most tasks to move in this call"};

static const struct baton_tr_key reclaim_keys[] = {QK(running), QK(ready),  QK(dead),
                                                   QK(seq),     QK(events), QK(notify)};
static const char *const reclaim_args[] = {PREFIX_DOC, "most tasks per call", RETENTION_DOC};

static const struct baton_tr_key renew_keys[] = {QK(running)};
static const char *const renew_args[] = {PREFIX_DOC, "lease length, ms"};

static const struct baton_tr_key requeue_keys[] = {QK(running), QK(ready), QK(seq), QK(events),
                                                   QK(notify)};
static const char *const requeue_args[] = {PREFIX_DOC, "id", "fencing token", RETENTION_DOC};

static const struct baton_tr_key retry_keys[] = {QK(dead), QK(ready), QK(seq), QK(events),
                                                 QK(notify)};
static const char *const retry_args[] = {PREFIX_DOC, "id"};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define ROW(file, stem, rest)                                                                      \
    { file, N(stem##_keys), stem##_keys, N(stem##_args), stem##_args, rest }

const struct baton_tr_script baton_tr_scripts[BATON_TR_SCRIPT_COUNT] = {
    [BATON_TR_ACK] = ROW("ack.lua", ack, "then the ids of the entries written"),
    [BATON_TR_CANCEL] = ROW("cancel.lua", cancel, NULL),
    [BATON_TR_CLAIM] = ROW("claim.lua", claim, NULL),
    [BATON_TR_COMPLETE] =
        ROW("complete.lua", complete, "then triples: task id, fencing token, result"),
    [BATON_TR_ENQUEUE] = ROW("enqueue.lua", enqueue, "then N groups of 11 values"),
    [BATON_TR_EXPIRE] = ROW("expire.lua", expire, NULL),
    [BATON_TR_FAIL] = ROW("fail.lua", fail, NULL),
    [BATON_TR_FINISH_CANCELED] = ROW("finish_canceled.lua", finish_canceled, NULL),
    [BATON_TR_HEARTBEAT] = ROW("heartbeat.lua", heartbeat, "then field/value pairs"),
    [BATON_TR_ORPHANS] = ROW("orphans.lua", orphans, NULL),
    [BATON_TR_PROMOTE] = ROW("promote.lua", promote, NULL),
    [BATON_TR_RECLAIM] = ROW("reclaim.lua", reclaim, NULL),
    [BATON_TR_RENEW] = ROW("renew.lua", renew, "then pairs: task id, fencing token"),
    [BATON_TR_REQUEUE] = ROW("requeue.lua", requeue, NULL),
    [BATON_TR_RETRY] = ROW("retry.lua", retry, NULL),
};

baton_err_t (*baton_tr_append_hook)(baton_redis_t *r, const char *name, int numkeys, int argc,
                                    const char **argv, const size_t *lens, char *errstr,
                                    size_t errstr_size);
baton_err_t (*baton_tr_get_reply_hook)(baton_redis_t *r, redisReply **reply, char *errstr,
                                       size_t errstr_size);

/* ------------------------------------------------------- error replies */

/* Error-reply codes: the scripts' own and Redis's stream errors. */
static const struct {
    const char *code;
    baton_err_t err;
    int script; /* 1: a script's answer, whose message stands alone */
} reply_codes[] = {
    {"STALE", BATON_ERR_STALE_TOKEN, 1}, {"NOTFOUND", BATON_ERR_NOT_FOUND, 1},
    {"STATE", BATON_ERR_STATE, 1},       {"NOGROUP", BATON_ERR_NOT_FOUND, 0},
    {"BUSYGROUP", BATON_ERR_EXISTS, 0},  {"UNBLOCKED", BATON_ERR_NOT_FOUND, 0},
};

baton_err_t baton_tr_reply_error(const redisReply *reply, const char *what, char *errstr,
                                 size_t errstr_size) {
    const char *text = reply && reply->str ? reply->str : "";
    size_t word = strcspn(text, " ");
    for (size_t i = 0; i < N(reply_codes); i++) {
        if (strlen(reply_codes[i].code) != word || strncmp(text, reply_codes[i].code, word) != 0)
            continue;
        const char *message = text[word] ? text + word + 1 : text;
        if (reply_codes[i].script)
            return baton_seterr(errstr, errstr_size, reply_codes[i].err, "%s", message);
        return baton_seterr(errstr, errstr_size, reply_codes[i].err, "Redis %s: %s", what, text);
    }
    return baton_seterr(errstr, errstr_size, BATON_ERR_REFUSED, "Redis %s: %s", what, text);
}

baton_err_t baton_tr_command(baton_redis_t *r, redisReply **reply, int argc, const char **argv,
                             char *errstr, size_t errstr_size) {
    *reply = NULL;
    baton_redis_pipeline_begin(r);
    baton_err_t err = baton_redis_append(r, argc, argv, NULL, errstr, errstr_size);
    if (!err)
        err = baton_redis_get_reply(r, reply, errstr, errstr_size);
    if (!err && (*reply)->type == REDIS_REPLY_ERROR) {
        err = baton_tr_reply_error(*reply, argv[0], errstr, errstr_size);
        freeReplyObject(*reply);
        *reply = NULL;
    }
    return err;
}

/* ------------------------------------------------------ building a call */

#define CALL_STACK 24 /* room for every fixed-size call */
#define CALL_NUMS 8   /* numbers one fixed-size call formats */

struct call {
    baton_tr_script_id_t id;
    const char **argv; /* stack_argv, or malloc'd for large calls */
    size_t *lens;
    size_t argc, cap;
    const char *stack_argv[CALL_STACK];
    size_t stack_lens[CALL_STACK];
    char nums[CALL_NUMS][32];
    int nnums;
    baton_err_t failed; /* call_start's error, returned again by call_send */
};

static void call_arg(struct call *c, const char *value, size_t len) {
    if (c->argc < c->cap) {
        c->argv[c->argc] = value;
        c->lens[c->argc] = len;
    }
    c->argc++; /* an overflow is reported by call_send */
}

static void call_str(struct call *c, const char *value) {
    call_arg(c, value, strlen(value));
}

static void call_num(struct call *c, long long value) {
    if (c->nnums >= CALL_NUMS) {
        c->argc++;
        c->cap = 0; /* reported by call_send */
        return;
    }
    char *buf = c->nums[c->nnums++];
    int n = snprintf(buf, sizeof c->nums[0], "%lld", value);
    call_arg(c, buf, (size_t)n);
}

static void call_free(struct call *c) {
    if (c->argv && c->argv != c->stack_argv) {
        free(c->argv);
        free(c->lens);
    }
    c->argv = NULL;
    c->lens = NULL;
}

/*
 * Starts call `id` with room for `extra` ARGV past the fixed ones, and
 * adds its KEYS: from `keys` by the table's offsets, and `own[]` (NULL-
 * terminated) in order for the keys the table marks as given by the
 * function. BATON_ERR_NOMEM when a large call's arrays cannot be
 * allocated, BATON_ERR_INVALID when a key the table names is not given.
 * On an error the call stays usable: the arguments added next are only
 * counted, and call_send returns the same error, so a call of fixed size
 * (which cannot fail to allocate) may leave the check to call_send.
 */
static baton_err_t call_start(struct call *c, baton_tr_script_id_t id,
                              const struct baton_queue_keys *keys, const char *const *own,
                              size_t extra, char *errstr, size_t errstr_size) {
    const struct baton_tr_script *s = &baton_tr_scripts[id];
    c->id = id;
    c->argc = 0;
    c->nnums = 0;
    c->failed = BATON_OK;
    c->cap = s->nkeys + s->nargs + extra;
    c->argv = c->stack_argv;
    c->lens = c->stack_lens;
    if (c->cap > CALL_STACK) {
        c->argv = malloc(c->cap * sizeof *c->argv);
        c->lens = malloc(c->cap * sizeof *c->lens);
        if (!c->argv || !c->lens) {
            free(c->argv);
            free(c->lens);
            c->argv = c->stack_argv;
            c->lens = c->stack_lens;
            c->cap = 0;
            return c->failed = baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        }
    }
    size_t owned = 0;
    for (size_t k = 0; k < s->nkeys; k++) {
        int field = s->keys[k].field;
        const char *key = field >= 0 ? (keys ? (const char *)keys + field : NULL)
                                     : (own && own[owned] ? own[owned++] : NULL);
        if (!key) {
            call_free(c);
            c->argv = c->stack_argv;
            c->lens = c->stack_lens;
            c->cap = 0;
            return c->failed =
                       baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                                    "%s: KEYS[%zu] not given by the caller", s->name, k + 1);
        }
        call_str(c, key);
    }
    return BATON_OK;
}

/* Appends the call to the pipeline; frees what call_start allocated. */
static baton_err_t call_send(baton_redis_t *r, struct call *c, char *errstr, size_t errstr_size) {
    const struct baton_tr_script *s = &baton_tr_scripts[c->id];
    size_t fixed = s->nkeys + s->nargs;
    baton_err_t err;
    if (c->failed)
        err = c->failed; /* errstr written by call_start */
    else if (c->argc > c->cap || c->argc < fixed || (!s->rest && c->argc != fixed))
        err = baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                           "%s: %zu arguments built, the script takes %zu KEYS and %zu ARGV%s",
                           s->name, c->argc, s->nkeys, s->nargs, s->rest ? " and more" : "");
    else if (baton_tr_append_hook)
        err = baton_tr_append_hook(r, s->name, (int)s->nkeys, (int)c->argc, c->argv, c->lens,
                                   errstr, errstr_size);
    else
        err = baton_redis_append_script(r, s->name, (int)s->nkeys, (int)c->argc, c->argv, c->lens,
                                        errstr, errstr_size);
    call_free(c);
    return err;
}

/* Before a single call: a fresh pipeline (the hooks own theirs). */
static void begin(baton_redis_t *r) {
    if (!baton_tr_append_hook)
        baton_redis_pipeline_begin(r);
}

/* ---------------------------------------------------- reading a reply */

/*
 * Reads the next reply, the answer of script `id`. An error reply is
 * mapped (baton_tr_reply_error) and freed; `*noscript` (may be NULL) is
 * set when it was NOSCRIPT, which a single call retries once. Otherwise
 * *reply is the answer, for the caller to free.
 */
static baton_err_t take(baton_redis_t *r, baton_tr_script_id_t id, redisReply **reply,
                        int *noscript, char *errstr, size_t errstr_size) {
    *reply = NULL;
    baton_err_t err = baton_tr_get_reply_hook
                          ? baton_tr_get_reply_hook(r, reply, errstr, errstr_size)
                          : baton_redis_get_reply(r, reply, errstr, errstr_size);
    if (err)
        return err;
    if (!*reply)
        return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "%s: no reply",
                            baton_tr_scripts[id].name);
    if ((*reply)->type != REDIS_REPLY_ERROR)
        return BATON_OK;
    char what[64];
    snprintf(what, sizeof what, "script %s", baton_tr_scripts[id].name);
    if ((*reply)->str && strncmp((*reply)->str, "NOSCRIPT", 8) == 0) {
        /* Lost by a restarted or flushed Redis; reloaded by the next
         * append on this connection, so a retry succeeds. */
        if (r)
            baton_redis_scripts_lost(r);
        if (noscript)
            *noscript = 1;
        err =
            baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis %s: %s", what, (*reply)->str);
    } else {
        err = baton_tr_reply_error(*reply, what, errstr, errstr_size);
    }
    freeReplyObject(*reply);
    *reply = NULL;
    /* Never BATON_OK here, whatever the mapping says: the callers read
     * *reply on success, and the static analyser does not follow
     * baton_tr_reply_error far enough to know it. */
    return err ? err : BATON_ERR_REDIS;
}

static baton_err_t bad_reply(baton_tr_script_id_t id, const char *why, char *errstr,
                             size_t errstr_size) {
    return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "%s: unexpected reply (%s)",
                        baton_tr_scripts[id].name, why);
}

/* A number the scripts answer as an integer or as num() text. */
static int reply_ll(const redisReply *e, long long *out) {
    if (e->type == REDIS_REPLY_INTEGER) {
        *out = e->integer;
        return 0;
    }
    if ((e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) && e->str) {
        char *end;
        *out = strtoll(e->str, &end, 10);
        return end == e->str || *end ? -1 : 0;
    }
    return -1;
}

/* Reads an array answer of exactly `n` numbers into out[0..n). */
static baton_err_t read_numbers(baton_redis_t *r, baton_tr_script_id_t id, long long *out, size_t n,
                                int *noscript, char *errstr, size_t errstr_size) {
    redisReply *reply;
    baton_err_t err = take(r, id, &reply, noscript, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
        err = bad_reply(id, "not an array of the expected length", errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++)
        if (reply_ll(reply->element[i], &out[i]))
            err = bad_reply(id, "not a number", errstr, errstr_size);
    freeReplyObject(reply);
    return err;
}

/* Reads an answer that is the integer 1 (complete, finish_canceled,
 * requeue, retry). */
static baton_err_t read_one(baton_redis_t *r, baton_tr_script_id_t id, int *noscript, char *errstr,
                            size_t errstr_size) {
    redisReply *reply;
    baton_err_t err = take(r, id, &reply, noscript, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1)
        err = bad_reply(id, "not 1", errstr, errstr_size);
    freeReplyObject(reply);
    return err;
}

/*
 * The single-call form: APPEND (an expression appending the call) then
 * READ (an expression reading its reply, which sets noscript_ through
 * &noscript_), once more after a NOSCRIPT answer: the scripts are then
 * reloaded by the next append (baton_redis_ensure).
 */
#define ONE_CALL(r, APPEND, READ)                                                                  \
    do {                                                                                           \
        baton_err_t err_ = BATON_OK;                                                               \
        for (int attempt_ = 0; attempt_ < 2; attempt_++) {                                         \
            int noscript_ = 0;                                                                     \
            begin(r);                                                                              \
            err_ = (APPEND);                                                                       \
            if (!err_)                                                                             \
                err_ = (READ);                                                                     \
            if (!noscript_)                                                                        \
                break;                                                                             \
        }                                                                                          \
        return err_;                                                                               \
    } while (0)

/* --------------------------------------------------------------- enqueue */

/* "" for BATON_TIME_UNSET, else the number: enqueue.lua's "absent". */
static int format_ms(char *buf, size_t size, int64_t ms) {
    if (ms == BATON_TIME_UNSET) {
        buf[0] = '\0';
        return 0;
    }
    return snprintf(buf, size, "%" PRId64, ms);
}

/* The numbers of one task's ARGV group, formatted. */
struct enqueue_text {
    char priority[8], max_attempts[24], timeout_ms[24], run_at_ms[24], delay_ms[24],
        deadline_ms[24], partition[16], offset[24];
};

baton_err_t baton_tr_append_enqueue(baton_redis_t *r, const struct baton_queue_keys *keys,
                                    int64_t retention_ms, const struct baton_tr_new_task *tasks,
                                    size_t n, char *errstr, size_t errstr_size) {
    if (n == 0)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID, "enqueue.lua: no tasks");
    struct enqueue_text *text = malloc(n * sizeof *text);
    struct call c;
    baton_err_t err = text ? call_start(&c, BATON_TR_ENQUEUE, keys, NULL, n * ENQUEUE_PER_TASK,
                                        errstr, errstr_size)
                           : baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    if (err) {
        free(text);
        return err;
    }
    call_str(&c, keys->task_prefix);
    call_num(&c, retention_ms);
    call_num(&c, (long long)n);
    for (size_t i = 0; i < n; i++) {
        const struct baton_task *t = tasks[i].task;
        struct enqueue_text *x = &text[i];
        snprintf(x->priority, sizeof x->priority, "%d", t->priority);
        snprintf(x->max_attempts, sizeof x->max_attempts, "%d", t->max_attempts);
        snprintf(x->timeout_ms, sizeof x->timeout_ms, "%" PRId64, t->timeout_ms);
        format_ms(x->run_at_ms, sizeof x->run_at_ms, t->run_at_ms);
        format_ms(x->delay_ms, sizeof x->delay_ms, t->delay_ms);
        format_ms(x->deadline_ms, sizeof x->deadline_ms, t->deadline_ms);
        snprintf(x->partition, sizeof x->partition, "%d", (int)tasks[i].partition);
        snprintf(x->offset, sizeof x->offset, "%" PRId64, tasks[i].offset);
        /* id, priority, max_attempts, timeout_ms, run_at_ms|'', delay_ms|'',
         * deadline_ms|'', kafka topic, kafka partition, kafka offset, task JSON */
        call_str(&c, t->id);
        call_str(&c, x->priority);
        call_str(&c, x->max_attempts);
        call_str(&c, x->timeout_ms);
        call_str(&c, x->run_at_ms);
        call_str(&c, x->delay_ms);
        call_str(&c, x->deadline_ms);
        call_str(&c, tasks[i].topic);
        call_str(&c, x->partition);
        call_str(&c, x->offset);
        call_arg(&c, tasks[i].json, tasks[i].json_len);
    }
    err = call_send(r, &c, errstr, errstr_size);
    free(text); /* hiredis copied the arguments into its output buffer */
    return err;
}

static baton_err_t read_enqueue(baton_redis_t *r, struct baton_tr_enqueued *out, int *noscript,
                                char *errstr, size_t errstr_size) {
    long long v[4] = {0, 0, 0, 0};
    baton_err_t err = read_numbers(r, BATON_TR_ENQUEUE, v, 4, noscript, errstr, errstr_size);
    *out = (struct baton_tr_enqueued){v[0], v[1], v[2], v[3]};
    return err;
}

baton_err_t baton_tr_read_enqueue(baton_redis_t *r, struct baton_tr_enqueued *out, char *errstr,
                                  size_t errstr_size) {
    return read_enqueue(r, out, NULL, errstr, errstr_size);
}

baton_err_t baton_tr_enqueue(baton_redis_t *r, const struct baton_queue_keys *keys,
                             int64_t retention_ms, const struct baton_tr_new_task *tasks, size_t n,
                             struct baton_tr_enqueued *out, char *errstr, size_t errstr_size) {
    ONE_CALL(r, baton_tr_append_enqueue(r, keys, retention_ms, tasks, n, errstr, errstr_size),
             read_enqueue(r, out, &noscript_, errstr, errstr_size));
}

/* ----------------------------------------------------------- maintenance */

baton_err_t baton_tr_append_promote(baton_redis_t *r, const struct baton_queue_keys *keys,
                                    int64_t batch, char *errstr, size_t errstr_size) {
    struct call c;
    call_start(&c, BATON_TR_PROMOTE, keys, NULL, 0, errstr, errstr_size);
    call_str(&c, keys->task_prefix);
    call_num(&c, batch);
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_moved(baton_redis_t *r, baton_tr_script_id_t id, struct baton_tr_moved *out,
                              int *noscript, char *errstr, size_t errstr_size) {
    long long v[2] = {0, -1};
    baton_err_t err = read_numbers(r, id, v, 2, noscript, errstr, errstr_size);
    out->moved = err ? 0 : v[0];
    out->next_ms = err ? -1 : v[1];
    return err;
}

baton_err_t baton_tr_read_promote(baton_redis_t *r, struct baton_tr_moved *out, char *errstr,
                                  size_t errstr_size) {
    return read_moved(r, BATON_TR_PROMOTE, out, NULL, errstr, errstr_size);
}

baton_err_t baton_tr_promote(baton_redis_t *r, const struct baton_queue_keys *keys, int64_t batch,
                             struct baton_tr_moved *out, char *errstr, size_t errstr_size) {
    ONE_CALL(r, baton_tr_append_promote(r, keys, batch, errstr, errstr_size),
             read_moved(r, BATON_TR_PROMOTE, out, &noscript_, errstr, errstr_size));
}

baton_err_t baton_tr_append_expire(baton_redis_t *r, const struct baton_queue_keys *keys,
                                   int64_t batch, int64_t retention_ms, char *errstr,
                                   size_t errstr_size) {
    struct call c;
    call_start(&c, BATON_TR_EXPIRE, keys, NULL, 0, errstr, errstr_size);
    call_str(&c, keys->task_prefix);
    call_num(&c, batch);
    call_num(&c, retention_ms);
    return call_send(r, &c, errstr, errstr_size);
}

baton_err_t baton_tr_read_expire(baton_redis_t *r, struct baton_tr_moved *out, char *errstr,
                                 size_t errstr_size) {
    return read_moved(r, BATON_TR_EXPIRE, out, NULL, errstr, errstr_size);
}

baton_err_t baton_tr_expire(baton_redis_t *r, const struct baton_queue_keys *keys, int64_t batch,
                            int64_t retention_ms, struct baton_tr_moved *out, char *errstr,
                            size_t errstr_size) {
    ONE_CALL(r, baton_tr_append_expire(r, keys, batch, retention_ms, errstr, errstr_size),
             read_moved(r, BATON_TR_EXPIRE, out, &noscript_, errstr, errstr_size));
}

baton_err_t baton_tr_append_reclaim(baton_redis_t *r, const struct baton_queue_keys *keys,
                                    int64_t batch, int64_t retention_ms, char *errstr,
                                    size_t errstr_size) {
    struct call c;
    call_start(&c, BATON_TR_RECLAIM, keys, NULL, 0, errstr, errstr_size);
    call_str(&c, keys->task_prefix);
    call_num(&c, batch);
    call_num(&c, retention_ms);
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_reclaim(baton_redis_t *r, struct baton_tr_reclaimed *out, int *noscript,
                                char *errstr, size_t errstr_size) {
    long long v[2] = {0, 0};
    baton_err_t err = read_numbers(r, BATON_TR_RECLAIM, v, 2, noscript, errstr, errstr_size);
    out->requeued = err ? 0 : v[0];
    out->dead = err ? 0 : v[1];
    return err;
}

baton_err_t baton_tr_read_reclaim(baton_redis_t *r, struct baton_tr_reclaimed *out, char *errstr,
                                  size_t errstr_size) {
    return read_reclaim(r, out, NULL, errstr, errstr_size);
}

baton_err_t baton_tr_reclaim(baton_redis_t *r, const struct baton_queue_keys *keys, int64_t batch,
                             int64_t retention_ms, struct baton_tr_reclaimed *out, char *errstr,
                             size_t errstr_size) {
    ONE_CALL(r, baton_tr_append_reclaim(r, keys, batch, retention_ms, errstr, errstr_size),
             read_reclaim(r, out, &noscript_, errstr, errstr_size));
}

/* --------------------------------------------------------------- history */

baton_err_t baton_tr_append_ack(baton_redis_t *r, const char *stream, const char *group,
                                const char *const *ids, size_t n, char *errstr,
                                size_t errstr_size) {
    struct call c;
    const char *own[] = {stream, NULL};
    baton_err_t err = call_start(&c, BATON_TR_ACK, NULL, own, n, errstr, errstr_size);
    if (err)
        return err;
    call_str(&c, group);
    for (size_t i = 0; i < n; i++)
        call_str(&c, ids[i]);
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_ack(baton_redis_t *r, long long *acked, long long *trimmed, int *noscript,
                            char *errstr, size_t errstr_size) {
    long long v[2] = {0, 0};
    baton_err_t err = read_numbers(r, BATON_TR_ACK, v, 2, noscript, errstr, errstr_size);
    if (acked)
        *acked = err ? 0 : v[0];
    if (trimmed)
        *trimmed = err ? 0 : v[1];
    return err;
}

baton_err_t baton_tr_read_ack(baton_redis_t *r, long long *acked, long long *trimmed, char *errstr,
                              size_t errstr_size) {
    return read_ack(r, acked, trimmed, NULL, errstr, errstr_size);
}

baton_err_t baton_tr_ack(baton_redis_t *r, const char *stream, const char *group,
                         const char *const *ids, size_t n, long long *acked, long long *trimmed,
                         char *errstr, size_t errstr_size) {
    ONE_CALL(r, baton_tr_append_ack(r, stream, group, ids, n, errstr, errstr_size),
             read_ack(r, acked, trimmed, &noscript_, errstr, errstr_size));
}

static baton_err_t append_orphans(baton_redis_t *r, const char *stream, const char *group,
                                  const char *consumer, size_t most, char *errstr,
                                  size_t errstr_size) {
    struct call c;
    const char *own[] = {stream, NULL};
    call_start(&c, BATON_TR_ORPHANS, NULL, own, 0, errstr, errstr_size);
    call_str(&c, group);
    call_str(&c, consumer);
    call_num(&c, (long long)most);
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_orphans(baton_redis_t *r, redisReply **entries, int *noscript, char *errstr,
                                size_t errstr_size) {
    baton_err_t err = take(r, BATON_TR_ORPHANS, entries, noscript, errstr, errstr_size);
    if (!err && (*entries)->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(*entries);
        *entries = NULL;
        err = bad_reply(BATON_TR_ORPHANS, "not an array", errstr, errstr_size);
    }
    return err;
}

baton_err_t baton_tr_orphans(baton_redis_t *r, const char *stream, const char *group,
                             const char *consumer, size_t most, redisReply **entries, char *errstr,
                             size_t errstr_size) {
    *entries = NULL;
    ONE_CALL(r, append_orphans(r, stream, group, consumer, most, errstr, errstr_size),
             read_orphans(r, entries, &noscript_, errstr, errstr_size));
}

/* -------------------------------------------------------------- batonctl */

static baton_err_t append_cancel(baton_redis_t *r, const struct baton_queue_keys *keys,
                                 const char *id, int64_t retention_ms, char *errstr,
                                 size_t errstr_size) {
    struct call c;
    call_start(&c, BATON_TR_CANCEL, keys, NULL, 0, errstr, errstr_size);
    call_str(&c, keys->task_prefix);
    call_str(&c, id);
    call_num(&c, retention_ms);
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_cancel(baton_redis_t *r, baton_event_t *result, int *noscript, char *errstr,
                               size_t errstr_size) {
    redisReply *reply;
    baton_err_t err = take(r, BATON_TR_CANCEL, &reply, noscript, errstr, errstr_size);
    if (err)
        return err;
    baton_event_t event;
    if ((reply->type != REDIS_REPLY_STATUS && reply->type != REDIS_REPLY_STRING) ||
        baton_event_parse(reply->str, &event) != 0 ||
        (event != BATON_EVENT_CANCELED && event != BATON_EVENT_CANCEL_REQUESTED))
        err = bad_reply(BATON_TR_CANCEL, "neither canceled nor cancel_requested", errstr,
                        errstr_size);
    else
        *result = event;
    freeReplyObject(reply);
    return err;
}

baton_err_t baton_tr_cancel(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                            int64_t retention_ms, baton_event_t *result, char *errstr,
                            size_t errstr_size) {
    ONE_CALL(r, append_cancel(r, keys, id, retention_ms, errstr, errstr_size),
             read_cancel(r, result, &noscript_, errstr, errstr_size));
}

baton_err_t baton_tr_append_retry(baton_redis_t *r, const struct baton_queue_keys *keys,
                                  const char *id, char *errstr, size_t errstr_size) {
    struct call c;
    call_start(&c, BATON_TR_RETRY, keys, NULL, 0, errstr, errstr_size);
    call_str(&c, keys->task_prefix);
    call_str(&c, id);
    return call_send(r, &c, errstr, errstr_size);
}

baton_err_t baton_tr_read_retry(baton_redis_t *r, char *errstr, size_t errstr_size) {
    return read_one(r, BATON_TR_RETRY, NULL, errstr, errstr_size);
}

baton_err_t baton_tr_retry(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                           char *errstr, size_t errstr_size) {
    ONE_CALL(r, baton_tr_append_retry(r, keys, id, errstr, errstr_size),
             read_one(r, BATON_TR_RETRY, &noscript_, errstr, errstr_size));
}

/* ---------------------------------------------------------------- worker */

void baton_tr_claim_free(struct baton_tr_claim *claim) {
    free(claim->tasks);
    if (claim->reply)
        freeReplyObject(claim->reply);
    claim->tasks = NULL;
    claim->reply = NULL;
    claim->count = 0;
}

baton_err_t baton_tr_append_claim(baton_redis_t *r, const struct baton_queue_keys *keys,
                                  const char *worker_id, int64_t lease_ms, int count,
                                  int64_t retention_ms, char *errstr, size_t errstr_size) {
    struct call c;
    call_start(&c, BATON_TR_CLAIM, keys, NULL, 0, errstr, errstr_size);
    call_str(&c, keys->task_prefix);
    call_str(&c, worker_id);
    call_num(&c, lease_ms);
    call_num(&c, count);
    call_num(&c, retention_ms);
    return call_send(r, &c, errstr, errstr_size);
}

/* The fields of one claimed task in claim.lua's flat answer. */
#define CLAIM_FIELDS 6

static baton_err_t read_claim(baton_redis_t *r, struct baton_tr_claim *out, int *noscript,
                              char *errstr, size_t errstr_size) {
    memset(out, 0, sizeof *out);
    redisReply *reply;
    baton_err_t err = take(r, BATON_TR_CLAIM, &reply, noscript, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % CLAIM_FIELDS != 0) {
        freeReplyObject(reply);
        return bad_reply(BATON_TR_CLAIM, "not groups of 6", errstr, errstr_size);
    }
    size_t n = reply->elements / CLAIM_FIELDS;
    out->reply = reply;
    out->tasks = calloc(n ? n : 1, sizeof *out->tasks);
    if (!out->tasks) {
        baton_tr_claim_free(out);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        redisReply **e = reply->element + k * CLAIM_FIELDS;
        struct baton_tr_claimed *t = &out->tasks[k];
        /* id, token, attempt, max_attempts, timeout_ms, task JSON */
        if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING) {
            baton_tr_claim_free(out);
            return bad_reply(BATON_TR_CLAIM, "a task without id or token", errstr, errstr_size);
        }
        t->id = e[0]->str;
        t->token = e[1]->str;
        /* The task is running in Redis now: a damaged hash (a field
         * missing or not a number) must still reach the caller, which
         * fails it, rather than sit out its lease. */
        if (reply_ll(e[2], &t->attempt))
            t->attempt = -1;
        if (reply_ll(e[3], &t->max_attempts))
            t->max_attempts = -1;
        if (reply_ll(e[4], &t->timeout_ms))
            t->timeout_ms = -1;
        t->task_json = e[5]->type == REDIS_REPLY_STRING ? e[5]->str : NULL;
        t->task_json_len = e[5]->type == REDIS_REPLY_STRING ? e[5]->len : 0;
    }
    out->count = n;
    return BATON_OK;
}

baton_err_t baton_tr_read_claim(baton_redis_t *r, struct baton_tr_claim *out, char *errstr,
                                size_t errstr_size) {
    return read_claim(r, out, NULL, errstr, errstr_size);
}

baton_err_t baton_tr_claim(baton_redis_t *r, const struct baton_queue_keys *keys,
                           const char *worker_id, int64_t lease_ms, int count, int64_t retention_ms,
                           struct baton_tr_claim *out, char *errstr, size_t errstr_size) {
    ONE_CALL(r,
             baton_tr_append_claim(r, keys, worker_id, lease_ms, count, retention_ms, errstr,
                                   errstr_size),
             read_claim(r, out, &noscript_, errstr, errstr_size));
}

static baton_err_t append_renew(baton_redis_t *r, const struct baton_queue_keys *keys,
                                int64_t lease_ms, const struct baton_tr_lease *leases, size_t n,
                                char *errstr, size_t errstr_size) {
    struct call c;
    baton_err_t err = call_start(&c, BATON_TR_RENEW, keys, NULL, 2 * n, errstr, errstr_size);
    if (err)
        return err;
    call_str(&c, keys->task_prefix);
    call_num(&c, lease_ms);
    for (size_t i = 0; i < n; i++) {
        call_str(&c, leases[i].id);
        call_str(&c, leases[i].token);
    }
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_renew(baton_redis_t *r, baton_tr_renewal_t *answers, size_t n,
                              int *noscript, char *errstr, size_t errstr_size) {
    redisReply *reply;
    baton_err_t err = take(r, BATON_TR_RENEW, &reply, noscript, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
        err = bad_reply(BATON_TR_RENEW, "not one answer per lease", errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++) {
        long long v;
        if (reply_ll(reply->element[i], &v) || v < BATON_TR_RENEW_REFUSED ||
            v > BATON_TR_RENEW_CANCELED)
            err = bad_reply(BATON_TR_RENEW, "an answer not 0, 1 or 2", errstr, errstr_size);
        else
            answers[i] = (baton_tr_renewal_t)v;
    }
    freeReplyObject(reply);
    return err;
}

baton_err_t baton_tr_renew(baton_redis_t *r, const struct baton_queue_keys *keys, int64_t lease_ms,
                           const struct baton_tr_lease *leases, size_t n,
                           baton_tr_renewal_t *answers, char *errstr, size_t errstr_size) {
    ONE_CALL(r, append_renew(r, keys, lease_ms, leases, n, errstr, errstr_size),
             read_renew(r, answers, n, &noscript_, errstr, errstr_size));
}

baton_err_t baton_tr_append_complete(baton_redis_t *r, const struct baton_queue_keys *keys,
                                     const struct baton_tr_success *tasks, size_t n,
                                     int64_t retention_ms, char *errstr, size_t errstr_size) {
    if (n == 0)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID, "complete.lua: no tasks");
    struct call c;
    baton_err_t err =
        call_start(&c, BATON_TR_COMPLETE, keys, NULL, n * COMPLETE_PER_TASK, errstr, errstr_size);
    if (err)
        return err;
    call_str(&c, keys->task_prefix);
    call_num(&c, retention_ms);
    for (size_t i = 0; i < n; i++) {
        call_str(&c, tasks[i].id);
        call_str(&c, tasks[i].token);
        call_arg(&c, tasks[i].result, tasks[i].result_len);
    }
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_complete(baton_redis_t *r, struct baton_tr_completion *answers, size_t n,
                                 int *noscript, char *errstr, size_t errstr_size) {
    redisReply *reply;
    baton_err_t err = take(r, BATON_TR_COMPLETE, &reply, noscript, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
        err = bad_reply(BATON_TR_COMPLETE, "not one answer per task", errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++) {
        const redisReply *e = reply->element[i];
        answers[i].why[0] = '\0';
        if (e->type == REDIS_REPLY_ERROR)
            answers[i].err = baton_tr_reply_error(e, "script complete.lua", answers[i].why,
                                                  sizeof answers[i].why);
        else if (e->type == REDIS_REPLY_INTEGER && e->integer == 1)
            answers[i].err = BATON_OK;
        else
            err = bad_reply(BATON_TR_COMPLETE, "an answer neither 1 nor an error", errstr,
                            errstr_size);
    }
    freeReplyObject(reply);
    return err;
}

baton_err_t baton_tr_read_complete(baton_redis_t *r, struct baton_tr_completion *answers, size_t n,
                                   char *errstr, size_t errstr_size) {
    return read_complete(r, answers, n, NULL, errstr, errstr_size);
}

baton_err_t baton_tr_complete_many(baton_redis_t *r, const struct baton_queue_keys *keys,
                                   const struct baton_tr_success *tasks, size_t n,
                                   int64_t retention_ms, struct baton_tr_completion *answers,
                                   char *errstr, size_t errstr_size) {
    ONE_CALL(r, baton_tr_append_complete(r, keys, tasks, n, retention_ms, errstr, errstr_size),
             read_complete(r, answers, n, &noscript_, errstr, errstr_size));
}

baton_err_t baton_tr_complete(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                              const char *token, const char *result, size_t result_len,
                              int64_t retention_ms, char *errstr, size_t errstr_size) {
    struct baton_tr_success task = {id, token, result, result_len};
    struct baton_tr_completion answer;
    baton_err_t err =
        baton_tr_complete_many(r, keys, &task, 1, retention_ms, &answer, errstr, errstr_size);
    if (!err && answer.err)
        err = baton_seterr(errstr, errstr_size, answer.err, "%s", answer.why);
    return err;
}

static baton_err_t append_fail(baton_redis_t *r, const struct baton_queue_keys *keys,
                               const char *id, const char *token, const struct baton_tr_failure *f,
                               int64_t retention_ms, char *errstr, size_t errstr_size) {
    struct call c;
    char jitter[32];
    /* 9 decimals: finer than a millisecond of any backoff window. */
    snprintf(jitter, sizeof jitter, "%.9f", f->jitter);
    call_start(&c, BATON_TR_FAIL, keys, NULL, 0, errstr, errstr_size);
    call_str(&c, keys->task_prefix);
    call_str(&c, id);
    call_str(&c, token);
    call_str(&c, f->error);
    call_str(&c, f->reason);
    call_num(&c, f->backoff_base_ms);
    call_num(&c, f->backoff_cap_ms);
    call_str(&c, jitter);
    call_str(&c, f->permanent ? "1" : "0");
    call_num(&c, retention_ms);
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_fail(baton_redis_t *r, baton_state_t *next, int64_t *due_ms, int *noscript,
                             char *errstr, size_t errstr_size) {
    redisReply *reply;
    baton_err_t err = take(r, BATON_TR_FAIL, &reply, noscript, errstr, errstr_size);
    if (err)
        return err;
    long long due = -1;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply_ll(reply->element[1], &due)) {
        freeReplyObject(reply);
        return bad_reply(BATON_TR_FAIL, "not {state, due}", errstr, errstr_size);
    }
    baton_state_t state;
    if (baton_state_parse(reply->element[0]->str, &state) != 0)
        state = BATON_STATE_COUNT; /* written; named by a newer script than this binary */
    if (next)
        *next = state;
    if (due_ms)
        *due_ms = due;
    freeReplyObject(reply);
    return BATON_OK;
}

baton_err_t baton_tr_fail(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                          const char *token, const struct baton_tr_failure *failure,
                          int64_t retention_ms, baton_state_t *next, int64_t *due_ms, char *errstr,
                          size_t errstr_size) {
    ONE_CALL(r, append_fail(r, keys, id, token, failure, retention_ms, errstr, errstr_size),
             read_fail(r, next, due_ms, &noscript_, errstr, errstr_size));
}

/* The calls whose ARGV are prefix, id, token, retention: finish_canceled
 * and requeue. */
static baton_err_t append_fenced(baton_redis_t *r, baton_tr_script_id_t id_,
                                 const struct baton_queue_keys *keys, const char *id,
                                 const char *token, int64_t retention_ms, char *errstr,
                                 size_t errstr_size) {
    struct call c;
    baton_err_t err = call_start(&c, id_, keys, NULL, 0, errstr, errstr_size);
    if (err)
        return err;
    call_str(&c, keys->task_prefix);
    call_str(&c, id);
    call_str(&c, token);
    call_num(&c, retention_ms);
    return call_send(r, &c, errstr, errstr_size);
}

baton_err_t baton_tr_finish_canceled(baton_redis_t *r, const struct baton_queue_keys *keys,
                                     const char *id, const char *token, int64_t retention_ms,
                                     char *errstr, size_t errstr_size) {
    ONE_CALL(r,
             append_fenced(r, BATON_TR_FINISH_CANCELED, keys, id, token, retention_ms, errstr,
                           errstr_size),
             read_one(r, BATON_TR_FINISH_CANCELED, &noscript_, errstr, errstr_size));
}

baton_err_t baton_tr_requeue(baton_redis_t *r, const struct baton_queue_keys *keys, const char *id,
                             const char *token, int64_t retention_ms, char *errstr,
                             size_t errstr_size) {
    ONE_CALL(r,
             append_fenced(r, BATON_TR_REQUEUE, keys, id, token, retention_ms, errstr, errstr_size),
             read_one(r, BATON_TR_REQUEUE, &noscript_, errstr, errstr_size));
}

static baton_err_t append_heartbeat(baton_redis_t *r, const char *worker_id, int64_t ttl_ms,
                                    const char *const *fields, size_t nfields, char *errstr,
                                    size_t errstr_size) {
    if (nfields % 2)
        return baton_seterr(errstr, errstr_size, BATON_ERR_INVALID,
                            "heartbeat.lua: %zu fields, not field/value pairs", nfields);
    char key[BATON_KEY_MAX];
    baton_worker_key(key, worker_id);
    const char *own[] = {key, BATON_KEY_WORKERS, NULL};
    struct call c;
    baton_err_t err = call_start(&c, BATON_TR_HEARTBEAT, NULL, own, nfields, errstr, errstr_size);
    if (err)
        return err;
    call_str(&c, worker_id);
    call_num(&c, ttl_ms);
    for (size_t i = 0; i < nfields; i++)
        call_str(&c, fields[i]);
    return call_send(r, &c, errstr, errstr_size);
}

static baton_err_t read_heartbeat(baton_redis_t *r, int64_t *heartbeat_ms, int *noscript,
                                  char *errstr, size_t errstr_size) {
    redisReply *reply;
    baton_err_t err = take(r, BATON_TR_HEARTBEAT, &reply, noscript, errstr, errstr_size);
    if (err)
        return err;
    long long at;
    if (reply_ll(reply, &at))
        err = bad_reply(BATON_TR_HEARTBEAT, "not a time", errstr, errstr_size);
    else if (heartbeat_ms)
        *heartbeat_ms = at;
    freeReplyObject(reply);
    return err;
}

baton_err_t baton_tr_heartbeat(baton_redis_t *r, const char *worker_id, int64_t ttl_ms,
                               const char *const *fields, size_t nfields, int64_t *heartbeat_ms,
                               char *errstr, size_t errstr_size) {
    ONE_CALL(r, append_heartbeat(r, worker_id, ttl_ms, fields, nfields, errstr, errstr_size),
             read_heartbeat(r, heartbeat_ms, &noscript_, errstr, errstr_size));
}
