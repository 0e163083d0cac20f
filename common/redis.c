/*
 * redis.c - Redis connection with reconnect and script loading (see redis.h).
 *
 * Why synchronous hiredis: every baton caller works in batches (one pipeline
 * per Kafka batch, one claim script per wake-up), so a blocking round trip per
 * batch is the natural shape and keeps error handling linear. Each thread owns
 * its own connection.
 */
#include "redis.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "redis_script.h"

struct baton_redis {
    char *url; /* owned copy, for reconnects */
    struct baton_redis_url parsed;
    int timeout_ms;
    redisContext *ctx;  /* NULL while disconnected */
    int reload_scripts; /* NOSCRIPT seen: load before next use */
    size_t pending;     /* replies appended and not yet read */
    char (*shas)[41];   /* one SHA1 per baton_scripts entry */
    char *cmd;          /* the command being formatted (struct resp), kept
                           between calls so that appending allocates nothing */
    size_t cmd_cap;
};

baton_redis_durability_t baton_redis_durability = BATON_REDIS_DURABILITY_UNCHECKED;

static struct timeval tv_of_ms(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

void baton_redis_url_redact(const char *url, char *buf, size_t size) {
    if (!buf || size == 0)
        return;
    if (!url) {
        buf[0] = '\0';
        return;
    }
    /* The same split as the parser: userinfo ends at the last '@', so a
     * password with an unencoded '/' or '@' is hidden whole. A URL typed
     * without its scheme is redacted all the same. */
    const char *scheme_end = strstr(url, "://");
    const char *userinfo = scheme_end ? scheme_end + 3 : url;
    const char *at = strrchr(userinfo, '@');
    if (!at) {
        snprintf(buf, size, "%s", url);
        return;
    }
    const char *colon = memchr(userinfo, ':', (size_t)(at - userinfo));
    if (colon)
        snprintf(buf, size, "%.*s:***%s", (int)(colon - url), url, at);
    else
        snprintf(buf, size, "%.*s***%s", (int)(userinfo - url), url, at);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decodes the %XX escapes of `src` (`len` bytes) into `dst` (NUL-ended).
 * Returns 0, or -1 for a '%' not followed by two hex digits or a %00 (which
 * would cut the secret short), or -2 when the result does not fit.
 */
static int percent_decode(const char *src, size_t len, char *dst, size_t dst_size) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = i + 1 < len ? hex_digit(src[i + 1]) : -1;
            int lo = i + 2 < len ? hex_digit(src[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= dst_size)
            return -2;
        dst[n++] = c;
    }
    dst[n] = '\0';
    return 0;
}

/* Decodes one part of the userinfo ("user", "password") into `dst`. */
static baton_err_t userinfo_part(const char *what, const char *src, size_t len, char *dst,
                                 size_t dst_size, char *errstr, size_t errstr_size) {
    int rc = percent_decode(src, len, dst, dst_size);
    if (rc == -1)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "Redis URL: the %s has a bad percent-encoding (each %% must start "
                            "%%XX with two hex digits, not %%00; write %%25 for %%)",
                            what);
    if (rc == -2)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "Redis URL: the %s is too long (at most %zu bytes)", what,
                            dst_size - 1);
    return BATON_OK;
}

/* Fails a parse: clears `out`, so no decoded password outlives the error. */
static baton_err_t url_error(struct baton_redis_url *out, char *errstr, size_t errstr_size,
                             const char *shown, const char *problem) {
    memset(out, 0, sizeof *out);
    return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "Redis URL '%s' %s", shown, problem);
}

