#!/usr/bin/env bash
# test_batonctl.sh: every batonctl subcommand against the live stack, with a
# scheduler running the history writer (so its own Redis database) and a
# worker: status (Redis + history, Redis only, history only), history with
# each filter, queues, workers, dead, retry (one, --all-dead, refused),
# cancel (queued, scheduled, running), pause/resume seen through the
# worker, prune in batches; --json output parsed back and checked; the
# exit codes 1 (server unreachable, wrong state), 2 (usage), 3 (not found).
# Terminal escapes in a payload, a result, meta and an error (ESC]0;...BEL,
# ESC[2J, the C1 CSI U+009B) reach no human output raw; --json keeps them
# exact.
. "$(dirname "$0")/../lib.sh"
export PGOPTIONS='-c client_min_messages=warning'

use_redis_db 5
topic="t.$UNIQ"
qa="qa.$UNIQ"   # main queue
qp="qp.$UNIQ"   # paused
qo="qo.$UNIQ"   # other queue, progresses while qp is paused
qold="qold.$UNIQ" # synthetic old history for prune
qe="qe.$UNIQ"   # tasks whose text holds terminal escape sequences
# Task ids get this suffix: the history in PostgreSQL is shared by every
# run, and `status ID` searches it by id across queues.
R="$$$RANDOM"
create_topic "$topic"
SCHEDULER_HISTORY=true start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" \
  --dlq-topic "dlq.$UNIQ"
# A short lease: renewals (which carry cancel requests) every 300 ms.
start_worker w --queues "$qa,$qp,$qo,$qe" --concurrency 4 --lease-ms 900

