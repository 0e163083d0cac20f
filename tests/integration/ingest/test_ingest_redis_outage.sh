#!/usr/bin/env bash
# test_ingest_redis_outage.sh: ingest across a Redis outage loses nothing and
# doubles nothing (guarantees 1, 2 and 9's "pause, never drop").
#
# Phase 1, a crash during an outage:
#  - a scheduler ingests a first chunk of tasks; then Redis is stopped
#    (stack.sh stop redis) and the other chunks are published;
#  - the scheduler must stay alive and log that it holds and retries its
#    batch; it is then killed with SIGKILL while Redis is still down, so
#    whatever it had not enqueued can only come back through offsets it
#    never committed;
#  - Redis is started again on the same port (stack.sh start redis): the
#    first chunk must still be there (AOF);
#  - a new scheduler in the same consumer group must then enqueue every task
#    exactly once: one task hash and one "submitted" event per id, none
#    missing, none extra.
# Phase 2, an outage under a live scheduler: Redis is stopped right after a
# chunk is published, more is published while it is down, Redis comes back,
# and the same scheduler must recover by itself (reconnect, reload its
# scripts, resume its paused partitions) and enqueue everything once.
#
# Completion is detected with one marker task per partition, published after
# everything else: a partition is consumed in order, and a batch's offsets
# move only after Redis accepted the whole batch.
#
# Stopping Redis would break every other test on the shared fixture stack,
# so this test brings up a stack of its own and takes it down at exit.

# shellcheck disable=SC2154 # first_pid, second_pid: set by start_scheduler
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../lib.sh"

use_own_stack
STACK_ENV=$OWN_STACK_ENV

topic="t.$UNIQ"
queue="q.$UNIQ"
group="g.$UNIQ"
N=300        # phase 1 tasks: task-1 .. task-N
CHUNK=60
N2=300       # phase 2 tasks: live-1 .. live-N2
create_topic "$topic"
partitions=$(kcat -L -b "$BATON_KAFKA_BROKERS" -t "$topic" | grep -c '^ *partition [0-9]*,')
[ "$partitions" -ge 1 ] || fail "topic $topic has no partitions"

scheduler_args=(--topic "$topic" --group-id "$group" --dlq-topic "dlq.$UNIQ"
  --redis-timeout-ms 1000)

# publish PREFIX FROM TO: tasks PREFIX-FROM .. PREFIX-TO, keyed by id so
# they spread over the partitions.
publish() {
  local prefix=$1 i
  for ((i = $2; i <= $3; i++)); do
    printf '%s-%d|{"id":"%s-%d","type":"outage","queue":"%s","payload":%d}\n' \
      "$prefix" "$i" "$prefix" "$i" "$queue" "$i"
  done | produce "$topic" -K '|' || fail "could not publish $prefix-$2..$3"
}

# publish_markers NAME: one task NAME-pP on every partition P.
publish_markers() {
  local p
  for ((p = 0; p < partitions; p++)); do
    echo "{\"id\":\"$1-p$p\",\"type\":\"outage\",\"queue\":\"$queue\"}" |
      produce "$topic" -p "$p" || fail "could not publish marker $1-p$p"
  done
}

has_markers() {
  local p
  for ((p = 0; p < partitions; p++)); do
    [ "$(rcli exists "baton:{$queue}:t:$1-p$p")" -eq 1 ] || return 1
  done
}

