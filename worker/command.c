/*
 * command.c - command handlers: run an external program per task.
 *
 * The program runs under /bin/sh -c below a supervisor: a process forked
 * from the worker that never execs and is a child subreaper
 * (PR_SET_CHILD_SUBREAPER); each leads a process group. One poll
 * loop in the worker feeds the payload to the program's stdin and drains
 * stdout (the result, size-limited) and stderr (its tail becomes the
 * error), so a chatty program never blocks on a full pipe. Any language
 * works: the contract is stdin, stdout, stderr, exit code and five
 * environment variables.
 *
 * Why a supervisor per command. A handler that daemonises a child
 * (setsid, double fork) takes it out of the program's process group, and
 * once the intermediate parent exits the child is re-parented: a signal to
 * the group misses it, and it keeps the output pipes open. Every orphan in
 * a subreaper's subtree is re-parented to that subreaper, so each
 * command's processes, whatever they do, stay children or descendants of
 * its own supervisor, and killing the handler's tree is killing the
 * supervisor's children until it has none. With the worker as the one
 * subreaper of all its handlers, an orphan could no longer be told apart
 * once its parent had exited (several handlers run at once); cgroup v2
 * would do the same job but needs a delegated, writable cgroup, which
 * containers rarely grant.
 *
 * Signals: a stop or a timeout sends SIGTERM to the supervisor's group,
 * which relays it to the program's (the program and what stayed in its
 * group); kill_grace_ms later KILL_TREE_SIGNAL goes to the supervisor,
 * which SIGKILLs every descendant (found in /proc/thread-self/children:
 * orphans become its children as their parents die), reaps them, writes
 * the program's wait status to a pipe and exits. It does the same when
 * the program exits by itself (nothing a handler starts outlives its task)
 * and when the worker dies (its parent-death signal). The worker stops
 * reading LINGER_MS after the tree kill whatever is left, so no descendant
 * can hold an attempt open.
 *
 * The program gets an allowlisted environment and no descriptor but its
 * three pipes: a handler runs untrusted payloads and must not see the
 * worker's secrets (BATON_REDIS_URL and its password) or sockets.
 */
#define _GNU_SOURCE /* close_range, pipe2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timeutil.h"
#include "utf8.h"
#include "worker_internal.h"

#define STDERR_TAIL 2048 /* bytes of stderr kept for the error text */
#define POLL_SLICE_MS 50 /* how often stop requests are noticed */
#define LINGER_MS                                                                                  \
    2000                        /* after the tree kill (or the supervisor's exit),                 \
                                   how long pipes may stay open: far more than                     \
                                   SIGKILL and a reap take */
#define TREE_RESCAN_NS 5000000L /* supervisor: pause between kill rounds */
/* Asks a supervisor to kill its whole tree now; also its parent-death
 * signal. Not SIGTERM (the polite stop, which it relays) nor SIGKILL (it
 * must live to kill the rest). */
#define KILL_TREE_SIGNAL SIGUSR1

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
    if (n == 0) /* full: nothing to keep (and c->data may still be NULL) */
        return;
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
 * The supervisors of running commands (each leads its command's process
 * group), in a lock-free table so that a signal handler may reach them all
 * (baton_worker_kill_commands()): a worker leaving at once must not leave
 * programs running with no time limit. spawn_lock keeps the orphan reaper
 * (baton_worker_command_reap_orphans) from reaping a supervisor forked but not yet in
 * the table: forks hold it shared, the reaper exclusive.
 */
#define TRACK_SLOTS 1024
static atomic_int tracked[TRACK_SLOTS];
static pthread_rwlock_t spawn_lock = PTHREAD_RWLOCK_INITIALIZER;

void baton_worker_command_track(int pgid) {
    for (int i = 0; i < TRACK_SLOTS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&tracked[i], &expected, pgid))
            return;
    }
}

void baton_worker_command_untrack(int pgid) {
    for (int i = 0; i < TRACK_SLOTS; i++) {
        int expected = pgid;
        if (atomic_compare_exchange_strong(&tracked[i], &expected, 0))
            return;
    }
}

