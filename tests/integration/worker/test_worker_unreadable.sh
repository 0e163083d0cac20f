#!/usr/bin/env bash
# test_worker_unreadable.sh: a claimed task whose JSON in Redis cannot be
# read is marked dead at once ("task JSON in Redis is unreadable", one
# attempt, no handler run), and the worker goes on with the others. The
# worker reads a task's type with a scan and its payload only when a
# handler needs it; this checks that whatever jansson refuses is still
# unreadable, and that a task outside the scan's subset (escapes, UTF-8)
# still runs, with its payload.
#
#  1. tasks are published with no worker running and, once queued, some
#     have their hash's `task` field damaged: cut short, a number jansson
#     refuses (1e999), a \u0000 escape; one gets an escaped type
#     ("no\u006fp", readable) and one a UTF-8 payload for `echo`;
#  2. a worker starts: the damaged ones are dead with the error, in one
#     attempt; the others succeed, the echo with its payload as result.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
{
  for id in cut big nul ok escaped; do
    echo "{\"id\":\"$id\",\"type\":\"noop\",\"queue\":\"$queue\",\"max_attempts\":3}"
  done
  echo "{\"id\":\"utf8\",\"type\":\"echo\",\"queue\":\"$queue\",\"payload\":{\"s\":\"caf\u00e9\",\"n\":[1,2]}}"
} | produce "$topic" -k "$queue"

state_is() { [ "$(task_field "$queue" "$1" state)" = "$2" ]; }
for id in cut big nul ok escaped utf8; do
  wait_until 60 "task $id to be queued" state_is "$id" queued
done
tkey() { echo "baton:{$queue}:t:$1"; }
rcli hset "$(tkey cut)" task '{"id":"cut","type":"noop","queue":' >/dev/null
rcli hset "$(tkey big)" task '{"id":"big","type":"noop","payload":1e999}' >/dev/null
rcli hset "$(tkey nul)" task '{"id":"nul","type":"noop","payload":"\u0000"}' >/dev/null
rcli hset "$(tkey escaped)" task '{"id":"escaped","type":"no\u006fp","payload":null}' >/dev/null

start_worker w --queues "$queue" --concurrency 2
for id in cut big nul; do
  wait_until 60 "the unreadable task $id to be dead" state_is "$id" dead
  case "$(task_field "$queue" "$id" error)" in
    *"task JSON in Redis is unreadable"*) ;;
    *) fail "task $id error: $(task_field "$queue" "$id" error)" ;;
  esac
  [ "$(task_field "$queue" "$id" attempt)" = 1 ] ||
    fail "task $id: attempt $(task_field "$queue" "$id" attempt), expected 1"
done
for id in ok escaped utf8; do
  wait_until 60 "task $id to succeed" state_is "$id" succeeded
done
result=$(task_field "$queue" utf8 result)
[ "$(printf '%s' "$result" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))')" = \
  '{"n": [1, 2], "s": "caf\u00e9"}' ] || fail "echo result: $result"
grep -q "task JSON unreadable: marked dead" "$WORK/w.log" || fail "no log line for the unreadable tasks"
! exited "$w_pid" || fail "the worker exited"
stop_pid "$w_pid"
echo "3 unreadable tasks dead, 3 readable ones succeeded"
