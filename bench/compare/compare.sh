#!/usr/bin/env bash
# compare.sh - baton against BullMQ on this machine, in one run.
#
#   bench/compare/compare.sh [--tasks N] [--queues Q] [--rounds R]
#       [--workers W] [--concurrency C] [--payload-bytes B]
#       [--build-dir DIR] [--json FILE] [--bench-args "ARGS"]
#
# Runs, one after the other, on the same machine:
#   - baton, history on: a fresh local stack (dev/stack.sh up: Redis with
#     appendfsync always, PostgreSQL, the embedded Kafka), migrated, and
#     baton-bench: N tasks over Q queues, priorities 0-9 cycled, as fast as
#     possible; finished = the last history row in PostgreSQL;
#   - baton, history off: the same on another fresh stack, baton-bench
#     --history false: finished = every task's Redis hash says succeeded;
#   - BullMQ: bullmq-bench.mjs (this folder) on Debian's Node.js, the
#     `bullmq` package pinned in package.json/package-lock.json and
#     installed with `npm ci` into a temporary copy of this folder at each
#     run; its own redis-server on a free port, no persistence; one Node
#     process, one Worker with concurrency 100, addBulk in chunks of 1,000,
#     priorities 1-10 cycled, a no-op processor, the same N.
# and prints a table: each system's end-to-end throughput (tasks/s), CPU
# per task of all its processes, and its ratio to BullMQ's, with the date,
# the machine (CPUs, CPU model, memory) and each side's settings; --json
# FILE writes the same, with every run's full report, as JSON.
#
# Order: round 1 runs baton (history on), BullMQ, baton (history off);
# round 2 the reverse; and so on, alternating (--rounds, default 1). With
# several rounds the table shows the median of each system's runs.
#
# Everything it starts (stacks, the BullMQ Redis, the benches) runs from a
# temporary directory /tmp/baton-compare.XXXXXX on free ports and is
# stopped by pid when the script ends, however it ends; the directory is
# removed.
#
# Defaults: --tasks 200000 --queues 8 --rounds 1 --workers 2
# --concurrency 16 --payload-bytes 0 --build-dir <repo>/build. --bench-args
# passes more flags to every baton-bench run, after the script's own, so
# they override them (e.g. "--memory-tasks 10000" or "--priorities 5").
#
# Exit status: 0 when every run succeeded; 1 when one failed (a run that
# lost a task fails: see baton-bench); 2 for a usage error; 77 when the npm
# registry cannot be reached, so BullMQ cannot be installed.
set -euo pipefail

PROG=compare.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

TASKS=200000
QUEUES=8
ROUNDS=1
WORKERS=2
CONCURRENCY=16
PAYLOAD=0
BUILD=$ROOT/build
JSON_OUT=""
BENCH_ARGS=""
# BullMQ's side, fixed by the comparison's definition (docs/performance.md).
BULLMQ_CONCURRENCY=100
BULLMQ_CHUNK=1000
BULLMQ_PRIORITIES=10

die() {
  echo "$PROG: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

count_arg() {
  case $2 in
    '' | *[!0-9]* | 0) echo "$PROG: $1 wants a positive count, got '$2'" >&2; exit 2 ;;
  esac
}

while [ $# -gt 0 ]; do
  case $1 in
    --tasks | --queues | --rounds | --workers | --concurrency | --payload-bytes | --build-dir | \
      --json | --bench-args)
      [ $# -ge 2 ] || { echo "$PROG: $1 needs a value" >&2; exit 2; }
      case $1 in
        --tasks) count_arg "$1" "$2"; TASKS=$2 ;;
        --queues) count_arg "$1" "$2"; QUEUES=$2 ;;
        --rounds) count_arg "$1" "$2"; ROUNDS=$2 ;;
        --workers) count_arg "$1" "$2"; WORKERS=$2 ;;
        --concurrency) count_arg "$1" "$2"; CONCURRENCY=$2 ;;
        --payload-bytes)
          case $2 in '' | *[!0-9]*) echo "$PROG: --payload-bytes wants a count" >&2; exit 2 ;; esac
          PAYLOAD=$2 ;;
        --build-dir) BUILD=$(cd "$2" && pwd) ;;
        --json) JSON_OUT=$2 ;;
        --bench-args) BENCH_ARGS=$2 ;;
      esac
      shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "$PROG: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