BATONCTL="$BATON_BIN_DIR/ctl/batonctl"
ctl() { "$BATONCTL" --redis-url "$BATON_REDIS_URL" --pg-dsn "$BATON_PG_DSN" "$@"; }
jctl() { ctl --json "$@"; }
pg() { psql "$BATON_PG_DSN" -v ON_ERROR_STOP=1 -qAtc "$1"; }
# check JSON PYTHON: runs PYTHON with d = the JSON document read from stdin.
check() {
  python3 -c 'import json, sys
d = json.loads(sys.stdin.read())
exec(sys.argv[1])' "$1"
}
# expect_rc WANT DESCRIPTION COMMAND...: runs COMMAND, checks its exit code;
# its stdout and stderr are left in $WORK/out and $WORK/err.
expect_rc() {
  local want=$1 what=$2 rc=0
  shift 2
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "$what: exit $rc, expected $want (stderr: $(cat "$WORK/err"))"
}
one_line_err() {
  [ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "$1: stderr is not one line: $(cat "$WORK/err")"
}
state_is() { [ "$(task_field "$1" "$2" state)" = "$3" ]; }
hist_state_is() { [ "$(pg "SELECT state FROM baton.tasks WHERE queue = '$1' AND id = '$2'")" = "$3" ]; }
hist_has_event() {
  [ "$(pg "SELECT count(*) FROM baton.task_events WHERE queue = '$1' AND task_id = '$2' AND event = '$3'")" -ge "${4:-1}" ]
}
publish() { # publish QUEUE TASK-JSON...: each task gets "queue": QUEUE
  local q=$1
  shift
  printf '%s\n' "$@" | sed -e "s/^{/{\"queue\":\"$q\",/" -e "s/\"id\":\"\([^\"]*\)\"/\"id\":\"\1-$R\"/" \
    | produce "$topic" -k "$q"
}

# ------------------------------------------------------------ usage errors
expect_rc 2 "bad flag" ctl queues --no-such-flag
one_line_err "bad flag"
grep -q "unknown flag '--no-such-flag'" "$WORK/err" || fail "bad flag said: $(cat "$WORK/err")"
# Global options go before or after the command (one parser for both).
expect_rc 0 "--json after the command" ctl migrate --json
check 'assert "schema_version" in d' <"$WORK/out" || fail "migrate --json printed: $(cat "$WORK/out")"
cp "$WORK/out" "$WORK/json_after"
expect_rc 0 "--json before the command" ctl --json migrate
cmp -s "$WORK/out" "$WORK/json_after" || fail "--json before and after the command differ"
expect_rc 3 "--json after the id" ctl status "no-such-$R" --json
expect_rc 2 "bad --log-level after the command" ctl queues --log-level loud
expect_rc 0 "migrate help" ctl migrate --help
grep -q "usage: batonctl \[options\] migrate" "$WORK/out" || fail "migrate --help: $(cat "$WORK/out")"
expect_rc 2 "migrate argument" ctl migrate extra
expect_rc 2 "missing id" ctl status
expect_rc 2 "extra argument" ctl status a b
expect_rc 2 "limit 0" ctl history --limit 0
expect_rc 2 "bad state" ctl history --state sleeping
grep -q "states: scheduled, queued, running, succeeded, dead, expired, canceled" "$WORK/err" \
  || fail "bad state did not list the states: $(cat "$WORK/err")"
# failed is an event, not a state: it used to be accepted and match nothing.
expect_rc 2 "state failed" ctl history --state failed
grep -q "it is an event; use --event failed" "$WORK/err" || fail "--state failed said: $(cat "$WORK/err")"
expect_rc 2 "bad event" ctl history --event sleeping
expect_rc 2 "bad since" ctl history --since yesterday
expect_rc 2 "bad duration" ctl prune --older-than 5x
expect_rc 2 "prune without --older-than" ctl prune
expect_rc 2 "retry without id" ctl retry
expect_rc 2 "retry id and --all-dead" ctl retry x --all-dead
expect_rc 2 "bad queue name" ctl dead --queue 'no spaces'
expect_rc 2 "unknown command" ctl frobnicate
expect_rc 0 "command help" ctl status --help
grep -q "usage: batonctl" "$WORK/out" || fail "status --help printed no usage"
expect_rc 0 "global help" ctl --help
grep -q "3  not found" "$WORK/out" || fail "--help does not list the exit codes"

# ------------------------------------------------------ Redis unreachable
for cmd in queues workers "status x" "dead" "pause $qa" "cancel x" "retry --all-dead"; do
  # shellcheck disable=SC2086
  expect_rc 1 "unreachable Redis ($cmd)" "$BATONCTL" --redis-url redis://127.0.0.1:1/0 $cmd
  one_line_err "unreachable Redis ($cmd)"
  grep -q "Connection refused" "$WORK/err" || fail "unreachable Redis said: $(cat "$WORK/err")"
  [ ! -s "$WORK/out" ] || fail "unreachable Redis ($cmd) printed: $(cat "$WORK/out")"
done
expect_rc 1 "unreachable PostgreSQL" "$BATONCTL" --pg-dsn postgresql://baton@127.0.0.1:1/baton history
one_line_err "unreachable PostgreSQL"

# ---------------------------------------------------------- first tasks
publish "$qa" \
  '{"id":"ok1","type":"noop","priority":7}' \
  '{"id":"echo1","type":"echo","payload":{"x":1},"meta":{"tenant":"acme"}}' \
  '{"id":"bad1","type":"fail","max_attempts":1,"payload":"boom"}' \
  '{"id":"bad2","type":"fail","max_attempts":1,"payload":"kaput"}' \
  '{"id":"dup","type":"noop"}'
publish "$qo" '{"id":"dup","type":"noop"}'
wait_until 30 "ok1-$R to succeed" state_is "$qa" ok1-$R succeeded
wait_until 30 "echo1-$R to succeed" state_is "$qa" echo1-$R succeeded
wait_until 30 "bad1-$R to die" state_is "$qa" bad1-$R dead
wait_until 30 "bad2-$R to die" state_is "$qa" bad2-$R dead
wait_until 30 "dup-$R (qo) to succeed" state_is "$qo" dup-$R succeeded
for id in ok1-$R echo1-$R dup-$R; do
  wait_until 30 "history of $id" hist_state_is "$qa" "$id" succeeded
done
for id in bad1-$R bad2-$R; do wait_until 30 "history of $id" hist_state_is "$qa" "$id" dead; done
wait_until 30 "history of dup-$R (qo)" hist_state_is "$qo" dup-$R succeeded

# ----------------------------------------------------------------- status
expect_rc 0 "status ok1-$R" ctl status ok1-$R
grep -q "task ok1-$R in queue $qa: succeeded" "$WORK/out" || fail "status ok1-$R: $(cat "$WORK/out")"
grep -q "live in Redis, history in PostgreSQL" "$WORK/out" || fail "status ok1-$R sources: $(cat "$WORK/out")"
grep -q "claimed" "$WORK/out" || fail "status ok1-$R shows no timeline: $(cat "$WORK/out")"
jctl status ok1-$R | check "
t = d['tasks']
assert d['id'] == 'ok1-$R' and d['history_available'] is True, d
assert len(t) == 1 and t[0]['queue'] == '$qa' and t[0]['state'] == 'succeeded', t
assert t[0]['in_redis'] and t[0]['in_history'], t
assert t[0]['live']['task']['type'] == 'noop' and t[0]['live']['priority'] == 7, t[0]['live']
assert t[0]['history']['type'] == 'noop' and t[0]['history']['attempts'] == 1, t[0]['history']
ev = [e['event'] for e in t[0]['events']]
assert ev == ['submitted', 'claimed', 'succeeded'], ev
assert [e['seq'] for e in t[0]['events']] == [1, 2, 3]
assert t[0]['events'][1]['worker'] == 'w.$UNIQ', t[0]['events'][1]
" || fail "status --json ok1-$R"
jctl status echo1-$R --queue "$qa" | check "
t = d['tasks'][0]
assert t['live']['result'] == {'x': 1}, t['live']
assert t['history']['result'] == {'x': 1} and t['history']['meta'] == {'tenant': 'acme'}, t['history']
" || fail "status --json echo1-$R (result, meta)"
# The same id in two queues: both shown.
jctl status dup-$R | check "
assert sorted(t['queue'] for t in d['tasks']) == sorted(['$qa', '$qo']), d
" || fail "status of an id in two queues"
expect_rc 3 "unknown id" ctl status "no-such-$UNIQ"
one_line_err "unknown id"
expect_rc 3 "id in another queue" ctl status ok1-$R --queue "$qo"
# History unavailable: Redis is still shown, exit 0.
expect_rc 0 "status, PostgreSQL down" "$BATONCTL" --redis-url "$BATON_REDIS_URL" \
  --pg-dsn postgresql://baton@127.0.0.1:1/baton status bad1-$R
grep -q "history *unavailable" "$WORK/out" || fail "no 'history unavailable': $(cat "$WORK/out")"
grep -q "boom" "$WORK/out" || fail "status without history lost the error: $(cat "$WORK/out")"
"$BATONCTL" --json --redis-url "$BATON_REDIS_URL" --pg-dsn postgresql://baton@127.0.0.1:1/baton \
  status bad1-$R | check "
assert d['history_available'] is False and 'connect' in d['history_error'], d
t = d['tasks'][0]
assert t['in_redis'] and not t['in_history'] and t['state'] == 'dead' and t['events'] == [], t
assert t['live']['error'] == 'boom', t
" || fail "status --json without history"
expect_rc 0 "status, no DSN" env -u BATON_PG_DSN "$BATONCTL" --redis-url "$BATON_REDIS_URL" status bad1-$R
grep -q "no PostgreSQL DSN" "$WORK/out" || fail "status without DSN: $(cat "$WORK/out")"
expect_rc 1 "unknown id, PostgreSQL down" "$BATONCTL" --redis-url "$BATON_REDIS_URL" \
  --pg-dsn postgresql://baton@127.0.0.1:1/baton status "no-such-$UNIQ"
one_line_err "unknown id, PostgreSQL down"

# ---------------------------------------------------------------- history
jctl history --queue "$qa" | check "
ids = [t['id'] for t in d['tasks']]
assert sorted(ids) == ['bad1-$R', 'bad2-$R', 'dup-$R', 'echo1-$R', 'ok1-$R'], ids
assert d['count'] == 5
subs = [t['submitted_at'] for t in d['tasks']]
assert subs == sorted(subs, reverse=True), subs
assert all(t['queue'] == '$qa' for t in d['tasks'])
" || fail "history --queue"
jctl history --queue "$qa" --state dead | check "
assert sorted(t['id'] for t in d['tasks']) == ['bad1-$R', 'bad2-$R'], d
assert {t['last_error'] for t in d['tasks']} == {'boom', 'kaput'}, d
" || fail "history --state dead"
jctl history --queue "$qa" --event dead | check "
assert sorted(t['id'] for t in d['tasks']) == ['bad1-$R', 'bad2-$R'], d
" || fail "history --event dead"
jctl history --queue "$qa" --event failed | check "assert d['count'] == 0, d" \
  || fail "history --event failed (no retries in $qa)"
jctl history --queue "$qa" --type echo | check "
assert [t['id'] for t in d['tasks']] == ['echo1-$R'], d
" || fail "history --type"
jctl history --queue "$qa" --limit 2 | check "assert d['count'] == 2, d" || fail "history --limit"
jctl history --queue "$qa" --since 1h | check "assert d['count'] == 5, d" || fail "history --since 1h"
jctl history --queue "$qa" --since 2000-01-01T00:00:00Z | check "assert d['count'] == 5, d" \
  || fail "history --since RFC 3339"
jctl history --queue "$qa" --since 2999-01-01T00:00:00Z | check "assert d['count'] == 0, d" \
  || fail "history --since in the future"
expect_rc 0 "history (human)" ctl history --queue "$qa" --state dead
{ grep -q "bad1-$R" "$WORK/out" && grep -q "SUBMITTED" "$WORK/out"; } || fail "history table: $(cat "$WORK/out")"

# ----------------------------------------------------------------- queues
jctl queues | check "
q = {x['name']: x for x in d['queues']}
a = q['$qa']
assert a['dead'] == 2 and a['ready'] == 0 and a['running'] == 0 and a['paused'] is False, a
assert sorted(a['ready_by_priority']) == [str(p) for p in range(10)], a
assert isinstance(a['history_backlog'], int) and a['history_backlog'] >= 0, a
assert '$qo' in q, q
" || fail "queues --json"
expect_rc 0 "queues (human)" ctl queues
grep -q "^$qa " "$WORK/out" || fail "queues table has no $qa: $(cat "$WORK/out")"

# ---------------------------------------------------------------- workers
# The registry is rewritten by the heartbeat every 2 s: wait for the counts.
workers_ok() {
  jctl workers | check "
w = [x for x in d['workers'] if x['id'] == 'w.$UNIQ']
assert len(w) == 1, d
w = w[0]
assert '$qa' in w['queues'] and w['concurrency'] == 4, w
assert w['done'] >= 3 and w['failed'] >= 2 and w['stale_refusals'] == 0, w
assert 0 <= w['heartbeat_age_ms'] < 10000 and w['pid'] > 0, w
"
}
wait_until 10 "workers --json to show the worker and its counts" workers_ok
expect_rc 0 "workers (human)" ctl workers
grep -q "w.$UNIQ" "$WORK/out" || fail "workers table: $(cat "$WORK/out")"

# ------------------------------------------------------------------- dead
jctl dead --queue "$qa" | check "
assert d['total'] == 2 and d['count'] == 2, d
t = {x['id']: x for x in d['tasks']}
assert t['bad1-$R']['error'] == 'boom' and t['bad2-$R']['error'] == 'kaput', t
assert t['bad1-$R']['attempts'] == 1 and t['bad1-$R']['max_attempts'] == 1 and t['bad1-$R']['type'] == 'fail', t
" || fail "dead --json"
jctl dead --limit 1 | check "assert d['count'] == 1 and d['total'] >= 2, d" || fail "dead --limit"
expect_rc 0 "dead (human)" ctl dead --queue "$qa"
grep -q "kaput" "$WORK/out" || fail "dead table: $(cat "$WORK/out")"
expect_rc 3 "dead of an unknown queue" ctl dead --queue "nope.$UNIQ"

# ----------------------------------------------------- terminal escapes
# JSON escapes in the messages: the tasks' strings hold the raw control
# characters (ESC, BEL, U+009B); the fail built-in makes its payload the
# error text, echo its payload the result.
publish "$qe" \
  '{"id":"esc1","type":"fail","max_attempts":1,"payload":"boom\u001b]0;pwned\u0007\u001b[2J\u009b2J"}' \
  '{"id":"esc2","type":"echo","payload":"hi\u001b[2J\u001b[H","meta":{"note":"\u001b]0;x\u0007\u009b"}}'
wait_until 30 "esc1-$R to die" state_is "$qe" esc1-$R dead
wait_until 30 "esc2-$R to succeed" state_is "$qe" esc2-$R succeeded
wait_until 30 "history of esc1-$R" hist_state_is "$qe" esc1-$R dead
# no_controls FILE: FILE holds no byte a terminal obeys (C0 but newline,
# DEL, C1 as UTF-8 C2 80..9F or as a raw byte 80..9F outside UTF-8).
no_controls() {
  python3 -c '
import re, sys
data = open(sys.argv[1], "rb").read()
bad = re.search(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]", data)
if bad is None:
    text = data.decode("utf-8", "replace")
    bad = re.search("[\x80-\x9f]", text)
sys.exit(1 if bad else 0)' "$1"
}
for cmd in "status esc1-$R" "status esc2-$R" "history --queue $qe" "dead --queue $qe"; do
  # shellcheck disable=SC2086 # the command's words
  expect_rc 0 "$cmd (human)" ctl $cmd
  no_controls "$WORK/out" || fail "$cmd printed a control character: $(od -c "$WORK/out" | head -20)"
done
expect_rc 0 "status esc1-$R" ctl status esc1-$R
grep -qF 'boom\x1b]0;pwned\x07\x1b[2J\u009b2J' "$WORK/out" || fail "status esc1: error not shown escaped: $(cat "$WORK/out")"
expect_rc 0 "status esc2-$R" ctl status esc2-$R
grep -qF 'hi\x1b[2J\x1b[H' "$WORK/out" || fail "status esc2: result not shown escaped: $(cat "$WORK/out")"
grep -qF '\u009b' "$WORK/out" || fail "status esc2: C1 in meta not shown escaped: $(cat "$WORK/out")"
jctl status esc1-$R | check "
t = d['tasks'][0]
want = 'boom\x1b]0;pwned\x07\x1b[2J\u009b2J'
assert t['live']['error'] == want and t['history']['last_error'] == want, t
" || fail "status --json esc1: the error text is not exact"
jctl dead --queue "$qe" | check "
assert d['tasks'][0]['error'] == 'boom\x1b]0;pwned\x07\x1b[2J\u009b2J', d
" || fail "dead --json: the error text is not exact"

# ------------------------------------------------------------------ retry
expect_rc 1 "retry of a succeeded task" ctl retry ok1-$R
one_line_err "retry of a succeeded task"
grep -q "succeeded" "$WORK/err" || fail "retry refusal said: $(cat "$WORK/err")"
expect_rc 3 "retry of an unknown id" ctl retry "no-such-$UNIQ"
expect_rc 2 "retry of an id in two queues" ctl retry dup-$R
expect_rc 0 "retry bad1-$R" ctl retry bad1-$R
grep -q "retried bad1-$R (queue $qa)" "$WORK/out" || fail "retry said: $(cat "$WORK/out")"
# It runs again (and fails again: max_attempts 1).
wait_until 30 "bad1-$R retried in history" hist_has_event "$qa" bad1-$R retried
wait_until 30 "bad1-$R to run again" hist_has_event "$qa" bad1-$R dead 2
wait_until 30 "bad1-$R dead again in Redis" state_is "$qa" bad1-$R dead
jctl retry --all-dead --queue "$qa" | check "
assert d['count'] == 2 and sorted(t['id'] for t in d['retried']) == ['bad1-$R', 'bad2-$R'], d
assert d['failed'] == [], d
" || fail "retry --all-dead"
wait_until 30 "bad2-$R retried in history" hist_has_event "$qa" bad2-$R retried
wait_until 30 "bad2-$R dead again" hist_has_event "$qa" bad2-$R dead 2

# ----------------------------------------------------------- pause/resume
expect_rc 3 "pause of an unknown queue" ctl pause "$qp"
expect_rc 0 "pause --force" ctl pause "$qp" --force
grep -q "paused $qp" "$WORK/out" || fail "pause said: $(cat "$WORK/out")"
[ "$(rcli exists "baton:{$qp}:paused")" = 1 ] || fail "pause did not set the flag"
publish "$qp" '{"id":"p1","type":"noop"}' '{"id":"p2","type":"noop"}' '{"id":"p3","type":"noop"}'
publish "$qo" '{"id":"o1","type":"noop"}' '{"id":"o2","type":"noop"}' '{"id":"o3","type":"noop"}'
for id in o1-$R o2-$R o3-$R; do wait_until 30 "$id (other queue) to run" state_is "$qo" "$id" succeeded; done
wait_until 30 "p1-$R..p3 to be queued" sh -c "[ \"\$(redis-cli -u '$BATON_REDIS_URL' zcard 'baton:{$qp}:ready')\" = 3 ]"
# A negative, shown by a positive: a task of the other queue, published
# after p1..p3 were ready, runs; the worker's claim rounds share its 4 idle
# slots over all three queues, so it has asked the paused one meanwhile.
publish "$qo" '{"id":"o4","type":"noop"}'
wait_until 30 "o4-$R (other queue) to run after the pause" state_is "$qo" o4-$R succeeded
for id in p1-$R p2-$R p3-$R; do
  state_is "$qp" "$id" queued || fail "$id left the paused queue: $(task_field "$qp" "$id" state)"
done
jctl queues | check "
q = {x['name']: x for x in d['queues']}['$qp']
assert q['paused'] is True and q['ready'] == 3 and q['ready_by_priority']['5'] == 3, q
" || fail "queues does not show the pause"
jctl pause "$qp" | check "assert d == {'queue': '$qp', 'paused': True, 'changed': False}, d" \
  || fail "second pause"
expect_rc 0 "resume" ctl resume "$qp"
grep -q "resumed $qp" "$WORK/out" || fail "resume said: $(cat "$WORK/out")"
for id in p1-$R p2-$R p3-$R; do wait_until 10 "$id to run after resume" state_is "$qp" "$id" succeeded; done
jctl resume "$qp" | check "assert d['paused'] is False and d['changed'] is False, d" \
  || fail "second resume"
expect_rc 3 "resume of an unknown queue" ctl resume "nope.$UNIQ"

# ----------------------------------------------------------------- cancel
# A queued task (its queue paused, so it waits): canceled at once, never runs.
ctl pause "$qp" >/dev/null
publish "$qp" '{"id":"c1","type":"noop"}'
wait_until 30 "c1-$R to be queued" state_is "$qp" c1-$R queued
expect_rc 0 "cancel queued" ctl cancel c1-$R
[ "$(cat "$WORK/out")" = canceled ] || fail "cancel of a queued task said: $(cat "$WORK/out")"
state_is "$qp" c1-$R canceled || fail "c1-$R not canceled at once"
ctl resume "$qp" >/dev/null
publish "$qp" '{"id":"c2","type":"noop"}'
wait_until 30 "c2-$R (after c1-$R) to run" state_is "$qp" c2-$R succeeded
# attempt is absent until the first claim (enqueue.lua writes none): 0
c1_attempt=$(task_field "$qp" c1-$R attempt)
[ "${c1_attempt:-0}" = 0 ] || fail "canceled c1-$R ran"
wait_until 30 "c1-$R canceled in history" hist_state_is "$qp" c1-$R canceled
[ "$(pg "SELECT string_agg(event, ',' ORDER BY seq) FROM baton.task_events WHERE queue = '$qp' AND task_id = 'c1-$R'")" = "submitted,canceled" ] \
  || fail "c1-$R events: $(pg "SELECT string_agg(event, ',' ORDER BY seq) FROM baton.task_events WHERE queue = '$qp' AND task_id = 'c1-$R'")"
# A scheduled task.
publish "$qa" '{"id":"s1","type":"noop","delay_ms":600000}'
wait_until 30 "s1-$R to be scheduled" state_is "$qa" s1-$R scheduled
jctl cancel s1-$R --queue "$qa" | check "assert d == {'queue': '$qa', 'id': 's1-$R', 'result': 'canceled'}, d" \
  || fail "cancel scheduled"
[ -z "$(rcli zscore "baton:{$qa}:scheduled" s1-$R)" ] || fail "s1-$R still in the scheduled set"
# A running sleep: the worker stops it at its next renewal.
publish "$qa" '{"id":"r1","type":"sleep","payload":60000,"timeout_ms":120000}'
wait_until 30 "r1-$R to run" state_is "$qa" r1-$R running
expect_rc 0 "cancel running" ctl cancel r1-$R
[ "$(cat "$WORK/out")" = "cancel requested (running: the worker stops it)" ] \
  || fail "cancel of a running task said: $(cat "$WORK/out")"
wait_until 10 "the worker to stop r1-$R" state_is "$qa" r1-$R canceled
wait_until 30 "r1-$R canceled in history" hist_has_event "$qa" r1-$R canceled
jctl status r1-$R | check "
t = d['tasks'][0]
assert t['state'] == 'canceled' and t['history']['state'] == 'canceled', t
ev = [e['event'] for e in t['events']]
assert ev == ['submitted', 'claimed', 'cancel_requested', 'canceled'], ev
assert t['events'][-1]['worker'] == 'w.$UNIQ', t['events'][-1]
" || fail "status of the canceled sleep"
expect_rc 1 "cancel of a finished task" ctl cancel r1-$R
one_line_err "cancel of a finished task"
grep -q "cannot be canceled" "$WORK/err" || fail "second cancel said: $(cat "$WORK/err")"
expect_rc 3 "cancel of an unknown id" ctl cancel "no-such-$UNIQ"
expect_rc 2 "cancel of an id in two queues" ctl cancel dup-$R

# ----------------------------------------------- status from history only
# As if the retention period had passed: the Redis hash is gone.
rcli del "baton:{$qa}:t:ok1-$R" >/dev/null
expect_rc 0 "status, history only" ctl status ok1-$R
grep -q "history only" "$WORK/out" || fail "status of an expired task: $(cat "$WORK/out")"
jctl status ok1-$R | check "
t = d['tasks'][0]
assert not t['in_redis'] and t['in_history'] and t['live'] is None and t['state'] == 'succeeded', t
assert [e['event'] for e in t['events']] == ['submitted', 'claimed', 'succeeded'], t
" || fail "status --json of an expired task"

# ------------------------------------------------------------------ prune
# History of 40 days ago, in partitions of its own (made as the writer
# makes them); prune drops whole partitions older than the cutoff.
pg "SELECT baton.create_history_partitions(now() - interval '40 days');
    INSERT INTO baton.tasks (queue, id, type, priority, state, attempts, max_attempts,
      timeout_ms, submitted_at, finished_at, updated_at)
    SELECT '$qold', 'old' || i, 'noop', 5, 'succeeded', 1, 3, 1000, now() - interval '40 days',
      now() - interval '40 days', now() - interval '40 days' FROM generate_series(1, 5) i;
    INSERT INTO baton.task_events (queue, task_id, seq, at, event, to_state)
    SELECT '$qold', 'old' || i, s, now() - interval '40 days', 'succeeded', 'succeeded'
    FROM generate_series(1, 5) i, generate_series(1, 3) s;
    INSERT INTO baton.history_entries (stream, at, last_at, entry_ids)
    VALUES ('baton:{$qold}:events', now() - interval '40 days', now() - interval '40 days', '{1-0}');
    INSERT INTO baton.tasks_early (queue, id, first_at) VALUES ('$qold', 'early', now() - interval '40 days');
    INSERT INTO baton.rejections (kafka_topic, kafka_partition, kafka_offset, at, reason, detail)
    VALUES ('old.$UNIQ', 0, 1, now() - interval '40 days', 'invalid_json', 'old'),
           ('old.$UNIQ', 0, 2, now(), 'invalid_json', 'new')" >/dev/null
old_parts=$(pg "SELECT count(*) FROM baton.history_partitions() WHERE upper_bound <= now() - interval '30 days'")
[ "$old_parts" -ge 3 ] || fail "expected the old partitions of 3 tables, found $old_parts"
jctl prune --older-than 30d --dry-run | check "
assert d['dry_run'] is True and len(d['partitions']) >= 3 and d['rejections'] >= 1, d
assert d['early_tasks'] >= 1, d
assert {p['table'] for p in d['partitions']} >= {'tasks', 'task_events', 'history_entries'}, d
" || fail "prune --dry-run"
[ "$(pg "SELECT count(*) FROM baton.tasks WHERE queue = '$qold'")" = 5 ] || fail "dry run deleted"
jctl prune --older-than 30d --batch 1 | check "
assert d['dry_run'] is False and len(d['partitions']) >= 3 and d['rejections'] >= 1, d
assert d['statements'] >= 2 * 3 + 2, d  # detach and drop per partition, rejections, early
" || fail "prune"
[ "$(pg "SELECT count(*) FROM baton.tasks WHERE queue = '$qold'")" = 0 ] || fail "tasks left"
[ "$(pg "SELECT count(*) FROM baton.task_events WHERE queue = '$qold'")" = 0 ] || fail "events left"
[ "$(pg "SELECT count(*) FROM baton.history_entries WHERE stream = 'baton:{$qold}:events'")" = 0 ] || fail "entries left"
[ "$(pg "SELECT count(*) FROM baton.tasks_early WHERE queue = '$qold'")" = 0 ] || fail "early note left"
[ "$(pg "SELECT count(*) FROM baton.history_partitions() WHERE upper_bound <= now() - interval '30 days'")" = 0 ] \
  || fail "old partitions left"
[ "$(pg "SELECT count(*) FROM pg_class WHERE relnamespace = 'baton'::regnamespace AND relname ~ '_[0-9]{8}_[0-9]{4}$' AND NOT relispartition")" = 0 ] \
  || fail "a detached partition was not dropped"
[ "$(pg "SELECT string_agg(detail, ',') FROM baton.rejections WHERE kafka_topic = 'old.$UNIQ'")" = new ] \
  || fail "prune of rejections"
[ "$(pg "SELECT count(*) FROM baton.tasks WHERE queue = '$qa'")" -ge 7 ] || fail "prune took recent tasks"
expect_rc 0 "prune (human)" ctl prune --older-than 30d
grep -q "^dropped 0 partitions and 0 rejections" "$WORK/out" || fail "second prune said: $(cat "$WORK/out")"
# A prune interrupted after detaching a partition, before dropping it: the
# next run drops the table left over.
pg "SELECT baton.create_history_partitions(now() - interval '50 days')" >/dev/null
left=$(pg "SELECT partition FROM baton.history_partitions() WHERE parent = 'tasks' AND upper_bound <= now() - interval '45 days'")
pg "ALTER TABLE baton.tasks DETACH PARTITION baton.$left" >/dev/null
jctl prune --older-than 30d | check "
assert any(p.get('leftover') and p['partition'] == '$left' for p in d['partitions']), d
" || fail "prune of a table left over"
[ "$(pg "SELECT to_regclass('baton.$left') IS NULL")" = t ] || fail "$left not dropped"
pg "DELETE FROM baton.rejections WHERE kafka_topic = 'old.$UNIQ'" >/dev/null

echo "1 passed, 0 failed"
