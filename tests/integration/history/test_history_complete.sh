#!/usr/bin/env bash
# test_history_complete.sh: the history in PostgreSQL is complete. 2,000
# tasks of every kind (success, retry-then-success, dead, expired, canceled)
# plus rejected input go through Kafka, the scheduler and two workers; then
# PostgreSQL has exactly one row per task, in the right final state, and
# for EACH task exactly the expected sequence of events (seq 1..n, no gap,
# no duplicate); every rejected message has its row.
. "$(dirname "$0")/../lib.sh"
use_redis_db 2

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
SCHEDULER_HISTORY=true start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" \
  --dlq-topic "dlq.$UNIQ" --history-batch 500

python3 - "$queue" "$WORK/tasks" "$WORK/expected" <<'PY'
import json, sys
queue, tasks_path, expected_path = sys.argv[1:]
kinds = ["ok"] * 1400 + ["flaky"] * 100 + ["dead"] * 200 + ["expired"] * 150 + \
        ["cancel"] * 50 + ["reject"] * 100
expected = {}
with open(tasks_path, "w") as out:
    for n, kind in enumerate(kinds):
        tid = f"{kind}-{n:04d}"
        if kind == "ok":
            t = {"type": "noop"}
            seq = ["submitted:queued", "claimed:running", "succeeded:succeeded"]
        elif kind == "flaky":
            t = {"type": "flaky", "max_attempts": 3}
            seq = ["submitted:queued", "claimed:running", "failed:scheduled", "due:queued",
                   "claimed:running", "succeeded:succeeded"]
        elif kind == "dead":
            t = {"type": "fail", "max_attempts": 2, "payload": f"broken {n}"}
            seq = ["submitted:queued", "claimed:running", "failed:scheduled", "due:queued",
                   "claimed:running", "dead:dead"]
        elif kind == "expired":
            t = {"type": "noop", "deadline": "2020-01-01T00:00:00Z"}
            seq = ["submitted:expired"]
        elif kind == "cancel":
            t = {"type": "noop", "delay_ms": 600000}
            seq = ["submitted:scheduled", "canceled:canceled"]
        else:
            out.write('{"type": "noop", "priority": 42, "id": "%s"}\n' % tid)
            continue
        t.update({"id": tid, "queue": queue, "priority": n % 10})
        out.write(json.dumps(t) + "\n")
        expected[tid] = seq
json.dump(expected, open(expected_path, "w"))
PY
produce "$topic" -k "$queue" <"$WORK/tasks"

# Cancel the 50 delayed tasks with cancel.lua (as batonctl does).
scheduled_50() { [ "$(rcli zcard "baton:{$queue}:scheduled")" -eq 50 ]; }
wait_until 60 "50 delayed tasks scheduled" scheduled_50
script="$WORK/cancel.lua"
cat "$BATON_SOURCE_DIR/common/scripts/_lib.lua" "$BATON_SOURCE_DIR/common/scripts/cancel.lua" >"$script"
for id in $(rcli zrange "baton:{$queue}:scheduled" 0 -1); do
  out=$(rcli --eval "$script" "baton:{$queue}:ready" "baton:{$queue}:scheduled" \
    "baton:{$queue}:deadline" "baton:{$queue}:events" , "baton:{$queue}:t:" "$id" 600000)
  [ "$out" = canceled ] || fail "cancel $id: $out"
done

start_worker w1 --queues "$queue" --concurrency 8 --backoff-base-ms 20 --backoff-cap-ms 100 \
  --command 'flaky=[ "$BATON_TASK_ATTEMPT" -ge 2 ] || { echo "first attempt fails" >&2; exit 1; }'
start_worker w2 --queues "$queue" --concurrency 8 --backoff-base-ms 20 --backoff-cap-ms 100 \
  --command 'flaky=[ "$BATON_TASK_ATTEMPT" -ge 2 ] || { echo "first attempt fails" >&2; exit 1; }'

psql_q() { psql "$BATON_PG_DSN" -qAtc "$1"; }
finished() {
  [ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND finished_at IS NOT NULL")" -eq 1900 ] &&
    [ "$(psql_q "SELECT count(*) FROM baton.rejections WHERE kafka_topic = '$topic'")" -eq 100 ] &&
    [ "$(rcli xlen "baton:{$queue}:events")" -eq 0 ]
}
wait_until 180 "1,900 finished task rows and 100 rejections in PostgreSQL" finished

psql_q "SELECT task_id, seq, event, to_state FROM baton.task_events WHERE queue = '$queue' ORDER BY task_id, seq" \
  >"$WORK/events.pg"
psql_q "SELECT id, state, attempts FROM baton.tasks WHERE queue = '$queue'" >"$WORK/tasks.pg"
python3 - "$WORK/expected" "$WORK/events.pg" "$WORK/tasks.pg" <<'PY' || fail "history is not exact"
import collections, json, sys
expected = json.load(open(sys.argv[1]))
events = collections.defaultdict(list)
for line in open(sys.argv[2]):
    tid, seq, event, to = line.rstrip("\n").split("|")
    events[tid].append((int(seq), f"{event}:{to}"))
rows = {}
for line in open(sys.argv[3]):
    tid, state, attempts = line.rstrip("\n").split("|")
    assert tid not in rows, f"two rows for {tid}"
    rows[tid] = (state, int(attempts))
assert set(rows) == set(expected), f"rows: {len(rows)}, expected {len(expected)}; missing {sorted(set(expected) - set(rows))[:5]}"
bad = []
for tid, seq in expected.items():
    got = events[tid]
    if [s for s, _ in got] != list(range(1, len(got) + 1)) or [e for _, e in got] != seq:
        bad.append((tid, got, seq))
    final = seq[-1].split(":")[1]
    if rows[tid][0] != final:
        bad.append((tid, rows[tid], final))
assert not bad, f"{len(bad)} tasks wrong, first: {bad[0]}"
print(f"history exact: {len(rows)} task rows, {sum(len(v) for v in events.values())} events")
PY
reasons=$(psql_q "SELECT DISTINCT reason FROM baton.rejections WHERE kafka_topic = '$topic'")
[ "$reasons" = out_of_range ] || fail "rejection reasons: $reasons"
echo "1 passed, 0 failed"
