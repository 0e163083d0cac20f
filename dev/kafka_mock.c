/*
 * kafka_mock.c - baton-kafka-mock, the local stack's embedded Kafka.
 *
 * No real Kafka broker can be installed on the development machines, so the
 * local stack (dev/stack.sh) runs librdkafka's own mock cluster
 * (rdkafka_mock.h, shipped in librdkafka-dev) as this small standalone
 * process. The mock brokers speak the real Kafka protocol on 127.0.0.1, so
 * baton's producer, scheduler, kcat and the tests connect to it exactly as
 * they would to Apache Kafka; only the bootstrap address differs.
 *
 * What the program does: create a producer handle (the mock API needs an
 * rd_kafka_t for its bookkeeping; the handle itself never produces), create
 * a cluster of --brokers brokers on it, create the topics, listen on the
 * --control socket if one is given, print the bootstrap list on stdout,
 * write it to --ready-file (tmp + rename, so a reader never sees half a
 * line), then serve the control socket until SIGTERM or SIGINT, destroy the
 * cluster and exit 0.
 *
 * The control channel lets tests break the cluster while it runs: a UNIX
 * domain socket (--control PATH) that takes one command per line and
 * answers each with one line, "ok ..." or "error <reason>":
 *     brokers                          ok 1=up 2=down 3=up
 *     broker down|up ID|all            the mock's broker_set_down/_up
 *     broker rtt ID|all MS             added round-trip time
 *     leader TOPIC PARTITION ID|-1     move a partition's leader
 *     coordinator group|transaction KEY ID   pin a group's coordinator
 *     errors produce COUNT ERROR|clear the next COUNT produce requests, to
 *                                      any topic, fail with ERROR (a Kafka
 *                                      error name such as
 *                                      TOPIC_AUTHORIZATION_FAILED); clear
 *                                      drops the ones not used yet
 *     help
 * The same binary is the client: "baton-kafka-mock --control PATH broker
 * down 2" sends the line, prints the reply, and exits 0 on "ok", 1 on
 * "error" (or no answer), so scripts need no socat. Why a socket in the
 * stack's directory rather than signals or a TCP port: commands take
 * arguments and want an answer; a path needs no free port, is private to
 * the stack's owner, and goes away with the directory.
 *
 * Threads: librdkafka runs the cluster in its own thread; each rd_kafka_mock_*
 * call posts an op to that thread and waits for its reply. The main thread
 * serves the control socket with poll(), every client non-blocking, so a
 * client that connects and says nothing holds up neither the cluster nor
 * other clients. The stop signals are blocked everywhere but in the main
 * thread, whose handler writes to a self-pipe that the same poll() watches.
 *
 * What the mock cannot tell us: 2.0.2 has no getter for a broker's state,
 * a partition's leader or a group's coordinator. The up/down state that
 * `brokers` prints is what this program's own commands set (nothing else
 * changes it); leaders are in any client's metadata (kcat -L); a group's
 * coordinator is, unless pinned, broker number (crc32(group) % brokers) + 1
 * in the mock's hashing. "broker down" closes the broker's connections and
 * refuses new ones, and does not move leadership: its partitions and groups
 * are unavailable until "broker up" (or a "leader" move).
 *
 * Why the topics are created here, with many partitions: the mock keeps at
 * most 5 MiB or 100,000 message sets per partition and silently drops the
 * oldest beyond that, so a busy topic needs enough partitions for ingest to
 * stay ahead of retention. Creating topics up front also fixes their partition
 * count instead of leaving it to auto-creation (which in the mock gives 4).
 *
 * What the mock in librdkafka 2.0.2 does and does not do (checked by hand and
 * by tests/integration/stack/test_kcat_consume.sh):
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
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"

#define MOCK_PROGRAM "baton-kafka-mock"
/* More would only cost memory: every broker is a thread and a socket. */
#define MOCK_MAX_BROKERS 64
/* Topics a stack needs are few; a fixed array keeps parsing allocation-free. */
#define MOCK_MAX_TOPICS 64
/* The mock has no real limit; this catches typos such as 16000. */
#define MOCK_MAX_PARTITIONS 1024
/* Exit status for a bad command line, as for other baton binaries. */
#define MOCK_EXIT_USAGE 2
/* One control command: the longest real one (a leader move on a 249-char
 * topic) is under 300 bytes; a longer line is an error, not a buffer. */
#define MOCK_CONTROL_LINE_MAX 512
/* Control clients served at once: tests use one or two; more are refused
 * with an error line instead of growing without bound. */
#define MOCK_CONTROL_CLIENTS 16
/* Words in one command; the longest command has five. */
#define MOCK_CONTROL_WORDS 8
/* How long the client waits for the reply: a command takes microseconds,
 * so this only bounds a mock that hangs. */