baton_err_t baton_redis_parse_url(const char *url, struct baton_redis_url *out, char *errstr,
                                  size_t errstr_size) {
    memset(out, 0, sizeof *out);
    out->port = 6379;
    /* Every message names the URL redacted: it goes to logs and terminals
     * that many people read, and the password must not reach them. */
    char shown[512];
    baton_redis_url_redact(url, shown, sizeof shown);
    const char *scheme = "redis://";
    if (!url || strncmp(url, scheme, strlen(scheme)) != 0)
        return url_error(out, errstr, errstr_size, shown, "must start with redis://");
    const char *p = url + strlen(scheme);
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : 0;
        size_t plen = colon ? (size_t)(at - colon - 1) : (size_t)(at - p);
        const char *pw = colon ? colon + 1 : p;
        baton_err_t err = userinfo_part("user", p, ulen, out->username, sizeof out->username,
                                        errstr, errstr_size);
        if (!err)
            err = userinfo_part("password", pw, plen, out->password, sizeof out->password, errstr,
                                errstr_size);
        if (err) {
            memset(out, 0, sizeof *out);
            return err;
        }
        p = at + 1;
    }
    size_t hlen = strcspn(p, ":/");
    if (hlen == 0 || hlen >= sizeof out->host)
        return url_error(out, errstr, errstr_size, shown, "has no host");
    memcpy(out->host, p, hlen);
    p += hlen;
    if (*p == ':') {
        char *end;
        errno = 0;
        long port = strtol(p + 1, &end, 10);
        if (errno || end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/'))
            return url_error(out, errstr, errstr_size, shown, "has a bad port");
        out->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1] != '\0') {
        char *end;
        errno = 0;
        long db = strtol(p + 1, &end, 10);
        if (errno || end == p + 1 || *end || db < 0 || db > 1000000)
            return url_error(out, errstr, errstr_size, shown, "has a bad database number");
        out->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        return url_error(out, errstr, errstr_size, shown, "has trailing text");
    }
    return BATON_OK;
}

/* Closes a broken connection; the next baton_redis_ensure() reopens it. */
static baton_err_t drop(baton_redis_t *r, const char *what, char *errstr, size_t errstr_size) {
    baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis %s:%d: %s: %s", r->parsed.host,
                 r->parsed.port, what, r->ctx ? r->ctx->errstr : "not connected");
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->pending = 0;
    return BATON_ERR_REDIS;
}

/* Runs a setup command; a Redis error reply is an error here. */
static baton_err_t setup_command(baton_redis_t *r, const char *what, char *errstr,
                                 size_t errstr_size, int argc, const char **argv) {
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, NULL);
    if (!reply)
        return drop(r, what, errstr, errstr_size);
    baton_err_t err = BATON_OK;
    if (reply->type == REDIS_REPLY_ERROR)
        err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis %s: %s", what, reply->str);
    freeReplyObject(reply);
    return err;
}

baton_err_t baton_redis_durability_parse(const char *text, baton_redis_durability_t *out,
                                         char *errstr, size_t errstr_size) {
    if (text && strcmp(text, "strict") == 0)
        *out = BATON_REDIS_DURABILITY_STRICT;
    else if (text && strcmp(text, "relaxed") == 0)
        *out = BATON_REDIS_DURABILITY_RELAXED;
    else
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "--redis-durability: expected strict or relaxed, got '%s'",
                            text ? text : "");
    return BATON_OK;
}

baton_err_t baton_redis_durability_configure(const char *text, const char *component, char *errstr,
                                             size_t errstr_size) {
    baton_err_t err =
        baton_redis_durability_parse(text, &baton_redis_durability, errstr, errstr_size);
    if (!err && baton_redis_durability == BATON_REDIS_DURABILITY_RELAXED)
        BATON_WARN(component,
                   "--redis-durability=relaxed: Redis is not checked for appendonly yes and "
                   "appendfsync always; a Redis crash can lose tasks whose Kafka offsets were "
                   "committed and outcomes workers reported (guarantees 1, 3 and 4 hold only "
                   "across clean Redis restarts)");
    return err;
}

baton_err_t baton_redis_durability_verdict(const char *where, const char *appendonly,
                                           const char *appendfsync, char *errstr,
                                           size_t errstr_size) {
    const char *fix = "a Redis crash would lose writes it acknowledged (Kafka offsets already "
                      "committed, outcomes already reported): set appendonly yes and "
                      "appendfsync always, or accept the loss with --redis-durability=relaxed";
    if (!appendonly || strcmp(appendonly, "yes") != 0)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "Redis %s has appendonly %s (AOF off): %s", where,
                            appendonly ? appendonly : "unknown", fix);
    if (!appendfsync || strcmp(appendfsync, "always") != 0)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "Redis %s has appendfsync %s: %s", where,
                            appendfsync ? appendfsync : "unknown", fix);
    return BATON_OK;
}

/* CONFIG GET on a fresh connection (not through baton_redis_command, which
 * would reconnect): the durability verdict for this server. */
