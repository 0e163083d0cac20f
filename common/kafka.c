/*
 * kafka.c - librdkafka configuration helpers (see kafka.h).
 */
#include "kafka.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The longest wait between two connection attempts to one broker (ms). */
#define RECONNECT_BACKOFF_MAX_MS "1000"

/*
 * librdkafka's own log lines, as baton JSON lines (syslog levels mapped).
 * Configuration warnings are routine here, since one --kafka-config feeds
 * both consumers and producers: they are logged at info.
 * @locality any librdkafka thread
 */
static void kafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *text) {
    baton_log_level_t mapped = level <= 3   ? BATON_LOG_ERROR
                               : level == 4 ? BATON_LOG_WARN
                               : level <= 6 ? BATON_LOG_INFO
                                            : BATON_LOG_DEBUG;
    if (strcmp(facility, "CONFWARN") == 0)
        mapped = BATON_LOG_INFO;
    if (mapped < baton_log_threshold)
        return;
    struct baton_log_field fields[] = {{"client", rd_kafka_name(rk)}, {"facility", facility}};
    baton_log_write(mapped, "kafka", fields, 2, "%s", text);
}

baton_err_t baton_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                                 char *errstr, size_t errstr_size) {
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "Kafka property %s=%s: %s",
                            name, value, why);
    return BATON_OK;
}

rd_kafka_conf_t *baton_kafka_conf_new(const char *brokers,
                                      const struct baton_kafka_prop *defaults,
                                      size_t ndefaults, const char *extra, char *errstr,
                                      size_t errstr_size) {
    if (!brokers || !*brokers) {
        baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                     "no Kafka brokers given (set BATON_KAFKA_BROKERS or --kafka-brokers)");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    if (baton_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size))
        goto fail;
    /*
     * librdkafka backs off reconnecting to a broker that refused it up to
     * 10 s (Kafka's Java client: 1 s). A broker or group coordinator that
     * comes back was then found up to 10 s late: tests/chaos/
     * scenario_kafka_broker.sh measured ingest resuming 8-10 s after the
     * broker's return, 3 s with 1 s (the rest is the group's rejoin). One
     * connection attempt a second to a dead broker costs nothing.
     */
    if (baton_kafka_conf_set(conf, "reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS, errstr,
                             errstr_size))
        goto fail;
    for (size_t i = 0; i < ndefaults; i++)
        if (baton_kafka_conf_set(conf, defaults[i].name, defaults[i].value, errstr, errstr_size))
            goto fail;
    if (extra && *extra) {
        char *copy = strdup(extra);
        if (!copy) {
            baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
            goto fail;
        }
        char *save = NULL;
        for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(item, '=');
            if (!eq || eq == item) {
                baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                             "Kafka property '%s' is not name=value", item);
                free(copy);
                goto fail;
            }
            *eq = '\0';
            if (baton_kafka_conf_set(conf, item, eq + 1, errstr, errstr_size)) {
                free(copy);
                goto fail;
            }
        }
        free(copy);
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
