#!/usr/bin/env bash
# test_history_ack_refused.sh: an error reply to the writer's
# acknowledgement fails the batch like a lost connection does
# (scheduler/history.c, ack_batch). The writer's Redis user may run
# everything but XTRIM, so each batch is written to PostgreSQL and its
# acknowledgement (ack.lua: XACK, then XTRIM MINID) refused (-NOPERM). The
# script checks the permission before it acknowledges anything, so the
# entries stay pending, never acknowledged and left in the stream. Held,
# it is written and acknowledged again until the trim goes through, which
# it does once the user may run XTRIM.
. "$(dirname "$0")/../lib.sh"
use_redis_db 9

user="history.$UNIQ"
password="pw$UNIQ"
rcli acl setuser "$user" on ">$password" '~*' '&*' '+@all' '-xtrim' >/dev/null ||
  fail "could not create the Redis user $user"
trap 'rcli acl deluser "$user" >/dev/null 2>&1; cleanup_test' EXIT
user_url="redis://$user:$password@${BATON_REDIS_URL#redis://}"

topic="t.$UNIQ"
queue="q.$UNIQ"
stream="baton:{$queue}:events"
tasks=50
create_topic "$topic"
for n in $(seq 1 "$tasks"); do echo "{\"id\":\"a-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done |
  produce "$topic" -k "$queue"

BATON_REDIS_URL=$user_url SCHEDULER_HISTORY=true start_scheduler s --topic "$topic" \
  --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ" --maintenance=false
start_worker w --queues "$queue" --concurrency 4

refused() { grep -q 'events held, retrying .*ack.lua: NOPERM' "$WORK/s.log"; }
wait_until 60 "the writer to hold its batch when XTRIM is refused" refused
acked_left=$(rcli xlen "$stream")
[ "$acked_left" -gt 0 ] || fail "the stream is empty although XTRIM was refused"
held=$(rcli xpending "$stream" baton-history | sed -n 1p)
[ "$held" -gt 0 ] || fail "no entry is pending while XTRIM is refused: the XACK went through without its trim"
echo "XTRIM refused: the writer holds its batch, $held entries pending; $acked_left entries in the stream"

rcli acl setuser "$user" '+xtrim' >/dev/null || fail "could not allow XTRIM"
drained() {
  [ "$(rcli xlen "$stream")" -eq 0 ] &&
    [ "$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'succeeded'")" -eq "$tasks" ]
}
wait_until 60 "the stream to drain and all $tasks tasks to be succeeded in PostgreSQL" drained
grep -q 'writing again after' "$WORK/s.log" || fail "the writer never reported writing again"

# Each batch was written more than once: still exactly events 1..3 per task.
odd=$(psql "$BATON_PG_DSN" -qAtc "SELECT count(*) FROM (SELECT task_id FROM baton.task_events WHERE queue = '$queue' GROUP BY task_id HAVING array_agg(seq ORDER BY seq) <> ARRAY[1,2,3]::bigint[]) x")
[ "$odd" -eq 0 ] || fail "$odd tasks without exactly events 1, 2, 3"
pending=$(rcli xpending "$stream" baton-history | sed -n 1p)
[ "$pending" -eq 0 ] || fail "$pending events still pending"
echo "1 passed, 0 failed"
