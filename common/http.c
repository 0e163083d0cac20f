/*
 * http.c - the metrics and health endpoint on libmicrohttpd (see http.h).
 *
 * libmicrohttpd runs the server: its listening thread accepts, and each
 * connection gets a thread of its own (MHD_USE_THREAD_PER_CONNECTION), so
 * a readiness probe waiting on a server that is down (bounded by the
 * probe's own timeouts) never delays a /metrics scrape. The daemons'
 * threads never call into this module after start: /metrics reads the
 * registry under its locks, /readyz calls back into the daemon, which
 * checks its connections with connections of its own.
 *
 * Slow clients (slowloris: a header line every few seconds) are held off
 * three ways. libmicrohttpd limits connections in all and per client
 * address, so one address holds at most a few of the slots. Its own
 * timeout is an idle timeout that every byte resets, so a deadline thread
 * of ours gives each request a deadline of its own: a connection is
 * registered when it opens (MHD_OPTION_NOTIFY_CONNECTION), its deadline
 * moves on when an answer has been sent (MHD_OPTION_NOTIFY_COMPLETED), and
 * past it the thread shuts the socket down, which wakes the connection's
 * thread with EOF and libmicrohttpd closes it. libmicrohttpd reports a
 * connection closed before it closes the descriptor, and the registry's
 * lock covers both, so the thread never shuts down a descriptor reused by
 * someone else. Refusals, which an attacker triggers at will, are logged
 * at most once per LOG_INTERVAL_MS with a count.
 *
 * A client on the same address as an attacker (a loopback health check
 * with an attacker on loopback) shares its per-address slots and gets one
 * when a deadline frees it; clients on other addresses find free slots at
 * once, since the global limit is well above the per-address one.
 */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "timeutil.h"

#define COMPONENT "http"
/* Scrapers and probes are a handful of clients; 64 threads mostly asleep
 * cost little, and leave room after attackers have filled their share. */
#define DEFAULT_CONNECTION_LIMIT 64
/* A scraper and a probe or two per address; an attacker gets no more. */
#define DEFAULT_PER_ADDRESS_LIMIT 8
/* A readiness probe is bounded by ~1 s per check (three at most); anything
 * slower than this is not a client an orchestrator waits for anyway. */
#define DEFAULT_REQUEST_DEADLINE_MS 5000
/* Probes every second or so from several orchestrators hit the backends
 * at most once a second. */
#define DEFAULT_READY_CACHE_MS 1000
/* Lines of one kind (a refused connection, ...) at most this often. */
#define LOG_INTERVAL_MS 10000
/* The deadline thread looks at least this often for counts to log. */
#define TICK_MS 1000
#define LOG_SLOTS 8
static const char DEADLINE_LOG_KEY[] = "deadline"; /* log_limited()'s key for our own line */
#define CONTENT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TEXT "text/plain; charset=utf-8"

/* One open connection, as the deadline thread knows it. */
struct connection {
    int fd;                  /* libmicrohttpd's socket; valid while registered */
    int64_t deadline_ms;     /* monotonic; past it the socket is shut down */
    int cut;                 /* shut down already */
    struct connection *prev; /* in the registry, a doubly linked list */
    struct connection *next;
};

/* A kind of log line (keyed by its format) and what was held back. */
struct log_slot {
    const char *key;          /* the format string; static text */
    int64_t last_ms;          /* when a line of this kind was written */
    unsigned long suppressed; /* lines held back since */
    char text[256];           /* the last one, for the summary line */
};

struct baton_http {
    struct MHD_Daemon *daemon;
    baton_metrics_t *metrics; /* borrowed */
    baton_http_ready_fn ready;
    void *ready_ctx;
    int port;
    struct baton_http_limits limits; /* with the defaults filled in */

    pthread_mutex_t conn_lock;   /* guards connections, stopping */
    pthread_cond_t conn_changed; /* a connection was added, or stop */
    struct connection *connections;
    int stopping;
    pthread_t deadline_thread;
    int deadline_thread_started;

    pthread_mutex_t log_lock; /* guards log_slots */
    struct log_slot log_slots[LOG_SLOTS];

    pthread_mutex_t ready_lock; /* guards the cache; held over a probe so that
                                   probes at once share one */
    int64_t ready_at_ms;        /* when the cached answer was made; 0 = none */
    int ready_ok;
    char ready_part[32];    /* "redis", or "" */
    char ready_logged[512]; /* the last reason logged, to log changes only */
};

/* ------------------------------------------------------------- logging */

/*
 * Writes `text` unless a line of the same kind (`key`) was written less
 * than LOG_INTERVAL_MS ago; then it only counts it. Any thread.
 */
