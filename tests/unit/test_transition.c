/*
 * test_transition.c - the typed script calls (common/transition.c).
 *
 * drift: every script of common/scripts/ (read from the source tree,
 * BATON_SOURCE_DIR) documents its KEYS and ARGV in its header comment;
 * baton_tr_scripts[] must list the same keys and arguments in the same
 * order, and every script must have a row (and every row a script).
 * core: the module's failure hooks capture the exact EVALSHA arguments
 * each function sends and feed it replies, without a Redis: argument
 * order, and the mapping of every answer and error reply.
 */
#include <check.h>
#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transition.h"
#include "source_file.h"

#ifndef BATON_SOURCE_DIR
#error "BATON_SOURCE_DIR must name the source tree"
#endif

/* ------------------------------------------------------ header parsing */

#define MAX_DEFS 16

/* What a script's header documents. */
struct header {
    char keys[MAX_DEFS][160];
    size_t nkeys;
    char args[MAX_DEFS][160];
    size_t nargs;
    char rest[160];  /* the "then ..." line, "" when none */
    char error[256]; /* why the header could not be read, "" when it could */
};

/* Copies `len` bytes of `text` into out, spaces collapsed and trimmed. */
static void collapse(char *out, size_t size, const char *text, size_t len) {
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i < len && o + 1 < size; i++) {
        if (isspace((unsigned char)text[i])) {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < size)
            out[o++] = ' ';
        space = 0;
        out[o++] = text[i];
    }
    out[o] = '\0';
}

/* The next "KEYS[" or "ARGV[" at a word start in `s`, or NULL. */
static const char *next_def(const char *s, const char *start) {
    for (const char *p = s; *p; p++)
        if ((strncmp(p, "KEYS[", 5) == 0 || strncmp(p, "ARGV[", 5) == 0) &&
            (p == start || isspace((unsigned char)p[-1])))
            return p;
    return NULL;
}

/*
 * Reads the header comment of a script: the leading "--" lines. A line
 * whose text starts with KEYS[n] or ARGV[n] defines one or more of them
 * ("KEYS[1] ready  KEYS[2] scheduled"); a line starting with "then" says
 * what follows the fixed ARGV. The definitions end at the first empty
 * comment line after them: the paragraphs below (what the script checks,
 * changes, returns) may mention ARGV[n] or start a line with "then".
 */
static void parse_header(const char *text, struct header *h) {
    memset(h, 0, sizeof *h);
    const char *line = text;
    while (strncmp(line, "--", 2) == 0) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char body[512] = {0};
        collapse(body, sizeof body, line + 2, len - 2);
        if (body[0] == '\0' && (h->nkeys || h->nargs))
            break;
        if (strncmp(body, "then ", 5) == 0) {
            snprintf(h->rest, sizeof h->rest, "%.159s", body);
        } else if (strncmp(body, "KEYS[", 5) == 0 || strncmp(body, "ARGV[", 5) == 0) {
            for (const char *d = body; d;) {
                const char *next = next_def(d + 5, body);
                int is_key = d[0] == 'K';
                char *close;
                long index = strtol(d + 5, &close, 10);
                size_t *count = is_key ? &h->nkeys : &h->nargs;
                if (*close != ']' || index != (long)*count + 1 || *count >= MAX_DEFS) {
                    snprintf(h->error, sizeof h->error, "%.*s out of order or malformed", 8, d);
                    return;
                }
                char *slot = is_key ? h->keys[*count] : h->args[*count];
                collapse(slot, 160, close + 1,
                         next ? (size_t)(next - close - 1) : strlen(close + 1));
                (*count)++;
                d = next;
            }
        }
        if (!end)
            break;
        line = end + 1;
    }
}

/* 1 when `doc` starts `described` as a whole phrase. */
static int documents(const char *described, const char *doc) {
    size_t n = strlen(doc);
    return strncmp(described, doc, n) == 0 && (described[n] == '\0' || described[n] == ' ' ||
                                               described[n] == '(' || described[n] == ':');
}

