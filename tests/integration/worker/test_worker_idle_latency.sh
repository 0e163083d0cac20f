#!/usr/bin/env bash
# test_worker_idle_latency.sh: an idle worker blocks on the queue's notify
# list (no polling) and starts a newly enqueued task within milliseconds.
# The figure is enqueue -> start by Redis time (the "submitted" event's
# `at` -> the hash's started_ms; the scheduler runs without history, so the
# events stay in the stream),
# printed for the record; the assertion is a generous sanity bound only.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker w --queues "$queue" --concurrency 1
registered() { [ "$(rcli exists "baton:worker:w.$UNIQ")" -eq 1 ]; }
wait_until 20 "the worker to register" registered

samples=()
for n in $(seq 1 10); do
  # Let the worker go idle (blocked in BLPOP) before each task.
  idle() { [ "$(rcli hget "baton:worker:w.$UNIQ" busy)" = 0 ]; }
  wait_until 10 "the worker to be idle" idle
  echo "{\"id\":\"lat-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}" | produce "$topic" -k "$queue"
  done_n() { [ "$(task_field "$queue" "lat-$n" state)" = succeeded ]; }
  # The first task also waits for the scheduler's first consumer-group
  # join, which a loaded machine can stretch well past its usual 3 s.
  wait_until "$([ "$n" -eq 1 ] && echo 60 || echo 20)" "task lat-$n to succeed" done_n
  s=$(events "$queue" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("id") == sys.argv[1] and e.get("event") == "submitted":
        print(e["at"])
' "lat-$n")
  [ -n "$s" ] || fail "no submitted event for lat-$n in the events stream"
  t=$(task_field "$queue" "lat-$n" started_ms)
  samples+=($((t - s)))
done
sorted=$(printf '%s\n' "${samples[@]}" | sort -n | tr '\n' ' ')
max=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
echo "idle enqueue->start latency (ms, 10 samples, Redis clock): $sorted"
[ "$max" -lt 1000 ] || fail "an idle worker took $max ms to start a task (bound 1000 ms)"
echo "1 passed, 0 failed"
