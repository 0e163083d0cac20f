#!/usr/bin/env bash
# deploy/demo.sh: the main job on the local stack, from a fresh Debian 12
# machine (as root). Installs what is missing, builds, brings up the local
# stack (Redis, PostgreSQL, embedded Kafka on free loopback ports), applies
# the history migrations with `batonctl migrate`, and prints where
# everything is. The stack keeps running; the last lines say how to use and
# stop it. Running the demo again first stops the stack it started before.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BATON_BUILD_DIR:-$root/build}
env_file=$build/demo-stack.env

"$root/deploy/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

if [ -f "$env_file" ]; then
  echo "demo: stopping the stack of the previous demo run" >&2
  "$root/deploy/stack.sh" down --env-file "$env_file" >&2 || true
fi

echo "demo: starting the local stack" >&2
BATON_KAFKA_MOCK_BIN=$build/deploy/baton-kafka-mock \
  "$root/deploy/stack.sh" up --env-file "$env_file" >/dev/null
# shellcheck disable=SC1090
. "$env_file"

echo "demo: applying migrations" >&2
"$build/ctl/batonctl" migrate

cat <<TXT

baton local stack is up:
  Kafka (embedded, 3 brokers)  $BATON_KAFKA_BROKERS   topics baton.tasks (16 partitions), baton.tasks.dlq
  Redis                        $BATON_REDIS_URL
  PostgreSQL                   $BATON_PG_DSN   (history schema: baton)
  stack directory              $BATON_STACK_DIR

Use it from a shell:
  . $env_file
  kcat -L -b \$BATON_KAFKA_BROKERS
  psql "\$BATON_PG_DSN" -c '\\dt baton.*'
  redis-cli -u "\$BATON_REDIS_URL" info memory

Stop it:
  $root/deploy/stack.sh down --env-file $env_file
TXT
