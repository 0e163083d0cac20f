/*
 * command.c - command handlers: run an external program per task.
 *
 * The program runs under /bin/sh -c in a process group of its own, so a
 * timeout or a stop can signal everything it started (SIGTERM, then
 * SIGKILL after kill_grace_ms). One poll loop feeds the payload to its
 * stdin and drains stdout (the result, size-limited) and stderr (its tail
 * becomes the error), so a chatty program never blocks on a full pipe.
 * Any language works: the contract is stdin, stdout, stderr, exit code and
 * five environment variables.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timeutil.h"
#include "utf8.h"
#include "worker_internal.h"

#define STDERR_TAIL 2048      /* bytes of stderr kept for the error text */
#define POLL_SLICE_MS 50      /* how often stop requests are noticed */

struct capture {
    char *data;
    size_t len, cap, limit; /* keeps the first `limit` bytes (stdout) */
    size_t total;           /* bytes seen */
    int tail;               /* 1: keep the last `limit` bytes (stderr) */
};

static void capture_add(struct capture *c, const char *buf, size_t n) {
    c->total += n;
    if (c->tail) {
        if (n >= c->limit) {
            memcpy(c->data, buf + n - c->limit, c->limit);
            c->len = c->limit;
        } else {
            size_t keep = c->len + n > c->limit ? c->limit - n : c->len;
            memmove(c->data, c->data + c->len - keep, keep);
            memcpy(c->data + keep, buf, n);
            c->len = keep + n;
        }
        return;
    }
    size_t room = c->limit > c->len ? c->limit - c->len : 0;
    if (n > room)
        n = room;
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n)
            cap *= 2;
        char *grown = realloc(c->data, cap);
        if (!grown)
            return;
        c->data = grown;
        c->cap = cap;
    }
    memcpy(c->data + c->len, buf, n);
    c->len += n;
}

/*
 * The process groups of running commands, in a lock-free table so that a
 * signal handler may kill them all (baton_worker_kill_commands()): a worker
 * leaving at once must not leave programs running with no time limit.
 */
#define TRACK_SLOTS 1024
static atomic_int tracked[TRACK_SLOTS];

void command_track(int pgid) {
    for (int i = 0; i < TRACK_SLOTS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&tracked[i], &expected, pgid))
            return;
    }
}

void command_untrack(int pgid) {
    for (int i = 0; i < TRACK_SLOTS; i++) {
        int expected = pgid;
        if (atomic_compare_exchange_strong(&tracked[i], &expected, 0))
            return;
    }
}

void baton_worker_kill_commands(void) {
    for (int i = 0; i < TRACK_SLOTS; i++) {
        int pgid = atomic_load(&tracked[i]);
        if (pgid > 0)
            kill(-pgid, SIGKILL);
    }
}

/*
 * The program's environment: the worker's own, without any inherited
 * BATON_TASK_* entry, plus this task's five. Built in the parent, because
 * the child of a multi-threaded process may only call async-signal-safe
 * functions until it execs: setenv() or snprintf() there could deadlock on
 * a lock (malloc's) that another worker thread held at the fork. Returns a
 * NULL-terminated array that the caller frees with env_free(), or NULL
 * when out of memory.
 */
static const char *const TASK_VARS[] = {"BATON_TASK_ID", "BATON_TASK_TYPE", "BATON_TASK_QUEUE",
                                        "BATON_TASK_ATTEMPT", "BATON_TASK_TOKEN"};
#define TASK_VAR_COUNT (sizeof TASK_VARS / sizeof TASK_VARS[0])

static void env_free(char **env) {
    if (!env)
        return;
    for (char **e = env; *e; e++)
        if (strncmp(*e, "BATON_TASK_", 11) == 0)
            free(*e); /* ours; the others are borrowed from environ */
    free(env);
}

static char **child_env(const baton_job_t *job) {
    extern char **environ;
    size_t inherited = 0;
    for (char **e = environ; *e; e++)
        inherited++;
    char **env = calloc(inherited + TASK_VAR_COUNT + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t n = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "BATON_TASK_", 11) != 0)
            env[n++] = *e;
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%d", baton_job_attempt(job));
    const char *values[TASK_VAR_COUNT] = {baton_job_id(job), baton_job_type(job),
                                          baton_job_queue(job), attempt, baton_job_token(job)};
    for (size_t i = 0; i < TASK_VAR_COUNT; i++) {
        size_t len = strlen(TASK_VARS[i]) + 1 + strlen(values[i]) + 1;
        if (!(env[n] = malloc(len))) {
            env_free(env);
            return NULL;
        }
        snprintf(env[n++], len, "%s=%s", TASK_VARS[i], values[i]);
    }
    return env;
}

