#!/usr/bin/env bash
# scenario_malformed_flood.sh: a flood of malformed messages from a foreign
# client (kcat), mixed in time with a steady stream of good tasks. Bad input
# never stops, crashes or blocks the scheduler (docs/task-contract.md):
# every good task succeeds, and every bad message is dead-lettered exactly
# once (topic baton.tasks.dlq, with its reason) and recorded exactly once in
# history (baton.rejections).
#
# 10,000 bad messages of many kinds (not JSON, truncated JSON, not an
# object, missing or empty type, bad charset, priority out of range or of
# the wrong type, max_attempts 0, unparsable times, conflicting fields,
# meta of the wrong type, an over-long id, payloads over the scheduler's
# --max-payload-bytes), each with the reason ingest must give, are sent by
# kcat in chunks while the checker publishes a few thousand good tasks. The
# budget respects the embedded Kafka's 5 MiB per partition: about 2 MB of
# bad messages spread over baton.tasks's 16 partitions by their keys, and
# their copies (same keys) over the DLQ's 4.

# shellcheck disable=SC2154 # sched_pid: set by chaos_scheduler
# shellcheck source=tests/chaos/chaos_lib.sh
. "$(dirname "$0")/chaos_lib.sh"

GOOD=${CHAOS_TASKS:-3000}
RATE=200            # good tasks/s: about 15 s of publishing
BAD=10000
CHUNKS=10           # the bad messages go out in this many kcat runs...
CHUNK_GAP=1         # ...this many seconds apart (workload pacing)
MAX_PAYLOAD=2000    # the scheduler's --max-payload-bytes
DLQ_TOPIC=baton.tasks.dlq
TOPIC=baton.tasks

chaos_up
chaos_scheduler sched --max-payload-bytes "$MAX_PAYLOAD"
chaos_worker w1 --concurrency 6
chaos_worker w2 --concurrency 6
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
psql_q() { psql "$BATON_PG_DSN" -qAtc "$1"; }

# The bad messages, one a line ("<reason>\t<value>"), in a shuffled order
# of kinds; values are unique (a number in each) and never contain a newline.
python3 - "$BAD" "$QUEUE" "$MAX_PAYLOAD" >"$WORK/bad.tsv" <<'PY'
import json, random, sys
count, queue, max_payload = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
q = json.dumps(queue)
kinds = [
    ("invalid_json", lambda n: "not json at all %d" % n),
    ("invalid_json", lambda n: '{"type":"x","queue":%s,"n":%d' % (q, n)),
    ("invalid_json", lambda n: '{"type":"x","queue":%s,"n":%d} trailing' % (q, n)),
    ("invalid_json", lambda n: "{'type': 'x', 'n': %d}" % n),
    ("not_an_object", lambda n: "[%d,2,3]" % n),
    ("not_an_object", lambda n: '"task %d"' % n),
    ("missing_field", lambda n: '{"queue":%s,"n":%d}' % (q, n)),
    ("bad_length", lambda n: '{"type":"","queue":%s,"n":%d}' % (q, n)),
    ("bad_length", lambda n: '{"type":"x","queue":%s,"id":"%s"}' % (q, "i%d-" % n + "x" * 130)),
    ("bad_charset", lambda n: '{"type":"bad type %d!","queue":%s}' % (n, q)),
    ("out_of_range", lambda n: '{"type":"x","queue":%s,"priority":%d,"n":%d}' % (q, 10 + n % 90, n)),
    ("out_of_range", lambda n: '{"type":"x","queue":%s,"max_attempts":0,"n":%d}' % (q, n)),
    ("wrong_type", lambda n: '{"type":"x","queue":%s,"priority":"high %d"}' % (q, n)),
    ("wrong_type", lambda n: '{"type":%d,"queue":%s}' % (n, q)),
    ("wrong_type", lambda n: '{"type":"x","queue":%s,"meta":{"tenant":%d}}' % (q, n)),
    ("bad_time", lambda n: '{"type":"x","queue":%s,"run_at":"tomorrow %d"}' % (q, n)),
    ("bad_time", lambda n: '{"type":"x","queue":%s,"deadline":"2026-02-30T00:00:00Z","n":%d}' % (q, n)),
    ("conflicting_fields",
     lambda n: '{"type":"x","queue":%s,"run_at":"2030-01-01T00:00:00Z","delay_ms":%d}' % (q, n)),
]
big = ("too_large", lambda n: '{"type":"x","queue":%s,"payload":"%d%s"}' % (q, n, "y" * (max_payload + 100)))
oversized = count // 20  # 5 %: about 1 MB of the budget
rows = [big] * oversized + [kinds[i % len(kinds)] for i in range(count - oversized)]
random.shuffle(rows)
values = [(reason, make(n)) for n, (reason, make) in enumerate(rows)]
assert len({v for _, v in values}) == len(values), "bad messages are not all different"
for reason, value in values:
    print("%s\t%s" % (reason, value))
PY
[ "$(wc -l <"$WORK/bad.tsv")" -eq "$BAD" ] || fail "generated $(wc -l <"$WORK/bad.tsv") bad messages, not $BAD"
cut -f1 "$WORK/bad.tsv" | sort | uniq -c | awk '{print $2, $1}' | sort >"$WORK/expected.reasons"
bad_bytes=$(cut -f2- "$WORK/bad.tsv" | wc -c)
echo "bad messages: $BAD, $bad_bytes bytes; by reason: $(tr '\n' ' ' <"$WORK/expected.reasons")"

chaos_produce "$GOOD" --rate "$RATE" --id-prefix good >"$WORK/produce.out" 2>&1 &
produce_pid=$!
TEST_PIDS+=("$produce_pid")

