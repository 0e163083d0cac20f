/*
 * job.c - a claimed task inside the worker: its life from claim to outcome.
 *
 * A job is shared by the fetcher, an executor, the completer, the keeper
 * and the drain, so it is reference counted (baton_worker_job_ref/unref) and
 * freed by whoever drops the last reference. Two things are decided on it
 * across threads: why it should stop (an atomic, first reason wins), and
 * who writes its outcome (baton_worker_job_take_finish, once, under the job's
 * lock): an executor, the keeper for a stuck C handler, or the drain.
 * The baton_job_* accessors of worker.h are the handler's view of it.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"
#include "utf8.h"
#include "worker_internal.h"

/* ------------------------------------------------------ the task scan */

/*
 * Reading a task with jansson costs a tree of allocations (~28,000
 * instructions for a small task), while the claim needs only its type and
 * whether it can be read at all, and a noop never looks at the payload.
 * The scan below answers both without allocating, for a subset of JSON
 * that jansson certainly reads the same way; anything outside it goes to
 * jansson, so what counts as unreadable is jansson's call, as before.
 */

enum { SCAN_MAX_DEPTH = 64, SCAN_MAX_NUMBER = 18 };

struct scan {
    const char *p, *end;
    int depth;
};

static void scan_ws(struct scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* A string at s->p ('"'): printable ASCII and the short escapes only (a
 * \u escape may be a NUL or a lone surrogate, which jansson refuses). */
static int scan_string(struct scan *s, const char **str, size_t *len, int *escaped) {
    const char *p = s->p + 1;
    *escaped = 0;
    while (p < s->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            *str = s->p + 1;
            *len = (size_t)(p - *str);
            s->p = p + 1;
            return 1;
        }
        if (c == '\\') {
            if (++p == s->end || !strchr("\"\\/bfnrt", *p) || !*p)
                return 0;
            *escaped = 1;
        } else if (c < 0x20 || c >= 0x80) {
            return 0; /* jansson checks UTF-8 and refuses control characters */
        }
        p++;
    }
    return 0;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?, at most SCAN_MAX_NUMBER characters: fits an
 * int64 or a double without overflow (jansson refuses both overflows). */
static int scan_number(struct scan *s) {
    const char *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (p == s->end || *p < '0' || *p > '9')
        return 0;
    if (*p == '0')
        p++;
    else
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    if (p < s->end && *p == '.') {
        const char *digits = ++p;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits)
            return 0;
    }
    if (p < s->end && (*p == 'e' || *p == 'E'))
        return 0;
    if (p - s->p > SCAN_MAX_NUMBER)
        return 0;
    s->p = p;
    return 1;
}

static int scan_literal(struct scan *s, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return 0;
    s->p += n;
    return 1;
}

static int scan_value(struct scan *s, const char **type, size_t *type_len);

/* An object or an array at s->p; at the top (depth 1) an object's "type"
 * members set *type (the last one counts, as in jansson's object). */
static int scan_container(struct scan *s, const char **type, size_t *type_len) {
    char close = *s->p == '{' ? '}' : ']';
    int object = close == '}';
    int top = s->depth == 0;
    if (++s->depth > SCAN_MAX_DEPTH)
        return 0;
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 1;
    }
    for (;;) {
        int is_type = 0;
        if (object) {
            const char *key;
            size_t key_len;
            int escaped;
            if (s->p == s->end || *s->p != '"' || !scan_string(s, &key, &key_len, &escaped) ||
                escaped)
                return 0; /* an escaped key may spell "type": jansson decodes it */
            is_type = top && key_len == 4 && memcmp(key, "type", 4) == 0;
            scan_ws(s);
            if (s->p == s->end || *s->p != ':')
                return 0;
            s->p++;
            scan_ws(s);
        }
        if (is_type) {
            if (s->p < s->end && *s->p == '"') {
                int escaped;
                if (!scan_string(s, type, type_len, &escaped) || escaped)
                    return 0;
            } else {
                *type = NULL; /* not a string: no type */
                if (!scan_value(s, NULL, NULL))
                    return 0;
            }
        } else if (!scan_value(s, NULL, NULL)) {
            return 0;
        }
        scan_ws(s);
        if (s->p == s->end)
            return 0;
        if (*s->p == close) {
            s->p++;
            s->depth--;
            return 1;
        }
        if (*s->p != ',')
            return 0;
        s->p++;
        scan_ws(s);
    }
}

