#!/usr/bin/env bash
# test_submit.sh: baton-submit against the stack's Kafka. Tasks from flags
# and from JSON lines arrive as v1 JSON with every field explicit, defaults
# applied, key = queue, and the ids the CLI printed; a bad line makes it
# send nothing and name the line and the reason (--skip-invalid sends the
# good ones); an unreachable broker fails delivery within a bound; --json
# output parses; usage errors exit 2; 500 lines through a running scheduler
# all reach Redis under the printed ids.
. "$(dirname "$0")/../lib.sh"

SUBMIT="$BATON_BIN_DIR/producer/baton-submit"
[ -x "$SUBMIT" ] || fail "no baton-submit at $SUBMIT"
passed=0
ok() {
  passed=$((passed + 1))
  echo "ok - $*"
}

# consume TOPIC: every message as one line "key<TAB>partition<TAB>offset<TAB>value".
consume() {
  kcat -C -b "$BATON_KAFKA_BROKERS" -t "$1" -e -q -f '%k\t%p\t%o\t%s\n' 2>/dev/null
}

# submit_rc VAR ARGS...: runs baton-submit, stdout to $WORK/out, stderr to
# $WORK/err, and its exit status into VAR (the test goes on either way).
submit_rc() {
  local _var=$1 _rc=0
  shift
  "$SUBMIT" "$@" >"$WORK/out" 2>"$WORK/err" || _rc=$?
  printf -v "$_var" '%s' "$_rc"
}

# ---- one task from flags, and one with every default -----------------------
topic="t.$UNIQ"
queue="q.$UNIQ"
create_topic "$topic"

submit_rc rc --topic "$topic" --type email.send --queue "$queue" --priority 7 \
  --payload '{"to":"a@example.com","n":[1,2]}' --meta tenant=acme --meta trace=t=1 \
  --max-attempts 5 --timeout 1500 --deadline 2099-01-02T03:04:05Z --run-at 2098-01-01T00:00:00+02:00
[ "$rc" -eq 0 ] || fail "flags task: exit $rc: $(cat "$WORK/err")"
[ "$(wc -l <"$WORK/out")" -eq 1 ] || fail "flags task: expected one id, got: $(cat "$WORK/out")"
flag_id=$(cat "$WORK/out")

submit_rc rc --topic "$topic" --type minimal --id "fixed-$UNIQ" --delay 2500
[ "$rc" -eq 0 ] || fail "minimal task: exit $rc: $(cat "$WORK/err")"
[ "$(cat "$WORK/out")" = "fixed-$UNIQ" ] || fail "minimal task: printed '$(cat "$WORK/out")'"

# ---- JSON lines from stdin: with and without ids, blank lines skipped ------
python3 - "$queue" >"$WORK/lines" <<'PY'
import json, sys
q = sys.argv[1]
for n in range(20):
    t = {"type": "lines.test", "queue": q, "payload": {"n": n}, "extra_field": n}
    if n % 2:
        t["id"] = f"line-{n}"
    print(json.dumps(t))
    if n == 10:
        print("   ")
PY
"$SUBMIT" --topic "$topic" - <"$WORK/lines" >"$WORK/line_ids" 2>"$WORK/err" ||
  fail "JSON lines: exit $?: $(cat "$WORK/err")"
[ "$(wc -l <"$WORK/line_ids")" -eq 20 ] || fail "JSON lines: expected 20 ids"

wait_until 20 "22 messages in $topic" sh -c "[ \$(kcat -C -b '$BATON_KAFKA_BROKERS' -t '$topic' -e -q 2>/dev/null | wc -l) -ge 22 ]"
consume "$topic" >"$WORK/got"
python3 - "$WORK/got" "$flag_id" "fixed-$UNIQ" "$queue" "$WORK/line_ids" <<'PY' || fail "messages in $topic are not what was submitted"
import json, re, sys
got_path, flag_id, fixed_id, queue, ids_path = sys.argv[1:]
msgs = []
for raw in open(got_path):
    key, part, off, value = raw.rstrip("\n").split("\t", 3)
    msgs.append((key, int(part), int(off), json.loads(value)))
