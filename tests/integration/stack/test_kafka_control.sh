#!/usr/bin/env bash
# test_kafka_control.sh - the embedded Kafka's control channel
# (baton-kafka-mock --control, `dev/stack.sh kafka ...`).
#
# On a stack of its own (it takes brokers down): pins partition 0 of
# baton.tasks to broker 2 and partition 1 to broker 1, takes broker 2 down
# and checks that a producer to partition 0 cannot deliver while one to
# partition 1 can; that a message produced during the outage is delivered
# once broker 2 is up again, and the partition then holds it; that an added
# RTT slows a broker down; and that bad commands (unknown words, bad ids,
# overlong lines, NUL bytes, binary garbage) get an "error ..." reply while
# the mock keeps serving, also next to a client that connects and says
# nothing.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${BATON_KAFKA_MOCK_BIN:?BATON_KAFKA_MOCK_BIN must name baton-kafka-mock}"

use_own_stack
TOPIC=baton.tasks
TOKEN=$UNIQ

# kctl COMMAND...: one control command through stack.sh; prints the reply.
kctl() { "$STACK_SH" kafka "$@" --env-file "$OWN_STACK_ENV"; }

# expect_reply WANT COMMAND...: the command succeeds with exactly WANT.
expect_reply() {
  local want=$1 got
  shift
  got=$(kctl "$@") || fail "'$*' failed: $got"
  [ "$got" = "$want" ] || fail "'$*' replied '$got', expected '$want'"
}

# expect_error PATTERN COMMAND...: the command exits 1 with an error reply
# matching the glob PATTERN.
expect_error() {
  local pattern=$1 got rc=0
  shift
  got=$(kctl "$@" 2>&1) || rc=$?
  [ "$rc" -eq 1 ] || fail "'$*' exited $rc (reply '$got'), expected 1"
  # shellcheck disable=SC2053 # PATTERN is a glob on purpose
  [[ $got == $pattern ]] || fail "'$*' replied '$got', expected '$pattern'"
}

# leader_of PARTITION: the leader of a baton.tasks partition in the metadata.
leader_of() {
  kcat -L -b "$BATON_KAFKA_BROKERS" -t "$TOPIC" 2>/dev/null |
    sed -n "s/^ *partition $1, leader \([0-9-]*\),.*/\1/p"
}

# send PARTITION VALUE [KCAT -X PROPS...]: produces one message, exit code
# is kcat's (non-zero when delivery failed).
send() {
  local partition=$1 value=$2
  shift 2
  echo "$value" | timeout 60 kcat -P -b "$BATON_KAFKA_BROKERS" -t "$TOPIC" -p "$partition" \
    -X reconnect.backoff.max.ms=200 "$@"
}

mock_alive() { kill -0 "$(cat "$BATON_STACK_DIR/kafka.pid")" 2>/dev/null; }

[ "$BATON_KAFKA_CONTROL" = "$BATON_STACK_DIR/kafka.sock" ] ||
  fail "env file names control socket '$BATON_KAFKA_CONTROL'"
expect_reply "ok 1=up 2=up 3=up" brokers

# Leaders are random in the mock: pin the two partitions this test uses.
expect_reply "ok $TOPIC [0] leader 2" leader "$TOPIC" 0 2
expect_reply "ok $TOPIC [1] leader 1" leader "$TOPIC" 1 1
wait_until 10 "partition 0 led by broker 2" test "$(leader_of 0)" = 2
wait_until 10 "partition 1 led by broker 1" test "$(leader_of 1)" = 1

# --- broker 2 down: its partition cannot take messages, broker 1's can.
expect_reply "ok broker 2 down" broker down 2
expect_reply "ok 1=up 2=down 3=up" brokers
if send 0 "lost-$TOKEN" -X message.timeout.ms=2000 2>"$WORK/lost.err"; then
  fail "a message to partition 0 was delivered while its leader (broker 2) was down"
fi
grep -q 'Message timed out' "$WORK/lost.err" ||
  fail "the producer failed for another reason than a timeout: $(tail -n 3 "$WORK/lost.err")"
send 1 "other-$TOKEN" -X message.timeout.ms=10000 2>"$WORK/other.err" ||
  fail "broker 1 did not take a message while broker 2 was down: $(tail -n 3 "$WORK/other.err")"

# A producer that starts during the outage, with a timeout that outlasts it.
send 0 "late-$TOKEN" -X message.timeout.ms=60000 2>"$WORK/late.err" &
late_pid=$!
TEST_PIDS+=("$late_pid")
wait_until 20 "the late producer to be refused by broker 2" \
  grep -q 'Connection refused' "$WORK/late.err"
mock_alive || fail "the mock died"

