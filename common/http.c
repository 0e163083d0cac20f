/*
 * http.c - the metrics and health endpoint on libmicrohttpd (see http.h).
 *
 * libmicrohttpd runs the server: its listening thread accepts, and each
 * connection gets a thread of its own (MHD_USE_THREAD_PER_CONNECTION), so
 * a readiness probe waiting on a server that is down (bounded by the
 * probe's own timeouts) never delays a /metrics scrape. The connection
 * limit and idle timeout keep a misbehaving client from piling up threads.
 * The daemons' threads never call into this module after start: /metrics
 * reads the registry under its locks, /readyz calls back into the daemon,
 * which checks its connections with connections of its own.
 */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

#define COMPONENT "http"
#define CONNECTION_LIMIT 16     /* scrapers and probes, not the public */
#define CONNECTION_TIMEOUT_S 10 /* idle keep-alive connections are closed */
#define CONTENT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TEXT "text/plain; charset=utf-8"

struct baton_http {
    struct MHD_Daemon *daemon;
    baton_metrics_t *metrics; /* borrowed */
    baton_http_ready_fn ready;
    void *ready_ctx;
    int port;
};

/* libmicrohttpd's own messages, as our JSON log lines. The format
 * attribute tells clang's -Wformat-nonliteral that fmt is a printf format. */
static void log_mhd(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void log_mhd(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    BATON_WARN(COMPONENT, "libmicrohttpd: %s", buf);
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

/* @locality a libmicrohttpd connection thread */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    (void)con_cls;
    struct baton_http *h = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_data_size = 0; /* a body, if any, is not read */
        return respond_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
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
        char why[512] = "";
        if (!h->ready || h->ready(h->ready_ctx, why, sizeof why))
            return respond_static(conn, MHD_HTTP_OK, "ready\n");
        size_t n = strnlen(why, sizeof why - 2);
        char *body = malloc(n + 2);
        if (!body)
            return respond_static(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
        memcpy(body, why, n);
        body[n] = '\n';
        body[n + 1] = '\0';
        return respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, CONTENT_TEXT, body, n + 1, 1);
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
    struct baton_http *h = calloc(1, sizeof *h);
    if (!h)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    h->metrics = config->metrics;
    h->ready = config->ready;
    h->ready_ctx = config->ready_ctx;
    /* One option and its values per line; the logger first, to catch every message. */
    /* clang-format off */
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)config->port, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        MHD_OPTION_END);
    /* clang-format on */
    if (!h->daemon) {
        free(h);
        return baton_seterr(errstr, errstr_size, BATON_ERR_IO,
                            "cannot serve metrics on %s port %d (port in use?)", bind,
                            config->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info && info->port ? (int)info->port : config->port;
    BATON_INFO(COMPONENT, "serving /metrics, /healthz, /readyz on %s port %d", bind, h->port);
    *out = h;
    return BATON_OK;
}

int baton_http_port(const baton_http_t *h) {
    return h ? h->port : 0;
}

void baton_http_stop(baton_http_t *h) {
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
