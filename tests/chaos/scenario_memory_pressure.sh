#!/usr/bin/env bash
# scenario_memory_pressure.sh: Redis close to its memory limit; ingest
# pauses instead of dropping or failing, and resumes once workers have made
# room (docs/guarantees.md guarantee 9: backpressure, never drops).
#
# Redis gets a small maxmemory (used memory at start + HEADROOM, set at
# runtime; the policy stays noeviction) and no worker runs at first, so the
# backlog builds in Redis until the memory Redis counts crosses the
# scheduler's pause mark (--memory-pause-fraction of maxmemory): it must say
# that ingest paused (log line and the baton_ingest_paused gauge), stop
# enqueueing while the rest of the workload waits in Kafka, and the memory
# Redis counts against maxmemory must never go over it (sampled every 50 ms
# for the whole scenario: going over would make Redis refuse writes,
# workers' too). That is used_memory less mem_not_counted_for_evict, the
# figure Redis and the scheduler compare with maxmemory: the AOF buffer,
# left out of it, can hold 0.5 MB for a moment (appendfsync always, one
# event-loop pass of scripts), and that alone takes used_memory past this
# small maxmemory with no write refused.
# Then workers start, with a short --retention-ms so that finished tasks
# leave Redis soon (history keeps them): memory falls, ingest resumes by
# itself, and the checker must find every acknowledged task succeeded. The
# scheduler has the same --retention-ms: a worker refuses to start with
# another value than the one the scheduler published (common/retention.h).
#
# Sizes: a 400-byte payload makes each task about 1.5 KB in Redis (1.8 KB
# while its event waits for the history writer), so the pause comes after
# about 1,200 tasks. The scheduler takes batches of at most BATCH messages
# and its history writer reads at most BATCH events at a time (a read sits
# in Redis's output buffer while it is sent, and counts in used_memory);
# the pause mark is at PAUSE_FRACTION, so what is left of maxmemory above
# it (about 1.3 MB) holds a batch accepted just below the mark, a history
# read and the workers' writes at once. The Kafka backlog (a few
# thousand messages of about 500 bytes) stays far under the embedded
# Kafka's 5 MiB per partition.

# shellcheck disable=SC2154 # sched_pid: set by chaos_scheduler
# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

TASKS=${CHAOS_TASKS:-4000}
HEADROOM=$((3 * 1024 * 1024)) # bytes of maxmemory above the memory in use at start
BATCH=200                     # the scheduler's --batch-size and --history-batch
PAUSE_FRACTION=0.7            # the scheduler's --memory-pause-fraction
RETENTION_MS=1000             # the scheduler's and the workers' --retention-ms
HOLD_S=2                      # paused ingest is watched this long with no worker
METRICS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

chaos_up
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# memory_counted: "COUNTED USED" bytes, what Redis compares with maxmemory
# and all of used_memory.
memory_counted() {
  rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { u = $2 }
    $1 == "mem_not_counted_for_evict" { n = $2 } END { print u - n, u }'
}
counted() { memory_counted | cut -d' ' -f1; }
tasks_in_redis() { rcli --scan --pattern "baton:{$QUEUE}:t:*" | wc -l; }
paused_gauge() {
  curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | sed -n 's/^baton_ingest_paused \([0-9.]*\)$/\1/p'
}

[ "$(rcli config get maxmemory-policy | tail -n 1)" = noeviction ] || fail "the stack's Redis may evict keys"
chaos_scheduler sched --batch-size "$BATCH" --history-batch "$BATCH" --retention-ms "$RETENTION_MS" \
  --memory-pause-fraction "$PAUSE_FRACTION" --metrics-port "$METRICS_PORT" --metrics-bind 127.0.0.1
wait_until 30 "the scheduler's metrics endpoint" paused_gauge
used_at_start=$(counted)
maxmemory=$((used_at_start + HEADROOM))
rcli config set maxmemory "$maxmemory" >/dev/null
echo "maxmemory $maxmemory bytes (used at start $used_at_start + $HEADROOM); policy noeviction"

# Memory through the whole scenario, one sample a line.
(while :; do memory_counted; sleep 0.05; done) >"$WORK/memory.samples" 2>/dev/null &
TEST_PIDS+=("$!")

