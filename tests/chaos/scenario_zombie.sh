#!/usr/bin/env bash
# scenario_zombie.sh: a worker frozen past its lease comes back as a zombie
# and none of its writes land (docs/guarantees.md guarantee 3, fencing tokens).
#
#  1. worker A (--concurrency 4, --lease-ms 1000, chaos tasks that run 3 s)
#     is alone: it claims the FROZEN first tasks and starts all of them;
#  2. A is frozen with SIGSTOP: it renews nothing, its handlers (child
#     processes) run on and end meanwhile;
#  3. workers B and C (fast chaos tasks) start, and the rest of the workload
#     is published: maintenance reclaims A's tasks when their leases run out,
#     B or C runs them again (token 2) and finishes them, with the rest;
#  4. once A's handlers have all ended, A is thawed with SIGCONT: it tries to
#     write its successes (or first renews its leases) with token 1, and
#     every one is refused; then it claims new tasks like any worker, and
#     is stopped with SIGTERM (exit 0) before they end: its grace (2 s) runs
#     out and it hands them back, to run again on B or C (more duplicates);
#  5. the checker finds every task succeeded and no stale write in history;
#     its stale refusals (A's refused outcomes and renewals) come to at
#     least FROZEN (see below); the frozen tasks' history is
#     exactly submitted, claimed (A, 1), reclaimed (A, 1), claimed (B|C, 2),
#     succeeded (same, 2), and Redis shows the second owner's success;
#  6. no refusal was logged for any other task: the fast workers' leases
#     were never lost (a refusal there would be a false alarm).
#
# Replay: CHAOS_SEED=<seed printed below> (chooses the freeze's extra delay).

# shellcheck disable=SC2154 # a_pid: set by start_worker
# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

FROZEN=4
TASKS=${CHAOS_TASKS:-1500}
RATE=300
SEED=${CHAOS_SEED:-$RANDOM}
RANDOM=$SEED
# The freeze comes 0-500 ms after A started its last frozen task, well
# inside the 3 s each of them runs.
freeze_delay_ms=$((RANDOM % 501))
echo "seed $SEED: $FROZEN tasks frozen on A (${freeze_delay_ms} ms into them), $TASKS more on B and C"

# children_ended PID: every child process of PID has exited (a zombie that
# the stopped PID could not reap yet counts as ended).
children_ended() {
  local child
  for child in $(pgrep -P "$1"); do
    [ "$(ps -o stat= -p "$child" | cut -c1)" = Z ] || return 1
  done
}
# field ID FIELD: one field of a task hash.
field() { task_field "$QUEUE" "$1" "$2"; }
frozen_ids=()
for ((i = 1; i <= FROZEN; i++)); do frozen_ids+=("z-$i"); done
worker_a="a.$UNIQ"

chaos_up
chaos_scheduler sched
CHAOS_TASK_SLEEP=3 chaos_worker a --concurrency "$FROZEN" --lease-ms 1000 --grace-ms 2000

chaos_produce "$FROZEN" --max-attempts 5 --id-prefix z >"$WORK/produce-z.out" 2>&1 ||
  fail "could not publish the frozen tasks: $(tail -n 5 "$WORK/produce-z.out")"
# all_started_on_a: every frozen task runs on A and its handler started.
all_started_on_a() {
  local id
  for id in "${frozen_ids[@]}"; do
    [ "$(field "$id" state)" = running ] && [ "$(field "$id" worker)" = "$worker_a" ] || return 1
    grep -q "^$id 1\$" "$EXECUTIONS" || return 1
  done
}
wait_until 60 "A to start all $FROZEN frozen tasks" all_started_on_a
sleep "0.$(printf '%03d' "$freeze_delay_ms")"
kill -STOP "$a_pid"
for id in "${frozen_ids[@]}"; do
  [ "$(field "$id" state)" = running ] || fail "$id is $(field "$id" state) at the freeze, before its lease ran out"
done
echo "A frozen with $FROZEN running tasks"

chaos_worker b --concurrency 8 --lease-ms 1000
chaos_worker c --concurrency 8 --lease-ms 1000
chaos_produce "$TASKS" --rate "$RATE" --max-attempts 5 --id-prefix n >"$WORK/produce-n.out" 2>&1 &
produce_pid=$!
TEST_PIDS+=("$produce_pid")

# taken_over: every frozen task succeeded on another worker with token 2.
taken_over() {
  local id
  for id in "${frozen_ids[@]}"; do
    [ "$(field "$id" state)" = succeeded ] && [ "$(field "$id" token)" = 2 ] || return 1
    [ "$(field "$id" worker)" != "$worker_a" ] || return 1
  done
}
wait_until 60 "B or C to finish the frozen tasks" taken_over
wait_until 30 "A's frozen handlers to end" children_ended "$a_pid"
kill -CONT "$a_pid"
echo "A thawed after its handlers ended"

