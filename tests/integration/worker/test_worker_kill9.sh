#!/usr/bin/env bash
# test_worker_kill9.sh: a worker killed with SIGKILL while it runs tasks
# loses none of them (docs/guarantees.md guarantees 1 and 7).
#
# Worker A (--concurrency 4, --lease-ms 1000) claims 4 `sleep` tasks of
# 2000 ms; once all 4 are running on A it gets SIGKILL: it writes nothing
# more, its leases stop being renewed. Worker B is started at once. When the
# leases expire, maintenance reclaims the 4 tasks (event "reclaimed" naming
# A and token 1, back to queued) and B claims and runs them: all 4 end
# succeeded on B with attempt 2 and token 2, nothing dead, failed or left
# in the ready or running sets, and no task was made twice.

# shellcheck disable=SC2154 # a_pid, b_pid: set by start_worker
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
worker_a="a.$UNIQ"
worker_b="b.$UNIQ"
ids=(k1 k2 k3 k4)

# on_worker WORKER STATE: all 4 tasks are in STATE with worker WORKER.
on_worker() {
  local id
  for id in "${ids[@]}"; do
    [ "$(task_field "$queue" "$id" state)" = "$2" ] || return 1
    [ "$(task_field "$queue" "$id" worker)" = "$1" ] || return 1
  done
}

create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ" \
  --maintenance-interval-ms 20
start_worker a --queues "$queue" --concurrency 4 --lease-ms 1000

for id in "${ids[@]}"; do
  echo "{\"id\":\"$id\",\"type\":\"sleep\",\"queue\":\"$queue\",\"payload\":2000,\"timeout_ms\":60000,\"max_attempts\":3}"
done | produce "$topic" -k "$queue"

wait_until 60 "all 4 tasks to run on worker A" on_worker "$worker_a" running
# SIGKILL cannot be caught: the wait returns at once. (Its stderr is the
# shell's "Killed" job notice.)
{
  kill -KILL "$a_pid"
  wait "$a_pid"
} 2>/dev/null || true
# A died mid-attempt: nothing was finished.
[ "$(count_state "$queue" succeeded)" -eq 0 ] || fail "a task finished on A before the kill"

start_worker b --queues "$queue" --concurrency 4 --lease-ms 5000
wait_until 30 "all 4 tasks to succeed on worker B" on_worker "$worker_b" succeeded

[ "$(task_count "$queue")" -eq 4 ] || fail "expected 4 task hashes, found $(task_count "$queue")"
[ "$(rcli zcard "baton:{$queue}:running")" -eq 0 ] || fail "the running set is not empty"
[ "$(rcli zcard "baton:{$queue}:ready")" -eq 0 ] || fail "the ready queue is not empty"
[ "$(rcli zcard "baton:{$queue}:dead")" -eq 0 ] || fail "the dead set is not empty"

events "$queue" >"$WORK/events"
python3 - "$WORK/events" "$worker_a" "$worker_b" "${ids[@]}" <<'PY' || fail "the history of the reclaimed tasks is wrong"
import json, sys
path, a, b, *ids = sys.argv[1:]
events = [json.loads(l) for l in open(path)]
bad = []
for tid in ids:
    mine = [e for e in events if e["id"] == tid]
    kinds = [e["event"] for e in mine]
    if kinds != ["submitted", "claimed", "reclaimed", "claimed", "succeeded"]:
        bad.append(f"{tid}: events {kinds}")
        continue
    claim_a, reclaim, claim_b, done = mine[1:]
    if (claim_a["worker"], claim_a["token"], claim_a["attempt"]) != (a, "1", "1"):
        bad.append(f"{tid}: first claim {claim_a}")
    if (reclaim["worker"], reclaim["token"], reclaim["to"]) != (a, "1", "queued"):
        bad.append(f"{tid}: reclaim {reclaim}")
    if (claim_b["worker"], claim_b["token"], claim_b["attempt"]) != (b, "2", "2"):
        bad.append(f"{tid}: second claim {claim_b}")
    if (done["worker"], done["token"], done["attempt"]) != (b, "2", "2"):
        bad.append(f"{tid}: success {done}")
    # Reclaimed only after the lease (1000 ms) ran out, and not much later.
    late = int(reclaim["at"]) - int(claim_a["at"])
    if late < 1000:
        bad.append(f"{tid}: reclaimed {late} ms after the claim, before the lease ran out")
for line in bad:
    print(line)
sys.exit(1 if bad else 0)
PY
for id in "${ids[@]}"; do
  [ "$(task_field "$queue" "$id" attempt)" = 2 ] || fail "$id: attempt is not 2"
  [ "$(task_field "$queue" "$id" token)" = 2 ] || fail "$id: token is not 2"
done

kill -TERM "$b_pid"
wait_until 20 "worker B to exit after SIGTERM" exited "$b_pid"
rc=0
wait "$b_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "worker B exited with $rc"
echo "1 passed, 0 failed"
