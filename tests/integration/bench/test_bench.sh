#!/usr/bin/env bash
# test_bench.sh: a short baton-bench run (2,000 tasks) checks the
# benchmark's own bookkeeping: every task counted exactly once, percentiles
# in order, every process measured, the JSON well formed. No timing is
# asserted: figures belong in the report (docs/performance.md).
. "$(dirname "$0")/../lib.sh"
use_redis_db 8

"$BATON_BIN_DIR/bench/baton-bench" --kafka-brokers "$BATON_KAFKA_BROKERS" \
  --redis-url "$BATON_REDIS_URL" --pg-dsn "$BATON_PG_DSN" --stack-dir "$BATON_STACK_DIR" \
  --tasks 2000 --memory-tasks 500 --workers 2 --concurrency 8 --payload-bytes 100 \
  --priorities 0,5,9 --queues a,b --json "$WORK/bench.json" >"$WORK/bench.out" 2>&1 ||
  { cat "$WORK/bench.out" >&2; fail "baton-bench failed"; }
cat "$WORK/bench.out"
python3 - "$WORK/bench.json" <<'PY' || fail "the benchmark's report is inconsistent"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["tasks"] == 2000 and r["counted_once"] == 2000, r
assert r["duplicates"] == 0 and r["unknown_rows"] == 0, r
for name in ("submit_to_start", "submit_to_finish"):
    l = r[name]
    values = [l["p50_ms"], l["p90_ms"], l["p99_ms"], l["p99_9_ms"], l["max_ms"]]
    assert values == sorted(values), (name, values)
    assert l["count"] == 2000, l
assert r["submit_to_finish"]["p50_ms"] >= r["submit_to_start"]["p50_ms"], r
roles = [p["process"] for p in r["processes"]]
for role in ("scheduler", "worker 1", "worker 2", "redis", "postgresql", "kafka (embedded)"):
    assert role in roles, roles
assert all(p["peak_rss_mib"] > 0 for p in r["processes"]), r["processes"]
assert r["redis_bytes_per_queued_task"] > 0 and r["postgres_bytes_per_task"] > 0, r
assert r["publish_rate"] > 0 and r["end_to_end_rate"] > 0, r
print("bench bookkeeping ok")
PY
# Nothing the bench started is left running, nor its logs (kept only when
# a run fails).
run=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"])' "$WORK/bench.json")
[ -n "$run" ] && [ ! -e "/tmp/baton-bench.$run" ] || fail "the bench left its logs in /tmp/baton-bench.$run"
leftover=$(pgrep -f "baton-scheduler.*--group-id baton-bench" || true)
[ -z "$leftover" ] || fail "the bench left processes running: $leftover"
echo "1 passed, 0 failed"
