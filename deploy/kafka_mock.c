/*
 * kafka_mock.c - baton-kafka-mock, the local stack's embedded Kafka.
 *
 * No real Kafka broker can be installed on the development machines, so the
 * local stack (deploy/stack.sh) runs librdkafka's own mock cluster
 * (rdkafka_mock.h, shipped in librdkafka-dev) as this small standalone
 * process. The mock brokers speak the real Kafka protocol on 127.0.0.1, so
 * baton's producer, scheduler, kcat and the tests connect to it exactly as
 * they would to Apache Kafka; only the bootstrap address differs.
 *
 * What the program does: create a producer handle (the mock API needs an
 * rd_kafka_t for its bookkeeping; the handle itself never produces), create
 * a cluster of --brokers brokers on it, create the topics, print the
 * bootstrap list on stdout, write it to --ready-file (tmp + rename, so a
 * reader never sees half a line), then sleep in sigsuspend() until SIGTERM or
 * SIGINT, destroy the cluster and exit 0.
 *
 * Why the topics are created here, with many partitions: the mock keeps at
 * most 5 MiB or 100,000 message sets per partition and silently drops the
 * oldest beyond that, so a busy topic needs enough partitions for ingest to
 * stay ahead of retention. Creating topics up front also fixes their partition
 * count instead of leaving it to auto-creation (which in the mock gives 4).
 *
 * What the mock in librdkafka 2.0.2 does and does not do (checked by hand and
 * by tests/integration/test_kcat_consume.sh):
 *  - Producing, fetching, the high-level balanced consumer with group.id,
 *    offset commits and fetches all work; a group's committed offsets
 *    outlive its members (a new member resumes after them). The first
 *    JoinGroup of a group is held for about 3 s (the mock's initial
 *    rebalance delay) before members get an assignment, so a group
 *    consumer's first message arrives ~3 s after subscribe(); a member
 *    joining the same group after the last one left waited ~5 s.
 *  - Retention is as said above: 7,000 messages of 1 KiB produced into one
 *    partition left offsets 2881..6999, about the last 5 MiB.
 *  - The replication factor is metadata only, and in 2.0.2 not even that is
 *    ours to choose: rd_kafka_mock_topic_create() ignores its
 *    replication_factor argument and every partition of every topic lists
 *    brokers 1..min(3, brokers) as replicas and ISRs, with a random one of
 *    them as leader (checked with kcat -L for factors 2 and 5 on 3 and 5
 *    brokers). There is one copy of the data and no replication, so the
 *    replica lists prove nothing about durability; hence no flag for it.
 *  - Topics unknown to the cluster are auto-created on a producer's metadata
 *    request (4 partitions); the CreateTopics admin API is not supported.
 *  - Brokers listen on ephemeral ports chosen by the kernel, so two mocks
 *    never collide and no port needs to be picked in advance.
 *  - Everything is in memory: destroying the cluster loses all messages.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_PROGRAM "baton-kafka-mock"
/* More would only cost memory: every broker is a thread and a socket. */
#define MOCK_MAX_BROKERS 64
/* Topics a stack needs are few; a fixed array keeps parsing allocation-free. */
#define MOCK_MAX_TOPICS 64
/* The mock has no real limit; this catches typos such as 16000. */
#define MOCK_MAX_PARTITIONS 1024
/* Exit status for a bad command line, as for other baton binaries. */
#define MOCK_EXIT_USAGE 2

/* One topic to create. */
struct mock_topic {
    char name[250]; /* Kafka topic names are at most 249 characters */
    int partitions; /* partition count, 1..MOCK_MAX_PARTITIONS */
};

/* The whole command line, parsed. */
struct mock_config {
    int brokers;                               /* --brokers: broker count */
    const char *ready_file;                    /* --ready-file: borrowed from argv, or NULL */
    struct mock_topic topics[MOCK_MAX_TOPICS]; /* defaults, then --topic */
    int topic_cnt;                             /* used entries of topics[] */
};

/* The flag table: --help is printed from it, parse_args() follows it. */
static const struct mock_flag {
    const char *name;    /* long flag, with the leading "--" */
    const char *metavar; /* argument name, or NULL for a switch */
    const char *doc;     /* one line for --help */
} mock_flags[] = {
    {"--brokers", "N", "number of mock brokers (default 3)"},
    {"--topic", "NAME:PARTITIONS",
     "create topic NAME with PARTITIONS partitions; repeatable; overrides a "
     "default topic of the same name (defaults: baton.tasks:16, "
     "baton.tasks.dlq:4)"},
    {"--ready-file", "PATH",
     "once the cluster is up, write the bootstrap address to PATH "
     "(atomically: PATH.tmp, then rename)"},
    {"--help", NULL, "print this help and exit"},
};