assert len(msgs) == 22, f"{len(msgs)} messages, want 22"
contract = ["id", "type", "queue", "priority", "payload", "max_attempts", "timeout_ms", "meta"]
for key, _, _, t in msgs:
    for f in contract:
        assert f in t, f"field {f} missing (defaults must be explicit): {t}"
    assert key == t["queue"], f"key {key!r} is not the queue {t['queue']!r}"
by_id = {t["id"]: t for _, _, _, t in msgs}
t = by_id[flag_id]
want = {"id": flag_id, "type": "email.send", "queue": queue, "priority": 7,
        "payload": {"to": "a@example.com", "n": [1, 2]}, "max_attempts": 5, "timeout_ms": 1500,
        "run_at": "2097-12-31T22:00:00.000Z", "deadline": "2099-01-02T03:04:05.000Z",
        "meta": {"tenant": "acme", "trace": "t=1"}}
assert t == want, f"flags task:\n got  {t}\n want {want}"
assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", flag_id), flag_id
t = by_id[fixed_id]
want = {"id": fixed_id, "type": "minimal", "queue": "default", "priority": 5, "payload": None,
        "max_attempts": 3, "timeout_ms": 300000, "delay_ms": 2500, "meta": {}}
assert t == want, f"defaults task:\n got  {t}\n want {want}"
# JSON lines: printed ids in input order = the ids of the messages of the
# queue in offset order (one key, one partition); given ids kept.
printed = [l.strip() for l in open(ids_path)]
lines = sorted((p, o, t) for k, p, o, t in msgs if t["type"] == "lines.test")
assert len({p for p, _, _ in lines}) == 1, "one queue spread over several partitions"
assert [t["id"] for _, _, t in lines] == printed, "printed ids differ from the messages' ids"
for n, (_, _, t) in enumerate(lines):
    assert t["payload"] == {"n": n}, t
    assert t["extra_field"] == n, "unknown field not kept"
    if n % 2:
        assert t["id"] == f"line-{n}", t
    else:
        assert re.fullmatch(r"[0-9a-f-]{36}", t["id"]), t
assert len(set(printed)) == 20
print("messages ok")
PY
ok "tasks from flags and from JSON lines arrive as v1 JSON, defaults explicit, key = queue, ids as printed"

# ---- a bad line: nothing sent, every bad line named ------------------------
bad_topic="bad.$UNIQ"
create_topic "$bad_topic"
cat >"$WORK/mixed" <<'EOF'
{"type":"good.one","id":"good-1"}
{"type":"good.two","id":"good-2","queue":"other"}
{"queue":"x","id":"bad-3"}
{"type":"good.four","id":"good-4"}
{"type":"bad five","id":"bad-5"}
{"type":"x","priority":12}
this is not json
{"type":"good.eight","id":"good-8"}
EOF
submit_rc rc --topic "$bad_topic" --file "$WORK/mixed"
[ "$rc" -eq 1 ] || fail "bad lines: exit $rc, want 1"
[ ! -s "$WORK/out" ] || fail "bad lines: ids printed although nothing was sent: $(cat "$WORK/out")"
for want in "line 3: missing_field" "line 5: bad_charset" "line 6: out_of_range" \
  "line 7: invalid_json" "4 of 8 lines rejected; nothing sent"; do
  grep -qF "$want" "$WORK/err" || fail "bad lines: stderr lacks '$want': $(cat "$WORK/err")"
done
grep -q "field 'type' is required" "$WORK/err" || fail "bad lines: no codec detail: $(cat "$WORK/err")"
[ "$(consume "$bad_topic" | wc -l)" -eq 0 ] || fail "bad lines: something was sent to $bad_topic"
ok "bad lines: exit 1, each named with line number, reason and detail, nothing sent"