/* Child side: never returns; only async-signal-safe calls (see child_env). */
static void exec_child(const char *command, char **env, int in, int out, int err, pid_t worker) {
    setpgid(0, 0);
    /* If the worker dies (even by SIGKILL), the shell dies with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != worker)
        _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    signal(SIGPIPE, SIG_DFL);
    char *const argv[] = {"sh", "-c", (char *)command, NULL};
    execve("/bin/sh", argv, env);
    _exit(127);
}

baton_handler_status_t command_run(baton_job_t *job, void *ctx) {
    const struct command_handler *handler = ctx;
    size_t max_result = worker_max_result_bytes(handler->worker);
    int64_t kill_grace = worker_kill_grace_ms(handler->worker);
    char *input = json_dumps(baton_job_payload(job), JSON_COMPACT | JSON_ENCODE_ANY);
    char **env = child_env(job);
    if (!input || !env) {
        free(input);
        env_free(env);
        baton_job_set_error(job, "command: out of memory");
        return BATON_HANDLER_FAILED;
    }
    int pin[2], pout[2], perr[2];
    if (pipe(pin) || pipe(pout) || pipe(perr)) {
        free(input);
        env_free(env);
        baton_job_set_error(job, "command: cannot create pipes: %s", strerror(errno));
        return BATON_HANDLER_FAILED;
    }
    pid_t worker = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        free(input);
        env_free(env);
        baton_job_set_error(job, "command: fork: %s", strerror(errno));
        close(pin[0]), close(pin[1]), close(pout[0]), close(pout[1]), close(perr[0]),
            close(perr[1]);
        return BATON_HANDLER_FAILED;
    }
    if (pid == 0)
        exec_child(handler->command, env, pin[0], pout[1], perr[1], worker);
    env_free(env);
    setpgid(pid, pid); /* also in the parent: no window where kill(-pid) misses */
    atomic_store(&job->pgid, (int)pid);
    command_track((int)pid);
    if (baton_job_should_stop(job)) /* a stop that came before the pgid was known */
        kill(-pid, SIGTERM);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    fcntl(pout[0], F_SETFL, O_NONBLOCK);
    fcntl(perr[0], F_SETFL, O_NONBLOCK);

    struct capture out = {.limit = max_result + 1};
    struct capture err = {
        .limit = STDERR_TAIL + 3, .tail = 1, .data = malloc(STDERR_TAIL + 3)};
    size_t input_len = strlen(input), written = 0;
    int in_fd = pin[1], out_fd = pout[0], err_fd = perr[0];
    int status = 0, exited = 0;
    int64_t term_at = 0, killed = 0;
    char buf[65536];

    while (!exited || out_fd >= 0 || err_fd >= 0) {
        if (baton_job_should_stop(job) && !term_at) {
            kill(-pid, SIGTERM);
            term_at = baton_time_mono_ms();
        }
        if (term_at && !killed && baton_time_mono_ms() - term_at >= kill_grace) {
            kill(-pid, SIGKILL);
            killed = 1;
        }
        struct pollfd fds[3];
        int nfds = 0;
        if (in_fd >= 0)
            fds[nfds++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
        if (out_fd >= 0)
            fds[nfds++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
        if (err_fd >= 0)
            fds[nfds++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
        if (nfds)
            poll(fds, (nfds_t)nfds, POLL_SLICE_MS);
        if (in_fd >= 0) {
            ssize_t n = write(in_fd, input + written, input_len - written);
            if (n > 0)
                written += (size_t)n;
            if (written == input_len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                close(in_fd); /* EOF for the program, or it closed stdin */
                in_fd = -1;
            }
        }
        int *fdp[2] = {&out_fd, &err_fd};
        struct capture *caps[2] = {&out, &err};
        for (int k = 0; k < 2; k++) {
            if (*fdp[k] < 0)
                continue;
            ssize_t n = read(*fdp[k], buf, sizeof buf);
            if (n > 0) {
                capture_add(caps[k], buf, (size_t)n);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(*fdp[k]);
                *fdp[k] = -1;
            }
        }
        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = 1;
            /* Leftover children of the program must not keep us reading. */
            kill(-pid, SIGKILL);
        }
        if (!nfds && !exited) {
            /* Every pipe closed but the program lives on: wait in slices. */
            struct timespec slice = {0, POLL_SLICE_MS * 1000000L};
            nanosleep(&slice, NULL);
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    atomic_store(&job->pgid, 0);
    command_untrack((int)pid);
    free(input);

    baton_handler_status_t result = BATON_HANDLER_FAILED;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !baton_job_should_stop(job)) {
        if (out.total > max_result) {
            char marker[96];
            snprintf(marker, sizeof marker, "{\"truncated\":true,\"bytes\":%zu}", out.total);
            baton_job_set_result(job, marker, strlen(marker));
        } else {
            size_t len = out.len;
            while (len > 0 && (out.data[len - 1] == '\n' || out.data[len - 1] == '\r'))
                len--;
            if (len)
                baton_job_set_result(job, out.data, len);
        }
        result = BATON_HANDLER_OK;
    } else {
        /* The tail starts on a character boundary (the 3 bytes kept past
         * STDERR_TAIL tell where); baton_job_set_error() cleans the rest. */
        size_t start = err.data ? baton_utf8_tail_start(err.data, err.len, STDERR_TAIL) : 0;
        int len = (int)(err.len - start);
        const char *tail = err.data ? err.data + start : "";
        while (len > 0 && (tail[len - 1] == '\n' || tail[len - 1] == '\r'))
            len--;
        if (WIFEXITED(status))
            baton_job_set_error(job, "exit status %d%s%.*s", WEXITSTATUS(status),
                                len ? ": " : "", len, tail);
        else
            baton_job_set_error(job, "killed by signal %d%s%.*s", WTERMSIG(status),
                                len ? ": " : "", len, tail);
    }
    free(out.data);
    free(err.data);
    return result;
}
