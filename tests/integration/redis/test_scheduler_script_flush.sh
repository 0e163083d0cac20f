#!/usr/bin/env bash
# test_scheduler_script_flush.sh: Redis losing its scripts (SCRIPT FLUSH, as
# after a failover to a replica without them) while the scheduler's
# maintenance loop and a worker run. Regression test: an error reply in the
# middle of a pipeline used to leave replies unread, after which replies were
# taken for the wrong commands and the wrong scripts ran on live keys. Now
# every component reloads its scripts and carries on: delayed tasks are
# promoted, tasks run, and no stray key appears.
. "$(dirname "$0")/../lib.sh"
use_own_stack

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker w --queues "$queue" --concurrency 2

for round in 1 2 3; do
  {
    echo "{\"id\":\"now-$round\",\"type\":\"noop\",\"queue\":\"$queue\"}"
    echo "{\"id\":\"later-$round\",\"type\":\"noop\",\"queue\":\"$queue\",\"delay_ms\":400}"
  } | produce "$topic" -k "$queue"
  ingested() { [ "$(rcli exists "baton:{$queue}:t:later-$round")" -eq 1 ]; }
  wait_until 30 "round $round ingested" ingested
  rcli script flush >/dev/null
  done_round() {
    [ "$(task_field "$queue" "now-$round" state)" = succeeded ] &&
      [ "$(task_field "$queue" "later-$round" state)" = succeeded ]
  }
  wait_until 30 "round $round: both tasks run after SCRIPT FLUSH" done_round
done

# Nothing but the queue's own keys, with the expected members.
unexpected=$(rcli --scan --pattern "baton:{$queue}:*" | grep -Ev ":(t:(now|later)-[123]|events|seq|notify|ready|scheduled|running|deadline)$" || true)
[ -z "$unexpected" ] || fail "stray keys after SCRIPT FLUSH: $unexpected"
[ "$(rcli zcard "baton:{$queue}:ready")" -eq 0 ] || fail "ready queue holds $(rcli zrange "baton:{$queue}:ready" 0 -1)"
grep -q NOSCRIPT "$WORK/sched.log" "$WORK/w.log" || echo "note: no component saw NOSCRIPT this run"
kill -0 "$sched_pid" && kill -0 "$w_pid" || fail "a process died"
echo "1 passed, 0 failed"
