#!/usr/bin/env bash
# test_task_caps.sh: the task contract's caps on timeout_ms, max_attempts and
# delay_ms, and the worker's saturating deadline, on the real stack.
#
#  - messages over a cap (timeout_ms 2^63-1, max_attempts 1001, delay_ms
#    2^63-1) are rejected by the scheduler with reason out_of_range, a detail
#    naming the field, the value and the cap, and never reach Redis;
#  - a 500 ms sleep task with timeout_ms at its cap (86400000) succeeds on
#    its first attempt;
#  - a task already in Redis with timeout_ms 2^63-1 (enqueued before the
#    cap; put there through the real enqueue.lua, since the scheduler now
#    refuses it) also succeeds: the worker's start + timeout_ms saturates.
#    Before, the sum wrapped to a time in the past and every attempt timed
#    out at once ("timed out after 9223372036854775807 ms").

# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
scripts="$(cd "$(dirname "$0")/../../../common/scripts" && pwd)"

create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker worker --queues "$queue" --concurrency 2

{
  echo "{\"id\":\"at-cap\",\"type\":\"sleep\",\"queue\":\"$queue\",\"payload\":500,\"timeout_ms\":86400000,\"max_attempts\":1}"
  echo "{\"id\":\"timeout-over\",\"type\":\"sleep\",\"queue\":\"$queue\",\"payload\":500,\"timeout_ms\":9223372036854775807}"
  echo "{\"id\":\"attempts-over\",\"type\":\"sleep\",\"queue\":\"$queue\",\"max_attempts\":1001}"
  echo "{\"id\":\"delay-over\",\"type\":\"sleep\",\"queue\":\"$queue\",\"delay_ms\":9223372036854775807}"
} | produce "$topic" -k "$queue"

# --- rejections: in baton:rejections (shared by tests: filter on topic) ---
rejections() {
  rcli --json xrange baton:rejections - + | python3 -c '
import json, sys
topic = sys.argv[1]
for _, fields in json.load(sys.stdin):
    e = dict(zip(fields[0::2], fields[1::2]))
    if e.get("topic") == topic:
        print("%s|%s|%s" % (e["reason"], e["field"], e["detail"]))' "$topic"
}
three_rejections() { [ "$(rejections | wc -l)" -eq 3 ]; }
wait_until 30 "three rejections from $topic" three_rejections
got=$(rejections | sort)
want=$(
  cat <<'EOF' | sort
out_of_range|timeout_ms|field 'timeout_ms' must be an integer from 1 to 86400000 (24 hours), got 9223372036854775807
out_of_range|max_attempts|field 'max_attempts' must be an integer from 1 to 1000, got 1001
out_of_range|delay_ms|field 'delay_ms' must be an integer from 0 to 31536000000 (365 days), got 9223372036854775807
EOF
)
[ "$got" = "$want" ] || fail "rejections: got
$got
want
$want"
for id in timeout-over attempts-over delay-over; do
  [ "$(rcli exists "baton:{$queue}:t:$id")" = 0 ] || fail "rejected task $id is in Redis"
done

# --- a legacy task with timeout_ms 2^63-1, through the real enqueue.lua ---
# common/redis.c prepends _lib.lua to each script; redis-cli --eval gets
# the same text.
cat "$scripts/_lib.lua" "$scripts/enqueue.lua" >"$WORK/enqueue.lua"
legacy_json="{\"id\":\"legacy\",\"type\":\"sleep\",\"queue\":\"$queue\",\"priority\":5,\"payload\":500,\"max_attempts\":1,\"timeout_ms\":9223372036854775807,\"meta\":{}}"
k="baton:{$queue}"
added=$(rcli --eval "$WORK/enqueue.lua" "$k:ready" "$k:scheduled" "$k:deadline" "$k:seq" \
  "$k:events" "$k:notify" , "$k:t:" 60000 1 \
  legacy 5 1 9223372036854775807 '' '' '' "$topic" 0 0 "$legacy_json" | head -n 1)
[ "$added" = 1 ] || fail "enqueue.lua did not queue the legacy task: $added"

state_is() { [ "$(task_field "$queue" "$1" state)" = "$2" ]; }
settled() { state_is "$1" succeeded || state_is "$1" dead || state_is "$1" scheduled; }
for id in at-cap legacy; do
  wait_until 30 "task $id to finish" settled "$id"
  state=$(task_field "$queue" "$id" state)
  [ "$state" = succeeded ] ||
    fail "task $id is $state, want succeeded (error: $(task_field "$queue" "$id" error))"
  [ "$(task_field "$queue" "$id" attempt)" = 1 ] || fail "task $id took more than one attempt"
done
if grep -q 'timed out after' "$WORK/worker.log"; then
  fail "the worker timed a task out: $(grep 'timed out after' "$WORK/worker.log")"
fi

echo "PASS: caps rejected with field, value and cap; at-cap and legacy 2^63-1 timeouts run to success"