static void log_limited(struct baton_http *h, const char *key, const char *text) {
    int64_t now = baton_time_mono_ms();
    pthread_mutex_lock(&h->log_lock);
    struct log_slot *slot = NULL;
    for (int i = 0; i < LOG_SLOTS && !slot; i++)
        if (h->log_slots[i].key == key || !h->log_slots[i].key)
            slot = &h->log_slots[i];
    if (!slot) /* more kinds than slots: they share the last one */
        slot = &h->log_slots[LOG_SLOTS - 1];
    int emit = !slot->key || now - slot->last_ms >= LOG_INTERVAL_MS;
    unsigned long held_back = slot->suppressed;
    slot->key = key;
    snprintf(slot->text, sizeof slot->text, "%s", text);
    if (emit) {
        slot->last_ms = now;
        slot->suppressed = 0;
    } else {
        slot->suppressed++;
    }
    pthread_mutex_unlock(&h->log_lock);
    if (emit && held_back)
        BATON_WARN(COMPONENT, "%s (and %lu more like it in the last %d s)", text, held_back,
                   LOG_INTERVAL_MS / 1000);
    else if (emit)
        BATON_WARN(COMPONENT, "%s", text);
}

/* Writes the count of lines held back for an interval that has ended, so a
 * burst is accounted for even when nothing follows it. */
static void log_flush(struct baton_http *h, int64_t now) {
    for (int i = 0; i < LOG_SLOTS; i++) {
        char text[sizeof h->log_slots[i].text];
        unsigned long n = 0;
        pthread_mutex_lock(&h->log_lock);
        struct log_slot *slot = &h->log_slots[i];
        if (slot->suppressed && now - slot->last_ms >= LOG_INTERVAL_MS) {
            n = slot->suppressed;
            memcpy(text, slot->text, sizeof text);
            slot->suppressed = 0;
            slot->last_ms = now;
        }
        pthread_mutex_unlock(&h->log_lock);
        if (n)
            BATON_WARN(COMPONENT, "%s (%lu times in the last %d s)", text, n,
                       LOG_INTERVAL_MS / 1000);
    }
}

/* libmicrohttpd's own messages, as our JSON log lines, rate-limited per
 * message. The format attribute tells clang's -Wformat-nonliteral that fmt
 * is a printf format. */
static void log_mhd(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void log_mhd(void *cls, const char *fmt, va_list ap) {
    struct baton_http *h = cls;
    char buf[256];
    int n = snprintf(buf, sizeof buf, "libmicrohttpd: ");
    vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    size_t len = strlen(buf);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if (strstr(fmt, "connection limit")) { /* the one an attacker causes: say which limits */
        snprintf(buf + len, sizeof buf - len, " (limits: %u connections, %u per address)",
                 h->limits.connections, h->limits.per_address);
    }
    log_limited(h, fmt, buf);
}

/* ------------------------------------------------- request deadlines */

/* MHD_OPTION_NOTIFY_CONNECTION: registers and unregisters connections.
 * @locality libmicrohttpd's listening thread */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    struct baton_http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct connection *c = calloc(1, sizeof *c);
        if (!c || !info) { /* without a deadline; the idle timeout still applies */
            free(c);
            return;
        }
        c->fd = info->connect_fd;
        c->deadline_ms = baton_time_mono_ms() + h->limits.request_deadline_ms;
        pthread_mutex_lock(&h->conn_lock);
        c->next = h->connections;
        if (c->next)
            c->next->prev = c;
        h->connections = c;
        pthread_cond_signal(&h->conn_changed);
        pthread_mutex_unlock(&h->conn_lock);
        *socket_context = c;
        return;
    }
    struct connection *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&h->conn_lock); /* from here on the thread leaves its fd alone */
    if (c->prev)
        c->prev->next = c->next;
    else
        h->connections = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&h->conn_lock);
    free(c);
    *socket_context = NULL;
}

/* MHD_OPTION_NOTIFY_COMPLETED: an answer was sent (or the request failed);
 * the next request on a kept-alive connection gets a deadline of its own.
 * @locality the connection's thread */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)con_cls;
    (void)toe;
    struct baton_http *h = cls;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct connection *c = info ? info->socket_context : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&h->conn_lock);
    if (!c->cut)
        c->deadline_ms = baton_time_mono_ms() + h->limits.request_deadline_ms;
    pthread_mutex_unlock(&h->conn_lock);
}

/* Shuts down connections past their deadline; logs held-back counts.
 * @locality the deadline thread */