#define MOCK_CONTROL_REPLY_TIMEOUT_MS 30000
/* Kafka protocol ApiKey of ProduceRequest: the mock's error stacks are
 * per request type, and the public headers do not name the keys. */
#define MOCK_API_PRODUCE 0
/* Errors queued by one "errors produce" command: enough for any outage a
 * test stages (each failed request uses one), small enough to allocate. */
#define MOCK_MAX_REQUEST_ERRORS 1000000

/* Room for a UNIX socket path, its NUL included (108 on Linux). */
#define MOCK_SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)
/* The largest RTT a test may add; more is a typo (and would trip clients'
 * socket timeouts in ways a test does not mean). */
#define MOCK_MAX_RTT_MS 600000

/* One topic to create. */
struct mock_topic {
    char name[250]; /* Kafka topic names are at most 249 characters */
    int partitions; /* partition count, 1..MOCK_MAX_PARTITIONS */
};

/* The whole command line, parsed. */
struct mock_config {
    int brokers;                               /* --brokers: broker count */
    const char *ready_file;                    /* --ready-file: borrowed from argv, or NULL */
    const char *control;                       /* --control: socket path, borrowed, or NULL */
    struct mock_topic topics[MOCK_MAX_TOPICS]; /* defaults, then --topic */
    int topic_cnt;                             /* used entries of topics[] */
    int server_flags;                          /* 1 if --brokers/--topic/--ready-file given */
    char **command;                            /* client mode: the command words, in argv */
    int command_cnt;                           /* 0: run the cluster (server mode) */
};

/* The cluster as the control commands see it. */
struct mock_state {
    rd_kafka_mock_cluster_t *mcluster; /* the running cluster, borrowed */
    const struct mock_config *conf;    /* topics and broker count, borrowed */
    int up[MOCK_MAX_BROKERS + 1];      /* by broker id (1..brokers): 1 up, 0 down */
    int rtt_ms[MOCK_MAX_BROKERS + 1];  /* by broker id: added RTT, 0 if none */
};

/* One connection on the control socket. */
struct mock_client {
    int fd;                           /* non-blocking; -1: slot free */
    char line[MOCK_CONTROL_LINE_MAX]; /* the partial line read so far */
    size_t len;                       /* bytes in line[] */
    int overlong;                     /* 1: dropping the rest of an overlong line */
};

/* The command line as the option table stores it (common/config.h). */
struct mock_flags {
    int64_t brokers;        /* 0: not given */
    char *topics;           /* "NAME:PARTITIONS" lines, owned; NULL: none given */
    const char *ready_file; /* borrowed from argv */
    const char *control;    /* borrowed from argv */
};

/* Flags only: the stack's BATON_* variables (BATON_TOPIC...) are the
 * services', not the mock's. --help is printed from this table. */
#define MOCK_FLAG (BATON_OPT_NO_ENV | BATON_OPT_BORROWED)
static const struct baton_opt mock_options[] = {
    {"brokers", BATON_OPT_INT | MOCK_FLAG, NULL, "number of mock brokers (default 3)",
     offsetof(struct mock_flags, brokers), 1, MOCK_MAX_BROKERS},
    {"topic", BATON_OPT_LIST | BATON_OPT_NO_ENV, NULL,
     "NAME:PARTITIONS: create topic NAME with PARTITIONS partitions; repeatable; overrides a "
     "default topic of the same name (defaults: baton.tasks:16, baton.tasks.dlq:4)",
     offsetof(struct mock_flags, topics), 0, 0},
    {"ready-file", BATON_OPT_STRING | MOCK_FLAG, NULL,
     "once the cluster is up, write the bootstrap address to this path (atomically: PATH.tmp, "
     "then rename)",
     offsetof(struct mock_flags, ready_file), 0, 0},
    {"control", BATON_OPT_STRING | MOCK_FLAG, NULL,
     "serve control commands on this UNIX socket path; with a COMMAND, send it there instead "
     "and print the reply",
     offsetof(struct mock_flags, control), 0, 0},
};
#define MOCK_OPTION_COUNT (sizeof mock_options / sizeof mock_options[0])

/* The control commands: --help and the `help` reply are printed from it. */
static const struct mock_command {
    const char *syntax; /* the command and its arguments */
    const char *doc;    /* one line for --help */
} mock_commands[] = {
    {"brokers", "each broker's state: ok 1=up 2=down 3=up"},
    {"broker down|up ID|all", "disconnect a broker and refuse connections (leaders stay), or undo"},
    {"broker rtt ID|all MS", "hold every response of the broker MS ms more (0: none)"},
    {"leader TOPIC PARTITION ID|-1", "make broker ID lead the partition (-1: no leader)"},
    {"coordinator group|transaction KEY ID", "pin the coordinator of a group or transactional id"},
    {"errors produce COUNT ERROR|clear",
     "fail the next COUNT produce requests (any topic) with the Kafka error ERROR, or forget them"},
    {"help", "list the commands"},
};

