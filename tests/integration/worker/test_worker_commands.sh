#!/usr/bin/env bash
# test_worker_commands.sh: command handlers in a shell script and in
# Python. The payload arrives on stdin, id/type/queue/attempt/token in the
# environment; stdout is the result (JSON when it parses, else a string);
# exit 0 is success, any other exit a failure with stderr's tail as error.
. "$(dirname "$0")/../lib.sh"

topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"
start_scheduler sched --topic "$topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"

cat >"$WORK/shell.sh" <<'SH'
#!/bin/sh
input=$(cat)
printf '{"input":%s,"id":"%s","type":"%s","queue":"%s","attempt":%s,"token":"%s"}\n' \
  "$input" "$BATON_TASK_ID" "$BATON_TASK_TYPE" "$BATON_TASK_QUEUE" "$BATON_TASK_ATTEMPT" "$BATON_TASK_TOKEN"
SH
cat >"$WORK/words.py" <<'PY'
import json, sys
payload = json.load(sys.stdin)
if "text" not in payload:
    print("no text in payload", file=sys.stderr)
    sys.exit(3)
print(json.dumps({"words": len(payload["text"].split())}))
PY
chmod +x "$WORK/shell.sh"
start_worker w --queues "$queue" --concurrency 2 --backoff-base-ms 50 \
  --command "cmd.shell=$WORK/shell.sh" --command "cmd.python=python3 $WORK/words.py" \
  --command "cmd.text=echo plain text output" --command "cmd.exit=echo partial; echo went wrong >&2; exit 7"

{
  echo "{\"id\":\"sh\",\"type\":\"cmd.shell\",\"queue\":\"$queue\",\"payload\":{\"n\":[1,2]}}"
  echo "{\"id\":\"py\",\"type\":\"cmd.python\",\"queue\":\"$queue\",\"payload\":{\"text\":\"one two three\"}}"
  echo "{\"id\":\"py-bad\",\"type\":\"cmd.python\",\"queue\":\"$queue\",\"payload\":{},\"max_attempts\":1}"
  echo "{\"id\":\"txt\",\"type\":\"cmd.text\",\"queue\":\"$queue\"}"
  echo "{\"id\":\"exit\",\"type\":\"cmd.exit\",\"queue\":\"$queue\",\"max_attempts\":2}"
} | produce "$topic" -k "$queue"

terminal() { case "$(task_field "$queue" "$1" state)" in succeeded | dead) return 0 ;; *) return 1 ;; esac; }
for id in sh py py-bad txt exit; do wait_until 30 "task $id to finish" terminal "$id"; done

check() { # id state result-or-error
  local got
  got=$(task_field "$queue" "$1" state)
  [ "$got" = "$2" ] || fail "$1: state $got, expected $2"
  if [ "$2" = succeeded ]; then got=$(task_field "$queue" "$1" result); else got=$(task_field "$queue" "$1" error); fi
  [ "$got" = "$3" ] || fail "$1: got '$got', expected '$3'"
}
check sh succeeded "{\"input\":{\"n\":[1,2]},\"id\":\"sh\",\"type\":\"cmd.shell\",\"queue\":\"$queue\",\"attempt\":1,\"token\":\"$(task_field "$queue" sh token)\"}"
check py succeeded '{"words":3}'
check py-bad dead "exit status 3: no text in payload"
check txt succeeded '"plain text output"'
check exit dead "exit status 7: went wrong"
[ "$(task_field "$queue" exit attempt)" -eq 2 ] || fail "failing command was not retried once"
echo "1 passed, 0 failed"