# The flood, in chunks while the good tasks stream in.
per_chunk=$((BAD / CHUNKS))
for ((c = 0; c < CHUNKS; c++)); do
  # Keyed "bad-<line>", so they spread over the partitions by hash (without
  # a key, librdkafka's sticky partitioner would put a whole chunk on one),
  # and so do their DLQ copies, which keep the key.
  awk -F '\t' -v from=$((c * per_chunk + 1)) -v to=$(((c + 1) * per_chunk)) \
    'NR >= from && NR <= to { print "bad-" NR "\t" $2 }' "$WORK/bad.tsv" |
    produce "$TOPIC" -K $'\t' || fail "kcat could not publish bad chunk $c"
  alive "$sched_pid" || fail "the scheduler died during the flood (chunk $c)"
  sleep "$CHUNK_GAP" # pacing of the flood, not a wait for a condition
done
rc=0
wait "$produce_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the checker could not publish the good tasks (exit $rc): $(tail -n 5 "$WORK/produce.out")"
acked=$(wc -l <"$ACKED")

chaos_verify --expect succeeded --wait-s 200
alive "$sched_pid" || fail "the scheduler died"

# The DLQ: exactly one copy of each bad message, with the right reason.
dlq_read() {
  kcat -C -b "$BATON_KAFKA_BROKERS" -t "$DLQ_TOPIC" -o beginning -e -q \
    -f '%h\t%s\n' >"$WORK/dlq.out" 2>/dev/null
}
dlq_has_all() { dlq_read && [ "$(wc -l <"$WORK/dlq.out")" -ge "$BAD" ]; }
wait_until 60 "$BAD messages in $DLQ_TOPIC" dlq_has_all
# History: the writer copies baton:rejections to baton.rejections.
rejections() { psql_q "SELECT count(*) FROM baton.rejections WHERE kafka_topic = '$TOPIC'"; }
history_has_all() { [ "$(rejections)" -ge "$BAD" ]; }
wait_until 60 "$BAD rows in baton.rejections" history_has_all
psql_q "SELECT reason, count(*) FROM baton.rejections WHERE kafka_topic = '$TOPIC' GROUP BY reason" |
  tr '|' ' ' | sort >"$WORK/history.reasons"
python3 - "$WORK/bad.tsv" "$WORK/dlq.out" "$WORK/expected.reasons" "$WORK/history.reasons" "$TOPIC" <<'PY' ||
import collections, re, sys
bad_file, dlq_file, expected_file, history_file, topic = sys.argv[1:]
sent = {}
for line in open(bad_file, encoding="utf-8"):
    reason, value = line.rstrip("\n").split("\t", 1)
    sent[value] = reason
problems = []
copies = collections.Counter()
reasons = collections.Counter()
coords = collections.Counter()
for line in open(dlq_file, encoding="utf-8", errors="replace"):
    headers, value = line.rstrip("\n").split("\t", 1)
    h = dict(kv.split("=", 1) for kv in re.split(r",(?=baton-[a-z-]+=)", headers))
    if h.get("baton-source-topic") != topic:
        problems.append("DLQ message from topic %r" % h.get("baton-source-topic"))
        continue
    coords[(h["baton-source-partition"], h["baton-source-offset"])] += 1
    copies[value] += 1
    reasons[h["baton-reason"]] += 1
    if value in sent and h["baton-reason"] != sent[value]:
        problems.append("%r: reason %s, expected %s" % (value[:50], h["baton-reason"], sent[value]))
missing = [v for v in sent if copies[v] == 0]
twice = [v for v, n in copies.items() if n > 1]
stray = [v for v in copies if v not in sent]
twice_coords = [c for c, n in coords.items() if n > 1]
if missing:
    problems.append("%d bad messages not in the DLQ, e.g. %r" % (len(missing), missing[0][:60]))
if twice or twice_coords:
    problems.append("%d bad messages dead-lettered more than once" % max(len(twice), len(twice_coords)))
if stray:
    problems.append("%d DLQ messages that were never sent, e.g. %r" % (len(stray), stray[0][:60]))
expected = dict(l.split() for l in open(expected_file))
history = dict(l.split() for l in open(history_file) if l.strip())
for reason, n in expected.items():
    if reasons[reason] != int(n):
        problems.append("DLQ has %d %s, expected %s" % (reasons[reason], reason, n))
    if int(history.get(reason, 0)) != int(n):
        problems.append("history has %s %s, expected %s" % (history.get(reason, 0), reason, n))
for reason in set(history) - set(expected):
    problems.append("history has %s of unexpected reason %s" % (history[reason], reason))
if problems:
    print("\n".join(problems[:30]))
    sys.exit(1)
print("DLQ and history ok: %d bad messages, one DLQ copy and one history row each; reasons %s"
      % (len(sent), " ".join("%s=%s" % kv for kv in sorted(expected.items()))))
PY
  fail "the DLQ or history does not hold exactly the bad messages (see above)"
dlq_count=$(wc -l <"$WORK/dlq.out")
history_count=$(rejections)
[ "$dlq_count" -eq "$BAD" ] || fail "$dlq_count messages in $DLQ_TOPIC, expected exactly $BAD"
[ "$history_count" -eq "$BAD" ] || fail "$history_count rows in baton.rejections, expected exactly $BAD"
redis_rejections=$(rcli xlen baton:rejections)
echo "CHAOS FAULTS $TEST_NAME: $BAD malformed messages ($bad_bytes bytes, $(wc -l <"$WORK/expected.reasons")" \
  "reasons) among $acked good tasks; DLQ $dlq_count, baton.rejections $history_count," \
  "baton:rejections backlog $redis_rejections, ${SECONDS}s"
echo "1 passed, 0 failed"