static baton_err_t check_durability(baton_redis_t *r, char *errstr, size_t errstr_size) {
    /* One pattern rather than two names: CONFIG GET takes several names
     * only since Redis 7.0. */
    const char *argv[3] = {"CONFIG", "GET", "append*"};
    redisReply *reply = redisCommandArgv(r->ctx, 3, argv, NULL);
    if (!reply)
        return drop(r, "CONFIG GET append*", errstr, errstr_size);
    char where[300];
    snprintf(where, sizeof where, "%s:%d", r->parsed.host, r->parsed.port);
    baton_err_t err;
    if (reply->type != REDIS_REPLY_ARRAY) {
        err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                           "Redis %s: CONFIG GET append* failed (%s), so its durability cannot "
                           "be checked; allow CONFIG GET or run with --redis-durability=relaxed",
                           where, reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
    } else {
        const char *appendonly = NULL, *appendfsync = NULL;
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const redisReply *name = reply->element[i], *value = reply->element[i + 1];
            if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(name->str, "appendonly") == 0)
                appendonly = value->str;
            else if (strcmp(name->str, "appendfsync") == 0)
                appendfsync = value->str;
        }
        err = baton_redis_durability_verdict(where, appendonly, appendfsync, errstr, errstr_size);
    }
    freeReplyObject(reply);
    return err;
}

/* The shared helpers, prepended to every other script (see _lib.lua). */
#define SCRIPT_LIB_NAME "_lib.lua"

static const struct baton_embedded_file *script_lib(void) {
    for (size_t i = 0; i < baton_scripts_count; i++)
        if (strcmp(baton_scripts[i].name, SCRIPT_LIB_NAME) == 0)
            return &baton_scripts[i];
    return NULL;
}

static baton_err_t load_scripts(baton_redis_t *r, char *errstr, size_t errstr_size) {
    const struct baton_embedded_file *lib = script_lib();
    for (size_t i = 0; i < baton_scripts_count; i++) {
        if (&baton_scripts[i] == lib)
            continue;
        size_t lib_len = lib ? lib->len : 0;
        size_t len = lib_len + 1 + baton_scripts[i].len;
        char *body = malloc(len);
        if (!body)
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        if (lib)
            memcpy(body, lib->data, lib_len);
        body[lib_len] = '\n';
        memcpy(body + lib_len + 1, baton_scripts[i].data, baton_scripts[i].len);
        const char *argv[3] = {"SCRIPT", "LOAD", body};
        size_t lens[3] = {6, 4, len};
        redisReply *reply = redisCommandArgv(r->ctx, 3, argv, lens);
        free(body);
        if (!reply)
            return drop(r, "SCRIPT LOAD", errstr, errstr_size);
        baton_err_t err = BATON_OK;
        if (reply->type != REDIS_REPLY_STRING || reply->len != 40)
            err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis SCRIPT LOAD %s: %s",
                               baton_scripts[i].name,
                               reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        else
            memcpy(r->shas[i], reply->str, 41);
        freeReplyObject(reply);
        if (err)
            return err;
    }
    r->reload_scripts = 0;
    return BATON_OK;
}

baton_err_t baton_redis_ensure(baton_redis_t *r, char *errstr, size_t errstr_size) {
    if (r->ctx && r->ctx->err)
        drop(r, "connection", errstr, errstr_size);
    if (!r->ctx) {
        struct timeval tv = tv_of_ms(r->timeout_ms);
        r->ctx = redisConnectWithTimeout(r->parsed.host, r->parsed.port, tv);
        if (!r->ctx)
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        if (r->ctx->err)
            return drop(r, "connect", errstr, errstr_size);
        redisSetTimeout(r->ctx, tv);
        redisEnableKeepAlive(r->ctx);
        baton_err_t err = BATON_OK;
        if (r->parsed.password[0]) {
            const char *argv[3] = {"AUTH", r->parsed.username, r->parsed.password};
            if (r->parsed.username[0])
                err = setup_command(r, "AUTH", errstr, errstr_size, 3, argv);
            else {
                argv[1] = r->parsed.password;
                err = setup_command(r, "AUTH", errstr, errstr_size, 2, argv);
            }
        }
        if (!err && r->parsed.db != 0) {
            char db[16];
            snprintf(db, sizeof db, "%d", r->parsed.db);
            const char *argv[2] = {"SELECT", db};
            err = setup_command(r, "SELECT", errstr, errstr_size, 2, argv);
        }
        if (!err && baton_redis_durability == BATON_REDIS_DURABILITY_STRICT)
            err = check_durability(r, errstr, errstr_size);
        if (!err)
            err = load_scripts(r, errstr, errstr_size);
        if (err) {
            if (r->ctx)
                redisFree(r->ctx);
            r->ctx = NULL;
            return err;
        }
    } else if (r->reload_scripts && r->pending == 0) {
        /* Only between pipelines: SCRIPT LOAD replies must not mix with
         * replies still owed to a caller. A failed load drops the
         * connection, so no half-loaded state survives. */
        baton_err_t err = load_scripts(r, errstr, errstr_size);
        if (err && r->ctx)
            drop(r, "SCRIPT LOAD", errstr, errstr_size);
        return err;
    }
    return BATON_OK;
}

