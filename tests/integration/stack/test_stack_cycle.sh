#!/usr/bin/env bash
# test_stack_cycle.sh - dev/stack.sh brings a stack up and takes it down
# cleanly, twice in a row, and two stacks can run side by side.
#
# Each round: `up --env-file` must leave Redis answering PING, PostgreSQL
# answering a query in database baton, and the embedded Kafka serving
# metadata for baton.tasks (16 partitions); `down --env-file` must then leave
# none of the three recorded processes running, no stack dir and no env file.
# Finally two stacks are brought up at the same time and must get different
# ports and dirs. Runs its own stacks, not the ctest fixture's.
#
# Environment: BATON_STACK_SH (default <repo>/dev/stack.sh) and whatever
# stack.sh reads (BATON_KAFKA_MOCK_BIN).
set -euo pipefail

STACK_SH=${BATON_STACK_SH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/dev/stack.sh}
WORK=$(mktemp -d /tmp/baton-test-stack-cycle.XXXXXX)

cleanup() {
  local env_file
  for env_file in "$WORK"/*.env; do
    if [ -e "$env_file" ]; then "$STACK_SH" down --env-file "$env_file" || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

ok() {
  echo "ok - $*"
}

# Prints the value of `export NAME=value` in env file $1.
env_get() {
  sed -n "/^export $2=/{s///p;q}" "$1"
}

# Milliseconds since the epoch.
now_ms() {
  local t=${EPOCHREALTIME/./}
  echo $((t / 1000))
}

# Prints "PID STARTTIME" for server NAME ($2) of stack dir $1.
recorded() {
  echo "$(cat "$1/$2.pid") $(cat "$1/$2.start")"
}

# Succeeds if PID $1 is still the process that started at STARTTIME $2
# (a zombie waiting to be reaped counts as gone).
still_running() {
  local stat rest fields
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  rest=${stat##*) }
  read -r -a fields <<<"$rest"
  [ "${fields[19]}" = "$2" ] && [ "${fields[0]}" != Z ]
}

# Checks that all three servers of the stack in env file $1 answer.
assert_up() {
  local env_file=$1 dir redis_url redis_port pg_dsn brokers meta
  dir=$(env_get "$env_file" BATON_STACK_DIR)
  redis_url=$(env_get "$env_file" BATON_REDIS_URL)
  pg_dsn=$(env_get "$env_file" BATON_PG_DSN)
  brokers=$(env_get "$env_file" BATON_KAFKA_BROKERS)
  [ -d "$dir" ] || fail "stack dir $dir missing after up"
  redis_port=${redis_url##*:}
  redis_port=${redis_port%%/*}
  [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$redis_port" ping)" = PONG ] ||
    fail "redis at $redis_url did not answer PING"
  [ "$(PGCONNECT_TIMEOUT=5 psql -X -q "$pg_dsn" -Atc 'SELECT current_database()')" = baton ] ||
    fail "postgres at $pg_dsn did not answer in database baton"
  meta=$(timeout 10 kcat -L -b "$brokers" -t baton.tasks) ||
    fail "kafka at $brokers did not serve metadata"
  grep -q 'topic "baton.tasks" with 16 partitions' <<<"$meta" ||
    fail "kafka at $brokers has no 16-partition baton.tasks: $meta"
}

# One up/down round with env file $1.
cycle() {
  local env_file=$1 dir name i t0 t1 t2
  local -a procs=()
  t0=$(now_ms)
  "$STACK_SH" up --env-file "$env_file" >/dev/null || fail "up failed"
  t1=$(now_ms)
  assert_up "$env_file"
  dir=$(env_get "$env_file" BATON_STACK_DIR)
  for name in redis postgres kafka; do
    procs+=("$(recorded "$dir" "$name")")
    # shellcheck disable=SC2086 # "PID STARTTIME" splits into two arguments
    still_running ${procs[-1]} || fail "$name (pid ${procs[-1]%% *}) not running after up"
  done
  t2=$(now_ms)
  "$STACK_SH" down --env-file "$env_file" || fail "down failed"
  for i in "${!procs[@]}"; do
    # shellcheck disable=SC2086
    ! still_running ${procs[$i]} || fail "pid ${procs[$i]%% *} still running after down"
  done
  [ ! -e "$dir" ] || fail "stack dir $dir still there after down"
  [ ! -e "$env_file" ] || fail "env file $env_file still there after down"
  ok "up in $((t1 - t0)) ms, all three answered; down in $(($(now_ms) - t2)) ms, pids gone, $dir removed"
}

cycle "$WORK/round1.env"
cycle "$WORK/round2.env"

# Two stacks at once, started concurrently so they race for ports.
"$STACK_SH" up --env-file "$WORK/a.env" >/dev/null &
pid_a=$!
"$STACK_SH" up --env-file "$WORK/b.env" >/dev/null &
pid_b=$!
wait "$pid_a" || fail "up of stack a failed"
wait "$pid_b" || fail "up of stack b failed"
assert_up "$WORK/a.env"
assert_up "$WORK/b.env"
for var in BATON_STACK_DIR BATON_REDIS_URL BATON_PG_DSN BATON_KAFKA_BROKERS; do
  [ "$(env_get "$WORK/a.env" "$var")" != "$(env_get "$WORK/b.env" "$var")" ] ||
    fail "both stacks have the same $var"
done
common_brokers=$(comm -12 <(env_get "$WORK/a.env" BATON_KAFKA_BROKERS | tr , '\n' | sort) \
  <(env_get "$WORK/b.env" BATON_KAFKA_BROKERS | tr , '\n' | sort))
[ -z "$common_brokers" ] || fail "both stacks list broker $common_brokers"
ok "two stacks up at once on different ports and dirs"
"$STACK_SH" down --env-file "$WORK/a.env" || fail "down of stack a failed"
"$STACK_SH" down --env-file "$WORK/b.env" || fail "down of stack b failed"
ok "both taken down"
