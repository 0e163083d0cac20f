# lib.sh - helpers for the integration test scripts (sourced, not run).
#
# Gives each test a private work directory, names no other test uses (topic,
# consumer group, queue), the stack's environment, and processes that are
# stopped by pid when the test exits, whatever way it exits. Waiting is
# always on a condition with a bound (wait_until), never a fixed sleep.
set -euo pipefail

if [ -n "${BATON_STACK_ENV_FILE:-}" ] && [ -r "$BATON_STACK_ENV_FILE" ]; then
  # shellcheck disable=SC1090
  . "$BATON_STACK_ENV_FILE"
fi
: "${BATON_BIN_DIR:?BATON_BIN_DIR must point at the build directory}"

TEST_NAME=$(basename "$0" .sh)
UNIQ="${TEST_NAME//_/-}-$$-$RANDOM"
WORK=$(mktemp -d "/tmp/baton-test.XXXXXX")
TEST_PIDS=()
# Kafka settings for tests on the embedded Kafka: fetches return at once
# when idle, and a member joining a live group waits for the session timeout
# of the old members, so it is short here.
TEST_KAFKA_CONFIG="fetch.wait.max.ms=5,session.timeout.ms=6000,heartbeat.interval.ms=500,topic.metadata.refresh.interval.ms=1000"