# ---- --skip-invalid sends the good ones, --json reports every line ---------
submit_rc rc --topic "$bad_topic" --file "$WORK/mixed" --skip-invalid --json
[ "$rc" -eq 0 ] || fail "--skip-invalid: exit $rc: $(cat "$WORK/err")"
grep -qF "line 5: bad_charset" "$WORK/err" || fail "--skip-invalid: bad line not reported"
python3 - "$WORK/out" <<'PY' || fail "--json output is wrong: $(cat "$WORK/out")"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
assert [o["line"] for o in objs] == [1, 2, 3, 4, 5, 6, 7, 8], objs
for o in objs:
    if o["line"] in (3, 5, 6, 7):
        assert o["error"] == "invalid" and o["reason"] and o["detail"], o
    else:
        assert "error" not in o, o
        assert o["id"] == f"good-{o['line']}" and o["partition"] >= 0 and o["offset"] >= 0, o
        assert o["queue"] == ("other" if o["line"] == 2 else "default"), o
assert {o["reason"] for o in objs if "reason" in o} == {"missing_field", "bad_charset", "out_of_range", "invalid_json"}
PY
consume "$bad_topic" | cut -f4 | python3 -c '
import json, sys
ids = sorted(json.loads(l)["id"] for l in sys.stdin)
assert ids == ["good-1", "good-2", "good-4", "good-8"], ids' || fail "--skip-invalid: topic holds other tasks"
ok "--skip-invalid sends exactly the good lines; --json gives one parseable object per line"

# ---- --json for a task from flags -------------------------------------------
submit_rc rc --topic "$topic" --type json.flag --queue "$queue" --json
[ "$rc" -eq 0 ] || fail "--json flags: exit $rc"
python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
assert set(o) == {"id", "queue", "topic", "partition", "offset"}, o
assert o["topic"] == sys.argv[2] and o["queue"] == sys.argv[3], o' "$WORK/out" "$topic" "$queue" ||
  fail "--json for flags: $(cat "$WORK/out")"
ok "--json for a task from flags"

# ---- unreachable broker: delivery failure, bounded ---------------------------
start=$SECONDS
rc=0
timeout 60 "$SUBMIT" --kafka-brokers 127.0.0.1:1 --kafka-config message.timeout.ms=2000 \
  --type unreachable --id "unreach-$UNIQ" >"$WORK/out" 2>"$WORK/err" || rc=$?
elapsed=$((SECONDS - start))
[ "$rc" -eq 1 ] || fail "unreachable broker: exit $rc, want 1: $(cat "$WORK/err")"
[ "$elapsed" -le 15 ] || fail "unreachable broker: took ${elapsed}s"
grep -q "task unreach-$UNIQ not delivered: Local: Message timed out" "$WORK/err" ||
  fail "unreachable broker: failure not named: $(cat "$WORK/err")"
grep -q "1 of 1 tasks not delivered: unreach-$UNIQ" "$WORK/err" ||
  fail "unreachable broker: no summary: $(cat "$WORK/err")"
[ ! -s "$WORK/out" ] || fail "unreachable broker: printed an id"
# Several lines: every failed id named, --json says not_delivered for each.
printf '{"type":"u","id":"u-%s"}\n' 1 2 3 |
  timeout 60 "$SUBMIT" --kafka-brokers 127.0.0.1:1 --delivery-timeout-ms 1500 --json - \
    >"$WORK/out" 2>"$WORK/err" && fail "unreachable broker (lines): exit 0"
for id in u-1 u-2 u-3; do
  grep -q "task $id not delivered" "$WORK/err" || fail "unreachable broker: $id not named"
done
python3 -c '
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
assert [o["error"] for o in objs] == ["not_delivered"] * 3, objs' "$WORK/out" ||
  fail "unreachable broker --json: $(cat "$WORK/out")"
ok "unreachable broker: exit 1 after ${elapsed}s, failed ids named"

