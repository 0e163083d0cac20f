/*
 * http.h - the daemons' metrics and health endpoint (libmicrohttpd).
 *
 *   GET /metrics   the registry in the Prometheus text format 0.0.4
 *   GET /healthz   200 "ok" while the process runs
 *   GET /readyz    200 "ready" when the caller's readiness callback says the
 *                  process's connections are up, else 503 "not ready: redis"
 *                  (the failing part only; the callback's detail, which may
 *                  name internal hosts, goes to the log). The answer is
 *                  reused for a short while, so probes cannot hammer Redis,
 *                  Kafka and PostgreSQL.
 *   anything else  404 (405 for a method other than GET or HEAD)
 *
 * The server runs on libmicrohttpd's own threads, one per connection, so a
 * slow readiness probe never delays a scrape and nothing here ever runs on,
 * or blocks, a daemon's own threads. Slow clients cannot take the endpoint
 * down: connections are limited per client address and in all, and each
 * request must be complete (received and answered) within a deadline that
 * bytes trickling in do not extend.
 */
#ifndef BATON_HTTP_H
#define BATON_HTTP_H

#include <stddef.h>

#include "error.h"
#include "metrics.h"

typedef struct baton_http baton_http_t;

/*
 * Readiness: returns 1 when ready; else 0 with a short reason ("redis:
 * Connection refused") in `why`. Must bound its own waiting (short
 * timeouts): a probe that hangs holds a connection slot.
 * @locality an HTTP server thread; may run on several at once
 */
typedef int (*baton_http_ready_fn)(void *ctx, char *why, size_t why_size);

/* Limits of the endpoint; 0 in any of them means its default (http.c). */
struct baton_http_limits {
    unsigned connections;    /* open connections at once; default 64 */
    unsigned per_address;    /* of them from one client address; default 8 */
    int request_deadline_ms; /* a request, from connection (or previous
                                answer) to answer sent; default 5000 */
    int ready_cache_ms;      /* a /readyz answer is reused this long;
                                default 1000, < 0 = never reused */
};

struct baton_http_config {
    const char *bind;                /* IPv4 or IPv6 address to listen on; NULL = "127.0.0.1" */
    int port;                        /* TCP port; 0 = any free port (see baton_http_port()) */
    baton_metrics_t *metrics;        /* borrowed, must outlive the server; NULL = empty /metrics */
    baton_http_ready_fn ready;       /* NULL = always ready; `why` is "part: detail" ("redis:
                                        Connection refused"), of which /readyz shows the part */
    void *ready_ctx;                 /* passed to `ready`, borrowed */
    struct baton_http_limits limits; /* zeroed = the defaults */
};

/*
 * Starts listening. On success *out is a server the caller stops and frees
 * with baton_http_stop(). BATON_ERR_CONFIG for a bad address, BATON_ERR_IO
 * when the port cannot be bound (errstr names address and port).
 */
baton_err_t baton_http_start(const struct baton_http_config *config, baton_http_t **out,
                             char *errstr, size_t errstr_size);

/* The port the server listens on (the chosen one when config port was 0). */
int baton_http_port(const baton_http_t *server);

/* Stops the server: closes the socket and joins its threads. NULL is a
 * no-op. */
void baton_http_stop(baton_http_t *server);

#endif
