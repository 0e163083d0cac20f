#!/usr/bin/env bash
# scenario_clock_skew.sh: workers whose clocks are 5 minutes fast and 5
# minutes slow change nothing (docs/guarantees.md guarantee 5: time comes from Redis
# TIME inside scripts, never from a client clock; guarantee 7: leases).
#
# Both workers run under libfaketime (FAKETIME=+5m and FAKETIME=-5m, the
# library preloaded directly rather than through the `faketime` wrapper,
# which forks, so that the pid this test holds is the worker's own). The
# scheduler and Redis keep the true time. The test first proves the skew
# is in effect: each worker's registry entry carries its start time from
# its own clock (started_ms) next to its last heartbeat from Redis TIME
# (heartbeat_ms). Then three workloads run at once:
#   - "long" tasks that run 4 s with a 1.5 s lease (--lease-ms), so each
#     attempt lives through several renewals (every lease/3), and an 8 s
#     timeout: a skewed clock that made a worker renew late, or Redis
#     judge a lease by a client's clock, would show as `reclaimed` events,
#     duplicate executions or retries;
#   - delayed tasks (delay_ms 3-8 s, sent with baton-submit): a worker
#     5 minutes fast would take them at once if anything compared a due
#     time with its clock; history must show every claim at or after the
#     due time Redis computed at enqueue, which must be exactly the
#     submission time + delay_ms;
#   - a stream of short chaos tasks, the ordinary load.
# The checker must then find everything succeeded with no duplicate, no
# reclaim, no retry and no stale write.
#
# libfaketime and CLOCK_MONOTONIC: by default libfaketime fakes the
# monotonic clock too (with an offset spec it reads as the faked wall
# clock, steady, so intervals stay right) and converts the deadlines of
# pthread_cond_timedwait on a CLOCK_MONOTONIC condition variable, which the
# worker's timed waits use (common/timeutil.c). With
# FAKETIME_DONT_FAKE_MONOTONIC=1, libfaketime 0.9.10 still shifts those
# deadlines, so every timed wait returns at once (measured for +5m and
# -5m): the worker's waits would spin; this test keeps the default.
# FAKETIME_NO_CACHE is not needed: the offset is fixed for the whole run.
# The scheduler keeps the true clock: under libfaketime, librdkafka's waits
# (C11 cnd_timedwait, which glibc sends straight to its internal
# pthread_cond_timedwait, past the preloaded wrapper) get deadlines from the
# faked clock and wait 5 minutes too long (+5m; measured: ingest consumed
# nothing for minutes) or not at all (-5m). That is the tool, not baton: a
# real skew moves the kernel's clock and the deadlines together, and every
# decision the scheduler takes on time is Redis TIME in a script anyway.
#
# libfaketime 0.9.10 and AddressSanitizer: ASan's allocator reads
# CLOCK_MONOTONIC (to time its release of memory to the OS) with the
# allocator lock of a size class held, and that call lands in libfaketime.
# When it comes before libfaketime's constructor has run (a library
# constructor such as gnutls's allocates first), libfaketime initialises
# inside the allocator, allocates, and the process deadlocks before main()
# with "libfaketime: Unexpected recursive calls to clock_gettime()" as its
# only output. Whether it happens depends on the binary's path (measured:
# the ASan worker copied under 80 directories of different name lengths hung
# in 71), so it hit CI's checkout and not the development one.
# allocator_release_to_os_interval_ms=-1 turns that timing off, and the
# allocator then never reads the clock (0 hangs in the same 80); the option
# means nothing to the gcc build, which has no ASan.
#
# libfaketime keeps a semaphore and a shared-memory object per process in
# /dev/shm, removed by its destructor at a normal exit: the workers are
# stopped with SIGTERM at the end, and the objects of a worker the test had
# to kill are removed by the test (cleanup_clock_skew).

# shellcheck disable=SC2154 # fast_pid, slow_pid: set by start_worker
# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

SHORT=${CHAOS_TASKS:-1000}
SHORT_RATE=100   # short tasks/s: about 10 s of publishing
LONG=24          # long tasks...
LONG_SLEEP=4     # ...that run this many seconds
LEASE_MS=1500
LONG_TIMEOUT_MS=8000
CONCURRENCY=16   # per worker: the long tasks leave slots free, so delayed
                 # tasks are claimed as soon as they are due