/* "" when script row `s` agrees with header `h`, else what differs. */
static void compare(const struct baton_tr_script *s, const struct header *h, char *why,
                    size_t size) {
    why[0] = '\0';
    if (h->error[0]) {
        snprintf(why, size, "%s: %s", s->name, h->error);
    } else if (h->nkeys != s->nkeys) {
        snprintf(why, size, "%s: header has %zu KEYS, the table %zu", s->name, h->nkeys, s->nkeys);
    } else if (h->nargs != s->nargs) {
        snprintf(why, size, "%s: header has %zu ARGV, the table %zu", s->name, h->nargs, s->nargs);
    } else if (!s->rest != !h->rest[0] || (s->rest && !documents(h->rest, s->rest))) {
        snprintf(why, size, "%s: header says '%s' after the ARGV, the table '%s'", s->name, h->rest,
                 s->rest ? s->rest : "");
    } else {
        for (size_t k = 0; k < s->nkeys && !why[0]; k++)
            if (!documents(h->keys[k], s->keys[k].doc))
                snprintf(why, size, "%s: KEYS[%zu] is '%s' in the header, '%s' in the table",
                         s->name, k + 1, h->keys[k], s->keys[k].doc);
        for (size_t a = 0; a < s->nargs && !why[0]; a++)
            if (!documents(h->args[a], s->args[a]))
                snprintf(why, size, "%s: ARGV[%zu] is '%s' in the header, '%s' in the table",
                         s->name, a + 1, h->args[a], s->args[a]);
    }
}

START_TEST(test_table_matches_headers) {
    const char *dir = BATON_SOURCE_DIR "/common/scripts";
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int seen[BATON_TR_SCRIPT_COUNT] = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0 ||
            strcmp(e->d_name, "_lib.lua") == 0)
            continue;
        int row = -1;
        for (int i = 0; i < BATON_TR_SCRIPT_COUNT; i++)
            if (strcmp(baton_tr_scripts[i].name, e->d_name) == 0)
                row = i;
        ck_assert_msg(row >= 0, "%s has no row in baton_tr_scripts", e->d_name);
        seen[row] = 1;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = read_file(path);
        struct header h;
        parse_header(text, &h);
        char why[512];
        compare(&baton_tr_scripts[row], &h, why, sizeof why);
        ck_assert_msg(why[0] == '\0', "%s", why);
        free(text);
    }
    closedir(d);
    for (int i = 0; i < BATON_TR_SCRIPT_COUNT; i++)
        ck_assert_msg(seen[i], "%s is in the table but not in common/scripts",
                      baton_tr_scripts[i].name);
}
END_TEST

/*
 * "" when every `return` of script `text` that calls emit() writes the
 * call's events (_lib.lua buffers them until reply()): each is `return
 * reply(...)`, or an error reply (`return stale`, `return
 * redis.error_reply(...)`), which a script gives before any change. Else
 * the offending line. A return that skipped reply() would drop events.
 */
static void check_returns(const char *name, const char *text, char *why, size_t size) {
    why[0] = '\0';
    if (!strstr(text, "emit("))
        return;
    int line = 1;
    for (const char *p = text; *p; line++) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (s < p + len && isspace((unsigned char)*s))
            s++;
        if ((size_t)(p + len - s) >= 7 && strncmp(s, "return ", 7) == 0 &&
            strncmp(s, "return reply(", 13) != 0 && strncmp(s, "return stale", 12) != 0 &&
            strncmp(s, "return redis.error_reply(", 25) != 0) {
            snprintf(why, size, "%s:%d returns without reply(): %.*s", name, line,
                     (int)(p + len - s), s);
            return;
        }
        if (!end)
            break;
        p = end + 1;
    }
}

START_TEST(test_emitting_scripts_return_through_reply) {
    const char *dir = BATON_SOURCE_DIR "/common/scripts";
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int emitting = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0 ||
            strcmp(e->d_name, "_lib.lua") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = read_file(path);
        char why[512];
        check_returns(e->d_name, text, why, sizeof why);
        emitting += strstr(text, "emit(") != NULL;
        free(text);
        ck_assert_msg(why[0] == '\0', "%s", why);
    }
    closedir(d);
    ck_assert_int_ge(emitting, 10);
    /* The check itself finds a bare return. */
    char why[512];
    check_returns("x.lua", "emit(k)\nif a then\n  return 1\nend\nreturn reply(2)\n", why,
                  sizeof why);
    ck_assert_str_eq(why, "x.lua:3 returns without reply(): return 1");
    check_returns("x.lua", "emit(k)\nreturn stale\n  return reply({})\n", why, sizeof why);
    ck_assert_str_eq(why, "");
}
END_TEST

/* The comparison itself finds a swapped key, a missing argument and an
 * undocumented variable tail. */
