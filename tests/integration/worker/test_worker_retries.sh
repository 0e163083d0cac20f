#!/usr/bin/env bash
# test_worker_retries.sh: a `fail` task with max_attempts 3 runs 3 times,
# each retry scheduled with full-jitter exponential backoff (the delay of
# retry k lies in [0, base * 2^(k-1)], by Redis time), then is dead with the
# handler's error; a permanent failure (sleep with a bad payload) is dead
# after one attempt.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker w --queues "$queue" --concurrency 2 --backoff-base-ms 200 --backoff-cap-ms 5000

{
  echo "{\"id\":\"flaky\",\"type\":\"fail\",\"queue\":\"$queue\",\"max_attempts\":3,\"payload\":\"disk on fire\"}"
  echo "{\"id\":\"bad\",\"type\":\"sleep\",\"queue\":\"$queue\",\"max_attempts\":5,\"payload\":\"soon\"}"
} | produce "$topic" -k "$queue"

dead() { [ "$(task_field "$queue" "$1" state)" = dead ]; }
wait_until 30 "the failing task to be dead" dead flaky
wait_until 30 "the bad-payload task to be dead" dead bad

[ "$(task_field "$queue" flaky attempt)" -eq 3 ] || fail "flaky ran $(task_field "$queue" flaky attempt) times"
[ "$(task_field "$queue" flaky error)" = "disk on fire" ] || fail "error text lost"
[ "$(task_field "$queue" bad attempt)" -eq 1 ] || fail "a permanent failure was retried"
[ -n "$(rcli zscore "baton:{$queue}:dead" flaky)" ] || fail "not in the dead set"

events "$queue" >"$WORK/events"
python3 - "$WORK/events" <<'PY' || fail "retries were not scheduled as expected"
import json, sys
ev = [e for e in map(json.loads, open(sys.argv[1])) if e["id"] == "flaky"]
kinds = [e["event"] for e in ev]
assert kinds == ["submitted", "claimed", "failed", "due", "claimed", "failed", "due",
                 "claimed", "dead"], kinds
fails = [e for e in ev if e["event"] == "failed"]
for k, e in enumerate(fails, start=1):
    delay = int(e["due"]) - int(e["at"])
    window = 200 * 2 ** (k - 1)
    assert 0 <= delay <= window, f"retry {k}: delay {delay} outside [0, {window}]"
    assert e["reason"] == "error" and e["error"] == "disk on fire", e
# Each retry ran no earlier than its due time (Redis clock).
claims = [e for e in ev if e["event"] == "claimed"][1:]
for f, c in zip(fails, claims):
    assert int(c["at"]) >= int(f["due"]), (f, c)
print("retries ok: delays", [int(e["due"]) - int(e["at"]) for e in fails],
      "within windows", [200 * 2 ** k for k in range(len(fails))])
PY
echo "1 passed, 0 failed"
