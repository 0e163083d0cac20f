#!/usr/bin/env bash
# test_worker_fencing.sh: a worker whose lease was taken over cannot
# overwrite the new owner's result (docs/guarantees.md guarantee 3, fencing tokens).
#
#  1. worker A (--lease-ms 600) claims a `sleep` task (2000 ms, long
#     timeout): token 1;
#  2. A is frozen with SIGSTOP, so it renews nothing; its lease expires and
#     maintenance (every 20 ms) reclaims the task: state queued, event
#     "reclaimed" naming A and token 1;
#  3. worker B, started only now, claims it (token 2) and finishes it:
#     state succeeded, worker B;
#  4. A is thawed with SIGCONT: its sleep is long over, so it tries to renew
#     the lease and to report success with token 1. Both must be refused and
#     change nothing: the task still shows B's success with token 2, there is
#     exactly one "succeeded" event (B's), no event of A after the reclaim,
#     and A's log shows the refusal ("lease renewal refused" or "outcome
#     refused");
#  5. A still stops gracefully on SIGTERM (exit 0).

# shellcheck disable=SC2154 # a_pid, b_pid: set by start_worker
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
id="fenced"
worker_a="a.$UNIQ"
worker_b="b.$UNIQ"

# ev_lines ID EVENT FIELD: FIELD of each EVENT of task ID, oldest first.
ev_lines() {
  events "$queue" | python3 -c '
import json, sys
tid, ev, field = sys.argv[1:]
for line in sys.stdin:
    e = json.loads(line)
    if e.get("id") == tid and e.get("event") == ev:
        print(e.get(field, ""))' "$@"
}
ev_count() { ev_lines "$1" "$2" event | wc -l; }
field() { task_field "$queue" "$id" "$1"; }
# stop_within SECONDS PID: SIGTERM, wait (bounded) for the exit; its status
# goes to $rc.
stop_within() {
  kill -TERM "$2" 2>/dev/null || true
  wait_until "$1" "pid $2 to exit after SIGTERM" exited "$2"
  rc=0
  wait "$2" || rc=$?
}

create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ" \
  --maintenance-interval-ms 20
start_worker a --queues "$queue" --concurrency 1 --lease-ms 600

echo "{\"id\":\"$id\",\"type\":\"sleep\",\"queue\":\"$queue\",\"payload\":2000,\"timeout_ms\":60000,\"max_attempts\":3}" |
  produce "$topic" -k "$queue"

running_on_a() { [ "$(field state)" = running ] && [ "$(field worker)" = "$worker_a" ]; }
wait_until 60 "worker A to claim the task" running_on_a
kill -STOP "$a_pid"
# The freeze came while A's attempt was still running (it sleeps 2000 ms):
# otherwise there is nothing to fence.
[ "$(ev_count "$id" succeeded)" -eq 0 ] || fail "A finished the task before it was frozen"
[ "$(field token)" = 1 ] || fail "token is $(field token) after A's claim, expected 1"

reclaimed() { [ "$(ev_count "$id" reclaimed)" -ge 1 ]; }
wait_until 10 "maintenance to reclaim the frozen worker's task" reclaimed
[ "$(ev_lines "$id" reclaimed worker)" = "$worker_a" ] || fail "reclaimed event does not name A"
[ "$(ev_lines "$id" reclaimed token)" = 1 ] || fail "reclaimed event token is not 1"
[ "$(ev_lines "$id" reclaimed to)" = queued ] || fail "reclaimed task did not go back to queued"

start_worker b --queues "$queue" --concurrency 1 --lease-ms 5000
succeeded_on_b() { [ "$(field state)" = succeeded ] && [ "$(field token)" = 2 ]; }
wait_until 20 "worker B to claim and finish the task" succeeded_on_b
[ "$(ev_lines "$id" succeeded worker)" = "$worker_b" ] || fail "the success is not B's"

# Thaw A. Its sleep has long ended, so it reports (or its keeper first
# renews) with token 1: either must be refused.
kill -CONT "$a_pid"
a_refused() { grep -Eq 'lease renewal refused|outcome refused' "$WORK/a.log"; }
wait_until 15 "A to log that its stale lease or outcome was refused" a_refused
# A has nothing left to run once its refused attempt is off its books;
# a graceful stop then returns at once. Whatever A could write, it wrote
# before this stop completes.
stop_within 20 "$a_pid"
[ "$rc" -eq 0 ] || fail "A exited with $rc after SIGTERM"

# Nothing of A's late outcome landed.
[ "$(field state)" = succeeded ] || fail "state is '$(field state)' after A came back"
[ "$(field token)" = 2 ] || fail "token is '$(field token)' after A came back"
[ "$(field attempt)" = 2 ] || fail "attempt is '$(field attempt)', expected 2"
[ "$(field worker)" = "$worker_b" ] || fail "worker is '$(field worker)', expected B"
[ "$(ev_count "$id" succeeded)" -eq 1 ] || fail "expected exactly one succeeded event, got $(ev_count "$id" succeeded)"
[ "$(ev_lines "$id" succeeded token)" = 2 ] || fail "the succeeded event has token $(ev_lines "$id" succeeded token)"
[ "$(ev_count "$id" claimed)" -eq 2 ] || fail "expected two claims (A, B)"
[ "$(ev_lines "$id" claimed worker | tr '\n' ' ')" = "$worker_a $worker_b " ] ||
  fail "claims were not A then B: $(ev_lines "$id" claimed worker | tr '\n' ' ')"
[ "$(ev_lines "$id" claimed token | tr '\n' ' ')" = "1 2 " ] || fail "claim tokens are not 1, 2"
for ev in failed dead returned; do
  [ "$(ev_count "$id" "$ev")" -eq 0 ] || fail "unexpected '$ev' event"
done
# The last event is B's success: A appended nothing after it.
last=$(events "$queue" | python3 -c '
import json, sys
print([json.loads(l) for l in sys.stdin][-1]["event"])')
[ "$last" = succeeded ] || fail "an event after B's success: $last"
[ -z "$(rcli zscore "baton:{$queue}:running" "$id")" ] || fail "the task is back in the running set"

stop_within 20 "$b_pid"
[ "$rc" -eq 0 ] || fail "B exited with $rc after SIGTERM"
echo "A's late outcome refused: $(grep -Eo 'lease renewal refused|outcome refused' "$WORK/a.log" | sort -u | tr '\n' ';')"
echo "1 passed, 0 failed"
