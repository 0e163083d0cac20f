# chaos_lib.sh - helpers for the fault-injection scenarios (sourced).
#
# Every scenario brings up a stack of its own (it breaks servers on
# purpose), applies the migrations, runs schedulers with the history writer
# on and workers whose `chaos` handler records each execution it starts,
# publishes a bounded workload with the checker (tests/checker, which
# records the ids the brokers acknowledged), injects its fault, and ends
# with `chaos_verify`: the checker waits for every acknowledged task to
# finish and for history to catch up, then checks invariants I1-I4
# (docs/reliability.md) and prints its figures.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

CHECK="$BATON_BIN_DIR/tests/checker/baton-check"
QUEUE="chaos.$UNIQ"
ACKED="$WORK/acked"           # ids acknowledged by the brokers, one a line
EXECUTIONS="$WORK/executions" # one line per handler start: "<id> <token>"
REPORT="$WORK/report.json"
export CHAOS_EXECUTIONS=$EXECUTIONS
export CHAOS_TASK_SLEEP=${CHAOS_TASK_SLEEP:-0.02} # seconds a chaos task runs
# Command handlers get only an allowlisted environment: every worker a
# scenario starts passes the CHAOS_* variables on to its handlers.
export BATON_COMMAND_ENV='CHAOS_*'

# chaos_up: the scenario's own stack, migrated; schedulers write history.
chaos_up() {
  use_own_stack
  "$BATON_BIN_DIR/ctl/batonctl" --pg-dsn "$BATON_PG_DSN" migrate >/dev/null ||
    fail "migrations failed on the scenario's stack"
  SCHEDULER_HISTORY=true
  : >"$ACKED"
  : >"$EXECUTIONS"
  cat >"$WORK/chaos-handler.sh" <<'SH'
#!/bin/sh
# The chaos handler: records that this attempt started, then works a while.
echo "$BATON_TASK_ID $BATON_TASK_TOKEN" >>"$CHAOS_EXECUTIONS"
exec sleep "$CHAOS_TASK_SLEEP"
SH
  chmod +x "$WORK/chaos-handler.sh"
}

# enqueued: tasks ingest has made ready in $QUEUE so far (the queue's
# insertion counter); grew_past N: more than N.
enqueued() { local n; n=$(rcli get "baton:{$QUEUE}:seq"); echo "${n:-0}"; }
grew_past() { [ "$(enqueued)" -gt "$1" ]; }

# chaos_scheduler NAME [ARGS...]: a scheduler with history on, on the
# stack's default topic (baton.tasks, 16 partitions).
chaos_scheduler() {
  local name=$1
  shift
  start_scheduler "$name" --group-id "g.$UNIQ" "$@"
}

# chaos_worker NAME [ARGS...]: a worker on $QUEUE running the chaos handler.
chaos_worker() {
  local name=$1
  shift
  start_worker "$name" --queues "$QUEUE" --command "chaos=$WORK/chaos-handler.sh" "$@"
}

# chaos_produce COUNT [ARGS...]: publishes COUNT chaos tasks to $QUEUE and
# appends the acknowledged ids to $ACKED (extra ARGS go to the checker's
# produce, e.g. --rate 500 --id-prefix p2).
chaos_produce() {
  local count=$1
  shift
  "$CHECK" produce --kafka-brokers "$BATON_KAFKA_BROKERS" --queue "$QUEUE" --type chaos \
    --count "$count" --acked "$ACKED" "$@"
}

