/*
 * kafka_group_consume.c - test-kafka-group-consume, a consumer-group client
 * for integration tests.
 *
 * Joins consumer group --group, subscribes to --topic and reads until it has
 * seen --count messages whose value contains --match (every message when
 * --match is not given), or until --timeout-ms passes. Each counted value is
 * printed on stdout, one per line, flushed at once, so a test script can
 * compare what arrived with what it produced. Exits 0 only when all --count
 * messages arrived, 1 on timeout or a Kafka error, 2 on a bad command line.
 *
 * Why a program and not `kcat -G`: the test checks the path baton itself
 * uses, the high-level balanced consumer (JoinGroup/SyncGroup, assignment,
 * fetch), against the local stack's embedded Kafka, with the settings that
 * make it quick there. --match exists because topics are shared by the tests
 * of one ctest run: a test tags its messages with a random token and ignores
 * everyone else's.
 *
 * Settings and why: fetch.wait.max.ms=10 so a fetch returns as soon as data
 * is there instead of after Kafka's 500 ms; session.timeout.ms=6000, the
 * low end brokers accept, so a crashed member is noticed quickly;
 * auto.offset.reset=earliest so a fresh group sees messages produced before
 * it joined. The mock cluster holds a group's first join for about 3 s before
 * it hands out partitions, so --timeout-ms should allow for that.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

#define CONSUME_PROGRAM "test-kafka-group-consume"
#define CONSUME_EXIT_USAGE 2
/* How long one consumer_poll() may block; bounds the overshoot of the timeout. */
#define CONSUME_POLL_MS 100

/* The command line, parsed by the option table; strings are borrowed. */
struct consume_config {
    const char *brokers; /* --brokers, else $BATON_KAFKA_BROKERS */
    const char *group;   /* --group: consumer group id */
    const char *topic;   /* --topic: the one topic to subscribe to */
    const char *match;   /* --match: substring a counted value holds, or NULL */
    int64_t count;       /* --count: messages to wait for */
    int64_t timeout_ms;  /* --timeout-ms: give up after this long */
};

/* Flags only (common/config.h): --help is printed from this table. */
#define CONSUME_FLAG (BATON_OPT_NO_ENV | BATON_OPT_BORROWED)
#define CFG(field) offsetof(struct consume_config, field)
static const struct baton_opt consume_options[] = {
    {"brokers", BATON_OPT_STRING | CONSUME_FLAG, NULL,
     "bootstrap servers (default $BATON_KAFKA_BROKERS)", CFG(brokers), 0, 0},
    {"group", BATON_OPT_STRING | CONSUME_FLAG | BATON_OPT_REQUIRED, NULL, "consumer group id",
     CFG(group), 0, 0},
    {"topic", BATON_OPT_STRING | CONSUME_FLAG | BATON_OPT_REQUIRED, NULL, "topic to subscribe to",
     CFG(topic), 0, 0},
    {"count", BATON_OPT_INT | CONSUME_FLAG, "1", "messages to wait for", CFG(count), 1, 1000000000},
    {"match", BATON_OPT_STRING | CONSUME_FLAG, NULL, "count only values that contain this text",
     CFG(match), 0, 0},
    {"timeout-ms", BATON_OPT_DURATION | CONSUME_FLAG, "30s", "give up after this long",
     CFG(timeout_ms), 1, 86400000},
};
#define CONSUME_OPTION_COUNT (sizeof consume_options / sizeof consume_options[0])

/*
 * Parses argv into conf. Returns 0 to run, -1 when --help was printed, or
 * CONSUME_EXIT_USAGE after one line on stderr.
 */
static int parse_args(int argc, char **argv, struct consume_config *conf) {
    char errstr[512];
    int first = argc;
    baton_err_t err = baton_config_parse(consume_options, CONSUME_OPTION_COUNT, conf, argc, argv,
                                         &first, errstr, sizeof errstr);
    if (err == BATON_ERR_HELP) {
        baton_config_help(stdout, CONSUME_PROGRAM " --group ID --topic NAME [FLAGS]",
                          "Consumes as a member of a consumer group until --count values "
                          "arrived; prints each.",
                          consume_options, CONSUME_OPTION_COUNT);
        return -1;
    }
    if (!err && first < argc)
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG, "unexpected argument '%s'",
                           argv[first]);
    /* The stack's env file names the brokers BATON_KAFKA_BROKERS, not
     * BATON_BROKERS as the table would. */
    if (!err && !conf->brokers)
        conf->brokers = getenv("BATON_KAFKA_BROKERS");
    if (!err && (!conf->brokers || !*conf->brokers))
        err = baton_seterr(errstr, sizeof errstr, BATON_ERR_CONFIG,
                           "no brokers: pass --brokers or set BATON_KAFKA_BROKERS");
    if (err) {
        fprintf(stderr, "%s: %s\n", CONSUME_PROGRAM, errstr);
        return CONSUME_EXIT_USAGE;
    }
    return 0;
}