/* Set by the SIGTERM/SIGINT handler, read by main's loop. */
static volatile sig_atomic_t mock_stop_requested;
/* Write end of the self-pipe that wakes main's poll() on a stop signal; -1
 * before it exists (the handler then only sets the flag). */
static int mock_wake_fd = -1;

static void mock_on_signal(int signo) {
    int saved_errno = errno;
    (void)signo;
    mock_stop_requested = 1;
    if (mock_wake_fd >= 0) {
        ssize_t n = write(mock_wake_fd, "x", 1); /* full pipe: a wake-up is pending anyway */
        (void)n;
    }
    errno = saved_errno;
}

static void print_help(FILE *out) {
    baton_config_help(out,
                      MOCK_PROGRAM " [FLAGS]\n       " MOCK_PROGRAM " --control PATH COMMAND...",
                      "Runs a librdkafka mock Kafka cluster on 127.0.0.1 until SIGTERM or SIGINT.\n"
                      "Prints the bootstrap address (host:port,...) as one line on stdout once "
                      "ready.\nWith a COMMAND, sends it to the mock serving --control PATH, "
                      "prints the reply\nand exits 0 on \"ok ...\", 1 on \"error ...\".",
                      mock_options, MOCK_OPTION_COUNT);
    fprintf(out, "\nControl commands (one per line on the socket, one reply line each):\n");
    for (size_t i = 0; i < sizeof(mock_commands) / sizeof(mock_commands[0]); i++)
        fprintf(out, "  %-38s %s\n", mock_commands[i].syntax, mock_commands[i].doc);
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
 * Parses argv into conf (defaults first) with the option table; the first
 * word not starting with '-' starts a control command, and every word
 * after it belongs to the command (so "leader T 0 -1" works). Returns 0 to
 * run, -1 when --help was printed, or MOCK_EXIT_USAGE after printing one
 * line on stderr.
 */
static int parse_args(int argc, char **argv, struct mock_config *conf) {
    struct mock_flags flags = {0};
    char errstr[512];
    int first = argc, rc = 0;

    memset(conf, 0, sizeof(*conf));
    set_topic(conf, "baton.tasks", strlen("baton.tasks"), 16);
    set_topic(conf, "baton.tasks.dlq", strlen("baton.tasks.dlq"), 4);
    baton_err_t err = baton_config_parse(mock_options, MOCK_OPTION_COUNT, &flags, argc, argv,
                                         &first, errstr, sizeof errstr);
    if (err == BATON_ERR_HELP) {
        print_help(stdout);
        rc = -1;
    } else if (err) {
        rc = usage_error("%s", errstr);
    }
    conf->brokers = flags.brokers ? (int)flags.brokers : 3;
    conf->ready_file = flags.ready_file;
    conf->control = flags.control;
    conf->server_flags = flags.brokers || flags.topics || flags.ready_file;
    for (char *save = NULL, *spec = flags.topics ? strtok_r(flags.topics, "\n", &save) : NULL;
         !rc && spec; spec = strtok_r(NULL, "\n", &save))
        rc = parse_topic(conf, spec);
    baton_config_free(mock_options, MOCK_OPTION_COUNT, &flags);
    if (rc)
        return rc;
    if (first < argc) {
        conf->command = &argv[first];
        conf->command_cnt = argc - first;
    }
    if (conf->ready_file && conf->ready_file[0] == '\0')
        return usage_error("--ready-file needs a path");
    if (conf->control && conf->control[0] == '\0')
        return usage_error("--control needs a path");
    if (conf->control && strlen(conf->control) >= MOCK_SUN_PATH_SIZE)
        return usage_error("--control path too long for a UNIX socket (at most %zu bytes): '%s'",
                           MOCK_SUN_PATH_SIZE - 1, conf->control);
    if (conf->command_cnt > 0) {
        if (!conf->control)
            return usage_error("a control command needs --control PATH");
        if (conf->server_flags)
            return usage_error("with a control command, only --control may be given");
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

/* ------------------------------------------------------ control commands */

/* Writes one reply line (no newline) into reply. */
static void reply_set(char *reply, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_set(char *reply, size_t size, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reply, size, fmt, ap);
    va_end(ap);
}

/*
 * Parses a broker id of this cluster (1..brokers); "all" gives -1 when
 * allow_all, "-1" gives -1 when allow_none. Returns 0, or -1 with the error
 * reply written.
 */
static int parse_broker(const struct mock_state *st, const char *word, int allow_all,
                        int allow_none, int32_t *id, char *reply, size_t size) {
    int v;

    if (allow_all && strcmp(word, "all") == 0) {
        *id = -1;
        return 0;
    }
    if (allow_none && strcmp(word, "-1") == 0) {
        *id = -1;
        return 0;
    }
    if (parse_int(word, 1, st->conf->brokers, &v) != 0) {
        reply_set(reply, size, "error broker id must be 1..%d%s%s, got '%s'", st->conf->brokers,
                  allow_all ? " or all" : "", allow_none ? " or -1 (no leader)" : "", word);
        return -1;
    }
    *id = v;
    return 0;
}

/* "brokers": every broker's state as this program set it. */
static void cmd_brokers(const struct mock_state *st, char *reply, size_t size) {
    size_t used = (size_t)snprintf(reply, size, "ok");

    for (int id = 1; id <= st->conf->brokers && used < size; id++) {
        int n = st->rtt_ms[id]
                    ? snprintf(reply + used, size - used, " %d=%s,rtt=%d", id,
                               st->up[id] ? "up" : "down", st->rtt_ms[id])
                    : snprintf(reply + used, size - used, " %d=%s", id, st->up[id] ? "up" : "down");
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* "broker down|up ID|all" and "broker rtt ID|all MS". */
static void cmd_broker(struct mock_state *st, char **w, int n, char *reply, size_t size) {
    int32_t id;
    int rtt = 0;
    rd_kafka_resp_err_t err;
    int first, last;

    if (n < 2 ||
        (strcmp(w[1], "down") != 0 && strcmp(w[1], "up") != 0 && strcmp(w[1], "rtt") != 0)) {
        reply_set(reply, size, "error usage: broker down|up ID|all, broker rtt ID|all MS");
        return;
    }
    if (strcmp(w[1], "rtt") == 0) {
        if (n != 4) {
            reply_set(reply, size, "error usage: broker rtt ID|all MS");
            return;
        }
        if (parse_broker(st, w[2], 1, 0, &id, reply, size) != 0)
            return;
        if (parse_int(w[3], 0, MOCK_MAX_RTT_MS, &rtt) != 0) {
            reply_set(reply, size, "error rtt must be 0..%d ms, got '%s'", MOCK_MAX_RTT_MS, w[3]);
            return;
        }
        err = rd_kafka_mock_broker_set_rtt(st->mcluster, id, rtt);
    } else {
        if (n != 3) {
            reply_set(reply, size, "error usage: broker %s ID|all", w[1]);
            return;
        }
        if (parse_broker(st, w[2], 1, 0, &id, reply, size) != 0)
            return;
        err = strcmp(w[1], "down") == 0 ? rd_kafka_mock_broker_set_down(st->mcluster, id)
                                        : rd_kafka_mock_broker_set_up(st->mcluster, id);
    }
    if (err) {
        reply_set(reply, size, "error mock: %s", rd_kafka_err2str(err));
        return;
    }
    first = id == -1 ? 1 : id;
    last = id == -1 ? st->conf->brokers : id;
    for (int b = first; b <= last; b++) {
        if (strcmp(w[1], "rtt") == 0)
            st->rtt_ms[b] = rtt;
        else
            st->up[b] = strcmp(w[1], "up") == 0;
    }
    if (id == -1 && strcmp(w[1], "rtt") == 0)
        reply_set(reply, size, "ok all brokers rtt %d ms", rtt);
    else if (id == -1)
        reply_set(reply, size, "ok all brokers %s", w[1]);
    else if (strcmp(w[1], "rtt") == 0)
        reply_set(reply, size, "ok broker %d rtt %d ms", (int)id, rtt);
    else
        reply_set(reply, size, "ok broker %d %s", (int)id, w[1]);
}

/*
 * "leader TOPIC PARTITION ID|-1". Only topics this program created: the
 * mock creates an unknown topic on a leader change, so a typo would
 * otherwise make a new topic and report success.
 */
static void cmd_leader(struct mock_state *st, char **w, int n, char *reply, size_t size) {
    const struct mock_topic *topic = NULL;
    int partition;
    int32_t id;
    rd_kafka_resp_err_t err;

    if (n != 4) {
        reply_set(reply, size, "error usage: leader TOPIC PARTITION ID|-1");
        return;
    }
    for (int i = 0; i < st->conf->topic_cnt; i++) {
        if (strcmp(st->conf->topics[i].name, w[1]) == 0)
            topic = &st->conf->topics[i];
    }
    if (!topic) {
        reply_set(reply, size,
                  "error unknown topic '%.250s' (only topics created with --topic, "
                  "not auto-created ones)",
                  w[1]);
        return;
    }
    if (parse_int(w[2], 0, topic->partitions - 1, &partition) != 0) {
        reply_set(reply, size, "error partition of %s must be 0..%d, got '%s'", topic->name,
                  topic->partitions - 1, w[2]);
        return;
    }
    if (parse_broker(st, w[3], 0, 1, &id, reply, size) != 0)
        return;
    err = rd_kafka_mock_partition_set_leader(st->mcluster, topic->name, partition, id);
    if (err) {
        reply_set(reply, size, "error mock: %s", rd_kafka_err2str(err));
        return;
    }
    if (id == -1)
        reply_set(reply, size, "ok %s [%d] has no leader", topic->name, partition);
    else
        reply_set(reply, size, "ok %s [%d] leader %d", topic->name, partition, (int)id);
}

/* "coordinator group|transaction KEY ID". */
static void cmd_coordinator(struct mock_state *st, char **w, int n, char *reply, size_t size) {
    int32_t id;
    rd_kafka_resp_err_t err;

    if (n != 4 || (strcmp(w[1], "group") != 0 && strcmp(w[1], "transaction") != 0)) {
        reply_set(reply, size, "error usage: coordinator group|transaction KEY ID");
        return;
    }
    if (parse_broker(st, w[3], 0, 0, &id, reply, size) != 0)
        return;
    err = rd_kafka_mock_coordinator_set(st->mcluster, w[1], w[2], id);
    if (err) {
        reply_set(reply, size, "error mock: %s", rd_kafka_err2str(err));
        return;
    }
    reply_set(reply, size, "ok %s %.300s coordinator %d", w[1], w[2], (int)id);
}

/*
 * "errors produce COUNT ERROR" and "errors produce clear". ERROR is a name
 * from rd_kafka_get_err_descs() without its RD_KAFKA_RESP_ERR_ prefix.
 * The errors apply to whichever client's produce requests come next, so a
 * test that uses them runs on a stack of its own.
 */
static void cmd_errors(struct mock_state *st, char **w, int n, char *reply, size_t size) {
    if (n == 3 && strcmp(w[1], "produce") == 0 && strcmp(w[2], "clear") == 0) {
        rd_kafka_mock_clear_request_errors(st->mcluster, MOCK_API_PRODUCE);
        reply_set(reply, size, "ok produce errors cleared");
        return;
    }
    if (n != 4 || strcmp(w[1], "produce") != 0) {
        reply_set(reply, size, "error usage: errors produce COUNT ERROR|clear");
        return;
    }
    char *end;
    errno = 0;
    long count = strtol(w[2], &end, 10);
    if (errno || *end || end == w[2] || count < 1 || count > MOCK_MAX_REQUEST_ERRORS) {
        reply_set(reply, size, "error COUNT must be 1 to %d, got '%.32s'", MOCK_MAX_REQUEST_ERRORS,
                  w[2]);
        return;
    }
    const struct rd_kafka_err_desc *descs;
    size_t ndescs;
    rd_kafka_get_err_descs(&descs, &ndescs);
    const struct rd_kafka_err_desc *found = NULL;
    for (size_t i = 0; i < ndescs && !found; i++)
        if (descs[i].name && strcmp(descs[i].name, w[3]) == 0 && descs[i].code > 0)
            found = &descs[i];
    if (!found) {
        reply_set(reply, size,
                  "error unknown broker error '%.64s' (e.g. TOPIC_AUTHORIZATION_FAILED)", w[3]);
        return;
    }
    rd_kafka_resp_err_t *errs = malloc((size_t)count * sizeof *errs);
    if (!errs) {
        reply_set(reply, size, "error out of memory");
        return;
    }
    for (long i = 0; i < count; i++)
        errs[i] = found->code;
    rd_kafka_mock_push_request_errors_array(st->mcluster, MOCK_API_PRODUCE, (size_t)count, errs);
    free(errs);
    reply_set(reply, size, "ok next %ld produce requests fail with %s", count, found->name);
}

/* "help": the command syntaxes on one line. */
static void cmd_help(char *reply, size_t size) {
    size_t used = (size_t)snprintf(reply, size, "ok commands:");

    for (size_t i = 0; i < sizeof(mock_commands) / sizeof(mock_commands[0]) && used < size; i++) {
        int n =
            snprintf(reply + used, size - used, "%s %s", i ? " |" : "", mock_commands[i].syntax);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/*
 * Runs one command line (NUL-terminated, no newline; split in place) and
 * writes the one-line reply. Never fails: every problem is an error reply.
 * @locality the main thread
 */
static void control_execute(struct mock_state *st, char *line, char *reply, size_t size) {
    char *w[MOCK_CONTROL_WORDS];
    int n = 0;
    char *save = NULL;

    for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == MOCK_CONTROL_WORDS) {
            reply_set(reply, size, "error too many words (at most %d)", MOCK_CONTROL_WORDS);
            return;
        }
        w[n++] = tok;
    }
    if (n == 0)
        reply_set(reply, size, "error empty command (try help)");
    else if (strcmp(w[0], "brokers") == 0 && n == 1)
        cmd_brokers(st, reply, size);
    else if (strcmp(w[0], "brokers") == 0)
        reply_set(reply, size, "error usage: brokers");
    else if (strcmp(w[0], "broker") == 0)
        cmd_broker(st, w, n, reply, size);
    else if (strcmp(w[0], "leader") == 0)
        cmd_leader(st, w, n, reply, size);
    else if (strcmp(w[0], "coordinator") == 0)
        cmd_coordinator(st, w, n, reply, size);
    else if (strcmp(w[0], "errors") == 0)
        cmd_errors(st, w, n, reply, size);
    else if (strcmp(w[0], "help") == 0 && n == 1)
        cmd_help(reply, size);
    else if (strcmp(w[0], "help") == 0)
        reply_set(reply, size, "error usage: help");
    else
        reply_set(reply, size, "error unknown command '%.64s' (try help)", w[0]);
}

/* ------------------------------------------------------- control server */

/* Makes fd non-blocking and close-on-exec; returns 0 or -1. */
static int set_nonblock_cloexec(int fd) {
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void fill_addr(struct sockaddr_un *addr, const char *path) {
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, strlen(path) + 1); /* length checked by parse_args */
}

/*
 * Listens on the UNIX socket path, owner-only. A socket file nobody serves
 * (left by a mock that was killed) is replaced; a live one or a file that is
 * not a socket is an error. Returns the listening fd, or -1 with a line on
 * stderr.
 */
static int control_listen(const char *path) {
    struct sockaddr_un addr;
    struct stat sb;
    int fd, bound;

    fill_addr(&addr, path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0) {
        fprintf(stderr, "%s: control socket: %s\n", MOCK_PROGRAM, strerror(errno));
        return -1;
    }
    bound = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    if (!bound && errno == EADDRINUSE) {
        int probe, live;

        if (lstat(path, &sb) != 0 || !S_ISSOCK(sb.st_mode)) {
            fprintf(stderr, "%s: --control %s exists and is not a socket; not replacing it\n",
                    MOCK_PROGRAM, path);
            close(fd);
            return -1;
        }
        probe = socket(AF_UNIX, SOCK_STREAM, 0);
        live = probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            fprintf(stderr, "%s: --control %s is served by another process\n", MOCK_PROGRAM, path);
            close(fd);
            return -1;
        }
        unlink(path); /* stale: its server is gone */
        bound = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    }
    if (!bound || chmod(path, 0600) != 0 || listen(fd, MOCK_CONTROL_CLIENTS) != 0 ||
        set_nonblock_cloexec(fd) != 0) {
        fprintf(stderr, "%s: --control %s: %s\n", MOCK_PROGRAM, path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void client_close(struct mock_client *c) {
    close(c->fd);
    c->fd = -1;
    c->len = 0;
    c->overlong = 0;
}

/*
 * Sends one reply line. Replies are short and the socket buffer is large, so
 * a send that would block means a client that sends commands without reading
 * the answers: it is dropped rather than let it stall the loop.
 */
static void client_reply(struct mock_client *c, const char *reply) {
    char out[MOCK_CONTROL_LINE_MAX * 4];
    int n = snprintf(out, sizeof(out), "%s\n", reply);

    if (n < 0 || (size_t)n >= sizeof(out))
        n = snprintf(out, sizeof(out), "error reply too long\n");
    if (send(c->fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
        client_close(c);
}

/* Executes a complete line from client c, answers and logs it. */
static void client_line(struct mock_state *st, struct mock_client *c) {
    char reply[MOCK_CONTROL_LINE_MAX * 4];
    char logged[MOCK_CONTROL_LINE_MAX];

    if (c->len > 0 && c->line[c->len - 1] == '\r')
        c->len--;
    c->line[c->len] = '\0';
    if (c->overlong) {
        reply_set(reply, sizeof(reply), "error command longer than %d bytes",
                  MOCK_CONTROL_LINE_MAX - 1);
        snprintf(logged, sizeof(logged), "(a line over %d bytes)", MOCK_CONTROL_LINE_MAX - 1);
    } else if (memchr(c->line, '\0', c->len)) {
        reply_set(reply, sizeof(reply), "error command holds a NUL byte");
        snprintf(logged, sizeof(logged), "(a line with a NUL byte)");
    } else if (c->line[strspn(c->line, " \t")] == '\0') {
        c->len = 0; /* a blank line is no command: no reply */
        return;
    } else {
        /* The log gets a printable copy: the line is whatever a client sent. */
        for (size_t i = 0; i <= c->len; i++) {
            unsigned char ch = (unsigned char)c->line[i];
            logged[i] = ch && (ch < 0x20 || ch > 0x7e) ? '?' : (char)ch;
        }
        control_execute(st, c->line, reply, sizeof(reply));
    }
    fprintf(stderr, "%s: control: %s -> %s\n", MOCK_PROGRAM, logged, reply);
    c->len = 0;
    c->overlong = 0;
    client_reply(c, reply);
}

/* Reads what client c sent and runs every complete line; closes on EOF. */
static void client_read(struct mock_state *st, struct mock_client *c) {
    char buf[4096];
    ssize_t got;

    while (c->fd >= 0 && (got = read(c->fd, buf, sizeof(buf))) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_close(c);
            return;
        }
        for (ssize_t i = 0; i < got && c->fd >= 0; i++) {
            if (buf[i] == '\n')
                client_line(st, c);
            else if (c->len < sizeof(c->line) - 1)
                c->line[c->len++] = buf[i];
            else
                c->overlong = 1;
        }
    }
    if (c->fd >= 0) {
        /* EOF: a last line without its newline still counts. */
        if (c->len > 0 || c->overlong)
            client_line(st, c);
        if (c->fd >= 0)
            client_close(c);
    }
}

/* Accepts a pending connection into a free slot, or refuses it. */
static void control_accept(int listen_fd, struct mock_client *clients) {
    int fd = accept(listen_fd, NULL, NULL);
    struct mock_client *slot = NULL;

    if (fd < 0)
        return; /* EAGAIN, or the peer gave up: nothing to serve */
    for (int i = 0; i < MOCK_CONTROL_CLIENTS; i++) {
        if (clients[i].fd < 0) {
            slot = &clients[i];
            break;
        }
    }
    if (!slot || set_nonblock_cloexec(fd) != 0) {
        static const char busy[] = "error too many control connections\n";
        ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
        close(fd);
        return;
    }
    slot->fd = fd;
    slot->len = 0;
    slot->overlong = 0;
}

/*
 * Serves the control socket (listen_fd, or -1 for none) until a stop signal
 * wakes wake_fd. Returns 0, or 1 if poll() itself failed.
 * @locality the main thread, with SIGTERM/SIGINT unblocked
 */
static int serve(struct mock_state *st, int wake_fd, int listen_fd) {
    struct mock_client clients[MOCK_CONTROL_CLIENTS];
    struct pollfd fds[2 + MOCK_CONTROL_CLIENTS];
    int owner[2 + MOCK_CONTROL_CLIENTS]; /* fds[i] belongs to clients[owner[i]] */
    int rc = 0;

    for (int i = 0; i < MOCK_CONTROL_CLIENTS; i++)
        clients[i].fd = -1;
    while (!mock_stop_requested) {
        nfds_t nfds = 0;

        fds[nfds].fd = wake_fd;
        fds[nfds++].events = POLLIN;
        if (listen_fd >= 0) {
            fds[nfds].fd = listen_fd;
            fds[nfds++].events = POLLIN;
        }
        for (int i = 0; i < MOCK_CONTROL_CLIENTS; i++) {
            if (clients[i].fd >= 0) {
                owner[nfds] = i;
                fds[nfds].fd = clients[i].fd;
                fds[nfds++].events = POLLIN;
            }
        }
        if (poll(fds, nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: poll: %s\n", MOCK_PROGRAM, strerror(errno));
            rc = 1;
            break;
        }
        for (nfds_t i = listen_fd >= 0 ? 2 : 1; i < nfds; i++) {
            if (fds[i].revents)
                client_read(st, &clients[owner[i]]);
        }
        if (listen_fd >= 0 && fds[1].revents)
            control_accept(listen_fd, clients);
    }
    for (int i = 0; i < MOCK_CONTROL_CLIENTS; i++) {
        if (clients[i].fd >= 0)
            client_close(&clients[i]);
    }
    return rc;
}

/* ------------------------------------------------------- control client */

/*
 * Client mode: sends conf->command as one line to the mock at --control,
 * prints its reply on stdout. Returns 0 for "ok ...", 1 for "error ..." or
 * no reply (with a line on stderr), MOCK_EXIT_USAGE for a bad command.
 */
static int control_client(const struct mock_config *conf) {
    char line[MOCK_CONTROL_LINE_MAX];
    char reply[MOCK_CONTROL_LINE_MAX * 8];
    size_t len = 0, got = 0;
    struct sockaddr_un addr;
    int fd;

    for (int i = 0; i < conf->command_cnt; i++) {
        const char *word = conf->command[i];
        size_t wlen = strlen(word);

        if (strpbrk(word, "\r\n"))
            return usage_error("a command word may not hold a line break");
        if (len + wlen + 2 > sizeof(line))
            return usage_error("command longer than %d bytes", MOCK_CONTROL_LINE_MAX - 1);
        if (i > 0)
            line[len++] = ' ';
        memcpy(line + len, word, wlen);
        len += wlen;
    }
    line[len++] = '\n';

    fill_addr(&addr, conf->control);
    if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        fprintf(stderr, "%s: cannot reach the mock's control socket %s: %s\n", MOCK_PROGRAM,
                conf->control, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    for (size_t sent = 0; sent < len;) {
        ssize_t n = send(fd, line + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: send to %s: %s\n", MOCK_PROGRAM, conf->control, strerror(errno));
            close(fd);
            return 1;
        }
        sent += (size_t)n;
    }
    shutdown(fd, SHUT_WR); /* one command: the mock answers, then sees EOF */
    while (got < sizeof(reply) - 1 && !memchr(reply, '\n', got)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, MOCK_CONTROL_REPLY_TIMEOUT_MS);
        ssize_t n;

        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break;
        n = read(fd, reply + got, sizeof(reply) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!memchr(reply, '\n', got)) {
        fprintf(stderr, "%s: no reply from the mock at %s within %d ms\n", MOCK_PROGRAM,
                conf->control, MOCK_CONTROL_REPLY_TIMEOUT_MS);
        return 1;
    }
    *(char *)memchr(reply, '\n', got) = '\0';
    printf("%s\n", reply);
    return strncmp(reply, "ok", 2) == 0 && (reply[2] == ' ' || reply[2] == '\0') ? 0 : 1;
}

int main(int argc, char **argv) {
    struct mock_config conf;
    struct mock_state state;
    struct sigaction sa;
    sigset_t stop_signals, wait_mask;
    rd_kafka_conf_t *kconf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    const char *bootstraps;
    char errstr[512];
    int wake[2] = {-1, -1};
    int listen_fd = -1;
    int rc;

    if ((rc = parse_args(argc, argv, &conf)) != 0)
        return rc < 0 ? 0 : rc;
    if (conf.command_cnt > 0)
        return control_client(&conf);

    /*
     * Block the stop signals before librdkafka starts its threads, which
     * inherit the mask: then only this thread takes them, once it unblocks
     * them for its poll loop, and a signal arriving before is kept pending.
     */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &stop_signals, &wait_mask) != 0) {
        fprintf(stderr, "%s: pthread_sigmask failed\n", MOCK_PROGRAM);
        return 1;
    }
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    if (pipe(wake) != 0 || set_nonblock_cloexec(wake[0]) != 0 ||
        set_nonblock_cloexec(wake[1]) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", MOCK_PROGRAM, strerror(errno));
        return 1;
    }
    mock_wake_fd = wake[1];
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
    memset(&state, 0, sizeof(state));
    state.mcluster = mcluster;
    state.conf = &conf;
    for (int id = 1; id <= conf.brokers; id++)
        state.up[id] = 1;
    /* Listening before the ready file: whoever sees the stack ready can
     * send commands at once. */
    if (conf.control && (listen_fd = control_listen(conf.control)) < 0) {
        rd_kafka_mock_cluster_destroy(mcluster);
        rd_kafka_destroy(rk);
        return 1;
    }

    bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
    printf("%s\n", bootstraps);
    fflush(stdout);
    fprintf(stderr, "%s: %d brokers at %s; topics:", MOCK_PROGRAM, conf.brokers, bootstraps);
    for (int i = 0; i < conf.topic_cnt; i++)
        fprintf(stderr, " %s:%d", conf.topics[i].name, conf.topics[i].partitions);
    if (conf.control)
        fprintf(stderr, "; control: %s", conf.control);
    fputc('\n', stderr);

    rc = 0;
    if (conf.ready_file && write_ready_file(conf.ready_file, bootstraps) != 0)
        rc = 1;
    if (rc == 0 && pthread_sigmask(SIG_SETMASK, &wait_mask, NULL) != 0) {
        fprintf(stderr, "%s: pthread_sigmask failed\n", MOCK_PROGRAM);
        rc = 1;
    }
    if (rc == 0)
        rc = serve(&state, wake[0], listen_fd);

    if (conf.control && listen_fd >= 0) { /* a control socket is listened on */
        close(listen_fd);
        unlink(conf.control);
    }
    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    if (rc == 0)
        fprintf(stderr, "%s: stopped\n", MOCK_PROGRAM);
    return rc;
}