static int scan_value(struct scan *s, const char **type, size_t *type_len) {
    if (s->p == s->end)
        return 0;
    const char *str;
    size_t len;
    int escaped;
    switch (*s->p) {
    case '{':
    case '[': return scan_container(s, type, type_len);
    case '"': return scan_string(s, &str, &len, &escaped);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default: return scan_number(s);
    }
}

int baton_worker_task_scan(const char *text, size_t n, const char **type, size_t *type_len) {
    struct scan s = {text, text + n, 0};
    *type = NULL;
    *type_len = 0;
    scan_ws(&s);
    /* jansson without JSON_DECODE_ANY: an object or an array, nothing after */
    if (s.p == s.end || (*s.p != '{' && *s.p != '['))
        return 0;
    if (!scan_container(&s, type, type_len))
        return 0;
    scan_ws(&s);
    return s.p == s.end;
}

/* ------------------------------------------------------------- the job */

baton_job_t *baton_worker_job_new(const struct worker_queue *q,
                                  const struct baton_tr_claimed *claim) {
    const char *type = NULL;
    size_t type_len = 0;
    json_t *task = NULL;
    int scanned = claim->task_json &&
                  baton_worker_task_scan(claim->task_json, claim->task_json_len, &type, &type_len);
    if (!scanned && claim->task_json) {
        /* Outside the subset: jansson decides, and its tree is kept. */
        json_error_t jerr;
        task = json_loadb(claim->task_json, claim->task_json_len, 0, &jerr);
        type = json_string_value(json_object_get(task, "type"));
        type_len = type ? strlen(type) : 0;
    }
    if (!type)
        type = "";
    /* One allocation: the job, its id, its type and (for a lazy load) the
     * task text. */
    size_t id_len = strlen(claim->id);
    size_t text_len = scanned ? claim->task_json_len : 0;
    baton_job_t *job = malloc(sizeof *job + id_len + 1 + type_len + 1 + text_len + 1);
    if (!job) {
        json_decref(task);
        return NULL;
    }
    memset(job, 0, sizeof *job);
    char *text = (char *)(job + 1);
    memcpy(text, claim->id, id_len + 1);
    job->id = text;
    text += id_len + 1;
    memcpy(text, type, type_len);
    text[type_len] = '\0';
    job->type = text;
    text += type_len + 1;
    if (scanned) {
        memcpy(text, claim->task_json, text_len);
        text[text_len] = '\0';
        job->task_json = text;
        job->task_json_len = text_len;
    }
    job->task = task;
    job->payload = task ? json_object_get(task, "payload") : NULL;
    if (task && !job->payload)
        job->payload = json_null();
    job->readable = scanned || task;
    atomic_init(&job->refs, 1);
    atomic_init(&job->stop_reason, JOB_STOP_NONE);
    atomic_init(&job->pgid, 0);
    pthread_mutex_init(&job->lock, NULL);
    baton_cond_init_monotonic(&job->wake);
    job->wq = q;
    job->queue = q->keys.name;
    snprintf(job->token, sizeof job->token, "%s", claim->token);
    job->attempt = (int)claim->attempt;
    /* -1: the field is missing from a damaged hash */
    job->max_attempts = claim->max_attempts >= 0 ? (int)claim->max_attempts : 1;
    job->timeout_ms = claim->timeout_ms >= 0 ? claim->timeout_ms : 300000;
    job->started_mono_ms = baton_time_mono_ms();
    /* Saturating: a task enqueued before the contract capped timeout_ms
     * may hold up to 2^63-1, and a wrapped sum would time it out at once. */
    job->deadline_mono_ms = baton_time_add_sat(job->started_mono_ms, job->timeout_ms);
    return job;
}