for tool in node npm redis-server redis-cli python3 timeout; do
  command -v "$tool" >/dev/null || die "$tool not found; run dev/install-deps.sh"
done
for bin in bench/baton-bench dev/baton-kafka-mock ctl/batonctl scheduler/baton-scheduler \
  worker/baton-worker; do
  [ -x "$BUILD/$bin" ] || die "$BUILD/$bin not found: build first (cmake -S . -B build && cmake --build build)"
done

WORK=$(mktemp -d /tmp/baton-compare.XXXXXX)
CHILD_PID=""      # the bench or node process running now
BULLMQ_REDIS=""   # pid of the BullMQ Redis while it runs
STACK_UP=0        # 1 while $WORK/stack.env describes a running stack
: >"$WORK/started" # "what pid comm identity" of every process started, for the test
: >"$WORK/stacks"  # every stack dir brought up

# Prints the start time of process $1 (field 22 of /proc/PID/stat, after
# the command name, which may hold spaces), or "?" when it is gone.
start_time() {
  local stat rest fields
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || { echo "?"; return; }
  rest=${stat##*) }
  read -r -a fields <<<"$rest"
  echo "${fields[19]}"
}

# Records a process this script started, for tests/integration/bench: its
# pid, command name and start time, so that a pid the kernel has since
# given to another process is not mistaken for it. COMM, when given, is the
# command name the process will have (one just forked may not have exec'd
# yet; the start time stays the same through exec).
record() {
  local comm=${3:-}
  [ -n "$comm" ] || comm=$(cat "/proc/$2/comm" 2>/dev/null || echo "?")
  echo "$1 $2 $comm start=$(start_time "$2")" >>"$WORK/started"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$CHILD_PID" ] && kill -0 "$CHILD_PID" 2>/dev/null; then
    kill -TERM "$CHILD_PID" 2>/dev/null || true
    wait "$CHILD_PID" 2>/dev/null || true
  fi
  if [ -n "$BULLMQ_REDIS" ] && kill -0 "$BULLMQ_REDIS" 2>/dev/null; then
    kill -TERM "$BULLMQ_REDIS" 2>/dev/null || true
    wait "$BULLMQ_REDIS" 2>/dev/null || true
  fi
  if [ "$STACK_UP" -eq 1 ]; then
    "$ROOT/dev/stack.sh" down --env-file "$WORK/stack.env" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs "$@" in the background (so a signal to this script can stop it),
# recording it as WHAT, and waits; returns its status.
run_child() {
  local what=$1 rc=0 comm
  shift
  comm=$(basename "$1")
  "$@" &
  CHILD_PID=$!
  record "$what" "$CHILD_PID" "${comm:0:15}"
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=""
  return "$rc"
}

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

say() { echo "$PROG: $*" >&2; }

# ------------------------------------------------------------------ BullMQ

# npm ci into a copy of this folder: the source tree stays as it is.
install_bullmq() {
  mkdir -p "$WORK/bullmq"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$HERE/.npmrc" "$HERE/bullmq-bench.mjs" \
    "$WORK/bullmq/"
  say "npm ci (bullmq $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["bullmq"])' "$HERE/package.json"))"
  if (cd "$WORK/bullmq" && timeout 600 npm ci --prefer-offline --fetch-retries=1 \
    --fetch-timeout=60000 --loglevel=error) >"$WORK/npm.log" 2>&1; then
    return 0
  fi
  if ! (cd "$WORK/bullmq" && timeout 60 npm ping --fetch-retries=0 --fetch-timeout=20000) \
    >>"$WORK/npm.log" 2>&1; then
    tail -n 20 "$WORK/npm.log" >&2
    echo "$PROG: the npm registry cannot be reached (npm ping failed), so BullMQ cannot be installed" >&2
    exit 77
  fi
  tail -n 30 "$WORK/npm.log" >&2
  die "npm ci failed although the registry answers (log above)"
}

# run_bullmq OUT.json: one BullMQ run on its own Redis.
run_bullmq() {
  local out=$1 dir port attempt ready rc
  for ((attempt = 1; attempt <= 5; attempt++)); do
    dir=$(mktemp -d "$WORK/bullmq-redis.XXXXXX")
    port=$(free_port)
    # Redis writes --logfile once it has parsed its arguments; errors before
    # that go to stdout, appended to the same file.
    # shellcheck disable=SC2094
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
      --logfile "$dir/redis.log" </dev/null >>"$dir/redis.log" 2>&1 &
    BULLMQ_REDIS=$!
    record "bullmq-redis" "$BULLMQ_REDIS" redis-server
    ready=0
    for _ in $(seq 1 300); do
      if [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] &&
        timeout 2 redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null |
        tr -d '\r' | grep -qx "process_id:$BULLMQ_REDIS"; then
        ready=1
        break
      fi
      kill -0 "$BULLMQ_REDIS" 2>/dev/null || break
      sleep 0.1
    done
    [ "$ready" -eq 1 ] && break
    kill -TERM "$BULLMQ_REDIS" 2>/dev/null || true
    wait "$BULLMQ_REDIS" 2>/dev/null || true
    BULLMQ_REDIS=""
    grep -q 'Address already in use' "$dir/redis.log" || { tail -n 15 "$dir/redis.log" >&2; die "redis-server for BullMQ did not start"; }
  done
  [ -n "$BULLMQ_REDIS" ] || die "redis-server for BullMQ found no free port"
  rc=0
  run_child bullmq-node node "$WORK/bullmq/bullmq-bench.mjs" --redis-port "$port" \
    --redis-pid "$BULLMQ_REDIS" --tasks "$TASKS" --concurrency "$BULLMQ_CONCURRENCY" \
    --chunk "$BULLMQ_CHUNK" --priorities "$BULLMQ_PRIORITIES" --payload-bytes "$PAYLOAD" \
    --clk-tck "$(getconf CLK_TCK)" --json "$out" >"$out.log" 2>&1 || rc=$?
  kill -TERM "$BULLMQ_REDIS" 2>/dev/null || true
  wait "$BULLMQ_REDIS" 2>/dev/null || true
  BULLMQ_REDIS=""
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$out.log" >&2
    die "the BullMQ run failed (exit $rc)"
  fi
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
print("BullMQ %s: %d tasks, end to end %.0f tasks/s (%.2f s), add rate %.0f tasks/s, CPU %.1f us/task (node %.1f, redis %.1f)" % (
  r["bullmq_version"], r["tasks"], r["end_to_end_rate"], r["end_to_end_seconds"], r["publish_rate"],
  r["cpu_us_per_task_total"], r["processes"][0]["cpu_us_per_task"], r["processes"][1]["cpu_us_per_task"]))' "$out"
}

# ------------------------------------------------------------------- baton

# Prints variable $2 of the stack env file $1 (export NAME=value lines).
env_value() {
  sed -n "/^export $2=/{s///p;q}" "$1"
}

# run_baton true|false OUT.json: one baton-bench run on a fresh stack.
run_baton() {
  local history=$1 out=$2 queues="" q rc=0 name env=$WORK/stack.env dir
  for ((q = 0; q < QUEUES; q++)); do queues+="${queues:+,}q$q"; done
  BATON_KAFKA_MOCK_BIN="$BUILD/dev/baton-kafka-mock" \
    "$ROOT/dev/stack.sh" up --env-file "$env" >"$WORK/stack-up.log" 2>&1 ||
    { cat "$WORK/stack-up.log" >&2; die "dev/stack.sh up failed"; }
  STACK_UP=1
  dir=$(env_value "$env" BATON_STACK_DIR)
  echo "$dir" >>"$WORK/stacks"
  for name in redis postgres kafka; do record "stack-$name" "$(cat "$dir/$name.pid")"; done
  BATON_PG_DSN=$(env_value "$env" BATON_PG_DSN) "$BUILD/ctl/batonctl" migrate \
    >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "batonctl migrate failed"; }
  # shellcheck disable=SC2086 # --bench-args is a list of flags
  run_child baton-bench "$BUILD/bench/baton-bench" \
    --kafka-brokers "$(env_value "$env" BATON_KAFKA_BROKERS)" \
    --redis-url "$(env_value "$env" BATON_REDIS_URL)" --pg-dsn "$(env_value "$env" BATON_PG_DSN)" \
    --stack-dir "$dir" --bin-dir "$BUILD" --tasks "$TASKS" --queues "$queues" \
    --priorities 0,1,2,3,4,5,6,7,8,9 --workers "$WORKERS" --concurrency "$CONCURRENCY" \
    --payload-bytes "$PAYLOAD" --memory-tasks 0 $BENCH_ARGS --history "$history" --json "$out" ||
    rc=$?
  "$ROOT/dev/stack.sh" down --env-file "$env" >/dev/null 2>&1 || die "dev/stack.sh down failed for $dir"
  STACK_UP=0
  [ "$rc" -eq 0 ] || die "the baton run (history $history) failed (exit $rc)"
  # Its scheduler and workers, for the leftover check.
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
for p in r["processes"]:
    if p["process"].startswith(("scheduler", "worker")):
        # Gone already: named by the run id on their command line instead.
        print("bench-%s %d %s cmdline=%s" % (p["process"].replace(" ", ""), p["pid"],
              "baton-scheduler" if p["process"] == "scheduler" else "baton-worker", r["run"]))' "$out" \
    >>"$WORK/started"
}

# ------------------------------------------------------------------ the run

install_bullmq
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cut -d' ' -f1-3 /proc/loadavg >"$WORK/load-start"
order=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then
    order+=("$r:baton_history" "$r:bullmq" "$r:baton_no_history")
  else
    order+=("$r:baton_no_history" "$r:bullmq" "$r:baton_history")
  fi
done
say "order: ${order[*]}"
for step in "${order[@]}"; do
  r=${step%%:*}
  system=${step#*:}
  out="$WORK/round$r-$system.json"
  say "round $r: $system, $TASKS tasks"
  case $system in
    baton_history) run_baton true "$out" ;;
    baton_no_history) run_baton false "$out" ;;
    bullmq) run_bullmq "$out" ;;
  esac
