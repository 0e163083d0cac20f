#!/usr/bin/env bash
# test_cancel_running.sh: a cancel requested while a task runs is never
# lost. Regression test: when the attempt failed (here: timed out) before
# the worker's next lease renewal, fail.lua used to schedule a retry and the
# task ran again. Now the failed attempt ends the task "canceled".
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
# A long lease: renewals (which carry the cancel to the worker) come every
# 10 s, so the timeout at 1 s ends the attempt first.
start_worker w --queues "$queue" --concurrency 1 --lease-ms 30000 --backoff-base-ms 10

echo "{\"id\":\"c1\",\"type\":\"sleep\",\"queue\":\"$queue\",\"payload\":3000,\"timeout_ms\":1000,\"max_attempts\":3}" |
  produce "$topic" -k "$queue"
running() { [ "$(task_field "$queue" c1 state)" = running ]; }
wait_until 30 "the task to run" running
out=$("$BATON_BIN_DIR/ctl/batonctl" --redis-url "$BATON_REDIS_URL" cancel c1 --queue "$queue") ||
  fail "batonctl cancel failed: $out"
echo "batonctl: $out"
terminal() { case "$(task_field "$queue" c1 state)" in canceled | dead | succeeded) return 0 ;; *) return 1 ;; esac; }
wait_until 30 "the task to end" terminal
[ "$(task_field "$queue" c1 state)" = canceled ] || fail "state $(task_field "$queue" c1 state), expected canceled"
[ "$(task_field "$queue" c1 attempt)" -eq 1 ] || fail "the canceled task ran again"
events "$queue" | python3 -c '
import json, sys
ev = [e["event"] for e in map(json.loads, sys.stdin) if e["id"] == "c1"]
assert ev == ["submitted", "claimed", "cancel_requested", "canceled"], ev
print("events:", ev)' || fail "unexpected events"
echo "1 passed, 0 failed"
