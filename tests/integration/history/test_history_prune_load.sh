#!/usr/bin/env bash
# test_history_prune_load.sh: `batonctl prune` under load never stops the
# history writer. Old partitions (40 days ago) hold history; a report
# holds a transaction open on baton.task_events (it read the table, as a
# long analytical query does). prune then has to wait for that report
# before it can detach the old events partition: a plain DETACH or DROP
# would queue an ACCESS EXCLUSIVE lock on baton.task_events, behind which
# every insert of the writer waits. While prune waits, tasks keep flowing
# and the writer keeps committing: a whole wave of tasks reaches
# PostgreSQL with prune still waiting. When the report ends, prune
# finishes and the old partitions are gone. Progress is asserted, never a
# duration.
. "$(dirname "$0")/../lib.sh"
use_redis_db 11

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
psql_q() { psql "$BATON_PG_DSN" -v ON_ERROR_STOP=1 -qAtc "$1"; }

# Old history, in partitions of its own.
psql_q "SELECT baton.create_history_partitions(now() - interval '40 days');
  INSERT INTO baton.tasks (queue, id, type, priority, state, attempts, max_attempts, timeout_ms,
    submitted_at, updated_at)
  SELECT '$queue', 'old-' || i, 'noop', 5, 'succeeded', 1, 3, 1000, now() - interval '40 days',
    now() - interval '40 days' FROM generate_series(1, 100) i;
  INSERT INTO baton.task_events (queue, task_id, seq, at, event, to_state)
  SELECT '$queue', 'old-' || i, 1, now() - interval '40 days', 'submitted', 'queued'
  FROM generate_series(1, 100) i" >/dev/null
old_parts() { psql_q "SELECT count(*) FROM baton.history_partitions() WHERE upper_bound <= now() - interval '30 days'"; }
[ "$(old_parts)" -ge 3 ] || fail "no old partitions to prune"

SCHEDULER_HISTORY=true start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" \
  --dlq-topic "dlq.$UNIQ" --history-batch 50
start_worker w --queues "$queue" --concurrency 8
in_history() { [ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND id LIKE '$1-%' AND state = 'succeeded'")" -eq "$2" ]; }
wave() { for n in $(seq 1 "$2"); do echo "{\"id\":\"$1-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done | produce "$topic" -k "$queue"; }
wave first 200
wait_until 60 "the first wave in PostgreSQL" in_history first 200

# The report: a transaction that read baton.task_events, left open.
mkfifo "$WORK/report.in"
psql "$BATON_PG_DSN" -v ON_ERROR_STOP=1 -qAt <"$WORK/report.in" >"$WORK/report.out" 2>&1 &
report_pid=$!
TEST_PIDS+=("$report_pid")
exec 7>"$WORK/report.in"
echo "BEGIN; SELECT 'report', count(*) FROM baton.task_events; SELECT 'report read';" >&7
report_read() { grep -q 'report read' "$WORK/report.out"; }
wait_until 30 "the report to have read baton.task_events" report_read

"$BATON_BIN_DIR/ctl/batonctl" --json prune --older-than 30d >"$WORK/prune.out" 2>"$WORK/prune.err" &
prune_pid=$!
TEST_PIDS+=("$prune_pid")
# prune is waiting for the report to end, in a DETACH ... CONCURRENTLY.
prune_waits() {
  kill -0 "$prune_pid" 2>/dev/null &&
    [ "$(psql_q "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE baton.%task_events% DETACH PARTITION %CONCURRENTLY' AND wait_event_type = 'Lock'")" -ge 1 ]
}
wait_until 60 "prune to wait for the report" prune_waits

# Meanwhile the writer keeps writing: a second wave lands in full.
wave second 300
wait_until 120 "the second wave in PostgreSQL while prune waits" in_history second 300
prune_waits || fail "prune stopped waiting before the report ended: $(cat "$WORK/prune.err")"
committed=$(psql_q "SELECT count(*) FROM baton.task_events WHERE queue = '$queue' AND task_id LIKE 'second-%'")
[ "$committed" -eq 900 ] || fail "$committed events of the second wave, expected 900"

# The report ends; prune finishes.
echo "COMMIT;" >&7
exec 7>&-
prune_done() { ! kill -0 "$prune_pid" 2>/dev/null; }
wait_until 60 "prune to finish" prune_done
rc=0
wait "$prune_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "prune exited $rc: $(cat "$WORK/prune.err")"
python3 - "$WORK/prune.out" <<'PY' || fail "prune output: $(cat "$WORK/prune.out")"
import json, sys
d = json.load(open(sys.argv[1]))
tables = {p["table"] for p in d["partitions"] if not p.get("leftover")}
assert {"tasks", "task_events", "history_entries"} <= tables, d
PY
[ "$(old_parts)" -eq 0 ] || fail "old partitions left after prune"
[ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND id LIKE 'old-%'")" -eq 0 ] ||
  fail "old rows left"

# The writer goes on after the prune.
wave third 100
wait_until 60 "the third wave in PostgreSQL" in_history third 100
[ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue'")" -eq 600 ] || fail "not 600 task rows"
echo "1 passed, 0 failed"