# chaos_verify [ARGS...]: runs the checker over $QUEUE (extra ARGS go to
# verify, e.g. --expect dead or --wait-s 200); fails the test on any
# violation. Prints the report, one JSON line tagged with the test's name,
# which docs/reliability.md quotes.
chaos_verify() {
  local logs=() log
  for log in "$WORK"/*.log; do
    [ -f "$log" ] && logs+=(--worker-log "$log")
  done
  if ! "$CHECK" verify --redis-url "$BATON_REDIS_URL" --pg-dsn "$BATON_PG_DSN" --queue "$QUEUE" \
    --acked "$ACKED" --executions "$EXECUTIONS" --report "$REPORT" "${logs[@]}" "$@"; then
    chaos_history_state >&2
    fail "the checker found violations (report: $(cat "$REPORT" 2>/dev/null))"
  fi
  echo "CHAOS REPORT $TEST_NAME: $(cat "$REPORT")"
  chaos_history_takeovers
}

# chaos_history_takeovers: how often the history writers took over stream
# entries (scheduler/history.c, take_over; an entry holds one script call's
# events): left pending by a writer that died or lost a connection
# (XAUTOCLAIM), and lost by the consumer group (orphans.lua: delivered, yet
# in no pending list). Lost entries are written all the same, so the
# checker passes; the line keeps them in sight, since no scenario is known
# to cause them.
chaos_history_takeovers() {
  echo "CHAOS HISTORY $TEST_NAME: $(logged_sum 'took over [0-9]* entries left pending' 3) entries" \
    "taken over from pending lists, $(logged_sum '[0-9]* entries of [^ ]* were in no pending list' 1)" \
    "entries the consumer group had lost"
}

# logged_sum REGEX FIELD: the sum of word FIELD of every match of REGEX in
# the scenario's logs (0 without any; grep finding nothing must not end the
# script under errexit and pipefail).
logged_sum() {
  { grep -ho "$1" "$WORK"/*.log 2>/dev/null || true; } | awk -v f="$2" '{s += $f} END {print s + 0}'
}

# chaos_history_state: where the history writer stands on $QUEUE's events
# stream, printed when the checker fails, so that a backlog that never
# drains can be told apart after the stack is gone: the consumer group
# (last delivered id, pending count), the pending entries, and the entries
# still in the stream (the backlog) with their task id, seq and event.
chaos_history_state() {
  local stream="baton:{$QUEUE}:events"
  echo "--- history writer state on $stream (XLEN $(rcli xlen "$stream" 2>&1))"
  echo "groups: $(rcli xinfo groups "$stream" 2>&1 | tr '\n' ' ')"
  echo "pending (id, consumer, idle ms, deliveries): $(rcli xpending "$stream" baton-history - + 20 2>&1 | tr '\n' ' ')"
  # sed, not head: an early-exiting reader would SIGPIPE events() under pipefail.
  events "$QUEUE" | sed -n '1,20{s/^/left in the stream: /;s/\(.\{400\}\).*/\1.../;p}'
}

# chaos_one_task_per_id: exactly one task per acknowledged id (guarantee 2),
# in Redis (one hash per id and nothing else) and in history (one row and
# one `submitted` event per id): a replay after a kill or a rebalance must
# find the id and enqueue nothing.
chaos_one_task_per_id() {
  local acked hashes rows
  acked=$(wc -l <"$ACKED")
  hashes=$(task_count "$QUEUE")
  [ "$hashes" -eq "$acked" ] || fail "the queue holds $hashes task hashes for $acked acknowledged ids"
  sort -u "$ACKED" >"$WORK/acked.sorted"
  [ "$(wc -l <"$WORK/acked.sorted")" -eq "$acked" ] || fail "the checker acknowledged an id twice"
  psql "$BATON_PG_DSN" -Atc "SELECT task_id, count(*) FROM baton.task_events
    WHERE queue = '$QUEUE' AND event = 'submitted' GROUP BY task_id ORDER BY task_id" \
    >"$WORK/submitted" || fail "could not read the submitted events"
  python3 - "$WORK/acked.sorted" "$WORK/submitted" <<'PY' || fail "not exactly one submitted event per task"
import sys
acked = {l.strip() for l in open(sys.argv[1]) if l.strip()}
counts = {}
for line in open(sys.argv[2]):
    tid, n = line.rstrip("\n").split("|")
    counts[tid] = int(n)
missing = sorted(acked - set(counts))
extra = sorted(set(counts) - acked)
twice = sorted(t for t, n in counts.items() if n != 1)
for what, ids in (("without a submitted event", missing), ("not acknowledged", extra),
                  ("submitted more than once", twice)):
    if ids:
        print(f"{len(ids)} tasks {what}: {' '.join(ids[:20])}")
sys.exit(1 if missing or extra or twice else 0)
PY
  rows=$(psql "$BATON_PG_DSN" -Atc "SELECT count(*) FROM baton.tasks WHERE queue = '$QUEUE'")
  [ "$rows" -eq "$acked" ] || fail "history has $rows task rows for $acked acknowledged ids"
}