done

python3 - "$WORK" "$DATE" "$TASKS" "$QUEUES" "$ROUNDS" "$WORKERS" "$CONCURRENCY" "$PAYLOAD" \
  "$BENCH_ARGS" "$JSON_OUT" "${order[@]}" <<'PY'
import json, os, platform, statistics, subprocess, sys

work, date, tasks, queues, rounds, workers, concurrency, payload, bench_args, json_out = sys.argv[1:11]
order = sys.argv[11:]
tasks, queues, rounds = int(tasks), int(queues), int(rounds)

def machine():
    model, mem_kib, os_name = "unknown", 0, "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model,
            "memory_gib": round(mem_kib / 1048576, 1), "os": os_name,
            "kernel": platform.release(),
            # Other work on the machine moves the figures: the load around the run.
            "load_average_at_start": open(os.path.join(work, "load-start")).read().strip(),
            "load_average_at_end": " ".join("%.2f" % x for x in os.getloadavg())}

def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

def redis_version():
    for word in version(["redis-server", "--version"]).split():
        if word.startswith("v="):
            return word[2:]
    return "unknown"

names = {"baton_history": "baton, history on", "baton_no_history": "baton, history off",
         "bullmq": "BullMQ"}
systems = {}
for step in order:
    r, system = step.split(":")
    report = json.load(open(os.path.join(work, "round%s-%s.json" % (r, system))))
    report["round"] = int(r)
    systems.setdefault(system, {"runs": []})["runs"].append(report)
