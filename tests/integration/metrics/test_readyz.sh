#!/usr/bin/env bash
# test_readyz.sh: /readyz follows the connections, /healthz follows the
# process. A scheduler (history writer on) and a worker serve their
# endpoints; then
#   - Redis is stopped: both /readyz turn 503 naming Redis, and turn 200
#     again once Redis is back; a task published afterwards still runs;
#   - PostgreSQL is stopped: the scheduler's /readyz (history writer on)
#     turns 503 naming PostgreSQL while the worker's (no PostgreSQL) stays
#     200; both are 200 again once it is back.
# Throughout, /healthz of both answers 200 (polled every 100 ms in the
# background) and /metrics keeps answering: the endpoint never waits for
# the daemon's threads, which are busy retrying. The 503 body names the
# part that failed, never Redis's host or port. Before the outages, 30
# /readyz in a row ask Redis (PING, counted by INFO commandstats) at most
# once per second of the burst: the answer is cached.
#
# It stops servers, so it brings up a stack of its own.
. "$(dirname "$0")/../lib.sh"
use_own_stack
STACK_ENV=$OWN_STACK_ENV
"$BATON_BIN_DIR/ctl/batonctl" --pg-dsn "$BATON_PG_DSN" migrate >/dev/null ||
  fail "could not migrate the test's own stack"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
sport=$(free_port)
wport=$(free_port)
[ "$sport" != "$wport" ] || wport=$(free_port)
S="http://127.0.0.1:$sport"
W="http://127.0.0.1:$wport"

SCHEDULER_HISTORY=true start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" \
  --dlq-topic "dlq.$UNIQ" --redis-timeout-ms 1000 --metrics-port "$sport" \
  --metrics-bind 127.0.0.1
# The worker's endpoint without --metrics-bind: loopback is the default.
start_worker w --queues "$queue" --redis-timeout-ms 1000 --metrics-port "$wport"

# code URL: the HTTP status of URL, the body in $WORK/body (000: no answer).
code() { curl -sS --max-time 5 -o "$WORK/body" -w '%{http_code}' "$1" 2>/dev/null || true; }
# ready_is URL CODE [BODY-PATTERN]
ready_is() {
  [ "$(code "$1/readyz")" = "$2" ] || return 1
  [ -z "${3:-}" ] || grep -qi "$3" "$WORK/body"
}

wait_until 30 "the scheduler to be ready" ready_is "$S" 200
wait_until 30 "the worker to be ready" ready_is "$W" 200
listening=$(ss -Hltn "sport = :$wport" | awk '{print $4}')
[ "$listening" = "127.0.0.1:$wport" ] ||
  fail "the worker's metrics endpoint listens on '$listening', not loopback only"

# ----------------------------------------------------- /readyz is cached
pings() {
  local n
  n=$(rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_ping:calls=\([0-9]*\).*/\1/p')
  echo "${n:-0}"
}
burst=()
for _ in $(seq 30); do burst+=("$W/readyz"); done
pings_before=$(pings)
burst_start=$(date +%s%N)
curl -sS --max-time 30 -o /dev/null "${burst[@]}" || fail "the /readyz burst failed"
burst_ms=$((($(date +%s%N) - burst_start) / 1000000))
probes=$(($(pings) - pings_before))
allowed=$((2 + burst_ms / 1000))
echo "30 /readyz in ${burst_ms} ms sent $probes PING(s) to Redis (at most $allowed allowed)"
[ "$probes" -le "$allowed" ] ||
  fail "30 /readyz in ${burst_ms} ms sent $probes PINGs to Redis: the answer is not cached"

# /healthz of both, every 100 ms, for the whole test.
(
  while :; do
    for url in "$S" "$W"; do
      echo "$url $(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' "$url/healthz" 2>/dev/null)"
    done
    sleep 0.1
  done
) >"$WORK/healthz.log" &
poller=$!
TEST_PIDS+=("$poller")

# ------------------------------------------------------------ Redis away
"$STACK_SH" stop redis --env-file "$STACK_ENV" >/dev/null || fail "stack.sh stop redis failed"
wait_until 15 "the scheduler's /readyz to turn 503 (redis)" ready_is "$S" 503 redis
wait_until 15 "the worker's /readyz to turn 503 (redis)" ready_is "$W" 503 redis
echo "Redis down: scheduler says '$(code "$S/readyz" >/dev/null; cat "$WORK/body")'"
redis_hostport=${BATON_REDIS_URL#*://}
redis_hostport=${redis_hostport#*@}
redis_hostport=${redis_hostport%%/*}
for url in "$S" "$W"; do
  code "$url/readyz" >/dev/null
  ! grep -qF "$redis_hostport" "$WORK/body" && ! grep -q ':[0-9]' "$WORK/body" ||
    fail "$url/readyz names an internal address: $(cat "$WORK/body")"
done
for url in "$S" "$W"; do
  [ "$(code "$url/metrics")" = 200 ] || fail "$url/metrics does not answer while Redis is down"
done
kill -0 "$sched_pid" && kill -0 "$w_pid" || fail "a daemon exited while Redis was down"

"$STACK_SH" start redis --env-file "$STACK_ENV" >/dev/null || fail "stack.sh start redis failed"
wait_until 30 "the scheduler's /readyz back to 200" ready_is "$S" 200
wait_until 30 "the worker's /readyz back to 200" ready_is "$W" 200

echo "{\"id\":\"after\",\"type\":\"noop\",\"queue\":\"$queue\"}" | produce "$topic" -k "$queue"
done_after() { [ "$(task_field "$queue" after state)" = succeeded ]; }
wait_until 60 "a task published after the outage to run" done_after

# ------------------------------------------------------- PostgreSQL away
"$STACK_SH" stop postgres --env-file "$STACK_ENV" >/dev/null || fail "stack.sh stop postgres failed"
wait_until 15 "the scheduler's /readyz to turn 503 (postgresql)" ready_is "$S" 503 postgresql
ready_is "$W" 200 || fail "the worker's /readyz depends on PostgreSQL: $(cat "$WORK/body")"
"$STACK_SH" start postgres --env-file "$STACK_ENV" >/dev/null || fail "stack.sh start postgres failed"
wait_until 30 "the scheduler's /readyz back to 200 after PostgreSQL" ready_is "$S" 200
ready_is "$W" 200 || fail "the worker is not ready at the end"

# ------------------------------------------------------------- liveness
kill "$poller" 2>/dev/null || true
wait "$poller" 2>/dev/null || true
polls=$(wc -l <"$WORK/healthz.log")
not_ok=$(grep -vc ' 200$' "$WORK/healthz.log" || true)
[ "$polls" -ge 20 ] || fail "only $polls /healthz polls"
[ "$not_ok" -eq 0 ] || fail "/healthz was not 200 in $not_ok of $polls polls: $(grep -v ' 200$' "$WORK/healthz.log" | head -3)"
echo "/healthz: $polls polls, all 200"
echo "1 passed, 0 failed"
