#!/usr/bin/env bash
# test_worker_timeout.sh: an attempt that runs past its timeout_ms is stopped
# and counted as a failed attempt with reason "timeout".
#
#  - a built-in `sleep` task (10 s) with timeout_ms 300 and max_attempts 2:
#    its first attempt is stopped at once and fails (event "failed",
#    reason=timeout, error "timed out after 300 ms", back to scheduled), the
#    retry times out too and the task ends dead (event "dead", reason=timeout);
#  - the same with max_attempts 1: dead after its only attempt, error
#    "timed out after 300 ms";
#  - a command handler that ignores SIGTERM (trap "" TERM; sleep 30) with
#    timeout_ms 1500 and --kill-grace-ms 300: SIGTERM does nothing, so the
#    worker SIGKILLs its process group; the attempt fails with reason
#    timeout well before the 30 s sleep would end, and no process of that
#    command (neither the shell nor its `sleep 30`) is left running.
#
# The command's processes are found two ways: the shell by `pgrep -f` on a
# marker in its command line (anchored at "sh -c", since the worker's own
# command line carries the --command text too), every process of the task
# (the `sleep 30` as well) by BATON_TASK_ID in /proc/PID/environ, which the
# worker sets for the program and its children inherit. Both are first seen
# alive, so their absence afterwards means something.

# shellcheck disable=SC2154 # worker_pid: set by start_worker
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
marker="stubborn-$UNIQ"
stubborn_id="stubborn-$UNIQ"

# Pids of every process of the stubborn task (by the environment variable
# the worker gives the program; children inherit it).
task_pids() {
  grep -lzx "BATON_TASK_ID=$stubborn_id" /proc/[0-9]*/environ 2>/dev/null |
    sed 's#^/proc/\([0-9]*\)/environ$#\1#' || true
}
shell_pids() { pgrep -f -- "^sh -c trap .*# $marker\$" || true; }

# A failed test must not leave the stubborn program behind: lib.sh's cleanup
# kills the worker, not what it started.
cleanup_timeout_test() {
  local pid
  for pid in $(task_pids) $(shell_pids); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  cleanup_test
}
trap cleanup_timeout_test EXIT

# ev_lines ID EVENT FIELD: FIELD of each EVENT of task ID, oldest first.
ev_lines() {
  events "$queue" | python3 -c '
import json, sys
tid, ev, field = sys.argv[1:]
for line in sys.stdin:
    e = json.loads(line)
    if e.get("id") == tid and e.get("event") == ev:
        print(e.get(field, ""))' "$@"
}
ev_count() { ev_lines "$1" "$2" event | wc -l; }
state_is() { [ "$(task_field "$queue" "$1" state)" = "$2" ]; }

create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker worker --queues "$queue" --concurrency 4 --kill-grace-ms 300 \
  --backoff-base-ms 100 --backoff-cap-ms 200 \
  --command "stubborn=trap \"\" TERM; sleep 30 # $marker"

{
  echo "{\"id\":\"slow-twice\",\"type\":\"sleep\",\"queue\":\"$queue\",\"payload\":10000,\"timeout_ms\":300,\"max_attempts\":2}"
  echo "{\"id\":\"slow-once\",\"type\":\"sleep\",\"queue\":\"$queue\",\"payload\":10000,\"timeout_ms\":300,\"max_attempts\":1}"
  echo "{\"id\":\"$stubborn_id\",\"type\":\"stubborn\",\"queue\":\"$queue\",\"timeout_ms\":1500,\"max_attempts\":1}"
} | produce "$topic" -k "$queue"

# --- the stubborn command: seen alive first (the shell and its sleep) ----
stubborn_alive() {
  [ "$(task_pids | wc -l)" -ge 2 ] && [ "$(shell_pids | wc -l)" -ge 1 ]
}
wait_until 60 "the stubborn command to run (shell and sleep 30)" stubborn_alive

# --- sleep tasks ----------------------------------------------------------
wait_until 30 "slow-once to end dead" state_is slow-once dead
wait_until 30 "slow-twice to end dead" state_is slow-twice dead

