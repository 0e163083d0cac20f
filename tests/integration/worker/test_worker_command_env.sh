#!/usr/bin/env bash
# test_worker_command_env.sh: a command handler, which runs untrusted
# payloads, sees neither the worker's secrets nor its descriptors.
#
# The worker runs with secrets in its environment (BATON_REDIS_URL, a
# REDIS_PASSWORD as under compose, an unnamed setting), operator settings
# named by --command-env (one by name, one by prefix), and a descriptor
# numbered above 1023 (which a loop closing 3..1023 missed). The handler
# dumps its environment and the descriptors of its shell (ls lists
# /proc/<shell>/fd, not its own; sh -c opens no script file): only PATH,
# HOME, LANG, LC_*, TZ, its BATON_TASK_* variables and the named settings
# reach it, and only descriptors 0, 1 and 2. A bad --command-env name is
# refused at start with a message naming it.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
secret="S3cret-$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"

# shellcheck disable=SC2016 # $$ is the handler's shell, expanded there
dump='env; echo ===; ls /proc/$$/fd'
BATON_REDIS_URL="$BATON_REDIS_URL" REDIS_PASSWORD="$secret" OTHER_SETTING="dropped-$UNIQ" \
  MY_SETTING="kept-$UNIQ" APP_REGION="region-$UNIQ" LC_TIME=C.UTF-8 \
  start_worker w --queues "$queue" --command-env 'MY_SETTING,APP_*' \
  --command "dump=$dump" 1030>"$WORK/extra-fd"

echo "{\"id\":\"dump\",\"type\":\"dump\",\"queue\":\"$queue\",\"max_attempts\":1}" |
  produce "$topic" -k "$queue"
state_is() { [ "$(task_field "$queue" "$1" state)" = "$2" ]; }
wait_until 30 "the dump task to succeed" state_is dump succeeded
task_field "$queue" dump result | python3 -c 'import json, sys; print(json.load(sys.stdin))' \
  >"$WORK/dump.txt"
sed -n '1,/^===$/p' "$WORK/dump.txt" | sed '$d' >"$WORK/env.txt"
sed -n '/^===$/,$p' "$WORK/dump.txt" | sed 1d | sort -n | tr '\n' ' ' >"$WORK/fds.txt"

! grep -q "$secret" "$WORK/dump.txt" || fail "the handler saw REDIS_PASSWORD's value"
for name in BATON_REDIS_URL REDIS_PASSWORD OTHER_SETTING; do
  ! grep -q "^$name=" "$WORK/env.txt" || fail "the handler inherited $name"
done
for want in "MY_SETTING=kept-$UNIQ" "APP_REGION=region-$UNIQ" LC_TIME=C.UTF-8 \
  BATON_TASK_ID=dump BATON_TASK_TYPE=dump "BATON_TASK_QUEUE=$queue" BATON_TASK_ATTEMPT=1; do
  grep -qx -- "$want" "$WORK/env.txt" || fail "the handler's environment lacks $want"
done
grep -q '^PATH=' "$WORK/env.txt" || fail "the handler's environment lacks PATH"
[ "$(cat "$WORK/fds.txt")" = "0 1 2 " ] || fail "the handler's shell holds descriptors $(cat "$WORK/fds.txt")(expected 0 1 2)"

rc=0
out=$("$BATON_BIN_DIR/worker/baton-worker" --redis-url "$BATON_REDIS_URL" \
  --queues "$queue" --command-env 'GOOD,BAD-NAME' 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "a bad --command-env name was accepted"
grep -q "command-env: 'BAD-NAME' is not an environment variable name" <<<"$out" ||
  fail "unexpected message for a bad --command-env name: $out"
echo "environment: $(cut -d= -f1 "$WORK/env.txt" | sort | tr '\n' ' ')"
echo "1 passed, 0 failed"