START_TEST(test_compare_finds_drift) {
    const struct baton_tr_script *promote = &baton_tr_scripts[BATON_TR_PROMOTE];
    struct header h;
    char why[512];
    parse_header(
        "-- KEYS[1] scheduled  KEYS[2] ready  KEYS[3] seq  KEYS[4] events  "
        "KEYS[5] notify\n-- ARGV[1] task key prefix   ARGV[2] most tasks to move in this call\n",
        &h);
    compare(promote, &h, why, sizeof why);
    ck_assert_msg(why[0] == '\0', "%s", why);
    parse_header(
        "-- KEYS[1] ready  KEYS[2] scheduled  KEYS[3] seq  KEYS[4] events  "
        "KEYS[5] notify\n-- ARGV[1] task key prefix   ARGV[2] most tasks to move in this call\n",
        &h);
    compare(promote, &h, why, sizeof why);
    ck_assert_msg(strstr(why, "KEYS[1] is 'ready'"), "%s", why);
    parse_header("-- KEYS[1] scheduled  KEYS[2] ready  KEYS[3] seq  KEYS[4] events  "
                 "KEYS[5] notify\n-- ARGV[1] task key prefix\n",
                 &h);
    compare(promote, &h, why, sizeof why);
    ck_assert_msg(strstr(why, "1 ARGV, the table 2"), "%s", why);
    parse_header(
        "-- KEYS[1] scheduled  KEYS[2] ready  KEYS[3] seq  KEYS[4] events  "
        "KEYS[5] notify\n-- ARGV[1] task key prefix   ARGV[2] most tasks to move in this call\n"
        "-- then pairs: id, token\n",
        &h);
    compare(promote, &h, why, sizeof why);
    ck_assert_msg(strstr(why, "after the ARGV"), "%s", why);
    parse_header("-- KEYS[1] running\n-- KEYS[3] ready\n", &h);
    ck_assert_msg(strstr(h.error, "out of order"), "%s", h.error);
}
END_TEST

/* ------------------------------------------------------------- the hooks */

#define MAX_CALLS 16
#define MAX_ARGS 64

static struct captured {
    char name[32];
    int numkeys;
    int argc;
    char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
} calls[MAX_CALLS];
static int ncalls;

static redisReply *replies[MAX_CALLS];
static int nreplies, next_reply;

static baton_err_t capture(baton_redis_t *r, const char *name, int numkeys, int argc,
                           const char **argv, const size_t *lens, char *errstr,
                           size_t errstr_size) {
    (void)r;
    (void)errstr;
    (void)errstr_size;
    ck_assert_int_lt(ncalls, MAX_CALLS);
    ck_assert_int_le(argc, MAX_ARGS);
    struct captured *c = &calls[ncalls++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->numkeys = numkeys;
    c->argc = argc;
    for (int i = 0; i < argc; i++) {
        c->argv[i] = malloc(lens[i] + 1);
        memcpy(c->argv[i], argv[i], lens[i]);
        c->argv[i][lens[i]] = '\0';
        c->lens[i] = lens[i];
    }
    return BATON_OK;
}

static baton_err_t feed(baton_redis_t *r, redisReply **reply, char *errstr, size_t errstr_size) {
    (void)r;
    if (next_reply >= nreplies)
        return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "no reply queued");
    *reply = replies[next_reply++];
    return BATON_OK;
}

static void hooks_on(void) {
    baton_tr_append_hook = capture;
    baton_tr_get_reply_hook = feed;
    ncalls = nreplies = next_reply = 0;
}

static void hooks_off(void) {
    for (int i = 0; i < ncalls; i++)
        for (int a = 0; a < calls[i].argc; a++)
            free(calls[i].argv[a]);
    for (int i = next_reply; i < nreplies; i++)
        freeReplyObject(replies[i]);
    ncalls = nreplies = next_reply = 0;
    baton_tr_append_hook = NULL;
    baton_tr_get_reply_hook = NULL;
}

/* Replies built by hand, freed by freeReplyObject (hiredis's free). */
static redisReply *reply_new(int type) {
    redisReply *r = calloc(1, sizeof *r);
    r->type = type;
    return r;
}

