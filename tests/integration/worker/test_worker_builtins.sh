#!/usr/bin/env bash
# test_worker_builtins.sh: the test-only built-ins are off unless named.
#  - a worker started with the default --builtins (noop,sleep,echo) does
#    not die on a `crash` task a producer published: the task fails with
#    "no handler" and the worker goes on to run a noop after it;
#  - the same worker, given --builtins with crash, dies on it (the test
#    would pass vacuously if `crash` no longer killed anything);
#  - an unknown name is a configuration error (exit 2) naming it.
. "$(dirname "$0")/../lib.sh"

rc=0
out=$("$BATON_BIN_DIR/worker/baton-worker" --redis-url "$BATON_REDIS_URL" \
  --builtins noop,crsh 2>&1 >/dev/null) || rc=$?
[ "$rc" -eq 2 ] || fail "--builtins noop,crsh: exit $rc ($out)"
case "$out" in *"unknown built-in handler 'crsh'"*) ;; *) fail "worker said: $out" ;; esac

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
# The default list: lib.sh's start_worker names every built-in, so the
# last --builtins (the worker's own default) is spelled out here.
start_worker safe --queues "$queue" --builtins noop,sleep,echo
{
  echo "{\"id\":\"boom\",\"type\":\"crash\",\"queue\":\"$queue\",\"max_attempts\":1}"
  echo "{\"id\":\"after\",\"type\":\"noop\",\"queue\":\"$queue\"}"
} | produce "$topic" -k "$queue"

state_is() { [ "$(task_field "$queue" "$1" state)" = "$2" ]; }
wait_until 60 "the crash task to be dead" state_is boom dead
wait_until 30 "the noop after it to succeed" state_is after succeeded
! exited "$safe_pid" || fail "a crash task killed a worker that did not enable crash"
case "$(task_field "$queue" boom error)" in
  *"no handler for type 'crash'"*) ;;
  *) fail "crash task error: $(task_field "$queue" boom error)" ;;
esac
stop_pid "$safe_pid"

start_worker unsafe --queues "$queue" --builtins noop,crash
echo "{\"id\":\"boom2\",\"type\":\"crash\",\"queue\":\"$queue\",\"max_attempts\":1}" |
  produce "$topic" -k "$queue"
wait_until 60 "the worker that enabled crash to die on it" exited "$unsafe_pid"
echo "default built-ins survive a crash task; an enabled crash kills its worker"
