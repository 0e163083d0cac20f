#!/usr/bin/env bash
# with_stack.sh PROGRAM [ARGS...]: runs PROGRAM with the local stack's
# environment (BATON_KAFKA_BROKERS, BATON_REDIS_URL, BATON_PG_DSN, ...) read
# from $BATON_STACK_ENV_FILE, which the ctest fixture "stack" wrote.
set -euo pipefail
if [ -z "${BATON_STACK_ENV_FILE:-}" ] || [ ! -r "$BATON_STACK_ENV_FILE" ]; then
  echo "with_stack.sh: no stack environment file (BATON_STACK_ENV_FILE='${BATON_STACK_ENV_FILE:-}'); run under ctest" >&2
  exit 2
fi
# shellcheck disable=SC1090
. "$BATON_STACK_ENV_FILE"
exec "$@"