static redisReply *reply_str(int type, const char *s) {
    redisReply *r = reply_new(type);
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *reply_int(long long v) {
    redisReply *r = reply_new(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

/* An array of n replies given as arguments. */
static redisReply *reply_array(size_t n, ...) {
    redisReply *r = reply_new(REDIS_REPLY_ARRAY);
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof *r->element);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static void queue_reply(redisReply *r) {
    ck_assert_int_lt(nreplies, MAX_CALLS);
    replies[nreplies++] = r;
}

/* Checks call `i`: script, KEYS (each "baton:{q}:<doc>" for queue keys,
 * as docs/redis.md names them) and ARGV given as NULL-ended strings. */
static void expect_call(int i, baton_tr_script_id_t id, ...) {
    const struct baton_tr_script *s = &baton_tr_scripts[id];
    ck_assert_int_lt(i, ncalls);
    struct captured *c = &calls[i];
    ck_assert_str_eq(c->name, s->name);
    ck_assert_int_eq(c->numkeys, (int)s->nkeys);
    int a = 0;
    for (size_t k = 0; k < s->nkeys; k++, a++) {
        if (s->keys[k].field < 0)
            continue; /* checked by the caller's ARGV list below */
        char want[BATON_KEY_MAX];
        snprintf(want, sizeof want, "baton:{q}:%s", s->keys[k].doc);
        ck_assert_str_eq(c->argv[a], want);
    }
    va_list ap;
    va_start(ap, id);
    a = 0;
    for (size_t k = 0; k < s->nkeys; k++, a++)
        if (s->keys[k].field < 0)
            ck_assert_str_eq(c->argv[a], va_arg(ap, const char *));
    for (const char *want; (want = va_arg(ap, const char *)); a++) {
        ck_assert_int_lt(a, c->argc);
        ck_assert_msg(strcmp(c->argv[a], want) == 0, "%s argument %d is '%s', want '%s'", s->name,
                      a, c->argv[a], want);
    }
    va_end(ap);
    ck_assert_int_eq(a, c->argc);
}

static struct baton_queue_keys keys;

static void setup(void) {
    baton_queue_keys_init(&keys, "q");
    hooks_on();
}

static void teardown(void) {
    hooks_off();
}

START_TEST(test_queue_keys) {
    ck_assert_str_eq(keys.name, "q");
    ck_assert_str_eq(keys.ready, "baton:{q}:ready");
    ck_assert_str_eq(keys.task_prefix, "baton:{q}:t:");
    ck_assert_str_eq(keys.key_prefix, "baton:{q}:");
    ck_assert_str_eq(keys.paused, "baton:{q}:paused");
    char buf[BATON_KEY_MAX];
    ck_assert_uint_eq(baton_worker_key(buf, "w-1"), strlen("baton:worker:w-1"));
    ck_assert_str_eq(buf, "baton:worker:w-1");
}
END_TEST

START_TEST(test_claim_arguments_and_answer) {
    char errstr[256];
    ck_assert_int_eq(
        baton_tr_append_claim(NULL, &keys, "w1", 30000, 4, 604800000, errstr, sizeof errstr),
        BATON_OK);
    expect_call(0, BATON_TR_CLAIM, "baton:{q}:t:", "w1", "30000", "4", "604800000", NULL);
    queue_reply(reply_array(
        6, reply_str(REDIS_REPLY_STRING, "t1"), reply_str(REDIS_REPLY_STRING, "7"),
        reply_str(REDIS_REPLY_STRING, "2"), reply_str(REDIS_REPLY_STRING, "3"),
        reply_str(REDIS_REPLY_STRING, "1000"), reply_str(REDIS_REPLY_STRING, "{\"id\":\"t1\"}")));
    struct baton_tr_claim claim;
    ck_assert_int_eq(baton_tr_read_claim(NULL, &claim, errstr, sizeof errstr), BATON_OK);
    ck_assert_uint_eq(claim.count, 1);
    ck_assert_str_eq(claim.tasks[0].id, "t1");
    ck_assert_str_eq(claim.tasks[0].token, "7");
    ck_assert_int_eq(claim.tasks[0].attempt, 2);
    ck_assert_int_eq(claim.tasks[0].max_attempts, 3);
    ck_assert_int_eq(claim.tasks[0].timeout_ms, 1000);
    ck_assert_str_eq(claim.tasks[0].task_json, "{\"id\":\"t1\"}");
    baton_tr_claim_free(&claim);
    /* A damaged hash: the task is running, so it is handed over all the same. */
    queue_reply(reply_array(6, reply_str(REDIS_REPLY_STRING, "t2"),
                            reply_str(REDIS_REPLY_STRING, "1"), reply_str(REDIS_REPLY_STRING, "1"),
                            reply_new(REDIS_REPLY_NIL), reply_new(REDIS_REPLY_NIL),
                            reply_new(REDIS_REPLY_NIL)));
    ck_assert_int_eq(baton_tr_read_claim(NULL, &claim, errstr, sizeof errstr), BATON_OK);
    ck_assert_uint_eq(claim.count, 1);
    ck_assert_int_eq(claim.tasks[0].max_attempts, -1);
    ck_assert_int_eq(claim.tasks[0].timeout_ms, -1);
    ck_assert_ptr_null(claim.tasks[0].task_json);
    baton_tr_claim_free(&claim);
    /* A paused queue answers an empty array; a torn answer is an error. */
    queue_reply(reply_array(0));
    ck_assert_int_eq(baton_tr_read_claim(NULL, &claim, errstr, sizeof errstr), BATON_OK);
    ck_assert_uint_eq(claim.count, 0);
    baton_tr_claim_free(&claim);
    queue_reply(reply_array(1, reply_str(REDIS_REPLY_STRING, "t1")));
    ck_assert_int_eq(baton_tr_read_claim(NULL, &claim, errstr, sizeof errstr), BATON_ERR_REDIS);
    ck_assert_ptr_null(claim.reply);
}
END_TEST

START_TEST(test_finishing_arguments) {
    char errstr[256];
    const struct baton_tr_failure f = {"boom", "timeout", 1000, 60000, 0.5, 1};
    queue_reply(reply_array(2, reply_str(REDIS_REPLY_STRING, "scheduled"),
                            reply_str(REDIS_REPLY_STRING, "1700000000123")));
    baton_state_t next;
    int64_t due;
    ck_assert_int_eq(
        baton_tr_fail(NULL, &keys, "t1", "7", &f, 99, &next, &due, errstr, sizeof errstr),
        BATON_OK);
    expect_call(0, BATON_TR_FAIL, "baton:{q}:t:", "t1", "7", "boom", "timeout", "1000", "60000",
                "0.500000000", "1", "99", NULL);
    ck_assert_int_eq(next, BATON_STATE_SCHEDULED);
    ck_assert_int_eq(due, 1700000000123LL);

    /* Several successes in one call, one answer each: the result is bytes
     * with a length (only result_len of them are sent), and a STALE
     * answer nested in the array refuses its own task only. */
    queue_reply(reply_array(
        3, reply_int(1),
        reply_str(REDIS_REPLY_ERROR, "STALE task t2 is queued with token 9, not 8"), reply_int(1)));
    const struct baton_tr_success done[] = {
        {"t1", "7", "{\"a\":1}x", 7}, {"t2", "8", "null", 4}, {"t3", "2", "[]", 2}};
    ck_assert_int_eq(baton_tr_append_complete(NULL, &keys, done, 3, 99, errstr, sizeof errstr),
                     BATON_OK);
    struct baton_tr_completion answers[3];
    ck_assert_int_eq(baton_tr_read_complete(NULL, answers, 3, errstr, sizeof errstr), BATON_OK);
    expect_call(1, BATON_TR_COMPLETE, "baton:{q}:t:", "99", "t1", "7", "{\"a\":1}", "t2", "8",
                "null", "t3", "2", "[]", NULL);
    ck_assert_int_eq(answers[0].err, BATON_OK);
    ck_assert_str_eq(answers[0].why, "");
    ck_assert_int_eq(answers[1].err, BATON_ERR_STALE_TOKEN);
    ck_assert_str_eq(answers[1].why, "task t2 is queued with token 9, not 8");
    ck_assert_int_eq(answers[2].err, BATON_OK);
    /* No call without a task. */
    ck_assert_int_eq(baton_tr_append_complete(NULL, &keys, done, 0, 99, errstr, sizeof errstr),
                     BATON_ERR_INVALID);

    queue_reply(reply_int(1));
    ck_assert_int_eq(baton_tr_requeue(NULL, &keys, "t1", "7", 99, errstr, sizeof errstr), BATON_OK);
    expect_call(2, BATON_TR_REQUEUE, "baton:{q}:t:", "t1", "7", "99", NULL);

    queue_reply(reply_int(1));
    ck_assert_int_eq(baton_tr_finish_canceled(NULL, &keys, "t1", "7", 99, errstr, sizeof errstr),
                     BATON_OK);
    expect_call(3, BATON_TR_FINISH_CANCELED, "baton:{q}:t:", "t1", "7", "99", NULL);
}
END_TEST

START_TEST(test_renew_and_heartbeat) {
    char errstr[256];
    const struct baton_tr_lease leases[3] = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
    baton_tr_renewal_t answers[3];
    queue_reply(reply_array(3, reply_int(1), reply_int(0), reply_int(2)));
    ck_assert_int_eq(baton_tr_renew(NULL, &keys, 30000, leases, 3, answers, errstr, sizeof errstr),
                     BATON_OK);
    expect_call(0, BATON_TR_RENEW, "baton:{q}:t:", "30000", "a", "1", "b", "2", "c", "3", NULL);
    ck_assert_int_eq(answers[0], BATON_TR_RENEW_OK);
    ck_assert_int_eq(answers[1], BATON_TR_RENEW_REFUSED);
    ck_assert_int_eq(answers[2], BATON_TR_RENEW_CANCELED);

    const char *fields[] = {"host", "h", "busy", "2"};
    int64_t at = 0;
    queue_reply(reply_str(REDIS_REPLY_STRING, "1700000000000"));
    ck_assert_int_eq(baton_tr_heartbeat(NULL, "w1", 10000, fields, 4, &at, errstr, sizeof errstr),
                     BATON_OK);
    expect_call(1, BATON_TR_HEARTBEAT, "baton:worker:w1", "baton:workers", "w1", "10000", "host",
                "h", "busy", "2", NULL);
    ck_assert_int_eq(at, 1700000000000LL);
    ck_assert_int_eq(baton_tr_heartbeat(NULL, "w1", 10000, fields, 3, &at, errstr, sizeof errstr),
                     BATON_ERR_INVALID);
}
END_TEST

START_TEST(test_scheduler_arguments) {
    char errstr[256];
    struct baton_task task = {.id = "t1",
                              .priority = 7,
                              .max_attempts = 3,
                              .timeout_ms = 5000,
                              .run_at_ms = BATON_TIME_UNSET,
                              .delay_ms = 250,
                              .deadline_ms = BATON_TIME_UNSET};
    const struct baton_tr_new_task nt = {&task, "{}", 2, "tasks", 3, 42};
    ck_assert_int_eq(baton_tr_append_enqueue(NULL, &keys, 99, &nt, 1, errstr, sizeof errstr),
                     BATON_OK);
    expect_call(0, BATON_TR_ENQUEUE, "baton:{q}:t:", "99", "1", "t1", "7", "3", "5000", "", "250",
                "", "tasks", "3", "42", "{}", NULL);
    ck_assert_int_eq(baton_tr_append_enqueue(NULL, &keys, 99, &nt, 0, errstr, sizeof errstr),
                     BATON_ERR_INVALID);
    queue_reply(reply_array(4, reply_int(1), reply_int(2), reply_int(3), reply_int(4)));
    struct baton_tr_enqueued enq;
    ck_assert_int_eq(baton_tr_read_enqueue(NULL, &enq, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(enq.queued + enq.scheduled * 10 + enq.expired * 100 + enq.duplicates * 1000,
                     4321);

    ck_assert_int_eq(baton_tr_append_promote(NULL, &keys, 500, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(baton_tr_append_expire(NULL, &keys, 500, 99, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(baton_tr_append_reclaim(NULL, &keys, 500, 99, errstr, sizeof errstr),
                     BATON_OK);
    expect_call(1, BATON_TR_PROMOTE, "baton:{q}:t:", "500", NULL);
    expect_call(2, BATON_TR_EXPIRE, "baton:{q}:t:", "500", "99", NULL);
    expect_call(3, BATON_TR_RECLAIM, "baton:{q}:t:", "500", "99", NULL);
    struct baton_tr_moved moved;
    queue_reply(reply_array(2, reply_int(5), reply_str(REDIS_REPLY_STRING, "-1")));
    ck_assert_int_eq(baton_tr_read_promote(NULL, &moved, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(moved.moved, 5);
    ck_assert_int_eq(moved.next_ms, -1);
    struct baton_tr_reclaimed rec;
    queue_reply(reply_array(2, reply_int(2), reply_int(1)));
    ck_assert_int_eq(baton_tr_read_reclaim(NULL, &rec, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(rec.requeued, 2);
    ck_assert_int_eq(rec.dead, 1);
}
END_TEST

START_TEST(test_ctl_and_history_arguments) {
    char errstr[256];
    baton_event_t result;
    queue_reply(reply_str(REDIS_REPLY_STATUS, "cancel_requested"));
    ck_assert_int_eq(baton_tr_cancel(NULL, &keys, "t1", 99, &result, errstr, sizeof errstr),
                     BATON_OK);
    expect_call(0, BATON_TR_CANCEL, "baton:{q}:t:", "t1", "99", NULL);
    ck_assert_int_eq(result, BATON_EVENT_CANCEL_REQUESTED);
    queue_reply(reply_int(1));
    ck_assert_int_eq(baton_tr_retry(NULL, &keys, "t1", errstr, sizeof errstr), BATON_OK);
    expect_call(1, BATON_TR_RETRY, "baton:{q}:t:", "t1", NULL);
    redisReply *entries;
    queue_reply(reply_array(0));
    ck_assert_int_eq(
        baton_tr_orphans(NULL, "baton:{q}:events", "g", "me", 100, &entries, errstr, sizeof errstr),
        BATON_OK);
    expect_call(2, BATON_TR_ORPHANS, "baton:{q}:events", "g", "me", "100", NULL);
    ck_assert_uint_eq(entries->elements, 0);
    freeReplyObject(entries);
    const char *ids[] = {"1-0", "1-1"};
    long long acked = -1, trimmed = -1;
    queue_reply(reply_array(2, reply_int(2), reply_int(5)));
    ck_assert_int_eq(baton_tr_ack(NULL, "baton:{q}:events", "g", ids, 2, &acked, &trimmed, errstr,
                                  sizeof errstr),
                     BATON_OK);
    expect_call(3, BATON_TR_ACK, "baton:{q}:events", "g", "1-0", "1-1", NULL);
    ck_assert_int_eq(acked, 2);
    ck_assert_int_eq(trimmed, 5);
    queue_reply(reply_str(REDIS_REPLY_ERROR, "NOPERM this user has no permission to run XTRIM"));
    ck_assert_int_eq(baton_tr_ack(NULL, "s", "g", ids, 2, &acked, &trimmed, errstr, sizeof errstr),
                     BATON_ERR_REFUSED);
    ck_assert_msg(strstr(errstr, "ack.lua: NOPERM"), "%s", errstr);
}
END_TEST

/* --------------------------------------------------------- reply mapping */

START_TEST(test_error_replies_map_to_codes) {
    char errstr[256];
    queue_reply(reply_str(REDIS_REPLY_ERROR, "STALE task t1 is running with token 8, not 7"));
    ck_assert_int_eq(
        baton_tr_complete(NULL, &keys, "t1", "7", "null", 4, 99, errstr, sizeof errstr),
        BATON_ERR_STALE_TOKEN);
    ck_assert_str_eq(errstr, "task t1 is running with token 8, not 7");

    queue_reply(reply_str(REDIS_REPLY_ERROR, "NOTFOUND task t1 does not exist"));
    baton_event_t result;
    ck_assert_int_eq(baton_tr_cancel(NULL, &keys, "t1", 99, &result, errstr, sizeof errstr),
                     BATON_ERR_NOT_FOUND);
    ck_assert_str_eq(errstr, "task t1 does not exist");

    queue_reply(
        reply_str(REDIS_REPLY_ERROR, "STATE task t1 is queued, only dead tasks are retried"));
    ck_assert_int_eq(baton_tr_retry(NULL, &keys, "t1", errstr, sizeof errstr), BATON_ERR_STATE);
    ck_assert_str_eq(errstr, "task t1 is queued, only dead tasks are retried");

    redisReply *entries;
    queue_reply(reply_str(REDIS_REPLY_ERROR, "NOGROUP no stream s"));
    ck_assert_int_eq(baton_tr_orphans(NULL, "s", "g", "me", 1, &entries, errstr, sizeof errstr),
                     BATON_ERR_NOT_FOUND);
    ck_assert_ptr_null(entries);

    /* A code is a whole word: STALENESS is no STALE. */
    queue_reply(reply_str(REDIS_REPLY_ERROR, "STALENESS whatever"));
    ck_assert_int_eq(baton_tr_requeue(NULL, &keys, "t1", "7", 99, errstr, sizeof errstr),
                     BATON_ERR_REFUSED);
    ck_assert_msg(strstr(errstr, "requeue.lua") && strstr(errstr, "STALENESS"), "%s", errstr);
    queue_reply(reply_str(REDIS_REPLY_ERROR, "OOM command not allowed"));
    struct baton_tr_completion answer;
    ck_assert_int_eq(baton_tr_read_complete(NULL, &answer, 1, errstr, sizeof errstr),
                     BATON_ERR_REFUSED);
    ck_assert_str_eq(errstr, "Redis script complete.lua: OOM command not allowed");
    /* The single form maps a nested STALE answer like a whole one. */
    queue_reply(
        reply_array(1, reply_str(REDIS_REPLY_ERROR, "STALE task t1 is dead with token 7, not 7")));
    ck_assert_int_eq(
        baton_tr_complete(NULL, &keys, "t1", "7", "null", 4, 99, errstr, sizeof errstr),
        BATON_ERR_STALE_TOKEN);
    ck_assert_str_eq(errstr, "task t1 is dead with token 7, not 7");

    redisReply *busy = reply_str(REDIS_REPLY_ERROR, "BUSYGROUP Consumer Group name already exists");
    ck_assert_int_eq(baton_tr_reply_error(busy, "XGROUP", errstr, sizeof errstr), BATON_ERR_EXISTS);
    freeReplyObject(busy);
    redisReply *unblocked =
        reply_str(REDIS_REPLY_ERROR, "UNBLOCKED the stream key no longer exists");
    ck_assert_int_eq(baton_tr_reply_error(unblocked, "XREADGROUP", errstr, sizeof errstr),
                     BATON_ERR_NOT_FOUND);
    ck_assert_str_eq(errstr, "Redis XREADGROUP: UNBLOCKED the stream key no longer exists");
    freeReplyObject(unblocked);
}
END_TEST

/* A restarted Redis has lost the scripts: one retry after the reload. */
START_TEST(test_noscript_is_retried_once) {
    char errstr[256];
    queue_reply(reply_str(REDIS_REPLY_ERROR, "NOSCRIPT No matching script"));
    queue_reply(reply_int(1));
    ck_assert_int_eq(baton_tr_retry(NULL, &keys, "t1", errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(ncalls, 2);
    queue_reply(reply_str(REDIS_REPLY_ERROR, "NOSCRIPT No matching script"));
    queue_reply(reply_str(REDIS_REPLY_ERROR, "NOSCRIPT No matching script"));
    ck_assert_int_eq(baton_tr_retry(NULL, &keys, "t1", errstr, sizeof errstr), BATON_ERR_REDIS);
    ck_assert_int_eq(ncalls, 4);
}
END_TEST

START_TEST(test_unexpected_answers) {
    char errstr[256];
    baton_state_t next;
    const struct baton_tr_failure f = {"e", "error", 0, 0, 0, 0};
    /* Written, but a state this binary does not know. */
    queue_reply(reply_array(2, reply_str(REDIS_REPLY_STRING, "paused"),
                            reply_str(REDIS_REPLY_STRING, "-1")));
    ck_assert_int_eq(
        baton_tr_fail(NULL, &keys, "t", "1", &f, 1, &next, NULL, errstr, sizeof errstr), BATON_OK);
    ck_assert_int_eq(next, BATON_STATE_COUNT);
    queue_reply(reply_int(3));
    ck_assert_int_eq(
        baton_tr_fail(NULL, &keys, "t", "1", &f, 1, &next, NULL, errstr, sizeof errstr),
        BATON_ERR_REDIS);
    baton_tr_renewal_t answers[1];
    const struct baton_tr_lease lease = {"a", "1"};
    queue_reply(reply_array(1, reply_int(5)));
    ck_assert_int_eq(baton_tr_renew(NULL, &keys, 1, &lease, 1, answers, errstr, sizeof errstr),
                     BATON_ERR_REDIS);
    baton_event_t result;
    queue_reply(reply_str(REDIS_REPLY_STATUS, "succeeded"));
    ck_assert_int_eq(baton_tr_cancel(NULL, &keys, "t", 1, &result, errstr, sizeof errstr),
                     BATON_ERR_REDIS);
    struct baton_tr_moved moved;
    queue_reply(reply_array(1, reply_int(5)));
    ck_assert_int_eq(baton_tr_read_expire(NULL, &moved, errstr, sizeof errstr), BATON_ERR_REDIS);
}
END_TEST

static Suite *transition_suite(void) {
    Suite *s = suite_create("transition");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_queue_keys);
    tcase_add_test(core, test_claim_arguments_and_answer);
    tcase_add_test(core, test_finishing_arguments);
    tcase_add_test(core, test_renew_and_heartbeat);
    tcase_add_test(core, test_scheduler_arguments);
    tcase_add_test(core, test_ctl_and_history_arguments);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_add_test(errors, test_error_replies_map_to_codes);
    tcase_add_test(errors, test_noscript_is_retried_once);
    tcase_add_test(errors, test_unexpected_answers);
    suite_add_tcase(s, errors);
    TCase *drift = tcase_create("drift");
    tcase_add_test(drift, test_table_matches_headers);
    tcase_add_test(drift, test_compare_finds_drift);
    tcase_add_test(drift, test_emitting_scripts_return_through_reply);
    suite_add_tcase(s, drift);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(transition_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