# ---- usage errors exit 2 ----------------------------------------------------
usage_case() {
  local want=$1
  shift
  submit_rc rc "$@" </dev/null
  [ "$rc" -eq 2 ] || fail "usage: baton-submit $* exited $rc, want 2"
  grep -qF -- "$want" "$WORK/err" || fail "usage: baton-submit $*: stderr lacks '$want': $(cat "$WORK/err")"
}
usage_case "unknown flag '--bogus'" --bogus
usage_case "nothing to submit" --topic "$topic"
usage_case "--type is required" --queue q
usage_case "--priority sets a field" --file "$WORK/lines" --priority 3
usage_case "--meta sets a field" - --meta a=b
usage_case "expected KEY=VALUE" --type a --meta novalue
usage_case "given twice" --type a --meta k=1 --meta k=2
usage_case "expected an integer" --type a --priority high
usage_case "not both" --file "$WORK/lines" -
usage_case "unexpected argument 'stray'" --type a stray
usage_case "open $WORK/nonexistent" --file "$WORK/nonexistent"
usage_case "No such configuration property" --type a --kafka-config no.such=1
BATON_KAFKA_BROKERS='' usage_case "no Kafka brokers" --type a
# Task fields are flags only: an exported BATON_PRIORITY changes nothing.
BATON_PRIORITY=9 BATON_ID=from-env "$SUBMIT" --topic "$topic" --type env.check --queue "env.$UNIQ" \
  >"$WORK/out" 2>"$WORK/err" || fail "env check: $(cat "$WORK/err")"
[ "$(cat "$WORK/out")" != from-env ] || fail "BATON_ID from the environment was used"
"$SUBMIT" --help >"$WORK/help" || fail "--help exited non-zero"
for want in --kafka-brokers BATON_KAFKA_BROKERS --topic --kafka-config --file --json \
  --skip-invalid --type --queue --priority --payload --delay --run-at --deadline \
  --max-attempts --timeout --id "--meta KEY=VALUE (repeatable)"; do
  grep -qF -- "$want" "$WORK/help" || fail "--help lacks $want"
done
ok "usage errors exit 2 with a clear line; --help lists every flag"

# ---- progress line only on a terminal ---------------------------------------
python3 -c '
for n in range(1500): print("{\"type\":\"progress\",\"queue\":\"p\"}")' >"$WORK/many"
"$SUBMIT" --topic "$topic" --file "$WORK/many" >/dev/null 2>"$WORK/err" || fail "1500 lines: exit $?"
[ ! -s "$WORK/err" ] || fail "progress written to a non-terminal: $(cat "$WORK/err")"
if command -v script >/dev/null; then
  # script(1) gives the command a terminal; its stdout is the terminal.
  script -qec "'$SUBMIT' --topic '$topic' --file '$WORK/many' >/dev/null" /dev/null \
    >"$WORK/tty" 2>&1 </dev/null || fail "1500 lines on a tty: $(cat "$WORK/tty")"
  grep -q "delivered 1500 tasks in" "$WORK/tty" || fail "no progress summary on a tty: $(cat "$WORK/tty")"
  grep -q $'\r' "$WORK/tty" || fail "progress line not updated in place"
  ok "progress line on a terminal only"
fi

# ---- 500 lines through a running scheduler all reach Redis ------------------
s_topic="s.$UNIQ"
s_queue="sq.$UNIQ"
create_topic "$s_topic"
start_scheduler sched --topic "$s_topic" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ"
python3 - "$s_queue" >"$WORK/500" <<'PY'
import json, sys
for n in range(500):
    print(json.dumps({"type": "submit.bulk", "queue": sys.argv[1], "priority": n % 10,
                      "payload": {"n": n}}))
PY
"$SUBMIT" --topic "$s_topic" --file "$WORK/500" >"$WORK/500_ids" 2>"$WORK/err" ||
  fail "500 lines: exit $?: $(cat "$WORK/err")"
[ "$(sort -u "$WORK/500_ids" | wc -l)" -eq 500 ] || fail "500 lines: not 500 distinct ids"
count_is_500() { [ "$(task_count "$s_queue")" -eq 500 ]; }
wait_until 60 "500 tasks of $s_queue in Redis" count_is_500
rcli --scan --pattern "baton:{$s_queue}:t:*" | sed "s/^baton:{$s_queue}:t://" | sort >"$WORK/redis_ids"
sort "$WORK/500_ids" | diff -q - "$WORK/redis_ids" >/dev/null ||
  fail "500 lines: the ids in Redis are not the ids baton-submit printed"
[ "$(rcli zcard "baton:{$s_queue}:ready")" -eq 500 ] || fail "500 lines: not all 500 ready"
ok "500 lines through baton-submit and the scheduler: all in Redis under the printed ids"

echo "$passed passed, 0 failed"
