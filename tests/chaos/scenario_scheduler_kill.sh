#!/usr/bin/env bash
# scenario_scheduler_kill.sh: the scheduler killed with SIGKILL in the middle
# of ingest, again and again, loses no task and makes none twice (docs/guarantees.md
# guarantees 1 and 2).
#
# The checker publishes tasks without pause (chunks of CHUNK at RATE/s)
# while the only scheduler of the group is killed KILLS times: each time,
# once a new incarnation has resumed ingest (the queue's insertion counter
# moves again), it is killed at a random instant 0.1-2 s later, with
# messages fetched and enqueued whose offsets are not committed yet, its
# maintenance loop and history writer cut off mid-batch too; a new one is
# started at once in the same group and replays from the last committed
# offsets. Two workers run the tasks meanwhile. At the end one scheduler
# stays up, and:
#  - the checker finds every acknowledged task succeeded (I1), every
#    execution claimed in history, no stale write, a clean Redis;
#  - exactly one task per id: the queue holds one task hash per
#    acknowledged id and nothing else, and history has one `submitted`
#    event per task (a replay enqueues nothing: enqueue.lua finds the id).
#
# Replay: CHAOS_SEED=<seed printed below> seeds the kill instants.

# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

KILLS=${CHAOS_KILLS:-5}
CHUNK=200
RATE=80
# A killed member keeps its partitions until its session times out, and
# the mock holds a group's join ~3 s more: a shorter session than lib.sh's
# 6 s keeps each restart short.
KAFKA_CONFIG="$TEST_KAFKA_CONFIG,session.timeout.ms=3000"
SEED=${CHAOS_SEED:-$RANDOM}
RANDOM=$SEED
echo "seed $SEED: $KILLS SIGKILLs of the scheduler during ingest, tasks at $RATE/s"

# replayed PORT: messages the scheduler on PORT found already enqueued
# (enqueue.lua's duplicates: a replay after the previous one was killed).
replayed() {
  curl -sf "http://127.0.0.1:$1/metrics" |
    awk '/^baton_ingest_enqueued_total\{.*result="duplicate"/ { n += $NF } END { print n + 0 }'
}

chaos_up
chaos_worker w1 --concurrency 8 --lease-ms 5000
chaos_worker w2 --concurrency 8 --lease-ms 5000

# produce_until_stopped: chunks of CHUNK tasks (ids c<N>-1..) until the
# stop file appears. Runs in the background.
produce_until_stopped() {
  local n=0
  while [ ! -e "$WORK/stop-producing" ]; do
    n=$((n + 1))
    chaos_produce "$CHUNK" --rate "$RATE" --max-attempts 5 --id-prefix "c$n" >>"$WORK/produce.out" 2>&1 ||
      { echo "chunk c$n: the checker exited non-zero" >>"$WORK/produce.out"; return 1; }
  done
}
produce_until_stopped &
produce_pid=$!
TEST_PIDS+=("$produce_pid")

sched_pid=
replays=0
for ((k = 1; k <= KILLS; k++)); do
  before=$(enqueued)
  port=$(free_port)
  chaos_scheduler "s$k" --kafka-config "$KAFKA_CONFIG" --metrics-port "$port" --metrics-bind 127.0.0.1
  sched_pid_var="s${k}_pid"
  sched_pid=${!sched_pid_var}
  wait_until 60 "scheduler s$k to resume ingest (past $before tasks)" grew_past "$before"
  delay=$((100 + RANDOM % 1901))
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  exited "$sched_pid" && fail "scheduler s$k exited by itself"
  dups=$(replayed "$port")
  at=$(enqueued)
  { kill -KILL "$sched_pid" && wait "$sched_pid"; } 2>/dev/null || true
  replays=$((replays + dups))
  echo "kill $k: s$k ${delay} ms after it resumed ingest at $before tasks; $at enqueued at the kill; it replayed $dups messages its predecessor had enqueued"
done
port=$(free_port)
chaos_scheduler final --kafka-config "$KAFKA_CONFIG" --metrics-port "$port" --metrics-bind 127.0.0.1
before=$(enqueued)
wait_until 60 "the last scheduler to resume ingest" grew_past "$before"
touch "$WORK/stop-producing"
wait_until 60 "the producer to finish its chunk" exited "$produce_pid"
rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the workload: $(tail -n 5 "$WORK/produce.out")"
acked=$(wc -l <"$ACKED")
echo "published $acked tasks"

replays=$((replays + $(replayed "$port")))
echo "replayed after the kills: $replays messages found already enqueued"

chaos_verify --expect succeeded --wait-s 200

chaos_one_task_per_id

echo "CHAOS FAULTS $TEST_NAME: seed $SEED, $KILLS SIGKILLs of the scheduler mid-ingest, $acked tasks, $replays replayed messages deduplicated, one task and one submitted event per id, ${SECONDS}s"
echo "1 passed, 0 failed"
