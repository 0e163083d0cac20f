#!/usr/bin/env bash
# scenario_poison.sh: a poison task that kills every worker running it ends
# `dead` after max_attempts, and the fleet around it keeps working
# (docs/guarantees.md guarantees 1 and 7: reclaims count attempts).
#
# Three workers (--concurrency 4, --lease-ms 1000) serve two queues: the
# chaos workload ($QUEUE, a few thousand tasks at a steady rate,
# max_attempts 10) and a queue of its own for one `crash` task
# (max_attempts 3; the built-in crash handler SIGKILLs its worker),
# published at a random instant once the workload flows. A supervisor loop
# in the test starts a new worker whenever one exits. Each worker that
# claims the poison task dies; maintenance reclaims it when the lease runs
# out (attempt 1, 2: back to queued; attempt 3: dead), together with the
# chaos tasks the dead worker held, which run again elsewhere. Then:
#  - exactly 3 worker deaths, each by SIGKILL while running the poison task
#    (attempts 1, 2 and 3 once each): no crash loop, no other death;
#  - the checker finds the poison task dead (its own queue and acked file)
#    and every chaos task succeeded, with every execution claimed in
#    history, no stale write, a clean Redis.
#
# Replay: CHAOS_SEED=<seed printed below> (chooses when the poison comes).

# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

TASKS=${CHAOS_TASKS:-2000}
RATE=150
WORKERS=3
POISON_ATTEMPTS=3
POISON_Q="$QUEUE.poison"
POISON_ID=poison-1
POISON_ACKED="$WORK/acked.poison"
SEED=${CHAOS_SEED:-$RANDOM}
RANDOM=$SEED
poison_after_ms=$((500 + RANDOM % 3001))
echo "seed $SEED: $TASKS chaos tasks at $RATE/s, a crash task (max_attempts $POISON_ATTEMPTS) ${poison_after_ms} ms into them, $WORKERS supervised workers"


chaos_up
: >"$POISON_ACKED"
chaos_scheduler sched

slot_names=()
slot_pids=()
started=0
# spawn SLOT: a new worker in SLOT, serving both queues.
spawn() {
  started=$((started + 1))
  local name="w$started" pid_var="w${started}_pid"
  start_worker "$name" --queues "$QUEUE,$POISON_Q" --command "chaos=$WORK/chaos-handler.sh" \
    --concurrency 4 --lease-ms 1000
  slot_names[$1]=$name
  slot_pids[$1]=${!pid_var}
}
for ((s = 0; s < WORKERS; s++)); do spawn "$s"; done

deaths=()
# supervise: reaps every worker that exited, notes its name and status,
# and starts a replacement in its slot.
supervise() {
  local s rc
  for ((s = 0; s < WORKERS; s++)); do
    exited "${slot_pids[$s]}" || continue
    rc=0
    wait "${slot_pids[$s]}" 2>/dev/null || rc=$?
    deaths+=("${slot_names[$s]}:$rc")
    echo "death ${#deaths[@]}: ${slot_names[$s]} (pid ${slot_pids[$s]}) exited with status $rc"
    spawn "$s"
  done
}

chaos_produce "$TASKS" --rate "$RATE" --max-attempts 10 --id-prefix k >"$WORK/produce.out" 2>&1 &
produce_pid=$!
TEST_PIDS+=("$produce_pid")
has_executions() { [ -s "$EXECUTIONS" ]; }
wait_until 60 "the first executions" has_executions
sleep "$(printf '%d.%03d' $((poison_after_ms / 1000)) $((poison_after_ms % 1000)))"
"$CHECK" produce --kafka-brokers "$BATON_KAFKA_BROKERS" --queue "$POISON_Q" --type crash \
  --count 1 --max-attempts "$POISON_ATTEMPTS" --id-prefix poison --acked "$POISON_ACKED" \
  >"$WORK/produce-poison.out" 2>&1 || fail "could not publish the poison task: $(cat "$WORK/produce-poison.out")"
echo "poison task published"

poison_state() { rcli hget "baton:{$POISON_Q}:t:$POISON_ID" state; }
deadline=$((SECONDS + 120))
until [ "$(poison_state)" = dead ] && exited "$produce_pid"; do
  [ "$SECONDS" -lt "$deadline" ] || fail "timed out: poison task $(poison_state), ${#deaths[@]} deaths"
  supervise
  sleep 0.05
done
supervise # a death noticed late
rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the workload (exit $rc): $(tail -n 5 "$WORK/produce.out")"
echo "poison task dead; ${#deaths[@]} worker deaths; $(wc -l <"$ACKED") chaos tasks published"

# Exactly POISON_ATTEMPTS deaths, each a SIGKILL (status 137) of a worker
# that was running the poison task, one per attempt.
[ "${#deaths[@]}" -eq "$POISON_ATTEMPTS" ] ||
  fail "expected $POISON_ATTEMPTS worker deaths, got ${#deaths[@]}: ${deaths[*]}"
attempts_seen=()
for death in "${deaths[@]}"; do
  name=${death%%:*}
  status=${death##*:}
  [ "$status" -eq 137 ] || fail "worker $name exited with status $status, not by SIGKILL"
  attempt=$(grep -F "\"task_id\":\"$POISON_ID\"" "$WORK/$name.log" |
    grep -oE 'running crash \(attempt [0-9]+\)' | grep -oE '[0-9]+' | tail -1 || true)
  [ -n "$attempt" ] || fail "worker $name died without running the poison task"
  attempts_seen+=("$attempt")
done
[ "$(printf '%s\n' "${attempts_seen[@]}" | sort -n | tr '\n' ' ')" = "1 2 3 " ] ||
  fail "the deaths ran poison attempts ${attempts_seen[*]}, expected 1 2 3"
[ "$(rcli hget "baton:{$POISON_Q}:t:$POISON_ID" attempt)" = "$POISON_ATTEMPTS" ] ||
  fail "the poison task is dead at attempt $(rcli hget "baton:{$POISON_Q}:t:$POISON_ID" attempt)"

chaos_verify --expect succeeded --wait-s 200
duplicates=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duplicate_executions"])' "$REPORT")
: >"$WORK/executions.none" # the crash handler records nothing
QUEUE=$POISON_Q ACKED=$POISON_ACKED REPORT="$WORK/report.poison.json" \
  EXECUTIONS="$WORK/executions.none" chaos_verify --expect dead --wait-s 60

# The poison task's history: three claims, two reclaims back to queued,
# then dead by reclaim.
psql "$BATON_PG_DSN" -Atc "SELECT event || ':' || to_state || ':' || attempt FROM baton.task_events
  WHERE queue = '$POISON_Q' AND task_id = '$POISON_ID' ORDER BY seq" | tr '\n' ' ' >"$WORK/poison.history" ||
  fail "could not read the poison task's history"
expected="submitted:queued:0 claimed:running:1 reclaimed:queued:1 claimed:running:2 reclaimed:queued:2 claimed:running:3 dead:dead:3 "
[ "$(cat "$WORK/poison.history")" = "$expected" ] ||
  fail "the poison task's history is '$(cat "$WORK/poison.history")', expected '$expected'"

echo "CHAOS FAULTS $TEST_NAME: seed $SEED, 1 poison task killing $POISON_ATTEMPTS workers (all restarted), $(wc -l <"$ACKED") chaos tasks, $duplicates duplicate executions, ${SECONDS}s"
echo "1 passed, 0 failed"
