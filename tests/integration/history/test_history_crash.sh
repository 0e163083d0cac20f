#!/usr/bin/env bash
# test_history_crash.sh: the history writer is idempotent. A writer killed
# (SIGKILL, by the BATON_TEST_HISTORY_CRASH_AFTER_COMMIT failure point of
# the test build, tests/integration/history/scheduler_test_hooks.c) after its
# COMMIT and before its XACK leaves its batch pending in Redis;
# another writer takes the batch over after --history-claim-idle-ms and
# writes it again: no duplicate rows, nothing missing, nothing left pending.
. "$(dirname "$0")/../lib.sh"
use_redis_db 3

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
for n in $(seq 1 300); do echo "{\"id\":\"c-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done |
  produce "$topic" -k "$queue"

# Writer A: ingest + history, dies right after its first commit.
BATON_TEST_HISTORY_CRASH_AFTER_COMMIT=1 SCHEDULER_BIN=testhooks SCHEDULER_HISTORY=true start_scheduler a \
  --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ" --maintenance=false
a_died() { ! kill -0 "$a_pid" 2>/dev/null; }
wait_until 60 "writer A to crash after its commit" a_died
grep -q 'test hook: crashing after commit' "$WORK/a.log" || fail "A did not die at the failure point"
committed=$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM baton.task_events WHERE queue = '$queue'")
pending=$(rcli xpending "baton:{$queue}:events" baton-history | sed -n 1p)
[ "$committed" -gt 0 ] || fail "A committed nothing"
[ "$pending" -gt 0 ] || fail "A's batch is not pending in Redis"
echo "A committed $committed events and died with $pending pending"

# Writer B (and a worker so that more events come): takes A's batch over.
SCHEDULER_HISTORY=true start_scheduler b --topic "$topic" --group-id "g.$UNIQ" \
  --dlq-topic "dlq.$UNIQ" --history-claim-idle-ms 500
start_worker w --queues "$queue" --concurrency 4
all_written() {
  [ "$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'succeeded'")" -eq 300 ] &&
    [ "$(rcli xlen "baton:{$queue}:events")" -eq 0 ]
}
wait_until 60 "all 300 tasks succeeded in PostgreSQL and the stream drained" all_written
grep -q 'took over' "$WORK/b.log" || fail "B never took over A's pending batch"

# Exactly 3 events per task (submitted, claimed, succeeded), seq 1..3.
dupes=$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM (SELECT task_id FROM baton.task_events WHERE queue = '$queue' GROUP BY task_id HAVING count(*) <> 3 OR array_agg(seq ORDER BY seq) <> ARRAY[1,2,3]::bigint[]) x")
[ "$dupes" -eq 0 ] || fail "$dupes tasks without exactly events 1,2,3"
rows=$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM baton.tasks WHERE queue = '$queue'")
[ "$rows" -eq 300 ] || fail "$rows task rows, expected 300"
left=$(rcli xpending "baton:{$queue}:events" baton-history | sed -n 1p)
[ "$left" -eq 0 ] || fail "$left events still pending"
# The failure point exists in the test build only: the product binary has
# no code that reads the variable, so no environment can trigger it.
if grep -q BATON_TEST_HISTORY_CRASH_AFTER_COMMIT "$BATON_BIN_DIR/scheduler/baton-scheduler"; then
  fail "baton-scheduler reads BATON_TEST_HISTORY_CRASH_AFTER_COMMIT"
fi
echo "1 passed, 0 failed"