for s in systems.values():
    s["end_to_end_rate_median"] = statistics.median(x["end_to_end_rate"] for x in s["runs"])
    s["cpu_us_per_task_median"] = statistics.median(x["cpu_us_per_task_total"] for x in s["runs"])
bull = systems["bullmq"]["end_to_end_rate_median"]
for s in systems.values():
    s["ratio_to_bullmq"] = s["end_to_end_rate_median"] / bull
bull_run = systems["bullmq"]["runs"][0]
baton_run = systems["baton_history"]["runs"][0]
settings = {
    "baton": {
        "program": "baton-bench",
        "tasks": tasks, "queues": queues, "priorities": "0-9 cycled",
        "payload_bytes": int(payload), "workers": int(workers), "concurrency": int(concurrency),
        "publish": "producer library, as fast as possible (linger.ms=5)",
        "kafka": "embedded (librdkafka mock, 3 brokers), topic %s with %d partitions, all used"
                 % (baton_run["kafka"]["topic"], baton_run["kafka"]["topic_partitions"]),
        "redis": "%s, AOF appendfsync always (durable), noeviction" % redis_version(),
        "postgresql": "local stack (fsync=off)",
        "finished": {"history on": "last history row in PostgreSQL",
                     "history off": "every task's Redis hash says succeeded (no history writer)"},
        "extra_bench_args": bench_args,
        "stack": "a fresh dev/stack.sh stack per run",
    },
    "bullmq": dict(bull_run["settings"], bullmq_version=bull_run["bullmq_version"],
                   node_version=bull_run["node_version"], redis_version=bull_run["redis_version"]),
}
started = []
for line in open(os.path.join(work, "started")):
    what, pid, comm, identity = line.split()
    key, value = identity.split("=", 1)
    started.append({"what": what, "pid": int(pid), "comm": comm, key: value})
