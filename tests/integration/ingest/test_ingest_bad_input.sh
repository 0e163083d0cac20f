#!/usr/bin/env bash
# test_ingest_bad_input.sh: malformed messages published with kcat (not our
# producer), interleaved with good ones. Every good one is enqueued, every
# bad one lands in the DLQ topic with its original value and headers naming
# the reason and the source coordinates, a "rejected" event is recorded, and
# ingest never stops (the last good message, after all the bad ones, is in).
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
dlq="dlq.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
create_topic "$dlq"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "$dlq" \
  --max-payload-bytes 1000

big=$(python3 -c 'print("x" * 1200)')
# Bad messages, each with the reason ingest must give (| splits key|value).
cat >"$WORK/bad" <<JSON
not json at all|invalid_json
[1,2,3]|not_an_object
{"queue":"$queue"}|missing_field
{"type":"bad type!","queue":"$queue"}|bad_charset
{"type":"x","queue":"$queue","priority":12}|out_of_range
{"type":"x","queue":"$queue","priority":"high"}|wrong_type
{"type":"x","queue":"$queue","max_attempts":0}|out_of_range
{"type":"x","queue":"$queue","run_at":"tomorrow"}|bad_time
{"type":"x","queue":"$queue","deadline":"2026-02-30T00:00:00Z"}|bad_time
{"type":"x","queue":"$queue","meta":{"tenant":7}}|wrong_type
{"type":"x","queue":"$queue","payload":"$big"}|too_large
{"type":"x","queue":"$queue","run_at":"2030-01-01T00:00:00Z","delay_ms":5}|conflicting_fields
{"type":"x","queue":"$queue","id":""}|bad_length
{"type":"","queue":"$queue"}|bad_length
{"type":"x","queue":"$queue"} trailing|invalid_json
JSON
# A 1.2 MB message: over any limit, and over Kafka's default 1 MB message
# size, so its DLQ copy is truncated (header baton-truncated-from) rather
# than blocking ingest.
python3 -c 'import json; print(json.dumps({"type": "x", "payload": "y" * 1200000}) + "|too_large")' >>"$WORK/bad"
nbad=$(wc -l <"$WORK/bad")
# Interleave: good-0, bad-1, good-1, bad-2, ... good-N; one partition (-p 0)
# keeps the order, so the last good message comes after every bad one.
{
  i=0
  echo "{\"id\":\"good-$i\",\"type\":\"ok\",\"queue\":\"$queue\"}"
  while IFS= read -r line; do
    i=$((i + 1))
    printf '%s\n' "${line%|*}"
    echo "{\"id\":\"good-$i\",\"type\":\"ok\",\"queue\":\"$queue\"}"
  done <"$WORK/bad"
} | produce "$topic" -p 0 -X message.max.bytes=2000000

last="good-$nbad"
has_last() { [ "$(rcli exists "baton:{$queue}:t:$last")" -eq 1 ]; }
wait_until 60 "the last good task ($last)" has_last
[ "$(task_count "$queue")" -eq $((nbad + 1)) ] ||
  fail "expected $((nbad + 1)) good tasks, got $(task_count "$queue")"

# The DLQ holds every bad message, value unchanged, with its reason.
have_all_dlq() {
  kcat -C -b "$BATON_KAFKA_BROKERS" -t "$dlq" -o beginning -e -q -X fetch.message.max.bytes=2000000 \
    -f '%h\t%s\n' >"$WORK/dlq.out" 2>/dev/null
  [ "$(wc -l <"$WORK/dlq.out")" -ge "$nbad" ]
}
wait_until 30 "$nbad messages in the DLQ" have_all_dlq
python3 - "$WORK/bad" "$WORK/dlq.out" "$topic" <<'PY' || fail "DLQ content is wrong"
import re, sys
bad = [l.rstrip("\n").rsplit("|", 1) for l in open(sys.argv[1])]
rows = []
for line in open(sys.argv[2]):
    headers, value = line.rstrip("\n").split("\t", 1)
    # kcat joins headers with ","; details contain commas, so split only
    # where the next header name starts.
    h = dict(kv.split("=", 1) for kv in re.split(r",(?=baton-[a-z-]+=)", headers))
    rows.append((h, value))
assert len(rows) == len(bad), f"{len(rows)} DLQ messages for {len(bad)} bad ones"
# The DLQ's partitions are read one after another: restore source order.
rows.sort(key=lambda r: int(r[0]["baton-source-offset"]))
for (value, reason), (h, got) in zip(bad, rows):
    if "baton-truncated-from" in h:
        assert int(h["baton-truncated-from"]) == len(value) and value.startswith(got), \
            f"truncated copy is not a prefix of the original ({len(got)} of {len(value)} bytes)"
        assert len(value) > 1000000, "only messages over 1 MB are truncated"
    else:
        assert got == value, f"value changed: {got[:60]!r} != {value[:60]!r}"
    assert h["baton-reason"] == reason, f"{value[:40]!r}: reason {h['baton-reason']} != {reason}"
    assert h["baton-source-topic"] == sys.argv[3], h
    assert h["baton-source-partition"] == "0", h
    assert int(h["baton-source-offset"]) >= 0, h
    assert h.get("baton-detail"), h
offsets = [int(h["baton-source-offset"]) for h, _ in rows]
assert len(set(offsets)) == len(offsets), f"a message was dead-lettered twice: {offsets}"
print(f"DLQ ok: {len(rows)} rejected messages, reasons {sorted({r for _, r in bad})}")
PY

# Each rejection was also recorded as an event for history.
rejected=$(rcli xrange baton:rejections - + | grep -c "^$topic\$" || true)
[ "$rejected" -eq "$nbad" ] || fail "expected $nbad rejection events, got $rejected"
kill -0 "$sched_pid" || fail "the scheduler died"
echo "1 passed, 0 failed"
