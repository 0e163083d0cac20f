#!/usr/bin/env bash
# test_ingest_dlq_outage.sh: the DLQ topic refuses writes for a while.
#  1. Bad and good messages, interleaved on one partition, are in the topic;
#     then the embedded Kafka fails every produce request with
#     TOPIC_AUTHORIZATION_FAILED (whoever sends it: hence a stack of its own).
#  2. A scheduler enqueues every good task, also those after the bad ones,
#     while the DLQ refuses the bad ones (baton_ingest_dlq_pending counts
#     them).
#  3. It is stopped (SIGTERM: close commits what was stored) and a second
#     one takes over the group: it must read the bad messages again, since
#     no offset may pass a reject the DLQ has not acknowledged.
#  4. The DLQ accepts again: each bad message is in it exactly once (no
#     resend of one already acknowledged or still in flight).
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

use_own_stack
kctl() { "$STACK_SH" kafka "$@" --env-file "$OWN_STACK_ENV"; }

topic="t.$UNIQ"
dlq="dlq.$UNIQ"
queue="q.$UNIQ"
nbad=12
create_topic "$topic"
create_topic "$dlq"
{
  echo "{\"id\":\"good-0\",\"type\":\"noop\",\"queue\":\"$queue\"}"
  for i in $(seq 1 $nbad); do
    echo "not json $i"
    echo "{\"id\":\"good-$i\",\"type\":\"noop\",\"queue\":\"$queue\"}"
  done
} | produce "$topic" -p 0
kctl errors produce 1000000 TOPIC_AUTHORIZATION_FAILED >/dev/null ||
  fail "the embedded Kafka did not take the produce errors"

# metric PORT NAME: a scheduler's value of an unlabelled metric.
metric() { curl -fsS "http://127.0.0.1:$1/metrics" | sed -n "s/^$2 \([0-9.e+]*\)\$/\1/p"; }
pending_is() { [ "$(metric "$1" baton_ingest_dlq_pending)" = "$2" ]; }
have_good() { [ "$(task_count "$queue")" -eq $((nbad + 1)) ]; }

# --- 2. good tasks flow while the DLQ refuses
port1=$(free_port)
start_scheduler sched1 --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "$dlq" \
  --metrics-port "$port1"
wait_until 60 "all $((nbad + 1)) good tasks, the DLQ refusing" have_good
wait_until 30 "$nbad rejects held for the DLQ" pending_is "$port1" "$nbad"

# --- 3. a new owner reads the held rejects again
stop_pid "$sched1_pid" TERM
grep -q "stopping with $nbad rejects not acknowledged" "$WORK/sched1.log" ||
  fail "the scheduler did not report the rejects it left"
! grep -q 'Sanitizer' "$WORK/sched1.log" || fail "the sanitizers reported a problem at stop"
port2=$(free_port)
start_scheduler sched2 --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "$dlq" \
  --metrics-port "$port2"
wait_until 60 "the second scheduler to hold the $nbad rejects again" pending_is "$port2" "$nbad"

# --- 4. the DLQ accepts again: every reject once
kctl errors produce clear >/dev/null || fail "could not clear the produce errors"
wait_until 60 "the DLQ to acknowledge every reject" pending_is "$port2" 0
kcat -C -b "$BATON_KAFKA_BROKERS" -t "$dlq" -o beginning -e -q \
  -f '%h\t%s\n' >"$WORK/dlq.out" 2>/dev/null || fail "cannot read the DLQ"
python3 - "$WORK/dlq.out" "$nbad" <<'PY' || fail "the DLQ does not hold each reject exactly once"
import collections, re, sys
values = collections.Counter()
offsets = collections.Counter()
for line in open(sys.argv[1]):
    headers, value = line.rstrip("\n").split("\t", 1)
    h = dict(kv.split("=", 1) for kv in re.split(r",(?=baton-[a-z-]+=)", headers))
    assert h["baton-reason"] == "invalid_json", h
    values[value] += 1
    offsets[int(h["baton-source-offset"])] += 1
want = {f"not json {i}" for i in range(1, int(sys.argv[2]) + 1)}
assert set(values) == want, f"DLQ values {sorted(values)} != {sorted(want)}"
dups = {v: n for v, n in values.items() if n > 1}
assert not dups, f"dead-lettered more than once: {dups}"
assert all(n == 1 for n in offsets.values()), offsets
print(f"DLQ ok: {len(values)} rejects, each once")
PY
[ "$(task_count "$queue")" -eq $((nbad + 1)) ] || fail "good tasks changed: $(task_count "$queue")"
kill -0 "$sched2_pid" || fail "the second scheduler died"
echo "1 passed, 0 failed"
