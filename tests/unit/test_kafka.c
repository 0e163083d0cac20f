/*
 * test_kafka.c - common/kafka.c: the order in which a configuration is
 * built (baton's own settings, then the caller's defaults, then the
 * operator's --kafka-config, each winning over the one before) and clear
 * errors for a bad property. baton's own reconnect.backoff.max.ms (1 s)
 * is what lets ingest resume soon after a broker comes back
 * (tests/chaos/scenario_kafka_broker.sh measures it).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

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
    rd_kafka_conf_t *conf = baton_kafka_conf_new("h1:9092,h2:9092", NULL, 0, NULL, errstr,
                                                 sizeof errstr);
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
        baton_kafka_conf_new("h:1", defaults, 2, NULL, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(conf);
    ck_assert_str_eq(get(conf, "reconnect.backoff.max.ms"), "500");
    ck_assert_str_eq(get(conf, "linger.ms"), "5");
    rd_kafka_conf_destroy(conf);

    conf = baton_kafka_conf_new("h:1", defaults, 2, "reconnect.backoff.max.ms=3000,linger.ms=0",
                                errstr, sizeof errstr);
    ck_assert_ptr_nonnull(conf);
    ck_assert_str_eq(get(conf, "reconnect.backoff.max.ms"), "3000");
    ck_assert_str_eq(get(conf, "linger.ms"), "0");
    rd_kafka_conf_destroy(conf);
}
END_TEST

START_TEST(test_bad_properties) {
    char errstr[256] = "";
    ck_assert_ptr_null(
        baton_kafka_conf_new("h:1", NULL, 0, "no.such.property=1", errstr, sizeof errstr));
    ck_assert_ptr_nonnull(strstr(errstr, "no.such.property"));
    errstr[0] = '\0';
    ck_assert_ptr_null(baton_kafka_conf_new("h:1", NULL, 0, "linger.ms", errstr, sizeof errstr));
    ck_assert_ptr_nonnull(strstr(errstr, "linger.ms"));
    errstr[0] = '\0';
    ck_assert_ptr_null(
        baton_kafka_conf_new("h:1", NULL, 0, "linger.ms=abc", errstr, sizeof errstr));
    ck_assert_ptr_nonnull(strstr(errstr, "linger.ms"));
}
END_TEST

static Suite *kafka_suite(void) {
    Suite *s = suite_create("kafka");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_baton_settings);
    tcase_add_test(core, test_defaults_then_extra_win);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_bad_properties);
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
