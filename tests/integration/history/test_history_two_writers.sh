#!/usr/bin/env bash
# test_history_two_writers.sh: several history writers share the streams
# (one consumer group) and every task row still comes out exact. Regression
# test: two writers committing events of the same task at the same moment
# each recomputed the row from the events they could see, and the later
# UPDATE could leave a stale row ("running" after "succeeded"). Batches now
# take turns (a transaction-level advisory lock).
. "$(dirname "$0")/../lib.sh"
use_redis_db 7

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
for s in a b c; do
  SCHEDULER_HISTORY=true start_scheduler "$s" --topic "$topic" --group-id "g.$UNIQ" \
    --dlq-topic "dlq.$UNIQ" --history-batch 20
done
start_worker w --queues "$queue" --concurrency 16
for n in $(seq 1 3000); do echo "{\"id\":\"x-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done |
  produce "$topic" -k "$queue"

psql_q() { psql "$BATON_PG_DSN" -qAtc "$1"; }
written() {
  [ "$(psql_q "SELECT count(*) FROM baton.task_events WHERE queue = '$queue'")" -eq 9000 ] &&
    [ "$(rcli xlen "baton:{$queue}:events")" -eq 0 ]
}
wait_until 120 "9,000 events written" written
# Let the last transactions finish their row updates.
bad() {
  psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND NOT (state = 'succeeded'
          AND last_seq = 3 AND attempts = 1 AND first_started_at IS NOT NULL
          AND finished_at IS NOT NULL AND queued_at IS NOT NULL)"
}
consistent() { [ "$(bad)" -eq 0 ]; }
wait_until 30 "every row to be exact" consistent
[ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue'")" -eq 3000 ] || fail "not 3000 rows"
writers=$(grep -l 'history' "$WORK"/a.log "$WORK"/b.log "$WORK"/c.log | wc -l)
# Writers acknowledging while another looks for lost entries (orphans.lua)
# must not make their entries look lost.
if grep -h 'were in no pending list' "$WORK"/a.log "$WORK"/b.log "$WORK"/c.log; then
  fail "a writer took entries in flight with another writer for lost ones"
fi
echo "3000 rows exact with 3 writers ($writers logs)"
echo "1 passed, 0 failed"
