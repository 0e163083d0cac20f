/*
 * kafka.h - building librdkafka configurations the same way everywhere.
 *
 * Every baton Kafka client (producer library, scheduler consumer, DLQ
 * producer, tests) starts from the bootstrap servers plus an optional list
 * of raw librdkafka properties ("k=v,k=v", from --kafka-config, and a file
 * of name=value lines, from --kafka-config-file, for values with commas), so
 * that an operator can set security or tuning properties without a new flag
 * each. No error message quotes a property's value.
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
 * entries, may be NULL), then the properties of the file `extra_file`
 * (--kafka-config-file: one name=value a line, blanks around the name, the
 * '=' and the value ignored, empty lines and lines starting with '#'
 * skipped; NULL or "" for none), then each "k=v" of `extra`
 * (--kafka-config, comma-separated, so no value may hold a comma; NULL or
 * "" for none): the operator's properties win, the flag over the file.
 * Returns NULL with the offending property's name (never its value: it may
 * be a password) in errstr. Caller owns the result until rd_kafka_new()
 * succeeds with it (which takes it over).
 */
rd_kafka_conf_t *baton_kafka_conf_new(const char *brokers, const struct baton_kafka_prop *defaults,
                                      size_t ndefaults, const char *extra, const char *extra_file,
                                      char *errstr, size_t errstr_size);

/*
 * Sets one property; BATON_ERR_CONFIG naming the property (not its value,
 * nor librdkafka's reason, which quotes the value) in errstr.
 */
baton_err_t baton_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                                 char *errstr, size_t errstr_size);

#endif
