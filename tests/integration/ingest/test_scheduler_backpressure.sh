#!/usr/bin/env bash
# test_scheduler_backpressure.sh: guarantee 9, backpressure, never drops.
#  - the scheduler and the worker refuse to start (exit 1, one clear line)
#    against a Redis whose maxmemory-policy could evict keys;
#  - while Redis's used_memory is above --memory-pause-fraction of
#    maxmemory, ingest pauses: published tasks wait in Kafka, none is
#    enqueued, none dropped; once memory is available again they all are.
# It changes Redis's configuration, so it runs on a stack of its own.
. "$(dirname "$0")/../lib.sh"
use_own_stack

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"

rcli config set maxmemory-policy allkeys-lru >/dev/null
rc=0
out=$("$BATON_BIN_DIR/scheduler/baton-scheduler" --kafka-brokers "$BATON_KAFKA_BROKERS" \
  --redis-url "$BATON_REDIS_URL" --history=false --topic "$topic" 2>&1 >/dev/null) || rc=$?
[ "$rc" -eq 1 ] || fail "scheduler against an evicting Redis: exit $rc"
case "$out" in *"maxmemory-policy is 'allkeys-lru'"*) ;; *) fail "scheduler said: $out" ;; esac
rc=0
out=$("$BATON_BIN_DIR/worker/baton-worker" --redis-url "$BATON_REDIS_URL" 2>&1 >/dev/null) || rc=$?
[ "$rc" -eq 1 ] || fail "worker against an evicting Redis: exit $rc"
case "$out" in *"maxmemory-policy"*) ;; *) fail "worker said: $out" ;; esac
echo "both refuse an evicting Redis: $out"
rcli config set maxmemory-policy noeviction >/dev/null

# Squeeze maxmemory to just above what Redis uses now: with a pause
# fraction of 0.5 the scheduler must hold everything back.
used=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
rcli config set maxmemory $((used + used / 5)) >/dev/null
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ" \
  --memory-pause-fraction 0.5
for n in $(seq 1 200); do echo "{\"id\":\"m-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done |
  produce "$topic" -k "$queue"
paused() { grep -q 'ingest paused' "$WORK/sched.log"; }
wait_until 60 "ingest to pause on memory" paused
[ "$(task_count "$queue")" -eq 0 ] || fail "tasks were enqueued while Redis was over its mark"
kill -0 "$sched_pid" || fail "the scheduler died"

# Memory available again: everything comes in, exactly once.
rcli config set maxmemory 512mb >/dev/null
all_in() { [ "$(task_count "$queue")" -eq 200 ]; }
wait_until 60 "the 200 held tasks to be enqueued" all_in
[ "$(event_count "$queue")" -eq 200 ] || fail "not one submitted event per task"
echo "1 passed, 0 failed"