static int command_tracked(int pid) {
    for (int i = 0; i < TRACK_SLOTS; i++)
        if (atomic_load(&tracked[i]) == pid)
            return 1;
    return 0;
}

void baton_worker_command_kill_tree(int supervisor) {
    if (supervisor > 0)
        kill(supervisor, KILL_TREE_SIGNAL);
}

/* Async-signal-safe: each supervisor kills its tree, also after we are
 * gone (the signal is queued; it is their parent-death signal as well). */
void baton_worker_kill_commands(void) {
    for (int i = 0; i < TRACK_SLOTS; i++)
        baton_worker_command_kill_tree(atomic_load(&tracked[i]));
}

/* ------------------------------------------------------- environment */

/*
 * What a program inherits from the worker's environment: these names
 * (a trailing '*' matches a prefix) and the operator's --command-env
 * ones. Everything else, the worker's Redis URL and any secret in its
 * environment, stays out.
 */
static const char *const BASE_ENV[] = {"PATH", "HOME", "LANG", "LC_*", "TZ"};
#define BASE_ENV_COUNT (sizeof BASE_ENV / sizeof BASE_ENV[0])

static const char *const TASK_VARS[] = {"BATON_TASK_ID", "BATON_TASK_TYPE", "BATON_TASK_QUEUE",
                                        "BATON_TASK_ATTEMPT", "BATON_TASK_TOKEN"};
#define TASK_VAR_COUNT (sizeof TASK_VARS / sizeof TASK_VARS[0])

/* 1 when "NAME=value" `entry` is named by `pattern` ("NAME" or "PREFIX*"). */
static int env_matches(const char *pattern, const char *entry) {
    size_t len = strlen(pattern);
    if (len && pattern[len - 1] == '*')
        return strncmp(entry, pattern, len - 1) == 0 && strchr(entry, '=') >= entry + len - 1;
    return strncmp(entry, pattern, len) == 0 && entry[len] == '=';
}

static int env_allowed(const char *entry, char *const *extra) {
    if (strncmp(entry, "BATON_TASK_", 11) == 0)
        return 0; /* the worker sets this task's own */
    for (size_t i = 0; i < BASE_ENV_COUNT; i++)
        if (env_matches(BASE_ENV[i], entry))
            return 1;
    for (char *const *e = extra; e && *e; e++)
        if (env_matches(*e, entry))
            return 1;
    return 0;
}

