#!/usr/bin/env bash
# scenario_redis_kill.sh: Redis killed with SIGKILL under load, twice, and
# restarted from its AOF; nothing acknowledged is lost (docs/guarantees.md
# guarantees 1 and 3).
#
# Two workers run the chaos handler while the checker publishes a few
# thousand tasks at a steady rate. Twice, once executions are flowing,
# Redis is killed with SIGKILL (not a clean stop: no final AOF flush, no
# goodbye to clients; its pid comes from the stack's record), stays down for
# DOWN_S seconds, and is started again by stack.sh on the same port from the
# same AOF. The scheduler and the workers are never restarted: they must
# notice, retry and reconnect by themselves (the scheduler holds its batch
# and its offsets while Redis is away). Then the checker must find every
# acknowledged task succeeded, every execution recorded as a claim, no
# stale write and a clean Redis; duplicates are allowed and counted. A kill
# between Redis writing a claim and the worker reading the reply leaves a
# claim nobody runs: it is reclaimed when its lease ends and runs once
# (claims > executions, reclaims > 0). A kill between a completion and its
# reply makes the worker send it again: that repeat must be taken as done,
# not refused as a stale write (no lease was lost: Redis was down for less
# than a lease), so the scenario requires no stale refusal at all.
#
# Durability: the stack's Redis runs with `appendfsync always`, so every
# write Redis acknowledged is in the kernel (and on disk) before the reply
# leaves; with `everysec` a write acknowledged while the once-a-second
# background fsync runs may still be in Redis's own buffer, and a SIGKILL
# then would lose it (docs/deploy.md, "Redis persistence").

# shellcheck disable=SC2154 # sched_pid, w1_pid, w2_pid: set by chaos_scheduler/chaos_worker
# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

TASKS=${CHAOS_TASKS:-4000}
RATE=200    # tasks/s: the workload takes about 20 s to publish
DOWN_S=2    # seconds Redis stays dead after each kill (the fault itself)
LEASE_MS=10000

chaos_up
[ "$(rcli config get appendonly | tail -n 1)" = yes ] || fail "the stack's Redis has no AOF"
fsync_policy=$(rcli config get appendfsync | tail -n 1)
chaos_scheduler sched --redis-timeout-ms 1000
chaos_worker w1 --concurrency 6 --lease-ms "$LEASE_MS" --redis-timeout-ms 1000
chaos_worker w2 --concurrency 6 --lease-ms "$LEASE_MS" --redis-timeout-ms 1000

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
executions() { wc -l <"$EXECUTIONS"; }
# gone PID: the process is gone or a zombie (Redis is not our child: after
# the stack's `up` exited, it was adopted by init, which reaps it).
gone() { ! alive "$1"; }

chaos_produce "$TASKS" --rate "$RATE" --id-prefix rk >"$WORK/produce.out" 2>&1 &
produce_pid=$!
TEST_PIDS+=("$produce_pid")

kills=0
down_total_ms=0
# kill_redis: SIGKILL the stack's Redis, keep it down DOWN_S s, start it
# again from its AOF.
kill_redis() {
  local pid keys_before keys_after killed_ms
  pid=$(cat "$BATON_STACK_DIR/redis.pid")
  { [ -n "$pid" ] && alive "$pid"; } || fail "no live Redis recorded in $BATON_STACK_DIR/redis.pid"
  keys_before=$(rcli dbsize)
  kill -KILL "$pid"
  killed_ms=$(now_ms)
  kills=$((kills + 1))
  wait_until 10 "Redis (pid $pid) to die" gone "$pid"
  ! rcli ping >/dev/null 2>&1 || fail "Redis still answers after SIGKILL"
  sleep "$DOWN_S" # the outage itself, not a wait for a condition
  alive "$sched_pid" || fail "the scheduler died while Redis was down"
  { alive "$w1_pid" && alive "$w2_pid"; } || fail "a worker died while Redis was down"
  "$STACK_SH" start redis --env-file "$OWN_STACK_ENV" >/dev/null || fail "stack.sh start redis failed"
  down_total_ms=$((down_total_ms + $(now_ms) - killed_ms))
  keys_after=$(rcli dbsize)
  echo "kill $kills: Redis pid $pid killed after $(executions) executions; $keys_before keys" \
    "before, $keys_after after the AOF reload; down $(($(now_ms) - killed_ms)) ms"
}

# First kill once executions flow, the second halfway through the workload:
# both land while tasks are being ingested, claimed and completed.
executions_over() { [ "$(executions)" -ge "$1" ]; }
wait_until 60 "the first executions" executions_over $((TASKS / 8))
kill_redis
wait_until 90 "executions to resume after the first kill" executions_over $((TASKS / 2))
kill_redis

rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the workload (exit $rc): $(tail -n 5 "$WORK/produce.out")"
acked=$(wc -l <"$ACKED")

chaos_verify --expect succeeded --wait-s 200
# The services recovered by themselves, and said so.
alive "$sched_pid" || fail "the scheduler died"
{ alive "$w1_pid" && alive "$w2_pid"; } || fail "a worker died"
grep -q 'Redis is back' "$WORK/sched.log" || fail "the scheduler's maintenance never reported Redis back"
grep -q 'claiming again after' "$WORK/w1.log" "$WORK/w2.log" || fail "no worker reported claiming again"
report_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$REPORT" "$1"; }
duplicates=$(report_field duplicate_executions)
reclaims=$(report_field reclaims)
stale=$(report_field stale_refusals)
[ "$stale" -eq 0 ] || fail "$stale outcomes refused as stale, though no lease ran out while Redis was down"
echo "CHAOS FAULTS $TEST_NAME: $kills SIGKILLs of Redis (appendfsync $fsync_policy), down" \
  "${down_total_ms} ms in all, $acked tasks, $duplicates duplicate executions, $reclaims" \
  "reclaims of claims whose reply was lost, $stale stale refusals, ${SECONDS}s"
echo "1 passed, 0 failed"
