#!/usr/bin/env bash
# test_worker_pid1.sh: a worker that is PID 1 (a container run without an
# init) reaps the orphans of its PID namespace, without stealing the exit
# status of its command handlers.
#
# The worker runs as PID 1 of a PID namespace of its own (unshare; needs
# root, skipped with status 77 where namespaces are refused). Two sleeps
# are started in that namespace by a shell that exits at once (nsenter,
# like `docker exec`): they are re-parented to the worker, seen there
# alive, and once they exit the worker must reap them (they stayed zombies
# for good). Meanwhile command tasks run and exit with their own status
# (0 and 3): the reaper leaves the handlers' processes to their executors.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../lib.sh"

unshare --pid --fork --kill-child true 2>/dev/null || {
  echo "SKIP: cannot create a PID namespace here (unshare --pid needs root)"
  exit 77
}

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"

unshare --pid --fork --kill-child "$BATON_BIN_DIR/worker/baton-worker" \
  --redis-url "$BATON_REDIS_URL" --log-level debug --worker-id "pid1.$UNIQ" \
  --queues "$queue" --concurrency 2 --backoff-base-ms 50 \
  --command "ok=sleep 0.2; echo '\"fine\"'" --command "bad=sleep 0.2; echo nope >&2; exit 3" \
  >"$WORK/worker.log" 2>&1 &
unshare_pid=$!
TEST_PIDS+=("$unshare_pid")
worker_pid=""
find_worker() { worker_pid=$(pgrep -P "$unshare_pid" | head -n1) && [ -n "$worker_pid" ]; }
wait_until 10 "the worker to start in its namespace" find_worker
started() { grep -q 'started: queues' "$WORK/worker.log"; }
wait_until 30 "the worker to run" started
[ "$(awk '/^NSpid:/ {print $NF}' "/proc/$worker_pid/status")" = 1 ] || fail "the worker is not PID 1 of its namespace"

# Orphans of the namespace: their parent shell exits at once.
nsenter -t "$worker_pid" -p sh -c 'sleep 2 & sleep 2 & exit 0'
children() { ps --ppid "$worker_pid" -o pid=,stat=,comm= || true; }
orphans_seen() { [ "$(children | grep -c ' sleep$')" -eq 2 ]; }
wait_until 10 "the two sleeps to be re-parented to the worker" orphans_seen

{
  for i in 1 2 3; do
    echo "{\"id\":\"ok-$i\",\"type\":\"ok\",\"queue\":\"$queue\",\"max_attempts\":1}"
    echo "{\"id\":\"bad-$i\",\"type\":\"bad\",\"queue\":\"$queue\",\"max_attempts\":1}"
  done
} | produce "$topic" -k "$queue"

no_orphans() { [ "$(children | grep -c ' sleep$')" -eq 0 ]; }
wait_until 20 "the worker to reap the orphans (zombies left under PID 1)" no_orphans

state_is() { [ "$(task_field "$queue" "$1" state)" = "$2" ]; }
for i in 1 2 3; do
  wait_until 30 "ok-$i to succeed" state_is "ok-$i" succeeded
  wait_until 30 "bad-$i to end dead" state_is "bad-$i" dead
  [ "$(task_field "$queue" "ok-$i" result)" = '"fine"' ] || fail "ok-$i: result $(task_field "$queue" "ok-$i" result)"
  [ "$(task_field "$queue" "bad-$i" error)" = "exit status 3: nope" ] ||
    fail "bad-$i: error '$(task_field "$queue" "bad-$i" error)' (a stolen exit status?)"
done
[ -z "$(children | awk '$2 ~ /^Z/')" ] || fail "zombies left: $(children)"
echo "1 passed, 0 failed"
