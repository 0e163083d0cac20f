#!/usr/bin/env bash
# test_history_batch_bytes.sh: a history batch is bounded by bytes as well
# as by count. 200 delayed tasks with 12 KiB payloads (2.5 MB of
# "submitted" events) wait in the events stream; a writer with
# --history-batch-bytes 1 MiB (and --history-batch 2000, which alone would
# take them all in one batch) writes them in several batches, none over
# 1 MiB, and all of them reach PostgreSQL.
. "$(dirname "$0")/../lib.sh"
use_redis_db 15

topic="t.$UNIQ"
queue="q.$UNIQ"
stream="baton:{$queue}:events"
create_topic "$topic"
start_scheduler ing --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
python3 - "$queue" <<'PY' | produce "$topic" -k "$queue"
import json, sys
for n in range(200):
    print(json.dumps({"id": f"big-{n}", "type": "noop", "queue": sys.argv[1],
                      "delay_ms": 600000, "payload": {"blob": "x" * 12288}}))
PY
all_in_stream() { [ "$(event_count "$queue")" -eq 200 ]; }
wait_until 60 "200 submitted events in the stream" all_in_stream

SCHEDULER_HISTORY=true start_scheduler hist --ingest=false --maintenance=false \
  --history-batch 2000 --history-batch-bytes 1048576 --max-payload-bytes 16384
all_written() {
  [ "$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM baton.tasks WHERE queue = '$queue'")" -eq 200 ] &&
    [ "$(rcli xlen "$stream")" -eq 0 ]
}
wait_until 60 "all 200 tasks in PostgreSQL and the stream drained" all_written

# One debug line per batch: "wrote a batch of N events, B bytes, S set aside".
grep -o 'wrote a batch of [0-9]* events, [0-9]* bytes' "$WORK/hist.log" >"$WORK/batches" ||
  fail "no batch was logged"
batches=$(wc -l <"$WORK/batches")
events=$(awk '{s += $5} END {print s}' "$WORK/batches")
largest=$(awk '$7 > m {m = $7} END {print m}' "$WORK/batches")
echo "$batches batches, $events events, largest $largest bytes"
[ "$events" -eq 200 ] || fail "batches hold $events events, expected 200"
[ "$batches" -ge 3 ] || fail "only $batches batches for 2.5 MB of events"
[ "$largest" -le 1048576 ] || fail "a batch of $largest bytes, over --history-batch-bytes"
echo "1 passed, 0 failed"