static int env_name_valid(const char *name) {
    size_t len = strlen(name);
    if (len && name[len - 1] == '*')
        len--;
    if (!len || !(name[0] == '_' || (name[0] >= 'A' && name[0] <= 'Z') ||
                  (name[0] >= 'a' && name[0] <= 'z')))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!(name[i] == '_' || (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
            return 0;
    return 1;
}

void baton_worker_command_env_free(char **names) {
    for (char **e = names; e && *e; e++)
        free(*e);
    free(names);
}

baton_err_t baton_worker_command_env_parse(const char *spec, char ***out, char *errstr,
                                           size_t errstr_size) {
    *out = NULL;
    size_t cap = 2;
    for (const char *p = spec ? spec : ""; *p; p++)
        cap += *p == ',';
    char **names = calloc(cap, sizeof *names);
    if (!names)
        return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (const char *p = spec ? spec : ""; *p;) {
        size_t len = strcspn(p, ",");
        char *name = strndup(p, len);
        if (!name) {
            baton_worker_command_env_free(names);
            return baton_seterr(errstr, errstr_size, BATON_ERR_NOMEM, "out of memory");
        }
        names[n++] = name;
        if (!env_name_valid(name)) {
            baton_err_t err = baton_seterr(
                errstr, errstr_size, BATON_ERR_CONFIG,
                "--command-env: '%.64s' is not an environment variable name (letters, digits "
                "and '_', not starting with a digit; a trailing '*' matches a prefix)",
                name);
            baton_worker_command_env_free(names);
            return err;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    *out = names;
    return BATON_OK;
}

/*
 * The program's environment: the allowed part of the worker's own, plus
 * this task's five BATON_TASK_* variables. Built in the parent, because
 * the child of a multi-threaded process may only call async-signal-safe
 * functions: setenv() or snprintf() there could deadlock on a lock
 * (malloc's) that another worker thread held at the fork. Returns a
 * NULL-terminated array that the caller frees with env_free(), or NULL
 * when out of memory.
 */
static void env_free(char **env) {
    if (!env)
        return;
    for (char **e = env; *e; e++)
        if (strncmp(*e, "BATON_TASK_", 11) == 0)
            free(*e); /* ours; the others are borrowed from environ */
    free(env);
}

static char **child_env(const baton_job_t *job, char *const *extra) {
    extern char **environ;
    size_t inherited = 0;
    for (char **e = environ; *e; e++)
        inherited++;
    char **env = calloc(inherited + TASK_VAR_COUNT + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t n = 0;
    for (char **e = environ; *e; e++)
        if (env_allowed(*e, extra))
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

/* ------------------------------------------- supervisor and program */
/* Everything from here to baton_worker_command_run's fork runs in a child of a
 * multi-threaded process: async-signal-safe calls only (no malloc, no
 * stdio, no locks). */

/* What the supervisor and the program need, prepared by the worker. */
struct spawn {
    const char *command; /* borrowed */
    char **env;          /* borrowed */
    int in, out, err;    /* the program's ends of its stdin, stdout, stderr pipes */
    int status_fd;       /* write end: the program's wait status, as an int */
    pid_t worker;
};

/*
 * Calls fn(n, dir_fd, arg) for each entry of directory `path` named by a
 * number (/proc/self/fd, /proc). Raw getdents64: opendir() allocates.
 * Returns -1 when the directory cannot be read.
 */
static int for_each_numbered(const char *path, void (*fn)(long, int, void *), void *arg) {
    int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    char buf[4096] __attribute__((aligned(8)));
    long got;
    while ((got = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            const struct dirent64 *d = (const struct dirent64 *)(buf + off);
            off += d->d_reclen;
            long n = 0;
            const char *c = d->d_name;
            for (; *c >= '0' && *c <= '9'; c++)
                n = n * 10 + (*c - '0');
            if (!*c && c != d->d_name)
                fn(n, dir, arg);
        }
    }
    close(dir);
    return 0;
}

static void close_entry(long fd, int dir_fd, void *lowest) {
    if (fd >= *(int *)lowest && fd != dir_fd)
        close((int)fd);
}

/* Closes every descriptor from `lowest` up. close_range() needs Linux 5.9
 * (and a seccomp profile that allows it); before, /proc/self/fd lists what
 * is open. */
static void close_from(int lowest) {
    if (close_range((unsigned)lowest, ~0U, 0) == 0)
        return;
    for_each_numbered("/proc/self/fd", close_entry, &lowest);
}

/* Appends the decimal digits of `n` at `p`; returns the end. */
static char *put_number(char *p, long n) {
    char digits[24];
    int len = 0;
    do
        digits[len++] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    while (len)
        *p++ = digits[--len];
    return p;
}

struct child_scan {
    pid_t parent;
    int found;
};

/* /proc scan fallback: SIGKILL process `pid` if its parent is ours. */
static void kill_if_child(long pid, int dir_fd, void *arg) {
    struct child_scan *scan = arg;
    char path[40] = "/proc/", stat[512];
    char *end = put_number(path + 6, pid);
    memcpy(end, "/stat", 6);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return;
    stat[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold any byte, so after the last ')'. */
    const char *p = strrchr(stat, ')');
    if (!p || !p[1] || !p[2] || !p[3])
        return;
    long ppid = 0;
    for (p += 4; *p >= '0' && *p <= '9'; p++)
        ppid = ppid * 10 + (*p - '0');
    if (ppid == scan->parent) {
        kill((pid_t)pid, SIGKILL);
        scan->found++;
    }
}

/*
 * 1 when /proc is mounted for our own PID namespace: the pids it lists are
 * the ones kill() takes. Under `unshare --pid` without a /proc of its own
 * they are another namespace's, and killing them would hit strangers.
 */
static int proc_is_ours(void) {
    char want[64], got[64];
    char *end = put_number(want, getpid());
    memcpy(end, "/task/", 6);
    end = put_number(end + 6, getpid()); /* single-threaded: tid == pid */
    ssize_t n = readlink("/proc/thread-self", got, sizeof got);
    return n == end - want && memcmp(got, want, (size_t)n) == 0;
}

/* SIGKILLs every child of the calling single-threaded process. */
static void kill_children(void) {
    int fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
    if (fd < 0) { /* a kernel without CONFIG_PROC_CHILDREN */
        struct child_scan scan = {getpid(), 0};
        for_each_numbered("/proc", kill_if_child, &scan);
        return;
    }
    char buf[512];
    long pid = 0;
    int digits = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                pid = pid * 10 + (buf[i] - '0');
                digits = 1;
            } else {
                if (digits)
                    kill((pid_t)pid, SIGKILL);
                pid = digits = 0;
            }
        }
    }
    if (digits)
        kill((pid_t)pid, SIGKILL);
    close(fd);
}

/* Reaps the exited children but the program, which stays a zombie (its
 * pid, and so its process group id, cannot be reused while we may still
 * signal them). Returns 1 once the program has exited. */
static int reap_others(pid_t program) {
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
            return 0;
        if (info.si_pid == program)
            return 1;
        waitpid(info.si_pid, NULL, WNOHANG);
    }
}

/* Reaps what has exited, noting the program's status. Returns 1 once the
 * supervisor has no child left. */
static int reap_children(pid_t program, int *status, int *program_done) {
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        if (p == program) {
            *status = st;
            *program_done = 1;
        }
    return p < 0 && errno == ECHILD;
}

/* The program (the supervisor's child): never returns. */
static void exec_program(const struct spawn *sp, pid_t supervisor) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0); /* the supervisor does it too: no window for a relay to miss */
    signal(SIGPIPE, SIG_DFL);
    signal(KILL_TREE_SIGNAL, SIG_DFL);
    /* If the supervisor dies (even by SIGKILL), the shell dies with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != supervisor)
        _exit(127);
    /* A worker started with stdin or stdout closed may hold a pipe at 0-2:
     * move them all up first so that no dup2 clobbers another. */
    int fds[3] = {sp->in, sp->out, sp->err};
    for (int i = 0; i < 3; i++)
        if (fds[i] < 3)
            fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
    for (int i = 0; i < 3; i++)
        if (fds[i] < 0 || dup2(fds[i], i) < 0)
            _exit(127);
    close_from(3);
    char *const argv[] = {"sh", "-c", (char *)sp->command, NULL};
    execve("/bin/sh", argv, sp->env);
    _exit(127);
}

/* The supervisor (the worker's child): never returns. */
static void supervise(const struct spawn *sp) {
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIGCHLD);
    sigaddset(&waited, KILL_TREE_SIGNAL);
    sigaddset(&waited, SIGTERM);
    sigprocmask(SIG_BLOCK, &waited, NULL);
    signal(SIGCHLD, SIG_DFL);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, KILL_TREE_SIGNAL);
    if (getppid() != sp->worker)
        _exit(127);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t self = getpid();
    /* vfork: the child only makes system calls before execve or _exit
     * (exec_program), and copying the worker's address space a second
     * time per command (page tables, and a sanitizer's shadow) is what
     * made each command slow. */
    pid_t program = vfork();    // NOLINT(clang-analyzer-security.insecureAPI.vfork)
    if (program == 0)           /* system calls only, up to execve or _exit: */
        exec_program(sp, self); // NOLINT(clang-analyzer-unix.Vfork)
    if (program > 0)
        setpgid(program, program);
    int proc_ok = proc_is_ours();
    /* Keep only the status pipe (as fd 0): the worker's sockets and the
     * pipes of other commands forked meanwhile must not live on here. */
    if (dup2(sp->status_fd, 0) < 0)
        _exit(127);
    close_from(1);

    int status = 127 << 8, program_reaped = program < 0, kill_now = program < 0;
    while (!kill_now && !reap_others(program)) {
        siginfo_t info;
        int sig = sigwaitinfo(&waited, &info);
        if (sig == KILL_TREE_SIGNAL)
            kill_now = 1;
        else if (sig == SIGTERM)
            kill(-program, SIGTERM);
    }
    /* Whatever the program left behind, or the whole tree: SIGKILL every
     * child (orphans become ours as their parents die) until none is left.
     * Without a /proc of our namespace only the program's group can be
     * reached; what left it keeps us here until the worker gives up on us
     * (LINGER_MS) and kills us. */
    for (;;) {
        if (program > 0 && !program_reaped) /* its group id is still its own */
            kill(-program, SIGKILL);
        if (proc_ok)
            kill_children();
        if (reap_children(program, &status, &program_reaped))
            break;
        struct timespec pause = {0, TREE_RESCAN_NS};
        nanosleep(&pause, NULL);
    }
    ssize_t written = write(0, &status, sizeof status);
    (void)written; /* the worker may have given up on us: nothing to do */
    _exit(0);
}

