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
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define CONSUME_PROGRAM "test-kafka-group-consume"
#define CONSUME_EXIT_USAGE 2
/* How long one consumer_poll() may block; bounds the overshoot of the timeout. */
#define CONSUME_POLL_MS 100

/* The command line, parsed; strings are borrowed from argv. */
struct consume_config {
    const char *brokers; /* --brokers, else $BATON_KAFKA_BROKERS */
    const char *group;   /* --group: consumer group id */
    const char *topic;   /* --topic: the one topic to subscribe to */
    const char *match;   /* --match: substring a counted value holds, or NULL */
    long count;          /* --count: messages to wait for */
    long timeout_ms;     /* --timeout-ms: give up after this long */
};

/* The flag table: --help is printed from it, parse_args() follows it. */
static const struct consume_flag {
    const char *name;    /* long flag, with the leading "--" */
    const char *metavar; /* argument name, or NULL for a switch */
    const char *doc;     /* one line for --help */
} consume_flags[] = {
    {"--brokers", "LIST", "bootstrap servers (default $BATON_KAFKA_BROKERS)"},
    {"--group", "ID", "consumer group id (required)"},
    {"--topic", "NAME", "topic to subscribe to (required)"},
    {"--count", "N", "messages to wait for (default 1)"},
    {"--match", "TEXT", "count only values that contain TEXT"},
    {"--timeout-ms", "MS", "give up after MS milliseconds (default 30000)"},
    {"--help", NULL, "print this help and exit"},
};

static void print_help(void) {
    printf("Usage: %s --group ID --topic NAME [FLAGS]\n"
           "Consumes as a member of a consumer group until --count values "
           "arrived; prints each.\n\nFlags:\n",
           CONSUME_PROGRAM);
    for (size_t i = 0; i < sizeof(consume_flags) / sizeof(consume_flags[0]); i++) {
        char lhs[64];
        snprintf(lhs, sizeof(lhs), "%s%s%s", consume_flags[i].name,
                 consume_flags[i].metavar ? " " : "",
                 consume_flags[i].metavar ? consume_flags[i].metavar : "");
        printf("  %-20s %s\n", lhs, consume_flags[i].doc);
    }
}

/* Prints one line on stderr; returns the usage-error exit code. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;

    fprintf(stderr, "%s: ", CONSUME_PROGRAM);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try --help)\n");
    return CONSUME_EXIT_USAGE;
}

/* Parses a decimal long >= min; returns 0 on success, -1 otherwise. */
static int parse_long(const char *s, long min, long *out) {
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

/*
 * Parses argv into conf. Accepts "--flag VALUE" and "--flag=VALUE". Returns
 * 0 to run, -1 when --help was printed, or CONSUME_EXIT_USAGE after one line
 * on stderr.
 */
static int parse_args(int argc, char **argv, struct consume_config *conf) {
    memset(conf, 0, sizeof(*conf));
    conf->brokers = getenv("BATON_KAFKA_BROKERS");
    conf->count = 1;
    conf->timeout_ms = 30000;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        const struct consume_flag *flag = NULL;
        size_t name_len = strcspn(arg, "=");

        for (size_t f = 0; f < sizeof(consume_flags) / sizeof(consume_flags[0]); f++) {
            if (strlen(consume_flags[f].name) == name_len &&
                strncmp(arg, consume_flags[f].name, name_len) == 0)
                flag = &consume_flags[f];
        }
        if (!flag)
            return usage_error("unknown flag '%s'", arg);
        if (arg[name_len] == '=') {
            if (!flag->metavar)
                return usage_error("flag '%s' takes no value", arg);
            value = arg + name_len + 1;
        } else if (flag->metavar) {
            if (i + 1 >= argc)
                return usage_error("flag '%s' needs a value", arg);
            value = argv[++i];
        }

        if (strcmp(flag->name, "--help") == 0) {
            print_help();
            return -1;
        } else if (strcmp(flag->name, "--brokers") == 0) {
            conf->brokers = value;
        } else if (strcmp(flag->name, "--group") == 0) {
            conf->group = value;
        } else if (strcmp(flag->name, "--topic") == 0) {
            conf->topic = value;
        } else if (strcmp(flag->name, "--match") == 0) {
            conf->match = value;
        } else if (strcmp(flag->name, "--count") == 0) {
            if (parse_long(value, 1, &conf->count) != 0)
                return usage_error("--count must be a number >= 1, got '%s'", value);
        } else if (strcmp(flag->name, "--timeout-ms") == 0) {
            if (parse_long(value, 1, &conf->timeout_ms) != 0)
                return usage_error("--timeout-ms must be a number >= 1, got '%s'", value);
        }
    }
    if (!conf->brokers || !*conf->brokers)
        return usage_error("no brokers: pass --brokers or set BATON_KAFKA_BROKERS");
    if (!conf->group || !*conf->group)
        return usage_error("--group is required");
    if (!conf->topic || !*conf->topic)
        return usage_error("--topic is required");
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
            CONSUME_PROGRAM, conf.group, conf.topic, got, conf.count, now_ms() - start_ms,
            first_ms);

    err = rd_kafka_consumer_close(rk);
    if (err)
        fprintf(stderr, "%s: close: %s\n", CONSUME_PROGRAM, rd_kafka_err2str(err));
    rd_kafka_destroy(rk);
    return rc;
}
