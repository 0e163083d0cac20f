#!/usr/bin/env bash
# test_compare.sh: bench/compare/compare.sh with 2,000 tasks (baton with
# history, BullMQ, baton without history, each on its own servers). Checks
# the output, never the figures (timing belongs in docs/performance.md):
# the table has the three systems, each with a throughput and a ratio to
# BullMQ; the JSON has the same, the machine, the date, both sides'
# settings, and every run counted each task once; and nothing the script
# started is left afterwards (processes, stack dirs, its temp dir).
#
# BullMQ comes from the npm registry (npm ci at run time): when the
# registry cannot be reached the script exits 77 and so does this test
# (ctest reports it skipped, with the reason below); any other failure
# fails. First, that exit 77 is checked with a registry that cannot answer.
. "$(dirname "$0")/../lib.sh"

# An unreachable registry (a closed local port, an empty npm cache) is
# said so, with exit 77, before anything starts.
rc=0
mkdir "$WORK/npm-cache"
npm_config_registry=http://127.0.0.1:9/ npm_config_cache="$WORK/npm-cache" \
  "$BATON_SOURCE_DIR/bench/compare/compare.sh" --tasks 10 --build-dir "$BATON_BIN_DIR" \
  >"$WORK/offline.out" 2>&1 || rc=$?
[ "$rc" -eq 77 ] || { cat "$WORK/offline.out" >&2; fail "an unreachable npm registry gave exit $rc, not 77"; }
grep -q "the npm registry cannot be reached" "$WORK/offline.out" ||
  fail "an unreachable npm registry is not named as the reason"

rc=0
"$BATON_SOURCE_DIR/bench/compare/compare.sh" --tasks 2000 --build-dir "$BATON_BIN_DIR" \
  --json "$WORK/compare.json" >"$WORK/compare.out" 2>"$WORK/compare.err" || rc=$?
cat "$WORK/compare.out"
cat "$WORK/compare.err" >&2
if [ "$rc" -eq 77 ]; then
  echo "SKIPPED: the npm registry cannot be reached, so BullMQ cannot be installed" \
    "(compare.sh exit 77); nothing else was checked" >&2
  exit 77
fi
[ "$rc" -eq 0 ] || fail "compare.sh failed (exit $rc)"

# The table: three rows, each a throughput and a ratio.
for label in "baton, history on" "baton, history off" "BullMQ 5\.[0-9.]+"; do
  grep -Eq "^\| $label *\| *[0-9,]+ tasks/s \| *[0-9]+ µs \| *[0-9]+\.[0-9]{2}× \|" \
    "$WORK/compare.out" || fail "the table has no figures for '$label'"
done
grep -q "^machine: [0-9]* CPUs (" "$WORK/compare.out" || fail "the output does not name the machine"
grep -q "^baton:  2,000 tasks over 8 queues" "$WORK/compare.out" || fail "no baton settings"
grep -q "^BullMQ: 5\.[0-9.]* on Node.js v[0-9]" "$WORK/compare.out" || fail "no BullMQ settings"

python3 - "$WORK/compare.json" <<'PY' || fail "the JSON report is incomplete"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["tasks"] == 2000 and r["date"] and r["rounds"] == 1, r
m = r["machine"]
assert m["nproc"] >= 1 and m["cpu_model"] and m["memory_gib"] > 0, m
assert [o["system"] for o in r["order"]] == ["baton_history", "bullmq", "baton_no_history"], r["order"]
s = r["systems"]
assert set(s) == {"baton_history", "baton_no_history", "bullmq"}, s.keys()
for name, sys_ in s.items():
    assert sys_["end_to_end_rate_median"] > 0 and sys_["cpu_us_per_task_median"] > 0, name
    assert sys_["ratio_to_bullmq"] > 0, name
    assert len(sys_["runs"]) == 1, name
    run = sys_["runs"][0]
    assert run["tasks"] == 2000 and run["counted_once"] == 2000 and run["duplicates"] == 0, name
assert abs(s["bullmq"]["ratio_to_bullmq"] - 1) < 1e-9
ratio = s["baton_history"]["end_to_end_rate_median"] / s["bullmq"]["end_to_end_rate_median"]
assert abs(s["baton_history"]["ratio_to_bullmq"] - ratio) < 1e-9
assert s["baton_history"]["runs"][0]["history"] is True
assert s["baton_no_history"]["runs"][0]["history"] is False
assert s["baton_history"]["runs"][0]["settings"]["queues"].__len__() == 8
b = s["bullmq"]["runs"][0]["settings"]
assert b["concurrency"] == 100 and b["add_bulk_chunk"] == 1000 and b["processes"] == 1, b
assert b["priorities"] == list(range(1, 11)), b
assert r["settings"]["bullmq"]["bullmq_version"].startswith("5."), r["settings"]["bullmq"]
assert r["settings"]["baton"]["tasks"] == 2000, r["settings"]["baton"]
whats = [p["what"] for p in r["started"]]
for what in ("bullmq-redis", "bullmq-node", "baton-bench", "stack-redis", "stack-postgres",
             "stack-kafka", "bench-scheduler", "bench-worker1", "bench-worker2"):
    assert what in whats, (what, whats)
assert len(r["stack_dirs"]) == 2, r["stack_dirs"]
with open(sys.argv[1] + ".started", "w") as f:
    for p in r["started"]:
        f.write("%s %d %s %s\n" % (p["what"], p["pid"], p["comm"],
                                   "start=" + p["start"] if "start" in p else "cmdline=" + p["cmdline"]))
with open(sys.argv[1] + ".dirs", "w") as f:
    f.write("\n".join(r["stack_dirs"] + [r["workdir"]]) + "\n")
print("compare report ok")
PY

# Nothing left: no process it started still runs (same pid, same command
# name, and the same start time or, for the bench's scheduler and workers,
# the run id on its command line: other tests' processes reuse pids), no
# stack dir, no temp dir. A zombie has stopped (dev/stack.sh's servers are
# orphans once `up` returns, and whoever adopts them may reap them late).
# Prints "STATE STARTTIME" of process $1 (fields 3 and 22 of its stat).
state_start() {
  local stat rest fields
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  rest=${stat##*) }
  read -r -a fields <<<"$rest"
  echo "${fields[0]} ${fields[19]}"
}
while read -r what pid comm identity; do
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || continue
  state=$(state_start "$pid") || continue
  [ "${state%% *}" != Z ] || continue
  case $identity in
    start=*) [ "${state#* }" = "${identity#start=}" ] || continue ;;
    cmdline=*) tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "${identity#cmdline=}" || continue ;;
    *) fail "unknown identity '$identity' of $what" ;;
  esac
  fail "compare.sh left $what (pid $pid, $comm, $identity) running"
done <"$WORK/compare.json.started"
while read -r dir; do
  [ -z "$dir" ] || [ ! -e "$dir" ] || fail "compare.sh left $dir behind"
done <"$WORK/compare.json.dirs"
echo "1 passed, 0 failed"
