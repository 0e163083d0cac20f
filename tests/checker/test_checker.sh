#!/usr/bin/env bash
# test_checker.sh - the checker must pass a healthy run and fail each fault.
#
# A checker that cannot fail proves nothing, so this runs a healthy chaos
# workload (one scheduler with history, one worker, 300 tasks) through
# chaos_lib.sh exactly as the scenarios do, checks that `baton-check verify`
# passes it with the right figures, then injects one fault at a time into
# Redis, PostgreSQL or the executions file, checks that verify fails naming
# that violation, and undoes the fault (a passing verify proves the undo,
# so each negative run sees one fault only). The worker is stopped before
# the faults, so nothing else changes the queue meanwhile.
# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/../chaos/chaos_lib.sh"

COUNT=300
chaos_up
chaos_scheduler s1
chaos_worker w1 --concurrency 4

out=$(chaos_produce "$COUNT") || fail "produce failed: $out"
[ "$out" = "{\"submitted\":$COUNT,\"acked\":$COUNT,\"failed\":0}" ] || fail "produce said: $out"
[ "$(wc -l <"$ACKED")" -eq "$COUNT" ] || fail "acked file has $(wc -l <"$ACKED") lines"

# The healthy run, through the scenarios' own helper.
chaos_verify --expect succeeded
report_field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, r))' "$REPORT" "$1"; }
[ "$(report_field ok)" = True ] || fail "healthy report not ok"
[ "$(report_field acked)" -eq "$COUNT" ] || fail "report acked $(report_field acked)"
[ "$(report_field "terminal['succeeded']")" -eq "$COUNT" ] || fail "not all succeeded"
claims=$(report_field claims) executions=$(report_field executions)
if [ "$executions" -lt "$COUNT" ] || [ "$executions" -ne "$claims" ]; then
  fail "healthy run: $executions executions for $claims claims"
fi

# shellcheck disable=SC2154 # set by start_worker
stop_pid "$w1_pid"

# verify's arguments as chaos_verify passes them.
CHECK_ARGS=(--redis-url "$BATON_REDIS_URL" --pg-dsn "$BATON_PG_DSN" --queue "$QUEUE"
  --acked "$ACKED" --executions "$EXECUTIONS" --worker-log "$WORK/w1.log" --report "$REPORT")

# The settled case is what every scenario ends with: time it.
t0=$(date +%s%N)
"$CHECK" verify "${CHECK_ARGS[@]}" >/dev/null 2>"$WORK/check.err" || fail "second healthy verify failed: $(cat "$WORK/check.err")"
echo "verify of $COUNT settled tasks took $((($(date +%s%N) - t0) / 1000000)) ms"

# expect_violation NAME FIELD KIND ID [VERIFY ARGS...]: verify must exit 1,
# print "VIOLATION KIND: ID" and count it in the report's FIELD.
expect_violation() {
  local name=$1 field=$2 kind=$3 id=$4 rc=0
  shift 4
  "$CHECK" verify "${CHECK_ARGS[@]}" --wait-s 5 "$@" >"$WORK/check.out" 2>"$WORK/check.err" || rc=$?
  [ "$rc" -eq 1 ] || fail "$name: verify exited $rc, want 1: $(cat "$WORK/check.err")"
  grep -qF "VIOLATION $kind: $id" "$WORK/check.err" ||
    fail "$name: no 'VIOLATION $kind: $id' in: $(cat "$WORK/check.err")"
  [ "$(report_field "$field")" -ge 1 ] || fail "$name: report's $field is not counted: $(cat "$REPORT")"
  [ "$(report_field ok)" = False ] || fail "$name: report says ok"
  cmp -s <(tail -n 1 "$WORK/check.out") "$REPORT" || fail "$name: stdout and --report differ"
  echo "fault $name: detected:"
  grep -m 3 VIOLATION "$WORK/check.err" | sed "s/^/    /"
}

# expect_clean NAME: the fault is undone, verify passes again.
expect_clean() {
  "$CHECK" verify "${CHECK_ARGS[@]}" --wait-s 5 >/dev/null 2>"$WORK/check.err" ||
    fail "after undoing $1, verify still fails: $(cat "$WORK/check.err")"
}

key() { echo "baton:{$QUEUE}:$1"; }

# (a) an acknowledged task that is nowhere, neither in Redis nor in
# history: lost.
cp "$ACKED" "$WORK/acked.saved"
echo t-never >>"$ACKED"
expect_violation "acked task never stored" lost lost t-never
cp "$WORK/acked.saved" "$ACKED"
expect_clean "acked task never stored"

# (a') a finished task's hash gone from Redis (as after --retention-ms)
# while history has it terminal is no loss: verify passes and counts it as
# retired. With its history row deleted as well, it is lost. The hash is
# moved out of the queue's key space and back, so it comes back unchanged.
rcli rename "$(key t:t-7)" "baton:checker-stash" >/dev/null
expect_clean "task hash past retention"
[ "$(report_field retired)" -eq 1 ] || fail "a hash past retention is not counted as retired: $(cat "$REPORT")"
psql "$BATON_PG_DSN" -qAtc "UPDATE baton.tasks SET state = 'queued' WHERE queue = '$QUEUE' AND id = 't-7'"
expect_violation "task hash deleted, history not terminal" lost lost t-7
psql "$BATON_PG_DSN" -qAtc "UPDATE baton.tasks SET state = 'succeeded' WHERE queue = '$QUEUE' AND id = 't-7'"
rcli rename "baton:checker-stash" "$(key t:t-7)" >/dev/null
expect_clean "task hash deleted"