pad=$(python3 -c 'print("x" * 400)')
chaos_produce "$TASKS" --payload "{\"pad\":\"$pad\"}" --id-prefix mem >"$WORK/produce.out" 2>&1 &
produce_pid=$!
TEST_PIDS+=("$produce_pid")

# No worker yet: the backlog builds until ingest pauses. The first pauses
# may be short: the history writer, deleting the events it copied, gives
# memory back, and ingest resumes. Once the events stream is empty and the
# memory counted is above the mark, nothing but a client buffer shrinking
# can give memory back (no task runs, none expires): the pause then holds, but
# for one more batch at most, let in if such a dip crosses the mark.
mark=$(python3 -c "print(int($maxmemory * $PAUSE_FRACTION))")
paused_in_log() { grep -q 'ingest paused' "$WORK/sched.log"; }
wait_until 90 "ingest to pause on memory" paused_in_log
steady_pause() {
  [ "$(paused_gauge)" = 1 ] && [ "$(rcli xlen "baton:{$QUEUE}:events")" -eq 0 ] &&
    [ "$(counted)" -gt "$mark" ]
}
wait_until 60 "a steady pause (baton_ingest_paused 1, history caught up, memory above the mark)" steady_pause
held=$(tasks_in_redis)
# An observation window, not a wait: while paused, nothing more comes in.
sleep "$HOLD_S"
alive "$sched_pid" || fail "the scheduler died while ingest was paused"
after_hold=$(tasks_in_redis)
[ "$after_hold" -le $((held + BATCH)) ] ||
  fail "tasks kept coming in while ingest was paused ($held, then $after_hold)"
[ "$(paused_gauge)" = 1 ] || fail "baton_ingest_paused went back to 0 with no worker running"
[ "$after_hold" -lt "$TASKS" ] || fail "every task got into Redis: the memory limit held nothing back"
echo "ingest paused with $after_hold tasks in Redis (the rest waits in Kafka);" \
  "memory $(counted) of $maxmemory, mark $mark"
held=$after_hold

# Workers make room: finished tasks leave Redis after RETENTION_MS.
chaos_worker w1 --concurrency 8 --retention-ms "$RETENTION_MS"
chaos_worker w2 --concurrency 8 --retention-ms "$RETENTION_MS"
resumed() { grep -q 'accepted after' "$WORK/sched.log"; }
wait_until 90 "ingest to resume once workers made room" resumed

rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the workload (exit $rc): $(tail -n 5 "$WORK/produce.out")"
acked=$(wc -l <"$ACKED")

chaos_verify --expect succeeded --wait-s 200
alive "$sched_pid" || fail "the scheduler died"
[ "$(paused_gauge)" = 0 ] || fail "baton_ingest_paused still reads 1 after everything was ingested"

# Memory never went over the limit; pause periods from the scheduler's log
# (a pause starts with the first "held" line and ends with "accepted after").
read -r peak used_peak samples < <(awk 'NF == 2 { n++; if ($1 > c) c = $1; if ($2 > u) u = $2 }
  END { print c + 0, u + 0, n + 0 }' "$WORK/memory.samples")
[ "$samples" -gt 0 ] || fail "no memory sample was taken"
[ "$peak" -le "$maxmemory" ] ||
  fail "memory counted against maxmemory reached $peak bytes, over maxmemory $maxmemory"
! grep -l 'OOM command not allowed' "$WORK"/*.log ||
  fail "Redis refused writes for memory (OOM) in the logs above: the pause came too late"
read -r pauses pause_ms < <(python3 - "$WORK/sched.log" <<'PY'
import datetime, json, sys
def ms(t):
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000
start, pauses, total = None, 0, 0
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("component") != "ingest":
        continue
    if "held, retrying" in e["msg"] and start is None:
        start = ms(e["time"])
    elif "accepted after" in e["msg"] and start is not None:
        pauses, total, start = pauses + 1, total + ms(e["time"]) - start, None
print(pauses, int(total))
PY
)
echo "CHAOS FAULTS $TEST_NAME: maxmemory $maxmemory bytes, $acked tasks, ingest paused $pauses" \
  "time(s) for ${pause_ms} ms in all with $held tasks held in Redis, counted memory peak $peak" \
  "(used_memory $used_peak with the AOF buffer; $samples samples), ${SECONDS}s"
echo "1 passed, 0 failed"
