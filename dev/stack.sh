#!/usr/bin/env bash
# stack.sh - baton's local stack: Redis, PostgreSQL and an embedded Kafka on
# free 127.0.0.1 ports, in one private temporary directory.
#
#   dev/stack.sh up   [--env-file FILE]   start a stack, print its env
#   dev/stack.sh env  DIR | --env-file FILE   print a stack's env again
#   dev/stack.sh down DIR | --env-file FILE   stop a stack, remove its dir
#   dev/stack.sh stop  SERVICE DIR | --env-file FILE   stop one server
#   dev/stack.sh start SERVICE DIR | --env-file FILE   start it again
#   dev/stack.sh kafka COMMAND... DIR | --env-file FILE   control the
#                                            embedded Kafka (broker down 2)
#
# `up` makes /tmp/baton-stack.XXXXXX and starts in it:
#   - redis-server (AOF fsync'd before each reply, noeviction, no RDB snapshots);
#   - a fresh PostgreSQL cluster (initdb -U baton, trust auth, fsync=off: a
#     test stack trades durability for speed) with a database `baton`;
#   - baton-kafka-mock, librdkafka's mock cluster (see dev/kafka_mock.c),
#     from $BATON_KAFKA_MOCK_BIN or <repo>/build/dev/baton-kafka-mock.
# It waits for each server with a real check (PING, a query, the mock's ready
# file) under a bounded timeout, then writes <dir>/env with export lines for
# BATON_KAFKA_BROKERS, BATON_REDIS_URL, BATON_PG_DSN, BATON_KAFKA_CONTROL
# (the mock's control socket, <dir>/kafka.sock) and BATON_STACK_DIR,
# copies it to --env-file and prints it. If anything fails, whatever was
# started is stopped and the dir removed, and `up` exits non-zero.
#
# `stop` and `start` are for fault-injection tests (a Redis or PostgreSQL
# outage), with SERVICE redis or postgres. `stop` stops exactly the recorded
# server, as `down` does, and keeps its data dir; the stack's record then
# says it is stopped (empty pid file), so `down` skips it. `start` runs the
# same server again with the same data dir, config and port, so the env
# does not change and clients may reconnect: Redis reloads its AOF (what was
# written before a `stop` is there again), PostgreSQL recovers its cluster.
# It waits for the same readiness check as `up`, records the new pid and
# start time (so `down` stops it), and fails with a clear message if the
# port was taken meanwhile or the server is already running. kafka is
# refused: the embedded mock keeps its topics in memory only. Kafka faults
# go through `kafka` instead: it sends one command to the mock's control
# socket (baton-kafka-mock --control, see dev/kafka_mock.c), e.g.
# `kafka broker down 2`, prints the mock's one-line reply and exits 0 for
# "ok ...", 1 for "error ...". The cluster keeps running, so topics,
# messages and committed offsets survive a broker's outage.
#
# Why it is shaped so:
#   - Ports come from the kernel (bind to port 0) and are retried when a
#     server loses the race for one, so stacks run side by side and next to
#     whatever else the machine runs. The mock's brokers bind port 0 by
#     themselves.
#   - Servers run in the foreground of a background job with all three
#     standard streams on files: nothing daemonizes behind our back, the pid
#     we record is the server's own, and a caller that waits on our output
#     (ctest) is not held open by it.
#   - `down` stops exactly the pids `up` recorded, and only while
#     /proc/PID/stat still shows the start time recorded with it, so a pid
#     the kernel has since handed to another process is never signalled.
#   - As root, PostgreSQL (which refuses to run as root) runs as the
#     `postgres` user. initdb goes through `runuser -u postgres --`; the
#     server through `setpriv`, which execs in place: runuser stays behind as
#     the parent, and on SIGTERM would SIGKILL the server two seconds later.
#   - PostgreSQL is stopped with SIGINT ("fast" shutdown: disconnect clients,
#     checkpoint, exit); its SIGTERM ("smart") waits for every client to go.
set -euo pipefail