# (b) a key baton never makes: orphan key.
rcli set "$(key bogus)" 1 >/dev/null
expect_violation "orphan key" structure_violations "orphan key" "$(key bogus)"
rcli del "$(key bogus)" >/dev/null
expect_clean "orphan key"

# (c) a succeeded task also in the ready set: structure.
rcli zadd "$(key ready)" 1 t-9 >/dev/null
expect_violation "succeeded task in ready" structure_violations structure t-9
rcli zrem "$(key ready)" t-9 >/dev/null
expect_clean "succeeded task in ready"

# (d) a set member without a task hash: orphan member (in the dead set,
# which maintenance leaves alone: it would drop a stale running entry).
rcli zadd "$(key dead)" 1 no-such-task >/dev/null
expect_violation "orphan member" structure_violations "orphan member" no-such-task
rcli zrem "$(key dead)" no-such-task >/dev/null
expect_clean "orphan member"

# (e) a handler start with a token no claim had: unrecorded execution.
cp "$EXECUTIONS" "$WORK/executions.saved"
echo "t-3 999999" >>"$EXECUTIONS"
expect_violation "unrecorded execution" unrecorded_executions "unrecorded execution" t-3
cp "$WORK/executions.saved" "$EXECUTIONS"
expect_clean "unrecorded execution"

# (f) a zombie's late success in history: an extra `succeeded` from running
# with a token older than the claim's, as the next seq, and Redis's event
# counter bumped to match (so the history still has seq 1..ev).
psql_q() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$BATON_PG_DSN" -c "$1"; }
ev=$(rcli hget "$(key t:t-11)" ev)
token=$(psql_q "SELECT max(fencing_token) FROM baton.task_events WHERE queue = '$QUEUE' AND task_id = 't-11' AND event = 'claimed'")
psql_q "INSERT INTO baton.task_events (queue, task_id, seq, at, event, from_state, to_state, attempt, fencing_token, worker_id)
        VALUES ('$QUEUE', 't-11', $((ev + 1)), now(), 'succeeded', 'running', 'succeeded', 1, $((token - 1)), 'zombie')"
rcli hincrby "$(key t:t-11)" ev 1 >/dev/null
expect_violation "zombie write" zombie_writes "zombie write" t-11
psql_q "DELETE FROM baton.task_events WHERE queue = '$QUEUE' AND task_id = 't-11' AND seq = $((ev + 1))"
rcli hincrby "$(key t:t-11)" ev -1 >/dev/null
expect_clean "zombie write"

# (g) history's task row says another terminal state: history mismatch;
# a state that is not terminal: lost.
psql_q "UPDATE baton.tasks SET state = 'dead' WHERE queue = '$QUEUE' AND id = 't-13'"
expect_violation "history state changed" history_mismatches "history mismatch" t-13
psql_q "UPDATE baton.tasks SET state = 'running' WHERE queue = '$QUEUE' AND id = 't-13'"
expect_violation "history state not terminal" lost lost t-13
psql_q "UPDATE baton.tasks SET state = 'succeeded' WHERE queue = '$QUEUE' AND id = 't-13'"
expect_clean "history state changed"

# (h) a history event lost: history mismatch (seq gap against Redis's ev).
[ "$(psql_q "SELECT count(*) FROM baton.task_events WHERE queue = '$QUEUE' AND task_id = 't-17' AND seq = 2")" -eq 1 ] ||
  fail "t-17 has no event 2"
psql_q "CREATE TABLE baton.checker_saved AS SELECT * FROM baton.task_events WHERE queue = '$QUEUE' AND task_id = 't-17' AND seq = 2"
psql_q "DELETE FROM baton.task_events WHERE queue = '$QUEUE' AND task_id = 't-17' AND seq = 2"
expect_violation "history event missing" history_mismatches "history mismatch" t-17
psql_q "INSERT INTO baton.task_events SELECT * FROM baton.checker_saved; DROP TABLE baton.checker_saved"
expect_clean "history event missing"

# (i) --expect a state the tasks did not end in: unexpected state.
expect_violation "unexpected state" unexpected_states "unexpected state" t-1 --expect dead

# Usage errors exit 2.
rc=0
"$CHECK" verify --queue "$QUEUE" --acked "$ACKED" --redis-url "$BATON_REDIS_URL" --pg-dsn "$BATON_PG_DSN" --expect bogus 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "--expect bogus exited $rc, want 2"
rc=0
"$CHECK" verify --queue "$QUEUE" --acked "$WORK/no-such-file" 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "a missing --acked file exited $rc, want 2"
rc=0
"$CHECK" verify --redis-url redis://127.0.0.1:1 --pg-dsn "$BATON_PG_DSN" --queue "$QUEUE" --acked "$ACKED" --wait-s 1 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "an unreachable Redis exited $rc, want 2"
echo "PASS"