count_is() { [ "$(task_count "$queue")" -eq "$1" ]; }
logged() { grep -q "$2" "$WORK/$1.log"; }
# Succeeds while PID runs (a zombie has exited).
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# expect_running NAME PID WHILE: fails, with PID's exit status, if the
# scheduler NAME is gone.
expect_running() {
  local rc=0
  alive "$2" && return 0
  wait "$2" 2>/dev/null || rc=$?
  fail "the $1 scheduler exited (status $rc) $3"
}
# until_markers NAME PID: wait_until condition: the markers NAME are in, or
# PID exited (checked after the wait, so a dead scheduler fails at once).
until_markers() { ! alive "$2" || has_markers "$1"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# survives MS NAME PID WHILE: an observation window, not a wait for a
# condition: PID must keep running for MS milliseconds; fails at once if not.
survives() {
  local end=$(($(now_ms) + $1))
  while [ "$(now_ms)" -lt "$end" ]; do
    expect_running "$2" "$3" "$4"
    sleep 0.05
  done
}

# check_exactly_once SPEC...: every id named by SPEC ("PREFIX N": PREFIX-1 ..
# PREFIX-N; "markers NAME": NAME-p0 ..) has exactly one task hash and one
# "submitted" event in the queue, and the queue has nothing else.
check_exactly_once() {
  local expected=() spec prefix n i p
  for spec in "$@"; do
    read -r prefix n <<<"$spec"
    if [ "$prefix" = markers ]; then
      for ((p = 0; p < partitions; p++)); do expected+=("$n-p$p"); done
    else
      for ((i = 1; i <= n; i++)); do expected+=("$prefix-$i"); done
    fi
  done
  printf '%s\n' "${expected[@]}" >"$WORK/expected.ids"
  rcli --scan --pattern "baton:{$queue}:t:*" >"$WORK/tasks.keys"
  events "$queue" >"$WORK/events.json"
  python3 - "$queue" "$WORK/expected.ids" "$WORK/tasks.keys" "$WORK/events.json" <<'EOF' ||
import collections, json, sys
queue, ids_file, keys_file, events_file = sys.argv[1:]
expected = [line.strip() for line in open(ids_file) if line.strip()]
prefix = "baton:{%s}:t:" % queue
keys = [line.strip() for line in open(keys_file) if line.strip()]
tasks = collections.Counter(k[len(prefix):] for k in keys)
submitted = collections.Counter()
for line in open(events_file):
    fields = json.loads(line)
    if fields.get("event") == "submitted":
        submitted[fields.get("id")] += 1
problems = []
exp = set(expected)
missing = sorted(exp - set(tasks))
extra = sorted(set(tasks) - exp)
if missing:
    problems.append("%d task(s) missing: %s" % (len(missing), " ".join(missing[:20])))
if extra:
    problems.append("%d unexpected task(s): %s" % (len(extra), " ".join(extra[:20])))
if len(keys) != len(expected):
    problems.append("%d task hashes for %d ids" % (len(keys), len(expected)))
bad = sorted(i for i in exp if submitted[i] != 1)
if bad:
    problems.append("%d id(s) without exactly one submitted event: %s" % (
        len(bad), " ".join("%s(%d)" % (i, submitted[i]) for i in bad[:20])))
stray = sorted(set(submitted) - exp)
if stray:
    problems.append("submitted events for unexpected ids: %s" % " ".join(stray[:20]))
if problems:
    print("\n".join(problems))
    sys.exit(1)
EOF
    fail "not exactly once (see above)"
}

# ---------------------------------------------------------------- phase 1

start_scheduler first "${scheduler_args[@]}"
publish task 1 "$CHUNK"
wait_until 60 "the first $CHUNK tasks in Redis" count_is "$CHUNK"

"$STACK_SH" stop redis --env-file "$STACK_ENV" || fail "stack.sh stop redis failed"
! rcli ping >/dev/null 2>&1 || fail "Redis still answers after stack.sh stop redis"
for ((from = CHUNK + 1; from <= N; from += CHUNK)); do
  to=$((from + CHUNK - 1))
  [ "$to" -le "$N" ] || to=$N
  publish task "$from" "$to"
done
wait_until 30 "the first scheduler to hold its batch" logged first 'held, retrying'
wait_until 30 "the first scheduler's maintenance to report Redis away" logged first 'will retry'
# Backoff 50, 100, ... 1600 ms: 3 s cover about six retries of the batch.
survives 3000 first "$first_pid" "while Redis was down"
stop_pid "$first_pid" KILL

"$STACK_SH" start redis --env-file "$STACK_ENV" || fail "stack.sh start redis failed"
[ "$(rcli ping)" = PONG ] || fail "Redis does not answer after stack.sh start redis"
count_is "$CHUNK" || fail "after the restart Redis has $(task_count "$queue") tasks, expected the $CHUNK written before the stop (AOF)"

start_scheduler second "${scheduler_args[@]}"
publish_markers m1
wait_until 90 "the phase 1 markers (new scheduler in the same group)" until_markers m1 "$second_pid"
expect_running second "$second_pid" "before ingesting the phase 1 markers"
check_exactly_once "task $N" "markers m1"
echo "phase 1: $N tasks enqueued exactly once across an outage and a SIGKILL"

# ---------------------------------------------------------------- phase 2

third=$((N2 / 3))
publish live 1 "$third"
"$STACK_SH" stop redis --env-file "$STACK_ENV" || fail "stack.sh stop redis (phase 2) failed"
held_before=$(grep -c 'held, retrying' "$WORK/second.log" || true)
publish live $((third + 1)) $((2 * third))
held_more() { [ "$(grep -c 'held, retrying' "$WORK/second.log" || true)" -gt "$held_before" ]; }
wait_until 30 "the live scheduler to hold its batch" held_more
expect_running second "$second_pid" "while Redis was down"

"$STACK_SH" start redis --env-file "$STACK_ENV" || fail "stack.sh start redis (phase 2) failed"
publish live $((2 * third + 1)) "$N2"
publish_markers m2
wait_until 90 "the phase 2 markers (live scheduler after the restart)" until_markers m2 "$second_pid"
expect_running second "$second_pid" "before ingesting the phase 2 markers"
wait_until 30 "the held batch to be accepted after retries" logged second 'accepted after'
wait_until 30 "maintenance to reconnect" logged second 'Redis is back'
expect_running second "$second_pid" "after the outage"
check_exactly_once "task $N" "markers m1" "live $N2" "markers m2"
echo "phase 2: $N2 more tasks enqueued exactly once; the live scheduler recovered by itself"
echo "1 passed, 0 failed"
