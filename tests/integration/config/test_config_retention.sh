#!/usr/bin/env bash
# test_config_retention.sh: the services agree on --retention-ms (how long
# finished tasks stay in Redis), the one setting that the scheduler, the
# workers and batonctl each pass to the scripts (common/retention.h).
#  - a scheduler publishes its value in Redis (baton:config retention_ms);
#  - a worker given another value (flag or BATON_RETENTION_MS) refuses to
#    start, exit 2, with one line naming both values and both flags; given
#    the same value, or none, it starts (none: the tasks it finishes stay
#    in Redis for the scheduler's retention, not the 7d default);
#  - batonctl cancel likewise (exit 2; else it goes on to look the task up);
#  - a second scheduler given another value refuses; the same value starts;
#  - the value stays published when the schedulers stop, so a worker
#    started then is still checked;
#  - before any scheduler ran, a worker runs with its own value.
# A Redis of its own (the published value must not meet other tests' workers).
. "$(dirname "$0")/../lib.sh"

B=$BATON_BIN_DIR
port=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
  --appendonly yes --appendfsync always --maxmemory-policy noeviction >"$WORK/redis.log" 2>&1 &
TEST_PIDS+=("$!")
wait_until 20 "the test's Redis to answer" redis-cli -p "$port" ping
BATON_REDIS_URL="redis://127.0.0.1:$port/0"
export BATON_REDIS_URL
QUEUE="q.$UNIQ"
published() { rcli hget baton:config retention_ms; }
published_is() { [ "$(published)" = "$1" ]; }

# refused NAME WANT... -- COMMAND...: COMMAND exits 2 with one line on
# stderr holding every WANT.
refused() {
  local name=$1 rc=0 want=()
  shift
  while [ "$1" != -- ]; do want+=("$1"); shift; done
  shift
  timeout 60 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  [ "$rc" -eq 2 ] || fail "$name: exit $rc, want 2 (a refused configuration): $(tail -n 3 "$WORK/$name.err")"
  local line
  line=$(grep -v '^{' "$WORK/$name.err" || true) # not the JSON log lines
  [ "$(printf '%s\n' "$line" | wc -l)" -eq 1 ] || fail "$name: not one line of error: $line"
  for w in "${want[@]}"; do
    printf '%s\n' "$line" | grep -qF -- "$w" || fail "$name: no '$w' in: $line"
  done
  echo "$name refused: $line"
}

# runs NAME: the worker NAME started (its log says so) and is still running.
runs() {
  local name=$1 pid_var="${1}_pid"
  wait_until 30 "worker $name to start" grep -q "worker $name.$UNIQ started" "$WORK/$name.log"
  kill -0 "${!pid_var}" || fail "worker $name exited: $(tail -n 3 "$WORK/$name.log")"
}

# Before any scheduler: a worker runs with its own value, and says so.
start_worker early --queues "$QUEUE" --retention-ms 5s
runs early
grep -q 'retention 5s (--retention-ms): no scheduler has published one' "$WORK/early.log" ||
  fail "the worker does not say it runs with its own retention: $(grep -i retention "$WORK/early.log")"
stop_pid "$early_pid"
[ -z "$(published)" ] || fail "a worker published a retention: $(published)"

# The scheduler publishes its value.
topic="t.$UNIQ"
create_topic "$topic"
start_scheduler s1 --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ" --retention-ms 1h
wait_until 30 "the scheduler to publish its retention" published_is 3600000

# A worker with another value refuses; by flag or by environment.
refused worker_flag "--retention-ms 1d" "--retention-ms 1h" "baton:config" -- \
  "$B/worker/baton-worker" --queues "$QUEUE" --retention-ms 1d
refused worker_env "--retention-ms 3s" "BATON_RETENTION_MS" "--retention-ms 1h" -- \
  env BATON_RETENTION_MS=3s "$B/worker/baton-worker" --queues "$QUEUE"

# The same value, or none: it starts; with none it runs with the scheduler's.
start_worker same --queues "$QUEUE" --retention-ms 3600000
runs same
stop_pid "$same_pid"
start_worker none --queues "$QUEUE"
runs none
grep -q "retention 1h, the scheduler's" "$WORK/none.log" ||
  fail "the worker without --retention-ms does not take the scheduler's: $(grep -i retention "$WORK/none.log")"
echo "{\"id\":\"r1\",\"type\":\"noop\",\"queue\":\"$QUEUE\"}" | produce "$topic" -k "$QUEUE"
succeeded() { [ "$(task_field "$QUEUE" r1 state)" = succeeded ]; }
wait_until 60 "the task to succeed" succeeded
ttl=$(rcli pttl "baton:{$QUEUE}:t:r1")
[ "$ttl" -gt 0 ] && [ "$ttl" -le 3600000 ] ||
  fail "the finished task stays in Redis for ${ttl} ms, not the scheduler's 1h"

# batonctl cancel: another value refuses; the same or none goes on to look
# the task up (exit 3: no such task).
CTL="$B/ctl/batonctl"
refused ctl_flag "--retention-ms 1d" "--retention-ms 1h" -- "$CTL" cancel "nope.$UNIQ" --retention-ms 1d
refused ctl_global "--retention-ms 2h" "--retention-ms 1h" -- "$CTL" --retention-ms 2h cancel "nope.$UNIQ"
for args in "--retention-ms 60m" ""; do
  rc=0
  # shellcheck disable=SC2086 # $args: no flag, or a flag and its value
  timeout 60 "$CTL" cancel "nope.$UNIQ" $args >"$WORK/ctl.out" 2>"$WORK/ctl.err" || rc=$?
  [ "$rc" -eq 3 ] || fail "batonctl cancel ${args:-without --retention-ms}: exit $rc, want 3: $(cat "$WORK/ctl.err")"
  grep -q "not found" "$WORK/ctl.err" || fail "batonctl cancel: $(cat "$WORK/ctl.err")"
done

# A second scheduler with another value refuses; with the same one it runs.
refused sched_other "--retention-ms 1d" "--retention-ms 1h" "baton:config" -- \
  "$B/scheduler/baton-scheduler" --redis-url "$BATON_REDIS_URL" --ingest=false --history=false \
  --retention-ms 1d
start_scheduler s2 --ingest=false --retention-ms 1h
wait_until 30 "the second scheduler to start" grep -q '"started (ingest off' "$WORK/s2.log"
kill -0 "$s2_pid" || fail "the second scheduler with the same retention exited"
[ "$(published)" = 3600000 ] || fail "the published retention changed: $(published)"

# Every scheduler stopped: the value stays, and still binds a new worker.
stop_pid "$s1_pid"
stop_pid "$s2_pid"
refused worker_later "--retention-ms 1d" "--retention-ms 1h" -- \
  "$B/worker/baton-worker" --queues "$QUEUE" --retention-ms 1d

echo "OK: disagreeing retentions refused (worker, batonctl, scheduler), agreeing ones run"