for id in slow-once slow-twice; do
  error=$(task_field "$queue" "$id" error)
  [ "$error" = "timed out after 300 ms" ] || fail "$id: error is '$error', expected 'timed out after 300 ms'"
  [ "$(ev_count "$id" dead)" -eq 1 ] || fail "$id: expected one dead event"
  [ "$(ev_lines "$id" dead reason)" = timeout ] || fail "$id: dead event reason is '$(ev_lines "$id" dead reason)'"
  [ "$(ev_lines "$id" dead error)" = "timed out after 300 ms" ] || fail "$id: dead event error is wrong"
  [ "$(ev_count "$id" succeeded)" -eq 0 ] || fail "$id: succeeded although it timed out"
  [ -z "$(rcli zscore "baton:{$queue}:running" "$id")" ] || fail "$id: still in the running set"
  [ -n "$(rcli zscore "baton:{$queue}:dead" "$id")" ] || fail "$id: not in the dead set"
done
[ "$(task_field "$queue" slow-once attempt)" = 1 ] || fail "slow-once: attempt is not 1"
[ "$(ev_count slow-once failed)" -eq 0 ] || fail "slow-once: max_attempts 1 but a failed (retry) event"
[ "$(ev_count slow-once claimed)" -eq 1 ] || fail "slow-once: claimed more than once"

# slow-twice: attempt 1 failed with reason timeout and went back to
# scheduled, attempt 2 timed out and made it dead.
[ "$(task_field "$queue" slow-twice attempt)" = 2 ] || fail "slow-twice: attempt is not 2"
[ "$(ev_count slow-twice claimed)" -eq 2 ] || fail "slow-twice: expected two claims"
[ "$(ev_count slow-twice failed)" -eq 1 ] || fail "slow-twice: expected one failed event"
[ "$(ev_lines slow-twice failed reason)" = timeout ] || fail "slow-twice: failed event reason is '$(ev_lines slow-twice failed reason)'"
[ "$(ev_lines slow-twice failed error)" = "timed out after 300 ms" ] || fail "slow-twice: failed event error is wrong"
[ "$(ev_lines slow-twice failed attempt)" = 1 ] || fail "slow-twice: failed event is not attempt 1"
[ "$(ev_lines slow-twice failed to)" = scheduled ] || fail "slow-twice: failed event does not go to scheduled"
[ "$(ev_lines slow-twice dead attempt)" = 2 ] || fail "slow-twice: dead event is not attempt 2"

# Each attempt was stopped at its timeout, not after the 10 s sleep: a
# claim is followed by its failure within a few seconds (Redis times).
events "$queue" | python3 -c '
import json, sys
last = {}
for line in sys.stdin:
    e = json.loads(line)
    if e["id"] not in ("slow-once", "slow-twice"):
        continue
    if e["event"] == "claimed":
        last[e["id"]] = int(e["at"])
    elif e["event"] in ("failed", "dead"):
        tid, attempt = e["id"], e["attempt"]
        took = int(e["at"]) - last[tid]
        if not 300 <= took < 5000:
            sys.exit(f"{tid} attempt {attempt} ran {took} ms, expected about 300")
' || fail "a timed-out sleep attempt was not stopped at its timeout"

# --- the stubborn command: killed, attempt failed with reason timeout ----
wait_until 20 "the stubborn task to end dead" state_is "$stubborn_id" dead
error=$(task_field "$queue" "$stubborn_id" error)
[ "$error" = "timed out after 1500 ms" ] || fail "stubborn: error is '$error'"
[ "$(ev_count "$stubborn_id" dead)" -eq 1 ] || fail "stubborn: expected one dead event"
[ "$(ev_lines "$stubborn_id" dead reason)" = timeout ] || fail "stubborn: dead event reason is '$(ev_lines "$stubborn_id" dead reason)'"
claimed_at=$(ev_lines "$stubborn_id" claimed at)
dead_at=$(ev_lines "$stubborn_id" dead at)
took=$((dead_at - claimed_at))
# timeout 1500 + kill grace 300; far below the 30 s the program wanted.
[ "$took" -ge 1500 ] || fail "stubborn: failed after $took ms, before its timeout"
[ "$took" -lt 10000 ] || fail "stubborn: failed only after $took ms (SIGKILL after --kill-grace-ms 300 expected)"

stubborn_gone() { [ -z "$(task_pids)" ] && [ -z "$(shell_pids)" ]; }
wait_until 5 "the stubborn command's processes to be gone" stubborn_gone

# The worker is still healthy: it stops cleanly and at once (nothing runs).
kill -TERM "$worker_pid"
wait_until 10 "the worker to exit after SIGTERM" exited "$worker_pid"
rc=0
wait "$worker_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the worker exited with $rc after SIGTERM"
grep -q 'timed out after 1500 ms' "$WORK/worker.log" ||
  fail "the worker did not log the timeout"
echo "stubborn command killed after $took ms; sleep tasks timed out"
echo "1 passed, 0 failed"
