#!/usr/bin/env bash
# test_scheduler_queues.sh: queue names producers cannot grow without bound.
#  1. --queues-allowed: tasks for a listed queue (by exact name, or by a
#     'prefix*' entry) are enqueued; a valid task for any other queue goes to
#     the DLQ with reason unknown_queue (headers, rejection event) and
#     creates no queue, and ingest goes on.
#  2. Idle queues: 40 queues whose tasks leave nothing to maintain (their
#     deadline had passed, so they expire on enqueue) become idle after
#     --maintenance-idle-ms (metric baton_maintenance_queues), and then, in a
#     3 s window of Redis MONITOR, maintenance sends almost no command that
#     names them (ticking them every 20 ms would send thousands).
#  3. An idle queue comes back: a delayed task on one is promoted and run
#     by a worker; a task claimed by a worker killed -9 on another idle
#     queue is reclaimed when its lease expires.
. "$(dirname "$0")/../lib.sh"

# A database of its own: the registry baton:queues then lists only this
# test's queues, so the metric counts them exactly.
use_redis_db 13

topic="t.$UNIQ"
dlq="dlq.$UNIQ"
ok="ok.$UNIQ"
idle="idle.$UNIQ"
nidle=40
create_topic "$topic"
create_topic "$dlq"
port=$(free_port)
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "$dlq" \
  --queues-allowed "$ok, $idle.*" --maintenance-idle-ms 500 --metrics-port "$port"
wait_until 20 "the scheduler's /healthz" curl -fsS "http://127.0.0.1:$port/healthz"

# queues_in STATE: the scheduler's baton_maintenance_queues{state=STATE}.
queues_in() {
  curl -fsS "http://127.0.0.1:$port/metrics" |
    sed -n "s/^baton_maintenance_queues{state=\"$1\"} \([0-9]*\).*/\1/p"
}

# --- 1. the allowlist (one partition: the last task comes after the rest)
{
  echo "{\"id\":\"a1\",\"type\":\"noop\",\"queue\":\"$ok\"}"
  echo "{\"id\":\"x1\",\"type\":\"noop\",\"queue\":\"other.$UNIQ\"}"
  echo "{\"id\":\"x2\",\"type\":\"noop\",\"queue\":\"$ok.more\"}"
  for i in $(seq 0 $((nidle - 1))); do
    echo "{\"id\":\"e$i\",\"type\":\"noop\",\"queue\":\"$idle.$i\",\"deadline\":\"2001-01-01T00:00:00Z\"}"
  done
  echo "{\"id\":\"a2\",\"type\":\"noop\",\"queue\":\"$ok\"}"
} | produce "$topic" -p 0

# state_is QUEUE ID STATE: the task is in STATE now.
state_is() { [ "$(task_field "$1" "$2" state)" = "$3" ]; }

wait_until 60 "the last allowed task" state_is "$ok" a2 queued
[ "$(task_count "$ok")" -eq 2 ] || fail "expected 2 tasks in $ok, got $(task_count "$ok")"
[ "$(task_count "other.$UNIQ")" -eq 0 ] || fail "a task for an unlisted queue was enqueued"
[ "$(task_count "$ok.more")" -eq 0 ] ||
  fail "an exact entry of --queues-allowed took a longer name"
rcli sismember baton:queues "other.$UNIQ" | grep -qx 0 || fail "the unlisted queue was registered"
for i in $(seq 0 $((nidle - 1))); do
  [ "$(task_field "$idle.$i" "e$i" state)" = expired ] || fail "task e$i of $idle.$i is not expired"
done

dlq_has_two() {
  kcat -C -b "$BATON_KAFKA_BROKERS" -t "$dlq" -o beginning -e -q -f '%h\t%s\n' \
    >"$WORK/dlq.out" 2>/dev/null
  [ "$(wc -l <"$WORK/dlq.out")" -ge 2 ]
}
wait_until 30 "2 messages in the DLQ" dlq_has_two
[ "$(wc -l <"$WORK/dlq.out")" -eq 2 ] || fail "expected 2 DLQ messages: $(cat "$WORK/dlq.out")"
for id in x1 x2; do
  grep "\"id\":\"$id\"" "$WORK/dlq.out" | grep -q 'baton-reason=unknown_queue,baton-field=queue,' ||
    fail "task $id is not in the DLQ as unknown_queue: $(cat "$WORK/dlq.out")"
done
reasons=$(rcli xrange baton:rejections - + | grep -c '^unknown_queue$' || true)
[ "$reasons" -eq 2 ] || fail "expected 2 unknown_queue rejection events, got $reasons"

# --- 2. idle queues are left alone
idle_and_active() { [ "$(queues_in idle)" = "$1" ] && [ "$(queues_in active)" = "$2" ]; }
wait_until 30 "$nidle idle queues and 1 active" idle_and_active "$nidle" 1
# Commands naming the idle queues in 3 s: one EXISTS per queue per second
# is expected; ticking would be 3 scripts per queue every 20 ms.
timeout 3 redis-cli -u "$BATON_REDIS_URL" monitor >"$WORK/monitor.out" 2>/dev/null || true
touching=$(grep -c "$idle\." "$WORK/monitor.out" || true)
okq=$(grep -c "{$ok}" "$WORK/monitor.out" || true)
echo "commands naming the $nidle idle queues in 3 s: $touching (the active queue: $okq)"
[ "$okq" -gt 0 ] || fail "MONITOR saw no command for the active queue: the window proves nothing"
[ "$touching" -le $((nidle * 3 * 2)) ] ||
  fail "maintenance still works on idle queues: $touching commands in 3 s"

# --- 3. idle queues come back when a task arrives
echo "{\"id\":\"late\",\"type\":\"noop\",\"queue\":\"$idle.0\",\"delay_ms\":300}" |
  produce "$topic" -p 0
wait_until 30 "the delayed task on an idle queue to be promoted" state_is "$idle.0" late queued
start_worker w1 --queues "$idle.0"
wait_until 30 "the promoted task to run" state_is "$idle.0" late succeeded

echo "{\"id\":\"orphan\",\"type\":\"sleep\",\"queue\":\"$idle.1\",\"payload\":60000,\"max_attempts\":2}" |
  produce "$topic" -p 0
start_worker w2 --queues "$idle.1" --lease-ms 1000
wait_until 30 "the task on $idle.1 to run" state_is "$idle.1" orphan running
stop_pid "$w2_pid" KILL
wait_until 30 "the orphaned task to be reclaimed" state_is "$idle.1" orphan queued
[ "$(task_field "$idle.1" orphan error)" = "lease expired" ] || fail "the task was not reclaimed"
kill -0 "$sched_pid" || fail "the scheduler died"
echo "1 passed, 0 failed"