/* Set by the SIGTERM/SIGINT handler, read by main's sigsuspend loop. */
static volatile sig_atomic_t mock_stop_requested;

static void mock_on_signal(int signo) {
    (void)signo;
    mock_stop_requested = 1;
}

static void print_help(FILE *out) {
    fprintf(out,
            "Usage: %s [FLAGS]\n"
            "Runs a librdkafka mock Kafka cluster on 127.0.0.1 until SIGTERM "
            "or SIGINT.\n"
            "Prints the bootstrap address (host:port,...) as one line on "
            "stdout once ready.\n\nFlags:\n",
            MOCK_PROGRAM);
    for (size_t i = 0; i < sizeof(mock_flags) / sizeof(mock_flags[0]); i++) {
        char lhs[64];
        snprintf(lhs, sizeof(lhs), "%s%s%s", mock_flags[i].name, mock_flags[i].metavar ? " " : "",
                 mock_flags[i].metavar ? mock_flags[i].metavar : "");
        fprintf(out, "  %-32s %s\n", lhs, mock_flags[i].doc);
    }
}

/* Prints one line on stderr; returns the usage-error exit code. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;

    fprintf(stderr, "%s: ", MOCK_PROGRAM);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try --help)\n");
    return MOCK_EXIT_USAGE;
}

/* Parses a decimal int in [min, max]; returns 0 on success, -1 otherwise. */
static int parse_int(const char *s, int min, int max, int *out) {
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* Adds or replaces (by name) a topic; returns 0, or -1 if the table is full. */
static int set_topic(struct mock_config *conf, const char *name, size_t name_len, int partitions) {
    struct mock_topic *t = NULL;

    for (int i = 0; i < conf->topic_cnt; i++) {
        if (strlen(conf->topics[i].name) == name_len &&
            memcmp(conf->topics[i].name, name, name_len) == 0)
            t = &conf->topics[i];
    }
    if (!t) {
        if (conf->topic_cnt == MOCK_MAX_TOPICS)
            return -1;
        t = &conf->topics[conf->topic_cnt++];
        memcpy(t->name, name, name_len);
        t->name[name_len] = '\0';
    }
    t->partitions = partitions;
    return 0;
}

/* Parses "NAME:PARTITIONS" into conf; returns 0 or a usage-error exit code. */
static int parse_topic(struct mock_config *conf, const char *spec) {
    const char *colon = strrchr(spec, ':');
    size_t name_len;
    int partitions;

    if (!colon || colon == spec)
        return usage_error("--topic wants NAME:PARTITIONS, got '%s'", spec);
    name_len = (size_t)(colon - spec);
    if (name_len >= sizeof(conf->topics[0].name))
        return usage_error("--topic name too long in '%s'", spec);
    for (size_t i = 0; i < name_len; i++) {
        char c = spec[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return usage_error("--topic name may only hold [A-Za-z0-9._-], got '%s'", spec);
    }
    if (parse_int(colon + 1, 1, MOCK_MAX_PARTITIONS, &partitions) != 0)
        return usage_error("--topic partitions must be 1..1024, got '%s'", spec);
    if (set_topic(conf, spec, name_len, partitions) != 0)
        return usage_error("too many topics (at most 64), at '%s'", spec);
    return 0;
}

/*
 * Parses argv into conf (defaults first). Accepts "--flag VALUE" and
 * "--flag=VALUE". Returns 0 to run, -1 when --help was printed, or
 * MOCK_EXIT_USAGE after printing one line on stderr.
 */
static int parse_args(int argc, char **argv, struct mock_config *conf) {
    memset(conf, 0, sizeof(*conf));
    conf->brokers = 3;
    set_topic(conf, "baton.tasks", strlen("baton.tasks"), 16);
    set_topic(conf, "baton.tasks.dlq", strlen("baton.tasks.dlq"), 4);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        const struct mock_flag *flag = NULL;
        size_t name_len = strcspn(arg, "=");
        int rc;

        for (size_t f = 0; f < sizeof(mock_flags) / sizeof(mock_flags[0]); f++) {
            if (strlen(mock_flags[f].name) == name_len &&
                strncmp(arg, mock_flags[f].name, name_len) == 0)
                flag = &mock_flags[f];
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
            print_help(stdout);
            return -1;
        } else if (strcmp(flag->name, "--brokers") == 0) {
            if (parse_int(value, 1, MOCK_MAX_BROKERS, &conf->brokers) != 0)
                return usage_error("--brokers must be 1..64, got '%s'", value);
        } else if (strcmp(flag->name, "--topic") == 0) {
            if ((rc = parse_topic(conf, value)) != 0)
                return rc;
        } else if (strcmp(flag->name, "--ready-file") == 0) {
            if (value[0] == '\0')
                return usage_error("--ready-file needs a path");
            conf->ready_file = value;
        }
    }
    return 0;
}

/*
 * Writes "bootstraps\n" to path via path.tmp + rename(), so whoever polls for
 * path sees either nothing or the whole line. Returns 0, or -1 with a line on
 * stderr.
 */
static int write_ready_file(const char *path, const char *bootstraps) {
    char tmp[PATH_MAX];
    FILE *f;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);

    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        fprintf(stderr, "%s: --ready-file path too long\n", MOCK_PROGRAM);
        return -1;
    }
    if (!(f = fopen(tmp, "w"))) {
        fprintf(stderr, "%s: open %s: %s\n", MOCK_PROGRAM, tmp, strerror(errno));
        return -1;
    }
    if (fprintf(f, "%s\n", bootstraps) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fprintf(stderr, "%s: write %s: %s\n", MOCK_PROGRAM, tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "%s: rename %s -> %s: %s\n", MOCK_PROGRAM, tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct mock_config conf;
    struct sigaction sa;
    sigset_t stop_signals, wait_mask;
    rd_kafka_conf_t *kconf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    const char *bootstraps;
    char errstr[512];
    int rc;

    if ((rc = parse_args(argc, argv, &conf)) != 0)
        return rc < 0 ? 0 : rc;

    /*
     * Block the stop signals before librdkafka starts its threads, which
     * inherit the mask: then only this thread takes them, inside
     * sigsuspend(), and a signal arriving before the wait is not lost.
     */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop_signals, &wait_mask) != 0) {
        fprintf(stderr, "%s: sigprocmask: %s\n", MOCK_PROGRAM, strerror(errno));
        return 1;
    }
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = mock_on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        fprintf(stderr, "%s: sigaction: %s\n", MOCK_PROGRAM, strerror(errno));
        return 1;
    }

    kconf = rd_kafka_conf_new();
    /*
     * The handle only hosts the cluster and has nothing to connect to; level
     * 4 (warning) hides the notice that it has no bootstrap.servers, which
     * would only mislead whoever reads the stack's kafka.log.
     */
    if (rd_kafka_conf_set(kconf, "client.id", MOCK_PROGRAM, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(kconf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s: %s\n", MOCK_PROGRAM, errstr);
        rd_kafka_conf_destroy(kconf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "%s: rd_kafka_new: %s\n", MOCK_PROGRAM, errstr);
        rd_kafka_conf_destroy(kconf);
        return 1;
    }
    kconf = NULL; /* now owned by rk */

    mcluster = rd_kafka_mock_cluster_new(rk, conf.brokers);
    if (!mcluster) {
        fprintf(stderr, "%s: could not create a mock cluster of %d brokers\n", MOCK_PROGRAM,
                conf.brokers);
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 0; i < conf.topic_cnt; i++) {
        /* 2.0.2 ignores the factor and uses min(3, brokers); say so anyway. */
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mcluster, conf.topics[i].name, conf.topics[i].partitions,
                                       conf.brokers < 3 ? conf.brokers : 3);
        if (err) {
            fprintf(stderr, "%s: create topic %s: %s\n", MOCK_PROGRAM, conf.topics[i].name,
                    rd_kafka_err2str(err));
            rd_kafka_mock_cluster_destroy(mcluster);
            rd_kafka_destroy(rk);
            return 1;
        }
    }

    bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
    printf("%s\n", bootstraps);
    fflush(stdout);
    fprintf(stderr, "%s: %d brokers at %s; topics:", MOCK_PROGRAM, conf.brokers, bootstraps);
    for (int i = 0; i < conf.topic_cnt; i++)
        fprintf(stderr, " %s:%d", conf.topics[i].name, conf.topics[i].partitions);
    fputc('\n', stderr);

    rc = 0;
    if (conf.ready_file && write_ready_file(conf.ready_file, bootstraps) != 0)
        rc = 1;
    while (rc == 0 && !mock_stop_requested)
        sigsuspend(&wait_mask); /* returns after the handler ran */

    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    if (rc == 0)
        fprintf(stderr, "%s: stopped\n", MOCK_PROGRAM);
    return rc;
}
