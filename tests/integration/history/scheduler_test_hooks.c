/*
 * scheduler_test_hooks.c - failure points of baton-scheduler, for tests.
 *
 * Linked into baton-scheduler-testhooks only (tests/integration/history/CMakeLists.txt),
 * never into baton-scheduler: a production binary has no code that reads
 * these variables, so nobody can trigger them by setting its environment.
 *
 *   BATON_TEST_HISTORY_CRASH_AFTER_COMMIT=1  the history writer SIGKILLs the
 *       process right after its first COMMIT, before XACK
 *       (tests/integration/history/test_history_crash.sh).
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "scheduler.h"

/* Dies between COMMIT and XACK, leaving the batch pending in Redis. */
static void crash_after_commit(size_t events) {
    BATON_WARN("history", "test hook: crashing after commit of %zu events", events);
    kill(getpid(), SIGKILL);
}

/* Runs before main(): installs the hooks the environment asks for. */
__attribute__((constructor)) static void install_test_hooks(void) {
    const char *crash = getenv("BATON_TEST_HISTORY_CRASH_AFTER_COMMIT");
    if (crash && *crash)
        history_after_commit_hook = crash_after_commit;
}
