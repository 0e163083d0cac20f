#!/usr/bin/env bash
# scenario_pg_outage.sh: PostgreSQL stops for 10 s under load and comes
# back; nothing is dropped and history catches up (docs/guarantees.md guarantee 4:
# "if PostgreSQL is down, events wait and nothing is dropped").
#
# Two workers run the chaos handler while the checker publishes a few
# thousand tasks at a steady rate. Once history has the first tasks,
# PostgreSQL is stopped (stack.sh stop postgres: a fast shutdown, which
# breaks the writer's connection in the middle of whatever it does) for
# 10 s, while tasks keep arriving and running: execution needs only Redis,
# so the transitions pile up in the queue's events stream, the history
# backlog. Its length is sampled every 100 ms through the outage and until
# it drains; the peak is reported. Then PostgreSQL starts again (same data,
# same port) and the scheduler's writer, never restarted, must reconnect
# by itself and copy everything: the checker waits for every acknowledged
# task to be terminal in Redis and in history and checks every execution
# against history's claims.

# shellcheck disable=SC2154 # sched_pid: set by chaos_scheduler
# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

TASKS=${CHAOS_TASKS:-3000}
RATE=150          # tasks/s: the workload takes about 20 s to publish
OUTAGE_S=10       # how long PostgreSQL stays down (the fault itself)
SAMPLE_EVERY=0.1  # seconds between two backlog samples

chaos_up
chaos_scheduler sched
chaos_worker w1 --concurrency 6
chaos_worker w2 --concurrency 6

psql_q() { psql "$BATON_PG_DSN" -qAtc "$1"; }
backlog() { rcli xlen "baton:{$QUEUE}:events"; }
in_history() { psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$QUEUE' AND state = 'succeeded'"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

chaos_produce "$TASKS" --rate "$RATE" --id-prefix pg >"$WORK/produce.out" 2>&1 &
produce_pid=$!
TEST_PIDS+=("$produce_pid")

# Break PostgreSQL only once history is being written, so the writer loses
# a live connection rather than never having had one.
history_started() { [ "$(in_history)" -ge 200 ]; }
wait_until 60 "the first 200 tasks in history" history_started

peak=0
samples=0
# sample: one backlog reading into `peak`.
sample() {
  local n
  n=$(backlog) || return 0
  samples=$((samples + 1))
  [ "$n" -gt "$peak" ] && peak=$n
  return 0
}
sample
before=$peak
"$STACK_SH" stop postgres --env-file "$OWN_STACK_ENV" >/dev/null || fail "could not stop PostgreSQL"
stopped_ms=$(now_ms)
! psql_q 'SELECT 1' >/dev/null 2>&1 || fail "PostgreSQL still answers after stack.sh stop postgres"
# The outage: OUTAGE_S seconds of sampling (the fault's length, timed on
# purpose), during which the scheduler must stay up.
while [ $(($(now_ms) - stopped_ms)) -lt $((OUTAGE_S * 1000)) ]; do
  sample
  alive "$sched_pid" || fail "the scheduler died while PostgreSQL was down"
  sleep "$SAMPLE_EVERY"
done
during=$peak
succeeded_during=$(wc -l <"$EXECUTIONS")
"$STACK_SH" start postgres --env-file "$OWN_STACK_ENV" >/dev/null || fail "could not start PostgreSQL"
outage_ms=$(($(now_ms) - stopped_ms))
echo "PostgreSQL was down ${outage_ms} ms; events backlog $before before, peak $during during the outage"
[ "$during" -gt "$before" ] || fail "the events backlog did not grow while PostgreSQL was down (peak $during)"

# The writer reconnects by itself and drains the backlog; keep sampling
# until the stream is empty (the peak may come after the restart, while
# the workload is still arriving).
drained_ms=
drain_deadline=$((SECONDS + 120))
while :; do
  sample
  if [ "$(backlog)" -eq 0 ] && ! alive "$produce_pid"; then
    drained_ms=$(($(now_ms) - stopped_ms))
    break
  fi
  [ "$SECONDS" -lt "$drain_deadline" ] || fail "the events backlog did not drain within 120 s (now $(backlog))"
  sleep "$SAMPLE_EVERY"
done
rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the workload (exit $rc): $(tail -n 5 "$WORK/produce.out")"
alive "$sched_pid" || fail "the scheduler died"
grep -q 'events held, retrying' "$WORK/sched.log" || fail "the history writer never reported holding events"
grep -q 'writing again after' "$WORK/sched.log" || fail "the history writer never reported writing again"
acked=$(wc -l <"$ACKED")

chaos_verify --expect succeeded --wait-s 200
echo "CHAOS FAULTS $TEST_NAME: PostgreSQL down ${outage_ms} ms under load, $acked tasks," \
  "$succeeded_during executions by the end of the outage, events backlog peak $peak" \
  "($samples samples), drained ${drained_ms} ms after the stop, ${SECONDS}s"
echo "1 passed, 0 failed"
