#!/bin/bash
# baton-healthcheck [PATH]: the baton image's HEALTHCHECK (deploy/Dockerfile).
# Exits 0 when the baton daemon of this container answers HTTP 200 on PATH
# (default /healthz; `baton-healthcheck /readyz` checks readiness) of its
# metrics endpoint, 1 otherwise, with one line saying why.
#
# Port and address are the daemon's own: its --metrics-port and
# --metrics-bind flags, else BATON_METRICS_PORT and BATON_METRICS_BIND in its
# environment (docker-entrypoint.sh sets the port: 9464 for baton-scheduler,
# 9465 for baton-worker), read from /proc, so the check follows whatever the
# daemon was started with. Bound to every interface, it is asked on
# 127.0.0.1.
#
# HTTP over bash's /dev/tcp, so the image needs no curl or wget: one GET on
# loopback, status line only. Docker's --timeout bounds the whole check; the
# read has its own limit too.
set -u
path=${1:-/healthz}
proc=${BATON_HEALTHCHECK_PROC:-/proc} # another directory only in tests

daemon_pid= daemon=
for dir in "$proc"/[0-9]*; do
  pid=${dir##*/}
  [ "$pid" = "$$" ] && continue
  mapfile -d '' -t argv 2>/dev/null <"$dir/cmdline" || continue
  [ ${#argv[@]} -gt 0 ] || continue
  case "${argv[0]##*/}" in
    baton-scheduler | baton-worker) daemon_pid=$pid daemon=${argv[0]##*/}; break ;;
  esac
done
if [ -z "$daemon_pid" ]; then
  echo "unhealthy: no baton-scheduler or baton-worker process in this container"
  exit 1
fi

port= bind= env_port= env_bind=
for ((i = 1; i < ${#argv[@]}; i++)); do
  case "${argv[i]}" in
    --metrics-port) port=${argv[i + 1]:-} ;;
    --metrics-port=*) port=${argv[i]#--metrics-port=} ;;
    --metrics-bind) bind=${argv[i + 1]:-} ;;
    --metrics-bind=*) bind=${argv[i]#--metrics-bind=} ;;
  esac
done
if mapfile -d '' -t envs 2>/dev/null <"$proc/$daemon_pid/environ"; then
  for kv in "${envs[@]}"; do
    case "$kv" in
      BATON_METRICS_PORT=*) env_port=${kv#BATON_METRICS_PORT=} ;;
      BATON_METRICS_BIND=*) env_bind=${kv#BATON_METRICS_BIND=} ;;
    esac
  done
fi
port=${port:-$env_port} bind=${bind:-$env_bind}
# The image sets BATON_METRICS_BIND=0.0.0.0 (every interface): ask on
# loopback then; a specific address is asked directly.
case "$bind" in
  '' | 0.0.0.0 | '*') host=127.0.0.1 ;;
  :: | '[::]') host=::1 ;;
  *) host=$bind ;;
esac
if [ -z "$port" ]; then
  case "$daemon" in baton-scheduler) port=9464 ;; *) port=9465 ;; esac
fi
case "$port" in
  0) echo "unhealthy: $daemon runs with its metrics endpoint off (metrics port 0); nothing to check"
     exit 1 ;;
  *[!0-9]*) echo "unhealthy: $daemon has metrics port '$port', not a number"; exit 1 ;;
esac

if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "unhealthy: $daemon (pid $daemon_pid): nothing listens on $host:$port"
  exit 1
fi 2>/dev/null
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status=
IFS=' ' read -r -t 4 _ status _ <&3 || true
# Read the rest up to the server's close, so it never sees a reset.
[ -n "$status" ] && while IFS= read -r -t 2 _ <&3; do :; done
exec 3<&-
if [ "$status" = 200 ]; then
  echo "ok: $daemon $host:$port$path"
  exit 0
fi
echo "unhealthy: $daemon $host:$port$path answered ${status:-nothing}"
exit 1