void baton_redis_pipeline_begin(baton_redis_t *r) {
    if (r->ctx && r->pending > 0) {
        /* A previous pipeline stopped reading early: its replies would be
         * taken for ours. Start over on a fresh connection. */
        char ignored[256];
        drop(r, "unread replies of an earlier pipeline", ignored, sizeof ignored);
    }
}

baton_err_t baton_redis_new(const char *url, int timeout_ms, baton_redis_t **out, char *errstr,
                            size_t errstr_size) {
    *out = NULL;
    baton_redis_t *r = calloc(1, sizeof *r);
    if (!r)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    baton_err_t err = baton_redis_parse_url(url, &r->parsed, errstr, errstr_size);
    if (err) {
        free(r);
        return err;
    }
    r->url = strdup(url);
    r->shas = calloc(baton_scripts_count ? baton_scripts_count : 1, sizeof *r->shas);
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    if (!r->url || !r->shas) {
        baton_redis_destroy(r);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    *out = r;
    return BATON_OK;
}

baton_err_t baton_redis_connect(const char *url, int timeout_ms, baton_redis_t **out, char *errstr,
                                size_t errstr_size) {
    *out = NULL;
    baton_redis_t *r;
    baton_err_t err = baton_redis_new(url, timeout_ms, &r, errstr, errstr_size);
    if (!err)
        err = baton_redis_ensure(r, errstr, errstr_size);
    if (err) {
        baton_redis_destroy(r);
        return err;
    }
    *out = r;
    return BATON_OK;
}

void baton_redis_destroy(baton_redis_t *r) {
    if (!r)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    free(r->shas);
    free(r->url);
    free(r->cmd);
    free(r);
}

/*
 * Commands are written in RESP here (baton_redis_format) rather than by hiredis's
 * redisAppendCommandArgv, which formats each argument's header with a
 * printf-like sdscatfmt and grows its buffer argument by argument: about
 * half of a worker's fetcher and of ingest's pipeline went there. One pass
 * sizes the command, one writes it into a buffer the connection keeps, and
 * hiredis copies it to its output buffer (redisAppendFormattedCommand).
 */
struct resp {
    char *at; /* next byte to write */
};

/* Decimal digits of v. */
static size_t resp_digits(size_t v) {
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Bytes of the header "<type><v>\r\n" plus, for a bulk string, its body and
 * \r\n. */
static size_t resp_bulk_size(size_t len) {
    return 1 + resp_digits(len) + 2 + len + 2;
}

/* Writes v in decimal at `buf` (room for 20 digits); returns the length. */
static size_t resp_decimal(char *buf, size_t v) {
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = digits[n - 1 - i];
    return n;
}

static void resp_header(struct resp *w, char type, size_t v) {
    *w->at++ = type;
    w->at += resp_decimal(w->at, v);
    *w->at++ = '\r';
    *w->at++ = '\n';
}

static void resp_bulk(struct resp *w, const char *s, size_t len) {
    resp_header(w, '$', len);
    if (len)
        memcpy(w->at, s, len);
    w->at += len;
    *w->at++ = '\r';
    *w->at++ = '\n';
}

/* The connection's format buffer with room for `size` bytes; NULL on no memory. */
static char *resp_room(baton_redis_t *r, size_t size) {
    if (size > r->cmd_cap) {
        size_t cap = r->cmd_cap ? r->cmd_cap : 4096;
        while (cap < size)
            cap *= 2;
        char *grown = realloc(r->cmd, cap);
        if (!grown)
            return NULL;
        r->cmd = grown;
        r->cmd_cap = cap;
    }
    return r->cmd;
}

size_t baton_redis_format_size(int nprefix, const char *const *prefix, const size_t *prefix_len,
                               int argc, const char *const *argv, const size_t *argvlen) {
    size_t total = (size_t)nprefix + (size_t)argc;
    size_t size = 1 + resp_digits(total) + 2;
    for (int i = 0; i < nprefix; i++)
        size += resp_bulk_size(prefix_len[i]);
    for (int i = 0; i < argc; i++)
        size += resp_bulk_size(argvlen ? argvlen[i] : strlen(argv[i]));
    return size;
}

size_t baton_redis_format(char *out, int nprefix, const char *const *prefix,
                          const size_t *prefix_len, int argc, const char *const *argv,
                          const size_t *argvlen) {
    struct resp w = {out};
    resp_header(&w, '*', (size_t)nprefix + (size_t)argc);
    for (int i = 0; i < nprefix; i++)
        resp_bulk(&w, prefix[i], prefix_len[i]);
    for (int i = 0; i < argc; i++)
        resp_bulk(&w, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
    return (size_t)(w.at - out);
}

/* A format buffer larger than this is freed after use: one huge command
 * (a batch of large tasks) must not hold its size for good. */
#define RESP_KEEP_MAX (1024 * 1024)

/* Appends `prefix` (nprefix arguments) then argv[0..argc) as one command
 * to r's output buffer. r must be connected. */
static baton_err_t append_formatted(baton_redis_t *r, int nprefix, const char *const *prefix,
                                    const size_t *prefix_len, int argc, const char **argv,
                                    const size_t *argvlen, char *errstr, size_t errstr_size) {
    size_t size = baton_redis_format_size(nprefix, prefix, prefix_len, argc, argv, argvlen);
    char *buf = resp_room(r, size);
    if (!buf)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    size_t len = baton_redis_format(buf, nprefix, prefix, prefix_len, argc, argv, argvlen);
    int rc = redisAppendFormattedCommand(r->ctx, buf, len);
    if (r->cmd_cap > RESP_KEEP_MAX) {
        free(r->cmd);
        r->cmd = NULL;
        r->cmd_cap = 0;
    }
    if (rc != REDIS_OK)
        return drop(r, "append", errstr, errstr_size);
    r->pending++;
    return BATON_OK;
}

baton_err_t baton_redis_append(baton_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                               char *errstr, size_t errstr_size) {
    baton_err_t err = baton_redis_ensure(r, errstr, errstr_size);
    if (err)
        return err;
    return append_formatted(r, 0, NULL, NULL, argc, argv, argvlen, errstr, errstr_size);
}

static int script_index(const char *name) {
    for (size_t i = 0; i < baton_scripts_count; i++)
        if (strcmp(baton_scripts[i].name, name) == 0)
            return (int)i;
    return -1;
}

baton_err_t baton_redis_append_script(baton_redis_t *r, const char *name, int numkeys, int argc,
                                      const char **argv, const size_t *argvlen, char *errstr,
                                      size_t errstr_size) {
    int idx = script_index(name);
    if (idx < 0)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOT_FOUND,
                            "no embedded Redis script named %s", name);
    baton_err_t err = baton_redis_ensure(r, errstr, errstr_size);
    if (err)
        return err;
    char nk[24];
    size_t nk_len = resp_decimal(nk, numkeys > 0 ? (size_t)numkeys : 0);
    const char *prefix[3] = {"EVALSHA", r->shas[idx], nk};
    const size_t prefix_len[3] = {7, 40, nk_len};
    return append_formatted(r, 3, prefix, prefix_len, argc, argv, argvlen, errstr, errstr_size);
}

baton_err_t baton_redis_get_reply(baton_redis_t *r, redisReply **reply, char *errstr,
                                  size_t errstr_size) {
    *reply = NULL;
    if (!r->ctx)
        return drop(r, "read", errstr, errstr_size);
    void *out = NULL;
    if (redisGetReply(r->ctx, &out) != REDIS_OK || !out)
        return drop(r, "read", errstr, errstr_size);
    redisReply *rep = out;
    if (r->pending > 0)
        r->pending--;
    *reply = rep;
    return BATON_OK;
}

void baton_redis_scripts_lost(baton_redis_t *r) {
    r->reload_scripts = 1;
}

baton_err_t baton_redis_command(baton_redis_t *r, redisReply **reply, int argc, const char **argv,
                                const size_t *argvlen, char *errstr, size_t errstr_size) {
    *reply = NULL;
    baton_redis_pipeline_begin(r);
    baton_err_t err = baton_redis_append(r, argc, argv, argvlen, errstr, errstr_size);
    if (!err)
        err = baton_redis_get_reply(r, reply, errstr, errstr_size);
    if (!err && (*reply)->type == REDIS_REPLY_ERROR) {
        err = baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis %s: %s", argv[0],
                           (*reply)->str);
        freeReplyObject(*reply);
        *reply = NULL;
    }
    return err;
}

baton_err_t baton_redis_probe(baton_redis_t **cached, const char *url, int timeout_ms, char *errstr,
                              size_t errstr_size) {
    baton_err_t err = BATON_OK;
    if (!*cached)
        err = baton_redis_connect(url, timeout_ms, cached, errstr, errstr_size);
    if (!err) {
        const char *ping[] = {"PING"};
        redisReply *reply;
        err = baton_redis_command(*cached, &reply, 1, ping, NULL, errstr, errstr_size);
        if (!err)
            freeReplyObject(reply);
    }
    if (err) {
        baton_redis_destroy(*cached);
        *cached = NULL;
    }
    return err;
}

/* Finds "name:value" in an INFO text; copies value into buf. */
static int info_field(const char *info, const char *name, char *buf, size_t size) {
    size_t nlen = strlen(name);
    for (const char *p = info; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == ':') {
            size_t vlen = strcspn(p + nlen + 1, "\r\n");
            if (vlen >= size)
                vlen = size - 1;
            memcpy(buf, p + nlen + 1, vlen);
            buf[vlen] = '\0';
            return 1;
        }
    }
    return 0;
}