static void *deadline_main(void *arg) {
    struct baton_http *h = arg;
    pthread_mutex_lock(&h->conn_lock);
    while (!h->stopping) {
        int64_t now = baton_time_mono_ms();
        int64_t next = now + TICK_MS;
        unsigned long cut = 0;
        for (struct connection *c = h->connections; c; c = c->next) {
            if (c->cut)
                continue;
            if (c->deadline_ms <= now) {
                /* EOF for the connection's thread, which then closes it */
                shutdown(c->fd, SHUT_RDWR);
                c->cut = 1;
                cut++;
            } else if (c->deadline_ms < next) {
                next = c->deadline_ms;
            }
        }
        pthread_mutex_unlock(&h->conn_lock);
        if (cut) {
            char text[160];
            snprintf(text, sizeof text,
                     "closed %lu connection(s) whose request took longer than %d ms", cut,
                     h->limits.request_deadline_ms);
            log_limited(h, DEADLINE_LOG_KEY, text);
        }
        log_flush(h, now);
        pthread_mutex_lock(&h->conn_lock);
        if (h->stopping)
            break;
        struct timespec until = baton_time_mono_after(next - now);
        pthread_cond_timedwait(&h->conn_changed, &h->conn_lock, &until);
    }
    pthread_mutex_unlock(&h->conn_lock);
    return NULL;
}

/* Queues a response of `len` bytes; `owned` text is freed by MHD. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
                               const char *content_type, char *body, size_t len, int owned) {
    struct MHD_Response *res = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!res) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result r = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return r;
}

static enum MHD_Result respond_static(struct MHD_Connection *conn, unsigned status,
                                      const char *text) {
    return respond(conn, status, CONTENT_TEXT, (char *)text, strlen(text), 0);
}

/*
 * The part named before the first ':' of a readiness reason ("redis" of
 * "redis: Redis 10.0.0.7:6379: connect: ..."), when it is a plain word;
 * else "". The rest may name internal hosts and is for the log only.
 */
static void reason_part(const char *why, char *part, size_t size) {
    size_t n = strcspn(why, ":");
    int word = why[n] == ':' && n > 0 && n < size;
    for (size_t i = 0; word && i < n; i++) {
        char c = why[i];
        word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    }
    snprintf(part, size, "%.*s", word ? (int)n : 0, why);
}

/*
 * Readiness, from the cache when its answer is younger than the cache
 * time, else from the callback. The lock is held over the callback, so
 * probes arriving during one wait for its answer instead of each asking
 * the backends. Logs the reason when it changes. Returns 1 when ready;
 * else 0 with the failing part (or "") in `part`.
 * @locality a libmicrohttpd connection thread
 */
static int ready_cached(struct baton_http *h, char *part, size_t size) {
    pthread_mutex_lock(&h->ready_lock);
    int64_t now = baton_time_mono_ms();
    if (!h->ready_at_ms || now - h->ready_at_ms >= h->limits.ready_cache_ms) {
        char why[sizeof h->ready_logged] = "";
        h->ready_ok = !h->ready || h->ready(h->ready_ctx, why, sizeof why);
        h->ready_at_ms = baton_time_mono_ms();
        if (h->ready_ok)
            why[0] = '\0';
        reason_part(why, h->ready_part, sizeof h->ready_part);
        if (strcmp(why, h->ready_logged) != 0) {
            if (*why)
                BATON_WARN(COMPONENT, "not ready: %s", why);
            else
                BATON_INFO(COMPONENT, "ready");
            snprintf(h->ready_logged, sizeof h->ready_logged, "%s", why);
        }
    }
    int ok = h->ready_ok;
    snprintf(part, size, "%s", h->ready_part);
    pthread_mutex_unlock(&h->ready_lock);
    return ok;
}

