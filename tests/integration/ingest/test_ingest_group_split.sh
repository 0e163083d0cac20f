#!/usr/bin/env bash
# test_ingest_group_split.sh: two schedulers in one consumer group split the
# topic's partitions between them (each logs its own, disjoint assignment
# covering all 4), and every task published while both run is enqueued
# exactly once.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
group="g.$UNIQ"
create_topic "$topic"
start_scheduler a --topic "$topic" --group-id "$group" --dlq-topic "dlq.$UNIQ"
start_scheduler b --topic "$topic" --group-id "$group" --dlq-topic "dlq.$UNIQ"

# Wait until the group settled: the two latest assignments are disjoint and
# together cover partitions 0-3.
latest() { grep -o 'assigned [0-9]* partitions: [^"]*' "$WORK/$1.log" | tail -1 | sed 's/.*: //'; }
split_done() {
  local a b
  a=$(latest a) && b=$(latest b) && [ -n "$a" ] && [ -n "$b" ] || return 1
  python3 - "$a" "$b" <<'PY'
import re, sys
a = set(re.findall(r"\[(\d+)\]", sys.argv[1]))
b = set(re.findall(r"\[(\d+)\]", sys.argv[2]))
sys.exit(0 if a and b and not (a & b) and a | b == {"0", "1", "2", "3"} else 1)
PY
}
wait_until 60 "both schedulers to hold disjoint halves of the partitions" split_done
echo "scheduler a: $(latest a)"
echo "scheduler b: $(latest b)"

# 200 tasks over 8 queues: keys spread them over all partitions.
for n in $(seq 1 200); do
  q="q$((n % 8)).$UNIQ"
  echo "$q|{\"id\":\"s-$n\",\"type\":\"split\",\"queue\":\"$q\"}"
done | produce "$topic" -K '|'

total() {
  local sum=0 q
  for q in 0 1 2 3 4 5 6 7; do sum=$((sum + $(task_count "q$q.$UNIQ"))); done
  echo "$sum"
}
all_in() { [ "$(total)" -eq 200 ]; }
wait_until 60 "200 tasks enqueued" all_in
events=0
for q in 0 1 2 3 4 5 6 7; do
  events=$((events + $(event_count "q$q.$UNIQ")))
done
[ "$events" -eq 200 ] || fail "expected 200 submitted events, got $events"
kill -0 "$a_pid" && kill -0 "$b_pid" || fail "a scheduler died"
echo "1 passed, 0 failed"
