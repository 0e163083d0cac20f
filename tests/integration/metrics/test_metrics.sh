#!/usr/bin/env bash
# test_metrics.sh: /metrics of baton-scheduler (history writer on) and
# baton-worker, scraped with curl after a known workload, are valid
# Prometheus text exposition format 0.0.4 on EVERY line (a checker below:
# HELP/TYPE/sample syntax, label syntax and escapes, numeric values, one
# TYPE per family before its samples, no duplicate series, histogram
# buckets ascending by le, cumulative, ending in +Inf == _count), and the
# counters moved exactly as the workload says:
#   50 noop tasks -> 50 claimed, 50 succeeded;
#   10 `fail` tasks with max_attempts 2 -> 20 claimed, 20 failed attempts,
#      10 retried (maintenance promoted 10 due), 10 dead;
#   5 invalid messages published with kcat -> 5 rejected, one per reason;
#   history: every event written, backlog 0.
# Also: the content type, /healthz, /readyz, 404 for other paths.
. "$(dirname "$0")/../lib.sh"
use_redis_db 6

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"

sport=$(free_port)
wport=$(free_port)
[ "$sport" != "$wport" ] || wport=$(free_port)

SCHEDULER_HISTORY=true start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" \
  --dlq-topic "dlq.$UNIQ" --metrics-port "$sport" --metrics-bind 127.0.0.1
start_worker w --queues "$queue" --concurrency 4 --backoff-base-ms 20 --backoff-cap-ms 50 \
  --metrics-port "$wport" --metrics-bind 127.0.0.1
S="http://127.0.0.1:$sport"
W="http://127.0.0.1:$wport"
wait_until 20 "the scheduler's /healthz" curl -fsS "$S/healthz"
wait_until 20 "the worker's /healthz" curl -fsS "$W/healthz"

# ------------------------------------------------- checker and queries
cat >"$WORK/prom.py" <<'PY'
"""Exposition format 0.0.4 checker and queries.

prom.py check FILE          validate every line; exit 1 with the problems
prom.py sum FILE SELECTOR   sum of the samples matching SELECTOR
prom.py expect FILE EXPECT  each EXPECT line: "sum|count SELECTOR OP NUMBER"
SELECTOR: name{label="value",...}; the labels given must match, others
may be anything.
"""
import math, re, sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LVALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
VALUE = r"(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]Inf|NaN)"
SAMPLE = re.compile(
    rf"^({NAME})(?:\{{((?:{LABEL}={LVALUE})(?:,{LABEL}={LVALUE})*)?,?\}})? ({VALUE})(?: -?\d+)?$")