PROG=stack.sh
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Seconds to wait for one server to answer, and for one to stop after a signal.
READY_TIMEOUT=${BATON_STACK_READY_TIMEOUT:-30}
STOP_TIMEOUT=${BATON_STACK_STOP_TIMEOUT:-15}
# Attempts per server when the port picked was taken before it could bind.
PORT_ATTEMPTS=5
# Marker that tells `down` a directory is a stack it may delete.
MARKER=baton-stack
# Servers in the order `up` starts them; `down` stops them all at once.
SERVERS=(redis postgres kafka)

die() {
  echo "$PROG: $*" >&2
  exit 1
}

usage() {
  cat <<EOF
Usage: $PROG up [--env-file FILE]
       $PROG env DIR | --env-file FILE
       $PROG down DIR | --env-file FILE
       $PROG stop SERVICE DIR | --env-file FILE
       $PROG start SERVICE DIR | --env-file FILE
       $PROG kafka COMMAND... DIR | --env-file FILE
Starts (up), describes (env) or stops (down) a local baton stack: Redis,
PostgreSQL and baton-kafka-mock on free 127.0.0.1 ports in /tmp/baton-stack.*.
stop/start stop one server of a running stack (SERVICE: redis or postgres),
keeping its data, and start it again on the same port with the same data.
kafka sends a control command to the embedded Kafka and prints its reply
(exit 0 "ok", 1 "error"): brokers | broker down|up ID|all |
broker rtt ID|all MS | leader TOPIC PARTITION ID|-1 |
coordinator group|transaction KEY ID | errors produce COUNT ERROR|clear | help.
Environment: BATON_KAFKA_MOCK_BIN (default <repo>/build/dev/baton-kafka-mock),
BATON_PG_BIN (PostgreSQL's bin dir), BATON_STACK_READY_TIMEOUT (s, default 30),
BATON_STACK_STOP_TIMEOUT (s, default 15).
EOF
}

usage_error() {
  echo "$PROG: $* (try $PROG --help)" >&2
  exit 2
}

# ---------------------------------------------------------------- processes

# Prints "STATE STARTTIME" of PID from /proc/PID/stat (fields 3 and 22), or
# fails if there is no such process. The command name (field 2) may hold
# spaces and parentheses, so fields are counted after its last ')'.
proc_state_start() {
  local stat rest fields
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  rest=${stat##*) }
  read -r -a fields <<<"$rest"
  echo "${fields[0]} ${fields[19]}"
}

# Records server NAME's PID and its start time in the stack dir.
record_pid() {
  local dir=$1 name=$2 pid=$3 state_start
  echo "$pid" >"$dir/$name.pid"
  if state_start=$(proc_state_start "$pid"); then
    echo "${state_start#* }" >"$dir/$name.start"
  else
    : >"$dir/$name.start" # already gone; an empty start time matches nothing
  fi
}

# Succeeds if the process recorded as NAME in DIR is still the one `up`
# started (same pid, same start time) and is not a zombie.
recorded_alive() {
  local dir=$1 name=$2 pid start state_start
  pid=$(cat "$dir/$name.pid" 2>/dev/null) || return 1
  start=$(cat "$dir/$name.start" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -n "$start" ] || return 1
  state_start=$(proc_state_start "$pid") || return 1
  [ "${state_start#* }" = "$start" ] && [ "${state_start%% *}" != Z ]
}

# Sends SIG to the process recorded as NAME in DIR, if it is still ours.
signal_recorded() {
  local dir=$1 name=$2 sig=$3
  if recorded_alive "$dir" "$name"; then
    kill "-$sig" "$(cat "$dir/$name.pid")" 2>/dev/null || true
  fi
}

# stop_recorded DIR [NAME...]: stops the servers NAME (default: every
# server) recorded in DIR: its polite signal, up to STOP_TIMEOUT seconds for
# all of them to go, then SIGKILL and up to 5 more seconds. Fails if one
# still runs after that.
stop_recorded() {
  local dir=$1 name deadline pid state_start
  local -a left=() names=("${SERVERS[@]}")
  if [ $# -gt 1 ]; then names=("${@:2}"); fi
  for name in "${names[@]}"; do
    pid=$(cat "$dir/$name.pid" 2>/dev/null) || continue
    [ -n "$pid" ] || continue
    state_start=$(proc_state_start "$pid") || continue
    if [ "${state_start#* }" != "$(cat "$dir/$name.start" 2>/dev/null)" ]; then
      echo "$PROG: pid $pid is no longer the $name this stack started; leaving it alone" >&2
    fi
  done
  for name in "${names[@]}"; do
    if [ "$name" = postgres ]; then
      signal_recorded "$dir" "$name" INT
    else
      signal_recorded "$dir" "$name" TERM
    fi
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  while :; do
    left=()
    for name in "${names[@]}"; do
      if recorded_alive "$dir" "$name"; then left+=("$name"); fi
    done
    [ ${#left[@]} -eq 0 ] && return 0
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 0.1
  done
  echo "$PROG: ${left[*]} still running after ${STOP_TIMEOUT}s; sending SIGKILL" >&2
  for name in "${left[@]}"; do signal_recorded "$dir" "$name" KILL; done
  deadline=$((SECONDS + 5))
  while [ "$SECONDS" -lt "$deadline" ]; do
    left=()
    for name in "${names[@]}"; do
      if recorded_alive "$dir" "$name"; then left+=("$name"); fi
    done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  echo "$PROG: ${left[*]} did not exit even after SIGKILL" >&2
  return 1
}

# wait_ready DIR NAME CHECK...: runs CHECK every 0.1 s until it succeeds
# (returns 0), the server recorded as NAME dies (1), or READY_TIMEOUT
# seconds pass (2).
wait_ready() {
  local dir=$1 name=$2 deadline
  shift 2
  deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    recorded_alive "$dir" "$name" || return 1
    [ "$SECONDS" -ge "$deadline" ] && return 2
    sleep 0.1
  done
}

# Prints a port that was free on 127.0.0.1 a moment ago.
free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Prints the last lines of a log, indented, to stderr.
log_tail() {
  [ -f "$1" ] && tail -n 15 "$1" | sed 's/^/    /' >&2
  return 0
}

# ---------------------------------------------------------------- servers

# Checks (for wait_ready): Redis on port $1 answers PONG and is pid $2.
# Bounded by `timeout`: if another program took the port, it may accept the
# connection and never answer.
redis_check() {
  local info
  [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping)" = PONG ] || return 1
  info=$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" info server) || return 1
  grep -qx "process_id:$2" <<<"${info//$'\r'/}"
}

# launch_redis DIR PORT: starts redis-server on PORT with DIR's data dir and
# config, records its pid (also in LAUNCHED_PID) and returns wait_ready's
# code. The same arguments serve `up` and `start`, so a restarted server
# finds its AOF (appenddirname, under --dir) and listens where it did.
# `appendfsync always`, as in docker-compose.yml: with `everysec` a write
# Redis acknowledged while its background fsync runs may still be in its
# own buffer, and a SIGKILL then loses it (docs/deploy.md, "Redis
# persistence"); the tests hold baton to guarantee 1 as stated.
launch_redis() {
  local dir=$1 port=$2
  # Redis writes --logfile once it has parsed its arguments; errors before
  # that go to stdout, appended to the same file. Nothing reads it here.
  # shellcheck disable=SC2094
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis" \
    --appendonly yes --appendfsync always \
    --maxmemory 512mb --maxmemory-policy noeviction --save '' \
    --hash-max-listpack-value 1024 \
    --logfile "$dir/redis.log" \
    </dev/null >>"$dir/redis.log" 2>&1 &
  LAUNCHED_PID=$!
  record_pid "$dir" redis "$LAUNCHED_PID"
  wait_ready "$dir" redis redis_check "$port" "$LAUNCHED_PID"
}

# Starts Redis in DIR; prints its port.
start_redis() {
  local dir=$1 attempt port rc
  mkdir -p "$dir/redis"
  for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
    port=$(free_port)
    rc=0
    launch_redis "$dir" "$port" || rc=$?
    if [ "$rc" -eq 0 ]; then
      echo "$port"
      return 0
    fi
    if [ "$rc" -eq 2 ]; then
      echo "$PROG: redis-server did not answer on port $port within ${READY_TIMEOUT}s" >&2
      log_tail "$dir/redis.log"
      return 1
    fi
    wait "$LAUNCHED_PID" 2>/dev/null || true
    if ! grep -q 'Address already in use' "$dir/redis.log"; then
      echo "$PROG: redis-server exited at start; $dir/redis.log ends:" >&2
      log_tail "$dir/redis.log"
      return 1
    fi
    echo "$PROG: redis port $port was taken; retrying" >&2
    : >"$dir/redis.log"
  done
  echo "$PROG: redis-server found no free port in $PORT_ATTEMPTS attempts" >&2
  return 1
}

# Prints PostgreSQL's bin dir: $BATON_PG_BIN, the newest Debian one, or PATH's.
pg_bindir() {
  local dir
  if [ -n "${BATON_PG_BIN:-}" ]; then
    echo "$BATON_PG_BIN"
    return 0
  fi
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null |
    sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/postgres" ]; then
    echo "$dir"
  elif command -v postgres >/dev/null; then
    dirname "$(command -v postgres)"
  else
    return 1
  fi
}

# Checks (for wait_ready): a PostgreSQL on port $1 serves data dir $2.
# Bounded for the same reason as redis_check.
pg_check() {
  "$PG_BIN/pg_isready" -q -t 2 -h 127.0.0.1 -p "$1" -U baton -d postgres &&
    [ "$(PGCONNECT_TIMEOUT=2 timeout 5 psql -X -q -h 127.0.0.1 -p "$1" -U baton \
      -d postgres -Atc 'SHOW data_directory')" = "$2" ]
}

# Sets AS_PG_INIT and AS_PG_SERVER, the command prefixes that run initdb and
# the server as the `postgres` user when we are root (empty otherwise).
pg_user_prefixes() {
  AS_PG_INIT=()
  AS_PG_SERVER=()
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || {
      echo "$PROG: running as root but there is no 'postgres' user to run PostgreSQL as" >&2
      return 1
    }
    if ! command -v runuser >/dev/null || ! command -v setpriv >/dev/null; then
      echo "$PROG: running as root needs runuser and setpriv (util-linux)" >&2
      return 1
    fi
    AS_PG_INIT=(runuser -u postgres --)
    AS_PG_SERVER=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  fi
}

# launch_postgres DIR PORT: starts PostgreSQL on PORT with DIR's cluster,
# records its pid (also in LAUNCHED_PID) and returns wait_ready's code.
# Needs PG_BIN and pg_user_prefixes. Shared by `up` and `start`.
launch_postgres() {
  local dir=$1 port=$2 data=$1/pg/data sock=$1/pg/sock
  (cd "$dir" && exec "${AS_PG_SERVER[@]}" "$PG_BIN/postgres" -D "$data" \
    -p "$port" -k "$sock" -c listen_addresses=127.0.0.1 -c fsync=off) \
    </dev/null >>"$dir/postgres.log" 2>&1 &
  LAUNCHED_PID=$!
  record_pid "$dir" postgres "$LAUNCHED_PID"
  wait_ready "$dir" postgres pg_check "$port" "$data"
}

# Starts PostgreSQL in DIR, creates database baton; prints its port.
start_postgres() {
  local dir=$1 data=$1/pg/data sock=$1/pg/sock attempt port rc
  mkdir -p "$data" "$sock"
  chmod 700 "$data"
  pg_user_prefixes || return 1
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL must own its data and socket dirs and reach them.
    chmod 711 "$dir"
    chown -R postgres:postgres "$dir/pg"
  fi
  if ! (cd "$dir" && "${AS_PG_INIT[@]}" "$PG_BIN/initdb" -D "$data" -U baton \
    --auth=trust -E UTF8 --locale=C --no-sync) >"$dir/initdb.log" 2>&1; then
    echo "$PROG: initdb failed; $dir/initdb.log ends:" >&2
    log_tail "$dir/initdb.log"
    return 1
  fi
  for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
    port=$(free_port)
    rc=0
    launch_postgres "$dir" "$port" || rc=$?
    if [ "$rc" -eq 0 ]; then
      if ! psql -X -q -h 127.0.0.1 -p "$port" -U baton -d postgres \
        -c 'CREATE DATABASE baton' >>"$dir/postgres.log" 2>&1; then
        echo "$PROG: could not create database baton; $dir/postgres.log ends:" >&2
        log_tail "$dir/postgres.log"
        return 1
      fi
      echo "$port"
      return 0
    fi
    if [ "$rc" -eq 2 ]; then
      echo "$PROG: postgres did not answer on port $port within ${READY_TIMEOUT}s" >&2
      log_tail "$dir/postgres.log"
      return 1
    fi
    wait "$LAUNCHED_PID" 2>/dev/null || true
    if ! grep -q 'Address already in use' "$dir/postgres.log"; then
      echo "$PROG: postgres exited at start; $dir/postgres.log ends:" >&2
      log_tail "$dir/postgres.log"
      return 1
    fi
    echo "$PROG: postgres port $port was taken; retrying" >&2
    : >"$dir/postgres.log"
  done
  echo "$PROG: postgres found no free port in $PORT_ATTEMPTS attempts" >&2
  return 1
}

# Check (for wait_ready): the mock has published its bootstrap list.
kafka_check() {
  [ -s "$1" ]
}

# Starts baton-kafka-mock in DIR, with its control socket DIR/kafka.sock;
# prints its bootstrap list. Records the binary's path for `kafka`.
start_kafka() {
  local dir=$1 ready=$1/kafka.ready pid rc=0
  "$KAFKA_MOCK_BIN" --ready-file "$ready" --control "$dir/kafka.sock" \
    </dev/null >"$dir/kafka.log" 2>&1 &
  pid=$!
  record_pid "$dir" kafka "$pid"
  realpath "$KAFKA_MOCK_BIN" >"$dir/kafka.bin"
  wait_ready "$dir" kafka kafka_check "$ready" || rc=$?
  if [ "$rc" -ne 0 ]; then
    if [ "$rc" -eq 2 ]; then
      echo "$PROG: baton-kafka-mock not ready within ${READY_TIMEOUT}s" >&2
    else
      echo "$PROG: baton-kafka-mock exited at start; $dir/kafka.log ends:" >&2
    fi
    log_tail "$dir/kafka.log"
    return 1
  fi
  head -n 1 "$ready"
}

# ---------------------------------------------------------------- commands

# Prints the BATON_STACK_DIR named in env file $1.
env_file_dir() {
  sed -n '/^export BATON_STACK_DIR=/{s///p;q}' "$1"
}

# Set by cmd_up once the stack is complete; read by its EXIT trap.
UP_DIR=""
UP_DONE=0

up_cleanup() {
  if [ "$UP_DONE" -ne 1 ] && [ -n "$UP_DIR" ] && [ -d "$UP_DIR" ]; then
    stop_recorded "$UP_DIR" || true
    rm -rf "$UP_DIR"
    echo "$PROG: up failed; stopped what had started and removed $UP_DIR" >&2
  fi
}

cmd_up() {
  local env_file="" dir old_dir redis_port pg_port brokers tool
  while [ $# -gt 0 ]; do
    case $1 in
      --env-file) [ $# -ge 2 ] || usage_error "--env-file needs a path"
        env_file=$2; shift 2 ;;
      --env-file=*) env_file=${1#--env-file=}; shift ;;
      *) usage_error "up: unknown argument '$1'" ;;
    esac
  done

  KAFKA_MOCK_BIN=${BATON_KAFKA_MOCK_BIN:-$REPO_DIR/build/dev/baton-kafka-mock}
  [ -x "$KAFKA_MOCK_BIN" ] || die "baton-kafka-mock not found at $KAFKA_MOCK_BIN;" \
    "build it (cmake --build build --target baton-kafka-mock) or set BATON_KAFKA_MOCK_BIN"
  PG_BIN=$(pg_bindir) || die "PostgreSQL server binaries not found; install postgresql or set BATON_PG_BIN"
  for tool in redis-server redis-cli psql python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool not found; run dev/install-deps.sh"
  done
  if [ -n "$env_file" ] && [ -f "$env_file" ]; then
    old_dir=$(env_file_dir "$env_file")
    if [ -n "$old_dir" ] && [ -d "$old_dir" ]; then
      die "$env_file describes a stack that still exists ($old_dir); run '$0 down --env-file $env_file' first"
    fi
  fi

  dir=$(mktemp -d /tmp/baton-stack.XXXXXX)
  UP_DIR=$dir
  trap up_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  : >"$dir/$MARKER"

  redis_port=$(start_redis "$dir")
  pg_port=$(start_postgres "$dir")
  brokers=$(start_kafka "$dir")

  cat >"$dir/env.tmp" <<EOF
export BATON_KAFKA_BROKERS=$brokers
export BATON_REDIS_URL=redis://127.0.0.1:$redis_port/0
export BATON_PG_DSN=postgresql://baton@127.0.0.1:$pg_port/baton
export BATON_KAFKA_CONTROL=$dir/kafka.sock
export BATON_STACK_DIR=$dir
EOF
  mv "$dir/env.tmp" "$dir/env"
  if [ -n "$env_file" ]; then
    cp "$dir/env" "$env_file.tmp.$$"
    mv "$env_file.tmp.$$" "$env_file"
  fi
  UP_DONE=1
  cat "$dir/env"
}

# Resolves "DIR" or "--env-file FILE" into STACK_DIR and ENV_FILE.
resolve_target() {
  local cmd=$1
  shift
  STACK_DIR=""
  ENV_FILE=""
  case ${1:-} in
    --env-file) [ $# -eq 2 ] || usage_error "$cmd: --env-file needs exactly one path"
      ENV_FILE=$2 ;;
    --env-file=*) [ $# -eq 1 ] || usage_error "$cmd: too many arguments"
      ENV_FILE=${1#--env-file=} ;;
    "" | -*) usage_error "$cmd: give the stack DIR or --env-file FILE" ;;
    *) [ $# -eq 1 ] || usage_error "$cmd: too many arguments"
      STACK_DIR=$1 ;;
  esac
  if [ -n "$ENV_FILE" ] && [ -f "$ENV_FILE" ]; then
    STACK_DIR=$(env_file_dir "$ENV_FILE")
    [ -n "$STACK_DIR" ] || die "$ENV_FILE has no BATON_STACK_DIR line"
  fi
}

cmd_env() {
  resolve_target env "$@"
  [ -n "$STACK_DIR" ] || die "no stack: $ENV_FILE does not exist"
  [ -f "$STACK_DIR/env" ] || die "no stack at $STACK_DIR"
  cat "$STACK_DIR/env"
}

cmd_down() {
  resolve_target down "$@"
  if [ -z "$STACK_DIR" ]; then
    echo "$PROG: $ENV_FILE does not exist; nothing to stop" >&2
    return 0
  fi
  if [ ! -d "$STACK_DIR" ]; then
    echo "$PROG: $STACK_DIR is already gone" >&2
  else
    [ -f "$STACK_DIR/$MARKER" ] || die "$STACK_DIR is not a baton stack dir (no $MARKER file); not touching it"
    stop_recorded "$STACK_DIR" || die "could not stop the stack at $STACK_DIR; left it in place"
    rm -rf "$STACK_DIR"
  fi
  if [ -n "$ENV_FILE" ]; then rm -f "$ENV_FILE"; fi
}

# Checks SERVICE for stop/start; kafka is refused with the reason.
check_service() {
  case $1 in
    redis | postgres) ;;
    kafka) die "kafka cannot be stopped or started on its own: the embedded mock keeps" \
      "its topics and offsets in memory only, so a restart would lose them;" \
      "take a broker down and up instead: $PROG kafka broker down|up ID ..." ;;
    "" | -*) usage_error "$2: give the SERVICE (redis or postgres)" ;;
    *) usage_error "$2: unknown service '$1' (redis or postgres)" ;;
  esac
}

# Resolves "SERVICE DIR|--env-file FILE" for stop/start into SERVICE and
# STACK_DIR, which must be an existing stack dir.
resolve_service_target() {
  local cmd=$1
  shift
  check_service "${1:-}" "$cmd"
  SERVICE=$1
  shift
  resolve_target "$cmd" "$@"
  [ -n "$STACK_DIR" ] || die "no stack: $ENV_FILE does not exist"
  [ -d "$STACK_DIR" ] || die "no stack at $STACK_DIR"
  [ -f "$STACK_DIR/$MARKER" ] || die "$STACK_DIR is not a baton stack dir (no $MARKER file); not touching it"
  [ -f "$STACK_DIR/env" ] || die "$STACK_DIR has no env file; was its 'up' complete?"
}

# Prints the port SERVICE listens on, from the stack's env (which `start`
# keeps true by reusing it).
service_port() {
  local dir=$1 service=$2 var url port
  case $service in
    redis) var=BATON_REDIS_URL ;;
    postgres) var=BATON_PG_DSN ;;
  esac
  url=$(sed -n "/^export $var=/{s///p;q}" "$dir/env")
  port=${url##*:}
  port=${port%%/*}
  case $port in
    '' | *[!0-9]*) die "cannot find the $service port in $dir/env ($var=$url)" ;;
  esac
  echo "$port"
}

# Marks SERVICE as stopped in the stack's record: `down` skips an empty pid.
mark_stopped() {
  : >"$1/$2.pid"
  : >"$1/$2.start"
}

cmd_stop() {
  resolve_service_target stop "$@"
  if ! recorded_alive "$STACK_DIR" "$SERVICE"; then
    echo "$PROG: $SERVICE of $STACK_DIR is not running; nothing to stop" >&2
    mark_stopped "$STACK_DIR" "$SERVICE"
    return 0
  fi
  stop_recorded "$STACK_DIR" "$SERVICE" || die "could not stop $SERVICE of $STACK_DIR"
  mark_stopped "$STACK_DIR" "$SERVICE"
}

cmd_start() {
  local port log log_size rc=0 tool
  local -a tools=()
  resolve_service_target start "$@"
  if recorded_alive "$STACK_DIR" "$SERVICE"; then
    die "$SERVICE of $STACK_DIR is already running (pid $(cat "$STACK_DIR/$SERVICE.pid"))"
  fi
  port=$(service_port "$STACK_DIR" "$SERVICE")
  log=$STACK_DIR/$SERVICE.log
  if [ "$SERVICE" = redis ]; then tools=(redis-server redis-cli timeout); else tools=(psql timeout); fi
  for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || die "$tool not found; run dev/install-deps.sh"
  done
  if [ "$SERVICE" = postgres ]; then
    PG_BIN=$(pg_bindir) || die "PostgreSQL server binaries not found; install postgresql or set BATON_PG_BIN"
    pg_user_prefixes || exit 1
  fi
  # Only what this start appends to the log tells why it failed.
  log_size=$(stat -c %s "$log" 2>/dev/null || echo 0)
  if [ "$SERVICE" = redis ]; then
    launch_redis "$STACK_DIR" "$port" || rc=$?
  else
    launch_postgres "$STACK_DIR" "$port" || rc=$?
  fi
  [ "$rc" -eq 0 ] && return 0
  if [ "$rc" -eq 2 ]; then
    echo "$PROG: $SERVICE did not answer on port $port within ${READY_TIMEOUT}s; stopping it" >&2
    log_tail "$log"
    stop_recorded "$STACK_DIR" "$SERVICE" || true
    mark_stopped "$STACK_DIR" "$SERVICE"
    exit 1
  fi
  wait "$LAUNCHED_PID" 2>/dev/null || true
  mark_stopped "$STACK_DIR" "$SERVICE"
  if tail -c "+$((log_size + 1))" "$log" | grep 'Address already in use' >/dev/null; then
    die "$SERVICE cannot start again: its port $port (named in the stack's env) was" \
      "taken by another process meanwhile; free it and retry, or take the stack down"
  fi
  echo "$PROG: $SERVICE exited at start; $log ends:" >&2
  log_tail "$log"
  exit 1
}

# kafka COMMAND... DIR | --env-file FILE: sends COMMAND to the control
# socket of the stack's embedded Kafka with the mock binary's client mode,
# which prints the reply; exits with its code (0 ok, 1 error, 2 usage).
cmd_kafka() {
  local n=$# sock bin rc=0
  local -a words target
  [ "$n" -ge 2 ] || usage_error "kafka: give a COMMAND and the stack DIR or --env-file FILE"
  if [ "$n" -ge 3 ] && [ "${*:n-1:1}" = --env-file ]; then
    words=("${@:1:n-2}")
    target=("${@:n-1}")
  else
    words=("${@:1:n-1}")
    target=("${@:n}")
  fi
  case ${words[0]} in
    -*) usage_error "kafka: give the COMMAND first, then DIR or --env-file FILE" ;;
  esac
  resolve_target kafka "${target[@]}"
  [ -n "$STACK_DIR" ] || die "no stack: $ENV_FILE does not exist"
  [ -d "$STACK_DIR" ] || die "no stack at $STACK_DIR"
  [ -f "$STACK_DIR/$MARKER" ] || die "$STACK_DIR is not a baton stack dir (no $MARKER file); not touching it"
  recorded_alive "$STACK_DIR" kafka || die "the embedded Kafka of $STACK_DIR is not running"
  sock=$(sed -n '/^export BATON_KAFKA_CONTROL=/{s///p;q}' "$STACK_DIR/env" 2>/dev/null || true)
  sock=${sock:-$STACK_DIR/kafka.sock}
  [ -S "$sock" ] || die "the embedded Kafka of $STACK_DIR has no control socket at $sock" \
    "(a stack brought up before the mock had one?)"
  # The client speaks a one-line protocol that any build of the mock
  # serves; prefer the binary named now, then the one `up` started.
  bin=${BATON_KAFKA_MOCK_BIN:-}
  if [ -z "$bin" ] && [ -s "$STACK_DIR/kafka.bin" ]; then bin=$(cat "$STACK_DIR/kafka.bin"); fi
  bin=${bin:-$REPO_DIR/build/dev/baton-kafka-mock}
  [ -x "$bin" ] || die "baton-kafka-mock not found at $bin; build it or set BATON_KAFKA_MOCK_BIN"
  "$bin" --control "$sock" "${words[@]}" || rc=$?
  exit "$rc"
}

main() {
  case ${1:-} in
    up) shift; cmd_up "$@" ;;
    env) shift; cmd_env "$@" ;;
    down) shift; cmd_down "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    start) shift; cmd_start "$@" ;;
    kafka) shift; cmd_kafka "$@" ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) usage_error "unknown command '$1'" ;;
  esac
}

main "$@"
