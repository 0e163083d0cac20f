#!/usr/bin/env bash
# dev/demo.sh: the whole path on the local stack, from a fresh Debian 12
# machine (as root).
#
#   1. installs what is missing, builds;
#   2. brings up the local stack (Redis, PostgreSQL, embedded Kafka on free
#      loopback ports) and applies the history migrations;
#   3. starts baton-scheduler (ingest, maintenance, history writer);
#   4. publishes 300 mixed tasks with baton-submit (priorities 0-9, some
#      failing for good, some failing once then succeeding, some delayed)
#      and shows them queued by priority before any worker runs;
#   5. starts two baton-workers, waits until every task is finished and its
#      history is in PostgreSQL, and prints a summary by priority and a
#      history summary straight from PostgreSQL;
#   6. stops the scheduler and workers gracefully; the stack stays up so
#      that `batonctl status ID` and psql work on what the demo did. The last
#      lines say how to use and stop it.
# Running the demo again first stops the stack it started before.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BATON_BUILD_DIR:-$root/build}
env_file=$build/demo-stack.env
say() { printf '\n== %s\n' "$*"; }

"$root/dev/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

if [ -f "$env_file" ]; then
  echo "demo: stopping the stack of the previous demo run" >&2
  "$root/dev/stack.sh" down --env-file "$env_file" >&2 || true
fi

say "starting the local stack"
BATON_KAFKA_MOCK_BIN=$build/dev/baton-kafka-mock \
  "$root/dev/stack.sh" up --env-file "$env_file" >/dev/null
# shellcheck disable=SC1090
. "$env_file"
logs=$BATON_STACK_DIR/demo-logs
mkdir -p "$logs"
batonctl() { "$build/ctl/batonctl" --redis-url "$BATON_REDIS_URL" --pg-dsn "$BATON_PG_DSN" "$@"; }
batonctl migrate

pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT

say "starting baton-scheduler (ingest, maintenance, history writer)"
"$build/scheduler/baton-scheduler" --kafka-brokers "$BATON_KAFKA_BROKERS" \
  --redis-url "$BATON_REDIS_URL" --pg-dsn "$BATON_PG_DSN" \
  --kafka-config fetch.wait.max.ms=10 >"$logs/scheduler.log" 2>&1 &
pids+=($!)

say "publishing 300 tasks with baton-submit"
python3 - >"$logs/tasks.jsonl" <<'PY'
import json
for n in range(300):
    t = {"queue": "demo", "priority": (n * 7) % 10 if n % 3 else n % 10, "meta": {"demo": "yes"}}
    if n % 10 == 3:
        t.update(type="fail", payload=f"demo failure {n}", max_attempts=2)
    elif n % 10 == 7:
        t.update(type="flaky", payload={"n": n})
    elif n % 15 == 1:
        t.update(type="sleep", payload=50, delay_ms=2000)
    else:
        t.update(type="echo", payload={"n": n})
    print(json.dumps(t))
PY
"$build/producer/baton-submit" --kafka-brokers "$BATON_KAFKA_BROKERS" \
  --file "$logs/tasks.jsonl" >"$logs/ids.txt"
echo "submitted $(wc -l <"$logs/ids.txt") tasks (ids in $logs/ids.txt)"

deadline=$((SECONDS + 60))
until [ "$(redis-cli -u "$BATON_REDIS_URL" zcard 'baton:{demo}:ready')" -ge 280 ]; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "demo: ingest did not keep up" >&2; exit 1; }
  sleep 0.1
done
say "queued by priority in Redis, before any worker runs"
batonctl queues

say "starting two baton-workers"
for w in 1 2; do
  "$build/worker/baton-worker" --redis-url "$BATON_REDIS_URL" --queues demo --concurrency 4 \
    --backoff-base-ms 200 --backoff-cap-ms 1000 --builtins noop,sleep,echo,fail \
    --command 'flaky=[ "$BATON_TASK_ATTEMPT" -ge 2 ] || { echo "flaky: first attempt fails" >&2; exit 1; }; cat' \
    >"$logs/worker$w.log" 2>&1 &
  pids+=($!)
done

psql_q() { psql "$BATON_PG_DSN" -qAtc "$1"; }
deadline=$((SECONDS + 120))
until [ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = 'demo' AND finished_at IS NOT NULL")" -ge 300 ]; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "demo: tasks did not finish in time (logs: $logs)" >&2; exit 1; }
  sleep 0.2
done
stop_all

say "summary by priority (from PostgreSQL)"
psql "$BATON_PG_DSN" -P footer=off -c "
SELECT priority,
       count(*) FILTER (WHERE state = 'succeeded' AND attempts = 1) AS succeeded,
       count(*) FILTER (WHERE state = 'succeeded' AND attempts > 1) AS retried_then_succeeded,
       count(*) FILTER (WHERE state = 'dead') AS dead,
       count(*) AS total
FROM baton.tasks WHERE queue = 'demo'
GROUP BY priority ORDER BY priority DESC"

say "history summary (from PostgreSQL)"
psql "$BATON_PG_DSN" -P footer=off -c "
SELECT type, count(*) AS tasks, sum(attempts) AS attempts,
       count(*) FILTER (WHERE state = 'dead') AS dead,
       round(avg(extract(epoch FROM first_started_at - submitted_at) * 1000)::numeric, 1) AS avg_wait_ms
FROM baton.tasks WHERE queue = 'demo' GROUP BY type ORDER BY type"
psql "$BATON_PG_DSN" -P footer=off -c "SELECT event, count(*) AS events FROM baton.task_events WHERE queue = 'demo' GROUP BY event ORDER BY count(*) DESC"

example=$(sed -n 4p "$logs/ids.txt")
say "one task's status: batonctl status $example"
batonctl status "$example"

cat <<TXT

The local stack is still up:
  Kafka (embedded, 3 brokers)  $BATON_KAFKA_BROKERS
  Redis                        $BATON_REDIS_URL
  PostgreSQL                   $BATON_PG_DSN   (history schema: baton)
  logs                         $logs

Look around:
  . $env_file
  $build/ctl/batonctl status <any id from $logs/ids.txt>
  $build/ctl/batonctl queues
  psql "\$BATON_PG_DSN" -c 'SELECT * FROM baton.latency_by_type'

Stop it:
  $root/dev/stack.sh down --env-file $env_file
TXT
