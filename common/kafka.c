/*
 * kafka.c - librdkafka configuration helpers (see kafka.h).
 */
#include "kafka.h"

#include <errno.h>
#include <stdio.h>
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
    /* librdkafka's reason quotes the value ('Invalid value "..." for
     * configuration property'), and values include sasl.password and
     * ssl.key.password: only the name is ever printed. */
    char why[256];
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, why, sizeof why);
    if (res == RD_KAFKA_CONF_UNKNOWN)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "Kafka property '%s': No such configuration property", name);
    if (res != RD_KAFKA_CONF_OK)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                            "Kafka property '%s': invalid value (not shown: it may be a secret; "
                            "see librdkafka's CONFIGURATION.md for what it takes)",
                            name);
    return BATON_OK;
}

/* Strips the blanks at both ends of `s` in place; returns the new start. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len > 0 && strchr(" \t\r\n", s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* Applies the properties of --kafka-config-file `path` in file order. */
static baton_err_t apply_file(rd_kafka_conf_t *conf, const char *path, char *errstr,
                              size_t errstr_size) {
    FILE *f = fopen(path, "r");
    if (!f)
        return baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG, "--kafka-config-file %s: %s",
                            path, strerror(errno));
    baton_err_t err = BATON_OK;
    char *line = NULL;
    size_t cap = 0;
    for (int lineno = 1; !err && getline(&line, &cap, f) >= 0; lineno++) {
        char *item = trim(line);
        if (*item == '\0' || *item == '#')
            continue;
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            /* The line is not shown: it may be a secret missing its name. */
            err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                               "--kafka-config-file %s line %d: not name=value", path, lineno);
            break;
        }
        *eq = '\0';
        char *name = trim(item);
        char *value = trim(eq + 1);
        err = baton_kafka_conf_set(conf, name, value, errstr, errstr_size);
        if (err) {
            char reason[512];
            snprintf(reason, sizeof reason, "%s", errstr);
            baton_seterr(errstr, errstr_size, err, "--kafka-config-file %s line %d: %s", path,
                         lineno, reason);
        }
    }
    if (!err && ferror(f))
        err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                           "--kafka-config-file %s: read error", path);
    free(line);
    fclose(f);
    return err;
}

/* Applies the "k=v,k=v" of --kafka-config in order. */
static baton_err_t apply_list(rd_kafka_conf_t *conf, const char *extra, char *errstr,
                              size_t errstr_size) {
    char *copy = strdup(extra);
    if (!copy)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    baton_err_t err = BATON_OK;
    char *save = NULL;
    int n = 1;
    for (char *item = strtok_r(copy, ",", &save); item && !err;
         item = strtok_r(NULL, ",", &save), n++) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            /* Most often the tail of a value that held a comma: not shown,
             * since that value may be a password. */
            err = baton_seterr(errstr, errstr_size, BATON_ERR_CONFIG,
                               "--kafka-config: entry %d is not name=value (a value cannot "
                               "contain ','; put such properties in --kafka-config-file)",
                               n);
            break;
        }
        *eq = '\0';
        err = baton_kafka_conf_set(conf, item, eq + 1, errstr, errstr_size);
    }
    free(copy);
    return err;
}

rd_kafka_conf_t *baton_kafka_conf_new(const char *brokers, const struct baton_kafka_prop *defaults,
                                      size_t ndefaults, const char *extra, const char *extra_file,
                                      char *errstr, size_t errstr_size) {
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
    if (extra_file && *extra_file && apply_file(conf, extra_file, errstr, errstr_size))
        goto fail;
    if (extra && *extra && apply_list(conf, extra, errstr, errstr_size))
        goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
