/*
 * test_kafka.c - common/kafka.c: the order in which a configuration is
 * built (baton's own settings, then the caller's defaults, then the
 * operator's --kafka-config-file, then its --kafka-config, each winning over
 * the one before) and clear errors for a bad property that never quote a
 * property's value, which may be a password. baton's own reconnect.backoff.max.ms (1 s)
 * is what lets ingest resume soon after a broker comes back
 * (tests/chaos/scenario_kafka_broker.sh measures it).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"

/* The value of `name` in `conf` (a static buffer). */
static const char *get(rd_kafka_conf_t *conf, const char *name) {
    static char value[512];
    size_t size = sizeof value;
    ck_assert_int_eq(rd_kafka_conf_get(conf, name, value, &size), RD_KAFKA_CONF_OK);
    return value;
}

START_TEST(test_baton_settings) {
    char errstr[256];
    rd_kafka_conf_t *conf =
        baton_kafka_conf_new("h1:9092,h2:9092", NULL, 0, NULL, NULL, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(conf);
    ck_assert_str_eq(get(conf, "bootstrap.servers"), "h1:9092,h2:9092");
    ck_assert_str_eq(get(conf, "reconnect.backoff.max.ms"), "1000");
    rd_kafka_conf_destroy(conf);
}
END_TEST

START_TEST(test_defaults_then_extra_win) {
    char errstr[256];
    const struct baton_kafka_prop defaults[] = {{"reconnect.backoff.max.ms", "500"},
                                                {"linger.ms", "5"}};
    rd_kafka_conf_t *conf =
        baton_kafka_conf_new("h:1", defaults, 2, NULL, NULL, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(conf);
    ck_assert_str_eq(get(conf, "reconnect.backoff.max.ms"), "500");
    ck_assert_str_eq(get(conf, "linger.ms"), "5");
    rd_kafka_conf_destroy(conf);

    conf = baton_kafka_conf_new("h:1", defaults, 2, "reconnect.backoff.max.ms=3000,linger.ms=0",
                                NULL, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(conf);
    ck_assert_str_eq(get(conf, "reconnect.backoff.max.ms"), "3000");
    ck_assert_str_eq(get(conf, "linger.ms"), "0");
    rd_kafka_conf_destroy(conf);
}
END_TEST

/* A secret no error message may quote. */
#define SECRET "S3cretPW"

/* Asserts that building a configuration fails, with `want` in the error
 * and SECRET nowhere in it. */
static void refused(const char *extra, const char *file, const char *want) {
    char errstr[512] = "";
    ck_assert_ptr_null(baton_kafka_conf_new("h:1", NULL, 0, extra, file, errstr, sizeof errstr));
    ck_assert_msg(strstr(errstr, want), "'%s' not in: %s", want, errstr);
    ck_assert_msg(!strstr(errstr, SECRET) && !strstr(errstr, "etPW"), "secret in: %s", errstr);
}

START_TEST(test_bad_properties) {
    refused("no.such.property=1", NULL, "no.such.property");
    refused("linger.ms=abc", NULL, "linger.ms");
    /* A bare entry may be a password that lost its name: not shown. */
    refused("linger.ms=5," SECRET, NULL, "entry 2 is not name=value");
}
END_TEST

START_TEST(test_values_never_printed) {
    /* A mistyped name with a secret value: the name only. */
    refused("sasl.pasword=" SECRET, NULL, "'sasl.pasword': No such configuration property");
    /* A value librdkafka refuses (and quotes in its own reason). */
    refused("security.protocol=" SECRET, NULL, "'security.protocol': invalid value");
    /* A value with a comma: the tail is not printed, the way out is. */
    refused("sasl.password=S3cr,etPW", NULL, "--kafka-config-file");
}
END_TEST

/* Writes `text` to a new temporary file; returns its path (static buffer). */
static const char *temp_file(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_kafka.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(test_config_file) {
    const char *path = temp_file("# comment\n"
                                 "\n"
                                 "  client.id = a,b=c # not a comment  \r\n"
                                 "linger.ms=7\n"
                                 "   # indented comment\n"
                                 "queue.buffering.max.ms=9");
    char errstr[256] = "";
    rd_kafka_conf_t *conf = baton_kafka_conf_new("h:1", NULL, 0, NULL, path, errstr, sizeof errstr);
    ck_assert_msg(conf != NULL, "%s", errstr);
    ck_assert_str_eq(get(conf, "client.id"), "a,b=c # not a comment");
    ck_assert_str_eq(get(conf, "linger.ms"), "9"); /* alias of queue.buffering.max.ms */
    rd_kafka_conf_destroy(conf);
    /* --kafka-config wins over the file. */
    conf = baton_kafka_conf_new("h:1", NULL, 0, "client.id=flag", path, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(conf);
    ck_assert_str_eq(get(conf, "client.id"), "flag");
    rd_kafka_conf_destroy(conf);
    unlink(path);
}
END_TEST

START_TEST(test_config_file_errors) {
    char errstr[256] = "";
    ck_assert_ptr_null(baton_kafka_conf_new("h:1", NULL, 0, NULL, "/nonexistent/kafka.conf", errstr,
                                            sizeof errstr));
    ck_assert_ptr_nonnull(strstr(errstr, "/nonexistent/kafka.conf"));
    const char *path = temp_file("linger.ms=1\n" SECRET "\n");
    refused(NULL, path, "line 2: not name=value");
    unlink(path);
    path = temp_file("# x\nsasl.pasword=" SECRET "\n");
    refused(NULL, path, "line 2: Kafka property 'sasl.pasword'");
    unlink(path);
    path = temp_file("security.protocol=" SECRET "\n");
    refused(NULL, path, "line 1: Kafka property 'security.protocol': invalid value");
    unlink(path);
}
END_TEST

static Suite *kafka_suite(void) {
    Suite *s = suite_create("kafka");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_baton_settings);
    tcase_add_test(core, test_defaults_then_extra_win);
    tcase_add_test(core, test_config_file);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_bad_properties);
    tcase_add_test(errors, test_values_never_printed);
    tcase_add_test(errors, test_config_file_errors);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(kafka_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
