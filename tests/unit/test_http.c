/*
 * test_http.c - common/http.c: the endpoint server on a free loopback port,
 * spoken to over a real TCP socket: /metrics carries the registry with the
 * exposition content type, /healthz is 200, /readyz follows the readiness
 * callback (503 naming the failing part, never its detail) from a cache,
 * unknown paths are 404, other methods 405, a bad bind address or a taken
 * port is refused with a clear error. Limits: slow clients (a header line
 * every 100 ms) are cut at the request deadline however often they send,
 * one address cannot take every slot (/healthz from 127.0.0.2 answers
 * while 127.0.0.1 is flooded), refusals are logged once per interval, and
 * a kept-alive connection gets a new deadline with each answer.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

struct response {
    int status;
    char headers[2048];
    char body[8192];
};

/* A TCP connection from `source` (a loopback address) to 127.0.0.1:port
 * whose connect, reads and writes give up after `timeout_s`; -1 if the
 * connect fails. */
static int connect_from(const char *source, int port, int timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &src.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request with Connection: close from `source`; reads to EOF. Returns
 * 0, or -1 when there is no complete answer within `timeout_s` per step. */
static int request_from(const char *source, int port, const char *method, const char *path,
                        int timeout_s, struct response *r) {
    memset(r, 0, sizeof *r);
    int fd = connect_from(source, port, timeout_s);
    if (fd < 0)
        return -1;
    char req[512];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                 method, path);
    static char buf[16384];
    size_t len = 0;
    ssize_t got = write(fd, req, (size_t)n) == n ? 1 : -1;
    while (got > 0 && (got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd);
    char *end = strstr(buf, "\r\n\r\n");
    // NOLINTNEXTLINE(cert-err34-c): a status line that is not a number fails the count
    if (got < 0 || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1 || !end)
        return -1;
    snprintf(r->headers, sizeof r->headers, "%.*s", (int)(end - buf), buf);
    snprintf(r->body, sizeof r->body, "%s", end + 4);
    return 0;
}

/* One request from 127.0.0.1 that must be answered. */
static void request(int port, const char *method, const char *path, struct response *r) {
    ck_assert_int_eq(request_from("127.0.0.1", port, method, path, 10, r), 0);
}

static atomic_int ready_flag;

static int ready(void *ctx, char *why, size_t why_size) {
    (void)ctx;
    if (atomic_load(&ready_flag))
        return 1;
    snprintf(why, why_size, "redis: Connection refused");
    return 0;
}

START_TEST(test_endpoints) {
    baton_metrics_t *m = baton_metrics_new();
    baton_metric_t *c = baton_metrics_counter(m, "baton_test_total", "T.", "queue");
    baton_metric_add(c, BATON_LABELS("q1"), 42);
    struct baton_http_config config = {"127.0.0.1", 0, m, ready, NULL, {0}};
    config.limits.ready_cache_ms = -1; /* each /readyz asks */
    baton_http_t *h = NULL;
    char errstr[256];
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_OK);
    int port = baton_http_port(h);
    ck_assert_int_gt(port, 0);

    struct response r;
    request(port, "GET", "/metrics", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.headers, "Content-Type: text/plain; version=0.0.4"));
    ck_assert_ptr_nonnull(strstr(r.body, "# TYPE baton_test_total counter\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "baton_test_total{queue=\"q1\"} 42\n"));

    request(port, "GET", "/healthz", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "ok\n");

    atomic_store(&ready_flag, 0);
    request(port, "GET", "/readyz", &r);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "not ready: redis\n");
    atomic_store(&ready_flag, 1);
    request(port, "GET", "/readyz", &r);
    ck_assert_int_eq(r.status, 200);

    request(port, "GET", "/metrics?name=x", &r); /* query strings do not matter */
    ck_assert_int_eq(r.status, 200);
    request(port, "GET", "/nope", &r);
    ck_assert_int_eq(r.status, 404);
    request(port, "GET", "/metrics/", &r);
    ck_assert_int_eq(r.status, 404);
    request(port, "POST", "/metrics", &r);
    ck_assert_int_eq(r.status, 405);
    request(port, "HEAD", "/healthz", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "");

    /* The port is taken now. */
    baton_http_t *second = NULL;
    config.port = port;
    ck_assert_int_eq(baton_http_start(&config, &second, errstr, sizeof errstr), BATON_ERR_IO);
    ck_assert_ptr_nonnull(strstr(errstr, "port"));
    baton_http_stop(h);
    baton_metrics_destroy(m);
}
END_TEST