static long long now_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Returns 1 if the payload contains match (NULL matches all), else 0. */
static int payload_matches(const rd_kafka_message_t *msg, const char *match) {
    size_t mlen, plen = msg->len;
    const char *p = msg->payload;

    if (!match)
        return 1;
    mlen = strlen(match);
    if (!p || plen < mlen)
        return 0;
    for (size_t i = 0; i + mlen <= plen; i++) {
        if (memcmp(p + i, match, mlen) == 0)
            return 1;
    }
    return 0;
}

/* Sets one property; returns 0, or -1 with a line on stderr. */
static int conf_set(rd_kafka_conf_t *kconf, const char *name, const char *value) {
    char errstr[512];

    if (rd_kafka_conf_set(kconf, name, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
        return 0;
    fprintf(stderr, "%s: %s=%s: %s\n", CONSUME_PROGRAM, name, value, errstr);
    return -1;
}

int main(int argc, char **argv) {
    struct consume_config conf;
    rd_kafka_conf_t *kconf;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *subscription;
    rd_kafka_resp_err_t err;
    char errstr[512];
    long got = 0;
    long long start_ms, deadline_ms, first_ms = -1;
    int rc;

    if ((rc = parse_args(argc, argv, &conf)) != 0)
        return rc < 0 ? 0 : rc;

    kconf = rd_kafka_conf_new();
    if (conf_set(kconf, "bootstrap.servers", conf.brokers) != 0 ||
        conf_set(kconf, "group.id", conf.group) != 0 ||
        conf_set(kconf, "client.id", CONSUME_PROGRAM) != 0 ||
        conf_set(kconf, "auto.offset.reset", "earliest") != 0 ||
        conf_set(kconf, "fetch.wait.max.ms", "10") != 0 ||
        conf_set(kconf, "session.timeout.ms", "6000") != 0 ||
        conf_set(kconf, "heartbeat.interval.ms", "500") != 0) {
        rd_kafka_conf_destroy(kconf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "%s: rd_kafka_new: %s\n", CONSUME_PROGRAM, errstr);
        rd_kafka_conf_destroy(kconf);
        return 1;
    }
    kconf = NULL; /* now owned by rk */
    rd_kafka_poll_set_consumer(rk);

    subscription = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subscription, conf.topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(rk, subscription);
    rd_kafka_topic_partition_list_destroy(subscription);
    if (err) {
        fprintf(stderr, "%s: subscribe %s: %s\n", CONSUME_PROGRAM, conf.topic,
                rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return 1;
    }

    start_ms = now_ms();
    deadline_ms = start_ms + conf.timeout_ms;
    rc = 1;
    while (got < conf.count && now_ms() < deadline_ms) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, CONSUME_POLL_MS);

        if (!msg)
            continue;
        if (msg->err) {
            /* Partition EOF is off; anything else is worth a line, and a
             * missing topic would never heal on its own. */
            fprintf(stderr, "%s: %s\n", CONSUME_PROGRAM, rd_kafka_message_errstr(msg));
            if (msg->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                rd_kafka_message_destroy(msg);
                break;
            }
        } else if (payload_matches(msg, conf.match)) {
            if (first_ms < 0)
                first_ms = now_ms() - start_ms;
            printf("%.*s\n", (int)msg->len, (const char *)msg->payload);
            fflush(stdout);
            got++;
        }
        rd_kafka_message_destroy(msg);
    }
    if (got == conf.count)
        rc = 0;
    fprintf(stderr,
            "%s: group %s topic %s: %ld/%ld messages in %lld ms "
            "(first after %lld ms)\n",
            CONSUME_PROGRAM, conf.group, conf.topic, got, (long)conf.count, now_ms() - start_ms,
            first_ms);

    err = rd_kafka_consumer_close(rk);
    if (err)
        fprintf(stderr, "%s: close: %s\n", CONSUME_PROGRAM, rd_kafka_err2str(err));
    rd_kafka_destroy(rk);
    return rc;
}
