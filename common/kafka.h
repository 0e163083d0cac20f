/*
 * kafka.h - building librdkafka configurations the same way everywhere.
 *
 * Every baton Kafka client (producer library, scheduler consumer, DLQ
 * producer, tests) starts from the bootstrap servers plus an optional list
 * of raw librdkafka properties ("k=v,k=v", from --kafka-config), so that an
 * operator can set security or tuning properties without a new flag each.
 */
#ifndef BATON_KAFKA_H
#define BATON_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "error.h"

/* One librdkafka property. */
struct baton_kafka_prop {
    const char *name;
    const char *value;
};

/*
 * New configuration: bootstrap.servers = `brokers` and baton's own
 * reconnect.backoff.max.ms=1000, then the caller's `defaults` (ndefaults
 * entries, may be NULL), then each "k=v" of `extra` (comma-separated; NULL
 * or "" for none), so the operator's properties win.
 * Returns NULL with the offending property in errstr. Caller owns the result
 * until rd_kafka_new() succeeds with it (which takes it over).
 */
rd_kafka_conf_t *baton_kafka_conf_new(const char *brokers,
                                      const struct baton_kafka_prop *defaults,
                                      size_t ndefaults, const char *extra, char *errstr,
                                      size_t errstr_size);

/* Sets one property; BATON_ERR_CONFIG with librdkafka's reason in errstr. */
baton_err_t baton_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                                 char *errstr, size_t errstr_size);

#endif
