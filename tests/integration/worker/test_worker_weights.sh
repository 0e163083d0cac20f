#!/usr/bin/env bash
# test_worker_weights.sh: with weights 3:1 and both queues full, a worker
# serves each queue its share within +-15 % over 400 tasks, and the
# low-weight queue is never starved (served in every window of 40 claims).
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
heavy="heavy.$UNIQ"
light="light.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"

for q in "$heavy" "$light"; do
  for n in $(seq 1 400); do echo "{\"id\":\"$n\",\"type\":\"noop\",\"queue\":\"$q\"}"; done |
    produce "$topic" -k "$q"
done
full() {
  [ "$(rcli zcard "baton:{$heavy}:ready")" -eq 400 ] && [ "$(rcli zcard "baton:{$light}:ready")" -eq 400 ]
}
wait_until 60 "both queues full (400 each)" full

start_worker w --queues "$heavy=3,$light=1" --concurrency 1
served_400() {
  local a b
  a=$(event_count "$heavy") b=$(event_count "$light")
  # each served task adds claimed + succeeded to the submitted event
  [ $(((a - 400) / 2 + (b - 400) / 2)) -ge 400 ]
}
wait_until 60 "400 tasks served" served_400
stop_pid "$w_pid"

# The events carry no queue field: count by which stream each claim is in
# (ordered by stream entry id, then place in the entry).
events "$heavy" >"$WORK/heavy.events"
events "$light" >"$WORK/light.events"
python3 - "$heavy" "$light" "$WORK/heavy.events" "$WORK/light.events" <<PY || fail "weights not honoured"
import json, sys
def claims(q, path):
    res = []
    for line in open(path):
        e = json.loads(line)
        if e["event"] == "claimed":
            ms, seq = e["stream_id"].split("-")
            res.append(((int(ms), int(seq), e["index"]), q))
    return res
order = sorted(claims("$heavy", sys.argv[3]) + claims("$light", sys.argv[4]))[:400]
heavy = sum(1 for _, q in order if q == "$heavy")
light = 400 - heavy
print(f"first 400 claims: heavy {heavy}, light {light} (expected 300/100)")
assert 255 <= heavy <= 345, heavy
windows = [sum(1 for _, q in order[i:i + 40] if q == "$light") for i in range(0, 400, 40)]
assert min(windows) > 0, f"light queue starved in a window: {windows}"
print(f"light claims per window of 40: {windows}")
PY
echo "1 passed, 0 failed"
