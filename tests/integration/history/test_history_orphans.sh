#!/usr/bin/env bash
# test_history_orphans.sh: the history writer takes over events its
# consumer group lost (scheduler/history.c, take_over; orphans.lua): entries
# at or behind the group's last delivered id that are in no pending list,
# which XREADGROUP never returns again.
#
# The workload runs with no history writer, so every event waits in the
# queue's stream. Then two kinds of loss are made by hand:
#   - 20 entries read and acknowledged but not deleted, as a writer killed
#     between a separate XACK and XDEL left them (the writer now sends the
#     two in one MULTI/EXEC);
#   - 30 entries skipped by moving the group's position past them
#     (XGROUP SETID), as an operator or a restore might.
# A writer started then must write every event to PostgreSQL and drain the
# stream; without the take-over, 50 entries would stay in the stream for
# good and their tasks' history would stop short.
. "$(dirname "$0")/../lib.sh"
use_redis_db 10

topic="t.$UNIQ"
queue="q.$UNIQ"
stream="baton:{$queue}:events"
group=baton-history
tasks=100
events=$((tasks * 3)) # submitted, claimed, succeeded
create_topic "$topic"
for n in $(seq 1 "$tasks"); do echo "{\"id\":\"o-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done |
  produce "$topic" -k "$queue"

start_scheduler s --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
# Concurrency 1: each claim and each completion is a call of its own, so
# the stream has well over the 50 entries (one per call) made lost below.
start_worker w --queues "$queue" --concurrency 1
all_done() {
  [ "$(count_state "$queue" succeeded)" -eq "$tasks" ] && [ "$(event_count "$queue")" -eq "$events" ]
}
wait_until 60 "all $tasks tasks succeeded and $events events in the stream" all_done

# Lost by acknowledgement: the first 20 entries, read by a writer that then
# acknowledged them and died before deleting them.
rcli xgroup create "$stream" "$group" 0 >/dev/null || fail "could not create the group"
mapfile -t read_ids < <(rcli -2 --json xreadgroup group "$group" dead-writer count 20 streams "$stream" '>' |
  python3 -c 'import json, sys; [print(e[0]) for s in json.load(sys.stdin) for e in s[1]]')
[ "${#read_ids[@]}" -eq 20 ] || fail "read ${#read_ids[@]} entries, expected 20"
[ "$(rcli xack "$stream" "$group" "${read_ids[@]}")" -eq 20 ] || fail "could not acknowledge the 20"
# Lost by position: the group jumps past the next 30, never delivered.
skip_to=$(rcli --json xrange "$stream" - + count 50 | python3 -c 'import json, sys; print(json.load(sys.stdin)[-1][0])')
rcli xgroup setid "$stream" "$group" "$skip_to" >/dev/null || fail "could not move the group"
[ "$(rcli xpending "$stream" "$group" | sed -n 1p)" -eq 0 ] || fail "entries are pending before the writer starts"
echo "made 50 entries lost to the group: 20 acknowledged and not deleted, 30 skipped (up to $skip_to)"

port=$(free_port)
SCHEDULER_HISTORY=true start_scheduler h --ingest=false --maintenance=false \
  --metrics-port "$port" --metrics-bind 127.0.0.1
drained() {
  [ "$(rcli xlen "$stream")" -eq 0 ] &&
    [ "$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM baton.task_events WHERE queue = '$queue'")" -eq "$events" ]
}
wait_until 60 "the stream to drain and all $events events to be in PostgreSQL" drained
grep -q '50 entries of .* were in no pending list' "$WORK/h.log" ||
  fail "the writer did not report the 50 lost entries: $(grep -m 3 'pending list' "$WORK/h.log")"
lost_metric=$(curl -fsS "http://127.0.0.1:$port/metrics" | grep '^baton_history_takeovers_total{reason="lost"}')
[ "$lost_metric" = 'baton_history_takeovers_total{reason="lost"} 50' ] ||
  fail "the metric of lost entries taken over reads '$lost_metric', expected 50"

# Every task complete in history: events 1, 2, 3 and its row succeeded.
odd=$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM (SELECT task_id FROM baton.task_events WHERE queue = '$queue' GROUP BY task_id HAVING array_agg(seq ORDER BY seq) <> ARRAY[1,2,3]::bigint[]) x")
[ "$odd" -eq 0 ] || fail "$odd tasks without exactly events 1, 2, 3"
succeeded=$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'succeeded'")
[ "$succeeded" -eq "$tasks" ] || fail "$succeeded of $tasks task rows succeeded"
pending=$(rcli xpending "$stream" "$group" | sed -n 1p)
[ "$pending" -eq 0 ] || fail "$pending events still pending"
echo "1 passed, 0 failed"
