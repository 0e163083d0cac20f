#!/usr/bin/env bash
# test_history_rows.sh: a task row is right whatever order its events reach
# PostgreSQL in, and holds every column of the task. Events are written
# straight into a queue's events stream (as the scripts write them) in
# steps, the history writer draining the stream after each, so that they
# arrive in separate batches:
#   a: claimed and succeeded before submitted: no row until the submitted
#      event comes (noted in baton.tasks_early), then the row from all
#      three, with every static column of the task JSON (extra, meta,
#      payload, run_at, deadline, Kafka coordinates);
#   b: events 1, 2, then 4, then 3: the row is recomputed from all events
#      when 3 comes (state from 4, error from 3);
#   c: claimed with the submitted time ("sub") before submitted: a row with
#      no static columns at once, completed when the submitted event comes;
#   d: the three events in one batch: one insert.
. "$(dirname "$0")/../lib.sh"
use_redis_db 12

queue="q.$UNIQ"
stream="baton:{$queue}:events"
rcli sadd baton:queues "$queue" >/dev/null
psql_q() { psql "$BATON_PG_DSN" -v ON_ERROR_STOP=1 -qAtc "$1"; }
SCHEDULER_HISTORY=true start_scheduler hist --ingest=false --maintenance=false
drained() { [ "$(rcli xlen "$stream")" -eq 0 ] && [ "$(rcli xpending "$stream" baton-history | sed -n 1p)" -eq 0 ]; }
# step: XADD each argument line (fields separated by blanks), wait until written.
step() {
  local line
  for line in "$@"; do
    # shellcheck disable=SC2086
    rcli xadd "$stream" '*' $line >/dev/null
  done
  wait_until 30 "the writer to drain the stream" drained
}

t=$(( $(date +%s%3N) - 60000 ))
task_a="{\"id\":\"a\",\"type\":\"noop\",\"queue\":\"$queue\",\"priority\":7,\"payload\":{\"x\":1.50},\"max_attempts\":4,\"timeout_ms\":5000,\"run_at\":\"2030-01-01T00:00:00Z\",\"deadline\":\"2031-01-01T00:00:00Z\",\"meta\":{\"k\":\"v\"},\"color\":\"red\"}"
task_c="{\"id\":\"c\",\"type\":\"noop\",\"queue\":\"$queue\",\"priority\":5,\"payload\":null,\"max_attempts\":3,\"timeout_ms\":60000,\"meta\":{}}"
task_bd() { echo "{\"id\":\"$1\",\"type\":\"noop\",\"queue\":\"$queue\",\"priority\":5,\"payload\":null,\"max_attempts\":3,\"timeout_ms\":60000,\"meta\":{}}"; }
ev() { # id seq event from|- to at attempt [more fields]; "-": no from field
  local id=$1 seq=$2 event=$3 from=$4 to=$5 at=$6 attempt=$7
  shift 7
  [ "$from" = - ] && from= || from="from $from"
  echo "id $id seq $seq event $event $from to $to at $at attempt $attempt $*"
}

step "$(ev a 2 claimed queued running $((t + 10)) 1 token 1 worker w1)" \
  "$(ev a 3 succeeded running succeeded $((t + 20)) 1 token 1 worker w1 result {\"ok\":true})" \
  "$(ev b 1 submitted - queued $t 0 task "$(task_bd b)" ktopic tp kpartition 1 koffset 2)" \
  "$(ev b 2 claimed queued running $((t + 10)) 1 token 1 worker w1)" \
  "$(ev c 2 claimed queued running $((t + 10)) 1 token 1 worker w2 sub $t)" \
  "$(ev d 1 submitted - queued $t 0 task "$(task_bd d)" ktopic tp kpartition 0 koffset 9)" \
  "$(ev d 2 claimed queued running $((t + 10)) 1 token 1 worker w3)" \
  "$(ev d 3 succeeded running succeeded $((t + 20)) 1 token 1 worker w3)"
[ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND id = 'a'")" -eq 0 ] ||
  fail "a row for a before its submitted event"
[ "$(psql_q "SELECT count(*) FROM baton.tasks_early WHERE queue = '$queue' AND id = 'a'")" -eq 1 ] ||
  fail "a not noted early"
got=$(psql_q "SELECT coalesce(type, '-') || ' ' || state || ' ' || last_seq FROM baton.tasks WHERE queue = '$queue' AND id = 'c'")
[ "$got" = "- running 2" ] || fail "c before its submitted event: '$got', want '- running 2'"

step "$(ev a 1 submitted - queued $t 0 task "$task_a" ktopic tp kpartition 3 koffset 44)" \
  "$(ev b 4 due scheduled queued $((t + 40)) 1)" \
  "$(ev c 1 submitted - queued $t 0 task "$task_c" ktopic tp kpartition 1 koffset 5)"
step "$(ev b 3 failed running scheduled $((t + 30)) 1 token 1 worker w1 error boom)"

ms() { echo "(extract(epoch FROM $1) * 1000)::bigint"; }
got=$(psql_q "SELECT concat_ws(' ', type, priority, state, attempts, max_attempts, timeout_ms,
    run_at = '2030-01-01T00:00:00Z', deadline = '2031-01-01T00:00:00Z', $(ms submitted_at) - $t,
    $(ms first_started_at) - $t, $(ms finished_at) - $t, $(ms updated_at) - $t, last_worker,
    result::text, payload::text, meta::text, extra::text, kafka_topic, kafka_partition,
    kafka_offset, last_seq)
  FROM baton.tasks WHERE queue = '$queue' AND id = 'a'")
want='noop 7 succeeded 1 4 5000 t t 0 10 20 20 w1 {"ok": true} {"x": 1.50} {"k": "v"} {"color": "red"} tp 3 44 3'
[ "$got" = "$want" ] || fail "row of a: '$got', want '$want'"
[ "$(psql_q "SELECT count(*) FROM baton.tasks_early WHERE queue = '$queue'")" -eq 0 ] || fail "notes left"
got=$(psql_q "SELECT concat_ws(' ', state, attempts, last_worker, last_error, $(ms queued_at) - $t,
    last_seq, finished_at IS NULL) FROM baton.tasks WHERE queue = '$queue' AND id = 'b'")
[ "$got" = "queued 1 w1 boom 40 4 t" ] || fail "row of b: '$got', want 'queued 1 w1 boom 40 4 t'"
got=$(psql_q "SELECT concat_ws(' ', type, state, last_worker, $(ms first_started_at) - $t, kafka_offset, last_seq)
  FROM baton.tasks WHERE queue = '$queue' AND id = 'c'")
[ "$got" = "noop running w2 10 5 2" ] || fail "row of c: '$got', want 'noop running w2 10 5 2'"
got=$(psql_q "SELECT concat_ws(' ', state, last_worker, $(ms finished_at) - $t, kafka_offset, last_seq,
    extra IS NULL) FROM baton.tasks WHERE queue = '$queue' AND id = 'd'")
[ "$got" = "succeeded w3 20 9 3 t" ] || fail "row of d: '$got', want 'succeeded w3 20 9 3 t'"
[ "$(psql_q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue'")" -eq 4 ] || fail "not 4 rows"
got=$(psql_q "SELECT string_agg(task_id || seq || ':' || coalesce(detail::text, '-'), ' ' ORDER BY task_id, seq)
  FROM baton.task_events WHERE queue = '$queue' AND task_id IN ('a', 'd')")
want='a1:{"ktopic": "tp", "koffset": 44, "kpartition": 3} a2:- a3:{"result": {"ok": true}} d1:{"ktopic": "tp", "koffset": 9, "kpartition": 0} d2:- d3:-'
[ "$got" = "$want" ] || fail "events: '$got', want '$want'"
echo "1 passed, 0 failed"
