#!/usr/bin/env bash
# scenario_rebalance_storm.sh: a consumer group in a rebalance storm loses
# no task and makes none twice (docs/guarantees.md guarantees 1 and 2).
#
# Two schedulers, A and B, share one consumer group while the checker
# publishes tasks without pause (chunks of CHUNK at RATE/s). B is killed
# with SIGKILL at a random instant 0-2 s after each incarnation got its
# partitions, and a new B is started at once, KILLS times: each time the
# group rebalances twice (the dead member's session runs out and A takes
# everything, then the new B joins and A hands half back), and whichever
# member held the workload's partition replays from the last committed
# offset. A keeps running the whole time. At the end a last B joins and the
# group settles; then:
#  - A never exited;
#  - the checker finds every acknowledged task succeeded (I1), every
#    execution claimed in history, no stale write, a clean Redis;
#  - exactly one task per id: one task hash per acknowledged id and nothing
#    else, one `submitted` event per task in history.
#
# The checker keys every task by its queue, so the workload lives in one
# partition; which member owns it depends on the queue's name (random per
# run) and on each assignment: the figures name the partition's owner at
# every kill.
#
# Replay: CHAOS_SEED=<seed printed below> seeds the kill instants.

# shellcheck disable=SC2154 # a_pid: set by start_scheduler
# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

KILLS=${CHAOS_KILLS:-5}
CHUNK=200
RATE=80
# A killed member keeps its partitions until its session times out: a
# shorter session than lib.sh's 6 s keeps each round of the storm short.
KAFKA_CONFIG="$TEST_KAFKA_CONFIG,session.timeout.ms=3000"
SEED=${CHAOS_SEED:-$RANDOM}
RANDOM=$SEED
echo "seed $SEED: scheduler B killed $KILLS times while A keeps ingesting, tasks at $RATE/s"

# latest NAME: the partitions of scheduler NAME's latest assignment
# ("[0],[3],..."; empty before the first or after a revoke).
latest() {
  grep -oE '"(assigned|revoked) [0-9]+ partitions[^"]*' "$WORK/$1.log" | tail -1 |
    sed -n 's/^"assigned [0-9]* partitions: //p' | grep -oE '\[[0-9]+\]' | tr '\n' ',' || true
}
has_partitions() { [ -n "$(latest "$1")" ]; }
# replayed PORT: messages the scheduler on PORT found already enqueued
# (enqueue.lua's duplicates: replays after a rebalance or a kill).
replayed() {
  curl -sf "http://127.0.0.1:$1/metrics" |
    awk '/^baton_ingest_enqueued_total\{.*result="duplicate"/ { n += $NF } END { print n + 0 }'
}
# owner: which live member holds the workload's partition (from the
# assignments logged), or "none" while it is unassigned.
owner() {
  local name
  for name in a "$b_name"; do
    case ",$(latest "$name")" in *",[$partition],"*) echo "$name"; return ;; esac
  done
  echo "neither live member"
}

chaos_up
chaos_worker w1 --concurrency 8 --lease-ms 5000
chaos_worker w2 --concurrency 8 --lease-ms 5000
a_port=$(free_port)
chaos_scheduler a --kafka-config "$KAFKA_CONFIG" --metrics-port "$a_port" --metrics-bind 127.0.0.1

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

first_in() { [ "$(rcli exists "baton:{$QUEUE}:t:c1-1")" = 1 ]; }
wait_until 60 "A to ingest the first task" first_in
# The workload's partition, from the first task's submitted event (in the
# events stream until the history writer has it, then in its history row).
first_partition() {
  partition=$(events "$QUEUE" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("id") == "c1-1" and e.get("event") == "submitted":
        print(e["kpartition"])
        break')
  [ -n "$partition" ] ||
    partition=$(psql "$BATON_PG_DSN" -qAtc "SELECT kafka_partition FROM baton.tasks WHERE queue = '$QUEUE' AND id = 'c1-1'" 2>/dev/null)
  [ -n "$partition" ]
}
wait_until 30 "the first task's partition (its submitted event)" first_partition
echo "the workload is in partition $partition"

b_name=
replays=0
for ((k = 1; k <= KILLS; k++)); do
  b_name="b$k"
  port=$(free_port)
  chaos_scheduler "$b_name" --kafka-config "$KAFKA_CONFIG" --metrics-port "$port" --metrics-bind 127.0.0.1
  b_pid_var="${b_name}_pid"
  b_pid=${!b_pid_var}
  wait_until 60 "$b_name to join the group and get partitions" has_partitions "$b_name"
  delay=$((RANDOM % 2001))
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  exited "$b_pid" && fail "$b_name exited by itself"
  exited "$a_pid" && fail "A exited during the storm"
  held_by=$(owner)
  dups=$(replayed "$port")
  at=$(enqueued)
  { kill -KILL "$b_pid" && wait "$b_pid"; } 2>/dev/null || true
  replays=$((replays + dups))
  echo "kill $k: $b_name ${delay} ms after its assignment $(latest "$b_name"); partition $partition held by $held_by; $at enqueued; $b_name replayed $dups"
done
b_name=final
port=$(free_port)
chaos_scheduler final --kafka-config "$KAFKA_CONFIG" --metrics-port "$port" --metrics-bind 127.0.0.1
b_pid=$final_pid
# settled: both members hold partitions, disjoint, all 16 between them.
settled() {
  local a b
  a=$(latest a) && b=$(latest final) && [ -n "$a" ] && [ -n "$b" ] || return 1
  python3 - "$a" "$b" <<'PY'
import re, sys
a = set(re.findall(r"\[(\d+)\]", sys.argv[1]))
b = set(re.findall(r"\[(\d+)\]", sys.argv[2]))
sys.exit(0 if a and b and not (a & b) and len(a | b) == 16 else 1)
PY
}
wait_until 60 "the group to settle with A and the last B" settled
before=$(enqueued)
wait_until 60 "ingest to go on after the storm" grew_past "$before"
touch "$WORK/stop-producing"
wait_until 60 "the producer to finish its chunk" exited "$produce_pid"
rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the workload: $(tail -n 5 "$WORK/produce.out")"
exited "$a_pid" && fail "A exited"
a_dups=$(replayed "$a_port")
replays=$((replays + a_dups + $(replayed "$port")))
acked=$(wc -l <"$ACKED")
rebalances=$(grep -cE '"(assigned|revoked) [0-9]+ partitions' "$WORK/a.log" || true)
echo "published $acked tasks; A went through $rebalances assignments and revocations and replayed $a_dups; $replays replayed messages in all, found already enqueued"

chaos_verify --expect succeeded --wait-s 200

chaos_one_task_per_id

echo "CHAOS FAULTS $TEST_NAME: seed $SEED, $KILLS SIGKILLs of scheduler B ($rebalances assignments/revocations on A), $acked tasks, $replays replayed messages deduplicated, one task and one submitted event per id, ${SECONDS}s"
echo "1 passed, 0 failed"