START_TEST(test_no_registry_no_probe) {
    struct baton_http_config config = {"127.0.0.1", 0, NULL, NULL, NULL, {0}};
    baton_http_t *h = NULL;
    char errstr[256];
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_OK);
    struct response r;
    request(baton_http_port(h), "GET", "/metrics", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "");
    request(baton_http_port(h), "GET", "/readyz", &r);
    ck_assert_int_eq(r.status, 200);
    baton_http_stop(h);
    baton_http_stop(NULL);
}
END_TEST

START_TEST(test_bad_config) {
    baton_http_t *h = NULL;
    char errstr[256];
    struct baton_http_config config = {"not-an-address", 0, NULL, NULL, NULL, {0}};
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "not-an-address"));
    ck_assert_ptr_null(h);
    config.bind = "127.0.0.1";
    config.port = 70000;
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_ERR_CONFIG);
    /* IPv6 loopback works where the host has it; an error must be clean. */
    config.bind = "::1";
    config.port = 0;
    baton_err_t err = baton_http_start(&config, &h, errstr, sizeof errstr);
    ck_assert(err == BATON_OK || err == BATON_ERR_IO);
    baton_http_stop(h);
}
END_TEST

/* A readiness callback that counts its calls and fails with a reason that
 * names an internal host, as a Redis error does. */
static atomic_int probe_calls;

static int counting_ready(void *ctx, char *why, size_t why_size) {
    (void)ctx;
    atomic_fetch_add(&probe_calls, 1);
    snprintf(why, why_size, "redis: Redis 10.0.0.7:6379: connect: Connection refused");
    return 0;
}

START_TEST(test_readyz_cached) {
    atomic_store(&probe_calls, 0);
    struct baton_http_config config = {"127.0.0.1", 0, NULL, counting_ready, NULL, {0}};
    config.limits.ready_cache_ms = 60000; /* longer than the test: every answer is the first */
    baton_http_t *h = NULL;
    char errstr[256];
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_OK);
    struct response r;
    for (int i = 0; i < 20; i++) {
        request(baton_http_port(h), "GET", "/readyz", &r);
        ck_assert_int_eq(r.status, 503);
        ck_assert_str_eq(r.body, "not ready: redis\n"); /* no host, no port */
    }
    ck_assert_int_eq(atomic_load(&probe_calls), 1);
    baton_http_stop(h);

    /* Past the cache time the backends are asked again. */
    atomic_store(&probe_calls, 0);
    config.limits.ready_cache_ms = 100;
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_OK);
    int64_t give_up = baton_time_mono_ms() + 10000;
    while (atomic_load(&probe_calls) < 2 && baton_time_mono_ms() < give_up) {
        request(baton_http_port(h), "GET", "/readyz", &r);
        usleep(50 * 1000);
    }
    ck_assert_int_ge(atomic_load(&probe_calls), 2);
    baton_http_stop(h);
}
END_TEST

#define SLOW_CLIENTS 24 /* more than the per-address limit (8) and than the old global 16 */
#define DEADLINE_MS 1000

static int count_lines(FILE *log, const char *needle) {
    rewind(log);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, log))
        n += strstr(line, needle) != NULL;
    return n;
}

/* Slowloris from 127.0.0.1: each client sends a request line, then one
 * header line every 100 ms, never the end of the headers. */
