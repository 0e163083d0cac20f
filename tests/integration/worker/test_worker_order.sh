#!/usr/bin/env bash
# test_worker_order.sh: one worker with concurrency 1 runs a backlog of
# mixed priorities in exactly priority-then-FIFO order (guarantee 6),
# checked from the recorded claim order in the events stream.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"

python3 - "$queue" >"$WORK/tasks" <<'PY'
import json, random, sys
random.seed(11)
for n in range(120):
    print(json.dumps({"id": f"w-{n:03d}", "type": "noop", "queue": sys.argv[1],
                      "priority": random.choice([0, 3, 5, 5, 9])}))
PY
produce "$topic" -k "$queue" <"$WORK/tasks"
backlog_ready() { [ "$(rcli zcard "baton:{$queue}:ready")" -eq 120 ]; }
wait_until 60 "the backlog of 120 tasks" backlog_ready

start_worker w --queues "$queue" --concurrency 1
all_done() { [ "$(count_state "$queue" succeeded)" -eq 120 ]; }
wait_until 60 "all 120 tasks to succeed" all_done

events "$queue" >"$WORK/events"
python3 - "$WORK/tasks" "$WORK/events" <<'PY' || fail "tasks did not start in priority-then-FIFO order"
import json, sys
tasks = [json.loads(l) for l in open(sys.argv[1])]
claimed = [e["id"] for e in map(json.loads, open(sys.argv[2])) if e["event"] == "claimed"]
expected = [t["id"] for t in sorted(tasks, key=lambda t: -t["priority"])]
assert claimed == expected, f"first difference at {next(i for i, (a, b) in enumerate(zip(claimed, expected)) if a != b)}"
print(f"start order ok: {len(claimed)} tasks, priority then FIFO")
PY
echo "1 passed, 0 failed"