result = {"date": date, "machine": machine(), "tasks": tasks, "rounds": rounds,
          "order": [{"round": int(s.split(":")[0]), "system": s.split(":")[1]} for s in order],
          "settings": settings, "systems": systems, "started": started,
          "stack_dirs": open(os.path.join(work, "stacks")).read().split(), "workdir": work}

m = result["machine"]
print()
print("baton vs BullMQ, %s: %s tasks, %d round%s" % (
    date, format(tasks, ","), rounds, "" if rounds == 1 else "s"))
for r in range(1, rounds + 1):
    print("order, round %d: %s" % (r, " -> ".join(
        names[s.split(":")[1]] for s in order if s.split(":")[0] == str(r))))
print("machine: %d CPUs (%s), %.1f GiB, %s, Linux %s; load average %s at the start, %s at the end"
      % (m["nproc"], m["cpu_model"], m["memory_gib"], m["os"], m["kernel"],
         m["load_average_at_start"], m["load_average_at_end"]))
print()
rows = [("system", "end to end", "CPU per task", "vs BullMQ", "each run (tasks/s)")]
for key in ("baton_history", "baton_no_history", "bullmq"):
    s = systems[key]
    rows.append((names[key] + (" " + bull_run["bullmq_version"] if key == "bullmq" else ""),
                 format(round(s["end_to_end_rate_median"]), ",") + " tasks/s",
                 "%.0f µs" % s["cpu_us_per_task_median"], "%.2f×" % s["ratio_to_bullmq"],
                 ", ".join(format(round(x["end_to_end_rate"]), ",") for x in s["runs"])))
widths = [max(len(row[i]) for row in rows) for i in range(5)]
def line(row):
    return "| " + " | ".join(cell.ljust(widths[i]) if i in (0, 4) else cell.rjust(widths[i])
                             for i, cell in enumerate(row)) + " |"
print(line(rows[0]))
print("|" + "|".join("-" * (w + 1) + ("-" if i in (0, 4) else ":")
                     for i, w in enumerate(widths)) + "|")
for row in rows[1:]:
    print(line(row))
print()
b = settings["baton"]
print("baton:  %s tasks over %d queues, priorities 0-9 cycled, payload %d B, %d workers × %d; "
      "%s; Redis %s; PostgreSQL %s; a fresh stack per run; finished = last history row "
      "(history on) or every task hash succeeded in Redis (history off)" % (
          format(tasks, ","), queues, int(payload), int(workers), int(concurrency), b["kafka"],
          b["redis"], b["postgresql"]))
bs = settings["bullmq"]
print("BullMQ: %s on Node.js %s, %d process, %d Worker, concurrency %d, addBulk of %d, "
      "priorities 1-%d cycled, no-op processor, completed jobs kept; own redis-server %s "
      "without persistence" % (
          bs["bullmq_version"], bs["node_version"], bs["processes"], bs["workers"],
          bs["concurrency"], bs["add_bulk_chunk"], len(bs["priorities"]), bs["redis_version"]))
print("CPU per task: all processes of the side (baton: scheduler, workers, Redis, PostgreSQL, "
      "embedded Kafka; BullMQ: the Node process and its Redis), CPU seconds / tasks")
if json_out:
    with open(json_out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("json: %s" % json_out)
PY
