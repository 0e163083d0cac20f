/*
 * http.h - the daemons' metrics and health endpoint (libmicrohttpd).
 *
 *   GET /metrics   the registry in the Prometheus text format 0.0.4
 *   GET /healthz   200 "ok" while the process runs
 *   GET /readyz    200 "ready" when the caller's readiness callback says the
 *                  process's connections are up, else 503 with its reason
 *   anything else  404 (405 for a method other than GET or HEAD)
 *
 * The server runs on libmicrohttpd's own threads, one per connection (at
 * most a few at once), so a slow readiness probe never delays a scrape and
 * nothing here ever runs on, or blocks, a daemon's own threads.
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

struct baton_http_config {
    const char *bind;          /* IPv4 or IPv6 address to listen on; NULL = "127.0.0.1" */
    int port;                  /* TCP port; 0 = any free port (see baton_http_port()) */
    baton_metrics_t *metrics;  /* borrowed, must outlive the server; NULL = empty /metrics */
    baton_http_ready_fn ready; /* NULL = always ready */
    void *ready_ctx;           /* passed to `ready`, borrowed */
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
