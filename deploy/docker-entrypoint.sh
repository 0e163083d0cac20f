#!/bin/sh
# docker-entrypoint.sh: the baton image's entrypoint (deploy/Dockerfile).
#
#   docker run IMAGE baton-worker --concurrency 8    runs that binary
#   docker run IMAGE --concurrency 8                 arguments only: a worker
#   docker run IMAGE                                 a worker (CMD)
#
# The one thing it adds: when BATON_METRICS_PORT is not set, the daemons get
# their conventional metrics port (/metrics, /healthz, /readyz), 9464 for
# baton-scheduler and 9465 for baton-worker, so the image's HEALTHCHECK and a
# Prometheus scrape find them without configuration. Set BATON_METRICS_PORT
# (0 turns the endpoint off) or pass --metrics-port to choose another.
#
# It then execs the command, so the daemon receives SIGTERM directly (run
# with `docker run --init` or compose `init: true` so that a process
# reaps the container's orphans; baton-worker as PID 1 reaps them itself).
set -eu

case "${1:-}" in
  -*) set -- baton-worker "$@" ;;
esac

if [ -z "${BATON_METRICS_PORT:-}" ]; then
  case "${1:-}" in
    baton-scheduler | */baton-scheduler) BATON_METRICS_PORT=9464; export BATON_METRICS_PORT ;;
    baton-worker | */baton-worker) BATON_METRICS_PORT=9465; export BATON_METRICS_PORT ;;
  esac
fi

exec "$@"
