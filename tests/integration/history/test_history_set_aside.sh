#!/usr/bin/env bash
# test_history_set_aside.sh: one entry PostgreSQL refuses does not stop the
# history writer. Entries written straight into a queue's events stream
# (XADD, past the worker's cleaning of handler text) that PostgreSQL
# refuses: an error text with the byte 0xff (invalid UTF-8, SQLSTATE
# 22021), a seq that is not a number (22P02), an entry with no state
# (NOT NULL, 23502), an entry of two such events, and an entry that cannot
# be split into events. They sit in one batch between good events. The
# writer sets each aside in baton.history_set_aside, raw bytes intact,
# counts it in baton_history_set_aside_total{class} and logs it; every
# good event before and after them reaches PostgreSQL and the stream
# drains.
. "$(dirname "$0")/../lib.sh"
use_redis_db 14

topic="t.$UNIQ"
queue="q.$UNIQ"
stream="baton:{$queue}:events"
create_topic "$topic"
# Ingest and a worker first, without the history writer, so that the
# events pile up in the stream and the writer later reads good and bad
# entries in one batch.
start_scheduler ing --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
start_worker w --queues "$queue" --concurrency 4
succeeded() { [ "$(count_state "$queue" succeeded)" -eq "$1" ]; }

for n in $(seq 1 10); do echo "{\"id\":\"before-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done |
  produce "$topic" -k "$queue"
wait_until 60 "10 tasks succeeded in Redis" succeeded 10

now=$(date +%s%3N)
bad_utf8=$(printf 'exit status 1: \xff boom' | rcli -x xadd "$stream" '*' id inj-utf8 seq 1 \
  event failed from running to scheduled at "$now" attempt 1 token 1 worker w error)
bad_seq=$(rcli xadd "$stream" '*' id inj-seq seq not-a-number event claimed from queued \
  to running at "$now" attempt 1 token 1 worker w)
no_state=$(rcli xadd "$stream" '*' id inj-nostate seq 1)
# One stream entry of two events (a script call writes all its events in
# one entry, docs/redis.md), both refused: each is set aside on its own, as
# <entry id>/<index>.
two=$(rcli xadd "$stream" '*' id inj-two-a seq not-a-number event claimed from queued \
  to running at "$now" attempt 1 token 1 worker w id inj-two-b seq 2)
# An entry that cannot be split into events (it does not begin with id):
# written whole as one event, which PostgreSQL refuses (no task id, 23502).
unsplit=$(rcli xadd "$stream" '*' seq 1 event claimed)
echo "injected $bad_utf8 $bad_seq $no_state $two $unsplit"

for n in $(seq 1 10); do echo "{\"id\":\"after-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done |
  produce "$topic" -k "$queue"
wait_until 60 "20 tasks succeeded in Redis" succeeded 20
[ "$(event_count "$queue")" -ge 65 ] || fail "expected 60 task events and 6 injected in the stream"

# The history writer alone, with its metrics endpoint.
port=$(free_port)
SCHEDULER_HISTORY=true start_scheduler hist --ingest=false --maintenance=false \
  --metrics-port "$port" --metrics-bind 127.0.0.1
all_written() {
  [ "$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'succeeded'")" -eq 20 ] &&
    [ "$(rcli xlen "$stream")" -eq 0 ]
}
wait_until 60 "all 20 tasks in PostgreSQL and the stream drained" all_written

q() { psql "$BATON_PG_DSN" -qAtc "$1"; }
events=$(q "SELECT count(*) FROM baton.task_events WHERE queue = '$queue'")
[ "$events" -eq 60 ] || fail "$events task events in PostgreSQL, expected 60 (3 per task)"
[ "$(q "SELECT count(*) FROM baton.task_events WHERE queue = '$queue' AND task_id LIKE 'inj-%'")" -eq 0 ] ||
  fail "an injected entry reached baton.task_events"
aside=$(q "SELECT entry_id || '#' || event_no || ' ' || sqlstate FROM baton.history_set_aside WHERE stream = '$stream'" | LC_ALL=C sort)
want=$(printf '%s#0 22021\n%s#0 22P02\n%s#0 23502\n%s#0 22P02\n%s#1 23502\n%s#0 23502\n' "$bad_utf8" "$bad_seq" \
  "$no_state" "$two" "$two" "$unsplit" | LC_ALL=C sort)
[ "$aside" = "$want" ] || fail "set-aside rows: got '$aside', want '$want'"
# The raw bytes are kept: the error value still holds 0xff.
raw=$(q "SELECT encode(s.fields[array_length(s.fields, 1)], 'escape') FROM baton.history_set_aside s WHERE entry_id = '$bad_utf8'")
[ "$raw" = 'exit status 1: \377 boom' ] || fail "raw error bytes not kept: '$raw'"
grep -q "set aside entry $bad_utf8 of $stream" "$WORK/hist.log" || fail "no log line for $bad_utf8"
grep -q "set aside entry $two of $stream (event 1 of the entry)" "$WORK/hist.log" || fail "no log line for $two, event 1"
grep -q "entry $unsplit of $stream cannot be split into events" "$WORK/hist.log" ||
  fail "no log line for the entry that cannot be split"
# Each event of the two-event entry keeps its own fields only.
two_fields=$(q "SELECT array_length(fields, 1) FROM baton.history_set_aside WHERE entry_id = '$two' AND event_no = 1")
[ "$two_fields" -eq 4 ] || fail "the second event of $two was set aside with $two_fields fields, expected 4"
left=$(rcli xpending "$stream" baton-history | sed -n 1p)
[ "$left" -eq 0 ] || fail "$left entries still pending"

curl -fsS "http://127.0.0.1:$port/metrics" -o "$WORK/metrics.prom"
grep -qx 'baton_history_set_aside_total{class="22"} 3' "$WORK/metrics.prom" ||
  fail "metric class 22: $(grep set_aside "$WORK/metrics.prom")"
grep -qx 'baton_history_set_aside_total{class="23"} 3' "$WORK/metrics.prom" ||
  fail "metric class 23: $(grep set_aside "$WORK/metrics.prom")"

# Later events still flow: a new task reaches PostgreSQL through the same writer.
echo "{\"id\":\"later\",\"type\":\"noop\",\"queue\":\"$queue\"}" | produce "$topic" -k "$queue"
later() { [ "$(q "SELECT state FROM baton.tasks WHERE queue = '$queue' AND id = 'later'")" = succeeded ]; }
wait_until 60 "a later task in PostgreSQL" later
echo "1 passed, 0 failed"