baton_err_t baton_redis_check_policy(baton_redis_t *r, char *errstr, size_t errstr_size) {
    const char *argv[3] = {"CONFIG", "GET", "maxmemory-policy"};
    redisReply *reply;
    baton_err_t err = baton_redis_command(r, &reply, 3, argv, NULL, errstr, errstr_size);
    if (err)
        return err;
    char policy[64] = "";
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING)
        snprintf(policy, sizeof policy, "%s", reply->element[1]->str);
    freeReplyObject(reply);
    if (strcmp(policy, "noeviction") != 0)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "Redis maxmemory-policy is '%s': it may evict tasks; set "
                            "maxmemory-policy noeviction",
                            policy[0] ? policy : "unknown");
    return BATON_OK;
}

int baton_redis_memory_parse(const char *info, uint64_t *used, uint64_t *max) {
    char buf[64];
    *used = *max = 0;
    if (!info_field(info, "used_memory", buf, sizeof buf))
        return 0;
    uint64_t total = strtoull(buf, NULL, 10), not_counted = 0;
    if (info_field(info, "mem_not_counted_for_evict", buf, sizeof buf))
        not_counted = strtoull(buf, NULL, 10);
    *used = total > not_counted ? total - not_counted : 0;
    if (info_field(info, "maxmemory", buf, sizeof buf))
        *max = strtoull(buf, NULL, 10);
    return 1;
}

baton_err_t baton_redis_memory(baton_redis_t *r, uint64_t *used, uint64_t *max, char *errstr,
                               size_t errstr_size) {
    const char *argv[2] = {"INFO", "memory"};
    redisReply *reply;
    baton_err_t err = baton_redis_command(r, &reply, 2, argv, NULL, errstr, errstr_size);
    if (err)
        return err;
    int found =
        reply->type == REDIS_REPLY_STRING && baton_redis_memory_parse(reply->str, used, max);
    freeReplyObject(reply);
    if (!found)
        return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS,
                            "Redis INFO memory: no used_memory field in the reply");
    return BATON_OK;
}

baton_err_t baton_redis_time_ms(baton_redis_t *r, int64_t *ms, char *errstr, size_t errstr_size) {
    const char *argv[1] = {"TIME"};
    redisReply *reply;
    baton_err_t err = baton_redis_command(r, &reply, 1, argv, NULL, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        freeReplyObject(reply);
        return baton_seterr(errstr, errstr_size, BATON_ERR_REDIS, "Redis TIME: bad reply");
    }
    *ms = strtoll(reply->element[0]->str, NULL, 10) * 1000 +
          strtoll(reply->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(reply);
    return BATON_OK;
}