/* @locality a libmicrohttpd connection thread */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    static int request_seen; /* its address marks a request past its first call */
    struct baton_http *h = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_data_size = 0; /* a body, if any, is not read; the connection closes */
        return respond_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    /* Answer once the whole request is in: libmicrohttpd closes a
     * connection whose answer was queued on the first call, which would
     * defeat keep-alive for scrapers. A body on a GET is read and dropped. */
    if (*con_cls != &request_seen) {
        *con_cls = &request_seen;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") == 0) {
        char *text;
        size_t len;
        if (baton_metrics_render(h->metrics, &text, &len) != BATON_OK) {
            if (!h->metrics) /* no registry: an empty exposition */
                return respond(conn, MHD_HTTP_OK, CONTENT_METRICS, (char *)"", 0, 0);
            return respond_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        }
        return respond(conn, MHD_HTTP_OK, CONTENT_METRICS, text, len, 1);
    }
    if (strcmp(url, "/healthz") == 0)
        return respond_static(conn, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0) {
        char part[sizeof h->ready_part];
        if (ready_cached(h, part, sizeof part))
            return respond_static(conn, MHD_HTTP_OK, "ready\n");
        char body[sizeof part + 16];
        int n = snprintf(body, sizeof body, "not ready%s%s\n", *part ? ": " : "", part);
        char *owned = strdup(body);
        if (!owned)
            return respond_static(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
        return respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, CONTENT_TEXT, owned, (size_t)n, 1);
    }
    return respond_static(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

baton_err_t baton_http_start(const struct baton_http_config *config, baton_http_t **out,
                             char *errstr, size_t errstr_size) {
    *out = NULL;
    const char *bind = config->bind && *config->bind ? config->bind : "127.0.0.1";
    if (config->port < 0 || config->port > 65535)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "metrics port %d is out of range", config->port);
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, bind, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)config->port);
    } else if (inet_pton(AF_INET6, bind, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)config->port);
        flags |= MHD_USE_IPv6;
    } else {
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "metrics bind address '%s' is not an IPv4 or IPv6 address", bind);
    }
    struct baton_http_limits limits = config->limits;
    if (!limits.connections)
        limits.connections = DEFAULT_CONNECTION_LIMIT;
    if (!limits.per_address)
        limits.per_address = DEFAULT_PER_ADDRESS_LIMIT;
    if (limits.request_deadline_ms <= 0)
        limits.request_deadline_ms = DEFAULT_REQUEST_DEADLINE_MS;
    if (!limits.ready_cache_ms)
        limits.ready_cache_ms = DEFAULT_READY_CACHE_MS;
    if (limits.per_address > limits.connections)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "metrics endpoint: %u connections per address is more than the %u "
                            "in all",
                            limits.per_address, limits.connections);
    struct baton_http *h = calloc(1, sizeof *h);
    if (!h)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    h->metrics = config->metrics;
    h->ready = config->ready;
    h->ready_ctx = config->ready_ctx;
    h->limits = limits;
    pthread_mutex_init(&h->conn_lock, NULL);
    pthread_mutex_init(&h->log_lock, NULL);
    pthread_mutex_init(&h->ready_lock, NULL);
    if (baton_cond_init_monotonic(&h->conn_changed) != 0) {
        pthread_mutex_destroy(&h->conn_lock);
        pthread_mutex_destroy(&h->log_lock);
        pthread_mutex_destroy(&h->ready_lock);
        free(h);
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    }
    if (pthread_create(&h->deadline_thread, NULL, deadline_main, h) != 0) {
        baton_http_stop(h);
        return baton_seterr(errstr, errstr_size, BATON_ERR_IO,
                            "metrics endpoint: cannot start its deadline thread");
    }
    h->deadline_thread_started = 1;
    /* libmicrohttpd's idle timeout (whole seconds) stays as a backstop of
     * the deadline thread. */
    unsigned idle_timeout_s = (unsigned)(limits.request_deadline_ms + 999) / 1000;
    /* One option and its values per line; the logger first, to catch every message. */
    /* clang-format off */
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)config->port, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, limits.connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, limits.per_address,
        MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_END);
    /* clang-format on */
    if (!h->daemon) {
        baton_http_stop(h);
        return baton_seterr(errstr, errstr_size, BATON_ERR_IO,
                            "cannot serve metrics on %s port %d (port in use?)", bind,
                            config->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info && info->port ? (int)info->port : config->port;
    BATON_INFO(COMPONENT,
               "serving /metrics, /healthz, /readyz on %s port %d (at most %u connections, %u "
               "per address, %d ms per request)",
               bind, h->port, limits.connections, limits.per_address, limits.request_deadline_ms);
    *out = h;
    return BATON_OK;
}

int baton_http_port(const baton_http_t *h) {
    return h ? h->port : 0;
}

void baton_http_stop(baton_http_t *h) {
    if (!h)
        return;
    /* The daemon first: closing its connections unregisters them all. */
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    if (h->deadline_thread_started) {
        pthread_mutex_lock(&h->conn_lock);
        h->stopping = 1;
        pthread_cond_signal(&h->conn_changed);
        pthread_mutex_unlock(&h->conn_lock);
        pthread_join(h->deadline_thread, NULL);
    }
    log_flush(h, baton_time_mono_ms() + LOG_INTERVAL_MS); /* counts not yet logged */
    pthread_cond_destroy(&h->conn_changed);
    pthread_mutex_destroy(&h->conn_lock);
    pthread_mutex_destroy(&h->log_lock);
    pthread_mutex_destroy(&h->ready_lock);
    free(h);
}