baton_err_t baton_worker_job_load(baton_job_t *job) {
    if (job->payload)
        return BATON_OK;
    json_error_t jerr;
    /* The scan vouched for the text: only memory can fail here. */
    job->task = json_loadb(job->task_json, job->task_json_len, 0, &jerr);
    if (!job->task)
        return BATON_ERR_NOMEM;
    job->payload = json_object_get(job->task, "payload");
    if (!job->payload)
        job->payload = json_null();
    job->task_json = NULL;
    return BATON_OK;
}

baton_job_t *baton_worker_job_ref(baton_job_t *job) {
    atomic_fetch_add(&job->refs, 1);
    return job;
}

void baton_worker_job_unref(baton_job_t *job) {
    if (!job || atomic_fetch_sub(&job->refs, 1) != 1)
        return;
    json_decref(job->task);
    free(job->result);
    free(job->error);
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->wake);
    free(job);
}

void baton_worker_job_request_stop(baton_job_t *job, enum job_stop reason) {
    int expected = JOB_STOP_NONE;
    atomic_compare_exchange_strong(&job->stop_reason, &expected, (int)reason);
    int pgid = atomic_load(&job->pgid);
    if (pgid > 0)
        kill(-pgid, SIGTERM);
    pthread_mutex_lock(&job->lock);
    pthread_cond_broadcast(&job->wake);
    pthread_mutex_unlock(&job->lock);
}

int baton_worker_job_take_finish(baton_job_t *job) {
    pthread_mutex_lock(&job->lock);
    int first = !job->finished;
    job->finished = 1;
    pthread_mutex_unlock(&job->lock);
    return first;
}

int baton_worker_job_finish_taken(baton_job_t *job) {
    pthread_mutex_lock(&job->lock);
    int taken = job->finished;
    pthread_mutex_unlock(&job->lock);
    return taken;
}

/* ------------------------------------------------- the handler's view */

const char *baton_job_id(const baton_job_t *job) {
    return job->id;
}
const char *baton_job_type(const baton_job_t *job) {
    return job->type;
}
const char *baton_job_queue(const baton_job_t *job) {
    return job->queue;
}
int baton_job_attempt(const baton_job_t *job) {
    return job->attempt;
}
const char *baton_job_token(const baton_job_t *job) {
    return job->token;
}
const json_t *baton_job_payload(const baton_job_t *job) {
    return job->payload;
}

int64_t baton_job_remaining_ms(const baton_job_t *job) {
    return job->deadline_mono_ms - baton_time_mono_ms();
}

int baton_job_should_stop(const baton_job_t *job) {
    return atomic_load(&((baton_job_t *)job)->stop_reason) != JOB_STOP_NONE;
}

int baton_job_sleep(baton_job_t *job, int64_t ms) {
    struct timespec until = baton_time_mono_after(ms);
    pthread_mutex_lock(&job->lock);
    while (!baton_job_should_stop(job))
        if (pthread_cond_timedwait(&job->wake, &job->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&job->lock);
    return baton_job_should_stop(job);
}

baton_err_t baton_job_set_result(baton_job_t *job, const char *text, size_t len) {
    json_error_t jerr;
    json_t *parsed = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    char *copy;
    if (parsed) {
        copy = json_dumps(parsed, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(parsed);
    } else {
        /* Not JSON (plain program output): keep it as a JSON string, made
         * valid UTF-8 (invalid bytes become U+FFFD) for PostgreSQL. */
        size_t clean_len;
        char *clean = baton_utf8_sanitize(text, len, &clean_len);
        json_t *s = clean ? json_stringn_nocheck(clean, clean_len) : NULL;
        free(clean);
        copy = s ? json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(s);
    }
    if (!copy)
        return BATON_ERR_NOMEM;
    free(job->result);
    job->result = copy;
    job->result_len = strlen(copy);
    return BATON_OK;
}

void baton_job_set_error(baton_job_t *job, const char *fmt, ...) {
    /* At most ERROR_MAX bytes, cut on a character boundary (the 3 bytes
     * past it tell where a character ends), then made valid UTF-8. */
    enum { ERROR_MAX = 4095 };
    char buf[ERROR_MAX + 4];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    len = baton_utf8_head_len(buf, len, ERROR_MAX);
    free(job->error);
    job->error = baton_utf8_sanitize(buf, len, NULL);
}
