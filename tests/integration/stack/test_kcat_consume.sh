#!/usr/bin/env bash
# test_kcat_consume.sh - a message produced with kcat into the stack's
# embedded Kafka reaches a consumer-group member in another process.
#
#   test_kcat_consume.sh CONSUMER
#
# CONSUMER is the test-kafka-group-consume binary. Uses the fixture's stack
# ($BATON_STACK_ENV_FILE). Produces three values into baton.tasks, which the
# mock created with 16 partitions; other tests produce there too, so every
# value carries a random token, the consumer counts only values with that
# token, and the test checks it got exactly the three, each once.
set -euo pipefail

CONSUMER=${1:?usage: test_kcat_consume.sh CONSUMER}
# shellcheck disable=SC1090 # written by dev/stack.sh up
. "${BATON_STACK_ENV_FILE:?BATON_STACK_ENV_FILE is not set}"
TOPIC=baton.tasks

WORK=$(mktemp -d /tmp/baton-test-kcat-consume.XXXXXX)
consumer_pid=""
cleanup() {
  if [ -n "$consumer_pid" ]; then kill "$consumer_pid" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

token=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
values=("kcat-consume-$token-a" "kcat-consume-$token-b" "kcat-consume-$token-c")

# The group's first join takes ~3 s on the mock; 30 s leaves room for a
# loaded machine.
"$CONSUMER" --brokers "$BATON_KAFKA_BROKERS" --group "kcat-consume-$token" \
  --topic "$TOPIC" --count 3 --match "$token" --timeout-ms 30000 \
  >"$WORK/got" 2>"$WORK/consumer.log" &
consumer_pid=$!

printf '%s\n' "${values[@]}" |
  timeout 30 kcat -P -b "$BATON_KAFKA_BROKERS" -t "$TOPIC" ||
  fail "kcat could not produce to $TOPIC at $BATON_KAFKA_BROKERS"

rc=0
wait "$consumer_pid" || rc=$?
consumer_pid=""
cat "$WORK/consumer.log" >&2
[ "$rc" -eq 0 ] || fail "consumer exited $rc; got: $(tr '\n' ' ' <"$WORK/got")"

printf '%s\n' "${values[@]}" | sort >"$WORK/want"
sort "$WORK/got" >"$WORK/got.sorted"
diff -u "$WORK/want" "$WORK/got.sorted" >&2 ||
  fail "consumer got other values than the three produced"
echo "ok - 3 values produced with kcat arrived, each once, at a group consumer"