fail() {
  echo "FAIL: $*" >&2
  for log in "$WORK"/*.log; do
    [ -f "$log" ] && { echo "--- $log (last 30 lines)" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

cleanup_test() {
  local pid
  for pid in "${TEST_PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup_test EXIT

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 20 ms until
# it succeeds; fails the test after SECONDS.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for: $what"
    sleep 0.02
  done
}

rcli() { redis-cli -u "$BATON_REDIS_URL" "$@"; }

# create_topic NAME: the embedded Kafka creates a topic (4 partitions) on a
# producer's metadata request.
create_topic() {
  kcat -L -b "$BATON_KAFKA_BROKERS" -t "$1" >/dev/null 2>&1 || true
  wait_until 20 "topic $1 to exist" sh -c "kcat -L -b '$BATON_KAFKA_BROKERS' -t '$1' 2>/dev/null | grep -q 'partition 0,'"
}

# produce TOPIC [KCAT ARGS...]: one message per stdin line.
produce() {
  local topic=$1
  shift
  kcat -P -b "$BATON_KAFKA_BROKERS" -t "$topic" "$@"
}

# use_redis_db N: this test uses Redis database N (1-15) instead of 0.
# Tests that run the history writer need it: the writer consumes (and
# deletes) the events streams of every queue in its database, which other
# tests running at the same time read.
use_redis_db() {
  BATON_REDIS_URL="${BATON_REDIS_URL%/*}/$1"
  export BATON_REDIS_URL
  rcli flushdb >/dev/null
}

# start_scheduler NAME [ARGS...]: a baton-scheduler on the stack, logging to
# $WORK/NAME.log; its pid goes to TEST_PIDS and to the variable NAME_pid.
# The history writer is off unless SCHEDULER_HISTORY=true (see use_redis_db).
# SCHEDULER_BIN=testhooks runs the test build with its failure hooks
# (tests/integration/history/scheduler_test_hooks.c) instead of baton-scheduler.
start_scheduler() {
  local name=$1
  shift
  local history=(--history=false) bin="$BATON_BIN_DIR/scheduler/baton-scheduler"
  [ "${SCHEDULER_HISTORY:-false}" = true ] && history=(--pg-dsn "$BATON_PG_DSN" --history-claim-idle-ms 2000)
  [ "${SCHEDULER_BIN:-}" = testhooks ] && bin="$BATON_BIN_DIR/tests/integration/history/baton-scheduler-testhooks"
  "$bin" --kafka-brokers "$BATON_KAFKA_BROKERS" \
    --redis-url "$BATON_REDIS_URL" --kafka-config "$TEST_KAFKA_CONFIG" \
    --maintenance-interval-ms 20 --log-level debug "${history[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  TEST_PIDS+=("$pid")
  printf -v "${name}_pid" '%s' "$pid"
}

# free_port: a TCP port nobody listens on now, e.g. for a /metrics endpoint.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# exited PID: PID (a child of this shell) is gone or a zombie.
exited() {
  ! kill -0 "$1" 2>/dev/null || [ "$(ps -o stat= -p "$1" | cut -c1)" = Z ]
}

# stop_pid PID [SIGNAL]: signals PID and waits for it to exit.
stop_pid() {
  kill "-${2:-TERM}" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# task_count QUEUE: number of task hashes of QUEUE in Redis.
task_count() {
  rcli --scan --pattern "baton:{$1}:t:*" | wc -l
}

# start_worker NAME [ARGS...]: a baton-worker on the stack, logging to
# $WORK/NAME.log, with every built-in handler (the test-only fail and crash
# too; a later --builtins in ARGS wins); its pid goes to TEST_PIDS and to
# the variable NAME_pid. WORKER_BINARY=baton-worker-test selects the build
# with the failure points tests set from the environment (BATON_TEST_*).
start_worker() {
  local name=$1
  shift
  "$BATON_BIN_DIR/worker/${WORKER_BINARY:-baton-worker}" --redis-url "$BATON_REDIS_URL" --log-level debug \
    --worker-id "$name.$UNIQ" --builtins noop,sleep,echo,fail,crash "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  TEST_PIDS+=("$pid")
  printf -v "${name}_pid" '%s' "$pid"
}

# task_field QUEUE ID FIELD: one field of a task hash.
task_field() { rcli hget "baton:{$1}:t:$2" "$3"; }

# count_state QUEUE STATE: tasks of QUEUE in STATE.
count_state() {
  local q=$1 want=$2 n=0 key
  for key in $(rcli --scan --pattern "baton:{$q}:t:*"); do
    [ "$(rcli hget "$key" state)" = "$want" ] && n=$((n + 1))
  done
  echo "$n"
}

# events QUEUE: the queue's events, one JSON line per event, oldest first:
# {"stream_id": ..., "index": ..., "id": task id, "seq": ..., "event": ..., "to": ...}.
# A stream entry holds the events of one script call, one after the other,
# each beginning with its field "id" (docs/redis.md): the entry is split at
# every "id" field; "index" is the event's place in its entry. An entry
# that does not begin with "id" is one event, marked "malformed" (as the
# history writer takes it).
events() {
  rcli --json xrange "baton:{$1}:events" - + | python3 -c '
import json, sys
for stream_id, fields in json.load(sys.stdin):
    pairs = list(zip(fields[0::2], fields[1::2]))
    if not pairs or pairs[0][0] != "id":
        event = {"stream_id": stream_id, "index": 0, "malformed": True}
        event.update(pairs)
        print(json.dumps(event))
        continue
    event = None
    for name, value in pairs:
        if name == "id":
            if event is not None:
                print(json.dumps(event))
            event = {"stream_id": stream_id, "index": 0 if event is None else event["index"] + 1}
        event[name] = value
    print(json.dumps(event))'
}

# event_count QUEUE: events in the queue's stream (each entry holds one or more).
event_count() { events "$1" | wc -l; }

# use_own_stack: for tests that stop or break a server on purpose, which
# would break every other test on the shared fixture stack. Brings up a
# stack of the test's own (dev/stack.sh) and takes it down at exit, after
# the test's processes are stopped.
use_own_stack() {
  STACK_SH=${BATON_STACK_SH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/dev/stack.sh}
  OWN_STACK_ENV=$WORK/stack.env
  trap cleanup_own_stack EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  "$STACK_SH" up --env-file "$OWN_STACK_ENV" >/dev/null || fail "could not bring up the test's own stack"
  # shellcheck disable=SC1090
  . "$OWN_STACK_ENV"
}

cleanup_own_stack() {
  local pid
  for pid in "${TEST_PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -f "$OWN_STACK_ENV" ]; then
    "$STACK_SH" down --env-file "$OWN_STACK_ENV" >/dev/null ||
      echo "WARNING: could not take down the test's stack ($OWN_STACK_ENV)" >&2
  fi
  cleanup_test
}