# refused_count: frozen tasks for which A logged a refusal.
refused_count() {
  grep -E 'outcome refused|lease renewal refused' "$WORK/a.log" |
    grep -oE '"task_id":"z-[0-9]+"' | sort -u | wc -l
}
a_refused_all() { [ "$(refused_count)" -eq "$FROZEN" ]; }
wait_until 30 "A to log a refusal for each frozen task" a_refused_all
kill -TERM "$a_pid"
wait_until 30 "A to exit after SIGTERM" exited "$a_pid"
rc=0
wait "$a_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "A exited with $rc after SIGTERM"
echo "A's refusals: $(grep -oE 'outcome refused|lease renewal refused' "$WORK/a.log" | sort | uniq -c | tr -s ' \n' ' ')"

rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the workload (exit $rc): $(tail -n 5 "$WORK/produce-n.out")"

chaos_verify --expect succeeded --wait-s 200
# Each frozen task was refused once, by one of two doors: the outcome
# write (complete.lua answers STALE: "outcome refused") or, when A's keeper
# ran first after the thaw, the lease renewal (renew.lua answers 0: "lease
# renewal refused", and A abandons the attempt without writing anything).
# Which comes first is a race between two of A's threads; both are stale
# refusals, counted by the worker and by the checker.
stale=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stale_refusals"])' "$REPORT")
renewals=$(grep -F 'lease renewal refused' "$WORK/a.log" | grep -cE '"task_id":"z-[0-9]+"' || true)
outcomes=$(cat "$WORK"/*.log | grep -cF 'outcome refused' || true)
[ "$stale" -eq $((outcomes + renewals)) ] ||
  fail "the checker counted $stale stale refusals, the logs have $outcomes refused outcomes and $renewals refused renewals"
[ "$stale" -ge "$FROZEN" ] || fail "$stale stale refusals for $FROZEN frozen tasks"

# The frozen tasks' history, from PostgreSQL (the writer has caught up).
psql "$BATON_PG_DSN" -Atc "SELECT task_id, seq, event, coalesce(worker_id, ''),
    coalesce(fencing_token::text, '') FROM baton.task_events
  WHERE queue = '$QUEUE' AND task_id LIKE 'z-%' ORDER BY task_id, seq" >"$WORK/frozen.history" ||
  fail "could not read the frozen tasks' history"
python3 - "$WORK/frozen.history" "$worker_a" "${frozen_ids[@]}" <<'PY' || fail "the frozen tasks' history is wrong"
import collections, sys
path, a, *ids = sys.argv[1:]
events = collections.defaultdict(list)
for line in open(path):
    tid, seq, event, worker, token = line.rstrip("\n").split("|")
    events[tid].append((event, worker, token))
bad = []
for tid in ids:
    got = events[tid]
    kinds = [e[0] for e in got]
    if kinds != ["submitted", "claimed", "reclaimed", "claimed", "succeeded"]:
        bad.append(f"{tid}: events {got}")
        continue
    _, claim_a, reclaim, claim_b, done = got
    if claim_a[1:] != (a, "1") or reclaim[1:] != (a, "1"):
        bad.append(f"{tid}: first claim {claim_a}, reclaim {reclaim}")
    if claim_b[1] == a or claim_b[2] != "2" or done[1:] != claim_b[1:]:
        bad.append(f"{tid}: second claim {claim_b}, success {done}")
for line in bad:
    print(line)
sys.exit(1 if bad else 0)
PY
for id in "${frozen_ids[@]}"; do
  if [ "$(field "$id" state)" != succeeded ] || [ "$(field "$id" token)" != 2 ] ||
    [ "$(field "$id" worker)" = "$worker_a" ]; then
    fail "$id in Redis is not the second owner's success"
  fi
done
# Refusals belong to the frozen tasks only.
others=$(cat "$WORK"/*.log | grep -E 'outcome refused|lease renewal refused' |
  grep -vcE '"task_id":"z-[0-9]+"' || true)
[ "$others" -eq 0 ] || fail "$others refusals logged for tasks that were never frozen"

echo "CHAOS FAULTS $TEST_NAME: seed $SEED, 1 SIGSTOP/SIGCONT of a worker holding $FROZEN tasks, $(wc -l <"$ACKED") tasks, $stale stale refusals + $renewals refused renewals, ${SECONDS}s"
echo "1 passed, 0 failed"
