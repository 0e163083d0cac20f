#!/usr/bin/env bash
# test_worker_tree_kill.sh: nothing a command handler starts outlives its
# attempt, and no descendant can hold an attempt past its timeout, even one
# that left the program's process group and was re-parented (setsid,
# double fork). Four handlers run at once on one worker, each starting a
# "daemon" (a copy of sleep under a name of its own, found by pgrep on
# its path; neither the worker's command line nor the scripts' hold it):
#
#  - setsid:     `setsid DAEMON 600 &` keeping the stdout/stderr pipes, then
#                `sleep 600`; timeout_ms 1500: the attempt fails with
#                reason timeout soon after (it once stayed running with its
#                lease renewed, the worker waiting for EOF on the pipes);
#  - doublefork: `( setsid DAEMON 600 >/dev/null ... & )`, a proper daemon
#                re-parented at once, then `sleep 600`; timeout_ms 1500: the
#                same, and the daemon is killed (it once ran on);
#  - detach:     starts a proper daemon and exits 0 at once: succeeds, and
#                the daemon is killed with the program's tree;
#  - holdpipe:   starts a daemon that keeps stdout and exits 0: succeeds
#                with its output (the worker once waited for EOF forever).
#
# The timing bound is loose on purpose (a shared machine): a timed-out
# attempt must end well within 20 s, where the stuck one ran for minutes.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
for v in a b c d; do cp "$(command -v sleep)" "$WORK/escaper-$v"; done
daemons() { pgrep -f -- "^$WORK/escaper-${1:-}" || true; }

# A failed test must not leave the daemons behind (lib.sh kills the worker
# only).
cleanup_tree_test() {
  local pid
  for pid in $(daemons); do kill -KILL "$pid" 2>/dev/null || true; done
  cleanup_test
}
trap cleanup_tree_test EXIT

cat >"$WORK/setsid.sh" <<SH
#!/bin/sh
setsid "$WORK/escaper-a" 600 &
sleep 600
SH
cat >"$WORK/doublefork.sh" <<SH
#!/bin/sh
( setsid "$WORK/escaper-b" 600 </dev/null >/dev/null 2>&1 & )
sleep 600
SH
cat >"$WORK/detach.sh" <<SH
#!/bin/sh
setsid "$WORK/escaper-c" 600 </dev/null >/dev/null 2>&1 &
echo "{\"daemon\":\$!}"
SH
cat >"$WORK/holdpipe.sh" <<SH
#!/bin/sh
setsid "$WORK/escaper-d" 600 &
echo '"done"'
SH
chmod +x "$WORK"/*.sh

create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker worker --queues "$queue" --concurrency 4 --kill-grace-ms 300 \
  --command "setsid=$WORK/setsid.sh" --command "doublefork=$WORK/doublefork.sh" \
  --command "detach=$WORK/detach.sh" --command "holdpipe=$WORK/holdpipe.sh"

{
  for t in setsid doublefork; do
    echo "{\"id\":\"$t\",\"type\":\"$t\",\"queue\":\"$queue\",\"timeout_ms\":1500,\"max_attempts\":1}"
  done
  for t in detach holdpipe; do
    echo "{\"id\":\"$t\",\"type\":\"$t\",\"queue\":\"$queue\",\"timeout_ms\":60000,\"max_attempts\":1}"
  done
} | produce "$topic" -k "$queue"

# The escapers of the timed-out handlers are first seen alive.
alive() { [ -n "$(daemons a)" ] && [ -n "$(daemons b)" ]; }
wait_until 60 "the setsid and double-fork daemons to run" alive

state_is() { [ "$(task_field "$queue" "$1" state)" = "$2" ]; }
ev_field() { # ID EVENT FIELD
  events "$queue" | python3 -c '
import json, sys
tid, ev, field = sys.argv[1:]
for line in sys.stdin:
    e = json.loads(line)
    if e.get("id") == tid and e.get("event") == ev:
        print(e.get(field, ""))' "$@"
}
for id in setsid doublefork; do
  wait_until 45 "$id to end dead (timed out)" state_is "$id" dead
  [ "$(ev_field "$id" dead reason)" = timeout ] || fail "$id: dead event reason is '$(ev_field "$id" dead reason)'"
  error=$(task_field "$queue" "$id" error)
  [ "$error" = "timed out after 1500 ms" ] || fail "$id: error is '$error'"
  took=$(($(ev_field "$id" dead at) - $(ev_field "$id" claimed at)))
  [ "$took" -ge 1500 ] || fail "$id: failed after $took ms, before its timeout"
  [ "$took" -lt 20000 ] || fail "$id: failed only after $took ms"
  echo "$id: timed out, failed after $took ms"
done

for id in detach holdpipe; do
  wait_until 45 "$id to succeed" state_is "$id" succeeded
done
result=$(task_field "$queue" holdpipe result)
[ "$result" = '"done"' ] || fail "holdpipe: result is '$result'"
daemon=$(task_field "$queue" detach result | python3 -c 'import json, sys; print(json.load(sys.stdin)["daemon"])')

none_left() { [ -z "$(daemons)" ] && ! kill -0 "$daemon" 2>/dev/null; }
wait_until 10 "every daemon to be gone" none_left

# The worker is healthy and stops at once (nothing runs).
kill -TERM "$worker_pid"
wait_until 10 "the worker to exit after SIGTERM" exited "$worker_pid"
rc=0
wait "$worker_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the worker exited with $rc after SIGTERM"
echo "1 passed, 0 failed"
