#!/usr/bin/env bash
# test_worker_hard_stop.sh: a second SIGTERM makes a worker leave at once,
# and the command handlers it was running leave with it (SIGKILL to their
# process groups): no program may run on with nobody enforcing its timeout
# while maintenance hands its task to another worker.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker w --queues "$queue" --concurrency 2 --grace-ms 30000 --command 'long=sleep 30'

id="hard-$UNIQ"
echo "{\"id\":\"$id\",\"type\":\"long\",\"queue\":\"$queue\"}" | produce "$topic" -k "$queue"
# The program's processes carry BATON_TASK_ID=<id> in their environment.
programs() {
  grep -lsa "BATON_TASK_ID=$id" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 | while read -r pid; do
    [ "$pid" != "$w_pid" ] && echo "$pid"
  done
}
program_runs() { [ -n "$(programs)" ]; }
wait_until 30 "the command to run" program_runs
echo "command processes: $(programs | tr '\n' ' ')"

kill -TERM "$w_pid"
# Two signals sent back to back may arrive as one: send the second once the
# worker is draining.
draining() { grep -q 'stopping: waiting' "$WORK/w.log"; }
wait_until 10 "the worker to start its graceful stop" draining
kill -TERM "$w_pid"
gone() { ! kill -0 "$w_pid" 2>/dev/null; }
wait_until 5 "the worker to leave at once" gone
rc=0
wait "$w_pid" || rc=$?
[ "$rc" -ne 0 ] || fail "a hard stop should not exit 0"
no_program() { [ -z "$(programs)" ]; }
wait_until 5 "the command's processes to be killed" no_program
echo "1 passed, 0 failed"
