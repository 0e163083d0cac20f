#!/usr/bin/env bash
# test_bench.sh: short baton-bench runs check the benchmark's own
# bookkeeping, never its figures (timing belongs in the report,
# docs/performance.md):
#   1. history on (2,000 tasks): every task counted exactly once,
#      percentiles in order, every process measured, the JSON holds every
#      figure of the text and the settings, the burst spread over every
#      partition of the topic;
#   2. history off (1,000 tasks): finished is read from Redis, every task
#      counted once, no PostgreSQL figure;
#   3. a burst the embedded Kafka could not keep is refused before it runs;
#   4. a run that really loses messages fails and says so: a private
#      4-partition topic, the whole burst (about 8 MiB) on one partition
#      while the scheduler is paused (--test-pause-scheduler), so the
#      embedded Kafka drops the oldest messages (it keeps 5 MiB per
#      partition) before the scheduler reads them.
# After each run nothing the bench started is left running, nor its logs
# (kept only when a run fails, and removed here then).
. "$(dirname "$0")/../lib.sh"
use_redis_db 8

BENCH=("$BATON_BIN_DIR/bench/baton-bench" --kafka-brokers "$BATON_KAFKA_BROKERS"
  --redis-url "$BATON_REDIS_URL" --pg-dsn "$BATON_PG_DSN" --stack-dir "$BATON_STACK_DIR")

# no_leftovers RUN: nothing of bench run RUN is left (logs, processes).
no_leftovers() {
  local run=$1 leftover
  [ -n "$run" ] || fail "no run id"
  [ ! -e "/tmp/baton-bench.$run" ] || fail "the bench left its logs in /tmp/baton-bench.$run"
  leftover=$(pgrep -f -- "--group-id baton-bench-$run" || true)
  [ -z "$leftover" ] || fail "the bench left processes running: $leftover"
}

json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

# --- 1. history on
"${BENCH[@]}" --tasks 2000 --memory-tasks 500 --workers 2 --concurrency 8 --payload-bytes 100 \
  --priorities 0,5,9 --queues a,b --json "$WORK/bench.json" >"$WORK/bench.out" 2>&1 ||
  { cat "$WORK/bench.out" >&2; fail "baton-bench failed"; }
cat "$WORK/bench.out"
python3 - "$WORK/bench.json" "$WORK/bench.out" <<'PY' || fail "the benchmark's report is inconsistent"
import json, sys
r = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()
assert r["tasks"] == 2000 and r["counted_once"] == 2000, r
assert r["duplicates"] == 0 and r["unknown_rows"] == 0 and r["lost"] == 0, r
assert r["history"] is True and r["finished_in"].startswith("postgresql"), r
for name in ("submit_to_start", "submit_to_finish"):
    l = r[name]
    values = [l["p50_ms"], l["p90_ms"], l["p99_ms"], l["p99_9_ms"], l["max_ms"]]
    assert values == sorted(values), (name, values)
    assert l["count"] == 2000, l
assert r["submit_to_finish"]["p50_ms"] >= r["submit_to_start"]["p50_ms"], r
roles = [p["process"] for p in r["processes"]]
for role in ("scheduler", "worker 1", "worker 2", "redis", "postgresql", "kafka (embedded)"):
    assert role in roles, roles
assert all(p["peak_rss_mib"] > 0 and p["pid"] > 0 for p in r["processes"]), r["processes"]
assert abs(sum(p["cpu_seconds"] for p in r["processes"]) - r["cpu_seconds_total"]) < 1e-6, r
assert r["redis_bytes_per_queued_task"] > 0 and r["postgres_bytes_per_task"] > 0, r
assert r["publish_rate"] > 0 and r["end_to_end_rate"] > 0, r
s = r["settings"]
assert s["tasks"] == 2000 and s["workers"] == 2 and s["concurrency"] == 8, s
assert s["payload_bytes"] == 100 and s["priorities"] == [0, 5, 9] and len(s["queues"]) == 2, s
assert s["history"] is True and s["memory_tasks"] == 500 and s["rate"] == 0, s
m = r["machine"]
assert m["nproc"] >= 1 and m["cpu_model"] and m["memory_gib"] > 0, m
assert r["date"], r
k = r["kafka"]
# The stack's topic has 16 partitions; the burst is spread over all.
assert k["topic"] == "baton.tasks" and k["topic_partitions"] == 16, k
assert k["partitions_used"] == 16 and k["tasks_per_partition_max"] == 125, k
assert k["misplaced_tasks"] == 0 and k["task_bytes_estimate"] > 100, k
# Every figure of the text is in the JSON: spot the numbers the text prints.
for figure in ("%.0f" % r["publish_rate"], "%.0f" % r["end_to_end_rate"],
               "%.1f" % r["cpu_us_per_task_total"], "%.0f" % r["postgres_bytes_per_task"],
               "%.0f" % r["redis_bytes_per_queued_task"]):
    assert figure in text, (figure, text)
