#!/usr/bin/env bash
# test_config_secrets.sh: no error of a failing start shows a password.
# Each binary that takes a Redis URL, a PostgreSQL DSN or Kafka properties
# (baton-scheduler, baton-worker, batonctl, baton-submit, baton-bench) is
# started with a bad configuration holding the secret S3cretPW: a bad port,
# a bad percent-escape, a mistyped Kafka property, a value librdkafka
# refuses, a value cut by a comma, a bad line of --kafka-config-file, a DSN
# libpq cannot parse. Each must fail with its clear message, and no line it
# wrote (stdout, stderr, JSON log) may hold the secret or a piece of it.
. "$(dirname "$0")/../lib.sh"

SECRET=S3cretPW
B=$BATON_BIN_DIR
SCHEDULER=(timeout 60 "$B/scheduler/baton-scheduler" --kafka-brokers "$BATON_KAFKA_BROKERS"
  --topic "t.$UNIQ" --group-id "g.$UNIQ" --dlq-topic "dlq.$UNIQ")
SUBMIT=(timeout 60 "$B/producer/baton-submit" --kafka-brokers "$BATON_KAFKA_BROKERS"
  --topic "t.$UNIQ" --type noop)
BAD_PORT="redis://user:$SECRET@127.0.0.1:99999/0"
BAD_PORT_SHOWN="'redis://user:***@127.0.0.1:99999/0' has a bad port"
BAD_DSN="postgresql://baton:$SECRET@[::1/baton"
cases=0

# case NAME WANT COMMAND...: COMMAND fails, WANT is in what it wrote, and
# neither the secret nor a piece of it (cut at a comma, a '%', or the
# first characters) is anywhere in it.
case_() {
  local name=$1 want=$2 rc=0
  shift 2
  "$@" >"$WORK/$name.log" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "$name: exit 0 with a bad configuration"
  grep -qF -- "$want" "$WORK/$name.log" || fail "$name: no '$want' in its output"
  if grep -nE 'S3cr|etPW|zzPW' "$WORK/$name.log"; then
    fail "$name: the secret is in its output (lines above)"
  fi
  cases=$((cases + 1))
}

# Redis URLs: bad port, bad percent-encoding, in every binary.
case_ sched_port "$BAD_PORT_SHOWN" "${SCHEDULER[@]}" --redis-url "$BAD_PORT" --history=false
case_ worker_port "$BAD_PORT_SHOWN" timeout 60 "$B/worker/baton-worker" --redis-url "$BAD_PORT"
case_ ctl_port "$BAD_PORT_SHOWN" timeout 60 "$B/ctl/batonctl" --redis-url "$BAD_PORT" queues
case_ bench_port "$BAD_PORT_SHOWN" timeout 60 "$B/bench/baton-bench" --redis-url "$BAD_PORT" \
  --kafka-brokers "$BATON_KAFKA_BROKERS" --pg-dsn "$BATON_PG_DSN"
case_ worker_percent "the password has a bad percent-encoding" \
  timeout 60 "$B/worker/baton-worker" --redis-url "redis://user:S3cret%zzPW@127.0.0.1:6379/0"
# A URL without its scheme is redacted too.
case_ sched_scheme "must start with redis://" "${SCHEDULER[@]}" --history=false \
  --redis-url "user:$SECRET@127.0.0.1:6379"

# Kafka properties (the scheduler reaches them once Redis is checked).
kafka_file=$WORK/kafka.properties
case_ sched_kafka_name "'sasl.pasword': No such configuration property" "${SCHEDULER[@]}" \
  --redis-url "$BATON_REDIS_URL" --history=false --kafka-config "sasl.pasword=$SECRET"
case_ sched_kafka_value "'security.protocol': invalid value" "${SCHEDULER[@]}" \
  --redis-url "$BATON_REDIS_URL" --history=false --kafka-config "security.protocol=$SECRET"
case_ sched_kafka_comma "entry 2 is not name=value" "${SCHEDULER[@]}" \
  --redis-url "$BATON_REDIS_URL" --history=false --kafka-config "sasl.password=S3cr,etPW"
printf '# SASL\nsasl.username=baton\n%s\n' "$SECRET" >"$kafka_file"
case_ sched_kafka_file "$kafka_file line 3: not name=value" "${SCHEDULER[@]}" \
  --redis-url "$BATON_REDIS_URL" --history=false --kafka-config-file "$kafka_file"
case_ submit_kafka_name "'sasl.pasword': No such configuration property" "${SUBMIT[@]}" \
  --kafka-config "sasl.pasword=$SECRET"
case_ submit_kafka_comma "entry 2 is not name=value" "${SUBMIT[@]}" \
  --kafka-config "sasl.password=S3cr,etPW"
printf 'sasl.pasword = %s\n' "$SECRET" >"$kafka_file"
case_ submit_kafka_file "line 1: Kafka property 'sasl.pasword'" "${SUBMIT[@]}" \
  --kafka-config-file "$kafka_file"

# PostgreSQL DSNs libpq cannot parse (its own message quotes the DSN).
case_ sched_dsn "PostgreSQL DSN is not valid" "${SCHEDULER[@]}" --redis-url "$BATON_REDIS_URL" \
  --ingest=false --maintenance=false --pg-dsn "$BAD_DSN"
case_ ctl_dsn "PostgreSQL DSN is not valid" timeout 60 "$B/ctl/batonctl" --pg-dsn "$BAD_DSN" \
  migrate
case_ ctl_dsn_escape "PostgreSQL DSN is not valid" timeout 60 "$B/ctl/batonctl" \
  --pg-dsn "postgresql://baton:S3cret%zzPW@127.0.0.1/baton" migrate

# A comma in a value works through --kafka-config-file: baton-submit
# accepts it (the broker is the stack's; the property is only a client id).
printf 'client.id = baton,submit\n' >"$kafka_file"
timeout 60 "${SUBMIT[@]:2}" --kafka-config-file "$kafka_file" --id "c.$UNIQ" \
  >"$WORK/submit_ok.log" 2>&1 || fail "baton-submit with a comma in --kafka-config-file failed"
echo "PASS: $cases failing starts, none showed the secret; e.g. $(tail -n 1 "$WORK/sched_port.log")"
