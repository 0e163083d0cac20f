#!/usr/bin/env bash
# scenario_kafka_broker.sh: a Kafka broker taken down under load for longer
# than the consumer's session timeout, then brought back; nothing is lost,
# and the scheduler recovers by itself (docs/guarantees.md guarantees 1 and 2).
#
# Which broker: the one that matters most. The checker keys every task by
# its queue, so the whole workload goes to one partition of baton.tasks
# (crc32(queue) % 16, librdkafka's default partitioner); the scenario makes
# broker BROKER the leader of that partition AND the coordinator of the
# scheduler's consumer group (the embedded Kafka's control channel, `stack.sh
# kafka leader|coordinator`), since the mock's own choice of both is random.
# While it is down:
#  - the producer cannot deliver: tasks published meanwhile wait in its
#    queue (its delivery timeout, 60 s, outlasts the outage) and must all be
#    acknowledged once the broker is back;
#  - the scheduler can neither fetch that partition nor heartbeat or commit
#    offsets; after session.timeout.ms (6 s, lib.sh) it considers itself out
#    of the group and drops its assignment. It is never restarted: once the
#    broker is back it must rejoin, resume from the committed offsets (what
#    was enqueued but not committed is replayed, and enqueue dedupes it) and
#    ingest everything published during the outage.
# One worker runs the tasks throughout (workers only talk to Redis).
#
# Checks: the producer's exit status and COUNT acknowledged ids; ingest
# stopped during the outage (the fault hit the workload) and resumed after
# it; the same scheduler process alive at the end; the checker finds every
# task succeeded, history complete, no stale write, a clean Redis; one task
# task per id. Figures: the outage, the ingest stall (the longest gap between
# two consecutive `submitted` events in history) and how long after the
# broker's return ingest resumed.

# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

TASKS=${CHAOS_TASKS:-3000}
RATE=150     # tasks/s: the workload takes 20 s to publish
DOWN_S=${CHAOS_DOWN_S:-8} # seconds the broker stays down: > session.timeout.ms (6 s)
BROKER=2
TOPIC=baton.tasks
PARTITIONS=16

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# kctl COMMAND...: a control command for the stack's embedded Kafka.
kctl() { "$STACK_SH" kafka "$@" --env-file "$OWN_STACK_ENV"; }
enqueued_over() { [ "$(enqueued)" -ge "$1" ]; }
leader_of() {
  kcat -L -b "$BATON_KAFKA_BROKERS" -t "$TOPIC" 2>/dev/null |
    sed -n "s/^ *partition $1, leader \([0-9-]*\),.*/\1/p"
}

chaos_up
partition=$(python3 -c 'import sys, zlib; print(zlib.crc32(sys.argv[1].encode()) % int(sys.argv[2]))' \
  "$QUEUE" "$PARTITIONS")
kctl leader "$TOPIC" "$partition" "$BROKER" >/dev/null || fail "could not move $TOPIC [$partition] to broker $BROKER"
kctl coordinator group "g.$UNIQ" "$BROKER" >/dev/null || fail "could not pin the group's coordinator"
wait_until 10 "$TOPIC [$partition] to be led by broker $BROKER" test "$(leader_of "$partition")" = "$BROKER"
led=$(kcat -L -b "$BATON_KAFKA_BROKERS" -t "$TOPIC" 2>/dev/null | grep -c "leader $BROKER,")
echo "broker $BROKER leads $led of $PARTITIONS partitions of $TOPIC, among them [$partition] (the queue's), and coordinates group g.$UNIQ"

chaos_scheduler sched
chaos_worker w1 --concurrency 8

chaos_produce "$TASKS" --rate "$RATE" --id-prefix kb >"$WORK/produce.out" 2>&1 &
produce_pid=$!
TEST_PIDS+=("$produce_pid")

# The outage starts once ingest is well under way.
wait_until 60 "ingest to start" enqueued_over $((TASKS / 5))
kctl broker down "$BROKER" >/dev/null || fail "could not take broker $BROKER down"
down_ms=$(now_ms)
at_down=$(enqueued)
sleep 1 # let what was fetched before the outage land
at_down_1s=$(enqueued)
sleep $((DOWN_S - 1)) # the outage itself, not a wait for a condition
at_up=$(enqueued)
alive "$sched_pid" || fail "the scheduler died while broker $BROKER was down"
alive "$w1_pid" || fail "the worker died while broker $BROKER was down"
kctl broker up "$BROKER" >/dev/null || fail "could not bring broker $BROKER up"
up_ms=$(now_ms)
[ "$at_up" -eq "$at_down_1s" ] ||
  fail "ingest went on while the partition's leader was down ($at_down_1s -> $at_up tasks): the fault missed the workload"
echo "broker $BROKER down for $((up_ms - down_ms)) ms; $at_down tasks enqueued at the start, $at_up at the end"

wait_until 60 "ingest to resume after the outage" enqueued_over $((at_up + 1))
rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the workload (exit $rc): $(tail -n 5 "$WORK/produce.out")"
acked=$(wc -l <"$ACKED")
[ "$acked" -eq "$TASKS" ] || fail "$acked of $TASKS tasks acknowledged"

chaos_verify --expect succeeded --wait-s 200

# Recovered by itself: the scheduler started before the outage still runs.
alive "$sched_pid" || fail "the scheduler died"
alive "$w1_pid" || fail "the worker died"
chaos_one_task_per_id
# The Kafka coordinates are in the history row (the task hash does not keep them).
landed=$(psql "$BATON_PG_DSN" -qAtc "SELECT kafka_partition FROM baton.tasks WHERE queue = '$QUEUE' AND id = 'kb-1'")
[ "$landed" = "$partition" ] || fail "the tasks landed on partition $landed, not [$partition] which broker $BROKER led"

# Ingest stall: the longest gap between consecutive submitted events (Redis
# TIME, the same clock as ours), and when ingest resumed after the broker
# came back.
psql "$BATON_PG_DSN" -Atc "SELECT (extract(epoch FROM at) * 1000)::bigint FROM baton.task_events
  WHERE queue = '$QUEUE' AND event = 'submitted' ORDER BY at" >"$WORK/submitted_ms" ||
  fail "could not read the submitted events"
read -r stall_ms resumed_ms < <(python3 - "$WORK/submitted_ms" "$up_ms" <<'PY'
import sys
times = [int(l) for l in open(sys.argv[1]) if l.strip()]
up = int(sys.argv[2])
gap = max(b - a for a, b in zip(times, times[1:]))
after = [t for t in times if t >= up]
print(gap, after[0] - up if after else -1)
PY
)
[ "$resumed_ms" -ge 0 ] || fail "no task was enqueued after broker $BROKER came back"
# Rejoining takes the mock's group join delay (3 s) plus at most one
# reconnect backoff (common/kafka.c caps it at 1 s, tests/unit/test_kafka.c
# checks the setting); with librdkafka's own 10 s cap ingest resumed 8-10 s
# after the broker's return. Reported, not asserted: a timing.
rebalances=$(grep -c '"assigned [0-9]* partitions' "$WORK/sched.log" || true)
duplicates=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duplicate_executions"])' "$REPORT")
echo "CHAOS FAULTS $TEST_NAME: broker $BROKER (leader of the queue's partition and group coordinator)" \
  "down $((up_ms - down_ms)) ms, $acked tasks all acknowledged, ingest stalled ${stall_ms} ms," \
  "resumed ${resumed_ms} ms after the broker came back, $rebalances assignments, same scheduler," \
  "$duplicates duplicate executions, ${SECONDS}s"
echo "1 passed, 0 failed"
