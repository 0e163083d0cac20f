#!/usr/bin/env bash
# test_worker_example.sh: worker/examples/example_worker.c, a user's own
# worker binary built on the worker library, serves its task type.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
"$BATON_BIN_DIR/worker/example-worker" "$BATON_REDIS_URL" "$queue" >"$WORK/example.log" 2>&1 &
example_pid=$!
TEST_PIDS+=("$example_pid")

{
  echo "{\"id\":\"wc\",\"type\":\"example.wordcount\",\"queue\":\"$queue\",\"payload\":{\"text\":\"to be or not to be\"}}"
  echo "{\"id\":\"wc-bad\",\"type\":\"example.wordcount\",\"queue\":\"$queue\",\"payload\":42}"
} | produce "$topic" -k "$queue"
terminal() { case "$(task_field "$queue" "$1" state)" in succeeded | dead) return 0 ;; *) return 1 ;; esac; }
wait_until 30 "the wordcount task" terminal wc
wait_until 30 "the bad wordcount task" terminal wc-bad
[ "$(task_field "$queue" wc result)" = '{"words":6}' ] || fail "result: $(task_field "$queue" wc result)"
[ "$(task_field "$queue" wc-bad state)" = dead ] || fail "bad payload should be dead at once"
[ "$(task_field "$queue" wc-bad attempt)" -eq 1 ] || fail "permanent failure retried"
kill -TERM "$example_pid"
wait "$example_pid" || fail "example worker did not exit 0 on SIGTERM"
echo "1 passed, 0 failed"