/* 1 once the supervisor `pid` has exited (it stays reapable). */
static int supervisor_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
    return rc == 0 && info.si_pid == pid;
}

/* ------------------------------------------------------ orphan reaper */

/*
 * Reaps exited children that are not supervisors, one at a time: waitid()
 * with WNOWAIT names a zombie without reaping it, so a supervisor's exit
 * status stays for its executor (which then reaps it within a poll slice;
 * until then the round stops there). Asks the kernel, not /proc, which
 * may be mounted for another PID namespace than ours.
 */
void baton_worker_command_reap_orphans(void) {
    pthread_rwlock_wrlock(&spawn_lock);
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0 ||
            command_tracked((int)info.si_pid))
            break;
        waitpid(info.si_pid, NULL, WNOHANG);
    }
    pthread_rwlock_unlock(&spawn_lock);
}

/* ------------------------------------------------------------- run */

/* Opens `n` pipes with close-on-exec; on failure closes those it opened. */
static int open_pipes(int (*pipes)[2], int n) {
    for (int i = 0; i < n; i++) {
        if (pipe2(pipes[i], O_CLOEXEC) == 0)
            continue;
        int saved = errno;
        while (i-- > 0)
            close(pipes[i][0]), close(pipes[i][1]);
        errno = saved;
        return -1;
    }
    return 0;
}

