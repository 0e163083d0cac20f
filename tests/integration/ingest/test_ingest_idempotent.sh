#!/usr/bin/env bash
# test_ingest_idempotent.sh: enqueue is idempotent (guarantee 2).
#  - the same id published 5 times leaves exactly one task and one
#    "submitted" event;
#  - messages without an id get distinct ids derived from topic, partition
#    and offset;
#  - a consumer group that re-reads the whole topic from the start (a new
#    group: the same as resetting the group's offsets) creates nothing new,
#    and re-reading an offset derives the same id.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler first --topic "$topic" --group-id "g1.$UNIQ" --dlq-topic "dlq.$UNIQ"

for i in 1 2 3 4 5; do
  echo "{\"id\":\"same-id\",\"type\":\"idem\",\"queue\":\"$queue\",\"payload\":$i}"
done | produce "$topic" -k "$queue"
# Two messages without ids, then a marker that tells us ingest got this far.
for i in 1 2; do echo "{\"type\":\"noid\",\"queue\":\"$queue\",\"payload\":$i}"; done |
  produce "$topic" -k "$queue"
echo "{\"id\":\"marker\",\"type\":\"idem\",\"queue\":\"$queue\"}" | produce "$topic" -k "$queue"

has_marker() { [ "$(rcli exists "baton:{$queue}:t:marker")" -eq 1 ]; }
wait_until 60 "the marker task" has_marker

[ "$(task_count "$queue")" -eq 4 ] || fail "expected 4 tasks (same-id, 2 derived, marker), got $(task_count "$queue")"
# same-id kept the first message's payload: replays change nothing.
task=$(rcli hget "baton:{$queue}:t:same-id" task)
python3 -c 'import json,sys; assert json.loads(sys.argv[1])["payload"] == 1, sys.argv[1]' "$task" ||
  fail "same-id task was overwritten: $task"
submitted() { rcli xrange "baton:{$queue}:events" - + | grep -c '^submitted$' || true; }
[ "$(submitted)" -eq 4 ] || fail "expected 4 submitted events, got $(submitted)"

# Derived ids: "<topic>:<partition>:<offset>", two different ones.
mapfile -t derived < <(rcli --scan --pattern "baton:{$queue}:t:$topic:*" | sort)
[ "${#derived[@]}" -eq 2 ] || fail "expected 2 derived ids, got ${derived[*]}"
[ "${derived[0]}" != "${derived[1]}" ] || fail "derived ids are equal"

# A second group re-reads everything: nothing new, same derived ids.
stop_pid "$first_pid"
before=$(event_count "$queue")
start_scheduler second --topic "$topic" --group-id "g2.$UNIQ" --dlq-topic "dlq.$UNIQ"
echo "{\"id\":\"marker2\",\"type\":\"idem\",\"queue\":\"$queue\"}" | produce "$topic" -k "$queue"
has_marker2() { [ "$(rcli exists "baton:{$queue}:t:marker2")" -eq 1 ]; }
wait_until 60 "the second marker task" has_marker2
[ "$(task_count "$queue")" -eq 5 ] || fail "re-reading made new tasks: $(task_count "$queue") tasks"
after=$(event_count "$queue")
[ "$after" -eq $((before + 1)) ] || fail "re-reading added events: $before -> $after"
mapfile -t derived2 < <(rcli --scan --pattern "baton:{$queue}:t:$topic:*" | sort)
[ "${derived2[*]}" = "${derived[*]}" ] || fail "derived ids changed on re-read: ${derived2[*]}"
echo "1 passed, 0 failed"
