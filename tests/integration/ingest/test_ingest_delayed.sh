#!/usr/bin/env bash
# test_ingest_delayed.sh: a task with delay_ms waits in the scheduled set,
# not in the ready queue, until its time (by Redis TIME); then maintenance
# moves it to ready and records a "due" event no earlier than the due time.
# A task whose run_at is in the past is ready at once; one whose deadline
# passes while it waits is expired by maintenance.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"

now_s=$(rcli time | sed -n 1p)
deadline=$(date -u -d "@$((now_s + 2))" +%Y-%m-%dT%H:%M:%SZ)
{
  echo "{\"id\":\"later\",\"type\":\"delayed\",\"queue\":\"$queue\",\"delay_ms\":3000}"
  echo "{\"id\":\"past\",\"type\":\"delayed\",\"queue\":\"$queue\",\"run_at\":\"2020-01-01T00:00:00Z\"}"
  echo "{\"id\":\"too-late\",\"type\":\"delayed\",\"queue\":\"$queue\",\"delay_ms\":60000,\"deadline\":\"$deadline\"}"
} | produce "$topic" -k "$queue"

exists() { [ "$(rcli exists "baton:{$queue}:t:$1")" -eq 1 ]; }
wait_until 60 "the delayed task to be ingested" exists later
wait_until 10 "the other tasks to be ingested" exists too-late

[ "$(rcli hget "baton:{$queue}:t:past" state)" = queued ] || fail "run_at in the past should be queued"
state=$(rcli hget "baton:{$queue}:t:later" state)
due=$(rcli hget "baton:{$queue}:t:later" due_ms)
# The submission time is the "submitted" event's (the hash does not keep it).
submitted=$(events "$queue" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["id"] == "later" and e["event"] == "submitted":
        print(e["at"])')
[ "$state" = scheduled ] || fail "delayed task is '$state', expected scheduled"
[ "$((due - submitted))" -eq 3000 ] || fail "due - submitted = $((due - submitted)), expected 3000"
[ -z "$(rcli zscore "baton:{$queue}:ready" later)" ] || fail "delayed task is already ready"
[ -n "$(rcli zscore "baton:{$queue}:scheduled" later)" ] || fail "delayed task not in the scheduled set"

is_queued() { [ "$(rcli hget "baton:{$queue}:t:later" state)" = queued ]; }
wait_until 20 "the delayed task to become ready" is_queued
[ -n "$(rcli zscore "baton:{$queue}:ready" later)" ] || fail "queued but not in the ready queue"
[ -z "$(rcli zscore "baton:{$queue}:scheduled" later)" ] || fail "still in the scheduled set"
# The move happened at or after the due time, by Redis's clock.
queued_at=$(rcli hget "baton:{$queue}:t:later" queued_ms)
[ "$queued_at" -ge "$due" ] || fail "moved at $queued_at, before its due time $due"

is_expired() { [ "$(rcli hget "baton:{$queue}:t:too-late" state)" = expired ]; }
wait_until 20 "the task past its deadline to expire" is_expired
[ -z "$(rcli zscore "baton:{$queue}:scheduled" too-late)" ] || fail "expired task still scheduled"
rcli xrange "baton:{$queue}:events" - + | grep '^expired$' >/dev/null || fail "no expired event"
echo "1 passed, 0 failed"
