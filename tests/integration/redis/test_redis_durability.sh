#!/usr/bin/env bash
# test_redis_durability.sh: the scheduler and the worker refuse a Redis that
# may lose what it acknowledged (guarantees 1, 3 and 4; docs/deploy.md,
# "Redis persistence"):
#  - against a Redis with `appendfsync everysec`, and one with AOF off, both
#    exit 1 at start with one line naming the setting and the way out;
#  - with --redis-durability=relaxed both start, log a warning and export
#    baton_redis_durability_relaxed 1 (0 when strict on a durable Redis);
#  - the check runs on every reconnect too: a strict worker whose Redis
#    turned to `everysec` claims nothing until it is `always` again.
# It runs Redis servers of its own (on free ports, in $WORK), stopped by pid.
. "$(dirname "$0")/../lib.sh"

SCHEDULER=$BATON_BIN_DIR/scheduler/baton-scheduler
WORKER=$BATON_BIN_DIR/worker/baton-worker

# start_redis NAME ARGS...: a redis-server with ARGS on a free port; sets
# NAME_url to its URL.
start_redis() {
  local name=$1 port
  shift
  port=$(free_port)
  mkdir -p "$WORK/$name"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/$name" --save '' \
    --maxmemory-policy noeviction "$@" >"$WORK/$name.redis.log" 2>&1 &
  TEST_PIDS+=("$!")
  wait_until 20 "redis $name to answer" redis-cli -p "$port" ping
  printf -v "${name}_url" '%s' "redis://127.0.0.1:$port/0"
}

# refused NAME WANT BINARY ARGS...: BINARY exits 1 with WANT on stderr.
refused() {
  local name=$1 want=$2 rc=0
  shift 2
  timeout 60 "$@" >"$WORK/$name.log" 2>&1 || rc=$?
  [ "$rc" -eq 1 ] || fail "$name: exit $rc, want 1"
  grep -qF -- "$want" "$WORK/$name.log" || fail "$name: no '$want' in its output"
  grep -qF -- "--redis-durability=relaxed" "$WORK/$name.log" ||
    fail "$name: the message does not name --redis-durability=relaxed"
}

# gauge URL: the value of baton_redis_durability_relaxed at URL/metrics.
gauge() { curl -fsS "$1/metrics" | sed -n 's/^baton_redis_durability_relaxed \(.*\)$/\1/p'; }

start_redis everysec --appendonly yes --appendfsync everysec
start_redis aof_off --appendonly no
start_redis durable --appendonly yes --appendfsync always

for r in everysec aof_off; do
  url_var="${r}_url"
  url=${!url_var}
  want="has appendfsync everysec"
  [ "$r" = aof_off ] && want="has appendonly no (AOF off)"
  refused "sched_$r" "$want" "$SCHEDULER" --redis-url "$url" --ingest=false --history=false
  refused "worker_$r" "$want" "$WORKER" --redis-url "$url"
  echo "refused $r: $(tail -n 1 "$WORK/worker_$r.log")"

  # Relaxed: both run, say so in the log and in the metric.
  sport=$(free_port)
  start_scheduler "sched_relaxed_$r" --redis-url "$url" --ingest=false \
    --redis-durability=relaxed --metrics-port "$sport"
  wport=$(free_port)
  start_worker "worker_relaxed_$r" --redis-url "$url" --redis-durability=relaxed \
    --metrics-port "$wport"
  for url in "http://127.0.0.1:$sport" "http://127.0.0.1:$wport"; do
    wait_until 20 "$url/metrics" curl -fsS "$url/metrics"
    [ "$(gauge "$url")" = 1 ] || fail "$url: baton_redis_durability_relaxed is '$(gauge "$url")'"
  done
  for name in "sched_relaxed_$r" "worker_relaxed_$r"; do
    pid_var="${name}_pid"
    kill -0 "${!pid_var}" || fail "$name exited"
    grep -q '"level":"warn".*--redis-durability=relaxed' "$WORK/$name.log" ||
      fail "$name: no warning about --redis-durability=relaxed"
    stop_pid "${!pid_var}"
  done
done

# Strict on a durable Redis: runs, gauge 0, ready.
wport=$(free_port)
W=http://127.0.0.1:$wport
start_worker strict --redis-url "$durable_url" --queues "q.$UNIQ" --metrics-port "$wport"
wait_until 20 "the strict worker to be ready" curl -fsS "$W/readyz"
[ "$(gauge "$W")" = 0 ] || fail "strict worker: baton_redis_durability_relaxed is '$(gauge "$W")'"

# Reconnect: Redis turns to everysec and drops its clients. Every
# connection the worker opens again is refused (its claim loop logs it,
# /readyz fails) until Redis is durable again; the worker waits, it does
# not exit.
dcli() { redis-cli -u "$durable_url" "$@"; }
dcli config set appendfsync everysec >/dev/null
dcli client kill type normal >/dev/null
refused_on_reconnect() { grep -q 'has appendfsync everysec' "$WORK/strict.log"; }
wait_until 30 "the worker to refuse its reconnect" refused_on_reconnect
not_ready() { ! curl -fsS "$W/readyz"; }
wait_until 30 "/readyz to fail while Redis is not durable" not_ready
kill -0 "$strict_pid" || fail "the strict worker exited instead of waiting"
dcli config set appendfsync always >/dev/null
wait_until 30 "/readyz once Redis is durable again" curl -fsS "$W/readyz"
kill -0 "$strict_pid" || fail "the strict worker exited"
echo "PASS: everysec and AOF off refused at start and on reconnect; relaxed runs and says so"