# --- broker 2 up: the waiting message goes through, new ones too.
expect_reply "ok broker 2 up" broker up 2
wait "$late_pid" || fail "the message produced during the outage was not delivered after it: $(tail -n 3 "$WORK/late.err")"
send 0 "after-$TOKEN" -X message.timeout.ms=10000 2>"$WORK/after.err" ||
  fail "partition 0 took no message after broker 2 came back: $(tail -n 3 "$WORK/after.err")"
timeout 30 kcat -C -b "$BATON_KAFKA_BROKERS" -t "$TOPIC" -p 0 -o beginning -e -q \
  >"$WORK/partition0" 2>"$WORK/consume.err" || fail "could not read partition 0 back"
grep -qx "late-$TOKEN" "$WORK/partition0" || fail "partition 0 lacks the message produced during the outage"
grep -qx "after-$TOKEN" "$WORK/partition0" || fail "partition 0 lacks the message produced after it"
if grep -qx "lost-$TOKEN" "$WORK/partition0"; then
  fail "partition 0 holds the message the producer gave up on"
fi
expect_reply "ok 1=up 2=up 3=up" brokers

# --- RTT: every response of broker 1 waits 400 ms more.
expect_reply "ok broker 1 rtt 400 ms" broker rtt 1 400
expect_reply "ok 1=up,rtt=400 2=up 3=up" brokers
t0=$(date +%s%N)
send 1 "slow-$TOKEN" -X message.timeout.ms=10000 2>/dev/null || fail "produce with an RTT failed"
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
[ "$elapsed_ms" -ge 400 ] || fail "a produce to broker 1 took ${elapsed_ms} ms with a 400 ms RTT"
expect_reply "ok broker 1 rtt 0 ms" broker rtt 1 0

# --- coordinators can be pinned (scenarios pin a group to the broker they break).
expect_reply "ok group g.$TOKEN coordinator 3" coordinator group "g.$TOKEN" 3

# --- bad commands: an error reply, exit 1, and the mock keeps serving.
expect_error "error unknown command 'fly' *" fly away
expect_error "error broker id must be 1..3 or all, got '9'" broker down 9
expect_error "error broker id must be 1..3 or all, got 'x'" broker up x
expect_error "error usage: broker down ID|all" broker down
expect_error "error usage: broker down|up ID|all, *" broker sideways 2
expect_error "error rtt must be 0..600000 ms, got '-5'" broker rtt 1 -5
expect_error "error unknown topic 'no.such.topic' *" leader no.such.topic 0 1
expect_error "error partition of $TOPIC must be 0..15, got '16'" leader "$TOPIC" 16 1
expect_error "error usage: coordinator group|transaction KEY ID" coordinator member k 1
expect_error "error usage: brokers" brokers now
expect_error "error too many words (at most 8)" a b c d e f g h i
rc=0
"$BATON_KAFKA_MOCK_BIN" --control "$WORK/no.sock" brokers 2>"$WORK/nosock.err" || rc=$?
if [ "$rc" -ne 1 ] || ! grep -q "cannot reach the mock's control socket" "$WORK/nosock.err"; then
  fail "the client exited $rc without a mock: $(cat "$WORK/nosock.err")"
fi

# Raw clients: one connects and says nothing (it must not hold up the
# others), one sends garbage and hangs up, one sends several lines at once.
python3 - "$BATON_KAFKA_CONTROL" >"$WORK/raw.out" <<'EOF' || fail "raw socket clients: $(cat "$WORK/raw.out")"
import socket, subprocess, sys
path = sys.argv[1]
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    return s
idle = connect()
junk = connect()
junk.sendall(b"\xff\xfe\x00garbage without a newline")
junk.close()
s = connect()
s.sendall(b"x" * 5000 + b"\nbro\x00kers\n\n   \nbrokers\r\nbroker down\n")
want = [b"error command longer than 511 bytes", b"error command holds a NUL byte",
        b"ok 1=up 2=up 3=up", b"error usage: broker down ID|all"]
got = b""
while got.count(b"\n") < len(want):
    chunk = s.recv(4096)
    if not chunk:
        break
    got += chunk
lines = got.split(b"\n")[:len(want)]
if lines != want:
    print("raw replies:", lines)
    sys.exit(1)
s.shutdown(socket.SHUT_WR)
if s.recv(100) != b"":
    print("the mock did not close after EOF")
    sys.exit(1)
idle.close()
print("ok")
EOF

mock_alive || fail "the mock died after bad commands"
expect_reply "ok 1=up 2=up 3=up" brokers
echo "ok - broker down/up, rtt, leader and coordinator commands; bad commands answered with errors, mock still serving"
