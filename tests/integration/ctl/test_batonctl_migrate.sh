#!/usr/bin/env bash
# test_batonctl_migrate.sh BATONCTL: `batonctl migrate` as an operator runs
# it, against the stack's PostgreSQL: the first run applies, the second is a
# no-op, three concurrent runs on a fresh database all exit 0 with one set of
# tables, and failures are one clear line with the right exit code.
set -euo pipefail
batonctl=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
export PGOPTIONS='-c client_min_messages=warning'  # quiet psql's NOTICEs

db="ctl_migrate_$$"
admin() { psql "$BATON_PG_DSN" -v ON_ERROR_STOP=1 -qAtc "$1"; }
admin "DROP DATABASE IF EXISTS $db"
admin "CREATE DATABASE $db"
trap 'psql "$BATON_PG_DSN" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
dsn="${BATON_PG_DSN%/*}/$db"
psql "$dsn" -qAtc "SELECT 1" >/dev/null || fail "cannot reach $dsn"

out=$("$batonctl" --pg-dsn "$dsn" migrate)
echo "first run: $out"
case "$out" in "applied "*" schema version "*) ;; *) fail "first run said: $out" ;; esac

# Global options go before or after the command; an argument is a usage
# error (exit 2); --help is help (it used to be "unexpected argument").
after=$(BATON_PG_DSN="$dsn" "$batonctl" migrate --json) || fail "migrate --json failed"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["applied"]==0, d' "$after" \
  || fail "migrate --json (after the command) was not JSON or not a no-op: $after"
rc=0; BATON_PG_DSN="$dsn" "$batonctl" migrate extra >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "migrate extra should be a usage error, got exit $rc"
BATON_PG_DSN="$dsn" "$batonctl" migrate --help | grep -q "usage: batonctl \[options\] migrate" \
  || fail "migrate --help printed no usage"

out=$(BATON_PG_DSN="$dsn" "$batonctl" --json migrate)
echo "second run: $out"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["applied"]==0 and d["already_applied"]>=1, d' "$out" \
  || fail "second run was not a no-op: $out"

# Three migrators racing on a fresh database.
db2="${db}_race"
admin "DROP DATABASE IF EXISTS $db2"
admin "CREATE DATABASE $db2"
trap 'psql "$BATON_PG_DSN" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1; psql "$BATON_PG_DSN" -qc "DROP DATABASE IF EXISTS $db2" >/dev/null 2>&1 || true' EXIT
dsn2="${BATON_PG_DSN%/*}/$db2"
pids=()
for i in 1 2 3; do
  "$batonctl" --json --pg-dsn "$dsn2" migrate >"$BATON_STACK_DIR/race.$$.$i" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || fail "a concurrent migrate failed: $(cat "$BATON_STACK_DIR"/race.$$.*)"
done
applied=$(cat "$BATON_STACK_DIR"/race.$$.* | python3 -c 'import json,sys; print(sum(json.loads(l)["applied"] for l in sys.stdin))')
rm -f "$BATON_STACK_DIR"/race.$$.*
files=$(psql "$dsn2" -qAtc "SELECT count(*) FROM baton.schema_migrations")
[ "$applied" -eq "$files" ] || fail "racers applied $applied files in all, expected $files"
tables=$(psql "$dsn2" -qAtc "SELECT count(*) FROM pg_tables WHERE schemaname = 'baton'")
[ "$tables" -ge 4 ] || fail "expected the baton tables, found $tables"

# Failures: one line on stderr and exit 1.
rc=0; err=$("$batonctl" --pg-dsn "postgresql://baton@127.0.0.1:1/baton" migrate 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "unreachable server: exit $rc"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "unreachable server: not one line: $err"
case "$err" in "batonctl migrate: PostgreSQL connect:"*) ;; *) fail "unreachable server said: $err" ;; esac

rc=0; err=$(env -u BATON_PG_DSN "$batonctl" migrate 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "no DSN: exit $rc"
case "$err" in *"no PostgreSQL DSN given"*) ;; *) fail "no DSN said: $err" ;; esac

rc=0; "$batonctl" --no-such-flag migrate >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "bad flag: exit $rc"
rc=0; "$batonctl" frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "unknown command: exit $rc"
echo "1 passed, 0 failed"
