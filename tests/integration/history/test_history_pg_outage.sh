#!/usr/bin/env bash
# test_history_pg_outage.sh: PostgreSQL stops for 10 s under load.
# Execution goes on (tasks keep succeeding in Redis), events wait in Redis
# (the backlog grows), and when PostgreSQL is back the writer catches up:
# every event arrives, in order per task, and the backlog returns to 0.
. "$(dirname "$0")/../lib.sh"
use_own_stack
"$BATON_BIN_DIR/ctl/batonctl" --pg-dsn "$BATON_PG_DSN" migrate >/dev/null || fail "migrate failed"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
SCHEDULER_HISTORY=true start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker w --queues "$queue" --concurrency 4

publish() { # from to
  for n in $(seq "$1" "$2"); do echo "{\"id\":\"p-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done |
    produce "$topic" -k "$queue"
}
psql_q() { psql "$BATON_PG_DSN" -qAtc "$1"; }
backlog() { event_count "$queue"; }

publish 1 200
first_in() { [ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'succeeded'")" -eq 200 ]; }
wait_until 60 "the first 200 tasks in history" first_in

"$STACK_SH" stop postgres --env-file "$OWN_STACK_ENV" >/dev/null || fail "could not stop PostgreSQL"
stopped_at=$SECONDS
publish 201 600
# Execution continues without PostgreSQL: all 600 succeed in Redis.
all_ran() { [ "$(count_state "$queue" succeeded)" -eq 600 ]; }
wait_until 60 "600 tasks to run while PostgreSQL is down" all_ran
during=$(backlog)
[ "$during" -ge 1200 ] || fail "backlog during the outage is $during, expected >= 1200 events"
echo "backlog during the outage: $during events"
# Keep PostgreSQL down for 10 s in all.
outage_over() { [ $((SECONDS - stopped_at)) -ge 10 ]; }
wait_until 20 "10 s of outage" outage_over
kill -0 "$sched_pid" || fail "the scheduler died during the outage"
"$STACK_SH" start postgres --env-file "$OWN_STACK_ENV" >/dev/null || fail "could not start PostgreSQL"

caught_up() {
  [ "$(backlog)" -eq 0 ] &&
    [ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'succeeded'")" -eq 600 ]
}
wait_until 60 "the writer to catch up" caught_up
bad=$(psql_q "SELECT count(*) FROM (SELECT task_id FROM baton.task_events WHERE queue = '$queue' GROUP BY task_id HAVING array_agg(event ORDER BY seq) <> ARRAY['submitted','claimed','succeeded'] OR array_agg(seq ORDER BY seq) <> ARRAY[1,2,3]::bigint[]) x")
[ "$bad" -eq 0 ] || fail "$bad tasks with a wrong event sequence"
grep -q 'events held, retrying' "$WORK/sched.log" || fail "the writer never reported holding events"
echo "1 passed, 0 failed"