START_TEST(test_slow_clients_held_off) {
    FILE *log = tmpfile();
    ck_assert_ptr_nonnull(log);
    baton_log_set_stream(log);
    struct baton_http_config config = {"127.0.0.1", 0, NULL, NULL, NULL, {0}};
    config.limits.request_deadline_ms = DEADLINE_MS;
    baton_http_t *h = NULL;
    char errstr[256];
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_OK);
    int port = baton_http_port(h);

    int fds[SLOW_CLIENTS];
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        fds[i] = connect_from("127.0.0.1", port, 1);
        ck_assert_int_ge(fds[i], 0);
        const char *line = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n";
        send(fds[i], line, strlen(line), MSG_NOSIGNAL);
    }
    /* Another address finds a slot at once while 127.0.0.1 is flooded. */
    struct response r;
    ck_assert_msg(request_from("127.0.0.2", port, "GET", "/healthz", 5, &r) == 0,
                  "/healthz from 127.0.0.2 got no answer within 5 s during the flood");
    ck_assert_int_eq(r.status, 200);

    /* Every slow client is closed by the server (refused at once, or cut at
     * the deadline), although each sends a byte more often than any idle
     * timeout. Bounded: 10 s, well above the 1 s deadline. */
    int open_count = SLOW_CLIENTS;
    int64_t give_up = baton_time_mono_ms() + 10000;
    while (open_count > 0 && baton_time_mono_ms() < give_up) {
        for (int i = 0; i < SLOW_CLIENTS; i++) {
            if (fds[i] < 0)
                continue;
            char buf[256];
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            int gone = poll(&p, 1, 0) > 0 && recv(fds[i], buf, sizeof buf, MSG_DONTWAIT) <= 0;
            if (!gone && send(fds[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) < 0)
                gone = errno == EPIPE || errno == ECONNRESET;
            if (gone) {
                close(fds[i]);
                fds[i] = -1;
                open_count--;
            }
        }
        usleep(100 * 1000);
    }
    for (int i = 0; i < SLOW_CLIENTS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ck_assert_msg(open_count == 0, "%d slow clients still connected after 10 s", open_count);

    /* With the slots free, the flooded address itself is answered. */
    ck_assert_int_eq(request_from("127.0.0.1", port, "GET", "/healthz", 5, &r), 0);
    ck_assert_int_eq(r.status, 200);
    baton_http_stop(h); /* logs the counts held back */
    baton_log_set_stream(NULL);

    /* 16 refusals and 8 cuts, in a line or two each (first + count). */
    int refusals = count_lines(log, "connection limit");
    int cuts = count_lines(log, "longer than 1000 ms");
    fclose(log);
    ck_assert_int_ge(refusals, 1);
    ck_assert_int_le(refusals, 2);
    ck_assert_int_ge(cuts, 1);
    ck_assert_int_le(cuts, 2);
}
END_TEST

/* A kept-alive connection: each answer starts a new deadline, so requests
 * spread over more than one deadline are all answered. */
START_TEST(test_keep_alive_gets_new_deadlines) {
    struct baton_http_config config = {"127.0.0.1", 0, NULL, NULL, NULL, {0}};
    config.limits.request_deadline_ms = DEADLINE_MS;
    baton_http_t *h = NULL;
    char errstr[256];
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_OK);
    int fd = connect_from("127.0.0.1", baton_http_port(h), 5);
    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 4; i++) {
        const char *req = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
        ck_assert_msg(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req),
                      "request %d on the kept-alive connection: %s", i, strerror(errno));
        char buf[1024] = "";
        size_t len = 0;
        while (!strstr(buf, "\r\n\r\nok\n")) {
            ssize_t got = recv(fd, buf + len, sizeof buf - 1 - len, 0);
            ck_assert_msg(got > 0, "request %d on the kept-alive connection: no answer", i);
            len += (size_t)got;
            buf[len] = '\0';
        }
        ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 200"));
        usleep(DEADLINE_MS * 600); /* 4 x 0.6 s: past one deadline in all */
    }
    close(fd);
    baton_http_stop(h);
}
END_TEST

START_TEST(test_bad_limits) {
    baton_http_t *h = NULL;
    char errstr[256];
    struct baton_http_config config = {"127.0.0.1", 0, NULL, NULL, NULL, {0}};
    config.limits.connections = 4;
    config.limits.per_address = 8;
    ck_assert_int_eq(baton_http_start(&config, &h, errstr, sizeof errstr), BATON_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(errstr, "per address"));
    ck_assert_ptr_null(h);
}
END_TEST

static Suite *http_suite(void) {
    Suite *s = suite_create("http");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_endpoints);
    tcase_add_test(core, test_no_registry_no_probe);
    tcase_add_test(core, test_readyz_cached);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_slow_clients_held_off);
    tcase_add_test(limits, test_keep_alive_gets_new_deadlines);
    suite_add_tcase(s, limits);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_bad_config);
    tcase_add_test(errors, test_bad_limits);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
