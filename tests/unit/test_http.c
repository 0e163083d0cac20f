/*
 * test_http.c - common/http.c: the endpoint server on a free loopback port,
 * spoken to over a real TCP socket: /metrics carries the registry with the
 * exposition content type, /healthz is 200, /readyz follows the readiness
 * callback (503 with its reason), unknown paths are 404, other methods
 * 405, a bad bind address or a taken port is refused with a clear error.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"

struct response {
    int status;
    char headers[2048];
    char body[8192];
};

/* One request with Connection: close; reads to EOF. */
static void request(int port, const char *method, const char *path, struct response *r) {
    memset(r, 0, sizeof *r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    char req[512];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                 method, path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    static char buf[16384];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd);
    ck_assert_int_eq(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
    char *end = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    snprintf(r->headers, sizeof r->headers, "%.*s", (int)(end - buf), buf);
    snprintf(r->body, sizeof r->body, "%s", end + 4);
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
    struct baton_http_config config = {"127.0.0.1", 0, m, ready, NULL};
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
    ck_assert_str_eq(r.body, "redis: Connection refused\n");
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
    struct baton_http_config config = {"127.0.0.1", 0, NULL, NULL, NULL};
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
    struct baton_http_config config = {"not-an-address", 0, NULL, NULL, NULL};
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

static Suite *http_suite(void) {
    Suite *s = suite_create("http");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_endpoints);
    tcase_add_test(core, test_no_registry_no_probe);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_bad_config);
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