for p in r["processes"]:
    assert "%.1f" % p["cpu_us_per_task"] in text and str(p["pid"]) in text, p
print("bench bookkeeping ok (history on)")
PY
no_leftovers "$(json_get "$WORK/bench.json" run)"

# --- 2. history off
"${BENCH[@]}" --history false --tasks 1000 --workers 2 --concurrency 8 --priorities 0,9 \
  --queues a,b,c --json "$WORK/off.json" >"$WORK/off.out" 2>&1 ||
  { cat "$WORK/off.out" >&2; fail "baton-bench --history false failed"; }
cat "$WORK/off.out"
python3 - "$WORK/off.json" <<'PY' || fail "the history-off report is inconsistent"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["tasks"] == 1000 and r["counted_once"] == 1000 and r["duplicates"] == 0, r
assert r["history"] is False and r["finished_in"].startswith("redis"), r
assert r["settings"]["history"] is False and r["settings"]["memory_tasks"] == 0, r
assert "postgres_bytes_per_task" not in r and "redis_bytes_per_queued_task" not in r, r
assert r["memory_phase"].startswith("memory phase skipped"), r
assert r["submit_to_finish"]["count"] == 1000 and r["end_to_end_rate"] > 0, r
print("bench bookkeeping ok (history off)")
PY
run=$(json_get "$WORK/off.json" run)
no_leftovers "$run"
# The run's keys left Redis with it (nothing would trim the events).
[ "$(rcli --scan --pattern "baton:{*-$run}:*" | wc -l)" -eq 0 ] ||
  fail "the history-off run left its keys in Redis"

# --- 3. a burst the topic cannot keep is refused up front
rc=0
"${BENCH[@]}" --tasks 200000 --payload-bytes 1000 --memory-tasks 0 >"$WORK/big.out" 2>&1 || rc=$?
cat "$WORK/big.out"
[ "$rc" -eq 1 ] || fail "a burst of 200,000 1 KiB tasks on 16 partitions was not refused (exit $rc)"
grep -q "needs at least .* partitions" "$WORK/big.out" || fail "the refusal does not say what is needed"

# --- 4. a run that loses messages fails
topic="bench-loss-$UNIQ"
create_topic "$topic"
rc=0
"${BENCH[@]}" --topic "$topic" --kafka-partitions 1 --kafka-partition-bytes 0 \
  --test-pause-scheduler --tasks 2000 --payload-bytes 4000 --memory-tasks 0 --stall-s 5 \
  --timeout-s 240 --queues a,b --json "$WORK/loss.json" >"$WORK/loss.out" 2>&1 || rc=$?
cat "$WORK/loss.out"
[ "$rc" -ne 0 ] || fail "a run that lost messages succeeded"
[ ! -e "$WORK/loss.json" ] || fail "a run that lost messages wrote a report"
grep -q "LOST MESSAGES: [1-9][0-9]* of 2000 tasks never reached Redis" "$WORK/loss.out" ||
  fail "the failed run does not say that it lost messages"
logs=$(sed -n 's/.*(logs: \(\/tmp\/baton-bench\.[a-z0-9]*\)).*/\1/p' "$WORK/loss.out")
if [ -z "$logs" ] || [ ! -d "$logs" ]; then fail "the failed run did not keep its logs"; fi
rm -rf "$logs"
no_leftovers "${logs#/tmp/baton-bench.}"
echo "1 passed, 0 failed"
