#!/usr/bin/env bash
# test_history_bad_text.sh: what command handlers print cannot stall the
# history. Three handlers, each failing or succeeding with text PostgreSQL
# would refuse as it is: stderr with the byte 0xff; stderr whose 2 KiB tail
# (the part kept as error text) starts inside the 3-byte character U+20AC;
# a result (not JSON) holding a NUL byte, which jsonb refuses as "\u0000";
# stderr holding a NUL byte (the error text kept the part after it too).
# Around them, ordinary tasks. The history writer keeps flowing: every task
# reaches PostgreSQL with its error or result made valid (bad bytes become
# U+FFFD, the tail starts on a character boundary), and nothing is set aside.
. "$(dirname "$0")/../lib.sh"
use_redis_db 13

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
cat >"$WORK/split.sh" <<'SH'
# 100 bytes, U+20AC (E2 82 AC), 2046 bytes: the last 2048 bytes of stderr
# begin with 82 AC, the middle of the character.
head -c 100 /dev/zero | tr '\0' a >&2
printf '\342\202\254' >&2
head -c 2046 /dev/zero | tr '\0' x >&2
exit 1
SH
SCHEDULER_HISTORY=true start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" \
  --dlq-topic "dlq.$UNIQ"
start_worker w --queues "$queue" --concurrency 4 \
  --command "cmd.badbyte=printf 'bad \\377 byte' >&2; exit 3" \
  --command "cmd.split=sh $WORK/split.sh" \
  --command "cmd.nul=printf 'a\\000b'" \
  --command "cmd.errnul=printf 'c\\000d' >&2; exit 4"

{
  for n in $(seq 1 20); do echo "{\"id\":\"ok-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done
  echo "{\"id\":\"badbyte\",\"type\":\"cmd.badbyte\",\"queue\":\"$queue\",\"max_attempts\":1}"
  echo "{\"id\":\"split\",\"type\":\"cmd.split\",\"queue\":\"$queue\",\"max_attempts\":1}"
  echo "{\"id\":\"nul\",\"type\":\"cmd.nul\",\"queue\":\"$queue\"}"
  echo "{\"id\":\"errnul\",\"type\":\"cmd.errnul\",\"queue\":\"$queue\",\"max_attempts\":1}"
  for n in $(seq 21 40); do echo "{\"id\":\"ok-$n\",\"type\":\"noop\",\"queue\":\"$queue\"}"; done
} | produce "$topic" -k "$queue"

q() { psql "$BATON_PG_DSN" -qAtc "$1"; }
all_written() {
  [ "$(q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state IN ('succeeded', 'dead')")" -eq 44 ] &&
    [ "$(rcli xlen "baton:{$queue}:events")" -eq 0 ]
}
wait_until 90 "all 44 tasks finished in PostgreSQL and the stream drained" all_written

[ "$(q "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND id LIKE 'ok-%' AND state = 'succeeded'")" -eq 40 ] ||
  fail "not every ordinary task succeeded in PostgreSQL"
got=$(q "SELECT state || ' ' || last_error FROM baton.tasks WHERE queue = '$queue' AND id = 'badbyte'")
[ "$got" = "dead exit status 3: bad $(printf '\357\277\275') byte" ] || fail "badbyte: '$got'"
got=$(q "SELECT state || ' ' || last_error FROM baton.tasks WHERE queue = '$queue' AND id = 'split'")
[ "$got" = "dead exit status 1: $(head -c 2046 /dev/zero | tr '\0' x)" ] || fail "split: '$got'"
got=$(q "SELECT state || ' ' || (result #>> '{}') FROM baton.tasks WHERE queue = '$queue' AND id = 'nul'")
[ "$got" = "succeeded a$(printf '\357\277\275')b" ] || fail "nul: '$got'"
got=$(q "SELECT state || ' ' || last_error FROM baton.tasks WHERE queue = '$queue' AND id = 'errnul'")
[ "$got" = "dead exit status 4: c$(printf '\357\277\275')d" ] || fail "errnul: '$got'"
[ "$(q "SELECT count(*) FROM baton.history_set_aside WHERE stream = 'baton:{$queue}:events'")" -eq 0 ] ||
  fail "entries were set aside: the text was not cleaned where it entered"
echo "1 passed, 0 failed"