PAIR = re.compile(rf"({LABEL})=({LVALUE})")
HELP = re.compile(rf"^# HELP ({NAME}) ((?:[^\\\n]|\\\\|\\n)*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v[1:-1])


def fnum(text):
    return float(text.replace("Inf", "inf").replace("NaN", "nan"))


def parse(path):
    text = open(path, encoding="utf-8").read()
    errors, samples, types, helps = [], [], {}, {}
    if text and not text.endswith("\n"):
        errors.append("the exposition does not end with a newline")
    current = None   # the family whose samples are being read
    finished = set() # families whose sample block has ended
    seen, sampled = set(), set()
    for n, line in enumerate(text.split("\n")[:-1] if text else [], start=1):
        where = f"line {n}: {line[:120]!r}"
        if not line:
            errors.append(f"{where}: empty line")
            continue
        if line.startswith("#"):
            m = HELP.match(line) or TYPE.match(line)
            if not line.startswith(("# HELP ", "# TYPE ")):
                continue  # any other comment is allowed
            if line.startswith("# HELP "):
                if not HELP.match(line):
                    errors.append(f"{where}: bad HELP"); continue
                name = HELP.match(line).group(1)
                if name in helps:
                    errors.append(f"{where}: second HELP for {name}")
                helps[name] = True
            elif line.startswith("# TYPE "):
                if not TYPE.match(line):
                    errors.append(f"{where}: bad TYPE"); continue
                name, kind = TYPE.match(line).groups()
                if name in types:
                    errors.append(f"{where}: second TYPE for {name}")
                if name in sampled:
                    errors.append(f"{where}: TYPE after samples of {name}")
                types[name] = kind
            if m:
                name = m.group(1)
                if current and current != name:
                    finished.add(current)
                current = name
            continue
        m = SAMPLE.match(line)
        if not m:
            errors.append(f"{where}: not a valid sample line"); continue
        name, labels_text, value = m.groups()
        labels = {}
        for k, v in PAIR.findall(labels_text or ""):
            if k in labels:
                errors.append(f"{where}: label {k} twice")
            labels[k] = unescape(v)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and types.get(base) == "histogram":
                family = base
        kind = types.get(family)
        if kind is None:
            errors.append(f"{where}: sample without a TYPE")
        if family != current:
            if family in finished:
                errors.append(f"{where}: samples of {family} are not together")
            if current:
                finished.add(current)
            current = family
        if kind == "histogram" and name == family:
            errors.append(f"{where}: histogram sample without _bucket/_sum/_count")
        if kind == "histogram" and name.endswith("_bucket"):
            if "le" not in labels:
                errors.append(f"{where}: bucket without le")
        elif "le" in labels and kind == "histogram":
            errors.append(f"{where}: le on a non-bucket sample")
        if kind == "counter" and not name.endswith("_total"):
            errors.append(f"{where}: counter name does not end in _total")
        v = fnum(value)
        if kind == "counter" and not v >= 0:
            errors.append(f"{where}: counter below 0")
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            errors.append(f"{where}: duplicate series")
        seen.add(key)
        sampled.add(family)
        samples.append((name, labels, v, family, kind))
    for name in types:
        if name not in helps:
            errors.append(f"{name}: TYPE without HELP")
    # Histograms: per series, buckets ascending, cumulative, +Inf == _count.
    series = {}
    for name, labels, v, family, kind in samples:
        if kind != "histogram":
            continue
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        s = series.setdefault((family, rest), {"buckets": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            s["buckets"].append((fnum(labels["le"]), v))
        elif name.endswith("_sum"):
            s["sum"] = v
        else:
            s["count"] = v
    for (family, rest), s in series.items():
        what = f"{family}{dict(rest)}"
        les = [le for le, _ in s["buckets"]]
        if not les or les[-1] != math.inf:
            errors.append(f"{what}: no +Inf bucket last")
        if les != sorted(les) or len(set(les)) != len(les):
            errors.append(f"{what}: buckets not in ascending le order")
        counts = [c for _, c in s["buckets"]]
        if any(b < a for a, b in zip(counts, counts[1:])):
            errors.append(f"{what}: buckets not cumulative: {counts}")
        if s["count"] is None or s["sum"] is None:
            errors.append(f"{what}: _sum or _count missing")
        elif counts and counts[-1] != s["count"]:
            errors.append(f"{what}: +Inf bucket {counts[-1]} != _count {s['count']}")
    return errors, samples


def select(samples, selector):
    m = re.match(rf"^({NAME})(?:\{{(.*)\}})?$", selector)
    name, want = m.group(1), dict((k, unescape(v)) for k, v in PAIR.findall(m.group(2) or ""))
    return [v for n, labels, v, _, _ in samples
            if n == name and all(labels.get(k) == x for k, x in want.items())]


cmd, path = sys.argv[1], sys.argv[2]
errors, samples = parse(path)
if cmd == "check":
    if errors:
        print(f"{path}: {len(errors)} problems", *errors[:30], sep="\n  ")
        sys.exit(1)
    print(f"{path}: {len(samples)} samples, all valid")
elif cmd == "sum":
    print(f"{sum(select(samples, sys.argv[3])):g}")
elif cmd == "expect":
    bad = []
    for line in open(sys.argv[3]):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        agg, selector, op, number = line.split()
        values = select(samples, selector)
        got = sum(values) if agg == "sum" else len(values)
        ok = {"==": got == float(number), ">=": got >= float(number)}[op]
        if not ok:
            bad.append(f"{line}: got {got:g}")
    if bad:
        print(f"{path}:", *bad, sep="\n  ")
        sys.exit(1)
PY
prom() { python3 "$WORK/prom.py" "$@"; }

# The checker must refuse what is broken (else passing it proves nothing).
refuses() {
  printf '%b' "$2" >"$WORK/bad.prom"
  ! prom check "$WORK/bad.prom" >/dev/null || fail "the checker accepted $1"
}
H='# HELP h_seconds H.\n# TYPE h_seconds histogram\n'
refuses "no TYPE" 'x_total 1\n'
refuses "a bad label value escape" '# HELP x_total X.\n# TYPE x_total counter\nx_total{a="\\q"} 1\n'
refuses "an unquoted label" '# HELP x_total X.\n# TYPE x_total counter\nx_total{a=b} 1\n'
refuses "a non-numeric value" '# HELP g G.\n# TYPE g gauge\ng one\n'
refuses "a duplicate series" '# HELP g G.\n# TYPE g gauge\ng{a="1"} 1\ng{a="1"} 2\n'
refuses "a counter without _total" '# HELP c C.\n# TYPE c counter\nc 1\n'
refuses "no final newline" '# HELP g G.\n# TYPE g gauge\ng 1'
refuses "buckets that decrease" "${H}"'h_seconds_bucket{le="1"} 2\nh_seconds_bucket{le="+Inf"} 1\nh_seconds_sum 1\nh_seconds_count 1\n'
refuses "_count != +Inf" "${H}"'h_seconds_bucket{le="1"} 1\nh_seconds_bucket{le="+Inf"} 2\nh_seconds_sum 1\nh_seconds_count 3\n'
refuses "no +Inf bucket" "${H}"'h_seconds_bucket{le="1"} 1\nh_seconds_sum 1\nh_seconds_count 1\n'
refuses "unsorted buckets" "${H}"'h_seconds_bucket{le="2"} 1\nh_seconds_bucket{le="1"} 1\nh_seconds_bucket{le="+Inf"} 1\nh_seconds_sum 1\nh_seconds_count 1\n'
refuses "split samples" '# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\na 1\nb 1\na{x="1"} 2\n'
printf '%b' "${H}"'h_seconds_bucket{le="1"} 1\nh_seconds_bucket{le="+Inf"} 2\nh_seconds_sum 3.5\nh_seconds_count 2\n# HELP g G.\n# TYPE g gauge\ng{a="q\\"x\\\\y\\nz"} -1.5e-3\n' >"$WORK/good.prom"
prom check "$WORK/good.prom" >/dev/null || fail "the checker refused a valid exposition"
[ "$(prom sum "$WORK/good.prom" 'g{a="q\"x\\y\nz"}')" = -0.0015 ] || fail "the checker misread an escaped label"

scrape() { curl -fsS "$1/metrics" -o "$WORK/$2.prom"; }
metric() { scrape "$1" now && prom sum "$WORK/now.prom" "$2"; }
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }

# ------------------------------------------------------------ workload
{
  for i in $(seq 1 50); do
    echo "{\"id\":\"ok-$i\",\"type\":\"noop\",\"queue\":\"$queue\"}"
  done
  for i in $(seq 1 10); do
    echo "{\"id\":\"bad-$i\",\"type\":\"fail\",\"queue\":\"$queue\",\"max_attempts\":2,\"payload\":\"boom $i\"}"
  done
  echo 'not json at all'
  echo '[1,2,3]'
  echo "{\"queue\":\"$queue\"}"
  echo "{\"type\":\"bad type!\",\"queue\":\"$queue\"}"
  echo "{\"type\":\"noop\",\"queue\":\"$queue\",\"priority\":12}"
} | produce "$topic" -k "$queue"

dead_10() { [ "$(rcli zcard "baton:{$queue}:dead")" -eq 10 ]; }
wait_until 60 "10 dead tasks" dead_10
succeeded_50() { [ "$(count_state "$queue" succeeded)" -eq 50 ]; }
wait_until 60 "50 succeeded tasks" succeeded_50
# History: 50 x 3 events (submitted, claimed, succeeded) + 10 x 6
# (submitted, claimed, failed, due, claimed, dead) + 5 rejections.
wait_until 60 "the history writer to write 215 events" \
  metric_is "$S" baton_history_events_written_total 215
wait_until 30 "the history backlog gauge at 0" metric_is "$S" baton_history_backlog_events 0
# Queue gauges are sampled every 2 s.
wait_until 30 "the dead gauge at 10" metric_is "$S" "baton_queue_dead{queue=\"$queue\"}" 10
wait_until 30 "the running gauge at 0" metric_is "$S" "baton_queue_running{queue=\"$queue\"}" 0
wait_until 30 "all worker threads idle" metric_is "$W" 'baton_worker_threads{state="idle"}' 4

# ------------------------------------------------------------ scrape
scrape "$S" scheduler
scrape "$W" worker
prom check "$WORK/scheduler.prom" || fail "the scheduler's /metrics is not valid"
prom check "$WORK/worker.prom" || fail "the worker's /metrics is not valid"

cat >"$WORK/scheduler.expect" <<EOF
sum baton_ingest_messages_total{topic="$topic"} == 65
count baton_ingest_rejected_total == 5
sum baton_ingest_rejected_total == 5
sum baton_ingest_rejected_total{reason="invalid_json"} == 1
sum baton_ingest_rejected_total{reason="not_an_object"} == 1
sum baton_ingest_rejected_total{reason="missing_field"} == 1
sum baton_ingest_rejected_total{reason="bad_charset"} == 1
sum baton_ingest_rejected_total{reason="out_of_range"} == 1
sum baton_ingest_enqueued_total{queue="$queue",result="queued"} == 60
count baton_ingest_enqueued_total{queue="$queue"} == 1
sum baton_ingest_batch_seconds_count >= 1
sum baton_ingest_paused == 0
count baton_ingest_paused == 1
count baton_kafka_consumer_lag{topic="$topic"} >= 1
sum baton_kafka_consumer_lag{topic="$topic"} == 0
sum baton_redis_roundtrip_seconds_count{component="ingest"} >= 1
sum baton_redis_roundtrip_seconds_count{component="maintenance"} >= 1
sum baton_redis_roundtrip_seconds_count{component="history"} >= 1
sum baton_maintenance_tasks_total{queue="$queue",action="due"} == 10
count baton_maintenance_tasks_total{queue="$queue"} == 1
count baton_queue_ready{queue="$queue"} == 10
sum baton_queue_ready{queue="$queue"} == 0
sum baton_queue_scheduled{queue="$queue"} == 0
sum baton_queue_running{queue="$queue"} == 0
sum baton_queue_dead{queue="$queue"} == 10
sum baton_history_backlog_events == 0
sum baton_history_events_written_total == 215
sum baton_history_batch_seconds_count >= 1
EOF
cat >"$WORK/worker.expect" <<EOF
sum baton_worker_tasks_claimed_total{queue="$queue",type="noop"} == 50
sum baton_worker_tasks_claimed_total{queue="$queue",type="fail"} == 20
sum baton_worker_tasks_succeeded_total{queue="$queue",type="noop"} == 50
count baton_worker_tasks_succeeded_total == 1
sum baton_worker_tasks_failed_total{queue="$queue",type="fail",reason="error"} == 20
count baton_worker_tasks_failed_total == 1
sum baton_worker_tasks_retried_total{queue="$queue",type="fail"} == 10
count baton_worker_tasks_retried_total == 1
sum baton_worker_tasks_dead_total{queue="$queue",type="fail"} == 10
count baton_worker_tasks_dead_total == 1
count baton_worker_stale_refusals_total == 0
count baton_worker_tasks_canceled_total == 0
sum baton_task_run_seconds_count{type="noop"} == 50
sum baton_task_run_seconds_bucket{type="noop",le="+Inf"} == 50
sum baton_task_run_seconds_count{type="fail"} == 20
sum baton_worker_threads{state="busy"} == 0
sum baton_worker_threads{state="idle"} == 4
sum baton_redis_roundtrip_seconds_count{component="worker"} >= 70
EOF
prom expect "$WORK/scheduler.prom" "$WORK/scheduler.expect" || fail "scheduler counters are off"
prom expect "$WORK/worker.prom" "$WORK/worker.expect" || fail "worker counters are off"

# ------------------------------------------------------------ endpoints
for url in "$S" "$W"; do
  ctype=$(curl -fsS -o /dev/null -w '%{content_type}' "$url/metrics")
  [[ "$ctype" == "text/plain; version=0.0.4"* ]] || fail "$url/metrics content type: $ctype"
  [ "$(curl -sS "$url/healthz")" = ok ] || fail "$url/healthz is not ok"
  code=$(curl -sS -o "$WORK/ready.out" -w '%{http_code}' "$url/readyz")
  [ "$code" = 200 ] || fail "$url/readyz: $code $(cat "$WORK/ready.out")"
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$url/nope")
  [ "$code" = 404 ] || fail "$url/nope: $code, expected 404"
done
echo "scheduler: $(grep -vc '^#' "$WORK/scheduler.prom") samples, worker: $(grep -vc '^#' "$WORK/worker.prom") samples, all valid, all counts exact"
echo "1 passed, 0 failed"