baton_handler_status_t baton_worker_command_run(baton_job_t *job, void *ctx) {
    const struct command_handler *handler = ctx;
    size_t max_result = baton_worker_max_result_bytes(handler->worker);
    int64_t kill_grace = baton_worker_kill_grace_ms(handler->worker);
    char *input = json_dumps(baton_job_payload(job), JSON_COMPACT | JSON_ENCODE_ANY);
    char **env = child_env(job, baton_worker_command_env(handler->worker));
    if (!input || !env) {
        free(input);
        env_free(env);
        baton_job_set_error(job, "command: out of memory");
        return BATON_HANDLER_FAILED;
    }
    int pipes[4][2];
    if (open_pipes(pipes, 4)) {
        free(input);
        env_free(env);
        baton_job_set_error(job, "command: cannot create pipes: %s", strerror(errno));
        return BATON_HANDLER_FAILED;
    }
    int *pin = pipes[0], *pout = pipes[1], *perr = pipes[2], *pstatus = pipes[3];
    struct spawn sp = {handler->command, env, pin[0], pout[1], perr[1], pstatus[1], getpid()};
    pthread_rwlock_rdlock(&spawn_lock);
    pid_t pid = fork();
    if (pid == 0)
        supervise(&sp);
    if (pid > 0) {
        setpgid(pid, pid); /* also in the parent: no window where kill(-pid) misses */
        atomic_store(&job->pgid, (int)pid);
        baton_worker_command_track((int)pid);
    }
    pthread_rwlock_unlock(&spawn_lock);
    int fork_errno = errno;
    env_free(env);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    close(pstatus[1]);
    if (pid < 0) {
        free(input);
        baton_job_set_error(job, "command: fork: %s", strerror(fork_errno));
        close(pin[1]), close(pout[0]), close(perr[0]), close(pstatus[0]);
        return BATON_HANDLER_FAILED;
    }
    if (baton_job_should_stop(job)) /* a stop that came before the pgid was known */
        kill(-pid, SIGTERM);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    fcntl(pout[0], F_SETFL, O_NONBLOCK);
    fcntl(perr[0], F_SETFL, O_NONBLOCK);
    fcntl(pstatus[0], F_SETFL, O_NONBLOCK);

    struct capture out = {.limit = max_result + 1};
    struct capture err = {.limit = STDERR_TAIL + 3, .tail = 1, .data = malloc(STDERR_TAIL + 3)};
    size_t input_len = strlen(input), written = 0;
    int in_fd = pin[1], out_fd = pout[0], err_fd = perr[0];
    int status = 0, exited = 0;
    int64_t term_at = 0, tree_killed_at = 0, exited_at = 0;
    char buf[65536];

    while (!exited || out_fd >= 0 || err_fd >= 0) {
        int64_t now = baton_time_mono_ms();
        if (baton_job_should_stop(job) && !term_at) {
            kill(-pid, SIGTERM);
            term_at = now;
        }
        if (term_at && !tree_killed_at && now - term_at >= kill_grace) {
            baton_worker_command_kill_tree((int)pid);
            tree_killed_at = now;
        }
        /* Whatever still holds a pipe (a descendant stuck in the kernel, a
         * descriptor passed to another process) does not hold the attempt. */
        if ((tree_killed_at && now - tree_killed_at >= LINGER_MS) ||
            (exited && now - exited_at >= LINGER_MS))
            break;
        struct pollfd fds[4];
        int nfds = 0;
        if (in_fd >= 0)
            fds[nfds++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
        if (out_fd >= 0)
            fds[nfds++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
        if (err_fd >= 0)
            fds[nfds++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
        /* The status pipe turns readable (status or EOF) when the
         * supervisor is done: no descendant holds its write end, so the
         * wait ends at the supervisor's exit, not at the next slice. */
        if (!exited)
            fds[nfds++] = (struct pollfd){.fd = pstatus[0], .events = POLLIN};
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
        if (!exited && supervisor_exited(pid)) {
            /* The supervisor killed and reaped the program's whole tree
             * before it exited: the pipes are at EOF now. */
            atomic_store(&job->pgid, 0); /* before the pid can be reused */
            waitpid(pid, &status, 0);
            exited = 1;
            exited_at = baton_time_mono_ms();
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    if (!exited) { /* gave up after LINGER_MS: the supervisor goes too */
        atomic_store(&job->pgid, 0);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    baton_worker_command_untrack((int)pid);
    /* The program's own status, which the supervisor wrote before it
     * exited; without it (the supervisor was killed), the supervisor's. */
    int program_status;
    if (read(pstatus[0], &program_status, sizeof program_status) == sizeof program_status)
        status = program_status;
    close(pstatus[0]);
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
        size_t len = err.len - start;
        const char *raw = err.data ? err.data + start : "";
        while (len > 0 && (raw[len - 1] == '\n' || raw[len - 1] == '\r'))
            len--;
        /* Cleaned before formatting: a NUL byte in stderr would end a %s
         * there and lose the rest of the text. */
        char *tail = baton_utf8_sanitize(raw, len, NULL);
        const char *text = tail ? tail : "";
        if (WIFEXITED(status))
            baton_job_set_error(job, "exit status %d%s%s", WEXITSTATUS(status), *text ? ": " : "",
                                text);
        else
            baton_job_set_error(job, "killed by signal %d%s%s", WTERMSIG(status), *text ? ": " : "",
                                text);
        free(tail);
    }
    free(out.data);
    free(err.data);
    return result;
}