DELAYED=200      # delayed tasks, delay_ms from 3000 to 8000
SKEW_MS=300000   # 5 minutes
FAKETIME_LIB=
for lib in /usr/lib/*/faketime/libfaketimeMT.so.1; do [ -e "$lib" ] && FAKETIME_LIB=$lib; done
[ -n "$FAKETIME_LIB" ] || fail "libfaketime is not installed (dev/install-deps.sh installs faketime)"

chaos_up
cat >"$WORK/long-handler.sh" <<SH
#!/bin/sh
# The long handler: records that this attempt started, then outlives a lease.
echo "\$BATON_TASK_ID \$BATON_TASK_TOKEN" >>"\$CHAOS_EXECUTIONS"
exec sleep $LONG_SLEEP
SH
chmod +x "$WORK/long-handler.sh"
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
psql_q() { psql "$BATON_PG_DSN" -qAtc "$1"; }
report_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$REPORT" "$1"; }

# skewed_worker NAME OFFSET: a worker on $QUEUE whose process clock is
# OFFSET (FAKETIME syntax) off the true time; its handlers get the same
# skew through --command-env (they inherit no other variable).
SKEWED_PIDS=()
skewed_worker() {
  local name=$1 offset=$2 pid_var
  LD_PRELOAD=$FAKETIME_LIB FAKETIME=$offset \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_release_to_os_interval_ms=-1" \
    start_worker "$name" --queues "$QUEUE" \
    --command "chaos=$WORK/chaos-handler.sh" --command "long=$WORK/long-handler.sh" \
    --concurrency "$CONCURRENCY" --lease-ms "$LEASE_MS" \
    --command-env 'CHAOS_*,LD_PRELOAD,FAKETIME'
  pid_var=${name}_pid
  SKEWED_PIDS+=("${!pid_var}")
}

# cleanup_clock_skew: the stack's cleanup (which SIGKILLs what is left),
# then the /dev/shm objects libfaketime made for the skewed workers it had
# to kill. Only those: a worker that exited normally removed its own, and
# its pid, reaped, may belong to another run's worker by now.
cleanup_clock_skew() {
  local pid killed=()
  for pid in "${SKEWED_PIDS[@]}"; do
    exited "$pid" || killed+=("$pid")
  done
  cleanup_own_stack
  for pid in "${killed[@]}"; do
    rm -f "/dev/shm/faketime_shm_$pid" "/dev/shm/sem.faketime_sem_$pid"
  done
}

trap cleanup_clock_skew EXIT
chaos_scheduler sched
skewed_worker fast '+5m'
skewed_worker slow '-5m'

# The skew is real: started_ms (the worker's clock) vs heartbeat_ms (Redis).
registered() { [ "$(rcli exists "baton:worker:$1.$UNIQ")" -eq 1 ]; }
skews=()
for spec in fast:1 slow:-1; do
  name=${spec%%:*}
  sign=${spec#*:}
  wait_until 30 "worker $name in the registry" registered "$name"
  mapfile -t times < <(rcli hmget "baton:worker:$name.$UNIQ" started_ms heartbeat_ms)
  skew=$((times[0] - times[1]))
  want=$((sign * SKEW_MS))
  # The first heartbeat follows the start by a moment: allow 10 s.
  { [ "$skew" -gt $((want - 10000)) ] && [ "$skew" -lt $((want + 10000)) ]; } ||
    fail "worker $name: its clock is ${skew} ms off Redis's, expected about $want (libfaketime not in effect?)"
  skews+=("$name ${skew} ms")
done
echo "worker clocks against Redis TIME: ${skews[*]}"

# Delayed tasks first (their wait is the longest), then the long and the
# short ones, all at once.
python3 - "$DELAYED" "$QUEUE" >"$WORK/delayed.jsonl" <<'PY'
import json, sys
count, queue = int(sys.argv[1]), sys.argv[2]
for n in range(1, count + 1):
    delay = 3000 + (n * 5000) // count  # 3 s .. 8 s
    print(json.dumps({"id": "delay-%d" % n, "type": "chaos", "queue": queue, "delay_ms": delay}))
PY
"$BATON_BIN_DIR/producer/baton-submit" --kafka-brokers "$BATON_KAFKA_BROKERS" \
  --file "$WORK/delayed.jsonl" >"$WORK/delayed.ids" 2>"$WORK/delayed.err" ||
  fail "baton-submit could not publish the delayed tasks: $(tail -n 3 "$WORK/delayed.err")"
[ "$(wc -l <"$WORK/delayed.ids")" -eq "$DELAYED" ] || fail "baton-submit acknowledged $(wc -l <"$WORK/delayed.ids") of $DELAYED delayed tasks"
cat "$WORK/delayed.ids" >>"$ACKED"

"$CHECK" produce --kafka-brokers "$BATON_KAFKA_BROKERS" --queue "$QUEUE" --type long \
  --count "$LONG" --timeout-ms "$LONG_TIMEOUT_MS" --id-prefix long --acked "$WORK/acked.long" \
  >"$WORK/produce-long.out" 2>&1 || fail "the checker could not publish the long tasks: $(tail -n 3 "$WORK/produce-long.out")"
chaos_produce "$SHORT" --rate "$SHORT_RATE" --id-prefix short >"$WORK/produce.out" 2>&1 ||
  fail "the checker could not publish the short tasks: $(tail -n 5 "$WORK/produce.out")"
cat "$WORK/acked.long" >>"$ACKED"
acked=$(wc -l <"$ACKED")

chaos_verify --expect succeeded --wait-s 200
{ alive "$fast_pid" && alive "$slow_pid"; } || fail "a skewed worker died"
duplicates=$(report_field duplicate_executions)
reclaims=$(report_field reclaims)
retries=$(report_field tasks_with_retries)
[ "$duplicates" -eq 0 ] || fail "$duplicates duplicate executions under clock skew"
[ "$reclaims" -eq 0 ] || fail "$reclaims leases reclaimed under clock skew"
[ "$retries" -eq 0 ] || fail "$retries tasks were retried under clock skew (a timeout fired early?)"
reclaimed_events=$(psql_q "SELECT count(*) FROM baton.task_events WHERE queue = '$QUEUE' AND event IN ('reclaimed', 'failed', 'dead')")
[ "$reclaimed_events" -eq 0 ] || fail "$reclaimed_events reclaimed/failed/dead events in history"
! grep -q 'lease renewal refused\|lease lost' "$WORK/fast.log" "$WORK/slow.log" ||
  fail "a skewed worker lost a lease: $(grep -h 'lease renewal refused\|lease lost' "$WORK/fast.log" "$WORK/slow.log" | head -n 3)"

# No early start: per delayed task, Redis's due time (the `submitted`
# event's detail) is submission + delay_ms, and its claim comes after it.
psql_q "SELECT s.task_id,
               round(extract(epoch FROM s.at) * 1000)::bigint,
               (s.detail->>'due')::bigint,
               round(extract(epoch FROM c.at) * 1000)::bigint,
               c.worker_id
          FROM baton.task_events s
          JOIN baton.task_events c ON c.queue = s.queue AND c.task_id = s.task_id
                                  AND c.event = 'claimed'
         WHERE s.queue = '$QUEUE' AND s.event = 'submitted' AND s.task_id LIKE 'delay-%'" \
  >"$WORK/delayed.history"
read -r early_min early_max by_fast by_slow < <(python3 - "$WORK/delayed.jsonl" "$WORK/delayed.history" <<'PY'
import json, sys
want = {}
for line in open(sys.argv[1]):
    t = json.loads(line)
    want[t["id"]] = t["delay_ms"]
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[2]) if l.strip()]
problems, margins, workers = [], [], {"fast": 0, "slow": 0}
seen = set()
for task_id, submitted, due, claimed, worker in rows:
    submitted, due, claimed = int(submitted), int(due), int(claimed)
    seen.add(task_id)
    if due - submitted != want[task_id]:
        problems.append("%s: due %d ms after submission, delay_ms %d" % (task_id, due - submitted, want[task_id]))
    if claimed < due:
        problems.append("%s: claimed %d ms before its due time (worker %s)" % (task_id, due - claimed, worker))
    margins.append(claimed - due)
    workers[worker.split(".")[0]] = workers.get(worker.split(".")[0], 0) + 1
if set(want) - seen:
    problems.append("%d delayed tasks without a submitted and a claimed event" % len(set(want) - seen))
if len(rows) != len(want):
    problems.append("%d claims for %d delayed tasks" % (len(rows), len(want)))
if problems:
    sys.stderr.write("\n".join(problems[:20]) + "\n")
    sys.exit(1)
print(min(margins), max(margins), workers["fast"], workers["slow"])
PY
) || fail "a delayed task started early (see above)"
# A graceful stop (SIGTERM), so that libfaketime's destructor runs.
for pid in "${SKEWED_PIDS[@]}"; do stop_pid "$pid"; done
echo "delayed tasks: every claim at or after its due time (claimed $early_min to $early_max ms after it;" \
  "$by_fast by the fast worker, $by_slow by the slow one)"
echo "CHAOS FAULTS $TEST_NAME: 2 workers skewed ${skews[*]}, $acked tasks ($LONG of ${LONG_SLEEP} s" \
  "with a ${LEASE_MS} ms lease, $DELAYED delayed 3-8 s), $duplicates duplicates, $reclaims reclaims," \
  "claims $early_min-$early_max ms after due, ${SECONDS}s"
echo "1 passed, 0 failed"
